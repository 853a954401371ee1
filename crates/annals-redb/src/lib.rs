//! # annals-redb
//!
//! The default embedded backend of annals: an append-only event log in one
//! [redb](https://www.redb.org) file. redb is pure Rust (no C toolchain),
//! keeps everything in a single file, and commits ACID transactions with
//! copy-on-write B-trees and checksums.
//!
//! [`RedbEngine`] implements annals' [`KvEngine`](annals_core::kv::KvEngine)
//! over one redb table; the generic store of `annals-core` does the rest.
//!
//! ## Options
//!
//! [`RedbOptions`], also as URL parameters
//! (`redb:///path/to/file.redb?durability=relaxed&cache_size=268435456`):
//!
//! | parameter | default | meaning |
//! |---|---|---|
//! | `durability` | `immediate` | `immediate`: an append returns once it is on disk; `relaxed`: see below |
//! | `max_event_bytes`, `max_append_events`, `max_append_bytes`, `max_read_count` | the SPEC's | limits |
//! | `cache_size` | redb's (1 GiB) | bytes of page cache |
//! | `create` | `true` | create the file and its folder if missing |
//! | `check_integrity` | `true` | verify every page's checksum when opening |
//! | `sync_interval_ms` | `1000` | with `relaxed`: make a commit durable at least this often (0: only on close) |
//! | `read_only` | `false` | redb's read-only open: the file never changes, writes are `Unsupported` |
//! | `file_mode` | `0600` | permissions of the file and folders the store creates |
//!
//! ## Whose files
//!
//! A new store file is created with `create_new` (never over an existing
//! file). An existing file is opened only if it is an annals store — a
//! redb database holding annals' table, or no table at all — and that is
//! checked with a read-only open first, so an empty file, a file that is
//! not a redb database or another program's redb database is refused
//! (`InvalidInput`) without a byte changing.
//!
//! ## Durability
//!
//! With `Durability::Immediate` every commit is a durable redb commit: it
//! returns after the data is on stable storage (one `fsync`).
//! With `Durability::Relaxed` commits are redb's *non-durable* commits:
//! visible at once, written to disk by the next durable commit (at least
//! every `sync_interval_ms`, and on close and compact). A crash — of the
//! process or the machine — then loses the commits made since the last
//! durable one: a suffix of whole appends, never part of one, never
//! anything before. The file itself stays consistent.
//!
//! ## Compaction
//!
//! `compact` runs redb's `Database::compact`, which needs the database to
//! itself: it waits for the reads in progress to end, and holds new reads
//! and appends back while it runs.
//!
//! ## Damaged files (\[M6\])
//!
//! annals checks a crc32c over the key and value of every record it reads.
//! redb trusts a file that was closed cleanly and may panic on bytes
//! damaged outside it. So:
//!
//! - by default (`check_integrity=true`) the checksum of every page of the
//!   file is verified when it is opened (about a second per GB from the
//!   page cache), and a damaged file is refused with
//!   [`Error::Corruption`](annals_core::Error::Corruption) naming it;
//! - every call into redb runs under `catch_unwind`, so a panic of redb is
//!   an [`Error::Backend`](annals_core::Error::Backend) (its source a
//!   [`RedbPanic`]), never a panic of yours.
//!
//! With `check_integrity=false`, damage shows up when it is read: damaged
//! records fail their checksum, and redb's panics are caught; but damage to
//! redb's own index pages can make a read miss entries rather than fail
//! (seen in `tests/persistence.rs`: a few trials in 200 read back fewer
//! events, never a wrong one). Keep the default unless opening time matters
//! more than that. Damage to redb's header can make the file impossible to
//! open (an error naming it, not a panic).
#![forbid(unsafe_code)]

mod engine;
mod error;
mod options;

pub use engine::{RedbEngine, RedbSnapshot};
pub use error::RedbPanic;
pub use options::RedbOptions;

use std::path::Path;

use annals_core::Result;
use annals_core::kv::KvStore;

/// Opens (creating it if missing, unless `options.create` is `false`) the
/// redb store at `path`.
///
/// Blocks on I/O (with `check_integrity`, it reads the whole file): inside
/// an async runtime, call it from `spawn_blocking` when that matters.
///
/// ```
/// use annals_core::{Direction, ExpectedVersion, LogBackend, NewEvent, Position, StreamId};
/// use annals_redb::RedbOptions;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let dir = tempfile::tempdir()?;
/// let path = dir.path().join("events.redb");
/// let store = annals_redb::open(&path, RedbOptions::default())?;
/// let cart = StreamId::new("cart-1")?;
/// store
///     .append(&cart, ExpectedVersion::NoStream, vec![NewEvent::builder("CartOpened").build()])
///     .await?;
/// store.close().await?;
///
/// // Everything is there after reopening.
/// let store = annals_redb::open(&path, RedbOptions::default())?;
/// let page = store.read_all(Position(1), 10, Direction::Forward, None).await?;
/// assert_eq!(page.events.len(), 1);
/// # Ok(())
/// # }
/// ```
pub fn open(path: impl AsRef<Path>, options: RedbOptions) -> Result<KvStore<RedbEngine>> {
    KvStore::open(RedbEngine::open(path, &options)?, options.config)
}

/// The driver of `redb:///path/file.redb` URLs (see
/// [`annals_core::driver`]).
pub const DRIVER: annals_core::driver::Driver = annals_core::driver::Driver {
    scheme: "redb",
    target: annals_core::driver::Target::File,
    capabilities: annals_core::Capabilities::ALL,
    prepare: |request| annals_core::driver::prepare_path(request, open),
};
