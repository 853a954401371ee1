//! Persistence of the redb store: reopening keeps everything ([M5]), and
//! damaged bytes are errors, never panics nor wrong events ([M6]).
#![allow(missing_docs, clippy::unwrap_used)]

mod common;

use annals_backend_tests::damage::{DamageTrials, Outcomes, check_dump_consistent};
use annals_core::kv::support::BackendOptions;
use annals_core::{Durability, ExpectedVersion, StoreConfig, Version};
use annals_redb::RedbOptions;
use common::{dump, event, open, populate, stream};

fn options(durability: Durability) -> RedbOptions {
    RedbOptions::with_config(StoreConfig {
        durability,
        ..StoreConfig::default()
    })
}

// [M5] Everything acknowledged is there, identical, after close and reopen —
// also after compaction, and with either durability.
#[tokio::test(flavor = "multi_thread")]
async fn reopen_keeps_everything_identical_m5() {
    for durability in [Durability::Immediate, Durability::Relaxed] {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store.redb");
        let store = open(&path, options(durability)).unwrap();
        populate(&*store, 1, 300).await.unwrap();
        let before = dump(&*store).await.unwrap();
        check_dump_consistent(&before);
        store.close().await.unwrap();
        drop(store);

        let store = open(&path, options(durability)).unwrap();
        assert_eq!(
            dump(&*store).await.unwrap(),
            before,
            "{durability:?}: reopen"
        );

        // Compaction changes nothing readable, before or after reopening.
        store.compact().await.unwrap();
        assert_eq!(
            dump(&*store).await.unwrap(),
            before,
            "{durability:?}: compact"
        );
        store.close().await.unwrap();
        drop(store);
        let store = open(&path, options(durability)).unwrap();
        assert_eq!(
            dump(&*store).await.unwrap(),
            before,
            "{durability:?}: compact + reopen"
        );

        // The store goes on after its last position and version.
        let s = stream(0);
        let version = store.stream_version(&s).await.unwrap();
        let result = store
            .append(&s, ExpectedVersion::Exact(version), vec![event(99_999)])
            .await
            .unwrap();
        assert_eq!(result.first_version, Version(version.0 + 1));
        assert!(result.first_position > before.head);
        store.close().await.unwrap();
    }
}

/// The damage trials (`annals_backend_tests::damage`) of the store file,
/// with or without redb's integrity check on open.
async fn damage_trials(check_integrity: bool, trials: u64) -> Outcomes {
    let options = RedbOptions {
        check_integrity,
        ..options(Durability::Immediate)
    };
    DamageTrials::new(move |path| open(path, options))
        .named("store.redb")
        // Without the integrity check redb trusts its damaged index pages
        // (see the crate docs on `check_integrity`): events may be missing.
        .incomplete_allowed(!check_integrity)
        .run(7 + u64::from(check_integrity), trials)
        .await
}

// [M6] With the integrity check on open (the default).
#[tokio::test(flavor = "multi_thread")]
async fn damaged_bytes_are_errors_never_panics_nor_wrong_events_m6() {
    let outcomes = damage_trials(true, 200).await;
    outcomes.print("with check_integrity");
    assert!(outcomes.corruption + outcomes.backend > 0, "{outcomes:?}");
}

// [M6] Without the integrity check: redb reads the damaged pages as they are
// (and may panic on them, which the engine catches).
#[tokio::test(flavor = "multi_thread")]
async fn damaged_bytes_without_integrity_check_m6() {
    let outcomes = damage_trials(false, 200).await;
    outcomes.print("without check_integrity");
    assert!(outcomes.corruption + outcomes.backend > 0, "{outcomes:?}");
}
