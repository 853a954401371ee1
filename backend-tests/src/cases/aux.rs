//! The auxiliary key-value space and aux writes that commit with appends
//! (SPEC X1, X2).

use annals_core::{
    Append, AppendCondition, AuxWrite, Batch, Direction, ExpectedVersion, Limit, NewEvent,
    Position, Query, Version,
};

use super::{Case, case};
use crate::Harness;
use crate::support::*;

/// The cases of this module.
pub fn cases<H: Harness>() -> Vec<Case<H>> {
    vec![
        case!(x1_put_get_delete, |c| c.aux),
        case!(x1_scan_prefix_after_limit, |c| c.aux),
        case!(x1_key_and_value_limits, |c| c.aux),
        case!(x1_aux_writes_count_toward_append_limits, |c| c.aux),
        case!(x1_aux_is_apart_from_the_log, |c| c.aux),
        case!(x2_append_with_aux_commits_both, |c| c.aux),
        case!(x2_failing_aux_condition_writes_nothing, |c| c.aux),
        case!(x2_if_absent_and_if_equals, |c| c.aux),
        case!(x2_aux_write_is_all_or_nothing, |c| c.aux),
        case!(x2_failed_expectation_writes_no_aux, |c| c.aux),
        case!(x2_failed_append_condition_writes_no_aux, |c| c.aux
            && c.append_conditions),
        case!(x2_batch_with_aux, |c| c.aux && c.append_batch),
    ]
}

// [X1] put, get, overwrite, delete; binary keys and values; deleting a
// missing key is fine.
/// `[X1]`: basic aux operations.
pub async fn x1_put_get_delete<H: Harness>(h: H) -> CaseResult {
    let store = h.open(default_config()).await?;
    assert_eq!(store.aux_get(b"k").await?, None);
    store.aux_put(b"k", b"v1").await?;
    assert_eq!(store.aux_get(b"k").await?, Some(b"v1".to_vec()));
    store.aux_put(b"k", b"v2").await?;
    assert_eq!(store.aux_get(b"k").await?, Some(b"v2".to_vec()));
    let binary_key = [0u8, 0xFF, 0, 1];
    let value = noise(9, 5000);
    store.aux_put(&binary_key, &value).await?;
    store.aux_put(b"empty", b"").await?;
    assert_eq!(store.aux_get(&binary_key).await?, Some(value));
    assert_eq!(
        store.aux_get(b"empty").await?,
        Some(Vec::new()),
        "an empty value is not absence"
    );
    assert_eq!(
        store.aux_get(&[0u8, 0xFF, 0]).await?,
        None,
        "a prefix of a key is another key"
    );
    store.aux_delete(b"k").await?;
    assert_eq!(store.aux_get(b"k").await?, None);
    store.aux_delete(b"k").await?;
    store.aux_delete(b"never").await?;
    let long = vec![b'k'; 1024];
    store.aux_put(&long, b"long").await?;
    assert_eq!(store.aux_get(&long).await?, Some(b"long".to_vec()));
    Ok(())
}

