//! The record codec: every value annals stores is sealed as
//! `[format version][postcard payload][crc32c]`, where the checksum covers
//! the key too, so a damaged key or value is `Error::Corruption` naming
//! the key — never a panic, never a wrong event (SPEC M6).

use serde::{Deserialize, Serialize, de::DeserializeOwned};

use crate::error::{Error, Result};
use crate::event::{
    NewEvent, Position, RecordedEvent, StreamId, Timestamp, Version, check_stream_id,
};
use crate::kv::layout::{self, describe_key};
use uuid::Uuid;

/// The format version written in the first byte of every value.
pub const FORMAT_VERSION: u8 = 1;

fn checksum(key: &[u8], body: &[u8]) -> u32 {
    crc32c::crc32c_append(crc32c::crc32c(key), body)
}

/// Seals `payload` stored at `key`.
pub fn seal(key: &[u8], payload: &[u8]) -> Vec<u8> {
    let mut value = Vec::with_capacity(payload.len() + 5);
    value.push(FORMAT_VERSION);
    value.extend_from_slice(payload);
    let crc = checksum(key, &value);
    value.extend_from_slice(&crc.to_le_bytes());
    value
}

/// Checks a sealed value read at `key` and returns its payload.
pub fn unseal<'a>(key: &[u8], value: &'a [u8]) -> Result<&'a [u8]> {
    let Some(body_len) = value.len().checked_sub(4) else {
        return Err(corrupt(key, "value is shorter than its checksum"));
    };
    let (body, crc) = value.split_at(body_len);
    let stored = u32::from_le_bytes([crc[0], crc[1], crc[2], crc[3]]);
    if stored != checksum(key, body) {
        return Err(corrupt(key, "checksum mismatch"));
    }
    match body.split_first() {
        Some((&FORMAT_VERSION, payload)) => Ok(payload),
        Some((other, _)) => Err(corrupt(
            key,
            &format!("unknown format version {other} (this build reads {FORMAT_VERSION})"),
        )),
        None => Err(corrupt(key, "value is empty")),
    }
}

/// A `Corruption` error naming the key: the position of a log record, the
/// caller's key of an aux value, else the key itself.
pub fn corrupt(key: &[u8], what: &str) -> Error {
    Error::corruption(
        layout::corruption_at(key),
        format!("{}: {what}", describe_key(key)),
    )
}

/// Encodes and seals `value` for `key`.
pub fn encode<T: Serialize>(key: &[u8], value: &T) -> Result<Vec<u8>> {
    let payload = postcard::to_allocvec(value)
        .map_err(|e| Error::backend(format!("encoding {}", describe_key(key)), e))?;
    Ok(seal(key, &payload))
}

/// Unseals and decodes a value read at `key`.
pub fn decode<T: DeserializeOwned>(key: &[u8], value: &[u8]) -> Result<T> {
    let payload = unseal(key, value)?;
    postcard::from_bytes(payload).map_err(|e| corrupt(key, &format!("undecodable: {e}")))
}

/// An event record as encoded (borrowing the event's parts). Data and
/// metadata go through `serde_bytes`: postcard writes a byte string as
/// `varint(len) + bytes`, exactly what it writes for a sequence of `u8`
/// (each `u8` is one raw byte), so records written either way read the
/// same — but one copy is much faster than one call per byte.
#[derive(Serialize)]
struct EventRecordRef<'a> {
    stream_id: &'a str,
    version: u64,
    recorded_at: u64,
    event_id: [u8; 16],
    event_type: &'a str,
    #[serde(with = "serde_bytes")]
    data: &'a [u8],
    #[serde(with = "serde_bytes")]
    metadata: &'a [u8],
    tags: &'a [String],
}

/// An event record as decoded: the stream id borrowed from the value (a
/// page's events mostly share it, see [`EventDecoder`]), the rest owned.
#[derive(Deserialize)]
struct EventRecord<'a> {
    #[serde(borrow)]
    stream_id: &'a str,
    version: u64,
    recorded_at: u64,
    event_id: [u8; 16],
    event_type: String,
    #[serde(with = "serde_bytes")]
    data: Vec<u8>,
    #[serde(with = "serde_bytes")]
    metadata: Vec<u8>,
    tags: Vec<String>,
}

