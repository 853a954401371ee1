//! What this crate's persistence, crash and damage tests share: the
//! workload and dump of `annals_backend_tests::workload`, and how to open
//! a redb store.
#![allow(dead_code, clippy::unwrap_used)]

use std::path::Path;

use annals_core::{LogBackend, Result};
use annals_redb::RedbOptions;

pub use annals_backend_tests::workload::*;

/// Opens the redb store at `path` with these options.
pub fn open(path: &Path, options: RedbOptions) -> Result<std::sync::Arc<dyn LogBackend>> {
    Ok(std::sync::Arc::new(annals_redb::open(path, options)?))
}
