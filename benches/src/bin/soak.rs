//! Soak: a real Kafka broker with Sluice in front of it, the incident (a consumer fetching the
//! same records over and over without committing them) plus healthy traffic (a producer, a
//! committing consumer group) plus connection churn (a producer per record, closed), for
//! `--duration`; Sluice's RSS, CPU and open descriptors sampled from `/proc` throughout and
//! judged flat (or not) after warm-up, and the detectors' findings checked at the end: the
//! looping group and the churning client named, nothing healthy named. Exits 1 if not flat or
//! the findings are wrong. See `benches/README.md` ("Soak").
//!
//! `cargo run -p sluice-benches --bin soak -- --duration 5m`

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::thread::sleep;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Parser;
use serde_json::Value;

use sluice_benches::proc::{self, free_ports, machine_busy_seconds, ChildGuard, WorkDir};
use sluice_benches::soak::{self, Expect, Limits, Sample, Sampler};
use sluice_benches::{admin, kafka, servers, tools};

/// Sluice under the incident plus healthy traffic for a long while; RSS, CPU and descriptors
/// must stay flat after warm-up, and the findings must name the incident and nothing healthy.
/// Progress goes to stderr, the summary (Markdown) to stdout, the samples to `--csv`.
#[derive(Debug, Parser)]
#[command(name = "soak")]
struct Args {
    /// How long the traffic runs (e.g. `1h`, `5m`, `300s`).
    #[arg(long, default_value = "1h", value_parser = humantime::parse_duration)]
    duration: Duration,
    /// Samples before this are warm-up and not judged [default: a fifth of the duration,
    /// at most 5m].
    #[arg(long, value_parser = humantime::parse_duration)]
    warmup: Option<Duration>,
    /// Time between samples.
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
    interval: Duration,
    /// The looping consumer's pause after each failed record, ms (bounds the incident's
    /// fetch rate; 0 is the incident at full speed).
    #[arg(long, default_value_t = 20)]
    loop_backoff_ms: u64,
    /// Healthy producer rate, records of 1 KB per second.
    #[arg(long, default_value_t = 50)]
    rate: u32,
    /// New producers (connections) per second of the churning client.
    #[arg(long, default_value_t = 2)]
    churn_rate: u32,
    /// RSS growth after warm-up that fails the run, MiB.
    #[arg(long, default_value_t = 4.0)]
    max_rss_growth_mib: f64,
    /// Open-descriptor growth after warm-up that fails the run.
    #[arg(long, default_value_t = 10.0)]
    max_fd_growth: f64,
    /// Write the samples here [default: $TMPDIR/sluice-soak.csv].
    #[arg(long, value_name = "FILE")]
    csv: Option<PathBuf>,
    /// Sluice binary [default: `sluice` beside this binary, i.e. the same profile's build].
    #[arg(long, value_name = "PATH")]
    sluice_bin: Option<PathBuf>,
    /// Keep the work directory (logs of the broker, Sluice and every client).
    #[arg(long)]
    keep: bool,
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            proc::halt_if_interrupted();
            eprintln!("soak: {e:#}");
            ExitCode::from(2)
        }
    }
}

/// Names unique to this run (topics, groups, client ids).
struct Names {
    loop_topic: String,
    healthy_topic: String,
    churn_topic: String,
    loop_group: String,
    loop_client: String,
    healthy_group: String,
    producer: String,
    consumers: [String; 2],
    churner: String,
}

impl Names {
    fn new() -> Names {
        let n = |s: &str| format!("soak-{s}-{}", std::process::id());
        Names {
            loop_topic: n("orders"),
            healthy_topic: n("payments"),
            churn_topic: n("notifications"),
            loop_group: n("billing"),
            loop_client: n("billing-service"),
            healthy_group: n("analytics"),
            producer: n("payments-api"),
            consumers: [n("analytics-1"), n("analytics-2")],
            churner: n("notifier"),
        }
    }
}

/// Where the clients are and how to start one.
struct Clients {
    java: PathBuf,
    go: PathBuf,
    bootstrap: String,
    dir: PathBuf,
}

impl Clients {
    fn spawn(&self, name: &str, bin: &Path, args: &[String]) -> Result<ChildGuard> {
        let mut cmd = Command::new(bin);
        cmd.args(args).args(["--bootstrap", &self.bootstrap]);
        ChildGuard::spawn(
            name,
            &mut cmd,
            &self.dir.join(format!("{name}.log")),
            Duration::from_secs(5),
        )
    }

