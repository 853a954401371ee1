//! # annals-rocksdb
//!
//! The RocksDB backend of annals: an append-only event log in a
//! [RocksDB](https://rocksdb.org) database, an LSM tree built for heavy
//! write loads and data sets far larger than memory. RocksDB is C++; this
//! crate builds it from source (the `rocksdb` crate's bundled copy), which
//! needs `clang` and `libclang-dev` and takes several minutes the first
//! time.
//!
//! [`RocksDbEngine`] implements annals' [`KvEngine`](annals_core::kv::KvEngine);
//! the generic store of `annals-core` does the rest (key layout, record
//! codec with a crc32c per record, the single writer thread, reads on
//! tokio's blocking pool).
//!
//! ## Layout on disk
//!
//! One folder, one RocksDB database with two column families: `log` holds
//! the event records (keys by position), `default` everything else (store
//! and stream metadata, the stream, type and tag indexes, the aux space).
//! Log keys only ever grow, so in a family of their own RocksDB's
//! compaction moves the log's files down the levels without rewriting
//! them. Each append is one RocksDB `WriteBatch` across both families,
//! atomic through the write-ahead log, and every read runs on one RocksDB
//! snapshot, so a page never mixes two commits.
//!
//! ## Whose files
//!
//! The store writes only into a folder it created, or found empty, and
//! marked first with an `ANNALS-STORE` file. A folder that is not empty and
//! not marked — another program's files, another application's RocksDB —
//! is refused with [`Error::InvalidInput`](annals_core::Error::InvalidInput)
//! before RocksDB sees it, so nothing there changes. A store of an earlier
//! release (which wrote no marker) is recognised by its own files — annals'
//! close mark `ANNALS-CLOSED`, or a RocksDB database whose column families
//! are exactly `default` and `log` (read from its MANIFEST, which writes
//! nothing) — and marked when it is first opened for writing. The folders
//! and files the store creates are owner-only (`0700`/`0600`) unless
//! `file_mode` says otherwise; RocksDB's own files get the process umask,
//! inside that folder.
//!
//! ## Options
//!
//! [`RocksDbOptions`], also as URL parameters
//! (`rocksdb:///path/to/dir?durability=relaxed&compression=zstd`):
//!
//! | parameter | default | meaning |
//! |---|---|---|
//! | `durability` | `immediate` | `immediate`: each commit is synced to the write-ahead log before the append returns; `relaxed`: written to it without sync |
//! | `max_event_bytes`, `max_append_events`, `max_append_bytes`, `max_read_count` | the SPEC's | limits |
//! | `block_cache_bytes` | `67108864` (64 MiB) | LRU block cache shared by both column families; `0` disables it |
//! | `compression` | `lz4` | `none`, `lz4` or `zstd`, for the table files of both families |
//! | `create_if_missing` | `true` | create the folder and the database if missing |
//! | `write_buffer_bytes` | `67108864` (64 MiB) | memtable size per column family (at least 64 KiB) |
//! | `max_background_jobs` | `2` | threads for flushes and compactions (1 to 256) |
//! | `read_only` | `false` | open an existing store in RocksDB's read-only mode: no file changes, writes are `Unsupported` |
//! | `file_mode` | `0600` | permissions of the folders (`0700`) and files the store creates |
//!
//! An unknown parameter, or a value out of range, is
//! [`Error::InvalidInput`](annals_core::Error::InvalidInput) naming it.
//!
//! ## Durability
//!
//! The write-ahead log is always on. With `Durability::Immediate` each
//! commit is written with `sync = true`: it returns after the log record is
//! on stable storage. With `Durability::Relaxed` it is written without
//! sync: RocksDB still hands it to the operating system before returning,
//! so a crash of the process loses nothing, and a crash of the machine
//! loses at most the latest commits — a suffix of whole commits. `close`
//! syncs the log and flushes the memtables to table files.
//!
//! After a crash RocksDB replays the log, in a mode that follows the
//! durability the store is opened with:
//!
//! - `Immediate`: `TolerateCorruptedTailRecords`. Every acknowledged
//!   commit was synced, so only the record in flight can be cut off; it is
//!   dropped. Any other damage to the log — a checksum that fails anywhere,
//!   even in the last record — is `Error::Corruption`: an acknowledged
//!   commit is never lost silently.
//! - `Relaxed`: `PointInTime`. The replay stops at the first incomplete or
//!   damaged record: the store opens as of the commit before it. That is
//!   what a machine crash with unsynced commits needs (D5), but damage in
//!   the middle of the log is then taken for a lost tail. After a machine
//!   crash of a store written with `Relaxed`, open it with `Relaxed`.
//!
//! ## Damaged files
//!
//! annals checks a crc32c on every record it reads, and RocksDB checks its
//! own: `paranoid_checks` is on, and every read verifies block checksums.
//! Damage RocksDB finds — in a table file, the MANIFEST, CURRENT, the
//! write-ahead log (see above) — is
//! [`Error::Corruption`](annals_core::Error::Corruption) naming the folder
//! (other failures are [`Error::Backend`](annals_core::Error::Backend)),
//! on open or on the read that meets it.
//!
//! RocksDB reads its MANIFEST like a log too, and takes a last record that
//! looks cut off for an unfinished write: damaged bytes there can make it
//! open an older version of the database (even an empty one) and delete
//! the table files that version does not name, without any error. So
//! `close` records RocksDB's sequence number in a file of annals' own,
//! `ANNALS-CLOSED`, and `open` first opens the database read-only (which
//! deletes nothing) and refuses with `Error::Corruption` if it went back
//! from there. This protects everything up to the last clean close; a
//! store that was never closed cleanly since its MANIFEST last changed
//! has no such guard.
//!
//! What neither checks: RocksDB's OPTIONS files (not read to open) and its
//! diagnostic `LOG`; bytes damaged there change nothing.
#![forbid(unsafe_code)]

