//! The workloads (numbered as in the README's Benchmarks section).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use annals::{Direction, Durability, ExpectedVersion, Position, Query, QueryItem, Store, Version};
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;

use crate::backends::{Backend, Places};
use crate::raw::{Lookup, RawEngine, RawResult};
use crate::workload::{
    BATCH, Latencies, PAGE, Rate, Rng, SCAN_PAGE, STREAM_EVENTS, TAGS, TYPES, event, events,
    stream_named, stream_of, tag_of,
};
use annals::kv::layout::{LOG, STREAM_INDEX, TAG_INDEX, TYPE_INDEX, named_prefix, prefix_end};

/// What a run measures.
#[derive(Clone, Debug, Serialize)]
pub struct Settings {
    /// Bytes of data per event.
    pub event_size: usize,
    /// Events appended in workload 1.
    pub batch_events: u64,
    /// Store sizes of workload 4, ascending; workloads 3 and 5 use the last.
    pub store_sizes: Vec<u64>,
    /// Numbers of concurrent writers in workload 2.
    pub writers: Vec<usize>,
    /// How long each timed run of workloads 2 and 6 lasts.
    pub duration: Duration,
    /// Random pages read per kind and store size in workload 4.
    pub page_reads: usize,
    /// Whether workloads 1 and 2 run again with both layers on (`--layers`).
    pub layers: bool,
}

/// Workload 1: annals against the raw engine.
#[derive(Clone, Debug, Serialize)]
pub struct VersusRaw {
    /// Through annals.
    pub annals: Rate,
    /// Straight to the raw engine.
    pub raw: Rate,
    /// `annals / raw` events per second.
    pub ratio: f64,
}

/// Workload 2 at one number of writers.
#[derive(Clone, Debug, Serialize)]
pub struct Scaling {
    /// Concurrent writers.
    pub writers: usize,
    /// Durable single-event appends through annals.
    pub annals: Rate,
    /// The same straight to the raw engine (each writer commits and syncs
    /// its own transaction).
    pub raw: Rate,
}

/// Workloads 1 and 2 through annals without layers and with both on: a
/// `TracingLayer` under a subscriber at `INFO` (writing to a sink) and a
/// `MetricsLayer` under a Prometheus recorder (the writer's own figures
/// recorded too).
#[derive(Clone, Debug, Serialize)]
pub struct Layered {
    /// Rounds measured; each figure is the median round's.
    pub rounds: usize,
    /// Workload 1 (the annals side).
    pub append_batches: Option<Paired>,
    /// Workload 2 (the annals side), per number of writers.
    pub durable_scaling: Vec<(usize, Paired)>,
}

/// One round of `--layers`: the same run without layers and with them.
#[derive(Clone, Debug, Serialize)]
pub struct Paired {
    /// Without layers, and no metric recorded.
    pub without: Rate,
    /// With both layers.
    pub with: Rate,
    /// `with / without` events per second.
    pub ratio: f64,
    /// `with / without` CPU time of the process per event (its user and
    /// system time, every thread's): unlike the wall clock, hardly moved by
    /// other processes on the machine. `None` where the process CPU clock
    /// cannot be read or a run took no measurable CPU.
    pub cpu_ratio: Option<f64>,
}

impl Paired {
    fn new(without: (Rate, Option<u64>), with: (Rate, Option<u64>)) -> Paired {
        let per_event = |(rate, cpu): &(Rate, Option<u64>)| {
            cpu.filter(|&t| t > 0 && rate.events > 0)
                .map(|t| t as f64 / rate.events as f64)
        };
        let cpu_ratio = per_event(&with)
            .zip(per_event(&without))
            .map(|(w, wo)| w / wo);
        Paired {
            ratio: with.0.per_second / without.0.per_second,
            cpu_ratio,
            without: without.0,
            with: with.0,
        }
    }

    /// The round of the median CPU ratio (of the median wall-clock ratio
    /// where the CPU time is not known; `None`: no round).
    fn median(mut rounds: Vec<Paired>) -> Option<Paired> {
        let key = |p: &Paired| p.cpu_ratio.unwrap_or(p.ratio);
        rounds.sort_by(|a, b| key(a).total_cmp(&key(b)));
        let middle = rounds.len() / 2;
        rounds.into_iter().nth(middle)
    }
}

