//! What the observer knows: per connection, per client key (client host + `client.id`), per
//! group, per topic and partition, and per (client key, topic, partition) fetch track. Every
//! map is capped; idle entries are evicted and counted.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use sluice_protocol::event::{FetchPartitionDelivered, TopicRef};

/// A client: its host and its `client.id` ("" when it sends none).
pub type ClientKey = (IpAddr, Arc<str>);

/// A member's assignment: topic → partitions.
pub type Assigned = Vec<(Arc<str>, Vec<i32>)>;

/// A topic partition, by name.
pub type TopicPartition = (Arc<str>, i32);

/// A fetch track: a client key's fetching of one topic partition.
pub type TrackKey = (ClientKey, Arc<str>, i32);

/// Topic ids whose `id:<hex>` label is kept for reuse.
const MAX_ID_LABELS: usize = 100_000;

/// The name to file a topic under: its name, or `id:<hex>` until the name is known.
pub fn topic_name(t: &TopicRef) -> Arc<str> {
    match (&t.name, t.id) {
        (Some(n), _) => n.clone(),
        (None, Some(id)) => id_label(id),
        (None, None) => Arc::from("?"),
    }
}

/// The label of a topic known only by id, made once (this runs per delivered partition).
fn id_label(id: sluice_protocol::event::TopicId) -> Arc<str> {
    static LABELS: std::sync::OnceLock<
        dashmap::DashMap<sluice_protocol::event::TopicId, Arc<str>>,
    > = std::sync::OnceLock::new();
    let labels = LABELS.get_or_init(dashmap::DashMap::new);
    if let Some(l) = labels.get(&id) {
        return l.clone();
    }
    let label: Arc<str> = Arc::from(format!("id:{id}"));
    if labels.len() < MAX_ID_LABELS {
        labels.insert(id, label.clone());
    }
    label
}

/// One proxied connection.
#[derive(Debug, Clone)]
pub struct Conn {
    /// Client address and port.
    pub client_addr: SocketAddr,
    /// When it was opened.
    pub opened: Instant,
    /// Last frame seen.
    pub last_activity: Instant,
    /// `client.id` from its request headers.
    pub client_id: Option<Arc<str>>,
    /// Client software name and version (ApiVersions v3+).
    pub software: Option<(String, String)>,
    /// SASL principal, where visible.
    pub principal: Option<String>,
    /// Requests and bytes by API key and version.
    pub api: BTreeMap<(i16, i16), ApiCount>,
    /// Bytes of request frames (client → broker).
    pub bytes_in: u64,
    /// Bytes of response frames (broker → client).
    pub bytes_out: u64,
    /// A follower broker's replica fetches, not a consumer.
    pub replica: bool,
    /// Groups seen in this connection's coordinator traffic.
    pub groups: BTreeSet<Arc<str>>,
    /// Group of the last SyncGroup / ConsumerGroupHeartbeat request (for its response).
    pub pending_group: Option<(Arc<str>, String)>,
}

impl Conn {
    /// A new connection.
    pub fn new(client_addr: SocketAddr, now: Instant) -> Conn {
        Conn {
            client_addr,
            opened: now,
            last_activity: now,
            client_id: None,
            software: None,
            principal: None,
            api: BTreeMap::new(),
            bytes_in: 0,
            bytes_out: 0,
            replica: false,
            groups: BTreeSet::new(),
            pending_group: None,
        }
    }

    /// Its client key.
    pub fn key(&self) -> ClientKey {
        (
            self.client_addr.ip(),
            self.client_id.clone().unwrap_or_else(|| Arc::from("")),
        )
    }
}

/// Requests and bytes of one API key and version.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ApiCount {
    /// Request frames.
    pub requests: u64,
    /// Request bytes (client → broker).
    pub bytes_in: u64,
    /// Response bytes (broker → client).
    pub bytes_out: u64,
}

impl ApiCount {
    /// Adds `other` to this count.
    pub fn add(&mut self, other: &ApiCount) {
        self.requests += other.requests;
        self.bytes_in += other.bytes_in;
        self.bytes_out += other.bytes_out;
    }
}

