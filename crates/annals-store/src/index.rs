//! Custom indexes: an [`Indexer`] maps events to keys; the store keeps
//! one entry per (key, event) in the aux space and answers
//! [`EventStore::lookup`] from them.
//!
//! Appends do not touch indexes (so an append costs the same with or
//! without them); an index catches up from the log, from its own stored
//! cursor, when it is opened, rebuilt or looked up. A lookup therefore sees
//! every event committed before it was called, whoever appended it.
//!
//! # Generations
//!
//! An index's entries belong to a *generation*. The generation lookups read
//! is named by the index's `state` record; a rebuild builds a new one
//! beside it, named by the `next` record, and when it has caught up with
//! the log switches `state` to it in one conditional aux write (\[X2\]).
//! Only then is the old generation deleted. So a lookup during a rebuild is
//! answered from the previous generation, which stays complete (lookups
//! keep it caught up), in every process sharing the store.
//!
//! Every write of entries carries the move of their generation's record
//! (cursor and entry count), conditional on the record being unchanged:
//! entries and record always agree, even across a crash, and nothing is
//! ever written into a generation that has been replaced. A lookup reads
//! the record again after reading entries: if the generation was replaced
//! meanwhile (its entries may be going), it reads again from the new one.
//!
//! The record counts the entries added and removed, so entries that went
//! missing (deleted by hand) are found by counting them, which
//! [`EventStore::verify_index`] and opening the store do.

use std::collections::BTreeSet;
use std::sync::Arc;

use annals_core::{
    AuxWrite, Direction, Error, Field, InvalidReason, Limit, LogBackend, Position, Query,
    RecordedEvent, Result, Uuid,
};
use tokio::sync::Mutex;

use crate::EventStore;
use crate::keys::{self, IndexState, Record};

/// Most aux writes the store puts in one `aux_write`.
const WRITE_CHUNK: usize = 256;

/// How many times an operation reads an index's records again when other
/// writers keep changing them under it, before it gives up.
const ATTEMPTS: usize = 32;

/// Maps events to the keys they are found under, for
/// [`EventStore::lookup`]. Register it with
/// [`EventStoreBuilder::indexer`](crate::EventStoreBuilder::indexer).
///
/// ```
/// use annals_store::Indexer;
/// use annals_core::RecordedEvent;
///
/// /// Orders by the customer in their data (`{"customer":"alice",…}`).
/// struct ByCustomer;
///
/// impl Indexer for ByCustomer {
///     fn name(&self) -> &str { "orders-by-customer" }
///     fn version(&self) -> u32 { 1 }
///     fn keys(&self, event: &RecordedEvent) -> Vec<String> {
///         let Ok(json) = serde_json::from_slice::<serde_json::Value>(&event.data) else {
///             return Vec::new();
///         };
///         json["customer"].as_str().map(|c| vec![c.to_string()]).unwrap_or_default()
///     }
/// }
/// ```
pub trait Indexer: Send + Sync + 'static {
    /// The index's name: 1 to 128 bytes, no `/`, no control character;
    /// unique among the store's indexes. Its data lives in the aux space
    /// under `annals-store/index/<name>/`.
    fn name(&self) -> &str;

    /// The version of [`keys`](Indexer::keys). Raise it whenever `keys`
    /// changes what it returns: the index is then rebuilt from the log when
    /// the store opens (beside the old one, which stores of the older
    /// version keep reading until the new one is complete).
    fn version(&self) -> u32;

    /// The keys `event` is found under; none for events this index does not
    /// care about. The same key twice counts once. The keys of one event
    /// are written in one aux write with the index's record, so they must
    /// fit in one: at most `max_append_events - 1` keys (and 255 at most).
    fn keys(&self, event: &RecordedEvent) -> Vec<String>;

    /// Events this index can care about at all, as a query (\[R6\]). When
    /// given, catching up reads only those (through the backend's type and
    /// tag indexes) instead of the whole log. Default: every event.
    fn filter(&self) -> Option<Query> {
        None
    }
}

/// A registered index.
pub(crate) struct IndexSlot {
    pub(crate) indexer: Arc<dyn Indexer>,
    pub(crate) name: String,
    pub(crate) version: u32,
    pub(crate) filter: Option<Query>,
    /// Serializes catching up the current generation within this process
    /// (other processes are kept apart by the records' conditions).
    catch_up: Mutex<()>,
    /// Serializes rebuilds within this process.
    rebuild: Mutex<()>,
}

impl IndexSlot {
    pub(crate) fn new(indexer: Arc<dyn Indexer>) -> Result<Self> {
        let name = indexer.name().to_string();
        keys::check_name(Field::Index, &name)?;
        let filter = indexer.filter();
        if let Some(q) = &filter {
            q.validate()
                .map_err(|e| e.in_context(format_args!("filter of index {name:?}")))?;
        }
        Ok(IndexSlot {
            version: indexer.version(),
            indexer,
            name,
            filter,
            catch_up: Mutex::new(()),
            rebuild: Mutex::new(()),
        })
    }
}

