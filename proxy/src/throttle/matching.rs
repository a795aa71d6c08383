//! Whom a policy matches: a connection's facts (client address, `client.id`, group,
//! authenticated principal) as the observer knows them, and the client keys and groups each
//! finding kind currently names.
//!
//! Every criterion a policy gives must hold. A `principal` criterion matches a connection whose
//! principal (a SASL name the broker accepted, or the TLS client certificate's subject) matches
//! the glob as is (`alice`) or in Kafka's form (`User:alice`); a connection without one does
//! not match it.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::sync::Arc;

use serde_json::Value;
use sluice_config::policy::Match;

use crate::observer::snapshot::{FindingPoint, Snapshot};

/// What is known about one connection.
#[derive(Debug, Clone, Copy)]
pub struct ConnFacts<'a> {
    /// Client address (canonical: an IPv4 client on an IPv6 socket is its IPv4 address).
    pub host: IpAddr,
    /// `client.id`, once the connection's first request was seen.
    pub client_id: Option<&'a str>,
    /// The group its client key belongs to, when known.
    pub group: Option<&'a str>,
    /// Its authenticated principal, when known.
    pub principal: Option<&'a str>,
}

/// The client keys, hosts and groups active findings name, by finding kind.
#[derive(Debug, Default)]
pub struct Flagged {
    by_kind: HashMap<&'static str, Named>,
}

#[derive(Debug, Default)]
struct Named {
    /// `(host, client.id)`; a finding naming a host without a `client.id` names the host.
    clients: HashSet<(IpAddr, Arc<str>)>,
    hosts: HashSet<IpAddr>,
    groups: HashSet<Arc<str>>,
}

impl Flagged {
    /// What the snapshot's active findings name.
    pub fn from_snapshot(s: &Snapshot) -> Flagged {
        let mut out = Flagged::default();
        for f in &s.active {
            let p = FindingPoint::of(f);
            let named = out.by_kind.entry(p.kind).or_default();
            let mut name_client = |host: &str, id: &str| {
                if let Ok(h) = host.parse::<IpAddr>() {
                    let h = h.to_canonical();
                    if id.is_empty() {
                        named.hosts.insert(h);
                    } else {
                        named.clients.insert((h, Arc::from(id)));
                    }
                }
            };
            name_client(&p.host, &p.client_id);
            if let Some(Value::Array(cs)) = f.evidence.get("clients") {
                for c in cs {
                    let field = |k: &str| c.get(k).and_then(Value::as_str).unwrap_or("");
                    name_client(field("host"), field("client_id"));
                }
            }
            if !p.group.is_empty() {
                named.groups.insert(Arc::from(p.group.as_str()));
            }
        }
        out
    }

    /// Whether an active finding of `kind` names this connection's client key, host or group.
    pub fn names(&self, kind: &str, c: &ConnFacts<'_>) -> bool {
        let Some(n) = self.by_kind.get(kind) else {
            return false;
        };
        n.hosts.contains(&c.host)
            || c.client_id
                .is_some_and(|id| n.clients.contains(&(c.host, Arc::from(id))))
            || c.group.is_some_and(|g| n.groups.contains(g))
    }
}

