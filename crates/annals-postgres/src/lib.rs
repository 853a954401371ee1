//! # annals-postgres
//!
//! An annals backend over PostgreSQL: one event store shared by many
//! processes on many machines. It implements [`LogBackend`] directly in
//! SQL (not through the key-value layer of `annals-core`), with the
//! contract's checks done inside each write transaction.
//!
//! - **Commit order (R4)**: every write transaction first locks the one
//!   row of `annals_head` (`SELECT … FOR UPDATE`), takes its positions from
//!   it and updates it. Writers of every process are serialized on that
//!   row, so a transaction with a lower position always commits (and
//!   becomes visible) before one with a higher position — which a sequence
//!   alone does not give.
//! - **Checks**: expectations (A3), idempotent retries (A5), DCB
//!   conditions (A8) and aux conditions (X2) are checked inside the
//!   transaction, after the lock, against what it read there plus what the
//!   round already accepted: nothing can slip in between.
//! - **Group commit in two round trips**: one writer task per store takes
//!   the waiting writes (its queue is bounded: callers beyond
//!   [`WRITE_QUEUE`] wait) and commits them in one transaction: the lock
//!   and the reads of the checks go out at once, then every write and
//!   `COMMIT` at once, all prepared statements. When that transaction
//!   fails before `COMMIT`, each write is retried alone.
//! - **Durability (D5)**: `Immediate` commits with `synchronous_commit =
//!   on`. `Relaxed` commits with it `off`, and keeps lost positions unused:
//!   positions are handed out only below a reservation raised by durable
//!   commits, and an UNLOGGED marker table — which PostgreSQL empties after
//!   a crash — tells the first writer after a crash to continue above it.
//! - **Head watch (R8)**: each round that commits events sends one
//!   `NOTIFY`; each store LISTENs on its own connection, so it sees the
//!   commits of every process. A notification is only a hint (any role may
//!   send one): the head published is read from the table.
//! - **Reads** are single prepared statements (one snapshot), each an
//!   index range scan (R7); a row that does not decode is
//!   [`Error::Corruption`] naming its position. Deletes and truncations
//!   remove rows at once, and `compact` runs `VACUUM FULL` to give the
//!   space back (M2).
//! - **TLS**: `sslmode` and `sslrootcert` as libpq ([`TlsOptions`]), over
//!   rustls.
#![forbid(unsafe_code)]

pub mod cluster;
mod schema;
mod sql;
mod tls;
mod verify;
mod writer;

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use annals_core::{
    Append, AppendResult, AuxWrite, Batch, Capabilities, CorruptionAt, Direction, Error,
    ExpectedVersion, Field, HeadWatch, Limits, LogBackend, Page, Position, Query, Result,
    StoreConfig, StreamId, StreamInfo, VerifyProgress, VerifyReport, Version, validate_aux_key,
    validate_aux_writes,
};
use async_trait::async_trait;
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use futures::StreamExt;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tokio_postgres::AsyncMessage;
use tokio_postgres_rustls::MakeRustlsConnect;

pub use schema::validate_schema;
pub use sql::scan_log_sql;
pub use tls::{RootCerts, SslMode, TlsOptions};
pub use writer::QUEUE as WRITE_QUEUE;

use crate::schema::db;
use crate::sql::{big, col, col_u64};
use crate::writer::{Op, Outcome, Request};

/// The options of a PostgreSQL store.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct PostgresOptions {
    /// Durability and limits.
    pub config: StoreConfig,
    /// The schema holding the store's tables (created when missing).
    pub schema: String,
    /// Most connections of the store's pool (readers and the writer).
    pub pool_size: usize,
    /// Create the schema and its tables when missing (`create`, default
    /// `true`); with `false`, a schema without a store is an error and
    /// nothing is created.
    pub create: bool,
    /// TLS: `sslmode` and `sslrootcert`.
    pub tls: TlsOptions,
}

impl Default for PostgresOptions {
    fn default() -> Self {
        PostgresOptions {
            config: StoreConfig::default(),
            schema: "annals".to_string(),
            pool_size: 8,
            create: true,
            tls: TlsOptions::default(),
        }
    }
}

