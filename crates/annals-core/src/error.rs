//! The one error type of annals (\[E1\]), with the fields a program matches
//! on: why an input was refused ([`InvalidReason`], naming the [`Limit`] or
//! the [`Field`]), which condition failed ([`FailedCondition`]), where
//! stored bytes are damaged ([`CorruptionAt`]), and which part of a batch
//! failed ([`Error::part`]).

use std::path::PathBuf;

use crate::event::{Position, StreamId, Version};
use crate::expect::{AppendCondition, ExpectedVersion};

/// A boxed error of an engine, kept as the source of [`Error::Backend`].
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Everything that can go wrong in annals.
///
/// Messages say what was wrong and with which value; the fields say it to a
/// program. Match on the variant (or use the `is_…` predicates, which also
/// look inside [`Error::BatchPart`]); new variants may be added, so keep a
/// `_` arm.
///
/// ```
/// use annals_core::{Error, InvalidReason, Limit};
///
/// fn too_big(err: &Error) -> Option<usize> {
///     match err.invalid_reason()? {
///         InvalidReason::Limit { limit: Limit::EventBytes, actual, .. } => Some(actual),
///         _ => None,
///     }
/// }
/// let err = Error::limit(Limit::EventBytes, 16, 17, "event x has 17 bytes, more than 16");
/// assert_eq!(too_big(&err), Some(17));
/// assert_eq!(err.to_string(), "invalid input: event x has 17 bytes, more than 16");
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The input breaks the contract (a limit, an empty list, a bad id…);
    /// nothing was written.
    #[error("invalid input: {message}")]
    InvalidInput {
        /// Why, for a program: which limit, or what was empty, repeated or
        /// malformed.
        reason: InvalidReason,
        /// Why, for a human: what was wrong with which value.
        message: String,
    },

    /// The stream's version did not satisfy the append's expectation.
    #[error(
        "wrong expected version for stream {stream}: expected {expected}, actual {}",
        display_actual(.actual)
    )]
    WrongExpectedVersion {
        /// The stream the expectation was about.
        stream: StreamId,
        /// What the caller expected.
        expected: ExpectedVersion,
        /// The stream's real last version (`None` when it does not exist).
        actual: Option<Version>,
    },

    /// An append condition (DCB, SPEC A8) or an aux-write condition (X2)
    /// failed; nothing was written.
    #[error("append condition failed: {message}")]
    AppendConditionFailed {
        /// Which condition failed.
        failed: FailedCondition,
        /// What failed, for a human.
        message: String,
    },

    /// The stream does not exist (never written, or deleted).
    #[error("stream not found: {0}")]
    StreamNotFound(StreamId),

    /// One part of an `append_batch` failed; nothing of the batch was
    /// written. `part` is the index of the first failing part (\[A6\]).
    #[error("batch part {part} failed: {source}")]
    BatchPart {
        /// Index of the first failing part.
        part: usize,
        /// Why it failed.
        #[source]
        source: Box<Error>,
    },

    /// Stored bytes are damaged (\[M6\]).
    #[error("corruption: {message}")]
    Corruption {
        /// Where: the position of a damaged event, a key, a file…
        at: CorruptionAt,
        /// What is damaged there, for a human.
        message: String,
    },

    /// The store was closed.
    #[error("the store is closed")]
    Closed,

    /// A stored event could not be decoded as the type the caller asked
    /// for (its type differs, or its data does not parse): the message names
    /// the stream, the version and the event's type.
    #[error(
        "cannot decode the event of stream {stream} at version {version} (type {event_type:?}) as {target}: {source}"
    )]
    Decode {
        /// The event's stream.
        stream: StreamId,
        /// The event's version in its stream.
        version: Version,
        /// The event's stored type.
        event_type: String,
        /// What the caller asked for (a Rust type and its event type).
        target: String,
        /// Why it could not be decoded.
        #[source]
        source: BoxError,
    },

    /// The backend does not offer this capability.
    #[error("unsupported by this backend: {0}")]
    Unsupported(String),

    /// The engine failed; its own error is the source.
    #[error("backend error: {message}")]
    Backend {
        /// What annals was doing.
        message: String,
        /// The engine's error.
        #[source]
        source: BoxError,
    },

    /// No server could serve the call now (a database server down or
    /// restarting, a replicated database between the loss of its primary
    /// and a standby's promotion, a network cut, a write that waited past
    /// the backend's timeout before it was sent); nothing was written. The
    /// same call may succeed later: retry it, after a pause.
    #[error("unavailable: {message}")]
    Unavailable {
        /// What annals was doing, and why it gave up.
        message: String,
        /// The engine's error.
        #[source]
        source: BoxError,
    },

    /// A write was sent, but the connection was lost (or the backend's
    /// timeout passed) before the server answered its commit: it may or
    /// may not have been written. An append with `NoStream`, `Exact(v)` or
    /// a condition is safe to retry exactly as it was (the same event ids:
    /// A5 answers the first write's result if it committed, else writes
    /// it once); for any other write, read the store to learn what
    /// happened before writing again.
    #[error("outcome unknown: {message}")]
    OutcomeUnknown {
        /// What annals was doing, and why the answer is unknown.
        message: String,
        /// The engine's error.
        #[source]
        source: BoxError,
    },
}

