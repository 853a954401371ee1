//! A subscription's lag behind the head, recorded before each page it
//! reads (feature `metrics` of annals-store).

use std::sync::Arc;

use annals_core::{ExpectedVersion, LogBackend, NewEvent, Position, Result, StoreConfig, StreamId};
use annals_store::{EventStore, LAG_METRIC};
use futures::StreamExt;
use metrics_util::debugging::{DebugValue, DebuggingRecorder};

#[test]
fn the_lag_shrinks_page_by_page_to_what_is_left() -> Result<()> {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a runtime");
    metrics::with_local_recorder(&recorder, || {
        runtime.block_on(async {
            let backend: Arc<dyn LogBackend> =
                Arc::new(annals_memory::open(StoreConfig::default())?);
            let events = (0..10).map(|_| NewEvent::builder("E").build()).collect();
            backend
                .append(&StreamId::new("s")?, ExpectedVersion::Any, events)
                .await?;
            let store = EventStore::builder(backend).page_size(4).open().await?;
            let mut subscription = store.subscribe_all(Position(0), None)?;
            for _ in 0..10 {
                subscription.next().await.expect("an event")?;
            }
            Ok::<_, annals_core::Error>(())
        })
    })?;
    let lags: Vec<f64> = snapshotter
        .snapshot()
        .into_vec()
        .into_iter()
        .find(|(key, ..)| key.key().name() == LAG_METRIC)
        .map(|(key, _, _, value)| {
            let labels: Vec<_> = key
                .key()
                .labels()
                .map(|l| (l.key().to_owned(), l.value().to_owned()))
                .collect();
            assert_eq!(labels, [("source".to_owned(), "all".to_owned())]);
            match value {
                DebugValue::Histogram(values) => values.iter().map(|v| v.into_inner()).collect(),
                other => panic!("{other:?}"),
            }
        })
        .expect("the lag histogram");
    // 10 behind before the first page of 4, then 6, then 2.
    assert_eq!(lags, [10.0, 6.0, 2.0]);
    Ok(())
}
