//! Racing writers and following readers on a multi-threaded runtime
//! (SPEC A4, A8, R4, R5, R8).

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use annals_core::{
    Append, AppendCondition, Direction, Error, ExpectedVersion, NewEvent, Position, RecordedEvent,
    Uuid, Version,
};
use tokio::sync::{Barrier, watch};
use tokio::task::JoinSet;

use super::{Case, case};
use crate::Harness;
use crate::support::*;

/// The cases of this module.
pub fn cases<H: Harness>() -> Vec<Case<H>> {
    vec![
        case!(a4_exact_race_64_tasks_30_rounds),
        case!(a8_condition_race_one_winner_per_round, |c| c
            .append_conditions),
        case!(a8_read_decide_append_loop_loses_no_update, |c| c
            .append_conditions),
        case!(r4_r5_reader_follows_concurrent_writers),
        case!(r8_head_watch_follows_appends),
        case!(r8_head_seen_never_runs_ahead_of_reads),
    ]
}

/// Racers per round.
const RACERS: usize = 64;
/// Rounds of the races.
const ROUNDS: u64 = 30;

// [A4] 64 tasks race Exact(v) on one stream, 30 rounds: each round exactly
// one wins, the others get WrongExpectedVersion with the winner's version;
// in the end the stream holds the winners' events, gap-free, none
// duplicated or lost.
/// `[A4]`: the Exact race.
pub async fn a4_exact_race_64_tasks_30_rounds<H: Harness>(h: H) -> CaseResult {
    let store = h.open(default_config()).await?;
    let s = sid("race");
    let first = ev("Start");
    store
        .append(&s, ExpectedVersion::NoStream, vec![first.clone()])
        .await?;
    let mut winners: Vec<Uuid> = vec![first.event_id];
    for round in 0..ROUNDS {
        let barrier = Arc::new(Barrier::new(RACERS));
        let mut set = JoinSet::new();
        for _ in 0..RACERS {
            let (store, s, barrier) = (store.clone(), s.clone(), barrier.clone());
            set.spawn(async move {
                let event = ev("Raced");
                let id = event.event_id;
                barrier.wait().await;
                (
                    id,
                    store
                        .append(&s, ExpectedVersion::exact(round), vec![event])
                        .await,
                )
            });
        }
        let mut won = Vec::new();
        while let Some(joined) = set.join_next().await {
            let (id, result) = joined?;
            match result {
                Ok(r) => {
                    assert_eq!(
                        r.first_version,
                        Version(round + 1),
                        "round {round}: winner's version"
                    );
                    won.push(id);
                }
                Err(e) => match e.root() {
                    Error::WrongExpectedVersion { actual, .. } => assert_eq!(
                        *actual,
                        Some(Version(round + 1)),
                        "round {round}: a loser's actual version"
                    ),
                    _ => panic!("round {round}: a racer failed with {e:?}"),
                },
            }
        }
        assert_eq!(won.len(), 1, "round {round}: {} winners", won.len());
        winners.extend(won);
    }
    let read = stream_events(&store, &s).await?;
    assert_eq!(
        versions(&read),
        (0..=ROUNDS).collect::<Vec<_>>(),
        "versions have gaps"
    );
    assert_eq!(
        ids(&read),
        winners,
        "the stream's events are not the winners'"
    );
    assert_eq!(all_events(&store).await?.len() as u64, ROUNDS + 1);
    Ok(())
}

// [A8] The check and the write are one atomic step: 32 tasks read the head
// of the same tag query, wait for each other, then append with
// `after = head` — exactly one wins each round, the others get
// AppendConditionFailed.
/// `[A8]`: the condition race.
pub async fn a8_condition_race_one_winner_per_round<H: Harness>(h: H) -> CaseResult {
    let store = h.open(default_config()).await?;
    let tasks = 32;
    let q = tag_query("contested");
    for round in 0..20 {
        let barrier = Arc::new(Barrier::new(tasks));
        let mut set = JoinSet::new();
        for i in 0..tasks {
            let (store, q, barrier) = (store.clone(), q.clone(), barrier.clone());
            set.spawn(async move {
                let page = store
                    .read_all(Position::MAX, 1, Direction::Backward, Some(&q))
                    .await?;
                barrier.wait().await;
                store
                    .append_with(
                        Append::new(
                            sid(&format!("racer-{round}-{i}")),
                            ExpectedVersion::Any,
                            vec![tagged("Claimed", &["contested"])],
                        )
                        .condition(AppendCondition::new(q, Some(page.head))),
                    )
                    .await
            });
        }
        let mut wins = 0;
        while let Some(joined) = set.join_next().await {
            match joined? {
                Ok(_) => wins += 1,
                Err(Error::AppendConditionFailed { .. }) => {}
                Err(e) => panic!("round {round}: a racer failed with {e:?}"),
            }
        }
        assert_eq!(wins, 1, "round {round}: {wins} winners");
    }
    assert_eq!(query_events(&store, &q).await?.len(), 20);
    Ok(())
}

