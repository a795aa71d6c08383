//! Telemetry over synthetic tap events: what `/metrics` shows for the incident, and that a
//! flood of random client ids stays capped.

use std::sync::Arc;
use std::time::{Duration, Instant};

use sluice_config::TelemetryConfig;
use sluice_protocol::event::ResponseSeen;
use sluice_protocol::TapEvent;

use super::Telemetry;
use crate::observer::config::DetectConfig;
use crate::observer::tests::{commit, delivered, fetch, join, meta, request};
use crate::observer::Observer;
use crate::sink::TapSink;
use crate::stats::{ProxyStats, Reason};

fn response(api_key: i16, latency_ms: u64) -> TapEvent {
    TapEvent::Response(ResponseSeen {
        api_key,
        api_version: 12,
        correlation_id: 1,
        size: 1 << 20,
        request_size: 100,
        latency: Duration::from_millis(latency_ms),
    })
}

fn start(cfg: &TelemetryConfig) -> (Arc<Observer>, Arc<Telemetry>) {
    let o = Observer::new(DetectConfig::default());
    let t = Telemetry::start(
        cfg,
        "127.0.0.1:19093",
        o.clone(),
        Arc::new(ProxyStats::default()),
        crate::throttle::Throttle::new(),
    )
    .unwrap();
    (o, t)
}

fn line<'a>(text: &'a str, starts: &str, contains: &[&str]) -> Option<&'a str> {
    text.lines()
        .find(|l| l.starts_with(starts) && contains.iter().all(|c| l.contains(c)))
}

fn value(l: &str) -> f64 {
    l.rsplit(' ').next().unwrap().parse().unwrap()
}

#[test]
fn the_incident_shows_in_the_prometheus_text() {
    let (o, t) = start(&TelemetryConfig::default());
    let sinks = t.sinks();
    let (coord, fetcher) = (meta(1, 15630), meta(2, 15631));
    for m in [&coord, &fetcher] {
        o.on_open(m);
        o.on_event(m, &request("order-service", 1));
    }
    o.on_event(&coord, &join("billing"));
    for e in commit("billing", 100) {
        o.on_event(&coord, &e);
    }
    let t0 = Instant::now();
    o.tick(t0);
    for _ in 0..6 {
        o.on_event(&fetcher, &fetch(100));
        o.on_event(&fetcher, &delivered(100, 1099, 1 << 20));
        o.on_event(&fetcher, &response(1, 3));
        for s in &sinks {
            s.on_event(&fetcher, &response(1, 3));
        }
    }
    o.tick(t0 + Duration::from_secs(1));
    let text = t.prometheus_text();
    let fetched = line(
        &text,
        "sluice_consumer_fetched_bytes_total{",
        &[
            "messaging_consumer_group_name=\"billing\"",
            "messaging_destination_name=\"orders\"",
            "messaging_destination_partition_id=\"0\"",
            "messaging_client_id=\"order-service\"",
            "network_peer_address=\"10.0.3.84\"",
        ],
    )
    .unwrap_or_else(|| panic!("{text}"));
    assert_eq!(value(fetched), (6u64 << 20) as f64);
    let again = line(
        &text,
        "sluice_consumer_redelivered_bytes_total{",
        &["billing"],
    )
    .unwrap();
    assert_eq!(value(again), (5u64 << 20) as f64);
    let finding = line(
        &text,
        "sluice_findings_active{",
        &[
            "sluice_finding_kind=\"fetch_loop\"",
            "messaging_consumer_group_name=\"billing\"",
            "messaging_destination_partition_id=\"0\"",
        ],
    )
    .unwrap_or_else(|| panic!("{text}"));
    assert_eq!(value(finding), 1.0);
    let committed = line(&text, "sluice_consumer_committed_offset{", &["billing"]).unwrap();
    assert_eq!(value(committed), 100.0);
    let position = line(&text, "sluice_consumer_fetch_position{", &["billing"]).unwrap();
    assert_eq!(value(position), 100.0);
    let end = line(&text, "sluice_partition_end_offset{", &["orders"]).unwrap();
    assert_eq!(value(end), 1100.0);
    let requests = line(
        &text,
        "sluice_client_requests_total{",
        &["kafka_api_name=\"Fetch\"", "order-service"],
    )
    .unwrap();
    assert_eq!(
        value(requests),
        2.0,
        "one Fetch on each of its two connections"
    );
    let egress = line(
        &text,
        "sluice_client_bytes_total{",
        &[
            "kafka_api_name=\"Fetch\"",
            "network_io_direction=\"transmit\"",
        ],
    )
    .unwrap();
    assert_eq!(value(egress), (6u64 << 20) as f64);
    let bucket = line(
        &text,
        "sluice_request_duration_seconds_bucket{",
        &["kafka_api_name=\"Fetch\"", "le=\"0.005\""],
    )
    .unwrap_or_else(|| panic!("{text}"));
    assert_eq!(value(bucket), 6.0);
    assert!(text.contains("# TYPE sluice_request_duration_seconds histogram"));
    assert!(
        line(
            &text,
            "target_info{",
            &[
                "service_name=\"sluice\"",
                "sluice_broker=\"127.0.0.1:19093\""
            ]
        )
        .is_some(),
        "{text}"
    );
}

