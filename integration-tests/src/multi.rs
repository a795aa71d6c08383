//! A multi-broker cluster on loopback, as Sluice's users run it: N KRaft nodes (combined
//! broker + controller, one quorum), a Sluice in front of each node's client listener, each
//! node advertising its own sidecar, and replication between the nodes on a listener of its
//! own. Topics get replication factor min(3, N) and leaders on every node; `__consumer_offsets`
//! has 4 partitions per node, so the coordinators of different groups sit on different nodes
//! and a group's fetches pass other sidecars than its JoinGroup, SyncGroup and OffsetCommit.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{SocketAddr, TcpListener};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::broker::{new_cluster_id, Broker, NodeSpec};
use crate::clients::Client;
use crate::scenario::args;
use crate::sidecar::Sidecar;
use crate::tools::Tools;

/// Nodes of the cluster [`MultiCluster::shared`] starts.
pub const SHARED_NODES: usize = 3;

/// One node: its broker and the Sluice in front of it.
#[derive(Debug)]
pub struct Node {
    /// The KRaft `node.id` (1-based; node `i` is `nodes[i - 1]`).
    pub id: u32,
    /// The broker (locked for crash/restart).
    pub broker: Mutex<Broker>,
    /// The broker's own client listener (the sidecar's upstream).
    pub broker_addr: SocketAddr,
    /// The Sluice the broker advertises.
    pub sidecar: Sidecar,
}

/// One partition as the brokers describe it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionInfo {
    /// Partition number.
    pub partition: i32,
    /// Leader's node id (0: none).
    pub leader: u32,
    /// Replica node ids, preferred leader first.
    pub replicas: Vec<u32>,
    /// In-sync replica node ids.
    pub isr: Vec<u32>,
}

/// Who leads what and who coordinates which group, at one moment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Layout {
    /// The active controller's node id.
    pub controller: u32,
    /// Node ids of the registered brokers.
    pub brokers: BTreeSet<u32>,
    /// Partitions of each described topic, in partition order.
    pub topics: BTreeMap<String, Vec<PartitionInfo>>,
    /// Coordinator node of each described group.
    pub coordinators: BTreeMap<String, u32>,
}

impl Layout {
    /// The leader of `topic`-`partition`; panics if it was not described.
    pub fn leader(&self, topic: &str, partition: i32) -> u32 {
        self.topics[topic][partition as usize].leader
    }

    /// The nodes leading some partition of `topic`.
    pub fn leaders(&self, topic: &str) -> BTreeSet<u32> {
        self.topics[topic].iter().map(|p| p.leader).collect()
    }

    /// Parses the Java client's `describe` summary.
    pub fn parse(v: &Value) -> Layout {
        let ids = |v: &Value| -> Vec<u32> {
            v.as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_u64)
                .map(|x| x as u32)
                .collect()
        };
        let id = |v: &Value| v.as_i64().filter(|x| *x > 0).unwrap_or(0) as u32;
        let topics = v["topics"]
            .as_object()
            .into_iter()
            .flatten()
            .map(|(t, ps)| {
                let parts = ps
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|p| PartitionInfo {
                        partition: p["partition"].as_i64().unwrap_or(-1) as i32,
                        leader: id(&p["leader"]),
                        replicas: ids(&p["replicas"]),
                        isr: ids(&p["isr"]),
                    })
                    .collect();
                (t.clone(), parts)
            })
            .collect();
        let coordinators = v["coordinators"]
            .as_object()
            .into_iter()
            .flatten()
            .map(|(g, n)| (g.clone(), id(n)))
            .collect();
        Layout {
            controller: id(&v["controller"]),
            brokers: v["brokers"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|b| id(&b["id"]))
                .collect(),
            topics,
            coordinators,
        }
    }
}

/// N brokers, one quorum, a Sluice in front of each.
#[derive(Debug)]
pub struct MultiCluster {
    /// The tools used.
    pub tools: Tools,
    /// The nodes, by `node.id` - 1.
    pub nodes: Vec<Node>,
    /// How long the cluster took to start, until clients saw every broker through Sluice.
    pub started_in: Duration,
}

