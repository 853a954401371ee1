//! Layers: behaviour that wraps any [`LogBackend`] into another one, the
//! backend itself untouched (OpenDAL's model).
//!
//! A [`Layer`] takes a backend and answers a new backend that forwards
//! every call to it, doing something around the calls (tracing, metrics,
//! checks…). [`LayerExt::layer`] adds one to any backend — a concrete
//! store, an [`Arc<dyn LogBackend>`](LogBackend) such as `annals::Store`,
//! or a third-party backend — and layers stack:
//!
//! ```
//! use std::sync::Arc;
//! use annals_core::layer::{LayerExt, Observe};
//! use annals_core::LogBackend;
//! # fn wrap(store: Arc<dyn LogBackend>, observer: impl annals_core::layer::Observer) {
//! let store: Arc<dyn LogBackend> = Arc::new(store.layer(Observe::new(observer)));
//! # }
//! ```
//!
//! A store without a layer is the backend itself: nothing is added on its
//! calls.
//!
//! Most layers only need to see calls go by: they implement [`Observer`]
//! and are added with [`Observe`], which forwards every method of the
//! trait (the default ones too, so a backend's own `append` or
//! `stream_exists` is still the one called) and reports each call's
//! [`Call`] and [`Outcome`] to the observer. The tracing and metrics layers
//! are observers.

mod check;
pub use self::check::{CheckLayer, Checked};
#[cfg(feature = "tracing")]
mod tracing;
#[cfg(feature = "tracing")]
pub use self::tracing::{StreamIds, TARGET, TracingLayer};
#[cfg(feature = "metrics")]
mod metrics;
#[cfg(feature = "metrics")]
pub(crate) use self::metrics::PerRecorder;
#[cfg(feature = "metrics")]
pub use self::metrics::{MetricsLayer, names as metric_names};

use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;

use crate::backend::{
    Append, AppendResult, Batch, Capabilities, Direction, HeadWatch, Limits, LogBackend, Page,
    StreamInfo,
};
use crate::error::{Error, Result};
use crate::event::{NewEvent, Position, StreamId, Version};
use crate::expect::{AuxWrite, ExpectedVersion, Query};
use crate::verify::{VerifyProgress, VerifyReport};

/// Wraps a backend `B` into another backend.
///
/// Implement it for behaviour that must change or check calls; to only see
/// them, implement [`Observer`] and use [`Observe`].
pub trait Layer<B: LogBackend> {
    /// The wrapped backend.
    type Backend: LogBackend;

    /// Wraps `inner`.
    fn layer(self, inner: B) -> Self::Backend;
}

/// [`LayerExt::layer`] on every backend.
pub trait LayerExt: LogBackend + Sized {
    /// This backend wrapped in `layer`: `store.layer(a).layer(b)` calls `b`
    /// first, then `a`, then the store.
    fn layer<L: Layer<Self>>(self, layer: L) -> L::Backend {
        layer.layer(self)
    }
}

impl<B: LogBackend + Sized> LayerExt for B {}

