//! The toolkit of engine crates: what every [`KvEngine`](super::KvEngine)
//! over a third-party library needs and would otherwise write again.
//!
//! - [`no_panic`] and [`EnginePanic`]: a panic of the engine's library (on
//!   damaged files) becomes an [`Error::Backend`], never a panic of the
//!   caller's;
//! - [`LiveSnapshots`] and [`Ticket`]: counting the snapshots alive, so
//!   that `compact` or `close` can wait for them to end;
//! - [`scan_iter`] and [`next_in`]: the scan loop over a double-ended range;
//! - [`damaged`] and [`already_open`]: the errors of a store the library
//!   found damaged, and of one whose files another store holds;
//! - [`BackendOptions`]: a backend's options with the URL parameter loop
//!   ([`BackendOptions::from_params`]) provided, and
//!   [`backend_options!`](crate::backend_options) to implement it from a
//!   table of the backend's own parameters ([`parse_some`],
//!   [`parse_millis`], [`parse_file_mode`], [`parse_text`]);
//! - durable file replacement and folder sync live in
//!   [`files`](crate::files) ([`files::replace_file`](crate::files::replace_file),
//!   [`files::sync_folder`](crate::files::sync_folder)), beside the rules of
//!   which files are a store's own.

use std::any::Any;
use std::fmt;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;
use std::str::FromStr;
use std::sync::{
    Arc, Condvar, Mutex, MutexGuard, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard,
};
use std::time::Duration;

use super::engine::{Scan, Visitor};
use crate::backend::{Direction, StoreConfig};
use crate::error::{BoxError, CorruptionAt, Error, Result};

/// A panic of an engine's library, caught before it left annals' API: the
/// source of the [`Error::Backend`] that [`no_panic`] answers. Libraries
/// that trust the files they open can panic on damaged bytes; annals
/// reports that as an error instead.
///
/// ```
/// use annals_core::Error;
/// use annals_core::kv::support::{EnginePanic, no_panic};
///
/// let err = no_panic("redb", "reading", "store.redb".as_ref(), || panic!("bad page")).unwrap_err();
/// let Error::Backend { source, message } = &err else { unreachable!() };
/// assert_eq!(message, "reading store.redb: redb panicked (its files may be damaged)");
/// let panic = source.downcast_ref::<EnginePanic>().unwrap();
/// assert_eq!((panic.engine(), panic.message()), ("redb", "bad page"));
/// assert_eq!(panic.to_string(), "redb panicked: bad page");
/// ```
#[derive(Debug)]
pub struct EnginePanic {
    engine: &'static str,
    message: String,
}

impl EnginePanic {
    /// The panic of `engine` with the message of its `payload` (what
    /// [`catch_unwind`] caught).
    pub fn new(engine: &'static str, payload: &(dyn Any + Send)) -> EnginePanic {
        EnginePanic {
            engine,
            message: panic_message(payload),
        }
    }

    /// The engine that panicked (`redb`, `sled`, …).
    pub fn engine(&self) -> &'static str {
        self.engine
    }

    /// The panic's message.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for EnginePanic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} panicked: {}", self.engine, self.message)
    }
}

impl std::error::Error for EnginePanic {}

/// The message of a panic's payload: the `&str` or `String` that `panic!`
/// was given, or `(no message)`.
///
/// ```
/// use annals_core::kv::support::panic_message;
///
/// let payload = std::panic::catch_unwind(|| panic!("at {}", 7)).unwrap_err();
/// assert_eq!(panic_message(payload.as_ref()), "at 7");
/// ```
pub fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "(no message)".to_string()
    }
}

/// Runs `f` (which calls into `engine`'s library), turning a panic into an
/// [`Error::Backend`] that names what was done (`what`: "reading",
/// "committing to", …) and the store's `path`, with an [`EnginePanic`] as
/// its source. See [`EnginePanic`] for an example.
pub fn no_panic<T>(
    engine: &'static str,
    what: &str,
    path: &Path,
    f: impl FnOnce() -> T,
) -> Result<T> {
    catch_unwind(AssertUnwindSafe(f)).map_err(|payload| {
        Error::backend(
            format!(
                "{what} {}: {engine} panicked (its files may be damaged)",
                path.display()
            ),
            EnginePanic::new(engine, payload.as_ref()),
        )
    })
}