impl MultiCluster {
    /// The [`SHARED_NODES`]-node cluster shared by every test in this test binary, started
    /// on first use. Each test uses its own topics and groups ([`crate::unique`]).
    pub fn shared() -> &'static MultiCluster {
        static SHARED: OnceLock<MultiCluster> = OnceLock::new();
        SHARED.get_or_init(|| MultiCluster::start(SHARED_NODES))
    }

    /// Starts `n` nodes, each with a Sluice in front; returns once clients see every broker
    /// through the sidecars.
    pub fn start(n: usize) -> MultiCluster {
        Self::start_with(n, |_| {})
    }

    /// Like [`MultiCluster::start`], with `tweak` applied to every Sluice's config.
    pub fn start_with(n: usize, tweak: impl Fn(&mut sluice_config::Config)) -> MultiCluster {
        assert!(n >= 1, "a cluster has nodes");
        let began = Instant::now();
        let tools = Tools::load();
        let cluster_id = new_cluster_id(&tools);
        // Every node's ports held until the sidecars are up, so that no sidecar takes one.
        let held: Vec<[TcpListener; 3]> = (0..n)
            .map(|_| std::array::from_fn(|_| TcpListener::bind("127.0.0.1:0").expect("bind")))
            .collect();
        let port = |l: &TcpListener| l.local_addr().expect("local address").port();
        let ports: Vec<(u16, u16, u16)> = held
            .iter()
            .map(|[a, b, c]| (port(a), port(b), port(c)))
            .collect();
        let sidecars: Vec<Sidecar> = ports
            .iter()
            .map(|(p, _, _)| Sidecar::start(SocketAddr::from(([127, 0, 0, 1], *p)), &tweak))
            .collect();
        drop(held);
        let voters = ports
            .iter()
            .enumerate()
            .map(|(i, (_, c, _))| format!("{}@127.0.0.1:{c}", i + 1))
            .collect::<Vec<_>>()
            .join(",");
        // Every node starts at once: the quorum needs a majority before any broker starts.
        let nodes: Vec<Node> = ports
            .iter()
            .zip(sidecars)
            .enumerate()
            .map(
                |(i, (&(port, controller_port, inter_broker_port), sidecar))| {
                    let broker_addr = SocketAddr::from(([127, 0, 0, 1], port));
                    let spec = NodeSpec {
                        node_id: i as u32 + 1,
                        port,
                        controller_port,
                        inter_broker_port: Some(inter_broker_port),
                        advertised: sidecar.proxy_addr,
                        voters: Some(voters.clone()),
                        cluster_id: Some(cluster_id.clone()),
                    };
                    Node {
                        id: spec.node_id,
                        broker: Mutex::new(Broker::spawn(&tools, spec)),
                        broker_addr,
                        sidecar,
                    }
                },
            )
            .collect();
        for node in &nodes {
            node.broker.lock().unwrap().wait_started();
        }
        let mut cluster = MultiCluster {
            tools,
            nodes,
            started_in: Duration::ZERO,
        };
        cluster.wait_ready(Duration::from_secs(90));
        cluster.started_in = began.elapsed();
        cluster
    }

    /// Every sidecar's address: the bootstrap list clients use.
    pub fn bootstrap(&self) -> String {
        self.nodes
            .iter()
            .map(|n| n.sidecar.proxy_addr.to_string())
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The node with `node.id` `id`.
    pub fn node(&self, id: u32) -> &Node {
        &self.nodes[id as usize - 1]
    }

    /// The node whose sidecar is `sidecar`.
    pub fn node_of(&self, sidecar: &Sidecar) -> &Node {
        self.nodes
            .iter()
            .find(|n| n.sidecar.proxy_addr == sidecar.proxy_addr)
            .expect("a sidecar of this cluster")
    }

    /// Waits until the brokers, asked through the sidecars, list every node and a controller.
    pub fn wait_ready(&self, deadline: Duration) {
        let end = Instant::now() + deadline;
        let mut last = String::new();
        while Instant::now() < end {
            match self.try_describe(&[], &[], Duration::from_secs(20)) {
                Ok(l) if l.brokers.len() == self.nodes.len() && l.controller > 0 => return,
                Ok(l) => last = format!("{l:?}"),
                Err(e) => last = e,
            }
            std::thread::sleep(Duration::from_millis(500));
        }
        let logs: Vec<String> = self
            .nodes
            .iter()
            .map(|n| format!("node {}:\n{}", n.id, n.broker.lock().unwrap().log_tail(20)))
            .collect();
        panic!(
            "cluster not ready through the sidecars after {deadline:?}: {last}\n{}",
            logs.join("\n")
        );
    }

    /// Describes topics' partitions and groups' coordinators (groups need not exist yet).
    pub fn describe(&self, topics: &[&str], groups: &[&str]) -> Layout {
        self.try_describe(topics, groups, Duration::from_secs(30))
            .unwrap_or_else(|e| panic!("describe {topics:?} {groups:?}: {e}"))
    }

    fn try_describe(
        &self,
        topics: &[&str],
        groups: &[&str],
        timeout: Duration,
    ) -> Result<Layout, String> {
        let mut a = args(&[
            "describe",
            "--bootstrap",
            &self.bootstrap(),
            "--timeout-s",
            &timeout.as_secs().to_string(),
        ]);
        if !topics.is_empty() {
            a.extend(args(&["--topic", &topics.join(",")]));
        }
        if !groups.is_empty() {
            a.extend(args(&["--group", &groups.join(",")]));
        }
        let v = Client::Java
            .spawn(&self.tools, &a)
            .finish(timeout + Duration::from_secs(30))?;
        Ok(Layout::parse(&v))
    }

    /// The node coordinating `group` now.
    pub fn coordinator(&self, group: &str) -> u32 {
        self.describe(&[], &[group]).coordinators[group]
    }

    /// A new group name (`prefix` made unique) whose coordinator is none of `not_on`; returns
    /// it and its coordinator.
    pub fn group_coordinated_elsewhere(&self, prefix: &str, not_on: &[u32]) -> (String, u32) {
        let names: Vec<String> = (0..12).map(|_| crate::unique(prefix)).collect();
        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
        let layout = self.describe(&[], &refs);
        names
            .into_iter()
            .find_map(|g| {
                let c = layout.coordinators[&g];
                (!not_on.contains(&c)).then_some((g, c))
            })
            .unwrap_or_else(|| panic!("no group of 12 coordinated outside {not_on:?}: {layout:?}"))
    }

    /// Creates topics with `partitions` partitions each and the cluster's replication factor
    /// (min(3, nodes)); checks every partition is fully replicated and, with at least one
    /// partition per node, that every node leads one. Returns their layout.
    pub fn create_topics(&self, topics: &[&str], partitions: u32) -> Layout {
        Client::Java
            .spawn(
                &self.tools,
                &args(&[
                    "create-topic",
                    "--bootstrap",
                    &self.bootstrap(),
                    "--topic",
                    &topics.join(","),
                    "--partitions",
                    &partitions.to_string(),
                ]),
            )
            .finish(Duration::from_secs(90))
            .unwrap_or_else(|e| panic!("create topics {topics:?}: {e}"));
        let layout = self.describe(topics, &[]);
        let rf = self.nodes.len().min(3);
        for t in topics {
            let parts = &layout.topics[*t];
            assert_eq!(parts.len(), partitions as usize, "{t}: {layout:?}");
            for p in parts {
                assert_eq!(p.replicas.len(), rf, "{t}-{}: {p:?}", p.partition);
            }
            if partitions as usize >= self.nodes.len() {
                assert_eq!(
                    layout.leaders(t).len(),
                    self.nodes.len(),
                    "{t}: not every node leads a partition: {parts:?}"
                );
            }
        }
        layout
    }

    /// Restarts node `id` — killed (`kill -9`) when `crash`, else stopped cleanly (it hands
    /// its leaderships over first) — and waits until it is back and clients see every
    /// broker again. Its sidecar keeps running throughout, as a sidecar does when its broker
    /// restarts. Returns how long the node was away.
    pub fn restart_node(&self, id: u32, crash: bool) -> Duration {
        let began = Instant::now();
        {
            let mut broker = self.node(id).broker.lock().unwrap();
            if crash {
                broker.crash();
            } else {
                broker.stop();
            }
            broker.restart();
        }
        self.wait_ready(Duration::from_secs(90));
        began.elapsed()
    }

    /// Stops every sidecar (drain) and broker (all at once: a node whose quorum is gone
    /// cannot hand anything over).
    pub fn stop(&self) {
        for n in &self.nodes {
            n.sidecar.stop();
        }
        std::thread::scope(|s| {
            for n in &self.nodes {
                s.spawn(|| n.broker.lock().unwrap().stop());
            }
        });
    }
}

impl Drop for MultiCluster {
    fn drop(&mut self) {
        self.stop();
    }
}
