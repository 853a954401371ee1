//! # annals-backend-tests — the annals conformance suite
//!
//! Every storage backend of annals runs this suite, unmodified: it checks
//! the contract, [`docs/contract.md`][contract] in the repository, clause
//! by clause (each case names its clause IDs in brackets, e.g. `[A4]`, in
//! the comment above it; the test `contract` of this crate fails when a
//! clause is named by no case).
//!
//! [contract]: https://github.com/annals-rs/annals/blob/main/docs/contract.md
//!
//! A backend implements [`Harness`] and calls [`run`] from a test with
//! `harness = false`:
//!
//! ```ignore
//! // crates/annals-x/tests/conformance.rs
//! use std::{process::ExitCode, sync::Arc};
//! use annals_backend_tests::Harness;
//! use annals_core::{Capabilities, LogBackend, Result, StoreConfig};
//!
//! struct X(tempfile::TempDir);
//!
//! #[async_trait::async_trait]
//! impl Harness for X {
//!     async fn new() -> Self { X(tempfile::tempdir().unwrap()) }
//!     async fn open(&self, config: StoreConfig) -> Result<Arc<dyn LogBackend>> {
//!         Ok(Arc::new(annals_x::open(self.0.path(), config).await?))
//!     }
//!     fn capabilities() -> Capabilities { Capabilities::ALL }
//! }
//!
//! fn main() -> ExitCode { annals_backend_tests::run::<X>() }
//! ```
//!
//! Each case runs as its own libtest test, on its own multi-threaded tokio
//! runtime, with a fresh [`Harness`] and a time limit; every store it
//! opened through the harness is closed after it, so that no store (and no
//! engine thread) outlives its case or the process. A case whose
//! capability the backend lacks ([`Harness::capabilities`]) is reported as
//! *ignored*, never as passed (\[C1\]).
#![forbid(unsafe_code)]
#![allow(clippy::unwrap_used)]

use std::any::Any;
use std::collections::HashMap;
use std::process::ExitCode;
use std::sync::{Arc, Mutex, Once};
use std::time::Duration;

use annals_core::{Capabilities, LogBackend, Result, StoreConfig};
use libtest_mimic::{Arguments, Completion, Failed, Trial};

use crate::teardown::Closing;

pub mod cases;
pub mod crash;
pub mod damage;
pub mod driver;
pub mod files;
pub mod kv;
pub mod support;
mod teardown;
pub mod workload;

pub use cases::Case;
pub use support::{CaseResult, Failure};

/// How long one case may run before it counts as hung and fails.
pub const CASE_TIMEOUT: Duration = Duration::from_secs(120);

/// How long closing a case's stores may take once it is over (a RocksDB
/// store waits up to a minute for reads still in flight).
pub const CLOSE_TIMEOUT: Duration = Duration::from_secs(90);

/// Worker threads of each case's runtime.
pub const WORKER_THREADS: usize = 4;

/// A backend under test: where its stores live and how to open them.
#[async_trait::async_trait]
pub trait Harness: Send + Sync + Sized + 'static {
    /// A new, empty place for one test's store (e.g. a fresh temp dir).
    async fn new() -> Self;

    /// Opens the store at this place with `config` (the first call makes it).
    async fn open(&self, config: StoreConfig) -> Result<Arc<dyn LogBackend>>;

    /// Closes `store` and opens the same place again. The default closes and
    /// calls [`open`](Harness::open).
    async fn reopen(
        &self,
        store: Arc<dyn LogBackend>,
        config: StoreConfig,
    ) -> Result<Arc<dyn LogBackend>> {
        store.close().await?;
        drop(store);
        self.open(config).await
    }

    /// What the backend offers; decides which cases run and which are
    /// reported as ignored.
    fn capabilities() -> Capabilities;

    /// The folder that holds the store's files, for cases that search the
    /// bytes on disk (crypto-shredding: no plaintext of a sealed event in
    /// any file). `None` (the default) for a store whose bytes are not in
    /// files here — in memory, on a database server: those cases then
    /// search everything the store answers instead.
    fn files(&self) -> Option<std::path::PathBuf> {
        None
    }
}

/// Runs every case against `H`, each as its own libtest test; call it from
/// the `main` of a `harness = false` test. Takes the usual libtest
/// arguments (filters, `--list`, `--ignored`, `--test-threads`, …).
pub fn run<H: Harness>() -> ExitCode {
    run_with::<H>(Arguments::from_args())
}

/// [`run`] with these arguments (e.g. the command line's with
/// `test_threads: Some(1)`, for a backend whose cases share one server).
pub fn run_with<H: Harness>(args: Arguments) -> ExitCode {
    record_panic_locations();
    libtest_mimic::run(&args, trials::<H>()).exit_code()
}

