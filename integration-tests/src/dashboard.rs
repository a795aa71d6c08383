//! The queries of the shipped Grafana dashboard (`deploy/grafana/sluice-dashboard.json`), with
//! its template variables replaced the way Grafana replaces them, to run against a real
//! Prometheus.

use std::path::{Path, PathBuf};

use serde_json::Value;

/// One query of one panel.
#[derive(Debug, Clone)]
pub struct Query {
    /// The panel's id.
    pub panel: u64,
    /// The panel's title.
    pub title: String,
    /// The target's `refId` (`A`, `B`, ...).
    pub ref_id: String,
    /// The PromQL, template variables still in it.
    pub expr: String,
}

/// The shipped dashboard: `deploy/grafana/sluice-dashboard.json` of this checkout.
pub fn shipped_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/grafana/sluice-dashboard.json")
}

/// Every target of every panel (rows' nested panels included) of `dashboard`, in order.
pub fn queries(dashboard: &Value) -> Vec<Query> {
    fn walk(panels: &Value, out: &mut Vec<Query>) {
        for p in panels.as_array().into_iter().flatten() {
            for t in p["targets"].as_array().into_iter().flatten() {
                if let Some(expr) = t["expr"].as_str() {
                    out.push(Query {
                        panel: p["id"].as_u64().unwrap_or(0),
                        title: p["title"].as_str().unwrap_or("").to_owned(),
                        ref_id: t["refId"].as_str().unwrap_or("").to_owned(),
                        expr: expr.to_owned(),
                    });
                }
            }
            walk(&p["panels"], out);
        }
    }
    let mut out = Vec::new();
    walk(&dashboard["panels"], &mut out);
    out
}

/// A template variable's value as Grafana puts it into a Prometheus query.
#[derive(Debug, Clone)]
pub enum Var {
    /// "All" selected: the variable's `allValue` (`.*` on this dashboard).
    All,
    /// One value selected: regex-escaped (the variables are used with `=~`), as Grafana
    /// does for a multi-value variable, inside a PromQL string (so `\` is doubled).
    One(String),
}

/// `expr` with `$name` / `${name}` of `vars` and `$__rate_interval` replaced. `All` becomes
/// the variable's `allValue` in `dashboard`.
pub fn substitute(
    dashboard: &Value,
    expr: &str,
    vars: &[(&str, Var)],
    rate_interval: &str,
) -> String {
    let mut out = expr
        .replace("${__rate_interval}", rate_interval)
        .replace("$__rate_interval", rate_interval);
    for (name, var) in vars {
        let value = match var {
            Var::All => all_value(dashboard, name),
            Var::One(v) => escape(v),
        };
        out = out
            .replace(&format!("${{{name}}}"), &value)
            .replace(&format!("${name}"), &value);
    }
    out
}

fn all_value(dashboard: &Value, name: &str) -> String {
    dashboard["templating"]["list"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|v| v["name"] == name)
        .and_then(|v| v["allValue"].as_str())
        .unwrap_or(".*")
        .to_owned()
}

/// Regex-escapes `v` as Grafana's Prometheus data source does, for a PromQL string literal.
fn escape(v: &str) -> String {
    let mut out = String::new();
    for c in v.chars() {
        if "\\^$*+?.()|{}[]".contains(c) {
            out.push_str("\\\\");
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn variables_and_rate_interval_are_replaced() {
        let dash = serde_json::json!({
            "templating": {"list": [{"name": "instance", "allValue": ".*"}]},
            "panels": [{"id": 1, "title": "row", "panels": [
                {"id": 2, "title": "p", "targets": [{"refId": "A", "expr": "rate(x{instance=~\"$instance\"}[$__rate_interval])"}]}
            ]}]
        });
        let q = queries(&dash);
        assert_eq!(q.len(), 1);
        assert_eq!((q[0].panel, q[0].ref_id.as_str()), (2, "A"));
        assert_eq!(
            substitute(&dash, &q[0].expr, &[("instance", Var::All)], "4s"),
            "rate(x{instance=~\".*\"}[4s])"
        );
        assert_eq!(
            substitute(
                &dash,
                &q[0].expr,
                &[("instance", Var::One("127.0.0.1:9".into()))],
                "4s"
            ),
            "rate(x{instance=~\"127\\\\.0\\\\.0\\\\.1:9\"}[4s])"
        );
    }

    #[test]
    fn the_shipped_dashboard_has_queries() {
        let dash: Value =
            serde_json::from_str(&std::fs::read_to_string(shipped_path()).unwrap()).unwrap();
        let q = queries(&dash);
        assert!(q.len() > 40, "{}", q.len());
        assert!(q.iter().all(|q| !q.expr.is_empty()));
    }
}
