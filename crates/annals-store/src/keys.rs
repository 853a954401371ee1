//! Where the store keeps its data in the backend's aux space (\[X1\]), and
//! how values are encoded. Every key starts with [`PREFIX`], so the store
//! never collides with an application's own aux keys.
//!
//! ```text
//! annals-store/checkpoint/<name>                  position (u64 BE)
//! annals-store/snapshot/<stream id>               1, version (u64 BE), data
//! annals-store/index/<name>/state                 the generation lookups read: a generation record
//! annals-store/index/<name>/next                  the generation a rebuild is building: a generation record
//! annals-store/index/<name>/g/<generation u64 BE>/<escaped key> 00 01 <position u64 BE>    (empty)
//! annals-store/shred/check                        1, nonce (24), sealed check text
//! annals-store/shred/key/<subject id, 32 hex>     1, generation (16), nonce (24), wrapped key (48)
//! annals-store/retention/stream/<stream id>       policy (JSON)
//! annals-store/retention/prefix/<prefix>          policy (JSON)
//! ```
//!
//! A generation record is `2`, indexer version (u32 BE), generation
//! (u64 BE), cursor (u64 BE), entries added (u64 BE), entries removed
//! (u64 BE). A generation's entries are written only together with its
//! record, so they always agree with it.
//!
//! An index key is escaped so that no key's entries are a prefix of
//! another's: each `00` byte of the key is written `00 FF`, and `00 01`
//! ends it. Entries of one key therefore sort by position, big-endian.

use annals_core::{
    CorruptionAt, Error, Field, Limit, MAX_AUX_KEY_BYTES, Position, Result, StreamId, Version,
    show_bytes, show_text,
};

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

/// Format byte of snapshot values.
const FORMAT: u8 = 1;

/// Format byte of index generation records (1 was a record without a
/// generation, over entries under `key/`).
const INDEX_FORMAT: u8 = 2;

/// Checks a checkpoint name ([`Field::CheckpointName`]) or an index name
/// ([`Field::Index`]): 1 to [`MAX_NAME_BYTES`] bytes, no control
/// character; an index name has no `/` either.
pub(crate) fn check_name(field: Field, name: &str) -> Result<()> {
    let (what, slash_allowed) = match field {
        Field::Index => ("index", false),
        _ => ("checkpoint", true),
    };
    if name.is_empty() {
        return Err(Error::empty(field, format!("{what} name is empty")));
    }
    if name.len() > MAX_NAME_BYTES {
        return Err(Error::limit(
            Limit::EventStoreNameBytes,
            MAX_NAME_BYTES,
            name.len(),
            format!(
                "{what} name {} is {} bytes, more than the limit of {MAX_NAME_BYTES}",
                show_text(name),
                name.len()
            ),
        ));
    }
    if name.chars().any(char::is_control) {
        return Err(Error::malformed(
            field,
            format!(
                "{what} name {} contains a control character",
                show_text(name)
            ),
        ));
    }
    if !slash_allowed && name.contains('/') {
        return Err(Error::malformed(
            field,
            format!("{what} name {} contains '/'", show_text(name)),
        ));
    }
    Ok(())
}

/// The key of checkpoint `name`.
pub(crate) fn checkpoint(name: &str) -> Result<Vec<u8>> {
    check_name(Field::CheckpointName, name)?;
    Ok([CHECKPOINT.as_bytes(), name.as_bytes()].concat())
}

/// A checkpoint's value.
pub(crate) fn encode_position(position: Position) -> Vec<u8> {
    position.0.to_be_bytes().to_vec()
}

/// Decodes a checkpoint's value, naming `key` when it is damaged.
pub(crate) fn decode_position(key: &[u8], value: &[u8]) -> Result<Position> {
    let bytes: [u8; 8] = value.try_into().map_err(|_| {
        Error::corruption(
            CorruptionAt::AuxKey(key.to_vec()),
            format!(
                "aux value of checkpoint key {} has {} bytes, not 8",
                show_bytes(key),
                value.len()
            ),
        )
    })?;
    Ok(Position(u64::from_be_bytes(bytes)))
}

