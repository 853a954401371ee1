//! The writer of a store: one task that drains the waiting write requests
//! and commits them in one transaction (group commit), holding the lock on
//! the one `annals_head` row that orders every writer of every process
//! (\[R4\]).
//!
//! A round costs one round trip when the writer already knows what its
//! checks need, else two:
//!
//! - **fast** (one round trip): the writer remembers the head row and the
//!   metadata of the streams it wrote as it last committed them ([`Known`]);
//!   a round whose checks need nothing else (no DCB or aux condition, no
//!   removal, no refused expectation that may be a retry) is checked
//!   against that in memory (a stream it does not know is taken as absent),
//!   then sent at once, pipelined: `BEGIN`, `annals_guard` (which sets the
//!   transaction's durability and lock timeout, locks the head by writing
//!   the new head row, raises unless the head row and each
//!   named stream were exactly as assumed — another process may have
//!   written since — and sends the round's one `NOTIFY`), the events, their
//!   tags, the stream rows, the aux writes, `COMMIT`. A guard that raises
//!   rolls it all back and the
//!   round runs the slow way, which reads the truth (after repeated stale
//!   guards, the fast way is tried only every few rounds, up to every
//!   [`MOST_SKIPPED`]).
//! - **slow** (two round trips):
//!   1. pipelined: `BEGIN`, the head row locked `FOR UPDATE`, the metadata
//!      of every stream the round names, the aux values its conditions
//!      name, and per DCB condition whether a committed event matches it —
//!      all read after the lock, so they see everything committed before;
//!   2. the requests are checked in order in memory, against that state
//!      plus what the round already accepted (\[A3\]–\[A8\], \[X2\]), like
//!      the key-value writer's; then, pipelined: the events (one `INSERT …
//!      SELECT FROM unnest(…)`), their tags, the stream rows, the aux
//!      writes, the head, one `NOTIFY` and `COMMIT`.
//!
//! Both check with the same functions; the fast way only starts from
//! remembered state instead of read state, and the guard proves, under
//! the same lock, that the two are the same (\[R4\]).
//!
//! Only an idempotent retry (\[A5\]) reads more (the events it may repeat);
//! when those are events of this very round, the round is committed first
//! and the retry checked in the next one. A delete or a truncation ends a
//! round, so no check ever has to see rows it removes.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet, VecDeque};
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use annals_core::kv::figures;
use annals_core::rules::{self, AppendDecision, NoRoom, Planned, Replay, Retry};
use annals_core::{
    Append, AppendCondition, AppendResult, AuxCondition, AuxWrite, Batch, CorruptionAt, Direction,
    Durability, Error, ExpectedVersion, NewEvent, Position, Result, StreamId, StreamMeta,
    Timestamp, Uuid, Version,
};
use deadpool_postgres::{GenericClient, Object, Pool};
use futures::FutureExt;
use tokio::sync::{mpsc, oneshot, watch};
use tokio_postgres::types::ToSql;

use crate::schema::db;
use crate::sql::{self, big, col, col_u64};

/// Most requests in one round.
const MAX_ROUND: usize = 512;
/// Most event payload bytes in one round (a round takes at least one
/// request, whatever its size).
const MAX_ROUND_BYTES: usize = 16 << 20;
/// How many write requests wait for the writer at most; callers beyond
/// wait for room (back-pressure), they are not refused.
pub const QUEUE: usize = 1024;
/// How many positions a `Relaxed` store reserves with one durable commit
/// (\[D5\]): after a crash, writers continue above the reservation.
const RESERVATION: u64 = 1 << 16;

/// What a write request answers.
pub enum Outcome {
    /// An append.
    Append(AppendResult),
    /// A batch.
    Batch(Vec<AppendResult>),
    /// Aux writes, a delete or a truncation.
    Done,
}

/// A write.
pub enum Op {
    /// `append_with`.
    Append(Box<Append>),
    /// `append_batch`.
    Batch(Box<Batch>),
    /// `aux_write`.
    Aux(Vec<AuxWrite>),
    /// `delete_stream`.
    Delete(StreamId, ExpectedVersion),
    /// `truncate_stream`.
    Truncate(StreamId, Version),
}

impl Op {
    /// The call it comes from.
    pub fn name(&self) -> &'static str {
        match self {
            Op::Append(_) => "append",
            Op::Batch(_) => "append_batch",
            Op::Aux(_) => "aux_write",
            Op::Delete(..) => "delete_stream",
            Op::Truncate(..) => "truncate_stream",
        }
    }

    /// Whether it removes events (and so ends a round).
    fn removes(&self) -> bool {
        matches!(self, Op::Delete(..) | Op::Truncate(..))
    }

    /// The event payload bytes it carries.
    fn bytes(&self) -> usize {
        let events = |events: &[NewEvent]| {
            events
                .iter()
                .map(|e| e.payload_bytes().saturating_add(64))
                .fold(0usize, usize::saturating_add)
        };
        match self {
            Op::Append(a) => events(&a.events),
            Op::Batch(b) => b
                .parts
                .iter()
                .map(|p| events(&p.events))
                .fold(0, usize::saturating_add),
            Op::Aux(w) => w.len().saturating_mul(64),
            Op::Delete(..) | Op::Truncate(..) => 64,
        }
    }

    /// Its DCB condition, if any.
    fn condition(&self) -> Option<&AppendCondition> {
        match self {
            Op::Append(a) => a.condition.as_ref(),
            Op::Batch(b) => b.condition.as_ref(),
            _ => None,
        }
    }
}

/// A write and where to answer it.
pub struct Request {
    /// The write.
    pub op: Op,
    /// The caller.
    pub reply: oneshot::Sender<Result<Outcome>>,
}

/// How the writer commits.
#[derive(Clone, Copy, Debug)]
pub struct Settings {
    /// The store's durability (\[D5\]).
    pub durability: Durability,
    /// How long a round may take before it is abandoned.
    pub timeout: Duration,
}

