//! Requests waiting for their response on one connection.
//!
//! A broker answers the requests of one connection in the order it received them, so the
//! in-flight set is a FIFO: a response's correlation id matches the oldest pending request.
//! Requests that get no response (Produce with acks=0) are never queued.

use std::collections::VecDeque;
use std::time::Instant;

/// Most requests queued on one connection before correlation is given up. Java clients
/// allow 5 in flight per connection by default; 1,024 is far beyond any real client.
pub const MAX_IN_FLIGHT: usize = 1024;

/// A request waiting for its response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pending {
    /// Correlation id.
    pub correlation_id: i32,
    /// API key.
    pub api_key: i16,
    /// API version.
    pub api_version: i16,
    /// When the request was seen.
    pub sent_at: Instant,
    /// Request frame size including the 4-byte length.
    pub size: u64,
}

/// The FIFO of pending requests.
#[derive(Debug, Default)]
pub struct InFlight {
    queue: VecDeque<Pending>,
}

impl InFlight {
    /// Queues a request; `false` if the queue is full.
    pub fn push(&mut self, p: Pending) -> bool {
        if self.queue.len() >= MAX_IN_FLIGHT {
            return false;
        }
        self.queue.push_back(p);
        true
    }

    /// Takes the request a response with `correlation_id` answers. Older entries that were
    /// skipped over are dropped (and counted in the second value).
    pub fn take(&mut self, correlation_id: i32) -> Option<(Pending, usize)> {
        let at = self
            .queue
            .iter()
            .position(|p| p.correlation_id == correlation_id)?;
        let skipped = self.queue.drain(..at).count();
        self.queue.pop_front().map(|p| (p, skipped))
    }

    /// Requests waiting.
    pub fn len(&self) -> usize {
        self.queue.len()
    }

    /// True if nothing is waiting.
    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(c: i32) -> Pending {
        Pending {
            correlation_id: c,
            api_key: 1,
            api_version: 12,
            sent_at: Instant::now(),
            size: 0,
        }
    }

    #[test]
    fn fifo_matching() {
        let mut f = InFlight::default();
        for c in [1, 2, 3] {
            assert!(f.push(p(c)));
        }
        assert_eq!(f.take(1).unwrap().1, 0);
        assert_eq!(f.take(3).unwrap().1, 1, "2 was skipped");
        assert!(f.take(9).is_none());
        assert!(f.is_empty());
    }
}
