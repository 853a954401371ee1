//! How events are shown: one JSON object per line (`--json`, and the lines
//! of an export), or a table for people.

use annals::{NewEvent, RecordedEvent, StreamId, Timestamp, Uuid};
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
    rfc3339(event.recorded_at, 6)
}

/// Microseconds in a day.
const MICROS_PER_DAY: u64 = 86_400_000_000;

/// A timestamp in RFC 3339, UTC, with `digits` digits of the second's
/// fraction (0 to 6): `2026-11-24T00:24:20.048123Z`. Every `u64` of
/// microseconds has one: a year after 9999, which RFC 3339 cannot write
/// (and `humantime` fails on), is written with a sign and six digits, as
/// ISO 8601's expanded years and JavaScript's `toISOString` do:
/// `+010000-01-01T00:00:00.000000Z`. Stored timestamps are read from disk,
/// so the tool must show whatever is there.
pub fn rfc3339(at: Timestamp, digits: usize) -> String {
    let (days, micros_of_day) = (at.0 / MICROS_PER_DAY, at.0 % MICROS_PER_DAY);
    let (year, month, day) = civil_from_days(days);
    let seconds = micros_of_day / 1_000_000;
    let (hour, minute, second) = (seconds / 3600, seconds / 60 % 60, seconds % 60);
    let year = if year <= 9999 {
        format!("{year:04}")
    } else {
        format!("+{year:06}")
    };
    let mut text = format!("{year}-{month:02}-{day:02}T{hour:02}:{minute:02}:{second:02}");
    let digits = digits.min(6);
    if digits > 0 {
        let fraction = format!("{:06}", micros_of_day % 1_000_000);
        text.push('.');
        text.push_str(fraction.get(..digits).unwrap_or(&fraction));
    }
    text.push('Z');
    text
}

/// The proleptic Gregorian date `days` days after 1970-01-01 (Howard
/// Hinnant's `civil_from_days`, for days on or after the epoch).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    // Counted from 0000-03-01, so that the leap day ends each 4-year cycle.
    let z = days + 719_468;
    let era = z / 146_097;
    let day_of_era = z % 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_from_march = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_from_march + 2) / 5 + 1;
    let month = if month_from_march < 10 {
        month_from_march + 3
    } else {
        month_from_march - 9
    };
    let year = year_of_era + era * 400 + u64::from(month <= 2);
    (year, month, day)
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
    let recorded = rfc3339(event.recorded_at, 3);
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Random timestamps up to the end of year 9999 format exactly as
    /// `humantime` does; later ones, up to `u64::MAX`, as expanded years.
    #[test]
    fn timestamps_match_humantime_and_never_fail() {
        let limit = 253_402_300_800_000_000u64; // 10000-01-01T00:00:00Z
        let mut state = 0x9E37_79B9_7F4A_7C15u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let mut samples: Vec<u64> = vec![0, 1, 951_782_400_000_000, limit - 1];
        samples.extend((0..100_000).map(|_| next() % limit));
        for micros in &samples {
            let time = Timestamp(*micros).to_system_time();
            assert_eq!(
                rfc3339(Timestamp(*micros), 6),
                humantime::format_rfc3339_micros(time).to_string(),
                "{micros}"
            );
            assert_eq!(
                rfc3339(Timestamp(*micros), 3),
                humantime::format_rfc3339_millis(time).to_string(),
                "{micros}"
            );
        }
        assert_eq!(
            rfc3339(Timestamp(limit), 6),
            "+010000-01-01T00:00:00.000000Z"
        );
        assert_eq!(
            rfc3339(Timestamp(u64::MAX), 6),
            "+586524-01-19T08:01:49.551615Z"
        );
        for _ in 0..100_000 {
            let micros = limit + next() % (u64::MAX - limit);
            let text = rfc3339(Timestamp(micros), 6);
            assert!(text.starts_with('+') && text.ends_with('Z'), "{text}");
        }
    }
}
