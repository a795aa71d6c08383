//! The incident's looping consumers held to their cap (a bad reload of the policy file in
//! between changing nothing), and a healthy group on the same topic and broker unharmed: rates measured from the tap's record of every response sent (bytes
//! per client per second), apart from anything the throttle counts.
//!
//! Rounds alternate: the healthy group alone, then with the loopers running under their
//! policies; every round it must read every record exactly once. Its throughput follows what
//! else runs on a shared 2-core machine, so each round notes where the CPU went, and the
//! throughputs are compared (medians) over the quiet rounds — the rest of the machine using at
//! most [`QUIET`] cores — else over all. The bound is 5%, or the spread of the compared rounds
//! alone if larger. Even on a quiet machine single rounds differ by up to 10%, so after the
//! first three pairs more are run (up to [`MAX_ROUNDS`]) while there are fewer than two quiet
//! ones of each kind or the medians are apart by more than the bound; the report gives every
//! round.

use std::time::{Duration, Instant};

use sluice_integration_tests::clients::consume_report;
use sluice_integration_tests::findings::report;
use sluice_integration_tests::meter::Meter;
use sluice_integration_tests::scenario::args;
use sluice_integration_tests::{admin, unique, Client, Cluster, ProduceReport};

use crate::{
    client_errors, client_policy, cpu, group_policy, kib, mb, median, post_policy, rig, serial,
    wait_policy, write_policies, Looper, CAP, TOKEN,
};

/// Records of 1 KB the healthy group reads each round.
const RECORDS: u64 = 30_000;
/// Rounds of each kind (alone, with the loopers held) at least...
const ROUNDS: usize = 3;
/// ... and at most, while fewer than two of each kind were quiet or the medians differ by
/// more than the bound.
const MAX_ROUNDS: usize = 6;
/// A round is quiet when the rest of the machine (other processes than this test's Sluice,
/// broker and clients) used at most this many cores meanwhile.
const QUIET: f64 = 0.25;
/// The loopers' unthrottled rate is measured over this window.
const FREE_WINDOW: Duration = Duration::from_secs(3);
/// From a policy's change to the start of the window its effect is measured over: the file
/// is checked every 2 s, then the debt of what was sent before has to be paid.
const SETTLE: Duration = Duration::from_secs(4);
/// The held rate is measured over this window (a response is at most a quarter second of
/// the cap: the window's edges move the figure by 3% at most).
const WINDOW: Duration = Duration::from_secs(8);
/// The healthy group's throughput with the loopers held may be this much below its
/// throughput alone (or the spread of its rounds alone, if larger).
const HEALTHY_TOLERANCE: f64 = 0.05;
/// Policy names.
const FILE_POLICY: &str = "incident-loop";
const API_POLICY: &str = "rdkafka-loop";

/// A fresh healthy group reads every record of `topic` once; its Fetch throughput (bytes per
/// second of its record-carrying Fetch responses, first to last), and where the CPU went
/// meanwhile (`loopers`: their pids).
fn healthy_round(
    c: &Cluster,
    topic: &str,
    produced: &ProduceReport,
    label: &str,
    loopers: Vec<u32>,
) -> (f64, cpu::Used) {
    let cpu = cpu::start(c.broker.lock().unwrap().pid(), loopers);
    let group = unique("healthy");
    let id = unique("healthy-reader");
    let mut meter = Meter::new(&c.events);
    let v = Client::Java
        .spawn(
            &c.tools,
            &args(&[
                "consume",
                "--bootstrap",
                &c.bootstrap(),
                "--topic",
                topic,
                "--group",
                &group,
                "--client-id",
                &id,
                "--count",
                &RECORDS.to_string(),
                "--timeout-s",
                "90",
            ]),
        )
        .finish(Duration::from_secs(120))
        .unwrap_or_else(|e| panic!("healthy group ({label}): {e}"));
    let r = consume_report(&v);
    assert_eq!(
        (r.consumed, r.duplicates, r.bad),
        (RECORDS, 0, 0),
        "healthy group ({label}) read every record once: {v}"
    );
    assert_eq!(r.digest, produced.digest, "healthy group ({label}): {v}");
    assert_eq!(v["commit_errors"], 0, "healthy group ({label}): {v}");
    let used = cpu.used();
    meter.update(&c.events);
    let rate = meter
        .fetch_throughput(&id, 16 * 1024)
        .unwrap_or_else(|| panic!("healthy group ({label}): too few Fetch responses seen"));
    (rate, used)
}

