//! From RocksDB's errors to annals' [`Error`].

use std::path::Path;

use annals_core::{CorruptionAt, Error};
use rocksdb::ErrorKind;

/// Turns a RocksDB error into an annals [`Error`]: `what` says what annals
/// was doing ("committing to", "opening", …), `path` names the store's
/// folder.
///
/// - a `Corruption` status (a checksum mismatch, a damaged MANIFEST, a
///   truncated table file, …) → [`Error::Corruption`];
/// - a failure to lock the folder gets a message saying it is already
///   open;
/// - everything else → [`Error::Backend`] with RocksDB's error as the
///   source.
pub(crate) fn from_rocksdb(what: &str, path: &Path, err: rocksdb::Error) -> Error {
    let shown = path.display();
    match err.kind() {
        ErrorKind::Corruption => Error::corruption(
            CorruptionAt::Path(path.to_path_buf()),
            format!("RocksDB store {shown} is damaged ({what} it): {err}"),
        ),
        ErrorKind::IOError if err.as_ref().contains("LOCK") => Error::backend(
            format!(
                "{what} RocksDB store {shown}: it is already open, by another store of this \
                 process or by another process"
            ),
            err,
        ),
        _ => Error::backend(format!("{what} RocksDB store {shown}"), err),
    }
}