/// Drops `value` (an engine's database, transaction or read view),
/// ignoring a panic of the engine's library in its `Drop` (damaged files
/// can cause one): for an engine's own `Drop`, which must not panic.
///
/// ```
/// struct Fragile;
/// impl Drop for Fragile {
///     fn drop(&mut self) {
///         panic!("damaged");
///     }
/// }
/// annals_core::kv::support::drop_quietly(Fragile);
/// ```
pub fn drop_quietly<T>(value: T) {
    let _ = catch_unwind(AssertUnwindSafe(move || drop(value)));
}

/// Counts the live snapshots of an engine, so that an operation that needs
/// the database to itself (`compact`, `close`) can wait for them to end.
///
/// A snapshot holds the [`Ticket`] that [`enter`](LiveSnapshots::enter)
/// gave it, dropped after the engine's read view is released.
///
/// ```
/// use std::sync::Arc;
/// use std::time::Duration;
/// use annals_core::kv::support::LiveSnapshots;
///
/// let live = Arc::new(LiveSnapshots::default());
/// let ticket = live.enter();
/// assert_eq!(live.wait_none(Duration::from_millis(1)), 1);
/// drop(ticket);
/// assert_eq!(live.wait_none(Duration::from_secs(1)), 0);
/// ```
#[derive(Debug, Default)]
pub struct LiveSnapshots {
    count: Mutex<usize>,
    none_left: Condvar,
}

impl LiveSnapshots {
    /// Counts a new snapshot; dropping the ticket uncounts it.
    pub fn enter(self: &Arc<Self>) -> Ticket {
        *lock(&self.count) += 1;
        Ticket(Arc::clone(self))
    }

    /// Waits up to `timeout` for no snapshot to be left; answers how many
    /// are (0: none).
    pub fn wait_none(&self, timeout: Duration) -> usize {
        let count = lock(&self.count);
        let (count, _) = self
            .none_left
            .wait_timeout_while(count, timeout, |n| *n > 0)
            .unwrap_or_else(PoisonError::into_inner);
        *count
    }
}

/// A live snapshot's place in [`LiveSnapshots`]: dropping it ends the
/// snapshot.
#[derive(Debug)]
pub struct Ticket(Arc<LiveSnapshots>);

impl Drop for Ticket {
    fn drop(&mut self) {
        let mut count = lock(&self.0.count);
        *count = count.saturating_sub(1);
        if *count == 0 {
            self.0.none_left.notify_all();
        }
    }
}

/// Locks `mutex`, also when a thread panicked while holding it (what it
/// guards stays consistent: every holder only reads or replaces it whole).
pub fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Locks `rwlock` for reading, also when a thread panicked while holding
/// it (as [`lock`]).
pub fn read_lock<T>(rwlock: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    rwlock.read().unwrap_or_else(PoisonError::into_inner)
}

/// Locks `rwlock` for writing, also when a thread panicked while holding
/// it (as [`lock`]).
pub fn write_lock<T>(rwlock: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    rwlock.write().unwrap_or_else(PoisonError::into_inner)
}

/// The [`Error::Backend`] of an operation on the store at `path` that
/// waited too long (for live snapshots to end, say): naming what was done
/// and the path, with a `TimedOut` I/O error saying why as its source.
pub fn timed_out(what: &str, path: &Path, why: String) -> Error {
    let source = std::io::Error::new(std::io::ErrorKind::TimedOut, why);
    Error::backend(format!("{what} {}", path.display()), source)
}

