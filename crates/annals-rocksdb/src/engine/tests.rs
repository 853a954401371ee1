//! The engine through the `KvEngine` trait.
#![allow(clippy::unwrap_used)]

use std::sync::mpsc;
use std::thread;
use std::time::Instant;

use super::*;
use annals_core::CorruptionAt;

fn options() -> RocksDbOptions {
    RocksDbOptions {
        // Small memtables: tests flush and compact for real.
        write_buffer_bytes: 256 << 10,
        ..RocksDbOptions::default()
    }
}

fn open_in(dir: &tempfile::TempDir) -> RocksDbEngine {
    RocksDbEngine::open(dir.path().join("store"), &options()).unwrap()
}

fn put(engine: &RocksDbEngine, pairs: &[(&[u8], &[u8])], sync: bool) {
    let mut batch = WriteBatch::new();
    for (k, v) in pairs {
        batch.put(k.to_vec(), v.to_vec());
    }
    engine.commit(batch, sync).unwrap();
}

type Entries = Vec<(Vec<u8>, Vec<u8>)>;

fn scan_all(snap: &RocksDbSnapshot, start: &[u8], end: &[u8], dir: Direction) -> Entries {
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

/// Keys in each part of the key space: before the log, in it, after it.
const KEYS: [&[u8]; 7] = [
    &[0x00, b'H'],
    &[0x00, b'Z'],
    &[0x01, 0, 0, 0, 0, 0, 0, 0, 1],
    &[0x01, 0, 0, 0, 0, 0, 0, 0, 2],
    &[0x01, 0xFF],
    &[0x02, b'a'],
    &[0x06, b'k'],
];

#[test]
fn snapshots_are_send_and_static() {
    fn check<T: Send + 'static>() {}
    check::<RocksDbSnapshot>();
    check::<RocksDbEngine>();
}

#[test]
fn empty_store_reads_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open_in(&dir);
    let snap = engine.snapshot().unwrap();
    assert_eq!(snap.get(b"a").unwrap(), None);
    assert_eq!(snap.get(&[0x01, 0]).unwrap(), None);
    assert_eq!(snap.get(&[]).unwrap(), None);
    assert!(scan_all(&snap, b"", &[0xff; 4], Direction::Forward).is_empty());
    assert!(scan_all(&snap, b"", &[0xff; 4], Direction::Backward).is_empty());
    assert_eq!(engine.capabilities(), Capabilities::ALL);
    engine.disk_bytes().unwrap();
}

#[test]
fn keys_go_to_their_column_family_and_scans_cross_them() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open_in(&dir);
    let pairs: Vec<(&[u8], &[u8])> = KEYS.iter().map(|k| (*k, &k[..1])).collect();
    put(&engine, &pairs, true);
    let snap = engine.snapshot().unwrap();
    for key in KEYS {
        assert_eq!(snap.get(key).unwrap(), Some(key[..1].to_vec()), "{key:?}");
    }
    // The whole space, both ways.
    let all = scan_all(&snap, &[], &[0xFF], Direction::Forward);
    assert_eq!(keys(&all), KEYS.to_vec());
    let back = scan_all(&snap, &[], &[0xFF], Direction::Backward);
    let mut reversed = KEYS.to_vec();
    reversed.reverse();
    assert_eq!(keys(&back), reversed);
    // Ranges that start or end inside the log.
    let mid = scan_all(&snap, &[0x00, b'Z'], &[0x01, 0xFF], Direction::Forward);
    assert_eq!(keys(&mid), KEYS[1..4].to_vec());
    let mid = scan_all(
        &snap,
        &[0x01, 0, 0, 0, 0, 0, 0, 0, 2],
        &[0x06],
        Direction::Backward,
    );
    assert_eq!(keys(&mid), vec![KEYS[5], KEYS[4], KEYS[3]]);
    // Only the log, only outside it, an empty range, a reversed range.
    let log = scan_all(&snap, &[0x01], &[0x02], Direction::Forward);
    assert_eq!(keys(&log), KEYS[2..5].to_vec());
    let index = scan_all(&snap, &[0x02], &[0x07], Direction::Forward);
    assert_eq!(keys(&index), KEYS[5..].to_vec());
    assert!(scan_all(&snap, &[0x01], &[0x01], Direction::Forward).is_empty());
    assert!(scan_all(&snap, &[0x06], &[0x01], Direction::Backward).is_empty());
    // The log's data really is in its own family.
    let db = engine.read_db();
    let db = db.as_ref().unwrap();
    let log_cf = db.cf_handle(LOG_FAMILY).unwrap();
    let main_cf = db.cf_handle(MAIN_FAMILY).unwrap();
    assert!(db.get_cf(log_cf, KEYS[2]).unwrap().is_some());
    assert!(db.get_cf(main_cf, KEYS[2]).unwrap().is_none());
    assert!(db.get_cf(main_cf, KEYS[5]).unwrap().is_some());
    assert!(db.get_cf(log_cf, KEYS[5]).unwrap().is_none());
}

