//! Appending: results, expectations, validation, idempotent retries
//! (SPEC D1–D4, A1–A3, A5, A7).

use annals_core::{
    Direction, Error, ExpectedVersion, Limit, NewEvent, Position, StoreConfig, StreamId, Timestamp,
    Uuid, Version,
};

use super::{Case, case};
use crate::Harness;
use crate::support::*;

/// The cases of this module.
pub fn cases<H: Harness>() -> Vec<Case<H>> {
    vec![
        case!(a1_append_returns_versions_and_positions),
        case!(d3_recorded_events_are_byte_identical),
        case!(d3_recorded_at_never_decreases),
        case!(d4_every_expectation_can_succeed),
        case!(a3_no_stream_fails_on_existing_with_actual_version),
        case!(a3_stream_exists_fails_on_missing),
        case!(a3_exact_fails_with_actual_version),
        case!(a3_exact_on_missing_fails_with_none),
        case!(a7_empty_event_list_is_invalid),
        case!(d1_stream_id_rules),
        case!(d2_invalid_events_change_nothing),
        case!(d2_small_limits),
        case!(d2_default_event_limit_16_mib),
        case!(a5_exact_retry_returns_original_result),
        case!(a5_no_stream_retry_returns_original_result),
        case!(a5_partial_match_fails),
        case!(a5_different_order_fails),
        case!(a5_any_and_stream_exists_retries_write_twice),
        case!(a5_no_stream_retry_after_recreate, |c| c.delete),
    ]
}

// [A1] [D3] N events get consecutive versions (from 0) and positions (from
// 1), and the result names the first and last of each.
/// `[A1]`: append results.
pub async fn a1_append_returns_versions_and_positions<H: Harness>(h: H) -> CaseResult {
    let store = h.open(default_config()).await?;
    let s = sid("a1");
    let r = store
        .append(&s, ExpectedVersion::NoStream, events(3))
        .await?;
    assert_eq!(
        (r.first_version, r.last_version),
        (Version(0), Version(2)),
        "versions of the first append"
    );
    assert_eq!(
        (r.first_position, r.last_position),
        (Position(1), Position(3)),
        "positions of the store's first append"
    );
    let r = store
        .append(&s, ExpectedVersion::exact(2), events(2))
        .await?;
    assert_eq!((r.first_version, r.last_version), (Version(3), Version(4)));
    assert_eq!(r.first_position.0 + 1, r.last_position.0);
    assert!(r.first_position > Position(3));
    let t = sid("a1-other");
    let r2 = store.append(&t, ExpectedVersion::Any, events(1)).await?;
    assert_eq!(
        (r2.first_version, r2.last_version),
        (Version(0), Version(0))
    );
    assert!(r2.first_position > r.last_position);
    assert_eq!(r2.first_position, r2.last_position);
    let all = all_events(&store).await?;
    assert_eq!(all.len(), 6);
    assert_eq!(versions(&all), vec![0, 1, 2, 3, 4, 0]);
    assert_eq!(
        positions(&all),
        vec![
            1,
            2,
            3,
            r.first_position.0,
            r.last_position.0,
            r2.first_position.0
        ]
    );
    Ok(())
}

