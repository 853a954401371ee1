//! The contract's decisions, as pure functions of a stream's state: what an
//! expectation accepts (\[A3\]), when an append is the retry of one that
//! already committed (\[A5\]), what a delete (\[S4\]) and a truncation
//! (\[S3\]) do to a stream, the conditions of aux writes (\[X2\]) and the
//! versions and positions an append gets.
//!
//! Every writer — [`KvStore`](crate::kv::KvStore)'s and annals-postgres's
//! — reads the state its own way (a snapshot, rows read under a lock), then
//! asks these functions what to do, so no backend decides on its own. A
//! new backend's writer calls them too.
//!
//! ```
//! use annals_core::rules::{self, StreamMeta};
//! use annals_core::{ExpectedVersion, StreamId, Version};
//!
//! let stream = StreamId::new("order-1")?;
//! // A stream with versions 0..=2, truncated below 1.
//! let meta = StreamMeta { next_version: 3, floor: 1, created: 0, deleted: false };
//! assert!(rules::check_expected(&stream, ExpectedVersion::exact(2), Some(meta)).is_ok());
//! let deleted = rules::delete(&stream, ExpectedVersion::Any, Some(meta))?;
//! assert_eq!(deleted.last_version(), None);
//! // An append to a deleted stream recreates it; its numbering continues.
//! let planned = rules::plan_append(Some(deleted), 10, 2).expect("room");
//! assert_eq!(planned.result.first_version, Version(3));
//! # Ok::<(), annals_core::Error>(())
//! ```

use std::borrow::Cow;

use serde::{Deserialize, Serialize};

use crate::backend::{Append, AppendResult, Batch};
use crate::error::{CorruptionAt, Error, Result};
use crate::event::{NewEvent, Position, RecordedEvent, StreamId, Version};
use crate::expect::{AppendCondition, AuxCondition, AuxWrite, ExpectedVersion};

/// What a store keeps about one stream.
///
/// The key-value layout stores it as it is (its fields, in this order, are
/// the on-disk encoding of [`kv::layout`](crate::kv::layout)'s stream
/// metadata); annals-postgres keeps it as a row.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default, Serialize, Deserialize)]
pub struct StreamMeta {
    /// The version the next event will get (the last version + 1).
    pub next_version: u64,
    /// Events with a lower version are dead: truncated or deleted.
    pub floor: u64,
    /// The first version since the stream was last (re)created.
    pub created: u64,
    /// Whether the stream is deleted (it then does not exist).
    pub deleted: bool,
}

impl StreamMeta {
    /// The last version, if the stream exists.
    pub fn last_version(&self) -> Option<Version> {
        if self.deleted || self.next_version == 0 {
            None
        } else {
            Some(Version(self.next_version - 1))
        }
    }

    /// The metadata an append starts from: the stream's own, a fresh one
    /// for a new stream, and for a deleted stream a recreated one whose
    /// numbering continues where it was (\[S4\]).
    pub fn for_append(meta: Option<StreamMeta>) -> StreamMeta {
        match meta {
            Some(m) if !m.deleted => m,
            Some(m) => StreamMeta {
                deleted: false,
                created: m.next_version,
                floor: m.next_version,
                next_version: m.next_version,
            },
            None => StreamMeta::default(),
        }
    }

    /// Whether the event at `version` is readable.
    pub fn is_readable(&self, version: u64) -> bool {
        !self.deleted && version >= self.floor && version < self.next_version
    }
}

/// `n` events as the numbers of versions and positions count them.
fn count(n: usize) -> u64 {
    u64::try_from(n).unwrap_or(u64::MAX)
}

/// The last version of a stream in state `meta` (`None`: it does not exist).
fn last_version(meta: Option<StreamMeta>) -> Option<Version> {
    meta.and_then(|m| m.last_version())
}