#[test]
fn a_flood_of_random_client_ids_is_capped_and_counted() {
    let cfg = TelemetryConfig {
        max_series: 50,
        ..TelemetryConfig::default()
    };
    let (o, t) = start(&cfg);
    for i in 0..2_000u64 {
        let m = meta(i, 30_000 + (i % 1000) as u16);
        o.on_open(&m);
        o.on_event(&m, &request(&format!("random-{i}"), 3));
        if i % 500 == 499 {
            o.tick(Instant::now()); // the observer's thread keeps up with its queue
        }
    }
    o.tick(Instant::now());
    let text = t.prometheus_text();
    let series = text
        .lines()
        .filter(|l| l.starts_with("sluice_client_requests_total{"))
        .count();
    assert_eq!(series, 51, "50 series and one overflow series");
    let overflow = line(
        &text,
        "sluice_client_requests_total{otel_metric_overflow=\"true\"}",
        &[],
    )
    .unwrap();
    assert_eq!(value(overflow), 1950.0, "the folded series still add up");
    let counted = line(
        &text,
        "sluice_telemetry_series_overflow_total{",
        &["sluice_instrument=\"sluice.client.requests\""],
    )
    .unwrap();
    assert_eq!(value(counted), 1950.0);
}

#[test]
fn latencies_kept_in_batches_all_reach_the_histogram() {
    let (_, t) = start(&TelemetryConfig::default());
    let sinks = t.sinks();
    let m = meta(1, 15_700);
    let fetches = 2 * super::metrics::LATENCY_BATCH + 3;
    for i in 0..fetches {
        // 2 ms, except every tenth: 30 ms.
        let ms = if i % 10 == 0 { 30 } else { 2 };
        for s in &sinks {
            s.on_event(&m, &response(1, ms));
        }
    }
    for s in &sinks {
        s.on_event(&m, &response(8, 700));
    }
    let text = t.prometheus_text();
    let count = |api: &str| {
        value(
            line(
                &text,
                "sluice_request_duration_seconds_count{",
                &[&format!("kafka_api_name=\"{api}\"")],
            )
            .unwrap_or_else(|| panic!("{text}")),
        )
    };
    assert_eq!(count("Fetch"), fetches as f64, "full batches and the rest");
    assert_eq!(count("OffsetCommit"), 1.0);
    let under_5ms = line(
        &text,
        "sluice_request_duration_seconds_bucket{",
        &["kafka_api_name=\"Fetch\"", "le=\"0.005\""],
    )
    .unwrap();
    assert_eq!(value(under_5ms), (fetches - fetches.div_ceil(10)) as f64);
    let sum = line(
        &text,
        "sluice_request_duration_seconds_sum{",
        &["kafka_api_name=\"OffsetCommit\""],
    )
    .unwrap();
    assert!((value(sum) - 0.7).abs() < 1e-9, "{sum}");
    // A second collection sees the same totals: nothing is recorded twice.
    let again = t.prometheus_text();
    let fetch_count = line(
        &again,
        "sluice_request_duration_seconds_count{",
        &["kafka_api_name=\"Fetch\""],
    )
    .unwrap();
    assert_eq!(value(fetch_count), fetches as f64);
}

