//! The matcher: every [`ASSIGN_EVERY`] (and at once when the policies change) it walks the
//! live connections, decides which policies match each one from the observer's last snapshot,
//! and sets each connection's handle — off the forwarding path, which only reads the result.
//!
//! Buckets are per (policy, client key): every matching connection of one client through this
//! sidecar shares them. Until a connection's `client.id` is known its key is its host alone;
//! when it becomes known the connection keeps the bucket it had (no second burst). A bucket no connection uses is forgotten once it is full again (its
//! debt paid), or at once beyond [`MAX_BUCKETS`].

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use sluice_config::PolicySpec;

use super::bucket::Bucket;
use super::handle::{Applied, Assignment, PolicyCounters, Rule};
use super::matching::{matches, ConnFacts, Flagged};
use super::Throttle;
use crate::observer::snapshot::Snapshot;
use crate::observer::Observer;

/// How often the matcher re-evaluates which connections each policy matches.
pub const ASSIGN_EVERY: Duration = Duration::from_millis(500);
/// Buckets kept beyond those in use (debts still being paid), at most.
pub const MAX_BUCKETS: usize = 65_536;

/// (policy, client host, `client.id`, bytes rather than requests).
type BucketKey = (Arc<str>, IpAddr, Arc<str>, bool);

/// The matcher's own state.
#[derive(Debug, Default)]
pub struct Assigner {
    rules: HashMap<String, Arc<Rule>>,
    buckets: HashMap<BucketKey, Arc<Bucket>>,
    generation: u64,
}

impl Assigner {
    /// One pass over every live connection.
    pub fn pass(&mut self, throttle: &Throttle, snapshot: &Snapshot, now: Instant) {
        let specs: Vec<PolicySpec> = throttle
            .specs()
            .into_iter()
            .filter(|s| !s.expired(SystemTime::now()))
            .collect();
        throttle.keep_counters(&specs);
        self.rules
            .retain(|name, r| specs.iter().any(|s| s.name == *name && s == &r.spec));
        for s in &specs {
            if !self.rules.contains_key(&s.name) {
                let counters: Arc<PolicyCounters> = throttle.counters(&s.name);
                self.rules
                    .insert(s.name.clone(), Arc::new(Rule::new(s.clone(), counters)));
            }
        }
        self.generation += 1;
        let flagged = Flagged::from_snapshot(snapshot);
        let groups: HashMap<(IpAddr, &str), &str> = snapshot
            .clients
            .iter()
            .filter_map(|c| Some(((c.host, &*c.client_id), &*c.group.as_ref()?.0)))
            .collect();
        for conn in throttle.live() {
            let host = conn.client.ip().to_canonical();
            let seen = snapshot.conns.get(&conn.id);
            let client_id = seen.and_then(|c| c.client_id.clone());
            let group: Option<Arc<str>> = client_id
                .as_deref()
                .and_then(|id| groups.get(&(host, id)))
                .map(|g| Arc::from(*g))
                .or_else(|| seen.and_then(|c| c.groups.first().cloned()));
            let facts = ConnFacts {
                host,
                client_id: client_id.as_deref(),
                group: group.as_deref(),
                principal: seen.and_then(|c| c.principal.as_deref()),
            };
            let principal = facts.principal.map(Arc::from);
            let current = conn.assignment().1;
            let mut applied = Vec::new();
            for spec in &specs {
                if !matches(&spec.matcher, &facts, &flagged) {
                    continue;
                }
                let Some(rule) = self.rules.get(&spec.name) else {
                    continue;
                };
                let id: Arc<str> = client_id.clone().unwrap_or_else(|| Arc::from(""));
                // What the connection used so far under this policy: kept when its client key
                // becomes known (its client.id is learnt), so no second burst is given.
                let before = current
                    .applied
                    .iter()
                    .find(|a| a.rule.spec.name == spec.name);
                let mut bucket = |bytes: bool, rate: Option<u64>| {
                    let rate = rate?;
                    let key = (Arc::from(spec.name.as_str()), host, id.clone(), bytes);
                    let used: Option<Arc<Bucket>> = before.and_then(|a| {
                        if bytes {
                            a.bytes.clone()
                        } else {
                            a.requests.clone()
                        }
                    });
                    let b = self.buckets.entry(key).or_insert_with(|| {
                        used.unwrap_or_else(|| Arc::new(Bucket::new(rate, now)))
                    });
                    if b.rate() != rate.max(1) {
                        *b = Arc::new(Bucket::new(rate, now));
                    }
                    Some(b.clone())
                };
                let action = spec.action;
                applied.push(Applied {
                    rule: rule.clone(),
                    bytes: bucket(true, action.fetch_bytes_per_sec),
                    requests: bucket(false, action.requests_per_sec.map(u64::from)),
                    group: rule.counters.group(group.as_deref().unwrap_or("")),
                });
            }
            let a = Assignment {
                applied,
                client_id,
                group,
                principal,
            };
            if conn.assign(a, self.generation) {
                tracing::debug!(conn = conn.id, client.addr = %conn.client,
                    policies = ?conn.assignment().1.applied.iter().map(|a| a.rule.spec.name.as_str()).collect::<Vec<_>>(),
                    "throttle policies applying to the connection changed");
            }
        }
        let crowded = self.buckets.len() > MAX_BUCKETS;
        self.buckets
            .retain(|_, b| Arc::strong_count(b) > 1 || (!crowded && !b.is_full(now)));
    }

