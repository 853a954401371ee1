//! A deterministic workload and a dump of everything a store lets one
//! read: what each backend's own persistence, crash and damage tests share.
//!
//! `populate` writes a varied store (appends to several streams, aux
//! entries, a truncation, a deletion, a recreated stream); `dump` reads it
//! back through every kind of read, so two dumps compare whole stores.

use std::path::Path;

use annals_core::{
    Direction, Error, ExpectedVersion, LogBackend, NewEvent, Position, RecordedEvent, Result,
    StreamId, StreamInfo, Version,
};

/// A small deterministic PRNG (xorshift64*), so that no dependency is
/// needed and every failure can be replayed from its seed.
pub struct Rng(u64);

impl Rng {
    /// A generator whose sequence is fixed by `seed`.
    pub fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1)
    }
    /// The next number of the sequence.
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    /// In `0..n` (`n` > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
}

/// The `i`-th event of a workload: varied type, data, metadata and tags.
pub fn event(i: u64) -> NewEvent {
    NewEvent::builder(format!("Type{}", i % 4))
        .data(
            format!("data-{i}|")
                .repeat((i % 7 + 1) as usize)
                .into_bytes(),
        )
        .metadata(vec![i as u8; (i % 3) as usize])
        .tags([format!("t{}", i % 3), format!("u{}", i % 5)])
        .build()
}

/// The workload's `i`-th stream.
pub fn stream(i: u64) -> StreamId {
    StreamId::new(format!("stream-{i}")).unwrap()
}

/// How many streams the workload writes to.
pub const STREAMS: u64 = 8;

/// Writes a varied store: appends of 1 to 5 events to several streams, aux
/// entries, a truncation, a deletion and a recreated stream.
pub async fn populate(store: &dyn LogBackend, seed: u64, appends: u64) -> Result<()> {
    let n = append_phase(store, seed, appends).await?;
    maintenance_phase(store, n).await
}

/// The appends of [`populate`]; answers the number of the next event.
pub async fn append_phase(store: &dyn LogBackend, seed: u64, appends: u64) -> Result<u64> {
    let mut rng = Rng::new(seed);
    let mut n = seed * 1_000_000;
    for _ in 0..appends {
        let s = rng.below(STREAMS);
        let count = 1 + rng.below(5);
        let events = (0..count).map(|k| event(n + k)).collect();
        n += count;
        store
            .append(&stream(s), ExpectedVersion::Any, events)
            .await?;
    }
    Ok(n)
}

/// The rest of [`populate`]: aux writes, a truncation, a deletion and a
/// recreated stream (whose event is the `n`-th).
pub async fn maintenance_phase(store: &dyn LogBackend, n: u64) -> Result<()> {
    for k in 0..20u64 {
        store
            .aux_put(
                format!("checkpoint/{k}").as_bytes(),
                &k.to_be_bytes().repeat(3),
            )
            .await?;
    }
    store.aux_delete(b"checkpoint/7").await?;
    if store.stream_exists(&stream(3)).await? {
        store.truncate_stream(&stream(3), Version(2)).await?;
    }
    if store.stream_exists(&stream(5)).await? {
        store
            .delete_stream(&stream(5), ExpectedVersion::Any)
            .await?;
        store
            .append(&stream(5), ExpectedVersion::NoStream, vec![event(n)])
            .await?;
    }
    Ok(())
}

/// Everything readable in a store.
#[derive(Debug, PartialEq, Eq)]
pub struct Dump {
    /// The head of the first page read.
    pub head: Position,
    /// `read_all` forward, page by page.
    pub forward: Vec<RecordedEvent>,
    /// `read_all` backward, page by page.
    pub backward: Vec<RecordedEvent>,
    /// `list_streams`, page by page.
    pub streams: Vec<StreamInfo>,
    /// For each of the workload's streams: its version and events, or
    /// `None` when it does not exist.
    pub per_stream: Vec<Option<(Version, Vec<RecordedEvent>)>>,
    /// The whole aux space, by `aux_scan`.
    pub aux: Vec<(Vec<u8>, Vec<u8>)>,
    /// `aux_get` of each key the workload writes.
    pub aux_gets: Vec<Option<Vec<u8>>>,
    /// `has_events`.
    pub has_events: bool,
}

/// Reads everything, through every kind of read.
pub async fn dump(store: &dyn LogBackend) -> Result<Dump> {
    let mut forward = Vec::new();
    let mut from = Position(1);
    let first = store.read_all(from, 1, Direction::Forward, None).await?;
    let head = first.head;
    loop {
        let page = store.read_all(from, 37, Direction::Forward, None).await?;
        let Some(last) = page.events.last() else {
            break;
        };
        from = Position(last.position.0 + 1);
        forward.extend(page.events);
    }
    let mut backward = Vec::new();
    let mut from = Position(u64::MAX);
    loop {
        let page = store.read_all(from, 41, Direction::Backward, None).await?;
        let Some(last) = page.events.last() else {
            break;
        };
        let done = last.position.0 <= 1;
        from = Position(last.position.0.saturating_sub(1));
        backward.extend(page.events);
        if done {
            break;
        }
    }
    let streams = store.list_streams(None, 1000).await?;
    let mut per_stream = Vec::new();
    for s in 0..STREAMS {
        let id = stream(s);
        match store.stream_version(&id).await {
            Ok(version) => {
                let page = store
                    .read_stream(&id, Version(0), 10_000, Direction::Forward)
                    .await?;
                per_stream.push(Some((version, page.events)));
            }
            Err(Error::StreamNotFound(_)) => per_stream.push(None),
            Err(e) => return Err(e),
        }
    }
    let aux = store.aux_scan(b"", None, 1000).await?;
    let mut aux_gets = Vec::new();
    for k in 0..20u64 {
        aux_gets.push(store.aux_get(format!("checkpoint/{k}").as_bytes()).await?);
    }
    let has_events = store.has_events().await?;
    Ok(Dump {
        head,
        forward,
        backward,
        streams,
        per_stream,
        aux,
        aux_gets,
        has_events,
    })
}

/// Copies every file of the folder `from` into the (new) folder `to`.
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        if entry.file_type().unwrap().is_file() {
            std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
        }
    }
}
