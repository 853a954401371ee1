//! [`MetricsLayer`]: counters and histograms of every call of a backend,
//! through the `metrics` facade (feature `metrics`).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock, RwLock};
use std::time::Duration;

use ::metrics::{
    Counter, Histogram, Recorder, SharedString, Unit, counter, describe_counter,
    describe_histogram, histogram,
};

use super::{Call, Method, Observe, Observer, Outcome};

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
///
/// Each metric's handle is registered with the recorder once and kept
/// (a registration hashes the name and labels and looks them up in the
/// recorder's registry: too dear for every call); a recorder installed
/// later, or a thread-local one (`metrics::with_local_recorder`), still
/// gets every series.
#[derive(Debug, Default)]
pub struct MetricsLayer {
    handles: PerRecorder<Handles>,
}

/// A copy starts with no handles of its own: it may name another backend.
impl Clone for MetricsLayer {
    fn clone(&self) -> Self {
        MetricsLayer::default()
    }
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
        if let Outcome::Failed(error) = outcome {
            // Rare, and labelled by the error's kind: registered each time.
            counter!(names::FAILURES, "backend" => call.backend.to_owned(), "operation" => call.method.name(), "error.kind" => error.kind())
                .increment(1);
        }
        let kept = self.handles.with(
            || Handles::new(call.backend),
            |handles| {
                // One layer wraps one backend; a clone wrapping another
                // one has handles of its own, so this is only a guard.
                let ours = *handles.backend == *call.backend;
                if ours {
                    handles.record(call, elapsed, outcome);
                }
                ours
            },
        );
        if kept != Some(true) {
            // Under a thread-local recorder: registered now, as the
            // facade's macros do.
            Handles::new(call.backend).record(call, elapsed, outcome);
        }
    }
}

/// A slot for every [`Method`].
const METHODS: usize = Method::AuxDelete as usize + 1;

/// The handles of one backend's metrics in one recorder, each registered
/// at its first use (a series is only created once it has a value).
#[derive(Debug)]
struct Handles {
    backend: Arc<str>,
    /// `annals.appends` by method and outcome (`[ok, error]`).
    appends: [[OnceLock<Counter>; 2]; METHODS],
    /// The duration histogram by method and outcome.
    durations: [[OnceLock<Histogram>; 2]; METHODS],
    /// `annals.read.page_size` by method.
    page_sizes: [OnceLock<Histogram>; METHODS],
    events: OnceLock<Counter>,
    bytes: OnceLock<Counter>,
    replays: OnceLock<Counter>,
}

impl Handles {
    fn new(backend: &str) -> Self {
        Handles {
            backend: backend.into(),
            appends: Default::default(),
            durations: Default::default(),
            page_sizes: Default::default(),
            events: OnceLock::new(),
            bytes: OnceLock::new(),
            replays: OnceLock::new(),
        }
    }

    fn backend(&self) -> SharedString {
        SharedString::from(Arc::clone(&self.backend))
    }

    /// Records a call's metrics but its failure.
    fn record(&self, call: &Call<'_>, elapsed: Duration, outcome: Outcome<'_>) {
        use names::*;
        let method = call.method as usize;
        let operation = call.method.name();
        let failed = matches!(outcome, Outcome::Failed(_));
        let result = if failed { "error" } else { "ok" };
        let failed = usize::from(failed);
        if call.method.is_append() {
            let slot = self.appends.get(method).and_then(|m| m.get(failed));
            with_handle(
                slot,
                || counter!(APPENDS, "backend" => self.backend(), "operation" => operation, "outcome" => result),
                |appends| appends.increment(1),
            );
        }
        let duration = if call.method.is_append() {
            APPEND_DURATION
        } else if call.method.is_read() {
            READ_DURATION
        } else {
            OPERATION_DURATION
        };
        with_handle(
            self.durations.get(method).and_then(|m| m.get(failed)),
            || histogram!(duration, "backend" => self.backend(), "operation" => operation, "outcome" => result),
            |durations| durations.record(elapsed.as_secs_f64()),
        );
        match outcome {
            Outcome::Appended { replayed: true, .. } => {
                self.replays
                    .get_or_init(|| counter!(APPEND_REPLAYS, "backend" => self.backend()))
                    .increment(1);
            }
            Outcome::Appended { .. } => {
                self.events
                    .get_or_init(|| counter!(APPEND_EVENTS, "backend" => self.backend()))
                    .increment(to_u64(call.events));
                self.bytes
                    .get_or_init(|| counter!(APPEND_BYTES, "backend" => self.backend()))
                    .increment(to_u64(call.bytes));
            }
            Outcome::Page { events, .. } => with_handle(
                self.page_sizes.get(method),
                || histogram!(READ_PAGE_SIZE, "backend" => self.backend(), "operation" => operation),
                |pages| pages.record(events as f64),
            ),
            _ => {}
        }
    }
}

