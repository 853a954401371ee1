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
//! - **Failover**: a store opened on several hosts with
//!   `target_session_attrs=read-write` follows the primary. While no server
//!   takes writes, calls fail fast with [`Error::Unavailable`] (nothing
//!   written); a write whose COMMIT got no answer is
//!   [`Error::OutcomeUnknown`] — an append with `NoStream`, `Exact(v)` or a
//!   condition is then retried exactly (A5 answers the first write if it
//!   committed). No write waits past [`PostgresOptions::write_timeout`].
//!   With a synchronous standby, a failover loses nothing acknowledged by
//!   an `Immediate` store (the README's "Scaling out" has what each mode
//!   can lose, and the failover test's figures).
//! - **Hot standbys**: a read-only store ([`PostgresOptions::read_only`])
//!   reads from a standby; its head watch polls there, since a standby
//!   cannot `LISTEN`.
#![forbid(unsafe_code)]

pub mod cluster;
mod schema;
mod sql;
mod tls;
mod verify;
mod writer;

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use annals_core::check::Checks;
use annals_core::{
    Append, AppendResult, AuxWrite, Batch, Capabilities, CorruptionAt, Direction, Error,
    ExpectedVersion, Field, HeadWatch, Limits, LogBackend, Page, Position, Query, Result,
    StoreConfig, StreamId, StreamInfo, VerifyProgress, VerifyReport, Version,
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
pub use tokio_postgres::config::TargetSessionAttrs;
pub use writer::QUEUE as WRITE_QUEUE;
pub use writer::WriteRounds;

use crate::schema::db;
use crate::sql::{big, col, col_u64};
use crate::writer::{Op, Outcome, Request};

/// How long connecting to one host may take when neither the options nor
/// the connection string say (libpq's `connect_timeout`).
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a write round may take by default before it is abandoned
/// ([`PostgresOptions::write_timeout`]).
pub const DEFAULT_WRITE_TIMEOUT: Duration = Duration::from_secs(30);
/// How often a store that cannot `LISTEN` (on a hot standby) reads the
/// head by default ([`PostgresOptions::head_poll`]).
pub const DEFAULT_HEAD_POLL: Duration = Duration::from_millis(100);
/// How long the head watch waits for a notification before it reads the
/// head anyway: a connection lost without a word (a server gone from the
/// network) is found then, and a missed notification costs no more.
const HEARTBEAT: Duration = Duration::from_secs(5);

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
    /// A store that only reads (`read_only`, default `false`): it creates
    /// and migrates nothing, every write answers [`Error::Unsupported`],
    /// and it may be opened on a hot standby, where its head watch polls
    /// (a standby cannot `LISTEN`). A store that may write refuses to open
    /// on a standby.
    pub read_only: bool,
    /// Which of several hosts to use (`target_session_attrs`, as libpq):
    /// `read-write` picks the one that takes writes — the primary, also
    /// after a failover; `None`: what the connection string says (`any`
    /// unless it says otherwise).
    pub target_session_attrs: Option<TargetSessionAttrs>,
    /// How long connecting to one host may take (`connect_timeout`, whole
    /// seconds); `None`: what the connection string says, else
    /// [`DEFAULT_CONNECT_TIMEOUT`]. Getting a connection gives up after
    /// this much per host named.
    pub connect_timeout: Option<Duration>,
    /// How long a write round may take (`write_timeout_ms`, default
    /// [`DEFAULT_WRITE_TIMEOUT`]): waiting for the head lock, the checks,
    /// the writes and the commit — which, with a synchronous standby,
    /// waits for it. Past it the round is abandoned (its connection
    /// closed) and its writes answer [`Error::Unavailable`] (nothing was
    /// written) or [`Error::OutcomeUnknown`] (its commit was sent). Over
    /// TCP it is also the connection's `tcp_user_timeout` unless the
    /// connection string sets one, so a server gone from the network is
    /// noticed by reads too.
    pub write_timeout: Duration,
    /// How often the head watch reads the head where it cannot `LISTEN`
    /// (`head_poll_ms`, default [`DEFAULT_HEAD_POLL`]): on a hot standby.
    pub head_poll: Duration,
}

