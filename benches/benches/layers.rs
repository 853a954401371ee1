//! What the observability layers add to one call, apart from any backend's
//! work: appends to a backend that does nothing but record the writer's
//! figures (as the KV writer does once per round), plain and wrapped in
//! `TracingLayer`, `MetricsLayer` and both, under a `fmt` subscriber at
//! `INFO` writing into a sink and a Prometheus recorder, as
//! `annals-bench --layers` runs them. One thread: the time per call is the
//! CPU the layers cost.
//!
//! `cargo bench -p annals-bench --no-default-features --bench layers`
#![allow(missing_docs)]

use std::time::Duration;

use annals::kv::figures;
use annals::layer::{LayerExt, MetricsLayer, TracingLayer};
use annals::{
    Append, AppendResult, Capabilities, Direction, ExpectedVersion, HeadWatch, Limits, LogBackend,
    NewEvent, Page, Position, Query, Result, StreamId, StreamInfo, Version,
};
use async_trait::async_trait;
use criterion::{Criterion, criterion_group, criterion_main};
use tokio::sync::watch;

/// A backend whose append writes nothing and answers at once.
#[derive(Debug)]
struct Nothing {
    head: watch::Sender<Position>,
}

impl Nothing {
    fn new() -> Self {
        Nothing {
            head: watch::Sender::new(Position(0)),
        }
    }
}

fn appended() -> AppendResult {
    AppendResult {
        first_version: Version(0),
        last_version: Version(0),
        first_position: Position(1),
        last_position: Position(1),
    }
}

#[async_trait]
impl LogBackend for Nothing {
    fn capabilities(&self) -> Capabilities {
        Capabilities::ALL
    }
    fn limits(&self) -> Limits {
        Limits::default()
    }
    async fn append_with(&self, _: Append) -> Result<AppendResult> {
        figures::round_started("Nothing", 1);
        figures::round_committed("Nothing", 1, 1, Some(Duration::from_micros(1)), 1);
        Ok(appended())
    }
    async fn read_stream(&self, _: &StreamId, _: Version, _: usize, _: Direction) -> Result<Page> {
        Ok(Page::default())
    }
    async fn read_all(
        &self,
        _: Position,
        _: usize,
        _: Direction,
        _: Option<&Query>,
    ) -> Result<Page> {
        Ok(Page::default())
    }
    async fn stream_version(&self, _: &StreamId) -> Result<Version> {
        Ok(Version(0))
    }
    async fn list_streams(&self, _: Option<&StreamId>, _: usize) -> Result<Vec<StreamInfo>> {
        Ok(Vec::new())
    }
    async fn disk_bytes(&self) -> Result<u64> {
        Ok(0)
    }
    async fn has_events(&self) -> Result<bool> {
        Ok(false)
    }
    async fn health(&self) -> Result<()> {
        Ok(())
    }
    async fn close(&self) -> Result<()> {
        Ok(())
    }
    fn watch_head(&self) -> Result<HeadWatch> {
        Ok(self.head.subscribe())
    }
}

fn layers(c: &mut Criterion) {
    tracing_subscriber::fmt()
        .with_max_level(tracing_subscriber::filter::LevelFilter::INFO)
        .with_writer(std::io::sink)
        .init();
    let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
    let handle = recorder.handle();
    metrics::set_global_recorder(recorder).expect("the only recorder");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a runtime");
    let stream = StreamId::new("s").expect("a valid id");
    let stores: [(&str, Box<dyn LogBackend>); 4] = [
        ("plain", Box::new(Nothing::new())),
        (
            "tracing",
            Box::new(Nothing::new().layer(TracingLayer::new().backend("nothing"))),
        ),
        (
            "metrics",
            Box::new(Nothing::new().layer(MetricsLayer::new().backend("nothing"))),
        ),
        (
            "both",
            Box::new(
                Nothing::new()
                    .layer(TracingLayer::new().backend("nothing"))
                    .layer(MetricsLayer::new().backend("nothing")),
            ),
        ),
    ];
    let mut group = c.benchmark_group("append");
    for (name, store) in &stores {
        group.bench_function(*name, |b| {
            b.iter(|| {
                runtime.block_on(store.append(
                    &stream,
                    ExpectedVersion::Any,
                    vec![NewEvent::builder("E").build()],
                ))
            })
        });
        // Histograms are drained as the exporter would.
        handle.run_upkeep();
    }
    group.finish();
}

criterion_group!(benches, layers);
criterion_main!(benches);
