//! A token bucket that may go into debt, as a Kafka broker's quota does (KIP-219): a response
//! is sent whole at once and charged after, so the bucket goes below zero, and the client's
//! next request waits until the debt is paid.
//!
//! Tokens refill at the cap's rate up to one second's worth ([`BURST`]); a bucket starts full.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How much a full bucket holds, in seconds of its rate.
pub const BURST: f64 = 1.0;

/// One client key's budget under one cap: bytes or requests per second.
#[derive(Debug)]
pub struct Bucket {
    rate: u64,
    state: Mutex<State>,
}

#[derive(Debug, Clone, Copy)]
struct State {
    /// Below zero: debt.
    tokens: f64,
    at: Instant,
}

impl Bucket {
    /// A full bucket refilling at `rate` per second (at least 1).
    pub fn new(rate: u64, now: Instant) -> Bucket {
        let rate = rate.max(1);
        Bucket {
            rate,
            state: Mutex::new(State {
                tokens: rate as f64 * BURST,
                at: now,
            }),
        }
    }

    /// Units per second.
    pub fn rate(&self) -> u64 {
        self.rate
    }

    fn with<T>(&self, now: Instant, f: impl FnOnce(&mut State) -> T) -> T {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let elapsed = now.saturating_duration_since(s.at).as_secs_f64();
        let full = self.rate as f64 * BURST;
        s.tokens = (s.tokens + elapsed * self.rate as f64).min(full);
        s.at = s.at.max(now);
        f(&mut s)
    }

    /// Takes `n` units; returns how many of them went beyond the tokens there were (into debt).
    pub fn charge(&self, n: u64, now: Instant) -> u64 {
        self.with(now, |s| {
            let before = s.tokens.max(0.0);
            s.tokens -= n as f64;
            (n as f64 - before).max(0.0).round() as u64
        })
    }

    /// How long paying the debt, plus `extra` units still to be charged, takes.
    pub fn wait(&self, now: Instant, extra: u64) -> Duration {
        self.with(now, |s| {
            let (debt, left) = ((-s.tokens).max(0.0), s.tokens.max(0.0));
            let owed = debt + (extra as f64 - left).max(0.0);
            Duration::from_secs_f64((owed / self.rate as f64).max(0.0))
        })
    }

    /// Pays `d` worth of the debt without waiting (a dry-run's hold that did not happen).
    pub fn forgive(&self, d: Duration, now: Instant) {
        self.with(now, |s| {
            if s.tokens < 0.0 {
                s.tokens = (s.tokens + d.as_secs_f64() * self.rate as f64).min(0.0);
            }
        })
    }

    /// True when full (nothing owed, nothing used lately): safe to forget.
    pub fn is_full(&self, now: Instant) -> bool {
        self.with(now, |s| s.tokens >= self.rate as f64 * BURST)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn burst_then_debt_then_refill() {
        let t0 = Instant::now();
        let b = Bucket::new(1000, t0);
        assert_eq!(b.charge(600, t0), 0, "within the burst");
        assert_eq!(b.wait(t0, 0), Duration::ZERO);
        assert_eq!(b.charge(600, t0), 200, "200 beyond the tokens left");
        assert_eq!(b.wait(t0, 0), 200 * MS);
        // Half the debt is paid after 100 ms, all of it after 200 ms.
        assert_eq!(b.wait(t0 + 100 * MS, 0), 100 * MS);
        assert_eq!(b.wait(t0 + 200 * MS, 0), Duration::ZERO);
        assert!(!b.is_full(t0 + 200 * MS));
        assert!(b.is_full(t0 + 1200 * MS));
    }

    #[test]
    fn refill_stops_at_one_second() {
        let t0 = Instant::now();
        let b = Bucket::new(100, t0);
        let later = t0 + Duration::from_secs(60);
        assert_eq!(b.charge(100, later), 0);
        assert_eq!(
            b.charge(1, later),
            1,
            "a minute idle still holds one second's worth"
        );
    }

    #[test]
    fn wait_counts_what_is_still_to_come() {
        let t0 = Instant::now();
        let b = Bucket::new(1000, t0);
        b.charge(1000, t0);
        assert_eq!(b.wait(t0, 500), 500 * MS);
        let c = Bucket::new(1000, t0);
        c.charge(700, t0);
        assert_eq!(
            c.wait(t0, 500),
            200 * MS,
            "300 tokens left cover part of it"
        );
    }

    #[test]
    fn forgiving_pays_debt_only() {
        let t0 = Instant::now();
        let b = Bucket::new(1000, t0);
        b.charge(1500, t0);
        b.forgive(200 * MS, t0);
        assert_eq!(b.wait(t0, 0), 300 * MS);
        b.forgive(Duration::from_secs(5), t0);
        assert_eq!(b.wait(t0, 0), Duration::ZERO);
        assert_eq!(b.charge(1, t0), 1, "forgiving never adds tokens");
    }

    #[test]
    fn long_run_rate_is_the_cap() {
        // A client charging 64 KiB whenever nothing is owed gets the rate over 10 s.
        let t0 = Instant::now();
        let b = Bucket::new(256 * 1024, t0);
        let (mut now, mut sent) = (t0, 0u64);
        while now < t0 + Duration::from_secs(10) {
            now += b.wait(now, 0);
            b.charge(64 * 1024, now);
            sent += 64 * 1024;
        }
        let rate = sent as f64 / 10.0;
        let cap = 256.0 * 1024.0;
        assert!(rate <= cap * 1.15 && rate >= cap * 0.95, "{rate} vs {cap}");
    }
}
