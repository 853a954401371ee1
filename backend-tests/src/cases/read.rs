//! Reading streams and the global log (SPEC R1–R3, S5).

use annals_core::{Direction, ExpectedVersion, Limit, Position, StoreConfig, StreamId, Version};

use super::{Case, case};
use crate::Harness;
use crate::support::*;

/// The cases of this module.
pub fn cases<H: Harness>() -> Vec<Case<H>> {
    vec![
        case!(r1_read_stream_forward_paging),
        case!(r1_read_stream_backward_paging),
        case!(r1_count_limits),
        case!(r2_missing_stream_is_not_found),
        case!(r3_read_all_forward_paging),
        case!(r3_read_all_backward_paging),
        case!(r3_read_all_gaps_after_delete, |c| c.delete),
        case!(s5_has_events),
    ]
}

/// Stream `s` with versions 0..10 at positions 1, 3, …, 19, interleaved
/// with stream `o` at 2, 4, …, 20.
async fn interleaved(store: &Store) -> annals_core::Result<(StreamId, StreamId)> {
    let (s, o) = (sid("s"), sid("o"));
    for _ in 0..10 {
        store.append(&s, ExpectedVersion::Any, events(1)).await?;
        store.append(&o, ExpectedVersion::Any, events(1)).await?;
    }
    Ok((s, o))
}

async fn stream_page(
    store: &Store,
    s: &StreamId,
    from: u64,
    count: usize,
    direction: Direction,
) -> annals_core::Result<Vec<u64>> {
    let page = store
        .read_stream(s, Version(from), count, direction)
        .await?;
    for e in &page.events {
        assert_eq!(&e.stream_id, s);
        assert_eq!(
            e.position.0,
            2 * e.stream_version.0 + 1,
            "position of {s}@{}",
            e.stream_version
        );
    }
    Ok(versions(&page.events))
}

// [R1] [R2] Forward reads return min(count, remaining) events with version
// >= from, ascending: from the start, the middle, at the end; past the end
// the page is empty.
/// `[R1]`: forward stream reads.
pub async fn r1_read_stream_forward_paging<H: Harness>(h: H) -> CaseResult {
    let store = h.open(default_config()).await?;
    let (s, _) = interleaved(&store).await?;
    let f = Direction::Forward;
    assert_eq!(stream_page(&store, &s, 0, 3, f).await?, vec![0, 1, 2]);
    assert_eq!(stream_page(&store, &s, 3, 3, f).await?, vec![3, 4, 5]);
    assert_eq!(stream_page(&store, &s, 6, 3, f).await?, vec![6, 7, 8]);
    assert_eq!(stream_page(&store, &s, 9, 3, f).await?, vec![9]);
    assert_eq!(
        stream_page(&store, &s, 0, 100, f).await?,
        (0..10).collect::<Vec<_>>()
    );
    assert_eq!(stream_page(&store, &s, 5, 1, f).await?, vec![5]);
    assert!(
        stream_page(&store, &s, 10, 3, f).await?.is_empty(),
        "forward past the end"
    );
    assert!(stream_page(&store, &s, 1000, 3, f).await?.is_empty());
    assert!(stream_page(&store, &s, u64::MAX, 3, f).await?.is_empty());
    let page = store.read_stream(&s, Version(10), 3, f).await?;
    assert_eq!(page.head, Position(20), "head of an empty page");
    Ok(())
}

// [R1] Backward reads return events with version <= from, descending; a
// from above the last version (u64::MAX) starts at the last event.
/// `[R1]`: backward stream reads.
pub async fn r1_read_stream_backward_paging<H: Harness>(h: H) -> CaseResult {
    let store = h.open(default_config()).await?;
    let (s, _) = interleaved(&store).await?;
    let b = Direction::Backward;
    assert_eq!(
        stream_page(&store, &s, u64::MAX, 3, b).await?,
        vec![9, 8, 7]
    );
    assert_eq!(stream_page(&store, &s, 9, 3, b).await?, vec![9, 8, 7]);
    assert_eq!(stream_page(&store, &s, 10, 2, b).await?, vec![9, 8]);
    assert_eq!(stream_page(&store, &s, 500, 1, b).await?, vec![9]);
    assert_eq!(stream_page(&store, &s, 5, 3, b).await?, vec![5, 4, 3]);
    assert_eq!(stream_page(&store, &s, 1, 5, b).await?, vec![1, 0]);
    assert_eq!(stream_page(&store, &s, 0, 5, b).await?, vec![0]);
    assert_eq!(
        stream_page(&store, &s, u64::MAX, 100, b).await?,
        (0..10).rev().collect::<Vec<_>>()
    );
    Ok(())
}

