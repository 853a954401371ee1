//! The order-preserving key layout every key-value backend shares.
//!
//! Every key starts with one prefix byte naming its space, so each space is
//! one contiguous, bytewise-ordered range:
//!
//! | space        | key                                   | value (sealed, see [`codec`](super::codec)) |
//! |--------------|---------------------------------------|----------------------------------|
//! | store meta   | `00 'H'`                              | [`StoreMeta`]                    |
//! | log          | `01` position (u64 BE)                | the event record                 |
//! | stream index | `02` stream id `00` version (u64 BE)  | the event's position             |
//! | stream meta  | `03` stream id                        | [`StreamMeta`]                   |
//! | type index   | `04` event type `00` position (u64 BE)| nothing                          |
//! | tag index    | `05` tag `00` position (u64 BE)       | nothing                          |
//! | aux          | `06` key                              | the aux value                    |
//! | engine's own | `FF` anything                         | the engine's business            |
//!
//! Stream ids, types and tags contain no NUL (SPEC D1, D2), so the `00`
//! terminator keeps `(name, number)` keys in the order of the name first.

use serde::{Deserialize, Serialize};

use crate::error::{CorruptionAt, show_bytes, show_text};
use crate::event::{Position, Version};

/// Prefix of the store's own metadata.
pub const META: u8 = 0x00;
/// Prefix of the log, by position.
pub const LOG: u8 = 0x01;
/// Prefix of the stream index, by (stream, version).
pub const STREAM_INDEX: u8 = 0x02;
/// Prefix of stream metadata, by stream id.
pub const STREAM_META: u8 = 0x03;
/// Prefix of the type index, by (type, position).
pub const TYPE_INDEX: u8 = 0x04;
/// Prefix of the tag index, by (tag, position).
pub const TAG_INDEX: u8 = 0x05;
/// Prefix of the aux space.
pub const AUX: u8 = 0x06;
/// Prefix of keys an engine keeps for itself in the same key space (e.g.
/// annals-sled's commit counter); annals never reads or writes them, and
/// `verify` leaves them alone.
pub const ENGINE_PRIVATE: u8 = 0xFF;

/// The key of the store's metadata.
pub const STORE_META_KEY: &[u8] = &[META, b'H'];

/// What the store keeps about itself, rewritten with every commit.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default, Serialize, Deserialize)]
pub struct StoreMeta {
    /// The last committed position (0: none yet).
    pub head: u64,
    /// Positions up to here may have been handed out by a `Relaxed` store;
    /// after a crash the store starts above it, so a lost position is never
    /// reused (SPEC D5).
    pub reserved: u64,
    /// The last `recorded_at` given out, in microseconds, so timestamps
    /// never decrease along positions even if the clock goes back (D3).
    pub last_recorded_at: u64,
}

/// What the store keeps about one stream, stored at its
/// [`stream_meta_key`]: the contract's own type, encoded as it is.
pub use crate::rules::StreamMeta;

fn named_key(prefix: u8, name: &str, number: u64) -> Vec<u8> {
    let mut key = Vec::with_capacity(name.len() + 10);
    key.push(prefix);
    key.extend_from_slice(name.as_bytes());
    key.push(0);
    key.extend_from_slice(&number.to_be_bytes());
    key
}

/// The log key of `position`.
pub fn log_key(position: Position) -> Vec<u8> {
    let mut key = Vec::with_capacity(9);
    key.push(LOG);
    key.extend_from_slice(&position.0.to_be_bytes());
    key
}

/// The stream-index key of `(stream, version)`.
pub fn stream_index_key(stream: &str, version: Version) -> Vec<u8> {
    named_key(STREAM_INDEX, stream, version.0)
}

/// The metadata key of `stream`.
pub fn stream_meta_key(stream: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(stream.len() + 1);
    key.push(STREAM_META);
    key.extend_from_slice(stream.as_bytes());
    key
}

/// The type-index key of an event of `event_type` at `position`.
pub fn type_key(event_type: &str, position: Position) -> Vec<u8> {
    named_key(TYPE_INDEX, event_type, position.0)
}

/// The tag-index key of an event carrying `tag` at `position`.
pub fn tag_key(tag: &str, position: Position) -> Vec<u8> {
    named_key(TAG_INDEX, tag, position.0)
}

/// The key of an aux entry.
pub fn aux_key(key: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(key.len() + 1);
    k.push(AUX);
    k.extend_from_slice(key);
    k
}

/// The smallest key greater than every key starting with `prefix`
/// (`prefix` must contain a byte below 0xFF, as every annals key does).
pub fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xFF {
            end.push(last + 1);
            return end;
        }
    }
    vec![0xFF; prefix.len() + 1]
}

