//! What only the PostgreSQL backend has: two stores (two pools, as two
//! application servers) racing on one schema, index-only plans, the
//! head watch across stores, and positions after a server crash.
#![allow(missing_docs, clippy::unwrap_used)]

mod support;

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use annals_backend_tests::support::{Store, all_events, events, sid, tag_query, tagged};
use annals_core::{
    Append, AppendCondition, Batch, Direction, Durability, Error, ExpectedVersion, LogBackend,
    Position, Query, QueryItem, StoreConfig, Version,
};
use libtest_mimic::{Arguments, Failed, Trial};

type TestResult = std::result::Result<(), Failed>;
type Test = (&'static str, fn() -> TestResult);

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .unwrap()
}

async fn two_stores() -> (Store, Store) {
    let schema = support::fresh_schema();
    let a = support::open(&schema, StoreConfig::default())
        .await
        .unwrap();
    let b = support::open(&schema, StoreConfig::default())
        .await
        .unwrap();
    (Arc::new(a), Arc::new(b))
}

// [A4] [R5] Racers from two stores on one stream with the same Exact(v):
// exactly one wins each round; the other store reads the winner at once.
fn two_stores_race_on_one_stream() -> TestResult {
    runtime().block_on(async {
        let (a, b) = two_stores().await;
        let s = sid("race");
        a.append(&s, ExpectedVersion::NoStream, events(1)).await?;
        for round in 0..10u64 {
            let mut tasks = Vec::new();
            for i in 0..32 {
                let store = if i % 2 == 0 { a.clone() } else { b.clone() };
                let s = s.clone();
                tasks.push(tokio::spawn(async move {
                    store
                        .append(&s, ExpectedVersion::exact(round), events(1))
                        .await
                }));
            }
            let mut won = 0;
            for t in tasks {
                match t.await.unwrap() {
                    Ok(r) => {
                        won += 1;
                        assert_eq!(r.first_version, Version(round + 1));
                    }
                    Err(e) if e.is_wrong_expected_version() => {}
                    Err(e) => panic!("unexpected error {e}"),
                }
            }
            assert_eq!(won, 1, "round {round}: {won} winners");
            // [R5] both stores see the winner.
            assert_eq!(a.stream_version(&s).await?, Version(round + 1));
            assert_eq!(b.stream_version(&s).await?, Version(round + 1));
        }
        let all = all_events(&a).await?;
        assert_eq!(all.len(), 11);
        a.close().await?;
        b.close().await?;
        Ok::<_, Error>(())
    })?;
    Ok(())
}

// [A8] Conditional appends from two stores, all deciding from the same
// head over the same tag: exactly one commits each round.
fn two_stores_race_on_one_condition() -> TestResult {
    runtime().block_on(async {
        let (a, b) = two_stores().await;
        for round in 0..10 {
            let head = a
                .read_all(Position::MAX, 1, Direction::Backward, None)
                .await?
                .head;
            let mut tasks = Vec::new();
            for i in 0..32 {
                let store = if i % 2 == 0 { a.clone() } else { b.clone() };
                tasks.push(tokio::spawn(async move {
                    let append = Append::new(
                        sid(&format!("dcb-{i}")),
                        ExpectedVersion::Any,
                        vec![tagged("Reserved", &["seat:1"])],
                    )
                    .condition(AppendCondition::new(tag_query("seat:1"), Some(head)));
                    store.append_with(append).await
                }));
            }
            let mut won = 0;
            for t in tasks {
                match t.await.unwrap() {
                    Ok(_) => won += 1,
                    Err(Error::AppendConditionFailed { .. }) => {}
                    Err(e) => panic!("unexpected error {e}"),
                }
            }
            assert_eq!(won, 1, "round {round}: {won} conditional appends won");
        }
        let page = b
            .read_all(
                Position(0),
                100,
                Direction::Forward,
                Some(&tag_query("seat:1")),
            )
            .await?;
        assert_eq!(page.events.len(), 10);
        a.close().await?;
        b.close().await?;
        Ok::<_, Error>(())
    })?;
    Ok(())
}

