//! # annals-sled
//!
//! The sled backend of annals: an append-only event log in a
//! [sled](https://sled.rs) 0.34 database, a pure-Rust, log-structured
//! embedded key-value store.
//!
//! [`SledEngine`] implements annals' [`KvEngine`](annals_core::kv::KvEngine)
//! over one sled tree; the generic store of `annals-core` does the rest.
//! See `README.md` for what holds (durability, compaction, damaged files).
#![forbid(unsafe_code)]

mod engine;
mod error;
mod options;

pub use engine::{SledEngine, SledSnapshot};
pub use error::SledPanic;
pub use options::{SledMode, SledOptions};

use std::path::Path;

use annals_core::Result;
use annals_core::kv::KvStore;

/// Opens (creating it if missing, unless `options.create` is `false`) the
/// sled store in the folder `path`.
///
/// Blocks on I/O (sled reads its log to recover): inside an async runtime,
/// call it from `spawn_blocking` when that matters.
///
/// ```
/// use annals_core::{Direction, ExpectedVersion, LogBackend, NewEvent, Position, StreamId};
/// use annals_sled::SledOptions;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let dir = tempfile::tempdir()?;
/// let path = dir.path().join("events");
/// let store = annals_sled::open(&path, SledOptions::default())?;
/// let cart = StreamId::new("cart-1")?;
/// store
///     .append(&cart, ExpectedVersion::NoStream, vec![NewEvent::builder("CartOpened").build()])
///     .await?;
/// store.close().await?;
///
/// // Everything is there after reopening.
/// let store = annals_sled::open(&path, SledOptions::default())?;
/// let page = store.read_all(Position(1), 10, Direction::Forward, None).await?;
/// assert_eq!(page.events.len(), 1);
/// # Ok(())
/// # }
/// ```
pub fn open(path: impl AsRef<Path>, options: SledOptions) -> Result<KvStore<SledEngine>> {
    let engine = SledEngine::open(path, &options)?;
    KvStore::open(engine, options.config)
}

/// The driver of `sled:///path/dir` URLs (see [`annals_core::driver`]).
pub const DRIVER: annals_core::driver::Driver = annals_core::driver::Driver {
    scheme: "sled",
    target: annals_core::driver::Target::Folder,
    capabilities: annals_core::Capabilities::ALL,
    prepare: |request| annals_core::driver::prepare_path(request, open),
};
