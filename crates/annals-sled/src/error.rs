//! From sled's errors (and panics) to annals' [`Error`].

use std::io;
use std::path::Path;

use annals_core::kv::support;
use annals_core::{CorruptionAt, Error};

/// Turns a sled error into an annals [`Error`]: `what` says what annals was
/// doing ("committing to", "opening", …), `path` names the store's folder.
///
/// sled's `Corruption` is [`Error::Corruption`]; everything else is
/// [`Error::Backend`] with sled's error as the source.
pub(crate) fn from_sled(what: &str, path: &Path, err: sled::Error) -> Error {
    let shown = path.display();
    match err {
        sled::Error::Corruption { at, .. } => Error::corruption(
            CorruptionAt::Path(path.to_path_buf()),
            format!(
                "sled store {shown} is damaged ({what} it): sled found a bad checksum at {}",
                at.map_or_else(|| "an unknown place".to_string(), |at| format!("{at:?}"))
            ),
        ),
        sled::Error::Io(io) if io.to_string().contains("could not acquire lock") => {
            support::already_open(what, path, "the store", io)
        }
        err => Error::backend(format!("{what} {shown}"), err),
    }
}

/// An I/O error of annals' own file handling (the folder, `CURRENT`, the
/// lock, syncing sled's files).
pub(crate) fn from_io(what: &str, path: &Path, err: io::Error) -> Error {
    Error::backend(format!("{what} {}: {err}", path.display()), err)
}

/// A panic of sled, caught before it left annals' API (the source of an
/// [`Error::Backend`]). sled trusts the files it opens, and damaged bytes
/// can make it panic; annals reports that as an error instead.
pub type SledPanic = support::EnginePanic;

/// Runs `f` (which calls into sled), turning a panic into an
/// [`Error::Backend`] that names what was done and the folder.
pub(crate) fn no_panic<T>(what: &str, path: &Path, f: impl FnOnce() -> T) -> Result<T, Error> {
    support::no_panic("sled", what, path, f)
}

/// Runs a call into sled: a panic becomes an error ([`no_panic`]), and
/// sled's error annals' ([`from_sled`]).
pub(crate) fn call<T>(
    what: &str,
    path: &Path,
    f: impl FnOnce() -> Result<T, sled::Error>,
) -> Result<T, Error> {
    no_panic(what, path, f)?.map_err(|e| from_sled(what, path, e))
}
