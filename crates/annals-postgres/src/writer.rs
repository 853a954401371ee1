//! The writer of a store: one task that drains every waiting write request
//! and runs them in one transaction (group commit), holding the lock on the
//! one `annals_head` row that orders every writer of every process ([R4]).

use std::sync::Arc;

use annals_core::{
    Append, AppendCondition, AppendResult, AuxCondition, AuxWrite, Batch, Direction, Durability,
    Error, ExpectedVersion, NewEvent, Position, RecordedEvent, Result, StreamId, Timestamp,
    Version,
};
use deadpool_postgres::{Pool, Transaction};
use tokio::sync::{mpsc, oneshot, watch};

use crate::schema::db;
use crate::sql::{self, StreamMeta, big, unbig};

/// Most requests in one transaction.
const MAX_ROUND: usize = 512;
/// How many positions a `Relaxed` store reserves with one durable commit
/// ([D5]): after a crash, writers continue above the reservation.
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

/// A write and where to answer it.
pub struct Request {
    /// The write.
    pub op: Op,
    /// The caller.
    pub reply: oneshot::Sender<Result<Outcome>>,
}

/// The position state of one transaction.
struct Round<'t> {
    tx: &'t Transaction<'t>,
    next_position: u64,
    last_recorded_at: u64,
    wrote: bool,
}

/// Runs the writer until every sender is gone.
pub async fn run(
    pool: Pool,
    durability: Durability,
    head_tx: Arc<watch::Sender<Position>>,
    mut rx: mpsc::UnboundedReceiver<Request>,
) {
    while let Some(first) = rx.recv().await {
        let mut requests = vec![first];
        while requests.len() < MAX_ROUND {
            match rx.try_recv() {
                Ok(r) => requests.push(r),
                Err(_) => break,
            }
        }
        let ops: Vec<&Op> = requests.iter().map(|r| &r.op).collect();
        let outcomes = match commit_round(&pool, durability, &ops).await {
            Ok((outcomes, head)) => {
                publish(&head_tx, head);
                outcomes
            }
            // A transaction that failed before its COMMIT was sent wrote
            // nothing: run each request alone, so that one request's
            // failure is not the others'. (After a failed COMMIT the outcome
            // is unknown, and a retry could write twice.)
            Err(RoundError::BeforeCommit(_)) if ops.len() > 1 => {
                let mut outcomes = Vec::with_capacity(ops.len());
                for op in &ops {
                    match commit_round(&pool, durability, std::slice::from_ref(op)).await {
                        Ok((mut one, head)) => {
                            publish(&head_tx, head);
                            outcomes.push(one.pop().unwrap_or(Ok(Outcome::Done)));
                        }
                        Err(e) => outcomes.push(Err(e.into_error())),
                    }
                }
                outcomes
            }
            Err(e) => {
                let e = Arc::new(e.into_error());
                ops.iter()
                    .map(|_| {
                        Err(Error::backend(
                            format!("the transaction failed: {e}"),
                            Box::new(Arc::clone(&e)),
                        ))
                    })
                    .collect()
            }
        };
        for (request, outcome) in requests.into_iter().zip(outcomes) {
            let _ = request.reply.send(outcome);
        }
    }
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
    /// COMMIT itself failed: the outcome is unknown.
    AtCommit(Error),
}

impl RoundError {
    fn into_error(self) -> Error {
        match self {
            RoundError::BeforeCommit(e) | RoundError::AtCommit(e) => e,
        }
    }
}

/// Runs `ops` in one transaction; their outcomes and the head after it.
async fn commit_round(
    pool: &Pool,
    durability: Durability,
    ops: &[&Op],
) -> Result<(Vec<Result<Outcome>>, Position), RoundError> {
    let mut client = pool.get().await.map_err(|e| {
        RoundError::BeforeCommit(Error::backend("getting a connection from the pool", e))
    })?;
    let tx = client
        .transaction()
        .await
        .map_err(|e| RoundError::BeforeCommit(db("starting a transaction")(e)))?;
    let (outcomes, head) = run_round(&tx, durability, ops)
        .await
        .map_err(RoundError::BeforeCommit)?;
    tx.commit()
        .await
        .map_err(|e| RoundError::AtCommit(db("committing")(e)))?;
    Ok((outcomes, head))
}

