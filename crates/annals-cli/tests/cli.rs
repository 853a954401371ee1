//! The `annals` binary, run for real on temporary stores of every backend
//! compiled in.

use std::path::Path;
use std::process::{Command, Output};

use annals_postgres::cluster::{ClusterOptions, TempCluster};
use serde_json::Value;
use tempfile::TempDir;

/// Runs `annals` with `args`.
fn annals(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_annals"))
        .args(args)
        .output()
        .expect("the binary runs")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Runs `annals` and expects success; returns stdout.
fn ok(args: &[&str]) -> String {
    let output = annals(args);
    assert!(
        output.status.success(),
        "annals {args:?} failed ({:?}): {}",
        output.status.code(),
        stderr(&output)
    );
    stdout(&output)
}

/// Runs `annals` and expects failure with `code` and one line on stderr
/// containing `message`.
fn fails(args: &[&str], code: i32, message: &str) {
    let output = annals(args);
    let err = stderr(&output);
    assert_eq!(output.status.code(), Some(code), "annals {args:?}: {err}");
    assert_eq!(err.lines().count(), 1, "one line: {err:?}");
    assert!(err.starts_with("annals: error: "), "{err:?}");
    assert!(err.contains(message), "expected {message:?} in {err:?}");
    assert!(!err.contains("panicked"), "{err:?}");
}

/// A store of each persistent backend compiled in: files in a folder, and
/// a schema of a throwaway PostgreSQL cluster (stopped when this is
/// dropped).
struct Stores {
    urls: Vec<String>,
    _cluster: Option<TempCluster>,
}

/// The stores of each persistent backend compiled in, in `dir`.
fn persistent_stores(dir: &Path) -> Stores {
    let mut urls = vec![format!("redb://{}/events.redb", dir.display())];
    if annals::Scheme::Sled.is_compiled() {
        urls.push(format!("sled://{}/sled", dir.display()));
    }
    if annals::Scheme::RocksDb.is_compiled() {
        urls.push(format!("rocksdb://{}/rocks", dir.display()));
    }
    let cluster = postgres_cluster();
    if let Some(cluster) = &cluster {
        urls.push(format!("{}?schema=cli", cluster.url()));
    }
    Stores {
        urls,
        _cluster: cluster,
    }
}

/// A throwaway PostgreSQL cluster, when the backend is compiled in and the
/// server binaries are installed (in CI they must be).
fn postgres_cluster() -> Option<TempCluster> {
    if !annals::Scheme::Postgres.is_compiled() {
        return None;
    }
    if let Some(why) = annals_postgres::cluster::unavailable() {
        let in_ci = std::env::var("CI").is_ok_and(|v| v == "true" || v == "1");
        assert!(!in_ci, "CI=true but PostgreSQL cannot run: {why}");
        eprintln!("note: the CLI's PostgreSQL cases are skipped: {why}");
        return None;
    }
    Some(TempCluster::start(ClusterOptions::default()).expect("a throwaway PostgreSQL cluster"))
}

/// Writes a small shop: two orders, tags, JSON and non-JSON data.
fn fill(url: &str, dir: &Path) {
    let data_file = dir.join("blob.bin");
    std::fs::write(&data_file, [0u8, 159, 146, 150, 255]).expect("writes");
    let blob = format!("@{}", data_file.display());
    let text_file = dir.join("note.txt");
    std::fs::write(&text_file, "two\nlines").expect("writes");
    let note = format!("@{}", text_file.display());
    let appends: [&[&str]; 5] = [
        &[
            "order-1",
            "--type",
            "OrderPlaced",
            "--data",
            r#"{"sku":"tea","qty":2}"#,
            "--tag",
            "customer:7",
            "--expect",
            "no-stream",
        ],
        &[
            "order-1",
            "--type",
            "OrderPaid",
            "--data",
            r#"{"amount": 12.5}"#,
            "--tag",
            "customer:7",
            "--tag",
            "paid",
            "--expect",
            "0",
        ],
        &[
            "order-2",
            "--type",
            "OrderPlaced",
            "--data",
            &blob,
            "--tag",
            "customer:9",
        ],
        &[
            "order-2",
            "--type",
            "Note",
            "--data",
            &note,
            "--metadata",
            r#"{"by":"ops"}"#,
            "--expect",
            "exists",
        ],
        &["order-1", "--type", "OrderShipped", "--expect", "1"],
    ];
    for args in appends {
        let mut all = vec!["append", url];
        all.extend_from_slice(args);
        let out = ok(&all);
        assert!(out.starts_with("appended "), "{out}");
    }
}

/// An export's event lines without what a target assigns itself
/// (`recorded_at`), for comparing exports of different stores.
fn comparable_export(url: &str, dir: &Path, name: &str) -> Vec<Value> {
    let file = dir.join(name);
    ok(&["export", url, "-o", file.to_str().expect("utf-8")]);
    let text = std::fs::read_to_string(&file).expect("reads");
    let mut lines = text.lines();
    let header: Value = serde_json::from_str(lines.next().expect("header")).expect("json");
    assert_eq!(header["annals_export"], 1);
    lines
        .map(|l| {
            let mut v: Value = serde_json::from_str(l).expect("json line");
            v.as_object_mut().expect("object").remove("recorded_at");
            v
        })
        .collect()
}

#[test]
fn help_lists_every_subcommand() {
    let help = ok(&["--help"]);
    for sub in [
        "info", "streams", "read", "read-all", "append", "verify", "compact", "truncate", "delete",
        "export", "import", "migrate",
    ] {
        assert!(
            help.contains(&format!("  {sub} ")),
            "{sub} missing in {help}"
        );
    }
}

#[test]
fn append_read_and_inspect_on_every_backend() {
    let dir = TempDir::new().expect("temp dir");
    let stores = persistent_stores(dir.path());
    for url in stores.urls.clone() {
        fill(&url, dir.path());

        let info = ok(&["info", &url]);
        assert!(info.contains("head position: 5"), "{info}");
        assert!(info.contains("streams:       2"), "{info}");
        assert!(info.contains("events:        5"), "{info}");
        assert!(info.contains("verify"), "{info}");

        let streams = ok(&["streams", &url, "--json"]);
        let streams: Vec<Value> = streams
            .lines()
            .map(|l| serde_json::from_str(l).expect("json"))
            .collect();
        assert_eq!(streams.len(), 2);
        assert_eq!(streams[0]["stream"], "order-1");
        assert_eq!(streams[0]["last_version"], 2);
        let after = ok(&["streams", &url, "--after", "order-1"]);
        assert!(
            after.contains("order-2") && !after.contains("order-1"),
            "{after}"
        );

        let table = ok(&["read", &url, "order-1"]);
        assert!(table.starts_with(" POSITION"), "{table}");
        assert_eq!(table.lines().count(), 4, "{table}");
        assert!(table.contains(r#"{"sku":"tea","qty":2}"#), "{table}");

        let back = ok(&[
            "read",
            &url,
            "order-1",
            "--backward",
            "--count",
            "2",
            "--json",
        ]);
        let back: Vec<Value> = back
            .lines()
            .map(|l| serde_json::from_str(l).expect("json"))
            .collect();
        let versions: Vec<_> = back.iter().map(|e| e["version"].as_u64()).collect();
        assert_eq!(versions, [Some(2), Some(1)]);

        let all = ok(&["read-all", &url, "--json"]);
        let all: Vec<Value> = all
            .lines()
            .map(|l| serde_json::from_str(l).expect("json"))
            .collect();
        assert_eq!(all.len(), 5);
        assert_eq!(all[0]["data"]["json"]["sku"], "tea");
        assert_eq!(all[1]["data"]["json"]["amount"], 12.5);
        assert_eq!(all[2]["data"]["base64"], "AJ+Slv8=");
        assert_eq!(all[3]["data"]["text"], "two\nlines");
        assert_eq!(all[3]["metadata"]["json"]["by"], "ops");
        let positions: Vec<_> = all
            .iter()
            .map(|e| e["position"].as_u64().expect("u64"))
            .collect();
        assert_eq!(positions, [1, 2, 3, 4, 5]);

        let tagged = ok(&["read-all", &url, "--tag", "customer:7", "--json"]);
        assert_eq!(tagged.lines().count(), 2, "{tagged}");
        let typed = ok(&[
            "read-all",
            &url,
            "--type",
            "OrderPlaced",
            "--type",
            "Note",
            "--json",
        ]);
        assert_eq!(typed.lines().count(), 3, "{typed}");
        let from = ok(&[
            "read-all",
            &url,
            "--from",
            "4",
            "--backward",
            "--count",
            "2",
            "--json",
        ]);
        let from: Vec<_> = from
            .lines()
            .map(|l| serde_json::from_str::<Value>(l).expect("json")["position"].as_u64())
            .collect();
        assert_eq!(from, [Some(4), Some(3)]);

        let verify = ok(&["verify", &url]);
        assert!(verify.contains("no problem found"), "{verify}");
    }
}

#[test]
fn a_failed_expectation_names_the_actual_version_and_exits_1() {
    let dir = TempDir::new().expect("temp dir");
    let url = format!("redb://{}/e.redb", dir.path().display());
    ok(&["append", &url, "s", "--type", "T", "--expect", "no-stream"]);
    fails(
        &["append", &url, "s", "--type", "T", "--expect", "no-stream"],
        1,
        "actual 0",
    );
    fails(
        &["append", &url, "s", "--type", "T", "--expect", "5"],
        1,
        "expected version 5, actual 0",
    );
    fails(&["delete", &url, "s", "--expect", "3"], 1, "actual 0");
    let out = ok(&["read", &url, "s", "--json"]);
    assert_eq!(
        out.lines().count(),
        1,
        "nothing written by the failed appends"
    );
}

#[test]
fn truncate_delete_compact_then_verify_is_clean() {
    let dir = TempDir::new().expect("temp dir");
    let stores = persistent_stores(dir.path());
    for url in stores.urls.clone() {
        fill(&url, dir.path());
        ok(&["truncate", &url, "order-1", "--before", "2"]);
        ok(&["delete", &url, "order-2", "--expect", "1"]);
        let read = ok(&["read", &url, "order-1", "--json"]);
        assert_eq!(read.lines().count(), 1, "{read}");
        fails(&["read", &url, "order-2"], 1, "order-2");
        let compacted = ok(&["compact", &url]);
        assert!(compacted.starts_with("compacted: "), "{compacted}");
        let verify = ok(&["verify", &url]);
        assert!(
            verify.contains("(1 events, 2 streams): no problem found"),
            "{verify}"
        );
        let info = ok(&["info", &url]);
        assert!(info.contains("streams:       1"), "{info}");
    }
}

#[test]
fn migrate_between_every_backend_and_back_keeps_every_event() {
    let dir = TempDir::new().expect("temp dir");
    let stores = persistent_stores(dir.path());
    let urls = &stores.urls;
    let first = &urls[0];
    fill(first, dir.path());
    // A truncated stream is renumbered from 0 in the target (said in the
    // summary), and its events compare equal.
    ok(&["append", first, "audit", "--type", "Seen"]);
    ok(&["append", first, "audit", "--type", "Seen"]);
    ok(&["truncate", first, "audit", "--before", "1"]);
    let original = comparable_export(first, dir.path(), "original.ndjson");

    // redb → sled → rocksdb → redb (whichever are compiled in), then back.
    let mut chain: Vec<String> = urls.iter().skip(1).cloned().collect();
    chain.push(format!("redb://{}/back.redb", dir.path().display()));
    let mut from = first.clone();
    for to in &chain {
        let out = ok(&["migrate", &from, to]);
        assert!(out.contains("the stores hold the same events"), "{out}");
        let verify = ok(&["verify", to]);
        assert!(verify.contains("no problem found"), "{to}: {verify}");
        let mut copied = comparable_export(to, dir.path(), "copy.ndjson");
        // The renumbered stream's versions are one lower in copies.
        let mut expected = original.clone();
        for e in &mut expected {
            if e["stream"] == "audit" {
                e["version"] = Value::from(e["version"].as_u64().expect("u64") - 1);
            }
        }
        // Positions are the target's own: compare everything else.
        for e in copied.iter_mut().chain(expected.iter_mut()) {
            e.as_object_mut().expect("object").remove("position");
        }
        assert_eq!(copied, expected, "{from} → {to}");
        if from == *first {
            assert!(
                out.contains("renumbered") && out.contains("\"audit\" (-1)"),
                "{out}"
            );
        }
        from = to.clone();
    }
    // Migrating again into the first target writes nothing twice (the
    // renumbered stream's offset is found in the target).
    let out = ok(&["migrate", first, &chain[0]]);
    assert!(out.contains("the stores hold the same events"), "{out}");
    let info = ok(&["info", &chain[0]]);
    assert!(info.contains("events:        6"), "{info}");
}

#[test]
fn an_interrupted_import_resumes_without_duplicates() {
    let dir = TempDir::new().expect("temp dir");
    let source = format!("redb://{}/source.redb", dir.path().display());
    fill(&source, dir.path());
    let export = dir.path().join("all.ndjson");
    ok(&["export", &source, "-o", export.to_str().expect("utf-8")]);
    let text = std::fs::read_to_string(&export).expect("reads");
    // The first three events only: as if the import had been killed.
    let prefix: Vec<&str> = text.lines().take(4).collect();
    let part = dir.path().join("part.ndjson");
    std::fs::write(&part, prefix.join("\n") + "\n").expect("writes");

    let target = format!("redb://{}/target.redb", dir.path().display());
    let out = ok(&["import", &target, part.to_str().expect("utf-8")]);
    assert!(out.contains("imported 3 events"), "{out}");
    let out = ok(&["import", &target, export.to_str().expect("utf-8")]);
    assert!(out.contains("imported 5 events"), "{out}");
    let out = ok(&["import", &target, export.to_str().expect("utf-8")]);
    assert!(out.contains("imported 5 events"), "{out}");
    let info = ok(&["info", &target]);
    assert!(info.contains("events:        5"), "{info}");
    assert!(info.contains("head position: 5"), "{info}");
    assert_eq!(
        comparable_export(&source, dir.path(), "a.ndjson"),
        comparable_export(&target, dir.path(), "b.ndjson")
    );

    // Importing into a store whose streams hold other events is refused.
    let other = format!("redb://{}/other.redb", dir.path().display());
    ok(&["append", &other, "order-1", "--type", "Different"]);
    fails(
        &["import", &other, export.to_str().expect("utf-8")],
        1,
        "holds other events",
    );
}

#[test]
fn verify_catches_a_damaged_store() {
    let dir = TempDir::new().expect("temp dir");
    let path = dir.path().join("d.redb");
    let url = format!("redb://{}", path.display());
    fill(&url, dir.path());
    ok(&["verify", &url]);
    let mut bytes = std::fs::read(&path).expect("reads");
    // Damage the middle of the file, where redb keeps its pages.
    let len = bytes.len();
    for b in &mut bytes[len / 4..len * 3 / 4] {
        *b ^= 0x5A;
    }
    std::fs::write(&path, bytes).expect("writes");
    let output = annals(&["verify", &url]);
    assert_ne!(output.status.code(), Some(0), "{}", stdout(&output));
    let err = stderr(&output);
    assert!(!err.contains("panicked"), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
}

#[test]
fn bad_input_is_one_line_and_a_non_zero_exit() {
    let dir = TempDir::new().expect("temp dir");
    let url = format!("redb://{}/b.redb", dir.path().display());
    fails(&["info", "nope://x"], 1, "unknown scheme \"nope\"");
    fails(&["info", "redb://"], 1, "needs a path");
    fails(&["read", &url, "s"], 1, "no store at");
    fails(&["info", &url, "--bogus"], 2, "--bogus");
    fails(&["frobnicate"], 2, "frobnicate");
    fails(
        &["append", &url, "s", "--type", "T", "--data", "{bad"],
        1,
        "--data is not valid JSON",
    );
    fails(
        &["append", &url, "s", "--type", "T", "--expect", "maybe"],
        2,
        "maybe",
    );
    fails(&["append", &url, "", "--type", "T"], 1, "stream id");
    fails(
        &[
            "append",
            &url,
            "s",
            "--type",
            "T",
            "--data",
            "@/no/such/file",
        ],
        1,
        "/no/such/file",
    );

    ok(&["append", &url, "s", "--type", "T"]);
    let bad = dir.path().join("bad.ndjson");
    std::fs::write(&bad, "not json\n").expect("writes");
    fails(&["import", &url, bad.to_str().expect("utf-8")], 1, "line 1");
    std::fs::write(&bad, "{\"annals_export\":1,\"exported_at\":\"x\",\"source_backend\":\"redb\",\"head\":1}\n{\"stream\":1}\n").expect("writes");
    fails(
        &["import", &url, bad.to_str().expect("utf-8")],
        1,
        "line 2: invalid event",
    );
    std::fs::write(
        &bad,
        "{\"annals_export\":9,\"exported_at\":\"x\",\"source_backend\":\"redb\",\"head\":1}\n",
    )
    .expect("writes");
    fails(
        &["import", &url, bad.to_str().expect("utf-8")],
        1,
        "format 9",
    );
    fails(&["import", &url, "/no/such/export"], 1, "/no/such/export");
}

/// PostgreSQL URLs name a server, not a path: read-only commands refuse a
/// schema without a store (creating nothing), and no password is ever
/// printed.
#[test]
fn postgres_urls_open_and_never_show_their_password() {
    let Some(cluster) = postgres_cluster() else {
        return;
    };
    let url = format!("{}?schema=empty", cluster.url());
    for command in ["info", "streams", "verify", "export", "read-all"] {
        fails(&[command, &url], 1, "no annals store in schema empty");
    }
    fails(&["read", &url, "s"], 1, "no annals store in schema empty");
    // Still none: the read-only commands created nothing.
    fails(&["info", &url], 1, "no annals store in schema empty");
    // `create` given in the URL is the user's choice.
    let created = format!("{url}&create=true");
    assert!(ok(&["info", &created]).contains("events:        0"));

    // A password in the URL is never shown, whatever fails.
    let secret_urls = [
        "postgres://alice:s3cret-pw@127.0.0.1:1/app".to_string(),
        "postgres://alice:s3cret-pw@127.0.0.1:1/app?cache=1".to_string(),
        "postgres:alice:s3cret-pw@127.0.0.1/app".to_string(),
        cluster
            .url()
            .replace("annals@", "annals:s3cret-pw@")
            .replace("/postgres", "/nosuchdb"),
        format!(
            "{}?schema=empty",
            cluster.url().replace("annals@", "annals:s3cret-pw@")
        ),
    ];
    for bad in &secret_urls {
        for args in [
            vec!["info", bad],
            vec!["append", bad, "s", "--type", "T"],
            vec!["migrate", bad, bad],
        ] {
            let output = annals(&args);
            let shown = format!("{}{}", stdout(&output), stderr(&output));
            assert!(
                !shown.contains("s3cret"),
                "{args:?} shows the password: {shown}"
            );
            assert!(!shown.contains("panicked"), "{shown}");
        }
    }
}