/// Why an input was refused ([`Error::InvalidInput`]).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
#[non_exhaustive]
pub enum InvalidReason {
    /// A size or a count is outside its limit: above `max`, or 0 where at
    /// least 1 is needed (a read's `count`).
    Limit {
        /// Which limit.
        limit: Limit,
        /// The limit's value (the store's, for a configurable one).
        max: usize,
        /// The value given.
        actual: usize,
    },
    /// A value that needs at least one byte or item has none (an empty
    /// stream id, an append with no events…).
    Empty(Field),
    /// A value that must be unique in its place appears twice (a tag of one
    /// event, an event id of one append, a stream in two parts of one
    /// batch, an aux key in one write…).
    Duplicate(Field),
    /// A value does not have the required form: a NUL byte in a name, text
    /// that does not parse, an option value out of its range.
    Malformed(Field),
    /// A name that is not known: an option the backend does not take, an
    /// index that is not registered.
    Unknown(Field),
    /// The value contradicts what the store holds (a snapshot above the
    /// stream's last version, an index built by a newer indexer).
    Conflict(Field),
}

/// What is limited ([`InvalidReason::Limit`]).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
#[non_exhaustive]
pub enum Limit {
    /// Bytes of a stream id (1024, SPEC D1).
    StreamIdBytes,
    /// Bytes of an event type or a tag, also in a query (255, D2).
    NameBytes,
    /// Tags on one event (64, D2).
    Tags,
    /// Bytes of `data` + `metadata` of one event
    /// ([`Limits::max_event_bytes`](crate::Limits::max_event_bytes)).
    EventBytes,
    /// Events and aux writes in one append, batch or aux write
    /// ([`Limits::max_append_events`](crate::Limits::max_append_events)).
    AppendEvents,
    /// Bytes of one append, batch or aux write: events' data and metadata,
    /// aux keys and values
    /// ([`Limits::max_append_bytes`](crate::Limits::max_append_bytes)).
    AppendBytes,
    /// A read's `count`, or the `limit` of a listing
    /// ([`Limits::max_read_count`](crate::Limits::max_read_count)).
    ReadCount,
    /// Items in one query (64, R6).
    QueryItems,
    /// Types in one query item (64, R6).
    QueryTypes,
    /// Tags in one query item (64, R6).
    QueryTags,
    /// Bytes of an aux key (1024, X1), also when a layer builds the key.
    AuxKeyBytes,
    /// Bytes of an aux value, or of the value an aux condition compares
    /// with (`max_event_bytes`, X1).
    AuxValueBytes,
    /// Bytes of a checkpoint or index name of the event-store layer (128).
    EventStoreNameBytes,
}

