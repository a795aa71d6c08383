//! The shipped dashboard and alerts in a real Prometheus (Debian's `prometheus`), fed both ways
//! at once: it scrapes Sluice's `/metrics` (job `sluice`, instance `127.0.0.1:PORT`) and
//! receives the same instruments from a real OpenTelemetry Collector's
//! `prometheusremotewrite` exporter (instance `sidecar-otlp`, Sluice's service.instance.id).
//!
//! First a healthy group under a producer trickle, for longer than the longest `for`: no alert
//! may fire. Then the incident beside it: a consumer group looping on a malformed record, and
//! a client opening a producer per message. Every incident alert must fire within its `for`
//! plus one evaluation interval of its condition being true, every query of every dashboard
//! panel must return data (with "All" selected, and with each of the two instances
//! selected), and the panels meant to show the incident must show its series. Last, a
//! headless Chromium takes a screenshot of the Prometheus graph page of re-delivered bytes by
//! group (`$CARGO_TARGET_DIR/prometheus-graph.png`, printed by scripts/test.sh), and its DOM
//! must name the looping group in the graph's legend.
//!
//! The alert rules are deploy/prometheus/sluice-alerts.yml with each `for:` divided by
//! [`FOR_DIVISOR`] (1m becomes 2 s, 10m becomes 20 s): a test cannot wait ten minutes. Every
//! expression is the shipped one, unchanged. Both feeds count every byte and connection, so
//! the cluster-wide sums in the alerts see twice the real rates here (the deploy docs say to
//! use one feed per sidecar); the per-finding alerts are not affected.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde_json::Value;
use sluice_integration_tests::consumer::trickle;
use sluice_integration_tests::dashboard::{self, Var};
use sluice_integration_tests::prometheus::{scale_for, Prometheus, Setup};
use sluice_integration_tests::scenario::{args, consume_loop, json_trickle, poisoned_topic};
use sluice_integration_tests::{browser, unique, Client, Cluster, Collector, Consume, Tools};

/// Scrape and rule evaluation interval.
const INTERVAL: Duration = Duration::from_secs(1);
/// Every `for:` of the shipped rules is divided by this.
const FOR_DIVISOR: u64 = 30;
/// `$__rate_interval` as Grafana computes it for this data source: max(4 × the 1 s scrape
/// interval, $__interval + scrape interval), $__interval being well under 3 s on a dashboard
/// of the last few minutes.
const RATE_INTERVAL: &str = "4s";
/// The collector-fed sidecar's `service.instance.id`, its `instance` label in Prometheus.
const OTLP_INSTANCE: &str = "sidecar-otlp";
/// The alerts the incident must fire. Not among them: the rebalance storm, telemetry and
/// throttle alerts (other troubles), SluiceConsumerNotCommitting (a loop that returns to its
/// committed offset is left to the fetch-loop alerts by design) and SluiceConsumerLagGrowing
/// (a lag growing for 30 minutes; the looping group's lag does not grow).
const INCIDENT_ALERTS: [&str; 7] = [
    "SluiceFindingFetchLoop",
    "SluiceFindingFetchWithoutCommit",
    "SluiceFindingEgressAmplification",
    "SluiceFindingConnectionChurn",
    "SluiceEgressAmplification",
    "SluiceGroupRedelivery",
    "SluiceClientConnectionStorm",
];
/// How long the incident may take to make every alert's condition true and fire it.
const INCIDENT_DEADLINE: Duration = Duration::from_secs(120);
/// A dashboard query that returns nothing for this long has no data.
const EMPTY_FOR: Duration = Duration::from_secs(5);
/// How often the test polls Prometheus.
const POLL: Duration = Duration::from_millis(250);

fn firing(prom: &Prometheus) -> Vec<Value> {
    prom.alerts()
        .unwrap()
        .into_iter()
        .filter(|a| a["state"] == "firing")
        .collect()
}

fn wait_for_series(prom: &Prometheus, what: &str, expr: &str, deadline: Duration) {
    let end = Instant::now() + deadline;
    loop {
        if prom.query(expr).is_ok_and(|r| !r.is_empty()) {
            return;
        }
        assert!(
            Instant::now() < end,
            "no {what} ({expr}) in Prometheus after {deadline:?}; log:\n{}",
            prom.log_tail(20)
        );
        std::thread::sleep(POLL);
    }
}

