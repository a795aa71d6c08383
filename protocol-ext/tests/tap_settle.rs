//! Settling (`ConnectionTap::settle`) over a consumer's conversation as it really interleaves:
//! Metadata naming a topic by id, a full Fetch opening a session, incremental Fetches naming
//! only the partition that moved, their responses by topic id, an OffsetCommit, and a Fetch
//! request that does not parse. Frames are encoded by `kafka-protocol` and cut into random
//! chunks. The events, counters and state must be those the conversation holds
//! (`the_conversation_is_what_a_consumer_does`), whatever the chunks — requests kept whole or
//! followed piece by piece — and wherever the tap is settled: after every chunk, at random
//! points, or only at the end — fetch sessions, topic names and problems included.

use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchRequest, FetchTopic};
use kafka_protocol::messages::fetch_response::{
    FetchResponse, FetchableTopicResponse, PartitionData,
};
use kafka_protocol::messages::metadata_response::{
    MetadataResponse, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequest, OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::{
    ApiKey, BrokerId, GroupId, MetadataRequest, OffsetCommitResponse, RequestHeader,
    ResponseHeader, TopicName,
};
use kafka_protocol::protocol::{Encodable, StrBytes};
use kafka_protocol::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use proptest::prelude::*;
use sluice_protocol::tap::topics::TopicNames;
use sluice_protocol::tap::{ConnectionTap, TapHalf};
use sluice_protocol::{Dir, TapEvent};

const TOPIC_ID: [u8; 16] = *b"orders-topic-id!";
const METADATA_V: i16 = 12;
const FETCH_V: i16 = 17;
const COMMIT_V: i16 = 9;

fn topic_uuid<T: TryFrom<Vec<u8>>>() -> T
where
    T::Error: std::fmt::Debug,
{
    T::try_from(TOPIC_ID.to_vec()).expect("16 bytes")
}

fn framed(
    key: ApiKey,
    version: i16,
    correlation_id: i32,
    request: bool,
    body: &impl Encodable,
) -> Vec<u8> {
    let mut b = BytesMut::new();
    if request {
        let mut h = RequestHeader::default();
        h.request_api_key = key as i16;
        h.request_api_version = version;
        h.correlation_id = correlation_id;
        h.client_id = Some(StrBytes::from_static_str("consumer-1"));
        h.encode(&mut b, key.request_header_version(version))
            .unwrap();
    } else {
        let mut h = ResponseHeader::default();
        h.correlation_id = correlation_id;
        h.encode(&mut b, key.response_header_version(version))
            .unwrap();
    }
    body.encode(&mut b, version).unwrap();
    let mut f = (b.len() as i32).to_be_bytes().to_vec();
    f.extend_from_slice(&b);
    f
}

/// One request and its response.
fn exchange(
    key: ApiKey,
    version: i16,
    correlation_id: i32,
    request: &impl Encodable,
    response: &impl Encodable,
) -> (Vec<u8>, Vec<u8>) {
    (
        framed(key, version, correlation_id, true, request),
        framed(key, version, correlation_id, false, response),
    )
}

fn records(base: i64, count: i64) -> Bytes {
    let records: Vec<Record> = (0..count)
        .map(|i| Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: 0,
            producer_id: 1,
            producer_epoch: 0,
            timestamp_type: TimestampType::Creation,
            offset: base + i,
            sequence: i as i32,
            timestamp: 1_764_000_000_000,
            key: None,
            value: Some(Bytes::from(vec![b'v'; 100])),
            headers: Default::default(),
        })
        .collect();
    let mut buf = BytesMut::new();
    let options = RecordEncodeOptions {
        version: 2,
        compression: Compression::None,
    };
    RecordBatchEncoder::encode(&mut buf, &records, &options).unwrap();
    buf.freeze()
}

fn fetch_request(session_id: i32, epoch: i32, parts: &[(i32, i64)]) -> FetchRequest {
    let mut topic = FetchTopic::default();
    topic.topic_id = topic_uuid();
    for &(p, offset) in parts {
        let mut part = FetchPartition::default();
        part.partition = p;
        part.fetch_offset = offset;
        part.partition_max_bytes = 1 << 20;
        topic.partitions.push(part);
    }
    let mut req = FetchRequest::default();
    req.replica_id = BrokerId(-1);
    req.max_wait_ms = 500;
    req.min_bytes = 1;
    req.max_bytes = 50 << 20;
    req.session_id = session_id;
    req.session_epoch = epoch;
    req.topics.push(topic);
    req
}

