//! Capabilities, maintenance, lifecycle, persistence and errors (SPEC C1,
//! M1–M6, D5, E1, and S3/S4/X1 across reopen).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use annals_core::{
    Append, AppendCondition, AuxWrite, Batch, Direction, Durability, Error, ExpectedVersion,
    NewEvent, Position, Query, StoreConfig, VerifyProgress, Version,
};

use super::{Case, case};
use crate::Harness;
use crate::support::*;

/// The cases of this module.
pub fn cases<H: Harness>() -> Vec<Case<H>> {
    vec![
        case!(c1_capabilities_match_the_harness),
        case!(c1_without_append_batch_it_is_unsupported, |c| !c
            .append_batch),
        case!(c1_without_append_conditions_they_are_unsupported, |c| !c
            .append_conditions),
        case!(c1_without_truncate_it_is_unsupported, |c| !c.truncate),
        case!(c1_without_delete_it_is_unsupported, |c| !c.delete),
        case!(c1_without_compact_it_is_unsupported, |c| !c.compact),
        case!(c1_without_aux_it_is_unsupported, |c| !c.aux),
        case!(c1_without_verify_it_is_unsupported, |c| !c.verify),
        case!(m6_verify_is_clean_after_every_kind_of_write, |c| c.verify),
        case!(m3_health_is_ok),
        case!(m4_close_makes_every_call_closed),
        case!(m4_close_ends_head_watches),
        case!(e1_error_messages_name_the_values),
        case!(d5_relaxed_durability_works),
        case!(m1_compact_changes_no_read, |c| c.compact),
        case!(m2_disk_bytes_is_zero_in_memory, |c| !c.persistent),
        case!(m2_disk_bytes_drop_after_delete_and_compact, |c| c
            .persistent
            && c.compact
            && c.delete),
        case!(m5_reopen_keeps_everything, |c| c.persistent),
        case!(m5_appends_continue_after_reopen, |c| c.persistent),
        case!(m6_reads_decode_after_reopen, |c| c.persistent),
        case!(s3_truncation_survives_reopen, |c| c.persistent
            && c.truncate),
        case!(s4_positions_not_reused_across_reopen, |c| c.persistent),
        case!(s4_deletion_survives_reopen, |c| c.persistent && c.delete),
        case!(x1_aux_survives_reopen, |c| c.persistent && c.aux),
    ]
}

// [C1] The store declares the capabilities its harness says it has.
/// `[C1]`: declared capabilities.
pub async fn c1_capabilities_match_the_harness<H: Harness>(h: H) -> CaseResult {
    let store = h.open(default_config()).await?;
    assert_eq!(store.capabilities(), H::capabilities());
    assert_eq!(store.limits(), default_config().limits);
    Ok(())
}

// [C1] Without append_batch, append_batch answers Unsupported.
/// `[C1]`: no batches.
pub async fn c1_without_append_batch_it_is_unsupported<H: Harness>(h: H) -> CaseResult {
    let store = h.open(default_config()).await?;
    let batch = Batch::default().part(sid("a"), ExpectedVersion::Any, events(1));
    assert_unsupported(store.append_batch(batch).await, "append_batch");
    assert!(!store.has_events().await?);
    Ok(())
}

// [C1] Without append conditions, an append carrying one answers
// Unsupported (and writes nothing).
/// `[C1]`: no conditions.
pub async fn c1_without_append_conditions_they_are_unsupported<H: Harness>(h: H) -> CaseResult {
    let store = h.open(default_config()).await?;
    let append = Append::new(sid("a"), ExpectedVersion::Any, events(1))
        .condition(AppendCondition::new(Query::new(), None));
    assert_unsupported(store.append_with(append).await, "an append condition");
    assert!(!store.has_events().await?);
    Ok(())
}

// [C1] Without truncate, truncate_stream answers Unsupported.
/// `[C1]`: no truncation.
pub async fn c1_without_truncate_it_is_unsupported<H: Harness>(h: H) -> CaseResult {
    let store = h.open(default_config()).await?;
    let s = sid("a");
    store.append(&s, ExpectedVersion::Any, events(2)).await?;
    assert_unsupported(
        store.truncate_stream(&s, Version(1)).await,
        "truncate_stream",
    );
    assert_eq!(stream_events(&store, &s).await?.len(), 2);
    Ok(())
}

