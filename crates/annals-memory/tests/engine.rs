//! The engine suite (`annals_backend_tests::kv`) against the memory engine.
#![allow(missing_docs)]

use annals_backend_tests::kv::{KvCapabilities, KvHarness};
use annals_memory::MemoryEngine;

struct Memory;

impl KvHarness for Memory {
    type Engine = MemoryEngine;
    fn new() -> Self {
        Memory
    }
    fn open(&self) -> annals_core::Result<MemoryEngine> {
        Ok(MemoryEngine::new())
    }
    fn capabilities() -> KvCapabilities {
        KvCapabilities::MEMORY
    }
}

fn main() -> std::process::ExitCode {
    annals_backend_tests::kv::run::<Memory>()
}
