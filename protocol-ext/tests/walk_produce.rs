//! The Produce request walker and `peek_produce_acks` against kafka-protocol's encoder (the
//! oracle), an annotated byte fixture, and malformed bodies.

mod walk_support;

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::produce_request::{
    PartitionProduceData, ProduceRequest, TopicProduceData,
};
use kafka_protocol::messages::{TopicName, TransactionalId};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use proptest::prelude::*;
use sluice_protocol::event::{ProducePartition, ProduceRequestStart, TopicId, TopicRef};
use sluice_protocol::walk::{peek_produce_acks, ProduceRequestWalker};
use sluice_protocol::{TapError, TapEvent};
use walk_support::*;

const VERSIONS: std::ops::RangeInclusive<i16> = 3..=13;

fn walk(v: i16, body: &[u8], sizes: &[usize]) -> (Vec<TapEvent>, Result<(), TapError>) {
    walk_chunked(ProduceRequestWalker::new(v).unwrap(), body, sizes)
}

fn malformed(r: &Result<(), TapError>) -> bool {
    matches!(r, Err(TapError::Malformed { .. }))
}

#[derive(Debug, Clone)]
struct TopicSpec {
    name: String,
    id: [u8; 16],
    parts: Vec<(i32, Option<RecordsSpec>, Option<Vec<u8>>)>,
    unknown: Option<Vec<u8>>,
}

#[derive(Debug, Clone)]
struct RequestSpec {
    transactional_id: Option<String>,
    acks: i16,
    timeout: i32,
    topics: Vec<TopicSpec>,
    unknown: Option<Vec<u8>>,
}

fn unknown_tag() -> impl Strategy<Value = Option<Vec<u8>>> {
    prop::option::weighted(0.3, prop::collection::vec(any::<u8>(), 0..200))
}

fn request_spec() -> impl Strategy<Value = RequestSpec> {
    let part = (
        any::<i32>(),
        prop::option::weighted(0.9, whole_records_spec()),
        unknown_tag(),
    );
    let topic = (
        "[a-zA-Z0-9._-]{0,40}",
        any::<[u8; 16]>(),
        prop::collection::vec(part, 0..4),
        unknown_tag(),
    )
        .prop_map(|(name, id, parts, unknown)| TopicSpec {
            name,
            id,
            parts,
            unknown,
        });
    (
        prop::option::of("[a-z0-9-]{0,300}"),
        prop_oneof![Just(-1i16), Just(0), Just(1), any::<i16>()],
        any::<i32>(),
        prop::collection::vec(topic, 0..4),
        unknown_tag(),
    )
        .prop_map(
            |(transactional_id, acks, timeout, topics, unknown)| RequestSpec {
                transactional_id,
                acks,
                timeout,
                topics,
                unknown,
            },
        )
}

fn str_bytes(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_owned())
}

fn tags(unknown: &Option<Vec<u8>>) -> std::collections::BTreeMap<i32, Bytes> {
    unknown
        .iter()
        .map(|b| (3, Bytes::from(b.clone())))
        .collect()
}

/// The request as kafka-protocol's struct for version `v`, with the events the walker must
/// emit for it.
fn build(spec: &RequestSpec, v: i16) -> (ProduceRequest, Vec<TapEvent>) {
    let flexible = v >= 9;
    let mut events = vec![TapEvent::ProduceRequest(ProduceRequestStart {
        transactional_id: spec.transactional_id.clone(),
        acks: spec.acks,
        timeout_ms: spec.timeout,
    })];
    let mut req = ProduceRequest::default();
    req.transactional_id = spec
        .transactional_id
        .as_deref()
        .map(|s| TransactionalId(str_bytes(s)));
    req.acks = spec.acks;
    req.timeout_ms = spec.timeout;
    for t in &spec.topics {
        let mut topic = TopicProduceData::default();
        topic.name = TopicName(str_bytes(&t.name));
        topic.topic_id = format!("{:032x}", u128::from_be_bytes(t.id))
            .parse()
            .unwrap();
        let topic_ref = if v >= 13 {
            TopicRef::by_id(TopicId(t.id))
        } else {
            TopicRef::named(&t.name)
        };
        for (index, records, unknown) in &t.parts {
            let (bytes, e) = match records {
                Some(r) => {
                    let (bytes, e) = build_records(r);
                    (Some(bytes), e)
                }
                None => (None, Expected::default()),
            };
            let mut part = PartitionProduceData::default();
            part.index = *index;
            part.records = bytes;
            if flexible {
                part.unknown_tagged_fields = tags(unknown);
            }
            topic.partition_data.push(part);
            events.push(TapEvent::ProducePartition(ProducePartition {
                topic: topic_ref.clone(),
                partition: *index,
                records_bytes: e.bytes,
                batches: e.batches,
                records: e.records,
                compression: e.compression,
            }));
        }
        if flexible {
            topic.unknown_tagged_fields = tags(&t.unknown);
        }
        req.topic_data.push(topic);
    }
    if flexible {
        req.unknown_tagged_fields = tags(&spec.unknown);
    }
    (req, events)
}

