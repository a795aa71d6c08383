//! Throttling: the policies in force ([`Throttle`]), which connections each one holds back,
//! and what it held. The policy file's policies are replaced as a whole on reload; policies
//! added through the admin API live beside them until they expire or are removed.
//!
//! Enforcement (holding a matching connection's traffic to the caps, signalling
//! `throttle_time_ms`) is done by the connection's halves through its per-connection handle;
//! the matcher decides which connections a policy matches.
//!
//! # Layout
//! - this file: [`Throttle`] — the policies, the live connections' handles, the counters.
//! - [`matching`]: whom a policy matches; [`assign`]: the matcher's periodic pass.
//! - [`bucket`]: token buckets that go into debt; [`handle`]: a connection's handle and what
//!   applies to it; [`half`]: what each half does per chunk; [`wire`]: following frames and
//!   finding `throttle_time_ms`.

pub mod assign;
pub mod bucket;
pub mod half;
pub mod handle;
pub mod matching;
pub mod wire;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime};

use dashmap::DashMap;
use serde::Serialize;
use sluice_config::PolicySpec;
use tokio::sync::Notify;

pub use half::ThrottleHalf;
pub use handle::ConnThrottle;
use handle::{Common, PolicyCounters};

/// `throttle.max_hold` until set: the longest one request is held (below clients' 30 s
/// request timeouts).
pub const DEFAULT_MAX_HOLD: Duration = Duration::from_secs(10);

/// Where a policy came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// The policy file (`throttle.policy_file`).
    File,
    /// Added at run time through the admin API.
    Api,
}

/// A policy in force, with what it does now.
#[derive(Debug, Clone, Serialize)]
pub struct PolicyStatus {
    /// The policy.
    #[serde(flatten)]
    pub spec: PolicySpec,
    /// Where it came from.
    pub source: Source,
    /// Connections it currently matches.
    pub connections: Vec<ThrottledConn>,
    /// Bytes held back so far (in dry-run: that would have been).
    pub held_bytes: u64,
    /// Time traffic was held so far, in milliseconds (in dry-run: would have been).
    pub held_ms: u64,
    /// Decisions to hold traffic so far.
    pub decisions: u64,
    /// What it held back, per group of the connections it held ("" when not known).
    pub groups: Vec<GroupHeld>,
}

/// What one policy held back from the connections of one group.
#[derive(Debug, Clone, Serialize)]
pub struct GroupHeld {
    /// Group ("" when not known).
    pub group: String,
    /// Bytes held back (dry-run: would have been).
    pub held_bytes: u64,
    /// Milliseconds held (dry-run: would have been).
    pub held_ms: u64,
}

/// One connection a policy currently matches.
#[derive(Debug, Clone, Serialize)]
pub struct ThrottledConn {
    /// Connection number.
    pub id: u64,
    /// Client address and port.
    pub client: String,
    /// `client.id`, when known.
    pub client_id: Option<String>,
    /// Group, when known.
    pub group: Option<String>,
    /// Authenticated principal, when known.
    pub principal: Option<String>,
}

/// Why a policy could not be removed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RemoveError {
    /// No policy of that name.
    NotFound,
    /// It comes from the policy file: edit the file instead.
    FromFile,
}

/// Why a policy could not be added.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AddError {
    /// A policy of that name is already in force.
    NameTaken,
    /// Already expired.
    Expired,
}

#[derive(Debug, Default)]
struct Policies {
    file: Vec<PolicySpec>,
    api: Vec<PolicySpec>,
}

/// Counts about `throttle_time_ms` on throttled connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct HintCounts {
    /// Fetch responses whose `throttle_time_ms` was raised.
    pub set: u64,
    /// Fetch responses whose field was not in the chunk being written (left alone).
    pub missed: u64,
    /// Fetch requests forgotten beyond the per-connection bound (their responses left alone).
    pub forgotten: u64,
}

/// The policies in force; one per proxy, shared by the reloader, the admin API and every
/// connection.
#[derive(Debug)]
pub struct Throttle {
    policies: RwLock<Arc<Policies>>,
    /// Wakes the matcher when the policies change.
    changed: Notify,
    /// Every live connection's handle (at most `max_connections`).
    conns: DashMap<u64, Arc<ConnThrottle>>,
    /// Per policy name, while the policy exists.
    counters: Mutex<HashMap<String, Arc<PolicyCounters>>>,
    common: Arc<Common>,
}

