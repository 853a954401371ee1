//! The power-loss check (SPEC D5): a SIGKILL leaves the operating system's
//! page cache intact, so the kill tests cannot see a missing fsync. Here
//! `annals-sync-probe` appends under `strace -f`, and for every append
//! made with `Immediate` the trace must show, before the append returned, a
//! real `fsync`/`fdatasync` (not `sync_file_range`, not nothing) of every
//! store file the append wrote, after its last write to it. With `Relaxed`,
//! appends after the first (which reserves positions durably) must not
//! sync.
//!
//! strace is required (scripts/setup installs it); without it, or where
//! ptrace is not allowed, these tests fail saying so.
#![allow(clippy::unwrap_used, missing_docs)]

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};

use annals_reliability::{backends_on_disk, store_path, store_url};

/// The syscall a trace line starts (or resumes), and the path of its fd.
fn call_and_path(line: &str) -> Option<(&str, &str)> {
    // `1234 pwrite64(5</tmp/x/events.redb>, …` or
    // `1234 <... fdatasync resumed>) = 0` (resumptions carry no path).
    let rest = line.split_once(' ').map_or(line, |(_, r)| r).trim_start();
    let (name, args) = rest.split_once('(')?;
    let path = args.split_once('<')?.1.split_once('>')?.0;
    Some((name, path))
}

fn is_write(call: &str) -> bool {
    matches!(
        call,
        "write" | "pwrite64" | "writev" | "pwritev" | "pwritev2"
    )
}

fn is_real_sync(call: &str) -> bool {
    matches!(call, "fsync" | "fdatasync")
}

/// Files a store writes that hold no data it depends on: RocksDB's
/// informational log.
fn is_informational(path: &str) -> bool {
    let name = path.rsplit('/').next().unwrap_or(path);
    name == "LOG" || name.starts_with("LOG.old")
}

/// Runs the probe under strace; the trace's lines.
fn trace(url: &str, dir: &Path) -> Vec<String> {
    let log = dir.join("strace.log");
    let status = Command::new("strace")
        .args(["-f", "-y", "-qq"])
        .args([
            "-e",
            "trace=write,pwrite64,writev,pwritev,pwritev2,fsync,fdatasync,sync_file_range",
        ])
        .arg("-o")
        .arg(&log)
        .arg(env!("CARGO_BIN_EXE_annals-sync-probe"))
        .arg(url)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output();
    let output = match status {
        Ok(output) => output,
        Err(e) => panic!(
            "strace is needed for the power-loss check and could not run ({e}); \
             install it: apt-get install -y strace (scripts/setup does)"
        ),
    };
    assert!(
        output.status.success(),
        "strace or the probe failed ({}; is ptrace allowed here?): {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    std::fs::read_to_string(&log)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect()
}

/// The lines from the begin mark of append `i` to its end mark.
fn window(lines: &[String], i: u32) -> &[String] {
    let at = |mark: String| {
        lines
            .iter()
            .position(|l| l.contains(&mark))
            .unwrap_or_else(|| panic!("no mark {mark} in the trace"))
    };
    let begin = at(format!("ANNALS-BEGIN-{i}"));
    let end = at(format!("ANNALS-END-{i}"));
    &lines[begin..end]
}

/// For each store file written in `calls`: whether a real sync of it
/// follows its last write.
fn synced_after_last_write(calls: &[String], store: &str) -> BTreeMap<String, bool> {
    let mut files: BTreeMap<String, bool> = BTreeMap::new();
    for line in calls {
        let Some((call, path)) = call_and_path(line) else {
            continue;
        };
        if !path.starts_with(store) || is_informational(path) {
            continue;
        }
        if is_write(call) {
            files.insert(path.to_string(), false);
        } else if is_real_sync(call)
            && let Some(synced) = files.get_mut(path)
        {
            *synced = true;
        }
    }
    files
}

fn check(driver: &annals::driver::Driver) {
    let scheme = driver.scheme;
    let dir = tempfile::tempdir().unwrap();
    let store = store_path(driver, dir.path(), "store").unwrap();
    let store_text = store.display().to_string();

    let url = store_url(driver, dir.path(), "store", "durability=immediate");
    let lines = trace(&url, dir.path());
    for i in 0..5 {
        let calls = window(&lines, i);
        let files = synced_after_last_write(calls, &store_text);
        assert!(
            !files.is_empty(),
            "{scheme}: immediate append {i} wrote no store file before returning:\n{}",
            calls.join("\n")
        );
        for (file, synced) in &files {
            assert!(
                synced,
                "{scheme}: immediate append {i} returned without a real fsync/fdatasync of \
                 {file} after writing it:\n{}",
                calls.join("\n")
            );
        }
    }

    let relaxed_dir = tempfile::tempdir().unwrap();
    let store = store_path(driver, relaxed_dir.path(), "relaxed").unwrap();
    let store_text = store.display().to_string();
    let url = store_url(driver, relaxed_dir.path(), "relaxed", "durability=relaxed");
    let lines = trace(&url, relaxed_dir.path());
    for i in 1..4 {
        let calls = window(&lines, i);
        let synced: Vec<&String> = calls
            .iter()
            .filter(|l| {
                call_and_path(l)
                    .is_some_and(|(call, path)| is_real_sync(call) && path.starts_with(&store_text))
            })
            .collect();
        assert!(
            synced.is_empty(),
            "{scheme}: relaxed append {i} synced: {synced:?}"
        );
    }
}

/// Every backend that keeps files, one after the other.
#[test]
fn immediate_appends_are_fsynced_before_they_return() {
    for driver in backends_on_disk() {
        check(driver);
        println!(
            "{}: every immediate append fsynced before it returned",
            driver.scheme
        );
    }
}