/// The [`Error::Corruption`] of a store that the engine's library found
/// damaged: naming the store's `path` (as `kind`: "redb file", "sled
/// store"), what was done (`what`: "reading", …) and the library's
/// `detail`.
///
/// ```
/// use annals_core::kv::support::damaged;
///
/// let err = damaged("redb file", "reading", "store.redb".as_ref(), "bad page 7");
/// assert!(err.is_corruption());
/// assert_eq!(err.to_string(), "corruption: redb file store.redb is damaged (reading it): bad page 7");
/// ```
pub fn damaged(kind: &str, what: &str, path: &Path, detail: impl fmt::Display) -> Error {
    let message = format!("{kind} {} is damaged ({what} it): {detail}", path.display());
    Error::corruption(CorruptionAt::Path(path.to_path_buf()), message)
}

/// The [`Error::Backend`] of opening a store whose files the engine's
/// library finds locked: naming what was done and the `path`, and saying
/// that `subject` ("the file", "the store") is already open — by another
/// store of this process or by another process — with the library's error
/// as its source.
///
/// ```
/// use annals_core::kv::support::already_open;
///
/// let err = already_open("opening", "store.redb".as_ref(), "the file", "locked");
/// assert!(err.to_string().contains(
///     "opening store.redb: the file is already open, by another store of this process or by \
///      another process"
/// ));
/// ```
pub fn already_open(what: &str, path: &Path, subject: &str, source: impl Into<BoxError>) -> Error {
    let shown = path.display();
    let message = format!(
        "{what} {shown}: {subject} is already open, by another store of this process or by \
         another process"
    );
    Error::backend(message, source)
}

/// The next entry of a double-ended range in `direction`: from its front
/// going `Forward`, from its back going `Backward`.
pub fn next_in<I: DoubleEndedIterator>(range: &mut I, direction: Direction) -> Option<I::Item> {
    match direction {
        Direction::Forward => range.next(),
        Direction::Backward => range.next_back(),
    }
}

/// A guard around the calls into an engine's library: runs the closure it
/// is given, turning a panic into an error (e.g.
/// `&|step| no_panic("redb", "reading", path, step)`), or [`unguarded`].
pub type Guard<'a> = dyn Fn(&mut dyn FnMut()) -> Result<()> + 'a;

/// The [`Guard`] of an engine whose library does not panic on its data
/// (an in-memory map): runs the closure as it is.
pub fn unguarded(step: &mut dyn FnMut()) -> Result<()> {
    step();
    Ok(())
}

/// The scan loop of [`KvSnapshot::scan`](super::KvSnapshot::scan) over an
/// engine's range of `[start, end)`, a double-ended iterator of
/// `Result<(key, value), E>`: visits its entries in `direction` until the
/// range ends or `visit` answers [`Scan::Stop`] or an error.
///
/// Each step of the range, and each look at a key's and value's bytes
/// (`as_ref`, which may read the engine's pages), runs under `guard`; the
/// visitor runs outside it, so only the engine's panics become errors. An
/// engine error becomes annals' through `map_err`.
///
/// Build the range only for `start < end`: many libraries (and
/// `BTreeMap`) panic on a range whose start is past its end.
///
/// ```
/// use std::collections::BTreeMap;
/// use annals_core::{Direction, Error};
/// use annals_core::kv::Scan;
/// use annals_core::kv::support::{scan_iter, unguarded};
///
/// let map: BTreeMap<Vec<u8>, Vec<u8>> = [(b"a".to_vec(), b"1".to_vec()), (b"b".to_vec(), b"2".to_vec())].into();
/// let mut keys = Vec::new();
/// let range = map.range(b"a".to_vec()..b"c".to_vec()).map(Ok::<_, Error>);
/// scan_iter(range, Direction::Backward, &unguarded, |e| e, &mut |key, _value| {
///     keys.push(key.to_vec());
///     Ok(Scan::Continue)
/// })?;
/// assert_eq!(keys, [b"b".to_vec(), b"a".to_vec()]);
/// # Ok::<(), Error>(())
/// ```
pub fn scan_iter<I, K, V, E>(
    mut range: I,
    direction: Direction,
    guard: &Guard<'_>,
    map_err: impl Fn(E) -> Error,
    visit: &mut Visitor<'_>,
) -> Result<()>
where
    I: DoubleEndedIterator<Item = std::result::Result<(K, V), E>>,
    K: AsRef<[u8]>,
    V: AsRef<[u8]>,
{
    loop {
        let mut next = None;
        guard(&mut || next = next_in(&mut range, direction))?;
        let Some(entry) = next else {
            return Ok(());
        };
        let (key, value) = entry.map_err(&map_err)?;
        let mut bytes = None;
        guard(&mut || bytes = Some((key.as_ref(), value.as_ref())))?;
        let Some((key, value)) = bytes else {
            return Ok(());
        };
        if visit(key, value)? == Scan::Stop {
            return Ok(());
        }
    }
}