/// Which value of the input an [`InvalidReason`] is about.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
#[non_exhaustive]
pub enum Field {
    /// A stream id, or a stream of a batch.
    StreamId,
    /// An event type (of an event or a query).
    EventType,
    /// A tag (of an event or a query).
    Tag,
    /// An event id.
    EventId,
    /// The events of an append or of a batch part.
    Events,
    /// The parts of a batch.
    BatchParts,
    /// An aux key.
    AuxKey,
    /// The writes of an aux write.
    AuxWrites,
    /// A store option (a URL parameter or an options struct's field).
    StoreOption,
    /// A store URL or path.
    StoreUrl,
    /// A checkpoint name (event-store layer).
    CheckpointName,
    /// An index name or definition (event-store layer).
    Index,
    /// A version given as an argument (e.g. a snapshot's).
    Version,
    /// Event data a typed event could not be encoded to.
    Data,
    /// A setting of a layer over the store (e.g. a page size).
    Setting,
}

/// Which condition of a write failed ([`Error::AppendConditionFailed`]).
#[derive(Clone, PartialEq, Eq, Debug)]
#[non_exhaustive]
pub enum FailedCondition {
    /// The DCB condition of the append or batch (\[A8\]): an event matching
    /// its query was appended after its `after`.
    Events(AppendCondition),
    /// The condition of the aux write to this key (\[X2\]) does not hold.
    AuxKey(Vec<u8>),
}

/// Where damaged bytes are ([`Error::Corruption`]).
#[derive(Clone, PartialEq, Eq, Debug)]
#[non_exhaustive]
pub enum CorruptionAt {
    /// The event at this position (its log record or row).
    Position(Position),
    /// The value at this key of the shared key-value layout
    /// ([`kv::layout`](crate::kv::layout)): an index entry, stream or store
    /// metadata.
    Key(Vec<u8>),
    /// The aux value at this key (as the caller named it, X1).
    AuxKey(Vec<u8>),
    /// A file or folder of the store.
    Path(PathBuf),
    /// The engine does not say where.
    Unknown,
}

fn display_actual(actual: &Option<Version>) -> String {
    match actual {
        Some(v) => v.to_string(),
        None => "no stream".to_string(),
    }
}

impl Error {
    /// An [`Error::InvalidInput`].
    pub fn invalid(reason: InvalidReason, message: impl Into<String>) -> Self {
        Error::InvalidInput {
            reason,
            message: message.into(),
        }
    }

    /// An [`Error::InvalidInput`] for a value outside `limit`: `actual`
    /// given, `max` allowed.
    pub fn limit(limit: Limit, max: usize, actual: usize, message: impl Into<String>) -> Self {
        Error::invalid(InvalidReason::Limit { limit, max, actual }, message)
    }

    /// An [`Error::InvalidInput`] for an empty `field`.
    pub fn empty(field: Field, message: impl Into<String>) -> Self {
        Error::invalid(InvalidReason::Empty(field), message)
    }

    /// An [`Error::InvalidInput`] for a `field` given twice.
    pub fn duplicate(field: Field, message: impl Into<String>) -> Self {
        Error::invalid(InvalidReason::Duplicate(field), message)
    }

    /// An [`Error::InvalidInput`] for a malformed `field`.
    pub fn malformed(field: Field, message: impl Into<String>) -> Self {
        Error::invalid(InvalidReason::Malformed(field), message)
    }

    /// An [`Error::AppendConditionFailed`].
    pub fn condition_failed(failed: FailedCondition, message: impl Into<String>) -> Self {
        Error::AppendConditionFailed {
            failed,
            message: message.into(),
        }
    }

    /// An [`Error::Corruption`].
    pub fn corruption(at: CorruptionAt, message: impl Into<String>) -> Self {
        Error::Corruption {
            at,
            message: message.into(),
        }
    }