/// The alert rules, with their shipped expressions and scaled `for`, as Prometheus loaded them.
fn loaded_rules(prom: &Prometheus) -> BTreeMap<String, (String, Duration)> {
    prom.rule_groups()
        .unwrap()
        .iter()
        .flat_map(|g| g["rules"].as_array().cloned().unwrap_or_default())
        .filter(|r| r["type"] == "alerting")
        .map(|r| {
            (
                r["name"].as_str().unwrap().to_owned(),
                (
                    r["query"].as_str().unwrap().to_owned(),
                    Duration::from_secs_f64(r["duration"].as_f64().unwrap()),
                ),
            )
        })
        .collect()
}

/// A labelled series of `result` has `label` == `value`.
fn names(result: &[Value], label: &str, value: &str) -> bool {
    result.iter().any(|s| s["metric"][label] == value)
}

#[test]
fn the_dashboard_and_alerts_show_the_incident_in_a_real_prometheus() {
    let tools = Tools::load();
    let rules_dir = tempfile::tempdir().unwrap();
    let shipped =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../deploy/prometheus/sluice-alerts.yml");
    let (scaled, longest_for) = scale_for(&std::fs::read_to_string(&shipped).unwrap(), FOR_DIVISOR);
    let rules = rules_dir.path().join("sluice-alerts.yml");
    std::fs::write(&rules, scaled).unwrap();
    let prom = Prometheus::start(&Setup {
        interval: INTERVAL,
        jobs: vec!["sluice".into()],
        rule_files: vec![rules],
    });
    let collector = Collector::start_remote_writing(&tools, &prom.remote_write_url());

    let looping_group = unique("prom-billing");
    let policies = rules_dir.path().join("policies.toml");
    // A dry-run throttle policy on the looping group: the throttle panels' series, and no
    // byte held back.
    std::fs::write(
        &policies,
        format!(
            "[[policy]]\nname = \"prom-billing\"\ngroup = \"{looping_group}\"\n\
             fetch_bytes_per_sec = \"256KiB\"\nmode = \"dry-run\"\n"
        ),
    )
    .unwrap();
    let endpoint = collector.grpc_endpoint();
    let cluster = Cluster::start_keys(
        &[("throttle.policy_file", policies.to_str().unwrap())],
        move |c| {
            c.telemetry.otlp_endpoint = sluice_config::SecretUrl::new(endpoint);
            c.telemetry.metrics_interval = Duration::from_millis(500);
            c.telemetry.service_name = "sluice".to_owned();
            c.telemetry.resource_attributes =
                vec![("service.instance.id".into(), OTLP_INSTANCE.into())];
        },
    );
    prom.scrape("sluice", cluster.admin_addr);
    let scraped_instance = cluster.admin_addr.to_string();
    let rules = loaded_rules(&prom);
    for name in INCIDENT_ALERTS {
        assert!(rules.contains_key(name), "{name} not loaded: {rules:#?}");
    }

    // Healthy: a group committing as it reads, under a producer trickle.
    let healthy_topic = unique("prom-orders");
    let healthy_group = unique("prom-analytics");
    cluster.create_topic(&healthy_topic, 1);
    let boot = cluster.bootstrap();
    let orders = trickle(
        &tools,
        &boot,
        &healthy_topic,
        5,
        Duration::from_secs(240),
        &unique("prom-order-api"),
    );
    let healthy = Consume::group(
        Client::Go,
        &healthy_topic,
        &healthy_group,
        &unique("prom-analytics-1"),
        Duration::from_secs(240),
    )
    .spawn(&tools, &boot);
    for instance in [scraped_instance.as_str(), OTLP_INSTANCE] {
        wait_for_series(
            &prom,
            "the healthy group's committed offset",
            &format!(
                "sluice_consumer_committed_offset{{instance=\"{instance}\", messaging_consumer_group_name=\"{healthy_group}\"}} > 0"
            ),
            Duration::from_secs(60),
        );
    }
    // Longer than the longest `for`, plus an evaluation: nothing fires.
    let quiet_until = Instant::now() + longest_for + 2 * INTERVAL;
    while Instant::now() < quiet_until {
        let f = firing(&prom);
        assert!(f.is_empty(), "alerts fired for healthy traffic: {f:#?}");
        std::thread::sleep(POLL);
    }

    // The incident, beside the healthy group.
    let topic = poisoned_topic(&cluster, "prom-payments");
    let looper_id = unique("prom-billing-service");
    let churner_id = unique("prom-notifier");
    let _new_records = json_trickle(&tools, &boot, &topic, 600);
    let _looper = consume_loop(
        Client::Java,
        &tools,
        &boot,
        &topic,
        &looping_group,
        &looper_id,
        &["--duration-s", "180"],
    );
    let _churner = Client::Java.spawn(
        &tools,
        &args(&[
            "churn",
            "--bootstrap",
            &boot,
            "--topic",
            &unique("prom-notifications"),
            "--count",
            "1800",
            "--rate",
            "10",
            "--client-id",
            &churner_id,
        ]),
    );
    let started = Instant::now();
    let mut true_at: BTreeMap<&str, Instant> = BTreeMap::new();
    let mut fired: BTreeMap<&str, Duration> = BTreeMap::new();
    while fired.len() < INCIDENT_ALERTS.len() {
        assert!(
            started.elapsed() < INCIDENT_DEADLINE,
            "after {INCIDENT_DEADLINE:?}: condition true for {:?}, fired {fired:?}; alerts: {:#?}",
            true_at.keys(),
            prom.alerts().unwrap()
        );
        let now_firing = firing(&prom);
        for name in INCIDENT_ALERTS {
            if fired.contains_key(name) {
                continue;
            }
            let (expr, for_) = &rules[name];
            if !true_at.contains_key(name) && prom.query(expr).is_ok_and(|r| !r.is_empty()) {
                true_at.insert(name, Instant::now());
            }
            if now_firing.iter().any(|a| a["labels"]["alertname"] == name) {
                let since = true_at.get(name).map(Instant::elapsed).unwrap_or_default();
                // Within `for` plus one evaluation interval of the condition being seen true,
                // plus one poll of the test and one more interval for a busy host.
                let bound = *for_ + 2 * INTERVAL + POLL;
                assert!(
                    since <= bound,
                    "{name} fired {since:?} after its condition was true (for {for_:?})"
                );
                fired.insert(name, since);
            }
        }
        std::thread::sleep(POLL);
    }
    eprintln!(
        "prometheus_live: every incident alert fired {:.0?} into the incident: {fired:?}",
        started.elapsed()
    );

    // The tap panel counts frames Sluice could not decode: send it one.
    garbled_offset_commit(cluster.proxy_addr);
    for instance in [scraped_instance.as_str(), OTLP_INSTANCE] {
        wait_for_series(
            &prom,
            "the garbled frame's parse error",
            &format!("sluice_tap_parse_errors_total{{instance=\"{instance}\"}}"),
            Duration::from_secs(30),
        );
    }
    check_dashboard(
        &prom,
        &scraped_instance,
        &looping_group,
        &churner_id,
        &healthy_group,
    );
    screenshot(&prom, &looping_group);
    drop(healthy);
    drop(orders);
}

