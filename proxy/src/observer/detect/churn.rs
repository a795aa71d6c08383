//! Connection churn: a client key or host opening connections fast, holding too many, or
//! mostly short-lived ones.

use std::net::IpAddr;
use std::time::Instant;

use serde_json::json;

use super::super::config::DetectConfig;
use super::super::findings::{Kind, Registry, Severity};
use super::super::model::{FastMap, Model};
use super::software;

pub(super) fn churn(m: &Model, cfg: &DetectConfig, now: Instant, findings: &mut Registry) {
    let secs = cfg.window.as_secs_f64().max(1.0);
    let mut hosts: FastMap<IpAddr, (usize, u64)> = FastMap::default();
    for (key, c) in &m.clients {
        let opened = c.recent_opens.len();
        let h = hosts.entry(key.0).or_default();
        h.0 += opened;
        h.1 += c.open;
        let short = c
            .recent_closes
            .iter()
            .filter(|(_, life)| *life < cfg.short_lived)
            .count();
        let closes = c.recent_closes.len();
        let rate = opened as f64 / secs;
        let why = if rate >= cfg.churn_opened_per_sec && opened >= 5 {
            format!(
                "opened {opened} connections in {}s ({rate:.1}/s)",
                cfg.window.as_secs()
            )
        } else if c.open >= cfg.churn_max_open {
            format!("holds {} connections open", c.open)
        } else if closes >= 10 && short * 10 >= closes * 8 {
            format!(
                "{short} of its last {closes} connections lived under {}s",
                cfg.short_lived.as_secs()
            )
        } else {
            continue;
        };
        let mut lifetimes: Vec<_> = c
            .recent_closes
            .iter()
            .map(|(_, l)| l.as_secs_f64())
            .collect();
        lifetimes.sort_by(|a, b| a.total_cmp(b));
        findings.report(
            now,
            Kind::ConnectionChurn,
            format!("{}|{}", key.0, key.1),
            Severity::Warning,
            format!("client {} ({}) {why}; {} open now", key.0, key.1, c.open),
            json!({
                "client_host": key.0.to_string(),
                "client_id": &*key.1,
                "software": software(m, key),
                "open": c.open,
                "opened_in_window": opened,
                "opened_per_sec": (rate * 10.0).round() / 10.0,
                "short_lived_in_window": short,
                "closed_in_window": closes,
                "median_lifetime_s": lifetimes.get(lifetimes.len() / 2),
                "opened_total": c.opened,
            }),
        );
    }
    for (host, (opened, open)) in hosts {
        let rate = opened as f64 / secs;
        if rate >= cfg.churn_host_opened_per_sec {
            findings.report(
                now,
                Kind::ConnectionChurn,
                format!("{host}|*"),
                Severity::Warning,
                format!(
                    "client host {host} opened {opened} connections in {}s ({rate:.1}/s)",
                    cfg.window.as_secs()
                ),
                json!({"client_host": host.to_string(), "open": open, "opened_in_window": opened,
                       "opened_per_sec": (rate * 10.0).round() / 10.0}),
            );
        }
    }
}
