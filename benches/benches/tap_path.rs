//! What the tap adds per consumer Fetch round trip, with the sinks a running Sluice has.
//!
//! `cargo bench -p sluice-benches --bench tap_path` (see `benches/README.md`).
//!
//! One element is one round trip of a Java consumer on Kafka 4: a Fetch v17 request of an
//! incremental fetch session naming its one partition by topic id (the fetch offset moves on
//! every time), and its ~1 MiB response of 64 record batches of 16 KiB, fed in 150 KB chunks as
//! Sluice reads them on loopback. `e2e` counts about 1,000 such round trips per GB consumed,
//! so 1 µs per round trip is 1 ms of CPU per GB.
//!
//! Benchmarks:
//! - `tap_path/no_sinks`: the connection tap alone (frame state, header peek, the Fetch request
//!   decode and its session, the response walker).
//! - `tap_path/stats_sink`, `observer_sink`, `latency_sink`: the tap and one sink of
//!   `sluice run` (per-API counters, the observer, the latency histogram).
//! - `tap_path/default_sinks`: the tap and all three.
//!
//! Each also runs `_cold`: before every round trip, 64 MiB are copied (twice the last-level
//! cache), and every piece is copied into a read buffer before the tap sees it. That is the
//! state a running proxy meets: the kernel, the broker and the consumer move megabytes through
//! the caches between two round trips, so the tap's code and state come from memory while the
//! bytes just read are in cache. Only the tap's calls are timed. `no_sinks_cold_reads` and
//! `default_sinks_cold_reads` copy before every read instead, as happens between the reads of
//! one round trip too: then every read, even one the forwarding loop keeps from the tap
//! (`TapHalf::hold`), pays for the pages it touches (code, state, page tables).

