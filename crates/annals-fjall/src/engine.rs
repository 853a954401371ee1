//! [`FjallEngine`]: annals' [`KvEngine`] over one fjall keyspace.
//!
//! ```text
//! <dir>/fjall        generation 0: fjall's folder, where every store starts
//! <dir>/fjall-N      generation N >= 1, made by `compact`; each generation
//!                    folder left behind carries annals' marker "fjall generation N"
//! <dir>/CURRENT      "fjall-N\n": the generation in use (absent: 0)
//! ```
//!
//! fjall frees its journal only when it rotates it (once 64 MiB full), so
//! `compact` copies the live keys into a fresh database `fjall-N+1`
//! (marked, its tables and journal synced), marks the old generation,
//! switches `CURRENT` to the new one and deletes the old one once no
//! snapshot reads it (all through [`files::Generations`]). A crash before
//! the switch leaves the old generation in use; after it, the new one is
//! complete. Opening deletes every marked generation that `CURRENT` does
//! not name.

use std::path::{Path, PathBuf};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use annals_core::files::{self, ClaimOptions, Generations};
use annals_core::kv::support::{LiveSnapshots, Ticket, no_panic, scan_iter};
use annals_core::kv::{KvEngine, KvSnapshot, Visitor, WriteBatch};
use annals_core::{Capabilities, Direction, Error, Result};
use fjall::{Database, Keyspace, KeyspaceCreateOptions, PersistMode, Readable};

use crate::FjallOptions;

/// The folders, inside the store's, that fjall owns: `fjall` (generation
/// 0), then `fjall-N`.
const GENERATIONS: Generations = Generations {
    backend: "fjall",
    prefix: "fjall-",
    first: Some("fjall"),
};
/// The one keyspace annals keeps its keys in.
const KEYSPACE: &str = "annals";
/// How long `close` waits for the reads in flight before it lets go of
/// the database (a snapshot keeps fjall's files open).
const CLOSE_WAIT: Duration = Duration::from_secs(60);

/// An open fjall database and annals' keyspace in it.
struct Open {
    db: Database,
    keyspace: Keyspace,
    generation: u64,
}

/// annals' [`KvEngine`] over a fjall database in a folder of its own.
pub struct FjallEngine {
    dir: PathBuf,
    options: FjallOptions,
    /// `None` once closed.
    open: RwLock<Option<Open>>,
    live: Arc<LiveSnapshots>,
}

/// A consistent view: fjall's snapshot (a sequence number) of the keyspace.
pub struct FjallSnapshot {
    dir: PathBuf,
    snapshot: fjall::Snapshot,
    keyspace: Keyspace,
    /// Dropped after the fields above (declaration order).
    _ticket: Ticket,
}

/// Runs a call into fjall: its errors and its panics (fjall trusts its
/// files) become [`Error::Backend`] naming what was done and the folder.
fn call<T>(what: &str, dir: &Path, f: impl FnOnce() -> fjall::Result<T>) -> Result<T> {
    no_panic("fjall", what, dir, f)?.map_err(|e| from_fjall(what, dir, e))
}

fn from_fjall(what: &str, dir: &Path, error: fjall::Error) -> Error {
    Error::backend(format!("{what} {}", dir.display()), error)
}

/// The bytes the files under `path` take on disk: their blocks, so that a
/// sparse file (fjall preallocates its journal) counts what it holds.
fn allocated_bytes(path: &Path) -> Result<u64> {
    let metadata =
        std::fs::symlink_metadata(path).map_err(|e| files::io_error("measuring", path, e))?;
    if !metadata.is_dir() {
        #[cfg(unix)]
        return Ok(std::os::unix::fs::MetadataExt::blocks(&metadata).saturating_mul(512));
        #[cfg(not(unix))]
        return Ok(metadata.len());
    }
    let mut total = 0u64;
    for entry in std::fs::read_dir(path).map_err(|e| files::io_error("listing", path, e))? {
        let entry = entry.map_err(|e| files::io_error("listing", path, e))?;
        total = total.saturating_add(allocated_bytes(&entry.path())?);
    }
    Ok(total)
}

/// Opens (creating it if missing) fjall's database in `data`.
fn open_data(dir: &Path, data: &Path, options: &FjallOptions, generation: u64) -> Result<Open> {
    let mut builder = Database::builder(data);
    if let Some(bytes) = options.cache_size {
        builder = builder.cache_size(bytes);
    }
    let db = call("opening", dir, || builder.open())?;
    let keyspace = call("opening", dir, || {
        db.keyspace(KEYSPACE, KeyspaceCreateOptions::default)
    })?;
    Ok(Open {
        db,
        keyspace,
        generation,
    })
}

