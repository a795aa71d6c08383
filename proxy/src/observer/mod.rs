//! The observer: a live, bounded picture of every connection, client, group, topic and
//! partition behind this proxy, built from the tap's events, and the detectors that turn it
//! into findings.
//!
//! One owner: the [`Observer`] is a handle. As a [`TapSink`] it offers each batch of events to
//! a bounded queue ([`EVENT_QUEUE`] messages; when full the batch is dropped and counted — the
//! forwarding path never waits). One thread ([`Observer::spawn`]) owns the state, applies the
//! queue in order, and once per [`TICK`] expires old samples, runs the detectors and publishes
//! a [`Snapshot`] that the admin API, `sluice top` and telemetry read. Its tables of rows
//! (clients, connections, fetches, groups, topics) are built only when a reader asks
//! ([`Observer::fresh_snapshot`]: the thread builds them at its next poll, from everything
//! applied so far), so a tick costs the detectors alone; what spans read of a connection is
//! published every tick. Tests and benchmarks drive the same state without the thread:
//! [`Observer::tick`] applies what waits, ticks and builds the tables.
//!
//! # Layout
//! - this file: the handle — the queue, the published snapshot and flags.
//! - [`owner`]: the owning thread and its messages; [`state`]: what it owns and the tick.
//! - [`apply`]: how each kind of event changes the model; [`sasl`]: SASL mechanism, claimed
//!   and authenticated principal, refusals.
//! - [`model`]: the state, by entity (connection, client, group, topic, fetch track); caps and
//!   eviction.
//! - [`detect`]: the detectors; [`findings`]: findings and their lifecycle (active →
//!   cleared); [`config`]: thresholds and windows.
//! - [`snapshot`]: what readers see; [`rows`]: its client and connection rows, built again
//!   only for entries changed since the tick before; [`api`]: the admin API's JSON views of it.
//! - [`workload`]: synthetic consumer traffic at a chosen size, for benches and tests.

pub mod api;
pub mod apply;
pub mod config;
pub mod detect;
pub mod findings;
pub mod model;
pub mod owner;
pub mod rows;
pub mod sasl;
pub mod snapshot;
pub mod state;
#[cfg(test)]
pub(crate) mod tests;
pub mod workload;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::mpsc::{sync_channel, SyncSender, TrySendError};
use std::sync::{Arc, Condvar, Mutex, OnceLock, RwLock};
use std::time::{Duration, Instant};

use serde_json::Value;
use sluice_protocol::TapEvent;
use tokio::sync::watch;

use crate::lookup::view::{GroupsView, Interest};
use crate::sink::{ConnMeta, TapSink};
use config::DetectConfig;
use findings::Finding;
use owner::{Msg, Owner};
use snapshot::{ConnLabels, Flags, Snapshot};
use state::{Published, State};

/// How often the detectors run and a snapshot is published.
pub const TICK: Duration = Duration::from_secs(1);

/// Longest a reader waits for fresh tables ([`Observer::fresh_snapshot`]); then it gets the
/// last ones built.
pub const FRESH_WAIT: Duration = Duration::from_secs(2);

/// Messages (a connection's open or close, or a batch of up to 16 events) waiting for the
/// observer's thread, which empties the queue every [`owner::POLL`]; beyond, batches are
/// dropped and counted.
pub const EVENT_QUEUE: usize = 4096;

/// The observer's handle. Register it as a [`TapSink`]; start its thread with
/// [`Observer::spawn`] (or drive it with [`Observer::tick`] in tests).
#[derive(Debug)]
pub struct Observer {
    cfg: DetectConfig,
    inbox: SyncSender<Msg>,
    /// The state and the queue's end until [`Observer::spawn`] takes them.
    owner: Mutex<Option<Owner>>,
    view: RwLock<Arc<Snapshot>>,
    flags: RwLock<Arc<Flags>>,
    any_flagged: AtomicBool,
    /// Events dropped because the queue was full.
    dropped_events: AtomicU64,
    /// Closes that found the queue full: never dropped (a connection's count would stay
    /// open), applied by the owner after the events queued before them.
    late_closes: Mutex<Vec<(ConnMeta, Instant)>>,
    any_late: AtomicBool,
    /// What the group lookup should ask about.
    interest: watch::Sender<Interest>,
    /// Lookup answers dropped because the queue was full.
    dropped_lookups: AtomicU64,
    /// Commit offsets not copied to the queue (beyond what the owner would keep).
    trimmed_offsets: AtomicU64,
    /// How long the ticks took (wall clock of the owner's thread).
    ticks: TickTimes,
    /// How long building the tables took, each time a reader asked.
    builds: TickTimes,
    /// Requests for fresh tables made, and served (the number of the last request served;
    /// `u64::MAX` once the thread stopped).
    tables_asked: AtomicU64,
    tables_served: Mutex<u64>,
    tables_ready: Condvar,
    /// The owner's thread, to wake it for a request.
    thread: OnceLock<std::thread::Thread>,
}

