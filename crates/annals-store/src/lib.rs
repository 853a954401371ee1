//! # annals-store — an event store over any annals backend
//!
//! [`EventStore`] wraps any [`LogBackend`] (`Arc<dyn LogBackend>`) and adds
//! what applications build on an event log, once for every backend:
//!
//! - **Subscriptions** ([`EventStore::subscribe_all`],
//!   [`EventStore::subscribe_stream`]): a [`Subscription`] catches up by
//!   reading the log in pages, then follows new commits through the head
//!   watch ([R8]) — no gap and no duplicate at the switch, commit order,
//!   at most one page in memory.
//! - **Consumer checkpoints** ([`EventStore::checkpoint`],
//!   [`EventStore::save_checkpoint`],
//!   [`EventStore::subscribe_from_checkpoint`]) in the aux space, and
//!   [`EventStore::append_with_checkpoint`], which commits a checkpoint
//!   with the events a consumer emits ([X2]) so it acts on each event
//!   exactly once across crashes.
//! - **Snapshots** ([`EventStore::save_snapshot`],
//!   [`EventStore::latest_snapshot`], [`EventStore::load`]), one per
//!   stream, never returned for a deleted stream.
//! - **Custom indexes**: an [`Indexer`] maps events to keys; the store keeps
//!   the index up to date from the log and answers [`EventStore::lookup`]
//!   with every event committed before the call — also while the index is
//!   rebuilt ([`EventStore::rebuild`] builds a new generation beside it and
//!   switches in one conditional aux write); [`EventStore::verify_index`] finds
//!   entries deleted behind its back and builds it again.
//! - **Typed events** ([`TypedEvent`], [`EventStore::append_typed`],
//!   [`EventStore::read_typed`]): Rust types stored as JSON.
//!
//! Everything the store keeps lives in the backend's aux space under
//! `annals-store/` (the layout is in the `keys` module's source), so any
//! backend with the aux capability ([C1]) runs all of it; subscriptions
//! and typed events need nothing beyond the core contract.
//!
//! ```
//! use annals_core::{ExpectedVersion, NewEvent, Position, StreamId};
//! use annals_store::EventStore;
//! use futures::StreamExt;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> annals_core::Result<()> {
//! let backend = std::sync::Arc::new(annals_memory::open(Default::default())?);
//! let store = EventStore::new(backend);
//! let cart = StreamId::new("cart-1")?;
//! store.backend().append(&cart, ExpectedVersion::NoStream, vec![NewEvent::builder("Opened").build()]).await?;
//!
//! let mut events = store.subscribe_all(Position::START, None)?;
//! let first = events.next().await.expect("a live subscription")?;
//! assert_eq!(first.event_type, "Opened");
//! store.save_checkpoint("mailer", first.position).await?;
//! assert_eq!(store.checkpoint("mailer").await?, Some(first.position));
//! # Ok(())
//! # }
//! ```
//!
//! Clause IDs in brackets (`[X2]`) refer to the project's `SPEC.md`.
#![forbid(unsafe_code)]

use std::fmt;
use std::sync::Arc;

use annals_core::{Error, Field, LogBackend, Position, Query, Result, StreamId, Version};

mod checkpoint;
mod index;
mod keys;
mod snapshot;
mod subscription;
mod typed;

pub use index::{IndexCheck, IndexStatus, Indexer};
pub use keys::{MAX_NAME_BYTES, PREFIX as AUX_PREFIX};
pub use snapshot::Snapshot;
pub use subscription::Subscription;
pub use typed::{Typed, TypedEvent};

use index::IndexSlot;

/// Largest default page: what a subscription, `load` and index catch-up
/// read at a time, unless the backend's `max_read_count` is smaller.
pub const DEFAULT_PAGE_SIZE: usize = 500;

/// An event store over a [`LogBackend`]: subscriptions, checkpoints,
/// snapshots, custom indexes and typed events. Cheap to clone: every clone
/// shares the backend and the indexes.
#[derive(Clone)]
pub struct EventStore {
    inner: Arc<Inner>,
}

struct Inner {
    backend: Arc<dyn LogBackend>,
    page_size: usize,
    indexes: Vec<IndexSlot>,
}

impl fmt::Debug for EventStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let indexes: Vec<&str> = self.inner.indexes.iter().map(|s| s.name.as_str()).collect();
        f.debug_struct("EventStore")
            .field("backend", &self.inner.backend)
            .field("page_size", &self.inner.page_size)
            .field("indexes", &indexes)
            .finish()
    }
}

impl EventStore {
    /// An event store over `backend`, without indexes (use
    /// [`EventStore::builder`] to register some).
    pub fn new(backend: Arc<dyn LogBackend>) -> Self {
        let page_size = default_page_size(backend.as_ref());
        EventStore {
            inner: Arc::new(Inner {
                backend,
                page_size,
                indexes: Vec::new(),
            }),
        }
    }

