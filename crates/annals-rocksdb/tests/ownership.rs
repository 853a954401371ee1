//! Whose files: the RocksDB store writes only into a folder it created (or
//! found empty) and marked, or a store of an earlier release; it opens
//! read-only without changing any file, and creates owner-only files.
#![allow(missing_docs, clippy::unwrap_used)]

mod common;

use std::fs;
use std::path::Path;

use annals_backend_tests::files::{Tree, mode};
use annals_core::files::{FileMode, MARKER_FILE};
use annals_core::{Error, ExpectedVersion, StreamId};
use annals_rocksdb::RocksDbOptions;
use common::{dump, event, open, populate};

fn read_only() -> RocksDbOptions {
    RocksDbOptions {
        read_only: true,
        ..RocksDbOptions::default()
    }
}

fn every_way() -> [RocksDbOptions; 3] {
    [
        RocksDbOptions::default(),
        RocksDbOptions {
            create_if_missing: false,
            ..RocksDbOptions::default()
        },
        read_only(),
    ]
}

/// Another application's RocksDB database, with data, in `path`.
fn foreign_rocksdb(path: &Path) {
    let mut options = rocksdb::Options::default();
    options.create_if_missing(true);
    let db = rocksdb::DB::open(&options, path).unwrap();
    db.put(b"user:1", b"alice").unwrap();
    db.flush().unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn folders_that_are_not_annals_stores_are_refused_and_left_as_they_are() {
    let dir = tempfile::tempdir().unwrap();
    let theirs = dir.path().join("theirs");
    fs::create_dir_all(theirs.join("photos")).unwrap();
    fs::write(theirs.join("photos/cat.jpg"), b"a cat").unwrap();
    fs::write(theirs.join("CURRENT"), b"not RocksDB's\n").unwrap();
    let app = dir.path().join("app-db");
    foreign_rocksdb(&app);
    for path in [&theirs, &app] {
        let before = Tree::of(path);
        for options in every_way() {
            let err = open(path, options).await.expect_err("not a store");
            assert!(err.is_invalid_input(), "{err:?}");
            let message = err.to_string();
            assert!(message.contains(&path.display().to_string()), "{message}");
            assert!(
                message.contains("holds no annals rocksdb store"),
                "{message}"
            );
        }
        before.assert_same(&Tree::of(path), "opening a foreign folder");
    }
    // The application's database is whole.
    let db = rocksdb::DB::open(&rocksdb::Options::default(), &app).unwrap();
    assert_eq!(db.get(b"user:1").unwrap().unwrap(), b"alice");
}

#[tokio::test(flavor = "multi_thread")]
async fn stores_of_the_earlier_release_open_and_are_marked() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store");
    let store = open(&path, RocksDbOptions::default()).await.unwrap();
    populate(&*store, 1, 20).await.unwrap();
    let before = dump(&*store).await.unwrap();
    store.close().await.unwrap();
    drop(store);
    // The earlier release wrote no marker; a store it never closed cleanly
    // has no close mark either, and is recognised by its column families.
    fs::remove_file(path.join(MARKER_FILE)).unwrap();
    for remove_close_mark in [false, true] {
        if remove_close_mark {
            fs::remove_file(path.join(MARKER_FILE)).unwrap();
            fs::remove_file(path.join("ANNALS-CLOSED")).unwrap();
        }
        let unmarked = Tree::of(&path);
        let store = open(&path, read_only()).await.unwrap();
        assert_eq!(dump(&*store).await.unwrap(), before);
        store.close().await.unwrap();
        drop(store);
        unmarked.assert_same(&Tree::of(&path), "a read-only open");

        let store = open(&path, RocksDbOptions::default()).await.unwrap();
        assert_eq!(dump(&*store).await.unwrap(), before);
        store.close().await.unwrap();
        assert!(path.join(MARKER_FILE).is_file());
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn read_only_changes_nothing_and_refuses_writes() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing");
    assert!(open(&missing, read_only()).await.is_err());
    assert!(!missing.exists(), "nothing created");

    let path = dir.path().join("store");
    let store = open(&path, RocksDbOptions::default()).await.unwrap();
    populate(&*store, 2, 30).await.unwrap();
    let before = dump(&*store).await.unwrap();
    store.close().await.unwrap();
    drop(store);

    let files = Tree::of(dir.path());
    let store = open(&path, read_only()).await.unwrap();
    assert_eq!(dump(&*store).await.unwrap(), before);
    let stream = StreamId::new("s").unwrap();
    let err = store
        .append(&stream, ExpectedVersion::Any, vec![event(1)])
        .await
        .expect_err("read-only");
    assert!(matches!(err, Error::Unsupported(_)), "{err:?}");
    assert!(matches!(store.compact().await, Err(Error::Unsupported(_))));
    store.close().await.unwrap();
    drop(store);
    files.assert_same(&Tree::of(dir.path()), "a read-only open");
}

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread")]
async fn what_the_store_creates_is_owner_only_unless_asked() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a/store");
    let store = open(&path, RocksDbOptions::default()).await.unwrap();
    store.close().await.unwrap();
    assert_eq!(mode(&dir.path().join("a")), 0o700);
    assert_eq!(mode(&path), 0o700);
    assert_eq!(mode(&path.join(MARKER_FILE)), 0o600);
    assert_eq!(mode(&path.join("ANNALS-CLOSED")), 0o600);

    let shared = dir.path().join("shared");
    let options = RocksDbOptions {
        file_mode: FileMode::parse("0640").unwrap(),
        ..RocksDbOptions::default()
    };
    let store = open(&shared, options).await.unwrap();
    store.close().await.unwrap();
    assert_eq!(mode(&shared), 0o750);
    assert_eq!(mode(&shared.join(MARKER_FILE)), 0o640);
}