// [C1] Without delete, delete_stream answers Unsupported.
/// `[C1]`: no deletion.
pub async fn c1_without_delete_it_is_unsupported<H: Harness>(h: H) -> CaseResult {
    let store = h.open(default_config()).await?;
    let s = sid("a");
    store.append(&s, ExpectedVersion::Any, events(2)).await?;
    assert_unsupported(
        store.delete_stream(&s, ExpectedVersion::Any).await,
        "delete_stream",
    );
    assert!(store.stream_exists(&s).await?);
    Ok(())
}

// [C1] Without compact, compact answers Unsupported.
/// `[C1]`: no compaction.
pub async fn c1_without_compact_it_is_unsupported<H: Harness>(h: H) -> CaseResult {
    let store = h.open(default_config()).await?;
    assert_unsupported(store.compact().await, "compact");
    Ok(())
}

// [C1] Without the aux space, every aux call and an append carrying aux
// writes answer Unsupported.
/// `[C1]`: no aux space.
pub async fn c1_without_aux_it_is_unsupported<H: Harness>(h: H) -> CaseResult {
    let store = h.open(default_config()).await?;
    assert_unsupported(store.aux_get(b"k").await, "aux_get");
    assert_unsupported(store.aux_put(b"k", b"v").await, "aux_put");
    assert_unsupported(store.aux_delete(b"k").await, "aux_delete");
    assert_unsupported(store.aux_scan(b"", None, 10).await, "aux_scan");
    assert_unsupported(
        store.aux_write(vec![AuxWrite::put(b"k", b"v")]).await,
        "aux_write",
    );
    let append =
        Append::new(sid("a"), ExpectedVersion::Any, events(1)).aux(AuxWrite::put(b"k", b"v"));
    assert_unsupported(store.append_with(append).await, "an append with aux writes");
    assert!(!store.has_events().await?);
    Ok(())
}

// [C1] Without verify, verify answers Unsupported.
/// `[C1]`: no integrity check.
pub async fn c1_without_verify_it_is_unsupported<H: Harness>(h: H) -> CaseResult {
    let store = h.open(default_config()).await?;
    assert_unsupported(store.verify(None).await, "verify");
    Ok(())
}

// [M6] verify, the full integrity check, finds nothing wrong in a store
// written only through the API: new, after every kind of write, after
// compaction and after reopen; it counts what it checked and reports
// progress.
/// `[M6]`: verify on a healthy store.
pub async fn m6_verify_is_clean_after_every_kind_of_write<H: Harness>(h: H) -> CaseResult {
    let store = h.open(default_config()).await?;
    let report = store.verify(None).await?;
    assert!(report.is_clean(), "a new store: {:?}", report.problems);
    assert_eq!(report.events, 0);

    let caps = H::capabilities();
    fill_varied(&store, &caps).await?;
    let events = all_events(&store).await?.len() as u64;
    let calls = Arc::new(AtomicU64::new(0));
    let seen = Arc::clone(&calls);
    let progress: VerifyProgress = Arc::new(move |n| {
        seen.fetch_max(n, Ordering::Relaxed);
    });
    let report = store.verify(Some(progress)).await?;
    assert!(report.is_clean(), "after writes: {:?}", report.problems);
    assert!(
        report.events >= events,
        "checked {} log records, {events} events are readable",
        report.events
    );
    assert!(report.records >= report.events + report.streams);
    assert_eq!(
        calls.load(Ordering::Relaxed),
        report.records,
        "last progress"
    );

    if caps.compact {
        store.compact().await?;
        let report = store.verify(None).await?;
        assert!(report.is_clean(), "after compact: {:?}", report.problems);
        assert_eq!(report.events, events, "compact leaves only readable events");
    }
    if caps.persistent {
        let store = h.reopen(store, default_config()).await?;
        let report = store.verify(None).await?;
        assert!(report.is_clean(), "after reopen: {:?}", report.problems);
    }
    Ok(())
}

