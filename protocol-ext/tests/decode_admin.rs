//! The lookup's admin responses (`decode_guarded`) against `kafka-protocol` as the oracle: for
//! every message and every version, random responses (only the fields that exist in that
//! version, unknown tagged fields in flexible versions) are encoded, and the guarded decode
//! must give exactly what `kafka-protocol`'s own decode gives. One trailing byte and every cut
//! are refused; random bytes and hostile lengths are refused without a panic or an allocation
//! sized from a declared length.

use std::collections::BTreeMap;
use std::fmt::Debug;

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::api_versions_response::{
    ApiVersion, FinalizedFeatureKey, SupportedFeatureKey,
};
use kafka_protocol::messages::consumer_group_describe_response::{
    self as cgd, Assignment, Member, TopicPartitions,
};
use kafka_protocol::messages::describe_groups_response::{DescribedGroup, DescribedGroupMember};
use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::list_groups_response::ListedGroup;
use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponseGroup, OffsetFetchResponsePartition, OffsetFetchResponsePartitions,
    OffsetFetchResponseTopic, OffsetFetchResponseTopics,
};
use kafka_protocol::messages::{
    ApiVersionsResponse, BrokerId, ConsumerGroupDescribeResponse, DescribeGroupsResponse,
    FindCoordinatorResponse, GroupId, ListGroupsResponse, MetadataResponse, OffsetFetchResponse,
    TopicName,
};
use kafka_protocol::protocol::{Decodable, Encodable, Message, StrBytes};
use proptest::collection::{btree_map, vec};
use proptest::option;
use proptest::prelude::*;
use sluice_protocol::decode::{decode_guarded, Guarded};
use sluice_protocol::TapError;

fn sb(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_owned())
}

fn osb(s: &Option<String>) -> Option<StrBytes> {
    s.as_deref().map(sb)
}

/// `kafka-protocol`'s uuid type from 16 bytes, without naming the crate that defines it.
fn uuid_from<T: TryFrom<Vec<u8>>>(b: [u8; 16]) -> T
where
    T::Error: Debug,
{
    T::try_from(b.to_vec()).unwrap()
}

fn text() -> impl Strategy<Value = String> {
    "\\PC{0,8}"
}

fn blob() -> impl Strategy<Value = Bytes> {
    vec(any::<u8>(), 0..10).prop_map(Bytes::from)
}

fn tags() -> impl Strategy<Value = BTreeMap<i32, Bytes>> {
    btree_map(10i32..200, blob(), 0..3)
}

/// Unknown tagged fields for a flexible version, none before.
fn tags_at(flexible_from: i16, version: i16, tags: &BTreeMap<i32, Bytes>) -> BTreeMap<i32, Bytes> {
    if version >= flexible_from {
        tags.clone()
    } else {
        BTreeMap::new()
    }
}

fn cuts(len: usize) -> Vec<usize> {
    if len <= 64 {
        (0..len).collect()
    } else {
        (0..32).map(|i| i * len / 32).chain([len - 1]).collect()
    }
}

/// Encodes `msg` at `version`; the guarded decode must equal `kafka-protocol`'s decode, and
/// refuse a trailing byte and every truncation.
fn check<M: Guarded + Encodable + Decodable + PartialEq + Debug>(
    msg: &M,
    version: i16,
) -> Result<(), TestCaseError> {
    let mut buf = BytesMut::new();
    msg.encode(&mut buf, version)
        .map_err(|e| TestCaseError::fail(format!("v{version} encode: {e}")))?;
    let body = buf.freeze();
    let oracle = M::decode(&mut body.clone(), version)
        .map_err(|e| TestCaseError::fail(format!("v{version} oracle decode: {e}")))?;
    let ours = decode_guarded::<M>(version, body.clone());
    prop_assert_eq!(
        ours.as_ref(),
        Ok(&oracle),
        "v{} {:02x?}",
        version,
        &body[..]
    );

    let mut longer = BytesMut::from(&body[..]);
    longer.extend_from_slice(&[0]);
    let trailing = decode_guarded::<M>(version, longer.freeze());
    prop_assert!(
        matches!(trailing, Err(TapError::Malformed { .. })),
        "v{version} trailing byte accepted"
    );
    for cut in cuts(body.len()) {
        let cut_short = decode_guarded::<M>(version, body.slice(..cut));
        prop_assert!(
            matches!(cut_short, Err(TapError::Malformed { .. })),
            "v{version} cut at {cut}/{} accepted",
            body.len()
        );
    }
    Ok(())
}