mod engine;
mod error;
mod mark;
mod options;

pub use engine::{LOG_FAMILY, MAIN_FAMILY, RocksDbEngine, RocksDbSnapshot};
pub use options::{Compression, MAX_BACKGROUND_JOBS, MIN_WRITE_BUFFER_BYTES, RocksDbOptions};

use std::path::Path;

use annals_core::Result;
use annals_core::kv::KvStore;

/// Opens (creating it if missing, unless `options.create_if_missing` is
/// `false`) the RocksDB store in the folder `path`.
///
/// Blocks on I/O (RocksDB replays its write-ahead log when it opens):
/// inside an async runtime, call it from `spawn_blocking` when that
/// matters.
///
/// ```
/// use annals_core::{Direction, ExpectedVersion, LogBackend, NewEvent, Position, StreamId};
/// use annals_rocksdb::RocksDbOptions;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let dir = tempfile::tempdir()?;
/// let path = dir.path().join("events");
/// let store = annals_rocksdb::open(&path, RocksDbOptions::default())?;
/// let cart = StreamId::new("cart-1")?;
/// store
///     .append(&cart, ExpectedVersion::NoStream, vec![NewEvent::builder("CartOpened").build()])
///     .await?;
/// store.close().await?;
///
/// // Everything is there after reopening.
/// let store = annals_rocksdb::open(&path, RocksDbOptions::default())?;
/// let page = store.read_all(Position(1), 10, Direction::Forward, None).await?;
/// assert_eq!(page.events.len(), 1);
/// # Ok(())
/// # }
/// ```
pub fn open(path: impl AsRef<Path>, options: RocksDbOptions) -> Result<KvStore<RocksDbEngine>> {
    let engine = RocksDbEngine::open(path, &options)?;
    KvStore::open(engine, options.config)
}

/// The driver of `rocksdb:///path/dir` URLs (see [`annals_core::driver`]).
pub const DRIVER: annals_core::driver::Driver = annals_core::driver::Driver {
    scheme: "rocksdb",
    target: annals_core::driver::Target::Folder,
    capabilities: annals_core::Capabilities::ALL,
    prepare: |request| annals_core::driver::prepare_path(request, open),
};
