//! One real Kafka node (KRaft, broker + controller), supervised by `kafka-broker.sh`: alone,
//! or one node of a multi-node cluster ([`NodeSpec`]).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::tools::Tools;

/// How long a broker may take to start on a busy 2-core machine.
pub const START_DEADLINE: Duration = Duration::from_secs(90);

/// How to run one node: its ports, what it advertises, and the quorum it belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeSpec {
    /// KRaft `node.id`.
    pub node_id: u32,
    /// Client listener of the broker itself (the proxy's upstream).
    pub port: u16,
    /// KRaft controller listener.
    pub controller_port: u16,
    /// The listener the nodes replicate over, when apart from the client listener.
    pub inter_broker_port: Option<u16>,
    /// The address advertised to clients (the proxy's listener).
    pub advertised: SocketAddr,
    /// The controller quorum, `id@host:port,...`; `None`: this node alone.
    pub voters: Option<String>,
    /// The cluster id every node is formatted with; `None`: a fresh one.
    pub cluster_id: Option<String>,
}

impl NodeSpec {
    /// A node alone in its cluster (node id 1).
    pub fn single(port: u16, controller_port: u16, advertised: SocketAddr) -> NodeSpec {
        NodeSpec {
            node_id: 1,
            port,
            controller_port,
            inter_broker_port: None,
            advertised,
            voters: None,
            cluster_id: None,
        }
    }
}

