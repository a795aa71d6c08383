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

/// Starts `tcpdump` on loopback for `port`, writing to `pcap`; returns once the capture is live
/// (tcpdump says "listening on"). `--immediate-mode` so that no packet waits in a buffer
/// when the capture is stopped.
#[allow(clippy::zombie_processes)] // handed to the caller, which stops and waits for it
fn start_capture(pcap: &std::path::Path, port: u16) -> std::process::Child {
    let mut tcpdump = Command::new("tcpdump")
        .args(["-i", "lo", "-n", "-U", "--immediate-mode", "-s", "0", "-w"])
        .arg(pcap)
        .arg(format!("tcp port {port}"))
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("start tcpdump");
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
            return tcpdump;
        }
    }
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
    let mut tcpdump = start_capture(&pcap, port);
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
            "tcp.srcport",
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
    // Only the connections opened after the capture started, on both sides: a client of the
    // setup (e.g. the topic's creation) may still send a request on a connection it opened
    // before.
    let ports: std::collections::BTreeSet<u16> = cluster
        .events
        .select(|c, _| (c.id > first_conn).then_some(c.client_addr.port()))
        .into_iter()
        .collect();
    let mut tshark: BTreeMap<i16, Vec<i32>> = BTreeMap::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        // One packet may carry several requests: each field is then a comma-joined list.
        let mut fields = line.split(';');
        let (Some(port), Some(keys), Some(ids)) = (fields.next(), fields.next(), fields.next())
        else {
            continue;
        };
        if !port.parse().is_ok_and(|p: u16| ports.contains(&p)) {
            continue;
        }
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

/// Splits `tshark -z follow,tcp,raw` output into (client → broker, broker → client) bytes.
fn follow_raw(text: &str) -> (Vec<u8>, Vec<u8>) {
    let (mut up, mut down) = (Vec::new(), Vec::new());
    let hex = |s: &str| -> Vec<u8> {
        (0..s.len() / 2)
            .filter_map(|i| u8::from_str_radix(&s[2 * i..2 * i + 2], 16).ok())
            .collect()
    };
    for line in text.lines() {
        if line.starts_with('=') || line.contains(':') || line.trim().is_empty() {
            continue;
        }
        if let Some(rest) = line.strip_prefix('\t') {
            down.extend(hex(rest.trim()));
        } else {
            up.extend(hex(line.trim()));
        }
    }
    (up, down)
}

/// Records real Kafka sessions (Java producer, Java consumer in a group) through Sluice and
/// writes each connection's two byte streams to `protocol-ext/fixtures/`, for the benches and
/// the fuzz corpus. Run by hand: `cargo test -p sluice-integration-tests --test capture_check
/// -- --ignored record_fixtures`.
#[test]
#[ignore = "regenerates checked-in fixtures"]
fn record_fixtures() {
    let cluster = Cluster::start();
    let port = cluster.proxy_addr.port();
    let topic = "orders";
    cluster.create_topic(topic, 2);
    let dir = std::env::temp_dir().join(unique("sluice-fixtures"));
    std::fs::create_dir_all(&dir).unwrap();
    let pcap = dir.join("session.pcap");
    let mut tcpdump = start_capture(&pcap, port);
    Client::Java
        .produce(&cluster.tools, &cluster.bootstrap(), topic, 600, 9)
        .unwrap();
    Client::Java
        .consume(&cluster.tools, &cluster.bootstrap(), topic, "billing", 600)
        .unwrap();
    let commits = cluster.events.select(|c, e| match e {
        TapEvent::OffsetCommit { group_id, .. } if group_id == "billing" => Some(c.id),
        _ => None,
    });
    eprintln!("commits seen live on connections {commits:?}");
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
    let out_dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../protocol-ext/fixtures");
    std::fs::create_dir_all(&out_dir).unwrap();
    for stream in 0.. {
        let out = Command::new("tshark")
            .arg("-r")
            .arg(&pcap)
            .args(["-q", "-z", &format!("follow,tcp,raw,{stream}")])
            .output()
            .unwrap();
        let (up, down) = follow_raw(&String::from_utf8_lossy(&out.stdout));
        if up.is_empty() && down.is_empty() {
            break;
        }
        std::fs::write(
            out_dir.join(format!("java-session-{stream}.requests.bin")),
            &up,
        )
        .unwrap();
        std::fs::write(
            out_dir.join(format!("java-session-{stream}.responses.bin")),
            &down,
        )
        .unwrap();
    }
    cluster.stop();
}
