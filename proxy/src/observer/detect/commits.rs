//! Fetch without commit: a group fetching data while its committed offsets stay put.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use serde_json::json;

use super::super::config::DetectConfig;
use super::super::findings::{Kind, Registry, Severity};
use super::super::model::{ClientKey, GroupIndex, Model, TopicPartition};
use super::{human, software};

pub(super) fn fetch_without_commit(
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
