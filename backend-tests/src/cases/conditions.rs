//! DCB append conditions (SPEC A8, D6, and their meeting with A3 and A5).
//! The concurrent cases live in `concurrency`.

use annals_core::{
    Append, AppendCondition, Direction, ExpectedVersion, Position, Query, QueryItem, Version,
};

use super::{Case, case};
use crate::Harness;
use crate::support::*;

/// The cases of this module.
pub fn cases<H: Harness>() -> Vec<Case<H>> {
    vec![
        case!(a8_condition_fails_on_match_after, |c| c.append_conditions),
        case!(a8_condition_with_types_and_items, |c| c.append_conditions),
        case!(a8_after_above_head_is_allowed, |c| c.append_conditions),
        case!(a8_truncated_events_do_not_count, |c| c.append_conditions
            && c.truncate),
        case!(a8_deleted_events_do_not_count, |c| c.append_conditions
            && c.delete),
        case!(a3_a8_expectation_error_wins, |c| c.append_conditions),
        case!(d6_page_head_decides_the_condition, |c| c.append_conditions),
        case!(a5_a8_conditional_retry_returns_original_result, |c| c
            .append_conditions),
    ]
}

fn cond(query: Query, after: Option<u64>) -> AppendCondition {
    AppendCondition::new(query, after.map(Position))
}

// [A8] [A2] The condition fails when a readable matching event has a
// position above `after`, passes when all matching events are at or below
// it; `after: None` fails on any matching event; a query nothing matches
// always passes. A failed condition writes nothing.
/// `[A8]`: condition semantics.
pub async fn a8_condition_fails_on_match_after<H: Harness>(h: H) -> CaseResult {
    let store = h.open(default_config()).await?;
    let s = sid("a8");
    let other = sid("a8-other");
    store
        .append(&other, ExpectedVersion::Any, vec![tagged("A", &["a"])])
        .await?; // 1
    store
        .append(&other, ExpectedVersion::Any, vec![tagged("B", &["b"])])
        .await?; // 2
    store
        .append(&other, ExpectedVersion::Any, vec![tagged("C", &["c"])])
        .await?; // 3
    let before = StoreState::capture(&store, [&s, &other], &["a", "b"]).await?;
    for (query, after) in [
        (tag_query("a"), Some(0)),
        (tag_query("a"), None),
        (tag_query("b"), Some(1)),
        (tag_query("b"), None),
    ] {
        let r = store
            .append_with(
                Append::new(s.clone(), ExpectedVersion::Any, vec![ev("X")])
                    .condition(cond(query.clone(), after)),
            )
            .await;
        assert_events_condition_failed(
            r,
            &cond(query.clone(), after),
            &format!("{query:?} after {after:?}"),
        );
    }
    let after_state = StoreState::capture(&store, [&s, &other], &["a", "b"]).await?;
    before.assert_same(&after_state, "after failed conditions");
    for (query, after) in [
        (tag_query("a"), Some(1)),
        (tag_query("a"), Some(3)),
        (tag_query("b"), Some(2)),
        (tag_query("zzz"), None),
        (tag_query("zzz"), Some(0)),
    ] {
        store
            .append_with(
                Append::new(s.clone(), ExpectedVersion::Any, vec![ev("X")])
                    .condition(cond(query.clone(), after)),
            )
            .await
            .map_err(|e| format!("{query:?} after {after:?}: {e}"))?;
    }
    assert_eq!(store.stream_version(&s).await?, Version(4));
    Ok(())
}

// [A8] [R6] Conditions use the full query language: a type list, an item
// needing several tags, several items (any matches).
/// `[A8]`: condition queries.
pub async fn a8_condition_with_types_and_items<H: Harness>(h: H) -> CaseResult {
    let store = h.open(default_config()).await?;
    let s = sid("a8-q");
    store
        .append(
            &sid("a8-q-src"),
            ExpectedVersion::Any,
            vec![tagged("Opened", &["x", "y"]), tagged("Closed", &["z"])],
        )
        .await?; // 1, 2
    let failing = [
        Query::types(["Opened"]),
        Query::types(["Nope", "Closed"]),
        Query::tags(["y", "x"]),
        Query::new()
            .item(QueryItem::new().with_tag("nope"))
            .item(QueryItem::new().with_type("Closed").with_tag("z")),
        Query::new(),
    ];
    for q in failing {
        let r = store
            .append_with(
                Append::new(s.clone(), ExpectedVersion::Any, events(1))
                    .condition(cond(q.clone(), Some(0))),
            )
            .await;
        assert_events_condition_failed(r, &cond(q.clone(), Some(0)), &format!("{q:?}"));
    }
    let passing = [
        Query::types(["Changed"]),
        Query::tags(["x", "z"]),
        Query::single(QueryItem::new().with_type("Closed").with_tag("x")),
        Query::types(["Opened"]).item(QueryItem::new().with_tag("w")),
    ];
    let after = [Some(0), Some(0), Some(0), Some(1)];
    for (q, a) in passing.into_iter().zip(after) {
        store
            .append_with(
                Append::new(s.clone(), ExpectedVersion::Any, events(1))
                    .condition(cond(q.clone(), a)),
            )
            .await
            .map_err(|e| format!("{q:?}: {e}"))?;
    }
    assert_eq!(store.stream_version(&s).await?, Version(3));
    Ok(())
}

