//! The Fetch response walker against kafka-protocol's encoder (the oracle), annotated byte
//! fixtures, and malformed bodies.
//!
//! Long because it is one case per Fetch version range and per malformed shape, each small and
//! independent; splitting them would only scatter the shared builders.

mod walk_support;

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::fetch_response::{
    AbortedTransaction, EpochEndOffset, FetchResponse, FetchableTopicResponse, LeaderIdAndEpoch,
    NodeEndpoint, PartitionData, SnapshotId,
};
use kafka_protocol::messages::{BrokerId, ProducerId, TopicName};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use kafka_protocol::records::RecordBatchDecoder;
use proptest::prelude::*;
use sluice_protocol::event::{FetchPartitionDelivered, FetchResponseStart, TopicId, TopicRef};
use sluice_protocol::walk::FetchResponseWalker;
use sluice_protocol::{TapError, TapEvent};
use walk_support::*;

const VERSIONS: std::ops::RangeInclusive<i16> = 4..=18;

fn walker(v: i16) -> FetchResponseWalker {
    FetchResponseWalker::new(v).unwrap()
}

fn walk(v: i16, body: &[u8], sizes: &[usize]) -> (Vec<TapEvent>, Result<(), TapError>) {
    walk_chunked(walker(v), body, sizes)
}

fn malformed(r: &Result<(), TapError>) -> bool {
    matches!(r, Err(TapError::Malformed { .. }))
}

// ---------------------------------------------------------------------------------------------
// Random responses, encoded by kafka-protocol for every version.

#[derive(Debug, Clone)]
struct PartSpec {
    index: i32,
    error: i16,
    watermarks: (i64, i64, i64),
    aborted: Option<Vec<(i64, i64)>>,
    preferred: i32,
    records: Option<RecordsSpec>,
    diverging: Option<(i32, i64)>,
    leader: Option<(i32, i32)>,
    snapshot: Option<(i64, i32)>,
    unknown: Option<Vec<u8>>,
}

#[derive(Debug, Clone)]
struct TopicSpec {
    name: String,
    id: [u8; 16],
    parts: Vec<PartSpec>,
    unknown: Option<Vec<u8>>,
}

#[derive(Debug, Clone)]
struct ResponseSpec {
    throttle: i32,
    error: i16,
    session: i32,
    topics: Vec<TopicSpec>,
    endpoints: Vec<(i32, String, i32, Option<String>)>,
    unknown: Option<Vec<u8>>,
}

fn unknown_tag() -> impl Strategy<Value = Option<Vec<u8>>> {
    prop::option::weighted(0.3, prop::collection::vec(any::<u8>(), 0..200))
}

fn part_spec() -> impl Strategy<Value = PartSpec> {
    (
        (any::<i32>(), any::<i16>(), any::<(i64, i64, i64)>()),
        prop::option::weighted(0.8, prop::collection::vec(any::<(i64, i64)>(), 0..4)),
        -1i32..5,
        prop::option::weighted(0.85, records_spec()),
        (
            prop::option::weighted(0.3, any::<(i32, i64)>()),
            prop::option::weighted(0.3, any::<(i32, i32)>()),
            prop::option::weighted(0.3, any::<(i64, i32)>()),
        ),
        unknown_tag(),
    )
        .prop_map(
            |((index, error, watermarks), aborted, preferred, records, tags, unknown)| PartSpec {
                index,
                error,
                watermarks,
                aborted,
                preferred,
                records,
                diverging: tags.0,
                leader: tags.1,
                snapshot: tags.2,
                unknown,
            },
        )
}

fn topic_spec() -> impl Strategy<Value = TopicSpec> {
    (
        "[a-zA-Z0-9._-]{0,40}",
        any::<[u8; 16]>(),
        prop::collection::vec(part_spec(), 0..4),
        unknown_tag(),
    )
        .prop_map(|(name, id, parts, unknown)| TopicSpec {
            name,
            id,
            parts,
            unknown,
        })
}

fn response_spec() -> impl Strategy<Value = ResponseSpec> {
    (
        any::<(i32, i16, i32)>(),
        prop::collection::vec(topic_spec(), 0..4),
        prop::collection::vec(
            (
                any::<i32>(),
                "[a-z0-9.]{0,20}",
                any::<i32>(),
                prop::option::of("[a-z0-9]{0,8}"),
            ),
            0..3,
        ),
        unknown_tag(),
    )
        .prop_map(
            |((throttle, error, session), topics, endpoints, unknown)| ResponseSpec {
                throttle,
                error,
                session,
                topics,
                endpoints,
                unknown,
            },
        )
}

fn str_bytes(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_owned())
}

