//! End-to-end benchmark: the same workloads direct, through haproxy (TCP mode) and through
//! Sluice with its protocol tap on and off, and with telemetry exported to an OpenTelemetry
//! Collector, in one run, reported as a Markdown table. See `benches/README.md`.
//!
//! Over 600 lines on purpose: the plan and the parts (iperf, round trip, Kafka, replay) read as
//! one script in run order; the measuring, servers and report are in the library.
//!
//! `cargo run --release -p sluice-benches --bin e2e -- [--quick] [--out FILE.md]`

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::{Parser, ValueEnum};

use sluice_benches::admin;
use sluice_benches::collector::Collector;
use sluice_benches::counts::Counter;
use sluice_benches::kafka::{self, BrokerPorts, PerfTools};
use sluice_benches::measure::{iperf3_client, round_trips};
use sluice_benches::proc::{self, cpu_seconds, WorkDir};
use sluice_benches::replay::{self, Recorded, ReplayServer};
use sluice_benches::report::{self, Meta};
use sluice_benches::results::{round_order, Results, Route, TapCheck, TelemetryCheck, N, ROUTES};
use sluice_benches::servers::{self, start_haproxy, start_sluice, Otlp, Sluice};
use sluice_benches::stats::{median, percentile};
use sluice_benches::tls_part::{self, Progress as _, TlsPlan};
use sluice_benches::tools::{self, Tools};

/// The recorded Kafka session whose big Fetch exchange the replay uses (relative to the
/// workspace root; `.requests.bin` and `.responses.bin` are appended).
const REPLAY_FIXTURE: &str = "protocol-ext/fixtures/java-session-3";