/// How long something the owner's thread does each time takes — a tick (expiry, detectors,
/// labels and the snapshot), or building the tables for a reader — for `/api/v1/observer`:
/// wall clock, and the thread's own CPU time (the difference is time off the CPU: waiting
/// for a core the forwarding threads share, or, building the tables, for the snapshot's
/// lock).
#[derive(Debug, Default)]
struct TickTimes {
    count: AtomicU64,
    last_us: AtomicU64,
    max_us: AtomicU64,
    total_us: AtomicU64,
    cpu_total_us: AtomicU64,
}

/// The calling thread's CPU time so far (zero where the clock cannot be read).
fn thread_cpu() -> Duration {
    use nix::time::{clock_gettime, ClockId};
    clock_gettime(ClockId::CLOCK_THREAD_CPUTIME_ID).map_or(Duration::ZERO, Duration::from)
}

impl TickTimes {
    /// Runs `work` on this thread and records its wall clock and CPU time.
    fn time<T>(&self, work: impl FnOnce() -> T) -> T {
        let (start, cpu) = (Instant::now(), thread_cpu());
        let out = work();
        self.record(start.elapsed(), thread_cpu().saturating_sub(cpu));
        out
    }

    fn record(&self, took: Duration, cpu: Duration) {
        let us = |d: Duration| u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        let took = us(took);
        self.count.fetch_add(1, Relaxed);
        self.last_us.store(took, Relaxed);
        self.max_us.fetch_max(took, Relaxed);
        self.total_us.fetch_add(took, Relaxed);
        self.cpu_total_us.fetch_add(us(cpu), Relaxed);
    }

    fn json(&self) -> Value {
        serde_json::json!({
            "count": self.count.load(Relaxed),
            "last_us": self.last_us.load(Relaxed),
            "max_us": self.max_us.load(Relaxed),
            "total_us": self.total_us.load(Relaxed),
            "cpu_total_us": self.cpu_total_us.load(Relaxed),
        })
    }
}

/// The observer's thread; [`ObserverThread::stop`] ends it.
#[derive(Debug)]
pub struct ObserverThread {
    observer: Arc<Observer>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl ObserverThread {
    /// Stops the thread and waits for it (it finishes the message it is applying).
    pub fn stop(mut self) {
        self.stop_now();
    }

    fn stop_now(&mut self) {
        if let Some(t) = self.thread.take() {
            // Blocks only while the queue is full, which the thread is emptying.
            let _ = self.observer.inbox.send(Msg::Stop);
            t.thread().unpark();
            let _ = t.join();
        }
    }
}

impl Drop for ObserverThread {
    fn drop(&mut self) {
        self.stop_now();
    }
}

impl Observer {
    /// An observer with these thresholds; its state waits for [`Observer::spawn`] or
    /// [`Observer::tick`].
    pub fn new(cfg: DetectConfig) -> Arc<Observer> {
        Observer::with_queue(cfg, EVENT_QUEUE)
    }

    /// Like [`Observer::new`] with a queue of `queue` messages.
    pub fn with_queue(cfg: DetectConfig, queue: usize) -> Arc<Observer> {
        let (tx, rx) = sync_channel(queue);
        Arc::new(Observer {
            owner: Mutex::new(Some(Owner {
                state: State::new(cfg.clone()),
                inbox: rx,
            })),
            cfg,
            inbox: tx,
            view: RwLock::new(Arc::new(Snapshot::default())),
            flags: RwLock::new(Arc::new(Flags::default())),
            any_flagged: AtomicBool::new(false),
            dropped_events: AtomicU64::new(0),
            late_closes: Mutex::new(Vec::new()),
            any_late: AtomicBool::new(false),
            interest: watch::Sender::new(Interest::default()),
            dropped_lookups: AtomicU64::new(0),
            trimmed_offsets: AtomicU64::new(0),
            ticks: TickTimes::default(),
            builds: TickTimes::default(),
            tables_asked: AtomicU64::new(0),
            tables_served: Mutex::new(0),
            tables_ready: Condvar::new(),
            thread: OnceLock::new(),
        })
    }

    /// The thresholds in use.
    pub fn config(&self) -> &DetectConfig {
        &self.cfg
    }

