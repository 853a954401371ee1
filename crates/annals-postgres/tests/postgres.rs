//! What only the PostgreSQL backend has: two stores (two pools, as two
//! application servers) racing on one schema, index-only plans, the
//! head watch across stores, and positions after a server crash.
#![allow(missing_docs, clippy::unwrap_used)]

mod support;

use support::runtime;

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use annals_backend_tests::support::{Store, all_events, events, sid, tag_query, tagged};
use annals_core::{
    Append, AppendCondition, Batch, CorruptionAt, Direction, Durability, Error, ExpectedVersion,
    LogBackend, Position, Query, QueryItem, StoreConfig, Version,
};
use annals_postgres::PostgresStore;
use libtest_mimic::{Arguments, Failed, Trial};

type TestResult = std::result::Result<(), Failed>;
type Test = (&'static str, fn() -> TestResult);

/// Runs `test` on a store in a fresh schema (given too), then closes it.
fn in_fresh_store<F, Fut>(test: F) -> TestResult
where
    F: FnOnce(Arc<PostgresStore>, String) -> Fut,
    Fut: Future<Output = Result<(), Error>>,
{
    runtime().block_on(async {
        let schema = support::fresh_schema();
        let store = Arc::new(support::open(&schema, StoreConfig::default()).await?);
        test(Arc::clone(&store), schema).await?;
        store.close().await
    })?;
    Ok(())
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
        // (`is_ok_and`: the watch's read guard must not live on, or the
        // writers' next publication waits for it forever.)
        let reached = tokio::time::timeout(Duration::from_secs(10), watch.wait_for(|h| *h >= last))
            .await
            .is_ok_and(|r| r.is_ok());
        assert!(reached, "store a's head watch never reached {last}");
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
    in_fresh_store(|store, _| async move {
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
        Ok(())
    })
}

// [M6] verify finds damage made behind the store's back, in SQL: a gap in a
// stream, a missing tag index entry, a stream row disagreeing with its
// events, an event beyond the head.
fn verify_finds_damage_made_in_sql() -> TestResult {
    in_fresh_store(|store, schema| async move {
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

        support::admin(&schema)
            .await
            .batch_execute(
                "DELETE FROM annals_events WHERE stream_id = 'a' AND version = 1;
                 DELETE FROM annals_event_tags WHERE position = 3;
                 UPDATE annals_streams SET next_version = 5 WHERE stream_id = 'b';
                 UPDATE annals_events SET position = 99 WHERE stream_id = 'b';",
            )
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
        Ok(())
    })
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

// [R8] A NOTIFY is only a hint: a role with no rights on the store's
// schema announces a forged head on the store's channel. The head watch
// never passes the head in the table, and live waiters still see the real
// appends that follow.
fn forged_notify_is_only_a_hint() -> TestResult {
    in_fresh_store(|store, schema| async move {
        let first = store
            .append(&sid("a"), ExpectedVersion::NoStream, events(1))
            .await?;
        let admin = support::admin(&schema).await;
        admin
            .batch_execute(
                "DO $$ BEGIN CREATE ROLE mallory LOGIN; \
                 EXCEPTION WHEN duplicate_object THEN NULL; END $$",
            )
            .await
            .unwrap();
        let mallory = support::connect_as("mallory", None).await;
        // mallory cannot read the store …
        let denied = mallory
            .query(&format!("SELECT head FROM {schema}.annals_head"), &[])
            .await;
        assert!(denied.is_err(), "mallory has rights on the schema");
        // … but anyone may NOTIFY on any channel.
        for forged in ["18446744073709551615", "9223372036854775807", "2", "junk"] {
            mallory
                .batch_execute(&format!("NOTIFY {schema}_annals_head, '{forged}'"))
                .await
                .unwrap();
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        let watch = store.watch_head()?;
        assert_eq!(
            *watch.borrow(),
            first.last_position,
            "a forged NOTIFY moved the head watch"
        );
        let mut waiter = store.watch_head()?;
        let next = store
            .append(&sid("a"), ExpectedVersion::Any, events(2))
            .await?;
        let reached = tokio::time::timeout(
            Duration::from_secs(10),
            waiter.wait_for(|h| *h == next.last_position),
        )
        .await
        .is_ok_and(|r| r.is_ok());
        assert!(reached, "the real append never reached the watch");
        Ok(())
    })
}

// [M6] A row written behind the store's back that does not decode (a NULL
// in its tags): every read that meets it answers Corruption naming its
// position, never a panic; the writer meets it in a condition check,
// answers that append, and goes on serving the next ones.
fn bad_row_is_corruption_and_the_writer_survives() -> TestResult {
    in_fresh_store(|store, schema| async move {
        store
            .append(
                &sid("a"),
                ExpectedVersion::NoStream,
                vec![tagged("T", &["x"])],
            )
            .await?;
        let admin = support::admin(&schema).await;
        admin
            .batch_execute(
                "INSERT INTO annals_events (position, stream_id, version, event_type, tags, \
                     event_id, data, metadata, recorded_at) \
                 VALUES (2, 'bad', 0, 'T', ARRAY[NULL]::text[], gen_random_uuid(), '', '', 0);
                 INSERT INTO annals_event_tags VALUES ('x', 2);
                 INSERT INTO annals_streams VALUES ('bad', 1, 0, 0, false);
                 UPDATE annals_head SET head = 2;",
            )
            .await
            .unwrap();
        let corrupt_at_2 = |r: annals_core::Result<annals_core::Page>, what: &str| match r {
            Err(Error::Corruption {
                at: CorruptionAt::Position(Position(2)),
                message,
            }) if message.contains("position 2") => {}
            other => panic!("{what}: expected Corruption at position 2, got {other:?}"),
        };
        corrupt_at_2(
            store
                .read_all(Position(0), 10, Direction::Forward, None)
                .await,
            "read_all",
        );
        corrupt_at_2(
            store
                .read_all(Position(0), 10, Direction::Forward, Some(&tag_query("x")))
                .await,
            "tag query",
        );
        match store
            .read_stream(&sid("bad"), Version(0), 10, Direction::Forward)
            .await
        {
            Err(Error::Corruption {
                at: CorruptionAt::Position(Position(2)),
                message,
            }) if message.contains("position 2") => {}
            other => panic!("read_stream: expected Corruption, got {other:?}"),
        }
        // The writer reads the row while checking a condition (and looking
        // for a retry of this append).
        let conditional = Append::new(sid("c"), ExpectedVersion::Any, vec![tagged("T", &["x"])])
            .condition(AppendCondition::new(tag_query("x"), Some(Position(1))));
        match store.append_with(conditional).await {
            Err(Error::Corruption { .. } | Error::AppendConditionFailed { .. }) => {}
            other => panic!("conditional append: got {other:?}"),
        }
        // The writer is alive.
        let r = store
            .append(&sid("c"), ExpectedVersion::Any, events(1))
            .await?;
        assert_eq!(r.first_position, Position(3));
        store.health().await?;
        Ok(())
    })
}

/// A certificate authority and a server certificate it signed for
/// 127.0.0.1 (not 127.0.0.2): (CA PEM, server certificate PEM, server key PEM).
fn test_certificates() -> (String, String, String) {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(DnType::CommonName, "annals test CA");
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca, ca_key);
    let server_key = KeyPair::generate().unwrap();
    let mut server = CertificateParams::new(vec!["127.0.0.1".to_string()]).unwrap();
    server
        .distinguished_name
        .push(DnType::CommonName, "annals test server");
    let server_cert = server.signed_by(&server_key, &issuer).unwrap();
    (ca_cert.pem(), server_cert.pem(), server_key.serialize_pem())
}

// TLS: a cluster with a certificate of its own CA. verify-full connects to
// the name in the certificate (and every connection of the store is
// encrypted); it refuses another name and another CA; verify-ca accepts
// another name; require encrypts without checking; disable does not encrypt.
fn tls_modes() -> TestResult {
    use annals_postgres::PostgresOptions;
    use annals_postgres::cluster::{ClusterOptions, ServerTls, TempCluster};
    let (ca, cert_pem, key_pem) = test_certificates();
    let (other_ca, _, _) = test_certificates();
    let cluster = TempCluster::start(ClusterOptions {
        tls: Some(ServerTls { cert_pem, key_pem }),
        max_connections: 50,
        ..ClusterOptions::default()
    })?;
    let dir = tempfile::tempdir().unwrap();
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, ca).unwrap();
    let other_file = dir.path().join("other-ca.pem");
    std::fs::write(&other_file, other_ca).unwrap();
    let (ca_file, other_file) = (ca_file.to_str().unwrap(), other_file.to_str().unwrap());
    let good = cluster.tcp_url("127.0.0.1").unwrap();
    let other_name = cluster.tcp_url("127.0.0.2").unwrap();
    runtime().block_on(async {
        let open = |url: &str, params: Vec<(&str, &str)>| {
            let url = url.to_string();
            let mut params = params;
            params.push(("schema", "tls"));
            params.push(("pool_size", "2"));
            let options = PostgresOptions::from_params(params);
            async move { annals_postgres::open(&url, options?).await }
        };
        // Plain and encrypted client connections, counted by the server.
        let (admin, connection) =
            tokio_postgres::connect(&cluster.conninfo(), tokio_postgres::NoTls)
                .await
                .unwrap();
        tokio::spawn(connection);
        let tcp_connections = || async {
            let row = admin
                .query_one(
                    "SELECT count(*) FILTER (WHERE s.ssl), count(*) FILTER (WHERE NOT s.ssl) \
                     FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) \
                     WHERE a.client_addr IS NOT NULL",
                    &[],
                )
                .await
                .unwrap();
            (row.get::<_, i64>(0), row.get::<_, i64>(1))
        };

        let full = [("sslmode", "verify-full"), ("sslrootcert", ca_file)];
        let store = open(&good, full.to_vec()).await?;
        store
            .append(&sid("tls"), ExpectedVersion::NoStream, events(2))
            .await?;
        let (encrypted, plain) = tcp_connections().await;
        assert!(encrypted >= 2, "{encrypted} encrypted connections");
        assert_eq!(plain, 0, "a connection of the store is not encrypted");
        store.close().await?;

        let refused = |r: annals_core::Result<annals_postgres::PostgresStore>, what: &str| {
            let e = r.err().unwrap_or_else(|| panic!("{what}: connected"));
            let mut chain = format!("{e}");
            let mut source = std::error::Error::source(&e);
            while let Some(s) = source {
                chain.push_str(&format!(": {s}"));
                source = s.source();
            }
            assert!(
                chain.to_lowercase().contains("certificate"),
                "{what}: {chain}"
            );
        };
        refused(
            open(&other_name, full.to_vec()).await,
            "verify-full, another name",
        );
        refused(
            open(
                &good,
                vec![("sslmode", "verify-full"), ("sslrootcert", other_file)],
            )
            .await,
            "verify-full, another CA",
        );
        refused(
            open(
                &good,
                vec![("sslmode", "verify-ca"), ("sslrootcert", other_file)],
            )
            .await,
            "verify-ca, another CA",
        );
        let ca_only = [("sslmode", "verify-ca"), ("sslrootcert", ca_file)];
        open(&other_name, ca_only.to_vec()).await?.close().await?;
        open(&good, vec![("sslmode", "require")])
            .await?
            .close()
            .await?;

        let store = open(&good, vec![("sslmode", "disable")]).await?;
        store
            .append(&sid("plain"), ExpectedVersion::NoStream, events(1))
            .await?;
        let (_, plain) = tcp_connections().await;
        assert!(plain >= 2, "sslmode=disable: {plain} plain connections");
        store.close().await?;

        for (params, message) in [
            (vec![("sslmode", "verify-full")], "needs option sslrootcert"),
            (vec![("sslmode", "always")], "option sslmode = \"always\""),
            (
                vec![("sslmode", "verify-ca"), ("sslrootcert", "/no/such/ca.pem")],
                "/no/such/ca.pem",
            ),
        ] {
            match open(&good, params).await {
                Err(Error::InvalidInput { message: m, .. }) if m.contains(message) => {}
                other => panic!("expected InvalidInput with {message:?}, got {other:?}"),
            }
        }
        Ok::<_, Error>(())
    })?;
    cluster.stop()?;
    Ok(())
}

// [A5] The writer's queue is bounded: many more concurrent appends than it
// holds all wait for room and succeed (none is refused), each at its own
// position. Copies of one append sent at once (they land in one round, so
// the writer must commit the first before it can recognise the others) all
// answer the same result and write once.
fn back_pressure_and_retries_in_one_round() -> TestResult {
    in_fresh_store(|store, _| async move {
        let n = 2 * annals_postgres::WRITE_QUEUE + 100;
        let tasks: Vec<_> = (0..n)
            .map(|i| {
                let store = store.clone();
                tokio::spawn(async move {
                    store
                        .append(
                            &sid(&format!("bp-{i}")),
                            ExpectedVersion::NoStream,
                            events(1),
                        )
                        .await
                })
            })
            .collect();
        let mut positions = Vec::with_capacity(n);
        for t in tasks {
            positions.push(t.await.unwrap()?.first_position.0);
        }
        positions.sort_unstable();
        assert_eq!(positions, (1..=n as u64).collect::<Vec<_>>());

        let same = events(3);
        let tasks: Vec<_> = (0..20)
            .map(|_| {
                let (store, same) = (store.clone(), same.clone());
                tokio::spawn(async move {
                    store
                        .append(&sid("dup"), ExpectedVersion::NoStream, same)
                        .await
                })
            })
            .collect();
        let mut results = Vec::new();
        for t in tasks {
            results.push(t.await.unwrap()?);
        }
        assert!(results.windows(2).all(|w| w[0] == w[1]), "{results:?}");
        assert_eq!(store.stream_version(&sid("dup")).await?, Version(2));
        Ok(())
    })
}

// [D3] Tags travel to the server as array literals: any text reads back
// as written, and tag queries find it.
fn odd_tags_read_back_as_written() -> TestResult {
    in_fresh_store(|store, _| async move {
        let odd = [
            "a\"b", "c\\d", "{x,y}", " spaced ", "NULL", "ü→∅", "'", ",", "\\\"", "}{",
        ];
        let tags: Vec<&str> = odd.to_vec();
        let r = store
            .append(
                &sid("odd"),
                ExpectedVersion::NoStream,
                vec![tagged("T", &tags), tagged("U", &[])],
            )
            .await?;
        let page = store
            .read_stream(&sid("odd"), Version(0), 10, Direction::Forward)
            .await?;
        assert_eq!(page.events[0].tags, odd);
        assert!(page.events[1].tags.is_empty());
        for tag in odd {
            let found = store
                .read_all(Position(0), 10, Direction::Forward, Some(&tag_query(tag)))
                .await?;
            assert_eq!(found.events.len(), 1, "{tag:?}");
            assert_eq!(found.events[0].position, r.first_position);
        }
        Ok(())
    })
}

// [A3] [A4] [A5] [R4] A writer checks a round against what it last wrote,
// in one round trip, behind a guard: each write of another store in
// between (to the same stream, to another stream, a delete, a stream it
// never wrote) must be seen by the guard, and every answer is the
// contract's.
fn known_state_goes_stale_under_another_store() -> TestResult {
    // Appends to a stream of its own until a round of `a` is committed in
    // one round trip: its next round tries that way too.
    async fn warm(a: &PostgresStore) -> Result<(), Error> {
        let fast = a.write_rounds().fast;
        for _ in 0..200 {
            a.append(&sid("warm"), ExpectedVersion::Any, events(1))
                .await?;
            if a.write_rounds().fast > fast {
                return Ok(());
            }
        }
        panic!("no round in one round trip: {:?}", a.write_rounds());
    }
    async fn head(store: &PostgresStore) -> Result<u64, Error> {
        Ok(store
            .read_all(Position::MAX, 1, Direction::Backward, None)
            .await?
            .head
            .0)
    }
    // `a`'s next write finds its memory stale: one more guard raised.
    async fn stale_once<T>(
        a: &PostgresStore,
        write: impl Future<Output = Result<T, Error>>,
    ) -> Result<T, Error> {
        let before = a.write_rounds().stale;
        let result = write.await;
        assert_eq!(a.write_rounds().stale, before + 1, "{:?}", a.write_rounds());
        result
    }
    runtime().block_on(async {
        let schema = support::fresh_schema();
        let a = Arc::new(support::open(&schema, StoreConfig::default()).await?);
        let b = Arc::new(support::open(&schema, StoreConfig::default()).await?);
        let s = sid("stale");
        a.append(&s, ExpectedVersion::NoStream, events(1)).await?;
        a.append(&s, ExpectedVersion::exact(0), events(1)).await?;

        // b appends to s: a's memory (s at version 1) is stale.
        warm(&a).await?;
        b.append(&s, ExpectedVersion::exact(1), events(1)).await?;
        let e = stale_once(&a, a.append(&s, ExpectedVersion::exact(1), events(1)))
            .await
            .unwrap_err();
        assert!(e.is_wrong_expected_version(), "{e}");
        assert!(e.to_string().contains('2'), "actual version 2 named: {e}");
        warm(&a).await?;
        b.append(&s, ExpectedVersion::exact(2), events(1)).await?;
        let r = stale_once(&a, a.append(&s, ExpectedVersion::Any, events(1))).await?;
        assert_eq!(r.first_version, Version(4));
        assert_eq!(r.first_position.0, head(&b).await?);

        // b writes another stream: the head moved, s did not.
        warm(&a).await?;
        b.append(&sid("other"), ExpectedVersion::NoStream, events(2))
            .await?;
        let after = head(&b).await?;
        let r = stale_once(&a, a.append(&s, ExpectedVersion::exact(4), events(1))).await?;
        assert_eq!(r.first_version, Version(5));
        assert_eq!(r.first_position.0, after + 1);

        // b deletes s, which leaves the head row as it was.
        let deleted: Vec<u64> = b
            .read_stream(&s, Version(0), 100, Direction::Forward)
            .await?
            .events
            .iter()
            .map(|e| e.position.0)
            .collect();
        warm(&a).await?;
        b.delete_stream(&s, ExpectedVersion::exact(5)).await?;
        let e = stale_once(&a, a.append(&s, ExpectedVersion::exact(5), events(1)))
            .await
            .unwrap_err();
        assert!(e.is_wrong_expected_version(), "{e}");
        // Now known deleted.
        let batch = Batch::new(vec![]).part(s.clone(), ExpectedVersion::StreamExists, events(1));
        let e = a.append_batch(batch).await.unwrap_err();
        assert!(matches!(e, Error::BatchPart { part: 0, .. }), "{e}");

        // A stream a never wrote, which b created: a takes it as absent.
        let t = sid("b-only");
        warm(&a).await?;
        b.append(&t, ExpectedVersion::NoStream, events(1)).await?;
        let e = stale_once(&a, a.append(&t, ExpectedVersion::NoStream, events(1)))
            .await
            .unwrap_err();
        assert!(e.is_wrong_expected_version(), "{e}");
        warm(&a).await?;
        b.append(&t, ExpectedVersion::exact(0), events(1)).await?;
        let r = stale_once(&a, a.append(&t, ExpectedVersion::Any, events(1))).await?;
        assert_eq!(r.first_version, Version(2));

        // Each event once, positions gap-free (s, deleted, aside), as both
        // stores read them.
        let (a_all, b_all): (Store, Store) = (a.clone(), b.clone());
        let all = all_events(&a_all).await?;
        assert_eq!(all, all_events(&b_all).await?);
        let mut positions: Vec<u64> = all.iter().map(|e| e.position.0).collect();
        positions.extend(deleted);
        positions.sort_unstable();
        let head = head(&a).await?;
        assert_eq!(positions, (1..=head).collect::<Vec<_>>());
        a.close().await?;
        b.close().await?;
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
        (
            "known_state_goes_stale_under_another_store",
            known_state_goes_stale_under_another_store,
        ),
        ("head_watch_sees_other_stores", head_watch_sees_other_stores),
        ("reads_are_index_scans", reads_are_index_scans),
        ("opens_by_url", opens_by_url),
        ("forged_notify_is_only_a_hint", forged_notify_is_only_a_hint),
        ("tls_modes", tls_modes),
        (
            "odd_tags_read_back_as_written",
            odd_tags_read_back_as_written,
        ),
        (
            "back_pressure_and_retries_in_one_round",
            back_pressure_and_retries_in_one_round,
        ),
        (
            "bad_row_is_corruption_and_the_writer_survives",
            bad_row_is_corruption_and_the_writer_survives,
        ),
        (
            "verify_finds_damage_made_in_sql",
            verify_finds_damage_made_in_sql,
        ),
        (
            "relaxed_positions_not_reused_after_crash",
            relaxed_positions_not_reused_after_crash,
        ),
    ];
    let without_server = match support::without_server("PostgreSQL test") {
        Ok(ignored) => ignored,
        Err(code) => return code,
    };
    let trials = tests
        .into_iter()
        .map(|(name, f)| Trial::test(name, f).with_ignored_flag(without_server))
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