/// \[A3\]: `Ok` when `expected` holds for `stream` in state `meta` (`None`:
/// never written), else the [`Error::WrongExpectedVersion`] naming both.
pub fn check_expected(
    stream: &StreamId,
    expected: ExpectedVersion,
    meta: Option<StreamMeta>,
) -> Result<()> {
    let actual = last_version(meta);
    if expected.is_satisfied_by(actual) {
        Ok(())
    } else {
        Err(Error::wrong_version(stream, expected, actual))
    }
}

/// The first position an append condition is about (\[A8\]); `None`: none
/// can be (its `after` is the last position there is).
pub fn condition_start(condition: &AppendCondition) -> Option<Position> {
    let after = condition.after.unwrap_or(Position(0));
    after.0.checked_add(1).map(Position)
}

/// What an append comes to once its stream's state and its condition are
/// known.
#[derive(Debug)]
pub enum AppendDecision {
    /// Write it.
    Write,
    /// It is refused with `error`, unless it is the retry of an append
    /// that already committed (\[A5\]): look for that one where `retry`
    /// says, in its order, and answer its result if found.
    Refused {
        /// The answer when no earlier copy is found.
        error: Error,
        /// Where an earlier copy may be.
        retry: Retry,
    },
}

/// Where the earlier copy of a refused append may be (\[A5\]), in the order
/// to look.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Retry {
    /// Right after the version the append expected: these versions, first
    /// and last (check them with [`replayed`]).
    pub versions: Option<(u64, u64)>,
    /// Right after the condition's `after`: the first events matching its
    /// query (check them with [`replayed_by_condition`]).
    pub by_condition: bool,
}

/// \[A3\], \[A8\], \[A5\]: whether `append` is written, given its stream's
/// state `meta`; `condition_fails` answers whether an event matching its
/// condition lies after the condition's `after` (asked only when the
/// expectation holds). An aux condition (\[X2\]) is checked after a
/// `Write` ([`check_aux`]).
pub fn decide_append(
    append: &Append,
    meta: Option<StreamMeta>,
    condition_fails: impl FnOnce() -> Result<bool>,
) -> Result<AppendDecision> {
    if let Err(error) = check_expected(&append.stream, append.expected, meta) {
        return Ok(AppendDecision::Refused {
            error,
            retry: Retry {
                versions: replay_versions(append.expected, meta, append.events.len()),
                by_condition: append.condition.is_some(),
            },
        });
    }
    match &append.condition {
        Some(condition) if condition_fails()? => Ok(AppendDecision::Refused {
            error: condition.failure(),
            retry: Retry {
                versions: None,
                by_condition: true,
            },
        }),
        _ => Ok(AppendDecision::Write),
    }
}

/// \[A6\], \[A3\], \[A8\]: `Ok` when every part of `batch` (whose streams are
/// in states `metas`, in the order of its parts) meets its expectation and
/// its condition holds. A batch is never a retry: no replay.
pub fn check_batch(
    batch: &Batch,
    metas: &[Option<StreamMeta>],
    condition_fails: impl FnOnce() -> Result<bool>,
) -> Result<()> {
    if metas.len() != batch.parts.len() {
        // A caller's mistake, not the user's: no part may go unchecked.
        return Err(Error::backend(
            format!(
                "checking a batch: {} stream states for a batch of {} parts",
                metas.len(),
                batch.parts.len()
            ),
            "a writer gave check_batch the wrong number of stream states",
        ));
    }
    for (i, (part, meta)) in batch.parts.iter().zip(metas).enumerate() {
        check_expected(&part.stream, part.expected, *meta).map_err(|e| Error::in_part(i, e))?;
    }
    match &batch.condition {
        Some(condition) if condition_fails()? => Err(condition.failure()),
        _ => Ok(()),
    }
}

/// \[A5\] for `NoStream` and `Exact(v)`: the versions the earlier copy of an
/// append of `n` events expecting `expected` would have, if they are all
/// readable in state `meta`.
pub fn replay_versions(
    expected: ExpectedVersion,
    meta: Option<StreamMeta>,
    n: usize,
) -> Option<(u64, u64)> {
    let meta = meta.filter(|m| !m.deleted)?;
    let first = match expected {
        ExpectedVersion::NoStream => meta.created,
        ExpectedVersion::Exact(v) => v.0.checked_add(1)?,
        ExpectedVersion::Any | ExpectedVersion::StreamExists => return None,
    };
    let last = first.checked_add(count(n).checked_sub(1)?)?;
    (meta.is_readable(first) && meta.is_readable(last)).then_some((first, last))
}

