//! [`RedbEngine`]: the [`KvEngine`] over one redb table.

use std::fs;
use std::path::Path;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use annals_core::files::{self, ClaimOptions};
use annals_core::kv::support::{
    LiveSnapshots, Ticket, drop_quietly, lock, read_lock, scan_iter, timed_out, write_lock,
};
use annals_core::kv::{KvEngine, KvSnapshot, Visitor, WriteBatch};
use annals_core::{Capabilities, Direction, Error, Result};
use redb::backends::FileBackend;
use redb::{
    AccessGuard, CompactionError, Database, DatabaseError, ReadOnlyDatabase, ReadOnlyTable,
    ReadableDatabase, TableDefinition, TableError, TableHandle,
};

use crate::error::{call, from_redb, no_panic};
use crate::options::RedbOptions;

/// The name of the one table that holds every key of the store.
const TABLE_NAME: &str = "annals";

/// The one table that holds every key of the store (annals' key layout
/// puts a prefix byte on each key).
const TABLE: TableDefinition<&[u8], &[u8]> = TableDefinition::new(TABLE_NAME);

/// The open database: for reading and writing, or read-only.
enum Db {
    Write(Database),
    Read(ReadOnlyDatabase),
}

impl std::fmt::Debug for Db {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Db::Write(_) => "Db::Write",
            Db::Read(_) => "Db::Read",
        })
    }
}

/// How long `compact` holds the database, waiting for live snapshots to
/// end, before it lets them (and commits) go on for a while and tries again.
const COMPACT_WAIT: Duration = Duration::from_millis(50);

/// How long `compact` keeps trying to find a moment with no live snapshot
/// before it gives up with an error.
const COMPACT_PATIENCE: Duration = Duration::from_secs(60);

/// A [`KvEngine`] over a redb database file: every key of the store in one
/// table of byte keys and byte values.
///
/// - [`commit`](KvEngine::commit) is one redb write transaction. With
///   `sync` it is committed with redb's `Durability::Immediate`: it returns
///   once the transaction is on stable storage. Without, it is committed
///   with redb's `Durability::None`, a *non-durable* commit: it is visible
///   to every later snapshot at once, but redb writes nothing durable for
///   it. redb's design (`docs/design.md`, "Non-durable commits") keeps the
///   last durable commit as the file's primary root and only points readers
///   at the newer one in memory; after a crash the database "will return to
///   either the last non-durable commit or the last full commit". So a crash
///   loses every non-durable commit made since the last durable one — a
///   suffix of whole transactions, never part of one, never anything before
///   a durable commit. The next durable commit (or `close`, or `compact`)
///   makes every earlier non-durable commit durable with it.
///   [`RedbOptions::sync_interval`] makes a commit durable at least that
///   often.
/// - [`snapshot`](KvEngine::snapshot) is a redb read transaction with the
///   table opened once.
/// - [`compact`](KvEngine::compact) runs redb's `Database::compact`, which
///   needs the database to itself: it waits until the live snapshots have
///   ended and holds back new snapshots and commits meanwhile (see there).
/// - Every call into redb runs under `catch_unwind`: redb trusts the file it
///   opened, and where damaged bytes make it panic the caller gets an
///   [`Error::Backend`] instead.
///
/// ```
/// use annals_core::kv::{KvEngine, KvSnapshot, WriteBatch};
/// use annals_redb::{RedbEngine, RedbOptions};
///
/// let dir = tempfile::tempdir()?;
/// let engine = RedbEngine::open(dir.path().join("store.redb"), &RedbOptions::default())?;
/// let mut batch = WriteBatch::new();
/// batch.put(b"k".to_vec(), b"v".to_vec());
/// engine.commit(batch, true)?;
/// assert_eq!(engine.snapshot()?.get(b"k")?, Some(b"v".to_vec()));
/// engine.close()?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct RedbEngine {
    /// The database file, for error messages and `disk_bytes`.
    path: Arc<Path>,
    /// The database; `None` once closed. Commits and the creation of
    /// snapshots hold it shared, `compact` and `close` exclusively.
    db: RwLock<Option<Db>>,
    /// The snapshots alive now (each holds a redb read transaction, which
    /// outlives the lock guard it was created under).
    live: Arc<LiveSnapshots>,
    /// See [`RedbOptions::sync_interval`].
    sync_interval: Option<Duration>,
    /// When the last durable commit was made.
    last_durable: Mutex<Instant>,
    /// Opened with `read_only`: nothing is ever written.
    read_only: bool,
}

