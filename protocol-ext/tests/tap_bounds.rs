//! What a connection's tap holds stays bounded, whatever one client sends: a Produce request
//! of tens of thousands of empty partitions (acks=0: no response to wait for) does not queue
//! an event per partition in one go, and leaves no memory behind once settled; a frame's
//! declared length reserves nothing ahead of its bytes. Feeding with
//! `ConnectionTap::feed_bounded` (stopping at `MAX_QUEUED_EVENTS`, settling, feeding the rest)
//! yields the same events as feeding everything at once.

use std::time::Instant;

use bytes::BytesMut;
use kafka_protocol::messages::produce_request::{
    PartitionProduceData, ProduceRequest, TopicProduceData,
};
use kafka_protocol::messages::{ApiKey, RequestHeader, TopicName};
use kafka_protocol::protocol::{Encodable, StrBytes};
use proptest::prelude::*;
use sluice_protocol::tap::topics::TopicNames;
use sluice_protocol::tap::{ConnectionTap, TapHalf, HEADER_PEEK_MAX, MAX_QUEUED_EVENTS};
use sluice_protocol::{Dir, TapEvent};

const PRODUCE_V: i16 = 9;

/// A framed Produce request (v9) of one topic with `partitions` partitions without records.
fn produce(correlation_id: i32, acks: i16, partitions: i32) -> Vec<u8> {
    let mut req = ProduceRequest::default();
    req.acks = acks;
    req.timeout_ms = 30_000;
    let mut topic = TopicProduceData::default();
    topic.name = TopicName(StrBytes::from_static_str("flood"));
    for index in 0..partitions {
        let mut p = PartitionProduceData::default();
        p.index = index;
        topic.partition_data.push(p);
    }
    req.topic_data.push(topic);
    let mut b = BytesMut::new();
    let mut h = RequestHeader::default();
    h.request_api_key = ApiKey::Produce as i16;
    h.request_api_version = PRODUCE_V;
    h.correlation_id = correlation_id;
    h.client_id = Some(StrBytes::from_static_str("flooder"));
    h.encode(&mut b, ApiKey::Produce.request_header_version(PRODUCE_V))
        .unwrap();
    req.encode(&mut b, PRODUCE_V).unwrap();
    let mut f = (b.len() as i32).to_be_bytes().to_vec();
    f.extend_from_slice(&b);
    f
}

/// Most items that may wait at once: `MAX_QUEUED_EVENTS`, and what a frame's first bytes
/// (read with its header, at most `HEADER_PEEK_MAX`) yield.
const MOST: usize = MAX_QUEUED_EVENTS + HEADER_PEEK_MAX;

/// Feeds `bytes` in chunks of `sizes` (cycled) as Sluice does: bounded, settled whenever a
/// feed stops short. Returns the events and the most items that waited at once.
fn feed_bounded(tap: &mut ConnectionTap, bytes: &[u8], sizes: &[usize]) -> (Vec<TapEvent>, usize) {
    let now = Instant::now();
    let mut half = TapHalf::new(Dir::Request);
    let (mut events, mut most) = (Vec::new(), 0);
    let mut rest = bytes;
    let mut i = 0;
    while !rest.is_empty() {
        let n = sizes[i % sizes.len()].clamp(1, rest.len());
        i += 1;
        let (mut chunk, tail) = rest.split_at(n);
        rest = tail;
        if half.hold(chunk) {
            continue;
        }
        loop {
            let followed = tap.feed_bounded(&mut half, chunk, now);
            most = most.max(tap.queued());
            chunk = &chunk[followed..];
            if chunk.is_empty() {
                break;
            }
            tap.settle(&mut |e, _| events.push(e));
        }
    }
    tap.feed_bounded(&mut half, &[], now);
    tap.settle(&mut |e, _| events.push(e));
    (events, most)
}

/// The same, fed whole and settled once.
fn feed_all(bytes: &[u8]) -> Vec<TapEvent> {
    let mut tap = ConnectionTap::new(TopicNames::new());
    let mut events = Vec::new();
    tap.feed(&mut TapHalf::new(Dir::Request), bytes, Instant::now());
    tap.settle(&mut |e, _| events.push(e));
    events
}

fn partitions(events: &[TapEvent]) -> usize {
    events
        .iter()
        .filter(|e| matches!(e, TapEvent::ProducePartition(_)))
        .count()
}

/// Three 251 KiB acks=0 Produce requests of 43,000 empty partitions each, a chunk each:
/// at most `MAX_QUEUED_EVENTS` (and a frame's first bytes' events) wait at once, and once settled the tap holds what an idle
/// connection holds (+8.5 MiB for the connection's life before: an event per partition
/// queued per chunk, and the queue's room kept).
#[test]
fn a_produce_flood_leaves_no_memory_behind() {
    let mut tap = ConnectionTap::new(TopicNames::new());
    let idle = tap.approx_bytes();
    let mut flood = Vec::new();
    for c in 0..3 {
        flood.extend_from_slice(&produce(c, 0, 43_000));
    }
    assert!(flood.len() > 3 * 250_000);
    let frame = flood.len() / 3;
    let (events, most) = feed_bounded(&mut tap, &flood, &[frame]);
    assert_eq!(partitions(&events), 3 * 43_000);
    assert!(most <= MOST, "{most} waited at once");
    let left = tap.approx_bytes();
    assert!(
        left <= idle + 64 * 1024,
        "{left} bytes held after the flood, {idle} idle"
    );
}

/// A frame whose body is collected for decoding (an OffsetCommit request) declaring 8 MiB
/// reserves room as its bytes come, not from its length (8 MiB reserved at once before).
#[test]
fn a_declared_length_reserves_nothing_ahead() {
    let mut tap = ConnectionTap::new(TopicNames::new());
    let idle = tap.approx_bytes();
    let body: i32 = (8 << 20) - 64;
    let mut f = Vec::new();
    f.extend_from_slice(&(10 + body).to_be_bytes());
    f.extend_from_slice(&8i16.to_be_bytes()); // OffsetCommit
    f.extend_from_slice(&2i16.to_be_bytes()); // v2
    f.extend_from_slice(&1i32.to_be_bytes());
    f.extend_from_slice(&(-1i16).to_be_bytes()); // no client id
    f.extend_from_slice(&[0; 1000]);
    tap.feed(&mut TapHalf::new(Dir::Request), &f, Instant::now());
    let held = tap.approx_bytes();
    assert!(held <= idle + 16 * 1024, "{held} bytes held, {idle} idle");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    /// Bounded feeding, in any chunks, yields exactly the events of feeding everything at
    /// once: requests that fill the queue several times, and small ones between them.
    #[test]
    fn bounded_feeding_changes_no_event(
        sizes in prop::collection::vec(prop_oneof![1usize..64, 1usize..70_000], 1..6),
        counts in prop::collection::vec(0i32..3000, 1..5),
    ) {
        let mut bytes = Vec::new();
        for (c, n) in counts.iter().enumerate() {
            bytes.extend_from_slice(&produce(c as i32, 0, *n));
        }
        let whole = feed_all(&bytes);
        let mut tap = ConnectionTap::new(TopicNames::new());
        let (events, most) = feed_bounded(&mut tap, &bytes, &sizes);
        prop_assert!(most <= MOST);
        prop_assert_eq!(events, whole);
    }
}
