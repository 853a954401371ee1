//! The event-store layer of `annals-store` on this backend: subscriptions
//! over the head watch (R8), consumer checkpoints, snapshots and custom
//! indexes in the aux space (X1), checkpoints committed with appends (X2),
//! typed events.
//!
//! The store is built once on `LogBackend`, so these cases check both the
//! layer and what it relies on: that the head watch, commit order and
//! read-your-writes of the backend make a gap-free, duplicate-free live
//! subscription, and that aux writes commit atomically with appends.

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use annals_core::{
    Append, AppendResult, AuxWrite, Batch, Capabilities, Direction, Error, ExpectedVersion,
    HeadWatch, Limits, LogBackend, NewEvent, Page, Position, Query, RecordedEvent, Result,
    StreamId, StreamInfo, Uuid, VerifyProgress, VerifyReport, Version,
};
use annals_store::{EventStore, Indexer, Subscription, TypedEvent};
use futures::StreamExt;
use serde::{Deserialize, Serialize};

use super::{Case, case};
use crate::Harness;
use crate::support::*;

/// The cases of this module.
pub fn cases<H: Harness>() -> Vec<Case<H>> {
    vec![
        case!(r8_subscribe_all_catches_up_then_follows_live),
        case!(r8_subscription_switch_to_live_has_no_gap_or_duplicate),
        case!(r8_subscribe_all_with_a_query),
        case!(r8_subscribe_stream_waits_catches_up_and_follows),
        case!(m4_subscription_ends_with_closed_after_close),
        case!(r8_subscription_reads_one_page_at_a_time_and_stops_when_dropped),
        case!(x1_checkpoint_save_read_reset, |c| c.aux),
        case!(x1_subscribe_from_checkpoint_resumes_after_it, |c| c.aux),
        case!(x2_checkpoint_commits_with_the_append, |c| c.aux
            && c.append_batch),
        case!(x2_process_manager_acts_exactly_once_across_crashes, |c| c
            .aux),
        case!(m5_checkpoint_snapshot_and_index_survive_reopen, |c| c
            .persistent
            && c.aux),
        case!(x1_snapshot_latest_replaces_older_and_load, |c| c.aux),
        case!(s4_snapshot_of_a_deleted_stream_is_never_returned, |c| c.aux
            && c.delete),
        case!(x1_index_lookup_sees_every_committed_event, |c| c.aux),
        case!(x1_index_lookups_race_appends, |c| c.aux),
        case!(x1_index_rebuilds_when_missing_or_version_changes, |c| c.aux),
        case!(s4_index_leaves_out_deleted_and_truncated_events, |c| c.aux
            && c.delete
            && c.truncate),
        case!(x1_index_unmatched_appends_cost_no_entries, |c| c.aux),
        case!(x1_index_lookups_during_rebuilds_miss_nothing, |c| c.aux),
        case!(x1_index_partly_deleted_data_is_found_and_rebuilt, |c| c.aux),
        case!(
            x2_index_rebuild_interrupted_by_a_crash_keeps_lookups_whole,
            |c| c.aux
        ),
        case!(d3_typed_events_round_trip_and_decode_errors),
    ]
}

/// How long a case waits for an event a subscription must deliver.
const WAIT: Duration = Duration::from_secs(30);

/// How long a case watches a caught-up subscription for an event that must
/// not come (a duplicate).
const QUIET: Duration = Duration::from_millis(300);

/// The next event of `sub`; fails the case if it does not come within
/// [`WAIT`], ends, or is an error.
#[track_caller]
fn next_event<'a>(
    sub: &'a mut Subscription,
    what: &'a str,
) -> impl Future<Output = RecordedEvent> + 'a {
    let location = std::panic::Location::caller();
    async move {
        match tokio::time::timeout(WAIT, sub.next()).await {
            Err(_) => panic!("{what}: no event within {WAIT:?} (at {location})"),
            Ok(None) => panic!("{what}: the subscription ended (at {location})"),
            Ok(Some(Err(e))) => panic!("{what}: the subscription failed: {e} (at {location})"),
            Ok(Some(Ok(event))) => event,
        }
    }
}

/// Takes `n` events from `sub`.
async fn take(sub: &mut Subscription, n: usize, what: &str) -> Vec<RecordedEvent> {
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        out.push(next_event(sub, what).await);
    }
    out
}

/// Checks that `sub` yields nothing more for a while (no duplicate, no
/// event from elsewhere).
async fn assert_quiet(sub: &mut Subscription, what: &str) {
    if let Ok(item) = tokio::time::timeout(QUIET, sub.next()).await {
        panic!(
            "{what}: expected nothing more, got {:?}",
            item.map(|r| r.map(|e| summary(&e)))
        );
    }
}

/// Checks that `got` is exactly `expected`: same events in the same order,
/// and names the first gap or duplicate.
#[track_caller]
fn assert_exact_sequence(got: &[RecordedEvent], expected: &[RecordedEvent], what: &str) {
    let mut seen = HashSet::new();
    for e in got {
        assert!(
            seen.insert(e.event_id),
            "{what}: duplicate {} in the subscription",
            summary(e)
        );
    }
    for pair in got.windows(2) {
        assert!(
            pair[0].position < pair[1].position,
            "{what}: out of commit order: {} then {}",
            summary(&pair[0]),
            summary(&pair[1])
        );
    }
    for (i, e) in expected.iter().enumerate() {
        match got.get(i) {
            Some(g) if g.event_id == e.event_id => {}
            Some(g) => panic!(
                "{what}: event {i} is {} but the log has {} there (a gap?)",
                summary(g),
                summary(e)
            ),
            None => panic!(
                "{what}: missing {} (and {} more)",
                summary(e),
                expected.len() - i - 1
            ),
        }
    }
    assert_eq!(got.len(), expected.len(), "{what}: extra events");
    assert_same_events(got, expected, what);
}

/// An event store over `store` reading `page_size` events at a time.
async fn event_store(store: &Store, page_size: usize) -> Result<EventStore> {
    EventStore::builder(store.clone())
        .page_size(page_size)
        .open()
        .await
}

/// An event whose data is `text`.
fn text_event(event_type: &str, text: &str, tags: &[&str]) -> NewEvent {
    NewEvent::builder(event_type)
        .data(text.as_bytes().to_vec())
        .tags(tags.iter().copied())
        .build()
}

// ------------------------------------------------------------ subscriptions

// [R8] [R3] [R4] A subscription from the start first reads what is there
// (several pages), then follows new commits made while it reads and after
// it caught up: it yields every event exactly once, in commit order, and
// nothing more.
/// `[R8]`: catch up, then live.
pub async fn r8_subscribe_all_catches_up_then_follows_live<H: Harness>(h: H) -> CaseResult {
    let store = h.open(default_config()).await?;
    let es = event_store(&store, 7).await?;
    let streams = [sid("sub-a"), sid("sub-b"), sid("sub-c")];
    for i in 0..12 {
        store
            .append(&streams[i % 3], ExpectedVersion::Any, events(1 + i % 3))
            .await?;
    }
    let before = all_events(&store).await?;
    let mut sub = es.subscribe_all(Position::START, None)?;
    // Appends race the catch-up.
    let writer = {
        let store = store.clone();
        let streams = streams.clone();
        tokio::spawn(async move {
            for i in 0..30 {
                store
                    .append(&streams[i % 3], ExpectedVersion::Any, events(1 + i % 2))
                    .await?;
                if i % 5 == 0 {
                    tokio::task::yield_now().await;
                }
            }
            Ok::<_, Error>(())
        })
    };
    let first = take(&mut sub, before.len(), "catching up").await;
    assert_exact_sequence(&first, &before, "the events there before subscribing");
    writer.await??;
    let all = all_events(&store).await?;
    let rest = take(&mut sub, all.len() - before.len(), "following").await;
    let got: Vec<RecordedEvent> = first.into_iter().chain(rest).collect();
    assert_exact_sequence(&got, &all, "catch-up and live");
    assert_quiet(&mut sub, "caught up").await;
    // Once quiet, one more append arrives, alone.
    let last = events(2);
    store
        .append(&streams[0], ExpectedVersion::Any, last.clone())
        .await?;
    let more = take(&mut sub, 2, "after a quiet while").await;
    assert_eq!(
        ids(&more),
        new_ids(&last),
        "the append made after caught up"
    );
    assert_quiet(&mut sub, "after the last append").await;
    Ok(())
}

// [R8] [R4] [R5] Subscriptions started at many moments while four writers
// append (with pages of 3, so each switches between catching up and live
// many times) each yield exactly the log from their start position on: no
// gap, no duplicate, commit order.
/// `[R8]`: no gap or duplicate at the switch.
pub async fn r8_subscription_switch_to_live_has_no_gap_or_duplicate<H: Harness>(
    h: H,
) -> CaseResult {
    let store = h.open(default_config()).await?;
    let es = event_store(&store, 3).await?;
    store
        .append(&sid("switch-0"), ExpectedVersion::Any, events(5))
        .await?;
    let writers: Vec<_> = (0..4)
        .map(|w| {
            let store = store.clone();
            tokio::spawn(async move {
                let stream = sid(&format!("switch-{w}"));
                for i in 0..40 {
                    store
                        .append(&stream, ExpectedVersion::Any, events(1 + (i + w) % 3))
                        .await?;
                    tokio::task::yield_now().await;
                }
                Ok::<_, Error>(())
            })
        })
        .collect();
    // Subscribers start at various moments and positions, while writing.
    let mut subscribers = Vec::new();
    for k in 0..8u64 {
        tokio::time::sleep(Duration::from_millis(3 * k)).await;
        let from = if k % 2 == 0 {
            Position::START
        } else {
            head(&store).await?
        };
        let sub = es.subscribe_all(from, None)?;
        subscribers.push((from, sub));
    }
    for w in writers {
        w.await??;
    }
    let all = all_events(&store).await?;
    let last = all.last().map(|e| e.position).unwrap_or(Position::START);
    for (k, (from, mut sub)) in subscribers.into_iter().enumerate() {
        let expected: Vec<RecordedEvent> =
            all.iter().filter(|e| e.position >= from).cloned().collect();
        let what = format!("subscriber {k} from position {from}");
        let got = take(&mut sub, expected.len(), &what).await;
        assert_exact_sequence(&got, &expected, &what);
        assert_eq!(got.last().map(|e| e.position), Some(last), "{what}");
        assert_quiet(&mut sub, &what).await;
    }
    Ok(())
}

