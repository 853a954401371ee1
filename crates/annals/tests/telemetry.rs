//! The telemetry example, run as a test: its store with both layers under
//! the Prometheus recorder, then `/metrics` scraped over HTTP and its series
//! checked. The recorder is the process's global one: this binary holds
//! this one test.
#![allow(clippy::unwrap_used)]

#[path = "../examples/telemetry.rs"]
#[allow(dead_code)] // Its `main` is the example's, not the test's.
mod example;

use std::collections::HashMap;
use std::net::SocketAddr;

use example::{APPENDS, BACKEND, EVENTS_PER_APPEND};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// `GET path` over a new connection: the status line and the body.
async fn get(addr: SocketAddr, path: &str) -> (String, String) {
    let mut socket = TcpStream::connect(addr).await.unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\n\r\n");
    socket.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    socket.read_to_string(&mut response).await.unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap();
    let status = head.lines().next().unwrap().to_string();
    (status, body.to_string())
}

/// The samples of a Prometheus text: `name{labels}` (labels as rendered)
/// to value.
fn samples(text: &str) -> HashMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let (series, value) = l.rsplit_once(' ').unwrap();
            (series.to_string(), value.parse().unwrap())
        })
        .collect()
}

/// The value of `series`, or a failure listing what is there.
fn value(samples: &HashMap<String, f64>, series: &str) -> f64 {
    match samples.get(series) {
        Some(v) => *v,
        None => {
            let mut names: Vec<&String> = samples.keys().collect();
            names.sort();
            panic!("{series} is not served; the series are {names:#?}")
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_example_serves_its_figures_as_prometheus_text() {
    let handle = example::install_recorder().unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(example::serve(listener, handle));
    example::demo().await.unwrap();

    let (status, body) = get(addr, "/metrics").await;
    assert_eq!(status, "HTTP/1.1 200 OK", "{body}");
    assert!(body.contains("# TYPE annals_appends counter"), "{body}");
    assert!(
        body.contains("# TYPE annals_append_duration histogram"),
        "{body}"
    );
    let s = samples(&body);
    let appends = APPENDS as f64;
    let events = (APPENDS * EVENTS_PER_APPEND) as f64;
    let ok = format!("backend=\"{BACKEND}\",operation=\"append\",outcome=\"ok\"");
    let refused = format!("backend=\"{BACKEND}\",operation=\"append\",outcome=\"error\"");
    // Appends counted exactly, the refused one apart.
    assert_eq!(value(&s, &format!("annals_appends{{{ok}}}")), appends);
    assert_eq!(value(&s, &format!("annals_appends{{{refused}}}")), 1.0);
    assert_eq!(
        value(
            &s,
            &format!(
                "annals_failures{{backend=\"{BACKEND}\",operation=\"append\",\
                 error_kind=\"wrong_expected_version\"}}"
            )
        ),
        1.0
    );
    assert_eq!(
        value(
            &s,
            &format!("annals_append_events{{backend=\"{BACKEND}\"}}")
        ),
        events
    );
    // The latency histogram: one observation per append, every one in
    // the +Inf bucket, a sum that is a plausible time.
    assert_eq!(
        value(&s, &format!("annals_append_duration_count{{{ok}}}")),
        appends
    );
    assert_eq!(
        value(
            &s,
            &format!("annals_append_duration_bucket{{{ok},le=\"+Inf\"}}")
        ),
        appends
    );
    let sum = value(&s, &format!("annals_append_duration_sum{{{ok}}}"));
    assert!(sum > 0.0 && sum < 30.0, "{sum}");
    // The KV writer's figures: every event committed once, the head at
    // the last.
    let engine = "engine=\"MemoryEngine\"";
    assert_eq!(
        value(&s, &format!("annals_writer_commit_events_sum{{{engine}}}")),
        events
    );
    assert_eq!(
        value(&s, &format!("annals_head_position{{{engine}}}")),
        events
    );
    let commits = value(
        &s,
        &format!("annals_writer_commit_duration_count{{{engine}}}"),
    );
    assert!(commits >= 1.0 && commits <= appends, "{commits}");
    // The subscription's lag: recorded before each page, never beyond
    // the log.
    let pages = value(&s, "annals_subscription_lag_count{source=\"all\"}");
    assert!(pages >= 1.0, "{pages}");
    let lag = value(&s, "annals_subscription_lag{source=\"all\",quantile=\"1\"}");
    assert!((0.0..=events).contains(&lag), "{lag}");

    let (status, _) = get(addr, "/other").await;
    assert_eq!(status, "HTTP/1.1 404 Not Found");
}
