//! MetricsLayer and the KV writer keep each metric's handle for the
//! recorder it was registered with; a recorder installed after the layer
//! was built, and a thread-local one set while the global one's handles
//! are kept, still get every series. The global recorder is installed
//! here: this binary holds this one test.

use annals_core::kv::figures::names as figures;
use annals_core::layer::{LayerExt, MetricsLayer, metric_names as names};
use annals_core::{ExpectedVersion, LogBackend, NewEvent, Result, StoreConfig, StreamId};
use metrics_util::debugging::DebuggingRecorder;

mod recorded;

use recorded::{counter, gauge, histogram, take};

#[test]
fn recorders_installed_after_the_layer_was_built_get_every_series() -> Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a runtime");
    let store =
        annals_memory::open(StoreConfig::default())?.layer(MetricsLayer::new().backend("memory"));
    let stream = StreamId::new("s")?;
    let append = |n: usize| {
        runtime.block_on(async {
            let events = (0..n).map(|_| NewEvent::builder("E").build()).collect();
            store.append(&stream, ExpectedVersion::Any, events).await?;
            Ok::<_, annals_core::Error>(())
        })
    };
    let memory = [("backend", "memory")];
    let ok = [
        ("backend", "memory"),
        ("operation", "append"),
        ("outcome", "ok"),
    ];

    // No recorder yet: nothing recorded anywhere.
    append(1)?;

    // A thread-local recorder, before any global one.
    let first = DebuggingRecorder::new();
    let first_snapshot = first.snapshotter();
    metrics::with_local_recorder(&first, || append(2))?;
    let first_seen = take(&first_snapshot);
    assert_eq!(counter(&first_seen, names::APPENDS, &ok), 1);
    assert_eq!(counter(&first_seen, names::APPEND_EVENTS, &memory), 2);

    // The global recorder, installed after the layer and the store were
    // built: every append from now on, the writer's figures too.
    let global = DebuggingRecorder::new();
    let global_snapshot = global.snapshotter();
    metrics::set_global_recorder(global).expect("the only global recorder");
    append(3)?;
    append(4)?;

    // A thread-local recorder while the global one's handles are kept:
    // the local one gets the call, the global one does not.
    let second = DebuggingRecorder::new();
    let second_snapshot = second.snapshotter();
    metrics::with_local_recorder(&second, || append(5))?;
    let second_seen = take(&second_snapshot);
    assert_eq!(counter(&second_seen, names::APPENDS, &ok), 1);
    assert_eq!(counter(&second_seen, names::APPEND_EVENTS, &memory), 5);
    assert_eq!(
        histogram(&second_seen, names::APPEND_DURATION, &ok).len(),
        1
    );

    // The same local recorder again (a snapshot takes what it shows),
    // then the global one again.
    metrics::with_local_recorder(&second, || append(6))?;
    assert_eq!(
        counter(&take(&second_snapshot), names::APPEND_EVENTS, &memory),
        6
    );
    append(7)?;
    let global_seen = take(&global_snapshot);
    assert_eq!(counter(&global_seen, names::APPENDS, &ok), 3);
    assert_eq!(
        counter(&global_seen, names::APPEND_EVENTS, &memory),
        3 + 4 + 7
    );
    assert_eq!(
        histogram(&global_seen, names::APPEND_DURATION, &ok).len(),
        3
    );
    // The writer runs on its own thread: it records into the global
    // recorder whichever recorder the caller's thread has.
    let engine = [("engine", "MemoryEngine")];
    assert_eq!(
        gauge(&global_seen, figures::HEAD_POSITION, &engine),
        (1 + 2 + 3 + 4 + 5 + 6 + 7) as f64
    );
    assert_eq!(
        histogram(&global_seen, figures::COMMIT_EVENTS, &engine),
        [3.0, 4.0, 5.0, 6.0, 7.0]
    );
    Ok(())
}
