//! The detectors: run once per tick over the model, report findings to the registry.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

use serde_json::json;

use super::config::DetectConfig;
use super::findings::{Kind, Registry, Severity};
use super::model::{ClientKey, GroupIndex, Model, TopicPartition};

fn software(m: &Model, key: &ClientKey) -> Option<String> {
    m.clients
        .get(key)
        .and_then(|c| c.software.as_ref())
        .map(|(n, v)| format!("{n} {v}"))
}

/// Runs every detector.
pub fn run(
    m: &Model,
    index: &GroupIndex,
    cfg: &DetectConfig,
    now: Instant,
    findings: &mut Registry,
) {
    fetch_loops(m, index, cfg, now, findings);
    fetch_without_commit(m, index, cfg, now, findings);
    egress_amplification(m, cfg, findings, now);
    churn(m, cfg, now, findings);
    rebalance_storms(m, cfg, now, findings);
}

fn fetch_loops(
    m: &Model,
    index: &GroupIndex,
    cfg: &DetectConfig,
    now: Instant,
    findings: &mut Registry,
) {
    for ((key, topic, partition), t) in &m.fetches {
        let mut by_offset: BTreeMap<i64, u32> = BTreeMap::new();
        for (_, off) in &t.rewinds {
            *by_offset.entry(*off).or_default() += 1;
        }
        let Some((&offset, &rewinds)) = by_offset.iter().max_by_key(|(_, n)| **n) else {
            continue;
        };
        if rewinds < cfg.loop_min_rewinds {
            continue;
        }
        let (_, again, span) = t.window();
        let secs = span.as_secs_f64().max(1.0);
        let again_rate = again as f64 / secs;
        if again_rate < cfg.min_redelivered_bytes_per_sec {
            continue;
        }
        let group = index.group_for(key, topic, *partition);
        let committed = group.as_ref().and_then(|(g, _)| {
            m.groups
                .get(g)
                .and_then(|g| g.committed.get(&(topic.clone(), *partition)))
        });
        if committed.is_some_and(|c| {
            c.advanced
                .is_some_and(|a| now.duration_since(a) < cfg.window)
        }) {
            continue; // its group is committing progress: not stuck
        }
        let summary = format!(
            "{}:{} ({}) re-fetches {}-{} from offset {} again and again: {} rewinds in {}s, {}/s re-delivered, amplification {:.1}x",
            t.last_addr.ip(), t.last_addr.port(), key.1, topic, partition, offset, rewinds,
            cfg.window.as_secs(), human(again_rate), t.amplification()
        );
        findings.report(
            now,
            Kind::FetchLoop,
            format!("{}|{}|{}|{}", key.0, key.1, topic, partition),
            Severity::Critical,
            summary,
            json!({
                "client_host": key.0.to_string(),
                "client_port": t.last_addr.port(),
                "client_id": &*key.1,
                "software": software(m, key),
                "group": group.as_ref().map(|(g, _)| g.to_string()),
                "group_attribution": group.as_ref().map(|(_, how)| how.as_str()),
                "topic": &**topic,
                "partition": partition,
                "offset": offset,
                "rewinds": rewinds,
                "redelivered_bytes_per_sec": again_rate.round(),
                "amplification": (t.amplification() * 10.0).round() / 10.0,
                "bytes_fetched": t.bytes,
                "bytes_redelivered": t.redelivered,
                "committed_offset": committed.map(|c| c.offset),
            }),
        );
    }
}

