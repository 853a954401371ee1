//! Microbenchmarks of what every key-value backend does per event: the
//! record codec (seal, encode, checksum, decode) and the key layout.
//!
//! `cargo bench -p annals-bench --bench codec`
#![allow(missing_docs)]

use std::hint::black_box;

use annals::kv::{codec, layout};
use annals::{NewEvent, Position, Timestamp, Version};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

fn event(size: usize) -> NewEvent {
    NewEvent::builder("OrderPlaced")
        .data(vec![b'x'; size])
        .tag("customer-7")
        .build()
}

fn record_codec(c: &mut Criterion) {
    let mut group = c.benchmark_group("record");
    for size in [100usize, 1000, 10_000] {
        let e = event(size);
        let key = layout::log_key(Position(123_456));
        let parts = codec::EventParts {
            stream_id: "order-42",
            version: Version(7),
            recorded_at: Timestamp(1_700_000_000_000_000),
            event_id: e.event_id,
            event_type: &e.event_type,
            data: &e.data,
            metadata: &e.metadata,
            tags: &e.tags,
        };
        let value = codec::encode_event(&key, &parts).expect("encodes");
        group.throughput(Throughput::Bytes(size as u64));
        group.bench_function(format!("encode/{size}"), |b| {
            b.iter(|| codec::encode_event(black_box(&key), black_box(&parts)))
        });
        group.bench_function(format!("decode/{size}"), |b| {
            b.iter(|| codec::decode_event(black_box(&key), Position(123_456), black_box(&value)))
        });
        group.bench_function(format!("entries/{size}"), |b| {
            b.iter(|| {
                codec::event_entries(
                    black_box("order-42"),
                    Version(7),
                    Position(123_456),
                    Timestamp(1_700_000_000_000_000),
                    black_box(&e),
                )
            })
        });
    }
    group.finish();
}

fn keys(c: &mut Criterion) {
    let mut group = c.benchmark_group("key");
    group.bench_function("log", |b| {
        b.iter(|| layout::log_key(black_box(Position(123_456))))
    });
    group.bench_function("stream_index", |b| {
        b.iter(|| layout::stream_index_key(black_box("order-42"), Version(7)))
    });
    group.bench_function("tag", |b| {
        b.iter(|| layout::tag_key(black_box("customer-7"), Position(123_456)))
    });
    let key = layout::stream_index_key("order-42", Version(7));
    group.bench_function("trailing_number", |b| {
        b.iter(|| layout::trailing_number(black_box(&key)))
    });
    group.finish();
}

criterion_group!(benches, record_codec, keys);
criterion_main!(benches);
