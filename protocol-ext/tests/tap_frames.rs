//! The connection tap over encoder-built frames: headers encoded by `kafka-protocol` (the
//! oracle), random bodies for APIs whose bodies are skipped, random chunk splits; every
//! request and response is reported exactly once with the right key, version, correlation id,
//! client id and size, and nothing is lost when framing breaks.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{encode_request_header_into_buffer, Encodable, StrBytes};
use proptest::prelude::*;
use sluice_protocol::tap::topics::TopicNames;
use sluice_protocol::tap::{ConnectionTap, TapHalf};
use sluice_protocol::{Dir, FrameTracker, TapEvent};

/// APIs whose bodies the tap skips, with a version range to draw from.
const SKIPPED: &[(ApiKey, i16, i16)] = &[
    (ApiKey::ListOffsets, 1, 10),
    (ApiKey::DescribeConfigs, 1, 4),
    (ApiKey::CreateTopics, 2, 7),
    (ApiKey::DescribeCluster, 0, 1),
    (ApiKey::InitProducerId, 0, 5),
];

#[derive(Debug, Clone)]
struct Exchange {
    key: ApiKey,
    version: i16,
    correlation_id: i32,
    client_id: Option<String>,
    tags: BTreeMap<i32, Bytes>,
    request_body: Vec<u8>,
    response_body: Vec<u8>,
}

fn frame(body: &[u8]) -> Vec<u8> {
    let mut v = (body.len() as i32).to_be_bytes().to_vec();
    v.extend_from_slice(body);
    v
}

fn request_frame(x: &Exchange) -> Vec<u8> {
    let mut buf = BytesMut::new();
    let header = RequestHeader::default()
        .with_request_api_key(x.key as i16)
        .with_request_api_version(x.version)
        .with_correlation_id(x.correlation_id)
        .with_client_id(x.client_id.clone().map(StrBytes::from_string))
        .with_unknown_tagged_fields(if x.key.request_header_version(x.version) >= 2 {
            x.tags.clone()
        } else {
            BTreeMap::new()
        });
    encode_request_header_into_buffer(&mut buf, &header).unwrap();
    buf.put_slice(&x.request_body);
    frame(&buf)
}

fn response_frame(x: &Exchange) -> Vec<u8> {
    let mut buf = BytesMut::new();
    let hv = x.key.response_header_version(x.version);
    let header = ResponseHeader::default()
        .with_correlation_id(x.correlation_id)
        .with_unknown_tagged_fields(if hv >= 1 {
            x.tags.clone()
        } else {
            BTreeMap::new()
        });
    header.encode(&mut buf, hv).unwrap();
    buf.put_slice(&x.response_body);
    frame(&buf)
}

fn exchange() -> impl Strategy<Value = Exchange> {
    (
        0..SKIPPED.len(),
        any::<u16>(),
        any::<i32>(),
        proptest::option::of("[a-z0-9._-]{0,40}"),
        proptest::collection::btree_map(
            0i32..5,
            proptest::collection::vec(any::<u8>(), 0..8),
            0..3,
        ),
        proptest::collection::vec(any::<u8>(), 0..300),
        proptest::collection::vec(any::<u8>(), 0..3000),
    )
        .prop_map(
            |(k, v, correlation_id, client_id, tags, request_body, response_body)| {
                let (key, lo, hi) = SKIPPED[k];
                Exchange {
                    key,
                    version: lo + (v as i16).rem_euclid(hi - lo + 1),
                    correlation_id,
                    client_id,
                    tags: tags.into_iter().map(|(t, b)| (t, Bytes::from(b))).collect(),
                    request_body,
                    response_body,
                }
            },
        )
}

/// Feeds `data` in pieces cut by `cuts` (cycled), settling after every piece.
fn feed_chunked(
    tap: &mut ConnectionTap,
    dir: Dir,
    data: &[u8],
    cuts: &[usize],
    events: &mut Vec<TapEvent>,
) {
    let mut rest = data;
    let mut i = 0;
    let now = match dir {
        Dir::Request => *EPOCH,
        Dir::Response => *EPOCH + Duration::from_millis(3),
    };
    let mut half = TapHalf::new(dir);
    while !rest.is_empty() {
        let n = cuts[i % cuts.len()].clamp(1, rest.len());
        tap.feed(&mut half, &rest[..n], now);
        tap.settle(&mut |e, _| events.push(e));
        rest = &rest[n..];
        i += 1;
    }
}