/// \[A5\]: the result of the earlier copy of an append of `events` when
/// `found` — read from version `first` of its stream — are exactly those
/// events: as many, the same ids in the same order, at consecutive versions.
pub fn replayed(first: u64, events: &[NewEvent], found: &[RecordedEvent]) -> Option<AppendResult> {
    // Versions compared by their distance from `first`: counting up from
    // it could pass u64::MAX.
    let same = found.len() == events.len()
        && found.iter().zip(events).enumerate().all(|(i, (e, new))| {
            e.event_id == new.event_id && e.stream_version.0.checked_sub(first) == Some(count(i))
        });
    if same { result_of(found) } else { None }
}

/// \[A5\] for a conditional append to `stream`: the result of its earlier
/// copy when `found` — the first events after the condition's `after`
/// matching its query, at most one more than `events` — are exactly its
/// own events: the condition fails only because of them.
pub fn replayed_by_condition(
    stream: &StreamId,
    events: &[NewEvent],
    found: &[RecordedEvent],
) -> Option<AppendResult> {
    let own = found.len() == events.len()
        && found
            .iter()
            .zip(events)
            .all(|(e, new)| e.event_id == new.event_id && e.stream_id == *stream);
    if own { result_of(found) } else { None }
}

/// The result of an append that wrote `events` (`None` when empty).
fn result_of(events: &[RecordedEvent]) -> Option<AppendResult> {
    let (first, last) = (events.first()?, events.last()?);
    Some(AppendResult {
        first_version: first.stream_version,
        last_version: last.stream_version,
        first_position: first.position,
        last_position: last.position,
    })
}

/// What looking for the earlier copy of an append found.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Replay {
    /// It: its result is the answer.
    Found(AppendResult),
    /// No copy there.
    NotFound,
    /// The events to compare may be the writer's own uncommitted ones:
    /// commit what it has, then look again.
    FlushFirst,
}

/// \[X2\]: `Ok` when the condition of every write in `writes` holds, given
/// `current`, the value of a key as the writer sees it (asked only for
/// conditional writes).
pub fn check_aux<'v>(
    writes: &[AuxWrite],
    mut current: impl FnMut(&[u8]) -> Result<Option<Cow<'v, [u8]>>>,
) -> Result<()> {
    for w in writes {
        if w.condition != AuxCondition::None {
            w.check_condition(current(&w.key)?.as_deref())?;
        }
    }
    Ok(())
}

/// \[S4\]: the state of `stream` (now in state `meta`) once deleted, if
/// `expected` lets it be.
pub fn delete(
    stream: &StreamId,
    expected: ExpectedVersion,
    meta: Option<StreamMeta>,
) -> Result<StreamMeta> {
    let actual = last_version(meta);
    let Some(mut meta) = meta.filter(|_| actual.is_some()) else {
        return Err(match expected {
            ExpectedVersion::Any | ExpectedVersion::NoStream => {
                Error::StreamNotFound(stream.clone())
            }
            _ => Error::wrong_version(stream, expected, None),
        });
    };
    check_expected(stream, expected, Some(meta))?;
    meta.deleted = true;
    meta.floor = meta.next_version;
    Ok(meta)
}

/// \[S3\]: the state of `stream` (now in state `meta`) once its events below
/// `before` are truncated; `None` when that changes nothing.
pub fn truncate(
    stream: &StreamId,
    before: Version,
    meta: Option<StreamMeta>,
) -> Result<Option<StreamMeta>> {
    let mut meta = match meta {
        Some(m) if !m.deleted => m,
        _ => return Err(Error::StreamNotFound(stream.clone())),
    };
    let floor = before.0.min(meta.next_version);
    if floor > meta.floor {
        meta.floor = floor;
        Ok(Some(meta))
    } else {
        Ok(None)
    }
}