fn tags(unknown: &Option<Vec<u8>>, key: i32) -> std::collections::BTreeMap<i32, Bytes> {
    unknown
        .iter()
        .map(|b| (key, Bytes::from(b.clone())))
        .collect()
}

/// The response as kafka-protocol's struct for version `v` (fields the version lacks left at
/// their defaults, as the encoder requires), with the events the walker must emit for it.
fn build(spec: &ResponseSpec, v: i16) -> (FetchResponse, Vec<TapEvent>) {
    let flexible = v >= 12;
    let mut events = vec![TapEvent::FetchResponse(FetchResponseStart {
        throttle_time_ms: spec.throttle,
        error_code: if v >= 7 { spec.error } else { 0 },
        session_id: if v >= 7 { spec.session } else { 0 },
    })];
    let mut resp = FetchResponse::default();
    resp.throttle_time_ms = spec.throttle;
    resp.error_code = spec.error;
    resp.session_id = if v >= 7 { spec.session } else { 0 };
    for t in &spec.topics {
        let mut topic = FetchableTopicResponse::default();
        topic.topic = TopicName(str_bytes(&t.name));
        topic.topic_id = format!("{:032x}", u128::from_be_bytes(t.id))
            .parse()
            .unwrap();
        let topic_ref = if v >= 13 {
            TopicRef::by_id(TopicId(t.id))
        } else {
            TopicRef::named(&t.name)
        };
        for p in &t.parts {
            let (records, stats) = match &p.records {
                Some(r) => {
                    let (bytes, e) = build_records(r);
                    (Some(bytes), e)
                }
                None => (None, Expected::default()),
            };
            let mut part = PartitionData::default();
            part.partition_index = p.index;
            part.error_code = p.error;
            (
                part.high_watermark,
                part.last_stable_offset,
                part.log_start_offset,
            ) = p.watermarks;
            part.aborted_transactions = p.aborted.as_ref().map(|list| {
                list.iter()
                    .map(|&(pid, first)| {
                        let mut a = AbortedTransaction::default();
                        a.producer_id = ProducerId(pid);
                        a.first_offset = first;
                        if flexible {
                            a.unknown_tagged_fields = tags(&p.unknown, 9);
                        }
                        a
                    })
                    .collect()
            });
            part.preferred_read_replica = BrokerId(if v >= 11 { p.preferred } else { -1 });
            part.records = records;
            if let Some((epoch, end_offset)) = p.diverging {
                part.diverging_epoch = EpochEndOffset::default()
                    .with_epoch(epoch)
                    .with_end_offset(end_offset);
            }
            if let Some((leader, epoch)) = p.leader {
                part.current_leader = LeaderIdAndEpoch::default()
                    .with_leader_id(BrokerId(leader))
                    .with_leader_epoch(epoch);
            }
            if let Some((end_offset, epoch)) = p.snapshot {
                part.snapshot_id = SnapshotId::default()
                    .with_end_offset(end_offset)
                    .with_epoch(epoch);
            }
            if flexible {
                // Known partition tags are 0..=2: an unknown one from 3.
                part.unknown_tagged_fields = tags(&p.unknown, 300);
            }
            events.push(TapEvent::FetchPartition(FetchPartitionDelivered {
                topic: topic_ref.clone(),
                partition: p.index,
                error_code: p.error,
                high_watermark: p.watermarks.0,
                last_stable_offset: p.watermarks.1,
                log_start_offset: if v >= 5 { p.watermarks.2 } else { -1 },
                aborted_transactions: p.aborted.as_ref().map_or(0, |a| a.len() as u32),
                preferred_read_replica: if v >= 11 { p.preferred } else { -1 },
                records_bytes: stats.bytes,
                batches: stats.batches,
                records: stats.records,
                first_offset: stats.first_offset,
                last_offset: stats.last_offset,
                compression: stats.compression,
                truncated: stats.truncated,
            }));
            topic.partitions.push(part);
        }
        if flexible {
            topic.unknown_tagged_fields = tags(&t.unknown, 4);
        }
        resp.responses.push(topic);
    }
    for (node_id, host, port, rack) in &spec.endpoints {
        resp.node_endpoints.push(
            NodeEndpoint::default()
                .with_node_id(BrokerId(*node_id))
                .with_host(str_bytes(host))
                .with_port(*port)
                .with_rack(rack.as_deref().map(str_bytes)),
        );
    }
    if v < 16 {
        resp.node_endpoints.clear();
    }
    if flexible {
        resp.unknown_tagged_fields = tags(&spec.unknown, 77);
    }
    (resp, events)
}

