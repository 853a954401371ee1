//! The engine suite (`annals_backend_tests::kv`) against the sled engine.
#![allow(missing_docs, clippy::unwrap_used)]

use annals_backend_tests::kv::{KvCapabilities, KvHarness};
use annals_sled::{SledEngine, SledOptions};

struct Sled(tempfile::TempDir);

impl KvHarness for Sled {
    type Engine = SledEngine;
    fn new() -> Self {
        Sled(tempfile::tempdir().unwrap())
    }
    fn open(&self) -> annals_core::Result<SledEngine> {
        SledEngine::open(self.0.path().join("store"), &SledOptions::default())
    }
    fn capabilities() -> KvCapabilities {
        // Its snapshots are read locks: commits wait for them.
        KvCapabilities {
            commits_past_snapshots: false,
            ..KvCapabilities::FILES
        }
    }
    fn path(&self) -> Option<std::path::PathBuf> {
        Some(self.0.path().join("store"))
    }
}

fn main() -> std::process::ExitCode {
    annals_backend_tests::kv::run::<Sled>()
}
