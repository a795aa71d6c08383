//! A Kafka broker with one client listener per path, a multi-node cluster whose nodes each
//! advertise their own sidecar ([`start_cluster`]), and Kafka's own perf tools
//! (`ProducerPerformance`, `ConsumerPerformance` from the kafka-tools jar).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{bail, Context, Result};

use crate::proc::{tail, ChildGuard};
use crate::tools::Tools;

/// Ports of the single KRaft node.
#[derive(Debug, Clone, Copy)]
pub struct BrokerPorts {
    /// `DIRECT` listener, advertised as itself (also the inter-broker listener).
    pub direct: u16,
    /// `HAP` listener, which haproxy forwards to.
    pub haproxy_backend: u16,
    /// `SLU` listener, which Sluice (tap on) forwards to.
    pub sluice_backend: u16,
    /// `SLUOFF` listener, which Sluice with the tap off forwards to.
    pub sluice_off_backend: u16,
    /// KRaft controller listener.
    pub controller: u16,
    /// haproxy's frontend, advertised on the `HAP` listener.
    pub haproxy_front: u16,
    /// Sluice's listener, advertised on the `SLU` listener.
    pub sluice_front: u16,
    /// The tap-off Sluice's listener, advertised on the `SLUOFF` listener.
    pub sluice_off_front: u16,
    /// The telemetry-on Sluice's `SLUTEL` listener (backend) and its own listener (front,
    /// advertised there), when that Sluice runs.
    pub telemetry: Option<(u16, u16)>,
}

impl BrokerPorts {
    /// `--config` overrides giving the broker a client listener per route (four, or five
    /// with the telemetry-on Sluice), each advertising the address its clients must come
    /// through.
    pub fn config_overrides(&self) -> Vec<String> {
        let p = self;
        let (tel_listener, tel_advertised, tel_protocol) = match p.telemetry {
            Some((backend, front)) => (
                format!(",SLUTEL://127.0.0.1:{backend}"),
                format!(",SLUTEL://127.0.0.1:{front}"),
                ",SLUTEL:PLAINTEXT",
            ),
            None => (String::new(), String::new(), ""),
        };
        vec![
            format!(
                "listeners=DIRECT://127.0.0.1:{},HAP://127.0.0.1:{},SLU://127.0.0.1:{},\
                 SLUOFF://127.0.0.1:{}{tel_listener},CONTROLLER://127.0.0.1:{}",
                p.direct, p.haproxy_backend, p.sluice_backend, p.sluice_off_backend, p.controller
            ),
            format!(
                "advertised.listeners=DIRECT://127.0.0.1:{},HAP://127.0.0.1:{},\
                 SLU://127.0.0.1:{},SLUOFF://127.0.0.1:{}{tel_advertised}",
                p.direct, p.haproxy_front, p.sluice_front, p.sluice_off_front
            ),
            format!(
                "listener.security.protocol.map=DIRECT:PLAINTEXT,HAP:PLAINTEXT,SLU:PLAINTEXT,\
                 SLUOFF:PLAINTEXT{tel_protocol},CONTROLLER:PLAINTEXT"
            ),
            "inter.broker.listener.name=DIRECT".into(),
        ]
    }
}

/// Starts `kafka-broker.sh` in `dir` (its supervisor watches this process, so the broker also
/// stops if the harness dies without cleaning up) and waits for `broker.ready`. `extra` are
/// more `KEY=VALUE` broker properties, applied after the listener settings.
pub fn start_broker(
    tools: &Tools,
    ports: &BrokerPorts,
    extra: &[String],
    dir: &Path,
) -> Result<ChildGuard> {
    let mut args = Vec::new();
    for kv in ports.config_overrides().iter().chain(extra) {
        args.extend(["--config".to_owned(), kv.clone()]);
    }
    start_node(
        tools,
        ports.direct,
        ports.controller,
        &args,
        "-Xmx1g -Xms1g",
        dir,
    )
}

