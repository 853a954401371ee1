//! export, import and migrate: every readable event, in commit order,
//! streamed page by page so memory stays flat however large the store.
//!
//! The export format (version 1) is NDJSON: a header line
//! `{"annals_export":1,"exported_at":…,"source_backend":…,"head":…,"events":…}`
//! then one [`EventLine`] per event, in commit order.
//!
//! Import appends each stream's events with the expectation that puts them
//! at their exported versions (`NoStream` for version 0, `Exact(v - 1)`
//! after), so an interrupted import re-run from the start is answered by the
//! idempotent retry rule (SPEC A5) for what is already there and goes on
//! where it stopped. Positions and `recorded_at` are the target's own. A
//! stream whose first readable event is above version 0 (it was truncated,
//! or deleted and recreated) cannot start there in a new store: it is
//! renumbered from 0, and the offset is kept in the target's aux space
//! (key `annals-import/version-offset/<stream>`, or, where that would be
//! longer than an aux key may be, `annals-import/version-offset-sha256/`
//! and the hex SHA-256 of the stream id) so a re-run finds it.
//!
//! Import reads line by line, each line bounded by what an event within
//! the target's limits can take, and checks every line before it writes
//! anything: a whole file first (then the target is opened, or created);
//! from standard input, the header and the first event before the target
//! is opened, every later line before it is written.

