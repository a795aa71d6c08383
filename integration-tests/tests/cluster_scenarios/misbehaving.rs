//! Misbehaving consumers, each named — host, `client.id`, group, topic, partition, offset —
//! on the sidecar(s) that see it, within its bound: a seek-back loop, a group whose offset
//! is stuck while it fetches, a consumer that crash-loops, a consumer kicked out of its group
//! again and again for exceeding `max.poll.interval.ms`.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde_json::Value;
use sluice_integration_tests::attribution::client_row;
use sluice_integration_tests::consumer::trickle;
use sluice_integration_tests::scenario::{consume_loop, json_trickle, poison_backlog};
use sluice_integration_tests::{findings, unique, Client, Commit, Consume, MultiCluster, Sidecar};

use crate::support::{brief, first_fetch, first_fetch_anywhere, naming_gaps, quiet};

/// The seek-back loop, from the consumer's first fetch on the leader's sidecar.
const LOOP_DEADLINE: Duration = Duration::from_secs(2);
/// The loop's group named on a sidecar that sees none of its coordinator traffic, from the
/// consumer's first fetch: the group lookup's early round for a new client, and a tick.
const LOOP_GROUP_DEADLINE: Duration = Duration::from_secs(6);
/// A group whose offset is stuck while it fetches, from the stuck release's first fetch.
const STUCK_DEADLINE: Duration = Duration::from_secs(15);
/// How long the group is healthy, under watch, before the release that never commits: long
/// enough for a sidecar that sees none of the group's commits to see its committed offsets
/// move over a few of the group lookup's rounds, and so learn its cadence.
const HEALTHY_PHASE: Duration = Duration::from_secs(45);
/// A crash-looping consumer, from its first fetch.
const CRASH_DEADLINE: Duration = Duration::from_secs(60);
/// A consumer kicked out over and over, from its first fetch.
const KICK_DEADLINE: Duration = Duration::from_secs(60);
/// How long to keep looking past a bound, to report how late a detection was.
const LATE: Duration = Duration::from_secs(20);