/// Feeds `data` in one piece and settles.
fn feed_whole(tap: &mut ConnectionTap, dir: Dir, data: &[u8], events: &mut Vec<TapEvent>) {
    feed_chunked(tap, dir, data, &[data.len()], events);
}

/// One fixed instant: requests are seen at it, responses 3 ms later.
static EPOCH: std::sync::LazyLock<Instant> = std::sync::LazyLock::new(Instant::now);

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// Pipelined requests then their responses, in any chunking.
    #[test]
    fn every_frame_is_reported_once(
        xs in proptest::collection::vec(exchange(), 1..12),
        cuts in proptest::collection::vec(1usize..64, 1..20),
    ) {
        let mut tap = ConnectionTap::new(TopicNames::new());
        let mut events = Vec::new();
        let requests: Vec<u8> = xs.iter().flat_map(request_frame).collect();
        let responses: Vec<u8> = xs.iter().flat_map(response_frame).collect();
        feed_chunked(&mut tap, Dir::Request, &requests, &cuts, &mut events);
        prop_assert_eq!(tap.in_flight(), xs.len());
        feed_chunked(&mut tap, Dir::Response, &responses, &cuts, &mut events);
        let why = events.iter().find(|e| matches!(e, TapEvent::Opaque { .. })).cloned();
        prop_assert!(!tap.is_opaque(), "{:?}", why);
        let reqs: Vec<_> = events.iter().filter_map(|e| match e { TapEvent::Request(r) => Some(r.clone()), _ => None }).collect();
        let resps: Vec<_> = events.iter().filter_map(|e| match e { TapEvent::Response(r) => Some(r.clone()), _ => None }).collect();
        prop_assert_eq!(reqs.len(), xs.len());
        prop_assert_eq!(resps.len(), xs.len());
        for ((x, rq), rs) in xs.iter().zip(&reqs).zip(&resps) {
            prop_assert_eq!(rq.api_key, x.key as i16);
            prop_assert_eq!(rq.api_version, x.version);
            prop_assert_eq!(rq.correlation_id, x.correlation_id);
            prop_assert_eq!(rq.client_id.as_deref(), x.client_id.as_deref());
            prop_assert_eq!(rq.size, request_frame(x).len() as u64);
            prop_assert!(rq.expects_response);
            prop_assert_eq!(rs.api_key, x.key as i16);
            prop_assert_eq!(rs.correlation_id, x.correlation_id);
            prop_assert_eq!(rs.size, response_frame(x).len() as u64);
            prop_assert_eq!(rs.latency, Duration::from_millis(3));
        }
        prop_assert_eq!(tap.in_flight(), 0);
        prop_assert!(tap.at_boundary());
        prop_assert_eq!(tap.counters().parse_errors, 0);
    }

    /// Garbage after valid frames: the valid ones are reported, the tap gives up at most once,
    /// and never panics.
    #[test]
    fn garbage_after_valid_frames_never_panics_and_is_reported_once_at_most(
        xs in proptest::collection::vec(exchange(), 0..4),
        garbage in proptest::collection::vec(any::<u8>(), 0..2000),
        cuts in proptest::collection::vec(1usize..64, 1..8),
    ) {
        let mut tap = ConnectionTap::new(TopicNames::new());
        let mut events = Vec::new();
        let mut stream: Vec<u8> = xs.iter().flat_map(request_frame).collect();
        stream.extend_from_slice(&garbage);
        feed_chunked(&mut tap, Dir::Request, &stream, &cuts, &mut events);
        feed_chunked(&mut tap, Dir::Response, &garbage, &cuts, &mut events);
        let reqs = events.iter().filter(|e| matches!(e, TapEvent::Request(_))).count();
        prop_assert!(reqs >= xs.len());
        let opaque = events.iter().filter(|e| matches!(e, TapEvent::Opaque { .. })).count();
        prop_assert!(opaque <= 1, "reported opaque {} times", opaque);
    }
}