// [R8] [R6] A subscription with a query yields exactly the matching events,
// from what was there and from what comes, in commit order.
/// `[R8]`: subscription with a query.
pub async fn r8_subscribe_all_with_a_query<H: Harness>(h: H) -> CaseResult {
    let store = h.open(default_config()).await?;
    let es = event_store(&store, 4).await?;
    let q = Query::types(["Paid"]).item(annals_core::QueryItem::new().with_tag("vip"));
    let s = sid("q-sub");
    let mixed = |i: usize| match i % 4 {
        0 => tagged("Paid", &[]),
        1 => tagged("Placed", &["vip"]),
        2 => tagged("Placed", &["regular"]),
        _ => tagged("Shipped", &[]),
    };
    for i in 0..20 {
        store
            .append(&s, ExpectedVersion::Any, vec![mixed(i)])
            .await?;
    }
    let mut sub = es.subscribe_all(Position::START, Some(q.clone()))?;
    let writer = {
        let store = store.clone();
        let s = s.clone();
        tokio::spawn(async move {
            for i in 0..24 {
                store
                    .append(&s, ExpectedVersion::Any, vec![mixed(i)])
                    .await?;
            }
            Ok::<_, Error>(())
        })
    };
    writer.await??;
    let expected = query_events(&store, &q).await?;
    assert_eq!(expected.len(), 22, "matching events written");
    let got = take(&mut sub, expected.len(), "query subscription").await;
    assert_exact_sequence(&got, &expected, "query subscription");
    assert_quiet(&mut sub, "query subscription").await;
    assert_invalid(
        es.subscribe_all(Position::START, Some(Query::types([""]))),
        "a subscription with an invalid query",
    );
    Ok(())
}

// [R8] [R1] A stream subscription waits for a stream that does not exist
// yet, then yields its events with version ≥ from — none of another
// stream's — as they come, in order.
/// `[R8]`: stream subscription.
pub async fn r8_subscribe_stream_waits_catches_up_and_follows<H: Harness>(h: H) -> CaseResult {
    let store = h.open(default_config()).await?;
    let es = event_store(&store, 2).await?;
    let s = sid("watched");
    let other = sid("watched-not");
    let mut from_two = es.subscribe_stream(&s, Version(2))?;
    let mut from_zero = es.subscribe_stream(&s, Version::FIRST)?;
    store
        .append(&other, ExpectedVersion::Any, events(3))
        .await?;
    assert_quiet(&mut from_zero, "a stream that does not exist yet").await;
    let first = events(5);
    store
        .append(&s, ExpectedVersion::NoStream, first.clone())
        .await?;
    store
        .append(&other, ExpectedVersion::Any, events(2))
        .await?;
    let second = events(3);
    store
        .append(&s, ExpectedVersion::exact(4), second.clone())
        .await?;
    let got = take(&mut from_zero, 8, "stream from 0").await;
    assert_eq!(versions(&got), (0..8).collect::<Vec<_>>());
    assert_eq!(ids(&got), [new_ids(&first), new_ids(&second)].concat());
    let got = take(&mut from_two, 6, "stream from 2").await;
    assert_eq!(versions(&got), (2..8).collect::<Vec<_>>());
    assert!(
        got.iter().all(|e| e.stream_id == s),
        "another stream's event"
    );
    assert_quiet(&mut from_zero, "stream from 0").await;
    assert_quiet(&mut from_two, "stream from 2").await;
    let late = events(1);
    store.append(&s, ExpectedVersion::Any, late.clone()).await?;
    assert_eq!(
        next_event(&mut from_two, "a later append").await.event_id,
        late[0].event_id
    );
    Ok(())
}

// [M4] [R8] Closing the store ends a subscription: after the events it
// had, it yields Error::Closed and then ends — it does not hang.
/// `[M4]`: subscriptions end at close.
pub async fn m4_subscription_ends_with_closed_after_close<H: Harness>(h: H) -> CaseResult {
    let store = h.open(default_config()).await?;
    let es = event_store(&store, 10).await?;
    store
        .append(&sid("closing"), ExpectedVersion::Any, events(3))
        .await?;
    let mut sub = es.subscribe_all(Position::START, None)?;
    let mut stream_sub = es.subscribe_stream(&sid("closing"), Version(3))?;
    take(&mut sub, 3, "before close").await;
    assert_quiet(&mut sub, "before close").await;
    let waiting = tokio::spawn(async move {
        let item = stream_sub.next().await;
        (item, stream_sub.next().await)
    });
    es.close().await?;
    for (what, item, after) in [
        ("caught-up subscription", sub.next().await, sub.next().await),
        {
            let (item, after) = tokio::time::timeout(WAIT, waiting)
                .await
                .map_err(|_| Failure::new("a waiting subscription hangs after close"))??;
            ("waiting stream subscription", item, after)
        },
    ] {
        match item {
            Some(Err(e)) if matches!(e.root(), Error::Closed) => {}
            other => panic!(
                "{what} after close: expected Error::Closed, got {:?}",
                other.map(|r| r.map(|e| summary(&e)))
            ),
        }
        assert!(after.is_none(), "{what} goes on after Closed");
    }
    assert_closed(
        es.subscribe_all(Position::START, None),
        "subscribe_all after close",
    );
    Ok(())
}

// [R8] [R3] A subscription reads the log one page at a time, when its
// consumer wants more: a consumer that takes 15 of 200 events caused two
// reads of at most a page each, and nothing more is read while it waits or
// after the subscription is dropped (appends cost it nothing).
/// `[R8]`: bounded reads; dropping stops.
pub async fn r8_subscription_reads_one_page_at_a_time_and_stops_when_dropped<H: Harness>(
    h: H,
) -> CaseResult {
    let store = h.open(default_config()).await?;
    for _ in 0..20 {
        store
            .append(&sid("lazy"), ExpectedVersion::Any, events(10))
            .await?;
    }
    let counting = Arc::new(Crashing::counting(store.clone()));
    let es = event_store(&(counting.clone() as Store), 10).await?;
    let mut sub = es.subscribe_all(Position::START, None)?;
    let got = take(&mut sub, 15, "lazy subscription").await;
    assert_eq!(positions(&got), (1..=15).collect::<Vec<_>>());
    tokio::time::sleep(QUIET).await;
    assert_eq!(
        counting.reads.load(Ordering::SeqCst),
        2,
        "reads for 15 events in pages of 10"
    );
    assert_eq!(
        counting.largest_read.load(Ordering::SeqCst),
        10,
        "largest page read"
    );
    let rest = take(&mut sub, 185, "the rest").await;
    assert_eq!(rest.last().map(|e| e.position), Some(Position(200)));
    assert_quiet(&mut sub, "caught up").await;
    let reads = counting.reads.load(Ordering::SeqCst);
    assert!(reads <= 21, "{reads} reads for 200 events in pages of 10");
    drop(sub);
    for _ in 0..5 {
        store
            .append(&sid("lazy"), ExpectedVersion::Any, events(1))
            .await?;
    }
    tokio::time::sleep(QUIET).await;
    assert_eq!(
        counting.reads.load(Ordering::SeqCst),
        reads,
        "a dropped subscription went on reading"
    );
    Ok(())
}

// ------------------------------------------------------------ checkpoints

// [X1] A checkpoint is absent until saved, then holds the last position
// saved, until reset; names are checked; checkpoints live in the aux
// space, apart from the log.
/// `[X1]`: checkpoints.
pub async fn x1_checkpoint_save_read_reset<H: Harness>(h: H) -> CaseResult {
    let store = h.open(default_config()).await?;
    let es = EventStore::new(store.clone());
    assert_eq!(es.checkpoint("mailer").await?, None);
    es.save_checkpoint("mailer", Position(7)).await?;
    es.save_checkpoint("billing/eu", Position(3)).await?;
    assert_eq!(es.checkpoint("mailer").await?, Some(Position(7)));
    assert_eq!(es.checkpoint("billing/eu").await?, Some(Position(3)));
    assert_eq!(es.checkpoint("billing").await?, None, "a prefix of a name");
    es.save_checkpoint("mailer", Position(u64::MAX)).await?;
    assert_eq!(es.checkpoint("mailer").await?, Some(Position(u64::MAX)));
    es.reset_checkpoint("mailer").await?;
    assert_eq!(es.checkpoint("mailer").await?, None);
    assert_eq!(es.checkpoint("billing/eu").await?, Some(Position(3)));
    for bad in ["", "a\nb", &"n".repeat(129)] {
        assert_invalid(es.checkpoint(bad).await, "a bad checkpoint name");
        assert_invalid(
            es.save_checkpoint(bad, Position(1)).await,
            "saving a bad checkpoint name",
        );
    }
    assert!(!store.has_events().await?, "a checkpoint wrote an event");
    let aux = all_aux(&store).await?;
    assert_eq!(aux.len(), 1, "aux entries: {aux:?}");
    assert!(aux[0].0.starts_with(b"annals-store/checkpoint/"));
    // A damaged value is an error naming the key, not a wrong position.
    store
        .aux_put(b"annals-store/checkpoint/broken", b"xyz")
        .await?;
    let e = expect_err(es.checkpoint("broken").await, "a damaged checkpoint");
    assert!(
        matches!(e, Error::Corruption { message: ref m, .. } if m.contains("broken")),
        "damaged checkpoint: {e:?}"
    );
    Ok(())
}

