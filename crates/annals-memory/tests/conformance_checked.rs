//! The conformance suite against the in-memory backend behind the checking
//! layer: checking a store that checks already changes nothing a caller
//! sees.

use std::process::ExitCode;
use std::sync::Arc;

use annals_backend_tests::Harness;
use annals_core::layer::{CheckLayer, LayerExt};
use annals_core::{Capabilities, LogBackend, Result, StoreConfig};

struct CheckedMemoryHarness;

#[async_trait::async_trait]
impl Harness for CheckedMemoryHarness {
    async fn new() -> Self {
        CheckedMemoryHarness
    }

    async fn open(&self, config: StoreConfig) -> Result<Arc<dyn LogBackend>> {
        Ok(Arc::new(annals_memory::open(config)?.layer(CheckLayer)))
    }

    fn capabilities() -> Capabilities {
        Capabilities::ALL_IN_MEMORY
    }
}

fn main() -> ExitCode {
    annals_backend_tests::run::<CheckedMemoryHarness>()
}
