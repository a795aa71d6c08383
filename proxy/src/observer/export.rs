//! What the observer hands to telemetry: a copy of its counters and gauges, taken once per
//! collection (never per event), and which connections are under an active finding.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::IpAddr;
use std::sync::Arc;

use serde_json::Value;

use super::findings::{Finding, Kind};
use super::model::{ApiCount, ClientKey, Model};
use super::Observer;

/// What a span says about its connection.
#[derive(Debug, Clone)]
pub struct ConnLabels {
    /// `client.id`.
    pub client_id: Option<Arc<str>>,
    /// A group seen in its coordinator traffic.
    pub group: Option<Arc<str>>,
}

/// One client key.
#[derive(Debug, Clone)]
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
    pub api: BTreeMap<(i16, i16), ApiCount>,
}

/// One client key's fetching of one partition.
#[derive(Debug, Clone)]
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
#[derive(Debug, Clone)]
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
}

/// Everything exported as metrics, at one instant.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// Client keys.
    pub clients: Vec<ClientPoint>,
    /// Fetch tracks.
    pub fetches: Vec<FetchPoint>,
    /// Fetch position per group partition (highest fetch offset of its consumers).
    pub positions: Vec<GroupPartitionPoint>,
    /// Committed offset per group partition.
    pub committed: Vec<GroupPartitionPoint>,
    /// Topics.
    pub topics: Vec<TopicPoint>,
    /// Active findings.
    pub findings: Vec<FindingPoint>,
    /// Findings raised in all, by kind.
    pub raised: Vec<(&'static str, u64)>,
}

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
        }
    }
}

fn fetch_points(m: &Model) -> Vec<FetchPoint> {
    let index = m.group_index();
    m.fetches
        .iter()
        .map(|((key, topic, partition), t)| FetchPoint {
            host: key.0,
            client_id: key.1.clone(),
            group: index.group_for(key, topic, *partition).map(|(g, _)| g),
            topic: topic.clone(),
            partition: *partition,
            bytes: t.bytes,
            redelivered: t.redelivered,
            fetch_offset: t.fetch_offset,
        })
        .collect()
}

fn positions(fetches: &[FetchPoint]) -> Vec<GroupPartitionPoint> {
    let mut by: HashMap<(Arc<str>, Arc<str>, i32), i64> = HashMap::new();
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

impl Observer {
    /// A copy of what the metrics export, taken under the model lock once.
    pub fn snapshot(&self) -> Snapshot {
        let mut snap = {
            let m = self.model();
            let clients = m
                .clients
                .iter()
                .map(|(key, c)| ClientPoint {
                    host: key.0,
                    client_id: key.1.clone(),
                    open: c.open,
                    opened: c.opened,
                    closed: c.closed,
                    software: c.software.clone(),
                    api: c.api.clone(),
                })
                .collect();
            let fetches = fetch_points(&m);
            let committed = m
                .groups
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
                .collect();
            let topics = m
                .topics
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
                })
                .collect();
            Snapshot {
                positions: positions(&fetches),
                clients,
                fetches,
                committed,
                topics,
                ..Snapshot::default()
            }
        };
        // Open connections' own counts (lock order: never a connection entry under the model).
        let mut live: HashMap<ClientKey, BTreeMap<(i16, i16), ApiCount>> = HashMap::new();
        for e in self.conns.iter() {
            if e.api.is_empty() {
                continue;
            }
            let into = live.entry(e.value().key()).or_default();
            for (k, n) in &e.api {
                into.entry(*k).or_default().add(n);
            }
        }
        for c in &mut snap.clients {
            if let Some(api) = live.remove(&(c.host, c.client_id.clone())) {
                for (k, n) in api {
                    c.api.entry(k).or_default().add(&n);
                }
            }
        }
        let reg = self.registry();
        snap.findings = reg.active().map(FindingPoint::of).collect();
        snap.raised = reg.raised().map(|(k, n)| (k.as_str(), n)).collect();
        snap
    }

    /// Active findings (copies), for telemetry's finding events.
    pub fn active_findings(&self) -> Vec<Finding> {
        self.registry().active().cloned().collect()
    }

    /// Whether any connection is under an active finding (one atomic load).
    pub fn has_flagged(&self) -> bool {
        self.any_flagged.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Whether connections of this host and `client.id` are under an active finding.
    pub fn is_flagged(&self, host: IpAddr, client_id: &str) -> bool {
        if !self.any_flagged.load(std::sync::atomic::Ordering::Relaxed) {
            return false;
        }
        let set = self.flagged.read().unwrap_or_else(|e| e.into_inner());
        set.get(&host)
            .is_some_and(|ids| ids.contains("") || ids.contains(client_id))
    }

    /// `client.id` and group of an open connection, for a span.
    pub fn conn_labels(&self, conn: u64) -> Option<ConnLabels> {
        let c = self.conns.get(&conn)?;
        Some(ConnLabels {
            client_id: c.client_id.clone(),
            group: c.groups.iter().next().cloned(),
        })
    }

    /// Recomputes which client keys are under an active finding (once per tick). A finding
    /// naming a host but no `client.id` flags the whole host; a group finding flags its
    /// clients.
    pub(super) fn refresh_flagged(&self, m: &Model, active: &[&Finding]) {
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
        self.any_flagged
            .store(!by_host.is_empty(), std::sync::atomic::Ordering::Relaxed);
        *self.flagged.write().unwrap_or_else(|e| e.into_inner()) = by_host;
    }
}