/// What [`EventStore::index_status`] reports about one index: its current
/// generation, the one lookups read.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
#[non_exhaustive]
pub struct IndexStatus {
    /// The indexer version its entries were made by.
    pub version: u32,
    /// Every event up to this position is indexed.
    pub cursor: Position,
    /// The id of the generation (it changes when the index is rebuilt).
    pub generation: u64,
    /// How many entries it holds, by its own count.
    pub entries: u64,
    /// When a rebuild is under way (or was interrupted and is finished
    /// when a store next opens), how far it has come.
    pub rebuilding: Option<Position>,
}

/// What [`EventStore::verify_index`] found.
#[derive(Clone, PartialEq, Eq, Debug)]
#[non_exhaustive]
pub struct IndexCheck {
    /// The index.
    pub index: String,
    /// How many entries its current generation holds.
    pub found: u64,
    /// How many its record says it holds (with writers at work meanwhile,
    /// the nearest to `found` that their writes allow).
    pub expected: u64,
    /// Whether `found` and `expected` differed, so the index was built again
    /// from the log.
    pub rebuilt: bool,
}

impl EventStore {
    fn slot(&self, name: &str) -> Result<&IndexSlot> {
        self.inner
            .indexes
            .iter()
            .find(|s| s.name == name)
            .ok_or_else(|| {
                let known: Vec<&str> = self.inner.indexes.iter().map(|s| s.name.as_str()).collect();
                Error::invalid(
                    InvalidReason::Unknown(Field::Index),
                    format!(
                        "no index named {name:?} is registered (registered: {})",
                        if known.is_empty() {
                            "none".to_string()
                        } else {
                            known.join(", ")
                        }
                    ),
                )
            })
    }

    fn index<'a>(&'a self, slot: &'a IndexSlot) -> Index<'a> {
        Index {
            backend: self.backend(),
            slot,
            page_size: self.inner.page_size,
        }
    }

    /// The events indexed under `key` by index `index`, in commit order:
    /// those with a position ≥ `from`, at most `limit` (1 to the backend's
    /// `max_read_count`). A page shorter than `limit` is the last; to read
    /// on, call again from the last position + 1.
    ///
    /// The index first catches up with the log, so the answer holds every
    /// event committed before the call, whoever appended it — also while
    /// the index is being rebuilt, here or by another process: the lookup is
    /// then answered from the previous, complete generation. Events deleted
    /// or truncated since they were indexed are left out (and their entries
    /// removed).
    pub async fn lookup(
        &self,
        index: &str,
        key: &str,
        from: Position,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>> {
        let slot = self.slot(index)?;
        self.backend().limits().check_page_limit("lookup", limit)?;
        // A key too long for an entry is refused before any work.
        keys::index_key_prefix(&slot.name, 0, key)?;
        let index = self.index(slot);
        for _ in 0..ATTEMPTS {
            let state = index.current().await?;
            let (found, stale) = index.scan(state.generation, key, from, limit).await?;
            // A generation's entries are deleted only after another has
            // replaced it: if it is still the current one, none was missing
            // while they were read.
            match index.read(Record::Current).await? {
                Stored::Found(now) if now.generation == state.generation => {
                    index.remove_stale(now, stale).await?;
                    return Ok(found);
                }
                _ => continue,
            }
        }
        Err(index.busy("looking up"))
    }

    /// Brings every index up to date with the log (what a lookup does for
    /// its own index first).
    pub async fn catch_up_indexes(&self) -> Result<()> {
        for slot in &self.inner.indexes {
            self.index(slot).current().await?;
        }
        Ok(())
    }

    /// Builds index `name` again from the whole log, beside the current
    /// one, and switches lookups to it once it has caught up (in every
    /// process at once: the switch is one aux write). Lookups meanwhile are
    /// answered from the current one. When another rebuild of it is under
    /// way, this one replaces it (or, if that one started after this call,
    /// helps it); when this returns, the index lookups read was built from
    /// the log after the call began. A rebuild interrupted (by a crash) is
    /// finished when a store next opens, or replaced by the next rebuild.
    pub async fn rebuild(&self, name: &str) -> Result<()> {
        let slot = self.slot(name)?;
        self.index(slot).rebuild().await
    }

    /// Counts the entries of index `name` and compares them with the count
    /// its record keeps; when they differ (entries deleted or added behind
    /// the store's back), replaces the index with an empty one and builds
    /// it from the log before returning. Lookups meanwhile build along
    /// rather than read the damaged entries. Reads every entry of the
    /// index: O(entries).
    pub async fn verify_index(&self, name: &str) -> Result<IndexCheck> {
        let slot = self.slot(name)?;
        self.index(slot).verify().await
    }

    /// [`verify_index`](EventStore::verify_index) for every registered
    /// index.
    pub async fn verify_indexes(&self) -> Result<Vec<IndexCheck>> {
        let mut checks = Vec::with_capacity(self.inner.indexes.len());
        for slot in &self.inner.indexes {
            checks.push(self.index(slot).verify().await?);
        }
        Ok(checks)
    }

    /// The stored state of index `name`: its current generation and how far
    /// a rebuild has come; `None` when it has no (readable) data (it is
    /// built on next use).
    pub async fn index_status(&self, name: &str) -> Result<Option<IndexStatus>> {
        let slot = self.slot(name)?;
        let index = self.index(slot);
        let rebuilding = match index.read(Record::Next).await? {
            Stored::Found(next) => Some(next.cursor),
            Stored::Absent | Stored::Unreadable(_) => None,
        };
        Ok(match index.read(Record::Current).await? {
            Stored::Found(s) => Some(IndexStatus {
                version: s.version,
                cursor: s.cursor,
                generation: s.generation,
                entries: s.entries(),
                rebuilding,
            }),
            Stored::Absent | Stored::Unreadable(_) => None,
        })
    }

    /// Opens an index: builds it when it has no data, unreadable data or
    /// data of an older indexer version; counts its entries and builds it
    /// again when some are missing; finishes a rebuild a crash
    /// interrupted; deletes data of generations no longer in use.
    pub(crate) async fn open_index(&self, slot: &IndexSlot) -> Result<()> {
        let index = self.index(slot);
        index.verify().await?;
        index.finish_interrupted_rebuild().await?;
        index.collect_garbage().await
    }
}

/// A generation record as read.
#[derive(PartialEq, Eq, Debug)]
enum Stored {
    Absent,
    /// Bytes this code does not write (an older format, or damage).
    Unreadable(Vec<u8>),
    Found(IndexState),
}

impl Stored {
    /// `write`, made to apply only while the record is still as read.
    fn unchanged(&self, write: AuxWrite) -> AuxWrite {
        match self {
            Stored::Absent => write.if_absent(),
            Stored::Unreadable(bytes) => write.if_equals(bytes.clone()),
            Stored::Found(state) => write.if_equals(state.encode()),
        }
    }

