//! The questions, one pair of functions per API: build the request for a negotiated version,
//! and turn the decoded response into plain data, with the per-group caps applied. No I/O.

use std::collections::BTreeMap;
use std::time::Instant;

use bytes::Bytes;
use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestGroup;
use kafka_protocol::messages::{
    ConsumerGroupDescribeRequest, ConsumerGroupDescribeResponse, DescribeGroupsRequest,
    DescribeGroupsResponse, FindCoordinatorRequest, FindCoordinatorResponse, GroupId,
    ListGroupsRequest, ListGroupsResponse, MetadataRequest, MetadataResponse, OffsetFetchRequest,
    OffsetFetchResponse,
};
use kafka_protocol::protocol::StrBytes;

use super::view::{parse_client_host, Committed, GroupProtocol, MemberInfo, Members};

/// Most members kept per group; more are counted in [`Members::dropped_members`].
pub const MAX_MEMBERS: usize = 1_000;
/// Most assigned partitions kept per group (all members together).
pub const MAX_ASSIGNED: usize = 10_000;
/// Most committed partitions kept per group.
pub const MAX_COMMITTED: usize = 10_000;

/// The oldest Metadata version used: v0 reads an empty topic list as "all topics".
pub(super) const METADATA_FLOOR: i16 = 1;
/// The oldest OffsetFetch version used: v1 cannot ask for "every committed partition".
pub(super) const OFFSET_FETCH_FLOOR: i16 = 2;
/// The first OffsetFetch version that carries several groups.
pub(super) const OFFSET_FETCH_BATCH: i16 = 8;
/// The first FindCoordinator version that carries several keys.
pub(super) const FIND_COORDINATOR_BATCH: i16 = 4;

/// The `protocol_type` of consumer groups (classic groups of other kinds, like Connect's, are
/// left out).
const CONSUMER_PROTOCOL_TYPE: &str = "consumer";

/// Per group: the answer, or the group's error code.
pub(super) type PerGroup<T> = Vec<(String, Result<T, i16>)>;

/// A group as ListGroups names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Listed {
    pub(super) group_id: String,
    pub(super) protocol: GroupProtocol,
    pub(super) state: String,
}

fn sb(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_owned())
}

/// Metadata for the brokers only (no topics).
pub(super) fn metadata_request(version: i16) -> MetadataRequest {
    let mut req = MetadataRequest::default();
    req.topics = Some(Vec::new());
    if version >= 4 {
        req.allow_auto_topic_creation = false;
    }
    req
}

/// The first Metadata version that gives topic ids.
pub(super) const METADATA_TOPIC_IDS: i16 = 10;

/// Metadata for every topic: their ids and names (v10+).
pub(super) fn metadata_all_topics_request(version: i16) -> MetadataRequest {
    let mut req = MetadataRequest::default();
    req.topics = None;
    if version >= 4 {
        req.allow_auto_topic_creation = false;
    }
    req
}

/// Topic id → name, for the topics that have both.
pub(super) fn topic_ids(resp: &MetadataResponse) -> Vec<([u8; 16], String)> {
    resp.topics
        .iter()
        .filter(|t| t.error_code == 0 && !t.topic_id.is_nil())
        .filter_map(|t| Some((*t.topic_id.as_bytes(), t.name.as_ref()?.to_string())))
        .collect()
}

/// Node id → advertised `host:port`.
pub(super) fn brokers(resp: &MetadataResponse) -> Vec<(i32, String)> {
    resp.brokers
        .iter()
        .filter(|b| (1..=65535).contains(&b.port))
        .map(|b| (b.node_id.0, host_port(&b.host, b.port)))
        .collect()
}