fn encode(req: &ProduceRequest, v: i16) -> BytesMut {
    let mut buf = BytesMut::new();
    req.encode(&mut buf, v).unwrap();
    buf
}

/// Bytes the `transactional_id` field takes in version `v`.
fn transactional_id_size(id: &Option<String>, v: i16) -> usize {
    match (id, v >= 9) {
        (None, true) => 1,
        (None, false) => 2,
        (Some(s), false) => 2 + s.len(),
        (Some(s), true) => {
            let mut n = s.len() as u32 + 1;
            let mut size = 1;
            while n >= 0x80 {
                n >>= 7;
                size += 1;
            }
            size + s.len()
        }
    }
}

proptest! {
    /// Every version, any chunking: the walker reports exactly what the encoded struct holds.
    #[test]
    fn matches_the_encoder(spec in request_spec(), sizes in chunk_sizes()) {
        for v in VERSIONS {
            let (req, expected) = build(&spec, v);
            let body = encode(&req, v);
            let (events, result) = walk(v, &body, &sizes);
            prop_assert_eq!(&result, &Ok(()), "version {}", v);
            prop_assert_eq!(&events, &expected, "version {}", v);
            let (whole, result) = walk(v, &body, &[body.len()]);
            prop_assert_eq!(result, Ok(()));
            prop_assert_eq!(&whole, &expected);
        }
    }

    /// `peek_produce_acks` answers exactly once `transactional_id` and `acks` are all present.
    #[test]
    fn peek_acks_from_any_prefix(spec in request_spec(), v in VERSIONS) {
        let (req, _) = build(&spec, v);
        let body = encode(&req, v);
        let needed = transactional_id_size(&spec.transactional_id, v) + 2;
        for keep in 0..=body.len().min(needed + 3) {
            let peeked = peek_produce_acks(v, &body[..keep]);
            if keep < needed {
                prop_assert_eq!(peeked, None, "{} of {} bytes", keep, needed);
            } else {
                prop_assert_eq!(peeked, Some(spec.acks));
            }
        }
    }

    /// Stopped right after any event (`feed_until`, as a tap bounding what waits does) and
    /// fed the rest: the same events as the encoder's, every version, any chunking.
    #[test]
    fn stopping_after_any_event_resumes_where_it_stopped(
        spec in request_spec(),
        size in prop_oneof![1usize..64, 1usize..4096],
        every in 1usize..4,
    ) {
        for v in VERSIONS {
            let (msg, expected) = build(&spec, v);
            let body = encode(&msg, v);
            let (events, result) =
                walk_stopping(ProduceRequestWalker::new(v).unwrap(), &body, size, every);
            prop_assert_eq!(&result, &Ok(()), "version {}", v);
            prop_assert_eq!(&events, &expected, "version {}", v);
        }
    }

    /// Any proper prefix of a valid body ends mid-structure; any extra byte is trailing garbage.
    #[test]
    fn cut_or_extended_bodies_are_malformed(
        spec in request_spec(),
        cut in any::<prop::sample::Index>(),
        extra in prop::collection::vec(any::<u8>(), 1..8),
        v in VERSIONS,
    ) {
        let (req, expected) = build(&spec, v);
        let body = encode(&req, v);
        let (events, result) = walk(v, &body[..cut.index(body.len())], &[7]);
        prop_assert!(malformed(&result), "{:?}", result);
        prop_assert!(expected.starts_with(&events));
        let mut longer = body.to_vec();
        longer.extend_from_slice(&extra);
        let (events, result) = walk(v, &longer, &[5]);
        prop_assert!(malformed(&result), "{:?}", result);
        prop_assert_eq!(events, expected);
    }

    /// Arbitrary bytes: never a panic, and the chunking never changes the events or outcome.
    #[test]
    fn arbitrary_bytes_are_chunking_invariant(
        body in prop::collection::vec(any::<u8>(), 0..600),
        sizes in chunk_sizes(),
        v in VERSIONS,
    ) {
        let whole = walk(v, &body, &[body.len().max(1)]);
        let split = walk(v, &body, &sizes);
        prop_assert_eq!(whole, split);
    }

    /// Arbitrary byte flips in a valid body: never a panic, chunking invariant.
    #[test]
    fn corrupted_bodies_are_chunking_invariant(
        spec in request_spec(),
        flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
        sizes in chunk_sizes(),
        v in VERSIONS,
    ) {
        let (req, _) = build(&spec, v);
        let mut body = encode(&req, v).to_vec();
        for (at, byte) in flips {
            let i = at.index(body.len());
            body[i] = byte;
        }
        let whole = walk(v, &body, &[body.len()]);
        let split = walk(v, &body, &sizes);
        prop_assert_eq!(whole, split);
    }
}

