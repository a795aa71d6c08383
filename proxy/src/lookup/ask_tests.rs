//! The questions against `kafka-protocol`: every request encodes at every version the lookup
//! may pick and decodes back (as a broker would) to what was meant; every response built with
//! `kafka-protocol` and encoded at every version reads back, through the guarded decode the
//! connection uses, as the plain data expected.

use std::time::Instant;

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::consumer_group_describe_response::{
    self as cgd, Member, TopicPartitions,
};
use kafka_protocol::messages::consumer_protocol_assignment::TopicPartition;
use kafka_protocol::messages::describe_groups_response::{DescribedGroup, DescribedGroupMember};
use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::list_groups_response::ListedGroup;
use kafka_protocol::messages::metadata_response::MetadataResponseBroker;
use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponseGroup, OffsetFetchResponsePartition, OffsetFetchResponsePartitions,
    OffsetFetchResponseTopic, OffsetFetchResponseTopics,
};
use kafka_protocol::messages::{BrokerId, ConsumerProtocolAssignment, TopicName};
use kafka_protocol::protocol::{Decodable, Encodable, Message};
use sluice_protocol::decode::{decode_guarded, Guarded};

use super::*;

fn roundtrip<M: Encodable + Decodable>(msg: &M, version: i16) -> M {
    let mut buf = BytesMut::new();
    msg.encode(&mut buf, version)
        .unwrap_or_else(|e| panic!("encode v{version}: {e}"));
    M::decode(&mut buf.freeze(), version).unwrap()
}

/// Encodes a response with `kafka-protocol` and reads it back the way the connection does.
fn through_guard<M: Encodable + Guarded>(msg: &M, version: i16) -> M {
    let mut buf = BytesMut::new();
    msg.encode(&mut buf, version)
        .unwrap_or_else(|e| panic!("encode v{version}: {e}"));
    decode_guarded::<M>(version, buf.freeze()).unwrap()
}

fn range<M: Message>(floor: i16) -> std::ops::RangeInclusive<i16> {
    M::VERSIONS.min.max(floor)..=M::VERSIONS.max
}

fn assignment_bytes(version: i16, topics: &[(&str, &[i32])]) -> Bytes {
    let mut a = ConsumerProtocolAssignment::default();
    a.assigned_partitions = topics
        .iter()
        .map(|(t, p)| {
            let mut tp = TopicPartition::default();
            tp.topic = TopicName(sb(t));
            tp.partitions = p.to_vec();
            tp
        })
        .collect();
    let mut buf = BytesMut::new();
    buf.put_i16(version);
    a.encode(&mut buf, version).unwrap();
    buf.freeze()
}

#[test]
fn requests_encode_at_every_usable_version() {
    for v in range::<MetadataRequest>(METADATA_FLOOR) {
        let back = roundtrip(&metadata_request(v), v);
        assert_eq!(back.topics, Some(Vec::new()), "v{v}");
        assert!(v < 4 || !back.allow_auto_topic_creation, "v{v}");
    }
    for v in range::<ListGroupsRequest>(0) {
        let back = roundtrip(&list_groups_request(v), v);
        assert_eq!(back.types_filter.len(), if v >= 5 { 2 } else { 0 }, "v{v}");
        assert!(back.states_filter.is_empty());
    }
    let groups = ["g1".to_owned(), "g2".to_owned()];
    for v in range::<DescribeGroupsRequest>(0) {
        assert_eq!(
            roundtrip(&describe_groups_request(&groups), v).groups.len(),
            2
        );
    }
    for v in range::<ConsumerGroupDescribeRequest>(0) {
        let back = roundtrip(&consumer_group_describe_request(&groups), v);
        assert_eq!(back.group_ids[1].0.as_str(), "g2");
    }
    for v in range::<OffsetFetchRequest>(OFFSET_FETCH_FLOOR) {
        let back = roundtrip(&offset_fetch_request(&groups, v), v);
        if v >= OFFSET_FETCH_BATCH {
            assert_eq!(back.groups.len(), 2, "v{v}");
            assert!(back.groups.iter().all(|g| g.topics.is_none()), "v{v}");
        } else {
            assert_eq!(back.group_id.0.as_str(), "g1", "v{v}");
            assert_eq!(back.topics, None, "v{v}: every committed partition");
        }
    }
    for v in range::<FindCoordinatorRequest>(0) {
        let back = roundtrip(&find_coordinator_request(&groups, v), v);
        assert_eq!(back.key_type, 0, "v{v}: group");
        if v >= FIND_COORDINATOR_BATCH {
            assert_eq!(back.coordinator_keys.len(), 2);
        } else {
            assert_eq!(back.key.as_str(), "g1");
        }
    }
}

