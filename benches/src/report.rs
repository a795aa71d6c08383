//! The Markdown report.
//!
//! Over 600 lines on purpose: one table of every measured row with its target and verdict,
//! and the sections under it, read best top to bottom in one place; its tests are half of it.

use std::fmt::Write as _;

use crate::replay::ReplayRun;
use crate::results::{Results, Route, TapCheck, TelemetryCheck, N, ROUTES};
use crate::stats::{median, percentile};

/// The context printed above the table.
#[derive(Debug, Default, Clone)]
pub struct Meta {
    /// When the run started.
    pub date: String,
    /// CPUs, model, memory, kernel.
    pub machine: String,
    /// 1-minute load average before the first measurement.
    pub load_start: f64,
    /// 1-minute load average after the last one.
    pub load_end: f64,
    /// Sluice version and commit.
    pub sluice: String,
    /// `haproxy -v`.
    pub haproxy: String,
    /// `iperf3 --version`.
    pub iperf3: String,
    /// Kafka version.
    pub kafka: String,
    /// `java -version`.
    pub java: String,
    /// What was run (rounds, durations, counts).
    pub plan: String,
    /// The recorded Fetch exchange replayed (empty when not run).
    pub replay: String,
    /// How the telemetry-on Sluice exports, and to which collector (empty when not run).
    pub telemetry: String,
}

/// Percentile `p` of one block of round-trip samples, in µs.
fn block_us(block: &[u64], p: f64) -> Option<f64> {
    let mut sorted = block.to_vec();
    sorted.sort_unstable();
    percentile(&sorted, p).map(|ns| ns as f64 / 1000.0)
}

/// Median over blocks of each block's percentile `p`, in µs: one block disturbed by other work
/// on the machine does not decide the figure (as with the median over throughput rounds).
fn rtt_us(blocks: &[Vec<u64>], p: f64) -> Option<f64> {
    median(
        &blocks
            .iter()
            .filter_map(|b| block_us(b, p))
            .collect::<Vec<_>>(),
    )
}

/// One line of the tap check list.
fn tap_check_line(c: &TapCheck) -> String {
    let on = match c.tap_on {
        Some(t) => format!(
            "tap on: {} Fetch responses followed{} (requests {}), tap_parse_errors {}, \
             opaque_connections {}, {} connections",
            t.fetch_responses,
            c.received
                .map_or_else(String::new, |r| format!(" of {r} received by the client")),
            t.fetch_requests,
            t.tap_parse_errors,
            t.opaque_connections,
            t.connections_accepted
        ),
        None => "tap on: no stats".into(),
    };
    let off = match c.tap_off {
        Some(t) => format!("tap off: {} API rows", t.api_rows),
        None => "tap off: no stats".into(),
    };
    let telemetry = c.telemetry.map_or_else(String::new, |t| {
        format!(
            "; telemetry on: {} Fetch responses followed{}, tap_parse_errors {}, \
             opaque_connections {}",
            t.fetch_responses,
            c.telemetry_received
                .map_or_else(String::new, |r| format!(" of {r} received")),
            t.tap_parse_errors,
            t.opaque_connections
        )
    });
    format!(
        "- {}: {on}; {off}{telemetry} — **{}**",
        c.workload,
        if c.ok() { "OK" } else { "CHECK" }
    )
}

/// One line of the telemetry check list: what the collector received, and the CPU of the
/// whole part.
fn telemetry_check_line(c: &TelemetryCheck) -> String {
    let r = &c.received;
    let spans = if r.spans.is_empty() {
        "0 spans".to_owned()
    } else {
        let by: Vec<String> = r.spans.iter().map(|(k, n)| format!("{k} {n}")).collect();
        format!("{} spans ({})", r.span_total(), by.join(", "))
    };
    let cpu = |v: Option<f64>| v.map_or_else(|| "n/a".into(), |v| format!("{v:.1} s"));
    format!(
        "- {}: the collector received {} metric exports ({} data points) and {spans}; \
         spans dropped {}. CPU over the whole part ({:.0} s, measured runs and the time \
         between them): Sluice telemetry off {}, telemetry on {}, collector {} — **{}**",
        c.workload,
        r.metric_exports,
        r.metric_points,
        r.spans_dropped
            .map_or_else(|| "n/a".into(), |d| format!("{d:.0}")),
        c.secs,
        cpu(c.cpu_off),
        cpu(c.cpu_on),
        cpu(c.cpu_collector),
        if c.ok() { "OK" } else { "CHECK" }
    )
}

