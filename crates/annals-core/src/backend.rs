//! The `LogBackend` trait every storage backend implements, and the values
//! it takes and returns.

use std::collections::HashSet;
use std::fmt;

use async_trait::async_trait;
use tokio::sync::watch;

use crate::error::{Error, Field, InvalidReason, Limit, Result, show_bytes, show_text};
use crate::event::{NewEvent, Position, RecordedEvent, StreamId, Version, check_stream_id};
use crate::expect::{
    AppendCondition, AuxCondition, AuxWrite, ExpectedVersion, Query, validate_aux_key,
};
use crate::verify::{VerifyProgress, VerifyReport};

/// When an append may return (\[D5\]).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Default)]
pub enum Durability {
    /// Only after its events are on stable storage (the default of every
    /// persistent backend).
    #[default]
    Immediate,
    /// Possibly before: a crash may lose a suffix of the latest appends,
    /// never part of one and never anything before them; lost positions are
    /// never handed out again.
    Relaxed,
}

impl std::str::FromStr for Durability {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "immediate" => Ok(Durability::Immediate),
            "relaxed" => Ok(Durability::Relaxed),
            other => Err(Error::malformed(
                Field::StoreOption,
                format!(
                    "durability {} is not one of \"immediate\", \"relaxed\"",
                    show_text(other)
                ),
            )),
        }
    }
}

/// Size limits of a store (\[D2\], \[R1\]). The defaults are the SPEC's.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct Limits {
    /// Most bytes of `data` + `metadata` in one event (16 MiB).
    pub max_event_bytes: usize,
    /// Most events in one append or batch (10 000); each aux write of it
    /// (or of an aux-only write) counts as one too (\[X1\]).
    pub max_append_events: usize,
    /// Most bytes of `data` + `metadata` in one append or batch (64 MiB),
    /// with the key and value bytes of its aux writes (\[X1\]).
    pub max_append_bytes: usize,
    /// Largest `count` of one read (10 000).
    pub max_read_count: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_event_bytes: 16 << 20,
            max_append_events: 10_000,
            max_append_bytes: 64 << 20,
            max_read_count: 10_000,
        }
    }
}

impl Limits {
    /// Checks that every limit is at least 1.
    pub fn validate(&self) -> Result<()> {
        for (name, value) in [
            ("max_event_bytes", self.max_event_bytes),
            ("max_append_events", self.max_append_events),
            ("max_append_bytes", self.max_append_bytes),
            ("max_read_count", self.max_read_count),
        ] {
            if value == 0 {
                return Err(Error::malformed(
                    Field::StoreOption,
                    format!("limit {name} is 0"),
                ));
            }
        }
        Ok(())
    }

    /// Checks the `limit` of a listing (`list_streams`, `aux_scan`, …):
    /// 1 to `max_read_count`.
    pub fn check_page_limit(&self, what: &str, limit: usize) -> Result<()> {
        if limit == 0 || limit > self.max_read_count {
            return Err(Error::limit(
                Limit::ReadCount,
                self.max_read_count,
                limit,
                format!(
                    "{what} limit {limit} is not between 1 and max_read_count = {}",
                    self.max_read_count
                ),
            ));
        }
        Ok(())
    }

    /// Checks a read's `count` against \[R1\].
    pub fn check_read_count(&self, count: usize) -> Result<()> {
        if count == 0 || count > self.max_read_count {
            return Err(Error::limit(
                Limit::ReadCount,
                self.max_read_count,
                count,
                format!(
                    "read count {count} is not between 1 and max_read_count = {}",
                    self.max_read_count
                ),
            ));
        }
        Ok(())
    }
}

/// The options every backend takes when it opens a store.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct StoreConfig {
    /// When appends return.
    pub durability: Durability,
    /// Size limits.
    pub limits: Limits,
}

impl StoreConfig {
    /// The options every backend takes ([`StoreConfig::apply_param`]), in
    /// the order error messages list them.
    pub const PARAMS: [&'static str; 5] = [
        "durability",
        "max_event_bytes",
        "max_append_events",
        "max_append_bytes",
        "max_read_count",
    ];

