//! Small helpers the cases share: building events, reading a whole store,
//! checking errors, and capturing everything a store answers so two moments
//! can be compared.
//!
//! Backend crates may use them in their own tests too.

use std::fmt::{self, Debug, Display};
use std::panic::Location;
use std::sync::Arc;

use annals_core::{
    AppendCondition, Capabilities, Direction, Error, ExpectedVersion, FailedCondition,
    InvalidReason, Limit, LogBackend, NewEvent, Position, Query, QueryItem, RecordedEvent, Result,
    StoreConfig, StreamId, StreamInfo, Uuid, Version, show_bytes,
};

/// A store under test.
pub type Store = Arc<dyn LogBackend>;

/// Why a case failed: a message and where it was raised.
///
/// Any displayable error converts into it, so `?` works on store calls;
/// the location is the `?` (or the helper's caller).
pub struct Failure {
    message: String,
}

impl Failure {
    /// A failure with this message, located at the caller.
    #[track_caller]
    pub fn new(message: impl Display) -> Self {
        Failure {
            message: format!("{message} (at {})", Location::caller()),
        }
    }

    /// The message, with its location.
    pub fn into_message(self) -> String {
        self.message
    }
}

impl<E: Display> From<E> for Failure {
    #[track_caller]
    fn from(error: E) -> Self {
        Failure::new(error)
    }
}

impl Debug for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

/// What a case returns. Cases may also fail by panicking (`assert!`).
pub type CaseResult = std::result::Result<(), Failure>;

// ---------------------------------------------------------------- building

/// A stream id that is known to be valid.
#[track_caller]
pub fn sid(name: &str) -> StreamId {
    StreamId::new(name).unwrap()
}

/// One event of type `event_type` with a small payload.
pub fn ev(event_type: &str) -> NewEvent {
    NewEvent::builder(event_type)
        .data(format!("{event_type} data").into_bytes())
        .build()
}

/// `n` events of type `TestEvent`, each with its own id and payload.
pub fn events(n: usize) -> Vec<NewEvent> {
    (0..n)
        .map(|i| {
            NewEvent::builder("TestEvent")
                .data(format!("event {i}").into_bytes())
                .metadata(format!("meta {i}").into_bytes())
                .build()
        })
        .collect()
}

/// One event of type `event_type` carrying `tags`, in that order.
pub fn tagged(event_type: &str, tags: &[&str]) -> NewEvent {
    NewEvent::builder(event_type)
        .data(format!("{event_type} {tags:?}").into_bytes())
        .tags(tags.iter().copied())
        .build()
}

/// One event whose `data` has `bytes` bytes (and no metadata).
pub fn sized(bytes: usize) -> NewEvent {
    NewEvent::builder("Sized").data(vec![0xA5; bytes]).build()
}

