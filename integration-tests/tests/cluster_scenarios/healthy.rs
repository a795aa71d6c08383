//! Healthy consumers of every kind, all at once, under minutes of steady produce traffic and
//! through a broker restart: nothing is raised about them on any sidecar, and every sidecar
//! attributes their fetching to the right group.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use serde_json::Value;
use sluice_integration_tests::attribution::attribution;
use sluice_integration_tests::clients::Running;
use sluice_integration_tests::consumer::trickle;
use sluice_integration_tests::{findings, unique, Client, Commit, Consume, MultiCluster, Protocol};

use crate::support::{brief, disrupt, Watch};

/// Records per second (1 KB each) trickled into every healthy topic.
const TRICKLE_RATE: u32 = 5;
/// Steady traffic before the broker restart.
const BEFORE_RESTART: Duration = Duration::from_secs(70);
/// Steady traffic once the restarted node is back: two 30 s auto-commit intervals and more.
const AFTER_RESTART: Duration = Duration::from_secs(65);
/// Longest any client may run (`--duration-s`); the test stops them well before.
const RUN_LIMIT: Duration = Duration::from_secs(420);
/// Records of the backlog new groups catch up on.
const BACKLOG: u64 = 20_000;
/// Share of fetched record bytes every sidecar must attribute to the right group.
const ATTRIBUTION_TARGET: f64 = 0.95;
/// Sluice's detection window, and a margin: how long to keep watching once traffic stops.
const SETTLE: Duration = Duration::from_secs(13);

/// One healthy scenario: a topic of its own, its consumers, and when each starts.
struct Scenario {
    label: &'static str,
    topic: String,
    trickle_id: String,
    consumers: Vec<(Consume, Duration)>,
}

impl Scenario {
    fn new(label: &'static str, topic: &str) -> Scenario {
        Scenario {
            label,
            topic: topic.to_owned(),
            trickle_id: unique(&format!("{topic}-producer")),
            consumers: Vec::new(),
        }
    }

    /// Adds a group member (its own group unless `group` is given) starting at `at`.
    fn member(mut self, client: Client, name: &str, commit: Commit, at: Duration) -> Scenario {
        let group = unique(&format!("hc-{name}-{}", client.name()));
        let id = unique(&format!("hc-{name}-{}-1", client.name()));
        let c = Consume::group(client, &self.topic, &group, &id, RUN_LIMIT).commit(commit);
        self.consumers.push((c, at));
        self
    }

    fn with(mut self, c: Consume, at: Duration) -> Scenario {
        self.consumers.push((c, at));
        self
    }

    /// Every name a finding about this scenario would mention.
    fn names(&self) -> Vec<String> {
        let mut n = vec![self.topic.clone(), self.trickle_id.clone()];
        for (c, _) in &self.consumers {
            n.push(c.client_id().to_owned());
            n.extend(c.group_name().map(str::to_owned));
        }
        n.sort();
        n.dedup();
        n
    }
}

/// A consumer of a scenario, with every run it has had.
struct Live {
    scenario: &'static str,
    consume: Consume,
    running: Option<Running>,
    runs: Vec<Result<Value, String>>,
}

impl Live {
    fn start(&mut self, cluster: &MultiCluster) {
        assert!(self.running.is_none());
        self.running = Some(self.consume.spawn(&cluster.tools, &cluster.bootstrap()));
    }

    fn stop(&mut self) {
        if let Some(r) = self.running.take() {
            self.runs.push(r.stop(Duration::from_secs(40)));
        }
    }

    fn name(&self) -> String {
        format!(
            "{} {} ({})",
            self.consume.client().name(),
            self.consume.client_id(),
            self.scenario
        )
    }
}

const S: fn(u64) -> Duration = Duration::from_secs;