/// Runs the writer until every sender is gone.
pub async fn run(
    pool: Pool,
    settings: Settings,
    head_tx: Arc<watch::Sender<Position>>,
    mut rx: mpsc::Receiver<Request>,
    counters: Arc<RoundCounters>,
) {
    let mut queue: VecDeque<Request> = VecDeque::new();
    let mut cache = Cache {
        counters,
        ..Cache::default()
    };
    loop {
        if queue.is_empty() {
            match rx.recv().await {
                Some(r) => queue.push_back(r),
                None => return,
            }
            // Callers just answered are sending their next writes: let
            // them, so that those join this round rather than wait a
            // whole commit for the next.
            tokio::task::yield_now().await;
        }
        while queue.len() < MAX_ROUND {
            match rx.try_recv() {
                Ok(r) => queue.push_back(r),
                Err(_) => break,
            }
        }
        // The round: requests while they fit, up to the first removal.
        let mut take = 0;
        let mut bytes = 0usize;
        for r in &queue {
            bytes = bytes.saturating_add(r.op.bytes());
            if take > 0 && bytes > MAX_ROUND_BYTES {
                break;
            }
            take += 1;
            if r.op.removes() {
                break;
            }
        }
        figures::round_started(ENGINE_LABEL, queue.len());
        let requests: Vec<Request> = queue.drain(..take).collect();
        let ops: Vec<&Op> = requests.iter().map(|r| &r.op).collect();
        let outcomes = match figured_round(&pool, settings, &head_tx, &ops, &mut cache).await {
            Ok(outcomes) => outcomes,
            // Alone in its round, a request's error is its own.
            Err(RoundError::BeforeCommit(e)) if ops.len() == 1 => vec![Err(e)],
            // No server to write to: each request alone would fail the
            // same way, so every one answers at once.
            Err(RoundError::BeforeCommit(e)) if e.is_unavailable() => {
                shared(e, ops.len(), Error::unavailable)
            }
            // A transaction that failed before its COMMIT was sent wrote
            // nothing: run each request alone, so that one request's
            // failure is not the others'. (After a failed COMMIT the outcome
            // is unknown, and a retry could write twice.)
            Err(RoundError::BeforeCommit(_)) => {
                let mut outcomes = Vec::with_capacity(ops.len());
                for op in &ops {
                    let one = std::slice::from_ref(op);
                    match figured_round(&pool, settings, &head_tx, one, &mut cache).await {
                        Ok(mut one) => {
                            outcomes.push(one.pop().unwrap_or_else(|| {
                                Err(Error::backend("the writer", "a round answered nothing"))
                            }));
                        }
                        Err(e) => outcomes.push(Err(e.into_error())),
                    }
                }
                outcomes
            }
            Err(RoundError::AtCommit(e)) => shared(e, ops.len(), Error::outcome_unknown),
        };
        // A round cut short (a retry that must see this round committed)
        // answers fewer requests: the rest go first in the next round.
        let mut outcomes = outcomes;
        if outcomes.is_empty() {
            // Never happens (a round is cut short only after a request it
            // took); answered rather than retried forever.
            outcomes.push(Err(Error::backend(
                "the writer",
                "a round answered nothing",
            )));
        }
        let answered = outcomes.len();
        let mut requests = requests.into_iter();
        for (request, outcome) in requests.by_ref().take(answered).zip(outcomes) {
            let _ = request.reply.send(outcome);
        }
        for (i, request) in requests.enumerate() {
            queue.insert(i, request);
        }
    }
}

/// `n` errors made by `make` from what `error` says annals was doing,
/// sharing its source (an [`Error`] cannot be cloned).
fn shared(
    error: Error,
    n: usize,
    make: fn(String, annals_core::BoxError) -> Error,
) -> Vec<Result<Outcome>> {
    type Source = Arc<dyn std::error::Error + Send + Sync>;
    let (message, source): (String, Source) = match error {
        Error::Unavailable { message, source }
        | Error::OutcomeUnknown { message, source }
        | Error::Backend { message, source } => (message, Arc::from(source)),
        other => ("the writer".to_string(), Arc::new(other)),
    };
    (0..n)
        .map(|_| Err(make(message.clone(), Box::new(Arc::clone(&source)))))
        .collect()
}

/// Raises the published head (never lowers it: a notification of another
/// process may have raised it already).
pub fn publish(head_tx: &watch::Sender<Position>, head: Position) {
    head_tx.send_if_modified(|h| {
        if head > *h {
            *h = head;
            true
        } else {
            false
        }
    });
}

/// Why a round's transaction failed.
enum RoundError {
    /// Before COMMIT was sent: nothing was written.
    BeforeCommit(Error),
    /// COMMIT itself failed, or something unforeseen: the outcome is
    /// unknown.
    AtCommit(Error),
}

impl RoundError {
    fn into_error(self) -> Error {
        match self {
            RoundError::BeforeCommit(e) | RoundError::AtCommit(e) => e,
        }
    }
}

/// What a round answers: the outcomes of its first requests (all of them
/// unless it was cut short), and the head and event count of what it
/// wrote, if it wrote.
type RoundOutcome = (Vec<Result<Outcome>>, Option<Written>);

/// What a round's transaction committed.
#[derive(Clone, Copy)]
struct Written {
    /// The new head.
    head: Position,
    /// Events inserted.
    events: u64,
}

/// The `engine` label of this writer's figures.
const ENGINE_LABEL: &str = "postgres";

/// [`guarded_round`], then the head published and the round's figures
/// recorded (group size, transaction duration, head; [`figures`]). A
/// failed transaction counts its requests, no events and no duration.
async fn figured_round(
    pool: &Pool,
    settings: Settings,
    head_tx: &watch::Sender<Position>,
    ops: &[&Op],
    cache: &mut Cache,
) -> Result<Vec<Result<Outcome>>, RoundError> {
    let started = std::time::Instant::now();
    let result = guarded_round(pool, settings, ops, cache).await;
    let took = started.elapsed();
    let (requests, events, took) = match &result {
        Ok((outcomes, Some(written))) => {
            publish(head_tx, written.head);
            let events = usize::try_from(written.events).unwrap_or(usize::MAX);
            (outcomes.len(), events, Some(took))
        }
        Ok((outcomes, None)) => (outcomes.len(), 0, None),
        Err(_) => (ops.len(), 0, None),
    };
    figures::round_committed(ENGINE_LABEL, requests, events, took, head_tx.borrow().0);
    result.map(|(outcomes, _)| outcomes)
}

/// [`commit_round`], with a panic (a bug) turned into an error of the
/// round, so that the writer task survives it and goes on serving.
async fn guarded_round(
    pool: &Pool,
    settings: Settings,
    ops: &[&Op],
    cache: &mut Cache,
) -> Result<RoundOutcome, RoundError> {
    AssertUnwindSafe(commit_round(pool, settings, ops, cache))
        .catch_unwind()
        .await
        .unwrap_or_else(|_| {
            // Whether its COMMIT went out is unknown: no retry.
            Err(RoundError::AtCommit(Error::outcome_unknown(
                "the writer",
                "a write round panicked",
            )))
        })
}

/// Runs `ops` (or the first of them, when the round is cut short) in one
/// transaction, within the write timeout.
async fn commit_round(
    pool: &Pool,
    settings: Settings,
    ops: &[&Op],
    cache: &mut Cache,
) -> Result<RoundOutcome, RoundError> {
    // A timeout set beyond any instant (a `Duration::MAX` in the options)
    // is a day.
    let now = tokio::time::Instant::now();
    let deadline = now
        .checked_add(settings.timeout)
        .unwrap_or(now + Duration::from_secs(24 * 60 * 60));
    let late = |what: &str| {
        format!(
            "{what}: no answer within write_timeout ({} ms)",
            settings.timeout.as_millis()
        )
    };
    let client = match tokio::time::timeout_at(deadline, pool.get()).await {
        Ok(got) => got.map_err(|e| {
            RoundError::BeforeCommit(crate::pool_error("getting a connection from the pool")(e))
        })?,
        Err(_) => {
            return Err(RoundError::BeforeCommit(Error::unavailable(
                late("getting a connection from the pool"),
                "timed out",
            )));
        }
    };
    let sent = AtomicBool::new(false);
    let result = tokio::time::timeout_at(deadline, run_round(&client, settings, ops, &sent, cache))
        .await
        .unwrap_or_else(|_| {
            Err(if sent.load(Ordering::Acquire) {
                RoundError::AtCommit(Error::outcome_unknown(
                    late("committing a write round"),
                    "timed out",
                ))
            } else {
                RoundError::BeforeCommit(Error::unavailable(
                    late("running a write round"),
                    "timed out",
                ))
            })
        });
    match &result {
        Ok(_) => {}
        // The server refused a statement: leave no transaction open on a
        // pooled connection; one that cannot even roll back is dropped
        // rather than reused.
        Err(RoundError::BeforeCommit(e)) if !e.is_unavailable() => {
            if client.batch_execute("ROLLBACK").await.is_err() {
                drop(Object::take(client));
            }
        }
        // Lost, or abandoned with answers still to come: never reused.
        Err(_) => drop(Object::take(client)),
    }
    result
}

