//! Persistence of the redb store: reopening keeps everything ([M5]), and
//! damaged bytes are errors, never panics nor wrong events ([M6]).
#![allow(missing_docs, clippy::unwrap_used)]

mod common;

use std::path::Path;

use annals_core::{Durability, Error, ExpectedVersion, StoreConfig, Version};
use annals_redb::RedbOptions;
use common::{Dump, Rng, dump, event, open, populate, stream};

fn options(durability: Durability) -> RedbOptions {
    RedbOptions::with_config(StoreConfig {
        durability,
        ..StoreConfig::default()
    })
}

fn check_dump_consistent(d: &Dump) {
    assert!(!d.forward.is_empty());
    let mut reversed = d.backward.clone();
    reversed.reverse();
    assert_eq!(d.forward, reversed, "backward is not forward reversed");
    assert_eq!(d.head, d.forward.last().unwrap().position);
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

/// Whether `err` (or one of its sources) is a panic that escaped the engine
/// (tokio reports a panicked blocking task as a `JoinError`).
fn is_escaped_panic(err: &Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = source {
        if e.downcast_ref::<tokio::task::JoinError>().is_some() {
            return true;
        }
        source = e.source();
    }
    false
}

#[derive(Debug, Default)]
struct Outcomes {
    identical: u32,
    /// Read Ok, every event returned correct, but some missing: possible
    /// only without the integrity check (redb trusts its damaged index
    /// pages; see the crate docs on `check_integrity`).
    incomplete: u32,
    corruption: u32,
    backend: u32,
}

/// Writes a store, closes it, then for each trial overwrites a few bytes at
/// random places of the file, reopens it and reads everything: each
/// outcome must be the original store, or `Corruption` / `Backend` — never
/// a panic, never a wrong or missing event.
async fn damage_trials(check_integrity: bool, trials: u64) -> Outcomes {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.redb");
    let options = RedbOptions {
        check_integrity,
        ..options(Durability::Immediate)
    };
    let store = open(&path, options).unwrap();
    populate(&*store, 7, 200).await.unwrap();
    let original = dump(&*store).await.unwrap();
    check_dump_consistent(&original);
    store.close().await.unwrap();
    drop(store);
    let good = std::fs::read(&path).unwrap();

    let mut outcomes = Outcomes::default();
    for trial in 0..trials {
        let mut rng = Rng::new(trial + 1000 * u64::from(check_integrity));
        let mut bad = good.clone();
        let mut places = Vec::new();
        for _ in 0..1 + rng.below(3) {
            let at = rng.below(bad.len() as u64 - 8) as usize;
            let n = 1 + rng.below(8) as usize;
            for b in &mut bad[at..at + n] {
                *b = rng.next_u64() as u8;
            }
            places.push((at, n));
        }
        std::fs::write(&path, &bad).unwrap();
        let outcome = read_damaged(&path, options).await;
        let what = format!("trial {trial}, bytes overwritten at (offset, len) {places:?}");
        match outcome {
            Ok(d) if d == original => outcomes.identical += 1,
            Ok(d) => {
                assert!(
                    !check_integrity,
                    "{what}: read Ok but not the original store"
                );
                // Never a wrong event: whatever came back is the original's.
                for event in d.forward.iter().chain(&d.backward) {
                    assert!(
                        original.forward.contains(event),
                        "{what}: an event that was never written: {event:?}"
                    );
                }
                outcomes.incomplete += 1;
            }
            Err(e @ Error::Corruption { .. }) => {
                assert!(!is_escaped_panic(&e), "{what}: {e:?}");
                outcomes.corruption += 1;
            }
            Err(e @ Error::Backend { .. }) => {
                assert!(!is_escaped_panic(&e), "{what}: a panic escaped: {e:?}");
                outcomes.backend += 1;
            }
            Err(e) => panic!("{what}: neither Ok nor Corruption nor Backend: {e:?}"),
        }
    }
    outcomes
}

async fn read_damaged(path: &Path, options: RedbOptions) -> Result<Dump, Error> {
    let path = path.to_path_buf();
    let store = tokio::task::spawn_blocking(move || open(&path, options))
        .await
        .unwrap()?;
    let result = dump(&*store).await;
    // Closing a damaged store may fail too; the file is rewritten anyway.
    let _ = store.close().await;
    result
}

// [M6] With the integrity check on open (the default).
#[tokio::test(flavor = "multi_thread")]
async fn damaged_bytes_are_errors_never_panics_nor_wrong_events_m6() {
    let outcomes = damage_trials(true, 200).await;
    eprintln!("with check_integrity: {outcomes:?}");
    assert!(outcomes.corruption + outcomes.backend > 0, "{outcomes:?}");
}

// [M6] Without the integrity check: redb reads the damaged pages as they are
// (and may panic on them, which the engine catches).
#[tokio::test(flavor = "multi_thread")]
async fn damaged_bytes_without_integrity_check_m6() {
    let outcomes = damage_trials(false, 200).await;
    eprintln!("without check_integrity: {outcomes:?}");
    assert!(outcomes.corruption + outcomes.backend > 0, "{outcomes:?}");
}
