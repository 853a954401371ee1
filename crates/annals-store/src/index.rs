//! Custom indexes: an [`Indexer`] maps events to keys; the store keeps
//! one entry per (key, event) in the aux space and answers
//! [`EventStore::lookup`] from them.
//!
//! Appends do not touch indexes (so an append costs the same with or
//! without them); an index catches up from the log, from its own stored
//! cursor, when it is opened, rebuilt or looked up. A lookup therefore sees
//! every event committed before it was called, whoever appended it.

use std::collections::BTreeSet;
use std::sync::Arc;

use annals_core::{AuxWrite, Direction, Error, LogBackend, Position, Query, RecordedEvent, Result};
use tokio::sync::Mutex;

use crate::EventStore;
use crate::keys::{self, IndexState};

/// How many aux writes the store puts in one `aux_write`.
const WRITE_CHUNK: usize = 256;

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
    /// the store opens.
    fn version(&self) -> u32;

    /// The keys `event` is found under; none for events this index does not
    /// care about. The same key twice counts once.
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
    /// Serializes catching up and rebuilding within this process.
    pub(crate) lock: Mutex<()>,
}

impl IndexSlot {
    pub(crate) fn new(indexer: Arc<dyn Indexer>) -> Result<Self> {
        let name = indexer.name().to_string();
        keys::check_name("index", &name, false)?;
        let filter = indexer.filter();
        if let Some(q) = &filter {
            q.validate()
                .map_err(|e| Error::InvalidInput(format!("filter of index {name:?}: {e}")))?;
        }
        Ok(IndexSlot {
            version: indexer.version(),
            indexer,
            name,
            filter,
            lock: Mutex::new(()),
        })
    }
}

/// What [`EventStore::index_status`] reports about one index.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct IndexStatus {
    /// The indexer version its entries were made by.
    pub version: u32,
    /// Every event up to this position is indexed.
    pub cursor: Position,
}

impl EventStore {
    fn slot(&self, name: &str) -> Result<&IndexSlot> {
        self.inner
            .indexes
            .iter()
            .find(|s| s.name == name)
            .ok_or_else(|| {
                let known: Vec<&str> = self.inner.indexes.iter().map(|s| s.name.as_str()).collect();
                Error::InvalidInput(format!(
                    "no index named {name:?} is registered (registered: {})",
                    if known.is_empty() {
                        "none".to_string()
                    } else {
                        known.join(", ")
                    }
                ))
            })
    }

