//! The engine through the `KvEngine` trait.
#![allow(clippy::unwrap_used)]

use std::sync::mpsc;
use std::thread;

use super::*;
use annals_core::{Durability, Field};

fn open_in(dir: &tempfile::TempDir) -> RedbEngine {
    RedbEngine::open(dir.path().join("store.redb"), &RedbOptions::default()).unwrap()
}

fn put(engine: &RedbEngine, pairs: &[(&[u8], &[u8])], sync: bool) {
    let mut batch = WriteBatch::new();
    for (k, v) in pairs {
        batch.put(k.to_vec(), v.to_vec());
    }
    engine.commit(batch, sync).unwrap();
}

type Entries = Vec<(Vec<u8>, Vec<u8>)>;

fn scan_all(snap: &RedbSnapshot, start: &[u8], end: &[u8], dir: Direction) -> Entries {
    let mut out = Vec::new();
    snap.scan(start, end, dir, &mut |k, v| {
        out.push((k.to_vec(), v.to_vec()));
        Ok(Scan::Continue)
    })
    .unwrap();
    out
}

fn keys(entries: &Entries) -> Vec<&[u8]> {
    entries.iter().map(|(k, _)| k.as_slice()).collect()
}

#[test]
fn empty_store_reads_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open_in(&dir);
    let snap = engine.snapshot().unwrap();
    assert_eq!(snap.get(b"a").unwrap(), None);
    assert!(scan_all(&snap, b"", &[0xff; 4], Direction::Forward).is_empty());
    assert!(scan_all(&snap, b"", &[0xff; 4], Direction::Backward).is_empty());
    assert_eq!(engine.capabilities(), Capabilities::ALL);
    assert!(engine.disk_bytes().unwrap() > 0);
}

#[test]
fn batch_ops_apply_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open_in(&dir);
    put(&engine, &[(b"a", b"1"), (b"b", b"2"), (b"c", b"3")], true);
    let mut batch = WriteBatch::new();
    batch.put(b"a".to_vec(), b"10".to_vec());
    batch.delete(b"a".to_vec()); // a later op on the same key wins
    batch.delete(b"b".to_vec());
    batch.put(b"b".to_vec(), b"20".to_vec());
    batch.delete(b"zzz".to_vec()); // deleting a missing key is fine
    engine.commit(batch, true).unwrap();
    let snap = engine.snapshot().unwrap();
    assert_eq!(snap.get(b"a").unwrap(), None);
    assert_eq!(snap.get(b"b").unwrap(), Some(b"20".to_vec()));
    assert_eq!(snap.get(b"c").unwrap(), Some(b"3".to_vec()));
    // An empty batch is fine, synced or not.
    engine.commit(WriteBatch::new(), true).unwrap();
    engine.commit(WriteBatch::new(), false).unwrap();
}

#[test]
fn snapshot_does_not_see_later_commits() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open_in(&dir);
    put(&engine, &[(b"a", b"1")], true);
    let before = engine.snapshot().unwrap();
    put(&engine, &[(b"a", b"2"), (b"b", b"1")], true);
    let mut batch = WriteBatch::new();
    batch.delete(b"a".to_vec());
    engine.commit(batch, false).unwrap();
    assert_eq!(before.get(b"a").unwrap(), Some(b"1".to_vec()));
    assert_eq!(before.get(b"b").unwrap(), None);
    assert_eq!(
        scan_all(&before, b"", b"z", Direction::Forward),
        vec![(b"a".to_vec(), b"1".to_vec())]
    );
    let after = engine.snapshot().unwrap();
    assert_eq!(after.get(b"a").unwrap(), None);
    assert_eq!(after.get(b"b").unwrap(), Some(b"1".to_vec()));
}

#[test]
fn first_snapshot_before_any_commit_stays_empty() {
    // The table does not exist when this snapshot is taken.
    let dir = tempfile::tempdir().unwrap();
    let engine = open_in(&dir);
    let before = engine.snapshot().unwrap();
    put(&engine, &[(b"a", b"1")], true);
    assert_eq!(before.get(b"a").unwrap(), None);
    assert_eq!(
        engine.snapshot().unwrap().get(b"a").unwrap(),
        Some(b"1".to_vec())
    );
}

