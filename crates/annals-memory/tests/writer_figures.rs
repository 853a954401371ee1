//! The KV writer's figures at round boundaries (feature `metrics` of
//! annals-core): group size in requests and events, commit duration,
//! queue depth and head. The writer runs on its own thread, so the
//! recorder is the global one: this binary holds this one test.

use annals_core::kv::figures::names;
use annals_core::{ExpectedVersion, LogBackend, NewEvent, Result, StoreConfig, StreamId};
use metrics_util::debugging::DebuggingRecorder;

mod recorded;

use recorded::{gauge, histogram, take};

#[tokio::test]
async fn a_commit_group_records_its_requests_events_duration_and_the_head() -> Result<()> {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    metrics::set_global_recorder(recorder).expect("the only recorder");
    let store = annals_memory::open(StoreConfig::default())?;
    // 8 appends of 3 events sent together: grouped as the writer finds
    // them, whatever the grouping, every request and event is counted once.
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
    // A refused append is a request of a round that commits nothing.
    let refused = store
        .append(
            &StreamId::new("s-0")?,
            ExpectedVersion::NoStream,
            vec![NewEvent::builder("E").build()],
        )
        .await;
    assert!(refused.is_err());

    let snapshot = take(&snapshotter);
    let engine = [("engine", "MemoryEngine")];
    let values = |name: &str| histogram(&snapshot, name, &engine);
    let requests = values(names::COMMIT_REQUESTS);
    let events = values(names::COMMIT_EVENTS);
    assert_eq!(requests.iter().sum::<f64>(), 9.0, "{requests:?}");
    assert_eq!(events.iter().sum::<f64>(), 24.0, "{events:?}");
    assert_eq!(requests.len(), events.len());
    // The last round committed nothing: no commit duration for it.
    let durations = values(names::COMMIT_DURATION);
    assert_eq!(durations.len(), requests.len() - 1);
    assert!(
        durations.iter().all(|s| *s >= 0.0 && *s < 60.0),
        "{durations:?}"
    );
    assert_eq!(gauge(&snapshot, names::HEAD_POSITION, &engine), 24.0);
    assert_eq!(gauge(&snapshot, names::QUEUE_DEPTH, &engine), 1.0);
    Ok(())
}