/// `with` on the handle in `slot`, registered by `make` at its first use;
/// without a slot (a method added since [`Handles`] was laid out), on one
/// registered now.
fn with_handle<H>(slot: Option<&OnceLock<H>>, make: impl FnOnce() -> H, with: impl FnOnce(&H)) {
    match slot {
        Some(slot) => with(slot.get_or_init(make)),
        None => with(&make()),
    }
}

/// Metric handles kept for the recorder they were registered with, as
/// long as it stays the current one.
///
/// Only the global recorder's handles are kept: it lives as long as the
/// process, so its address names it for good. A thread-local recorder
/// (`metrics::with_local_recorder`) lives on some stack; another one may
/// take its address once it is gone, so its handles are not kept: the
/// caller registers at each use, as the facade's macros do.
#[derive(Debug)]
pub(crate) struct PerRecorder<T> {
    /// The global recorder's address and the handles registered with it.
    kept: RwLock<Option<(usize, T)>>,
    /// The address of the latest recorder found thread-local (0: none),
    /// so that finding it out (a thread's start) is not repeated at each
    /// call under it. Wrong only if the global recorder later takes that
    /// address: its series are then registered at each use, still right.
    local: AtomicUsize,
}

impl<T> Default for PerRecorder<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> PerRecorder<T> {
    /// No handles kept yet.
    pub(crate) const fn new() -> Self {
        PerRecorder {
            kept: RwLock::new(None),
            local: AtomicUsize::new(0),
        }
    }

    /// `with(handles)` on the handles kept for the current recorder, made
    /// by `make` if none are; `None` (and `with` not called) when the
    /// current recorder's handles are not kept: a thread-local recorder,
    /// or none at all.
    pub(crate) fn with<R>(
        &self,
        make: impl FnOnce() -> T,
        with: impl FnOnce(&T) -> R,
    ) -> Option<R> {
        let current = current_recorder()?;
        if let Ok(kept) = self.kept.read()
            && let Some((recorder, handles)) = kept.as_ref()
            && *recorder == current
        {
            return Some(with(handles));
        }
        if self.local.load(Ordering::Relaxed) == current || global_recorder() != Some(current) {
            self.local.store(current, Ordering::Relaxed);
            return None;
        }
        let mut kept = self.kept.write().ok()?;
        let handles = &kept.insert((current, make())).1;
        Some(with(handles))
    }
}

/// The address of the recorder the facade's macros use on this thread
/// now; `None` for a recorder of no size (the facade's no-op one when
/// none is installed: such values need not have an address of their own).
fn current_recorder() -> Option<usize> {
    ::metrics::with_recorder(|recorder: &dyn Recorder| {
        (size_of_val(recorder) > 0).then(|| std::ptr::from_ref(recorder).cast::<()>() as usize)
    })
}

/// The address of the global recorder, `None` if there is none: the
/// current recorder of a new thread (thread-local recorders are the
/// setting thread's only). Runs once per recorder change seen, not per
/// call.
fn global_recorder() -> Option<usize> {
    std::thread::scope(|scope| {
        std::thread::Builder::new()
            .name("annals-metrics-probe".into())
            .spawn_scoped(scope, current_recorder)
            .ok()?
            .join()
            .ok()
            .flatten()
    })
}

fn to_u64(n: usize) -> u64 {
    u64::try_from(n).unwrap_or(u64::MAX)
}
