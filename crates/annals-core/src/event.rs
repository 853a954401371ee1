//! Streams, events and their numbering (SPEC D1–D3).

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::backend::Limits;
use crate::error::{Error, Field, Limit, Result, show_text};

/// Longest stream id, in bytes (\[D1\]).
pub const MAX_STREAM_ID_BYTES: usize = 1024;
/// Longest event type or tag, in bytes (\[D2\]).
pub const MAX_NAME_BYTES: usize = 255;
/// Most tags on one event (\[D2\]).
pub const MAX_TAGS: usize = 64;

/// The id of a stream: UTF-8, 1 to 1024 bytes, no NUL byte (\[D1\]).
///
/// Every way to make one checks it — [`StreamId::new`], `TryFrom` and
/// `Deserialize` (it deserializes from a string and refuses an invalid
/// one) — so a `StreamId` value is always valid.
///
/// ```
/// use annals_core::StreamId;
/// let id = StreamId::new("order-42")?;
/// assert_eq!(id.as_str(), "order-42");
/// assert!(StreamId::new("").is_err());
/// # Ok::<(), annals_core::Error>(())
/// ```
///
/// Cloning one is cheap (a shared, reference-counted string): the events
/// of a page read from one stream share their stream id.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize)]
#[serde(try_from = "String")]
pub struct StreamId(Arc<str>);

impl StreamId {
    /// A stream id, checked against \[D1\].
    pub fn new(id: impl Into<String>) -> Result<Self> {
        let id = id.into();
        check_stream_id(&id)?;
        Ok(StreamId(id.into()))
    }

    /// The id as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The id's bytes.
    pub fn as_bytes(&self) -> &[u8] {
        self.0.as_bytes()
    }
}

impl Serialize for StreamId {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl fmt::Display for StreamId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for StreamId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.0)
    }
}

impl TryFrom<&str> for StreamId {
    type Error = Error;
    fn try_from(value: &str) -> Result<Self> {
        StreamId::new(value)
    }
}

impl TryFrom<String> for StreamId {
    type Error = Error;
    fn try_from(value: String) -> Result<Self> {
        StreamId::new(value)
    }
}

impl AsRef<str> for StreamId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

/// Checks a stream id against \[D1\]: what every door that takes or stores
/// one calls.
pub(crate) fn check_stream_id(id: &str) -> Result<()> {
    check_name("stream id", Field::StreamId, id)
}

/// Checks a name — a stream id (\[D1\]), an event type or a tag (\[D2\]), also
/// in a query — `what` and `field` say which: 1 to the limit's bytes, no
/// NUL.
pub(crate) fn check_name(what: &str, field: Field, value: &str) -> Result<()> {
    let (limit, max) = match field {
        Field::StreamId => (Limit::StreamIdBytes, MAX_STREAM_ID_BYTES),
        _ => (Limit::NameBytes, MAX_NAME_BYTES),
    };
    if value.is_empty() {
        return Err(Error::empty(field, format!("{what} is empty")));
    }
    if value.len() > max {
        return Err(Error::limit(
            limit,
            max,
            value.len(),
            format!(
                "{what} {} is {} bytes, more than the limit of {max}",
                show_text(value),
                value.len()
            ),
        ));
    }
    if value.contains('\0') {
        return Err(Error::malformed(
            field,
            format!("{what} {} contains a NUL byte", show_text(value)),
        ));
    }
    Ok(())
}

/// A stream's version: the number of an event within its stream; a new
/// stream's first event is 0 (\[D3\]).
#[derive(
    Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Debug, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct Version(pub u64);

/// A global position in the log; the store's first event is 1 and
/// `Position(0)` means "before everything" (\[D3\]).
#[derive(
    Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Debug, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct Position(pub u64);

impl Version {
    /// The first version of a stream.
    pub const FIRST: Version = Version(0);
    /// The largest version; as a backward `from` it means "from the end".
    pub const MAX: Version = Version(u64::MAX);
}

impl Position {
    /// Before every event.
    pub const START: Position = Position(0);
    /// The largest position; as a backward `from` it means "from the end".
    pub const MAX: Position = Position(u64::MAX);
    /// The position after this one (saturating).
    pub fn next(self) -> Position {
        Position(self.0.saturating_add(1))
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A UTC instant in microseconds since the Unix epoch.
#[derive(
    Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Debug, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct Timestamp(pub u64);

impl Timestamp {
    /// The latest time annals records: 9999-12-31T23:59:59.999999Z, the
    /// last instant RFC 3339 (and most tools) can show. No clock gives a
    /// later one before the year 10000, so a later one read from disk is
    /// damage.
    pub const MAX: Timestamp = Timestamp(253_402_300_799_999_999);

    /// The current time (0 if the clock is before 1970).
    pub fn now() -> Timestamp {
        let micros = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_micros())
            .unwrap_or(0);
        Timestamp(u64::try_from(micros).unwrap_or(u64::MAX))
    }

    /// Microseconds since the Unix epoch.
    pub fn as_micros(self) -> u64 {
        self.0
    }

    /// As a `SystemTime`.
    pub fn to_system_time(self) -> SystemTime {
        UNIX_EPOCH + Duration::from_micros(self.0)
    }
}

/// An event to append (\[D2\]). Build it with [`NewEvent::builder`]; its id is
/// a UUIDv7 made when it is built, so a retry of the same value carries the
/// same id (which is what makes retries idempotent, SPEC A5).
///
/// ```
/// use annals_core::NewEvent;
/// let event = NewEvent::builder("OrderPlaced")
///     .data(br#"{"total":42}"#.to_vec())
///     .tag("customer:7")
///     .build();
/// assert_eq!(event.event_type, "OrderPlaced");
/// assert_eq!(event.event_id.get_version_num(), 7);
/// ```
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct NewEvent {
    /// The event's id, unique per event by convention.
    pub event_id: Uuid,
    /// The event's type, 1 to 255 bytes, no NUL.
    pub event_type: String,
    /// The payload.
    pub data: Vec<u8>,
    /// Metadata bytes.
    pub metadata: Vec<u8>,
    /// 0 to 64 distinct tags, each 1 to 255 bytes, no NUL.
    pub tags: Vec<String>,
}

impl NewEvent {
    /// Starts building an event of the given type.
    pub fn builder(event_type: impl Into<String>) -> NewEventBuilder {
        NewEventBuilder {
            event_id: None,
            event_type: event_type.into(),
            data: Vec::new(),
            metadata: Vec::new(),
            tags: Vec::new(),
        }
    }