fn encode(resp: &FetchResponse, v: i16) -> BytesMut {
    let mut buf = BytesMut::new();
    resp.encode(&mut buf, v).unwrap();
    buf
}

proptest! {
    /// Every version, any chunking: the walker reports exactly what the encoded struct holds.
    #[test]
    fn matches_the_encoder(spec in response_spec(), sizes in chunk_sizes()) {
        for v in VERSIONS {
            let (resp, expected) = build(&spec, v);
            let body = encode(&resp, v);
            let (events, result) = walk(v, &body, &sizes);
            prop_assert_eq!(&result, &Ok(()), "version {}", v);
            prop_assert_eq!(&events, &expected, "version {}", v);
            let (whole, result) = walk(v, &body, &[body.len()]);
            prop_assert_eq!(result, Ok(()));
            prop_assert_eq!(&whole, &expected);
        }
    }

    /// Stopped right after any event (`feed_until`, as a tap bounding what waits does) and
    /// fed the rest: the same events as the encoder's, every version, any chunking.
    #[test]
    fn stopping_after_any_event_resumes_where_it_stopped(
        spec in response_spec(),
        size in prop_oneof![1usize..64, 1usize..4096],
        every in 1usize..4,
    ) {
        for v in VERSIONS {
            let (msg, expected) = build(&spec, v);
            let body = encode(&msg, v);
            let (events, result) =
                walk_stopping(FetchResponseWalker::new(v).unwrap(), &body, size, every);
            prop_assert_eq!(&result, &Ok(()), "version {}", v);
            prop_assert_eq!(&events, &expected, "version {}", v);
        }
    }

    /// Any proper prefix of a valid body ends mid-structure; any extra byte is trailing garbage.
    #[test]
    fn cut_or_extended_bodies_are_malformed(
        spec in response_spec(),
        cut in any::<prop::sample::Index>(),
        extra in prop::collection::vec(any::<u8>(), 1..8),
        v in VERSIONS,
    ) {
        let (resp, expected) = build(&spec, v);
        let body = encode(&resp, v);
        let keep = cut.index(body.len());
        let (events, result) = walk(v, &body[..keep], &[7]);
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
        spec in response_spec(),
        flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
        sizes in chunk_sizes(),
        v in VERSIONS,
    ) {
        let (resp, _) = build(&spec, v);
        let mut body = encode(&resp, v).to_vec();
        if body.is_empty() {
            return Ok(());
        }
        for (at, byte) in flips {
            let i = at.index(body.len());
            body[i] = byte;
        }
        let whole = walk(v, &body, &[body.len()]);
        let split = walk(v, &body, &sizes);
        prop_assert_eq!(whole, split);
    }
}

// ---------------------------------------------------------------------------------------------
// Hand-built fixtures.

/// A v2 record batch of one record (value "hi"), everything after its base offset.
const BATCH_ONE_RECORD_AFTER_BASE: &[u8] = &[
    0x00, 0x00, 0x00, 0x3a, // batch_length = 58 (49 header bytes + a 9-byte record)
    0x00, 0x00, 0x00, 0x03, // partition_leader_epoch = 3
    0x02, // magic = 2
    0xbb, 0xcc, 0x41, 0x15, // crc (CRC-32C of attributes..end)
    0x00, 0x00, // attributes = 0: no compression, not transactional
    0x00, 0x00, 0x00, 0x00, // last_offset_delta = 0
    0x00, 0x00, 0x01, 0x8b, 0xcf, 0xe5, 0x68, 0x00, // base_timestamp = 1700000000000
    0x00, 0x00, 0x01, 0x8b, 0xcf, 0xe5, 0x68, 0x00, // max_timestamp = 1700000000000
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, // producer_id = -1
    0xff, 0xff, // producer_epoch = -1
    0xff, 0xff, 0xff, 0xff, // base_sequence = -1
    0x00, 0x00, 0x00, 0x01, // records_count = 1
    // record 0: length 8 (zigzag 0x10), attributes 0, timestamp_delta 0, offset_delta 0,
    // key null (zigzag -1 = 0x01), value length 2 (zigzag 0x04) "hi", headers 0
    0x10, 0x00, 0x00, 0x00, 0x01, 0x04, b'h', b'i', 0x00,
];