/// Stops a looper and checks it did loop and lost no request to a timeout.
fn stop_looper(mut running: sluice_integration_tests::clients::Running, looper: &Looper) {
    let stderr = running.stderr_so_far();
    let v = running
        .stop(Duration::from_secs(30))
        .unwrap_or_else(|e| panic!("looper {}: {e}", looper.id));
    assert!(
        v["failures"].as_u64().unwrap_or(0) > 0,
        "looper {} never looped: {v}",
        looper.id
    );
    let errors = client_errors(&stderr);
    assert!(
        errors.is_empty(),
        "looper {} ({}) saw requests time out or connections drop:\n{}",
        looper.id,
        looper.client.name(),
        errors.join("\n")
    );
}

#[test]
fn loopers_are_held_to_their_cap_while_a_healthy_group_keeps_its_pace() {
    let _serial = serial();
    let rig = rig();
    let c = &rig.cluster;
    let admin_addr = c.admin_addr;
    let topic = unique("orders");
    c.create_topic(&topic, 1);
    // Checksummed records that are no JSON: the loopers fail on the first one and seek back
    // to it forever, never committing; the healthy group reads and checks them all.
    let produced = Client::Java
        .produce(&c.tools, &c.bootstrap(), &topic, RECORDS, 19)
        .unwrap();
    assert_eq!((produced.produced, produced.errors), (RECORDS, 0));

    let java = Looper::new(Client::Java, "java");
    let rdkafka = Looper::new(Client::Python, "librdkafka");
    let ids = [java.id.as_str(), rdkafka.id.as_str()];
    let (mut alone, mut held) = (Vec::new(), Vec::new());
    // A first read warms the broker and the page cache up; not counted.
    let (warm, _) = healthy_round(c, &topic, &produced, "warming up", vec![]);
    let start_loopers = |meter: &mut Meter| {
        let started = Instant::now();
        let running = [
            java.spawn(&c.tools, &c.bootstrap(), &topic, 120, &[]),
            rdkafka.spawn(&c.tools, &c.bootstrap(), &topic, 120, &[]),
        ];
        meter.wait_sending(&c.events, &ids, started, Duration::from_secs(60));
        running
    };
    for round in 0..MAX_ROUNDS {
        alone.push(healthy_round(c, &topic, &produced, "alone", vec![]));
        let mut meter = Meter::new(&c.events);
        let running = start_loopers(&mut meter);
        if round == 0 {
            throttle_the_loopers(rig, &mut meter, &java, &rdkafka);
        } else {
            // Still in force: both are held from their first fetch.
            wait_policy(admin_addr, FILE_POLICY, true);
            wait_policy(admin_addr, API_POLICY, true);
        }
        let pids = running.iter().map(|r| r.pid()).collect();
        held.push(healthy_round(c, &topic, &produced, "loopers held", pids));
        let [j, r] = running;
        stop_looper(j, &java);
        stop_looper(r, &rdkafka);
        let v = Verdict::of(&alone, &held);
        if round + 1 >= ROUNDS && v.quiet && v.holds() {
            break;
        }
    }
    // Once more under the policies, to remove them.
    let mut meter = Meter::new(&c.events);
    let [j, r] = start_loopers(&mut meter);
    remove_the_policies(rig, &mut meter, &java, &rdkafka);
    stop_looper(j, &java);
    stop_looper(r, &rdkafka);

    let Verdict {
        quiet,
        alone: alone_r,
        held: held_r,
        spread,
        bound,
    } = Verdict::of(&alone, &held);
    let (a, h) = (median(&alone_r), median(&held_r));
    let which = if quiet {
        "quiet rounds"
    } else {
        "all rounds, the machine was busy"
    };
    let fmt = |v: &[f64]| v.iter().map(|x| mb(*x)).collect::<Vec<_>>().join(", ");
    let mut rounds = String::new();
    for (i, ((ar, au), (hr, hu))) in alone.iter().zip(&held).enumerate() {
        rounds.push_str(&format!(
            "\n  round {i}: alone {} ({au}); held {} ({hu})",
            mb(*ar),
            mb(*hr)
        ));
    }
    report(&format!(
        "throttle: healthy group (Java, {RECORDS} records of 1 KB; warm-up {}) over {which}: \
         alone {} (median {}, spread {:.1}%); with both loopers held at 256 KiB/s {} (median \
         {}); held/alone {:.3}; per round, with where the CPU went:{rounds}",
        mb(warm),
        fmt(&alone_r),
        mb(a),
        spread * 100.0,
        fmt(&held_r),
        mb(h),
        h / a
    ));
    assert!(
        h >= a * (1.0 - bound),
        "the healthy group lost more than {:.1}% of its throughput while the loopers were \
         held ({which}): alone {}, held {}{rounds}",
        bound * 100.0,
        fmt(&alone_r),
        fmt(&held_r)
    );
}

