//! kill -9 crash tests (SPEC M5, D5, A1, A6, R4): the crash writer appends
//! from several tasks, to shared streams and in batches, printing every
//! acknowledged append; it is killed with SIGKILL at a random instant, the
//! store is reopened and checked against what was acknowledged, and the
//! writer starts again on the same store. Each test kills it
//! `ANNALS_CRASH_KILLS` times (default 20); the ignored `long_mode` test
//! runs 200 kills per backend and durability:
//!
//! ```text
//! cargo test --workspace --release --test crash -- --ignored --nocapture
//! ```
//!
//! Checked after every kill:
//! - `Immediate`: every acknowledged event is there, at its acknowledged
//!   stream, version and position, with its data byte for byte;
//! - `Relaxed`: the acknowledged appends still there are a prefix, in commit
//!   order, of those acknowledged (only a suffix of whole appends is lost),
//!   and what is there is exact; a lost append's positions are never
//!   handed out again;
//! - both: no append (or batch) is partly there; every stream's versions
//!   are 0, 1, 2, … in commit order; positions ascend.
#![allow(clippy::unwrap_used, missing_docs)]

use std::collections::{HashMap, HashSet};
use std::process::Command;
use std::time::Duration;

use annals::{Direction, Position, Uuid};
use annals_backend_tests::crash::run_and_kill_after_ready;
use annals_backend_tests::workload::Rng;
use annals_reliability::{Ack, Membership, payload};

/// Where an event was found.
struct Found {
    stream: String,
    version: u64,
    position: u64,
}

fn kills_per_test() -> usize {
    std::env::var("ANNALS_CRASH_KILLS")
        .ok()
        .and_then(|k| k.parse().ok())
        .unwrap_or(20)
}

/// Runs the writer until it printed `ready` and then for `run_ms`, kills
/// it with SIGKILL, and returns the acknowledgements it printed.
fn run_and_kill(url: &str, run_ms: u64) -> Vec<Ack> {
    let mut writer = Command::new(env!("CARGO_BIN_EXE_annals-crash-writer"));
    writer.args([url, "4"]);
    run_and_kill_after_ready(writer, "ready", Duration::from_millis(run_ms), Ack::parse)
}

/// Reads the whole store and checks what holds whatever was acknowledged:
/// exact data, whole appends, gap-free versions, ascending positions.
async fn read_and_check(store: &annals::Store) -> HashMap<Uuid, Found> {
    let mut found = HashMap::new();
    let mut appends: HashMap<Uuid, (u32, HashSet<u32>)> = HashMap::new();
    let mut next_version: HashMap<String, u64> = HashMap::new();
    let mut from = Position(0);
    let mut last_position = 0;
    loop {
        let page = store
            .read_all(from, 1000, Direction::Forward, None)
            .await
            .unwrap();
        for e in &page.events {
            assert!(e.position.0 > last_position, "positions do not ascend");
            last_position = e.position.0;
            assert_eq!(
                e.data,
                payload(e.event_id),
                "data of {} differs",
                e.event_id
            );
            let m = Membership::from_metadata(&e.metadata)
                .unwrap_or_else(|| panic!("metadata of {} is not the writer's", e.event_id));
            let expected = next_version
                .entry(e.stream_id.as_str().to_string())
                .or_insert(0);
            assert_eq!(
                e.stream_version.0, *expected,
                "{} is not gap-free in commit order",
                e.stream_id
            );
            *expected += 1;
            let (count, indexes) = appends.entry(m.append).or_insert((m.count, HashSet::new()));
            assert_eq!(*count, m.count);
            assert!(
                indexes.insert(m.index),
                "event {} of {} twice",
                m.index,
                m.append
            );
            found.insert(
                e.event_id,
                Found {
                    stream: e.stream_id.as_str().to_string(),
                    version: e.stream_version.0,
                    position: e.position.0,
                },
            );
        }
        match page.events.last() {
            Some(last) if page.events.len() == 1000 => from = last.position.next(),
            _ => break,
        }
    }
    for (append, (count, indexes)) in &appends {
        assert_eq!(
            indexes.len() as u32,
            *count,
            "append {append} is partly there: {} of {count} events",
            indexes.len()
        );
    }
    found
}

