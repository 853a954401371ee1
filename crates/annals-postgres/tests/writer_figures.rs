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

use annals_core::kv::figures::names;
use annals_core::{ExpectedVersion, LogBackend, NewEvent, StoreConfig, StreamId};
use libtest_mimic::{Arguments, Failed, Trial};
use metrics_util::debugging::{DebuggingRecorder, Snapshotter};

use recorded::{gauge, histogram, take};

fn a_commit_group_records_its_requests_events_duration_and_the_head(
    snapshotter: &Snapshotter,
) -> Result<(), Failed> {
    support::runtime().block_on(async {
        let store = support::open(&support::fresh_schema(), StoreConfig::default()).await?;
        // 8 appends of 3 events sent together: grouped as the writer finds
        // them, whatever the grouping, every request and event is counted
        // once.
        let appends = (0..8).map(|i| {
            let store = &store;
            async move {
                let events = (0..3).map(|_| NewEvent::builder("E").build()).collect();
                store
                    .append(
                        &StreamId::new(format!("s-{i}"))?,
                        ExpectedVersion::NoStream,
                        events,
                    )
                    .await
            }
        });
        for result in futures::future::join_all(appends).await {
            result?;
        }
        // A refused append is a request of a round that writes nothing.
        let refused = store
            .append(
                &StreamId::new("s-0")?,
                ExpectedVersion::NoStream,
                vec![NewEvent::builder("E").build()],
            )
            .await;
        assert!(refused.is_err());
        store.close().await
    })?;

    let snapshot = take(snapshotter);
    let engine = [("engine", "postgres")];
    let values = |name: &str| histogram(&snapshot, name, &engine);
    let requests = values(names::COMMIT_REQUESTS);
    let events = values(names::COMMIT_EVENTS);
    assert_eq!(requests.iter().sum::<f64>(), 9.0, "{requests:?}");
    assert_eq!(events.iter().sum::<f64>(), 24.0, "{events:?}");
    assert_eq!(requests.len(), events.len());
    // The last round wrote nothing: no commit duration for it.
    let durations = values(names::COMMIT_DURATION);
    assert_eq!(durations.len(), requests.len() - 1);
    assert!(
        durations.iter().all(|s| *s > 0.0 && *s < 60.0),
        "{durations:?}"
    );
    assert_eq!(gauge(&snapshot, names::HEAD_POSITION, &engine), 24.0);
    assert_eq!(gauge(&snapshot, names::QUEUE_DEPTH, &engine), 1.0);
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
