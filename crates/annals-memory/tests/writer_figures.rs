//! The KV writer's figures at round boundaries (feature `metrics` of
//! annals-core): group size in requests and events, commit duration,
//! queue depth and head. The writer runs on its own thread, so the
//! recorder is the global one: this binary holds this one test.

use annals_core::{Result, StoreConfig};
use metrics_util::debugging::DebuggingRecorder;

mod recorded;

#[tokio::test]
async fn a_commit_group_records_its_requests_events_duration_and_the_head() -> Result<()> {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    metrics::set_global_recorder(recorder).expect("the only recorder");
    let store = annals_memory::open(StoreConfig::default())?;
    recorded::commit_group(&store).await?;
    recorded::check_commit_group(&recorded::take(&snapshotter), "MemoryEngine");
    Ok(())
}
