//! The detectors: run once per tick over the model, report findings to the registry.
//!
//! # Layout
//! - `loops.rs`: fetch loops; `commits.rs`: fetch without commit; `egress.rs`: egress
//!   amplification; `churn.rs`: connection churn; `rebalance.rs`: rebalance storms.

mod churn;
mod commits;
mod egress;
mod loops;
mod rebalance;

use std::time::Instant;

use super::config::DetectConfig;
use super::findings::Registry;
use super::model::{ClientKey, Model, TrackPass};

fn software(m: &Model, key: &ClientKey) -> Option<String> {
    m.clients
        .get(key)
        .and_then(|c| c.software.as_ref())
        .map(|(n, v)| format!("{n} {v}"))
}

/// Runs every detector on the model and what [`Model::tick`]'s walk over the tracks found
/// this tick.
pub fn run(
    m: &Model,
    pass: &TrackPass,
    (cfg, now): (&DetectConfig, Instant),
    findings: &mut Registry,
) {
    findings.set_principals(
        m.clients
            .iter()
            // The key cloned only for a client with a principal: a clone touches the `Arc`.
            .filter_map(|(k, c)| c.principal.as_ref().map(|p| (k.clone(), p.clone())))
            .collect(),
    );
    loops::fetch_loops(m, &pass.rewinding, (cfg, now), findings);
    commits::fetch_without_commit(m, &pass.uncommitted, (cfg, now), findings);
    egress::egress_amplification(m, &pass.topic_windows, (cfg, now), findings);
    churn::churn(m, cfg, now, findings);
    rebalance::rebalance_storms(m, cfg, now, findings);
}

/// Bytes for humans: `1.2 GiB`.
pub fn human(bytes: f64) -> String {
    let mut v = bytes;
    for unit in ["B", "KiB", "MiB", "GiB"] {
        if v < 1024.0 || unit == "GiB" {
            return format!("{v:.1} {unit}");
        }
        v /= 1024.0;
    }
    format!("{v:.1} TiB")
}
