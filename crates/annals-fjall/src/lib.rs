//! # annals-fjall
//!
//! An annals backend over [fjall](https://fjall-rs.github.io) 3, a
//! pure-Rust LSM-tree storage engine: the store is a folder
//! (`fjall:///var/lib/app/events`), marked as annals' own
//! ([`annals_core::files`]), with fjall's files in its `fjall` subfolder
//! (`fjall-N` after a `compact`).
//!
//! [`FjallEngine`] is annals' [`KvEngine`](annals_core::kv::KvEngine) over
//! one fjall keyspace: a commit is one fjall write batch (atomic in its
//! journal), a read is a fjall snapshot. The generic store of
//! `annals-core` does the rest.
//!
//! ## Options
//!
//! [`FjallOptions`], also as URL parameters: every backend's
//! (`durability`, `max_event_bytes`, `max_append_events`,
//! `max_append_bytes`, `max_read_count`), then `cache_size` (bytes),
//! `create`, `read_only` and `file_mode`:
//! `fjall:///var/lib/app/events?durability=relaxed&cache_size=67108864`.
//!
//! ## Durability
//!
//! With `Durability::Immediate` a commit returns once fjall's journal is
//! fsynced. With `Relaxed` it is handed to the OS at once, so a killed
//! process loses nothing; a power loss may lose the appends since the last
//! durable commit (a suffix of whole appends: fjall's journal replays
//! whole batches only). Closing the store syncs the journal.
//!
//! ## Known limits
//!
//! - fjall frees its journal (preallocated, 64 MiB) only when it rotates
//!   it, once full. So `compact` copies the live keys into a fresh fjall
//!   database (subfolder `fjall-N`, named by the file `CURRENT`) and
//!   switches to it: appends wait while it copies, and it needs room for
//!   a second copy of the live events. A crash at any point leaves the
//!   old database or the complete new one.
//! - A damaged lsm-tree version file (`v1`, `v2`… in the tree's folder)
//!   makes fjall 3.1 (lsm-tree 3.1.10) abort the process while opening:
//!   it sizes a vector by a count read from the damaged file, before any
//!   check, and the failed allocation is not a panic annals can catch.
//!   Every other damaged file is an error (tests/persistence.rs).
//! - fjall has no read-only mode: with `read_only=true` annals writes
//!   nothing, but opening may replay fjall's journal into files of its own.
#![forbid(unsafe_code)]

mod engine;
mod options;

pub use engine::{FjallEngine, FjallSnapshot};
pub use options::FjallOptions;

use std::path::Path;

use annals_core::Result;
use annals_core::driver::{Driver, Target, prepare_path};
use annals_core::kv::KvStore;

/// Opens (creating it if missing, unless `options.create` is `false`) the
/// fjall store in the folder `dir`. Blocks on I/O.
///
/// ```
/// use annals_core::{ExpectedVersion, LogBackend, NewEvent, StreamId};
/// use annals_fjall::FjallOptions;
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let dir = tempfile::tempdir()?;
/// let store = annals_fjall::open(dir.path().join("events"), FjallOptions::default())?;
/// let cart = StreamId::new("cart-1")?;
/// store.append(&cart, ExpectedVersion::NoStream, vec![NewEvent::builder("Opened").build()]).await?;
/// store.close().await?;
/// # Ok(())
/// # }
/// ```
pub fn open(dir: impl AsRef<Path>, options: FjallOptions) -> Result<KvStore<FjallEngine>> {
    KvStore::open(FjallEngine::open(dir, &options)?, options.config)
}

/// The driver of `fjall:///path/dir` URLs (see [`annals_core::driver`]).
pub const DRIVER: Driver = Driver {
    scheme: "fjall",
    target: Target::Folder,
    capabilities: annals_core::Capabilities::ALL,
    prepare: |request| prepare_path(request, open),
};
