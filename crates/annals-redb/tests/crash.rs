//! The process is killed at a random instant while appending ([M5], [D5]):
//! the shared kill -9 trials (`annals_backend_tests::crash`).
#![allow(missing_docs, clippy::unwrap_used)]

use std::path::Path;
use std::sync::Arc;

use annals_core::kv::support::BackendOptions;
use annals_core::{LogBackend, Result, StoreConfig};
use annals_redb::RedbOptions;

fn open(path: &Path, config: StoreConfig) -> Result<Arc<dyn LogBackend>> {
    Ok(Arc::new(annals_redb::open(
        path,
        RedbOptions::with_config(config),
    )?))
}

// [M5] [D5]: the shared kill -9 trials, `Immediate` and `Relaxed`.
annals_backend_tests::kill_tests!(open, 4);
