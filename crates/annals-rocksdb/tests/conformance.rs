//! The conformance suite against the RocksDB backend, with its default
//! options (so LZ4, the block cache and `Durability::Immediate` as given).

use std::process::ExitCode;
use std::sync::Arc;

use annals_backend_tests::Harness;
use annals_core::kv::support::BackendOptions;
use annals_core::{Capabilities, Error, LogBackend, Result, StoreConfig};
use annals_rocksdb::RocksDbOptions;

/// Each case's stores live in a folder of its own temp dir.
struct RocksHarness {
    dir: tempfile::TempDir,
}

#[async_trait::async_trait]
impl Harness for RocksHarness {
    async fn new() -> Self {
        let dir = tempfile::Builder::new()
            .prefix("annals-rocksdb-")
            .tempdir()
            .expect("a temp dir for the case");
        RocksHarness { dir }
    }

    async fn open(&self, config: StoreConfig) -> Result<Arc<dyn LogBackend>> {
        let path = self.dir.path().join("store");
        let store = tokio::task::spawn_blocking(move || {
            annals_rocksdb::open(path, RocksDbOptions::with_config(config))
        })
        .await
        .map_err(|e| Error::backend("opening the store (the task failed)", e))??;
        Ok(Arc::new(store))
    }

    fn capabilities() -> Capabilities {
        Capabilities::ALL
    }

    fn files(&self) -> Option<std::path::PathBuf> {
        Some(self.dir.path().to_path_buf())
    }
}

fn main() -> ExitCode {
    annals_backend_tests::run::<RocksHarness>()
}