impl Default for PostgresOptions {
    fn default() -> Self {
        PostgresOptions {
            config: StoreConfig::default(),
            schema: "annals".to_string(),
            pool_size: 8,
            create: true,
            tls: TlsOptions::default(),
            read_only: false,
            target_session_attrs: None,
            connect_timeout: None,
            write_timeout: DEFAULT_WRITE_TIMEOUT,
            head_poll: DEFAULT_HEAD_POLL,
        }
    }
}

impl PostgresOptions {
    /// This backend's own options.
    pub const PARAMS: [&'static str; 10] = [
        "schema",
        "pool_size",
        "create",
        "sslmode",
        "sslrootcert",
        "read_only",
        "target_session_attrs",
        "connect_timeout",
        "write_timeout_ms",
        "head_poll_ms",
    ];

    /// Options with this configuration and the default schema and pool.
    pub fn with_config(config: StoreConfig) -> Self {
        PostgresOptions {
            config,
            ..PostgresOptions::default()
        }
    }

    /// Options from URL parameters: the common ones, then `schema`,
    /// `pool_size`, `create`, `sslmode`, `sslrootcert`, `read_only`,
    /// `target_session_attrs` (`any`, `read-write`, `read-only`),
    /// `connect_timeout` (seconds), `write_timeout_ms` and `head_poll_ms`.
    ///
    /// ```
    /// use annals_postgres::{PostgresOptions, TargetSessionAttrs};
    /// let o = PostgresOptions::from_params([("schema", "shop"), ("durability", "relaxed")])?;
    /// assert_eq!(o.schema, "shop");
    /// let o = PostgresOptions::from_params([("target_session_attrs", "read-write")])?;
    /// assert_eq!(o.target_session_attrs, Some(TargetSessionAttrs::ReadWrite));
    /// assert!(PostgresOptions::from_params([("schema", "Bad-Name")]).is_err());
    /// assert!(PostgresOptions::from_params([("write_timeout_ms", "0")]).is_err());
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
                "pool_size" => options.pool_size = positive(key, value)?,
                "create" => options.create = annals_core::parse_param(key, value)?,
                "sslmode" => options.tls.mode = value.parse()?,
                "sslrootcert" => options.tls.root_certs = Some(RootCerts::parse(value)?),
                "read_only" => options.read_only = annals_core::parse_param(key, value)?,
                "target_session_attrs" => {
                    options.target_session_attrs = Some(match value {
                        "any" => TargetSessionAttrs::Any,
                        "read-write" => TargetSessionAttrs::ReadWrite,
                        "read-only" => TargetSessionAttrs::ReadOnly,
                        _ => {
                            return Err(Error::malformed(
                                Field::StoreOption,
                                format!(
                                    "option target_session_attrs = {}: it is any, read-write \
                                     or read-only",
                                    annals_core::show_text(value)
                                ),
                            ));
                        }
                    });
                }
                "connect_timeout" => {
                    let seconds = bounded(key, value, DAY.as_secs())?;
                    options.connect_timeout = Some(Duration::from_secs(seconds));
                }
                "write_timeout_ms" => {
                    let ms = bounded(key, value, DAY.as_millis() as u64)?;
                    options.write_timeout = Duration::from_millis(ms);
                }
                "head_poll_ms" => {
                    let ms = bounded(key, value, DAY.as_millis() as u64)?;
                    options.head_poll = Duration::from_millis(ms);
                }
                _ => return Err(StoreConfig::unknown_param("postgres", key, &Self::PARAMS)),
            }
        }
        Ok(options)
    }
}

/// The longest a timeout or interval option may be.
const DAY: Duration = Duration::from_secs(24 * 60 * 60);

/// An option's value as a whole number from 1 to `max`.
fn bounded(key: &str, value: &str, max: u64) -> Result<u64> {
    let n = positive(key, value)? as u64;
    if n > max {
        return Err(Error::malformed(
            Field::StoreOption,
            format!("option {key} = {n}: it must be at most {max} (a day)"),
        ));
    }
    Ok(n)
}