fn fetch_response(session_id: i32, partition: i32, base: i64, count: i64) -> FetchResponse {
    fetch_response_of(session_id, partition, base, count, 1, 0)
}

/// A response of `batches` batches of `count` records from `base`, the last one cut `cut`
/// bytes short (a broker's size limit).
fn fetch_response_of(
    session_id: i32,
    partition: i32,
    base: i64,
    count: i64,
    batches: i64,
    cut: usize,
) -> FetchResponse {
    let mut data = BytesMut::new();
    for b in 0..batches {
        data.extend_from_slice(&records(base + b * count, count));
    }
    data.truncate(data.len() - cut);
    let mut pd = PartitionData::default();
    pd.partition_index = partition;
    pd.high_watermark = base + batches * count + 100;
    pd.last_stable_offset = pd.high_watermark;
    pd.records = Some(data.freeze());
    let mut t = FetchableTopicResponse::default();
    t.topic_id = topic_uuid();
    t.partitions.push(pd);
    let mut resp = FetchResponse::default();
    resp.session_id = session_id;
    resp.responses.push(t);
    resp
}

/// The client's bytes and the broker's, as exchanges in order: (request, response).
fn conversation() -> Vec<(Vec<u8>, Vec<u8>)> {
    use ApiKey::{Fetch, Metadata, OffsetCommit};
    let mut x = Vec::new();
    // Metadata: the topic's id and name.
    let mut md = MetadataResponse::default();
    let mut t = MetadataResponseTopic::default();
    t.name = Some(TopicName(StrBytes::from_static_str("orders")));
    t.topic_id = topic_uuid();
    for p in 0..2 {
        let mut mp = MetadataResponsePartition::default();
        mp.partition_index = p;
        t.partitions.push(mp);
    }
    md.topics.push(t);
    x.push(exchange(
        Metadata,
        METADATA_V,
        1,
        &MetadataRequest::default(),
        &md,
    ));
    // A full fetch opens session 77 over partitions 0 and 1.
    let (full, opened) = (
        fetch_request(0, 0, &[(0, 0), (1, 500)]),
        fetch_response(77, 0, 0, 10),
    );
    x.push(exchange(Fetch, FETCH_V, 2, &full, &opened));
    // Incremental fetches: only partition 0 moves on; at epoch 4 it goes back (a rewind).
    let mut offset = 10;
    for epoch in 1..=6 {
        if epoch == 4 {
            offset = 0;
        }
        let req = fetch_request(77, epoch, &[(0, offset)]);
        // Some responses carry several batches, the last one cut short.
        let batches = if epoch % 2 == 0 { 3 } else { 1 };
        let cut = if epoch == 2 { 40 } else { 0 };
        x.push(exchange(
            Fetch,
            FETCH_V,
            2 + epoch,
            &req,
            &fetch_response_of(77, 0, offset, 10, batches, cut),
        ));
        offset += 10;
    }
    // An offset commit (a group event: settled at once in a proxy).
    let mut commit = OffsetCommitRequest::default();
    commit.group_id = GroupId(StrBytes::from_static_str("billing"));
    let mut ct = OffsetCommitRequestTopic::default();
    ct.name = TopicName(StrBytes::from_static_str("orders"));
    let mut cp = OffsetCommitRequestPartition::default();
    cp.committed_offset = 60;
    ct.partitions.push(cp);
    commit.topics.push(ct);
    x.push(exchange(
        OffsetCommit,
        COMMIT_V,
        9,
        &commit,
        &OffsetCommitResponse::default(),
    ));
    // A Fetch request cut short (its body does not parse), then one more round trip.
    let (mut bad, answer) = exchange(
        Fetch,
        FETCH_V,
        10,
        &fetch_request(77, 7, &[(0, 60)]),
        &fetch_response(77, 0, 60, 10),
    );
    bad.truncate(bad.len() - 3);
    let len = (bad.len() - 4) as i32;
    bad[..4].copy_from_slice(&len.to_be_bytes());
    x.push((bad, answer));
    // A Fetch response whose frame ends inside its records (the field claims more): a parse
    // error at the frame's end, however the bytes are held.
    let (req, mut short) = exchange(
        Fetch,
        FETCH_V,
        12,
        &fetch_request(77, 8, &[(0, 70)]),
        &fetch_response_of(77, 0, 70, 10, 3, 0),
    );
    short.truncate(short.len() - 1500);
    let len = (short.len() - 4) as i32;
    short[..4].copy_from_slice(&len.to_be_bytes());
    x.push((req, short));
    let req = fetch_request(77, 8, &[(0, 70)]);
    x.push(exchange(
        Fetch,
        FETCH_V,
        13,
        &req,
        &fetch_response_of(77, 0, 70, 10, 4, 300),
    ));
    x
}