// [X1] aux_scan returns the entries whose key starts with the prefix, in
// byte order, after `after`, at most `limit`.
/// `[X1]`: scanning.
pub async fn x1_scan_prefix_after_limit<H: Harness>(h: H) -> CaseResult {
    let store = h.open(default_config()).await?;
    let keys: [&[u8]; 9] = [
        b"b/1",
        b"a/2",
        b"a/1",
        b"a",
        b"a/3",
        b"a0",
        b"c",
        &[0xFF],
        &[0x01],
    ];
    for k in keys {
        store.aux_put(k, &[k, b"=v"].concat()).await?;
    }
    let scan = |prefix: &'static [u8], after: Option<&'static [u8]>, limit: usize| {
        let store = store.clone();
        async move {
            let found = store.aux_scan(prefix, after, limit).await?;
            for (k, v) in &found {
                assert_eq!(v, &[k.as_slice(), b"=v"].concat(), "value of an aux key");
            }
            Ok::<_, annals_core::Error>(found.into_iter().map(|(k, _)| k).collect::<Vec<_>>())
        }
    };
    let v = |ks: &[&[u8]]| ks.iter().map(|k| k.to_vec()).collect::<Vec<_>>();
    assert_eq!(scan(b"a/", None, 10).await?, v(&[b"a/1", b"a/2", b"a/3"]));
    assert_eq!(scan(b"a/", Some(b"a/1"), 10).await?, v(&[b"a/2", b"a/3"]));
    assert_eq!(
        scan(b"a/", Some(b"a/15"), 10).await?,
        v(&[b"a/2", b"a/3"]),
        "after a missing key"
    );
    assert_eq!(scan(b"a/", None, 2).await?, v(&[b"a/1", b"a/2"]));
    assert_eq!(scan(b"a/", Some(b"a/3"), 10).await?, v(&[]));
    assert_eq!(
        scan(b"a", None, 10).await?,
        v(&[b"a", b"a/1", b"a/2", b"a/3", b"a0"])
    );
    assert_eq!(
        scan(b"", None, 100).await?,
        v(&[
            &[0x01],
            b"a",
            b"a/1",
            b"a/2",
            b"a/3",
            b"a0",
            b"b/1",
            b"c",
            &[0xFF]
        ]),
        "every key, in byte order"
    );
    assert_eq!(scan(b"", Some(b"a0"), 2).await?, v(&[b"b/1", b"c"]));
    assert_eq!(scan(&[0xFF], None, 10).await?, v(&[&[0xFF]]));
    assert_eq!(scan(b"d", None, 10).await?, v(&[]));
    assert_eq!(scan(b"a/1/", None, 10).await?, v(&[]));
    Ok(())
}

// [X1] [X2] Keys are 1 to 1024 bytes and values at most max_event_bytes:
// an empty or 1025-byte key, or a value of max_event_bytes + 1, is
// InvalidInput — through aux_put, aux_delete, aux_write and an append's aux
// writes — and nothing is written.
/// `[X1]`: aux limits.
pub async fn x1_key_and_value_limits<H: Harness>(h: H) -> CaseResult {
    let store = h.open(small_config()).await?;
    let s = sid("x1");
    let long = vec![b'k'; 1025];
    for key in [&b""[..], &long] {
        assert_invalid(store.aux_put(key, b"v").await, "aux_put with a bad key");
        assert_invalid(store.aux_delete(key).await, "aux_delete with a bad key");
        assert_invalid(
            store
                .aux_write(vec![AuxWrite::put(b"ok", b"v"), AuxWrite::put(key, b"v")])
                .await,
            "aux_write with a bad key",
        );
        assert_invalid(
            store
                .append_with(
                    Append::new(s.clone(), ExpectedVersion::Any, events(1))
                        .aux(AuxWrite::put(key, b"v")),
                )
                .await,
            "append with a bad aux key",
        );
    }
    assert_invalid(
        store.aux_put(b"big", &[7; 1025]).await,
        "value of 1025 bytes",
    );
    assert_invalid(
        store
            .append_with(
                Append::new(s.clone(), ExpectedVersion::Any, events(1))
                    .aux(AuxWrite::put(b"big", vec![7; 1025])),
            )
            .await,
        "append with an aux value of 1025 bytes",
    );
    assert!(
        all_aux(&store).await?.is_empty(),
        "aux written by invalid writes"
    );
    assert!(
        !store.has_events().await?,
        "events written with invalid aux writes"
    );
    assert!(!store.stream_exists(&s).await?);
    store.aux_put(b"big", &[7; 1024]).await?;
    assert_eq!(store.aux_get(b"big").await?.map(|v| v.len()), Some(1024));
    Ok(())
}

