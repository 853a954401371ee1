//! The engine suite (`annals_backend_tests::kv`) against the rocksdb engine.
#![allow(missing_docs, clippy::unwrap_used)]

use annals_backend_tests::kv::{KvCapabilities, KvHarness};
use annals_rocksdb::{RocksDbEngine, RocksDbOptions};

struct RocksDb(tempfile::TempDir);

impl KvHarness for RocksDb {
    type Engine = RocksDbEngine;
    fn new() -> Self {
        RocksDb(tempfile::tempdir().unwrap())
    }
    fn open(&self) -> annals_core::Result<RocksDbEngine> {
        RocksDbEngine::open(
            self.0.path().join("store"),
            &RocksDbOptions {
                // Small memtables: the cases flush and compact for real.
                write_buffer_bytes: 256 << 10,
                ..RocksDbOptions::default()
            },
        )
    }
    fn capabilities() -> KvCapabilities {
        KvCapabilities::FILES
    }
    fn path(&self) -> Option<std::path::PathBuf> {
        Some(self.0.path().join("store"))
    }
}

fn main() -> std::process::ExitCode {
    annals_backend_tests::kv::run::<RocksDb>()
}
