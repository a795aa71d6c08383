//! End-to-end benchmark: the same workloads direct, through haproxy (TCP mode) and through
//! Sluice, in one run, reported as a Markdown table. See `benches/README.md`.
//!
//! `cargo run --release -p sluice-benches --bin e2e -- [--quick] [--out FILE.md]`

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use anyhow::{bail, Context, Result};
use clap::{Parser, ValueEnum};

use sluice_benches::kafka::{self, BrokerPorts, PerfTools};
use sluice_benches::measure::{iperf3_client, round_trips};
use sluice_benches::proc::{self, cpu_seconds, ChildGuard, WorkDir};
use sluice_benches::report::{self, round_order, Meta, Results, Route, ROUTES};
use sluice_benches::servers::{self, start_haproxy, start_sluice};
use sluice_benches::stats::{median, percentile};
use sluice_benches::tools::{self, Tools};

/// Compares direct, haproxy (TCP mode) and Sluice on loopback: iperf3 stream throughput and
/// proxy CPU per GB, 64-byte round-trip latency, and Kafka producer/consumer throughput with
/// Kafka's own perf tools. Prints a Markdown table (stdout) and progress (stderr).
#[derive(Debug, Parser)]
#[command(name = "e2e")]
struct Args {
    /// Short run: 1 round, 2 s of iperf3, 5,000 round trips, 50,000 Kafka records.
    #[arg(long)]
    quick: bool,
    /// Also write the report to FILE.
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
    /// Sluice binary to test [default: build the workspace's release binary and use it].
    #[arg(long, value_name = "PATH")]
    sluice_bin: Option<PathBuf>,
    /// Interleaved rounds of each throughput measurement [default: 3; quick: 1].
    #[arg(long, value_name = "N")]
    rounds: Option<u32>,
    /// Seconds per iperf3 run [default: 10; quick: 2].
    #[arg(long, value_name = "S")]
    iperf_secs: Option<u32>,
    /// Timed 64-byte round trips per route [default: 20000; quick: 5000].
    #[arg(long, value_name = "N")]
    round_trips: Option<usize>,
    /// Records per ProducerPerformance run, and messages per ConsumerPerformance run
    /// [default: 1000000; quick: 50000].
    #[arg(long, value_name = "N")]
    kafka_records: Option<u64>,
    /// Extra Kafka broker property, e.g. socket.send.buffer.bytes=-1 (repeatable).
    #[arg(long, value_name = "KEY=VALUE")]
    broker_config: Vec<String>,
    /// Parts to leave out (comma-separated).
    #[arg(long, value_enum, value_delimiter = ',', value_name = "PART")]
    skip: Vec<Part>,
    /// Keep the work directory (configs, logs, broker data) instead of deleting it.
    #[arg(long)]
    keep: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Part {
    Iperf,
    Rtt,
    Kafka,
}

/// What to run, after defaults.
#[derive(Debug)]
struct Plan {
    rounds: u32,
    iperf_secs: u32,
    rtt_blocks: usize,
    rtt_per_block: usize,
    rtt_warmup: usize,
    kafka_records: u64,
    kafka_warmup: u64,
    iperf: bool,
    rtt: bool,
    kafka: bool,
    broker_config: Vec<String>,
}

impl Plan {
    fn new(a: &Args) -> Result<Plan> {
        let q = a.quick;
        let rounds = a.rounds.unwrap_or(if q { 1 } else { 3 });
        let round_trips = a.round_trips.unwrap_or(if q { 5_000 } else { 20_000 });
        let rtt_blocks = if q { 1 } else { 4 };
        let kafka_records = a
            .kafka_records
            .unwrap_or(if q { 50_000 } else { 1_000_000 });
        if let Some(bad) = a.broker_config.iter().find(|kv| !kv.contains('=')) {
            bail!("--broker-config {bad}: expected KEY=VALUE");
        }
        if rounds == 0 || round_trips == 0 || kafka_records == 0 {
            bail!("--rounds, --round-trips and --kafka-records must be at least 1");
        }
        Ok(Plan {
            rounds,
            iperf_secs: a.iperf_secs.unwrap_or(if q { 2 } else { 10 }).max(1),
            rtt_blocks,
            rtt_per_block: round_trips.div_ceil(rtt_blocks),
            rtt_warmup: if q { 500 } else { 1_000 },
            kafka_records,
            kafka_warmup: (kafka_records / 5).clamp(1_000, 100_000),
            iperf: !a.skip.contains(&Part::Iperf),
            rtt: !a.skip.contains(&Part::Rtt),
            kafka: !a.skip.contains(&Part::Kafka),
            broker_config: a.broker_config.clone(),
        })
    }

