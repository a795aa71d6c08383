//! Fetch without commit is judged against the group's own commit habits: healthy consumers
//! starting up, committing every second or every thirty, are left alone; a group whose
//! committed offset stands still while it fetches is named — after the window when it fetches
//! the same records again, after twice its cadence, or after the grace when no cadence is
//! known.

use std::time::{Duration, Instant};

use sluice_protocol::TapEvent;

use super::{commit, delivered, fetch, join, meta, request};
use crate::observer::config::DetectConfig;
use crate::observer::Observer;
use crate::sink::{ConnMeta, TapSink};

/// A consumer of orders-0 in simulated time: a Fetch every 500 ms delivering `per_fetch`
/// records of 1 KiB after the last delivered one (if any are produced), a commit every
/// `commit_every` of the position `commits_at` decides, a tick every second.
struct Sim {
    o: std::sync::Arc<Observer>,
    c: ConnMeta,
    t0: Instant,
    at: Duration,
    next: i64,
    last_commit: Duration,
}

impl Sim {
    fn new(group: &str) -> Sim {
        let o = Observer::new(DetectConfig::default());
        let c = meta(1, 31_000);
        o.on_open(&c);
        o.on_event(&c, &request("consumer-app", 11));
        o.on_event(&c, &join(group));
        let t0 = Instant::now();
        o.tick(t0);
        Sim {
            o,
            c,
            t0,
            at: Duration::ZERO,
            next: 0,
            last_commit: Duration::ZERO,
        }
    }

    fn send(&self, e: &TapEvent) {
        self.o.on_event_at(&self.c, e, self.t0 + self.at);
    }

    /// The consumer's connection closes and a new one (the consumer started again, `secs`
    /// later, the observer ticking every second meanwhile) takes over, from client port `port`.
    fn restart(&mut self, group: &str, secs: u64, port: u16) {
        self.o.on_close(&self.c);
        for _ in 0..secs {
            self.at += Duration::from_secs(1);
            self.o.tick(self.t0 + self.at);
        }
        self.c = meta(1, port);
        self.o.on_open(&self.c);
        self.send(&request("consumer-app", 11));
        self.send(&join(group));
    }

    /// Runs for `secs` seconds: fetching `per_fetch` new records each time (from `from(next)`),
    /// committing `commit(next)` every `commit_every` (none when `None`).
    fn run(
        &mut self,
        group: &str,
        secs: u64,
        per_fetch: i64,
        commit_every: Option<Duration>,
        mut from: impl FnMut(i64) -> i64,
        mut commits_at: impl FnMut(i64) -> i64,
    ) -> Vec<String> {
        let mut raised = Vec::new();
        let end = self.at + Duration::from_secs(secs);
        while self.at < end {
            self.at += Duration::from_millis(500);
            let start = from(self.next);
            self.send(&fetch(start));
            if per_fetch > 0 {
                let last = start + per_fetch - 1;
                self.send(&delivered(start, last, per_fetch as u64 * 1024));
                self.next = self.next.max(last + 1);
            }
            if let Some(every) = commit_every {
                if self.at - self.last_commit >= every {
                    self.last_commit = self.at;
                    for e in commit(group, commits_at(self.next)) {
                        self.send(&e);
                    }
                }
            }
            if self.at.subsec_millis() == 0 {
                self.o.tick(self.t0 + self.at);
                for f in self.o.findings_json()["active"].as_array().unwrap() {
                    if f["kind"] == "fetch_without_commit" {
                        raised.push(format!("{}s: {}", self.at.as_secs(), f["summary"]));
                    }
                }
            }
        }
        raised
    }
}

impl Sim {
    /// A consumer back from a stop: runs for `secs` seconds without committing, its first
    /// fetch from `start` (where it starts again), then on from what it was delivered.
    fn run_back_from(&mut self, group: &str, secs: u64, per_fetch: i64, start: i64) -> Vec<String> {
        let mut from = Some(start);
        self.run(
            group,
            secs,
            per_fetch,
            None,
            |n| from.take().unwrap_or(n),
            at_position,
        )
    }
}

fn at_position(next: i64) -> i64 {
    next
}

#[test]
fn consumers_starting_under_a_trickle_are_left_alone_whatever_their_commit_interval() {
    for every in [1, 5, 30] {
        let group = format!("trickle-{every}s");
        let mut sim = Sim::new(&group);
        // 5 records of 1 KiB a second: 64 KiB fetched in every 10 s window.
        let raised = sim.run(
            &group,
            180,
            7,
            Some(Duration::from_secs(every)),
            |n| n,
            at_position,
        );
        assert!(raised.is_empty(), "commits every {every}s: {raised:#?}");
    }
}

