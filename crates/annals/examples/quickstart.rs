//! The annals quickstart: append, read, query, and watch the store refuse a
//! stale writer.
//!
//! ```text
//! cargo run --example quickstart                 # a redb file in a temporary folder
//! cargo run --example quickstart -- shop.redb    # a redb file you keep (run it twice!)
//! ```
//!
//! It runs on the embedded default backend, redb (`memory://` if annals was
//! built without the `redb` feature).

use std::process::ExitCode;

use annals::{
    Append, AppendCondition, AppendResult, Direction, Error, ExpectedVersion, NewEvent, Position,
    Query, RecordedEvent, Scheme, Store, StreamId, Version,
};

#[tokio::main]
async fn main() -> ExitCode {
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("quickstart failed: {e}");
            let mut source = e.source();
            while let Some(cause) = source {
                eprintln!("  caused by: {cause}");
                source = cause.source();
            }
            ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<(), Box<dyn std::error::Error>> {
    // Where the store lives: the path given, else a temporary folder that is
    // removed when `_temp` is dropped at the end.
    let mut _temp = None;
    let url = match std::env::args_os().nth(1) {
        Some(path) => Scheme::Redb.url_for(path)?,
        None if Scheme::Redb.is_compiled() => {
            let dir = tempfile::tempdir()?;
            let url = Scheme::Redb.url_for(dir.path().join("quickstart.redb"))?;
            _temp = Some(dir);
            url
        }
        None => "memory://".to_string(),
    };

    let store = annals::open(&url).await?;
    println!("annals quickstart");
    println!("store: {url}");
    let before = store
        .read_all(Position::MAX, 1, Direction::Backward, None)
        .await?;
    if before.head > Position::START {
        println!(
            "(this store already holds events up to position {}; this run appends after them)",
            before.head
        );
    }

    // Appends: each is atomic, gets consecutive versions in its stream
    // and consecutive positions in the global log.
    heading("1. Append events to three streams (each append is all-or-nothing)");
    let cart_1 = StreamId::new("cart-1")?;
    let cart_2 = StreamId::new("cart-2")?;
    let payments = StreamId::new("payments")?;
    let alice = "customer:alice";
    let bob = "customer:bob";

    let first = append(
        &store,
        &cart_1,
        vec![
            event("CartOpened", "{}", &[alice]),
            event(
                "ItemAdded",
                r#"{"sku":"apple","qty":2}"#,
                &[alice, "sku:apple"],
            ),
            event(
                "ItemAdded",
                r#"{"sku":"pear","qty":1}"#,
                &[alice, "sku:pear"],
            ),
        ],
    )
    .await?;
    append(
        &store,
        &cart_2,
        vec![
            event("CartOpened", "{}", &[bob]),
            event(
                "ItemAdded",
                r#"{"sku":"apple","qty":5}"#,
                &[bob, "sku:apple"],
            ),
        ],
    )
    .await?;
    append(
        &store,
        &payments,
        vec![event("PaymentReceived", r#"{"cents":450}"#, &[alice])],
    )
    .await?;
    append(&store, &cart_1, vec![event("CheckedOut", "{}", &[alice])]).await?;

    // Reading one stream, both ways.
    heading(&format!(
        "2. Read stream cart-1 forward, from version {} (where this run began)",
        first.first_version
    ));
    let page = store
        .read_stream(&cart_1, first.first_version, 100, Direction::Forward)
        .await?;
    show(&page.events);

    heading("3. Read stream cart-1 backward: its last 2 events, newest first");
    let page = store
        .read_stream(&cart_1, Version::MAX, 2, Direction::Backward)
        .await?;
    show(&page.events);

    // The global log: every stream, in commit order. Consumers follow it
    // by reading on from the last position they saw + 1.
    heading("4. Read all streams: the global log in commit order");
    let page = store
        .read_all(first.first_position, 100, Direction::Forward, None)
        .await?;
    show(&page.events);
    println!("   head of the log: position {}", page.head);

    // A tag query: across streams, still in commit order.
    heading("5. Query by tag: every event tagged sku:apple, in any stream");
    let apples = Query::tags(["sku:apple"]);
    let page = store
        .read_all(first.first_position, 100, Direction::Forward, Some(&apples))
        .await?;
    show(&page.events);

    // A stale writer: it read cart-1 when this run began and tries to
    // append after that, but the stream has moved on. Nothing is written.
    let stale_version = first.first_version;
    heading(&format!(
        "6. A stale writer appends to cart-1 expecting version {stale_version}"
    ));
    let stale = store
        .append(
            &cart_1,
            ExpectedVersion::Exact(stale_version),
            vec![event("ItemAdded", r#"{"sku":"plum"}"#, &[alice])],
        )
        .await;
    match stale {
        Err(e @ Error::WrongExpectedVersion { actual, .. }) => {
            println!("   refused: {e}");
            if let Some(v) = actual {
                println!(
                    "   -> cart-1 is really at version {v}: re-read it, decide again, retry expecting {v}"
                );
            }
        }
        Err(other) => return Err(other.into()),
        Ok(written) => return Err(format!("the stale append was accepted: {written:?}").into()),
    }

    // A Dynamic Consistency Boundary: decide from a query's page, and
    // append only if no matching event arrived since (its head).
    heading(
        "7. A DCB condition: reserve apples only if no sku:apple event arrived since we looked",
    );
    let seen = store
        .read_all(Position::START, 100, Direction::Forward, Some(&apples))
        .await?;
    let reserve = || {
        event(
            "StockReserved",
            r#"{"sku":"apple","qty":7}"#,
            &["sku:apple"],
        )
    };
    let decided = AppendCondition::new(apples.clone(), Some(seen.head));
    let written = store
        .append_with(
            Append::new(
                StreamId::new("stock-apple")?,
                ExpectedVersion::Any,
                vec![reserve()],
            )
            .condition(decided.clone()),
        )
        .await?;
    println!(
        "   accepted at position {} (decided from head {})",
        written.first_position, seen.head
    );
    let again = store
        .append_with(
            Append::new(
                StreamId::new("stock-apple")?,
                ExpectedVersion::Any,
                vec![reserve()],
            )
            .condition(decided),
        )
        .await;
    match again {
        Err(e @ Error::AppendConditionFailed { .. }) => {
            println!("   the same decision again is refused: {e}");
        }
        Err(other) => return Err(other.into()),
        Ok(written) => return Err(format!("the stale condition was accepted: {written:?}").into()),
    }

    // Durability: close, reopen, and everything acknowledged is there.
    store.close().await?;
    if Scheme::Redb.is_compiled() {
        heading("8. Close the store and open it again");
        let store = annals::open(&url).await?;
        let version = store.stream_version(&cart_1).await?;
        let head = store
            .read_all(Position::MAX, 1, Direction::Backward, None)
            .await?
            .head;
        println!(
            "   after reopening: cart-1 is at version {version}, the log's head is position {head}"
        );
        store.close().await?;
    }

    println!();
    match _temp {
        Some(_) => println!(
            "done; the temporary store is removed now. Keep one: cargo run --example quickstart -- shop.redb"
        ),
        None => println!("done."),
    }
    Ok(())
}

/// A new event of `event_type` with a text payload and tags.
fn event(event_type: &str, data: &str, tags: &[&str]) -> NewEvent {
    NewEvent::builder(event_type)
        .data(data.as_bytes().to_vec())
        .tags(tags.iter().copied())
        .build()
}

/// Appends `events` to `stream`, expecting it to be new — or, when this
/// example runs again on a kept file, to be where it is now — and prints
/// where they landed.
async fn append(
    store: &Store,
    stream: &StreamId,
    events: Vec<NewEvent>,
) -> annals::Result<AppendResult> {
    let expected = match store.stream_version(stream).await {
        Ok(version) => ExpectedVersion::Exact(version),
        Err(Error::StreamNotFound(_)) => ExpectedVersion::NoStream,
        Err(e) => return Err(e),
    };
    let types: Vec<String> = events.iter().map(|e| e.event_type.clone()).collect();
    let written = store.append(stream, expected, events).await?;
    println!(
        "   {:<11} expected {:<13} -> versions {}..={}, positions {}..={}: {}",
        stream.as_str(),
        expected.to_string(),
        written.first_version,
        written.last_version,
        written.first_position,
        written.last_position,
        types.join(", ")
    );
    Ok(written)
}

fn heading(text: &str) {
    println!();
    println!("{text}");
}

/// Prints events one a line: position, stream and version, type, payload, tags.
fn show(events: &[RecordedEvent]) {
    for e in events {
        println!(
            "   @{:<3} {:<12} v{:<2} {:<16} {:<26} [{}]",
            e.position.0,
            e.stream_id.as_str(),
            e.stream_version.0,
            e.event_type,
            String::from_utf8_lossy(&e.data),
            e.tags.join(", ")
        );
    }
}
