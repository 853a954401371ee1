//! [`FjallOptions`]: what a `fjall://` URL's query can set.

use annals_core::files::FileMode;
use annals_core::{Result, StoreConfig, parse_param};

/// This backend's own options, besides [`StoreConfig::PARAMS`].
const OWN: [&str; 4] = ["cache_size", "create", "read_only", FileMode::PARAM];

/// How a fjall store is opened; also as URL parameters
/// (`fjall:///var/lib/app/events?durability=relaxed&cache_size=67108864`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct FjallOptions {
    /// Durability and limits (every backend's options).
    pub config: StoreConfig,
    /// Bytes of fjall's block cache (`cache_size`; default fjall's, 32 MiB).
    pub cache_size: Option<u64>,
    /// Create the folder and the store when missing (`create`; default
    /// `true`).
    pub create: bool,
    /// Refuse every write (`read_only`; default `false`). fjall has no
    /// read-only mode: opening may still replay its journal into new
    /// files of its own; annals writes nothing.
    pub read_only: bool,
    /// Permissions of the folder and marker annals creates (`file_mode`,
    /// octal; default `0600`, folders `0700`).
    pub file_mode: FileMode,
}

impl Default for FjallOptions {
    fn default() -> Self {
        FjallOptions::with_config(StoreConfig::default())
    }
}

impl FjallOptions {
    /// The default options with this store config.
    pub fn with_config(config: StoreConfig) -> Self {
        FjallOptions {
            config,
            cache_size: None,
            create: true,
            read_only: false,
            file_mode: FileMode::PRIVATE,
        }
    }

    /// Options from text parameters (a URL's query), applied in order over
    /// the defaults; an unknown key or a value that does not parse is
    /// [`Error::InvalidInput`](annals_core::Error::InvalidInput) naming it.
    ///
    /// ```
    /// use annals_fjall::FjallOptions;
    /// let options = FjallOptions::from_params([("create", "false"), ("cache_size", "1048576")])?;
    /// assert!(!options.create);
    /// assert_eq!(options.cache_size, Some(1 << 20));
    /// assert!(FjallOptions::from_params([("cache", "1")]).unwrap_err().to_string().contains("cache_size"));
    /// # Ok::<(), annals_core::Error>(())
    /// ```
    pub fn from_params<'a>(params: impl IntoIterator<Item = (&'a str, &'a str)>) -> Result<Self> {
        let mut options = FjallOptions::default();
        for (key, value) in params {
            if options.config.apply_param(key, value)? {
                continue;
            }
            match key {
                "cache_size" => options.cache_size = Some(parse_param(key, value)?),
                "create" => options.create = parse_param(key, value)?,
                "read_only" => options.read_only = parse_param(key, value)?,
                FileMode::PARAM => options.file_mode = FileMode::parse(value)?,
                _ => return Err(StoreConfig::unknown_param("fjall", key, &OWN)),
            }
        }
        Ok(options)
    }
}