/// A shared backend is a backend: what makes `annals::Store` (an
/// `Arc<dyn LogBackend>`) layerable. Every method is forwarded.
#[async_trait]
impl<T: LogBackend + ?Sized> LogBackend for Arc<T> {
    fn capabilities(&self) -> Capabilities {
        (**self).capabilities()
    }
    fn limits(&self) -> Limits {
        (**self).limits()
    }
    async fn append(
        &self,
        stream: &StreamId,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
    ) -> Result<AppendResult> {
        (**self).append(stream, expected, events).await
    }
    async fn append_with(&self, append: Append) -> Result<AppendResult> {
        (**self).append_with(append).await
    }
    async fn append_batch(&self, batch: Batch) -> Result<Vec<AppendResult>> {
        (**self).append_batch(batch).await
    }
    async fn read_stream(
        &self,
        stream: &StreamId,
        from: Version,
        count: usize,
        direction: Direction,
    ) -> Result<Page> {
        (**self).read_stream(stream, from, count, direction).await
    }
    async fn read_all(
        &self,
        from: Position,
        count: usize,
        direction: Direction,
        query: Option<&Query>,
    ) -> Result<Page> {
        (**self).read_all(from, count, direction, query).await
    }
    async fn stream_version(&self, stream: &StreamId) -> Result<Version> {
        (**self).stream_version(stream).await
    }
    async fn stream_exists(&self, stream: &StreamId) -> Result<bool> {
        (**self).stream_exists(stream).await
    }
    async fn list_streams(
        &self,
        after: Option<&StreamId>,
        limit: usize,
    ) -> Result<Vec<StreamInfo>> {
        (**self).list_streams(after, limit).await
    }
    async fn delete_stream(&self, stream: &StreamId, expected: ExpectedVersion) -> Result<()> {
        (**self).delete_stream(stream, expected).await
    }
    async fn truncate_stream(&self, stream: &StreamId, before: Version) -> Result<()> {
        (**self).truncate_stream(stream, before).await
    }
    async fn compact(&self) -> Result<()> {
        (**self).compact().await
    }
    async fn disk_bytes(&self) -> Result<u64> {
        (**self).disk_bytes().await
    }
    async fn has_events(&self) -> Result<bool> {
        (**self).has_events().await
    }
    async fn health(&self) -> Result<()> {
        (**self).health().await
    }
    async fn close(&self) -> Result<()> {
        (**self).close().await
    }
    fn watch_head(&self) -> Result<HeadWatch> {
        (**self).watch_head()
    }
    async fn verify(&self, progress: Option<VerifyProgress>) -> Result<VerifyReport> {
        (**self).verify(progress).await
    }
    async fn aux_get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        (**self).aux_get(key).await
    }
    async fn aux_scan(
        &self,
        prefix: &[u8],
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        (**self).aux_scan(prefix, after, limit).await
    }
    async fn aux_write(&self, writes: Vec<AuxWrite>) -> Result<()> {
        (**self).aux_write(writes).await
    }
    async fn aux_put(&self, key: &[u8], value: &[u8]) -> Result<()> {
        (**self).aux_put(key, value).await
    }
    async fn aux_delete(&self, key: &[u8]) -> Result<()> {
        (**self).aux_delete(key).await
    }
}

/// A method of [`LogBackend`] that [`Observe`] reports. The cheap, local
/// ones (`capabilities`, `limits`, `watch_head`) are forwarded unobserved.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
#[non_exhaustive]
pub enum Method {
    /// [`LogBackend::append`].
    Append,
    /// [`LogBackend::append_with`].
    AppendWith,
    /// [`LogBackend::append_batch`].
    AppendBatch,
    /// [`LogBackend::read_stream`].
    ReadStream,
    /// [`LogBackend::read_all`].
    ReadAll,
    /// [`LogBackend::stream_version`].
    StreamVersion,
    /// [`LogBackend::stream_exists`].
    StreamExists,
    /// [`LogBackend::list_streams`].
    ListStreams,
    /// [`LogBackend::delete_stream`].
    DeleteStream,
    /// [`LogBackend::truncate_stream`].
    TruncateStream,
    /// [`LogBackend::compact`].
    Compact,
    /// [`LogBackend::disk_bytes`].
    DiskBytes,
    /// [`LogBackend::has_events`].
    HasEvents,
    /// [`LogBackend::health`].
    Health,
    /// [`LogBackend::close`].
    Close,
    /// [`LogBackend::verify`].
    Verify,
    /// [`LogBackend::aux_get`].
    AuxGet,
    /// [`LogBackend::aux_scan`].
    AuxScan,
    /// [`LogBackend::aux_write`].
    AuxWrite,
    /// [`LogBackend::aux_put`].
    AuxPut,
    /// [`LogBackend::aux_delete`].
    AuxDelete,
}

impl Method {
    /// The method's name, as in the trait: `append`, `read_all`, …
    pub fn name(self) -> &'static str {
        match self {
            Method::Append => "append",
            Method::AppendWith => "append_with",
            Method::AppendBatch => "append_batch",
            Method::ReadStream => "read_stream",
            Method::ReadAll => "read_all",
            Method::StreamVersion => "stream_version",
            Method::StreamExists => "stream_exists",
            Method::ListStreams => "list_streams",
            Method::DeleteStream => "delete_stream",
            Method::TruncateStream => "truncate_stream",
            Method::Compact => "compact",
            Method::DiskBytes => "disk_bytes",
            Method::HasEvents => "has_events",
            Method::Health => "health",
            Method::Close => "close",
            Method::Verify => "verify",
            Method::AuxGet => "aux_get",
            Method::AuxScan => "aux_scan",
            Method::AuxWrite => "aux_write",
            Method::AuxPut => "aux_put",
            Method::AuxDelete => "aux_delete",
        }
    }

    /// Whether the method appends events (`append`, `append_with`,
    /// `append_batch`).
    pub fn is_append(self) -> bool {
        matches!(
            self,
            Method::Append | Method::AppendWith | Method::AppendBatch
        )
    }

    /// Whether the method reads a page of events (`read_stream`,
    /// `read_all`).
    pub fn is_read(self) -> bool {
        matches!(self, Method::ReadStream | Method::ReadAll)
    }
}