    /// Starts the thread that owns the state. `None` if it was started before.
    pub fn spawn(self: &Arc<Self>) -> Option<ObserverThread> {
        let owner = self
            .owner
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()?;
        let me = self.clone();
        let thread = std::thread::Builder::new()
            .name("sluice-observer".into())
            .spawn(move || {
                owner.run(&me);
                me.served(u64::MAX); // nobody waits for a thread that is gone
            })
            .ok()?;
        let _ = self.thread.set(thread.thread().clone());
        Some(ObserverThread {
            observer: self.clone(),
            thread: Some(thread),
        })
    }

    /// Without the thread: applies every message waiting, ticks at `now` and builds the
    /// tables (tests, benchmarks). Does nothing once [`Observer::spawn`] took the state.
    pub fn tick(&self, now: Instant) {
        let mut guard = self.owner.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(owner) = guard.as_mut() {
            owner.drain(self);
            let published = self.timed_tick(&mut owner.state, now);
            self.publish(published);
            self.publish_tables(&mut owner.state, now);
        }
    }

    /// Ticks `state` at `now` (the detectors), recording how long it took.
    fn timed_tick(&self, state: &mut State, now: Instant) -> Published {
        self.ticks.time(|| state.detect(now))
    }

    /// Builds `state`'s tables (at `now`) into the published snapshot, recording how long it
    /// took.
    fn publish_tables(&self, state: &mut State, now: Instant) {
        self.builds.time(|| {
            let tables = state.tables(now);
            let snapshot = self.snapshot().with_tables(tables, now);
            *self.view.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(snapshot);
        });
    }

    /// For the owner's thread: builds the tables if a reader asked since the last build.
    fn serve_tables(&self, state: &mut State, served: &mut u64) {
        let asked = self.tables_asked.load(Relaxed);
        if asked > *served {
            self.publish_tables(state, Instant::now());
            *served = asked;
            self.served(asked);
        }
    }

    /// Requests up to `n` are served: wakes the readers waiting for them.
    fn served(&self, n: u64) {
        *self.tables_served.lock().unwrap_or_else(|e| e.into_inner()) = n;
        self.tables_ready.notify_all();
    }

    /// Makes a tick's snapshot and flags what readers see, and its interest the lookup's.
    fn publish(&self, p: Published) {
        self.any_flagged.store(!p.flags.0.is_empty(), Relaxed);
        *self.flags.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(p.flags);
        *self.view.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(p.snapshot);
        self.interest.send_if_modified(|i| {
            let changed = *i != p.interest;
            *i = p.interest;
            changed
        });
    }

    /// What the group lookup should ask about, updated every tick.
    pub fn interest(&self) -> watch::Receiver<Interest> {
        self.interest.subscribe()
    }

    /// Hands the group lookup's answer to the owner (dropped, and counted, if its queue is
    /// full: the next round brings another).
    pub fn looked_up(&self, view: GroupsView) {
        if self.inbox.try_send(Msg::Groups(Box::new(view))).is_err() {
            self.dropped_lookups.fetch_add(1, Relaxed);
        }
    }

    fn take_late_closes(&self) -> Vec<(ConnMeta, Instant)> {
        if !self.any_late.swap(false, Relaxed) {
            return Vec::new();
        }
        std::mem::take(&mut *self.late_closes.lock().unwrap_or_else(|e| e.into_inner()))
    }

    fn offer(&self, msg: Msg) {
        match self.inbox.try_send(msg) {
            Ok(()) => {}
            Err(TrySendError::Full(msg) | TrySendError::Disconnected(msg)) => match msg {
                Msg::Events(_, events) => {
                    self.dropped_events.fetch_add(events.len() as u64, Relaxed);
                }
                Msg::Close(c, at) => {
                    self.late_closes
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .push((c, at));
                    self.any_late.store(true, Relaxed);
                }
                // A connection whose open is lost is known from its first events.
                Msg::Open(..) | Msg::Groups(_) | Msg::Stop => {}
            },
        }
    }

    /// The last published snapshot (empty before the first tick): findings, health and the
    /// connections' labels as of the last tick, tables as of the last time a reader asked for
    /// them (`tables_at`). Never waits.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.view.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The snapshot with tables built from everything the observer has applied by now: asks
    /// the owner's thread, which builds them at its next poll, and waits for them (at most
    /// [`FRESH_WAIT`]; then, or with the thread stopped, the last ones built). Blocks: callers
    /// on an async runtime run it off its workers. Without the thread, the tables of the last
    /// [`Observer::tick`].
    pub fn fresh_snapshot(&self) -> Arc<Snapshot> {
        let Some(thread) = self.thread.get() else {
            return self.snapshot();
        };
        let want = self.tables_asked.fetch_add(1, Relaxed) + 1;
        thread.unpark();
        let deadline = Instant::now() + FRESH_WAIT;
        let mut served = self.tables_served.lock().unwrap_or_else(|e| e.into_inner());
        while *served < want {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            served = match self.tables_ready.wait_timeout(served, left) {
                Ok((g, _)) => g,
                Err(e) => e.into_inner().0,
            };
        }
        drop(served);
        self.snapshot()
    }

