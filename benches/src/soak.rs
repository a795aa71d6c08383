//! The soak harness's readings and verdicts: samples of one process from `/proc` (RSS, CPU
//! time, open descriptors), whether they stayed flat after warm-up, and whether the
//! detectors' findings name the incident and nothing healthy.

use std::fmt::Write as _;
use std::time::Instant;

use anyhow::Result;
use serde_json::Value;

use crate::proc::{cpu_seconds, open_fds, rss_kib};

/// One reading of the watched process.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// Seconds since the traffic started.
    pub elapsed_s: f64,
    /// Resident set size, KiB.
    pub rss_kib: u64,
    /// CPU seconds used so far.
    pub cpu_s: f64,
    /// CPU used since the previous sample, % of one core.
    pub cpu_pct: f64,
    /// Open descriptors.
    pub fds: usize,
    /// Active findings, as `kind` names (sorted, deduplicated).
    pub findings: String,
}

/// Takes [`Sample`]s of one process, each with the CPU share since the one before.
#[derive(Debug)]
pub struct Sampler {
    pid: u32,
    start: Instant,
    last: Option<(Instant, f64)>,
}

impl Sampler {
    /// Samples `pid`, counting elapsed time from now.
    pub fn new(pid: u32) -> Sampler {
        Sampler {
            pid,
            start: Instant::now(),
            last: None,
        }
    }

    /// Reads the process now; `findings` is recorded as given.
    pub fn sample(&mut self, findings: String) -> Result<Sample> {
        let now = Instant::now();
        let cpu_s = cpu_seconds(self.pid)?;
        let cpu_pct = match self.last {
            Some((t, c)) => {
                let dt = now.duration_since(t).as_secs_f64();
                if dt > 0.0 {
                    100.0 * (cpu_s - c) / dt
                } else {
                    0.0
                }
            }
            None => 0.0,
        };
        self.last = Some((now, cpu_s));
        Ok(Sample {
            elapsed_s: now.duration_since(self.start).as_secs_f64(),
            rss_kib: rss_kib(self.pid)?,
            cpu_s,
            cpu_pct,
            fds: open_fds(self.pid)?,
            findings,
        })
    }
}

/// The samples as CSV, with a header line.
pub fn csv(samples: &[Sample]) -> String {
    let mut out = String::from("elapsed_s,rss_kib,cpu_s,cpu_pct,fds,findings\n");
    for s in samples {
        let _ = writeln!(
            out,
            "{:.1},{},{:.3},{:.2},{},{}",
            s.elapsed_s, s.rss_kib, s.cpu_s, s.cpu_pct, s.fds, s.findings
        );
    }
    out
}

/// How much a series may grow after warm-up and still count as flat.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limits {
    /// RSS growth, KiB (mean of the last quarter over the first, and the fitted slope over
    /// the post-warm-up window).
    pub rss_kib: f64,
    /// Open-descriptor growth, same two measures.
    pub fds: f64,
    /// CPU: the last quarter's mean may exceed the first quarter's by this factor plus
    /// [`Limits::cpu_points`] percentage points of one core.
    pub cpu_factor: f64,
    /// See [`Limits::cpu_factor`].
    pub cpu_points: f64,
}

/// The post-warm-up figures of one series and whether they stayed flat.
#[derive(Debug, Clone, PartialEq)]
pub struct Trend {
    /// Series name (`rss_mib`, `cpu_pct`, `fds`).
    pub name: &'static str,
    /// Value at the first post-warm-up sample.
    pub at_warmup: f64,
    /// Value at the last sample.
    pub at_end: f64,
    /// Mean of the first quarter of the post-warm-up samples.
    pub first_quarter: f64,
    /// Mean of the last quarter.
    pub last_quarter: f64,
    /// Least-squares slope, per minute.
    pub slope_per_min: f64,
    /// The slope times the post-warm-up window: the growth the fit says happened.
    pub fitted_growth: f64,
    /// Flat by its limits.
    pub flat: bool,
}

/// Least-squares slope of `ys` over `xs` (0 for fewer than two points or no spread in x).
pub fn slope(xs: &[f64], ys: &[f64]) -> f64 {
    let n = xs.len().min(ys.len());
    if n < 2 {
        return 0.0;
    }
    let mx = xs[..n].iter().sum::<f64>() / n as f64;
    let my = ys[..n].iter().sum::<f64>() / n as f64;
    let (mut sxy, mut sxx) = (0.0, 0.0);
    for i in 0..n {
        sxy += (xs[i] - mx) * (ys[i] - my);
        sxx += (xs[i] - mx) * (xs[i] - mx);
    }
    if sxx == 0.0 {
        0.0
    } else {
        sxy / sxx
    }
}