use std::collections::{HashMap, HashSet};
use std::fs::{self, File};
use std::io::{self, BufRead, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use annals::files::FileMode;
use annals::{
    Append, AuxWrite, Direction, Error, ExpectedVersion, Limits, MAX_AUX_KEY_BYTES, MAX_NAME_BYTES,
    MAX_STREAM_ID_BYTES, MAX_TAGS, NewEvent, Position, RecordedEvent, Store, StoreUrl, StreamId,
    Timestamp, Version,
};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::commands::{PAGE, close, closing, open_for_reading, open_or_create, url_limits};
use crate::fail::{Fail, Failure};
use crate::format::{EventLine, rfc3339};
use crate::progress;

/// The version of the export format this build writes and reads.
pub const EXPORT_FORMAT: u32 = 1;

/// The first line of an export.
#[derive(Serialize, Deserialize, Debug)]
struct Header {
    /// The format version.
    annals_export: u32,
    /// When the export started, RFC 3339.
    exported_at: String,
    /// The backend it came from (`redb`, `rocksdb`, …).
    source_backend: String,
    /// The source's head position when the export started.
    head: u64,
}

/// Most stream ids an import remembers as looked up (see `write_run`).
const MAX_CHECKED_STREAMS: usize = 100_000;

/// The aux key prefix under which import keeps version offsets.
const OFFSET_KEY: &str = "annals-import/version-offset/";

/// The aux key prefix of the version offsets of streams whose id is too
/// long for [`OFFSET_KEY`]: the hex SHA-256 of the id follows.
const OFFSET_HASH_KEY: &str = "annals-import/version-offset-sha256/";

/// The longest header line read.
const MAX_HEADER_BYTES: usize = 64 << 10;

/// The longest line an export of a store with `limits` can have: data and
/// metadata of at most `max_event_bytes` together, each byte at most 6 in
/// JSON text (`\u00XX`; base64 takes 4/3, `json` 1), the stream id, type
/// and tags escaped the same way, and room for the fixed fields.
fn max_line_bytes(limits: &Limits) -> usize {
    let names = MAX_STREAM_ID_BYTES + MAX_NAME_BYTES + MAX_TAGS * (MAX_NAME_BYTES + 3);
    limits
        .max_event_bytes
        .saturating_add(names)
        .saturating_mul(6)
        .saturating_add(64 << 10)
}

/// Reads lines of at most a given length (without the line end), so that a
/// line of any length costs at most that much memory.
struct BoundedLines<R> {
    reader: R,
    /// The 1-based number of the last line read.
    number: usize,
    name: String,
}

impl<R: BufRead> BoundedLines<R> {
    fn new(reader: R, name: &str) -> Self {
        BoundedLines {
            reader,
            number: 0,
            name: name.to_string(),
        }
    }

    /// Where the last line read is: `FILE line N`.
    fn place(&self) -> String {
        format!("{} line {}", self.name, self.number)
    }

    /// The next line, of at most `max` bytes; `None` at the end.
    fn next(&mut self, max: usize) -> Result<Option<String>, Failure> {
        let mut bytes = Vec::new();
        let limit = u64::try_from(max).unwrap_or(u64::MAX).saturating_add(2);
        let read = (&mut self.reader)
            .take(limit)
            .read_until(b'\n', &mut bytes)
            .map_err(|e| Failure::io(&format!("reading {}", self.name), e))?;
        if read == 0 {
            return Ok(None);
        }
        self.number += 1;
        if bytes.last() == Some(&b'\n') {
            bytes.pop();
            if bytes.last() == Some(&b'\r') {
                bytes.pop();
            }
        }
        if bytes.len() > max {
            return Err(Failure::input(format!(
                "longer than {max} bytes, more than any event within the target's limits can \
                 take (max_event_bytes etc.)"
            ))
            .at(&self.place()));
        }
        String::from_utf8(bytes)
            .map(Some)
            .map_err(|_| Failure::input("not UTF-8 text").at(&self.place()))
    }
}

/// One event of an export, checked: its stream, its version, the event,
/// and the line it came from.
struct ImportedEvent {
    stream: StreamId,
    version: u64,
    position: u64,
    event: NewEvent,
    place: String,
}

/// An export being read: its header, then its events, each line checked
/// against the target's limits.
struct ExportReader<R> {
    lines: BoundedLines<R>,
    header: Header,
    limits: Limits,
    max_line: usize,
}

impl<R: BufRead> ExportReader<R> {
    /// Reads and checks the header.
    fn new(reader: R, name: &str, limits: Limits) -> Result<Self, Failure> {
        let mut lines = BoundedLines::new(reader, name);
        let Some(line) = lines.next(MAX_HEADER_BYTES)? else {
            return Err(Failure::input(format!(
                "{name} is empty, not an annals export"
            )));
        };
        let header: Header = serde_json::from_str(&line).map_err(|e| {
            Failure::input(format!("not an annals export header ({e})")).at(&lines.place())
        })?;
        if header.annals_export != EXPORT_FORMAT {
            return Err(Failure::input(format!(
                "{name} is export format {}, this build reads format {EXPORT_FORMAT}",
                header.annals_export
            )));
        }
        Ok(ExportReader {
            lines,
            header,
            max_line: max_line_bytes(&limits),
            limits,
        })
    }

    /// The next event, checked; `None` at the end. Empty lines are skipped.
    fn next(&mut self) -> Result<Option<ImportedEvent>, Failure> {
        loop {
            let Some(line) = self.lines.next(self.max_line)? else {
                return Ok(None);
            };
            if line.trim().is_empty() {
                continue;
            }
            let place = self.lines.place();
            let parsed: EventLine = serde_json::from_str(&line)
                .map_err(|e| Failure::input(format!("invalid event ({e})")).at(&place))?;
            let (stream, event) = parsed.to_new_event().map_err(|f| f.at(&place))?;
            event
                .validate(&self.limits)
                .fail()
                .map_err(|f| f.at(&place))?;
            return Ok(Some(ImportedEvent {
                stream,
                version: parsed.version,
                position: parsed.position,
                event,
                place,
            }));
        }
    }
}

/// Opens an export file, or standard input for `-`.
fn open_export(file: &Path) -> Result<Box<dyn BufRead>, Failure> {
    if file.as_os_str() == "-" {
        return Ok(Box::new(BufReader::new(io::stdin())));
    }
    let opened =
        File::open(file).map_err(|e| Failure::io(&format!("opening {}", file.display()), e))?;
    Ok(Box::new(BufReader::new(opened)))
}

/// The whole log forward, a page at a time.
struct LogPages<'a> {
    store: &'a Store,
    /// Where the next page starts; `None` once the log is read.
    from: Option<Position>,
    page: usize,
}