/// The key range `[start, end)` of numbers `lo..=hi` under a key `prefix`
/// (`prefix` + u64 BE), e.g. the log, or one tag of the tag index.
pub fn number_range(prefix: &[u8], lo: u64, hi: u64) -> (Vec<u8>, Vec<u8>) {
    let mut start = prefix.to_vec();
    start.extend_from_slice(&lo.to_be_bytes());
    let end = match hi.checked_add(1) {
        Some(next) => {
            let mut end = prefix.to_vec();
            end.extend_from_slice(&next.to_be_bytes());
            end
        }
        None => prefix_end(prefix),
    };
    (start, end)
}

/// The key prefix of one name's entries in a `(name, number)` space.
pub fn named_prefix(prefix: u8, name: &str) -> Vec<u8> {
    let mut p = Vec::with_capacity(name.len() + 2);
    p.push(prefix);
    p.extend_from_slice(name.as_bytes());
    p.push(0);
    p
}

/// The number at the end of a `(name, number)` or log key, if the key is
/// long enough.
pub fn trailing_number(key: &[u8]) -> Option<u64> {
    let tail = key.len().checked_sub(8).map(|at| &key[at..])?;
    Some(u64::from_be_bytes(tail.try_into().ok()?))
}

/// Where a damaged value at `key` is, for [`Error::Corruption`]: a log
/// record's position, an aux entry's key as the caller named it, else the
/// key itself.
///
/// [`Error::Corruption`]: crate::Error::Corruption
pub fn corruption_at(key: &[u8]) -> CorruptionAt {
    match key.split_first() {
        Some((&LOG, _)) if key.len() == 9 => {
            CorruptionAt::Position(Position(trailing_number(key).unwrap_or(0)))
        }
        Some((&AUX, aux_key)) => CorruptionAt::AuxKey(aux_key.to_vec()),
        _ => CorruptionAt::Key(key.to_vec()),
    }
}

/// Says what a key is, for error messages.
pub fn describe_key(key: &[u8]) -> String {
    let name_of = |k: &[u8]| {
        let body = &k[1..k.len().saturating_sub(9).max(1)];
        show_text(&String::from_utf8_lossy(body))
    };
    match key.first() {
        Some(&LOG) if key.len() == 9 => {
            format!(
                "log record at position {}",
                trailing_number(key).unwrap_or(0)
            )
        }
        Some(&STREAM_INDEX) if key.len() >= 10 => format!(
            "stream index entry of {} version {}",
            name_of(key),
            trailing_number(key).unwrap_or(0)
        ),
        Some(&STREAM_META) => format!(
            "metadata of stream {}",
            show_text(&String::from_utf8_lossy(&key[1..]))
        ),
        Some(&TYPE_INDEX) if key.len() >= 10 => format!(
            "type index entry of {} at position {}",
            name_of(key),
            trailing_number(key).unwrap_or(0)
        ),
        Some(&TAG_INDEX) if key.len() >= 10 => format!(
            "tag index entry of {} at position {}",
            name_of(key),
            trailing_number(key).unwrap_or(0)
        ),
        Some(&AUX) => format!("aux entry {}", show_bytes(&key[1..])),
        Some(&META) => "store metadata".to_string(),
        _ => format!("key {}", show_bytes(key)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn named_keys_order_by_name_then_number() {
        let a9 = stream_index_key("a", Version(9));
        let a10 = stream_index_key("a", Version(10));
        let ab0 = stream_index_key("ab", Version(0));
        assert!(a9 < a10 && a10 < ab0);
        assert!(log_key(Position(255)) < log_key(Position(256)));
    }

    #[test]
    fn ranges_cover_the_numbers_asked() {
        let p = named_prefix(TAG_INDEX, "t");
        let (s, e) = number_range(&p, 3, u64::MAX);
        assert!(tag_key("t", Position(3)) >= s);
        assert!(tag_key("t", Position(u64::MAX)) < e);
        assert!(tag_key("t0", Position(0)) >= e || tag_key("t0", Position(0)) < s);
        assert_eq!(prefix_end(&[1, 0xFF]), vec![2]);
    }

    #[test]
    fn describes_keys() {
        assert_eq!(
            describe_key(&log_key(Position(7))),
            "log record at position 7"
        );
        assert!(describe_key(&stream_index_key("s", Version(2))).contains("\"s\" version 2"));
        assert_eq!(describe_key(&[]), "key \"\"");
    }

    /// Stream metadata lives in the contract (`rules`), but its bytes on
    /// disk are this layout's: its fields in order, as postcard writes them.
    #[test]
    fn stream_meta_keeps_its_encoding() {
        let meta = StreamMeta {
            next_version: 300,
            floor: 2,
            created: 1,
            deleted: true,
        };
        let bytes = postcard::to_allocvec(&meta).expect("encodes");
        assert_eq!(bytes, [0xAC, 0x02, 0x02, 0x01, 0x01]);
        assert_eq!(
            postcard::from_bytes::<StreamMeta>(&bytes).expect("decodes"),
            meta
        );
    }
}
