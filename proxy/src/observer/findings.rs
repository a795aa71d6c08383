//! Findings: what the detectors report. Each has a start, a last-seen time, a severity and its
//! evidence; one that is not reported again for `clear_after` is cleared and kept among the
//! recently cleared.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use serde_json::{json, Value};

use super::model::ClientKey;

/// Recently cleared findings kept.
pub const MAX_CLEARED: usize = 200;

/// What kind of misbehaviour.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    /// A consumer re-fetching the same offsets again and again.
    FetchLoop,
    /// A group fetching data while its committed offsets stay put.
    FetchWithoutCommit,
    /// A topic's consumer egress far above what was delivered for the first time.
    EgressAmplification,
    /// A client opening connections at a high rate, holding too many, or mostly short-lived.
    ConnectionChurn,
    /// A group rejoining over and over.
    RebalanceStorm,
}

impl Kind {
    /// Stable name used in the API, logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::FetchLoop => "fetch_loop",
            Kind::FetchWithoutCommit => "fetch_without_commit",
            Kind::EgressAmplification => "egress_amplification",
            Kind::ConnectionChurn => "connection_churn",
            Kind::RebalanceStorm => "rebalance_storm",
        }
    }
}

/// How bad.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    /// Worth a look.
    Warning,
    /// Costing the cluster now.
    Critical,
}

impl Severity {
    /// As shown in the API, metrics and spans.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Warning => "warning",
            Severity::Critical => "critical",
        }
    }
}

/// One finding.
#[derive(Debug, Clone)]
pub struct Finding {
    /// Kind.
    pub kind: Kind,
    /// What it is about, e.g. `10.0.3.84|consumer-billing-1|orders|0`.
    pub key: String,
    /// Severity.
    pub severity: Severity,
    /// One line for humans.
    pub summary: String,
    /// Evidence (latest).
    pub evidence: Value,
    /// First reported.
    pub started: Instant,
    /// Last reported.
    pub last_seen: Instant,
    /// When it cleared.
    pub cleared: Option<Instant>,
}

fn wall(now: Instant, at: Instant) -> String {
    let t = SystemTime::now() - now.saturating_duration_since(at);
    humantime::format_rfc3339_millis(t).to_string()
}

impl Finding {
    /// As JSON for the admin API.
    pub fn to_json(&self, now: Instant) -> Value {
        json!({
            "kind": self.kind.as_str(),
            "key": self.key,
            "severity": self.severity.as_str(),
            "state": if self.cleared.is_some() { "cleared" } else { "active" },
            "summary": self.summary,
            "started": wall(now, self.started),
            "last_seen": wall(now, self.last_seen),
            "cleared": self.cleared.map(|c| wall(now, c)),
            "duration_s": self.last_seen.duration_since(self.started).as_secs_f64(),
            "evidence": self.evidence,
        })
    }
}

/// Active and recently cleared findings.
#[derive(Debug, Default)]
pub struct Registry {
    active: BTreeMap<(Kind, String), Finding>,
    cleared: VecDeque<Finding>,
    raised: BTreeMap<Kind, u64>,
    /// The principal of each client key that has one: a finding naming the client names it.
    principals: HashMap<ClientKey, Arc<str>>,
}

/// Distinct principals a finding's summary lists (its evidence names each client's).
const MAX_SUMMARY_PRINCIPALS: usize = 4;

impl Registry {
    /// The principals of the client keys that have one, for the findings reported next.
    pub fn set_principals(&mut self, principals: HashMap<ClientKey, Arc<str>>) {
        self.principals = principals;
    }

    /// Adds `principal` to the evidence of each client it names (the finding's own client,
    /// and each of `clients`) that has one, and the principals to the summary.
    fn name_principals(&self, summary: &mut String, evidence: &mut Value) {
        if self.principals.is_empty() {
            return;
        }
        let lookup = |v: &Value, host_keys: &[&str]| -> Option<Arc<str>> {
            let id = v.get("client_id")?.as_str()?;
            let host = host_keys.iter().find_map(|k| v.get(*k)?.as_str())?;
            let host: IpAddr = host.parse().ok()?;
            self.principals.get(&(host, Arc::from(id))).cloned()
        };
        let mut named = BTreeSet::new();
        if let Some(p) = lookup(evidence, &["client_host", "host"]) {
            evidence["principal"] = Value::from(&*p);
            named.insert(p);
        }
        if let Some(Value::Array(clients)) = evidence.get_mut("clients") {
            for c in clients.iter_mut() {
                if let Some(p) = lookup(c, &["host", "client_host"]) {
                    c["principal"] = Value::from(&*p);
                    named.insert(p);
                }
            }
        }
        if named.is_empty() {
            return;
        }
        if let (Some(only), 1, None) = (named.first(), named.len(), evidence.get("principal")) {
            // Every client it names authenticated as one principal: the finding's own.
            evidence["principal"] = Value::from(&**only);
        }
        let list: Vec<&str> = named
            .iter()
            .take(MAX_SUMMARY_PRINCIPALS)
            .map(|p| &**p)
            .collect();
        let more = named.len().saturating_sub(MAX_SUMMARY_PRINCIPALS);
        let word = if named.len() == 1 {
            "principal"
        } else {
            "principals"
        };
        summary.push_str(&format!(" ({word} {}", list.join(", ")));
        if more > 0 {
            summary.push_str(&format!(" and {more} more"));
        }
        summary.push(')');
    }

