//! Token buckets for connection rates, and the bounded table of them (with the connections
//! open) per client host or client key.
//!
//! A rate of `r` per second lets bursts of `r` through, then one every `1/r` s. An entry whose
//! bucket is full again and which has no connection open says nothing an absent entry would
//! not: such entries are swept when the table is full (at most once per [`SWEEP_EVERY`]). A
//! key that finds the table full of live entries is let through unchecked, and counted.

use std::collections::HashMap;
use std::hash::Hash;
use std::time::{Duration, Instant};

/// Least time between two sweeps of a full table.
pub const SWEEP_EVERY: Duration = Duration::from_secs(1);

/// A rate of new connections: `per_sec`, in bursts of as many (at least 1).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rate {
    per_sec: f64,
    burst: f64,
}

impl Rate {
    /// `per_sec` connections per second; `None` for 0 (no limit).
    pub fn new(per_sec: u32) -> Option<Rate> {
        (per_sec > 0).then(|| Rate {
            per_sec: f64::from(per_sec),
            burst: f64::from(per_sec).max(1.0),
        })
    }
}

/// A token bucket for one key.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bucket {
    tokens: f64,
    at: Instant,
}

impl Bucket {
    /// A full bucket.
    pub fn full(rate: Rate, now: Instant) -> Bucket {
        Bucket {
            tokens: rate.burst,
            at: now,
        }
    }

    fn refill(&mut self, rate: Rate, now: Instant) {
        let gained = now.saturating_duration_since(self.at).as_secs_f64() * rate.per_sec;
        self.tokens = (self.tokens + gained).min(rate.burst);
        self.at = self.at.max(now);
    }

    /// How long until a token is there (zero: one is there now); takes nothing.
    pub fn wait(&mut self, rate: Rate, now: Instant) -> Duration {
        self.refill(rate, now);
        if self.tokens >= 1.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64((1.0 - self.tokens) / rate.per_sec)
        }
    }

    /// Takes a token if one is there.
    pub fn take(&mut self, rate: Rate, now: Instant) -> bool {
        let there = self.wait(rate, now).is_zero();
        if there {
            self.tokens -= 1.0;
        }
        there
    }

    fn is_full(&mut self, rate: Rate, now: Instant) -> bool {
        self.refill(rate, now);
        self.tokens >= rate.burst
    }
}

/// What a table keeps per key.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Entry {
    /// Connections open (counted only where open connections are limited).
    pub open: usize,
    /// New connections' bucket (`None` where the rate is not limited).
    pub bucket: Option<Bucket>,
}

impl Entry {
    fn idle(&mut self, rate: Option<Rate>, now: Instant) -> bool {
        self.open == 0
            && match (&mut self.bucket, rate) {
                (Some(b), Some(r)) => b.is_full(r, now),
                _ => true,
            }
    }
}

/// Entries per key, at most `cap` of them.
#[derive(Debug)]
pub struct Table<K> {
    map: HashMap<K, Entry>,
    cap: usize,
    rate: Option<Rate>,
    swept: Option<Instant>,
}

impl<K: Hash + Eq + Clone> Table<K> {
    /// An empty table of at most `cap` keys, with buckets of `rate`.
    pub fn new(cap: usize, rate: Option<Rate>) -> Table<K> {
        Table {
            map: HashMap::new(),
            cap,
            rate,
            swept: None,
        }
    }

    /// The bucket rate.
    pub fn rate(&self) -> Option<Rate> {
        self.rate
    }

    /// Keys held.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether no key is held.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// The entry of `key`, made if new; `None` when the table is full of live entries.
    pub fn entry(&mut self, key: &K, now: Instant) -> Option<&mut Entry> {
        if !self.map.contains_key(key) && self.map.len() >= self.cap {
            if self
                .swept
                .is_some_and(|at| now.duration_since(at) < SWEEP_EVERY)
            {
                return None;
            }
            self.swept = Some(now);
            let rate = self.rate;
            self.map.retain(|_, e| !e.idle(rate, now));
            if self.map.len() >= self.cap {
                return None;
            }
        }
        let rate = self.rate;
        Some(self.map.entry(key.clone()).or_insert_with(|| Entry {
            open: 0,
            bucket: rate.map(|r| Bucket::full(r, now)),
        }))
    }

    /// One of `key`'s open connections closed; its entry goes once idle.
    pub fn release(&mut self, key: &K, now: Instant) {
        let rate = self.rate;
        if let Some(e) = self.map.get_mut(key) {
            e.open = e.open.saturating_sub(1);
            if e.idle(rate, now) {
                self.map.remove(key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_lets_a_burst_through_then_one_per_period() {
        let rate = Rate::new(4).unwrap();
        let t0 = Instant::now();
        let mut b = Bucket::full(rate, t0);
        for _ in 0..4 {
            assert!(b.take(rate, t0));
        }
        assert!(!b.take(rate, t0));
        assert_eq!(b.wait(rate, t0), Duration::from_millis(250));
        assert!(!b.take(rate, t0 + Duration::from_millis(200)));
        assert!(b.take(rate, t0 + Duration::from_millis(250)));
        // Long quiet: back to a full burst, no more.
        let later = t0 + Duration::from_secs(60);
        assert_eq!((0..10).filter(|_| b.take(rate, later)).count(), 4);
        assert_eq!(Rate::new(0), None);
    }

    #[test]
    fn a_full_table_sweeps_idle_entries_and_never_grows_past_its_cap() {
        let rate = Rate::new(1);
        let t0 = Instant::now();
        let mut t: Table<u32> = Table::new(3, rate);
        for k in 0..3 {
            let e = t.entry(&k, t0).unwrap();
            assert!(e.bucket.as_mut().unwrap().take(rate.unwrap(), t0));
        }
        // Full of entries whose buckets are not full yet: a new key is not tracked.
        assert!(t.entry(&9, t0).is_none());
        // Within SWEEP_EVERY of that sweep, no sweep again even once entries are idle.
        let soon = t0 + Duration::from_millis(999);
        assert!(t.entry(&9, soon).is_none());
        let later = t0 + Duration::from_secs(2);
        assert!(t.entry(&9, later).is_some(), "idle entries swept");
        assert_eq!(t.len(), 1);
        // An entry with a connection open is live whatever its bucket.
        let mut t: Table<u32> = Table::new(1, None);
        t.entry(&1, t0).unwrap().open = 1;
        assert!(t.entry(&2, later).is_none());
        t.release(&1, later);
        assert!(t.is_empty(), "released and idle: gone at once");
        assert!(t.entry(&2, later).is_some());
    }
}
