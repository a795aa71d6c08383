//! The lookup's connections, one per broker address, kept open across rounds (a lookup that
//! reconnected every round would look like connection churn to the sidecar it goes through),
//! with an exponential back-off per address after failures (a refused connection is tried again
//! next round: a broker starting or restarting refuses until it listens).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use kafka_protocol::protocol::Request;
use sluice_protocol::decode::Guarded;

use super::conn::BrokerConn;
use super::error::LookupError;
use super::view::RoundStats;

/// The longest back-off after repeated failures.
pub(super) const MAX_BACKOFF: Duration = Duration::from_secs(60);

/// One broker address: its connection (if open) and its failure record.
#[derive(Debug, Default)]
struct Slot {
    conn: Option<BrokerConn>,
    /// Consecutive failures.
    failures: u32,
    /// Not asked again before this.
    retry_at: Option<Instant>,
    /// The round in which it last failed: not asked again in that round.
    failed_round: u64,
}

/// Connections by address.
#[derive(Debug)]
pub(super) struct Pool {
    slots: HashMap<String, Slot>,
    timeout: Duration,
    /// The lookup interval: the first step of the back-off.
    interval: Duration,
    /// The current round's number.
    round: u64,
}

impl Pool {
    /// An empty pool.
    pub(super) fn new(timeout: Duration, interval: Duration) -> Pool {
        Pool {
            slots: HashMap::new(),
            timeout,
            interval,
            round: 0,
        }
    }

    /// Starts round `n`.
    pub(super) fn start_round(&mut self, n: u64) {
        self.round = n;
    }

    /// Closes the connections to addresses not in `keep`.
    pub(super) fn retain(&mut self, keep: impl Fn(&str) -> bool) {
        self.slots.retain(|addr, _| keep(addr));
    }

    /// Closes the connection to `addr`, if open.
    pub(super) fn close(&mut self, addr: &str) {
        self.slots.remove(addr);
    }

    /// Open connections.
    pub(super) fn open_count(&self) -> usize {
        self.slots.values().filter(|s| s.conn.is_some()).count()
    }

    /// Asks `addr`: opens the connection if needed, picks the highest version both sides
    /// support (not below `floor`), sends `build(version)` and returns the answer with the
    /// version used. A failure that breaks the connection closes it and backs the address off;
    /// an address that failed this round, or is backing off, is not dialled.
    pub(super) async fn ask<R, F>(
        &mut self,
        addr: &str,
        floor: i16,
        build: F,
        stats: &mut RoundStats,
    ) -> Result<(R::Response, i16), LookupError>
    where
        R: Request,
        R::Response: Guarded,
        F: FnOnce(i16) -> R,
    {
        let now = Instant::now();
        let round = self.round;
        let (timeout, interval) = (self.timeout, self.interval);
        let slot = self.slots.entry(addr.to_owned()).or_default();
        let waiting = slot.retry_at.is_some_and(|t| now < t);
        if slot.failures > 0 && (slot.failed_round == round || waiting) {
            return Err(LookupError::BackingOff {
                addr: addr.to_owned(),
                failures: slot.failures,
            });
        }
        let result: Result<(R::Response, i16), LookupError> = async {
            let conn = match slot.conn {
                Some(ref mut conn) => conn,
                None => slot
                    .conn
                    .insert(BrokerConn::open(addr, timeout, stats).await?),
            };
            let version = conn.version::<R>(floor)?;
            let resp = conn.call(&build(version), version, stats).await?;
            Ok((resp, version))
        }
        .await;
        match &result {
            Ok(_) => {
                slot.failures = 0;
                slot.retry_at = None;
            }
            Err(e) if e.breaks_connection() => {
                slot.conn = None;
                slot.failures += 1;
                slot.failed_round = round;
                // A refused connection costs nothing to try again: a broker starting up, or
                // restarting, is asked again next round. Silence and broken answers back off.
                slot.retry_at = match e {
                    LookupError::Connect { source, .. }
                        if source.kind() == std::io::ErrorKind::ConnectionRefused =>
                    {
                        None
                    }
                    _ => Some(Instant::now() + backoff(interval, slot.failures)),
                };
            }
            Err(_) => {}
        }
        result
    }
}

/// How long to wait after `failures` consecutive failures: nothing more after the first (the
/// next round retries), then one interval, doubling, up to [`MAX_BACKOFF`].
pub(super) fn backoff(interval: Duration, failures: u32) -> Duration {
    if failures <= 1 {
        return Duration::ZERO;
    }
    let steps = 1u32 << (failures - 2).min(10);
    interval.saturating_mul(steps).min(MAX_BACKOFF)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let i = Duration::from_secs(5);
        let got: Vec<u64> = (1..=7).map(|f| backoff(i, f).as_secs()).collect();
        assert_eq!(got, [0, 5, 10, 20, 40, 60, 60]);
        assert_eq!(backoff(i, 1000), MAX_BACKOFF);
    }
}
