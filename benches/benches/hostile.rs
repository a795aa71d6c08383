//! The worst a hostile (or merely huge) client can make one connection's tap spend.
//!
//! `cargo bench -p sluice-benches --bench hostile -- --warm-up-time 1 --measurement-time 3`
//!
//! - `hostile/incremental_fetch_100k_session`: one incremental Fetch request (v12, one
//!   partition listed) on a connection whose fetch session holds 100,000 partitions: the
//!   request decoded, its session applied, its event settled (its response, untimed).
//! - `hostile/forget_all_100k`: one Fetch request forgetting all 100,000 partitions of its
//!   session (each iteration re-adds them first; that and the responses untimed).
//! - `hostile/produce_flood`: an acks=0 Produce request (v9, 251 KiB) of 43,000 empty
//!   partitions, fed in one chunk as Sluice does (`feed_bounded`, settled whenever the queue
//!   fills).
//!
//! It also prints the bytes of tap state (`ConnectionTap::approx_bytes`) of a connection after
//! three such Produce requests, and of one holding a 100,000-partition session.

use std::hint::black_box;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use kafka_protocol::messages::fetch_request::ForgottenTopic;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchRequest, FetchTopic};
use kafka_protocol::messages::produce_request::{
    PartitionProduceData, ProduceRequest, TopicProduceData,
};
use kafka_protocol::messages::{ApiKey, FetchResponse, RequestHeader, ResponseHeader, TopicName};
use kafka_protocol::protocol::{Encodable, StrBytes};
use sluice_protocol::tap::topics::TopicNames;
use sluice_protocol::tap::{ConnectionTap, TapHalf};
use sluice_protocol::Dir;

const FETCH_V: i16 = 12;
const PRODUCE_V: i16 = 9;
const SESSION: i32 = 77;
const PARTITIONS: i32 = 100_000;
const FLOOD_PARTITIONS: i32 = 43_000;

fn framed(key: ApiKey, version: i16, correlation_id: i32, body: &impl Encodable) -> Vec<u8> {
    let mut b = BytesMut::new();
    let mut h = RequestHeader::default();
    h.request_api_key = key as i16;
    h.request_api_version = version;
    h.correlation_id = correlation_id;
    h.client_id = Some(StrBytes::from_static_str("hostile"));
    h.encode(&mut b, key.request_header_version(version))
        .unwrap();
    body.encode(&mut b, version).unwrap();
    let mut f = (b.len() as i32).to_be_bytes().to_vec();
    f.extend_from_slice(&b);
    f
}

/// A Fetch request of `session`/`epoch` listing `parts` of topic `t` and forgetting `forget`.
fn fetch(correlation_id: i32, epoch: i32, parts: &[i32], forget: &[i32]) -> Vec<u8> {
    let mut req = FetchRequest::default();
    req.replica_id = kafka_protocol::messages::BrokerId(-1);
    req.max_wait_ms = 500;
    req.min_bytes = 1;
    req.max_bytes = 50 << 20;
    req.session_id = if epoch == 0 { 0 } else { SESSION };
    req.session_epoch = epoch;
    let name = TopicName(StrBytes::from_static_str("t"));
    if !parts.is_empty() {
        let mut topic = FetchTopic::default();
        topic.topic = name.clone();
        for &p in parts {
            let mut part = FetchPartition::default();
            part.partition = p;
            part.fetch_offset = i64::from(epoch) * 10;
            part.partition_max_bytes = 1 << 20;
            topic.partitions.push(part);
        }
        req.topics.push(topic);
    }
    if !forget.is_empty() {
        let mut f = ForgottenTopic::default();
        f.topic = name;
        f.partitions = forget.to_vec();
        req.forgotten_topics_data.push(f);
    }
    framed(ApiKey::Fetch, FETCH_V, correlation_id, &req)
}

/// The response to `correlation_id` naming the session (no partitions).
fn opened(correlation_id: i32) -> Vec<u8> {
    let mut resp = FetchResponse::default();
    resp.session_id = SESSION;
    let mut b = BytesMut::new();
    let mut h = ResponseHeader::default();
    h.correlation_id = correlation_id;
    h.encode(&mut b, ApiKey::Fetch.response_header_version(FETCH_V))
        .unwrap();
    resp.encode(&mut b, FETCH_V).unwrap();
    let mut f = (b.len() as i32).to_be_bytes().to_vec();
    f.extend_from_slice(&b);
    f
}