/// A transactional v2 record batch of two records ("hi", "yo"), everything after its base
/// offset.
const BATCH_TWO_RECORDS_TXN_AFTER_BASE: &[u8] = &[
    0x00, 0x00, 0x00, 0x43, // batch_length = 67 (49 header bytes + two 9-byte records)
    0x00, 0x00, 0x00, 0x03, // partition_leader_epoch = 3
    0x02, // magic = 2
    0x34, 0x0d, 0x48, 0xe4, // crc
    0x00, 0x10, // attributes = 0x10: transactional, no compression
    0x00, 0x00, 0x00, 0x01, // last_offset_delta = 1
    0x00, 0x00, 0x01, 0x8b, 0xcf, 0xe5, 0x68, 0x00, // base_timestamp = 1700000000000
    0x00, 0x00, 0x01, 0x8b, 0xcf, 0xe5, 0x68, 0x00, // max_timestamp = 1700000000000
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x0f, 0xa0, // producer_id = 4000
    0x00, 0x00, // producer_epoch = 0
    0x00, 0x00, 0x00, 0x00, // base_sequence = 0
    0x00, 0x00, 0x00, 0x02, // records_count = 2
    0x10, 0x00, 0x00, 0x00, 0x01, 0x04, b'h', b'i', 0x00, // record 0: offset_delta 0, "hi"
    0x10, 0x00, 0x00, 0x02, 0x01, 0x04, b'y', b'o', 0x00, // record 1: offset_delta 1, "yo"
];

/// A batch with base offset `base` (`rest` is one of the constants above).
fn batch(base: i64, rest: &[u8]) -> Vec<u8> {
    [&be64(base)[..], rest].concat()
}

/// Fetch v11: 2 topics × 2 partitions; orders/0 has 2 batches and an aborted transaction,
/// orders/1 ends with a truncated batch, audit/0 has null aborted transactions and null
/// records, audit/1 empty ones.
fn fetch_v11_fixture() -> Vec<u8> {
    let orders_0_records = [
        batch(100, BATCH_ONE_RECORD_AFTER_BASE), // offset 100 (70 bytes)
        batch(101, BATCH_TWO_RECORDS_TXN_AFTER_BASE), // offsets 101..=102 (79 bytes)
    ]
    .concat();
    assert_eq!(orders_0_records.len(), 149);
    let orders_1_records = [
        batch(40, BATCH_ONE_RECORD_AFTER_BASE), // offset 40 (70 bytes)
        // the next batch cut after 20 of its 70 bytes: base_offset = 41, batch_length = 58,
        // partition_leader_epoch = 3, magic = 2, 3 bytes of crc
        batch(41, BATCH_ONE_RECORD_AFTER_BASE)[..20].to_vec(),
    ]
    .concat();
    assert_eq!(orders_1_records.len(), 90);
    [
        &[
            0x00, 0x00, 0x00, 0x19, // throttle_time_ms = 25
            0x00, 0x00, // error_code = 0
            0x00, 0x00, 0x00, 0x07, // session_id = 7
            0x00, 0x00, 0x00, 0x02, // responses: 2 topics
            // ---- topic 0
            0x00, 0x06, b'o', b'r', b'd', b'e', b'r', b's', // topic = "orders"
            0x00, 0x00, 0x00, 0x02, // partitions: 2
            // -- orders/0
            0x00, 0x00, 0x00, 0x00, // partition_index = 0
            0x00, 0x00, // error_code = 0
            0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x6e, // high_watermark = 110
            0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x65, // last_stable_offset = 101
            0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // log_start_offset = 0
            0x00, 0x00, 0x00, 0x01, // aborted_transactions: 1
            0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x0f, 0xa0, //   producer_id = 4000
            0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x65, //   first_offset = 101
            0xff, 0xff, 0xff, 0xff, // preferred_read_replica = -1
            0x00, 0x00, 0x00, 0x95, // records: 149 bytes
        ][..],
        &orders_0_records,
        &[
            // -- orders/1
            0x00, 0x00, 0x00, 0x01, // partition_index = 1
            0x00, 0x00, // error_code = 0
            0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x32, // high_watermark = 50
            0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x32, // last_stable_offset = 50
            0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // log_start_offset = 0
            0x00, 0x00, 0x00, 0x00, // aborted_transactions: 0
            0x00, 0x00, 0x00, 0x02, // preferred_read_replica = 2
            0x00, 0x00, 0x00, 0x5a, // records: 90 bytes
        ][..],
        &orders_1_records,
        &[
            // ---- topic 1
            0x00, 0x05, b'a', b'u', b'd', b'i', b't', // topic = "audit"
            0x00, 0x00, 0x00, 0x02, // partitions: 2
            // -- audit/0
            0x00, 0x00, 0x00, 0x00, // partition_index = 0
            0x00, 0x01, // error_code = 1 (OFFSET_OUT_OF_RANGE)
            0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, // high_watermark = -1
            0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, // last_stable_offset = -1
            0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, // log_start_offset = -1
            0xff, 0xff, 0xff, 0xff, // aborted_transactions: null
            0xff, 0xff, 0xff, 0xff, // preferred_read_replica = -1
            0xff, 0xff, 0xff, 0xff, // records: null
            // -- audit/1
            0x00, 0x00, 0x00, 0x01, // partition_index = 1
            0x00, 0x00, // error_code = 0
            0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x07, // high_watermark = 7
            0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x07, // last_stable_offset = 7
            0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // log_start_offset = 0
            0x00, 0x00, 0x00, 0x00, // aborted_transactions: 0
            0xff, 0xff, 0xff, 0xff, // preferred_read_replica = -1
            0x00, 0x00, 0x00, 0x00, // records: 0 bytes
        ][..],
    ]
    .concat()
}

