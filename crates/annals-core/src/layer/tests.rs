//! Every method of `LogBackend` goes through `Arc` and `Observe` to the
//! same method of the backend (a default method left unforwarded would
//! call the trait's default instead of the backend's own), and is
//! reported once.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

use super::*;
use crate::backend::Append;
use crate::event::NewEvent;

/// Records which of its methods were called; every one is overridden.
/// Its `close` fails as many times as the second field says.
#[derive(Debug, Default)]
struct Calls(Mutex<Vec<&'static str>>, AtomicU32);

impl Calls {
    fn called(&self, name: &'static str) {
        self.0.lock().expect("not poisoned").push(name);
    }
    fn take(&self) -> Vec<&'static str> {
        std::mem::take(&mut *self.0.lock().expect("not poisoned"))
    }
}

fn result() -> AppendResult {
    AppendResult {
        first_version: Version(0),
        last_version: Version(0),
        first_position: Position(1),
        last_position: Position(1),
    }
}

#[async_trait]
impl LogBackend for Calls {
    fn capabilities(&self) -> Capabilities {
        self.called("capabilities");
        Capabilities::ALL
    }
    fn limits(&self) -> Limits {
        self.called("limits");
        Limits::default()
    }
    async fn append(
        &self,
        _: &StreamId,
        _: ExpectedVersion,
        _: Vec<NewEvent>,
    ) -> Result<AppendResult> {
        self.called("append");
        Ok(result())
    }
    async fn append_with(&self, _: Append) -> Result<AppendResult> {
        self.called("append_with");
        Ok(result())
    }
    async fn append_batch(&self, _: Batch) -> Result<Vec<AppendResult>> {
        self.called("append_batch");
        Ok(vec![result()])
    }
    async fn read_stream(&self, _: &StreamId, _: Version, _: usize, _: Direction) -> Result<Page> {
        self.called("read_stream");
        Ok(Page::default())
    }
    async fn read_all(
        &self,
        _: Position,
        _: usize,
        _: Direction,
        _: Option<&Query>,
    ) -> Result<Page> {
        self.called("read_all");
        Ok(Page::default())
    }
    async fn stream_version(&self, _: &StreamId) -> Result<Version> {
        self.called("stream_version");
        Ok(Version(0))
    }
    async fn stream_exists(&self, _: &StreamId) -> Result<bool> {
        self.called("stream_exists");
        Ok(true)
    }
    async fn list_streams(&self, _: Option<&StreamId>, _: usize) -> Result<Vec<StreamInfo>> {
        self.called("list_streams");
        Ok(Vec::new())
    }
    async fn delete_stream(&self, _: &StreamId, _: ExpectedVersion) -> Result<()> {
        self.called("delete_stream");
        Ok(())
    }
    async fn truncate_stream(&self, _: &StreamId, _: Version) -> Result<()> {
        self.called("truncate_stream");
        Ok(())
    }
    async fn compact(&self) -> Result<()> {
        self.called("compact");
        Ok(())
    }
    async fn disk_bytes(&self) -> Result<u64> {
        self.called("disk_bytes");
        Ok(0)
    }
    async fn has_events(&self) -> Result<bool> {
        self.called("has_events");
        Ok(false)
    }
    async fn health(&self) -> Result<()> {
        self.called("health");
        Ok(())
    }
    async fn close(&self) -> Result<()> {
        self.called("close");
        let failing = self.1.load(Ordering::SeqCst);
        if failing > 0 {
            self.1.store(failing - 1, Ordering::SeqCst);
            return Err(Error::backend("closing", "the disk is gone"));
        }
        Ok(())
    }
    fn watch_head(&self) -> Result<HeadWatch> {
        self.called("watch_head");
        Err(Error::Closed)
    }
    async fn verify(&self, _: Option<VerifyProgress>) -> Result<VerifyReport> {
        self.called("verify");
        Ok(VerifyReport::default())
    }
    async fn aux_get(&self, _: &[u8]) -> Result<Option<Vec<u8>>> {
        self.called("aux_get");
        Ok(None)
    }
    async fn aux_scan(
        &self,
        _: &[u8],
        _: Option<&[u8]>,
        _: usize,
    ) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        self.called("aux_scan");
        Ok(Vec::new())
    }
    async fn aux_write(&self, _: Vec<AuxWrite>) -> Result<()> {
        self.called("aux_write");
        Ok(())
    }
    async fn aux_put(&self, _: &[u8], _: &[u8]) -> Result<()> {
        self.called("aux_put");
        Ok(())
    }
    async fn aux_delete(&self, _: &[u8]) -> Result<()> {
        self.called("aux_delete");
        Ok(())
    }
}

