//! The close mark: RocksDB's sequence number at the last clean close, kept
//! in a small file of annals' own next to RocksDB's.
//!
//! RocksDB reads its MANIFEST (the log of which table files make up the
//! database) like a write-ahead log: a record that looks cut off at the
//! end is taken for an unfinished write and dropped, silently. So bytes
//! damaged in the length of one of the MANIFEST's last records make RocksDB
//! open an *older* version of the database — in the worst case an empty
//! one — and then delete the table files that version does not name. No
//! checksum fails, so RocksDB reports nothing.
//!
//! annals guards against it: `close` records RocksDB's last sequence number
//! (which only grows, and which every flush persists in the MANIFEST) in
//! `ANNALS-CLOSED`; `open`, when that file exists, first opens the database
//! read-only (which deletes nothing) and refuses with
//! [`Error::Corruption`] if its sequence number went back. A damaged mark is
//! `Corruption` too.

use std::path::Path;

use annals_core::files::{self, FileMode};
use annals_core::{CorruptionAt, Error, Result};

/// The file's name, in the database folder. RocksDB leaves files it does
/// not know alone.
pub(crate) const MARK_FILE: &str = "ANNALS-CLOSED";

const PREFIX: &str = "annals-rocksdb closed at sequence ";

/// The sequence number recorded at the last clean close, if any.
pub(crate) fn read(folder: &Path) -> Result<Option<u64>> {
    let file = folder.join(MARK_FILE);
    let Some(text) = files::read_if_exists(&file)? else {
        return Ok(None);
    };
    // Digits only: `parse` alone would take a sign too. An empty or too
    // large number does not parse.
    let sequence = std::str::from_utf8(&text)
        .ok()
        .and_then(|t| t.strip_prefix(PREFIX)?.strip_suffix('\n'))
        .filter(|digits| digits.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|digits| digits.parse::<u64>().ok());
    let damaged = || {
        let (shown, at) = (folder.display(), file.display());
        let why = format!("RocksDB store {shown} is damaged: its close mark {at} is not readable");
        Error::corruption(CorruptionAt::Path(file.clone()), why)
    };
    sequence.map(Some).ok_or_else(damaged)
}

/// Records `sequence` as the last clean close, durably and atomically
/// (see [`files::replace_file`]).
pub(crate) fn write(folder: &Path, sequence: u64, mode: FileMode) -> Result<()> {
    let text = format!("{PREFIX}{sequence}\n");
    files::replace_file(folder, MARK_FILE, text.as_bytes(), mode)
}

/// Checks that the database did not go back from the last clean close.
pub(crate) fn check(folder: &Path, recorded: u64, found: u64) -> Result<()> {
    if found < recorded {
        return Err(Error::corruption(
            CorruptionAt::Path(folder.to_path_buf()),
            format!(
                "RocksDB store {} is damaged: it opens at sequence number {found}, but it was at \
             {recorded} when it was last closed (a damaged MANIFEST or missing files?); it was \
             not opened for writing, so nothing was deleted",
                folder.display()
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::fs;

    #[test]
    fn round_trip_and_damage() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(read(dir.path()).unwrap(), None);
        write(dir.path(), 42, FileMode::PRIVATE).unwrap();
        assert_eq!(read(dir.path()).unwrap(), Some(42));
        write(dir.path(), u64::MAX, FileMode::PRIVATE).unwrap();
        assert_eq!(read(dir.path()).unwrap(), Some(u64::MAX));
        for bad in [
            &b""[..],
            b"annals-rocksdb closed at sequence \n",
            b"x 1\n",
            b"\xff\xfe",
        ] {
            fs::write(dir.path().join(MARK_FILE), bad).unwrap();
            assert!(matches!(read(dir.path()), Err(Error::Corruption { .. })));
        }
        assert!(check(dir.path(), 5, 5).is_ok());
        assert!(check(dir.path(), 5, 9).is_ok());
        assert!(matches!(
            check(dir.path(), 5, 4),
            Err(Error::Corruption { .. })
        ));
    }
}
