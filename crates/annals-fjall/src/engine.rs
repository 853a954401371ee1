//! [`FjallEngine`]: annals' [`KvEngine`] over one fjall keyspace.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::sync::{PoisonError, RwLock};

use annals_core::files::{self, Claim};
use annals_core::kv::{KvEngine, KvSnapshot, Scan, Visitor, WriteBatch};
use annals_core::{Capabilities, Direction, Error, Result};
use fjall::{Database, Keyspace, KeyspaceCreateOptions, PersistMode, Readable};

use crate::FjallOptions;

/// The folder, inside the store's, that fjall owns.
const DATA: &str = "fjall";
/// The one keyspace annals keeps its keys in.
const KEYSPACE: &str = "annals";

/// An open fjall database and annals' keyspace in it.
struct Open {
    db: Database,
    keyspace: Keyspace,
}

/// annals' [`KvEngine`] over a fjall database in a folder of its own.
pub struct FjallEngine {
    dir: PathBuf,
    read_only: bool,
    /// `None` once closed.
    open: RwLock<Option<Open>>,
}

/// A consistent view: fjall's snapshot (a sequence number) of the keyspace.
pub struct FjallSnapshot {
    dir: PathBuf,
    snapshot: fjall::Snapshot,
    keyspace: Keyspace,
}

/// Runs a call into fjall, turning its errors and panics (fjall trusts its
/// files) into [`Error::Backend`] naming what was done and the folder.
fn call<T>(what: &str, dir: &Path, f: impl FnOnce() -> fjall::Result<T>) -> Result<T> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(e)) => Err(Error::backend(
            format!("fjall: {what} {}", dir.display()),
            e,
        )),
        Err(panic) => {
            let why = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "a panic".into());
            Err(Error::backend(
                format!("fjall panicked {what} {}", dir.display()),
                why,
            ))
        }
    }
}

impl FjallEngine {
    /// Opens (or, with `options.create`, creates) the store in the folder
    /// `dir`, which must be empty, missing or marked as a fjall store of
    /// annals ([`files::claim_folder`]).
    pub fn open(dir: impl AsRef<Path>, options: &FjallOptions) -> Result<FjallEngine> {
        let dir = dir.as_ref().to_path_buf();
        let claim = Claim {
            backend: "fjall",
            create: options.create,
            read_only: options.read_only,
            mode: options.file_mode,
        };
        files::claim_folder(&dir, claim, |_| Ok(false))?;
        let data = dir.join(DATA);
        if !data.is_dir() && (options.read_only || !options.create) {
            return Err(files::io_error(
                "opening",
                &data,
                std::io::ErrorKind::NotFound.into(),
            ));
        }
        let mut builder = Database::builder(&data);
        if let Some(bytes) = options.cache_size {
            builder = builder.cache_size(bytes);
        }
        let db = call("opening", &dir, || builder.open())?;
        let keyspace = call("opening", &dir, || {
            db.keyspace(KEYSPACE, KeyspaceCreateOptions::default)
        })?;
        Ok(FjallEngine {
            dir,
            read_only: options.read_only,
            open: RwLock::new(Some(Open { db, keyspace })),
        })
    }

    /// Runs `f` on the open database, or answers [`Error::Closed`].
    fn with<T>(&self, f: impl FnOnce(&Open) -> Result<T>) -> Result<T> {
        let open = self.open.read().unwrap_or_else(PoisonError::into_inner);
        f(open.as_ref().ok_or(Error::Closed)?)
    }
}

/// The bytes the files under `path` take on disk (their blocks, so a
/// sparse file counts what it holds, not its length).
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
        let mut entries = call("reading", &self.dir, || {
            Ok(self.snapshot.range(&self.keyspace, start..end))
        })?;
        loop {
            let next = call("reading", &self.dir, || {
                let guard = match direction {
                    Direction::Forward => entries.next(),
                    Direction::Backward => entries.next_back(),
                };
                guard.map(|g| g.into_inner()).transpose()
            })?;
            let Some((key, value)) = next else {
                return Ok(());
            };
            if visit(&key, &value)? == Scan::Stop {
                return Ok(());
            }
        }
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
            })
        })
    }

    fn commit(&self, batch: WriteBatch, sync: bool) -> Result<()> {
        if self.read_only {
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
        // Flushing the memtable lets fjall drop the journals it was
        // replayed from; the major compaction drops deleted entries.
        self.with(|open| {
            call("compacting", &self.dir, || {
                open.keyspace.rotate_memtable_and_wait()?;
                open.keyspace.major_compact()
            })
        })
    }

    fn disk_bytes(&self) -> Result<u64> {
        // fjall's own figure counts the journal's preallocated (sparse)
        // 64 MiB; the blocks the files use are what the disk holds.
        self.with(|_| allocated_bytes(&self.dir))
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities::ALL
    }

    fn read_only(&self) -> bool {
        self.read_only
    }

    fn close(&self) -> Result<()> {
        let taken = self
            .open
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        match taken {
            Some(open) if !self.read_only => call("closing", &self.dir, || {
                open.db.persist(PersistMode::SyncAll)
            }),
            _ => Ok(()),
        }
    }
}