/// An option's value as a whole number of at least 1.
fn positive(key: &str, value: &str) -> Result<usize> {
    let n: usize = annals_core::parse_param(key, value)?;
    if n == 0 {
        return Err(Error::malformed(
            Field::StoreOption,
            format!("option {key} = 0: it must be at least 1"),
        ));
    }
    Ok(n)
}

/// A connection of the driver over this crate's TLS.
type PgConnection = tokio_postgres::Connection<
    tokio_postgres::Socket,
    <MakeRustlsConnect as tokio_postgres::tls::MakeTlsConnect<tokio_postgres::Socket>>::Stream,
>;

/// How a store connects: the driver's configuration and TLS, and how long
/// a connection attempt may take in all (the per-host timeout times the
/// hosts named).
#[derive(Clone)]
struct Connector {
    pg: tokio_postgres::Config,
    tls: MakeRustlsConnect,
    limit: Duration,
}

impl Connector {
    /// A connection and the task driving it, or [`Error::Unavailable`]
    /// when no host answered within the limit.
    async fn connect(&self) -> Result<(tokio_postgres::Client, PgConnection)> {
        match tokio::time::timeout(self.limit, self.pg.connect(self.tls.clone())).await {
            Ok(connected) => connected.map_err(db("connecting")),
            Err(_) => Err(Error::unavailable(
                "connecting",
                format!("no host answered within {} ms", self.limit.as_millis()),
            )),
        }
    }
}

/// Opens (creating or migrating its schema when needed) the store at
/// `conninfo` — a libpq connection string or a
/// `postgres://user:pass@host:port/db` URL without annals' own options.
///
/// Several hosts (`host=a,b` or `postgres://user@a:5432,b:5432/db`) with
/// [`target_session_attrs`](PostgresOptions::target_session_attrs)
/// `read-write` make a store that follows a failover: every new connection
/// goes to the host that takes writes. While none does, calls fail fast
/// with [`Error::Unavailable`]; once a standby is promoted, the same store
/// serves again.
pub async fn open(conninfo: &str, options: PostgresOptions) -> Result<PostgresStore> {
    options.config.limits.validate()?;
    validate_schema(&options.schema)?;
    if options.read_only && options.target_session_attrs == Some(TargetSessionAttrs::ReadWrite) {
        return Err(Error::invalid(
            annals_core::InvalidReason::Conflict(Field::StoreOption),
            "options read_only=true and target_session_attrs=read-write: a read-only store \
             reads from any server, standbys included",
        ));
    }
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
    if let Some(attrs) = options.target_session_attrs {
        pg.target_session_attrs(attrs);
    }
    if let Some(timeout) = options.connect_timeout {
        pg.connect_timeout(timeout);
    } else if pg.get_connect_timeout().is_none() {
        pg.connect_timeout(DEFAULT_CONNECT_TIMEOUT);
    }
    let per_host = pg
        .get_connect_timeout()
        .copied()
        .unwrap_or(DEFAULT_CONNECT_TIMEOUT);
    let hosts = pg.get_hosts().len().max(pg.get_hostaddrs().len()).max(1);
    let any_tcp = pg
        .get_hosts()
        .iter()
        .any(|h| matches!(h, tokio_postgres::config::Host::Tcp(_)))
        || !pg.get_hostaddrs().is_empty();
    if any_tcp && pg.get_tcp_user_timeout().is_none() {
        pg.tcp_user_timeout(options.write_timeout);
    }
    let (ssl_mode, tls) = options.tls.connector()?;
    // PostgreSQL offers no TLS over Unix sockets: there the mode is moot.
    pg.ssl_mode(if any_tcp {
        ssl_mode
    } else {
        tokio_postgres::config::SslMode::Disable
    });
    let connector = Connector {
        pg,
        tls,
        limit: per_host.saturating_mul(u32::try_from(hosts).unwrap_or(u32::MAX)),
    };

    // The schema is made (or checked) before any pooled connection uses it.
    let (mut client, connection) = connector.connect().await?;
    let driver = tokio::spawn(connection);
    let prepared = prepare_schema(&mut client, &options).await;
    drop(client);
    let _ = driver.await;
    prepared?;

    let manager = Manager::from_config(
        connector.pg.clone(),
        connector.tls.clone(),
        ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        },
    );
    let pool = Pool::builder(manager)
        .max_size(options.pool_size)
        .runtime(deadpool_postgres::Runtime::Tokio1)
        .create_timeout(Some(connector.limit))
        .build()
        .map_err(|e| Error::backend("building the connection pool", e))?;

    let source = HeadSource {
        connector,
        channel: format!("{}_annals_head", options.schema),
        pool: pool.clone(),
        poll: options.head_poll,
    };
    let listening = source.listen().await?;
    let head = match &listening {
        Some(l) => l.head,
        None => source.poll_head().await?.0,
    };
    let (head_tx, head_rx) = watch::channel(head);
    let head_tx = Arc::new(head_tx);
    let (stop_tx, stop_rx) = oneshot::channel::<()>();
    let head_task = tokio::spawn(follow_head(
        source,
        listening,
        Arc::clone(&head_tx),
        stop_rx,
    ));

    let rounds = Arc::new(writer::RoundCounters::default());
    let (sender, writer_task) = if options.read_only {
        (None, None)
    } else {
        let (sender, receiver) = mpsc::channel(writer::QUEUE);
        let settings = writer::Settings {
            durability: options.config.durability,
            timeout: options.write_timeout,
        };
        let task = tokio::spawn(writer::run(
            pool.clone(),
            settings,
            head_tx,
            receiver,
            Arc::clone(&rounds),
        ));
        (Some(sender), Some(task))
    };
    let checks = Checks::new(options.config.limits, options.read_only);
    Ok(PostgresStore {
        pool,
        options,
        checks,
        sender: Mutex::new(sender),
        tasks: Mutex::new(Some(Tasks {
            writer: writer_task,
            head: head_task,
            stop: stop_tx,
        })),
        head: head_rx,
        rounds,
    })
}