/// An event of the round, as the conditions of later requests see it.
struct Pending {
    position: u64,
    event_type: String,
    tags: Vec<String>,
}

/// The rows a round inserts, as columns.
#[derive(Default)]
struct EventRows<'a> {
    positions: Vec<i64>,
    streams: Vec<&'a str>,
    versions: Vec<i64>,
    types: Vec<&'a str>,
    ids: Vec<Uuid>,
    data: Vec<&'a [u8]>,
    metadata: Vec<&'a [u8]>,
    recorded_at: Vec<i64>,
    /// Every event's tags, one after the other (an array column cannot be
    /// unnested row by row from a two-dimensional array): each row's are
    /// the slice of `tag_count` from `tag_offset` (both int4: a round holds
    /// at most [`MAX_ROUND_BYTES`] of events, each tag counted).
    tags: Vec<&'a str>,
    tag_offsets: Vec<i32>,
    tag_counts: Vec<i32>,
    /// The position of each of `tags` (the tag index rows).
    tag_positions: Vec<i64>,
}

/// One transaction in the making.
struct Round<'a> {
    client: &'a deadpool_postgres::Client,
    /// Stream metadata: as committed (read after the lock), then as this
    /// round changed it. Absent: not read (no request of the round names
    /// the stream); `None`: no such stream.
    metas: HashMap<String, Option<StreamMeta>>,
    changed: HashSet<String>,
    /// Streams this round appended to.
    appended: HashSet<String>,
    /// Aux values: as committed for the keys conditions name, then as this
    /// round wrote them.
    aux: HashMap<Vec<u8>, Option<Vec<u8>>>,
    aux_written: HashSet<Vec<u8>>,
    /// Per request with a DCB condition: whether a committed event matches.
    committed_match: Vec<Option<bool>>,
    pending: Vec<Pending>,
    rows: EventRows<'a>,
    /// A removal of a stream's events below a version.
    removal: Option<(String, u64)>,
    next_position: u64,
    last_recorded_at: u64,
    /// Checked against [`Known`] state, without reads: a check that would
    /// read sets `needs_read` instead, and the round is run the slow way.
    fast: bool,
    needs_read: AtomicBool,
}

impl<'a> Round<'a> {
    /// A round that has checked nothing yet, starting from `metas`, `aux`
    /// and `committed_match` (slow: checks may read).
    fn new(
        client: &'a deadpool_postgres::Client,
        metas: HashMap<String, Option<StreamMeta>>,
        aux: HashMap<Vec<u8>, Option<Vec<u8>>>,
        committed_match: Vec<Option<bool>>,
    ) -> Self {
        Round {
            client,
            metas,
            changed: HashSet::new(),
            appended: HashSet::new(),
            aux,
            aux_written: HashSet::new(),
            committed_match,
            pending: Vec::new(),
            rows: EventRows::default(),
            removal: None,
            next_position: 0,
            last_recorded_at: 0,
            fast: false,
            needs_read: AtomicBool::new(false),
        }
    }

    /// Whether a check must give up here because it would read (in a
    /// round checked against known state, which must not).
    fn cannot_read(&self) -> bool {
        if self.fast {
            self.needs_read.store(true, Ordering::Relaxed);
        }
        self.fast
    }
}

/// What this writer last committed (or read under the head lock): the
/// head row and the metadata of the streams it wrote. A round whose checks
/// need nothing else is checked against it and sent in one round trip,
/// behind `annals_guard`, which proves it still holds under the head lock
/// (another process may have written since) or rolls the round back.
struct Known {
    head: u64,
    reserved: u64,
    last_recorded_at: u64,
    /// Streams absent here are assumed absent (the guard checks that too).
    metas: HashMap<String, StreamMeta>,
}

/// Most streams a writer remembers (it forgets them all beyond).
const KNOWN_STREAMS: usize = 4096;
/// Most slow rounds between two attempts of the one-round-trip path while
/// its guard keeps finding the state changed (another process writes).
const MOST_SKIPPED: u32 = 64;

/// How many write rounds a store's writer committed each way, and how many
/// times its one-round-trip path found the state changed by another
/// process (see [`PostgresStore::write_rounds`](crate::PostgresStore::write_rounds)).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WriteRounds {
    /// Rounds committed in one round trip.
    pub fast: u64,
    /// Rounds committed in two (their checks read first).
    pub slow: u64,
    /// One-round-trip attempts rolled back by their guard (then run slow).
    pub stale: u64,
}

/// The counters behind [`WriteRounds`], shared with the store.
#[derive(Debug, Default)]
pub struct RoundCounters {
    fast: std::sync::atomic::AtomicU64,
    slow: std::sync::atomic::AtomicU64,
    stale: std::sync::atomic::AtomicU64,
}

impl RoundCounters {
    /// The counts so far.
    pub fn get(&self) -> WriteRounds {
        WriteRounds {
            fast: self.fast.load(Ordering::Relaxed),
            slow: self.slow.load(Ordering::Relaxed),
            stale: self.stale.load(Ordering::Relaxed),
        }
    }
}

/// The writer's memory between rounds.
#[derive(Default)]
struct Cache {
    counters: Arc<RoundCounters>,
    known: Option<Known>,
    /// Slow rounds to run before the next fast attempt.
    skip: u32,
    /// What `skip` becomes after the next stale guard (doubling).
    penalty: u32,
}

/// The head row: head, reserved, last recorded_at.
type HeadRow = (u64, u64, u64);

impl Known {
    /// What was known before a slow round that read `read` under the head
    /// lock: its streams when the head row is as it was left, none when it
    /// moved (another process wrote).
    fn before(previous: Option<Known>, read: HeadRow) -> Known {
        let metas = match previous {
            Some(k) if k.head_row() == read => k.metas,
            _ => HashMap::new(),
        };
        Known {
            head: read.0,
            reserved: read.1,
            last_recorded_at: read.2,
            metas,
        }
    }

    fn head_row(&self) -> HeadRow {
        (self.head, self.reserved, self.last_recorded_at)
    }

    /// `round`'s view of its streams learnt, and the head row it left.
    fn learn(&mut self, head: HeadRow, round: &Round<'_>) {
        if self.metas.len() + round.metas.len() > KNOWN_STREAMS {
            self.metas.clear();
        }
        for (stream, meta) in &round.metas {
            match meta {
                Some(m) => {
                    self.metas.insert(stream.clone(), *m);
                }
                None => {
                    self.metas.remove(stream);
                }
            }
        }
        (self.head, self.reserved, self.last_recorded_at) = head;
    }
}

