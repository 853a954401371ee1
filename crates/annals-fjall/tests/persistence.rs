//! fjall's store under kill -9 ([M5], [D5]) and damaged bytes ([M6]): the
//! shared trials of `annals_backend_tests::crash` and `::damage`.
#![allow(missing_docs, clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use annals_backend_tests::damage::{DamageTrials, any_file};
use annals_backend_tests::workload::Rng;
use annals_core::kv::support::BackendOptions;
use annals_core::{LogBackend, Result, StoreConfig};
use annals_fjall::FjallOptions;

fn open(path: &Path, config: StoreConfig) -> Result<Arc<dyn LogBackend>> {
    Ok(Arc::new(annals_fjall::open(
        path,
        FjallOptions::with_config(config),
    )?))
}

// [M5] [D5]
// [M5] [D5]
annals_backend_tests::kill_tests!(open, 4);

/// Whether `path` is one of lsm-tree's version files (`v0`, `v1`…, the
/// list of a tree's tables).
fn is_version_file(path: &Path) -> bool {
    path.file_name()
        .and_then(|name| name.to_str())
        .and_then(|name| name.strip_prefix('v'))
        .is_some_and(|id| !id.is_empty() && id.bytes().all(|b| b.is_ascii_digit()))
}

/// Any file but lsm-tree's version files (see the ignored test below).
fn not_a_version_file(files: &[(PathBuf, Vec<u8>)], rng: &mut Rng) -> usize {
    let others: Vec<usize> = (0..files.len())
        .filter(|&i| !is_version_file(&files[i].0))
        .collect();
    others[any_file(
        &others.iter().map(|&i| files[i].clone()).collect::<Vec<_>>(),
        rng,
    )]
}

/// A version file, at random.
fn a_version_file(files: &[(PathBuf, Vec<u8>)], rng: &mut Rng) -> usize {
    let versions: Vec<usize> = (0..files.len())
        .filter(|&i| is_version_file(&files[i].0))
        .collect();
    assert!(!versions.is_empty(), "no version file among {files:?}");
    versions[usize::try_from(rng.below(versions.len() as u64)).unwrap()]
}

// [M6] Damaged bytes in fjall's journal, tables, its other metadata or
// annals' marker: an error, or the original store — never a panic, never a
// wrong event. fjall's recovery stops at a damaged journal entry and drops
// what follows, so events may be missing.
#[tokio::test(flavor = "multi_thread")]
async fn damaged_files_are_errors_never_panics_nor_wrong_events_m6() {
    let outcomes = DamageTrials::new(|path| open(path, StoreConfig::default()))
        .pick(not_a_version_file)
        .incomplete_allowed(true)
        .run(11, 40)
        .await;
    outcomes.print("damaged fjall files");
    assert!(
        outcomes.corruption + outcomes.backend + outcomes.incomplete > 0,
        "{outcomes:?}"
    );
}

// [M6] A known gap of the engine, not of annals: lsm-tree 3.1 (under fjall
// 3.1) sizes a vector by a count read from a damaged version file
// (`version::recovery::recover`: `Vec::with_capacity(blob_file_count)`),
// and the failed allocation aborts the process — no error to catch. Run it
// with `--ignored` to see whether a newer fjall fixed it.
#[tokio::test(flavor = "multi_thread")]
#[ignore = "known gap: lsm-tree 3.1 aborts on a damaged version file (allocation sized from disk)"]
async fn damaged_version_files_are_errors_never_aborts_m6() {
    let outcomes = DamageTrials::new(|path| open(path, StoreConfig::default()))
        .pick(a_version_file)
        .incomplete_allowed(true)
        .run(11, 40)
        .await;
    outcomes.print("damaged fjall version files");
}

mod generations {
    //! `compact` copies the live keys into a new generation folder and
    //! switches `CURRENT` to it: every state a crash can leave opens.
    use std::path::{Path, PathBuf};

    use annals_core::kv::{KvEngine, KvSnapshot, WriteBatch};
    use annals_fjall::{FjallEngine, FjallOptions};

    fn engine(dir: &Path) -> FjallEngine {
        FjallEngine::open(dir, &FjallOptions::default()).unwrap()
    }