#[test]
fn a_scan_stops_when_asked_and_passes_errors_on() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open_in(&dir);
    let pairs: Vec<(&[u8], &[u8])> = KEYS.iter().map(|k| (*k, &b"v"[..])).collect();
    put(&engine, &pairs, true);
    let snap = engine.snapshot().unwrap();
    for direction in [Direction::Forward, Direction::Backward] {
        let mut seen = 0;
        snap.scan(&[], &[0xFF], direction, &mut |_, _| {
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
            .scan(&[], &[0xFF], direction, &mut |_, _| {
                Err(Error::corruption(CorruptionAt::Unknown, "from the visitor"))
            })
            .unwrap_err();
        assert!(matches!(err, Error::Corruption { message: m, .. } if m == "from the visitor"));
    }
}

#[test]
fn batch_ops_apply_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open_in(&dir);
    put(
        &engine,
        &[(b"a", b"1"), (b"b", b"2"), (&[1, 7], b"3")],
        true,
    );
    let mut batch = WriteBatch::new();
    batch.put(b"a".to_vec(), b"10".to_vec());
    batch.delete(b"a".to_vec()); // a later op on the same key wins
    batch.delete(b"b".to_vec());
    batch.put(b"b".to_vec(), b"20".to_vec());
    batch.delete(vec![1, 7]);
    batch.delete(b"zzz".to_vec()); // deleting a missing key is fine
    engine.commit(batch, true).unwrap();
    let snap = engine.snapshot().unwrap();
    assert_eq!(snap.get(b"a").unwrap(), None);
    assert_eq!(snap.get(b"b").unwrap(), Some(b"20".to_vec()));
    assert_eq!(snap.get(&[1, 7]).unwrap(), None);
    // An empty batch is fine, synced or not.
    engine.commit(WriteBatch::new(), true).unwrap();
    engine.commit(WriteBatch::new(), false).unwrap();
}

#[test]
fn snapshot_does_not_see_later_commits() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open_in(&dir);
    put(&engine, &[(b"a", b"1"), (&[1, 1], b"x")], true);
    let before = engine.snapshot().unwrap();
    put(
        &engine,
        &[(b"a", b"2"), (b"b", b"1"), (&[1, 2], b"y")],
        false,
    );
    let mut batch = WriteBatch::new();
    batch.delete(vec![1, 1]);
    engine.commit(batch, true).unwrap();
    // Not even after a flush and a compaction.
    engine.compact().unwrap();
    assert_eq!(before.get(b"a").unwrap(), Some(b"1".to_vec()));
    assert_eq!(before.get(b"b").unwrap(), None);
    assert_eq!(before.get(&[1, 1]).unwrap(), Some(b"x".to_vec()));
    let all = scan_all(&before, &[], &[0xFF], Direction::Forward);
    assert_eq!(keys(&all), vec![&[1u8, 1][..], b"a"]);
    let now = engine.snapshot().unwrap();
    let all = scan_all(&now, &[], &[0xFF], Direction::Forward);
    assert_eq!(keys(&all), vec![&[1u8, 2][..], b"a", b"b"]);
}

#[test]
fn close_releases_the_folder_and_everything_is_there_after_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store");
    let engine = RocksDbEngine::open(&path, &options()).unwrap();
    put(&engine, &[(b"a", b"1")], true);
    put(&engine, &[(&[1, 1], b"relaxed")], false);
    // Open elsewhere in the process: refused, and said so.
    let err = RocksDbEngine::open(&path, &options()).unwrap_err();
    assert!(
        matches!(&err, Error::Backend { message, .. } if message.contains("already open")),
        "{err:?}"
    );
    engine.close().unwrap();
    engine.close().unwrap(); // closing again does nothing
    assert!(matches!(engine.snapshot(), Err(Error::Closed)));
    assert!(matches!(
        engine.commit(WriteBatch::new(), true),
        Err(Error::Closed)
    ));
    assert!(matches!(engine.compact(), Err(Error::Closed)));
    assert!(matches!(engine.disk_bytes(), Err(Error::Closed)));
    let again = RocksDbEngine::open(&path, &options()).unwrap();
    let snap = again.snapshot().unwrap();
    assert_eq!(snap.get(b"a").unwrap(), Some(b"1".to_vec()));
    assert_eq!(snap.get(&[1, 1]).unwrap(), Some(b"relaxed".to_vec()));
}

#[test]
fn close_waits_for_live_snapshots() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store");
    let engine = RocksDbEngine::open(&path, &options()).unwrap();
    put(&engine, &[(b"a", b"1")], true);
    let snap = engine.snapshot().unwrap();
    let (taken, wait) = mpsc::channel();
    let reader = thread::spawn(move || {
        taken.send(()).unwrap();
        thread::sleep(Duration::from_millis(300));
        // Still readable while `close` waits.
        let value = snap.get(b"a").unwrap();
        drop(snap);
        value
    });
    wait.recv().unwrap();
    let started = Instant::now();
    engine.close().unwrap();
    assert!(started.elapsed() >= Duration::from_millis(200));
    assert_eq!(reader.join().unwrap(), Some(b"1".to_vec()));
    // Released: the folder opens again at once.
    RocksDbEngine::open(&path, &options()).unwrap();
}

