//! The conformance suite against the in-memory backend.

use std::process::ExitCode;
use std::sync::Arc;

use annals_backend_tests::Harness;
use annals_core::{Capabilities, LogBackend, Result, StoreConfig};

struct MemoryHarness;

#[async_trait::async_trait]
impl Harness for MemoryHarness {
    async fn new() -> Self {
        MemoryHarness
    }

    async fn open(&self, config: StoreConfig) -> Result<Arc<dyn LogBackend>> {
        Ok(Arc::new(annals_memory::open(config)?))
    }

    fn capabilities() -> Capabilities {
        Capabilities::ALL_IN_MEMORY
    }
}

fn main() -> ExitCode {
    annals_backend_tests::run::<MemoryHarness>()
}