// [A8] An `after` above the head is allowed: nothing can match.
/// `[A8]`: after above head.
pub async fn a8_after_above_head_is_allowed<H: Harness>(h: H) -> CaseResult {
    let store = h.open(default_config()).await?;
    let s = sid("a8-high");
    let c = cond(Query::new(), Some(1_000));
    store
        .append_with(Append::new(s.clone(), ExpectedVersion::Any, events(2)).condition(c.clone()))
        .await?;
    store
        .append_with(Append::new(s.clone(), ExpectedVersion::Any, events(2)).condition(c))
        .await?;
    store
        .append_with(
            Append::new(s.clone(), ExpectedVersion::Any, events(1))
                .condition(cond(Query::new(), Some(u64::MAX))),
        )
        .await?;
    assert_eq!(store.stream_version(&s).await?, Version(4));
    Ok(())
}

// [A8] [S3] Truncated events do not count for a condition.
/// `[A8]`: truncation and conditions.
pub async fn a8_truncated_events_do_not_count<H: Harness>(h: H) -> CaseResult {
    let store = h.open(default_config()).await?;
    let s = sid("a8-trunc");
    store
        .append(
            &s,
            ExpectedVersion::Any,
            vec![
                tagged("T", &["gone"]),
                tagged("T", &["gone"]),
                tagged("T", &["kept"]),
            ],
        )
        .await?;
    let w = sid("a8-trunc-w");
    let append = |tag: &str| {
        Append::new(w.clone(), ExpectedVersion::Any, events(1))
            .condition(cond(tag_query(tag), None))
    };
    assert_condition_failed(store.append_with(append("gone")).await, "before truncation");
    store.truncate_stream(&s, Version(2)).await?;
    store.append_with(append("gone")).await?;
    assert_condition_failed(store.append_with(append("kept")).await, "kept event");
    store.truncate_stream(&s, Version(3)).await?;
    store.append_with(append("kept")).await?;
    Ok(())
}

// [A8] [S4] Deleted events do not count for a condition; events of the
// recreated stream do.
/// `[A8]`: deletion and conditions.
pub async fn a8_deleted_events_do_not_count<H: Harness>(h: H) -> CaseResult {
    let store = h.open(default_config()).await?;
    let s = sid("a8-del");
    store
        .append(
            &s,
            ExpectedVersion::Any,
            vec![tagged("T", &["d"]), tagged("T", &["d"])],
        )
        .await?;
    let w = sid("a8-del-w");
    let append = || {
        Append::new(w.clone(), ExpectedVersion::Any, events(1))
            .condition(cond(tag_query("d"), None))
    };
    assert_condition_failed(store.append_with(append()).await, "before delete");
    store.delete_stream(&s, ExpectedVersion::Any).await?;
    store.append_with(append()).await?;
    store
        .append(&s, ExpectedVersion::NoStream, vec![tagged("T", &["d"])])
        .await?;
    assert_condition_failed(store.append_with(append()).await, "after recreation");
    Ok(())
}

// [A3] [A8] When both the expectation and the condition fail, the
// expectation's error is reported.
/// `[A3]` `[A8]`: which error wins.
pub async fn a3_a8_expectation_error_wins<H: Harness>(h: H) -> CaseResult {
    let store = h.open(default_config()).await?;
    let s = sid("both");
    store
        .append(&s, ExpectedVersion::Any, vec![tagged("T", &["t"])])
        .await?;
    let r = store
        .append_with(
            Append::new(s.clone(), ExpectedVersion::exact(7), events(1))
                .condition(cond(tag_query("t"), None)),
        )
        .await;
    assert_wrong_version(r, &s, ExpectedVersion::exact(7), Some(0));
    let missing = sid("both-missing");
    let r = store
        .append_with(
            Append::new(missing.clone(), ExpectedVersion::StreamExists, events(1))
                .condition(cond(tag_query("t"), None)),
        )
        .await;
    assert_wrong_version(r, &missing, ExpectedVersion::StreamExists, None);
    // The expectation holds, the condition fails: the condition's error.
    let r = store
        .append_with(
            Append::new(s.clone(), ExpectedVersion::exact(0), events(1))
                .condition(cond(tag_query("t"), None)),
        )
        .await;
    assert_events_condition_failed(
        r,
        &cond(tag_query("t"), None),
        "expectation holds, condition fails",
    );
    assert_eq!(all_events(&store).await?.len(), 1);
    Ok(())
}