/// How a client key was tied to a group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Attribution {
    /// Its own coordinator traffic (JoinGroup, OffsetCommit, …) named the group.
    Coordinator,
    /// The Java default `client.id` `consumer-<group>-<n>` names it.
    ClientIdPattern,
}

impl Attribution {
    /// As shown in findings and the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Attribution::Coordinator => "coordinator traffic",
            Attribution::ClientIdPattern => "java default client.id",
        }
    }
}

/// A client key's totals.
#[derive(Debug, Clone)]
pub struct Client {
    /// Connections open now.
    pub open: u64,
    /// Connections opened in all.
    pub opened: u64,
    /// Connections closed in all.
    pub closed: u64,
    /// Open times within the window.
    pub recent_opens: VecDeque<Instant>,
    /// `(closed at, lifetime)` within the window.
    pub recent_closes: VecDeque<(Instant, Duration)>,
    /// Client software.
    pub software: Option<(String, String)>,
    /// Bytes fetched per topic (consumer fetches).
    pub fetched: BTreeMap<Arc<str>, u64>,
    /// Bytes produced per topic.
    pub produced: BTreeMap<Arc<str>, u64>,
    /// Fetch requests.
    pub fetch_requests: u64,
    /// Requests and bytes by API key and version, of its closed connections (open ones
    /// keep their own counts until they close).
    pub api: BTreeMap<(i16, i16), ApiCount>,
    /// Last activity.
    pub last_seen: Instant,
}

impl Client {
    fn new(now: Instant) -> Client {
        Client {
            open: 0,
            opened: 0,
            closed: 0,
            recent_opens: VecDeque::new(),
            recent_closes: VecDeque::new(),
            software: None,
            fetched: BTreeMap::new(),
            produced: BTreeMap::new(),
            fetch_requests: 0,
            api: BTreeMap::new(),
            last_seen: now,
        }
    }
}

/// A committed offset and when it last moved forward.
#[derive(Debug, Clone, Copy)]
pub struct Committed {
    /// The offset.
    pub offset: i64,
    /// Last commit seen.
    pub at: Instant,
    /// Last time it was seen to move forward (`None`: not since Sluice first saw it).
    pub advanced: Option<Instant>,
    /// Offsets per second over its last advance.
    pub advance_per_sec: f64,
}

/// A consumer group.
#[derive(Debug, Clone)]
pub struct Group {
    /// Generation last seen.
    pub generation: i32,
    /// Member id → (client key, assignment).
    pub members: BTreeMap<String, (ClientKey, Assigned)>,
    /// When each new generation was seen, within the rebalance window.
    pub joins: VecDeque<Instant>,
    /// Rebalances (JoinGroup requests) in all.
    pub rebalances: u64,
    /// Committed offset per (topic, partition).
    pub committed: BTreeMap<(Arc<str>, i32), Committed>,
    /// Client keys tied to the group, and how.
    pub clients: BTreeMap<ClientKey, Attribution>,
    /// Last activity.
    pub last_seen: Instant,
}

impl Group {
    fn new(now: Instant) -> Group {
        Group {
            generation: -1,
            members: BTreeMap::new(),
            joins: VecDeque::new(),
            rebalances: 0,
            committed: BTreeMap::new(),
            clients: BTreeMap::new(),
            last_seen: now,
        }
    }
}

/// A topic's totals.
#[derive(Debug, Clone, Default)]
pub struct Topic {
    /// Bytes produced into it.
    pub bytes_in: u64,
    /// Bytes consumers fetched from it.
    pub bytes_out: u64,
    /// Of which delivered for the first time to that client.
    pub unique_out: u64,
    /// Bytes follower brokers fetched.
    pub replica_out: u64,
    /// Per partition: end of the log (the high watermark the broker reported in Fetch
    /// responses) and the highest offset delivered to a consumer.
    pub partitions: BTreeMap<i32, (i64, i64)>,
    /// Groups seen fetching it within the window (refreshed each tick).
    pub groups: BTreeSet<Arc<str>>,
    /// Last produce or fetch seen (idle topics are evicted like idle clients).
    pub last_seen: Option<Instant>,
}

