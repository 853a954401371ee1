//! The single writer of a [`KvStore`](super::KvStore): it drains every
//! waiting request, checks each in order against the committed state plus
//! what this round already accepted, commits the round in one engine batch
//! (group commit: one sync for many appends), publishes the new head, and
//! answers every caller.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet, VecDeque};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, mpsc};

use tokio::sync::{OwnedSemaphorePermit, oneshot, watch};

use crate::backend::{Append, AppendResult, Batch, Direction, Durability};
use crate::error::{CorruptionAt, Error, Result};
use crate::event::{NewEvent, Position, StreamId, Timestamp, Version};
use crate::expect::{AppendCondition, AuxWrite, ExpectedVersion, Query};
use crate::kv::engine::{KvEngine, KvSnapshot, WriteBatch};
use crate::kv::layout::{self, StoreMeta};
use crate::kv::read::{self, MetaSource};
use crate::kv::{codec, figures};
use crate::rules::{self, AppendDecision, NoRoom, Planned, Replay, Retry, StreamMeta};

/// Where the writer answers a caller.
pub(crate) type Reply<T> = oneshot::Sender<Result<T>>;

/// What callers ask of the writer.
pub(crate) enum Request {
    /// An append, with its condition's query normalized (on the caller's
    /// task, so the writer does not pay for it).
    Append(Box<Append>, Option<Query>, Reply<AppendResult>),
    /// A batch, with its condition's query normalized.
    Batch(Box<Batch>, Option<Query>, Reply<Vec<AppendResult>>),
    Aux(Vec<AuxWrite>, Reply<()>),
    Delete(StreamId, ExpectedVersion, Reply<()>),
    Truncate(StreamId, Version, Reply<()>),
    /// Deletes of dead entries found by `compact`.
    Purge(WriteBatch, Reply<()>),
    Close(Reply<()>),
}

/// A request in the writer's queue, with the room it takes there (given
/// back once the request is answered; `Close` takes none).
pub(crate) struct Queued {
    pub(crate) request: Request,
    pub(crate) permit: Option<OwnedSemaphorePermit>,
}

/// Most requests in one round, so one round's batch stays bounded.
const MAX_ROUND_REQUESTS: usize = 4096;
/// How many positions a `Relaxed` store reserves with one synced commit.
const RESERVATION: u64 = 1 << 20;

/// An answer waiting for its round's commit: given the commit's error, if
/// any, it sends the caller's result.
type Answer = Box<dyn FnOnce(Option<&Arc<Error>>) + Send>;

fn answer<T: Send + 'static>(reply: Reply<T>, result: Result<T>) -> Answer {
    Box::new(move |commit_error| {
        let result = match (result, commit_error) {
            (Ok(_), Some(e)) => Err(Error::backend(
                format!("the commit failed: {e}"),
                Box::new(Arc::clone(e)),
            )),
            (result, _) => result,
        };
        // The caller may have gone away; nothing to do then.
        let _ = reply.send(result);
    })
}

/// An event written in the current round (not yet in the snapshot).
struct PendingEvent {
    stream: String,
    version: u64,
    position: u64,
    event_type: String,
    tags: Vec<String>,
}

/// One group commit in the making.
struct Round<S> {
    snap: S,
    batch: WriteBatch,
    /// Stream metadata changed in this round.
    metas: HashMap<String, StreamMeta>,
    /// Aux entries changed in this round (`None`: deleted).
    aux: HashMap<Vec<u8>, Option<Vec<u8>>>,
    pending: Vec<PendingEvent>,
    streams_with_events: HashSet<String>,
    answers: Vec<Answer>,
    /// The queue room of the round's requests, given back after the
    /// commit: the requests' bytes live on in the round's batch until then.
    permits: Vec<OwnedSemaphorePermit>,
}

