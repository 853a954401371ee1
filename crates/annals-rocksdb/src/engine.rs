//! [`RocksDbEngine`]: the [`KvEngine`] over a RocksDB database with two
//! column families.

use std::io;
use std::path::Path;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use annals_core::files::{self, Claim, Claimed};
use annals_core::kv::support::{LiveSnapshots, Ticket, read_lock, timed_out, write_lock};
use annals_core::kv::{KvEngine, KvSnapshot, Scan, Visitor, WriteBatch, layout};
use annals_core::{Capabilities, Direction, Durability, Error, Result};
use rocksdb::{
    BlockBasedOptions, BottommostLevelCompaction, Cache, ColumnFamily, ColumnFamilyDescriptor,
    CompactOptions, DB, DBRecoveryMode, FlushOptions, InfoLogger, LogLevel, Options, ReadOptions,
    Snapshot, WriteOptions,
};

use crate::error::from_rocksdb;
use crate::mark;
use crate::options::RocksDbOptions;

/// How long `close` waits for the live snapshots to end before it gives
/// up (the database is then closed when the last of them is dropped).
const CLOSE_PATIENCE: Duration = Duration::from_secs(60);

/// The column family of the log: every key starting with
/// [`layout::LOG`] (the event records, by position).
pub const LOG_FAMILY: &str = "log";

/// The column family of everything else: store and stream metadata, the
/// stream, type and tag indexes, and the aux space.
pub const MAIN_FAMILY: &str = rocksdb::DEFAULT_COLUMN_FAMILY_NAME;

/// Which column family a key lives in.
///
/// The log gets a family of its own because its keys only ever grow (one
/// new position after another): in a family of their own, the table files
/// a flush writes never overlap older ones, so RocksDB's leveled
/// compaction moves them down without rewriting them, and the log — the
/// bulk of a store's bytes — is written about once instead of once per
/// level. The indexes and metadata, whose keys land all over their key
/// space, are small and compact among themselves. The log's family is also
/// tuned for what it holds: larger blocks (better compression, fewer index
/// entries), no Bloom filter (a log lookup is by a position the stream
/// index just gave, so it always finds something).
///
/// Every write goes in one RocksDB `WriteBatch` whatever families it
/// touches, which RocksDB commits atomically (one write-ahead log record),
/// and a RocksDB snapshot spans every family: splitting changes neither
/// atomicity nor the consistency of a read.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Family {
    Main,
    Log,
}

/// Both families, in the order they are opened.
const FAMILIES: [Family; 2] = [Family::Main, Family::Log];

impl Family {
    fn of(key: &[u8]) -> Family {
        if key.first() == Some(&layout::LOG) {
            Family::Log
        } else {
            Family::Main
        }
    }

    fn name(self) -> &'static str {
        match self {
            Family::Main => MAIN_FAMILY,
            Family::Log => LOG_FAMILY,
        }
    }
}

/// Where the log's keys start, and the first key after them: the key
/// space is cut there into three parts, in the `default` family, in `log`
/// and in `default` again.
const LOG_KEYS: (&[u8], &[u8]) = (&[layout::LOG], &[layout::LOG + 1]);

/// The parts of `[start, end)` in each family, in key order.
fn segments<'k>(start: &'k [u8], end: &'k [u8]) -> Vec<(&'k [u8], &'k [u8], Family)> {
    let (log_start, log_end) = LOG_KEYS;
    let parts = [
        (start, end.min(log_start), Family::Main),
        (start.max(log_start), end.min(log_end), Family::Log),
        (start.max(log_end), end, Family::Main),
    ];
    parts
        .into_iter()
        .filter(|(from, to, _)| from < to)
        .collect()
}

fn handle<'d>(db: &'d DB, family: Family, path: &Path) -> Result<&'d ColumnFamily> {
    db.cf_handle(family.name()).ok_or_else(|| {
        Error::backend(
            format!("using RocksDB store {}", path.display()),
            format!("its column family {:?} is not open", family.name()),
        )
    })
}

/// The read options of every read: checksums verified (RocksDB's default,
/// set so that it stays so).
fn read_options() -> ReadOptions {
    let mut read = ReadOptions::default();
    read.set_verify_checksums(true);
    read
}

