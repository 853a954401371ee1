//! A live projection that survives a restart, exactly once.
//!
//! ```text
//! cargo run --example projection                  # a redb file in a temporary folder
//! cargo run --example projection -- shop.redb     # a redb file you keep
//! ```
//!
//! The projection "revenue per customer" follows the log with a
//! subscription. After each event it saves its state *and* its checkpoint
//! in one atomic aux write, so the two can never disagree. The example
//! stops the projection half-way, closes the store, opens it again, appends
//! more orders, and starts the projection again: it resumes right after the
//! last event it handled — nothing skipped, nothing counted twice — and the
//! example checks that against a recount of the whole log.
//!
//! It runs on the embedded default backend, redb (`memory://` if annals was
//! built without the `redb` feature; then the store cannot be reopened, and
//! the restart reuses the open store).

use std::collections::BTreeMap;
use std::process::ExitCode;

use annals::{
    AuxWrite, Direction, EventStore, ExpectedVersion, Position, Query, RecordedEvent, Scheme,
    Store, StreamId, TypedEvent,
};
use futures::StreamExt;
use serde::{Deserialize, Serialize};

type BoxResult<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

/// The projection's consumer name: its checkpoint is
/// `annals-store/checkpoint/revenue`.
const PROJECTION: &str = "revenue";

/// Where the projection keeps its state, beside its checkpoint.
const STATE_KEY: &[u8] = b"example/projection/revenue";

/// An order: the one event type this example writes.
#[derive(Serialize, Deserialize, Debug)]
struct OrderPlaced {
    customer: String,
    cents: u64,
}

impl TypedEvent for OrderPlaced {
    const EVENT_TYPE: &'static str = "OrderPlaced";
    fn tags(&self) -> Vec<String> {
        vec![format!("customer:{}", self.customer)]
    }
}

/// Revenue per customer, and which events it has counted.
#[derive(Serialize, Deserialize, Default, Debug, PartialEq)]
struct Revenue {
    cents: BTreeMap<String, u64>,
    events: u64,
}