/// How a row compares the proxies with direct.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Compare {
    /// `value (0.80×)`.
    Ratio,
    /// `value (1.70×, +12.3)`: for latencies.
    RatioAndDelta,
    /// Direct has no value (proxy CPU): proxies show the bare value.
    None,
}

/// A target: text, and the check given (reference, value) — reference is direct in the main
/// table and Sluice tap off in the tap table; value is Sluice (tap on).
struct Target {
    text: &'static str,
    check: fn(Option<f64>, f64) -> Option<bool>,
}

/// Whether a row appears in a comparison table (tap on / off, telemetry on / off), and with
/// which target.
enum TapRow {
    Hide,
    Show,
    Target(Target),
}

struct Row {
    metric: &'static str,
    values: [Option<f64>; N],
    decimals: usize,
    compare: Compare,
    target: Option<Target>,
    tap: TapRow,
    telemetry: TapRow,
}

fn fmt_num(v: f64, decimals: usize) -> String {
    if decimals == 0 {
        // Thousands separators for big counts (records/s).
        let s = format!("{:.0}", v);
        let (sign, digits) = s.strip_prefix('-').map_or(("", s.as_str()), |d| ("-", d));
        let mut out = String::new();
        for (i, c) in digits.chars().enumerate() {
            if i > 0 && (digits.len() - i) % 3 == 0 {
                out.push(',');
            }
            out.push(c);
        }
        format!("{sign}{out}")
    } else {
        format!("{v:.decimals$}")
    }
}

fn verdict(target: &Target, reference: Option<f64>, value: Option<f64>) -> String {
    match value.and_then(|v| (target.check)(reference, v)) {
        Some(true) => "**PASS**".into(),
        Some(false) => "**MISS**".into(),
        None => "n/a".into(),
    }
}

impl Row {
    fn value(&self, route: Route) -> Option<f64> {
        self.values[route.index()]
    }

    fn cell(&self, route: Route) -> String {
        let Some(v) = self.value(route) else {
            return if self.compare == Compare::None && route == Route::Direct {
                "—".into()
            } else {
                "n/a".into()
            };
        };
        let value = fmt_num(v, self.decimals);
        let direct = self.values[0].filter(|d| *d != 0.0);
        match (route, self.compare, direct) {
            (Route::Direct, _, _) | (_, Compare::None, _) | (_, _, None) => value,
            (_, Compare::Ratio, Some(d)) => format!("{value} ({:.2}×)", v / d),
            (_, Compare::RatioAndDelta, Some(d)) => {
                format!("{value} ({:.2}×, {:+.1})", v / d, v - d)
            }
        }
    }

    fn verdict(&self) -> String {
        self.target.as_ref().map_or_else(String::new, |t| {
            verdict(t, self.values[0], self.value(Route::Sluice))
        })
    }

    /// The row of the tap on / tap off table, if it has one.
    fn tap_line(&self) -> Option<String> {
        self.compare_line(&self.tap, Route::Sluice, Route::SluiceTapOff)
    }

    /// The row of the telemetry on / off table, if it has one.
    fn telemetry_line(&self) -> Option<String> {
        self.compare_line(&self.telemetry, Route::SluiceTelemetry, Route::Sluice)
    }

    /// `| metric | on | off | on / off | target | verdict |`.
    fn compare_line(&self, show: &TapRow, on: Route, off: Route) -> Option<String> {
        let target = match show {
            TapRow::Hide => return None,
            TapRow::Show => None,
            TapRow::Target(t) => Some(t),
        };
        let (on, off) = (self.value(on), self.value(off));
        let fmt = |v: Option<f64>| v.map_or_else(|| "n/a".into(), |v| fmt_num(v, self.decimals));
        let ratio = match (on, off) {
            (Some(a), Some(b)) if b != 0.0 => format!("{:.3}", a / b),
            _ => "n/a".into(),
        };
        Some(format!(
            "| {} | {} | {} | {ratio} | {} | {} |",
            self.metric,
            fmt(on),
            fmt(off),
            target.map_or("", |t| t.text),
            target.map_or_else(String::new, |t| verdict(t, off, on))
        ))
    }
}

/// Median over runs of `f` of each run, per route.
fn med<T>(runs: &[Vec<T>; N], f: impl Fn(&T) -> f64) -> [Option<f64>; N] {
    std::array::from_fn(|i| median(&runs[i].iter().map(&f).collect::<Vec<_>>()))
}

