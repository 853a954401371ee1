//! The file system, the same way for every backend that keeps files: who
//! may read what a store creates ([`FileMode`]), and which folders are a
//! store's own ([`claim_folder`]), so that a backend never writes into,
//! deletes or overwrites anything it did not provably create; and how a
//! store kept in numbered generation folders switches from one to the next
//! ([`Generations`]).
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
use std::path::{Path, PathBuf};

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

/// Writes the file `name` in the folder `dir` holding `numbers`, each
/// after its label, on one line: labels `["gen-", " commits-"]` and numbers
/// `[3, 17]` make `gen-3 commits-17\n`. Durable and atomic (see
/// [`replace_file`], and its rule: only for a store's own files). For the
/// small files in which a store records numbers of its own (a close mark,
/// the generation in use); [`read_numbers`] reads them back.
///
/// ```
/// use annals_core::files::{FileMode, read_numbers, write_numbers};
///
/// let dir = tempfile::tempdir()?;
/// const LABELS: [&str; 2] = ["gen-", " commits-"];
/// write_numbers(dir.path(), "CLOSED", &LABELS, [3, 17], FileMode::PRIVATE)?;
/// assert_eq!(std::fs::read(dir.path().join("CLOSED"))?, b"gen-3 commits-17\n");
/// assert_eq!(read_numbers(&dir.path().join("CLOSED"), &LABELS)?, Some([3, 17]));
/// assert_eq!(read_numbers(&dir.path().join("OTHER"), &LABELS)?, None);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn write_numbers<const N: usize>(
    dir: &Path,
    name: &str,
    labels: &[&str; N],
    numbers: [u64; N],
    mode: FileMode,
) -> Result<()> {
    replace_file(dir, name, numbers_text(labels, &numbers).as_bytes(), mode)
}

/// Reads the file `path` that [`write_numbers`] wrote with `labels`: its
/// numbers, or `None` when it does not exist. Anything but exactly what
/// `write_numbers` writes (another label, a missing or extra part, a sign,
/// a leading zero, no final newline, bytes that are not UTF-8) is
/// [`Error::Corruption`] naming the file and showing what it holds; an I/O
/// error is [`Error::Backend`] naming the file. Labels must not start with
/// a digit.
pub fn read_numbers<const N: usize>(path: &Path, labels: &[&str; N]) -> Result<Option<[u64; N]>> {
    let Some(bytes) = read_if_exists(path)? else {
        return Ok(None);
    };
    let parsed = std::str::from_utf8(&bytes)
        .ok()
        .and_then(|text| parse_numbers(text, labels))
        .filter(|numbers| numbers_text(labels, numbers).as_bytes() == bytes);
    match parsed {
        Some(numbers) => Ok(Some(numbers)),
        None => Err(Error::corruption(
            CorruptionAt::Path(path.to_path_buf()),
            format!(
                "{} is damaged: {:?}",
                path.display(),
                String::from_utf8_lossy(&bytes)
            ),
        )),
    }
}

/// What [`write_numbers`] writes.
fn numbers_text(labels: &[&str], numbers: &[u64]) -> String {
    let mut text: String = labels
        .iter()
        .zip(numbers)
        .map(|(l, n)| format!("{l}{n}"))
        .collect();
    text.push('\n');
    text
}

/// The numbers of `text` after `labels`, if it has that shape (the caller
/// checks that it is exactly what [`numbers_text`] makes of them).
fn parse_numbers<const N: usize>(mut text: &str, labels: &[&str; N]) -> Option<[u64; N]> {
    let mut numbers = [0; N];
    for (label, number) in labels.iter().zip(&mut numbers) {
        text = text.strip_prefix(label)?;
        let digits = text.len() - text.trim_start_matches(|c: char| c.is_ascii_digit()).len();
        *number = text.get(..digits)?.parse().ok()?;
        text = text.get(digits..)?;
    }
    (text == "\n").then_some(numbers)
}