impl PostgresOptions {
    /// This backend's own options.
    pub const PARAMS: [&'static str; 5] =
        ["schema", "pool_size", "create", "sslmode", "sslrootcert"];

    /// Options with this configuration and the default schema and pool.
    pub fn with_config(config: StoreConfig) -> Self {
        PostgresOptions {
            config,
            ..PostgresOptions::default()
        }
    }

    /// Options from URL parameters: the common ones, `schema`, `pool_size`,
    /// `create`, `sslmode` and `sslrootcert`.
    ///
    /// ```
    /// use annals_postgres::PostgresOptions;
    /// let o = PostgresOptions::from_params([("schema", "shop"), ("durability", "relaxed")])?;
    /// assert_eq!(o.schema, "shop");
    /// assert!(PostgresOptions::from_params([("schema", "Bad-Name")]).is_err());
    /// assert!(PostgresOptions::from_params([("cache", "1")]).is_err());
    /// # Ok::<(), annals_core::Error>(())
    /// ```
    pub fn from_params<'a>(params: impl IntoIterator<Item = (&'a str, &'a str)>) -> Result<Self> {
        let mut options = PostgresOptions::default();
        for (key, value) in params {
            if options.config.apply_param(key, value)? {
                continue;
            }
            match key {
                "schema" => {
                    validate_schema(value)?;
                    options.schema = value.to_string();
                }
                "pool_size" => {
                    let n: usize = annals_core::parse_param(key, value)?;
                    if n == 0 {
                        return Err(Error::malformed(
                            Field::StoreOption,
                            "option pool_size = 0: it must be at least 1",
                        ));
                    }
                    options.pool_size = n;
                }
                "create" => options.create = annals_core::parse_param(key, value)?,
                "sslmode" => options.tls.mode = value.parse()?,
                "sslrootcert" => options.tls.root_certs = Some(RootCerts::parse(value)?),
                _ => return Err(StoreConfig::unknown_param("postgres", key, &Self::PARAMS)),
            }
        }
        Ok(options)
    }
}

/// Opens (creating or migrating its schema when needed) the store at
/// `conninfo` — a libpq connection string or a
/// `postgres://user:pass@host:port/db` URL without annals' own options.
pub async fn open(conninfo: &str, options: PostgresOptions) -> Result<PostgresStore> {
    options.config.limits.validate()?;
    validate_schema(&options.schema)?;
    let mut pg: tokio_postgres::Config = conninfo.parse().map_err(|e| {
        Error::malformed(
            Field::StoreUrl,
            format!("PostgreSQL connection string: {e}"),
        )
    })?;
    let search_path = format!("-c search_path={}", options.schema);
    let opts = match pg.get_options() {
        Some(o) => format!("{o} {search_path}"),
        None => search_path,
    };
    pg.options(&opts);
    let (ssl_mode, tls) = options.tls.connector()?;
    // PostgreSQL offers no TLS over Unix sockets: there the mode is moot.
    let all_unix = pg
        .get_hosts()
        .iter()
        .all(|h| !matches!(h, tokio_postgres::config::Host::Tcp(_)));
    pg.ssl_mode(if all_unix {
        tokio_postgres::config::SslMode::Disable
    } else {
        ssl_mode
    });
    // The schema is made before any pooled connection uses it.
    let (mut client, connection) = pg.connect(tls.clone()).await.map_err(db("connecting"))?;
    let driver = tokio::spawn(connection);
    let migrated = schema::migrate(&mut client, &options.schema, options.create).await;
    drop(client);
    let _ = driver.await;
    migrated?;

    let manager = Manager::from_config(
        pg.clone(),
        tls.clone(),
        ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        },
    );
    let pool = Pool::builder(manager)
        .max_size(options.pool_size)
        .build()
        .map_err(|e| Error::backend("building the connection pool", e))?;

    let channel = format!("{}_annals_head", options.schema);
    let listening = listen(&pg, &tls, &channel).await?;
    let (head_tx, head_rx) = watch::channel(listening.head);
    let head_tx = Arc::new(head_tx);
    let (stop_tx, stop_rx) = oneshot::channel::<()>();
    let listen_task = tokio::spawn(follow_head(
        pg.clone(),
        tls,
        channel,
        listening,
        Arc::clone(&head_tx),
        stop_rx,
    ));

    let (sender, receiver) = mpsc::channel(writer::QUEUE);
    let writer_task = tokio::spawn(writer::run(
        pool.clone(),
        options.config.durability,
        head_tx,
        receiver,
    ));
    Ok(PostgresStore {
        pool,
        options,
        closed: AtomicBool::new(false),
        sender: Mutex::new(Some(sender)),
        tasks: Mutex::new(Some((writer_task, listen_task, stop_tx))),
        head: head_rx,
    })
}