impl<S: KvSnapshot> Round<S> {
    fn new(snap: S) -> Self {
        Round {
            snap,
            batch: WriteBatch::new(),
            metas: HashMap::new(),
            aux: HashMap::new(),
            pending: Vec::new(),
            streams_with_events: HashSet::new(),
            answers: Vec::new(),
            permits: Vec::new(),
        }
    }

    fn meta(&self, stream: &str) -> Result<Option<StreamMeta>> {
        match self.metas.get(stream) {
            Some(m) => Ok(Some(*m)),
            None => read::stream_meta(&self.snap, stream),
        }
    }

    fn aux_value(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        match self.aux.get(key) {
            Some(v) => Ok(v.clone()),
            None => read::aux_get(&self.snap, key),
        }
    }

    fn has_changes(&self) -> bool {
        !self.batch.is_empty() || !self.metas.is_empty() || !self.aux.is_empty()
    }
}

/// Stream metadata as the round sees it: its own changes over the snapshot.
struct RoundMetas<'r, S> {
    round: &'r Round<S>,
    cache: HashMap<String, Option<StreamMeta>>,
}

impl<S: KvSnapshot> MetaSource for RoundMetas<'_, S> {
    fn meta(&mut self, stream: &str) -> Result<Option<StreamMeta>> {
        if let Some(m) = self.cache.get(stream) {
            return Ok(*m);
        }
        let m = self.round.meta(stream)?;
        self.cache.insert(stream.to_string(), m);
        Ok(m)
    }
}

/// What applying a request to a round came to.
enum Step {
    /// Applied (its answer waits in the round).
    Done,
    /// It needs to read what this round wrote: commit the round, then
    /// apply it again to a fresh one.
    FlushFirst(Request),
}

/// What checking a request against a round came to.
enum Checked<T> {
    /// Its answer (applied to the round if `Ok`).
    Answer(Result<T>),
    /// It must read what this round wrote: commit the round first, then
    /// check it again.
    FlushFirst,
}

/// The events of one append (or batch part), checked and encoded, waiting
/// to be added to the round.
struct Staged {
    stream: String,
    meta: StreamMeta,
    ops: Vec<(Vec<u8>, Option<Vec<u8>>)>,
    pending: Vec<PendingEvent>,
    recorded_at: Timestamp,
    result: AppendResult,
}

/// An append condition as the writer checks it.
#[derive(Clone, Copy)]
struct Condition<'a> {
    /// As the caller gave it: its `after`, and what its error names.
    given: &'a AppendCondition,
    /// Its query, normalized: what the checks walk (\[R6\]).
    query: &'a Query,
}

impl<'a> Condition<'a> {
    fn of(given: Option<&'a AppendCondition>, query: Option<&'a Query>) -> Option<Self> {
        let given = given?;
        Some(Condition {
            given,
            query: query.unwrap_or(&given.fail_if_events_match),
        })
    }

    /// The first position the condition is about (`None`: none can be).
    fn from(self) -> Option<u64> {
        rules::condition_start(self.given).map(|p| p.0)
    }
}

/// The state of the writer thread.
pub(crate) struct Writer<E: KvEngine> {
    engine: Arc<E>,
    durability: Durability,
    /// The store's metadata as last committed.
    committed: StoreMeta,
    /// The last position handed out (the next one is the one after it).
    last_position: u64,
    /// The last `recorded_at` handed out.
    last_recorded_at: u64,
    head_tx: watch::Sender<Position>,
}

impl<E: KvEngine> Writer<E> {
    /// A writer continuing from `committed`, the store's metadata on open.
    pub(crate) fn new(
        engine: Arc<E>,
        durability: Durability,
        committed: StoreMeta,
        head_tx: watch::Sender<Position>,
    ) -> Self {
        // A crashed `Relaxed` store may have handed out positions up to
        // `reserved` that are lost: start above them (SPEC D5).
        let last_position = committed.head.max(committed.reserved);
        // Times keep rising along positions (D3), but a time no clock
        // gives is damage (verify reports it): new events do not inherit
        // it, they start again from the clock.
        let last_recorded_at = if committed.last_recorded_at > Timestamp::MAX.0 {
            0
        } else {
            committed.last_recorded_at
        };
        Writer {
            engine,
            durability,
            committed,
            last_position,
            last_recorded_at,
            head_tx,
        }
    }

