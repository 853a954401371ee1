//! The writers' figures at round boundaries, through the `metrics` facade
//! (feature `metrics`; without it, or without a recorder, nothing is
//! recorded): the KV writer's, and the PostgreSQL backend's writer's. A
//! wrapping layer cannot see these: they are the writer's own.

#[cfg(feature = "metrics")]
use std::sync::OnceLock;
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

/// The handles of the writers' figures, by engine label, kept for the
/// recorder they were registered with: a writer records at every round
/// (every append, when appends come one at a time), too often to register
/// each figure with the recorder every time.
#[cfg(feature = "metrics")]
static FIGURES: crate::layer::PerRecorder<std::sync::Mutex<Vec<Figures>>> =
    crate::layer::PerRecorder::new();

/// One writer label's figures in one recorder, each registered at its
/// first use (a series is only created once it has a value).
#[cfg(feature = "metrics")]
struct Figures {
    engine: &'static str,
    queue_depth: OnceLock<metrics::Gauge>,
    commit_requests: OnceLock<metrics::Histogram>,
    commit_events: OnceLock<metrics::Histogram>,
    commit_duration: OnceLock<metrics::Histogram>,
    head: OnceLock<metrics::Gauge>,
}

#[cfg(feature = "metrics")]
impl Figures {
    fn new(engine: &'static str) -> Self {
        Figures {
            engine,
            queue_depth: OnceLock::new(),
            commit_requests: OnceLock::new(),
            commit_events: OnceLock::new(),
            commit_duration: OnceLock::new(),
            head: OnceLock::new(),
        }
    }

    /// `with` on the figures of `engine` in the current recorder: kept
    /// ones, or (under a thread-local recorder) registered now.
    fn with(engine: &'static str, with: impl Fn(&Figures)) {
        let kept = FIGURES.with(
            || std::sync::Mutex::new(Vec::new()),
            |kept| {
                // A poisoned list only means a panic elsewhere while
                // registering: its entries are whole.
                let mut kept = kept
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                let at = match kept.iter().position(|f| f.engine == engine) {
                    Some(at) => at,
                    None => {
                        kept.push(Figures::new(engine));
                        kept.len() - 1
                    }
                };
                if let Some(figures) = kept.get(at) {
                    with(figures);
                }
            },
        );
        if kept.is_none() {
            with(&Figures::new(engine));
        }
    }
}

/// A round of the writer labelled `engine` began with `depth` requests
/// taken from its queue. Shared by every writer that groups commits (the
/// KV writer, the PostgreSQL backend's), so their figures are alike.
pub fn round_started(engine: &'static str, depth: usize) {
    #[cfg(feature = "metrics")]
    Figures::with(engine, |figures| {
        figures
            .queue_depth
            .get_or_init(|| metrics::gauge!(names::QUEUE_DEPTH, "engine" => engine))
            .set(depth as f64);
    });
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
    Figures::with(engine, |figures| {
        use metrics::{gauge, histogram};
        use names::*;
        figures
            .commit_requests
            .get_or_init(|| histogram!(COMMIT_REQUESTS, "engine" => engine))
            .record(requests as f64);
        figures
            .commit_events
            .get_or_init(|| histogram!(COMMIT_EVENTS, "engine" => engine))
            .record(events as f64);
        if let Some(took) = took {
            figures
                .commit_duration
                .get_or_init(|| histogram!(COMMIT_DURATION, "engine" => engine))
                .record(took.as_secs_f64());
        }
        figures
            .head
            .get_or_init(|| gauge!(HEAD_POSITION, "engine" => engine))
            .set(head as f64);
    });
    #[cfg(not(feature = "metrics"))]
    let _ = (engine, requests, events, took, head);
}
