//! The file system, the same way for every backend that keeps files: who
//! may read what a store creates ([`FileMode`]), and which folders are a
//! store's own ([`claim_folder`]), so that a backend never writes into,
//! deletes or overwrites anything it did not provably create.
//!
//! The rule every file-based backend keeps: a store's folder is one that
//! annals created (or found empty) and marked with a [`MARKER_FILE`]
//! before anything else went into it. A folder that is not empty and not
//! marked is refused, with nothing written, unless the backend recognises
//! it by its own files as a store of an earlier release of annals (which
//! wrote no marker); such a store is marked when it is first opened for
//! writing.

use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::Path;

use crate::error::{CorruptionAt, Error, Field, InvalidReason, Result};

/// The permission bits of the files and folders a store creates, on Unix
/// (elsewhere they are ignored): [`FileMode::PRIVATE`] (`0600`: the owner
/// reads and writes, nobody else) unless the store's `file_mode` option
/// says otherwise. Folders get the same bits plus the search (`x`) bit
/// wherever a read bit is set, so the default folder is `0700`.
///
/// The bits are set exactly (the process umask does not narrow them), on
/// the files and folders a store *creates*; existing ones are left as they
/// are. Files an engine creates itself inside the store's folder (RocksDB's
/// tables and logs, sled's) get the process umask, but nobody else can
/// reach them through a `0700` folder.
///
/// ```
/// use annals_core::files::FileMode;
///
/// assert_eq!(FileMode::default(), FileMode::PRIVATE);
/// let shared = FileMode::parse("0640")?;
/// assert_eq!((shared.file_bits(), shared.folder_bits()), (0o640, 0o750));
/// assert!(FileMode::parse("0755").is_err()); // no execute bits on files
/// assert!(FileMode::parse("0400").is_err()); // the owner must write
/// # Ok::<(), annals_core::Error>(())
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct FileMode(u32);

impl FileMode {
    /// `0600` files and `0700` folders: the owner only (the default).
    pub const PRIVATE: FileMode = FileMode(0o600);

    /// The name of the URL option of every file-based backend.
    pub const PARAM: &'static str = "file_mode";

    /// The mode with these permission bits for files: read and write bits
    /// only (`0o666` at most), and at least the owner's `0o600`.
    pub fn new(bits: u32) -> Result<FileMode> {
        if bits & !0o666 != 0 || bits & 0o600 != 0o600 {
            return Err(Error::malformed(
                Field::StoreOption,
                format!(
                    "option {} = {bits:#o}: a store's files need read and write bits for their \
                 owner (0600) and may add read/write bits for the group and others (up to \
                 0666), nothing else",
                    Self::PARAM
                ),
            ));
        }
        Ok(FileMode(bits))
    }

    /// Parses an octal mode: `600`, `0640`, `0o660`.
    pub fn parse(value: &str) -> Result<FileMode> {
        let digits = value.strip_prefix("0o").unwrap_or(value);
        let bits = (!digits.is_empty() && digits.len() <= 4)
            .then(|| u32::from_str_radix(digits, 8).ok())
            .flatten()
            .ok_or_else(|| {
                Error::malformed(
                    Field::StoreOption,
                    format!(
                        "option {} = {value:?} is not an octal file mode such as 0600 or 0640",
                        Self::PARAM
                    ),
                )
            })?;
        FileMode::new(bits)
    }

    /// The bits of files.
    pub fn file_bits(self) -> u32 {
        self.0
    }

    /// The bits of folders: the file bits plus `x` wherever `r` is set.
    pub fn folder_bits(self) -> u32 {
        self.0 | ((self.0 & 0o444) >> 2)
    }

