//! A producer per message (librdkafka: a new producer for every record, two connections
//! each) against `guard.new_connections_per_sec_per_client` and
//! `guard.max_connections_per_client`, while another application produces and consumes
//! through the same Sluice. The front relay sees every connection a client tried, the back
//! relay those that reached the broker.

use std::time::{Duration, Instant};

use sluice_integration_tests::clients::consume_report;
use sluice_integration_tests::findings::report;
use sluice_integration_tests::net::wait_until;
use sluice_integration_tests::relay::ConnRecord;
use sluice_integration_tests::scenario::args;
use sluice_integration_tests::{admin, unique, Client};

use crate::{relayed, serial, MAX_PER_CLIENT, NEW_PER_SEC, TOKEN};

/// Most connections of `conns` open at the same moment (each open from its first request to
/// its end; one still open counts until now).
fn most_open_at_once(conns: &[ConnRecord]) -> usize {
    let now = Instant::now();
    let mut edges: Vec<(Instant, i32)> = Vec::new();
    for c in conns {
        let Some(from) = c.first_request else {
            continue;
        };
        edges.push((from, 1));
        edges.push((c.closed.unwrap_or(now), -1));
    }
    // A close and an open at the same instant: the close first.
    edges.sort_by_key(|&(t, d)| (t, d));
    let (mut open, mut most) = (0i32, 0i32);
    for (_, d) in edges {
        open += d;
        most = most.max(open);
    }
    usize::try_from(most).unwrap_or(0)
}

/// Most first requests of `conns` within any one second.
fn most_new_in_a_second(conns: &[ConnRecord]) -> usize {
    let mut t: Vec<Instant> = conns.iter().filter_map(|c| c.first_request).collect();
    t.sort();
    (0..t.len())
        .map(|i| {
            t[i..]
                .iter()
                .take_while(|x| x.duration_since(t[i]) < Duration::from_secs(1))
                .count()
        })
        .max()
        .unwrap_or(0)
}

fn churn(client_id: &str, topic: &str, count: u32, rate: u32, no_close: bool) -> Vec<String> {
    let rc = relayed();
    let mut a = args(&[
        "churn",
        "--bootstrap",
        &rc.bootstrap(),
        "--topic",
        topic,
        "--count",
        &count.to_string(),
        "--rate",
        &rate.to_string(),
        "--client-id",
        client_id,
    ]);
    if no_close {
        a.push("--no-close".into());
    }
    a
}

