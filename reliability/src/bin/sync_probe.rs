//! `annals-sync-probe URL`: five appends (the last one large) to the store
//! at `URL`, each between two marks written to /dev/null
//! (`ANNALS-BEGIN-i`, `ANNALS-END-i`), so that an strace of this process
//! shows which system calls each append made before it returned. The
//! power-loss test reads that trace.

use std::io::Write;
use std::process::ExitCode;

use annals::{ExpectedVersion, NewEvent, StreamId};

async fn probe(url: &str) -> annals::Result<()> {
    let mut marks = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/null")
        .map_err(|e| annals::Error::backend("opening /dev/null", e))?;
    let mut mark = |text: String| {
        marks
            .write_all(text.as_bytes())
            .map_err(|e| annals::Error::backend("writing a mark", e))
    };
    let store = annals::open(url).await?;
    let stream = StreamId::new("probe")?;
    for i in 0..5u8 {
        // The last one is large (a blob file in sled, a big WAL record).
        let size = if i == 4 { 300_000 } else { 100 };
        let event = NewEvent::builder("Probe").data(vec![i; size]).build();
        mark(format!("ANNALS-BEGIN-{i}"))?;
        store
            .append(&stream, ExpectedVersion::Any, vec![event])
            .await?;
        mark(format!("ANNALS-END-{i}"))?;
    }
    store.close().await
}

fn main() -> ExitCode {
    let Some(url) = std::env::args().nth(1) else {
        eprintln!("usage: annals-sync-probe URL");
        return ExitCode::from(2);
    };
    let result = tokio::runtime::Runtime::new()
        .map_err(|e| annals::Error::backend("starting tokio", e))
        .and_then(|runtime| runtime.block_on(probe(&url)));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("annals-sync-probe: {e}");
            ExitCode::FAILURE
        }
    }
}
