//! The options of a redb store and their URL parameters.

use std::time::Duration;

use annals_core::files::FileMode;
use annals_core::kv::support::{parse_file_mode, parse_millis, parse_some};
use annals_core::{StoreConfig, parse_param};

/// How to open a redb store.
///
/// The default (the table of parameters below gives each field's), which
/// is what
/// [`from_params`](annals_core::kv::support::BackendOptions::from_params)
/// gives for no parameter: `Durability::Immediate`, the default limits,
/// redb's default cache (1 GiB at most), create the file if missing, check
/// the file's integrity on open, and, with `Durability::Relaxed`, make a
/// commit durable at least once a second; read and write; an owner-only
/// file (`0600`).
///
/// ```
/// use annals_core::Durability;
/// use annals_core::kv::support::BackendOptions;
/// use annals_redb::RedbOptions;
///
/// let options = RedbOptions::from_params([("durability", "relaxed"), ("cache_size", "67108864")])?;
/// assert_eq!(options.config.durability, Durability::Relaxed);
/// assert_eq!(options.cache_size, Some(64 << 20));
///
/// // The same, as a struct:
/// let mut same = RedbOptions::default();
/// same.config.durability = Durability::Relaxed;
/// same.cache_size = Some(64 << 20);
/// assert_eq!(options, same);
/// # Ok::<(), annals_core::Error>(())
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct RedbOptions {
    /// The options every backend takes: durability and limits.
    pub config: StoreConfig,
    /// Bytes redb may use to cache pages (`cache_size`); `None` keeps
    /// redb's default (1 GiB). redb allocates it as it is used.
    pub cache_size: Option<usize>,
    /// Create the file (and its parent folders) when it is missing
    /// (`create`, default `true`). With `false`, a missing file is an
    /// error. An existing file that is not an annals store is always
    /// refused, unchanged (see [`RedbEngine::open`](crate::RedbEngine::open)).
    pub create: bool,
    /// Verify the checksum of every page of the file when it is opened
    /// (`check_integrity`, default `true`), so that a file damaged outside
    /// redb is refused with
    /// [`Error::Corruption`](annals_core::Error::Corruption) before anything
    /// is read from it. Opening then reads the whole file once (redb does the same
    /// after a crash anyway). With `false`, a cleanly closed file is trusted
    /// as it is: opens are instant, and damage shows up only when a damaged
    /// page is read (as an error: see the crate's documentation).
    pub check_integrity: bool,
    /// With `Durability::Relaxed`: the longest time commits stay
    /// non-durable (`sync_interval_ms`, in milliseconds; 0 = `None`). A
    /// commit made this long after the last durable one is made durable,
    /// which bounds both what a crash can lose and the memory redb keeps
    /// for pending non-durable commits. It is checked when committing (there
    /// is no background thread); `close` and `compact` always make
    /// everything durable. `None`: only `close` and `compact` do. Default: 1
    /// second.
    pub sync_interval: Option<Duration>,
    /// Open an existing store read-only (`read_only`, default `false`): the
    /// file is never written (nor created), and every write answers
    /// [`Error::Unsupported`](annals_core::Error::Unsupported). redb's
    /// integrity check (`check_integrity`) needs write access and is not
    /// run; the checksums of annals' records still are. A file that was not
    /// closed cleanly cannot be opened read-only (redb must recover it,
    /// which writes).
    pub read_only: bool,
    /// The permissions of the file, and of the folders, the store creates
    /// (`file_mode`, octal; default `0600`, folders `0700`); an existing
    /// file keeps its own. See [`FileMode`].
    pub file_mode: FileMode,
}

