//! One lookup round: the brokers (Metadata), the groups each broker coordinates (ListGroups),
//! members of the groups that matter now (DescribeGroups / ConsumerGroupDescribe), and
//! committed offsets of the groups wanted (OffsetFetch, after FindCoordinator for a wanted
//! group no broker listed).
//!
//! What is described each round: the groups in [`Interest::groups`]; and every listed group
//! (a sweep) when a client in [`Interest::clients`] is due — new, or unmatched for long enough
//! by its own back-off, so a client that belongs to no group costs a sweep a minute, not one
//! per round.
//!
//! When the listings are asked: every [`LIST_EVERY`] rounds, and in any round that needs them
//! — a sweep, a wanted group not known yet, or an error in the round before (a coordinator may
//! have moved). In between, a round costs Metadata plus the questions about the groups of
//! interest, whatever the number of groups in the cluster.
//!
//! # Layout
//! - this file: the round's order, the brokers and the fronted one, the listings, the view.
//! - `members.rs`: the sweep and its back-off; DescribeGroups / ConsumerGroupDescribe.
//! - `offsets.rs`: OffsetFetch, and FindCoordinator for wanted groups no broker listed.

mod members;
mod offsets;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use kafka_protocol::messages::{ListGroupsRequest, MetadataRequest};
use tracing::debug;

use super::ask::{self, Listed};
use super::error::LookupError;
use super::pool::Pool;
use super::view::{
    BrokerInfo, Coordinator, GroupInfo, GroupsView, Interest, LookupIssue, LookupTotals, RoundStats,
};

/// Groups per DescribeGroups / ConsumerGroupDescribe / OffsetFetch / FindCoordinator request.
pub(super) const BATCH: usize = 32;
/// Most groups kept from the listings; more are counted in `groups_over_cap`.
pub(super) const MAX_LISTED: usize = 50_000;
/// Most clients of an [`Interest`] considered.
pub(super) const MAX_INTEREST_CLIENTS: usize = 10_000;
/// Rounds between two listings when nothing asks for one sooner.
pub(super) const LIST_EVERY: u64 = 6;
/// Rounds between two Metadata requests for every topic (asked only while a topic id of the
/// interest has no name).
pub(super) const TOPICS_EVERY: u64 = 6;
/// Most topic names kept.
const MAX_TOPIC_NAMES: usize = 100_000;
/// Most issues reported per round (all are counted).
const MAX_ISSUES: usize = 32;
/// A client left unmatched by this many sweeps in a row waits the longest between sweeps.
const SWEEP_BACKOFF_ROUNDS: [u64; 5] = [1, 2, 4, 8, 12];

/// A client of the interest, as the sweep back-off tracks it.
type ClientKey = (IpAddr, String);

/// When a client may trigger the next sweep.
#[derive(Debug, Clone)]
struct SweepState {
    misses: usize,
    next_round: u64,
    /// The partitions the client fetched when it was last swept for: a client fetching
    /// others is swept for again at once.
    partitions: Vec<(String, i32)>,
}

/// The lookup's state across rounds.
#[derive(Debug)]
pub(super) struct Rounds {
    pub(super) bootstrap: String,
    pub(super) listen: Option<SocketAddr>,
    pub(super) max_groups: usize,
    pub(super) timeout: Duration,
    pub(super) pool: Pool,
    /// The node id of the broker reached at `bootstrap`, once known.
    self_node: Option<i32>,
    brokers: BTreeMap<i32, String>,
    resolved: HashMap<String, Vec<IpAddr>>,
    groups: BTreeMap<String, GroupInfo>,
    sweeps: HashMap<ClientKey, SweepState>,
    round_no: u64,
    /// The round from which the listings are due again.
    next_listing: u64,
    /// Whether the last round met an error (the next one lists again).
    troubled: bool,
    totals: LookupTotals,
    /// Topic id → name, from Metadata for every topic.
    topic_names: HashMap<[u8; 16], String>,
    /// The round from which every topic may be asked about again.
    next_topics: u64,
    /// The ids that had no name when every topic was last asked about.
    topics_asked: BTreeSet<[u8; 16]>,
}

/// What one round has cost and met so far.
#[derive(Debug, Default)]
struct Round {
    stats: RoundStats,
    issues: Vec<LookupIssue>,
    errors: BTreeMap<&'static str, u64>,
}

impl Round {
    fn fail(&mut self, err: &LookupError, group: Option<&str>) {
        debug!(error = %err, side = %err.side(), group, "group lookup request failed");
        self.note(err.kind(), broker_of(err), group, err.to_string());
    }

