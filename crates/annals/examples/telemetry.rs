//! A store with both layers, its telemetry served as Prometheus text.
//!
//! ```text
//! cargo run -p annals --example telemetry --features tracing,metrics
//! cargo run -p annals --example telemetry --features tracing,metrics -- 127.0.0.1:9464
//! curl http://127.0.0.1:9464/metrics
//! ```
//!
//! The store (`memory://`) is wrapped in a `TracingLayer` (its spans and
//! events go to stderr through `tracing-subscriber`, at `INFO`) and a
//! `MetricsLayer`; the metrics facade's recorder is
//! `metrics-exporter-prometheus`, whose text a small tokio listener serves
//! at `GET /metrics` (on a free port of 127.0.0.1 unless an address is
//! given). The example appends a few events, refuses one append on a
//! stale expectation, follows the log with a subscription until it has
//! read everything, and then serves until Ctrl-C. `crates/annals/tests/telemetry.rs`
//! runs the same code and scrapes the endpoint.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use annals::layer::{LayerExt, MetricsLayer, StreamIds, TracingLayer};
use annals::{EventStore, ExpectedVersion, NewEvent, Position, StoreConfig, StreamId};
use futures::StreamExt;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

type BoxResult<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

/// Appends the example makes (each to its own stream), besides the one it
/// has refused.
pub const APPENDS: u64 = 12;
/// Events in each append.
pub const EVENTS_PER_APPEND: u64 = 3;
/// The `backend` label of the layers' figures.
pub const BACKEND: &str = "memory";

/// Buckets of the duration histograms, in seconds (10 µs to 10 s): the
/// exporter renders a histogram without buckets as a summary.
const DURATION_BUCKETS: &[f64] = &[
    0.00001, 0.00005, 0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0,
];
/// The most bytes of a request's head the listener reads.
const MAX_REQUEST: usize = 8 << 10;
/// How long a client may take to send its request.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

#[tokio::main]
async fn main() -> ExitCode {
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("telemetry example failed: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> BoxResult<()> {
    let addr: SocketAddr = match std::env::args().nth(1) {
        Some(addr) => addr
            .parse()
            .map_err(|e| format!("the address {addr:?}: {e}"))?,
        None => SocketAddr::from(([127, 0, 0, 1], 0)),
    };
    tracing_subscriber::fmt()
        .with_max_level(tracing_subscriber::filter::LevelFilter::INFO)
        .with_writer(std::io::stderr)
        .init();
    let handle = install_recorder()?;
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|e| format!("listening on {addr}: {e}"))?;
    let addr = listener.local_addr()?;
    tokio::spawn(serve(listener, handle));
    demo().await?;
    println!("serving http://{addr}/metrics (Ctrl-C to stop)");
    tokio::signal::ctrl_c().await?;
    Ok(())
}

/// Installs the Prometheus recorder as the global one (once per process),
/// with buckets for the duration histograms.
pub fn install_recorder() -> BoxResult<PrometheusHandle> {
    Ok(PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Suffix("duration".into()), DURATION_BUCKETS)?
        .install_recorder()?)
}

/// Serves `GET /metrics` (the handle's text) on `listener`, one task per
/// connection, until the process ends.
pub async fn serve(listener: TcpListener, handle: PrometheusHandle) {
    loop {
        match listener.accept().await {
            Ok((socket, _)) => {
                tokio::spawn(respond(socket, handle.clone()));
            }
            // A connection that failed before it was accepted (reset,
            // out of descriptors): the next one may do.
            Err(e) => {
                eprintln!("accepting a connection: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// Answers one HTTP/1.x request and closes the connection.
async fn respond(mut socket: TcpStream, handle: PrometheusHandle) {
    let (status, body) =
        match tokio::time::timeout(REQUEST_TIMEOUT, request_line(&mut socket)).await {
            Ok(Some(line)) => {
                let mut parts = line.split(' ');
                match (parts.next(), parts.next()) {
                    (Some("GET"), Some("/metrics")) => ("200 OK", handle.render()),
                    (Some("GET"), Some(_)) => ("404 Not Found", "not found: try /metrics\n".into()),
                    _ => ("405 Method Not Allowed", "GET /metrics only\n".into()),
                }
            }
            Ok(None) => ("400 Bad Request", "a request line was expected\n".into()),
            Err(_) => ("408 Request Timeout", "no request\n".into()),
        };
    let response = format!(
        "HTTP/1.1 {status}\r\ncontent-type: text/plain; version=0.0.4; charset=utf-8\r\n\
         content-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    // A client gone before its answer is its own business.
    let _ = socket.write_all(response.as_bytes()).await;
    let _ = socket.shutdown().await;
}

/// The request line of the request on `socket`, once its whole head is
/// read (`None`: closed early, not text, or longer than [`MAX_REQUEST`]).
async fn request_line(socket: &mut TcpStream) -> Option<String> {
    let mut head = Vec::new();
    let mut chunk = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = socket.read(&mut chunk).await.ok()?;
        if n == 0 || head.len() + n > MAX_REQUEST {
            return None;
        }
        head.extend_from_slice(&chunk[..n]);
    }
    let head = std::str::from_utf8(&head).ok()?;
    head.lines().next().map(str::to_string)
}

/// The store with both layers: [`APPENDS`] appends of
/// [`EVENTS_PER_APPEND`] events, one append refused, a read, and a
/// subscription that follows the log until it has read every event.
pub async fn demo() -> BoxResult<()> {
    let store: annals::Store = Arc::new(
        annals::open_memory(StoreConfig::default())?
            .layer(TracingLayer::with_streams(StreamIds::Hashed).backend(BACKEND))
            .layer(MetricsLayer::new().backend(BACKEND)),
    );
    let events = EventStore::new(Arc::clone(&store));
    let total = APPENDS * EVENTS_PER_APPEND;
    // Started first: it reads while the appends go on, and its lag is
    // recorded before every page it reads.
    let mut subscription = events.subscribe_all(Position::START, None)?;
    let follower = tokio::spawn(async move {
        let mut read = 0u64;
        while read < total {
            match subscription.next().await {
                Some(Ok(_)) => read += 1,
                Some(Err(e)) => return Err(e),
                None => break,
            }
        }
        Ok(read)
    });
    for i in 0..APPENDS {
        let batch = (0..EVENTS_PER_APPEND)
            .map(|n| {
                NewEvent::builder("OrderLine")
                    .data(format!("{{\"line\":{n}}}").into_bytes())
                    .build()
            })
            .collect();
        store
            .append(
                &StreamId::new(format!("order-{i}"))?,
                ExpectedVersion::NoStream,
                batch,
            )
            .await?;
    }
    // A stale expectation: refused, and seen as such in the figures (and
    // as an `expectation failed` event on stderr).
    let refused = store
        .append(
            &StreamId::new("order-0")?,
            ExpectedVersion::NoStream,
            vec![NewEvent::builder("OrderLine").build()],
        )
        .await;
    if refused.is_ok() {
        return Err("a second NoStream append to order-0 was accepted".into());
    }
    store
        .read_all(Position::START, 100, annals::Direction::Forward, None)
        .await?;
    let read = tokio::time::timeout(Duration::from_secs(30), follower)
        .await
        .map_err(|_| "the subscription did not catch up within 30 s")???;
    if read != total {
        return Err(format!("the subscription read {read} of {total} events").into());
    }
    store.close().await?;
    Ok(())
}
