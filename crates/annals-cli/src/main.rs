//! `annals`: look inside annals event stores of any backend, check them,
//! back them up and move them, by URL (`redb:///var/lib/app/events.redb`,
//! `rocksdb:///var/lib/app/events`, `sled:///…`, `fjall:///…`, `postgres://…`, `memory://`).
//!
//! Exit codes: 0 success; 1 failure (a store error, bad input, a failed
//! expectation); 2 bad usage (unknown flag, missing argument); 3 `verify`
//! found problems, or `migrate` found the stores different.
#![forbid(unsafe_code)]

mod commands;
mod fail;
mod format;
mod history;
mod progress;
mod transfer;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::commands::ExpectArg;

/// Inspect, read, append to, check, export, import and migrate annals
/// event stores of any backend.
///
/// Every store is named by URL: memory://, redb:///path/file.redb,
/// rocksdb:///path/dir, sled:///path/dir, fjall:///path/dir, postgres://user@host/db
/// (options after ?, e.g. ?durability=relaxed). Commands that only read or maintain a store
/// refuse a path where no store exists; append, import and migrate's
/// target create it.
#[derive(Parser, Debug)]
#[command(name = "annals", version, max_term_width = 100)]
struct Cli {
    /// Log every call to the store on stderr, one line per call with its
    /// sizes, outcome and time: off, error, warn, info (deletions,
    /// compaction, verification, failed expectations, replays), debug
    /// (every call: appends and reads too), trace, or a RUST_LOG filter
    /// such as `annals=debug`. Without it, RUST_LOG is used; by default
    /// nothing is logged.
    #[arg(long, global = true, value_name = "LEVEL")]
    log_level: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Backend, capabilities, head position, number of streams and events, disk bytes.
    Info {
        /// The store's URL.
        url: String,
    },
    /// Lists streams with their last versions, in byte order of their ids.
    Streams {
        /// The store's URL.
        url: String,
        /// Start after this stream id.
        #[arg(long, value_name = "ID")]
        after: Option<String>,
        /// List at most this many streams (default: all).
        #[arg(long, value_name = "N")]
        limit: Option<u64>,
        /// One JSON object per line.
        #[arg(long)]
        json: bool,
    },
    /// Reads one stream's events.
    Read {
        /// The store's URL.
        url: String,
        /// The stream's id.
        stream: String,
        /// The first version to read (default: the first, or with --backward the last).
        #[arg(long, value_name = "V")]
        from: Option<u64>,
        /// Read at most this many events (default: all).
        #[arg(long, value_name = "N")]
        count: Option<u64>,
        /// Newest first.
        #[arg(long)]
        backward: bool,
        /// One JSON object per line (data as JSON, text or base64).
        #[arg(long)]
        json: bool,
    },
    /// Reads the global log in commit order, optionally only some types and tags.
    ReadAll {
        /// The store's URL.
        url: String,
        /// The first position to read (default: the first, or with --backward the head).
        #[arg(long, value_name = "P")]
        from: Option<u64>,
        /// Read at most this many events (default: all).
        #[arg(long, value_name = "N")]
        count: Option<u64>,
        /// Newest first.
        #[arg(long)]
        backward: bool,
        /// Only events of one of these types (repeat the flag).
        #[arg(long = "type", value_name = "T")]
        types: Vec<String>,
        /// Only events carrying every one of these tags (repeat the flag).
        #[arg(long = "tag", value_name = "K")]
        tags: Vec<String>,
        /// One JSON object per line (data as JSON, text or base64).
        #[arg(long)]
        json: bool,
    },
    /// Appends one event; prints the version and position written.
    Append {
        /// The store's URL (created if missing).
        url: String,
        /// The stream's id.
        stream: String,
        /// The event type.
        #[arg(long = "type", value_name = "T")]
        event_type: String,
        /// The data: JSON text, or @FILE for a file's bytes as they are.
        #[arg(long, value_name = "JSON|@FILE")]
        data: Option<String>,
        /// The metadata: JSON text, or @FILE for a file's bytes as they are.
        #[arg(long, value_name = "JSON|@FILE")]
        metadata: Option<String>,
        /// A tag (repeat the flag).
        #[arg(long = "tag", value_name = "K")]
        tags: Vec<String>,
        /// What the stream must be: any, no-stream, exists, or its last version N.
        #[arg(long, value_name = "any|no-stream|exists|N", default_value = "any")]
        expect: ExpectArg,
    },
    /// Checks the whole store (an fsck); exit 0 only if nothing is wrong.
    Verify {
        /// The store's URL.
        url: String,
    },
    /// Reclaims the space of truncated and deleted events.
    Compact {
        /// The store's URL.
        url: String,
    },
    /// Removes a stream's events below a version (its numbering goes on).
    Truncate {
        /// The store's URL.
        url: String,
        /// The stream's id.
        stream: String,
        /// The first version to keep.
        #[arg(long, value_name = "V")]
        before: u64,
    },
    /// Deletes a stream (a later append recreates it, numbering on).
    Delete {
        /// The store's URL.
        url: String,
        /// The stream's id.
        stream: String,
        /// What the stream must be: any, no-stream, exists, or its last version N.
        #[arg(long, value_name = "any|no-stream|exists|N", default_value = "any")]
        expect: ExpectArg,
    },
    /// Writes every readable event, in commit order, as NDJSON (format 1).
    Export {
        /// The store's URL.
        url: String,
        /// The file to write (default: standard output).
        #[arg(short, long, value_name = "FILE")]
        output: Option<PathBuf>,
    },
    /// Appends the events of an export; re-running it resumes without duplicates.
    Import {
        /// The store's URL (created if missing).
        url: String,
        /// The export file (- for standard input).
        file: PathBuf,
    },
    /// Copies every readable event (and the keys of crypto-shredding) from one store to another,
    /// then compares them.
    Migrate {
        /// The source store's URL.
        from: String,
        /// The target store's URL (created if missing).
        to: String,
    },
    /// Forgets a subject (crypto-shredding): deletes its data key, so every
    /// event sealed for it reads as erased. The master key is read from
    /// the environment variable ANNALS_MASTER_KEY (64 hex digits).
    Forget {
        /// The store's URL.
        url: String,
        /// The subject, as the application names it.
        subject: String,
        /// Compact afterwards, so the deleted key's bytes leave the files sooner.
        #[arg(long)]
        compact: bool,
    },
    /// Retention policies: set, clear, show, enforce.
    #[command(subcommand)]
    Retention(history::RetentionCommand),
}