/// Creates or migrates the store's schema — or, for a read-only store,
/// checks that it is there — on the server `client` reached. A store that
/// may write does not open on a hot standby.
async fn prepare_schema(
    client: &mut tokio_postgres::Client,
    options: &PostgresOptions,
) -> Result<()> {
    if options.read_only {
        return schema::check(client, &options.schema).await;
    }
    let row = client
        .query_one("SELECT pg_is_in_recovery()", &[])
        .await
        .map_err(db("asking whether the server is a standby"))?;
    if col::<bool>(&row, 0, "whether the server is in recovery")? {
        return Err(Error::invalid(
            annals_core::InvalidReason::Conflict(Field::StoreOption),
            "the server is a hot standby (in recovery), where nothing can be written: open the \
             store with read_only=true to read from it, or name the primary (several hosts and \
             target_session_attrs=read-write follow a failover)",
        ));
    }
    schema::migrate(client, &options.schema, options.create).await
}

/// Where the head watch learns the head: notifications on `channel`, or,
/// where the server cannot `LISTEN`, a read every `poll`.
struct HeadSource {
    connector: Connector,
    channel: String,
    pool: Pool,
    poll: Duration,
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

impl HeadSource {
    /// Connects and LISTENs on the channel, then reads the head: LISTEN
    /// first, so no commit falls between the two. `None`: the server is a
    /// hot standby, which cannot LISTEN.
    async fn listen(&self) -> Result<Option<Listening>> {
        let (client, mut connection) = self.connector.connect().await?;
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
        let row = tokio::time::timeout(
            self.connector.limit,
            listening
                .client
                .query_one("SELECT pg_is_in_recovery()", &[]),
        )
        .await
        .map_err(|_| Error::unavailable("listening for commits", "no answer in time"))?
        .map_err(db("asking whether the server is a standby"))?;
        if col::<bool>(&row, 0, "whether the server is in recovery")? {
            return Ok(None);
        }
        let listened = async {
            listening
                .client
                .batch_execute(&format!("LISTEN {}", self.channel))
                .await
                .map_err(db("listening for commits"))?;
            committed_head(&listening.client).await
        };
        listening.head = tokio::time::timeout(self.connector.limit, listened)
            .await
            .map_err(|_| Error::unavailable("listening for commits", "no answer in time"))??;
        Ok(Some(listening))
    }

