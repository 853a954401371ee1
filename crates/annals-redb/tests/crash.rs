//! The process is killed at a random instant while appending ([M5], [D5]):
//! the shared kill -9 trials (`annals_backend_tests::crash`).
#![allow(missing_docs, clippy::unwrap_used)]

use std::path::Path;
use std::sync::Arc;

use annals_backend_tests::crash::kill_trials;
use annals_core::kv::support::BackendOptions;
use annals_core::{Durability, LogBackend, Result, StoreConfig};
use annals_redb::RedbOptions;

fn open(path: &Path, config: StoreConfig) -> Result<Arc<dyn LogBackend>> {
    Ok(Arc::new(annals_redb::open(
        path,
        RedbOptions::with_config(config),
    )?))
}

// [M5] [D5]
#[test]
fn killed_while_appending_immediate_loses_nothing_acknowledged_m5() {
    kill_trials(
        "killed_while_appending_immediate_loses_nothing_acknowledged_m5",
        open,
        Durability::Immediate,
        4,
    );
}

// [M5] [D5]
#[test]
fn killed_while_appending_relaxed_loses_a_suffix_of_whole_appends_d5() {
    kill_trials(
        "killed_while_appending_relaxed_loses_a_suffix_of_whole_appends_d5",
        open,
        Durability::Relaxed,
        4,
    );
}
