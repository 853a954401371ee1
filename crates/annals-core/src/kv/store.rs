//! `KvStore`: a [`LogBackend`] over any [`KvEngine`].

use std::fmt;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, Mutex, PoisonError, mpsc};
use std::thread::JoinHandle;

use async_trait::async_trait;
use tokio::sync::{Semaphore, oneshot, watch};

use crate::backend::{
    Append, AppendResult, Batch, Capabilities, Direction, HeadWatch, Limits, LogBackend, Page,
    StoreConfig, StreamInfo,
};
use crate::check::Checks;
use crate::error::{Error, Result};
use crate::event::NewEvent;
use crate::event::{Position, StreamId, Version};
use crate::expect::{AppendCondition, AuxWrite, ExpectedVersion, Query};
use crate::kv::codec;
use crate::kv::engine::{KvEngine, KvSnapshot, Scan, WriteBatch};
use crate::kv::layout::{self, StreamMeta};
use crate::kv::read::{self, SnapshotMetas};
use crate::kv::verify;
use crate::kv::writer::{Queued, Reply, Request, Writer};
use crate::verify::{VerifyProgress, VerifyReport};

/// The error of a store whose writer thread died of `cause` (SPEC M3).
fn writer_died(cause: &str) -> Error {
    Error::backend(
        format!("the store cannot take writes: its writer thread stopped: {cause}"),
        cause.to_string(),
    )
}

/// What a panic said.
fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    let said = payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "(no message)".to_string());
    format!("it panicked: {said}")
}

/// Most dead events one compaction step deletes in one commit.
const PURGE_CHUNK: usize = 4096;

/// The least the writer's queue holds, in bytes (see [`queue_bytes`]).
const MIN_QUEUE_BYTES: usize = 8 << 20;

/// How many bytes of requests the writer's queue holds for a store with
/// these limits: room for two of the largest appends, and at least
/// [`MIN_QUEUE_BYTES`].
pub(crate) fn queue_bytes(limits: &Limits) -> usize {
    // A caller takes at most u32::MAX permits at once (tokio's API).
    let most = Semaphore::MAX_PERMITS.min(u32::MAX as usize);
    limits
        .max_append_bytes
        .saturating_mul(2)
        .clamp(MIN_QUEUE_BYTES, most)
}

/// The query of a write's condition, normalized (\[R6\]): done on the
/// caller's task, not in the writer.
fn normalized_condition(condition: Option<&AppendCondition>) -> Option<Query> {
    condition.map(|c| c.fail_if_events_match.normalized())
}

/// Bytes a request holds besides its events and aux writes.
const REQUEST_OVERHEAD: usize = 256;

/// Roughly the bytes `events`, `aux` and `condition` hold in memory: what
/// a write counts against the writer's queue.
fn write_bytes<'a>(
    events: impl IntoIterator<Item = &'a NewEvent>,
    aux: &[AuxWrite],
    condition: Option<&AppendCondition>,
) -> usize {
    let names = |names: &[String]| {
        names
            .iter()
            .fold(0usize, |n, name| n.saturating_add(name.len() + 24))
    };
    let events = events.into_iter().fold(0usize, |n, e| {
        n.saturating_add(e.payload_bytes())
            .saturating_add(e.event_type.len())
            .saturating_add(names(&e.tags))
            .saturating_add(128)
    });
    let aux = aux
        .iter()
        .fold(0usize, |n, w| n.saturating_add(w.payload_bytes() + 64));
    let condition = condition.map_or(0, |c| {
        c.fail_if_events_match.items.iter().fold(0usize, |n, item| {
            n.saturating_add(names(&item.types))
                .saturating_add(names(&item.tags))
        })
    });
    REQUEST_OVERHEAD
        .saturating_add(events)
        .saturating_add(aux)
        .saturating_add(condition)
}

