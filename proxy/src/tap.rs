//! Where the tap's events go. Each connection runs a [`ConnectionTap`] on the bytes it has
//! already forwarded; its events go to every [`TapSink`] of the proxy. The built-in sink
//! counts requests, responses, sizes and latency per API key and version ([`ApiTable`]) and
//! logs problems at debug; later layers (the observer) add their own sinks.
//!
//! # Batches
//! A consumer's Fetch round trip yields a handful of events, and between two round trips the
//! kernel, the broker and the client move megabytes through the CPU caches: decoded and handed
//! over one round trip at a time, every event meets the decoders' and the sinks' code and state
//! cold. So each connection's tap is settled in batches ([`ConnectionTap::settle`]): on the
//! forwarding path it only follows frames and walks Fetch responses; the events — and the
//! bodies of Fetch requests, still undecoded, and small requests kept whole — wait, and are
//! settled (decoded, fetch sessions and topic names applied) and handed to every sink, in
//! order and [`HAND_OVER_EVENTS`] at a time, when
//! [`BATCH_EVENTS`] wait, when the oldest is [`MAX_HOLD`] old, when anything but a request,
//! response, Fetch or Produce event comes (group, offsets, metadata, a problem: at once, with
//! those waiting before it), and when the connection closes. [`sweep`] settles what waits on
//! connections that went quiet. Sinks see a connection's events at most ~0.45 s late.

use std::fmt;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use kafka_protocol::messages::ApiKey;
use sluice_protocol::tap::{ConnectionTap, TapHalf};
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

    /// Events of connection `conn` in the order they came, each with the time the tap read
    /// it: a batch (see the module docs). A sink that looks something up per connection
    /// overrides it to do that once per batch.
    fn on_events(&self, conn: &ConnMeta, events: &[(TapEvent, Instant)]) {
        for (event, at) in events {
            self.on_event_at(conn, event, *at);
        }
    }

    /// Connection `conn` was opened to the broker and will be followed.
    fn on_open(&self, _conn: &ConnMeta) {}

    /// Connection `conn` ended. Sinks are told in the reverse order they were added.
    fn on_close(&self, _conn: &ConnMeta) {}
}

/// Events and Fetch request bodies a connection keeps before settling them together.
pub const BATCH_EVENTS: usize = 256;
/// Longest an event waits in its batch while the connection is busy.
pub const MAX_HOLD: Duration = Duration::from_millis(250);
/// Most events handed to the sinks in one call. A batch is settled into a list this long and
/// passed on each time it fills: the list (2.4 KB) stays in the CPU's first-level cache,
/// where a list of a whole batch would come from memory at each hand-over.
pub const HAND_OVER_EVENTS: usize = 16;
/// How often [`sweep`] looks at quiet connections' batches.
pub const SWEEP_EVERY: Duration = Duration::from_millis(200);

/// The connection's protocol state (settled in batches: see [`ConnectionTap::settle`]) and the
/// list a batch is settled into.
#[derive(Debug)]
struct TapState {
    tap: ConnectionTap,
    batch: Vec<(TapEvent, Instant)>,
}

impl TapState {
    /// True when what waits must reach the sinks now: something other than a frequent event,
    /// a full batch, or an oldest item [`MAX_HOLD`] old.
    fn due(&self, now: Instant) -> bool {
        self.tap.settle_now()
            || self.tap.queued() >= BATCH_EVENTS
            || self
                .tap
                .oldest_queued()
                .is_some_and(|at| now.saturating_duration_since(at) >= MAX_HOLD)
    }
}