    fn steps(&self, building: bool) -> usize {
        let r = self.rounds as usize;
        usize::from(building)
            + 1
            + if self.iperf { 3 * r } else { 0 }
            + if self.rtt { 3 * self.rtt_blocks } else { 0 }
            + if self.kafka { 1 + 3 + 1 + 6 * r } else { 0 }
    }

    fn describe(&self, quick: bool) -> String {
        let mut parts = vec![format!(
            "{} ({} round{}, routes interleaved and rotated each round, medians)",
            if quick { "quick" } else { "full" },
            self.rounds,
            if self.rounds == 1 { "" } else { "s" }
        )];
        if self.iperf {
            parts.push(format!("iperf3 {} s × 1 stream", self.iperf_secs));
        }
        if self.rtt {
            parts.push(format!(
                "{} × 64 B round trips per route in {} block(s) after {} warm-up each",
                self.rtt_blocks * self.rtt_per_block,
                self.rtt_blocks,
                self.rtt_warmup
            ));
        }
        if self.kafka {
            parts.push(format!(
                "Kafka {} × 1 KiB records per producer/consumer run (after {} warm-up records)",
                self.kafka_records, self.kafka_warmup
            ));
            if !self.broker_config.is_empty() {
                parts.push(format!(
                    "broker overrides: {}",
                    self.broker_config.join(" ")
                ));
            }
        }
        parts.join("; ")
    }
}

/// Numbered progress lines on stderr.
#[derive(Debug)]
struct Progress {
    n: usize,
    total: usize,
}

impl Progress {
    fn step(&mut self, what: &str) {
        self.n += 1;
        eprintln!("e2e: [{}/{}] {what} ...", self.n, self.total);
    }