fn row(metric: &'static str, values: [Option<f64>; N], decimals: usize, compare: Compare) -> Row {
    Row {
        metric,
        values,
        decimals,
        compare,
        target: None,
        tap: TapRow::Hide,
        telemetry: TapRow::Hide,
    }
}

/// Tap on within 3% of tap off, for a throughput.
const TAP_THROUGHPUT: Target = Target {
    text: "tap on ≥ 0.97× tap off",
    check: |off, on| off.map(|off| on >= 0.97 * off),
};

/// Tap on within 3% of tap off, for CPU per GB.
const TAP_CPU: Target = Target {
    text: "tap on ≤ 1.03× tap off",
    check: |off, on| off.map(|off| on <= 1.03 * off),
};

/// Telemetry on within 5% of telemetry off, for a throughput.
const TELEMETRY_THROUGHPUT: Target = Target {
    text: "telemetry on ≥ 0.95× off",
    check: |off, on| off.map(|off| on >= 0.95 * off),
};

/// Builds the table rows from the results.
fn rows(r: &Results) -> Vec<Row> {
    let cpu_med = |runs: &[Vec<f64>; N]| med(runs, |x| *x);
    vec![
        Row {
            target: Some(Target {
                text: "≥ 0.75× direct",
                check: |d, s| d.map(|d| s >= 0.75 * d),
            }),
            tap: TapRow::Show,
            telemetry: TapRow::Show,
            ..row(
                "Raw TCP, 1 stream (Gbit/s)",
                med(&r.iperf, |x| x.bits_per_second / 1e9),
                2,
                Compare::Ratio,
            )
        },
        Row {
            target: Some(Target {
                text: "≤ 0.4 s/GB",
                check: |_, s| Some(s <= 0.4),
            }),
            tap: TapRow::Show,
            ..row(
                "Proxy CPU per GB moved, iperf3 (s/GB)",
                cpu_med(&r.cpu_per_gb),
                3,
                Compare::None,
            )
        },
        row(
            "Round trip 64 B, p50 (µs)",
            std::array::from_fn(|i| rtt_us(&r.rtt[i], 50.0)),
            1,
            Compare::RatioAndDelta,
        ),
        Row {
            target: Some(Target {
                text: "added p99 ≤ 40 µs",
                check: |d, s| d.map(|d| s - d <= 40.0),
            }),
            tap: TapRow::Show,
            telemetry: TapRow::Show,
            ..row(
                "Round trip 64 B, p99 (µs)",
                std::array::from_fn(|i| rtt_us(&r.rtt[i], 99.0)),
                1,
                Compare::RatioAndDelta,
            )
        },
        Row {
            telemetry: TapRow::Show,
            ..row(
                "Kafka produce (MB/s)",
                med(&r.producer, |x| x.mb_per_sec),
                1,
                Compare::Ratio,
            )
        },
        row(
            "Kafka produce (records/s)",
            med(&r.producer, |x| x.records_per_sec),
            0,
            Compare::Ratio,
        ),
        row(
            "Kafka produce latency, avg (ms)",
            med(&r.producer, |x| x.avg_latency_ms),
            1,
            Compare::RatioAndDelta,
        ),
        Row {
            telemetry: TapRow::Show,
            ..row(
                "Kafka produce latency, p99 (ms)",
                med(&r.producer, |x| x.p99_latency_ms),
                1,
                Compare::RatioAndDelta,
            )
        },
        Row {
            target: Some(Target {
                text: "≥ 0.95× direct",
                check: |d, s| d.map(|d| s >= 0.95 * d),
            }),
            tap: TapRow::Target(TAP_THROUGHPUT),
            telemetry: TapRow::Target(TELEMETRY_THROUGHPUT),
            ..row(
                "Kafka consume, fetch (MB/s)",
                med(&r.consumer, |x| x.fetch_mb_per_sec),
                1,
                Compare::Ratio,
            )
        },
        Row {
            tap: TapRow::Target(TAP_CPU),
            telemetry: TapRow::Show,
            ..row(
                "Kafka consume, proxy CPU per GB consumed (s/GB)",
                cpu_med(&r.consumer_cpu_per_gb),
                3,
                Compare::None,
            )
        },
        Row {
            tap: TapRow::Show,
            ..row(
                "Kafka consume, proxy syscalls per GB consumed",
                cpu_med(&r.consumer_syscalls_per_gb),
                0,
                Compare::None,
            )
        },
        Row {
            tap: TapRow::Show,
            ..row(
                "Kafka consume, proxy context switches per GB consumed",
                cpu_med(&r.consumer_switches_per_gb),
                0,
                Compare::None,
            )
        },
        Row {
            tap: TapRow::Target(TAP_THROUGHPUT),
            telemetry: TapRow::Target(TELEMETRY_THROUGHPUT),
            ..row(
                "Fetch replay (GB/s)",
                med(&r.replay, ReplayRun::gb_per_sec),
                2,
                Compare::Ratio,
            )
        },
        Row {
            tap: TapRow::Target(TAP_CPU),
            telemetry: TapRow::Show,
            ..row(
                "Fetch replay, proxy CPU per GB (s/GB)",
                cpu_med(&r.replay_cpu_per_gb),
                3,
                Compare::None,
            )
        },
    ]
}

