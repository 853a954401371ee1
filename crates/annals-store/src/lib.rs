//! # annals-store — an event store over any annals backend
//!
//! [`EventStore`] wraps any [`LogBackend`] (`Arc<dyn LogBackend>`) and adds
//! what applications build on an event log, once for every backend:
//!
//! - **Subscriptions** ([`EventStore::subscribe_all`],
//!   [`EventStore::subscribe_stream`]): a [`Subscription`] catches up by
//!   reading the log in pages, then follows new commits through the head
//!   watch (\[R8\]) — no gap and no duplicate at the switch, commit order,
//!   at most one page in memory.
//! - **Consumer checkpoints** ([`EventStore::checkpoint`],
//!   [`EventStore::save_checkpoint`],
//!   [`EventStore::subscribe_from_checkpoint`]) in the aux space, and
//!   [`EventStore::append_with_checkpoint`], which commits a checkpoint
//!   with the events a consumer emits (\[X2\]) so it acts on each event
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
//! - **Living with history**: *upcasting* (a schema
//!   [`VERSION`](TypedEvent::VERSION) per typed event, chains of
//!   [upcasters](EventStoreBuilder::upcaster) and type
//!   [aliases](EventStoreBuilder::alias), applied on read);
//!   *crypto-shredding* (data sealed per [subject](TypedEvent::subject)
//!   with a key wrapped by the application's [`MasterKey`];
//!   [`EventStore::forget`] deletes the key and the data reads as
//!   [`Decoded::Erased`]); *retention* ([`RetentionPolicy`] per stream or
//!   by prefix, honoured by reads through the store at once and enforced
//!   with `truncate_stream` by [`EventStore::enforce_retention`]). Reads
//!   through the store ([`EventStore::read_stream`], subscriptions,
//!   [`EventStore::load`], [`EventStore::read_typed`]) apply all three;
//!   the backend's own reads return events as stored.
//!
//! Everything the store keeps lives in the backend's aux space under
//! `annals-store/` (the layout is in the `keys` module's source), so any
//! backend with the aux capability (\[C1\]) runs all of it; subscriptions
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
//! Clause IDs in brackets (`[X2]`) refer to the contract,
//! [`docs/contract.md`](https://github.com/annals-rs/annals/blob/main/docs/contract.md) in the repository.
#![forbid(unsafe_code)]

use annals_core::FailedCondition;
use std::fmt;
use std::sync::Arc;

use annals_core::{Error, Field, LogBackend, Position, Query, Result, StreamId, Version};

mod checkpoint;
mod index;
mod keys;
pub mod retention;
mod reveal;
pub mod shred;
mod snapshot;
mod subscription;
mod typed;
pub mod upcast;

pub use index::{IndexCheck, IndexStatus, Indexer};
pub use keys::{MAX_NAME_BYTES, PREFIX as AUX_PREFIX};
pub use retention::{
    Clock, ManualClock, PolicySource, RetentionPolicy, RetentionReport, SystemClock,
};
pub use shred::{Decoded, MasterKey, is_sealed};
pub use snapshot::Snapshot;
pub use subscription::{LAG_METRIC, Subscription};
pub use typed::{Typed, TypedEvent};

use index::IndexSlot;
use reveal::History;
use shred::KeyRing;
use upcast::{SchemaBuilder, UpcastFn};

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
    history: History,
}

