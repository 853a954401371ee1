//! The conformance suite against the in-memory backend wrapped in both
//! observability layers: a layer must change nothing a caller sees.

use std::process::ExitCode;
use std::sync::Arc;

use annals_backend_tests::Harness;
use annals_core::layer::{LayerExt, MetricsLayer, StreamIds, TracingLayer};
use annals_core::{Capabilities, LogBackend, Result, StoreConfig};

struct LayeredMemoryHarness;

#[async_trait::async_trait]
impl Harness for LayeredMemoryHarness {
    async fn new() -> Self {
        LayeredMemoryHarness
    }

    async fn open(&self, config: StoreConfig) -> Result<Arc<dyn LogBackend>> {
        let store = annals_memory::open(config)?
            .layer(TracingLayer::with_streams(StreamIds::Hashed).backend("memory"))
            .layer(MetricsLayer::new().backend("memory"));
        Ok(Arc::new(store))
    }

    fn capabilities() -> Capabilities {
        Capabilities::ALL_IN_MEMORY
    }
}

fn main() -> ExitCode {
    // Spans and metrics are recorded for real: a subscriber and a
    // recorder are installed for the whole run.
    let recorder = metrics_util::debugging::DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    metrics::set_global_recorder(recorder).expect("the first recorder");
    let _ = tracing::subscriber::set_global_default(Everything);
    let code = annals_backend_tests::run::<LayeredMemoryHarness>();
    assert!(
        !snapshotter.snapshot().into_vec().is_empty(),
        "metrics were recorded"
    );
    code
}

/// A subscriber that enables every span and event and keeps nothing, so
/// that the layers record every field.
struct Everything;

impl tracing::Subscriber for Everything {
    fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        tracing::span::Id::from_u64(1)
    }
    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, _: &tracing::Event<'_>) {}
    fn enter(&self, _: &tracing::span::Id) {}
    fn exit(&self, _: &tracing::span::Id) {}
}
