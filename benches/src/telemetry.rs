//! `--layers`: the telemetry a production store would run with, installed
//! once for the process, and the layers that feed it.

use std::sync::Arc;
use std::time::Duration;

use annals::Store;
use annals::layer::{LayerExt, MetricsLayer, TracingLayer};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use tracing_subscriber::filter::LevelFilter;

use crate::backends::Backend;

/// How often the Prometheus recorder's histograms are drained, as its own
/// HTTP listener would (its default upkeep period).
const UPKEEP: Duration = Duration::from_secs(5);

/// Installs, for the rest of the process, a `tracing` subscriber at `INFO`
/// that formats every span and event into a sink, and a Prometheus
/// recorder (kept up as its exporter would). Call it once, inside the
/// runtime, after the runs without layers: neither can be removed.
pub fn install() -> Result<PrometheusHandle, String> {
    tracing_subscriber::fmt()
        .with_max_level(LevelFilter::INFO)
        .with_writer(std::io::sink)
        .try_init()
        .map_err(|e| format!("installing the tracing subscriber: {e}"))?;
    let handle = PrometheusBuilder::new()
        .install_recorder()
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
