//! The detectors must stay quiet for healthy behaviour, run long enough to matter (beyond the
//! detection window) with real clients through Sluice: two groups reading the same topic at
//! full speed, a lagging consumer catching up, a consumer restart resuming from its committed
//! offset, a rebalance as a member joins and leaves, an auto-commit consumer, and a consumer
//! using assign() without a group. The false-positive count goes to the detection report.

use std::time::{Duration, Instant};

use sluice_integration_tests::{findings, unique, Client, Cluster};

fn s(args: &[&str]) -> Vec<String> {
    args.iter().map(|a| (*a).to_owned()).collect()
}

#[test]
fn healthy_clients_raise_nothing() {
    let cluster = Cluster::start();
    let boot = cluster.bootstrap();
    let tools = &cluster.tools;
    let started = Instant::now();
    let mut names: Vec<String> = Vec::new();
    let mut name = |n: &str| {
        let v = unique(n);
        names.push(v.clone());
        v
    };

    // A topic with a 20,000-record backlog (about 20 MB) and a trickle on top.
    let topic = name("orders");
    cluster.create_topic(&topic, 3);
    Client::Go.produce(tools, &boot, &topic, 20_000, 1).unwrap();
    let trickle_id = name("order-api");
    let trickle = Client::Java.spawn(
        tools,
        &s(&[
            "produce",
            "--bootstrap",
            &boot,
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
        ]),
    );
    let total = "20100";

    // Two healthy groups reading the same topic at full speed (and catching up on the lag).
    let (g1, c1, g2, c2) = (
        name("analytics"),
        name("analytics-1"),
        name("search"),
        name("search-1"),
    );
    let a = Client::Java.spawn(
        tools,
        &s(&[
            "consume",
            "--bootstrap",
            &boot,
            "--topic",
            &topic,
            "--group",
            &g1,
            "--count",
            total,
            "--timeout-s",
            "60",
            "--client-id",
            &c1,
        ]),
    );
    let b = Client::Go.spawn(
        tools,
        &s(&[
            "consume",
            "--bootstrap",
            &boot,
            "--topic",
            &topic,
            "--group",
            &g2,
            "--count",
            total,
            "--timeout-s",
            "60",
            "--client-id",
            &c2,
        ]),
    );
    // An auto-commit consumer and a consumer using assign() without a group.
    let (g3, c3, c4) = (name("audit"), name("audit-1"), name("replayer"));
    let c = Client::Java.spawn(
        tools,
        &s(&[
            "consume",
            "--bootstrap",
            &boot,
            "--topic",
            &topic,
            "--group",
            &g3,
            "--count",
            total,
            "--timeout-s",
            "60",
            "--commit",
            "auto",
            "--client-id",
            &c3,
        ]),
    );
    let d = Client::Go.spawn(
        tools,
        &s(&[
            "consume",
            "--bootstrap",
            &boot,
            "--topic",
            &topic,
            "--assign",
            "--commit",
            "none",
            "--count",
            total,
            "--timeout-s",
            "60",
            "--client-id",
            &c4,
        ]),
    );
    // A consumer that stops part way and restarts from its committed offset.
    let (g5, c5) = (name("billing"), name("billing-1"));
    Client::Java
        .spawn(
            tools,
            &s(&[
                "consume",
                "--bootstrap",
                &boot,
                "--topic",
                &topic,
                "--group",
                &g5,
                "--count",
                "8000",
                "--timeout-s",
                "60",
                "--client-id",
                &c5,
            ]),
        )
        .finish(Duration::from_secs(90))
        .unwrap();
    let e = Client::Java.spawn(
        tools,
        &s(&[
            "consume",
            "--bootstrap",
            &boot,
            "--topic",
            &topic,
            "--group",
            &g5,
            "--count",
            "12100",
            "--timeout-s",
            "60",
            "--client-id",
            &c5,
        ]),
    );
    // A rebalance: a second member joins the group, reads a little, and leaves.
    let (g6, c6, c7) = (name("shipping"), name("shipping-1"), name("shipping-2"));
    let f = Client::Go.spawn(
        tools,
        &s(&[
            "consume",
            "--bootstrap",
            &boot,
            "--topic",
            &topic,
            "--group",
            &g6,
            "--count",
            total,
            "--timeout-s",
            "60",
            "--client-id",
            &c6,
        ]),
    );
    std::thread::sleep(Duration::from_secs(3));
    let _ = Client::Java
        .spawn(
            tools,
            &s(&[
                "consume",
                "--bootstrap",
                &boot,
                "--topic",
                &topic,
                "--group",
                &g6,
                "--count",
                "500",
                "--timeout-s",
                "30",
                "--client-id",
                &c7,
            ]),
        )
        .finish(Duration::from_secs(60));

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
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let raised = findings::mentioning(&cluster, &refs);
    findings::report(&format!(
        "false positives, healthy scenarios (two groups at full speed over a 20k backlog, auto-commit, assign(), restart from committed offset, rebalance on join/leave; {:.0}s): {}",
        started.elapsed().as_secs_f64(),
        raised.len()
    ));
    assert!(
        raised.is_empty(),
        "healthy clients raised findings: {raised:#?}"
    );
    cluster.stop();
}
