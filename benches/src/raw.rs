//! The raw-engine baselines: the same events written straight to each
//! engine through its own API, with no annals logic (no writer thread, no
//! expectation checks, no stream or store metadata, no group commit).
//!
//! The key-value engines get exactly the entries annals' shared layout
//! produces for each event ([`annals::kv::codec::event_entries`]: log
//! record, stream index, type index, tag index), each append in one engine
//! transaction, opened with the engine's defaults — what a user writing to
//! the engine directly would start from. PostgreSQL gets a plain
//! hand-written events table with a unique `(stream, version)` constraint.

use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};

use annals::kv::codec::event_entries;
use annals::kv::layout::{log_key, trailing_number};
use annals::{NewEvent, Position, Timestamp, Version};
use async_trait::async_trait;

/// A result whose error is a message naming what failed.
pub type RawResult<T> = Result<T, String>;

/// An engine written to directly.
#[async_trait]
pub trait RawEngine: Send + Sync {
    /// Writes `events` as versions `version..` of `stream` at positions
    /// `position..`, in one transaction, synced to disk when `sync`.
    async fn append(
        &self,
        stream: &str,
        version: u64,
        position: u64,
        events: &[NewEvent],
        sync: bool,
    ) -> RawResult<()>;

    /// Workload 3's baseline read: up to `limit` entries with `start <= key
    /// < end`, forward, in one read transaction, each with the log record
    /// `lookup` names, copied out as owned bytes — what a hand-written
    /// reader of annals' layout does with no annals logic (no decoding, no
    /// checksum, no readability check). `None` where the engine has no such
    /// read here (PostgreSQL's baseline is `postgres::plain_scan`, with the
    /// `postgres` feature).
    async fn read_page(
        &self,
        start: Vec<u8>,
        end: Vec<u8>,
        limit: usize,
        lookup: Lookup,
    ) -> RawResult<Option<Vec<Entry>>> {
        let _ = (start, end, limit, lookup);
        Ok(None)
    }
}

/// A key and the record read for it.
pub type Entry = (Vec<u8>, Vec<u8>);

/// Which log record a raw read returns with each entry it scans.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lookup {
    /// The entry's own value (a scan of the log itself).
    Value,
    /// The record at the position the key ends with (type and tag index).
    KeyPosition,
    /// The record at the position the value holds (stream index).
    ValuePosition,
}

/// The log record `lookup` names for the entry `(key, value)`, read with
/// `get` in the scan's transaction.
fn looked_up(
    lookup: Lookup,
    key: &[u8],
    value: &[u8],
    get: impl FnOnce(&[u8]) -> RawResult<Option<Vec<u8>>>,
) -> RawResult<Vec<u8>> {
    let position = match lookup {
        Lookup::Value => return Ok(value.to_vec()),
        Lookup::KeyPosition => trailing_number(key),
        Lookup::ValuePosition => annals::kv::codec::decode::<u64>(key, value).ok(),
    }
    .ok_or_else(|| format!("raw read: no position in entry {key:?}"))?;
    get(&log_key(Position(position)))?
        .ok_or_else(|| format!("raw read: no record at position {position}"))
}

/// The first `limit` entries of `range` (`(key, value)` in key order),
/// each with its record as `lookup` says (`get` reads a key).
fn page_of<K: AsRef<[u8]>, V: AsRef<[u8]>>(
    range: impl Iterator<Item = RawResult<(K, V)>>,
    limit: usize,
    lookup: Lookup,
    get: impl Fn(&[u8]) -> RawResult<Option<Vec<u8>>>,
) -> RawResult<Vec<Entry>> {
    let mut page = Vec::with_capacity(limit);
    for entry in range.take(limit) {
        let (key, value) = entry?;
        let record = looked_up(lookup, key.as_ref(), value.as_ref(), &get)?;
        page.push((key.as_ref().to_vec(), record));
    }
    Ok(page)
}

/// Key-value entries of `events` under annals' layout.
fn entries(
    stream: &str,
    version: u64,
    position: u64,
    events: &[NewEvent],
) -> RawResult<Vec<(Vec<u8>, Vec<u8>)>> {
    let now = Timestamp::now();
    let mut all = Vec::with_capacity(events.len() * 4);
    for (i, event) in (0u64..).zip(events) {
        let mut more = event_entries(
            stream,
            Version(version + i),
            Position(position + i),
            now,
            event,
        )
        .map_err(|e| e.to_string())?;
        all.append(&mut more);
    }
    Ok(all)
}