impl<'a> LogPages<'a> {
    fn new(store: &'a Store, page: usize) -> LogPages<'a> {
        LogPages {
            store,
            from: Some(Position(0)),
            page,
        }
    }

    /// The next page; empty at the end.
    async fn next(&mut self) -> Result<Vec<RecordedEvent>, Failure> {
        let Some(from) = self.from else {
            return Ok(Vec::new());
        };
        let events = self
            .store
            .read_all(from, self.page, Direction::Forward, None)
            .await
            .fail()?
            .events;
        self.from = match events.last() {
            Some(last) if events.len() == self.page => Some(last.position.next()),
            _ => None,
        };
        Ok(events)
    }
}

/// The page size for reading `store`.
fn page_size(store: &Store) -> usize {
    PAGE.min(store.limits().max_read_count).max(1)
}

/// Reads the whole log forward, calling `each` per event.
async fn for_each_event<F>(store: &Store, mut each: F) -> Result<(), Failure>
where
    F: FnMut(RecordedEvent) -> Result<(), Failure>,
{
    let mut pages = LogPages::new(store, page_size(store));
    loop {
        let events = pages.next().await?;
        if events.is_empty() {
            return Ok(());
        }
        for event in events {
            each(event)?;
        }
    }
}

/// The number of readable events.
pub async fn count_events(store: &Store) -> Result<u64, Failure> {
    let mut count = 0;
    for_each_event(store, |_| {
        count += 1;
        Ok(())
    })
    .await?;
    Ok(count)
}

async fn head(store: &Store) -> Result<Position, Failure> {
    Ok(store
        .read_all(Position(0), 1, Direction::Backward, None)
        .await
        .fail()?
        .head)
}

/// `export URL [-o FILE]`.
///
/// A file is written whole or not at all: into a new owner-only (`0600`)
/// file beside it, renamed over it once complete, and removed on failure.
/// (Anything but a regular file, e.g. `/dev/stdout` or a pipe, is written
/// to directly.)
pub async fn export(url: &str, output: Option<&Path>) -> Result<(), Failure> {
    let store = open_for_reading(url).await?;
    let result = async {
        match output {
            None => write_export(url, &store, Box::new(io::stdout())).await,
            Some(path) if is_special_file(path) => {
                let file = fs::OpenOptions::new()
                    .write(true)
                    .open(path)
                    .map_err(|e| Failure::io(&format!("opening {}", path.display()), e))?;
                write_export(url, &store, Box::new(file)).await
            }
            Some(path) => {
                let temporary = temporary_beside(path);
                let file = FileMode::PRIVATE
                    .create_new_file(&temporary)
                    .map_err(|e| Failure::io(&format!("creating {}", temporary.display()), e))?;
                let written = write_export(url, &store, Box::new(file))
                    .await
                    .and_then(|n| {
                        fs::rename(&temporary, path)
                            .map(|()| n)
                            .map_err(|e| Failure::io(&format!("renaming to {}", path.display()), e))
                    });
                if written.is_err() {
                    // Ours: made by this export a moment ago.
                    let _ = fs::remove_file(&temporary);
                }
                written
            }
        }
    };
    let result = result.await;
    let closed = close(&store).await;
    let events = result?;
    closed?;
    if output.is_some() {
        println!("exported {events} events");
    }
    Ok(())
}

/// Whether `path` exists and is not a regular file (a device, a pipe).
fn is_special_file(path: &Path) -> bool {
    fs::metadata(path).is_ok_and(|meta| !meta.is_file())
}

/// A new file name in the folder of `path`, for writing it whole.
fn temporary_beside(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!(".{name}.{}.annals-export", std::process::id()))
}

/// Writes the export of `store` to `writer`; answers the events written.
async fn write_export(url: &str, store: &Store, writer: Box<dyn Write>) -> Result<u64, Failure> {
    let mut out = BufWriter::new(writer);
    let write_err = |e: io::Error| Failure::io("writing the export", e);
    let head = head(store).await?;
    let header = Header {
        annals_export: EXPORT_FORMAT,
        exported_at: rfc3339(Timestamp::now(), 6),
        source_backend: StoreUrl::parse(url).fail()?.scheme().to_string(),
        head: head.0,
    };
    let header =
        serde_json::to_string(&header).map_err(|e| Failure::io("encoding the export header", e))?;
    writeln!(out, "{header}").map_err(write_err)?;
    let bar = progress::bar(Some(head.0), "positions");
    let mut events = 0u64;
    for_each_event(store, |event| {
        writeln!(out, "{}", EventLine::new(&event).to_json()?).map_err(write_err)?;
        bar.set_position(event.position.0);
        events += 1;
        Ok(())
    })
    .await?;
    let file = out
        .into_inner()
        .map_err(|e| Failure::io("writing the export", e.error()))?;
    drop(file);
    bar.finish_and_clear();
    Ok(events)
}

