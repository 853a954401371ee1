//! The events every workload writes, and the timing helpers that turn runs
//! into figures.
//!
//! Event `i` (counting from 0 over the whole store) goes to stream
//! `order-{i / 1000}` — events are appended in batches of 100, ten batches
//! per stream, so every stream holds 1000 events once it is full — with
//! one of [`TYPES`] and the tag `customer-{i % TAGS}`. Its data is a JSON
//! object padded with pseudo-random lowercase words to exactly the event
//! size, compressible about as much as real JSON payloads.

use std::time::{Duration, Instant};

use annals::{NewEvent, StreamId};
use serde::Serialize;

/// Events per append in the batch workloads.
pub const BATCH: u64 = 100;
/// Events per stream once it is full.
pub const STREAM_EVENTS: u64 = 1000;
/// Distinct tags: a tag query matches one event in `TAGS`.
pub const TAGS: u64 = 10;
/// The event types: a type query matches one event in four.
pub const TYPES: [&str; 4] = ["OrderPlaced", "ItemAdded", "PaymentTaken", "OrderShipped"];
/// Events per page in the page workloads.
pub const PAGE: usize = 100;
/// Events per page when scanning a whole store.
pub const SCAN_PAGE: usize = 1000;

/// A small deterministic generator (xorshift64*): the same run writes the
/// same bytes, and no `rand` dependency for a few random numbers.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    /// A generator from `seed` (any value).
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    /// The next number.
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A number in `0..n` (`n > 0`).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }
}

/// The stream of event `i`.
pub fn stream_of(i: u64) -> StreamId {
    stream_named(&format!("order-{}", i / STREAM_EVENTS))
}

/// The stream `name` (always a valid id here).
pub fn stream_named(name: &str) -> StreamId {
    StreamId::new(name).unwrap_or_else(|e| panic!("benchmark stream id {name:?}: {e}"))
}

/// The tag of event `i`.
pub fn tag_of(i: u64) -> String {
    format!("customer-{}", i % TAGS)
}

/// Event `i`, whose data is `size` bytes.
pub fn event(i: u64, size: usize) -> NewEvent {
    let event_type = TYPES[(i % TYPES.len() as u64) as usize];
    NewEvent::builder(event_type)
        .data(payload(i, size))
        .tag(tag_of(i))
        .build()
}

/// Events `from..from + count`.
pub fn events(from: u64, count: u64, size: usize) -> Vec<NewEvent> {
    (from..from + count).map(|i| event(i, size)).collect()
}

/// `size` bytes of JSON-like data for event `i`.
pub fn payload(i: u64, size: usize) -> Vec<u8> {
    const WORDS: [&str; 16] = [
        "alpha", "bravo", "cargo", "delta", "eagle", "fresh", "green", "hotel", "ivory", "jolly",
        "karma", "lemon", "metro", "noble", "ocean", "piano",
    ];
    let mut rng = Rng::new(i);
    let mut text = format!("{{\"order\":{i},\"qty\":{},\"note\":\"", rng.below(100));
    while text.len() < size {
        text.push_str(WORDS[rng.below(WORDS.len() as u64) as usize]);
        text.push(' ');
    }
    let mut bytes = text.into_bytes();
    bytes.truncate(size.saturating_sub(2));
    bytes.extend_from_slice(&b"\"}"[..size.min(2)]);
    bytes
}

/// A throughput figure: how many operations (events, appends, pages) in
/// how long, and the latency of one operation.
#[derive(Clone, Debug, Serialize)]
pub struct Rate {
    /// Events processed.
    pub events: u64,
    /// Wall-clock seconds.
    pub seconds: f64,
    /// `events / seconds`.
    pub per_second: f64,
    /// Median latency of one operation (one append, one page), µs.
    pub p50_us: Option<f64>,
    /// 99th percentile of the same, µs.
    pub p99_us: Option<f64>,
}

impl Rate {
    /// The figure of `events` processed in `elapsed`, with the latencies of
    /// each operation (empty when not measured).
    pub fn new(events: u64, elapsed: Duration, mut latencies: Vec<Duration>) -> Rate {
        let seconds = elapsed.as_secs_f64().max(1e-9);
        latencies.sort_unstable();
        Rate {
            events,
            seconds,
            per_second: events as f64 / seconds,
            p50_us: percentile(&latencies, 0.50),
            p99_us: percentile(&latencies, 0.99),
        }
    }
}

/// The `q` quantile of sorted `values`, in µs.
fn percentile(sorted: &[Duration], q: f64) -> Option<f64> {
    let last = sorted.len().checked_sub(1)?;
    let index = ((last as f64) * q).round() as usize;
    Some(sorted[index.min(last)].as_secs_f64() * 1e6)
}

/// Records the latency of each operation of a run.
#[derive(Debug, Default)]
pub struct Latencies(pub Vec<Duration>);

impl Latencies {
    /// Times `op`.
    pub async fn time<T>(&mut self, op: impl Future<Output = T>) -> T {
        let start = Instant::now();
        let out = op.await;
        self.0.push(start.elapsed());
        out
    }
}

/// Formats a rate for a table: `1.23 M`, `456 k`, `789`.
pub fn human(per_second: f64) -> String {
    if per_second >= 1e6 {
        format!("{:.2} M", per_second / 1e6)
    } else if per_second >= 1e4 {
        format!("{:.0} k", per_second / 1e3)
    } else if per_second >= 1e3 {
        format!("{:.1} k", per_second / 1e3)
    } else {
        format!("{per_second:.0}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_have_the_exact_size_and_differ() {
        for size in [0, 1, 2, 10, 100, 1000] {
            assert_eq!(payload(7, size).len(), size);
        }
        assert_ne!(payload(1, 100), payload(2, 100));
        assert_eq!(payload(3, 100), payload(3, 100));
    }

    #[test]
    fn streams_hold_ten_batches() {
        assert_eq!(stream_of(0), stream_of(999));
        assert_ne!(stream_of(999), stream_of(1000));
    }

    #[test]
    fn percentiles() {
        let ms = |n| Duration::from_millis(n);
        let r = Rate::new(10, Duration::from_secs(2), (1..=100).map(ms).collect());
        assert_eq!(r.per_second, 5.0);
        assert_eq!(r.p50_us, Some(51_000.0));
        assert_eq!(r.p99_us, Some(99_000.0));
        assert_eq!(Rate::new(1, ms(1), vec![]).p50_us, None);
    }
}