/// A key-value engine whose calls block: run on the blocking pool.
trait BlockingKv: Send + Sync + 'static {
    fn commit(&self, entries: Vec<(Vec<u8>, Vec<u8>)>, sync: bool) -> RawResult<()>;

    /// [`RawEngine::read_page`], blocking.
    fn read_page(
        &self,
        start: &[u8],
        end: &[u8],
        limit: usize,
        lookup: Lookup,
    ) -> RawResult<Vec<Entry>>;
}

/// Adapts a [`BlockingKv`] to [`RawEngine`].
struct Blocking<E>(Arc<E>);

#[async_trait]
impl<E: BlockingKv> RawEngine for Blocking<E> {
    async fn append(
        &self,
        stream: &str,
        version: u64,
        position: u64,
        events: &[NewEvent],
        sync: bool,
    ) -> RawResult<()> {
        let entries = entries(stream, version, position, events)?;
        let engine = Arc::clone(&self.0);
        tokio::task::spawn_blocking(move || engine.commit(entries, sync))
            .await
            .map_err(|e| format!("raw commit task: {e}"))?
    }

    async fn read_page(
        &self,
        start: Vec<u8>,
        end: Vec<u8>,
        limit: usize,
        lookup: Lookup,
    ) -> RawResult<Option<Vec<Entry>>> {
        let engine = Arc::clone(&self.0);
        tokio::task::spawn_blocking(move || engine.read_page(&start, &end, limit, lookup))
            .await
            .map_err(|e| format!("raw read task: {e}"))?
            .map(Some)
    }
}

/// The memory backend's structure (a persistent ordered map) behind a lock.
struct MemoryKv(Mutex<imbl::OrdMap<Vec<u8>, Vec<u8>>>);

impl BlockingKv for MemoryKv {
    fn commit(&self, entries: Vec<(Vec<u8>, Vec<u8>)>, _sync: bool) -> RawResult<()> {
        let mut map = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        for (key, value) in entries {
            map.insert(key, value);
        }
        Ok(())
    }

    fn read_page(
        &self,
        start: &[u8],
        end: &[u8],
        limit: usize,
        lookup: Lookup,
    ) -> RawResult<Vec<Entry>> {
        // A snapshot, as the memory backend takes one: an O(1) clone.
        let map = self
            .0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let range = map.range(start.to_vec()..end.to_vec()).map(Ok);
        page_of(range, limit, lookup, |k| Ok(map.get(k).cloned()))
    }
}

/// The raw in-memory map.
pub fn memory() -> Box<dyn RawEngine> {
    Box::new(Blocking(Arc::new(MemoryKv(
        Mutex::new(imbl::OrdMap::new()),
    ))))
}

const REDB_TABLE: redb::TableDefinition<&[u8], &[u8]> = redb::TableDefinition::new("events");

struct RedbKv(redb::Database);

impl BlockingKv for RedbKv {
    fn commit(&self, entries: Vec<(Vec<u8>, Vec<u8>)>, sync: bool) -> RawResult<()> {
        let run = || -> Result<(), redb::Error> {
            let mut txn = self.0.begin_write()?;
            txn.set_durability(if sync {
                redb::Durability::Immediate
            } else {
                redb::Durability::None
            })?;
            {
                let mut table = txn.open_table(REDB_TABLE)?;
                for (key, value) in &entries {
                    table.insert(key.as_slice(), value.as_slice())?;
                }
            }
            txn.commit()?;
            Ok(())
        };
        run().map_err(|e| format!("raw redb commit: {e}"))
    }

    fn read_page(
        &self,
        start: &[u8],
        end: &[u8],
        limit: usize,
        lookup: Lookup,
    ) -> RawResult<Vec<Entry>> {
        let failed = |e: redb::Error| format!("raw redb read: {e}");
        let txn = self.0.begin_read().map_err(|e| failed(e.into()))?;
        use redb::ReadableDatabase as _;
        let table = match txn.open_table(REDB_TABLE) {
            Ok(table) => table,
            // Nothing written yet.
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
            Err(e) => return Err(failed(e.into())),
        };
        let mut page = Vec::with_capacity(limit);
        for entry in table.range(start..end).map_err(|e| failed(e.into()))? {
            if page.len() >= limit {
                break;
            }
            let (key, value) = entry.map_err(|e| failed(e.into()))?;
            let record = looked_up(lookup, key.value(), value.value(), |k| {
                let found = table.get(k).map_err(|e| failed(e.into()))?;
                Ok(found.map(|v| v.value().to_vec()))
            })?;
            page.push((key.value().to_vec(), record));
        }
        Ok(page)
    }
}

