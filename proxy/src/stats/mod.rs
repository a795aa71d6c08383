//! Process-wide counters, shared by the proxy and the admin API. Relaxed atomics, updated per
//! connection event or per forwarded chunk — never per byte or per frame.
//!
//! # Layout
//! - this file: [`ProxyStats`], the proxy's counters and flags.
//! - [`api`]: [`ApiTable`], counters per API key and version, and [`api_name`].
//! - [`sink`]: [`StatsSink`], the tap sink that fills the table.
//! - [`refusals`]: [`Refusals`], connections refused by a connection limit, by reason and client.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::Mutex;

pub mod api;
pub mod refusals;
pub mod sink;

pub use api::{api_name, ApiCell, ApiTable};

use crate::buffer::BufferBudget;
pub use refusals::{Reason, Refusals};
pub use sink::StatsSink;

/// Counters and flags of one proxy.
#[derive(Debug)]
pub struct ProxyStats {
    /// Client connections open now.
    pub connections_open: AtomicU64,
    /// Client connections accepted since start.
    pub connections_accepted: AtomicU64,
    /// Upstream connects that failed or timed out.
    pub upstream_connect_failures: AtomicU64,
    /// `accept()` errors (e.g. out of file descriptors).
    pub accept_errors: AtomicU64,
    /// Times the accept loop waited because `max_connections` was reached.
    pub connection_limit_waits: AtomicU64,
    /// Bytes forwarded client → broker.
    pub bytes_to_broker: AtomicU64,
    /// Bytes forwarded broker → client.
    pub bytes_to_client: AtomicU64,
    /// Connections whose Kafka framing or correlation was lost (still forwarded, no longer
    /// followed).
    pub opaque_connections: AtomicU64,
    /// Frames the tap could not follow or decode (forwarded untouched).
    pub tap_parse_errors: AtomicU64,
    /// Approximate bytes the taps of all connections hold now (see `tap.memory_budget`).
    pub tap_bytes: AtomicU64,
    /// Connections the tap gave up on because the taps held more than `tap.memory_budget`
    /// (still forwarded; also counted in `opaque_connections`).
    pub tap_budget_given_up: AtomicU64,
    /// Requests, responses, sizes and latency per API key and version.
    pub api: ApiTable,
    /// Re-reads of the throttle policy file that failed validation (the old policies stayed).
    pub throttle_reload_failures: AtomicU64,
    /// Connections closed at the end of the shutdown grace period.
    pub connections_cut_at_deadline: AtomicU64,
    /// Connections closed after `idle_timeout` without a byte either way.
    pub idle_timeouts: AtomicU64,
    /// Connections closed `half_closed_timeout` after one side closed.
    pub half_closed_timeouts: AtomicU64,
    /// Connections refused at accept: their host had `max_connections_per_host` open.
    pub connections_refused_per_host: AtomicU64,
    /// The same, by client host: the first [`REFUSED_HOSTS_KEPT`] hosts refused.
    pub refused_hosts: RefusedHosts,
    /// Connections refused by a connection limit (`max_connections_per_host`, `guard.*`), by
    /// reason and by client.
    pub refusals: Refusals,
    /// TLS handshakes on a client listener that failed, by kind (index of
    /// [`FailureKind::ALL`](crate::tls::handshake::FailureKind::ALL)).
    pub tls_handshake_failures: [AtomicU64; crate::tls::handshake::FailureKind::ALL.len()],
    /// Re-reads of a TLS listener's files that failed (the settings in force stayed).
    pub tls_reload_failures: AtomicU64,
    /// Accepting connections.
    pub accepting: AtomicBool,
    /// Shutdown has begun.
    pub draining: AtomicBool,
    /// What the connections' copy buffers may still grow by, and how often it said no.
    pub buffers: BufferBudget,
}

impl Default for ProxyStats {
    fn default() -> Self {
        ProxyStats::with_buffer_budget(sluice_config::Config::default().buffer_budget)
    }
}