// [A8] [D6] The read-decide-append loop: 8 tasks each add 1 to a counter
// kept as events, 10 times — read the last counter event and the page's
// head, append value + 1 with `after = head`, retry on
// AppendConditionFailed. No update is lost: the counter events hold 1…80
// in order.
/// `[A8]`: no lost update.
pub async fn a8_read_decide_append_loop_loses_no_update<H: Harness>(h: H) -> CaseResult {
    let store = h.open(default_config()).await?;
    let q = tag_query("counter");
    let (tasks, increments) = (8u64, 10u64);
    let mut set = JoinSet::new();
    for t in 0..tasks {
        let (store, q) = (store.clone(), q.clone());
        set.spawn(async move {
            for _ in 0..increments {
                loop {
                    let page = store
                        .read_all(Position::MAX, 1, Direction::Backward, Some(&q))
                        .await?;
                    let current = page.events.first().map_or(0, |e| {
                        u64::from_be_bytes(e.data.as_slice().try_into().unwrap())
                    });
                    let event = NewEvent::builder("Incremented")
                        .data((current + 1).to_be_bytes().to_vec())
                        .tag("counter")
                        .build();
                    let r = store
                        .append_with(
                            Append::new(
                                sid(&format!("counter-{t}")),
                                ExpectedVersion::Any,
                                vec![event],
                            )
                            .condition(AppendCondition::new(q.clone(), Some(page.head))),
                        )
                        .await;
                    match r {
                        Ok(_) => break,
                        Err(Error::AppendConditionFailed { .. }) => continue,
                        Err(e) => return Err(e),
                    }
                }
            }
            Ok(())
        });
    }
    while let Some(joined) = set.join_next().await {
        joined??;
    }
    let counted: Vec<u64> = query_events(&store, &q)
        .await?
        .iter()
        .map(|e| u64::from_be_bytes(e.data.as_slice().try_into().unwrap()))
        .collect();
    assert_eq!(
        counted,
        (1..=tasks * increments).collect::<Vec<_>>(),
        "lost updates"
    );
    Ok(())
}

/// What one writer of the follow test appended.
struct Written {
    ids: Vec<Uuid>,
}

// [R4] [R5] [A1] 8 writers append to 16 streams while a reader follows
// read_all in small pages. After each append returns, read_stream and
// read_all show its events (read-your-writes), at consecutive positions.
// The follower never sees a position at or below one it saw before, and
// what it saw is exactly the final log: nothing appeared later below a
// position already seen, and every acknowledged event was seen.
/// `[R4]` `[R5]`: following writers.
pub async fn r4_r5_reader_follows_concurrent_writers<H: Harness>(h: H) -> CaseResult {
    let store = h.open(default_config()).await?;
    let (writers, appends) = (8usize, 40usize);
    let total: usize = writers * (0..appends).map(|j| 1 + j % 3).sum::<usize>();

    let follower = {
        let store = store.clone();
        tokio::spawn(async move {
            let mut seen: Vec<RecordedEvent> = Vec::new();
            let mut from = Position(1);
            while seen.len() < total {
                let page = store.read_all(from, 5, Direction::Forward, None).await?;
                if page.events.is_empty() {
                    tokio::time::sleep(Duration::from_millis(1)).await;
                    continue;
                }
                for e in page.events {
                    if let Some(last) = seen.last() {
                        assert!(
                            e.position > last.position,
                            "the follower saw position {} after {}",
                            e.position,
                            last.position
                        );
                    }
                    from = e.position.next();
                    seen.push(e);
                }
            }
            Ok::<_, annals_core::Error>(seen)
        })
    };

    let mut set = JoinSet::new();
    for w in 0..writers {
        let store = store.clone();
        set.spawn(async move {
            let mut written = Written { ids: Vec::new() };
            for j in 0..appends {
                let s = sid(&format!("w{}", (w + j * writers) % 16));
                let batch = events(1 + j % 3);
                let n = batch.len();
                let r = store
                    .append(&s, ExpectedVersion::Any, batch.clone())
                    .await?;
                assert_eq!(r.last_position.0 - r.first_position.0, n as u64 - 1);
                let page = store
                    .read_stream(&s, r.first_version, n, Direction::Forward)
                    .await?;
                assert_eq!(
                    ids(&page.events),
                    new_ids(&batch),
                    "read_stream after append"
                );
                let page = store
                    .read_all(r.first_position, n, Direction::Forward, None)
                    .await?;
                assert_eq!(ids(&page.events), new_ids(&batch), "read_all after append");
                assert!(
                    page.head >= r.last_position,
                    "page head behind an acknowledged append"
                );
                written.ids.extend(new_ids(&batch));
            }
            Ok::<_, annals_core::Error>(written)
        });
    }
    let mut acknowledged = HashSet::new();
    while let Some(joined) = set.join_next().await {
        acknowledged.extend(joined??.ids);
    }
    let seen = follower.await??;
    let all = all_events(&store).await?;
    assert_eq!(all.len(), total);
    assert_same_events(&all, &seen, "the final log and what the follower saw");
    let seen_ids: HashSet<Uuid> = ids(&seen).into_iter().collect();
    assert_eq!(seen_ids, acknowledged);
    Ok(())
}