fn scenarios(cluster: &MultiCluster) -> Vec<Scenario> {
    let t = |name: &str| unique(&format!("hc-{name}"));
    let (
        auto1,
        auto5r,
        auto5j,
        auto30,
        sync,
        asyn,
        per_rec,
        assign,
        kip848,
        elsewhere,
        rolling,
        down,
        backlog,
    ) = (
        t("auto1s"),
        t("auto5s-start"),
        t("auto5s"),
        t("auto30s"),
        t("sync"),
        t("async"),
        t("per-record"),
        t("assign"),
        t("kip848"),
        t("elsewhere"),
        t("rolling"),
        t("down"),
        t("backlog"),
    );
    let three = [
        &auto1, &auto5r, &auto5j, &auto30, &sync, &asyn, &per_rec, &assign, &kip848, &rolling,
        &down, &backlog,
    ];
    let refs: Vec<&str> = three.iter().map(|s| s.as_str()).collect();
    cluster.create_topics(&refs, 3);
    // One partition, led by one node; a group coordinated by another.
    let layout = cluster.create_topics(&[&elsewhere], 1);
    let (elsewhere_group, _) =
        cluster.group_coordinated_elsewhere("hc-elsewhere-java", &[layout.leader(&elsewhere, 0)]);
    let rolling_group = unique("hc-rolling-go");
    let roll = |i: u32| {
        Consume::group(
            Client::Go,
            &rolling,
            &rolling_group,
            &unique(&format!("hc-rolling-go-{i}")),
            RUN_LIMIT,
        )
        .commit(Commit::Auto(S(5)))
    };
    let assign_c = |client: Client| {
        Consume::assign(
            client,
            &assign,
            &unique(&format!("hc-assign-{}", client.name())),
            RUN_LIMIT,
        )
    };
    let kip = |client: Client| {
        let g = unique(&format!("hc-kip848-{}", client.name()));
        let id = unique(&format!("hc-kip848-{}-1", client.name()));
        Consume::group(client, &kip848, &g, &id, RUN_LIMIT)
            .commit(Commit::Auto(S(5)))
            .protocol(Protocol::Consumer)
    };
    let zero = Duration::ZERO;
    vec![
        Scenario::new("auto-commit every 1 s (franz-go)", &auto1).member(
            Client::Go,
            "auto1s",
            Commit::Auto(S(1)),
            zero,
        ),
        Scenario::new(
            "auto-commit every 5 s, starting and restarting under a trickle (librdkafka)",
            &auto5r,
        )
        .member(Client::Python, "auto5s-start", Commit::Auto(S(5)), zero),
        Scenario::new("auto-commit every 5 s (Java)", &auto5j).member(
            Client::Java,
            "auto5s",
            Commit::Auto(S(5)),
            zero,
        ),
        Scenario::new("auto-commit every 30 s (Java, librdkafka, franz-go)", &auto30)
            .member(Client::Java, "auto30s", Commit::Auto(S(30)), zero)
            .member(Client::Python, "auto30s", Commit::Auto(S(30)), zero)
            .member(Client::Go, "auto30s", Commit::Auto(S(30)), zero),
        Scenario::new("sync commit after each poll (librdkafka, franz-go)", &sync)
            .member(Client::Python, "sync", Commit::Sync, zero)
            .member(Client::Go, "sync", Commit::Sync, zero),
        Scenario::new("async commits (Java, librdkafka)", &asyn)
            .member(Client::Java, "async", Commit::Async, zero)
            .member(Client::Python, "async", Commit::Async, zero),
        Scenario::new("a sync commit per record (franz-go, Java)", &per_rec)
            .member(Client::Go, "per-record", Commit::PerRecord, zero)
            .member(Client::Java, "per-record", Commit::PerRecord, zero),
        Scenario::new("assign() without a group (Java, franz-go)", &assign)
            .with(assign_c(Client::Java), zero)
            .with(assign_c(Client::Go), zero),
        Scenario::new("KIP-848 consumer protocol, auto-commit 5 s (Java, librdkafka)", &kip848)
            .with(kip(Client::Java), zero)
            .with(kip(Client::Python), zero),
        Scenario::new(
            "a group whose coordinator is on another broker than its partition (Java, sync)",
            &elsewhere,
        )
        .with(
            Consume::group(
                Client::Java,
                &elsewhere,
                &elsewhere_group,
                &unique("hc-elsewhere-java-1"),
                RUN_LIMIT,
            ),
            zero,
        ),
        Scenario::new(
            "rolling deploy: scaling out, then replacing, one member at a time (franz-go, auto-commit 5 s)",
            &rolling,
        )
        .with(roll(1), zero)
        .with(roll(2), S(15))
        .with(roll(3), S(30)),
        Scenario::new(
            "down for a minute, then catching up what was produced meanwhile (Java, franz-go; auto-commit 5 s)",
            &down,
        )
        .member(Client::Java, "down", Commit::Auto(S(5)), zero)
        .member(Client::Go, "down", Commit::Auto(S(5)), zero),
        // Last: the backlog is produced before its consumers start.
        Scenario::new(
            "new groups catching up a 20,000-record backlog (librdkafka auto-commit 5 s, Java sync)",
            &backlog,
        )
        .member(Client::Python, "backlog", Commit::Auto(S(5)), S(20))
        .member(Client::Java, "backlog", Commit::Sync, S(20)),
    ]
}

