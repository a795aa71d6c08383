//! Egress amplification: a topic's consumer bytes far above what was new to them.

use std::sync::Arc;
use std::time::Instant;

use serde_json::json;

use super::super::config::DetectConfig;
use super::super::findings::{Kind, Registry, Severity};
use super::super::model::{FastMap, Model, TopicWindow};
use super::human;

/// `windows`: each topic's fetching within the window, from the tick's walk over the tracks.
pub(super) fn egress_amplification(
    m: &Model,
    windows: &FastMap<Arc<str>, TopicWindow>,
    (cfg, now): (&DetectConfig, Instant),
    findings: &mut Registry,
) {
    for (topic, w) in windows {
        let (bytes, again) = (w.bytes, w.again);
        let secs = w.span.as_secs_f64().max(1.0);
        let unique = bytes.saturating_sub(again).max(1);
        let amp = bytes as f64 / unique as f64;
        if amp < cfg.amplification_min || (again as f64 / secs) < cfg.min_redelivered_bytes_per_sec
        {
            continue;
        }
        let t = m.topics.get(topic);
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
                "topic": &**topic,
                "bytes_out_per_sec": (bytes as f64 / secs).round(),
                "unique_bytes_out_per_sec": (unique as f64 / secs).round(),
                "redelivered_bytes_per_sec": (again as f64 / secs).round(),
                "amplification": (amp * 10.0).round() / 10.0,
                "bytes_in_total": t.map(|t| t.bytes_in),
                "consuming_groups": m.groups_reading(topic, now, cfg.window).len(),
            }),
        );
    }
}
