//! The engine-level suite: cases for a [`KvEngine`] itself — atomic
//! batches, snapshot isolation, range scans both ways, the sync flag,
//! reopen, compaction, and refusing what is not the engine's store — run by
//! every key-value engine, below the store-level conformance suite
//! ([`run`](crate::run)).
//!
//! An engine crate implements [`KvHarness`] and calls [`run`] from a test
//! with `harness = false`:
//!
//! ```ignore
//! // crates/annals-x/tests/engine.rs
//! use annals_backend_tests::kv::{KvCapabilities, KvHarness};
//!
//! struct X(tempfile::TempDir);
//!
//! impl KvHarness for X {
//!     type Engine = annals_x::XEngine;
//!     fn new() -> Self { X(tempfile::tempdir().unwrap()) }
//!     fn open(&self) -> annals_core::Result<Self::Engine> {
//!         annals_x::XEngine::open(self.0.path().join("store"), &Default::default())
//!     }
//!     fn capabilities() -> KvCapabilities { KvCapabilities::FILES }
//!     fn path(&self) -> Option<std::path::PathBuf> { Some(self.0.path().join("store")) }
//! }
//!
//! fn main() -> std::process::ExitCode { annals_backend_tests::kv::run::<X>() }
//! ```
//!
//! Each case runs as its own libtest test with a fresh harness; a case
//! whose capability the engine lacks ([`KvHarness::capabilities`]) is
//! reported as *ignored*, never as passed.

use std::path::PathBuf;
use std::process::ExitCode;

use annals_core::Result;
use annals_core::kv::KvEngine;
use libtest_mimic::{Arguments, Trial};

mod cases;

pub use cases::{Entries, put, scan_all};

/// What an engine offers beyond what every engine does; decides which
/// cases run and which are reported as ignored.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct KvCapabilities {
    /// The store outlives the engine: commits are there after `close` and
    /// a new open of the same place; `close` releases the place (it opens
    /// again at once, in this process) and later calls answer
    /// `Error::Closed`; a second open of a place that is open is refused.
    pub persistent: bool,
    /// `compact` gives the space of deleted keys back: `disk_bytes`
    /// shrinks.
    pub reclaims_space: bool,
    /// The store is a file or folder at [`KvHarness::path`] that the engine
    /// claims as its own: something else there (a folder or file of another
    /// program) is refused, and left exactly as it was.
    pub owns_path: bool,
    /// A commit goes through while a snapshot of the same thread is alive
    /// (a multi-version engine). An engine whose snapshots hold back
    /// commits (annals-sled: the snapshot is a read lock) is still
    /// isolated, but cannot be shown so from one thread.
    pub commits_past_snapshots: bool,
}

impl KvCapabilities {
    /// An engine in memory: only `commits_past_snapshots`.
    pub const MEMORY: KvCapabilities = KvCapabilities {
        persistent: false,
        reclaims_space: false,
        owns_path: false,
        commits_past_snapshots: true,
    };

    /// An engine over files of its own: all of the above.
    pub const FILES: KvCapabilities = KvCapabilities {
        persistent: true,
        reclaims_space: true,
        owns_path: true,
        commits_past_snapshots: true,
    };
}

/// An engine under test: where its stores live and how to open them.
pub trait KvHarness: Sized + 'static {
    /// The engine.
    type Engine: KvEngine;

    /// A new, empty place for one case's store (e.g. a fresh temp dir).
    fn new() -> Self;

    /// Opens the engine at this place, with its default options (the first
    /// call creates the store).
    fn open(&self) -> Result<Self::Engine>;

    /// What the engine offers.
    fn capabilities() -> KvCapabilities;

    /// The file or folder of the store at this place (nothing there before
    /// the first [`open`](KvHarness::open)); `None` for an engine without
    /// files. Needed with [`KvCapabilities::owns_path`].
    fn path(&self) -> Option<PathBuf> {
        None
    }
}

/// One case of the engine suite.
struct KvCase<H> {
    name: &'static str,
    runs_if: fn(&KvCapabilities) -> bool,
    body: fn(H),
}

/// Runs every case against `H`, each as its own libtest test; call it from
/// the `main` of a `harness = false` test. Takes the usual libtest
/// arguments (filters, `--list`, `--ignored`, …).
pub fn run<H: KvHarness>() -> ExitCode {
    libtest_mimic::run(&Arguments::from_args(), trials::<H>()).exit_code()
}

/// Every case against `H` as a libtest-mimic trial, those whose capability
/// `H` lacks flagged as ignored.
pub fn trials<H: KvHarness>() -> Vec<Trial> {
    let capabilities = H::capabilities();
    cases::all::<H>()
        .into_iter()
        .map(|case| {
            let body = case.body;
            Trial::test(format!("engine::{}", case.name), move || {
                body(H::new());
                Ok(())
            })
            .with_ignored_flag(!(case.runs_if)(&capabilities))
        })
        .collect()
}