fn list(values: impl Iterator<Item = f64>, decimals: usize) -> String {
    let v: Vec<String> = values.map(|x| fmt_num(x, decimals)).collect();
    if v.is_empty() {
        "—".into()
    } else {
        v.join(", ")
    }
}

/// The telemetry on vs off table, the per-round ratios and what the collector received.
fn telemetry_section(s: &mut String, r: &Results, rows: &[Row]) {
    let _ = writeln!(
        s,
        "\n### Sluice telemetry on vs off\n\n\
         Both with the tap on; \"telemetry off\" is the Sluice column above (no OTLP endpoint), \
         \"telemetry on\" exports metrics and sampled spans to the collector.\n"
    );
    let _ = writeln!(
        s,
        "| Metric | Telemetry on | Telemetry off | On / off | Target (telemetry on) | Result |"
    );
    let _ = writeln!(s, "|---|---:|---:|---:|---|---|");
    for line in rows.iter().filter_map(Row::telemetry_line) {
        let _ = writeln!(s, "{line}");
    }
    round_ratios(
        s,
        r,
        (Route::SluiceTelemetry, Route::Sluice),
        "Telemetry on ÷ off, round by round (the two ran in the same interleaved round):",
    );
    if !r.telemetry_checks.is_empty() {
        let _ = writeln!(
            s,
            "\nWhat the collector received from the telemetry-on Sluice of each workload (by the \
             end of its part):\n"
        );
        for c in &r.telemetry_checks {
            let _ = writeln!(s, "{}", telemetry_check_line(c));
        }
    }
}

/// The per-round ratios of two routes for consumer and replay throughput and CPU per GB: both
/// ran in the same interleaved round, so pairing takes out much of the drift between rounds.
fn round_ratios(s: &mut String, r: &Results, (on, off): (Route, Route), heading: &str) {
    let (on, off) = (on.index(), off.index());
    let fetch =
        |i: usize| -> Vec<f64> { r.consumer[i].iter().map(|c| c.fetch_mb_per_sec).collect() };
    let replay = |i: usize| -> Vec<f64> { r.replay[i].iter().map(ReplayRun::gb_per_sec).collect() };
    let pairs = [
        (
            "Kafka consume, fetch MB/s",
            paired(&fetch(on), &fetch(off), 3),
        ),
        (
            "Kafka consume, proxy CPU s/GB",
            paired(&r.consumer_cpu_per_gb[on], &r.consumer_cpu_per_gb[off], 3),
        ),
        ("Fetch replay GB/s", paired(&replay(on), &replay(off), 3)),
        (
            "Fetch replay, proxy CPU s/GB",
            paired(&r.replay_cpu_per_gb[on], &r.replay_cpu_per_gb[off], 3),
        ),
    ];
    if pairs.iter().any(|p| p.1.is_some()) {
        let _ = writeln!(s, "\n{heading}\n");
        for (name, p) in pairs {
            if let Some(p) = p {
                let _ = writeln!(s, "- {name}: {p}");
            }
        }
    }
}

/// Per-round ratios `on[i] / off[i]` (rounds are interleaved, so run `i` of each route
/// belongs to the same round), with their median and range; `None` unless both routes
/// have the same number of runs.
fn paired(on: &[f64], off: &[f64], decimals: usize) -> Option<String> {
    if on.is_empty() || on.len() != off.len() {
        return None;
    }
    let ratios: Vec<f64> = on.iter().zip(off).map(|(a, b)| a / b).collect();
    let lo = ratios.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = ratios.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    Some(format!(
        "{} (median {}, range {}–{})",
        list(ratios.iter().copied(), decimals),
        fmt_num(median(&ratios)?, decimals),
        fmt_num(lo, decimals),
        fmt_num(hi, decimals)
    ))
}

