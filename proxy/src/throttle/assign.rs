//! The matcher: every [`ASSIGN_EVERY`] (and at once when the policies change) it walks the
//! live connections, decides which policies match each one from the observer's last snapshot,
//! and sets each connection's handle — off the forwarding path, which only reads the result.
//!
//! Buckets are per (policy, client key): every matching connection of one client through this
//! sidecar shares them. A bucket no connection uses is forgotten once it is full again (its
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
            };
            let mut applied = Vec::new();
            for spec in &specs {
                if !matches(&spec.matcher, &facts, &flagged) {
                    continue;
                }
                let Some(rule) = self.rules.get(&spec.name) else {
                    continue;
                };
                let id: Arc<str> = client_id.clone().unwrap_or_else(|| Arc::from(""));
                let mut bucket = |bytes: bool, rate: Option<u64>| {
                    let rate = rate?;
                    let key = (Arc::from(spec.name.as_str()), host, id.clone(), bytes);
                    let b = self
                        .buckets
                        .entry(key)
                        .or_insert_with(|| Arc::new(Bucket::new(rate, now)));
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
        assigner.pass(&throttle, &observer.snapshot(), Instant::now());
    }
}
