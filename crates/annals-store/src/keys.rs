//! Where the store keeps its data in the backend's aux space ([X1]), and
//! how values are encoded. Every key starts with [`PREFIX`], so the store
//! never collides with an application's own aux keys.
//!
//! ```text
//! annals-store/checkpoint/<name>                        position (u64 BE)
//! annals-store/snapshot/<stream id>                     1, version (u64 BE), data
//! annals-store/index/<name>/state                       1, indexer version (u32 BE), cursor (u64 BE)
//! annals-store/index/<name>/key/<escaped key> 00 01 <position u64 BE>    (empty)
//! annals-store/shred/check                              1, nonce (24), sealed check text
//! annals-store/shred/key/<subject id, 32 hex digits>    1, generation (16), nonce (24), wrapped key (48)
//! annals-store/retention/stream/<stream id>             policy (JSON)
//! annals-store/retention/prefix/<prefix>                policy (JSON)
//! ```
//!
//! An index key is escaped so that no key's entries are a prefix of
//! another's: each `00` byte of the key is written `00 FF`, and `00 01`
//! ends it. Entries of one key therefore sort by position, big-endian.

use annals_core::{Error, MAX_AUX_KEY_BYTES, Position, Result, StreamId, Version, show_bytes};

/// The prefix of every aux key the store writes.
pub const PREFIX: &str = "annals-store/";

const CHECKPOINT: &str = "annals-store/checkpoint/";
const SNAPSHOT: &str = "annals-store/snapshot/";
const INDEX: &str = "annals-store/index/";
/// The key check of crypto-shredding (see the `shred` module).
pub(crate) const SHRED_CHECK: &[u8] = b"annals-store/shred/check";
const SHRED_KEY: &str = "annals-store/shred/key/";
const _: () = assert!(SHRED_KEY.len() > crate::shred::KEYS_PREFIX.len());
/// Every retention policy.
pub(crate) const RETENTION: &str = "annals-store/retention/";
/// Retention policies of single streams.
pub(crate) const RETENTION_STREAM: &str = "annals-store/retention/stream/";
/// Retention defaults by stream id prefix.
pub(crate) const RETENTION_PREFIX: &str = "annals-store/retention/prefix/";

/// Longest checkpoint or index name, in bytes.
pub const MAX_NAME_BYTES: usize = 128;

/// Format byte of snapshot and index-state values.
const FORMAT: u8 = 1;

/// Checks a checkpoint or index name: 1 to [`MAX_NAME_BYTES`] bytes, no
/// control character; an index name has no `/` either.
pub(crate) fn check_name(what: &str, name: &str, slash_allowed: bool) -> Result<()> {
    if name.is_empty() {
        return Err(Error::InvalidInput(format!("{what} name is empty")));
    }
    if name.len() > MAX_NAME_BYTES {
        return Err(Error::InvalidInput(format!(
            "{what} name {name:?} is {} bytes, more than the limit of {MAX_NAME_BYTES}",
            name.len()
        )));
    }
    if name.chars().any(char::is_control) {
        return Err(Error::InvalidInput(format!(
            "{what} name {name:?} contains a control character"
        )));
    }
    if !slash_allowed && name.contains('/') {
        return Err(Error::InvalidInput(format!(
            "{what} name {name:?} contains '/'"
        )));
    }
    Ok(())
}

/// The key of checkpoint `name`.
pub(crate) fn checkpoint(name: &str) -> Result<Vec<u8>> {
    check_name("checkpoint", name, true)?;
    Ok([CHECKPOINT.as_bytes(), name.as_bytes()].concat())
}

/// A checkpoint's value.
pub(crate) fn encode_position(position: Position) -> Vec<u8> {
    position.0.to_be_bytes().to_vec()
}

/// Decodes a checkpoint's value, naming `key` when it is damaged.
pub(crate) fn decode_position(key: &[u8], value: &[u8]) -> Result<Position> {
    let bytes: [u8; 8] = value.try_into().map_err(|_| {
        Error::Corruption(format!(
            "aux value of checkpoint key {} has {} bytes, not 8",
            show_bytes(key),
            value.len()
        ))
    })?;
    Ok(Position(u64::from_be_bytes(bytes)))
}