// [R1] [R6] count is 1 to max_read_count: 0 and max_read_count + 1 are
// InvalidInput for read_stream, read_all and query reads, with the default
// limit (10 000) and a configured one (100); max_read_count itself works.
/// `[R1]`: read counts.
pub async fn r1_count_limits<H: Harness>(h: H) -> CaseResult {
    let store = h.open(small_config()).await?;
    let max = store.limits().max_read_count;
    assert_eq!(max, 100);
    let (s, _) = interleaved(&store).await?;
    let q = tag_query("x");
    // Where a read in `direction` starts so that it sees everything.
    let start = |direction| match direction {
        Direction::Forward => (Version(0), Position(0)),
        Direction::Backward => (Version::MAX, Position::MAX),
    };
    for direction in [Direction::Forward, Direction::Backward] {
        for count in [0, max + 1, 10_001, usize::MAX] {
            let what = format!("count {count} {direction:?}");
            assert_limit(
                store.read_stream(&s, Version(0), count, direction).await,
                Limit::ReadCount,
                max,
                count,
                &what,
            );
            assert_limit(
                store.read_all(Position(0), count, direction, None).await,
                Limit::ReadCount,
                max,
                count,
                &what,
            );
            assert_limit(
                store
                    .read_all(Position(0), count, direction, Some(&q))
                    .await,
                Limit::ReadCount,
                max,
                count,
                &what,
            );
        }
        assert_eq!(
            store
                .read_stream(&s, start(direction).0, max, direction)
                .await?
                .events
                .len(),
            10
        );
        assert_eq!(
            store
                .read_all(start(direction).1, max, direction, None)
                .await?
                .events
                .len(),
            20
        );
        store
            .read_all(start(direction).1, max, direction, Some(&q))
            .await?;
    }
    store.close().await?;
    // A second place, kept alive as long as its store.
    let fresh = H::new().await;
    let store = fresh.open(StoreConfig::default()).await?;
    store.append(&s, ExpectedVersion::Any, events(2)).await?;
    assert_invalid(
        store
            .read_stream(&s, Version(0), 10_001, Direction::Forward)
            .await,
        "10 001",
    );
    assert_invalid(
        store
            .read_all(Position(0), 10_001, Direction::Forward, None)
            .await,
        "10 001",
    );
    assert_eq!(
        store
            .read_all(Position(0), 10_000, Direction::Forward, None)
            .await?
            .events
            .len(),
        2
    );
    Ok(())
}

// [R2] [S1] A stream never written is StreamNotFound for reads in both
// directions and stream_version, and does not exist.
/// `[R2]`: missing streams.
pub async fn r2_missing_stream_is_not_found<H: Harness>(h: H) -> CaseResult {
    let store = h.open(default_config()).await?;
    let m = sid("missing");
    for direction in [Direction::Forward, Direction::Backward] {
        assert_not_found(store.read_stream(&m, Version(0), 1, direction).await, &m);
    }
    assert_not_found(store.stream_version(&m).await, &m);
    assert!(!store.stream_exists(&m).await?);
    interleaved(&store).await?;
    for direction in [Direction::Forward, Direction::Backward] {
        assert_not_found(store.read_stream(&m, Version::MAX, 5, direction).await, &m);
    }
    assert!(!store.stream_exists(&m).await?);
    // A prefix of an existing id is another stream.
    assert_not_found(
        store
            .read_stream(&sid("o2"), Version(0), 5, Direction::Forward)
            .await,
        &sid("o2"),
    );
    Ok(())
}

