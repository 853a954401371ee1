//! # annals-memory
//!
//! The in-memory backend of annals: a [`KvEngine`] over a persistent
//! (structurally shared) ordered map, so a read snapshot is an O(1) clone
//! and never blocks the writer. Nothing survives the process; everything
//! else of the contract holds.
//!
//! ```
//! use annals_core::{ExpectedVersion, LogBackend, NewEvent, StoreConfig, StreamId};
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> annals_core::Result<()> {
//! let store = annals_memory::open(StoreConfig::default())?;
//! let stream = StreamId::new("cart-1")?;
//! store.append(&stream, ExpectedVersion::NoStream, vec![NewEvent::builder("Opened").build()]).await?;
//! assert_eq!(store.stream_version(&stream).await?.0, 0);
//! # Ok(())
//! # }
//! ```
#![forbid(unsafe_code)]

use std::sync::{PoisonError, RwLock};

use annals_core::kv::support::{scan_iter, unguarded};
use annals_core::kv::{KvEngine, KvSnapshot, KvStore, Visitor, WriteBatch};
use annals_core::{Capabilities, Direction, Result, StoreConfig};
use imbl::OrdMap;

type Map = OrdMap<Vec<u8>, Vec<u8>>;

/// An ordered map in memory.
#[derive(Debug, Default)]
pub struct MemoryEngine {
    map: RwLock<Map>,
}

impl MemoryEngine {
    /// An empty engine.
    pub fn new() -> Self {
        Self::default()
    }
}

/// A snapshot: a structurally shared clone of the map.
#[derive(Debug)]
pub struct MemorySnapshot(Map);

impl KvSnapshot for MemorySnapshot {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        Ok(self.0.get(key).cloned())
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
        let range = self.0.range(start.to_vec()..end.to_vec()).map(Ok);
        scan_iter(range, direction, &unguarded, |e| e, visit)
    }
}

impl KvEngine for MemoryEngine {
    type Snapshot = MemorySnapshot;

    fn snapshot(&self) -> Result<MemorySnapshot> {
        let map = self.map.read().unwrap_or_else(PoisonError::into_inner);
        Ok(MemorySnapshot(map.clone()))
    }

    fn commit(&self, batch: WriteBatch, _sync: bool) -> Result<()> {
        let mut map = self.map.write().unwrap_or_else(PoisonError::into_inner);
        for (key, value) in batch.ops {
            match value {
                Some(v) => {
                    map.insert(key, v);
                }
                None => {
                    map.remove(&key);
                }
            }
        }
        Ok(())
    }

    fn disk_bytes(&self) -> Result<u64> {
        Ok(0)
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities::ALL_IN_MEMORY
    }
}

/// Opens a new, empty in-memory store.
pub fn open(config: StoreConfig) -> Result<KvStore<MemoryEngine>> {
    KvStore::open(MemoryEngine::new(), config)
}

/// The driver of `memory://` URLs (see [`annals_core::driver`]): only the
/// options every backend takes.
pub const DRIVER: annals_core::driver::Driver = annals_core::driver::Driver {
    scheme: "memory",
    target: annals_core::driver::Target::Nothing,
    capabilities: Capabilities::ALL_IN_MEMORY,
    prepare: |request| {
        let config = StoreConfig::from_params("memory", request.params(), &[])?;
        Ok(annals_core::driver::Prepared::blocking(config, move || {
            open(config)
        }))
    },
};
