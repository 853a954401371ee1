//! [`SledEngine`]: the [`KvEngine`] over one sled tree.
//!
//! # Layout on disk
//!
//! ```text
//! <dir>/ANNALS-STORE       "annals: sled store\n": written first, makes the
//!                          folder the store's own
//! <dir>/LOCK               empty; locked (flock) while a store has the folder open
//! <dir>/CURRENT            "gen-N\n": which sled database holds the store
//! <dir>/CLOSED             "gen-N commits-M\n": left by a clean close, checked and
//!                          removed by the next open
//! <dir>/gen-N/             that sled database: sled's conf, db, blobs/, snap.*
//! <dir>/gen-N/ANNALS-STORE "annals: sled generation N\n": written before sled
//!                          opens the folder
//! ```
//!
//! Whose files: annals writes only into a folder it created, or found
//! empty, and marked (`ANNALS-STORE`); a folder that is not empty and not
//! marked is refused with nothing written, unless it is a store of an
//! earlier release (which wrote no marker): one whose `CURRENT` names a
//! generation folder holding sled's `db` file. Such a store is marked when
//! it is first opened for writing. Only generation folders that carry
//! annals' generation marker are ever deleted.
//!
//! Every key of the store lives in the default tree of that one sled
//! database, under the prefixes of annals' shared key layout (log, stream
//! index, type and tag indexes, stream and store metadata, aux). sled's
//! `apply_batch` is atomic — in memory and across a crash — only within one
//! `Tree`, and sled's transactions cannot range-scan; with everything in
//! one tree each commit of the store is exactly one `apply_batch`, so an
//! append with its index entries, metadata and aux writes is all or
//! nothing.
//!
//! The generation folder exists for `compact`: sled 0.34 has no way to give
//! space back on demand (its segment cleaner runs in the background and
//! returns space to the file system only when the segments at the end of
//! its file happen to be free), so `compact` copies the live entries into a
//! fresh sled database `gen-N+1`, makes it durable, switches `CURRENT` to it
//! with an atomic rename, and deletes `gen-N`. A crash before the rename
//! leaves the old generation in use; after it, the new one is complete.
//! Opening deletes any marked generation that `CURRENT` does not name.

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::fs::{self, File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use annals_core::files::{self, Claim, Claimed, FileMode, Generations};
use annals_core::kv::support::{self, drop_quietly, scan_iter};
use annals_core::kv::{KvEngine, KvSnapshot, Visitor, WriteBatch};
use annals_core::{Capabilities, CorruptionAt, Direction, Error, Result};
use parking_lot::{ArcRwLockReadGuard, RawRwLock, RwLock};

use crate::error::{call, from_io, from_sled, no_panic};
use crate::options::{SledMode, SledOptions};

/// The generation folders `gen-N`, and `CURRENT` naming the one in use.
const GENERATIONS: Generations = Generations {
    backend: "sled",
    prefix: "gen-",
    first: None,
};
/// The file locked while the folder is open.
const LOCK: &str = "LOCK";
/// Written by a clean `close`: the generation and commit sequence number it
/// left, checked (and removed) by the next open.
const CLOSED: &str = "CLOSED";
/// `CLOSED` while it is being written.
const CLOSED_TMP: &str = "CLOSED.tmp";
/// What `CLOSED` holds: `gen-N commits-M\n` (see [`files::write_numbers`]).
const CLOSED_LABELS: [&str; 2] = ["gen-", " commits-"];
/// The engine's own key in the tree: the number of commits so far (u64, big
/// endian), written by every commit in the same `apply_batch`. Its prefix
/// byte is outside annals' key layout (0x00–0x06), so no read of the store
/// ever meets it. It is in the engines' own key space
/// (`layout::ENGINE_PRIVATE`), which `verify` leaves alone.
const SEQ_KEY: &[u8] = b"\xffannals-sled/commits";
/// Most bytes of keys and values `compact` copies in one sled batch.
const COPY_CHUNK_BYTES: usize = 8 << 20;

/// A [`KvEngine`] over a sled database: every key of the store in one sled
/// tree (see the module documentation for the layout and why).
///
/// - [`commit`](KvEngine::commit) is one sled `apply_batch`. With `sync` it
///   then calls sled's `flush` and, because on Linux that only issues
///   `sync_file_range` (which does not flush the drive's cache nor the
///   file's metadata), a real `fdatasync` of sled's log file, of every blob
///   file sled wrote since the last sync, and of the folders whose entries
///   changed: it returns only once the batch is on stable storage. (A blob
///   file that sled writes from its own threads between two durable commits
///   stays unsynced until the next one; see the README.) Without
///   `sync`, sled's background thread writes the batch out within
///   [`SledOptions::flush_every`]; a crash loses a suffix of whole batches
///   (sled's recovery stops at the first incomplete batch).
/// - Snapshots: sled has no read snapshots, so consistency comes from a
///   lock. A [`SledSnapshot`] holds a shared (read) guard of the engine's
///   `RwLock` for its whole life; `commit`, `compact` and `close` take it
///   exclusively. While any snapshot is alive nothing changes, so every page
///   comes from one commit; a commit waits for the live snapshots (each is
///   one page of one read, or one round of checks of the writer, which
///   drops its snapshot before it commits) and new snapshots wait for a
///   waiting commit (the lock is fair), so neither starves. The exclusive
///   guard is held through the sync of a durable commit, so no reader sees
///   a durable commit before it is on stable storage. A thread must not
///   take a second snapshot while it holds one (a waiting commit would
///   block it); annals' store never does.
/// - [`compact`](KvEngine::compact) rewrites the live entries into a new
///   sled database (see the module documentation); reads and commits wait
///   meanwhile.
/// - Every commit also writes the engine's commit counter (key
///   `0xFF "annals-sled/commits"`) in the same batch, and a clean `close`
///   records it in `CLOSED`, so that the next open can tell when sled's
///   recovery stopped early at damaged bytes (see the README).
/// - Every call into sled runs under `catch_unwind`: sled trusts its files,
///   and where damaged bytes make it panic the caller gets
///   [`Error::Backend`] instead. After such a panic the engine refuses
///   further reads and commits (sled's state in memory may be half-updated);
///   close and reopen the store.
///
/// ```
/// use annals_core::kv::{KvEngine, KvSnapshot, WriteBatch};
/// use annals_sled::{SledEngine, SledOptions};
///
/// let dir = tempfile::tempdir()?;
/// let engine = SledEngine::open(dir.path().join("store"), &SledOptions::default())?;
/// let mut batch = WriteBatch::new();
/// batch.put(b"k".to_vec(), b"v".to_vec());
/// engine.commit(batch, true)?;
/// assert_eq!(engine.snapshot()?.get(b"k")?, Some(b"v".to_vec()));
/// engine.close()?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct SledEngine {
    /// The store's folder, for error messages and `compact`.
    dir: Arc<Path>,
    /// What it was opened with: with `read_only` nothing of annals' is
    /// written; `file_mode` for what it creates; sled's own settings for
    /// every sled database it opens (also by `compact`).
    options: SledOptions,
    /// The open database; `None` once closed. Snapshots hold it shared;
    /// commits, `compact` and `close` exclusively.
    state: Arc<RwLock<Option<Open>>>,
    /// Set when sled panicked: its state in memory cannot be trusted.
    poisoned: Arc<AtomicBool>,
}