/// A connection LISTENing for the commits of every store on the schema.
struct Listening {
    /// Keeps the connection open; reads the head when woken.
    client: tokio_postgres::Client,
    /// Woken by notifications (many coalesce into one wake-up); ends with
    /// the connection.
    woken: mpsc::Receiver<()>,
    /// The highest head the notifications since the last wake-up claim
    /// (`u64::MAX` for a payload that is not a number).
    hinted: Arc<AtomicU64>,
    /// Drives the connection.
    driver: JoinHandle<()>,
    /// The head right after LISTEN began.
    head: Position,
}

impl Drop for Listening {
    fn drop(&mut self) {
        self.driver.abort();
    }
}

/// The head as committed: the one row of `annals_head`.
async fn committed_head(client: &tokio_postgres::Client) -> Result<Position> {
    let row = client
        .query_one("SELECT head FROM annals_head WHERE id = 1", &[])
        .await
        .map_err(db("reading the head"))?;
    Ok(Position(col_u64(&row, 0, "the head")?))
}

/// Connects and LISTENs on `channel`, then reads the head: LISTEN first, so
/// no commit falls between the two.
async fn listen(
    pg: &tokio_postgres::Config,
    tls: &MakeRustlsConnect,
    channel: &str,
) -> Result<Listening> {
    let (client, mut connection) = pg.connect(tls.clone()).await.map_err(db("connecting"))?;
    // One slot: a burst of notifications is one wake-up, and a flood of
    // them (any role may NOTIFY) costs no memory.
    let (wake, woken) = mpsc::channel(1);
    let hinted = Arc::new(AtomicU64::new(0));
    let hints = Arc::clone(&hinted);
    let driver = tokio::spawn(async move {
        let mut messages = futures::stream::poll_fn(move |cx| connection.poll_message(cx));
        while let Some(Ok(message)) = messages.next().await {
            if let AsyncMessage::Notification(note) = message {
                let claim = note.payload().parse::<u64>().unwrap_or(u64::MAX);
                hints.fetch_max(claim, Ordering::AcqRel);
                if let Err(mpsc::error::TrySendError::Closed(())) = wake.try_send(()) {
                    break;
                }
            }
        }
    });
    let mut listening = Listening {
        client,
        woken,
        hinted,
        driver,
        head: Position(0),
    };
    listening
        .client
        .batch_execute(&format!("LISTEN {channel}"))
        .await
        .map_err(db("listening for commits"))?;
    listening.head = committed_head(&listening.client).await?;
    Ok(listening)
}

/// Publishes the heads that other stores' commits reach (\[R8\]) until
/// `stop`. A notification is only a hint that the head moved: anyone may
/// send one, with any payload, so the head published is always read from
/// the table — when a notification claims a head above the one published
/// (this store's own commits, published by its writer, cost no read; a
/// forged claim costs one read and publishes the truth). When the
/// connection is lost, connects again (every second) and reads the head it
/// may have missed.
async fn follow_head(
    pg: tokio_postgres::Config,
    tls: MakeRustlsConnect,
    channel: String,
    mut listening: Listening,
    head_tx: Arc<watch::Sender<Position>>,
    mut stop: oneshot::Receiver<()>,
) {
    loop {
        tokio::select! {
            _ = &mut stop => return,
            woken = listening.woken.recv() => {
                if woken.is_some() {
                    let claim = listening.hinted.swap(0, Ordering::AcqRel);
                    if claim <= head_tx.borrow().0 {
                        continue;
                    }
                    if let Ok(head) = committed_head(&listening.client).await {
                        writer::publish(&head_tx, head);
                        continue;
                    }
                }
            }
        }
        // The connection is gone: connect again.
        loop {
            tokio::select! {
                _ = &mut stop => return,
                _ = tokio::time::sleep(std::time::Duration::from_secs(1)) => {}
            }
            if let Ok(again) = listen(&pg, &tls, &channel).await {
                writer::publish(&head_tx, again.head);
                listening = again;
                break;
            }
        }
    }
}

type Tasks = (JoinHandle<()>, JoinHandle<()>, oneshot::Sender<()>);