/// [`run`], with the backend's known gaps: each `(case, why)` is a case the
/// backend is known to fail. It still runs: failing, it shows as ignored
/// with `why` (a gap stays in sight, never a silent pass); passing, it
/// fails, saying the gap is closed and can be removed. A gap naming no
/// case fails the run.
pub fn run_with_gaps<H: Harness>(gaps: &[(&str, &str)]) -> ExitCode {
    record_panic_locations();
    let mut trials = trials::<H>();
    for &(name, why) in gaps {
        let Some(trial) = trials.iter_mut().find(|t| t.name() == name) else {
            eprintln!("known gap {name:?} names no case of the suite");
            return ExitCode::FAILURE;
        };
        let why = why.to_string();
        let case = cases::all::<Closing<H>>()
            .into_iter()
            .find(|c| c.name == name)
            .map(|c| c.body);
        *trial = Trial::ignorable_test(name, move || match case.map(run_case::<H>) {
            Some(Err(_)) => Ok(Completion::ignored_with(format!("known gap: {why}"))),
            _ => Err(Failed::from(format!(
                "known gap {why:?} passes now: remove it from the backend's gaps"
            ))),
        });
    }
    libtest_mimic::run(&Arguments::from_args(), trials).exit_code()
}

/// Every case against `H` as a libtest-mimic trial, those whose capability
/// `H` lacks flagged as ignored.
pub fn trials<H: Harness>() -> Vec<Trial> {
    let capabilities = H::capabilities();
    cases::all::<Closing<H>>()
        .into_iter()
        .map(|case| {
            let ignored = !(case.runs_if)(&capabilities);
            let body = case.body;
            Trial::test(case.name, move || run_case::<H>(body)).with_ignored_flag(ignored)
        })
        .collect()
}

/// Runs one case body on a fresh runtime with a fresh harness, then closes
/// every store the case opened (see [`teardown`]): once this returns, no
/// store of the case is open and none of their threads runs.
fn run_case<H: Harness>(body: cases::CaseFn<Closing<H>>) -> Result<(), Failed> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(WORKER_THREADS)
        .enable_all()
        .build()
        .map_err(|e| Failed::from(format!("cannot build the tokio runtime: {e}")))?;
    let (harness, opened) = runtime.block_on(async {
        let harness = Closing::wrap(H::new().await);
        let opened = harness.opened();
        (harness, opened)
    });
    let task = runtime.spawn(body(harness));
    // The timer must be made inside the runtime.
    let outcome = runtime.block_on(async { tokio::time::timeout(CASE_TIMEOUT, task).await });
    let result = match outcome {
        Err(_) => Err(Failed::from(format!(
            "the case did not finish within {CASE_TIMEOUT:?} (a hang?)"
        ))),
        Ok(Err(join)) if join.is_panic() => {
            let location = panic_location(join.id());
            Err(Failed::from(format!(
                "the case panicked{location}: {}",
                panic_message(join.into_panic())
            )))
        }
        Ok(Err(join)) => Err(Failed::from(format!("the case was cancelled: {join}"))),
        Ok(Ok(Err(failure))) => Err(Failed::from(failure.into_message())),
        Ok(Ok(Ok(()))) => Ok(()),
    };
    // Also after a failure: a store left open would outlive the process.
    let closed = runtime.block_on(async {
        match tokio::time::timeout(CLOSE_TIMEOUT, teardown::close_all(&opened)).await {
            Ok(closed) => closed,
            Err(_) => Err(format!(
                "the case's stores did not close within {CLOSE_TIMEOUT:?}"
            )),
        }
    });
    runtime.shutdown_timeout(Duration::from_secs(10));
    // Only now: its temporary folder goes with it.
    drop(opened);
    match (result, closed) {
        (Ok(()), Err(message)) => Err(Failed::from(message)),
        (result, _) => result,
    }
}

fn panic_message(payload: Box<dyn Any + Send>) -> String {
    if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else {
        "(a panic without a message)".to_string()
    }
}

/// Where tasks panicked, by task id (filled by the panic hook).
static PANIC_LOCATIONS: Mutex<Option<HashMap<tokio::task::Id, String>>> = Mutex::new(None);

/// Chains a panic hook that remembers where a task panicked, so a case's
/// failure names the line of its failed assertion.
fn record_panic_locations() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if let (Some(id), Some(location)) = (tokio::task::try_id(), info.location())
                && let Ok(mut map) = PANIC_LOCATIONS.lock()
            {
                map.get_or_insert_with(HashMap::new)
                    .insert(id, format!(" at {location}"));
            }
            previous(info);
        }));
    });
}

fn panic_location(id: tokio::task::Id) -> String {
    PANIC_LOCATIONS
        .lock()
        .ok()
        .and_then(|mut map| map.as_mut().and_then(|m| m.remove(&id)))
        .unwrap_or_default()
}