    fn group_error(&mut self, broker: &str, api: &str, group: &str, code: i16) {
        debug!(
            broker,
            group, code, api, "group lookup: error code for a group"
        );
        let what = format!("{api}: error code {code}");
        self.note("group_error", broker.to_owned(), Some(group), what);
    }

    fn note(&mut self, kind: &'static str, broker: String, group: Option<&str>, what: String) {
        self.stats.errors += 1;
        *self.errors.entry(kind).or_default() += 1;
        if self.issues.len() < MAX_ISSUES {
            self.issues.push(LookupIssue {
                kind,
                broker,
                group: group.map(str::to_owned),
                what,
            });
        }
    }
}

/// The broker address an error names.
fn broker_of(err: &LookupError) -> String {
    match err {
        LookupError::Connect { addr, .. }
        | LookupError::Timeout { addr, .. }
        | LookupError::Io { addr, .. }
        | LookupError::FrameSize { addr, .. }
        | LookupError::Correlation { addr, .. }
        | LookupError::Malformed { addr, .. }
        | LookupError::Unsupported { addr, .. }
        | LookupError::ErrorCode { addr, .. }
        | LookupError::BackingOff { addr, .. } => addr.clone(),
        LookupError::Encode { .. } => String::new(),
    }
}

impl Rounds {
    /// A lookup that has asked nothing yet.
    pub(super) fn new(
        bootstrap: String,
        listen: Option<SocketAddr>,
        max_groups: usize,
        timeout: Duration,
        interval: Duration,
    ) -> Rounds {
        Rounds {
            bootstrap,
            listen,
            max_groups,
            timeout,
            pool: Pool::new(timeout, interval),
            self_node: None,
            brokers: BTreeMap::new(),
            resolved: HashMap::new(),
            groups: BTreeMap::new(),
            sweeps: HashMap::new(),
            round_no: 0,
            next_listing: 0,
            troubled: false,
            totals: LookupTotals::default(),
            topic_names: HashMap::new(),
            next_topics: 0,
            topics_asked: BTreeSet::new(),
        }
    }

    /// Runs one round and returns what is known after it.
    pub(super) async fn round(&mut self, interest: &Interest) -> GroupsView {
        let started = Instant::now();
        self.round_no += 1;
        self.pool.start_round(self.round_no);
        let mut r = Round::default();
        if self.refresh_brokers(&mut r).await {
            let due = self.due_clients(interest);
            let sweep = !due.is_empty();
            let unknown = interest.groups.iter().any(|g| !self.groups.contains_key(g));
            let mut failed = BTreeSet::new();
            if sweep || unknown || self.troubled || self.round_no >= self.next_listing {
                self.next_listing = self.round_no + LIST_EVERY;
                failed = self.list_groups(&mut r, interest).await;
                r.stats.listed = true;
            }
            self.describe(&mut r, interest, sweep).await;
            let matched = self.after_sweep(&due);
            let mut wanted: BTreeSet<String> = interest.groups.clone();
            wanted.extend(matched);
            self.fetch_committed(&mut r, wanted, &failed).await;
            r.stats.swept = sweep;
            self.name_topics(&mut r, interest).await;
        }
        r.stats.took = started.elapsed();
        self.troubled = r.stats.errors > 0;
        let names = interest
            .topic_ids
            .iter()
            .filter_map(|id| Some((*id, self.topic_names.get(id)?.clone())))
            .collect();
        let mut view = self.view(r);
        view.topic_names = names;
        view
    }

    /// Metadata for every topic, from the bootstrap, when a topic id of the interest has no
    /// name: at once for an id not asked about before, else at most every [`TOPICS_EVERY`]
    /// rounds (an id that stays unnamed: a topic deleted meanwhile).
    async fn name_topics(&mut self, r: &mut Round, interest: &Interest) {
        let unnamed: BTreeSet<[u8; 16]> = interest
            .topic_ids
            .iter()
            .filter(|id| !self.topic_names.contains_key(*id))
            .copied()
            .collect();
        let fresh = unnamed.iter().any(|id| !self.topics_asked.contains(id));
        if unnamed.is_empty() || (!fresh && self.round_no < self.next_topics) {
            return;
        }
        self.next_topics = self.round_no + TOPICS_EVERY;
        self.topics_asked = unnamed;
        let boot = self.bootstrap.clone();
        let asked = self
            .pool
            .ask::<MetadataRequest, _>(
                &boot,
                ask::METADATA_TOPIC_IDS,
                ask::metadata_all_topics_request,
                &mut r.stats,
            )
            .await;
        match asked {
            Ok((resp, _)) => {
                for (id, name) in ask::topic_ids(&resp) {
                    if self.topic_names.len() < MAX_TOPIC_NAMES
                        || self.topic_names.contains_key(&id)
                    {
                        self.topic_names.insert(id, name);
                    }
                }
            }
            Err(e) => r.fail(&e, None),
        }
    }

