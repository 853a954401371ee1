//! Reads over one engine snapshot: the read paths of the store and the
//! checks of its writer share them.

use std::collections::HashMap;

use crate::backend::{Direction, Page, StreamInfo};
use crate::error::{Error, Result};
use crate::event::{Position, RecordedEvent, StreamId, Version};
use crate::expect::Query;
use crate::kv::codec::{self, EventDecoder, corrupt};
use crate::kv::engine::{KvSnapshot, Scan};
use crate::kv::layout::{self, StoreMeta, StreamMeta};

/// Where a read finds a stream's metadata: the snapshot (readers), or the
/// writer's round on top of it.
pub(crate) trait MetaSource {
    fn meta(&mut self, stream: &str) -> Result<Option<StreamMeta>>;
}

/// Stream metadata read from a snapshot, cached for the length of a read.
pub(crate) struct SnapshotMetas<'s, S> {
    snap: &'s S,
    cache: HashMap<String, Option<StreamMeta>>,
    /// The last stream asked for: consecutive events mostly share a stream,
    /// and comparing its id costs less than hashing it.
    last: Option<(String, Option<StreamMeta>)>,
}

impl<'s, S: KvSnapshot> SnapshotMetas<'s, S> {
    pub(crate) fn new(snap: &'s S) -> Self {
        SnapshotMetas {
            snap,
            cache: HashMap::new(),
            last: None,
        }
    }
}

impl<S: KvSnapshot> MetaSource for SnapshotMetas<'_, S> {
    fn meta(&mut self, stream: &str) -> Result<Option<StreamMeta>> {
        if let Some((id, m)) = &self.last
            && id == stream
        {
            return Ok(*m);
        }
        let m = match self.cache.get(stream) {
            Some(m) => *m,
            None => {
                let m = stream_meta(self.snap, stream)?;
                self.cache.insert(stream.to_string(), m);
                m
            }
        };
        self.last = Some((stream.to_string(), m));
        Ok(m)
    }
}

/// The metadata of `stream` in `snap`.
pub(crate) fn stream_meta<S: KvSnapshot>(snap: &S, stream: &str) -> Result<Option<StreamMeta>> {
    let key = layout::stream_meta_key(stream);
    snap.get(&key)?.map(|v| codec::decode(&key, &v)).transpose()
}

/// The store's metadata in `snap` (the default for a new store).
pub(crate) fn store_meta<S: KvSnapshot>(snap: &S) -> Result<StoreMeta> {
    let key = layout::STORE_META_KEY;
    Ok(snap
        .get(key)?
        .map(|v| codec::decode(key, &v))
        .transpose()?
        .unwrap_or_default())
}

/// Whether `event` is readable according to `metas`.
fn is_readable(metas: &mut dyn MetaSource, event: &RecordedEvent) -> Result<bool> {
    Ok(metas
        .meta(event.stream_id.as_str())?
        .is_some_and(|m| m.is_readable(event.stream_version.0)))
}

/// The log record at `position`, if there is one, decoded by `decoder`.
pub(crate) fn event_at<S: KvSnapshot>(
    snap: &S,
    position: Position,
    decoder: &mut EventDecoder,
) -> Result<Option<RecordedEvent>> {
    let key = layout::log_key(position);
    snap.get(&key)?
        .map(|v| decoder.decode(&key, position, &v))
        .transpose()
}

/// A page of up to `count` events: room for all of them, up to a bound
/// (`count` is the caller's; the page fills as far as the log has events).
fn page_vec(count: usize) -> Vec<RecordedEvent> {
    Vec::with_capacity(count.min(1024))
}

/// Reads a stream (SPEC R1, R2).
pub(crate) fn read_stream<S: KvSnapshot>(
    snap: &S,
    stream: &StreamId,
    from: Version,
    count: usize,
    direction: Direction,
) -> Result<Page> {
    let head = Position(store_meta(snap)?.head);
    let meta = match stream_meta(snap, stream.as_str())? {
        Some(m) if !m.deleted => m,
        _ => return Err(Error::StreamNotFound(stream.clone())),
    };
    let Some(last) = meta.next_version.checked_sub(1) else {
        return Ok(Page {
            events: Vec::new(),
            head,
        });
    };
    let (lo, hi) = match direction {
        Direction::Forward => (from.0.max(meta.floor), last),
        Direction::Backward => (meta.floor, from.0.min(last)),
    };
    if lo > hi {
        return Ok(Page {
            events: Vec::new(),
            head,
        });
    }
    let mut events = page_vec(count);
    let mut decoder = EventDecoder::default();
    let prefix = layout::named_prefix(layout::STREAM_INDEX, stream.as_str());
    let (start, end) = layout::number_range(&prefix, lo, hi);
    snap.scan(&start, &end, direction, &mut |key, value| {
        let position = Position(codec::decode::<u64>(key, value)?);
        let event = event_at(snap, position, &mut decoder)?.ok_or_else(|| {
            corrupt(
                key,
                &format!("points at position {position}, which holds no event"),
            )
        })?;
        let version = layout::trailing_number(key).unwrap_or(u64::MAX);
        if event.stream_id != *stream || event.stream_version.0 != version {
            return Err(corrupt(
                key,
                &format!(
                    "points at position {position}, which holds {:?} version {}",
                    event.stream_id.as_str(),
                    event.stream_version
                ),
            ));
        }
        events.push(event);
        Ok(if events.len() >= count {
            Scan::Stop
        } else {
            Scan::Continue
        })
    })?;
    Ok(Page { events, head })
}