// [X1] [X2] [D2] The aux writes of one write count toward
// max_append_events (one each) and max_append_bytes (key and value bytes,
// and the bytes an if_equals compares with): with max_append_events 10 and
// max_append_bytes 4096, 11 aux puts, 5 events + 6 aux puts, a batch of
// 4 + 4 events + 3 aux puts, 5 puts of 1000-byte values, or 4 events of 900
// bytes + a 600-byte aux value are InvalidInput naming the limit, and
// nothing is written; an if_equals value over max_event_bytes is refused
// like an aux value; a failed if_equals shows only a prefix of a large
// value. At the limits, the writes commit.
/// `[X1]`: aux writes and the append limits.
pub async fn x1_aux_writes_count_toward_append_limits<H: Harness>(h: H) -> CaseResult {
    let store = h.open(small_config()).await?;
    let caps = store.capabilities();
    let s = sid("x1-count");
    let puts = |n: usize, bytes: usize| -> Vec<AuxWrite> {
        (0..n)
            .map(|i| AuxWrite::put(format!("k{i}"), vec![b'v'; bytes]))
            .collect()
    };
    assert_limit(
        store.aux_write(puts(11, 1)).await,
        Limit::AppendEvents,
        10,
        11,
        "11 aux puts",
    );
    let mut append = Append::new(s.clone(), ExpectedVersion::Any, events(5));
    append.aux = puts(6, 1);
    assert_limit(
        store.append_with(append).await,
        Limit::AppendEvents,
        10,
        11,
        "5 events and 6 aux puts",
    );
    if caps.append_batch {
        let mut batch = Batch::default()
            .part(s.clone(), ExpectedVersion::Any, events(4))
            .part(sid("x1-count-b"), ExpectedVersion::Any, events(4));
        batch.aux = puts(3, 1);
        assert_limit(
            store.append_batch(batch).await,
            Limit::AppendEvents,
            10,
            11,
            "a batch of 8 events and 3 aux puts",
        );
    }
    assert_limit(
        store.aux_write(puts(5, 1000)).await,
        Limit::AppendBytes,
        4096,
        5 * 1002,
        "5 aux values of 1000 bytes",
    );
    let heavy: Vec<NewEvent> = (0..4).map(|_| sized(900)).collect();
    let append =
        Append::new(s.clone(), ExpectedVersion::Any, heavy).aux(AuxWrite::put(b"cp", vec![1; 600]));
    assert_limit(
        store.append_with(append).await,
        Limit::AppendBytes,
        4096,
        4 * 900 + 602,
        "4 events of 900 bytes and an aux value of 600",
    );
    assert_limit(
        store
            .aux_write(vec![AuxWrite::put(b"k", b"v").if_equals(vec![0; 1025])])
            .await,
        Limit::AuxValueBytes,
        1024,
        1025,
        "an if_equals value of 1025 bytes",
    );
    assert!(
        all_aux(&store).await?.is_empty(),
        "aux written over the limits"
    );
    assert!(!store.has_events().await?, "events written over the limits");

    store.aux_put(b"big", &[b'x'; 1000]).await?;
    let e = expect_err(
        store
            .aux_write(vec![
                AuxWrite::put(b"big", b"new").if_equals(vec![b'y'; 1000]),
            ])
            .await,
        "a failing if_equals with a large value",
    );
    assert!(e.is_condition_failed(), "{e:?}");
    assert!(
        e.to_string().len() < 300,
        "the message shows the whole 1000-byte value: {} bytes",
        e.to_string().len()
    );

    let mut append = Append::new(s.clone(), ExpectedVersion::Any, events(5));
    append.aux = puts(5, 1);
    store.append_with(append).await?;
    store.aux_write(puts(4, 1000)).await?;
    Ok(())
}