// [D6] A page's head is the last committed position (0 for an empty
// store), whatever the page holds — a stream read, a query read, an empty
// page — and passing it as `after` decides correctly: the append passes if
// nothing matching came since, fails if something did.
/// `[D6]`: page heads.
pub async fn d6_page_head_decides_the_condition<H: Harness>(h: H) -> CaseResult {
    let store = h.open(default_config()).await?;
    let q = tag_query("course:7");
    let empty = store
        .read_all(Position(1), 10, Direction::Forward, Some(&q))
        .await?;
    assert_eq!(empty.head, Position(0), "head of an empty store");
    assert!(empty.events.is_empty());
    let s = sid("enrolment");
    store
        .append(&sid("noise"), ExpectedVersion::Any, events(3))
        .await?; // 1..3
    let page = store
        .read_all(Position(1), 10, Direction::Forward, Some(&q))
        .await?;
    assert!(page.events.is_empty());
    assert_eq!(
        page.head,
        Position(3),
        "a query page's head is the store's head"
    );
    let r = store
        .append_with(
            Append::new(
                s.clone(),
                ExpectedVersion::Any,
                vec![tagged("Enrolled", &["course:7"])],
            )
            .condition(cond(q.clone(), Some(page.head.0))),
        )
        .await?;
    assert_eq!(r.first_position, Position(4));
    let stream_page = store
        .read_stream(&s, Version(0), 10, Direction::Forward)
        .await?;
    assert_eq!(
        stream_page.head,
        Position(4),
        "a stream page's head is the store's head"
    );
    // A decision from the old page is stale now.
    let r = store
        .append_with(
            Append::new(
                s.clone(),
                ExpectedVersion::Any,
                vec![tagged("Enrolled", &["course:7"])],
            )
            .condition(cond(q.clone(), Some(page.head.0))),
        )
        .await;
    assert_condition_failed(r, "stale head");
    // Unrelated events move the head but do not make a decision stale.
    let fresh = store
        .read_all(Position::MAX, 1, Direction::Backward, Some(&q))
        .await?;
    store
        .append(&sid("noise"), ExpectedVersion::Any, events(2))
        .await?;
    let past_end = store
        .read_all(Position(100), 10, Direction::Forward, None)
        .await?;
    assert!(past_end.events.is_empty());
    assert_eq!(
        past_end.head,
        Position(6),
        "head of an empty page past the end"
    );
    store
        .append_with(
            Append::new(
                s.clone(),
                ExpectedVersion::Any,
                vec![tagged("Enrolled", &["course:7"])],
            )
            .condition(cond(q, Some(fresh.head.0))),
        )
        .await?;
    Ok(())
}

// [A5] [A8] A retry of a conditional append whose condition fails only
// because of its own events (same ids, in order, right after `after`)
// returns the original result without writing — whatever its expectation,
// here Exact(0), which the first attempt moved on. Another writer's
// matching event makes the retry fail.
/// `[A5]` `[A8]`: conditional retry.
pub async fn a5_a8_conditional_retry_returns_original_result<H: Harness>(h: H) -> CaseResult {
    let store = h.open(default_config()).await?;
    let s = sid("cr");
    store
        .append(&s, ExpectedVersion::NoStream, vec![ev("Start")])
        .await?; // v0, p1
    let q = tag_query("seat:12");
    let decided = head(&store).await?;
    let mine = vec![tagged("Booked", &["seat:12"]), tagged("Paid", &["seat:12"])];
    let append = Append::new(s.clone(), ExpectedVersion::exact(0), mine.clone())
        .condition(AppendCondition::new(q.clone(), Some(decided)));
    let original = store.append_with(append.clone()).await?;
    let before = StoreState::capture(&store, [&s], &["seat:12"]).await?;
    let retry = store.append_with(append.clone()).await?;
    assert_eq!(retry, original, "the conditional retry's result");
    let after = StoreState::capture(&store, [&s], &["seat:12"]).await?;
    before.assert_same(&after, "after a conditional retry");
    // Any expectation: same.
    let any = Append::new(s.clone(), ExpectedVersion::Any, mine.clone())
        .condition(AppendCondition::new(q.clone(), Some(decided)));
    assert_eq!(store.append_with(any).await?, original);

    // Someone else's decision: fails.
    let other = sid("cr-other");
    let decided = head(&store).await?;
    let theirs = Append::new(
        other.clone(),
        ExpectedVersion::Any,
        vec![tagged("Booked", &["seat:13"])],
    )
    .condition(AppendCondition::new(tag_query("seat:13"), Some(decided)));
    store
        .append(
            &sid("cr-x"),
            ExpectedVersion::Any,
            vec![tagged("Booked", &["seat:13"])],
        )
        .await?;
    assert_condition_failed(store.append_with(theirs).await, "another writer's event");
    assert_eq!(stream_events(&store, &s).await?.len(), 3);
    assert!(!store.stream_exists(&other).await?);
    Ok(())
}