/// The positions `lo..=hi` a read from `from` in `direction` covers.
fn position_bounds(from: Position, direction: Direction) -> (u64, u64) {
    match direction {
        Direction::Forward => (from.0, u64::MAX),
        Direction::Backward => (0, from.0),
    }
}

/// Up to `count` readable events of the log from `from` in `direction`,
/// only those matching `query` when one is given (SPEC R3, R6). Pass a
/// [normalized](Query::normalized) query: its cost is then what its
/// distinct items cost.
pub(crate) fn scan_log<S: KvSnapshot>(
    snap: &S,
    metas: &mut dyn MetaSource,
    from: Position,
    count: usize,
    direction: Direction,
    query: Option<&Query>,
) -> Result<Vec<RecordedEvent>> {
    let (lo, hi) = position_bounds(from, direction);
    let query = match query {
        Some(q) if !q.matches_everything() => q,
        _ => return scan_whole_log(snap, metas, lo, hi, count, direction),
    };
    // Each distinct index range is walked once, keeping the events that
    // match the query; the page is the first `count` of their union. Once
    // `count` events are found, a later range is walked only up to the
    // last of them: nothing beyond it can enter the page.
    let mut found: Vec<RecordedEvent> = Vec::new();
    for (index, name) in index_ranges(query) {
        let (lo, hi) = match found.get(count.saturating_sub(1)) {
            Some(edge) if found.len() >= count => match direction {
                Direction::Forward => match edge.position.0.checked_sub(1) {
                    Some(before) => (lo, before),
                    None => continue,
                },
                Direction::Backward => match edge.position.0.checked_add(1) {
                    Some(after) => (after, hi),
                    None => continue,
                },
            },
            _ => (lo, hi),
        };
        if lo > hi {
            continue;
        }
        let range = IndexRange { index, name };
        scan_index(
            snap, metas, &range, query, lo, hi, count, direction, &mut found,
        )?;
        match direction {
            Direction::Forward => found.sort_by_key(|e| e.position),
            Direction::Backward => found.sort_by_key(|e| std::cmp::Reverse(e.position)),
        }
        found.dedup_by_key(|e| e.position);
        found.truncate(count);
    }
    Ok(found)
}

/// Whether a readable event matching `query` lies at `from` or after it
/// (an append condition, SPEC A8): stops at the first one found.
pub(crate) fn any_after<S: KvSnapshot>(
    snap: &S,
    metas: &mut dyn MetaSource,
    from: Position,
    query: &Query,
) -> Result<bool> {
    let (lo, hi) = position_bounds(from, Direction::Forward);
    if query.matches_everything() {
        return Ok(!scan_whole_log(snap, metas, lo, hi, 1, Direction::Forward)?.is_empty());
    }
    let mut found = Vec::new();
    for (index, name) in index_ranges(query) {
        let range = IndexRange { index, name };
        scan_index(
            snap,
            metas,
            &range,
            query,
            lo,
            hi,
            1,
            Direction::Forward,
            &mut found,
        )?;
        if !found.is_empty() {
            return Ok(true);
        }
    }
    Ok(false)
}

/// One index range a query walks: the entries of one tag or one type.
struct IndexRange<'q> {
    index: u8,
    name: &'q str,
}

/// The distinct index ranges that find every event `query` matches: for an
/// item with tags, one of its tags (one another item walks already, when
/// there is one); for an item without, each of its types.
fn index_ranges(query: &Query) -> Vec<(u8, &str)> {
    fn add<'q>(ranges: &mut Vec<(u8, &'q str)>, range: (u8, &'q str)) {
        if !ranges.contains(&range) {
            ranges.push(range);
        }
    }
    let mut ranges = Vec::new();
    for item in query.items.iter().filter(|i| i.tags.is_empty()) {
        for t in &item.types {
            add(&mut ranges, (layout::TYPE_INDEX, t.as_str()));
        }
    }
    for item in query.items.iter().filter(|i| !i.tags.is_empty()) {
        let walked = item
            .tags
            .iter()
            .find(|t| ranges.contains(&(layout::TAG_INDEX, t.as_str())));
        if let Some(tag) = walked.or(item.tags.first()) {
            add(&mut ranges, (layout::TAG_INDEX, tag.as_str()));
        }
    }
    ranges
}