/// Opens an existing file, after checking read-only that it is an annals
/// store (see [`RedbEngine::open`]).
///
/// A file the read-only look finds damaged is opened for writing all the
/// same (unless `read_only`), so that redb's integrity check reports the
/// damage as it always did ([`Error::Corruption`]).
fn open_existing(builder: &redb::Builder, path: &Path, read_only: bool) -> Result<Db> {
    let open_for_writing = || call("opening", path, || builder.open(path));
    let looked = match no_panic("opening", path, || builder.open_read_only(path)) {
        Ok(Ok(db)) => checked(db, path),
        // Not closed cleanly: redb must recover it, which writes.
        Ok(Err(DatabaseError::RepairAborted)) if read_only => {
            return Err(Error::backend(
                format!(
                    "opening {} read-only: it was not closed cleanly (a crash?), and redb \
                     recovers such a file only when it opens it for writing; open it once \
                     without read_only",
                    path.display()
                ),
                DatabaseError::RepairAborted,
            ));
        }
        Ok(Err(DatabaseError::RepairAborted)) => {
            return checked(open_for_writing()?, path).map(Db::Write);
        }
        Ok(Err(e @ DatabaseError::Storage(redb::StorageError::Corrupted(_)))) => {
            Err(from_redb("opening", path, e))
        }
        Ok(Err(e)) => return Err(from_redb("opening", path, e)),
        // redb panicked on the file.
        Err(e) => Err(e),
    };
    match looked {
        Ok(db) if read_only => Ok(Db::Read(db)),
        Ok(db) => {
            call("opening", path, || db.close())?;
            open_for_writing().map(Db::Write)
        }
        // Damaged: opened for writing all the same (see above).
        Err(e) if read_only || e.is_invalid_input() => Err(e),
        Err(_) => open_for_writing().map(Db::Write),
    }
}

/// `db`, if its tables are an annals store's: annals' table, or no table
/// at all; otherwise `db` is closed, and the error is
/// [`Error::InvalidInput`] naming the file and its tables.
fn checked<D: ReadableDatabase>(db: D, path: &Path) -> Result<D> {
    let names = call("opening", path, || -> Result<Vec<String>, redb::Error> {
        let txn = db.begin_read()?;
        let mut names: Vec<String> = txn.list_tables()?.map(|t| t.name().to_string()).collect();
        names.extend(
            txn.list_multimap_tables()?
                .map(|t| redb::MultimapTableHandle::name(&t).to_string()),
        );
        Ok(names)
    });
    let names = match names {
        Ok(names) if names.is_empty() || names.iter().any(|name| name == TABLE_NAME) => {
            return Ok(db);
        }
        other => {
            drop_quietly(db);
            other?
        }
    };
    let shown: Vec<String> = names.iter().take(10).map(|n| format!("{n:?}")).collect();
    let more = if names.len() > 10 { ", …" } else { "" };
    Err(files::not_a_store(format!(
        "{} is a redb database of another program, not an annals store (it has no {TABLE_NAME:?} \
         table, but {}{more}); annals leaves it alone",
        path.display(),
        shown.join(", "),
    )))
}