#[tokio::main]
async fn main() -> ExitCode {
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("projection example failed: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> BoxResult<()> {
    let mut _temp = None;
    let url = match std::env::args_os().nth(1) {
        Some(path) => Scheme::Redb.url_for(path)?,
        None if Scheme::Redb.is_compiled() => {
            let dir = tempfile::tempdir()?;
            let url = Scheme::Redb.url_for(dir.path().join("projection.redb"))?;
            _temp = Some(dir);
            url
        }
        None => "memory://".to_string(),
    };
    let persistent = Scheme::Redb.is_compiled();

    println!("annals projection example");
    println!("store: {url}");
    let backend = annals::open(&url).await?;
    let store = EventStore::new(backend.clone());
    let start = store.checkpoint(PROJECTION).await?;
    if let Some(p) = start {
        println!(
            "(this store's projection is already at position {p}; this run goes on from there)"
        );
    }

    println!();
    println!("1. The projection starts and follows the log live while ten orders are placed;");
    println!("   it is stopped after handling 6 of them.");
    let projection = tokio::spawn({
        let store = store.clone();
        async move { run_projection(&store, 6).await }
    });
    place_orders(&store, 0..10).await?;
    let first = projection.await??;
    let stopped_at = store
        .checkpoint(PROJECTION)
        .await?
        .ok_or("no checkpoint after the first run")?;
    println!("   stopped; its checkpoint says position {stopped_at}");
    if first.last().copied() != Some(stopped_at) {
        return Err(format!(
            "the checkpoint {stopped_at} is not the last event handled ({:?})",
            first.last()
        )
        .into());
    }

    let (backend, store) = if persistent {
        println!();
        println!("2. The store is closed and opened again (a restart).");
        backend.close().await?;
        drop(store);
        let backend = annals::open(&url).await?;
        let store = EventStore::new(backend.clone());
        (backend, store)
    } else {
        println!();
        println!("2. (memory:// cannot be reopened: the restart reuses the open store.)");
        (backend, store)
    };

    println!();
    println!("3. While the projection is down, five more orders are placed.");
    place_orders(&store, 10..15).await?;

    println!();
    println!("4. The projection starts again from its checkpoint: it catches up with the 9");
    println!("   orders it has not handled, then follows two more placed while it runs.");
    let projection = tokio::spawn({
        let store = store.clone();
        async move { run_projection(&store, 11).await }
    });
    place_orders(&store, 15..17).await?;
    let second = projection.await??;
    let resumed_at = second
        .first()
        .copied()
        .ok_or("the second run handled nothing")?;

    // Check it: the second run began with the first event after the
    // checkpoint, and the two runs together handled every order once.
    let orders = order_positions(&backend, start).await?;
    let after_checkpoint = orders.iter().copied().find(|&p| p > stopped_at);
    if Some(resumed_at) != after_checkpoint {
        return Err(format!(
            "resumed at {resumed_at}, but the first order after checkpoint {stopped_at} is at {after_checkpoint:?}"
        )
        .into());
    }
    let handled: Vec<Position> = first.iter().chain(&second).copied().collect();
    if handled != orders {
        return Err(format!("handled {handled:?}, but the orders are at {orders:?}").into());
    }
    let state = load_state(&store).await?;
    let recount = recount(&backend).await?;
    if state != recount {
        return Err(format!("projection {state:?} differs from a recount {recount:?}").into());
    }
    println!();
    println!(
        "resumed exactly at position {resumed_at}, the first order after checkpoint {stopped_at}: \
         {} events handled in two runs, each once; the projection equals a recount of the log:",
        handled.len()
    );
    for (customer, cents) in &state.cents {
        println!("   {customer:<6} {:>4}.{:02}", cents / 100, cents % 100);
    }
    backend.close().await?;
    Ok(())
}

/// Places orders `range` (customers take turns), each in its own stream.
async fn place_orders(store: &EventStore, range: std::ops::Range<u64>) -> annals::Result<()> {
    const CUSTOMERS: [&str; 3] = ["alice", "bob", "carol"];
    for i in range {
        let customer = CUSTOMERS[(i % 3) as usize].to_string();
        let order = OrderPlaced {
            customer,
            cents: 250 + 125 * i,
        };
        let stream = StreamId::new(format!("order-{}", annals::Uuid::now_v7()))?;
        let written = store
            .append_typed(&stream, ExpectedVersion::NoStream, &[order])
            .await?;
        println!("   placed an order at position {}", written.first_position);
    }
    Ok(())
}

/// Runs the projection from its checkpoint: handles orders as they come,
/// saving state and checkpoint together after each, and stops after
/// `count` of them. Answers the positions it handled.
async fn run_projection(store: &EventStore, count: usize) -> BoxResult<Vec<Position>> {
    let mut state = load_state(store).await?;
    let mut previous = store.checkpoint(PROJECTION).await?;
    let mut orders = store
        .subscribe_from_checkpoint(PROJECTION, Some(Query::types([OrderPlaced::EVENT_TYPE])))
        .await?;
    let mut handled = Vec::new();
    while handled.len() < count {
        let event = orders.next().await.ok_or("the subscription ended")??;
        let order = OrderPlaced::from_recorded(&event)?;
        *state.cents.entry(order.customer.clone()).or_default() += order.cents;
        state.events += 1;
        // The state and the checkpoint in one atomic write ([X2]): a crash
        // keeps both from before this event or both from after it.
        store
            .backend()
            .aux_write(vec![
                AuxWrite::put(STATE_KEY, serde_json::to_vec(&state)?),
                EventStore::checkpoint_write(PROJECTION, previous, event.position)?,
            ])
            .await?;
        println!(
            "   projection: handled position {:>2} ({} +{} cents)",
            event.position, order.customer, order.cents
        );
        previous = Some(event.position);
        handled.push(event.position);
    }
    // Dropping the subscription stops it.
    drop(orders);
    Ok(handled)
}

async fn load_state(store: &EventStore) -> BoxResult<Revenue> {
    Ok(match store.backend().aux_get(STATE_KEY).await? {
        Some(bytes) => serde_json::from_slice(&bytes)?,
        None => Revenue::default(),
    })
}

/// The positions of every order after `after` (the checkpoint this run of
/// the example started from), in commit order.
async fn order_positions(
    backend: &Store,
    after: Option<Position>,
) -> annals::Result<Vec<Position>> {
    let from = after.map_or(Position::START, Position::next);
    Ok(orders(backend, from)
        .await?
        .iter()
        .map(|e| e.position)
        .collect())
}

/// The projection computed from scratch from the whole log.
async fn recount(backend: &Store) -> BoxResult<Revenue> {
    let mut revenue = Revenue::default();
    for event in orders(backend, Position::START).await? {
        let order = OrderPlaced::from_recorded(&event)?;
        *revenue.cents.entry(order.customer).or_default() += order.cents;
        revenue.events += 1;
    }
    Ok(revenue)
}

/// Every order from `from` on, paging through the log.
async fn orders(backend: &Store, mut from: Position) -> annals::Result<Vec<RecordedEvent>> {
    let query = Query::types([OrderPlaced::EVENT_TYPE]);
    let mut out = Vec::new();
    loop {
        let page = backend
            .read_all(from, 500, Direction::Forward, Some(&query))
            .await?;
        let n = page.events.len();
        if let Some(last) = page.events.last() {
            from = last.position.next();
        }
        out.extend(page.events);
        if n < 500 {
            return Ok(out);
        }
    }
}
