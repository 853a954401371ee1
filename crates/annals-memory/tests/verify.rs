//! `verify` (the integrity check shared by every key-value backend) finds
//! each kind of damage, named where it is. The damage is made through the
//! engine, under the store, as a bad disk or a bug would.

use annals_core::kv::layout::{self, StreamMeta};
use annals_core::kv::{KvEngine, KvStore, WriteBatch, codec};
use annals_core::{
    ExpectedVersion, LogBackend, NewEvent, Position, StoreConfig, StreamId, VerifyReport, Version,
};
use annals_memory::MemoryEngine;

/// A store with two streams: `a` (3 events typed `T`, tagged `x`) and `b`
/// (1 event typed `U`), at positions 1–4.
async fn store() -> KvStore<MemoryEngine> {
    let store = annals_memory::open(StoreConfig::default()).expect("opens");
    let a = StreamId::new("a").expect("valid");
    let b = StreamId::new("b").expect("valid");
    let tagged = || {
        NewEvent::builder("T")
            .tag("x")
            .data(b"payload".to_vec())
            .build()
    };
    store
        .append(
            &a,
            ExpectedVersion::NoStream,
            vec![tagged(), tagged(), tagged()],
        )
        .await
        .expect("appends");
    store
        .append(
            &b,
            ExpectedVersion::NoStream,
            vec![NewEvent::builder("U").build()],
        )
        .await
        .expect("appends");
    let report = store.verify(None).await.expect("verifies");
    assert!(report.is_clean(), "{:?}", report.problems);
    assert_eq!((report.events, report.streams), (4, 2));
    store
}

fn put(store: &KvStore<MemoryEngine>, key: Vec<u8>, value: Vec<u8>) {
    let mut batch = WriteBatch::new();
    batch.put(key, value);
    store.engine().commit(batch, false).expect("commits");
}

fn delete(store: &KvStore<MemoryEngine>, key: Vec<u8>) {
    let mut batch = WriteBatch::new();
    batch.delete(key);
    store.engine().commit(batch, false).expect("commits");
}

/// Verifies and checks that some problem is at `location` and says `what`.
async fn assert_found(store: &KvStore<MemoryEngine>, location: &str, what: &str) -> VerifyReport {
    let report = store.verify(None).await.expect("verifies");
    assert!(
        report
            .problems
            .iter()
            .any(|p| p.location.contains(location) && p.message.contains(what)),
        "expected a problem at {location:?} saying {what:?}, got {:?}",
        report.problems
    );
    report
}

fn log_value(store: &KvStore<MemoryEngine>, position: u64) -> Vec<u8> {
    use annals_core::kv::KvSnapshot;
    let snap = store.engine().snapshot().expect("snapshot");
    snap.get(&layout::log_key(Position(position)))
        .expect("reads")
        .expect("present")
}

#[tokio::test]
async fn a_flipped_byte_in_an_event_is_a_checksum_problem() {
    let store = store().await;
    let mut value = log_value(&store, 2);
    let last = value.len() - 5;
    value[last] ^= 0x01;
    put(&store, layout::log_key(Position(2)), value);
    assert_found(&store, "log record at position 2", "checksum mismatch").await;
    // The stream index entry pointing there is reported too.
    assert_found(
        &store,
        "stream index entry of \"a\" version 1",
        "bad record",
    )
    .await;
}

#[tokio::test]
async fn a_missing_event_is_a_gap_and_a_dangling_index_entry() {
    let store = store().await;
    delete(&store, layout::log_key(Position(2)));
    assert_found(
        &store,
        "stream index entry of \"a\" version 1",
        "holds no event",
    )
    .await;
    assert_found(&store, "tag index entry", "holds no event").await;
}

#[tokio::test]
async fn a_missing_stream_index_entry_is_a_gap() {
    let store = store().await;
    delete(&store, layout::stream_index_key("a", Version(1)));
    assert_found(
        &store,
        "log record at position 2",
        "not in the stream index",
    )
    .await;
    assert_found(&store, "\"a\" version 2", "versions 1..2 are missing").await;
}

#[tokio::test]
async fn missing_type_and_tag_entries_are_found() {
    let store = store().await;
    delete(&store, layout::tag_key("x", Position(3)));
    assert_found(
        &store,
        "log record at position 3",
        "tag \"x\" index entry is missing",
    )
    .await;
    let store = self::store().await;
    delete(&store, layout::type_key("U", Position(4)));
    assert_found(&store, "log record at position 4", "type \"U\" index entry").await;
}