    fn run(&self, name: &str, bin: &Path, args: &[String]) -> Result<()> {
        let status = self
            .spawn(name, bin, args)?
            .wait_timeout(Duration::from_secs(180))?;
        if !status.success() {
            bail!(
                "{name} failed ({status}):\n{}",
                proc::tail(&self.dir.join(format!("{name}.log")), 2000)
            );
        }
        Ok(())
    }
}

fn strings(a: &[&str]) -> Vec<String> {
    a.iter().map(|s| (*s).to_owned()).collect()
}

fn run(args: &Args) -> Result<bool> {
    proc::install_signal_handler()?;
    let mut work = WorkDir::create()?;
    if args.keep {
        work.keep();
    }
    let dir = work.path().to_owned();
    let tools = tools::Tools::load(true)?;
    let env = tools::sluice_env();
    let client = |k: &str| -> Result<PathBuf> {
        env.get(k)
            .map(PathBuf::from)
            .with_context(|| format!("{k} is not set — run scripts/setup.sh"))
    };
    let sluice_bin = match &args.sluice_bin {
        Some(p) => p.clone(),
        None => std::env::current_exe()?.with_file_name("sluice"),
    };
    if !sluice_bin.is_file() {
        bail!(
            "no Sluice at {}: build it in the same profile (cargo build [--release] -p sluice) \
             or pass --sluice-bin",
            sluice_bin.display()
        );
    }
    let warmup = args
        .warmup
        .unwrap_or((args.duration / 5).min(Duration::from_secs(300)));
    let p = free_ports(4)?;
    let (broker_port, controller, listen, admin_port) = (p[0], p[1], p[2], p[3]);
    eprintln!(
        "soak: {} for {:?} (warm-up {:?}, a sample every {:?}); work dir {}",
        sluice_bin.display(),
        args.duration,
        warmup,
        args.interval,
        dir.display()
    );

    // One listener, advertising Sluice's address, so every client comes back through it.
    let advertised = ["--advertised".to_owned(), format!("127.0.0.1:{listen}")];
    let heap = "-Xmx512m -Xms512m";
    let mut broker = kafka::start_node(&tools, broker_port, controller, &advertised, heap, &dir)?;
    let upstream = format!("127.0.0.1:{broker_port}").parse()?;
    let cmd = &mut servers::sluice_command(&sluice_bin, listen, upstream, admin_port, true, None);
    let mut sluice = servers::spawn_sluice(
        cmd,
        "soak",
        listen,
        admin_port,
        Duration::from_secs(5),
        &dir,
    )?;
    let clients = Clients {
        java: client("SLUICE_JAVA_CLIENT")?,
        go: client("SLUICE_GO_CLIENT")?,
        bootstrap: format!("127.0.0.1:{listen}"),
        dir: dir.clone(),
    };
    let n = Names::new();
    let mut traffic = start_traffic(args, &clients, &n)?;

    let busy0 = machine_busy_seconds()?;
    let mut sampler = Sampler::new(sluice.pid());
    let mut samples: Vec<Sample> = Vec::new();
    let started = Instant::now();
    loop {
        let findings = admin::http_get(sluice.admin, "/api/v1/findings")?;
        let kinds = soak::active_kinds(&serde_json::from_str(&findings)?);
        let s = sampler.sample(kinds)?;
        eprintln!(
            "soak: {:>6.0}s{} rss {:>7.2} MiB  cpu {:>5.1}%  fds {:>4}  findings {}",
            s.elapsed_s,
            if s.elapsed_s < warmup.as_secs_f64() {
                " (warm-up)"
            } else {
                ""
            },
            s.rss_kib as f64 / 1024.0,
            s.cpu_pct,
            s.fds,
            if s.findings.is_empty() {
                "-"
            } else {
                &s.findings
            }
        );
        samples.push(s);
        if started.elapsed() >= args.duration {
            break;
        }
        sleep(
            args.interval
                .min(args.duration.saturating_sub(started.elapsed())),
        );
        broker.check_running()?;
        sluice.guard.check_running()?;
        for t in &mut traffic {
            t.check_running()?;
        }
    }
    let machine_busy = (machine_busy_seconds()? - busy0) / started.elapsed().as_secs_f64();

    let findings: Value =
        serde_json::from_str(&admin::http_get(sluice.admin, "/api/v1/findings")?)?;
    let expect = [
        ("fetch_loop", "group", &n.loop_group),
        ("fetch_without_commit", "group", &n.loop_group),
        ("connection_churn", "client_id", &n.churner),
    ]
    .map(|(kind, field, value)| Expect {
        kind,
        field,
        value: value.clone(),
    });
    let healthy = [
        &n.healthy_group,
        &n.healthy_topic,
        &n.producer,
        &n.consumers[0],
        &n.consumers[1],
    ]
    .map(|s| s.clone());
    let problems = soak::check_findings(&findings, &expect, &healthy);
    drop(traffic);

    let limits = Limits {
        rss_kib: args.max_rss_growth_mib * 1024.0,
        fds: args.max_fd_growth,
        cpu_factor: 1.5,
        cpu_points: 5.0,
    };
    let trends = soak::judge(&samples, warmup.as_secs_f64(), &limits);
    let csv = args
        .csv
        .clone()
        .unwrap_or_else(|| std::env::temp_dir().join("sluice-soak.csv"));
    std::fs::write(&csv, soak::csv(&samples))
        .with_context(|| format!("writing {}", csv.display()))?;
    let flat = trends.iter().all(|t| t.flat);
    println!(
        "## Soak: {:?} ({:?} warm-up), {} samples\n",
        args.duration,
        warmup,
        samples.len()
    );
    println!(
        "Sluice {}; incident loop back-off {} ms, healthy producer {}/s, churn {}/s; \
         machine busy {:.0}% of one core on average over the run (all processes).\n",
        sluice_bin.display(),
        args.loop_backoff_ms,
        args.rate,
        args.churn_rate,
        100.0 * machine_busy
    );
    print!("{}", soak::table(&trends));
    println!("\nSamples: {}", csv.display());
    println!(
        "Findings at the end: {}",
        soak::active_kinds(&findings).replace(';', ", ")
    );
    for p in &problems {
        println!("FINDINGS WRONG: {p}");
    }
    let ok = flat && problems.is_empty();
    println!(
        "\n{}",
        if ok {
            "PASS: flat after warm-up; the incident named, nothing healthy named"
        } else {
            "FAIL"
        }
    );
    if !ok {
        work.keep();
        eprintln!("soak: logs kept in {}", dir.display());
    }
    Ok(ok)
}