/// Records the methods it was told about.
#[derive(Debug, Default)]
struct Seen(Mutex<Vec<&'static str>>);

impl Observer for Arc<Seen> {
    type Scope = Method;
    fn begin(&self, call: &Call<'_>) -> Method {
        call.method
    }
    fn end(&self, method: Method, call: &Call<'_>, _: std::time::Duration, _: Outcome<'_>) {
        assert_eq!(method, call.method);
        self.0.lock().expect("not poisoned").push(method.name());
    }
}

/// Calls every method of the trait once, in the order of `ALL`.
async fn call_every_method(store: &dyn LogBackend) -> Result<()> {
    let stream = StreamId::new("s")?;
    let event = || vec![NewEvent::builder("E").build()];
    store.capabilities();
    store.limits();
    store.append(&stream, ExpectedVersion::Any, event()).await?;
    store
        .append_with(Append::new(stream.clone(), ExpectedVersion::Any, event()))
        .await?;
    store
        .append_batch(Batch::new(vec![]).part(stream.clone(), ExpectedVersion::Any, event()))
        .await?;
    store
        .read_stream(&stream, Version(0), 1, Direction::Forward)
        .await?;
    store
        .read_all(Position(0), 1, Direction::Forward, None)
        .await?;
    store.stream_version(&stream).await?;
    store.stream_exists(&stream).await?;
    store.list_streams(None, 1).await?;
    store.delete_stream(&stream, ExpectedVersion::Any).await?;
    store.truncate_stream(&stream, Version(0)).await?;
    store.compact().await?;
    store.disk_bytes().await?;
    store.has_events().await?;
    store.health().await?;
    store.close().await?;
    assert!(store.watch_head().is_err());
    store.verify(None).await?;
    store.aux_get(b"k").await?;
    store.aux_scan(b"k", None, 1).await?;
    store.aux_write(vec![AuxWrite::put("k", "v")]).await?;
    store.aux_put(b"k", b"v").await?;
    store.aux_delete(b"k").await?;
    Ok(())
}

const ALL: [&str; 24] = [
    "capabilities",
    "limits",
    "append",
    "append_with",
    "append_batch",
    "read_stream",
    "read_all",
    "stream_version",
    "stream_exists",
    "list_streams",
    "delete_stream",
    "truncate_stream",
    "compact",
    "disk_bytes",
    "has_events",
    "health",
    "close",
    "watch_head",
    "verify",
    "aux_get",
    "aux_scan",
    "aux_write",
    "aux_put",
    "aux_delete",
];

#[tokio::test]
async fn every_method_reaches_the_same_method_through_arc_and_observe() -> Result<()> {
    let calls = Arc::new(Calls::default());
    let seen = Arc::new(Seen::default());
    let store = Arc::clone(&calls).layer(Observe::new(Arc::clone(&seen)).backend("calls"));
    // Observe asked for a head watch when it wrapped the store.
    assert_eq!(calls.take(), ["watch_head"]);

    call_every_method(&store).await?;
    assert_eq!(calls.take(), ALL);
    let unobserved = ["capabilities", "limits", "watch_head"];
    let observed: Vec<&str> = ALL
        .into_iter()
        .filter(|m| !unobserved.contains(m))
        .collect();
    assert_eq!(*seen.0.lock().expect("not poisoned"), observed);
    Ok(())
}

#[test]
fn a_default_backend_name_is_the_type_without_module_paths() {
    assert_eq!(
        short_type_name("annals_core::kv::store::KvStore<annals_redb::engine::RedbEngine>"),
        "KvStore<RedbEngine>"
    );
    assert_eq!(
        short_type_name("alloc::sync::Arc<dyn annals_core::backend::LogBackend>"),
        "Arc<dyn LogBackend>"
    );
}

#[tokio::test]
async fn the_check_layer_keeps_bad_input_from_the_backend() -> Result<()> {
    let calls = Arc::new(Calls::default());
    let store = Arc::clone(&calls).layer(CheckLayer);
    // It read the backend's limits when it wrapped it.
    assert_eq!(calls.take(), ["limits"]);
    let stream = StreamId::new("s")?;
    let refused = [
        store
            .append(&stream, ExpectedVersion::Any, vec![])
            .await
            .map(drop),
        store
            .append_with(Append::new(stream.clone(), ExpectedVersion::Any, vec![]))
            .await
            .map(drop),
        store.append_batch(Batch::new(vec![])).await.map(drop),
        store
            .read_stream(&stream, Version(0), 0, Direction::Forward)
            .await
            .map(drop),
        store
            .read_all(Position(0), 10_001, Direction::Forward, None)
            .await
            .map(drop),
        store
            .read_all(
                Position(0),
                1,
                Direction::Forward,
                Some(&Query::types([""])),
            )
            .await
            .map(drop),
        store.list_streams(None, 0).await.map(drop),
        store.aux_get(b"").await.map(drop),
        store.aux_scan(b"", None, 0).await.map(drop),
        store.aux_write(vec![]).await,
        store.aux_put(b"", b"v").await,
        store.aux_delete(b"").await,
    ];
    for (i, result) in refused.into_iter().enumerate() {
        let e = result.expect_err("refused");
        assert!(e.is_invalid_input(), "call {i}: {e}");
    }
    assert_eq!(
        calls.take(),
        Vec::<&str>::new(),
        "nothing reached the backend"
    );
    Ok(())
}

#[tokio::test]
async fn the_check_layer_forwards_good_calls_and_nothing_after_close() -> Result<()> {
    let calls = Arc::new(Calls::default());
    let store = Arc::clone(&calls).layer(CheckLayer);
    calls.take();
    let stream = StreamId::new("s")?;
    let event = || vec![NewEvent::builder("E").build()];
    store.append(&stream, ExpectedVersion::Any, event()).await?;
    store.delete_stream(&stream, ExpectedVersion::Any).await?;
    store.aux_put(b"k", b"v").await?;
    store.close().await?;
    assert_eq!(
        calls.take(),
        ["append", "delete_stream", "aux_put", "close"]
    );
    // [M4]: closed, every call is refused before the backend; a second
    // close is Ok and does not reach it.
    store.close().await?;
    let e = store.append(&stream, ExpectedVersion::Any, event()).await;
    assert!(e.expect_err("closed").is_closed());
    let e = store
        .read_stream(&stream, Version(0), 1, Direction::Forward)
        .await;
    assert!(e.expect_err("closed").is_closed());
    assert!(
        store
            .stream_exists(&stream)
            .await
            .expect_err("closed")
            .is_closed()
    );
    assert!(store.health().await.expect_err("closed").is_closed());
    assert!(store.watch_head().expect_err("closed").is_closed());
    assert_eq!(calls.take(), Vec::<&str>::new());
    Ok(())
}

/// A close the backend failed is tried again by the next close (the store
/// stays closed to other calls meanwhile); once it succeeded, later closes
/// are Ok without reaching the backend ([M4]).
#[tokio::test]
async fn the_check_layer_retries_a_close_the_backend_failed() -> Result<()> {
    let calls = Arc::new(Calls::default());
    calls.1.store(1, Ordering::SeqCst);
    let store = Arc::clone(&calls).layer(CheckLayer);
    calls.take();
    assert!(store.close().await.is_err());
    let stream = StreamId::new("s")?;
    let e = store
        .append(
            &stream,
            ExpectedVersion::Any,
            vec![NewEvent::builder("E").build()],
        )
        .await;
    assert!(e.expect_err("closed").is_closed());
    store.close().await?;
    store.close().await?;
    assert_eq!(calls.take(), ["close", "close"]);
    Ok(())
}