#[derive(Debug, PartialEq)]
struct Seen {
    /// Each event with when the bytes it came from were read, from the start.
    events: Vec<(TapEvent, Duration)>,
    counters: (u64, u64, u64),
    unresolved: usize,
}

/// When the bytes of a chunk are read.
#[derive(Debug, Clone, Copy)]
enum Clock {
    /// Each chunk 1 ms after the previous one.
    PerRead,
    /// Every chunk of an exchange's request at one time, of its response 1 ms later: the
    /// same times whatever the chunks.
    PerExchange,
}

/// When the tap is settled (and always at the end).
#[derive(Debug, Clone, Copy)]
enum Settle<'a> {
    /// After every chunk.
    EveryChunk,
    /// After the chunks it picks (cycled), and whenever the tap asks (as Sluice does).
    Picked(&'a [bool]),
    /// Only at the end.
    AtEnd,
}

/// Feeds every exchange (request, then response) in `sizes` chunks, read as `clock` says,
/// settled as `settle` says. With `hold`, chunks go through [`TapHalf::hold`] first, as
/// Sluice's forwarding loop does.
fn follow(sizes: &[usize], settle: Settle<'_>, hold: bool, clock: Clock) -> Seen {
    let start = Instant::now();
    let mut tap = ConnectionTap::new(TopicNames::new());
    let mut events = Vec::new();
    let mut sizes = sizes.iter().cycle();
    let mut picked = match settle {
        Settle::Picked(when) => when,
        Settle::EveryChunk | Settle::AtEnd => &[false],
    }
    .iter()
    .cycle();
    let mut reads = 0u64;
    let (mut up, mut down) = (TapHalf::new(Dir::Request), TapHalf::new(Dir::Response));
    for (n, (request, response)) in conversation().into_iter().enumerate() {
        for (dir, mut rest) in [(Dir::Request, &request[..]), (Dir::Response, &response[..])] {
            while !rest.is_empty() {
                let (chunk, after) = rest.split_at((*sizes.next().unwrap()).min(rest.len()));
                rest = after;
                reads += 1;
                let now = start
                    + Duration::from_millis(match clock {
                        Clock::PerRead => reads,
                        Clock::PerExchange => 2 * n as u64 + u64::from(dir == Dir::Response),
                    });
                let half = if dir == Dir::Request {
                    &mut up
                } else {
                    &mut down
                };
                if !(hold && half.hold(chunk)) {
                    tap.feed(half, chunk, now);
                }
                let here = match settle {
                    Settle::EveryChunk => true,
                    Settle::Picked(_) => *picked.next().unwrap() || tap.settle_now(),
                    Settle::AtEnd => false,
                };
                if here {
                    tap.settle(&mut |e, at| events.push((e, at - start)));
                }
            }
        }
    }
    tap.settle(&mut |e, at| events.push((e, at - start)));
    let c = tap.counters();
    let unresolved = events
        .iter()
        .filter(|(e, _)| matches!(e, TapEvent::FetchPartition(p) if p.topic.name.is_none()))
        .count();
    Seen {
        events,
        counters: (c.requests, c.responses, c.parse_errors),
        unresolved,
    }
}

