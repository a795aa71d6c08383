//! What the observer's task publishes once per tick: an immutable [`Snapshot`] of everything
//! readers want — the metrics, the admin API's views, the findings — and [`Flags`], the client
//! keys under an active finding. Readers never touch the model itself.

use std::cmp::Ordering;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::config::DetectConfig;
use super::findings::{Finding, Kind, Registry};
use super::model::{
    ApiCounts, Attribution, ClientKey, Committed, FastMap, InnerCounts, Member, Model,
};
use super::sasl::SaslState;

/// What a span says about its connection.
#[derive(Debug, Clone, PartialEq)]
pub struct ConnLabels {
    /// `client.id`.
    pub client_id: Option<Arc<str>>,
    /// A group seen in its coordinator traffic.
    pub group: Option<Arc<str>>,
    /// Its authenticated principal.
    pub principal: Option<Arc<str>>,
}

/// Every open connection's labels, by connection number: published every tick (spans read
/// them), where the tables are built when a reader asks.
pub type LabelTable = Arc<Vec<(u64, ConnLabels)>>;

/// Every client key's row, each shared with the snapshots before while unchanged.
pub type ClientRows = Arc<Vec<Arc<ClientPoint>>>;

/// Every open connection's row by connection number, shared likewise.
pub type ConnRows = Arc<ConnTable>;

/// Open connections' rows in connection number order: one allocation to publish and to free
/// (a map's nodes cost a tick thousands of each).
#[derive(Debug, Default, PartialEq)]
pub struct ConnTable {
    rows: Vec<(u64, Arc<ConnPoint>)>,
}

impl ConnTable {
    /// Rows in connection number order.
    pub fn new<'a>(rows: impl Iterator<Item = (&'a u64, &'a Arc<ConnPoint>)>) -> ConnTable {
        let rows: Vec<(u64, Arc<ConnPoint>)> = rows.map(|(id, c)| (*id, c.clone())).collect();
        debug_assert!(rows.windows(2).all(|w| w[0].0 < w[1].0));
        ConnTable { rows }
    }

    /// The row of connection `id`.
    pub fn get(&self, id: &u64) -> Option<&Arc<ConnPoint>> {
        let at = self.rows.binary_search_by_key(id, |(i, _)| *i).ok()?;
        Some(&self.rows[at].1)
    }

    /// Every row, by connection number.
    pub fn iter(&self) -> impl Iterator<Item = (&u64, &Arc<ConnPoint>)> {
        self.rows.iter().map(|(id, c)| (id, c))
    }

    /// Open connections.
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// What spans read of each connection, by connection number (to check the labels a tick
    /// keeps against).
    pub fn labels(&self) -> Vec<(u64, ConnLabels)> {
        self.iter()
            .map(|(id, c)| {
                let l = ConnLabels {
                    client_id: c.client_id.clone(),
                    group: c.groups.first().cloned(),
                    principal: c.principal.as_deref().map(Arc::from),
                };
                (*id, l)
            })
            .collect()
    }

    /// No connection open.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }
}

/// The snapshot's tables of entries, each shared with the snapshots before until its
/// entries change (made by [`super::rows::Rows`]).
#[derive(Debug, Clone, Default)]
pub struct Tables {
    /// Client keys.
    pub clients: ClientRows,
    /// Open connections.
    pub conns: ConnRows,
    /// Fetch tracks.
    pub fetches: Arc<Vec<FetchPoint>>,
    /// Fetch position per group partition.
    pub positions: Arc<Vec<GroupPartitionPoint>>,
    /// Committed offset per group partition.
    pub committed: Arc<Vec<GroupPartitionPoint>>,
    /// Groups.
    pub groups: Arc<Vec<GroupPoint>>,
    /// Topics.
    pub topics: Arc<Vec<TopicPoint>>,
}

