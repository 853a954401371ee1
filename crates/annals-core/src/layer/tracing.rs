//! [`TracingLayer`]: one `tracing` span per call of a backend (feature
//! `tracing`).

use std::hash::{Hash, Hasher};
use std::time::Duration;

use ::tracing::field::Empty;
use ::tracing::{Instrument, Level, Span};

use super::{Call, Method, Observe, Observer, Outcome, expectation_kind};
use crate::error::Error;
use crate::event::StreamId;

/// The `tracing` target of every span and event of [`TracingLayer`]:
/// filter with `RUST_LOG=annals=debug`.
pub const TARGET: &str = "annals";

/// How a stream id shows in spans and events ([`TracingLayer::with_streams`]).
///
/// Error messages name the stream they are about, so with `Hashed` and
/// `Hidden` an error shows only its kind (`error.kind`), never its message.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Default)]
#[non_exhaustive]
pub enum StreamIds {
    /// The id as it is (the default).
    #[default]
    Plain,
    /// A 64-bit hash of the id in hex (`std`'s SipHash with fixed keys,
    /// stable within a build): spans of one stream can be told apart and
    /// grouped without the id itself. Not a secret: an id that can be
    /// guessed can be confirmed by hashing it.
    Hashed,
    /// No stream field at all.
    Hidden,
}

impl StreamIds {
    fn show(self, stream: &StreamId) -> Option<String> {
        match self {
            StreamIds::Plain => Some(stream.as_str().to_owned()),
            StreamIds::Hashed => {
                let mut hasher = std::hash::DefaultHasher::new();
                stream.as_str().hash(&mut hasher);
                Some(format!("{:016x}", hasher.finish()))
            }
            StreamIds::Hidden => None,
        }
    }
}

/// The layer that opens one `tracing` span per call of a backend, named
/// `annals.<method>` (`annals.append`, `annals.read_all`, …), target
/// [`TARGET`]. The spans of the calls made all the time — appends, aux
/// writes, reads and lookups — are `DEBUG`: under a subscriber at `INFO`
/// they are filtered out where they are made and cost next to nothing.
/// Deletions, truncations, compaction, verification and close are `INFO`
/// spans. The fields are in the README's "Observability" section; errors
/// are recorded on the span (`outcome = "error"`, `error.kind`,
/// `error.message`), and events mark a failed expectation or condition
/// (`INFO`), an idempotent replay (`INFO`), an unavailable backend or
/// unknown outcome (`WARN`) and corruption (`ERROR`): children of the
/// call's span, or where it is filtered out, events of their own naming
/// the `backend` and `operation`.
///
/// ```
/// use annals_core::layer::{LayerExt, TracingLayer};
/// # fn wrap(store: impl annals_core::LogBackend) {
/// let store = store.layer(TracingLayer::new().backend("redb"));
/// # }
/// ```
#[derive(Clone, Copy, Debug, Default)]
pub struct TracingLayer {
    streams: StreamIds,
}

impl TracingLayer {
    /// A tracing layer naming backends by their type and showing stream
    /// ids as they are; [`Observe::backend`] names the backend.
    #[allow(clippy::new_ret_no_self)]
    pub fn new() -> Observe<TracingLayer> {
        Observe::new(TracingLayer::default())
    }

    /// A tracing layer showing stream ids as `streams` says.
    pub fn with_streams(streams: StreamIds) -> Observe<TracingLayer> {
        Observe::new(TracingLayer { streams })
    }
}

