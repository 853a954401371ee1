//! Living with history through `annals-store`, on this backend: upcasting
//! (schema versions, chains of upcasters, type aliases), crypto-shredding
//! (sealed data, `forget`, the erased marker, the key check of the master
//! key, no plaintext anywhere in the store) and retention (policies per
//! stream and by prefix, honoured by reads at once, enforced with
//! `truncate_stream` \[S3\]).
//!
//! Everything here is built on the public `LogBackend` contract: keys and
//! policies live in the aux space (\[X1\]) and commit with appends (\[X2\]), so
//! these cases check the layer and what it relies on.

use std::path::Path;
use std::time::Duration;

use annals_core::{
    Direction, Error, ExpectedVersion, NewEvent, Position, RecordedEvent, Timestamp, Version,
};
use annals_store::{
    Decoded, EventStore, Indexer, ManualClock, MasterKey, PolicySource, RetentionPolicy,
    Subscription, TypedEvent, is_sealed,
};
use futures::StreamExt;
use serde::{Deserialize, Serialize};

use super::{Case, case};
use crate::Harness;
use crate::support::*;

/// The cases of this module.
pub fn cases<H: Harness>() -> Vec<Case<H>> {
    vec![
        case!(d3_upcasting_reads_v1_and_v2_events_as_v3),
        case!(d3_a_missing_upcaster_is_a_decode_error_naming_type_and_version),
        case!(d3_an_alias_reads_a_renamed_type),
        case!(x2_forget_erases_one_subject_everywhere, |c| c.aux),
        case!(
            x1_no_plaintext_of_a_sealed_event_anywhere_in_the_store,
            |c| c.aux
        ),
        case!(x1_a_wrong_master_key_is_a_clear_error, |c| c.aux),
        case!(x2_an_erased_event_does_not_stop_a_projection, |c| c.aux),
        case!(
            s3_retention_by_count_hides_at_once_then_enforce_truncates,
            |c| { c.aux && c.truncate }
        ),
        case!(s3_retention_by_age_follows_the_clock, |c| c.aux
            && c.truncate),
        case!(s3_retention_defaults_by_prefix_and_stream_overrides, |c| {
            c.aux && c.truncate
        }),
    ]
}

/// How long a case waits for an event a subscription must deliver.
const WAIT: Duration = Duration::from_secs(30);

// ------------------------------------------------------------ upcasting

/// Version 1 of a profile: one name.
#[derive(Serialize, Deserialize, Debug, PartialEq)]
struct ProfileV1 {
    name: String,
}

impl TypedEvent for ProfileV1 {
    const EVENT_TYPE: &'static str = "ProfileSet";
}

/// Version 2: the name became `full_name`.
#[derive(Serialize, Deserialize, Debug, PartialEq)]
struct ProfileV2 {
    full_name: String,
}

impl TypedEvent for ProfileV2 {
    const EVENT_TYPE: &'static str = "ProfileSet";
    const VERSION: u32 = 2;
}

/// Version 3: a country was added.
#[derive(Serialize, Deserialize, Debug, PartialEq)]
struct ProfileV3 {
    full_name: String,
    country: String,
}

impl TypedEvent for ProfileV3 {
    const EVENT_TYPE: &'static str = "ProfileSet";
    const VERSION: u32 = 3;
}

fn v3(name: &str, country: &str) -> ProfileV3 {
    ProfileV3 {
        full_name: name.into(),
        country: country.into(),
    }
}

/// A store over `backend` with the upcasters 1 → 2 → 3 of `ProfileSet`.
async fn upcasting_store(backend: Store) -> Result<EventStore, Error> {
    EventStore::builder(backend)
        .upcaster("ProfileSet", 1, |v| {
            Ok(serde_json::json!({ "full_name": v["name"] }))
        })
        .upcaster("ProfileSet", 2, |mut v| {
            v["country"] = "unknown".into();
            Ok(v)
        })
        .open()
        .await
}

/// Writes the three versions of history into stream "profile-1": v1, v2,
/// v3, v1 (versions 0 to 3).
async fn write_history(backend: &Store) -> CaseResult {
    let plain = EventStore::new(backend.clone());
    let s = sid("profile-1");
    plain
        .append_typed(
            &s,
            ExpectedVersion::NoStream,
            &[ProfileV1 { name: "Ada".into() }],
        )
        .await?;
    plain
        .append_typed(
            &s,
            ExpectedVersion::Any,
            &[ProfileV2 {
                full_name: "Ada Lovelace".into(),
            }],
        )
        .await?;
    plain
        .append_typed(&s, ExpectedVersion::Any, &[v3("Ada King", "GB")])
        .await?;
    plain
        .append_typed(
            &s,
            ExpectedVersion::Any,
            &[ProfileV1 {
                name: "Countess".into(),
            }],
        )
        .await?;
    Ok(())
}

