//! The conformance suite against the sled backend.

use std::process::ExitCode;
use std::sync::Arc;

use annals_backend_tests::Harness;
use annals_core::kv::support::BackendOptions;
use annals_core::{Capabilities, Error, LogBackend, Result, StoreConfig};
use annals_sled::SledOptions;

/// Each case's store lives in its own temporary folder.
struct SledHarness(tempfile::TempDir);

#[async_trait::async_trait]
impl Harness for SledHarness {
    async fn new() -> Self {
        SledHarness(tempfile::tempdir().expect("a temporary folder"))
    }

    async fn open(&self, config: StoreConfig) -> Result<Arc<dyn LogBackend>> {
        let path = self.0.path().join("store");
        let store = tokio::task::spawn_blocking(move || {
            annals_sled::open(path, SledOptions::with_config(config))
        })
        .await
        .map_err(|e| Error::backend("opening the sled store", e))??;
        Ok(Arc::new(store))
    }

    fn capabilities() -> Capabilities {
        Capabilities::ALL
    }

    fn files(&self) -> Option<std::path::PathBuf> {
        Some(self.0.path().to_path_buf())
    }
}

fn main() -> ExitCode {
    annals_backend_tests::run::<SledHarness>()
}
