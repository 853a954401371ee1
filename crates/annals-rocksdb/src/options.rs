//! The options of a RocksDB store and their URL parameters.

use std::fmt;
use std::str::FromStr;

use annals_core::driver::{Access, PathOptions};
use annals_core::files::FileMode;
use annals_core::kv::support::{BackendOptions, parse_choice};
use annals_core::{Error, Field, Result, StoreConfig, parse_param};

/// The options of this backend's own, with their URL parameter names, in
/// the order error messages list them.
const OWN_PARAMS: [&str; 7] = [
    "block_cache_bytes",
    "compression",
    "create_if_missing",
    "write_buffer_bytes",
    "max_background_jobs",
    "read_only",
    FileMode::PARAM,
];

/// The smallest memtable RocksDB accepts (it silently raises smaller
/// values; annals refuses them instead).
pub const MIN_WRITE_BUFFER_BYTES: usize = 64 << 10;

/// The most background jobs annals lets RocksDB run.
pub const MAX_BACKGROUND_JOBS: u32 = 256;

/// How RocksDB compresses the blocks of its table (SST) files.
///
/// Only the algorithms built into this crate's RocksDB are offered.
/// Parameter values: `none`, `lz4`, `zstd`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Default)]
pub enum Compression {
    /// No compression.
    None,
    /// LZ4 (the default): fast, and cheap on the CPU both ways; event
    /// payloads (JSON, text, repeated field names) typically shrink by half
    /// or more.
    #[default]
    Lz4,
    /// Zstandard at RocksDB's default level: smaller files than LZ4 for
    /// more CPU when compacting, about as fast to read.
    Zstd,
}

impl Compression {
    /// The parameter value naming this compression.
    pub fn as_str(self) -> &'static str {
        match self {
            Compression::None => "none",
            Compression::Lz4 => "lz4",
            Compression::Zstd => "zstd",
        }
    }

    /// RocksDB's name for it.
    pub(crate) fn to_rocksdb(self) -> rocksdb::DBCompressionType {
        match self {
            Compression::None => rocksdb::DBCompressionType::None,
            Compression::Lz4 => rocksdb::DBCompressionType::Lz4,
            Compression::Zstd => rocksdb::DBCompressionType::Zstd,
        }
    }
}

impl fmt::Display for Compression {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Compression {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        let all = [Compression::None, Compression::Lz4, Compression::Zstd];
        parse_choice("compression", s, &all.map(|c| (c.as_str(), c)))
    }
}

/// How to open a RocksDB store.
///
/// The default is what [`BackendOptions::from_params`] gives for no
/// parameter: `Durability::Immediate`, the default limits, a 64 MiB block
/// cache, LZ4 compression, create the store if it is missing, 64 MiB
/// memtables and 2 background jobs.
///
/// ```
/// use annals_core::Durability;
/// use annals_core::kv::support::BackendOptions;
/// use annals_rocksdb::{Compression, RocksDbOptions};
///
/// let options = RocksDbOptions::from_params([
///     ("durability", "relaxed"),
///     ("compression", "zstd"),
///     ("block_cache_bytes", "268435456"),
/// ])?;
/// assert_eq!(options.config.durability, Durability::Relaxed);
///
/// // The same, as a struct:
/// let mut same = RocksDbOptions::default();
/// same.config.durability = Durability::Relaxed;
/// same.compression = Compression::Zstd;
/// same.block_cache_bytes = 256 << 20;
/// assert_eq!(options, same);
/// # Ok::<(), annals_core::Error>(())
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct RocksDbOptions {
    /// The options every backend takes: durability and limits.
    ///
    /// With `Durability::Immediate` every commit is written to RocksDB's
    /// write-ahead log with `sync = true` (an `fsync` before the append
    /// returns); with `Relaxed`, without sync. The write-ahead log is on
    /// either way.
    pub config: StoreConfig,
    /// Bytes of RocksDB's LRU block cache (`block_cache_bytes`), shared by
    /// every column family; it holds uncompressed data, index and filter
    /// blocks. 0 disables the cache (every read then decompresses from the
    /// OS page cache). Default: 64 MiB.
    pub block_cache_bytes: usize,
    /// How table files are compressed (`compression`). Default: LZ4.
    pub compression: Compression,
    /// Create the store's folder (and its parents) and the database when
    /// they are missing, or the folder is empty (`create_if_missing`,
    /// default `true`). With `false`, opening a missing store is an error.
    /// A folder that is neither empty nor an annals store is always
    /// refused, unchanged (see the crate's documentation, "Whose files").
    pub create_if_missing: bool,
    /// Bytes of one memtable (`write_buffer_bytes`, RocksDB's
    /// `write_buffer_size`), per column family: writes are gathered in
    /// memory up to this size before they are flushed to a table file.
    /// At least 64 KiB. Default: 64 MiB.
    pub write_buffer_bytes: usize,
    /// Background threads for flushes and compactions
    /// (`max_background_jobs`), 1 to 256. Default: 2.
    pub max_background_jobs: u32,
    /// Open an existing store read-only (`read_only`, default `false`):
    /// RocksDB's read-only mode, which writes, deletes and locks nothing
    /// (its diagnostic log is dropped, not written), and every write
    /// answers [`Error::Unsupported`]. A store open for writing elsewhere
    /// can be opened read-only too; it then shows the state of the moment
    /// it was opened.
    pub read_only: bool,
    /// The permissions of the folders and files the store creates itself
    /// (`file_mode`, octal; default `0600`, folders `0700`; RocksDB's own
    /// files get the process umask inside the store's owner-only folder).
    /// See [`FileMode`].
    pub file_mode: FileMode,
}