/// Which transaction settings a slow round starts with: `durable` when
/// its commit must reach the disk (`annals_guard` sets the same for a
/// fast round).
fn begin_sql(settings: Settings, durable: bool) -> String {
    // Immediate: at least `on` (the commit is on disk, and on every
    // synchronous standby); a server set to `remote_apply` keeps it, so
    // that an acknowledged append is also visible on the standbys.
    let sync = if durable {
        "CASE WHEN current_setting('synchronous_commit') = 'remote_apply' \
         THEN 'remote_apply' ELSE 'on' END"
    } else {
        "'off'"
    };
    // The server gives up waiting for the head lock when the writer does
    // (a commit stuck waiting for a synchronous standby holds it).
    format!(
        "BEGIN; SELECT set_config('synchronous_commit', {sync}, true); \
         SET LOCAL lock_timeout = {}",
        lock_timeout_ms(settings)
    )
}

/// The server's `lock_timeout` for a round: the write timeout, in
/// milliseconds, within what the setting takes.
fn lock_timeout_ms(settings: Settings) -> u128 {
    settings.timeout.as_millis().clamp(1, i32::MAX as u128)
}

/// The streams `ops` name, sorted, once each.
fn named_streams(ops: &[&Op]) -> Vec<String> {
    let mut streams: Vec<String> = Vec::new();
    for op in ops {
        match op {
            Op::Append(a) => streams.push(a.stream.as_str().to_string()),
            Op::Batch(b) => {
                streams.extend(b.parts.iter().map(|p| p.stream.as_str().to_string()));
            }
            Op::Aux(_) => {}
            Op::Delete(s, _) | Op::Truncate(s, _) => streams.push(s.as_str().to_string()),
        }
    }
    streams.sort();
    streams.dedup();
    streams
}

/// Whether checking `op` needs no read besides the head row and its
/// streams' metadata: no DCB condition, no aux condition, no removal.
fn checkable_from_known(op: &Op) -> bool {
    match op {
        Op::Append(a) => a.condition.is_none() && conditioned_keys(&a.aux).next().is_none(),
        Op::Batch(b) => b.condition.is_none() && conditioned_keys(&b.aux).next().is_none(),
        Op::Aux(writes) => conditioned_keys(writes).next().is_none(),
        Op::Delete(..) | Op::Truncate(..) => false,
    }
}

/// The round the fast way when it can ([`fast_round`]), else the slow
/// way ([`slow_round`]); keeps `cache` up to date.
async fn run_round<'a>(
    client: &'a deadpool_postgres::Client,
    settings: Settings,
    ops: &[&'a Op],
    sent: &AtomicBool,
    cache: &mut Cache,
) -> Result<RoundOutcome, RoundError> {
    // Taken: a round that fails leaves nothing known.
    let mut previous = cache.known.take();
    let skipping = cache.skip > 0;
    cache.skip = cache.skip.saturating_sub(1);
    if let Some(known) = previous.as_mut().filter(|_| !skipping) {
        match fast_round(client, settings, ops, sent, known).await? {
            Fast::Committed(outcome) => {
                cache.counters.fast.fetch_add(1, Ordering::Relaxed);
                cache.known = previous;
                cache.penalty = 0;
                return Ok(outcome);
            }
            Fast::Unsuited => {}
            Fast::Stale => {
                // Rolled back: nothing was written.
                sent.store(false, Ordering::Release);
                cache.counters.stale.fetch_add(1, Ordering::Relaxed);
                cache.penalty = cache.penalty.saturating_mul(2).clamp(1, MOST_SKIPPED);
                cache.skip = cache.penalty;
            }
        }
    }
    let (outcome, learnt) = slow_round(client, settings, ops, sent, previous).await?;
    cache.counters.slow.fetch_add(1, Ordering::Relaxed);
    cache.known = learnt;
    Ok(outcome)
}

/// What the one-round-trip path came to.
enum Fast {
    /// Committed (and learnt into the known state): the outcome.
    Committed(RoundOutcome),
    /// Its checks need reads: nothing was sent.
    Unsuited,
    /// The guard found the state changed: rolled back, nothing written.
    Stale,
}

/// Checks `ops` against `known` and, when no check needs a read, sends
/// the guard, the writes and COMMIT at once (one round trip); learns what
/// it committed into `known`.
async fn fast_round<'a>(
    client: &'a deadpool_postgres::Client,
    settings: Settings,
    ops: &[&'a Op],
    sent: &AtomicBool,
    known: &mut Known,
) -> Result<Fast, RoundError> {
    if !ops.iter().all(|op| checkable_from_known(op)) {
        return Ok(Fast::Unsuited);
    }
    let Some(first_position) = known.head.checked_add(1) else {
        return Ok(Fast::Unsuited);
    };
    let streams = named_streams(ops);
    let metas = streams
        .iter()
        .map(|s| (s.clone(), known.metas.get(s).copied()))
        .collect();
    let mut round = Round::new(client, metas, HashMap::new(), vec![None; ops.len()]);
    round.next_position = first_position;
    round.last_recorded_at = known.last_recorded_at;
    round.fast = true;
    let (outcomes, wrote) = check_all(&mut round, ops, first_position).await?;
    if round.needs_read.load(Ordering::Relaxed) || outcomes.len() < ops.len() || !wrote {
        return Ok(Fast::Unsuited);
    }
    let new_head = round.next_position - 1;
    let (durable, new_reserved) = commit_durability(settings.durability, new_head, known.reserved);
    // The state every check above relied on, for the guard to prove.
    let mut expected = MetaColumns::default();
    let mut present = Vec::with_capacity(streams.len());
    for stream in &streams {
        let meta = known.metas.get(stream);
        expected.streams.push(stream);
        present.push(meta.is_some());
        expected
            .next_versions
            .push(meta.map_or(0, |m| big(m.next_version)));
        expected.floors.push(meta.map_or(0, |m| big(m.floor)));
        expected.created.push(meta.map_or(0, |m| big(m.created)));
        expected.deleted.push(meta.is_some_and(|m| m.deleted));
    }
    let guard = Guard {
        sync: if durable { "on" } else { "off" },
        lock_timeout: lock_timeout_ms(settings).to_string(),
        timeout: settings.timeout,
        head: big(known.head),
        reserved: big(known.reserved),
        recorded_at: big(known.last_recorded_at),
        next_versions: nulls_where_absent(&expected.next_versions, &present),
        floors: nulls_where_absent(&expected.floors, &present),
        created: nulls_where_absent(&expected.created, &present),
        deleted: expected
            .deleted
            .iter()
            .zip(&present)
            .map(|(d, p)| p.then_some(*d))
            .collect(),
        streams: expected.streams,
    };
    let committed = write_round(
        &round,
        new_head,
        new_reserved,
        known.head,
        "COMMIT",
        sent,
        Some(&guard),
    )
    .await?;
    if !committed {
        return Ok(Fast::Stale);
    }
    known.learn((new_head, new_reserved, round.last_recorded_at), &round);
    let written = Written {
        head: Position(new_head),
        events: round.next_position.saturating_sub(first_position),
    };
    Ok(Fast::Committed((outcomes, Some(written))))
}