    /// Creates `path` and every missing folder above it, each with
    /// [`FileMode::folder_bits`]; folders that exist are left as they are.
    pub fn create_folder_all(self, path: &Path) -> io::Result<()> {
        let mut missing = Vec::new();
        let mut next = Some(path);
        while let Some(folder) = next {
            if folder.as_os_str().is_empty() || folder.is_dir() {
                break;
            }
            missing.push(folder);
            next = folder.parent();
        }
        for folder in missing.into_iter().rev() {
            match self.folder_builder().create(folder) {
                Ok(()) => set_bits(folder, self.folder_bits())?,
                // Made meanwhile by someone else: not ours to change.
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists && folder.is_dir() => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Creates the folder `path`, which must not exist yet (its parent
    /// must), with [`FileMode::folder_bits`].
    pub fn create_folder(self, path: &Path) -> io::Result<()> {
        self.folder_builder().create(path)?;
        set_bits(path, self.folder_bits())
    }

    /// Creates the file `path`, which must not exist yet, for writing,
    /// with [`FileMode::file_bits`].
    pub fn create_new_file(self, path: &Path) -> io::Result<File> {
        let file = self.file_options().create_new(true).open(path)?;
        set_file_bits(&file, self.file_bits())?;
        Ok(file)
    }

    /// Creates or truncates the file `path` (a temporary file of the
    /// store's own) for writing, with [`FileMode::file_bits`].
    pub fn create_file(self, path: &Path) -> io::Result<File> {
        let file = self.file_options().create(true).truncate(true).open(path)?;
        set_file_bits(&file, self.file_bits())?;
        Ok(file)
    }

    fn file_options(self) -> OpenOptions {
        let mut options = OpenOptions::new();
        options.read(true).write(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, self.file_bits());
        options
    }

    fn folder_builder(self) -> fs::DirBuilder {
        #[allow(unused_mut)]
        let mut builder = fs::DirBuilder::new();
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut builder, self.folder_bits());
        builder
    }
}

impl Default for FileMode {
    fn default() -> Self {
        FileMode::PRIVATE
    }
}

impl fmt::Debug for FileMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FileMode({:#06o})", self.0)
    }
}

impl fmt::Display for FileMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04o}", self.0)
    }
}

/// Sets the permission bits of `path` exactly (the umask narrowed them at
/// creation).
#[cfg(unix)]
fn set_bits(path: &Path, bits: u32) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(path, fs::Permissions::from_mode(bits))
}

#[cfg(not(unix))]
fn set_bits(_path: &Path, _bits: u32) -> io::Result<()> {
    Ok(())
}

#[cfg(unix)]
fn set_file_bits(file: &File, bits: u32) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    file.set_permissions(fs::Permissions::from_mode(bits))
}

#[cfg(not(unix))]
fn set_file_bits(_file: &File, _bits: u32) -> io::Result<()> {
    Ok(())
}

/// The file that makes a folder a store's own: written first, before
/// anything else goes into a folder annals creates for a store. It holds
/// one line, `annals: <what>` (e.g. `annals: sled store`).
pub const MARKER_FILE: &str = "ANNALS-STORE";

/// More bytes than any marker has.
const MARKER_MAX_BYTES: u64 = 1024;

fn marker_text(what: &str) -> String {
    format!("annals: {what}\n")
}

/// What [`read_marker`] found in a folder.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum Marker {
    /// No marker file.
    Missing,
    /// A marker naming what the folder holds (`sled store`, …).
    Found(String),
}

/// Reads the marker of the folder `dir`. A marker file that does not read
/// as one of annals' is [`Error::Corruption`] naming it (a damaged marker,
/// or a stranger's file of that name: either way the folder is left
/// alone).
pub fn read_marker(dir: &Path) -> Result<Marker> {
    use std::io::Read;
    let path = dir.join(MARKER_FILE);
    let mut bytes = Vec::new();
    // A marker is one short line: a longer file is not one, and is not
    // read whole.
    match File::open(&path).and_then(|file| file.take(MARKER_MAX_BYTES).read_to_end(&mut bytes)) {
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Marker::Missing),
        Err(e) => return Err(io_error("reading", &path, e)),
    }
    std::str::from_utf8(&bytes)
        .ok()
        .and_then(|text| text.strip_prefix("annals: "))
        .and_then(|text| text.strip_suffix('\n'))
        .filter(|what| {
            !what.is_empty()
                && what
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b' ' || b == b'-')
        })
        .map(|what| Marker::Found(what.to_string()))
        .ok_or_else(|| {
            Error::corruption(
                CorruptionAt::Path(path.clone()),
                format!(
                    "{} is damaged, or not annals' marker file (it starts with {}); annals leaves \
                 this folder alone",
                    path.display(),
                    crate::show_bytes(bytes.get(..64).unwrap_or(&bytes))
                ),
            )
        })
}