#[test]
fn metadata_names_the_brokers() {
    let mut r = MetadataResponse::default();
    for (id, host, port) in [(1, "kafka-1.example", 9093), (2, "::1", 9094), (3, "x", 0)] {
        let mut b = MetadataResponseBroker::default();
        b.node_id = BrokerId(id);
        b.host = sb(host);
        b.port = port;
        r.brokers.push(b);
    }
    for v in range::<MetadataResponse>(METADATA_FLOOR) {
        assert_eq!(
            brokers(&through_guard(&r, v)),
            [
                (1, "kafka-1.example:9093".to_owned()),
                (2, "[::1]:9094".to_owned())
            ],
            "v{v}"
        );
    }
}

#[test]
fn metadata_names_topics_by_id() {
    use kafka_protocol::messages::metadata_response::MetadataResponseTopic;
    let mut r = MetadataResponse::default();
    for (name, id, error) in [
        ("orders", [7u8; 16], 0),
        ("no-id", [0; 16], 0),
        ("gone", [9; 16], 3),
    ] {
        let mut t = MetadataResponseTopic::default();
        t.name = Some(TopicName(sb(name)));
        t.topic_id = id.to_vec().try_into().unwrap();
        t.error_code = error;
        r.topics.push(t);
    }
    for v in range::<MetadataResponse>(METADATA_TOPIC_IDS) {
        assert_eq!(
            topic_ids(&through_guard(&r, v)),
            [([7u8; 16], "orders".to_owned())],
            "v{v}"
        );
    }
    for v in range::<MetadataRequest>(METADATA_TOPIC_IDS) {
        let req = roundtrip(&metadata_all_topics_request(v), v);
        assert!(req.topics.is_none(), "v{v}: every topic");
        assert!(!req.allow_auto_topic_creation, "v{v}");
    }
}

#[test]
fn listing_keeps_consumer_groups_only() {
    let mut r = ListGroupsResponse::default();
    for (id, ptype, state, gtype) in [
        ("classic-g", "consumer", "Stable", "classic"),
        ("kip848-g", "consumer", "Stable", "consumer"),
        ("commits-only", "", "Empty", "classic"),
        ("connect-cluster", "connect", "Stable", "classic"),
        ("share-g", "share", "Stable", "share"),
    ] {
        let mut g = ListedGroup::default();
        g.group_id = GroupId(sb(id));
        g.protocol_type = sb(ptype);
        g.group_state = sb(state);
        g.group_type = sb(gtype);
        r.groups.push(g);
    }
    let v5 = listed(&through_guard(&r, 5)).unwrap();
    let names: Vec<_> = v5
        .iter()
        .map(|l| (l.group_id.as_str(), l.protocol))
        .collect();
    assert_eq!(
        names,
        [
            ("classic-g", GroupProtocol::Classic),
            ("kip848-g", GroupProtocol::Consumer),
            ("commits-only", GroupProtocol::Classic)
        ]
    );
    assert_eq!(v5[0].state, "Stable");
    // Before v5 there is no group type (and no KIP-848 groups); before v4 no state.
    for v in 0..=3 {
        let mut old = r.clone();
        for g in &mut old.groups {
            g.group_state = StrBytes::default();
            g.group_type = StrBytes::default();
        }
        let l = listed(&through_guard(&old, v)).unwrap();
        assert_eq!(l.len(), 3, "v{v}: {l:?}");
        assert!(l
            .iter()
            .all(|g| g.protocol == GroupProtocol::Classic && g.state.is_empty()));
    }
    r.error_code = 15;
    assert_eq!(listed(&through_guard(&r, 5)), Err(15));
}

