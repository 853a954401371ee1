//! Streams: existence, listing, truncation, deletion (SPEC S1–S5, and how
//! R2, R3, R6 see them).

use annals_core::{Direction, ExpectedVersion, Position, StreamInfo, Version};

use super::{Case, case};
use crate::Harness;
use crate::support::*;

/// The cases of this module.
pub fn cases<H: Harness>() -> Vec<Case<H>> {
    vec![
        case!(s1_stream_version_and_exists),
        case!(s2_list_streams_pages_in_byte_order),
        case!(s2_deleted_streams_are_not_listed, |c| c.delete),
        case!(s3_truncate_hides_events_from_every_read, |c| c.truncate),
        case!(s3_truncation_only_rises, |c| c.truncate),
        case!(s3_truncate_above_end_clamps, |c| c.truncate),
        case!(s3_truncate_missing_stream_is_not_found, |c| c.truncate),
        case!(s4_delete_checks_the_expectation, |c| c.delete),
        case!(s4_delete_hides_stream_from_every_read, |c| c.delete),
        case!(s4_recreate_continues_numbering, |c| c.delete),
        case!(s4_delete_missing_stream, |c| c.delete),
        case!(s4_positions_are_never_reused, |c| c.delete),
        case!(s5_has_events_after_truncating_everything, |c| c.truncate),
        case!(s5_has_events_after_deleting_everything, |c| c.delete),
    ]
}

// [S1] stream_version is the last version (StreamNotFound before the first
// append); stream_exists follows.
/// `[S1]`: version and existence.
pub async fn s1_stream_version_and_exists<H: Harness>(h: H) -> CaseResult {
    let store = h.open(default_config()).await?;
    let s = sid("s1");
    assert!(!store.stream_exists(&s).await?);
    assert_not_found(store.stream_version(&s).await, &s);
    store
        .append(&s, ExpectedVersion::NoStream, events(1))
        .await?;
    assert!(store.stream_exists(&s).await?);
    assert_eq!(store.stream_version(&s).await?, Version(0));
    store.append(&s, ExpectedVersion::Any, events(4)).await?;
    assert_eq!(store.stream_version(&s).await?, Version(4));
    store
        .append(&sid("s1-other"), ExpectedVersion::Any, events(2))
        .await?;
    assert_eq!(store.stream_version(&s).await?, Version(4));
    assert_eq!(store.stream_version(&sid("s1-other")).await?, Version(1));
    assert!(!store.stream_exists(&sid("s")).await?);
    Ok(())
}

// [S2] list_streams pages through streams in byte order of their ids
// (upper case before lower case, shorter prefix first, multibyte after
// ASCII), starting after `after` — an existing id or not — with their last
// versions.
/// `[S2]`: listing.
pub async fn s2_list_streams_pages_in_byte_order<H: Harness>(h: H) -> CaseResult {
    let store = h.open(default_config()).await?;
    assert!(store.list_streams(None, 10).await?.is_empty());
    let names = ["b", "a", "é", "c", "aa", "Z", "ab", "a b"];
    for (i, n) in names.iter().enumerate() {
        store
            .append(&sid(n), ExpectedVersion::Any, events(i + 1))
            .await?;
    }
    let mut sorted: Vec<&str> = names.to_vec();
    sorted.sort_by(|x, y| x.as_bytes().cmp(y.as_bytes()));
    assert_eq!(sorted, ["Z", "a", "a b", "aa", "ab", "b", "c", "é"]);
    let expect = |from: usize, to: usize| -> Vec<StreamInfo> {
        sorted[from..to]
            .iter()
            .map(|n| {
                let i = names.iter().position(|m| m == n).unwrap();
                StreamInfo {
                    id: sid(n),
                    last_version: Version(i as u64),
                }
            })
            .collect()
    };
    assert_eq!(store.list_streams(None, 100).await?, expect(0, 8));
    assert_eq!(store.list_streams(None, 3).await?, expect(0, 3));
    assert_eq!(
        store.list_streams(Some(&sid("a b")), 3).await?,
        expect(3, 6)
    );
    assert_eq!(
        store.list_streams(Some(&sid("ab")), 100).await?,
        expect(5, 8)
    );
    assert_eq!(store.list_streams(Some(&sid("a")), 1).await?, expect(2, 3));
    assert_eq!(
        store.list_streams(Some(&sid("abc")), 2).await?,
        expect(5, 7),
        "after a missing id"
    );
    assert_eq!(store.list_streams(Some(&sid("[")), 1).await?, expect(1, 2));
    assert!(store.list_streams(Some(&sid("é")), 10).await?.is_empty());
    assert!(store.list_streams(Some(&sid("ü")), 10).await?.is_empty());
    let mut paged = Vec::new();
    let mut after = None;
    loop {
        let page = store.list_streams(after.as_ref(), 3).await?;
        let Some(last) = page.last() else { break };
        after = Some(last.id.clone());
        paged.extend(page);
    }
    assert_eq!(paged, expect(0, 8));
    Ok(())
}

