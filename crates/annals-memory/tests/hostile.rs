//! The generic store against hostile input and crafted stores, through a
//! probe around the memory engine that counts what the store reads, records
//! what it commits, can hold a commit back, and can panic: the writer's
//! queue is bounded (back-pressure, not refusal), and a dead writer is seen.
#![allow(clippy::unwrap_used)]

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use annals_core::kv::layout::{self, StoreMeta, StreamMeta};
use annals_core::kv::{KvEngine, KvSnapshot, KvStore, Visitor, WriteBatch, codec};
use annals_core::{
    Append, AppendCondition, AuxWrite, Batch, Capabilities, CorruptionAt, Direction,
    ExpectedVersion, LogBackend, NewEvent, Position, Query, QueryItem, Result, StoreConfig,
    StreamId, Timestamp,
};
use annals_memory::{MemoryEngine, MemorySnapshot};

/// What the probe saw and what it is told to do.
#[derive(Default)]
struct Probe {
    /// Entries read: each `get` and each entry a scan visited.
    reads: AtomicU64,
    /// Bytes (keys and values) of each commit, in order.
    commits: Mutex<Vec<usize>>,
    /// While true, `commit` waits.
    held: Mutex<bool>,
    released: Condvar,
    /// Set once a commit is waiting on `held`.
    waiting: AtomicBool,
    /// `snapshot` panics while true.
    panic_on_snapshot: AtomicBool,
}

struct ProbeEngine {
    inner: MemoryEngine,
    probe: Arc<Probe>,
}

struct ProbeSnapshot {
    inner: MemorySnapshot,
    probe: Arc<Probe>,
}

impl KvSnapshot for ProbeSnapshot {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        self.probe.reads.fetch_add(1, Ordering::Relaxed);
        self.inner.get(key)
    }

    fn scan(
        &self,
        start: &[u8],
        end: &[u8],
        direction: Direction,
        visit: &mut Visitor<'_>,
    ) -> Result<()> {
        let reads = &self.probe.reads;
        self.inner.scan(start, end, direction, &mut |k, v| {
            reads.fetch_add(1, Ordering::Relaxed);
            visit(k, v)
        })
    }
}

impl KvEngine for ProbeEngine {
    type Snapshot = ProbeSnapshot;

    fn snapshot(&self) -> Result<ProbeSnapshot> {
        assert!(
            !self.probe.panic_on_snapshot.load(Ordering::Acquire),
            "the probe panics on snapshot"
        );
        Ok(ProbeSnapshot {
            inner: self.inner.snapshot()?,
            probe: Arc::clone(&self.probe),
        })
    }

    fn commit(&self, batch: WriteBatch, sync: bool) -> Result<()> {
        let bytes = batch
            .ops
            .iter()
            .map(|(k, v)| k.len() + v.as_ref().map_or(0, Vec::len))
            .sum();
        let mut held = self.probe.held.lock().unwrap();
        while *held {
            self.probe.waiting.store(true, Ordering::Release);
            held = self.probe.released.wait(held).unwrap();
        }
        drop(held);
        self.probe.commits.lock().unwrap().push(bytes);
        self.inner.commit(batch, sync)
    }

    fn disk_bytes(&self) -> Result<u64> {
        Ok(0)
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities::ALL_IN_MEMORY
    }
}

fn open(engine: MemoryEngine, config: StoreConfig) -> (Arc<KvStore<ProbeEngine>>, Arc<Probe>) {
    let probe = Arc::new(Probe::default());
    let engine = ProbeEngine {
        inner: engine,
        probe: Arc::clone(&probe),
    };
    (Arc::new(KvStore::open(engine, config).unwrap()), probe)
}

fn sid(id: &str) -> StreamId {
    StreamId::new(id).unwrap()
}

const MIB: usize = 1 << 20;