/// One client key's fetching of one partition.
#[derive(Debug, Clone)]
pub struct FetchTrack {
    /// End (last offset + 1) of everything delivered so far, to any connection of the key.
    pub delivered_end: i64,
    /// The same per connection (client host:port), with the connection's last fetch offset,
    /// for the last [`CONN_ENDS`] connections. Rewinds and re-deliveries are judged per
    /// connection: consumers of different groups that share a `client.id` on one host
    /// (librdkafka's default `rdkafka`) read the same offsets on their own connections, which
    /// is no loop.
    pub conn_ends: Vec<ConnEnd>,
    /// Last fetch offset requested.
    pub fetch_offset: i64,
    /// `(time, offset)` of fetches that went back below what their connection was delivered
    /// (and not beyond that connection's previous fetch), within the window.
    pub rewinds: VecDeque<(Instant, i64)>,
    /// Record bytes delivered in all.
    pub bytes: u64,
    /// Of which delivered again.
    pub redelivered: u64,
    /// Last host:port that fetched it.
    pub last_addr: SocketAddr,
    /// Last activity.
    pub last_seen: Instant,
    /// `(tick time, bytes, redelivered)` samples within the window, taken by the detectors.
    pub history: VecDeque<(Instant, u64, u64)>,
}

/// One connection's fetching of a partition (see [`FetchTrack::conn_ends`]).
#[derive(Debug, Clone, Copy)]
pub struct ConnEnd {
    /// The client's host:port.
    pub addr: SocketAddr,
    /// End (last offset + 1) of what was delivered to it (-1: nothing yet).
    pub end: i64,
    /// The offset it last fetched from (-1: none yet).
    pub fetched: i64,
}

/// Connections whose delivered end a fetch track keeps; beyond, the oldest is forgotten (its
/// next fetch then counts as a first one: a loop can be missed, none is invented).
pub const CONN_ENDS: usize = 8;

impl FetchTrack {
    /// The connection from `addr`, remembered from now on (forgetting the oldest beyond
    /// [`CONN_ENDS`]).
    fn conn(&mut self, addr: SocketAddr) -> &mut ConnEnd {
        let i = match self.conn_ends.iter().position(|c| c.addr == addr) {
            Some(i) => i,
            None => {
                if self.conn_ends.len() >= CONN_ENDS {
                    self.conn_ends.remove(0);
                }
                self.conn_ends.push(ConnEnd {
                    addr,
                    end: -1,
                    fetched: -1,
                });
                self.conn_ends.len() - 1
            }
        };
        &mut self.conn_ends[i]
    }

    /// Bytes and re-delivered bytes within the window, and the span they cover.
    pub fn window(&self) -> (u64, u64, Duration) {
        match (self.history.front(), self.history.back()) {
            (Some(a), Some(b)) => (b.1 - a.1, b.2 - a.2, b.0.duration_since(a.0)),
            _ => (0, 0, Duration::ZERO),
        }
    }

    /// Bytes out ÷ bytes delivered for the first time, over the track's life.
    pub fn amplification(&self) -> f64 {
        let unique = self.bytes.saturating_sub(self.redelivered).max(1);
        self.bytes as f64 / unique as f64
    }
}

/// The model's maps: every Fetch round trip looks up its client, topic and fetch track, so
/// they hash with foldhash (seeded per process) rather than SipHash. Their sizes are capped
/// (`max_clients`, `max_groups`, `max_partitions`).
pub type FastMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

/// Everything aggregated (behind one lock; per-frame counters live in the connection map).
#[derive(Debug, Default)]
pub struct Model {
    /// Client keys.
    pub clients: FastMap<ClientKey, Client>,
    /// Groups.
    pub groups: FastMap<Arc<str>, Group>,
    /// Topics.
    pub topics: FastMap<Arc<str>, Topic>,
    /// Fetch tracks per (client key, topic, partition).
    pub fetches: FastMap<TrackKey, FetchTrack>,
    /// Entries evicted for idleness or caps.
    pub evicted: u64,
    /// Entries refused because a cap was reached.
    pub refused: u64,
}

