//! # annals-bench — every backend against its raw engine
//!
//! Runs the same workloads on every backend compiled in, prints a markdown
//! table, writes the figures as JSON (`results.json`), the table
//! (`results.md`) and three SVG plots into the output folder:
//!
//! 1. 100-event batches, `Relaxed`, 1 writer — and the same records written
//!    straight to the raw engine ([`raw`]): annals / raw engine;
//! 2. durable single-event appends with 1, 4, 16 and 64 concurrent writers
//!    (group commit): 64 writers / 1;
//! 3. `read_all` over the whole store, `read_stream` pages, a tag query and
//!    a type query;
//! 4. one 100-event page (stream, log, tag query) at a random place, in a
//!    small and a large store: large / small;
//! 5. bytes on disk per event after `compact`, against the payload bytes;
//! 6. the machine's own limit: 256-byte records appended to a file with one
//!    `fdatasync` per record and per 100 records;
//! 7. typed reads through the event-store layer: events at today's schema,
//!    events upcast through a two-step chain, sealed (encrypted) events,
//!    against the backend's plain `read_stream`, in the same run.
//!
//! ```text
//! cargo run --release -p annals-bench -- --quick          # every workload, small sizes
//! cargo run --release -p annals-bench                     # the full run (1 M-event stores)
//! cargo run --release -p annals-bench -- --huge           # 10 M-event stores
//! cargo run --release -p annals-bench -- --backends redb,rocksdb --event-size 1000
//! cargo run --release -p annals-bench -- --layers          # + workloads 1, 2 with both layers
//! ```
//!
//! `--layers` runs workloads 1 and 2 once more, after every other run,
//! with a `TracingLayer` (a subscriber at `INFO` writing to a sink) and a
//! `MetricsLayer` (a Prometheus recorder) on, and reports the ratio to the
//! run without them.
#![forbid(unsafe_code)]

mod backends;
mod history;
mod plot;
mod raw;
mod report;
mod run;
mod telemetry;
mod workload;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, SystemTime};

use clap::Parser;

use crate::backends::{Backend, Places};
use crate::report::{Machine, Report};
use crate::run::Settings;

/// Compares every annals backend with its raw engine; writes a markdown
/// table, JSON figures and SVG plots.
#[derive(Debug, Parser)]
#[command(name = "annals-bench", version)]
struct Cli {
    /// Backends to run (comma-separated); default: every one compiled in.
    #[arg(long, value_delimiter = ',', value_parser = Backend::parse)]
    backends: Vec<Backend>,

    /// Bytes of data per event.
    #[arg(long, default_value_t = 100)]
    event_size: usize,

    /// Events appended in workload 1 (default 200 000; 5 000 with --quick).
    #[arg(long)]
    events: Option<u64>,

    /// Store sizes of workload 4, in events, multiples of 1000 from 4000
    /// (default 10 000 and 1 000 000; 10 000 and 50 000 with --quick).
    #[arg(long, value_delimiter = ',')]
    store_sizes: Vec<u64>,

    /// The large store of workload 4 holds 10 M events instead of 1 M.
    #[arg(long)]
    huge: bool,

    /// Concurrent writers of workload 2 (comma-separated).
    #[arg(long, value_delimiter = ',', default_values_t = [1, 4, 16, 64])]
    writers: Vec<usize>,

    /// Seconds each timed run of workloads 2 and 6 lasts (default 3; 0.3
    /// with --quick).
    #[arg(long)]
    seconds: Option<f64>,

    /// Random pages read per kind and store size in workload 4 (default
    /// 2000; 200 with --quick).
    #[arg(long)]
    page_reads: Option<usize>,

    /// Where results.json, results.md and the plots go.
    #[arg(long, default_value = "annals-bench-results")]
    out: PathBuf,

    /// Where the embedded stores live while the run lasts (a new temporary
    /// folder in it, removed at the end); default: the system's temp folder.
    #[arg(long)]
    dir: Option<PathBuf>,

    /// A PostgreSQL database to use (`postgres://…`); default: a throwaway
    /// local cluster with fsync on, when the server binaries are installed.
    #[arg(long)]
    postgres_url: Option<String>,

    /// Small sizes: every workload in about two minutes (a smoke test).
    #[arg(long)]
    quick: bool,

    /// Runs workloads 1 and 2 again with both layers on (tracing at INFO
    /// into a sink, metrics into a Prometheus recorder) and reports the
    /// ratio to the plain run.
    #[arg(long)]
    layers: bool,
}