// [M3] health is Ok on a usable store: new, in use, after failed calls.
/// `[M3]`: health.
pub async fn m3_health_is_ok<H: Harness>(h: H) -> CaseResult {
    let store = h.open(default_config()).await?;
    store.health().await?;
    store
        .append(&sid("m3"), ExpectedVersion::Any, events(3))
        .await?;
    store.health().await?;
    let _ = store
        .append(&sid("m3"), ExpectedVersion::NoStream, events(1))
        .await;
    let _ = store.append(&sid("m3"), ExpectedVersion::Any, vec![]).await;
    store.health().await?;
    Ok(())
}

/// Checks a call made after close: `Closed`, or `Unsupported` when the
/// backend lacks the capability.
#[track_caller]
fn after_close<T: std::fmt::Debug>(result: annals_core::Result<T>, offered: bool, what: &str) {
    if offered {
        assert_closed(result, what);
    } else {
        let e = expect_err(result, what);
        assert!(
            matches!(e.root(), Error::Closed | Error::Unsupported(_)),
            "{what} after close: expected Closed (or Unsupported), got {e:?}"
        );
    }
}

// [M4] After close, every method — through the handle that closed and
// through a second handle (a clone) — answers Closed; nothing panics.
/// `[M4]`: closed everywhere.
pub async fn m4_close_makes_every_call_closed<H: Harness>(h: H) -> CaseResult {
    let store = h.open(default_config()).await?;
    let s = sid("m4");
    store.append(&s, ExpectedVersion::Any, events(2)).await?;
    let other = store.clone();
    store.close().await?;
    let caps = H::capabilities();
    for handle in [&store, &other] {
        let _ = (handle.capabilities(), handle.limits());
        after_close(
            handle.append(&s, ExpectedVersion::Any, events(1)).await,
            true,
            "append",
        );
        after_close(
            handle
                .append_with(Append::new(s.clone(), ExpectedVersion::Any, events(1)))
                .await,
            true,
            "append_with",
        );
        after_close(
            handle
                .append_batch(Batch::default().part(s.clone(), ExpectedVersion::Any, events(1)))
                .await,
            caps.append_batch,
            "append_batch",
        );
        after_close(
            handle
                .read_stream(&s, Version(0), 10, Direction::Forward)
                .await,
            true,
            "read_stream",
        );
        after_close(
            handle
                .read_all(Position(0), 10, Direction::Forward, None)
                .await,
            true,
            "read_all",
        );
        after_close(
            handle
                .read_all(Position(0), 10, Direction::Backward, Some(&tag_query("t")))
                .await,
            true,
            "read_all with a query",
        );
        after_close(handle.stream_version(&s).await, true, "stream_version");
        after_close(handle.stream_exists(&s).await, true, "stream_exists");
        after_close(handle.list_streams(None, 10).await, true, "list_streams");
        after_close(
            handle.delete_stream(&s, ExpectedVersion::Any).await,
            caps.delete,
            "delete_stream",
        );
        after_close(
            handle.truncate_stream(&s, Version(1)).await,
            caps.truncate,
            "truncate_stream",
        );
        after_close(handle.compact().await, caps.compact, "compact");
        after_close(handle.disk_bytes().await, true, "disk_bytes");
        after_close(handle.has_events().await, true, "has_events");
        after_close(handle.health().await, true, "health");
        after_close(handle.watch_head(), true, "watch_head");
        after_close(handle.aux_get(b"k").await, caps.aux, "aux_get");
        after_close(handle.aux_put(b"k", b"v").await, caps.aux, "aux_put");
        after_close(handle.aux_delete(b"k").await, caps.aux, "aux_delete");
        after_close(handle.aux_scan(b"", None, 10).await, caps.aux, "aux_scan");
        after_close(
            handle.aux_write(vec![AuxWrite::put(b"k", b"v")]).await,
            caps.aux,
            "aux_write",
        );
        // [M4] Closing again is Ok, on every handle.
        if let Err(e) = handle.close().await {
            panic!("close after close: expected Ok, got {e:?}");
        }
    }
    Ok(())
}