/// A [`LogBackend`] over an ordered key-value engine: the shared key
/// layout, record codec and append logic, with one writer thread that
/// group-commits every waiting append, and reads on engine snapshots in
/// tokio's blocking pool.
///
/// The writer's queue is bounded by bytes: the requests waiting for it (and
/// the round it is committing) hold at most twice `max_append_bytes` (at
/// least 8 MiB) of events, names and aux writes. A caller whose write does
/// not fit waits — asynchronously, in order — until earlier writes are
/// committed; it is never refused for it. So a burst of appends costs
/// memory in the callers' tasks, not in an unbounded queue or an unbounded
/// commit.
///
/// ```
/// # // A tiny engine over a BTreeMap, to show the shape; real engines live
/// # // in their own crates (annals-memory, annals-redb, …).
/// # use std::collections::BTreeMap;
/// # use std::sync::{Arc, Mutex};
/// # use annals_core::kv::{KvEngine, KvSnapshot, KvStore, Scan, Visitor, WriteBatch};
/// # use annals_core::*;
/// # struct Map(Mutex<BTreeMap<Vec<u8>, Vec<u8>>>);
/// # struct Snap(BTreeMap<Vec<u8>, Vec<u8>>);
/// # impl KvSnapshot for Snap {
/// #     fn get(&self, k: &[u8]) -> Result<Option<Vec<u8>>> { Ok(self.0.get(k).cloned()) }
/// #     fn scan(&self, s: &[u8], e: &[u8], d: Direction, v: &mut Visitor<'_>) -> Result<()> {
/// #         let r = self.0.range(s.to_vec()..e.to_vec());
/// #         let items: Vec<_> = match d { Direction::Forward => r.collect(), Direction::Backward => r.rev().collect() };
/// #         for (k, val) in items { if v(k, val)? == Scan::Stop { break } }
/// #         Ok(())
/// #     }
/// # }
/// # impl KvEngine for Map {
/// #     type Snapshot = Snap;
/// #     fn snapshot(&self) -> Result<Snap> { Ok(Snap(self.0.lock().unwrap().clone())) }
/// #     fn commit(&self, b: WriteBatch, _: bool) -> Result<()> {
/// #         let mut m = self.0.lock().unwrap();
/// #         for (k, v) in b.ops { match v { Some(v) => { m.insert(k, v); } None => { m.remove(&k); } } }
/// #         Ok(())
/// #     }
/// #     fn disk_bytes(&self) -> Result<u64> { Ok(0) }
/// #     fn capabilities(&self) -> Capabilities { Capabilities::ALL_IN_MEMORY }
/// # }
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<()> {
/// let store = KvStore::open(Map(Mutex::new(BTreeMap::new())), StoreConfig::default())?;
/// let stream = StreamId::new("order-1")?;
/// let written = store
///     .append(&stream, ExpectedVersion::NoStream, vec![NewEvent::builder("Placed").build()])
///     .await?;
/// assert_eq!(written.first_position, Position(1));
/// # Ok(())
/// # }
/// ```
pub struct KvStore<E: KvEngine> {
    engine: Arc<E>,
    config: StoreConfig,
    capabilities: Capabilities,
    /// Open, writable, input valid: checked before every call.
    checks: Checks,
    sender: Mutex<Option<mpsc::Sender<Queued>>>,
    /// Permits for the bytes of the requests in the writer's queue.
    queue: Arc<Semaphore>,
    queue_bytes: usize,
    writer: Mutex<Option<JoinHandle<()>>>,
    /// Why the writer thread died, once it has (SPEC M3); it ends without
    /// a value when the store is closed.
    writer_death: watch::Receiver<Option<String>>,
    head: watch::Receiver<Position>,
}

impl<E: KvEngine> fmt::Debug for KvStore<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KvStore")
            .field("engine", &std::any::type_name::<E>())
            .field("config", &self.config)
            .field("head", &*self.head.borrow())
            .field("closed", &self.checks.gate().is_closed())
            .finish()
    }
}