/// One client key.
#[derive(Debug, Clone, PartialEq)]
pub struct ClientPoint {
    /// Client host.
    pub host: IpAddr,
    /// `client.id` ("" when none).
    pub client_id: Arc<str>,
    /// Connections open now.
    pub open: u64,
    /// Connections opened in all.
    pub opened: u64,
    /// Connections closed in all.
    pub closed: u64,
    /// Client software name and version.
    pub software: Option<(String, String)>,
    /// Requests and bytes by API key and version (closed and open connections).
    pub api: ApiCounts,
    /// Its group, and how that was found.
    pub group: Option<(Arc<str>, Attribution)>,
    /// Connections opened within the window.
    pub opened_in_window: usize,
    /// Record bytes fetched per topic.
    pub fetched: BTreeMap<Arc<str>, u64>,
    /// Record bytes produced per topic.
    pub produced: BTreeMap<Arc<str>, u64>,
    /// Fetch requests.
    pub fetch_requests: u64,
    /// The principal its connections last authenticated as.
    pub principal: Option<Arc<str>>,
    /// SASL authentications the broker refused.
    pub sasl_failures: u64,
    /// Its last SASL verdict was a refusal.
    pub sasl_failed: bool,
}

/// One client key's fetching of one partition.
#[derive(Debug, Clone, PartialEq)]
pub struct FetchPoint {
    /// Client host.
    pub host: IpAddr,
    /// `client.id`.
    pub client_id: Arc<str>,
    /// Consumer group, when known.
    pub group: Option<Arc<str>>,
    /// Topic.
    pub topic: Arc<str>,
    /// Partition.
    pub partition: i32,
    /// Record bytes delivered.
    pub bytes: u64,
    /// Of which delivered again.
    pub redelivered: u64,
    /// Last fetch offset.
    pub fetch_offset: i64,
}

/// A value per (group, topic, partition).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupPartitionPoint {
    /// Group.
    pub group: Arc<str>,
    /// Topic.
    pub topic: Arc<str>,
    /// Partition.
    pub partition: i32,
    /// Offset.
    pub offset: i64,
}

/// One topic.
#[derive(Debug, Clone, PartialEq)]
pub struct TopicPoint {
    /// Topic.
    pub topic: Arc<str>,
    /// Bytes produced.
    pub produced: u64,
    /// Bytes consumers fetched.
    pub consumed: u64,
    /// Bytes follower brokers fetched.
    pub replicated: u64,
    /// End offset (high watermark seen) per partition.
    pub end_offsets: Vec<(i32, i64)>,
    /// Bytes consumers fetched for the first time.
    pub unique_out: u64,
    /// Highest offset delivered to a consumer, per partition.
    pub delivered: Vec<(i32, i64)>,
    /// Groups seen fetching it within the window.
    pub groups: Vec<Arc<str>>,
}

/// One active finding, by the labels an operator filters on ("" when not applicable).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FindingPoint {
    /// Kind.
    pub kind: &'static str,
    /// `warning` or `critical`.
    pub severity: &'static str,
    /// Group.
    pub group: String,
    /// Topic.
    pub topic: String,
    /// Partition.
    pub partition: String,
    /// `client.id`.
    pub client_id: String,
    /// Client host.
    pub host: String,
    /// The principal of the client it names (or of all the clients it names, when one).
    pub principal: String,
}

/// Everything exported as metrics, at one instant.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// Client keys (rows shared with the snapshots before while unchanged).
    pub clients: ClientRows,
    /// Fetch tracks.
    pub fetches: Arc<Vec<FetchPoint>>,
    /// Fetch position per group partition (highest fetch offset of its consumers).
    pub positions: Arc<Vec<GroupPartitionPoint>>,
    /// Committed offset per group partition.
    pub committed: Arc<Vec<GroupPartitionPoint>>,
    /// Topics.
    pub topics: Arc<Vec<TopicPoint>>,
    /// Active findings.
    pub findings: Vec<FindingPoint>,
    /// Findings raised in all, by kind.
    pub raised: Vec<(&'static str, u64)>,
    /// SASL authentications refused, by mechanism.
    pub sasl_failures: Vec<(Arc<str>, u64)>,
    /// When it was made (`None`: before the first tick).
    pub at: Option<Instant>,
    /// The window rates are judged over.
    pub window: Duration,
    /// Groups.
    pub groups: Arc<Vec<GroupPoint>>,
    /// Open connections by connection number (shared with the snapshots before while
    /// unchanged).
    pub conns: ConnRows,
    /// Active findings, whole.
    pub active: Vec<Finding>,
    /// Recently cleared findings, oldest first.
    pub cleared: Vec<Finding>,
    /// Sizes of the observer's maps.
    pub health: Health,
    /// Open connections' labels as of the last tick, by connection number.
    pub labels: LabelTable,
    /// When the tables were built (`None`: never) — at a tick in tests and benches, when a
    /// reader asked for them in a running proxy ([`super::Observer::fresh_snapshot`]).
    pub tables_at: Option<Instant>,
}