/// The key of `stream`'s snapshot. A stream id too long to fit in an aux
/// key after the prefix is `InvalidInput`.
pub(crate) fn snapshot(stream: &StreamId) -> Result<Vec<u8>> {
    let key = [SNAPSHOT.as_bytes(), stream.as_bytes()].concat();
    if key.len() > MAX_AUX_KEY_BYTES {
        return Err(Error::InvalidInput(format!(
            "stream id {:?}… is {} bytes: a snapshot needs an id of at most {} bytes",
            truncate(stream.as_str(), 40),
            stream.as_bytes().len(),
            MAX_AUX_KEY_BYTES - SNAPSHOT.len()
        )));
    }
    Ok(key)
}

/// A snapshot's value.
pub(crate) fn encode_snapshot(version: Version, data: &[u8]) -> Vec<u8> {
    let mut value = Vec::with_capacity(9 + data.len());
    value.push(FORMAT);
    value.extend_from_slice(&version.0.to_be_bytes());
    value.extend_from_slice(data);
    value
}

/// Decodes a snapshot's value into its version and data.
pub(crate) fn decode_snapshot(key: &[u8], value: &[u8]) -> Result<(Version, Vec<u8>)> {
    match value {
        [FORMAT, rest @ ..] if rest.len() >= 8 => {
            let (version, data) = rest.split_at(8);
            let mut bytes = [0u8; 8];
            bytes.copy_from_slice(version);
            Ok((Version(u64::from_be_bytes(bytes)), data.to_vec()))
        }
        _ => Err(Error::Corruption(format!(
            "aux value of snapshot key {} ({} bytes) is not a snapshot of format {FORMAT}",
            show_bytes(key),
            value.len()
        ))),
    }
}

/// The key of the data key of the subject with id `subject`.
pub(crate) fn shred_key(subject: &[u8; 16]) -> Vec<u8> {
    let mut key = Vec::with_capacity(SHRED_KEY.len() + 32);
    key.extend_from_slice(SHRED_KEY.as_bytes());
    for b in subject {
        key.extend_from_slice(format!("{b:02x}").as_bytes());
    }
    key
}

/// The key of `stream`'s own retention policy; `InvalidInput` for an id
/// too long to fit.
pub(crate) fn retention_stream(stream: &StreamId) -> Result<Vec<u8>> {
    long_key(RETENTION_STREAM, stream.as_str(), "a retention policy")
}

/// The key of the retention default of `prefix`.
pub(crate) fn retention_prefix(prefix: &str) -> Result<Vec<u8>> {
    long_key(RETENTION_PREFIX, prefix, "a retention default")
}

fn long_key(base: &str, id: &str, what: &str) -> Result<Vec<u8>> {
    let key = [base.as_bytes(), id.as_bytes()].concat();
    if key.len() > MAX_AUX_KEY_BYTES {
        return Err(Error::InvalidInput(format!(
            "stream id {:?}… is {} bytes: {what} needs an id of at most {} bytes",
            truncate(id, 40),
            id.len(),
            MAX_AUX_KEY_BYTES - base.len()
        )));
    }
    Ok(key)
}

/// Everything of index `name`: its state and its entries.
pub(crate) fn index_prefix(name: &str) -> Vec<u8> {
    [INDEX.as_bytes(), name.as_bytes(), b"/"].concat()
}

/// The key of index `name`'s state.
pub(crate) fn index_state(name: &str) -> Vec<u8> {
    [INDEX.as_bytes(), name.as_bytes(), b"/state"].concat()
}

/// The state of an index: the indexer version its entries were made by,
/// and the position up to which every event is indexed.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) struct IndexState {
    pub version: u32,
    pub cursor: Position,
}

impl IndexState {
    pub(crate) fn encode(self) -> Vec<u8> {
        let mut value = Vec::with_capacity(13);
        value.push(FORMAT);
        value.extend_from_slice(&self.version.to_be_bytes());
        value.extend_from_slice(&self.cursor.0.to_be_bytes());
        value
    }