// [M4] [R8] Closing ends head watches: changed() on a watch taken before
// close fails, also for a task already waiting on it.
/// `[M4]` `[R8]`: watches end on close.
pub async fn m4_close_ends_head_watches<H: Harness>(h: H) -> CaseResult {
    let store = h.open(default_config()).await?;
    store
        .append(&sid("w"), ExpectedVersion::Any, events(1))
        .await?;
    let mut idle = store.watch_head()?;
    idle.borrow_and_update();
    let mut waiting = store.watch_head()?;
    waiting.borrow_and_update();
    let waiter = tokio::spawn(async move { waiting.changed().await.is_err() });
    tokio::time::sleep(Duration::from_millis(20)).await;
    store.close().await?;
    let ended = tokio::time::timeout(Duration::from_secs(10), waiter)
        .await
        .map_err(|_| "a task waiting on the head watch did not wake at close")??;
    assert!(
        ended,
        "a waiting changed() returned Ok at close instead of ending"
    );
    let r = tokio::time::timeout(Duration::from_secs(10), idle.changed())
        .await
        .map_err(|_| "changed() on a watch after close hangs")?;
    assert!(r.is_err(), "changed() after close returned Ok");
    Ok(())
}

// [E1] Error messages say what was wrong, with which value: the stream and
// versions of WrongExpectedVersion, the stream of StreamNotFound, the
// limit an input broke.
/// `[E1]`: error messages.
pub async fn e1_error_messages_name_the_values<H: Harness>(h: H) -> CaseResult {
    let store = h.open(small_config()).await?;
    let s = sid("order-42");
    store.append(&s, ExpectedVersion::Any, events(4)).await?;
    let e = expect_err(
        store
            .append(&s, ExpectedVersion::exact(17), events(1))
            .await,
        "Exact(17)",
    );
    let text = e.to_string();
    for part in ["order-42", "17", "3"] {
        assert!(
            text.contains(part),
            "WrongExpectedVersion message {text:?} lacks {part:?}"
        );
    }
    let m = sid("invoice-977");
    let e = expect_err(
        store
            .read_stream(&m, Version(0), 1, Direction::Forward)
            .await,
        "missing stream",
    );
    assert!(
        e.to_string().contains("invoice-977"),
        "StreamNotFound message {e}"
    );
    let e = expect_err(store.stream_version(&m).await, "missing stream");
    assert!(
        e.to_string().contains("invoice-977"),
        "StreamNotFound message {e}"
    );
    let e = expect_err(
        store
            .read_all(Position(0), 101, Direction::Forward, None)
            .await,
        "count 101",
    );
    assert!(
        e.to_string().contains("101"),
        "InvalidInput message {e} lacks the count"
    );
    let e = expect_err(
        store
            .append(&s, ExpectedVersion::Any, vec![sized(2000)])
            .await,
        "2000 bytes",
    );
    assert!(
        e.to_string().contains("2000") && e.to_string().contains("1024"),
        "InvalidInput message {e} lacks the size or the limit"
    );
    let e = expect_err(
        store
            .append(
                &s,
                ExpectedVersion::Any,
                vec![NewEvent::builder("T").tag("dup").tag("dup").build()],
            )
            .await,
        "duplicate tag",
    );
    assert!(
        e.to_string().contains("dup"),
        "InvalidInput message {e} lacks the tag"
    );
    Ok(())
}

// [D5] With Durability::Relaxed the store works the same: appends, reads,
// expectations (and, when persistent, a clean close keeps everything). What
// a crash may lose under Relaxed is tested by each backend's own crash
// tests, not here.
/// `[D5]`: relaxed durability.
pub async fn d5_relaxed_durability_works<H: Harness>(h: H) -> CaseResult {
    let config = StoreConfig {
        durability: Durability::Relaxed,
        ..StoreConfig::default()
    };
    let store = h.open(config).await?;
    let caps = H::capabilities();
    fill_varied(&store, &caps).await?;
    let s = sid("relaxed");
    let r = store
        .append(&s, ExpectedVersion::NoStream, events(3))
        .await?;
    assert_eq!(r.last_version, Version(2));
    assert_eq!(stream_events(&store, &s).await?.len(), 3);
    assert!(*store.watch_head()?.borrow() >= r.last_position);
    assert_wrong_version(
        store.append(&s, ExpectedVersion::NoStream, events(1)).await,
        &s,
        ExpectedVersion::NoStream,
        Some(2),
    );
    if caps.persistent {
        let mut streams = varied_streams();
        streams.push(s.clone());
        let before = StoreState::capture(&store, &streams, &VARIED_TAGS).await?;
        let store = h.reopen(store, config).await?;
        let after = StoreState::capture(&store, &streams, &VARIED_TAGS).await?;
        before.assert_same(&after, "after a clean close and reopen with Relaxed");
    }
    Ok(())
}