/// Starts one KRaft node with `kafka-broker.sh` in `dir`: client listener `port`, controller
/// `controller`, more script arguments `args` (e.g. `--advertised`, `--config K=V`) and JVM
/// heap options `heap`; its supervisor watches this process. Waits for `broker.ready`.
pub fn start_node(
    tools: &Tools,
    port: u16,
    controller: u16,
    args: &[String],
    heap: &str,
    dir: &Path,
) -> Result<ChildGuard> {
    let state = dir.join("broker");
    std::fs::create_dir_all(&state)?;
    let mut cmd = Command::new("bash");
    cmd.arg(&tools.broker_script)
        .arg("--dir")
        .arg(&state)
        .args(["--port", &port.to_string()])
        .args(["--controller-port", &controller.to_string()])
        .args(["--watch-pid", &std::process::id().to_string()])
        .args(args)
        .env("SLUICE_KAFKA_LIBS", &tools.kafka_libs)
        .env("SLUICE_KAFKA_HEAP_OPTS", heap);
    // The supervisor needs up to its own 5 s grace to stop the JVM.
    let mut g = ChildGuard::spawn(
        "kafka broker",
        &mut cmd,
        &dir.join("broker-supervisor.log"),
        Duration::from_secs(10),
    )?;
    wait_started(&mut g, &state)?;
    Ok(g)
}

/// Waits until the node supervised by `g` in `state` reports it has started.
fn wait_started(g: &mut ChildGuard, state: &Path) -> Result<()> {
    let ready = state.join("broker.ready");
    g.wait_ready("broker.ready", Duration::from_secs(120), || ready.exists())
        .map_err(|e| {
            e.context(format!(
                "end of {}:\n{}",
                state.join("broker.log").display(),
                tail(&state.join("broker.log"), 3000)
            ))
        })
}

/// Ports of one node of a multi-node cluster (see [`start_cluster`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NodePorts {
    /// The client listener (what the node's sidecar forwards to).
    pub broker: u16,
    /// The KRaft controller listener.
    pub controller: u16,
    /// The listener the nodes replicate over (never through a sidecar).
    pub replication: u16,
    /// The address the node advertises to clients: its sidecar's listener.
    pub advertised: u16,
}

/// `kafka-broker.sh` arguments for node `i` (0-based, `node.id` i + 1) of the cluster
/// `nodes`, formatted with `cluster_id`.
pub fn node_args(nodes: &[NodePorts], i: usize, cluster_id: &str) -> Vec<String> {
    let voters = nodes
        .iter()
        .enumerate()
        .map(|(k, n)| format!("{}@127.0.0.1:{}", k + 1, n.controller))
        .collect::<Vec<_>>()
        .join(",");
    let n = &nodes[i];
    [
        "--node-id".to_owned(),
        (i + 1).to_string(),
        "--port".into(),
        n.broker.to_string(),
        "--controller-port".into(),
        n.controller.to_string(),
        "--inter-broker-port".into(),
        n.replication.to_string(),
        "--advertised".into(),
        format!("127.0.0.1:{}", n.advertised),
        "--voters".into(),
        voters,
        "--cluster-id".into(),
        cluster_id.to_owned(),
    ]
    .into()
}