/// `host:port`, with an IPv6 literal in brackets.
pub(super) fn host_port(host: &str, port: i32) -> String {
    if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// ListGroups: classic and KIP-848 consumer groups (filtered by the broker from v5).
pub(super) fn list_groups_request(version: i16) -> ListGroupsRequest {
    let mut req = ListGroupsRequest::default();
    if version >= 5 {
        req.types_filter = vec![sb("classic"), sb("consumer")];
    }
    req
}

/// The consumer groups of a ListGroups answer, or its error code.
pub(super) fn listed(resp: &ListGroupsResponse) -> Result<Vec<Listed>, i16> {
    if resp.error_code != 0 {
        return Err(resp.error_code);
    }
    Ok(resp
        .groups
        .iter()
        .filter_map(|g| {
            let protocol = match (&*g.group_type, &*g.protocol_type) {
                ("consumer", _) => GroupProtocol::Consumer,
                // An empty protocol type: a group that only ever committed offsets.
                ("classic" | "", CONSUMER_PROTOCOL_TYPE | "") => GroupProtocol::Classic,
                _ => return None,
            };
            Some(Listed {
                group_id: g.group_id.to_string(),
                protocol,
                state: g.group_state.to_string(),
            })
        })
        .collect())
}

/// DescribeGroups for classic groups.
pub(super) fn describe_groups_request(groups: &[String]) -> DescribeGroupsRequest {
    let mut req = DescribeGroupsRequest::default();
    req.groups = groups.iter().map(|g| GroupId(sb(g))).collect();
    req
}

/// ConsumerGroupDescribe for KIP-848 groups.
pub(super) fn consumer_group_describe_request(groups: &[String]) -> ConsumerGroupDescribeRequest {
    let mut req = ConsumerGroupDescribeRequest::default();
    req.group_ids = groups.iter().map(|g| GroupId(sb(g))).collect();
    req
}

/// Keeps members and their partitions under the caps, counting what is left out.
struct Capped {
    members: Vec<MemberInfo>,
    dropped_members: u32,
    dropped_partitions: u32,
    assigned: usize,
}

impl Capped {
    fn new() -> Capped {
        Capped {
            members: Vec::new(),
            dropped_members: 0,
            dropped_partitions: 0,
            assigned: 0,
        }
    }

    fn push(&mut self, mut m: MemberInfo) {
        if self.members.len() >= MAX_MEMBERS {
            self.dropped_members += 1;
            let parts: usize = m.assignment.iter().map(|(_, p)| p.len()).sum();
            self.dropped_partitions += parts as u32;
            return;
        }
        m.assignment.sort();
        for (_, parts) in &mut m.assignment {
            parts.sort_unstable();
            parts.dedup();
            let room = MAX_ASSIGNED - self.assigned;
            if parts.len() > room {
                self.dropped_partitions += (parts.len() - room) as u32;
                parts.truncate(room);
            }
            self.assigned += parts.len();
        }
        m.assignment.retain(|(_, p)| !p.is_empty());
        self.members.push(m);
    }

    fn finish(self, at: Instant, state: &str) -> Members {
        Members {
            at,
            state: state.to_owned(),
            members: self.members,
            dropped_members: self.dropped_members,
            dropped_partitions: self.dropped_partitions,
        }
    }
}

/// The classic consumer protocol's assignment bytes as topic names and partitions.
fn classic_assignment(bytes: &Bytes) -> Vec<(String, Vec<i32>)> {
    sluice_protocol::decode::consumer_assignment(bytes.clone())
        .unwrap_or_default()
        .into_iter()
        .filter_map(|(t, parts)| t.name.map(|n| (n.to_string(), parts)))
        .collect()
}

/// One described group: its error code, or its members under the caps.
fn described(
    id: &GroupId,
    error: i16,
    state: &str,
    at: Instant,
    members: impl Iterator<Item = MemberInfo>,
) -> (String, Result<Members, i16>) {
    if error != 0 {
        return (id.to_string(), Err(error));
    }
    let mut capped = Capped::new();
    members.for_each(|m| capped.push(m));
    (id.to_string(), Ok(capped.finish(at, state)))
}

/// A member as both describe answers give it.
fn member(
    member_id: &str,
    instance_id: Option<&StrBytes>,
    client_id: &str,
    client_host: &str,
    assignment: Vec<(String, Vec<i32>)>,
) -> MemberInfo {
    MemberInfo {
        member_id: member_id.to_owned(),
        instance_id: instance_id.map(|s| s.to_string()),
        client_id: client_id.to_owned(),
        client_host: parse_client_host(client_host),
        assignment,
    }
}

/// The members of each classic group in a DescribeGroups answer.
pub(super) fn described_classic(resp: &DescribeGroupsResponse, at: Instant) -> PerGroup<Members> {
    resp.groups
        .iter()
        .map(|g| {
            let consumer = matches!(&*g.protocol_type, CONSUMER_PROTOCOL_TYPE | "");
            let members = g.members.iter().map(|m| {
                let assignment = if consumer {
                    classic_assignment(&m.member_assignment)
                } else {
                    Vec::new()
                };
                let instance = m.group_instance_id.as_ref();
                member(
                    &m.member_id,
                    instance,
                    &m.client_id,
                    &m.client_host,
                    assignment,
                )
            });
            described(&g.group_id, g.error_code, &g.group_state, at, members)
        })
        .collect()
}

/// The members of each KIP-848 group in a ConsumerGroupDescribe answer (current assignment,
/// by topic name).
pub(super) fn described_consumer(
    resp: &ConsumerGroupDescribeResponse,
    at: Instant,
) -> PerGroup<Members> {
    resp.groups
        .iter()
        .map(|g| {
            let members = g.members.iter().map(|m| {
                let assignment = m
                    .assignment
                    .topic_partitions
                    .iter()
                    .filter(|t| !t.topic_name.is_empty())
                    .map(|t| (t.topic_name.to_string(), t.partitions.clone()))
                    .collect();
                let instance = m.instance_id.as_ref();
                member(
                    &m.member_id,
                    instance,
                    &m.client_id,
                    &m.client_host,
                    assignment,
                )
            });
            described(&g.group_id, g.error_code, &g.group_state, at, members)
        })
        .collect()
}

/// OffsetFetch of every committed partition: several groups from v8, one before.
pub(super) fn offset_fetch_request(groups: &[String], version: i16) -> OffsetFetchRequest {
    let mut req = OffsetFetchRequest::default();
    if version >= OFFSET_FETCH_BATCH {
        req.topics = Some(Vec::new());
        req.groups = groups
            .iter()
            .map(|g| {
                let mut r = OffsetFetchRequestGroup::default();
                r.group_id = GroupId(sb(g));
                r.topics = None;
                r
            })
            .collect();
    } else {
        req.group_id = GroupId(sb(groups.first().map(String::as_str).unwrap_or("")));
        req.topics = None;
    }
    req
}

/// Committed offsets from one partition list, capped.
fn offsets<'a>(at: Instant, parts: impl Iterator<Item = (&'a str, i32, i64, i16)>) -> Committed {
    let mut offsets = BTreeMap::new();
    let mut dropped = 0u32;
    for (topic, partition, offset, error) in parts {
        if error != 0 || offset < 0 {
            continue;
        }
        if offsets.len() >= MAX_COMMITTED {
            dropped += 1;
            continue;
        }
        offsets.insert((topic.to_owned(), partition), offset);
    }
    Committed {
        at,
        offsets,
        dropped,
    }
}