impl Default for RocksDbOptions {
    fn default() -> Self {
        RocksDbOptions {
            config: StoreConfig::default(),
            block_cache_bytes: 64 << 20,
            compression: Compression::default(),
            create_if_missing: true,
            write_buffer_bytes: 64 << 20,
            max_background_jobs: 2,
            read_only: false,
            file_mode: FileMode::PRIVATE,
        }
    }
}

/// `from_params` (a URL's query, e.g.
/// `rocksdb:///var/lib/app/events?durability=relaxed&compression=zstd`)
/// takes every backend's options ([`StoreConfig::apply_param`]), then
/// this backend's: `block_cache_bytes`, `compression`
/// (`none`/`lz4`/`zstd`), `create_if_missing` (`true`/`false`),
/// `write_buffer_bytes`, `max_background_jobs`, `read_only`
/// (`true`/`false`) and `file_mode` (octal, e.g. `0640`). An unknown key,
/// or a value that does not parse or is out of range, is
/// [`Error::InvalidInput`] naming it.
///
/// ```
/// use annals_core::kv::support::BackendOptions;
/// use annals_rocksdb::{Compression, RocksDbOptions};
///
/// let options = RocksDbOptions::from_params([("create_if_missing", "false"), ("compression", "none")])?;
/// assert!(!options.create_if_missing);
/// assert_eq!(options.compression, Compression::None);
///
/// let err = RocksDbOptions::from_params([("cache_size", "1")]).unwrap_err();
/// assert!(err.to_string().contains("\"cache_size\""));
/// assert!(err.to_string().contains("block_cache_bytes"));
/// # Ok::<(), annals_core::Error>(())
/// ```
impl BackendOptions for RocksDbOptions {
    const BACKEND: &'static str = "rocksdb";
    const PARAMS: &'static [&'static str] = &OWN_PARAMS;

    fn config_mut(&mut self) -> &mut StoreConfig {
        &mut self.config
    }

    fn apply_own(&mut self, key: &str, value: &str) -> Result<bool> {
        match key {
            "block_cache_bytes" => self.block_cache_bytes = parse_param(key, value)?,
            "compression" => self.compression = value.parse()?,
            "create_if_missing" => self.create_if_missing = parse_param(key, value)?,
            "write_buffer_bytes" => self.write_buffer_bytes = parse_param(key, value)?,
            "max_background_jobs" => self.max_background_jobs = parse_param(key, value)?,
            "read_only" => self.read_only = parse_param(key, value)?,
            FileMode::PARAM => self.file_mode = FileMode::parse(value)?,
            _ => return Ok(false),
        }
        self.validate()?;
        Ok(true)
    }
}

impl PathOptions for RocksDbOptions {
    fn restrict(&mut self, access: Access) {
        self.create_if_missing &= access.may_create();
        self.read_only |= access.read_only();
    }
}