/// How long opening waits for sled's own file lock to be let go by a
/// database of this process that was just closed.
const SLED_LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// Opens the sled database in `path` with `options`' settings for sled.
fn open_sled(options: &SledOptions, path: &Path) -> sled::Result<sled::Db> {
    let flush_every_ms = options
        .flush_every
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1));
    let mut config = sled::Config::new()
        .path(path)
        .mode(match options.mode {
            SledMode::LowSpace => sled::Mode::LowSpace,
            SledMode::HighThroughput => sled::Mode::HighThroughput,
        })
        .flush_every_ms(flush_every_ms);
    if let Some(bytes) = options.cache_capacity {
        config = config.cache_capacity(bytes);
    }
    // Callers hold the folder's own lock, so no live store has it open:
    // sled's lock can then only be held by the flusher thread of a
    // database of this process that was just closed, which lets go of
    // it within a flush interval. Wait for that instead of failing a
    // reopen right after a close (found by the model-based tests).
    let deadline = std::time::Instant::now() + SLED_LOCK_WAIT;
    loop {
        match config.open() {
            Err(sled::Error::Io(e))
                if e.to_string().contains("could not acquire lock")
                    && std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            other => return other,
        }
    }
}

/// An open generation.
#[derive(Debug)]
struct Open {
    generation: u64,
    /// Commits so far (the value at [`SEQ_KEY`]).
    commits: u64,
    db: sled::Db,
    files: DurableFiles,
    /// Held for as long as the folder is open: locked (flock) so that no
    /// other store opens the folder. The last field, so dropped after `db`.
    _lock: File,
}

