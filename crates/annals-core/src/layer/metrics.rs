//! [`MetricsLayer`]: counters and histograms of every call of a backend,
//! through the `metrics` facade (feature `metrics`).

use std::time::Duration;

use ::metrics::{Unit, counter, describe_counter, describe_histogram, histogram};

use super::{Call, Observe, Observer, Outcome};

/// Names of the metrics [`MetricsLayer`] records, OpenTelemetry style.
/// Every metric has the label `backend`; see the README's "Observability"
/// section for the others.
pub mod names {
    /// Counter: calls of `append`, `append_with` and `append_batch`
    /// (labels `operation`, `outcome`).
    pub const APPENDS: &str = "annals.appends";
    /// Counter: events written by appends that succeeded (replays left
    /// out).
    pub const APPEND_EVENTS: &str = "annals.append.events";
    /// Counter, bytes: data, metadata, aux keys and values written by
    /// appends that succeeded (replays left out).
    pub const APPEND_BYTES: &str = "annals.append.bytes";
    /// Counter: appends answered with an earlier write's result
    /// (idempotent retries, \[A5\]).
    pub const APPEND_REPLAYS: &str = "annals.append.replays";
    /// Counter: failed calls of any method (labels `operation`,
    /// `error.kind`).
    pub const FAILURES: &str = "annals.failures";
    /// Histogram, seconds: how long appends took (labels `operation`,
    /// `outcome`).
    pub const APPEND_DURATION: &str = "annals.append.duration";
    /// Histogram, seconds: how long `read_stream` and `read_all` took
    /// (labels `operation`, `outcome`).
    pub const READ_DURATION: &str = "annals.read.duration";
    /// Histogram, events: events in each page a read answered (label
    /// `operation`).
    pub const READ_PAGE_SIZE: &str = "annals.read.page_size";
    /// Histogram, seconds: how long every other call took (labels
    /// `operation`, `outcome`).
    pub const OPERATION_DURATION: &str = "annals.operation.duration";
}

/// The layer that records counters and histograms of every call of a
/// backend through the `metrics` facade: install any recorder
/// (Prometheus, OpenTelemetry, StatsD…); without one, recording is a
/// no-op. Names are in [`names`] and the README's "Observability"
/// section; stream ids are never labels.
///
/// ```
/// use annals_core::layer::{LayerExt, MetricsLayer};
/// # fn wrap(store: impl annals_core::LogBackend) {
/// let store = store.layer(MetricsLayer::new().backend("redb"));
/// # }
/// ```
#[derive(Clone, Copy, Debug, Default)]
pub struct MetricsLayer {
    _private: (),
}

impl MetricsLayer {
    /// A metrics layer naming backends by their type;
    /// [`Observe::backend`] names the backend. Describes the metrics
    /// (units and help text) to the recorder installed now.
    #[allow(clippy::new_ret_no_self)]
    pub fn new() -> Observe<MetricsLayer> {
        Self::describe();
        Observe::new(MetricsLayer::default())
    }

    /// Describes every metric of the layer (unit and help text) to the
    /// installed recorder; [`MetricsLayer::new`] does it, call it again
    /// after installing a recorder later.
    pub fn describe() {
        use names::*;
        describe_counter!(
            APPENDS,
            Unit::Count,
            "Calls of append, append_with and append_batch"
        );
        describe_counter!(APPEND_EVENTS, Unit::Count, "Events written by appends");
        describe_counter!(APPEND_BYTES, Unit::Bytes, "Bytes written by appends");
        describe_counter!(
            APPEND_REPLAYS,
            Unit::Count,
            "Appends answered as idempotent replays"
        );
        describe_counter!(
            FAILURES,
            Unit::Count,
            "Failed calls, by operation and error kind"
        );
        describe_histogram!(APPEND_DURATION, Unit::Seconds, "Duration of appends");
        describe_histogram!(READ_DURATION, Unit::Seconds, "Duration of reads");
        describe_histogram!(READ_PAGE_SIZE, Unit::Count, "Events in each page read");
        describe_histogram!(OPERATION_DURATION, Unit::Seconds, "Duration of other calls");
    }
}

impl Observer for MetricsLayer {
    type Scope = ();

    fn begin(&self, _: &Call<'_>) {}

    fn end(&self, (): (), call: &Call<'_>, elapsed: Duration, outcome: Outcome<'_>) {
        use names::*;
        let backend = call.backend.to_owned();
        let operation = call.method.name();
        let result = match outcome {
            Outcome::Failed(error) => {
                counter!(FAILURES, "backend" => backend.clone(), "operation" => operation, "error.kind" => error.kind())
                    .increment(1);
                "error"
            }
            _ => "ok",
        };
        let duration = if call.method.is_append() {
            counter!(APPENDS, "backend" => backend.clone(), "operation" => operation, "outcome" => result)
                .increment(1);
            APPEND_DURATION
        } else if call.method.is_read() {
            READ_DURATION
        } else {
            OPERATION_DURATION
        };
        histogram!(duration, "backend" => backend.clone(), "operation" => operation, "outcome" => result)
            .record(elapsed.as_secs_f64());
        match outcome {
            Outcome::Appended { replayed: true, .. } => {
                counter!(APPEND_REPLAYS, "backend" => backend).increment(1);
            }
            Outcome::Appended { .. } => {
                counter!(APPEND_EVENTS, "backend" => backend.clone())
                    .increment(to_u64(call.events));
                counter!(APPEND_BYTES, "backend" => backend).increment(to_u64(call.bytes));
            }
            Outcome::Page { events, .. } => {
                histogram!(READ_PAGE_SIZE, "backend" => backend, "operation" => operation)
                    .record(events as f64);
            }
            _ => {}
        }
    }
}

fn to_u64(n: usize) -> u64 {
    u64::try_from(n).unwrap_or(u64::MAX)
}