    /// Buckets held (in use or paying off debt).
    pub fn buckets(&self) -> usize {
        self.buckets.len()
    }
}

/// Runs the matcher every [`ASSIGN_EVERY`] and whenever the policies change, until `stop`.
pub async fn run(
    throttle: Arc<Throttle>,
    observer: Arc<Observer>,
    stop: impl std::future::Future<Output = ()>,
) {
    let mut assigner = Assigner::default();
    let mut every = tokio::time::interval(ASSIGN_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    tokio::pin!(stop);
    let mut was_empty = true;
    loop {
        tokio::select! {
            _ = &mut stop => return,
            _ = every.tick() => {}
            _ = throttle.changed.notified() => {}
        }
        let empty = throttle.specs().is_empty();
        if empty && was_empty {
            continue; // no policy now, and none applied at the last pass
        }
        was_empty = empty;
        // Fresh tables are built when asked, and waiting for them blocks: off the workers.
        let o = observer.clone();
        let Ok(snapshot) = tokio::task::spawn_blocking(move || o.fresh_snapshot()).await else {
            continue;
        };
        assigner.pass(&throttle, &snapshot, Instant::now());
    }
}

#[cfg(test)]
mod tests {
    use std::time::SystemTime;

    use sluice_config::policy::{Action, Cidr, Match, Mode};

    use super::*;

    fn spec(name: &str, host: &str, expires: Option<SystemTime>) -> PolicySpec {
        PolicySpec {
            name: name.into(),
            matcher: Match {
                host: Some(Cidr::parse(host).unwrap()),
                ..Match::default()
            },
            action: Action {
                fetch_bytes_per_sec: Some(1000),
                requests_per_sec: Some(10),
                mode: Mode::Enforce,
            },
            expires,
        }
    }

    #[test]
    fn a_pass_engages_matching_connections_and_releases_them() {
        let t = Throttle::new();
        let a = t.register(1, "10.0.0.1:5000".parse().unwrap());
        let b = t.register(2, "10.0.0.1:5001".parse().unwrap());
        let c = t.register(3, "10.9.0.1:5000".parse().unwrap());
        let mut m = Assigner::default();
        let now = Instant::now();
        m.pass(&t, &Snapshot::default(), now);
        assert_eq!(a.engaged(), 0, "no policy yet");
        t.set_file_policies(vec![spec("p", "10.0.0.0/16", None)]);
        m.pass(&t, &Snapshot::default(), now);
        assert_ne!(a.engaged(), 0);
        assert_ne!(b.engaged(), 0);
        assert_eq!(c.engaged(), 0, "outside the CIDR");
        // One client key (host, no client.id known): one pair of buckets for both connections.
        let (ga, aa) = a.assignment();
        let (_, ab) = b.assignment();
        assert_eq!(aa.applied.len(), 1);
        assert!(Arc::ptr_eq(
            aa.applied[0].bytes.as_ref().unwrap(),
            ab.applied[0].bytes.as_ref().unwrap()
        ));
        assert_eq!(m.buckets(), 2);
        // An unchanged pass leaves the assignment (and its generation) alone.
        m.pass(&t, &Snapshot::default(), now);
        assert_eq!(a.assignment().0, ga);
        let st = t.status();
        assert_eq!(st[0].connections.len(), 2);
        drop((aa, ab));
        // Expired: released.
        let past = SystemTime::now() - Duration::from_secs(1);
        t.set_file_policies(vec![spec("p", "10.0.0.0/16", Some(past))]);
        m.pass(&t, &Snapshot::default(), now);
        assert_eq!(a.engaged(), 0);
        assert_eq!(b.engaged(), 0);
        assert!(t.status().is_empty(), "an expired policy is not listed");
        // Unused full buckets are forgotten.
        assert_eq!(m.buckets(), 0);
        drop((a, b, c));
        assert!(t.live().is_empty(), "handles leave with their connections");
    }

    #[test]
    fn a_changed_cap_gets_new_buckets_and_debt_outlives_the_connection() {
        let t = Throttle::new();
        let now = Instant::now();
        let a = t.register(1, "10.0.0.1:5000".parse().unwrap());
        let mut m = Assigner::default();
        t.set_file_policies(vec![spec("p", "10.0.0.1", None)]);
        m.pass(&t, &Snapshot::default(), now);
        let before = a.assignment().1.applied[0].bytes.clone().unwrap();
        before.charge(5000, now);
        drop(a);
        m.pass(&t, &Snapshot::default(), now);
        assert_eq!(
            m.buckets(),
            1,
            "a bucket in debt is kept for the client's next connection"
        );
        let a = t.register(2, "10.0.0.1:5002".parse().unwrap());
        m.pass(&t, &Snapshot::default(), now);
        let again = a.assignment().1.applied[0].bytes.clone().unwrap();
        assert!(Arc::ptr_eq(&before, &again));
        let mut changed = spec("p", "10.0.0.1", None);
        changed.action.fetch_bytes_per_sec = Some(2000);
        t.set_file_policies(vec![changed]);
        m.pass(&t, &Snapshot::default(), now);
        let after = a.assignment().1.applied[0].bytes.clone().unwrap();
        assert_eq!(after.rate(), 2000);
    }
}