impl Open {
    /// Makes everything committed so far durable (see [`SledEngine`]).
    fn sync(&mut self, dir: &Path) -> Result<()> {
        call("flushing", dir, || self.db.flush())?;
        self.files.sync()
    }
}

/// What a durable commit fsyncs, beyond sled's own `flush`: sled's log
/// file, the blob files sled has written (it never syncs them) and the
/// folders whose entries changed.
///
/// The log file and both folders are opened once and synced through those
/// descriptors (fsync on any descriptor of a file flushes that file), so
/// that syncing never depends on looking paths up again. Only new blob
/// files are opened by name.
#[derive(Debug)]
struct DurableFiles {
    /// The generation's folder.
    dir: PathBuf,
    /// sled's log file (`db`).
    log: File,
    /// The generation's folder, opened.
    dir_file: File,
    /// `blobs/` (sled creates it when it opens a database), opened.
    blob_dir_file: File,
    /// The generation folder's entries at the last sync.
    entries: BTreeSet<OsString>,
    /// The blob files at the last sync (all synced).
    blobs: BTreeSet<OsString>,
}

impl DurableFiles {
    /// Opens the files of the generation at `dir`, syncing everything in
    /// it once (a new generation may just have been written).
    fn open(dir: &Path) -> Result<DurableFiles> {
        let open = |path: PathBuf| File::open(&path).map_err(|e| from_io("opening", &path, e));
        let mut files = DurableFiles {
            dir: dir.to_path_buf(),
            log: open(dir.join("db"))?,
            dir_file: open(dir.to_path_buf())?,
            blob_dir_file: open(dir.join("blobs"))?,
            entries: BTreeSet::new(),
            blobs: BTreeSet::new(),
        };
        for name in list(dir)? {
            let path = dir.join(&name);
            if path.is_file() {
                sync_file(&path)?;
            }
        }
        files.sync()?;
        Ok(files)
    }

    fn sync(&mut self) -> Result<()> {
        self.log
            .sync_data()
            .map_err(|e| from_io("syncing", &self.dir.join("db"), e))?;
        let blob_dir = self.dir.join("blobs");
        let blobs = list(&blob_dir)?;
        if blobs != self.blobs {
            for name in blobs.difference(&self.blobs) {
                sync_file(&blob_dir.join(name))?;
            }
            self.blob_dir_file
                .sync_all()
                .map_err(|e| from_io("syncing the folder", &blob_dir, e))?;
            self.blobs = blobs;
        }
        let entries = list(&self.dir)?;
        if entries != self.entries {
            self.dir_file
                .sync_all()
                .map_err(|e| from_io("syncing the folder", &self.dir, e))?;
            self.entries = entries;
        }
        Ok(())
    }
}