impl<E: KvEngine> KvStore<E> {
    /// Opens a store over `engine`: reads the store's metadata and starts
    /// its writer thread. Blocks on the engine's I/O; call it from
    /// `spawn_blocking` inside an async context when that matters.
    pub fn open(engine: E, config: StoreConfig) -> Result<Self> {
        config.limits.validate()?;
        let engine = Arc::new(engine);
        let capabilities = engine.capabilities();
        let meta = read::store_meta(&engine.snapshot()?)?;
        let (head_tx, head) = watch::channel(Position(meta.head));
        let (sender, receiver) = mpsc::channel();
        let writer = Writer::new(Arc::clone(&engine), config.durability, meta, head_tx);
        let (death_tx, writer_death) = watch::channel(None);
        let handle = std::thread::Builder::new()
            .name("annals-writer".into())
            .spawn(move || {
                // The queue outlives a panic of the writer, so no caller
                // sees it gone before the cause is published.
                let receiver = receiver;
                if let Err(payload) = catch_unwind(AssertUnwindSafe(|| writer.run(&receiver))) {
                    death_tx.send_replace(Some(panic_message(payload.as_ref())));
                }
            })
            .map_err(|e| Error::backend("starting the writer thread", e))?;
        let queue_bytes = queue_bytes(&config.limits);
        let checks = Checks::new(config.limits, engine.read_only());
        Ok(KvStore {
            engine,
            config,
            capabilities,
            checks,
            sender: Mutex::new(Some(sender)),
            queue: Arc::new(Semaphore::new(queue_bytes)),
            queue_bytes,
            writer: Mutex::new(Some(handle)),
            writer_death,
            head,
        })
    }

    /// The error of a store whose writer thread died, if it has.
    fn writer_died(&self) -> Option<Error> {
        self.writer_death.borrow().as_deref().map(writer_died)
    }

    /// Why a request got no answer: the writer died (its cause), or the
    /// store was closed.
    async fn lost(&self) -> Error {
        let mut death = self.writer_death.clone();
        // Ends at once when the writer died, or when its thread ended.
        match death.wait_for(Option::is_some).await {
            Ok(cause) => cause.as_deref().map_or(Error::Closed, writer_died),
            Err(_) => Error::Closed,
        }
    }

    /// The engine under the store.
    pub fn engine(&self) -> &Arc<E> {
        &self.engine
    }

    /// Sends a request to the writer and waits for its answer (the caller
    /// has checked it: open, writable, valid). `bytes` is
    /// what the request holds in memory: it waits for room in the queue
    /// first (back-pressure), and the room is given back once the writer
    /// has committed it.
    async fn call<T>(&self, bytes: usize, request: impl FnOnce(Reply<T>) -> Request) -> Result<T> {
        // A request larger than the whole queue waits for all of it.
        let permits = bytes.clamp(1, self.queue_bytes);
        let permits = u32::try_from(permits).unwrap_or(u32::MAX);
        let permit = Arc::clone(&self.queue)
            .acquire_many_owned(permits)
            .await
            .map_err(|_| Error::Closed)?;
        let (reply, answer) = oneshot::channel();
        let sent = {
            let sender = self.sender.lock().unwrap_or_else(PoisonError::into_inner);
            let sender = sender.as_ref().ok_or(Error::Closed)?;
            let queued = Queued {
                request: request(reply),
                permit: Some(permit),
            };
            sender.send(queued).is_ok()
        };
        if !sent {
            return Err(self.lost().await);
        }
        match answer.await {
            Ok(result) => result,
            Err(_) => Err(self.lost().await),
        }
    }

    /// Runs `f` on a fresh snapshot in the blocking pool.
    async fn read<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&E::Snapshot) -> Result<T> + Send + 'static,
    {
        self.checks.open()?;
        let engine = Arc::clone(&self.engine);
        let gate = self.checks.gate().clone();
        tokio::task::spawn_blocking(move || {
            let snap = engine.snapshot()?;
            let result = f(&snap);
            // A read racing `close` may meet a released engine: say Closed.
            match result {
                Err(_) if gate.is_closed() => Err(Error::Closed),
                other => other,
            }
        })
        .await
        .map_err(|e| Error::backend("a read failed (the engine panicked?)", e))?
    }
}