// [X1] [R8] subscribe_from_checkpoint starts right after the saved position
// (at the start without one), then follows live.
/// `[X1]`: resume after a checkpoint.
pub async fn x1_subscribe_from_checkpoint_resumes_after_it<H: Harness>(h: H) -> CaseResult {
    let store = h.open(default_config()).await?;
    let es = event_store(&store, 3).await?;
    for i in 0..10 {
        store
            .append(
                &sid(&format!("cp-{}", i % 2)),
                ExpectedVersion::Any,
                events(1),
            )
            .await?;
    }
    let all = all_events(&store).await?;
    let mut fresh = es.subscribe_from_checkpoint("proj", None).await?;
    let got = take(&mut fresh, 10, "without a checkpoint").await;
    assert_exact_sequence(&got, &all, "without a checkpoint");
    es.save_checkpoint("proj", all[3].position).await?;
    let mut resumed = es.subscribe_from_checkpoint("proj", None).await?;
    let got = take(&mut resumed, 6, "after the checkpoint").await;
    assert_exact_sequence(&got, &all[4..], "after the checkpoint");
    let q = Query::types(["Odd"]);
    let mut filtered = es.subscribe_from_checkpoint("proj", Some(q)).await?;
    store
        .append(
            &sid("cp-0"),
            ExpectedVersion::Any,
            vec![ev("Even"), ev("Odd")],
        )
        .await?;
    let odd = next_event(&mut filtered, "filtered after checkpoint").await;
    assert_eq!(odd.event_type, "Odd");
    let live = take(&mut resumed, 2, "live after resume").await;
    assert_eq!(live[1].event_id, odd.event_id);
    assert_quiet(&mut resumed, "after resume").await;
    assert_quiet(&mut filtered, "filtered").await;
    Ok(())
}

// [X2] [A2] A checkpoint written with an append commits with it: a stale
// `previous` fails the whole append (no event, checkpoint unchanged); the
// right one commits both; a batch the same.
/// `[X2]`: checkpoint with the append.
pub async fn x2_checkpoint_commits_with_the_append<H: Harness>(h: H) -> CaseResult {
    let store = h.open(default_config()).await?;
    let es = EventStore::new(store.clone());
    let out = sid("pm-out");
    let append = |n| Append::new(out.clone(), ExpectedVersion::Any, events(n));
    let r = es
        .append_with_checkpoint(append(2), "pm", None, Position(5))
        .await?;
    assert_eq!(r.last_version, Version(1));
    assert_eq!(es.checkpoint("pm").await?, Some(Position(5)));
    let message = assert_condition_failed(
        es.append_with_checkpoint(append(1), "pm", Some(Position(4)), Position(9))
            .await,
        "a stale previous checkpoint",
    );
    assert!(
        message.contains("annals-store/checkpoint/pm"),
        "the message does not name the key: {message}"
    );
    assert_condition_failed(
        es.append_with_checkpoint(append(1), "pm", None, Position(9))
            .await,
        "no previous checkpoint, but there is one",
    );
    assert_eq!(es.checkpoint("pm").await?, Some(Position(5)));
    assert_eq!(
        stream_events(&store, &out).await?.len(),
        2,
        "events of failed appends"
    );
    es.append_with_checkpoint(append(1), "pm", Some(Position(5)), Position(9))
        .await?;
    assert_eq!(es.checkpoint("pm").await?, Some(Position(9)));
    let batch = || {
        Batch::default()
            .part(sid("pm-b1"), ExpectedVersion::Any, events(1))
            .part(sid("pm-b2"), ExpectedVersion::Any, events(1))
    };
    assert_condition_failed(
        es.append_batch_with_checkpoint(batch(), "pm", Some(Position(5)), Position(12))
            .await,
        "a batch with a stale checkpoint",
    );
    assert!(!store.stream_exists(&sid("pm-b1")).await?);
    es.append_batch_with_checkpoint(batch(), "pm", Some(Position(9)), Position(12))
        .await?;
    assert_eq!(es.checkpoint("pm").await?, Some(Position(12)));
    assert!(store.stream_exists(&sid("pm-b2")).await?);
    Ok(())
}

/// Where a [`Crashing`] backend dies.
#[derive(Clone, Copy, Debug)]
enum CrashPoint {
    /// Before the write reaches the store: it is lost.
    BeforeWrite,
    /// After the write committed, before its answer reaches the caller.
    AfterWrite,
}

/// A backend that "crashes" at its n-th write (append, batch or aux write):
/// from then on every call fails, as if the process had died. The store
/// under it is left as the crash left it. It also counts the reads of the
/// global log and the largest page asked for, and can make aux scans slow
/// (a database across a network).
struct Crashing {
    inner: Store,
    writes_left: AtomicUsize,
    point: CrashPoint,
    crashed: AtomicBool,
    reads: AtomicUsize,
    largest_read: AtomicUsize,
    scan_delay: Duration,
    scans: AtomicUsize,
}

impl fmt::Debug for Crashing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Crashing")
            .field("point", &self.point)
            .field("crashed", &self.crashed)
            .finish_non_exhaustive()
    }
}

impl Crashing {
    fn new(inner: Store, at_write: usize, point: CrashPoint) -> Self {
        Crashing {
            inner,
            writes_left: AtomicUsize::new(at_write),
            point,
            crashed: AtomicBool::new(false),
            reads: AtomicUsize::new(0),
            largest_read: AtomicUsize::new(0),
            scan_delay: Duration::ZERO,
            scans: AtomicUsize::new(0),
        }
    }

    /// A backend that never crashes and takes up to 3 times `delay` before
    /// each aux scan.
    fn slow_scans(inner: Store, delay: Duration) -> Self {
        Crashing {
            scan_delay: delay,
            ..Self::counting(inner)
        }
    }

    /// A backend that never crashes (it only counts).
    fn counting(inner: Store) -> Self {
        Self::new(inner, usize::MAX, CrashPoint::BeforeWrite)
    }

    /// From now on, crashes at the `at_write`-th write (1 = the next one).
    fn arm(&self, at_write: usize) {
        self.writes_left.store(at_write, Ordering::SeqCst);
    }

    fn dead() -> Error {
        Error::backend("simulated crash", "the process died")
    }

    fn alive(&self) -> Result<()> {
        if self.crashed.load(Ordering::SeqCst) {
            Err(Self::dead())
        } else {
            Ok(())
        }
    }

    /// Runs a write, crashing before or after it when its turn comes.
    async fn write<T>(&self, write: impl Future<Output = Result<T>>) -> Result<T> {
        self.alive()?;
        let left = self.writes_left.fetch_sub(1, Ordering::SeqCst);
        if left != 1 {
            return write.await;
        }
        self.crashed.store(true, Ordering::SeqCst);
        if let CrashPoint::AfterWrite = self.point {
            write.await?;
        }
        Err(Self::dead())
    }
}

#[async_trait::async_trait]
impl LogBackend for Crashing {
    fn capabilities(&self) -> Capabilities {
        self.inner.capabilities()
    }
    fn limits(&self) -> Limits {
        self.inner.limits()
    }
    async fn append_with(&self, append: Append) -> Result<AppendResult> {
        self.write(self.inner.append_with(append)).await
    }
    async fn append_batch(&self, batch: Batch) -> Result<Vec<AppendResult>> {
        self.write(self.inner.append_batch(batch)).await
    }
    async fn aux_write(&self, writes: Vec<AuxWrite>) -> Result<()> {
        self.write(self.inner.aux_write(writes)).await
    }
    async fn read_stream(
        &self,
        stream: &StreamId,
        from: Version,
        count: usize,
        direction: Direction,
    ) -> Result<Page> {
        self.alive()?;
        self.inner.read_stream(stream, from, count, direction).await
    }
    async fn read_all(
        &self,
        from: Position,
        count: usize,
        direction: Direction,
        query: Option<&Query>,
    ) -> Result<Page> {
        self.alive()?;
        self.reads.fetch_add(1, Ordering::SeqCst);
        self.largest_read.fetch_max(count, Ordering::SeqCst);
        self.inner.read_all(from, count, direction, query).await
    }
    async fn stream_version(&self, stream: &StreamId) -> Result<Version> {
        self.alive()?;
        self.inner.stream_version(stream).await
    }
    async fn list_streams(
        &self,
        after: Option<&StreamId>,
        limit: usize,
    ) -> Result<Vec<StreamInfo>> {
        self.alive()?;
        self.inner.list_streams(after, limit).await
    }
    async fn delete_stream(&self, stream: &StreamId, expected: ExpectedVersion) -> Result<()> {
        self.write(self.inner.delete_stream(stream, expected)).await
    }
    async fn truncate_stream(&self, stream: &StreamId, before: Version) -> Result<()> {
        self.write(self.inner.truncate_stream(stream, before)).await
    }
    async fn disk_bytes(&self) -> Result<u64> {
        self.alive()?;
        self.inner.disk_bytes().await
    }
    async fn has_events(&self) -> Result<bool> {
        self.alive()?;
        self.inner.has_events().await
    }
    async fn health(&self) -> Result<()> {
        self.alive()?;
        self.inner.health().await
    }
    async fn close(&self) -> Result<()> {
        self.alive()?;
        self.inner.close().await
    }
    fn watch_head(&self) -> Result<HeadWatch> {
        self.alive()?;
        self.inner.watch_head()
    }
    async fn verify(&self, progress: Option<VerifyProgress>) -> Result<VerifyReport> {
        self.alive()?;
        self.inner.verify(progress).await
    }
    async fn aux_get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        self.alive()?;
        self.inner.aux_get(key).await
    }
    async fn aux_scan(
        &self,
        prefix: &[u8],
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        self.alive()?;
        if !self.scan_delay.is_zero() {
            // Jitter: 0, 1, 2 or 3 times the delay, by turns.
            let turn = self.scans.fetch_add(1, Ordering::SeqCst) % 4;
            tokio::time::sleep(self.scan_delay * turn as u32).await;
        }
        self.inner.aux_scan(prefix, after, limit).await
    }
}