/// The entry for `key`, made by `make` if the map holds fewer than `cap` entries (else the
/// refusal is counted). One hash lookup either way.
fn entry_within<'a, K: std::hash::Hash + Eq, V>(
    map: &'a mut FastMap<K, V>,
    refused: &mut u64,
    key: K,
    cap: usize,
    make: impl FnOnce() -> V,
) -> Option<&'a mut V> {
    use std::collections::hash_map::Entry;
    let full = map.len() >= cap;
    match map.entry(key) {
        Entry::Occupied(e) => Some(e.into_mut()),
        Entry::Vacant(_) if full => {
            *refused += 1;
            None
        }
        Entry::Vacant(e) => Some(e.insert(make())),
    }
}

fn prune<T>(q: &mut VecDeque<T>, keep: impl Fn(&T) -> bool) {
    while q.front().is_some_and(|x| !keep(x)) {
        q.pop_front();
    }
}

impl Model {
    /// The client entry for `key`, created if there is room.
    pub fn client(&mut self, key: &ClientKey, now: Instant, cap: usize) -> Option<&mut Client> {
        let c = entry_within(
            &mut self.clients,
            &mut self.refused,
            key.clone(),
            cap,
            || Client::new(now),
        )?;
        c.last_seen = now;
        Some(c)
    }

    /// The topic entry for `name`, created if there is room.
    pub fn topic(&mut self, name: Arc<str>, now: Instant, cap: usize) -> Option<&mut Topic> {
        let t = entry_within(
            &mut self.topics,
            &mut self.refused,
            name,
            cap,
            Topic::default,
        )?;
        t.last_seen = Some(now);
        Some(t)
    }

    /// The group entry for `id`, created if there is room.
    pub fn group(&mut self, id: &str, now: Instant, cap: usize) -> Option<&mut Group> {
        if !self.groups.contains_key(id) {
            if self.groups.len() >= cap {
                self.refused += 1;
                return None;
            }
            self.groups.insert(Arc::from(id), Group::new(now));
        }
        let g = self.groups.get_mut(id)?;
        g.last_seen = now;
        Some(g)
    }

    /// Records that `key` belongs to `group`.
    pub fn attribute(
        &mut self,
        key: &ClientKey,
        group: &str,
        how: Attribution,
        now: Instant,
        cap: usize,
    ) {
        if let Some(g) = self.group(group, now, cap) {
            let e = g.clients.entry(key.clone()).or_insert(how);
            *e = (*e).min(how);
        }
    }

    /// The group of a client key and how it was found: its own coordinator traffic when that
    /// names one group, else the Java default `client.id`. `None` when several groups share
    /// the client key (a `client.id` reused across groups). Walks every group: the tests'
    /// reference answer for [`GroupIndex::group_of`], which the code uses.
    #[cfg(test)]
    pub fn group_of(&self, key: &ClientKey) -> Option<(Arc<str>, Attribution)> {
        let mut found = self
            .groups
            .iter()
            .filter_map(|(name, g)| g.clients.get(key).map(|how| (name.clone(), *how)));
        match (found.next(), found.next()) {
            (Some(one), None) => Some(one),
            (Some(_), Some(_)) => None,
            (None, _) => {
                java_default_group(&key.1).map(|g| (Arc::from(g), Attribution::ClientIdPattern))
            }
        }
    }

    /// The group consuming `topic`-`partition` through client key `key`: the group one of
    /// whose members with this client key is assigned that partition (SyncGroup or
    /// ConsumerGroupHeartbeat), else `group_of`. The tests' reference answer for
    /// [`GroupIndex::group_for`].
    #[cfg(test)]
    pub fn group_for(
        &self,
        key: &ClientKey,
        topic: &str,
        partition: i32,
    ) -> Option<(Arc<str>, Attribution)> {
        let assigned = self
            .groups
            .iter()
            .filter(|(_, g)| {
                g.members.values().any(|(k, parts)| {
                    k == key
                        && parts
                            .iter()
                            .any(|(t, ps)| &**t == topic && ps.contains(&partition))
                })
            })
            .max_by_key(|(_, g)| g.last_seen)
            .map(|(name, _)| (name.clone(), Attribution::Coordinator));
        assigned.or_else(|| self.group_of(key))
    }