/// Whether `ack` is there exactly as acknowledged (`false`: not at all);
/// panics if it is there in part or elsewhere.
fn ack_is_there(ack: &Ack, found: &HashMap<Uuid, Found>) -> bool {
    let there: Vec<Option<&Found>> = ack.ids.iter().map(|id| found.get(id)).collect();
    if there.iter().all(Option::is_none) {
        return false;
    }
    for (i, f) in there.iter().enumerate() {
        let f = f.unwrap_or_else(|| panic!("acknowledged append {} is partly there", ack.append));
        assert_eq!(f.stream, ack.stream, "event {} moved stream", ack.ids[i]);
        assert_eq!(
            f.version,
            ack.first_version + i as u64,
            "event {} moved version",
            ack.ids[i]
        );
        assert_eq!(
            f.position, ack.positions[i],
            "event {} moved position",
            ack.ids[i]
        );
    }
    true
}

/// Kills the writer `kills` times on a fresh store at `url`, checking after
/// each kill; returns (acknowledged events, events lost).
fn kill_repeatedly(url: &str, relaxed: bool, kills: usize, seed: u64) -> (u64, u64) {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let mut rng = Rng::new(seed);
    // Acknowledgements that must stay forever (for Relaxed: those found
    // after the kill that followed them).
    let mut kept: Vec<Ack> = Vec::new();
    // Positions of lost appends: never handed out again (D5).
    let mut lost_positions: HashSet<u64> = HashSet::new();
    let (mut acked_events, mut lost_events) = (0u64, 0u64);
    for kill in 0..kills {
        let mut acks = run_and_kill(url, 10 + rng.below(190));
        acked_events += acks.iter().map(|a| a.ids.len() as u64).sum::<u64>();
        let found = runtime.block_on(async {
            let store = annals::open(url).await.unwrap_or_else(|e| {
                panic!("kill {kill} (seed {seed}): reopening {url} failed: {e}")
            });
            let found = read_and_check(&store).await;
            store.close().await.unwrap();
            found
        });
        for f in found.values() {
            assert!(
                !lost_positions.contains(&f.position),
                "kill {kill} (seed {seed}): position {} of a lost append was handed out again",
                f.position
            );
        }
        for ack in &kept {
            assert!(
                ack_is_there(ack, &found),
                "kill {kill} (seed {seed}): an append kept before is gone: {ack:?}"
            );
        }
        // In commit order: with Relaxed, once one is missing, all later
        // ones must be missing too.
        acks.sort_by_key(|a| a.positions[0]);
        let mut missing_from: Option<u64> = None;
        for ack in acks {
            let there = ack_is_there(&ack, &found);
            if !relaxed {
                assert!(
                    there,
                    "kill {kill} (seed {seed}): acknowledged append lost: {ack:?}"
                );
            }
            match (there, missing_from) {
                (true, Some(p)) => panic!(
                    "kill {kill} (seed {seed}): append at position {} kept after one lost at {p}",
                    ack.positions[0]
                ),
                (true, None) => kept.push(ack),
                (false, _) => {
                    missing_from.get_or_insert(ack.positions[0]);
                    lost_events += ack.ids.len() as u64;
                    lost_positions.extend(ack.positions.iter().copied());
                }
            }
        }
    }
    (acked_events, lost_events)
}

fn trial(driver: &annals::driver::Driver, relaxed: bool, kills: usize) {
    let scheme = driver.scheme;
    let dir = tempfile::tempdir().unwrap();
    let durability = if relaxed { "relaxed" } else { "immediate" };
    let url = annals_reliability::store_url(
        driver,
        dir.path(),
        "store",
        &format!("durability={durability}"),
    );
    let seed = std::env::var("ANNALS_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| Uuid::now_v7().as_u128() as u64);
    let (acked, lost) = kill_repeatedly(&url, relaxed, kills, seed);
    println!(
        "{scheme} {durability}: {kills} kills survived, {acked} acknowledged events, {lost} lost (seed {seed})"
    );
    if !relaxed {
        assert_eq!(lost, 0);
    }
}

/// Every backend that keeps files, one after the other.
#[test]
fn immediate_survives_kill_9() {
    for driver in annals_reliability::backends_on_disk() {
        trial(driver, false, kills_per_test());
    }
}

#[test]
fn relaxed_loses_at_most_a_suffix() {
    for driver in annals_reliability::backends_on_disk() {
        trial(driver, true, kills_per_test());
    }
}

/// 200 kills per backend and durability.
#[test]
#[ignore = "long mode: cargo test --workspace --release --test crash -- --ignored --nocapture"]
fn long_mode() {
    for driver in annals_reliability::backends_on_disk() {
        for relaxed in [false, true] {
            trial(driver, relaxed, 200);
        }
    }
}