#[test]
fn classic_members_with_their_assignment() {
    let mut g = DescribedGroup::default();
    g.group_id = GroupId(sb("orders"));
    g.group_state = sb("Stable");
    g.protocol_type = sb("consumer");
    g.protocol_data = sb("range");
    for (i, (host, assign)) in [
        (
            "/10.0.0.7",
            assignment_bytes(0, &[("t", &[2, 0]), ("u", &[1])]),
        ),
        ("/127.0.0.1", assignment_bytes(3, &[("t", &[1])])),
        ("garbage", Bytes::from_static(&[0, 9, 1])),
    ]
    .into_iter()
    .enumerate()
    {
        let mut m = DescribedGroupMember::default();
        m.member_id = sb(&format!("m-{i}"));
        m.client_id = sb("svc");
        m.client_host = sb(host);
        m.member_assignment = assign;
        g.members.push(m);
    }
    let mut failed = DescribedGroup::default();
    failed.group_id = GroupId(sb("moved"));
    failed.error_code = 16;
    let mut r = DescribeGroupsResponse::default();
    r.groups = vec![g, failed];
    let at = Instant::now();
    for v in range::<DescribeGroupsResponse>(0) {
        let out = described_classic(&through_guard(&r, v), at);
        assert_eq!(out.len(), 2);
        assert_eq!(out[1], ("moved".to_owned(), Err(16)));
        let members = out[0].1.as_ref().unwrap();
        assert_eq!(members.state, "Stable");
        assert_eq!(members.members.len(), 3);
        let m0 = &members.members[0];
        assert_eq!(m0.client_host, Some([10, 0, 0, 7].into()));
        assert_eq!(
            m0.assignment,
            [("t".to_owned(), vec![0, 2]), ("u".to_owned(), vec![1])]
        );
        assert_eq!(members.members[1].assignment, [("t".to_owned(), vec![1])]);
        assert_eq!(members.members[2].client_host, None);
        assert!(
            members.members[2].assignment.is_empty(),
            "malformed bytes: no assignment"
        );
    }
}

#[test]
fn kip848_members_with_their_assignment() {
    let mut m = Member::default();
    m.member_id = sb("m-1");
    m.client_id = sb("svc-848");
    m.client_host = sb("/10.0.0.8");
    m.instance_id = Some(sb("static-1"));
    let mut tp = TopicPartitions::default();
    tp.topic_name = TopicName(sb("t"));
    tp.partitions = vec![3, 1];
    m.assignment.topic_partitions.push(tp.clone());
    tp.partitions = vec![0, 1, 2, 3];
    m.target_assignment.topic_partitions.push(tp);
    let mut g = cgd::DescribedGroup::default();
    g.group_id = GroupId(sb("g848"));
    g.group_state = sb("Reconciling");
    g.members.push(m);
    let mut r = ConsumerGroupDescribeResponse::default();
    r.groups.push(g);
    for v in range::<ConsumerGroupDescribeResponse>(0) {
        let out = described_consumer(&through_guard(&r, v), Instant::now());
        let members = out[0].1.as_ref().unwrap();
        assert_eq!(members.state, "Reconciling");
        let m = &members.members[0];
        assert_eq!(m.instance_id.as_deref(), Some("static-1"));
        assert_eq!(m.client_host, Some([10, 0, 0, 8].into()));
        assert_eq!(
            m.assignment,
            [("t".to_owned(), vec![1, 3])],
            "current, not target"
        );
    }
}

#[test]
fn members_and_partitions_over_the_caps_are_counted() {
    let mut g = cgd::DescribedGroup::default();
    g.group_id = GroupId(sb("big"));
    for i in 0..MAX_MEMBERS + 5 {
        let mut m = Member::default();
        m.member_id = sb(&format!("m-{i}"));
        let mut tp = TopicPartitions::default();
        tp.topic_name = TopicName(sb("t"));
        tp.partitions = (0..20).collect();
        m.assignment.topic_partitions.push(tp);
        g.members.push(m);
    }
    let mut r = ConsumerGroupDescribeResponse::default();
    r.groups.push(g);
    let out = described_consumer(&r, Instant::now());
    let members = out[0].1.as_ref().unwrap();
    assert_eq!(members.members.len(), MAX_MEMBERS);
    assert_eq!(members.dropped_members, 5);
    let kept: usize = members
        .members
        .iter()
        .flat_map(|m| &m.assignment)
        .map(|(_, p)| p.len())
        .sum();
    assert_eq!(kept, MAX_ASSIGNED);
    assert_eq!(
        members.dropped_partitions as usize,
        (MAX_MEMBERS + 5) * 20 - MAX_ASSIGNED
    );
}

