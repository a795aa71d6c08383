//! Fetch loops: a client fetching a partition from an offset it was already served, again and
//! again, while bytes are re-delivered and its group's commit does not move.

use std::collections::BTreeMap;
use std::time::Instant;

use serde_json::json;

use super::super::config::DetectConfig;
use super::super::findings::{Kind, Registry, Severity};
use super::super::model::{Model, TrackKey};
use super::{human, software};

/// `rewinding`: the tracks that went back within the window, from the tick's walk over them.
pub(super) fn fetch_loops(
    m: &Model,
    rewinding: &[TrackKey],
    (cfg, now): (&DetectConfig, Instant),
    findings: &mut Registry,
) {
    for track in rewinding {
        let Some(t) = m.fetches.get(track) else {
            continue;
        };
        let (key, topic, partition) = track;
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
        let group = t.group.clone();
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
                "committed_source": committed.map(|c| c.source.as_str()),
            }),
        );
    }
}
