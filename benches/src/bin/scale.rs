//! Scale harness: the release `sluice` binary (and haproxy in TCP mode beside it, where a
//! peer exists) against a loopback stand-in broker — 10,000 mostly-idle connections, 2,000
//! new connections per second, and the observer at 10,000 client keys, 1,000 groups and
//! 10,000 partitions. Prints a Markdown report. See `benches/README.md` ("Scale harness").
//!
//! Over 600 lines on purpose: the set-up and the three parts read as one script in run order,
//! each writing its table; the clients, the stand-in broker and the process readings are in
//! the library (`scale`, `standin`, `proc`).
//!
//! `cargo run --release -p sluice-benches --bin scale -- [--quick | --tiny] [--out FILE.md]`

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Command, ExitCode};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::{Parser, ValueEnum};

use sluice_benches::admin;
use sluice_benches::proc::{
    self, cpu_seconds, machine_busy_seconds, open_fds, rss_kib, ChildGuard,
};
use sluice_benches::scale::{self, ObserverPlan, TrafficCounters};
use sluice_benches::servers::{self, Route};
use sluice_benches::stats::{median, percentile};
use sluice_benches::{standin, tools};

/// Sluice at scale on loopback, against a stand-in broker that answers ApiVersions, Fetch and
/// OffsetCommit: (1) N concurrent mostly-idle connections — each sends one ApiVersions request
/// and waits — and the proxy's RSS per connection, Sluice beside haproxy (TCP mode); (2) new
/// connections at a paced rate, each one request/response then closed — proxy CPU, connect
/// to first response latency, failures — Sluice beside haproxy; (3) the observer filled with
/// client keys, groups and partitions by real Kafka frames through Sluice — RSS, detector
/// tick time, admin API and /metrics response times and sizes, the telemetry series cap.
/// The report (Markdown) goes to stdout, progress to stderr. The machine's load is part of
/// the report: CPU and latency figures from a busy machine are noise, memory figures are not.
#[derive(Debug, Parser)]
#[command(name = "scale")]
struct Args {
    /// Shorter run: 10 s of new connections, 15 s of observer traffic (full counts).
    #[arg(long)]
    quick: bool,
    /// A tiny run to check the harness itself (50 connections, 2 s at 100/s, 100 client
    /// keys in 10 groups); no figure of it means anything, and it fails if any connection
    /// failed (scripts/test.sh runs it).
    #[arg(long)]
    tiny: bool,
    /// Concurrent idle connections [default: 10000]; lowered, and said so, to what the
    /// open-file hard limit lets a proxy hold (two descriptors per connection).
    #[arg(long, value_name = "N")]
    connections: Option<usize>,
    /// New connections per second [default: 2000].
    #[arg(long, value_name = "N")]
    rate: Option<u32>,
    /// Seconds of new connections per proxy [default: 60; quick: 10].
    #[arg(long, value_name = "S")]
    rate_secs: Option<f64>,
    /// Observer workload: client keys (`client.id`s) [default: 10000].
    #[arg(long, value_name = "N")]
    clients: Option<usize>,
    /// Observer workload: groups; must divide the client keys [default: 1000].
    #[arg(long, value_name = "N")]
    groups: Option<usize>,
    /// Observer workload: partitions per topic; a multiple of client keys per group. Every
    /// key fetches a partition of its own, so partitions = client keys [default: 100].
    #[arg(long, value_name = "N")]
    partitions_per_topic: Option<usize>,
    /// Observer workload: connections the client keys are spread over [default: 5000].
    #[arg(long, value_name = "N")]
    observer_connections: Option<usize>,
    /// Seconds of observer traffic [default: 40; quick: 15].
    #[arg(long, value_name = "S")]
    observer_secs: Option<u64>,
    /// Seconds per observer round: every key fetches once and every group commits once per
    /// round [default: 2].
    #[arg(long, value_name = "S")]
    round_secs: Option<f64>,
    /// Sluice's telemetry.max_series (series per metric before the overflow series).
    #[arg(long, value_name = "N", default_value_t = 2000)]
    max_series: usize,
    /// Parts to leave out (comma-separated).
    #[arg(long, value_enum, value_delimiter = ',', value_name = "PART")]
    skip: Vec<Part>,
    /// Also write the report to FILE.
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
    /// Sluice binary to test [default: build the workspace's release binary and use it].
    #[arg(long, value_name = "PATH")]
    sluice_bin: Option<PathBuf>,
    /// Keep the work directory (configs, logs).
    #[arg(long)]
    keep: bool,
    /// Internal: run only the stand-in broker on ADDR (the harness starts itself so).
    #[arg(long, value_name = "ADDR", hide = true)]
    stand_in: Option<SocketAddr>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Part {
    /// The idle connections.
    Idle,
    /// The new connections per second.
    Rate,
    /// The observer at scale.
    Observer,
    /// haproxy beside Sluice.
    Haproxy,
}

/// What to run, after defaults.
#[derive(Debug, Clone, PartialEq)]
struct Plan {
    connections: usize,
    rate: u32,
    rate_secs: f64,
    observer: ObserverPlan,
    observer_secs: u64,
    round: Duration,
    idle: bool,
    rate_part: bool,
    observer_part: bool,
    haproxy: bool,
}

impl Plan {
    fn new(a: &Args) -> Result<Plan> {
        let (t, q) = (a.tiny, a.quick || a.tiny);
        let observer = ObserverPlan {
            clients: a.clients.unwrap_or(if t { 100 } else { 10_000 }),
            groups: a.groups.unwrap_or(if t { 10 } else { 1_000 }),
            partitions_per_topic: a.partitions_per_topic.unwrap_or(if t { 10 } else { 100 }),
            connections: a.observer_connections.unwrap_or(if t { 20 } else { 5_000 }),
        };
        observer.validate()?;
        let plan = Plan {
            connections: a.connections.unwrap_or(if t { 50 } else { 10_000 }),
            rate: a.rate.unwrap_or(if t { 100 } else { 2_000 }),
            rate_secs: a.rate_secs.unwrap_or(if t {
                2.0
            } else if q {
                10.0
            } else {
                60.0
            }),
            observer,
            observer_secs: a.observer_secs.unwrap_or(if t {
                4
            } else if q {
                15
            } else {
                40
            }),
            round: Duration::from_secs_f64(a.round_secs.unwrap_or(if t { 1.0 } else { 2.0 })),
            idle: !a.skip.contains(&Part::Idle),
            rate_part: !a.skip.contains(&Part::Rate),
            observer_part: !a.skip.contains(&Part::Observer),
            haproxy: !a.skip.contains(&Part::Haproxy),
        };
        if plan.connections == 0 || plan.rate == 0 || plan.rate_secs <= 0.0 {
            bail!("--connections, --rate and --rate-secs must be above 0");
        }
        if plan.round.is_zero() || plan.observer_secs == 0 {
            bail!("--round-secs and --observer-secs must be above 0");
        }
        Ok(plan)
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    if let Some(addr) = args.stand_in {
        return match standin::run(addr) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("scale: stand-in broker: {e:#}");
                ExitCode::FAILURE
            }
        };
    }
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            proc::halt_if_interrupted();
            eprintln!("scale: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn progress(what: &str) {
    eprintln!("scale: {what}");
}

/// The processes under measurement, for CPU accounting.
struct Cpu {
    pids: Vec<u32>,
    at: Instant,
    each: Vec<f64>,
    machine: f64,
}

impl Cpu {
    fn start(pids: &[u32]) -> Cpu {
        Cpu {
            pids: pids.to_vec(),
            at: Instant::now(),
            each: pids
                .iter()
                .map(|&p| cpu_seconds(p).unwrap_or(0.0))
                .collect(),
            machine: machine_busy_seconds().unwrap_or(0.0),
        }
    }