// [D3] A recorded event is the NewEvent byte for byte — id, type, data,
// metadata, tags in their order — plus stream, version and position; the
// same through read_stream and read_all.
/// `[D3]`: byte-identical events.
pub async fn d3_recorded_events_are_byte_identical<H: Harness>(h: H) -> CaseResult {
    let store = h.open(default_config()).await?;
    let s = sid("d3/ström ✓");
    let given = vec![
        NewEvent::builder("Ünïcode-Type ✓")
            .id(Uuid::from_u128(0x0123_4567_89ab_cdef_0123_4567_89ab_cdef))
            .data(vec![0u8, 1, 2, 0xFF, 0xFE, 0, 0])
            .metadata(b"{\"k\":\"v\"}".to_vec())
            .tags(["zeta", "alpha", "mid:1", "ünï"])
            .build(),
        NewEvent::builder("Empty").build(),
        NewEvent::builder("T")
            .data(noise(7, 10_000))
            .metadata(vec![0; 3])
            .tag("x")
            .build(),
    ];
    let before = Timestamp::now();
    let r = store
        .append(&s, ExpectedVersion::NoStream, given.clone())
        .await?;
    let after = Timestamp::now();
    let page = store
        .read_stream(&s, Version(0), 10, Direction::Forward)
        .await?;
    let all = all_events(&store).await?;
    assert_same_events(&page.events, &all, "read_stream and read_all");
    assert_eq!(page.events.len(), 3);
    for (i, (new, rec)) in given.iter().zip(&page.events).enumerate() {
        assert_recorded(new, rec);
        assert_eq!(rec.stream_id, s);
        assert_eq!(rec.stream_version, Version(i as u64));
        assert_eq!(rec.position, Position(r.first_position.0 + i as u64));
        // Microseconds, UTC: within the append's time, a little slack.
        assert!(
            rec.recorded_at.0 + 5_000_000 >= before.0 && rec.recorded_at.0 <= after.0 + 5_000_000,
            "recorded_at {:?} is not between {before:?} and {after:?} (microseconds)",
            rec.recorded_at
        );
    }
    Ok(())
}

// [D3] recorded_at never decreases along positions, over many appends to
// several streams.
/// `[D3]`: recorded_at order.
pub async fn d3_recorded_at_never_decreases<H: Harness>(h: H) -> CaseResult {
    let store = h.open(default_config()).await?;
    for i in 0..60 {
        let s = sid(&format!("d3-{}", i % 4));
        store
            .append(&s, ExpectedVersion::Any, events(1 + i % 3))
            .await?;
    }
    let all = all_events(&store).await?;
    for pair in all.windows(2) {
        assert!(pair[0].position < pair[1].position);
        assert!(
            pair[0].recorded_at <= pair[1].recorded_at,
            "recorded_at decreases from position {} to {}",
            pair[0].position,
            pair[1].position
        );
    }
    Ok(())
}

// [D4] [A3] Each expectation succeeds when it holds: NoStream on a missing
// stream, StreamExists and Exact(last) on an existing one, Any on both.
/// `[D4]`: expectations that hold.
pub async fn d4_every_expectation_can_succeed<H: Harness>(h: H) -> CaseResult {
    let store = h.open(default_config()).await?;
    let s = sid("d4");
    let r = store
        .append(&s, ExpectedVersion::NoStream, events(1))
        .await?;
    assert_eq!(r.last_version, Version(0));
    let r = store
        .append(&s, ExpectedVersion::StreamExists, events(2))
        .await?;
    assert_eq!(r.last_version, Version(2));
    let r = store
        .append(&s, ExpectedVersion::exact(2), events(1))
        .await?;
    assert_eq!(r.last_version, Version(3));
    let r = store.append(&s, ExpectedVersion::Any, events(1)).await?;
    assert_eq!(r.last_version, Version(4));
    let t = sid("d4-any-new");
    let r = store.append(&t, ExpectedVersion::Any, events(1)).await?;
    assert_eq!(r.first_version, Version(0));
    assert_eq!(store.stream_version(&s).await?, Version(4));
    Ok(())
}

// [A3] [A2] NoStream on an existing stream fails with the real version, and
// writes nothing.
/// `[A3]`: NoStream on an existing stream.
pub async fn a3_no_stream_fails_on_existing_with_actual_version<H: Harness>(h: H) -> CaseResult {
    let store = h.open(default_config()).await?;
    let s = sid("a3-ns");
    store
        .append(&s, ExpectedVersion::NoStream, events(3))
        .await?;
    let before = StoreState::capture(&store, [&s], &[]).await?;
    let r = store.append(&s, ExpectedVersion::NoStream, events(1)).await;
    assert_wrong_version(r, &s, ExpectedVersion::NoStream, Some(2));
    let after = StoreState::capture(&store, [&s], &[]).await?;
    before.assert_same(&after, "after a failed NoStream append");
    Ok(())
}