/// A store in a PostgreSQL schema. See the [crate documentation](crate).
pub struct PostgresStore {
    pool: Pool,
    options: PostgresOptions,
    closed: AtomicBool,
    sender: Mutex<Option<mpsc::Sender<Request>>>,
    tasks: Mutex<Option<Tasks>>,
    head: watch::Receiver<Position>,
}

impl fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresStore")
            .field("options", &self.options)
            .field("head", &*self.head.borrow())
            .field("closed", &self.closed.load(Ordering::Acquire))
            .finish()
    }
}

impl PostgresStore {
    fn check_open(&self) -> Result<()> {
        if self.closed.load(Ordering::Acquire) {
            Err(Error::Closed)
        } else {
            Ok(())
        }
    }

    /// A pooled connection.
    async fn client(&self) -> Result<deadpool_postgres::Object> {
        self.check_open()?;
        self.pool
            .get()
            .await
            .map_err(|e| Error::backend("getting a connection from the pool", e))
    }

    /// Sends a write to the writer task and waits for its answer. When
    /// [`writer::QUEUE`] writes wait already, waits for room first.
    async fn write(&self, op: Op) -> Result<Outcome> {
        self.check_open()?;
        let (reply, answer) = oneshot::channel();
        let sender = self
            .sender
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
            .ok_or(Error::Closed)?;
        sender
            .send(Request { op, reply })
            .await
            .map_err(|_| Error::Closed)?;
        drop(sender);
        answer.await.map_err(|_| Error::Closed)?
    }

    /// The SQL plan of a `read_all` (for tests checking R7): the output
    /// of `EXPLAIN` for the statement the read runs.
    pub async fn explain_read_all(
        &self,
        from: Position,
        count: usize,
        direction: Direction,
        query: Option<&Query>,
    ) -> Result<String> {
        let (sql, params) = scan_log_sql(from, count, direction, query);
        self.explain(&sql, params).await
    }

    /// The SQL plan of a `read_stream` (for tests checking R7).
    pub async fn explain_read_stream(
        &self,
        stream: &StreamId,
        from: Version,
        count: usize,
        direction: Direction,
    ) -> Result<String> {
        let params: Vec<Box<dyn tokio_postgres::types::ToSql + Sync + Send>> = vec![
            Box::new(stream.as_str().to_string()),
            Box::new(big(from.0)),
            Box::new(i64::try_from(count).unwrap_or(i64::MAX)),
        ];
        self.explain(&sql::read_stream_sql(direction), params).await
    }

    async fn explain(
        &self,
        sql: &str,
        params: Vec<Box<dyn tokio_postgres::types::ToSql + Sync + Send>>,
    ) -> Result<String> {
        let client = self.client().await?;
        let refs: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> =
            params.iter().map(|p| p.as_ref() as _).collect();
        let rows = client
            .query(&format!("EXPLAIN {sql}"), &refs)
            .await
            .map_err(db("explaining a read"))?;
        let lines = rows
            .iter()
            .map(|r| col::<String>(r, 0, "a line of a plan"))
            .collect::<Result<Vec<_>>>()?;
        Ok(lines.join("\n"))
    }
}

fn unexpected<T>(outcome: Outcome) -> Result<T> {
    let what = match outcome {
        Outcome::Append(_) => "an append result",
        Outcome::Batch(_) => "a batch result",
        Outcome::Done => "no result",
    };
    Err(Error::backend(
        "the writer answered",
        format!("{what}, unexpectedly"),
    ))
}

/// Most prepared statements a connection keeps (queries of many shapes
/// would otherwise add one each).
const MAX_CACHED_STATEMENTS: usize = 256;

/// What this backend offers: everything.
pub const CAPABILITIES: Capabilities = Capabilities::ALL;

#[async_trait]
impl LogBackend for PostgresStore {
    fn capabilities(&self) -> Capabilities {
        CAPABILITIES
    }

    fn limits(&self) -> Limits {
        self.options.config.limits
    }

    async fn append_with(&self, append: Append) -> Result<AppendResult> {
        self.check_open()?;
        append.validate(&self.options.config.limits)?;
        match self.write(Op::Append(Box::new(append))).await? {
            Outcome::Append(r) => Ok(r),
            other => unexpected(other),
        }
    }