// [M1] compact changes no read: everything (events, streams, queries, aux,
// head) is the same before and after, and appends go on after it.
/// `[M1]`: compaction is invisible.
pub async fn m1_compact_changes_no_read<H: Harness>(h: H) -> CaseResult {
    let store = h.open(default_config()).await?;
    store.compact().await?;
    let caps = H::capabilities();
    fill_varied(&store, &caps).await?;
    let streams = varied_streams();
    let before = StoreState::capture(&store, &streams, &VARIED_TAGS).await?;
    store.compact().await?;
    let after = StoreState::capture(&store, &streams, &VARIED_TAGS).await?;
    before.assert_same(&after, "after compact");
    store.compact().await?;
    let again = StoreState::capture(&store, &streams, &VARIED_TAGS).await?;
    before.assert_same(&again, "after a second compact");
    let r = store
        .append(&streams[0], ExpectedVersion::exact(6), events(1))
        .await?;
    assert!(
        r.first_position > before.head,
        "position reused after compact"
    );
    store.health().await?;
    Ok(())
}

// [M2] An in-memory store reports 0 disk bytes.
/// `[M2]`: disk_bytes in memory.
pub async fn m2_disk_bytes_is_zero_in_memory<H: Harness>(h: H) -> CaseResult {
    let store = h.open(default_config()).await?;
    store
        .append(&sid("m2"), ExpectedVersion::Any, vec![sized(100_000)])
        .await?;
    assert_eq!(store.disk_bytes().await?, 0);
    Ok(())
}

// [M2] [M1] With ≥ 10 MB of events (2 000 events × 5 KB of incompressible
// data over 100 streams), deleting 91 % of the streams and compacting makes
// disk_bytes lower than before the deletes; the remaining streams read the
// same.
/// `[M2]`: disk space comes back.
pub async fn m2_disk_bytes_drop_after_delete_and_compact<H: Harness>(h: H) -> CaseResult {
    let store = h.open(default_config()).await?;
    let streams: Vec<_> = (0..100).map(|i| sid(&format!("bulk-{i:03}"))).collect();
    for (i, s) in streams.iter().enumerate() {
        let batch: Vec<NewEvent> = (0..20)
            .map(|k| {
                NewEvent::builder("Bulk")
                    .data(noise((i * 20 + k) as u64, 5 * 1024))
                    .build()
            })
            .collect();
        store.append(s, ExpectedVersion::NoStream, batch).await?;
    }
    let full = store.disk_bytes().await?;
    assert!(
        full > 0,
        "a persistent store with 10 MB of events reports 0 disk bytes"
    );
    let kept = &streams[91..];
    let kept_before = StoreState::capture(&store, kept, &[]).await?;
    for s in &streams[..91] {
        store.delete_stream(s, ExpectedVersion::exact(19)).await?;
    }
    store.compact().await?;
    let compacted = store.disk_bytes().await?;
    assert!(
        compacted < full,
        "disk_bytes {compacted} after deleting 91 % and compacting is not below {full}"
    );
    let kept_after = StoreState::capture(&store, kept, &[]).await?;
    let kept_events: Vec<_> = kept_before
        .events
        .iter()
        .filter(|e| kept.contains(&e.stream_id))
        .cloned()
        .collect();
    assert_same_events(&kept_events, &kept_after.events, "read_all after compact");
    assert_eq!(kept_before.streams.len(), 100);
    assert_eq!(kept_after.streams.len(), 9, "list_streams after compact");
    for s in kept {
        let before = kept_before.per_stream.iter().find(|p| &p.id == s).unwrap();
        let after = kept_after.per_stream.iter().find(|p| &p.id == s).unwrap();
        assert_eq!(before.version, after.version, "version of {s}");
        let (Ok(x), Ok(y)) = (&before.forward, &after.forward) else {
            panic!("reading {s} failed")
        };
        assert_same_events(x, y, &format!("stream {s} after compact"));
    }
    Ok(())
}