/// Finds up to `limit` dead events (truncated or deleted, SPEC M1) and the
/// batch of deletes that removes them with their index entries.
fn dead_entries<S: KvSnapshot>(snap: &S, limit: usize) -> Result<WriteBatch> {
    let mut streams: Vec<(Vec<u8>, StreamMeta)> = Vec::new();
    let meta_start = [layout::STREAM_META];
    let meta_end = [layout::STREAM_META + 1];
    snap.scan(
        &meta_start,
        &meta_end,
        Direction::Forward,
        &mut |key, value| {
            let meta: StreamMeta = codec::decode(key, value)?;
            if meta.floor > 0 {
                streams.push((key[1..].to_vec(), meta));
            }
            Ok(Scan::Continue)
        },
    )?;
    let mut batch = WriteBatch::new();
    let mut events = 0;
    let mut decoder = codec::EventDecoder::default();
    for (stream, meta) in streams {
        let name = String::from_utf8_lossy(&stream).into_owned();
        let prefix = layout::named_prefix(layout::STREAM_INDEX, &name);
        let (start, end) = layout::number_range(&prefix, 0, meta.floor - 1);
        snap.scan(&start, &end, Direction::Forward, &mut |key, value| {
            let position = Position(codec::decode::<u64>(key, value)?);
            if let Some(event) = read::event_at(snap, position, &mut decoder)? {
                batch.delete(layout::type_key(&event.event_type, position));
                for tag in &event.tags {
                    batch.delete(layout::tag_key(tag, position));
                }
            }
            batch.delete(layout::log_key(position));
            batch.delete(key.to_vec());
            events += 1;
            Ok(if events >= limit {
                Scan::Stop
            } else {
                Scan::Continue
            })
        })?;
        if events >= limit {
            break;
        }
    }
    Ok(batch)
}

#[async_trait]
impl<E: KvEngine> LogBackend for KvStore<E> {
    fn capabilities(&self) -> Capabilities {
        self.capabilities
    }

    fn limits(&self) -> Limits {
        self.config.limits
    }

    async fn append_with(&self, append: Append) -> Result<AppendResult> {
        self.checks.append(&append)?;
        let bytes = write_bytes(&append.events, &append.aux, append.condition.as_ref());
        let query = normalized_condition(append.condition.as_ref());
        self.call(bytes, |reply| {
            Request::Append(Box::new(append), query, reply)
        })
        .await
    }

    async fn append_batch(&self, batch: Batch) -> Result<Vec<AppendResult>> {
        self.checks.batch(&batch)?;
        let events = batch.parts.iter().flat_map(|p| &p.events);
        let bytes = write_bytes(events, &batch.aux, batch.condition.as_ref());
        let query = normalized_condition(batch.condition.as_ref());
        self.call(bytes, |reply| Request::Batch(Box::new(batch), query, reply))
            .await
    }

    async fn read_stream(
        &self,
        stream: &StreamId,
        from: Version,
        count: usize,
        direction: Direction,
    ) -> Result<Page> {
        self.checks.read_stream(count)?;
        let stream = stream.clone();
        self.read(move |snap| read::read_stream(snap, &stream, from, count, direction))
            .await
    }

    async fn read_all(
        &self,
        from: Position,
        count: usize,
        direction: Direction,
        query: Option<&Query>,
    ) -> Result<Page> {
        self.checks.read_all(count, query)?;
        let query = query.cloned();
        self.read(move |snap| {
            // A query costs what its distinct items cost ([R6]).
            let query = query.as_ref().map(Query::normalized);
            let head = Position(read::store_meta(snap)?.head);
            let mut metas = SnapshotMetas::new(snap);
            let events = read::scan_log(snap, &mut metas, from, count, direction, query.as_ref())?;
            Ok(Page { events, head })
        })
        .await
    }

    async fn stream_version(&self, stream: &StreamId) -> Result<Version> {
        let id = stream.clone();
        self.read(move |snap| {
            read::stream_meta(snap, id.as_str())?
                .and_then(|m| m.last_version())
                .ok_or(Error::StreamNotFound(id))
        })
        .await
    }

    async fn list_streams(
        &self,
        after: Option<&StreamId>,
        limit: usize,
    ) -> Result<Vec<StreamInfo>> {
        self.checks.list_streams(limit)?;
        let after = after.cloned();
        self.read(move |snap| read::list_streams(snap, after.as_ref(), limit))
            .await
    }

    async fn delete_stream(&self, stream: &StreamId, expected: ExpectedVersion) -> Result<()> {
        self.checks.writable("delete_stream")?;
        let stream = stream.clone();
        self.call(REQUEST_OVERHEAD, |reply| {
            Request::Delete(stream, expected, reply)
        })
        .await
    }