/// The key of `stream`'s snapshot. A stream id too long to fit in an aux
/// key after the prefix is `InvalidInput`.
pub(crate) fn snapshot(stream: &StreamId) -> Result<Vec<u8>> {
    let key = [SNAPSHOT.as_bytes(), stream.as_bytes()].concat();
    if key.len() > MAX_AUX_KEY_BYTES {
        return Err(Error::limit(
            Limit::AuxKeyBytes,
            MAX_AUX_KEY_BYTES,
            key.len(),
            format!(
                "stream id {:?}… is {} bytes: a snapshot needs an id of at most {} bytes",
                truncate(stream.as_str(), 40),
                stream.as_bytes().len(),
                MAX_AUX_KEY_BYTES - SNAPSHOT.len()
            ),
        ));
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
        _ => Err(Error::corruption(
            CorruptionAt::AuxKey(key.to_vec()),
            format!(
                "aux value of snapshot key {} ({} bytes) is not a snapshot of format {FORMAT}",
                show_bytes(key),
                value.len()
            ),
        )),
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
        return Err(Error::malformed(
            Field::Setting,
            format!(
                "stream id {:?}… is {} bytes: {what} needs an id of at most {} bytes",
                truncate(id, 40),
                id.len(),
                MAX_AUX_KEY_BYTES - base.len()
            ),
        ));
    }
    Ok(key)
}

/// Which generation record of an index.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Record {
    /// The generation lookups read (`state`).
    Current,
    /// The generation a rebuild is building (`next`).
    Next,
}

/// The key of index `name`'s `record`.
pub(crate) fn index_record(name: &str, record: Record) -> Vec<u8> {
    let last: &[u8] = match record {
        Record::Current => b"/state",
        Record::Next => b"/next",
    };
    [INDEX.as_bytes(), name.as_bytes(), last].concat()
}

/// The prefix of the entries of every generation of index `name`.
pub(crate) fn generations_prefix(name: &str) -> Vec<u8> {
    [INDEX.as_bytes(), name.as_bytes(), b"/g/"].concat()
}

/// The prefix of every entry of `generation` of index `name`.
pub(crate) fn generation_prefix(name: &str, generation: u64) -> Vec<u8> {
    [
        &generations_prefix(name)[..],
        &generation.to_be_bytes(),
        b"/",
    ]
    .concat()
}

/// A key that sorts after every entry of `generation` and before those of
/// the next generation (for scans that skip a generation).
pub(crate) fn after_generation(name: &str, generation: u64) -> Vec<u8> {
    [
        &generations_prefix(name)[..],
        &generation.to_be_bytes(),
        b"0",
    ]
    .concat()
}

/// The generation of `key`, an entry key found under
/// [`generations_prefix`]; `None` when it is not one.
pub(crate) fn generation_of(name: &str, key: &[u8]) -> Option<u64> {
    let prefix = generations_prefix(name);
    let rest = key.strip_prefix(prefix.as_slice())?;
    match rest {
        [g0, g1, g2, g3, g4, g5, g6, g7, b'/', ..] => {
            Some(u64::from_be_bytes([*g0, *g1, *g2, *g3, *g4, *g5, *g6, *g7]))
        }
        _ => None,
    }
}

/// Where indexes written by format 1 kept their entries (removed when
/// found).
pub(crate) fn legacy_entries_prefix(name: &str) -> Vec<u8> {
    [INDEX.as_bytes(), name.as_bytes(), b"/key/"].concat()
}

/// A generation of an index: the indexer version its entries were made by,
/// its id (the entries live under [`generation_prefix`]), the position up to
/// which every event is indexed, and how many entries it has added and
/// removed (so damage — entries gone missing — can be found by counting).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) struct IndexState {
    pub version: u32,
    pub generation: u64,
    pub cursor: Position,
    pub added: u64,
    pub removed: u64,
}

impl IndexState {
    /// An empty generation of indexer `version`, nothing indexed yet.
    pub(crate) fn empty(version: u32, generation: u64) -> Self {
        IndexState {
            version,
            generation,
            cursor: Position::START,
            added: 0,
            removed: 0,
        }
    }

    /// How many entries the generation holds.
    pub(crate) fn entries(self) -> u64 {
        self.added.saturating_sub(self.removed)
    }

    pub(crate) fn encode(self) -> Vec<u8> {
        let mut value = Vec::with_capacity(37);
        value.push(INDEX_FORMAT);
        value.extend_from_slice(&self.version.to_be_bytes());
        for n in [self.generation, self.cursor.0, self.added, self.removed] {
            value.extend_from_slice(&n.to_be_bytes());
        }
        value
    }

    /// Decodes a record; `None` when it is not one this code writes (it is
    /// then replaced: index data can always be built again).
    pub(crate) fn decode(value: &[u8]) -> Option<IndexState> {
        let [INDEX_FORMAT, v0, v1, v2, v3, rest @ ..] = value else {
            return None;
        };
        let mut numbers = [0u64; 4];
        if rest.len() != 8 * numbers.len() {
            return None;
        }
        for (n, bytes) in numbers.iter_mut().zip(rest.chunks_exact(8)) {
            *n = u64::from_be_bytes(bytes.try_into().ok()?);
        }
        let [generation, cursor, added, removed] = numbers;
        Some(IndexState {
            version: u32::from_be_bytes([*v0, *v1, *v2, *v3]),
            generation,
            cursor: Position(cursor),
            added,
            removed,
        })
    }
}