    /// Bytes this event counts against `max_event_bytes` and
    /// `max_append_bytes`: its data plus its metadata.
    pub fn payload_bytes(&self) -> usize {
        self.data.len().saturating_add(self.metadata.len())
    }

    /// Checks the event against \[D2\] and `limits`.
    pub fn validate(&self, limits: &Limits) -> Result<()> {
        let in_event = |e: Error| e.in_context(format_args!("event {}", self.event_id));
        check_name("event type", Field::EventType, &self.event_type).map_err(in_event)?;
        if self.tags.len() > MAX_TAGS {
            return Err(Error::limit(
                Limit::Tags,
                MAX_TAGS,
                self.tags.len(),
                format!(
                    "event {} has {} tags, more than the limit of {MAX_TAGS}",
                    self.event_id,
                    self.tags.len()
                ),
            ));
        }
        for (i, tag) in self.tags.iter().enumerate() {
            check_name("tag", Field::Tag, tag).map_err(in_event)?;
            if self.tags[..i].contains(tag) {
                return Err(Error::duplicate(
                    Field::Tag,
                    format!(
                        "event {} carries the tag {} twice",
                        self.event_id,
                        show_text(tag)
                    ),
                ));
            }
        }
        if self.payload_bytes() > limits.max_event_bytes {
            return Err(Error::limit(
                Limit::EventBytes,
                limits.max_event_bytes,
                self.payload_bytes(),
                format!(
                    "event {} has {} bytes of data and metadata, more than max_event_bytes = {}",
                    self.event_id,
                    self.payload_bytes(),
                    limits.max_event_bytes
                ),
            ));
        }
        Ok(())
    }
}

/// Builds a [`NewEvent`].
#[derive(Clone, Debug)]
#[must_use]
pub struct NewEventBuilder {
    event_id: Option<Uuid>,
    event_type: String,
    data: Vec<u8>,
    metadata: Vec<u8>,
    tags: Vec<String>,
}

impl NewEventBuilder {
    /// Uses the caller's id instead of a generated UUIDv7.
    pub fn id(mut self, id: Uuid) -> Self {
        self.event_id = Some(id);
        self
    }
    /// Sets the payload.
    pub fn data(mut self, data: impl Into<Vec<u8>>) -> Self {
        self.data = data.into();
        self
    }
    /// Sets the metadata.
    pub fn metadata(mut self, metadata: impl Into<Vec<u8>>) -> Self {
        self.metadata = metadata.into();
        self
    }
    /// Adds a tag.
    pub fn tag(mut self, tag: impl Into<String>) -> Self {
        self.tags.push(tag.into());
        self
    }
    /// Adds several tags.
    pub fn tags<I, T>(mut self, tags: I) -> Self
    where
        I: IntoIterator<Item = T>,
        T: Into<String>,
    {
        self.tags.extend(tags.into_iter().map(Into::into));
        self
    }
    /// The event; its id is generated now (UUIDv7) unless one was given.
    /// Validation happens when it is appended, against the store's limits.
    pub fn build(self) -> NewEvent {
        NewEvent {
            event_id: self.event_id.unwrap_or_else(Uuid::now_v7),
            event_type: self.event_type,
            data: self.data,
            metadata: self.metadata,
            tags: self.tags,
        }
    }
}

/// An event as stored: the [`NewEvent`] byte for byte, plus where and when
/// it was recorded (\[D3\]).
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct RecordedEvent {
    /// The stream it belongs to.
    pub stream_id: StreamId,
    /// Its version within the stream.
    pub stream_version: Version,
    /// Its global position.
    pub position: Position,
    /// When it was committed; never decreases along positions.
    pub recorded_at: Timestamp,
    /// The event's id.
    pub event_id: Uuid,
    /// The event's type.
    pub event_type: String,
    /// The payload.
    pub data: Vec<u8>,
    /// Metadata bytes.
    pub metadata: Vec<u8>,
    /// Its tags, in the order given.
    pub tags: Vec<String>,
}

impl RecordedEvent {
    /// Whether the event carries `tag`.
    pub fn has_tag(&self, tag: &str) -> bool {
        self.tags.iter().any(|t| t == tag)
    }
}