/// A raw redb file in `dir`.
pub fn redb(dir: &Path) -> RawResult<Box<dyn RawEngine>> {
    let path = dir.join("raw.redb");
    let db = redb::Database::create(&path)
        .map_err(|e| format!("creating raw redb {}: {e}", path.display()))?;
    Ok(Box::new(Blocking(Arc::new(RedbKv(db)))))
}

#[cfg(feature = "rocksdb")]
struct RocksKv(rocksdb::DB);

#[cfg(feature = "rocksdb")]
impl BlockingKv for RocksKv {
    fn commit(&self, entries: Vec<(Vec<u8>, Vec<u8>)>, sync: bool) -> RawResult<()> {
        let mut batch = rocksdb::WriteBatch::default();
        for (key, value) in entries {
            batch.put(key, value);
        }
        let mut options = rocksdb::WriteOptions::default();
        options.set_sync(sync);
        self.0
            .write_opt(batch, &options)
            .map_err(|e| format!("raw rocksdb write: {e}"))
    }

    fn read_page(
        &self,
        start: &[u8],
        end: &[u8],
        limit: usize,
        lookup: Lookup,
    ) -> RawResult<Vec<Entry>> {
        let failed = |e: rocksdb::Error| format!("raw rocksdb read: {e}");
        let snapshot = self.0.snapshot();
        let mut options = rocksdb::ReadOptions::default();
        options.set_iterate_upper_bound(end.to_vec());
        let mut iter = snapshot.raw_iterator_opt(options);
        iter.seek(start);
        let mut page = Vec::with_capacity(limit);
        while page.len() < limit
            && let (Some(key), Some(value)) = (iter.key(), iter.value())
        {
            let record = looked_up(lookup, key, value, |k| snapshot.get(k).map_err(failed))?;
            page.push((key.to_vec(), record));
            iter.next();
        }
        iter.status().map_err(failed)?;
        Ok(page)
    }
}

/// A raw RocksDB folder in `dir`: RocksDB's default options, with LZ4
/// (its default, Snappy, is not compiled in).
#[cfg(feature = "rocksdb")]
pub fn rocksdb(dir: &Path) -> RawResult<Box<dyn RawEngine>> {
    let path = dir.join("raw-rocksdb");
    let mut options = rocksdb::Options::default();
    options.create_if_missing(true);
    options.set_compression_type(rocksdb::DBCompressionType::Lz4);
    let db = rocksdb::DB::open(&options, &path)
        .map_err(|e| format!("opening raw rocksdb {}: {e}", path.display()))?;
    Ok(Box::new(Blocking(Arc::new(RocksKv(db)))))
}

#[cfg(feature = "sled")]
struct SledKv(sled::Db);

#[cfg(feature = "sled")]
impl BlockingKv for SledKv {
    fn commit(&self, entries: Vec<(Vec<u8>, Vec<u8>)>, sync: bool) -> RawResult<()> {
        let mut batch = sled::Batch::default();
        for (key, value) in entries {
            batch.insert(key, value);
        }
        self.0
            .apply_batch(batch)
            .map_err(|e| format!("raw sled batch: {e}"))?;
        if sync {
            self.0.flush().map_err(|e| format!("raw sled flush: {e}"))?;
        }
        Ok(())
    }

    fn read_page(
        &self,
        start: &[u8],
        end: &[u8],
        limit: usize,
        lookup: Lookup,
    ) -> RawResult<Vec<Entry>> {
        // sled has no read snapshot: its iterator and point reads see the
        // latest state (nothing writes during the benchmark's reads).
        let failed = |e: sled::Error| format!("raw sled read: {e}");
        let range = self.0.range(start..end).map(|entry| entry.map_err(failed));
        page_of(range, limit, lookup, |k| {
            Ok(self.0.get(k).map_err(failed)?.map(|v| v.to_vec()))
        })
    }
}

/// A raw sled folder in `dir`. Its `flush` is what sled offers as a sync
/// (it calls `sync_file_range`, not `fsync`).
#[cfg(feature = "sled")]
pub fn sled(dir: &Path) -> RawResult<Box<dyn RawEngine>> {
    let path = dir.join("raw-sled");
    let db = sled::open(&path).map_err(|e| format!("opening raw sled {}: {e}", path.display()))?;
    Ok(Box::new(Blocking(Arc::new(SledKv(db)))))
}

#[cfg(feature = "fjall")]
struct FjallKv {
    db: fjall::Database,
    keyspace: fjall::Keyspace,
}