#[test]
fn committed_offsets_one_group_or_many() {
    let at = Instant::now();
    let parts = [(0, 42i64, 0i16), (1, -1, 0), (2, 7, 0), (3, 9, 3)];
    // v2–7: one group, topics at the top.
    let mut old = OffsetFetchResponse::default();
    let mut t = OffsetFetchResponseTopic::default();
    t.name = TopicName(sb("t"));
    for (i, o, e) in parts {
        let mut p = OffsetFetchResponsePartition::default();
        p.partition_index = i;
        p.committed_offset = o;
        p.error_code = e;
        t.partitions.push(p);
    }
    old.topics.push(t);
    let asked = ["g1".to_owned()];
    let expected: BTreeMap<(String, i32), i64> =
        [(("t".to_owned(), 0), 42), (("t".to_owned(), 2), 7)].into();
    for v in OFFSET_FETCH_FLOOR..OFFSET_FETCH_BATCH {
        let out = committed(&through_guard(&old, v), v, &asked, at);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].0, "g1");
        assert_eq!(out[0].1.as_ref().unwrap().offsets, expected, "v{v}");
    }
    old.error_code = 16;
    assert_eq!(
        committed(&through_guard(&old, 5), 5, &asked, at)[0].1,
        Err(16)
    );

    // v8+: several groups.
    let mut r = OffsetFetchResponse::default();
    for (gid, err) in [("g1", 0i16), ("g2", 15)] {
        let mut g = OffsetFetchResponseGroup::default();
        g.group_id = GroupId(sb(gid));
        g.error_code = err;
        let mut t = OffsetFetchResponseTopics::default();
        t.name = TopicName(sb("t"));
        for (i, o, e) in parts {
            let mut p = OffsetFetchResponsePartitions::default();
            p.partition_index = i;
            p.committed_offset = o;
            p.error_code = e;
            t.partitions.push(p);
        }
        g.topics.push(t);
        r.groups.push(g);
    }
    let asked = ["g1".to_owned(), "g2".to_owned()];
    for v in OFFSET_FETCH_BATCH..=9 {
        let out = committed(&through_guard(&r, v), v, &asked, at);
        assert_eq!(out[0].1.as_ref().unwrap().offsets, expected, "v{v}");
        assert_eq!(out[1], ("g2".to_owned(), Err(15)));
    }
}

#[test]
fn coordinators_one_key_or_many() {
    let asked = ["a".to_owned(), "b".to_owned()];
    let mut old = FindCoordinatorResponse::default();
    old.node_id = BrokerId(2);
    old.host = sb("kafka-2");
    old.port = 9093;
    for v in 0..FIND_COORDINATOR_BATCH {
        assert_eq!(
            coordinators(&through_guard(&old, v), v, &asked),
            [("a".to_owned(), Ok((2, "kafka-2:9093".to_owned())))]
        );
    }
    let mut r = FindCoordinatorResponse::default();
    for (key, err) in [("a", 0), ("b", 15)] {
        let mut c = Coordinator::default();
        c.key = sb(key);
        c.node_id = BrokerId(3);
        c.host = sb("kafka-3");
        c.port = 9093;
        c.error_code = err;
        r.coordinators.push(c);
    }
    for v in FIND_COORDINATOR_BATCH..=FindCoordinatorResponse::VERSIONS.max {
        assert_eq!(
            coordinators(&through_guard(&r, v), v, &asked),
            [
                ("a".to_owned(), Ok((3, "kafka-3:9093".to_owned()))),
                ("b".to_owned(), Err(15))
            ]
        );
    }
}