    /// An [`Error::Backend`] from an engine error and what annals was doing.
    pub fn backend(message: impl Into<String>, source: impl Into<BoxError>) -> Self {
        Error::Backend {
            message: message.into(),
            source: source.into(),
        }
    }

    /// An [`Error::Unavailable`]: nothing was written, retry later.
    pub fn unavailable(message: impl Into<String>, source: impl Into<BoxError>) -> Self {
        Error::Unavailable {
            message: message.into(),
            source: source.into(),
        }
    }

    /// An [`Error::OutcomeUnknown`]: a write that may or may not have
    /// committed.
    pub fn outcome_unknown(message: impl Into<String>, source: impl Into<BoxError>) -> Self {
        Error::OutcomeUnknown {
            message: message.into(),
            source: source.into(),
        }
    }

    /// An [`Error::WrongExpectedVersion`].
    pub fn wrong_version(
        stream: &StreamId,
        expected: ExpectedVersion,
        actual: Option<Version>,
    ) -> Self {
        Error::WrongExpectedVersion {
            stream: stream.clone(),
            expected,
            actual,
        }
    }

    /// `error` as the failure of batch part `part` ([`Error::BatchPart`]).
    pub fn in_part(part: usize, error: Error) -> Self {
        Error::BatchPart {
            part,
            source: Box::new(error),
        }
    }

    /// The same error with `context` in front of its message (`context:
    /// message`), its fields kept; for [`Error::BatchPart`], of the part's
    /// error. Errors without a message of their own are returned as they
    /// are.
    ///
    /// ```
    /// use annals_core::{Error, Field};
    /// let err = Error::empty(Field::Tag, "tag is empty").in_context("event 7");
    /// assert_eq!(err.to_string(), "invalid input: event 7: tag is empty");
    /// assert!(err.is_invalid_input());
    /// ```
    #[must_use]
    pub fn in_context(self, context: impl std::fmt::Display) -> Self {
        let prefix = |message: String| format!("{context}: {message}");
        match self {
            Error::InvalidInput { reason, message } => Error::InvalidInput {
                reason,
                message: prefix(message),
            },
            Error::AppendConditionFailed { failed, message } => Error::AppendConditionFailed {
                failed,
                message: prefix(message),
            },
            Error::Corruption { at, message } => Error::Corruption {
                at,
                message: prefix(message),
            },
            Error::Unsupported(message) => Error::Unsupported(prefix(message)),
            Error::Backend { message, source } => Error::Backend {
                message: prefix(message),
                source,
            },
            Error::Unavailable { message, source } => Error::Unavailable {
                message: prefix(message),
                source,
            },
            Error::OutcomeUnknown { message, source } => Error::OutcomeUnknown {
                message: prefix(message),
                source,
            },
            Error::BatchPart { part, source } => Error::in_part(part, source.in_context(context)),
            other => other,
        }
    }