/// Telemetry over fresh counters, and the counters.
fn over_stats() -> (Arc<Telemetry>, Arc<ProxyStats>) {
    let stats = Arc::new(ProxyStats::default());
    let t = Telemetry::start(
        &TelemetryConfig::default(),
        "127.0.0.1:19093",
        Observer::new(DetectConfig::default()),
        stats.clone(),
        crate::throttle::Throttle::new(),
    )
    .unwrap();
    (t, stats)
}

#[test]
fn connections_closed_or_refused_for_a_limit_are_exported() {
    let (t, stats) = over_stats();
    ProxyStats::add(&stats.idle_timeouts, 3);
    ProxyStats::add(&stats.half_closed_timeouts, 2);
    let host = std::net::IpAddr::from([10, 0, 0, 7]);
    for _ in 0..5 {
        stats.refusals.add(Reason::PerHostOpen, host, None);
    }
    for _ in 0..2 {
        stats
            .refusals
            .add(Reason::PerClientRate, host, Some("churner\n"));
    }
    let text = t.prometheus_text();
    let timed_out = |why: &str| {
        let label = format!("sluice_timeout=\"{why}\"");
        line(
            &text,
            "sluice_proxy_connections_timed_out_total{",
            &[label.as_str()],
        )
        .map(value)
    };
    assert_eq!(timed_out("idle"), Some(3.0), "{text}");
    assert_eq!(timed_out("half_closed"), Some(2.0), "{text}");
    let refused =
        |labels: &[&str]| line(&text, "sluice_proxy_connections_refused_total{", labels).map(value);
    assert_eq!(
        refused(&[
            "sluice_reason=\"per_host_open\"",
            "network_peer_address=\"10.0.0.7\""
        ]),
        Some(5.0),
        "{text}"
    );
    assert_eq!(
        refused(&[
            "sluice_reason=\"per_client_rate\"",
            "messaging_client_id=\"churner\\n\""
        ]),
        Some(2.0),
        "{text}"
    );
}

#[test]
fn tls_handshake_failures_are_exported_by_kind() {
    use crate::tls::handshake::FailureKind;
    let (t, stats) = over_stats();
    ProxyStats::add(
        &stats.tls_handshake_failures[FailureKind::Plaintext.index()],
        4,
    );
    ProxyStats::add(
        &stats.tls_handshake_failures[FailureKind::Timeout.index()],
        1,
    );
    let text = t.prometheus_text();
    let failed = |kind: &str| {
        let label = format!("sluice_tls_failure=\"{kind}\"");
        line(
            &text,
            "sluice_proxy_tls_handshake_failures_total{",
            &[label.as_str()],
        )
        .map(value)
    };
    assert_eq!(failed("plaintext"), Some(4.0), "{text}");
    assert_eq!(failed("timeout"), Some(1.0), "{text}");
    assert_eq!(failed("bad_client_certificate"), Some(0.0), "{text}");
}