#[test]
fn a_producer_per_message_is_held_to_its_connection_limits_while_others_connect_freely() {
    let _serial = serial();
    let rc = relayed();
    let (bootstrap, tools) = (rc.bootstrap(), &rc.tools);
    let topic = unique("notifications");
    let other_topic = unique("invoices");
    rc.create_topic(&topic, 1);
    rc.create_topic(&other_topic, 1);

    // New connections: 16 producers at 20 a second want 32 connections in under a second.
    let churner = unique("notifier");
    let started = Instant::now();
    let app = Client::Python.spawn(tools, &churn(&churner, &topic, 16, 20, false));
    // Meanwhile another application produces and consumes as usual.
    let (producer_id, consumer_id) = (unique("invoicing-producer"), unique("invoicing-reader"));
    let produced = Client::Java
        .spawn_produce_with(
            tools,
            &bootstrap,
            &other_topic,
            2000,
            7,
            &["--client-id", &producer_id],
        )
        .finish(Duration::from_secs(90))
        .unwrap();
    assert_eq!(produced["produced"], 2000, "{produced}");
    let consumed = Client::Python
        .spawn(
            tools,
            &args(&[
                "consume",
                "--bootstrap",
                &bootstrap,
                "--topic",
                &other_topic,
                "--group",
                &unique("invoicing"),
                "--count",
                "2000",
                "--timeout-s",
                "60",
                "--client-id",
                &consumer_id,
            ]),
        )
        .finish(Duration::from_secs(90))
        .unwrap();
    let r = consume_report(&consumed);
    assert_eq!(
        (r.consumed, r.duplicates, r.bad),
        (2000, 0, 0),
        "{consumed}"
    );
    assert_eq!(r.digest, produced["digest"].as_str().unwrap(), "{consumed}");
    let v = app.finish(Duration::from_secs(120)).unwrap();
    let took = started.elapsed();

    let tried = rc.front.opened_by(&churner);
    let reached = rc.back.opened_by(&churner);
    let (most_new, most_open) = (most_new_in_a_second(&reached), most_open_at_once(&reached));
    report(&format!(
        "throttle: producer per message (librdkafka, 16 at 20/s): {} connections tried, {} \
         reached the broker, at most {most_new} new in one second (limit {NEW_PER_SEC}/s), \
         {most_open} open at once; {} of 16 sent in {:.1} s; {v}",
        tried.len(),
        reached.len(),
        v["sent"],
        took.as_secs_f64()
    ));
    assert!(
        tried.len() > reached.len(),
        "no connection of the churning producer was refused ({} tried)",
        tried.len()
    );
    // A token bucket may let a full second's worth through at once on top of the rate.
    assert!(
        most_new <= 2 * NEW_PER_SEC,
        "{most_new} connections of {churner} reached the broker within one second"
    );
    let span = reached
        .iter()
        .filter_map(|c| c.first_request)
        .max()
        .zip(reached.iter().filter_map(|c| c.first_request).min())
        .map(|(l, f)| l.duration_since(f).as_secs_f64())
        .unwrap_or(0.0);
    assert!(
        reached.len() as f64 <= NEW_PER_SEC as f64 * (span + 1.0),
        "{} connections of {churner} reached the broker over {span:.1} s",
        reached.len()
    );
    assert!(most_open <= MAX_PER_CLIENT, "{most_open} open at once");
    // The other application was never refused.
    for id in [&producer_id, &consumer_id] {
        let (t, r) = (rc.front.opened_by(id).len(), rc.back.opened_by(id).len());
        assert_eq!(t, r, "{id}: {t} connections tried, {r} reached the broker");
    }

    // Open connections: producers that stay open, 2 connections each, 6 of them.
    let hoarder = unique("notifier-leak");
    let app = Client::Python.spawn(tools, &churn(&hoarder, &topic, 6, 50, true));
    // Until it holds its limit open, then while it tries more.
    wait_until(
        "the hoarding producer at its limit of open connections",
        Duration::from_secs(60),
        || {
            let reached = rc.back.opened_by(&hoarder);
            reached.iter().filter(|c| !c.is_closed()).count() >= MAX_PER_CLIENT
        },
    );
    let tried = rc.front.opened_by(&hoarder).len();
    wait_until(
        "the hoarding producer to try more connections",
        Duration::from_secs(30),
        || rc.front.opened_by(&hoarder).len() >= tried + 3,
    );
    let reached = rc.back.opened_by(&hoarder);
    let most_open = most_open_at_once(&reached);
    drop(app);
    report(&format!(
        "throttle: producers never closed (librdkafka): {} connections tried, at most \
         {most_open} open at once (limit {MAX_PER_CLIENT})",
        rc.front.opened_by(&hoarder).len()
    ));
    assert!(
        most_open <= MAX_PER_CLIENT,
        "{most_open} connections of {hoarder} open at once (limit {MAX_PER_CLIENT})"
    );
    assert!(
        !reached.is_empty(),
        "none of {hoarder}'s connections got through"
    );

    // The refusals name the client in the metrics.
    wait_until(
        "a refusal metric naming the churning client",
        Duration::from_secs(15),
        || {
            let m = admin::get(rc.admin_addr, "/metrics", Some(TOKEN));
            m.body
                .lines()
                .any(|l| l.contains("connections_refused") && l.contains(churner.as_str()))
        },
    );
}
