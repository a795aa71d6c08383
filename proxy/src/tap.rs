//! The tap glue: each connection runs a [`ConnectionTap`] on the bytes it has already
//! forwarded ([`ConnTap`]), and its events go, in batches, to every [`TapSink`] of the proxy
//! (the per-API counters, the observer, telemetry).
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
//!
//! # Memory
//! A connection's tap is fed with [`ConnectionTap::feed_bounded`]: a chunk that would queue
//! more than [`sluice_protocol::tap::MAX_QUEUED_EVENTS`] (a Produce request of tens of
//! thousands of empty partitions) is settled part way through. Each tap accounts what it holds
//! ([`ConnectionTap::approx_bytes`]) in [`ProxyStats::tap_bytes`] after each chunk it is shown;
//! when the taps together hold more than `tap.memory_budget`, the tap gives up on the
//! connection holding the most ([`ConnectionTap::give_up`]): it is still forwarded, no longer
//! followed, and counted in [`ProxyStats::tap_budget_given_up`].

use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::{Duration, Instant};

use sluice_protocol::tap::{ConnectionTap, TapHalf};
use sluice_protocol::TapEvent;

use crate::sink::{ConnMeta, TapSink};
use crate::stats::ProxyStats;

/// Events and Fetch request bodies a connection keeps before settling them together.
pub const BATCH_EVENTS: usize = 256;
/// Longest an event waits in its batch while the connection is busy.
pub const MAX_HOLD: Duration = Duration::from_millis(250);
/// Most events handed to the sinks in one call. A batch is settled into a list this long and
/// passed on each time it fills: the list (2.4 KB) stays in the CPU's first-level cache,
/// where a list of a whole batch would come from memory at each hand-over.
pub const HAND_OVER_EVENTS: usize = 16;
/// Most taps given up on at once when the taps hold more than their budget (each look for
/// the one holding the most goes over every connection).
const GIVE_UP_AT_ONCE: usize = 8;
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
    /// The registry it was added to, whose budget it counts against.
    shared: OnceLock<Arc<Shared>>,
    /// Bytes it last accounted (written with the state locked).
    held: AtomicUsize,
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
            shared: OnceLock::new(),
            held: AtomicUsize::new(0),
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
            self.account(&st);
        }
        true
    }

    /// Counts what the tap holds now in the budget (with `st` locked); true when the taps
    /// together hold more than it. The bytes every tap holds idle are not counted: they are
    /// bounded by the connection limit.
    fn account(&self, st: &TapState) -> bool {
        let Some(shared) = self.shared.get() else {
            return false;
        };
        let now = st
            .tap
            .approx_bytes()
            .saturating_sub(std::mem::size_of::<ConnectionTap>())
            + st.batch.capacity() * std::mem::size_of::<(TapEvent, Instant)>();
        let before = self.held.load(Relaxed);
        let total = &shared.stats.tap_bytes;
        if now > before {
            self.held.store(now, Relaxed);
            let grown = (now - before) as u64;
            total.fetch_add(grown, Relaxed) + grown > shared.limit
        } else {
            if now < before {
                self.held.store(now, Relaxed);
                total.fetch_sub((before - now) as u64, Relaxed);
            }
            false
        }
    }

    /// Gives the tap up because the taps hold more than `limit`: what waits is handed over,
    /// with the reason; the connection is still forwarded. False if it was given up already.
    fn give_up(&self, limit: u64) -> bool {
        let Some(mut st) = self.lock() else {
            return false;
        };
        if st.tap.is_opaque() {
            return false;
        }
        st.tap.give_up(format!(
            "the taps of all connections hold more than tap.memory_budget ({limit} bytes); this one held the most"
        ));
        self.hand_over(&mut st);
        self.account(&st);
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
        // The events wait in the tap until it is settled; a chunk that fills the queue is
        // settled part way through.
        let mut rest = chunk;
        loop {
            let followed = st.tap.feed_bounded(half, rest, now);
            rest = &rest[followed..];
            if rest.is_empty() || st.tap.is_opaque() {
                break;
            }
            self.hand_over(&mut st);
        }
        if st.due(now) {
            self.hand_over(&mut st);
        }
        let over = self.account(&st);
        drop(st);
        if over {
            if let Some(shared) = self.shared.get() {
                shared.enforce();
            }
        }
    }
}