/// `import URL FILE`.
pub async fn import(url: &str, file: &Path) -> Result<(), Failure> {
    let name = file.display().to_string();
    let limits = url_limits(url)?;
    if name != "-" {
        // Every line is checked before anything is created or written.
        let mut reader = ExportReader::new(open_export(file)?, &name, limits)?;
        while reader.next()?.is_some() {}
    }
    let mut reader = ExportReader::new(open_export(file)?, &name, limits)?;
    let first = reader.next()?;
    let store = open_or_create(url).await?;
    let mut importer = Importer::new(store.clone());
    let bar = progress::bar(Some(reader.header.head), "positions");
    let result = async {
        let mut next = first;
        while let Some(event) = next {
            bar.set_position(event.position);
            importer
                .push(event.stream, event.version, event.event, event.place)
                .await?;
            next = reader.next()?;
        }
        importer.finish().await
    }
    .await;
    bar.finish_and_clear();
    close(&store).await?;
    result?;
    println!("{}", importer.summary());
    Ok(())
}

/// `migrate FROM TO`: import straight from a store, then compare.
pub async fn migrate(from: &str, to: &str) -> Result<(), Failure> {
    let source = open_for_reading(from).await?;
    let target = match open_or_create(to).await {
        Ok(target) => target,
        Err(failure) => return closing(&source, Err(failure)).await,
    };
    let result = migrate_open(&source, &target).await;
    let closed = (close(&source).await, close(&target).await);
    let summary = result?;
    closed.0?;
    closed.1?;
    println!("{summary}");
    Ok(())
}

async fn migrate_open(source: &Store, target: &Store) -> Result<String, Failure> {
    // Sealed events stay readable (and forgotten ones erased) in the copy.
    crate::history::copy_keys(source, target).await?;
    let head = head(source).await?;
    let mut importer = Importer::new(target.clone());
    let bar = progress::bar(Some(head.0), "positions");
    let mut pages = LogPages::new(source, page_size(source));
    loop {
        let events = pages.next().await?;
        if events.is_empty() {
            break;
        }
        for event in events {
            bar.set_position(event.position.0);
            let (stream, version) = (event.stream_id.clone(), event.stream_version.0);
            let place = format!("source position {}", event.position);
            importer
                .push(stream, version, new_event(event), place)
                .await?;
        }
    }
    importer.finish().await?;
    bar.finish_and_clear();
    let compared = compare(source, target, &importer.offsets).await?;
    Ok(format!(
        "{}; compared {compared} events: the stores hold the same events",
        importer.summary()
    ))
}

/// The event to append again.
fn new_event(event: RecordedEvent) -> NewEvent {
    NewEvent {
        event_id: event.event_id,
        event_type: event.event_type,
        data: event.data,
        metadata: event.metadata,
        tags: event.tags,
    }
}

/// Reads both stores in commit order side by side: the same events, in the
/// same order (versions shifted by the import's offsets, positions and
/// timestamps the target's own).
async fn compare(
    source: &Store,
    target: &Store,
    offsets: &HashMap<StreamId, u64>,
) -> Result<u64, Failure> {
    let page = page_size(source).min(page_size(target));
    let (mut a_pages, mut b_pages) = (LogPages::new(source, page), LogPages::new(target, page));
    let mut compared = 0u64;
    loop {
        let a = a_pages.next().await?;
        let b = b_pages.next().await?;
        for (x, y) in a.iter().zip(&b) {
            let offset = offsets.get(&x.stream_id).copied().unwrap_or(0);
            let same = x.stream_id == y.stream_id
                && x.stream_version.0.checked_sub(offset) == Some(y.stream_version.0)
                && x.event_id == y.event_id
                && x.event_type == y.event_type
                && x.tags == y.tags
                && x.data == y.data
                && x.metadata == y.metadata;
            if !same {
                return Err(Failure::problems(format!(
                    "the stores differ after {compared} equal events: source {:?} version {} \
                     (id {}) vs target {:?} version {} (id {})",
                    x.stream_id.as_str(),
                    x.stream_version,
                    x.event_id,
                    y.stream_id.as_str(),
                    y.stream_version,
                    y.event_id
                )));
            }
            compared += 1;
        }
        if a.len() != b.len() {
            let (more, which) = if a.len() > b.len() {
                (&a[b.len()], "source")
            } else {
                (&b[a.len()], "target")
            };
            return Err(Failure::problems(format!(
                "the stores differ after {compared} equal events: only the {which} has {:?} version {}",
                more.stream_id.as_str(),
                more.stream_version
            )));
        }
        if a.is_empty() {
            return Ok(compared);
        }
    }
}