    async fn truncate_stream(&self, stream: &StreamId, before: Version) -> Result<()> {
        self.checks.writable("truncate_stream")?;
        let stream = stream.clone();
        self.call(REQUEST_OVERHEAD, |reply| {
            Request::Truncate(stream, before, reply)
        })
        .await
    }

    async fn compact(&self) -> Result<()> {
        self.checks.writable("compact")?;
        loop {
            let batch = self.read(|snap| dead_entries(snap, PURGE_CHUNK)).await?;
            if batch.is_empty() {
                break;
            }
            let bytes = batch.ops.iter().fold(REQUEST_OVERHEAD, |n, (k, v)| {
                n.saturating_add(k.len() + v.as_ref().map_or(0, Vec::len))
            });
            self.checks.open()?;
            self.call(bytes, |reply| Request::Purge(batch, reply))
                .await?;
        }
        self.checks.open()?;
        let engine = Arc::clone(&self.engine);
        tokio::task::spawn_blocking(move || engine.compact())
            .await
            .map_err(|e| Error::backend("compaction failed (the engine panicked?)", e))?
    }

    async fn disk_bytes(&self) -> Result<u64> {
        self.checks.open()?;
        let engine = Arc::clone(&self.engine);
        tokio::task::spawn_blocking(move || engine.disk_bytes())
            .await
            .map_err(|e| Error::backend("disk_bytes failed (the engine panicked?)", e))?
    }

    async fn has_events(&self) -> Result<bool> {
        self.read(|snap| {
            let mut metas = SnapshotMetas::new(snap);
            let first = read::scan_log(snap, &mut metas, Position(0), 1, Direction::Forward, None)?;
            Ok(!first.is_empty())
        })
        .await
    }

    async fn health(&self) -> Result<()> {
        self.checks.open()?;
        if let Some(e) = self.writer_died() {
            return Err(e);
        }
        self.read(|snap| read::store_meta(snap).map(drop)).await
    }

    async fn close(&self) -> Result<()> {
        if !self.checks.close() {
            // [M4] A second close is Ok: closing is idempotent.
            return Ok(());
        }
        // Callers waiting for room in the queue get Closed.
        self.queue.close();
        let sender = self
            .sender
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        let (reply, answer) = oneshot::channel();
        let close = Queued {
            request: Request::Close(reply),
            permit: None,
        };
        let sent = sender.is_some_and(|s| s.send(close).is_ok());
        let result = if sent {
            answer.await.unwrap_or(Ok(()))
        } else {
            Ok(())
        };
        let handle = self
            .writer
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(handle) = handle {
            tokio::task::spawn_blocking(move || handle.join())
                .await
                .map_err(|e| Error::backend("joining the writer thread", e))?
                .map_err(|_| Error::backend("the writer thread", "it panicked"))?;
        }
        if let Some(e) = self.writer_died() {
            // The writer could not release the engine: do it here, and
            // say why the store did not close cleanly.
            let engine = Arc::clone(&self.engine);
            tokio::task::spawn_blocking(move || engine.close())
                .await
                .map_err(|e| Error::backend("closing the engine (it panicked?)", e))??;
            return Err(e);
        }
        result
    }

    async fn verify(&self, progress: Option<VerifyProgress>) -> Result<VerifyReport> {
        self.read(move |snap| {
            let progress = move |n: u64| {
                if let Some(p) = &progress {
                    p(n);
                }
            };
            verify::verify(snap, &progress)
        })
        .await
    }

    fn watch_head(&self) -> Result<HeadWatch> {
        self.checks.open()?;
        Ok(crate::backend::fresh_head_watch(&self.head))
    }

    async fn aux_get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        self.checks.aux_get(key)?;
        let key = key.to_vec();
        self.read(move |snap| read::aux_get(snap, &key)).await
    }

    async fn aux_scan(
        &self,
        prefix: &[u8],
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        self.checks.aux_scan(limit)?;
        let prefix = prefix.to_vec();
        let after = after.map(<[u8]>::to_vec);
        self.read(move |snap| read::aux_scan(snap, &prefix, after.as_deref(), limit))
            .await
    }

    async fn aux_write(&self, writes: Vec<AuxWrite>) -> Result<()> {
        self.checks.aux_write(&writes)?;
        let bytes = write_bytes([], &writes, None);
        self.call(bytes, |reply| Request::Aux(writes, reply)).await
    }
}
