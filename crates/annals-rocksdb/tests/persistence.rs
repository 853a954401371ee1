//! [M5] Persistence: everything acknowledged is there, identical, after
//! close and reopen — and after the writing process is killed.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use annals_core::{Direction, Durability, ExpectedVersion, Position, StoreConfig, Uuid, Version};
use annals_rocksdb::{Compression, RocksDbOptions};
use common::{dump, event, open, populate, stream};

fn options(durability: Durability) -> RocksDbOptions {
    RocksDbOptions::with_config(StoreConfig {
        durability,
        ..StoreConfig::default()
    })
}

/// [M5] Close and reopen, several times, with writes in between: every
/// read gives what it gave before closing, and numbering goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reopen_after_close_keeps_everything() {
    for durability in [Durability::Immediate, Durability::Relaxed] {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store");
        let store = open(&path, options(durability)).await.unwrap();
        populate(&*store, 1, 150).await.unwrap();
        let before = dump(&*store).await.unwrap();
        assert!(before.forward.len() > 300);
        store.close().await.unwrap();
        drop(store);

        let store = open(&path, options(durability)).await.unwrap();
        assert_eq!(dump(&*store).await.unwrap(), before, "{durability:?}");
        // Writing on after a reopen: positions and versions continue.
        let written = store
            .append(&stream(1), ExpectedVersion::Any, vec![event(1), event(2)])
            .await
            .unwrap();
        assert_eq!(written.first_position, Position(before.head.0 + 1));
        populate(&*store, 2, 40).await.unwrap();
        let second = dump(&*store).await.unwrap();
        store.close().await.unwrap();
        drop(store);

        let store = open(&path, options(durability)).await.unwrap();
        assert_eq!(dump(&*store).await.unwrap(), second, "{durability:?}");
        store.close().await.unwrap();
    }
}

/// [M5] Options that change only how data is stored (compression, cache,
/// memtable size) do not change what a reopened store reads — even when
/// they differ between two opens of the same store.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reopen_with_other_storage_options_keeps_everything() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store");
    let first = RocksDbOptions {
        compression: Compression::Zstd,
        write_buffer_bytes: 64 << 10, // flushes to table files as it goes
        ..RocksDbOptions::default()
    };
    let store = open(&path, first).await.unwrap();
    populate(&*store, 3, 200).await.unwrap();
    store.compact().await.unwrap();
    let before = dump(&*store).await.unwrap();
    store.close().await.unwrap();
    drop(store);
    let second = RocksDbOptions {
        compression: Compression::None,
        block_cache_bytes: 0,
        ..RocksDbOptions::default()
    };
    let store = open(&path, second).await.unwrap();
    assert_eq!(dump(&*store).await.unwrap(), before);
    store.close().await.unwrap();
}

/// [M5] A store dropped without `close` is closed by its writer thread
/// (which syncs and flushes as `close` does): everything is there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reopen_after_drop_without_close_keeps_everything() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store");
    let store = open(&path, options(Durability::Relaxed)).await.unwrap();
    populate(&*store, 4, 60).await.unwrap();
    let before = dump(&*store).await.unwrap();
    drop(store);
    // The writer thread releases the folder shortly after the drop.
    let deadline = Instant::now() + Duration::from_secs(20);
    let store = loop {
        match open(&path, options(Durability::Relaxed)).await {
            Ok(store) => break store,
            Err(e) if Instant::now() < deadline => {
                let _ = e;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(e) => panic!("the dropped store never released its folder: {e}"),
        }
    };
    assert_eq!(dump(&*store).await.unwrap(), before);
    store.close().await.unwrap();
}

const CHILD_DIR: &str = "ANNALS_ROCKSDB_CHILD_DIR";
const CHILD_DURABILITY: &str = "ANNALS_ROCKSDB_CHILD_DURABILITY";
const CHILD_SEED: &str = "ANNALS_ROCKSDB_CHILD_SEED";

/// Not a test of its own: the writer process of
/// `killed_writer_loses_nothing_acknowledged`, which runs this binary with
/// `--exact child_writer` and the store's folder in `ANNALS_ROCKSDB_CHILD_DIR`.
/// Appends until killed, printing one `ACK` line per acknowledged append.
/// Without the variable it does nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn child_writer() {
    let Ok(dir) = std::env::var(CHILD_DIR) else {
        return;
    };
    let durability = match std::env::var(CHILD_DURABILITY).as_deref() {
        Ok("relaxed") => Durability::Relaxed,
        _ => Durability::Immediate,
    };
    let seed: u64 = std::env::var(CHILD_SEED).unwrap().parse().unwrap();
    let store = open(std::path::Path::new(&dir), options(durability))
        .await
        .unwrap();
    let mut rng = common::Rng::new(seed);
    let mut stdout = std::io::stdout();
    // Bounded, in case the parent dies without killing it.
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut n = seed * 1_000_000;
    while Instant::now() < deadline {
        let s = rng.below(common::STREAMS);
        let events: Vec<_> = (0..1 + rng.below(3)).map(|k| event(n + k)).collect();
        n += events.len() as u64;
        let ids: Vec<String> = events.iter().map(|e| e.event_id.to_string()).collect();
        let written = store
            .append(&stream(s), ExpectedVersion::Any, events)
            .await
            .unwrap();
        writeln!(
            stdout,
            "ACK {} {} {}",
            written.first_position.0,
            written.last_position.0,
            ids.join(",")
        )
        .unwrap();
        stdout.flush().unwrap();
    }
}