/// Sleeps until `base + offset`, checking every second that no consumer ended on its own.
fn until(base: Instant, offset: Duration, lives: &mut [Live], problems: &mut Vec<String>) {
    loop {
        for l in lives.iter_mut() {
            if l.running.as_mut().is_some_and(|r| !r.is_running()) {
                let r = l.running.take().unwrap().finish(Duration::from_secs(5));
                problems.push(format!("{} ended on its own: {r:?}", l.name()));
                l.runs.push(r);
            }
        }
        let now = Instant::now();
        if now >= base + offset {
            return;
        }
        std::thread::sleep((base + offset - now).min(Duration::from_secs(1)));
    }
}

#[test]
fn cluster_stays_quiet_for_healthy_consumers_and_names_their_groups() {
    let cluster = MultiCluster::shared();
    findings::report(&format!(
        "cluster: {} KRaft nodes, a Sluice in front of each, ready in {:.1}s",
        cluster.nodes.len(),
        cluster.started_in.as_secs_f64()
    ));
    let began = Instant::now();
    let boot = cluster.bootstrap();
    let scenarios = scenarios(cluster);
    let backlog_topic = scenarios.last().unwrap().topic.clone();
    let backfill = Client::Go.spawn_produce(&cluster.tools, &boot, &backlog_topic, BACKLOG, 1);
    let trickles: Vec<Running> = scenarios
        .iter()
        .map(|s| {
            trickle(
                &cluster.tools,
                &boot,
                &s.topic,
                TRICKLE_RATE,
                RUN_LIMIT,
                &s.trickle_id,
            )
        })
        .collect();
    let watch = Watch::start(
        cluster,
        scenarios
            .iter()
            .map(|s| (s.label.to_owned(), s.names()))
            .collect(),
    );
    let mut lives: Vec<Live> = Vec::new();
    let mut starts: Vec<(Duration, usize)> = Vec::new();
    for s in &scenarios {
        for (c, at) in &s.consumers {
            starts.push((*at, lives.len()));
            lives.push(Live {
                scenario: s.label,
                consume: c.clone(),
                running: None,
                runs: Vec::new(),
            });
        }
    }
    let find = |lives: &[Live], id_part: &str| {
        lives
            .iter()
            .position(|l| l.consume.client_id().starts_with(id_part))
            .unwrap()
    };
    let (restarted, roll1, roll2, roll3) = (
        find(&lives, "hc-auto5s-start-python"),
        find(&lives, "hc-rolling-go-1"),
        find(&lives, "hc-rolling-go-2"),
        find(&lives, "hc-rolling-go-3"),
    );
    let down = [find(&lives, "hc-down-java"), find(&lives, "hc-down-go")];
    let mut problems: Vec<String> = Vec::new();

    // The timeline: consumers start (some later), one restarts, a deploy rolls, a broker
    // restarts, and traffic goes on.
    let t0 = Instant::now();
    starts.sort();
    let mut backfill = Some(backfill);
    for (at, i) in starts {
        until(t0, at, &mut lives, &mut problems);
        if lives[i].scenario == scenarios.last().unwrap().label {
            if let Some(b) = backfill.take() {
                let r = b
                    .finish(Duration::from_secs(120))
                    .expect("backlog produced");
                assert_eq!(r["produced"], BACKLOG, "{r}");
            }
        }
        lives[i].start(cluster);
    }
    let at =
        |t: Duration, lives: &mut [Live], problems: &mut Vec<String>, i: usize, start: bool| {
            until(t0, t, lives, problems);
            lives[i].stop();
            if start {
                lives[i].start(cluster);
            }
        };
    // Two consumers go down for over a minute (across the broker restart) while records keep
    // coming: back, they catch up on them before their first commit.
    until(t0, S(35), &mut lives, &mut problems);
    for i in down {
        lives[i].stop();
    }
    at(S(40), &mut lives, &mut problems, restarted, false);
    at(S(45), &mut lives, &mut problems, restarted, true);
    at(S(50), &mut lives, &mut problems, roll1, true);
    at(S(60), &mut lives, &mut problems, roll2, true);
    until(t0, BEFORE_RESTART, &mut lives, &mut problems);

    // A clean restart of the node coordinating the most groups: its leaderships and
    // coordinators move to the others' sidecars mid-run.
    let topics: Vec<&str> = scenarios.iter().map(|s| s.topic.as_str()).collect();
    let groups: Vec<String> = lives
        .iter()
        .filter_map(|l| l.consume.group_name().map(str::to_owned))
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let group_refs: Vec<&str> = groups.iter().map(String::as_str).collect();
    let before = cluster.describe(&topics, &group_refs);
    let node = (1..=cluster.nodes.len() as u32)
        .max_by_key(|n| before.coordinators.values().filter(|c| *c == n).count())
        .unwrap();
    let away = {
        let _exclusive = disrupt();
        cluster.restart_node(node, false)
    };
    let restarted_at = Instant::now();
    let after = cluster.describe(&topics, &group_refs);
    let moved_partitions = before
        .topics
        .iter()
        .flat_map(|(t, ps)| ps.iter().map(move |p| (t, p)))
        .filter(|(t, p)| p.leader == node && after.leader(t, p.partition) != node)
        .count();
    let moved_groups = before
        .coordinators
        .iter()
        .filter(|(g, c)| **c == node && after.coordinators[*g] != node)
        .count();
    findings::report(&format!(
        "cluster: node {node} restarted cleanly mid-run in {:.1}s; {moved_partitions} partition leaderships \
         and {moved_groups} group coordinators of the healthy scenarios moved to other sidecars",
        away.as_secs_f64()
    ));
    if moved_partitions == 0 {
        problems.push(format!(
            "the restart of node {node} moved no leadership: {after:?}"
        ));
    }
    until(restarted_at, S(10), &mut lives, &mut problems);
    lives[roll3].stop();
    lives[roll3].start(cluster);
    until(restarted_at, S(25), &mut lives, &mut problems);
    for i in down {
        lives[i].start(cluster);
    }
    until(restarted_at, AFTER_RESTART, &mut lives, &mut problems);

    for l in lives.iter_mut() {
        l.stop();
    }
    drop(trickles);
    let traffic_s = t0.elapsed().as_secs_f64();
    std::thread::sleep(SETTLE);
    let seen = watch.finish();

    check_consumers(&lives, &mut problems);
    check_commits_seen(cluster, &lives, &mut problems);
    report_false_positives(
        cluster,
        &scenarios,
        &lives,
        &seen,
        node,
        traffic_s,
        &mut problems,
    );
    check_attribution(cluster, &lives, &mut problems);
    findings::report(&format!(
        "cluster healthy scenarios: {:.0}s in all ({traffic_s:.0}s of traffic)",
        began.elapsed().as_secs_f64()
    ));
    assert!(problems.is_empty(), "{}", problems.join("\n\n"));
}