    /// The [`Error::InvalidInput`] for an option `key` that neither
    /// [`StoreConfig::PARAMS`] nor the `backend`'s `own` options name; it
    /// lists every known one.
    ///
    /// ```
    /// use annals_core::StoreConfig;
    /// let err = StoreConfig::unknown_param("redb", "cache", &["cache_size"]);
    /// assert!(err.to_string().contains("unknown option \"cache\" for the redb backend"));
    /// assert!(err.to_string().contains("durability") && err.to_string().contains("cache_size"));
    /// ```
    pub fn unknown_param(backend: &str, key: &str, own: &[&str]) -> Error {
        let known: Vec<&str> = Self::PARAMS.iter().chain(own).copied().collect();
        Error::invalid(
            InvalidReason::Unknown(Field::StoreOption),
            format!(
                "unknown option {} for the {backend} backend; known options: {}",
                show_text(key),
                known.join(", ")
            ),
        )
    }

    /// Applies one option given as text (a URL query parameter): `durability`
    /// (`immediate` | `relaxed`), `max_event_bytes`, `max_append_events`,
    /// `max_append_bytes` or `max_read_count`. Answers `Ok(false)` for a key
    /// it does not know, so a backend can try its own options next.
    ///
    /// ```
    /// use annals_core::{Durability, StoreConfig};
    /// let mut config = StoreConfig::default();
    /// assert!(config.apply_param("durability", "relaxed")?);
    /// assert_eq!(config.durability, Durability::Relaxed);
    /// assert!(!config.apply_param("cache_size", "1")?);
    /// assert!(config.apply_param("max_read_count", "ten").is_err());
    /// # Ok::<(), annals_core::Error>(())
    /// ```
    pub fn apply_param(&mut self, key: &str, value: &str) -> Result<bool> {
        let limit = match key {
            "durability" => {
                self.durability = value.parse()?;
                return Ok(true);
            }
            "max_event_bytes" => &mut self.limits.max_event_bytes,
            "max_append_events" => &mut self.limits.max_append_events,
            "max_append_bytes" => &mut self.limits.max_append_bytes,
            "max_read_count" => &mut self.limits.max_read_count,
            _ => return Ok(false),
        };
        *limit = parse_param(key, value)?;
        self.limits.validate()?;
        Ok(true)
    }
}

/// Parses an option's value, naming the option and value when it is not a
/// valid `T`.
pub fn parse_param<T: std::str::FromStr>(key: &str, value: &str) -> Result<T> {
    value.parse().map_err(|_| {
        Error::malformed(
            Field::StoreOption,
            format!(
                "option {key} = {} is not a valid {}",
                show_text(value),
                std::any::type_name::<T>()
            ),
        )
    })
}

/// Which way a read walks.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Default)]
pub enum Direction {
    /// Ascending versions or positions.
    #[default]
    Forward,
    /// Descending versions or positions.
    Backward,
}

/// One page of a read (\[D6\]).
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct Page {
    /// The events, in the read's order.
    pub events: Vec<RecordedEvent>,
    /// The last position committed in the snapshot the page was read from
    /// (`Position(0)` for an empty store): pass it as the `after` of an
    /// [`AppendCondition`] when deciding from this page.
    pub head: Position,
}

/// Where an append landed (\[A1\]).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct AppendResult {
    /// Version of the first event written.
    pub first_version: Version,
    /// Version of the last event written.
    pub last_version: Version,
    /// Position of the first event written.
    pub first_position: Position,
    /// Position of the last event written.
    pub last_position: Position,
}

/// A stream as listed by [`LogBackend::list_streams`].
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct StreamInfo {
    /// The stream.
    pub id: StreamId,
    /// Its last version.
    pub last_version: Version,
}

/// An append with everything it may carry: an expectation, a DCB condition
/// (\[A8\]) and aux writes that commit with it (\[X2\]).
///
/// ```
/// use annals_core::{Append, AuxWrite, ExpectedVersion, NewEvent, StreamId};
/// let append = Append::new(
///     StreamId::new("cart-1")?,
///     ExpectedVersion::NoStream,
///     vec![NewEvent::builder("CartOpened").build()],
/// )
/// .aux(AuxWrite::put("checkpoint/projector", 7u64.to_be_bytes()));
/// assert_eq!(append.aux.len(), 1);
/// # Ok::<(), annals_core::Error>(())
/// ```
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Append {
    /// The stream to append to.
    pub stream: StreamId,
    /// What the stream's version must be.
    pub expected: ExpectedVersion,
    /// The events, 1 to `max_append_events`.
    pub events: Vec<NewEvent>,
    /// An optional DCB condition.
    pub condition: Option<AppendCondition>,
    /// Aux writes committed atomically with the events.
    pub aux: Vec<AuxWrite>,
}