/// Checks and adds the requests in order, up to one that must see this
/// round committed first: their outcomes, and whether the round writes
/// anything (its first position was `first_position`).
async fn check_all<'a>(
    round: &mut Round<'a>,
    ops: &[&'a Op],
    first_position: u64,
) -> Result<(Vec<Result<Outcome>>, bool), RoundError> {
    let mut outcomes = Vec::with_capacity(ops.len());
    for (i, op) in ops.iter().enumerate() {
        match apply(round, i, op)
            .await
            .map_err(RoundError::BeforeCommit)?
        {
            Step::Done(outcome) => outcomes.push(outcome),
            Step::FlushFirst => break,
        }
    }
    let wrote = round.next_position > first_position
        || !round.changed.is_empty()
        || !round.aux_written.is_empty();
    Ok((outcomes, wrote))
}

fn nulls_where_absent(values: &[i64], present: &[bool]) -> Vec<Option<i64>> {
    values
        .iter()
        .zip(present)
        .map(|(v, p)| p.then_some(*v))
        .collect()
}

/// Whether a round's commit must be durable, and the reservation after it
/// (\[D5\]): a `Relaxed` store hands out positions past its reservation
/// only with a durable commit, which reserves the next [`RESERVATION`].
fn commit_durability(durability: Durability, new_head: u64, reserved: u64) -> (bool, u64) {
    match durability {
        Durability::Immediate => (true, reserved),
        Durability::Relaxed if new_head > reserved => (true, new_head.saturating_add(RESERVATION)),
        Durability::Relaxed => (false, reserved),
    }
}

/// What `annals_guard` proves before a fast round writes.
struct Guard<'a> {
    /// `synchronous_commit` for the transaction: `on` (or the server's
    /// `remote_apply`) for a durable commit, else `off`.
    sync: &'static str,
    /// `lock_timeout` for the transaction, in milliseconds.
    lock_timeout: String,
    /// The write timeout (the lock timeout's).
    timeout: Duration,
    head: i64,
    reserved: i64,
    recorded_at: i64,
    streams: Vec<&'a str>,
    /// Per stream, its metadata as the checks assumed (NULL: absent).
    next_versions: Vec<Option<i64>>,
    floors: Vec<Option<i64>>,
    created: Vec<Option<i64>>,
    deleted: Vec<Option<bool>>,
}

/// The SQLSTATE `annals_guard` raises when the state changed.
const STALE: &str = "AN001";

/// Locks the head, reads what the checks need (one round trip), checks
/// every request, writes and commits (one more). What it leaves known, if
/// anything.
async fn slow_round<'a>(
    client: &'a deadpool_postgres::Client,
    settings: Settings,
    ops: &[&'a Op],
    sent: &AtomicBool,
    previous: Option<Known>,
) -> Result<(RoundOutcome, Option<Known>), RoundError> {
    let before = RoundError::BeforeCommit;
    let durability = settings.durability;
    // What the round names.
    let streams = named_streams(ops);
    let mut aux_keys: Vec<Vec<u8>> = Vec::new();
    for op in ops {
        match op {
            Op::Append(a) => aux_keys.extend(conditioned_keys(&a.aux)),
            Op::Batch(b) => aux_keys.extend(conditioned_keys(&b.aux)),
            Op::Aux(writes) => aux_keys.extend(conditioned_keys(writes)),
            Op::Delete(..) | Op::Truncate(..) => {}
        }
    }
    aux_keys.sort();
    aux_keys.dedup();

    let statements = futures::try_join!(
        client.prepare_cached(
            "SELECT head, reserved, last_recorded_at, EXISTS (SELECT 1 FROM annals_live) \
             FROM annals_head WHERE id = 1 FOR UPDATE"
        ),
        client.prepare_cached(
            "SELECT stream_id, next_version, floor, created, deleted FROM annals_streams \
             WHERE stream_id = ANY($1::text[])"
        ),
        client.prepare_cached("SELECT key, value FROM annals_aux WHERE key = ANY($1::bytea[])"),
    )
    .map_err(|e| before(db("preparing the writer's statements")(e)))?;
    let (lock, metas, aux) = statements;

    // Round trip 1: everything after the lock, so it sees every commit
    // before ours ([R4]).
    let begin = begin_sql(settings, durability == Durability::Immediate);
    let conditions = ops.iter().map(|op| async move {
        match op.condition() {
            Some(c) => match rules::condition_start(c) {
                Some(from) => sql::any_match_from(client, from, &c.fail_if_events_match)
                    .await
                    .map(Some),
                None => Ok(Some(false)),
            },
            None => Ok(None),
        }
    });
    let (stream_param, aux_param): (&(dyn ToSql + Sync), &(dyn ToSql + Sync)) =
        (&streams, &aux_keys);
    let (stream_params, aux_params) = ([stream_param], [aux_param]);
    let aux_read = async {
        if aux_keys.is_empty() {
            Ok(Vec::new())
        } else {
            client.query(&aux, &aux_params).await
        }
    };
    let (began, locked, meta_rows, aux_rows, matches) = futures::join!(
        client.batch_execute(&begin),
        client.query_one(&lock, &[]),
        client.query(&metas, &stream_params),
        aux_read,
        futures::future::join_all(conditions),
    );
    began.map_err(|e| before(db("starting a transaction")(e)))?;
    let locked = locked.map_err(|e| before(lock_error(e, settings.timeout)))?;
    let meta_rows = meta_rows.map_err(|e| before(db("reading stream metadata")(e)))?;
    let aux_rows = aux_rows.map_err(|e| before(db("reading aux values")(e)))?;
    let committed_match = matches
        .into_iter()
        .collect::<Result<Vec<_>>>()
        .map_err(before)?;

    let head = col_u64(&locked, 0, "the head").map_err(before)?;
    let reserved = col_u64(&locked, 1, "the reserved head").map_err(before)?;
    let last_recorded_at = col_u64(&locked, 2, "the last recorded_at").map_err(before)?;
    let live: bool = col(&locked, 3, "the live marker").map_err(before)?;
    // The server crashed since the last write (PostgreSQL empties unlogged
    // tables then), or this is the first write: positions up to `reserved`
    // may have been handed out by relaxed commits that were lost, so never
    // hand them out again ([D5]).
    let first_position = if live { head } else { head.max(reserved) }
        .checked_add(1)
        .ok_or_else(|| {
            before(Error::corruption(
                CorruptionAt::Unknown,
                format!("the head {head} is at the end"),
            ))
        })?;

    let mut round = Round::new(
        client,
        streams.iter().map(|s| (s.clone(), None)).collect(),
        aux_keys.iter().map(|k| (k.clone(), None)).collect(),
        committed_match,
    );
    round.next_position = first_position;
    round.last_recorded_at = last_recorded_at;
    for row in &meta_rows {
        let stream: String = col(row, 0, "a stream id").map_err(before)?;
        let meta = sql::meta_from(row, 1).map_err(before)?;
        round.metas.insert(stream, Some(meta));
    }
    for row in &aux_rows {
        let key: Vec<u8> = col(row, 0, "an aux key").map_err(before)?;
        let value: Vec<u8> = col(row, 1, "an aux value").map_err(before)?;
        round.aux.insert(key, Some(value));
    }

    let (outcomes, wrote) = check_all(&mut round, ops, first_position).await?;

    // Round trip 2: the writes and COMMIT.
    let read = (head, reserved, last_recorded_at);
    if !wrote {
        // Nothing written: a failed COMMIT loses nothing, and the requests
        // are checked again.
        client
            .batch_execute("COMMIT")
            .await
            .map_err(|e| before(db("committing")(e)))?;
        let learnt = live.then(|| {
            let mut known = Known::before(previous, read);
            known.learn(read, &round);
            known
        });
        return Ok(((outcomes, None), learnt));
    }
    let new_head = round.next_position - 1;
    let (durable, new_reserved) = commit_durability(durability, new_head, reserved);
    let mut commit = String::new();
    if durable && durability == Durability::Relaxed {
        // Positions past the reservation only with a durable commit.
        commit.push_str("SET LOCAL synchronous_commit = on; ");
    }
    if !live {
        commit.push_str("INSERT INTO annals_live VALUES (1) ON CONFLICT DO NOTHING; ");
    }
    commit.push_str("COMMIT");
    write_round(&round, new_head, new_reserved, head, &commit, sent, None).await?;
    let written = Written {
        head: Position(new_head),
        events: round.next_position.saturating_sub(first_position),
    };
    let mut known = Known::before(previous, read);
    known.learn((new_head, new_reserved, round.last_recorded_at), &round);
    Ok(((outcomes, Some(written)), Some(known)))
}