#[cfg(feature = "fjall")]
impl BlockingKv for FjallKv {
    fn commit(&self, entries: Vec<(Vec<u8>, Vec<u8>)>, sync: bool) -> RawResult<()> {
        let mode = sync.then_some(fjall::PersistMode::SyncAll);
        let mut batch = self.db.batch().durability(mode);
        for (key, value) in entries {
            batch.insert(&self.keyspace, key, value);
        }
        batch.commit().map_err(|e| format!("raw fjall batch: {e}"))
    }

    fn read_page(
        &self,
        start: &[u8],
        end: &[u8],
        limit: usize,
        lookup: Lookup,
    ) -> RawResult<Vec<Entry>> {
        use fjall::Readable;
        let failed = |e: fjall::Error| format!("raw fjall read: {e}");
        let snapshot = self.db.snapshot();
        let range = snapshot
            .range(&self.keyspace, start..end)
            .map(|guard| guard.into_inner().map_err(failed));
        page_of(range, limit, lookup, |k| {
            let value = snapshot.get(&self.keyspace, k).map_err(failed)?;
            Ok(value.map(|v| v.to_vec()))
        })
    }
}

/// A raw fjall database in `dir`: fjall's default options, one keyspace,
/// a write batch per commit (journal fsynced when durable).
#[cfg(feature = "fjall")]
pub fn fjall(dir: &Path) -> RawResult<Box<dyn RawEngine>> {
    let path = dir.join("raw-fjall");
    let failed = |e: fjall::Error| format!("opening raw fjall {}: {e}", path.display());
    let db = fjall::Database::builder(&path).open().map_err(failed)?;
    let keyspace = db
        .keyspace("raw", fjall::KeyspaceCreateOptions::default)
        .map_err(failed)?;
    Ok(Box::new(Blocking(Arc::new(FjallKv { db, keyspace }))))
}

/// A plain hand-written events table on PostgreSQL: one row per event, a
/// unique `(stream, version)` constraint, one `INSERT … SELECT unnest(…)`
/// per append in its own transaction.
#[cfg(feature = "postgres")]
pub mod postgres {
    use super::{RawEngine, RawResult};
    use annals::NewEvent;
    use async_trait::async_trait;
    use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
    use tokio_postgres::NoTls;

    /// The table, in a schema of its own.
    pub struct PlainTable {
        /// Sessions with `synchronous_commit = on`.
        durable: Pool,
        /// Sessions with `synchronous_commit = off`.
        relaxed: Pool,
        schema: String,
    }