// [R8] The head watch: 0 on an empty store; after each append returns, it
// shows at least the append's last position; a task waiting on changed()
// wakes after an append.
/// `[R8]`: head watch after appends.
pub async fn r8_head_watch_follows_appends<H: Harness>(h: H) -> CaseResult {
    let store = h.open(default_config()).await?;
    let watch = store.watch_head()?;
    assert_eq!(*watch.borrow(), Position(0), "head of an empty store");
    let s = sid("r8");
    for i in 0..20 {
        let r = store
            .append(&s, ExpectedVersion::Any, events(1 + i % 3))
            .await?;
        assert!(
            *watch.borrow() >= r.last_position,
            "after append #{i} the watch shows {:?}, the append ended at {:?}",
            *watch.borrow(),
            r.last_position
        );
    }
    let mut waiter = store.watch_head()?;
    waiter.borrow_and_update();
    let woken =
        tokio::spawn(async move { waiter.changed().await.map(|()| *waiter.borrow_and_update()) });
    tokio::time::sleep(Duration::from_millis(20)).await;
    let r = store.append(&s, ExpectedVersion::Any, events(1)).await?;
    let seen = tokio::time::timeout(Duration::from_secs(10), woken)
        .await
        .map_err(|_| "a task waiting on changed() did not wake after an append")???;
    assert!(seen <= r.last_position && seen > Position(0));
    assert_eq!(*store.watch_head()?.borrow(), r.last_position);
    Ok(())
}

// [R8] With writers running, a watcher checks every head h it sees: a
// read_all from h returns the event at h (the head never runs ahead of what
// reads return), and the page's own head is at least h.
/// `[R8]`: the head never runs ahead.
pub async fn r8_head_seen_never_runs_ahead_of_reads<H: Harness>(h: H) -> CaseResult {
    let store = h.open(default_config()).await?;
    let (stop_tx, mut stop_rx) = watch::channel(false);
    let watcher = {
        let store = store.clone();
        tokio::spawn(async move {
            let mut head = store.watch_head()?;
            let mut checked = 0u32;
            let check = |h: Position, store: Store| async move {
                if h == Position(0) {
                    return Ok::<_, annals_core::Error>(());
                }
                let page = store.read_all(h, 1, Direction::Forward, None).await?;
                assert_eq!(
                    page.events.first().map(|e| e.position),
                    Some(h),
                    "the watch showed head {h}, but read_all does not return it"
                );
                assert!(
                    page.head >= h,
                    "a page's head {} is behind the watch {h}",
                    page.head
                );
                let all = store
                    .read_all(
                        Position(1),
                        store.limits().max_read_count,
                        Direction::Forward,
                        None,
                    )
                    .await?;
                assert!(
                    all.events.last().is_some_and(|e| e.position >= h),
                    "read_all from the start ends before the head {h} seen"
                );
                Ok(())
            };
            loop {
                tokio::select! {
                    changed = head.changed() => {
                        changed.map_err(|_| annals_core::Error::Closed)?;
                        let h = *head.borrow_and_update();
                        check(h, store.clone()).await?;
                        checked += 1;
                    }
                    _ = stop_rx.changed() => break,
                }
            }
            let h = *head.borrow_and_update();
            check(h, store.clone()).await?;
            Ok::<_, annals_core::Error>(checked)
        })
    };
    let mut set = JoinSet::new();
    for w in 0..6 {
        let store = store.clone();
        set.spawn(async move {
            for j in 0..40 {
                store
                    .append(
                        &sid(&format!("h{w}-{}", j % 3)),
                        ExpectedVersion::Any,
                        events(1 + j % 2),
                    )
                    .await?;
            }
            Ok::<_, annals_core::Error>(())
        });
    }
    while let Some(joined) = set.join_next().await {
        joined??;
    }
    let _ = stop_tx.send(true);
    let checked = watcher.await??;
    assert!(checked > 0, "the watcher never saw a change");
    Ok(())
}