/// The parts of an event the log record holds.
#[derive(Clone, Copy, Debug)]
pub struct EventParts<'a> {
    /// Its stream.
    pub stream_id: &'a str,
    /// Its version.
    pub version: Version,
    /// When it was recorded.
    pub recorded_at: Timestamp,
    /// Its id.
    pub event_id: Uuid,
    /// Its type.
    pub event_type: &'a str,
    /// Its payload.
    pub data: &'a [u8],
    /// Its metadata.
    pub metadata: &'a [u8],
    /// Its tags.
    pub tags: &'a [String],
}

/// Encodes the log record stored at `key` (the log key of its position).
pub fn encode_event(key: &[u8], e: &EventParts<'_>) -> Result<Vec<u8>> {
    encode(
        key,
        &EventRecordRef {
            stream_id: e.stream_id,
            version: e.version.0,
            recorded_at: e.recorded_at.0,
            event_id: *e.event_id.as_bytes(),
            event_type: e.event_type,
            data: e.data,
            metadata: e.metadata,
            tags: e.tags,
        },
    )
}

/// The entries one event adds under the shared key layout, as `(key,
/// sealed value)`: its log record, its stream index entry, its type index
/// entry and one tag index entry per tag. The writer commits exactly these
/// for every event (plus the stream and store metadata once per round); the
/// benchmark writes them straight to a raw engine to measure what annals
/// costs on top of it. An invalid stream id (\[D1\]) is refused here too, the
/// last door before the engine: a record readers would refuse is never
/// written.
pub fn event_entries(
    stream: &str,
    version: Version,
    position: Position,
    recorded_at: Timestamp,
    event: &NewEvent,
) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
    check_stream_id(stream)?;
    let mut entries = Vec::with_capacity(3 + event.tags.len());
    let log_key = layout::log_key(position);
    let record = encode_event(
        &log_key,
        &EventParts {
            stream_id: stream,
            version,
            recorded_at,
            event_id: event.event_id,
            event_type: &event.event_type,
            data: &event.data,
            metadata: &event.metadata,
            tags: &event.tags,
        },
    )?;
    entries.push((log_key, record));
    let index_key = layout::stream_index_key(stream, version);
    let index_value = encode(&index_key, &position.0)?;
    entries.push((index_key, index_value));
    let type_key = layout::type_key(&event.event_type, position);
    let sealed = seal(&type_key, &[]);
    entries.push((type_key, sealed));
    for tag in &event.tags {
        let tag_key = layout::tag_key(tag, position);
        let sealed = seal(&tag_key, &[]);
        entries.push((tag_key, sealed));
    }
    Ok(entries)
}

/// Decodes the log record at `position` (whose key is `key`).
pub fn decode_event(key: &[u8], position: Position, value: &[u8]) -> Result<RecordedEvent> {
    EventDecoder::default().decode(key, position, value)
}

/// Decodes the log records of one read: the events of one stream share one
/// [`StreamId`] (checked once, allocated once) instead of one each.
#[derive(Debug, Default)]
pub struct EventDecoder {
    last_stream: Option<StreamId>,
}

