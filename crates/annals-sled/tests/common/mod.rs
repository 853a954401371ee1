//! What this crate's persistence, crash and damage tests share: the
//! workload and dump of `annals_backend_tests::workload`, and how to open
//! a sled store.
#![allow(dead_code, clippy::unwrap_used)]

use std::path::Path;

use annals_core::{LogBackend, Result};
use annals_sled::SledOptions;

pub use annals_backend_tests::workload::*;

/// Opens the sled store in the folder `path` with these options.
pub fn open(path: &Path, options: SledOptions) -> Result<std::sync::Arc<dyn LogBackend>> {
    Ok(std::sync::Arc::new(annals_sled::open(path, options)?))
}