/// Writes the marker of `dir` saying it holds `what`: a new file (never
/// over an existing one), synced, and the folder synced, so that it is on
/// disk before anything the store writes next.
pub fn write_marker(dir: &Path, what: &str, mode: FileMode) -> Result<()> {
    let path = dir.join(MARKER_FILE);
    let mut file = mode
        .create_new_file(&path)
        .map_err(|e| io_error("creating", &path, e))?;
    file.write_all(marker_text(what).as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(|e| io_error("writing", &path, e))?;
    sync_folder(dir)
}

/// fsync of a folder: makes the creation, removal and renaming of its
/// entries durable.
pub fn sync_folder(path: &Path) -> Result<()> {
    File::open(path)
        .and_then(|dir| dir.sync_all())
        .map_err(|e| io_error("syncing the folder", path, e))
}

/// Replaces the file `name` in the folder `dir` with `contents`, durably
/// and atomically: writes `<name>.tmp` (with `mode`), syncs it, renames it
/// over `name` and syncs the folder. After a crash the file holds either
/// its old contents or the new ones, never a mix.
///
/// Only for files of the store's own, in a folder the store claimed
/// ([`claim_folder`]): both `name` and `<name>.tmp` are overwritten.
/// Errors are [`Error::Backend`] naming the file.
///
/// ```
/// use annals_core::files::{FileMode, replace_file};
///
/// let dir = tempfile::tempdir()?;
/// replace_file(dir.path(), "CURRENT", b"gen-1\n", FileMode::PRIVATE)?;
/// replace_file(dir.path(), "CURRENT", b"gen-2\n", FileMode::PRIVATE)?;
/// assert_eq!(std::fs::read(dir.path().join("CURRENT"))?, b"gen-2\n");
/// assert!(!dir.path().join("CURRENT.tmp").exists());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn replace_file(dir: &Path, name: &str, contents: &[u8], mode: FileMode) -> Result<()> {
    let temporary = dir.join(format!("{name}.tmp"));
    let mut file = mode
        .create_file(&temporary)
        .map_err(|e| io_error("creating", &temporary, e))?;
    file.write_all(contents)
        .and_then(|()| file.sync_all())
        .map_err(|e| io_error("writing", &temporary, e))?;
    drop(file);
    let path = dir.join(name);
    fs::rename(&temporary, &path).map_err(|e| io_error("renaming", &path, e))?;
    sync_folder(dir)
}

/// The contents of the file `path` (a small file of the store's own: a
/// pointer like `CURRENT`, a close mark), or `None` if there is no such
/// file. Other errors are [`Error::Backend`] naming it.
///
/// ```
/// use annals_core::files::read_if_exists;
///
/// let dir = tempfile::tempdir()?;
/// assert_eq!(read_if_exists(&dir.path().join("CLOSED"))?, None);
/// std::fs::write(dir.path().join("CLOSED"), b"at 7\n")?;
/// assert_eq!(read_if_exists(&dir.path().join("CLOSED"))?, Some(b"at 7\n".to_vec()));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn read_if_exists(path: &Path) -> Result<Option<Vec<u8>>> {
    match fs::read(path) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io_error("reading", path, e)),
    }
}

