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

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering::Relaxed;

    use sluice_config::policy::{Action, Cidr, Match, Mode, PolicySpec};

    use super::*;
    use crate::throttle::bucket::Bucket;
    use crate::throttle::handle::{Applied, Common, PolicyCounters, Rule};

    fn conn(mode: Mode, rate: u64) -> ConnThrottle {
        let common = Arc::new(Common::default());
        common.max_hold_ms.store(10_000, Relaxed);
        let c = ConnThrottle::new(1, "10.0.0.1:1".parse().unwrap(), common);
        let spec = PolicySpec {
            name: "p".into(),
            matcher: Match {
                host: Some(Cidr::parse("10.0.0.1").unwrap()),
                ..Match::default()
            },
            action: Action {
                fetch_bytes_per_sec: Some(rate),
                requests_per_sec: None,
                mode,
            },
            expires: None,
        };
        let counters = Arc::new(PolicyCounters::default());
        let applied = Applied {
            rule: Arc::new(Rule::new(spec, counters.clone())),
            bytes: Some(Arc::new(Bucket::new(rate, Instant::now()))),
            requests: None,
            group: counters.group(""),
        };
        let a = Assignment {
            applied: vec![applied],
            ..Assignment::default()
        };
        assert!(c.assign(a, 7));
        c
    }

    fn frame(body: &[u8]) -> Vec<u8> {
        let mut v = (body.len() as i32).to_be_bytes().to_vec();
        v.extend_from_slice(body);
        v
    }

    fn request(key: i16, version: i16, corr: i32) -> Vec<u8> {
        let mut b = key.to_be_bytes().to_vec();
        b.extend(version.to_be_bytes());
        b.extend(corr.to_be_bytes());
        b.extend([0xff, 0xff]); // null client id
        frame(&b)
    }

    /// A response: correlation id, a tag count of 0 when flexible, 4 bytes that are
    /// `throttle_time_ms` in a Fetch v1+, then `rest` bytes.
    fn response(corr: i32, flexible: bool, rest: usize) -> Vec<u8> {
        let mut b = corr.to_be_bytes().to_vec();
        if flexible {
            b.push(0);
        }
        b.extend(5i32.to_be_bytes());
        b.resize(b.len() + rest, 0x11);
        frame(&b)
    }

    const AT: Framing = Framing::Header { have: 0 };

    #[test]
    fn pipelined_fetches_in_one_chunk_each_get_their_field() {
        let c = conn(Mode::Enforce, 1000);
        let (mut up, mut down) = (ThrottleHalf::default(), ThrottleHalf::default());
        let mut reqs = request(1, 12, 1);
        reqs.extend(request(3, 12, 2)); // Metadata: not a Fetch
        reqs.extend(request(1, 4, 3));
        reqs.extend(request(1, 0, 4)); // Fetch v0: no throttle_time_ms
        assert!(
            up.before_request(&c, 7, AT, &reqs).is_none(),
            "nothing owed yet"
        );
        let mut resp = response(1, true, 3000);
        let second = resp.len();
        resp.extend(response(2, true, 10));
        let third = resp.len();
        resp.extend(response(3, false, 10));
        let fourth = resp.len();
        resp.extend(response(4, false, 10));
        let sent = resp.clone();
        down.before_response(&c, 7, AT, &mut resp);
        let field = |r: &[u8], at: usize| i32::from_be_bytes(r[at..at + 4].try_into().unwrap());
        // 3 KiB at 1000 B/s with 1000 tokens: about 2 s of debt.
        let first = field(&resp, 9);
        assert!((1900..=2100).contains(&first), "{first}");
        assert_eq!(
            field(&resp, second + 9),
            5,
            "the Metadata response is left alone"
        );
        assert!(
            field(&resp, third + 8) >= first,
            "Fetch v4 without tagged fields"
        );
        assert_eq!(field(&resp, fourth + 8), 5, "Fetch v0 has no such field");
        let changed: Vec<usize> = (0..resp.len()).filter(|&i| resp[i] != sent[i]).collect();
        assert!(changed
            .iter()
            .all(|&i| (9..13).contains(&i) || (third + 8..third + 12).contains(&i)));
        assert_eq!(c.common.hints_set.load(Relaxed), 2);
        assert_eq!(c.common.hints_missed.load(Relaxed), 0);
        // Now in debt: the next request is held.
        let hold = up
            .before_request(&c, 7, AT, &request(1, 12, 5))
            .expect("held");
        assert!(hold.wait > Duration::from_millis(1500), "{:?}", hold.wait);
    }

    #[test]
    fn dry_run_rewrites_nothing_and_holds_nothing() {
        let c = conn(Mode::DryRun, 1000);
        let (mut up, mut down) = (ThrottleHalf::default(), ThrottleHalf::default());
        assert!(up.before_request(&c, 7, AT, &request(1, 12, 1)).is_none());
        let mut resp = response(1, true, 5000);
        let sent = resp.clone();
        down.before_response(&c, 7, AT, &mut resp);
        assert_eq!(resp, sent);
        assert!(up.before_request(&c, 7, AT, &request(1, 12, 2)).is_none());
        let (_, a) = c.assignment();
        let counters = &a.applied[0].rule.counters;
        assert_eq!(
            counters.decisions.load(Relaxed),
            1,
            "counted as would-have-been"
        );
        assert!(counters.held_us.load(Relaxed) >= 3_900_000);
        assert!(counters.held_bytes.load(Relaxed) >= 4000);
    }
}