/// Starts a multi-node KRaft cluster — one `kafka-broker.sh` per node in `dir/node<i>`, all
/// at once (the quorum needs a majority), each advertising its sidecar's port — and waits
/// until every node has started. `extra` are more `KEY=VALUE` broker properties for every
/// node. The sidecars are the caller's: start a Sluice per node forwarding to `broker`.
pub fn start_cluster(
    tools: &Tools,
    nodes: &[NodePorts],
    extra: &[String],
    dir: &Path,
) -> Result<Vec<ChildGuard>> {
    let id = Command::new("bash")
        .arg(&tools.broker_script)
        .arg("--new-cluster-id")
        .output()
        .context("kafka-broker.sh --new-cluster-id")?;
    let cluster_id = String::from_utf8(id.stdout)?.trim().to_owned();
    let mut guards = Vec::new();
    for i in 0..nodes.len() {
        let state = dir.join(format!("node{}", i + 1));
        std::fs::create_dir_all(&state)?;
        let mut cmd = Command::new("bash");
        cmd.arg(&tools.broker_script)
            .arg("--dir")
            .arg(&state)
            .args(node_args(nodes, i, &cluster_id))
            .args(["--watch-pid", &std::process::id().to_string()])
            .env("SLUICE_KAFKA_LIBS", &tools.kafka_libs);
        for kv in extra {
            cmd.arg("--config").arg(kv);
        }
        // The supervisor of a cluster node needs up to its own 20 s grace to stop the JVM.
        guards.push(ChildGuard::spawn(
            &format!("kafka node {}", i + 1),
            &mut cmd,
            &dir.join(format!("node{}-supervisor.log", i + 1)),
            Duration::from_secs(25),
        )?);
    }
    for (i, g) in guards.iter_mut().enumerate() {
        wait_started(g, &dir.join(format!("node{}", i + 1)))?;
    }
    Ok(guards)
}

/// Runs Kafka tools classes with the broker's jars.
#[derive(Debug, Clone)]
pub struct PerfTools {
    java: PathBuf,
    classpath: String,
    log4j: PathBuf,
    dir: PathBuf,
}

/// `ProducerPerformance`'s summary line.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ProducerResult {
    /// Records per second.
    pub records_per_sec: f64,
    /// MB (MiB, as Kafka prints it) per second.
    pub mb_per_sec: f64,
    /// Average send → ack latency, ms.
    pub avg_latency_ms: f64,
    /// 99th percentile latency, ms.
    pub p99_latency_ms: f64,
}

/// `ConsumerPerformance`'s result row.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ConsumerResult {
    /// MB/s over the fetch time only (excludes joining the group).
    pub fetch_mb_per_sec: f64,
    /// MB/s over the whole run, group join included.
    pub mb_per_sec: f64,
    /// Messages consumed.
    pub messages: u64,
    /// Record data consumed, MB (2²⁰ bytes, as Kafka prints it).
    pub data_mb: f64,
}

impl PerfTools {
    /// Writes a warn-level log4j2 config into `dir`, where each run's output also goes.
    pub fn new(tools: &Tools, dir: &Path) -> Result<PerfTools> {
        let log4j = dir.join("tools-log4j2.properties");
        std::fs::write(
            &log4j,
            "status = error\nappender.err.type = Console\nappender.err.name = STDERR\n\
             appender.err.target = SYSTEM_ERR\nappender.err.layout.type = PatternLayout\n\
             appender.err.layout.pattern = [%d] %p %c{1}: %m%n\nrootLogger.level = warn\n\
             rootLogger.appenderRef.err.ref = STDERR\n",
        )?;
        Ok(PerfTools {
            java: tools.java.clone(),
            classpath: format!("{}/*", tools.kafka_libs.display()),
            log4j,
            dir: dir.to_owned(),
        })
    }

    fn run(&self, name: &str, class: &str, args: &[String], timeout: Duration) -> Result<String> {
        let log = self.dir.join(format!("{name}.log"));
        let _ = std::fs::remove_file(&log);
        let mut cmd = Command::new(&self.java);
        cmd.args(["-Xmx1g", "-Xms256m"])
            .arg(format!(
                "-Dlog4j2.configurationFile={}",
                self.log4j.display()
            ))
            .arg("-cp")
            .arg(&self.classpath)
            .arg(class)
            .args(args);
        let mut g = ChildGuard::spawn(name, &mut cmd, &log, Duration::ZERO)?;
        let status = g.wait_timeout(timeout)?;
        let out = std::fs::read_to_string(&log).unwrap_or_default();
        if !status.success() {
            bail!(
                "{name} failed ({status}); end of {}:\n{}",
                log.display(),
                tail(&log, 3000)
            );
        }
        Ok(out)
    }