// [A3] [A2] StreamExists on a missing stream fails with actual None, and
// does not create the stream.
/// `[A3]`: StreamExists on a missing stream.
pub async fn a3_stream_exists_fails_on_missing<H: Harness>(h: H) -> CaseResult {
    let store = h.open(default_config()).await?;
    let s = sid("a3-se");
    let r = store
        .append(&s, ExpectedVersion::StreamExists, events(2))
        .await;
    assert_wrong_version(r, &s, ExpectedVersion::StreamExists, None);
    assert!(!store.stream_exists(&s).await?);
    assert!(!store.has_events().await?);
    assert_eq!(head(&store).await?, Position(0));
    assert_not_found(store.stream_version(&s).await, &s);
    Ok(())
}

// [A3] [A2] Exact(v) fails unless v is the last version — below and above —
// naming the real version; nothing is written.
/// `[A3]`: Exact with a wrong version.
pub async fn a3_exact_fails_with_actual_version<H: Harness>(h: H) -> CaseResult {
    let store = h.open(default_config()).await?;
    let s = sid("a3-exact");
    store
        .append(&s, ExpectedVersion::NoStream, events(3))
        .await?;
    let before = StoreState::capture(&store, [&s], &[]).await?;
    for wrong in [0, 1, 3, 5, u64::MAX] {
        let r = store
            .append(&s, ExpectedVersion::exact(wrong), events(2))
            .await;
        assert_wrong_version(r, &s, ExpectedVersion::exact(wrong), Some(2));
    }
    let after = StoreState::capture(&store, [&s], &[]).await?;
    before.assert_same(&after, "after failed Exact appends");
    Ok(())
}

// [A3] Exact(v) on a missing stream fails with actual None.
/// `[A3]`: Exact on a missing stream.
pub async fn a3_exact_on_missing_fails_with_none<H: Harness>(h: H) -> CaseResult {
    let store = h.open(default_config()).await?;
    let s = sid("a3-missing");
    for v in [0, 1] {
        let r = store.append(&s, ExpectedVersion::exact(v), events(1)).await;
        assert_wrong_version(r, &s, ExpectedVersion::exact(v), None);
    }
    assert!(!store.stream_exists(&s).await?);
    assert!(!store.has_events().await?);
    Ok(())
}

// [A7] An empty event list is InvalidInput, with every expectation, on a
// new and on an existing stream.
/// `[A7]`: empty appends.
pub async fn a7_empty_event_list_is_invalid<H: Harness>(h: H) -> CaseResult {
    let store = h.open(default_config()).await?;
    let s = sid("a7");
    for expected in [
        ExpectedVersion::Any,
        ExpectedVersion::NoStream,
        ExpectedVersion::StreamExists,
        ExpectedVersion::exact(0),
    ] {
        assert_invalid(store.append(&s, expected, vec![]).await, "empty append");
    }
    assert!(!store.stream_exists(&s).await?);
    store.append(&s, ExpectedVersion::Any, events(1)).await?;
    let r = store.append(&s, ExpectedVersion::exact(0), vec![]).await;
    assert_invalid(r, "empty append to an existing stream");
    assert_eq!(store.stream_version(&s).await?, Version(0));
    assert_eq!(all_events(&store).await?.len(), 1);
    Ok(())
}

