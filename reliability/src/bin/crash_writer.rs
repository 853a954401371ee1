//! `annals-crash-writer URL TASKS`: appends to the store at `URL` from
//! `TASKS` tasks until it is killed, printing an [`Ack`] line for every
//! append as soon as it returns. The crash tests kill it with SIGKILL at a
//! random instant and check the store against what it printed.
//!
//! Each task loops over: a single append of 1 to 4 events (`Any`), an
//! append with `Exact` of the version it last saw, and a batch over two
//! streams; streams are shared between tasks so that appends race.

use std::io::Write;
use std::process::ExitCode;

use annals::{AppendResult, Batch, ExpectedVersion, StreamId, Uuid};
use annals_reliability::{Ack, new_events};

fn ack(append: Uuid, stream: &StreamId, result: &AppendResult, ids: Vec<Uuid>) -> String {
    Ack {
        append,
        stream: stream.as_str().to_string(),
        first_version: result.first_version.0,
        positions: (result.first_position.0..=result.last_position.0).collect(),
        ids,
    }
    .to_line()
}

/// Prints one line at once (stdout is line-buffered; the lock keeps lines
/// of different tasks apart).
fn print(line: &str) {
    let mut out = std::io::stdout().lock();
    // A closed pipe means the parent stopped listening: nothing to do.
    let _ = writeln!(out, "{line}").and_then(|()| out.flush());
}

async fn task(store: annals::Store, task: u64) -> annals::Result<()> {
    let streams: Vec<StreamId> = (0..3)
        .map(|k| StreamId::new(format!("s{}", (task + k) % 5)))
        .collect::<annals::Result<_>>()?;
    for round in 0u64.. {
        let stream = &streams[(round % 3) as usize];
        let append = Uuid::now_v7();
        match round % 3 {
            0 | 1 => {
                let n = 1 + (round % 4) as u32;
                let events = new_events(append, 0, n, n);
                let ids = events.iter().map(|e| e.event_id).collect();
                let expected = if round % 3 == 1 {
                    match store.stream_version(stream).await {
                        Ok(v) => ExpectedVersion::Exact(v),
                        Err(annals::Error::StreamNotFound(_)) => ExpectedVersion::NoStream,
                        Err(e) => return Err(e),
                    }
                } else {
                    ExpectedVersion::Any
                };
                match store.append(stream, expected, events).await {
                    Ok(result) => print(&ack(append, stream, &result, ids)),
                    // Another task won the race: nothing was written.
                    Err(e) if e.is_wrong_expected_version() => {}
                    Err(e) => return Err(e),
                }
            }
            _ => {
                let other = &streams[((round + 1) % 3) as usize];
                let first = new_events(append, 0, 2, 5);
                let second = new_events(append, 2, 3, 5);
                let ids = |events: &[annals::NewEvent]| events.iter().map(|e| e.event_id).collect();
                let (first_ids, second_ids): (Vec<Uuid>, Vec<Uuid>) = (ids(&first), ids(&second));
                let batch = Batch::default()
                    .part(stream.clone(), ExpectedVersion::Any, first)
                    .part(other.clone(), ExpectedVersion::Any, second);
                let results = store.append_batch(batch).await?;
                let lines = [
                    ack(append, stream, &results[0], first_ids),
                    ack(append, other, &results[1], second_ids),
                ];
                print(&lines.join("\n"));
            }
        }
    }
    Ok(())
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let (Some(url), Some(tasks)) = (args.get(1), args.get(2).and_then(|t| t.parse::<u64>().ok()))
    else {
        eprintln!("usage: annals-crash-writer URL TASKS");
        return ExitCode::from(2);
    };
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("annals-crash-writer: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        let store = annals::open(url).await?;
        print("ready");
        let handles: Vec<_> = (0..tasks)
            .map(|t| tokio::spawn(task(store.clone(), t)))
            .collect();
        for handle in handles {
            handle
                .await
                .map_err(|e| annals::Error::backend("a writer task", e))??;
        }
        Ok::<_, annals::Error>(())
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("annals-crash-writer: {e}");
            ExitCode::FAILURE
        }
    }
}
