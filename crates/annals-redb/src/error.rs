//! From redb's errors (and panics) to annals' [`Error`].

use std::io;
use std::path::Path;

use annals_core::Error;
use annals_core::kv::support;

/// Turns any redb error into an annals [`Error`]: `what` says what annals
/// was doing ("committing to", "opening", …), `path` names the file.
///
/// - redb's `Corrupted` → [`Error::Corruption`];
/// - `DatabaseClosed` → [`Error::Closed`];
/// - `DatabaseAlreadyOpen` and "not a redb database" get a message that
///   says so;
/// - everything else → [`Error::Backend`] with redb's error as the source.
pub(crate) fn from_redb(what: &str, path: &Path, err: impl Into<redb::Error>) -> Error {
    let shown = path.display();
    match err.into() {
        redb::Error::Corrupted(detail) => support::damaged("redb file", what, path, detail),
        redb::Error::DatabaseClosed => Error::Closed,
        err @ redb::Error::DatabaseAlreadyOpen => {
            support::already_open(what, path, "the file", err)
        }
        redb::Error::Io(io) if io.kind() == io::ErrorKind::InvalidData => Error::backend(
            format!("{what} {shown}: the file is not a redb database"),
            io,
        ),
        redb::Error::Io(io) if io.kind() == io::ErrorKind::NotFound => {
            Error::backend(format!("{what} {shown}: no such file"), io)
        }
        err => Error::backend(format!("{what} {shown}"), err),
    }
}

/// A panic of redb, caught before it left annals' API (the source of an
/// [`Error::Backend`]). redb trusts the file it opens, so damaged bytes can
/// make it panic; annals reports that as an error instead.
///
/// ```
/// use annals_core::Error;
/// use annals_redb::RedbPanic;
///
/// fn panicked_in_redb(err: &Error) -> bool {
///     matches!(err, Error::Backend { source, .. } if source.downcast_ref::<RedbPanic>().is_some())
/// }
/// assert!(!panicked_in_redb(&Error::Closed));
/// ```
pub type RedbPanic = support::EnginePanic;

/// Runs `f` (which calls into redb), turning a panic into an
/// [`Error::Backend`] that names what was done and the file.
pub(crate) fn no_panic<T>(what: &str, path: &Path, f: impl FnOnce() -> T) -> Result<T, Error> {
    support::no_panic("redb", what, path, f)
}

/// Runs a call into redb: a panic becomes an error ([`no_panic`]), and
/// redb's error annals' ([`from_redb`]).
pub(crate) fn call<T, E: Into<redb::Error>>(
    what: &str,
    path: &Path,
    f: impl FnOnce() -> Result<T, E>,
) -> Result<T, Error> {
    no_panic(what, path, f)?.map_err(|e| from_redb(what, path, e))
}
