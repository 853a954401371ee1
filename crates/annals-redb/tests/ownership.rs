//! Whose files: the redb store writes only into a file it created or an
//! annals store, opens read-only without writing, and creates owner-only
//! files.
#![allow(missing_docs, clippy::unwrap_used)]

mod common;

use std::fs;

use annals_backend_tests::files::{Tree, mode};
use annals_core::files::FileMode;
use annals_core::{Error, ExpectedVersion, StreamId};
use annals_redb::RedbOptions;
use common::{dump, event, open, populate};
use redb::{ReadableDatabase, TableDefinition};

fn every_way() -> [RedbOptions; 4] {
    [
        RedbOptions::default(),
        RedbOptions {
            create: false,
            ..RedbOptions::default()
        },
        RedbOptions {
            read_only: true,
            ..RedbOptions::default()
        },
        RedbOptions {
            check_integrity: false,
            ..RedbOptions::default()
        },
    ]
}

#[test]
fn files_that_are_not_annals_stores_are_refused_and_left_as_they_are() {
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty.redb");
    fs::write(&empty, b"").unwrap();
    let text = dir.path().join("notes.txt");
    fs::write(&text, b"not a database\n".repeat(500)).unwrap();
    // Another program's redb database.
    let foreign = dir.path().join("photos.redb");
    {
        let db = redb::Database::create(&foreign).unwrap();
        let txn = db.begin_write().unwrap();
        {
            let table: TableDefinition<&str, &[u8]> = TableDefinition::new("photos");
            let mut table = txn.open_table(table).unwrap();
            table.insert("cat.jpg", b"a cat".as_slice()).unwrap();
        }
        txn.commit().unwrap();
    }
    let folder = dir.path().join("folder.redb");
    fs::create_dir(&folder).unwrap();

    for (path, expected) in [
        (&empty, "an empty file"),
        (&text, "not a redb database"),
        (&foreign, "another program"),
        (&folder, "is a folder"),
    ] {
        let before = Tree::of(path);
        for options in every_way() {
            let err = open(path, options).expect_err("not an annals store");
            let message = err.to_string();
            assert!(message.contains(&path.display().to_string()), "{message}");
            assert!(message.contains(expected), "{message}");
        }
        before.assert_same(&Tree::of(path), "opening a file that is not a store");
    }
    // The foreign database is still whole.
    let db = redb::Database::open(&foreign).unwrap();
    let txn = db.begin_read().unwrap();
    let table: TableDefinition<&str, &[u8]> = TableDefinition::new("photos");
    let table = txn.open_table(table).unwrap();
    assert_eq!(table.get("cat.jpg").unwrap().unwrap().value(), b"a cat");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_empty_redb_database_of_an_earlier_release_opens() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("old.redb");
    // What the earlier release left after an open and close without
    // appends: a redb database without any table.
    redb::Database::create(&path).unwrap();
    let store = open(&path, RedbOptions::default()).unwrap();
    populate(&*store, 1, 10).await.unwrap();
    store.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn read_only_changes_nothing_and_refuses_writes() {
    let dir = tempfile::tempdir().unwrap();
    let read_only = RedbOptions {
        read_only: true,
        ..RedbOptions::default()
    };
    let missing = dir.path().join("sub/missing.redb");
    assert!(open(&missing, read_only).is_err());
    assert!(!dir.path().join("sub").exists(), "nothing created");

    let path = dir.path().join("store.redb");
    let store = open(&path, RedbOptions::default()).unwrap();
    populate(&*store, 2, 30).await.unwrap();
    let before = dump(&*store).await.unwrap();
    store.close().await.unwrap();
    drop(store);
    std::thread::sleep(std::time::Duration::from_millis(20));

    let files = Tree::of(dir.path());
    let store = open(&path, read_only).unwrap();
    assert_eq!(dump(&*store).await.unwrap(), before);
    let stream = StreamId::new("s").unwrap();
    let err = store
        .append(&stream, ExpectedVersion::Any, vec![event(1)])
        .await
        .expect_err("read-only");
    assert!(matches!(err, Error::Unsupported(_)), "{err:?}");
    assert!(matches!(store.compact().await, Err(Error::Unsupported(_))));
    store.close().await.unwrap();
    files.assert_same(&Tree::of(dir.path()), "a read-only open");
}

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread")]
async fn what_the_store_creates_is_owner_only_unless_asked() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a/b/store.redb");
    let store = open(&path, RedbOptions::default()).unwrap();
    store.close().await.unwrap();
    assert_eq!(mode(&path), 0o600);
    assert_eq!(mode(&dir.path().join("a")), 0o700);
    assert_eq!(mode(&dir.path().join("a/b")), 0o700);

    let shared = dir.path().join("shared/store.redb");
    let options = RedbOptions {
        file_mode: FileMode::parse("0640").unwrap(),
        ..RedbOptions::default()
    };
    let store = open(&shared, options).unwrap();
    store.close().await.unwrap();
    assert_eq!(mode(&shared), 0o640);
    assert_eq!(mode(&dir.path().join("shared")), 0o750);

    // An existing store keeps the mode its owner gave it.
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
    let store = open(&path, RedbOptions::default()).unwrap();
    store.close().await.unwrap();
    assert_eq!(mode(&path), 0o644);
}