/// The names in a folder; none when the folder is gone (deleted from under
/// an open store: then nothing in it can be made durable, and sled works on
/// through its open descriptors, like any program on deleted files).
fn list(dir: &Path) -> Result<BTreeSet<OsString>> {
    let mut names = BTreeSet::new();
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(names),
        Err(e) => return Err(from_io("listing", dir, e)),
    };
    for entry in entries {
        let entry = entry.map_err(|e| from_io("listing", dir, e))?;
        names.insert(entry.file_name());
    }
    Ok(names)
}

/// fdatasync of a file; one that is gone (sled removes blobs it no longer
/// needs) needs none.
fn sync_file(path: &Path) -> Result<()> {
    match File::open(path) {
        Ok(file) => file.sync_data().map_err(|e| from_io("syncing", path, e)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(from_io("opening", path, e)),
    }
}

/// The commits recorded in a database (0 for a new one).
fn read_commits(db: &sled::Db, dir: &Path) -> Result<u64> {
    match call("opening", dir, || db.get(SEQ_KEY))? {
        None => Ok(0),
        Some(v) => <[u8; 8]>::try_from(v.as_ref())
            .map(u64::from_be_bytes)
            .map_err(|_| {
                Error::corruption(
                    CorruptionAt::Path(dir.to_path_buf()),
                    format!(
                        "{}: the engine's commit counter has {} bytes instead of 8",
                        dir.display(),
                        v.len()
                    ),
                )
            }),
    }
}

/// sled's recovery stops, without an error, at the first log message whose
/// checksum fails — as it must at a write torn by a crash — so damaged bytes
/// in its log can make it silently open an older state. After a clean
/// close (`CLOSED` exists) the state must be exactly the one closed: same
/// generation, same number of commits; anything else is
/// [`Error::Corruption`]. `CLOSED` is then removed (durably) before
/// anything is committed, so that it never speaks for a later state — but
/// kept by a read-only open, which commits nothing.
fn check_clean_close(dir: &Path, generation: u64, commits: u64, read_only: bool) -> Result<()> {
    let path = dir.join(CLOSED);
    let Some([closed_generation, closed_commits]) = files::read_numbers(&path, &CLOSED_LABELS)?
    else {
        return Ok(());
    };
    if (closed_generation, closed_commits) != (generation, commits) {
        return Err(Error::corruption(
            CorruptionAt::Path(dir.to_path_buf()),
            format!(
                "{}: the store was closed after commit {closed_commits} of {}, but sled recovered \
             commit {commits} of {}: sled's log is damaged (its recovery stopped early at a bad \
             checksum)",
                dir.display(),
                GENERATIONS.name(closed_generation),
                GENERATIONS.name(generation),
            ),
        ));
    }
    if read_only {
        return Ok(());
    }
    fs::remove_file(&path).map_err(|e| from_io("removing", &path, e))?;
    files::sync_folder(dir)
}

/// Opens (or, unless `read_only`, creates) and locks `<dir>/LOCK`.
fn lock_folder(dir: &Path, read_only: bool, mode: FileMode) -> Result<File> {
    let path = dir.join(LOCK);
    let opened = match OpenOptions::new().read(true).open(&path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound && !read_only => mode.create_new_file(&path),
        other => other,
    };
    let file = opened.map_err(|e| from_io("opening", &path, e))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(fs::TryLockError::WouldBlock) => Err(support::already_open(
            "opening",
            dir,
            "the store",
            io::Error::from(io::ErrorKind::WouldBlock),
        )),
        Err(fs::TryLockError::Error(e)) => Err(from_io("locking", &path, e)),
    }
}

