//! [M6] A store written, closed, then with bytes of its files overwritten
//! at random places: opening it and reading everything gives either exactly
//! what was written, or `Error::Corruption` / `Error::Backend` — never a
//! panic, never a wrong event.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;
use std::fs::{self, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use annals_core::kv::support::BackendOptions;
use annals_core::{Durability, Error, RecordedEvent, StoreConfig};
use annals_rocksdb::RocksDbOptions;
use common::{Dump, Rng, append_phase, copy_dir, dump, maintenance_phase, open, populate};

/// Deterministic trials over a cleanly closed store.
const CLEAN_TRIALS: u64 = 144;
/// Deterministic trials over a crash image (data still in the WAL).
const CRASH_TRIALS: u64 = 60;
/// Trials damaging the crash image's WAL, reopened with `Relaxed`.
const RELAXED_WAL_TRIALS: u64 = 20;
/// Trials cutting the crash image's WAL short (a torn last write).
const TRUNCATE_TRIALS: u64 = 20;

/// The kinds of file in a RocksDB folder, damaged in turn.
const KINDS: [&str; 7] = [
    "sst", "wal", "MANIFEST", "CURRENT", "OPTIONS", "mark", "other",
];

fn kind_of(name: &str) -> &'static str {
    if name.ends_with(".sst") {
        "sst"
    } else if name.ends_with(".log") {
        "wal"
    } else if name.starts_with("MANIFEST-") {
        "MANIFEST"
    } else if name == "CURRENT" {
        "CURRENT"
    } else if name.starts_with("OPTIONS-") {
        "OPTIONS"
    } else if name == "ANNALS-CLOSED" {
        "mark" // annals' own close mark
    } else {
        "other" // IDENTITY, RocksDB's diagnostic LOG, …
    }
}

/// The non-empty files of a folder, by kind.
fn files_by_kind(dir: &Path) -> BTreeMap<&'static str, Vec<PathBuf>> {
    let mut by_kind: BTreeMap<&'static str, Vec<PathBuf>> = BTreeMap::new();
    let mut entries: Vec<_> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| e.metadata().unwrap().len() > 0 && e.file_type().unwrap().is_file())
        .collect();
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let name = entry.file_name().to_string_lossy().into_owned();
        by_kind
            .entry(kind_of(&name))
            .or_default()
            .push(entry.path());
    }
    by_kind
}

/// XORs `count` bytes at random places of `file` with random non-zero
/// bytes (so each really changes); answers the places.
fn damage(file: &Path, rng: &mut Rng, count: u64) -> Vec<u64> {
    let mut f = OpenOptions::new()
        .read(true)
        .write(true)
        .open(file)
        .unwrap();
    let len = f.metadata().unwrap().len();
    let mut places = Vec::new();
    for _ in 0..count {
        let at = rng.below(len);
        let mut byte = [0u8];
        f.seek(SeekFrom::Start(at)).unwrap();
        f.read_exact(&mut byte).unwrap();
        byte[0] ^= 1 + rng.below(255) as u8;
        f.seek(SeekFrom::Start(at)).unwrap();
        f.write_all(&byte).unwrap();
        places.push(at);
    }
    f.sync_all().unwrap();
    places
}

/// Opens the damaged copy with `durability` and reads everything.
async fn open_and_read(path: &Path, durability: Durability) -> Result<Dump, Error> {
    let options = RocksDbOptions::with_config(StoreConfig {
        durability,
        ..StoreConfig::default()
    });
    let store = open(path, options).await?;
    let read = dump(&*store).await;
    let closed = store.close().await;
    let read = read?;
    closed?;
    Ok(read)
}

/// Whether every event of `got` is one that was written, identical, at its
/// position (`history`: every event ever written, by position).
fn no_wrong_event(got: &Dump, history: &BTreeMap<u64, RecordedEvent>) -> bool {
    got.forward
        .iter()
        .all(|e| history.get(&e.position.0) == Some(e))
}