/// Parses an option's value that is one of a few names (`choices`: each
/// name with its value); any other value is [`Error::InvalidInput`] naming
/// `what` (`compression`, `option mode =`), the value and every name.
///
/// ```
/// use annals_core::kv::support::parse_choice;
///
/// let choices = [("fast", 1), ("small", 2)];
/// assert_eq!(parse_choice("mode", "small", &choices)?, 2);
/// let err = parse_choice("mode", "big", &choices).unwrap_err();
/// assert!(err.to_string().contains(r#"mode "big" is not one of "fast", "small""#));
/// # Ok::<(), annals_core::Error>(())
/// ```
pub fn parse_choice<T: Copy>(what: &str, value: &str, choices: &[(&str, T)]) -> Result<T> {
    let found = choices.iter().find(|(name, _)| *name == value);
    found.map(|&(_, choice)| choice).ok_or_else(|| {
        let names: Vec<String> = choices
            .iter()
            .map(|(name, _)| format!("{name:?}"))
            .collect();
        Error::malformed(
            crate::Field::StoreOption,
            format!(
                "{what} {} is not one of {}",
                crate::show_text(value),
                names.join(", ")
            ),
        )
    })
}

/// The options of a backend, as a URL's query sets them: the options every
/// backend takes ([`StoreConfig`]) and the backend's own. A backend
/// implements the three required items; the parameter loop, with its
/// errors, is provided.
///
/// ```
/// use annals_core::kv::support::BackendOptions;
/// use annals_core::{Durability, Result, StoreConfig, parse_param};
///
/// #[derive(Default)]
/// struct MyOptions {
///     config: StoreConfig,
///     cache_size: Option<usize>,
/// }
///
/// impl BackendOptions for MyOptions {
///     const BACKEND: &'static str = "mine";
///     const PARAMS: &'static [&'static str] = &["cache_size"];
///     fn config_mut(&mut self) -> &mut StoreConfig {
///         &mut self.config
///     }
///     fn apply_own(&mut self, key: &str, value: &str) -> Result<bool> {
///         match key {
///             "cache_size" => self.cache_size = Some(parse_param(key, value)?),
///             _ => return Ok(false),
///         }
///         Ok(true)
///     }
/// }
///
/// let options = MyOptions::from_params([("durability", "relaxed"), ("cache_size", "64")])?;
/// assert_eq!((options.config.durability, options.cache_size), (Durability::Relaxed, Some(64)));
/// let err = MyOptions::from_params([("cache", "1")]).err().unwrap();
/// assert!(err.to_string().contains("unknown option \"cache\" for the mine backend"));
/// # Ok::<(), annals_core::Error>(())
/// ```
pub trait BackendOptions: Default {
    /// The backend's name, as error messages give it (`redb`).
    const BACKEND: &'static str;

