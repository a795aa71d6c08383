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

/// The FIFO of pending requests. The oldest is kept inline: a consumer's Fetch connection has
/// one request in flight at a time, so a round trip never reaches the queue's own memory.
#[derive(Debug, Default)]
pub struct InFlight {
    /// The oldest pending request; `None` only when nothing is pending.
    first: Option<Pending>,
    /// The ones after it, oldest first.
    rest: VecDeque<Pending>,
}

impl InFlight {
    /// Approximate bytes of the queue's own memory.
    pub fn approx_bytes(&self) -> usize {
        self.rest.capacity() * std::mem::size_of::<Pending>()
    }

    /// Queues a request; `false` if the queue is full.
    pub fn push(&mut self, p: Pending) -> bool {
        if self.first.is_none() {
            self.first = Some(p);
            return true;
        }
        if self.len() >= MAX_IN_FLIGHT {
            return false;
        }
        self.rest.push_back(p);
        true
    }

    /// Takes the request a response with `correlation_id` answers. Older entries that were
    /// skipped over are dropped (and counted in the second value).
    pub fn take(&mut self, correlation_id: i32) -> Option<(Pending, usize)> {
        let first = self.first?;
        let found = if first.correlation_id == correlation_id {
            (first, 0)
        } else {
            let at = self
                .rest
                .iter()
                .position(|p| p.correlation_id == correlation_id)?;
            let skipped = self.rest.drain(..at).count();
            (self.rest.pop_front()?, skipped + 1)
        };
        self.first = self.rest.pop_front();
        Some(found)
    }

    /// Requests waiting.
    pub fn len(&self) -> usize {
        usize::from(self.first.is_some()) + self.rest.len()
    }

    /// True if nothing is waiting.
    pub fn is_empty(&self) -> bool {
        self.first.is_none()
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
        for c in 0..MAX_IN_FLIGHT as i32 {
            assert!(f.push(p(c)));
        }
        assert!(!f.push(p(-1)), "full");
        assert_eq!(f.take(0).map(|(q, _)| q.correlation_id), Some(0));
        assert!(f.push(p(-1)), "room again");
        assert_eq!(f.len(), MAX_IN_FLIGHT);
    }

    /// Against a plain FIFO: every order of pushes and takes (of pending, skipped-over and
    /// unknown ids) gives the same answers, lengths and refusals.
    #[test]
    fn same_as_a_plain_fifo() {
        let mut rng = 0x2545_f491_4f6c_dd1du64;
        let mut next = || {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng
        };
        for _ in 0..200 {
            let (mut f, mut plain) = (InFlight::default(), VecDeque::new());
            let mut id = 0;
            for _ in 0..3_000 {
                if next() % 3 != 0 {
                    id += 1;
                    let full = plain.len() >= MAX_IN_FLIGHT;
                    let q = p(id);
                    assert_eq!(f.push(q), !full);
                    if !full {
                        plain.push_back(q);
                    }
                } else {
                    let c = id - (next() % 6) as i32 + 1;
                    let expected = plain
                        .iter()
                        .position(|q: &Pending| q.correlation_id == c)
                        .map(|at| {
                            let skipped = plain.drain(..at).count();
                            (plain.pop_front().unwrap(), skipped)
                        });
                    assert_eq!(f.take(c), expected);
                }
                assert_eq!((f.len(), f.is_empty()), (plain.len(), plain.is_empty()));
            }
        }
    }
}