fn mean(v: &[f64]) -> f64 {
    if v.is_empty() {
        0.0
    } else {
        v.iter().sum::<f64>() / v.len() as f64
    }
}

/// Trend of one series over the post-warm-up samples `(elapsed_s, value)`. `grows_ok`
/// judges `(first_quarter, last_quarter, fitted_growth)`.
fn trend(
    name: &'static str,
    points: &[(f64, f64)],
    grows_ok: impl Fn(f64, f64, f64) -> bool,
) -> Trend {
    let xs: Vec<f64> = points.iter().map(|p| p.0).collect();
    let ys: Vec<f64> = points.iter().map(|p| p.1).collect();
    let q = (ys.len() / 4).max(1).min(ys.len());
    let first_quarter = mean(&ys[..q]);
    let last_quarter = mean(&ys[ys.len() - q..]);
    let per_s = slope(&xs, &ys);
    let window = xs.last().copied().unwrap_or(0.0) - xs.first().copied().unwrap_or(0.0);
    let fitted_growth = per_s * window;
    Trend {
        name,
        at_warmup: ys.first().copied().unwrap_or(0.0),
        at_end: ys.last().copied().unwrap_or(0.0),
        first_quarter,
        last_quarter,
        slope_per_min: per_s * 60.0,
        fitted_growth,
        flat: grows_ok(first_quarter, last_quarter, fitted_growth),
    }
}

/// RSS (MiB), CPU (% of a core) and descriptors after `warmup_s`. RSS and descriptors are
/// flat unless both the quarter means and the fitted slope grew past the limit (a leak does
/// both; one spike or one late collection does not); CPU is flat unless its last quarter ran
/// hotter than the first by the factor and the points.
pub fn judge(samples: &[Sample], warmup_s: f64, limits: &Limits) -> Vec<Trend> {
    let after: Vec<&Sample> = samples.iter().filter(|s| s.elapsed_s >= warmup_s).collect();
    let series = |f: &dyn Fn(&Sample) -> f64| -> Vec<(f64, f64)> {
        after.iter().map(|s| (s.elapsed_s, f(s))).collect()
    };
    let growth = |limit: f64| move |a: f64, b: f64, fit: f64| b - a <= limit || fit <= limit;
    let mib = limits.rss_kib / 1024.0;
    vec![
        trend(
            "rss_mib",
            &series(&|s| s.rss_kib as f64 / 1024.0),
            growth(mib),
        ),
        trend("cpu_pct", &series(&|s| s.cpu_pct), |a, b, _| {
            b <= a * limits.cpu_factor + limits.cpu_points
        }),
        trend("fds", &series(&|s| s.fds as f64), growth(limits.fds)),
    ]
}

/// The summary table (Markdown) of [`judge`]'s trends.
pub fn table(trends: &[Trend]) -> String {
    let mut out = String::from(
        "| series | at warm-up | at end | first-quarter mean | last-quarter mean | slope /min | fitted growth | flat |\n\
         |---|---:|---:|---:|---:|---:|---:|---|\n",
    );
    for t in trends {
        let _ = writeln!(
            out,
            "| {} | {:.2} | {:.2} | {:.2} | {:.2} | {:+.3} | {:+.2} | {} |",
            t.name,
            t.at_warmup,
            t.at_end,
            t.first_quarter,
            t.last_quarter,
            t.slope_per_min,
            t.fitted_growth,
            if t.flat { "yes" } else { "NO" }
        );
    }
    out
}

/// Kinds of the active findings in `/api/v1/findings`, sorted and deduplicated, joined by
/// `;`.
pub fn active_kinds(findings: &Value) -> String {
    let mut kinds: Vec<&str> = findings["active"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|f| f["kind"].as_str())
        .collect();
    kinds.sort_unstable();
    kinds.dedup();
    kinds.join(";")
}

/// What the detectors must say at the end: `kind` active with `evidence[field] == value`.
#[derive(Debug, Clone)]
pub struct Expect {
    /// Finding kind, e.g. `fetch_loop`.
    pub kind: &'static str,
    /// Evidence field, e.g. `group`.
    pub field: &'static str,
    /// Its value.
    pub value: String,
}

/// Problems with the findings: each expected finding missing from the active ones, and each
/// finding (active or cleared) whose key or evidence names one of `healthy` as a whole name.
pub fn check_findings(findings: &Value, expect: &[Expect], healthy: &[String]) -> Vec<String> {
    let list = |k: &str| findings[k].as_array().cloned().unwrap_or_default();
    let active = list("active");
    let mut problems = Vec::new();
    for e in expect {
        let hit = active
            .iter()
            .any(|f| f["kind"] == e.kind && f["evidence"][e.field] == e.value.as_str());
        if !hit {
            problems.push(format!(
                "no active {} finding with {} = {}",
                e.kind, e.field, e.value
            ));
        }
    }
    for f in active.iter().chain(list("cleared").iter()) {
        let text = format!("{}|{}", f["key"].as_str().unwrap_or(""), f["evidence"]);
        for name in healthy {
            if names(&text, name) {
                problems.push(format!(
                    "a {} finding names healthy {name}: {}",
                    f["kind"].as_str().unwrap_or("?"),
                    f["summary"].as_str().unwrap_or("")
                ));
            }
        }
    }
    problems
}