/// What a call asked for, as an [`Observer`] sees it before it runs. Only
/// sizes and kinds, never event data.
#[derive(Clone, Copy, Debug)]
#[non_exhaustive]
pub struct Call<'a> {
    /// The method.
    pub method: Method,
    /// The name of the backend (see [`Observe::backend`]).
    pub backend: &'a str,
    /// The stream of a call about one stream (of the first part of a
    /// batch).
    pub stream: Option<&'a StreamId>,
    /// Parts of a batch; 1 for another append.
    pub streams: usize,
    /// Events written.
    pub events: usize,
    /// Bytes written: events' data and metadata, aux keys and values
    /// (what counts against `max_append_bytes`).
    pub bytes: usize,
    /// Aux writes.
    pub aux_writes: usize,
    /// The expectation of an append or delete (of the first part of a
    /// batch).
    pub expected: Option<ExpectedVersion>,
    /// Whether an append or batch carries a DCB condition (\[A8\]).
    pub conditional: bool,
    /// The page size asked for: a read's `count`, a listing's `limit`.
    pub count: Option<usize>,
    /// A read's direction.
    pub direction: Option<Direction>,
    /// Where a read starts: a version for `read_stream`, a position for
    /// `read_all`, the `before` version of a truncation.
    pub from: Option<u64>,
    /// Whether a `read_all` is filtered by a query.
    pub filtered: bool,
}

impl<'a> Call<'a> {
    fn new(method: Method, backend: &'a str) -> Self {
        Call {
            method,
            backend,
            stream: None,
            streams: 0,
            events: 0,
            bytes: 0,
            aux_writes: 0,
            expected: None,
            conditional: false,
            count: None,
            direction: None,
            from: None,
            filtered: false,
        }
    }

    fn on(mut self, stream: &'a StreamId) -> Self {
        self.stream = Some(stream);
        self
    }

    fn writing(mut self, events: &[NewEvent], aux: &[AuxWrite]) -> Self {
        self.events = self.events.saturating_add(events.len());
        self.bytes = events
            .iter()
            .map(NewEvent::payload_bytes)
            .chain(aux.iter().map(AuxWrite::payload_bytes))
            .fold(self.bytes, usize::saturating_add);
        self.aux_writes = self.aux_writes.saturating_add(aux.len());
        self
    }

    fn reading(mut self, from: u64, count: usize, direction: Direction) -> Self {
        self.from = Some(from);
        self.count = Some(count);
        self.direction = Some(direction);
        self
    }
}

/// A short, stable name of an expectation's kind for telemetry: `any`,
/// `no_stream`, `stream_exists` or `exact`.
pub fn expectation_kind(expected: ExpectedVersion) -> &'static str {
    match expected {
        ExpectedVersion::Any => "any",
        ExpectedVersion::NoStream => "no_stream",
        ExpectedVersion::StreamExists => "stream_exists",
        ExpectedVersion::Exact(_) => "exact",
    }
}

