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

    /// Requests waiting for their response while the tap follows the connection; `None` once
    /// it gave up on it (or cannot be reached). For the drain: a Produce with `acks=0` is not
    /// waiting for anything, and a connection given up on has nothing known to wait for.
    pub fn awaited_responses(&self) -> Option<usize> {
        let st = self.lock()?;
        (!st.tap.is_opaque()).then(|| st.tap.in_flight())
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
mod tests;