// [D1] A stream id is 1 to 1024 bytes of UTF-8 without NUL: the empty id,
// 1025 bytes (ASCII or multibyte) and NUL are InvalidInput — StreamId::new,
// TryFrom and Deserialize already refuse them, so no store can be handed
// one — while 1024 bytes and any other Unicode work end to end.
/// `[D1]`: stream id rules.
pub async fn d1_stream_id_rules<H: Harness>(h: H) -> CaseResult {
    for bad in [
        String::new(),
        "x".repeat(1025),
        "é".repeat(512) + "x",
        "a\0b".to_string(),
        "\0".to_string(),
    ] {
        let r = StreamId::new(bad.clone());
        let e = expect_err(r, &format!("StreamId::new of {} bytes", bad.len()));
        assert!(
            matches!(e, Error::InvalidInput { .. }),
            "StreamId::new: expected InvalidInput, got {e:?}"
        );
        let r = StreamId::try_from(bad.as_str());
        assert!(
            r.is_err(),
            "StreamId::try_from of {} bytes: {r:?}",
            bad.len()
        );
        // Deserialize is a door too: a JSON string that breaks D1 is refused.
        let json = serde_json::to_string(&bad).expect("a string serializes");
        let r = serde_json::from_str::<StreamId>(&json);
        let e = r.expect_err("deserializing an invalid stream id");
        assert!(
            e.to_string().contains("stream id"),
            "deserializing {} bytes: the error does not say what was wrong: {e}",
            bad.len()
        );
    }
    let good: StreamId = serde_json::from_str("\"order-1\"").expect("a valid id deserializes");
    assert_eq!(good.as_str(), "order-1");
    assert_eq!(
        serde_json::to_string(&good).expect("serializes"),
        "\"order-1\""
    );
    let store = h.open(default_config()).await?;
    let long = sid(&"x".repeat(1024));
    let wide = sid(&"é".repeat(512));
    let odd = sid("🦀 / \\ : * ? \" < > | \u{7f} \u{1} ");
    for s in [&long, &wide, &odd] {
        store
            .append(s, ExpectedVersion::NoStream, events(1))
            .await?;
        let page = store
            .read_stream(s, Version(0), 5, Direction::Forward)
            .await?;
        assert_eq!(page.events.len(), 1);
        assert_eq!(&page.events[0].stream_id, s);
        assert!(store.stream_exists(s).await?);
    }
    let listed: Vec<StreamId> = all_streams(&store)
        .await?
        .into_iter()
        .map(|i| i.id)
        .collect();
    assert_eq!(listed.len(), 3);
    for s in [&long, &wide, &odd] {
        assert!(
            listed.contains(s),
            "stream of {} bytes not listed",
            s.as_str().len()
        );
    }
    Ok(())
}

/// The invalid events of [D2] that need no size limit, each with what is
/// wrong with it.
fn invalid_events() -> Vec<(&'static str, Vec<NewEvent>)> {
    let valid = || ev("Valid");
    let one = |e: NewEvent| vec![valid(), e];
    let dup = ev("Dup");
    vec![
        ("empty type", one(NewEvent::builder("").build())),
        (
            "256-byte type",
            one(NewEvent::builder("t".repeat(256)).build()),
        ),
        ("type with NUL", one(NewEvent::builder("a\0b").build())),
        (
            "65 tags",
            one(NewEvent::builder("T")
                .tags((0..65).map(|i| format!("tag-{i}")))
                .build()),
        ),
        (
            "duplicate tag",
            one(NewEvent::builder("T").tags(["a", "b", "a"]).build()),
        ),
        ("empty tag", one(NewEvent::builder("T").tag("").build())),
        (
            "256-byte tag",
            one(NewEvent::builder("T").tag("g".repeat(256)).build()),
        ),
        (
            "tag with NUL",
            one(NewEvent::builder("T").tag("x\0").build()),
        ),
        ("duplicate event ids", vec![dup.clone(), valid(), dup]),
        ("empty list", vec![]),
    ]
}

// [D2] [A2] Every violation of the event rules — empty, 256-byte or NUL
// type; 65 tags, a duplicate, empty, 256-byte or NUL tag; one id twice; an
// empty list — is InvalidInput, on a new and on an existing stream, and
// nothing is written. The largest valid values (255-byte names, 64 tags)
// are accepted.
/// `[D2]`: invalid events.
pub async fn d2_invalid_events_change_nothing<H: Harness>(h: H) -> CaseResult {
    let store = h.open(default_config()).await?;
    let existing = sid("d2-existing");
    let fresh = sid("d2-fresh");
    store
        .append(&existing, ExpectedVersion::NoStream, events(2))
        .await?;
    let before = StoreState::capture(&store, [&existing, &fresh], &["a"]).await?;
    for (what, list) in invalid_events() {
        let r = store
            .append(&fresh, ExpectedVersion::Any, list.clone())
            .await;
        assert_invalid(r, &format!("{what} (new stream)"));
        let r = store
            .append(&existing, ExpectedVersion::exact(1), list)
            .await;
        assert_invalid(r, &format!("{what} (existing stream)"));
    }
    let after = StoreState::capture(&store, [&existing, &fresh], &["a"]).await?;
    before.assert_same(&after, "after invalid appends");
    // The largest valid names and tag counts are fine.
    let largest = NewEvent::builder("t".repeat(255))
        .tags((0..63).map(|i| format!("tag-{i}")))
        .tag("g".repeat(255))
        .build();
    store
        .append(&fresh, ExpectedVersion::NoStream, vec![largest.clone()])
        .await?;
    let page = store
        .read_stream(&fresh, Version(0), 1, Direction::Forward)
        .await?;
    assert_recorded(&largest, &page.events[0]);
    Ok(())
}

