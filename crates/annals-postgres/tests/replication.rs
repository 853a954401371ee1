//! Scaling out on PostgreSQL: a primary and a synchronous streaming
//! standby started by the tests ([`ReplicatedCluster`]); writers appending
//! while the primary is killed (SIGKILL) at a random instant and the
//! standby promoted; a write whose commit got no answer retried across a
//! failover; reads, subscriptions and the head watch on a hot standby.
//!
//! `failover_keeps_every_acknowledged_append` fails over
//! `ANNALS_FAILOVERS` times (default 2); the ignored `failover_long`
//! `ANNALS_LONG_FAILOVERS` times (default 10), printing its figures (the
//! README's "Scaling out" has them):
//! `cargo test -p annals-postgres --test replication -- --ignored --nocapture`.
#![allow(missing_docs, clippy::unwrap_used)]

mod support;

use support::runtime;

use std::collections::{HashMap, HashSet};
use std::hash::BuildHasher;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use annals_backend_tests::support::{events, sid};
use annals_core::{
    Append, AppendResult, AuxWrite, Batch, BatchPart, Direction, Durability, Error,
    ExpectedVersion, InvalidReason, LogBackend, Position, RecordedEvent, StoreConfig, StreamId,
    Uuid, Version,
};
use annals_postgres::cluster::{ClusterOptions, ReplicatedCluster, Replication};
use annals_postgres::{PostgresOptions, PostgresStore};
use annals_store::EventStore;
use futures::StreamExt;
use libtest_mimic::{Arguments, Failed, Trial};
use tokio::sync::watch;

type TestResult = std::result::Result<(), Failed>;

/// How long an append may take to fail while no server takes writes: the
/// documented bound is `connect_timeout` (5 s by default) per host named;
/// the cluster names two.
const FAIL_FAST: Duration = Duration::from_secs(12);

fn options(schema: &str) -> PostgresOptions {
    PostgresOptions {
        schema: schema.to_string(),
        pool_size: 8,
        ..PostgresOptions::default()
    }
}

/// A random number below `below` (a fresh hasher's random keys; no
/// dependency for it).
fn random(below: u64) -> u64 {
    std::collections::hash_map::RandomState::new().hash_one(0u8) % below.max(1)
}

/// Runs a call of the cluster (which waits on `pg_ctl` and `psql`) off the
/// async workers' backs.
fn blocking<T>(f: impl FnOnce() -> T) -> T {
    tokio::task::block_in_place(f)
}

fn cluster(replication: Replication) -> Result<ReplicatedCluster, Error> {
    ReplicatedCluster::start(
        ClusterOptions {
            max_connections: 100,
            ..ClusterOptions::default()
        },
        replication,
    )
}

/// Sends `SIG<name>` to `pid` (a process of a test's cluster).
fn signal(name: &str, pid: u32) {
    let status = std::process::Command::new("kill")
        .arg(format!("-{name}"))
        .arg(pid.to_string())
        .status()
        .unwrap();
    assert!(status.success(), "kill -{name} {pid}");
}