/// Item 6 of issue 17: the writer's queue is bounded by bytes. While the
/// writer is held in a commit, 20 appends of 1 MiB arrive on a store whose
/// queue holds 8 MiB (2 × max_append_bytes = 2 MiB, at least 8 MiB): none
/// is refused, every one commits once the writer goes on, and no commit
/// holds more than the queue's 8 MiB (without the bound, the round after
/// the held one took all 20 MiB at once).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_writer_queue_is_bounded_and_waits_instead_of_refusing() {
    let mut config = StoreConfig::default();
    config.limits.max_append_bytes = MIB;
    let (store, probe) = open(MemoryEngine::new(), config);
    *probe.held.lock().unwrap() = true;
    let first = {
        let store = Arc::clone(&store);
        tokio::spawn(async move {
            let events = vec![NewEvent::builder("First").build()];
            store
                .append(&sid("first"), ExpectedVersion::Any, events)
                .await
        })
    };
    while !probe.waiting.load(Ordering::Acquire) {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let appends: Vec<_> = (0..20)
        .map(|i| {
            let store = Arc::clone(&store);
            tokio::spawn(async move {
                let event = NewEvent::builder("Big").data(vec![7; MIB]).build();
                store
                    .append(&sid(&format!("big-{i}")), ExpectedVersion::Any, vec![event])
                    .await
            })
        })
        .collect();
    // Let every append reach the queue, or wait for room in it.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        appends.iter().all(|a| !a.is_finished()),
        "an append returned while the writer was held"
    );
    *probe.held.lock().unwrap() = false;
    probe.released.notify_all();
    first.await.unwrap().unwrap();
    for append in appends {
        append
            .await
            .unwrap()
            .expect("a waiting append commits, it is not refused");
    }
    let commits = probe.commits.lock().unwrap().clone();
    let total: usize = commits.iter().sum();
    assert!(total >= 20 * MIB, "{commits:?}");
    let largest = commits.iter().copied().max().unwrap_or(0);
    assert!(
        largest <= 8 * MIB + 64 * 1024,
        "a commit of {largest} bytes: the queue let more than 8 MiB through ({commits:?})"
    );
    store.close().await.unwrap();
}

/// The adversarial query of issue 17: 64 items of 64 copies of one type.
fn repeated_type(ty: &str) -> Query {
    let item = QueryItem {
        types: vec![ty.to_string(); 64],
        tags: Vec::new(),
    };
    Query {
        items: vec![item; 64],
    }
}

/// Entries `f` makes the store read.
async fn reads<F: std::future::Future>(probe: &Probe, f: F) -> (u64, F::Output) {
    let before = probe.reads.load(Ordering::Relaxed);
    let out = f.await;
    (probe.reads.load(Ordering::Relaxed) - before, out)
}

/// Item 4 of issue 17 (SPEC R6, R7): a query's cost is what its distinct
/// items cost. The 64 × 64 repetition of one type reads exactly the
/// entries `Query::types([T])` reads — as a read, in pages of 1 and 100,
/// both ways, and as an append condition, where the check stops at the
/// first matching event (a handful of reads with 100 matching events
/// after `after`). Before, it read 4096 times as much.
#[tokio::test]
async fn a_repeated_query_costs_what_its_distinct_items_cost() {
    let (store, probe) = open(MemoryEngine::new(), StoreConfig::default());
    let s = sid("s");
    let events: Vec<NewEvent> = (0..100)
        .map(|_| NewEvent::builder("T").tag("t").build())
        .collect();
    store
        .append(&s, ExpectedVersion::Any, events)
        .await
        .unwrap();
    let plain = Query::types(["T"]);
    let adversarial = repeated_type("T");
    for (count, from, direction) in [
        (100, Position(0), Direction::Forward),
        (1, Position(0), Direction::Forward),
        (100, Position::MAX, Direction::Backward),
        (1, Position(50), Direction::Backward),
    ] {
        let (want, p) = reads(&probe, store.read_all(from, count, direction, Some(&plain))).await;
        let (cost, a) = reads(
            &probe,
            store.read_all(from, count, direction, Some(&adversarial)),
        )
        .await;
        assert_eq!(a.unwrap(), p.unwrap());
        assert_eq!(
            cost, want,
            "entries read for a page of {count} {direction:?}"
        );
    }
    for tags in [vec!["t"; 64], vec!["t"]] {
        let (cost, page) = reads(
            &probe,
            store.read_all(
                Position(0),
                100,
                Direction::Forward,
                Some(&Query::tags(tags)),
            ),
        )
        .await;
        assert_eq!(page.unwrap().events.len(), 100);
        assert!(cost <= 2 * 100 + 10, "{cost} entries read for 100 events");
    }

    let condition = |query: Query| {
        Append::new(
            sid("w"),
            ExpectedVersion::Any,
            vec![NewEvent::builder("W").build()],
        )
        .condition(AppendCondition::new(query, Some(Position(0))))
    };
    let (want, r) = reads(&probe, store.append_with(condition(plain))).await;
    assert!(r.unwrap_err().is_condition_failed());
    let (cost, r) = reads(&probe, store.append_with(condition(adversarial))).await;
    assert!(r.unwrap_err().is_condition_failed());
    assert_eq!(cost, want, "entries the condition check read");
    assert!(
        want <= 12,
        "the check read {want} entries: it does not stop at the first match"
    );
}

