//! The writers' figures at round boundaries, through the `metrics` facade
//! (feature `metrics`; without it, or without a recorder, nothing is
//! recorded): the KV writer's, and the PostgreSQL backend's writer's. A
//! wrapping layer cannot see these: they are the writer's own.

use std::time::Duration;

/// Names of the writers' metrics. Each has the label `engine`: the KV
/// engine's Rust type (e.g. `RedbEngine`), or `postgres`.
pub mod names {
    /// Histogram, requests: requests (appends, batches, aux writes,
    /// deletes…) in one group commit.
    pub const COMMIT_REQUESTS: &str = "annals.writer.commit.requests";
    /// Histogram, events: events in one group commit.
    pub const COMMIT_EVENTS: &str = "annals.writer.commit.events";
    /// Histogram, seconds: how long the engine took to commit one group
    /// (its fsync included when the commit is synced); for PostgreSQL, the
    /// group's transaction (its two round trips, the head lock's wait and
    /// the COMMIT included).
    pub const COMMIT_DURATION: &str = "annals.writer.commit.duration";
    /// Gauge, requests: requests the writer took from its queue at the
    /// start of its latest round (the queue's depth when it woke, at most
    /// 4096; PostgreSQL's at most 512).
    pub const QUEUE_DEPTH: &str = "annals.writer.queue.depth";
    /// Gauge, position: the last committed position.
    pub const HEAD_POSITION: &str = "annals.head.position";
}

/// The engine's type name without its module path, as the `engine` label
/// of the KV writer's figures.
pub(crate) fn engine_label<E>() -> &'static str {
    let full = std::any::type_name::<E>();
    full.rsplit("::").next().unwrap_or(full)
}

/// A round of the writer labelled `engine` began with `depth` requests
/// taken from its queue. Shared by every writer that groups commits (the
/// KV writer, the PostgreSQL backend's), so their figures are alike.
pub fn round_started(engine: &'static str, depth: usize) {
    #[cfg(feature = "metrics")]
    metrics::gauge!(names::QUEUE_DEPTH, "engine" => engine).set(depth as f64);
    #[cfg(not(feature = "metrics"))]
    let _ = (engine, depth);
}

/// A round of the writer labelled `engine`, of `requests` requests and
/// `events` events, was committed in `took` (`None`: nothing to commit),
/// up to `head`.
pub fn round_committed(
    engine: &'static str,
    requests: usize,
    events: usize,
    took: Option<Duration>,
    head: u64,
) {
    #[cfg(feature = "metrics")]
    {
        metrics::histogram!(names::COMMIT_REQUESTS, "engine" => engine).record(requests as f64);
        metrics::histogram!(names::COMMIT_EVENTS, "engine" => engine).record(events as f64);
        if let Some(took) = took {
            metrics::histogram!(names::COMMIT_DURATION, "engine" => engine)
                .record(took.as_secs_f64());
        }
        metrics::gauge!(names::HEAD_POSITION, "engine" => engine).set(head as f64);
    }
    #[cfg(not(feature = "metrics"))]
    let _ = (engine, requests, events, took, head);
}