    /// Decodes a state; `None` when it is not one this code wrote (it is
    /// then rebuilt, index data being safe to drop).
    pub(crate) fn decode(value: &[u8]) -> Option<IndexState> {
        match value {
            [FORMAT, v0, v1, v2, v3, c @ ..] => {
                let cursor: [u8; 8] = c.try_into().ok()?;
                Some(IndexState {
                    version: u32::from_be_bytes([*v0, *v1, *v2, *v3]),
                    cursor: Position(u64::from_be_bytes(cursor)),
                })
            }
            _ => None,
        }
    }
}

/// The prefix of every entry of `key` in index `name`.
pub(crate) fn index_key_prefix(name: &str, key: &str) -> Result<Vec<u8>> {
    let mut out = [INDEX.as_bytes(), name.as_bytes(), b"/key/"].concat();
    for &b in key.as_bytes() {
        out.push(b);
        if b == 0 {
            out.push(0xFF);
        }
    }
    out.extend_from_slice(&[0, 1]);
    if out.len() + 8 > MAX_AUX_KEY_BYTES {
        return Err(Error::InvalidInput(format!(
            "index {name:?}: key {:?}… ({} bytes) is too long for an index entry: \
             name and key together may take at most {} bytes",
            truncate(key, 40),
            key.len(),
            MAX_AUX_KEY_BYTES - 8 - 2 - INDEX.len() - "/key/".len()
        )));
    }
    Ok(out)
}

/// The entry of the event at `position` under `key_prefix`.
pub(crate) fn index_entry(key_prefix: &[u8], position: Position) -> Vec<u8> {
    [key_prefix, &position.0.to_be_bytes()].concat()
}

/// The position of an entry found under `key_prefix`.
pub(crate) fn entry_position(key_prefix: &[u8], entry: &[u8]) -> Result<Position> {
    let tail = entry.strip_prefix(key_prefix).unwrap_or(&[]);
    let bytes: [u8; 8] = tail.try_into().map_err(|_| {
        Error::Corruption(format!(
            "index entry key {} does not end in a position",
            show_bytes(entry)
        ))
    })?;
    Ok(Position(u64::from_be_bytes(bytes)))
}

fn truncate(value: &str, max: usize) -> &str {
    let mut end = value.len().min(max);
    while !value.is_char_boundary(end) {
        end -= 1;
    }
    value.get(..end).unwrap_or("")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_keys_are_prefix_free() {
        let a = index_key_prefix("i", "x").expect("short key");
        let b = index_key_prefix("i", "x\0").expect("short key");
        let c = index_key_prefix("i", "x/y").expect("short key");
        assert!(!b.starts_with(&a) && !a.starts_with(&b));
        assert!(!c.starts_with(&a) && !a.starts_with(&c));
        let e = index_entry(&a, Position(258));
        assert_eq!(entry_position(&a, &e).expect("an entry"), Position(258));
        assert!(entry_position(&b, &e).is_err());
    }

    #[test]
    fn values_round_trip_and_damage_is_an_error() {
        let state = IndexState {
            version: 7,
            cursor: Position(99),
        };
        assert_eq!(IndexState::decode(&state.encode()), Some(state));
        assert_eq!(IndexState::decode(b"junk"), None);
        let v = encode_snapshot(Version(5), b"data");
        assert_eq!(
            decode_snapshot(b"k", &v).expect("a snapshot"),
            (Version(5), b"data".to_vec())
        );
        assert!(matches!(
            decode_snapshot(b"k", &[1, 2]),
            Err(Error::Corruption(_))
        ));
        assert!(matches!(
            decode_position(b"k", &[1, 2, 3]),
            Err(Error::Corruption(_))
        ));
        let long = "k".repeat(2000);
        assert!(matches!(
            index_key_prefix("i", &long),
            Err(Error::InvalidInput(_))
        ));
        assert!(check_name("index", "a/b", false).is_err());
        assert!(check_name("checkpoint", "a/b", true).is_ok());
        assert!(check_name("checkpoint", "", true).is_err());
        assert!(check_name("checkpoint", "a\nb", true).is_err());
    }
}