    fn generation(&self) -> Option<u64> {
        match self {
            Stored::Found(s) => Some(s.generation),
            Stored::Absent | Stored::Unreadable(_) => None,
        }
    }
}

/// What a count of a generation's entries found.
struct Count {
    found: u64,
    /// The fewest and the most entries the generation may hold, given the
    /// writes made while it was counted (the same when there were none).
    least: u64,
    most: u64,
    /// The record as read after counting.
    state: IndexState,
}

impl Count {
    fn holds(&self) -> bool {
        (self.least..=self.most).contains(&self.found)
    }

    fn expected(&self) -> u64 {
        self.found.clamp(self.least, self.most.max(self.least))
    }
}

/// Where a rebuild goes on after the `next` record changed under it.
enum Follow {
    /// Build this generation (moved on by another process, or a later
    /// rebuild's, which this one helps).
    Build(IndexState),
    /// The generation it built was switched to.
    Switched,
    /// The generation it built is gone (deleted by hand, or replaced and
    /// switched away from): start again.
    Gone,
}

/// Writes an aux write may hold.
#[derive(Clone, Copy)]
struct Budget {
    writes: usize,
    bytes: usize,
}

impl Budget {
    fn fits(self, writes: usize, bytes: usize) -> bool {
        writes <= self.writes && bytes <= self.bytes
    }
}

/// Entries waiting to be written with the move of their record.
#[derive(Default)]
struct Pending {
    entries: Vec<Vec<u8>>,
    bytes: usize,
    cursor: Position,
}

/// One index over one backend: everything that reads and writes its data.
struct Index<'a> {
    backend: &'a Arc<dyn LogBackend>,
    slot: &'a IndexSlot,
    page_size: usize,
}