    /// The names of the backend's own parameters, in the order error
    /// messages list them (after [`StoreConfig::PARAMS`]).
    const PARAMS: &'static [&'static str];

    /// The options every backend takes.
    fn config_mut(&mut self) -> &mut StoreConfig;

    /// Applies one of the backend's own parameters; answers `Ok(false)`
    /// for a key that is not one of [`PARAMS`](Self::PARAMS). A value that
    /// does not parse is [`Error::InvalidInput`] naming it.
    fn apply_own(&mut self, key: &str, value: &str) -> Result<bool>;

    /// The default options with this store config.
    fn with_config(config: StoreConfig) -> Self {
        let mut options = Self::default();
        *options.config_mut() = config;
        options
    }

    /// Applies one text parameter: first the options every backend takes
    /// ([`StoreConfig::apply_param`]), then the backend's own. An unknown
    /// key is [`Error::InvalidInput`] listing the known ones
    /// ([`StoreConfig::unknown_param`]).
    fn apply_param(&mut self, key: &str, value: &str) -> Result<()> {
        if self.config_mut().apply_param(key, value)? || self.apply_own(key, value)? {
            return Ok(());
        }
        Err(StoreConfig::unknown_param(Self::BACKEND, key, Self::PARAMS))
    }

    /// Options from text parameters (a URL's query), applied in order over
    /// the defaults (see [`apply_param`](Self::apply_param)).
    fn from_params<'a>(params: impl IntoIterator<Item = (&'a str, &'a str)>) -> Result<Self> {
        let mut options = Self::default();
        for (key, value) in params {
            options.apply_param(key, value)?;
        }
        Ok(options)
    }
}

/// Parses a parameter whose option is `Some(value)` when given (a cache
/// size, say, whose default is the engine's own): the value as
/// [`parse_param`](crate::parse_param) parses it.
///
/// ```
/// use annals_core::kv::support::parse_some;
///
/// assert_eq!(parse_some::<usize>("cache_size", "64")?, Some(64));
/// assert!(parse_some::<usize>("cache_size", "-1").is_err());
/// # Ok::<(), annals_core::Error>(())
/// ```
pub fn parse_some<T: FromStr>(key: &str, value: &str) -> Result<Option<T>> {
    crate::parse_param(key, value).map(Some)
}

/// Parses a parameter in milliseconds (`sync_interval_ms`,
/// `flush_every_ms`) where 0 means never: `None`.
///
/// ```
/// use std::time::Duration;
/// use annals_core::kv::support::parse_millis;
///
/// assert_eq!(parse_millis("sync_interval_ms", "250")?, Some(Duration::from_millis(250)));
/// assert_eq!(parse_millis("sync_interval_ms", "0")?, None);
/// assert!(parse_millis("sync_interval_ms", "soon").is_err());
/// # Ok::<(), annals_core::Error>(())
/// ```
pub fn parse_millis(key: &str, value: &str) -> Result<Option<Duration>> {
    let ms: u64 = crate::parse_param(key, value)?;
    Ok((ms > 0).then(|| Duration::from_millis(ms)))
}

/// Parses [`FileMode::PARAM`](crate::files::FileMode::PARAM) (octal, as
/// [`FileMode::parse`](crate::files::FileMode::parse), whose error names
/// that parameter).
pub fn parse_file_mode(_key: &str, value: &str) -> Result<crate::files::FileMode> {
    crate::files::FileMode::parse(value)
}

/// Parses a parameter of a type whose `FromStr` answers annals' own
/// [`Error`] (an enum of the backend's, whose error lists its values).
pub fn parse_text<T: FromStr<Err = Error>>(_key: &str, value: &str) -> Result<T> {
    value.parse()
}