impl Drop for ConnTap {
    fn drop(&mut self) {
        if let Some(mut st) = self.lock() {
            self.hand_over(&mut st);
        }
        if let Some(shared) = self.shared.get() {
            let held = self.held.swap(0, Relaxed) as u64;
            shared.stats.tap_bytes.fetch_sub(held, Relaxed);
        }
        // Last registered first: a sink added on top of the observer (telemetry) still finds
        // the connection in the observer while it closes.
        for s in self.sinks.iter().rev() {
            s.on_close(&self.meta);
        }
    }
}

/// The taps of open connections, for [`sweep`] and the memory budget.
#[derive(Debug)]
pub struct TapRegistry {
    shared: Arc<Shared>,
}

/// What the registry and its taps share.
#[derive(Debug)]
struct Shared {
    taps: dashmap::DashMap<u64, Weak<ConnTap>, foldhash::fast::RandomState>,
    /// `tap.memory_budget`.
    limit: u64,
    /// Where the bytes held and the taps given up are counted.
    stats: Arc<ProxyStats>,
    /// Taken by the one connection looking for taps to give up on.
    enforcing: Mutex<()>,
}

impl Shared {
    /// Gives up on the taps holding the most, one after the other, until the taps together
    /// hold no more than the budget (at most [`GIVE_UP_AT_ONCE`] at a time: the next chunk
    /// over the budget goes on). One connection at a time: the others go on forwarding.
    fn enforce(&self) {
        let Ok(_one) = self.enforcing.try_lock() else {
            return;
        };
        for _ in 0..GIVE_UP_AT_ONCE {
            if self.stats.tap_bytes.load(Relaxed) <= self.limit {
                return;
            }
            let mut worst: Option<(usize, Arc<ConnTap>)> = None;
            for entry in self.taps.iter() {
                let Some(tap) = entry.value().upgrade() else {
                    continue;
                };
                let held = tap.held.load(Relaxed);
                if held > worst.as_ref().map_or(0, |(h, _)| *h) {
                    worst = Some((held, tap));
                }
            }
            let Some((_, tap)) = worst else {
                return;
            };
            if tap.give_up(self.limit) {
                ProxyStats::add(&self.stats.tap_budget_given_up, 1);
            }
        }
    }
}

impl Default for TapRegistry {
    fn default() -> Self {
        let budget = sluice_config::Config::default().tap.memory_budget;
        TapRegistry::new(budget, Arc::new(ProxyStats::default()))
    }
}

impl TapRegistry {
    /// A registry whose taps hold at most `memory_budget` bytes together, counted in `stats`.
    pub fn new(memory_budget: usize, stats: Arc<ProxyStats>) -> TapRegistry {
        TapRegistry {
            shared: Arc::new(Shared {
                taps: Default::default(),
                limit: memory_budget as u64,
                stats,
                enforcing: Mutex::new(()),
            }),
        }
    }

    /// Starts following `tap` (connection `id`), within the budget.
    pub fn add(&self, id: u64, tap: &Arc<ConnTap>) {
        let _ = tap.shared.set(self.shared.clone());
        self.shared.taps.insert(id, Arc::downgrade(tap));
    }

    /// Connections followed.
    pub fn len(&self) -> usize {
        self.shared.taps.len()
    }

    /// True if no connection is followed.
    pub fn is_empty(&self) -> bool {
        self.shared.taps.is_empty()
    }

    /// Hands over what is due on every connection (on a quiet one: what waited [`MAX_HOLD`]),
    /// and forgets the connections that ended. A sink that panics costs its connection the
    /// tap (forwarding goes on), never the sweep of the others.
    pub fn sweep_once(&self, now: Instant) {
        self.shared.taps.retain(|_, t| match t.upgrade() {
            Some(tap) => {
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| tap.hand_over_due(now)))
                    .unwrap_or(false)
            }
            None => false,
        });
    }
}