/// The options of the whole database.
fn db_options(options: &RocksDbOptions) -> Options {
    let mut db = Options::default();
    db.create_if_missing(options.create_if_missing);
    // Only ever on a store annals creates: never add families to a database
    // the caller asked not to create.
    db.create_missing_column_families(options.create_if_missing);
    // Refuse to open (or keep writing to) a database in which RocksDB finds
    // damage, instead of going on with what it can read.
    db.set_paranoid_checks(true);
    db.set_wal_recovery_mode(recovery_mode(options.config.durability));
    db.set_max_background_jobs(i32::try_from(options.max_background_jobs).unwrap_or(i32::MAX));
    // RocksDB's own diagnostic log (the `LOG` file): keep it small.
    db.set_keep_log_file_num(4);
    db.set_max_log_file_size(16 << 20);
    db
}

/// The options of a read-only open: RocksDB's diagnostic log would go to a
/// new `LOG` file in the folder (renaming the old one), so it is dropped
/// instead, and the folder is left exactly as it is.
fn read_only_options(options: &RocksDbOptions) -> Options {
    let mut db = db_options(options);
    db.create_if_missing(false);
    db.create_missing_column_families(false);
    db.set_info_logger(InfoLogger::new_callback_logger(LogLevel::Fatal, |_, _| {}));
    db
}

/// Whether the folder `dir`, which has no marker, is a store of an
/// earlier release of annals (which wrote none): it has annals' close mark,
/// or it is a RocksDB database with exactly annals' two column families
/// (listed from its MANIFEST, which writes nothing).
fn is_earlier_store(dir: &Path) -> Result<bool> {
    if dir.join(mark::MARK_FILE).is_file() {
        return Ok(true);
    }
    if !dir.join("CURRENT").is_file() {
        return Ok(false);
    }
    let Ok(mut families) = DB::list_cf(&Options::default(), dir) else {
        return Ok(false);
    };
    families.sort();
    Ok(families == [MAIN_FAMILY, LOG_FAMILY])
}

/// How RocksDB replays its write-ahead log when it opens after a crash.
///
/// - `Immediate`: every acknowledged commit was synced, so only the record
///   being written when the process or machine stopped can be incomplete.
///   `TolerateCorruptedTailRecords` drops a record cut off at the end of
///   the log and reports any other damage — a bad checksum anywhere, also
///   in the last record — as `Corruption`: an acknowledged commit is never
///   silently lost.
/// - `Relaxed`: commits were not synced, and a machine crash may leave
///   the log's unsynced tail in any state. `PointInTime` replays up to the
///   first incomplete or damaged record and stops there: what is lost is a
///   suffix of whole commits (SPEC D5), never part of one — but damage in
///   the middle of the log is then not told apart from a lost tail.
///
/// The mode is that of the open that replays the log: after a machine
/// crash of a store written with `Relaxed`, open it with `Relaxed` again.
fn recovery_mode(durability: Durability) -> DBRecoveryMode {
    match durability {
        Durability::Immediate => DBRecoveryMode::TolerateCorruptedTailRecords,
        Durability::Relaxed => DBRecoveryMode::PointInTime,
    }
}

/// The options of one column family.
fn family_options(options: &RocksDbOptions, cache: Option<&Cache>, family: Family) -> Options {
    let mut table = BlockBasedOptions::default();
    match cache {
        Some(cache) => {
            table.set_block_cache(cache);
            // Index and filter blocks count against the cache too, so that
            // it bounds the memory reads use; those of level 0 (the newest
            // files, read most) stay pinned.
            table.set_cache_index_and_filter_blocks(true);
            table.set_pin_l0_filter_and_index_blocks_in_cache(true);
        }
        None => table.disable_cache(),
    }
    match family {
        Family::Main => {
            // Point lookups of stream metadata and aux keys often miss (a
            // new stream, an absent checkpoint): a Bloom filter answers
            // those without reading a block.
            table.set_bloom_filter(10.0, false);
        }
        Family::Log => table.set_block_size(16 << 10),
    }
    let mut cf = Options::default();
    cf.set_block_based_table_factory(&table);
    cf.set_compression_type(options.compression.to_rocksdb());
    cf.set_write_buffer_size(options.write_buffer_bytes);
    cf
}