impl EventDecoder {
    /// Decodes the log record at `position` (whose key is `key`), as
    /// [`decode_event`].
    pub fn decode(
        &mut self,
        key: &[u8],
        position: Position,
        value: &[u8],
    ) -> Result<RecordedEvent> {
        let payload = unseal(key, value)?;
        let r: EventRecord<'_> = postcard::from_bytes(payload)
            .map_err(|e| corrupt(key, &format!("undecodable: {e}")))?;
        let stream_id = match &self.last_stream {
            Some(last) if last.as_str() == r.stream_id => last.clone(),
            _ => {
                // A record that decodes but breaks D1/D2 was not written
                // by annals.
                let id = StreamId::new(r.stream_id)
                    .map_err(|e| corrupt(key, &format!("holds an invalid stream id: {e}")))?;
                self.last_stream = Some(id.clone());
                id
            }
        };
        Ok(RecordedEvent {
            stream_id,
            stream_version: Version(r.version),
            position,
            recorded_at: Timestamp(r.recorded_at),
            event_id: Uuid::from_bytes(r.event_id),
            event_type: r.event_type,
            data: r.data,
            metadata: r.metadata,
            tags: r.tags,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::CorruptionAt;
    use crate::kv::layout::log_key;

    #[test]
    fn byte_strings_are_encoded_as_sequences_of_u8_were() {
        #[derive(Serialize)]
        struct AsSequence<'a> {
            data: &'a [u8],
        }
        #[derive(Serialize)]
        struct AsBytes<'a> {
            #[serde(with = "serde_bytes")]
            data: &'a [u8],
        }
        for data in [&b""[..], b"x", &[0xFF; 300]] {
            let old = postcard::to_allocvec(&AsSequence { data }).expect("encodes");
            let new = postcard::to_allocvec(&AsBytes { data }).expect("encodes");
            assert_eq!(old, new);
        }
    }

    #[test]
    fn the_writer_never_encodes_an_invalid_stream_id() {
        let event = NewEvent::builder("T").build();
        for bad in [String::new(), "a\0b".to_string(), "x".repeat(1025)] {
            let err = event_entries(&bad, Version(0), Position(1), Timestamp(0), &event)
                .expect_err("an invalid stream id is refused");
            assert!(err.is_invalid_input(), "{err}");
        }
        assert!(event_entries("s", Version(0), Position(1), Timestamp(0), &event).is_ok());
    }

    #[test]
    fn a_decoder_shares_stream_ids_and_still_checks_each_one() {
        let tags: Vec<String> = Vec::new();
        let record = |position: u64, stream: &str| {
            let parts = EventParts {
                stream_id: stream,
                version: Version(position),
                recorded_at: Timestamp(1),
                event_id: Uuid::from_u128(u128::from(position)),
                event_type: "T",
                data: b"d",
                metadata: b"",
                tags: &tags,
            };
            let key = log_key(Position(position));
            let value = encode_event(&key, &parts).expect("encodes");
            (key, value)
        };
        let mut decoder = EventDecoder::default();
        let streams = ["a", "a", "b", "a", "a"];
        let mut decoded = Vec::new();
        for (position, stream) in (1..).zip(streams) {
            let (key, value) = record(position, stream);
            decoded.push(
                decoder
                    .decode(&key, Position(position), &value)
                    .expect("decodes"),
            );
        }
        let ids: Vec<&str> = decoded.iter().map(|e| e.stream_id.as_str()).collect();
        assert_eq!(ids, streams);
        assert_eq!(decoded[3].position, Position(4));
        // A record whose stream id breaks D1 is refused after a valid one:
        // only an id equal to the last one is taken without a check.
        let (key, value) = record(6, "bad\0id");
        let err = decoder
            .decode(&key, Position(6), &value)
            .expect_err("an invalid stream id on disk is corruption");
        assert!(
            matches!(err, Error::Corruption { ref message, .. } if message.contains("invalid stream id")),
            "{err}"
        );
    }

    #[test]
    fn sealed_values_round_trip_and_detect_damage() {
        let key = log_key(Position(3));
        let tags = vec!["t".to_string()];
        let parts = EventParts {
            stream_id: "s",
            version: Version(2),
            recorded_at: Timestamp(9),
            event_id: Uuid::from_u128(5),
            event_type: "T",
            data: b"data",
            metadata: b"",
            tags: &tags,
        };
        let value = encode_event(&key, &parts).expect("encodes");
        let event = decode_event(&key, Position(3), &value).expect("decodes");
        assert_eq!(event.stream_id.as_str(), "s");
        assert_eq!(event.data, b"data");
        assert_eq!(event.tags, tags);

        for i in 0..value.len() {
            let mut damaged = value.clone();
            damaged[i] ^= 0x40;
            let err = decode_event(&key, Position(3), &damaged).expect_err("damage is seen");
            assert_eq!(
                err.corruption_at(),
                Some(&CorruptionAt::Position(Position(3))),
                "{err}"
            );
        }
        let other_key = log_key(Position(4));
        assert!(matches!(
            decode_event(&other_key, Position(4), &value),
            Err(Error::Corruption { at: CorruptionAt::Position(Position(4)), message }) if message.contains("position 4")
        ));
        assert!(unseal(&key, &[1, 2]).is_err());
    }
}