// [M5] Everything acknowledged is there, identical, after close and
// reopen: events, streams, versions, truncations, deletions, queries, aux,
// head.
/// `[M5]`: reopen.
pub async fn m5_reopen_keeps_everything<H: Harness>(h: H) -> CaseResult {
    let store = h.open(default_config()).await?;
    let caps = H::capabilities();
    fill_varied(&store, &caps).await?;
    let streams = varied_streams();
    let before = StoreState::capture(&store, &streams, &VARIED_TAGS).await?;
    let store = h.reopen(store, default_config()).await?;
    let after = StoreState::capture(&store, &streams, &VARIED_TAGS).await?;
    before.assert_same(&after, "after reopen");
    assert_eq!(
        *store.watch_head()?.borrow(),
        before.head,
        "the head watch after reopen"
    );
    let store = h.reopen(store, default_config()).await?;
    let again = StoreState::capture(&store, &streams, &VARIED_TAGS).await?;
    before.assert_same(&again, "after a second reopen");
    store.health().await?;
    Ok(())
}

// [M5] [A3] [A5] After reopen, appends go on: expectations see the stored
// versions, positions continue above the head, an idempotent retry of an
// append from before the reopen still returns its original result.
/// `[M5]`: appends after reopen.
pub async fn m5_appends_continue_after_reopen<H: Harness>(h: H) -> CaseResult {
    let store = h.open(default_config()).await?;
    let s = sid("m5");
    let x = events(3);
    let original = store
        .append(&s, ExpectedVersion::NoStream, x.clone())
        .await?;
    let store = h.reopen(store, default_config()).await?;
    assert_wrong_version(
        store.append(&s, ExpectedVersion::exact(1), events(1)).await,
        &s,
        ExpectedVersion::exact(1),
        Some(2),
    );
    assert_eq!(
        store.append(&s, ExpectedVersion::NoStream, x).await?,
        original,
        "retry after reopen"
    );
    let r = store
        .append(&s, ExpectedVersion::exact(2), events(2))
        .await?;
    assert_eq!(r.first_version, Version(3));
    assert!(r.first_position > original.last_position);
    assert_eq!(
        versions(&stream_events(&store, &s).await?),
        vec![0, 1, 2, 3, 4]
    );
    Ok(())
}

// [M6] [D3] After reopen every stored record decodes to exactly what was
// appended — binary, empty and 1 MiB payloads included. (The damage tests
// — flipped bytes giving Corruption, never a panic or a wrong event — need
// each engine's files and live in each backend crate.)
/// `[M6]`: records decode after reopen.
pub async fn m6_reads_decode_after_reopen<H: Harness>(h: H) -> CaseResult {
    let store = h.open(default_config()).await?;
    let s = sid("m6");
    let given = vec![
        NewEvent::builder("Binary")
            .data(noise(1, 4096))
            .metadata(noise(2, 100))
            .tags(["a", "b"])
            .build(),
        NewEvent::builder("Empty").build(),
        NewEvent::builder("Large").data(noise(3, 1 << 20)).build(),
        NewEvent::builder("Zeros")
            .data(vec![0; 777])
            .metadata(vec![0xFF; 3])
            .build(),
    ];
    store
        .append(&s, ExpectedVersion::NoStream, given.clone())
        .await?;
    let before = all_events(&store).await?;
    let store = h.reopen(store, default_config()).await?;
    let after = all_events(&store).await?;
    assert_same_events(&before, &after, "read_all after reopen");
    for (new, rec) in given.iter().zip(&after) {
        assert_recorded(new, rec);
    }
    assert_eq!(after.len(), 4);
    store.health().await?;
    Ok(())
}

