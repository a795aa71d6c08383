//! The detectors must stay quiet for healthy behaviour, run long enough to matter (beyond the
//! detection window) with real clients through Sluice: two groups reading the same topic at
//! full speed, a lagging consumer catching up, a consumer restart resuming from its committed
//! offset, a rebalance as a member joins and leaves, an auto-commit consumer, and a consumer
//! using assign() without a group, and four librdkafka consumers in four groups sharing its
//! default `client.id` on one host; and, apart, a librdkafka consumer with auto-commit every
//! 5 s starting and restarting under a producer trickle. The false-positive counts go to the
//! detection report.

use std::time::{Duration, Instant};

use sluice_integration_tests::clients::Running;
use sluice_integration_tests::consumer::trickle;
use sluice_integration_tests::net::wait_until;
use sluice_integration_tests::{findings, unique, Client, Cluster, Commit, Consume};

/// Starts `consume` of `topic` for `count` records as `client_id`; `how` is the group
/// (`--group G`, with optional `--commit ...`) or `--assign`.
fn consume(
    cluster: &Cluster,
    client: Client,
    topic: &str,
    count: &str,
    client_id: &str,
    how: &[&str],
) -> Running {
    let boot = cluster.bootstrap();
    let mut args: Vec<String> = [
        "consume",
        "--bootstrap",
        &boot,
        "--topic",
        topic,
        "--count",
        count,
        "--timeout-s",
        "60",
        "--client-id",
        client_id,
    ]
    .iter()
    .map(|a| (*a).to_owned())
    .collect();
    args.extend(how.iter().map(|a| (*a).to_owned()));
    client.spawn(&cluster.tools, &args)
}

#[test]
fn healthy_clients_raise_nothing() {
    let cluster = Cluster::start();
    let started = Instant::now();
    let mut names: Vec<String> = Vec::new();
    let mut name = |n: &str| {
        let v = unique(n);
        names.push(v.clone());
        v
    };

    // A topic with a 20,000-record backlog (about 5 MB) and a trickle on top.
    let topic = name("orders");
    cluster.create_topic(&topic, 3);
    Client::Go
        .produce(&cluster.tools, &cluster.bootstrap(), &topic, 20_000, 1)
        .unwrap();
    let trickle_id = name("order-api");
    let trickle = Client::Java.spawn(
        &cluster.tools,
        &[
            "produce",
            "--bootstrap",
            &cluster.bootstrap(),
            "--topic",
            &topic,
            "--count",
            "100",
            "--rate",
            "5",
            "--seed",
            "2",
            "--client-id",
            &trickle_id,
        ]
        .map(str::to_owned),
    );
    let total = "20100";

    // Four librdkafka consumers in four groups with its default client.id, one host, each
    // starting a second after the one before: the same offsets fetched four times by one
    // client key, on four connections — no loop. They wait for the trickle, so they live
    // long enough not to be churn either.
    let mut shared_groups = Vec::new();
    let mut shared = Vec::new();
    for i in 0..4 {
        let g = name(&format!("shared-{i}"));
        shared.push(consume(
            &cluster,
            Client::Python,
            &topic,
            total,
            "rdkafka",
            &["--group", &g],
        ));
        shared_groups.push(g);
        std::thread::sleep(Duration::from_secs(1));
    }

    // Two healthy groups reading the same topic at full speed (and catching up on the lag).
    let (g1, g2) = (name("analytics"), name("search"));
    let a = consume(
        &cluster,
        Client::Java,
        &topic,
        total,
        &name("analytics-1"),
        &["--group", &g1],
    );
    let b = consume(
        &cluster,
        Client::Go,
        &topic,
        total,
        &name("search-1"),
        &["--group", &g2],
    );
    // An auto-commit consumer and a consumer using assign() without a group.
    let g3 = name("audit");
    let c = consume(
        &cluster,
        Client::Java,
        &topic,
        total,
        &name("audit-1"),
        &["--group", &g3, "--commit", "auto"],
    );
    let d = consume(
        &cluster,
        Client::Go,
        &topic,
        total,
        &name("replayer"),
        &["--assign", "--commit", "none"],
    );
    // A consumer that stops part way and restarts from its committed offset.
    let (g5, c5) = (name("billing"), name("billing-1"));
    consume(
        &cluster,
        Client::Java,
        &topic,
        "8000",
        &c5,
        &["--group", &g5],
    )
    .finish(Duration::from_secs(90))
    .unwrap();
    let e = consume(
        &cluster,
        Client::Java,
        &topic,
        "12100",
        &c5,
        &["--group", &g5],
    );
    // A rebalance: a second member joins the group, reads a little, and leaves.
    let g6 = name("shipping");
    let f = consume(
        &cluster,
        Client::Go,
        &topic,
        total,
        &name("shipping-1"),
        &["--group", &g6],
    );
    std::thread::sleep(Duration::from_secs(3));
    let _ = consume(
        &cluster,
        Client::Java,
        &topic,
        "500",
        &name("shipping-2"),
        &["--group", &g6],
    )
    .finish(Duration::from_secs(60));

    for (i, p) in shared.into_iter().enumerate() {
        p.finish(Duration::from_secs(120))
            .unwrap_or_else(|e| panic!("shared client.id consumer {i}: {e}"));
    }
    for (label, p) in [
        ("two groups: analytics", a),
        ("two groups: search", b),
        ("auto-commit", c),
        ("assign", d),
        ("restart", e),
        ("rebalance", f),
    ] {
        let r = p.finish(Duration::from_secs(120));
        // A member that shared partitions with the leaver may see fewer unique records than
        // asked for within its time; health, not completeness, is the point of this test.
        if let Err(err) = &r {
            assert!(label == "rebalance", "{label}: {err}");
        }
    }
    trickle.finish(Duration::from_secs(60)).unwrap();
    // Keep watching past the window so late findings would show.
    std::thread::sleep(cluster.observer.config().window + Duration::from_secs(3));
    // Quiet only counts if Sluice saw it all: every group committing, and the topic's
    // backlog delivered at least once to each of the four readers that read it all.
    let groups = cluster.observer.groups_json();
    for g in [&g1, &g2, &g3, &g5, &g6].into_iter().chain(&shared_groups) {
        let row = groups
            .as_array()
            .into_iter()
            .flatten()
            .find(|r| r["group"] == g.as_str());
        let committed = row.map_or(0, |r| r["committed"].as_array().map_or(0, Vec::len));
        assert!(committed > 0, "group {g} not seen committing: {groups:#}");
    }
    let topics = cluster.observer.topics_json();
    let row = topics
        .as_array()
        .into_iter()
        .flatten()
        .find(|r| r["topic"] == topic.as_str())
        .unwrap_or_else(|| panic!("topic {topic} not seen: {topics:#}"));
    let (bytes_in, bytes_out) = (
        row["bytes_in"].as_u64().unwrap(),
        row["bytes_out"].as_u64().unwrap(),
    );
    assert!(
        bytes_in > 4_000_000 && bytes_out >= 4 * bytes_in,
        "produced {bytes_in} B, fetched {bytes_out} B: {row:#}"
    );
    names.push("rdkafka".to_owned());
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let raised = findings::mentioning(&cluster, &refs);
    findings::report(&format!(
        "false positives, healthy scenarios (two groups at full speed over a 20k backlog, auto-commit, assign(), restart from committed offset, rebalance on join/leave, four groups sharing librdkafka's default client.id; {:.0}s): {}",
        started.elapsed().as_secs_f64(),
        raised.len()
    ));
    assert!(
        raised.is_empty(),
        "healthy clients raised findings: {raised:#?}"
    );
    cluster.stop();
}

