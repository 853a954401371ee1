//! Whose files: the sled store writes only into a folder it created (or
//! found empty) and marked, deletes only generations it made, opens
//! read-only without writing any file of annals', and creates owner-only
//! files.
#![allow(missing_docs, clippy::unwrap_used)]

mod common;

use std::fs;
use std::path::Path;

use annals_backend_tests::files::{Tree, mode};
use annals_core::files::{FileMode, MARKER_FILE};
use annals_core::{Error, ExpectedVersion, StreamId};
use annals_sled::SledOptions;
use common::{dump, event, open, populate};

fn read_only() -> SledOptions {
    SledOptions {
        read_only: true,
        ..SledOptions::default()
    }
}

/// A folder of someone else's: files, and subfolders named like sled
/// generations (`gen-1`), which the first release deleted.
fn foreign_folder(path: &Path) {
    fs::create_dir_all(path.join("gen-1/photos")).unwrap();
    fs::write(path.join("gen-1/photos/cat.jpg"), b"a cat").unwrap();
    fs::create_dir_all(path.join("gen-22")).unwrap();
    fs::write(path.join("notes.txt"), b"mine").unwrap();
}

#[test]
fn a_folder_that_is_not_a_store_is_refused_and_left_as_it_is() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("theirs");
    foreign_folder(&path);
    // And a sled database that annals did not make.
    let raw = dir.path().join("raw-sled");
    {
        let db = sled::open(&raw).unwrap();
        db.insert(b"k", b"v").unwrap();
        db.flush().unwrap();
    }
    for target in [&path, &raw] {
        let before = Tree::of(target);
        for options in [SledOptions::default(), read_only()] {
            let err = open(target, options).expect_err("not a store");
            assert!(err.is_invalid_input(), "{err:?}");
            let message = err.to_string();
            assert!(message.contains(&target.display().to_string()), "{message}");
            assert!(message.contains("holds no annals sled store"), "{message}");
        }
        before.assert_same(&Tree::of(target), "opening a foreign folder");
    }
    // A file where the folder should be.
    let file = dir.path().join("file");
    fs::write(&file, b"data").unwrap();
    let err = open(&file, SledOptions::default()).expect_err("a file");
    assert!(err.to_string().contains("is not a folder"), "{err}");
    assert_eq!(fs::read(&file).unwrap(), b"data");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_empty_folder_becomes_a_store_and_strangers_in_it_are_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store");
    fs::create_dir(&path).unwrap();
    let store = open(&path, SledOptions::default()).unwrap();
    assert_eq!(
        fs::read_to_string(path.join(MARKER_FILE)).unwrap(),
        "annals: sled store\n"
    );
    assert_eq!(
        fs::read_to_string(path.join("gen-0").join(MARKER_FILE)).unwrap(),
        "annals: sled generation 0\n"
    );
    populate(&*store, 1, 20).await.unwrap();
    let before = dump(&*store).await.unwrap();
    store.close().await.unwrap();
    drop(store);

    // Something put into the store's folder that the store did not make:
    // a folder named like a generation, also the very next one.
    foreign_folder(&path);
    let theirs = Tree::of(&path.join("gen-1"));
    let store = open(&path, SledOptions::default()).unwrap();
    let err = store.compact().await.expect_err("gen-1 is in the way");
    assert!(err.to_string().contains("did not make it"), "{err}");
    assert_eq!(dump(&*store).await.unwrap(), before, "the store goes on");
    fs::rename(path.join("gen-1"), dir.path().join("moved")).unwrap();
    store.compact().await.unwrap();
    store.close().await.unwrap();
    drop(store);
    let store = open(&path, SledOptions::default()).unwrap();
    assert_eq!(dump(&*store).await.unwrap(), before);
    store.close().await.unwrap();
    assert!(!path.join("gen-0").exists(), "the store's old generation");
    assert!(path.join("gen-22").is_dir(), "a stranger's folder stays");
    assert!(path.join("notes.txt").is_file(), "a stranger's file stays");
    let moved = Tree::of(&dir.path().join("moved"));
    assert_eq!(
        moved
            .0
            .values()
            .map(|e| e.bytes.clone())
            .collect::<Vec<_>>(),
        theirs
            .0
            .values()
            .map(|e| e.bytes.clone())
            .collect::<Vec<_>>()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_store_of_the_earlier_release_opens_and_is_marked() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store");
    let store = open(&path, SledOptions::default()).unwrap();
    populate(&*store, 2, 20).await.unwrap();
    let before = dump(&*store).await.unwrap();
    store.close().await.unwrap();
    drop(store);
    // The earlier release wrote no markers.
    fs::remove_file(path.join(MARKER_FILE)).unwrap();
    fs::remove_file(path.join("gen-0").join(MARKER_FILE)).unwrap();

    // Read-only: recognised, and nothing of annals' written.
    let unmarked = Tree::of(&path);
    let store = open(&path, read_only()).unwrap();
    assert_eq!(dump(&*store).await.unwrap(), before);
    store.close().await.unwrap();
    drop(store);
    assert!(!path.join(MARKER_FILE).exists());
    for name in ["CURRENT", "CLOSED", "LOCK"] {
        let file = path.join(name);
        assert_eq!(Tree::of(&file).0, {
            let mut only = unmarked.clone().0;
            only.retain(|p, _| p == &file);
            only
        });
    }

    let store = open(&path, SledOptions::default()).unwrap();
    assert_eq!(dump(&*store).await.unwrap(), before);
    store.close().await.unwrap();
    assert!(path.join(MARKER_FILE).is_file());
    assert!(path.join("gen-0").join(MARKER_FILE).is_file());
}