// [S3] [M5] A truncation survives reopen, and so does the stream's version.
/// `[S3]`: truncation after reopen.
pub async fn s3_truncation_survives_reopen<H: Harness>(h: H) -> CaseResult {
    let store = h.open(default_config()).await?;
    let (s, all) = (sid("t"), sid("t-all"));
    store.append(&s, ExpectedVersion::Any, events(5)).await?;
    store.append(&all, ExpectedVersion::Any, events(2)).await?;
    store.truncate_stream(&s, Version(3)).await?;
    store.truncate_stream(&all, Version(9)).await?;
    let store = h.reopen(store, default_config()).await?;
    assert_eq!(versions(&stream_events(&store, &s).await?), vec![3, 4]);
    assert!(stream_events(&store, &all).await?.is_empty());
    assert!(store.stream_exists(&all).await?);
    assert_eq!(store.stream_version(&all).await?, Version(1));
    store.truncate_stream(&s, Version(1)).await?;
    assert_eq!(
        versions(&stream_events(&store, &s).await?),
        vec![3, 4],
        "truncation sank after reopen"
    );
    store
        .append(&all, ExpectedVersion::exact(1), events(1))
        .await?;
    assert_eq!(versions(&stream_events(&store, &all).await?), vec![2]);
    Ok(())
}

// [S4] [M5] Positions are never reused across reopen: after deleting (when
// the backend can) the stream holding the latest positions and reopening,
// a new append gets a higher position than any handed out before.
/// `[S4]`: no position reuse across reopen.
pub async fn s4_positions_not_reused_across_reopen<H: Harness>(h: H) -> CaseResult {
    let store = h.open(default_config()).await?;
    let (a, b) = (sid("pa"), sid("pb"));
    store.append(&a, ExpectedVersion::Any, events(2)).await?;
    let last = store
        .append(&b, ExpectedVersion::Any, events(3))
        .await?
        .last_position;
    if H::capabilities().delete {
        store.delete_stream(&b, ExpectedVersion::Any).await?;
    }
    let store = h.reopen(store, default_config()).await?;
    let r = store.append(&a, ExpectedVersion::Any, events(1)).await?;
    assert!(
        r.first_position > last,
        "position {} handed out again after reopen",
        r.first_position
    );
    if H::capabilities().delete {
        store.delete_stream(&a, ExpectedVersion::Any).await?;
        let store = h.reopen(store, default_config()).await?;
        let r2 = store.append(&b, ExpectedVersion::Any, events(1)).await?;
        assert!(
            r2.first_position > r.last_position,
            "position {} handed out again",
            r2.first_position
        );
    }
    Ok(())
}

// [S4] [M5] A deletion survives reopen, and so does the deleted stream's
// last version: recreated after reopen, its numbering continues.
/// `[S4]`: deletion after reopen.
pub async fn s4_deletion_survives_reopen<H: Harness>(h: H) -> CaseResult {
    let store = h.open(default_config()).await?;
    let s = sid("d");
    store.append(&s, ExpectedVersion::Any, events(4)).await?;
    store.delete_stream(&s, ExpectedVersion::exact(3)).await?;
    let store = h.reopen(store, default_config()).await?;
    assert!(!store.stream_exists(&s).await?);
    assert_not_found(
        store
            .read_stream(&s, Version(0), 10, Direction::Forward)
            .await,
        &s,
    );
    assert!(!store.has_events().await?);
    assert!(store.list_streams(None, 10).await?.is_empty());
    let r = store
        .append(&s, ExpectedVersion::NoStream, events(1))
        .await?;
    assert_eq!(
        r.first_version,
        Version(4),
        "numbering after delete and reopen"
    );
    Ok(())
}

// [X1] [M5] Aux entries survive reopen, and stay apart from the log.
/// `[X1]`: aux after reopen.
pub async fn x1_aux_survives_reopen<H: Harness>(h: H) -> CaseResult {
    let store = h.open(default_config()).await?;
    store.aux_put(b"a", b"1").await?;
    store.aux_put(&[0xFF, 0], &noise(5, 2000)).await?;
    store.aux_put(b"gone", b"x").await?;
    store.aux_delete(b"gone").await?;
    let before = all_aux(&store).await?;
    let store = h.reopen(store, default_config()).await?;
    assert_eq!(all_aux(&store).await?, before);
    assert_eq!(before.len(), 2);
    assert!(!store.has_events().await?);
    assert_eq!(head(&store).await?, Position(0));
    Ok(())
}