fn conditioned_keys(writes: &[AuxWrite]) -> impl Iterator<Item = Vec<u8>> + '_ {
    writes
        .iter()
        .filter(|w| w.condition != AuxCondition::None)
        .map(|w| w.key.clone())
}

/// The statements of a round's writes and its COMMIT, all sent at once:
/// every statement is prepared before, so each goes out in this order on
/// its first poll, and the server runs them in order. With a `guard`
/// (a fast round), the transaction's start and the guard go first, in the
/// same round trip; `false` when the guard found the state changed (then
/// the server rolled it all back).
async fn write_round(
    round: &Round<'_>,
    head: u64,
    reserved: u64,
    old_head: u64,
    commit: &str,
    sent: &AtomicBool,
    guard: Option<&Guard<'_>>,
) -> Result<bool, RoundError> {
    let client = round.client;
    let rows = &round.rows;
    let before = RoundError::BeforeCommit;
    let guard_statement = match guard {
        Some(_) => Some(
            client
                .prepare_cached(
                    "SELECT annals_guard($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
                )
                .await
                .map_err(|e| before(db("preparing the writer's statements")(e)))?,
        ),
        None => None,
    };
    let prepared = futures::try_join!(
        client.prepare_cached(
            "INSERT INTO annals_events (position, stream_id, version, event_type, tags, event_id, \
                 data, metadata, recorded_at) \
             SELECT e.p, e.s, e.v, e.t, ($9::text[])[e.o + 1 : e.o + e.c], e.i, e.d, e.m, e.r \
             FROM unnest($1::bigint[], $2::text[], $3::bigint[], $4::text[], $5::uuid[], \
                 $6::bytea[], $7::bytea[], $8::bigint[], $10::int[], $11::int[]) \
                 AS e(p, s, v, t, i, d, m, r, o, c)"
        ),
        client.prepare_cached(
            "INSERT INTO annals_event_tags (tag, position) \
             SELECT * FROM unnest($1::text[], $2::bigint[])"
        ),
        client.prepare_cached(
            "WITH gone AS (DELETE FROM annals_events WHERE stream_id = $1 AND version < $2 \
                 RETURNING position, tags) \
             DELETE FROM annals_event_tags t USING \
                 (SELECT position, unnest(tags) AS tag FROM gone) g \
             WHERE t.tag = g.tag AND t.position = g.position"
        ),
        client.prepare_cached(
            "INSERT INTO annals_streams (stream_id, next_version, floor, created, deleted) \
             SELECT * FROM unnest($1::text[], $2::bigint[], $3::bigint[], $4::bigint[], \
                 $5::bool[]) \
             ON CONFLICT (stream_id) DO UPDATE SET next_version = EXCLUDED.next_version, \
             floor = EXCLUDED.floor, created = EXCLUDED.created, deleted = EXCLUDED.deleted"
        ),
        client.prepare_cached(
            "INSERT INTO annals_aux (key, value) SELECT * FROM unnest($1::bytea[], $2::bytea[]) \
             ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value"
        ),
        client.prepare_cached("DELETE FROM annals_aux WHERE key = ANY($1::bytea[])"),
        client.prepare_cached(
            "UPDATE annals_head SET head = $1, reserved = $2, last_recorded_at = $3 WHERE id = 1"
        ),
        client.prepare_cached("SELECT pg_notify(current_schema() || '_annals_head', $1)"),
    )
    .map_err(|e| before(db("preparing the writer's statements")(e)))?;
    let (insert_events, insert_tags, remove, put_metas, put_aux, delete_aux, put_head, notify) =
        prepared;

    let mut metas = MetaColumns::default();
    for stream in &round.changed {
        if let Some(Some(m)) = round.metas.get(stream) {
            metas.streams.push(stream);
            metas.next_versions.push(big(m.next_version));
            metas.floors.push(big(m.floor));
            metas.created.push(big(m.created));
            metas.deleted.push(m.deleted);
        }
    }
    let mut aux_keys: Vec<&[u8]> = Vec::new();
    let mut aux_values: Vec<&[u8]> = Vec::new();
    let mut aux_gone: Vec<&[u8]> = Vec::new();
    for key in &round.aux_written {
        match round.aux.get(key) {
            Some(Some(value)) => {
                aux_keys.push(key);
                aux_values.push(value);
            }
            _ => aux_gone.push(key),
        }
    }
    let removal = round
        .removal
        .as_ref()
        .map(|(stream, floor)| (stream.as_str(), big(*floor)));
    let (head_param, reserved_param, recorded_param) =
        (big(head), big(reserved), big(round.last_recorded_at));
    let head_hint = head.to_string();

    let mut steps: Vec<WriteStep<'_>> = Vec::new();
    if let (Some(g), Some(statement)) = (guard, guard_statement) {
        steps.push((
            "starting a transaction",
            Box::pin(client.batch_execute("BEGIN")),
        ));
        steps.push(write_step(
            client,
            GUARDING,
            statement,
            vec![
                &g.sync,
                &g.lock_timeout,
                &g.head,
                &g.reserved,
                &g.recorded_at,
                &head_param,
                &reserved_param,
                &recorded_param,
                &g.streams,
                &g.next_versions,
                &g.floors,
                &g.created,
                &g.deleted,
            ],
        ));
    }
    let mut add = |what: &'static str, statement: &tokio_postgres::Statement, params| {
        steps.push(write_step(client, what, statement.clone(), params));
    };
    if !rows.positions.is_empty() {
        add(
            "inserting events",
            &insert_events,
            vec![
                &rows.positions,
                &rows.streams,
                &rows.versions,
                &rows.types,
                &rows.ids,
                &rows.data,
                &rows.metadata,
                &rows.recorded_at,
                &rows.tags,
                &rows.tag_offsets,
                &rows.tag_counts,
            ],
        );
    }
    if !rows.tags.is_empty() {
        add(
            "inserting tags",
            &insert_tags,
            vec![&rows.tags, &rows.tag_positions],
        );
    }
    if let Some((stream, floor)) = &removal {
        add("removing events", &remove, vec![stream, floor]);
    }
    if !metas.streams.is_empty() {
        add(
            "writing stream metadata",
            &put_metas,
            vec![
                &metas.streams,
                &metas.next_versions,
                &metas.floors,
                &metas.created,
                &metas.deleted,
            ],
        );
    }
    if !aux_keys.is_empty() {
        add("writing aux values", &put_aux, vec![&aux_keys, &aux_values]);
    }
    if !aux_gone.is_empty() {
        add("deleting aux values", &delete_aux, vec![&aux_gone]);
    }
    if guard.is_none() {
        add(
            "updating the head",
            &put_head,
            vec![&head_param, &reserved_param, &recorded_param],
        );
    }
    if head > old_head && guard.is_none() {
        // A hint for the stores that LISTEN (they read the head from the
        // table): one per round.
        add("notifying the head", &notify, vec![&head_hint]);
    }
    steps.push(("committing", Box::pin(client.batch_execute(commit))));
    let last = steps.len() - 1;
    let (whats, futures): (Vec<_>, Vec<_>) = steps.into_iter().unzip();
    sent.store(true, Ordering::Release);
    let results = futures::future::join_all(futures).await;
    for (i, (what, result)) in whats.into_iter().zip(results).enumerate() {
        if let Err(e) = result {
            if what == GUARDING && e.as_db_error().is_some() {
                // The server ran the COMMIT after it as a ROLLBACK.
                return if e.code().map(tokio_postgres::error::SqlState::code) == Some(STALE) {
                    Ok(false)
                } else {
                    Err(before(lock_error(
                        e,
                        guard.map_or(Duration::ZERO, |g| g.timeout),
                    )))
                };
            }
            return Err(if refused_before_commit(&e, i == last) {
                before(db(what)(e))
            } else {
                RoundError::AtCommit(Error::outcome_unknown(
                    format!("{what}: the commit may or may not have happened"),
                    e,
                ))
            });
        }
    }
    Ok(true)
}