    /// (CPU seconds of each pid, cores other processes used on average, wall seconds).
    fn stop(&self) -> (Vec<f64>, f64, f64) {
        let wall = self.at.elapsed().as_secs_f64();
        let each: Vec<f64> = self
            .pids
            .iter()
            .zip(&self.each)
            .map(|(&p, b)| cpu_seconds(p).unwrap_or(*b) - b)
            .collect();
        let machine = machine_busy_seconds().unwrap_or(self.machine) - self.machine;
        let others = (machine - each.iter().sum::<f64>()).max(0.0) / wall.max(1e-9);
        (each, others, wall)
    }
}

/// A proxy under test.
struct Proxy {
    name: &'static str,
    guard: ChildGuard,
    listen: SocketAddr,
    admin: Option<SocketAddr>,
}

fn run(args: &Args) -> Result<()> {
    let plan = Plan::new(args)?;
    proc::install_signal_handler()?;
    let (soft_before, soft, hard) = proc::raise_open_file_limit()?;
    // A proxy holds two descriptors per connection, plus its own: Sluice keeps 256 aside
    // (`proxy/src/fds.rs`), haproxy refuses to start if 2 × maxconn and its own do not fit.
    let fit = usize::try_from(hard.saturating_sub(256) / 2).unwrap_or(usize::MAX);
    let connections = plan.connections.min(fit);
    let mut report = String::new();
    let _ = writeln!(report, "# Sluice scale report\n");
    let _ = writeln!(
        report,
        "- {} · commit {} · {}\n- load average before: {} (1, 5, 15 min) · {}",
        tools::date(),
        tools::git_describe(&tools::workspace_root()),
        tools::machine(),
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" "),
        if args.tiny {
            "**tiny run: a check of the harness, no figure means anything**"
        } else if args.quick {
            "quick run"
        } else {
            "full run"
        },
    );
    let _ = writeln!(
        report,
        "- open-file limit: soft {soft_before} raised to {soft} (hard {hard}); {} idle \
         connections asked{}",
        plan.connections,
        if connections < plan.connections {
            format!(
                ", **{connections} held**: a proxy needs two descriptors per connection and the \
                 hard limit is {hard} (10,000 connections need 20,000 plus the proxy's own; Sluice keeps 256 aside)"
            )
        } else {
            String::new()
        }
    );
    let sluice_bin = tools::sluice_binary(args.sluice_bin.as_deref(), progress)?;
    let haproxy_bin = if plan.haproxy {
        Some(
            tools::find_command("haproxy")
                .context("haproxy not on PATH — run scripts/setup.sh or pass --skip haproxy")?,
        )
    } else {
        None
    };
    let mut dir = proc::WorkDir::create()?;
    if args.keep {
        dir.keep();
        progress(&format!(
            "keeping the work directory {}",
            dir.path().display()
        ));
    }
    let ports = proc::free_ports(6)?;
    let broker = SocketAddr::from(([127, 0, 0, 1], ports[0]));
    progress(&format!("starting the stand-in broker on {broker}"));
    let mut standin = ChildGuard::spawn(
        "stand-in broker",
        Command::new(std::env::current_exe()?)
            .arg("--stand-in")
            .arg(broker.to_string()),
        &dir.path().join("stand-in.log"),
        Duration::from_secs(2),
    )?;
    standin.wait_ready("its port", Duration::from_secs(20), || {
        proc::listening(broker.port())
    })?;

