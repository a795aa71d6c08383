//! [`FailureLog`]: the log lines of failed TLS handshakes, at most one per reason every
//! [`LOG_EVERY`], each saying how many failed for that reason since the last line. A client
//! that reconnects in a loop with a certificate the listener refuses fails hundreds of times a
//! second; every failure is still counted in `sluice.proxy.tls.handshake_failures`.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::handshake::Failure;
/// At most one line per reason this often (as the connection guards' refusals).
pub const LOG_EVERY: Duration = Duration::from_secs(10);

/// Distinct reasons followed on their own; past this many, a reason shares its kind's slot.
const REASONS: usize = 32;

/// Failures since a reason's last line, and when that was.
#[derive(Debug, Default)]
struct Slot {
    since: u64,
    at: Option<Instant>,
}

/// Failed handshakes of one listener, by reason, for the log.
#[derive(Debug, Default)]
pub struct FailureLog {
    slots: Mutex<HashMap<String, Slot>>,
}

impl FailureLog {
    /// Counts failure `f` at `now`; `Some(n)`: log it now, with `n` failures for this reason
    /// since its last line (this one included).
    pub fn note(&self, f: &Failure, now: Instant) -> Option<u64> {
        let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        let key = if slots.len() < REASONS || slots.contains_key(&f.reason) {
            f.reason.clone()
        } else {
            f.kind.as_str().to_owned()
        };
        let slot = slots.entry(key).or_default();
        slot.since += 1;
        if slot.at.is_some_and(|at| now.duration_since(at) < LOG_EVERY) {
            return None;
        }
        let n = slot.since;
        (slot.since, slot.at) = (0, Some(now));
        Some(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tls::handshake::FailureKind;

    fn failure(kind: FailureKind, reason: &str) -> Failure {
        Failure {
            kind,
            reason: reason.to_owned(),
        }
    }

    #[test]
    fn one_line_per_reason_per_interval_with_the_count_since_the_last() {
        let log = FailureLog::default();
        let t0 = Instant::now();
        let expired = failure(
            FailureKind::BadClientCertificate,
            "client certificate has expired",
        );
        let other = failure(
            FailureKind::BadClientCertificate,
            "not signed by a CA in tls.client_ca",
        );
        assert_eq!(log.note(&expired, t0), Some(1));
        // Another reason of the same kind has its own line.
        assert_eq!(log.note(&other, t0), Some(1));
        for i in 1..200 {
            assert_eq!(log.note(&expired, t0 + Duration::from_millis(i * 10)), None);
        }
        assert_eq!(log.note(&expired, t0 + LOG_EVERY), Some(200));
        assert_eq!(log.note(&expired, t0 + LOG_EVERY), None);
    }

    #[test]
    fn reasons_past_the_cap_share_their_kinds_line() {
        let log = FailureLog::default();
        let t0 = Instant::now();
        for i in 0..REASONS {
            let f = failure(FailureKind::Protocol, &format!("reason {i}"));
            assert_eq!(log.note(&f, t0), Some(1));
        }
        let a = failure(FailureKind::Protocol, "one more");
        let b = failure(FailureKind::Protocol, "and another");
        assert_eq!(log.note(&a, t0), Some(1));
        assert_eq!(log.note(&b, t0), None);
        assert_eq!(log.slots.lock().unwrap().len(), REASONS + 1);
    }
}
