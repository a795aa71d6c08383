//! The detectors against real clients misbehaving through Sluice in front of a real broker:
//! each finding must name the right host, port, client.id, software, group, topic and
//! partition within 10 seconds of the misbehaviour starting. Times to detect go to the
//! detection report (`detect-report.txt`, printed by scripts/test.sh).

use std::time::{Duration, Instant};

use serde_json::Value;
use sluice_integration_tests::scenario::{args as s, consume_loop, json_trickle, poisoned_topic};
use sluice_integration_tests::{findings, unique, Client, Cluster};
use sluice_protocol::TapEvent;

const DEADLINE: Duration = Duration::from_secs(10);

/// When the client first fetched (the misbehaviour can't start before), waiting for it.
fn first_fetch(cluster: &Cluster, client_id: &str) -> Instant {
    let end = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(t) = cluster.events.first_time(|_, e| {
            matches!(e, TapEvent::Request(r) if r.api_key == 1 && r.client_id.as_deref() == Some(client_id))
        }) {
            return t;
        }
        assert!(Instant::now() < end, "{client_id} never fetched");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn check_loop(cluster: &Cluster, label: &str, client: Client, extra: &[&str], software: &str) {
    let topic = poisoned_topic(cluster, &format!("loop-{label}"));
    let group = unique(&format!("billing-{label}"));
    let client_id = unique(&format!("billing-service-{label}"));
    // A trickle of new records while the consumer loops, as in the incident.
    let trickle = json_trickle(&cluster.tools, &cluster.bootstrap(), &topic, 100);
    let consumer = consume_loop(
        client,
        &cluster.tools,
        &cluster.bootstrap(),
        &topic,
        &group,
        &client_id,
        extra,
    );
    let start = first_fetch(cluster, &client_id);
    let on_topic = |e: &Value| e["topic"] == topic.as_str();
    let (t_loop, f) = findings::wait_for(cluster, "fetch_loop", start, DEADLINE, |e| {
        on_topic(e) && e["client_id"] == client_id.as_str()
    });
    let e = &f["evidence"];
    assert_eq!(e["client_host"], "127.0.0.1");
    assert_eq!(e["group"], group.as_str(), "{f:#}");
    assert_eq!(e["partition"], 0);
    assert_eq!(e["offset"], 100, "{f:#}");
    assert!(
        e["software"].as_str().unwrap_or("").contains(software),
        "{f:#}"
    );
    assert!(
        e["committed_offset"].is_null() || e["committed_offset"] == 100,
        "{f:#}"
    );
    // The port is one of this client's open connections.
    let port = e["client_port"].as_u64().unwrap();
    let conns = cluster.observer.connections_json();
    assert!(
        conns
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["client_id"] == client_id.as_str()
                && c["client_addr"]
                    .as_str()
                    .unwrap()
                    .ends_with(&format!(":{port}"))),
        "port {port} is not a connection of {client_id}: {conns:#}"
    );
    let (t_nc, _) = findings::wait_for(cluster, "fetch_without_commit", start, DEADLINE, |e| {
        e["group"] == group.as_str()
    });
    let (t_amp, _) = findings::wait_for(cluster, "egress_amplification", start, DEADLINE, on_topic);
    findings::report(&format!(
        "time to detect, {label} consumer loop: fetch_loop {:.1}s, fetch_without_commit {:.1}s, egress_amplification {:.1}s (from its first fetch)",
        t_loop.as_secs_f64(), t_nc.as_secs_f64(), t_amp.as_secs_f64()
    ));
    drop(consumer);
    drop(trickle);
}

#[test]
fn java_consumer_seeking_back_to_a_malformed_record_is_the_incident() {
    check_loop(
        Cluster::shared(),
        "java",
        Client::Java,
        &[],
        "apache-kafka-java",
    );
}

#[test]
fn librdkafka_consumer_seeking_back_loops_too() {
    check_loop(
        Cluster::shared(),
        "librdkafka",
        Client::Python,
        &["--fetch-max-wait-ms", "50"],
        "rdkafka",
    );
}

#[test]
fn franz_go_consumer_seeking_back_loops_too() {
    check_loop(Cluster::shared(), "franz-go", Client::Go, &[], "kgo");
}

fn check_churn(no_close: bool) {
    let cluster = Cluster::shared();
    let topic = unique("notifications");
    cluster.create_topic(&topic, 1);
    let label = if no_close { "never closed" } else { "closed" };
    let client_id = unique(if no_close {
        "notifier-leak"
    } else {
        "notifier"
    });
    let mut args = s(&[
        "churn",
        "--bootstrap",
        &cluster.bootstrap(),
        "--topic",
        &topic,
        "--count",
        "80",
        "--rate",
        "10",
        "--client-id",
        &client_id,
    ]);
    if no_close {
        args.push("--no-close".into());
    }
    let app = Client::Java.spawn(&cluster.tools, &args);
    let start = {
        let end = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(t) = cluster.events.first_time(|_, e| {
                matches!(e, TapEvent::Request(r) if r.client_id.as_deref() == Some(client_id.as_str()))
            }) {
                break t;
            }
            assert!(Instant::now() < end, "{client_id} never connected");
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    let (t, f) = findings::wait_for(cluster, "connection_churn", start, DEADLINE, |e| {
        e["client_id"] == client_id.as_str()
    });
    assert_eq!(f["evidence"]["client_host"], "127.0.0.1");
    assert!(
        f["evidence"]["software"]
            .as_str()
            .unwrap_or("")
            .contains("apache-kafka-java"),
        "{f:#}"
    );
    findings::report(&format!(
        "time to detect, producer per message ({label}): connection_churn {:.1}s — {}",
        t.as_secs_f64(),
        f["summary"].as_str().unwrap_or("")
    ));
    app.finish(Duration::from_secs(60)).unwrap();
}

#[test]
fn a_new_producer_per_message_is_connection_churn() {
    check_churn(false);
}

#[test]
fn a_new_producer_per_message_never_closed_is_connection_churn() {
    check_churn(true);
}