/// One consumer group.
#[derive(Debug, Clone, PartialEq)]
pub struct GroupPoint {
    /// Group id.
    pub group: Arc<str>,
    /// Generation last seen.
    pub generation: i32,
    /// Rebalances in all.
    pub rebalances: u64,
    /// New generations within the rebalance window.
    pub rebalances_in_window: usize,
    /// `(member id, member)`.
    pub members: Vec<(String, Member)>,
    /// Client keys tied to it and how.
    pub clients: Vec<(ClientKey, Attribution)>,
    /// Committed offset per topic partition.
    pub committed: Vec<(Arc<str>, i32, Committed)>,
}

/// One open connection.
#[derive(Debug, Clone, PartialEq)]
pub struct ConnPoint {
    /// Client address and port.
    pub client_addr: SocketAddr,
    /// The listener it came in on.
    pub listener: Arc<str>,
    /// `client.id`.
    pub client_id: Option<Arc<str>>,
    /// Client software.
    pub software: Option<(String, String)>,
    /// Authenticated principal: SASL, or the TLS client certificate's subject before one is seen.
    pub principal: Option<String>,
    /// SASL mechanism asked for.
    pub mechanism: Option<Arc<str>>,
    /// Where its SASL exchange stands.
    pub sasl: Option<SaslState>,
    /// Opened at.
    pub opened: Instant,
    /// Last frame at.
    pub last_activity: Instant,
    /// Request bytes.
    pub bytes_in: u64,
    /// Response bytes.
    pub bytes_out: u64,
    /// Follower broker fetches.
    pub replica: bool,
    /// Groups seen in its coordinator traffic.
    pub groups: Vec<Arc<str>>,
    /// Requests per API name.
    pub requests: BTreeMap<&'static str, u64>,
}

/// Sizes of the observer's maps, evictions and refusals.
#[derive(Debug, Clone, Copy, Default)]
pub struct Health {
    /// Open connections.
    pub connections: usize,
    /// Client keys.
    pub clients: usize,
    /// Groups.
    pub groups: usize,
    /// Topics.
    pub topics: usize,
    /// Fetch tracks.
    pub fetch_tracks: usize,
    /// Entries evicted.
    pub evicted: u64,
    /// Entries refused at a cap.
    pub refused: u64,
    /// The collections inside entries: held and refused, by kind.
    pub inner: InnerCounts,
    /// The group lookup's last answer: when, groups the cluster knows, rounds, requests and
    /// errors since start.
    pub lookup: Option<(Instant, usize, u64, u64, u64)>,
}

/// Client keys under an active finding, by host ("" flags the whole host): which connections'
/// pairs always become spans.
#[derive(Debug, Clone, Default)]
pub struct Flags(pub HashMap<IpAddr, HashSet<Arc<str>>>);

fn text(v: &Value, keys: &[&str]) -> String {
    keys.iter()
        .find_map(|k| match v.get(*k) {
            Some(Value::String(s)) => Some(s.clone()),
            Some(Value::Number(n)) => Some(n.to_string()),
            _ => None,
        })
        .unwrap_or_default()
}

impl FindingPoint {
    /// The labels of a finding, from its evidence.
    pub fn of(f: &Finding) -> FindingPoint {
        let e = &f.evidence;
        FindingPoint {
            kind: f.kind.as_str(),
            severity: f.severity.as_str(),
            group: text(e, &["group"]),
            topic: text(e, &["topic"]),
            partition: text(e, &["partition"]),
            client_id: text(e, &["client_id"]),
            host: text(e, &["client_host", "host"]),
            principal: text(e, &["principal"]),
        }
    }
}

pub(super) fn fetch_points(m: &Model) -> Vec<FetchPoint> {
    m.fetches
        .iter()
        .map(|((key, topic, partition), t)| FetchPoint {
            host: key.0,
            client_id: key.1.clone(),
            group: t.group.as_ref().map(|(g, _)| g.clone()),
            topic: topic.clone(),
            partition: *partition,
            bytes: t.bytes,
            redelivered: t.redelivered,
            fetch_offset: t.fetch_offset,
        })
        .collect()
}

