//! [M5] Persistence: everything acknowledged is there, identical, after
//! close and reopen — and after the writing process is killed.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use annals_core::kv::support::BackendOptions;
use annals_core::{Durability, ExpectedVersion, Position, StoreConfig};
use annals_rocksdb::{Compression, RocksDbOptions};
use common::{dump, event, open, populate, stream};

fn options(durability: Durability) -> RocksDbOptions {
    RocksDbOptions::with_config(StoreConfig {
        durability,
        ..StoreConfig::default()
    })
}

/// [M5] Close and reopen, several times, with writes in between: every
/// read gives what it gave before closing, and numbering goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reopen_after_close_keeps_everything() {
    for durability in [Durability::Immediate, Durability::Relaxed] {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store");
        let store = open(&path, options(durability)).await.unwrap();
        populate(&*store, 1, 150).await.unwrap();
        let before = dump(&*store).await.unwrap();
        assert!(before.forward.len() > 300);
        store.close().await.unwrap();
        drop(store);

        let store = open(&path, options(durability)).await.unwrap();
        assert_eq!(dump(&*store).await.unwrap(), before, "{durability:?}");
        // Writing on after a reopen: positions and versions continue.
        let written = store
            .append(&stream(1), ExpectedVersion::Any, vec![event(1), event(2)])
            .await
            .unwrap();
        assert_eq!(written.first_position, Position(before.head.0 + 1));
        populate(&*store, 2, 40).await.unwrap();
        let second = dump(&*store).await.unwrap();
        store.close().await.unwrap();
        drop(store);

        let store = open(&path, options(durability)).await.unwrap();
        assert_eq!(dump(&*store).await.unwrap(), second, "{durability:?}");
        store.close().await.unwrap();
    }
}

/// [M5] Options that change only how data is stored (compression, cache,
/// memtable size) do not change what a reopened store reads — even when
/// they differ between two opens of the same store.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reopen_with_other_storage_options_keeps_everything() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store");
    let first = RocksDbOptions {
        compression: Compression::Zstd,
        write_buffer_bytes: 64 << 10, // flushes to table files as it goes
        ..RocksDbOptions::default()
    };
    let store = open(&path, first).await.unwrap();
    populate(&*store, 3, 200).await.unwrap();
    store.compact().await.unwrap();
    let before = dump(&*store).await.unwrap();
    store.close().await.unwrap();
    drop(store);
    let second = RocksDbOptions {
        compression: Compression::None,
        block_cache_bytes: 0,
        ..RocksDbOptions::default()
    };
    let store = open(&path, second).await.unwrap();
    assert_eq!(dump(&*store).await.unwrap(), before);
    store.close().await.unwrap();
}

/// [M5] A store dropped without `close` is closed by its writer thread
/// (which syncs and flushes as `close` does): everything is there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reopen_after_drop_without_close_keeps_everything() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store");
    let store = open(&path, options(Durability::Relaxed)).await.unwrap();
    populate(&*store, 4, 60).await.unwrap();
    let before = dump(&*store).await.unwrap();
    drop(store);
    // The writer thread releases the folder shortly after the drop.
    let deadline = Instant::now() + Duration::from_secs(20);
    let store = loop {
        match open(&path, options(Durability::Relaxed)).await {
            Ok(store) => break store,
            Err(e) if Instant::now() < deadline => {
                let _ = e;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(e) => panic!("the dropped store never released its folder: {e}"),
        }
    };
    assert_eq!(dump(&*store).await.unwrap(), before);
    store.close().await.unwrap();
}

fn open_rocksdb(
    path: &std::path::Path,
    config: StoreConfig,
) -> annals_core::Result<std::sync::Arc<dyn annals_core::LogBackend>> {
    let store = annals_rocksdb::open(path, RocksDbOptions::with_config(config))?;
    Ok(std::sync::Arc::new(store))
}

// [M5] [D5] A writer process killed at some instant (the shared kill -9
// trials, `annals_backend_tests::crash`), with `Immediate` and `Relaxed`:
// every append it acknowledged is there, whole, at its position, and no
// position is handed out twice. (With `Relaxed`, RocksDB hands every write
// to the OS before returning, so a killed process loses nothing either;
// only a machine crash could.)
annals_backend_tests::kill_tests!(open_rocksdb, 3);