#[test]
fn a_response_nobody_asked_for_makes_the_connection_opaque() {
    let mut tap = ConnectionTap::new(TopicNames::new());
    let mut events = Vec::new();
    let x = Exchange {
        key: ApiKey::ListOffsets,
        version: 5,
        correlation_id: 9,
        client_id: Some("c".into()),
        tags: BTreeMap::new(),
        request_body: vec![],
        response_body: vec![1, 2, 3],
    };
    feed_whole(&mut tap, Dir::Response, &response_frame(&x), &mut events);
    assert!(tap.is_opaque());
    assert!(
        matches!(&events[..], [TapEvent::Opaque { reason }] if reason.contains("correlation id 9"))
    );
}

#[test]
fn negative_length_loses_framing_once() {
    let mut tap = ConnectionTap::new(TopicNames::new());
    let mut events = Vec::new();
    feed_whole(
        &mut tap,
        Dir::Request,
        &[0xff, 0xff, 0xff, 0xfe, 1, 2, 3],
        &mut events,
    );
    feed_whole(&mut tap, Dir::Request, &[0, 0, 0, 1, 0], &mut events);
    assert_eq!(events.len(), 1);
    assert!(matches!(&events[0], TapEvent::Opaque { reason } if reason.contains("-2")));
}

#[test]
fn a_huge_skipped_frame_is_followed_in_chunks_and_keeps_framing() {
    // A 50 MiB ListOffsets "response" body streamed in 64 KiB chunks.
    let mut tap = ConnectionTap::new(TopicNames::new());
    let mut events = Vec::new();
    let x = Exchange {
        key: ApiKey::ListOffsets,
        version: 7,
        correlation_id: 1,
        client_id: None,
        tags: BTreeMap::new(),
        request_body: vec![],
        response_body: vec![],
    };
    feed_whole(&mut tap, Dir::Request, &request_frame(&x), &mut events);
    let body_len = 50 << 20;
    let mut head = ((body_len + 4) as i32).to_be_bytes().to_vec();
    head.extend(1i32.to_be_bytes());
    feed_whole(&mut tap, Dir::Response, &head, &mut events);
    let chunk = vec![0u8; 64 << 10];
    for _ in 0..(body_len / chunk.len()) {
        feed_whole(&mut tap, Dir::Response, &chunk, &mut events);
    }
    assert!(tap.at_boundary());
    assert_eq!(tap.counters().responses, 1);
    assert_eq!(events.len(), 2);
}

/// The framing rule's edge, which the tap and `FrameTracker` share: a zero-length frame is an
/// empty frame — a parse error of its own (no header to read), not lost framing — and the
/// frames around it are followed; both count the same frames.
#[test]
fn an_empty_frame_is_a_parse_error_and_framing_holds() {
    let x = Exchange {
        key: ApiKey::ListOffsets,
        version: 5,
        correlation_id: 4,
        client_id: Some("c".into()),
        tags: BTreeMap::new(),
        request_body: vec![7; 20],
        response_body: vec![1, 2, 3],
    };
    let empty = frame(&[]);
    let requests = [empty.clone(), request_frame(&x), empty.clone()].concat();
    let responses = [empty.clone(), response_frame(&x), empty].concat();
    for cut in [1, 3, 4, 5, 64] {
        let mut tap = ConnectionTap::new(TopicNames::new());
        let mut events = Vec::new();
        feed_chunked(&mut tap, Dir::Request, &requests, &[cut], &mut events);
        feed_chunked(&mut tap, Dir::Response, &responses, &[cut], &mut events);
        assert!(!tap.is_opaque(), "chunks of {cut}: {events:?}");
        assert!(tap.at_boundary());
        let kinds: Vec<String> = events
            .iter()
            .map(|e| match e {
                TapEvent::Request(r) => format!("request {}", r.correlation_id),
                TapEvent::Response(r) => format!("response {}", r.correlation_id),
                TapEvent::ParseError(p) => format!("{} error", p.dir),
                other => format!("{other:?}"),
            })
            .collect();
        assert_eq!(
            kinds,
            [
                "request error",
                "request 4",
                "request error",
                "response error",
                "response 4",
                "response error"
            ],
            "chunks of {cut}"
        );
        let c = tap.counters();
        assert_eq!((c.requests, c.responses, c.parse_errors), (3, 3, 4));
        for (stream, tap_count) in [(&requests, c.requests), (&responses, c.responses)] {
            let mut tracker = FrameTracker::new();
            assert_eq!(tracker.feed(stream), tap_count, "one framing rule");
        }
    }
}