fn scan_whole_log<S: KvSnapshot>(
    snap: &S,
    metas: &mut dyn MetaSource,
    lo: u64,
    hi: u64,
    count: usize,
    direction: Direction,
) -> Result<Vec<RecordedEvent>> {
    let mut events = page_vec(count);
    let mut decoder = EventDecoder::default();
    let (start, end) = layout::number_range(&[layout::LOG], lo, hi);
    snap.scan(&start, &end, direction, &mut |key, value| {
        let position = Position(layout::trailing_number(key).unwrap_or(0));
        let event = decoder.decode(key, position, value)?;
        if is_readable(metas, &event)? {
            events.push(event);
        }
        Ok(if events.len() >= count {
            Scan::Stop
        } else {
            Scan::Continue
        })
    })?;
    Ok(events)
}

/// Walks the entries of `range` between positions `lo..=hi`, pushing onto
/// `found` up to `count` readable events that match `query`.
#[allow(clippy::too_many_arguments)]
fn scan_index<S: KvSnapshot>(
    snap: &S,
    metas: &mut dyn MetaSource,
    range: &IndexRange<'_>,
    query: &Query,
    lo: u64,
    hi: u64,
    count: usize,
    direction: Direction,
    found: &mut Vec<RecordedEvent>,
) -> Result<()> {
    let prefix = layout::named_prefix(range.index, range.name);
    let (start, end) = layout::number_range(&prefix, lo, hi);
    let mut matched = 0;
    let mut decoder = EventDecoder::default();
    snap.scan(&start, &end, direction, &mut |key, value| {
        codec::unseal(key, value)?;
        let position = Position(layout::trailing_number(key).unwrap_or(0));
        let event = event_at(snap, position, &mut decoder)?
            .ok_or_else(|| corrupt(key, "points at a position that holds no event"))?;
        let indexed = if range.index == layout::TAG_INDEX {
            event.has_tag(range.name)
        } else {
            event.event_type == range.name
        };
        if !indexed {
            return Err(corrupt(key, "points at an event that does not carry it"));
        }
        if query.matches(&event) && is_readable(metas, &event)? {
            found.push(event);
            matched += 1;
        }
        Ok(if matched >= count {
            Scan::Stop
        } else {
            Scan::Continue
        })
    })
}

/// Existing streams after `after`, in byte order (SPEC S2).
pub(crate) fn list_streams<S: KvSnapshot>(
    snap: &S,
    after: Option<&StreamId>,
    limit: usize,
) -> Result<Vec<StreamInfo>> {
    let start = match after {
        Some(a) => {
            let mut k = layout::stream_meta_key(a.as_str());
            k.push(0);
            k
        }
        None => vec![layout::STREAM_META],
    };
    let end = vec![layout::STREAM_META + 1];
    let mut streams = Vec::new();
    snap.scan(&start, &end, Direction::Forward, &mut |key, value| {
        let meta: StreamMeta = codec::decode(key, value)?;
        if let Some(last_version) = meta.last_version() {
            let id = std::str::from_utf8(&key[1..])
                .ok()
                .and_then(|s| StreamId::new(s).ok())
                .ok_or_else(|| corrupt(key, "is not a valid stream id"))?;
            streams.push(StreamInfo { id, last_version });
        }
        Ok(if streams.len() >= limit {
            Scan::Stop
        } else {
            Scan::Continue
        })
    })?;
    Ok(streams)
}

/// The aux value at `key`.
pub(crate) fn aux_get<S: KvSnapshot>(snap: &S, key: &[u8]) -> Result<Option<Vec<u8>>> {
    let k = layout::aux_key(key);
    snap.get(&k)?
        .map(|v| codec::unseal(&k, &v).map(<[u8]>::to_vec))
        .transpose()
}

/// Aux entries under `prefix` after `after` (SPEC X1).
pub(crate) fn aux_scan<S: KvSnapshot>(
    snap: &S,
    prefix: &[u8],
    after: Option<&[u8]>,
    limit: usize,
) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
    let full_prefix = layout::aux_key(prefix);
    let end = layout::prefix_end(&full_prefix);
    let start = match after {
        Some(a) => {
            let mut k = layout::aux_key(a);
            k.push(0);
            k.max(full_prefix)
        }
        None => full_prefix,
    };
    let mut entries = Vec::new();
    if start >= end {
        return Ok(entries);
    }
    snap.scan(&start, &end, Direction::Forward, &mut |key, value| {
        let value = codec::unseal(key, value)?;
        entries.push((key[1..].to_vec(), value.to_vec()));
        Ok(if entries.len() >= limit {
            Scan::Stop
        } else {
            Scan::Continue
        })
    })?;
    Ok(entries)
}
