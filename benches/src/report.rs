//! Collected results and the Markdown report.

use std::fmt::Write as _;

use crate::kafka::{ConsumerResult, ProducerResult};
use crate::measure::IperfRun;
use crate::stats::{median, percentile};

/// A way from the client to the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// Straight to the server.
    Direct,
    /// Through haproxy in TCP mode.
    Haproxy,
    /// Through Sluice.
    Sluice,
}

/// All three, in the order they are shown.
pub const ROUTES: [Route; 3] = [Route::Direct, Route::Haproxy, Route::Sluice];

/// The order of the routes in round `round` (from 1): interleaved, and rotated by one each
/// round (direct, haproxy, Sluice; haproxy, Sluice, direct; …) so that no route always runs
/// first, right after a warm-up or a different kind of step.
pub fn round_order(round: u32) -> [Route; 3] {
    let k = (round.saturating_sub(1) % 3) as usize;
    [ROUTES[k], ROUTES[(k + 1) % 3], ROUTES[(k + 2) % 3]]
}

impl Route {
    /// Lower-case name for progress lines and file names.
    pub fn name(self) -> &'static str {
        match self {
            Route::Direct => "direct",
            Route::Haproxy => "haproxy",
            Route::Sluice => "sluice",
        }
    }

    /// Index into per-route arrays.
    pub fn index(self) -> usize {
        self as usize
    }
}

/// Everything measured, per route (indexed by [`Route::index`]).
#[derive(Debug, Default)]
pub struct Results {
    /// iperf3 runs.
    pub iperf: [Vec<IperfRun>; 3],
    /// Proxy CPU seconds per GB received, one per iperf3 run (empty for direct).
    pub cpu_per_gb: [Vec<f64>; 3],
    /// Round-trip samples in ns, one vector per interleaved block.
    pub rtt: [Vec<Vec<u64>>; 3],
    /// ProducerPerformance runs.
    pub producer: [Vec<ProducerResult>; 3],
    /// ConsumerPerformance runs.
    pub consumer: [Vec<ConsumerResult>; 3],
    /// Steps that failed, with their error.
    pub failures: Vec<String>,
}

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

/// A target on Sluice's figures: text, and the check given (direct, sluice).
struct Target {
    text: &'static str,
    check: fn(Option<f64>, f64) -> Option<bool>,
}