// [S2] [S4] A deleted stream is not listed; recreated, it is again.
/// `[S2]`: deleted streams.
pub async fn s2_deleted_streams_are_not_listed<H: Harness>(h: H) -> CaseResult {
    let store = h.open(default_config()).await?;
    for n in ["a", "b", "c"] {
        store
            .append(&sid(n), ExpectedVersion::Any, events(2))
            .await?;
    }
    store.delete_stream(&sid("b"), ExpectedVersion::Any).await?;
    let listed: Vec<String> = all_streams(&store)
        .await?
        .into_iter()
        .map(|s| s.id.as_str().to_string())
        .collect();
    assert_eq!(listed, ["a", "c"]);
    assert_eq!(
        store.list_streams(Some(&sid("a")), 1).await?[0].id,
        sid("c")
    );
    store
        .append(&sid("b"), ExpectedVersion::NoStream, events(1))
        .await?;
    let listed = all_streams(&store).await?;
    assert_eq!(listed.len(), 3);
    assert_eq!(
        listed[1],
        StreamInfo {
            id: sid("b"),
            last_version: Version(2)
        }
    );
    Ok(())
}

// [S3] [R6] [R3] Truncating before v removes versions < v from read_stream
// (both directions), read_all, queries; the stream's version and the
// numbering of the next append do not change.
/// `[S3]`: truncation in every read.
pub async fn s3_truncate_hides_events_from_every_read<H: Harness>(h: H) -> CaseResult {
    let store = h.open(default_config()).await?;
    let s = sid("tr");
    let o = sid("tr-other");
    for _ in 0..10 {
        store
            .append(&s, ExpectedVersion::Any, vec![tagged("T", &["t"])])
            .await?;
        store
            .append(&o, ExpectedVersion::Any, vec![tagged("T", &["t"])])
            .await?;
    }
    store.truncate_stream(&s, Version(4)).await?;
    let fwd = store
        .read_stream(&s, Version(0), 100, Direction::Forward)
        .await?;
    assert_eq!(versions(&fwd.events), (4..10).collect::<Vec<_>>());
    let fwd = store
        .read_stream(&s, Version(0), 2, Direction::Forward)
        .await?;
    assert_eq!(
        versions(&fwd.events),
        vec![4, 5],
        "a page from before the truncation point"
    );
    let back = store
        .read_stream(&s, Version::MAX, 100, Direction::Backward)
        .await?;
    assert_eq!(versions(&back.events), (4..10).rev().collect::<Vec<_>>());
    let back = store
        .read_stream(&s, Version(3), 10, Direction::Backward)
        .await?;
    assert!(
        back.events.is_empty(),
        "backward from below the truncation point"
    );
    let all = all_events(&store).await?;
    assert_eq!(all.len(), 16);
    assert!(
        all.iter()
            .all(|e| e.stream_id != s || e.stream_version >= Version(4))
    );
    let q = query_events(&store, &tag_query("t")).await?;
    assert_same_events(&all, &q, "query of the truncated events");
    let back = store
        .read_all(Position(8), 10, Direction::Backward, Some(&tag_query("t")))
        .await?;
    assert_eq!(positions(&back.events), vec![8, 6, 4, 2]);
    assert_eq!(store.stream_version(&s).await?, Version(9));
    assert!(store.stream_exists(&s).await?);
    let r = store
        .append(&s, ExpectedVersion::exact(9), events(1))
        .await?;
    assert_eq!(r.first_version, Version(10));
    assert_eq!(stream_events(&store, &s).await?.len(), 7);
    assert_eq!(
        store.list_streams(None, 10).await?[0].last_version,
        Version(10)
    );
    Ok(())
}