/// The process manager of the crash case: for every `OrderPlaced`, it
/// appends one `ShipmentRequested` (data: the order) to `out`, with
/// `ExpectedVersion::Any` so the store itself deduplicates nothing. With
/// `atomic`, the checkpoint commits with the append; without (the control),
/// it is saved after it. Runs until it has handled the event at `target`,
/// or fails when its backend crashes.
async fn run_process_manager(
    es: &EventStore,
    name: &str,
    out: &StreamId,
    target: Position,
    atomic: bool,
) -> Result<()> {
    let mut previous = es.checkpoint(name).await?;
    let mut orders = es
        .subscribe_from_checkpoint(name, Some(Query::types(["OrderPlaced"])))
        .await?;
    while previous.is_none_or(|p| p < target) {
        let placed = match tokio::time::timeout(WAIT, orders.next()).await {
            Err(_) => panic!("the process manager waited {WAIT:?} for an order"),
            Ok(None) => return Err(Error::Closed),
            Ok(Some(item)) => item?,
        };
        let shipment = NewEvent::builder("ShipmentRequested")
            .data(placed.data.clone())
            .build();
        let append = Append::new(out.clone(), ExpectedVersion::Any, vec![shipment]);
        if atomic {
            es.append_with_checkpoint(append, name, previous, placed.position)
                .await?;
        } else {
            es.backend().append_with(append).await?;
            es.save_checkpoint(name, placed.position).await?;
        }
        previous = Some(placed.position);
    }
    Ok(())
}

/// Runs the process manager once per crash in `crashes`, each time on a
/// fresh [`Crashing`] backend over the store ("restarting the process":
/// reopening it when it is persistent), then once more without a crash.
/// Answers the store and how many shipments each order got.
async fn run_through_crashes<H: Harness>(
    h: &H,
    mut store: Store,
    crashes: &[(usize, CrashPoint)],
    name: &str,
    target: Position,
    atomic: bool,
) -> std::result::Result<(Store, BTreeMap<String, usize>), Failure> {
    let out = sid(&format!("shipments-{name}"));
    for (run, &(at_write, point)) in crashes.iter().enumerate() {
        let crashing = Arc::new(Crashing::new(store.clone(), at_write, point));
        let es = EventStore::new(crashing.clone());
        let result = run_process_manager(&es, name, &out, target, atomic).await;
        let crashed = crashing.crashed.load(Ordering::SeqCst);
        match result {
            Err(_) if crashed => {}
            Err(e) => return Err(Failure::new(format!("run {run} failed: {e}"))),
            Ok(()) if crashed => {
                return Err(Failure::new(format!(
                    "run {run} finished although its backend crashed"
                )));
            }
            Ok(()) => break,
        }
        drop(es);
        drop(crashing);
        if H::capabilities().persistent {
            store = h.reopen(store, default_config()).await?;
        }
    }
    run_process_manager(&EventStore::new(store.clone()), name, &out, target, atomic).await?;
    let mut shipments = BTreeMap::new();
    for e in stream_events(&store, &out).await? {
        *shipments
            .entry(String::from_utf8_lossy(&e.data).into_owned())
            .or_insert(0) += 1;
    }
    Ok((store, shipments))
}

// [X2] [A2] [M5] A process manager that commits its checkpoint with the
// events it emits acts on every event exactly once, although its process
// "crashes" (a backend that dies at a chosen write, before it commits or
// after it commits but before the answer arrives) and restarts from its
// checkpoint (after a reopen, when the backend is persistent) again and
// again. The control run — checkpoint saved after the append — duplicates
// a shipment under the same kind of crash, so the check can fail.
/// `[X2]`: exactly once across crashes.
pub async fn x2_process_manager_acts_exactly_once_across_crashes<H: Harness>(h: H) -> CaseResult {
    let mut store = h.open(default_config()).await?;
    let mut orders = Vec::new();
    for i in 0..8 {
        let order = format!("order-{i}");
        store
            .append(
                &sid(&order),
                ExpectedVersion::NoStream,
                vec![text_event("OrderPlaced", &order, &[]), ev("OrderPaid")],
            )
            .await?;
        orders.push(order);
    }
    let target = head(&store).await?.0 - 1;
    let target = Position(target);
    use CrashPoint::{AfterWrite, BeforeWrite};
    let crashes = [
        (1, AfterWrite),
        (1, BeforeWrite),
        (2, AfterWrite),
        (2, BeforeWrite),
        (1, AfterWrite),
        (3, AfterWrite),
    ];
    let (s, shipments) =
        run_through_crashes(&h, store, &crashes, "exactly-once", target, true).await?;
    store = s;
    let expected: BTreeMap<String, usize> = orders.iter().map(|o| (o.clone(), 1)).collect();
    assert_eq!(
        shipments, expected,
        "shipments per order with the checkpoint committed with them"
    );
    let es = EventStore::new(store.clone());
    assert_eq!(es.checkpoint("exactly-once").await?, Some(target));

    // The control: the same crash after the append, checkpoint saved apart.
    let (_store, shipments) =
        run_through_crashes(&h, store, &[(1, AfterWrite)], "control", target, false).await?;
    assert_eq!(
        shipments.get("order-0"),
        Some(&2),
        "the control (checkpoint saved after the append) should duplicate order-0: {shipments:?}"
    );
    assert_eq!(shipments.len(), 8);
    Ok(())
}

// [M5] [X1] A checkpoint, a snapshot and an index are where they were
// after close and reopen: the index is not rebuilt (its cursor stays) and
// answers the same.
/// `[M5]`: the store's data survives reopen.
pub async fn m5_checkpoint_snapshot_and_index_survive_reopen<H: Harness>(h: H) -> CaseResult {
    let store = h.open(default_config()).await?;
    let s = sid("persist");
    store
        .append(
            &s,
            ExpectedVersion::NoStream,
            vec![
                tagged("Placed", &["customer:ann"]),
                tagged("Placed", &["customer:bob"]),
                tagged("Paid", &["customer:ann"]),
            ],
        )
        .await?;
    let es = EventStore::builder(store.clone())
        .indexer(ByTag::new("customers", 1, "customer:"))
        .open()
        .await?;
    es.save_checkpoint("proj", Position(2)).await?;
    es.save_snapshot(&s, Version(1), b"state at 1").await?;
    let ann = es.lookup("customers", "ann", Position::START, 10).await?;
    let status = es.index_status("customers").await?;
    assert_eq!(status.map(|s| s.cursor), Some(Position(3)));
    drop(es);
    let store = h.reopen(store, default_config()).await?;
    let reopened = ByTag::new("customers", 1, "customer:");
    let calls = reopened.calls.clone();
    let es = EventStore::builder(store.clone())
        .indexer(reopened)
        .open()
        .await?;
    assert_eq!(
        calls.load(Ordering::SeqCst),
        0,
        "the index was rebuilt after reopen"
    );
    assert_eq!(
        es.checkpoint("proj").await?,
        Some(Position(2)),
        "lost checkpoint"
    );
    let snap = es.latest_snapshot(&s).await?;
    assert_eq!(
        snap.map(|s| (s.version, s.data)),
        Some((Version(1), b"state at 1".to_vec())),
        "lost snapshot"
    );
    assert_eq!(es.index_status("customers").await?, status);
    let again = es.lookup("customers", "ann", Position::START, 10).await?;
    assert_same_events(&again, &ann, "lookup after reopen");
    assert_eq!(positions(&again), vec![1, 3]);
    Ok(())
}

// ------------------------------------------------------------ snapshots

