//! Request decoding against `kafka-protocol`'s encoder as the oracle: for every api key and
//! every version the decoder supports, random models are turned into `kafka-protocol` structs
//! (only the fields that exist in that version), encoded, decoded by `decode_request`, and the
//! events compared with what the model says they must be. Every encoded body is also checked
//! with one trailing byte (refused) and cut short (refused, nothing pushed).
//!
//! Long because it holds one model-to-struct builder per request the decoder reads, side by
//! side so that a new API version is added in one place.

use std::collections::BTreeMap;

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::consumer_group_heartbeat_request::TopicPartitions;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic, ForgottenTopic};
use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::leave_group_request::MemberIdentity;
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::offset_fetch_request::{
    OffsetFetchRequestGroup, OffsetFetchRequestTopic, OffsetFetchRequestTopics,
};
use kafka_protocol::messages::sync_group_request::SyncGroupRequestAssignment;
use kafka_protocol::messages::txn_offset_commit_request::{
    TxnOffsetCommitRequestPartition, TxnOffsetCommitRequestTopic,
};
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, BrokerId, ConsumerGroupHeartbeatRequest, FetchRequest,
    FindCoordinatorRequest, GroupId, HeartbeatRequest, JoinGroupRequest, LeaveGroupRequest,
    MetadataRequest, OffsetCommitRequest, OffsetFetchRequest, ProducerId, SaslAuthenticateRequest,
    SaslHandshakeRequest, SyncGroupRequest, TopicName, TransactionalId, TxnOffsetCommitRequest,
};
use kafka_protocol::protocol::{Encodable, HeaderVersion, Message, StrBytes};
use proptest::collection::{btree_map, vec};
use proptest::option;
use proptest::prelude::*;
use sluice_protocol::decode::{decode_request, wants_request_body, MAX_DECODE_BODY};
use sluice_protocol::event::{
    ClientSoftware, CommittedOffset, FetchRequestInfo, FetchRequestPartition, SaslInfo, TapEvent,
    TopicId, TopicRef,
};
use sluice_protocol::TapError;

// ---------------------------------------------------------------------------------------------
// Helpers shared by every property.

fn sb(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_owned())
}

fn osb(s: &Option<String>) -> Option<StrBytes> {
    s.as_deref().map(sb)
}

fn topic(s: &str) -> TopicName {
    TopicName(sb(s))
}

/// `kafka-protocol`'s uuid type, built without naming its crate.
fn uuid<T: TryFrom<Vec<u8>>>(b: [u8; 16]) -> T
where
    T::Error: std::fmt::Debug,
{
    T::try_from(b.to_vec()).unwrap()
}

fn versions<M: Message>() -> std::ops::RangeInclusive<i16> {
    M::VERSIONS.min..=M::VERSIONS.max
}

/// Requests use header v2 exactly in their flexible versions.
fn flexible<M: HeaderVersion>(version: i16) -> bool {
    M::header_version(version) >= 2
}

fn tags_if<M: HeaderVersion>(version: i16, tags: &BTreeMap<i32, Bytes>) -> BTreeMap<i32, Bytes> {
    if flexible::<M>(version) {
        tags.clone()
    } else {
        BTreeMap::new()
    }
}

fn name() -> impl Strategy<Value = String> {
    "\\PC{0,10}"
}

fn id() -> impl Strategy<Value = [u8; 16]> {
    prop_oneof![1 => Just([0u8; 16]), 4 => any::<[u8; 16]>()]
}

fn blob() -> impl Strategy<Value = Bytes> {
    vec(any::<u8>(), 0..12).prop_map(Bytes::from)
}

/// Unknown tagged fields (tags clear of every known one).
fn unknown_tags() -> impl Strategy<Value = BTreeMap<i32, Bytes>> {
    btree_map(10i32..300, blob(), 0..3)
}

/// Cut points for the truncation check: all of them for small bodies, a spread for large.
fn cuts(len: usize) -> Vec<usize> {
    if len <= 96 {
        (0..len).collect()
    } else {
        let mut c: Vec<usize> = (0..32).map(|i| i * len / 32).collect();
        c.push(len - 1);
        c
    }
}

