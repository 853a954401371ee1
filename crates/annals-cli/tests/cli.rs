//! The `annals` binary, run for real on temporary stores of every backend
//! compiled in.

use std::path::Path;
use std::process::{Command, Output};

use annals_backend_tests::files::Tree;
use annals_postgres::cluster::{ClusterOptions, TempCluster};
use serde_json::Value;
use tempfile::TempDir;

/// Runs `annals` with `args`.
fn annals(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_annals"))
        .args(args)
        // A RUST_LOG of the caller's would add log lines to stderr.
        .env_remove("RUST_LOG")
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

/// A store URL in `dir` for each backend compiled in that keeps files.
fn persistent_urls(dir: &Path) -> Vec<String> {
    let mut urls = vec![format!("redb://{}/events.redb", dir.display())];
    if annals::Scheme::Sled.is_compiled() {
        urls.push(format!("sled://{}/sled", dir.display()));
    }
    if annals::Scheme::RocksDb.is_compiled() {
        urls.push(format!("rocksdb://{}/rocks", dir.display()));
    }
    urls
}

/// The stores of each persistent backend compiled in, in `dir`.
fn persistent_stores(dir: &Path) -> Stores {
    let mut urls = persistent_urls(dir);
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
fn log_level_shows_each_call_of_the_store_on_stderr() {
    let dir = TempDir::new().expect("temp dir");
    let url = format!("redb://{}/e.redb", dir.path().display());
    // Every call is logged at debug (appends and reads are debug spans):
    // one line per call, when it ends, with its outcome; stdout stays the
    // command's output.
    let output = annals(&["--log-level", "debug", "append", &url, "s", "--type", "T"]);
    assert!(output.status.success(), "{}", stderr(&output));
    let log = stderr(&output);
    let append = log
        .lines()
        .find(|l| l.contains("annals.append"))
        .unwrap_or_else(|| panic!("no append span in {log:?}"));
    for field in [
        "backend=\"redb\"",
        "stream=\"s\"",
        "events=1",
        "outcome=\"ok\"",
    ] {
        assert!(append.contains(field), "{field} in {append:?}");
    }
    // At info, appends (and reads) are not logged: their spans are debug.
    let output = annals(&["--log-level", "info", "append", &url, "s", "--type", "T"]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(
        !stderr(&output).contains("annals.append"),
        "appends are debug: {}",
        stderr(&output)
    );
    let output = annals(&["read", &url, "s", "--log-level", "annals=debug"]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("annals.read_stream"),
        "{}",
        stderr(&output)
    );
    // stdout: the table's header and the two events, no log line.
    assert_eq!(stdout(&output).lines().count(), 3, "{}", stdout(&output));
    // RUST_LOG when there is no --log-level; nothing without either.
    let output = Command::new(env!("CARGO_BIN_EXE_annals"))
        .args(["read", &url, "s"])
        .env("RUST_LOG", "annals=debug")
        .output()
        .expect("the binary runs");
    assert!(
        stderr(&output).contains("annals.read_stream"),
        "{}",
        stderr(&output)
    );
    assert_eq!(stderr(&annals(&["read", &url, "s"])), "");
    // A filter that does not parse is a usage error naming it, before
    // anything is opened.
    fails(
        &["--log-level", "annals=loud", "info", &url],
        2,
        "annals=loud",
    );
    let output = Command::new(env!("CARGO_BIN_EXE_annals"))
        .args(["info", &url])
        .env("RUST_LOG", "annals=loud")
        .output()
        .expect("the binary runs");
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("invalid RUST_LOG \"annals=loud\""),
        "{}",
        stderr(&output)
    );
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
    // A panic of redb's on the damaged file is caught and reported in one
    // line; nothing of Rust's panic report reaches stderr.
    assert!(
        !err.contains("panicked at") && !err.contains("thread '"),
        "{err}"
    );
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
    // Not even when the URL says `create=true`: reading commands never
    // create (as for a path); a writing command does.
    let created = format!("{url}&create=true");
    fails(&["info", &created], 1, "no annals store in schema empty");
    ok(&["append", &created, "s", "--type", "T"]);
    assert!(ok(&["info", &url]).contains("events:        1"));

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

/// Runs `annals` with `input` on its standard input.
fn annals_with_input(args: &[&str], input: &[u8]) -> Output {
    use std::io::Write;
    let mut child = Command::new(env!("CARGO_BIN_EXE_annals"))
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("the binary runs");
    let mut stdin = child.stdin.take().expect("stdin");
    // The tool may stop reading early (a bad line): a broken pipe is fine.
    let _ = stdin.write_all(input);
    drop(stdin);
    child.wait_with_output().expect("the binary ends")
}

/// Expects `output` to be a failure with exit code 1 and one line naming
/// `message`, no panic.
fn failed_with(output: &Output, message: &str) {
    let err = stderr(output);
    assert_eq!(output.status.code(), Some(1), "{err}");
    assert_eq!(err.lines().count(), 1, "one line: {err:?}");
    assert!(err.contains(message), "expected {message:?} in {err:?}");
}

const READ_ONLY_COMMANDS: [&[&str]; 8] = [
    &["info"],
    &["streams"],
    &["streams", "--json"],
    &["read", "order-1"],
    &["read-all"],
    &["read-all", "--json", "--tag", "customer:7"],
    &["verify"],
    &["export"],
];

#[test]
fn read_only_commands_change_no_file_and_create_nothing() {
    let dir = TempDir::new().expect("temp dir");
    for url in persistent_urls(dir.path()) {
        fill(&url, dir.path());
        let path = annals::StoreUrl::parse(&url)
            .expect("a URL")
            .path()
            .expect("a path")
            .to_path_buf();
        // sled rewrites files of its own when it opens a database: only
        // annals' files count there (README, "Hostile input").
        let sled = url.starts_with("sled:");
        let annals_files = |tree: Tree| {
            let mut entries = tree.0;
            if sled {
                entries.retain(|p, _| {
                    p.parent() == Some(path.as_path()) && p.file_name().is_none_or(|n| n != "gen-0")
                });
            }
            entries
        };
        std::thread::sleep(std::time::Duration::from_millis(20));
        let before = Tree::of(&path);
        for command in READ_ONLY_COMMANDS {
            let mut args = vec![command[0], url.as_str()];
            args.extend_from_slice(&command[1..]);
            ok(&args);
            assert_eq!(
                annals_files(Tree::of(&path)),
                annals_files(before.clone()),
                "annals {args:?} changed {}",
                path.display()
            );
        }
        if !sled {
            before.assert_same(&Tree::of(&path), &format!("read-only commands on {url}"));
        }
    }

    // Nothing is created for a missing store, nor next to it.
    let missing_dir = dir.path().join("missing");
    for scheme in ["redb", "sled", "rocksdb"] {
        let url = format!("{scheme}://{}/store", missing_dir.display());
        for command in READ_ONLY_COMMANDS {
            let mut args = vec![command[0], url.as_str()];
            args.extend_from_slice(&command[1..]);
            failed_with(&annals(&args), "no store at");
        }
    }
    assert!(
        !missing_dir.exists(),
        "a read-only command created a folder"
    );

    // An empty file is not a store, and stays an empty file (the first
    // release turned it into a redb database).
    let empty = dir.path().join("empty.redb");
    std::fs::write(&empty, b"").expect("writes");
    let url = format!("redb://{}", empty.display());
    for command in READ_ONLY_COMMANDS {
        let mut args = vec![command[0], url.as_str()];
        args.extend_from_slice(&command[1..]);
        failed_with(&annals(&args), "empty file");
    }
    for command in [
        &["append", url.as_str(), "s", "--type", "T"][..],
        &["compact", url.as_str()],
    ] {
        failed_with(&annals(command), "empty file");
    }
    assert_eq!(std::fs::read(&empty).expect("reads"), b"");

    // A folder of someone else's with a folder named like a sled
    // generation (the first release deleted it).
    let theirs = dir.path().join("theirs");
    std::fs::create_dir_all(theirs.join("gen-1")).expect("mkdir");
    std::fs::write(theirs.join("gen-1/photo.jpg"), b"a photo").expect("writes");
    let before = Tree::of(&theirs);
    let url = format!("sled://{}", theirs.display());
    failed_with(&annals(&["info", &url]), "holds no annals sled store");
    failed_with(
        &annals(&["append", &url, "s", "--type", "T"]),
        "holds no annals sled store",
    );
    before.assert_same(&Tree::of(&theirs), "opening a foreign folder");
}

#[test]
fn writing_commands_check_their_input_before_creating_anything() {
    let dir = TempDir::new().expect("temp dir");
    let store = dir.path().join("new/store.redb");
    let url = format!("redb://{}?max_event_bytes=1000", store.display());
    let bad_appends: [(&[&str], &str); 6] = [
        (&["s", "--type", ""], "event type"),
        (&["", "--type", "T"], "stream id"),
        (&["s", "--type", "T", "--tag", ""], "tag"),
        (&["s", "--type", "T", "--data", "@/dev/zero"], "--data file"),
        (
            &["s", "--type", "T", "--metadata", "@/dev/urandom"],
            "--metadata file",
        ),
        (&["s", "--type", "T", "--data", "{bad"], "not valid JSON"),
    ];
    for (args, message) in bad_appends {
        let mut all = vec!["append", url.as_str()];
        all.extend_from_slice(args);
        failed_with(&annals(&all), message);
    }
    let big = dir.path().join("big.bin");
    std::fs::write(&big, vec![7u8; 1001]).expect("writes");
    let arg = format!("@{}", big.display());
    failed_with(
        &annals(&["append", &url, "s", "--type", "T", "--data", &arg]),
        "more than 1000 bytes",
    );
    assert!(!dir.path().join("new").exists(), "append created the store");

    // An import checks every line before it creates the target.
    let source = format!("redb://{}/source.redb", dir.path().display());
    fill(&source, dir.path());
    let export = dir.path().join("all.ndjson");
    ok(&["export", &source, "-o", export.to_str().expect("utf-8")]);
    let text = std::fs::read_to_string(&export).expect("reads");
    let lines: Vec<&str> = text.lines().collect();
    let bad_line = |n: usize, replacement: &str| -> String {
        let mut changed: Vec<String> = lines.iter().map(|l| l.to_string()).collect();
        changed[n - 1] = replacement.to_string();
        changed.join("\n") + "\n"
    };
    let empty_type = lines[3].replacen("\"type\":\"OrderPlaced\"", "\"type\":\"\"", 1);
    let long_line = format!("{{\"stream\":\"{}\"}}", "x".repeat(400_000));
    for (n, replacement, message) in [
        (1, "not json", "line 1: not an annals export header"),
        (2, "{\"stream\":1}", "line 2: invalid event"),
        (4, empty_type.as_str(), "line 4: invalid input"),
        (5, long_line.as_str(), "line 5: longer than"),
        (6, "\u{1}", "line 6: invalid event"),
    ] {
        let file = dir.path().join("bad.ndjson");
        std::fs::write(&file, bad_line(n, replacement)).expect("writes");
        failed_with(
            &annals(&["import", &url, file.to_str().expect("utf-8")]),
            message,
        );
        // From standard input: nothing is created before the first event
        // is known to be good; later lines are checked before they are
        // written.
        let output = annals_with_input(&["import", &url, "-"], bad_line(n, replacement).as_bytes());
        failed_with(&output, message);
        if n <= 2 {
            assert!(!dir.path().join("new").exists(), "line {n}: created");
        } else {
            let _ = std::fs::remove_dir_all(dir.path().join("new"));
        }
    }
    assert!(!dir.path().join("new").exists(), "import created the store");
    let output = annals_with_input(&["import", &url, "-"], text.as_bytes());
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(stdout(&output).contains("imported 5 events"));
}

/// Writes one event of stream `s` at position 2, version 1, recorded at
/// `recorded_at` microseconds, straight into the redb store at `path`
/// (made by the tool with one event before): what a damaged or crafted
/// file can hold.
fn craft_event(path: &Path, recorded_at: u64) {
    use annals::kv::layout::{STORE_META_KEY, StoreMeta, StreamMeta, stream_meta_key};
    use annals::kv::{KvEngine, WriteBatch, codec};
    use annals::{NewEvent, Position, Timestamp, Version};
    let engine =
        annals::redb::RedbEngine::open(path, &annals::redb::RedbOptions::default()).expect("opens");
    let event = NewEvent::builder("FromTheFuture").tag("t").build();
    let mut batch = WriteBatch::new();
    for (key, value) in
        codec::event_entries("s", Version(1), Position(2), Timestamp(recorded_at), &event)
            .expect("entries")
    {
        batch.put(key, value);
    }
    let meta = StreamMeta {
        next_version: 2,
        ..StreamMeta::default()
    };
    let key = stream_meta_key("s");
    batch.put(key.clone(), codec::encode(&key, &meta).expect("encodes"));
    let store_meta = StoreMeta {
        head: 2,
        reserved: 2,
        last_recorded_at: recorded_at,
    };
    let value = codec::encode(STORE_META_KEY, &store_meta).expect("encodes");
    batch.put(STORE_META_KEY.to_vec(), value);
    engine.commit(batch, true).expect("commits");
    engine.close().expect("closes");
}

#[test]
fn timestamps_after_the_year_9999_are_shown_not_a_crash() {
    let dir = TempDir::new().expect("temp dir");
    for (name, micros, shown) in [
        (
            "y10000.redb",
            253_402_300_800_000_000,
            "+010000-01-01T00:00:00",
        ),
        ("max.redb", u64::MAX, "+586524-01-19T08:01:49"),
    ] {
        let path = dir.path().join(name);
        let url = format!("redb://{}", path.display());
        ok(&["append", &url, "s", "--type", "T"]);
        craft_event(&path, micros);
        let table = ok(&["read-all", &url]);
        assert!(table.contains(shown), "{table}");
        let json = ok(&["read-all", &url, "--json"]);
        assert!(
            json.contains(&format!("\"recorded_at\":\"{shown}")),
            "{json}"
        );
        ok(&["read", &url, "s", "--json"]);
        let export = dir.path().join(format!("{name}.ndjson"));
        ok(&["export", &url, "-o", export.to_str().expect("utf-8")]);
        let text = std::fs::read_to_string(&export).expect("reads");
        assert_eq!(text.lines().count(), 3, "{text}");
        // And the export imports (positions and timestamps are the
        // target's own).
        let copy = format!("redb://{}/copy-{name}", dir.path().display());
        let out = ok(&["import", &copy, export.to_str().expect("utf-8")]);
        assert!(out.contains("imported 2 events"), "{out}");
    }
}

#[test]
fn hostile_exports_are_errors_naming_the_line_and_every_valid_export_imports() {
    let dir = TempDir::new().expect("temp dir");
    let header = r#"{"annals_export":1,"exported_at":"x","source_backend":"redb","head":2}"#;
    let line = |stream: &str, version: u64, id: u32| {
        format!(
            r#"{{"stream":"{stream}","version":{version},"position":1,"event_id":"00000000-0000-7000-8000-{id:012}","type":"T","recorded_at":"x","data":{{}}}}"#
        )
    };
    // Versions u64::MAX, then 0, of one stream: the first release's import
    // overflowed and crashed.
    let file = dir.path().join("max.ndjson");
    std::fs::write(
        &file,
        [header.to_string(), line("s", u64::MAX, 1), line("s", 0, 2)].join("\n"),
    )
    .expect("writes");
    let url = format!("redb://{}/max.redb", dir.path().display());
    failed_with(
        &annals(&["import", &url, file.to_str().expect("utf-8")]),
        "line 3: stream \"s\": version 0 comes before",
    );

    // A valid export: a stream id of 1000 bytes whose first event is above
    // version 0 (truncated): renumbered, its offset kept under a hashed
    // key, and a re-run recognises it.
    let long = "L".repeat(1000);
    let file = dir.path().join("long.ndjson");
    std::fs::write(
        &file,
        [
            header.to_string(),
            line(&long, 7, 1),
            line(&long, 8, 2),
            line("short", 3, 3),
        ]
        .join("\n"),
    )
    .expect("writes");
    let url = format!("redb://{}/long.redb", dir.path().display());
    for _ in 0..2 {
        let out = ok(&["import", &url, file.to_str().expect("utf-8")]);
        assert!(out.contains("imported 3 events"), "{out}");
        assert!(
            out.contains("(-7)") && out.contains("\"short\" (-3)"),
            "{out}"
        );
    }
    let info = ok(&["info", &url]);
    assert!(info.contains("events:        3"), "{info}");

    // Random damage to a valid export: every outcome is a success or one
    // line naming the line, never a panic.
    let source = format!("redb://{}/source.redb", dir.path().display());
    fill(&source, dir.path());
    let export = dir.path().join("source.ndjson");
    ok(&["export", &source, "-o", export.to_str().expect("utf-8")]);
    let good = std::fs::read(&export).expect("reads");
    let mut rng = annals_backend_tests::workload::Rng::new(17);
    let (mut failed, mut imported) = (0, 0);
    for trial in 0..40 {
        let mut bad = good.clone();
        for _ in 0..1 + rng.below(4) {
            let at = rng.below(bad.len() as u64) as usize;
            bad[at] = rng.next_u64() as u8;
        }
        let url = format!("redb://{}/damaged-{trial}.redb", dir.path().display());
        let output = annals_with_input(&["import", &url, "-"], &bad);
        let err = stderr(&output);
        assert!(!err.contains("panicked"), "trial {trial}: {err}");
        match output.status.code() {
            Some(0) => imported += 1,
            Some(1) => {
                assert_eq!(err.lines().count(), 1, "{err}");
                failed += 1;
            }
            other => panic!("trial {trial}: exit {other:?}: {err}"),
        }
    }
    assert!(failed > 0, "no damage was noticed ({imported} imported)");
}

#[cfg(unix)]
#[test]
fn stores_and_exports_are_owner_only() {
    use annals_backend_tests::files::mode;
    let dir = TempDir::new().expect("temp dir");
    let url = format!("redb://{}/a/e.redb", dir.path().display());
    ok(&["append", &url, "s", "--type", "T"]);
    assert_eq!(mode(&dir.path().join("a")), 0o700);
    assert_eq!(mode(&dir.path().join("a/e.redb")), 0o600);
    let export = dir.path().join("e.ndjson");
    ok(&["export", &url, "-o", export.to_str().expect("utf-8")]);
    assert_eq!(mode(&export), 0o600);
    // Exporting again replaces the file whole; no temporary file is left.
    ok(&["export", &url, "-o", export.to_str().expect("utf-8")]);
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .expect("lists")
        .map(|e| e.expect("entry").file_name())
        .collect();
    assert_eq!(names.len(), 2, "{names:?}");
    let shared = format!("redb://{}/b/e.redb?file_mode=0640", dir.path().display());
    ok(&["append", &shared, "s", "--type", "T"]);
    assert_eq!(mode(&dir.path().join("b/e.redb")), 0o640);
    assert_eq!(mode(&dir.path().join("b")), 0o750);
}