use std::hint::black_box;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchRequest, FetchTopic};
use kafka_protocol::messages::fetch_response::{
    FetchResponse, FetchableTopicResponse, PartitionData,
};
use kafka_protocol::messages::{RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{Encodable, StrBytes};
use sluice::observer::config::DetectConfig;
use sluice::observer::Observer;
use sluice::stats::StatsSink;
use sluice::tap::ConnTap;
use sluice::telemetry::Telemetry;
use sluice::ProxyStats;
use sluice::{ConnMeta, TapSink};
use sluice_config::TelemetryConfig;
use sluice_protocol::event::TopicId;
use sluice_protocol::tap::topics::TopicNames;
use sluice_protocol::tap::{ConnectionTap, TapHalf};
use sluice_protocol::{Dir, TapEvent};

const FETCH_VERSION: i16 = 17;
const BATCHES: i64 = 64;
const RECORDS_PER_BATCH: i64 = 16;
/// Sluice's read size seen with `strace` during a consume on loopback.
const CHUNK: usize = 150_000;
const TOPIC_ID: [u8; 16] = *b"bench-topic-id-!";
/// Round trips prepared. The stream cycles through them: offsets move on each time, and go
/// back to 0 (a rewind, as in a fetch loop) once per cycle.
const ROUND_TRIPS: i64 = 16;

/// One record batch of 16 records of 1 KiB at offset 0; its base offset is patched per copy.
fn batch() -> Bytes {
    sluice_benches::standin::record_batch(RECORDS_PER_BATCH, 1000)
}

fn frame(header: impl FnOnce(&mut BytesMut), body: impl FnOnce(&mut BytesMut)) -> Vec<u8> {
    let mut b = BytesMut::new();
    header(&mut b);
    body(&mut b);
    let mut f = (b.len() as i32).to_be_bytes().to_vec();
    f.extend_from_slice(&b);
    f
}

/// Request `n` of the session and its response.
fn round_trip(n: i64, batch: &[u8]) -> (Vec<u8>, Vec<u8>) {
    let offset = n * BATCHES * RECORDS_PER_BATCH;
    let correlation_id = n as i32;
    let mut part = FetchPartition::default();
    part.partition = 0;
    part.fetch_offset = offset;
    part.partition_max_bytes = 1 << 20;
    let mut topic = FetchTopic::default();
    topic.topic_id = topic_uuid();
    topic.partitions.push(part);
    let mut req = FetchRequest::default();
    req.replica_id = kafka_protocol::messages::BrokerId(-1);
    req.max_wait_ms = 500;
    req.min_bytes = 1;
    req.max_bytes = 50 << 20;
    req.session_id = 77;
    req.session_epoch = n as i32 + 1;
    req.topics.push(topic);
    let mut header = RequestHeader::default();
    header.request_api_key = 1;
    header.request_api_version = FETCH_VERSION;
    header.correlation_id = correlation_id;
    header.client_id = Some(StrBytes::from_static_str("consumer-bench-1"));
    let request = frame(
        |b| header.encode(b, 2).expect("request header"),
        |b| req.encode(b, FETCH_VERSION).expect("fetch request"),
    );

    let mut records = BytesMut::new();
    for i in 0..BATCHES {
        let start = records.len();
        records.extend_from_slice(batch);
        let base = offset + i * RECORDS_PER_BATCH;
        records[start..start + 8].copy_from_slice(&base.to_be_bytes());
    }
    let mut pd = PartitionData::default();
    pd.partition_index = 0;
    pd.high_watermark = offset + 10 * BATCHES * RECORDS_PER_BATCH;
    pd.last_stable_offset = pd.high_watermark;
    pd.log_start_offset = 0;
    pd.records = Some(records.freeze());
    let mut t = FetchableTopicResponse::default();
    t.topic_id = topic_uuid();
    t.partitions.push(pd);
    let mut resp = FetchResponse::default();
    resp.session_id = 77;
    resp.responses.push(t);
    let mut rh = ResponseHeader::default();
    rh.correlation_id = correlation_id;
    let response = frame(
        |b| rh.encode(b, 1).expect("response header"),
        |b| resp.encode(b, FETCH_VERSION).expect("fetch response"),
    );
    (request, response)
}

/// The topic id as kafka-protocol's `Uuid`.
fn topic_uuid<T: TryFrom<Vec<u8>>>() -> T
where
    T::Error: std::fmt::Debug,
{
    T::try_from(TOPIC_ID.to_vec()).expect("16 bytes")
}

/// Record batches the tap reports in a round trip's response.
fn batches_seen((request, response): &(Vec<u8>, Vec<u8>)) -> u32 {
    let mut tap = ConnectionTap::new(TopicNames::new());
    let mut batches = 0;
    let mut count = |e: TapEvent| {
        if let TapEvent::FetchPartition(p) = e {
            batches += p.batches;
        }
    };
    let now = Instant::now();
    tap.feed(&mut TapHalf::new(Dir::Request), request, now);
    tap.feed(&mut TapHalf::new(Dir::Response), response, now);
    tap.settle(&mut |e, _| count(e));
    batches
}

fn tap_path(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let _guard = runtime.enter();
    let batch = batch();
    let trips: Vec<(Vec<u8>, Vec<u8>)> = (0..ROUND_TRIPS).map(|n| round_trip(n, &batch)).collect();
    let response_bytes = trips[0].1.len();

    let stats = Arc::new(ProxyStats::default());
    let observer = Observer::new(DetectConfig::default());
    // Its thread applies the batches the sink queues, as in `sluice run`.
    let _observer_thread = observer.spawn();
    let telemetry = Telemetry::start(
        &TelemetryConfig::default(),
        "127.0.0.1:9092",
        observer.clone(),
        stats.clone(),
        sluice::throttle::Throttle::new(),
    )
    .expect("telemetry");
    let mut default_sinks: Vec<Arc<dyn TapSink>> =
        vec![Arc::new(StatsSink::new(stats.clone())), observer.clone()];
    default_sinks.extend(telemetry.sinks());

    assert_eq!(
        batches_seen(&trips[0]),
        BATCHES as u32,
        "the response holds 64 batches"
    );
    let mut g = c.benchmark_group("tap_path");
    g.throughput(Throughput::Elements(1));
    let only = |i: usize| vec![default_sinks[i].clone()];
    let variants = [
        ("no_sinks", Vec::new()),
        ("stats_sink", only(0)),
        ("observer_sink", only(1)),
        ("latency_sink", only(2)),
        ("default_sinks", default_sinks.clone()),
    ];
    for (name, sinks) in variants {
        let topics = TopicNames::new();
        topics.learn(TopicId(TOPIC_ID), "bench-topic");
        let meta = ConnMeta::new(1, SocketAddr::from(([127, 0, 0, 1], 50_000)));
        let tap = ConnTap::new(ConnectionTap::new(topics), meta, sinks.into());
        let mut next = 0usize;
        let mut round_trip = || {
            let (request, response) = &trips[next % trips.len()];
            next += 1;
            // One `TapHalf` per direction, as the forwarding loop keeps them.
            let (mut up, mut down) = (TapHalf::new(Dir::Request), TapHalf::new(Dir::Response));
            tap.observe(&mut up, black_box(request));
            for chunk in response.chunks(CHUNK) {
                tap.observe(&mut down, black_box(chunk));
            }
        };
        g.bench_function(name, |b| b.iter(&mut round_trip));
        // Each piece is first copied into a read buffer, as the kernel does: its bytes are
        // in cache, the tap's own code and state are not. Only the tap's calls are timed.
        // `_cold_reads` (two variants): the copy comes before every read, as in a running
        // proxy, where the broker and the consumer run between two reads of one round trip.
        let mut polluter = Polluter::new();
        let mut read_buf = vec![0u8; CHUNK];
        let modes: &[bool] = if matches!(name, "no_sinks" | "default_sinks") {
            &[false, true]
        } else {
            &[false]
        };
        for &every_read in modes {
            let label = if every_read { "cold_reads" } else { "cold" };
            g.bench_function(format!("{name}_{label}"), |b| {
                b.iter_custom(|iters| {
                    let mut spent = Duration::ZERO;
                    for _ in 0..iters {
                        let (request, response) = &trips[next % trips.len()];
                        next += 1;
                        let (mut up, mut down) =
                            (TapHalf::new(Dir::Request), TapHalf::new(Dir::Response));
                        let pieces = std::iter::once((true, &request[..]))
                            .chain(response.chunks(CHUNK).map(|c| (false, c)));
                        for (i, (to_broker, piece)) in pieces.enumerate() {
                            if i == 0 || every_read {
                                polluter.run();
                            }
                            let buf = &mut read_buf[..piece.len()];
                            buf.copy_from_slice(piece);
                            let half = if to_broker { &mut up } else { &mut down };
                            let t = Instant::now();
                            tap.observe(half, black_box(buf));
                            spent += t.elapsed();
                        }
                    }
                    spent
                })
            });
        }
    }
    g.finish();
    eprintln!(
        "tap_path: {} request bytes, {response_bytes} response bytes per round trip",
        trips[0].0.len()
    );
}

/// Copies 64 MiB between two round trips, twice the last-level cache: in Sluice, the
/// kernel, the broker and the consumer move several MB through the caches per round trip, so
/// the tap's code and state come from memory each time.
struct Polluter {
    from: Vec<u8>,
    to: Vec<u8>,
}

impl Polluter {
    fn new() -> Polluter {
        Polluter {
            from: vec![1; 64 << 20],
            to: vec![0; 64 << 20],
        }
    }

    fn run(&mut self) {
        self.from[0] = self.from[0].wrapping_add(1);
        self.to.copy_from_slice(black_box(&self.from));
        black_box(&self.to);
    }
}

criterion_group!(benches, tap_path);
criterion_main!(benches);