/// What the guard step does (its name in errors).
const GUARDING: &str = "locking the head and checking the writer's view";

/// The error of the head lock: [`Error::Unavailable`] when the server gave
/// up waiting for it (`lock_timeout`, set to the write timeout), since the
/// round wrote nothing and a later one may get it.
fn lock_error(e: tokio_postgres::Error, timeout: Duration) -> Error {
    if e.code() == Some(&tokio_postgres::error::SqlState::LOCK_NOT_AVAILABLE) {
        Error::unavailable(
            format!(
                "locking the head: not granted within write_timeout ({} ms); the commit \
                 holding it may wait for a synchronous standby that does not answer",
                timeout.as_millis()
            ),
            e,
        )
    } else {
        db("locking the head")(e)
    }
}

/// Whether the first failed step of a round's writes (`at_commit`: the
/// COMMIT itself) proves that nothing was written. The server runs the
/// pipelined statements in order and answers each: an error from it on a
/// statement aborts the transaction (the COMMIT after it rolls back, or
/// never runs when the error ended the session); an ERROR on the COMMIT is
/// a commit refused. But a lost connection (no answer) may come after the
/// server committed, and a FATAL (a shutdown) on the COMMIT may come after
/// its commit record was flushed: both leave the outcome unknown.
fn refused_before_commit(e: &tokio_postgres::Error, at_commit: bool) -> bool {
    match e.as_db_error() {
        None => false,
        Some(_) if !at_commit => true,
        Some(db) => matches!(
            db.parsed_severity(),
            Some(tokio_postgres::error::Severity::Error)
        ),
    }
}

/// The stream rows a round writes, as columns.
#[derive(Default)]
struct MetaColumns<'a> {
    streams: Vec<&'a str>,
    next_versions: Vec<i64>,
    floors: Vec<i64>,
    created: Vec<i64>,
    deleted: Vec<bool>,
}

/// One statement of a round's writes: what it does, and it running.
type WriteStep<'s> = (
    &'static str,
    futures::future::BoxFuture<'s, Result<(), tokio_postgres::Error>>,
);

fn write_step<'s>(
    client: &'s deadpool_postgres::Client,
    what: &'static str,
    statement: tokio_postgres::Statement,
    params: Vec<&'s (dyn ToSql + Sync)>,
) -> WriteStep<'s> {
    (
        what,
        Box::pin(async move { client.execute(&statement, &params).await.map(drop) }),
    )
}

/// What applying a request to a round came to.
enum Step {
    /// Checked (and its writes added to the round): its answer.
    Done(Result<Outcome>),
    /// It needs to read what this round wrote: commit the round without it.
    FlushFirst,
}

/// Checks one request against the round's view and adds its writes; `Err`
/// only for a failed statement or damage (which fails the round).
async fn apply<'a>(round: &mut Round<'a>, index: usize, op: &'a Op) -> Result<Step> {
    Ok(Step::Done(match op {
        Op::Append(a) => match append(round, index, a).await? {
            Some(result) => result.map(Outcome::Append),
            None => return Ok(Step::FlushFirst),
        },
        Op::Batch(b) => batch(round, index, b)?.map(Outcome::Batch),
        Op::Aux(writes) => check_aux(round, writes).map(|()| {
            write_aux(round, writes);
            Outcome::Done
        }),
        Op::Delete(stream, expected) => delete(round, stream, *expected).map(|()| Outcome::Done),
        Op::Truncate(stream, before) => truncate(round, stream, *before).map(|()| Outcome::Done),
    }))
}

impl Round<'_> {
    fn meta(&self, stream: &StreamId) -> Option<StreamMeta> {
        self.metas.get(stream.as_str()).copied().flatten()
    }

    fn set_meta(&mut self, stream: &StreamId, meta: StreamMeta) {
        self.metas.insert(stream.as_str().to_string(), Some(meta));
        self.changed.insert(stream.as_str().to_string());
    }

    /// \[A8\]: whether a readable event matching the condition lies after its
    /// `after`, committed or in this round.
    fn condition_fails(&self, index: usize, condition: &AppendCondition) -> bool {
        let Some(from) = rules::condition_start(condition) else {
            return false;
        };
        let query = &condition.fail_if_events_match;
        self.committed_match.get(index).copied().flatten() == Some(true)
            || self
                .pending
                .iter()
                .any(|p| p.position >= from.0 && query.matches_parts(&p.event_type, &p.tags))
    }
}

/// `None`: the request must see this round committed first.
async fn append<'a>(
    round: &mut Round<'a>,
    index: usize,
    a: &'a Append,
) -> Result<Option<Result<AppendResult>>> {
    let meta = round.meta(&a.stream);
    let decision = rules::decide_append(a, meta, || {
        Ok(a.condition
            .as_ref()
            .is_some_and(|c| round.condition_fails(index, c)))
    });
    let error = match decision {
        Ok(AppendDecision::Write) => {
            if let Err(e) = check_aux(round, &a.aux) {
                return Ok(Some(Err(e)));
            }
            let planned = match plan(round, &a.stream, meta, &a.events) {
                Ok(planned) => planned,
                Err(e) => return Ok(Some(Err(e))),
            };
            let result = write_events(round, &a.stream, planned, &a.events);
            write_aux(round, &a.aux);
            return Ok(Some(Ok(result)));
        }
        Ok(AppendDecision::Refused { error, retry }) => match replay(round, a, retry).await? {
            Replay::Found(result) => return Ok(Some(Ok(result))),
            Replay::FlushFirst => return Ok(None),
            Replay::NotFound => error,
        },
        Err(e) => e,
    };
    Ok(Some(Err(error)))
}