/// The committed offsets of each group asked, from an OffsetFetch answer of `version`.
pub(super) fn committed(
    resp: &OffsetFetchResponse,
    version: i16,
    asked: &[String],
    at: Instant,
) -> PerGroup<Committed> {
    if version < OFFSET_FETCH_BATCH {
        let id = asked.first().cloned().unwrap_or_default();
        if resp.error_code != 0 {
            return vec![(id, Err(resp.error_code))];
        }
        let parts = resp.topics.iter().flat_map(|t| {
            t.partitions.iter().map(move |p| {
                (
                    &*t.name.0,
                    p.partition_index,
                    p.committed_offset,
                    p.error_code,
                )
            })
        });
        return vec![(id, Ok(offsets(at, parts)))];
    }
    resp.groups
        .iter()
        .map(|g| {
            let id = g.group_id.to_string();
            if g.error_code != 0 {
                return (id, Err(g.error_code));
            }
            let parts = g.topics.iter().flat_map(|t| {
                t.partitions.iter().map(move |p| {
                    (
                        &*t.name.0,
                        p.partition_index,
                        p.committed_offset,
                        p.error_code,
                    )
                })
            });
            (id, Ok(offsets(at, parts)))
        })
        .collect()
}

/// FindCoordinator for groups: several keys from v4, one before.
pub(super) fn find_coordinator_request(keys: &[String], version: i16) -> FindCoordinatorRequest {
    let mut req = FindCoordinatorRequest::default();
    if version >= FIND_COORDINATOR_BATCH {
        req.coordinator_keys = keys.iter().map(|k| sb(k)).collect();
    } else {
        req.key = sb(keys.first().map(String::as_str).unwrap_or(""));
    }
    req
}

/// Each group's coordinator (node id, `host:port`) from a FindCoordinator answer.
pub(super) fn coordinators(
    resp: &FindCoordinatorResponse,
    version: i16,
    asked: &[String],
) -> PerGroup<(i32, String)> {
    if version < FIND_COORDINATOR_BATCH {
        let id = asked.first().cloned().unwrap_or_default();
        let found = if resp.error_code != 0 {
            Err(resp.error_code)
        } else {
            Ok((resp.node_id.0, host_port(&resp.host, resp.port)))
        };
        return vec![(id, found)];
    }
    resp.coordinators
        .iter()
        .map(|c| {
            let found = if c.error_code != 0 {
                Err(c.error_code)
            } else {
                Ok((c.node_id.0, host_port(&c.host, c.port)))
            };
            (c.key.to_string(), found)
        })
        .collect()
}

#[cfg(test)]
#[path = "ask_tests.rs"]
mod tests;