impl ProxyStats {
    /// Counters at zero, with a copy-buffer budget of `bytes`.
    pub fn with_buffer_budget(bytes: usize) -> ProxyStats {
        ProxyStats {
            connections_open: AtomicU64::new(0),
            connections_accepted: AtomicU64::new(0),
            upstream_connect_failures: AtomicU64::new(0),
            accept_errors: AtomicU64::new(0),
            connection_limit_waits: AtomicU64::new(0),
            bytes_to_broker: AtomicU64::new(0),
            bytes_to_client: AtomicU64::new(0),
            opaque_connections: AtomicU64::new(0),
            tap_parse_errors: AtomicU64::new(0),
            tap_bytes: AtomicU64::new(0),
            tap_budget_given_up: AtomicU64::new(0),
            api: ApiTable::default(),
            throttle_reload_failures: AtomicU64::new(0),
            connections_cut_at_deadline: AtomicU64::new(0),
            idle_timeouts: AtomicU64::new(0),
            half_closed_timeouts: AtomicU64::new(0),
            connections_refused_per_host: AtomicU64::new(0),
            refused_hosts: RefusedHosts::default(),
            refusals: Refusals::default(),
            tls_handshake_failures: Default::default(),
            tls_reload_failures: AtomicU64::new(0),
            accepting: AtomicBool::new(false),
            draining: AtomicBool::new(false),
            buffers: BufferBudget::new(bytes),
        }
    }

    /// Ready to take traffic: accepting and not draining.
    pub fn is_ready(&self) -> bool {
        self.accepting.load(Relaxed) && !self.draining.load(Relaxed)
    }

    /// Adds `n` to a counter.
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Relaxed);
    }

    /// All counters and flags as a JSON object, for `/api/v1/stats`.
    pub fn snapshot(&self) -> serde_json::Value {
        let g = |c: &AtomicU64| c.load(Relaxed);
        serde_json::json!({
            "ready": self.is_ready(),
            "draining": self.draining.load(Relaxed),
            "connections_open": g(&self.connections_open),
            "connections_accepted": g(&self.connections_accepted),
            "upstream_connect_failures": g(&self.upstream_connect_failures),
            "accept_errors": g(&self.accept_errors),
            "connection_limit_waits": g(&self.connection_limit_waits),
            "bytes_to_broker": g(&self.bytes_to_broker),
            "bytes_to_client": g(&self.bytes_to_client),
            "opaque_connections": g(&self.opaque_connections),
            "connections_cut_at_deadline": g(&self.connections_cut_at_deadline),
            "idle_timeouts": g(&self.idle_timeouts),
            "half_closed_timeouts": g(&self.half_closed_timeouts),
            "connections_refused_per_host": g(&self.connections_refused_per_host),
            "connections_refused_by_host": self.refused_hosts.snapshot(),
            "connections_refused": self.refusals.snapshot(),
            "tap_parse_errors": g(&self.tap_parse_errors),
            "tap_bytes": g(&self.tap_bytes),
            "tap_budget_given_up": g(&self.tap_budget_given_up),
            "buffer_budget_left": self.buffers.left(),
            "buffer_growth_refused": g(&self.buffers.refused),
            "throttle_reload_failures": g(&self.throttle_reload_failures),
            "apis": self.api.snapshot(),
        })
    }

    /// Reads a counter.
    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Relaxed)
    }
}

/// Most client hosts [`RefusedHosts`] names; refusals of others are only in the total.
pub const REFUSED_HOSTS_KEPT: usize = 64;

/// Connections refused for `max_connections_per_host`, by client host: the first
/// [`REFUSED_HOSTS_KEPT`] hosts, so the map stays small whatever clients do.
#[derive(Debug, Default)]
pub struct RefusedHosts {
    by_host: Mutex<BTreeMap<IpAddr, u64>>,
}

impl RefusedHosts {
    /// Counts a refusal of `host` (if it is named, or there is room to name it).
    pub fn add(&self, host: IpAddr) {
        let mut map = self.by_host.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = map.get_mut(&host) {
            *n += 1;
        } else if map.len() < REFUSED_HOSTS_KEPT {
            map.insert(host, 1);
        }
    }

    /// Host → refusals, as JSON.
    pub fn snapshot(&self) -> serde_json::Value {
        let map = self.by_host.lock().unwrap_or_else(|p| p.into_inner());
        map.iter()
            .map(|(host, n)| (host.to_string(), serde_json::Value::from(*n)))
            .collect::<serde_json::Map<_, _>>()
            .into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refused_hosts_are_named_up_to_the_cap() {
        let r = RefusedHosts::default();
        for i in 0..REFUSED_HOSTS_KEPT as u32 + 10 {
            r.add(IpAddr::from(std::net::Ipv4Addr::from(0x0a00_0000u32 + i)));
        }
        r.add(IpAddr::from([10, 0, 0, 0]));
        let snap = r.snapshot();
        let map = snap.as_object().unwrap();
        assert_eq!(map.len(), REFUSED_HOSTS_KEPT);
        assert_eq!(map["10.0.0.0"], 2);
    }
}