/// `name` occurs in `text` with no name character (letters, digits, `-`, `_`, `.`) on either
/// side, so `soak-1` does not match in `soak-12`.
fn names(text: &str, name: &str) -> bool {
    let part = |c: Option<char>| c.is_some_and(|c| c.is_alphanumeric() || "-_.".contains(c));
    !name.is_empty()
        && text.match_indices(name).any(|(i, _)| {
            !part(text[..i].chars().next_back()) && !part(text[i + name.len()..].chars().next())
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn samples(f: impl Fn(f64) -> (u64, f64, usize)) -> Vec<Sample> {
        (0..=60)
            .map(|i| {
                let t = i as f64 * 5.0;
                let (rss_kib, cpu_pct, fds) = f(t);
                Sample {
                    elapsed_s: t,
                    rss_kib,
                    cpu_s: 0.0,
                    cpu_pct,
                    fds,
                    findings: String::new(),
                }
            })
            .collect()
    }

    const LIMITS: Limits = Limits {
        rss_kib: 4096.0,
        fds: 10.0,
        cpu_factor: 1.5,
        cpu_points: 5.0,
    };

    #[test]
    fn slope_of_a_line() {
        assert_eq!(slope(&[0.0, 1.0, 2.0], &[1.0, 3.0, 5.0]), 2.0);
        assert_eq!(slope(&[1.0], &[1.0]), 0.0);
        assert_eq!(slope(&[1.0, 1.0], &[1.0, 2.0]), 0.0);
    }

    #[test]
    fn noise_is_flat_and_a_leak_is_not() {
        // Noise: ±1 MiB around 30 MiB, descriptors 20..24, one spike of 10 MiB at the end.
        let noisy = samples(|t| {
            let wobble = if (t as u64 / 5) % 2 == 0 { 1024 } else { 0 };
            let spike = if t >= 300.0 { 10 * 1024 } else { 0 };
            (30 * 1024 + wobble + spike, 20.0, 20 + (t as usize / 5) % 5)
        });
        assert!(judge(&noisy, 60.0, &LIMITS).iter().all(|t| t.flat));
        // A leak of 2 MiB a minute and one descriptor every 10 s.
        let leak = samples(|t| {
            (
                30 * 1024 + (t * 2048.0 / 60.0) as u64,
                20.0,
                20 + t as usize / 10,
            )
        });
        let t = judge(&leak, 60.0, &LIMITS);
        assert!(!t[0].flat, "{t:?}");
        assert!(t[1].flat);
        assert!(!t[2].flat, "{t:?}");
        assert!((t[0].slope_per_min - 2.0).abs() < 0.1, "{t:?}");
        // CPU that doubles.
        let hot = samples(|t| (1024, if t > 200.0 { 40.0 } else { 20.0 }, 5));
        assert!(!judge(&hot, 60.0, &LIMITS)[1].flat);
        assert!(table(&t).contains("| rss_mib |"));
    }

    #[test]
    fn findings_name_the_incident_and_nothing_healthy() {
        let f: Value = serde_json::json!({
            "active": [
                {"kind": "fetch_loop", "key": "billing-1|t|0", "summary": "loop",
                 "evidence": {"group": "billing-1", "client_id": "billing-service"}},
                {"kind": "connection_churn", "key": "notifier", "summary": "churn",
                 "evidence": {"client_id": "notifier"}}
            ],
            "cleared": [
                {"kind": "fetch_without_commit", "key": "healthy-12", "summary": "x",
                 "evidence": {"group": "healthy-12"}}
            ]
        });
        assert_eq!(active_kinds(&f), "connection_churn;fetch_loop");
        let expect = [Expect {
            kind: "fetch_loop",
            field: "group",
            value: "billing-1".into(),
        }];
        assert!(check_findings(&f, &expect, &["healthy-1".into()]).is_empty());
        let p = check_findings(&f, &expect, &["healthy-12".into()]);
        assert_eq!(p.len(), 1, "{p:?}");
        let missing = Expect {
            kind: "fetch_loop",
            field: "group",
            value: "billing-2".into(),
        };
        assert_eq!(check_findings(&f, &[missing], &[]).len(), 1);
        assert!(csv(&[]).starts_with("elapsed_s,"));
    }
}