/// Encodes `msg` at `version`, decodes it, compares; then checks trailing and truncated bodies.
fn check<M: Encodable>(
    api_key: ApiKey,
    version: i16,
    msg: &M,
    expected: Vec<TapEvent>,
) -> Result<(), TestCaseError> {
    let key = api_key as i16;
    prop_assert!(
        wants_request_body(key, version),
        "{api_key:?} v{version} not wanted"
    );
    let mut buf = BytesMut::new();
    msg.encode(&mut buf, version)
        .map_err(|e| TestCaseError::fail(format!("{api_key:?} v{version} encode: {e}")))?;
    let body = buf.freeze();

    let mut out = Vec::new();
    let decoded = decode_request(key, version, body.clone(), &mut out);
    prop_assert_eq!(
        decoded,
        Ok(()),
        "{:?} v{} {:02x?}",
        api_key,
        version,
        &body[..]
    );
    prop_assert_eq!(out, expected, "{:?} v{}", api_key, version);

    let mut longer = BytesMut::from(&body[..]);
    longer.extend_from_slice(&[0]);
    let mut out = Vec::new();
    let decoded = decode_request(key, version, longer.freeze(), &mut out);
    prop_assert!(
        matches!(decoded, Err(TapError::Malformed { .. })),
        "{api_key:?} v{version} trailing byte: {decoded:?}"
    );
    prop_assert!(out.is_empty());

    for cut in cuts(body.len()) {
        let mut out = Vec::new();
        let decoded = decode_request(key, version, body.slice(..cut), &mut out);
        prop_assert!(
            matches!(decoded, Err(TapError::Malformed { .. })),
            "{api_key:?} v{version} cut at {cut}/{}: {decoded:?}",
            body.len()
        );
        prop_assert!(out.is_empty());
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Version tables.

/// Every request key the decoder handles, with `kafka-protocol`'s version range.
fn handled() -> Vec<(ApiKey, i16, i16)> {
    fn r<M: Message>(key: ApiKey) -> (ApiKey, i16, i16) {
        (key, M::VERSIONS.min, M::VERSIONS.max)
    }
    vec![
        (ApiKey::ApiVersions, 3, ApiVersionsRequest::VERSIONS.max),
        r::<MetadataRequest>(ApiKey::Metadata),
        r::<FetchRequest>(ApiKey::Fetch),
        r::<FindCoordinatorRequest>(ApiKey::FindCoordinator),
        r::<JoinGroupRequest>(ApiKey::JoinGroup),
        r::<SyncGroupRequest>(ApiKey::SyncGroup),
        r::<HeartbeatRequest>(ApiKey::Heartbeat),
        r::<LeaveGroupRequest>(ApiKey::LeaveGroup),
        r::<OffsetCommitRequest>(ApiKey::OffsetCommit),
        r::<OffsetFetchRequest>(ApiKey::OffsetFetch),
        r::<TxnOffsetCommitRequest>(ApiKey::TxnOffsetCommit),
        r::<ConsumerGroupHeartbeatRequest>(ApiKey::ConsumerGroupHeartbeat),
        r::<SaslHandshakeRequest>(ApiKey::SaslHandshake),
        r::<SaslAuthenticateRequest>(ApiKey::SaslAuthenticate),
    ]
}

#[test]
fn wants_exactly_the_supported_versions() {
    let table = handled();
    for key in -2i16..80 {
        for version in -2i16..40 {
            let expected = table
                .iter()
                .any(|(k, min, max)| *k as i16 == key && (*min..=*max).contains(&version));
            assert_eq!(
                wants_request_body(key, version),
                expected,
                "key {key} v{version}"
            );
            let mut out = Vec::new();
            let decoded = decode_request(key, version, Bytes::new(), &mut out);
            let unsupported = matches!(decoded, Err(TapError::UnsupportedVersion { .. }));
            assert_eq!(unsupported, !expected, "key {key} v{version}: {decoded:?}");
        }
    }
    // What the decoder does not take: Produce (walked), ApiVersions without client software,
    // OffsetCommit v10 (kafka-protocol 0.18 decodes requests up to v9).
    assert!(!wants_request_body(ApiKey::Produce as i16, 9));
    assert!(!wants_request_body(ApiKey::ApiVersions as i16, 2));
    assert!(!wants_request_body(ApiKey::OffsetCommit as i16, 10));
}

#[test]
fn a_body_over_the_limit_is_too_large() {
    let body = Bytes::from(vec![0u8; MAX_DECODE_BODY + 1]);
    let decoded = decode_request(ApiKey::Metadata as i16, 12, body, &mut Vec::new());
    assert!(
        matches!(decoded, Err(TapError::TooLarge { .. })),
        "{decoded:?}"
    );
}

#[test]
fn absurd_array_lengths_are_refused_before_allocating() {
    // Metadata v0: topics = int32 2^31 - 1, then nothing.
    let mut out = Vec::new();
    let body = Bytes::from_static(&[0x7f, 0xff, 0xff, 0xff]);
    let decoded = decode_request(ApiKey::Metadata as i16, 0, body, &mut out);
    assert!(
        matches!(decoded, Err(TapError::Malformed { .. })),
        "{decoded:?}"
    );
    // Metadata v12 (compact): topics = varint 2^32 - 1.
    let body = Bytes::from_static(&[0xff, 0xff, 0xff, 0xff, 0x0f, 0, 0, 0]);
    let decoded = decode_request(ApiKey::Metadata as i16, 12, body, &mut out);
    assert!(
        matches!(decoded, Err(TapError::Malformed { .. })),
        "{decoded:?}"
    );
    // Fetch v4: a topic whose partition array claims 2^31 - 1 entries.
    let mut body = vec![
        0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 1, 0,
    ];
    body.extend_from_slice(&[0, 0, 0, 1, 0, 1, b't', 0x7f, 0xff, 0xff, 0xff]);
    let decoded = decode_request(ApiKey::Fetch as i16, 4, Bytes::from(body), &mut out);
    assert!(
        matches!(decoded, Err(TapError::Malformed { .. })),
        "{decoded:?}"
    );
    assert!(out.is_empty());
}

// ---------------------------------------------------------------------------------------------
// ApiVersions, Metadata, FindCoordinator.

proptest! {
    #[test]
    fn api_versions(name in name(), version_str in name(), tags in unknown_tags()) {
        for v in 3..=ApiVersionsRequest::VERSIONS.max {
            let mut r = ApiVersionsRequest::default();
            r.client_software_name = sb(&name);
            r.client_software_version = sb(&version_str);
            r.unknown_tagged_fields = tags.clone();
            let expected = TapEvent::ClientSoftware(ClientSoftware {
                name: name.clone(),
                version: version_str.clone(),
            });
            check(ApiKey::ApiVersions, v, &r, vec![expected])?;
        }
    }

    #[test]
    fn metadata_request(
        topics in option::of(vec((option::of(name()), id()), 0..4)),
        flags in any::<[bool; 3]>(),
        tags in unknown_tags(),
    ) {
        for v in versions::<MetadataRequest>() {
            let sent = if v == 0 { Some(topics.clone().unwrap_or_default()) } else { topics.clone() };
            let mut r = MetadataRequest::default();
            r.topics = sent.as_ref().map(|ts| {
                ts.iter()
                    .map(|(n, i)| {
                        let mut t = MetadataRequestTopic::default();
                        t.name = if v >= 10 { n.as_deref().map(topic) } else { Some(topic(n.as_deref().unwrap_or(""))) };
                        if v >= 10 {
                            t.topic_id = uuid(*i);
                        }
                        t
                    })
                    .collect()
            });
            if v >= 4 {
                r.allow_auto_topic_creation = flags[0];
            }
            if (8..=10).contains(&v) {
                r.include_cluster_authorized_operations = flags[1];
            }
            if v >= 8 {
                r.include_topic_authorized_operations = flags[2];
            }
            r.unknown_tagged_fields = tags_if::<MetadataRequest>(v, &tags);
            let expected_topics = match &sent {
                None => None,
                Some(ts) if ts.is_empty() && v == 0 => None,
                Some(ts) => Some(
                    ts.iter()
                        .filter_map(|(n, _)| if v >= 10 { n.clone() } else { Some(n.clone().unwrap_or_default()) })
                        .collect(),
                ),
            };
            check(ApiKey::Metadata, v, &r, vec![TapEvent::MetadataRequest { topics: expected_topics }])?;
        }
    }

    #[test]
    fn find_coordinator(
        key in name(),
        key_type in 0i8..3,
        keys in vec(name(), 0..4),
        tags in unknown_tags(),
    ) {
        for v in versions::<FindCoordinatorRequest>() {
            let mut r = FindCoordinatorRequest::default();
            if v <= 3 {
                r.key = sb(&key);
            }
            if v >= 1 {
                r.key_type = key_type;
            }
            if v >= 4 {
                r.coordinator_keys = keys.iter().map(|k| sb(k)).collect();
            }
            r.unknown_tagged_fields = tags_if::<FindCoordinatorRequest>(v, &tags);
            let expected = TapEvent::FindCoordinator {
                key_type: if v >= 1 { key_type } else { 0 },
                keys: if v < 4 { vec![key.clone()] } else { keys.clone() },
            };
            check(ApiKey::FindCoordinator, v, &r, vec![expected])?;
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Fetch.

#[derive(Debug, Clone)]
struct FetchPartitionModel {
    partition: i32,
    current_leader_epoch: i32,
    fetch_offset: i64,
    last_fetched_epoch: i32,
    log_start_offset: i64,
    partition_max_bytes: i32,
    replica_directory_id: [u8; 16],
    high_watermark: i64,
}

fn fetch_partition() -> impl Strategy<Value = FetchPartitionModel> {
    (
        any::<i32>(),
        any::<i32>(),
        any::<i64>(),
        any::<i32>(),
        any::<i64>(),
        any::<i32>(),
        id(),
        any::<i64>(),
    )
        .prop_map(|(p, cle, fo, lfe, lso, pmb, dir, hw)| FetchPartitionModel {
            partition: p,
            current_leader_epoch: cle,
            fetch_offset: fo,
            last_fetched_epoch: lfe,
            log_start_offset: lso,
            partition_max_bytes: pmb,
            replica_directory_id: dir,
            high_watermark: hw,
        })
}

#[derive(Debug, Clone)]
struct FetchModel {
    replica_id: i32,
    replica_epoch: i64,
    max_wait_ms: i32,
    min_bytes: i32,
    max_bytes: i32,
    isolation_level: i8,
    session_id: i32,
    session_epoch: i32,
    topics: Vec<(String, [u8; 16], Vec<FetchPartitionModel>)>,
    forgotten: Vec<(String, [u8; 16], Vec<i32>)>,
    rack_id: String,
    cluster_id: Option<String>,
    tags: BTreeMap<i32, Bytes>,
}

fn fetch_model() -> impl Strategy<Value = FetchModel> {
    let replica = prop_oneof![Just(-1), Just(-2), 0i32..8, any::<i32>()];
    (
        (
            replica,
            any::<i64>(),
            any::<[i32; 3]>(),
            0i8..2,
            any::<[i32; 2]>(),
        ),
        vec((name(), id(), vec(fetch_partition(), 0..4)), 0..4),
        vec((name(), id(), vec(any::<i32>(), 0..4)), 0..3),
        name(),
        option::of(name()),
        unknown_tags(),
    )
        .prop_map(
            |(
                (replica_id, replica_epoch, limits, isolation_level, session),
                topics,
                forgotten,
                rack_id,
                cluster_id,
                tags,
            )| {
                FetchModel {
                    replica_id,
                    replica_epoch,
                    max_wait_ms: limits[0],
                    min_bytes: limits[1],
                    max_bytes: limits[2],
                    isolation_level,
                    session_id: session[0],
                    session_epoch: session[1],
                    topics,
                    forgotten,
                    rack_id,
                    cluster_id,
                    tags,
                }
            },
        )
}

fn fetch_request(m: &FetchModel, v: i16) -> FetchRequest {
    let mut r = FetchRequest::default();
    if v <= 14 {
        r.replica_id = BrokerId(m.replica_id);
    } else {
        r.replica_state.replica_id = BrokerId(m.replica_id);
        r.replica_state.replica_epoch = m.replica_epoch;
    }
    r.max_wait_ms = m.max_wait_ms;
    r.min_bytes = m.min_bytes;
    r.max_bytes = m.max_bytes;
    r.isolation_level = m.isolation_level;
    if v >= 7 {
        r.session_id = m.session_id;
        r.session_epoch = m.session_epoch;
    }
    r.topics = m
        .topics
        .iter()
        .map(|(n, i, ps)| {
            let mut t = FetchTopic::default();
            if v <= 12 {
                t.topic = topic(n);
            } else {
                t.topic_id = uuid(*i);
            }
            t.partitions = ps
                .iter()
                .map(|p| {
                    let mut fp = FetchPartition::default();
                    fp.partition = p.partition;
                    if v >= 9 {
                        fp.current_leader_epoch = p.current_leader_epoch;
                    }
                    fp.fetch_offset = p.fetch_offset;
                    if v >= 12 {
                        fp.last_fetched_epoch = p.last_fetched_epoch;
                    }
                    if v >= 5 {
                        fp.log_start_offset = p.log_start_offset;
                    }
                    fp.partition_max_bytes = p.partition_max_bytes;
                    if v >= 17 {
                        fp.replica_directory_id = uuid(p.replica_directory_id);
                    }
                    if v >= 18 {
                        fp.high_watermark = p.high_watermark;
                    }
                    fp
                })
                .collect();
            t
        })
        .collect();
    if v >= 7 {
        r.forgotten_topics_data = m
            .forgotten
            .iter()
            .map(|(n, i, ps)| {
                let mut t = ForgottenTopic::default();
                if v <= 12 {
                    t.topic = topic(n);
                } else {
                    t.topic_id = uuid(*i);
                }
                t.partitions = ps.clone();
                t
            })
            .collect();
    }
    if v >= 11 {
        r.rack_id = sb(&m.rack_id);
    }
    if v >= 12 {
        r.cluster_id = osb(&m.cluster_id);
    }
    r.unknown_tagged_fields = tags_if::<FetchRequest>(v, &m.tags);
    r
}

fn fetch_expected(m: &FetchModel, v: i16) -> FetchRequestInfo {
    let topic_ref = |n: &str, i: &[u8; 16]| {
        if v >= 13 {
            TopicRef::by_id(TopicId(*i))
        } else {
            TopicRef::named(n)
        }
    };
    FetchRequestInfo {
        replica: m.replica_id >= 0,
        max_wait_ms: m.max_wait_ms,
        min_bytes: m.min_bytes,
        max_bytes: m.max_bytes,
        isolation_level: m.isolation_level,
        session_id: if v >= 7 { m.session_id } else { 0 },
        session_epoch: if v >= 7 { m.session_epoch } else { -1 },
        partitions: m
            .topics
            .iter()
            .flat_map(|(n, i, ps)| {
                ps.iter().map(move |p| FetchRequestPartition {
                    topic: topic_ref(n, i),
                    partition: p.partition,
                    fetch_offset: p.fetch_offset,
                    partition_max_bytes: p.partition_max_bytes,
                })
            })
            .collect(),
        forgotten: if v >= 7 {
            m.forgotten
                .iter()
                .flat_map(|(n, i, ps)| ps.iter().map(move |p| (topic_ref(n, i), *p)))
                .collect()
        } else {
            Vec::new()
        },
        rack_id: if v >= 11 {
            m.rack_id.clone()
        } else {
            String::new()
        },
    }
}

proptest! {
    #[test]
    fn fetch(m in fetch_model()) {
        for v in versions::<FetchRequest>() {
            let expected = TapEvent::FetchRequest(fetch_expected(&m, v));
            check(ApiKey::Fetch, v, &fetch_request(&m, v), vec![expected])?;
        }
    }
}

#[test]
fn fetch_replica_flag_follows_the_version() {
    // v14 carries replica_id in the body; v15 only in the tagged replica_state.
    for (v, replica_id, replica) in [
        (14, 3, true),
        (14, -1, false),
        (15, 2, true),
        (15, -1, false),
    ] {
        let mut r = FetchRequest::default();
        if v <= 14 {
            r.replica_id = BrokerId(replica_id);
        } else {
            r.replica_state.replica_id = BrokerId(replica_id);
        }
        let mut buf = BytesMut::new();
        r.encode(&mut buf, v).unwrap();
        let mut out = Vec::new();
        decode_request(ApiKey::Fetch as i16, v, buf.freeze(), &mut out).unwrap();
        let [TapEvent::FetchRequest(info)] = out.as_slice() else {
            panic!("{out:?}");
        };
        assert_eq!(info.replica, replica, "v{v} replica_id {replica_id}");
    }
}

// ---------------------------------------------------------------------------------------------
// Classic group protocol.

proptest! {
    #[test]
    fn join_group(
        (group_id, member_id, protocol_type) in (name(), name(), name()),
        (session_timeout, rebalance_timeout) in (any::<i32>(), any::<i32>()),
        instance in option::of(name()),
        protocols in vec((name(), blob()), 0..4),
        reason in option::of(name()),
        tags in unknown_tags(),
    ) {
        for v in versions::<JoinGroupRequest>() {
            let mut r = JoinGroupRequest::default();
            r.group_id = GroupId(sb(&group_id));
            r.session_timeout_ms = session_timeout;
            if v >= 1 {
                r.rebalance_timeout_ms = rebalance_timeout;
            }
            r.member_id = sb(&member_id);
            if v >= 5 {
                r.group_instance_id = osb(&instance);
            }
            r.protocol_type = sb(&protocol_type);
            r.protocols = protocols
                .iter()
                .map(|(n, meta)| {
                    let mut p = JoinGroupRequestProtocol::default();
                    p.name = sb(n);
                    p.metadata = meta.clone();
                    p
                })
                .collect();
            if v >= 8 {
                r.reason = osb(&reason);
            }
            r.unknown_tagged_fields = tags_if::<JoinGroupRequest>(v, &tags);
            let expected = TapEvent::JoinGroup {
                group_id: group_id.clone(),
                member_id: member_id.clone(),
                group_instance_id: if v >= 5 { instance.clone() } else { None },
                protocol_type: protocol_type.clone(),
                protocols: protocols.iter().map(|(n, _)| n.clone()).collect(),
                session_timeout_ms: session_timeout,
            };
            check(ApiKey::JoinGroup, v, &r, vec![expected])?;
        }
    }

    #[test]
    fn sync_group(
        (group_id, member_id) in (name(), name()),
        generation in any::<i32>(),
        (instance, protocol_type, protocol_name) in (option::of(name()), option::of(name()), option::of(name())),
        assignments in vec((name(), blob()), 0..4),
        tags in unknown_tags(),
    ) {
        for v in versions::<SyncGroupRequest>() {
            let mut r = SyncGroupRequest::default();
            r.group_id = GroupId(sb(&group_id));
            r.generation_id = generation;
            r.member_id = sb(&member_id);
            if v >= 3 {
                r.group_instance_id = osb(&instance);
            }
            if v >= 5 {
                r.protocol_type = osb(&protocol_type);
                r.protocol_name = osb(&protocol_name);
            }
            r.assignments = assignments
                .iter()
                .map(|(m, a)| {
                    let mut s = SyncGroupRequestAssignment::default();
                    s.member_id = sb(m);
                    s.assignment = a.clone();
                    s
                })
                .collect();
            r.unknown_tagged_fields = tags_if::<SyncGroupRequest>(v, &tags);
            let expected = TapEvent::SyncGroup {
                group_id: group_id.clone(),
                generation_id: generation,
                member_id: member_id.clone(),
            };
            check(ApiKey::SyncGroup, v, &r, vec![expected])?;
        }
    }

    #[test]
    fn heartbeat(
        (group_id, member_id) in (name(), name()),
        generation in any::<i32>(),
        instance in option::of(name()),
        tags in unknown_tags(),
    ) {
        for v in versions::<HeartbeatRequest>() {
            let mut r = HeartbeatRequest::default();
            r.group_id = GroupId(sb(&group_id));
            r.generation_id = generation;
            r.member_id = sb(&member_id);
            if v >= 3 {
                r.group_instance_id = osb(&instance);
            }
            r.unknown_tagged_fields = tags_if::<HeartbeatRequest>(v, &tags);
            let expected = TapEvent::Heartbeat {
                group_id: group_id.clone(),
                generation_id: generation,
                member_id: member_id.clone(),
            };
            check(ApiKey::Heartbeat, v, &r, vec![expected])?;
        }
    }

    #[test]
    fn leave_group(
        (group_id, member_id) in (name(), name()),
        members in vec((name(), option::of(name()), option::of(name())), 0..4),
        tags in unknown_tags(),
    ) {
        for v in versions::<LeaveGroupRequest>() {
            let mut r = LeaveGroupRequest::default();
            r.group_id = GroupId(sb(&group_id));
            if v <= 2 {
                r.member_id = sb(&member_id);
            } else {
                r.members = members
                    .iter()
                    .map(|(m, instance, reason)| {
                        let mut mi = MemberIdentity::default();
                        mi.member_id = sb(m);
                        mi.group_instance_id = osb(instance);
                        if v >= 5 {
                            mi.reason = osb(reason);
                        }
                        mi
                    })
                    .collect();
            }
            r.unknown_tagged_fields = tags_if::<LeaveGroupRequest>(v, &tags);
            let expected = TapEvent::LeaveGroup {
                group_id: group_id.clone(),
                member_ids: if v <= 2 {
                    vec![member_id.clone()]
                } else {
                    members.iter().map(|(m, _, _)| m.clone()).collect()
                },
            };
            check(ApiKey::LeaveGroup, v, &r, vec![expected])?;
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Offsets.

/// `(partition, offset, leader epoch, metadata)` per partition, per named topic.
type OffsetsModel = Vec<(String, Vec<(i32, i64, i32, Option<String>)>)>;

fn offsets_model() -> impl Strategy<Value = OffsetsModel> {
    vec(
        (
            name(),
            vec(
                (any::<i32>(), any::<i64>(), any::<i32>(), option::of(name())),
                0..4,
            ),
        ),
        0..4,
    )
}

fn committed(offsets: &OffsetsModel) -> Vec<CommittedOffset> {
    offsets
        .iter()
        .flat_map(|(t, ps)| {
            ps.iter().map(move |(p, o, _, _)| CommittedOffset {
                topic: TopicRef::named(t),
                partition: *p,
                offset: *o,
            })
        })
        .collect()
}

proptest! {
    #[test]
    fn offset_commit(
        (group_id, member_id) in (name(), name()),
        generation in any::<i32>(),
        instance in option::of(name()),
        retention in any::<i64>(),
        offsets in offsets_model(),
        tags in unknown_tags(),
    ) {
        for v in versions::<OffsetCommitRequest>() {
            let mut r = OffsetCommitRequest::default();
            r.group_id = GroupId(sb(&group_id));
            r.generation_id_or_member_epoch = generation;
            r.member_id = sb(&member_id);
            if v >= 7 {
                r.group_instance_id = osb(&instance);
            }
            if v <= 4 {
                r.retention_time_ms = retention;
            }
            r.topics = offsets
                .iter()
                .map(|(t, ps)| {
                    let mut ot = OffsetCommitRequestTopic::default();
                    ot.name = topic(t);
                    ot.partitions = ps
                        .iter()
                        .map(|(p, o, e, meta)| {
                            let mut op = OffsetCommitRequestPartition::default();
                            op.partition_index = *p;
                            op.committed_offset = *o;
                            if v >= 6 {
                                op.committed_leader_epoch = *e;
                            }
                            op.committed_metadata = osb(meta);
                            op
                        })
                        .collect();
                    ot
                })
                .collect();
            r.unknown_tagged_fields = tags_if::<OffsetCommitRequest>(v, &tags);
            let expected = TapEvent::OffsetCommit {
                group_id: group_id.clone(),
                generation_id: generation,
                member_id: member_id.clone(),
                offsets: committed(&offsets),
            };
            check(ApiKey::OffsetCommit, v, &r, vec![expected])?;
        }
    }

    #[test]
    fn offset_fetch(
        group_id in name(),
        topics in option::of(vec((name(), vec(any::<i32>(), 0..4)), 0..3)),
        require_stable in any::<bool>(),
        groups in vec(
            (name(), option::of(name()), any::<i32>(), option::of(vec((name(), vec(any::<i32>(), 0..4)), 0..3))),
            0..3,
        ),
        tags in unknown_tags(),
    ) {
        for v in versions::<OffsetFetchRequest>() {
            let mut r = OffsetFetchRequest::default();
            if v <= 7 {
                r.group_id = GroupId(sb(&group_id));
                let sent = if v < 2 { Some(topics.clone().unwrap_or_default()) } else { topics.clone() };
                r.topics = sent.map(|ts| {
                    ts.iter()
                        .map(|(n, ps)| {
                            let mut t = OffsetFetchRequestTopic::default();
                            t.name = topic(n);
                            t.partition_indexes = ps.clone();
                            t
                        })
                        .collect()
                });
            } else {
                r.groups = groups
                    .iter()
                    .map(|(g, member, epoch, ts)| {
                        let mut og = OffsetFetchRequestGroup::default();
                        og.group_id = GroupId(sb(g));
                        if v >= 9 {
                            og.member_id = osb(member);
                            og.member_epoch = *epoch;
                        }
                        og.topics = ts.as_ref().map(|ts| {
                            ts.iter()
                                .map(|(n, ps)| {
                                    let mut t = OffsetFetchRequestTopics::default();
                                    t.name = topic(n);
                                    t.partition_indexes = ps.clone();
                                    t
                                })
                                .collect()
                        });
                        og
                    })
                    .collect();
            }
            if v >= 7 {
                r.require_stable = require_stable;
            }
            r.unknown_tagged_fields = tags_if::<OffsetFetchRequest>(v, &tags);
            let expected = TapEvent::OffsetFetch {
                group_ids: if v <= 7 {
                    vec![group_id.clone()]
                } else {
                    groups.iter().map(|(g, _, _, _)| g.clone()).collect()
                },
            };
            check(ApiKey::OffsetFetch, v, &r, vec![expected])?;
        }
    }

    #[test]
    fn txn_offset_commit(
        (transactional_id, group_id, member_id) in (name(), name(), name()),
        (producer_id, producer_epoch, generation) in (any::<i64>(), any::<i16>(), any::<i32>()),
        instance in option::of(name()),
        offsets in offsets_model(),
        tags in unknown_tags(),
    ) {
        for v in versions::<TxnOffsetCommitRequest>() {
            let mut r = TxnOffsetCommitRequest::default();
            r.transactional_id = TransactionalId(sb(&transactional_id));
            r.group_id = GroupId(sb(&group_id));
            r.producer_id = ProducerId(producer_id);
            r.producer_epoch = producer_epoch;
            if v >= 3 {
                r.generation_id = generation;
                r.member_id = sb(&member_id);
                r.group_instance_id = osb(&instance);
            }
            r.topics = offsets
                .iter()
                .map(|(t, ps)| {
                    let mut ot = TxnOffsetCommitRequestTopic::default();
                    ot.name = topic(t);
                    ot.partitions = ps
                        .iter()
                        .map(|(p, o, e, meta)| {
                            let mut op = TxnOffsetCommitRequestPartition::default();
                            op.partition_index = *p;
                            op.committed_offset = *o;
                            if v >= 2 {
                                op.committed_leader_epoch = *e;
                            }
                            op.committed_metadata = osb(meta);
                            op
                        })
                        .collect();
                    ot
                })
                .collect();
            r.unknown_tagged_fields = tags_if::<TxnOffsetCommitRequest>(v, &tags);
            let expected = TapEvent::TxnOffsetCommit {
                transactional_id: transactional_id.clone(),
                group_id: group_id.clone(),
                generation_id: if v >= 3 { generation } else { -1 },
                member_id: if v >= 3 { member_id.clone() } else { String::new() },
                offsets: committed(&offsets),
            };
            check(ApiKey::TxnOffsetCommit, v, &r, vec![expected])?;
        }
    }
}

// ---------------------------------------------------------------------------------------------
// KIP-848.

proptest! {
    #[test]
    fn consumer_group_heartbeat(
        (group_id, member_id) in (name(), name()),
        (member_epoch, rebalance_timeout) in (any::<i32>(), any::<i32>()),
        (instance, rack, regex, assignor) in (option::of(name()), option::of(name()), option::of(name()), option::of(name())),
        subscribed in option::of(vec(name(), 0..4)),
        owned in option::of(vec((id(), vec(any::<i32>(), 0..4)), 0..3)),
        tags in unknown_tags(),
    ) {
        for v in versions::<ConsumerGroupHeartbeatRequest>() {
            let mut r = ConsumerGroupHeartbeatRequest::default();
            r.group_id = GroupId(sb(&group_id));
            r.member_id = sb(&member_id);
            r.member_epoch = member_epoch;
            r.instance_id = osb(&instance);
            r.rack_id = osb(&rack);
            r.rebalance_timeout_ms = rebalance_timeout;
            r.subscribed_topic_names = subscribed.as_ref().map(|s| s.iter().map(|n| topic(n)).collect());
            if v >= 1 {
                r.subscribed_topic_regex = osb(&regex);
            }
            r.server_assignor = osb(&assignor);
            r.topic_partitions = owned.as_ref().map(|o| {
                o.iter()
                    .map(|(i, ps)| {
                        let mut tp = TopicPartitions::default();
                        tp.topic_id = uuid(*i);
                        tp.partitions = ps.clone();
                        tp
                    })
                    .collect()
            });
            r.unknown_tagged_fields = tags.clone();
            let expected = TapEvent::ConsumerGroupHeartbeat {
                group_id: group_id.clone(),
                member_id: member_id.clone(),
                member_epoch,
                subscribed_topics: subscribed.clone(),
            };
            check(ApiKey::ConsumerGroupHeartbeat, v, &r, vec![expected])?;
        }
    }
}

// ---------------------------------------------------------------------------------------------
// SASL.

fn gs2_oauth() -> impl Strategy<Value = &'static str> {
    prop_oneof![Just("n,,"), Just("y,,"), Just("n,a=svc,")]
}

/// base64url without padding (the `base64` crate's, independent of the decoder under test).
fn b64url(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// An auth payload and the principal it must yield.
fn auth_payload() -> impl Strategy<Value = (Vec<u8>, Option<String>)> {
    let plain = (
        "[a-zA-Z0-9@._-]{0,8}",
        "[a-zA-Z0-9@._-]{1,12}",
        "[ -~]{1,16}",
    )
        .prop_map(|(authzid, authcid, password)| {
            (
                format!("{authzid}\0{authcid}\0{password}").into_bytes(),
                Some(authcid),
            )
        });
    let gs2 = prop_oneof![
        Just("n,,"),
        Just("y,,"),
        Just("n,a=admin,"),
        Just("p=tls-unique,,")
    ];
    let scram = (gs2, "[a-z,=é]{1,10}", "[!-+--~]{1,24}", any::<bool>()).prop_map(
        |(gs2, user, nonce, ext)| {
            let escaped = user.replace('=', "=3D").replace(',', "=2C");
            let ext = if ext { ",tokenauth=true" } else { "" };
            (
                format!("{gs2}n={escaped},r={nonce}{ext}").into_bytes(),
                Some(user),
            )
        },
    );
    let scram_final = ("[!-+--~]{1,24}", "[A-Za-z0-9+/]{4,40}")
        .prop_map(|(nonce, proof)| (format!("c=biws,r={nonce},p={proof}").into_bytes(), None));
    // An opaque bearer token (not a JWT: no principal), and a JWT whose payload has a `sub`.
    let opaque = "[A-Za-z0-9_-]{1,40}".prop_map(|token| {
        (
            format!("n,,\x01auth=Bearer {token}\x01\x01").into_bytes(),
            None,
        )
    });
    let jwt = (
        gs2_oauth(),
        "[a-zA-Z0-9@._:-]{1,20}",
        "[A-Za-z0-9_-]{0,43}",
        any::<bool>(),
    )
        .prop_map(|(gs2, sub, sig, more)| {
            let claims = if more {
                format!(r#"{{"iss":"idp","sub":"{sub}","exp":1900000000,"scope":["a"]}}"#)
            } else {
                format!(r#"{{"sub":"{sub}"}}"#)
            };
            let token = format!("eyJhbGciOiJub25lIn0.{}.{sig}", b64url(claims.as_bytes()));
            (
                format!("{gs2}\x01host=kafka\x01auth=Bearer {token}\x01\x01").into_bytes(),
                Some(sub),
            )
        });
    let oauth = prop_oneof![opaque, jwt];
    // A GSSAPI-like token: ASN.1 application tag, then bytes without NUL.
    let gssapi = vec(1u8..=255, 0..40).prop_map(|rest| {
        let mut token = vec![0x60];
        token.extend(rest);
        (token, None)
    });
    prop_oneof![plain, scram, scram_final, oauth, gssapi]
}

proptest! {
    #[test]
    fn sasl_handshake(mechanism in name()) {
        for v in versions::<SaslHandshakeRequest>() {
            let mut r = SaslHandshakeRequest::default();
            r.mechanism = sb(&mechanism);
            let expected = TapEvent::Sasl(SaslInfo::Mechanism(mechanism.clone()));
            check(ApiKey::SaslHandshake, v, &r, vec![expected])?;
        }
    }

    #[test]
    fn sasl_authenticate((auth, principal) in auth_payload(), tags in unknown_tags()) {
        for v in versions::<SaslAuthenticateRequest>() {
            let mut r = SaslAuthenticateRequest::default();
            r.auth_bytes = Bytes::from(auth.clone());
            r.unknown_tagged_fields = tags_if::<SaslAuthenticateRequest>(v, &tags);
            let expected = principal.clone().map(|p| TapEvent::Sasl(SaslInfo::Principal(p)));
            check(ApiKey::SaslAuthenticate, v, &r, expected.into_iter().collect())?;
        }
    }
}

proptest! {
    /// Any JWT payload bytes (random, or JSON with a `sub` among other claims): never a panic,
    /// and a principal only when the payload is JSON whose `sub` is a name.
    #[test]
    fn oauthbearer_any_payload(
        payload in vec(any::<u8>(), 0..200),
        sub in "[a-z0-9-]{1,12}",
        token in "[ -~]{0,120}",
    ) {
        let message = |token: &str| format!("n,,\x01auth=Bearer {token}\x01\x01");
        for events in authenticate(message(&token).as_bytes()) {
            for e in &events {
                let is_principal = matches!(e, TapEvent::Sasl(SaslInfo::Principal(_)));
                prop_assert!(is_principal, "{:?}", e);
            }
        }
        let random = format!("eyJhbGciOiJub25lIn0.{}.s", b64url(&payload));
        let claims: Option<serde_json::Value> = serde_json::from_slice(&payload).ok();
        let sub_of_random = claims
            .as_ref()
            .and_then(|c| c.get("sub")?.as_str().map(str::to_owned))
            .filter(|s| !s.is_empty() && s.len() <= 256 && !s.chars().any(char::is_control));
        for events in authenticate(message(&random).as_bytes()) {
            let expected: Vec<TapEvent> = sub_of_random
                .iter()
                .map(|s| TapEvent::Sasl(SaslInfo::Principal(s.clone())))
                .collect();
            prop_assert_eq!(events, expected);
        }
        let json = format!(r#"{{"x":[1,{{"y":null}}],"sub":"{sub}","n":1.5}}"#);
        let good = format!("eyJhbGciOiJub25lIn0.{}.s", b64url(json.as_bytes()));
        for events in authenticate(message(&good).as_bytes()) {
            prop_assert_eq!(events, vec![TapEvent::Sasl(SaslInfo::Principal(sub.clone()))]);
        }
    }
}

/// Decodes a SaslAuthenticate body at every version and returns the events.
fn authenticate(auth: &[u8]) -> Vec<Vec<TapEvent>> {
    versions::<SaslAuthenticateRequest>()
        .map(|v| {
            let mut r = SaslAuthenticateRequest::default();
            r.auth_bytes = Bytes::copy_from_slice(auth);
            let mut buf = BytesMut::new();
            r.encode(&mut buf, v).unwrap();
            let mut out = Vec::new();
            decode_request(ApiKey::SaslAuthenticate as i16, v, buf.freeze(), &mut out).unwrap();
            out
        })
        .collect()
}

#[test]
fn plain_yields_the_authcid_and_never_the_password() {
    for events in authenticate(b"ops\0svc-orders\0Tr0ub4dor&3-horse") {
        assert_eq!(
            events,
            vec![TapEvent::Sasl(SaslInfo::Principal("svc-orders".into()))]
        );
        let shown = format!("{events:?} {events:#?}");
        assert!(!shown.contains("Tr0ub4dor"), "{shown}");
        assert!(!shown.contains("horse"), "{shown}");
    }
}

#[test]
fn scram_client_first_yields_the_user_and_client_final_nothing() {
    for events in authenticate(b"n,,n=svc=2Corders=3Dx,r=rOprNGfwEbeRWgbNEkqO") {
        assert_eq!(
            events,
            vec![TapEvent::Sasl(SaslInfo::Principal("svc,orders=x".into()))]
        );
        let shown = format!("{events:?}");
        assert!(!shown.contains("rOprNGfwEbeRWgbNEkqO"), "{shown}");
    }
    let last = b"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=";
    for events in authenticate(last) {
        assert!(events.is_empty(), "{events:?}");
    }
}

#[test]
fn oauthbearer_yields_the_sub_claim_and_never_the_token() {
    // Payload {"sub":"alice","jti":"id-7Q2"}; the signature is the secret part of a token.
    let oauth = b"n,,\x01auth=Bearer eyJhbGciOiJub25lIn0.eyJzdWIiOiJhbGljZSIsImp0aSI6ImlkLTdRMiJ9.c2VjcmV0LXNpZw\x01\x01";
    for events in authenticate(oauth) {
        assert_eq!(
            events,
            vec![TapEvent::Sasl(SaslInfo::Principal("alice".into()))]
        );
        let shown = format!("{events:?}");
        for part in ["eyJ", "c2VjcmV0LXNpZw", "id-7Q2"] {
            assert!(!shown.contains(part), "{shown}");
        }
    }
}

#[test]
fn other_mechanisms_yield_nothing() {
    let gssapi = [
        0x60, 0x82, 0x02, 0x6e, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x12,
    ];
    let oauth = b"n,,\x01auth=Bearer opaque-token-not-a-jwt\x01\x01";
    for auth in [&gssapi[..], &oauth[..], b""] {
        for events in authenticate(auth) {
            assert!(events.is_empty(), "{events:?}");
        }
    }
}