#[tokio::test]
async fn an_index_entry_pointing_at_the_wrong_event_is_found() {
    let store = store().await;
    let key = layout::type_key("T", Position(4));
    put(&store, key.clone(), codec::seal(&key, &[]));
    assert_found(&store, "type index entry", "an event of type \"U\"").await;
    let key = layout::stream_index_key("b", Version(0));
    let value = codec::encode(&key, &1u64).expect("encodes");
    put(&store, key, value);
    assert_found(&store, "\"b\" version 0", "holds \"a\" version 0").await;
}

#[tokio::test]
async fn stream_metadata_disagreeing_with_the_log_is_found() {
    let store = store().await;
    let key = layout::stream_meta_key("a");
    let meta = StreamMeta {
        next_version: 5,
        ..StreamMeta::default()
    };
    put(
        &store,
        key.clone(),
        codec::encode(&key, &meta).expect("encodes"),
    );
    assert_found(
        &store,
        "metadata of stream \"a\"",
        "last version 4 is not in",
    )
    .await;
    assert_found(&store, "\"a\" version 2", "next version is 5").await;

    let short = StreamMeta {
        next_version: 2,
        ..StreamMeta::default()
    };
    put(
        &store,
        key.clone(),
        codec::encode(&key, &short).expect("encodes"),
    );
    assert_found(&store, "log record at position 3", "beyond stream \"a\"").await;

    delete(&store, key);
    assert_found(&store, "log record at position 1", "\"a\" has no metadata").await;
}

#[tokio::test]
async fn events_beyond_the_head_and_stray_keys_are_found() {
    let store = store().await;
    let key = layout::log_key(Position(9));
    let value = log_value(&store, 4);
    put(&store, key, value);
    // Copied from position 4, so its checksum (over the key) fails.
    assert_found(
        &store,
        "log record at position 9",
        "beyond the store's head",
    )
    .await;
    put(&store, vec![0x42, 1, 2], vec![0]);
    put(&store, vec![layout::META, b'Z'], vec![0]);
    let report = assert_found(&store, "", "is not a key annals writes").await;
    assert!(report.problem_count() >= 4, "{:?}", report.problems);
    // The engine's own keys are its business.
    let before = report.problem_count();
    put(&store, vec![layout::ENGINE_PRIVATE, b'x'], vec![0]);
    let report = store.verify(None).await.expect("verifies");
    assert_eq!(report.problem_count(), before, "{:?}", report.problems);
}

#[tokio::test]
async fn a_damaged_aux_value_is_found() {
    let store = store().await;
    store.aux_put(b"checkpoint", b"7").await.expect("puts");
    put(&store, layout::aux_key(b"checkpoint"), b"garbage!".to_vec());
    assert_found(&store, "", "checksum").await;
}

#[tokio::test]
async fn a_store_after_truncate_delete_and_compact_is_clean() {
    let store = store().await;
    let a = StreamId::new("a").expect("valid");
    let b = StreamId::new("b").expect("valid");
    store
        .truncate_stream(&a, Version(2))
        .await
        .expect("truncates");
    store
        .delete_stream(&b, ExpectedVersion::Any)
        .await
        .expect("deletes");
    let report = store.verify(None).await.expect("verifies");
    assert!(report.is_clean(), "{:?}", report.problems);
    store.compact().await.expect("compacts");
    let report = store.verify(None).await.expect("verifies");
    assert!(report.is_clean(), "{:?}", report.problems);
    assert_eq!(report.events, 1);
}

#[tokio::test]
async fn many_problems_are_counted_past_the_listed_ones() {
    let store = annals_memory::open(StoreConfig::default()).expect("opens");
    let s = StreamId::new("s").expect("valid");
    let events = (0..1200).map(|_| NewEvent::builder("T").build()).collect();
    store
        .append(&s, ExpectedVersion::Any, events)
        .await
        .expect("appends");
    let mut batch = WriteBatch::new();
    for p in 1..=1200 {
        batch.delete(layout::type_key("T", Position(p)));
    }
    store.engine().commit(batch, false).expect("commits");
    let report = store.verify(None).await.expect("verifies");
    assert_eq!(report.problems.len(), annals_core::MAX_LISTED_PROBLEMS);
    assert_eq!(report.problem_count(), 1200);
}
