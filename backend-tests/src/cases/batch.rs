//! `append_batch`: all or nothing over several streams (SPEC A6, A2, A5).

use annals_core::{
    AppendCondition, Batch, BatchPart, Direction, Error, ExpectedVersion, Limit, NewEvent,
    Position, Version,
};

use super::{Case, case};
use crate::Harness;
use crate::support::*;

/// The cases of this module.
pub fn cases<H: Harness>() -> Vec<Case<H>> {
    vec![
        case!(a6_batch_returns_one_result_per_part_in_order, |c| c
            .append_batch),
        case!(a6_failing_part_writes_nothing, |c| c.append_batch),
        case!(a6_invalid_batch_shapes, |c| c.append_batch),
        case!(a6_batch_limits_count_all_parts, |c| c.append_batch),
        case!(a6_batch_parts_are_not_retried, |c| c.append_batch),
        case!(a6_batch_with_condition, |c| c.append_batch
            && c.append_conditions),
    ]
}

// [A6] [A1] A batch over three streams (new, existing, new) returns one
// result per part, in order; each part's events are readable with those
// versions and positions, consecutive within the part.
/// `[A6]`: batch results.
pub async fn a6_batch_returns_one_result_per_part_in_order<H: Harness>(h: H) -> CaseResult {
    let store = h.open(default_config()).await?;
    let (a, b, c) = (sid("b-a"), sid("b-b"), sid("b-c"));
    store
        .append(&b, ExpectedVersion::NoStream, events(2))
        .await?;
    let parts = vec![
        BatchPart::new(a.clone(), ExpectedVersion::NoStream, events(2)),
        BatchPart::new(b.clone(), ExpectedVersion::exact(1), events(3)),
        BatchPart::new(c.clone(), ExpectedVersion::Any, events(1)),
    ];
    let results = store.append_batch(Batch::new(parts.clone())).await?;
    assert_eq!(results.len(), 3, "one result per part");
    let expected_versions = [(0, 1), (2, 4), (0, 0)];
    let mut seen_positions = Vec::new();
    for (i, (part, r)) in parts.iter().zip(&results).enumerate() {
        assert_eq!(
            (r.first_version.0, r.last_version.0),
            expected_versions[i],
            "versions of part {i}"
        );
        assert_eq!(
            r.last_position.0 - r.first_position.0,
            part.events.len() as u64 - 1,
            "positions of part {i} are not consecutive"
        );
        assert!(r.first_position > Position(2));
        let page = store
            .read_stream(&part.stream, r.first_version, 10, Direction::Forward)
            .await?;
        assert_eq!(
            ids(&page.events),
            new_ids(&part.events),
            "events of part {i}"
        );
        for (k, e) in page.events.iter().enumerate() {
            assert_eq!(e.position.0, r.first_position.0 + k as u64);
            assert_recorded(&part.events[k], e);
        }
        seen_positions.extend(positions(&page.events));
    }
    seen_positions.sort_unstable();
    seen_positions.dedup();
    assert_eq!(seen_positions.len(), 6, "parts share positions");
    let max = results.iter().map(|r| r.last_position).max().unwrap();
    assert_eq!(head(&store).await?, max);
    Ok(())
}

// [A6] [A2] [A3] If part k fails its expectation, the error is
// BatchPart { part: k } around the WrongExpectedVersion (first failing part
// named) and nothing of the batch is written.
/// `[A6]`: a failing part.
pub async fn a6_failing_part_writes_nothing<H: Harness>(h: H) -> CaseResult {
    let store = h.open(default_config()).await?;
    let (a, b, c) = (sid("bf-a"), sid("bf-b"), sid("bf-c"));
    store
        .append(&b, ExpectedVersion::NoStream, events(3))
        .await?;
    store
        .append(&c, ExpectedVersion::NoStream, events(1))
        .await?;
    let streams = [a.clone(), b.clone(), c.clone()];
    let before = StoreState::capture(&store, &streams, &[]).await?;
    let batch = Batch::new(vec![
        BatchPart::new(a.clone(), ExpectedVersion::NoStream, events(2)),
        BatchPart::new(b.clone(), ExpectedVersion::exact(5), events(1)),
        BatchPart::new(c.clone(), ExpectedVersion::NoStream, events(1)),
    ]);
    let e = assert_wrong_version(
        store.append_batch(batch).await,
        &b,
        ExpectedVersion::exact(5),
        Some(2),
    );
    assert!(
        matches!(e, Error::BatchPart { part: 1, .. }),
        "expected BatchPart {{ part: 1 }}, got {e:?}"
    );
    let batch = Batch::new(vec![
        BatchPart::new(a.clone(), ExpectedVersion::NoStream, events(2)),
        BatchPart::new(b.clone(), ExpectedVersion::exact(2), events(1)),
        BatchPart::new(c.clone(), ExpectedVersion::NoStream, events(1)),
    ]);
    let e = assert_wrong_version(
        store.append_batch(batch).await,
        &c,
        ExpectedVersion::NoStream,
        Some(0),
    );
    assert!(
        matches!(e, Error::BatchPart { part: 2, .. }),
        "expected BatchPart {{ part: 2 }}, got {e:?}"
    );
    let after = StoreState::capture(&store, &streams, &[]).await?;
    before.assert_same(&after, "after failed batches");
    Ok(())
}