impl Append {
    /// An append with no condition and no aux writes.
    pub fn new(stream: StreamId, expected: ExpectedVersion, events: Vec<NewEvent>) -> Self {
        Append {
            stream,
            expected,
            events,
            condition: None,
            aux: Vec::new(),
        }
    }
    /// Adds a DCB condition.
    #[must_use]
    pub fn condition(mut self, condition: AppendCondition) -> Self {
        self.condition = Some(condition);
        self
    }
    /// Adds an aux write.
    #[must_use]
    pub fn aux(mut self, write: AuxWrite) -> Self {
        self.aux.push(write);
        self
    }

    /// Checks the append against \[D1\], \[D2\], \[A7\], \[R6\] and \[X1\].
    pub fn validate(&self, limits: &Limits) -> Result<()> {
        // A StreamId is valid however it was made; checked again as the
        // door every backend's write path goes through.
        check_stream_id(self.stream.as_str())?;
        if self.events.is_empty() {
            return Err(Error::empty(
                Field::Events,
                format!("append to stream {} has no events", self.stream),
            ));
        }
        validate_write(
            "append",
            [self.events.as_slice()],
            Parts::One,
            &self.aux,
            limits,
        )?;
        validate_condition(self.condition.as_ref())
    }
}

/// One part of an [`append_batch`](LogBackend::append_batch).
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct BatchPart {
    /// The stream.
    pub stream: StreamId,
    /// What its version must be.
    pub expected: ExpectedVersion,
    /// Its events (at least one).
    pub events: Vec<NewEvent>,
}

impl BatchPart {
    /// A part.
    pub fn new(stream: StreamId, expected: ExpectedVersion, events: Vec<NewEvent>) -> Self {
        BatchPart {
            stream,
            expected,
            events,
        }
    }
}

/// An all-or-nothing write to several streams (\[A6\]), with an optional
/// condition and aux writes.
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct Batch {
    /// The parts, each to a different stream.
    pub parts: Vec<BatchPart>,
    /// An optional DCB condition over the whole batch.
    pub condition: Option<AppendCondition>,
    /// Aux writes committed with the batch.
    pub aux: Vec<AuxWrite>,
}

impl Batch {
    /// A batch of these parts.
    pub fn new(parts: Vec<BatchPart>) -> Self {
        Batch {
            parts,
            condition: None,
            aux: Vec::new(),
        }
    }
    /// Adds a part.
    #[must_use]
    pub fn part(
        mut self,
        stream: StreamId,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
    ) -> Self {
        self.parts.push(BatchPart::new(stream, expected, events));
        self
    }
    /// Adds a DCB condition.
    #[must_use]
    pub fn condition(mut self, condition: AppendCondition) -> Self {
        self.condition = Some(condition);
        self
    }
    /// Adds an aux write.
    #[must_use]
    pub fn aux(mut self, write: AuxWrite) -> Self {
        self.aux.push(write);
        self
    }

    /// Checks the batch against \[A6\] and the limits of \[D2\].
    pub fn validate(&self, limits: &Limits) -> Result<()> {
        if self.parts.is_empty() {
            return Err(Error::empty(Field::BatchParts, "append_batch has no parts"));
        }
        let mut streams = HashSet::new();
        for (i, part) in self.parts.iter().enumerate() {
            check_stream_id(part.stream.as_str()).map_err(|e| Error::in_part(i, e))?;
            if part.events.is_empty() {
                return Err(Error::in_part(
                    i,
                    Error::empty(
                        Field::Events,
                        format!("batch part {i} (stream {}) has no events", part.stream),
                    ),
                ));
            }
            if !streams.insert(&part.stream) {
                return Err(Error::in_part(
                    i,
                    Error::duplicate(
                        Field::StreamId,
                        format!("stream {} appears in two parts of one batch", part.stream),
                    ),
                ));
            }
        }
        validate_write(
            "append",
            self.parts.iter().map(|p| p.events.as_slice()),
            Parts::Batch,
            &self.aux,
            limits,
        )?;
        validate_condition(self.condition.as_ref())
    }
}

