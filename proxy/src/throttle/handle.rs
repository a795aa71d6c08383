//! A connection's throttle handle, shared by its two halves and set by the matcher
//! ([`super::assign`]): which policies apply to it now, with their buckets and counters.
//!
//! Cost when nothing applies: one relaxed load of [`ConnThrottle::engaged`] per chunk. A
//! half keeps the assignment it last saw with its generation and takes the lock only when the
//! generation changed.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sluice_config::policy::{Mode, PolicySpec};

use super::bucket::Bucket;

/// Fetch requests remembered per throttled connection (correlation id, version) until their
/// response: clients keep one Fetch in flight per connection; beyond, the oldest is forgotten
/// (its response keeps the broker's `throttle_time_ms`).
pub const MAX_TRACKED_FETCHES: usize = 64;
/// Groups a policy keeps counts for; the others are counted under "".
pub const MAX_GROUPS_PER_POLICY: usize = 256;
/// At most one log line per policy this often (with how many were left out).
pub const LOG_EVERY: Duration = Duration::from_secs(10);

/// Counters shared by every connection and the admin API.
#[derive(Debug, Default)]
pub struct Common {
    /// `throttle.max_hold`, in milliseconds.
    pub max_hold_ms: AtomicU64,
    /// Fetch responses whose `throttle_time_ms` was raised.
    pub hints_set: AtomicU64,
    /// Fetch responses on a throttled connection whose `throttle_time_ms` was not in the
    /// chunk being written (split across reads), or could not be found: left alone.
    pub hints_missed: AtomicU64,
    /// Fetch requests forgotten at [`MAX_TRACKED_FETCHES`].
    pub fetches_forgotten: AtomicU64,
}

impl Common {
    /// `throttle.max_hold`.
    pub fn max_hold(&self) -> Duration {
        Duration::from_millis(self.max_hold_ms.load(Relaxed))
    }
}

/// What one policy held back (dry-run: would have), in all and per group.
#[derive(Debug, Default)]
pub struct PolicyCounters {
    /// Response bytes sent beyond the cap (the debt holds pay back).
    pub held_bytes: AtomicU64,
    /// Time held, microseconds.
    pub held_us: AtomicU64,
    /// Holds.
    pub decisions: AtomicU64,
    /// Per group ("" when not known).
    pub groups: Mutex<HashMap<Arc<str>, Arc<GroupCounters>>>,
}

impl PolicyCounters {
    /// The counters of `group` (bounded: beyond [`MAX_GROUPS_PER_POLICY`], those of "").
    pub fn group(&self, group: &str) -> Arc<GroupCounters> {
        let mut g = self.groups.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(c) = g.get(group) {
            return c.clone();
        }
        let key: Arc<str> = if g.len() < MAX_GROUPS_PER_POLICY {
            Arc::from(group)
        } else {
            Arc::from("")
        };
        g.entry(key).or_default().clone()
    }
}

/// What one policy held back from one group.
#[derive(Debug, Default)]
pub struct GroupCounters {
    /// Bytes beyond the cap.
    pub held_bytes: AtomicU64,
    /// Microseconds held.
    pub held_us: AtomicU64,
}

/// A policy as the connections see it.
#[derive(Debug)]
pub struct Rule {
    /// The policy.
    pub spec: PolicySpec,
    /// Its counters (kept while the policy exists).
    pub counters: Arc<PolicyCounters>,
    /// When it last logged, and holds since.
    log: Mutex<(Option<Instant>, u64)>,
}

impl Rule {
    /// A rule for `spec` counting into `counters`.
    pub fn new(spec: PolicySpec, counters: Arc<PolicyCounters>) -> Rule {
        Rule {
            spec,
            counters,
            log: Mutex::new((None, 0)),
        }
    }

    fn dry_run(&self) -> bool {
        self.spec.action.mode == Mode::DryRun
    }
}

/// One policy applied to one connection: its client key's buckets.
#[derive(Debug, Clone)]
pub struct Applied {
    /// The policy.
    pub rule: Arc<Rule>,
    /// Response bytes per second, shared by the client key's connections.
    pub bytes: Option<Arc<Bucket>>,
    /// Request frames per second, likewise.
    pub requests: Option<Arc<Bucket>>,
    /// Where its holds are counted for the connection's group.
    pub group: Arc<GroupCounters>,
}

