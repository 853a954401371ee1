//! `annals forget`, `annals retention` and what `export` and `migrate` do
//! with sealed events, run for real on redb stores.
#![allow(missing_docs, clippy::unwrap_used)]

use std::path::Path;
use std::process::{Command, Output};

use annals::{
    Decoded, Direction, EventStore, ExpectedVersion, MasterKey, NewEvent, StreamId, TypedEvent,
    Version,
};
use serde::{Deserialize, Serialize};
use tempfile::TempDir;

const KEY: &str = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
const OTHER_KEY: &str = "ffeeddccbbaa99887766554433221100ffeeddccbbaa99887766554433221100";
const SECRET: &str = "ann.secret@mail.example";

#[derive(Serialize, Deserialize, Debug, PartialEq)]
struct EmailChanged {
    customer: String,
    email: String,
}

impl TypedEvent for EmailChanged {
    const EVENT_TYPE: &'static str = "EmailChanged";
    fn subject(&self) -> Option<String> {
        Some(self.customer.clone())
    }
}

fn annals(args: &[&str], key: Option<&str>) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_annals"));
    command.args(args).env_remove("ANNALS_MASTER_KEY");
    if let Some(key) = key {
        command.env("ANNALS_MASTER_KEY", key);
    }
    command.output().expect("the binary runs")
}

