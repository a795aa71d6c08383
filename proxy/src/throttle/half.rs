//! What one half of a throttled connection does with each chunk before writing it.
//!
//! - Request half: follows the request frames that start in the chunk, remembers Fetch
//!   requests (correlation id → version) for the response half, charges request caps, and
//!   says how long to hold the chunk when an enforcing policy's bucket is in debt.
//! - Response half: charges byte caps with the chunk, and in each Fetch response (v1+) sets
//!   `throttle_time_ms` to the larger of the broker's value and the hold the debt implies,
//!   in place — when the whole field is in this chunk; otherwise it is left alone and counted.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sluice_protocol::Framing;

use super::handle::{Assignment, ConnThrottle, Hold};
use super::wire::{self, Walker, FETCH, FETCH_FLEXIBLE_FROM, FETCH_THROTTLE_FROM};

/// One half's throttle state; empty (and costless) while nothing applies.
#[derive(Debug, Default)]
pub struct ThrottleHalf {
    cached: Option<(u64, Arc<Assignment>)>,
    walker: Option<Walker>,
    frame: Frame,
    rewrites: Vec<(usize, u64)>,
}

/// Where a response frame stands in the search for its field.
#[derive(Debug, Default, Clone, Copy)]
struct Frame {
    version: Option<i16>,
    field: Option<u32>,
    done: bool,
}

impl ThrottleHalf {
    /// True while it holds state from a throttled stretch.
    pub fn active(&self) -> bool {
        self.cached.is_some()
    }

    /// Nothing applies any more: forget the assignment and where frames were.
    pub fn reset(&mut self) {
        *self = ThrottleHalf::default();
    }

    fn assignment(&mut self, conn: &ConnThrottle, generation: u64) -> Arc<Assignment> {
        match &self.cached {
            Some((g, a)) if *g == generation => a.clone(),
            _ => {
                let (g, a) = conn.assignment();
                self.cached = Some((g, a.clone()));
                a
            }
        }
    }

    /// Request half, before forwarding `chunk` (`framing`: the connection's frame tracker
    /// before it). Returns the hold enforcing policies ask for.
    pub fn before_request(
        &mut self,
        conn: &ConnThrottle,
        generation: u64,
        framing: Framing,
        chunk: &[u8],
    ) -> Option<Hold> {
        let a = self.assignment(conn, generation);
        let enforce = a.enforces();
        let w = self.walker.get_or_insert_with(|| Walker::new(framing));
        let unsynced = w.unsynced();
        let started = w.walk(chunk, framing, |w, p| {
            let whole = p.from < 8 && p.from as usize + p.n >= 8;
            if enforce && whole {
                if let Some((FETCH, version, correlation_id)) = wire::request_key(w.head(&p)) {
                    conn.fetch_sent(correlation_id, version);
                }
            }
        });
        let now = Instant::now();
        if started > 0 {
            a.charge_requests(started, now);
        }
        if started > 0 || unsynced || w.unsynced() {
            a.hold(now, conn.common.max_hold(), conn.client)
        } else {
            None
        }
    }

    /// After holding a request for `held`: counts it.
    pub fn held(&self, conn: &ConnThrottle, hold: &Hold, held: Duration) {
        if let Some((_, a)) = &self.cached {
            a.held(hold, held, conn.client);
        }
    }

    /// Response half, before writing `chunk`: charges it and sets `throttle_time_ms` in the
    /// Fetch responses it carries.
    pub fn before_response(
        &mut self,
        conn: &ConnThrottle,
        generation: u64,
        framing: Framing,
        chunk: &mut [u8],
    ) {
        let a = self.assignment(conn, generation);
        let now = Instant::now();
        a.charge_bytes(chunk.len() as u64, now);
        if !a.enforces() {
            self.walker = None; // dry-run rewrites nothing
            return;
        }
        let mut w = self.walker.take().unwrap_or_else(|| Walker::new(framing));
        let (frame, rewrites) = (&mut self.frame, &mut self.rewrites);
        let mut missed = 0u64;
        w.walk(chunk, framing, |w, p| {
            if p.from == 0 {
                *frame = Frame::default();
            }
            if frame.done {
                return;
            }
            let head = w.head(&p);
            let version = match frame.version {
                Some(v) => v,
                None => {
                    let Some(c) = head.first_chunk::<4>() else {
                        return;
                    };
                    match conn.fetch_answered(i32::from_be_bytes(*c)) {
                        Some(v) if v >= FETCH_THROTTLE_FROM => {
                            frame.version = Some(v);
                            v
                        }
                        _ => {
                            frame.done = true;
                            return;
                        }
                    }
                }
            };
            let off = match frame.field {
                Some(off) => off,
                None => match wire::body_offset(head, version >= FETCH_FLEXIBLE_FROM) {
                    Ok(Some(off)) => *frame.field.insert(off as u32),
                    Ok(None) => return,
                    Err(wire::NotFound) => {
                        (frame.done, missed) = (true, missed + 1);
                        return;
                    }
                },
            };
            let end = p.from + p.n as u32;
            if off >= end {
                return; // in a later chunk
            }
            frame.done = true;
            if off >= p.from && off + 4 <= end {
                rewrites.push((p.at + (off - p.from) as usize, u64::from(p.len - end)));
            } else {
                missed += 1;
            }
        });
        self.walker = Some(w);
        if missed > 0 {
            conn.common.hints_missed.fetch_add(missed, Relaxed);
        }
        let max = conn.common.max_hold();
        for (at, extra) in self.rewrites.drain(..) {
            let Some(field) = chunk.get_mut(at..at + 4) else {
                continue;
            };
            let broker = i32::from_be_bytes([field[0], field[1], field[2], field[3]]);
            let hint = a.hint_ms(now, extra, max);
            if hint > broker {
                field.copy_from_slice(&hint.to_be_bytes());
                conn.common.hints_set.fetch_add(1, Relaxed);
            }
        }
    }
}
