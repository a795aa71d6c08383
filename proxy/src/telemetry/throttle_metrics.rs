//! The throttle's instruments, read from [`Throttle::status`] at collection time (one status
//! per collection, shared by the instruments): decisions, bytes and time held back per policy
//! and group, connections each policy matches, and failed re-reads of the policy file.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use opentelemetry::metrics::Meter;
use opentelemetry::KeyValue;

use super::metrics::{kafka, observable, Keep, Shape::*, Source};
use super::names::*;
use crate::throttle::{PolicyStatus, Throttle};

/// A status younger than this is reused by the next instrument's callback.
const STATUS_REUSE: Duration = Duration::from_millis(250);

/// The throttle the instruments read, with the status of the collection in progress.
#[derive(Debug)]
pub struct ThrottleView {
    throttle: Arc<Throttle>,
    cache: Mutex<Option<(Instant, Arc<Vec<PolicyStatus>>)>>,
}

impl ThrottleView {
    /// Reads this throttle.
    pub fn new(throttle: Arc<Throttle>) -> ThrottleView {
        ThrottleView {
            throttle,
            cache: Mutex::new(None),
        }
    }

    fn hints(&self) -> crate::throttle::HintCounts {
        self.throttle.hints()
    }

    fn status(&self) -> Arc<Vec<PolicyStatus>> {
        let mut c = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((at, s)) = &*c {
            if at.elapsed() < STATUS_REUSE {
                return s.clone();
            }
        }
        let s = Arc::new(self.throttle.status());
        *c = Some((Instant::now(), s.clone()));
        s
    }
}

fn policy(p: &PolicyStatus) -> KeyValue {
    KeyValue::new(POLICY, p.spec.name.clone())
}

fn mode(p: &PolicyStatus) -> &'static str {
    match p.spec.action.mode {
        sluice_config::Mode::Enforce => "enforce",
        sluice_config::Mode::DryRun => "dry-run",
    }
}

/// Per policy and group: `f` of what the policy held from that group.
fn by_group(src: &Source, f: fn(&crate::throttle::GroupHeld) -> f64) -> Vec<(Vec<KeyValue>, f64)> {
    let mut out = Vec::new();
    for p in src.throttle.status().iter() {
        for g in &p.groups {
            out.push((
                vec![kafka(), policy(p), KeyValue::new(GROUP, g.group.clone())],
                f(g),
            ));
        }
    }
    out
}

/// Registers the throttle's instruments into `k`.
pub(super) fn register(meter: &Meter, src: &Arc<Source>, k: &mut Keep) {
    observable(
        meter,
        src,
        k,
        (
            "sluice.throttle.decisions",
            "{decision}",
            "Decisions to hold a throttled connection's traffic back, by policy and mode (dry-run: would have held)",
        ),
        Counter,
        |src, _| {
            src.throttle
                .status()
                .iter()
                .map(|p| {
                    (
                        vec![kafka(), policy(p), KeyValue::new(MODE, mode(p))],
                        p.decisions as f64,
                    )
                })
                .collect()
        },
    );
    observable(
        meter,
        src,
        k,
        (
            "sluice.throttle.held_bytes",
            "By",
            "Response bytes a policy held back (dry-run: would have), by policy and group",
        ),
        Counter,
        |src, _| by_group(src, |g| g.held_bytes as f64),
    );
    observable(
        meter,
        src,
        k,
        (
            "sluice.throttle.held_time",
            "s",
            "Time a policy held connections' requests back (dry-run: would have), by policy and group",
        ),
        FloatCounter,
        |src, _| by_group(src, |g| g.held_ms as f64 / 1000.0),
    );
    observable(
        meter,
        src,
        k,
        (
            "sluice.throttle.connections",
            "{connection}",
            "Open connections each throttle policy in force matches",
        ),
        Gauge,
        |src, _| {
            src.throttle
                .status()
                .iter()
                .map(|p| (vec![kafka(), policy(p)], p.connections.len() as f64))
                .collect()
        },
    );
    observable(
        meter,
        src,
        k,
        (
            "sluice.throttle.hints",
            "{response}",
            "Fetch responses on throttled connections by what happened to throttle_time_ms: set (raised), missed (split across reads, left alone), forgotten (its request beyond the per-connection bound, left alone)",
        ),
        Counter,
        |src, _| {
            let h = src.throttle.hints();
            [("set", h.set), ("missed", h.missed), ("forgotten", h.forgotten)]
                .into_iter()
                .map(|(outcome, n)| (vec![KeyValue::new(HINT, outcome)], n as f64))
                .collect()
        },
    );
    observable(
        meter,
        src,
        k,
        (
            "sluice.throttle.reload_failures",
            "{reload}",
            "Re-reads of the throttle policy file that failed validation (the policies in force stayed)",
        ),
        Counter,
        |src, _| {
            vec![(
                vec![],
                src.stats.throttle_reload_failures.load(Relaxed) as f64,
            )]
        },
    );
}