    /// Runs until the store is closed or every sender is gone.
    pub(crate) fn run(mut self, rx: &mpsc::Receiver<Queued>) {
        let mut close_reply = None;
        'rounds: while let Ok(first) = rx.recv() {
            let mut queue = VecDeque::from([first]);
            while queue.len() < MAX_ROUND_REQUESTS {
                match rx.try_recv() {
                    Ok(r) => queue.push_back(r),
                    Err(_) => break,
                }
            }
            figures::round_started(figures::engine_label::<E>(), queue.len());
            let mut round = match self.new_round() {
                Ok(r) => r,
                Err(e) => {
                    let e = Arc::new(e);
                    for r in queue {
                        if let Some(reply) = fail(r.request, &e) {
                            close_reply = Some(reply);
                            break 'rounds;
                        }
                    }
                    continue;
                }
            };
            while let Some(Queued { request, permit }) = queue.pop_front() {
                if let Request::Close(reply) = request {
                    self.flush(round);
                    close_reply = Some(reply);
                    for r in queue {
                        refuse_closed(r.request);
                    }
                    break 'rounds;
                }
                match self.apply(&mut round, request) {
                    Step::Done => round.permits.extend(permit),
                    Step::FlushFirst(request) => {
                        self.flush(round);
                        round = match self.new_round() {
                            Ok(r) => r,
                            Err(e) => {
                                let e = Arc::new(e);
                                let rest = queue.drain(..).map(|q| q.request);
                                for r in std::iter::once(request).chain(rest) {
                                    if let Some(reply) = fail(r, &e) {
                                        close_reply = Some(reply);
                                        break 'rounds;
                                    }
                                }
                                continue 'rounds;
                            }
                        };
                        queue.push_front(Queued { request, permit });
                    }
                }
            }
            self.flush(round);
        }
        // Requests sent after Close cannot arrive: the store dropped its
        // sender before sending Close.
        let result = self.finish();
        if let Some(reply) = close_reply {
            let _ = reply.send(result);
        }
    }

    fn new_round(&self) -> Result<Round<E::Snapshot>> {
        Ok(Round::new(self.engine.snapshot()?))
    }

    /// Marks the store cleanly closed, releases the engine and ends the
    /// head watch.
    fn finish(self) -> Result<()> {
        let Writer {
            engine,
            committed,
            last_position,
            head_tx,
            ..
        } = self;
        drop(head_tx);
        let mut result = Ok(());
        // Positions up to here were handed out, or skipped after a crash
        // because a crashed process may have handed them out (D5).
        let used = last_position;
        if committed.reserved > used {
            // A clean close gives back the rest of the reservation, so the
            // next open leaves no gap, but never the positions skipped
            // after a crash: those stay out of use. The sync also makes
            // every earlier relaxed commit durable.
            let meta = StoreMeta {
                reserved: used,
                ..committed
            };
            result = codec::encode(layout::STORE_META_KEY, &meta).and_then(|value| {
                let mut batch = WriteBatch::new();
                batch.put(layout::STORE_META_KEY.to_vec(), value);
                commit(&*engine, batch, true)
            });
        }
        let closed = engine.close();
        result.and(closed)
    }

    fn apply(&mut self, round: &mut Round<E::Snapshot>, request: Request) -> Step {
        match request {
            Request::Append(append, query, reply) => {
                let condition = Condition::of(append.condition.as_ref(), query.as_ref());
                match self.append(round, &append, condition) {
                    Checked::Answer(result) => round.answers.push(answer(reply, result)),
                    Checked::FlushFirst => {
                        return Step::FlushFirst(Request::Append(append, query, reply));
                    }
                }
            }
            Request::Batch(batch, query, reply) => {
                let condition = Condition::of(batch.condition.as_ref(), query.as_ref());
                let result = self.batch(round, &batch, condition);
                round.answers.push(answer(reply, result));
            }
            Request::Aux(writes, reply) => {
                let result = check_aux(round, &writes).map(|()| write_aux(round, writes));
                round.answers.push(answer(reply, result));
            }
            Request::Delete(stream, expected, reply) => {
                let result = delete(round, &stream, expected);
                round.answers.push(answer(reply, result));
            }
            Request::Truncate(stream, before, reply) => {
                let result = truncate(round, &stream, before);
                round.answers.push(answer(reply, result));
            }
            Request::Purge(batch, reply) => {
                round.batch.ops.extend(batch.ops);
                round.answers.push(answer(reply, Ok(())));
            }
            Request::Close(reply) => {
                // `run` handles Close before `apply`; answer sensibly anyway.
                let _ = reply.send(Ok(()));
            }
        }
        Step::Done
    }

    /// Checks and applies one append.
    fn append(
        &mut self,
        round: &mut Round<E::Snapshot>,
        a: &Append,
        condition: Option<Condition<'_>>,
    ) -> Checked<AppendResult> {
        let meta = match round.meta(a.stream.as_str()) {
            Ok(m) => m,
            Err(e) => return Checked::Answer(Err(e)),
        };
        let decision = rules::decide_append(a, meta, || match condition {
            Some(c) => condition_fails(round, c),
            None => Ok(false),
        });
        match decision {
            Err(e) => Checked::Answer(Err(e)),
            Ok(AppendDecision::Refused { error, retry }) => {
                match replay(round, a, condition, retry) {
                    Ok(Replay::Found(result)) => Checked::Answer(Ok(result)),
                    Ok(Replay::NotFound) => Checked::Answer(Err(error)),
                    Ok(Replay::FlushFirst) => Checked::FlushFirst,
                    Err(e) => Checked::Answer(Err(e)),
                }
            }
            Ok(AppendDecision::Write) => {
                if let Err(e) = check_aux(round, &a.aux) {
                    return Checked::Answer(Err(e));
                }
                // The aux writes go with the events or not at all (A2, X2):
                // an append that cannot be placed writes nothing.
                let result = self.write_events(round, &a.stream, meta, &a.events);
                if result.is_ok() {
                    write_aux(round, a.aux.clone());
                }
                Checked::Answer(result)
            }
        }
    }

    fn batch(
        &mut self,
        round: &mut Round<E::Snapshot>,
        b: &Batch,
        condition: Option<Condition<'_>>,
    ) -> Result<Vec<AppendResult>> {
        let metas = b
            .parts
            .iter()
            .enumerate()
            .map(|(i, part)| {
                round
                    .meta(part.stream.as_str())
                    .map_err(|e| Error::in_part(i, e))
            })
            .collect::<Result<Vec<_>>>()?;
        rules::check_batch(b, &metas, || match condition {
            Some(c) => condition_fails(round, c),
            None => Ok(false),
        })?;
        check_aux(round, &b.aux)?;
        // Every part is placed and staged before any is added: all or
        // nothing (A2).
        let sizes = b.parts.iter().map(|part| part.events.len());
        let planned = rules::plan_batch(metas.into_iter().zip(sizes), self.last_position).map_err(
            |(i, no_room)| Error::in_part(i, no_room_error(&b.parts[i].stream, no_room)),
        )?;
        let recorded_at = self.next_recorded_at();
        let staged = b
            .parts
            .iter()
            .zip(planned)
            .enumerate()
            .map(|(i, (part, planned))| {
                self.stage(&part.stream, planned, &part.events, recorded_at)
                    .map_err(|e| Error::in_part(i, e))
            })
            .collect::<Result<Vec<_>>>()?;
        let results = staged
            .into_iter()
            .map(|part| self.apply_staged(round, part))
            .collect();
        write_aux(round, b.aux.clone());
        Ok(results)
    }

    /// Adds `events` to the round as the next versions of `stream` and the
    /// next positions of the log.
    fn write_events(
        &mut self,
        round: &mut Round<E::Snapshot>,
        stream: &StreamId,
        meta: Option<StreamMeta>,
        events: &[NewEvent],
    ) -> Result<AppendResult> {
        let planned = rules::plan_append(meta, self.last_position, events.len())
            .map_err(|no_room| no_room_error(stream, no_room))?;
        let recorded_at = self.next_recorded_at();
        let staged = self.stage(stream, planned, events, recorded_at)?;
        Ok(self.apply_staged(round, staged))
    }

    /// The `recorded_at` of the next write: the clock's time, but never
    /// before the last one handed out (D3).
    fn next_recorded_at(&self) -> Timestamp {
        Timestamp(Timestamp::now().0.max(self.last_recorded_at))
    }

    /// The entries, metadata and result of `events` written to `stream`
    /// where `planned` places them, encoded, the round untouched: a
    /// failure (an encoding error) leaves no trace.
    fn stage(
        &self,
        stream: &StreamId,
        planned: Planned,
        events: &[NewEvent],
        recorded_at: Timestamp,
    ) -> Result<Staged> {
        let Planned { meta, result } = planned;
        let mut ops = Vec::with_capacity(events.len().saturating_mul(4));
        let mut pending = Vec::with_capacity(events.len());
        let positions = result.first_position.0..=result.last_position.0;
        let versions = result.first_version.0..=result.last_version.0;
        for ((position, version), event) in positions.zip(versions).zip(events) {
            ops.extend(
                codec::event_entries(
                    stream.as_str(),
                    Version(version),
                    Position(position),
                    recorded_at,
                    event,
                )?
                .into_iter()
                .map(|(key, value)| (key, Some(value))),
            );
            pending.push(PendingEvent {
                stream: stream.as_str().to_string(),
                version,
                position,
                event_type: event.event_type.clone(),
                tags: event.tags.clone(),
            });
        }
        Ok(Staged {
            stream: stream.as_str().to_string(),
            meta,
            ops,
            pending,
            recorded_at,
            result,
        })
    }

    /// Adds a staged write to the round.
    fn apply_staged(&mut self, round: &mut Round<E::Snapshot>, staged: Staged) -> AppendResult {
        let Staged {
            stream,
            meta,
            ops,
            pending,
            recorded_at,
            result,
        } = staged;
        self.last_position = result.last_position.0;
        self.last_recorded_at = recorded_at.0;
        round.batch.ops.extend(ops);
        round.pending.extend(pending);
        round.streams_with_events.insert(stream.clone());
        round.metas.insert(stream, meta);
        result
    }

    /// Commits the round, publishes the head, and answers every caller.
    fn flush(&mut self, round: Round<E::Snapshot>) {
        let has_changes = round.has_changes();
        let Round {
            snap,
            mut batch,
            metas,
            aux,
            answers,
            permits,
            pending,
            ..
        } = round;
        // The checks are done; no engine should have to commit while this
        // thread holds a reader open.
        drop(snap);
        let mut commit_error = None;
        let mut took = None;
        if has_changes {
            match self.seal_round(&mut batch, &metas, aux) {
                Ok((meta, sync)) => match timed(&mut took, || commit(&*self.engine, batch, sync)) {
                    Ok(()) => {
                        self.committed = meta;
                        // Published before the answers, so a caller that
                        // saw its append return also sees the head at it.
                        self.head_tx.send_replace(Position(meta.head));
                    }
                    Err(e) => commit_error = Some(Arc::new(e)),
                },
                Err(e) => commit_error = Some(Arc::new(e)),
            }
        }
        figures::round_committed(
            figures::engine_label::<E>(),
            answers.len(),
            pending.len(),
            took,
            self.committed.head,
        );
        for answer in answers {
            answer(commit_error.as_ref());
        }
        drop(permits);
    }

    /// Adds the round's metadata to its batch; returns the store metadata
    /// it commits and whether the commit must be synced.
    fn seal_round(
        &self,
        batch: &mut WriteBatch,
        metas: &HashMap<String, StreamMeta>,
        aux: HashMap<Vec<u8>, Option<Vec<u8>>>,
    ) -> Result<(StoreMeta, bool)> {
        for (stream, meta) in metas {
            let key = layout::stream_meta_key(stream);
            let value = codec::encode(&key, meta)?;
            batch.put(key, value);
        }
        for (key, value) in aux {
            let k = layout::aux_key(&key);
            match value {
                Some(v) => {
                    let sealed = codec::seal(&k, &v);
                    batch.put(k, sealed);
                }
                None => batch.delete(k),
            }
        }
        let mut meta = StoreMeta {
            head: self.last_position,
            last_recorded_at: self.last_recorded_at,
            ..self.committed
        };
        let mut sync = self.durability == Durability::Immediate;
        if meta.head > meta.reserved && self.durability == Durability::Relaxed {
            // Positions past the reservation are handed out only once a
            // synced commit has raised it (SPEC D5).
            meta.reserved = meta.head.saturating_add(RESERVATION);
            sync = true;
        }
        let value = codec::encode(layout::STORE_META_KEY, &meta)?;
        batch.put(layout::STORE_META_KEY.to_vec(), value);
        Ok((meta, sync))
    }
}