    /// The head read through the pool, and whether the server is a hot
    /// standby.
    async fn poll_head(&self) -> Result<(Position, bool)> {
        let client = self
            .pool
            .get()
            .await
            .map_err(pool_error("getting a connection from the pool"))?;
        let row = client
            .query_one(
                "SELECT head, pg_is_in_recovery() FROM annals_head WHERE id = 1",
                &[],
            )
            .await
            .map_err(db("reading the head"))?;
        Ok((
            Position(col_u64(&row, 0, "the head")?),
            col(&row, 1, "whether the server is in recovery")?,
        ))
    }
}

/// Publishes the heads that other stores' commits reach (\[R8\]) until
/// `stop`.
///
/// Where it can, it LISTENs: a notification is only a hint that the head
/// moved (anyone may send one, with any payload), so the head published is
/// always read from the table — when a notification claims a head above
/// the one published (this store's own commits, published by its writer,
/// cost no read; a forged claim costs one read and publishes the truth),
/// and after [`HEARTBEAT`] without one. On a hot standby, which cannot
/// LISTEN, it reads the head every `poll` instead, until the server is a
/// primary again. When the connection is lost, it connects again (every
/// second) and reads the head it may have missed.
async fn follow_head(
    source: HeadSource,
    mut listening: Option<Listening>,
    head_tx: Arc<watch::Sender<Position>>,
    mut stop: oneshot::Receiver<()>,
) {
    let mut polling = listening.is_none();
    loop {
        if polling {
            tokio::select! {
                _ = &mut stop => return,
                _ = tokio::time::sleep(source.poll) => {}
            }
            // A failed read (the server gone) is tried again at the next
            // tick: the pool connects again.
            if let Ok((head, standby)) = source.poll_head().await {
                writer::publish(&head_tx, head);
                polling = standby;
            }
            continue;
        }
        if let Some(l) = listening.as_mut() {
            let alive = tokio::select! {
                _ = &mut stop => return,
                woken = l.woken.recv() => match woken {
                    Some(()) => {
                        let claim = l.hinted.swap(0, Ordering::AcqRel);
                        claim <= head_tx.borrow().0 || refresh(&source, l, &head_tx).await
                    }
                    None => false,
                },
                _ = tokio::time::sleep(HEARTBEAT) => refresh(&source, l, &head_tx).await,
            };
            if alive {
                continue;
            }
        }
        // The connection is gone: connect again.
        listening = None;
        tokio::select! {
            _ = &mut stop => return,
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
        match source.listen().await {
            Ok(Some(again)) => {
                writer::publish(&head_tx, again.head);
                listening = Some(again);
            }
            Ok(None) => polling = true,
            Err(_) => {}
        }
    }
}

/// Reads the head on the listening connection and publishes it; `false`
/// when the connection is lost (or answers nothing in time).
async fn refresh(
    source: &HeadSource,
    listening: &Listening,
    head_tx: &watch::Sender<Position>,
) -> bool {
    match tokio::time::timeout(source.connector.limit, committed_head(&listening.client)).await {
        Ok(Ok(head)) => {
            writer::publish(head_tx, head);
            true
        }
        _ => false,
    }
}

/// Maps an error of the pool: [`Error::Unavailable`] when no connection
/// could be made in time, the driver's error classified as by [`db`].
fn pool_error(what: &'static str) -> impl FnOnce(deadpool_postgres::PoolError) -> Error {
    move |e| match e {
        deadpool_postgres::PoolError::Backend(e) => db(what)(e),
        deadpool_postgres::PoolError::Timeout(_) => {
            Error::unavailable(what, "no connection could be made in time")
        }
        deadpool_postgres::PoolError::Closed => Error::Closed,
        other => Error::backend(what, other),
    }
}

/// The tasks of a store: the writer (none for a read-only store) and the
/// head watch, which `stop` ends.
struct Tasks {
    writer: Option<JoinHandle<()>>,
    head: JoinHandle<()>,
    stop: oneshot::Sender<()>,
}

/// A store in a PostgreSQL schema. See the [crate documentation](crate).
pub struct PostgresStore {
    pool: Pool,
    options: PostgresOptions,
    /// Open, writable, input valid: checked before every call.
    checks: Checks,
    sender: Mutex<Option<mpsc::Sender<Request>>>,
    tasks: Mutex<Option<Tasks>>,
    head: watch::Receiver<Position>,
    rounds: Arc<writer::RoundCounters>,
}

impl fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresStore")
            .field("options", &self.options)
            .field("head", &*self.head.borrow())
            .field("closed", &self.checks.gate().is_closed())
            .finish()
    }
}