    async fn append_batch(&self, batch: Batch) -> Result<Vec<AppendResult>> {
        self.check_open()?;
        batch.validate(&self.options.config.limits)?;
        match self.write(Op::Batch(Box::new(batch))).await? {
            Outcome::Batch(r) => Ok(r),
            other => unexpected(other),
        }
    }

    async fn verify(&self, progress: Option<VerifyProgress>) -> Result<VerifyReport> {
        let mut client = self.client().await?;
        let report = verify::verify(&mut client).await?;
        if let Some(progress) = progress {
            progress(report.records);
        }
        Ok(report)
    }

    async fn read_stream(
        &self,
        stream: &StreamId,
        from: Version,
        count: usize,
        direction: Direction,
    ) -> Result<Page> {
        self.check_open()?;
        self.options.config.limits.check_read_count(count)?;
        let client = self.client().await?;
        let (head, events) = sql::read_stream(&client, stream, from, count, direction).await?;
        Ok(Page { events, head })
    }

    async fn read_all(
        &self,
        from: Position,
        count: usize,
        direction: Direction,
        query: Option<&Query>,
    ) -> Result<Page> {
        self.check_open()?;
        self.options.config.limits.check_read_count(count)?;
        if let Some(q) = query {
            q.validate()?;
        }
        let client = self.client().await?;
        let read = sql::scan_log(&client, from, count, direction, query).await;
        // Each shape of query is a statement of its own: keep a connection
        // from holding any number of them.
        if client.statement_cache.size() > MAX_CACHED_STATEMENTS {
            client.statement_cache.clear();
        }
        let (head, events) = read?;
        Ok(Page { events, head })
    }

    async fn stream_version(&self, stream: &StreamId) -> Result<Version> {
        let client = self.client().await?;
        sql::stream_meta(&client, stream)
            .await?
            .and_then(|m| m.last_version())
            .ok_or_else(|| Error::StreamNotFound(stream.clone()))
    }

    async fn list_streams(
        &self,
        after: Option<&StreamId>,
        limit: usize,
    ) -> Result<Vec<StreamInfo>> {
        self.check_open()?;
        self.options
            .config
            .limits
            .check_page_limit("list_streams", limit)?;
        let client = self.client().await?;
        let after = after.map(StreamId::as_str);
        let statement = prepared(
            &client,
            "SELECT stream_id, next_version FROM annals_streams \
             WHERE NOT deleted AND next_version > 0 AND ($1::text IS NULL OR stream_id > $1) \
             ORDER BY stream_id LIMIT $2",
        )
        .await?;
        let rows = client
            .query(&statement, &[&after, &big(limit as u64)])
            .await
            .map_err(db("listing streams"))?;
        rows.iter()
            .map(|r| {
                let id: String = col(r, 0, "a stream id")?;
                let next = col_u64(r, 1, "a stream's next version")?;
                let id = StreamId::new(id).map_err(|e| {
                    Error::corruption(CorruptionAt::Unknown, format!("a stream id: {e}"))
                })?;
                Ok(StreamInfo {
                    id,
                    last_version: Version(next.saturating_sub(1)),
                })
            })
            .collect()
    }

    async fn delete_stream(&self, stream: &StreamId, expected: ExpectedVersion) -> Result<()> {
        self.write(Op::Delete(stream.clone(), expected))
            .await
            .map(drop)
    }

    async fn truncate_stream(&self, stream: &StreamId, before: Version) -> Result<()> {
        self.write(Op::Truncate(stream.clone(), before))
            .await
            .map(drop)
    }

    async fn compact(&self) -> Result<()> {
        let client = self.client().await?;
        // Rows of deleted and truncated events are already gone; VACUUM FULL
        // rewrites the tables so that their space goes back to the system,
        // and ANALYZE refreshes the planner's statistics.
        // (Two statements: VACUUM cannot run in the implicit transaction
        // of a multi-statement query.)
        let tables = "annals_events, annals_event_tags, annals_streams, annals_aux";
        client
            .batch_execute(&format!("VACUUM FULL {tables}"))
            .await
            .map_err(db("compacting (VACUUM FULL)"))?;
        client
            .batch_execute(&format!("ANALYZE {tables}"))
            .await
            .map_err(db("compacting (ANALYZE)"))
    }

