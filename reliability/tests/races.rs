//! Race stress (SPEC A4, A8, A1): 64 writers racing `Exact(v)` on one
//! stream for many rounds, and 64 writers racing DCB conditions over
//! overlapping queries, on every backend: exactly one winner per round,
//! the losers told the winner's version, nothing duplicated or lost.
//! Rounds: `ANNALS_RACE_ROUNDS` (default 1000).
#![allow(clippy::unwrap_used, missing_docs)]

use std::sync::Arc;

use futures::future::LocalBoxFuture;

use annals::{
    Append, AppendCondition, Direction, Error, ExpectedVersion, NewEvent, Position, Query,
    QueryItem, Store, StreamId, Version,
};

const WRITERS: u64 = 64;

fn rounds() -> u64 {
    std::env::var("ANNALS_RACE_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(1000)
}

/// Runs `body` on a store of every backend, each in a fresh folder.
fn on_every_backend(body: fn(Store) -> LocalBoxFuture<'static, ()>) {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    for driver in annals_reliability::backends() {
        let scheme = driver.scheme;
        let dir = tempfile::tempdir().unwrap();
        // Durability does not change who wins; relaxed keeps the rounds fast.
        let url = annals_reliability::store_url(driver, dir.path(), "r", "durability=relaxed");
        runtime.block_on(async {
            let store = annals::open(&url).await.unwrap();
            body(store.clone()).await;
            store.close().await.unwrap();
        });
        println!("{scheme}: {} rounds of {WRITERS} racers", rounds());
    }
}

#[test]
fn exact_version_races_have_one_winner_per_round() {
    on_every_backend(|store| {
        Box::pin(async move {
            let stream = StreamId::new("race").unwrap();
            store
                .append(
                    &stream,
                    ExpectedVersion::NoStream,
                    vec![NewEvent::builder("Start").build()],
                )
                .await
                .unwrap();
            let rounds = rounds();
            for round in 0..rounds {
                let tasks: Vec<_> = (0..WRITERS)
                    .map(|w| {
                        let (store, stream) = (Arc::clone(&store), stream.clone());
                        tokio::spawn(async move {
                            let event = NewEvent::builder("Move")
                                .data(format!("{round}:{w}").into_bytes())
                                .build();
                            store
                                .append(&stream, ExpectedVersion::exact(round), vec![event])
                                .await
                        })
                    })
                    .collect();
                let mut winners = 0;
                for task in tasks {
                    match task.await.unwrap() {
                        Ok(r) => {
                            winners += 1;
                            assert_eq!(r.first_version, Version(round + 1));
                        }
                        Err(Error::WrongExpectedVersion { actual, .. }) => {
                            assert_eq!(actual, Some(Version(round + 1)), "round {round}");
                        }
                        Err(e) => panic!("round {round}: {e}"),
                    }
                }
                assert_eq!(winners, 1, "round {round}");
            }
            // Nothing duplicated or lost: one event per round, in order.
            let mut versions = Vec::new();
            let mut from = Version(0);
            loop {
                let page = store
                    .read_stream(&stream, from, 1000, Direction::Forward)
                    .await
                    .unwrap();
                versions.extend(page.events.iter().map(|e| e.stream_version.0));
                match page.events.last() {
                    Some(last) if page.events.len() == 1000 => {
                        from = Version(last.stream_version.0 + 1)
                    }
                    _ => break,
                }
            }
            assert_eq!(versions, (0..=rounds).collect::<Vec<_>>());
        })
    });
}

#[test]
fn dcb_races_over_overlapping_queries_have_one_winner_per_round() {
    on_every_backend(|store| {
        Box::pin(async move {
            let rounds = rounds();
            for round in 0..rounds {
                let head = store
                    .read_all(Position(0), 1, Direction::Backward, None)
                    .await
                    .unwrap()
                    .head;
                // Every racer's query includes the tag `seat:{round}`, so
                // whichever commits first makes all the others fail; some
                // also watch a second tag, and their events carry both.
                let tasks: Vec<_> = (0..WRITERS)
                    .map(|w| {
                        let store = Arc::clone(&store);
                        tokio::spawn(async move {
                            let seat = format!("seat:{round}");
                            let mut query = Query::single(QueryItem::new().with_tag(&seat));
                            if w % 2 == 1 {
                                query = query
                                    .item(QueryItem::new().with_tag(format!("row:{}", round % 3)));
                            }
                            let event = NewEvent::builder("Reserved")
                                .tag(seat)
                                .tag(format!("row:{}", round % 3))
                                .build();
                            let stream = StreamId::new(format!("booking-{round}-{w}")).unwrap();
                            store
                                .append_with(
                                    Append::new(stream, ExpectedVersion::Any, vec![event])
                                        .condition(AppendCondition::new(query, Some(head))),
                                )
                                .await
                        })
                    })
                    .collect();
                let mut winners = 0;
                for task in tasks {
                    match task.await.unwrap() {
                        Ok(_) => winners += 1,
                        Err(Error::AppendConditionFailed { .. }) => {}
                        Err(e) => panic!("round {round}: {e}"),
                    }
                }
                assert_eq!(winners, 1, "round {round}");
                let seat = store
                    .read_all(
                        Position(0),
                        1000,
                        Direction::Forward,
                        Some(&Query::tags([format!("seat:{round}")])),
                    )
                    .await
                    .unwrap();
                assert_eq!(
                    seat.events.len(),
                    1,
                    "round {round}: the seat is booked once"
                );
            }
        })
    });
}