/// The statements of one round, up to (not including) its COMMIT.
async fn run_round(
    tx: &Transaction<'_>,
    durability: Durability,
    ops: &[&Op],
) -> Result<(Vec<Result<Outcome>>, Position)> {
    let sync = match durability {
        Durability::Immediate => "on",
        Durability::Relaxed => "off",
    };
    tx.batch_execute(&format!("SET LOCAL synchronous_commit = {sync}"))
        .await
        .map_err(db("setting synchronous_commit"))?;
    // The lock every writer takes first: commits are serialized on it, so
    // positions become visible in order ([R4]) and every check below sees
    // all that committed before.
    let row = tx
        .query_one(
            "SELECT head, reserved, last_recorded_at, EXISTS (SELECT 1 FROM annals_live) \
             FROM annals_head WHERE id = 1 FOR UPDATE",
            &[],
        )
        .await
        .map_err(db("locking the head"))?;
    let head = unbig(row.get(0), "the head")?;
    let reserved = unbig(row.get(1), "the reserved head")?;
    let last_recorded_at = unbig(row.get(2), "the last recorded_at")?;
    let live: bool = row.get(3);
    let mut next_position = head + 1;
    if !live {
        // The server crashed since the last write (PostgreSQL empties
        // unlogged tables then), or this is the first write: positions up
        // to `reserved` may have been handed out by relaxed commits that
        // were lost, so never hand them out again ([D5]).
        next_position = head.max(reserved) + 1;
        tx.execute(
            "INSERT INTO annals_live VALUES (1) ON CONFLICT DO NOTHING",
            &[],
        )
        .await
        .map_err(db("marking the server live"))?;
    }
    let mut round = Round {
        tx,
        next_position,
        last_recorded_at,
        wrote: false,
    };
    let mut outcomes = Vec::with_capacity(ops.len());
    for op in ops {
        outcomes.push(apply(&mut round, op).await?);
    }
    let new_head = round.next_position - 1;
    let mut new_reserved = reserved;
    if round.wrote {
        if durability == Durability::Relaxed && new_head > reserved {
            // Positions past the reservation only with a durable commit.
            new_reserved = new_head.saturating_add(RESERVATION);
            tx.batch_execute("SET LOCAL synchronous_commit = on")
                .await
                .map_err(db("setting synchronous_commit"))?;
        }
        tx.execute(
            "UPDATE annals_head SET head = $1, reserved = $2, last_recorded_at = $3 WHERE id = 1",
            &[
                &big(new_head),
                &big(new_reserved),
                &big(round.last_recorded_at),
            ],
        )
        .await
        .map_err(db("updating the head"))?;
        if new_head > head {
            tx.execute(
                "SELECT pg_notify(current_schema() || '_annals_head', $1)",
                &[&new_head.to_string()],
            )
            .await
            .map_err(db("notifying the head"))?;
        }
    }
    Ok((outcomes, Position(new_head)))
}

/// Applies one request: its checks first, then its writes, so a request
/// that fails a check writes nothing. `Err` only for a failed statement
/// (which aborts the transaction).
async fn apply(round: &mut Round<'_>, op: &Op) -> Result<Result<Outcome>> {
    Ok(match op {
        Op::Append(a) => append(round, a).await?.map(Outcome::Append),
        Op::Batch(b) => batch(round, b).await?.map(Outcome::Batch),
        Op::Aux(writes) => match check_aux(round, writes).await? {
            Err(e) => Err(e),
            Ok(()) => {
                write_aux(round, writes).await?;
                Ok(Outcome::Done)
            }
        },
        Op::Delete(stream, expected) => delete(round, stream, *expected).await?,
        Op::Truncate(stream, before) => truncate(round, stream, *before).await?,
    })
}

