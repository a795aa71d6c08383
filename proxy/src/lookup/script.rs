//! The scripted cluster the lookup's edge-case tests run against: three groups on two
//! nodes, and the answers a broker of either node gives about them.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::messages::consumer_group_describe_response::{self as cgd, TopicPartitions};
use kafka_protocol::messages::consumer_protocol_assignment::TopicPartition;
use kafka_protocol::messages::describe_groups_response::{DescribedGroup, DescribedGroupMember};
use kafka_protocol::messages::find_coordinator_response::Coordinator as FoundCoordinator;
use kafka_protocol::messages::list_groups_response::ListedGroup;
use kafka_protocol::messages::metadata_response::MetadataResponseBroker;
use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponseGroup, OffsetFetchResponsePartition, OffsetFetchResponsePartitions,
    OffsetFetchResponseTopic, OffsetFetchResponseTopics,
};
use kafka_protocol::messages::{
    ApiKey, BrokerId, ConsumerGroupDescribeRequest, ConsumerGroupDescribeResponse,
    ConsumerProtocolAssignment, DescribeGroupsRequest, DescribeGroupsResponse,
    FindCoordinatorRequest, FindCoordinatorResponse, GroupId, ListGroupsResponse, MetadataResponse,
    OffsetFetchRequest, OffsetFetchResponse, TopicName,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use sluice_config::LookupConfig;

use super::mock::{all_versions, body, Action, MockBroker, Seen};

fn sb(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_owned())
}

/// One scripted group: id, coordinator node, KIP-848 or classic, member client id and host,
/// assigned partitions of topic `t`, committed offsets of topic `t`.
#[derive(Debug, Clone)]
pub(super) struct Script {
    id: &'static str,
    node: i32,
    kip848: bool,
    client: &'static str,
    host: &'static str,
    assigned: Vec<i32>,
    committed: Vec<(i32, i64)>,
}

fn scripts() -> Vec<Script> {
    vec![
        Script {
            id: "g-a",
            node: 1,
            kip848: false,
            client: "svc-a",
            host: "/10.0.0.1",
            assigned: vec![1, 0],
            committed: vec![(0, 10), (1, 11)],
        },
        Script {
            id: "g-b",
            node: 2,
            kip848: true,
            client: "svc-b",
            host: "/127.0.0.1",
            assigned: vec![2],
            committed: vec![(2, 22)],
        },
        // Not listed by anyone (e.g. an assign() consumer that commits), coordinated by 1.
        Script {
            id: "g-x",
            node: 1,
            kip848: false,
            client: "",
            host: "",
            assigned: vec![],
            committed: vec![(0, 5)],
        },
    ]
}

fn classic_assignment(parts: &[i32]) -> Bytes {
    let mut tp = TopicPartition::default();
    tp.topic = TopicName(sb("t"));
    tp.partitions = parts.to_vec();
    let mut a = ConsumerProtocolAssignment::default();
    a.assigned_partitions.push(tp);
    let mut buf = bytes::BytesMut::new();
    bytes::BufMut::put_i16(&mut buf, 0);
    a.encode(&mut buf, 0).unwrap();
    buf.freeze()
}

pub(super) fn decode<M: Decodable>(s: &Seen) -> M {
    M::decode(&mut s.body.clone(), s.version).unwrap()
}

/// A broker of node `node` in a cluster of `brokers`, answering from the scripts.
pub(super) fn broker(
    node: i32,
    brokers: Vec<(i32, String)>,
) -> impl Fn(&Seen) -> Action + Send + Sync {
    let groups: Vec<Script> = scripts().into_iter().filter(|g| g.node == node).collect();
    move |s| answer(s, node, &brokers, &groups)
}