pub(super) fn positions(fetches: &[FetchPoint]) -> Vec<GroupPartitionPoint> {
    let mut by: FastMap<(Arc<str>, Arc<str>, i32), i64> = FastMap::default();
    for f in fetches {
        if let (Some(g), true) = (&f.group, f.fetch_offset >= 0) {
            let e = by
                .entry((g.clone(), f.topic.clone(), f.partition))
                .or_insert(f.fetch_offset);
            *e = (*e).max(f.fetch_offset);
        }
    }
    by.into_iter()
        .map(|((group, topic, partition), offset)| GroupPartitionPoint {
            group,
            topic,
            partition,
            offset,
        })
        .collect()
}

pub(super) fn committed_points(m: &Model) -> Vec<GroupPartitionPoint> {
    m.groups
        .iter()
        .flat_map(|(g, grp)| {
            grp.committed
                .iter()
                .map(move |((t, p), c)| GroupPartitionPoint {
                    group: g.clone(),
                    topic: t.clone(),
                    partition: *p,
                    offset: c.offset,
                })
        })
        .collect()
}

pub(super) fn group_points(m: &Model) -> Vec<GroupPoint> {
    let mut groups: Vec<GroupPoint> = m
        .groups
        .iter()
        .map(|(name, g)| GroupPoint {
            group: name.clone(),
            generation: g.generation,
            rebalances: g.rebalances,
            rebalances_in_window: g.joins.len(),
            members: g
                .members
                .iter()
                .map(|(id, mb)| (id.clone(), mb.clone()))
                .collect(),
            clients: g
                .clients
                .iter()
                .map(|(k, (how, _))| (k.clone(), *how))
                .collect(),
            committed: g
                .committed
                .iter()
                .map(|((t, p), c)| (t.clone(), *p, *c))
                .collect(),
        })
        .collect();
    groups.sort_by(|a, b| a.group.cmp(&b.group));
    groups
}

pub(super) fn topic_points(m: &Model) -> Vec<TopicPoint> {
    m.topics
        .iter()
        .map(|(name, t)| TopicPoint {
            topic: name.clone(),
            produced: t.bytes_in,
            consumed: t.bytes_out,
            replicated: t.replica_out,
            end_offsets: t
                .partitions
                .iter()
                .map(|(p, (end, _))| (*p, *end))
                .collect(),
            unique_out: t.unique_out,
            delivered: t.partitions.iter().map(|(p, (_, d))| (*p, *d)).collect(),
            groups: t.groups.iter().cloned().collect(),
        })
        .collect()
}

impl Tables {
    /// The first table whose rows differ from `other`'s, taken in any order (`None`: the same
    /// rows in every table). To compare tables made apart.
    pub fn differs(&self, other: &Tables) -> Option<&'static str> {
        /// The same rows once both are sorted by each row's (unique) key.
        fn same<T: PartialEq>(a: &[T], b: &[T], cmp: impl Fn(&T, &T) -> Ordering) -> bool {
            let sorted = |rows: &[T]| -> Vec<usize> {
                let mut v: Vec<usize> = (0..rows.len()).collect();
                v.sort_unstable_by(|&i, &j| cmp(&rows[i], &rows[j]));
                v
            };
            a.len() == b.len()
                && sorted(a)
                    .into_iter()
                    .zip(sorted(b))
                    .all(|(i, j)| a[i] == b[j])
        }
        let at = |x: &GroupPartitionPoint, y: &GroupPartitionPoint| {
            (&x.group, &x.topic, x.partition).cmp(&(&y.group, &y.topic, y.partition))
        };
        let (a, b) = (self, other);
        [
            (
                "clients",
                same(&a.clients, &b.clients, |x, y| {
                    (x.host, &x.client_id).cmp(&(y.host, &y.client_id))
                }),
            ),
            ("conns", a.conns == b.conns),
            (
                "fetches",
                same(&a.fetches, &b.fetches, |x, y| {
                    (x.host, &x.client_id, &x.topic, x.partition).cmp(&(
                        y.host,
                        &y.client_id,
                        &y.topic,
                        y.partition,
                    ))
                }),
            ),
            ("positions", same(&a.positions, &b.positions, at)),
            ("committed", same(&a.committed, &b.committed, at)),
            (
                "groups",
                same(&a.groups, &b.groups, |x, y| x.group.cmp(&y.group)),
            ),
            (
                "topics",
                same(&a.topics, &b.topics, |x, y| x.topic.cmp(&y.topic)),
            ),
        ]
        .into_iter()
        .find_map(|(table, same)| (!same).then_some(table))
    }
}