/// Whether a connection with these facts matches every criterion of `m`.
pub fn matches(m: &Match, c: &ConnFacts<'_>, flagged: &Flagged) -> bool {
    if m.is_empty() {
        return false;
    }
    let glob = |g: &Option<sluice_config::policy::Glob>, v: Option<&str>| match g {
        None => true,
        Some(g) => v.is_some_and(|v| g.matches(v)),
    };
    glob(&m.group, c.group)
        && glob(&m.client_id, c.client_id)
        && m.host.is_none_or(|cidr| cidr.contains(c.host))
        && m.principal.as_ref().is_none_or(|g| {
            c.principal
                .is_some_and(|p| g.matches(p) || g.matches(&format!("User:{p}")))
        })
        && m.finding.as_deref().is_none_or(|k| flagged.names(k, c))
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use serde_json::json;
    use sluice_config::policy::{Cidr, Glob};

    use super::*;
    use crate::observer::findings::{Finding, Kind, Severity};

    fn facts<'a>(host: &str, id: Option<&'a str>, group: Option<&'a str>) -> ConnFacts<'a> {
        ConnFacts {
            host: host.parse().unwrap(),
            client_id: id,
            group,
            principal: None,
        }
    }

    fn finding(kind: Kind, evidence: Value) -> Finding {
        let now = Instant::now();
        Finding {
            kind,
            key: String::new(),
            severity: Severity::Warning,
            summary: String::new(),
            evidence,
            started: now,
            last_seen: now,
            cleared: None,
        }
    }

    #[test]
    fn every_criterion_must_hold() {
        let none = Flagged::default();
        let m = Match {
            group: Some(Glob("orders-*".into())),
            client_id: Some(Glob("legacy".into())),
            host: Some(Cidr::parse("10.0.0.0/8").unwrap()),
            ..Match::default()
        };
        assert!(matches(
            &m,
            &facts("10.1.2.3", Some("legacy"), Some("orders-eu")),
            &none
        ));
        assert!(!matches(
            &m,
            &facts("11.1.2.3", Some("legacy"), Some("orders-eu")),
            &none
        ));
        assert!(!matches(
            &m,
            &facts("10.1.2.3", Some("other"), Some("orders-eu")),
            &none
        ));
        assert!(!matches(
            &m,
            &facts("10.1.2.3", Some("legacy"), Some("billing")),
            &none
        ));
        assert!(
            !matches(&m, &facts("10.1.2.3", Some("legacy"), None), &none),
            "an unknown group does not match a group criterion"
        );
        assert!(!matches(
            &m,
            &facts("10.1.2.3", None, Some("orders-eu")),
            &none
        ));
    }

    #[test]
    fn host_alone_matches_before_anything_else_is_known() {
        let m = Match {
            host: Some(Cidr::parse("127.0.0.1").unwrap()),
            ..Match::default()
        };
        assert!(matches(
            &m,
            &facts("127.0.0.1", None, None),
            &Flagged::default()
        ));
        assert!(matches(
            &m,
            &facts("::ffff:127.0.0.1", None, None),
            &Flagged::default()
        ));
    }

    #[test]
    fn principal_matches_the_name_or_its_kafka_form() {
        let none = Flagged::default();
        let as_ = |p: Option<&'static str>| ConnFacts {
            principal: p,
            ..facts("10.0.0.1", Some("a"), Some("g"))
        };
        let by = |g: &str| Match {
            principal: Some(Glob(g.into())),
            ..Match::default()
        };
        assert!(matches(&by("svc-*"), &as_(Some("svc-billing")), &none));
        assert!(matches(
            &by("User:svc-billing"),
            &as_(Some("svc-billing")),
            &none
        ));
        assert!(matches(
            &by("User:CN=app-1,*"),
            &as_(Some("CN=app-1,O=payments")),
            &none
        ));
        assert!(!matches(&by("svc-*"), &as_(Some("alice")), &none));
        assert!(!matches(&by("User:svc-*"), &as_(Some("alice")), &none));
        assert!(
            !matches(&by("*"), &as_(None), &none),
            "no principal does not match a principal criterion"
        );
        // With another criterion: both must hold.
        let both = Match {
            client_id: Some(Glob("other".into())),
            ..by("svc-*")
        };
        assert!(!matches(&both, &as_(Some("svc-billing")), &none));
    }

    #[test]
    fn empty_matches_nothing() {
        assert!(!matches(
            &Match::default(),
            &facts("10.0.0.1", None, None),
            &Flagged::default()
        ));
    }

    #[test]
    fn finding_kind_names_client_keys_hosts_and_groups() {
        let snapshot = Snapshot {
            active: vec![
                finding(
                    Kind::FetchLoop,
                    json!({"client_host": "10.0.0.1", "client_id": "looper", "group": "g1"}),
                ),
                finding(Kind::ConnectionChurn, json!({"host": "10.0.0.9"})),
                finding(
                    Kind::FetchWithoutCommit,
                    json!({"group": "g2", "clients": [{"host": "10.0.0.5", "client_id": "c5"}]}),
                ),
            ],
            ..Snapshot::default()
        };
        let flagged = Flagged::from_snapshot(&snapshot);
        let by = |kind: &str| Match {
            finding: Some(kind.into()),
            ..Match::default()
        };
        let loop_ = by("fetch_loop");
        assert!(matches(
            &loop_,
            &facts("10.0.0.1", Some("looper"), None),
            &flagged
        ));
        assert!(!matches(
            &loop_,
            &facts("10.0.0.1", Some("other"), None),
            &flagged
        ));
        assert!(
            matches(&loop_, &facts("10.0.0.7", Some("x"), Some("g1")), &flagged),
            "the finding's group names its members"
        );
        let churn = by("connection_churn");
        assert!(matches(
            &churn,
            &facts("10.0.0.9", Some("any"), None),
            &flagged
        ));
        assert!(!matches(
            &churn,
            &facts("10.0.0.1", Some("looper"), None),
            &flagged
        ));
        let fwc = by("fetch_without_commit");
        assert!(matches(
            &fwc,
            &facts("10.0.0.5", Some("c5"), None),
            &flagged
        ));
        assert!(matches(
            &fwc,
            &facts("10.0.0.6", Some("c6"), Some("g2")),
            &flagged
        ));
        assert!(!matches(
            &by("rebalance_storm"),
            &facts("10.0.0.1", Some("looper"), Some("g1")),
            &flagged
        ));
        // A finding kind together with another criterion: both must hold.
        let both = Match {
            finding: Some("fetch_loop".into()),
            client_id: Some(Glob("nope".into())),
            ..Match::default()
        };
        assert!(!matches(
            &both,
            &facts("10.0.0.1", Some("looper"), None),
            &flagged
        ));
    }
}