/// The first active finding of one of `kinds` on `sidecar` whose evidence satisfies `pred`,
/// polled until `until`; with the time from `since`.
fn poll_for(
    sidecar: &Sidecar,
    kinds: &[&str],
    since: Instant,
    until: Instant,
    pred: impl Fn(&Value) -> bool,
) -> Option<(Duration, Value)> {
    loop {
        for k in kinds {
            if let Some(f) = findings::active(sidecar, k, &pred) {
                return Some((since.elapsed(), f));
            }
        }
        if Instant::now() >= until {
            return None;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// "0.8s" or "none".
fn secs(t: Option<Duration>) -> String {
    t.map_or("none".into(), |t| format!("{:.1}s", t.as_secs_f64()))
}

fn fail(problems: Vec<String>) {
    assert!(problems.is_empty(), "{}", problems.join("\n\n"));
}

/// A group's healthy past: `client_id` reads the `count` records of `topic` and commits.
fn healthy_run(
    cluster: &MultiCluster,
    client: Client,
    topic: &str,
    group: &str,
    client_id: &str,
    count: u64,
) {
    let r = Consume::group(client, topic, group, client_id, Duration::from_secs(90))
        .count(count)
        .spawn(&cluster.tools, &cluster.bootstrap())
        .finish(Duration::from_secs(120))
        .unwrap_or_else(|e| panic!("the healthy run of {group}: {e}"));
    assert_eq!(r["consumed"], count, "{r}");
}

// ------------------------------------------------------------------ seek-back loop

#[test]
fn seek_back_loops_are_named_on_the_partition_leaders_sidecar() {
    let cluster = MultiCluster::shared();
    let _quiet = quiet();
    let mut problems = Vec::new();
    let fast_poll: &[&str] = &["--fetch-max-wait-ms", "50"];
    for (label, client, extra) in [
        ("java", Client::Java, &[][..]),
        ("librdkafka", Client::Python, fast_poll),
        ("franz-go", Client::Go, &[][..]),
    ] {
        seek_back(cluster, label, client, extra, &mut problems);
    }
    fail(problems);
}

fn seek_back(
    cluster: &MultiCluster,
    label: &str,
    client: Client,
    extra: &[&str],
    problems: &mut Vec<String>,
) {
    let boot = cluster.bootstrap();
    let topic = unique(&format!("loop-{label}"));
    let leader = cluster.create_topics(&[&topic], 1).leader(&topic, 0);
    // The leader's sidecar sees the group's fetches, never its coordinator traffic.
    let (group, coordinator) =
        cluster.group_coordinated_elsewhere(&format!("billing-{label}"), &[leader]);
    let client_id = unique(&format!("billing-service-{label}"));
    // The incident's backlog, offset 100 malformed, and a trickle on top.
    poison_backlog(&cluster.tools, &boot, &topic);
    let trickle = json_trickle(&cluster.tools, &boot, &topic, 150);
    let consumer = consume_loop(
        client,
        &cluster.tools,
        &boot,
        &topic,
        &group,
        &client_id,
        extra,
    );
    let sidecar = &cluster.node(leader).sidecar;
    let start = first_fetch_anywhere(cluster, &client_id, Duration::from_secs(60));
    let start = first_fetch(sidecar, &client_id).unwrap_or(start);
    // Found by its client; whether it names the topic and group is checked below.
    let pred = |e: &Value| e["client_id"] == client_id.as_str();
    let hit = poll_for(
        sidecar,
        &["fetch_loop"],
        start,
        start + LOOP_DEADLINE + LATE,
        pred,
    );
    findings::report(&format!(
        "time to detect, cluster, {label} seek-back loop on node {leader}'s sidecar (group coordinated on node \
         {coordinator}): fetch_loop {} (bound {}s)",
        secs(hit.as_ref().map(|h| h.0)),
        LOOP_DEADLINE.as_secs()
    ));
    match hit {
        None => problems.push(format!(
            "{label}: no fetch_loop for {client_id} on node {leader} within {:?}; findings: {:#}",
            LOOP_DEADLINE + LATE,
            sidecar.observer.findings_json()
        )),
        Some((t, f)) => {
            if t > LOOP_DEADLINE {
                problems.push(format!(
                    "{label}: fetch_loop after {t:?}, bound {LOOP_DEADLINE:?}"
                ));
            }
            // Raised at once; the group, which this sidecar learns from the group lookup,
            // joins the finding's evidence within a few seconds.
            let named = poll_for(
                sidecar,
                &["fetch_loop"],
                start,
                start + LOOP_GROUP_DEADLINE,
                |e| pred(e) && e["group"] == group.as_str(),
            );
            findings::report(&format!(
                "time to name the group, cluster, {label} seek-back loop on node {leader}'s sidecar: {} ({}) (bound {}s)",
                secs(named.as_ref().map(|h| h.0)),
                named.as_ref().map_or("-".into(), |h| h.1["evidence"]["group_attribution"].to_string()),
                LOOP_GROUP_DEADLINE.as_secs()
            ));
            let f = named.map_or(f, |(_, f)| f);
            let mut gaps = naming_gaps(&f, &client_id, &group, Some(&topic));
            if f["evidence"]["offset"] != 100 || f["evidence"]["partition"] != 0 {
                gaps.push("partition 0 offset 100".into());
            }
            if !gaps.is_empty() {
                problems.push(format!(
                    "{label}: the fetch_loop does not name {}: {f:#}",
                    gaps.join(", ")
                ));
            }
        }
    }
    drop(consumer);
    drop(trickle);
}

// ------------------------------------------------------------------ stuck offset

#[test]
fn groups_whose_offset_is_stuck_are_named_on_every_sidecar_within_15s() {
    let cluster = MultiCluster::shared();
    let _quiet = quiet();
    let problems: Vec<String> = std::thread::scope(|s| {
        let runs: Vec<_> = [
            ("java", Client::Java),
            ("librdkafka", Client::Python),
            ("franz-go", Client::Go),
        ]
        .into_iter()
        .map(|(label, client)| s.spawn(move || stuck(cluster, label, client)))
        .collect();
        runs.into_iter().flat_map(|r| r.join().unwrap()).collect()
    });
    fail(problems);
}

fn stuck(cluster: &MultiCluster, label: &str, client: Client) -> Vec<String> {
    let mut problems = Vec::new();
    let boot = cluster.bootstrap();
    let topic = unique(&format!("stuck-{label}"));
    let layout = cluster.create_topics(&[&topic], 3);
    let group = unique(&format!("ledger-{label}"));
    Client::Go
        .produce(&cluster.tools, &boot, &topic, 600, 3)
        .unwrap();
    let trickle = trickle(
        &cluster.tools,
        &boot,
        &topic,
        50,
        Duration::from_secs(150),
        &unique("ledger-api"),
    );
    // The group was healthy while Sluice watched: it read the backlog and the trickle,
    // committing every 5 s.
    let v1_id = unique(&format!("ledger-service-v1-{label}"));
    let v1 = Consume::group(client, &topic, &group, &v1_id, Duration::from_secs(120))
        .commit(Commit::Auto(Duration::from_secs(5)))
        .spawn(&cluster.tools, &boot);
    std::thread::sleep(HEALTHY_PHASE);
    if let Err(e) = v1.stop(Duration::from_secs(40)) {
        problems.push(format!("{label}: the healthy release of {group}: {e}"));
    }
    // Then a release that never commits: it keeps fetching, its offsets stay put.
    let client_id = unique(&format!("ledger-service-v2-{label}"));
    let consumer = Consume::group(client, &topic, &group, &client_id, Duration::from_secs(60))
        .commit(Commit::None)
        .spawn(&cluster.tools, &boot);
    let start = first_fetch_anywhere(cluster, &client_id, Duration::from_secs(60));
    let mut times = Vec::new();
    for node in layout.leaders(&topic) {
        let sidecar = &cluster.node(node).sidecar;
        let pred = |e: &Value| e["group"] == group.as_str();
        let hit = poll_for(
            sidecar,
            &["fetch_without_commit"],
            start,
            start + STUCK_DEADLINE + LATE,
            pred,
        );
        times.push(format!("node {node} {}", secs(hit.as_ref().map(|h| h.0))));
        match hit {
            None => {
                // What the sidecar knew of the group and its clients, to tell why.
                let of_group = |v: Value| -> Vec<Value> {
                    v.as_array()
                        .into_iter()
                        .flatten()
                        .filter(|r| {
                            r["group"] == group.as_str()
                                || r["client_id"].as_str().is_some_and(|c| c.contains(label))
                        })
                        .cloned()
                        .collect()
                };
                problems.push(format!(
                    "{label}: no fetch_without_commit for {group} on node {node} (it leads a partition of {topic}) \
                     within {:?}; findings: {:#}\ngroups: {:#}\nclients: {:#}\nobserver: {}",
                    STUCK_DEADLINE + LATE,
                    sidecar.observer.findings_json(),
                    Value::from(of_group(sidecar.observer.groups_json())),
                    Value::from(of_group(sidecar.observer.clients_json(
                        sluice::observer::api::ClientSort::BytesOut
                    ))),
                    sidecar.observer.health_json(),
                ))
            }
            Some((t, f)) => {
                if t > STUCK_DEADLINE {
                    problems.push(format!(
                        "{label}: node {node} named {group} after {t:?}, bound {STUCK_DEADLINE:?}"
                    ));
                }
                let gaps = naming_gaps(&f, &client_id, &group, Some(&topic));
                if !gaps.is_empty() {
                    problems.push(format!(
                        "{label}: node {node}'s fetch_without_commit does not name {}: {f:#}",
                        gaps.join(", ")
                    ));
                }
            }
        }
    }
    findings::report(&format!(
        "time to detect, cluster, {label} group with its offset stuck while fetching: fetch_without_commit {} \
         (bound {}s, on every sidecar leading one of its partitions)",
        times.join(", "),
        STUCK_DEADLINE.as_secs()
    ));
    drop(consumer);
    drop(trickle);
    problems
}

// ------------------------------------------------------------------ crash loop

#[test]
fn a_crash_looping_consumer_is_named_as_not_committing() {
    let cluster = MultiCluster::shared();
    let _quiet = quiet();
    let mut problems = Vec::new();
    let boot = cluster.bootstrap();
    let topic = unique("crash");
    cluster.create_topics(&[&topic], 3);
    let group = unique("invoicing");
    Client::Go
        .produce(&cluster.tools, &boot, &topic, 600, 4)
        .unwrap();
    // Healthy once: 600 records read and committed; then every start dies before committing.
    let v1 = unique("invoicing-service-v1");
    healthy_run(cluster, Client::Python, &topic, &group, &v1, 600);
    Client::Go
        .produce(&cluster.tools, &boot, &topic, 2400, 5)
        .unwrap();
    let trickle = trickle(
        &cluster.tools,
        &boot,
        &topic,
        20,
        Duration::from_secs(120),
        &unique("invoicing-api"),
    );
    let client_id = unique("invoicing-service");
    let crashing = Consume::group(
        Client::Python,
        &topic,
        &group,
        &client_id,
        Duration::from_secs(60),
    )
    .commit(Commit::None)
    .session_timeout(Duration::from_secs(6))
    .crash_after(300);
    let mut start: Option<Instant> = None;
    let mut detected: BTreeMap<u32, (Duration, Value)> = BTreeMap::new();
    let mut restarts = 0;
    let mut running = None;
    let began = Instant::now();
    loop {
        if running.is_none() {
            running = Some(crashing.spawn(&cluster.tools, &boot));
            restarts += 1;
        }
        if let Some(r) = running.as_mut() {
            if !r.is_running() {
                let (code, _) = running
                    .take()
                    .unwrap()
                    .wait_exit(Duration::from_secs(5))
                    .unwrap();
                if code != Some(3) {
                    problems.push(format!("the crashing consumer exited {code:?}, not 3"));
                }
            }
        }
        if start.is_none() {
            start = cluster
                .nodes
                .iter()
                .filter_map(|n| first_fetch(&n.sidecar, &client_id))
                .min();
        }
        if let Some(s) = start {
            for n in &cluster.nodes {
                if detected.contains_key(&n.id) {
                    continue;
                }
                if let Some(f) = findings::active(&n.sidecar, "fetch_without_commit", |e| {
                    e["group"] == group.as_str()
                }) {
                    // When the sidecar raised it, not when this loop saw it (a loaded
                    // machine can keep this thread from looking for seconds).
                    let active = Duration::from_secs_f64(f["duration_s"].as_f64().unwrap_or(0.0));
                    detected.insert(n.id, (s.elapsed().saturating_sub(active), f));
                }
            }
            if detected.len() == cluster.nodes.len() || s.elapsed() > CRASH_DEADLINE + LATE {
                break;
            }
        }
        assert!(
            began.elapsed() < Duration::from_secs(180),
            "the crashing consumer never fetched"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    drop(running);
    drop(trickle);
    // Every sidecar it fetched a fair amount through must name it: at least 1.5 times the
    // detector's own threshold (64 KiB within its 10 s window) on average over the loop. Each
    // start reads 300 records from whichever partitions answer first, so through some sidecar
    // it may fetch too little to be fetching by that measure; that is reported, not required.
    let looped = start.map_or(Duration::ZERO, |s| s.elapsed());
    let required = (1.5 * 64.0 * 1024.0 / 10.0 * looped.as_secs_f64()) as u64;
    let mut times = Vec::new();
    for n in &cluster.nodes {
        let fetched = client_row(&n.sidecar, &client_id)
            .map_or(0, |r| r["bytes_fetched"].as_u64().unwrap_or(0));
        let hit = detected.get(&n.id);
        times.push(format!(
            "node {} {} ({} KiB fetched{})",
            n.id,
            secs(hit.map(|h| h.0)),
            fetched / 1024,
            if fetched < required {
                format!(", under the {} KiB required", required / 1024)
            } else {
                String::new()
            }
        ));
        if fetched < required {
            continue;
        }
        match hit {
            None => problems.push(format!(
                "no fetch_without_commit for crash-looping {group} on node {} (it fetched {fetched} B there) \
                 within {:?}; findings: {:#}",
                n.id,
                CRASH_DEADLINE + LATE,
                n.sidecar.observer.findings_json()
            )),
            Some((t, f)) => {
                if *t > CRASH_DEADLINE {
                    problems.push(format!("node {} named {group} after {t:?}, bound {CRASH_DEADLINE:?}", n.id));
                }
                let gaps = naming_gaps(f, &client_id, &group, Some(&topic));
                if !gaps.is_empty() {
                    problems.push(format!(
                        "node {}'s fetch_without_commit does not name {}: {}",
                        n.id,
                        gaps.join(", "),
                        brief(f)
                    ));
                }
            }
        }
    }
    findings::report(&format!(
        "time to detect, cluster, librdkafka consumer crash-looping ({restarts} starts, 300 records each, no \
         commit): fetch_without_commit {} (bound {}s)",
        times.join(", "),
        CRASH_DEADLINE.as_secs()
    ));
    fail(problems);
}

// ------------------------------------------------------------------ kicked out

#[test]
fn consumers_kicked_out_over_max_poll_interval_are_named_within_60s() {
    let cluster = MultiCluster::shared();
    let _quiet = quiet();
    // franz-go has no max.poll.interval.ms: it heartbeats in the background.
    let problems: Vec<String> = std::thread::scope(|s| {
        let runs: Vec<_> = [("java", Client::Java), ("librdkafka", Client::Python)]
            .into_iter()
            .map(|(label, client)| s.spawn(move || kicked(cluster, label, client)))
            .collect();
        runs.into_iter().flat_map(|r| r.join().unwrap()).collect()
    });
    fail(problems);
}

fn kicked(cluster: &MultiCluster, label: &str, client: Client) -> Vec<String> {
    let mut problems = Vec::new();
    let boot = cluster.bootstrap();
    let topic = unique(&format!("slow-{label}"));
    cluster.create_topics(&[&topic], 3);
    let trickle = trickle(
        &cluster.tools,
        &boot,
        &topic,
        20,
        Duration::from_secs(150),
        &unique("shipping-api"),
    );
    let group = unique(&format!("shipping-{label}"));
    let client_id = unique(&format!("shipping-service-{label}"));
    // Each batch takes 4 s to process, the client allows 3 s between polls: it leaves the
    // group before every commit, rejoins, and fetches the same records again.
    let consumer = Consume::group(client, &topic, &group, &client_id, Duration::from_secs(90))
        .commit(Commit::Sync)
        .session_timeout(Duration::from_secs(3))
        .max_poll_interval(Duration::from_secs(3))
        .process(Duration::from_secs(4))
        .spawn(&cluster.tools, &boot);
    let start = first_fetch_anywhere(cluster, &client_id, Duration::from_secs(60));
    let kinds = ["rebalance_storm", "fetch_without_commit"];
    let mut hit: Option<(u32, Duration, Value)> = None;
    let end = start + KICK_DEADLINE + LATE;
    while hit.is_none() && Instant::now() < end {
        for n in &cluster.nodes {
            let now = Instant::now();
            if let Some((t, f)) = poll_for(&n.sidecar, &kinds, start, now, |e| {
                e["group"] == group.as_str()
            }) {
                hit = Some((n.id, t, f));
                break;
            }
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    findings::report(&format!(
        "time to detect, cluster, {label} consumer kicked out of its group over and over (max.poll.interval.ms \
         3s, 4s per batch): {} (bound {}s)",
        hit.as_ref().map_or("none".into(), |(n, t, f)| format!(
            "{} {:.1}s on node {n}",
            f["kind"].as_str().unwrap_or("?"),
            t.as_secs_f64()
        )),
        KICK_DEADLINE.as_secs()
    ));
    match hit {
        None => problems.push(format!(
            "{label}: neither rebalance_storm nor fetch_without_commit for {group} on any sidecar within {:?}",
            KICK_DEADLINE + LATE
        )),
        Some((n, t, f)) => {
            if t > KICK_DEADLINE {
                problems.push(format!("{label}: node {n} named {group} after {t:?}, bound {KICK_DEADLINE:?}"));
            }
            let gaps = naming_gaps(&f, &client_id, &group, None);
            if !gaps.is_empty() {
                problems.push(format!("{label}: node {n}'s {} does not name {}: {f:#}", f["kind"], gaps.join(", ")));
            }
        }
    }
    drop(consumer);
    drop(trickle);
    problems
}