/// The columns of the main and per-run tables.
fn columns(r: &Results) -> &'static [Route] {
    if r.telemetry_route {
        &ROUTES
    } else {
        &ROUTES[..4]
    }
}

/// The whole Markdown report: context, the table, tap on vs off, telemetry on vs off, per-run
/// values, notes.
pub fn render(meta: &Meta, r: &Results) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "## Sluice end-to-end benchmark: direct vs haproxy vs Sluice (tap on and off{})\n",
        if r.telemetry_route {
            ", telemetry on and off"
        } else {
            ""
        }
    );
    let _ = writeln!(s, "- Date: {}", meta.date);
    let _ = writeln!(s, "- Machine: {}", meta.machine);
    let _ = writeln!(
        s,
        "- Load average (1 min): {:.2} at start, {:.2} at end",
        meta.load_start, meta.load_end
    );
    let _ = writeln!(s, "- Sluice: {}", meta.sluice);
    let _ = writeln!(s, "- haproxy: {}", meta.haproxy);
    let _ = writeln!(s, "- iperf3: {}", meta.iperf3);
    let _ = writeln!(
        s,
        "- Kafka: {} (perf tools from kafka-tools; {})",
        meta.kafka, meta.java
    );
    if !meta.replay.is_empty() {
        let _ = writeln!(s, "- Fetch replay: {}", meta.replay);
    }
    if !meta.telemetry.is_empty() {
        let _ = writeln!(s, "- Telemetry: {}", meta.telemetry);
    }
    let _ = writeln!(s, "- Plan: {}", meta.plan);
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get()) as f64;
    if meta.load_start > 0.5 || meta.load_end > cpus + 0.5 {
        let _ = writeln!(
            s,
            "- **Noise warning:** the machine was not idle (load {:.2} before the run); \
             other work competed for the CPUs, so figures are noisy.",
            meta.load_start
        );
    }
    let rows = rows(r);
    let cols = columns(r);
    let _ = writeln!(s);
    let mut head = String::from("| Metric | Direct |");
    let mut rule = String::from("|---|---:|");
    for c in &cols[1..] {
        let _ = write!(head, " {} (vs direct) |", c.title());
        rule.push_str("---:|");
    }
    let _ = writeln!(s, "{head} Target (Sluice) | Result |");
    let _ = writeln!(s, "{rule}---|---|");
    for row in &rows {
        let cells: Vec<String> = cols.iter().map(|c| row.cell(*c)).collect();
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} |",
            row.metric,
            cells.join(" | "),
            row.target.as_ref().map_or("", |t| t.text),
            row.verdict()
        );
    }

    let _ = writeln!(s, "\n### Sluice tap on vs tap off\n");
    let _ = writeln!(
        s,
        "| Metric | Sluice tap on | Sluice tap off | On / off | Target (tap on) | Result |"
    );
    let _ = writeln!(s, "|---|---:|---:|---:|---|---|");
    for line in rows.iter().filter_map(Row::tap_line) {
        let _ = writeln!(s, "{line}");
    }
    round_ratios(
        &mut s,
        r,
        (Route::Sluice, Route::SluiceTapOff),
        "Tap on ÷ off, round by round (the two ran in the same interleaved round):",
    );
    if !r.tap_checks.is_empty() {
        let _ = writeln!(
            s,
            "\nWhat the tap followed (admin `/api/v1/stats` of each Sluice after its workload):\n"
        );
        for c in &r.tap_checks {
            let _ = writeln!(s, "{}", tap_check_line(c));
        }
    }

    if r.telemetry_route {
        telemetry_section(&mut s, r, &rows);
    }

    let _ = writeln!(s, "\n### Per-run values\n");
    let mut head = String::from("| Measurement |");
    let mut rule = String::from("|---|");
    for c in cols {
        let _ = write!(head, " {} |", c.title());
        rule.push_str("---|");
    }
    let _ = writeln!(s, "{head}\n{rule}");
    let line = |s: &mut String, name: &str, f: &dyn Fn(usize) -> String| {
        let cells: Vec<String> = cols.iter().map(|c| f(c.index())).collect();
        let _ = writeln!(s, "| {name} | {} |", cells.join(" | "));
    };
    line(&mut s, "iperf3 Gbit/s", &|i| {
        list(r.iperf[i].iter().map(|x| x.bits_per_second / 1e9), 2)
    });
    line(&mut s, "proxy CPU s/GB (iperf3)", &|i| {
        list(r.cpu_per_gb[i].iter().copied(), 3)
    });
    line(&mut s, "RTT p99 µs per block", &|i| {
        list(
            r.rtt[i]
                .iter()
                .filter_map(|b| rtt_us(std::slice::from_ref(b), 99.0)),
            1,
        )
    });
    line(&mut s, "produce MB/s", &|i| {
        list(r.producer[i].iter().map(|x| x.mb_per_sec), 1)
    });
    line(&mut s, "consume fetch MB/s", &|i| {
        list(r.consumer[i].iter().map(|x| x.fetch_mb_per_sec), 1)
    });
    line(&mut s, "consume MB/s incl. group join", &|i| {
        list(r.consumer[i].iter().map(|x| x.mb_per_sec), 1)
    });
    line(&mut s, "proxy CPU s/GB (consume)", &|i| {
        list(r.consumer_cpu_per_gb[i].iter().copied(), 3)
    });
    line(&mut s, "proxy syscalls/GB (consume)", &|i| {
        list(r.consumer_syscalls_per_gb[i].iter().copied(), 0)
    });
    line(&mut s, "proxy context switches/GB (consume)", &|i| {
        list(r.consumer_switches_per_gb[i].iter().copied(), 0)
    });
    line(&mut s, "Fetch replay GB/s", &|i| {
        list(r.replay[i].iter().map(ReplayRun::gb_per_sec), 2)
    });
    line(&mut s, "proxy CPU s/GB (replay)", &|i| {
        list(r.replay_cpu_per_gb[i].iter().copied(), 3)
    });

    if !r.failures.is_empty() {
        let _ = writeln!(s, "\n### Failed steps\n");
        for f in &r.failures {
            let lines: Vec<&str> = f.lines().filter(|l| !l.trim().is_empty()).collect();
            match lines.as_slice() {
                [] => {}
                [one] => {
                    let _ = writeln!(s, "- {one}");
                }
                [first, .., last] => {
                    let _ = writeln!(s, "- {first} … `{}`", last.trim());
                }
            }
        }
    }

    let _ = writeln!(
        s,
        "\n### How to read this\n\n\
         - All traffic is on loopback (127.0.0.1); client, proxy and server share the CPUs, so \
         a proxy's cost shows up as lost throughput as well as in its own CPU time.\n\
         - Sluice runs twice per workload: with its protocol tap on (the default; column \
         \"Sluice\") and with `SLUICE_TAP_ENABLED=false` (\"Sluice tap off\", a plain byte pipe). \
         iperf3 and echo traffic are not Kafka, so there the tap gives up on each connection \
         after its first bytes; the Kafka and Fetch replay rows are where it does its work.\n\
         - Throughput rows show the median over rounds run interleaved (direct, haproxy, Sluice, \
         Sluice tap off, then the same rotated by one each round, so no route always goes \
         first); ratios are against the direct median.\n\
         - Proxy CPU is user + system time of the proxy process (all threads, from \
         /proc/PID/stat) over one run, divided by the GB (10^9 bytes) received by the client \
         (iperf3, Fetch replay) or of record data consumed (Kafka consume). Syscalls \
         (perf stat, raw_syscalls:sys_enter) and context switches (all threads, voluntary + \
         involuntary) per GB are counted over the same consumer runs.\n\
         - Round trips: sequential 64-byte writes echoed back by a TCP_NODELAY echo server, on \
         one connection per block, after an untimed warm-up; p50 and p99 are taken per block, \
         and the table shows their median over blocks. In brackets: ratio and added µs versus \
         direct.\n\
         - Kafka: ProducerPerformance with 1024-byte records, acks=1, linger.ms=5, \
         batch.size=262144, unthrottled; ConsumerPerformance from the earliest offset with a \
         fresh group each round. One topic (1 partition) per route, written and read only \
         through that route (the broker advertises a separate listener per route). Consumer MB/s \
         is Kafka's fetch.MB.sec (group join excluded). Kafka's MB is 2^20 bytes.\n\
         - Fetch replay: no broker; a server answers every Fetch request with the same recorded \
         real Fetch response (correlation id patched), and one client connection keeps several \
         recorded Fetch requests in flight, so the proxy moves real Fetch traffic as fast as \
         loopback allows. GB/s is response bytes received per second after a warm-up.\n\
         - PASS/MISS compares Sluice's figure (tap on) with the target; this is a report, not \
         a test. With the medians of only a few rounds on a shared machine, differences of a \
         few percent between tap on and tap off can be noise: see the per-run values."
    );
    if r.telemetry_route {
        let _ = writeln!(
            s,
            "- \"Sluice telemetry on\" is a third Sluice per workload, tap on, exporting metrics \
             (every instrument, at the metrics interval) and a sample of request/response spans \
             over OTLP/gRPC to a real OpenTelemetry Collector on the same machine; the \
             collector's CPU competes for the same cores. Its proxy CPU per GB covers only the \
             exports that fall inside a run; the CPU over the whole part (in the telemetry \
             check) includes the exports between runs as well. Spans counted as `finding` come \
             from connections under an active finding, which are kept whatever the sample ratio \
             (up to `telemetry.finding_spans_per_sec`, 50/s per connection): the replay client re-reads one offset (fetch loop, egress \
             amplification), and ConsumerPerformance re-reads its topic without committing \
             within its short run (fetch without commit, egress amplification), so with the \
             default detectors both are soon flagged and more than 1% of their pairs become \
             spans (see benches/README.md to measure 1% sampling alone)."
        );
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::admin::TapStats;
    use crate::measure::IperfRun;

    #[test]
    fn renders_ratios_and_verdicts() {
        let mut r = Results::default();
        for (i, gbps) in [40.0, 24.0, 32.0, 33.0].into_iter().enumerate() {
            r.iperf[i].push(IperfRun {
                bits_per_second: gbps * 1e9,
                bytes: 1e10,
            });
        }
        r.cpu_per_gb[1].push(0.3);
        r.cpu_per_gb[2].push(0.5);
        r.cpu_per_gb[3].push(0.45);
        r.rtt[0].push(vec![20_000; 100]);
        r.rtt[1].push(vec![40_000; 100]);
        r.rtt[2].push(vec![70_000; 100]);
        // A block disturbed by other work does not move the median over blocks.
        r.rtt[2].push(vec![70_000; 100]);
        r.rtt[2].push(vec![9_000_000; 100]);
        r.rtt[3].push(vec![60_000; 100]);
        let out = render(&Meta::default(), &r);
        assert!(out.contains("| Raw TCP, 1 stream (Gbit/s) | 40.00 | 24.00 (0.60×) | 32.00 (0.80×) | 33.00 (0.82×) | ≥ 0.75× direct | **PASS** |"), "{out}");
        assert!(
            out.contains(
                "| Proxy CPU per GB moved, iperf3 (s/GB) | — | 0.300 | 0.500 | 0.450 | ≤ 0.4 s/GB | **MISS** |"
            ),
            "{out}"
        );
        assert!(out.contains("| 20.0 | 40.0 (2.00×, +20.0) | 70.0 (3.50×, +50.0) | 60.0 (3.00×, +40.0) | added p99 ≤ 40 µs | **MISS** |"), "{out}");
        assert!(
            out.contains(
                "| Kafka consume, fetch (MB/s) | n/a | n/a | n/a | n/a | ≥ 0.95× direct | n/a |"
            ),
            "{out}"
        );
        // The tap table: on vs off.
        assert!(
            out.contains("| Raw TCP, 1 stream (Gbit/s) | 32.00 | 33.00 | 0.970 |  |  |"),
            "{out}"
        );
        assert!(
            out.contains(
                "| Kafka consume, fetch (MB/s) | n/a | n/a | n/a | tap on ≥ 0.97× tap off | n/a |"
            ),
            "{out}"
        );
        assert!(
            !out.contains("| Kafka produce (MB/s) | n/a | n/a | n/a |  |"),
            "{out}"
        );
    }

    #[test]
    fn tap_targets_allow_three_percent() {
        let mut r = Results::default();
        let run = |gbps: f64| ReplayRun {
            bytes: (gbps * 1e9) as u64,
            secs: 1.0,
            total_bytes: 0,
            responses: 0,
        };
        r.replay[2].push(run(2.92));
        r.replay[3].push(run(3.0));
        r.replay_cpu_per_gb[2].push(0.104);
        r.replay_cpu_per_gb[3].push(0.1);
        let out = render(&Meta::default(), &r);
        assert!(
            out.contains(
                "| Fetch replay (GB/s) | 2.92 | 3.00 | 0.973 | tap on ≥ 0.97× tap off | **PASS** |"
            ),
            "{out}"
        );
        assert!(out.contains("| Fetch replay, proxy CPU per GB (s/GB) | 0.104 | 0.100 | 1.040 | tap on ≤ 1.03× tap off | **MISS** |"), "{out}");
    }

    #[test]
    fn tap_check_lines() {
        let mut c = TapCheck {
            workload: "Fetch replay".into(),
            tap_on: Some(TapStats {
                fetch_responses: 10,
                fetch_requests: 10,
                api_rows: 1,
                connections_accepted: 2,
                ..TapStats::default()
            }),
            tap_off: Some(TapStats::default()),
            received: Some(10),
            telemetry: None,
            telemetry_received: None,
        };
        assert_eq!(
            tap_check_line(&c),
            "- Fetch replay: tap on: 10 Fetch responses followed of 10 received by the client \
             (requests 10), tap_parse_errors 0, opaque_connections 0, 2 connections; tap off: \
             0 API rows — **OK**"
        );
        c.received = Some(11);
        assert!(tap_check_line(&c).ends_with("**CHECK**"));
    }

    #[test]
    fn tap_on_off_round_ratios() {
        let mut r = Results::default();
        for (on, off) in [(0.33, 0.30), (0.31, 0.31), (0.30, 0.32)] {
            r.consumer_cpu_per_gb[Route::Sluice.index()].push(on);
            r.consumer_cpu_per_gb[Route::SluiceTapOff.index()].push(off);
        }
        let out = render(&Meta::default(), &r);
        let at = out.find("Tap on ÷ off, round by round").expect("heading");
        assert!(
            out[at..].contains(
                "- Kafka consume, proxy CPU s/GB: 1.100, 1.000, 0.938 (median 1.000, range 0.938–1.100)"
            ),
            "{out}"
        );
        // Not for telemetry: that route is absent.
        assert!(!out.contains("Telemetry on ÷ off"), "{out}");
    }

    #[test]
    fn telemetry_column_table_and_round_ratios() {
        use crate::collector::Received;
        use crate::kafka::ConsumerResult;
        let mut r = Results::default();
        let out = render(&Meta::default(), &r);
        assert!(!out.contains("telemetry"), "{out}");
        r.telemetry_route = true;
        let consume = |mb: f64| ConsumerResult {
            fetch_mb_per_sec: mb,
            mb_per_sec: mb,
            messages: 1,
            data_mb: 1.0,
        };
        r.consumer[0].push(consume(800.0));
        for (on, off) in [(570.0, 600.0), (600.0, 580.0), (590.0, 590.0)] {
            r.consumer[Route::SluiceTelemetry.index()].push(consume(on));
            r.consumer[Route::Sluice.index()].push(consume(off));
        }
        r.telemetry_checks.push(TelemetryCheck {
            workload: "Kafka".into(),
            received: Received {
                metric_exports: 12,
                metric_points: 300,
                spans_dropped: Some(0.0),
                spans: [("ratio".to_owned(), 40)].into_iter().collect(),
            },
            secs: 120.0,
            cpu_off: Some(3.0),
            cpu_on: Some(3.5),
            cpu_collector: Some(0.4),
        });
        let out = render(&Meta::default(), &r);
        assert!(
            out.contains("| Sluice telemetry on (vs direct) | Target (Sluice) |"),
            "{out}"
        );
        assert!(
            out.contains("| Kafka consume, fetch (MB/s) | 800.0 | n/a | 590.0 (0.74×) | n/a | 590.0 (0.74×) |"),
            "{out}"
        );
        assert!(
            out.contains(
                "| Kafka consume, fetch (MB/s) | 590.0 | 590.0 | 1.000 | telemetry on ≥ 0.95× off | **PASS** |"
            ),
            "{out}"
        );
        assert!(
            out.contains(
                "- Kafka consume, fetch MB/s: 0.950, 1.034, 1.000 (median 1.000, range 0.950–1.034)"
            ),
            "{out}"
        );
        assert!(
            out.contains("received 12 metric exports (300 data points) and 40 spans (ratio 40)"),
            "{out}"
        );
        assert!(
            out.contains("telemetry on 3.5 s, collector 0.4 s — **OK**"),
            "{out}"
        );
        assert!(out.contains("| consume fetch MB/s | 800.0 | — | 600.0, 580.0, 590.0 | — | 570.0, 600.0, 590.0 |"), "{out}");
    }

    #[test]
    fn thousands_separators() {
        assert_eq!(fmt_num(1234567.4, 0), "1,234,567");
        assert_eq!(fmt_num(999.0, 0), "999");
        assert_eq!(fmt_num(1.25, 1), "1.2");
    }
}