fn delivered(topic: TopicRef, partition: i32) -> FetchPartitionDelivered {
    FetchPartitionDelivered {
        topic,
        partition,
        error_code: 0,
        high_watermark: 0,
        last_stable_offset: 0,
        log_start_offset: 0,
        aborted_transactions: 0,
        preferred_read_replica: -1,
        records_bytes: 0,
        batches: 0,
        records: 0,
        first_offset: None,
        last_offset: None,
        compression: None,
        truncated: false,
    }
}

fn fetch_v11_expected() -> Vec<TapEvent> {
    let orders = TopicRef::named("orders");
    let audit = TopicRef::named("audit");
    vec![
        TapEvent::FetchResponse(FetchResponseStart {
            throttle_time_ms: 25,
            error_code: 0,
            session_id: 7,
        }),
        TapEvent::FetchPartition(FetchPartitionDelivered {
            high_watermark: 110,
            last_stable_offset: 101,
            aborted_transactions: 1,
            records_bytes: 149,
            batches: 2,
            records: 3,
            first_offset: Some(100),
            last_offset: Some(102),
            compression: Some(0),
            ..delivered(orders.clone(), 0)
        }),
        TapEvent::FetchPartition(FetchPartitionDelivered {
            high_watermark: 50,
            last_stable_offset: 50,
            preferred_read_replica: 2,
            records_bytes: 90,
            batches: 1,
            records: 1,
            first_offset: Some(40),
            last_offset: Some(40),
            compression: Some(0),
            truncated: true,
            ..delivered(orders, 1)
        }),
        TapEvent::FetchPartition(FetchPartitionDelivered {
            error_code: 1,
            high_watermark: -1,
            last_stable_offset: -1,
            log_start_offset: -1,
            ..delivered(audit.clone(), 0)
        }),
        TapEvent::FetchPartition(FetchPartitionDelivered {
            high_watermark: 7,
            last_stable_offset: 7,
            ..delivered(audit, 1)
        }),
    ]
}

#[test]
fn fixture_v11_two_topics_two_partitions() {
    let body = fetch_v11_fixture();
    // The fixture is a canonical encoding: kafka-protocol decodes it and encodes it back
    // byte for byte, and its complete batches pass the CRC check.
    let decoded = FetchResponse::decode(&mut Bytes::from(body.clone()), 11).unwrap();
    assert_eq!(encode(&decoded, 11).to_vec(), body);
    let orders_0 = decoded.responses[0].partitions[0].records.clone().unwrap();
    let infos = RecordBatchDecoder::decode_batch_info(&mut orders_0.clone()).unwrap();
    assert_eq!(
        infos.iter().map(|i| i.record_count).collect::<Vec<_>>(),
        [1, 2]
    );

    let expected = fetch_v11_expected();
    for sizes in [&[body.len()][..], &[1], &[2, 3, 5, 7], &[61], &[13, 100]] {
        let (events, result) = walk(11, &body, sizes);
        assert_eq!(result, Ok(()));
        assert_eq!(events, expected, "chunks {sizes:?}");
    }
}

const TOPIC_ID: [u8; 16] = [
    0x5e, 0x1c, 0x3a, 0x7d, 0x24, 0x9b, 0x4f, 0x0e, 0x8a, 0x61, 0x13, 0xc2, 0x77, 0xd0, 0x05, 0xb9,
];