impl RedbEngine {
    /// Opens the redb database at `path` — creating it, and its parent
    /// folders, if it is missing and `options.create` is set (with
    /// `options.file_mode`) — and checks that it can hold an annals store.
    ///
    /// Whose files: an existing file is opened only if it is an annals
    /// store — a redb database holding annals' table, or no table at all
    /// (what an earlier release left when nothing was appended) — and it
    /// is checked read-only first, so nothing is written to a file that is
    /// not one: an empty file, a file that is not a redb database, or a
    /// redb database of another program ([`Error::InvalidInput`] naming
    /// it). (A redb database that needs recovery after a crash cannot be
    /// read without being recovered: redb recovers it when it is opened
    /// for writing, before annals can look at its tables.)
    ///
    /// Other errors name the path: a file that is already open (by another
    /// store of this process, or another process) is [`Error::Backend`]; a
    /// damaged file (found by the integrity check, see
    /// [`RedbOptions::check_integrity`]) is [`Error::Corruption`]. With
    /// [`RedbOptions::read_only`] the file is opened read-only and never
    /// written.
    ///
    /// Most callers want [`crate::open`], which also opens the store.
    ///
    /// ```
    /// use annals_redb::{RedbEngine, RedbOptions};
    ///
    /// let dir = tempfile::tempdir()?;
    /// let path = dir.path().join("nested/store.redb");
    /// let engine = RedbEngine::open(&path, &RedbOptions::default())?;
    /// assert!(path.exists());
    /// // The file is locked while it is open.
    /// assert!(RedbEngine::open(&path, &RedbOptions::default()).is_err());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn open(path: impl AsRef<Path>, options: &RedbOptions) -> Result<RedbEngine> {
        let path: Arc<Path> = Arc::from(path.as_ref());
        let mut builder = Database::builder();
        if let Some(bytes) = options.cache_size {
            builder.set_cache_size(bytes);
        }
        builder.set_check_integrity_on_open(options.check_integrity);
        let db = match files::claim_file(&path, options.claim())? {
            // A new file, empty: the store is created in it.
            Some(file) => Db::Write(call("creating", &path, || {
                builder.create_with_backend(FileBackend::new(file)?)
            })?),
            None => open_existing(&builder, &path, options.read_only)?,
        };
        let engine = RedbEngine {
            path,
            db: RwLock::new(Some(db)),
            live: Arc::default(),
            sync_interval: options.sync_interval,
            last_durable: Mutex::new(Instant::now()),
            read_only: options.read_only,
        };
        // Opens the table once: a file whose "annals" table has other key or
        // value types is refused here, not at the first read.
        drop(engine.snapshot()?);
        Ok(engine)
    }

    /// The database file's path.
    ///
    /// ```
    /// use annals_redb::{RedbEngine, RedbOptions};
    ///
    /// let dir = tempfile::tempdir()?;
    /// let engine = RedbEngine::open(dir.path().join("store.redb"), &RedbOptions::default())?;
    /// assert_eq!(engine.path(), dir.path().join("store.redb"));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Commits `batch` in one redb write transaction, durable or not (see
/// [`RedbEngine`]).
fn write(db: &Database, batch: &WriteBatch, durable: bool) -> Result<(), redb::Error> {
    let mut txn = db.begin_write()?;
    txn.set_durability(if durable {
        redb::Durability::Immediate
    } else {
        redb::Durability::None
    })?;
    {
        let mut table = txn.open_table(TABLE)?;
        for (key, value) in &batch.ops {
            // The previous values redb answers are not needed.
            match value {
                Some(value) => drop(table.insert(key.as_slice(), value.as_slice())?),
                None => drop(table.remove(key.as_slice())?),
            }
        }
    }
    // An error above drops `txn`, which aborts it.
    Ok(txn.commit()?)
}

impl KvEngine for RedbEngine {
    type Snapshot = RedbSnapshot;