    /// A consumer fetch request for one partition.
    pub fn on_fetch_offset(
        &mut self,
        key: &ClientKey,
        addr: SocketAddr,
        (topic, partition): TopicPartition,
        offset: i64,
        now: Instant,
        cap: usize,
    ) {
        let Some(t) = self.track(key, topic, partition, addr, now, cap) else {
            return;
        };
        // A rewind goes back (or stays): a fetch below what the connection was served, not
        // beyond its own last fetch (a client fetching ahead of what it consumed, as
        // librdkafka does, follows a rewind with fetches that are also below that, but only
        // the one it went back to is where it returns).
        let c = t.conn(addr);
        let rewind = offset < c.end && offset <= c.fetched;
        c.fetched = offset;
        if rewind {
            t.rewinds.push_back((now, offset));
            if t.rewinds.len() > 4096 {
                t.rewinds.pop_front();
            }
        }
        t.fetch_offset = offset;
    }

    /// Record bytes delivered for one partition; returns (bytes, re-delivered bytes).
    pub fn on_delivered(
        &mut self,
        key: &ClientKey,
        addr: SocketAddr,
        (topic, p): (Arc<str>, &FetchPartitionDelivered),
        now: Instant,
        cap: usize,
    ) -> (u64, u64) {
        let Some(t) = self.track(key, topic, p.partition, addr, now, cap) else {
            return (p.records_bytes, 0);
        };
        let bytes = p.records_bytes;
        let again = match (p.first_offset, p.last_offset) {
            (Some(first), Some(last)) if last >= first => {
                let c = t.conn(addr);
                let end = c.end;
                c.end = end.max(last + 1);
                t.delivered_end = t.delivered_end.max(last + 1);
                if last < end {
                    bytes
                } else if first >= end {
                    0
                } else {
                    let span = (last - first + 1) as f64;
                    (bytes as f64 * (end - first) as f64 / span) as u64
                }
            }
            _ => 0,
        };
        t.bytes += bytes;
        t.redelivered += again;
        (bytes, again)
    }

    fn track(
        &mut self,
        key: &ClientKey,
        topic: Arc<str>,
        partition: i32,
        addr: SocketAddr,
        now: Instant,
        cap: usize,
    ) -> Option<&mut FetchTrack> {
        let k = (key.clone(), topic, partition);
        let t = entry_within(&mut self.fetches, &mut self.refused, k, cap, || {
            FetchTrack {
                delivered_end: -1,
                conn_ends: Vec::new(),
                fetch_offset: -1,
                rewinds: VecDeque::new(),
                bytes: 0,
                redelivered: 0,
                last_addr: addr,
                last_seen: now,
                // A zero baseline, so the first window counts from the track's birth.
                history: VecDeque::from([(now, 0, 0)]),
            }
        })?;
        t.last_seen = now;
        t.last_addr = addr;
        Some(t)
    }

    /// Group attribution for many tracks at once: one walk over the groups, then a lookup per
    /// track (the model lock is held while it is used).
    pub fn group_index(&self) -> GroupIndex {
        let mut assigned: HashMap<TrackKey, (Arc<str>, Instant)> = HashMap::new();
        let mut by_client: HashMap<ClientKey, Option<(Arc<str>, Attribution)>> = HashMap::new();
        for (name, g) in &self.groups {
            for (key, parts) in g.members.values() {
                for (t, ps) in parts {
                    for p in ps {
                        let e = assigned
                            .entry((key.clone(), t.clone(), *p))
                            .or_insert((name.clone(), g.last_seen));
                        if g.last_seen > e.1 {
                            *e = (name.clone(), g.last_seen);
                        }
                    }
                }
            }
            for (key, how) in &g.clients {
                by_client
                    .entry(key.clone())
                    .and_modify(|e| *e = None) // a client key in several groups: ambiguous
                    .or_insert(Some((name.clone(), *how)));
            }
        }
        GroupIndex {
            assigned,
            by_client,
        }
    }