/// A [`KvEngine`] over a RocksDB database (a folder of files).
///
/// - Keys go to two column families: the log in `log`, everything else in
///   `default` (see the crate's documentation for why); a scan over both
///   walks one, then the other.
/// - [`commit`](KvEngine::commit) is one RocksDB `WriteBatch`, written to
///   the write-ahead log with `sync` as asked (an `fsync` before it
///   returns) or without (RocksDB still hands it to the OS at once, so only
///   a crash of the machine can lose it). The write-ahead log is always on.
/// - [`snapshot`](KvEngine::snapshot) is a RocksDB snapshot: every read
///   through it sees the database as of one sequence number, in both
///   families.
/// - [`compact`](KvEngine::compact) is a full manual compaction of both
///   families down to the last level (forced), so deleted entries and their
///   tombstones leave the disk.
/// - [`disk_bytes`](KvEngine::disk_bytes) is the size of the table (SST)
///   and write-ahead log files.
/// - [`close`](KvEngine::close) syncs the write-ahead log, flushes the
///   memtables, waits for the live snapshots to end and closes the
///   database, releasing its `LOCK`.
///
/// ```
/// use annals_core::kv::{KvEngine, KvSnapshot, WriteBatch};
/// use annals_rocksdb::{RocksDbEngine, RocksDbOptions};
///
/// let dir = tempfile::tempdir()?;
/// let engine = RocksDbEngine::open(dir.path().join("store"), &RocksDbOptions::default())?;
/// let mut batch = WriteBatch::new();
/// batch.put(b"k".to_vec(), b"v".to_vec());
/// engine.commit(batch, true)?;
/// assert_eq!(engine.snapshot()?.get(b"k")?, Some(b"v".to_vec()));
/// engine.close()?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct RocksDbEngine {
    /// The database folder, for error messages and `disk_bytes`.
    path: Arc<Path>,
    /// The database; `None` once closed. Every use holds the lock shared,
    /// `close` exclusively. Snapshots hold a clone of the `Arc`.
    db: RwLock<Option<Arc<DB>>>,
    /// The snapshots alive now, so that `close` can wait for them.
    live: Arc<LiveSnapshots>,
    /// The options it was opened with: with `read_only`, RocksDB's
    /// read-only mode, nothing written; `file_mode` for the files the store
    /// creates itself.
    options: RocksDbOptions,
}