/// Waits (up to a minute) until `sql` prints `want` on the server `run`
/// reaches.
fn wait_for_sql(run: impl Fn(&str) -> Result<String, Error>, sql: &str, want: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let got = run(sql).unwrap();
        if got == want {
            return;
        }
        assert!(Instant::now() < deadline, "{sql}: {got:?}, never {want:?}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Every readable event of `store`, in log order.
async fn all_events(store: &dyn LogBackend) -> Result<Vec<RecordedEvent>, Error> {
    let mut all = Vec::new();
    let mut from = Position::START;
    loop {
        let page = store.read_all(from, 1000, Direction::Forward, None).await?;
        let Some(last) = page.events.last() else {
            return Ok(all);
        };
        from = last.position.next();
        all.extend(page.events);
    }
}

/// An append as its writer saw it acknowledged.
#[derive(Clone, Debug)]
struct Acked {
    stream: StreamId,
    result: AppendResult,
    ids: Vec<Uuid>,
    at: Instant,
}

/// What the writers saw.
#[derive(Default)]
struct Tally {
    acked: Vec<Acked>,
    unknown: usize,
    unavailable: usize,
}

/// Appends to streams of its own with `Exact(v)` (`NoStream` for a new
/// one) until `stop`, each append retried until it is acknowledged:
/// after [`Error::Unavailable`] (nothing written) after a pause, after
/// [`Error::OutcomeUnknown`] at once and exactly as it was — the same
/// event ids, so that [A5] answers the first write if it committed.
async fn writer(
    store: Arc<PostgresStore>,
    w: usize,
    stop: Arc<AtomicBool>,
    tally: Arc<Mutex<Tally>>,
) -> Result<(), String> {
    let (mut k, mut last) = (0, None::<u64>);
    while !stop.load(Ordering::Acquire) {
        if last.is_some_and(|v| v >= 30) {
            (k, last) = (k + 1, None);
        }
        let stream = sid(&format!("w{w}-{k}"));
        let expected = last.map_or(ExpectedVersion::NoStream, ExpectedVersion::exact);
        let new = events(1 + random(3) as usize);
        let ids: Vec<Uuid> = new.iter().map(|e| e.event_id).collect();
        let append = Append::new(stream.clone(), expected, new);
        let result = loop {
            match store.append_with(append.clone()).await {
                Ok(r) => break r,
                Err(e) if e.is_unavailable() => {
                    tally.lock().unwrap().unavailable += 1;
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                Err(e) if e.is_outcome_unknown() => tally.lock().unwrap().unknown += 1,
                Err(e) => return Err(format!("writer {w}, {stream} after {last:?}: {e}")),
            }
        };
        last = Some(result.last_version.0);
        let acked = Acked {
            stream,
            result,
            ids,
            at: Instant::now(),
        };
        tally.lock().unwrap().acked.push(acked);
    }
    Ok(())
}

/// What a live `subscribe_all` delivered: each event's position and id, in
/// order, and how many times it had to start again from its checkpoint
/// (the position after the last event it handled).
struct Delivered {
    events: Vec<(Position, Uuid, Instant)>,
    restarts: usize,
}

/// Follows the whole log through `store` from the start until it has
/// delivered every event up to the position `until` names (0: not known
/// yet). A subscription ends with the error of a failed read (the server
/// gone): then it starts again from its checkpoint.
async fn subscriber(
    store: EventStore,
    mut until: watch::Receiver<u64>,
) -> Result<Delivered, String> {
    let mut delivered = Delivered {
        events: Vec::new(),
        restarts: 0,
    };
    let mut next = Position::START;
    loop {
        let mut subscription = store
            .subscribe_all(next, None)
            .map_err(|e| format!("subscribe_all: {e}"))?;
        loop {
            let goal = *until.borrow_and_update();
            if goal > 0 && next.0 > goal {
                return Ok(delivered);
            }
            tokio::select! {
                item = subscription.next() => match item {
                    Some(Ok(event)) => {
                        if event.position < next {
                            return Err(format!(
                                "position {} delivered after {} (again, or out of order)",
                                event.position, next.0 - 1
                            ));
                        }
                        next = event.position.next();
                        delivered.events.push((event.position, event.event_id, Instant::now()));
                    }
                    Some(Err(e)) if e.is_unavailable() => {
                        delivered.restarts += 1;
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        break;
                    }
                    Some(Err(e)) => return Err(format!("the subscription failed: {e}")),
                    None => {
                        delivered.restarts += 1;
                        break;
                    }
                },
                _ = until.changed() => {}
            }
        }
    }
}

/// The head of `store`.
async fn head(store: &dyn LogBackend) -> Result<Position, Error> {
    Ok(store
        .read_all(Position::MAX, 1, Direction::Backward, None)
        .await?
        .head)
}

/// What `subscription` delivered once it has reached the head of `store`
/// as it is now (which `until` tells it), within a minute.
async fn caught_up(
    store: &dyn LogBackend,
    until: &watch::Sender<u64>,
    subscription: tokio::task::JoinHandle<Result<Delivered, String>>,
) -> Result<Delivered, Failed> {
    until.send(head(store).await?.0).unwrap();
    tokio::time::timeout(Duration::from_secs(60), subscription)
        .await
        .map_err(|_| Failed::from("the subscription never caught up"))??
        .map_err(Failed::from)
}

/// The figures of a failover run.
#[derive(Default, Debug)]
struct Figures {
    failovers: usize,
    acked_appends: usize,
    acked_events: usize,
    lost: usize,
    unknown: usize,
    unavailable: usize,
    /// From the kill to the first append acknowledged by the new primary.
    failover: Vec<Duration>,
    /// `pg_ctl promote`, until the standby takes writes.
    promote: Vec<Duration>,
    /// How long an append took to fail while no server took writes.
    fail_fast: Vec<Duration>,
    restarts: usize,
    /// From an append's acknowledgment on the primary to its delivery by a
    /// subscription on a read-only store on the standby (before the first
    /// failover).
    standby_lag: Vec<Duration>,
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

impl std::fmt::Display for Figures {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ms = |d: Duration| format!("{:.0} ms", d.as_secs_f64() * 1000.0);
        let summary = |v: &[Duration]| {
            let mut v = v.to_vec();
            v.sort();
            format!(
                "median {}, max {}",
                ms(percentile(&v, 0.5)),
                ms(v.last().copied().unwrap_or_default())
            )
        };
        let mut lag = self.standby_lag.clone();
        lag.sort();
        writeln!(f, "failovers:             {}", self.failovers)?;
        writeln!(
            f,
            "acknowledged appends:  {} ({} events)",
            self.acked_appends, self.acked_events
        )?;
        writeln!(f, "lost:                  {}", self.lost)?;
        writeln!(
            f,
            "outcome unknown:       {} (retried exactly)",
            self.unknown
        )?;
        writeln!(f, "unavailable answers:   {}", self.unavailable)?;
        writeln!(
            f,
            "failover (kill → first acknowledged append): {}",
            summary(&self.failover)
        )?;
        writeln!(f, "pg_ctl promote:        {}", summary(&self.promote))?;
        writeln!(
            f,
            "an append failing while no primary: {}",
            summary(&self.fail_fast)
        )?;
        writeln!(f, "subscription restarts: {}", self.restarts)?;
        write!(
            f,
            "standby read lag (acknowledged → delivered on the standby, {} events): \
             median {}, p99 {}, max {}",
            lag.len(),
            ms(percentile(&lag, 0.5)),
            ms(percentile(&lag, 0.99)),
            ms(lag.last().copied().unwrap_or_default())
        )
    }
}

/// Writers append with `Immediate` from `writers` tasks, a live
/// subscription follows the log, and `failovers` times the primary is
/// killed at a random instant, an append fails fast, the standby is
/// promoted and a new standby made. Then every acknowledged append must be
/// there at its acknowledged stream, version and position; nothing else;
/// versions gap-free; the subscription must have delivered exactly the log,
/// in order, each event once.
async fn failover_run(failovers: usize, writers: usize) -> Result<Figures, Failed> {
    let cluster = cluster(Replication::Synchronous)?;
    let store = Arc::new(annals_postgres::open(&cluster.conninfo(), options("failover")).await?);
    // A read-only store on the standby, for its lag (until the first
    // failover). A synchronous standby has flushed the new schema, not
    // always replayed it yet: wait until it has, or the store is not there.
    blocking(|| {
        let lsn = cluster.sql_on_primary("SELECT pg_current_wal_flush_lsn()")?;
        let replayed = format!("SELECT pg_last_wal_replay_lsn() >= '{lsn}'::pg_lsn");
        wait_for_sql(|q| cluster.sql_on_standby(q), &replayed, "t");
        Ok::<_, Error>(())
    })?;
    let standby_store: Arc<dyn LogBackend> = Arc::new(
        annals_postgres::open(
            &cluster.standby_conninfo().unwrap(),
            PostgresOptions {
                read_only: true,
                ..options("failover")
            },
        )
        .await?,
    );
    let (until_tx, until_rx) = watch::channel(0u64);
    let subscription = tokio::spawn(subscriber(
        EventStore::new(store.clone() as Arc<dyn LogBackend>),
        until_rx.clone(),
    ));
    let (standby_until_tx, standby_until_rx) = watch::channel(0u64);
    let mut standby_subscription = Some(tokio::spawn(subscriber(
        EventStore::new(standby_store.clone()),
        standby_until_rx,
    )));
    let stop = Arc::new(AtomicBool::new(false));
    let tally = Arc::new(Mutex::new(Tally::default()));
    let mut tasks: Vec<_> = (0..writers)
        .map(|w| tokio::spawn(writer(store.clone(), w, stop.clone(), tally.clone())))
        .collect();
    let mut figures = Figures {
        failovers,
        ..Figures::default()
    };

    for _ in 0..failovers {
        // Writers at work for a random while: the kill falls anywhere in a
        // round (waiting for the lock, writing, waiting for the standby).
        tokio::time::sleep(Duration::from_millis(300 + random(1000))).await;
        if let Some(standby_subscription) = standby_subscription.take() {
            // The standby's subscription has what was acknowledged before
            // now (bounded wait), then stops: its server is promoted next.
            let delivered =
                caught_up(store.as_ref(), &standby_until_tx, standby_subscription).await?;
            let acked_at: HashMap<Uuid, Instant> = tally
                .lock()
                .unwrap()
                .acked
                .iter()
                .flat_map(|a| a.ids.iter().map(move |id| (*id, a.at)))
                .collect();
            figures.standby_lag = delivered
                .events
                .iter()
                .filter_map(|(_, id, seen)| {
                    Some(seen.saturating_duration_since(*acked_at.get(id)?))
                })
                .collect();
            standby_store.close().await?;
        }
        // The standby falls behind for a random moment first (the
        // primary's WAL sender stopped: a network hiccup): commits then
        // wait for it, so what a failover could lose is at its largest. (A
        // primary that acknowledged commits without the standby —
        // synchronous_commit = local — loses them here.)
        let sender: u32 =
            blocking(|| cluster.sql_on_primary("SELECT pid FROM pg_stat_replication"))?
                .parse()
                .map_err(|e| Failed::from(format!("the WAL sender's pid: {e}")))?;
        signal("STOP", sender);
        tokio::time::sleep(Duration::from_millis(random(100))).await;
        let killed = Instant::now();
        blocking(|| cluster.kill_primary())?;
        // While no server takes writes, an append fails fast, and typed.
        let probing = Instant::now();
        let probe = tokio::time::timeout(
            FAIL_FAST,
            store.append(&sid("probe"), ExpectedVersion::Any, events(1)),
        )
        .await;
        match probe {
            Ok(Err(e)) if e.is_unavailable() => figures.fail_fast.push(probing.elapsed()),
            other => panic!("an append while no primary: {other:?}"),
        }
        let promoting = Instant::now();
        blocking(|| cluster.promote())?;
        figures.promote.push(promoting.elapsed());
        // The same store handle serves again: the writers' next
        // acknowledgment.
        let back = loop {
            let first = tally
                .lock()
                .unwrap()
                .acked
                .iter()
                .rev()
                .take_while(|a| a.at > promoting)
                .last()
                .map(|a| a.at);
            if let Some(at) = first {
                break at;
            }
            // A writer that stopped found its stream not as acknowledged
            // (an append lost): its error says which.
            if let Some(i) = tasks.iter().position(|t| t.is_finished()) {
                tasks.swap_remove(i).await?.map_err(Failed::from)?;
            }
            assert!(
                promoting.elapsed() < Duration::from_secs(60),
                "no append acknowledged after the promotion"
            );
            tokio::time::sleep(Duration::from_millis(2)).await;
        };
        figures
            .failover
            .push(back.saturating_duration_since(killed));
        blocking(|| cluster.add_standby())?;
    }
    // New appends continue on the last primary.
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, Ordering::Release);
    for task in tasks {
        task.await?.map_err(Failed::from)?;
    }

    let all = all_events(store.as_ref()).await?;
    let delivered = caught_up(store.as_ref(), &until_tx, subscription).await?;

    let tally = std::mem::take(&mut *tally.lock().unwrap());
    figures.acked_appends = tally.acked.len();
    figures.unknown = tally.unknown;
    figures.unavailable = tally.unavailable;
    figures.restarts = delivered.restarts;
    // Every acknowledged event at its acknowledged stream, version and
    // position.
    let by_position: HashMap<u64, &RecordedEvent> = all.iter().map(|e| (e.position.0, e)).collect();
    for a in &tally.acked {
        for (i, id) in a.ids.iter().enumerate() {
            figures.acked_events += 1;
            let at = a.result.first_position.0 + i as u64;
            match by_position.get(&at) {
                Some(e)
                    if e.event_id == *id
                        && e.stream_id == a.stream
                        && e.stream_version.0 == a.result.first_version.0 + i as u64 => {}
                found => {
                    figures.lost += 1;
                    eprintln!(
                        "lost: {} version {} at position {at}: found {found:?}",
                        a.stream,
                        a.result.first_version.0 + i as u64
                    );
                }
            }
        }
    }
    assert_eq!(figures.lost, 0, "acknowledged events lost");
    // Nothing else: no event of an append that failed (the probes), none
    // written twice.
    assert_eq!(
        all.len(),
        figures.acked_events,
        "events in the store that no writer had acknowledged"
    );
    // Versions gap-free, in position order, in every stream.
    let mut versions: HashMap<&StreamId, u64> = HashMap::new();
    for e in &all {
        let next = versions.entry(&e.stream_id).or_insert(0);
        assert_eq!(e.stream_version.0, *next, "a gap in {}", e.stream_id);
        *next += 1;
    }
    // The subscription delivered the log exactly: each event once, in
    // order, at the position it has now (positions never change).
    let log: Vec<(Position, Uuid)> = all.iter().map(|e| (e.position, e.event_id)).collect();
    let seen: Vec<(Position, Uuid)> = delivered
        .events
        .iter()
        .map(|(p, id, _)| (*p, *id))
        .collect();
    assert!(
        seen == log,
        "the subscription delivered {} events, the log has {}",
        seen.len(),
        log.len()
    );
    store.close().await?;
    cluster.stop()?;
    Ok(figures)
}

fn failovers_from_env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

// [M5] [R4] [R5] [R8] [A5] Writers, a subscription, one or two failovers
// (ANNALS_FAILOVERS): nothing acknowledged is lost or moved.
fn failover_keeps_every_acknowledged_append() -> TestResult {
    let figures = runtime().block_on(failover_run(failovers_from_env("ANNALS_FAILOVERS", 2), 4))?;
    eprintln!("{figures}");
    Ok(())
}

// The long mode (ignored): ANNALS_LONG_FAILOVERS failovers (default 10),
// eight writers; prints the figures of the README's "Scaling out".
fn failover_long() -> TestResult {
    let figures = runtime().block_on(failover_run(
        failovers_from_env("ANNALS_LONG_FAILOVERS", 10),
        8,
    ))?;
    println!("{figures}");
    Ok(())
}

// [A5] An append whose COMMIT got no answer — the primary killed while the
// commit waited for its synchronous standby — is Error::OutcomeUnknown.
// Retried exactly after the promotion, it is written exactly once: the
// retry answers the first write's result when the standby had the commit
// (its WAL receiver stopped with the commit unread, then let go), and
// writes it when the standby never got it (the primary's WAL sender
// stopped before sending it). Meanwhile, with no primary, calls fail fast
// with Error::Unavailable.
fn unknown_outcome_is_retried_exactly_across_failover() -> TestResult {
    runtime().block_on(async {
        let cluster = cluster(Replication::Synchronous)?;
        let params = [
            ("schema", "unknown"),
            ("target_session_attrs", "read-write"),
        ];
        // The URL form: both socket folders as hosts.
        let store = Arc::new(
            annals_postgres::open(&cluster.url(), PostgresOptions::from_params(params)?).await?,
        );
        for committed in [true, false] {
            let stream = sid(if committed { "kept" } else { "unsent" });
            let first = store
                .append(&stream, ExpectedVersion::NoStream, events(1))
                .await?;
            // Hold the commit in the primary's wait for the standby.
            let held = blocking(|| {
                if committed {
                    cluster.standby_wal_receiver()
                } else {
                    cluster
                        .sql_on_primary("SELECT pid FROM pg_stat_replication")
                        .map(|p| p.parse().unwrap())
                }
            })?;
            signal("STOP", held);
            let append = Append::new(stream.clone(), ExpectedVersion::exact(0), events(2));
            let ids: Vec<Uuid> = append.events.iter().map(|e| e.event_id).collect();
            let pending = tokio::spawn({
                let (store, append) = (store.clone(), append.clone());
                async move { store.append_with(append).await }
            });
            let lsn = blocking(|| {
                let sql = |q: &str| cluster.sql_on_primary(q);
                wait_for_sql(
                    sql,
                    "SELECT count(*) FROM pg_stat_activity WHERE wait_event = 'SyncRep'",
                    "1",
                );
                let lsn = cluster.sql_on_primary("SELECT pg_current_wal_flush_lsn()")?;
                if committed {
                    // The WAL sender has sent the commit: it waits unread
                    // in the stopped receiver's socket.
                    wait_for_sql(
                        sql,
                        &format!("SELECT sent_lsn >= '{lsn}' FROM pg_stat_replication"),
                        "t",
                    );
                }
                cluster.kill_primary().map(|()| lsn)
            })?;
            match tokio::time::timeout(Duration::from_secs(30), pending).await {
                Ok(Ok(Err(e))) if e.is_outcome_unknown() => {
                    assert!(e.to_string().contains("outcome unknown"), "{e}");
                }
                other => panic!("the append whose commit got no answer: {other:?}"),
            }
            // No primary: every call fails fast, typed and retryable.
            let started = Instant::now();
            let probe = store
                .append(&sid("probe"), ExpectedVersion::Any, events(1))
                .await;
            assert!(matches!(&probe, Err(e) if e.is_unavailable()), "{probe:?}");
            let read = store
                .read_stream(&stream, Version(0), 10, Direction::Forward)
                .await;
            assert!(matches!(&read, Err(e) if e.is_unavailable()), "{read:?}");
            assert!(store.health().await.is_err());
            assert!(started.elapsed() < FAIL_FAST, "{:?}", started.elapsed());
            if committed {
                signal("CONT", held);
                blocking(|| {
                    wait_for_sql(
                        |q| cluster.sql_on_standby(q),
                        &format!("SELECT pg_last_wal_receive_lsn() >= '{lsn}'"),
                        "t",
                    )
                });
            }
            blocking(|| cluster.promote())?;
            let before = store
                .read_stream(&stream, Version(0), 10, Direction::Forward)
                .await?;
            assert_eq!(
                before.events.len(),
                if committed { 3 } else { 1 },
                "committed {committed}: {:?}",
                before.events
            );
            let retried = store.append_with(append).await?;
            assert_eq!(
                (retried.first_version, retried.last_version),
                (Version(1), Version(2))
            );
            if committed {
                // [A5]: the first write's own positions.
                assert_eq!(retried.first_position, before.events[1].position);
            }
            let after = store
                .read_stream(&stream, Version(0), 10, Direction::Forward)
                .await?;
            let got: Vec<(u64, Uuid)> = after
                .events
                .iter()
                .map(|e| (e.stream_version.0, e.event_id))
                .collect();
            let want = vec![(0, after.events[0].event_id), (1, ids[0]), (2, ids[1])];
            assert_eq!(got, want);
            assert_eq!(after.events[0].position, first.first_position);
            assert!(store.stream_version(&sid("probe")).await.is_err());
            blocking(|| cluster.add_standby())?;
        }
        store.close().await?;
        cluster.stop()?;
        Ok::<_, Failed>(())
    })
}

// [R5] [R7] [R8] A read-only store on a hot standby (RemoteApply): it reads
// what the primary wrote, an append acknowledged on the primary is
// readable there at once, a subscription there follows the primary's
// appends (its head watch polls: a standby cannot LISTEN), every write is
// Unsupported; a store that may write refuses the standby. After a
// promotion it keeps reading.
fn reads_from_a_hot_standby() -> TestResult {
    runtime().block_on(async {
        let cluster = cluster(Replication::RemoteApply)?;
        let primary = Arc::new(annals_postgres::open(&cluster.conninfo(), options("reads")).await?);
        let shop = sid("shop-1");
        primary
            .append(&shop, ExpectedVersion::NoStream, events(3))
            .await?;
        primary
            .append(&sid("shop-2"), ExpectedVersion::NoStream, events(2))
            .await?;
        primary.aux_put(b"checkpoint", b"7").await?;
        let standby_url = cluster.standby_conninfo().unwrap();

        match annals_postgres::open(&standby_url, options("reads")).await {
            Err(e @ Error::InvalidInput { .. }) if e.to_string().contains("hot standby") => {}
            other => panic!("a writable store on the standby: {other:?}"),
        }
        let read_only = |schema: &str| PostgresOptions {
            read_only: true,
            head_poll: Duration::from_millis(20),
            ..options(schema)
        };
        match annals_postgres::open(&standby_url, read_only("nothing_here")).await {
            Err(e) if e.invalid_reason().is_some_and(|r| matches!(r, InvalidReason::Unknown(_))) => {}
            other => panic!("a read-only store where there is none: {other:?}"),
        }
        let standby = Arc::new(annals_postgres::open(&standby_url, read_only("reads")).await?);
        assert!(standby.is_read_only());
        standby.health().await?;

        // The same answers as the primary.
        let (a, b) = (all_events(primary.as_ref()).await?, all_events(standby.as_ref()).await?);
        assert_eq!(a, b);
        assert_eq!(a.len(), 5);
        assert_eq!(
            primary.list_streams(None, 10).await?,
            standby.list_streams(None, 10).await?
        );
        assert_eq!(standby.stream_version(&shop).await?, Version(2));
        let page = standby
            .read_stream(&shop, Version(1), 10, Direction::Backward)
            .await?;
        assert_eq!(page.events.len(), 2);
        assert_eq!(standby.aux_get(b"checkpoint").await?, Some(b"7".to_vec()));
        assert!(standby.has_events().await?);
        let report = standby.verify(None).await?;
        assert_eq!(report.events, 5);
        assert!(report.problems.is_empty(), "{:?}", report.problems);

        // Every write is refused, and nothing reaches the server.
        let unsupported = |r: Result<(), Error>, what: &str| match r {
            Err(Error::Unsupported(m)) if m.contains("read-only") => {}
            other => panic!("{what} on a read-only store: {other:?}"),
        };
        unsupported(
            standby
                .append(&shop, ExpectedVersion::Any, events(1))
                .await
                .map(drop),
            "append",
        );
        let batch = Batch::new(vec![BatchPart::new(sid("x"), ExpectedVersion::Any, events(1))]);
        unsupported(standby.append_batch(batch).await.map(drop), "append_batch");
        unsupported(
            standby.aux_write(vec![AuxWrite::put(b"k".to_vec(), b"v".to_vec())]).await,
            "aux_write",
        );
        unsupported(
            standby.delete_stream(&shop, ExpectedVersion::Any).await,
            "delete_stream",
        );
        unsupported(standby.truncate_stream(&shop, Version(1)).await, "truncate_stream");
        unsupported(standby.compact().await, "compact");

        // remote_apply: acknowledged on the primary, readable on the
        // standby at once.
        for _ in 0..20 {
            let r = primary
                .append(&shop, ExpectedVersion::Any, events(2))
                .await?;
            let page = standby
                .read_stream(&shop, r.first_version, 10, Direction::Forward)
                .await?;
            assert_eq!(page.events.len(), 2, "not on the standby yet");
            assert!(page.head >= r.last_position);
        }

        // A subscription on the standby follows the primary's appends.
        let es = EventStore::new(standby.clone() as Arc<dyn LogBackend>);
        let mut subscription = es.subscribe_all(head(standby.as_ref()).await?.next(), None)?;
        let mut lags = Vec::new();
        for _ in 0..20 {
            let new = events(1);
            let ids = vec![new[0].event_id];
            primary.append(&shop, ExpectedVersion::Any, new).await?;
            let acked = Instant::now();
            follow(&mut subscription, ids).await;
            lags.push(acked.elapsed());
        }
        lags.sort();
        eprintln!(
            "remote_apply, head_poll_ms=20: acknowledged → delivered on the standby: median {:?}, max {:?}",
            percentile(&lags, 0.5),
            lags.last().unwrap()
        );

        // The standby promoted: the read-only store reads on, and its head
        // watch follows the new primary's commits.
        blocking(|| cluster.kill_primary())?;
        blocking(|| cluster.promote())?;
        let new = events(2);
        let ids = new.iter().map(|e| e.event_id).collect();
        let written = loop {
            match primary.append(&shop, ExpectedVersion::Any, new.clone()).await {
                Ok(r) => break r,
                Err(e) if e.is_unavailable() => {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                Err(e) => panic!("after the promotion: {e}"),
            }
        };
        follow(&mut subscription, ids).await;
        assert_eq!(standby.stream_version(&shop).await?, written.last_version);
        drop(subscription);
        standby.close().await?;
        primary.close().await?;
        cluster.stop()?;
        Ok::<_, Failed>(())
    })
}

/// Takes the events `ids` from `subscription`, in order (10 s at most
/// each).
async fn follow(subscription: &mut annals_store::Subscription, ids: Vec<Uuid>) {
    for id in ids {
        let got = tokio::time::timeout(Duration::from_secs(10), subscription.next())
            .await
            .expect("the subscription got nothing in 10 s")
            .expect("the subscription ended")
            .expect("the subscription failed");
        assert_eq!(got.event_id, id);
    }
}

/// What a failover lost of appends acknowledged without waiting for the
/// standby.
struct Loss {
    acked: usize,
    lost: usize,
    unknown: usize,
    /// Positions of lost events that events written after the promotion
    /// hold now.
    reused: Vec<u64>,
}

/// Writers append (`Any`) with `durability` to a primary whose standby
/// replicates as `replication`; the standby falls behind for a moment (the
/// primary's WAL sender stopped), then the primary is killed and the
/// standby promoted, and the writers go on. Checks that each acknowledged
/// append is all there or all gone, that what is lost is a suffix of what
/// was written before the kill, and that nothing is there that no writer
/// sent; returns what was lost.
async fn lossy_failover(replication: Replication, durability: Durability) -> Result<Loss, Failed> {
    let cluster = cluster(replication)?;
    let config = StoreConfig {
        durability,
        ..StoreConfig::default()
    };
    let store = Arc::new(
        annals_postgres::open(
            &cluster.conninfo(),
            PostgresOptions {
                config,
                ..options("lossy")
            },
        )
        .await?,
    );
    type Log = Arc<Mutex<Vec<(AppendResult, Vec<Uuid>, Instant)>>>;
    let acked: Log = Arc::default();
    let unknown: Arc<Mutex<HashSet<Uuid>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let tasks: Vec<_> = (0..4)
        .map(|w| {
            let (store, acked, unknown, stop) =
                (store.clone(), acked.clone(), unknown.clone(), stop.clone());
            tokio::spawn(async move {
                while !stop.load(Ordering::Acquire) {
                    let new = events(1 + random(3) as usize);
                    let ids: Vec<Uuid> = new.iter().map(|e| e.event_id).collect();
                    match store
                        .append(&sid(&format!("r{w}")), ExpectedVersion::Any, new)
                        .await
                    {
                        Ok(r) => acked.lock().unwrap().push((r, ids, Instant::now())),
                        Err(e) if e.is_unavailable() => {
                            tokio::time::sleep(Duration::from_millis(10)).await;
                        }
                        // An Any append is not retried: it may be there.
                        Err(e) if e.is_outcome_unknown() => unknown.lock().unwrap().extend(ids),
                        Err(e) => return Err(format!("writer {w}: {e}")),
                    }
                }
                Ok(())
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(300 + random(700))).await;
    let sender: u32 = blocking(|| cluster.sql_on_primary("SELECT pid FROM pg_stat_replication"))?
        .parse()
        .map_err(|e| Failed::from(format!("the WAL sender's pid: {e}")))?;
    signal("STOP", sender);
    tokio::time::sleep(Duration::from_millis(50 + random(50))).await;
    blocking(|| cluster.kill_primary())?;
    let promoted = Instant::now();
    blocking(|| cluster.promote())?;
    while !acked
        .lock()
        .unwrap()
        .iter()
        .any(|(_, _, at)| *at > promoted)
    {
        assert!(
            promoted.elapsed() < Duration::from_secs(60),
            "no append after the promotion"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    stop.store(true, Ordering::Release);
    for task in tasks {
        task.await?.map_err(Failed::from)?;
    }
    let all = all_events(store.as_ref()).await?;
    let by_position: HashMap<u64, Uuid> = all.iter().map(|e| (e.position.0, e.event_id)).collect();
    let acked = std::mem::take(&mut *acked.lock().unwrap());
    // Whole appends: each all there, at its positions, or all gone.
    let mut lost = Vec::new();
    for (r, ids, at) in &acked {
        let found = ids
            .iter()
            .enumerate()
            .filter(|(i, id)| by_position.get(&(r.first_position.0 + *i as u64)) == Some(id))
            .count();
        assert!(found == 0 || found == ids.len(), "part of an append: {r:?}");
        if found == 0 {
            assert!(*at < promoted, "lost after the promotion: {r:?}");
            lost.push(r);
        }
    }
    // A suffix: of what was acknowledged before the kill, nothing after
    // the first lost position survived.
    let first_lost = lost.iter().map(|r| r.first_position.0).min();
    let survivors_after: Vec<&AppendResult> = acked
        .iter()
        .filter(|(r, _, at)| *at < promoted && first_lost.is_some_and(|p| r.first_position.0 > p))
        .map(|(r, _, _)| r)
        .filter(|r| !lost.contains(r))
        .collect();
    assert!(
        survivors_after.is_empty(),
        "kept after a lost append: {survivors_after:?}"
    );
    // Nothing that no writer sent: every event is acknowledged or of an
    // append whose outcome was unknown.
    let known: HashSet<Uuid> = acked
        .iter()
        .flat_map(|(_, ids, _)| ids.iter().copied())
        .collect();
    let unknown = std::mem::take(&mut *unknown.lock().unwrap());
    assert!(
        all.iter()
            .all(|e| known.contains(&e.event_id) || unknown.contains(&e.event_id))
    );
    let lost_positions: HashSet<u64> = lost
        .iter()
        .flat_map(|r| r.first_position.0..=r.last_position.0)
        .collect();
    let mut reused: Vec<u64> = by_position
        .keys()
        .copied()
        .filter(|p| lost_positions.contains(p))
        .collect();
    reused.sort_unstable();
    store.close().await?;
    cluster.stop()?;
    Ok(Loss {
        acked: acked.len(),
        lost: lost.len(),
        unknown: unknown.len(),
        reused,
    })
}

// [D5] [M5] Relaxed appends (synchronous_commit off: a commit waits for
// neither the disk nor the standby) through a failover: what is lost is a
// suffix of whole acknowledged appends, and no lost position is handed out
// again (the reservation is committed synchronously, and the promoted
// server has emptied the UNLOGGED marker).
fn relaxed_failover_loses_at_most_a_suffix() -> TestResult {
    let loss = runtime().block_on(lossy_failover(
        Replication::Synchronous,
        Durability::Relaxed,
    ))?;
    eprintln!(
        "relaxed, synchronous standby: {} appends acknowledged, {} lost, {} of unknown outcome",
        loss.acked, loss.lost, loss.unknown
    );
    assert!(
        loss.reused.is_empty(),
        "positions handed out again: {:?}",
        loss.reused
    );
    Ok(())
}

// Why the standby must be synchronous: with an asynchronous one, a
// failover loses appends that Immediate acknowledged (the primary's WAL
// sender stopped for a moment before the kill), and their positions go to
// new events. (What the README's "Scaling out" says; each acknowledged
// append is still all there or all gone, and the loss a suffix.)
fn asynchronous_standby_loses_acknowledged_appends() -> TestResult {
    let loss = runtime().block_on(lossy_failover(
        Replication::Asynchronous,
        Durability::Immediate,
    ))?;
    eprintln!(
        "immediate, asynchronous standby: {} appends acknowledged, {} lost, {} of their positions now another event's",
        loss.acked,
        loss.lost,
        loss.reused.len()
    );
    assert!(
        loss.lost > 0,
        "nothing lost: the WAL sender was stopped 50 ms or more"
    );
    Ok(())
}

// The synchronous standby stops answering (its WAL receiver stopped): a
// commit waits for it, holding the head lock. Appends do not hang past
// write_timeout: the one whose commit waits is OutcomeUnknown, the next
// one Unavailable (the server gave up waiting for the lock). Once the
// standby answers again, the waiting commit completes and the exact
// retries succeed, each written once.
fn a_silent_standby_holds_writes_for_write_timeout_only() -> TestResult {
    runtime().block_on(async {
        let cluster = cluster(Replication::Synchronous)?;
        let store = Arc::new(
            annals_postgres::open(
                &cluster.conninfo(),
                PostgresOptions {
                    write_timeout: Duration::from_millis(1000),
                    ..options("silent")
                },
            )
            .await?,
        );
        store
            .append(&sid("before"), ExpectedVersion::NoStream, events(1))
            .await?;
        let receiver = blocking(|| cluster.standby_wal_receiver())?;
        signal("STOP", receiver);
        let waiting = Append::new(sid("a"), ExpectedVersion::NoStream, events(2));
        let started = Instant::now();
        match store.append_with(waiting.clone()).await {
            Err(e) if e.is_outcome_unknown() => {}
            other => panic!("the append whose commit waits for the standby: {other:?}"),
        }
        let next = Append::new(sid("b"), ExpectedVersion::NoStream, events(1));
        match store.append_with(next.clone()).await {
            Err(e) if e.is_unavailable() && e.to_string().contains("write_timeout") => {}
            other => panic!("the append behind it: {other:?}"),
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{:?}",
            started.elapsed()
        );
        signal("CONT", receiver);
        let a = store.append_with(waiting).await?;
        let b = store.append_with(next).await?;
        assert_eq!((a.first_version, a.last_version), (Version(0), Version(1)));
        assert_eq!(b.last_version, Version(0));
        assert!(b.first_position > a.last_position);
        assert_eq!(all_events(store.as_ref()).await?.len(), 4);
        store.close().await?;
        cluster.stop()?;
        Ok::<_, Failed>(())
    })
}

// Options that contradict each other are refused before connecting.
fn read_only_options_are_checked() -> TestResult {
    runtime().block_on(async {
        let both = PostgresOptions::from_params([
            ("read_only", "true"),
            ("target_session_attrs", "read-write"),
        ])?;
        match annals_postgres::open("host=/nonexistent user=x", both).await {
            Err(e)
                if e.invalid_reason()
                    .is_some_and(|r| matches!(r, InvalidReason::Conflict(_))) => {}
            other => panic!("read_only with read-write: {other:?}"),
        }
        for (key, value) in [
            ("target_session_attrs", "primary"),
            ("connect_timeout", "0"),
            ("write_timeout_ms", "-1"),
            ("head_poll_ms", "0"),
            ("write_timeout_ms", "18446744073709551615"),
            ("connect_timeout", "86401"),
            ("read_only", "maybe"),
        ] {
            let e = PostgresOptions::from_params([(key, value)]).unwrap_err();
            assert!(e.to_string().contains(key), "{e}");
        }
        // Nothing listens there: a typed, retryable error, soon.
        let started = Instant::now();
        match annals_postgres::open("host=/nonexistent user=x", PostgresOptions::default()).await {
            Err(e) if e.is_unavailable() => {}
            other => panic!("no server: {other:?}"),
        }
        assert!(started.elapsed() < FAIL_FAST);
        Ok::<_, Failed>(())
    })
}

fn main() -> ExitCode {
    let args = Arguments::from_args();
    type Test = (&'static str, fn() -> TestResult, bool);
    let tests: Vec<Test> = vec![
        (
            "failover_keeps_every_acknowledged_append",
            failover_keeps_every_acknowledged_append,
            false,
        ),
        (
            "unknown_outcome_is_retried_exactly_across_failover",
            unknown_outcome_is_retried_exactly_across_failover,
            false,
        ),
        ("reads_from_a_hot_standby", reads_from_a_hot_standby, false),
        (
            "relaxed_failover_loses_at_most_a_suffix",
            relaxed_failover_loses_at_most_a_suffix,
            false,
        ),
        (
            "asynchronous_standby_loses_acknowledged_appends",
            asynchronous_standby_loses_acknowledged_appends,
            false,
        ),
        (
            "a_silent_standby_holds_writes_for_write_timeout_only",
            a_silent_standby_holds_writes_for_write_timeout_only,
            false,
        ),
        (
            "read_only_options_are_checked",
            read_only_options_are_checked,
            false,
        ),
        ("failover_long", failover_long, true),
    ];
    let without_server = match support::without_server("replication test") {
        Ok(ignored) => ignored,
        Err(code) => return code,
    };
    let trials = tests
        .into_iter()
        .map(|(name, f, long)| Trial::test(name, f).with_ignored_flag(long || without_server))
        .collect();
    // Each test runs its own servers: one at a time, on two cores.
    let args = Arguments {
        test_threads: Some(1),
        ..args
    };
    libtest_mimic::run(&args, trials).exit_code()
}
