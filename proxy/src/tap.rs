//! Where the tap's events go. Each connection runs a [`ConnectionTap`] on the bytes it has
//! already forwarded; its events go to every [`TapSink`] of the proxy. The built-in sink
//! counts requests, responses, sizes and latency per API key and version ([`ApiTable`]) and
//! logs problems at debug; later layers (the observer) add their own sinks.

use std::fmt;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use kafka_protocol::messages::ApiKey;
use sluice_protocol::tap::{ConnectionTap, Held};
use sluice_protocol::TapEvent;

use crate::stats::ProxyStats;

/// Who an event is about.
#[derive(Debug, Clone)]
pub struct ConnMeta {
    /// Connection number (unique in this process).
    pub id: u64,
    /// The client's address and port.
    pub client_addr: SocketAddr,
}

/// Receives the events of every connection. Called inline on the forwarding task, after the
/// bytes were forwarded: implementations must be quick and must not block.
pub trait TapSink: Send + Sync + fmt::Debug + 'static {
    /// One event of connection `conn`.
    fn on_event(&self, conn: &ConnMeta, event: &TapEvent);

    /// One event of connection `conn`, with the time the tap read the bytes it came from.
    /// The tap calls this one: a sink that needs the time overrides it and saves a clock
    /// read per event (several per Fetch round trip).
    fn on_event_at(&self, conn: &ConnMeta, event: &TapEvent, _now: Instant) {
        self.on_event(conn, event);
    }

    /// Connection `conn` was opened to the broker and will be followed.
    fn on_open(&self, _conn: &ConnMeta) {}

    /// Connection `conn` ended. Sinks are told in the reverse order they were added.
    fn on_close(&self, _conn: &ConnMeta) {}
}

/// Per-connection tap state shared by the two halves (which run on the same task, so the
/// lock is never contended).
#[derive(Debug)]
pub struct ConnTap {
    tap: Mutex<ConnectionTap>,
    meta: ConnMeta,
    sinks: Arc<[Arc<dyn TapSink>]>,
}

impl ConnTap {
    /// A tap for one connection.
    pub fn new(tap: ConnectionTap, meta: ConnMeta, sinks: Arc<[Arc<dyn TapSink>]>) -> ConnTap {
        for s in sinks.iter() {
            s.on_open(&meta);
        }
        ConnTap {
            tap: Mutex::new(tap),
            meta,
            sinks,
        }
    }

    /// Follows bytes just forwarded in one direction. `held` is that direction's count of
    /// bytes the tap would only count down (record data between batch headers, the inside of
    /// skipped bodies): a chunk made only of those is counted there, and neither the lock nor
    /// the tap's state is touched for it.
    pub fn observe(&self, to_broker: bool, held: &mut Held, chunk: &[u8]) {
        if held.hold(chunk.len()) {
            return;
        }
        let Ok(mut tap) = self.tap.lock() else {
            held.forever(); // a sink panicked earlier; forwarding goes on without the tap
            return;
        };
        if tap.is_opaque() {
            held.forever(); // given up on: no clock read, no parsing, for the rest of the stream
            return;
        }
        let now = Instant::now();
        let sinks = &self.sinks;
        let meta = &self.meta;
        let mut emit = |ev: TapEvent| {
            for s in sinks.iter() {
                s.on_event_at(meta, &ev, now);
            }
        };
        tap.feed_after(to_broker, held, chunk, now, &mut emit);
    }
}

impl Drop for ConnTap {
    fn drop(&mut self) {
        // Last registered first: a sink added on top of the observer (telemetry) still finds
        // the connection in the observer while it closes.
        for s in self.sinks.iter().rev() {
            s.on_close(&self.meta);
        }
    }
}

/// The name of an API key: `Fetch`, `OffsetCommit`, … or `ApiKey<n>` for numbers this build
/// does not know; `Unknown` for negative or very large ones. Made once per key.
pub fn api_name(key: i16) -> &'static str {
    static NAMES: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();
    let names = NAMES.get_or_init(|| {
        (0..KEYS as i16)
            .map(|k| {
                ApiKey::try_from(k)
                    .map(|a| format!("{a:?}"))
                    .unwrap_or_else(|_| format!("ApiKey{k}"))
            })
            .collect()
    });
    usize::try_from(key)
        .ok()
        .and_then(|k| names.get(k))
        .map_or("Unknown", String::as_str)
}

/// API keys below this get their own row in [`ApiTable`]; above, they share the last one.
const KEYS: usize = 128;
/// Versions below this get their own column.
const VERSIONS: usize = 32;

/// Counters of one API key and version.
#[derive(Debug, Default)]
pub struct ApiCell {
    /// Request frames.
    pub requests: AtomicU64,
    /// Response frames.
    pub responses: AtomicU64,
    /// Request bytes (frames, including length).
    pub request_bytes: AtomicU64,
    /// Response bytes.
    pub response_bytes: AtomicU64,
    /// Sum of request → response latencies in microseconds.
    pub latency_us: AtomicU64,
    /// Frames that could not be followed or decoded.
    pub parse_errors: AtomicU64,
}