/// Topics, the poisoned backlog, then the long-running clients: the looping consumer, the
/// healthy producer, two committing consumers and the churning client.
fn start_traffic(args: &Args, c: &Clients, n: &Names) -> Result<Vec<ChildGuard>> {
    let secs = args.duration.as_secs() + 120;
    c.run(
        "wait-ready",
        &c.java,
        &strings(&["wait-ready", "--timeout-s", "120"]),
    )?;
    let topics = format!("{},{},{}", n.loop_topic, n.healthy_topic, n.churn_topic);
    c.run(
        "create-topics",
        &c.java,
        &strings(&["create-topic", "--topic", &topics, "--partitions", "3"]),
    )?;
    let backfill = format!("{}-backfill", n.loop_topic);
    c.run(
        "backfill",
        &c.go,
        &strings(&[
            "produce-json",
            "--topic",
            &n.loop_topic,
            "--partition",
            "0",
            "--count",
            "3000",
            "--poison-at",
            "100",
            "--client-id",
            &backfill,
        ]),
    )?;
    eprintln!(
        "soak: broker ready through Sluice; 3,000 records on {}-0, offset 100 malformed",
        n.loop_topic
    );
    let d = secs.to_string();
    let mut out = vec![c.spawn(
        "loop",
        &c.java,
        &strings(&[
            "consume-loop",
            "--topic",
            &n.loop_topic,
            "--group",
            &n.loop_group,
            "--duration-s",
            &d,
            "--backoff-ms",
            &args.loop_backoff_ms.to_string(),
            "--client-id",
            &n.loop_client,
        ]),
    )?];
    let records = (u64::from(args.rate) * secs).to_string();
    out.push(c.spawn(
        "producer",
        &c.go,
        &strings(&[
            "produce-json",
            "--topic",
            &n.healthy_topic,
            "--count",
            &records,
            "--rate",
            &args.rate.to_string(),
            "--client-id",
            &n.producer,
        ]),
    )?);
    for id in &n.consumers {
        out.push(c.spawn(
            id,
            &c.go,
            &strings(&[
                "consume",
                "--topic",
                &n.healthy_topic,
                "--group",
                &n.healthy_group,
                "--duration-s",
                &d,
                "--commit",
                "sync",
                "--client-id",
                id,
            ]),
        )?);
    }
    let churns = (u64::from(args.churn_rate) * secs).to_string();
    out.push(c.spawn(
        "churn",
        &c.go,
        &strings(&[
            "churn",
            "--topic",
            &n.churn_topic,
            "--count",
            &churns,
            "--rate",
            &args.churn_rate.to_string(),
            "--client-id",
            &n.churner,
        ]),
    )?);
    eprintln!(
        "soak: running: loop {} (group {}), producer {} {}/s, group {} x2 committing, churn {} {}/s",
        n.loop_client, n.loop_group, n.producer, args.rate, n.healthy_group, n.churner, args.churn_rate
    );
    Ok(out)
}