// [X1] Nothing in the aux space appears in a read of events: after aux
// writes only, the store has no events, an empty log with head 0, no
// streams; with events, reads show only them.
/// `[X1]`: apart from the log.
pub async fn x1_aux_is_apart_from_the_log<H: Harness>(h: H) -> CaseResult {
    let store = h.open(default_config()).await?;
    for i in 0..20u8 {
        store.aux_put(&[b'k', i], &noise(u64::from(i), 100)).await?;
    }
    store.aux_put(b"stream/x", b"looks like a stream").await?;
    assert!(!store.has_events().await?);
    let page = store
        .read_all(Position(0), 100, Direction::Forward, None)
        .await?;
    assert!(page.events.is_empty());
    assert_eq!(page.head, Position(0), "aux writes moved the head");
    assert!(
        store
            .read_all(Position::MAX, 100, Direction::Backward, Some(&Query::new()))
            .await?
            .events
            .is_empty()
    );
    assert!(store.list_streams(None, 100).await?.is_empty());
    assert_eq!(*store.watch_head()?.borrow(), Position(0));
    let s = sid("x1-log");
    let e = events(2);
    store
        .append_with(
            Append::new(s.clone(), ExpectedVersion::Any, e.clone()).aux(AuxWrite::put(b"cp", b"2")),
        )
        .await?;
    let all = all_events(&store).await?;
    assert_eq!(ids(&all), new_ids(&e));
    assert_eq!(all_streams(&store).await?.len(), 1);
    assert_eq!(all_aux(&store).await?.len(), 22);
    Ok(())
}

// [X2] An append with aux writes commits both: the events and the puts and
// deletes.
/// `[X2]`: append with aux.
pub async fn x2_append_with_aux_commits_both<H: Harness>(h: H) -> CaseResult {
    let store = h.open(default_config()).await?;
    let s = sid("x2");
    store.aux_put(b"old", b"x").await?;
    let r = store
        .append_with(
            Append::new(s.clone(), ExpectedVersion::NoStream, events(2))
                .aux(AuxWrite::put(b"checkpoint/p", 2u64.to_be_bytes()))
                .aux(AuxWrite::delete(b"old")),
        )
        .await?;
    assert_eq!(r.last_version, Version(1));
    assert_eq!(stream_events(&store, &s).await?.len(), 2);
    assert_eq!(
        store.aux_get(b"checkpoint/p").await?,
        Some(2u64.to_be_bytes().to_vec())
    );
    assert_eq!(store.aux_get(b"old").await?, None);
    Ok(())
}

// [X2] [A2] [E1] A failed aux condition fails the whole append with
// AppendConditionFailed naming the key: no events, no stream, no aux
// write of the same append.
/// `[X2]`: failing aux condition.
pub async fn x2_failing_aux_condition_writes_nothing<H: Harness>(h: H) -> CaseResult {
    let store = h.open(default_config()).await?;
    let s = sid("x2-fail");
    store.aux_put(b"checkpoint/proj-7", b"5").await?;
    let before = StoreState::capture(&store, [&s], &[]).await?;
    assert_aux_condition_failed(
        store
            .append_with(
                Append::new(s.clone(), ExpectedVersion::NoStream, events(2))
                    .aux(AuxWrite::put(b"other", b"1"))
                    .aux(AuxWrite::put(b"checkpoint/proj-7", b"6").if_absent()),
            )
            .await,
        b"checkpoint/proj-7",
        "if_absent on a present key",
    );
    assert_aux_condition_failed(
        store
            .append_with(
                Append::new(s.clone(), ExpectedVersion::NoStream, events(2))
                    .aux(AuxWrite::put(b"checkpoint/proj-7", b"6").if_equals(b"4"))
                    .aux(AuxWrite::delete(b"other")),
            )
            .await,
        b"checkpoint/proj-7",
        "if_equals with the wrong value",
    );
    let after = StoreState::capture(&store, [&s], &[]).await?;
    before.assert_same(&after, "after appends whose aux condition failed");
    assert!(!store.stream_exists(&s).await?);
    assert_eq!(
        store.aux_get(b"checkpoint/proj-7").await?,
        Some(b"5".to_vec())
    );
    // The right value commits both.
    store
        .append_with(
            Append::new(s.clone(), ExpectedVersion::NoStream, events(2))
                .aux(AuxWrite::put(b"checkpoint/proj-7", b"6").if_equals(b"5")),
        )
        .await?;
    assert_eq!(
        store.aux_get(b"checkpoint/proj-7").await?,
        Some(b"6".to_vec())
    );
    assert_eq!(store.stream_version(&s).await?, Version(1));
    Ok(())
}