impl Default for Throttle {
    fn default() -> Throttle {
        let common = Common::default();
        common
            .max_hold_ms
            .store(DEFAULT_MAX_HOLD.as_millis() as u64, Relaxed);
        Throttle {
            policies: RwLock::default(),
            changed: Notify::new(),
            conns: DashMap::new(),
            counters: Mutex::default(),
            common: Arc::new(common),
        }
    }
}

/// A live connection's place among the throttle's connections; leaves when dropped.
#[derive(Debug)]
pub struct Registered {
    throttle: Arc<Throttle>,
    conn: Arc<ConnThrottle>,
}

impl std::ops::Deref for Registered {
    type Target = ConnThrottle;
    fn deref(&self) -> &ConnThrottle {
        &self.conn
    }
}

impl Drop for Registered {
    fn drop(&mut self) {
        self.throttle.conns.remove(&self.conn.id);
    }
}

impl Throttle {
    /// No policies.
    pub fn new() -> Arc<Throttle> {
        Arc::new(Throttle::default())
    }

    /// A new connection's handle, among the live ones until dropped. Policies apply to it from
    /// the matcher's next pass.
    pub fn register(self: &Arc<Self>, id: u64, client: SocketAddr) -> Registered {
        let conn = Arc::new(ConnThrottle::new(id, client, self.common.clone()));
        self.conns.insert(id, conn.clone());
        Registered {
            throttle: self.clone(),
            conn,
        }
    }

    /// The live connections' handles.
    fn live(&self) -> Vec<Arc<ConnThrottle>> {
        self.conns.iter().map(|e| e.value().clone()).collect()
    }

    /// Sets `throttle.max_hold`: the longest one request is held; debt beyond carries over.
    pub fn set_max_hold(&self, d: Duration) {
        self.common
            .max_hold_ms
            .store(d.as_millis().min(u128::from(u64::MAX)) as u64, Relaxed);
    }

    /// `throttle.max_hold` in force.
    pub fn max_hold(&self) -> Duration {
        self.common.max_hold()
    }

    /// What happened to `throttle_time_ms` on throttled connections.
    pub fn hints(&self) -> HintCounts {
        HintCounts {
            set: self.common.hints_set.load(Relaxed),
            missed: self.common.hints_missed.load(Relaxed),
            forgotten: self.common.fetches_forgotten.load(Relaxed),
        }
    }

    /// Every policy (file first), expired ones included.
    fn specs(&self) -> Vec<PolicySpec> {
        let p = self.current();
        p.file.iter().chain(&p.api).cloned().collect()
    }

    /// The counters of the policy named `name`.
    fn counters(&self, name: &str) -> Arc<PolicyCounters> {
        let mut c = self.counters.lock().unwrap_or_else(|e| e.into_inner());
        c.entry(name.to_owned()).or_default().clone()
    }

    /// Forgets the counters of policies no longer in force.
    fn keep_counters(&self, specs: &[PolicySpec]) {
        let mut c = self.counters.lock().unwrap_or_else(|e| e.into_inner());
        c.retain(|name, _| specs.iter().any(|s| s.name == *name));
    }

    /// Runs the matcher (see [`assign`]) until `stop`.
    pub async fn run_matcher(
        self: Arc<Self>,
        observer: Arc<crate::observer::Observer>,
        stop: impl std::future::Future<Output = ()>,
    ) {
        assign::run(self, observer, stop).await
    }