/// The bytes of the regular files directly in the folder `dir` whose names
/// `counted` accepts (symbolic links and folders are not counted). A file
/// removed while it is measured, or a missing folder, counts nothing (an
/// engine removes files of its own at any time). Errors are
/// [`Error::Backend`] naming the folder or file.
///
/// ```
/// use annals_core::files::file_bytes;
///
/// let dir = tempfile::tempdir()?;
/// std::fs::write(dir.path().join("a.log"), b"12345")?;
/// std::fs::write(dir.path().join("b.tmp"), b"123")?;
/// std::fs::create_dir(dir.path().join("sub"))?;
/// assert_eq!(file_bytes(dir.path(), |_| true)?, 8);
/// assert_eq!(file_bytes(dir.path(), |name| name.ends_with(".log"))?, 5);
/// assert_eq!(file_bytes(&dir.path().join("gone"), |_| true)?, 0);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn file_bytes(dir: &Path, counted: impl Fn(&str) -> bool) -> Result<u64> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(io_error("listing", dir, e)),
    };
    let mut bytes = 0u64;
    for entry in entries {
        let entry = entry.map_err(|e| io_error("listing", dir, e))?;
        if !entry.file_name().to_str().is_some_and(&counted) {
            continue;
        }
        match fs::symlink_metadata(entry.path()) {
            Ok(meta) if meta.is_file() => bytes = bytes.saturating_add(meta.len()),
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_error("measuring", &entry.path(), e)),
        }
    }
    Ok(bytes)
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

/// Options that say how a store claims its file or folder: the
/// [`Claim`] of [`claim_file`] and [`claim_folder`]. A backend's options
/// get it from [`backend_options!`](crate::backend_options) (its `access`
/// line names the fields).
pub trait ClaimOptions {
    /// How the store claims its file or folder.
    fn claim(&self) -> Claim<'static>;
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

/// A store kept as numbered generation folders inside its folder, the one
/// in use named by a `CURRENT` file: the layout of a backend whose engine
/// cannot give space back on demand, so that `compact` copies the live
/// entries into a new generation and deletes the old one.
///
/// ```text
/// <dir>/CURRENT       "<name of N>\n": the generation in use
/// <dir>/<name of N>/  generation N (`<prefix>N`, or `first` for 0), marked
///                     "annals: <backend> generation N"
/// ```
///
/// A new generation is made with [`Generations::create`] (marked before
/// anything goes into it), made durable by the backend, switched to with
/// [`Generations::write_current`] (atomic and durable) and the others
/// deleted with [`Generations::remove_others`]: a crash before the switch
/// leaves the old generation in use, after it the new one, complete. Only
/// folders that carry the store's marker of the generation their name
/// says are ever deleted.
///
/// ```
/// use annals_core::files::{FileMode, Generations};
///
/// const GENERATIONS: Generations = Generations {
///     backend: "demo",
///     prefix: "gen-",
///     first: None,
/// };
/// let dir = tempfile::tempdir()?;
/// let (dir, mode) = (dir.path(), FileMode::PRIVATE);
/// assert_eq!(GENERATIONS.read_current(dir)?, None);
/// GENERATIONS.create(dir, 0, mode)?;
/// GENERATIONS.write_current(dir, 0, mode)?;
/// let next = GENERATIONS.after(dir, 0)?;
/// assert_eq!(GENERATIONS.create(dir, next, mode)?, dir.join("gen-1"));
/// GENERATIONS.write_current(dir, next, mode)?;
/// GENERATIONS.remove_others(dir, Some(next), &[])?;
/// assert_eq!(GENERATIONS.read_current(dir)?, Some(1));
/// assert!(!dir.join("gen-0").exists());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Generations {
    /// The backend, as the generation markers name it: the folder of
    /// generation N is marked `annals: <backend> generation N`.
    pub backend: &'static str,
    /// The folder of generation N is named `<prefix>N` (N in decimal, no
    /// leading zeros)…
    pub prefix: &'static str,
    /// …except generation 0, when this names it (fjall's first generation
    /// is fjall's own folder, `fjall`).
    pub first: Option<&'static str>,
}