impl Index<'_> {
    fn name(&self) -> &str {
        &self.slot.name
    }

    async fn read(&self, record: Record) -> Result<Stored> {
        let raw = self
            .backend
            .aux_get(&keys::index_record(self.name(), record))
            .await?;
        Ok(match raw {
            None => Stored::Absent,
            Some(bytes) => match IndexState::decode(&bytes) {
                Some(state) => Stored::Found(state),
                None => Stored::Unreadable(bytes),
            },
        })
    }

    /// Reads `record`, refusing one written by a newer version of the
    /// indexer.
    async fn read_not_newer(&self, record: Record) -> Result<Stored> {
        match self.read(record).await? {
            Stored::Found(s) if s.version > self.slot.version => Err(self.newer(s.version)),
            stored => Ok(stored),
        }
    }

    /// An index written by a newer version of its indexer is not rebuilt by
    /// an older one (two processes would rebuild it in turn forever).
    fn newer(&self, version: u32) -> Error {
        Error::invalid(
            InvalidReason::Conflict(Field::Index),
            format!(
                "index {:?} was built by version {version} of its indexer, newer than this one's ({})",
                self.name(),
                self.slot.version
            ),
        )
    }

    fn busy(&self, doing: &str) -> Error {
        Error::backend(
            format!("index {:?}: {doing}", self.name()),
            format!(
                "its data was changed by other writers {ATTEMPTS} times in a row \
                 (rebuilds back to back?); try again"
            ),
        )
    }

    fn budget(&self) -> Budget {
        let limits = self.backend.limits();
        Budget {
            writes: WRITE_CHUNK.min(limits.max_append_events),
            bytes: limits.max_append_bytes,
        }
    }

    /// The current generation, of this indexer's version, caught up with
    /// the log as of the call. Builds one first when there is none.
    async fn current(&self) -> Result<IndexState> {
        let _guard = self.slot.catch_up.lock().await;
        for _ in 0..ATTEMPTS {
            let stored = self.read_not_newer(Record::Current).await?;
            match stored {
                Stored::Found(s) if s.version == self.slot.version => {
                    if let Some(s) = self.catch_up(Record::Current, s).await? {
                        return Ok(s);
                    }
                }
                // An older indexer's: build this one's beside it (stores of
                // the older version read it until the switch).
                Stored::Found(_) => self.rebuild().await?,
                Stored::Absent | Stored::Unreadable(_) => {
                    if self.start_over(&stored).await? {
                        self.collect_garbage().await?;
                    }
                }
            }
        }
        Err(self.busy("catching up"))
    }

    /// Puts an empty generation in place of `stored` as the current one;
    /// catching up then builds it (lookups too, so none is answered from
    /// what it replaces). `false` when the record changed meanwhile (and
    /// nothing was written).
    async fn start_over(&self, stored: &Stored) -> Result<bool> {
        let empty = IndexState::empty(self.slot.version, new_generation());
        let key = keys::index_record(self.name(), Record::Current);
        let write = stored.unchanged(AuxWrite::put(key, empty.encode()));
        match self.backend.aux_write(vec![write]).await {
            Ok(()) => Ok(true),
            Err(e) if is_condition(&e) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Indexes every event after `state`'s cursor into its generation, page
    /// by page, each page's entries written with the move of its record,
    /// conditional on the record being unchanged (\[X2\]). Answers the record
    /// caught up with the head as of the call, or `None` when it was
    /// replaced by another generation meanwhile.
    async fn catch_up(&self, record: Record, mut state: IndexState) -> Result<Option<IndexState>> {
        let budget = self.budget();
        // The record's write: its key, its new value and the old one its
        // condition compares with ([X1] counts all three).
        let record_bytes = keys::index_record(self.name(), record).len() + 2 * state.encode().len();
        'pages: loop {
            let page = self
                .backend
                .read_all(
                    state.cursor.next(),
                    self.page_size,
                    Direction::Forward,
                    self.slot.filter.as_ref(),
                )
                .await?;
            let short = page.events.len() < self.page_size;
            let mut pending = Pending {
                cursor: state.cursor,
                ..Pending::default()
            };
            for event in &page.events {
                let entries = self.entries_of(state.generation, event)?;
                let bytes: usize = entries.iter().map(Vec::len).sum();
                if !budget.fits(entries.len() + 1, bytes + record_bytes) {
                    return Err(self.too_many_keys(event, entries.len(), budget));
                }
                if !budget.fits(
                    pending.entries.len() + entries.len() + 1,
                    pending.bytes + bytes + record_bytes,
                ) {
                    let full = std::mem::replace(
                        &mut pending,
                        Pending {
                            cursor: state.cursor,
                            ..Pending::default()
                        },
                    );
                    match self.commit(record, state, full).await? {
                        Committed::Moved(s) => {
                            state = s;
                            pending.cursor = s.cursor;
                        }
                        Committed::Reread(s) => {
                            state = s;
                            continue 'pages;
                        }
                        Committed::Replaced => return Ok(None),
                    }
                }
                pending.entries.extend(entries);
                pending.bytes += bytes;
                pending.cursor = event.position;
            }
            // A short page holds every matching event up to its head ([D6]).
            if short {
                pending.cursor = pending.cursor.max(page.head);
            }
            if pending.cursor != state.cursor {
                match self.commit(record, state, pending).await? {
                    Committed::Moved(s) => state = s,
                    Committed::Reread(s) => {
                        state = s;
                        continue 'pages;
                    }
                    Committed::Replaced => return Ok(None),
                }
            }
            if short {
                return Ok(Some(state));
            }
        }
    }

    /// The entry keys of `event` in `generation`.
    fn entries_of(&self, generation: u64, event: &RecordedEvent) -> Result<Vec<Vec<u8>>> {
        let wanted: BTreeSet<String> = self.slot.indexer.keys(event).into_iter().collect();
        wanted
            .iter()
            .map(|key| {
                let prefix = keys::index_key_prefix(self.name(), generation, key).map_err(|e| {
                    e.in_context(format_args!(
                        "indexing the event at position {} (stream {} version {})",
                        event.position, event.stream_id, event.stream_version
                    ))
                })?;
                Ok(keys::index_entry(&prefix, event.position))
            })
            .collect()
    }

    fn too_many_keys(&self, event: &RecordedEvent, keys: usize, budget: Budget) -> Error {
        Error::limit(
            Limit::AppendEvents,
            budget.writes,
            keys,
            format!(
                "index {:?}: the event at position {} (stream {} version {}) has {keys} keys, \
                 more than one aux write can hold with the index's record ({} writes, {} bytes)",
                self.name(),
                event.position,
                event.stream_id,
                event.stream_version,
                budget.writes,
                budget.bytes
            ),
        )
    }

    /// Writes `pending`'s entries and moves `record` to its cursor, if the
    /// record is still `state`.
    async fn commit(
        &self,
        record: Record,
        state: IndexState,
        pending: Pending,
    ) -> Result<Committed> {
        let added = u64::try_from(pending.entries.len()).unwrap_or(u64::MAX);
        let moved = IndexState {
            cursor: pending.cursor,
            added: state.added.saturating_add(added),
            ..state
        };
        let mut writes: Vec<AuxWrite> = pending
            .entries
            .into_iter()
            .map(|entry| AuxWrite::put(entry, Vec::new()))
            .collect();
        let key = keys::index_record(self.name(), record);
        writes.push(AuxWrite::put(key, moved.encode()).if_equals(state.encode()));
        match self.backend.aux_write(writes).await {
            Ok(()) => Ok(Committed::Moved(moved)),
            Err(e) if is_condition(&e) => Ok(match self.read(record).await? {
                // Another process moved it (or a lookup removed entries):
                // go on from there.
                Stored::Found(s) if s.generation == state.generation => Committed::Reread(s),
                _ => Committed::Replaced,
            }),
            Err(e) => Err(e),
        }
    }

    /// The events under `key` in `generation` from `from` on, at most
    /// `limit`, and the entries of events that are gone.
    async fn scan(
        &self,
        generation: u64,
        key: &str,
        from: Position,
        limit: usize,
    ) -> Result<(Vec<RecordedEvent>, Vec<Vec<u8>>)> {
        let prefix = keys::index_key_prefix(self.name(), generation, key)?;
        let mut after = from
            .0
            .checked_sub(1)
            .map(|p| keys::index_entry(&prefix, Position(p)));
        let mut found = Vec::new();
        let mut stale = Vec::new();
        'scan: loop {
            let entries = self
                .backend
                .aux_scan(&prefix, after.as_deref(), limit)
                .await?;
            let full = entries.len() == limit;
            for (entry, _) in entries {
                let position = keys::entry_position(&prefix, &entry)?;
                match event_at(self.backend, position).await? {
                    Some(event) => found.push(event),
                    None => stale.push(entry.clone()),
                }
                after = Some(entry);
                if found.len() == limit {
                    break 'scan;
                }
            }
            if !full {
                break;
            }
        }
        Ok((found, stale))
    }

    /// Removes the entries of events deleted or truncated since they were
    /// indexed (they never come back, \[S3\] \[S4\]), counting them in the
    /// record. Best effort: when others keep changing the record, what is
    /// left is removed by a later lookup.
    async fn remove_stale(&self, mut state: IndexState, mut stale: Vec<Vec<u8>>) -> Result<()> {
        let budget = self.budget();
        let key = keys::index_record(self.name(), Record::Current);
        let mut bytes = key.len() + 2 * state.encode().len();
        let mut fitting = 1;
        stale.retain(|entry| {
            fitting += 1;
            bytes += entry.len();
            budget.fits(fitting, bytes)
        });
        for _ in 0..3 {
            if stale.is_empty() {
                return Ok(());
            }
            let removed = u64::try_from(stale.len()).unwrap_or(u64::MAX);
            let counted = IndexState {
                removed: state.removed.saturating_add(removed),
                ..state
            };
            let mut writes: Vec<AuxWrite> = stale
                .iter()
                .map(|entry| AuxWrite::delete(entry.clone()).if_equals(Vec::new()))
                .collect();
            writes.push(AuxWrite::put(key.clone(), counted.encode()).if_equals(state.encode()));
            match self.backend.aux_write(writes).await {
                Ok(()) => return Ok(()),
                Err(e) if is_condition(&e) => {
                    // The cursor moved, or another lookup removed some first.
                    match self.read(Record::Current).await? {
                        Stored::Found(now) if now.generation == state.generation => state = now,
                        _ => return Ok(()),
                    }
                    let mut left = Vec::with_capacity(stale.len());
                    for entry in stale {
                        if self.backend.aux_get(&entry).await?.is_some() {
                            left.push(entry);
                        }
                    }
                    stale = left;
                }
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Builds a new generation from the whole log as `next`, then switches
    /// the current one to it.
    async fn rebuild(&self) -> Result<()> {
        let _guard = self.slot.rebuild.lock().await;
        for _ in 0..ATTEMPTS {
            let next = self.start_next().await?;
            // The generation it replaced, if any.
            self.collect_garbage().await?;
            if self.build(next).await? {
                return self.collect_garbage().await;
            }
        }
        Err(self.busy("rebuilding"))
    }

    /// Puts a new, empty generation as `next`, in place of one a rebuild
    /// that began earlier is building; when another rebuild put one there
    /// meanwhile (it began after this one), answers that one instead.
    async fn start_next(&self) -> Result<IndexState> {
        let key = keys::index_record(self.name(), Record::Next);
        for _ in 0..ATTEMPTS {
            let stored = self.read_not_newer(Record::Next).await?;
            let empty = IndexState::empty(self.slot.version, new_generation());
            let write = stored.unchanged(AuxWrite::put(key.clone(), empty.encode()));
            match self.backend.aux_write(vec![write]).await {
                Ok(()) => return Ok(empty),
                Err(e) if is_condition(&e) => {
                    if let Stored::Found(n) = self.read(Record::Next).await?
                        && n.version == self.slot.version
                    {
                        return Ok(n);
                    }
                }
                Err(e) => return Err(e),
            }
        }
        Err(self.busy("starting a rebuild"))
    }

    /// Catches `next` up, checks its count and switches to it. `false` when
    /// it is gone before that (the caller starts again).
    async fn build(&self, mut next: IndexState) -> Result<bool> {
        for _ in 0..ATTEMPTS {
            let Some(caught_up) = self.catch_up(Record::Next, next).await? else {
                match self.follow(next).await? {
                    Follow::Build(n) => next = n,
                    Follow::Switched => return Ok(true),
                    Follow::Gone => return Ok(false),
                }
                continue;
            };
            next = caught_up;
            // Entries deleted by hand while it was built are not promoted.
            match self.count(Record::Next, next).await? {
                Some(count) if count.holds() => next = count.state,
                Some(count) => {
                    let key = keys::index_record(self.name(), Record::Next);
                    let drop = AuxWrite::delete(key).if_equals(count.state.encode());
                    ignore_condition(self.backend.aux_write(vec![drop]).await)?;
                    return Ok(false);
                }
                None => {}
            }
            if self.switch(next).await? {
                return Ok(true);
            }
            match self.follow(next).await? {
                Follow::Build(n) => next = n,
                Follow::Switched => return Ok(true),
                Follow::Gone => return Ok(false),
            }
        }
        Err(self.busy("rebuilding"))
    }

    /// Where a rebuild building `ours` goes on after `next` changed.
    async fn follow(&self, ours: IndexState) -> Result<Follow> {
        match self.read_not_newer(Record::Next).await? {
            Stored::Found(n) if n.version == self.slot.version => Ok(Follow::Build(n)),
            _ => Ok(
                if self.read(Record::Current).await?.generation() == Some(ours.generation) {
                    Follow::Switched
                } else {
                    Follow::Gone
                },
            ),
        }
    }

    /// Makes `next` the current generation: one aux write, conditional on
    /// both records being as read. `false` when `next` changed.
    async fn switch(&self, next: IndexState) -> Result<bool> {
        let current_key = keys::index_record(self.name(), Record::Current);
        let next_key = keys::index_record(self.name(), Record::Next);
        for _ in 0..ATTEMPTS {
            let current = self.read_not_newer(Record::Current).await?;
            let writes = vec![
                current.unchanged(AuxWrite::put(current_key.clone(), next.encode())),
                AuxWrite::delete(next_key.clone()).if_equals(next.encode()),
            ];
            match self.backend.aux_write(writes).await {
                Ok(()) => return Ok(true),
                Err(e) if is_condition(&e) => {
                    // Either `next` changed, or the current generation moved
                    // (a lookup caught it up): then try again.
                    if self.read(Record::Next).await? != Stored::Found(next) {
                        return Ok(false);
                    }
                }
                Err(e) => return Err(e),
            }
        }
        Err(self.busy("switching to the rebuilt generation"))
    }

    /// Counts the entries of `state`'s generation and reads `record` again;
    /// `None` when the record is then another generation.
    async fn count(&self, record: Record, state: IndexState) -> Result<Option<Count>> {
        let prefix = keys::generation_prefix(self.name(), state.generation);
        let page = self.backend.limits().max_read_count.min(WRITE_CHUNK * 4);
        let mut found: u64 = 0;
        let mut after: Option<Vec<u8>> = None;
        loop {
            let entries = self
                .backend
                .aux_scan(&prefix, after.as_deref(), page)
                .await?;
            let n = entries.len();
            found = found.saturating_add(u64::try_from(n).unwrap_or(u64::MAX));
            after = entries.into_iter().next_back().map(|(k, _)| k);
            if n < page {
                break;
            }
        }
        let Stored::Found(now) = self.read(record).await? else {
            return Ok(None);
        };
        if now.generation != state.generation {
            return Ok(None);
        }
        // Entries added while counting may or may not have been seen, and
        // so may entries removed.
        Ok(Some(Count {
            found,
            least: state.added.saturating_sub(now.removed),
            most: now.added.saturating_sub(state.removed),
            state: now,
        }))
    }

    /// Catches the index up, counts its entries, and starts it over from
    /// the log when the count is off.
    async fn verify(&self) -> Result<IndexCheck> {
        for _ in 0..ATTEMPTS {
            let state = self.current().await?;
            let Some(count) = self.count(Record::Current, state).await? else {
                continue;
            };
            let check = IndexCheck {
                index: self.name().to_string(),
                found: count.found,
                expected: count.expected(),
                rebuilt: !count.holds(),
            };
            if check.rebuilt {
                // When the record moved meanwhile, count again.
                if !self.start_over(&Stored::Found(count.state)).await? {
                    continue;
                }
                self.current().await?;
                self.collect_garbage().await?;
            }
            return Ok(check);
        }
        Err(self.busy("verifying"))
    }

    /// A rebuild of this version that a crash interrupted is finished; one
    /// of an older version (which could never switch) is dropped.
    async fn finish_interrupted_rebuild(&self) -> Result<()> {
        match self.read(Record::Next).await? {
            Stored::Absent => Ok(()),
            Stored::Found(n) if n.version > self.slot.version => Ok(()),
            Stored::Found(n) if n.version == self.slot.version => {
                let _guard = self.slot.rebuild.lock().await;
                self.build(n).await.map(drop)
            }
            stored => {
                let key = keys::index_record(self.name(), Record::Next);
                let drop = stored.unchanged(AuxWrite::delete(key));
                ignore_condition(self.backend.aux_write(vec![drop]).await)
            }
        }
    }

    /// Deletes the entries of every generation neither record names (left
    /// by a switch, a replaced rebuild or a crash), and entries of the
    /// format before generations.
    async fn collect_garbage(&self) -> Result<()> {
        let name = self.name();
        let prefix = keys::generations_prefix(name);
        let mut generations = Vec::new();
        let mut after: Option<Vec<u8>> = None;
        loop {
            let first = self.backend.aux_scan(&prefix, after.as_deref(), 1).await?;
            let Some((key, _)) = first.into_iter().next() else {
                break;
            };
            after = Some(match keys::generation_of(name, &key) {
                Some(g) => {
                    generations.push(g);
                    keys::after_generation(name, g)
                }
                // Not an entry this code writes: left alone.
                None => key,
            });
        }
        let legacy = keys::legacy_entries_prefix(name);
        let has_legacy = !self.backend.aux_scan(&legacy, None, 1).await?.is_empty();
        if has_legacy {
            self.delete_all(&legacy).await?;
        }
        if generations.is_empty() {
            return Ok(());
        }
        // A generation with entries has been named by a record; once no
        // record names it, none ever will again (ids are never reused).
        // `next` is read first: a generation switched to in between is then
        // seen in one or the other.
        let next = self.read(Record::Next).await?.generation();
        let current = self.read(Record::Current).await?.generation();
        for g in generations {
            if Some(g) != next && Some(g) != current {
                self.delete_all(&keys::generation_prefix(name, g)).await?;
            }
        }
        Ok(())
    }

    /// Deletes every aux key under `prefix`, a page at a time.
    async fn delete_all(&self, prefix: &[u8]) -> Result<()> {
        let budget = self.budget();
        let page = self.backend.limits().max_read_count.min(budget.writes);
        let mut after: Option<Vec<u8>> = None;
        loop {
            let keys = self
                .backend
                .aux_scan(prefix, after.as_deref(), page)
                .await?;
            let n = keys.len();
            after = keys.last().map(|(k, _)| k.clone());
            let mut batch: Vec<AuxWrite> = Vec::new();
            let mut bytes = 0;
            for (key, _) in keys {
                if !batch.is_empty() && !budget.fits(batch.len() + 1, bytes + key.len()) {
                    self.backend.aux_write(std::mem::take(&mut batch)).await?;
                    bytes = 0;
                }
                bytes += key.len();
                batch.push(AuxWrite::delete(key));
            }
            if !batch.is_empty() {
                self.backend.aux_write(batch).await?;
            }
            if n < page {
                return Ok(());
            }
        }
    }
}

/// How a conditional move of a record ended.
enum Committed {
    Moved(IndexState),
    /// Someone else moved the same generation: this is where it is now.
    Reread(IndexState),
    /// The record names another generation now (or none).
    Replaced,
}

/// A new generation id: the random bits of a UUIDv7, so that ids are never
/// reused, across processes too.
fn new_generation() -> u64 {
    Uuid::now_v7().as_u64_pair().1
}

fn is_condition(e: &Error) -> bool {
    e.is_condition_failed()
}

/// A conditional write that lost to another writer is not an error for a
/// caller that reads the record again anyway.
fn ignore_condition(result: Result<()>) -> Result<()> {
    match result {
        Err(e) if !is_condition(&e) => Err(e),
        _ => Ok(()),
    }
}

/// The readable event at exactly `position`, if any.
async fn event_at(
    backend: &Arc<dyn LogBackend>,
    position: Position,
) -> Result<Option<RecordedEvent>> {
    let page = backend
        .read_all(position, 1, Direction::Forward, None)
        .await?;
    Ok(page
        .events
        .into_iter()
        .next()
        .filter(|e| e.position == position))
}

#[cfg(test)]
mod tests {
    use super::*;
    use annals_core::{ExpectedVersion, NewEvent, StreamId};

    /// Indexes every event under each of its tags.
    struct ByTags;

    impl Indexer for ByTags {
        fn name(&self) -> &str {
            "tags"
        }
        fn version(&self) -> u32 {
            1
        }
        fn keys(&self, event: &RecordedEvent) -> Vec<String> {
            event.tags.clone()
        }
    }

    /// Indexes every event under `n` keys.
    struct Wide(usize);

    impl Indexer for Wide {
        fn name(&self) -> &str {
            "wide"
        }
        fn version(&self) -> u32 {
            1
        }
        fn keys(&self, _: &RecordedEvent) -> Vec<String> {
            (0..self.0).map(|i| format!("k{i}")).collect()
        }
    }

    fn memory() -> Arc<dyn LogBackend> {
        Arc::new(annals_memory::open(Default::default()).expect("a memory store"))
    }

    async fn append(backend: &Arc<dyn LogBackend>, tag: &str) -> Result<()> {
        let event = NewEvent::builder("T").tag(tag).build();
        backend
            .append(&StreamId::new("s")?, ExpectedVersion::Any, vec![event])
            .await
            .map(drop)
    }

    // An index kept in format 1 (a state without generation, entries under
    // `key/`) is built again in the current format, and the old entries go.
    #[tokio::test]
    async fn format_1_index_data_is_replaced() -> Result<()> {
        let backend = memory();
        append(&backend, "a").await?;
        append(&backend, "b").await?;
        let old_state = [1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 2];
        backend
            .aux_put(b"annals-store/index/tags/state", &old_state)
            .await?;
        let old_entry = b"annals-store/index/tags/key/a\x00\x01\x00\x00\x00\x00\x00\x00\x00\x01";
        backend.aux_put(old_entry, b"").await?;
        let store = EventStore::builder(backend.clone())
            .indexer(ByTags)
            .open()
            .await?;
        let a = store.lookup("tags", "a", Position::START, 10).await?;
        assert_eq!(a.len(), 1);
        assert_eq!(
            store.lookup("tags", "b", Position::START, 10).await?.len(),
            1
        );
        let left = backend
            .aux_scan(b"annals-store/index/tags/key/", None, 10)
            .await?;
        assert!(left.is_empty(), "format-1 entries kept: {left:?}");
        let status = store.index_status("tags").await?.expect("an index");
        assert_eq!((status.entries, status.cursor), (2, Position(2)));
        Ok(())
    }

    // An event with more keys than one aux write holds (with the record) is
    // refused by name, and nothing of it is written.
    #[tokio::test]
    async fn an_event_with_too_many_keys_is_refused() -> Result<()> {
        let backend = memory();
        append(&backend, "x").await?;
        let err = EventStore::builder(backend.clone())
            .indexer(Wide(WRITE_CHUNK))
            .open()
            .await
            .expect_err("256 keys and the record do not fit in one write");
        let message = err.to_string();
        assert!(
            err.is_invalid_input()
                && message.contains("\"wide\"")
                && message.contains("position 1")
                && message.contains("256 keys"),
            "{message}"
        );
        let entries = backend
            .aux_scan(b"annals-store/index/wide/g/", None, 10)
            .await?;
        assert!(entries.is_empty());
        let store = EventStore::builder(backend)
            .indexer(Wide(WRITE_CHUNK - 1))
            .open()
            .await?;
        assert_eq!(
            store
                .lookup("wide", "k254", Position::START, 10)
                .await?
                .len(),
            1
        );
        Ok(())
    }
}
