//! The one error type of annals ([E1]).

use crate::event::{StreamId, Version};
use crate::expect::ExpectedVersion;

/// A boxed error of an engine, kept as the source of [`Error::Backend`].
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Everything that can go wrong in annals.
///
/// Messages say what was wrong and with which value. Match on the variant to
/// decide what to do; new variants may be added, so keep a `_` arm.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The input breaks the contract (a limit, an empty list, a bad id…);
    /// nothing was written.
    #[error("invalid input: {0}")]
    InvalidInput(String),

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
    #[error("append condition failed: {0}")]
    AppendConditionFailed(String),

    /// The stream does not exist (never written, or deleted).
    #[error("stream not found: {0}")]
    StreamNotFound(StreamId),

    /// One part of an `append_batch` failed; nothing of the batch was
    /// written. `part` is the index of the first failing part.
    #[error("batch part {part} failed: {source}")]
    BatchPart {
        /// Index of the first failing part.
        part: usize,
        /// Why it failed.
        #[source]
        source: Box<Error>,
    },

    /// Stored bytes are damaged: the message names the position or key.
    #[error("corruption: {0}")]
    Corruption(String),

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
}

fn display_actual(actual: &Option<Version>) -> String {
    match actual {
        Some(v) => v.to_string(),
        None => "no stream".to_string(),
    }
}

impl Error {
    /// An [`Error::Backend`] from an engine error and what annals was doing.
    pub fn backend(message: impl Into<String>, source: impl Into<BoxError>) -> Self {
        Error::Backend {
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

    /// The error itself, or for [`Error::BatchPart`] the error of the part.
    pub fn root(&self) -> &Error {
        match self {
            Error::BatchPart { source, .. } => source.root(),
            other => other,
        }
    }

    /// Whether this is (or wraps) an [`Error::WrongExpectedVersion`].
    pub fn is_wrong_expected_version(&self) -> bool {
        matches!(self.root(), Error::WrongExpectedVersion { .. })
    }
}

/// `Result` with annals' [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
