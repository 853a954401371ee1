//! What this crate's persistence, crash and damage tests share: the
//! workload and dump of `annals_backend_tests::workload`, and how to open
//! a rocksdb store.
#![allow(dead_code, clippy::unwrap_used)]

use std::path::Path;
use std::sync::Arc;

use annals_core::{Error, LogBackend, Result};
use annals_rocksdb::RocksDbOptions;

pub use annals_backend_tests::workload::*;

/// Opens the RocksDB store at `path` on the blocking pool.
pub async fn open(path: &Path, options: RocksDbOptions) -> Result<Arc<dyn LogBackend>> {
    let path = path.to_path_buf();
    let store = tokio::task::spawn_blocking(move || annals_rocksdb::open(path, options))
        .await
        .map_err(|e| Error::backend("opening (the task failed)", e))??;
    Ok(Arc::new(store))
}