/// \[D3\] \[R1\] typed events carry their schema version; reads through the
/// store (read_typed, a subscription with decode, load) bring v1 and v2
/// events to v3 through the chain 1 → 2 → 3, while the backend keeps the
/// events exactly as written.
pub async fn d3_upcasting_reads_v1_and_v2_events_as_v3<H: Harness>(h: H) -> CaseResult {
    let backend = h.open(default_config()).await?;
    write_history(&backend).await?;
    let store = upcasting_store(backend.clone()).await?;
    let s = sid("profile-1");
    let expected = vec![
        v3("Ada", "unknown"),
        v3("Ada Lovelace", "unknown"),
        v3("Ada King", "GB"),
        v3("Countess", "unknown"),
    ];

    let typed = store.read_typed::<ProfileV3>(&s, Version(0), 10).await?;
    let got: Vec<&ProfileV3> = typed.iter().filter_map(|t| t.event.event()).collect();
    assert_eq!(got, expected.iter().collect::<Vec<_>>(), "read_typed as v3");

    // A subscription brings the data to v3 JSON; decode takes it from there.
    let mut sub = store.subscribe_stream(&s, Version(0))?;
    for want in &expected {
        let event = next(&mut sub, "the profile subscription").await;
        assert_eq!(
            event.metadata, br#"{"annals_schema":3}"#,
            "an upcast event says its new version"
        );
        assert_eq!(store.decode::<ProfileV3>(&event).await?.event(), Some(want));
        // Decoding an event as it is stored upcasts it too.
        let raw = backend
            .read_stream(&s, event.stream_version, 1, Direction::Forward)
            .await?;
        assert_eq!(
            store.decode::<ProfileV3>(&raw.events[0]).await?.event(),
            Some(want)
        );
    }

    // load (snapshots' loads) goes through the same path.
    assert!(store.save_snapshot(&s, Version(1), b"state at 1").await?);
    let (snapshot, rest) = store.load(&s).await?;
    assert_eq!(snapshot.map(|s| s.version), Some(Version(1)));
    let decoded: Vec<ProfileV3> = rest
        .iter()
        .map(|e| ProfileV3::from_recorded(e).expect("load returns v3 data"))
        .collect();
    assert_eq!(decoded, expected[2..]);

    // History is not rewritten: the backend returns v1 bytes for version 0.
    let stored = stream_events(&backend, &s).await?;
    assert_eq!(stored[0].data, br#"{"name":"Ada"}"#);
    assert!(
        stored[0].metadata.is_empty(),
        "v1 events keep empty metadata"
    );
    assert_eq!(stored[1].metadata, br#"{"annals_schema":2}"#);
    // A store without upcasters reads the same events as they are.
    let bare = EventStore::new(backend.clone());
    let v1 = bare.read_typed::<ProfileV1>(&s, Version(0), 1).await?;
    assert_eq!(v1[0].event.event(), Some(&ProfileV1 { name: "Ada".into() }));
    Ok(())
}

/// \[D3\] a chain with a missing step is Error::Decode naming the event's
/// type, its position in the stream and the schema version that has no
/// upcaster; a version newer than the Rust type is refused too; a raw
/// subscription is not stopped by the event it cannot upcast.
pub async fn d3_a_missing_upcaster_is_a_decode_error_naming_type_and_version<H: Harness>(
    h: H,
) -> CaseResult {
    let backend = h.open(default_config()).await?;
    write_history(&backend).await?;
    let s = sid("profile-1");

    // Only 2 → 3 is registered: the v1 events cannot reach v3.
    let store = EventStore::builder(backend.clone())
        .upcaster("ProfileSet", 2, |mut v| {
            v["country"] = "unknown".into();
            Ok(v)
        })
        .open()
        .await?;
    let err = expect_err(
        store.read_typed::<ProfileV3>(&s, Version(0), 10).await,
        "read_typed over a v1 event with no upcaster from v1",
    );
    match &err {
        Error::Decode {
            stream,
            version,
            event_type,
            ..
        } => {
            assert_eq!(
                (stream, *version, event_type.as_str()),
                (&s, Version(0), "ProfileSet")
            );
            let message = err.to_string();
            assert!(
                message.contains("from schema version 1") && message.contains("ProfileSet"),
                "the message names the type and the version: {message}"
            );
        }
        other => panic!("expected Error::Decode, got {other:?}"),
    }
    // The v2 and v3 events still decode.
    let later = store.read_typed::<ProfileV3>(&s, Version(1), 2).await?;
    assert_eq!(later[0].event.event(), Some(&v3("Ada Lovelace", "unknown")));

    // The subscription hands the event out as stored instead of failing.
    let mut sub = store.subscribe_stream(&s, Version(0))?;
    let first = next(&mut sub, "the first profile event").await;
    assert_eq!(first.data, br#"{"name":"Ada"}"#);
    assert!(matches!(
        store.decode::<ProfileV3>(&first).await,
        Err(Error::Decode { .. })
    ));
    let second = next(&mut sub, "the second profile event").await;
    assert_eq!(
        store.decode::<ProfileV3>(&second).await?.event(),
        Some(&v3("Ada Lovelace", "unknown"))
    );

    // An event of a newer version than the type is refused, not misread.
    let bare = EventStore::new(backend.clone());
    let err = expect_err(
        bare.read_typed::<ProfileV2>(&s, Version(2), 1).await,
        "a v3 event read as v2",
    );
    assert!(
        matches!(
            err,
            Error::Decode {
                version: Version(2),
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("newer"), "{err}");

    // Bad registrations are refused when the store opens.
    let twice = EventStore::builder(backend.clone())
        .upcaster("ProfileSet", 1, Ok)
        .upcaster("ProfileSet", 1, Ok)
        .open()
        .await;
    assert_invalid(twice, "two upcasters from one version");
    let zero = EventStore::builder(backend.clone())
        .upcaster("ProfileSet", 0, Ok)
        .open()
        .await;
    assert_invalid(zero, "an upcaster from version 0");
    Ok(())
}

/// What the profile was called before it was renamed.
#[derive(Serialize, Deserialize, Debug, PartialEq)]
struct OldProfile {
    name: String,
}

impl TypedEvent for OldProfile {
    const EVENT_TYPE: &'static str = "UserProfileChanged";
}

/// \[D3\] an alias renames a type on read: events stored under the old name
/// read under the new one and then go through its upcasters; cycles are
/// refused.
pub async fn d3_an_alias_reads_a_renamed_type<H: Harness>(h: H) -> CaseResult {
    let backend = h.open(default_config()).await?;
    let s = sid("profile-2");
    let plain = EventStore::new(backend.clone());
    plain
        .append_typed(
            &s,
            ExpectedVersion::NoStream,
            &[OldProfile {
                name: "Grace".into(),
            }],
        )
        .await?;
    plain
        .append_typed(&s, ExpectedVersion::Any, &[v3("Grace Hopper", "US")])
        .await?;

    let store = upcasting_store_with_alias(backend.clone()).await?;
    let typed = store.read_typed::<ProfileV3>(&s, Version(0), 10).await?;
    assert_eq!(
        typed[0].recorded.event_type, "ProfileSet",
        "read under the new name"
    );
    assert_eq!(typed[0].event.event(), Some(&v3("Grace", "unknown")));
    assert_eq!(typed[1].event.event(), Some(&v3("Grace Hopper", "US")));
    let stored = stream_events(&backend, &s).await?;
    assert_eq!(
        stored[0].event_type, "UserProfileChanged",
        "stored under the old name"
    );

    let cycle = EventStore::builder(backend.clone())
        .alias("A", "B")
        .alias("B", "A")
        .open()
        .await;
    assert_invalid(cycle, "aliases in a cycle");
    Ok(())
}

async fn upcasting_store_with_alias(backend: Store) -> Result<EventStore, Error> {
    EventStore::builder(backend)
        .alias("UserProfileChanged", "ProfileSet")
        .upcaster("ProfileSet", 1, |v| {
            Ok(serde_json::json!({ "full_name": v["name"] }))
        })
        .upcaster("ProfileSet", 2, |mut v| {
            v["country"] = "unknown".into();
            Ok(v)
        })
        .open()
        .await
}

// ------------------------------------------------------------ shredding

/// Personal data, sealed for its subject.
#[derive(Serialize, Deserialize, Debug, PartialEq, Clone)]
struct ContactChanged {
    subject: String,
    email: String,
    phone: String,
}

impl TypedEvent for ContactChanged {
    const EVENT_TYPE: &'static str = "ContactChanged";
    fn subject(&self) -> Option<String> {
        Some(self.subject.clone())
    }
}

/// Not personal: stored in the clear.
#[derive(Serialize, Deserialize, Debug, PartialEq, Clone)]
struct OrderPlaced {
    order: String,
    note: String,
}

impl TypedEvent for OrderPlaced {
    const EVENT_TYPE: &'static str = "OrderPlaced";
}

const ALICE: &str = "subject-7f3a-alice";
const BOB: &str = "subject-91c2-bob";

fn contact(subject: &str, email: &str, phone: &str) -> ContactChanged {
    ContactChanged {
        subject: subject.into(),
        email: email.into(),
        phone: phone.into(),
    }
}

fn test_key(seed: u8) -> MasterKey {
    let mut bytes = [0u8; 32];
    for (i, b) in bytes.iter_mut().enumerate() {
        *b = seed.wrapping_mul(31).wrapping_add(i as u8);
    }
    MasterKey::new(bytes)
}

/// A new stream `s` with one contact of Alice's and one of Bob's.
async fn alice_and_bob(
    store: &EventStore,
    s: &annals_core::StreamId,
    alice: (&str, &str),
    bob: (&str, &str),
) -> CaseResult {
    let both = [contact(ALICE, alice.0, alice.1), contact(BOB, bob.0, bob.1)];
    store
        .append_typed(s, ExpectedVersion::NoStream, &both)
        .await?;
    Ok(())
}

async fn sealing_store(backend: &Store, key: MasterKey) -> Result<EventStore, Error> {
    EventStore::builder(backend.clone())
        .master_key(key)
        .open()
        .await
}

fn contact_of(item: &Decoded<ContactChanged>) -> Option<&str> {
    item.event().map(|c| c.email.as_str())
}

/// \[X2\] \[X1\] forget deletes the subject's key in one aux write: its events
/// then read as erased — through read_typed, a subscription, load, and
/// another store handle — while every other subject's events and the
/// events' other fields read as before; a new event of the forgotten
/// subject gets a new key; the backend never held the plaintext.
pub async fn x2_forget_erases_one_subject_everywhere<H: Harness>(h: H) -> CaseResult {
    let backend = h.open(default_config()).await?;
    let store = sealing_store(&backend, test_key(1)).await?;
    let s = sid("contacts");
    alice_and_bob(
        &store,
        &s,
        ("alice@example.org", "+44 20 7946 0001"),
        ("bob@example.org", "+44 20 7946 0002"),
    )
    .await?;
    store
        .append_typed(
            &s,
            ExpectedVersion::Any,
            &[contact(ALICE, "alice@new.example.org", "+44 20 7946 0003")],
        )
        .await?;

    let before = store
        .read_typed::<ContactChanged>(&s, Version(0), 10)
        .await?;
    let emails: Vec<Option<&str>> = before.iter().map(|t| contact_of(&t.event)).collect();
    assert_eq!(
        emails,
        [
            Some("alice@example.org"),
            Some("bob@example.org"),
            Some("alice@new.example.org")
        ]
    );
    for e in stream_events(&backend, &s).await? {
        assert!(is_sealed(&e), "the backend holds sealed data only");
        assert!(!contains(&e.data, b"example.org"));
    }

    assert!(store.forget(ALICE).await?, "alice had a key");
    assert!(
        !store.forget(ALICE).await?,
        "forgetting twice finds nothing"
    );

    let after = store
        .read_typed::<ContactChanged>(&s, Version(0), 10)
        .await?;
    assert!(
        after[0].event.is_erased() && after[2].event.is_erased(),
        "alice is erased"
    );
    assert_eq!(
        contact_of(&after[1].event),
        Some("bob@example.org"),
        "bob is not"
    );
    // The event itself is still there: stream, version, type, id.
    assert_eq!(after[0].recorded.event_type, "ContactChanged");
    assert_eq!(after[0].recorded.event_id, before[0].recorded.event_id);

    // Another handle (another process) sees the same.
    let other = sealing_store(&backend, test_key(1)).await?;
    let seen = other
        .read_typed::<ContactChanged>(&s, Version(0), 10)
        .await?;
    assert!(seen[0].event.is_erased() && !seen[1].event.is_erased());
    let (_, loaded) = other.load(&s).await?;
    assert!(
        is_sealed(&loaded[0]) && !is_sealed(&loaded[1]),
        "load opens bob only"
    );

    // Alice comes back: a new key, which opens only the new event.
    store
        .append_typed(
            &s,
            ExpectedVersion::Any,
            &[contact(ALICE, "alice@third.example.org", "0")],
        )
        .await?;
    let again = store
        .read_typed::<ContactChanged>(&s, Version(0), 10)
        .await?;
    assert!(again[0].event.is_erased());
    assert_eq!(contact_of(&again[3].event), Some("alice@third.example.org"));

    // Sealing and forgetting need the master key.
    let keyless = EventStore::new(backend.clone());
    assert_invalid(keyless.forget(BOB).await, "forget without a master key");
    assert_invalid(
        keyless
            .append_typed(&s, ExpectedVersion::Any, &[contact(BOB, "b", "c")])
            .await,
        "sealing without a master key",
    );
    let err = expect_err(
        keyless
            .read_typed::<ContactChanged>(&s, Version(1), 1)
            .await,
        "reading sealed data without the master key",
    );
    assert!(
        matches!(err, Error::Decode { .. }) && err.to_string().contains("master key"),
        "{err}"
    );
    Ok(())
}

/// Indexes the order of plain events and the e-mail of any event whose
/// data it can read: an indexer only ever sees what the backend stores.
struct EverythingIndexer;

impl Indexer for EverythingIndexer {
    fn name(&self) -> &str {
        "everything"
    }
    fn version(&self) -> u32 {
        1
    }
    fn keys(&self, event: &RecordedEvent) -> Vec<String> {
        let Ok(json) = serde_json::from_slice::<serde_json::Value>(&event.data) else {
            return vec![format!("opaque:{}", String::from_utf8_lossy(&event.data))];
        };
        ["email", "order"]
            .iter()
            .filter_map(|f| json[f].as_str().map(String::from))
            .collect()
    }
}

const SECRETS: [&str; 4] = [
    "alice.liddell@wonderland.example",
    "Rabbit Hole 1, Oxford",
    "bob.builder@site.example",
    ALICE,
];
const CANARY: &str = "canary-order-note-visible-in-the-clear";

/// \[X1\] \[S3\] no plaintext of a sealed event, nor its subject, is written
/// anywhere the store keeps bytes — events, aux entries (keys, indexes,
/// snapshots), and, for a store with files, any byte of any file — after
/// sealing, reading, subscribing, forgetting, rebuilding an index and an
/// export-like read of everything; the plain canary is found, so the
/// search can fail.
pub async fn x1_no_plaintext_of_a_sealed_event_anywhere_in_the_store<H: Harness>(
    h: H,
) -> CaseResult {
    let backend = h.open(default_config()).await?;
    let store = EventStore::builder(backend.clone())
        .master_key(test_key(2))
        .indexer(EverythingIndexer)
        .open()
        .await?;
    let s = sid("customer-42");
    alice_and_bob(&store, &s, (SECRETS[0], SECRETS[1]), (SECRETS[2], "1")).await?;
    store
        .append_typed(
            &s,
            ExpectedVersion::Any,
            &[OrderPlaced {
                order: "order-9".into(),
                note: CANARY.into(),
            }],
        )
        .await?;
    // Read it all through the store (plaintext in memory only).
    let mut sub = store.subscribe_all(Position::START, None)?;
    for _ in 0..3 {
        let e = next(&mut sub, "the customer's events").await;
        let _ = store.decode::<ContactChanged>(&e).await;
    }
    drop(sub);
    assert!(store.forget(ALICE).await?);
    assert!(store.forget(BOB).await?);
    store.rebuild("everything").await?;
    assert_eq!(
        ids(&store
            .lookup("everything", "order-9", Position::START, 10)
            .await?)
        .len(),
        1,
        "the plain event is indexed"
    );
    assert!(
        store
            .lookup("everything", SECRETS[0], Position::START, 10)
            .await?
            .is_empty()
    );
    let _ = store
        .save_snapshot(&s, Version(2), b"snapshot without personal data")
        .await?;

    // Everything the store answers: events as stored (an export reads
    // exactly these) and every aux entry.
    let mut answered: Vec<u8> = Vec::new();
    for e in all_events(&backend).await? {
        answered.extend_from_slice(e.stream_id.as_bytes());
        answered.extend_from_slice(e.event_type.as_bytes());
        answered.extend_from_slice(&e.data);
        answered.extend_from_slice(&e.metadata);
        for t in &e.tags {
            answered.extend_from_slice(t.as_bytes());
        }
    }
    for (k, v) in all_aux(&backend).await? {
        answered.extend_from_slice(&k);
        answered.extend_from_slice(&v);
    }
    assert!(
        contains(&answered, CANARY.as_bytes()),
        "the canary is readable"
    );
    for secret in SECRETS {
        assert!(
            !contains(&answered, secret.as_bytes()),
            "{secret:?} is in what the store answers"
        );
    }
    let master_hex = test_key(2).to_hex();
    assert!(!contains(&answered, master_hex.as_bytes()));

    // Every byte of every file, while the store is open and after close.
    if let Some(dir) = h.files() {
        check_files(&dir, "open")?;
        backend.close().await?;
        check_files(&dir, "closed")?;
    }
    Ok(())
}

/// Searches every file under `dir` for the secrets (none) and the canary
/// (found).
fn check_files(dir: &Path, when: &str) -> CaseResult {
    let mut bytes = Vec::new();
    let mut files = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in
            std::fs::read_dir(&d).map_err(|e| Failure::new(format!("{}: {e}", d.display())))?
        {
            let path = entry.map_err(|e| Failure::new(e.to_string()))?.path();
            if path.is_dir() {
                stack.push(path);
            } else {
                let content = std::fs::read(&path)
                    .map_err(|e| Failure::new(format!("{}: {e}", path.display())))?;
                for secret in SECRETS {
                    assert!(
                        !contains(&content, secret.as_bytes()),
                        "{secret:?} is in the file {} ({when})",
                        path.display()
                    );
                }
                bytes.extend_from_slice(&content);
                files += 1;
            }
        }
    }
    assert!(files > 0, "the store keeps files in {}", dir.display());
    assert!(
        contains(&bytes, CANARY.as_bytes()),
        "the plain canary is in none of the {files} files ({when}): this search would \
         not see plaintext either (compressed files?)"
    );
    Ok(())
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|w| w == needle)
}

/// \[X1\] a store opened with another master key than the one its data keys
/// were made with is refused with a clear InvalidInput (instead of reading
/// everything as erased); the right key still opens it.
pub async fn x1_a_wrong_master_key_is_a_clear_error<H: Harness>(h: H) -> CaseResult {
    let backend = h.open(default_config()).await?;
    let store = sealing_store(&backend, test_key(3)).await?;
    let s = sid("contacts-3");
    store
        .append_typed(
            &s,
            ExpectedVersion::NoStream,
            &[contact(ALICE, "a@example.net", "1")],
        )
        .await?;
    let err = assert_invalid(
        sealing_store(&backend, test_key(4)).await,
        "opening with another master key",
    );
    assert!(err.to_string().contains("wrong master key"), "{err}");
    assert!(
        !err.to_string().contains(test_key(4).to_hex().as_str()),
        "the message never shows a key"
    );
    let again = sealing_store(&backend, test_key(3)).await?;
    let read = again
        .read_typed::<ContactChanged>(&s, Version(0), 1)
        .await?;
    assert_eq!(contact_of(&read[0].event), Some("a@example.net"));
    Ok(())
}

/// \[X2\] \[R8\] a projection that follows a subscription and decodes through
/// the store meets the erased event as Decoded::Erased and goes on: events
/// after it, and live ones, still arrive.
pub async fn x2_an_erased_event_does_not_stop_a_projection<H: Harness>(h: H) -> CaseResult {
    let backend = h.open(default_config()).await?;
    let store = sealing_store(&backend, test_key(5)).await?;
    let s = sid("contacts-5");
    alice_and_bob(
        &store,
        &s,
        ("gone@example.net", "1"),
        ("kept@example.net", "2"),
    )
    .await?;
    store.forget(ALICE).await?;
    let mut sub = store.subscribe_all(Position::START, None)?;
    let mut seen = Vec::new();
    for _ in 0..2 {
        let e = next(&mut sub, "the contacts").await;
        seen.push(contact_of(&store.decode::<ContactChanged>(&e).await?).map(String::from));
    }
    store
        .append_typed(
            &s,
            ExpectedVersion::Any,
            &[contact(BOB, "live@example.net", "3")],
        )
        .await?;
    let live = next(&mut sub, "the live contact").await;
    seen.push(contact_of(&store.decode::<ContactChanged>(&live).await?).map(String::from));
    assert_eq!(
        seen,
        [
            None,
            Some("kept@example.net".into()),
            Some("live@example.net".into())
        ]
    );
    Ok(())
}

// ------------------------------------------------------------ retention

/// `n` plain events.
fn plain(n: usize) -> Vec<NewEvent> {
    (0..n)
        .map(|i| {
            NewEvent::builder("Tick")
                .data(format!("tick {i}").into_bytes())
                .build()
        })
        .collect()
}

async fn store_versions(store: &EventStore, s: &annals_core::StreamId) -> Result<Vec<u64>, Error> {
    Ok(versions(
        &store
            .read_stream(s, Version(0), 100, Direction::Forward)
            .await?
            .events,
    ))
}

/// \[S3\] \[S1\] a policy is honoured by reads through the store the moment it
/// is set (read_stream, subscriptions, load) while the backend still
/// returns everything; enforce_retention then truncates the stream through
/// the contract — never deleting it, its numbering carrying on.
pub async fn s3_retention_by_count_hides_at_once_then_enforce_truncates<H: Harness>(
    h: H,
) -> CaseResult {
    let backend = h.open(default_config()).await?;
    let store = EventStore::new(backend.clone());
    let s = sid("metrics-1");
    backend
        .append(&s, ExpectedVersion::NoStream, plain(10))
        .await?;
    store
        .set_retention(&s, RetentionPolicy::default().max_count(3))
        .await?;
    assert_eq!(
        store.retention(&s).await?,
        Some((
            RetentionPolicy::default().max_count(3),
            PolicySource::Stream
        ))
    );

    assert_eq!(store_versions(&store, &s).await?, [7, 8, 9]);
    let backward = store
        .read_stream(&s, Version(u64::MAX), 100, Direction::Backward)
        .await?;
    assert_eq!(versions(&backward.events), [9, 8, 7]);
    assert_eq!(
        stream_events(&backend, &s).await?.len(),
        10,
        "the backend keeps them until enforced"
    );
    let (_, loaded) = store.load(&s).await?;
    assert_eq!(versions(&loaded), [7, 8, 9]);
    let mut sub = store.subscribe_stream(&s, Version(0))?;
    let mut all = store.subscribe_all(Position::START, None)?;
    for want in [7, 8, 9] {
        assert_eq!(
            next(&mut sub, "the kept events").await.stream_version,
            Version(want)
        );
        assert_eq!(
            next(&mut all, "the kept events, log-wide")
                .await
                .stream_version,
            Version(want)
        );
    }
    // A new event moves the window.
    backend
        .append(&s, ExpectedVersion::Exact(Version(9)), plain(1))
        .await?;
    assert_eq!(
        next(&mut sub, "the live event").await.stream_version,
        Version(10)
    );
    assert_eq!(store_versions(&store, &s).await?, [8, 9, 10]);

    let report = store.enforce_retention().await?;
    assert_eq!((report.streams_truncated, report.events_removed), (1, 8));
    assert_eq!(versions(&stream_events(&backend, &s).await?), [8, 9, 10]);
    assert_eq!(backend.stream_version(&s).await?, Version(10));
    assert!(
        backend.stream_exists(&s).await?,
        "a stream is truncated, never deleted"
    );
    let again = store.enforce_retention().await?;
    assert_eq!(
        again.events_removed, 0,
        "enforcing twice removes nothing more"
    );
    backend
        .append(&s, ExpectedVersion::Exact(Version(10)), plain(1))
        .await?;
    assert_eq!(store_versions(&store, &s).await?, [9, 10, 11]);

    // truncate_before combines with the count: the stricter wins.
    store
        .set_retention(
            &s,
            RetentionPolicy::default()
                .max_count(3)
                .truncate_before(Version(10)),
        )
        .await?;
    assert_eq!(store_versions(&store, &s).await?, [10, 11]);
    // Clearing the policy brings back what was only hidden.
    store.clear_retention(&s).await?;
    assert_eq!(store_versions(&store, &s).await?, [8, 9, 10, 11]);

    // Bad policies are refused, and nothing is written.
    assert_invalid(
        store.set_retention(&s, RetentionPolicy::default()).await,
        "an empty policy",
    );
    assert_invalid(
        store
            .set_retention(&s, RetentionPolicy::default().max_count(0))
            .await,
        "max_count 0",
    );
    assert_eq!(store.retention(&s).await?, None);
    Ok(())
}

/// \[S3\] \[D3\] retention by age follows the store's clock: events older than
/// max_age are hidden as the clock moves, and enforce truncates exactly
/// those (recorded_at never decreases along a stream).
pub async fn s3_retention_by_age_follows_the_clock<H: Harness>(h: H) -> CaseResult {
    let backend = h.open(default_config()).await?;
    let s = sid("session-age");
    backend
        .append(&s, ExpectedVersion::NoStream, plain(4))
        .await?;
    tokio::time::sleep(Duration::from_millis(30)).await;
    backend.append(&s, ExpectedVersion::Any, plain(3)).await?;
    let stored = stream_events(&backend, &s).await?;
    let (old_last, young_first) = (stored[3].recorded_at.0, stored[4].recorded_at.0);
    assert!(young_first > old_last, "the second append is later");

    // At "now" = the young events' time, keep what is younger than the
    // middle of the gap.
    let clock = ManualClock::new(Timestamp(young_first));
    let store = EventStore::builder(backend.clone())
        .clock(clock.clone())
        .open()
        .await?;
    let age = Duration::from_micros(young_first - (old_last + young_first) / 2);
    store
        .set_retention(&s, RetentionPolicy::default().max_age(age))
        .await?;
    assert_eq!(store_versions(&store, &s).await?, [4, 5, 6]);
    // An hour later nothing is young enough.
    clock.advance(Duration::from_secs(3600));
    assert_eq!(store_versions(&store, &s).await?, Vec::<u64>::new());
    // Back to the start: enforce removes the old ones only.
    clock.set(Timestamp(young_first));
    assert_eq!(store.enforce_retention_of(&s).await?, 4);
    assert_eq!(versions(&stream_events(&backend, &s).await?), [4, 5, 6]);
    clock.advance(Duration::from_secs(3600));
    assert_eq!(store.enforce_retention_of(&s).await?, 3);
    assert!(stream_events(&backend, &s).await?.is_empty());
    assert!(backend.stream_exists(&s).await?, "truncated, not deleted");
    assert_eq!(backend.stream_version(&s).await?, Version(6));
    Ok(())
}

/// \[S3\] \[S2\] a default policy applies to every stream whose id starts with
/// its prefix (the longest prefix wins); a stream's own policy overrides
/// it; enforce truncates each stream by the policy that applies, and
/// leaves streams without one alone.
pub async fn s3_retention_defaults_by_prefix_and_stream_overrides<H: Harness>(h: H) -> CaseResult {
    let backend = h.open(default_config()).await?;
    let store = EventStore::new(backend.clone());
    let streams = [
        "session-1",
        "session-vip-1",
        "session-2",
        "order-1",
        "session-",
    ];
    for name in streams {
        backend
            .append(&sid(name), ExpectedVersion::NoStream, plain(10))
            .await?;
    }
    store
        .set_default_retention("session-", RetentionPolicy::default().max_count(2))
        .await?;
    store
        .set_default_retention("session-vip-", RetentionPolicy::default().max_count(5))
        .await?;
    store
        .set_retention(&sid("session-2"), RetentionPolicy::default().max_count(1))
        .await?;
    assert_eq!(store.default_retentions().await?.len(), 2);
    assert_eq!(
        store
            .retention(&sid("session-vip-1"))
            .await?
            .map(|(_, s)| s),
        Some(PolicySource::Prefix("session-vip-".into()))
    );

    let kept = [2usize, 5, 1, 10, 2];
    for (name, n) in streams.iter().zip(kept) {
        let got = store_versions(&store, &sid(name)).await?;
        assert_eq!(got.len(), n, "{name} keeps {n}");
    }
    // A log-wide subscription leaves out the same events.
    let total: usize = kept.iter().sum();
    let mut all = store.subscribe_all(Position::START, None)?;
    let seen = take_n(&mut all, total).await;
    assert_eq!(seen.len(), total);
    assert_quiet(&mut all).await;

    let report = store.enforce_retention().await?;
    assert_eq!(report.streams_truncated, 4, "{report:?}");
    assert_eq!(report.events_removed, 8 + 5 + 9 + 8);
    for (name, n) in streams.iter().zip(kept) {
        let stored = stream_events(&backend, &sid(name)).await?;
        assert_eq!(stored.len(), n, "{name} holds {n} after enforcing");
    }
    assert_eq!(
        all_streams(&backend).await?.len(),
        streams.len(),
        "no stream deleted"
    );

    store.clear_default_retention("session-vip-").await?;
    assert_eq!(
        store
            .retention(&sid("session-vip-1"))
            .await?
            .map(|(_, s)| s),
        Some(PolicySource::Prefix("session-".into()))
    );
    assert_invalid(
        store
            .set_default_retention("", RetentionPolicy::default().max_count(1))
            .await,
        "an empty prefix",
    );
    Ok(())
}

// ------------------------------------------------------------ helpers

async fn next(sub: &mut Subscription, what: &str) -> RecordedEvent {
    match tokio::time::timeout(WAIT, sub.next()).await {
        Err(_) => panic!("{what}: no event within {WAIT:?}"),
        Ok(None) => panic!("{what}: the subscription ended"),
        Ok(Some(Err(e))) => panic!("{what}: the subscription failed: {e}"),
        Ok(Some(Ok(event))) => event,
    }
}

async fn take_n(sub: &mut Subscription, n: usize) -> Vec<RecordedEvent> {
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        out.push(next(sub, "the kept events").await);
    }
    out
}

async fn assert_quiet(sub: &mut Subscription) {
    if let Ok(item) = tokio::time::timeout(Duration::from_millis(300), sub.next()).await {
        panic!(
            "expected nothing more, got {:?}",
            item.map(|r| r.map(|e| summary(&e)))
        );
    }
}
