//! The subcommands, over any store opened by URL through the facade.

use std::fs::File;
use std::io::{self, BufWriter, Read, Write};
use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;

use annals::{
    Capabilities, Direction, ExpectedVersion, Limits, NewEvent, Position, Query, QueryItem,
    RecordedEvent, Store, StoreUrl, StreamId, VerifyProgress, Version,
};

use crate::Command;
use crate::fail::{Fail, Failure};
use crate::format::{EventLine, table_header, table_row};
use crate::history;
use crate::progress;
use crate::transfer;

/// Most events or streams one call asks the store for.
pub const PAGE: usize = 1000;

/// `--expect`: `any`, `no-stream`, `exists` or a version.
#[derive(Clone, Copy, Debug)]
pub struct ExpectArg(pub ExpectedVersion);

impl FromStr for ExpectArg {
    type Err = String;
    fn from_str(text: &str) -> Result<ExpectArg, String> {
        Ok(ExpectArg(match text {
            "any" => ExpectedVersion::Any,
            "no-stream" => ExpectedVersion::NoStream,
            "exists" => ExpectedVersion::StreamExists,
            n => ExpectedVersion::exact(n.parse().map_err(|_| {
                format!("{text:?} is not any, no-stream, exists or a version number")
            })?),
        }))
    }
}

/// Runs one subcommand.
pub async fn run(command: Command) -> Result<(), Failure> {
    match command {
        Command::Info { url } => info(&url).await,
        Command::Streams {
            url,
            after,
            limit,
            json,
        } => streams(&url, after, limit, json).await,
        Command::Read {
            url,
            stream,
            from,
            count,
            backward,
            json,
        } => {
            let stream = StreamId::new(stream).fail()?;
            let store = open_for_reading(&url).await?;
            let direction = direction(backward);
            let from = Version(from.unwrap_or(start(direction)));
            let result = read_stream_cmd(&store, &stream, from, count, direction, json).await;
            close(&store).await?;
            result
        }
        Command::ReadAll {
            url,
            from,
            count,
            backward,
            types,
            tags,
            json,
        } => read_all(&url, from, count, backward, types, tags, json).await,
        Command::Append {
            url,
            stream,
            event_type,
            data,
            metadata,
            tags,
            expect,
        } => append(&url, stream, event_type, data, metadata, tags, expect).await,
        Command::Verify { url } => verify(&url).await,
        Command::Compact { url } => {
            let store = open_for_maintenance(&url).await?;
            let compacted = async {
                let before = store.disk_bytes().await.fail()?;
                store.compact().await.fail()?;
                Ok((before, store.disk_bytes().await.fail()?))
            };
            let (before, after) = closing(&store, compacted.await).await?;
            println!("compacted: {before} → {after} bytes on disk");
            Ok(())
        }
        Command::Truncate {
            url,
            stream,
            before,
        } => {
            let id = StreamId::new(stream).fail()?;
            let store = open_for_maintenance(&url).await?;
            let truncated = store.truncate_stream(&id, Version(before)).await.fail();
            closing(&store, truncated).await?;
            println!("truncated {:?} before version {before}", id.as_str());
            Ok(())
        }
        Command::Delete {
            url,
            stream,
            expect,
        } => {
            let id = StreamId::new(stream).fail()?;
            let store = open_for_maintenance(&url).await?;
            let deleted = store.delete_stream(&id, expect.0).await.fail();
            closing(&store, deleted).await?;
            println!("deleted {:?}", id.as_str());
            Ok(())
        }
        Command::Export { url, output } => transfer::export(&url, output.as_deref()).await,
        Command::Import { url, file } => transfer::import(&url, &file).await,
        Command::Migrate { from, to } => transfer::migrate(&from, &to).await,
        Command::Forget {
            url,
            subject,
            compact,
        } => history::forget(&url, &subject, compact).await,
        Command::Retention(command) => history::retention(command).await,
    }
}

/// A path-based URL whose path is missing is an error naming it.
fn check_exists(url: &str) -> Result<(), Failure> {
    let parsed = StoreUrl::parse(url).fail()?;
    if let Some(path) = parsed.path()
        && !path.exists()
    {
        return Err(Failure::input(format!(
            "no store at {} (from {:?})",
            path.display(),
            parsed.redacted()
        )));
    }
    Ok(())
}

/// Opens a store that must already exist, for reading only: nothing is
/// created and, as far as the backend allows, no file changes (see
/// `annals::open_read_only`).
pub async fn open_for_reading(url: &str) -> Result<Store, Failure> {
    check_exists(url)?;
    Ok(traced(url, annals::open_read_only(url).await.fail()?))
}