/// Sends an OffsetCommit v2 request whose group id claims 256 bytes and has 2, through the
/// proxy: forwarded untouched (the broker closes the connection), and a parse error for the tap.
fn garbled_offset_commit(proxy: std::net::SocketAddr) {
    use std::io::{Read, Write};
    let client_id = b"prom-garbled";
    let mut body = Vec::new();
    body.extend_from_slice(&8i16.to_be_bytes()); // api_key: OffsetCommit
    body.extend_from_slice(&2i16.to_be_bytes()); // api_version
    body.extend_from_slice(&7i32.to_be_bytes()); // correlation_id
    body.extend_from_slice(&(client_id.len() as i16).to_be_bytes());
    body.extend_from_slice(client_id);
    body.extend_from_slice(&256i16.to_be_bytes()); // group_id: 256 bytes claimed ...
    body.extend_from_slice(b"ab"); // ... 2 present
    let mut frame = (body.len() as i32).to_be_bytes().to_vec();
    frame.extend_from_slice(&body);
    let mut s = std::net::TcpStream::connect(proxy).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(&frame).unwrap();
    // Until the broker closes it.
    let _ = s.read_to_end(&mut Vec::new());
}

/// Every query of every panel returns data, with all sidecars selected and with each one;
/// the panels meant to show the incident show its series.
fn check_dashboard(
    prom: &Prometheus,
    scraped_instance: &str,
    looping_group: &str,
    churner_id: &str,
    healthy_group: &str,
) {
    let dash: Value =
        serde_json::from_str(&std::fs::read_to_string(dashboard::shipped_path()).unwrap()).unwrap();
    let queries = dashboard::queries(&dash);
    let selections = [
        Var::All,
        Var::One(scraped_instance.to_owned()),
        Var::One(OTLP_INSTANCE.to_owned()),
    ];
    let mut empty = Vec::new();
    let mut all = BTreeMap::new();
    for sel in &selections {
        for q in &queries {
            let vars = [
                ("instance", sel.clone()),
                ("group", Var::All),
                ("topic", Var::All),
            ];
            let expr = dashboard::substitute(&dash, &q.expr, &vars, RATE_INTERVAL);
            // Empty only if it stays empty for a while: a short rate window can fall between
            // two samples of a slow scrape or export.
            let end = Instant::now() + EMPTY_FOR;
            let result = loop {
                let r = prom.query(&expr).unwrap_or_else(|e| {
                    panic!("panel {} {:?} {}: {e}", q.panel, q.title, q.ref_id)
                });
                if !r.is_empty() || Instant::now() > end {
                    break r;
                }
                std::thread::sleep(POLL);
            };
            if result.is_empty() {
                empty.push(format!(
                    "{sel:?}: panel {} {:?} {}: {expr}",
                    q.panel, q.title, q.ref_id
                ));
            }
            if matches!(sel, Var::All) {
                all.insert((q.panel, q.ref_id.clone()), result);
            }
        }
    }
    assert!(
        empty.is_empty(),
        "queries with no data:\n{}",
        empty.join("\n")
    );

    let shows = |panel: u64, ref_id: &str, label: &str, value: &str| {
        let r = &all[&(panel, ref_id.to_owned())];
        assert!(
            names(r, label, value),
            "panel {panel} {ref_id} does not show {label}={value}: {r:#?}"
        );
    };
    let group = "messaging_consumer_group_name";
    let client = "messaging_client_id";
    shows(10, "A", group, looping_group); // egress by group
    shows(14, "A", group, looping_group); // re-delivered bytes
    shows(15, "A", group, looping_group); // re-delivery ratio
    shows(39, "A", group, looping_group);
    shows(9, "A", client, churner_id); // egress by client
    shows(24, "A", client, churner_id); // connections open
    shows(25, "A", client, churner_id); // churn: opened
    shows(18, "A", group, healthy_group); // lag
    shows(37, "D", group, healthy_group);
    shows(38, "A", group, healthy_group); // lag in time
    shows(20, "A", group, looping_group); // active findings
    shows(20, "A", client, churner_id);
    shows(42, "A", group, looping_group); // throttled (dry run)
}