/// Produce v9 (flexible): transactional, acks=-1, one topic with one partition holding one
/// batch, and an unknown tagged field on the partition.
fn produce_v9_fixture() -> Vec<u8> {
    let (batch, _) = encode_batch(
        0,
        &BatchSpec {
            count: 2,
            stride: 1,
            gap: 0,
            value_len: 3,
            codec: 0,
            transactional: true,
        },
    );
    assert_eq!(batch.len(), 91);
    [
        &[
            0x05, b't', b'x', b'-', b'1', // transactional_id = "tx-1" (compact: 4 + 1)
            0xff, 0xff, // acks = -1
            0x00, 0x00, 0x75, 0x30, // timeout_ms = 30000
            0x02, // topic_data: compact array of 1
            0x04, b'o', b'u', b't', // name = "out" (compact: 3 + 1)
            0x02, // partition_data: compact array of 1
            0x00, 0x00, 0x00, 0x02, // index = 2
            0x5c, // records: compact bytes, 91 bytes (91 + 1)
        ][..],
        &batch, // one v2 batch: base_offset 0, 2 records
        &[
            0x01, // partition tagged fields: 1
            0x05, 0x02, 0xbe, 0xef, //   tag 5, 2 bytes: 0xbeef (unknown, skipped)
            0x00, // topic tagged fields: none
            0x00, // request tagged fields: none
        ][..],
    ]
    .concat()
}

#[test]
fn fixture_v9_transactional() {
    let body = produce_v9_fixture();
    let decoded = ProduceRequest::decode(&mut Bytes::from(body.clone()), 9).unwrap();
    assert_eq!(encode(&decoded, 9).to_vec(), body);
    let expected = vec![
        TapEvent::ProduceRequest(ProduceRequestStart {
            transactional_id: Some("tx-1".into()),
            acks: -1,
            timeout_ms: 30_000,
        }),
        TapEvent::ProducePartition(ProducePartition {
            topic: TopicRef::named("out"),
            partition: 2,
            records_bytes: 91,
            batches: 1,
            records: 2,
            compression: Some(0),
        }),
    ];
    for sizes in [&[body.len()][..], &[1], &[5, 3]] {
        let (events, result) = walk(9, &body, sizes);
        assert_eq!(result, Ok(()));
        assert_eq!(events, expected);
    }
    assert_eq!(peek_produce_acks(9, &body[..6]), None);
    assert_eq!(peek_produce_acks(9, &body[..7]), Some(-1));
}

#[test]
fn unsupported_versions() {
    for v in [-1, 0, 2, 14, i16::MAX] {
        assert_eq!(
            ProduceRequestWalker::new(v).unwrap_err(),
            TapError::UnsupportedVersion {
                api_key: 0,
                api_version: v
            }
        );
        assert_eq!(peek_produce_acks(v, &[0xff, 0xff, 0, 0, 0, 0]), None);
    }
}

#[test]
fn peek_acks_handles_bad_lengths() {
    // acks = 0 after a null transactional id (v3).
    assert_eq!(peek_produce_acks(3, &[0xff, 0xff, 0x00, 0x00]), Some(0));
    // A negative transactional id length other than -1.
    assert_eq!(peek_produce_acks(3, &[0xff, 0xfe, 0x00, 0x00]), None);
    // A compact length that claims more than the prefix holds.
    assert_eq!(peek_produce_acks(9, &[0x7f, 0x00, 0x01]), None);
    // A varint too long to be a length.
    assert_eq!(
        peek_produce_acks(9, &[0xff, 0xff, 0xff, 0xff, 0xff, 0x01, 0, 1]),
        None
    );
}

#[test]
fn a_batch_cut_short_is_malformed() {
    let mut body = produce_v9_fixture();
    // Claim one byte fewer of records (90 + 1), dropping the batch's last byte.
    body[21] = 0x5b;
    body.remove(22 + 90);
    let (events, result) = walk(9, &body, &[4]);
    assert!(malformed(&result), "{result:?}");
    assert_eq!(events.len(), 1, "only the request start was reported");
}

#[test]
fn transactional_id_too_long_or_not_utf8() {
    // v3: transactional id of 2 bytes that are not UTF-8.
    let body = [&be16(2)[..], &[0xc3, 0x28], &be16(1), &be32(0), &be32(0)].concat();
    let (events, result) = walk(3, &body, &[1]);
    assert!(malformed(&result));
    assert!(events.is_empty());
    // v3: a null topic name.
    let body = [&be16(-1)[..], &be16(1), &be32(0), &be32(1), &be16(-1)].concat();
    let (_, result) = walk(3, &body, &[64]);
    assert!(malformed(&result));
}