    /// Recomputes which groups consume each topic, from the fetch tracks active within the
    /// window — once per tick, not per event.
    pub fn refresh_topic_groups(&mut self, index: &GroupIndex, now: Instant, window: Duration) {
        let mut by_topic: HashMap<Arc<str>, BTreeSet<Arc<str>>> = HashMap::new();
        for ((key, topic, partition), t) in &self.fetches {
            if now.duration_since(t.last_seen) > window {
                continue;
            }
            if let Some((g, _)) = index.group_for(key, topic, *partition) {
                by_topic.entry(topic.clone()).or_default().insert(g);
            }
        }
        for (name, t) in &mut self.topics {
            t.groups = by_topic.remove(name).unwrap_or_default();
        }
    }

    /// Drops what fell out of the windows and what has been idle too long.
    pub fn expire(
        &mut self,
        now: Instant,
        window: Duration,
        rebalance_window: Duration,
        idle: Duration,
    ) {
        let before =
            self.clients.len() + self.groups.len() + self.fetches.len() + self.topics.len();
        for c in self.clients.values_mut() {
            prune(&mut c.recent_opens, |t| now.duration_since(*t) <= window);
            prune(&mut c.recent_closes, |(t, _)| {
                now.duration_since(*t) <= window
            });
        }
        for g in self.groups.values_mut() {
            prune(&mut g.joins, |t| now.duration_since(*t) <= rebalance_window);
        }
        for t in self.fetches.values_mut() {
            prune(&mut t.rewinds, |(at, _)| now.duration_since(*at) <= window);
            t.history.push_back((now, t.bytes, t.redelivered));
            prune(&mut t.history, |(at, _, _)| {
                now.duration_since(*at) <= window
            });
        }
        self.clients
            .retain(|_, c| c.open > 0 || now.duration_since(c.last_seen) < idle);
        self.groups
            .retain(|_, g| now.duration_since(g.last_seen) < idle);
        self.fetches
            .retain(|_, t| now.duration_since(t.last_seen) < idle);
        self.topics.retain(|_, t| {
            t.last_seen
                .is_some_and(|seen| now.duration_since(seen) < idle)
        });
        let after = self.clients.len() + self.groups.len() + self.fetches.len() + self.topics.len();
        self.evicted += (before - after) as u64;
    }
}

/// Group attribution for every fetch track, built once per tick ([`Model::group_index`]). A
/// unit test checks it against a walk over every group.
#[derive(Debug, Default)]
pub struct GroupIndex {
    assigned: HashMap<TrackKey, (Arc<str>, Instant)>,
    by_client: HashMap<ClientKey, Option<(Arc<str>, Attribution)>>,
}

impl GroupIndex {
    /// The group consuming `topic`-`partition` through client key `key`: the group one of
    /// whose members with this client key is assigned that partition (SyncGroup or
    /// ConsumerGroupHeartbeat; the most recently seen group if several), else
    /// [`GroupIndex::group_of`].
    pub fn group_for(
        &self,
        key: &ClientKey,
        topic: &Arc<str>,
        partition: i32,
    ) -> Option<(Arc<str>, Attribution)> {
        if let Some((g, _)) = self.assigned.get(&(key.clone(), topic.clone(), partition)) {
            return Some((g.clone(), Attribution::Coordinator));
        }
        self.group_of(key)
    }

    /// The group of a client key and how it was found: its own coordinator traffic when that
    /// names one group, else the Java default `client.id`. `None` when several groups share
    /// the client key (a `client.id` reused across groups): use [`GroupIndex::group_for`].
    pub fn group_of(&self, key: &ClientKey) -> Option<(Arc<str>, Attribution)> {
        match self.by_client.get(key) {
            Some(found) => found.clone(),
            None => {
                java_default_group(&key.1).map(|g| (Arc::from(g), Attribution::ClientIdPattern))
            }
        }
    }
}