/// Whether the events of a write are one append's or a batch's parts.
#[derive(Clone, Copy)]
enum Parts {
    One,
    /// An error about an event names its part (\[A6\]).
    Batch,
}

/// Checks what one write carries — the events of an append or of a
/// batch's parts, and its aux writes: each event (\[D2\]) and aux write
/// (\[X1\]), no event id or aux key twice, and the count and byte limits over
/// all of them (an aux write counts as one, with its key and value bytes,
/// \[X1\]). `what` names the write in messages.
fn validate_write<'a>(
    what: &str,
    groups: impl IntoIterator<Item = &'a [NewEvent]> + Clone,
    parts: Parts,
    aux: &[AuxWrite],
    limits: &Limits,
) -> Result<()> {
    let events: usize = groups.clone().into_iter().map(<[NewEvent]>::len).sum();
    let count = events.saturating_add(aux.len());
    if count > limits.max_append_events {
        let counted = match (events, aux.len()) {
            (events, 0) => format!("{events} events"),
            (0, writes) => format!("{writes} aux writes"),
            (events, writes) => format!("{count} events and aux writes ({events} + {writes})"),
        };
        return Err(Error::limit(
            Limit::AppendEvents,
            limits.max_append_events,
            count,
            format!(
                "{what} has {counted}, more than max_append_events = {}",
                limits.max_append_events
            ),
        ));
    }
    let mut bytes = 0usize;
    let mut ids = HashSet::with_capacity(events);
    for (part, events) in groups.into_iter().enumerate() {
        let in_part = |e: Error| match parts {
            Parts::One => e,
            Parts::Batch => Error::in_part(part, e),
        };
        for event in events {
            event.validate(limits).map_err(in_part)?;
            bytes = bytes.saturating_add(event.payload_bytes());
            if !ids.insert(event.event_id) {
                return Err(in_part(Error::duplicate(
                    Field::EventId,
                    format!("event id {} appears twice in one {what}", event.event_id),
                )));
            }
        }
    }
    let mut keys = HashSet::with_capacity(aux.len());
    for w in aux {
        validate_aux_write(w, limits)?;
        if !keys.insert(w.key.as_slice()) {
            return Err(Error::duplicate(
                Field::AuxKey,
                format!(
                    "aux key {} is written twice in one write",
                    show_bytes(&w.key)
                ),
            ));
        }
        bytes = bytes.saturating_add(w.payload_bytes());
    }
    if bytes > limits.max_append_bytes {
        let counted = if aux.is_empty() {
            "data and metadata"
        } else if events == 0 {
            "aux keys and values"
        } else {
            "data, metadata, aux keys and values"
        };
        return Err(Error::limit(
            Limit::AppendBytes,
            limits.max_append_bytes,
            bytes,
            format!(
                "{what} has {bytes} bytes of {counted}, more than max_append_bytes = {}",
                limits.max_append_bytes
            ),
        ));
    }
    Ok(())
}

fn validate_condition(condition: Option<&AppendCondition>) -> Result<()> {
    match condition {
        Some(c) => c.fail_if_events_match.validate(),
        None => Ok(()),
    }
}

/// Checks one aux write against \[X1\]: its key, and its value and the value
/// its condition compares with, each at most `max_event_bytes`.
fn validate_aux_write(w: &AuxWrite, limits: &Limits) -> Result<()> {
    validate_aux_key(&w.key)?;
    let compared = match &w.condition {
        AuxCondition::Equals(v) => Some(("the value compared with", v)),
        _ => None,
    };
    for (which, v) in w
        .value
        .as_ref()
        .map(|v| ("the value", v))
        .into_iter()
        .chain(compared)
    {
        if v.len() > limits.max_event_bytes {
            return Err(Error::limit(
                Limit::AuxValueBytes,
                limits.max_event_bytes,
                v.len(),
                format!(
                    "{which} of aux key {} has {} bytes, more than max_event_bytes = {}",
                    show_bytes(&w.key),
                    v.len(),
                    limits.max_event_bytes
                ),
            ));
        }
    }
    Ok(())
}

