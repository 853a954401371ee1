//! # annals
//!
//! Pluggable storage backends for append-only event logs (event sourcing).
//! Every backend keeps one contract — atomic appends, gap-free stream
//! versions, one global log in commit order, read-your-writes, durability,
//! tag/type queries with Dynamic Consistency Boundary conditions, and a small
//! aux space for snapshots and checkpoints — so an application picks its
//! store with a URL and never changes a line when it moves to another.
//!
//! This crate is the one to depend on: it re-exports the whole API of
//! `annals-core` ([`LogBackend`], [`NewEvent`], [`Query`], [`Error`], …) and
//! opens stores by URL:
//!
//! | URL | cargo feature | backend |
//! |---|---|---|
//! | `memory://` | `memory` (default) | in memory; nothing survives the process |
//! | `redb:///abs/path/events.redb`, `redb://relative/events.redb` | `redb` (default) | one [redb](https://www.redb.org) file: embedded, pure Rust, the default |
//! | `rocksdb:///path/dir` | `rocksdb` | a [RocksDB](https://rocksdb.org) folder (C++, built from source: needs clang) |
//! | `sled:///path/dir` | `sled` | a [sled](https://sled.rs) 0.34 folder (pure Rust, beta) |
//! | `fjall:///path/dir` | `fjall` | a [fjall](https://fjall-rs.github.io) 3 folder (pure Rust LSM tree) |
//! | `postgres://user:pass@host:port/db?schema=annals` | `postgres` | a schema of a [PostgreSQL](https://www.postgresql.org) database, shared by many processes |
//!
//! Options go in the query: `redb:///var/lib/app/events.redb?durability=relaxed&cache_size=268435456`.
//! Every backend takes `durability` (`immediate` | `relaxed`),
//! `max_event_bytes`, `max_append_events`, `max_append_bytes` and
//! `max_read_count`; each backend adds its own (see [`redb::RedbOptions`]).
//! [`StoreUrl`] has the exact syntax.
//!
//! ```
//! use annals::{Direction, ExpectedVersion, NewEvent, Position, Query, StreamId};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> annals::Result<()> {
//! # if !annals::Scheme::Memory.is_compiled() { return Ok(()) }
//! let store = annals::open("memory://").await?;
//! let order = StreamId::new("order-42")?;
//! let placed = NewEvent::builder("OrderPlaced")
//!     .data(br#"{"total":42}"#.to_vec())
//!     .tag("customer:7")
//!     .build();
//! let written = store.append(&order, ExpectedVersion::NoStream, vec![placed]).await?;
//! assert_eq!(written.first_position, Position(1));
//!
//! // Everything customer 7 did, across streams, in commit order.
//! let page = store
//!     .read_all(Position::START, 100, Direction::Forward, Some(&Query::tags(["customer:7"])))
//!     .await?;
//! assert_eq!(page.events[0].event_type, "OrderPlaced");
//!
//! // A second writer that still thinks the stream is new is refused.
//! let late = NewEvent::builder("OrderPlaced").build();
//! let err = store.append(&order, ExpectedVersion::NoStream, vec![late]).await.unwrap_err();
//! assert!(err.is_wrong_expected_version());
//! store.close().await?;
//! # Ok(())
//! # }
//! ```
//!
//! For applications, [`EventStore`] (module [`store`]) adds what is built
//! on a log once for every backend: live subscriptions that catch up and
//! follow the head, consumer checkpoints (also committed atomically with
//! appends, for exactly-once process managers), snapshots, custom indexes
//! and typed (JSON) events. See `examples/projection.rs`.
//!
//! ## Cargo features
//!
//! - `memory` (default): [`memory`], `memory://` and [`open_memory`].
//! - `redb` (default): [`redb`] and `redb://`.
//! - `tracing`: `layer::TracingLayer`, a `tracing` span per call of any
//!   store.
//! - `metrics`: `layer::MetricsLayer`, the KV writer's commit figures and
//!   subscription lag, through the `metrics` facade.
//!
//! A URL whose backend is not compiled in is an [`Error::InvalidInput`]
//! that names the feature to enable.
#![forbid(unsafe_code)]

