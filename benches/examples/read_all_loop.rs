//! A store filled with the benchmark's events, then read whole with
//! `read_all` again and again: a loop to profile the read path alone
//! (`perf record`, callgrind), without the other workloads' samples.
//!
//! ```text
//! cargo build --release -p annals-bench --example read_all_loop
//! perf record -g target/release/examples/read_all_loop memory:// 200000 5
//! target/release/examples/read_all_loop redb:///tmp/p/store.redb 200000 5
//! ```
//!
//! Arguments: store URL (default `memory://`), events (default 200 000),
//! passes over the store (default 5). Prints events/s of each pass.

use std::time::Instant;

use annals::{Direction, ExpectedVersion, NewEvent, Position, StreamId};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let url = args.next().unwrap_or_else(|| "memory://".to_string());
    let events: u64 = args.next().map_or(Ok(200_000), |a| a.parse())?;
    let passes: u32 = args.next().map_or(Ok(5), |a| a.parse())?;
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async {
        let store = annals::open(&url).await?;
        let mut i = 0u64;
        while i < events {
            let n = 100.min(events - i);
            let stream = StreamId::new(format!("order-{}", i / 1000))?;
            let batch: Vec<NewEvent> = (i..i + n)
                .map(|j| {
                    NewEvent::builder(["OrderPlaced", "ItemAdded"][(j % 2) as usize])
                        .data(vec![b'x'; 100])
                        .tag(format!("customer-{}", j % 10))
                        .build()
                })
                .collect();
            store.append(&stream, ExpectedVersion::Any, batch).await?;
            i += n;
        }
        for pass in 0..passes {
            let start = Instant::now();
            let (mut from, mut seen) = (Position::START, 0u64);
            loop {
                let page = store.read_all(from, 1000, Direction::Forward, None).await?;
                let Some(last) = page.events.last() else {
                    break;
                };
                from = Position(last.position.0 + 1);
                seen += page.events.len() as u64;
            }
            let rate = seen as f64 / start.elapsed().as_secs_f64();
            println!("pass {pass}: {seen} events, {:.2} M events/s", rate / 1e6);
        }
        store.close().await?;
        Ok::<_, Box<dyn std::error::Error>>(())
    })
}
