//! MetricsLayer over the in-memory backend: a debugging recorder checks
//! the names, labels and values recorded for appends, a failed
//! expectation, a replay and reads.

use annals_core::layer::{LayerExt, MetricsLayer, metric_names as names};
use annals_core::{
    Direction, ExpectedVersion, LogBackend, NewEvent, Position, Result, StoreConfig, StreamId,
};
mod recorded;

use recorded::{counter, histogram, recorded};

#[test]
fn counters_and_histograms_of_appends_failures_replays_and_reads() -> Result<()> {
    let snapshot = recorded(|| async {
        let store = annals_memory::open(StoreConfig::default())?
            .layer(MetricsLayer::new().backend("memory"));
        let cart = StreamId::new("cart-1")?;
        let written: Vec<NewEvent> = (0..3)
            .map(|_| NewEvent::builder("Added").data(vec![1u8; 100]).build())
            .collect();
        store
            .append(&cart, ExpectedVersion::NoStream, written.clone())
            .await?;
        // A replay of the same append, then a failed expectation.
        store
            .append(&cart, ExpectedVersion::NoStream, written)
            .await?;
        let failed = store
            .append(
                &cart,
                ExpectedVersion::exact(0),
                vec![NewEvent::builder("X").build()],
            )
            .await;
        assert!(failed.is_err_and(|e| e.is_wrong_expected_version()));
        store
            .read_all(Position(0), 2, Direction::Forward, None)
            .await?;
        store
            .read_all(Position(3), 10, Direction::Forward, None)
            .await?;
        store.stream_version(&cart).await?;
        Ok(())
    })?;

    let memory = ("backend", "memory");
    let append = ("operation", "append");
    assert_eq!(
        counter(
            &snapshot,
            names::APPENDS,
            &[memory, append, ("outcome", "ok")]
        ),
        2
    );
    assert_eq!(
        counter(
            &snapshot,
            names::APPENDS,
            &[memory, append, ("outcome", "error")]
        ),
        1
    );
    // Only the first append wrote: 3 events of 100 bytes.
    assert_eq!(counter(&snapshot, names::APPEND_EVENTS, &[memory]), 3);
    assert_eq!(counter(&snapshot, names::APPEND_BYTES, &[memory]), 300);
    assert_eq!(counter(&snapshot, names::APPEND_REPLAYS, &[memory]), 1);
    assert_eq!(
        counter(
            &snapshot,
            names::FAILURES,
            &[memory, append, ("error.kind", "wrong_expected_version")]
        ),
        1
    );
    let ok = histogram(
        &snapshot,
        names::APPEND_DURATION,
        &[memory, append, ("outcome", "ok")],
    );
    assert_eq!(ok.len(), 2);
    assert!(ok.iter().all(|s| *s >= 0.0 && *s < 60.0), "{ok:?}");
    assert_eq!(
        histogram(
            &snapshot,
            names::APPEND_DURATION,
            &[memory, append, ("outcome", "error")]
        )
        .len(),
        1
    );
    let read_all = ("operation", "read_all");
    assert_eq!(
        histogram(
            &snapshot,
            names::READ_DURATION,
            &[memory, read_all, ("outcome", "ok")]
        )
        .len(),
        2
    );
    assert_eq!(
        histogram(&snapshot, names::READ_PAGE_SIZE, &[memory, read_all]),
        [2.0, 1.0]
    );
    assert_eq!(
        histogram(
            &snapshot,
            names::OPERATION_DURATION,
            &[memory, ("operation", "stream_version"), ("outcome", "ok")]
        )
        .len(),
        1
    );
    Ok(())
}
