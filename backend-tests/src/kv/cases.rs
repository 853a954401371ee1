//! The cases of the engine suite (see [`super`]).

use std::fs;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, mpsc};
use std::thread;
use std::time::Duration;

use annals_core::kv::{KvEngine, KvSnapshot, Scan, WriteBatch, layout};
use annals_core::{Direction, Error, Field};

use super::{KvCapabilities, KvCase, KvHarness};
use crate::files::Tree;

/// Registers a case: `case!(f)` always runs, `case!(f, |c| c.persistent)`
/// only with that capability.
macro_rules! case {
    ($f:ident) => {
        case!($f, |_| true)
    };
    ($f:ident, $runs_if:expr) => {
        KvCase {
            name: stringify!($f),
            runs_if: $runs_if,
            body: $f::<H>,
        }
    };
}

/// Every case.
pub(super) fn all<H: KvHarness>() -> Vec<KvCase<H>> {
    vec![
        case!(an_empty_store_reads_nothing),
        case!(batch_ops_apply_in_order),
        case!(readers_see_a_batch_whole_or_not_at_all),
        case!(
            a_snapshot_does_not_see_later_commits,
            |c: &KvCapabilities| c.commits_past_snapshots
        ),
        case!(scans_go_both_ways_within_bounds),
        case!(keys_of_every_prefix_and_large_values_round_trip),
        case!(commits_with_and_without_sync_are_visible_at_once),
        case!(compact_keeps_everything_while_snapshots_and_commits_go_on),
        case!(reopen_keeps_every_commit, |c: &KvCapabilities| c.persistent),
        case!(
            close_releases_the_store_and_later_calls_are_closed,
            |c: &KvCapabilities| c.persistent
        ),
        case!(
            a_second_open_of_an_open_store_is_refused,
            |c: &KvCapabilities| c.persistent
        ),
        case!(compact_gives_space_back, |c: &KvCapabilities| c
            .reclaims_space),
        case!(
            what_is_not_the_store_is_refused_and_left_alone,
            |c: &KvCapabilities| c.owns_path
        ),
    ]
}

/// Entries read by a scan, in the order visited.
pub type Entries = Vec<(Vec<u8>, Vec<u8>)>;

/// Past every key the cases write, and before the engine's own keys
/// (`layout::ENGINE_PRIVATE`, which the cases never touch).
const END: &[u8] = &[layout::ENGINE_PRIVATE];

/// Commits one batch of puts.
pub fn put(engine: &impl KvEngine, pairs: &[(&[u8], &[u8])], sync: bool) {
    let mut batch = WriteBatch::new();
    for (k, v) in pairs {
        batch.put(k.to_vec(), v.to_vec());
    }
    engine.commit(batch, sync).unwrap();
}

/// Every entry of `[start, end)` in `dir`.
pub fn scan_all(snap: &impl KvSnapshot, start: &[u8], end: &[u8], dir: Direction) -> Entries {
    let mut out = Vec::new();
    snap.scan(start, end, dir, &mut |k, v| {
        out.push((k.to_vec(), v.to_vec()));
        Ok(Scan::Continue)
    })
    .unwrap();
    out
}

fn everything(engine: &impl KvEngine) -> Entries {
    scan_all(&engine.snapshot().unwrap(), b"", END, Direction::Forward)
}

fn keys(entries: &Entries) -> Vec<&[u8]> {
    entries.iter().map(|(k, _)| k.as_slice()).collect()
}

fn an_empty_store_reads_nothing<H: KvHarness>(h: H) {
    let engine = h.open().unwrap();
    let snap = engine.snapshot().unwrap();
    assert_eq!(snap.get(b"a").unwrap(), None);
    assert!(scan_all(&snap, b"", END, Direction::Forward).is_empty());
    assert!(scan_all(&snap, b"", END, Direction::Backward).is_empty());
    drop(snap);
    engine.disk_bytes().unwrap();
    engine.close().unwrap();
}

fn batch_ops_apply_in_order<H: KvHarness>(h: H) {
    let engine = h.open().unwrap();
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
    drop(snap);
    // An empty batch is fine, synced or not.
    engine.commit(WriteBatch::new(), true).unwrap();
    engine.commit(WriteBatch::new(), false).unwrap();
    engine.close().unwrap();
}