// [X1] A snapshot replaces an older one; an older one never replaces a
// newer; a snapshot beyond the stream's last version, or of a missing
// stream, is refused; load gives the snapshot and the events after it.
/// `[X1]`: snapshots.
pub async fn x1_snapshot_latest_replaces_older_and_load<H: Harness>(h: H) -> CaseResult {
    let store = h.open(small_config()).await?;
    let es = event_store(&store, 4).await?;
    let s = sid("agg-1");
    assert_not_found(es.save_snapshot(&s, Version(0), b"x").await, &s);
    assert_not_found(es.load(&s).await, &s);
    let e = events(10);
    store
        .append(&s, ExpectedVersion::NoStream, e.clone())
        .await?;
    assert_eq!(es.latest_snapshot(&s).await?, None);
    let (none, all) = es.load(&s).await?;
    assert_eq!(none, None);
    assert_eq!(ids(&all), new_ids(&e), "load without a snapshot");
    assert!(es.save_snapshot(&s, Version(2), b"at 2").await?);
    assert!(es.save_snapshot(&s, Version(6), b"at 6").await?);
    let latest = es.latest_snapshot(&s).await?.expect("a snapshot");
    assert_eq!(
        (latest.version, latest.data.as_slice()),
        (Version(6), &b"at 6"[..])
    );
    assert!(
        !es.save_snapshot(&s, Version(4), b"at 4").await?,
        "an older snapshot replaced a newer one"
    );
    assert_eq!(
        es.latest_snapshot(&s).await?.map(|s| s.version),
        Some(Version(6)),
        "stale snapshot"
    );
    let e = expect_err(
        es.save_snapshot(&s, Version(10), b"beyond").await,
        "a snapshot beyond the last version",
    );
    assert!(
        matches!(e, Error::InvalidInput { message: ref m, .. } if m.contains("agg-1") && m.contains("10") && m.contains('9')),
        "{e:?}"
    );
    let (snap, after) = es.load(&s).await?;
    assert_eq!(snap.map(|s| s.version), Some(Version(6)));
    assert_eq!(versions(&after), vec![7, 8, 9], "events after the snapshot");
    assert!(es.save_snapshot(&s, Version(9), b"").await?);
    let (snap, after) = es.load(&s).await?;
    assert_eq!(
        snap.map(|s| (s.version, s.data)),
        Some((Version(9), vec![]))
    );
    assert!(after.is_empty());
    assert_invalid(
        es.save_snapshot(&s, Version(9), &[0; 1024]).await,
        "a snapshot above max_event_bytes with its header",
    );
    let keys: Vec<Vec<u8>> = all_aux(&store).await?.into_iter().map(|(k, _)| k).collect();
    assert_eq!(
        keys,
        vec![b"annals-store/snapshot/agg-1".to_vec()],
        "one snapshot per stream"
    );
    Ok(())
}

// [S4] [X1] Deleting a stream through the store removes its snapshot, so a
// recreated stream starts without it; a stream deleted straight through
// the backend never shows its old snapshot either.
/// `[S4]`: no snapshot of a deleted stream.
pub async fn s4_snapshot_of_a_deleted_stream_is_never_returned<H: Harness>(h: H) -> CaseResult {
    let store = h.open(default_config()).await?;
    let es = EventStore::new(store.clone());
    let s = sid("agg-del");
    store
        .append(&s, ExpectedVersion::NoStream, events(3))
        .await?;
    es.save_snapshot(&s, Version(2), b"old life").await?;
    // A refused delete keeps both.
    assert_wrong_version(
        es.delete_stream(&s, ExpectedVersion::exact(0)).await,
        &s,
        ExpectedVersion::exact(0),
        Some(2),
    );
    assert_eq!(
        es.latest_snapshot(&s).await?.map(|s| s.version),
        Some(Version(2))
    );
    es.delete_stream(&s, ExpectedVersion::exact(2)).await?;
    assert!(
        all_aux(&store).await?.is_empty(),
        "the snapshot outlived its stream"
    );
    // Recreated before anyone looks at the snapshot.
    let reborn = events(2);
    store
        .append(&s, ExpectedVersion::NoStream, reborn.clone())
        .await?;
    assert_eq!(es.latest_snapshot(&s).await?, None);
    let (snap, events_after) = es.load(&s).await?;
    assert_eq!(snap, None, "a recreated stream got its old snapshot");
    assert_eq!(ids(&events_after), new_ids(&reborn));
    assert_eq!(versions(&events_after), vec![3, 4]);
    // Deleted behind the store's back: the snapshot is not returned (and
    // goes).
    es.save_snapshot(&s, Version(4), b"second life").await?;
    store.delete_stream(&s, ExpectedVersion::Any).await?;
    assert_eq!(
        es.latest_snapshot(&s).await?,
        None,
        "a deleted stream's snapshot"
    );
    assert_not_found(es.load(&s).await, &s);
    assert!(all_aux(&store).await?.is_empty());
    assert_not_found(es.delete_stream(&s, ExpectedVersion::Any).await, &s);
    // A stream id too long for a snapshot key: no snapshot, but the rest
    // works.
    let long = sid(&"s".repeat(1024));
    store
        .append(&long, ExpectedVersion::NoStream, events(2))
        .await?;
    assert_invalid(
        es.save_snapshot(&long, Version(1), b"x").await,
        "a snapshot of a 1024-byte stream id",
    );
    assert_eq!(es.latest_snapshot(&long).await?, None);
    assert_eq!(es.load(&long).await?.1.len(), 2);
    es.delete_stream(&long, ExpectedVersion::exact(1)).await?;
    assert!(!store.stream_exists(&long).await?);
    Ok(())
}

// ------------------------------------------------------------ indexes

/// Indexes events by their tags that start with a prefix, under the rest
/// of the tag (`customer:ann` → `ann`); `upper` makes the keys upper case
/// (a changed indexer).
struct ByTag {
    name: String,
    version: u32,
    prefix: String,
    upper: bool,
    filter: Option<Query>,
    calls: Arc<AtomicUsize>,
}

impl ByTag {
    fn new(name: &str, version: u32, prefix: &str) -> Self {
        ByTag {
            name: name.to_string(),
            version,
            prefix: prefix.to_string(),
            upper: false,
            filter: None,
            calls: Arc::new(AtomicUsize::new(0)),
        }
    }
}

impl Indexer for ByTag {
    fn name(&self) -> &str {
        &self.name
    }
    fn version(&self) -> u32 {
        self.version
    }
    fn keys(&self, event: &RecordedEvent) -> Vec<String> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        event
            .tags
            .iter()
            .filter_map(|t| t.strip_prefix(self.prefix.as_str()))
            .map(|k| {
                if self.upper {
                    k.to_uppercase()
                } else {
                    k.to_string()
                }
            })
            .collect()
    }
    fn filter(&self) -> Option<Query> {
        self.filter.clone()
    }
}

/// An event store over `backend` with one index, reading `page_size`
/// events at a time.
async fn indexed(backend: Store, page_size: usize, indexer: ByTag) -> Result<EventStore> {
    EventStore::builder(backend)
        .page_size(page_size)
        .indexer(indexer)
        .open()
        .await
}

/// Every event carrying `tag`, in commit order.
async fn tagged_events(store: &Store, tag: &str) -> Result<Vec<RecordedEvent>> {
    query_events(store, &tag_query(tag)).await
}

/// Every event a lookup finds, paging by `limit`.
async fn lookup_all(
    es: &EventStore,
    index: &str,
    key: &str,
    limit: usize,
) -> Result<Vec<RecordedEvent>> {
    let mut out: Vec<RecordedEvent> = Vec::new();
    loop {
        let from = out.last().map_or(Position::START, |e| e.position.next());
        let page = es.lookup(index, key, from, limit).await?;
        assert!(page.len() <= limit, "a lookup page longer than its limit");
        let n = page.len();
        out.extend(page);
        if n < limit {
            return Ok(out);
        }
    }
}

// [X1] [R5] A lookup finds every event committed before it — appended
// through the backend directly, by anyone — in commit order, paged; a key
// with '/' or NUL in it is its own key; unknown indexes and bad limits
// are refused.
/// `[X1]`: index lookups.
pub async fn x1_index_lookup_sees_every_committed_event<H: Harness>(h: H) -> CaseResult {
    let store = h.open(default_config()).await?;
    let es = EventStore::builder(store.clone())
        .page_size(5)
        .indexer(ByTag::new("by-customer", 1, "customer:"))
        .open()
        .await?;
    assert!(
        es.lookup("by-customer", "ann", Position::START, 10)
            .await?
            .is_empty()
    );
    let customers = ["ann", "bob", "ann/x", "a", "an"];
    for i in 0..30 {
        let c = customers[i % customers.len()];
        let tag = format!("customer:{c}");
        store
            .append(
                &sid(&format!("orders-{}", i % 4)),
                ExpectedVersion::Any,
                vec![
                    tagged("Placed", &[tag.as_str(), "other:1"]),
                    tagged("Noise", &[]),
                ],
            )
            .await?;
    }
    for c in customers {
        let expected = tagged_events(&store, &format!("customer:{c}")).await?;
        assert_eq!(expected.len(), 6);
        let got = es.lookup("by-customer", c, Position::START, 100).await?;
        assert_same_events(&got, &expected, &format!("lookup of {c:?}"));
        let paged = lookup_all(&es, "by-customer", c, 4).await?;
        assert_same_events(&paged, &expected, &format!("paged lookup of {c:?}"));
        let from = expected[2].position;
        let later = es.lookup("by-customer", c, from, 100).await?;
        assert_same_events(
            &later,
            &expected[2..],
            &format!("lookup of {c:?} from {from}"),
        );
    }
    // One more, right before the lookup.
    let late = tagged("Placed", &["customer:bob"]);
    store
        .append(&sid("orders-0"), ExpectedVersion::Any, vec![late.clone()])
        .await?;
    let bob = es
        .lookup("by-customer", "bob", Position::START, 100)
        .await?;
    assert_eq!(
        bob.last().map(|e| e.event_id),
        Some(late.event_id),
        "index missing an event"
    );
    assert!(
        es.lookup("by-customer", "nobody", Position::START, 10)
            .await?
            .is_empty()
    );
    assert_invalid(
        es.lookup("nope", "ann", Position::START, 10).await,
        "an unknown index",
    );
    assert_invalid(
        es.lookup("by-customer", "ann", Position::START, 0).await,
        "limit 0",
    );
    assert_invalid(
        EventStore::builder(store.clone())
            .indexer(ByTag::new("a/b", 1, "x"))
            .open()
            .await,
        "an index name with '/'",
    );
    assert_invalid(
        EventStore::builder(store.clone())
            .indexer(ByTag::new("twice", 1, "x"))
            .indexer(ByTag::new("twice", 1, "y"))
            .open()
            .await,
        "two indexes of one name",
    );
    Ok(())
}