/// Every run of every consumer ended well, read only good records, and read some.
fn check_consumers(lives: &[Live], problems: &mut Vec<String>) {
    for l in lives {
        let mut consumed = 0;
        for r in &l.runs {
            match r {
                Ok(v) if v["bad"] == 0 => consumed += v["consumed"].as_u64().unwrap_or(0),
                Ok(v) => problems.push(format!("{} read bad records: {v}", l.name())),
                Err(e) => problems.push(format!("{} failed: {e}", l.name())),
            }
        }
        let backlog = l.consume.client_id().starts_with("hc-backlog");
        if consumed == 0 || (backlog && consumed < BACKLOG) {
            problems.push(format!(
                "{} consumed only {consumed} records: {:?}",
                l.name(),
                l.runs
            ));
        }
    }
}

/// Quiet only counts if Sluice saw the groups commit: some sidecar (their coordinator's,
/// before or after the restart) knows each committing group's committed offsets.
fn check_commits_seen(cluster: &MultiCluster, lives: &[Live], problems: &mut Vec<String>) {
    let rows: Vec<Value> = cluster
        .nodes
        .iter()
        .flat_map(|n| {
            n.sidecar
                .observer
                .groups_json()
                .as_array()
                .cloned()
                .unwrap_or_default()
        })
        .collect();
    let groups: BTreeSet<&str> = lives
        .iter()
        .filter_map(|l| l.consume.group_name())
        .collect();
    for g in groups {
        let committed = rows
            .iter()
            .filter(|r| r["group"] == g)
            .any(|r| r["committed"].as_array().is_some_and(|c| !c.is_empty()));
        if !committed {
            problems.push(format!("no sidecar saw group {g} commit"));
        }
    }
}

