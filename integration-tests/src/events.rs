//! A tap sink that records every event, for tests to check against what the clients did.

use std::sync::Mutex;

use sluice::{ConnMeta, TapSink};
use sluice_protocol::TapEvent;

/// Most events kept; past it new events are dropped (and counted).
pub const MAX_EVENTS: usize = 2_000_000;

/// Records `(connection, event)` pairs.
#[derive(Debug, Default)]
pub struct EventLog {
    events: Mutex<Vec<(ConnMeta, TapEvent, std::time::Instant)>>,
    dropped: std::sync::atomic::AtomicU64,
}

impl TapSink for EventLog {
    fn on_event(&self, conn: &ConnMeta, event: &TapEvent) {
        let mut events = self.events.lock().unwrap();
        if events.len() < MAX_EVENTS {
            events.push((conn.clone(), event.clone(), std::time::Instant::now()));
        } else {
            self.dropped
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
    }
}

impl EventLog {
    /// The events for which `keep` is true, in order.
    pub fn select<T>(&self, mut keep: impl FnMut(&ConnMeta, &TapEvent) -> Option<T>) -> Vec<T> {
        self.events
            .lock()
            .unwrap()
            .iter()
            .filter_map(|(c, e, _)| keep(c, e))
            .collect()
    }

    /// When the first event for which `pred` holds was seen.
    pub fn first_time(
        &self,
        mut pred: impl FnMut(&ConnMeta, &TapEvent) -> bool,
    ) -> Option<std::time::Instant> {
        self.events
            .lock()
            .unwrap()
            .iter()
            .find(|(c, e, _)| pred(c, e))
            .map(|(_, _, t)| *t)
    }

    /// Connection ids on which `pred` held for some event.
    pub fn connections_where(&self, mut pred: impl FnMut(&TapEvent) -> bool) -> Vec<u64> {
        let mut ids: Vec<u64> = self.select(|c, e| pred(e).then_some(c.id));
        ids.sort_unstable();
        ids.dedup();
        ids
    }

    /// All events of connection `id`.
    pub fn of_connection(&self, id: u64) -> Vec<TapEvent> {
        self.select(|c, e| (c.id == id).then(|| e.clone()))
    }

    /// Calls `f` with every event from number `start` on, with the time it was recorded;
    /// returns the number of events recorded (where to start next time).
    pub fn scan_from(
        &self,
        start: usize,
        mut f: impl FnMut(&ConnMeta, &TapEvent, std::time::Instant),
    ) -> usize {
        let events = self.events.lock().unwrap();
        for (c, e, t) in &events[start.min(events.len())..] {
            f(c, e, *t);
        }
        events.len()
    }

    /// Number of events recorded.
    pub fn len(&self) -> usize {
        self.events.lock().unwrap().len()
    }

    /// True if nothing was recorded.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