// [S3] Truncation only rises: a `before` at or below the current point
// changes nothing.
/// `[S3]`: truncation only rises.
pub async fn s3_truncation_only_rises<H: Harness>(h: H) -> CaseResult {
    let store = h.open(default_config()).await?;
    let s = sid("tr-rise");
    store.append(&s, ExpectedVersion::Any, events(10)).await?;
    store.truncate_stream(&s, Version(6)).await?;
    for lower in [6, 5, 1, 0] {
        store.truncate_stream(&s, Version(lower)).await?;
        let v = versions(&stream_events(&store, &s).await?);
        assert_eq!(v, vec![6, 7, 8, 9], "after truncate_stream before {lower}");
    }
    store.truncate_stream(&s, Version(8)).await?;
    assert_eq!(versions(&stream_events(&store, &s).await?), vec![8, 9]);
    Ok(())
}

// [S3] [S1] [R2] A `before` above last + 1 is taken as last + 1: every
// event is gone, the stream still exists with its version, reads return
// empty pages — and the next append is readable (the point was not kept
// above it).
/// `[S3]`: truncating past the end.
pub async fn s3_truncate_above_end_clamps<H: Harness>(h: H) -> CaseResult {
    let store = h.open(default_config()).await?;
    let s = sid("tr-all");
    store
        .append(&s, ExpectedVersion::Any, vec![tagged("T", &["t"])])
        .await?;
    store.append(&s, ExpectedVersion::Any, events(2)).await?;
    store.truncate_stream(&s, Version(1_000)).await?;
    assert!(
        store.stream_exists(&s).await?,
        "a fully truncated stream still exists"
    );
    assert_eq!(store.stream_version(&s).await?, Version(2));
    for direction in [Direction::Forward, Direction::Backward] {
        let from = if direction == Direction::Forward {
            Version(0)
        } else {
            Version::MAX
        };
        let page = store.read_stream(&s, from, 10, direction).await?;
        assert!(
            page.events.is_empty(),
            "{direction:?} read of a fully truncated stream"
        );
        assert_eq!(page.head, Position(3));
    }
    assert!(all_events(&store).await?.is_empty());
    assert!(query_events(&store, &tag_query("t")).await?.is_empty());
    assert_eq!(
        store.list_streams(None, 10).await?,
        vec![StreamInfo {
            id: s.clone(),
            last_version: Version(2)
        }],
        "a fully truncated stream is listed"
    );
    let r = store
        .append(&s, ExpectedVersion::exact(2), events(2))
        .await?;
    assert_eq!(r.first_version, Version(3));
    assert_eq!(
        versions(&stream_events(&store, &s).await?),
        vec![3, 4],
        "events appended after truncating past the end are hidden: the point was not clamped"
    );
    store.truncate_stream(&s, Version(u64::MAX)).await?;
    store
        .append(&s, ExpectedVersion::exact(4), events(1))
        .await?;
    assert_eq!(versions(&stream_events(&store, &s).await?), vec![5]);
    Ok(())
}

// [S3] Truncating a stream that does not exist (never written, or deleted)
// is StreamNotFound and does not create it.
/// `[S3]`: truncating a missing stream.
pub async fn s3_truncate_missing_stream_is_not_found<H: Harness>(h: H) -> CaseResult {
    let store = h.open(default_config()).await?;
    let m = sid("tr-missing");
    assert_not_found(store.truncate_stream(&m, Version(1)).await, &m);
    assert_not_found(store.truncate_stream(&m, Version(0)).await, &m);
    assert!(!store.stream_exists(&m).await?);
    if store.capabilities().delete {
        store.append(&m, ExpectedVersion::Any, events(3)).await?;
        store.delete_stream(&m, ExpectedVersion::Any).await?;
        assert_not_found(store.truncate_stream(&m, Version(1)).await, &m);
        assert!(!store.stream_exists(&m).await?);
    }
    Ok(())
}

