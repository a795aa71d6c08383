//! A second opinion on the tap: record real client traffic through Sluice with `tcpdump` on
//! loopback, have `tshark`'s Kafka dissector read the capture, and compare per API key the
//! request counts and correlation ids with what the tap reported.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use sluice_integration_tests::net::wait_until;
use sluice_integration_tests::{unique, Client, Cluster};
use sluice_protocol::TapEvent;

fn have(tool: &str) -> bool {
    Command::new("sh")
        .args([
            "-c",
            &format!("command -v {tool} || test -x /usr/sbin/{tool} || test -x /usr/bin/{tool}"),
        ])
        .stdout(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

#[test]
fn tap_agrees_with_tshark_on_requests_and_correlation_ids() {
    assert!(
        have("tcpdump") && have("tshark"),
        "tcpdump and tshark are installed by scripts/setup.sh"
    );
    let cluster = Cluster::start();
    let port = cluster.proxy_addr.port();
    let topic = unique("capture");
    let group = unique("capture-group");
    cluster.create_topic(&topic, 2);

    let dir = std::env::temp_dir().join(unique("sluice-capture"));
    std::fs::create_dir_all(&dir).unwrap();
    let pcap = dir.join("proxy.pcap");
    let mut tcpdump = Command::new("tcpdump")
        .args(["-i", "lo", "-n", "-U", "-s", "0", "-w"])
        .arg(&pcap)
        .arg(format!("tcp port {port}"))
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("start tcpdump");
    // tcpdump says "listening on lo" once the capture is live.
    let stderr = tcpdump.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    loop {
        let line = rx
            .recv_timeout(Duration::from_secs(20))
            .expect("tcpdump did not start");
        if line.contains("listening on") {
            break;
        }
    }
    let first_event = cluster.events.len();
    let first_conn = cluster
        .stats
        .connections_accepted
        .load(std::sync::atomic::Ordering::Relaxed);

    Client::Java
        .produce(&cluster.tools, &cluster.bootstrap(), &topic, 400, 3)
        .unwrap();
    Client::Go
        .consume(&cluster.tools, &cluster.bootstrap(), &topic, &group, 400)
        .unwrap();
    wait_until("connections closed", Duration::from_secs(30), || {
        cluster
            .stats
            .connections_open
            .load(std::sync::atomic::Ordering::Relaxed)
            == 0
    });
    let _ = Command::new("kill")
        .args(["-INT", &tcpdump.id().to_string()])
        .status();
    let _ = tcpdump.wait();

    let out = Command::new("tshark")
        .arg("-r")
        .arg(&pcap)
        .args([
            "-d",
            &format!("tcp.port=={port},kafka"),
            "-Y",
            &format!("kafka && tcp.dstport=={port}"),
        ])
        .args([
            "-T",
            "fields",
            "-E",
            "separator=;",
            "-E",
            "aggregator=,",
            "-e",
            "kafka.api_key",
            "-e",
            "kafka.correlation_id",
        ])
        .output()
        .expect("run tshark");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut tshark: BTreeMap<i16, Vec<i32>> = BTreeMap::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        // One packet may carry several requests: each field is then a comma-joined list.
        let Some((keys, ids)) = line.split_once(';') else {
            continue;
        };
        for (k, c) in keys.split(',').zip(ids.split(',')) {
            if let (Ok(k), Ok(c)) = (k.parse(), c.parse()) {
                tshark.entry(k).or_default().push(c);
            }
        }
    }
    let mut tap: BTreeMap<i16, Vec<i32>> = BTreeMap::new();
    let events = cluster.events.select(|c, e| match e {
        TapEvent::Request(r) if c.id > first_conn => Some((r.api_key, r.correlation_id)),
        _ => None,
    });
    assert!(cluster.events.len() > first_event);
    for (k, c) in events {
        tap.entry(k).or_default().push(c);
    }
    for v in tap.values_mut().chain(tshark.values_mut()) {
        v.sort_unstable();
    }
    assert!(
        tap.contains_key(&0) && tap.contains_key(&1),
        "produce and fetch seen: {:?}",
        tap.keys()
    );
    assert_eq!(tap, tshark, "tap (left) and tshark (right) disagree");
    let _ = std::fs::remove_dir_all(&dir);
    cluster.stop();
}
