//! The kill -9 trials every persistent backend runs (\[M5\], \[D5\]): a child
//! process appends until it is killed (SIGKILL) at a random instant, and
//! the store is reopened and checked against what the child acknowledged:
//!
//! - every append is whole (all its events or none), and what is there is
//!   a prefix of the child's appends, at the positions acknowledged;
//! - with `Immediate`, every acknowledged append is there;
//! - no position is handed out again, even one the kill lost.
//!
//! The child is the test binary itself, run again with the test's name as
//! filter and [`CHILD_ENV`] set: the test calls [`kill_trials`], which in
//! the child appends forever instead.
//!
//! A backend's tests get both trials, `Immediate` and `Relaxed`, from
//! [`kill_tests!`](crate::kill_tests):
//!
//! ```ignore
//! // crates/annals-x/tests/crash.rs
//! fn open(path: &Path, config: StoreConfig) -> Result<Arc<dyn LogBackend>> {
//!     Ok(Arc::new(annals_x::open(path, XOptions::with_config(config))?))
//! }
//!
//! annals_backend_tests::kill_tests!(open, 4);
//! ```

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, mpsc};
use std::time::Duration;

pub use annals_core::Durability;
use annals_core::{ExpectedVersion, LogBackend, NewEvent, Position, Result, StoreConfig};

use crate::workload::{Rng, dump, stream};

/// Set in the child: `<durability>|<path>`.
pub const CHILD_ENV: &str = "ANNALS_KILL_CHILD";

/// Opens a backend's store at a path with a config (blocking).
pub type Open = fn(&Path, StoreConfig) -> Result<Arc<dyn LogBackend>>;

/// Append `i` has `1 + i % 3` events, `"{i}/{k}"`, on stream `i % 4`.
fn append_events(i: u64) -> Vec<NewEvent> {
    (0..1 + i % 3)
        .map(|k| {
            NewEvent::builder("Counted")
                .data(format!("{i}/{k}").into_bytes())
                .build()
        })
        .collect()
}

fn config(durability: Durability) -> StoreConfig {
    StoreConfig {
        durability,
        ..StoreConfig::default()
    }
}

/// The two kill -9 tests of a persistent backend, `rounds` trials each,
/// on stores opened by `open` (an [`Open`]):
/// `killed_while_appending_immediate_loses_nothing_acknowledged_m5`
/// (\[M5\]: with `Immediate`, every acknowledged append is there) and
/// `killed_while_appending_relaxed_loses_a_suffix_of_whole_appends_d5`
/// (\[D5\]: with `Relaxed`, at most a suffix of whole appends is lost).
/// Call it at the top level of a test file: [`kill_trials`] runs the test
/// binary again with each test's name as filter.
#[macro_export]
macro_rules! kill_tests {
    ($open:expr, $rounds:expr $(,)?) => {
        #[test]
        fn killed_while_appending_immediate_loses_nothing_acknowledged_m5() {
            $crate::crash::kill_trials(
                "killed_while_appending_immediate_loses_nothing_acknowledged_m5",
                $open,
                $crate::crash::Durability::Immediate,
                $rounds,
            );
        }

        #[test]
        fn killed_while_appending_relaxed_loses_a_suffix_of_whole_appends_d5() {
            $crate::crash::kill_trials(
                "killed_while_appending_relaxed_loses_a_suffix_of_whole_appends_d5",
                $open,
                $crate::crash::Durability::Relaxed,
                $rounds,
            );
        }
    };
}

/// Runs `rounds` kill trials of the test `test` (its exact name: the child
/// runs it again) on fresh stores opened by `open` with `durability`. In
/// the child (with [`CHILD_ENV`] set) it appends until it is killed
/// instead, and never returns.
pub fn kill_trials(test: &str, open: Open, durability: Durability, rounds: u64) {
    if let Ok(spec) = std::env::var(CHILD_ENV) {
        child(&spec, open);
    }
    let runtime = tokio::runtime::Runtime::new().unwrap();
    for seed in 0..rounds {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store");
        let delay = Duration::from_millis(Rng::new(seed).below(1500));
        let spec = format!("{}|{}", durability_name(durability), path.display());
        let mut command = Command::new(std::env::current_exe().unwrap());
        command
            .args([test, "--exact", "--nocapture", "--test-threads=1"])
            .env(CHILD_ENV, spec);
        let acks: Vec<(u64, u64, u64)> = run_and_kill(command, delay, |line| {
            // libtest may have printed the start of its own line before ours.
            let (_, rest) = line.split_once("@ack ")?;
            let nums: Vec<u64> = rest
                .split(' ')
                .map(|n| n.parse().ok())
                .collect::<Option<_>>()?;
            Some((*nums.first()?, *nums.get(1)?, *nums.get(2)?))
        });
        let what = format!("{durability:?}, seed {seed}, {} acks", acks.len());
        runtime.block_on(check(
            open(&path, config(durability)).unwrap(),
            durability,
            &acks,
            &what,
        ));
    }
}