/// Appends exported events to a store so that they keep their streams,
/// versions, ids and order: consecutive events of one stream are appended
/// together (within the target's limits).
pub struct Importer {
    store: Store,
    /// The run being gathered: its stream, first version and events, and
    /// where its first event came from (for errors).
    run: Option<(StreamId, u64, Vec<NewEvent>, String)>,
    run_bytes: usize,
    /// Streams renumbered from 0, with the version subtracted.
    offsets: HashMap<StreamId, u64>,
    /// Streams whose kept offset was looked for (bounded: cleared when full).
    checked: HashSet<StreamId>,
    /// Events written, or found already there (a re-run).
    imported: u64,
}

impl Importer {
    fn new(store: Store) -> Importer {
        Importer {
            store,
            run: None,
            run_bytes: 0,
            offsets: HashMap::new(),
            checked: HashSet::new(),
            imported: 0,
        }
    }

    /// What the import did, in one line.
    fn summary(&self) -> String {
        // An append the store answers by the idempotent retry rule (A5)
        // writes nothing but looks like a write from here: both count.
        let mut text = format!(
            "imported {} events (events already in the target are recognised by id and not written again)",
            self.imported
        );
        if !self.offsets.is_empty() {
            let mut renumbered: Vec<String> = self
                .offsets
                .iter()
                .map(|(s, o)| format!("{:?} (-{o})", s.as_str()))
                .collect();
            renumbered.sort();
            text.push_str(&format!(
                "; streams renumbered from version 0 (their first events were truncated or deleted): {}",
                renumbered.join(", ")
            ));
        }
        text
    }

    /// Adds the event at `version` of `stream`, read at `place`.
    async fn push(
        &mut self,
        stream: StreamId,
        version: u64,
        event: NewEvent,
        place: String,
    ) -> Result<(), Failure> {
        let limits = self.store.limits();
        let bytes = event.payload_bytes();
        let joins = match &self.run {
            Some((s, first, events, _)) => {
                *s == stream
                    && first.checked_add(events.len() as u64) == Some(version)
                    && events.len() < limits.max_append_events
                    && self.run_bytes.saturating_add(bytes) <= limits.max_append_bytes
            }
            None => false,
        };
        if !joins {
            self.finish().await?;
            self.run = Some((stream, version, Vec::new(), place));
        }
        if let Some((_, _, events, _)) = &mut self.run {
            events.push(event);
            self.run_bytes = self.run_bytes.saturating_add(bytes);
        }
        Ok(())
    }

    /// Writes what is gathered; an error names where its events came from.
    async fn finish(&mut self) -> Result<(), Failure> {
        self.run_bytes = 0;
        match self.run.take() {
            Some((stream, first, events, place)) => self
                .write_run(stream, first, events)
                .await
                .map_err(|f| f.at(&place)),
            None => Ok(()),
        }
    }

    /// Where the version offset of `stream` is kept: under its id, or where
    /// that would be longer than an aux key may be, under the SHA-256 of
    /// its id.
    fn offset_key(stream: &StreamId) -> Vec<u8> {
        let key = format!("{OFFSET_KEY}{}", stream.as_str());
        if key.len() <= MAX_AUX_KEY_BYTES {
            return key.into_bytes();
        }
        let digest = Sha256::digest(stream.as_str().as_bytes());
        let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
        format!("{OFFSET_HASH_KEY}{hex}").into_bytes()
    }