/// Opens a store that must already exist, to change it: nothing is
/// created.
pub async fn open_for_maintenance(url: &str) -> Result<Store, Failure> {
    check_exists(url)?;
    Ok(traced(url, annals::open_existing(url).await.fail()?))
}

/// Opens a store, creating it if missing (unless its URL says
/// `create=false`). Call it only once the input is checked.
pub async fn open_or_create(url: &str) -> Result<Store, Failure> {
    Ok(traced(url, annals::open(url).await.fail()?))
}

/// The store inside a tracing layer named after its scheme, so that
/// `--log-level` shows its calls (nothing is done while no log is on).
fn traced(url: &str, store: Store) -> Store {
    use annals::layer::{LayerExt, TracingLayer};
    let backend = StoreUrl::parse(url).map_or("store", |parsed| parsed.scheme().name());
    Arc::new(store.layer(TracingLayer::new().backend(backend)))
}

/// The limits of the store a URL names, from its options, without
/// opening it: input is checked against them before anything is created.
pub fn url_limits(url: &str) -> Result<Limits, Failure> {
    Ok(StoreUrl::parse(url)
        .and_then(|parsed| parsed.config())
        .fail()?
        .limits)
}

/// Closes a store, so its files are released cleanly.
pub async fn close(store: &Store) -> Result<(), Failure> {
    store.close().await.fail()
}

/// Closes a store whatever `result` is (a store left open is not closed
/// cleanly: redb would then need recovery before a read-only open), and
/// answers `result`, or else the close's failure.
pub async fn closing<T>(store: &Store, result: Result<T, Failure>) -> Result<T, Failure> {
    let closed = close(store).await;
    let value = result?;
    closed?;
    Ok(value)
}

fn direction(backward: bool) -> Direction {
    if backward {
        Direction::Backward
    } else {
        Direction::Forward
    }
}

/// Where a read without `--from` starts.
fn start(direction: Direction) -> u64 {
    match direction {
        Direction::Forward => 0,
        Direction::Backward => u64::MAX,
    }
}

/// Where events go: a table or JSON lines on stdout.
struct Output {
    json: bool,
    header_done: bool,
    out: BufWriter<io::Stdout>,
}

impl Output {
    fn new(json: bool) -> Output {
        Output {
            json,
            header_done: false,
            out: BufWriter::new(io::stdout()),
        }
    }

    fn event(&mut self, event: &RecordedEvent) -> Result<(), Failure> {
        let line = if self.json {
            EventLine::new(event).to_json()?
        } else {
            if !self.header_done {
                self.header_done = true;
                self.line(&table_header())?;
            }
            table_row(event)
        };
        self.line(&line)
    }

    fn line(&mut self, line: &str) -> Result<(), Failure> {
        writeln!(self.out, "{line}").map_err(|e| Failure::io("writing to stdout", e))
    }

    fn finish(mut self, events: u64) -> Result<(), Failure> {
        if !self.json && events == 0 {
            self.line("(no events)")?;
        }
        self.out
            .flush()
            .map_err(|e| Failure::io("writing to stdout", e))
    }
}

/// Prints up to `count` events (all without), read page by page from
/// `from` in `direction`: `read(from, size)` reads one page, `key` is an
/// event's place in that order (its version or its position).
async fn print_pages<F, Fut>(
    json: bool,
    count: Option<u64>,
    mut from: u64,
    direction: Direction,
    max_read_count: usize,
    key: fn(&RecordedEvent) -> u64,
    mut read: F,
) -> Result<(), Failure>
where
    F: FnMut(u64, usize) -> Fut,
    Fut: std::future::Future<Output = Result<Vec<RecordedEvent>, Failure>>,
{
    let mut out = Output::new(json);
    let mut remaining = count;
    let mut printed = 0u64;
    while remaining != Some(0) {
        let mut size = PAGE.min(max_read_count).max(1);
        if let Some(r) = remaining {
            size = size.min(usize::try_from(r).unwrap_or(usize::MAX));
        }
        let events = read(from, size).await?;
        for event in &events {
            out.event(event)?;
        }
        printed += events.len() as u64;
        remaining = remaining.map(|r| r - events.len() as u64);
        let next = events.last().map(key).and_then(|last| match direction {
            Direction::Forward => last.checked_add(1),
            Direction::Backward => last.checked_sub(1),
        });
        match next {
            Some(next) if events.len() == size => from = next,
            _ => break,
        }
    }
    out.finish(printed)
}

