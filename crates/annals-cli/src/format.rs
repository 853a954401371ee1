//! How events are shown: one JSON object per line (`--json`, and the lines
//! of an export), or a table for people.

use annals::{NewEvent, RecordedEvent, StreamId, Uuid};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::fail::{Fail, Failure};

/// Bytes (event data or metadata) as they appear in JSON: exactly one of
/// the three fields, or none for empty bytes.
///
/// - `json`: the bytes are one JSON value on one line, kept byte for byte;
/// - `text`: other UTF-8 text;
/// - `base64`: anything else (standard alphabet, padded).
#[derive(Serialize, Deserialize, Default, Debug)]
pub struct Bytes {
    #[serde(skip_serializing_if = "Option::is_none")]
    json: Option<Box<RawValue>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    text: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    base64: Option<String>,
}

impl Bytes {
    /// Shows `bytes` in the most readable of the three forms that keeps them
    /// exactly.
    pub fn new(bytes: &[u8]) -> Bytes {
        if bytes.is_empty() {
            return Bytes::default();
        }
        let one_line = !bytes.contains(&b'\n') && !bytes.contains(&b'\r');
        if one_line
            && let Ok(raw) = serde_json::from_slice::<Box<RawValue>>(bytes)
            && raw.get().as_bytes() == bytes
        {
            return Bytes {
                json: Some(raw),
                ..Bytes::default()
            };
        }
        match std::str::from_utf8(bytes) {
            Ok(text) => Bytes {
                text: Some(text.to_string()),
                ..Bytes::default()
            },
            Err(_) => Bytes {
                base64: Some(BASE64.encode(bytes)),
                ..Bytes::default()
            },
        }
    }

    /// The bytes back.
    pub fn to_vec(&self, what: &str) -> Result<Vec<u8>, Failure> {
        match (&self.json, &self.text, &self.base64) {
            (None, None, None) => Ok(Vec::new()),
            (Some(json), None, None) => Ok(json.get().as_bytes().to_vec()),
            (None, Some(text), None) => Ok(text.as_bytes().to_vec()),
            (None, None, Some(b64)) => BASE64
                .decode(b64)
                .map_err(|e| Failure::input(format!("{what}.base64 is not base64: {e}"))),
            _ => Err(Failure::input(format!(
                "{what} has more than one of json, text and base64"
            ))),
        }
    }

    /// A one-line preview of at most `max` characters.
    fn preview(&self, max: usize) -> String {
        let full = match (&self.json, &self.text, &self.base64) {
            (Some(json), _, _) => json.get().to_string(),
            (_, Some(text), _) => format!("{text:?}"),
            (_, _, Some(b64)) => format!("base64:{b64}"),
            _ => String::new(),
        };
        if full.chars().count() <= max {
            full
        } else {
            let cut: String = full.chars().take(max.saturating_sub(1)).collect();
            format!("{cut}…")
        }
    }
}

/// One event as a JSON object: the lines of `--json` output and of an
/// export (format 1, see the README's "Command line" section).
#[derive(Serialize, Deserialize, Debug)]
pub struct EventLine {
    /// The stream.
    pub stream: String,
    /// Its version in the stream.
    pub version: u64,
    /// Its position in the global log.
    pub position: u64,
    /// The event's id.
    pub event_id: Uuid,
    /// The event type.
    #[serde(rename = "type")]
    pub event_type: String,
    /// Its tags.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    /// When it was recorded, RFC 3339 in UTC.
    pub recorded_at: String,
    /// Its data.
    #[serde(default)]
    pub data: Bytes,
    /// Its metadata.
    #[serde(default, skip_serializing_if = "Bytes::is_empty")]
    pub metadata: Bytes,
}

impl Bytes {
    fn is_empty(&self) -> bool {
        self.json.is_none() && self.text.is_none() && self.base64.is_none()
    }
}

impl EventLine {
    /// The line of a recorded event.
    pub fn new(event: &RecordedEvent) -> EventLine {
        EventLine {
            stream: event.stream_id.as_str().to_string(),
            version: event.stream_version.0,
            position: event.position.0,
            event_id: event.event_id,
            event_type: event.event_type.clone(),
            tags: event.tags.clone(),
            recorded_at: timestamp(event),
            data: Bytes::new(&event.data),
            metadata: Bytes::new(&event.metadata),
        }
    }

    /// The event to append again: same id, type, tags, data and metadata.
    pub fn to_new_event(&self) -> Result<(StreamId, NewEvent), Failure> {
        let stream = StreamId::new(self.stream.clone()).fail()?;
        let event = NewEvent::builder(self.event_type.clone())
            .id(self.event_id)
            .tags(self.tags.iter().cloned())
            .data(self.data.to_vec("data")?)
            .metadata(self.metadata.to_vec("metadata")?)
            .build();
        Ok((stream, event))
    }

    /// The line as JSON text (no newline).
    pub fn to_json(&self) -> Result<String, Failure> {
        serde_json::to_string(self).map_err(|e| Failure::io("encoding an event as JSON", e))
    }
}

/// `recorded_at` in RFC 3339, to the microsecond.
fn timestamp(event: &RecordedEvent) -> String {
    humantime::format_rfc3339_micros(event.recorded_at.to_system_time()).to_string()
}

/// The header of the event table.
pub fn table_header() -> String {
    format!(
        "{:>9}  {:<24} {:>7}  {:<20} {:<27} {:<16} DATA",
        "POSITION", "STREAM", "VERSION", "TYPE", "RECORDED AT", "TAGS"
    )
}

/// One event as a table row.
pub fn table_row(event: &RecordedEvent) -> String {
    let recorded = humantime::format_rfc3339_millis(event.recorded_at.to_system_time()).to_string();
    format!(
        "{:>9}  {:<24} {:>7}  {:<20} {:<27} {:<16} {}",
        event.position.0,
        event.stream_id.as_str(),
        event.stream_version.0,
        event.event_type,
        recorded,
        event.tags.join(","),
        Bytes::new(&event.data).preview(60)
    )
}