/// The span of `$call`, with every field it may record: those known as
/// the call begins given at once (one dispatch to the subscriber, which
/// formats them together; evaluated only if the span is enabled), the
/// others empty until the call ends. `$stream`: the stream id to show.
macro_rules! call_span {
    ($level:expr, $name:literal, $call:expr, $stream:expr) => {{
        let call: &Call<'_> = $call;
        let append = call.method.is_append();
        let writes = append || call.aux_writes > 0;
        ::tracing::span!(
            target: TARGET,
            $level,
            $name,
            backend = call.backend,
            stream = $stream,
            streams = append.then_some(call.streams),
            events = writes.then_some(call.events),
            bytes = writes.then_some(call.bytes),
            aux_writes = writes.then_some(call.aux_writes),
            expected = call.expected.map(expectation_kind),
            conditional = append.then_some(call.conditional),
            count = call.count,
            direction = call.direction.map(direction_name),
            from = call.from,
            filtered = (call.method == Method::ReadAll).then_some(call.filtered),
            first_version = Empty,
            last_version = Empty,
            first_position = Empty,
            last_position = Empty,
            replayed = Empty,
            page_size = Empty,
            head = Empty,
            version = Empty,
            listed = Empty,
            outcome = Empty,
            error.kind = Empty,
            error.message = Empty,
        )
    }};
}

fn direction_name(direction: crate::Direction) -> &'static str {
    match direction {
        crate::Direction::Forward => "forward",
        crate::Direction::Backward => "backward",
    }
}

/// The span of `call`, showing `stream` as its stream.
fn span_of(call: &Call<'_>, stream: Option<&str>) -> Span {
    match call.method {
        Method::Append => call_span!(Level::DEBUG, "annals.append", call, stream),
        Method::AppendWith => call_span!(Level::DEBUG, "annals.append_with", call, stream),
        Method::AppendBatch => call_span!(Level::DEBUG, "annals.append_batch", call, stream),
        Method::ReadStream => call_span!(Level::DEBUG, "annals.read_stream", call, stream),
        Method::ReadAll => call_span!(Level::DEBUG, "annals.read_all", call, stream),
        Method::StreamVersion => call_span!(Level::DEBUG, "annals.stream_version", call, stream),
        Method::StreamExists => call_span!(Level::DEBUG, "annals.stream_exists", call, stream),
        Method::ListStreams => call_span!(Level::DEBUG, "annals.list_streams", call, stream),
        Method::DeleteStream => call_span!(Level::INFO, "annals.delete_stream", call, stream),
        Method::TruncateStream => call_span!(Level::INFO, "annals.truncate_stream", call, stream),
        Method::Compact => call_span!(Level::INFO, "annals.compact", call, stream),
        Method::DiskBytes => call_span!(Level::DEBUG, "annals.disk_bytes", call, stream),
        Method::HasEvents => call_span!(Level::DEBUG, "annals.has_events", call, stream),
        Method::Health => call_span!(Level::DEBUG, "annals.health", call, stream),
        Method::Close => call_span!(Level::INFO, "annals.close", call, stream),
        Method::Verify => call_span!(Level::INFO, "annals.verify", call, stream),
        Method::AuxGet => call_span!(Level::DEBUG, "annals.aux_get", call, stream),
        Method::AuxScan => call_span!(Level::DEBUG, "annals.aux_scan", call, stream),
        Method::AuxWrite => call_span!(Level::DEBUG, "annals.aux_write", call, stream),
        Method::AuxPut => call_span!(Level::DEBUG, "annals.aux_put", call, stream),
        Method::AuxDelete => call_span!(Level::DEBUG, "annals.aux_delete", call, stream),
    }
}

/// A notable event of a call, at `$level`: a child of the call's span
/// `$span`, or where that span is filtered out (a `DEBUG` span under a
/// subscriber at `INFO`), an event of its own in the current context,
/// naming the call's backend and operation.
macro_rules! notable {
    ($level:ident, $span:expr, $call:expr, $($fields:tt)+) => {
        if $span.is_disabled() {
            ::tracing::$level!(
                target: TARGET,
                backend = $call.backend,
                operation = $call.method.name(),
                $($fields)+
            )
        } else {
            ::tracing::$level!(target: TARGET, parent: $span, $($fields)+)
        }
    };
}

impl Observer for TracingLayer {
    type Scope = Span;