/// Workload 3 on the largest store.
#[derive(Clone, Debug, Serialize)]
pub struct Reads {
    /// Events in the store.
    pub store_events: u64,
    /// `read_all` forward over the whole store, 1000-event pages.
    pub read_all: Rate,
    /// Whole streams read in 100-event pages (latency per page).
    pub stream_pages: Rate,
    /// Every event of one tag, 1000-event pages.
    pub tag_query: Rate,
    /// Every event of one type, 1000-event pages.
    pub type_query: Rate,
    /// `read_all`'s baseline: the raw engine's scan of the same log keys
    /// and records in 1000-entry pages, copied out (PostgreSQL: a plain
    /// `SELECT` over the same table).
    pub raw_read_all: Option<Rate>,
    /// `stream_pages`' baseline: the raw engine reading the same stream
    /// index ranges in 100-entry pages and the record each entry names.
    pub raw_stream_pages: Option<Rate>,
    /// `tag_query`'s baseline: the raw engine reading the tag's index range
    /// and the record at each position, in 1000-entry pages.
    pub raw_tag_query: Option<Rate>,
    /// `type_query`'s baseline, as `raw_tag_query`.
    pub raw_type_query: Option<Rate>,
    /// The same type query asked as 64 items of 64 copies of the type (the
    /// adversarial query of issue 17, within SPEC R6's limits): repetition
    /// must cost nothing, so this matches `type_query`.
    pub repeated_type_query: Rate,
}

