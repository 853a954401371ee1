//! The KV writer's figures at round boundaries, through the `metrics`
//! facade (feature `metrics`; without it, or without a recorder, nothing
//! is recorded). A wrapping layer cannot see these: they are the writer's
//! own.

use std::time::Duration;

/// Names of the writer's metrics. Each has the label `engine` (the
/// engine's Rust type, e.g. `RedbEngine`).
pub mod names {
    /// Histogram, requests: requests (appends, batches, aux writes,
    /// deletes…) in one group commit.
    pub const COMMIT_REQUESTS: &str = "annals.writer.commit.requests";
    /// Histogram, events: events in one group commit.
    pub const COMMIT_EVENTS: &str = "annals.writer.commit.events";
    /// Histogram, seconds: how long the engine took to commit one group
    /// (its fsync included when the commit is synced).
    pub const COMMIT_DURATION: &str = "annals.writer.commit.duration";
    /// Gauge, requests: requests the writer took from its queue at the
    /// start of its latest round (the queue's depth when it woke, at most
    /// 4096).
    pub const QUEUE_DEPTH: &str = "annals.writer.queue.depth";
    /// Gauge, position: the last committed position.
    pub const HEAD_POSITION: &str = "annals.head.position";
}

/// The engine's type name without its module path, as the `engine` label.
fn engine<E>() -> &'static str {
    let full = std::any::type_name::<E>();
    full.rsplit("::").next().unwrap_or(full)
}

/// A round began with `depth` requests taken from the queue.
pub(crate) fn round_started<E>(depth: usize) {
    #[cfg(feature = "metrics")]
    metrics::gauge!(names::QUEUE_DEPTH, "engine" => engine::<E>()).set(depth as f64);
    #[cfg(not(feature = "metrics"))]
    let _ = (depth, engine::<E>);
}

/// A round of `requests` requests and `events` events was committed in
/// `took` (`None`: nothing to commit), up to `head`.
pub(crate) fn round_committed<E>(
    requests: usize,
    events: usize,
    took: Option<Duration>,
    head: u64,
) {
    #[cfg(feature = "metrics")]
    {
        let engine = engine::<E>();
        metrics::histogram!(names::COMMIT_REQUESTS, "engine" => engine).record(requests as f64);
        metrics::histogram!(names::COMMIT_EVENTS, "engine" => engine).record(events as f64);
        if let Some(took) = took {
            metrics::histogram!(names::COMMIT_DURATION, "engine" => engine)
                .record(took.as_secs_f64());
        }
        metrics::gauge!(names::HEAD_POSITION, "engine" => engine).set(head as f64);
    }
    #[cfg(not(feature = "metrics"))]
    let _ = (requests, events, took, head);
}
