//! What the lookup is asked ([`Interest`]) and what it publishes ([`GroupsView`]): plain data
//! the observer applies, with when and where each piece was learned.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// What the observer wants to know now. The lookup reads the latest value at the start of
/// each round.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Interest {
    /// Groups whose committed offsets (and members) are wanted every round: the groups this
    /// sidecar sees fetching.
    pub groups: BTreeSet<String>,
    /// Clients seen fetching without a known group: the lookup looks for the group whose
    /// member they are.
    pub clients: Vec<ClientInterest>,
    /// Topics this sidecar sees fetched by id only (Fetch v13+) and cannot name, because no
    /// Metadata response naming them passed through it: the lookup finds their names.
    pub topic_ids: BTreeSet<[u8; 16]>,
}

/// A client fetching without a known group.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct ClientInterest {
    /// The client's host as this sidecar sees it.
    pub host: IpAddr,
    /// Its `client.id`.
    pub client_id: String,
    /// Partitions it fetches (may be empty); used to tell apart members of several groups
    /// that share a `client.id`.
    pub partitions: Vec<(String, i32)>,
}

/// How a group coordinates its members.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum GroupProtocol {
    /// JoinGroup/SyncGroup with the consumer protocol (assignment computed by a member).
    Classic,
    /// KIP-848 (`group.protocol=consumer`): ConsumerGroupHeartbeat, assignment by the broker.
    Consumer,
    /// Not listed by any broker (found through FindCoordinator for its committed offsets).
    Unknown,
}

impl GroupProtocol {
    /// `classic`, `consumer` or `unknown`.
    pub fn as_str(self) -> &'static str {
        match self {
            GroupProtocol::Classic => "classic",
            GroupProtocol::Consumer => "consumer",
            GroupProtocol::Unknown => "unknown",
        }
    }
}

/// The broker coordinating a group, and how the lookup reached it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Coordinator {
    /// Its node id, when known (the fronted broker's id is learned, not configured).
    pub node_id: Option<i32>,
    /// The address the lookup asked: the bootstrap (the upstream by default) for the fronted
    /// broker, else the broker's advertised address (its own sidecar, in a sidecar
    /// deployment).
    pub addr: String,
    /// Whether that is the fronted broker, reached at the bootstrap.
    pub fronted: bool,
}

/// One member of a group, as its coordinator describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberInfo {
    /// The member id the coordinator gave it.
    pub member_id: String,
    /// `group.instance.id` of a static member.
    pub instance_id: Option<String>,
    /// Its `client.id`.
    pub client_id: String,
    /// The host the coordinator sees it connect from; `None` if not an address. Behind a
    /// sidecar this is the sidecar's address (often loopback), not the client's: see
    /// [`GroupsView::host_matches`].
    pub client_host: Option<IpAddr>,
    /// Assigned partitions per topic name, sorted.
    pub assignment: Vec<(String, Vec<i32>)>,
}

/// A group's members at one moment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Members {
    /// When the coordinator's answer arrived.
    pub at: Instant,
    /// The group's state in that answer (`Stable`, `Empty`, `PreparingRebalance`, ...).
    pub state: String,
    /// The members, up to the per-group cap.
    pub members: Vec<MemberInfo>,
    /// Members left out over the cap.
    pub dropped_members: u32,
    /// Assigned partitions left out over the per-group cap.
    pub dropped_partitions: u32,
}

/// A group's committed offsets at one moment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Committed {
    /// When the coordinator's answer arrived.
    pub at: Instant,
    /// Committed offset per (topic, partition); partitions without a commit are absent.
    pub offsets: BTreeMap<(String, i32), i64>,
    /// Partitions left out over the per-group cap.
    pub dropped: u32,
}

/// What the lookup knows of one group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupInfo {
    /// The group id.
    pub group_id: String,
    /// Classic or KIP-848.
    pub protocol: GroupProtocol,
    /// The state its coordinator listed it in (empty if not listed).
    pub state: String,
    /// Its coordinator.
    pub coordinator: Coordinator,
    /// When a broker last listed it (`None`: found through FindCoordinator only).
    pub listed_at: Option<Instant>,
    /// Its members, from the last description (kept across rounds that did not describe it).
    pub members: Option<Members>,
    /// Its committed offsets, from the last fetch (kept across rounds that did not fetch them).
    pub committed: Option<Committed>,
}

/// A broker of the cluster, as Metadata names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerInfo {
    /// Node id.
    pub node_id: i32,
    /// Advertised `host:port`.
    pub advertised: String,
    /// Whether this is the broker this sidecar fronts (reached at the bootstrap, the upstream
    /// by default).
    pub fronted: bool,
}

/// Something that went wrong in a round (also counted in [`LookupTotals::errors`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LookupIssue {
    /// The kind of failure ([`super::LookupError::kind`], or `group_error`).
    pub kind: &'static str,
    /// The broker asked.
    pub broker: String,
    /// The group concerned, for a per-group error.
    pub group: Option<String>,
    /// What happened.
    pub what: String,
}

/// The cost and outcome of one round.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RoundStats {
    /// Wall time of the round.
    pub took: Duration,
    /// Requests sent (ApiVersions on new connections included).
    pub requests: u32,
    /// Request bytes written, frame lengths included.
    pub bytes_sent: u64,
    /// Response bytes read, frame lengths included.
    pub bytes_received: u64,
    /// Connections opened.
    pub connects: u32,
    /// Whether the brokers were asked for their groups this round.
    pub listed: bool,
    /// Groups listed by all brokers together.
    pub groups_listed: u32,
    /// Groups described.
    pub groups_described: u32,
    /// Groups whose committed offsets were fetched.
    pub groups_committed: u32,
    /// Whether every listed group was described (a sweep for clients without a group).
    pub swept: bool,
    /// Requests that failed.
    pub errors: u32,
}