/// A reader never sees part of a batch: each batch rewrites every key to
/// one new value, and every snapshot finds all keys equal.
fn readers_see_a_batch_whole_or_not_at_all<H: KvHarness>(h: H) {
    const KEYS: u8 = 20;
    const ROUNDS: u32 = 200;
    let engine = Arc::new(h.open().unwrap());
    let batch_of = |round: u32| {
        let mut batch = WriteBatch::new();
        for k in 0..KEYS {
            // Keys in several prefixes (an engine may split them).
            batch.put(vec![k % 7, k], round.to_be_bytes().to_vec());
        }
        batch
    };
    engine.commit(batch_of(0), true).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let reader = {
        let (engine, stop) = (Arc::clone(&engine), Arc::clone(&stop));
        thread::spawn(move || {
            let mut reads = 0u32;
            while !stop.load(Ordering::Relaxed) || reads == 0 {
                let snap = engine.snapshot().unwrap();
                let values: Vec<Vec<u8>> = scan_all(&snap, b"", END, Direction::Forward)
                    .into_iter()
                    .map(|(_, v)| v)
                    .collect();
                assert_eq!(values.len(), usize::from(KEYS));
                assert!(
                    values.windows(2).all(|w| w[0] == w[1]),
                    "part of a batch: {values:?}"
                );
                reads += 1;
            }
        })
    };
    for round in 1..ROUNDS {
        engine.commit(batch_of(round), round % 10 == 0).unwrap();
    }
    stop.store(true, Ordering::Relaxed);
    reader.join().unwrap();
    let values: Vec<Vec<u8>> = everything(&*engine).into_iter().map(|(_, v)| v).collect();
    assert!(values.iter().all(|v| *v == (ROUNDS - 1).to_be_bytes()));
    engine.close().unwrap();
}

fn a_snapshot_does_not_see_later_commits<H: KvHarness>(h: H) {
    let engine = h.open().unwrap();
    // Taken before anything was committed (a table or file may not exist).
    let first = engine.snapshot().unwrap();
    put(&engine, &[(b"a", b"1")], true);
    assert_eq!(first.get(b"a").unwrap(), None);
    assert!(scan_all(&first, b"", END, Direction::Backward).is_empty());
    drop(first);
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
    drop(before);
    let after = engine.snapshot().unwrap();
    assert_eq!(after.get(b"a").unwrap(), None);
    assert_eq!(after.get(b"b").unwrap(), Some(b"1".to_vec()));
    drop(after);
    engine.close().unwrap();
}