/// `len` pseudo-random (incompressible) bytes from `seed`.
pub fn noise(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// A query of the events carrying `tag`.
pub fn tag_query(tag: &str) -> Query {
    Query::single(QueryItem::new().with_tag(tag))
}

/// The default configuration.
pub fn default_config() -> StoreConfig {
    StoreConfig::default()
}

/// Small limits, to test them cheaply: `max_event_bytes` 1024,
/// `max_append_events` 10, `max_append_bytes` 4096, `max_read_count` 100.
pub fn small_config() -> StoreConfig {
    let mut config = StoreConfig::default();
    config.limits.max_event_bytes = 1024;
    config.limits.max_append_events = 10;
    config.limits.max_append_bytes = 4096;
    config.limits.max_read_count = 100;
    config
}

// ---------------------------------------------------------------- reading

/// The page size the whole-store readers use.
pub fn page_size(store: &Store) -> usize {
    store.limits().max_read_count.min(1000)
}

/// Every readable event, in log order (paging `read_all` forward).
pub async fn all_events(store: &Store) -> Result<Vec<RecordedEvent>> {
    query_events_from(store, None).await
}

/// Every readable event matching `query`, in log order.
pub async fn query_events(store: &Store, query: &Query) -> Result<Vec<RecordedEvent>> {
    query_events_from(store, Some(query)).await
}

async fn query_events_from(store: &Store, query: Option<&Query>) -> Result<Vec<RecordedEvent>> {
    let count = page_size(store);
    let mut out: Vec<RecordedEvent> = Vec::new();
    let mut from = Position(1);
    loop {
        let page = store
            .read_all(from, count, Direction::Forward, query)
            .await?;
        let n = page.events.len();
        out.extend(page.events);
        match out.last() {
            Some(last) if n == count => from = last.position.next(),
            _ => return Ok(out),
        }
    }
}

/// Every readable event of `stream`, ascending (paging `read_stream`).
pub async fn stream_events(store: &Store, stream: &StreamId) -> Result<Vec<RecordedEvent>> {
    let count = page_size(store);
    let mut out: Vec<RecordedEvent> = Vec::new();
    let mut from = Version(0);
    loop {
        let page = store
            .read_stream(stream, from, count, Direction::Forward)
            .await?;
        let n = page.events.len();
        out.extend(page.events);
        match out.last() {
            Some(last) if n == count => from = Version(last.stream_version.0 + 1),
            _ => return Ok(out),
        }
    }
}

/// The store's head, as a `read_all` page reports it.
pub async fn head(store: &Store) -> Result<Position> {
    Ok(store
        .read_all(Position::MAX, 1, Direction::Backward, None)
        .await?
        .head)
}

/// Every listed stream (paging `list_streams`).
pub async fn all_streams(store: &Store) -> Result<Vec<StreamInfo>> {
    let mut out: Vec<StreamInfo> = Vec::new();
    loop {
        let page = store.list_streams(out.last().map(|s| &s.id), 100).await?;
        let n = page.len();
        out.extend(page);
        if n < 100 {
            return Ok(out);
        }
    }
}

/// Every aux entry (paging `aux_scan` over the empty prefix).
pub async fn all_aux(store: &Store) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
    let mut out: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
    loop {
        let after = out.last().map(|(k, _)| k.clone());
        let page = store.aux_scan(b"", after.as_deref(), 100).await?;
        let n = page.len();
        out.extend(page);
        if n < 100 {
            return Ok(out);
        }
    }
}

/// The ids of `events`.
pub fn ids(events: &[RecordedEvent]) -> Vec<Uuid> {
    events.iter().map(|e| e.event_id).collect()
}

/// The ids of new events.
pub fn new_ids(events: &[NewEvent]) -> Vec<Uuid> {
    events.iter().map(|e| e.event_id).collect()
}

/// The stream versions of `events`, as numbers.
pub fn versions(events: &[RecordedEvent]) -> Vec<u64> {
    events.iter().map(|e| e.stream_version.0).collect()
}

/// The positions of `events`, as numbers.
pub fn positions(events: &[RecordedEvent]) -> Vec<u64> {
    events.iter().map(|e| e.position.0).collect()
}

/// Checks that `recorded` holds `new` byte for byte (\[D3\]).
#[track_caller]
pub fn assert_recorded(new: &NewEvent, recorded: &RecordedEvent) {
    assert_eq!(recorded.event_id, new.event_id, "event id");
    assert_eq!(recorded.event_type, new.event_type, "event type");
    assert_eq!(recorded.data, new.data, "data of event {}", new.event_id);
    assert_eq!(
        recorded.metadata, new.metadata,
        "metadata of event {}",
        new.event_id
    );
    assert_eq!(recorded.tags, new.tags, "tags of event {}", new.event_id);
}

// ---------------------------------------------------------------- errors

/// The error of `result`; panics (failing the case) when it is `Ok`.
#[track_caller]
pub fn expect_err<T: Debug>(result: Result<T>, what: &str) -> Error {
    match result {
        Ok(v) => panic!("{what}: expected an error, got Ok({v:?})"),
        Err(e) => e,
    }
}