    fn current(&self) -> Arc<Policies> {
        self.policies
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn replace(&self, f: impl FnOnce(&Policies) -> Policies) {
        let mut w = self.policies.write().unwrap_or_else(|e| e.into_inner());
        let next = f(&w);
        *w = Arc::new(next);
        drop(w);
        self.changed.notify_one();
    }

    /// Replaces the policy file's policies (validated) as a whole: at start and on reload.
    /// A run-time policy with the same name as a file policy is dropped.
    pub fn set_file_policies(&self, file: Vec<PolicySpec>) {
        self.replace(|p| Policies {
            api: p
                .api
                .iter()
                .filter(|a| !file.iter().any(|f| f.name == a.name))
                .cloned()
                .collect(),
            file,
        });
    }

    /// Adds a run-time policy.
    /// Run-time policies that expired are dropped first (their names are free again).
    pub fn add(&self, spec: PolicySpec) -> Result<(), AddError> {
        let now = SystemTime::now();
        if spec.expired(now) {
            return Err(AddError::Expired);
        }
        let mut result = Ok(());
        self.replace(|p| {
            let live = |q: &&PolicySpec| !q.expired(now);
            if p.file
                .iter()
                .chain(p.api.iter().filter(live))
                .any(|q| q.name == spec.name)
            {
                result = Err(AddError::NameTaken);
                return Policies {
                    file: p.file.clone(),
                    api: p.api.clone(),
                };
            }
            let mut api: Vec<PolicySpec> = p.api.iter().filter(live).cloned().collect();
            api.push(spec);
            Policies {
                file: p.file.clone(),
                api,
            }
        });
        result
    }

    /// Removes a run-time policy.
    pub fn remove(&self, name: &str) -> Result<(), RemoveError> {
        let mut result = Ok(());
        self.replace(|p| {
            if p.file.iter().any(|q| q.name == name) {
                result = Err(RemoveError::FromFile);
            } else if !p.api.iter().any(|q| q.name == name) {
                result = Err(RemoveError::NotFound);
            }
            Policies {
                file: p.file.clone(),
                api: p.api.iter().filter(|q| q.name != name).cloned().collect(),
            }
        });
        result
    }

    /// Every policy in force (expired ones left out), with what it does now.
    pub fn status(&self) -> Vec<PolicyStatus> {
        let now = SystemTime::now();
        let p = self.current();
        let mut conns: HashMap<&str, Vec<ThrottledConn>> = HashMap::new();
        let live: Vec<_> = self
            .live()
            .into_iter()
            .filter(|c| c.engaged() != 0)
            .map(|c| (c.clone(), c.assignment().1))
            .collect();
        for (c, a) in &live {
            for applied in &a.applied {
                conns
                    .entry(applied.rule.spec.name.as_str())
                    .or_default()
                    .push(ThrottledConn {
                        id: c.id,
                        client: c.client.to_string(),
                        client_id: a.client_id.as_deref().map(str::to_owned),
                        group: a.group.as_deref().map(str::to_owned),
                        principal: a.principal.as_deref().map(str::to_owned),
                    });
            }
        }
        let with = |specs: &[PolicySpec], source| {
            specs
                .iter()
                .filter(|s| !s.expired(now))
                .map(|spec| {
                    let counters = self.counters(&spec.name);
                    let mut connections =
                        conns.get(spec.name.as_str()).cloned().unwrap_or_default();
                    connections.sort_by_key(|c| c.id);
                    let mut groups: Vec<GroupHeld> = counters
                        .groups
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .iter()
                        .map(|(g, c)| GroupHeld {
                            group: g.to_string(),
                            held_bytes: c.held_bytes.load(Relaxed),
                            held_ms: c.held_us.load(Relaxed) / 1000,
                        })
                        .collect();
                    groups.sort_by(|a, b| a.group.cmp(&b.group));
                    PolicyStatus {
                        spec: spec.clone(),
                        source,
                        connections,
                        held_bytes: counters.held_bytes.load(Relaxed),
                        held_ms: counters.held_us.load(Relaxed) / 1000,
                        decisions: counters.decisions.load(Relaxed),
                        groups,
                    }
                })
                .collect::<Vec<_>>()
        };
        let mut out = with(&p.file, Source::File);
        out.extend(with(&p.api, Source::Api));
        out
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use sluice_config::policy::{Action, Match, Mode};

    use super::*;

    fn spec(name: &str, expires: Option<SystemTime>) -> PolicySpec {
        PolicySpec {
            name: name.into(),
            matcher: Match {
                client_id: Some(sluice_config::Glob("x".into())),
                ..Match::default()
            },
            action: Action {
                fetch_bytes_per_sec: Some(1),
                requests_per_sec: None,
                mode: Mode::Enforce,
            },
            expires,
        }
    }

    #[test]
    fn an_expired_run_time_policy_frees_its_name() {
        let t = Throttle::new();
        let past = SystemTime::now() - Duration::from_secs(1);
        // As an admin-added policy is once its expiry passes.
        t.replace(|p| Policies {
            file: p.file.clone(),
            api: vec![spec("tmp", Some(past))],
        });
        assert!(t.status().is_empty());
        t.add(spec("tmp", None)).unwrap();
        assert_eq!(t.status().len(), 1);
        assert_eq!(t.add(spec("tmp", None)), Err(AddError::NameTaken));
    }
}
