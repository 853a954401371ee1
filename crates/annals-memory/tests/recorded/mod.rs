//! What the metrics tests share: running async code under a debugging
//! recorder, reading one metric of its snapshot, and the writers' commit
//! group case (the KV writer's here, the PostgreSQL writer's in
//! annals-postgres, which includes this file).
#![allow(dead_code)] // Each test binary uses part of it.

use std::future::Future;

use annals_core::kv::figures::names;
use annals_core::{ExpectedVersion, LogBackend, NewEvent, Result, StreamId};
use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};
use metrics_util::{CompositeKey, MetricKind};

/// A snapshot's metrics and their values.
pub type Snapshot = Vec<(CompositeKey, DebugValue)>;

/// Runs `work` on a current-thread runtime with a recorder of its own
/// (for what runs on this thread), and answers what was recorded.
pub fn recorded<F: Future<Output = Result<()>>>(work: impl FnOnce() -> F) -> Result<Snapshot> {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a runtime");
    metrics::with_local_recorder(&recorder, || runtime.block_on(work()))?;
    Ok(take(&snapshotter))
}

/// What `snapshotter` holds now.
pub fn take(snapshotter: &Snapshotter) -> Snapshot {
    snapshotter
        .snapshot()
        .into_vec()
        .into_iter()
        .map(|(key, _, _, value)| (key, value))
        .collect()
}

/// The value of the metric `name` of `kind` with exactly these labels.
pub fn value<'a>(
    snapshot: &'a Snapshot,
    kind: MetricKind,
    name: &str,
    labels: &[(&str, &str)],
) -> &'a DebugValue {
    let found: Vec<&DebugValue> = snapshot
        .iter()
        .filter(|(key, _)| {
            let mut have: Vec<(&str, &str)> =
                key.key().labels().map(|l| (l.key(), l.value())).collect();
            let mut want = labels.to_vec();
            have.sort_unstable();
            want.sort_unstable();
            key.kind() == kind && key.key().name() == name && have == want
        })
        .map(|(_, v)| v)
        .collect();
    match found.as_slice() {
        [one] => one,
        _ => panic!(
            "{kind:?} {name} {labels:?}: {} found in {snapshot:#?}",
            found.len()
        ),
    }
}

/// A counter's value.
pub fn counter(snapshot: &Snapshot, name: &str, labels: &[(&str, &str)]) -> u64 {
    match value(snapshot, MetricKind::Counter, name, labels) {
        DebugValue::Counter(n) => *n,
        other => panic!("{name} is {other:?}"),
    }
}

/// A gauge's value.
pub fn gauge(snapshot: &Snapshot, name: &str, labels: &[(&str, &str)]) -> f64 {
    match value(snapshot, MetricKind::Gauge, name, labels) {
        DebugValue::Gauge(v) => v.into_inner(),
        other => panic!("{name} is {other:?}"),
    }
}

/// A histogram's values, in the order recorded.
pub fn histogram(snapshot: &Snapshot, name: &str, labels: &[(&str, &str)]) -> Vec<f64> {
    match value(snapshot, MetricKind::Histogram, name, labels) {
        DebugValue::Histogram(values) => values.iter().map(|v| v.into_inner()).collect(),
        other => panic!("{name} is {other:?}"),
    }
}

/// The commit group case on `store` (empty): 8 appends of 3 events sent
/// together, grouped as the writer finds them, then an append refused
/// (a request of a round that writes nothing).
pub async fn commit_group(store: &dyn LogBackend) -> Result<()> {
    let appends = (0..8).map(|i| async move {
        let events = (0..3).map(|_| NewEvent::builder("E").build()).collect();
        store
            .append(
                &StreamId::new(format!("s-{i}"))?,
                ExpectedVersion::NoStream,
                events,
            )
            .await
    });
    for result in futures::future::join_all(appends).await {
        result?;
    }
    let refused = store
        .append(
            &StreamId::new("s-0")?,
            ExpectedVersion::NoStream,
            vec![NewEvent::builder("E").build()],
        )
        .await;
    assert!(refused.is_err());
    Ok(())
}

/// Checks the writer figures [`commit_group`] left, labelled `engine`:
/// whatever the grouping, every request and event counted once, a
/// duration for each round but the last (which wrote nothing), the head
/// at the last event, and the last round's queue of one.
pub fn check_commit_group(snapshot: &Snapshot, engine: &str) {
    let engine = [("engine", engine)];
    let values = |name: &str| histogram(snapshot, name, &engine);
    let requests = values(names::COMMIT_REQUESTS);
    let events = values(names::COMMIT_EVENTS);
    assert_eq!(requests.iter().sum::<f64>(), 9.0, "{requests:?}");
    assert_eq!(events.iter().sum::<f64>(), 24.0, "{events:?}");
    assert_eq!(requests.len(), events.len());
    let durations = values(names::COMMIT_DURATION);
    assert_eq!(durations.len(), requests.len() - 1);
    assert!(
        durations.iter().all(|s| *s >= 0.0 && *s < 60.0),
        "{durations:?}"
    );
    assert_eq!(gauge(snapshot, names::HEAD_POSITION, &engine), 24.0);
    assert_eq!(gauge(snapshot, names::QUEUE_DEPTH, &engine), 1.0);
}