impl PartialEq for Applied {
    fn eq(&self, o: &Applied) -> bool {
        let same = |a: &Option<Arc<Bucket>>, b: &Option<Arc<Bucket>>| match (a, b) {
            (Some(a), Some(b)) => Arc::ptr_eq(a, b),
            (None, None) => true,
            _ => false,
        };
        Arc::ptr_eq(&self.rule, &o.rule)
            && same(&self.bytes, &o.bytes)
            && same(&self.requests, &o.requests)
            && Arc::ptr_eq(&self.group, &o.group)
    }
}

/// The policies applying to a connection, and who it is (for logs and the admin API).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Assignment {
    /// Matching policies.
    pub applied: Vec<Applied>,
    /// `client.id`, when known.
    pub client_id: Option<Arc<str>>,
    /// Group, when known.
    pub group: Option<Arc<str>>,
    /// Authenticated principal, when known.
    pub principal: Option<Arc<str>>,
}

/// How long to hold, and which enforcing policies asked for it.
#[derive(Debug)]
pub struct Hold {
    /// The longest hold any enforcing policy asks (at most `throttle.max_hold`).
    pub wait: Duration,
    waits: Vec<(usize, Duration)>,
}

impl Assignment {
    /// True when some policy enforces (holds and rewrites), not only dry-runs.
    pub fn enforces(&self) -> bool {
        self.applied.iter().any(|a| !a.rule.dry_run())
    }

    /// Charges `n` response bytes to every byte cap.
    pub fn charge_bytes(&self, n: u64, now: Instant) {
        for a in &self.applied {
            if let Some(b) = &a.bytes {
                let over = b.charge(n, now);
                if over > 0 {
                    a.rule.counters.held_bytes.fetch_add(over, Relaxed);
                    a.group.held_bytes.fetch_add(over, Relaxed);
                }
            }
        }
    }

    /// Charges `n` request frames to every request cap.
    pub fn charge_requests(&self, n: u64, now: Instant) {
        for a in &self.applied {
            if let Some(b) = &a.requests {
                b.charge(n, now);
            }
        }
    }

    fn wait_of(a: &Applied, now: Instant, extra_bytes: u64, max: Duration) -> Duration {
        let bytes = a
            .bytes
            .as_ref()
            .map_or(Duration::ZERO, |b| b.wait(now, extra_bytes));
        let reqs = a
            .requests
            .as_ref()
            .map_or(Duration::ZERO, |b| b.wait(now, 0));
        bytes.max(reqs).min(max)
    }

    /// `throttle_time_ms` for a Fetch response with `extra` of its bytes still to come: the
    /// longest hold an enforcing policy's debt implies, at most `max` (0: none).
    pub fn hint_ms(&self, now: Instant, extra: u64, max: Duration) -> i32 {
        let wait = self
            .applied
            .iter()
            .filter(|a| !a.rule.dry_run())
            .map(|a| Self::wait_of(a, now, extra, max))
            .max()
            .unwrap_or_default();
        i32::try_from(wait.as_millis()).unwrap_or(i32::MAX)
    }

    /// Before a request is forwarded: the hold enforcing policies ask for (`None`: none).
    /// Dry-run policies count and log the hold they would have asked for, and forgive the
    /// debt it would have paid.
    pub fn hold(&self, now: Instant, max: Duration, who: SocketAddr) -> Option<Hold> {
        let mut waits = Vec::new();
        for (i, a) in self.applied.iter().enumerate() {
            let w = Self::wait_of(a, now, 0, max);
            if w.is_zero() {
                continue;
            }
            if a.rule.dry_run() {
                for b in a.bytes.iter().chain(&a.requests) {
                    b.forgive(w, now);
                }
                self.count(a, w, who);
            } else {
                waits.push((i, w));
            }
        }
        let wait = waits.iter().map(|(_, w)| *w).max()?;
        Some(Hold { wait, waits })
    }