fn scans_go_both_ways_within_bounds<H: KvHarness>(h: H) {
    let engine = h.open().unwrap();
    let mut batch = WriteBatch::new();
    for i in 0u8..20 {
        batch.put(vec![1, i], vec![i, 1]);
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
    assert_eq!(scan_all(&snap, &[1], &[2], Direction::Forward).len(), 20);
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
    drop(snap);
    engine.close().unwrap();
}

/// Keys starting with every byte annals' layout uses (an engine may keep
/// some prefixes apart) and the last byte before the engine's own keys,
/// with values from empty to a megabyte.
fn keys_of_every_prefix_and_large_values_round_trip<H: KvHarness>(h: H) {
    let engine = h.open().unwrap();
    let mut expected: Entries = Vec::new();
    for first in (0u8..=8).chain([0x7f, 0xfe]) {
        for (i, len) in [0usize, 1, 100, 70_000].into_iter().enumerate() {
            let key = vec![first, 0, u8::try_from(i).unwrap()];
            let value: Vec<u8> = (0..len).map(|j| (j % 251) as u8 ^ first).collect();
            expected.push((key, value));
        }
    }
    expected.push((vec![0xfe, 0xff, 0xff], vec![9; 1 << 20]));
    let mut batch = WriteBatch::new();
    for (k, v) in &expected {
        batch.put(k.clone(), v.clone());
    }
    engine.commit(batch, true).unwrap();
    expected.sort();
    let snap = engine.snapshot().unwrap();
    assert_eq!(scan_all(&snap, b"", END, Direction::Forward), expected);
    let mut backward = scan_all(&snap, b"", END, Direction::Backward);
    backward.reverse();
    assert_eq!(backward, expected);
    for (k, v) in &expected {
        assert_eq!(snap.get(k).unwrap().as_ref(), Some(v));
    }
    // A range that spans several prefixes, from the middle of one to the
    // middle of another.
    let part = scan_all(&snap, &[2, 0, 2], &[6, 0, 1], Direction::Backward);
    let want: Vec<_> = expected
        .iter()
        .filter(|(k, _)| {
            k.as_slice() >= [2, 0, 2].as_slice() && k.as_slice() < [6, 0, 1].as_slice()
        })
        .rev()
        .cloned()
        .collect();
    assert_eq!(part, want);
    drop(snap);
    engine.close().unwrap();
}

/// The sync flag changes when a commit is durable, never whether it is
/// visible: a commit without sync is seen by the next snapshot, and `close`
/// keeps it.
fn commits_with_and_without_sync_are_visible_at_once<H: KvHarness>(h: H) {
    let engine = h.open().unwrap();
    for i in 0u32..50 {
        put(&engine, &[(&i.to_be_bytes(), b"v")], i % 7 == 0);
        assert_eq!(
            engine.snapshot().unwrap().get(&i.to_be_bytes()).unwrap(),
            Some(b"v".to_vec())
        );
    }
    assert_eq!(everything(&engine).len(), 50);
    engine.close().unwrap();
    drop(engine);
    if H::capabilities().persistent {
        let engine = h.open().unwrap();
        assert_eq!(everything(&engine).len(), 50, "close lost unsynced commits");
        engine.close().unwrap();
    }
}

fn reopen_keeps_every_commit<H: KvHarness>(h: H) {
    let engine = h.open().unwrap();
    for i in 0u32..100 {
        let mut batch = WriteBatch::new();
        batch.put(i.to_be_bytes().to_vec(), i.to_le_bytes().to_vec());
        if i % 3 == 0 {
            batch.delete((i / 2).to_be_bytes().to_vec());
        }
        engine.commit(batch, i % 2 == 0).unwrap();
    }
    let before = everything(&engine);
    engine.close().unwrap();
    drop(engine);
    for _ in 0..2 {
        let engine = h.open().unwrap();
        assert_eq!(everything(&engine), before);
        engine.close().unwrap();
    }
    // Dropped without close: the commits are there all the same.
    let engine = h.open().unwrap();
    put(&engine, &[(b"late", b"1")], true);
    drop(engine);
    let engine = h.open().unwrap();
    assert_eq!(
        engine.snapshot().unwrap().get(b"late").unwrap(),
        Some(b"1".to_vec())
    );
    engine.close().unwrap();
}

fn close_releases_the_store_and_later_calls_are_closed<H: KvHarness>(h: H) {
    let engine = h.open().unwrap();
    put(&engine, &[(b"a", b"1")], true);
    engine.close().unwrap();
    assert!(matches!(engine.snapshot(), Err(Error::Closed)));
    assert!(matches!(
        engine.commit(WriteBatch::new(), true),
        Err(Error::Closed)
    ));
    assert!(matches!(engine.compact(), Err(Error::Closed)));
    assert!(matches!(engine.disk_bytes(), Err(Error::Closed)));
    engine.close().unwrap(); // closing again does nothing
    // The same place opens again at once, in this process, with the data,
    // while the closed engine is still alive.
    let again = h.open().unwrap();
    assert_eq!(
        again.snapshot().unwrap().get(b"a").unwrap(),
        Some(b"1".to_vec())
    );
    again.close().unwrap();
}

fn a_second_open_of_an_open_store_is_refused<H: KvHarness>(h: H) {
    let engine = h.open().unwrap();
    let err = h.open().err().expect("a second open of an open store");
    assert!(matches!(err, Error::Backend { .. }), "{err:?}");
    if let Some(path) = h.path() {
        let message = err.to_string();
        assert!(message.contains(&path.display().to_string()), "{message}");
    }
    // The first engine is unharmed.
    put(&engine, &[(b"a", b"1")], true);
    engine.close().unwrap();
}

/// Commits (and deletes) and snapshots go on while `compact` runs; a
/// snapshot taken before it keeps its view; nothing is lost.
fn compact_keeps_everything_while_snapshots_and_commits_go_on<H: KvHarness>(h: H) {
    let engine = Arc::new(h.open().unwrap());
    for i in 0u32..200 {
        put(&*engine, &[(&i.to_be_bytes(), &[7u8; 300])], i % 50 == 0);
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
    // The old snapshot reads on, whether compact waits for it or not.
    assert_eq!(snap.get(&5u32.to_be_bytes()).unwrap(), Some(vec![7u8; 300]));
    assert_eq!(scan_all(&snap, b"", END, Direction::Backward).len(), 200);
    drop(snap);
    done_rx.recv_timeout(Duration::from_secs(60)).unwrap();
    compactor.join().unwrap().unwrap();

    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (engine, stop) = (Arc::clone(&engine), Arc::clone(&stop));
        thread::spawn(move || {
            let mut i = 200u32;
            while !stop.load(Ordering::Relaxed) || i < 300 {
                let mut batch = WriteBatch::new();
                batch.put(i.to_be_bytes().to_vec(), vec![1u8; 300]);
                batch.delete((i - 200).to_be_bytes().to_vec());
                engine.commit(batch, i.is_multiple_of(2)).unwrap();
                i += 1;
            }
            i
        })
    };
    let reader = {
        let (engine, stop) = (Arc::clone(&engine), Arc::clone(&stop));
        thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                let snap = engine.snapshot().unwrap();
                assert_eq!(scan_all(&snap, b"", END, Direction::Backward).len(), 200);
            }
        })
    };
    for _ in 0..3 {
        engine.compact().unwrap();
        thread::sleep(Duration::from_millis(20));
    }
    stop.store(true, Ordering::Relaxed);
    let written = writer.join().unwrap();
    reader.join().unwrap();
    let expected: Entries = (written - 200..written)
        .map(|i| {
            (
                i.to_be_bytes().to_vec(),
                if i < 200 {
                    vec![7u8; 300]
                } else {
                    vec![1u8; 300]
                },
            )
        })
        .collect();
    assert_eq!(everything(&*engine), expected);
    engine.close().unwrap();
    drop(engine);
    if H::capabilities().persistent {
        let engine = h.open().unwrap();
        assert_eq!(everything(&engine), expected);
        engine.close().unwrap();
    }
}