async fn append(round: &mut Round<'_>, a: &Append) -> Result<Result<AppendResult>> {
    let meta = stream_meta(round, &a.stream).await?;
    let actual = meta.and_then(|m| m.last_version());
    if !a.expected.is_satisfied_by(actual) {
        // [A5]: a retry of an append that already committed.
        if let Some(result) = replay_by_expectation(round, a, meta).await? {
            return Ok(Ok(result));
        }
        if let Some(condition) = &a.condition
            && let Some(result) = replay_by_condition(round, a, condition).await?
        {
            return Ok(Ok(result));
        }
        return Ok(Err(Error::wrong_version(&a.stream, a.expected, actual)));
    }
    if let Some(condition) = &a.condition
        && condition_fails(round, condition).await?
    {
        return Ok(match replay_by_condition(round, a, condition).await? {
            Some(result) => Ok(result),
            None => Err(condition.failure()),
        });
    }
    if let Err(e) = check_aux(round, &a.aux).await? {
        return Ok(Err(e));
    }
    let result = write_events(round, &a.stream, meta, &a.events).await?;
    write_aux(round, &a.aux).await?;
    Ok(Ok(result))
}

async fn batch(round: &mut Round<'_>, b: &Batch) -> Result<Result<Vec<AppendResult>>> {
    let mut metas = Vec::with_capacity(b.parts.len());
    for (i, part) in b.parts.iter().enumerate() {
        let meta = stream_meta(round, &part.stream).await?;
        let actual = meta.and_then(|m| m.last_version());
        if !part.expected.is_satisfied_by(actual) {
            return Ok(Err(Error::BatchPart {
                part: i,
                source: Box::new(Error::wrong_version(&part.stream, part.expected, actual)),
            }));
        }
        metas.push(meta);
    }
    if let Some(condition) = &b.condition
        && condition_fails(round, condition).await?
    {
        return Ok(Err(condition.failure()));
    }
    if let Err(e) = check_aux(round, &b.aux).await? {
        return Ok(Err(e));
    }
    let mut results = Vec::with_capacity(b.parts.len());
    for (part, meta) in b.parts.iter().zip(metas) {
        results.push(write_events(round, &part.stream, meta, &part.events).await?);
    }
    write_aux(round, &b.aux).await?;
    Ok(Ok(results))
}

fn result_of(events: &[RecordedEvent]) -> Option<AppendResult> {
    let (first, last) = (events.first()?, events.last()?);
    Some(AppendResult {
        first_version: first.stream_version,
        last_version: last.stream_version,
        first_position: first.position,
        last_position: last.position,
    })
}

/// [A5] for `NoStream` and `Exact(v)`.
async fn replay_by_expectation(
    round: &Round<'_>,
    a: &Append,
    meta: Option<StreamMeta>,
) -> Result<Option<AppendResult>> {
    let Some(meta) = meta.filter(|m| !m.deleted) else {
        return Ok(None);
    };
    let first = match a.expected {
        ExpectedVersion::NoStream => meta.created,
        ExpectedVersion::Exact(v) => match v.0.checked_add(1) {
            Some(f) => f,
            None => return Ok(None),
        },
        ExpectedVersion::Any | ExpectedVersion::StreamExists => return Ok(None),
    };
    let n = a.events.len();
    let (_, events) = sql::read_stream(
        &**round.tx,
        &a.stream,
        Version(first),
        n,
        Direction::Forward,
    )
    .await?;
    let matches = events.len() == n
        && events
            .iter()
            .zip(&a.events)
            .enumerate()
            .all(|(i, (e, new))| {
                e.event_id == new.event_id && e.stream_version.0 == first + i as u64
            });
    Ok(if matches { result_of(&events) } else { None })
}

/// [A5] for conditional appends.
async fn replay_by_condition(
    round: &Round<'_>,
    a: &Append,
    condition: &AppendCondition,
) -> Result<Option<AppendResult>> {
    let Some(from) = condition.after.unwrap_or(Position(0)).0.checked_add(1) else {
        return Ok(None);
    };
    let n = a.events.len();
    let (_, found) = sql::scan_log(
        &**round.tx,
        Position(from),
        n + 1,
        Direction::Forward,
        Some(&condition.fail_if_events_match),
    )
    .await?;
    let own = found.len() == n
        && found
            .iter()
            .zip(&a.events)
            .all(|(e, new)| e.event_id == new.event_id && e.stream_id == a.stream);
    Ok(if own { result_of(&found) } else { None })
}