/// The prefix of every entry of `key` in `generation` of index `name`.
pub(crate) fn index_key_prefix(name: &str, generation: u64, key: &str) -> Result<Vec<u8>> {
    let mut out = generation_prefix(name, generation);
    let overhead = out.len() - name.len();
    for &b in key.as_bytes() {
        out.push(b);
        if b == 0 {
            out.push(0xFF);
        }
    }
    out.extend_from_slice(&[0, 1]);
    if out.len() + 8 > MAX_AUX_KEY_BYTES {
        return Err(Error::limit(
            Limit::AuxKeyBytes,
            MAX_AUX_KEY_BYTES,
            out.len() + 8,
            format!(
                "index {name:?}: key {:?}… ({} bytes) is too long for an index entry: \
                 name and key together may take at most {} bytes",
                truncate(key, 40),
                key.len(),
                MAX_AUX_KEY_BYTES - 8 - 2 - overhead
            ),
        ));
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
        Error::corruption(
            CorruptionAt::AuxKey(entry.to_vec()),
            format!(
                "index entry key {} does not end in a position",
                show_bytes(entry)
            ),
        )
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
        let a = index_key_prefix("i", 7, "x").expect("short key");
        let b = index_key_prefix("i", 7, "x\0").expect("short key");
        let c = index_key_prefix("i", 7, "x/y").expect("short key");
        assert!(!b.starts_with(&a) && !a.starts_with(&b));
        assert!(!c.starts_with(&a) && !a.starts_with(&c));
        let e = index_entry(&a, Position(258));
        assert_eq!(entry_position(&a, &e).expect("an entry"), Position(258));
        assert!(entry_position(&b, &e).is_err());
        // Generations: each apart, found from its entries, skipped whole.
        assert_eq!(generation_of("i", &e), Some(7));
        assert_eq!(generation_of("i", b"annals-store/index/i/state"), None);
        let other = index_key_prefix("i", 8, "x").expect("short key");
        assert!(!other.starts_with(&generation_prefix("i", 7)));
        let skip = after_generation("i", 7);
        assert!(e < skip && skip < other);
        assert!(
            index_entry(
                &index_key_prefix("i", 7, "\u{10FFFF}").expect("short"),
                Position(u64::MAX)
            ) < skip
        );
        assert!(!index_record("i", Record::Current).starts_with(&generations_prefix("i")));
        assert!(!legacy_entries_prefix("i").starts_with(&generations_prefix("i")));
    }

    #[test]
    fn values_round_trip_and_damage_is_an_error() {
        let state = IndexState {
            version: 7,
            generation: u64::MAX - 1,
            cursor: Position(99),
            added: 12,
            removed: 3,
        };
        assert_eq!(IndexState::decode(&state.encode()), Some(state));
        assert_eq!(state.entries(), 9);
        assert_eq!(IndexState::decode(b"junk"), None);
        let encoded = state.encode();
        assert_eq!(IndexState::decode(&encoded[..encoded.len() - 1]), None);
        // Format 1: version and cursor only.
        assert_eq!(
            IndexState::decode(&[1, 0, 0, 0, 7, 0, 0, 0, 0, 0, 0, 0, 99]),
            None
        );
        let v = encode_snapshot(Version(5), b"data");
        assert_eq!(
            decode_snapshot(b"k", &v).expect("a snapshot"),
            (Version(5), b"data".to_vec())
        );
        let damaged = decode_snapshot(b"k", &[1, 2]).expect_err("damaged");
        assert_eq!(
            damaged.corruption_at(),
            Some(&CorruptionAt::AuxKey(b"k".to_vec()))
        );
        let damaged = decode_position(b"k", &[1, 2, 3]).expect_err("damaged");
        assert_eq!(
            damaged.corruption_at(),
            Some(&CorruptionAt::AuxKey(b"k".to_vec()))
        );
        let long = "k".repeat(2000);
        assert!(matches!(
            index_key_prefix("i", 1, &long).map_err(|e| e.invalid_reason()),
            Err(Some(annals_core::InvalidReason::Limit {
                limit: Limit::AuxKeyBytes,
                ..
            }))
        ));
        assert!(check_name(Field::Index, "a/b").is_err());
        assert!(check_name(Field::CheckpointName, "a/b").is_ok());
        assert!(check_name(Field::CheckpointName, "").is_err());
        assert!(check_name(Field::CheckpointName, "a\nb").is_err());
    }
}