    /// Events dropped because the observer's queue was full.
    pub fn dropped_events(&self) -> u64 {
        self.dropped_events.load(Relaxed)
    }

    /// Active findings (copies), for telemetry's finding events.
    pub fn active_findings(&self) -> Vec<Finding> {
        self.snapshot().active.clone()
    }

    /// Whether any connection is under an active finding (one atomic load).
    pub fn has_flagged(&self) -> bool {
        self.any_flagged.load(Relaxed)
    }

    /// Whether connections of this host and `client.id` are under an active finding.
    pub fn is_flagged(&self, host: std::net::IpAddr, client_id: &str) -> bool {
        self.has_flagged()
            && self
                .flags
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .contains(host, client_id)
    }

    /// `client.id`, group and principal of an open connection as of the last tick, for a span.
    pub fn conn_labels(&self, conn: u64) -> Option<ConnLabels> {
        self.snapshot().conn_labels(conn)
    }

    /// A page of an admin API list view, of fresh tables ([`Observer::fresh_snapshot`]). Its
    /// cost is bounded by the page ([`api::MAX_ANSWER_BYTES`]); it blocks: callers on an
    /// async runtime run it off its workers.
    pub fn page(&self, view: api::View, page: api::Page) -> api::Answer {
        self.fresh_snapshot().page(view, Instant::now(), page)
    }

    /// Open connections (JSON, of fresh tables: blocks like [`Observer::fresh_snapshot`]).
    pub fn connections_json(&self) -> Value {
        self.fresh_snapshot().connections_json(Instant::now())
    }

    /// Client keys, sorted (JSON, of fresh tables).
    pub fn clients_json(&self, sort: api::ClientSort) -> Value {
        self.fresh_snapshot().clients_json(sort)
    }

    /// Groups (JSON, of fresh tables).
    pub fn groups_json(&self) -> Value {
        self.fresh_snapshot().groups_json(Instant::now())
    }

    /// Topics (JSON, of fresh tables).
    pub fn topics_json(&self) -> Value {
        self.fresh_snapshot().topics_json()
    }

    /// Active and recently cleared findings (JSON).
    pub fn findings_json(&self) -> Value {
        self.snapshot().findings_json(Instant::now())
    }

    /// Observer health: sizes, evictions, events dropped at the queue, how long ticks take
    /// (`tick`: `count`, `last_us`, `max_us`, `total_us`) and building the tables when a
    /// reader asked (`tables`, likewise) (JSON).
    pub fn health_json(&self) -> Value {
        let mut v = self.snapshot().health_json(Instant::now());
        v["dropped_events"] = self.dropped_events().into();
        v["dropped_lookups"] = self.dropped_lookups.load(Relaxed).into();
        v["tick"] = self.ticks.json();
        v["tables"] = self.builds.json();
        // Offsets left out of the queue are refused as the owner would have refused them.
        let trimmed = self.trimmed_offsets.load(Relaxed);
        let pending = &mut v["inner_refused"]["pending_offsets"];
        *pending = (pending.as_u64().unwrap_or(0) + trimmed).into();
        v
    }

    /// A copy of `event` for the queue (see [`apply::copy`]).
    fn copy(&self, event: &TapEvent) -> TapEvent {
        let (copy, left_out) = apply::copy(event);
        if left_out > 0 {
            self.trimmed_offsets.fetch_add(left_out as u64, Relaxed);
        }
        copy
    }
}

impl TapSink for Observer {
    fn on_open(&self, conn: &ConnMeta) {
        self.offer(Msg::Open(conn.clone(), Instant::now()));
    }

    fn on_close(&self, conn: &ConnMeta) {
        self.offer(Msg::Close(conn.clone(), Instant::now()));
    }

    fn on_event(&self, conn: &ConnMeta, event: &TapEvent) {
        self.on_event_at(conn, event, Instant::now());
    }

    fn on_event_at(&self, conn: &ConnMeta, event: &TapEvent, now: Instant) {
        if apply::wanted(event) {
            self.offer(Msg::Events(conn.clone(), vec![(self.copy(event), now)]));
        }
    }

    fn on_events(&self, conn: &ConnMeta, events: &[(TapEvent, Instant)]) {
        // Events the observer has no use for (metadata, responses' tops, …) are not copied.
        let wanted: Vec<(TapEvent, Instant)> = events
            .iter()
            .filter(|(e, _)| apply::wanted(e))
            .map(|(e, at)| (self.copy(e), *at))
            .collect();
        if !wanted.is_empty() {
            self.offer(Msg::Events(conn.clone(), wanted));
        }
    }
}