fn durability_name(durability: Durability) -> &'static str {
    match durability {
        Durability::Immediate => "immediate",
        Durability::Relaxed => "relaxed",
    }
}

/// The child: appends until it is killed, printing `@ack i first last` on
/// stdout once append `i` has returned.
fn child(spec: &str, open: Open) -> ! {
    let (durability, path) = spec.split_once('|').unwrap();
    let durability = durability.parse().unwrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let store = open(Path::new(path), config(durability)).unwrap();
        let mut out = std::io::stdout();
        // Bounded, in case the parent dies without killing it.
        let deadline = std::time::Instant::now() + Duration::from_secs(120);
        for i in 0.. {
            let r = store
                .append(&stream(i % 4), ExpectedVersion::Any, append_events(i))
                .await
                .unwrap();
            writeln!(out, "@ack {i} {} {}", r.first_position.0, r.last_position.0).unwrap();
            out.flush().unwrap();
            if std::time::Instant::now() > deadline {
                break;
            }
        }
    });
    std::process::exit(0)
}

/// Runs `command` (a child that prints one line per acknowledged write),
/// kills it (SIGKILL: no destructor, no close) `delay` after the first
/// line `parse` reads, and answers every line it parsed, in order.
pub fn run_and_kill<T: Send + 'static>(
    command: Command,
    delay: Duration,
    parse: fn(&str) -> Option<T>,
) -> Vec<T> {
    kill_after(command, None, delay, parse)
}

/// [`run_and_kill`] for a child that prints the line `ready` once it has
/// opened its store: the `delay` runs from that line (so the kill may come
/// before the first acknowledgement). A child that never gets ready, or
/// that stops by itself, fails the test.
pub fn run_and_kill_after_ready<T: Send + 'static>(
    command: Command,
    ready: &'static str,
    delay: Duration,
    parse: fn(&str) -> Option<T>,
) -> Vec<T> {
    kill_after(command, Some(ready), delay, parse)
}

fn kill_after<T: Send + 'static>(
    mut command: Command,
    ready: Option<&'static str>,
    delay: Duration,
    parse: fn(&str) -> Option<T>,
) -> Vec<T> {
    let mut child: Child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (started_tx, started_rx) = mpsc::channel();
    let reader = std::thread::spawn(move || {
        let mut acks = Vec::new();
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if ready == Some(line.as_str()) {
                let _ = started_tx.send(());
            } else if let Some(ack) = parse(&line) {
                if ready.is_none() && acks.is_empty() {
                    let _ = started_tx.send(());
                }
                acks.push(ack);
            }
        }
        acks
    });
    if started_rx.recv_timeout(Duration::from_secs(60)).is_err() {
        let _ = child.kill();
        let _ = child.wait();
        panic!("the child never started (its stderr is above)");
    }
    std::thread::sleep(delay);
    child.kill().unwrap();
    let status = child.wait().unwrap();
    assert!(!status.success(), "the child stopped by itself: {status}");
    reader.join().unwrap()
}

/// Checks the store after a kill against the child's acknowledgements.
async fn check(
    store: Arc<dyn LogBackend>,
    durability: Durability,
    acks: &[(u64, u64, u64)],
    what: &str,
) {
    let d = dump(&*store).await.unwrap();
    // The events found, grouped by append, in position order: appends
    // 0, 1, 2, … each whole, with the positions they were acknowledged with.
    let mut next_append = 0u64;
    let mut events = d.forward.iter().peekable();
    while let Some(e) = events.next() {
        let text = String::from_utf8(e.data.clone()).unwrap();
        assert_eq!(
            text,
            format!("{next_append}/0"),
            "{what}: append {next_append} is missing or partial"
        );
        let count = 1 + next_append % 3;
        let first = e.position;
        for k in 1..count {
            let e = events
                .next()
                .unwrap_or_else(|| panic!("{what}: append {next_append} is partial"));
            assert_eq!(e.data, format!("{next_append}/{k}").into_bytes(), "{what}");
            assert_eq!(e.position, Position(first.0 + k), "{what}");
        }
        if let Some(&(i, f, l)) = acks.get(usize::try_from(next_append).unwrap()) {
            assert_eq!(i, next_append);
            assert_eq!(
                (first.0, first.0 + count - 1),
                (f, l),
                "{what}: append {i} moved"
            );
        }
        next_append += 1;
    }
    if durability == Durability::Immediate {
        assert!(
            next_append >= acks.len() as u64,
            "{what}: only {next_append} appends survived"
        );
    }
    // No position is handed out again, even one a crash lost.
    let max_acked = acks.iter().map(|a| a.2).max().unwrap();
    let r = store
        .append(&stream(0), ExpectedVersion::Any, append_events(0))
        .await
        .unwrap();
    assert!(
        r.first_position.0 > max_acked,
        "{what}: position {} reused",
        r.first_position.0
    );
    store.close().await.unwrap();
    eprintln!("{what}: {next_append} appends survived");
}