/// What a call answered, as an [`Observer`] sees it. Only sizes, versions
/// and positions, never event data.
#[derive(Clone, Copy, Debug)]
#[non_exhaustive]
pub enum Outcome<'a> {
    /// An append or a batch committed (one result per part).
    Appended {
        /// Where the events landed.
        results: &'a [AppendResult],
        /// Whether the store answered an earlier write's result (an
        /// idempotent retry, \[A5\]) instead of writing. Known for sure
        /// only when that write had committed before the call began (its
        /// positions were at or below the head then); a retry racing the
        /// first write shows as `false`.
        replayed: bool,
    },
    /// A read answered a page.
    Page {
        /// Events in the page.
        events: usize,
        /// The head of the page's snapshot.
        head: Position,
    },
    /// A stream's version.
    Version(Version),
    /// A listing answered this many items (streams, aux entries).
    Listed(usize),
    /// A yes-or-no answer (`stream_exists`, `has_events`).
    Answer(bool),
    /// An aux value of this many bytes, or none.
    AuxValue(Option<usize>),
    /// The store's size on disk.
    DiskBytes(u64),
    /// A verification's report.
    Verified(&'a VerifyReport),
    /// A call that answers nothing succeeded.
    Done,
    /// The call failed.
    Failed(&'a Error),
}

/// Sees every call of a backend wrapped with [`Observe`]: [`begin`]
/// before it runs, [`end`] after, and [`within`] around it.
///
/// [`begin`]: Observer::begin
/// [`end`]: Observer::end
/// [`within`]: Observer::within
pub trait Observer: Send + Sync + std::fmt::Debug + 'static {
    /// What the observer keeps from a call's start to its end (a span, a
    /// start time…).
    type Scope: Send;

    /// A call begins.
    fn begin(&self, call: &Call<'_>) -> Self::Scope;

    /// Runs the call's future, e.g. inside a span. The default runs it as
    /// it is.
    fn within<F: Future + Send>(
        &self,
        scope: &Self::Scope,
        call: F,
    ) -> impl Future<Output = F::Output> + Send {
        let _ = scope;
        call
    }

    /// The call ended after `elapsed`, with `outcome`.
    fn end(
        &self,
        scope: Self::Scope,
        call: &Call<'_>,
        elapsed: std::time::Duration,
        outcome: Outcome<'_>,
    );
}

/// The layer that reports every call of a backend to an [`Observer`].
///
/// ```
/// use annals_core::layer::{Call, LayerExt, Observe, Observer, Outcome};
/// use std::sync::atomic::{AtomicU64, Ordering};
///
/// /// Counts failed calls.
/// #[derive(Debug, Default)]
/// struct Failures(AtomicU64);
///
/// impl Observer for Failures {
///     type Scope = ();
///     fn begin(&self, _: &Call<'_>) {}
///     fn end(&self, _: (), _: &Call<'_>, _: std::time::Duration, outcome: Outcome<'_>) {
///         if let Outcome::Failed(_) = outcome {
///             self.0.fetch_add(1, Ordering::Relaxed);
///         }
///     }
/// }
/// # fn wrap(store: impl annals_core::LogBackend) {
/// let store = store.layer(Observe::new(Failures::default()).backend("redb"));
/// # }
/// ```
#[derive(Clone, Debug)]
pub struct Observe<O> {
    observer: O,
    backend: Option<Arc<str>>,
}

impl<O: Observer> Observe<O> {
    /// A layer reporting to `observer`.
    pub fn new(observer: O) -> Self {
        Observe {
            observer,
            backend: None,
        }
    }

    /// Names the backend in what is reported ([`Call::backend`]), e.g.
    /// `redb` or `postgres`. Without it, the backend's Rust type name
    /// without its module paths (`KvStore<RedbEngine>`).
    #[must_use]
    pub fn backend(mut self, name: impl Into<Arc<str>>) -> Self {
        self.backend = Some(name.into());
        self
    }
}

impl<B: LogBackend, O: Observer> Layer<B> for Observe<O> {
    type Backend = Observed<B, O>;

    fn layer(self, inner: B) -> Observed<B, O> {
        let backend = self
            .backend
            .unwrap_or_else(|| short_type_name(std::any::type_name::<B>()).into());
        // Kept to tell an idempotent replay from a new write; a store that
        // gives no watch (closed) just reports no replays.
        let head = inner.watch_head().ok();
        Observed {
            inner,
            observer: self.observer,
            backend,
            head,
        }
    }
}

/// A Rust type name without its module paths:
/// `a::b::KvStore<c::Engine>` → `KvStore<Engine>`.
fn short_type_name(full: &str) -> String {
    let mut short = String::with_capacity(full.len());
    let mut segment = String::new();
    for c in full.chars() {
        if c.is_alphanumeric() || c == '_' || c == ':' {
            segment.push(c);
        } else {
            short.push_str(segment.rsplit("::").next().unwrap_or(""));
            segment.clear();
            short.push(c);
        }
    }
    short.push_str(segment.rsplit("::").next().unwrap_or(""));
    short
}

/// A backend wrapped by [`Observe`]: every call is forwarded to the inner
/// backend and reported to the observer.
#[derive(Debug)]
pub struct Observed<B, O> {
    inner: B,
    observer: O,
    backend: Arc<str>,
    head: Option<HeadWatch>,
}

impl<B: LogBackend, O: Observer> Observed<B, O> {
    /// The wrapped backend.
    pub fn inner(&self) -> &B {
        &self.inner
    }

    /// The observer.
    pub fn observer(&self) -> &O {
        &self.observer
    }

    /// The head now, as far as the watch kept at wrap time knows.
    fn head_now(&self) -> Option<Position> {
        self.head.as_ref().map(|watch| *watch.borrow())
    }

    /// Runs `fut` as the call `call`, reporting its outcome as `report`
    /// makes it.
    async fn observe<T, F>(
        &self,
        call: Call<'_>,
        fut: F,
        report: impl FnOnce(&T) -> Outcome<'_>,
    ) -> Result<T>
    where
        F: Future<Output = Result<T>> + Send,
    {
        let scope = self.observer.begin(&call);
        let start = Instant::now();
        let result = self.observer.within(&scope, fut).await;
        let elapsed = start.elapsed();
        let outcome = match &result {
            Ok(value) => report(value),
            Err(e) => Outcome::Failed(e),
        };
        self.observer.end(scope, &call, elapsed, outcome);
        result
    }

    /// Observes an append or a batch: a replay is a result whose last
    /// position was already at or below the head when the call began
    /// (a new write always lands above it).
    async fn observe_append<T, F>(
        &self,
        call: Call<'_>,
        fut: F,
        results: impl FnOnce(&T) -> &[AppendResult],
    ) -> Result<T>
    where
        F: Future<Output = Result<T>> + Send,
    {
        let head_before = self.head_now();
        self.observe(call, fut, |value| {
            let results = results(value);
            let replayed = match (head_before, results.iter().map(|r| r.last_position).max()) {
                (Some(head), Some(last)) => last <= head,
                _ => false,
            };
            Outcome::Appended { results, replayed }
        })
        .await
    }

    fn call(&self, method: Method) -> Call<'_> {
        Call::new(method, &self.backend)
    }
}