    /// A new store holding `a = 1`, in a temporary folder.
    fn a_store() -> (tempfile::TempDir, PathBuf, FjallEngine) {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("store");
        let store = engine(&dir);
        put(&store, b"a", b"1");
        (tmp, dir, store)
    }

    fn put(engine: &FjallEngine, key: &[u8], value: &[u8]) {
        let mut batch = WriteBatch::new();
        batch.put(key.to_vec(), value.to_vec());
        engine.commit(batch, true).unwrap();
    }

    fn get(engine: &FjallEngine, key: &[u8]) -> Option<Vec<u8>> {
        engine.snapshot().unwrap().get(key).unwrap()
    }

    fn names(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn compact_switches_generations_and_reopens() {
        let (_tmp, dir, store) = a_store();
        put(&store, b"b", b"2");
        store.compact().unwrap();
        put(&store, b"c", b"3");
        store.compact().unwrap();
        assert_eq!(get(&store, b"b").as_deref(), Some(&b"2"[..]));
        store.close().unwrap();
        assert_eq!(std::fs::read(dir.join("CURRENT")).unwrap(), b"fjall-2\n");
        assert!(!dir.join("fjall").exists() && !dir.join("fjall-1").exists());
        let store = engine(&dir);
        assert_eq!(get(&store, b"a").as_deref(), Some(&b"1"[..]));
        assert_eq!(get(&store, b"c").as_deref(), Some(&b"3"[..]));
        store.close().unwrap();
    }

    #[test]
    fn a_snapshot_keeps_the_old_generation_until_the_next_open() {
        let (_tmp, dir, store) = a_store();
        let before = store.snapshot().unwrap();
        store.compact().unwrap();
        put(&store, b"a", b"2");
        assert_eq!(before.get(b"a").unwrap().as_deref(), Some(&b"1"[..]));
        assert!(dir.join("fjall").exists());
        drop(before);
        store.close().unwrap();
        let store = engine(&dir);
        assert!(!dir.join("fjall").exists());
        assert_eq!(get(&store, b"a").as_deref(), Some(&b"2"[..]));
        store.close().unwrap();
    }

    // A crash during `compact`, before the switch, leaves a marked partial
    // generation: the old one stays in use and the partial one goes.
    #[test]
    fn a_crash_before_the_switch_keeps_the_old_generation() {
        let (_tmp, dir, store) = a_store();
        store.close().unwrap();
        let partial = dir.join("fjall-1");
        std::fs::create_dir(&partial).unwrap();
        std::fs::write(partial.join("ANNALS-STORE"), "annals: fjall generation 1\n").unwrap();
        std::fs::write(partial.join("half-written"), "x").unwrap();
        let store = engine(&dir);
        assert!(!partial.exists());
        assert_eq!(get(&store, b"a").as_deref(), Some(&b"1"[..]));
        store.compact().unwrap();
        store.close().unwrap();
        assert_eq!(names(&dir), ["ANNALS-STORE", "CURRENT", "fjall-1"]);
    }

    // A folder the store did not make is never deleted: `compact` refuses
    // to go over it.
    #[test]
    fn a_strangers_folder_in_the_way_is_left_alone() {
        let (_tmp, dir, store) = a_store();
        let stranger = dir.join("fjall-1");
        std::fs::create_dir(&stranger).unwrap();
        std::fs::write(stranger.join("mine"), "x").unwrap();
        assert!(store.compact().unwrap_err().to_string().contains("fjall-1"));
        assert!(stranger.join("mine").exists());
        assert_eq!(get(&store, b"a").as_deref(), Some(&b"1"[..]));
        store.close().unwrap();
        let store = engine(&dir);
        assert!(stranger.join("mine").exists());
        store.close().unwrap();
    }

    #[test]
    fn a_damaged_current_is_an_error() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("store");
        engine(&dir).close().unwrap();
        std::fs::write(dir.join("CURRENT"), "fjall-x\n").unwrap();
        let error = FjallEngine::open(&dir, &FjallOptions::default())
            .err()
            .unwrap();
        assert!(error.to_string().contains("CURRENT"), "{error}");
        std::fs::write(dir.join("CURRENT"), "fjall-7\n").unwrap();
        let error = FjallEngine::open(&dir, &FjallOptions::default())
            .err()
            .unwrap();
        assert!(error.to_string().contains("fjall-7"), "{error}");
    }
}