/// The group named by a Java consumer's default `client.id`, `consumer-<group>-<n>`.
pub fn java_default_group(client_id: &str) -> Option<&str> {
    let rest = client_id.strip_prefix("consumer-")?;
    let (group, n) = rest.rsplit_once('-')?;
    (!group.is_empty() && !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit())).then_some(group)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_group_index_answers_as_group_for_does() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let hosts: Vec<IpAddr> = (1..4).map(|i| IpAddr::from([10, 0, 0, i])).collect();
        let ids = ["consumer-a-1", "consumer-b-2", "svc", ""];
        let topics: Vec<Arc<str>> = ["t1", "t2"].iter().map(|t| Arc::from(*t)).collect();
        let keys: Vec<ClientKey> = hosts
            .iter()
            .flat_map(|h| ids.iter().map(move |i| (*h, Arc::from(*i))))
            .collect();
        for _ in 0..200 {
            let mut m = Model::default();
            let t0 = Instant::now();
            for (i, g) in ["a", "b", "c"].into_iter().enumerate() {
                if rng.gen_bool(0.2) {
                    continue;
                }
                // Distinct times: on a tie the two answers may pick different groups.
                let at = t0 + Duration::from_millis(rng.gen_range(0..100) * 3 + i as u64);
                let grp = m.group(g, at, 100).unwrap();
                for n in 0..rng.gen_range(0..4) {
                    let k = keys[rng.gen_range(0..keys.len())].clone();
                    let parts = vec![(
                        topics[rng.gen_range(0..2)].clone(),
                        vec![rng.gen_range(0..3)],
                    )];
                    grp.members.insert(format!("m{n}"), (k.clone(), parts));
                    if rng.gen_bool(0.7) {
                        grp.clients.insert(k, Attribution::Coordinator);
                    }
                }
            }
            let index = m.group_index();
            for k in &keys {
                for t in &topics {
                    for p in 0..3 {
                        assert_eq!(
                            index.group_for(k, t, p),
                            m.group_for(k, t, p),
                            "{k:?} {t} {p}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn java_default_client_ids_name_their_group() {
        assert_eq!(java_default_group("consumer-billing-1"), Some("billing"));
        assert_eq!(
            java_default_group("consumer-order-events-v2-12"),
            Some("order-events-v2")
        );
        assert_eq!(java_default_group("consumer--1"), None);
        assert_eq!(java_default_group("producer-1"), None);
        assert_eq!(java_default_group("consumer-x-y"), None);
    }

    #[test]
    fn capped_maps_keep_their_entries_and_count_refusals() {
        let mut m = Model::default();
        let now = Instant::now();
        let key: ClientKey = (IpAddr::from([10, 0, 0, 1]), Arc::from("svc"));
        for t in ["a", "b"] {
            m.topic(Arc::from(t), now, 2).unwrap().bytes_out += 1;
        }
        assert!(m.topic(Arc::from("c"), now, 2).is_none());
        m.topic(Arc::from("a"), now, 2).unwrap().bytes_out += 1;
        assert_eq!(m.topics[&Arc::from("a")].bytes_out, 2);
        assert!(m.client(&key, now, 1).is_some());
        let other: ClientKey = (IpAddr::from([10, 0, 0, 2]), Arc::from("svc"));
        assert!(m.client(&other, now, 1).is_none());
        assert_eq!(m.clients.len(), 1);
        assert_eq!(m.refused, 2, "one topic and one client refused");
    }

    #[test]
    fn topic_groups_follow_the_window_and_idle_topics_go() {
        let (window, idle) = (Duration::from_secs(30), Duration::from_secs(600));
        let mut m = Model::default();
        let t0 = Instant::now();
        let key: ClientKey = (IpAddr::from([10, 0, 0, 1]), Arc::from("consumer-reports-1"));
        let addr = SocketAddr::from(([10, 0, 0, 1], 40_000));
        let orders: Arc<str> = Arc::from("orders");
        m.attribute(&key, "reports", Attribution::Coordinator, t0, 10);
        m.on_fetch_offset(&key, addr, (orders.clone(), 0), 0, t0, 10);
        m.topic(orders.clone(), t0, 10);
        let index = m.group_index();
        m.refresh_topic_groups(&index, t0, window);
        assert!(m.topics[&orders].groups.contains("reports"));
        // The group stopped fetching: after a window it no longer reads the topic.
        let t1 = t0 + 2 * window;
        let index = m.group_index();
        m.refresh_topic_groups(&index, t1, window);
        assert!(m.topics[&orders].groups.is_empty());
        // Nothing produced or fetched for longer than `idle`: the topic goes, and is counted.
        let evicted = m.evicted;
        m.expire(t0 + idle + window, window, window, idle);
        assert!(m.topics.is_empty());
        assert!(m.evicted > evicted);
    }
}