    fn note(&self, what: &str) {
        eprintln!("e2e:         {what}");
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            proc::halt_if_interrupted();
            eprintln!("e2e: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map_or_else(|| PathBuf::from("."), Path::to_owned)
}

/// Builds `sluice` in release mode into the target directory this binary lives in (when run
/// by cargo), and returns its path.
fn sluice_binary(args: &Args, progress: &mut Progress) -> Result<PathBuf> {
    if let Some(bin) = &args.sluice_bin {
        if !bin.is_file() {
            bail!("--sluice-bin {} does not exist", bin.display());
        }
        return Ok(bin.clone());
    }
    let exe = std::env::current_exe().context("locating the e2e binary")?;
    let target_dir = exe
        .parent()
        .and_then(Path::parent)
        .context("e2e binary has no target directory")?
        .to_owned();
    let bin = target_dir.join("release").join("sluice");
    if let Some(cargo) = std::env::var_os("CARGO") {
        progress.step("building sluice (cargo build --release -p sluice)");
        let status = Command::new(cargo)
            .args(["build", "--release", "-p", "sluice", "--bin", "sluice"])
            .arg("--manifest-path")
            .arg(workspace_root().join("Cargo.toml"))
            .arg("--target-dir")
            .arg(&target_dir)
            .status()
            .context("running cargo build")?;
        if !status.success() {
            bail!(
                "cargo build --release -p sluice failed ({status}); fix the build, or pass \
                 --sluice-bin PATH to test an existing binary"
            );
        }
    }
    if !bin.is_file() {
        bail!(
            "no Sluice binary at {}: run `cargo build --release -p sluice` or pass --sluice-bin",
            bin.display()
        );
    }
    Ok(bin)
}

/// Runs `f`, recording its error (and printing it) instead of returning it.
fn attempt<T>(results: &mut Results, what: &str, f: impl FnOnce() -> Result<T>) -> Option<T> {
    match f() {
        Ok(v) => Some(v),
        Err(e) => {
            proc::halt_if_interrupted();
            eprintln!("e2e: FAILED: {what}: {e:#}");
            results.failures.push(format!("{what}: {e:#}"));
            None
        }
    }
}

fn addr(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// Per-route addresses of one workload.
#[derive(Debug, Clone, Copy)]
struct Fronts([SocketAddr; 3]);

impl Fronts {
    fn of(&self, route: Route) -> SocketAddr {
        self.0[route.index()]
    }
}

fn run(args: &Args) -> Result<bool> {
    proc::install_signal_handler()?;
    let plan = Plan::new(args)?;
    let tools = Tools::load(plan.kafka)?;
    let building = args.sluice_bin.is_none() && std::env::var_os("CARGO").is_some();
    let mut progress = Progress {
        n: 0,
        total: plan.steps(building),
    };
    let sluice_bin = sluice_binary(args, &mut progress)?;

    let mut meta = Meta {
        date: tools::date(),
        machine: tools::machine(),
        sluice: match &args.sluice_bin {
            Some(bin) => format!(
                "{} (binary {}, given with --sluice-bin)",
                tools::first_line(&sluice_bin, &["--version"]),
                bin.display()
            ),
            None => format!(
                "{} (built from {})",
                tools::first_line(&sluice_bin, &["--version"]),
                tools::git_describe(&workspace_root())
            ),
        },
        haproxy: tools.haproxy_version(),
        iperf3: tools.iperf3_version(),
        kafka: if plan.kafka {
            tools.kafka_version.clone()
        } else {
            "not run".into()
        },
        java: tools.java_version(),
        plan: plan.describe(args.quick),
        ..Meta::default()
    };

    let mut work = WorkDir::create()?;
    if args.keep {
        work.keep();
    }
    let dir = work.path().to_owned();
    let mut results = Results::default();
    // Children are declared after `work`, so they are dropped (stopped) before it.
    let outcome = measure_all(
        &plan,
        &tools,
        &sluice_bin,
        &dir,
        &mut progress,
        &mut meta,
        &mut results,
    );
    proc::halt_if_interrupted();
    if let Err(e) = outcome {
        eprintln!("e2e: FAILED: {e:#}");
        results.failures.push(format!("{e:#}"));
    }
    meta.load_end = tools::load_average();

    let report = report::render(&meta, &results);
    println!("{report}");
    if let Some(out) = &args.out {
        std::fs::write(out, &report).with_context(|| format!("writing {}", out.display()))?;
        eprintln!("e2e: report written to {}", out.display());
    }
    if !results.failures.is_empty() {
        work.keep();
        eprintln!(
            "e2e: {} step(s) failed; logs kept in {}",
            results.failures.len(),
            dir.display()
        );
        return Ok(false);
    }
    if args.keep {
        eprintln!("e2e: work directory kept: {}", dir.display());
    }
    Ok(true)
}

#[allow(clippy::too_many_arguments)]
fn measure_all(
    plan: &Plan,
    tools: &Tools,
    sluice_bin: &Path,
    dir: &Path,
    progress: &mut Progress,
    meta: &mut Meta,
    results: &mut Results,
) -> Result<()> {
    progress.step("starting echo server, iperf3 server, haproxy and Sluice");
    let p = proc::free_ports(11)?;
    let iperf_server = p[0];
    let iperf = Fronts([addr(iperf_server), addr(p[1]), addr(p[2])]);
    let echo_addr = servers::start_echo_server()?;
    let rtt = Fronts([echo_addr, addr(p[3]), addr(p[4])]);
    let bports = BrokerPorts {
        direct: p[5],
        haproxy_backend: p[6],
        sluice_backend: p[7],
        controller: p[8],
        haproxy_front: p[9],
        sluice_front: p[10],
    };
    let kafka = Fronts([
        addr(bports.direct),
        addr(bports.haproxy_front),
        addr(bports.sluice_front),
    ]);

    // The proxies come up first (connections to a missing upstream simply fail), then the
    // servers behind them.
    let mut routes = Vec::new();
    let mut sluices: Vec<ChildGuard> = Vec::new();
    let mut sluice_iperf_pid = None;
    if plan.iperf {
        routes.push(servers::Route {
            name: "iperf".into(),
            listen: iperf.of(Route::Haproxy).port(),
            upstream: iperf.of(Route::Direct),
        });
        let g = start_sluice(
            sluice_bin,
            "iperf",
            iperf.of(Route::Sluice).port(),
            iperf.of(Route::Direct),
            dir,
        )?;
        sluice_iperf_pid = Some(g.pid());
        sluices.push(g);
    }
    if plan.rtt {
        routes.push(servers::Route {
            name: "rtt".into(),
            listen: rtt.of(Route::Haproxy).port(),
            upstream: rtt.of(Route::Direct),
        });
        sluices.push(start_sluice(
            sluice_bin,
            "rtt",
            rtt.of(Route::Sluice).port(),
            rtt.of(Route::Direct),
            dir,
        )?);
    }
    if plan.kafka {
        routes.push(servers::Route {
            name: "kafka".into(),
            listen: bports.haproxy_front,
            upstream: addr(bports.haproxy_backend),
        });
        sluices.push(start_sluice(
            sluice_bin,
            "kafka",
            bports.sluice_front,
            addr(bports.sluice_backend),
            dir,
        )?);
    }
    let haproxy = start_haproxy(&tools.haproxy, &routes, dir)?;
    let _iperf_server = if plan.iperf {
        Some(servers::start_iperf3_server(
            &tools.iperf3,
            iperf_server,
            dir,
        )?)
    } else {
        None
    };
    meta.load_start = tools::load_average();
    if meta.load_start > 0.5 {
        eprintln!(
            "e2e: note: load average is {:.2} before measuring; other work on this machine \
             will make the figures noisy",
            meta.load_start
        );
    }

    if plan.iperf {
        for round in 1..=plan.rounds {
            for route in round_order(round) {
                progress.step(&format!(
                    "iperf3 via {} (round {round}/{}, {} s)",
                    route.name(),
                    plan.rounds,
                    plan.iperf_secs
                ));
                let pid = match route {
                    Route::Direct => None,
                    Route::Haproxy => Some(haproxy.pid()),
                    Route::Sluice => sluice_iperf_pid,
                };
                let name = format!("iperf3-{}-{round}", route.name());
                let what = format!("iperf3 via {} round {round}", route.name());
                let run = attempt(results, &what, || {
                    let cpu0 = pid.map(cpu_seconds).transpose()?;
                    let r = iperf3_client(
                        &tools.iperf3,
                        iperf.of(route).port(),
                        plan.iperf_secs,
                        dir,
                        &name,
                    )?;
                    let cpu = match (pid, cpu0) {
                        (Some(pid), Some(c0)) => Some((cpu_seconds(pid)? - c0) / (r.bytes / 1e9)),
                        _ => None,
                    };
                    Ok((r, cpu))
                });
                if let Some((r, cpu)) = run {
                    let i = route.index();
                    results.iperf[i].push(r);
                    let mut msg = format!("{:.2} Gbit/s", r.bits_per_second / 1e9);
                    if let Some(c) = cpu {
                        results.cpu_per_gb[i].push(c);
                        msg.push_str(&format!(", proxy CPU {c:.3} s/GB"));
                    }
                    progress.note(&msg);
                }
            }
        }
    }

    if plan.rtt {
        for block in 1..=plan.rtt_blocks {
            for route in round_order(block as u32) {
                progress.step(&format!(
                    "round trips via {} (block {block}/{}, {} × 64 B)",
                    route.name(),
                    plan.rtt_blocks,
                    plan.rtt_per_block
                ));
                let what = format!("round trips via {} block {block}", route.name());
                if let Some(mut s) = attempt(results, &what, || {
                    round_trips(rtt.of(route), plan.rtt_warmup, plan.rtt_per_block, 64)
                }) {
                    let mut sorted = s.clone();
                    sorted.sort_unstable();
                    let us = |p| percentile(&sorted, p).unwrap_or(0) as f64 / 1000.0;
                    progress.note(&format!("p50 {:.1} µs, p99 {:.1} µs", us(50.0), us(99.0)));
                    s.shrink_to_fit();
                    results.rtt[route.index()].push(s);
                }
            }
        }
    }

    if plan.kafka {
        kafka_part(plan, tools, &bports, kafka, dir, progress, results);
    }
    drop(sluices);
    drop(haproxy);
    Ok(())
}

fn kafka_part(
    plan: &Plan,
    tools: &Tools,
    bports: &BrokerPorts,
    fronts: Fronts,
    dir: &Path,
    progress: &mut Progress,
    results: &mut Results,
) {
    progress.step("starting Kafka broker (one listener per route)");
    let Some(_broker) = attempt(results, "starting the Kafka broker", || {
        kafka::start_broker(tools, bports, &plan.broker_config, dir)
    }) else {
        return;
    };
    let Some(perf) = attempt(results, "preparing Kafka perf tools", || {
        PerfTools::new(tools, dir)
    }) else {
        return;
    };
    let topic = |route: Route| format!("e2e-{}", route.name());
    let bootstrap = |route: Route| fronts.of(route).to_string();

    // Warm-up: creates each route's topic (auto-create) and warms the broker's JIT, so the
    // first measured route is not penalised.
    for route in ROUTES {
        progress.step(&format!(
            "Kafka warm-up produce via {} ({} records)",
            route.name(),
            plan.kafka_warmup
        ));
        let what = format!("Kafka warm-up produce via {}", route.name());
        if let Some(r) = attempt(results, &what, || {
            perf.produce(
                &format!("warmup-produce-{}", route.name()),
                &bootstrap(route),
                &topic(route),
                plan.kafka_warmup,
            )
        }) {
            progress.note(&format!("{:.1} MB/s", r.mb_per_sec));
        }
    }
    progress.step("Kafka warm-up consume via direct");
    if let Some(r) = attempt(results, "Kafka warm-up consume", || {
        perf.consume(
            "warmup-consume",
            &bootstrap(Route::Direct),
            &topic(Route::Direct),
            plan.kafka_warmup,
            "e2e-warmup",
        )
    }) {
        progress.note(&format!("fetch {:.1} MB/s", r.fetch_mb_per_sec));
    }

    for round in 1..=plan.rounds {
        for route in round_order(round) {
            progress.step(&format!(
                "Kafka produce via {} (round {round}/{}, {} records)",
                route.name(),
                plan.rounds,
                plan.kafka_records
            ));
            let what = format!("Kafka produce via {} round {round}", route.name());
            if let Some(r) = attempt(results, &what, || {
                perf.produce(
                    &format!("produce-{}-{round}", route.name()),
                    &bootstrap(route),
                    &topic(route),
                    plan.kafka_records,
                )
            }) {
                progress.note(&format!(
                    "{:.1} MB/s, {:.0} records/s, avg {:.1} ms, p99 {:.0} ms",
                    r.mb_per_sec, r.records_per_sec, r.avg_latency_ms, r.p99_latency_ms
                ));
                results.producer[route.index()].push(r);
            }
        }
    }
    for round in 1..=plan.rounds {
        for route in round_order(round) {
            progress.step(&format!(
                "Kafka consume via {} (round {round}/{}, {} messages)",
                route.name(),
                plan.rounds,
                plan.kafka_records
            ));
            let what = format!("Kafka consume via {} round {round}", route.name());
            if let Some(r) = attempt(results, &what, || {
                perf.consume(
                    &format!("consume-{}-{round}", route.name()),
                    &bootstrap(route),
                    &topic(route),
                    plan.kafka_records,
                    &format!("e2e-{}-{round}", route.name()),
                )
            }) {
                progress.note(&format!(
                    "fetch {:.1} MB/s ({:.1} MB/s with group join)",
                    r.fetch_mb_per_sec, r.mb_per_sec
                ));
                results.consumer[route.index()].push(r);
            }
        }
    }
    let med = |i: usize| {
        median(
            &results.consumer[i]
                .iter()
                .map(|c| c.fetch_mb_per_sec)
                .collect::<Vec<_>>(),
        )
    };
    if let (Some(d), Some(s)) = (med(0), med(2)) {
        progress.note(&format!("consumer median: Sluice {:.2}× direct", s / d));
    }
}
