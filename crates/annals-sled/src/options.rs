//! The options of a sled store and their URL parameters.

use std::time::Duration;

use annals_core::driver::{Access, PathOptions};
use annals_core::files::FileMode;
use annals_core::kv::support::{BackendOptions, parse_choice};
use annals_core::{Error, Result, StoreConfig, parse_param};

/// This backend's own options, with their URL parameter names, in the order
/// error messages list them.
const OWN_PARAMS: [&str; 6] = [
    "cache_capacity",
    "mode",
    "flush_every_ms",
    "create",
    "read_only",
    FileMode::PARAM,
];

/// sled's space/speed trade-off (sled's `Mode`).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Default)]
pub enum SledMode {
    /// Smaller files, slower writes (`low_space`, sled's default).
    #[default]
    LowSpace,
    /// Faster writes, more space (`high_throughput`).
    HighThroughput,
}

impl std::str::FromStr for SledMode {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        let choices = [
            ("low_space", SledMode::LowSpace),
            ("high_throughput", SledMode::HighThroughput),
        ];
        parse_choice("option mode =", s, &choices)
    }
}

/// How to open a sled store.
///
/// The default is what [`BackendOptions::from_params`] gives for no parameter:
/// `Durability::Immediate`, the default limits, sled's default cache (1 GiB
/// at most) and mode (`low_space`), sled's background flush every 500 ms,
/// create the store's folder if it is missing, read and write, and
/// owner-only files (`0600`, folders `0700`).
///
/// ```
/// use annals_core::kv::support::BackendOptions;
/// use annals_core::Durability;
/// use annals_sled::SledOptions;
///
/// let options = SledOptions::from_params([("durability", "relaxed"), ("cache_capacity", "67108864")])?;
/// assert_eq!(options.config.durability, Durability::Relaxed);
/// assert_eq!(options.cache_capacity, Some(64 << 20));
///
/// // The same, as a struct:
/// let mut same = SledOptions::default();
/// same.config.durability = Durability::Relaxed;
/// same.cache_capacity = Some(64 << 20);
/// assert_eq!(options, same);
/// # Ok::<(), annals_core::Error>(())
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct SledOptions {
    /// The options every backend takes: durability and limits.
    pub config: StoreConfig,
    /// Bytes of sled's page cache (`cache_capacity`); `None` keeps sled's
    /// default (1 GiB). sled allocates it as it is used.
    pub cache_capacity: Option<u64>,
    /// sled's space/speed trade-off (`mode`: `low_space` or
    /// `high_throughput`).
    pub mode: SledMode,
    /// How often sled's background thread writes buffered commits out and
    /// syncs its log file (`flush_every_ms`, milliseconds; 0 = `None`: never
    /// in the background). With `Durability::Relaxed` this bounds what a
    /// crash can lose; with `Immediate` every commit is synced anyway. The
    /// same thread also cleans sled's segments. Default: 500 ms (sled's).
    pub flush_every: Option<Duration>,
    /// Create the store's folder when it is missing or empty (`create`,
    /// default `true`). With `false`, a folder that holds no store is an
    /// error. A folder that is neither empty nor a store is always refused
    /// (see the crate's README, "Whose files").
    pub create: bool,
    /// Open an existing store for reading only (`read_only`, default
    /// `false`): annals then creates, removes and writes none of its files,
    /// and every write answers [`Error::Unsupported`]. sled itself cannot
    /// open a database without writing to it: it may still rewrite its own
    /// log and snapshot files (never the events in them).
    pub read_only: bool,
    /// The permissions of the folders and files the store creates
    /// (`file_mode`, octal; default `0600`, folders `0700`): see
    /// [`FileMode`].
    pub file_mode: FileMode,
}

impl Default for SledOptions {
    fn default() -> Self {
        SledOptions {
            config: StoreConfig::default(),
            cache_capacity: None,
            mode: SledMode::LowSpace,
            flush_every: Some(Duration::from_millis(500)),
            create: true,
            read_only: false,
            file_mode: FileMode::PRIVATE,
        }
    }
}