/// Whether the folder `dir`, which has no marker, is a store of an
/// earlier release of annals (which wrote none): its `CURRENT` names a
/// generation folder that holds sled's log file.
fn is_earlier_store(dir: &Path) -> Result<bool> {
    Ok(match GENERATIONS.read_current(dir) {
        Ok(Some(generation)) => GENERATIONS.folder(dir, generation).join("db").is_file(),
        _ => false,
    })
}

/// Drops a sled database, turning a panic into an error.
fn drop_db(db: sled::Db, dir: &Path) -> Result<()> {
    no_panic("closing", dir, move || drop(db))
}

impl SledEngine {
    /// Opens the sled store in the folder `dir` — creating it if it is
    /// missing or empty and `options.create` is set (with
    /// `options.file_mode`) — and checks that it can hold an annals store.
    ///
    /// Errors name the folder: a folder that is not empty and is not an
    /// annals sled store (see the module documentation, "Whose files") is
    /// [`Error::InvalidInput`], and nothing is written to it; one already
    /// open (by another store of this process, or another process) is
    /// [`Error::Backend`]; a damaged `CURRENT` file, or damage sled
    /// detects, is [`Error::Corruption`]; a panic of sled on damaged files
    /// is [`Error::Backend`]. With `options.read_only` the store must exist,
    /// and annals writes none of its files (see [`SledOptions::read_only`]).
    ///
    /// Most callers want [`crate::open`], which also opens the store.
    ///
    /// ```
    /// use annals_sled::{SledEngine, SledOptions};
    ///
    /// let dir = tempfile::tempdir()?;
    /// let path = dir.path().join("nested/store");
    /// let engine = SledEngine::open(&path, &SledOptions::default())?;
    /// assert!(path.join("CURRENT").exists());
    /// // The folder is locked while it is open.
    /// assert!(SledEngine::open(&path, &SledOptions::default()).is_err());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn open(dir: impl AsRef<Path>, options: &SledOptions) -> Result<SledEngine> {
        let dir: Arc<Path> = Arc::from(dir.as_ref());
        let (read_only, mode) = (options.read_only, options.file_mode);
        let claim = Claim {
            backend: "sled",
            create: options.create,
            read_only,
            mode,
        };
        let claimed = files::claim_folder(&dir, claim, is_earlier_store)?;
        let lock = lock_folder(&dir, read_only, mode)?;
        let no_store = || {
            Error::backend(
                format!(
                    "opening {}: the folder holds no annals sled store (no CURRENT file)",
                    dir.display()
                ),
                io::Error::from(io::ErrorKind::NotFound),
            )
        };
        let generation = match GENERATIONS.read_current(&dir)? {
            Some(generation) => {
                let gen_dir = GENERATIONS.folder(&dir, generation);
                if !gen_dir.is_dir() {
                    return Err(Error::corruption(
                        CorruptionAt::Path(dir.to_path_buf()),
                        format!(
                            "{}: CURRENT names {}, which is missing",
                            dir.display(),
                            GENERATIONS.name(generation)
                        ),
                    ));
                }
                if !read_only {
                    GENERATIONS.remove_others(&dir, Some(generation), &[CLOSED_TMP])?;
                    // CURRENT names it, so it is the store's: an earlier
                    // release made it without a marker.
                    GENERATIONS.mark(&dir, generation, mode)?;
                }
                generation
            }
            // A new store, or the creation of one that crashed before
            // `CURRENT` was written (when nothing was acknowledged).
            None if claimed == Claimed::New || (options.create && !read_only) => {
                GENERATIONS.remove_others(&dir, None, &[CLOSED_TMP])?;
                GENERATIONS.create(&dir, 0, mode)?;
                0
            }
            None => return Err(no_store()),
        };
        let gen_dir = GENERATIONS.folder(&dir, generation);
        let db = call("opening", &dir, || open_sled(options, &gen_dir))?;
        let checked = read_commits(&db, &dir).and_then(|commits| {
            check_clean_close(&dir, generation, commits, read_only)?;
            let files = DurableFiles::open(&gen_dir)?;
            if !read_only && !dir.join(Generations::CURRENT).exists() {
                // A new store: it exists once `CURRENT` names it.
                GENERATIONS.write_current(&dir, generation, mode)?;
            }
            Ok((commits, files))
        });
        let (db, (commits, files)) = close_on_error(checked, db)?;
        Ok(SledEngine {
            dir,
            options: *options,
            state: Arc::new(RwLock::new(Some(Open {
                _lock: lock,
                generation,
                commits,
                db,
                files,
            }))),
            poisoned: Arc::new(AtomicBool::new(false)),
        })
    }

    /// The store's folder.
    pub fn path(&self) -> &Path {
        &self.dir
    }

    fn check_poisoned(&self) -> Result<()> {
        check_poisoned(&self.poisoned, &self.dir)
    }

    /// Runs `f` against sled; a panic poisons the engine.
    fn guarded<T>(&self, what: &str, f: impl FnOnce() -> T) -> Result<T> {
        guarded(&self.poisoned, what, &self.dir, f)
    }

    /// [`Self::guarded`], with sled's error turned into annals'.
    fn call<T>(&self, what: &str, f: impl FnOnce() -> sled::Result<T>) -> Result<T> {
        self.guarded(what, f)?
            .map_err(|e| from_sled(what, &self.dir, e))
    }

    /// Copies every entry of `from` into a new generation after `open`'s;
    /// answers the new generation, durable, with its files.
    fn write_generation(
        &self,
        from: &sled::Db,
        generation: u64,
    ) -> Result<(sled::Db, DurableFiles)> {
        let gen_dir = GENERATIONS.create(&self.dir, generation, self.options.file_mode)?;
        let db = self.call("compacting", || open_sled(&self.options, &gen_dir))?;
        let copied = self.call("compacting", || copy(from, &db));
        let copied = copied.and_then(|()| DurableFiles::open(&gen_dir));
        // Left over, the new generation would be removed on the next open
        // anyway.
        close_on_error(copied, db).inspect_err(|_| drop(fs::remove_dir_all(&gen_dir)))
    }
}