// [R3] read_all forward: positions >= from, ascending, min(count,
// remaining); resume with last + 1; from 0 is from the start; past the end
// is an empty page.
/// `[R3]`: forward read_all.
pub async fn r3_read_all_forward_paging<H: Harness>(h: H) -> CaseResult {
    let store = h.open(default_config()).await?;
    let empty = store
        .read_all(Position(0), 10, Direction::Forward, None)
        .await?;
    assert!(empty.events.is_empty());
    assert_eq!(empty.head, Position(0));
    interleaved(&store).await?;
    let f = Direction::Forward;
    let page = |from: u64, count: usize| {
        let store = store.clone();
        async move {
            store
                .read_all(Position(from), count, f, None)
                .await
                .map(|p| positions(&p.events))
        }
    };
    assert_eq!(page(0, 3).await?, vec![1, 2, 3]);
    assert_eq!(page(1, 3).await?, vec![1, 2, 3]);
    assert_eq!(page(4, 3).await?, vec![4, 5, 6]);
    assert_eq!(page(18, 5).await?, vec![18, 19, 20]);
    assert_eq!(page(20, 5).await?, vec![20]);
    assert!(page(21, 5).await?.is_empty(), "forward past the end");
    assert!(page(u64::MAX, 5).await?.is_empty());
    // Paging by resuming after the last position seen covers everything once.
    let mut seen = Vec::new();
    let mut from = 1;
    loop {
        let p = page(from, 7).await?;
        let Some(&last) = p.last() else { break };
        seen.extend(p);
        from = last + 1;
    }
    assert_eq!(seen, (1..=20).collect::<Vec<_>>());
    let full = store.read_all(Position(1), 100, f, None).await?;
    assert_eq!(full.head, Position(20));
    let mut streams = full
        .events
        .iter()
        .map(|e| (e.stream_id.as_str(), e.stream_version.0));
    assert_eq!(streams.next(), Some(("s", 0)));
    assert_eq!(streams.next(), Some(("o", 0)));
    assert_eq!(streams.next(), Some(("s", 1)));
    Ok(())
}

// [R3] read_all backward: positions <= from, descending; from u64::MAX
// starts at the last event; from 0 is empty.
/// `[R3]`: backward read_all.
pub async fn r3_read_all_backward_paging<H: Harness>(h: H) -> CaseResult {
    let store = h.open(default_config()).await?;
    let empty = store
        .read_all(Position::MAX, 10, Direction::Backward, None)
        .await?;
    assert!(empty.events.is_empty());
    interleaved(&store).await?;
    let b = Direction::Backward;
    let page = |from: u64, count: usize| {
        let store = store.clone();
        async move {
            store
                .read_all(Position(from), count, b, None)
                .await
                .map(|p| positions(&p.events))
        }
    };
    assert_eq!(page(u64::MAX, 3).await?, vec![20, 19, 18]);
    assert_eq!(page(21, 2).await?, vec![20, 19]);
    assert_eq!(page(20, 2).await?, vec![20, 19]);
    assert_eq!(page(10, 3).await?, vec![10, 9, 8]);
    assert_eq!(page(2, 5).await?, vec![2, 1]);
    assert_eq!(page(1, 5).await?, vec![1]);
    assert!(page(0, 5).await?.is_empty());
    assert_eq!(
        page(u64::MAX, 100).await?,
        (1..=20).rev().collect::<Vec<_>>()
    );
    Ok(())
}

// [R3] [S4] Deleting leaves gaps in read_all; pages skip them and still
// return `count` events; backward too.
/// `[R3]`: gaps.
pub async fn r3_read_all_gaps_after_delete<H: Harness>(h: H) -> CaseResult {
    let store = h.open(default_config()).await?;
    let (s, _) = interleaved(&store).await?;
    store.delete_stream(&s, ExpectedVersion::exact(9)).await?;
    let f = store
        .read_all(Position(1), 3, Direction::Forward, None)
        .await?;
    assert_eq!(positions(&f.events), vec![2, 4, 6]);
    assert_eq!(f.head, Position(20));
    let f = store
        .read_all(Position(7), 3, Direction::Forward, None)
        .await?;
    assert_eq!(positions(&f.events), vec![8, 10, 12]);
    let b = store
        .read_all(Position(9), 3, Direction::Backward, None)
        .await?;
    assert_eq!(positions(&b.events), vec![8, 6, 4]);
    let b = store
        .read_all(Position::MAX, 2, Direction::Backward, None)
        .await?;
    assert_eq!(positions(&b.events), vec![20, 18]);
    assert_eq!(
        positions(&all_events(&store).await?),
        (1..=10).map(|i| 2 * i).collect::<Vec<_>>()
    );
    Ok(())
}

// [S5] has_events: false on an empty store, true once an event is written.
// (Truncating or deleting everything makes it false again: see
// streams::s5_*.)
/// `[S5]`: has_events.
pub async fn s5_has_events<H: Harness>(h: H) -> CaseResult {
    let store = h.open(default_config()).await?;
    assert!(!store.has_events().await?);
    let r = store
        .append(&sid("s5"), ExpectedVersion::NoStream, events(1))
        .await;
    assert!(r.is_ok());
    assert!(store.has_events().await?);
    let r = store
        .append(&sid("s5"), ExpectedVersion::NoStream, events(1))
        .await;
    assert!(r.is_err());
    assert!(store.has_events().await?);
    Ok(())
}