/// The bytes of the files directly in the folder `dir` (sub-folders are
/// not entered) whose names `counted` accepts: what an engine's data
/// files take on disk. A file deleted after the folder was listed (an
/// engine deletes files as it compacts) takes no space any more and
/// counts 0; a name that is not UTF-8 is not counted. Other errors are
/// [`Error::Backend`] naming the folder.
///
/// ```
/// use annals_core::files::files_bytes;
///
/// let dir = tempfile::tempdir()?;
/// std::fs::write(dir.path().join("1.sst"), [0u8; 10])?;
/// std::fs::write(dir.path().join("LOG"), [0u8; 5])?;
/// std::fs::create_dir(dir.path().join("old.sst"))?;
/// assert_eq!(files_bytes(dir.path(), |name| name.ends_with(".sst"))?, 10);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn files_bytes(dir: &Path, counted: impl Fn(&str) -> bool) -> Result<u64> {
    let listing = |e| io_error("listing the files of", dir, e);
    let mut bytes = 0u64;
    for entry in fs::read_dir(dir).map_err(listing)? {
        let entry = entry.map_err(listing)?;
        if !entry.file_name().to_str().is_some_and(&counted) {
            continue;
        }
        match entry.metadata() {
            Ok(meta) if meta.is_file() => bytes = bytes.saturating_add(meta.len()),
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_error("sizing the files of", dir, e)),
        }
    }
    Ok(bytes)
}

/// An I/O error of annals' own file handling: [`Error::Backend`] naming
/// what was done and the path.
pub fn io_error(what: &str, path: &Path, error: io::Error) -> Error {
    Error::backend(format!("{what} {}", path.display()), error)
}

/// The error of a write to a store opened read-only (`read_only=true`):
/// [`Error::Unsupported`] naming the store.
pub fn read_only_error(path: &Path) -> Error {
    Error::Unsupported(format!(
        "writing to {}: the store was opened read-only",
        path.display()
    ))
}

/// The [`Error::InvalidInput`] of a path that holds something that is
/// not the backend's store (another program's files, another backend's
/// store…): [`InvalidReason::Conflict`] of [`Field::StoreUrl`].
pub fn not_a_store(message: impl Into<String>) -> Error {
    Error::invalid(InvalidReason::Conflict(Field::StoreUrl), message)
}

/// Decides whether a store kept in one file may use the file `path`,
/// before anything is written to it — [`claim_folder`]'s rule for a
/// backend whose store is one file:
///
/// - missing: with `create` (and not `read_only`) it is created as a new
///   file (never over one that exists) with the claim's [`FileMode`], in
///   folders created with it where missing, and returned; otherwise an
///   [`Error::Backend`] naming it, whose source is the `NotFound` error;
/// - a folder, or an empty file (which annals never leaves: an interrupted
///   creation, or another program's): [`Error::InvalidInput`] naming it;
/// - a file with contents: `None`. Whether it is the backend's store is
///   for the backend to check (by its format), still writing nothing.
pub fn claim_file(path: &Path, claim: Claim<'_>) -> Result<Option<File>> {
    let metadata = match fs::metadata(path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            if claim.read_only || !claim.create {
                return Err(io_error("opening", path, e));
            }
            if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
                claim
                    .mode
                    .create_folder_all(parent)
                    .map_err(|e| io_error("creating the folder of", path, e))?;
            }
            let file = claim.mode.create_new_file(path);
            return file.map(Some).map_err(|e| io_error("creating", path, e));
        }
        other => other.map_err(|e| io_error("opening", path, e))?,
    };
    if metadata.is_dir() {
        return Err(not_a_store(format!(
            "{} is a folder; the {} backend keeps a store in one file: name a file",
            path.display(),
            claim.backend
        )));
    }
    if metadata.len() == 0 {
        return Err(not_a_store(format!(
            "{} is an empty file, not an annals store; annals creates its files itself and \
             writes into no file it did not create: remove it (an interrupted creation may \
             have left it) or name a path that does not exist",
            path.display()
        )));
    }
    Ok(None)
}

