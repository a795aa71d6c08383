//! A connection direction's copy buffer: it starts at [`INITIAL_BUFFER`], doubles up to the
//! configured maximum only while reads keep filling it, goes back to its first size after a
//! run of small reads, and grows only while every connection's growth together stays within
//! one [`BufferBudget`] — so 20,000 connections cannot hold 20,000 × 2 large buffers.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};

/// First size of each direction's buffer.
pub const INITIAL_BUFFER: usize = 8 * 1024;

/// Reads in a row that fill at most a quarter of a grown buffer before it shrinks back.
pub const SHRINK_AFTER: u32 = 32;

/// Bytes all buffers may grow by beyond [`INITIAL_BUFFER`] each, shared by every connection.
#[derive(Debug)]
pub struct BufferBudget {
    left: AtomicUsize,
    /// Times a buffer wanted to grow and the budget said no.
    pub refused: AtomicU64,
}

impl BufferBudget {
    /// A budget of `bytes`.
    pub fn new(bytes: usize) -> BufferBudget {
        BufferBudget {
            left: AtomicUsize::new(bytes),
            refused: AtomicU64::new(0),
        }
    }

    /// Bytes not taken.
    pub fn left(&self) -> usize {
        self.left.load(Relaxed)
    }

    fn take(&self, n: usize) -> bool {
        let ok = self
            .left
            .fetch_update(Relaxed, Relaxed, |left| left.checked_sub(n))
            .is_ok();
        if !ok {
            self.refused.fetch_add(1, Relaxed);
        }
        ok
    }

    fn give(&self, n: usize) {
        self.left.fetch_add(n, Relaxed);
    }
}

/// One direction's buffer.
#[derive(Debug)]
pub struct CopyBuffer<'a> {
    buf: Vec<u8>,
    max: usize,
    budget: &'a BufferBudget,
    small_reads: u32,
}

impl<'a> CopyBuffer<'a> {
    /// A buffer of [`INITIAL_BUFFER`] (or `max`, if smaller) that may grow to `max`.
    pub fn new(max: usize, budget: &'a BufferBudget) -> CopyBuffer<'a> {
        CopyBuffer {
            buf: vec![0u8; INITIAL_BUFFER.min(max)],
            max,
            budget,
            small_reads: 0,
        }
    }

    /// Where the next read goes.
    pub fn space(&mut self) -> &mut [u8] {
        &mut self.buf
    }

    /// The first `n` bytes, just read.
    pub fn filled(&self, n: usize) -> &[u8] {
        &self.buf[..n]
    }

    /// Its size now.
    pub fn len(&self) -> usize {
        self.buf.len()
    }

    /// Never empty.
    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    /// After a read of `n` bytes (once they were forwarded): grow if it filled the buffer and
    /// the budget allows; shrink back after [`SHRINK_AFTER`] small reads in a row.
    pub fn after_read(&mut self, n: usize) {
        let len = self.buf.len();
        if n == len {
            self.small_reads = 0;
            if len < self.max {
                let grown = (len * 2).min(self.max);
                if self.budget.take(grown - len) {
                    self.buf.resize(grown, 0);
                }
            }
        } else if len > INITIAL_BUFFER && n <= len / 4 {
            self.small_reads += 1;
            if self.small_reads >= SHRINK_AFTER {
                self.release();
            }
        } else {
            self.small_reads = 0;
        }
    }

    fn release(&mut self) {
        let len = self.buf.len();
        if len > INITIAL_BUFFER {
            self.budget.give(len - INITIAL_BUFFER);
            self.buf = vec![0u8; INITIAL_BUFFER];
        }
        self.small_reads = 0;
    }
}

impl Drop for CopyBuffer<'_> {
    fn drop(&mut self) {
        self.release();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_reads_grow_it_small_reads_shrink_it_and_the_budget_comes_back() {
        let budget = BufferBudget::new(1 << 20);
        let mut b = CopyBuffer::new(256 << 10, &budget);
        while b.len() < 256 << 10 {
            let n = b.len();
            b.after_read(n);
        }
        assert_eq!(budget.left(), (1 << 20) - (256 << 10) + INITIAL_BUFFER);
        for _ in 0..SHRINK_AFTER - 1 {
            b.after_read(100);
        }
        assert_eq!(b.len(), 256 << 10, "not yet");
        b.after_read(200 << 10); // a large read breaks the run
        for _ in 0..SHRINK_AFTER {
            b.after_read(100);
        }
        assert_eq!(b.len(), INITIAL_BUFFER);
        assert_eq!(budget.left(), 1 << 20);
    }

    #[test]
    fn buffers_stop_growing_at_the_budget_and_give_it_back_when_dropped() {
        let budget = BufferBudget::new(100 << 10);
        let mut held = Vec::new();
        for _ in 0..10 {
            let mut b = CopyBuffer::new(256 << 10, &budget);
            for _ in 0..8 {
                let n = b.len();
                b.after_read(n);
            }
            held.push(b);
        }
        let grown: usize = held.iter().map(|b| b.len() - INITIAL_BUFFER).sum();
        assert!(grown <= 100 << 10, "{grown}");
        assert!(budget.refused.load(Relaxed) > 0);
        assert!(held.iter().all(|b| b.len() >= INITIAL_BUFFER));
        drop(held);
        assert_eq!(budget.left(), 100 << 10);
    }
}
