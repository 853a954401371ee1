//! The checking layer: [`Checks`] in front of any backend (OpenDAL's
//! `CorrectnessCheckLayer`).

use async_trait::async_trait;

use crate::backend::{
    Append, AppendResult, Batch, Capabilities, Direction, HeadWatch, Limits, LogBackend, Page,
    StreamInfo,
};
use crate::check::Checks;
use crate::error::Result;
use crate::event::{NewEvent, Position, StreamId, Version};
use crate::expect::{AuxWrite, ExpectedVersion, Query};
use crate::layer::Layer;
use crate::verify::{VerifyProgress, VerifyReport};

/// The layer that makes a backend check every call before it runs it:
/// the input against the contract and the backend's [`Limits`], and that
/// the store is not closed ([`Checks`]). A call that fails a check fails
/// with the same typed error as on the stores annals ships (which check
/// without it), and the backend never sees it.
///
/// For a backend written directly against [`LogBackend`]: it then does
/// not repeat these checks. (`KvStore` and annals-postgres call
/// [`Checks`] themselves; the layer on them checks twice, harmlessly.)
///
/// ```
/// use annals_core::layer::{CheckLayer, LayerExt};
/// # fn wrap(store: impl annals_core::LogBackend) {
/// let store = store.layer(CheckLayer);
/// # }
/// ```
#[derive(Clone, Copy, Debug, Default)]
pub struct CheckLayer;

impl<B: LogBackend> Layer<B> for CheckLayer {
    type Backend = Checked<B>;

    fn layer(self, inner: B) -> Checked<B> {
        // Read-only stores answer their writes themselves: the layer does
        // not know which are.
        let checks = Checks::new(inner.limits(), false);
        Checked {
            inner,
            checks,
            inner_closed: tokio::sync::Mutex::new(false),
        }
    }
}

/// A backend behind [`CheckLayer`].
#[derive(Debug)]
pub struct Checked<B> {
    inner: B,
    checks: Checks,
    /// Whether the backend's own close succeeded: until then each close
    /// tries it again, one at a time.
    inner_closed: tokio::sync::Mutex<bool>,
}

impl<B> Checked<B> {
    /// The backend checked.
    pub fn inner(&self) -> &B {
        &self.inner
    }
}

#[async_trait]
impl<B: LogBackend> LogBackend for Checked<B> {
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
        let append = Append::new(stream.clone(), expected, events);
        self.checks.append(&append)?;
        self.inner.append(stream, expected, append.events).await
    }
    async fn append_with(&self, append: Append) -> Result<AppendResult> {
        self.checks.append(&append)?;
        self.inner.append_with(append).await
    }
    async fn append_batch(&self, batch: Batch) -> Result<Vec<AppendResult>> {
        self.checks.batch(&batch)?;
        self.inner.append_batch(batch).await
    }
    async fn read_stream(
        &self,
        stream: &StreamId,
        from: Version,
        count: usize,
        direction: Direction,
    ) -> Result<Page> {
        self.checks.read_stream(count)?;
        self.inner.read_stream(stream, from, count, direction).await
    }
    async fn read_all(
        &self,
        from: Position,
        count: usize,
        direction: Direction,
        query: Option<&Query>,
    ) -> Result<Page> {
        self.checks.read_all(count, query)?;
        self.inner.read_all(from, count, direction, query).await
    }
    async fn stream_version(&self, stream: &StreamId) -> Result<Version> {
        self.checks.open()?;
        self.inner.stream_version(stream).await
    }
    async fn stream_exists(&self, stream: &StreamId) -> Result<bool> {
        self.checks.open()?;
        self.inner.stream_exists(stream).await
    }
    async fn list_streams(
        &self,
        after: Option<&StreamId>,
        limit: usize,
    ) -> Result<Vec<StreamInfo>> {
        self.checks.list_streams(limit)?;
        self.inner.list_streams(after, limit).await
    }
    async fn delete_stream(&self, stream: &StreamId, expected: ExpectedVersion) -> Result<()> {
        self.checks.writable("delete_stream")?;
        self.inner.delete_stream(stream, expected).await
    }
    async fn truncate_stream(&self, stream: &StreamId, before: Version) -> Result<()> {
        self.checks.writable("truncate_stream")?;
        self.inner.truncate_stream(stream, before).await
    }
    async fn compact(&self) -> Result<()> {
        self.checks.writable("compact")?;
        self.inner.compact().await
    }
    async fn disk_bytes(&self) -> Result<u64> {
        self.checks.open()?;
        self.inner.disk_bytes().await
    }
    async fn has_events(&self) -> Result<bool> {
        self.checks.open()?;
        self.inner.has_events().await
    }
    async fn health(&self) -> Result<()> {
        self.checks.open()?;
        self.inner.health().await
    }
    async fn close(&self) -> Result<()> {
        // [M4]: the first close refuses every later call; the backend is
        // closed once, and a close it failed is tried again by the next.
        self.checks.close();
        let mut inner_closed = self.inner_closed.lock().await;
        if !*inner_closed {
            self.inner.close().await?;
            *inner_closed = true;
        }
        Ok(())
    }
    fn watch_head(&self) -> Result<HeadWatch> {
        self.checks.open()?;
        self.inner.watch_head()
    }
    async fn verify(&self, progress: Option<VerifyProgress>) -> Result<VerifyReport> {
        self.checks.open()?;
        self.inner.verify(progress).await
    }
    async fn aux_get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        self.checks.aux_get(key)?;
        self.inner.aux_get(key).await
    }
    async fn aux_scan(
        &self,
        prefix: &[u8],
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        self.checks.aux_scan(limit)?;
        self.inner.aux_scan(prefix, after, limit).await
    }
    async fn aux_write(&self, writes: Vec<AuxWrite>) -> Result<()> {
        self.checks.aux_write(&writes)?;
        self.inner.aux_write(writes).await
    }
    async fn aux_put(&self, key: &[u8], value: &[u8]) -> Result<()> {
        self.checks.aux_write(&[AuxWrite::put(key, value)])?;
        self.inner.aux_put(key, value).await
    }
    async fn aux_delete(&self, key: &[u8]) -> Result<()> {
        self.checks.aux_write(&[AuxWrite::delete(key)])?;
        self.inner.aux_delete(key).await
    }
}