impl RocksDbEngine {
    /// Opens the RocksDB database in the folder `path` — creating the
    /// folder (and its parents) and the database if they are missing, or
    /// the folder is empty, and `options.create_if_missing` is set — with
    /// annals' column families.
    ///
    /// A folder that is not empty and is not an annals store (see the
    /// crate's documentation, "Whose files") is [`Error::InvalidInput`]
    /// naming it, and nothing in it is touched. With `options.read_only`
    /// the database is opened in RocksDB's read-only mode and no file
    /// changes.
    ///
    /// Invalid options are [`Error::InvalidInput`]. Errors of RocksDB name
    /// the path: a damaged database (a bad MANIFEST or CURRENT file, a
    /// table file that fails its checks, …) is [`Error::Corruption`]; a
    /// folder that is already open (by another store of this process, or
    /// another process), a missing database without `create_if_missing`,
    /// or a RocksDB database with other column families is
    /// [`Error::Backend`].
    ///
    /// A store closed cleanly before (it has an `ANNALS-CLOSED` mark) is
    /// first opened read-only, which deletes nothing, to check that RocksDB
    /// did not go back from its last close (see the crate's documentation,
    /// "Damaged files"); if it did, the answer is [`Error::Corruption`] and
    /// the files are left as they are.
    ///
    /// Most callers want [`crate::open`], which also opens the store.
    ///
    /// ```
    /// use annals_rocksdb::{RocksDbEngine, RocksDbOptions};
    ///
    /// let dir = tempfile::tempdir()?;
    /// let path = dir.path().join("nested/store");
    /// let engine = RocksDbEngine::open(&path, &RocksDbOptions::default())?;
    /// assert!(path.join("CURRENT").exists());
    /// // The folder is locked while it is open.
    /// assert!(RocksDbEngine::open(&path, &RocksDbOptions::default()).is_err());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn open(path: impl AsRef<Path>, options: &RocksDbOptions) -> Result<RocksDbEngine> {
        options.validate()?;
        let path: Arc<Path> = Arc::from(path.as_ref());
        let read_only = options.read_only;
        let claim = Claim {
            backend: "rocksdb",
            create: options.create_if_missing,
            read_only,
            mode: options.file_mode,
        };
        let claimed = files::claim_folder(&path, claim, is_earlier_store)?;
        if claimed == Claimed::Existing
            && (read_only || !options.create_if_missing)
            && !path.join("CURRENT").is_file()
        {
            // Checked here: RocksDB would create its diagnostic log before
            // it found that the database is missing.
            let why = "there is no RocksDB database there (no CURRENT file), and the store may \
                       not create one (create_if_missing is false, or read_only)";
            let missing = io::Error::new(io::ErrorKind::NotFound, why);
            return Err(files::io_error("opening", &path, missing));
        }
        // One cache for both families; the families' options keep it alive.
        let cache = (options.block_cache_bytes > 0)
            .then(|| Cache::new_lru_cache(options.block_cache_bytes));
        let families = || {
            FAMILIES.map(|family| {
                let tuned = family_options(options, cache.as_ref(), family);
                ColumnFamilyDescriptor::new(family.name(), tuned)
            })
        };
        let recorded = mark::read(&path)?;
        let mut opened = None;
        if read_only || recorded.is_some() {
            // Read-only first, which deletes nothing (see `mark`); kept
            // only if the store is to be read-only.
            let quiet = read_only_options(options);
            let db = DB::open_cf_descriptors_read_only(&quiet, &*path, families(), false)
                .map_err(|e| from_rocksdb("opening (read-only)", &path, e))?;
            if let Some(recorded) = recorded {
                mark::check(&path, recorded, db.latest_sequence_number())?;
            }
            opened = Some(db).filter(|_| read_only);
        }
        let db = match opened {
            Some(db) => db,
            None => DB::open_cf_descriptors(&db_options(options), &*path, families())
                .map_err(|e| from_rocksdb("opening", &path, e))?,
        };
        Ok(RocksDbEngine {
            path,
            db: RwLock::new(Some(Arc::new(db))),
            live: Arc::default(),
            options: *options,
        })
    }

    /// The database folder's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Runs `f` on the open database (`close` waits for it), or answers
    /// [`Error::Closed`]; a `write` to a read-only store is refused.
    fn with<T>(&self, write: bool, f: impl FnOnce(&Arc<DB>) -> Result<T>) -> Result<T> {
        let guard = read_lock(&self.db);
        let db = guard.as_ref().ok_or(Error::Closed)?;
        if write && self.options.read_only {
            return Err(files::read_only_error(&self.path));
        }
        f(db)
    }

    /// Syncs the write-ahead log, flushes every memtable to a table file
    /// (a store closed this way is reopened without replaying any log) and
    /// records RocksDB's sequence number in the close mark.
    fn flush_everything(&self, db: &DB) -> Result<()> {
        db.flush_wal(true)
            .map_err(|e| from_rocksdb("syncing the write-ahead log of", &self.path, e))?;
        let main = handle(db, Family::Main, &self.path)?;
        let log = handle(db, Family::Log, &self.path)?;
        db.flush_cfs_opt(&[main, log], &FlushOptions::default())
            .map_err(|e| from_rocksdb("flushing the memtables of", &self.path, e))?;
        let sequence = db.latest_sequence_number();
        mark::write(&self.path, sequence, self.options.file_mode)
    }
}

/// RocksDB's count of background errors (failed flushes and compactions)
/// since the database was opened.
fn background_errors(db: &DB, path: &Path) -> Result<u64> {
    db.property_int_value(rocksdb::properties::BACKGROUND_ERRORS)
        .map(Option::unwrap_or_default)
        .map_err(|e| from_rocksdb("reading the background errors of", path, e))
}

/// Whether a file of the database folder is a table (SST, or blob) file or
/// a write-ahead log file (`000123.log`; RocksDB's diagnostic log is
/// `LOG`, and old ones `LOG.old.…`).
fn is_data_file(name: &str) -> bool {
    name.ends_with(".sst") || name.ends_with(".blob") || name.ends_with(".log")
}

impl KvEngine for RocksDbEngine {
    type Snapshot = RocksDbSnapshot;

    fn snapshot(&self) -> Result<RocksDbSnapshot> {
        self.with(false, |db| {
            Ok(RocksDbSnapshot {
                // Counted while the lock is held: `close`, which takes it
                // exclusively, sees every snapshot that exists.
                _ticket: self.live.enter(),
                cell: SnapshotCell::new(Arc::clone(db), |db| db.snapshot()),
                path: Arc::clone(&self.path),
            })
        })
    }