/// Fetch v16 (flexible, topic ids): one topic, a partition with one batch, a partition with
/// the diverging_epoch and current_leader tagged fields, and node_endpoints at the top.
fn fetch_v16_fixture() -> Vec<u8> {
    [
        &[
            0x00, 0x00, 0x00, 0x00, // throttle_time_ms = 0
            0x00, 0x00, // error_code = 0
            0x0a, 0x0b, 0x0c, 0x0d, // session_id = 0x0a0b0c0d
            0x02, // responses: compact array of 1 (1 + 1)
        ][..],
        &TOPIC_ID, // topic_id
        &[
            0x03, // partitions: compact array of 2
            // -- partition 0
            0x00, 0x00, 0x00, 0x00, // partition_index = 0
            0x00, 0x00, // error_code = 0
            0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, // high_watermark = 1
            0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, // last_stable_offset = 1
            0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // log_start_offset = 0
            0x01, // aborted_transactions: compact array, empty
            0xff, 0xff, 0xff, 0xff, // preferred_read_replica = -1
            0x47, // records: compact bytes, 70 bytes (70 + 1)
        ][..],
        &batch(0, BATCH_ONE_RECORD_AFTER_BASE), // offset 0
        &[
            0x00, // tagged fields: none
            // -- partition 1
            0x00, 0x00, 0x00, 0x01, // partition_index = 1
            0x00, 0x06, // error_code = 6 (NOT_LEADER_OR_FOLLOWER)
            0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, // high_watermark = -1
            0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, // last_stable_offset = -1
            0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, // log_start_offset = -1
            0x00, // aborted_transactions: null
            0xff, 0xff, 0xff, 0xff, // preferred_read_replica = -1
            0x00, // records: null
            0x02, // tagged fields: 2
            0x00, 0x0d, //   tag 0 (diverging_epoch), 13 bytes:
            0x00, 0x00, 0x00, 0x04, //     epoch = 4
            0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x5a, //     end_offset = 90
            0x00, //     tagged fields: none
            0x01, 0x09, //   tag 1 (current_leader), 9 bytes:
            0x00, 0x00, 0x00, 0x02, //     leader_id = 2
            0x00, 0x00, 0x00, 0x05, //     leader_epoch = 5
            0x00, //     tagged fields: none
            0x00, // topic tagged fields: none
            0x01, // top-level tagged fields: 1
            0x00, 0x0e, //   tag 0 (node_endpoints), 14 bytes:
            0x02, //     compact array of 1
            0x00, 0x00, 0x00, 0x02, //       node_id = 2
            0x03, b'b', b'2', //       host = "b2"
            0x00, 0x00, 0x23, 0x84, //       port = 9092
            0x00, //       rack = null
            0x00, //       tagged fields: none
        ][..],
    ]
    .concat()
}

#[test]
fn fixture_v16_topic_ids_and_tagged_fields() {
    let body = fetch_v16_fixture();
    let decoded = FetchResponse::decode(&mut Bytes::from(body.clone()), 16).unwrap();
    assert_eq!(encode(&decoded, 16).to_vec(), body);
    assert_eq!(
        decoded.responses[0].partitions[1]
            .current_leader
            .leader_epoch,
        5
    );
    assert_eq!(decoded.node_endpoints[0].port, 9092);

    let topic = TopicRef::by_id(TopicId(TOPIC_ID));
    let expected = vec![
        TapEvent::FetchResponse(FetchResponseStart {
            throttle_time_ms: 0,
            error_code: 0,
            session_id: 0x0a0b_0c0d,
        }),
        TapEvent::FetchPartition(FetchPartitionDelivered {
            high_watermark: 1,
            last_stable_offset: 1,
            records_bytes: 70,
            batches: 1,
            records: 1,
            first_offset: Some(0),
            last_offset: Some(0),
            compression: Some(0),
            ..delivered(topic.clone(), 0)
        }),
        TapEvent::FetchPartition(FetchPartitionDelivered {
            error_code: 6,
            high_watermark: -1,
            last_stable_offset: -1,
            log_start_offset: -1,
            ..delivered(topic, 1)
        }),
    ];
    for sizes in [&[body.len()][..], &[1], &[3, 1, 4, 1, 5, 9, 2, 6]] {
        let (events, result) = walk(16, &body, sizes);
        assert_eq!(result, Ok(()));
        assert_eq!(events, expected, "chunks {sizes:?}");
    }
}

// ---------------------------------------------------------------------------------------------
// Versions, errors and edge cases.

#[test]
fn unsupported_versions() {
    for v in [-1, 0, 3, 19, i16::MAX] {
        assert_eq!(
            FetchResponseWalker::new(v).unwrap_err(),
            TapError::UnsupportedVersion {
                api_key: 1,
                api_version: v
            }
        );
    }
}

#[test]
fn every_prefix_of_the_fixtures_is_malformed_and_emits_a_prefix_of_the_events() {
    for (v, body) in [(11, fetch_v11_fixture()), (16, fetch_v16_fixture())] {
        let (all, _) = walk(v, &body, &[body.len()]);
        for keep in 0..body.len() {
            let (events, result) = walk(v, &body[..keep], &[3]);
            assert!(malformed(&result), "v{v} cut at {keep}: {result:?}");
            assert!(all.starts_with(&events));
        }
    }
}