/// The graph page of re-delivered bytes by group: a screenshot, and its DOM naming the group.
fn screenshot(prom: &Prometheus, looping_group: &str) {
    let expr = "sum by (messaging_consumer_group_name) (rate(sluice_consumer_redelivered_bytes_total[1m]))";
    let series = prom.query(expr).unwrap();
    assert!(
        names(&series, "messaging_consumer_group_name", looping_group),
        "{series:#?}"
    );
    let url = prom.graph_url(expr, "2m");
    let budget = Duration::from_secs(10);
    let dom = browser::dump_dom(&url, budget);
    // The graph's legend (Prometheus 2's Rickshaw graph) lists the series by their labels;
    // the expression itself names no group.
    let legend = dom.find("rickshaw_legend").map(|i| &dom[i..]);
    assert!(
        legend.is_some_and(|l| l.contains(looping_group)),
        "the graph page's legend does not name {looping_group}: {url}\n{dom}"
    );
    assert!(!dom.contains("Error executing query"), "{dom}");
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target"));
    let png = target.join("prometheus-graph.png");
    browser::screenshot(&url, &png, budget);
    let bytes = std::fs::read(&png).unwrap();
    assert_eq!(
        browser::png_size(&bytes),
        Some(browser::WINDOW),
        "{}",
        png.display()
    );
    // A blank or error page compresses to a few KiB; a graph with axes and a legend does not.
    assert!(
        bytes.len() > 20_000,
        "{} is only {} bytes",
        png.display(),
        bytes.len()
    );
    eprintln!("prometheus_live: screenshot of {url} in {}", png.display());
}