// [X1] [R5] [R4] While four writers append tagged events, lookups run
// again and again: each finds every event whose append returned before the
// lookup began, in commit order, no duplicate.
/// `[X1]`: lookups racing appends.
pub async fn x1_index_lookups_race_appends<H: Harness>(h: H) -> CaseResult {
    let store = h.open(default_config()).await?;
    let es = EventStore::builder(store.clone())
        .page_size(3)
        .indexer(ByTag::new("race", 1, "k:"))
        .open()
        .await?;
    let acknowledged: Arc<Mutex<Vec<Uuid>>> = Arc::new(Mutex::new(Vec::new()));
    let writers: Vec<_> = (0..4)
        .map(|w| {
            let store = store.clone();
            let acknowledged = acknowledged.clone();
            tokio::spawn(async move {
                for i in 0..30 {
                    let tag = if (i + w) % 2 == 0 { "k:even" } else { "k:odd" };
                    let e = tagged("T", &[tag]);
                    let id = e.event_id;
                    store
                        .append(&sid(&format!("race-{w}")), ExpectedVersion::Any, vec![e])
                        .await?;
                    acknowledged.lock().unwrap().push(id);
                }
                Ok::<_, Error>(())
            })
        })
        .collect();
    let mut rounds = 0;
    loop {
        let done = writers.iter().all(|w| w.is_finished());
        let before: HashSet<Uuid> = acknowledged.lock().unwrap().iter().copied().collect();
        let mut found = Vec::new();
        for key in ["even", "odd"] {
            found.extend(es.lookup("race", key, Position::START, 1000).await?);
        }
        let found_ids: HashSet<Uuid> = found.iter().map(|e| e.event_id).collect();
        assert_eq!(
            found_ids.len(),
            found.len(),
            "a lookup returned a duplicate"
        );
        let missing: Vec<&Uuid> = before.difference(&found_ids).collect();
        assert!(
            missing.is_empty(),
            "round {rounds}: the index is missing {} acknowledged events",
            missing.len()
        );
        rounds += 1;
        if done {
            break;
        }
        tokio::task::yield_now().await;
    }
    for w in writers {
        w.await??;
    }
    let even = es.lookup("race", "even", Position::START, 1000).await?;
    assert_same_events(&even, &tagged_events(&store, "k:even").await?, "even");
    assert_eq!(
        even.len() + es.lookup("race", "odd", Position::START, 1000).await?.len(),
        120
    );
    Ok(())
}

// [X1] Index data is always safe to delete: an index whose data is gone is
// rebuilt when the store opens (and when looked up while open); an indexer
// of a new version rebuilds it with its own keys and none of the old; an
// older indexer refuses an index a newer one built; rebuild() restores
// deleted entries.
/// `[X1]`: index rebuilds.
pub async fn x1_index_rebuilds_when_missing_or_version_changes<H: Harness>(h: H) -> CaseResult {
    let store = h.open(default_config()).await?;
    for i in 0..12 {
        let tag = if i % 3 == 0 { "c:ann" } else { "c:bob" };
        store
            .append(
                &sid("hist"),
                ExpectedVersion::Any,
                vec![tagged("T", &[tag])],
            )
            .await?;
    }
    let ann = tagged_events(&store, "c:ann").await?;
    let v1 = ByTag::new("idx", 1, "c:");
    let es = EventStore::builder(store.clone())
        .indexer(v1)
        .open()
        .await?;
    assert_same_events(
        &es.lookup("idx", "ann", Position::START, 100).await?,
        &ann,
        "built from history",
    );
    assert_eq!(index_entry_keys(&store, "idx").await?.len(), 12);

    // Everything of the index deleted behind its back.
    let wipe = |store: Store| async move {
        for (k, _) in all_aux(&store).await? {
            store.aux_delete(&k).await?;
        }
        Ok::<_, Error>(())
    };
    wipe(store.clone()).await?;
    assert_eq!(es.index_status("idx").await?, None);
    assert_same_events(
        &es.lookup("idx", "ann", Position::START, 100).await?,
        &ann,
        "rebuilt while open",
    );
    wipe(store.clone()).await?;
    let es = EventStore::builder(store.clone())
        .indexer(ByTag::new("idx", 1, "c:"))
        .open()
        .await?;
    assert_eq!(
        es.index_status("idx").await?.map(|s| (s.version, s.cursor)),
        Some((1, Position(12))),
        "not rebuilt on open"
    );
    assert_eq!(index_entry_keys(&store, "idx").await?.len(), 12);

    // Entries lost but the state kept: verify_index finds it (by the
    // count the state keeps) and builds the index again; so does rebuild().
    let ann_entries = || async {
        Ok::<_, Error>(
            index_entry_keys(&store, "idx")
                .await?
                .into_iter()
                .filter(|k| k.windows(5).any(|w| w == b"ann\0\x01"))
                .collect::<Vec<_>>(),
        )
    };
    let some = ann_entries().await?;
    assert_eq!(some.len(), ann.len());
    for k in &some {
        store.aux_delete(k).await?;
    }
    let check = es.verify_index("idx").await?;
    assert!(
        check.rebuilt && check.found == 8 && check.expected == 12,
        "verify_index after 4 of 12 entries were deleted: {check:?}"
    );
    assert_same_events(
        &es.lookup("idx", "ann", Position::START, 100).await?,
        &ann,
        "after verify_index",
    );
    let check = es.verify_index("idx").await?;
    assert!(!check.rebuilt && check.found == 12, "{check:?}");
    for k in &ann_entries().await? {
        store.aux_delete(k).await?;
    }
    es.rebuild("idx").await?;
    assert_same_events(
        &es.lookup("idx", "ann", Position::START, 100).await?,
        &ann,
        "after rebuild",
    );

    // A new version: its keys, none of the old.
    let mut v2 = ByTag::new("idx", 2, "c:");
    v2.upper = true;
    let es2 = EventStore::builder(store.clone())
        .indexer(v2)
        .open()
        .await?;
    assert_same_events(
        &es2.lookup("idx", "ANN", Position::START, 100).await?,
        &ann,
        "version 2",
    );
    assert!(
        es2.lookup("idx", "ann", Position::START, 100)
            .await?
            .is_empty(),
        "entries of version 1 kept after version 2 rebuilt the index"
    );
    assert_eq!(index_entry_keys(&store, "idx").await?.len(), 12);
    assert_invalid(
        EventStore::builder(store.clone())
            .indexer(ByTag::new("idx", 1, "c:"))
            .open()
            .await,
        "an older indexer over a newer index",
    );
    // With a filter, catching up reads only what the filter matches.
    let mut filtered = ByTag::new("filtered", 1, "c:");
    filtered.filter = Some(tag_query("c:ann"));
    let calls = filtered.calls.clone();
    let es3 = EventStore::builder(store.clone())
        .indexer(filtered)
        .open()
        .await?;
    assert_eq!(
        calls.load(Ordering::SeqCst),
        ann.len(),
        "events shown to a filtered indexer"
    );
    assert_same_events(
        &es3.lookup("filtered", "ann", Position::START, 100).await?,
        &ann,
        "filtered",
    );
    assert_eq!(
        es3.index_status("filtered").await?.map(|s| s.cursor),
        Some(head(&store).await?),
        "a filtered index's cursor is the head"
    );
    Ok(())
}

// [S4] [S3] A lookup leaves out events deleted or truncated after they
// were indexed (and drops their entries); a recreated stream's new events
// are found.
/// `[S4]`: lookups skip deleted and truncated events.
pub async fn s4_index_leaves_out_deleted_and_truncated_events<H: Harness>(h: H) -> CaseResult {
    let store = h.open(default_config()).await?;
    let es = EventStore::builder(store.clone())
        .indexer(ByTag::new("gone", 1, "c:"))
        .open()
        .await?;
    let (a, b) = (sid("gone-a"), sid("gone-b"));
    for s in [&a, &b] {
        store
            .append(
                s,
                ExpectedVersion::Any,
                (0..4).map(|_| tagged("T", &["c:x"])).collect(),
            )
            .await?;
    }
    assert_eq!(es.lookup("gone", "x", Position::START, 100).await?.len(), 8);
    store.delete_stream(&a, ExpectedVersion::Any).await?;
    store.truncate_stream(&b, Version(2)).await?;
    let left = es.lookup("gone", "x", Position::START, 100).await?;
    assert_same_events(
        &left,
        &tagged_events(&store, "c:x").await?,
        "after delete and truncate",
    );
    assert_eq!(versions(&left), vec![2, 3]);
    let entries = index_entry_keys(&store, "gone").await?.len();
    assert_eq!(entries, 2, "entries of deleted events kept");
    let status = es.index_status("gone").await?.expect("an index");
    assert_eq!(
        status.entries, 2,
        "the count of entries after removing some"
    );
    assert!(!es.verify_index("gone").await?.rebuilt);
    let reborn = tagged("T", &["c:x"]);
    store
        .append(&a, ExpectedVersion::NoStream, vec![reborn.clone()])
        .await?;
    let now = es.lookup("gone", "x", Position::START, 100).await?;
    assert_eq!(now.last().map(|e| e.event_id), Some(reborn.event_id));
    assert_eq!(now.len(), 3);
    Ok(())
}