/// The healthy group's rounds compared: over the quiet rounds when there are two of each,
/// else over all.
#[derive(Debug)]
struct Verdict {
    /// Over quiet rounds.
    quiet: bool,
    /// Throughputs alone compared.
    alone: Vec<f64>,
    /// Throughputs with the loopers held compared.
    held: Vec<f64>,
    /// Spread of the compared rounds alone (max / min - 1).
    spread: f64,
    /// How far below alone the median held may be: 5%, or the spread if larger.
    bound: f64,
}

impl Verdict {
    fn of(alone: &[(f64, cpu::Used)], held: &[(f64, cpu::Used)]) -> Verdict {
        let quiet = quiet_rounds(alone).len() >= 2 && quiet_rounds(held).len() >= 2;
        let all = |v: &[(f64, cpu::Used)]| v.iter().map(|x| x.0).collect::<Vec<_>>();
        let (alone, held) = if quiet {
            (quiet_rounds(alone), quiet_rounds(held))
        } else {
            (all(alone), all(held))
        };
        let spread = alone.iter().copied().fold(f64::MIN, f64::max)
            / alone.iter().copied().fold(f64::MAX, f64::min)
            - 1.0;
        Verdict {
            quiet,
            bound: HEALTHY_TOLERANCE.max(spread),
            alone,
            held,
            spread,
        }
    }

    /// The median held is within the bound of the median alone.
    fn holds(&self) -> bool {
        median(&self.held) >= median(&self.alone) * (1.0 - self.bound)
    }
}

/// Throughputs of the rounds in which the rest of the machine used at most [`QUIET`] cores.
fn quiet_rounds(rounds: &[(f64, cpu::Used)]) -> Vec<f64> {
    rounds
        .iter()
        .filter(|(_, u)| u.others <= QUIET)
        .map(|(r, _)| *r)
        .collect()
}

/// Round 0: the loopers' free rate, then the Java one capped by the policy file (matching its
/// group) and the librdkafka one through the admin API (matching its `client.id`): each held
/// to the cap ±10%.
fn throttle_the_loopers(rig: &crate::Rig, meter: &mut Meter, java: &Looper, rdkafka: &Looper) {
    let c = &rig.cluster;
    let ids = [java.id.as_str(), rdkafka.id.as_str()];
    let free = meter.measure(&c.events, &ids, Instant::now(), FREE_WINDOW);
    for (id, rate) in ids.iter().zip(&free) {
        assert!(
            *rate > 4.0 * CAP as f64,
            "looper {id} runs at {} unthrottled: too slow for a 256 KiB/s cap to show",
            kib(*rate)
        );
    }

    // The API refuses changes without the token.
    let body = client_policy(API_POLICY, &rdkafka.id, "enforce");
    let a = admin::call(c.admin_addr, "POST", "/api/v1/throttles", None, Some(&body));
    assert_eq!(a.status, 401, "POST without a token: {}", a.body);
    let a = admin::call(
        c.admin_addr,
        "POST",
        "/api/v1/throttles",
        Some("not-the-token-0123456789"),
        Some(&body),
    );
    assert_eq!(a.status, 401, "POST with a wrong token: {}", a.body);

    let at = Instant::now();
    write_policies(&rig.policy_file, &group_policy(FILE_POLICY, &java.group));
    post_policy(c.admin_addr, &body);
    wait_policy(c.admin_addr, FILE_POLICY, true);
    let reloaded = at.elapsed();
    let capped = meter.measure(&c.events, &ids, at + SETTLE, WINDOW);
    let seconds = per_second(meter, &ids, at, SETTLE + WINDOW);
    for ((id, rate), (free, secs)) in ids.iter().zip(&capped).zip(free.iter().zip(&seconds)) {
        report(&format!(
            "throttle: looper {id}: {} free, {} held (window {}–{} s after the policy; file \
             reloaded in {:.1} s); per second from the change: {secs}",
            kib(*free),
            kib(*rate),
            SETTLE.as_secs(),
            (SETTLE + WINDOW).as_secs(),
            reloaded.as_secs_f64()
        ));
        assert!(
            (*rate - CAP as f64).abs() <= 0.1 * CAP as f64,
            "looper {id} is not held to 256 KiB/s ±10%: {} over {WINDOW:?} (free {}); per \
             second: {secs}",
            kib(*rate),
            kib(*free)
        );
    }
    // A bad file changes nothing: the policies in force stay, the failure is counted.
    let failures = reload_failures(c.admin_addr);
    let bad = "[[policy]]\nname = \"typo\"\nhost = \"10.0.0.0/33\"\nfetch_bytes_per_sec = 1\n";
    write_policies(
        &rig.policy_file,
        &(group_policy(FILE_POLICY, &java.group) + bad),
    );
    sluice_integration_tests::net::wait_until(
        "the bad policy file's reload failure to be counted",
        Duration::from_secs(15),
        || reload_failures(c.admin_addr) > failures,
    );
    assert!(admin::throttle(c.admin_addr, Some(TOKEN), FILE_POLICY).is_some());
    assert!(admin::throttle(c.admin_addr, Some(TOKEN), "typo").is_none());
    write_policies(&rig.policy_file, &group_policy(FILE_POLICY, &java.group));
    // Every decision is visible: what each policy held, for which connections.
    for name in [FILE_POLICY, API_POLICY] {
        let p = admin::throttle(c.admin_addr, Some(TOKEN), name).unwrap();
        assert!(
            p["held_bytes"].as_u64().unwrap_or(0) > 0
                && p["held_ms"].as_u64().unwrap_or(0) > 0
                && !p["connections"].as_array().is_none_or(Vec::is_empty),
            "policy {name} shows nothing held: {p:#}"
        );
    }
}

