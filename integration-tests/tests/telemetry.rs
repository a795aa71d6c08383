//! Telemetry against the real OpenTelemetry Collector: real clients through Sluice in front
//! of a real broker, the incident's fetch loop among them; the collector's file exporter must
//! receive the metrics, attributes and spans an operator needs, over gRPC and over
//! HTTP/protobuf. `/metrics` must pass `promtool check metrics`.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use sluice_config::OtlpProtocol;
use sluice_integration_tests::collector::{metric_points, spans, Point, PointValue, SpanRec};
use sluice_integration_tests::scenario::{args, poisoned_topic};
use sluice_integration_tests::{findings, unique, Client, Cluster, Collector, Tools};

const DEADLINE: Duration = Duration::from_secs(60);

fn cluster_exporting_to(collector: &Collector, protocol: OtlpProtocol, ratio: f64) -> Cluster {
    let endpoint = match protocol {
        OtlpProtocol::Grpc => collector.grpc_endpoint(),
        OtlpProtocol::HttpProtobuf => collector.http_endpoint(),
    };
    Cluster::start_with(move |c| {
        c.telemetry.otlp_endpoint = sluice_config::SecretUrl::new(endpoint);
        c.telemetry.otlp_protocol = protocol;
        c.telemetry.metrics_interval = Duration::from_millis(500);
        c.telemetry.span_sample_ratio = ratio;
        c.telemetry.slow_request = Duration::from_secs(30);
        c.telemetry.service_name = "sluice-it".to_owned();
        c.telemetry.resource_attributes = vec![("deployment.environment".into(), "test".into())];
    })
}

/// Waits until a point of `metric` satisfies `pred`.
fn wait_point(collector: &Collector, metric: &str, pred: impl Fn(&Point) -> bool) -> Point {
    collector
        .wait_for(
            sluice_integration_tests::collector::Signal::Metrics,
            DEADLINE,
            |lines| {
                metric_points(lines, metric)
                    .into_iter()
                    .rev()
                    .find(|p| pred(p))
            },
        )
        .unwrap_or_else(|e| panic!("{metric}: {e}"))
}

/// Waits until a span satisfies `pred`.
fn wait_span(collector: &Collector, what: &str, pred: impl Fn(&SpanRec) -> bool) -> SpanRec {
    collector
        .wait_for(
            sluice_integration_tests::collector::Signal::Traces,
            DEADLINE,
            |lines| spans(lines).into_iter().find(|s| pred(s)),
        )
        .unwrap_or_else(|e| panic!("span {what}: {e}"))
}

fn http_get(addr: SocketAddr, path: &str) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let (head, body) = out.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    body.to_owned()
}

fn promtool(tools: &Tools) -> PathBuf {
    std::env::var_os("PROMTOOL")
        .map(PathBuf::from)
        .or_else(|| sluice_integration_tests::tools::on_path("promtool"))
        .or_else(|| Some(tools.cache.join("bin/promtool")).filter(|p| p.exists()))
        .expect("promtool not found: scripts/setup.sh installs Debian's prometheus package")
}