    async fn disk_bytes(&self) -> Result<u64> {
        let client = self.client().await?;
        let row = client
            .query_one(
                "SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0)::bigint FROM pg_class c \
                 JOIN pg_namespace n ON n.oid = c.relnamespace \
                 WHERE n.nspname = current_schema() AND c.relkind = 'r'",
                &[],
            )
            .await
            .map_err(db("measuring the store"))?;
        col_u64(&row, 0, "the store's size")
    }

    async fn has_events(&self) -> Result<bool> {
        let client = self.client().await?;
        let row = client
            .query_one("SELECT EXISTS (SELECT 1 FROM annals_events)", &[])
            .await
            .map_err(db("checking for events"))?;
        col(&row, 0, "whether the store has events")
    }

    async fn health(&self) -> Result<()> {
        let writer_stopped = self
            .tasks
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
            .is_some_and(|(writer, _, _)| writer.is_finished());
        if writer_stopped {
            return Err(Error::backend(
                "checking health",
                "the writer task has stopped: writes cannot be served",
            ));
        }
        let client = self.client().await?;
        client
            .query_one("SELECT head FROM annals_head WHERE id = 1", &[])
            .await
            .map_err(db("checking health"))
            .map(drop)
    }

    async fn close(&self) -> Result<()> {
        if self.closed.swap(true, Ordering::AcqRel) {
            // [M4] A second close is Ok: closing is idempotent.
            return Ok(());
        }
        // Dropping the sender ends the writer once it has answered every
        // request already sent.
        drop(
            self.sender
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .take(),
        );
        let tasks = self
            .tasks
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some((writer_task, listen_task, stop)) = tasks {
            let _ = stop.send(());
            let writer_done = writer_task.await;
            let listener_done = listen_task.await;
            writer_done.map_err(|e| Error::backend("the writer task", e))?;
            listener_done.map_err(|e| Error::backend("the listener task", e))?;
        }
        self.pool.close();
        Ok(())
    }

    fn watch_head(&self) -> Result<HeadWatch> {
        self.check_open()?;
        Ok(annals_core::fresh_head_watch(&self.head))
    }

    async fn aux_get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        self.check_open()?;
        validate_aux_key(key)?;
        let client = self.client().await?;
        let statement = prepared(&client, "SELECT value FROM annals_aux WHERE key = $1").await?;
        let row = client
            .query_opt(&statement, &[&key])
            .await
            .map_err(db("reading an aux value"))?;
        row.map(|r| col(&r, 0, "an aux value")).transpose()
    }

    async fn aux_scan(
        &self,
        prefix: &[u8],
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        self.check_open()?;
        self.options
            .config
            .limits
            .check_page_limit("aux_scan", limit)?;
        let client = self.client().await?;
        // Keys starting with `prefix` are those from `prefix` up to (not
        // including) its successor; an all-0xFF prefix has none.
        let end = prefix_end(prefix);
        let start = match after {
            Some(a) if a > prefix => a,
            _ => prefix,
        };
        let after_is_start = after.is_some_and(|a| a >= prefix);
        let statement = prepared(
            &client,
            "SELECT key, value FROM annals_aux \
             WHERE (key > $1 OR (key = $1 AND NOT $2)) AND ($3::bytea IS NULL OR key < $3) \
             ORDER BY key LIMIT $4",
        )
        .await?;
        let rows = client
            .query(
                &statement,
                &[&start, &after_is_start, &end, &big(limit as u64)],
            )
            .await
            .map_err(db("scanning aux values"))?;
        rows.iter()
            .map(|r| Ok((col(r, 0, "an aux key")?, col(r, 1, "an aux value")?)))
            .collect()
    }

    async fn aux_write(&self, writes: Vec<AuxWrite>) -> Result<()> {
        self.check_open()?;
        if writes.is_empty() {
            return Err(Error::empty(Field::AuxWrites, "aux_write has no writes"));
        }
        validate_aux_writes(&writes, &self.options.config.limits)?;
        self.write(Op::Aux(writes)).await.map(drop)
    }
}

/// `sql` prepared on `client`, once per connection.
async fn prepared(
    client: &deadpool_postgres::Client,
    sql: &str,
) -> Result<tokio_postgres::Statement> {
    use deadpool_postgres::GenericClient;
    client
        .prepare_cached(sql)
        .await
        .map_err(db("preparing a statement"))
}

/// The smallest key above every key starting with `prefix`; `None` when
/// there is none (an empty or all-0xFF prefix).
fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xFF {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}