async fn read_stream_cmd(
    store: &Store,
    stream: &StreamId,
    from: Version,
    count: Option<u64>,
    direction: Direction,
    json: bool,
) -> Result<(), Failure> {
    let max = store.limits().max_read_count;
    print_pages(
        json,
        count,
        from.0,
        direction,
        max,
        |e| e.stream_version.0,
        |from, size| async move {
            let page = store
                .read_stream(stream, Version(from), size, direction)
                .await;
            Ok(page.fail()?.events)
        },
    )
    .await
}

#[allow(clippy::too_many_arguments)]
async fn read_all(
    url: &str,
    from: Option<u64>,
    count: Option<u64>,
    backward: bool,
    types: Vec<String>,
    tags: Vec<String>,
    json: bool,
) -> Result<(), Failure> {
    let store = open_for_reading(url).await?;
    let direction = direction(backward);
    let query =
        (!types.is_empty() || !tags.is_empty()).then(|| Query::single(QueryItem { types, tags }));
    let from = from.unwrap_or(start(direction));
    let max = store.limits().max_read_count;
    let (store_ref, query_ref) = (&store, query.as_ref());
    let result = print_pages(
        json,
        count,
        from,
        direction,
        max,
        |e| e.position.0,
        |from, size| async move {
            let page = store_ref
                .read_all(Position(from), size, direction, query_ref)
                .await;
            Ok(page.fail()?.events)
        },
    )
    .await;
    close(&store).await?;
    result
}

async fn info(url: &str) -> Result<(), Failure> {
    let scheme = StoreUrl::parse(url).fail()?.scheme();
    let store = open_for_reading(url).await?;
    let counted = async {
        let head = store
            .read_all(Position(0), 1, Direction::Backward, None)
            .await
            .fail()?
            .head;
        let streams = count_streams(&store).await?;
        let events = transfer::count_events(&store).await?;
        Ok((head, streams, events, store.disk_bytes().await.fail()?))
    };
    let (head, streams, events, disk) = closing(&store, counted.await).await?;
    let limits = store.limits();
    let caps = store.capabilities();
    println!("backend:       {scheme}");
    println!("capabilities:  {}", capability_list(&caps));
    println!("head position: {head}");
    println!("streams:       {streams}");
    println!("events:        {events}");
    println!("disk bytes:    {disk}");
    println!(
        "limits:        max_event_bytes={} max_append_events={} max_append_bytes={} max_read_count={}",
        limits.max_event_bytes,
        limits.max_append_events,
        limits.max_append_bytes,
        limits.max_read_count
    );
    Ok(())
}

/// The capabilities a store has, by name.
fn capability_list(caps: &Capabilities) -> String {
    let all = [
        ("persistent", caps.persistent),
        ("immediate_durability", caps.immediate_durability),
        ("append_batch", caps.append_batch),
        ("append_conditions", caps.append_conditions),
        ("truncate", caps.truncate),
        ("delete", caps.delete),
        ("compact", caps.compact),
        ("aux", caps.aux),
        ("verify", caps.verify),
    ];
    let names: Vec<&str> = all
        .iter()
        .filter(|(_, has)| *has)
        .map(|(name, _)| *name)
        .collect();
    if names.is_empty() {
        "none".into()
    } else {
        names.join(", ")
    }
}

async fn count_streams(store: &Store) -> Result<u64, Failure> {
    let mut after: Option<StreamId> = None;
    let mut count = 0;
    let page = PAGE.min(store.limits().max_read_count).max(1);
    loop {
        let streams = store.list_streams(after.as_ref(), page).await.fail()?;
        count += streams.len() as u64;
        match streams.last() {
            Some(last) if streams.len() == page => after = Some(last.id.clone()),
            _ => return Ok(count),
        }
    }
}

async fn streams(
    url: &str,
    after: Option<String>,
    limit: Option<u64>,
    json: bool,
) -> Result<(), Failure> {
    let after = after.map(StreamId::new).transpose().fail()?;
    let store = open_for_reading(url).await?;
    let listed = list_streams(&store, after, limit, json).await;
    closing(&store, listed).await
}