/// The damage of a number read from disk with no room at its end (never a
/// panic), at the key that holds it.
fn no_room_error(stream: &StreamId, no_room: NoRoom) -> Error {
    let at = match no_room {
        NoRoom::Positions { .. } => layout::STORE_META_KEY.to_vec(),
        NoRoom::Versions { .. } => layout::stream_meta_key(stream.as_str()),
    };
    no_room.error(stream, CorruptionAt::Key(at))
}

/// Runs `f`, putting how long it took in `took`.
fn timed<T>(took: &mut Option<std::time::Duration>, f: impl FnOnce() -> T) -> T {
    let start = std::time::Instant::now();
    let result = f();
    *took = Some(start.elapsed());
    result
}

/// Commits a batch, turning an engine panic into an error.
fn commit<E: KvEngine>(engine: &E, batch: WriteBatch, sync: bool) -> Result<()> {
    catch_unwind(AssertUnwindSafe(|| engine.commit(batch, sync))).unwrap_or_else(|payload| {
        Err(Error::backend(
            "commit",
            super::support::EnginePanic::new("the engine", payload.as_ref()),
        ))
    })
}

/// Answers a request with the round-level error `e`; for Close, hands its
/// reply back.
fn fail(request: Request, e: &Arc<Error>) -> Option<Reply<()>> {
    fn err<T>(e: &Arc<Error>) -> Result<T> {
        Err(Error::backend(
            format!("could not start a commit: {e}"),
            Box::new(Arc::clone(e)),
        ))
    }
    match request {
        Request::Append(_, _, r) => drop(r.send(err(e))),
        Request::Batch(_, _, r) => drop(r.send(err(e))),
        Request::Aux(_, r)
        | Request::Delete(_, _, r)
        | Request::Truncate(_, _, r)
        | Request::Purge(_, r) => drop(r.send(err(e))),
        Request::Close(r) => return Some(r),
    }
    None
}