fn fetch_without_commit(
    m: &Model,
    index: &GroupIndex,
    cfg: &DetectConfig,
    now: Instant,
    findings: &mut Registry,
) {
    // Per group: the partitions it fetched data from within the window while their
    // committed offset did not move.
    type Stuck = (u64, Vec<(TopicPartition, u64)>, Vec<ClientKey>);
    let mut stuck: HashMap<Arc<str>, Stuck> = HashMap::new();
    for ((key, topic, partition), t) in &m.fetches {
        let (bytes, _, span) = t.window();
        if bytes < cfg.no_commit_min_fetched_bytes || span < cfg.window / 2 {
            continue; // not fetching much, or not for long enough to judge
        }
        let Some((group, _)) = index.group_for(key, topic, *partition) else {
            continue; // no group: nothing to commit to
        };
        let committed = m
            .groups
            .get(&group)
            .and_then(|g| g.committed.get(&(topic.clone(), *partition)));
        if committed.is_some_and(|c| {
            c.advanced
                .is_some_and(|a| now.duration_since(a) < cfg.window)
        }) {
            continue;
        }
        // Everything delivered is committed: a consumer that read a backlog and committed
        // once (its first commit Sluice saw, so never seen to advance) is not stuck.
        if committed.is_some_and(|c| c.offset >= t.delivered_end) {
            continue;
        }
        let e = stuck.entry(group).or_default();
        e.0 += bytes;
        e.1.push(((topic.clone(), *partition), bytes));
        if !e.2.contains(key) {
            e.2.push(key.clone());
        }
    }
    for (group, (bytes, parts, clients)) in stuck {
        let g = m.groups.get(&group);
        let partitions: Vec<_> = parts
            .iter()
            .map(|((t, p), b)| {
                json!({"topic": &**t, "partition": p, "fetched_bytes_in_window": b,
                    "committed_offset": g.and_then(|g| g.committed.get(&(t.clone(), *p))).map(|c| c.offset)})
            })
            .collect();
        findings.report(
            now,
            Kind::FetchWithoutCommit,
            group.to_string(),
            Severity::Warning,
            format!(
                "group {group} fetched {} in {}s from {} partition(s) whose committed offset did not move",
                human(bytes as f64),
                cfg.window.as_secs(),
                parts.len()
            ),
            json!({
                "group": &*group,
                "fetched_bytes_in_window": bytes,
                "window_s": cfg.window.as_secs(),
                "clients": clients.iter().map(|(h, id)| json!({"host": h.to_string(), "client_id": &**id, "software": software(m, &(*h, id.clone()))})).collect::<Vec<_>>(),
                "partitions": partitions,
            }),
        );
    }
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

fn egress_amplification(m: &Model, cfg: &DetectConfig, findings: &mut Registry, now: Instant) {
    let mut per_topic: HashMap<Arc<str>, (u64, u64, f64)> = HashMap::new();
    for ((_, topic, _), t) in &m.fetches {
        let (bytes, again, span) = t.window();
        let e = per_topic.entry(topic.clone()).or_default();
        e.0 += bytes;
        e.1 += again;
        e.2 = e.2.max(span.as_secs_f64());
    }
    for (topic, (bytes, again, secs)) in per_topic {
        let secs = secs.max(1.0);
        let unique = bytes.saturating_sub(again).max(1);
        let amp = bytes as f64 / unique as f64;
        if amp < cfg.amplification_min || (again as f64 / secs) < cfg.min_redelivered_bytes_per_sec
        {
            continue;
        }
        let t = m.topics.get(&topic);
        findings.report(
            now,
            Kind::EgressAmplification,
            topic.to_string(),
            if amp >= 4.0 * cfg.amplification_min { Severity::Critical } else { Severity::Warning },
            format!(
                "topic {topic}: consumers pulled {}/s, {:.1}x what was new to them ({}/s re-delivered)",
                human(bytes as f64 / secs), amp, human(again as f64 / secs)
            ),
            json!({
                "topic": &*topic,
                "bytes_out_per_sec": (bytes as f64 / secs).round(),
                "unique_bytes_out_per_sec": (unique as f64 / secs).round(),
                "redelivered_bytes_per_sec": (again as f64 / secs).round(),
                "amplification": (amp * 10.0).round() / 10.0,
                "bytes_in_total": t.map(|t| t.bytes_in),
                "consuming_groups": t.map(|t| t.groups.len()),
            }),
        );
    }
}

fn churn(m: &Model, cfg: &DetectConfig, now: Instant, findings: &mut Registry) {
    let secs = cfg.window.as_secs_f64().max(1.0);
    let mut hosts: HashMap<IpAddr, (usize, u64)> = HashMap::new();
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

fn rebalance_storms(m: &Model, cfg: &DetectConfig, now: Instant, findings: &mut Registry) {
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
