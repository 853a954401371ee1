//! A subscription's lag behind the head, recorded before each page it
//! reads (feature `metrics` of annals-store).

use std::sync::Arc;

use annals_core::{ExpectedVersion, LogBackend, NewEvent, Position, Result, StoreConfig, StreamId};
use annals_store::{EventStore, LAG_METRIC};
use futures::StreamExt;
mod recorded;

use recorded::{histogram, recorded};

#[test]
fn the_lag_shrinks_page_by_page_to_what_is_left() -> Result<()> {
    let snapshot = recorded(|| async {
        let backend: Arc<dyn LogBackend> = Arc::new(annals_memory::open(StoreConfig::default())?);
        let events = (0..10).map(|_| NewEvent::builder("E").build()).collect();
        backend
            .append(&StreamId::new("s")?, ExpectedVersion::Any, events)
            .await?;
        let store = EventStore::builder(backend).page_size(4).open().await?;
        let mut subscription = store.subscribe_all(Position(0), None)?;
        for _ in 0..10 {
            subscription.next().await.expect("an event")?;
        }
        Ok(())
    })?;
    let lags = histogram(&snapshot, LAG_METRIC, &[("source", "all")]);
    // 10 behind before the first page of 4, then 6, then 2.
    assert_eq!(lags, [10.0, 6.0, 2.0]);
    Ok(())
}