/// Runs the child writer on `dir` until it has acknowledged `acks` appends,
/// kills it (SIGKILL: no destructor, no close) and answers what it
/// acknowledged: position → event id.
fn run_and_kill(
    dir: &std::path::Path,
    durability: &str,
    seed: u64,
    acks: usize,
) -> Vec<(u64, Uuid)> {
    let exe = std::env::current_exe().unwrap();
    let mut child = Command::new(exe)
        .args(["--exact", "child_writer", "--nocapture", "--test-threads=1"])
        .env(CHILD_DIR, dir)
        .env(CHILD_DURABILITY, durability)
        .env(CHILD_SEED, seed.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut acked = Vec::new();
    let mut count = 0;
    for line in BufReader::new(stdout).lines() {
        let Ok(line) = line else { break };
        // libtest may print "test child_writer ... " before the first one.
        let Some((_, rest)) = line.split_once("ACK ") else {
            continue;
        };
        let mut parts = rest.split(' ');
        let first: u64 = parts.next().unwrap().parse().unwrap();
        let last: u64 = parts.next().unwrap().parse().unwrap();
        let ids: Vec<Uuid> = parts
            .next()
            .unwrap()
            .split(',')
            .map(|id| id.parse().unwrap())
            .collect();
        assert_eq!(last - first + 1, ids.len() as u64);
        acked.extend((first..=last).zip(ids));
        count += 1;
        if count == acks {
            break;
        }
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(count, acks, "the child writer stopped early");
    acked
}

/// [M5] [D5] A writer process killed at some instant, again and again:
/// after each kill, every append it acknowledged is there, event for event
/// at its position, and no position is handed out twice. (With
/// `Relaxed`, RocksDB hands every write to the OS before returning, so a
/// killed process loses nothing either; only a machine crash could.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_writer_loses_nothing_acknowledged() {
    for durability in ["immediate", "relaxed"] {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store");
        let mut acked: BTreeMap<u64, Uuid> = BTreeMap::new();
        for (round, acks) in [40usize, 5, 120, 1, 70].into_iter().enumerate() {
            let seed = round as u64 + 1;
            let path2 = path.clone();
            let got =
                tokio::task::spawn_blocking(move || run_and_kill(&path2, durability, seed, acks))
                    .await
                    .unwrap();
            for (position, id) in got {
                assert!(
                    acked.insert(position, id).is_none(),
                    "{durability}: position {position} handed out twice"
                );
            }
            let store = open(&path, RocksDbOptions::default()).await.unwrap();
            let page = store
                .read_all(Position(1), 10_000, Direction::Forward, None)
                .await
                .unwrap();
            let found: BTreeMap<u64, Uuid> = page
                .events
                .iter()
                .map(|e| (e.position.0, e.event_id))
                .collect();
            for (position, id) in &acked {
                assert_eq!(
                    found.get(position),
                    Some(id),
                    "{durability}, round {round}: acknowledged position {position} is not there"
                );
            }
            // Nothing but acknowledged events, or ones whose answer the kill
            // cut off, which can only follow the last acknowledged one.
            let last_acked = acked.keys().next_back().copied().unwrap_or(0);
            for (position, id) in &found {
                if let Some(expected) = acked.get(position) {
                    assert_eq!(id, expected);
                } else {
                    assert!(
                        *position > last_acked,
                        "{durability}: unknown event at {position}"
                    );
                }
            }
            // Versions stay gap-free per stream.
            for s in 0..common::STREAMS {
                if let Ok(last) = store.stream_version(&stream(s)).await {
                    let page = store
                        .read_stream(&stream(s), Version(0), 10_000, Direction::Forward)
                        .await
                        .unwrap();
                    assert_eq!(page.events.len() as u64, last.0 + 1);
                }
            }
            // Unacknowledged survivors count as handed out too.
            for (position, id) in found {
                acked.entry(position).or_insert(id);
            }
            store.close().await.unwrap();
        }
    }
}
