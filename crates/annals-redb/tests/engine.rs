//! The engine suite (`annals_backend_tests::kv`) against the redb engine.
#![allow(missing_docs, clippy::unwrap_used)]

use annals_backend_tests::kv::{KvCapabilities, KvHarness};
use annals_redb::{RedbEngine, RedbOptions};

struct Redb(tempfile::TempDir);

impl KvHarness for Redb {
    type Engine = RedbEngine;
    fn new() -> Self {
        Redb(tempfile::tempdir().unwrap())
    }
    fn open(&self) -> annals_core::Result<RedbEngine> {
        RedbEngine::open(self.0.path().join("store.redb"), &RedbOptions::default())
    }
    fn capabilities() -> KvCapabilities {
        KvCapabilities::FILES
    }
    fn path(&self) -> Option<std::path::PathBuf> {
        Some(self.0.path().join("store.redb"))
    }
}

fn main() -> std::process::ExitCode {
    annals_backend_tests::kv::run::<Redb>()
}