    progress("starting sluice");
    let start_sluice = |name: &str, admin_port: u16| -> Result<Proxy> {
        let mut cmd =
            servers::sluice_command(&sluice_bin, ports[1], broker, admin_port, true, None);
        // Every client comes from 127.0.0.1: the per-host cap must not be what refuses.
        cmd.env("SLUICE_MAX_CONNECTIONS_PER_HOST", "20000")
            .env("SLUICE_TELEMETRY_MAX_SERIES", args.max_series.to_string());
        let s = servers::spawn_sluice(
            &mut cmd,
            name,
            ports[1],
            admin_port,
            Duration::from_secs(5),
            dir.path(),
        )?;
        Ok(Proxy {
            name: "Sluice",
            listen: SocketAddr::from(([127, 0, 0, 1], ports[1])),
            admin: Some(s.admin),
            guard: s.guard,
        })
    };
    let mut proxies = vec![start_sluice("scale", ports[2])?];
    if let Some(bin) = &haproxy_bin {
        progress("starting haproxy (TCP mode)");
        let routes = [Route {
            name: "kafka".into(),
            listen: ports[3],
            upstream: broker,
        }];
        let g = servers::start_haproxy_maxconn(bin, &routes, connections + 20, dir.path())?;
        proxies.push(Proxy {
            name: "haproxy",
            listen: SocketAddr::from(([127, 0, 0, 1], ports[3])),
            admin: None,
            guard: g,
        });
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    let me = std::process::id();
    let mut failed = 0;
    if plan.idle {
        failed += idle_part(&rt, &proxies, connections, standin.pid(), me, &mut report)?;
    }
    if plan.rate_part {
        failed += rate_part(&rt, &proxies, &plan, standin.pid(), me, &mut report)?;
    }
    if plan.observer_part {
        // A Sluice of its own, so the client keys of the parts before (one per idle
        // connection) neither fill the observer's caps nor its memory.
        progress("observer: starting a fresh sluice");
        proxies.clear();
        proxies.push(start_sluice("observer", ports[5])?);
        failed += observer_part(
            &rt,
            &proxies[0],
            &plan,
            args.max_series,
            standin.pid(),
            me,
            &mut report,
        )?;
    }
    for p in &mut proxies {
        p.guard.check_running()?;
    }
    print!("{report}");
    if let Some(out) = &args.out {
        std::fs::write(out, &report).with_context(|| format!("writing {}", out.display()))?;
    }
    // A tiny run checks the harness (scripts/test.sh): a connection that failed is an error.
    // Otherwise failures are figures of the report.
    if args.tiny && failed > 0 {
        bail!("tiny run: {failed} connections failed (see the report)");
    }
    Ok(())
}

fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

/// Polls `f` every 100 ms until it is true or `secs` pass.
fn settle(secs: u64, mut f: impl FnMut() -> bool) {
    let end = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < end && !f() {
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// RSS once it stopped moving by more than 1% over half a second (or after 10 s).
fn steady_rss(pid: u32) -> Result<u64> {
    let mut last = rss_kib(pid)?;
    let end = Instant::now() + Duration::from_secs(10);
    loop {
        std::thread::sleep(Duration::from_millis(500));
        let now = rss_kib(pid)?;
        if now.abs_diff(last) * 100 <= last || Instant::now() >= end {
            return Ok(now);
        }
        last = now;
    }
}

fn idle_part(
    rt: &tokio::runtime::Runtime,
    proxies: &[Proxy],
    n: usize,
    standin: u32,
    me: u32,
    report: &mut String,
) -> Result<u64> {
    let _ = writeln!(report, "\n## {n} concurrent idle connections\n");
    let _ = writeln!(report, "Each connection does one ApiVersions round trip through the proxy and then waits. RSS is the proxy's `VmRSS` once steady.\n");
    let mut rows: Vec<Vec<String>> = vec![Vec::new(); 10];
    let mut failed = 0;
    for p in proxies {
        let pid = p.guard.pid();
        progress(&format!(
            "idle: {} — warm-up connection, then {n} connections",
            p.name
        ));
        rt.block_on(scale::connect_and_ask(p.listen, "warm-up"))
            .with_context(|| format!("warm-up connection through {}", p.name))?;
        let before = steady_rss(pid)?;
        let fds_before = open_fds(pid)?;
        let cpu = Cpu::start(&[pid, me, standin]);
        let t0 = Instant::now();
        let held = rt.block_on(scale::open_idle(p.listen, n, 200, |done| {
            progress(&format!("idle: {} — {done}/{n} opened", p.name));
        }));
        let open_secs = t0.elapsed().as_secs_f64();
        let (used, others, _) = cpu.stop();
        let with = steady_rss(pid)?;
        let fds_with = open_fds(pid)?;
        let count = held.conns.len();
        failed += held.failures.total();
        let per_conn = (with.saturating_sub(before)) as f64 / count.max(1) as f64;
        progress(&format!(
            "idle: {} — {count} held, {} failed; RSS {} → {} ({per_conn:.1} KiB per connection)",
            p.name,
            held.failures.total(),
            mib(before),
            mib(with)
        ));
        drop(held.conns);
        settle(20, || open_fds(pid).is_ok_and(|f| f <= fds_before + 8));
        let after = steady_rss(pid)?;
        let cells = [
            count.to_string(),
            held.failures.to_string(),
            mib(before),
            mib(with),
            format!("**{per_conn:.1} KiB**"),
            mib(after),
            format!("{fds_before} → {fds_with}"),
            format!("{open_secs:.1} s"),
            format!("{:.2} s", used[0]),
            format!("{others:.2} cores"),
        ];
        for (r, c) in rows.iter_mut().zip(cells) {
            r.push(c);
        }
    }
    let names = [
        "connections held",
        "failed to open",
        "RSS before (one warm-up connection done)",
        "RSS with all held",
        "RSS per connection (goal ≤ 32 KiB for Sluice)",
        "RSS after they closed",
        "proxy descriptors before → with all held",
        "time to open all (200 at a time)",
        "proxy CPU while opening",
        "other processes' CPU meanwhile (load)",
    ];
    table(report, proxies, &names, &rows);
    Ok(failed)
}

fn table(report: &mut String, proxies: &[Proxy], names: &[&str], rows: &[Vec<String>]) {
    let _ = write!(report, "| |");
    for p in proxies {
        let _ = write!(report, " {} |", p.name);
    }
    let _ = write!(report, "\n|---|");
    for _ in proxies {
        let _ = write!(report, "---:|");
    }
    let _ = writeln!(report);
    for (name, cells) in names.iter().zip(rows) {
        let _ = writeln!(report, "| {name} | {} |", cells.join(" | "));
    }
}

fn us(ns: Option<u64>) -> String {
    ns.map_or("—".into(), |v| format!("{:.0} µs", v as f64 / 1e3))
}

fn rate_part(
    rt: &tokio::runtime::Runtime,
    proxies: &[Proxy],
    plan: &Plan,
    standin: u32,
    me: u32,
    report: &mut String,
) -> Result<u64> {
    let _ = writeln!(
        report,
        "\n## {} new connections per second for {} s\n",
        plan.rate, plan.rate_secs
    );
    let _ = writeln!(report, "Connection i starts at t0 + i / rate (a timeline, not sleeps: a late start does not delay the next). Each connects, does one ApiVersions round trip and closes. Latency is from the connect call to the whole response read. Sluice's `max_connections` is its default (20,000), `max_connections_per_host` 20,000 (every client is 127.0.0.1).\n");
    let mut rows: Vec<Vec<String>> = vec![Vec::new(); 10];
    let mut failed = 0;
    for p in proxies {
        let pid = p.guard.pid();
        progress(&format!(
            "rate: {} — {}/s for {} s",
            p.name, plan.rate, plan.rate_secs
        ));
        let cpu = Cpu::start(&[pid, me, standin]);
        let mut run = rt.block_on(scale::open_at_rate(
            p.listen,
            plan.rate,
            plan.rate_secs,
            |done| {
                progress(&format!("rate: {} — {done} started", p.name));
            },
        ));
        let (used, others, wall) = cpu.stop();
        failed += run.failures.total();
        run.latencies_ns.sort_unstable();
        run.start_lag_ns.sort_unstable();
        progress(&format!(
            "rate: {} — {} ok, {} failed, p99 {}, proxy CPU {:.2} s",
            p.name,
            run.ok,
            run.failures.total(),
            us(percentile(&run.latencies_ns, 99.0)),
            used[0]
        ));
        let achieved = run.started as f64 / run.elapsed.as_secs_f64().max(1e-9);
        let cells = [
            format!("{} ({achieved:.0}/s)", run.started),
            run.ok.to_string(),
            run.failures.to_string(),
            format!(
                "{} / {}",
                us(percentile(&run.latencies_ns, 50.0)),
                us(percentile(&run.latencies_ns, 99.0))
            ),
            us(run.latencies_ns.last().copied()),
            format!(
                "{} / {}",
                us(percentile(&run.start_lag_ns, 99.0)),
                us(run.start_lag_ns.last().copied())
            ),
            format!("{:.2} s ({:.2} cores)", used[0], used[0] / wall),
            format!("{:.0} µs", used[0] / run.started.max(1) as f64 * 1e6),
            format!("{:.2} cores", (used[1] + used[2]) / wall),
            format!("{others:.2} cores"),
        ];
        for (r, c) in rows.iter_mut().zip(cells) {
            r.push(c);
        }
    }
    let names = [
        "connections started (achieved rate)",
        "completed",
        "failed",
        "connect → response, p50 / p99",
        "connect → response, max",
        "start behind schedule, p99 / max",
        "proxy CPU",
        "proxy CPU per connection",
        "harness and stand-in CPU",
        "other processes' CPU meanwhile (load)",
    ];
    table(report, proxies, &names, &rows);
    Ok(failed)
}

/// One admin endpoint's timings and size.
fn timed_get(admin: SocketAddr, path: &str, times: usize) -> Result<(Vec<f64>, admin::Answer)> {
    let mut ms = Vec::new();
    let mut last = None;
    for _ in 0..times {
        let t0 = Instant::now();
        let a = admin::get(admin, path)?;
        ms.push(t0.elapsed().as_secs_f64() * 1e3);
        if a.status != 200 {
            bail!("GET {path}: HTTP {}", a.status);
        }
        last = Some(a);
    }
    Ok((ms, last.context("no request made")?))
}

/// Series per metric family in a Prometheus text page: (family, series), largest first.
/// A histogram counts its `_count` lines (one per series), not its buckets.
fn series_per_family(page: &str) -> Vec<(String, usize)> {
    let mut counts: std::collections::BTreeMap<String, usize> = Default::default();
    for line in page
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
    {
        let name = line.split(['{', ' ']).next().unwrap_or("");
        if name.ends_with("_bucket") || name.ends_with("_sum") {
            continue;
        }
        *counts
            .entry(name.trim_end_matches("_count").to_owned())
            .or_default() += 1;
    }
    let mut v: Vec<(String, usize)> = counts.into_iter().collect();
    v.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    v
}

#[allow(clippy::too_many_arguments)]
fn observer_part(
    rt: &tokio::runtime::Runtime,
    sluice: &Proxy,
    plan: &Plan,
    max_series: usize,
    standin: u32,
    me: u32,
    report: &mut String,
) -> Result<u64> {
    let o = plan.observer;
    let admin = sluice.admin.context("Sluice has an admin listener")?;
    let pid = sluice.guard.pid();
    let rounds = (plan.observer_secs as f64 / plan.round.as_secs_f64())
        .ceil()
        .max(1.0) as u64;
    let _ = writeln!(
        report,
        "\n## The observer at scale: {} client keys, {} groups, {} partitions\n",
        o.clients, o.groups, o.clients
    );
    let _ = writeln!(report, "{} client keys (`consumer-scale-g<group>-<n>`, Java's default `client.id`, so each is tied to its group) over {} connections through Sluice; each key fetches a partition of its own ({} topics of {} partitions, Fetch v12, one 10-record batch per response), each group's first key commits the group's partitions (OffsetCommit v8), every {:.1} s, {rounds} rounds. Tick times are `tick` of `/api/v1/observer` (expiry, detectors, labels and snapshot, wall clock of the observer's thread); the tables of rows are built only when a reader asks (`tables` of `/api/v1/observer`: the admin calls timed below, `/metrics`, the exporter). `telemetry.max_series` = {max_series}.\n", o.clients, o.connections, o.topics(), o.partitions_per_topic, plan.round.as_secs_f64());
    let rss_before = steady_rss(pid)?;
    let tick0 = admin_timing(admin, "tick")?;
    let cpu0 = admin_cpu(admin, "tick")?;
    let counters = Arc::new(TrafficCounters::default());
    let cpu = Cpu::start(&[pid, me, standin]);
    progress(&format!(
        "observer: {} keys, {} groups over {} connections, {rounds} rounds of {:.1} s",
        o.clients,
        o.groups,
        o.connections,
        plan.round.as_secs_f64()
    ));
    let traffic = rt.spawn(scale::observer_traffic(
        sluice.listen,
        o,
        rounds,
        plan.round,
        counters.clone(),
    ));
    let mut tick_samples = Vec::new();
    let mut peak_rss = rss_before;
    while !traffic.is_finished() {
        std::thread::sleep(Duration::from_secs(1));
        peak_rss = peak_rss.max(rss_kib(pid)?);
        let t = admin_timing(admin, "tick")?;
        progress(&format!(
            "observer: round {}/{rounds}, {} round trips, {} connections failed, tick last {} µs \
             max {} µs, RSS {}",
            counters.rounds_done.load(Relaxed),
            counters.round_trips.load(Relaxed),
            counters.failed.load(Relaxed),
            t.1,
            t.2,
            mib(rss_kib(pid)?)
        ));
        tick_samples.push(t);
    }
    let failures = rt.block_on(traffic).context("observer traffic task")?;
    let (used, others, wall) = cpu.stop();
    let rss_end = rss_kib(pid)?;
    let tick1 = admin_timing(admin, "tick")?;
    let cpu1 = admin_cpu(admin, "tick")?;
    let health: serde_json::Value =
        serde_json::from_str(&admin::http_get(admin, "/api/v1/observer")?)?;
    progress("observer: timing the admin API and /metrics (3 times each)");
    let mut endpoints = Vec::new();
    for path in [
        "/api/v1/observer",
        "/api/v1/groups",
        "/api/v1/clients",
        "/api/v1/topics",
        "/api/v1/findings",
        "/metrics",
    ] {
        let (ms, answer) = timed_get(admin, path, 3)?;
        endpoints.push((path, ms, answer));
    }
    let builds = admin_timing(admin, "tables")?;
    let ticks = tick1.0.saturating_sub(tick0.0);
    let mean = (tick1.3.saturating_sub(tick0.3)) as f64 / ticks.max(1) as f64;
    let lasts: Vec<f64> = tick_samples.iter().map(|t| t.1 as f64).collect();
    let _ = writeln!(report, "| | figure |\n|---|---:|");
    let row = |r: &mut String, k: &str, v: String| {
        let _ = writeln!(r, "| {k} | {v} |");
    };
    let h = |k: &str| health[k].to_string();
    row(
        report,
        "observer holds: client keys / groups / topics / fetch tracks / connections",
        format!(
            "{} / {} / {} / {} / {}",
            h("clients"),
            h("groups"),
            h("topics"),
            h("fetch_tracks"),
            h("connections")
        ),
    );
    row(
        report,
        "refused at the caps / evicted",
        format!("{} / {}", health["refused_at_cap"], health["evicted"]),
    );
    row(
        report,
        "round trips (fetches and commits) / failed connections",
        format!("{} / {}", counters.round_trips.load(Relaxed), failures),
    );
    row(
        report,
        "Sluice RSS before → peak → end",
        format!("{} → {} → {}", mib(rss_before), mib(peak_rss), mib(rss_end)),
    );
    row(
        report,
        "detector tick: mean / median of sampled last / max (goal ≤ 10 ms)",
        format!(
            "{:.1} ms / {:.1} ms / **{:.1} ms** ({ticks} ticks)",
            mean / 1e3,
            median(&lasts).unwrap_or(0.0) / 1e3,
            tick1.2 as f64 / 1e3
        ),
    );
    row(
        report,
        "… of it the observer thread's CPU (the rest: off the CPU, waiting for a core the forwarding threads share): mean",
        match (cpu0, cpu1) {
            (Some(a), Some(b)) => {
                let cpu = b.saturating_sub(a) as f64 / ticks.max(1) as f64;
                format!(
                    "{:.1} ms ({:.0}% of the wall clock)",
                    cpu / 1e3,
                    100.0 * cpu / mean.max(1.0)
                )
            }
            _ => "— (a Sluice before `cpu_total_us`)".to_owned(),
        },
    );
    row(
        report,
        "tables built when a reader asked (admin calls, `/metrics`, exporter): mean / max",
        format!(
            "{:.1} ms / {:.1} ms ({} builds)",
            builds.3 as f64 / builds.0.max(1) as f64 / 1e3,
            builds.2 as f64 / 1e3,
            builds.0
        ),
    );
    row(
        report,
        "Sluice CPU over the traffic",
        format!("{:.1} s ({:.2} cores)", used[0], used[0] / wall),
    );
    row(
        report,
        "harness and stand-in CPU / other processes' CPU (load)",
        format!("{:.2} / {others:.2} cores", (used[1] + used[2]) / wall),
    );
    for (path, ms, a) in &endpoints {
        let total = a
            .header("x-total-count")
            .map_or(String::new(), |t| format!(", x-total-count {t}"));
        let cut = a
            .header("x-truncated")
            .map_or(String::new(), |t| format!(", x-truncated {t}"));
        row(
            report,
            &format!("`GET {path}`: median / max time, size"),
            format!(
                "{:.1} / {:.1} ms, {:.1} KiB{total}{cut}",
                median(ms).unwrap_or(0.0),
                ms.iter().copied().fold(0.0, f64::max),
                a.body.len() as f64 / 1024.0
            ),
        );
    }
    if let Some((_, _, metrics)) = endpoints.iter().find(|e| e.0 == "/metrics") {
        let fams = series_per_family(&metrics.body);
        let total: usize = fams.iter().map(|f| f.1).sum();
        let (name, most) = fams.first().cloned().unwrap_or_default();
        let held = most <= max_series + 1;
        row(report, "`/metrics` series (histograms by their `_count`)", format!("{total} in {} families; most: `{name}` {most} (cap {max_series} + 1 overflow series) — {}", fams.len(), if held { "**cap holds**" } else { "**CAP EXCEEDED**" }));
        let overflow: Vec<String> = metrics
            .body
            .lines()
            .filter(|l| l.starts_with("sluice_telemetry_series_overflow_total"))
            .filter(|l| !l.ends_with(" 0"))
            .map(|l| l.replace("sluice_telemetry_series_overflow_total", ""))
            .collect();
        row(
            report,
            "series folded into the overflow series (`sluice_telemetry_series_overflow_total`, non-zero)",
            if overflow.is_empty() {
                "none".into()
            } else {
                overflow.join("<br>")
            },
        );
    }
    Ok(failures.total())
}

/// `what` (`tick`, `tables`) of `/api/v1/observer`: (count, last_us, max_us, total_us).
fn admin_timing(admin: SocketAddr, what: &str) -> Result<(u64, u64, u64, u64)> {
    let v: serde_json::Value = serde_json::from_str(&admin::http_get(admin, "/api/v1/observer")?)?;
    let t = &v[what];
    let n = |k: &str| {
        t[k].as_u64().with_context(|| {
            format!("no {what}.{k} in /api/v1/observer (a Sluice before these timings?)")
        })
    };
    Ok((n("count")?, n("last_us")?, n("max_us")?, n("total_us")?))
}

/// `cpu_total_us` of `what` in `/api/v1/observer`: the observer thread's CPU time within
/// them (`None` from a Sluice before that figure).
fn admin_cpu(admin: SocketAddr, what: &str) -> Result<Option<u64>> {
    let v: serde_json::Value = serde_json::from_str(&admin::http_get(admin, "/api/v1/observer")?)?;
    Ok(v[what]["cpu_total_us"].as_u64())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_quick_tiny_and_bad_values() {
        let parse = |a: &[&str]| {
            Plan::new(
                &Args::try_parse_from(std::iter::once("scale").chain(a.iter().copied())).unwrap(),
            )
        };
        let full = parse(&[]).unwrap();
        assert_eq!(
            (full.connections, full.rate, full.rate_secs),
            (10_000, 2_000, 60.0)
        );
        assert_eq!(
            (
                full.observer.clients,
                full.observer.groups,
                full.observer.partitions_per_topic
            ),
            (10_000, 1_000, 100)
        );
        assert!(full.idle && full.rate_part && full.observer_part && full.haproxy);
        let quick = parse(&["--quick"]).unwrap();
        assert_eq!(
            (quick.rate_secs, quick.observer_secs, quick.connections),
            (10.0, 15, 10_000)
        );
        let tiny = parse(&["--tiny", "--skip", "haproxy,rate"]).unwrap();
        assert_eq!((tiny.connections, tiny.observer.clients), (50, 100));
        assert!(!tiny.haproxy && !tiny.rate_part && tiny.idle);
        assert!(parse(&["--groups", "3"]).is_err());
        assert!(parse(&["--rate", "0"]).is_err());
        assert!(Args::try_parse_from(["scale", "--skip", "nothing"]).is_err());
    }

    #[test]
    fn counts_series_per_family() {
        let page = "# HELP a x\n# TYPE a counter\na_total{k=\"1\"} 1\na_total{k=\"2\"} 2\n\
                    h_bucket{le=\"1\"} 1\nh_bucket{le=\"+Inf\"} 1\nh_sum 1\nh_count 1\nup 1\n";
        let f = series_per_family(page);
        assert_eq!(f[0], ("a_total".to_string(), 2));
        assert!(f.contains(&("h".to_string(), 1)));
        assert!(f.contains(&("up".to_string(), 1)));
    }
}