    /// The events indexed under `key` by index `index`, in commit order:
    /// those with a position ≥ `from`, at most `limit` (1 to the backend's
    /// `max_read_count`). A page shorter than `limit` is the last; to read
    /// on, call again from the last position + 1.
    ///
    /// The index first catches up with the log, so the answer holds every
    /// event committed before the call, whoever appended it. Events deleted
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
        let prefix = keys::index_key_prefix(&slot.name, key)?;
        self.catch_up_slot(slot).await?;
        let backend = self.backend();
        let mut after = from
            .0
            .checked_sub(1)
            .map(|p| keys::index_entry(&prefix, Position(p)));
        let mut found = Vec::new();
        let mut stale = Vec::new();
        'scan: loop {
            let entries = backend.aux_scan(&prefix, after.as_deref(), limit).await?;
            let full = entries.len() == limit;
            for (entry, _) in entries {
                let position = keys::entry_position(&prefix, &entry)?;
                match event_at(backend, position).await? {
                    Some(event) => found.push(event),
                    None => stale.push(AuxWrite::delete(entry.clone())),
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
        // An event deleted or truncated never comes back ([S3], [S4]), so
        // its entry can go.
        write_chunked(backend, stale).await?;
        Ok(found)
    }

    /// Brings every index up to date with the log (what a lookup does for
    /// its own index first).
    pub async fn catch_up_indexes(&self) -> Result<()> {
        for slot in &self.inner.indexes {
            self.catch_up_slot(slot).await?;
        }
        Ok(())
    }

    /// Drops everything index `name` holds and builds it again from the
    /// whole log.
    pub async fn rebuild(&self, name: &str) -> Result<()> {
        let slot = self.slot(name)?;
        let _guard = slot.lock.lock().await;
        reset(self.backend(), slot).await?;
        catch_up_locked(self.backend(), slot, self.inner.page_size).await
    }

    /// The stored state of index `name`: its version and how far it is
    /// caught up; `None` when it has no data (it is rebuilt on next use).
    pub async fn index_status(&self, name: &str) -> Result<Option<IndexStatus>> {
        let slot = self.slot(name)?;
        Ok(read_state(self.backend(), slot)
            .await?
            .map(|s| IndexStatus {
                version: s.version,
                cursor: s.cursor,
            }))
    }

    /// Opens an index: catching up rebuilds it first if its data is
    /// missing, unreadable or of an older indexer version.
    pub(crate) async fn open_index(&self, slot: &IndexSlot) -> Result<()> {
        self.catch_up_slot(slot).await
    }

    async fn catch_up_slot(&self, slot: &IndexSlot) -> Result<()> {
        let _guard = slot.lock.lock().await;
        catch_up_locked(self.backend(), slot, self.inner.page_size).await
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

async fn read_state(backend: &Arc<dyn LogBackend>, slot: &IndexSlot) -> Result<Option<IndexState>> {
    let raw = backend.aux_get(&keys::index_state(&slot.name)).await?;
    Ok(raw.as_deref().and_then(IndexState::decode))
}

/// An index written by a newer version of its indexer is not rebuilt by an
/// older one (two processes would rebuild it in turn forever).
fn check_not_newer(slot: &IndexSlot, state: Option<IndexState>) -> Result<()> {
    match state {
        Some(s) if s.version > slot.version => Err(Error::InvalidInput(format!(
            "index {:?} was built by version {} of its indexer, newer than this one's ({})",
            slot.name, s.version, slot.version
        ))),
        _ => Ok(()),
    }
}

/// Deletes everything of the index, then writes an empty state of the
/// current version. The state goes first, so an interrupted reset is seen
/// (no state) and done again.
async fn reset(backend: &Arc<dyn LogBackend>, slot: &IndexSlot) -> Result<()> {
    let state_key = keys::index_state(&slot.name);
    backend.aux_delete(&state_key).await?;
    let prefix = keys::index_prefix(&slot.name);
    let limit = backend.limits().max_read_count.min(WRITE_CHUNK);
    loop {
        let entries = backend.aux_scan(&prefix, None, limit).await?;
        let n = entries.len();
        if n == 0 {
            break;
        }
        let deletes = entries
            .into_iter()
            .map(|(k, _)| AuxWrite::delete(k))
            .collect();
        backend.aux_write(deletes).await?;
        if n < limit {
            break;
        }
    }
    let empty = IndexState {
        version: slot.version,
        cursor: Position::START,
    };
    backend.aux_put(&state_key, &empty.encode()).await
}

/// Indexes every event after the stored cursor, page by page, moving the
/// cursor after each page. Entries are written before the cursor moves
/// (writing one twice is harmless), and the cursor moves only if nobody
/// else moved it meanwhile (an aux condition, [X2]).
async fn catch_up_locked(
    backend: &Arc<dyn LogBackend>,
    slot: &IndexSlot,
    page_size: usize,
) -> Result<()> {
    let state_key = keys::index_state(&slot.name);
    let mut state = match read_state(backend, slot).await? {
        Some(s) if s.version == slot.version => s,
        other => {
            // Deleted while open (index data is always safe to delete), or
            // rebuilt by an older indexer elsewhere: build it again.
            check_not_newer(slot, other)?;
            reset(backend, slot).await?;
            IndexState {
                version: slot.version,
                cursor: Position::START,
            }
        }
    };
    loop {
        let page = backend
            .read_all(
                state.cursor.next(),
                page_size,
                Direction::Forward,
                slot.filter.as_ref(),
            )
            .await?;
        let short = page.events.len() < page_size;
        let mut writes = Vec::new();
        for event in &page.events {
            let wanted: BTreeSet<String> = slot.indexer.keys(event).into_iter().collect();
            for key in wanted {
                let prefix = keys::index_key_prefix(&slot.name, &key).map_err(|e| {
                    Error::InvalidInput(format!(
                        "indexing the event at position {} (stream {} version {}): {e}",
                        event.position, event.stream_id, event.stream_version
                    ))
                })?;
                writes.push(AuxWrite::put(
                    keys::index_entry(&prefix, event.position),
                    Vec::new(),
                ));
            }
        }
        write_chunked(backend, writes).await?;
        // A short page holds every matching event up to its head ([D6]).
        let cursor = match page.events.last() {
            Some(last) if !short => last.position,
            _ => state.cursor.max(page.head),
        };
        if cursor != state.cursor {
            let moved = IndexState {
                version: slot.version,
                cursor,
            };
            let write = AuxWrite::put(state_key.clone(), moved.encode()).if_equals(state.encode());
            match backend.aux_write(vec![write]).await {
                Ok(()) => state = moved,
                Err(Error::AppendConditionFailed(_)) => {
                    // Another process moved or reset it: go on from there.
                    match read_state(backend, slot).await? {
                        Some(s) if s.version == slot.version => {
                            state = s;
                            continue;
                        }
                        other => {
                            check_not_newer(slot, other)?;
                            reset(backend, slot).await?;
                            state = IndexState {
                                version: slot.version,
                                cursor: Position::START,
                            };
                            continue;
                        }
                    }
                }
                Err(e) => return Err(e),
            }
        }
        if short {
            return Ok(());
        }
    }
}

async fn write_chunked(backend: &Arc<dyn LogBackend>, mut writes: Vec<AuxWrite>) -> Result<()> {
    while !writes.is_empty() {
        let rest = writes.split_off(writes.len().min(WRITE_CHUNK));
        backend.aux_write(writes).await?;
        writes = rest;
    }
    Ok(())
}