/// Implements [`BackendOptions`] for a backend's options struct from a
/// table of its own URL parameters — each a name, the field it sets and
/// the function that parses its value (`fn(key, value) -> Result<T>`:
/// [`parse_param`](crate::parse_param), [`parse_some`], [`parse_millis`],
/// [`parse_file_mode`], [`parse_text`], or the backend's own) — and,
/// optionally, [`PathOptions`](crate::driver::PathOptions) and
/// [`ClaimOptions`](crate::files::ClaimOptions) from the names of its
/// `create`, `read_only` and file mode fields (`access: create, read_only,
/// file_mode;`): the URL's access restricts the first two, and the claim
/// names the backend as its marker does.
///
/// The struct must have a `config: StoreConfig` field. When every entry
/// ends with `= default`, `Default` is implemented too: `config` is
/// `StoreConfig::default()` and every other field is its entry's default
/// (so the struct has no field outside the table); otherwise the struct
/// implements `Default` itself. The parameters are listed in the table's order in error
/// messages; a value that does not parse is the parse function's error.
/// With `validate: f;`, `f(&options)` checks the options after every
/// parameter of the backend's own.
///
/// ```
/// use annals_core::Durability;
/// use annals_core::files::FileMode;
/// use annals_core::kv::support::{BackendOptions, parse_file_mode, parse_some};
/// use annals_core::{StoreConfig, parse_param};
///
/// struct MyOptions {
///     config: StoreConfig,
///     cache_size: Option<usize>,
///     create: bool,
///     read_only: bool,
///     file_mode: FileMode,
/// }
///
/// annals_core::backend_options! {
///     MyOptions, "mine" {
///         "cache_size" => cache_size: parse_some = None,
///         "create" => create: parse_param = true,
///         "read_only" => read_only: parse_param = false,
///         FileMode::PARAM => file_mode: parse_file_mode = FileMode::PRIVATE,
///     }
///     access: create, read_only, file_mode;
/// }
///
/// let options = MyOptions::default();
/// assert!(options.create && options.cache_size.is_none());
///
/// let options = MyOptions::from_params([("durability", "relaxed"), ("cache_size", "64")])?;
/// assert_eq!((options.config.durability, options.cache_size), (Durability::Relaxed, Some(64)));
/// assert_eq!(MyOptions::PARAMS, ["cache_size", "create", "read_only", "file_mode"]);
/// let err = MyOptions::from_params([("cache", "1")]).err().unwrap();
/// assert!(err.to_string().contains("unknown option \"cache\" for the mine backend"));
///
/// use annals_core::files::ClaimOptions;
/// assert_eq!((options.claim().backend, options.claim().create), ("mine", true));
/// # Ok::<(), annals_core::Error>(())
/// ```
#[macro_export]
macro_rules! backend_options {
    (
        $(#[$meta:meta])*
        $options:ty, $backend:literal {
            $($name:expr => $field:ident: $parse:path = $default:expr),+ $(,)?
        }
        $($rest:tt)*
    ) => {
        impl ::core::default::Default for $options {
            fn default() -> Self {
                Self {
                    config: $crate::StoreConfig::default(),
                    $($field: $default),+
                }
            }
        }

        $crate::backend_options! {
            $(#[$meta])*
            $options, $backend {
                $($name => $field: $parse),+
            }
            $($rest)*
        }
    };
    (
        $(#[$meta:meta])*
        $options:ty, $backend:literal {
            $($name:expr => $field:ident: $parse:path),+ $(,)?
        }
        $(validate: $validate:path;)?
        $(access: $create:ident, $read_only:ident, $mode:ident;)?
    ) => {
        $(#[$meta])*
        impl $crate::kv::support::BackendOptions for $options {
            const BACKEND: &'static str = $backend;
            const PARAMS: &'static [&'static str] = &[$($name),+];

            fn config_mut(&mut self) -> &mut $crate::StoreConfig {
                &mut self.config
            }

            fn apply_own(&mut self, key: &str, value: &str) -> $crate::Result<bool> {
                $(if key == $name {
                    self.$field = $parse(key, value)?;
                } else)+ {
                    return ::core::result::Result::Ok(false);
                }
                $($validate(self)?;)?
                ::core::result::Result::Ok(true)
            }
        }

        $(impl $crate::driver::PathOptions for $options {
            fn restrict(&mut self, access: $crate::driver::Access) {
                self.$create &= access.may_create();
                self.$read_only |= access.read_only();
            }
        }

        impl $crate::files::ClaimOptions for $options {
            fn claim(&self) -> $crate::files::Claim<'static> {
                $crate::files::Claim {
                    backend: $backend,
                    create: self.$create,
                    read_only: self.$read_only,
                    mode: self.$mode,
                }
            }
        })?
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    type Entry<K, E> = std::result::Result<(K, K), E>;

    #[test]
    fn scan_stops_when_the_guard_catches_a_panic() {
        let entries: Vec<Entry<Vec<u8>, Error>> = vec![
            Ok((b"a".to_vec(), b"1".to_vec())),
            Ok((b"b".to_vec(), b"2".to_vec())),
        ];
        let mut seen = 0;
        let panicking = entries.into_iter().inspect(|entry| {
            if entry.as_ref().is_ok_and(|(k, _)| k == b"b") {
                panic!("damaged page");
            }
        });
        let guard = |step: &mut dyn FnMut()| no_panic("test", "reading", Path::new("x"), step);
        let err = scan_iter(panicking, Direction::Forward, &guard, |e| e, &mut |_, _| {
            seen += 1;
            Ok(Scan::Continue)
        })
        .expect_err("the panic is an error");
        assert_eq!(seen, 1);
        assert!(matches!(err, Error::Backend { .. }), "{err:?}");
    }

    #[test]
    fn scan_passes_engine_errors_and_stops() {
        let entries: Vec<Entry<&[u8], &str>> =
            vec![Ok((b"a", b"1")), Ok((b"b", b"2")), Err("bad block")];
        let map_err = |e: &str| Error::backend("reading", e.to_string());
        let mut keys = Vec::new();
        scan_iter(
            entries.clone().into_iter(),
            Direction::Forward,
            &unguarded,
            map_err,
            &mut |k, _| {
                keys.push(k.to_vec());
                Ok(if keys.len() == 2 {
                    Scan::Stop
                } else {
                    Scan::Continue
                })
            },
        )
        .expect("stopped before the error");
        assert_eq!(keys, [b"a".to_vec(), b"b".to_vec()]);
        let err = scan_iter(
            entries.into_iter(),
            Direction::Forward,
            &unguarded,
            map_err,
            &mut |_, _| Ok(Scan::Continue),
        )
        .expect_err("the engine's error");
        assert!(err.to_string().contains("reading"), "{err}");
    }

    #[test]
    fn choices_parse_and_refuse_others() {
        let choices = [("none", 0u8), ("lz4", 1), ("zstd", 2)];
        assert_eq!(
            parse_choice("compression", "zstd", &choices).expect("a name"),
            2
        );
        for bad in ["", "LZ4", "snappy", "none "] {
            let err = parse_choice("compression", bad, &choices).expect_err(bad);
            assert!(err.is_invalid_input(), "{err:?}");
            let shown = format!("compression {bad:?} is not one of \"none\", \"lz4\", \"zstd\"");
            assert!(err.to_string().contains(&shown), "{err}");
        }
    }

    #[test]
    fn a_table_of_params_sets_validates_and_restricts() {
        use crate::driver::{Access, PathOptions};
        use crate::files::FileMode;

        #[derive(Default, Debug)]
        struct Opts {
            config: StoreConfig,
            cache: Option<u64>,
            create: bool,
            read_only: bool,
            every: Option<Duration>,
            mode: FileMode,
        }
        fn at_most_a_kib(o: &Opts) -> Result<()> {
            match o.cache {
                Some(bytes) if bytes > 1024 => Err(Error::backend("too big", "cache")),
                _ => Ok(()),
            }
        }
        crate::backend_options! {
            Opts, "table" {
                "cache" => cache: parse_some,
                "create" => create: crate::parse_param,
                "read_only" => read_only: crate::parse_param,
                "every_ms" => every: parse_millis,
                FileMode::PARAM => mode: parse_file_mode,
            }
            validate: at_most_a_kib;
            access: create, read_only, mode;
        }
        assert_eq!(
            Opts::PARAMS,
            ["cache", "create", "read_only", "every_ms", "file_mode"]
        );
        let mut o = Opts::from_params([
            ("cache", "512"),
            ("create", "true"),
            ("every_ms", "0"),
            ("every_ms", "20"),
            ("file_mode", "0640"),
            ("durability", "relaxed"),
        ])
        .expect("valid");
        assert_eq!(o.cache, Some(512));
        assert_eq!(o.every, Some(Duration::from_millis(20)));
        assert_eq!(o.mode.file_bits(), 0o640);
        assert_eq!(o.config.durability, crate::Durability::Relaxed);
        assert!(o.create && !o.read_only);
        use crate::files::{Claim, ClaimOptions};
        let claim = Claim {
            backend: "table",
            create: true,
            read_only: false,
            mode: o.mode,
        };
        assert_eq!(o.claim(), claim);
        o.restrict(Access::ReadOnly);
        assert!(!o.create && o.read_only);
        assert!(o.claim().read_only && !o.claim().create);
        let unknown = Opts::from_params([("cash", "1")]).expect_err("unknown");
        assert!(unknown.to_string().contains("every_ms"), "{unknown}");
        for (k, v) in [("cache", "-1"), ("every_ms", "soon"), ("file_mode", "9")] {
            let err = Opts::from_params([(k, v)]).expect_err(k);
            assert!(matches!(err, Error::InvalidInput { .. }), "{k}: {err:?}");
        }
        let too_big = Opts::from_params([("cache", "4096")]).expect_err("validated");
        assert!(too_big.to_string().contains("too big"), "{too_big}");
    }

    #[test]
    fn parse_text_answers_the_types_own_error() {
        #[derive(Debug, PartialEq)]
        struct Mode;
        impl FromStr for Mode {
            type Err = Error;
            fn from_str(s: &str) -> Result<Mode> {
                match s {
                    "fast" => Ok(Mode),
                    _ => Err(Error::backend(format!("no mode {s}"), "mode")),
                }
            }
        }
        assert_eq!(parse_text::<Mode>("mode", "fast").expect("a mode"), Mode);
        let err = parse_text::<Mode>("mode", "slow").expect_err("not a mode");
        assert!(err.to_string().contains("no mode slow"), "{err}");
    }

    #[test]
    fn damaged_and_already_open_name_the_path() {
        let path = Path::new("/var/lib/x.redb");
        let err = damaged("redb file", "opening", path, "bad checksum");
        assert_eq!(
            err.corruption_at(),
            Some(&CorruptionAt::Path(path.to_path_buf()))
        );
        assert!(err.to_string().contains("/var/lib/x.redb"), "{err}");
        let err = already_open("opening", path, "the store", "locked");
        assert!(matches!(err, Error::Backend { .. }), "{err:?}");
        assert!(
            err.to_string()
                .contains("/var/lib/x.redb: the store is already open")
        );
    }

    #[test]
    fn options_apply_in_order_and_refuse_bad_input() {
        #[derive(Default, Debug)]
        struct Opts {
            config: StoreConfig,
            flag: bool,
        }
        impl BackendOptions for Opts {
            const BACKEND: &'static str = "test";
            const PARAMS: &'static [&'static str] = &["flag"];
            fn config_mut(&mut self) -> &mut StoreConfig {
                &mut self.config
            }
            fn apply_own(&mut self, key: &str, value: &str) -> Result<bool> {
                match key {
                    "flag" => self.flag = crate::parse_param(key, value)?,
                    _ => return Ok(false),
                }
                Ok(true)
            }
        }
        let o = Opts::from_params([("flag", "true"), ("flag", "false"), ("max_read_count", "3")])
            .expect("valid");
        assert!(!o.flag);
        assert_eq!(o.config.limits.max_read_count, 3);
        for (k, v) in [("flag", "yes"), ("nope", "1"), ("durability", "soon")] {
            let err = Opts::from_params([(k, v)]).expect_err(k);
            assert!(matches!(err, Error::InvalidInput { .. }), "{err:?}");
        }
        let config = StoreConfig {
            durability: crate::Durability::Relaxed,
            ..StoreConfig::default()
        };
        assert_eq!(
            Opts::with_config(config).config.durability,
            crate::Durability::Relaxed
        );
    }
}
