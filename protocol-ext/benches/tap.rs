//! The connection tap's cost.
//!
//! - `tap/header_and_correlation`: pipelined small request frames and their responses for an
//!   API whose bodies are skipped — the per-frame cost of peeking the header, matching the
//!   response by correlation id and settling the events (target: under 100 ns per frame).
//! - `tap/java_session`: byte streams captured from a real Java producer and consumer
//!   (`fixtures/`), replayed through the tap in 64 KiB chunks, settled after each: bytes per
//!   second over realistic traffic.

use std::time::Instant;

use bytes::{BufMut, BytesMut};
use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use sluice_protocol::tap::topics::TopicNames;
use sluice_protocol::tap::{ConnectionTap, TapHalf};
use sluice_protocol::Dir;

/// A ListOffsets v7 request (header v1, client id "bench-client") with a 40-byte body.
fn request(correlation_id: i32) -> Vec<u8> {
    let mut b = BytesMut::new();
    b.put_i16(2);
    b.put_i16(7);
    b.put_i32(correlation_id);
    b.put_i16(12);
    b.put_slice(b"bench-client");
    b.put_slice(&[0u8; 40]);
    let mut f = (b.len() as i32).to_be_bytes().to_vec();
    f.extend_from_slice(&b);
    f
}

/// Its response (header v0) with a 60-byte body.
fn response(correlation_id: i32) -> Vec<u8> {
    let mut f = (64i32).to_be_bytes().to_vec();
    f.extend_from_slice(&correlation_id.to_be_bytes());
    f.extend_from_slice(&[0u8; 60]);
    f
}

fn header_and_correlation(c: &mut Criterion) {
    const FRAMES: i32 = 4;
    let requests: Vec<u8> = (0..FRAMES).flat_map(request).collect();
    let responses: Vec<u8> = (0..FRAMES).flat_map(response).collect();
    let mut g = c.benchmark_group("tap");
    // One element = one request/response pair (two frames).
    g.throughput(Throughput::Elements(FRAMES as u64));
    let mut tap = ConnectionTap::new(TopicNames::new());
    let (mut up, mut down) = (TapHalf::new(Dir::Request), TapHalf::new(Dir::Response));
    let now = Instant::now();
    g.bench_function("header_and_correlation", |b| {
        b.iter(|| {
            let mut n = 0u32;
            tap.feed(&mut up, black_box(&requests), now);
            tap.feed(&mut down, black_box(&responses), now);
            tap.settle(&mut |_, _| n += 1);
            black_box(n)
        })
    });
    g.finish();
}

fn java_session(c: &mut Criterion) {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures");
    let mut sessions = Vec::new();
    for i in 0.. {
        let Ok(req) = std::fs::read(dir.join(format!("java-session-{i}.requests.bin"))) else {
            break;
        };
        let resp = std::fs::read(dir.join(format!("java-session-{i}.responses.bin"))).unwrap();
        sessions.push((req, resp));
    }
    let bytes: usize = sessions.iter().map(|(a, b)| a.len() + b.len()).sum();
    let mut g = c.benchmark_group("tap");
    g.throughput(Throughput::Bytes(bytes as u64));
    let topics = TopicNames::new();
    g.bench_function("java_session", |b| {
        b.iter(|| {
            let mut n = 0u64;
            for (req, resp) in &sessions {
                let mut tap = ConnectionTap::new(topics.clone());
                let now = Instant::now();
                for (dir, stream) in [(Dir::Request, req), (Dir::Response, resp)] {
                    let mut half = TapHalf::new(dir);
                    for chunk in stream.chunks(64 << 10) {
                        tap.feed(&mut half, chunk, now);
                        tap.settle(&mut |_, _| n += 1);
                    }
                }
            }
            black_box(n)
        })
    });
    g.finish();
}

criterion_group!(benches, header_and_correlation, java_session);
criterion_main!(benches);