/// Counters per API key and version: fixed-size and lock-free (about 0.2 MB).
#[derive(Debug)]
pub struct ApiTable {
    cells: Box<[ApiCell]>,
}

impl Default for ApiTable {
    fn default() -> Self {
        ApiTable {
            cells: (0..KEYS * VERSIONS + 1)
                .map(|_| ApiCell::default())
                .collect(),
        }
    }
}

impl ApiTable {
    /// The cell of `api_key`/`api_version` (an overflow cell for unusual numbers).
    pub fn cell(&self, api_key: i16, api_version: i16) -> &ApiCell {
        let (k, v) = (api_key as usize, api_version as usize);
        if api_key >= 0 && api_version >= 0 && k < KEYS && v < VERSIONS {
            &self.cells[k * VERSIONS + v]
        } else {
            &self.cells[KEYS * VERSIONS]
        }
    }

    /// Every cell with its API key and version (`-1, -1` for the overflow cell).
    pub fn rows(&self) -> impl Iterator<Item = (i16, i16, &ApiCell)> {
        self.cells.iter().enumerate().map(|(i, c)| {
            if i == KEYS * VERSIONS {
                (-1, -1, c)
            } else {
                ((i / VERSIONS) as i16, (i % VERSIONS) as i16, c)
            }
        })
    }

    /// Non-empty rows as JSON, for the admin API.
    pub fn snapshot(&self) -> Vec<serde_json::Value> {
        let mut rows = Vec::new();
        for (key, version, c) in self.rows() {
            let requests = c.requests.load(Relaxed);
            let responses = c.responses.load(Relaxed);
            if requests == 0 && responses == 0 && c.parse_errors.load(Relaxed) == 0 {
                continue;
            }
            let latency = c.latency_us.load(Relaxed);
            rows.push(serde_json::json!({
                "api_key": key,
                "api_version": version,
                "api": api_name(key),
                "requests": requests,
                "responses": responses,
                "request_bytes": c.request_bytes.load(Relaxed),
                "response_bytes": c.response_bytes.load(Relaxed),
                "avg_latency_ms": if responses > 0 { latency as f64 / responses as f64 / 1000.0 } else { 0.0 },
                "parse_errors": c.parse_errors.load(Relaxed),
            }));
        }
        rows
    }
}

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
                tracing::debug!(conn = conn.id, client.addr = %conn.client_addr, request = p.request,
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

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_protocol::tap::topics::TopicNames;

    #[derive(Debug)]
    struct Recorder(&'static str, Arc<Mutex<Vec<String>>>);

    impl TapSink for Recorder {
        fn on_event(&self, _: &ConnMeta, _: &TapEvent) {}
        fn on_open(&self, _: &ConnMeta) {
            self.1.lock().unwrap().push(format!("open {}", self.0));
        }
        fn on_close(&self, _: &ConnMeta) {
            self.1.lock().unwrap().push(format!("close {}", self.0));
        }
    }

    #[test]
    fn api_names_are_kafka_names() {
        assert_eq!(api_name(1), "Fetch");
        assert_eq!(api_name(8), "OffsetCommit");
        assert_eq!(api_name(68), "ConsumerGroupHeartbeat");
        assert_eq!(api_name(127), "ApiKey127");
        assert_eq!(api_name(-3), "Unknown");
    }

    #[test]
    fn rows_name_every_cell_once() {
        let t = ApiTable::default();
        t.cell(1, 17).parse_errors.fetch_add(2, Relaxed);
        t.cell(-4, 0).parse_errors.fetch_add(3, Relaxed);
        let hit: Vec<_> = t
            .rows()
            .filter(|(_, _, c)| c.parse_errors.load(Relaxed) > 0)
            .map(|(k, v, c)| (k, v, c.parse_errors.load(Relaxed)))
            .collect();
        assert_eq!(hit, [(1, 17, 2), (-1, -1, 3)]);
        assert_eq!(t.rows().count(), KEYS * VERSIONS + 1);
    }

    #[test]
    fn sinks_open_in_order_and_close_in_reverse() {
        let log = Arc::new(Mutex::new(Vec::new()));
        let sinks: Arc<[Arc<dyn TapSink>]> = Arc::from(vec![
            Arc::new(Recorder("observer", log.clone())) as Arc<dyn TapSink>,
            Arc::new(Recorder("telemetry", log.clone())),
        ]);
        let meta = ConnMeta {
            id: 1,
            client_addr: SocketAddr::from(([127, 0, 0, 1], 5000)),
        };
        drop(ConnTap::new(
            ConnectionTap::new(TopicNames::new()),
            meta,
            sinks,
        ));
        assert_eq!(
            *log.lock().unwrap(),
            [
                "open observer",
                "open telemetry",
                "close telemetry",
                "close observer"
            ]
        );
    }
}