#[async_trait]
impl<B: LogBackend, O: Observer> LogBackend for Observed<B, O> {
    fn capabilities(&self) -> Capabilities {
        self.inner.capabilities()
    }

    fn limits(&self) -> Limits {
        self.inner.limits()
    }

    async fn append(
        &self,
        stream: &StreamId,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
    ) -> Result<AppendResult> {
        let mut call = self.call(Method::Append).on(stream).writing(&events, &[]);
        call.streams = 1;
        call.expected = Some(expected);
        self.observe_append(
            call,
            self.inner.append(stream, expected, events),
            std::slice::from_ref,
        )
        .await
    }

    async fn append_with(&self, append: Append) -> Result<AppendResult> {
        // The call borrows the stream the append moves into the backend.
        let stream = append.stream.clone();
        let mut call = self
            .call(Method::AppendWith)
            .on(&stream)
            .writing(&append.events, &append.aux);
        call.streams = 1;
        call.expected = Some(append.expected);
        call.conditional = append.condition.is_some();
        self.observe_append(call, self.inner.append_with(append), std::slice::from_ref)
            .await
    }

    async fn append_batch(&self, batch: Batch) -> Result<Vec<AppendResult>> {
        let first = batch.parts.first().map(|p| (p.stream.clone(), p.expected));
        let mut call = self.call(Method::AppendBatch).writing(&[], &batch.aux);
        for part in &batch.parts {
            call = call.writing(&part.events, &[]);
        }
        if let Some((stream, expected)) = &first {
            call = call.on(stream);
            call.expected = Some(*expected);
        }
        call.streams = batch.parts.len();
        call.conditional = batch.condition.is_some();
        self.observe_append(call, self.inner.append_batch(batch), Vec::as_slice)
            .await
    }

    async fn read_stream(
        &self,
        stream: &StreamId,
        from: Version,
        count: usize,
        direction: Direction,
    ) -> Result<Page> {
        let call = self
            .call(Method::ReadStream)
            .on(stream)
            .reading(from.0, count, direction);
        self.observe(
            call,
            self.inner.read_stream(stream, from, count, direction),
            page,
        )
        .await
    }

    async fn read_all(
        &self,
        from: Position,
        count: usize,
        direction: Direction,
        query: Option<&Query>,
    ) -> Result<Page> {
        let mut call = self.call(Method::ReadAll).reading(from.0, count, direction);
        call.filtered = query.is_some();
        self.observe(
            call,
            self.inner.read_all(from, count, direction, query),
            page,
        )
        .await
    }