fn batch<'a>(
    round: &mut Round<'a>,
    index: usize,
    b: &'a Batch,
) -> Result<Result<Vec<AppendResult>>> {
    let metas: Vec<_> = b
        .parts
        .iter()
        .map(|part| round.meta(&part.stream))
        .collect();
    let checked = rules::check_batch(b, &metas, || {
        Ok(b.condition
            .as_ref()
            .is_some_and(|c| round.condition_fails(index, c)))
    })
    .and_then(|()| check_aux(round, &b.aux));
    if let Err(e) = checked {
        return Ok(Err(e));
    }
    // Every part is placed before any is written: all or nothing ([A2]).
    // A batch names each stream once, so the metadata read above is each
    // part's own.
    let sizes = b.parts.iter().map(|part| part.events.len());
    let planned = match rules::plan_batch(metas.into_iter().zip(sizes), round.next_position - 1) {
        Ok(planned) => planned,
        Err((i, no_room)) => {
            let stream = &b.parts[i].stream;
            return Ok(Err(Error::in_part(i, no_room_error(stream, no_room))));
        }
    };
    let results = b
        .parts
        .iter()
        .zip(planned)
        .map(|(part, planned)| write_events(round, &part.stream, planned, &part.events))
        .collect();
    write_aux(round, &b.aux);
    Ok(Ok(results))
}

/// \[A5\]: looks for the earlier copy of a refused append where `retry`
/// says.
async fn replay(round: &Round<'_>, a: &Append, retry: Retry) -> Result<Replay> {
    if let Some((first, _)) = retry.versions {
        match replay_by_versions(round, a, first).await? {
            Replay::NotFound => {}
            found => return Ok(found),
        }
    }
    match &a.condition {
        Some(condition) if retry.by_condition => replay_by_condition(round, a, condition).await,
        _ => Ok(Replay::NotFound),
    }
}

/// \[A5\] for `NoStream` and `Exact(v)`: whether the stream's events from
/// version `first` are the append's.
async fn replay_by_versions(round: &Round<'_>, a: &Append, first: u64) -> Result<Replay> {
    if round.appended.contains(a.stream.as_str()) || round.cannot_read() {
        return Ok(Replay::FlushFirst);
    }
    let n = a.events.len();
    let (_, events) = sql::read_stream(
        round.client,
        &a.stream,
        Version(first),
        n,
        Direction::Forward,
    )
    .await?;
    Ok(rules::replayed(first, &a.events, &events).map_or(Replay::NotFound, Replay::Found))
}

/// \[A5\] for conditional appends: the condition fails only because of the
/// append's own events, right after `after`.
async fn replay_by_condition(
    round: &Round<'_>,
    a: &Append,
    condition: &AppendCondition,
) -> Result<Replay> {
    if !round.pending.is_empty() || round.cannot_read() {
        return Ok(Replay::FlushFirst);
    }
    let Some(from) = rules::condition_start(condition) else {
        return Ok(Replay::NotFound);
    };
    let (_, found) = sql::scan_log(
        round.client,
        from,
        a.events.len() + 1,
        Direction::Forward,
        Some(&condition.fail_if_events_match),
    )
    .await?;
    Ok(rules::replayed_by_condition(&a.stream, &a.events, &found)
        .map_or(Replay::NotFound, Replay::Found))
}

/// \[X2\]: the conditions of aux writes, against the round's view.
fn check_aux(round: &Round<'_>, writes: &[AuxWrite]) -> Result<()> {
    rules::check_aux(writes, |key| {
        Ok(round
            .aux
            .get(key)
            .and_then(Option::as_deref)
            .map(Cow::Borrowed))
    })
}

fn write_aux(round: &mut Round<'_>, writes: &[AuxWrite]) {
    for w in writes {
        round.aux.insert(w.key.clone(), w.value.clone());
        round.aux_written.insert(w.key.clone());
    }
}

/// The place of `events` appended to `stream` (in state `meta`) next in
/// this round.
fn plan(
    round: &Round<'_>,
    stream: &StreamId,
    meta: Option<StreamMeta>,
    events: &[NewEvent],
) -> Result<Planned> {
    rules::plan_append(meta, round.next_position - 1, events.len())
        .map_err(|no_room| no_room_error(stream, no_room))
}

/// A number read from the database with no room at its end: damage.
fn no_room_error(stream: &StreamId, no_room: NoRoom) -> Error {
    no_room.error(stream, CorruptionAt::Unknown)
}

/// Adds `events`, placed as `planned`, to the round.
fn write_events<'a>(
    round: &mut Round<'a>,
    stream: &'a StreamId,
    planned: Planned,
    events: &'a [NewEvent],
) -> AppendResult {
    let Planned { meta, result } = planned;
    let recorded_at = Timestamp::now().0.max(round.last_recorded_at);
    round.last_recorded_at = recorded_at;
    let positions = result.first_position.0..=result.last_position.0;
    let versions = result.first_version.0..=result.last_version.0;
    let rows = &mut round.rows;
    for ((position, version), event) in positions.zip(versions).zip(events) {
        let row_position = big(position);
        rows.positions.push(row_position);
        rows.streams.push(stream.as_str());
        rows.versions.push(big(version));
        rows.types.push(&event.event_type);
        rows.ids.push(event.event_id);
        rows.data.push(&event.data);
        rows.metadata.push(&event.metadata);
        rows.recorded_at.push(big(recorded_at));
        rows.tag_offsets
            .push(i32::try_from(rows.tags.len()).unwrap_or(i32::MAX));
        rows.tag_counts
            .push(i32::try_from(event.tags.len()).unwrap_or(i32::MAX));
        for tag in &event.tags {
            rows.tags.push(tag);
            rows.tag_positions.push(row_position);
        }
        round.pending.push(Pending {
            position,
            event_type: event.event_type.clone(),
            tags: event.tags.clone(),
        });
    }
    // Positions continue from a bigint head, far below u64::MAX.
    round.next_position = result.last_position.0.saturating_add(1);
    round.appended.insert(stream.as_str().to_string());
    round.set_meta(stream, meta);
    result
}

/// \[S4\].
fn delete(round: &mut Round<'_>, stream: &StreamId, expected: ExpectedVersion) -> Result<()> {
    let meta = rules::delete(stream, expected, round.meta(stream))?;
    round.removal = Some((stream.as_str().to_string(), meta.floor));
    round.set_meta(stream, meta);
    Ok(())
}

/// \[S3\].
fn truncate(round: &mut Round<'_>, stream: &StreamId, before: Version) -> Result<()> {
    if let Some(meta) = rules::truncate(stream, before, round.meta(stream))? {
        round.removal = Some((stream.as_str().to_string(), meta.floor));
        round.set_meta(stream, meta);
    }
    Ok(())
}