// [X1] Appends do not write index data: events no indexer matches leave no
// entry (only the index's cursor moves), and an append alone writes
// nothing to the aux space.
/// `[X1]`: unmatched appends cost no entries.
pub async fn x1_index_unmatched_appends_cost_no_entries<H: Harness>(h: H) -> CaseResult {
    let store = h.open(default_config()).await?;
    let es = EventStore::builder(store.clone())
        .indexer(ByTag::new("sparse", 1, "c:"))
        .open()
        .await?;
    let aux_before = all_aux(&store).await?;
    for _ in 0..10 {
        store
            .append(&sid("plain"), ExpectedVersion::Any, events(10))
            .await?;
    }
    assert_eq!(
        all_aux(&store).await?,
        aux_before,
        "appends wrote to the aux space"
    );
    assert!(
        es.lookup("sparse", "ann", Position::START, 10)
            .await?
            .is_empty()
    );
    let aux = all_aux(&store).await?;
    assert_eq!(aux.len(), 1, "entries for unmatched events: {aux:?}");
    assert_eq!(
        es.index_status("sparse").await?.map(|s| s.cursor),
        Some(Position(100))
    );
    store
        .append(
            &sid("plain"),
            ExpectedVersion::Any,
            vec![tagged("T", &["c:ann"])],
        )
        .await?;
    assert_eq!(
        es.lookup("sparse", "ann", Position::START, 10).await?.len(),
        1
    );
    assert_eq!(all_aux(&store).await?.len(), 2);
    Ok(())
}

/// The keys of index `name`'s data in the aux space, but its state (the
/// entries, whatever their layout).
async fn index_entry_keys(store: &Store, name: &str) -> Result<Vec<Vec<u8>>> {
    let prefix = format!("annals-store/index/{name}/");
    let state = format!("{prefix}state");
    Ok(all_aux(store)
        .await?
        .into_iter()
        .map(|(k, _)| k)
        .filter(|k| k.starts_with(prefix.as_bytes()) && k.as_slice() != state.as_bytes())
        .collect())
}

/// Checks that `got` (one lookup, paged) holds every event of `wanted`, in
/// commit order, without duplicates; answers what is wrong.
fn lookup_misses(got: &[RecordedEvent], wanted: &HashSet<Uuid>) -> Option<String> {
    let ids: HashSet<Uuid> = got.iter().map(|e| e.event_id).collect();
    if ids.len() != got.len() {
        return Some("a duplicate".to_string());
    }
    if got.windows(2).any(|w| w[0].position >= w[1].position) {
        return Some("events out of commit order".to_string());
    }
    let missing = wanted.difference(&ids).count();
    (missing > 0).then(|| {
        format!(
            "{missing} of {} events committed before it missing (got {})",
            wanted.len(),
            got.len()
        )
    })
}

/// How many events the writer of [`lookups_during_rebuilds`] appends at
/// most.
const APPENDS_PER_PHASE: usize = 150;

/// What the readers of [`lookups_during_rebuilds`] saw.
#[derive(Default)]
struct ReaderTally {
    lookups: usize,
    during_rebuilds: usize,
    failures: Vec<String>,
}

/// Runs `rounds` rebuilds of index `live` by `rebuilder` while lookups
/// (paged) run through `reader` one after another from the moment each
/// rebuild starts until it ends, and a writer appends up to
/// [`APPENDS_PER_PHASE`] events: every lookup must hold every event whose
/// append returned before it began.
async fn lookups_during_rebuilds(
    store: &Store,
    rebuilder: &EventStore,
    reader: &EventStore,
    keys: &'static [&'static str],
    rounds: usize,
) -> std::result::Result<ReaderTally, Failure> {
    let committed: Arc<Mutex<BTreeMap<&str, HashSet<Uuid>>>> = Arc::default();
    for &key in keys {
        let ids = tagged_events(store, &format!("c:{key}")).await?;
        committed
            .lock()
            .unwrap()
            .insert(key, ids.iter().map(|e| e.event_id).collect());
    }
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (store, committed, stop) = (store.clone(), committed.clone(), stop.clone());
        tokio::spawn(async move {
            for &key in keys.iter().cycle().take(APPENDS_PER_PHASE) {
                if stop.load(Ordering::SeqCst) {
                    break;
                }
                let e = tagged("T", &[format!("c:{key}").as_str()]);
                let id = e.event_id;
                store
                    .append(&sid("live"), ExpectedVersion::Any, vec![e])
                    .await?;
                committed.lock().unwrap().entry(key).or_default().insert(id);
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            Ok::<_, Error>(())
        })
    };
    let mut tally = ReaderTally::default();
    let mut result = Ok(());
    'rounds: for _ in 0..rounds {
        let rebuild = {
            let es = rebuilder.clone();
            tokio::spawn(async move { es.rebuild("live").await })
        };
        // Lookups from the moment the rebuild starts until it is done.
        let mut key = keys.iter().cycle();
        let mut n = 0;
        while n < keys.len() || !rebuild.is_finished() {
            let busy = !rebuild.is_finished();
            let key = key.next().copied().unwrap_or_default();
            let wanted = committed.lock().unwrap()[key].clone();
            let got = lookup_all(reader, "live", key, 100).await;
            let got = match got {
                Ok(got) => got,
                Err(e) => {
                    result = Err(e);
                    rebuild.abort();
                    break 'rounds;
                }
            };
            n += 1;
            tally.lookups += 1;
            tally.during_rebuilds += usize::from(busy);
            if let Some(wrong) = lookup_misses(&got, &wanted) {
                tally.failures.push(format!("lookup of {key:?}: {wrong}"));
            }
        }
        if let Err(e) = rebuild.await? {
            result = Err(e);
            break;
        }
    }
    stop.store(true, Ordering::SeqCst);
    writer.await??;
    result?;
    Ok(tally)
}

// [X1] [R5] [X2] A lookup never misses an event committed before it, also
// while the index is being rebuilt: by a second EventStore over the same
// backend (another process), then by the same EventStore (another task),
// many rounds each, while a writer appends. Every lookup must hold every
// event whose append returned before it began, in commit order.
/// `[X1]`: lookups during rebuilds.
pub async fn x1_index_lookups_during_rebuilds_miss_nothing<H: Harness>(h: H) -> CaseResult {
    const KEYS: &[&str] = &["ann", "bob", "cid"];
    const ROUNDS: usize = 20;
    let store = h.open(default_config()).await?;
    for i in 0..30 {
        let batch = (0..10)
            .map(|j| {
                let tag = format!("c:{}", KEYS[(i + j) % KEYS.len()]);
                tagged("T", &[tag.as_str()])
            })
            .collect();
        store
            .append(
                &sid(&format!("hist-{}", i % 5)),
                ExpectedVersion::Any,
                batch,
            )
            .await?;
    }
    let open = |backend: Store| indexed(backend, 8, ByTag::new("live", 1, "c:"));
    // The store that looks up reads its aux space slowly (0 to 15 ms a
    // scan, as across a network), so its lookups overlap the rebuilds.
    let slow = Crashing::slow_scans(store.clone(), Duration::from_millis(5));
    let one = open(Arc::new(slow)).await?;
    let other = open(store.clone()).await?;
    let mut wrong = Vec::new();
    for (rebuilder, who) in [(&other, "a second store"), (&one, "the same store")] {
        let tally = lookups_during_rebuilds(&store, rebuilder, &one, KEYS, ROUNDS).await?;
        if !tally.failures.is_empty() {
            wrong.push(format!(
                "rebuilds by {who}: {} of {} lookups ({} begun during a rebuild) missed events, e.g. {:?}",
                tally.failures.len(),
                tally.lookups,
                tally.during_rebuilds,
                &tally.failures[..tally.failures.len().min(2)]
            ));
        }
        assert!(
            tally.during_rebuilds >= ROUNDS,
            "rebuilds by {who}: only {} lookups ran during a rebuild, the case proved little",
            tally.during_rebuilds
        );
    }
    assert!(wrong.is_empty(), "{}", wrong.join("; "));
    // Nothing of the replaced generations is left, and the count holds.
    assert_eq!(
        index_entry_keys(&store, "live").await?.len(),
        all_events(&store).await?.len(),
        "entries of replaced generations left behind"
    );
    assert!(!other.verify_index("live").await?.rebuilt);
    for key in KEYS {
        let all = tagged_events(&store, &format!("c:{key}")).await?;
        for es in [&one, &other] {
            assert_same_events(&lookup_all(es, "live", key, 40).await?, &all, key);
        }
    }
    Ok(())
}