impl Generations {
    /// The file naming the generation in use.
    pub const CURRENT: &'static str = "CURRENT";

    /// The folder name of generation `generation`.
    pub fn name(&self, generation: u64) -> String {
        match (generation, self.first) {
            (0, Some(first)) => first.to_string(),
            _ => format!("{}{generation}", self.prefix),
        }
    }

    /// The generation a folder name stands for: only a name exactly as
    /// [`Generations::name`] writes it (no sign, no leading zero).
    pub fn parse(&self, name: &str) -> Option<u64> {
        if Some(name) == self.first {
            return Some(0);
        }
        let generation = name.strip_prefix(self.prefix)?.parse().ok()?;
        (self.name(generation) == name).then_some(generation)
    }

    /// The folder of generation `generation` in the store's folder `dir`.
    pub fn folder(&self, dir: &Path, generation: u64) -> PathBuf {
        dir.join(self.name(generation))
    }

    /// The generation after `generation`; none is left after `u64::MAX`:
    /// [`Error::Backend`] naming the store's folder `dir`.
    pub fn after(&self, dir: &Path, generation: u64) -> Result<u64> {
        generation.checked_add(1).ok_or_else(|| {
            Error::backend(
                format!("compacting {}", dir.display()),
                "no generation number is left",
            )
        })
    }

    fn marker(&self, generation: u64) -> String {
        format!("{} generation {generation}", self.backend)
    }

    /// The generation `<dir>/CURRENT` names; `None` when there is no such
    /// file. Anything but one generation's name and a newline is
    /// [`Error::Corruption`] naming the file and showing what it holds.
    pub fn read_current(&self, dir: &Path) -> Result<Option<u64>> {
        let path = dir.join(Self::CURRENT);
        let Some(bytes) = read_if_exists(&path)? else {
            return Ok(None);
        };
        let generation = std::str::from_utf8(&bytes)
            .ok()
            .and_then(|text| text.strip_suffix('\n'))
            .and_then(|name| self.parse(name));
        let shown = || crate::show_text(&String::from_utf8_lossy(&bytes));
        generation.map(Some).ok_or_else(|| {
            Error::corruption(
                CorruptionAt::Path(path.clone()),
                format!(
                    "{} is damaged: {} does not name a generation",
                    path.display(),
                    shown()
                ),
            )
        })
    }

    /// Points `<dir>/CURRENT` at `generation`, durably and atomically
    /// ([`replace_file`]).
    pub fn write_current(&self, dir: &Path, generation: u64, mode: FileMode) -> Result<()> {
        let text = format!("{}\n", self.name(generation));
        replace_file(dir, Self::CURRENT, text.as_bytes(), mode)
    }

    /// Switches the store from generation `from` to `to`
    /// ([`Generations::write_current`]); on an error `CURRENT` names `from`
    /// again, so the caller goes on with `from`. A write that failed after
    /// `CURRENT` was replaced (syncing the folder) is retried as a folder
    /// sync, and if that fails too `CURRENT` is pointed back at `from`: the
    /// next open must use the generation the caller goes on writing to.
    /// (Only when pointing back fails as well, a third I/O error in a row,
    /// can `CURRENT` be left naming `to`.)
    pub fn switch(&self, dir: &Path, from: u64, to: u64, mode: FileMode) -> Result<()> {
        let Err(e) = self.write_current(dir, to, mode) else {
            return Ok(());
        };
        match self.read_current(dir) {
            Ok(Some(now)) if now == from => Err(e),
            Ok(Some(now)) if now == to && sync_folder(dir).is_ok() => Ok(()),
            _ => self.write_current(dir, from, mode).and(Err(e)),
        }
    }

    /// Whether `path` is a folder that this store made as generation
    /// `generation`: it carries the store's marker of that generation. A
    /// marker that is not annals' (or is damaged) is a stranger's: `false`.
    pub fn is_ours(&self, path: &Path, generation: u64) -> bool {
        path.is_dir()
            && matches!(read_marker(path), Ok(Marker::Found(what)) if what == self.marker(generation))
    }

