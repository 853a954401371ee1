//! The PostgreSQL writer's figures at round boundaries (feature `metrics`):
//! group size in requests and events, transaction duration, queue depth and
//! head, with the label `engine = postgres` — the same metrics, recorded by
//! the same code, as the KV writer's. The writer is a task of the store's
//! runtime, so the recorder is the global one: this binary holds this one
//! test.
#![allow(missing_docs, clippy::unwrap_used)]

mod support;

#[path = "../../annals-memory/tests/recorded/mod.rs"]
mod recorded;

use std::process::ExitCode;

use annals_core::{LogBackend, StoreConfig};
use libtest_mimic::{Arguments, Failed, Trial};
use metrics_util::debugging::{DebuggingRecorder, Snapshotter};

fn a_commit_group_records_its_requests_events_duration_and_the_head(
    snapshotter: &Snapshotter,
) -> Result<(), Failed> {
    support::runtime().block_on(async {
        let store = support::open(&support::fresh_schema(), StoreConfig::default()).await?;
        recorded::commit_group(&store).await?;
        store.close().await
    })?;
    recorded::check_commit_group(&recorded::take(snapshotter), "postgres");
    Ok(())
}

fn main() -> ExitCode {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    metrics::set_global_recorder(recorder).expect("the only recorder");
    let without_server = match support::without_server("PostgreSQL writer figures test") {
        Ok(ignored) => ignored,
        Err(code) => return code,
    };
    let trial = Trial::test(
        "a_commit_group_records_its_requests_events_duration_and_the_head",
        move || a_commit_group_records_its_requests_events_duration_and_the_head(&snapshotter),
    )
    .with_ignored_flag(without_server);
    let code = libtest_mimic::run(&Arguments::from_args(), vec![trial]).exit_code();
    support::stop_cluster();
    code
}