/// Compares direct, haproxy (TCP mode), Sluice (protocol tap on), Sluice with the tap off and
/// Sluice with the tap on and telemetry exported over OTLP/gRPC to a real OpenTelemetry
/// Collector, on loopback: iperf3 stream throughput and proxy CPU per GB, 64-byte round-trip
/// latency, Kafka producer/consumer throughput with Kafka's own perf tools, and a line-rate
/// replay of a recorded Fetch response. Prints a Markdown table (stdout) and progress
/// (stderr).
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
    /// Interleaved rounds of the Fetch replay (short runs, so more of them) [default: 5;
    /// quick: 1].
    #[arg(long, value_name = "N")]
    replay_rounds: Option<u32>,
    /// Seconds per Fetch replay run [default: 4; quick: 2].
    #[arg(long, value_name = "S")]
    replay_secs: Option<u32>,
    /// Fetch requests kept in flight by the replay client.
    #[arg(long, value_name = "N", default_value_t = 4)]
    replay_inflight: usize,
    /// Extra Kafka broker property, e.g. socket.send.buffer.bytes=-1 (repeatable).
    #[arg(long, value_name = "KEY=VALUE")]
    broker_config: Vec<String>,
    /// Telemetry-on Sluice: how often it exports metrics (telemetry.metrics_interval; the
    /// default is Sluice's own).
    #[arg(long, value_name = "DURATION", default_value = "10s")]
    metrics_interval: String,
    /// Telemetry-on Sluice: share of request/response pairs exported as spans
    /// (telemetry.span_sample_ratio).
    #[arg(long, value_name = "RATIO", default_value_t = 0.01)]
    span_sample_ratio: f64,
    /// Parts to leave out (comma-separated). `telemetry` leaves out the telemetry-on Sluice
    /// and its collector (the four routes of older runs); `tls` the TLS termination part.
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
    Replay,
    Telemetry,
    Tls,
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
    replay_rounds: u32,
    replay_secs: u32,
    replay_inflight: usize,
    replay_warmup: u64,
    iperf: bool,
    rtt: bool,
    kafka: bool,
    replay: bool,
    telemetry: bool,
    tls: bool,
    metrics_interval: String,
    span_sample_ratio: f64,
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
        if !(0.0..=1.0).contains(&a.span_sample_ratio) {
            bail!("--span-sample-ratio must be between 0 and 1");
        }
        if rounds == 0 || round_trips == 0 || kafka_records == 0 || a.replay_inflight == 0 {
            bail!(
                "--rounds, --round-trips, --kafka-records and --replay-inflight must be at \
                 least 1"
            );
        }
        Ok(Plan {
            rounds,
            iperf_secs: a.iperf_secs.unwrap_or(if q { 2 } else { 10 }).max(1),
            rtt_blocks,
            rtt_per_block: round_trips.div_ceil(rtt_blocks),
            rtt_warmup: if q { 500 } else { 1_000 },
            kafka_records,
            kafka_warmup: (kafka_records / 5).clamp(1_000, 100_000),
            replay_rounds: a.replay_rounds.unwrap_or(if q { 1 } else { 5 }).max(1),
            replay_secs: a.replay_secs.unwrap_or(if q { 2 } else { 4 }).max(1),
            replay_inflight: a.replay_inflight,
            replay_warmup: if q { 20 } else { 50 },
            iperf: !a.skip.contains(&Part::Iperf),
            rtt: !a.skip.contains(&Part::Rtt),
            kafka: !a.skip.contains(&Part::Kafka),
            replay: !a.skip.contains(&Part::Replay),
            tls: !a.skip.contains(&Part::Tls),
            // Telemetry has work to do only on Kafka traffic (Kafka or the Fetch replay).
            telemetry: !a.skip.contains(&Part::Telemetry)
                && (!a.skip.contains(&Part::Kafka) || !a.skip.contains(&Part::Replay)),
            metrics_interval: a.metrics_interval.clone(),
            span_sample_ratio: a.span_sample_ratio,
            broker_config: retention(kafka_records)
                .into_iter()
                .chain(a.broker_config.iter().cloned())
                .collect(),
        })
    }

    /// The routes measured: all five, or the first four with `--skip telemetry`.
    fn routes(&self) -> &'static [Route] {
        if self.telemetry {
            &ROUTES
        } else {
            &ROUTES[..4]
        }
    }

    fn steps(&self, building: bool) -> usize {
        let r = self.rounds as usize;
        let n = self.routes().len();
        usize::from(building)
            + usize::from(self.any_tcp())
            + if self.iperf { n * r } else { 0 }
            + if self.rtt { n * self.rtt_blocks } else { 0 }
            + if self.kafka { 1 + n + 1 + 2 * n * r } else { 0 }
            + if self.replay {
                n * self.replay_rounds as usize
            } else {
                0
            }
            + if self.tls { self.tls().steps() } else { 0 }
    }

    /// Whether any part over the plain TCP routes runs (all but `tls`).
    fn any_tcp(&self) -> bool {
        self.iperf || self.rtt || self.kafka || self.replay
    }

    /// The TLS part's plan: the rounds, the iperf3 length and the round trips of the TCP parts.
    fn tls(&self) -> TlsPlan {
        TlsPlan {
            rounds: self.rounds,
            secs: self.iperf_secs,
            rtt_blocks: self.rtt_blocks,
            rtt_per_block: self.rtt_per_block,
            rtt_warmup: self.rtt_warmup,
        }
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
        if self.replay {
            parts.push(format!(
                "Fetch replay {} round(s) of {} s per route after {} warm-up responses, {} \
                 requests in flight",
                self.replay_rounds, self.replay_secs, self.replay_warmup, self.replay_inflight
            ));
        }
        if !self.telemetry {
            parts.push("no telemetry-on Sluice (--skip telemetry)".into());
        }
        if self.tls {
            parts.push(format!(
                "TLS termination: {} s download and upload per route and round",
                self.iperf_secs
            ));
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

impl tls_part::Progress for Progress {
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
    tools::workspace_root()
}

/// The Sluice binary under test: `--sluice-bin`, or the workspace's release build.
fn sluice_binary(args: &Args, progress: &mut Progress) -> Result<PathBuf> {
    tools::sluice_binary(args.sluice_bin.as_deref(), |what| progress.step(what))
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

/// Three free loopback ports (the TLS part's haproxy, Sluice and Sluice admin).
fn free_ports3() -> Result<[u16; 3]> {
    let p = proc::free_ports(3)?;
    Ok([p[0], p[1], p[2]])
}

fn addr(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// A workload's address on each route (none for a route not run), the proxy process behind
/// it, and the Sluices' admin listeners.
#[derive(Debug, Clone, Copy)]
struct Workload {
    fronts: [Option<SocketAddr>; N],
    pids: [Option<u32>; N],
    admin: [Option<SocketAddr>; N],
}

impl Workload {
    /// The routes this workload runs on.
    fn routes(&self) -> Vec<Route> {
        ROUTES
            .into_iter()
            .filter(|r| self.fronts[r.index()].is_some())
            .collect()
    }

    /// The address of `route` (one of [`Workload::routes`]).
    fn of(&self, route: Route) -> SocketAddr {
        self.fronts[route.index()].expect("route not set up for this workload")
    }

    /// The proxy process of `route` (none for direct).
    fn pid(&self, route: Route) -> Option<u32> {
        self.pids[route.index()]
    }

    /// Reads the Sluices' admin counters. `received`: Fetch responses the client got through
    /// the tap-on and the telemetry-on Sluice, when known. Sluice hands a connection's events
    /// to its counters in batches (at the latest ~0.45 s after they pass), so the check reads
    /// again until the counts match or a second has passed.
    fn tap_check(&self, workload: &str, received: Option<(u64, u64)>) -> Result<TapCheck> {
        let get = |r: Route| {
            self.admin[r.index()]
                .map(admin::stats)
                .transpose()
                .with_context(|| format!("reading the {} admin stats", r.title()))
        };
        let deadline = Instant::now() + Duration::from_secs(1);
        loop {
            let check = TapCheck {
                workload: workload.into(),
                tap_on: get(Route::Sluice)?,
                tap_off: get(Route::SluiceTapOff)?,
                received: received.map(|r| r.0),
                telemetry: get(Route::SluiceTelemetry)?,
                telemetry_received: received
                    .filter(|_| self.fronts[Route::SluiceTelemetry.index()].is_some())
                    .map(|r| r.1),
            };
            if check.ok() || Instant::now() >= deadline {
                return Ok(check);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// CPU and wall-clock time at the start of a part, for the telemetry check at its end.
struct PartStart {
    at: Instant,
    cpu: [Option<f64>; 3],
}

/// CPU seconds so far of the telemetry-off Sluice, the telemetry-on Sluice and the collector.
fn part_cpu(w: &Workload, collector: Option<&Collector>) -> [Option<f64>; 3] {
    let cpu = |pid: Option<u32>| pid.and_then(|p| cpu_seconds(p).ok());
    [
        cpu(w.pid(Route::Sluice)),
        cpu(w.pid(Route::SluiceTelemetry)),
        cpu(collector.map(Collector::pid)),
    ]
}

impl PartStart {
    fn now(w: &Workload, collector: Option<&Collector>) -> PartStart {
        PartStart {
            at: Instant::now(),
            cpu: part_cpu(w, collector),
        }
    }

    /// What the collector received from `workload`'s telemetry-on Sluice, and the CPU the
    /// Sluices and the collector used since the part started.
    fn check(
        &self,
        w: &Workload,
        collector: &Collector,
        workload: &str,
        title: &str,
    ) -> Result<TelemetryCheck> {
        let end = part_cpu(w, Some(collector));
        let used = |i: usize| Some(end[i]? - self.cpu[i]?);
        Ok(TelemetryCheck {
            workload: title.into(),
            received: collector.counts(workload)?,
            secs: self.at.elapsed().as_secs_f64(),
            cpu_off: used(0),
            cpu_on: used(1),
            cpu_collector: used(2),
        })
    }
}

/// Loopback ports reserved together, handed out one by one.
#[derive(Debug)]
struct Ports(std::vec::IntoIter<u16>);

impl Ports {
    fn take(&mut self) -> Result<u16> {
        self.0.next().context("too few ports reserved")
    }

    /// A workload's haproxy, Sluice, Sluice tap-off and Sluice telemetry-on ports.
    fn four(&mut self) -> Result<(u16, u16, u16, u16)> {
        Ok((self.take()?, self.take()?, self.take()?, self.take()?))
    }
}

/// What every part needs.
struct Ctx<'a> {
    plan: &'a Plan,
    tools: &'a Tools,
    sluice_bin: &'a Path,
    dir: &'a Path,
    recorded: Option<&'a Recorded>,
    /// The collector binary, when the telemetry-on Sluice runs.
    otelcol: Option<&'a Path>,
}

/// The proxies being set up: ports still free, haproxy's routes so far, the Sluices started,
/// and the collector the telemetry-on Sluices export to.
struct Setup {
    ports: Ports,
    routes: Vec<servers::Route>,
    sluices: Vec<Sluice>,
    collector: Option<Collector>,
}

impl Setup {
    /// Starts a workload's Sluices — tap on at `on.0`, tap off at `off.0` and, with a
    /// collector, tap and telemetry on at `telemetry.0`, each forwarding to its upstream — and
    /// adds its haproxy frontend (`haproxy.0` → `haproxy.1`) to the routes. The haproxy pid is
    /// filled in once haproxy runs.
    #[allow(clippy::too_many_arguments)]
    fn workload(
        &mut self,
        ctx: &Ctx<'_>,
        name: &str,
        direct: SocketAddr,
        haproxy: (u16, SocketAddr),
        on: (u16, SocketAddr),
        off: (u16, SocketAddr),
        telemetry: (u16, SocketAddr),
    ) -> Result<Workload> {
        self.routes.push(servers::Route {
            name: name.into(),
            listen: haproxy.0,
            upstream: haproxy.1,
        });
        let otlp = self.collector.as_ref().map(|c| Otlp {
            endpoint: c.endpoint(),
            metrics_interval: ctx.plan.metrics_interval.clone(),
            span_sample_ratio: ctx.plan.span_sample_ratio,
            workload: name.into(),
        });
        let mut start = |suffix: &str,
                         (listen, upstream): (u16, SocketAddr),
                         tap: bool,
                         otlp: Option<&Otlp>| {
            let admin_port = self.ports.take()?;
            let s = start_sluice(
                ctx.sluice_bin,
                &format!("{name}{suffix}"),
                listen,
                upstream,
                admin_port,
                tap,
                otlp,
                ctx.dir,
            )?;
            let ids = (s.pid(), s.admin);
            self.sluices.push(s);
            anyhow::Ok(ids)
        };
        let (on_pid, on_admin) = start("", on, true, None)?;
        let (off_pid, off_admin) = start("-tapoff", off, false, None)?;
        let mut w = Workload {
            fronts: [
                Some(direct),
                Some(addr(haproxy.0)),
                Some(addr(on.0)),
                Some(addr(off.0)),
                None,
            ],
            pids: [None, None, Some(on_pid), Some(off_pid), None],
            admin: [None, None, Some(on_admin), Some(off_admin), None],
        };
        if let Some(otlp) = &otlp {
            let (pid, admin) = start("-telemetry", telemetry, true, Some(otlp))?;
            let i = Route::SluiceTelemetry.index();
            w.fronts[i] = Some(addr(telemetry.0));
            w.pids[i] = Some(pid);
            w.admin[i] = Some(admin);
        }
        Ok(w)
    }
}

/// Runs `f` and returns its result with the CPU seconds `pid` used meanwhile (if any pid).
fn with_cpu<T>(pid: Option<u32>, f: impl FnOnce() -> Result<T>) -> Result<(T, Option<f64>)> {
    let cpu0 = pid.map(cpu_seconds).transpose()?;
    let v = f()?;
    let cpu = match (pid, cpu0) {
        (Some(pid), Some(c0)) => Some(cpu_seconds(pid)? - c0),
        _ => None,
    };
    Ok((v, cpu))
}

fn run(args: &Args) -> Result<bool> {
    proc::install_signal_handler()?;
    let plan = Plan::new(args)?;
    let tools = Tools::load(plan.kafka)?;
    let otelcol = if plan.telemetry {
        Some(tools::otelcol()?)
    } else {
        None
    };
    let building = args.sluice_bin.is_none() && std::env::var_os("CARGO").is_some();
    let mut progress = Progress {
        n: 0,
        total: plan.steps(building),
    };
    let recorded = if plan.replay {
        let prefix = workspace_root().join(REPLAY_FIXTURE);
        Some(Recorded::load(&prefix)?)
    } else {
        None
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
        replay: recorded.as_ref().map_or_else(String::new, |r| {
            format!(
                "the {} B Fetch v{} response of {REPLAY_FIXTURE}.responses.bin and its {} B \
                 request (frames with length)",
                r.response.len(),
                r.api_version,
                r.request.len()
            )
        }),
        telemetry: otelcol.as_ref().map_or_else(String::new, |bin| {
            format!(
                "\"Sluice telemetry on\" exports over OTLP/gRPC to {} (OTLP receiver, file \
                 exporter) with metrics_interval {} and span_sample_ratio {}; the other Sluices \
                 have no OTLP endpoint",
                tools::first_line(bin, &["--version"]),
                plan.metrics_interval,
                plan.span_sample_ratio
            )
        }),
        ..Meta::default()
    };

    let mut work = WorkDir::create()?;
    if args.keep {
        work.keep();
    }
    let dir = work.path().to_owned();
    let mut results = Results::default();
    // Children are declared after `work`, so they are dropped (stopped) before it.
    let outcome = if !plan.any_tcp() {
        // measure_all reads it when the TCP parts run.
        meta.load_start = tools::load_average();
        Ok(())
    } else {
        measure_all(
            &Ctx {
                plan: &plan,
                tools: &tools,
                sluice_bin: &sluice_bin,
                dir: &dir,
                recorded: recorded.as_ref(),
                otelcol: otelcol.as_deref(),
            },
            &mut progress,
            &mut meta,
            &mut results,
        )
    };
    proc::halt_if_interrupted();
    if let Err(e) = outcome {
        eprintln!("e2e: FAILED: {e:#}");
        results.failures.push(format!("{e:#}"));
    }
    let mut tls_report = String::new();
    if plan.tls {
        let tls = free_ports3().and_then(|ports| {
            tls_part::run(
                &tools.haproxy,
                &sluice_bin,
                ports,
                &dir,
                plan.tls(),
                &mut progress,
            )
        });
        proc::halt_if_interrupted();
        match tls {
            Ok(t) => {
                results.failures.extend(t.failures.iter().cloned());
                tls_report = t.markdown();
            }
            Err(e) => {
                eprintln!("e2e: FAILED: TLS part: {e:#}");
                results.failures.push(format!("TLS part: {e:#}"));
            }
        }
    }
    meta.load_end = tools::load_average();

    let report = report::render(&meta, &results) + &tls_report;
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

fn measure_all(
    ctx: &Ctx<'_>,
    progress: &mut Progress,
    meta: &mut Meta,
    results: &mut Results,
) -> Result<()> {
    let plan = ctx.plan;
    progress.step(if ctx.otelcol.is_some() {
        "starting the servers, haproxy, the collector and the Sluices (tap on, tap off, \
         telemetry on)"
    } else {
        "starting the servers, haproxy and the Sluices (tap on and tap off)"
    });
    // All ports at once, so none is handed out twice: 5 iperf3, 4 round trip, 10 Kafka,
    // 4 replay, an admin port per Sluice and the collector's.
    let mut setup = Setup {
        ports: Ports(proc::free_ports(5 + 4 + 10 + 4 + 12 + 1)?.into_iter()),
        routes: Vec::new(),
        sluices: Vec::new(),
        collector: None,
    };
    if let Some(bin) = ctx.otelcol {
        let port = setup.ports.take()?;
        setup.collector = Some(Collector::start(bin, port, ctx.dir)?);
    }

    // The proxies come up first (connections to a missing upstream simply fail), then the
    // servers behind them.
    let mut iperf_server = None;
    let mut iperf = None;
    if plan.iperf {
        let server = addr(setup.ports.take()?);
        iperf_server = Some(server.port());
        let (h, on, off, tel) = setup.ports.four()?;
        iperf = Some(setup.workload(
            ctx,
            "iperf",
            server,
            (h, server),
            (on, server),
            (off, server),
            (tel, server),
        )?);
    }
    let mut rtt = None;
    if plan.rtt {
        let echo = servers::start_echo_server()?;
        let (h, on, off, tel) = setup.ports.four()?;
        rtt = Some(setup.workload(
            ctx,
            "rtt",
            echo,
            (h, echo),
            (on, echo),
            (off, echo),
            (tel, echo),
        )?);
    }
    let mut kafka = None;
    let mut bports = BrokerPorts {
        direct: setup.ports.take()?,
        haproxy_backend: setup.ports.take()?,
        sluice_backend: setup.ports.take()?,
        sluice_off_backend: setup.ports.take()?,
        controller: setup.ports.take()?,
        haproxy_front: setup.ports.take()?,
        sluice_front: setup.ports.take()?,
        sluice_off_front: setup.ports.take()?,
        telemetry: None,
    };
    // The telemetry route's listener on the broker and its Sluice's front (taken even when
    // unused, so the ports handed out after them do not depend on it).
    let tel_ports = (setup.ports.take()?, setup.ports.take()?);
    if setup.collector.is_some() {
        bports.telemetry = Some(tel_ports);
    }
    if plan.kafka {
        let b = &bports;
        kafka = Some(setup.workload(
            ctx,
            "kafka",
            addr(b.direct),
            (b.haproxy_front, addr(b.haproxy_backend)),
            (b.sluice_front, addr(b.sluice_backend)),
            (b.sluice_off_front, addr(b.sluice_off_backend)),
            (tel_ports.1, addr(tel_ports.0)),
        )?);
    }
    let mut replay = None;
    let mut replay_server = None;
    if let Some(rec) = ctx.recorded {
        let server = ReplayServer::start(rec.response.clone())?;
        let a = server.addr();
        replay_server = Some(server);
        let (h, on, off, tel) = setup.ports.four()?;
        replay = Some(setup.workload(ctx, "replay", a, (h, a), (on, a), (off, a), (tel, a))?);
    }
    let haproxy = start_haproxy(&ctx.tools.haproxy, &setup.routes, ctx.dir)?;
    for w in [&mut iperf, &mut rtt, &mut kafka, &mut replay]
        .into_iter()
        .flatten()
    {
        w.pids[Route::Haproxy.index()] = Some(haproxy.pid());
    }
    let _iperf_server = iperf_server
        .map(|p| servers::start_iperf3_server(&ctx.tools.iperf3, p, ctx.dir))
        .transpose()?;
    meta.load_start = tools::load_average();
    if meta.load_start > 0.5 {
        eprintln!(
            "e2e: note: load average is {:.2} before measuring; other work on this machine \
             will make the figures noisy",
            meta.load_start
        );
    }

    if let Some(w) = &iperf {
        iperf_part(ctx, w, progress, results);
    }
    if let Some(w) = &rtt {
        rtt_part(plan, w, progress, results);
    }
    results.telemetry_route = setup.collector.is_some();
    let collector = setup.collector.as_ref();
    if let Some(w) = &kafka {
        kafka_part(ctx, &bports, w, collector, progress, results);
    }
    if let (Some(w), Some(rec)) = (&replay, ctx.recorded) {
        replay_part(plan, rec, w, collector, progress, results);
    }
    drop(setup);
    drop(haproxy);
    drop(replay_server);
    Ok(())
}

fn iperf_part(ctx: &Ctx<'_>, w: &Workload, progress: &mut Progress, results: &mut Results) {
    let plan = ctx.plan;
    for round in 1..=plan.rounds {
        for route in round_order(round, &w.routes()) {
            progress.step(&format!(
                "iperf3 via {} (round {round}/{}, {} s)",
                route.name(),
                plan.rounds,
                plan.iperf_secs
            ));
            let name = format!("iperf3-{}-{round}", route.name());
            let what = format!("iperf3 via {} round {round}", route.name());
            let run = attempt(results, &what, || {
                with_cpu(w.pid(route), || {
                    iperf3_client(
                        &ctx.tools.iperf3,
                        w.of(route).port(),
                        plan.iperf_secs,
                        ctx.dir,
                        &name,
                    )
                })
            });
            if let Some((r, cpu)) = run {
                let i = route.index();
                results.iperf[i].push(r);
                let mut msg = format!("{:.2} Gbit/s", r.bits_per_second / 1e9);
                if let Some(c) = cpu {
                    let c = c / (r.bytes / 1e9);
                    results.cpu_per_gb[i].push(c);
                    msg.push_str(&format!(", proxy CPU {c:.3} s/GB"));
                }
                progress.note(&msg);
            }
        }
    }
}

fn rtt_part(plan: &Plan, w: &Workload, progress: &mut Progress, results: &mut Results) {
    for block in 1..=plan.rtt_blocks {
        for route in round_order(block as u32, &w.routes()) {
            progress.step(&format!(
                "round trips via {} (block {block}/{}, {} × 64 B)",
                route.name(),
                plan.rtt_blocks,
                plan.rtt_per_block
            ));
            let what = format!("round trips via {} block {block}", route.name());
            if let Some(mut s) = attempt(results, &what, || {
                round_trips(w.of(route), plan.rtt_warmup, plan.rtt_per_block, 64)
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

fn kafka_part(
    ctx: &Ctx<'_>,
    bports: &BrokerPorts,
    w: &Workload,
    collector: Option<&Collector>,
    progress: &mut Progress,
    results: &mut Results,
) {
    let plan = ctx.plan;
    let routes = w.routes();
    let start = PartStart::now(w, collector);
    progress.step("starting Kafka broker (one listener per route)");
    let Some(_broker) = attempt(results, "starting the Kafka broker", || {
        kafka::start_broker(ctx.tools, bports, &plan.broker_config, ctx.dir)
    }) else {
        return;
    };
    let Some(perf) = attempt(results, "preparing Kafka perf tools", || {
        PerfTools::new(ctx.tools, ctx.dir)
    }) else {
        return;
    };
    let topic = |route: Route| format!("e2e-{}", route.name());
    let bootstrap = |route: Route| w.of(route).to_string();

    // Warm-up: creates each route's topic (auto-create) and warms the broker's JIT, so the
    // first measured route is not penalised.
    for &route in &routes {
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
        for route in round_order(round, &routes) {
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
        for route in round_order(round, &routes) {
            progress.step(&format!(
                "Kafka consume via {} (round {round}/{}, {} messages)",
                route.name(),
                plan.rounds,
                plan.kafka_records
            ));
            let what = format!("Kafka consume via {} round {round}", route.name());
            let name = format!("consume-{}-{round}", route.name());
            let counter = w.pid(route).map(|p| Counter::start(p, ctx.dir, &name));
            if let Some((r, cpu)) = attempt(results, &what, || {
                with_cpu(w.pid(route), || {
                    perf.consume(
                        &name,
                        &bootstrap(route),
                        &topic(route),
                        plan.kafka_records,
                        &format!("e2e-{}-{round}", route.name()),
                    )
                })
            }) {
                let counts = counter.map(Counter::stop).unwrap_or_default();
                let mut msg = format!(
                    "fetch {:.1} MB/s ({:.1} MB/s with group join)",
                    r.fetch_mb_per_sec, r.mb_per_sec
                );
                if let Some(c) = cpu.filter(|_| r.data_mb > 0.0) {
                    let c = c / (r.data_mb * 1_048_576.0 / 1e9);
                    results.consumer_cpu_per_gb[route.index()].push(c);
                    msg.push_str(&format!(", proxy CPU {c:.3} s/GB"));
                }
                let gb = r.data_mb * 1_048_576.0 / 1e9;
                for (count, into, what) in [
                    (
                        counts.syscalls,
                        &mut results.consumer_syscalls_per_gb,
                        "syscalls",
                    ),
                    (
                        counts.switches,
                        &mut results.consumer_switches_per_gb,
                        "switches",
                    ),
                ] {
                    if let Some(n) = count.filter(|_| gb > 0.0) {
                        into[route.index()].push(n as f64 / gb);
                        msg.push_str(&format!(", {:.0} {what}/GB", n as f64 / gb));
                    }
                }
                progress.note(&msg);
                results.consumer[route.index()].push(r);
            }
        }
    }
    let med = |r: Route| {
        median(
            &results.consumer[r.index()]
                .iter()
                .map(|c| c.fetch_mb_per_sec)
                .collect::<Vec<_>>(),
        )
    };
    if let (Some(d), Some(s), Some(off)) = (
        med(Route::Direct),
        med(Route::Sluice),
        med(Route::SluiceTapOff),
    ) {
        progress.note(&format!(
            "consumer median: Sluice {:.2}× direct, tap on {:.3}× tap off",
            s / d,
            s / off
        ));
        if let Some(t) = med(Route::SluiceTelemetry) {
            progress.note(&format!(
                "consumer median: telemetry on {:.3}× telemetry off",
                t / s
            ));
        }
    }
    if let Some(c) = attempt(results, "Kafka tap check", || {
        w.tap_check("Kafka (producers and consumers)", None)
    }) {
        results.tap_checks.push(c);
    }
    if let Some(col) = collector {
        telemetry_check(&start, w, col, "kafka", "Kafka", progress, results);
    }
}

/// Records (and prints) what the collector received from a workload's telemetry-on Sluice.
fn telemetry_check(
    start: &PartStart,
    w: &Workload,
    collector: &Collector,
    workload: &str,
    title: &str,
    progress: &mut Progress,
    results: &mut Results,
) {
    let what = format!("{title} telemetry check");
    if let Some(c) = attempt(results, &what, || {
        start.check(w, collector, workload, title)
    }) {
        progress.note(&format!(
            "collector: {} metric exports, {} spans from the telemetry-on Sluice; CPU over \
             the part: telemetry off {:.1} s, on {:.1} s, collector {:.1} s",
            c.received.metric_exports,
            c.received.span_total(),
            c.cpu_off.unwrap_or(f64::NAN),
            c.cpu_on.unwrap_or(f64::NAN),
            c.cpu_collector.unwrap_or(f64::NAN)
        ));
        results.telemetry_checks.push(c);
    }
}

fn replay_part(
    plan: &Plan,
    rec: &Recorded,
    w: &Workload,
    collector: Option<&Collector>,
    progress: &mut Progress,
    results: &mut Results,
) {
    let start = PartStart::now(w, collector);
    for round in 1..=plan.replay_rounds {
        for route in round_order(round, &w.routes()) {
            progress.step(&format!(
                "Fetch replay via {} (round {round}/{}, {} s, {} in flight)",
                route.name(),
                plan.replay_rounds,
                plan.replay_secs,
                plan.replay_inflight
            ));
            let what = format!("Fetch replay via {} round {round}", route.name());
            if let Some((r, cpu)) = attempt(results, &what, || {
                with_cpu(w.pid(route), || {
                    replay::run_client(
                        w.of(route),
                        rec,
                        plan.replay_inflight,
                        plan.replay_warmup,
                        Duration::from_secs(u64::from(plan.replay_secs)),
                    )
                })
            }) {
                let mut msg = format!("{:.2} GB/s, {} responses", r.gb_per_sec(), r.responses);
                if let Some(c) = cpu {
                    let c = c / (r.total_bytes as f64 / 1e9);
                    results.replay_cpu_per_gb[route.index()].push(c);
                    msg.push_str(&format!(", proxy CPU {c:.3} s/GB"));
                }
                progress.note(&msg);
                results.replay[route.index()].push(r);
            }
        }
    }
    let received = |r: Route| results.replay[r.index()].iter().map(|r| r.responses).sum();
    let (received, received_tel) = (received(Route::Sluice), received(Route::SluiceTelemetry));
    if let Some(c) = attempt(results, "Fetch replay tap check", || {
        w.tap_check("Fetch replay", Some((received, received_tel)))
    }) {
        progress.note(&format!(
            "tap on: {} of {received} Fetch responses followed, {} parse errors, {} opaque \
             connections",
            c.tap_on.map_or(0, |t| t.fetch_responses),
            c.tap_on.map_or(0, |t| t.tap_parse_errors),
            c.tap_on.map_or(0, |t| t.opaque_connections)
        ));
        results.tap_checks.push(c);
    }
    if let Some(col) = collector {
        telemetry_check(&start, w, col, "replay", "Fetch replay", progress, results);
    }
}

/// Every round writes `records` more to each route's topic: keep one and a half rounds' worth per
/// topic (the consumer reads `records` from the earliest offset), so a long run does not fill
/// the disk (3 million records × 5 routes × 5 rounds would be 75 GB). `--broker-config` wins.
fn retention(records: u64) -> Vec<String> {
    let bytes = (records * 1100 * 3 / 2).max(256 << 20);
    vec![
        format!("log.retention.bytes={bytes}"),
        "log.retention.check.interval.ms=5000".to_owned(),
    ]
}