fn refuse_closed(request: Request) {
    match request {
        Request::Append(_, _, r) => drop(r.send(Err(Error::Closed))),
        Request::Batch(_, _, r) => drop(r.send(Err(Error::Closed))),
        Request::Aux(_, r)
        | Request::Delete(_, _, r)
        | Request::Truncate(_, _, r)
        | Request::Purge(_, r)
        | Request::Close(r) => drop(r.send(Err(Error::Closed))),
    }
}

/// SPEC A5: looks for the earlier copy of a refused append where `retry`
/// says.
fn replay<S: KvSnapshot>(
    round: &Round<S>,
    a: &Append,
    condition: Option<Condition<'_>>,
    retry: Retry,
) -> Result<Replay> {
    if let Some((first, _)) = retry.versions {
        match replay_by_versions(round, a, first)? {
            Replay::NotFound => {}
            found => return Ok(found),
        }
    }
    match condition {
        Some(condition) if retry.by_condition => replay_by_condition(round, a, condition),
        _ => Ok(Replay::NotFound),
    }
}

/// SPEC A5 for `NoStream` and `Exact(v)`: whether the stream's events from
/// version `first` are the append's.
fn replay_by_versions<S: KvSnapshot>(round: &Round<S>, a: &Append, first: u64) -> Result<Replay> {
    if round.streams_with_events.contains(a.stream.as_str()) {
        return Ok(Replay::FlushFirst);
    }
    let n = a.events.len();
    let page = read::read_stream(
        &round.snap,
        &a.stream,
        Version(first),
        n,
        Direction::Forward,
    )?;
    Ok(rules::replayed(first, &a.events, &page.events).map_or(Replay::NotFound, Replay::Found))
}

