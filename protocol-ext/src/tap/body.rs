//! A frame's body, as it comes: walked (Fetch responses, Produce requests: their events
//! queued as the walker yields them), collected and decoded at its end (small bodies of
//! interest; a Fetch request's is queued undecoded), or skipped; and the frame counted at its
//! end.

use bytes::BytesMut;

use super::direction::{Body, Phase};
use super::queue::MAX_QUEUED_EVENTS;
use super::{ConnectionTap, FETCH};
use crate::decode;
use crate::dir::Dir;
use crate::error::TapError;
use crate::event::TapEvent;
use crate::frame::LengthPrefix;

impl ConnectionTap {
    /// Feeds body bytes (at most what is left of the frame) and finishes the frame at its end.
    /// `bounded`: a walker stops right after the event that fills the queue to
    /// [`MAX_QUEUED_EVENTS`]. Returns how many bytes of `part` were followed: all of them,
    /// unless a walker stopped so.
    pub(super) fn body_bytes(&mut self, dir: Dir, part: &[u8], bounded: bool) -> usize {
        let state = self.dirs.get_mut(dir);
        let Phase::Body { left, body } = &mut state.phase else {
            return part.len();
        };
        if let Body::Skip = body {
            // The common case (most frames, and the tail of a failed walk): no events.
            *left -= part.len() as u32;
            if *left == 0 {
                state.phase = Phase::Length(LengthPrefix::default());
                self.frame_done(dir);
            }
            return part.len();
        }
        let (at, correlation_id) = (self.at, state.current.correlation_id);
        let (wait, fetch) = (&mut self.wait, &mut self.fetch);
        let limit = if bounded {
            MAX_QUEUED_EVENTS
        } else {
            usize::MAX
        };
        let mut failed = None;
        let mut taken = part.len();
        let done = {
            // Queued straight away: fetch sessions and topic names are applied when settled.
            let mut emit = |ev: TapEvent| {
                wait.event(dir, correlation_id, ev, at);
                wait.queued() < limit
            };
            let last = *left as usize == part.len();
            let mut walk = |fed: Result<usize, TapError>| match fed {
                Ok(n) => {
                    taken = n;
                    Ok(n == part.len() && last)
                }
                Err(e) => Err(e),
            };
            let result = match body {
                Body::Skip => Ok(last),
                Body::Collect(buf) => {
                    collect(buf, part, *left as usize - part.len());
                    Ok(last)
                }
                Body::Fetch => match fetch {
                    Some(w) => match walk(w.feed_until(part, &mut emit)) {
                        Ok(true) => w.finish(&mut |_| {}).map(|()| true),
                        other => other,
                    },
                    None => Ok(last),
                },
                Body::Produce(w) => match walk(w.feed_until(part, &mut emit)) {
                    Ok(true) => w.finish(&mut |_| {}).map(|()| true),
                    other => other,
                },
            };
            match result {
                Ok(done) => done,
                Err(e) => {
                    // The rest of the part is skipped with the rest of the body.
                    failed = Some(e);
                    *body = Body::Skip;
                    taken = part.len();
                    last
                }
            }
        };
        *left -= taken as u32;
        debug_assert_eq!(done, *left == 0);
        let current = state.current;
        let collected = if done {
            let finished =
                std::mem::replace(&mut state.phase, Phase::Length(LengthPrefix::default()));
            match finished {
                Phase::Body {
                    body: Body::Collect(buf),
                    ..
                } => Some(buf.freeze()),
                _ => None,
            }
        } else {
            None
        };
        // Events in stream order: what the walker saw before failing, then the failure, then
        // what a collected body decodes to — the same whatever the chunking.
        if let Some(e) = failed {
            self.problem(dir, e);
        }
        if let Some(bytes) = collected {
            if dir == Dir::Request && current.api_key == FETCH {
                self.put_fetch_request(current.api_version, current.correlation_id, bytes);
            } else {
                let decoded = if dir == Dir::Request {
                    decode::decode_request(
                        current.api_key,
                        current.api_version,
                        bytes,
                        &mut self.scratch,
                    )
                } else {
                    decode::decode_response(
                        current.api_key,
                        current.api_version,
                        bytes,
                        &mut self.scratch,
                    )
                };
                match decoded {
                    Ok(()) => self.flush(dir, current.correlation_id),
                    Err(e) => self.problem(dir, e),
                }
            }
        }
        if done {
            self.frame_done(dir);
        }
        taken
    }

    /// Queues what a collected body decoded to.
    pub(super) fn flush(&mut self, dir: Dir, correlation_id: i32) {
        let mut events = std::mem::take(&mut self.scratch);
        for ev in events.drain(..) {
            self.put(dir, correlation_id, ev);
        }
        self.scratch = events;
    }
}

/// Bytes a collected body first reserves: a body grows as its bytes arrive, never from the
/// length its frame declares (up to [`decode::MAX_DECODE_BODY`]).
pub(super) const FIRST_COLLECT: usize = 4096;

/// Appends `part` to a collected body with `after` bytes still to come: the buffer at most
/// doubles, and never grows past the body's end.
fn collect(buf: &mut BytesMut, part: &[u8], after: usize) {
    let need = buf.len() + part.len();
    if need > buf.capacity() {
        let grown = (buf.capacity() * 2).max(need).min(need + after);
        buf.reserve(grown - buf.len());
    }
    buf.extend_from_slice(part);
}