// [X1] [M5] Index data deleted in part — some entries gone, the state
// kept — is found when the store opens (again, or in another process) and
// rebuilt: lookups hold every event.
/// `[X1]`: partly deleted index data.
pub async fn x1_index_partly_deleted_data_is_found_and_rebuilt<H: Harness>(h: H) -> CaseResult {
    let mut store = h.open(default_config()).await?;
    for i in 0..60 {
        let tag = if i % 2 == 0 { "c:ann" } else { "c:bob" };
        store
            .append(
                &sid(&format!("part-{}", i % 3)),
                ExpectedVersion::Any,
                vec![tagged("T", &[tag])],
            )
            .await?;
    }
    let open = |store: Store| indexed(store, 7, ByTag::new("part", 1, "c:"));
    let check = |es: EventStore, store: Store, when: &'static str| async move {
        for key in ["ann", "bob"] {
            let wanted = tagged_events(&store, &format!("c:{key}")).await?;
            assert_same_events(
                &lookup_all(&es, "part", key, 100).await?,
                &wanted,
                &format!("lookup of {key:?} {when}"),
            );
        }
        Ok::<_, Failure>(())
    };
    let es = open(store.clone()).await?;
    check(es.clone(), store.clone(), "before any deletion").await?;
    drop(es);
    let entries = index_entry_keys(&store, "part").await?;
    assert_eq!(entries.len(), 60, "one entry per event");
    // Ten entries removed behind the store's back, the state kept.
    for k in entries.iter().step_by(6) {
        store.aux_delete(k).await?;
    }
    if H::capabilities().persistent {
        store = h.reopen(store, default_config()).await?;
    }
    let es = open(store.clone()).await?;
    check(
        es.clone(),
        store.clone(),
        "after 10 entries were deleted and the store opened",
    )
    .await?;
    assert_eq!(index_entry_keys(&store, "part").await?.len(), 60);
    // While open: verify_index counts the entries, finds ten missing, and
    // builds the index again.
    let entries = index_entry_keys(&store, "part").await?;
    for k in entries.iter().skip(3).step_by(6) {
        store.aux_delete(k).await?;
    }
    let checks = es.verify_indexes().await?;
    assert_eq!(checks.len(), 1);
    assert!(
        checks[0].rebuilt && checks[0].found == 50 && checks[0].expected == 60,
        "verify_indexes after 10 of 60 entries were deleted: {checks:?}"
    );
    check(es.clone(), store.clone(), "after verify_indexes").await?;
    let again = es.verify_index("part").await?;
    assert!(!again.rebuilt && again.found == 60, "{again:?}");
    // An entry added behind its back is found too.
    let mut junk = index_entry_keys(&store, "part").await?[0].clone();
    junk.extend_from_slice(b"junk");
    store.aux_put(&junk, b"").await?;
    assert!(es.verify_index("part").await?.rebuilt, "an extra entry");
    assert_eq!(index_entry_keys(&store, "part").await?.len(), 60);
    Ok(())
}

// [X2] [X1] [M5] A rebuild interrupted by a crash — the backend dies before
// or after its 1st, 2nd, … write — leaves every lookup whole: another
// store's lookup right after the crash finds every event, answered from
// the complete index (it indexes only the event appended since, not the log
// again); after a restart the index is whole, and a rebuild that completes
// leaves no data of the interrupted ones behind.
/// `[X2]`: a rebuild interrupted by a crash.
pub async fn x2_index_rebuild_interrupted_by_a_crash_keeps_lookups_whole<H: Harness>(
    h: H,
) -> CaseResult {
    const KEYS: [&str; 3] = ["ann", "bob", "cid"];
    let mut store = h.open(default_config()).await?;
    for i in 0..48 {
        let tag = format!("c:{}", KEYS[i % 3]);
        store
            .append(
                &sid(&format!("crash-{}", i % 4)),
                ExpectedVersion::Any,
                vec![tagged("T", &[tag.as_str()])],
            )
            .await?;
    }
    let indexer = || ByTag::new("crash", 1, "c:");
    let open = |backend: Store, indexer: ByTag| indexed(backend, 4, indexer);
    let mut finished = 0;
    for point in [CrashPoint::BeforeWrite, CrashPoint::AfterWrite] {
        for at_write in 1.. {
            // Another process, there before the crash.
            let survivor_indexer = indexer();
            let calls = survivor_indexer.calls.clone();
            let survivor = open(store.clone(), survivor_indexer).await?;
            let crashing = Arc::new(Crashing::counting(store.clone()));
            let es = open(crashing.clone(), indexer()).await?;
            crashing.arm(at_write);
            let result = es.rebuild("crash").await;
            if !crashing.crashed.load(Ordering::SeqCst) {
                result?;
                finished += 1;
                break;
            }
            assert!(
                result.is_err(),
                "the rebuild succeeded although its backend died at write {at_write}"
            );
            let late = tagged("T", &["c:ann"]);
            store
                .append(&sid("crash-late"), ExpectedVersion::Any, vec![late])
                .await?;
            let before = calls.load(Ordering::SeqCst);
            for key in KEYS {
                let wanted = tagged_events(&store, &format!("c:{key}")).await?;
                assert_same_events(
                    &lookup_all(&survivor, "crash", key, 100).await?,
                    &wanted,
                    &format!(
                        "{key:?} right after a crash at write {at_write} ({point:?}) of a rebuild"
                    ),
                );
            }
            let indexed = calls.load(Ordering::SeqCst) - before;
            assert_eq!(
                indexed, 1,
                "after a crash at write {at_write} ({point:?}) of a rebuild, a lookup indexed \
                 {indexed} events instead of the one appended since: it was not answered from \
                 the complete index"
            );
            drop((es, crashing, survivor));
            // The process restarts.
            if H::capabilities().persistent {
                store = h.reopen(store, default_config()).await?;
            }
            let restarted = open(store.clone(), indexer()).await?;
            for key in KEYS {
                let wanted = tagged_events(&store, &format!("c:{key}")).await?;
                assert_same_events(
                    &lookup_all(&restarted, "crash", key, 100).await?,
                    &wanted,
                    &format!("{key:?} after a restart (crash at write {at_write}, {point:?})"),
                );
            }
        }
    }
    assert_eq!(finished, 2);
    let es = open(store.clone(), indexer()).await?;
    es.rebuild("crash").await?;
    assert_eq!(
        index_entry_keys(&store, "crash").await?.len(),
        all_events(&store).await?.len(),
        "index data left behind by interrupted rebuilds"
    );
    Ok(())
}

// ------------------------------------------------------------ typed events

#[derive(Serialize, Deserialize, Debug, PartialEq, Clone)]
struct ItemAdded {
    sku: String,
    qty: u32,
}

impl TypedEvent for ItemAdded {
    const EVENT_TYPE: &'static str = "ItemAdded";
    fn tags(&self) -> Vec<String> {
        vec![format!("sku:{}", self.sku)]
    }
}

#[derive(Serialize, Deserialize, Debug, PartialEq)]
struct CartOpened {
    customer: String,
}

impl TypedEvent for CartOpened {
    const EVENT_TYPE: &'static str = "CartOpened";
}

// [D3] [A1] Typed events are stored as their type and JSON data (with
// their tags) and read back equal; an event of another type, or whose data
// is not the type's JSON, is Error::Decode naming the stream, the version
// and the type.
/// `[D3]`: typed events.
pub async fn d3_typed_events_round_trip_and_decode_errors<H: Harness>(h: H) -> CaseResult {
    let store = h.open(default_config()).await?;
    let es = EventStore::new(store.clone());
    let s = sid("typed-cart");
    let items = vec![
        ItemAdded {
            sku: "apple".into(),
            qty: 2,
        },
        ItemAdded {
            sku: "pear".into(),
            qty: 1,
        },
    ];
    let r = es
        .append_typed(&s, ExpectedVersion::NoStream, &items)
        .await?;
    assert_eq!(r.last_version, Version(1));
    let read = es.read_typed::<ItemAdded>(&s, Version::FIRST, 10).await?;
    assert_eq!(
        read.iter().map(|t| t.event.clone()).collect::<Vec<_>>(),
        items
    );
    assert_eq!(read[1].recorded.stream_version, Version(1));
    assert_eq!(read[0].recorded.event_type, "ItemAdded");
    assert_eq!(read[0].recorded.tags, vec!["sku:apple".to_string()]);
    assert_eq!(read[0].recorded.data, br#"{"sku":"apple","qty":2}"#);
    assert_eq!(tagged_events(&store, "sku:pear").await?.len(), 1);

    es.append_typed(
        &s,
        ExpectedVersion::exact(1),
        &[CartOpened {
            customer: "ann".into(),
        }],
    )
    .await?;
    let e = expect_err(
        es.read_typed::<ItemAdded>(&s, Version::FIRST, 10).await,
        "an event of another type",
    );
    match &e {
        Error::Decode {
            stream,
            version,
            event_type,
            ..
        } => {
            assert_eq!(
                (stream, *version, event_type.as_str()),
                (&s, Version(2), "CartOpened")
            );
        }
        other => panic!("expected Error::Decode, got {other:?}"),
    }
    store
        .append(
            &s,
            ExpectedVersion::exact(2),
            vec![
                NewEvent::builder("ItemAdded")
                    .data(b"{\"sku\":7}".to_vec())
                    .build(),
            ],
        )
        .await?;
    let e = expect_err(
        es.read_typed::<ItemAdded>(&s, Version(3), 10).await,
        "data that is not an ItemAdded",
    );
    let message = e.to_string();
    assert!(
        matches!(
            e,
            Error::Decode {
                version: Version(3),
                ..
            }
        ) && message.contains("typed-cart")
            && message.contains("ItemAdded")
            && message.contains('3'),
        "{message}"
    );
    let opened = es.read_typed::<CartOpened>(&s, Version(2), 1).await?;
    assert_eq!(
        opened[0].event,
        CartOpened {
            customer: "ann".into()
        }
    );
    assert_not_found(
        es.read_typed::<CartOpened>(&sid("typed-none"), Version::FIRST, 1)
            .await,
        &sid("typed-none"),
    );
    Ok(())
}