impl RocksDbOptions {
    /// Checks every option's range: the limits (at least 1 each),
    /// `write_buffer_bytes` at least [`MIN_WRITE_BUFFER_BYTES`],
    /// `max_background_jobs` from 1 to [`MAX_BACKGROUND_JOBS`]. A value out
    /// of range is [`Error::InvalidInput`] naming it. [`crate::open`]
    /// calls it.
    pub fn validate(&self) -> Result<()> {
        self.config.limits.validate()?;
        let (bytes, jobs) = (self.write_buffer_bytes, self.max_background_jobs);
        let message = if bytes < MIN_WRITE_BUFFER_BYTES {
            format!(
                "option write_buffer_bytes = {bytes} is below the minimum of \
                 {MIN_WRITE_BUFFER_BYTES} bytes"
            )
        } else if !(1..=MAX_BACKGROUND_JOBS).contains(&jobs) {
            format!(
                "option max_background_jobs = {jobs} is not between 1 and {MAX_BACKGROUND_JOBS}"
            )
        } else {
            return Ok(());
        };
        Err(Error::malformed(Field::StoreOption, message))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use annals_core::Durability;

    #[test]
    fn defaults() {
        let o = RocksDbOptions::from_params([]).expect("no params");
        assert_eq!(o, RocksDbOptions::default());
        assert_eq!(o.config, StoreConfig::default());
        assert_eq!(o.config.durability, Durability::Immediate);
        assert_eq!(o.block_cache_bytes, 64 << 20);
        assert_eq!(o.compression, Compression::Lz4);
        assert!(o.create_if_missing);
        assert!(!o.read_only);
        assert_eq!(o.file_mode, FileMode::PRIVATE);
        assert_eq!(o.write_buffer_bytes, 64 << 20);
        assert_eq!(o.max_background_jobs, 2);
        o.validate().expect("the defaults are valid");
    }

    #[test]
    fn every_param() {
        let o = RocksDbOptions::from_params([
            ("durability", "relaxed"),
            ("max_read_count", "5"),
            ("block_cache_bytes", "0"),
            ("compression", "zstd"),
            ("create_if_missing", "false"),
            ("write_buffer_bytes", "1048576"),
            ("max_background_jobs", "4"),
            ("read_only", "true"),
            ("file_mode", "0660"),
        ])
        .expect("valid params");
        assert!(o.read_only);
        assert_eq!(o.file_mode.file_bits(), 0o660);
        assert_eq!(o.config.durability, Durability::Relaxed);
        assert_eq!(o.config.limits.max_read_count, 5);
        assert_eq!(o.block_cache_bytes, 0);
        assert_eq!(o.compression, Compression::Zstd);
        assert!(!o.create_if_missing);
        assert_eq!(o.write_buffer_bytes, 1 << 20);
        assert_eq!(o.max_background_jobs, 4);
    }

    #[test]
    fn compression_names_round_trip() {
        for c in [Compression::None, Compression::Lz4, Compression::Zstd] {
            assert_eq!(c.to_string().parse::<Compression>().expect("a name"), c);
        }
    }

    #[test]
    fn unknown_key_is_named_with_the_known_ones() {
        let err = RocksDbOptions::from_params([("cache", "1")]).expect_err("unknown key");
        let Error::InvalidInput { message: msg, .. } = &err else {
            panic!("not InvalidInput: {err:?}")
        };
        assert!(msg.contains("\"cache\""), "{msg}");
        for known in StoreConfig::PARAMS.iter().chain(&OWN_PARAMS) {
            assert!(msg.contains(known), "{msg} lacks {known}");
        }
    }

    #[test]
    fn bad_values_are_invalid_input() {
        for (k, v) in [
            ("block_cache_bytes", "-1"),
            ("block_cache_bytes", "lots"),
            ("compression", "snappy"),
            ("compression", "LZ4"),
            ("create_if_missing", "yes"),
            ("write_buffer_bytes", "1024"),
            ("write_buffer_bytes", "big"),
            ("max_background_jobs", "0"),
            ("max_background_jobs", "1000"),
            ("read_only", "maybe"),
            ("file_mode", "0601"),
            ("durability", "eventually"),
            ("max_read_count", "0"),
        ] {
            let err = RocksDbOptions::from_params([(k, v)]).expect_err(k);
            let Error::InvalidInput { message: msg, .. } = &err else {
                panic!("{k}={v}: not InvalidInput: {err:?}")
            };
            assert!(msg.contains(k) || msg.contains(v), "{k}={v}: {msg}");
        }
    }

    #[test]
    fn validate_checks_struct_values() {
        let o = RocksDbOptions {
            max_background_jobs: 0,
            ..RocksDbOptions::default()
        };
        assert!(matches!(o.validate(), Err(Error::InvalidInput { .. })));
        let o = RocksDbOptions {
            write_buffer_bytes: 1,
            ..RocksDbOptions::default()
        };
        assert!(matches!(o.validate(), Err(Error::InvalidInput { .. })));
        let mut o = RocksDbOptions::default();
        o.config.limits.max_append_events = 0;
        assert!(matches!(o.validate(), Err(Error::InvalidInput { .. })));
    }
}
