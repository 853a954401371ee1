//! What is redb's own in the engine; what every engine does is in the
//! engine suite (`tests/engine.rs`).
#![allow(clippy::unwrap_used)]

use std::sync::mpsc;
use std::thread;

use super::*;
use annals_backend_tests::kv::{put, scan_all};
use annals_core::Durability;
use annals_core::kv::Scan;

fn open_in(dir: &tempfile::TempDir) -> RedbEngine {
    RedbEngine::open(dir.path().join("store.redb"), &RedbOptions::default()).unwrap()
}

#[test]
fn relaxed_commits_are_visible_and_kept_by_close() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.redb");
    let mut options = RedbOptions::default();
    options.config.durability = Durability::Relaxed;
    options.sync_interval = None;
    let engine = RedbEngine::open(&path, &options).unwrap();
    for i in 0u32..50 {
        put(&engine, &[(&i.to_be_bytes(), b"v")], false);
    }
    assert_eq!(
        scan_all(
            &engine.snapshot().unwrap(),
            b"",
            &[0xff; 5],
            Direction::Forward
        )
        .len(),
        50
    );
    engine.close().unwrap();
    let engine = RedbEngine::open(&path, &options).unwrap();
    assert_eq!(
        scan_all(
            &engine.snapshot().unwrap(),
            b"",
            &[0xff; 5],
            Direction::Forward
        )
        .len(),
        50
    );
}

#[test]
fn sync_interval_makes_relaxed_commits_durable() {
    let dir = tempfile::tempdir().unwrap();
    let mut options = RedbOptions {
        sync_interval: Some(Duration::from_millis(1)),
        ..RedbOptions::default()
    };
    let engine = RedbEngine::open(dir.path().join("s.redb"), &options).unwrap();
    let start = *lock(&engine.last_durable);
    thread::sleep(Duration::from_millis(5));
    put(&engine, &[(b"a", b"1")], false);
    assert!(
        *lock(&engine.last_durable) > start,
        "the commit was not made durable"
    );

    options.sync_interval = None;
    let engine = RedbEngine::open(dir.path().join("t.redb"), &options).unwrap();
    let start = *lock(&engine.last_durable);
    thread::sleep(Duration::from_millis(5));
    put(&engine, &[(b"a", b"1")], false);
    assert_eq!(*lock(&engine.last_durable), start);
}

#[test]
fn a_file_that_is_not_redb_is_an_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notes.txt");
    std::fs::write(
        &path,
        b"these are not the bytes you are looking for\n".repeat(200),
    )
    .unwrap();
    for create in [true, false] {
        let options = RedbOptions {
            create,
            ..RedbOptions::default()
        };
        let err = RedbEngine::open(&path, &options).unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, Error::Backend { .. }), "{err:?}");
        assert!(msg.contains(&path.display().to_string()), "{msg}");
        assert!(msg.contains("not a redb database"), "{msg}");
    }
    // The file was left alone.
    assert_eq!(
        std::fs::read(&path).unwrap(),
        b"these are not the bytes you are looking for\n".repeat(200)
    );
}

#[test]
fn create_false_refuses_a_missing_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("missing.redb");
    let options = RedbOptions {
        create: false,
        ..RedbOptions::default()
    };
    let err = RedbEngine::open(&path, &options).unwrap_err();
    assert!(
        err.to_string().contains(&path.display().to_string()),
        "{err}"
    );
    assert!(!path.exists());
}

#[test]
fn open_creates_the_parent_folder() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a/b/c/store.redb");
    let engine = RedbEngine::open(&path, &RedbOptions::default()).unwrap();
    assert_eq!(engine.path(), path);
    assert!(path.is_file());
}

#[test]
fn compact_waits_for_live_snapshots() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Arc::new(open_in(&dir));
    let value = vec![7u8; 1000];
    for i in 0u32..200 {
        put(&*engine, &[(&i.to_be_bytes(), &value)], true);
    }
    let snap = engine.snapshot().unwrap();
    let (done_tx, done_rx) = mpsc::channel();
    let compactor = {
        let engine = Arc::clone(&engine);
        thread::spawn(move || {
            let result = engine.compact();
            done_tx.send(()).unwrap();
            result
        })
    };
    // Compaction cannot finish while the snapshot lives; reading through it
    // still works meanwhile.
    assert!(done_rx.recv_timeout(Duration::from_millis(300)).is_err());
    assert_eq!(snap.get(&5u32.to_be_bytes()).unwrap(), Some(value.clone()));
    assert_eq!(
        scan_all(&snap, b"", &[0xff; 5], Direction::Backward).len(),
        200
    );
    drop(snap);
    done_rx.recv_timeout(Duration::from_secs(30)).unwrap();
    compactor.join().unwrap().unwrap();
    assert_eq!(
        scan_all(
            &engine.snapshot().unwrap(),
            b"",
            &[0xff; 5],
            Direction::Forward
        )
        .len(),
        200
    );
}