#[test]
fn the_conversation_is_what_a_consumer_does() {
    let seen = follow(&[1 << 20], Settle::EveryChunk, false, Clock::PerRead);
    assert_eq!(
        seen.counters,
        (12, 12, 2),
        "one Fetch request and one Fetch response do not parse"
    );
    assert_eq!(seen.unresolved, 0, "every partition named after Metadata");
    let fetches: Vec<Vec<(i32, i64)>> = seen
        .events
        .iter()
        .filter_map(|(e, _)| match e {
            TapEvent::FetchRequest(f) => Some(
                f.partitions
                    .iter()
                    .map(|p| (p.partition, p.fetch_offset))
                    .collect(),
            ),
            _ => None,
        })
        .collect();
    // Incremental fetches report what they list (partition 1, never delivered, is fetched
    // from where the full fetch put it); the rewind shows.
    assert_eq!(fetches[0], [(0, 0), (1, 500)]);
    assert_eq!(fetches[1], [(0, 10)]);
    assert_eq!(fetches[4], [(0, 0)]);
    assert_eq!(fetches.last().unwrap(), &[(0, 70)]);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Settled at random points, or only at the end: the same as settled after every chunk.
    #[test]
    fn settling_changes_no_event_counter_or_time(
        sizes in prop::collection::vec(1usize..400, 1..12),
        settle in prop::collection::vec(prop::bool::weighted(0.15), 1..30),
    ) {
        let each = follow(&sizes, Settle::EveryChunk, false, Clock::PerRead);
        prop_assert_eq!(&each, &follow(&sizes, Settle::Picked(&settle), false, Clock::PerRead));
        prop_assert_eq!(&each, &follow(&sizes, Settle::AtEnd, false, Clock::PerRead));
    }

    /// Requests kept whole (the conversation in one piece per frame) and followed piece by
    /// piece (random chunks) yield the same events, counters and times.
    #[test]
    fn chunking_changes_no_event_counter_or_time(
        sizes in prop::collection::vec(1usize..400, 1..12),
        settle in prop::collection::vec(prop::bool::weighted(0.15), 1..30),
    ) {
        let whole = follow(&[1 << 20], Settle::EveryChunk, false, Clock::PerExchange);
        prop_assert_eq!(&whole, &follow(&sizes, Settle::Picked(&settle), false, Clock::PerExchange));
    }

    /// What Sluice runs: chunks held while the tap would only count them down or walk batch
    /// headers (several batches per response, some cut short), settled at random.
    #[test]
    fn holding_changes_no_event_counter_or_time(
        sizes in prop::collection::vec(1usize..3000, 1..12),
        settle in prop::collection::vec(prop::bool::weighted(0.15), 1..30),
    ) {
        let fed = follow(&sizes, Settle::EveryChunk, false, Clock::PerRead);
        prop_assert_eq!(&fed, &follow(&sizes, Settle::EveryChunk, true, Clock::PerRead));
        prop_assert_eq!(&fed, &follow(&sizes, Settle::Picked(&settle), true, Clock::PerRead));
    }
}

#[test]
fn large_fetch_request_bodies_ask_to_be_settled() {
    let now = Instant::now();
    let mut tap = ConnectionTap::new(TopicNames::new());
    let small = fetch_request(0, 0, &[(0, 0)]);
    let mut up = TapHalf::new(Dir::Request);
    tap.feed(
        &mut up,
        &framed(ApiKey::Fetch, FETCH_V, 1, true, &small),
        now,
    );
    assert!(!tap.settle_now(), "a consumer's Fetch request waits");
    // 12,000 partitions: ~400 KB of body, more than a batch may keep.
    let parts: Vec<(i32, i64)> = (0..12_000).map(|p| (p, 0)).collect();
    let big = framed(
        ApiKey::Fetch,
        FETCH_V,
        2,
        true,
        &fetch_request(0, 0, &parts),
    );
    assert!(big.len() > sluice_protocol::tap::MAX_QUEUED_BODY_BYTES);
    tap.feed(&mut up, &big, now);
    assert!(
        tap.settle_now(),
        "megabytes of request bodies must not pile up"
    );
    let mut partitions = 0;
    tap.settle(&mut |e, _| {
        if let TapEvent::FetchRequest(f) = e {
            partitions += f.partitions.len();
        }
    });
    assert_eq!(partitions, 12_001);
    assert!(!tap.settle_now() && tap.queued() == 0);
}