    async fn stream_version(&self, stream: &StreamId) -> Result<Version> {
        let call = self.call(Method::StreamVersion).on(stream);
        self.observe(call, self.inner.stream_version(stream), |v| {
            Outcome::Version(*v)
        })
        .await
    }

    async fn stream_exists(&self, stream: &StreamId) -> Result<bool> {
        let call = self.call(Method::StreamExists).on(stream);
        self.observe(call, self.inner.stream_exists(stream), answer)
            .await
    }

    async fn list_streams(
        &self,
        after: Option<&StreamId>,
        limit: usize,
    ) -> Result<Vec<StreamInfo>> {
        let mut call = self.call(Method::ListStreams);
        call.stream = after;
        call.count = Some(limit);
        self.observe(call, self.inner.list_streams(after, limit), |list| {
            Outcome::Listed(list.len())
        })
        .await
    }

    async fn delete_stream(&self, stream: &StreamId, expected: ExpectedVersion) -> Result<()> {
        let mut call = self.call(Method::DeleteStream).on(stream);
        call.expected = Some(expected);
        self.observe(call, self.inner.delete_stream(stream, expected), done)
            .await
    }

    async fn truncate_stream(&self, stream: &StreamId, before: Version) -> Result<()> {
        let mut call = self.call(Method::TruncateStream).on(stream);
        call.from = Some(before.0);
        self.observe(call, self.inner.truncate_stream(stream, before), done)
            .await
    }

    async fn compact(&self) -> Result<()> {
        self.observe(self.call(Method::Compact), self.inner.compact(), done)
            .await
    }

    async fn disk_bytes(&self) -> Result<u64> {
        self.observe(self.call(Method::DiskBytes), self.inner.disk_bytes(), |b| {
            Outcome::DiskBytes(*b)
        })
        .await
    }

    async fn has_events(&self) -> Result<bool> {
        self.observe(
            self.call(Method::HasEvents),
            self.inner.has_events(),
            answer,
        )
        .await
    }

    async fn health(&self) -> Result<()> {
        self.observe(self.call(Method::Health), self.inner.health(), done)
            .await
    }

    async fn close(&self) -> Result<()> {
        self.observe(self.call(Method::Close), self.inner.close(), done)
            .await
    }

    fn watch_head(&self) -> Result<HeadWatch> {
        self.inner.watch_head()
    }

    async fn verify(&self, progress: Option<VerifyProgress>) -> Result<VerifyReport> {
        self.observe(
            self.call(Method::Verify),
            self.inner.verify(progress),
            verified,
        )
        .await
    }

    async fn aux_get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        self.observe(self.call(Method::AuxGet), self.inner.aux_get(key), |v| {
            Outcome::AuxValue(v.as_ref().map(Vec::len))
        })
        .await
    }

    async fn aux_scan(
        &self,
        prefix: &[u8],
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        let mut call = self.call(Method::AuxScan);
        call.count = Some(limit);
        self.observe(call, self.inner.aux_scan(prefix, after, limit), |list| {
            Outcome::Listed(list.len())
        })
        .await
    }

    async fn aux_write(&self, writes: Vec<AuxWrite>) -> Result<()> {
        let call = self.call(Method::AuxWrite).writing(&[], &writes);
        self.observe(call, self.inner.aux_write(writes), done).await
    }

    async fn aux_put(&self, key: &[u8], value: &[u8]) -> Result<()> {
        let mut call = self.call(Method::AuxPut);
        call.aux_writes = 1;
        call.bytes = key.len().saturating_add(value.len());
        self.observe(call, self.inner.aux_put(key, value), done)
            .await
    }

    async fn aux_delete(&self, key: &[u8]) -> Result<()> {
        let mut call = self.call(Method::AuxDelete);
        call.aux_writes = 1;
        call.bytes = key.len();
        self.observe(call, self.inner.aux_delete(key), done).await
    }
}

fn page(page: &Page) -> Outcome<'_> {
    Outcome::Page {
        events: page.events.len(),
        head: page.head,
    }
}

fn answer(yes: &bool) -> Outcome<'_> {
    Outcome::Answer(*yes)
}

fn verified(report: &VerifyReport) -> Outcome<'_> {
    Outcome::Verified(report)
}

fn done(_: &()) -> Outcome<'_> {
    Outcome::Done
}

#[cfg(test)]
mod tests;