// [A6] [A2] An empty batch is InvalidInput; a part with no events, one
// stream in two parts, an invalid event in a part (an empty type, over
// max_event_bytes, a repeated tag) or one event id in two parts is
// InvalidInput inside BatchPart naming that part (the later one of two);
// nothing is written.
/// `[A6]`: invalid shapes.
pub async fn a6_invalid_batch_shapes<H: Harness>(h: H) -> CaseResult {
    let store = h.open(default_config()).await?;
    let (a, b) = (sid("bi-a"), sid("bi-b"));
    store
        .append(&a, ExpectedVersion::NoStream, events(1))
        .await?;
    let streams = [a.clone(), b.clone(), sid("bi-c")];
    let before = StoreState::capture(&store, &streams, &[]).await?;
    assert_invalid(store.append_batch(Batch::default()).await, "empty batch");
    let e = assert_invalid(
        store
            .append_batch(
                Batch::default()
                    .part(a.clone(), ExpectedVersion::Any, events(1))
                    .part(b.clone(), ExpectedVersion::Any, vec![]),
            )
            .await,
        "a part with no events",
    );
    assert_part(&e, 1, "the part with no events");
    let e = assert_invalid(
        store
            .append_batch(
                Batch::default()
                    .part(a.clone(), ExpectedVersion::Any, events(1))
                    .part(b.clone(), ExpectedVersion::Any, events(1))
                    .part(a.clone(), ExpectedVersion::Any, events(1)),
            )
            .await,
        "one stream in two parts",
    );
    assert_part(&e, 2, "the repeated stream's second part");
    let over_limit = NewEvent::builder("Big")
        .data(vec![0; (16 << 20) + 1])
        .build();
    let repeated_tag = NewEvent::builder("T").tag("t").tag("t").build();
    for (what, bad) in [
        ("an event with an empty type", ev("")),
        ("an event over max_event_bytes", over_limit),
        ("an event with a repeated tag", repeated_tag),
    ] {
        let e = assert_invalid(
            store
                .append_batch(
                    Batch::default()
                        .part(a.clone(), ExpectedVersion::Any, events(1))
                        .part(b.clone(), ExpectedVersion::Any, vec![ev("Ok"), bad]),
                )
                .await,
            what,
        );
        assert_part(&e, 1, what);
    }
    let shared = ev("Shared");
    let e = assert_invalid(
        store
            .append_batch(
                Batch::default()
                    .part(a.clone(), ExpectedVersion::Any, vec![shared.clone()])
                    .part(b.clone(), ExpectedVersion::Any, events(1))
                    .part(sid("bi-c"), ExpectedVersion::Any, vec![shared]),
            )
            .await,
        "one event id in two parts",
    );
    assert_part(&e, 2, "one event id in two parts");
    let after = StoreState::capture(&store, &streams, &[]).await?;
    before.assert_same(&after, "after invalid batches");
    Ok(())
}