use std::sync::Arc;

use annals_core::driver::{Access, Opening};
pub use annals_core::kv;
pub use annals_core::*;

/// The event-store layer over any backend (the `annals-store` crate):
/// subscriptions, consumer checkpoints, snapshots, custom indexes, typed
/// events, upcasting, crypto-shredding and retention. Its main types are
/// also at the top level: [`EventStore`], [`Subscription`], [`Indexer`],
/// [`TypedEvent`], [`Decoded`], [`MasterKey`], [`RetentionPolicy`].
pub use annals_store as store;
pub use annals_store::{
    Decoded, EventStore, EventStoreBuilder, IndexCheck, IndexStatus, Indexer, MasterKey,
    RetentionPolicy, Snapshot, Subscription, Typed, TypedEvent,
};

/// The in-memory backend (the `annals-memory` crate; feature `memory`).
#[cfg(feature = "memory")]
pub use annals_memory as memory;

/// The embedded default backend over redb (the `annals-redb` crate; feature
/// `redb`).
#[cfg(feature = "redb")]
pub use annals_redb as redb;

/// The RocksDB backend (the `annals-rocksdb` crate; feature `rocksdb`).
#[cfg(feature = "rocksdb")]
pub use annals_rocksdb as rocksdb;

/// The sled backend (the `annals-sled` crate; feature `sled`).
#[cfg(feature = "sled")]
pub use annals_sled as sled;

/// The fjall backend (the `annals-fjall` crate; feature `fjall`).
#[cfg(feature = "fjall")]
pub use annals_fjall as fjall;

/// The PostgreSQL backend (the `annals-postgres` crate; feature `postgres`).
#[cfg(feature = "postgres")]
pub use annals_postgres as postgres;

mod store_url;

pub use store_url::{Scheme, StoreUrl};

/// An open store of any backend. Clone it to share it between tasks; every
/// clone is a handle on the same store.
pub type Store = Arc<dyn LogBackend>;

/// Opens the store a URL names (see [`StoreUrl`] for the syntax and the
/// [crate documentation](crate) for the backends and their options).
///
/// The URL and its options are checked first, without touching the disk:
/// a malformed URL, an unknown scheme, a backend not compiled in, or an
/// unknown or invalid option is [`Error::InvalidInput`] naming it. Then the
/// store is opened on tokio's blocking pool, since opening reads (and may
/// create) files; outside a tokio runtime it is opened on the calling
/// thread.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> annals::Result<()> {
/// if annals::Scheme::Redb.is_compiled() {
///     let dir = tempfile::tempdir().map_err(|e| annals::Error::backend("tempdir", e))?;
///     let url = annals::Scheme::Redb.url_for(dir.path().join("events.redb"))?;
///     let store = annals::open(&format!("{url}?durability=relaxed")).await?;
///     assert!(store.capabilities().persistent);
///     store.close().await?;
/// }
///
/// if annals::Scheme::Memory.is_compiled() {
///     let err = annals::open("memory://?cache_size=1").await.unwrap_err();
///     assert!(err.to_string().contains("unknown option \"cache_size\""));
/// }
/// # Ok(())
/// # }
/// ```
pub async fn open(url: &str) -> Result<Store> {
    open_as(url, Access::AsTheUrlSays).await
}

/// Opens the store a URL names only if it exists: like [`open`], but
/// nothing is created — no file, no folder — whatever the URL's `create`
/// option says; a missing store is an error naming its path. For
/// programs that must not create a store by accident (a typo in a path),
/// e.g. maintenance tools.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> annals::Result<()> {
/// if annals::Scheme::Redb.is_compiled() {
///     let dir = tempfile::tempdir().map_err(|e| annals::Error::backend("tempdir", e))?;
///     let url = annals::Scheme::Redb.url_for(dir.path().join("events.redb"))?;
///     assert!(annals::open_existing(&url).await.is_err());
///     assert!(!dir.path().join("events.redb").exists());
/// }
/// # Ok(())
/// # }
/// ```
pub async fn open_existing(url: &str) -> Result<Store> {
    open_as(url, Access::Existing).await
}