    fn commit(&self, batch: WriteBatch, sync: bool) -> Result<()> {
        self.with(true, |db| {
            if batch.is_empty() {
                // Nothing to write; a sync still makes earlier commits durable.
                return if sync {
                    db.flush_wal(true)
                        .map_err(|e| from_rocksdb("syncing the write-ahead log of", &self.path, e))
                } else {
                    Ok(())
                };
            }
            // Looked up once per batch, not per key (a lock and a map).
            let main = handle(db, Family::Main, &self.path)?;
            let log = handle(db, Family::Log, &self.path)?;
            let mut write = rocksdb::WriteBatch::default();
            for (key, value) in batch.ops {
                let family = match Family::of(&key) {
                    Family::Main => main,
                    Family::Log => log,
                };
                match value {
                    Some(value) => write.put_cf(family, key, value),
                    None => write.delete_cf(family, key),
                }
            }
            let mut options = WriteOptions::default();
            options.set_sync(sync);
            options.disable_wal(false);
            db.write_opt(write, &options)
                .map_err(|e| from_rocksdb("committing to", &self.path, e))
        })
    }

    /// A full manual compaction of both column families, forced down to the
    /// bottommost level, so that deleted entries — and the tombstones that
    /// hid them — are really dropped from the files. It flushes the
    /// memtables first, so the write-ahead log files they kept are deleted
    /// too. Entries still visible to a live snapshot are kept until a later
    /// compaction.
    ///
    /// RocksDB's C API does not return a manual compaction's status, so a
    /// failure is detected through RocksDB's count of background errors
    /// (see its `LOG` file for the details).
    fn compact(&self) -> Result<()> {
        self.with(true, |db| {
            let errors_before = background_errors(db, &self.path)?;
            let mut options = CompactOptions::default();
            options.set_bottommost_level_compaction(BottommostLevelCompaction::Force);
            for family in FAMILIES {
                let cf = handle(db, family, &self.path)?;
                db.compact_range_cf_opt(cf, None::<&[u8]>, None::<&[u8]>, &options);
            }
            let failed = background_errors(db, &self.path)?.saturating_sub(errors_before);
            if failed > 0 {
                return Err(Error::backend(
                    format!("compacting RocksDB store {}", self.path.display()),
                    format!(
                        "RocksDB reported {failed} background error(s) while compacting; its LOG \
                         file says which"
                    ),
                ));
            }
            Ok(())
        })
    }

    /// The bytes of the table (SST) and write-ahead log files in the
    /// database folder: what the store's data takes on disk. RocksDB's
    /// small bookkeeping files (MANIFEST, OPTIONS, its diagnostic LOG) are
    /// left out.
    fn disk_bytes(&self) -> Result<u64> {
        self.with(false, |_| files::file_bytes(&self.path, is_data_file))
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities::ALL
    }

    fn read_only(&self) -> bool {
        self.options.read_only
    }

    /// Syncs the write-ahead log, flushes the memtables to table files,
    /// records RocksDB's sequence number in the close mark (see the crate's
    /// documentation, "Damaged files"), waits for the snapshots still alive to be dropped (reads in flight;
    /// at most a minute) and closes the database: once this returns, its
    /// `LOCK` is released and the same folder can be opened again. Later
    /// calls of every other method answer [`Error::Closed`]; closing again
    /// does nothing.
    ///
    /// If snapshots are still alive after a minute, this returns
    /// [`Error::Backend`] saying so; the database is then closed when the
    /// last of them is dropped. (Do not call `close` from a thread that
    /// holds a snapshot.)
    fn close(&self) -> Result<()> {
        let Some(db) = write_lock(&self.db).take() else {
            return Ok(());
        };
        // A read-only database has nothing to flush, and leaves the mark of
        // the last close as it is.
        let flushed = if self.options.read_only {
            Ok(())
        } else {
            self.flush_everything(&db)
        };
        db.cancel_all_background_work(true);
        let alive = self.live.wait_none(CLOSE_PATIENCE);
        // Dropping the last handle closes RocksDB and releases `LOCK`; the
        // snapshots still alive hold the others.
        if Arc::try_unwrap(db).is_err() {
            let why = format!(
                "{alive} snapshot(s) still alive after {} s; the database closes when the last \
                 one is dropped",
                CLOSE_PATIENCE.as_secs()
            );
            return flushed.and(Err(timed_out("closing RocksDB store", &self.path, why)));
        }
        flushed
    }
}