#[test]
fn trailing_bytes_are_malformed_and_the_error_sticks() {
    let mut body = fetch_v11_fixture();
    body.push(0);
    let mut w = walker(11);
    let mut events = Vec::new();
    let err = w.feed(&body, &mut |e| events.push(e)).unwrap_err();
    assert_eq!(
        events.len(),
        5,
        "all partitions were reported before the garbage"
    );
    assert!(matches!(err, TapError::Malformed { .. }));
    // The walker stays failed: same error, nothing emitted.
    assert_eq!(
        w.feed(&[1, 2, 3], &mut |e| events.push(e)),
        Err(err.clone())
    );
    assert_eq!(w.finish(&mut |e| events.push(e)), Err(err));
    assert_eq!(events.len(), 5);
}

/// The top of a v11 body up to the topic count.
fn v11_top(topics: i32) -> Vec<u8> {
    [&be32(0)[..], &be16(0), &be32(0), &be32(topics)].concat()
}

/// A v11 body up to the aborted transactions count of one partition of topic "t".
fn v11_partition_head(aborted: i32) -> Vec<u8> {
    [
        &v11_top(1)[..],
        &be16(1),
        b"t",
        &be32(1), // partitions: 1
        &be32(0), // partition_index
        &be16(0), // error_code
        &be64(0), // high_watermark
        &be64(0), // last_stable_offset
        &be64(0), // log_start_offset
        &be32(aborted),
    ]
    .concat()
}

#[test]
fn absurd_counts_do_not_allocate_and_end_malformed() {
    // 2^31 - 1 topics, then nothing.
    let (events, result) = walk(11, &v11_top(i32::MAX), &[3]);
    assert_eq!(events.len(), 1);
    assert!(malformed(&result));
    // 2^31 - 1 aborted transactions: a 32 GiB skip that never completes.
    let (_, result) = walk(11, &v11_partition_head(i32::MAX), &[3]);
    assert!(malformed(&result));
    // A compact array of 2^32 - 2 topics (v12).
    let body = [
        &be32(0)[..],
        &be16(0),
        &be32(0),
        &[0xff, 0xff, 0xff, 0xff, 0x0f],
    ]
    .concat();
    let (_, result) = walk(12, &body, &[1]);
    assert!(malformed(&result));
    // Records of 2^31 - 1 bytes with one batch prefix present.
    let body = [
        &v11_partition_head(0)[..],
        &be32(-1),
        &be32(i32::MAX),
        &be64(0),
        &be32(100),
    ]
    .concat();
    let (_, result) = walk(11, &body, &[4]);
    assert!(malformed(&result));
}

#[test]
fn negative_lengths_are_malformed() {
    for topics in [-1, -2, i32::MIN] {
        let (_, result) = walk(11, &v11_top(topics), &[64]);
        assert!(malformed(&result), "{topics}");
    }
    // Topic name length -1 (null) and -5.
    for len in [-1, -5] {
        let body = [&v11_top(1)[..], &be16(len)].concat();
        let (_, result) = walk(11, &body, &[64]);
        assert!(malformed(&result), "{len}");
    }
    // Aborted transactions count -2.
    let (_, result) = walk(11, &v11_partition_head(-2), &[64]);
    assert!(malformed(&result));
    // Records length -2.
    let body = [&v11_partition_head(0)[..], &be32(-1), &be32(-2)].concat();
    let (_, result) = walk(11, &body, &[64]);
    assert!(malformed(&result));
    // A batch length of -1.
    let body = [
        &v11_partition_head(0)[..],
        &be32(-1),
        &be32(12),
        &be64(5),
        &be32(-1),
    ]
    .concat();
    let (_, result) = walk(11, &body, &[64]);
    assert!(malformed(&result));
}

/// A v11 body with one partition whose records field is `records`.
fn v11_with_records(records: &[u8]) -> Vec<u8> {
    [
        &v11_partition_head(0)[..],
        &be32(-1),
        &be32(records.len() as i32),
        records,
    ]
    .concat()
}

fn only_partition(events: &[TapEvent]) -> &FetchPartitionDelivered {
    match events {
        [TapEvent::FetchResponse(_), TapEvent::FetchPartition(p)] => p,
        other => panic!("unexpected events {other:?}"),
    }
}