fn check_metrics(tools: &Tools, text: &str) {
    let mut child = Command::new(promtool(tools))
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn the_fetch_loop_reaches_the_collector_over_grpc_as_metrics_and_spans() {
    let tools = Tools::load();
    let collector = Collector::start(&tools);
    // No random sampling: the looping consumer's spans must be kept because of its finding.
    let cluster = cluster_exporting_to(&collector, OtlpProtocol::Grpc, 0.0);
    let topic = poisoned_topic(&cluster, "otel-loop");
    let group = unique("otel-billing");
    let client_id = unique("otel-billing-service");
    let consumer = Client::Java.spawn(
        &cluster.tools,
        &args(&[
            "consume-loop",
            "--bootstrap",
            &cluster.bootstrap(),
            "--topic",
            &topic,
            "--group",
            &group,
            "--duration-s",
            "40",
            "--client-id",
            &client_id,
        ]),
    );
    findings::wait_for(
        &cluster,
        "fetch_loop",
        std::time::Instant::now(),
        DEADLINE,
        |e| e["topic"] == topic.as_str(),
    );

    let is_ours = |p: &Point| {
        p.attr("messaging.consumer.group.name") == Some(&group)
            && p.attr("messaging.destination.name") == Some(&topic)
    };
    let finding = wait_point(&collector, "sluice.findings.active", |p| {
        is_ours(p) && p.attr("sluice.finding.kind") == Some("fetch_loop")
    });
    assert_eq!(finding.number(), Some(1.0));
    assert_eq!(
        finding.attr("messaging.destination.partition.id"),
        Some("0")
    );
    assert_eq!(
        finding.attr("messaging.client.id"),
        Some(client_id.as_str())
    );
    assert_eq!(finding.attr("network.peer.address"), Some("127.0.0.1"));
    assert_eq!(finding.attr("messaging.system"), Some("kafka"));
    assert_eq!(
        finding.resource.get("service.name").map(String::as_str),
        Some("sluice-it")
    );
    assert_eq!(
        finding.resource.get("sluice.broker"),
        Some(&cluster.broker_addr.to_string())
    );
    assert_eq!(
        finding
            .resource
            .get("deployment.environment")
            .map(String::as_str),
        Some("test")
    );

    let again = wait_point(&collector, "sluice.consumer.redelivered", |p| {
        is_ours(p) && p.number().unwrap_or(0.0) > 100_000.0
    });
    assert_eq!(again.attr("messaging.client.id"), Some(client_id.as_str()));
    // Fetched bytes include the re-delivered ones (a point of the same export or later).
    wait_point(&collector, "sluice.consumer.fetched", |p| {
        is_ours(p) && p.number() >= again.number()
    });
    wait_point(&collector, "sluice.client.requests", |p| {
        p.attr("messaging.client.id") == Some(&client_id)
            && p.attr("kafka.api.name") == Some("Fetch")
    });
    wait_point(&collector, "sluice.client.bytes", |p| {
        p.attr("messaging.client.id") == Some(&client_id)
            && p.attr("network.io.direction") == Some("transmit")
            && p.number().unwrap_or(0.0) > 0.0
    });
    let latency = wait_point(&collector, "sluice.request.duration", |p| {
        p.attr("kafka.api.name") == Some("Fetch")
    });
    assert!(matches!(latency.value, PointValue::Histogram { count, .. } if count > 0));
    wait_point(&collector, "sluice.partition.end.offset", |p| {
        p.attr("messaging.destination.name") == Some(&topic) && p.number() >= Some(3000.0)
    });
    wait_point(&collector, "sluice.connections.open", |p| {
        p.attr("messaging.client.id") == Some(&client_id) && p.number() >= Some(1.0)
    });
    wait_point(&collector, "sluice.client.info", |p| {
        p.attr("messaging.client.id") == Some(&client_id)
            && p.attr("sluice.client.software.name") == Some("apache-kafka-java")
    });

    // Spans: the looping consumer's Fetch pairs, kept because it is under a finding.
    let fetch = wait_span(&collector, "Fetch of the looping consumer", |s| {
        s.name == "Fetch" && s.attributes.get("messaging.client.id") == Some(&client_id)
    });
    assert_eq!(
        fetch.attributes["sluice.sampled_by"], "finding",
        "{fetch:#?}"
    );
    assert_eq!(fetch.attributes["kafka.api.key"], "1");
    assert!(fetch.attributes.contains_key("kafka.correlation_id"));
    assert_eq!(fetch.attributes["network.peer.address"], "127.0.0.1");
    assert!(
        fetch.start_unix_nano > 0 && fetch.end_unix_nano > fetch.start_unix_nano,
        "a span from the request to its response: {fetch:#?}"
    );
    assert!(
        fetch.attributes["sluice.response.size"]
            .parse::<u64>()
            .unwrap()
            > 0
    );
    let raised = wait_span(&collector, "finding fetch_loop", |s| {
        s.name == "finding fetch_loop"
            && s.attributes.get("messaging.destination.name") == Some(&topic)
    });
    assert!(
        raised.events.iter().any(|e| e.name == "finding.raised"),
        "{raised:#?}"
    );
    // Nothing else was sampled: the ratio is 0 and no request took 30 s.
    let others: Vec<_> = spans(&collector.traces_lines())
        .into_iter()
        .filter(|s| {
            s.attributes
                .get("sluice.sampled_by")
                .is_some_and(|b| b == "ratio" || b == "slow")
        })
        .collect();
    assert!(others.is_empty(), "{others:#?}");

    // The same instruments, scraped.
    let text = http_get(cluster.admin_addr, "/metrics");
    check_metrics(&tools, &text);
    assert!(
        text.lines()
            .any(|l| l.starts_with("sluice_findings_active{")
                && l.contains(&format!("messaging_consumer_group_name=\"{group}\""))
                && l.contains("sluice_finding_kind=\"fetch_loop\"")),
        "{text}"
    );
    drop(consumer);
}

#[test]
fn healthy_traffic_reaches_the_collector_over_http_with_sampled_spans() {
    let tools = Tools::load();
    let collector = Collector::start(&tools);
    let cluster = cluster_exporting_to(&collector, OtlpProtocol::HttpProtobuf, 1.0);
    let topic = unique("otel-http");
    let group = unique("otel-http-group");
    cluster.create_topic(&topic, 2);
    let produced = Client::Go
        .produce(&cluster.tools, &cluster.bootstrap(), &topic, 500, 7)
        .unwrap();
    assert_eq!(produced.produced, 500);
    let consumed = Client::Python
        .consume(&cluster.tools, &cluster.bootstrap(), &topic, &group, 500)
        .unwrap();
    assert_eq!(consumed.consumed, 500);

    let produce = wait_point(&collector, "sluice.topic.bytes", |p| {
        p.attr("messaging.destination.name") == Some(&topic)
            && p.attr("sluice.flow") == Some("produce")
            && p.number() > Some(0.0)
    });
    assert_eq!(
        produce.resource.get("service.name").map(String::as_str),
        Some("sluice-it")
    );
    let committed = wait_point(&collector, "sluice.consumer.committed.offset", |p| {
        p.attr("messaging.consumer.group.name") == Some(&group) && p.number() > Some(0.0)
    });
    assert_eq!(
        committed.attr("messaging.destination.name"),
        Some(topic.as_str())
    );
    wait_point(&collector, "sluice.consumer.fetched", |p| {
        p.attr("messaging.consumer.group.name") == Some(&group) && p.number() > Some(0.0)
    });
    // Every pair is sampled at ratio 1: produce and commit spans name their topic and group.
    let commit = wait_span(&collector, "OffsetCommit", |s| {
        s.name == "OffsetCommit"
            && s.attributes.get("messaging.consumer.group.name") == Some(&group)
    });
    assert_eq!(commit.attributes["sluice.sampled_by"], "ratio");
    wait_span(&collector, "Produce", |s| s.name == "Produce");
    // A healthy group raises no finding, so no finding spans.
    assert!(findings::mentioning(&cluster, &[&group, &topic]).is_empty());
}