    async fn stored_offset(&self, stream: &StreamId) -> Result<Option<u64>, Failure> {
        let key = Self::offset_key(stream);
        let Some(value) = self.store.aux_get(&key).await.fail()? else {
            return Ok(None);
        };
        let text = String::from_utf8_lossy(&value);
        text.parse().map(Some).map_err(|_| {
            Failure::input(format!(
                "aux key {} holds {text:?}, not a version offset",
                String::from_utf8_lossy(&key)
            ))
        })
    }

    /// Appends `events` at versions `first..` of `stream` (shifted by the
    /// stream's offset), skipping those already there.
    async fn write_run(
        &mut self,
        stream: StreamId,
        mut first: u64,
        mut events: Vec<NewEvent>,
    ) -> Result<(), Failure> {
        // A run above version 0 of a stream this import has not renumbered
        // may belong to one an earlier run of it renumbered: look for the
        // offset it kept before appending, or `Exact` could match the
        // renumbered stream and write the events twice.
        if first > 0 && !self.offsets.contains_key(&stream) && !self.checked.contains(&stream) {
            if let Some(stored) = self.stored_offset(&stream).await? {
                self.offsets.insert(stream.clone(), stored);
            }
            if self.checked.len() >= MAX_CHECKED_STREAMS {
                self.checked.clear();
            }
            self.checked.insert(stream.clone());
        }
        loop {
            let offset = self.offsets.get(&stream).copied().unwrap_or(0);
            let Some(at) = first.checked_sub(offset) else {
                return Err(Failure::input(format!(
                    "stream {:?}: version {first} comes before the stream's first imported version {offset}",
                    stream.as_str()
                )));
            };
            let expected = match at.checked_sub(1) {
                None => ExpectedVersion::NoStream,
                Some(before) => ExpectedVersion::exact(before),
            };
            let actual = match self.store.append(&stream, expected, events.clone()).await {
                Ok(_) => {
                    self.imported += events.len() as u64;
                    return Ok(());
                }
                Err(Error::WrongExpectedVersion { actual, .. }) => actual,
                Err(e) => return Err(e.into()),
            };
            if at > 0 && offset == 0 && actual.is_none() {
                // The stream's first readable event is above version 0:
                // renumber it from 0 and keep the offset with it.
                let append = Append::new(stream.clone(), ExpectedVersion::NoStream, events.clone())
                    .aux(AuxWrite::put(Self::offset_key(&stream), first.to_string()));
                self.store.append_with(append).await.fail()?;
                self.offsets.insert(stream, first);
                self.imported += events.len() as u64;
                return Ok(());
            }
            // Some of these events may be there already (a re-run whose
            // appends were grouped differently): skip those with the same
            // ids at the same versions, write the rest.
            let there = match self
                .store
                .read_stream(&stream, Version(at), events.len(), Direction::Forward)
                .await
            {
                Ok(page) => page.events,
                Err(Error::StreamNotFound(_)) => Vec::new(),
                Err(e) => return Err(e.into()),
            };
            let same = there
                .iter()
                .zip(&events)
                .enumerate()
                .take_while(|(i, (t, e))| {
                    t.event_id == e.event_id
                        && at.checked_add(*i as u64) == Some(t.stream_version.0)
                })
                .count();
            if same == events.len() {
                self.imported += same as u64;
                return Ok(());
            }
            if same == 0 {
                let actual = actual.map_or("does not exist".to_string(), |v| {
                    format!("is at version {v}")
                });
                return Err(Failure::input(format!(
                    "stream {:?} in the target {actual} and holds other events where version {at} \
                     (event id {}) should go; import into an empty store or the one an earlier \
                     import of this file wrote",
                    stream.as_str(),
                    events[0].event_id
                )));
            }
            self.imported += same as u64;
            events.drain(..same);
            // The run's versions are consecutive and end at most at
            // u64::MAX, so this cannot overflow; checked all the same.
            first = first.checked_add(same as u64).ok_or_else(|| {
                Failure::input(format!(
                    "stream {:?}: versions beyond {}",
                    stream.as_str(),
                    u64::MAX
                ))
            })?;
        }
    }
}