/// [A8]: whether a readable event matching the query lies after `after`.
async fn condition_fails(round: &Round<'_>, condition: &AppendCondition) -> Result<bool> {
    let Some(from) = condition.after.unwrap_or(Position(0)).0.checked_add(1) else {
        return Ok(false);
    };
    let (_, found) = sql::scan_log(
        &**round.tx,
        Position(from),
        1,
        Direction::Forward,
        Some(&condition.fail_if_events_match),
    )
    .await?;
    Ok(!found.is_empty())
}

/// [X2]: the conditions of aux writes.
async fn check_aux(round: &Round<'_>, writes: &[AuxWrite]) -> Result<Result<()>> {
    for w in writes {
        if w.condition == AuxCondition::None {
            continue;
        }
        let row = round
            .tx
            .query_opt("SELECT value FROM annals_aux WHERE key = $1", &[&w.key])
            .await
            .map_err(db("reading an aux value"))?;
        let current: Option<Vec<u8>> = row.map(|r| r.get(0));
        if let Err(e) = w.check_condition(current.as_deref()) {
            return Ok(Err(e));
        }
    }
    Ok(Ok(()))
}

async fn write_aux(round: &mut Round<'_>, writes: &[AuxWrite]) -> Result<()> {
    for w in writes {
        match &w.value {
            Some(v) => round
                .tx
                .execute(
                    "INSERT INTO annals_aux (key, value) VALUES ($1, $2) \
                     ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value",
                    &[&w.key, v],
                )
                .await
                .map_err(db("writing an aux value"))?,
            None => round
                .tx
                .execute("DELETE FROM annals_aux WHERE key = $1", &[&w.key])
                .await
                .map_err(db("deleting an aux value"))?,
        };
    }
    Ok(())
}