#[test]
fn scans_both_ways_within_bounds() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open_in(&dir);
    let all: Vec<Vec<u8>> = (0u8..20).map(|i| vec![1, i]).collect();
    let mut batch = WriteBatch::new();
    for k in &all {
        batch.put(k.clone(), k.iter().rev().copied().collect());
    }
    batch.put(vec![0], b"below".to_vec());
    batch.put(vec![2], b"above".to_vec());
    engine.commit(batch, true).unwrap();
    let snap = engine.snapshot().unwrap();

    // [start, end): start included, end excluded.
    let fwd = scan_all(&snap, &[1, 5], &[1, 9], Direction::Forward);
    assert_eq!(keys(&fwd), [[1, 5], [1, 6], [1, 7], [1, 8]]);
    assert_eq!(fwd[0].1, vec![5, 1]);
    let bwd = scan_all(&snap, &[1, 5], &[1, 9], Direction::Backward);
    assert_eq!(keys(&bwd), [[1, 8], [1, 7], [1, 6], [1, 5]]);

    // A whole prefix: [1] .. [2].
    let fwd = scan_all(&snap, &[1], &[2], Direction::Forward);
    assert_eq!(fwd.len(), 20);
    let bwd = scan_all(&snap, &[1], &[2], Direction::Backward);
    assert_eq!(keys(&bwd).first(), Some(&[1u8, 19].as_slice()));
    assert_eq!(keys(&bwd).last(), Some(&[1u8, 0].as_slice()));

    // Empty and inverted ranges visit nothing.
    assert!(scan_all(&snap, &[1, 5], &[1, 5], Direction::Forward).is_empty());
    assert!(scan_all(&snap, &[1, 9], &[1, 5], Direction::Backward).is_empty());
    assert!(scan_all(&snap, &[3], &[4], Direction::Forward).is_empty());

    // Stop ends the scan; an error of the visitor is the scan's.
    for dir in [Direction::Forward, Direction::Backward] {
        let mut seen = 0;
        snap.scan(&[1], &[2], dir, &mut |_, _| {
            seen += 1;
            Ok(if seen == 3 {
                Scan::Stop
            } else {
                Scan::Continue
            })
        })
        .unwrap();
        assert_eq!(seen, 3);
        let err = snap
            .scan(&[1], &[2], dir, &mut |_, _| {
                Err(Error::empty(Field::Events, "visitor"))
            })
            .unwrap_err();
        assert!(matches!(err, Error::InvalidInput { message: m, .. } if m == "visitor"));
    }
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
fn close_releases_the_file_and_later_calls_are_closed() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.redb");
    let engine = RedbEngine::open(&path, &RedbOptions::default()).unwrap();
    put(&engine, &[(b"a", b"1")], true);
    let live = engine.snapshot().unwrap();
    engine.close().unwrap();

    assert!(matches!(engine.snapshot(), Err(Error::Closed)));
    assert!(matches!(
        engine.commit(WriteBatch::new(), true),
        Err(Error::Closed)
    ));
    assert!(matches!(engine.compact(), Err(Error::Closed)));
    assert!(matches!(engine.disk_bytes(), Err(Error::Closed)));
    engine.close().unwrap(); // closing again does nothing
    // A snapshot that outlived the close answers an error, or what it had
    // already loaded, and never panics.
    match live.get(b"a") {
        Ok(v) => assert_eq!(v, Some(b"1".to_vec())),
        Err(e) => assert!(matches!(e, Error::Closed), "{e:?}"),
    }

    // The same path opens again at once, in this process, with the data.
    let again = RedbEngine::open(&path, &RedbOptions::default()).unwrap();
    assert_eq!(
        again.snapshot().unwrap().get(b"a").unwrap(),
        Some(b"1".to_vec())
    );
    drop(live);
    drop(again);
    // Dropping without close releases the file too.
    RedbEngine::open(&path, &RedbOptions::default()).unwrap();
}