impl FjallEngine {
    /// Opens (or, with `options.create`, creates) the store in the folder
    /// `dir`, which must be missing, empty or marked as a fjall store of
    /// annals ([`files::claim_folder`]): anything else is refused with
    /// nothing written.
    pub fn open(dir: impl AsRef<Path>, options: &FjallOptions) -> Result<FjallEngine> {
        let dir = dir.as_ref().to_path_buf();
        files::claim_folder(&dir, options.claim(), |_| Ok(false))?;
        let generation = GENERATIONS.read_current(&dir)?.unwrap_or(0);
        let data = GENERATIONS.folder(&dir, generation);
        if !data.is_dir() && (generation > 0 || options.read_only || !options.create) {
            let missing = std::io::ErrorKind::NotFound.into();
            return Err(files::io_error("opening", &data, missing));
        }
        if !options.read_only {
            GENERATIONS.remove_others(&dir, Some(generation), &[])?;
        }
        let open = open_data(&dir, &data, options, generation)?;
        Ok(FjallEngine {
            dir,
            options: *options,
            open: RwLock::new(Some(open)),
            live: Arc::default(),
        })
    }

    /// Runs `f` on the open database, or answers [`Error::Closed`].
    fn with<T>(&self, f: impl FnOnce(&Open) -> Result<T>) -> Result<T> {
        let open = self.open.read().unwrap_or_else(PoisonError::into_inner);
        f(open.as_ref().ok_or(Error::Closed)?)
    }
}

impl KvSnapshot for FjallSnapshot {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        let value = call("reading", &self.dir, || {
            self.snapshot.get(&self.keyspace, key)
        })?;
        Ok(value.map(|v| v.to_vec()))
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
        let range = no_panic("fjall", "reading", &self.dir, || {
            self.snapshot.range(&self.keyspace, start..end)
        })?;
        let guard = |step: &mut dyn FnMut()| no_panic("fjall", "reading", &self.dir, step);
        let map_err = |e| from_fjall("reading", &self.dir, e);
        let entries = range.map(|entry| entry.into_inner());
        scan_iter(entries, direction, &guard, map_err, visit)
    }
}

impl KvEngine for FjallEngine {
    type Snapshot = FjallSnapshot;

    fn snapshot(&self) -> Result<FjallSnapshot> {
        self.with(|open| {
            Ok(FjallSnapshot {
                dir: self.dir.clone(),
                snapshot: open.db.snapshot(),
                keyspace: open.keyspace.clone(),
                _ticket: self.live.enter(),
            })
        })
    }

    fn commit(&self, batch: WriteBatch, sync: bool) -> Result<()> {
        if self.options.read_only {
            return Err(files::read_only_error(&self.dir));
        }
        self.with(|open| {
            // Durable: the journal is fsynced before commit returns. Else
            // handed to the OS at once (a killed process loses nothing;
            // fjall's batches would wait in its buffer), synced by a later
            // durable commit, or on close.
            let mode = if sync {
                PersistMode::SyncAll
            } else {
                PersistMode::Buffer
            };
            let mut writes = open.db.batch().durability(Some(mode));
            for (key, value) in batch.ops {
                match value {
                    Some(value) => writes.insert(&open.keyspace, key, value),
                    None => writes.remove(&open.keyspace, key),
                }
            }
            call("committing to", &self.dir, || writes.commit())
        })
    }

    fn compact(&self) -> Result<()> {
        // The store refuses `compact` when read-only before it gets here.
        let (dir, mode) = (&self.dir, self.options.file_mode);
        let mut guard = self.open.write().unwrap_or_else(PoisonError::into_inner);
        let open = guard.as_mut().ok_or(Error::Closed)?;
        let (old, next) = (open.generation, GENERATIONS.after(dir, open.generation)?);
        // Older generations go unless a read may still use them; a partial
        // copy of an earlier failed `compact` is replaced, and a stranger's
        // folder in the way stays (`create` refuses it).
        if self.live.wait_none(Duration::ZERO) == 0 {
            GENERATIONS.remove_others(dir, Some(old), &[])?;
        }
        let data = GENERATIONS.create(dir, next, mode)?;
        let fresh = open_data(dir, &data, &self.options, next)?;
        call("compacting", dir, || {
            let mut ingestion = fresh.keyspace.start_ingestion()?;
            for entry in open.keyspace.iter() {
                let (key, value) = entry.into_inner()?;
                ingestion.write(key, value)?;
            }
            ingestion.finish()?;
            fresh.db.persist(PersistMode::SyncAll)
        })?;
        GENERATIONS.mark(dir, old, mode)?;
        GENERATIONS.switch(dir, old, next, mode)?;
        drop(std::mem::replace(open, fresh));
        drop(guard);
        // Snapshots of the old generation read its files until dropped;
        // else the next open deletes it.
        match self.live.wait_none(Duration::ZERO) {
            0 => GENERATIONS.remove_others(dir, Some(next), &[]),
            _ => Ok(()),
        }
    }

    fn disk_bytes(&self) -> Result<u64> {
        // fjall's own figure counts its journal's preallocated 64 MiB.
        self.with(|_| allocated_bytes(&self.dir))
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities::ALL
    }

    fn read_only(&self) -> bool {
        self.options.read_only
    }

    fn close(&self) -> Result<()> {
        let taken = self
            .open
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        let Some(open) = taken else {
            return Ok(());
        };
        let synced = match self.options.read_only {
            true => Ok(()),
            false => call("closing", &self.dir, || {
                open.db.persist(PersistMode::SyncAll)
            }),
        };
        drop(open);
        // The files are released once the last snapshot is gone.
        self.live.wait_none(CLOSE_WAIT);
        synced
    }
}