    /// After a hold of `held`: counts it for every policy that asked (each up to its own ask).
    pub fn held(&self, hold: &Hold, held: Duration, who: SocketAddr) {
        for &(i, w) in &hold.waits {
            if let Some(a) = self.applied.get(i) {
                self.count(a, w.min(held), who);
            }
        }
    }

    fn count(&self, a: &Applied, d: Duration, who: SocketAddr) {
        let us = d.as_micros() as u64;
        a.rule.counters.decisions.fetch_add(1, Relaxed);
        a.rule.counters.held_us.fetch_add(us, Relaxed);
        a.group.held_us.fetch_add(us, Relaxed);
        let mut log = a.rule.log.lock().unwrap_or_else(|e| e.into_inner());
        log.1 += 1;
        let now = Instant::now();
        if log.0.is_none_or(|at| now.duration_since(at) >= LOG_EVERY) {
            let mode = if a.rule.dry_run() {
                "dry-run: would hold"
            } else {
                "holding"
            };
            tracing::info!(policy = %a.rule.spec.name, client.addr = %who,
                client.id = self.client_id.as_deref().unwrap_or(""),
                group = self.group.as_deref().unwrap_or(""),
                hold_ms = d.as_millis() as u64, holds = log.1,
                "throttle {mode} a client's requests");
            *log = (Some(now), 0);
        }
    }
}

/// One connection's handle.
#[derive(Debug)]
pub struct ConnThrottle {
    /// Connection number.
    pub id: u64,
    /// Client address and port.
    pub client: SocketAddr,
    /// 0: nothing applies; otherwise the generation of [`ConnThrottle::assignment`].
    engaged: AtomicU64,
    current: Mutex<(u64, Arc<Assignment>)>,
    /// Fetch requests forwarded while throttled: (correlation id, version).
    fetches: Mutex<VecDeque<(i32, i16)>>,
    /// Shared settings and counters.
    pub common: Arc<Common>,
}

impl ConnThrottle {
    /// A handle with nothing applied.
    pub fn new(id: u64, client: SocketAddr, common: Arc<Common>) -> ConnThrottle {
        ConnThrottle {
            id,
            client,
            engaged: AtomicU64::new(0),
            current: Mutex::new((0, Arc::default())),
            fetches: Mutex::new(VecDeque::new()),
            common,
        }
    }

    /// The forwarding path's check: 0 when nothing applies, else the assignment's generation.
    #[inline]
    pub fn engaged(&self) -> u64 {
        self.engaged.load(Relaxed)
    }

    /// The current assignment and its generation.
    pub fn assignment(&self) -> (u64, Arc<Assignment>) {
        self.current
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Sets the assignment if it differs (`generation` is the new one's, never 0).
    pub fn assign(&self, a: Assignment, generation: u64) -> bool {
        let mut cur = self.current.lock().unwrap_or_else(|e| e.into_inner());
        if *cur.1 == a {
            return false;
        }
        let on = !a.applied.is_empty();
        *cur = (generation, Arc::new(a));
        self.engaged.store(if on { generation } else { 0 }, Relaxed);
        if !on {
            self.fetches
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clear();
        }
        true
    }

    /// Remembers a Fetch request forwarded.
    pub fn fetch_sent(&self, correlation_id: i32, version: i16) {
        let mut f = self.fetches.lock().unwrap_or_else(|e| e.into_inner());
        if f.len() >= MAX_TRACKED_FETCHES {
            f.pop_front();
            self.common.fetches_forgotten.fetch_add(1, Relaxed);
        }
        f.push_back((correlation_id, version));
    }

    /// The version of the Fetch request answered by `correlation_id`, forgetting it and any
    /// sent before it; `None` when it is not a remembered Fetch.
    pub fn fetch_answered(&self, correlation_id: i32) -> Option<i16> {
        let mut f = self.fetches.lock().unwrap_or_else(|e| e.into_inner());
        let i = f.iter().position(|(c, _)| *c == correlation_id)?;
        let v = f[i].1;
        f.drain(..=i);
        Some(v)
    }
}