/// Per-connection tap state shared by the two halves (which run on the same task, so the
/// lock is contended only by [`sweep`]).
#[derive(Debug)]
pub struct ConnTap {
    state: Mutex<TapState>,
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
            state: Mutex::new(TapState {
                tap,
                batch: Vec::new(),
            }),
            meta,
            sinks,
        }
    }

    fn lock(&self) -> Option<std::sync::MutexGuard<'_, TapState>> {
        self.state.lock().ok()
    }

    /// Settles everything waiting and hands it to the sinks, in order, [`HAND_OVER_EVENTS`] at a
    /// time.
    fn hand_over(&self, st: &mut TapState) {
        let TapState { tap, batch } = st;
        let give = |batch: &mut Vec<(TapEvent, Instant)>| {
            for s in self.sinks.iter() {
                s.on_events(&self.meta, batch);
            }
            batch.clear();
        };
        tap.settle(&mut |event, at| {
            batch.push((event, at));
            if batch.len() == HAND_OVER_EVENTS {
                give(batch);
            }
        });
        if !batch.is_empty() {
            give(batch);
        }
    }

    /// Hands over what waits if it is due. Returns false once a sink panicked while the state
    /// was locked.
    pub fn hand_over_due(&self, now: Instant) -> bool {
        let Some(mut st) = self.lock() else {
            return false;
        };
        if st.due(now) {
            self.hand_over(&mut st);
        }
        true
    }

    /// Follows bytes just forwarded by one half. `half` keeps that direction's chunks the tap
    /// would only count down (the inside of skipped bodies) or walk batch headers in (a
    /// `records` field, walked ahead on a copy): such a chunk is followed there, and neither
    /// the lock, the clock nor the tap's state is touched for it.
    pub fn observe(&self, half: &mut TapHalf, chunk: &[u8]) {
        if half.hold(chunk) {
            return;
        }
        let Some(mut st) = self.lock() else {
            half.give_up(); // a sink panicked earlier; forwarding goes on without the tap
            return;
        };
        if st.tap.is_opaque() {
            half.give_up(); // given up on: no clock read, no parsing, for the rest of the stream
            return;
        }
        let now = Instant::now();
        // The events wait in the tap until it is settled.
        st.tap.feed(half, chunk, now);
        if st.due(now) {
            self.hand_over(&mut st);
        }
    }
}

impl Drop for ConnTap {
    fn drop(&mut self) {
        if let Some(mut st) = self.lock() {
            self.hand_over(&mut st);
        }
        // Last registered first: a sink added on top of the observer (telemetry) still finds
        // the connection in the observer while it closes.
        for s in self.sinks.iter().rev() {
            s.on_close(&self.meta);
        }
    }
}

/// The taps of open connections, for [`sweep`].
#[derive(Debug, Default)]
pub struct TapRegistry {
    taps: dashmap::DashMap<u64, Weak<ConnTap>, foldhash::fast::RandomState>,
}

impl TapRegistry {
    /// Starts following `tap` (connection `id`).
    pub fn add(&self, id: u64, tap: &Arc<ConnTap>) {
        self.taps.insert(id, Arc::downgrade(tap));
    }

    /// Connections followed.
    pub fn len(&self) -> usize {
        self.taps.len()
    }

    /// True if no connection is followed.
    pub fn is_empty(&self) -> bool {
        self.taps.is_empty()
    }

    /// Hands over what is due on every connection (on a quiet one: what waited [`MAX_HOLD`]),
    /// and forgets the connections that ended.
    pub fn sweep_once(&self, now: Instant) {
        self.taps.retain(|_, t| match t.upgrade() {
            Some(tap) => tap.hand_over_due(now),
            None => false,
        });
    }
}