    fn snapshot(&self) -> Result<RedbSnapshot> {
        let guard = read_lock(&self.db);
        let db = guard.as_ref().ok_or(Error::Closed)?;
        // Counted while the lock is held: `compact`, which holds it
        // exclusively, sees every snapshot that exists.
        let ticket = self.live.enter();
        // The table holds the read transaction: redb keeps its pages, and
        // `compact` waits, until the table is dropped.
        let table = call("reading", &self.path, || {
            let txn = match db {
                Db::Write(db) => db.begin_read()?,
                Db::Read(db) => db.begin_read()?,
            };
            match txn.open_table(TABLE) {
                Ok(table) => Ok(Some(table)),
                Err(TableError::TableDoesNotExist(_)) => Ok(None),
                Err(e) => Err(redb::Error::from(e)),
            }
        })?;
        drop(guard);
        Ok(RedbSnapshot {
            table,
            path: Arc::clone(&self.path),
            _ticket: ticket,
        })
    }

    fn commit(&self, batch: WriteBatch, sync: bool) -> Result<()> {
        let guard = read_lock(&self.db);
        let Db::Write(db) = guard.as_ref().ok_or(Error::Closed)? else {
            return Err(files::read_only_error(&self.path));
        };
        if batch.is_empty() && !sync {
            return Ok(());
        }
        let due = |interval| lock(&self.last_durable).elapsed() >= interval;
        let durable = sync || self.sync_interval.is_some_and(due);
        call("committing to", &self.path, || write(db, &batch, durable))?;
        if durable {
            *lock(&self.last_durable) = Instant::now();
        }
        Ok(())
    }

    /// Runs redb's `Database::compact` (which loops by itself until it
    /// makes no more progress, and leaves every commit durable).
    ///
    /// redb refuses to compact while a read transaction is alive, and a
    /// snapshot is one. So this takes the database exclusively — new
    /// snapshots and commits wait — and waits for the live snapshots to
    /// end. If some are still alive after a short while (a thread may hold
    /// one and be waiting for another), it lets everything go on, waits for
    /// a moment with no snapshot, and tries again, for up to a minute; only
    /// then does it give up with [`Error::Backend`]. Nothing committed is
    /// ever lost, and commits only wait.
    fn compact(&self) -> Result<()> {
        let deadline = Instant::now() + COMPACT_PATIENCE;
        loop {
            let mut guard = write_lock(&self.db);
            let Db::Write(db) = guard.as_mut().ok_or(Error::Closed)? else {
                return Err(files::read_only_error(&self.path));
            };
            if self.live.wait_none(COMPACT_WAIT) == 0 {
                match no_panic("compacting", &self.path, || db.compact())? {
                    Ok(_) => {
                        *lock(&self.last_durable) = Instant::now();
                        return Ok(());
                    }
                    // A read transaction outlived its snapshot's count; try
                    // again.
                    Err(CompactionError::TransactionInProgress) => {}
                    Err(e) => return Err(from_redb("compacting", &self.path, e)),
                }
            }
            drop(guard);
            if Instant::now() >= deadline {
                let why = format!(
                    "snapshots stayed alive for {} s: redb compacts only when no read \
                     transaction is alive",
                    COMPACT_PATIENCE.as_secs()
                );
                return Err(timed_out("compacting", &self.path, why));
            }
            // Without the lock: snapshots waiting for it go on, and end.
            self.live.wait_none(COMPACT_WAIT * 2);
        }
    }

    fn disk_bytes(&self) -> Result<u64> {
        read_lock(&self.db).as_ref().ok_or(Error::Closed)?;
        fs::metadata(&self.path)
            .map(|m| m.len())
            .map_err(|e| files::io_error("reading the size of", &self.path, e))
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities::ALL
    }

    fn read_only(&self) -> bool {
        self.read_only
    }

    /// Closes the database (making pending non-durable commits durable) and
    /// releases the file: the same path can be opened again as soon as this
    /// returns. Later calls of every other method answer
    /// [`Error::Closed`], also on snapshots still alive; closing again does
    /// nothing.
    fn close(&self) -> Result<()> {
        let taken = write_lock(&self.db).take();
        call("closing", &self.path, || match taken {
            Some(Db::Write(db)) => db.close(),
            Some(Db::Read(db)) => db.close(),
            None => Ok(()),
        })
    }
}