/// A fresh KRaft cluster id, from the broker script (one for all nodes of a cluster).
pub fn new_cluster_id(tools: &Tools) -> String {
    let out = Command::new("bash")
        .arg(&tools.broker_script)
        .arg("--new-cluster-id")
        .output()
        .expect("run kafka-broker.sh --new-cluster-id");
    assert!(
        out.status.success(),
        "kafka-broker.sh --new-cluster-id failed"
    );
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// A running broker. Dropping it stops the broker and removes its directory; if the test
/// process dies instead, the supervisor script (watching this process) stops the broker.
#[derive(Debug)]
pub struct Broker {
    tools: Tools,
    dir: PathBuf,
    spec: NodeSpec,
    /// Client listener of the broker itself (the proxy's upstream).
    pub port: u16,
    /// KRaft controller listener.
    pub controller_port: u16,
    /// The address advertised to clients (the proxy's listener).
    pub advertised: SocketAddr,
    /// More `kafka-broker.sh` arguments (listeners, SCRAM credentials, properties).
    extra_args: Vec<String>,
    supervisor: Option<Child>,
}

impl Broker {
    /// Formats a fresh node alone in its cluster and starts it; returns once it reports it
    /// has started.
    pub fn start(tools: &Tools, port: u16, controller_port: u16, advertised: SocketAddr) -> Broker {
        let mut broker = Broker::spawn(tools, NodeSpec::single(port, controller_port, advertised));
        broker.wait_started();
        broker
    }

    /// Formats a fresh node and starts it without waiting: the nodes of a cluster start
    /// together (the quorum needs a majority), then each is waited for
    /// ([`Broker::wait_started`]).
    pub fn spawn(tools: &Tools, spec: NodeSpec) -> Broker {
        Broker::spawn_with(tools, spec, Vec::new())
    }

    /// Like [`Broker::start`] for a node alone in its cluster, with more `kafka-broker.sh`
    /// arguments: `--listener`, `--add-scram`, `--config` (see the script's `--help`).
    pub fn start_with(
        tools: &Tools,
        port: u16,
        controller_port: u16,
        advertised: SocketAddr,
        extra_args: Vec<String>,
    ) -> Broker {
        let spec = NodeSpec::single(port, controller_port, advertised);
        let mut broker = Broker::spawn_with(tools, spec, extra_args);
        broker.wait_started();
        broker
    }

    fn spawn_with(tools: &Tools, spec: NodeSpec, extra_args: Vec<String>) -> Broker {
        remove_stale_dirs();
        let dir = std::env::temp_dir().join(crate::unique("sluice-kafka"));
        std::fs::create_dir_all(&dir).unwrap();
        let mut broker = Broker {
            tools: tools.clone(),
            dir,
            port: spec.port,
            controller_port: spec.controller_port,
            advertised: spec.advertised,
            spec,
            extra_args,
            supervisor: None,
        };
        broker.launch(false);
        broker
    }

    /// This node's `node.id`.
    pub fn node_id(&self) -> u32 {
        self.spec.node_id
    }

    /// The broker's own client address (what the proxy forwards to).
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// The node's state directory (config, data, `broker.log`).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The last `n` lines of the broker log, for failure messages.
    pub fn log_tail(&self, n: usize) -> String {
        let log = std::fs::read_to_string(self.dir.join("broker.log")).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }

    fn launch(&mut self, restart: bool) {
        let _ = std::fs::remove_file(self.dir.join("broker.ready"));
        let spec = &self.spec;
        let mut cmd = Command::new("bash");
        cmd.arg(&self.tools.broker_script)
            .arg("--dir")
            .arg(&self.dir)
            .args(["--port", &spec.port.to_string()])
            .args(["--controller-port", &spec.controller_port.to_string()])
            .args(["--advertised", &spec.advertised.to_string()])
            .args(["--node-id", &spec.node_id.to_string()])
            .args(["--watch-pid", &std::process::id().to_string()])
            .env("SLUICE_KAFKA_LIBS", &self.tools.kafka_libs)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit());
        if let Some(p) = spec.inter_broker_port {
            cmd.args(["--inter-broker-port", &p.to_string()]);
        }
        if let Some(v) = &spec.voters {
            cmd.args(["--voters", v]);
        }
        if let Some(id) = &spec.cluster_id {
            cmd.args(["--cluster-id", id]);
        }
        if restart {
            cmd.arg("--no-format");
        }
        cmd.args(&self.extra_args);
        self.supervisor = Some(cmd.spawn().expect("start kafka-broker.sh"));
    }

    /// Waits (up to [`START_DEADLINE`]) until the node reports it has started; panics with
    /// the end of its log if it exits or does not start in time.
    pub fn wait_started(&mut self) {
        let end = Instant::now() + START_DEADLINE;
        let child = self.supervisor.as_mut().expect("a launched broker");
        loop {
            if self.dir.join("broker.ready").exists() {
                return;
            }
            if let Some(status) = child.try_wait().unwrap() {
                self.supervisor = None;
                panic!(
                    "broker {} exited during startup ({status}); log:\n{}",
                    self.spec.node_id,
                    self.log_tail(60)
                );
            }
            if Instant::now() > end {
                let _ = child.kill();
                panic!(
                    "broker {} not started after {START_DEADLINE:?}; log:\n{}",
                    self.spec.node_id,
                    self.log_tail(60)
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The broker JVM's pid.
    pub fn pid(&self) -> u32 {
        std::fs::read_to_string(self.dir.join("broker.pid"))
            .expect("broker.pid")
            .trim()
            .parse()
            .expect("pid")
    }

    /// Crashes the broker (`kill -9` of the JVM) and waits until its supervisor is gone.
    pub fn crash(&mut self) {
        let pid = self.pid();
        let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
        if let Some(mut child) = self.supervisor.take() {
            let end = Instant::now() + Duration::from_secs(30);
            while child.try_wait().unwrap().is_none() {
                assert!(
                    Instant::now() < end,
                    "supervisor did not exit after the crash"
                );
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }

    /// Starts the node again on the same directory and ports, keeping its data; returns once
    /// it reports it has started.
    pub fn restart(&mut self) {
        assert!(self.supervisor.is_none(), "restart after crash() or stop()");
        self.launch(true);
        self.wait_started();
    }

    /// Stops the broker gracefully (TERM to the supervisor; a node of a cluster hands its
    /// leaderships over first) and waits for it.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.supervisor.take() {
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
            // The supervisor's own grace (20 s for a node of a cluster) and a margin.
            let end = Instant::now() + Duration::from_secs(30);
            while child.try_wait().unwrap().is_none() {
                if Instant::now() > end {
                    if let Ok(pid) = std::fs::read_to_string(self.dir.join("broker.pid")) {
                        let _ = Command::new("kill").args(["-9", pid.trim()]).status();
                    }
                    let _ = child.kill();
                    let _ = child.wait();
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Removes broker directories left by test processes that no longer exist.
fn remove_stale_dirs() {
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(rest) = name.strip_prefix("sluice-kafka-") else {
            continue;
        };
        let pid = rest.split('-').next().unwrap_or("");
        if !pid.is_empty() && !Path::new("/proc").join(pid).exists() {
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
}