#[test]
fn throttle_policies_show_with_their_figures() {
    let stats = Arc::new(ProxyStats::default());
    let throttle = crate::throttle::Throttle::new();
    throttle.set_file_policies(
        sluice_config::policy_file::parse(
            "[[policy]]\nname = \"loop\"\ngroup = \"orders\"\nfetch_bytes_per_sec = 1000\n\
             [[policy]]\nname = \"watch\"\nclient_id = \"tools\"\nrequests_per_sec = 5\n\
             mode = \"dry-run\"\n",
            std::path::Path::new("p.toml"),
            std::time::SystemTime::now(),
        )
        .unwrap(),
    );
    stats
        .throttle_reload_failures
        .store(3, std::sync::atomic::Ordering::Relaxed);
    let t = Telemetry::start(
        &TelemetryConfig::default(),
        "127.0.0.1:19093",
        Observer::new(DetectConfig::default()),
        stats,
        throttle.clone(),
    )
    .unwrap();
    let text = t.prometheus_text();
    for (starts, has, v) in [
        (
            "sluice_throttle_connections{",
            &["sluice_policy=\"loop\""][..],
            0.0,
        ),
        (
            "sluice_throttle_connections{",
            &["sluice_policy=\"watch\""][..],
            0.0,
        ),
        (
            "sluice_throttle_decisions_total{",
            &["sluice_policy=\"watch\"", "sluice_mode=\"dry-run\""][..],
            0.0,
        ),
        (
            "sluice_throttle_decisions_total{",
            &["sluice_policy=\"loop\"", "sluice_mode=\"enforce\""][..],
            0.0,
        ),
        ("sluice_throttle_reload_failures_total", &[][..], 3.0),
        (
            "sluice_throttle_hints_total{",
            &["sluice_throttle_hint=\"set\""][..],
            0.0,
        ),
        (
            "sluice_throttle_hints_total{",
            &["sluice_throttle_hint=\"missed\""][..],
            0.0,
        ),
    ] {
        let l = line(&text, starts, has).unwrap_or_else(|| panic!("{starts} {has:?}: {text}"));
        assert_eq!(value(l), v, "{l}");
    }
    // No group held anything yet: no held series.
    assert!(
        !text.contains("sluice_throttle_held_bytes_total{"),
        "{text}"
    );
    // A policy removed is gone from the next collection.
    throttle.set_file_policies(Vec::new());
    let end = Instant::now() + Duration::from_secs(5);
    while t.prometheus_text().contains("sluice_policy=\"loop\"") {
        assert!(Instant::now() < end, "a removed policy still exported");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn principals_and_sasl_failures_are_exported_within_the_series_cap() {
    use sluice_protocol::event::SaslInfo;
    let cfg = TelemetryConfig {
        max_series: 10,
        ..TelemetryConfig::default()
    };
    let (o, t) = start(&cfg);
    let outcome = |error_code| {
        TapEvent::Sasl(SaslInfo::Outcome {
            error_code,
            error_message: None,
            done: true,
        })
    };
    // 40 clients authenticate, each under its own name; one more is refused.
    for i in 0..41u64 {
        let m = meta(i, 30_000 + i as u16);
        o.on_open(&m);
        o.on_event(&m, &request(&format!("app-{i}"), 17));
        o.on_event(
            &m,
            &TapEvent::Sasl(SaslInfo::Mechanism("SCRAM-SHA-512".into())),
        );
        o.on_event(&m, &TapEvent::Sasl(SaslInfo::Principal(format!("svc-{i}"))));
        o.on_event(&m, &outcome(if i == 40 { 58 } else { 0 }));
    }
    o.tick(Instant::now());
    let text = t.prometheus_text();
    let info: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("sluice_client_info{"))
        .collect();
    assert_eq!(info.len(), 11, "10 series and one overflow series:\n{text}");
    assert!(
        info.iter().any(|l| l.contains("enduser_id=\"svc-")),
        "{text}"
    );
    let failures = line(
        &text,
        "sluice_sasl_failures_total{",
        &["sluice_sasl_mechanism=\"SCRAM-SHA-512\""],
    )
    .unwrap_or_else(|| panic!("{text}"));
    assert_eq!(value(failures), 1.0);
}