/// Copies every entry of `from` into `to`, in batches of about
/// [`COPY_CHUNK_BYTES`], and flushes `to`.
fn copy(from: &sled::Db, to: &sled::Db) -> sled::Result<()> {
    let mut batch = sled::Batch::default();
    let mut bytes = 0;
    for entry in from.iter() {
        let (key, value) = entry?;
        bytes += key.len() + value.len();
        batch.insert(key, value);
        if bytes >= COPY_CHUNK_BYTES {
            to.apply_batch(std::mem::take(&mut batch))?;
            bytes = 0;
        }
    }
    if bytes > 0 {
        to.apply_batch(batch)?;
    }
    to.flush().map(drop)
}

/// `result`, with the database `db` when it is `Ok`; on an error `db` is
/// dropped first (a panic of sled's meanwhile is ignored: the error says
/// enough).
fn close_on_error<T>(result: Result<T>, db: sled::Db) -> Result<(sled::Db, T)> {
    match result {
        Ok(value) => Ok((db, value)),
        Err(e) => {
            drop_quietly(db);
            Err(e)
        }
    }
}

fn check_poisoned(poisoned: &AtomicBool, dir: &Path) -> Result<()> {
    if poisoned.load(Ordering::Acquire) {
        return Err(Error::backend(
            format!("using {}", dir.display()),
            "an earlier commit failed, or sled panicked (damaged files?): close the store and \
             open it again",
        ));
    }
    Ok(())
}

fn guarded<T>(poisoned: &AtomicBool, what: &str, dir: &Path, f: impl FnOnce() -> T) -> Result<T> {
    no_panic(what, dir, f).inspect_err(|_| poisoned.store(true, Ordering::Release))
}