    fn begin(&self, call: &Call<'_>) -> Span {
        // A plain id is given as the span is made; a hash is made only
        // once the span is known to be enabled.
        let plain = match self.streams {
            StreamIds::Plain => call.stream.map(StreamId::as_str),
            StreamIds::Hashed | StreamIds::Hidden => None,
        };
        let span = span_of(call, plain);
        if self.streams == StreamIds::Hashed
            && !span.is_disabled()
            && let Some(hashed) = call.stream.and_then(|s| self.streams.show(s))
        {
            span.record("stream", hashed);
        }
        span
    }

    fn within<F: Future + Send>(
        &self,
        span: &Span,
        call: F,
    ) -> impl Future<Output = F::Output> + Send {
        call.instrument(span.clone())
    }

    fn end(&self, span: Span, call: &Call<'_>, _: Duration, outcome: Outcome<'_>) {
        // Each outcome's fields in one record (one dispatch to the
        // subscriber), if the span is enabled; the notable events in any
        // case.
        let enabled = !span.is_disabled();
        match outcome {
            Outcome::Failed(error) => {
                if enabled {
                    let message = self.message(error);
                    ::tracing::record_all!(
                        span,
                        outcome = "error",
                        error.kind = error.kind(),
                        error.message = message.as_deref(),
                    );
                }
                self.error_event(&span, call, error);
            }
            Outcome::Appended { results, replayed } => {
                let (first, last) = (results.first(), results.last());
                if enabled {
                    ::tracing::record_all!(
                        span,
                        first_version = first.map(|r| r.first_version.0),
                        last_version = last.map(|r| r.last_version.0),
                        first_position = first.map(|r| r.first_position.0),
                        last_position = last.map(|r| r.last_position.0),
                        replayed = replayed,
                        outcome = "ok",
                    );
                }
                if replayed {
                    notable!(
                        info,
                        &span,
                        call,
                        first_position = first.map(|r| r.first_position.0),
                        last_position = last.map(|r| r.last_position.0),
                        "idempotent replay: the events were already written, nothing was written again"
                    );
                }
            }
            _ if !enabled => {}
            Outcome::Page { events, head } => {
                ::tracing::record_all!(span, page_size = events, head = head.0, outcome = "ok");
            }
            Outcome::Version(version) => {
                ::tracing::record_all!(span, version = version.0, outcome = "ok");
            }
            Outcome::Listed(items) => {
                ::tracing::record_all!(span, listed = items, outcome = "ok");
            }
            Outcome::Answer(_)
            | Outcome::AuxValue(_)
            | Outcome::DiskBytes(_)
            | Outcome::Verified(_)
            | Outcome::Done => {
                span.record("outcome", "ok");
            }
        }
    }
}

impl TracingLayer {
    /// An error's message, unless stream ids must not show: messages name
    /// the stream they are about.
    fn message(&self, error: &Error) -> Option<String> {
        (self.streams == StreamIds::Plain).then(|| error.to_string())
    }

    /// The event a notable error gets, besides its fields on the span.
    fn error_event(&self, span: &Span, call: &Call<'_>, error: &Error) {
        match error.root() {
            Error::WrongExpectedVersion {
                expected, actual, ..
            } => notable!(
                info,
                span,
                call,
                stream = call.stream.and_then(|s| self.streams.show(s)),
                expected = %expected,
                actual = actual.map(|v| v.0),
                part = error.part(),
                "expectation failed"
            ),
            Error::AppendConditionFailed { .. } => notable!(
                info,
                span,
                call,
                part = error.part(),
                "append condition failed"
            ),
            Error::Corruption { .. } => notable!(
                error,
                span,
                call,
                error = self.message(error).as_deref(),
                "corruption"
            ),
            Error::Unavailable { .. } | Error::OutcomeUnknown { .. } => notable!(
                warn,
                span,
                call,
                kind = error.kind(),
                error = self.message(error).as_deref(),
                "backend unavailable or write outcome unknown"
            ),
            _ => {}
        }
    }
}
