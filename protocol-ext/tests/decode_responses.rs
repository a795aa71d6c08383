//! Response decoding against `kafka-protocol`'s encoder as the oracle: for every api key and
//! every version the decoder supports, random models are turned into `kafka-protocol` structs
//! (only the fields that exist in that version), encoded, decoded by `decode_response`, and the
//! events compared with what the model says they must be. Every encoded body is also checked
//! with one trailing byte (refused) and cut short (refused, nothing pushed).
//!
//! Long because it holds one model-to-struct builder per response the decoder reads, side by
//! side so that a new API version is added in one place.

use std::collections::BTreeMap;

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::consumer_group_heartbeat_response::{Assignment, TopicPartitions};
use kafka_protocol::messages::consumer_protocol_assignment::TopicPartition;
use kafka_protocol::messages::join_group_response::JoinGroupResponseMember;
use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::offset_commit_response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use kafka_protocol::messages::{
    ApiKey, BrokerId, ConsumerGroupHeartbeatResponse, ConsumerProtocolAssignment,
    HeartbeatResponse, JoinGroupResponse, MetadataResponse, OffsetCommitResponse,
    SaslAuthenticateResponse, SyncGroupResponse, TopicName,
};
use kafka_protocol::protocol::{Encodable, HeaderVersion, Message, StrBytes};
use proptest::collection::{btree_map, vec};
use proptest::option;
use proptest::prelude::*;
use sluice_protocol::decode::{decode_response, wants_response_body};
use sluice_protocol::event::{
    MetadataBroker, MetadataTopic, SaslInfo, TapEvent, TopicId, TopicRef, MAX_SASL_ERROR_MESSAGE,
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

/// Responses use header v1 exactly in their flexible versions (ApiVersions aside).
fn tags_if<M: HeaderVersion>(version: i16, tags: &BTreeMap<i32, Bytes>) -> BTreeMap<i32, Bytes> {
    if M::header_version(version) >= 1 {
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

fn error_code() -> impl Strategy<Value = i16> {
    prop_oneof![2 => Just(0i16), 1 => any::<i16>()]
}

fn unknown_tags() -> impl Strategy<Value = BTreeMap<i32, Bytes>> {
    btree_map(10i32..300, blob(), 0..3)
}

fn cuts(len: usize) -> Vec<usize> {
    if len <= 96 {
        (0..len).collect()
    } else {
        let mut c: Vec<usize> = (0..32).map(|i| i * len / 32).collect();
        c.push(len - 1);
        c
    }
}

fn encode<M: Encodable>(msg: &M, version: i16) -> Result<Bytes, TestCaseError> {
    let mut buf = BytesMut::new();
    msg.encode(&mut buf, version)
        .map_err(|e| TestCaseError::fail(format!("v{version} encode: {e}")))?;
    Ok(buf.freeze())
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
        wants_response_body(key, version),
        "{api_key:?} v{version} not wanted"
    );
    let body = encode(msg, version)?;

    let mut out = Vec::new();
    let decoded = decode_response(key, version, body.clone(), &mut out);
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
    let decoded = decode_response(key, version, longer.freeze(), &mut out);
    prop_assert!(
        matches!(decoded, Err(TapError::Malformed { .. })),
        "{api_key:?} v{version} trailing byte: {decoded:?}"
    );
    prop_assert!(out.is_empty());

    for cut in cuts(body.len()) {
        let mut out = Vec::new();
        let decoded = decode_response(key, version, body.slice(..cut), &mut out);
        prop_assert!(
            matches!(decoded, Err(TapError::Malformed { .. })),
            "{api_key:?} v{version} cut at {cut}/{}: {decoded:?}",
            body.len()
        );
        prop_assert!(out.is_empty());
    }
    Ok(())
}

#[test]
fn wants_exactly_the_supported_versions() {
    fn r<M: Message>(key: ApiKey) -> (ApiKey, i16, i16) {
        (key, M::VERSIONS.min, M::VERSIONS.max)
    }
    let table = [
        r::<MetadataResponse>(ApiKey::Metadata),
        r::<JoinGroupResponse>(ApiKey::JoinGroup),
        r::<SyncGroupResponse>(ApiKey::SyncGroup),
        r::<HeartbeatResponse>(ApiKey::Heartbeat),
        r::<OffsetCommitResponse>(ApiKey::OffsetCommit),
        r::<ConsumerGroupHeartbeatResponse>(ApiKey::ConsumerGroupHeartbeat),
        r::<SaslAuthenticateResponse>(ApiKey::SaslAuthenticate),
    ];
    for key in -2i16..80 {
        for version in -2i16..40 {
            let expected = table
                .iter()
                .any(|(k, min, max)| *k as i16 == key && (*min..=*max).contains(&version));
            assert_eq!(
                wants_response_body(key, version),
                expected,
                "key {key} v{version}"
            );
            let decoded = decode_response(key, version, Bytes::new(), &mut Vec::new());
            let unsupported = matches!(decoded, Err(TapError::UnsupportedVersion { .. }));
            assert_eq!(unsupported, !expected, "key {key} v{version}: {decoded:?}");
        }
    }
    // Fetch responses are walked, not decoded; OffsetCommit responses go up to v10.
    assert!(!wants_response_body(ApiKey::Fetch as i16, 12));
    assert!(wants_response_body(ApiKey::OffsetCommit as i16, 10));
}

// ---------------------------------------------------------------------------------------------
// Metadata.

/// `(error, index, leader, epoch, replicas, isr, offline)`.
type PartitionModel = (i16, i32, i32, i32, Vec<i32>, Vec<i32>, Vec<i32>);

#[derive(Debug, Clone)]
struct TopicModel {
    error_code: i16,
    name: Option<String>,
    id: [u8; 16],
    internal: bool,
    partitions: Vec<PartitionModel>,
    authorized_operations: i32,
}

fn topic_model() -> impl Strategy<Value = TopicModel> {
    let partition = (
        error_code(),
        any::<i32>(),
        any::<i32>(),
        any::<i32>(),
        vec(any::<i32>(), 0..3),
        vec(any::<i32>(), 0..3),
        vec(any::<i32>(), 0..2),
    );
    (
        error_code(),
        option::of(name()),
        id(),
        any::<bool>(),
        vec(partition, 0..4),
        any::<i32>(),
    )
        .prop_map(
            |(error_code, name, id, internal, partitions, ops)| TopicModel {
                error_code,
                name,
                id,
                internal,
                partitions,
                authorized_operations: ops,
            },
        )
}

proptest! {
    #[test]
    fn metadata(
        (throttle, controller, cluster_ops, error) in (any::<i32>(), any::<i32>(), any::<i32>(), error_code()),
        brokers in vec((any::<i32>(), name(), any::<i32>(), option::of(name())), 0..4),
        cluster_id in option::of(name()),
        topics in vec(topic_model(), 0..4),
        tags in unknown_tags(),
    ) {
        for v in versions::<MetadataResponse>() {
            let mut r = MetadataResponse::default();
            if v >= 3 {
                r.throttle_time_ms = throttle;
            }
            r.brokers = brokers
                .iter()
                .map(|(node, host, port, rack)| {
                    let mut b = MetadataResponseBroker::default();
                    b.node_id = BrokerId(*node);
                    b.host = sb(host);
                    b.port = *port;
                    if v >= 1 {
                        b.rack = osb(rack);
                    }
                    b
                })
                .collect();
            if v >= 2 {
                r.cluster_id = osb(&cluster_id);
            }
            if v >= 1 {
                r.controller_id = BrokerId(controller);
            }
            let sent_name = |t: &TopicModel| {
                if v >= 12 { t.name.clone() } else { Some(t.name.clone().unwrap_or_default()) }
            };
            r.topics = topics
                .iter()
                .map(|t| {
                    let mut mt = MetadataResponseTopic::default();
                    mt.error_code = t.error_code;
                    mt.name = sent_name(t).as_deref().map(topic);
                    if v >= 10 {
                        mt.topic_id = uuid(t.id);
                    }
                    if v >= 1 {
                        mt.is_internal = t.internal;
                    }
                    mt.partitions = t
                        .partitions
                        .iter()
                        .map(|(err, idx, leader, epoch, replicas, isr, offline)| {
                            let mut p = MetadataResponsePartition::default();
                            p.error_code = *err;
                            p.partition_index = *idx;
                            p.leader_id = BrokerId(*leader);
                            if v >= 7 {
                                p.leader_epoch = *epoch;
                            }
                            p.replica_nodes = replicas.iter().copied().map(BrokerId).collect();
                            p.isr_nodes = isr.iter().copied().map(BrokerId).collect();
                            if v >= 5 {
                                p.offline_replicas = offline.iter().copied().map(BrokerId).collect();
                            }
                            p
                        })
                        .collect();
                    if v >= 8 {
                        mt.topic_authorized_operations = t.authorized_operations;
                    }
                    mt
                })
                .collect();
            if (8..=10).contains(&v) {
                r.cluster_authorized_operations = cluster_ops;
            }
            if v >= 13 {
                r.error_code = error;
            }
            r.unknown_tagged_fields = tags_if::<MetadataResponse>(v, &tags);
            let expected = TapEvent::Metadata {
                brokers: brokers
                    .iter()
                    .map(|(node, host, port, _)| MetadataBroker { node_id: *node, host: host.clone(), port: *port })
                    .collect(),
                topics: topics
                    .iter()
                    .map(|t| MetadataTopic {
                        error_code: t.error_code,
                        name: sent_name(t),
                        id: (v >= 10 && t.id != [0; 16]).then_some(TopicId(t.id)),
                        partitions: t.partitions.iter().map(|p| (p.1, p.2)).collect(),
                    })
                    .collect(),
            };
            check(ApiKey::Metadata, v, &r, vec![expected])?;
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Classic group protocol.

proptest! {
    #[test]
    fn join_group(
        (throttle, error, generation) in (any::<i32>(), error_code(), any::<i32>()),
        (protocol_type, protocol_name) in (option::of(name()), option::of(name())),
        (leader, member_id, skip) in (name(), name(), any::<bool>()),
        members in vec((name(), option::of(name()), blob()), 0..4),
        tags in unknown_tags(),
    ) {
        for v in versions::<JoinGroupResponse>() {
            let sent_name = if v >= 7 { protocol_name.clone() } else { Some(protocol_name.clone().unwrap_or_default()) };
            let mut r = JoinGroupResponse::default();
            if v >= 2 {
                r.throttle_time_ms = throttle;
            }
            r.error_code = error;
            r.generation_id = generation;
            if v >= 7 {
                r.protocol_type = osb(&protocol_type);
            }
            r.protocol_name = osb(&sent_name);
            r.leader = sb(&leader);
            if v >= 9 {
                r.skip_assignment = skip;
            }
            r.member_id = sb(&member_id);
            r.members = members
                .iter()
                .map(|(id, instance, meta)| {
                    let mut m = JoinGroupResponseMember::default();
                    m.member_id = sb(id);
                    if v >= 5 {
                        m.group_instance_id = osb(instance);
                    }
                    m.metadata = meta.clone();
                    m
                })
                .collect();
            r.unknown_tagged_fields = tags_if::<JoinGroupResponse>(v, &tags);
            let expected = TapEvent::JoinGroupResponse {
                error_code: error,
                generation_id: generation,
                protocol_name: sent_name,
                leader: leader.clone(),
                member_id: member_id.clone(),
            };
            check(ApiKey::JoinGroup, v, &r, vec![expected])?;
        }
    }

    #[test]
    fn heartbeat((throttle, error) in (any::<i32>(), error_code()), tags in unknown_tags()) {
        for v in versions::<HeartbeatResponse>() {
            let mut r = HeartbeatResponse::default();
            if v >= 1 {
                r.throttle_time_ms = throttle;
            }
            r.error_code = error;
            r.unknown_tagged_fields = tags_if::<HeartbeatResponse>(v, &tags);
            check(ApiKey::Heartbeat, v, &r, vec![TapEvent::HeartbeatResponse { error_code: error }])?;
        }
    }
}

// ---------------------------------------------------------------------------------------------
// SyncGroup and the consumer protocol assignment.

/// What a SyncGroup response carries as its assignment.
#[derive(Debug, Clone)]
enum AssignmentModel {
    /// A consumer protocol assignment (version, topics, user data, bytes after a newer version).
    Consumer(i16, Vec<(String, Vec<i32>)>, Option<Bytes>, Bytes),
    /// Empty (as on an error).
    Empty,
}

fn assignment_model() -> impl Strategy<Value = AssignmentModel> {
    prop_oneof![
        4 => (0i16..6, vec((name(), vec(any::<i32>(), 0..4)), 0..4), option::of(blob()), blob())
            .prop_map(|(v, t, u, rest)| AssignmentModel::Consumer(v, t, u, rest)),
        1 => Just(AssignmentModel::Empty),
    ]
}

/// The assignment bytes: `int16 version`, the v0–3 body, and for newer versions extra bytes.
fn assignment_bytes(model: &AssignmentModel) -> Result<Bytes, TestCaseError> {
    let AssignmentModel::Consumer(version, topics, user_data, rest) = model else {
        return Ok(Bytes::new());
    };
    let mut a = ConsumerProtocolAssignment::default();
    a.assigned_partitions = topics
        .iter()
        .map(|(t, ps)| {
            let mut tp = TopicPartition::default();
            tp.topic = topic(t);
            tp.partitions = ps.clone();
            tp
        })
        .collect();
    a.user_data = user_data.clone();
    let mut buf = BytesMut::new();
    buf.put_i16(*version);
    buf.extend_from_slice(&encode(&a, (*version).min(3))?);
    if *version > 3 {
        buf.extend_from_slice(rest);
    }
    Ok(buf.freeze())
}

proptest! {
    #[test]
    fn sync_group(
        (throttle, error) in (any::<i32>(), error_code()),
        protocol_type in option::of(prop_oneof![Just("consumer".to_owned()), Just("connect".to_owned()), name()]),
        protocol_name in option::of(name()),
        assignment in assignment_model(),
        tags in unknown_tags(),
    ) {
        let bytes = assignment_bytes(&assignment)?;
        for v in versions::<SyncGroupResponse>() {
            let mut r = SyncGroupResponse::default();
            if v >= 1 {
                r.throttle_time_ms = throttle;
            }
            r.error_code = error;
            if v >= 5 {
                r.protocol_type = osb(&protocol_type);
                r.protocol_name = osb(&protocol_name);
            }
            r.assignment = bytes.clone();
            r.unknown_tagged_fields = tags_if::<SyncGroupResponse>(v, &tags);
            let consumer = v < 5 || protocol_type.as_deref().is_none_or(|t| t == "consumer");
            let expected_assignment = match &assignment {
                AssignmentModel::Consumer(_, topics, _, _) if consumer => Some(
                    topics.iter().map(|(t, ps)| (TopicRef::named(t), ps.clone())).collect(),
                ),
                _ => None,
            };
            let expected = TapEvent::SyncGroupResponse { error_code: error, assignment: expected_assignment };
            check(ApiKey::SyncGroup, v, &r, vec![expected])?;
        }
    }

    /// Any assignment bytes: the response still decodes; the assignment is `None` or whatever
    /// the bytes say, never a panic.
    #[test]
    fn sync_group_with_any_assignment_bytes(bytes in vec(any::<u8>(), 0..64)) {
        for v in versions::<SyncGroupResponse>() {
            let mut r = SyncGroupResponse::default();
            r.assignment = Bytes::from(bytes.clone());
            let mut out = Vec::new();
            let decoded = decode_response(ApiKey::SyncGroup as i16, v, encode(&r, v)?, &mut out);
            prop_assert_eq!(decoded, Ok(()));
            let is_sync_response = matches!(out.as_slice(), [TapEvent::SyncGroupResponse { .. }]);
            prop_assert!(is_sync_response);
        }
    }
}

#[test]
fn assignment_edge_cases() {
    fn decode(assignment: &[u8]) -> Option<Vec<(TopicRef, Vec<i32>)>> {
        let mut r = SyncGroupResponse::default();
        r.assignment = Bytes::copy_from_slice(assignment);
        let mut buf = BytesMut::new();
        r.encode(&mut buf, 3).unwrap();
        let mut out = Vec::new();
        decode_response(ApiKey::SyncGroup as i16, 3, buf.freeze(), &mut out).unwrap();
        match out.pop() {
            Some(TapEvent::SyncGroupResponse { assignment, .. }) => assignment,
            other => panic!("{other:?}"),
        }
    }
    // v1, one topic "t" with partitions 0 and 2, null user data.
    let good = [
        0, 1, 0, 0, 0, 1, 0, 1, b't', 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 2, 0xff, 0xff, 0xff, 0xff,
    ];
    assert_eq!(
        decode(&good),
        Some(vec![(TopicRef::named("t"), vec![0, 2])])
    );
    // A trailing byte on a known version, a negative version, a cut: not an assignment.
    let mut trailing = good.to_vec();
    trailing.push(0);
    assert_eq!(decode(&trailing), None);
    let mut negative = good.to_vec();
    negative[..2].copy_from_slice(&[0xff, 0xff]);
    assert_eq!(decode(&negative), None);
    assert_eq!(decode(&good[..good.len() - 1]), None);
    assert_eq!(decode(&[0]), None);
    // A newer version: the known fields are read and what follows ignored.
    let mut newer = good.to_vec();
    newer[..2].copy_from_slice(&[0, 9]);
    newer.extend_from_slice(&[1, 2, 3]);
    assert_eq!(
        decode(&newer),
        Some(vec![(TopicRef::named("t"), vec![0, 2])])
    );
    // An absurd partition count is refused without allocating.
    let mut absurd = good[..13].to_vec();
    absurd[9..13].copy_from_slice(&[0x7f, 0xff, 0xff, 0xff]);
    assert_eq!(decode(&absurd), None);
}

// ---------------------------------------------------------------------------------------------
// Offsets.

proptest! {
    #[test]
    fn offset_commit(
        throttle in any::<i32>(),
        topics in vec((name(), id(), vec((any::<i32>(), error_code()), 0..4)), 0..4),
        tags in unknown_tags(),
    ) {
        for v in versions::<OffsetCommitResponse>() {
            let mut r = OffsetCommitResponse::default();
            if v >= 3 {
                r.throttle_time_ms = throttle;
            }
            r.topics = topics
                .iter()
                .map(|(n, i, ps)| {
                    let mut t = OffsetCommitResponseTopic::default();
                    if v <= 9 {
                        t.name = topic(n);
                    } else {
                        t.topic_id = uuid(*i);
                    }
                    t.partitions = ps
                        .iter()
                        .map(|(p, e)| {
                            let mut op = OffsetCommitResponsePartition::default();
                            op.partition_index = *p;
                            op.error_code = *e;
                            op
                        })
                        .collect();
                    t
                })
                .collect();
            r.unknown_tagged_fields = tags_if::<OffsetCommitResponse>(v, &tags);
            let topic_ref = |n: &str, i: &[u8; 16]| if v >= 10 { TopicRef::by_id(TopicId(*i)) } else { TopicRef::named(n) };
            let expected = TapEvent::OffsetCommitResponse {
                errors: topics
                    .iter()
                    .flat_map(|(n, i, ps)| {
                        ps.iter().filter(|(_, e)| *e != 0).map(move |(p, e)| (topic_ref(n, i), *p, *e))
                    })
                    .collect(),
                partitions: topics.iter().map(|(_, _, ps)| ps.len() as u32).sum(),
            };
            check(ApiKey::OffsetCommit, v, &r, vec![expected])?;
        }
    }
}

// ---------------------------------------------------------------------------------------------
// KIP-848.

proptest! {
    #[test]
    fn consumer_group_heartbeat(
        (throttle, error, epoch, interval) in (any::<i32>(), error_code(), any::<i32>(), any::<i32>()),
        (error_message, member_id) in (option::of(name()), option::of(name())),
        assignment in option::of(vec((id(), vec(any::<i32>(), 0..4)), 0..4)),
        tags in unknown_tags(),
    ) {
        for v in versions::<ConsumerGroupHeartbeatResponse>() {
            let mut r = ConsumerGroupHeartbeatResponse::default();
            r.throttle_time_ms = throttle;
            r.error_code = error;
            r.error_message = osb(&error_message);
            r.member_id = osb(&member_id);
            r.member_epoch = epoch;
            r.heartbeat_interval_ms = interval;
            r.assignment = assignment.as_ref().map(|a| {
                let mut asg = Assignment::default();
                asg.topic_partitions = a
                    .iter()
                    .map(|(i, ps)| {
                        let mut tp = TopicPartitions::default();
                        tp.topic_id = uuid(*i);
                        tp.partitions = ps.clone();
                        tp
                    })
                    .collect();
                asg
            });
            r.unknown_tagged_fields = tags.clone();
            let expected = TapEvent::ConsumerGroupHeartbeatResponse {
                error_code: error,
                member_id: member_id.clone(),
                member_epoch: epoch,
                assignment: assignment.as_ref().map(|a| {
                    a.iter().map(|(i, ps)| (TopicRef::by_id(TopicId(*i)), ps.clone())).collect()
                }),
            };
            check(ApiKey::ConsumerGroupHeartbeat, v, &r, vec![expected])?;
        }
    }
}

// ---------------------------------------------------------------------------------------------
// SASL.

/// A server message: empty (PLAIN, OAUTHBEARER success), SCRAM's server-final `v=` (the
/// server signature), or a challenge (SCRAM's server-first, OAUTHBEARER's error JSON).
fn server_message() -> impl Strategy<Value = (Vec<u8>, bool)> {
    prop_oneof![
        Just((Vec::new(), true)),
        "v=[A-Za-z0-9+/]{4,44}".prop_map(|m| (m.into_bytes(), true)),
        "r=[!-+--~]{4,40},s=[A-Za-z0-9+/]{4,24},i=4096".prop_map(|m| (m.into_bytes(), false)),
        Just((br#"{"status":"invalid_token"}"#.to_vec(), false)),
    ]
}

proptest! {
    #[test]
    fn sasl_authenticate(
        error in error_code(),
        error_message in option::of(prop_oneof!["\\PC{0,10}", "\\PC{250,300}"]),
        (auth, done) in server_message(),
        lifetime in any::<i64>(),
        tags in unknown_tags(),
    ) {
        for v in versions::<SaslAuthenticateResponse>() {
            let mut r = SaslAuthenticateResponse::default();
            r.error_code = error;
            r.error_message = osb(&error_message);
            r.auth_bytes = Bytes::from(auth.clone());
            r.session_lifetime_ms = if v >= 1 { lifetime } else { 0 };
            r.unknown_tagged_fields = tags_if::<SaslAuthenticateResponse>(v, &tags);
            let cut = error_message.as_ref().map(|m| {
                let mut end = m.len().min(MAX_SASL_ERROR_MESSAGE);
                while !m.is_char_boundary(end) {
                    end -= 1;
                }
                m[..end].to_owned()
            });
            let expected = TapEvent::Sasl(SaslInfo::Outcome {
                error_code: error,
                error_message: cut,
                done: done || error != 0,
            });
            check(ApiKey::SaslAuthenticate, v, &r, vec![expected])?;
        }
    }
}

#[test]
fn sasl_outcome_never_carries_the_server_signature() {
    let mut r = SaslAuthenticateResponse::default();
    r.auth_bytes = Bytes::from_static(b"v=c2lnLVNFQ1JFVC1zZXJ2ZXI=");
    for v in versions::<SaslAuthenticateResponse>() {
        let mut out = Vec::new();
        let body = encode(&r, v).unwrap();
        decode_response(ApiKey::SaslAuthenticate as i16, v, body, &mut out).unwrap();
        let shown = format!("{out:?}");
        assert!(!shown.contains("c2lnLVNFQ1JFVC1zZXJ2ZXI"), "{shown}");
        assert!(shown.contains("done: true"), "{shown}");
    }
}
