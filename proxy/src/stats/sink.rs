//! The built-in tap sink: per-API counters and tap health in [`ProxyStats`].

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use sluice_protocol::TapEvent;

use super::ProxyStats;
use crate::sink::{ConnMeta, TapSink};

/// The built-in sink: per-API counters and tap health in [`ProxyStats`].
#[derive(Debug)]
pub struct StatsSink {
    stats: Arc<ProxyStats>,
}

impl StatsSink {
    /// A sink updating `stats`.
    pub fn new(stats: Arc<ProxyStats>) -> StatsSink {
        StatsSink { stats }
    }
}

impl TapSink for StatsSink {
    fn on_event(&self, conn: &ConnMeta, event: &TapEvent) {
        let api = &self.stats.api;
        match event {
            TapEvent::Request(r) => {
                let c = api.cell(r.api_key, r.api_version);
                c.requests.fetch_add(1, Relaxed);
                c.request_bytes.fetch_add(r.size, Relaxed);
            }
            TapEvent::Response(r) => {
                let c = api.cell(r.api_key, r.api_version);
                c.responses.fetch_add(1, Relaxed);
                c.response_bytes.fetch_add(r.size, Relaxed);
                c.latency_us
                    .fetch_add(r.latency.as_micros() as u64, Relaxed);
            }
            TapEvent::ParseError(p) => {
                api.cell(p.api_key, p.api_version)
                    .parse_errors
                    .fetch_add(1, Relaxed);
                ProxyStats::add(&self.stats.tap_parse_errors, 1);
                tracing::debug!(conn = conn.id, client.addr = %conn.client_addr, request = p.dir.is_request(),
                    api_key = p.api_key, api_version = p.api_version, error = %p.error,
                    "tap: frame not followed (forwarded untouched)");
            }
            TapEvent::Opaque { reason } => {
                ProxyStats::add(&self.stats.opaque_connections, 1);
                tracing::debug!(conn = conn.id, client.addr = %conn.client_addr, %reason,
                    "tap: connection no longer followed; forwarding the rest untouched");
            }
            other => tracing::trace!(conn = conn.id, event = ?other, "tap event"),
        }
    }
}