/// Opens an existing store for reading only: nothing is created, and
/// nothing is written — every write (append, aux write, delete, truncate,
/// compact) answers [`Error::Unsupported`]. What it guarantees depends on
/// the backend:
///
/// - redb (`read_only=true`): the file is opened read-only and never
///   changes (its modification time neither). redb's page-level integrity
///   check needs write access and is skipped (annals' record checksums are
///   still checked on every read), and a file that was not closed cleanly
///   cannot be opened this way: redb must recover it first, which writes;
/// - RocksDB (`read_only=true`): RocksDB's read-only mode; no file of the
///   folder changes (its diagnostic log is dropped);
/// - sled (`read_only=true`): annals writes none of its files, but sled
///   cannot open a database without writing to it, and may rewrite its own
///   log and snapshot files (never the events in them);
/// - memory: a new, empty store, as always;
/// - PostgreSQL (`read_only=true`): nothing is created or migrated (a
///   schema without a store is an error) and nothing is sent that writes;
///   it also opens on a hot standby, where its head watch polls.
///
/// ```
/// use annals::{ExpectedVersion, NewEvent, StreamId};
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> annals::Result<()> {
/// if annals::Scheme::Redb.is_compiled() {
///     let dir = tempfile::tempdir().map_err(|e| annals::Error::backend("tempdir", e))?;
///     let url = annals::Scheme::Redb.url_for(dir.path().join("events.redb"))?;
///     let store = annals::open(&url).await?;
///     let cart = StreamId::new("cart-1")?;
///     store.append(&cart, ExpectedVersion::NoStream, vec![NewEvent::builder("Opened").build()]).await?;
///     store.close().await?;
///
///     let reader = annals::open_read_only(&url).await?;
///     assert_eq!(reader.stream_version(&cart).await?.0, 0);
///     let refused = reader.append(&cart, ExpectedVersion::Any, vec![NewEvent::builder("X").build()]).await;
///     assert!(matches!(refused, Err(annals::Error::Unsupported(_))));
///     reader.close().await?;
/// }
/// # Ok(())
/// # }
/// ```
pub async fn open_read_only(url: &str) -> Result<Store> {
    open_as(url, Access::ReadOnly).await
}

/// Opens the store a URL names with one of `drivers` (and only those):
/// a backend written outside annals plugs in through its
/// [`Driver`](driver::Driver), and is then opened, checked and named in
/// errors exactly as the backends annals ships. Add annals' own with
/// [`drivers`].
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> annals::Result<()> {
/// # if !annals::Scheme::Memory.is_compiled() { return Ok(()) }
/// let mut drivers = annals::drivers();
/// // drivers.push(&my_backend::DRIVER);
/// let store = annals::open_with(&drivers, "memory://").await?;
/// assert!(!store.capabilities().persistent);
/// drivers.clear();
/// assert!(annals::open_with(&drivers, "memory://").await.is_err());
/// # Ok(())
/// # }
/// ```
pub async fn open_with(drivers: &[&'static driver::Driver], url: &str) -> Result<Store> {
    open_url(StoreUrl::parse_with(drivers, url)?, Access::AsTheUrlSays).await
}

async fn open_as(url: &str, access: Access) -> Result<Store> {
    open_url(StoreUrl::parse(url)?, access).await
}

/// Opens a parsed URL, `access` taking away what it does not allow.
pub(crate) async fn open_url(url: StoreUrl, access: Access) -> Result<Store> {
    match url.prepare(access)?.opening {
        // A database server is opened over the network, not on the blocking pool.
        Opening::Async(opening) => opening.await,
        // A path the backend refuses (not a store of its) is named with the URL.
        Opening::Blocking(opening) => run_blocking(opening).await.map_err(|e| url.in_context(e)),
    }
}

/// Opens a new, empty in-memory store (feature `memory`); the same as
/// `open("memory://")` with options given as a [`StoreConfig`].
///
/// ```
/// use annals::{Durability, StoreConfig};
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> annals::Result<()> {
/// let store = annals::open_memory(StoreConfig { durability: Durability::Relaxed, ..StoreConfig::default() })?;
/// assert!(!store.has_events().await?);
/// # Ok(())
/// # }
/// ```
#[cfg(feature = "memory")]
pub fn open_memory(config: StoreConfig) -> Result<Store> {
    Ok(Arc::new(annals_memory::open(config)?))
}

/// Defines `$name`: the driver of a backend annals ships, `None` when its
/// cargo feature is off.
macro_rules! shipped_driver {
    ($name:ident, $feature:literal, $krate:ident) => {
        #[cfg(feature = $feature)]
        const $name: Option<&driver::Driver> = Some(&$krate::DRIVER);
        #[cfg(not(feature = $feature))]
        const $name: Option<&driver::Driver> = None;
    };
}
shipped_driver!(MEMORY, "memory", annals_memory);
shipped_driver!(REDB, "redb", annals_redb);
shipped_driver!(ROCKSDB, "rocksdb", annals_rocksdb);
shipped_driver!(SLED, "sled", annals_sled);
shipped_driver!(FJALL, "fjall", annals_fjall);
shipped_driver!(POSTGRES, "postgres", annals_postgres);

/// Every backend annals ships, in the order messages list them, with its
/// driver when its cargo feature is on: the one list to extend with a new
/// backend (with its feature in Cargo.toml).
pub(crate) const SHIPPED: &[(Scheme, Option<&driver::Driver>)] = &[
    (Scheme::Memory, MEMORY),
    (Scheme::Redb, REDB),
    (Scheme::RocksDb, ROCKSDB),
    (Scheme::Sled, SLED),
    (Scheme::Fjall, FJALL),
    (Scheme::Postgres, POSTGRES),
];

/// The drivers of the backends compiled into this build (cargo features),
/// in the order messages list them: what [`open`] looks a URL's scheme up
/// in. Tools that serve every backend (the CLI, the benchmark, the
/// reliability harness) iterate over it rather than naming backends.
///
/// ```
/// let schemes: Vec<&str> = annals::drivers().iter().map(|d| d.scheme).collect();
/// assert_eq!(schemes.contains(&"redb"), annals::Scheme::Redb.is_compiled());
/// ```
pub fn drivers() -> Vec<&'static driver::Driver> {
    SHIPPED.iter().filter_map(|(_, driver)| *driver).collect()
}

/// The driver of `scheme` among those compiled in.
///
/// ```
/// if let Some(redb) = annals::driver_for("redb") {
///     assert!(redb.capabilities.persistent);
/// }
/// assert!(annals::driver_for("mysql").is_none());
/// ```
pub fn driver_for(scheme: &str) -> Option<&'static driver::Driver> {
    drivers()
        .into_iter()
        .find(|d| d.scheme.eq_ignore_ascii_case(scheme))
}

/// Runs `f` on tokio's blocking pool when inside a tokio runtime, else on
/// this thread.
async fn run_blocking<T, F>(f: F) -> Result<T>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T> + Send + 'static,
{
    match tokio::runtime::Handle::try_current() {
        Ok(runtime) => runtime
            .spawn_blocking(f)
            .await
            .map_err(|e| Error::backend("opening the store on tokio's blocking pool", e))?,
        Err(_) => f(),
    }
}

/// The README's Rust examples, compiled and run by `cargo test`.
#[cfg(all(doctest, feature = "memory"))]
#[doc = include_str!("../../../README.md")]
pub struct ReadmeDoctests;

/// The porting guide's Rust examples (`docs/porting.md`), compiled and run
/// by `cargo test`, so every mapping it shows stays true.
#[cfg(all(doctest, feature = "memory"))]
#[doc = include_str!("../../../docs/porting.md")]
pub struct PortingGuideDoctests;

#[cfg(test)]
mod tests;