/// Writes `events` as the next versions of `stream` and the next positions.
async fn write_events(
    round: &mut Round<'_>,
    stream: &StreamId,
    meta: Option<StreamMeta>,
    events: &[NewEvent],
) -> Result<AppendResult> {
    let mut meta = StreamMeta::for_append(meta);
    let recorded_at = Timestamp::now().0.max(round.last_recorded_at);
    round.last_recorded_at = recorded_at;
    let first_version = meta.next_version;
    let first_position = round.next_position;
    let insert = round
        .tx
        .prepare_cached(
            "INSERT INTO annals_events (position, stream_id, version, event_type, tags, \
             event_id, data, metadata, recorded_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .await
        .map_err(db("preparing an insert"))?;
    let mut tag_names = Vec::new();
    let mut tag_positions = Vec::new();
    let mut inserts = Vec::with_capacity(events.len());
    for (i, event) in events.iter().enumerate() {
        let position = big(first_position + i as u64);
        let version = big(first_version + i as u64);
        for tag in &event.tags {
            tag_names.push(tag.as_str());
            tag_positions.push(position);
        }
        let insert = &insert;
        let tx = round.tx;
        // Pipelined: the inserts go out without waiting for each other.
        inserts.push(async move {
            tx.execute(
                insert,
                &[
                    &position,
                    &stream.as_str(),
                    &version,
                    &event.event_type,
                    &event.tags,
                    &event.event_id,
                    &event.data,
                    &event.metadata,
                    &big(recorded_at),
                ],
            )
            .await
        });
    }
    futures::future::try_join_all(inserts)
        .await
        .map_err(db("inserting events"))?;
    if !tag_names.is_empty() {
        round
            .tx
            .execute(
                "INSERT INTO annals_event_tags (tag, position) \
                 SELECT * FROM unnest($1::text[], $2::bigint[])",
                &[&tag_names, &tag_positions],
            )
            .await
            .map_err(db("inserting tags"))?;
    }
    let n = events.len() as u64;
    meta.next_version += n;
    round.next_position += n;
    round.wrote = true;
    put_meta(round, stream, &meta).await?;
    Ok(AppendResult {
        first_version: Version(first_version),
        last_version: Version(first_version + n - 1),
        first_position: Position(first_position),
        last_position: Position(first_position + n - 1),
    })
}

/// The metadata of `stream` as this transaction sees it (a prepared
/// statement: the writer's hottest query).
async fn stream_meta(round: &Round<'_>, stream: &StreamId) -> Result<Option<StreamMeta>> {
    let statement = round
        .tx
        .prepare_cached(sql::STREAM_META_SQL)
        .await
        .map_err(db("preparing a statement"))?;
    let row = round
        .tx
        .query_opt(&statement, &[&stream.as_str()])
        .await
        .map_err(db("reading a stream's metadata"))?;
    row.map(|r| sql::meta_from(&r, 0)).transpose()
}

async fn put_meta(round: &mut Round<'_>, stream: &StreamId, meta: &StreamMeta) -> Result<()> {
    let statement = round
        .tx
        .prepare_cached(
            "INSERT INTO annals_streams (stream_id, next_version, floor, created, deleted) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (stream_id) DO UPDATE SET \
             next_version = EXCLUDED.next_version, floor = EXCLUDED.floor, \
             created = EXCLUDED.created, deleted = EXCLUDED.deleted",
        )
        .await
        .map_err(db("preparing a statement"))?;
    round
        .tx
        .execute(
            &statement,
            &[
                &stream.as_str(),
                &big(meta.next_version),
                &big(meta.floor),
                &big(meta.created),
                &meta.deleted,
            ],
        )
        .await
        .map_err(db("writing a stream's metadata"))?;
    round.wrote = true;
    Ok(())
}

/// Removes the events of `stream` below `floor`, with their tag entries.
async fn remove_below(round: &Round<'_>, stream: &StreamId, floor: u64) -> Result<()> {
    round
        .tx
        .execute(
            "WITH gone AS (DELETE FROM annals_events WHERE stream_id = $1 AND version < $2 \
                 RETURNING position, tags) \
             DELETE FROM annals_event_tags t USING \
                 (SELECT position, unnest(tags) AS tag FROM gone) g \
             WHERE t.tag = g.tag AND t.position = g.position",
            &[&stream.as_str(), &big(floor)],
        )
        .await
        .map_err(db("removing events"))?;
    Ok(())
}

/// [S4].
async fn delete(
    round: &mut Round<'_>,
    stream: &StreamId,
    expected: ExpectedVersion,
) -> Result<Result<Outcome>> {
    let meta = stream_meta(round, stream).await?;
    let actual = meta.and_then(|m| m.last_version());
    let Some(mut meta) = meta.filter(|_| actual.is_some()) else {
        return Ok(Err(match expected {
            ExpectedVersion::Any | ExpectedVersion::NoStream => {
                Error::StreamNotFound(stream.clone())
            }
            _ => Error::wrong_version(stream, expected, None),
        }));
    };
    if !expected.is_satisfied_by(actual) {
        return Ok(Err(Error::wrong_version(stream, expected, actual)));
    }
    meta.deleted = true;
    meta.floor = meta.next_version;
    remove_below(round, stream, meta.floor).await?;
    put_meta(round, stream, &meta).await?;
    Ok(Ok(Outcome::Done))
}

/// [S3].
async fn truncate(
    round: &mut Round<'_>,
    stream: &StreamId,
    before: Version,
) -> Result<Result<Outcome>> {
    let mut meta = match stream_meta(round, stream).await? {
        Some(m) if !m.deleted => m,
        _ => return Ok(Err(Error::StreamNotFound(stream.clone()))),
    };
    let floor = before.0.min(meta.next_version);
    if floor > meta.floor {
        meta.floor = floor;
        remove_below(round, stream, floor).await?;
        put_meta(round, stream, &meta).await?;
    }
    Ok(Ok(Outcome::Done))
}
