//! The damage trials every persistent backend runs (\[M6\]): a store is
//! written and closed, then, trial after trial, its files are restored,
//! a few bytes of one of them are overwritten at random, and the store is
//! reopened and read whole. Each outcome must be the original store, or
//! [`Error::Corruption`] / [`Error::Backend`] — never a panic, never an
//! event that was not written (nor, unless the backend says it may happen,
//! a read that is Ok with events missing).
//!
//! ```ignore
//! // crates/annals-x/tests/persistence.rs
//! #[tokio::test(flavor = "multi_thread")]
//! async fn damaged_bytes_are_errors_never_panics_nor_wrong_events_m6() {
//!     let outcomes = DamageTrials::new(|path| Ok(Arc::new(annals_x::open(path, Default::default())?) as _))
//!         .run(7, 300)
//!         .await;
//!     assert!(outcomes.corruption + outcomes.backend > 0, "{outcomes:?}");
//! }
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use annals_core::{Error, ExpectedVersion, LogBackend, NewEvent, Result};

use crate::workload::{Dump, Rng, dump, populate, stream};

/// Opens a backend's store at a path (blocking; the trials call it on
/// tokio's blocking pool).
pub type Opener = Arc<dyn Fn(&Path) -> Result<Arc<dyn LogBackend>> + Send + Sync>;

/// Picks which file of a store a trial damages: an index into the store's
/// files (path and bytes, sorted by path; empty files left out).
pub type Pick = fn(&[(PathBuf, Vec<u8>)], &mut Rng) -> usize;

/// How a backend's damage trials run.
#[derive(Clone)]
pub struct DamageTrials {
    open: Opener,
    name: String,
    pick: Pick,
    incomplete_allowed: bool,
}

/// What the trials found.
#[derive(Debug, Default)]
pub struct Outcomes {
    /// Read whole, identical to the original.
    pub identical: u32,
    /// Read Ok, every event returned the original's, but some missing
    /// (only where [`DamageTrials::incomplete_allowed`] says so).
    pub incomplete: u32,
    /// [`Error::Corruption`].
    pub corruption: u32,
    /// [`Error::Backend`] (or a damaged ownership marker refused).
    pub backend: u32,
    /// How often each kind of error was seen (its message and sources,
    /// digits and paths left out).
    pub kinds: BTreeMap<String, u32>,
}

impl Outcomes {
    fn count(&mut self, e: &Error) {
        let mut text = e.to_string();
        let mut source = std::error::Error::source(e);
        while let Some(s) = source {
            text.push_str(" / ");
            text.push_str(&s.to_string());
            source = s.source();
        }
        let kind: String = text
            .split_whitespace()
            .filter(|w| !w.contains('/') || w == &"/")
            .collect::<Vec<_>>()
            .join(" ")
            .chars()
            .filter(|c| !c.is_ascii_digit())
            .take(160)
            .collect();
        *self.kinds.entry(kind).or_default() += 1;
    }

    /// Prints the counts and the kinds of errors (on stderr, for
    /// `--nocapture`).
    pub fn print(&self, what: &str) {
        eprintln!(
            "{what}: {} identical, {} incomplete, {} Corruption, {} Backend",
            self.identical, self.incomplete, self.corruption, self.backend
        );
        for (kind, n) in &self.kinds {
            eprintln!("{n:5} × {kind}");
        }
    }
}

/// Any file of the store, at random.
pub fn any_file(files: &[(PathBuf, Vec<u8>)], rng: &mut Rng) -> usize {
    usize::try_from(rng.below(files.len() as u64)).unwrap_or(0)
}

impl DamageTrials {
    /// Trials of the store that `open` opens at a path (a file or a
    /// folder, named `store` in a fresh temporary folder), damaging
    /// [`any_file`], where a damaged read is never Ok with events
    /// missing.
    pub fn new(
        open: impl Fn(&Path) -> Result<Arc<dyn LogBackend>> + Send + Sync + 'static,
    ) -> Self {
        DamageTrials {
            open: Arc::new(open),
            name: "store".to_string(),
            pick: any_file,
            incomplete_allowed: false,
        }
    }

    /// The name of the store's file or folder in its temporary folder
    /// (default `store`).
    pub fn named(mut self, name: &str) -> Self {
        self.name = name.to_string();
        self
    }

    /// Which file each trial damages.
    pub fn pick(mut self, pick: Pick) -> Self {
        self.pick = pick;
        self
    }

    /// Whether a damaged store may read Ok with some events missing (every
    /// event returned still the original's): an engine that trusts what
    /// it cannot check (e.g. redb without its integrity check).
    pub fn incomplete_allowed(mut self, allowed: bool) -> Self {
        self.incomplete_allowed = allowed;
        self
    }