annals_core::backend_options! {
    /// `from_params` (a URL's query, e.g.
    /// `redb:///var/lib/app/events.redb?durability=relaxed&cache_size=268435456`)
    /// takes every backend's options ([`StoreConfig::apply_param`]), then
    /// this backend's: `cache_size` (bytes), `create` (`true`/`false`),
    /// `check_integrity` (`true`/`false`), `sync_interval_ms` (milliseconds, 0
    /// = only on close), `read_only` (`true`/`false`) and `file_mode` (octal,
    /// e.g. `0640`). An unknown key, or a value that does not parse, is
    /// [`Error::InvalidInput`](annals_core::Error::InvalidInput) naming it.
    ///
    /// ```
    /// use annals_core::kv::support::BackendOptions;
    /// use annals_redb::RedbOptions;
    ///
    /// let options = RedbOptions::from_params([("create", "false"), ("sync_interval_ms", "0")])?;
    /// assert!(!options.create);
    /// assert_eq!(options.sync_interval, None);
    ///
    /// let err = RedbOptions::from_params([("cache", "1")]).unwrap_err();
    /// assert!(err.to_string().contains("cache_size"));
    /// # Ok::<(), annals_core::Error>(())
    /// ```
    RedbOptions, "redb" {
        "cache_size" => cache_size: parse_some = None,
        "create" => create: parse_param = true,
        "check_integrity" => check_integrity: parse_param = true,
        "sync_interval_ms" => sync_interval: parse_millis = Some(Duration::from_secs(1)),
        "read_only" => read_only: parse_param = false,
        FileMode::PARAM => file_mode: parse_file_mode = FileMode::PRIVATE,
    }
    access: create, read_only, file_mode;
}

#[cfg(test)]
mod tests {
    use super::*;
    use annals_core::Durability;
    use annals_core::Error;
    use annals_core::kv::support::BackendOptions;

    #[test]
    fn defaults() {
        let o = RedbOptions::from_params([]).expect("no params");
        assert_eq!(o, RedbOptions::default());
        assert_eq!(o.config.durability, Durability::Immediate);
        assert!(o.create);
        assert!(o.check_integrity);
        assert!(!o.read_only);
        assert_eq!(o.file_mode, FileMode::PRIVATE);
        assert_eq!(o.cache_size, None);
        assert_eq!(o.sync_interval, Some(Duration::from_secs(1)));
    }

    #[test]
    fn every_param() {
        let o = RedbOptions::from_params([
            ("durability", "relaxed"),
            ("max_read_count", "5"),
            ("cache_size", "1024"),
            ("create", "false"),
            ("check_integrity", "false"),
            ("sync_interval_ms", "250"),
            ("read_only", "true"),
            ("file_mode", "660"),
        ])
        .expect("valid params");
        assert!(o.read_only);
        assert_eq!(o.file_mode.file_bits(), 0o660);
        assert_eq!(o.config.durability, Durability::Relaxed);
        assert_eq!(o.config.limits.max_read_count, 5);
        assert_eq!(o.cache_size, Some(1024));
        assert!(!o.create);
        assert!(!o.check_integrity);
        assert_eq!(o.sync_interval, Some(Duration::from_millis(250)));
    }

    #[test]
    fn unknown_key_is_named_with_the_known_ones() {
        let err = RedbOptions::from_params([("cache", "1")]).expect_err("unknown key");
        let Error::InvalidInput { message: msg, .. } = &err else {
            panic!("not InvalidInput: {err:?}")
        };
        assert!(msg.contains("\"cache\""), "{msg}");
        for known in StoreConfig::PARAMS.iter().chain(RedbOptions::PARAMS) {
            assert!(msg.contains(known), "{msg} lacks {known}");
        }
    }

    #[test]
    fn bad_values_are_invalid_input() {
        for (k, v) in [
            ("cache_size", "-1"),
            ("create", "yes"),
            ("check_integrity", "1"),
            ("sync_interval_ms", "soon"),
            ("read_only", "yes"),
            ("file_mode", "0700"),
            ("durability", "eventually"),
            ("max_read_count", "0"),
        ] {
            let err = RedbOptions::from_params([(k, v)]).expect_err(k);
            assert!(
                matches!(err, Error::InvalidInput { .. }),
                "{k}={v}: {err:?}"
            );
        }
    }
}