struct Row {
    metric: &'static str,
    values: [Option<f64>; 3],
    decimals: usize,
    compare: Compare,
    target: Option<Target>,
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

impl Row {
    fn cell(&self, route: Route) -> String {
        let Some(v) = self.values[route.index()] else {
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
        let Some(t) = &self.target else {
            return String::new();
        };
        match self.values[Route::Sluice.index()].and_then(|s| (t.check)(self.values[0], s)) {
            Some(true) => "**PASS**".into(),
            Some(false) => "**MISS**".into(),
            None => "n/a".into(),
        }
    }
}

/// Builds the table rows from the results.
fn rows(r: &Results) -> Vec<Row> {
    let per = |f: &dyn Fn(usize) -> Option<f64>| [f(0), f(1), f(2)];
    vec![
        Row {
            metric: "Raw TCP, 1 stream (Gbit/s)",
            values: per(&|i| {
                median(
                    &r.iperf[i]
                        .iter()
                        .map(|x| x.bits_per_second / 1e9)
                        .collect::<Vec<_>>(),
                )
            }),
            decimals: 2,
            compare: Compare::Ratio,
            target: Some(Target {
                text: "≥ 0.75× direct",
                check: |d, s| d.map(|d| s >= 0.75 * d),
            }),
        },
        Row {
            metric: "Proxy CPU per GB moved (s/GB)",
            values: per(&|i| median(&r.cpu_per_gb[i])),
            decimals: 3,
            compare: Compare::None,
            target: Some(Target {
                text: "≤ 0.4 s/GB",
                check: |_, s| Some(s <= 0.4),
            }),
        },
        Row {
            metric: "Round trip 64 B, p50 (µs)",
            values: per(&|i| rtt_us(&r.rtt[i], 50.0)),
            decimals: 1,
            compare: Compare::RatioAndDelta,
            target: None,
        },
        Row {
            metric: "Round trip 64 B, p99 (µs)",
            values: per(&|i| rtt_us(&r.rtt[i], 99.0)),
            decimals: 1,
            compare: Compare::RatioAndDelta,
            target: Some(Target {
                text: "added p99 ≤ 40 µs",
                check: |d, s| d.map(|d| s - d <= 40.0),
            }),
        },
        Row {
            metric: "Kafka produce (MB/s)",
            values: per(&|i| {
                median(
                    &r.producer[i]
                        .iter()
                        .map(|x| x.mb_per_sec)
                        .collect::<Vec<_>>(),
                )
            }),
            decimals: 1,
            compare: Compare::Ratio,
            target: None,
        },
        Row {
            metric: "Kafka produce (records/s)",
            values: per(&|i| {
                median(
                    &r.producer[i]
                        .iter()
                        .map(|x| x.records_per_sec)
                        .collect::<Vec<_>>(),
                )
            }),
            decimals: 0,
            compare: Compare::Ratio,
            target: None,
        },
        Row {
            metric: "Kafka produce latency, avg (ms)",
            values: per(&|i| {
                median(
                    &r.producer[i]
                        .iter()
                        .map(|x| x.avg_latency_ms)
                        .collect::<Vec<_>>(),
                )
            }),
            decimals: 1,
            compare: Compare::RatioAndDelta,
            target: None,
        },
        Row {
            metric: "Kafka produce latency, p99 (ms)",
            values: per(&|i| {
                median(
                    &r.producer[i]
                        .iter()
                        .map(|x| x.p99_latency_ms)
                        .collect::<Vec<_>>(),
                )
            }),
            decimals: 1,
            compare: Compare::RatioAndDelta,
            target: None,
        },
        Row {
            metric: "Kafka consume, fetch (MB/s)",
            values: per(&|i| {
                median(
                    &r.consumer[i]
                        .iter()
                        .map(|x| x.fetch_mb_per_sec)
                        .collect::<Vec<_>>(),
                )
            }),
            decimals: 1,
            compare: Compare::Ratio,
            target: Some(Target {
                text: "≥ 0.95× direct",
                check: |d, s| d.map(|d| s >= 0.95 * d),
            }),
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

/// The whole Markdown report: context, the table, per-run values, notes.
pub fn render(meta: &Meta, r: &Results) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "## Sluice end-to-end benchmark: direct vs haproxy vs Sluice\n"
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
    let _ = writeln!(s);
    let _ = writeln!(
        s,
        "| Metric | Direct | haproxy (vs direct) | Sluice (vs direct) | Target (Sluice) | Result |"
    );
    let _ = writeln!(s, "|---|---:|---:|---:|---|---|");
    for row in rows(r) {
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} | {} |",
            row.metric,
            row.cell(Route::Direct),
            row.cell(Route::Haproxy),
            row.cell(Route::Sluice),
            row.target.as_ref().map_or("", |t| t.text),
            row.verdict()
        );
    }

    let _ = writeln!(s, "\n### Per-run values\n");
    let _ = writeln!(s, "| Measurement | Direct | haproxy | Sluice |");
    let _ = writeln!(s, "|---|---|---|---|");
    let line = |s: &mut String, name: &str, f: &dyn Fn(usize) -> String| {
        let _ = writeln!(s, "| {name} | {} | {} | {} |", f(0), f(1), f(2));
    };
    line(&mut s, "iperf3 Gbit/s", &|i| {
        list(r.iperf[i].iter().map(|x| x.bits_per_second / 1e9), 2)
    });
    line(&mut s, "proxy CPU s/GB", &|i| {
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
         - Throughput rows show the median over rounds run interleaved (direct, haproxy, Sluice, \
         then the same rotated by one each round, so no route always goes first); ratios are \
         against the direct median.\n\
         - Proxy CPU is user + system time of the proxy process (all threads, from \
         /proc/PID/stat) over one iperf3 run, divided by the GB (10^9 bytes) received.\n\
         - Round trips: sequential 64-byte writes echoed back by a TCP_NODELAY echo server, on \
         one connection per block, after an untimed warm-up; p50 and p99 are taken per block, \
         and the table shows their median over blocks. In brackets: ratio and added µs versus \
         direct.\n\
         - Kafka: ProducerPerformance with 1024-byte records, acks=1, linger.ms=5, \
         batch.size=262144, unthrottled; ConsumerPerformance from the earliest offset with a \
         fresh group each round. One topic (1 partition) per route, written and read only \
         through that route (the broker advertises a separate listener per route). Consumer MB/s \
         is Kafka's fetch.MB.sec (group join excluded). Kafka's MB is 2^20 bytes.\n\
         - PASS/MISS compares Sluice's figure with the target; this is a report, not a test."
    );
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_ratios_and_verdicts() {
        let mut r = Results::default();
        for (i, gbps) in [40.0, 24.0, 32.0].into_iter().enumerate() {
            r.iperf[i].push(IperfRun {
                bits_per_second: gbps * 1e9,
                bytes: 1e10,
            });
        }
        r.cpu_per_gb[1].push(0.3);
        r.cpu_per_gb[2].push(0.5);
        r.rtt[0].push(vec![20_000; 100]);
        r.rtt[1].push(vec![40_000; 100]);
        r.rtt[2].push(vec![70_000; 100]);
        // A block disturbed by other work does not move the median over blocks.
        r.rtt[2].push(vec![70_000; 100]);
        r.rtt[2].push(vec![9_000_000; 100]);
        let out = render(&Meta::default(), &r);
        assert!(out.contains("| Raw TCP, 1 stream (Gbit/s) | 40.00 | 24.00 (0.60×) | 32.00 (0.80×) | ≥ 0.75× direct | **PASS** |"), "{out}");
        assert!(
            out.contains(
                "| Proxy CPU per GB moved (s/GB) | — | 0.300 | 0.500 | ≤ 0.4 s/GB | **MISS** |"
            ),
            "{out}"
        );
        assert!(out.contains("| 20.0 | 40.0 (2.00×, +20.0) | 70.0 (3.50×, +50.0) | added p99 ≤ 40 µs | **MISS** |"), "{out}");
        assert!(
            out.contains(
                "| Kafka consume, fetch (MB/s) | n/a | n/a | n/a | ≥ 0.95× direct | n/a |"
            ),
            "{out}"
        );
    }

    #[test]
    fn rounds_rotate_the_order() {
        use Route::*;
        assert_eq!(round_order(1), [Direct, Haproxy, Sluice]);
        assert_eq!(round_order(2), [Haproxy, Sluice, Direct]);
        assert_eq!(round_order(3), [Sluice, Direct, Haproxy]);
        assert_eq!(round_order(4), round_order(1));
    }

    #[test]
    fn thousands_separators() {
        assert_eq!(fmt_num(1234567.4, 0), "1,234,567");
        assert_eq!(fmt_num(999.0, 0), "999");
        assert_eq!(fmt_num(1.25, 1), "1.2");
    }
}