    /// A short, stable name of the error's variant (of the part's error
    /// for [`Error::BatchPart`]), for telemetry labels and log fields:
    /// `invalid_input`, `wrong_expected_version`, `condition_failed`,
    /// `stream_not_found`, `corruption`, `closed`, `decode`, `unsupported`,
    /// `backend`, `unavailable` or `outcome_unknown`. It never carries a
    /// value of the input, so it is safe as a metric label.
    ///
    /// ```
    /// use annals_core::{Error, Field};
    /// let err = Error::in_part(1, Error::empty(Field::Events, "part 1 has no events"));
    /// assert_eq!(err.kind(), "invalid_input");
    /// assert_eq!(Error::Closed.kind(), "closed");
    /// ```
    pub fn kind(&self) -> &'static str {
        match self.root() {
            Error::InvalidInput { .. } => "invalid_input",
            Error::WrongExpectedVersion { .. } => "wrong_expected_version",
            Error::AppendConditionFailed { .. } => "condition_failed",
            Error::StreamNotFound(_) => "stream_not_found",
            Error::Corruption { .. } => "corruption",
            Error::Closed => "closed",
            Error::Decode { .. } => "decode",
            Error::Unsupported(_) => "unsupported",
            Error::Backend { .. } => "backend",
            Error::Unavailable { .. } => "unavailable",
            Error::OutcomeUnknown { .. } => "outcome_unknown",
            // root() never answers a BatchPart.
            Error::BatchPart { .. } => "batch_part",
        }
    }

    /// The error itself, or for [`Error::BatchPart`] the error of the part.
    pub fn root(&self) -> &Error {
        match self {
            Error::BatchPart { source, .. } => source.root(),
            other => other,
        }
    }

    /// The index of the failing part of a batch (\[A6\]), when this is an
    /// [`Error::BatchPart`].
    ///
    /// ```
    /// use annals_core::{Error, Field};
    /// let err = Error::in_part(1, Error::empty(Field::Events, "part 1 has no events"));
    /// assert_eq!(err.part(), Some(1));
    /// assert!(err.is_invalid_input());
    /// ```
    pub fn part(&self) -> Option<usize> {
        match self {
            Error::BatchPart { part, .. } => Some(*part),
            _ => None,
        }
    }

    /// Why the input was refused, if this is (or wraps) an
    /// [`Error::InvalidInput`].
    pub fn invalid_reason(&self) -> Option<InvalidReason> {
        match self.root() {
            Error::InvalidInput { reason, .. } => Some(*reason),
            _ => None,
        }
    }

    /// Which condition failed, if this is (or wraps) an
    /// [`Error::AppendConditionFailed`].
    pub fn failed_condition(&self) -> Option<&FailedCondition> {
        match self.root() {
            Error::AppendConditionFailed { failed, .. } => Some(failed),
            _ => None,
        }
    }

    /// Where the damage is, if this is (or wraps) an [`Error::Corruption`].
    pub fn corruption_at(&self) -> Option<&CorruptionAt> {
        match self.root() {
            Error::Corruption { at, .. } => Some(at),
            _ => None,
        }
    }

    /// Whether this is (or wraps) an [`Error::InvalidInput`].
    pub fn is_invalid_input(&self) -> bool {
        matches!(self.root(), Error::InvalidInput { .. })
    }

    /// Whether this is (or wraps) an [`Error::WrongExpectedVersion`].
    pub fn is_wrong_expected_version(&self) -> bool {
        matches!(self.root(), Error::WrongExpectedVersion { .. })
    }

    /// Whether this is (or wraps) an [`Error::AppendConditionFailed`].
    pub fn is_condition_failed(&self) -> bool {
        matches!(self.root(), Error::AppendConditionFailed { .. })
    }

    /// Whether this is (or wraps) an [`Error::StreamNotFound`].
    pub fn is_stream_not_found(&self) -> bool {
        matches!(self.root(), Error::StreamNotFound(_))
    }

    /// Whether this is (or wraps) an [`Error::Corruption`].
    pub fn is_corruption(&self) -> bool {
        matches!(self.root(), Error::Corruption { .. })
    }

    /// Whether this is (or wraps) [`Error::Closed`].
    pub fn is_closed(&self) -> bool {
        matches!(self.root(), Error::Closed)
    }

    /// Whether this is (or wraps) [`Error::Unavailable`]: nothing was
    /// written, and the same call may succeed later.
    ///
    /// ```
    /// use annals_core::Error;
    /// let err = Error::unavailable("connecting", "no server accepts writes");
    /// assert!(err.is_unavailable() && !err.is_outcome_unknown());
    /// assert_eq!(err.to_string(), "unavailable: connecting");
    /// ```
    pub fn is_unavailable(&self) -> bool {
        matches!(self.root(), Error::Unavailable { .. })
    }

    /// Whether this is (or wraps) [`Error::OutcomeUnknown`]: a write that
    /// may or may not have committed (see there for when a retry is exact).
    pub fn is_outcome_unknown(&self) -> bool {
        matches!(self.root(), Error::OutcomeUnknown { .. })
    }
}

