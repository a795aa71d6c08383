//! `/metrics`: the instruments rendered in the Prometheus text format (0.0.4). Names follow
//! the usual OpenTelemetry → Prometheus translation: dots become underscores, the unit is
//! appended (`By` → `_bytes`, `s` → `_seconds`), counters end in `_total`; attribute keys
//! become labels the same way. The resource becomes `target_info`.

use std::fmt::Write;

use opentelemetry::{KeyValue, Value};
use opentelemetry_sdk::metrics::data::{AggregatedMetrics, Metric, MetricData, ResourceMetrics};
use opentelemetry_sdk::Resource;

use crate::logging::{needs_escape, Escaped};

/// A Prometheus name from an OpenTelemetry one.
pub fn sanitize(name: &str) -> String {
    let mut s: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if s.starts_with(|c: char| c.is_ascii_digit()) {
        s.insert(0, '_');
    }
    s
}

fn family_name(m: &Metric, counter: bool) -> String {
    let mut n = sanitize(m.name());
    let suffix = match m.unit() {
        "By" => "_bytes",
        "s" => "_seconds",
        _ => "",
    };
    if !suffix.is_empty() && !n.ends_with(suffix) {
        n.push_str(suffix);
    }
    if counter {
        n.push_str("_total");
    }
    n
}

/// A label value as the format requires (`\\`, `\"`, `\n`). Other control characters are
/// legal in a label value but would reach whoever reads `/metrics` on a terminal (a hostile
/// `client.id`): they are written as the text `\x1b` or `\u{9b}`, which Prometheus reads as
/// that text.
fn escape(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c if needs_escape(c) => out.push_str(&Escaped(c).to_string().replace('\\', "\\\\")),
            c => out.push(c),
        }
    }
    out
}

fn value_text(v: &Value) -> String {
    match v {
        Value::Bool(b) => b.to_string(),
        other => other.as_str().into_owned(),
    }
}

fn labels<'a>(attrs: impl Iterator<Item = &'a KeyValue>, extra: Option<(&str, String)>) -> String {
    let mut parts: Vec<String> = attrs
        .map(|kv| {
            format!(
                "{}=\"{}\"",
                sanitize(kv.key.as_str()),
                escape(&value_text(&kv.value))
            )
        })
        .collect();
    // One order for every line of a family (label names are unique, so this sorts by name).
    parts.sort_unstable();
    if let Some((k, v)) = extra {
        parts.push(format!("{k}=\"{v}\""));
    }
    if parts.is_empty() {
        String::new()
    } else {
        format!("{{{}}}", parts.join(","))
    }
}

fn number(v: f64) -> String {
    if v.is_infinite() {
        if v > 0.0 { "+Inf" } else { "-Inf" }.to_owned()
    } else {
        format!("{v}")
    }
}

trait AsF64: Copy {
    fn f(self) -> f64;
}
impl AsF64 for f64 {
    fn f(self) -> f64 {
        self
    }
}
impl AsF64 for u64 {
    fn f(self) -> f64 {
        self as f64
    }
}
impl AsF64 for i64 {
    fn f(self) -> f64 {
        self as f64
    }
}

/// A counter or gauge family: its header and one line per point.
fn render_points<'a, T: AsF64>(
    out: &mut String,
    m: &Metric,
    counter: bool,
    kind: &str,
    points: impl Iterator<Item = (impl Iterator<Item = &'a KeyValue>, T)>,
) {
    let name = family_name(m, counter);
    header(out, &name, m.description(), kind);
    for (attrs, v) in points {
        let _ = writeln!(out, "{name}{} {}", labels(attrs, None), number(v.f()));
    }
}

fn render_data<T: AsF64>(out: &mut String, m: &Metric, data: &MetricData<T>) {
    match data {
        MetricData::Sum(sum) => {
            let counter = sum.is_monotonic();
            let kind = if counter { "counter" } else { "gauge" };
            let points = sum.data_points().map(|p| (p.attributes(), p.value()));
            render_points(out, m, counter, kind, points);
        }
        MetricData::Gauge(g) => {
            let points = g.data_points().map(|p| (p.attributes(), p.value()));
            render_points(out, m, false, "gauge", points);
        }
        MetricData::Histogram(h) => {
            let name = family_name(m, false);
            header(out, &name, m.description(), "histogram");
            for p in h.data_points() {
                let mut cumulative = 0u64;
                let bounds: Vec<f64> = p.bounds().collect();
                for (i, n) in p.bucket_counts().enumerate() {
                    cumulative += n;
                    let le = bounds.get(i).copied().unwrap_or(f64::INFINITY);
                    let _ = writeln!(
                        out,
                        "{name}_bucket{} {cumulative}",
                        labels(p.attributes(), Some(("le", number(le))))
                    );
                }
                let l = labels(p.attributes(), None);
                let _ = writeln!(out, "{name}_sum{l} {}", number(p.sum().f()));
                let _ = writeln!(out, "{name}_count{l} {}", p.count());
            }
        }
        MetricData::ExponentialHistogram(_) => {} // not used by Sluice
    }
}

fn header(out: &mut String, name: &str, help: &str, kind: &str) {
    let _ = writeln!(
        out,
        "# HELP {name} {}",
        help.replace('\\', "\\\\").replace('\n', "\\n")
    );
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

fn target_info(out: &mut String, resource: &Resource) {
    let mut attrs: Vec<KeyValue> = resource
        .iter()
        .map(|(k, v)| KeyValue::new(k.clone(), v.clone()))
        .collect();
    attrs.sort_by(|a, b| a.key.as_str().cmp(b.key.as_str()));
    header(
        out,
        "target_info",
        "Target metadata (the OpenTelemetry resource)",
        "gauge",
    );
    let _ = writeln!(out, "target_info{} 1", labels(attrs.iter(), None));
}

/// Renders one collection.
pub fn render(rm: &ResourceMetrics) -> String {
    let mut out = String::new();
    target_info(&mut out, rm.resource());
    let mut metrics: Vec<&Metric> = rm.scope_metrics().flat_map(|s| s.metrics()).collect();
    metrics.sort_by_key(|m| m.name());
    for m in metrics {
        match m.data() {
            AggregatedMetrics::F64(d) => render_data(&mut out, m, d),
            AggregatedMetrics::U64(d) => render_data(&mut out, m, d),
            AggregatedMetrics::I64(d) => render_data(&mut out, m, d),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_labels_follow_the_prometheus_translation() {
        assert_eq!(sanitize("sluice.client.bytes"), "sluice_client_bytes");
        assert_eq!(sanitize("messaging.client.id"), "messaging_client_id");
        assert_eq!(sanitize("9lives"), "_9lives");
        assert_eq!(escape("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
        // Other controls never reach the page raw; Prometheus reads back the text `\x1b[2J`.
        assert_eq!(escape("e\x1b[2J\u{9b}\r"), r"e\\x1b[2J\\u{9b}\\r");
        assert_eq!(number(f64::INFINITY), "+Inf");
        assert_eq!(number(0.25), "0.25");
        assert_eq!(number(3.0), "3");
    }
}