fn ok(args: &[&str], key: Option<&str>) -> String {
    let output = annals(args, key);
    assert!(
        output.status.success(),
        "annals {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn fails(args: &[&str], key: Option<&str>, message: &str) {
    let output = annals(args, key);
    let err = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "annals {args:?}: {err}");
    assert!(err.contains(message), "expected {message:?} in {err:?}");
    assert!(
        !err.contains(KEY) && !err.contains(OTHER_KEY),
        "no key in messages: {err}"
    );
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

async fn sealing(url: &str) -> EventStore {
    let backend = annals::open(url).await.unwrap();
    EventStore::builder(backend)
        .master_key(MasterKey::from_hex(KEY).unwrap())
        .open()
        .await
        .unwrap()
}

/// Writes two customers' e-mails, sealed, into a new store at `url`.
fn write_sealed(url: &str) {
    runtime().block_on(async {
        let store = sealing(url).await;
        let changes = [
            EmailChanged {
                customer: "c-1".into(),
                email: SECRET.into(),
            },
            EmailChanged {
                customer: "c-2".into(),
                email: "kept@mail.example".into(),
            },
        ];
        let s = StreamId::new("emails").unwrap();
        store
            .append_typed(&s, ExpectedVersion::NoStream, &changes)
            .await
            .unwrap();
        store.close().await.unwrap();
    });
}

/// The two e-mails as read with the master key (`None`: erased).
fn read_emails(url: &str) -> Vec<Option<String>> {
    runtime().block_on(async {
        let store = sealing(url).await;
        let s = StreamId::new("emails").unwrap();
        let read = store
            .read_typed::<EmailChanged>(&s, Version(0), 10)
            .await
            .unwrap();
        store.close().await.unwrap();
        read.into_iter()
            .map(|t| match t.event {
                Decoded::Event(e) => Some(e.email),
                Decoded::Erased => None,
            })
            .collect()
    })
}

fn contains(path: &Path, needle: &str) -> bool {
    let bytes = std::fs::read(path).unwrap();
    bytes.windows(needle.len()).any(|w| w == needle.as_bytes())
}

#[test]
fn forget_erases_a_subject_and_export_and_migrate_keep_it_erased() {
    let dir = TempDir::new().unwrap();
    let url = format!("redb://{}/events.redb", dir.path().display());
    write_sealed(&url);
    let copy_url = format!("redb://{}/copy.redb", dir.path().display());

    // A migrated copy reads like the source: the keys come along.
    ok(&["migrate", &url, &copy_url], None);
    assert_eq!(
        read_emails(&copy_url),
        [
            Some(SECRET.to_string()),
            Some("kept@mail.example".to_string())
        ]
    );

    fails(&["forget", &url, "c-1"], None, "ANNALS_MASTER_KEY");
    fails(
        &["forget", &url, "c-1"],
        Some("abc"),
        "64 hexadecimal digits",
    );
    fails(
        &["forget", &url, "c-1"],
        Some(OTHER_KEY),
        "wrong master key",
    );
    let out = ok(&["forget", &url, "c-1", "--compact"], Some(KEY));
    assert!(out.contains("forgot"), "{out}");
    let out = ok(&["forget", &url, "c-1"], Some(KEY));
    assert!(out.contains("no key"), "{out}");
    assert_eq!(
        read_emails(&url),
        [None, Some("kept@mail.example".to_string())]
    );
    // The copy made before is its own store: forget it there too.
    ok(&["forget", &copy_url, "c-1"], Some(KEY));
    assert_eq!(read_emails(&copy_url)[0], None);

    // An export, and a copy made after forget, hold no plaintext.
    let export = dir.path().join("export.ndjson");
    ok(&["export", &url, "-o", export.to_str().unwrap()], None);
    assert!(!contains(&export, SECRET) && !contains(&export, "kept@mail.example"));
    let later_url = format!("redb://{}/later.redb", dir.path().display());
    ok(&["migrate", &url, &later_url], None);
    assert_eq!(
        read_emails(&later_url),
        [None, Some("kept@mail.example".to_string())]
    );
    for file in ["events.redb", "copy.redb", "later.redb"] {
        assert!(!contains(&dir.path().join(file), SECRET), "{file}");
    }
}

#[test]
fn retention_set_show_enforce_clear() {
    let dir = TempDir::new().unwrap();
    let url = format!("redb://{}/events.redb", dir.path().display());
    runtime().block_on(async {
        let backend = annals::open(&url).await.unwrap();
        for name in ["session-1", "order-1"] {
            let events = (0..10).map(|_| NewEvent::builder("Tick").build()).collect();
            backend
                .append(
                    &StreamId::new(name).unwrap(),
                    ExpectedVersion::NoStream,
                    events,
                )
                .await
                .unwrap();
        }
        backend.close().await.unwrap();
    });
    ok(
        &[
            "retention",
            "set",
            &url,
            "--prefix",
            "session-",
            "--max-count",
            "4",
        ],
        None,
    );
    ok(
        &[
            "retention",
            "set",
            &url,
            "--stream",
            "order-1",
            "--max-age",
            "30d",
        ],
        None,
    );
    let shown = ok(&["retention", "show", &url], None);
    assert!(
        shown.contains("prefix \"session-\": max_count=4"),
        "{shown}"
    );
    assert!(
        shown.contains("stream \"order-1\": max_age=2592000s"),
        "{shown}"
    );
    let one = ok(&["retention", "show", &url, "--stream", "session-1"], None);
    assert!(one.contains("default of prefix \"session-\""), "{one}");
    fails(
        &[
            "retention",
            "set",
            &url,
            "--stream",
            "order-1",
            "--max-count",
            "0",
        ],
        None,
        "max_count = 0",
    );
    let out = annals(&["retention", "set", &url, "--max-count", "1"], None);
    assert_eq!(out.status.code(), Some(2), "a target is required");

    let report = ok(&["retention", "enforce", &url, "--compact"], None);
    assert!(report.contains("truncated 1, removed 6 events"), "{report}");
    runtime().block_on(async {
        let backend = annals::open(&url).await.unwrap();
        let page = backend
            .read_stream(
                &StreamId::new("session-1").unwrap(),
                Version(0),
                100,
                Direction::Forward,
            )
            .await
            .unwrap();
        assert_eq!(page.events.len(), 4);
        assert_eq!(page.events[0].stream_version, Version(6));
        backend.close().await.unwrap();
    });
    ok(&["retention", "clear", &url, "--prefix", "session-"], None);
    ok(&["retention", "clear", &url, "--stream", "order-1"], None);
    assert!(ok(&["retention", "show", &url], None).contains("no retention policy"));
}
