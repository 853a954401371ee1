//! `--layers`: the telemetry a production store would run with, installed
//! once for the process, and the layers that feed it.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use annals::Store;
use annals::layer::{LayerExt, MetricsLayer, TracingLayer};
use metrics::{
    Counter, CounterFn, Gauge, GaugeFn, Histogram, HistogramFn, Key, KeyName, Metadata, Recorder,
    SharedString, Unit,
};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle, PrometheusRecorder};
use tracing_subscriber::filter::LevelFilter;

use crate::backends::Backend;

/// How often the Prometheus recorder's histograms are drained, as its own
/// HTTP listener would (its default upkeep period).
const UPKEEP: Duration = Duration::from_secs(5);

/// Whether metrics reach the Prometheus recorder: off while a run without
/// layers is measured, so that the writer's own figures are not recorded
/// in it either.
static RECORDING: AtomicBool = AtomicBool::new(false);

/// Turns the recording of metrics on or off (see [`RECORDING`]).
pub fn recording(on: bool) {
    RECORDING.store(on, Ordering::SeqCst);
}

/// The Prometheus recorder behind a switch: while off, every metric's
/// value is dropped, as without a recorder. annals registers each metric
/// once and keeps its handle, so the switch is in the handles: each value
/// goes through only while recording is on.
struct Switched(PrometheusRecorder);

/// A Prometheus metric's handle behind the switch.
struct Switch<H>(H);

impl CounterFn for Switch<Counter> {
    fn increment(&self, value: u64) {
        if RECORDING.load(Ordering::Relaxed) {
            self.0.increment(value);
        }
    }

    fn absolute(&self, value: u64) {
        if RECORDING.load(Ordering::Relaxed) {
            self.0.absolute(value);
        }
    }
}

impl GaugeFn for Switch<Gauge> {
    fn increment(&self, value: f64) {
        if RECORDING.load(Ordering::Relaxed) {
            self.0.increment(value);
        }
    }

    fn decrement(&self, value: f64) {
        if RECORDING.load(Ordering::Relaxed) {
            self.0.decrement(value);
        }
    }

    fn set(&self, value: f64) {
        if RECORDING.load(Ordering::Relaxed) {
            self.0.set(value);
        }
    }
}

impl HistogramFn for Switch<Histogram> {
    fn record(&self, value: f64) {
        if RECORDING.load(Ordering::Relaxed) {
            self.0.record(value);
        }
    }
}

impl Recorder for Switched {
    fn describe_counter(&self, key: KeyName, unit: Option<Unit>, description: SharedString) {
        self.0.describe_counter(key, unit, description);
    }

    fn describe_gauge(&self, key: KeyName, unit: Option<Unit>, description: SharedString) {
        self.0.describe_gauge(key, unit, description);
    }

    fn describe_histogram(&self, key: KeyName, unit: Option<Unit>, description: SharedString) {
        self.0.describe_histogram(key, unit, description);
    }

    fn register_counter(&self, key: &Key, metadata: &Metadata<'_>) -> Counter {
        Counter::from_arc(Arc::new(Switch(self.0.register_counter(key, metadata))))
    }

    fn register_gauge(&self, key: &Key, metadata: &Metadata<'_>) -> Gauge {
        Gauge::from_arc(Arc::new(Switch(self.0.register_gauge(key, metadata))))
    }

    fn register_histogram(&self, key: &Key, metadata: &Metadata<'_>) -> Histogram {
        Histogram::from_arc(Arc::new(Switch(self.0.register_histogram(key, metadata))))
    }
}

/// Installs, for the rest of the process, a `tracing` subscriber at `INFO`
/// that formats every span and event into a sink, and a Prometheus
/// recorder (kept up as its exporter would), its recording off until
/// [`recording`] turns it on. Call it once, inside the runtime. A store
/// without a `TracingLayer` makes no span: the subscriber costs it nothing.
pub fn install() -> Result<PrometheusHandle, String> {
    tracing_subscriber::fmt()
        .with_max_level(LevelFilter::INFO)
        .with_writer(std::io::sink)
        .try_init()
        .map_err(|e| format!("installing the tracing subscriber: {e}"))?;
    let recorder = PrometheusBuilder::new().build_recorder();
    let handle = recorder.handle();
    metrics::set_global_recorder(Switched(recorder))
        .map_err(|e| format!("installing the Prometheus recorder: {e}"))?;
    let upkeep = handle.clone();
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(UPKEEP).await;
            upkeep.run_upkeep();
        }
    });
    Ok(handle)
}

/// `store` wrapped in a `TracingLayer` and a `MetricsLayer`, named as the
/// backend.
pub fn layered(store: Store, backend: Backend) -> Store {
    let name = backend.to_string();
    Arc::new(
        store
            .layer(TracingLayer::new().backend(name.clone()))
            .layer(MetricsLayer::new().backend(name)),
    )
}