/// What opening and reading a damaged copy may give.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Expect {
    /// Exactly what was written, or `Corruption` / `Backend`.
    SameOrError,
    /// Write-ahead log damage replayed with `Relaxed` (point-in-time
    /// recovery): possibly the store as of an earlier commit, with no wrong
    /// event; or `Corruption` / `Backend`.
    EarlierOrError,
    /// A write-ahead log cut off at its end (a torn last write): the store
    /// as of an earlier commit, with no wrong event — never an error.
    Earlier,
}

#[derive(Default, Debug)]
struct Tally {
    same: usize,
    earlier: usize,
    corruption: usize,
    backend: usize,
}

static PANICS: AtomicUsize = AtomicUsize::new(0);

/// A store written and closed cleanly, and a crash image of another (its
/// files copied while it was open: every commit synced to the write-ahead
/// log, none flushed to table files).
struct Templates {
    clean: PathBuf,
    clean_dump: Dump,
    crash: PathBuf,
    crash_dump: Dump,
    /// Every event the crash image's store ever held, by position.
    crash_history: BTreeMap<u64, RecordedEvent>,
}

fn make_templates(runtime: &tokio::runtime::Runtime, root: &Path) -> Templates {
    let clean = root.join("clean");
    let clean_dump = runtime.block_on(async {
        let store = open(&clean, RocksDbOptions::default()).await.unwrap();
        populate(&*store, 7, 150).await.unwrap();
        let d = dump(&*store).await.unwrap();
        store.close().await.unwrap();
        d
    });
    let crash = root.join("crash");
    let (crash_dump, crash_history) = runtime.block_on(async {
        let live = root.join("live");
        let store = open(&live, RocksDbOptions::default()).await.unwrap();
        let n = append_phase(&*store, 8, 150).await.unwrap();
        let mut history: BTreeMap<u64, RecordedEvent> = dump(&*store)
            .await
            .unwrap()
            .forward
            .into_iter()
            .map(|e| (e.position.0, e))
            .collect();
        maintenance_phase(&*store, n).await.unwrap();
        let d = dump(&*store).await.unwrap();
        for e in &d.forward {
            history.insert(e.position.0, e.clone());
        }
        copy_dir(&live, &crash);
        store.close().await.unwrap();
        (d, history)
    });
    Templates {
        clean,
        clean_dump,
        crash,
        crash_dump,
        crash_history,
    }
}