// [D2] [A2] [E1] With small limits (max_event_bytes 1024, max_append_events
// 10, max_append_bytes 4096): an event over 1024 bytes of data + metadata,
// 11 events, 5000 bytes in one append are InvalidInput naming the limit,
// and nothing is written; exactly at each limit works.
/// `[D2]`: size limits.
pub async fn d2_small_limits<H: Harness>(h: H) -> CaseResult {
    let store = h.open(small_config()).await?;
    let limits = store.limits();
    assert_eq!(limits, small_config().limits, "the store's limits");
    let s = sid("d2-limits");
    store
        .append(&s, ExpectedVersion::NoStream, events(1))
        .await?;
    let before = StoreState::capture(&store, [&s], &[]).await?;

    assert_limit(
        store
            .append(&s, ExpectedVersion::Any, vec![sized(1025)])
            .await,
        Limit::EventBytes,
        1024,
        1025,
        "data of 1025 bytes",
    );
    let split = NewEvent::builder("Split")
        .data(vec![1; 600])
        .metadata(vec![2; 425])
        .build();
    assert_limit(
        store.append(&s, ExpectedVersion::Any, vec![split]).await,
        Limit::EventBytes,
        1024,
        1025,
        "data 600 + metadata 425 bytes",
    );
    assert_limit(
        store.append(&s, ExpectedVersion::Any, events(11)).await,
        Limit::AppendEvents,
        10,
        11,
        "11 events",
    );
    let many: Vec<NewEvent> = (0..5).map(|_| sized(1000)).collect();
    assert_limit(
        store.append(&s, ExpectedVersion::Any, many).await,
        Limit::AppendBytes,
        4096,
        5000,
        "5000 bytes in one append",
    );
    let after = StoreState::capture(&store, [&s], &[]).await?;
    before.assert_same(&after, "after appends over the limits");

    let exact = NewEvent::builder("Exact")
        .data(vec![1; 1000])
        .metadata(vec![2; 24])
        .build();
    store
        .append(&s, ExpectedVersion::Any, vec![exact.clone()])
        .await?;
    store.append(&s, ExpectedVersion::Any, events(10)).await?;
    let full: Vec<NewEvent> = (0..4).map(|_| sized(1024)).collect();
    let r = store.append(&s, ExpectedVersion::Any, full).await?;
    assert_eq!(r.last_version, Version(15));
    let page = store
        .read_stream(&s, Version(1), 1, Direction::Forward)
        .await?;
    assert_recorded(&exact, &page.events[0]);
    Ok(())
}

// [D2] With the default limits, an event of 16 MiB + 1 byte is InvalidInput
// and one of exactly 16 MiB (data + metadata) is stored whole.
/// `[D2]`: the default event limit.
pub async fn d2_default_event_limit_16_mib<H: Harness>(h: H) -> CaseResult {
    let store = h.open(StoreConfig::default()).await?;
    let s = sid("d2-16mib");
    let r = store
        .append(&s, ExpectedVersion::Any, vec![sized((16 << 20) + 1)])
        .await;
    assert_limit(
        r,
        Limit::EventBytes,
        16 << 20,
        (16 << 20) + 1,
        "an event of 16 MiB + 1",
    );
    let r = store
        .append(
            &s,
            ExpectedVersion::Any,
            vec![
                NewEvent::builder("Half")
                    .data(vec![1; 8 << 20])
                    .metadata(vec![2; (8 << 20) + 1])
                    .build(),
            ],
        )
        .await;
    assert_invalid(r, "data 8 MiB + metadata 8 MiB + 1");
    assert!(!store.has_events().await?);
    let big = NewEvent::builder("Big")
        .data(noise(3, 8 << 20))
        .metadata(noise(4, 8 << 20))
        .build();
    store
        .append(&s, ExpectedVersion::NoStream, vec![big.clone()])
        .await?;
    let page = store
        .read_stream(&s, Version(0), 1, Direction::Forward)
        .await?;
    assert_recorded(&big, &page.events[0]);
    Ok(())
}