/// Most bytes of a value an error message shows: longer values are cut
/// there (and their length given), so a message stays short whatever the
/// input.
pub const SHOWN_BYTES: usize = 64;

/// Shows text in an error message: quoted and escaped, cut after
/// [`SHOWN_BYTES`] bytes.
///
/// ```
/// use annals_core::show_text;
/// assert_eq!(show_text("a\u{0}b"), r#""a\0b""#);
/// assert_eq!(show_text(&"x".repeat(100)), format!("{:?}… (100 bytes)", "x".repeat(64)));
/// ```
pub fn show_text(text: &str) -> String {
    if text.len() <= SHOWN_BYTES {
        return format!("{text:?}");
    }
    let mut end = SHOWN_BYTES;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{:?}… ({} bytes)", &text[..end], text.len())
}

/// Shows bytes in an error message: as text when they are UTF-8 without
/// control characters, else in hex; cut after [`SHOWN_BYTES`] bytes.
///
/// ```
/// use annals_core::show_bytes;
/// assert_eq!(show_bytes(b"key"), r#""key""#);
/// assert_eq!(show_bytes(&[0, 255]), "0x00ff");
/// assert!(show_bytes(&[7; 1 << 20]).ends_with("… (1048576 bytes)"));
/// ```
pub fn show_bytes(bytes: &[u8]) -> String {
    match std::str::from_utf8(bytes) {
        Ok(s) if s.chars().all(|c| !c.is_control()) => show_text(s),
        _ => {
            let shown = bytes.get(..SHOWN_BYTES).unwrap_or(bytes);
            let hex: String = shown.iter().map(|b| format!("{b:02x}")).collect();
            if shown.len() < bytes.len() {
                format!("0x{hex}… ({} bytes)", bytes.len())
            } else {
                format!("0x{hex}")
            }
        }
    }
}

/// `Result` with annals' [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::expect::Query;

    #[test]
    fn predicates_look_inside_batch_parts() {
        let condition = AppendCondition::new(Query::tags(["t"]), Some(Position(3)));
        let inner = Error::condition_failed(FailedCondition::Events(condition.clone()), "x");
        let err = Error::in_part(2, inner);
        assert_eq!(err.part(), Some(2));
        assert!(err.is_condition_failed() && !err.is_invalid_input());
        assert_eq!(
            err.failed_condition(),
            Some(&FailedCondition::Events(condition))
        );
        let corrupt = Error::in_part(
            0,
            Error::corruption(CorruptionAt::Position(Position(9)), "y"),
        );
        assert!(corrupt.is_corruption());
        assert_eq!(
            corrupt.corruption_at(),
            Some(&CorruptionAt::Position(Position(9)))
        );
        assert!(Error::in_part(1, Error::Closed).is_closed());
        let id = StreamId::new("s").expect("a valid id");
        assert!(Error::in_part(1, Error::StreamNotFound(id)).is_stream_not_found());
        let gone = Error::in_part(0, Error::unavailable("connecting", "refused"));
        assert!(gone.is_unavailable() && !gone.is_outcome_unknown());
        let unknown = Error::outcome_unknown("committing", "connection lost").in_context("x");
        assert!(unknown.is_outcome_unknown() && !unknown.is_unavailable());
        assert_eq!(unknown.to_string(), "outcome unknown: x: committing");
        assert_eq!(Error::Closed.part(), None);
        assert_eq!(Error::Closed.invalid_reason(), None);
    }

    #[test]
    fn context_keeps_the_fields() {
        let err = Error::in_part(1, Error::limit(Limit::Tags, 64, 65, "event e has 65 tags"))
            .in_context("importing line 3");
        assert_eq!(err.part(), Some(1));
        assert_eq!(
            err.invalid_reason(),
            Some(InvalidReason::Limit {
                limit: Limit::Tags,
                max: 64,
                actual: 65
            })
        );
        assert_eq!(
            err.to_string(),
            "batch part 1 failed: invalid input: importing line 3: event e has 65 tags"
        );
    }
}