    /// Metadata from the bootstrap; `false` if it failed (nothing else is asked then).
    async fn refresh_brokers(&mut self, r: &mut Round) -> bool {
        let boot = self.bootstrap.clone();
        let asked = self
            .pool
            .ask::<MetadataRequest, _>(
                &boot,
                ask::METADATA_FLOOR,
                ask::metadata_request,
                &mut r.stats,
            )
            .await;
        let resp = match asked {
            Ok((resp, _)) => resp,
            Err(e) => {
                r.fail(&e, None);
                return false;
            }
        };
        self.brokers = ask::brokers(&resp).into_iter().collect();
        if self
            .self_node
            .is_some_and(|n| !self.brokers.contains_key(&n))
        {
            self.self_node = None;
        }
        let known: BTreeSet<String> = self.brokers.values().cloned().collect();
        self.resolved.retain(|a, _| known.contains(a));
        let boot = self.bootstrap.clone();
        self.pool.retain(|a| a == boot || known.contains(a));
        self.find_self_by_address().await;
        true
    }

    /// The bootstrap's node: the only broker, or the one advertised at this sidecar's own
    /// listen address. Otherwise it is learned from the listings (see `list_groups`).
    async fn find_self_by_address(&mut self) {
        if self.self_node.is_some() {
            return;
        }
        if self.brokers.len() == 1 {
            self.self_node = self.brokers.keys().next().copied();
            return;
        }
        let Some(listen) = self.listen else {
            return;
        };
        let candidates: Vec<(i32, String)> = self
            .brokers
            .iter()
            .filter(|(_, a)| a.rsplit(':').next() == Some(&listen.port().to_string()))
            .map(|(n, a)| (*n, a.clone()))
            .collect();
        for (node, addr) in candidates {
            let ips = self.resolve(&addr).await;
            let own = ips
                .iter()
                .any(|ip| *ip == listen.ip() || (listen.ip().is_unspecified() && is_local(*ip)));
            if own {
                self.self_node = Some(node);
                return;
            }
        }
    }

    /// The addresses `host:port` resolves to (cached per address).
    async fn resolve(&mut self, addr: &str) -> Vec<IpAddr> {
        if let Some(ips) = self.resolved.get(addr) {
            return ips.clone();
        }
        let found = tokio::time::timeout(self.timeout, tokio::net::lookup_host(addr)).await;
        let ips: Vec<IpAddr> = match found {
            Ok(Ok(addrs)) => addrs.map(|a| a.ip().to_canonical()).collect(),
            _ => Vec::new(),
        };
        self.resolved.insert(addr.to_owned(), ips.clone());
        ips
    }

    /// The coordinator entry for a node reached at `addr`.
    fn coordinator(&self, node: Option<i32>, addr: &str) -> Coordinator {
        Coordinator {
            node_id: node,
            addr: addr.to_owned(),
            fronted: addr == self.bootstrap,
        }
    }

    /// ListGroups on the bootstrap and on every other broker; updates the known groups.
    /// Returns the addresses whose listing failed (their groups are kept as they were).
    async fn list_groups(&mut self, r: &mut Round, interest: &Interest) -> BTreeSet<String> {
        let mut failed = BTreeSet::new();
        let mut listed: BTreeMap<String, (Listed, Coordinator)> = BTreeMap::new();
        let boot = self.bootstrap.clone();
        let boot_ids: BTreeSet<String> = match self.list_one(&boot, r).await {
            Some(groups) => {
                let coord = self.coordinator(self.self_node, &boot);
                groups
                    .into_iter()
                    .map(|l| {
                        let id = l.group_id.clone();
                        listed.insert(id.clone(), (l, coord.clone()));
                        id
                    })
                    .collect()
            }
            None => {
                failed.insert(boot.clone());
                BTreeSet::new()
            }
        };
        let others: Vec<(i32, String)> = self
            .brokers
            .iter()
            .filter(|(n, _)| Some(**n) != self.self_node)
            .map(|(n, a)| (*n, a.clone()))
            .collect();
        for (node, addr) in others {
            let Some(groups) = self.list_one(&addr, r).await else {
                failed.insert(addr);
                continue;
            };
            // A group has one coordinator: a broker listing a group the bootstrap listed is the
            // bootstrap's own broker, reached through its advertised address.
            if self.self_node.is_none() && groups.iter().any(|l| boot_ids.contains(&l.group_id)) {
                self.self_node = Some(node);
                self.pool.close(&addr);
                for (_, coord) in listed.values_mut().filter(|(_, c)| c.fronted) {
                    coord.node_id = Some(node);
                }
                continue;
            }
            let coord = self.coordinator(Some(node), &addr);
            for l in groups {
                listed
                    .entry(l.group_id.clone())
                    .or_insert_with(|| (l, coord.clone()));
            }
        }
        r.stats.groups_listed = listed.len() as u32;
        self.apply_listing(listed, &failed, interest);
        failed
    }