/// Checks an aux-only write against \[X1\]: each key and value, no key
/// twice, and the count and bytes of all of them against
/// `max_append_events` and `max_append_bytes`.
pub fn validate_aux_writes(writes: &[AuxWrite], limits: &Limits) -> Result<()> {
    validate_write("aux write", [], Parts::One, writes, limits)
}

/// What a backend offers (\[C1\]). A capability it lacks answers
/// [`Error::Unsupported`], and the conformance suite reports its cases as
/// ignored.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Default)]
#[non_exhaustive]
pub struct Capabilities {
    /// Data survives close and reopen (M5).
    pub persistent: bool,
    /// `append_batch` (A6).
    pub append_batch: bool,
    /// Append conditions (A8).
    pub append_conditions: bool,
    /// `truncate_stream` (S3).
    pub truncate: bool,
    /// `delete_stream` (S4).
    pub delete: bool,
    /// `compact` reclaims space (M1, M2).
    pub compact: bool,
    /// The aux space and aux writes with appends (X1, X2).
    pub aux: bool,
    /// `Durability::Immediate` is honoured (D5).
    pub immediate_durability: bool,
    /// [`LogBackend::verify`]: a full integrity check.
    pub verify: bool,
}

impl Capabilities {
    /// No optional capability.
    pub const NONE: Capabilities = Capabilities {
        persistent: false,
        append_batch: false,
        append_conditions: false,
        truncate: false,
        delete: false,
        compact: false,
        aux: false,
        immediate_durability: false,
        verify: false,
    };

    /// Every capability.
    pub const ALL: Capabilities = Capabilities {
        persistent: true,
        append_batch: true,
        append_conditions: true,
        truncate: true,
        delete: true,
        compact: true,
        aux: true,
        immediate_durability: true,
        verify: true,
    };

    /// Every capability of a store that keeps nothing across reopen.
    pub const ALL_IN_MEMORY: Capabilities = Capabilities {
        persistent: false,
        immediate_durability: false,
        ..Capabilities::ALL
    };
}

/// Watches a store's head: the last committed position (\[R8\]). The value
/// seen never runs ahead of what reads return; `changed()` fails once the
/// store is closed.
pub type HeadWatch = watch::Receiver<Position>;

/// A new watch on `head` that starts at the current head: its `changed()`
/// waits for the next commit (or ends at close), not for an old one. What
/// a backend's [`LogBackend::watch_head`] hands out.
pub fn fresh_head_watch(head: &HeadWatch) -> HeadWatch {
    let mut watch = head.clone();
    watch.mark_unchanged();
    watch
}

fn unsupported<T>(what: &str) -> Result<T> {
    Err(Error::Unsupported(what.to_string()))
}

/// A storage backend for an append-only event log. Use it as
/// `Arc<dyn LogBackend>`.
///
/// What every method must do, clause by clause (the IDs in brackets below),
/// is the contract: [`docs/contract.md`](https://github.com/annals-rs/annals/blob/main/docs/contract.md) in the repository. The
/// conformance suite, crate `annals-backend-tests`, checks a backend
/// against it.
///
/// Optional capabilities ([`Capabilities`]) have default methods that answer
/// [`Error::Unsupported`]; a backend overrides those it offers.
#[async_trait]
pub trait LogBackend: Send + Sync + fmt::Debug {
    /// What this backend offers.
    fn capabilities(&self) -> Capabilities;

    /// The store's size limits.
    fn limits(&self) -> Limits;

    /// Appends `events` to `stream` if `expected` holds (\[A1\]–\[A5\]).
    async fn append(
        &self,
        stream: &StreamId,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
    ) -> Result<AppendResult> {
        self.append_with(Append::new(stream.clone(), expected, events))
            .await
    }

    /// Appends with everything an [`Append`] may carry: expectation,
    /// condition (\[A8\]) and aux writes (\[X2\]).
    async fn append_with(&self, append: Append) -> Result<AppendResult>;