/// A memory engine holding `(key, value)` records, sealed as the store
/// seals them: a crafted store whose checksums are all valid.
fn crafted(records: Vec<(Vec<u8>, Vec<u8>)>) -> MemoryEngine {
    let engine = MemoryEngine::new();
    let mut batch = WriteBatch::new();
    for (key, value) in records {
        batch.put(key, value);
    }
    engine.commit(batch, true).unwrap();
    engine
}

fn store_meta(meta: StoreMeta) -> (Vec<u8>, Vec<u8>) {
    let key = layout::STORE_META_KEY.to_vec();
    let value = codec::encode(&key, &meta).unwrap();
    (key, value)
}

fn one_event() -> Vec<NewEvent> {
    vec![NewEvent::builder("E").build()]
}

/// Item 5 of issue 17: numbers read from disk are checked. A store whose
/// head is u64::MAX has no position left: an append is `Corruption` naming
/// the store's metadata — not a panic that kills the writer — and the
/// store stays healthy for reads, answers the next append the same way,
/// and closes cleanly. One position short, one event still fits.
#[tokio::test]
async fn a_head_at_u64_max_is_corruption_not_a_dead_writer() {
    let meta = StoreMeta {
        head: u64::MAX,
        ..StoreMeta::default()
    };
    let (store, _) = open(crafted(vec![store_meta(meta)]), StoreConfig::default());
    for _ in 0..2 {
        let err = store
            .append(&sid("s"), ExpectedVersion::Any, one_event())
            .await
            .unwrap_err();
        assert_eq!(
            err.corruption_at(),
            Some(&CorruptionAt::Key(layout::STORE_META_KEY.to_vec())),
            "{err}"
        );
        store.health().await.expect("the writer is alive");
    }
    store.close().await.expect("closes cleanly");

    let meta = StoreMeta {
        head: u64::MAX - 1,
        ..StoreMeta::default()
    };
    let (store, _) = open(crafted(vec![store_meta(meta)]), StoreConfig::default());
    let two = vec![
        NewEvent::builder("E").build(),
        NewEvent::builder("E").build(),
    ];
    let err = store
        .append(&sid("s"), ExpectedVersion::Any, two)
        .await
        .unwrap_err();
    assert!(err.is_corruption(), "{err}");
    let written = store
        .append(&sid("s"), ExpectedVersion::Any, one_event())
        .await
        .unwrap();
    assert_eq!(written.last_position, Position(u64::MAX));
    let err = store
        .append(&sid("t"), ExpectedVersion::Any, one_event())
        .await
        .unwrap_err();
    assert!(err.is_corruption(), "{err}");
    store.close().await.expect("closes cleanly");
}