    fn pool(conninfo: &str, schema: &str, sync: bool, size: usize) -> RawResult<Pool> {
        let mut config: tokio_postgres::Config = conninfo
            .parse()
            .map_err(|e| format!("raw postgres connection string: {e}"))?;
        let commit = if sync { "on" } else { "off" };
        config.options(format!(
            "-c synchronous_commit={commit} -c search_path={schema}"
        ));
        let manager = Manager::from_config(
            config,
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        Pool::builder(manager)
            .max_size(size)
            .build()
            .map_err(|e| format!("raw postgres pool: {e}"))
    }

    impl PlainTable {
        /// Creates the table in a new `schema` (dropped first if there).
        pub async fn create(conninfo: &str, schema: &str, connections: usize) -> RawResult<Self> {
            let table = PlainTable {
                durable: pool(conninfo, schema, true, connections)?,
                relaxed: pool(conninfo, schema, false, connections)?,
                schema: schema.to_string(),
            };
            let client = table
                .durable
                .get()
                .await
                .map_err(|e| format!("raw postgres connection: {e}"))?;
            client
                .batch_execute(&format!(
                    "DROP SCHEMA IF EXISTS {schema} CASCADE; CREATE SCHEMA {schema};
                     CREATE TABLE {schema}.events (
                         position bigint PRIMARY KEY,
                         stream text NOT NULL,
                         version bigint NOT NULL,
                         event_type text NOT NULL,
                         tags text[] NOT NULL,
                         data bytea NOT NULL,
                         metadata bytea NOT NULL,
                         event_id uuid NOT NULL,
                         recorded_at timestamptz NOT NULL DEFAULT now(),
                         UNIQUE (stream, version));"
                ))
                .await
                .map_err(|e| format!("creating raw table in {}: {e}", table.schema))?;
            Ok(table)
        }
    }

    /// Workload 3's baseline: every event of the annals table in `schema`
    /// read forward with a plain prepared `SELECT … WHERE position > $1
    /// ORDER BY position LIMIT n`, each row decoded into owned values, as a
    /// hand-written reader would; checks the count.
    pub async fn plain_scan(
        conninfo: &str,
        schema: &str,
        page: usize,
        expected: u64,
    ) -> RawResult<crate::workload::Rate> {
        use std::time::Instant;
        let mut config: tokio_postgres::Config = conninfo
            .parse()
            .map_err(|e| format!("raw postgres connection string: {e}"))?;
        config.options(format!("-c search_path={schema}"));
        let (client, connection) = config
            .connect(NoTls)
            .await
            .map_err(|e| format!("raw postgres connection: {e}"))?;
        let driver = tokio::spawn(connection);
        let select = client
            .prepare(
                "SELECT position, stream_id, version, event_type, tags, event_id, data, \
                 metadata, recorded_at FROM annals_events WHERE position > $1 \
                 ORDER BY position LIMIT $2",
            )
            .await
            .map_err(|e| format!("raw postgres prepare: {e}"))?;
        type Event = (
            i64,
            String,
            i64,
            String,
            Vec<String>,
            uuid::Uuid,
            Vec<u8>,
            Vec<u8>,
            i64,
        );
        let mut latencies = Vec::new();
        let (mut after, mut seen) = (0i64, 0u64);
        let limit = i64::try_from(page).unwrap_or(i64::MAX);
        let start = Instant::now();
        loop {
            let t = Instant::now();
            let rows = client
                .query(&select, &[&after, &limit])
                .await
                .map_err(|e| format!("raw postgres select: {e}"))?;
            let events = rows
                .iter()
                .map(|r| -> Result<Event, tokio_postgres::Error> {
                    Ok((
                        r.try_get(0)?,
                        r.try_get(1)?,
                        r.try_get(2)?,
                        r.try_get(3)?,
                        r.try_get(4)?,
                        r.try_get(5)?,
                        r.try_get(6)?,
                        r.try_get(7)?,
                        r.try_get(8)?,
                    ))
                })
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| format!("raw postgres row: {e}"))?;
            latencies.push(t.elapsed());
            let Some(last) = events.last() else {
                break;
            };
            after = last.0;
            seen += events.len() as u64;
        }
        let elapsed = start.elapsed();
        driver.abort();
        if seen != expected {
            return Err(format!(
                "plain SELECT: read {seen} events, expected {expected}"
            ));
        }
        Ok(crate::workload::Rate::new(seen, elapsed, latencies))
    }

    #[async_trait]
    impl RawEngine for PlainTable {
        async fn append(
            &self,
            stream: &str,
            version: u64,
            position: u64,
            events: &[NewEvent],
            sync: bool,
        ) -> RawResult<()> {
            let pool = if sync { &self.durable } else { &self.relaxed };
            let mut client = pool
                .get()
                .await
                .map_err(|e| format!("raw postgres connection: {e}"))?;
            let n = events.len() as i64;
            let (version, position) = (version as i64, position as i64);
            let versions: Vec<i64> = (version..version + n).collect();
            let positions: Vec<i64> = (position..position + n).collect();
            let types: Vec<&str> = events.iter().map(|e| e.event_type.as_str()).collect();
            // One tag per benchmark event; a text[] column per row.
            let tags: Vec<String> = events.iter().map(|e| e.tags.join(",")).collect();
            let data: Vec<&[u8]> = events.iter().map(|e| e.data.as_slice()).collect();
            let metadata: Vec<&[u8]> = events.iter().map(|e| e.metadata.as_slice()).collect();
            let ids: Vec<uuid::Uuid> = events.iter().map(|e| e.event_id).collect();
            let txn = client
                .transaction()
                .await
                .map_err(|e| format!("raw postgres begin: {e}"))?;
            let insert = txn
                .prepare_cached(
                    "INSERT INTO events (position, stream, version, event_type, tags, data, metadata, event_id) \
                     SELECT p, $1, v, t, string_to_array(g, ','), d, m, i \
                     FROM unnest($2::bigint[], $3::bigint[], $4::text[], $5::text[], $6::bytea[], $7::bytea[], $8::uuid[]) \
                     AS x(p, v, t, g, d, m, i)",
                )
                .await
                .map_err(|e| format!("raw postgres prepare: {e}"))?;
            txn.execute(
                &insert,
                &[
                    &stream, &positions, &versions, &types, &tags, &data, &metadata, &ids,
                ],
            )
            .await
            .map_err(|e| format!("raw postgres insert: {e}"))?;
            txn.commit()
                .await
                .map_err(|e| format!("raw postgres commit: {e}"))
        }
    }
}