    /// Starts building an event store over `backend`.
    pub fn builder(backend: Arc<dyn LogBackend>) -> EventStoreBuilder {
        EventStoreBuilder {
            backend,
            page_size: None,
            indexers: Vec::new(),
        }
    }

    /// The backend, for everything of the log itself (appends, reads,
    /// streams, the aux space).
    pub fn backend(&self) -> &Arc<dyn LogBackend> {
        &self.inner.backend
    }

    /// How many events the store reads at a time.
    pub fn page_size(&self) -> usize {
        self.inner.page_size
    }

    /// The names of the registered indexes.
    pub fn index_names(&self) -> Vec<&str> {
        self.inner.indexes.iter().map(|s| s.name.as_str()).collect()
    }

    /// Every event of the global log with a position ≥ `from` (so
    /// `Position::START` is everything), optionally only those matching
    /// `query` ([R6]), then every new one as it is committed: see
    /// [`Subscription`]. An invalid query is `Error::InvalidInput`; a
    /// closed store is `Error::Closed`.
    pub fn subscribe_all(&self, from: Position, query: Option<Query>) -> Result<Subscription> {
        Subscription::all(
            self.inner.backend.clone(),
            from,
            query,
            self.inner.page_size,
        )
    }

    /// Every event of `stream` with a version ≥ `from`, then every new one
    /// as it is appended: see [`Subscription`]. A stream that does not
    /// exist yet (or was deleted) is waited for.
    pub fn subscribe_stream(&self, stream: &StreamId, from: Version) -> Result<Subscription> {
        Subscription::stream(
            self.inner.backend.clone(),
            stream.clone(),
            from,
            self.inner.page_size,
        )
    }

    /// Closes the backend ([M4]): subscriptions end with `Error::Closed`.
    pub async fn close(&self) -> Result<()> {
        self.inner.backend.close().await
    }
}

fn default_page_size(backend: &dyn LogBackend) -> usize {
    backend.limits().max_read_count.clamp(1, DEFAULT_PAGE_SIZE)
}

/// Builds an [`EventStore`]: page size and indexes.
#[must_use]
pub struct EventStoreBuilder {
    backend: Arc<dyn LogBackend>,
    page_size: Option<usize>,
    indexers: Vec<Arc<dyn Indexer>>,
}

impl fmt::Debug for EventStoreBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self.indexers.iter().map(|i| i.name()).collect();
        f.debug_struct("EventStoreBuilder")
            .field("backend", &self.backend)
            .field("page_size", &self.page_size)
            .field("indexers", &names)
            .finish()
    }
}

impl EventStoreBuilder {
    /// Reads `page_size` events at a time (1 to the backend's
    /// `max_read_count`; default [`DEFAULT_PAGE_SIZE`] or that limit).
    pub fn page_size(mut self, page_size: usize) -> Self {
        self.page_size = Some(page_size);
        self
    }

    /// Registers an index.
    pub fn indexer(self, indexer: impl Indexer) -> Self {
        self.shared_indexer(Arc::new(indexer))
    }

    /// Registers an index shared with other code.
    pub fn shared_indexer(mut self, indexer: Arc<dyn Indexer>) -> Self {
        self.indexers.push(indexer);
        self
    }

    /// The event store. Each index is built from the log if its data is
    /// missing or unreadable, or was made by an older version of its
    /// indexer; otherwise its entries are counted (O(entries)) and it is
    /// built again when some are missing or extra ([`EventStore::verify_index`]),
    /// then caught up. A rebuild a crash interrupted is finished. A bad page
    /// size or index name, two indexes of one name, or an index built by a
    /// newer version of its indexer is `Error::InvalidInput`.
    pub async fn open(self) -> Result<EventStore> {
        let page_size = match self.page_size {
            None => default_page_size(self.backend.as_ref()),
            Some(n) => {
                self.backend.limits().check_page_limit("page size", n)?;
                n
            }
        };
        let mut indexes: Vec<IndexSlot> = Vec::with_capacity(self.indexers.len());
        for indexer in self.indexers {
            let slot = IndexSlot::new(indexer)?;
            if indexes.iter().any(|s| s.name == slot.name) {
                return Err(Error::duplicate(
                    Field::Index,
                    format!("two indexes are named {:?}", slot.name),
                ));
            }
            indexes.push(slot);
        }
        let store = EventStore {
            inner: Arc::new(Inner {
                backend: self.backend,
                page_size,
                indexes,
            }),
        };
        for slot in &store.inner.indexes {
            store.open_index(slot).await?;
        }
        Ok(store)
    }
}