/// At the end: the file policy removed by editing the file (the API refuses to delete it),
/// the API one by `DELETE`: both loopers back to full speed.
fn remove_the_policies(rig: &crate::Rig, meter: &mut Meter, java: &Looper, rdkafka: &Looper) {
    let c = &rig.cluster;
    let ids = [java.id.as_str(), rdkafka.id.as_str()];
    let path = |n: &str| format!("/api/v1/throttles/{n}");
    let del = |n: &str| admin::call(c.admin_addr, "DELETE", &path(n), Some(TOKEN), None);
    let a = del(FILE_POLICY);
    assert_eq!(a.status, 409, "DELETE of a file policy: {}", a.body);
    let a = admin::call(c.admin_addr, "DELETE", &path(API_POLICY), None, None);
    assert_eq!(a.status, 401, "DELETE without a token: {}", a.body);

    let at = Instant::now();
    write_policies(&rig.policy_file, "# the incident is over\n");
    let a = del(API_POLICY);
    assert_eq!(a.status, 204, "DELETE {API_POLICY}: {}", a.body);
    assert_eq!(del(API_POLICY).status, 404, "DELETE of a policy gone");
    wait_policy(c.admin_addr, FILE_POLICY, false);
    let removed = at.elapsed();
    let free = meter.measure(&c.events, &ids, at + SETTLE, FREE_WINDOW);
    for (id, rate) in ids.iter().zip(&free) {
        report(&format!(
            "throttle: looper {id}: {} once the policies were removed (file reloaded in {:.1} s)",
            kib(*rate),
            removed.as_secs_f64()
        ));
        assert!(
            *rate > 4.0 * CAP as f64,
            "looper {id} not back to full speed after the policies were removed: {}",
            kib(*rate)
        );
    }
}

/// `sluice.throttle.reload_failures` as `/metrics` gives it (0 before the first).
fn reload_failures(admin_addr: std::net::SocketAddr) -> f64 {
    let m = admin::get(admin_addr, "/metrics", Some(TOKEN));
    assert_eq!(m.status, 200, "/metrics: {}", m.body);
    m.body
        .lines()
        .filter(|l| l.starts_with("sluice_throttle_reload_failures"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Rates to each of `ids` per one-second step of `(from, from + len]`, as text.
fn per_second(meter: &Meter, ids: &[&str], from: Instant, len: Duration) -> Vec<String> {
    ids.iter()
        .map(|id| {
            (0..len.as_secs())
                .map(|s| {
                    let r = meter.rate(id, from + Duration::from_secs(s), Duration::from_secs(1));
                    format!("{:.0}", r / 1024.0)
                })
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect()
}