/// Item 5: a stream whose next version is u64::MAX cannot take another
/// event: `Corruption` naming the stream's metadata; other streams still
/// take appends.
#[tokio::test]
async fn a_stream_at_u64_max_is_corruption_and_other_streams_still_work() {
    let key = layout::stream_meta_key("s");
    let meta = StreamMeta {
        next_version: u64::MAX,
        ..StreamMeta::default()
    };
    let value = codec::encode(&key, &meta).unwrap();
    let (store, _) = open(crafted(vec![(key.clone(), value)]), StoreConfig::default());
    for expected in [ExpectedVersion::Any, ExpectedVersion::exact(u64::MAX - 1)] {
        let err = store
            .append(&sid("s"), expected, one_event())
            .await
            .unwrap_err();
        assert_eq!(
            err.corruption_at(),
            Some(&CorruptionAt::Key(key.clone())),
            "{err}"
        );
    }
    // In a batch, the part with no room fails it, naming the part, and no
    // part is written (A2).
    let batch = Batch::new(vec![])
        .part(sid("t"), ExpectedVersion::Any, one_event())
        .part(sid("s"), ExpectedVersion::Any, one_event());
    let err = store.append_batch(batch).await.unwrap_err();
    assert_eq!(err.part(), Some(1), "{err}");
    assert_eq!(
        err.corruption_at(),
        Some(&CorruptionAt::Key(key.clone())),
        "{err}"
    );
    // The aux writes of an append or batch that cannot be placed are not
    // written either: all or nothing (A2, X2).
    let err = store
        .append_with(
            Append::new(sid("s"), ExpectedVersion::Any, one_event())
                .aux(AuxWrite::put(b"checkpoint", b"42")),
        )
        .await
        .unwrap_err();
    assert!(err.is_corruption(), "{err}");
    let batch = Batch::new(vec![])
        .part(sid("t"), ExpectedVersion::Any, one_event())
        .part(sid("s"), ExpectedVersion::Any, one_event())
        .aux(AuxWrite::put(b"batch-checkpoint", b"7"));
    assert!(store.append_batch(batch).await.unwrap_err().is_corruption());
    for key in [&b"checkpoint"[..], b"batch-checkpoint"] {
        assert_eq!(store.aux_get(key).await.unwrap(), None, "{key:?} written");
    }
    let written = store
        .append(&sid("t"), ExpectedVersion::Any, one_event())
        .await
        .unwrap();
    assert_eq!(written.first_position, Position(1));
    store.health().await.unwrap();
    store.close().await.unwrap();
}

/// Item 5 (and 7): a `last_recorded_at` beyond 9999-12-31, the latest time
/// annals records, is damage: `verify` reports it, and new events do not
/// inherit it (they get the clock's time, and the commit heals it).
#[tokio::test]
async fn a_recorded_at_beyond_year_9999_does_not_spread() {
    let meta = StoreMeta {
        last_recorded_at: u64::MAX,
        ..StoreMeta::default()
    };
    let (store, _) = open(crafted(vec![store_meta(meta)]), StoreConfig::default());
    let report = store.verify(None).await.unwrap();
    assert!(
        report
            .problems
            .iter()
            .any(|p| p.location == "store metadata"),
        "{report:?}"
    );
    store
        .append(&sid("s"), ExpectedVersion::Any, one_event())
        .await
        .unwrap();
    let page = store
        .read_all(Position(0), 10, Direction::Forward, None)
        .await
        .unwrap();
    let recorded = page.events[0].recorded_at;
    assert!(
        recorded <= Timestamp::now(),
        "{recorded:?} inherited the damage"
    );
    assert!(recorded <= Timestamp::MAX);
    // The commit wrote a sound time over the damaged one.
    assert!(store.verify(None).await.unwrap().is_clean());
    store.close().await.unwrap();
}

/// Item 5: a writer that died (here: the engine panicked under it) is
/// seen. The append that met it and every later one fail naming the cause
/// — not `Closed` — `health` fails naming it, and `close` ends the store
/// (every call is then `Closed`) and reports it.
#[tokio::test]
async fn a_dead_writer_fails_health_with_its_cause() {
    let (store, probe) = open(MemoryEngine::new(), StoreConfig::default());
    store
        .append(&sid("s"), ExpectedVersion::Any, one_event())
        .await
        .unwrap();
    probe.panic_on_snapshot.store(true, Ordering::Release);
    for _ in 0..2 {
        let err = store
            .append(&sid("s"), ExpectedVersion::Any, one_event())
            .await
            .unwrap_err();
        assert!(!err.is_closed(), "{err}");
        assert!(
            err.to_string().contains("the probe panics on snapshot"),
            "{err}"
        );
    }
    probe.panic_on_snapshot.store(false, Ordering::Release);
    let err = store.health().await.unwrap_err();
    assert!(
        err.to_string().contains("the probe panics on snapshot"),
        "{err}"
    );
    let err = store.close().await.unwrap_err();
    assert!(
        err.to_string().contains("the probe panics on snapshot"),
        "{err}"
    );
    assert!(store.health().await.unwrap_err().is_closed());
    let err = store
        .append(&sid("s"), ExpectedVersion::Any, one_event())
        .await
        .unwrap_err();
    assert!(err.is_closed(), "{err}");
}