fn report_false_positives(
    cluster: &MultiCluster,
    scenarios: &[Scenario],
    lives: &[Live],
    seen: &[crate::support::Seen],
    restarted: u32,
    traffic_s: f64,
    problems: &mut Vec<String>,
) {
    let per_node: Vec<String> = cluster
        .nodes
        .iter()
        .map(|n| {
            format!(
                "node {}: {}",
                n.id,
                seen.iter().filter(|s| s.node == n.id).count()
            )
        })
        .collect();
    let consumers: usize = scenarios.iter().map(|s| s.consumers.len()).sum();
    findings::report(&format!(
        "false positives, cluster healthy scenarios ({} scenarios, {consumers} consumers of Java, librdkafka and \
         franz-go, {TRICKLE_RATE} records/s into each topic, node {restarted} restarted mid-run; {traffic_s:.0}s): \
         {} ({})",
        scenarios.len(),
        seen.len(),
        per_node.join(", ")
    ));
    for s in scenarios {
        let mine: Vec<&crate::support::Seen> =
            seen.iter().filter(|x| x.scenario == s.label).collect();
        let kinds: BTreeSet<String> = mine
            .iter()
            .map(|x| {
                format!(
                    "{} on node {}",
                    x.finding["kind"].as_str().unwrap_or("?"),
                    x.node
                )
            })
            .collect();
        findings::report(&format!(
            "  {}: {}{}",
            s.label,
            mine.len(),
            if kinds.is_empty() {
                String::new()
            } else {
                format!(" ({})", kinds.into_iter().collect::<Vec<_>>().join(", "))
            }
        ));
    }
    for x in seen {
        // What the scenario's consumers said of each run (records, commits, commit errors),
        // to tell a client that did not commit from a detector that misjudged one that did.
        let runs: Vec<String> = lives
            .iter()
            .filter(|l| l.scenario == x.scenario)
            .flat_map(|l| {
                l.runs.iter().enumerate().map(move |(i, r)| match r {
                    Ok(v) => format!("  {} run {}: {v}", l.consume.client_id(), i + 1),
                    Err(e) => format!("  {} run {}: {e}", l.consume.client_id(), i + 1),
                })
            })
            .collect();
        problems.push(format!(
            "false positive on node {} at {:.0}s, {}: {}\n{:#}\nits consumers' runs:\n{}",
            x.node,
            x.at.as_secs_f64(),
            x.scenario,
            brief(&x.finding),
            x.finding["evidence"],
            runs.join("\n")
        ));
    }
}

/// On every sidecar, at least [`ATTRIBUTION_TARGET`] of the record bytes the group members
/// fetched there is attributed to their group.
fn check_attribution(cluster: &MultiCluster, lives: &[Live], problems: &mut Vec<String>) {
    let members: Vec<(&str, &str)> = lives
        .iter()
        .filter_map(|l| l.consume.group_name().map(|g| (l.consume.client_id(), g)))
        .collect();
    let mut line = Vec::new();
    for n in &cluster.nodes {
        let a = attribution(&n.sidecar, &members);
        line.push(format!(
            "node {} {:.1}% of {:.1} MiB",
            n.id,
            100.0 * a.share(),
            a.fetched as f64 / 1048576.0
        ));
        if a.share() < ATTRIBUTION_TARGET {
            let wrong: Vec<String> = a
                .wrong()
                .iter()
                .map(|c| {
                    format!(
                        "{} ({} B): {:?} instead of {}",
                        c.client_id, c.fetched, c.seen, c.expected
                    )
                })
                .collect();
            problems.push(format!(
                "node {}: {:.1}% of {} fetched record bytes attributed to the right group (target {:.0}%); \
                 wrong or none:\n  {}",
                n.id,
                100.0 * a.share(),
                a.fetched,
                100.0 * ATTRIBUTION_TARGET,
                wrong.join("\n  ")
            ));
        }
    }
    findings::report(&format!(
        "attribution, cluster healthy group members (fetched record bytes named with the right group, target \
         ≥{:.0}% on every sidecar): {}",
        100.0 * ATTRIBUTION_TARGET,
        line.join(", ")
    ));
}