impl KvEngine for SledEngine {
    type Snapshot = SledSnapshot;

    fn snapshot(&self) -> Result<SledSnapshot> {
        let guard = self.state.read_arc();
        if guard.is_none() {
            return Err(Error::Closed);
        }
        self.check_poisoned()?;
        Ok(SledSnapshot {
            guard,
            dir: Arc::clone(&self.dir),
            poisoned: Arc::clone(&self.poisoned),
        })
    }

    fn commit(&self, batch: WriteBatch, sync: bool) -> Result<()> {
        let mut guard = self.state.write();
        let open = guard.as_mut().ok_or(Error::Closed)?;
        self.check_poisoned()?;
        if self.options.read_only {
            return Err(files::read_only_error(&self.dir));
        }
        if !batch.is_empty() {
            let commits = open.commits.checked_add(1).ok_or_else(|| {
                Error::backend(
                    format!("committing to {}", self.dir.display()),
                    "the commit counter is exhausted",
                )
            })?;
            let mut sled_batch = sled::Batch::default();
            sled_batch.insert(SEQ_KEY, &commits.to_be_bytes());
            for (key, value) in batch.ops {
                match value {
                    Some(value) => sled_batch.insert(key, value),
                    None => sled_batch.remove(key),
                }
            }
            // A failed `apply_batch` may have applied part of the batch in
            // memory (sled's batches are atomic across a crash, not against
            // an error midway): poison the engine, so that no reader sees
            // it.
            self.call("committing to", || open.db.apply_batch(sled_batch))
                .inspect_err(|_| self.poisoned.store(true, Ordering::Release))?;
            open.commits = commits;
        }
        if sync {
            open.sync(&self.dir)
                .inspect_err(|_| self.poisoned.store(true, Ordering::Release))?;
        }
        Ok(())
    }

    /// Rewrites the live entries into a new generation (see the module
    /// documentation) and deletes the old one. Reads and commits wait
    /// meanwhile; on an error the old generation stays in use, unchanged.
    fn compact(&self) -> Result<()> {
        let mut guard = self.state.write();
        let open = guard.as_mut().ok_or(Error::Closed)?;
        self.check_poisoned()?;
        if self.options.read_only {
            return Err(files::read_only_error(&self.dir));
        }
        let generation = GENERATIONS.after(&self.dir, open.generation)?;
        let (db, files) = self.write_generation(&open.db, generation)?;
        let switched = GENERATIONS.switch(
            &self.dir,
            open.generation,
            generation,
            self.options.file_mode,
        );
        if let Err(e) = switched {
            // Still on the old generation: the new one goes (unless, after
            // three failures in a row, `CURRENT` names it).
            let _ = drop_db(db, &self.dir);
            let _ = GENERATIONS.remove_others(&self.dir, Some(open.generation), &[CLOSED_TMP]);
            return Err(e);
        }
        let old_db = std::mem::replace(&mut open.db, db);
        open.files = files;
        open.generation = generation;
        self.guarded("closing", || drop(old_db))?;
        // A left-over old generation is removed on the next open.
        let _ = GENERATIONS.remove_others(&self.dir, Some(generation), &[CLOSED_TMP]);
        Ok(())
    }

    /// sled's `size_on_disk` (its log file and blob files) plus its other
    /// files (`conf`, `snap.*`).
    fn disk_bytes(&self) -> Result<u64> {
        let guard = self.state.read();
        let open = guard.as_ref().ok_or(Error::Closed)?;
        self.check_poisoned()?;
        let sled_bytes = self.call("measuring", || open.db.size_on_disk())?;
        let gen_dir = GENERATIONS.folder(&self.dir, open.generation);
        let other = files::file_bytes(&gen_dir, |name| name != "db")?;
        Ok(sled_bytes.saturating_add(other))
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities::ALL
    }

    fn read_only(&self) -> bool {
        self.options.read_only
    }