#[test]
fn a_consumer_catching_up_after_its_partition_stood_idle_is_judged_from_the_catch_up() {
    // Commits every 5 s at its position; then nothing new reaches it for 25 s (no records for
    // that partition, or the consumer stopped), so its committed offset stands; then a backlog
    // arrives (or it restarts) and it catches up for 9 s before its next commit, as an
    // auto-committing consumer does. Nothing past the offset was fetched while it stood.
    let mut sim = Sim::new("idle");
    let every = Some(Duration::from_secs(5));
    assert!(sim.run("idle", 20, 3, every, |n| n, at_position).is_empty());
    let raised = sim.run("idle", 25, 0, None, |n| n, at_position);
    assert!(raised.is_empty(), "{raised:#?}");
    let raised = sim.run("idle", 9, 15, None, |n| n, at_position);
    assert!(raised.is_empty(), "judged from the catch-up: {raised:#?}");
    let raised = sim.run("idle", 30, 3, every, |n| n, at_position);
    assert!(raised.is_empty(), "{raised:#?}");
    // The control: catching up and then not committing is named, counted from the catch-up.
    let raised = sim.run("idle", 25, 7, None, |n| n, at_position);
    let first = raised
        .first()
        .expect("named once it holds records uncommitted too long");
    let secs: u64 = first.split('s').next().unwrap().parse().unwrap();
    assert!(
        (88..=96).contains(&secs),
        "about 10 s after its last commit: {raised:#?}"
    );
}

#[test]
fn a_consumer_back_after_a_stop_is_judged_from_its_return() {
    // Commits every 5 s at its position, and stops 2 s after a commit, having fetched past it;
    // down for a minute while records pile up; back (a new connection, from its committed
    // offset), it catches up for 9 s before its next commit.
    let mut sim = Sim::new("down");
    let every = Some(Duration::from_secs(5));
    assert!(sim.run("down", 22, 7, every, |n| n, at_position).is_empty());
    let committed = sim.next - 14;
    sim.restart("down", 60, 31_001);
    let raised = sim.run_back_from("down", 9, 15, committed);
    assert!(raised.is_empty(), "judged from its return: {raised:#?}");
    let raised = sim.run("down", 30, 7, every, |n| n, at_position);
    assert!(raised.is_empty(), "{raised:#?}");
}

#[test]
fn a_consumer_back_once_at_the_offset_its_last_run_started_from_is_judged_from_its_return() {
    // Its group committed offset 0 before any record reached it (an auto-commit of its
    // position as it started); its run then reads for 40 s and none of its commits lands (its
    // coordinator moving), so it is down for a minute with 0 still committed; back, it starts
    // from 0 again — the same offset as its last start — and catches up for 9 s before its
    // first commit. One repeat is no crash loop: judged from its return, under the grace.
    let mut sim = Sim::new("again");
    for e in commit("again", 0) {
        sim.send(&e);
    }
    let raised = sim.run("again", 40, 7, None, |n| n, at_position);
    assert!(
        raised.is_empty(),
        "its first run, under the grace: {raised:#?}"
    );
    sim.restart("again", 60, 31_002);
    let raised = sim.run_back_from("again", 9, 15, 0);
    assert!(raised.is_empty(), "judged from its return: {raised:#?}");
    let every = Some(Duration::from_secs(5));
    let raised = sim.run("again", 30, 7, every, |n| n, at_position);
    assert!(raised.is_empty(), "{raised:#?}");
}

/// A crash loop after a first run of 2 s and one commit at its end: `starts` times, down for
/// `down` seconds, then `secs` seconds from the committed offset, `per_fetch` records a
/// fetch, no commit. The first start (numbered from 0) named, and what was raised.
fn crash_loop(
    group: &str,
    starts: u16,
    (down, secs, per_fetch): (u64, u64, i64),
) -> (Sim, Option<u16>, Vec<String>) {
    let mut sim = Sim::new(group);
    assert!(sim.run(group, 2, 7, None, |n| n, at_position).is_empty());
    let committed = sim.next;
    for e in commit(group, committed) {
        sim.send(&e);
    }
    let mut raised = Vec::new();
    let mut first_named = None;
    for start in 0..starts {
        sim.restart(group, down, 31_100 + start);
        raised.extend(sim.run_back_from(group, secs, per_fetch, committed));
        if first_named.is_none() && !raised.is_empty() {
            first_named = Some(start);
        }
    }
    (sim, first_named, raised)
}

#[test]
fn a_consumer_restarting_from_the_same_offset_each_time_is_judged_from_its_first_start() {
    // Every start goes back to the committed offset, reads for 3 s and dies without
    // committing; back 4 s later. One commit was seen, so no cadence is known: the grace
    // (45 s) would apply, were the repeated start not evidence enough.
    let (sim, first_named, raised) = crash_loop("crashing", 10, (4, 3, 20));
    // 7 s a start: named at the third start in a row from the same offset (the restart
    // numbered 2; the first, 0, came from elsewhere: the committed offset, past the first
    // run's start), its stall past half the window, long before the grace — not at the first
    // repeat, which a healthy consumer killed before its commits landed also makes.
    let start = first_named.unwrap_or_else(|| panic!("never named: {raised:#?}"));
    assert_eq!(start, 2, "named at start {start}: {raised:#?}");
    let findings = sim.o.findings_json();
    let f = findings["active"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["kind"] == "fetch_without_commit")
        .expect("active");
    let judged = &f["evidence"]["partitions"][0]["judged_by"];
    assert_eq!(
        judged, "starting again from the same offset, as a crash loop does",
        "{f:#}"
    );
}