fn versions<M: Message>() -> std::ops::RangeInclusive<i16> {
    M::VERSIONS.min..=M::VERSIONS.max
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn api_versions(
        error in any::<i16>(),
        keys in vec((any::<i16>(), any::<i16>(), any::<i16>()), 0..5),
        throttle in any::<i32>(),
        features in vec((text(), any::<i16>(), any::<i16>()), 0..3),
        epoch in any::<i64>(),
        zk in any::<bool>(),
        unknown in tags(),
    ) {
        for v in versions::<ApiVersionsResponse>() {
            let mut r = ApiVersionsResponse::default();
            r.error_code = error;
            r.api_keys = keys.iter().map(|(k, min, max)| {
                let mut a = ApiVersion::default();
                a.api_key = *k;
                a.min_version = *min;
                a.max_version = *max;
                a.unknown_tagged_fields = tags_at(3, v, &unknown);
                a
            }).collect();
            if v >= 1 {
                r.throttle_time_ms = throttle;
            }
            if v >= 3 {
                r.supported_features = features.iter().map(|(n, a, b)| {
                    let mut f = SupportedFeatureKey::default();
                    f.name = sb(n);
                    f.min_version = *a;
                    f.max_version = *b;
                    f
                }).collect();
                r.finalized_features_epoch = epoch;
                r.finalized_features = features.iter().map(|(n, a, b)| {
                    let mut f = FinalizedFeatureKey::default();
                    f.name = sb(n);
                    f.max_version_level = *a;
                    f.min_version_level = *b;
                    f
                }).collect();
                r.zk_migration_ready = zk;
                r.unknown_tagged_fields = unknown.clone();
            }
            check(&r, v)?;
        }
    }

    #[test]
    fn find_coordinator(
        (error, message, node, host, port) in (any::<i16>(), option::of(text()), any::<i32>(), text(), any::<i32>()),
        keys in vec((text(), any::<i32>(), text(), any::<i32>(), any::<i16>(), option::of(text())), 0..4),
        unknown in tags(),
    ) {
        for v in versions::<FindCoordinatorResponse>() {
            let mut r = FindCoordinatorResponse::default();
            if v >= 1 {
                r.throttle_time_ms = port;
            }
            if v <= 3 {
                r.error_code = error;
                if v >= 1 {
                    r.error_message = osb(&message);
                }
                r.node_id = BrokerId(node);
                r.host = sb(&host);
                r.port = port;
            } else {
                r.coordinators = keys.iter().map(|(k, n, h, p, e, m)| {
                    let mut c = Coordinator::default();
                    c.key = sb(k);
                    c.node_id = BrokerId(*n);
                    c.host = sb(h);
                    c.port = *p;
                    c.error_code = *e;
                    c.error_message = osb(m);
                    c.unknown_tagged_fields = unknown.clone();
                    c
                }).collect();
            }
            r.unknown_tagged_fields = tags_at(3, v, &unknown);
            check(&r, v)?;
        }
    }

    #[test]
    fn list_groups(
        error in any::<i16>(),
        groups in vec((text(), text(), text(), text()), 0..5),
        unknown in tags(),
    ) {
        for v in versions::<ListGroupsResponse>() {
            let mut r = ListGroupsResponse::default();
            if v >= 1 {
                r.throttle_time_ms = 7;
            }
            r.error_code = error;
            r.groups = groups.iter().map(|(id, ptype, state, gtype)| {
                let mut g = ListedGroup::default();
                g.group_id = GroupId(sb(id));
                g.protocol_type = sb(ptype);
                if v >= 4 {
                    g.group_state = sb(state);
                }
                if v >= 5 {
                    g.group_type = sb(gtype);
                }
                g.unknown_tagged_fields = tags_at(3, v, &unknown);
                g
            }).collect();
            r.unknown_tagged_fields = tags_at(3, v, &unknown);
            check(&r, v)?;
        }
    }

    #[test]
    fn describe_groups(
        groups in vec((
            any::<i16>(), option::of(text()), text(), text(), text(), any::<i32>(),
            vec((text(), option::of(text()), text(), text(), blob(), blob()), 0..3),
        ), 0..3),
        unknown in tags(),
    ) {
        for v in versions::<DescribeGroupsResponse>() {
            let mut r = DescribeGroupsResponse::default();
            if v >= 1 {
                r.throttle_time_ms = 3;
            }
            r.groups = groups.iter().map(|(error, message, id, state, ptype, ops, members)| {
                let mut g = DescribedGroup::default();
                g.error_code = *error;
                if v >= 6 {
                    g.error_message = osb(message);
                }
                g.group_id = GroupId(sb(id));
                g.group_state = sb(state);
                g.protocol_type = sb(ptype);
                g.protocol_data = sb(state);
                g.members = members.iter().map(|(mid, instance, cid, host, meta, assign)| {
                    let mut m = DescribedGroupMember::default();
                    m.member_id = sb(mid);
                    if v >= 4 {
                        m.group_instance_id = osb(instance);
                    }
                    m.client_id = sb(cid);
                    m.client_host = sb(host);
                    m.member_metadata = meta.clone();
                    m.member_assignment = assign.clone();
                    m.unknown_tagged_fields = tags_at(5, v, &unknown);
                    m
                }).collect();
                if v >= 3 {
                    g.authorized_operations = *ops;
                }
                g.unknown_tagged_fields = tags_at(5, v, &unknown);
                g
            }).collect();
            r.unknown_tagged_fields = tags_at(5, v, &unknown);
            check(&r, v)?;
        }
    }

    #[test]
    fn consumer_group_describe(
        groups in vec((
            any::<i16>(), option::of(text()), text(), any::<i32>(),
            vec((text(), option::of(text()), any::<i32>(), text(),
                 vec((any::<[u8; 16]>(), text(), vec(any::<i32>(), 0..3)), 0..3),
                 any::<i8>()), 0..3),
        ), 0..3),
        unknown in tags(),
    ) {
        for v in versions::<ConsumerGroupDescribeResponse>() {
            let mut r = ConsumerGroupDescribeResponse::default();
            r.throttle_time_ms = 1;
            r.groups = groups.iter().map(|(error, message, id, epoch, members)| {
                let mut g = cgd::DescribedGroup::default();
                g.error_code = *error;
                g.error_message = osb(message);
                g.group_id = GroupId(sb(id));
                g.group_state = sb(id);
                g.group_epoch = *epoch;
                g.assignment_epoch = epoch.wrapping_add(1);
                g.assignor_name = sb("uniform");
                g.members = members.iter().map(|(mid, instance, mepoch, host, tps, mtype)| {
                    let mut m = Member::default();
                    m.member_id = sb(mid);
                    m.instance_id = osb(instance);
                    m.rack_id = osb(instance);
                    m.member_epoch = *mepoch;
                    m.client_id = sb(mid);
                    m.client_host = sb(host);
                    m.subscribed_topic_names = tps.iter().map(|(_, n, _)| TopicName(sb(n))).collect();
                    m.subscribed_topic_regex = osb(instance);
                    let mut a = Assignment::default();
                    a.topic_partitions = tps.iter().map(|(tid, n, ps)| {
                        let mut t = TopicPartitions::default();
                        t.topic_id = uuid_from(*tid);
                        t.topic_name = TopicName(sb(n));
                        t.partitions = ps.clone();
                        t.unknown_tagged_fields = unknown.clone();
                        t
                    }).collect();
                    m.target_assignment = a.clone();
                    a.unknown_tagged_fields = unknown.clone();
                    m.assignment = a;
                    if v >= 1 {
                        m.member_type = *mtype;
                    }
                    m
                }).collect();
                g.authorized_operations = *epoch;
                g.unknown_tagged_fields = unknown.clone();
                g
            }).collect();
            r.unknown_tagged_fields = unknown.clone();
            check(&r, v)?;
        }
    }

    #[test]
    fn offset_fetch(
        (error, throttle) in (any::<i16>(), any::<i32>()),
        groups in vec((text(), any::<i16>(),
            vec((text(), any::<[u8; 16]>(),
                 vec((any::<i32>(), any::<i64>(), any::<i32>(), option::of(text()), any::<i16>()), 0..3)),
                0..3)), 0..3),
        unknown in tags(),
    ) {
        for v in versions::<OffsetFetchResponse>() {
            let mut r = OffsetFetchResponse::default();
            if v >= 3 {
                r.throttle_time_ms = throttle;
            }
            let topics = groups.first().map(|g| &g.2[..]).unwrap_or_default();
            if v <= 7 {
                r.topics = topics.iter().map(|(name, _, ps)| {
                    let mut t = OffsetFetchResponseTopic::default();
                    t.name = TopicName(sb(name));
                    t.partitions = ps.iter().map(|(i, o, e, m, err)| {
                        let mut p = OffsetFetchResponsePartition::default();
                        p.partition_index = *i;
                        p.committed_offset = *o;
                        if v >= 5 {
                            p.committed_leader_epoch = *e;
                        }
                        p.metadata = osb(m);
                        p.error_code = *err;
                        p.unknown_tagged_fields = tags_at(6, v, &unknown);
                        p
                    }).collect();
                    t.unknown_tagged_fields = tags_at(6, v, &unknown);
                    t
                }).collect();
                if v >= 2 {
                    r.error_code = error;
                }
            } else {
                r.groups = groups.iter().map(|(gid, gerr, topics)| {
                    let mut g = OffsetFetchResponseGroup::default();
                    g.group_id = GroupId(sb(gid));
                    g.error_code = *gerr;
                    g.topics = topics.iter().map(|(name, tid, ps)| {
                        let mut t = OffsetFetchResponseTopics::default();
                        if v <= 9 {
                            t.name = TopicName(sb(name));
                        } else {
                            t.topic_id = uuid_from(*tid);
                        }
                        t.partitions = ps.iter().map(|(i, o, e, m, err)| {
                            let mut p = OffsetFetchResponsePartitions::default();
                            p.partition_index = *i;
                            p.committed_offset = *o;
                            p.committed_leader_epoch = *e;
                            p.metadata = osb(m);
                            p.error_code = *err;
                            p.unknown_tagged_fields = unknown.clone();
                            p
                        }).collect();
                        t.unknown_tagged_fields = unknown.clone();
                        t
                    }).collect();
                    g.unknown_tagged_fields = unknown.clone();
                    g
                }).collect();
            }
            r.unknown_tagged_fields = tags_at(6, v, &unknown);
            check(&r, v)?;
        }
    }

    /// Random bytes at every version of every admin response: refused or decoded, never a
    /// panic; anything decoded is what `kafka-protocol` decodes from the same bytes.
    #[test]
    fn random_bytes_never_panic(body in vec(any::<u8>(), 0..64)) {
        fn one<M: Guarded + Decodable + PartialEq + Debug>(body: &[u8]) -> Result<(), TestCaseError> {
            for v in versions::<M>() {
                if let Ok(ours) = decode_guarded::<M>(v, Bytes::copy_from_slice(body)) {
                    let oracle = M::decode(&mut Bytes::copy_from_slice(body), v);
                    prop_assert_eq!(Some(ours), oracle.ok());
                }
            }
            Ok(())
        }
        one::<ApiVersionsResponse>(&body)?;
        one::<MetadataResponse>(&body)?;
        one::<FindCoordinatorResponse>(&body)?;
        one::<ListGroupsResponse>(&body)?;
        one::<DescribeGroupsResponse>(&body)?;
        one::<ConsumerGroupDescribeResponse>(&body)?;
        one::<OffsetFetchResponse>(&body)?;
    }
}