/// A store dropped without [`close`](KvEngine::close) (`KvStore` closes
/// its engine, even when dropped: this is for an engine used alone, or
/// one whose store failed to open) stops its background work before the
/// database is released. Nothing is flushed: the write-ahead log holds
/// every commit, and the next open replays it.
///
/// Stopping RocksDB's background work (flushes and compactions: those
/// running are stopped at their next check, and waited for), here and in
/// `close`, schedules no more: after it, no RocksDB thread works for the
/// database, even if snapshots keep it open a while. RocksDB's own close
/// would wait for them too, but later, on whichever thread drops the last
/// handle; a process that exits while RocksDB still works for one of its
/// databases aborts in RocksDB's static destructors (`pthread lock:
/// Invalid argument`). Reads through the database keep working.
impl Drop for RocksDbEngine {
    fn drop(&mut self) {
        if let Some(db) = write_lock(&self.db).take() {
            db.cancel_all_background_work(true);
        }
    }
}

// A RocksDB snapshot borrows its database (`Snapshot<'a>` holds `&'a DB`),
// but a `KvSnapshot` must be `'static`: it is sent to a blocking-pool
// thread and outlives the lock guard it was taken under. The snapshot must
// be a real RocksDB snapshot (one sequence number for every read of a
// page, in both column families), so taking a fresh one per `get` or
// `scan` would not do, and a transaction borrows the database just the
// same. So the snapshot is kept together with the `Arc<DB>` it borrows
// from, in one self-referential cell built by `self_cell`: a small,
// dependency-free crate whose unsafe code is miri-tested and which keeps
// our own code free of `unsafe`. The cell drops the snapshot (releasing it
// in RocksDB) before its `Arc<DB>`, so a snapshot never outlives its
// database.
self_cell::self_cell!(
    /// A RocksDB snapshot together with the database handle it borrows.
    struct SnapshotCell {
        owner: Arc<DB>,
        #[covariant]
        dependent: Snapshot,
    }
);

/// A consistent read view of a [`RocksDbEngine`]: one RocksDB snapshot,
/// read with checksums verified.
///
/// It keeps the database open: drop it once the read is done
/// ([`close`](KvEngine::close) waits for it).
pub struct RocksDbSnapshot {
    /// Dropped first: the RocksDB snapshot and its database handle.
    cell: SnapshotCell,
    path: Arc<Path>,
    /// Dropped last: `close` sees the snapshot end only once its database
    /// handle is gone.
    _ticket: Ticket,
}

impl std::fmt::Debug for RocksDbSnapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RocksDbSnapshot")
            .field("path", &self.path)
            .field("sequence", &self.cell.borrow_dependent().sequence_number())
            .finish_non_exhaustive()
    }
}

impl KvSnapshot for RocksDbSnapshot {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        let cf = handle(self.cell.borrow_owner(), Family::of(key), &self.path)?;
        self.cell
            .borrow_dependent()
            .get_pinned_cf_opt(cf, key, read_options())
            .map(|found| found.map(|value| value.to_vec()))
            .map_err(|e| from_rocksdb("reading", &self.path, e))
    }

    /// Walks the parts of `[start, end)` in each column family in turn,
    /// each with a RocksDB iterator bounded to its part.
    fn scan(
        &self,
        start: &[u8],
        end: &[u8],
        direction: Direction,
        visit: &mut Visitor<'_>,
    ) -> Result<()> {
        let mut parts = segments(start, end);
        if direction == Direction::Backward {
            parts.reverse();
        }
        let db = self.cell.borrow_owner();
        for (from, to, family) in parts {
            let mut read = read_options();
            read.set_iterate_lower_bound(from);
            read.set_iterate_upper_bound(to);
            let cf = handle(db, family, &self.path)?;
            let mut iter = self.cell.borrow_dependent().raw_iterator_cf_opt(cf, read);
            match direction {
                Direction::Forward => iter.seek(from),
                Direction::Backward => iter.seek_to_last(),
            }
            // RocksDB keeps to the bounds; checked anyway, as it is cheap.
            while let Some((key, value)) = iter.item().filter(|(key, _)| from <= *key && *key < to)
            {
                if visit(key, value)? == Scan::Stop {
                    return Ok(());
                }
                match direction {
                    Direction::Forward => iter.next(),
                    Direction::Backward => iter.prev(),
                }
            }
            // The iterator also ends on an error (a damaged block, an I/O
            // failure): tell it from the end of the range.
            iter.status()
                .map_err(|e| from_rocksdb("reading", &self.path, e))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
