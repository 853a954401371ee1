//! What the metrics tests share: running async code under a debugging
//! recorder, and reading one metric of its snapshot.
#![allow(dead_code)] // Each test binary uses part of it.

use std::future::Future;

use annals_core::Result;
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