/// Prints the streams after `after`, at most `limit`.
async fn list_streams(
    store: &Store,
    mut after: Option<StreamId>,
    limit: Option<u64>,
    json: bool,
) -> Result<(), Failure> {
    let mut remaining = limit;
    let mut out = BufWriter::new(io::stdout());
    let mut printed = 0u64;
    let write_err = |e| Failure::io("writing to stdout", e);
    if !json {
        writeln!(out, "{:>8}  STREAM", "VERSION").map_err(write_err)?;
    }
    while remaining != Some(0) {
        let mut page = PAGE.min(store.limits().max_read_count).max(1);
        if let Some(r) = remaining {
            page = page.min(usize::try_from(r).unwrap_or(usize::MAX));
        }
        let streams = store.list_streams(after.as_ref(), page).await.fail()?;
        for s in &streams {
            if json {
                let line =
                    serde_json::json!({"stream": s.id.as_str(), "last_version": s.last_version.0});
                writeln!(out, "{line}").map_err(write_err)?;
            } else {
                writeln!(out, "{:>8}  {}", s.last_version.0, s.id.as_str()).map_err(write_err)?;
            }
        }
        printed += streams.len() as u64;
        if let Some(r) = &mut remaining {
            *r -= streams.len() as u64;
        }
        match streams.last() {
            Some(last) if streams.len() == page => after = Some(last.id.clone()),
            _ => break,
        }
    }
    if !json && printed == 0 {
        writeln!(out, "(no streams)").map_err(write_err)?;
    }
    out.flush().map_err(write_err)
}

/// `--data` / `--metadata`: JSON text (checked), or `@FILE`'s bytes —
/// at most `max` bytes (the store's `max_event_bytes`): a larger file is
/// refused after reading `max + 1` bytes of it, however large it is
/// (`@/dev/zero` too).
fn payload(arg: Option<String>, what: &str, max: usize) -> Result<Vec<u8>, Failure> {
    let Some(arg) = arg else {
        return Ok(Vec::new());
    };
    let too_large = |source: &str| {
        Failure::input(format!(
            "--{what} {source} has more than {max} bytes, the store's max_event_bytes (data and \
             metadata together)"
        ))
    };
    if let Some(file) = arg.strip_prefix('@') {
        let reading = |e| Failure::io(&format!("reading --{what} file {file:?}"), e);
        let opened = File::open(Path::new(file)).map_err(reading)?;
        let mut bytes = Vec::new();
        opened
            .take(u64::try_from(max).unwrap_or(u64::MAX).saturating_add(1))
            .read_to_end(&mut bytes)
            .map_err(reading)?;
        if bytes.len() > max {
            return Err(too_large(&format!("file {file:?}")));
        }
        return Ok(bytes);
    }
    if arg.len() > max {
        return Err(too_large("text"));
    }
    serde_json::from_str::<serde::de::IgnoredAny>(&arg).map_err(|e| {
        Failure::input(format!(
            "--{what} is not valid JSON ({e}): {arg:?}; use @FILE for other bytes"
        ))
    })?;
    Ok(arg.into_bytes())
}

#[allow(clippy::too_many_arguments)]
async fn append(
    url: &str,
    stream: String,
    event_type: String,
    data: Option<String>,
    metadata: Option<String>,
    tags: Vec<String>,
    expect: ExpectArg,
) -> Result<(), Failure> {
    // Everything is checked before the store is opened, so a bad
    // argument creates nothing.
    let limits = url_limits(url)?;
    let stream = StreamId::new(stream).fail()?;
    let event = NewEvent::builder(event_type)
        .data(payload(data, "data", limits.max_event_bytes)?)
        .metadata(payload(metadata, "metadata", limits.max_event_bytes)?)
        .tags(tags)
        .build();
    event.validate(&limits).fail()?;
    let store = open_or_create(url).await?;
    let result = store.append(&stream, expect.0, vec![event]).await;
    close(&store).await?;
    let written = result.fail()?;
    println!(
        "appended {:?} version {} at position {}",
        stream.as_str(),
        written.first_version,
        written.first_position
    );
    Ok(())
}

async fn verify(url: &str) -> Result<(), Failure> {
    let store = open_for_reading(url).await?;
    let bar = progress::bar(None, "records");
    let shown = bar.clone();
    let report_progress: VerifyProgress = Arc::new(move |n| shown.set_position(n));
    let report = store.verify(Some(report_progress)).await;
    bar.finish_and_clear();
    close(&store).await?;
    let report = report.fail()?;
    for problem in &report.problems {
        println!("problem: {problem}");
    }
    if report.problems_not_listed > 0 {
        println!("… and {} more problems", report.problems_not_listed);
    }
    let summary = format!(
        "checked {} records ({} events, {} streams)",
        report.records, report.events, report.streams
    );
    if report.is_clean() {
        println!("{summary}: no problem found");
        Ok(())
    } else {
        Err(Failure::problems(format!(
            "{summary}: {} problems found",
            report.problem_count()
        )))
    }
}
