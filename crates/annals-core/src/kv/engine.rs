//! The small trait an ordered key-value engine implements to become an
//! annals backend: atomic batch commits and consistent snapshot reads.

use crate::backend::{Capabilities, Direction};
use crate::error::Result;

/// Puts and deletes committed together, in order (a later op on the same
/// key wins).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WriteBatch {
    /// `(key, Some(value))` puts, `(key, None)` deletes.
    pub ops: Vec<(Vec<u8>, Option<Vec<u8>>)>,
}

impl WriteBatch {
    /// An empty batch.
    pub fn new() -> Self {
        Self::default()
    }
    /// Adds a put.
    pub fn put(&mut self, key: Vec<u8>, value: Vec<u8>) {
        self.ops.push((key, Some(value)));
    }
    /// Adds a delete.
    pub fn delete(&mut self, key: Vec<u8>) {
        self.ops.push((key, None));
    }
    /// Whether the batch holds no op.
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }
    /// Number of ops.
    pub fn len(&self) -> usize {
        self.ops.len()
    }
}

/// What a scan visitor answers: go on to the next entry, or stop.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Scan {
    /// Visit the next entry.
    Continue,
    /// Stop the scan.
    Stop,
}

/// A visitor of scanned entries: `(key, value)`.
pub type Visitor<'a> = dyn FnMut(&[u8], &[u8]) -> Result<Scan> + 'a;

/// A consistent, read-only view of the engine at one instant: nothing
/// committed after it was taken is visible through it.
///
/// Called from a blocking-pool thread; calls may block on I/O.
pub trait KvSnapshot: Send + 'static {
    /// The value at `key`.
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>>;

    /// Visits the entries with `start <= key < end`, ascending for
    /// `Forward` and descending for `Backward`, until `visit` answers
    /// [`Scan::Stop`] or an error (which the scan returns).
    fn scan(
        &self,
        start: &[u8],
        end: &[u8],
        direction: Direction,
        visit: &mut Visitor<'_>,
    ) -> Result<()>;
}

/// An ordered key-value engine: keys and values are bytes, ordered
/// bytewise.
///
/// The generic [`KvStore`](super::KvStore) calls `commit` from its single
/// writer thread only, and everything else from blocking-pool threads.
/// Engine errors are [`Error::Backend`](crate::Error::Backend) (or
/// [`Error::Corruption`](crate::Error::Corruption) when the engine detects
/// damage). No method may panic on damaged files.
pub trait KvEngine: Send + Sync + 'static {
    /// A consistent read view.
    type Snapshot: KvSnapshot;

    /// A snapshot of everything committed so far.
    fn snapshot(&self) -> Result<Self::Snapshot>;

    /// Commits every op of `batch` atomically: after a crash either all of
    /// it is there or none. With `sync`, it returns only once the batch is
    /// on stable storage; without, a crash may lose it (and batches after
    /// it) but never part of it, nor any batch before a synced one.
    fn commit(&self, batch: WriteBatch, sync: bool) -> Result<()>;

    /// Gives the space of deleted keys back to the file system, as far as
    /// the engine can; the store calls it after deleting dead entries.
    fn compact(&self) -> Result<()> {
        Ok(())
    }

    /// Bytes the engine holds on disk (0 in memory).
    fn disk_bytes(&self) -> Result<u64>;

    /// What the engine offers; the store's capabilities are these.
    fn capabilities(&self) -> Capabilities;

    /// Whether the engine was opened read-only (e.g. a backend's
    /// `read_only=true`): the store then answers every write, and
    /// `compact`, with [`Error::Unsupported`](crate::Error::Unsupported)
    /// before it reaches the engine, whose `commit` must refuse too.
    fn read_only(&self) -> bool {
        false
    }

    /// Flushes and releases the engine's files, so that the same path can
    /// be opened again in this process once `close` returns. Called once,
    /// after the writer has stopped.
    fn close(&self) -> Result<()> {
        Ok(())
    }
}
