//! [`FjallOptions`]: what a `fjall://` URL's query can set.

use annals_core::files::FileMode;
use annals_core::kv::support::{parse_file_mode, parse_some};
use annals_core::{StoreConfig, parse_param};

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

annals_core::backend_options! {
    /// `from_params` (a URL's query, applied in order over the defaults) and
    /// `with_config`: an unknown key or a value that does not parse is
    /// [`Error::InvalidInput`](annals_core::Error::InvalidInput) naming it.
    ///
    /// ```
    /// use annals_core::kv::support::BackendOptions;
    /// use annals_fjall::FjallOptions;
    /// let options = FjallOptions::from_params([("create", "false"), ("cache_size", "1048576")])?;
    /// assert!(!options.create);
    /// assert_eq!(options.cache_size, Some(1 << 20));
    /// assert!(FjallOptions::from_params([("cache", "1")]).unwrap_err().to_string().contains("cache_size"));
    /// # Ok::<(), annals_core::Error>(())
    /// ```
    FjallOptions, "fjall" {
        "cache_size" => cache_size: parse_some = None,
        "create" => create: parse_param = true,
        "read_only" => read_only: parse_param = false,
        FileMode::PARAM => file_mode: parse_file_mode = FileMode::PRIVATE,
    }
    access: create, read_only, file_mode;
}
