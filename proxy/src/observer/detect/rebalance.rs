//! Rebalance storms: a group reaching new generations over and over.

use std::time::Instant;

use serde_json::json;

use super::super::config::DetectConfig;
use super::super::findings::{Kind, Registry, Severity};
use super::super::model::Model;

pub(super) fn rebalance_storms(
    m: &Model,
    cfg: &DetectConfig,
    now: Instant,
    findings: &mut Registry,
) {
    for (group, g) in &m.groups {
        let joins = g.joins.len() as u32;
        if joins >= cfg.rebalance_min_generations {
            findings.report(
                now,
                Kind::RebalanceStorm,
                group.to_string(),
                Severity::Warning,
                format!("group {group} rebalanced {joins} times (new generations) in {}s", cfg.rebalance_window.as_secs()),
                json!({"group": &**group, "rebalances_in_window": joins, "window_s": cfg.rebalance_window.as_secs(),
                       "generation": g.generation, "members": g.members.len(), "rebalances_total": g.rebalances}),
            );
        }
    }
}
