//! The engine suite (`annals_backend_tests::kv`) against the fjall engine.
#![allow(missing_docs, clippy::unwrap_used)]

use annals_backend_tests::kv::{KvCapabilities, KvHarness};
use annals_fjall::{FjallEngine, FjallOptions};

struct Fjall(tempfile::TempDir);

impl KvHarness for Fjall {
    type Engine = FjallEngine;
    fn new() -> Self {
        Fjall(tempfile::tempdir().unwrap())
    }
    fn open(&self) -> annals_core::Result<FjallEngine> {
        FjallEngine::open(self.0.path().join("store"), &FjallOptions::default())
    }
    fn capabilities() -> KvCapabilities {
        KvCapabilities::FILES
    }
    fn path(&self) -> Option<std::path::PathBuf> {
        Some(self.0.path().join("store"))
    }
}

fn main() -> std::process::ExitCode {
    annals_backend_tests::kv::run::<Fjall>()
}
