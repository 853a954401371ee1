//! Tests of what a store does to the file system: a [`Tree`] records every
//! file and folder under a path (bytes, permission bits, modification
//! time), so a test can prove that opening something changed nothing, and
//! [`mode`] reads permission bits.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// One file or folder of a [`Tree`].
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Entry {
    /// The file's bytes; `None` for a folder.
    pub bytes: Option<Vec<u8>>,
    /// The permission bits (Unix; 0 elsewhere).
    pub mode: u32,
    /// The modification time.
    pub modified: SystemTime,
}

/// Every file and folder under a path (the path itself included), by path.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Tree(pub BTreeMap<PathBuf, Entry>);

impl Tree {
    /// Records `path` and, if it is a folder, everything under it (symbolic
    /// links are not followed). A missing path is an empty tree.
    pub fn of(path: &Path) -> Tree {
        let mut entries = BTreeMap::new();
        if fs::symlink_metadata(path).is_ok() {
            record(path, &mut entries);
        }
        Tree(entries)
    }

    /// Panics, naming every difference, unless `now` equals `self`.
    pub fn assert_same(&self, now: &Tree, what: &str) {
        let mut differences = Vec::new();
        for (path, before) in &self.0 {
            match now.0.get(path) {
                None => differences.push(format!("{} was removed", path.display())),
                Some(after) if after.bytes != before.bytes => {
                    differences.push(format!("{}: bytes changed", path.display()));
                }
                Some(after) if after.mode != before.mode => differences.push(format!(
                    "{}: mode {:o} became {:o}",
                    path.display(),
                    before.mode,
                    after.mode
                )),
                Some(after) if after.modified != before.modified => {
                    differences.push(format!("{}: modification time changed", path.display()));
                }
                Some(_) => {}
            }
        }
        for path in now.0.keys().filter(|p| !self.0.contains_key(*p)) {
            differences.push(format!("{} was created", path.display()));
        }
        assert!(
            differences.is_empty(),
            "{what} changed the file system: {differences:#?}"
        );
    }
}

fn record(path: &Path, entries: &mut BTreeMap<PathBuf, Entry>) {
    let meta = fs::symlink_metadata(path).expect("stat");
    let bytes = if meta.is_file() {
        Some(fs::read(path).expect("read"))
    } else {
        None
    };
    entries.insert(
        path.to_path_buf(),
        Entry {
            bytes,
            mode: mode_bits(&meta),
            modified: meta.modified().expect("mtime"),
        },
    );
    if meta.is_dir() {
        for entry in fs::read_dir(path).expect("list") {
            record(&entry.expect("entry").path(), entries);
        }
    }
}

#[cfg(unix)]
fn mode_bits(meta: &fs::Metadata) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    meta.permissions().mode() & 0o7777
}

#[cfg(not(unix))]
fn mode_bits(_meta: &fs::Metadata) -> u32 {
    0
}

/// The permission bits of `path` (Unix; 0 elsewhere).
pub fn mode(path: &Path) -> u32 {
    mode_bits(&fs::metadata(path).expect("stat"))
}