// [A5] A retry of an Exact(v) append that was committed returns the
// original result (versions and positions) without writing — also after
// later appends moved the stream on.
/// `[A5]`: Exact retry.
pub async fn a5_exact_retry_returns_original_result<H: Harness>(h: H) -> CaseResult {
    let store = h.open(default_config()).await?;
    let s = sid("a5-exact");
    store
        .append(&s, ExpectedVersion::NoStream, events(1))
        .await?;
    let x = events(2);
    let original = store
        .append(&s, ExpectedVersion::exact(0), x.clone())
        .await?;
    let before = StoreState::capture(&store, [&s], &[]).await?;
    let retry = store
        .append(&s, ExpectedVersion::exact(0), x.clone())
        .await?;
    assert_eq!(retry, original, "the retry's result");
    let after = StoreState::capture(&store, [&s], &[]).await?;
    before.assert_same(&after, "after an idempotent retry");
    // Later events do not change the answer.
    store
        .append(&s, ExpectedVersion::exact(2), events(3))
        .await?;
    store
        .append(&sid("a5-other"), ExpectedVersion::Any, events(1))
        .await?;
    let count = all_events(&store).await?.len();
    let retry = store.append(&s, ExpectedVersion::exact(0), x).await?;
    assert_eq!(retry, original, "the retry's result after later appends");
    assert_eq!(all_events(&store).await?.len(), count, "the retry wrote");
    Ok(())
}

// [A5] A retry of a NoStream append returns the original result without
// writing, also after later appends.
/// `[A5]`: NoStream retry.
pub async fn a5_no_stream_retry_returns_original_result<H: Harness>(h: H) -> CaseResult {
    let store = h.open(default_config()).await?;
    let s = sid("a5-ns");
    store
        .append(&sid("a5-first"), ExpectedVersion::Any, events(2))
        .await?;
    let x = events(3);
    let original = store
        .append(&s, ExpectedVersion::NoStream, x.clone())
        .await?;
    let retry = store
        .append(&s, ExpectedVersion::NoStream, x.clone())
        .await?;
    assert_eq!(retry, original);
    store.append(&s, ExpectedVersion::Any, events(2)).await?;
    let retry = store.append(&s, ExpectedVersion::NoStream, x).await?;
    assert_eq!(retry, original);
    assert_eq!(store.stream_version(&s).await?, Version(4));
    assert_eq!(all_events(&store).await?.len(), 7);
    Ok(())
}

// [A5] A partial match — the first k of N ids match the events after the
// expectation, the rest do not, or the N reach past the end of the stream
// — is WrongExpectedVersion and writes nothing.
/// `[A5]`: partial matches.
pub async fn a5_partial_match_fails<H: Harness>(h: H) -> CaseResult {
    let store = h.open(default_config()).await?;
    let s = sid("a5-partial");
    store
        .append(&s, ExpectedVersion::NoStream, events(1))
        .await?;
    let x = events(3);
    store
        .append(&s, ExpectedVersion::exact(0), x.clone())
        .await?;
    let before = StoreState::capture(&store, [&s], &[]).await?;
    // First two match, the third is new.
    let mut partial = x[..2].to_vec();
    partial.push(ev("New"));
    let r = store
        .append(&s, ExpectedVersion::exact(0), partial.clone())
        .await;
    assert_wrong_version(r, &s, ExpectedVersion::exact(0), Some(3));
    // All three match, plus one more than the stream holds.
    let mut longer = x.clone();
    longer.push(ev("Extra"));
    let r = store.append(&s, ExpectedVersion::exact(0), longer).await;
    assert_wrong_version(r, &s, ExpectedVersion::exact(0), Some(3));
    // NoStream: the stream's first events are not these.
    let r = store.append(&s, ExpectedVersion::NoStream, x.clone()).await;
    assert_wrong_version(r, &s, ExpectedVersion::NoStream, Some(3));
    let after = StoreState::capture(&store, [&s], &[]).await?;
    before.assert_same(&after, "after partial-match retries");
    Ok(())
}

