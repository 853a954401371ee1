//! The process is killed at a random instant while appending ([M5], [D5]):
//! with `Immediate` every acknowledged append is there after reopening;
//! with `Relaxed` what is there is a prefix of the appends, of whole
//! appends; with both, no position is handed out twice.
//!
//! The test runs its own binary again as the child (the `crash_child` test,
//! which does nothing unless `ANNALS_REDB_CRASH_CHILD` is set).
#![allow(missing_docs, clippy::unwrap_used)]

mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use annals_core::{Durability, ExpectedVersion, NewEvent, Position, StoreConfig};
use annals_redb::RedbOptions;
use common::{Rng, dump, open, stream};

const CHILD_ENV: &str = "ANNALS_REDB_CRASH_CHILD";

fn options(durability: Durability) -> RedbOptions {
    RedbOptions::with_config(StoreConfig {
        durability,
        ..StoreConfig::default()
    })
}

/// Append `i` has `1 + i % 3` events.
fn append_events(i: u64) -> Vec<NewEvent> {
    (0..1 + i % 3)
        .map(|k| {
            NewEvent::builder("Counted")
                .data(format!("{i}/{k}").into_bytes())
                .build()
        })
        .collect()
}

/// The child: appends until it is killed, printing `@ack i first last` on
/// stdout once append `i` has returned.
#[test]
fn crash_child() {
    let Ok(spec) = std::env::var(CHILD_ENV) else {
        return;
    };
    let (durability, path) = spec.split_once('|').unwrap();
    let durability = durability.parse().unwrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let store = open(Path::new(path), options(durability)).unwrap();
        for i in 0.. {
            let r = store
                .append(&stream(i % 4), ExpectedVersion::Any, append_events(i))
                .await
                .unwrap();
            println!("@ack {i} {} {}", r.first_position.0, r.last_position.0);
        }
    });
}

/// Runs a child against `path`, kills it `delay` after its first
/// acknowledged append, and returns the acknowledgements `(i, first, last)`.
fn run_and_kill(path: &Path, durability: Durability, delay: Duration) -> Vec<(u64, u64, u64)> {
    let name = match durability {
        Durability::Immediate => "immediate",
        Durability::Relaxed => "relaxed",
    };
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["crash_child", "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, format!("{name}|{}", path.display()))
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            // libtest may have printed the start of its own line before ours.
            let Some((_, rest)) = line.split_once("@ack ") else {
                continue;
            };
            let nums: Vec<u64> = rest.split(' ').map(|n| n.parse().unwrap()).collect();
            if tx.send((nums[0], nums[1], nums[2])).is_err() {
                break;
            }
        }
    });
    let first = rx
        .recv_timeout(Duration::from_secs(60))
        .expect("the child never acknowledged");
    std::thread::sleep(delay);
    child.kill().unwrap();
    child.wait().unwrap();
    reader.join().unwrap();
    let mut acks = vec![first];
    acks.extend(rx.try_iter());
    acks
}

async fn check_after_kill(durability: Durability, seed: u64) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.redb");
    let mut rng = Rng::new(seed);
    let delay = Duration::from_millis(rng.below(1500));
    let acks = run_and_kill(&path, durability, delay);
    let what = format!("{durability:?}, seed {seed}, {} acks", acks.len());

    let store = open(&path, options(durability)).unwrap();
    let d = dump(&*store).await.unwrap();
    // The events found, grouped by append, in position order: appends
    // 0, 1, 2, … each whole, with the positions they were acknowledged with.
    let mut next_append = 0u64;
    let mut events = d.forward.iter().peekable();
    while let Some(e) = events.next() {
        let text = String::from_utf8(e.data.clone()).unwrap();
        assert_eq!(
            text,
            format!("{next_append}/0"),
            "{what}: append {next_append} is missing or partial"
        );
        let count = 1 + next_append % 3;
        let first = e.position;
        for k in 1..count {
            let e = events
                .next()
                .unwrap_or_else(|| panic!("{what}: append {next_append} is partial"));
            assert_eq!(e.data, format!("{next_append}/{k}").into_bytes(), "{what}");
            assert_eq!(e.position, Position(first.0 + k), "{what}");
        }
        if let Some(&(i, f, l)) = acks.get(next_append as usize) {
            assert_eq!(i, next_append);
            assert_eq!(
                (first.0, first.0 + count - 1),
                (f, l),
                "{what}: append {i} moved"
            );
        }
        next_append += 1;
    }
    let acked = acks.len() as u64;
    if durability == Durability::Immediate {
        assert!(
            next_append >= acked,
            "{what}: only {next_append} appends survived"
        );
    }
    // No position is handed out again, even one a crash lost.
    let max_acked = acks.iter().map(|a| a.2).max().unwrap();
    let r = store
        .append(&stream(0), ExpectedVersion::Any, append_events(0))
        .await
        .unwrap();
    assert!(
        r.first_position.0 > max_acked,
        "{what}: position {} reused",
        r.first_position.0
    );
    store.close().await.unwrap();
    eprintln!("{what}: {next_append} appends survived");
}

// [M5] [D5]
#[tokio::test(flavor = "multi_thread")]
async fn killed_while_appending_immediate_loses_nothing_acknowledged_m5() {
    for seed in 0..4 {
        check_after_kill(Durability::Immediate, seed).await;
    }
}

// [M5] [D5]
#[tokio::test(flavor = "multi_thread")]
async fn killed_while_appending_relaxed_loses_a_suffix_of_whole_appends_d5() {
    for seed in 0..4 {
        check_after_kill(Durability::Relaxed, seed).await;
    }
}