#[test]
fn dropping_the_engine_closes_the_database() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store");
    let engine = RocksDbEngine::open(&path, &options()).unwrap();
    put(&engine, &[(b"a", b"1")], false);
    drop(engine);
    let again = RocksDbEngine::open(&path, &options()).unwrap();
    assert_eq!(
        again.snapshot().unwrap().get(b"a").unwrap(),
        Some(b"1".to_vec())
    );
}

#[test]
fn compact_gives_space_back() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open_in(&dir);
    // ~8 MB of poorly compressible values, in both families.
    let mut seed = 1u64;
    let mut noise = |n: usize| -> Vec<u8> {
        (0..n)
            .map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                seed as u8
            })
            .collect()
    };
    for chunk in 0..80u64 {
        let mut batch = WriteBatch::new();
        for i in 0..100u64 {
            let n = chunk * 100 + i;
            let mut key = vec![layout::LOG];
            key.extend_from_slice(&n.to_be_bytes());
            batch.put(key, noise(900));
            let mut aux = vec![layout::AUX];
            aux.extend_from_slice(&n.to_be_bytes());
            batch.put(aux, noise(100));
        }
        engine.commit(batch, false).unwrap();
    }
    engine.compact().unwrap();
    let full = engine.disk_bytes().unwrap();
    assert!(full > 5_000_000, "{full}");
    let mut batch = WriteBatch::new();
    for n in 0..7_600u64 {
        for prefix in [layout::LOG, layout::AUX] {
            let mut key = vec![prefix];
            key.extend_from_slice(&n.to_be_bytes());
            batch.delete(key);
        }
    }
    engine.commit(batch, true).unwrap();
    engine.compact().unwrap();
    let after = engine.disk_bytes().unwrap();
    assert!(after < full / 5, "{after} of {full}");
    // What was not deleted is all there.
    let snap = engine.snapshot().unwrap();
    let left = scan_all(&snap, &[], &[0xFF], Direction::Forward);
    assert_eq!(left.len(), 800);
}

#[test]
fn each_compression_works() {
    for compression in [
        crate::Compression::None,
        crate::Compression::Lz4,
        crate::Compression::Zstd,
    ] {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store");
        let options = RocksDbOptions {
            compression,
            block_cache_bytes: if compression == crate::Compression::None {
                0
            } else {
                1 << 20
            },
            ..options()
        };
        let engine = RocksDbEngine::open(&path, &options).unwrap();
        put(&engine, &[(&[1, 1], &[7u8; 10_000]), (b"a", b"1")], true);
        engine.compact().unwrap();
        engine.close().unwrap();
        let engine = RocksDbEngine::open(&path, &options).unwrap();
        let snap = engine.snapshot().unwrap();
        assert_eq!(snap.get(&[1, 1]).unwrap(), Some(vec![7u8; 10_000]));
    }
}

#[test]
fn a_missing_store_without_create_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("absent");
    let options = RocksDbOptions {
        create_if_missing: false,
        ..options()
    };
    let err = RocksDbEngine::open(&path, &options).unwrap_err();
    assert!(
        matches!(&err, Error::Backend { message, .. } if message.contains("absent")),
        "{err:?}"
    );
    assert!(!path.exists());
}

#[test]
fn invalid_options_are_refused_before_anything_is_created() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store");
    let options = RocksDbOptions {
        max_background_jobs: 0,
        ..options()
    };
    let err = RocksDbEngine::open(&path, &options).unwrap_err();
    assert!(matches!(err, Error::InvalidInput { .. }), "{err:?}");
    assert!(!path.exists());
}

#[test]
fn segments_cover_a_range_once_in_order() {
    assert_eq!(
        segments(&[], &[0xFF]),
        vec![
            (&[][..], &[1u8][..], Family::Main),
            (&[1][..], &[2][..], Family::Log),
            (&[2][..], &[0xFF][..], Family::Main),
        ]
    );
    assert_eq!(
        segments(&[1, 5], &[1, 6]),
        vec![(&[1u8, 5][..], &[1u8, 6][..], Family::Log)]
    );
    assert_eq!(
        segments(&[0, 9], &[1]),
        vec![(&[0u8, 9][..], &[1u8][..], Family::Main)]
    );
    assert!(segments(&[3], &[2]).is_empty());
    assert_eq!(Family::of(&[]), Family::Main);
    assert_eq!(Family::of(&[1]), Family::Log);
    assert!(is_data_file("000012.sst") && is_data_file("000013.log"));
    assert!(!is_data_file("LOG") && !is_data_file("LOG.old.1700000000"));
    assert!(!is_data_file("MANIFEST-000005") && !is_data_file("OPTIONS-000007"));
}