/// The message of the last panic, reported by `main` if it reaches it.
static PANIC: std::sync::Mutex<Option<String>> = std::sync::Mutex::new(None);

fn main() -> ExitCode {
    // The libraries catch the panics of the engines they call (redb and
    // sled panic on some damaged files) and turn them into errors, which
    // are reported in one line like every other: Rust's default report on
    // stderr would come on top of it. So a panic is only remembered, and
    // reported by `main` should one ever get this far.
    std::panic::set_hook(Box::new(|info| {
        let mut last = PANIC
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *last = Some(info.to_string());
    }));
    match std::panic::catch_unwind(run) {
        Ok(code) => code,
        Err(_) => {
            let message = PANIC
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .take()
                .unwrap_or_default();
            fail::Failure::input(format!("internal error (a bug in annals): {message}")).report()
        }
    }
}

fn run() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return usage_error(e),
    };
    if let Err(message) = start_logging(cli.log_level.as_deref()) {
        eprintln!("annals: error: {message} (see annals --help)");
        return ExitCode::from(2);
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => return fail::Failure::io("starting the async runtime", e).report(),
    };
    match runtime.block_on(commands::run(cli.command)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => failure.report(),
    }
}

/// Logs the spans of the store's calls (`annals::layer::TracingLayer`,
/// around every store a command opens) on stderr, one line when each call
/// ends, filtered by `--log-level` or else `RUST_LOG`; nothing without
/// either. A filter that does not parse is a usage error naming it.
fn start_logging(level: Option<&str>) -> Result<(), String> {
    use std::io::IsTerminal;
    use tracing_subscriber::EnvFilter;
    use tracing_subscriber::fmt::format::FmtSpan;

    let filter = match level {
        Some(level) => EnvFilter::builder()
            .parse(level)
            .map_err(|e| format!("invalid --log-level {level:?}: {e}"))?,
        None => match std::env::var(EnvFilter::DEFAULT_ENV) {
            Ok(directives) if !directives.trim().is_empty() => EnvFilter::builder()
                .parse(&directives)
                .map_err(|e| format!("invalid RUST_LOG {directives:?}: {e}"))?,
            _ => return Ok(()),
        },
    };
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_span_events(FmtSpan::CLOSE)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .try_init()
        .map_err(|e| format!("cannot start logging: {e}"))
}

/// Help and version go to stdout as clap writes them; a usage error is one
/// line on stderr, exit code 2.
fn usage_error(error: clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    match error.kind() {
        ErrorKind::DisplayHelp
        | ErrorKind::DisplayVersion
        | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            let _ = error.print();
            if error.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand {
                ExitCode::from(2)
            } else {
                ExitCode::SUCCESS
            }
        }
        _ => {
            let text = error.render().to_string();
            let first = text
                .lines()
                .find(|l| !l.trim().is_empty())
                .unwrap_or("bad usage");
            let first = first.strip_prefix("error: ").unwrap_or(first);
            eprintln!("annals: error: {first} (see annals --help)");
            ExitCode::from(2)
        }
    }
}