// [A6] [D2] The limits count the events and bytes of all parts together:
// with max_append_events 10, two parts of 6 are InvalidInput; with
// max_append_bytes 4096, two parts of 3000 bytes are too. At the limits,
// the batch commits.
/// `[A6]`: batch limits.
pub async fn a6_batch_limits_count_all_parts<H: Harness>(h: H) -> CaseResult {
    let store = h.open(small_config()).await?;
    let (a, b) = (sid("bl-a"), sid("bl-b"));
    assert_limit(
        store
            .append_batch(
                Batch::default()
                    .part(a.clone(), ExpectedVersion::Any, events(6))
                    .part(b.clone(), ExpectedVersion::Any, events(5)),
            )
            .await,
        Limit::AppendEvents,
        10,
        11,
        "11 events in all",
    );
    assert_limit(
        store
            .append_batch(
                Batch::default()
                    .part(
                        a.clone(),
                        ExpectedVersion::Any,
                        vec![sized(1000), sized(1000)],
                    )
                    .part(
                        b.clone(),
                        ExpectedVersion::Any,
                        vec![sized(1000), sized(1000), sized(97)],
                    ),
            )
            .await,
        Limit::AppendBytes,
        4096,
        4097,
        "4097 bytes in all",
    );
    assert!(!store.has_events().await?);
    assert!(all_streams(&store).await?.is_empty());
    let r = store
        .append_batch(
            Batch::default()
                .part(a.clone(), ExpectedVersion::Any, events(5))
                .part(b.clone(), ExpectedVersion::Any, events(5)),
        )
        .await?;
    assert_eq!(r.len(), 2);
    store
        .append_batch(
            Batch::default()
                .part(
                    a.clone(),
                    ExpectedVersion::Any,
                    vec![sized(1024), sized(1024)],
                )
                .part(
                    b.clone(),
                    ExpectedVersion::Any,
                    vec![sized(1024), sized(1024)],
                ),
        )
        .await?;
    assert_eq!(all_events(&store).await?.len(), 14);
    Ok(())
}

// [A6] [A5] Batch parts are not retried idempotently: sending the same
// batch again fails on its NoStream part, and writes nothing.
/// `[A6]`: no idempotent batch retry.
pub async fn a6_batch_parts_are_not_retried<H: Harness>(h: H) -> CaseResult {
    let store = h.open(default_config()).await?;
    let (a, b) = (sid("br-a"), sid("br-b"));
    let batch = Batch::default()
        .part(a.clone(), ExpectedVersion::Any, events(1))
        .part(b.clone(), ExpectedVersion::NoStream, events(2));
    store.append_batch(batch.clone()).await?;
    let before = StoreState::capture(&store, [&a, &b], &[]).await?;
    let e = assert_wrong_version(
        store.append_batch(batch).await,
        &b,
        ExpectedVersion::NoStream,
        Some(1),
    );
    assert!(matches!(e, Error::BatchPart { part: 1, .. }), "got {e:?}");
    let after = StoreState::capture(&store, [&a, &b], &[]).await?;
    before.assert_same(&after, "after a repeated batch");
    Ok(())
}

// [A6] [A8] A batch carries one condition over all its parts: when a
// matching event appeared after `after`, the batch fails with
// AppendConditionFailed and writes nothing; when none did, it commits.
/// `[A6]`: batch with a condition.
pub async fn a6_batch_with_condition<H: Harness>(h: H) -> CaseResult {
    let store = h.open(default_config()).await?;
    let (a, b) = (sid("bc-a"), sid("bc-b"));
    let page = store
        .read_all(Position(1), 10, Direction::Forward, Some(&tag_query("k")))
        .await?;
    assert_eq!(page.head, Position(0));
    store
        .append(
            &sid("bc-x"),
            ExpectedVersion::Any,
            vec![tagged("K", &["k"])],
        )
        .await?;
    let batch = |after| {
        Batch::default()
            .part(
                a.clone(),
                ExpectedVersion::NoStream,
                vec![tagged("K", &["k"])],
            )
            .part(b.clone(), ExpectedVersion::Any, events(2))
            .condition(AppendCondition::new(tag_query("k"), after))
    };
    let before = StoreState::capture(&store, [&a, &b], &["k"]).await?;
    assert_events_condition_failed(
        store.append_batch(batch(Some(page.head))).await,
        &AppendCondition::new(tag_query("k"), Some(page.head)),
        "stale batch",
    );
    let after = StoreState::capture(&store, [&a, &b], &["k"]).await?;
    before.assert_same(&after, "after a batch whose condition failed");
    let head = head(&store).await?;
    let r = store.append_batch(batch(Some(head))).await?;
    assert_eq!(r.len(), 2);
    assert_eq!(store.stream_version(&b).await?, Version(1));
    Ok(())
}