#[test]
fn second_open_of_an_open_file_is_an_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.redb");
    let _engine = RedbEngine::open(&path, &RedbOptions::default()).unwrap();
    let err = RedbEngine::open(&path, &RedbOptions::default()).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, Error::Backend { .. }), "{err:?}");
    assert!(msg.contains(&path.display().to_string()), "{msg}");
    assert!(msg.contains("already open"), "{msg}");
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
        put(&engine, &[(&i.to_be_bytes(), &value)], true);
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
    put(&engine, &[(b"a", b"1")], true);
    let first = engine.snapshot().unwrap();
    let compactor = {
        let engine = Arc::clone(&engine);
        thread::spawn(move || engine.compact())
    };
    thread::sleep(Duration::from_millis(30));
    let second = engine.snapshot().unwrap();
    put(&engine, &[(b"b", b"2")], true);
    assert_eq!(first.get(b"b").unwrap(), None);
    assert_eq!(second.get(b"a").unwrap(), Some(b"1".to_vec()));
    drop((first, second));
    compactor.join().unwrap().unwrap();
    let snap = engine.snapshot().unwrap();
    assert_eq!(snap.get(b"b").unwrap(), Some(b"2".to_vec()));
}

#[test]
fn commits_during_compaction_are_kept() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.redb");
    let engine = Arc::new(RedbEngine::open(&path, &RedbOptions::default()).unwrap());
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let engine = Arc::clone(&engine);
        let stop = Arc::clone(&stop);
        thread::spawn(move || {
            let mut i = 0u32;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                put(
                    &engine,
                    &[(&i.to_be_bytes(), &[1u8; 300])],
                    i.is_multiple_of(2),
                );
                if i.is_multiple_of(3) {
                    let mut batch = WriteBatch::new();
                    batch.delete((i / 2).to_be_bytes().to_vec());
                    engine.commit(batch, false).unwrap();
                }
                i += 1;
            }
            i
        })
    };
    let reader = {
        let engine = Arc::clone(&engine);
        let stop = Arc::clone(&stop);
        thread::spawn(move || {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let snap = engine.snapshot().unwrap();
                scan_all(&snap, b"", &[0xff; 5], Direction::Backward);
            }
        })
    };
    for _ in 0..5 {
        engine.compact().unwrap();
        thread::sleep(Duration::from_millis(20));
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let written = writer.join().unwrap();
    reader.join().unwrap();
    let expected: Entries = (0..written)
        .filter(|i| !(0..written).any(|j| j.is_multiple_of(3) && j / 2 == *i))
        .map(|i| (i.to_be_bytes().to_vec(), vec![1u8; 300]))
        .collect();
    let engine = Arc::into_inner(engine).unwrap();
    engine.close().unwrap();
    let engine = RedbEngine::open(&path, &RedbOptions::default()).unwrap();
    assert_eq!(
        scan_all(
            &engine.snapshot().unwrap(),
            b"",
            &[0xff; 5],
            Direction::Forward
        ),
        expected
    );
}

#[test]
fn compact_gives_space_back() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open_in(&dir);
    let value = vec![3u8; 4000];
    for chunk in 0u32..50 {
        let mut batch = WriteBatch::new();
        for i in 0..100 {
            batch.put((chunk * 100 + i).to_be_bytes().to_vec(), value.clone());
        }
        engine.commit(batch, true).unwrap();
    }
    let full = engine.disk_bytes().unwrap();
    assert!(full > 10 << 20, "{full}");
    let mut batch = WriteBatch::new();
    for i in 0u32..4900 {
        batch.delete(i.to_be_bytes().to_vec());
    }
    engine.commit(batch, true).unwrap();
    engine.compact().unwrap();
    let compacted = engine.disk_bytes().unwrap();
    assert!(compacted < full / 4, "{compacted} is not much below {full}");
    let snap = engine.snapshot().unwrap();
    assert_eq!(
        scan_all(&snap, b"", &[0xff; 5], Direction::Forward).len(),
        100
    );
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
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
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