#[test]
fn compact_lets_a_snapshot_holder_take_another_snapshot_and_commit() {
    // A thread holds a snapshot, then takes a second one and commits while
    // compact is waiting: neither may deadlock, and compact still succeeds.
    let dir = tempfile::tempdir().unwrap();
    let engine = Arc::new(open_in(&dir));
    put(&*engine, &[(b"a", b"1")], true);
    let first = engine.snapshot().unwrap();
    let compactor = {
        let engine = Arc::clone(&engine);
        thread::spawn(move || engine.compact())
    };
    thread::sleep(Duration::from_millis(30));
    let second = engine.snapshot().unwrap();
    put(&*engine, &[(b"b", b"2")], true);
    assert_eq!(first.get(b"b").unwrap(), None);
    assert_eq!(second.get(b"a").unwrap(), Some(b"1".to_vec()));
    drop((first, second));
    compactor.join().unwrap().unwrap();
    let snap = engine.snapshot().unwrap();
    assert_eq!(snap.get(b"b").unwrap(), Some(b"2".to_vec()));
}

/// Writes a store of `n` keys, closes it and returns its bytes.
fn written_file(path: &Path, n: u32) -> Vec<u8> {
    let engine = RedbEngine::open(path, &RedbOptions::default()).unwrap();
    for chunk in 0..n / 100 {
        let mut batch = WriteBatch::new();
        for i in 0..100 {
            let k = chunk * 100 + i;
            batch.put(k.to_be_bytes().to_vec(), k.to_le_bytes().repeat(50));
        }
        engine.commit(batch, true).unwrap();
    }
    engine.close().unwrap();
    std::fs::read(path).unwrap()
}

/// Reads everything, checking every value found is right; answers whether
/// the read succeeded.
fn read_back(engine: &RedbEngine, n: u32) -> Result<u32> {
    let snap = engine.snapshot()?;
    let mut found = 0;
    for dir in [Direction::Forward, Direction::Backward] {
        found = 0;
        snap.scan(b"", &[0xff; 5], dir, &mut |k, v| {
            // A damaged key or value is for annals' record checksum to
            // catch; here only the absence of panics matters.
            let _ = (k, v);
            found += 1;
            Ok(Scan::Continue)
        })?;
    }
    for k in (0..n).step_by(7) {
        snap.get(&k.to_be_bytes())?;
    }
    Ok(found)
}

#[test]
fn damaged_file_is_refused_at_open_with_the_integrity_check() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.redb");
    let good = written_file(&path, 2000);
    // Damage a run of bytes in the middle of the file, where pages of the
    // table live.
    let mut bad = good.clone();
    let mid = bad.len() / 2;
    for b in &mut bad[mid..mid + 64] {
        *b ^= 0x5a;
    }
    let mut refused = 0;
    for at in (4096..good.len() - 64).step_by(good.len() / 40) {
        let mut bad = good.clone();
        for b in &mut bad[at..at + 64] {
            *b ^= 0xa5;
        }
        std::fs::write(&path, &bad).unwrap();
        match RedbEngine::open(&path, &RedbOptions::default()) {
            Err(Error::Corruption { message: msg, .. }) => {
                assert!(msg.contains(&path.display().to_string()), "{msg}");
                refused += 1;
            }
            Err(e) => panic!("damage at {at}: not Corruption: {e:?}"),
            // Damage in free space: everything reads back.
            Ok(engine) => assert_eq!(read_back(&engine, 2000).unwrap(), 2000),
        }
    }
    assert!(refused > 0, "no damage was detected");
}

#[test]
fn damaged_file_never_panics_without_the_integrity_check() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.redb");
    let good = written_file(&path, 2000);
    let options = RedbOptions {
        check_integrity: false,
        ..RedbOptions::default()
    };
    let mut rng = annals_backend_tests::workload::Rng::new(0x2545_f491_4f6c_dd1d);
    let mut next = move || rng.next_u64();
    let (mut errors, mut oks) = (0, 0);
    for _ in 0..150 {
        let mut bad = good.clone();
        let at = (next() % (bad.len() as u64 - 64)) as usize;
        for b in &mut bad[at..at + 1 + (next() % 63) as usize] {
            *b = next() as u8;
        }
        std::fs::write(&path, &bad).unwrap();
        // Whatever happens is an Ok or an Error: never a panic.
        let outcome = RedbEngine::open(&path, &options).and_then(|engine| {
            let found = read_back(&engine, 2000);
            engine.close().and(found)
        });
        match outcome {
            Ok(_) => oks += 1,
            Err(Error::Corruption { .. } | Error::Backend { .. }) => errors += 1,
            Err(e) => panic!("unexpected error kind: {e:?}"),
        }
    }
    assert!(errors > 0 && oks > 0, "errors {errors}, oks {oks}");
}