#[test]
fn a_crash_loop_backing_off_longer_than_the_window_is_named_at_its_third_start() {
    // Each start reads 80 KiB in one burst from the committed offset and dies; restarted 15 s
    // later (a backing-off restart policy), so no window holds two starts' deliveries.
    let (_, first_named, raised) = crash_loop("backoff", 4, (15, 1, 40));
    assert_eq!(first_named, Some(2), "{raised:#?}");
}

#[test]
fn a_group_committing_the_same_offset_while_it_fetches_is_named_within_two_cadences() {
    let mut sim = Sim::new("stuck");
    // Healthy for a while: commits every second at its position.
    assert!(sim
        .run(
            "stuck",
            20,
            10,
            Some(Duration::from_secs(1)),
            |n| n,
            at_position
        )
        .is_empty());
    // Then its commits stop moving: always the offset it had reached.
    let stuck_at = sim.next;
    let raised = sim.run(
        "stuck",
        20,
        10,
        Some(Duration::from_secs(1)),
        |n| n,
        |_| stuck_at,
    );
    let first = raised.first().expect("named");
    let secs: u64 = first.split('s').next().unwrap().parse().unwrap();
    assert!(
        (30..=33).contains(&secs),
        "after ~10s (max of window, 2 × 1s): {raised:#?}"
    );
    assert!(first.contains("commits about every 1.0s"), "{first}");
}

#[test]
fn a_group_that_never_commits_is_named_after_the_grace_not_before() {
    let mut sim = Sim::new("never");
    let grace = sim.o.config().commit_grace.as_secs();
    let raised = sim.run("never", grace - 2, 10, None, |n| n, at_position);
    assert!(raised.is_empty(), "{raised:#?}");
    let raised = sim.run("never", 5, 10, None, |n| n, at_position);
    assert!(!raised.is_empty(), "named once the grace is over");
}

#[test]
fn a_group_fetching_the_same_records_again_is_named_after_the_window() {
    let mut sim = Sim::new("again");
    for e in commit("again", 100) {
        sim.send(&e);
    }
    // It fetches from 100 every time, and never commits again.
    let raised = sim.run("again", 15, 50, None, |_| 100, at_position);
    let first = raised.first().expect("named");
    let secs: u64 = first.split('s').next().unwrap().parse().unwrap();
    assert!(secs <= 11, "{raised:#?}");
}

#[test]
fn one_large_response_then_nothing_is_not_fetching() {
    let mut sim = Sim::new("prefetch");
    sim.at += Duration::from_secs(70);
    // A consumer that prefetched 1 MiB and stopped (it read what it wanted and closed).
    sim.send(&fetch(0));
    sim.send(&delivered(0, 999, 1 << 20));
    let raised = sim.run("prefetch", 20, 0, None, |n| n, at_position);
    assert!(raised.is_empty(), "{raised:#?}");
}

#[test]
fn a_refused_commit_does_not_move_the_committed_offset() {
    let o = Observer::new(DetectConfig::default());
    let c = meta(1, 31_001);
    o.on_open(&c);
    o.on_event(&c, &request("app", 8));
    for e in commit("refused", 10) {
        o.on_event(&c, &e);
    }
    let mut refused = commit("refused", 500);
    refused[3] = TapEvent::OffsetCommitResponse {
        errors: vec![(sluice_protocol::event::TopicRef::named("orders"), 0, 22)],
        partitions: 1,
    };
    for e in refused {
        o.on_event(&c, &e);
    }
    o.tick(Instant::now());
    let g = o.groups_json();
    assert_eq!(g[0]["committed"][0]["offset"], 10, "{g:#}");
}

#[test]
fn a_sasl_consumer_s_finding_names_its_principal() {
    use sluice_protocol::event::SaslInfo;
    let mut sim = Sim::new("never");
    for info in [
        SaslInfo::Mechanism("SCRAM-SHA-512".into()),
        SaslInfo::Principal("svc-billing".into()),
        SaslInfo::Outcome {
            error_code: 0,
            error_message: None,
            done: true,
        },
    ] {
        sim.send(&TapEvent::Sasl(info));
    }
    let grace = sim.o.config().commit_grace.as_secs();
    let raised = sim.run("never", grace + 3, 10, None, |n| n, at_position);
    let first = raised.first().expect("named");
    assert!(first.contains("(principal svc-billing)"), "{first}");
    let findings = sim.o.findings_json();
    let f = &findings["active"][0];
    assert_eq!(f["evidence"]["principal"], "svc-billing", "{f:#}");
    assert_eq!(f["evidence"]["clients"][0]["principal"], "svc-billing");
}