// [S4] [A3] delete_stream checks its expectation like an append: a wrong
// Exact or NoStream fails with the real version and deletes nothing;
// StreamExists, Exact(last) and Any delete.
/// `[S4]`: delete expectations.
pub async fn s4_delete_checks_the_expectation<H: Harness>(h: H) -> CaseResult {
    let store = h.open(default_config()).await?;
    let s = sid("del");
    store.append(&s, ExpectedVersion::Any, events(3)).await?;
    let before = StoreState::capture(&store, [&s], &[]).await?;
    for wrong in [
        ExpectedVersion::exact(1),
        ExpectedVersion::exact(3),
        ExpectedVersion::NoStream,
    ] {
        assert_wrong_version(store.delete_stream(&s, wrong).await, &s, wrong, Some(2));
    }
    let after = StoreState::capture(&store, [&s], &[]).await?;
    before.assert_same(&after, "after failed deletes");
    store.delete_stream(&s, ExpectedVersion::exact(2)).await?;
    assert!(!store.stream_exists(&s).await?);
    for (i, expected) in [ExpectedVersion::StreamExists, ExpectedVersion::Any]
        .into_iter()
        .enumerate()
    {
        let t = sid(&format!("del-{i}"));
        store.append(&t, ExpectedVersion::Any, events(1)).await?;
        store.delete_stream(&t, expected).await?;
        assert!(
            !store.stream_exists(&t).await?,
            "after delete with {expected}"
        );
    }
    Ok(())
}

// [S4] [S1] [R2] [R3] [R6] A deleted stream does not exist: read_stream and
// stream_version are StreamNotFound; read_all and queries no longer show
// its events; other streams are untouched.
/// `[S4]`: deletion in every read.
pub async fn s4_delete_hides_stream_from_every_read<H: Harness>(h: H) -> CaseResult {
    let store = h.open(default_config()).await?;
    let (s, o) = (sid("gone"), sid("kept"));
    for _ in 0..3 {
        store
            .append(&s, ExpectedVersion::Any, vec![tagged("T", &["t"])])
            .await?;
        store
            .append(&o, ExpectedVersion::Any, vec![tagged("T", &["t"])])
            .await?;
    }
    let kept_before = stream_events(&store, &o).await?;
    store.delete_stream(&s, ExpectedVersion::Any).await?;
    assert!(!store.stream_exists(&s).await?);
    assert_not_found(store.stream_version(&s).await, &s);
    for direction in [Direction::Forward, Direction::Backward] {
        assert_not_found(store.read_stream(&s, Version(0), 10, direction).await, &s);
    }
    let all = all_events(&store).await?;
    assert_same_events(&kept_before, &all, "read_all after delete");
    assert_eq!(query_events(&store, &tag_query("t")).await?, kept_before);
    let back = store
        .read_all(
            Position::MAX,
            10,
            Direction::Backward,
            Some(&tag_query("t")),
        )
        .await?;
    assert_eq!(positions(&back.events), vec![6, 4, 2]);
    assert_eq!(back.head, Position(6));
    assert_eq!(stream_events(&store, &o).await?, kept_before);
    Ok(())
}

// [S4] [A3] After a delete, the stream is recreated by NoStream or Any (not
// Exact or StreamExists, which fail with actual None), and its versions
// continue from the deleted last version + 1.
/// `[S4]`: recreation.
pub async fn s4_recreate_continues_numbering<H: Harness>(h: H) -> CaseResult {
    let store = h.open(default_config()).await?;
    let s = sid("re");
    store.append(&s, ExpectedVersion::Any, events(5)).await?; // v0..4
    store.delete_stream(&s, ExpectedVersion::exact(4)).await?;
    assert_wrong_version(
        store.append(&s, ExpectedVersion::exact(4), events(1)).await,
        &s,
        ExpectedVersion::exact(4),
        None,
    );
    assert_wrong_version(
        store
            .append(&s, ExpectedVersion::StreamExists, events(1))
            .await,
        &s,
        ExpectedVersion::StreamExists,
        None,
    );
    let r = store
        .append(&s, ExpectedVersion::NoStream, events(2))
        .await?;
    assert_eq!((r.first_version, r.last_version), (Version(5), Version(6)));
    assert_eq!(store.stream_version(&s).await?, Version(6));
    assert_eq!(versions(&stream_events(&store, &s).await?), vec![5, 6]);
    let back = store
        .read_stream(&s, Version(4), 10, Direction::Backward)
        .await?;
    assert!(
        back.events.is_empty(),
        "deleted versions are readable again"
    );
    store.delete_stream(&s, ExpectedVersion::exact(6)).await?;
    let r = store.append(&s, ExpectedVersion::Any, events(1)).await?;
    assert_eq!(r.first_version, Version(7));
    store
        .append(&s, ExpectedVersion::exact(7), events(1))
        .await?;
    assert_eq!(versions(&stream_events(&store, &s).await?), vec![7, 8]);
    Ok(())
}