    /// Appends to several streams, all or nothing (\[A6\]).
    async fn append_batch(&self, batch: Batch) -> Result<Vec<AppendResult>> {
        let _ = batch;
        unsupported("append_batch")
    }

    /// Reads a stream (\[R1\], \[R2\]).
    async fn read_stream(
        &self,
        stream: &StreamId,
        from: Version,
        count: usize,
        direction: Direction,
    ) -> Result<Page>;

    /// Reads the global log, optionally only events matching `query`
    /// (\[R3\]–\[R6\]).
    async fn read_all(
        &self,
        from: Position,
        count: usize,
        direction: Direction,
        query: Option<&Query>,
    ) -> Result<Page>;

    /// The stream's last version, or [`Error::StreamNotFound`] (\[S1\]).
    async fn stream_version(&self, stream: &StreamId) -> Result<Version>;

    /// Whether the stream exists (\[S1\]). The default asks
    /// [`stream_version`](LogBackend::stream_version).
    async fn stream_exists(&self, stream: &StreamId) -> Result<bool> {
        match self.stream_version(stream).await {
            Ok(_) => Ok(true),
            Err(e) if e.is_stream_not_found() => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Existing streams in byte order of their ids, after `after` (\[S2\]).
    async fn list_streams(&self, after: Option<&StreamId>, limit: usize)
    -> Result<Vec<StreamInfo>>;

    /// Deletes a stream if `expected` holds (\[S4\]).
    async fn delete_stream(&self, stream: &StreamId, expected: ExpectedVersion) -> Result<()> {
        let _ = (stream, expected);
        unsupported("delete_stream")
    }

    /// Removes the stream's events with a version below `before` (\[S3\]).
    async fn truncate_stream(&self, stream: &StreamId, before: Version) -> Result<()> {
        let _ = (stream, before);
        unsupported("truncate_stream")
    }

    /// Reclaims the space of truncated and deleted events (\[M1\]).
    async fn compact(&self) -> Result<()> {
        unsupported("compact")
    }

    /// Bytes the store holds on disk; 0 in memory (\[M2\]).
    async fn disk_bytes(&self) -> Result<u64>;

    /// Whether any event is readable (\[S5\]).
    async fn has_events(&self) -> Result<bool>;

    /// Ok on a usable store (\[M3\]).
    async fn health(&self) -> Result<()>;

    /// Closes the store: every later call on any handle is
    /// [`Error::Closed`] and head watches end (\[M4\]).
    async fn close(&self) -> Result<()>;

    /// A watch of the head (\[R8\]).
    fn watch_head(&self) -> Result<HeadWatch>;

    /// Checks the integrity of the whole store on one consistent view (an
    /// fsck): every record's checksum, gap-free stream versions, every index
    /// entry pointing at the right event, stream metadata agreeing with the
    /// log, no event beyond the head. Problems are in the report, not
    /// errors; an error means the check could not run. `progress` is called
    /// now and then with the number of records checked. Reads everything:
    /// O(n log n).
    async fn verify(&self, progress: Option<VerifyProgress>) -> Result<VerifyReport> {
        let _ = progress;
        unsupported("verify")
    }

    /// The aux value at `key` (\[X1\]).
    async fn aux_get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        let _ = key;
        unsupported("aux space")
    }

    /// Aux entries whose key starts with `prefix`, in key order, after
    /// `after` (\[X1\]).
    async fn aux_scan(
        &self,
        prefix: &[u8],
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        let _ = (prefix, after, limit);
        unsupported("aux space")
    }

    /// Aux writes alone, all or nothing, conditions checked (\[X2\]).
    async fn aux_write(&self, writes: Vec<AuxWrite>) -> Result<()> {
        let _ = writes;
        unsupported("aux space")
    }

    /// Puts `value` at `key` (\[X1\]).
    async fn aux_put(&self, key: &[u8], value: &[u8]) -> Result<()> {
        self.aux_write(vec![AuxWrite::put(key, value)]).await
    }

    /// Deletes `key` (\[X1\]).
    async fn aux_delete(&self, key: &[u8]) -> Result<()> {
        self.aux_write(vec![AuxWrite::delete(key)]).await
    }
}