    /// Marks the folder of generation `generation` as the store's unless it
    /// carries a marker: for a generation the store knows is its own
    /// (`CURRENT` names it) but that has none (the engine created it, or an
    /// earlier release of annals that wrote no markers).
    pub fn mark(&self, dir: &Path, generation: u64, mode: FileMode) -> Result<()> {
        let path = self.folder(dir, generation);
        if read_marker(&path)? == Marker::Missing {
            write_marker(&path, &self.marker(generation), mode)?;
        }
        Ok(())
    }

    /// Creates the folder of generation `generation` (with `mode`) and
    /// marks it, durably, before anything else goes into it; answers the
    /// folder. A folder of that name that the store made (left by a crashed
    /// creation or `compact`) is deleted first, unless `CURRENT` names it
    /// ([`Error::Backend`]: it is in use); one that it did not make
    /// ([`Generations::is_ours`]) is [`Error::InvalidInput`] naming it, and
    /// stays as it is.
    pub fn create(&self, dir: &Path, generation: u64, mode: FileMode) -> Result<PathBuf> {
        let path = self.folder(dir, generation);
        if fs::symlink_metadata(&path).is_ok() {
            if self.read_current(dir)? == Some(generation) {
                return Err(Error::backend(
                    format!("creating {}", path.display()),
                    "CURRENT names this generation: it is in use",
                ));
            }
            if !self.is_ours(&path, generation) {
                return Err(not_a_store(format!(
                    "{} is in the way of the store's generation {generation}, and the store did \
                     not make it (it has no annals generation marker): move it out of the \
                     store's folder",
                    path.display()
                )));
            }
            fs::remove_dir_all(&path).map_err(|e| io_error("removing", &path, e))?;
        }
        mode.create_folder(&path)
            .map_err(|e| io_error("creating the folder", &path, e))?;
        write_marker(&path, &self.marker(generation), mode)?;
        sync_folder(dir)?;
        Ok(path)
    }

    /// Deletes every generation folder in `dir` but `keep`'s and the one
    /// `CURRENT` names that the store made ([`Generations::is_ours`];
    /// others, e.g. a stranger's, stay), and the left-over temporary files
    /// of the store's own: `CURRENT.tmp` and those named in `temporary` (of
    /// an interrupted [`replace_file`]). The folder is synced when anything
    /// was deleted. A `CURRENT` that cannot be read is its error, and
    /// nothing is deleted.
    pub fn remove_others(&self, dir: &Path, keep: Option<u64>, temporary: &[&str]) -> Result<()> {
        // Whatever the caller believes, the generation `CURRENT` names is
        // the one the next open uses.
        let current = self.read_current(dir)?;
        let current_tmp = format!("{}.tmp", Self::CURRENT);
        let mut removed = false;
        for entry in fs::read_dir(dir).map_err(|e| io_error("listing", dir, e))? {
            let name = entry.map_err(|e| io_error("listing", dir, e))?.file_name();
            let Some(name) = name.to_str() else { continue };
            let path = dir.join(name);
            if name == current_tmp || temporary.contains(&name) {
                fs::remove_file(&path).map_err(|e| io_error("removing", &path, e))?;
                removed = true;
            } else if let Some(generation) = self.parse(name)
                && Some(generation) != keep
                && Some(generation) != current
                && self.is_ours(&path, generation)
            {
                fs::remove_dir_all(&path).map_err(|e| io_error("removing", &path, e))?;
                removed = true;
            }
        }
        if removed {
            sync_folder(dir)?;
        }
        Ok(())
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
    fn numbers_round_trip_and_damage_is_corruption() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("CLOSED");
        let labels = ["gen-", " commits-"];
        for numbers in [[0, 0], [7, 42], [u64::MAX, u64::MAX]] {
            write_numbers(dir.path(), "CLOSED", &labels, numbers, FileMode::PRIVATE)
                .expect("write");
            assert_eq!(read_numbers(&path, &labels).expect("read"), Some(numbers));
        }
        assert!(!dir.path().join("CLOSED.tmp").exists());
        for bad in [
            &b""[..],
            b"gen-1 commits-2",
            b"gen-1 commits-2\n\n",
            b"gen-1 commits-\n",
            b"gen- commits-2\n",
            b"gen-01 commits-2\n",
            b"gen-+1 commits-2\n",
            b"gen--1 commits-2\n",
            b"gen-1  commits-2\n",
            b"gen-1\n",
            b"gen-1 commits-2 x\n",
            b"gen-18446744073709551616 commits-2\n",
            b"gen-\xff commits-2\n",
        ] {
            fs::write(&path, bad).expect("write");
            let err = read_numbers(&path, &labels).expect_err("damaged");
            assert!(matches!(err, Error::Corruption { .. }), "{bad:?}: {err:?}");
            assert!(err.to_string().contains("CLOSED"), "{err}");
        }
        assert_eq!(
            read_numbers(&dir.path().join("none"), &labels).expect("missing"),
            None
        );
        fs::create_dir(dir.path().join("folder")).expect("mkdir");
        let err = read_numbers(&dir.path().join("folder"), &labels).expect_err("a folder");
        assert!(matches!(err, Error::Backend { .. }), "{err:?}");
    }