/// Every [`SWEEP_EVERY`], hands over what waits on quiet connections, until `stop`.
pub async fn sweep(taps: Arc<TapRegistry>, stop: impl std::future::Future<Output = ()>) {
    crate::server::every(SWEEP_EVERY, stop, |now| taps.sweep_once(now)).await
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

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_protocol::tap::topics::TopicNames;
    use sluice_protocol::Dir;

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

    /// Records events as `kind:correlation id`, and the close.
    #[derive(Debug, Default)]
    struct Events {
        seen: Mutex<Vec<String>>,
    }

    impl Events {
        fn new() -> Arc<Events> {
            Arc::new(Events::default())
        }

        fn seen(&self) -> Vec<String> {
            self.seen.lock().unwrap().clone()
        }
    }

    impl TapSink for Events {
        fn on_event(&self, _: &ConnMeta, ev: &TapEvent) {
            let label = match ev {
                TapEvent::Request(r) => format!("req:{}", r.correlation_id),
                TapEvent::Response(r) => format!("resp:{}", r.correlation_id),
                TapEvent::ParseError(_) => "error".to_owned(),
                other => format!("{other:?}"),
            };
            self.seen.lock().unwrap().push(label);
        }
        fn on_close(&self, _: &ConnMeta) {
            self.seen.lock().unwrap().push("close".to_owned());
        }
    }

    /// A request frame: ListOffsets v1 (body not decoded) or, `bad`, a Metadata v1 whose body
    /// is one byte (a parse error; a kept request whose body decodes to anything but a Fetch
    /// is settled at once).
    fn request(correlation_id: i32, bad: bool) -> Vec<u8> {
        let (key, version, body): (i16, i16, &[u8]) = if bad {
            (3, 1, &[0])
        } else {
            (2, 1, &[0, 0, 0, 0])
        };
        let mut f = Vec::new();
        f.extend_from_slice(&key.to_be_bytes());
        f.extend_from_slice(&version.to_be_bytes());
        f.extend_from_slice(&correlation_id.to_be_bytes());
        f.extend_from_slice(&(-1i16).to_be_bytes()); // no client id
        f.extend_from_slice(body);
        let mut framed = (f.len() as i32).to_be_bytes().to_vec();
        framed.extend_from_slice(&f);
        framed
    }

    fn response(correlation_id: i32) -> Vec<u8> {
        let mut f = (8i32).to_be_bytes().to_vec();
        f.extend_from_slice(&correlation_id.to_be_bytes());
        f.extend_from_slice(&[0, 0, 0, 0]); // an empty body
        f
    }

    fn conn(sinks: Vec<Arc<dyn TapSink>>) -> Arc<ConnTap> {
        let meta = ConnMeta {
            id: 7,
            client_addr: SocketAddr::from(([127, 0, 0, 1], 5007)),
        };
        Arc::new(ConnTap::new(
            ConnectionTap::new(TopicNames::new()),
            meta,
            sinks.into(),
        ))
    }

    fn round_trip(tap: &ConnTap, correlation_id: i32) {
        let (mut up, mut down) = (TapHalf::new(Dir::Request), TapHalf::new(Dir::Response));
        tap.observe(&mut up, &request(correlation_id, false));
        tap.observe(&mut down, &response(correlation_id));
    }

    #[test]
    fn frequent_events_reach_batched_sinks_together_and_in_order() {
        let (one, two) = (Events::new(), Events::new());
        let tap = conn(vec![one.clone(), two.clone()]);
        let trips = BATCH_EVENTS as i32 / 2;
        for c in 0..trips - 1 {
            round_trip(&tap, c);
        }
        assert!(one.seen().is_empty(), "{:?}", one.seen());
        round_trip(&tap, trips - 1);
        let expected: Vec<String> = (0..trips)
            .flat_map(|c| [format!("req:{c}"), format!("resp:{c}")])
            .collect();
        assert_eq!(one.seen(), expected);
        assert_eq!(two.seen(), expected);
    }

    #[test]
    fn any_other_event_hands_over_the_waiting_ones_first() {
        let later = Events::new();
        let tap = conn(vec![later.clone()]);
        round_trip(&tap, 1);
        tap.observe(&mut TapHalf::new(Dir::Request), &request(2, true));
        assert_eq!(later.seen(), ["req:1", "resp:1", "req:2", "error"]);
    }

    #[test]
    fn quiet_connections_are_swept_and_closed_ones_forgotten() {
        let later = Events::new();
        let registry = TapRegistry::default();
        let tap = conn(vec![later.clone()]);
        registry.add(7, &tap);
        round_trip(&tap, 1);
        registry.sweep_once(Instant::now());
        assert!(
            later.seen().is_empty(),
            "younger than MAX_HOLD: still waiting"
        );
        registry.sweep_once(Instant::now() + MAX_HOLD);
        assert_eq!(later.seen(), ["req:1", "resp:1"]);
        round_trip(&tap, 2);
        drop(tap);
        assert_eq!(
            later.seen(),
            ["req:1", "resp:1", "req:2", "resp:2", "close"],
            "a closing connection hands over what waits before it closes"
        );
        assert_eq!(registry.len(), 1);
        registry.sweep_once(Instant::now());
        assert!(registry.is_empty());
    }
}