// [S4] [A3] Deleting a stream that does not exist: Exact and StreamExists
// fail with WrongExpectedVersion (actual None); Any and NoStream answer
// StreamNotFound. Same for a stream already deleted.
/// `[S4]`: deleting a missing stream.
pub async fn s4_delete_missing_stream<H: Harness>(h: H) -> CaseResult {
    let store = h.open(default_config()).await?;
    let never = sid("never");
    let deleted = sid("deleted");
    store
        .append(&deleted, ExpectedVersion::Any, events(2))
        .await?;
    store.delete_stream(&deleted, ExpectedVersion::Any).await?;
    for s in [&never, &deleted] {
        for wrong in [
            ExpectedVersion::exact(0),
            ExpectedVersion::exact(1),
            ExpectedVersion::StreamExists,
        ] {
            assert_wrong_version(store.delete_stream(s, wrong).await, s, wrong, None);
        }
        assert_not_found(store.delete_stream(s, ExpectedVersion::Any).await, s);
        assert_not_found(store.delete_stream(s, ExpectedVersion::NoStream).await, s);
        assert!(!store.stream_exists(s).await?);
    }
    assert!(!store.has_events().await?);
    Ok(())
}

// [S4] Positions are never reused: after deleting the stream that holds the
// latest positions, new appends still get higher positions.
/// `[S4]`: no position reuse.
pub async fn s4_positions_are_never_reused<H: Harness>(h: H) -> CaseResult {
    let store = h.open(default_config()).await?;
    let (a, b) = (sid("pa"), sid("pb"));
    store.append(&a, ExpectedVersion::Any, events(2)).await?; // 1, 2
    let r = store.append(&b, ExpectedVersion::Any, events(3)).await?; // 3..5
    assert_eq!(r.last_position, Position(5));
    store.delete_stream(&b, ExpectedVersion::Any).await?;
    let r = store.append(&a, ExpectedVersion::Any, events(1)).await?;
    assert!(
        r.first_position > Position(5),
        "position {} reused",
        r.first_position
    );
    store.delete_stream(&a, ExpectedVersion::Any).await?;
    assert!(!store.has_events().await?);
    let r2 = store
        .append(&b, ExpectedVersion::NoStream, events(1))
        .await?;
    assert!(
        r2.first_position > r.last_position,
        "position {} reused",
        r2.first_position
    );
    assert_eq!(head(&store).await?, r2.last_position);
    Ok(())
}

// [S5] [S3] Truncating every event makes has_events false, though the
// stream still exists.
/// `[S5]`: has_events and truncation.
pub async fn s5_has_events_after_truncating_everything<H: Harness>(h: H) -> CaseResult {
    let store = h.open(default_config()).await?;
    let (a, b) = (sid("ha"), sid("hb"));
    store.append(&a, ExpectedVersion::Any, events(2)).await?;
    store.append(&b, ExpectedVersion::Any, events(2)).await?;
    store.truncate_stream(&a, Version(2)).await?;
    assert!(store.has_events().await?);
    store.truncate_stream(&b, Version(1)).await?;
    assert!(store.has_events().await?);
    store.truncate_stream(&b, Version(2)).await?;
    assert!(
        !store.has_events().await?,
        "has_events with every event truncated"
    );
    assert!(store.stream_exists(&a).await? && store.stream_exists(&b).await?);
    store.append(&a, ExpectedVersion::Any, events(1)).await?;
    assert!(store.has_events().await?);
    Ok(())
}

// [S5] [S4] Deleting every stream makes has_events false; recreating one
// makes it true.
/// `[S5]`: has_events and deletion.
pub async fn s5_has_events_after_deleting_everything<H: Harness>(h: H) -> CaseResult {
    let store = h.open(default_config()).await?;
    let (a, b) = (sid("ha"), sid("hb"));
    store.append(&a, ExpectedVersion::Any, events(2)).await?;
    store.append(&b, ExpectedVersion::Any, events(2)).await?;
    store.delete_stream(&a, ExpectedVersion::Any).await?;
    assert!(store.has_events().await?);
    store.delete_stream(&b, ExpectedVersion::Any).await?;
    assert!(
        !store.has_events().await?,
        "has_events with every stream deleted"
    );
    store
        .append(&b, ExpectedVersion::NoStream, events(1))
        .await?;
    assert!(store.has_events().await?);
    Ok(())
}