#[test]
fn bad_batches_are_malformed() {
    // Magic 3.
    let mut b = batch(0, BATCH_ONE_RECORD_AFTER_BASE);
    b[16] = 3;
    let (_, result) = walk(11, &v11_with_records(&b), &[64]);
    assert!(malformed(&result));
    // Magic 2 with a batch length shorter than its header (and a fitting field).
    let short = [&be64(0)[..], &be32(20), &[0; 4], &[2], &[0; 15]].concat();
    let (_, result) = walk(11, &v11_with_records(&short), &[64]);
    assert!(malformed(&result));
    // A batch too short to hold its magic byte.
    let tiny = [&be64(0)[..], &be32(2), &[0; 2]].concat();
    let (_, result) = walk(11, &v11_with_records(&tiny), &[64]);
    assert!(malformed(&result));
    // A negative records count.
    let mut b = batch(0, BATCH_ONE_RECORD_AFTER_BASE);
    b[57..61].copy_from_slice(&be32(-3));
    let (_, result) = walk(11, &v11_with_records(&b), &[64]);
    assert!(malformed(&result));
}

#[test]
fn bad_strings_and_varints_are_malformed() {
    // A topic name that is not UTF-8.
    let body = [&v11_top(1)[..], &be16(2), &[0xc3, 0x28], &be32(0)].concat();
    let (_, result) = walk(11, &body, &[1]);
    assert!(malformed(&result));
    // A varint of six bytes for the v12 topic count.
    let body = [
        &be32(0)[..],
        &be16(0),
        &be32(0),
        &[0x80, 0x80, 0x80, 0x80, 0x80, 0x01],
    ]
    .concat();
    let (_, result) = walk(12, &body, &[1]);
    assert!(malformed(&result));
    // A compact topic name longer than any Kafka string.
    let body = [
        &be32(0)[..],
        &be16(0),
        &be32(0),
        &[0x02],
        &[0x80, 0x80, 0x04],
    ]
    .concat();
    let (_, result) = walk(12, &body, &[2]);
    assert!(malformed(&result));
}

#[test]
fn short_tails_and_exact_fits() {
    // Fewer bytes than a batch prefix left: truncated, no batch.
    let (events, result) = walk(11, &v11_with_records(&[0; 11]), &[5]);
    assert_eq!(result, Ok(()));
    let p = only_partition(&events);
    assert_eq!((p.batches, p.truncated, p.records_bytes), (0, true, 11));
    // A batch that ends exactly at the end of the field: complete, not truncated.
    let b = batch(9, BATCH_TWO_RECORDS_TXN_AFTER_BASE);
    let (events, result) = walk(11, &v11_with_records(&b), &[1]);
    assert_eq!(result, Ok(()));
    let p = only_partition(&events);
    assert_eq!(
        (
            p.batches,
            p.records,
            p.first_offset,
            p.last_offset,
            p.truncated
        ),
        (1, 2, Some(9), Some(10), false)
    );
    // A full prefix and header of a batch whose body is missing: truncated.
    let (events, result) = walk(11, &v11_with_records(&b[..61]), &[1]);
    assert_eq!(result, Ok(()));
    let p = only_partition(&events);
    assert_eq!((p.batches, p.truncated), (0, true));
}

#[test]
fn legacy_message_sets_count_bytes_only() {
    // A magic 1 message: offset, message_size, crc, magic, attributes, timestamp, key, value.
    let message = [
        &be64(5)[..], // offset = 5
        &be32(22),    // message_size = 22
        &be32(0),     // crc (not checked)
        &[1],         // magic = 1
        &[0],         // attributes = 0
        &be64(0),     // timestamp = 0
        &be32(-1),    // key = null
        &be32(0),     // value = empty
    ]
    .concat();
    assert_eq!(message.len(), 34);
    let records = [&message[..], &batch(6, BATCH_ONE_RECORD_AFTER_BASE)].concat();
    let (events, result) = walk(11, &v11_with_records(&records), &[1]);
    assert_eq!(result, Ok(()));
    let p = only_partition(&events);
    assert_eq!(
        (
            p.records_bytes,
            p.batches,
            p.records,
            p.first_offset,
            p.truncated
        ),
        (104, 1, 1, Some(6), false)
    );
}

#[test]
fn compression_is_that_of_the_first_complete_batch() {
    let spec = RecordsSpec {
        base: 0,
        batches: [3u8, 4]
            .iter()
            .map(|&codec| BatchSpec {
                count: 2,
                stride: 1,
                gap: 0,
                value_len: 10,
                codec,
                transactional: false,
            })
            .collect(),
        cut: None,
    };
    let (records, e) = build_records(&spec);
    assert_eq!(e.compression, Some(3));
    let (events, result) = walk(11, &v11_with_records(&records), &[17]);
    assert_eq!(result, Ok(()));
    assert_eq!(only_partition(&events).compression, Some(3));
}