/// Checks that `result` is `InvalidInput` (possibly inside `BatchPart`).
#[track_caller]
pub fn assert_invalid<T: Debug>(result: Result<T>, what: &str) -> Error {
    let e = expect_err(result, what);
    assert!(
        matches!(e.root(), Error::InvalidInput { .. }),
        "{what}: expected InvalidInput, got {e:?}"
    );
    e
}

/// Checks that `result` is `WrongExpectedVersion` (possibly inside
/// `BatchPart`) for `stream`, `expected`, with the real version `actual`.
#[track_caller]
pub fn assert_wrong_version<T: Debug>(
    result: Result<T>,
    stream: &StreamId,
    expected: ExpectedVersion,
    actual: Option<u64>,
) -> Error {
    let what = format!("{expected} on {stream}");
    let e = expect_err(result, &what);
    match e.root() {
        Error::WrongExpectedVersion {
            stream: s,
            expected: x,
            actual: a,
        } => {
            assert_eq!(s, stream, "{what}: stream of WrongExpectedVersion");
            assert_eq!(*x, expected, "{what}: expected of WrongExpectedVersion");
            assert_eq!(
                *a,
                actual.map(Version),
                "{what}: actual version of WrongExpectedVersion"
            );
        }
        _ => panic!("{what}: expected WrongExpectedVersion, got {e:?}"),
    }
    e
}

/// Checks that `result` is `StreamNotFound(stream)`.
#[track_caller]
pub fn assert_not_found<T: Debug>(result: Result<T>, stream: &StreamId) {
    let e = expect_err(result, &format!("on missing stream {stream}"));
    match e.root() {
        Error::StreamNotFound(s) => assert_eq!(s, stream, "stream of StreamNotFound"),
        _ => panic!("stream {stream}: expected StreamNotFound, got {e:?}"),
    }
}

/// Checks that `result` is `AppendConditionFailed` (possibly inside
/// `BatchPart`); returns its message.
#[track_caller]
pub fn assert_condition_failed<T: Debug>(result: Result<T>, what: &str) -> String {
    let e = expect_err(result, what);
    match e.root() {
        Error::AppendConditionFailed { message, .. } => message.clone(),
        _ => panic!("{what}: expected AppendConditionFailed, got {e:?}"),
    }
}

/// Checks that `result` is `AppendConditionFailed` for the DCB condition
/// `condition` (\[A8\]): the error carries it, query and `after`.
#[track_caller]
pub fn assert_events_condition_failed<T: Debug>(
    result: Result<T>,
    condition: &AppendCondition,
    what: &str,
) {
    let e = expect_err(result, what);
    match e.failed_condition() {
        Some(FailedCondition::Events(failed)) => {
            assert_eq!(failed, condition, "{what}: the failed condition")
        }
        _ => panic!("{what}: expected AppendConditionFailed of the DCB condition, got {e:?}"),
    }
}

/// Checks that `result` is `AppendConditionFailed` naming the aux `key`
/// (\[X2\]), in its field and in its message.
#[track_caller]
pub fn assert_aux_condition_failed<T: Debug>(result: Result<T>, key: &[u8], what: &str) {
    let e = expect_err(result, what);
    match e.failed_condition() {
        Some(FailedCondition::AuxKey(failed)) => {
            assert_eq!(
                failed.as_slice(),
                key,
                "{what}: the key of the failed condition"
            )
        }
        _ => panic!("{what}: expected AppendConditionFailed of an aux key, got {e:?}"),
    }
    let shown = String::from_utf8_lossy(key);
    assert!(
        e.to_string().contains(shown.as_ref()),
        "{what}: the message does not name the key {shown:?}: {e}"
    );
}