/// SPEC A5 for conditional appends: the result of the earlier append when
/// the condition fails only because of N events right after `after` that
/// carry exactly the append's ids, in order.
fn replay_by_condition<S: KvSnapshot>(
    round: &Round<S>,
    a: &Append,
    condition: Condition<'_>,
) -> Result<Replay> {
    if !round.pending.is_empty() {
        return Ok(Replay::FlushFirst);
    }
    let Some(from) = condition.from() else {
        return Ok(Replay::NotFound);
    };
    let mut metas = RoundMetas {
        round,
        cache: HashMap::new(),
    };
    let found = read::scan_log(
        &round.snap,
        &mut metas,
        Position(from),
        a.events.len() + 1,
        Direction::Forward,
        Some(condition.query),
    )?;
    Ok(rules::replayed_by_condition(&a.stream, &a.events, &found)
        .map_or(Replay::NotFound, Replay::Found))
}

/// Whether a readable event matching the condition's query lies after its
/// `after`, in the snapshot or in this round (SPEC A8).
fn condition_fails<S: KvSnapshot>(round: &Round<S>, condition: Condition<'_>) -> Result<bool> {
    let Some(from) = condition.from() else {
        return Ok(false);
    };
    let query = condition.query;
    for p in &round.pending {
        if p.position >= from && query.matches_parts(&p.event_type, &p.tags) {
            let readable = round
                .metas
                .get(&p.stream)
                .is_some_and(|m| m.is_readable(p.version));
            if readable {
                return Ok(true);
            }
        }
    }
    let mut metas = RoundMetas {
        round,
        cache: HashMap::new(),
    };
    read::any_after(&round.snap, &mut metas, Position(from), query)
}

/// Checks the conditions of aux writes against the round's view (SPEC X2).
fn check_aux<S: KvSnapshot>(round: &Round<S>, writes: &[AuxWrite]) -> Result<()> {
    rules::check_aux(writes, |key| Ok(round.aux_value(key)?.map(Cow::Owned)))
}

fn write_aux<S>(round: &mut Round<S>, writes: Vec<AuxWrite>) {
    for w in writes {
        round.aux.insert(w.key, w.value);
    }
}

/// SPEC S4.
fn delete<S: KvSnapshot>(
    round: &mut Round<S>,
    stream: &StreamId,
    expected: ExpectedVersion,
) -> Result<()> {
    let meta = rules::delete(stream, expected, round.meta(stream.as_str())?)?;
    round.metas.insert(stream.as_str().to_string(), meta);
    Ok(())
}

/// SPEC S3.
fn truncate<S: KvSnapshot>(round: &mut Round<S>, stream: &StreamId, before: Version) -> Result<()> {
    if let Some(meta) = rules::truncate(stream, before, round.meta(stream.as_str())?)? {
        round.metas.insert(stream.as_str().to_string(), meta);
    }
    Ok(())
}