#[tokio::test(flavor = "multi_thread")]
async fn read_only_writes_nothing_of_annals_and_refuses_writes() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing");
    assert!(open(&missing, read_only()).is_err());
    assert!(!missing.exists(), "nothing created");
    let empty = dir.path().join("empty");
    fs::create_dir(&empty).unwrap();
    assert!(open(&empty, read_only()).is_err());
    assert_eq!(fs::read_dir(&empty).unwrap().count(), 0, "nothing created");

    let path = dir.path().join("store");
    let store = open(&path, SledOptions::default()).unwrap();
    populate(&*store, 3, 20).await.unwrap();
    let before = dump(&*store).await.unwrap();
    store.close().await.unwrap();
    drop(store);
    // What annals itself keeps (sled may rewrite its own files in gen-0).
    let ours = |tree: Tree| {
        let mut entries = tree.0;
        entries.retain(|p, _| p.parent() == Some(&path) && !p.ends_with("gen-0"));
        entries
    };
    let annals_files = ours(Tree::of(&path));
    let store = open(&path, read_only()).unwrap();
    assert_eq!(dump(&*store).await.unwrap(), before);
    let stream = StreamId::new("s").unwrap();
    let err = store
        .append(&stream, ExpectedVersion::Any, vec![event(1)])
        .await
        .expect_err("read-only");
    assert!(matches!(err, Error::Unsupported(_)), "{err:?}");
    assert!(err.to_string().contains("read-only"), "{err}");
    assert!(matches!(store.compact().await, Err(Error::Unsupported(_))));
    store.close().await.unwrap();
    drop(store);
    assert_eq!(ours(Tree::of(&path)), annals_files);
    let store = open(&path, SledOptions::default()).unwrap();
    assert_eq!(dump(&*store).await.unwrap(), before, "still a clean store");
    store.close().await.unwrap();
}

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread")]
async fn what_the_store_creates_is_owner_only_unless_asked() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a/store");
    let store = open(&path, SledOptions::default()).unwrap();
    populate(&*store, 4, 5).await.unwrap();
    store.compact().await.unwrap();
    store.close().await.unwrap();
    assert_eq!(mode(&dir.path().join("a")), 0o700);
    for folder in [path.clone(), path.join("gen-1")] {
        assert_eq!(mode(&folder), 0o700, "{}", folder.display());
    }
    for name in [MARKER_FILE, "LOCK", "CURRENT", "CLOSED"] {
        assert_eq!(mode(&path.join(name)), 0o600, "{name}");
    }

    let shared = dir.path().join("shared");
    let options = SledOptions {
        file_mode: FileMode::parse("0640").unwrap(),
        ..SledOptions::default()
    };
    let store = open(&shared, options).unwrap();
    store.close().await.unwrap();
    assert_eq!(mode(&shared), 0o750);
    assert_eq!(mode(&shared.join("gen-0")), 0o750);
    assert_eq!(mode(&shared.join("CURRENT")), 0o640);
}