impl Reads {
    /// Each read with its raw baseline: `read_all` first, then stream
    /// pages, tag query, type query.
    pub fn versus_raw(&self) -> [(&'static str, &Rate, Option<&Rate>); 4] {
        [
            (
                "`read_all` forward",
                &self.read_all,
                self.raw_read_all.as_ref(),
            ),
            (
                "`read_stream` 100-event pages",
                &self.stream_pages,
                self.raw_stream_pages.as_ref(),
            ),
            ("tag query", &self.tag_query, self.raw_tag_query.as_ref()),
            ("type query", &self.type_query, self.raw_type_query.as_ref()),
        ]
    }
}

/// Workload 4 at one store size: one 100-event page at a random place
/// (latency per page).
#[derive(Clone, Debug, Serialize)]
pub struct PageCost {
    /// Events in the store.
    pub store_events: u64,
    /// A page of a stream.
    pub stream: Rate,
    /// A page of the global log.
    pub all: Rate,
    /// A page of a tag query.
    pub tag: Rate,
}

impl PageCost {
    /// The kinds of page, in the order of [`PageCost::kinds`].
    pub const KINDS: [&'static str; 3] = ["stream", "all", "tag"];

    /// Each kind of page with its figure.
    pub fn kinds(&self) -> [(&'static str, &Rate); 3] {
        [
            (Self::KINDS[0], &self.stream),
            (Self::KINDS[1], &self.all),
            (Self::KINDS[2], &self.tag),
        ]
    }
}

/// Workload 5.
#[derive(Clone, Debug, Serialize)]
pub struct Disk {
    /// Events in the store.
    pub store_events: u64,
    /// Data + metadata bytes per event, as appended.
    pub payload_bytes_per_event: f64,
    /// `disk_bytes` per event before `compact`.
    pub disk_bytes_per_event_before_compact: f64,
    /// `disk_bytes` per event after `compact`.
    pub disk_bytes_per_event: f64,
    /// `disk_bytes_per_event / payload_bytes_per_event`.
    pub ratio: f64,
}

/// Workload 6: the machine's own limit.
#[derive(Clone, Debug, Serialize)]
pub struct FsyncBaseline {
    /// Bytes per record.
    pub record_bytes: usize,
    /// One `fdatasync` per record.
    pub sync_every_record: Rate,
    /// One `fdatasync` per 100 records.
    pub sync_every_100: Rate,
}

/// Everything measured on one backend.
#[derive(Clone, Debug, Serialize)]
pub struct BackendReport {
    /// Which.
    pub backend: Backend,
    /// Workload 1.
    pub append_batches: Option<VersusRaw>,
    /// Workload 2.
    pub durable_scaling: Vec<Scaling>,
    /// Workload 3.
    pub reads: Option<Reads>,
    /// Workload 4.
    pub page_cost: Vec<PageCost>,
    /// Workload 5.
    pub disk: Option<Disk>,
    /// Workload 7.
    pub history: Option<crate::history::HistoryReads>,
    /// Workloads 1 and 2 with both layers on (`--layers`).
    pub layered: Option<Layered>,
    /// Workloads that failed, with why.
    pub errors: Vec<String>,
}

fn bar(len: u64, message: String) -> ProgressBar {
    let bar = ProgressBar::new(len).with_message(message);
    if let Ok(style) = ProgressStyle::with_template(
        "{msg:<32} [{bar:30}] {human_pos}/{human_len} {per_sec} eta {eta}",
    ) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar
}

fn say(backend: Backend, what: &str) {
    eprintln!("annals-bench: {backend}: {what}");
}

/// Runs every workload on `backend`; a workload that fails is recorded and
/// the others still run.
pub async fn backend(places: &Places, backend: Backend, settings: &Settings) -> BackendReport {
    let mut report = BackendReport {
        backend,
        append_batches: None,
        durable_scaling: Vec::new(),
        reads: None,
        page_cost: Vec::new(),
        disk: None,
        history: None,
        layered: None,
        errors: Vec::new(),
    };
    say(
        backend,
        "1. 100-event batches, relaxed, annals and raw engine",
    );
    match append_batches(places, backend, settings).await {
        Ok(w) => report.append_batches = Some(w),
        Err(e) => report.errors.push(format!("workload 1: {e}")),
    }
    say(
        backend,
        "2. durable single-event appends, concurrent writers",
    );
    match durable_scaling(places, backend, settings).await {
        Ok(w) => report.durable_scaling = w,
        Err(e) => report.errors.push(format!("workload 2: {e}")),
    }
    say(
        backend,
        "3-5. stores of growing size: page cost, reads, disk",
    );
    if let Err(e) = growing_store(places, backend, settings, &mut report).await {
        report.errors.push(format!("workloads 3-5: {e}"));
    }
    say(backend, "7. typed reads: plain, upcast, sealed");
    let events = settings.batch_events.min(50_000);
    match crate::history::history_reads(places, backend, events).await {
        Ok(w) => report.history = Some(w),
        Err(e) => report.errors.push(format!("workload 7: {e}")),
    }
    report
}

/// Appends events `from..to` in 100-event batches, one at a time; the rate
/// counts the time spent in `append` only (not making the events).
async fn fill(
    store: &Store,
    from: u64,
    to: u64,
    settings: &Settings,
    bar: &ProgressBar,
) -> RawResult<Rate> {
    let mut latencies = Latencies::default();
    let mut i = from;
    while i < to {
        let n = BATCH.min(to - i);
        let batch = events(i, n, settings.event_size);
        latencies
            .time(store.append(&stream_of(i), ExpectedVersion::Any, batch))
            .await
            .map_err(|e| format!("append at event {i}: {e}"))?;
        i += n;
        bar.inc(n);
    }
    let total = latencies.0.iter().sum();
    Ok(Rate::new(to - from, total, latencies.0))
}

/// Workload 1's annals side, on a fresh store (`layered`: with both
/// layers).
async fn annals_batches(
    places: &Places,
    backend: Backend,
    settings: &Settings,
    layered: bool,
) -> RawResult<Rate> {
    let n = settings.batch_events;
    let name = if layered {
        "batches-layered"
    } else {
        "batches"
    };
    let store = places.open(backend, name, Durability::Relaxed).await?;
    let store = if layered {
        crate::telemetry::layered(store, backend)
    } else {
        store
    };
    let progress = bar(n, format!("{backend}: annals batches"));
    let annals = fill(&store, 0, n, settings, &progress).await?;
    progress.finish_and_clear();
    store.close().await.map_err(|e| e.to_string())?;
    Ok(annals)
}

/// Workload 1.
async fn append_batches(
    places: &Places,
    backend: Backend,
    settings: &Settings,
) -> RawResult<VersusRaw> {
    let n = settings.batch_events;
    let annals = annals_batches(places, backend, settings, false).await?;

    let raw = places.open_raw(backend, "batches-raw", 1).await?;
    let progress = bar(n, format!("{backend}: raw batches"));
    let mut latencies = Latencies::default();
    let mut i = 0;
    while i < n {
        let count = BATCH.min(n - i);
        let batch = events(i, count, settings.event_size);
        let stream = stream_of(i);
        latencies
            .time(raw.append(stream.as_str(), i % STREAM_EVENTS, i + 1, &batch, false))
            .await?;
        i += count;
        progress.inc(count);
    }
    progress.finish_and_clear();
    let total = latencies.0.iter().sum();
    let raw = Rate::new(n, total, latencies.0);
    Ok(VersusRaw {
        ratio: annals.per_second / raw.per_second,
        annals,
        raw,
    })
}

/// Runs `writers` concurrent writers for `duration`, each calling `append`
/// with its number and its sequence number until time is up; the rate
/// counts one event per append.
async fn timed_writers<F, Fut>(writers: usize, duration: Duration, append: F) -> RawResult<Rate>
where
    F: Fn(usize, u64) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = RawResult<()>> + Send,
{
    let append = Arc::new(append);
    let start = Instant::now();
    let deadline = start + duration;
    let mut tasks = Vec::with_capacity(writers);
    for writer in 0..writers {
        let append = Arc::clone(&append);
        tasks.push(tokio::spawn(async move {
            let mut latencies = Latencies::default();
            let mut seq = 0;
            while Instant::now() < deadline {
                latencies.time(append(writer, seq)).await?;
                seq += 1;
            }
            Ok::<_, String>(latencies.0)
        }));
    }
    let mut all = Vec::new();
    for task in tasks {
        all.extend(task.await.map_err(|e| format!("writer task: {e}"))??);
    }
    let elapsed = start.elapsed();
    Ok(Rate::new(all.len() as u64, elapsed, all))
}

/// Workload 2's annals side at `writers` writers: durable single-event
/// appends, each writer on a stream of its own.
async fn durable_appends(store: &Store, writers: usize, settings: &Settings) -> RawResult<Rate> {
    let size = settings.event_size;
    let store = store.clone();
    timed_writers(writers, settings.duration, move |writer, seq| {
        let store = store.clone();
        async move {
            let stream = stream_named(&format!("w{writers}-{writer}"));
            store
                .append(&stream, ExpectedVersion::Any, vec![event(seq, size)])
                .await
                .map(|_| ())
                .map_err(|e| format!("durable append: {e}"))
        }
    })
    .await
}

/// Rounds of `--layers`: in each, a run without layers and one with them,
/// back to back (which goes first alternates), so that the machine's
/// drift falls on both alike; the median round is reported.
/// Five, since the wall clock of a shared machine swings.
pub const LAYER_ROUNDS: usize = 5;

/// Workloads 1 and 2 (their annals side) without and with both layers, in
/// [`LAYER_ROUNDS`] rounds, into `report`; the telemetry must be installed
/// ([`crate::telemetry::install`]).
pub async fn layered(places: &Places, settings: &Settings, report: &mut BackendReport) {
    let backend = report.backend;
    let mut layered = Layered {
        rounds: LAYER_ROUNDS,
        append_batches: None,
        durable_scaling: Vec::new(),
    };
    say(backend, "1. without and with both layers");
    let mut rounds = Vec::new();
    for round in 0..LAYER_ROUNDS {
        match paired(round, |on| annals_batches(places, backend, settings, on)).await {
            Ok(pair) => rounds.push(pair),
            Err(e) => {
                report.errors.push(format!("workload 1 with layers: {e}"));
                break;
            }
        }
    }
    layered.append_batches = Paired::median(rounds);
    say(backend, "2. without and with both layers");
    let result = async {
        let plain = places
            .open(backend, "durable-plain", Durability::Immediate)
            .await?;
        let with = places
            .open(backend, "durable-layered", Durability::Immediate)
            .await?;
        let with = crate::telemetry::layered(with, backend);
        for &writers in &settings.writers {
            let mut rounds = Vec::new();
            for round in 0..LAYER_ROUNDS {
                let pair = paired(round, |on| {
                    durable_appends(if on { &with } else { &plain }, writers, settings)
                })
                .await?;
                rounds.push(pair);
            }
            if let Some(pair) = Paired::median(rounds) {
                say(
                    backend,
                    &format!(
                        "   {writers:>2} writers: {:.0}/s without, {:.0}/s with",
                        pair.without.per_second, pair.with.per_second
                    ),
                );
                layered.durable_scaling.push((writers, pair));
            }
        }
        plain.close().await.map_err(|e| e.to_string())?;
        with.close().await.map_err(|e| e.to_string())
    }
    .await;
    crate::telemetry::recording(false);
    if let Err(e) = result {
        report.errors.push(format!("workload 2 with layers: {e}"));
    }
    report.layered = Some(layered);
}

/// One round: `run(false)` without layers (metrics not recorded) and
/// `run(true)` with them, the first of the two alternating with `round`.
async fn paired<F, Fut>(round: usize, run: F) -> RawResult<Paired>
where
    F: Fn(bool) -> Fut,
    Fut: Future<Output = RawResult<Rate>>,
{
    let measure = async |on: bool| {
        crate::telemetry::recording(on);
        let before = cpu_nanos();
        let rate = run(on).await?;
        let cpu = cpu_nanos()
            .zip(before)
            .map(|(after, before)| after.saturating_sub(before));
        Ok::<_, String>((rate, cpu))
    };
    let (without, with) = if round.is_multiple_of(2) {
        let without = measure(false).await?;
        (without, measure(true).await?)
    } else {
        let with = measure(true).await?;
        (measure(false).await?, with)
    };
    Ok(Paired::new(without, with))
}

/// The CPU time this process has used (user and system, every thread's,
/// the ended ones included), in nanoseconds: the process CPU clock, not
/// `/proc/self/stat`'s 10 ms ticks, of which a short run has only a few
/// dozen.
fn cpu_nanos() -> Option<u64> {
    let now = rustix::time::clock_gettime(rustix::time::ClockId::ProcessCPUTime);
    let seconds = u64::try_from(now.tv_sec).ok()?;
    let nanos = u64::try_from(now.tv_nsec).ok()?;
    seconds.checked_mul(1_000_000_000)?.checked_add(nanos)
}

/// Workload 2.
async fn durable_scaling(
    places: &Places,
    backend: Backend,
    settings: &Settings,
) -> RawResult<Vec<Scaling>> {
    let most = settings.writers.iter().copied().max().unwrap_or(1);
    let store = places
        .open(backend, "durable", Durability::Immediate)
        .await?;
    let raw: Arc<dyn RawEngine> = Arc::from(places.open_raw(backend, "durable-raw", most).await?);
    let next_position = Arc::new(AtomicU64::new(1));
    let mut figures = Vec::new();
    for &writers in &settings.writers {
        let size = settings.event_size;
        let annals = durable_appends(&store, writers, settings).await?;
        let r = Arc::clone(&raw);
        let positions = Arc::clone(&next_position);
        let raw_rate = timed_writers(writers, settings.duration, move |writer, seq| {
            let raw = Arc::clone(&r);
            let position = positions.fetch_add(1, Ordering::Relaxed);
            async move {
                let stream = format!("w{writers}-{writer}");
                raw.append(&stream, seq, position, &[event(seq, size)], true)
                    .await
            }
        })
        .await?;
        say(
            backend,
            &format!(
                "   {writers:>2} writers: annals {:.0}/s, raw {:.0}/s",
                annals.per_second, raw_rate.per_second
            ),
        );
        figures.push(Scaling {
            writers,
            annals,
            raw: raw_rate,
        });
    }
    store.close().await.map_err(|e| e.to_string())?;
    Ok(figures)
}

/// Workloads 4, then 3 and 5 on the largest store.
async fn growing_store(
    places: &Places,
    backend: Backend,
    settings: &Settings,
    report: &mut BackendReport,
) -> RawResult<()> {
    let store = places.open(backend, "log", Durability::Relaxed).await?;
    let mut size = 0;
    for &target in &settings.store_sizes {
        let progress = bar(target - size, format!("{backend}: filling to {target}"));
        fill(&store, size, target, settings, &progress).await?;
        progress.finish_and_clear();
        size = target;
        let cost = page_cost(&store, size, settings.page_reads).await?;
        say(
            backend,
            &format!(
                "   {size} events: page p50 stream {:.0} µs, all {:.0} µs, tag {:.0} µs",
                cost.stream.p50_us.unwrap_or(0.0),
                cost.all.p50_us.unwrap_or(0.0),
                cost.tag.p50_us.unwrap_or(0.0)
            ),
        );
        report.page_cost.push(cost);
    }
    if size > 0 {
        // Annals and the raw engine take turns, and each keeps its best
        // round: on a shared machine one round can land on a busy moment.
        let raw = filled_raw(places, backend, settings, size).await?;
        let mut best: Option<Reads> = None;
        let mut best_raw: Option<RawReads> = None;
        for _ in 0..READ_ROUNDS {
            let round = reads(&store, size).await?;
            best = Some(match best {
                Some(b) => b.best(round),
                None => round,
            });
            if let Some(raw) = &raw {
                let round = raw_reads(&**raw, size).await?;
                best_raw = Some(match best_raw {
                    Some(b) => b.best(round),
                    None => round,
                });
            }
        }
        let mut figures = best.ok_or("no read round")?;
        figures.raw_read_all = places.raw_read_all(backend, "log", size).await?;
        if let Some(raw) = best_raw {
            figures.raw_read_all = Some(raw.read_all);
            figures.raw_stream_pages = Some(raw.stream_pages);
            figures.raw_tag_query = Some(raw.tag_query);
            figures.raw_type_query = Some(raw.type_query);
        }
        report.reads = Some(figures);
        if backend.has_disk() {
            report.disk = Some(disk(&store, size, settings).await?);
        }
    }
    store.close().await.map_err(|e| e.to_string())?;
    Ok(())
}

/// Checks that a page came back full.
fn full(got: usize, what: &str) -> RawResult<()> {
    if got == PAGE {
        Ok(())
    } else {
        Err(format!("{what}: {got} events instead of {PAGE}"))
    }
}

/// Workload 4 on a store of `size` events.
async fn page_cost(store: &Store, size: u64, reads: usize) -> RawResult<PageCost> {
    let mut rng = Rng::new(size);
    let streams = size / STREAM_EVENTS;
    // Pages that start far enough from the end to come back full.
    let span = size.saturating_sub(PAGE as u64 * TAGS * 2).max(1);

    let mut rates = Vec::with_capacity(PageCost::KINDS.len());
    for kind in PageCost::KINDS {
        let mut latencies = Latencies::default();
        let start = Instant::now();
        for _ in 0..reads {
            let read = match kind {
                "stream" => {
                    let stream = stream_of(rng.below(streams.max(1)) * STREAM_EVENTS);
                    let from = rng.below(STREAM_EVENTS.min(size) - PAGE as u64 + 1);
                    latencies
                        .time(store.read_stream(&stream, Version(from), PAGE, Direction::Forward))
                        .await
                }
                "all" => {
                    let from = Position(1 + rng.below(span));
                    latencies
                        .time(store.read_all(from, PAGE, Direction::Forward, None))
                        .await
                }
                _ => {
                    let from = Position(1 + rng.below(span));
                    let query = Query::tags([tag_of(rng.below(TAGS))]);
                    latencies
                        .time(store.read_all(from, PAGE, Direction::Forward, Some(&query)))
                        .await
                }
            };
            let page = read.map_err(|e| e.to_string())?;
            full(page.events.len(), &format!("{kind} page"))?;
        }
        rates.push(Rate::new(
            (reads * PAGE) as u64,
            start.elapsed(),
            latencies.0,
        ));
    }
    let [stream, all, tag] =
        <[Rate; 3]>::try_from(rates).map_err(|_| "page cost: one rate per kind".to_string())?;
    Ok(PageCost {
        store_events: size,
        stream,
        all,
        tag,
    })
}

/// Reads every event matching `query` in 1000-event pages; checks the count.
async fn scan(store: &Store, query: Option<&Query>, expected: u64, what: &str) -> RawResult<Rate> {
    let mut latencies = Latencies::default();
    let mut from = Position::START;
    let mut seen = 0u64;
    let start = Instant::now();
    loop {
        let page = latencies
            .time(store.read_all(from, SCAN_PAGE, Direction::Forward, query))
            .await
            .map_err(|e| e.to_string())?;
        let Some(last) = page.events.last() else {
            break;
        };
        from = Position(last.position.0 + 1);
        seen += page.events.len() as u64;
    }
    if seen != expected {
        return Err(format!("{what}: read {seen} events, expected {expected}"));
    }
    Ok(Rate::new(seen, start.elapsed(), latencies.0))
}

/// Workload 3 on a store of `size` events.
async fn reads(store: &Store, size: u64) -> RawResult<Reads> {
    let read_all = scan(store, None, size, "read_all").await?;
    let tag_query = scan(
        store,
        Some(&Query::tags([tag_of(0)])),
        size.div_ceil(TAGS),
        "tag query",
    )
    .await?;
    let type_query = scan(
        store,
        Some(&Query::types([TYPES[0]])),
        size.div_ceil(TYPES.len() as u64),
        "type query",
    )
    .await?;
    let repeated_type_query = scan(
        store,
        Some(&repeated(TYPES[0])),
        size.div_ceil(TYPES.len() as u64),
        "repeated type query",
    )
    .await?;
    // Up to 100 whole streams, 100 events a page.
    let streams = size.div_ceil(STREAM_EVENTS).min(100);
    let mut latencies = Latencies::default();
    let mut read = 0u64;
    let start = Instant::now();
    for s in 0..streams {
        let stream = stream_of(s * STREAM_EVENTS);
        let mut from = Version(0);
        loop {
            let page = latencies
                .time(store.read_stream(&stream, from, PAGE, Direction::Forward))
                .await
                .map_err(|e| e.to_string())?;
            let Some(last) = page.events.last() else {
                break;
            };
            read += page.events.len() as u64;
            from = Version(last.stream_version.0 + 1);
            if page.events.len() < PAGE {
                break;
            }
        }
    }
    let stream_pages = Rate::new(read, start.elapsed(), latencies.0);
    Ok(Reads {
        store_events: size,
        read_all,
        stream_pages,
        tag_query,
        type_query,
        raw_read_all: None,
        raw_stream_pages: None,
        raw_tag_query: None,
        raw_type_query: None,
        repeated_type_query,
    })
}

/// Rounds of workload 3, annals and raw engine in turn (the best of each
/// is kept).
const READ_ROUNDS: usize = 3;

/// The faster of two figures of the same work.
fn faster(a: Rate, b: Rate) -> Rate {
    if b.per_second > a.per_second { b } else { a }
}

impl Reads {
    /// Each figure the faster of `self`'s and `other`'s.
    fn best(self, other: Reads) -> Reads {
        Reads {
            store_events: self.store_events,
            read_all: faster(self.read_all, other.read_all),
            stream_pages: faster(self.stream_pages, other.stream_pages),
            tag_query: faster(self.tag_query, other.tag_query),
            type_query: faster(self.type_query, other.type_query),
            raw_read_all: self.raw_read_all,
            raw_stream_pages: self.raw_stream_pages,
            raw_tag_query: self.raw_tag_query,
            raw_type_query: self.raw_type_query,
            repeated_type_query: faster(self.repeated_type_query, other.repeated_type_query),
        }
    }
}

/// Workload 3's baselines on a raw engine.
struct RawReads {
    read_all: Rate,
    stream_pages: Rate,
    tag_query: Rate,
    type_query: Rate,
}

impl RawReads {
    /// Each figure the faster of `self`'s and `other`'s.
    fn best(self, other: RawReads) -> RawReads {
        RawReads {
            read_all: faster(self.read_all, other.read_all),
            stream_pages: faster(self.stream_pages, other.stream_pages),
            tag_query: faster(self.tag_query, other.tag_query),
            type_query: faster(self.type_query, other.type_query),
        }
    }
}

/// The raw engine of `backend` filled with the same entries as the annals
/// store of `size` events: `None` where the engine has no raw read here.
async fn filled_raw(
    places: &Places,
    backend: Backend,
    settings: &Settings,
    size: u64,
) -> RawResult<Option<Box<dyn RawEngine>>> {
    let raw = places.open_raw(backend, "log-raw", 1).await?;
    let probe = raw
        .read_page(vec![LOG], vec![LOG + 1], 1, Lookup::Value)
        .await?;
    if probe.is_none() {
        return Ok(None);
    }
    let progress = bar(size, format!("{backend}: filling raw to {size}"));
    let mut i = 0;
    while i < size {
        let count = BATCH.min(size - i);
        let batch = events(i, count, settings.event_size);
        let stream = stream_of(i);
        raw.append(stream.as_str(), i % STREAM_EVENTS, i + 1, &batch, false)
            .await?;
        i += count;
        progress.inc(count);
    }
    progress.finish_and_clear();
    Ok(Some(raw))
}

/// Workload 3 on a raw engine filled by [`filled_raw`] with `size` events.
async fn raw_reads(raw: &dyn RawEngine, size: u64) -> RawResult<RawReads> {
    let read_all = raw_scan(raw, &[vec![LOG]], SCAN_PAGE, Lookup::Value, size).await?;
    let tag_query = raw_scan(
        raw,
        &[named_prefix(TAG_INDEX, &tag_of(0))],
        SCAN_PAGE,
        Lookup::KeyPosition,
        size.div_ceil(TAGS),
    )
    .await?;
    let type_query = raw_scan(
        raw,
        &[named_prefix(TYPE_INDEX, TYPES[0])],
        SCAN_PAGE,
        Lookup::KeyPosition,
        size.div_ceil(TYPES.len() as u64),
    )
    .await?;
    // The same streams as `reads`.
    let streams: Vec<Vec<u8>> = (0..size.div_ceil(STREAM_EVENTS).min(100))
        .map(|s| named_prefix(STREAM_INDEX, stream_of(s * STREAM_EVENTS).as_str()))
        .collect();
    let expected = (0..streams.len() as u64)
        .map(|s| STREAM_EVENTS.min(size - s * STREAM_EVENTS))
        .sum();
    let stream_pages = raw_scan(raw, &streams, PAGE, Lookup::ValuePosition, expected).await?;
    Ok(RawReads {
        read_all,
        stream_pages,
        tag_query,
        type_query,
    })
}

/// Reads every entry under each of `prefixes` from `raw` in pages of
/// `page`, with the record `lookup` names; checks the count.
async fn raw_scan(
    raw: &dyn RawEngine,
    prefixes: &[Vec<u8>],
    page: usize,
    lookup: Lookup,
    expected: u64,
) -> RawResult<Rate> {
    let mut latencies = Latencies::default();
    let mut seen = 0u64;
    let start = Instant::now();
    for prefix in prefixes {
        let end = prefix_end(prefix);
        let mut from = prefix.clone();
        loop {
            let entries = latencies
                .time(raw.read_page(from.clone(), end.clone(), page, lookup))
                .await?
                .unwrap_or_default();
            seen += entries.len() as u64;
            let Some((last, _)) = entries.last() else {
                break;
            };
            // The smallest key after `last`.
            from = last.clone();
            from.push(0);
            if entries.len() < page {
                break;
            }
        }
    }
    if seen != expected {
        return Err(format!(
            "raw read of {lookup:?}: read {seen} entries, expected {expected}"
        ));
    }
    Ok(Rate::new(seen, start.elapsed(), latencies.0))
}

/// `Query::types([ty])` asked as 64 items of 64 copies of `ty`.
fn repeated(ty: &str) -> Query {
    let item = QueryItem {
        types: vec![ty.to_string(); 64],
        tags: Vec::new(),
    };
    Query {
        items: vec![item; 64],
    }
}

/// Workload 5 on a store of `size` events.
async fn disk(store: &Store, size: u64, settings: &Settings) -> RawResult<Disk> {
    let before = store.disk_bytes().await.map_err(|e| e.to_string())?;
    store.compact().await.map_err(|e| format!("compact: {e}"))?;
    let after = store.disk_bytes().await.map_err(|e| e.to_string())?;
    let n = size as f64;
    // The benchmark's events have no metadata.
    let payload = settings.event_size as f64;
    let per_event = after as f64 / n;
    Ok(Disk {
        store_events: size,
        payload_bytes_per_event: payload,
        disk_bytes_per_event_before_compact: before as f64 / n,
        disk_bytes_per_event: per_event,
        ratio: per_event / payload.max(1.0),
    })
}

/// Workload 6: appends 256-byte records to a file in `dir`, with one
/// `fdatasync` per record, then one per 100 records, each for `duration`.
pub async fn fsync_baseline(dir: &std::path::Path, duration: Duration) -> RawResult<FsyncBaseline> {
    const RECORD: usize = 256;
    let path = dir.join("fsync-baseline.log");
    tokio::task::spawn_blocking(move || {
        use std::io::Write;
        let run = |every: u64| -> RawResult<Rate> {
            let mut file =
                std::fs::File::create(&path).map_err(|e| format!("{}: {e}", path.display()))?;
            let record = [b'x'; RECORD];
            let mut latencies = Vec::new();
            let mut records = 0u64;
            let start = Instant::now();
            while start.elapsed() < duration {
                let t = Instant::now();
                for _ in 0..every {
                    file.write_all(&record)
                        .map_err(|e| format!("{}: {e}", path.display()))?;
                }
                file.sync_data()
                    .map_err(|e| format!("fdatasync {}: {e}", path.display()))?;
                latencies.push(t.elapsed());
                records += every;
            }
            Ok(Rate::new(records, start.elapsed(), latencies))
        };
        let sync_every_record = run(1)?;
        let sync_every_100 = run(100)?;
        let _ = std::fs::remove_file(&path);
        Ok(FsyncBaseline {
            record_bytes: RECORD,
            sync_every_record,
            sync_every_100,
        })
    })
    .await
    .map_err(|e| format!("fsync task: {e}"))?
}