/// Counters since the lookup started.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LookupTotals {
    /// Rounds run.
    pub rounds: u64,
    /// Requests sent.
    pub requests: u64,
    /// Request bytes written.
    pub bytes_sent: u64,
    /// Response bytes read.
    pub bytes_received: u64,
    /// Connections opened.
    pub connects: u64,
    /// Failed requests by [`super::LookupError::kind`], per-group error codes as `group_error`.
    pub errors: BTreeMap<&'static str, u64>,
    /// Groups left out of a round over `lookup.max_groups`, or of the listing over its cap.
    pub groups_over_cap: u64,
    /// Members left out over the per-group cap.
    pub members_dropped: u64,
    /// Partitions (assigned or committed) left out over the per-group caps.
    pub partitions_dropped: u64,
}

/// What one round published.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupsView {
    /// When the round ended.
    pub at: Instant,
    /// The brokers of the cluster.
    pub brokers: Vec<BrokerInfo>,
    /// Every consumer group known, sorted by id, with what was learned of it and when.
    pub groups: Vec<GroupInfo>,
    /// Addresses at which a coordinator sees a sidecar rather than a client: loopback and the
    /// brokers' own addresses (see [`GroupsView::host_matches`]).
    pub sidecar_hosts: BTreeSet<IpAddr>,
    /// This round's cost.
    pub round: RoundStats,
    /// Counters since start.
    pub totals: LookupTotals,
    /// What went wrong this round (at most a few dozen; all are counted in `totals`).
    pub issues: Vec<LookupIssue>,
    /// Names of the topics in [`Interest::topic_ids`] the lookup knows.
    pub topic_names: Vec<([u8; 16], String)>,
}

impl GroupsView {
    /// The group with this id.
    pub fn group(&self, group_id: &str) -> Option<&GroupInfo> {
        self.groups
            .binary_search_by(|g| g.group_id.as_str().cmp(group_id))
            .ok()
            .map(|i| &self.groups[i])
    }

    /// Whether a member whose coordinator saw it at `member_host` can be the client this
    /// sidecar sees at `host` (see [`host_matches`]).
    pub fn host_matches(&self, member_host: Option<IpAddr>, host: IpAddr) -> bool {
        host_matches(&self.sidecar_hosts, member_host, host)
    }

    /// The groups in which `client` can be a member: same `client.id`, a compatible host, and
    /// (when the client's partitions are given and the member has an assignment) at least one
    /// fetched partition assigned to that member. One group: attribute the client to it; more:
    /// ambiguous, leave it unattributed.
    pub fn groups_of(&self, client: &ClientInterest) -> Vec<&GroupInfo> {
        self.groups
            .iter()
            .filter(|g| group_has(&self.sidecar_hosts, g, client))
            .collect()
    }
}

/// Whether a member whose coordinator saw it at `member_host` can be the client a sidecar sees
/// at `host`. Behind sidecars, a coordinator sees its sidecar's address, so a loopback address
/// or one in `sidecar_hosts` (the brokers' own) matches any host; so does an unknown one.
pub fn host_matches(
    sidecar_hosts: &BTreeSet<IpAddr>,
    member_host: Option<IpAddr>,
    host: IpAddr,
) -> bool {
    match member_host {
        None => true,
        Some(h) => h == host || h.is_loopback() || sidecar_hosts.contains(&h),
    }
}

/// Whether `group` has a member that can be `client` (see [`GroupsView::groups_of`]).
pub fn group_has(
    sidecar_hosts: &BTreeSet<IpAddr>,
    group: &GroupInfo,
    client: &ClientInterest,
) -> bool {
    let Some(members) = &group.members else {
        return false;
    };
    members.members.iter().any(|m| {
        m.client_id == client.client_id
            && host_matches(sidecar_hosts, m.client_host, client.host)
            && (client.partitions.is_empty()
                || m.assignment.is_empty()
                || client.partitions.iter().any(|(t, p)| {
                    m.assignment
                        .iter()
                        .any(|(topic, parts)| topic == t && parts.contains(p))
                }))
    })
}

/// Parses a host as Kafka reports it (`InetAddress.toString()`: `/10.0.0.7`,
/// `name/10.0.0.7`, `/0:0:0:0:0:0:0:1`, with an optional `%scope`).
pub fn parse_client_host(s: &str) -> Option<IpAddr> {
    let addr = s.rsplit('/').next().unwrap_or(s);
    let addr = addr.split('%').next().unwrap_or(addr);
    let addr = addr.trim_start_matches('[').trim_end_matches(']');
    addr.parse::<IpAddr>().ok().map(|ip| ip.to_canonical())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_hosts_as_kafka_writes_them() {
        let v4 = IpAddr::from([10, 0, 0, 7]);
        assert_eq!(parse_client_host("/10.0.0.7"), Some(v4));
        assert_eq!(parse_client_host("app-1.example/10.0.0.7"), Some(v4));
        assert_eq!(parse_client_host("10.0.0.7"), Some(v4));
        assert_eq!(
            parse_client_host("/0:0:0:0:0:0:0:1"),
            Some(IpAddr::from(std::net::Ipv6Addr::LOCALHOST))
        );
        assert_eq!(
            parse_client_host("/fe80:0:0:0:0:0:0:1%eth0").map(|i| i.is_ipv6()),
            Some(true)
        );
        assert_eq!(parse_client_host("/::ffff:10.0.0.7"), Some(v4));
        assert_eq!(parse_client_host(""), None);
        assert_eq!(parse_client_host("/"), None);
        assert_eq!(parse_client_host("app-1.example"), None);
    }
}