// [R4] [R8] Writers on two stores while a follower on a third handle reads
// the log forward: what it sees never changes afterwards (no event appears
// below a position it has seen), and the head watch of one store sees the
// commits of the other.
fn commit_order_across_stores() -> TestResult {
    runtime().block_on(async {
        let (a, b) = two_stores().await;
        let mut writers = Vec::new();
        for w in 0..8 {
            let store = if w % 2 == 0 { a.clone() } else { b.clone() };
            writers.push(tokio::spawn(async move {
                for k in 0..25 {
                    let s = sid(&format!("w{w}-{}", k % 3));
                    store
                        .append(&s, ExpectedVersion::Any, events(1 + k % 3))
                        .await?;
                }
                Ok::<_, Error>(())
            }));
        }
        let follower = b.clone();
        let follow = tokio::spawn(async move {
            let mut seen = Vec::new();
            let mut from = Position(1);
            for _ in 0..400 {
                let page = follower
                    .read_all(from, 50, Direction::Forward, None)
                    .await?;
                if let Some(last) = page.events.last() {
                    from = last.position.next();
                }
                seen.extend(page.events);
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            Ok::<_, Error>(seen)
        });
        for w in writers {
            w.await.unwrap()?;
        }
        let seen = follow.await.unwrap()?;
        let all = all_events(&a).await?;
        // Everything the follower saw is a prefix of the final log: nothing
        // appeared below a position it had passed.
        assert!(seen.len() <= all.len());
        assert_eq!(
            seen,
            all[..seen.len()].to_vec(),
            "the log changed below what a reader saw"
        );
        let last = all.last().unwrap().position;
        let mut watch = a.watch_head()?;
        let reached =
            tokio::time::timeout(Duration::from_secs(10), watch.wait_for(|h| *h >= last)).await;
        assert!(reached.is_ok(), "store a's head watch never reached {last}");
        a.close().await?;
        b.close().await?;
        Ok::<_, Error>(())
    })?;
    Ok(())
}

// [R8] A commit through one store wakes a waiter on the other store's head
// watch (LISTEN/NOTIFY).
fn head_watch_sees_other_stores() -> TestResult {
    runtime().block_on(async {
        let (a, b) = two_stores().await;
        let mut watch = b.watch_head()?;
        let waiter =
            tokio::spawn(async move { watch.changed().await.is_ok().then(|| *watch.borrow()) });
        tokio::time::sleep(Duration::from_millis(50)).await;
        let r = a.append(&sid("w"), ExpectedVersion::Any, events(2)).await?;
        let seen = tokio::time::timeout(Duration::from_secs(10), waiter)
            .await
            .expect("the other store's watch did not wake")
            .unwrap();
        assert_eq!(seen, Some(r.last_position));
        a.close().await?;
        b.close().await?;
        Ok::<_, Error>(())
    })?;
    Ok(())
}

// [R7] Every read of the log is an index scan: EXPLAIN the statement of
// each kind of read on a store with enough rows that a sequential scan
// would look cheap for an unbounded plan.
fn reads_are_index_scans() -> TestResult {
    runtime().block_on(async {
        let schema = support::fresh_schema();
        let store = support::open(&schema, StoreConfig::default()).await?;
        // 5 000 events in 1 000 streams: every table spans many pages.
        for b in 0..10 {
            let mut batch = Batch::default();
            for i in 0..100 {
                let events = (0..5)
                    .map(|k| tagged(["A", "B", "C"][k % 3], &[["x", "y"][(i + k) % 2], "all"]))
                    .collect();
                batch = batch.part(sid(&format!("s{b}-{i}")), ExpectedVersion::Any, events);
            }
            store.append_batch(batch).await?;
        }
        // With statistics, as autovacuum keeps them in production.
        store.compact().await?;
        let client_check = |plan: &str, what: &str| {
            assert!(
                !plan.contains("Seq Scan"),
                "{what}: a sequential scan:\n{plan}"
            );
            assert!(
                !plan.contains("Bitmap"),
                "{what}: a bitmap scan (not ordered):\n{plan}"
            );
            assert!(plan.contains("Index"), "{what}: no index scan:\n{plan}");
        };
        let queries: Vec<(&str, Option<Query>)> = vec![
            ("whole log", None),
            ("one tag", Some(tag_query("x"))),
            (
                "two tags and a type",
                Some(Query::single(
                    QueryItem::new()
                        .with_tag("x")
                        .with_tag("all")
                        .with_type("A"),
                )),
            ),
            ("two types", Some(Query::types(["A", "B"]))),
            (
                "two items",
                Some(
                    Query::single(QueryItem::new().with_tag("y"))
                        .item(QueryItem::new().with_type("C")),
                ),
            ),
        ];
        for (what, q) in &queries {
            for direction in [Direction::Forward, Direction::Backward] {
                let from = match direction {
                    Direction::Forward => Position(100),
                    Direction::Backward => Position::MAX,
                };
                let plan = store
                    .explain_read_all(from, 10, direction, q.as_ref())
                    .await?;
                client_check(&plan, &format!("{what} {direction:?}"));
            }
        }
        for direction in [Direction::Forward, Direction::Backward] {
            let plan = store
                .explain_read_stream(&sid("s7-7"), Version(1), 10, direction)
                .await?;
            client_check(&plan, &format!("read_stream {direction:?}"));
        }
        store.close().await?;
        Ok::<_, Error>(())
    })?;
    Ok(())
}

// [M6] verify finds damage made behind the store's back, in SQL: a gap in a
// stream, a missing tag index entry, a stream row disagreeing with its
// events, an event beyond the head.
fn verify_finds_damage_made_in_sql() -> TestResult {
    runtime().block_on(async {
        let schema = support::fresh_schema();
        let store = support::open(&schema, StoreConfig::default()).await?;
        store
            .append(
                &sid("a"),
                ExpectedVersion::NoStream,
                (0..3).map(|_| tagged("T", &["x"])).collect(),
            )
            .await?;
        store
            .append(&sid("b"), ExpectedVersion::NoStream, events(1))
            .await?;
        let report = store.verify(None).await?;
        assert!(report.is_clean(), "{:?}", report.problems);
        assert_eq!((report.events, report.streams), (4, 2));

        let (client, connection) =
            tokio_postgres::connect(&support::cluster().conninfo(), tokio_postgres::NoTls)
                .await
                .unwrap();
        tokio::spawn(connection);
        client
            .batch_execute(&format!(
                "SET search_path TO {schema};
                 DELETE FROM annals_events WHERE stream_id = 'a' AND version = 1;
                 DELETE FROM annals_event_tags WHERE position = 3;
                 UPDATE annals_streams SET next_version = 5 WHERE stream_id = 'b';
                 UPDATE annals_events SET position = 99 WHERE stream_id = 'b';"
            ))
            .await
            .unwrap();
        let report = store.verify(None).await?;
        let text: Vec<String> = report.problems.iter().map(ToString::to_string).collect();
        let has = |what: &str| text.iter().any(|p| p.contains(what));
        assert!(
            has("stream \"a\" version 2: versions 1..2 are missing"),
            "{text:?}"
        );
        assert!(
            has("event at position 3: tag \"x\" index entry is missing"),
            "{text:?}"
        );
        assert!(has("stream \"b\": holds 1 events"), "{text:?}");
        assert!(
            has("event at position 99: is beyond the store's head"),
            "{text:?}"
        );
        store.close().await?;
        Ok::<_, Error>(())
    })?;
    Ok(())
}

// [D5] A relaxed store whose server crashes: after the restart, no position
// handed out before is handed out again (the writer continues above the
// durable reservation).
fn relaxed_positions_not_reused_after_crash() -> TestResult {
    let schema = support::fresh_schema();
    let relaxed = StoreConfig {
        durability: Durability::Relaxed,
        ..StoreConfig::default()
    };
    let before = runtime().block_on(async {
        let store = support::open(&schema, relaxed).await?;
        let mut last = Position(0);
        for i in 0..20 {
            last = store
                .append(&sid(&format!("r{i}")), ExpectedVersion::Any, events(3))
                .await?
                .last_position;
        }
        // Not closed: the crash comes with the store open.
        Ok::<_, Error>(last)
    })?;
    support::cluster().crash_and_restart()?;
    runtime().block_on(async {
        let store = support::open(&schema, relaxed).await?;
        let r = store
            .append(&sid("after"), ExpectedVersion::Any, events(1))
            .await?;
        assert!(
            r.first_position > before,
            "position {} handed out again (had {before})",
            r.first_position
        );
        // Whatever survived is a prefix of what was written.
        let store: Store = Arc::new(store);
        let all = all_events(&store).await?;
        let kept: Vec<_> = all.iter().filter(|e| e.position <= before).collect();
        for (i, e) in kept.iter().enumerate() {
            assert_eq!(
                e.position,
                Position(i as u64 + 1),
                "a hole in what survived the crash"
            );
        }
        Ok::<_, Error>(())
    })?;
    Ok(())
}

// The URL form the facade passes (`postgres://user@host/db`, the socket
// folder percent-encoded as the host) and the options of its query opens
// the same store as the key=value form.
fn opens_by_url() -> TestResult {
    runtime().block_on(async {
        let schema = support::fresh_schema();
        let params = [
            ("schema", schema.as_str()),
            ("pool_size", "2"),
            ("durability", "relaxed"),
        ];
        let options = annals_postgres::PostgresOptions::from_params(params)?;
        let url = support::cluster().url();
        let store = annals_postgres::open(&url, options).await?;
        let r = store
            .append(&sid("u"), ExpectedVersion::NoStream, events(2))
            .await?;
        store.close().await?;
        let again = support::open(&schema, StoreConfig::default()).await?;
        assert_eq!(again.stream_version(&sid("u")).await?, r.last_version);
        again.close().await?;
        Ok::<_, Error>(())
    })?;
    Ok(())
}

fn main() -> ExitCode {
    let args = Arguments::from_args();
    let tests: Vec<Test> = vec![
        (
            "two_stores_race_on_one_stream",
            two_stores_race_on_one_stream,
        ),
        (
            "two_stores_race_on_one_condition",
            two_stores_race_on_one_condition,
        ),
        ("commit_order_across_stores", commit_order_across_stores),
        ("head_watch_sees_other_stores", head_watch_sees_other_stores),
        ("reads_are_index_scans", reads_are_index_scans),
        ("opens_by_url", opens_by_url),
        (
            "verify_finds_damage_made_in_sql",
            verify_finds_damage_made_in_sql,
        ),
        (
            "relaxed_positions_not_reused_after_crash",
            relaxed_positions_not_reused_after_crash,
        ),
    ];
    let unavailable = support::unavailable();
    if let Some(why) = &unavailable {
        if support::in_ci() {
            eprintln!("error: CI=true but the PostgreSQL tests cannot run: {why}");
            return ExitCode::FAILURE;
        }
        eprintln!("note: every PostgreSQL test is ignored: {why}");
    }
    let trials = tests
        .into_iter()
        .map(|(name, f)| Trial::test(name, f).with_ignored_flag(unavailable.is_some()))
        .collect();
    // The crash test restarts the shared server: run the tests one by one.
    let args = Arguments {
        test_threads: Some(1),
        ..args
    };
    let code = libtest_mimic::run(&args, trials).exit_code();
    support::stop_cluster();
    code
}