// [X2] Conditional aux-only writes: if_absent passes on a missing key and
// fails on a present one; if_equals passes on the same bytes and fails on
// others or on absence; a conditional delete too.
/// `[X2]`: aux conditions.
pub async fn x2_if_absent_and_if_equals<H: Harness>(h: H) -> CaseResult {
    let store = h.open(default_config()).await?;
    store
        .aux_write(vec![AuxWrite::put(b"k", b"1").if_absent()])
        .await?;
    assert_eq!(store.aux_get(b"k").await?, Some(b"1".to_vec()));
    assert_aux_condition_failed(
        store
            .aux_write(vec![AuxWrite::put(b"k", b"2").if_absent()])
            .await,
        b"k",
        "if_absent on a present key",
    );
    assert_aux_condition_failed(
        store
            .aux_write(vec![AuxWrite::put(b"k", b"2").if_equals(b"0")])
            .await,
        b"k",
        "if_equals with other bytes",
    );
    assert_aux_condition_failed(
        store
            .aux_write(vec![AuxWrite::put(b"k", b"2").if_equals(b"")])
            .await,
        b"k",
        "if_equals with empty bytes",
    );
    assert_aux_condition_failed(
        store
            .aux_write(vec![AuxWrite::put(b"missing", b"2").if_equals(b"1")])
            .await,
        b"missing",
        "if_equals on a missing key",
    );
    assert_eq!(store.aux_get(b"k").await?, Some(b"1".to_vec()));
    assert_eq!(store.aux_get(b"missing").await?, None);
    store
        .aux_write(vec![AuxWrite::put(b"k", b"2").if_equals(b"1")])
        .await?;
    assert_eq!(store.aux_get(b"k").await?, Some(b"2".to_vec()));
    assert_aux_condition_failed(
        store
            .aux_write(vec![AuxWrite::delete(b"k").if_equals(b"1")])
            .await,
        b"k",
        "conditional delete with other bytes",
    );
    store
        .aux_write(vec![AuxWrite::delete(b"k").if_equals(b"2")])
        .await?;
    assert_eq!(store.aux_get(b"k").await?, None);
    store
        .aux_write(vec![AuxWrite::delete(b"k").if_absent()])
        .await?;
    store
        .aux_write(vec![AuxWrite::put(b"e", b"").if_absent()])
        .await?;
    assert_aux_condition_failed(
        store
            .aux_write(vec![AuxWrite::put(b"e", b"x").if_absent()])
            .await,
        b"e",
        "if_absent on a key holding an empty value",
    );
    store
        .aux_write(vec![AuxWrite::put(b"e", b"x").if_equals(b"")])
        .await?;
    assert_eq!(store.aux_get(b"e").await?, Some(b"x".to_vec()));
    Ok(())
}

// [X2] An aux-only write is all or nothing: one failing condition and none
// of its writes land; all passing and all land.
/// `[X2]`: aux_write atomicity.
pub async fn x2_aux_write_is_all_or_nothing<H: Harness>(h: H) -> CaseResult {
    let store = h.open(default_config()).await?;
    store.aux_put(b"bee", b"1").await?;
    store.aux_put(b"c", b"1").await?;
    assert_aux_condition_failed(
        store
            .aux_write(vec![
                AuxWrite::put(b"a", b"new"),
                AuxWrite::delete(b"c"),
                AuxWrite::put(b"bee", b"2").if_absent(),
            ])
            .await,
        b"bee",
        "aux_write with one failing condition",
    );
    assert_eq!(
        all_aux(&store).await?,
        vec![
            (b"bee".to_vec(), b"1".to_vec()),
            (b"c".to_vec(), b"1".to_vec())
        ]
    );
    store
        .aux_write(vec![
            AuxWrite::put(b"a", b"new"),
            AuxWrite::delete(b"c").if_equals(b"1"),
            AuxWrite::put(b"bee", b"2").if_equals(b"1"),
        ])
        .await?;
    assert_eq!(
        all_aux(&store).await?,
        vec![
            (b"a".to_vec(), b"new".to_vec()),
            (b"bee".to_vec(), b"2".to_vec())
        ]
    );
    assert!(!store.has_events().await?);
    Ok(())
}