/// Every [`SWEEP_EVERY`], hands over what waits on quiet connections, until `stop`.
pub async fn sweep(taps: Arc<TapRegistry>, stop: impl std::future::Future<Output = ()>) {
    crate::every::every(SWEEP_EVERY, stop, |now| taps.sweep_once(now)).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_protocol::tap::topics::TopicNames;
    use sluice_protocol::Dir;
    use std::net::SocketAddr;

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

    /// The start of an OffsetCommit request (its body is collected to be decoded) declaring
    /// an 8 MiB body, and `body` bytes of it.
    fn big_commit(body: usize) -> Vec<u8> {
        let mut f = Vec::new();
        f.extend_from_slice(&(10 + (8 << 20) - 64i32).to_be_bytes());
        f.extend_from_slice(&8i16.to_be_bytes()); // OffsetCommit
        f.extend_from_slice(&2i16.to_be_bytes()); // v2
        f.extend_from_slice(&1i32.to_be_bytes());
        f.extend_from_slice(&(-1i16).to_be_bytes()); // no client id
        f.resize(f.len() + body, 0);
        f
    }

    /// Past the budget, the tap gives up on the connection holding the most — counted, its
    /// memory let go, its bytes still accepted — and the others are still followed.
    #[test]
    fn past_the_memory_budget_the_tap_holding_the_most_is_given_up() {
        let stats = Arc::new(ProxyStats::default());
        let registry = TapRegistry::new(1 << 20, stats.clone());
        let (small_seen, big_seen) = (Events::new(), Events::new());
        let small = conn(vec![small_seen.clone()]);
        let big = conn(vec![big_seen.clone()]);
        registry.add(1, &small);
        registry.add(2, &big);
        round_trip(&small, 1);
        let mut up = TapHalf::new(Dir::Request);
        let flood = big_commit(3 << 20);
        for chunk in flood.chunks(64 << 10) {
            big.observe(&mut up, chunk);
        }
        assert_eq!(ProxyStats::get(&stats.tap_budget_given_up), 1);
        assert!(big.lock().unwrap().tap.is_opaque());
        assert!(big_seen.seen().iter().any(|e| e.starts_with("Opaque")));
        assert!(
            ProxyStats::get(&stats.tap_bytes) < 64 << 10,
            "{} bytes still held",
            ProxyStats::get(&stats.tap_bytes)
        );
        // The other connection is still followed; the one given up takes bytes, parses none.
        round_trip(&small, 2);
        big.observe(&mut up, &request(9, false));
        registry.sweep_once(Instant::now() + MAX_HOLD);
        assert_eq!(small_seen.seen(), ["req:1", "resp:1", "req:2", "resp:2"]);
        assert_eq!(ProxyStats::get(&stats.tap_budget_given_up), 1);
        drop(big);
        drop(small);
        assert_eq!(
            ProxyStats::get(&stats.tap_bytes),
            0,
            "closed taps hold nothing"
        );
    }

    #[derive(Debug)]
    struct Panics;

    impl TapSink for Panics {
        fn on_event(&self, _: &ConnMeta, _: &TapEvent) {
            panic!("a sink that panics");
        }
    }

    #[test]
    fn a_panicking_sink_costs_its_connection_the_tap_not_the_sweep() {
        let later = Events::new();
        let registry = TapRegistry::default();
        let bad = conn(vec![Arc::new(Panics)]);
        let good = conn(vec![later.clone()]);
        registry.add(1, &bad);
        registry.add(2, &good);
        round_trip(&bad, 1);
        round_trip(&good, 1);
        registry.sweep_once(Instant::now() + MAX_HOLD);
        assert_eq!(later.seen(), ["req:1", "resp:1"]);
        assert_eq!(
            registry.len(),
            1,
            "the connection whose sink panicked is no longer swept"
        );
        round_trip(&good, 2);
        registry.sweep_once(Instant::now() + MAX_HOLD);
        assert_eq!(later.seen(), ["req:1", "resp:1", "req:2", "resp:2"]);
        // Its forwarding goes on: the tap is given up on, nothing is parsed any more.
        round_trip(&bad, 2);
    }
}