/// [M6] [M5] Bytes of a cleanly closed store (everything in table files)
/// and of a crash image (everything still in the write-ahead log)
/// overwritten at random places, in every kind of file, over 244
/// deterministic trials; and the crash image's write-ahead log cut at
/// random places (a torn last write), which must reopen.
#[test]
fn damaged_files_are_corruption_or_backend_never_a_panic_or_a_wrong_event() {
    // Counts every panic, on any thread (the blocking pool, the writer):
    // tokio and the store turn some into errors, which must not hide them.
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        PANICS.fetch_add(1, Ordering::SeqCst);
        previous(info);
    }));
    let runtime = Arc::new(
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap(),
    );
    let root = tempfile::tempdir().unwrap();
    let t = make_templates(&runtime, root.path());
    {
        // Undamaged, both read back exactly, with either durability.
        for (source, expected) in [(&t.clean, &t.clean_dump), (&t.crash, &t.crash_dump)] {
            for durability in [Durability::Immediate, Durability::Relaxed] {
                let check = root.path().join("check");
                copy_dir(source, &check);
                let got = runtime.block_on(open_and_read(&check, durability));
                assert_eq!(&got.unwrap(), expected, "{source:?} {durability:?}");
                fs::remove_dir_all(&check).unwrap();
            }
        }
    }

    let mut tallies: BTreeMap<String, Tally> = BTreeMap::new();
    let mut failures = Vec::new();
    // (template, trial number, durability, kinds damaged, truncate the WAL)
    let mut plan = Vec::new();
    plan.extend((0..CLEAN_TRIALS).map(|n| ("clean", n, Durability::Immediate, &KINDS[..], false)));
    plan.extend(
        (0..CRASH_TRIALS).map(|n| ("crash", 1000 + n, Durability::Immediate, &KINDS[..], false)),
    );
    plan.extend(
        (0..RELAXED_WAL_TRIALS)
            .map(|n| ("crash", 2000 + n, Durability::Relaxed, &["wal"][..], false)),
    );
    plan.extend(
        (0..TRUNCATE_TRIALS)
            .map(|n| ("crash", 3000 + n, Durability::Immediate, &["wal"][..], true)),
    );
    for (template, trial, durability, kinds, truncate) in plan {
        let (source, expected) = match template {
            "clean" => (&t.clean, &t.clean_dump),
            _ => (&t.crash, &t.crash_dump),
        };
        let by_kind = files_by_kind(source);
        let present: Vec<&str> = kinds
            .iter()
            .copied()
            .filter(|k| by_kind.contains_key(k))
            .collect();
        assert!(
            !present.is_empty(),
            "{template} has no file of kinds {kinds:?}"
        );
        let mut rng = Rng::new(trial);
        let kind = present[(trial as usize) % present.len()];
        let files = &by_kind[kind];
        let file = &files[rng.below(files.len() as u64) as usize];
        let target = root.path().join(format!("trial-{trial}"));
        copy_dir(source, &target);
        let name = file.file_name().unwrap();
        let damaged = target.join(name);
        let (how, expect) = if truncate {
            let len = fs::metadata(&damaged).unwrap().len();
            let keep = rng.below(len);
            OpenOptions::new()
                .write(true)
                .open(&damaged)
                .unwrap()
                .set_len(keep)
                .unwrap();
            (format!("cut to {keep} of {len} bytes"), Expect::Earlier)
        } else {
            let count = 1 + rng.below(8);
            let places = damage(&damaged, &mut rng, count);
            let expect = if durability == Durability::Relaxed {
                Expect::EarlierOrError
            } else {
                Expect::SameOrError
            };
            (format!("damaged at {places:?}"), expect)
        };
        let what = format!(
            "trial {trial} ({template}, {durability:?}): {} {how}",
            name.to_string_lossy()
        );

        let panics_before = PANICS.load(Ordering::SeqCst);
        let rt = Arc::clone(&runtime);
        let outcome = catch_unwind(AssertUnwindSafe(|| {
            rt.block_on(open_and_read(&target, durability))
        }));
        let label = format!(
            "{template:5} {:9} {kind:8}{}",
            format!("{durability:?}"),
            if truncate { " cut" } else { "" }
        );
        let tally = tallies.entry(label).or_default();
        match (outcome, expect) {
            (Err(_), _) => failures.push(format!("{what}: panicked")),
            (Ok(Ok(got)), _) if got == *expected => tally.same += 1,
            (Ok(Ok(got)), Expect::EarlierOrError | Expect::Earlier)
                if no_wrong_event(&got, &t.crash_history) =>
            {
                tally.earlier += 1
            }
            (Ok(Ok(got)), _) => failures.push(format!(
                "{what}: read {} events, not the {} written (a wrong result)",
                got.forward.len(),
                expected.forward.len()
            )),
            (Ok(Err(e)), Expect::Earlier) => {
                failures.push(format!("{what}: a torn tail must reopen, got {e}"))
            }
            (Ok(Err(Error::Corruption { .. })), _) => tally.corruption += 1,
            (Ok(Err(Error::Backend { .. })), _) => tally.backend += 1,
            (Ok(Err(other)), _) => failures.push(format!("{what}: unexpected error {other:?}")),
        }
        if PANICS.load(Ordering::SeqCst) != panics_before {
            failures.push(format!("{what}: something panicked (see above)"));
        }
        let _ = fs::remove_dir_all(&target);
    }
    for (label, tally) in &tallies {
        println!("{label} {tally:?}");
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    // Damage was seen in every kind of file RocksDB reads to open.
    for kind in ["sst", "MANIFEST", "CURRENT", "mark"] {
        let label = format!("{:5} {:9} {kind:8}", "clean", "Immediate");
        let tally = &tallies[&label];
        assert!(tally.corruption + tally.backend > 0, "{label}: {tally:?}");
    }
    let wal = &tallies[&format!("{:5} {:9} {:8}", "crash", "Immediate", "wal")];
    assert!(wal.corruption + wal.backend > 0, "crash WAL: {wal:?}");
}