/// Checks that `result` is `InvalidInput` (possibly inside `BatchPart`)
/// for `limit`, naming the limit's value `max` and the value given
/// `actual`, in its fields and in its message.
#[track_caller]
pub fn assert_limit<T: Debug>(
    result: Result<T>,
    limit: Limit,
    max: usize,
    actual: usize,
    what: &str,
) -> Error {
    let e = expect_err(result, what);
    assert_eq!(
        e.invalid_reason(),
        Some(InvalidReason::Limit { limit, max, actual }),
        "{what}: expected InvalidInput for {limit:?} (max {max}, given {actual}), got {e:?}"
    );
    let message = e.to_string();
    assert!(
        message.contains(&max.to_string()) && message.contains(&actual.to_string()),
        "{what}: the message does not name the limit {max} and the value {actual}: {message}"
    );
    e
}

/// Checks that `e` is `BatchPart` naming `part` (\[A6\]).
#[track_caller]
pub fn assert_part(e: &Error, part: usize, what: &str) {
    assert_eq!(
        e.part(),
        Some(part),
        "{what}: expected the error to name batch part {part}, got {e:?}"
    );
}

/// Checks that `result` is `Closed`.
#[track_caller]
pub fn assert_closed<T: Debug>(result: Result<T>, what: &str) {
    let e = expect_err(result, what);
    assert!(
        matches!(e.root(), Error::Closed),
        "{what} after close: expected Closed, got {e:?}"
    );
}

/// Checks that `result` is `Unsupported`.
#[track_caller]
pub fn assert_unsupported<T: Debug>(result: Result<T>, what: &str) {
    let e = expect_err(result, what);
    assert!(
        matches!(e.root(), Error::Unsupported(_)),
        "{what}: expected Unsupported, got {e:?}"
    );
}

// ---------------------------------------------------------------- state

/// Everything a store answers about a set of streams and tags, to compare
/// two moments (before and after a failed write, a compact, a reopen).
#[derive(Debug, PartialEq, Eq)]
pub struct StoreState {
    /// Every readable event (`read_all`).
    pub events: Vec<RecordedEvent>,
    /// The head of a `read_all` page.
    pub head: Position,
    /// `has_events`.
    pub has_events: bool,
    /// `list_streams`, all pages.
    pub streams: Vec<StreamInfo>,
    /// Per stream: `stream_exists`, `stream_version`, the forward and a
    /// short backward read (errors as their messages).
    pub per_stream: Vec<StreamState>,
    /// Per tag: the query read of that tag.
    pub per_tag: Vec<(String, Vec<RecordedEvent>)>,
    /// Every aux entry, when the backend has the aux space.
    pub aux: Option<Vec<(Vec<u8>, Vec<u8>)>>,
}

/// What a store answers about one stream.
#[derive(Debug, PartialEq, Eq)]
pub struct StreamState {
    /// The stream.
    pub id: StreamId,
    /// `stream_exists`.
    pub exists: bool,
    /// `stream_version`.
    pub version: std::result::Result<Version, String>,
    /// Every event, forward.
    pub forward: std::result::Result<Vec<RecordedEvent>, String>,
    /// The last three, backward.
    pub backward: std::result::Result<Vec<RecordedEvent>, String>,
}