pub(super) fn answer(s: &Seen, node: i32, brokers: &[(i32, String)], groups: &[Script]) -> Action {
    let v = s.version;
    let find = |id: &str| groups.iter().find(|g| g.id == id);
    match s.api {
        ApiKey::Metadata => {
            let mut r = MetadataResponse::default();
            for (id, addr) in brokers {
                let (host, port) = addr.rsplit_once(':').unwrap();
                let mut b = MetadataResponseBroker::default();
                b.node_id = BrokerId(*id);
                b.host = sb(host);
                b.port = port.parse().unwrap();
                r.brokers.push(b);
            }
            // Asked for every topic: one topic, `t`, with id [0x11; 16].
            let req: kafka_protocol::messages::MetadataRequest = decode(s);
            if req.topics.is_none() && v >= 10 {
                let mut t =
                    kafka_protocol::messages::metadata_response::MetadataResponseTopic::default();
                t.name = Some(kafka_protocol::messages::TopicName(sb("t")));
                t.topic_id = vec![0x11u8; 16].try_into().unwrap();
                r.topics.push(t);
            }
            body(&r, v)
        }
        ApiKey::ListGroups => {
            let mut r = ListGroupsResponse::default();
            for g in groups.iter().filter(|g| !g.client.is_empty()) {
                let mut l = ListedGroup::default();
                l.group_id = GroupId(sb(g.id));
                l.protocol_type = sb("consumer");
                if v >= 4 {
                    l.group_state = sb("Stable");
                }
                if v >= 5 {
                    l.group_type = sb(if g.kip848 { "consumer" } else { "classic" });
                }
                r.groups.push(l);
            }
            body(&r, v)
        }
        ApiKey::DescribeGroups => {
            let req: DescribeGroupsRequest = decode(s);
            let mut r = DescribeGroupsResponse::default();
            for id in &req.groups {
                let mut d = DescribedGroup::default();
                d.group_id = id.clone();
                match find(id) {
                    Some(g) => {
                        d.group_state = sb("Stable");
                        d.protocol_type = sb("consumer");
                        let mut m = DescribedGroupMember::default();
                        m.member_id = sb(&format!("{}-m1", g.client));
                        m.client_id = sb(g.client);
                        m.client_host = sb(g.host);
                        m.member_assignment = classic_assignment(&g.assigned);
                        d.members.push(m);
                    }
                    None => d.error_code = 16,
                }
                r.groups.push(d);
            }
            body(&r, v)
        }
        ApiKey::ConsumerGroupDescribe => {
            let req: ConsumerGroupDescribeRequest = decode(s);
            let mut r = ConsumerGroupDescribeResponse::default();
            for id in &req.group_ids {
                let mut d = cgd::DescribedGroup::default();
                d.group_id = id.clone();
                match find(id) {
                    Some(g) => {
                        d.group_state = sb("Stable");
                        let mut m = cgd::Member::default();
                        m.member_id = sb("uuid-1");
                        m.client_id = sb(g.client);
                        m.client_host = sb(g.host);
                        let mut tp = TopicPartitions::default();
                        tp.topic_name = TopicName(sb("t"));
                        tp.partitions = g.assigned.clone();
                        m.assignment.topic_partitions.push(tp);
                        d.members.push(m);
                    }
                    None => d.error_code = 16,
                }
                r.groups.push(d);
            }
            body(&r, v)
        }
        ApiKey::OffsetFetch => {
            let req: OffsetFetchRequest = decode(s);
            let mut r = OffsetFetchResponse::default();
            if v >= 8 {
                for rg in &req.groups {
                    let mut g = OffsetFetchResponseGroup::default();
                    g.group_id = rg.group_id.clone();
                    let mut t = OffsetFetchResponseTopics::default();
                    t.name = TopicName(sb("t"));
                    for (p, o) in find(&rg.group_id)
                        .map(|g| g.committed.clone())
                        .unwrap_or_default()
                    {
                        let mut part = OffsetFetchResponsePartitions::default();
                        part.partition_index = p;
                        part.committed_offset = o;
                        t.partitions.push(part);
                    }
                    g.topics.push(t);
                    r.groups.push(g);
                }
            } else {
                let mut t = OffsetFetchResponseTopic::default();
                t.name = TopicName(sb("t"));
                for (p, o) in find(&req.group_id)
                    .map(|g| g.committed.clone())
                    .unwrap_or_default()
                {
                    let mut part = OffsetFetchResponsePartition::default();
                    part.partition_index = p;
                    part.committed_offset = o;
                    t.partitions.push(part);
                }
                r.topics.push(t);
            }
            body(&r, v)
        }
        ApiKey::FindCoordinator => {
            let req: FindCoordinatorRequest = decode(s);
            let (_, addr) = brokers.iter().find(|(n, _)| *n == node).unwrap();
            let (host, port) = addr.rsplit_once(':').unwrap();
            let mut r = FindCoordinatorResponse::default();
            if v >= 4 {
                for key in &req.coordinator_keys {
                    let mut c = FoundCoordinator::default();
                    c.key = key.clone();
                    c.node_id = BrokerId(node);
                    c.host = sb(host);
                    c.port = port.parse().unwrap();
                    r.coordinators.push(c);
                }
            } else {
                r.node_id = BrokerId(node);
                r.host = sb(host);
                r.port = port.parse().unwrap();
            }
            body(&r, v)
        }
        other => panic!("unexpected {other:?}"),
    }
}

pub(super) fn settings(timeout: Duration) -> LookupConfig {
    LookupConfig {
        enabled: true,
        interval: Duration::from_secs(5),
        timeout,
        max_groups: 100,
        bootstrap: None,
    }
}

/// Node 1 (the bootstrap, advertised at `adv1`) and node 2 (`b`, with its own handler).
pub(super) async fn two_brokers(
    adv1: &str,
    b: impl Fn(&Seen) -> Action + Send + Sync + 'static,
) -> (MockBroker, MockBroker) {
    let b = MockBroker::start(all_versions(), b).await;
    let brokers = vec![(1, adv1.to_owned()), (2, b.addr.to_string())];
    let a = MockBroker::start(all_versions(), broker(1, brokers)).await;
    (a, b)
}

/// A node-2 broker answering from the scripts (its own address filled in once bound).
pub(super) async fn node2(adv1: &str) -> MockBroker {
    let cell = Arc::new(std::sync::OnceLock::<String>::new());
    let (adv1, own) = (adv1.to_owned(), cell.clone());
    let groups: Vec<Script> = scripts().into_iter().filter(|g| g.node == 2).collect();
    let b = MockBroker::start(all_versions(), move |s| {
        let brokers = [
            (1, adv1.clone()),
            (2, own.get().cloned().unwrap_or_default()),
        ];
        answer(s, 2, &brokers, &groups)
    })
    .await;
    cell.set(b.addr.to_string()).unwrap();
    b
}
