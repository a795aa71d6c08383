//! Rebalance storms: a group reaching new generations over and over — because one of its
//! consumers keeps joining again (kicked out for a slow poll, crash-looping), or at a rate no
//! deploy explains. A rolling deploy, where each member is replaced once, is not a storm,
//! however many generations it makes.

use std::time::Instant;

use serde_json::json;

use super::super::config::DetectConfig;
use super::super::findings::{Kind, Registry, Severity};
use super::super::model::Model;

/// Times one client key joins as a new member within the window that make it a flapping
/// member.
pub(super) const REJOINS: usize = 3;

pub(super) fn rebalance_storms(
    m: &Model,
    cfg: &DetectConfig,
    now: Instant,
    findings: &mut Registry,
) {
    for (group, g) in &m.groups {
        let joins = g.joins.len() as u32;
        if joins < cfg.rebalance_min_generations {
            continue;
        }
        let flapping = g.most_rejoined().filter(|(_, n)| *n >= REJOINS);
        if flapping.is_none() && joins < 2 * cfg.rebalance_min_generations {
            continue; // members replaced once each: a deploy, not a storm
        }
        let why = match flapping {
            Some(((host, id), n)) => format!("; {id} on {host} joined as a new member {n} times"),
            None => String::new(),
        };
        findings.report(
            now,
            Kind::RebalanceStorm,
            group.to_string(),
            Severity::Warning,
            format!(
                "group {group} rebalanced {joins} times (new generations) in {}s{why}",
                cfg.rebalance_window.as_secs()
            ),
            json!({"group": &**group, "rebalances_in_window": joins, "window_s": cfg.rebalance_window.as_secs(),
                   "generation": g.generation, "members": g.members.len(), "rebalances_total": g.rebalances,
                   "client_host": flapping.map(|((h, _), _)| h.to_string()),
                   "client_id": flapping.map(|((_, id), _)| id.to_string()),
                   "rejoins_in_window": flapping.map(|(_, n)| n)}),
        );
    }
}