impl StoreState {
    /// Captures the store: the streams it lists plus `streams`, and the
    /// query reads of `tags`.
    pub async fn capture<'a>(
        store: &Store,
        streams: impl IntoIterator<Item = &'a StreamId>,
        tags: &[&str],
    ) -> Result<Self> {
        let streams: Vec<StreamId> = streams.into_iter().cloned().collect();
        let events = all_events(store).await?;
        let head = head(store).await?;
        let has_events = store.has_events().await?;
        let listed = all_streams(store).await?;
        let mut ids: Vec<StreamId> = listed.iter().map(|s| s.id.clone()).collect();
        for s in &streams {
            if !ids.contains(s) {
                ids.push(s.clone());
            }
        }
        let mut per_stream = Vec::with_capacity(ids.len());
        for id in ids {
            let exists = store.stream_exists(&id).await?;
            let version = store.stream_version(&id).await.map_err(|e| e.to_string());
            let forward = stream_events(store, &id).await.map_err(|e| e.to_string());
            let backward = store
                .read_stream(&id, Version::MAX, 3, Direction::Backward)
                .await
                .map(|p| p.events)
                .map_err(|e| e.to_string());
            per_stream.push(StreamState {
                id,
                exists,
                version,
                forward,
                backward,
            });
        }
        let mut per_tag = Vec::with_capacity(tags.len());
        for tag in tags {
            per_tag.push((tag.to_string(), query_events(store, &tag_query(tag)).await?));
        }
        let aux = if store.capabilities().aux {
            Some(all_aux(store).await?)
        } else {
            None
        };
        Ok(StoreState {
            events,
            head,
            has_events,
            streams: listed,
            per_stream,
            per_tag,
            aux,
        })
    }

    /// Panics with the first difference from `other`, naming `context`.
    /// Messages stay short: events are summarised, never dumped whole.
    #[track_caller]
    pub fn assert_same(&self, other: &StoreState, context: &str) {
        assert_same_events(&self.events, &other.events, &format!("{context}: read_all"));
        assert_eq!(self.head, other.head, "{context}: head");
        assert_eq!(self.has_events, other.has_events, "{context}: has_events");
        assert_eq!(self.streams, other.streams, "{context}: list_streams");
        assert_eq!(
            self.per_stream.len(),
            other.per_stream.len(),
            "{context}: number of streams"
        );
        for (a, b) in self.per_stream.iter().zip(&other.per_stream) {
            let what = format!("{context}: stream {}", a.id);
            assert_eq!(a.id, b.id, "{what}: id");
            assert_eq!(a.exists, b.exists, "{what}: stream_exists");
            assert_eq!(a.version, b.version, "{what}: stream_version");
            assert_same_read(&a.forward, &b.forward, &format!("{what}: forward read"));
            assert_same_read(&a.backward, &b.backward, &format!("{what}: backward read"));
        }
        assert_eq!(self.per_tag.len(), other.per_tag.len(), "{context}: tags");
        for (a, b) in self.per_tag.iter().zip(&other.per_tag) {
            assert_same_events(&a.1, &b.1, &format!("{context}: query of tag {}", a.0));
        }
        match (&self.aux, &other.aux) {
            (Some(a), Some(b)) => {
                let keys = |v: &[(Vec<u8>, Vec<u8>)]| -> Vec<String> {
                    v.iter().map(|(k, _)| show_bytes(k)).collect()
                };
                assert_eq!(keys(a), keys(b), "{context}: aux keys");
                for ((k, x), (_, y)) in a.iter().zip(b) {
                    assert!(
                        x == y,
                        "{context}: aux value of {} differs ({} and {} bytes)",
                        show_bytes(k),
                        x.len(),
                        y.len()
                    );
                }
            }
            (a, b) => assert_eq!(a.is_some(), b.is_some(), "{context}: aux space"),
        }
    }
}

/// A one-line summary of an event, for failure messages.
pub fn summary(e: &RecordedEvent) -> String {
    format!(
        "{}@{} at position {} (id {}, type {:?}, {} data bytes, {} metadata bytes, tags {:?}, recorded at {})",
        e.stream_id,
        e.stream_version,
        e.position,
        e.event_id,
        e.event_type,
        e.data.len(),
        e.metadata.len(),
        e.tags,
        e.recorded_at.0
    )
}