    /// Reports (or re-reports) a finding.
    pub fn report(
        &mut self,
        now: Instant,
        kind: Kind,
        key: String,
        severity: Severity,
        mut summary: String,
        mut evidence: Value,
    ) {
        self.name_principals(&mut summary, &mut evidence);
        match self.active.get_mut(&(kind, key.clone())) {
            Some(f) => {
                f.last_seen = now;
                f.severity = f.severity.max(severity);
                f.summary = summary;
                f.evidence = evidence;
            }
            None => {
                *self.raised.entry(kind).or_default() += 1;
                tracing::warn!(finding = kind.as_str(), key = %key, %summary, evidence = %evidence, "finding raised");
                self.active.insert(
                    (kind, key.clone()),
                    Finding {
                        kind,
                        key,
                        severity,
                        summary,
                        evidence,
                        started: now,
                        last_seen: now,
                        cleared: None,
                    },
                );
            }
        }
    }

    /// Clears findings not reported for `clear_after`.
    pub fn sweep(&mut self, now: Instant, clear_after: Duration) {
        let stale: Vec<_> = self
            .active
            .iter()
            .filter(|(_, f)| now.duration_since(f.last_seen) >= clear_after)
            .map(|(k, _)| k.clone())
            .collect();
        for k in stale {
            if let Some(mut f) = self.active.remove(&k) {
                f.cleared = Some(now);
                tracing::info!(finding = f.kind.as_str(), key = %f.key,
                    lasted_s = f.last_seen.duration_since(f.started).as_secs(), "finding cleared");
                if self.cleared.len() >= MAX_CLEARED {
                    self.cleared.pop_front();
                }
                self.cleared.push_back(f);
            }
        }
    }

    /// Active findings.
    pub fn active(&self) -> impl Iterator<Item = &Finding> {
        self.active.values()
    }

    /// Findings raised in all, by kind.
    pub fn raised(&self) -> impl Iterator<Item = (Kind, u64)> + '_ {
        self.raised.iter().map(|(k, n)| (*k, *n))
    }

    /// Recently cleared findings, oldest first.
    pub fn cleared(&self) -> impl DoubleEndedIterator<Item = &Finding> {
        self.cleared.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::logging::{logged, needs_escape};

    #[test]
    fn a_finding_names_the_principal_of_each_client_it_names() {
        let mut reg = Registry::default();
        let host: IpAddr = "10.0.0.7".parse().unwrap();
        reg.set_principals(HashMap::from([(
            (host, Arc::from("billing-1")),
            Arc::from("svc-billing"),
        )]));
        let now = Instant::now();
        reg.report(
            now,
            Kind::FetchWithoutCommit,
            "billing".into(),
            Severity::Warning,
            "group billing fetched 1.0 MiB".into(),
            json!({"group": "billing", "clients": [
                {"host": "10.0.0.7", "client_id": "billing-1"},
                {"host": "10.0.0.8", "client_id": "billing-2"},
            ]}),
        );
        reg.report(
            now,
            Kind::FetchLoop,
            "k".into(),
            Severity::Warning,
            "loop".into(),
            json!({"client_host": "10.0.0.7", "client_id": "billing-1"}),
        );
        reg.report(
            now,
            Kind::FetchLoop,
            "other".into(),
            Severity::Warning,
            "loop".into(),
            json!({"client_host": "10.0.0.7", "client_id": "billing-9"}),
        );
        let f: Vec<&Finding> = reg.active().collect();
        let by = |key: &str| f.iter().find(|f| f.key == key).unwrap();
        let group = by("billing");
        assert_eq!(
            group.summary,
            "group billing fetched 1.0 MiB (principal svc-billing)"
        );
        assert_eq!(group.evidence["clients"][0]["principal"], "svc-billing");
        assert_eq!(
            group.evidence["principal"], "svc-billing",
            "its clients' one principal"
        );
        assert!(group.evidence["clients"][1].get("principal").is_none());
        assert_eq!(by("k").evidence["principal"], "svc-billing");
        assert_eq!(by("k").summary, "loop (principal svc-billing)");
        assert!(by("other").evidence.get("principal").is_none());
        assert_eq!(by("other").summary, "loop");
    }

    #[test]
    fn a_finding_about_a_hostile_client_is_logged_on_escaped_lines() {
        let evil = "evil\nlevel=ERROR forged\x1b[2J\u{9b}31m";
        let shown = r"evil\nlevel=ERROR forged\x1b[2J\u{9b}31m";
        let text = logged(|| {
            let mut reg = Registry::default();
            let now = Instant::now();
            reg.report(
                now,
                Kind::ConnectionChurn,
                format!("10.0.0.1|{evil}"),
                Severity::Warning,
                format!("client 10.0.0.1 ({evil}) holds 60 connections open"),
                json!({ "client_id": evil }),
            );
            reg.sweep(now + Duration::from_secs(60), Duration::from_secs(1));
        });
        // Raised, then cleared: two lines, neither forged nor carrying a control character.
        assert_eq!(text.lines().count(), 2, "{text}");
        for line in text.lines() {
            assert!(!line.chars().any(needs_escape), "{line:?}");
            assert!(line.contains(shown), "{line}");
        }
    }
}