    /// One broker's consumer groups, `None` if the listing failed.
    async fn list_one(&mut self, addr: &str, r: &mut Round) -> Option<Vec<Listed>> {
        let asked = self
            .pool
            .ask::<ListGroupsRequest, _>(addr, 0, ask::list_groups_request, &mut r.stats)
            .await;
        match asked {
            Ok((resp, _)) => match ask::listed(&resp) {
                Ok(groups) => Some(groups),
                Err(code) => {
                    let api = "ListGroups";
                    let e = LookupError::ErrorCode {
                        addr: addr.to_owned(),
                        api,
                        code,
                    };
                    r.fail(&e, None);
                    None
                }
            },
            Err(e) => {
                r.fail(&e, None);
                None
            }
        }
    }

    /// The known groups after a listing: those listed (with what was learned of them
    /// before), those of brokers whose listing failed, and wanted groups found earlier
    /// through FindCoordinator.
    fn apply_listing(
        &mut self,
        listed: BTreeMap<String, (Listed, Coordinator)>,
        failed: &BTreeSet<String>,
        interest: &Interest,
    ) {
        let now = Instant::now();
        let mut old = std::mem::take(&mut self.groups);
        let over = listed.len().saturating_sub(MAX_LISTED);
        self.totals.groups_over_cap += over as u64;
        for (id, (l, coord)) in listed.into_iter().take(MAX_LISTED) {
            let mut g = old.remove(&id).unwrap_or_else(|| GroupInfo {
                group_id: id.clone(),
                protocol: l.protocol,
                state: String::new(),
                coordinator: coord.clone(),
                listed_at: None,
                members: None,
                committed: None,
            });
            g.protocol = l.protocol;
            g.state = l.state;
            g.coordinator = coord;
            g.listed_at = Some(now);
            self.groups.insert(id, g);
        }
        for (id, g) in old {
            let keep = failed.contains(&g.coordinator.addr)
                || (g.listed_at.is_none() && interest.groups.contains(&id));
            if keep && self.groups.len() < MAX_LISTED {
                self.groups.insert(id, g);
            }
        }
    }

    /// Loopback, the bootstrap's and the brokers' addresses: where a coordinator sees a
    /// sidecar rather than a client.
    fn sidecar_hosts(&self) -> BTreeSet<IpAddr> {
        let mut hosts: BTreeSet<IpAddr> = self.resolved.values().flatten().copied().collect();
        for addr in self.brokers.values().chain([&self.bootstrap]) {
            if let Ok(sa) = addr.parse::<SocketAddr>() {
                hosts.insert(sa.ip().to_canonical());
            }
        }
        hosts
    }

    /// The view after a round; folds the round into the totals.
    fn view(&mut self, r: Round) -> GroupsView {
        let t = &mut self.totals;
        t.rounds += 1;
        t.requests += u64::from(r.stats.requests);
        t.bytes_sent += r.stats.bytes_sent;
        t.bytes_received += r.stats.bytes_received;
        t.connects += u64::from(r.stats.connects);
        for (kind, n) in r.errors {
            *t.errors.entry(kind).or_default() += n;
        }
        debug!(
            requests = r.stats.requests,
            bytes_sent = r.stats.bytes_sent,
            bytes_received = r.stats.bytes_received,
            groups = self.groups.len(),
            open = self.pool.open_count(),
            took_ms = r.stats.took.as_millis() as u64,
            "group lookup round"
        );
        GroupsView {
            at: Instant::now(),
            brokers: self
                .brokers
                .iter()
                .map(|(n, a)| BrokerInfo {
                    node_id: *n,
                    advertised: a.clone(),
                    fronted: Some(*n) == self.self_node,
                })
                .collect(),
            groups: self.groups.values().cloned().collect(),
            sidecar_hosts: self.sidecar_hosts(),
            round: r.stats,
            totals: self.totals.clone(),
            issues: r.issues,
            topic_names: Vec::new(),
        }
    }
}

/// Whether `ip` is an address of this host (loopback, or one a socket can bind to).
fn is_local(ip: IpAddr) -> bool {
    ip.is_loopback() || std::net::UdpSocket::bind(SocketAddr::new(ip, 0)).is_ok()
}