fn produce_flood(correlation_id: i32) -> Vec<u8> {
    let mut req = ProduceRequest::default();
    req.acks = 0;
    req.timeout_ms = 30_000;
    let mut topic = TopicProduceData::default();
    topic.name = TopicName(StrBytes::from_static_str("flood"));
    for index in 0..FLOOD_PARTITIONS {
        let mut p = PartitionProduceData::default();
        p.index = index;
        topic.partition_data.push(p);
    }
    req.topic_data.push(topic);
    framed(ApiKey::Produce, PRODUCE_V, correlation_id, &req)
}

/// Feeds `bytes` in one direction as Sluice does, settling whenever the queue fills.
fn feed(tap: &mut ConnectionTap, half: &mut TapHalf, bytes: &[u8]) {
    let now = Instant::now();
    let mut rest = bytes;
    loop {
        let followed = tap.feed_bounded(half, rest, now);
        rest = &rest[followed..];
        if rest.is_empty() || tap.is_opaque() {
            break;
        }
        tap.settle(&mut |e, _| drop(black_box(e)));
    }
    tap.settle(&mut |e, _| drop(black_box(e)));
}

/// A tap whose connection opened a session of [`PARTITIONS`] partitions.
fn with_session() -> (ConnectionTap, TapHalf, TapHalf) {
    let mut tap = ConnectionTap::new(TopicNames::new());
    let (mut up, mut down) = (TapHalf::new(Dir::Request), TapHalf::new(Dir::Response));
    let all: Vec<i32> = (0..PARTITIONS).collect();
    feed(&mut tap, &mut up, &fetch(1, 0, &all, &[]));
    feed(&mut tap, &mut down, &opened(1));
    (tap, up, down)
}

fn hostile(c: &mut Criterion) {
    let mut g = c.benchmark_group("hostile");
    g.throughput(Throughput::Elements(1));

    let (mut tap, mut up, mut down) = with_session();
    let requests: Vec<(Vec<u8>, Vec<u8>)> = (1..=64)
        .map(|e| (fetch(1 + e, e, &[e], &[]), opened(1 + e)))
        .collect();
    let mut next = 0;
    g.bench_function("incremental_fetch_100k_session", |b| {
        b.iter_custom(|iters| {
            let mut spent = Duration::ZERO;
            for _ in 0..iters {
                let (request, response) = &requests[next % requests.len()];
                next += 1;
                let t = Instant::now();
                feed(&mut tap, &mut up, black_box(request));
                spent += t.elapsed();
                // Its (empty) response, untimed: a request waits for one.
                feed(&mut tap, &mut down, response);
            }
            spent
        })
    });
    assert!(!tap.is_opaque() && tap.in_flight() == 0);
    eprintln!(
        "hostile: a connection with a {PARTITIONS}-partition fetch session holds {} bytes of tap state",
        tap.approx_bytes()
    );

    let all: Vec<i32> = (0..PARTITIONS).collect();
    let forget_all = fetch(1000, 1000, &[], &all);
    let add_all = fetch(1001, 1001, &all, &[]);
    let (answer_forget, answer_add) = (opened(1000), opened(1001));
    g.sample_size(10);
    g.bench_function("forget_all_100k", |b| {
        b.iter_custom(|iters| {
            let mut spent = Duration::ZERO;
            for _ in 0..iters {
                feed(&mut tap, &mut up, &add_all);
                feed(&mut tap, &mut down, &answer_add);
                let t = Instant::now();
                feed(&mut tap, &mut up, black_box(&forget_all));
                spent += t.elapsed();
                feed(&mut tap, &mut down, &answer_forget);
            }
            spent
        })
    });
    assert!(!tap.is_opaque() && tap.in_flight() == 0);

    g.sample_size(20);
    let flood = produce_flood(1);
    let mut tap = ConnectionTap::new(TopicNames::new());
    let mut up = TapHalf::new(Dir::Request);
    g.bench_function("produce_flood", |b| {
        b.iter(|| feed(&mut tap, &mut up, black_box(&flood)))
    });
    g.finish();

    let mut tap = ConnectionTap::new(TopicNames::new());
    let mut up = TapHalf::new(Dir::Request);
    let idle = tap.approx_bytes();
    for c in 0..3 {
        feed(&mut tap, &mut up, &produce_flood(c));
    }
    eprintln!(
        "hostile: after three {} B acks=0 Produce requests of {FLOOD_PARTITIONS} empty partitions, the tap holds {} bytes ({idle} idle)",
        flood.len(),
        tap.approx_bytes()
    );
}

criterion_group!(benches, hostile);
criterion_main!(benches);