    /// Writes the store (the workload of [`populate`] with `seed`, and one
    /// large event), then runs `trials` trials, asserting each outcome;
    /// answers what they found.
    pub async fn run(&self, seed: u64, trials: u64) -> Outcomes {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(&self.name);
        let store = self.open_blocking(&path).await.unwrap();
        populate(&*store, seed, 200).await.unwrap();
        let big = NewEvent::builder("Big")
            .data(vec![7u8; 300_000])
            .tags(["t0"])
            .build();
        store
            .append(&stream(0), ExpectedVersion::Any, vec![big])
            .await
            .unwrap();
        let original = dump(&*store).await.unwrap();
        check_dump_consistent(&original);
        store.close().await.unwrap();
        drop(store);
        let good: Vec<(PathBuf, Vec<u8>)> = files(&path)
            .into_iter()
            .filter(|(_, bytes)| !bytes.is_empty())
            .collect();
        let everything = files(&path);

        let mut outcomes = Outcomes::default();
        for trial in 0..trials {
            let mut rng = Rng::new(trial + 10_000 * seed);
            restore(&path, &everything);
            let (file, bytes) = &good[(self.pick)(&good, &mut rng)];
            let mut bad = bytes.clone();
            let mut places = Vec::new();
            for _ in 0..1 + rng.below(3) {
                let at = usize::try_from(rng.below(bad.len() as u64)).unwrap();
                let n = (1 + usize::try_from(rng.below(8)).unwrap()).min(bad.len() - at);
                for b in &mut bad[at..at + n] {
                    *b = rng.next_u64().to_le_bytes()[0];
                }
                places.push((at, n));
            }
            std::fs::write(file, &bad).unwrap();
            let what = format!(
                "trial {trial} (seed {seed}): {} overwritten at (offset, len) {places:?}",
                file.display()
            );
            let outcome = tokio::time::timeout(Duration::from_secs(60), self.read(&path))
                .await
                .unwrap_or_else(|_| panic!("{what}: hung"));
            match outcome {
                Ok(d) if d == original => outcomes.identical += 1,
                Ok(d) => {
                    assert!(
                        self.incomplete_allowed,
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
                    outcomes.count(&e);
                    outcomes.corruption += 1;
                }
                Err(e @ Error::Backend { .. }) => {
                    assert!(!is_escaped_panic(&e), "{what}: a panic escaped: {e:?}");
                    outcomes.count(&e);
                    outcomes.backend += 1;
                }
                // A marker damaged into another backend's name: the folder
                // is refused, as one of another backend's.
                Err(e @ Error::InvalidInput { .. })
                    if e.to_string().contains(annals_core::files::MARKER_FILE) =>
                {
                    outcomes.count(&e);
                    outcomes.backend += 1;
                }
                Err(e) => panic!("{what}: neither Ok nor Corruption nor Backend: {e:?}"),
            }
        }
        outcomes
    }

    async fn open_blocking(&self, path: &Path) -> Result<Arc<dyn LogBackend>> {
        let (open, path) = (Arc::clone(&self.open), path.to_path_buf());
        tokio::task::spawn_blocking(move || open(&path))
            .await
            .map_err(|e| Error::backend("opening the store on tokio's blocking pool", e))?
    }

    async fn read(&self, path: &Path) -> Result<Dump> {
        let store = self.open_blocking(path).await?;
        let result = dump(&*store).await;
        // Closing a damaged store may fail too; the files are rewritten anyway.
        let _ = store.close().await;
        result
    }
}

/// The forward read of `d` is its backward read reversed, and ends at the
/// head.
pub fn check_dump_consistent(d: &Dump) {
    assert!(!d.forward.is_empty());
    let mut reversed = d.backward.clone();
    reversed.reverse();
    assert_eq!(d.forward, reversed, "backward is not forward reversed");
    assert_eq!(d.head, d.forward.last().unwrap().position);
}

/// Whether a panic escaped (a store's task panicked, which tokio reports
/// as a `JoinError` somewhere in the error's sources).
pub fn is_escaped_panic(err: &Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = source {
        if e.downcast_ref::<tokio::task::JoinError>().is_some() {
            return true;
        }
        source = e.source();
    }
    false
}

/// Every file at `path` (the file itself, or every file under the folder),
/// with its bytes, sorted by path.
pub fn files(path: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut todo = vec![path.to_path_buf()];
    while let Some(p) = todo.pop() {
        if p.is_dir() {
            for entry in std::fs::read_dir(&p).unwrap() {
                todo.push(entry.unwrap().path());
            }
        } else {
            let bytes = std::fs::read(&p).unwrap();
            out.push((p, bytes));
        }
    }
    out.sort();
    out
}

/// Puts `path` back to exactly `files` (what [`files`] recorded).
fn restore(path: &Path, files: &[(PathBuf, Vec<u8>)]) {
    if path.is_dir() {
        std::fs::remove_dir_all(path).unwrap();
    }
    for (p, bytes) in files {
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, bytes).unwrap();
    }
}