impl Drop for RedbEngine {
    fn drop(&mut self) {
        // Dropping closes the database like `close`, ignoring errors; a
        // panic of redb's (on a damaged file) must not escape a drop either.
        drop_quietly(write_lock(&self.db).take());
    }
}

/// A consistent read view of a [`RedbEngine`]: one redb read transaction,
/// with the table opened once.
///
/// While it is alive the engine cannot compact (redb keeps the pages it
/// reads), so drop it once the read is done.
///
/// ```
/// use annals_core::Direction;
/// use annals_core::kv::{KvEngine, KvSnapshot, Scan, WriteBatch};
/// use annals_redb::{RedbEngine, RedbOptions};
///
/// let dir = tempfile::tempdir()?;
/// let engine = RedbEngine::open(dir.path().join("store.redb"), &RedbOptions::default())?;
/// let mut batch = WriteBatch::new();
/// for k in [b"a", b"b", b"c"] {
///     batch.put(k.to_vec(), b"v".to_vec());
/// }
/// engine.commit(batch, true)?;
///
/// let snapshot = engine.snapshot()?;
/// engine.commit(WriteBatch { ops: vec![(b"a".to_vec(), None)] }, true)?;
/// // The snapshot still sees "a"; it scans [start, end) either way.
/// let mut keys = Vec::new();
/// snapshot.scan(b"a", b"c", Direction::Backward, &mut |key, _value| {
///     keys.push(key.to_vec());
///     Ok(Scan::Continue)
/// })?;
/// assert_eq!(keys, [b"b".to_vec(), b"a".to_vec()]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct RedbSnapshot {
    /// The table as the read transaction saw it, which it keeps alive
    /// (redb's tables hold their transaction); `None` when the table does
    /// not exist yet (nothing was committed): the snapshot is empty.
    table: Option<ReadOnlyTable<&'static [u8], &'static [u8]>>,
    path: Arc<Path>,
    /// Dropped after the table (and so the read transaction).
    _ticket: Ticket,
}

impl std::fmt::Debug for RedbSnapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedbSnapshot")
            .field("path", &self.path)
            .field("empty", &self.table.is_none())
            .finish_non_exhaustive()
    }
}

impl Drop for RedbSnapshot {
    fn drop(&mut self) {
        drop_quietly(self.table.take());
        // `_ticket` is dropped after this: `compact` sees the snapshot end
        // only once its read transaction has.
    }
}

impl KvSnapshot for RedbSnapshot {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        let Some(table) = &self.table else {
            return Ok(None);
        };
        call("reading", &self.path, || {
            table.get(key).map(|v| v.map(|v| v.value().to_vec()))
        })
    }

    fn scan(
        &self,
        start: &[u8],
        end: &[u8],
        direction: Direction,
        visit: &mut Visitor<'_>,
    ) -> Result<()> {
        // Only for `start < end`: redb panics on a range past its end.
        let Some(table) = self.table.as_ref().filter(|_| start < end) else {
            return Ok(());
        };
        let path = &*self.path;
        let range = call("reading", path, || table.range::<&[u8]>(start..end))?
            .map(|entry| entry.map(|(key, value)| (Bytes(key), Bytes(value))));
        // Only redb's steps and reads of its pages are guarded: the
        // visitor's panics are its own.
        let guard = |step: &mut dyn FnMut()| no_panic("reading", path, step);
        let map_err = |e| from_redb("reading", path, e);
        scan_iter(range, direction, &guard, map_err, visit)
    }
}

/// The bytes of a key or value in redb's pages.
struct Bytes<'a>(AccessGuard<'a, &'static [u8]>);

impl AsRef<[u8]> for Bytes<'_> {
    fn as_ref(&self) -> &[u8] {
        self.0.value()
    }
}

#[cfg(test)]
mod tests;