impl Snapshot {
    /// Its tables (shared).
    pub fn tables(&self) -> Tables {
        Tables {
            clients: self.clients.clone(),
            conns: self.conns.clone(),
            fetches: self.fetches.clone(),
            positions: self.positions.clone(),
            committed: self.committed.clone(),
            groups: self.groups.clone(),
            topics: self.topics.clone(),
        }
    }

    /// What readers see after the tick at `now`, with the tables made by
    /// [`super::rows::Rows`] (kept from when they were last built: `tables_at`), `connections`
    /// open and their `labels`.
    pub fn build(
        (now, cfg): (Instant, &DetectConfig),
        m: &Model,
        (t, tables_at): (Tables, Option<Instant>),
        (connections, labels): (usize, LabelTable),
        findings: &Registry,
    ) -> Snapshot {
        Snapshot {
            labels,
            tables_at,
            positions: t.positions,
            clients: t.clients,
            fetches: t.fetches,
            committed: t.committed,
            topics: t.topics,
            findings: findings.active().map(FindingPoint::of).collect(),
            raised: findings.raised().map(|(k, n)| (k.as_str(), n)).collect(),
            sasl_failures: m
                .sasl_failures
                .iter()
                .map(|(k, n)| (k.clone(), *n))
                .collect(),
            at: Some(now),
            window: cfg.window,
            groups: t.groups,
            conns: t.conns,
            active: findings.active().cloned().collect(),
            cleared: findings.cleared().cloned().collect(),
            health: Health {
                connections,
                clients: m.clients.len(),
                groups: m.groups.len(),
                topics: m.topics.len(),
                fetch_tracks: m.fetches.len(),
                evicted: m.evicted,
                refused: m.refused,
                inner: m.inner,
                lookup: m
                    .lookup
                    .as_ref()
                    .map(|l| (l.at, l.groups_known, l.rounds, l.requests, l.errors)),
            },
        }
    }

    /// `client.id` and group of an open connection, for a span.
    pub fn conn_labels(&self, conn: u64) -> Option<ConnLabels> {
        let at = self
            .labels
            .binary_search_by_key(&conn, |(id, _)| *id)
            .ok()?;
        Some(self.labels[at].1.clone())
    }

    /// The same snapshot with tables `t`, built at `at`.
    pub fn with_tables(&self, t: Tables, at: Instant) -> Snapshot {
        Snapshot {
            clients: t.clients,
            conns: t.conns,
            fetches: t.fetches,
            positions: t.positions,
            committed: t.committed,
            groups: t.groups,
            topics: t.topics,
            tables_at: Some(at),
            ..self.clone()
        }
    }
}

impl Flags {
    /// The client keys under the `active` findings. A finding naming a host but no
    /// `client.id` flags the whole host; a group finding flags its clients.
    pub fn from_findings<'a>(m: &Model, active: impl Iterator<Item = &'a Finding>) -> Flags {
        let mut by_host: HashMap<IpAddr, HashSet<Arc<str>>> = HashMap::new();
        let mut flag = |host: IpAddr, id: &str| {
            by_host.entry(host).or_default().insert(Arc::from(id));
        };
        for f in active {
            let p = FindingPoint::of(f);
            if let Ok(host) = p.host.parse::<IpAddr>() {
                flag(host, &p.client_id);
            }
            let group = (!p.group.is_empty()).then(|| m.groups.get(p.group.as_str()));
            if let Some(g) = group.flatten() {
                for (host, id) in g.clients.keys() {
                    flag(*host, id);
                }
            }
            if f.kind == Kind::FetchWithoutCommit {
                if let Some(Value::Array(cs)) = f.evidence.get("clients") {
                    for c in cs {
                        if let Ok(h) = text(c, &["host"]).parse::<IpAddr>() {
                            flag(h, &text(c, &["client_id"]));
                        }
                    }
                }
            }
        }
        Flags(by_host)
    }

    /// Whether connections of this host and `client.id` are flagged.
    pub fn contains(&self, host: IpAddr, client_id: &str) -> bool {
        self.0
            .get(&host)
            .is_some_and(|ids| ids.contains("") || ids.contains(client_id))
    }
}