#[test]
fn a_declared_length_past_the_body_is_refused() {
    // ListGroups v0: error_code 0, then a groups array declaring 2^31 - 1 elements in a body
    // with none: `kafka-protocol` alone would reserve ~2^31 elements before reading one.
    let body = Bytes::from_static(&[0, 0, 0x7f, 0xff, 0xff, 0xff]);
    let r = decode_guarded::<ListGroupsResponse>(0, body);
    assert!(matches!(r, Err(TapError::Malformed { .. })), "{r:?}");
    // DescribeGroups v5 (compact): a varint length of 2^32 - 2 groups.
    let body = Bytes::from_static(&[0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0x0f, 0]);
    let r = decode_guarded::<DescribeGroupsResponse>(5, body);
    assert!(matches!(r, Err(TapError::Malformed { .. })), "{r:?}");
}

#[test]
fn versions_outside_kafka_protocol_are_unsupported() {
    let r = decode_guarded::<OffsetFetchResponse>(0, Bytes::new());
    assert!(
        matches!(
            r,
            Err(TapError::UnsupportedVersion {
                api_key: 9,
                api_version: 0
            })
        ),
        "{r:?}"
    );
    let r = decode_guarded::<ConsumerGroupDescribeResponse>(99, Bytes::new());
    assert!(
        matches!(r, Err(TapError::UnsupportedVersion { api_key: 69, .. })),
        "{r:?}"
    );
}