fn compact_gives_space_back<H: KvHarness>(h: H) {
    let engine = h.open().unwrap();
    let value = vec![3u8; 4000];
    for chunk in 0u32..50 {
        let mut batch = WriteBatch::new();
        for i in 0..100 {
            // Values that do not compress to nothing.
            let mut value = value.clone();
            value[..4].copy_from_slice(&(chunk * 100 + i).to_be_bytes());
            for (j, b) in value.iter_mut().enumerate().skip(4) {
                *b = (j as u32)
                    .wrapping_mul(2_654_435_761)
                    .wrapping_add(chunk * 100 + i)
                    .to_be_bytes()[0];
            }
            batch.put((chunk * 100 + i).to_be_bytes().to_vec(), value);
        }
        engine.commit(batch, true).unwrap();
    }
    engine.compact().unwrap();
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
    assert_eq!(everything(&engine).len(), 100);
    engine.close().unwrap();
}

/// A folder of another program's files, and a file of another program,
/// where the store should be: both refused, with an error naming the
/// path, and left exactly as they were.
fn what_is_not_the_store_is_refused_and_left_alone<H: KvHarness>(h: H) {
    let path = h
        .path()
        .expect("KvCapabilities::owns_path needs KvHarness::path");
    let parent = path.parent().unwrap().to_path_buf();
    fs::create_dir_all(&parent).unwrap();
    let refused = |what: &str| {
        let before = Tree::of(&parent);
        let err = h
            .open()
            .err()
            .unwrap_or_else(|| panic!("{what} was opened as a store"));
        assert!(
            matches!(err, Error::InvalidInput { .. } | Error::Backend { .. }),
            "{what}: {err:?}"
        );
        let message = err.to_string();
        assert!(
            message.contains(&path.display().to_string()),
            "{what}: {message}"
        );
        before.assert_same(&Tree::of(&parent), what);
    };
    fs::create_dir(&path).unwrap();
    fs::write(path.join("notes.txt"), b"someone else's\n").unwrap();
    refused("a folder of another program");
    fs::remove_dir_all(&path).unwrap();
    fs::write(
        &path,
        b"these are not the bytes you are looking for\n".repeat(200),
    )
    .unwrap();
    refused("a file of another program");
}
