//! Micro-benchmark of `FrameTracker::feed`, the per-chunk work Sluice adds on top of copying.
//!
//! `cargo bench -p sluice-benches --bench frame_tracker` (see `benches/README.md`).
//!
//! Groups:
//! - `feed_small_frames`: a ~4 MiB stream of frames with 100–2000 byte bodies, fed in chunks of
//!   one TCP segment (1460 B), 16 KiB, 64 KiB, and as a single slice. Bytes/s.
//! - `feed_large_frames`: sixteen 1 MiB frames fed in 64 KiB and 256 KiB chunks (Sluice's
//!   largest copy buffer by default). Bytes/s.
//! - `per_frame`: the small-frame stream in 64 KiB chunks reported as frames/s, and one
//!   104-byte frame fed to a fresh tracker (the cost of a single call that completes a frame).

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use sluice_protocol::FrameTracker;

/// Deterministic xorshift64 so every run benchmarks the same stream.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
}

fn push_frame(stream: &mut Vec<u8>, body_len: usize, fill: u8) {
    stream.extend_from_slice(&(body_len as i32).to_be_bytes());
    stream.resize(stream.len() + body_len, fill);
}

/// Frames with bodies uniformly 100..=2000 bytes until the stream reaches `total` bytes.
/// Returns the stream and its frame count.
fn small_frames(total: usize) -> (Vec<u8>, u64) {
    let mut rng = Rng(0x5eed_1234_abcd_ef01);
    let mut stream = Vec::with_capacity(total + 2100);
    let mut frames = 0;
    while stream.len() < total {
        let body = 100 + (rng.next() % 1901) as usize;
        push_frame(&mut stream, body, frames as u8);
        frames += 1;
    }
    (stream, frames)
}

/// `count` frames with 1 MiB bodies.
fn large_frames(count: usize) -> Vec<u8> {
    let mut stream = Vec::with_capacity(count * ((1 << 20) + 4));
    for i in 0..count {
        push_frame(&mut stream, 1 << 20, i as u8);
    }
    stream
}

/// Feeds `stream` to a fresh tracker `chunk` bytes at a time; returns frames completed.
fn feed_in_chunks(stream: &[u8], chunk: usize) -> u64 {
    let mut t = FrameTracker::new();
    let mut frames = 0;
    for c in stream.chunks(chunk) {
        frames += t.feed(black_box(c));
    }
    frames
}

fn bench_small(c: &mut Criterion) {
    let (stream, frames) = small_frames(4 << 20);
    assert_eq!(feed_in_chunks(&stream, 1460), frames);
    let mut g = c.benchmark_group("feed_small_frames");
    g.throughput(Throughput::Bytes(stream.len() as u64));
    for (label, chunk) in [
        ("chunk_1460B", 1460),
        ("chunk_16KiB", 16 << 10),
        ("chunk_64KiB", 64 << 10),
        ("one_slice", stream.len()),
    ] {
        g.bench_with_input(BenchmarkId::from_parameter(label), &chunk, |b, &chunk| {
            b.iter(|| feed_in_chunks(black_box(&stream), chunk))
        });
    }
    g.finish();
}

fn bench_large(c: &mut Criterion) {
    let stream = large_frames(16);
    assert_eq!(feed_in_chunks(&stream, 64 << 10), 16);
    let mut g = c.benchmark_group("feed_large_frames");
    g.throughput(Throughput::Bytes(stream.len() as u64));
    for (label, chunk) in [
        ("1MiB_in_64KiB_chunks", 64 << 10),
        ("1MiB_in_256KiB_chunks", 256 << 10),
    ] {
        g.bench_with_input(BenchmarkId::from_parameter(label), &chunk, |b, &chunk| {
            b.iter(|| feed_in_chunks(black_box(&stream), chunk))
        });
    }
    g.finish();
}

fn bench_per_frame(c: &mut Criterion) {
    let (stream, frames) = small_frames(4 << 20);
    let mut g = c.benchmark_group("per_frame");
    g.throughput(Throughput::Elements(frames));
    g.bench_function("small_frames_in_64KiB_chunks", |b| {
        b.iter(|| feed_in_chunks(black_box(&stream), 64 << 10))
    });
    g.throughput(Throughput::Elements(1));
    let mut one = Vec::new();
    push_frame(&mut one, 100, 0xab);
    g.bench_function("one_104B_frame_one_call", |b| {
        b.iter(|| {
            let mut t = FrameTracker::new();
            t.feed(black_box(&one))
        })
    });
    g.finish();
}

criterion_group!(benches, bench_small, bench_large, bench_per_frame);
criterion_main!(benches);
