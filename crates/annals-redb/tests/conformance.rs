//! The annals conformance suite against the redb backend.
#![allow(missing_docs, clippy::unwrap_used)]

use std::process::ExitCode;
use std::sync::Arc;

use annals_backend_tests::Harness;
use annals_core::kv::support::BackendOptions;
use annals_core::{Capabilities, LogBackend, Result, StoreConfig};
use annals_redb::RedbOptions;

/// One store file in a fresh temp dir.
struct RedbHarness(tempfile::TempDir);

#[async_trait::async_trait]
impl Harness for RedbHarness {
    async fn new() -> Self {
        RedbHarness(tempfile::tempdir().unwrap())
    }

    async fn open(&self, config: StoreConfig) -> Result<Arc<dyn LogBackend>> {
        let path = self.0.path().join("store.redb");
        let store = tokio::task::spawn_blocking(move || {
            annals_redb::open(path, RedbOptions::with_config(config))
        })
        .await
        .unwrap()?;
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
    annals_backend_tests::run::<RedbHarness>()
}