// [X2] [A2] An append that fails its expectation writes none of its aux
// writes.
/// `[X2]`: failed expectation, no aux.
pub async fn x2_failed_expectation_writes_no_aux<H: Harness>(h: H) -> CaseResult {
    let store = h.open(default_config()).await?;
    let s = sid("x2-wev");
    store.append(&s, ExpectedVersion::Any, events(1)).await?;
    let r = store
        .append_with(
            Append::new(s.clone(), ExpectedVersion::NoStream, events(1))
                .aux(AuxWrite::put(b"cp", b"1")),
        )
        .await;
    assert_wrong_version(r, &s, ExpectedVersion::NoStream, Some(0));
    assert_eq!(store.aux_get(b"cp").await?, None);
    assert_invalid(
        store
            .append_with(
                Append::new(s.clone(), ExpectedVersion::Any, vec![])
                    .aux(AuxWrite::put(b"cp", b"1")),
            )
            .await,
        "an empty append with aux writes",
    );
    assert_eq!(store.aux_get(b"cp").await?, None);
    Ok(())
}

// [X2] [A8] An append whose DCB condition fails writes none of its aux
// writes.
/// `[X2]`: failed condition, no aux.
pub async fn x2_failed_append_condition_writes_no_aux<H: Harness>(h: H) -> CaseResult {
    let store = h.open(default_config()).await?;
    store
        .append(&sid("src"), ExpectedVersion::Any, vec![tagged("T", &["t"])])
        .await?;
    let r = store
        .append_with(
            Append::new(sid("x2-c"), ExpectedVersion::Any, events(1))
                .condition(AppendCondition::new(tag_query("t"), Some(Position(0))))
                .aux(AuxWrite::put(b"cp", b"1")),
        )
        .await;
    assert_events_condition_failed(
        r,
        &AppendCondition::new(tag_query("t"), Some(Position(0))),
        "a stale condition",
    );
    assert_eq!(store.aux_get(b"cp").await?, None);
    assert!(!store.stream_exists(&sid("x2-c")).await?);
    Ok(())
}

// [X2] [A6] A batch carries aux writes: a failing aux condition fails the
// batch (nothing written); a passing one commits every part and the aux
// writes together.
/// `[X2]`: batch with aux.
pub async fn x2_batch_with_aux<H: Harness>(h: H) -> CaseResult {
    let store = h.open(default_config()).await?;
    let (a, b) = (sid("xb-a"), sid("xb-b"));
    store.aux_put(b"cp", b"0").await?;
    let batch = |expected_cp: &[u8]| {
        Batch::default()
            .part(a.clone(), ExpectedVersion::NoStream, events(1))
            .part(b.clone(), ExpectedVersion::NoStream, events(2))
            .aux(AuxWrite::put(b"cp", b"1").if_equals(expected_cp))
            .aux(AuxWrite::put(b"snap", b"s"))
    };
    assert_aux_condition_failed(
        store.append_batch(batch(b"9")).await,
        b"cp",
        "batch with a failing aux condition",
    );
    assert!(!store.has_events().await?);
    assert_eq!(store.aux_get(b"snap").await?, None);
    let r = store.append_batch(batch(b"0")).await?;
    assert_eq!(r.len(), 2);
    assert_eq!(store.aux_get(b"cp").await?, Some(b"1".to_vec()));
    assert_eq!(store.aux_get(b"snap").await?, Some(b"s".to_vec()));
    assert_eq!(all_events(&store).await?.len(), 3);
    Ok(())
}