impl Cli {
    fn settings(&self) -> Result<Settings, String> {
        let quick = self.quick;
        let mut store_sizes = if self.store_sizes.is_empty() {
            match (quick, self.huge) {
                (true, _) => vec![10_000, 50_000],
                (false, false) => vec![10_000, 1_000_000],
                (false, true) => vec![10_000, 10_000_000],
            }
        } else {
            self.store_sizes.clone()
        };
        store_sizes.sort_unstable();
        store_sizes.dedup();
        if let Some(bad) = store_sizes
            .iter()
            .find(|&&s| s < 4000 || s % workload::STREAM_EVENTS != 0)
        {
            return Err(format!(
                "--store-sizes {bad}: each size must be a multiple of 1000, at least 4000"
            ));
        }
        if let Some(bad) = self.writers.iter().find(|&&w| w == 0 || w > 1024) {
            return Err(format!("--writers {bad}: from 1 to 1024"));
        }
        let seconds = self.seconds.unwrap_or(if quick { 0.3 } else { 3.0 });
        if !(seconds > 0.0 && seconds <= 3600.0) {
            return Err(format!("--seconds {seconds}: more than 0, at most 3600"));
        }
        if self.event_size > 1 << 20 {
            return Err(format!("--event-size {}: at most 1 MiB", self.event_size));
        }
        let batch_events = self.events.unwrap_or(if quick { 5_000 } else { 200_000 });
        if batch_events == 0 {
            return Err("--events 0: at least 1".into());
        }
        let page_reads = self.page_reads.unwrap_or(if quick { 200 } else { 2000 });
        Ok(Settings {
            event_size: self.event_size,
            batch_events,
            store_sizes,
            writers: self.writers.clone(),
            duration: Duration::from_secs_f64(seconds),
            page_reads: page_reads.max(1),
            layers: self.layers,
        })
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match bench(cli).await {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("annals-bench: {e}");
            ExitCode::from(2)
        }
    }
}

/// Runs everything; `Ok(false)` when a workload failed (the report says
/// which).
async fn bench(cli: Cli) -> Result<bool, String> {
    let settings = cli.settings()?;
    let date = humantime::format_rfc3339_seconds(SystemTime::now()).to_string();
    std::fs::create_dir_all(&cli.out).map_err(|e| format!("{}: {e}", cli.out.display()))?;
    let parent = cli.dir.clone().unwrap_or_else(std::env::temp_dir);
    let dir = tempfile::Builder::new()
        .prefix("annals-bench-")
        .tempdir_in(&parent)
        .map_err(|e| format!("a folder in {}: {e}", parent.display()))?;

    // Every backend compiled in, or those named (each one compiled in:
    // `Backend::parse` refused the others).
    let mut run = if cli.backends.is_empty() {
        Backend::all()
    } else {
        cli.backends.clone()
    };
    run.sort_unstable();
    run.dedup();
    let mut skipped = Vec::new();
    let mut postgres = None;
    if let Some(&server) = run.iter().find(|b| b.is_server()) {
        match backends::postgres_server(cli.postgres_url.as_deref()) {
            Ok(server) => postgres = Some(server),
            Err(why) => {
                // Asked for by name: an error. Else: said in the report.
                if cli.backends.contains(&server) {
                    return Err(format!("{server}: {why}"));
                }
                eprintln!("annals-bench: {server} not run: {why}");
                run.retain(|&b| b != server);
                skipped.push((server, why));
            }
        }
    }
    let places = Places {
        dir: dir.path().to_path_buf(),
        postgres,
    };

    eprintln!("annals-bench: 6. the machine's fdatasync limit");
    let fsync_baseline = match run::fsync_baseline(dir.path(), settings.duration).await {
        Ok(f) => Some(f),
        Err(e) => {
            eprintln!("annals-bench: fsync baseline: {e}");
            None
        }
    };
    let mut reports = Vec::new();
    for &backend in &run {
        reports.push(run::backend(&places, backend, &settings).await);
    }
    if settings.layers {
        // After every plain run: the telemetry stays installed.
        let handle = telemetry::install()?;
        for report in &mut reports {
            run::layered(&places, &settings, report).await;
        }
        // What a scrape would have cost is not measured; that it works is
        // checked.
        if !handle.render().contains("annals_appends") {
            return Err("--layers: the Prometheus recorder saw no append".into());
        }
    }
    let mut report = Report {
        format: 1,
        date,
        quick: cli.quick,
        machine: Machine::read(&parent),
        settings,
        fsync_baseline,
        backends: reports,
        skipped,
        targets: Vec::new(),
    };
    report.check_targets();

    let markdown = report.markdown();
    println!("{markdown}");
    let json = serde_json::to_string_pretty(&report).map_err(|e| format!("JSON: {e}"))?;
    let write = |name: &str, text: &str| {
        let path = cli.out.join(name);
        std::fs::write(&path, text).map_err(|e| format!("{}: {e}", path.display()))
    };
    write("results.json", &json)?;
    write("results.md", &markdown)?;
    plot::draw(&report, &cli.out)?;
    eprintln!(
        "annals-bench: wrote results.json, results.md, throughput.svg, scaling.svg and page-latency.svg to {}",
        cli.out.display()
    );
    let failed =
        report.backends.iter().any(|b| !b.errors.is_empty()) || report.fsync_baseline.is_none();
    Ok(!failed)
}