/// Checks two event lists are equal; on a difference, panics naming the
/// first differing event and field (never dumping payloads).
#[track_caller]
pub fn assert_same_events(a: &[RecordedEvent], b: &[RecordedEvent], context: &str) {
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        if x == y {
            continue;
        }
        let fields: Vec<&str> = [
            ("stream_id", x.stream_id != y.stream_id),
            ("stream_version", x.stream_version != y.stream_version),
            ("position", x.position != y.position),
            ("recorded_at", x.recorded_at != y.recorded_at),
            ("event_id", x.event_id != y.event_id),
            ("event_type", x.event_type != y.event_type),
            ("data", x.data != y.data),
            ("metadata", x.metadata != y.metadata),
            ("tags", x.tags != y.tags),
        ]
        .into_iter()
        .filter_map(|(name, differs)| differs.then_some(name))
        .collect();
        panic!(
            "{context}: event #{i} differs in {fields:?}:\n  {}\n  {}",
            summary(x),
            summary(y)
        );
    }
    if a.len() != b.len() {
        let extra = if a.len() > b.len() {
            &a[b.len()]
        } else {
            &b[a.len()]
        };
        panic!(
            "{context}: {} events and {} events; the first unmatched is {}",
            a.len(),
            b.len(),
            summary(extra)
        );
    }
}

#[track_caller]
fn assert_same_read(
    a: &std::result::Result<Vec<RecordedEvent>, String>,
    b: &std::result::Result<Vec<RecordedEvent>, String>,
    context: &str,
) {
    match (a, b) {
        (Ok(a), Ok(b)) => assert_same_events(a, b, context),
        (Err(a), Err(b)) => assert_eq!(a, b, "{context}: errors"),
        (a, b) => panic!(
            "{context}: {} and {}",
            a.as_ref()
                .map_or_else(|e| format!("error {e}"), |v| format!("{} events", v.len())),
            b.as_ref()
                .map_or_else(|e| format!("error {e}"), |v| format!("{} events", v.len())),
        ),
    }
}

/// The streams [`fill_varied`] touches (the last one is never written).
pub fn varied_streams() -> Vec<StreamId> {
    ["v-0", "v-1", "v-2", "v-3", "v-4", "v-never"]
        .into_iter()
        .map(sid)
        .collect()
}

/// The tags [`fill_varied`] puts on events.
pub const VARIED_TAGS: [&str; 4] = ["t0", "t1", "t2", "all"];

/// Fills a store with a bit of everything it offers: interleaved streams
/// with types, tags, binary data; a truncated and a fully truncated stream
/// (with `truncate`), a deleted and a deleted-then-recreated stream (with
/// `delete`), aux entries (with `aux`).
pub async fn fill_varied(store: &Store, caps: &Capabilities) -> Result<()> {
    let streams = varied_streams();
    let types = ["Opened", "Changed", "Closed"];
    for round in 0..3u8 {
        for (i, s) in streams[..5].iter().enumerate() {
            let batch: Vec<NewEvent> = (0..2u8)
                .map(|k| {
                    NewEvent::builder(types[(i + usize::from(k)) % 3])
                        .data(vec![round, k, 0, 0xFF, i as u8])
                        .metadata(format!("round {round}").into_bytes())
                        .tags([VARIED_TAGS[i % 3], "all"])
                        .build()
                })
                .collect();
            store.append(s, ExpectedVersion::Any, batch).await?;
        }
    }
    if caps.truncate {
        store.truncate_stream(&streams[1], Version(3)).await?;
        store.truncate_stream(&streams[2], Version(100)).await?;
    }
    if caps.delete {
        store
            .delete_stream(&streams[3], ExpectedVersion::Any)
            .await?;
        store
            .delete_stream(&streams[4], ExpectedVersion::exact(5))
            .await?;
        store
            .append(&streams[4], ExpectedVersion::NoStream, events(2))
            .await?;
    }
    if caps.aux {
        store.aux_put(b"snapshot/v-0", &noise(1, 300)).await?;
        store.aux_put(b"checkpoint/proj", b"42").await?;
        store.aux_put(&[0, 0xFF, 7], b"binary key").await?;
    }
    store
        .append(
            &streams[0],
            ExpectedVersion::exact(5),
            vec![tagged("Late", &["t0"])],
        )
        .await?;
    Ok(())
}