impl PostgresStore {
    /// How many write rounds this store's writer committed in one round
    /// trip and in two, and how many one-round-trip attempts found that
    /// another process had written since (see the README, "PostgreSQL").
    /// Many `stale` mean that several processes write to the store at
    /// once; the writer then tries the one-round-trip path less often.
    ///
    /// ```no_run
    /// # async fn f(store: &annals_postgres::PostgresStore) {
    /// let rounds = store.write_rounds();
    /// println!("{} of {} rounds in one round trip", rounds.fast, rounds.fast + rounds.slow);
    /// # }
    /// ```
    pub fn write_rounds(&self) -> WriteRounds {
        self.rounds.get()
    }

    /// A pooled connection.
    async fn client(&self) -> Result<deadpool_postgres::Object> {
        self.checks.open()?;
        self.pool
            .get()
            .await
            .map_err(pool_error("getting a connection from the pool"))
    }

    /// Whether the store was opened read-only
    /// ([`PostgresOptions::read_only`]).
    pub fn is_read_only(&self) -> bool {
        self.options.read_only
    }

    /// Sends a write to the writer task and waits for its answer. When
    /// [`writer::QUEUE`] writes wait already, waits for room first.
    async fn write(&self, op: Op) -> Result<Outcome> {
        self.checks.writable(op.name())?;
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
        self.checks.append(&append)?;
        match self.write(Op::Append(Box::new(append))).await? {
            Outcome::Append(r) => Ok(r),
            other => unexpected(other),
        }
    }

    async fn append_batch(&self, batch: Batch) -> Result<Vec<AppendResult>> {
        self.checks.batch(&batch)?;
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
        self.checks.read_stream(count)?;
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
        self.checks.read_all(count, query)?;
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
        self.checks.list_streams(limit)?;
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
        self.checks.writable("compact")?;
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
            .and_then(|tasks| tasks.writer.as_ref())
            .is_some_and(JoinHandle::is_finished);
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
        if !self.checks.close() {
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
        if let Some(Tasks { writer, head, stop }) = tasks {
            let _ = stop.send(());
            let writer_done = match writer {
                Some(task) => task.await,
                None => Ok(()),
            };
            let head_done = head.await;
            writer_done.map_err(|e| Error::backend("the writer task", e))?;
            head_done.map_err(|e| Error::backend("the head watch task", e))?;
        }
        self.pool.close();
        Ok(())
    }

    fn watch_head(&self) -> Result<HeadWatch> {
        self.checks.open()?;
        Ok(annals_core::fresh_head_watch(&self.head))
    }

    async fn aux_get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        self.checks.aux_get(key)?;
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
        self.checks.aux_scan(limit)?;
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
        self.checks.aux_write(&writes)?;
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

/// The driver of `postgres://user:password@host:port/db?schema=…` URLs
/// (see [`annals_core::driver`]): the connection part is passed as written
/// (percent-encoding and all) to tokio-postgres.
pub const DRIVER: annals_core::driver::Driver = annals_core::driver::Driver {
    scheme: "postgres",
    target: annals_core::driver::Target::Server,
    capabilities: Capabilities::ALL,
    prepare: |request| {
        let mut options = PostgresOptions::from_params(request.params())?;
        options.create &= request.access.may_create();
        options.read_only |= request.access.read_only();
        let rest = request.url.split_once("://").map_or("", |(_, rest)| rest);
        let rest = rest.split_once('?').map_or(rest, |(base, _)| base);
        let conninfo = format!("postgres://{rest}");
        Ok(annals_core::driver::Prepared {
            config: options.config,
            opening: annals_core::driver::Opening::Async(Box::pin(async move {
                Ok(Arc::new(open(&conninfo, options).await?) as annals_core::driver::DynStore)
            })),
        })
    },
};