/// An append's place: its stream's new state and what it answers.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Planned {
    /// The stream's state after the append.
    pub meta: StreamMeta,
    /// Its versions and positions.
    pub result: AppendResult,
}

impl Planned {
    /// This place if every version and position in it, and the stream's
    /// next version, are at most `max`, else why not: for a backend whose numbers are narrower than u64
    /// (PostgreSQL's bigint: `i64::MAX`), which must refuse a number it
    /// cannot store rather than store another.
    pub fn within(self, max: u64) -> std::result::Result<Planned, NoRoom> {
        let AppendResult {
            first_version,
            last_version,
            first_position,
            last_position,
        } = self.result;
        let n = last_position
            .0
            .saturating_sub(first_position.0)
            .saturating_add(1);
        if last_position.0 > max {
            Err(NoRoom::Positions {
                after: first_position.0.saturating_sub(1),
                n,
            })
        } else if last_version.0 > max || self.meta.next_version > max {
            Err(NoRoom::Versions {
                next: first_version.0,
                n,
            })
        } else {
            Ok(self)
        }
    }
}

/// Why an append has no place: a number at its end. Numbers come from
/// stored state, so this is damage.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum NoRoom {
    /// The log is at position `after`: no room for `n` more events.
    Positions {
        /// The last position.
        after: u64,
        /// The events to add.
        n: u64,
    },
    /// The stream's next version is `next`: no room for `n` more events.
    Versions {
        /// The stream's next version.
        next: u64,
        /// The events to add.
        n: u64,
    },
}

impl NoRoom {
    /// The [`Error::Corruption`] at `at` (where the store keeps the number)
    /// saying so about `stream`.
    pub fn error(self, stream: &StreamId, at: CorruptionAt) -> Error {
        let message = match self {
            NoRoom::Positions { after, n } => format!(
                "store metadata: the log is at position {after}, which leaves no position \
                 for {n} more events"
            ),
            NoRoom::Versions { next, n } => format!(
                "metadata of stream {stream}: its next version is {next}, which leaves no \
                 version for {n} more events"
            ),
        };
        Error::corruption(at, message)
    }
}

/// \[A1\], \[S4\]: the place of `n` events (at least one) appended to
/// a stream in state `meta` when the log's last position is `after`: the
/// next versions of the stream (recreated if deleted) and the next
/// positions.
pub fn plan_append(
    meta: Option<StreamMeta>,
    after: u64,
    n: usize,
) -> std::result::Result<Planned, NoRoom> {
    let n = count(n);
    let mut meta = StreamMeta::for_append(meta);
    let (first_position, last_position) = match (after.checked_add(1), after.checked_add(n)) {
        (Some(first), Some(last)) if n > 0 => (first, last),
        _ => return Err(NoRoom::Positions { after, n }),
    };
    let first_version = meta.next_version;
    let next_version = first_version.checked_add(n).ok_or(NoRoom::Versions {
        next: first_version,
        n,
    })?;
    meta.next_version = next_version;
    Ok(Planned {
        meta,
        result: AppendResult {
            first_version: Version(first_version),
            last_version: Version(next_version - 1),
            first_position: Position(first_position),
            last_position: Position(last_position),
        },
    })
}

/// \[A6\]: the places of a batch's parts — each its stream's state and its
/// number of events, in the batch's order — when the log's last position is
/// `after`: each part right after the one before. All or none: a part with
/// no room fails the batch, with its index.
pub fn plan_batch(
    parts: impl IntoIterator<Item = (Option<StreamMeta>, usize)>,
    mut after: u64,
) -> std::result::Result<Vec<Planned>, (usize, NoRoom)> {
    parts
        .into_iter()
        .enumerate()
        .map(|(i, (meta, n))| {
            let planned = plan_append(meta, after, n).map_err(|no_room| (i, no_room))?;
            after = planned.result.last_position.0;
            Ok(planned)
        })
        .collect()
}

#[cfg(test)]
mod tests;
