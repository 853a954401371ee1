//! What is RocksDB's own in the engine (column families, compression,
//! close); what every engine does is in the engine suite (`tests/engine.rs`).
#![allow(clippy::unwrap_used)]

use std::sync::mpsc;
use std::thread;
use std::time::Instant;

use super::*;
use annals_backend_tests::kv::{Entries, put, scan_all};

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
    let db = read_lock(&engine.db);
    let db = db.as_ref().unwrap();
    let log_cf = db.cf_handle(LOG_FAMILY).unwrap();
    let main_cf = db.cf_handle(MAIN_FAMILY).unwrap();
    assert!(db.get_cf(log_cf, KEYS[2]).unwrap().is_some());
    assert!(db.get_cf(main_cf, KEYS[2]).unwrap().is_none());
    assert!(db.get_cf(main_cf, KEYS[5]).unwrap().is_some());
    assert!(db.get_cf(log_cf, KEYS[5]).unwrap().is_none());
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