/// `from_params` (a URL's query, e.g.
/// `sled:///var/lib/app/events?durability=relaxed&cache_capacity=268435456`)
/// takes every backend's options ([`StoreConfig::apply_param`]), then
/// this backend's: `cache_capacity` (bytes), `mode` (`low_space` /
/// `high_throughput`), `flush_every_ms` (milliseconds, 0 = never in the
/// background), `create` and `read_only` (`true`/`false`) and `file_mode`
/// (octal, e.g. `0640`). An unknown key, or a value that does not parse,
/// is [`Error::InvalidInput`](annals_core::Error::InvalidInput) naming it.
///
/// ```
/// use annals_core::kv::support::BackendOptions;
/// use annals_sled::{SledMode, SledOptions};
///
/// let options = SledOptions::from_params([("mode", "high_throughput"), ("flush_every_ms", "0")])?;
/// assert_eq!(options.mode, SledMode::HighThroughput);
/// assert_eq!(options.flush_every, None);
///
/// let err = SledOptions::from_params([("cache", "1")]).unwrap_err();
/// assert!(err.to_string().contains("cache_capacity"));
/// # Ok::<(), annals_core::Error>(())
/// ```
impl BackendOptions for SledOptions {
    const BACKEND: &'static str = "sled";
    const PARAMS: &'static [&'static str] = &OWN_PARAMS;

    fn config_mut(&mut self) -> &mut StoreConfig {
        &mut self.config
    }

    fn apply_own(&mut self, key: &str, value: &str) -> Result<bool> {
        match key {
            "cache_capacity" => self.cache_capacity = Some(parse_param(key, value)?),
            "mode" => self.mode = value.parse()?,
            "flush_every_ms" => {
                let ms: u64 = parse_param(key, value)?;
                self.flush_every = (ms > 0).then(|| Duration::from_millis(ms));
            }
            "create" => self.create = parse_param(key, value)?,
            "read_only" => self.read_only = parse_param(key, value)?,
            FileMode::PARAM => self.file_mode = FileMode::parse(value)?,
            _ => return Ok(false),
        }
        Ok(true)
    }
}

impl PathOptions for SledOptions {
    fn restrict(&mut self, access: Access) {
        self.create &= access.may_create();
        self.read_only |= access.read_only();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use annals_core::Durability;

    #[test]
    fn defaults() {
        let o = SledOptions::from_params([]).expect("no params");
        assert_eq!(o, SledOptions::default());
        assert_eq!(o.config.durability, Durability::Immediate);
        assert!(o.create);
        assert!(!o.read_only);
        assert_eq!(o.file_mode, FileMode::PRIVATE);
        assert_eq!(o.cache_capacity, None);
        assert_eq!(o.mode, SledMode::LowSpace);
        assert_eq!(o.flush_every, Some(Duration::from_millis(500)));
    }

    #[test]
    fn every_param() {
        let o = SledOptions::from_params([
            ("durability", "relaxed"),
            ("max_read_count", "5"),
            ("cache_capacity", "1024"),
            ("mode", "high_throughput"),
            ("flush_every_ms", "250"),
            ("create", "false"),
            ("read_only", "true"),
            ("file_mode", "0640"),
        ])
        .expect("valid params");
        assert!(o.read_only);
        assert_eq!(o.file_mode.file_bits(), 0o640);
        assert_eq!(o.config.durability, Durability::Relaxed);
        assert_eq!(o.config.limits.max_read_count, 5);
        assert_eq!(o.cache_capacity, Some(1024));
        assert_eq!(o.mode, SledMode::HighThroughput);
        assert_eq!(o.flush_every, Some(Duration::from_millis(250)));
        assert!(!o.create);
        let o = SledOptions::from_params([("flush_every_ms", "0"), ("mode", "low_space")])
            .expect("valid params");
        assert_eq!(o.flush_every, None);
        assert_eq!(o.mode, SledMode::LowSpace);
    }

    #[test]
    fn unknown_key_is_named_with_the_known_ones() {
        let err = SledOptions::from_params([("cache", "1")]).expect_err("unknown key");
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
            ("cache_capacity", "-1"),
            ("mode", "fast"),
            ("flush_every_ms", "soon"),
            ("create", "yes"),
            ("read_only", "1"),
            ("file_mode", "0777"),
            ("durability", "eventually"),
            ("max_read_count", "0"),
        ] {
            let err = SledOptions::from_params([(k, v)]).expect_err(k);
            assert!(
                matches!(err, Error::InvalidInput { .. }),
                "{k}={v}: {err:?}"
            );
        }
    }
}