/// Issue 17, item 1, on one broker: a librdkafka consumer with auto-commit at its default
/// 5 s interval, starting — and restarting — while a producer trickles records into its topic,
/// is healthy: nothing may be raised about its group.
#[test]
fn librdkafka_auto_commit_consumer_starting_under_a_trickle_raises_nothing() {
    let cluster = Cluster::start();
    let started = Instant::now();
    let boot = cluster.bootstrap();
    let topic = unique("payments");
    cluster.create_topic(&topic, 3);
    let (group, client_id, producer) = (
        unique("payments-ledger"),
        unique("payments-ledger-1"),
        unique("payments-api"),
    );
    let trickle = trickle(
        &cluster.tools,
        &boot,
        &topic,
        10,
        Duration::from_secs(150),
        &producer,
    );
    // It starts once the trickle has left some 100 KB for it to catch up on.
    wait_until("a trickled backlog", Duration::from_secs(60), || {
        cluster.observer.topics_json().as_array().is_some_and(|ts| {
            ts.iter()
                .any(|t| t["topic"] == topic.as_str() && t["bytes_in"].as_u64() > Some(100_000))
        })
    });
    let consumer = Consume::group(
        Client::Python,
        &topic,
        &group,
        &client_id,
        Duration::from_secs(30),
    )
    .commit(Commit::Auto(Duration::from_secs(5)));
    for run in ["start", "restart"] {
        let v = consumer
            .spawn(&cluster.tools, &boot)
            .finish(Duration::from_secs(60))
            .unwrap_or_else(|e| panic!("{run}: {e}"));
        assert!(v["consumed"].as_u64() > Some(0), "{run}: {v}");
    }
    drop(trickle);
    std::thread::sleep(cluster.observer.config().window + Duration::from_secs(3));
    let raised = findings::mentioning(&cluster, &[&group, &client_id, &topic, &producer]);
    findings::report(&format!(
        "false positives, librdkafka auto-commit 5 s consumer starting and restarting under a trickle (one broker; {:.0}s): {}",
        started.elapsed().as_secs_f64(),
        raised.len()
    ));
    assert!(
        raised.is_empty(),
        "a healthy consumer raised findings: {raised:#?}"
    );
    cluster.stop();
}