impl fmt::Debug for EventStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let indexes: Vec<&str> = self.inner.indexes.iter().map(|s| s.name.as_str()).collect();
        f.debug_struct("EventStore")
            .field("backend", &self.inner.backend)
            .field("page_size", &self.inner.page_size)
            .field("indexes", &indexes)
            .field("history", &self.inner.history)
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
                history: History {
                    schema: Default::default(),
                    keys: None,
                    clock: Arc::new(SystemClock),
                },
            }),
        }
    }

    /// Starts building an event store over `backend`.
    pub fn builder(backend: Arc<dyn LogBackend>) -> EventStoreBuilder {
        EventStoreBuilder {
            backend,
            page_size: None,
            indexers: Vec::new(),
            schema: SchemaBuilder::default(),
            master_key: None,
            clock: Arc::new(SystemClock),
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
    /// `query` (\[R6\]), then every new one as it is committed: see
    /// [`Subscription`]. An invalid query is `Error::InvalidInput`; a
    /// closed store is `Error::Closed`.
    pub fn subscribe_all(&self, from: Position, query: Option<Query>) -> Result<Subscription> {
        Subscription::all(self.clone(), from, query, self.inner.page_size)
    }

    /// Every event of `stream` with a version ≥ `from`, then every new one
    /// as it is appended: see [`Subscription`]. A stream that does not
    /// exist yet (or was deleted) is waited for.
    pub fn subscribe_stream(&self, stream: &StreamId, from: Version) -> Result<Subscription> {
        Subscription::stream(self.clone(), stream.clone(), from, self.inner.page_size)
    }

    /// Closes the backend (\[M4\]): subscriptions end with `Error::Closed`.
    pub async fn close(&self) -> Result<()> {
        self.inner.backend.close().await
    }
}

fn default_page_size(backend: &dyn LogBackend) -> usize {
    backend.limits().max_read_count.clamp(1, DEFAULT_PAGE_SIZE)
}

/// Builds an [`EventStore`]: page size, indexes, upcasters and aliases,
/// the master key of crypto-shredding, the clock of retention.
#[must_use]
pub struct EventStoreBuilder {
    backend: Arc<dyn LogBackend>,
    page_size: Option<usize>,
    indexers: Vec<Arc<dyn Indexer>>,
    schema: SchemaBuilder,
    master_key: Option<MasterKey>,
    clock: Arc<dyn Clock>,
}

impl fmt::Debug for EventStoreBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self.indexers.iter().map(|i| i.name()).collect();
        f.debug_struct("EventStoreBuilder")
            .field("backend", &self.backend)
            .field("page_size", &self.page_size)
            .field("indexers", &names)
            .field("upcasters", &self.schema.upcasters.len())
            .field("aliases", &self.schema.aliases)
            .field("master_key", &self.master_key)
            .field("clock", &self.clock)
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

    /// Registers the upcaster of event type `event_type` from schema
    /// version `from` to `from + 1`: it gets the JSON data of version
    /// `from` and returns that of the next version. Reads through the store
    /// chain upcasters from an event's stored version to the highest one
    /// registered for its type (see [`TypedEvent::VERSION`]). Version 0,
    /// two upcasters from one version, or one registered under an aliased
    /// name is `Error::InvalidInput` when the store opens.
    ///
    /// ```
    /// # async fn f(backend: std::sync::Arc<dyn annals_core::LogBackend>) -> annals_core::Result<()> {
    /// let store = annals_store::EventStore::builder(backend)
    ///     // v1 had "name"; v2 splits it.
    ///     .upcaster("UserRegistered", 1, |mut v| {
    ///         let name = v["name"].take();
    ///         v["first_name"] = name;
    ///         v["last_name"] = "".into();
    ///         Ok(v)
    ///     })
    ///     .open()
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub fn upcaster<F>(mut self, event_type: impl Into<String>, from: u32, upcaster: F) -> Self
    where
        F: Fn(serde_json::Value) -> std::result::Result<serde_json::Value, annals_core::BoxError>
            + Send
            + Sync
            + 'static,
    {
        let f: Arc<UpcastFn> = Arc::new(upcaster);
        self.schema.upcasters.push((event_type.into(), from, f));
        self
    }

    /// Renames event type `old` to `new` on read: events stored as `old`
    /// read as `new` (then go through `new`'s upcasters; versions carry on
    /// across the rename). Chains (`A` → `B` → `C`) are followed; a cycle
    /// is `Error::InvalidInput` when the store opens. Queries and
    /// subscriptions filtered by type match the *stored* type: filter by
    /// both names while old events remain.
    pub fn alias(mut self, old: impl Into<String>, new: impl Into<String>) -> Self {
        self.schema.aliases.push((old.into(), new.into()));
        self
    }

    /// The master key of crypto-shredding: it wraps the subjects' data
    /// keys (see [`MasterKey`] and [`EventStore::forget`]). Without it,
    /// sealing an event or forgetting a subject is `Error::InvalidInput`
    /// and sealed data stays sealed on read.
    pub fn master_key(mut self, key: MasterKey) -> Self {
        self.master_key = Some(key);
        self
    }

    /// The clock retention measures the age of events with (default: the
    /// system clock).
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// The event store. Each index is built from the log if its data is
    /// missing or unreadable, or was made by an older version of its
    /// indexer; otherwise its entries are counted (O(entries)) and it is
    /// built again when some are missing or extra ([`EventStore::verify_index`]),
    /// then caught up. A rebuild a crash interrupted is finished. A bad page
    /// size or index name, two indexes of one name, or an index built by a
    /// newer version of its indexer, bad upcasters or aliases, or a master
    /// key other than the one the store's data keys were made with is
    /// `Error::InvalidInput`.
    pub async fn open(self) -> Result<EventStore> {
        let schema = self.schema.build()?;
        let keys = match &self.master_key {
            Some(master) => Some(check_master_key(self.backend.as_ref(), master).await?),
            None => None,
        };
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
                history: History {
                    schema,
                    keys,
                    clock: self.clock,
                },
            }),
        };
        for slot in &store.inner.indexes {
            store.open_index(slot).await?;
        }
        Ok(store)
    }
}

/// The key ring of `master`, after checking it against the store's key
/// check (made now if the store has none).
async fn check_master_key(backend: &dyn LogBackend, master: &MasterKey) -> Result<KeyRing> {
    let ring = KeyRing::new(master);
    // A lost race to create the check means it exists on the next try.
    for _ in 0..3 {
        let existing = backend.aux_get(keys::SHRED_CHECK).await?;
        match ring.check(existing.as_deref())? {
            None => return Ok(ring),
            Some(value) => {
                let write = annals_core::AuxWrite::put(keys::SHRED_CHECK, value).if_absent();
                match backend.aux_write(vec![write]).await {
                    Ok(()) => return Ok(ring),
                    // Another process made it first: check against theirs.
                    Err(Error::AppendConditionFailed { .. }) => continue,
                    Err(e) => return Err(e),
                }
            }
        }
    }
    Err(Error::condition_failed(
        FailedCondition::AuxKey(keys::SHRED_CHECK.to_vec()),
        "the key check of the store kept changing while opening it",
    ))
}