    #[test]
    fn file_bytes_counts_regular_files_only() {
        let dir = tempfile::tempdir().expect("tempdir");
        fs::write(dir.path().join("db"), [0; 100]).expect("write");
        fs::write(dir.path().join("conf"), [0; 10]).expect("write");
        fs::create_dir(dir.path().join("blobs")).expect("mkdir");
        fs::write(dir.path().join("blobs/1"), [0; 1000]).expect("write");
        assert_eq!(file_bytes(dir.path(), |_| true).expect("sized"), 110);
        assert_eq!(
            file_bytes(dir.path(), |name| name != "db").expect("sized"),
            10
        );
        #[cfg(unix)]
        {
            std::os::unix::fs::symlink(dir.path().join("db"), dir.path().join("link"))
                .expect("symlink");
            assert_eq!(file_bytes(dir.path(), |_| true).expect("sized"), 110);
        }
        assert_eq!(
            file_bytes(&dir.path().join("gone"), |_| true).expect("missing"),
            0
        );
    }

    #[test]
    fn a_file_is_read_if_it_exists() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("CLOSED");
        assert_eq!(read_if_exists(&file).expect("missing"), None);
        fs::write(&file, b"x\n").expect("write");
        assert_eq!(read_if_exists(&file).expect("read"), Some(b"x\n".to_vec()));
        let err = read_if_exists(dir.path()).expect_err("a folder");
        assert!(matches!(err, Error::Backend { .. }), "{err:?}");
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

    const GENS: Generations = Generations {
        backend: "test",
        prefix: "gen-",
        first: None,
    };
    const FJALL_LIKE: Generations = Generations {
        backend: "test",
        prefix: "data-",
        first: Some("data"),
    };

    #[test]
    fn generation_names_parse_only_as_written() {
        for generation in [0, 1, 42, u64::MAX] {
            for gens in [GENS, FJALL_LIKE] {
                assert_eq!(gens.parse(&gens.name(generation)), Some(generation));
            }
        }
        assert_eq!(GENS.name(0), "gen-0");
        assert_eq!(
            (FJALL_LIKE.name(0), FJALL_LIKE.name(3)),
            ("data".into(), "data-3".into())
        );
        for bad in [
            "gen-",
            "gen-01",
            "gen-00",
            "gen-+1",
            "gen--1",
            "gen-x",
            "gen-1 ",
            " gen-1",
            "gen1",
            "GEN-1",
            "gen-18446744073709551616",
            "data",
            "",
        ] {
            assert_eq!(GENS.parse(bad), None, "{bad:?}");
        }
        for bad in ["data-0", "data-01", "data-", "data0", "gen-1"] {
            assert_eq!(FJALL_LIKE.parse(bad), None, "{bad:?}");
        }
        let root = tempfile::tempdir().expect("tempdir");
        assert_eq!(GENS.after(root.path(), 7).expect("next"), 8);
        let err = GENS.after(root.path(), u64::MAX).expect_err("none left");
        assert!(matches!(err, Error::Backend { .. }), "{err:?}");
        assert!(
            err.to_string().contains(&*root.path().to_string_lossy()),
            "{err}"
        );
    }