// [A5] The same ids in another order are not a retry: WrongExpectedVersion.
/// `[A5]`: reordered retry.
pub async fn a5_different_order_fails<H: Harness>(h: H) -> CaseResult {
    let store = h.open(default_config()).await?;
    let s = sid("a5-order");
    let x = events(3);
    store
        .append(&s, ExpectedVersion::NoStream, x.clone())
        .await?;
    let reordered = vec![x[1].clone(), x[0].clone(), x[2].clone()];
    let r = store
        .append(&s, ExpectedVersion::NoStream, reordered.clone())
        .await;
    assert_wrong_version(r, &s, ExpectedVersion::NoStream, Some(2));
    store
        .append(&s, ExpectedVersion::exact(2), events(1))
        .await?;
    let y = store
        .read_stream(&s, Version(3), 1, Direction::Forward)
        .await?;
    assert_eq!(y.events.len(), 1);
    let r = store.append(&s, ExpectedVersion::exact(2), reordered).await;
    assert_wrong_version(r, &s, ExpectedVersion::exact(2), Some(3));
    assert_eq!(all_events(&store).await?.len(), 4);
    Ok(())
}

// [A5] Any and StreamExists give no idempotency: a retry writes the events
// again, and the store keeps both copies (ids are not unique across
// appends).
/// `[A5]`: unconditional retries write twice.
pub async fn a5_any_and_stream_exists_retries_write_twice<H: Harness>(h: H) -> CaseResult {
    let store = h.open(default_config()).await?;
    let s = sid("a5-any");
    let x = events(2);
    let first = store.append(&s, ExpectedVersion::Any, x.clone()).await?;
    let second = store.append(&s, ExpectedVersion::Any, x.clone()).await?;
    assert_eq!(second.first_version, Version(2));
    assert!(second.first_position > first.last_position);
    let third = store
        .append(&s, ExpectedVersion::StreamExists, x.clone())
        .await?;
    assert_eq!(third.first_version, Version(4));
    let read = stream_events(&store, &s).await?;
    let mut expected = new_ids(&x);
    expected.extend(new_ids(&x));
    expected.extend(new_ids(&x));
    assert_eq!(ids(&read), expected, "each retry is stored");
    Ok(())
}

// [A5] [S4] For NoStream, the retry looks at the events written since the
// stream was last (re)created: after delete and recreation, the original
// append is no longer a match, and the recreating one is.
/// `[A5]`: NoStream retry after recreation.
pub async fn a5_no_stream_retry_after_recreate<H: Harness>(h: H) -> CaseResult {
    let store = h.open(default_config()).await?;
    let s = sid("a5-recreate");
    let x = events(2);
    store
        .append(&s, ExpectedVersion::NoStream, x.clone())
        .await?;
    store.delete_stream(&s, ExpectedVersion::exact(1)).await?;
    let y = events(2);
    let recreated = store
        .append(&s, ExpectedVersion::NoStream, y.clone())
        .await?;
    assert_eq!(recreated.first_version, Version(2));
    let r = store.append(&s, ExpectedVersion::NoStream, x).await;
    assert_wrong_version(r, &s, ExpectedVersion::NoStream, Some(3));
    let retry = store.append(&s, ExpectedVersion::NoStream, y).await?;
    assert_eq!(retry, recreated);
    assert_eq!(versions(&stream_events(&store, &s).await?), vec![2, 3]);
    Ok(())
}