/// How a store may claim its folder (see [`claim_folder`]).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Claim<'a> {
    /// The backend, as its marker names it: the marker says
    /// `annals: <backend> store`.
    pub backend: &'a str,
    /// Create the folder (and mark it) when it is missing or empty.
    pub create: bool,
    /// Write nothing at all: the store must exist (`create` is ignored).
    pub read_only: bool,
    /// The permissions of what is created.
    pub mode: FileMode,
}

/// What [`claim_folder`] found.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Claimed {
    /// The folder was missing or empty: it is now created and marked, and
    /// holds nothing else.
    New,
    /// The folder is the backend's: marked by it, or a store of an earlier
    /// release (recognised by the backend).
    Existing,
}

/// Decides whether the store may use the folder `dir`, before anything is
/// written there:
///
/// - missing, or empty: with `create` (and not `read_only`) it is created
///   with the claim's [`FileMode`] and marked, answering [`Claimed::New`];
///   otherwise an error naming it (an [`Error::Backend`] whose source is
///   a `NotFound` I/O error);
/// - marked for this backend: [`Claimed::Existing`];
/// - marked for another backend, a marker that is not annals', or a file
///   instead of a folder: [`Error::InvalidInput`] naming it;
/// - not empty and not marked: if `is_earlier_store` recognises it (by the
///   backend's own files) as a store of an earlier release of annals, it
///   is marked (unless `read_only`) and [`Claimed::Existing`]; otherwise
///   [`Error::InvalidInput`] naming it, and nothing is written.
pub fn claim_folder(
    dir: &Path,
    claim: Claim<'_>,
    is_earlier_store: impl FnOnce(&Path) -> Result<bool>,
) -> Result<Claimed> {
    let what = format!("{} store", claim.backend);
    let refuse_missing = |why: &str| {
        Error::backend(
            format!("opening {}: {why}", dir.display()),
            io::Error::from(io::ErrorKind::NotFound),
        )
    };
    let metadata = match fs::metadata(dir) {
        Ok(metadata) => Some(metadata),
        Err(e) if e.kind() == io::ErrorKind::NotFound => None,
        Err(e) => return Err(io_error("opening", dir, e)),
    };
    let empty = match &metadata {
        None => true,
        Some(m) if !m.is_dir() => {
            return Err(not_a_store(format!(
                "{} is not a folder: the {} backend keeps a store in a folder of its own",
                dir.display(),
                claim.backend
            )));
        }
        Some(_) => fs::read_dir(dir)
            .map_err(|e| io_error("listing", dir, e))?
            .next()
            .is_none(),
    };
    if empty {
        if claim.read_only || !claim.create {
            return Err(refuse_missing(if metadata.is_none() {
                "no such folder"
            } else {
                "the folder is empty: there is no store in it"
            }));
        }
        if metadata.is_none() {
            claim
                .mode
                .create_folder_all(dir)
                .map_err(|e| io_error("creating the folder", dir, e))?;
            if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
                sync_folder(parent)?;
            }
        }
        return match write_marker(dir, &what, claim.mode) {
            Ok(()) => Ok(Claimed::New),
            // Another opener marked it first: decide again, from its marker.
            Err(Error::Backend { source, .. })
                if source
                    .downcast_ref::<io::Error>()
                    .is_some_and(|e| e.kind() == io::ErrorKind::AlreadyExists) =>
            {
                claim_folder(dir, claim, is_earlier_store)
            }
            Err(e) => Err(e),
        };
    }
    match read_marker(dir)? {
        Marker::Found(found) if found == what => Ok(Claimed::Existing),
        Marker::Found(found) => Err(not_a_store(format!(
            "{} holds an annals {found:?} (says its {MARKER_FILE} file), not a {what}: open it \
             with the URL scheme of its backend",
            dir.display()
        ))),
        Marker::Missing if is_earlier_store(dir)? => {
            if !claim.read_only {
                write_marker(dir, &what, claim.mode)?;
            }
            Ok(Claimed::Existing)
        }
        Marker::Missing => Err(not_a_store(format!(
            "{} is not empty and holds no annals {what} (it has no {MARKER_FILE} file): annals \
             never writes into a folder it did not create; give the store a new or empty \
             folder of its own",
            dir.display()
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_parse_and_refuse() {
        assert_eq!(FileMode::parse("600").expect("valid"), FileMode::PRIVATE);
        assert_eq!(
            FileMode::parse("0o660").expect("valid").folder_bits(),
            0o770
        );
        assert_eq!(FileMode::parse("0666").expect("valid").folder_bits(), 0o777);
        assert_eq!(FileMode::PRIVATE.to_string(), "0600");
        for bad in [
            "", "0o", "rw", "0700", "0400", "1600", "4600", "06000", "-600", "0800", "0602x",
        ] {
            let err = FileMode::parse(bad).expect_err(bad);
            assert!(err.is_invalid_input(), "{bad}: {err:?}");
            assert!(err.to_string().contains("file_mode"), "{err}");
        }
    }

    #[test]
    fn small_files_and_sizes() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("CLOSED");
        assert_eq!(read_if_exists(&file).expect("missing"), None);
        fs::write(&file, b"x\n").expect("write");
        assert_eq!(read_if_exists(&file).expect("read"), Some(b"x\n".to_vec()));
        let err = read_if_exists(dir.path()).expect_err("a folder");
        assert!(matches!(err, Error::Backend { .. }), "{err:?}");
        fs::write(dir.path().join("1.sst"), [1u8; 7]).expect("write");
        fs::write(dir.path().join("2.sst"), [1u8; 3]).expect("write");
        fs::create_dir(dir.path().join("3.sst")).expect("mkdir");
        assert_eq!(
            files_bytes(dir.path(), |n| n.ends_with(".sst")).expect("sum"),
            10
        );
        assert_eq!(files_bytes(dir.path(), |n| n == "CLOSED").expect("sum"), 2);
        assert_eq!(files_bytes(dir.path(), |_| false).expect("sum"), 0);
        let gone = dir.path().join("gone");
        let err = files_bytes(&gone, |_| true).expect_err("no folder");
        assert!(err.to_string().contains("gone"), "{err}");
    }

    fn claim(create: bool, read_only: bool) -> Claim<'static> {
        Claim {
            backend: "test",
            create,
            read_only,
            mode: FileMode::PRIVATE,
        }
    }

    #[test]
    fn claims_a_file_only_when_it_may() {
        let root = tempfile::tempdir().expect("tempdir");
        let path = root.path().join("a/store.db");
        // Missing: refused without create or read-only, with nothing made.
        for (create, read_only) in [(false, false), (true, true), (false, true)] {
            let err = claim_file(&path, claim(create, read_only)).expect_err("missing");
            assert!(err.to_string().contains("store.db"), "{err}");
        }
        assert!(!root.path().join("a").exists(), "nothing created");
        // Created new, with its folder, empty.
        assert!(
            claim_file(&path, claim(true, false))
                .expect("created")
                .is_some()
        );
        assert_eq!(fs::metadata(&path).expect("file").len(), 0);
        // An empty file (this one, left as an interrupted creation would)
        // and a folder are refused, and left as they are.
        for refused in [&path, &root.path().join("a")] {
            let err = claim_file(refused, claim(true, false)).expect_err("refused");
            assert!(err.is_invalid_input(), "{err:?}");
            assert!(
                err.to_string().contains(&*refused.to_string_lossy()),
                "{err}"
            );
        }
        assert_eq!(fs::metadata(&path).expect("file").len(), 0);
        // A file with contents is for the backend to check.
        fs::write(&path, b"data").expect("write");
        assert!(
            claim_file(&path, claim(false, true))
                .expect("existing")
                .is_none()
        );
        assert_eq!(fs::read(&path).expect("read"), b"data");
    }

    #[test]
    fn claims_only_what_it_may() {
        let root = tempfile::tempdir().expect("tempdir");
        let never = |_: &Path| -> Result<bool> { panic!("not asked for an empty folder") };

        // Missing: refused without create, created and marked with it.
        let dir = root.path().join("a/b");
        assert!(claim_folder(&dir, claim(false, false), never).is_err());
        assert!(claim_folder(&dir, claim(true, true), never).is_err());
        assert!(!root.path().join("a").exists(), "nothing created");
        assert_eq!(
            claim_folder(&dir, claim(true, false), never).expect("created"),
            Claimed::New
        );
        assert_eq!(
            read_marker(&dir).expect("marker"),
            Marker::Found("test store".into())
        );
        assert_eq!(
            claim_folder(&dir, claim(false, true), |_| Ok(false)).expect("ours"),
            Claimed::Existing
        );

        // Another backend's, or a stranger's folder: refused, untouched.
        let other = Claim {
            backend: "other",
            ..claim(true, false)
        };
        let err = claim_folder(&dir, other, |_| Ok(true)).expect_err("another backend's");
        assert!(err.to_string().contains("\"test store\""), "{err}");
        let foreign = root.path().join("foreign");
        fs::create_dir(&foreign).expect("mkdir");
        fs::write(foreign.join("data"), b"theirs").expect("write");
        let err = claim_folder(&foreign, claim(true, false), |_| Ok(false)).expect_err("foreign");
        assert!(err.to_string().contains("no ANNALS-STORE"), "{err}");
        assert_eq!(fs::read_dir(&foreign).expect("list").count(), 1);
        fs::write(foreign.join(MARKER_FILE), b"mine\n").expect("write");
        let err = claim_folder(&foreign, claim(true, false), |_| Ok(true)).expect_err("foreign");
        assert!(matches!(err, Error::Corruption { .. }), "{err:?}");
        assert!(err.to_string().contains("not annals' marker"), "{err}");

        // An earlier release's store is recognised, and marked unless
        // read-only.
        let earlier = root.path().join("earlier");
        fs::create_dir(&earlier).expect("mkdir");
        fs::write(earlier.join("CURRENT"), b"x").expect("write");
        assert_eq!(
            claim_folder(&earlier, claim(false, true), |_| Ok(true)).expect("recognised"),
            Claimed::Existing
        );
        assert_eq!(read_marker(&earlier).expect("read"), Marker::Missing);
        assert_eq!(
            claim_folder(&earlier, claim(false, false), |_| Ok(true)).expect("recognised"),
            Claimed::Existing
        );
        assert_eq!(
            read_marker(&earlier).expect("read"),
            Marker::Found("test store".into())
        );

        // A file is not a folder.
        let file = root.path().join("file");
        fs::write(&file, b"").expect("write");
        assert!(claim_folder(&file, claim(true, false), never).is_err());
    }

    #[cfg(unix)]
    #[test]
    fn what_is_created_is_owner_only_or_as_asked() {
        use std::os::unix::fs::PermissionsExt;
        let bits = |p: &Path| fs::metadata(p).expect("stat").permissions().mode() & 0o7777;
        let root = tempfile::tempdir().expect("tempdir");
        let dir = root.path().join("x/y");
        claim_folder(&dir, claim(true, false), |_| Ok(false)).expect("created");
        assert_eq!(bits(&root.path().join("x")), 0o700);
        assert_eq!(bits(&dir), 0o700);
        assert_eq!(bits(&dir.join(MARKER_FILE)), 0o600);
        let shared = FileMode::parse("0640").expect("valid");
        let other = root.path().join("shared");
        shared.create_folder_all(&other).expect("created");
        assert_eq!(bits(&other), 0o750);
        drop(shared.create_new_file(&other.join("f")).expect("created"));
        assert_eq!(bits(&other.join("f")), 0o640);
        assert!(
            shared.create_new_file(&other.join("f")).is_err(),
            "never over a file"
        );
    }
}