    #[test]
    fn current_is_written_durably_and_read_strictly() {
        let root = tempfile::tempdir().expect("tempdir");
        let dir = root.path();
        assert_eq!(GENS.read_current(dir).expect("missing"), None);
        GENS.write_current(dir, 7, FileMode::PRIVATE)
            .expect("write");
        assert_eq!(fs::read(dir.join("CURRENT")).expect("read"), b"gen-7\n");
        assert_eq!(GENS.read_current(dir).expect("read"), Some(7));
        FJALL_LIKE
            .write_current(dir, 0, FileMode::PRIVATE)
            .expect("write");
        assert_eq!(FJALL_LIKE.read_current(dir).expect("read"), Some(0));
        for damaged in [
            &b"gen-x\n"[..],
            b"gen-7",
            b"gen-07\n",
            b"gen-7\n\n",
            b"gen-7\r\n",
            b"\xffgen-7\n",
            b"",
        ] {
            fs::write(dir.join("CURRENT"), damaged).expect("write");
            let err = GENS.read_current(dir).expect_err("damaged");
            assert!(matches!(err, Error::Corruption { .. }), "{err:?}");
            assert!(err.to_string().contains("CURRENT is damaged"), "{err}");
        }
        fs::write(dir.join("CURRENT"), b"gen-x\n").expect("write");
        let err = GENS.read_current(dir).expect_err("damaged");
        assert!(err.to_string().contains(r#""gen-x\n""#), "{err}");
        // Not a file: an error, never "no CURRENT".
        fs::remove_file(dir.join("CURRENT")).expect("remove");
        fs::create_dir(dir.join("CURRENT")).expect("mkdir");
        assert!(GENS.read_current(dir).is_err());
    }

    #[test]
    fn only_the_stores_own_generations_are_replaced_or_removed() {
        let root = tempfile::tempdir().expect("tempdir");
        let dir = root.path();
        let mode = FileMode::PRIVATE;
        let names = || {
            let mut names: Vec<String> = fs::read_dir(dir)
                .expect("list")
                .map(|e| e.expect("entry").file_name().into_string().expect("utf-8"))
                .collect();
            names.sort();
            names
        };
        // Created marked; a left-over of the store's own is replaced.
        let gen0 = GENS.create(dir, 0, mode).expect("create");
        assert_eq!(
            read_marker(&gen0).expect("marker"),
            Marker::Found("test generation 0".into())
        );
        fs::write(gen0.join("half-written"), b"x").expect("write");
        assert_eq!(GENS.create(dir, 0, mode).expect("again"), gen0);
        assert!(!gen0.join("half-written").exists());
        assert!(GENS.is_ours(&gen0, 0) && !GENS.is_ours(&gen0, 1));
        GENS.create(dir, 1, mode).expect("create");
        // What the store did not make: unmarked, marked for another
        // generation or backend, a damaged marker, a name not as written,
        // a file.
        let unmarked = dir.join("gen-2");
        fs::create_dir(&unmarked).expect("mkdir");
        fs::write(unmarked.join("theirs"), b"x").expect("write");
        for (name, marker) in [
            ("gen-3", "annals: test generation 5\n"),
            ("gen-4", "annals: other generation 4\n"),
            ("gen-5", "not annals'"),
            ("gen-01", "annals: test generation 1\n"),
        ] {
            fs::create_dir(dir.join(name)).expect("mkdir");
            fs::write(dir.join(name).join(MARKER_FILE), marker).expect("write");
        }
        fs::write(dir.join("gen-6"), b"a file").expect("write");
        for generation in [2, 3, 4, 5, 6] {
            let err = GENS.create(dir, generation, mode).expect_err("not ours");
            assert!(err.is_invalid_input(), "{err:?}");
            assert!(
                err.to_string().contains(&format!("gen-{generation}")),
                "{err}"
            );
        }
        assert!(unmarked.join("theirs").exists());
        // The store's own temporary files go, others' files stay.
        for file in ["CURRENT.tmp", "CLOSED.tmp", "OTHER.tmp", "notes"] {
            fs::write(dir.join(file), b"x").expect("write");
        }
        GENS.remove_others(dir, Some(1), &["CLOSED.tmp"])
            .expect("remove");
        let strangers = [
            "OTHER.tmp",
            "gen-01",
            "gen-2",
            "gen-3",
            "gen-4",
            "gen-5",
            "gen-6",
        ];
        let mut expected = vec!["gen-1", "notes"];
        expected.extend(strangers);
        expected.sort();
        assert_eq!(names(), expected);
        assert!(unmarked.join("theirs").exists());
        GENS.remove_others(dir, None, &[]).expect("remove");
        expected.retain(|name| *name != "gen-1");
        assert_eq!(names(), expected);
    }

    #[test]
    fn the_generation_current_names_is_never_removed_and_a_failed_switch_stays() {
        let root = tempfile::tempdir().expect("tempdir");
        let (dir, mode) = (root.path(), FileMode::PRIVATE);
        for generation in [0, 1] {
            GENS.create(dir, generation, mode).expect("create");
        }
        // `CURRENT` names 1 while the caller still believes in 0 (a switch
        // whose answer it did not get): 1 is neither removed nor replaced.
        GENS.write_current(dir, 1, mode).expect("current");
        GENS.remove_others(dir, Some(0), &[]).expect("remove");
        assert!(GENS.folder(dir, 0).is_dir() && GENS.folder(dir, 1).is_dir());
        let err = GENS.create(dir, 1, mode).expect_err("in use");
        assert!(format!("{err:?}").contains("in use"), "{err:?}");
        assert!(GENS.is_ours(&GENS.folder(dir, 1), 1));

        // A switch whose write fails before the rename: `CURRENT` still
        // names `from`, and the error is the write's.
        fs::create_dir(dir.join("CURRENT.tmp")).expect("block the temporary file");
        let err = GENS.switch(dir, 1, 2, mode).expect_err("cannot write");
        assert!(format!("{err:?}").contains("CURRENT.tmp"), "{err:?}");
        assert_eq!(GENS.read_current(dir).expect("read"), Some(1));
        fs::remove_dir(dir.join("CURRENT.tmp")).expect("unblock");
        GENS.create(dir, 2, mode).expect("create 2");
        GENS.switch(dir, 1, 2, mode).expect("switch");
        assert_eq!(GENS.read_current(dir).expect("read"), Some(2));
        // A damaged `CURRENT`: nothing is removed.
        fs::write(dir.join("CURRENT"), "gen-x\n").expect("damage");
        assert!(GENS.remove_others(dir, Some(2), &[]).is_err());
        assert!(GENS.folder(dir, 0).is_dir() && GENS.folder(dir, 1).is_dir());
    }

    #[test]
    fn an_unmarked_generation_is_marked_once() {
        let root = tempfile::tempdir().expect("tempdir");
        let dir = root.path();
        fs::create_dir(dir.join("data")).expect("mkdir");
        assert!(!FJALL_LIKE.is_ours(&dir.join("data"), 0));
        FJALL_LIKE.mark(dir, 0, FileMode::PRIVATE).expect("mark");
        assert!(FJALL_LIKE.is_ours(&dir.join("data"), 0));
        FJALL_LIKE
            .mark(dir, 0, FileMode::PRIVATE)
            .expect("marked already");
        // A marker that is not annals' is not overwritten.
        fs::create_dir(dir.join("data-1")).expect("mkdir");
        fs::write(dir.join("data-1").join(MARKER_FILE), b"theirs").expect("write");
        assert!(FJALL_LIKE.mark(dir, 1, FileMode::PRIVATE).is_err());
        assert_eq!(
            fs::read(dir.join("data-1").join(MARKER_FILE)).expect("read"),
            b"theirs"
        );
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