    /// Makes everything durable, closes sled and releases the folder: it
    /// can be opened again as soon as this returns. Later calls of every
    /// other method answer [`Error::Closed`]; closing again does nothing.
    fn close(&self) -> Result<()> {
        let taken = self.state.write().take();
        let Some(mut open) = taken else {
            return Ok(());
        };
        // A poisoned engine leaves no `CLOSED`: its state in memory may not
        // be what is on disk. A read-only one writes nothing (the `CLOSED`
        // of the last close stays).
        let synced = if self.poisoned.load(Ordering::Acquire) || self.options.read_only {
            Ok(())
        } else {
            let (closed, mode) = ([open.generation, open.commits], self.options.file_mode);
            let write = |()| files::write_numbers(&self.dir, CLOSED, &CLOSED_LABELS, closed, mode);
            open.sync(&self.dir).and_then(write)
        };
        // The fields drop in order: sled's database before the lock.
        synced.and(no_panic("closing", &self.dir, move || drop(open)))
    }
}

impl Drop for SledEngine {
    fn drop(&mut self) {
        // sled flushes when its database is dropped; a panic of sled's (on
        // damaged files) must not escape a drop.
        drop_quietly(self.state.write().take());
    }
}

/// A consistent read view of a [`SledEngine`]: a shared guard of the
/// engine's lock, so that nothing is committed while it is alive (see
/// [`SledEngine`]). Drop it once the read is done.
pub struct SledSnapshot {
    guard: ArcRwLockReadGuard<RawRwLock, Option<Open>>,
    dir: Arc<Path>,
    poisoned: Arc<AtomicBool>,
}

impl std::fmt::Debug for SledSnapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SledSnapshot")
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

impl SledSnapshot {
    fn db(&self) -> Result<&sled::Db> {
        check_poisoned(&self.poisoned, &self.dir)?;
        self.guard
            .as_ref()
            .map(|open| &open.db)
            .ok_or(Error::Closed)
    }

    fn guarded<T>(&self, f: impl FnOnce() -> T) -> Result<T> {
        guarded(&self.poisoned, "reading", &self.dir, f)
    }
}

impl KvSnapshot for SledSnapshot {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        let db = self.db()?;
        self.guarded(|| db.get(key))?
            .map(|found| found.map(|v| v.to_vec()))
            .map_err(|e| from_sled("reading", &self.dir, e))
    }

    fn scan(
        &self,
        start: &[u8],
        end: &[u8],
        direction: Direction,
        visit: &mut Visitor<'_>,
    ) -> Result<()> {
        if start >= end {
            return Ok(());
        }
        let db = self.db()?;
        let range = self.guarded(|| db.range(start..end))?;
        // Only sled's steps are guarded: the visitor's panics are its own.
        let guard = |step: &mut dyn FnMut()| self.guarded(step);
        scan_iter(
            range,
            direction,
            &guard,
            |e| from_sled("reading", &self.dir, e),
            visit,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generation_names_round_trip() {
        for g in [0, 1, 42, u64::MAX] {
            assert_eq!(GENERATIONS.parse(&GENERATIONS.name(g)), Some(g));
        }
        for bad in ["gen-", "gen-x", "gen--1", "gen-1 ", "gen-+1", "gen", "db"] {
            assert_eq!(GENERATIONS.parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn damaged_current_is_corruption() {
        let dir = tempfile::tempdir().expect("tempdir");
        fs::write(dir.path().join(Generations::CURRENT), b"gen-\xff\n").expect("write");
        let err = GENERATIONS.read_current(dir.path()).expect_err("damaged");
        assert!(matches!(err, Error::Corruption { .. }), "{err:?}");
        fs::write(dir.path().join(Generations::CURRENT), b"gen-7\n").expect("write");
        assert_eq!(GENERATIONS.read_current(dir.path()).expect("fine"), Some(7));
    }
}