    /// `ProducerPerformance --record-size 1024 --throughput -1` with acks=1, linger.ms=5,
    /// batch.size=262144.
    pub fn produce(
        &self,
        name: &str,
        bootstrap: &str,
        topic: &str,
        records: u64,
    ) -> Result<ProducerResult> {
        let args: Vec<String> = [
            "--topic",
            topic,
            "--num-records",
            &records.to_string(),
            "--record-size",
            "1024",
            "--throughput",
            "-1",
            "--producer-props",
            &format!("bootstrap.servers={bootstrap}"),
            "acks=1",
            "linger.ms=5",
            "batch.size=262144",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let out = self.run(
            name,
            "org.apache.kafka.tools.ProducerPerformance",
            &args,
            Duration::from_secs(300),
        )?;
        parse_producer(&out).with_context(|| {
            format!(
                "no summary line in ProducerPerformance output:\n{}",
                last(&out)
            )
        })
    }

    /// `ConsumerPerformance --messages N` from the earliest offset with a fresh `group`.
    pub fn consume(
        &self,
        name: &str,
        bootstrap: &str,
        topic: &str,
        messages: u64,
        group: &str,
    ) -> Result<ConsumerResult> {
        let args: Vec<String> = [
            "--bootstrap-server",
            bootstrap,
            "--topic",
            topic,
            "--messages",
            &messages.to_string(),
            "--group",
            group,
            "--timeout",
            "30000",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let out = self.run(
            name,
            "org.apache.kafka.tools.ConsumerPerformance",
            &args,
            Duration::from_secs(300),
        )?;
        let r = parse_consumer(&out).with_context(|| {
            format!(
                "no result row in ConsumerPerformance output:\n{}",
                last(&out)
            )
        })?;
        if r.messages < messages {
            bail!(
                "ConsumerPerformance read {} of {messages} messages",
                r.messages
            );
        }
        Ok(r)
    }
}

fn last(s: &str) -> String {
    let start = s.len().saturating_sub(2000);
    let start = (start..s.len())
        .find(|&i| s.is_char_boundary(i))
        .unwrap_or(s.len());
    s[start..].to_owned()
}

/// The number just before `suffix` in `line` (e.g. `"(54.24 MB/sec)"` with `" MB/sec"`).
fn number_before(line: &str, suffix: &str) -> Option<f64> {
    let end = line.find(suffix)?;
    line[..end]
        .rsplit(|c: char| c.is_whitespace() || c == '(' || c == ',')
        .next()?
        .parse()
        .ok()
}

/// Parses the final line, e.g. `200000 records sent, 55540.1 records/sec (54.24 MB/sec),
/// 427.62 ms avg latency, 706.00 ms max latency, 434 ms 50th, 643 ms 95th, 683 ms 99th,
/// 702 ms 99.9th.`
pub fn parse_producer(out: &str) -> Option<ProducerResult> {
    let line = out
        .lines()
        .rev()
        .find(|l| l.contains("records sent") && l.contains(" 99th"))?;
    Some(ProducerResult {
        records_per_sec: number_before(line, " records/sec")?,
        mb_per_sec: number_before(line, " MB/sec")?,
        avg_latency_ms: number_before(line, " ms avg latency")?,
        p99_latency_ms: number_before(line, " ms 99th")?,
    })
}

/// Parses the CSV-like header + row that ConsumerPerformance prints.
pub fn parse_consumer(out: &str) -> Option<ConsumerResult> {
    let lines: Vec<&str> = out.lines().collect();
    let h = lines.iter().position(|l| l.starts_with("start.time"))?;
    let header: Vec<&str> = lines[h].split(',').map(str::trim).collect();
    // stderr shares the log: take the first following line that starts like a date.
    let row = lines[h + 1..]
        .iter()
        .find(|l| l.starts_with(|c: char| c.is_ascii_digit()))?;
    let row: Vec<&str> = row.split(',').map(str::trim).collect();
    let col = |name: &str| -> Option<f64> {
        let i = header.iter().position(|c| *c == name)?;
        row.get(i)?.parse().ok()
    };
    Some(ConsumerResult {
        fetch_mb_per_sec: col("fetch.MB.sec")?,
        mb_per_sec: col("MB.sec")?,
        messages: col("data.consumed.in.nMsg")? as u64,
        data_mb: col("data.consumed.in.MB")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_producer_summary() {
        let out = "100 records sent, 20.0 records/sec (0.02 MB/sec), 1.00 ms avg latency, \
                   2.00 ms max latency.\n\
                   200000 records sent, 55540.1 records/sec (54.24 MB/sec), 427.62 ms avg \
                   latency, 706.00 ms max latency, 434 ms 50th, 643 ms 95th, 683 ms 99th, \
                   702 ms 99.9th.\n";
        let r = parse_producer(out).unwrap();
        assert_eq!(
            r,
            ProducerResult {
                records_per_sec: 55540.1,
                mb_per_sec: 54.24,
                avg_latency_ms: 427.62,
                p99_latency_ms: 683.0,
            }
        );
    }

    #[test]
    fn parses_consumer_row() {
        let out = "WARN something\n\
            start.time, end.time, data.consumed.in.MB, MB.sec, data.consumed.in.nMsg, nMsg.sec, \
            rebalance.time.ms, fetch.time.ms, fetch.MB.sec, fetch.nMsg.sec\n\
            2026-11-26 00:51:22:934, 2026-11-26 00:51:24:175, 195.3125, 157.3832, 200000, \
            161160.3546, 346, 895, 218.2263, 223463.6872\n";
        let r = parse_consumer(out).unwrap();
        assert_eq!(r.messages, 200000);
        assert_eq!(r.mb_per_sec, 157.3832);
        assert_eq!(r.fetch_mb_per_sec, 218.2263);
        assert_eq!(r.data_mb, 195.3125);
    }

    #[test]
    fn cluster_nodes_share_one_quorum() {
        let nodes: Vec<NodePorts> = (0..3)
            .map(|i| NodePorts {
                broker: 100 + i,
                controller: 200 + i,
                replication: 300 + i,
                advertised: 400 + i,
            })
            .collect();
        let a = node_args(&nodes, 1, "id").join(" ");
        assert_eq!(
            a,
            "--node-id 2 --port 101 --controller-port 201 --inter-broker-port 301 \
             --advertised 127.0.0.1:401 --voters 1@127.0.0.1:200,2@127.0.0.1:201,3@127.0.0.1:202 \
             --cluster-id id"
        );
    }

    #[test]
    fn listeners_advertise_the_proxy_fronts() {
        let p = BrokerPorts {
            direct: 1,
            haproxy_backend: 2,
            sluice_backend: 3,
            sluice_off_backend: 7,
            controller: 4,
            haproxy_front: 5,
            sluice_front: 6,
            sluice_off_front: 8,
            telemetry: None,
        };
        let c = p.config_overrides();
        assert!(c[0].contains("HAP://127.0.0.1:2") && c[0].contains("SLUOFF://127.0.0.1:7"));
        assert!(c[1].contains("HAP://127.0.0.1:5") && c[1].contains("SLU://127.0.0.1:6"));
        assert!(c[1].contains("SLUOFF://127.0.0.1:8") && c[2].contains("SLUOFF:PLAINTEXT"));
        assert!(!c.concat().contains("SLUTEL"));
        let c = BrokerPorts {
            telemetry: Some((9, 10)),
            ..p
        }
        .config_overrides();
        assert!(c[0].contains(",SLUTEL://127.0.0.1:9,CONTROLLER://127.0.0.1:4"));
        assert!(c[1].ends_with(",SLUTEL://127.0.0.1:10"));
        assert!(c[2].contains(",SLUTEL:PLAINTEXT,"));
    }
}
