//! A frame's body, as it comes: walked (Fetch responses, Produce requests: their events
//! queued as the walker yields them), collected and decoded at its end (small bodies of
//! interest; a Fetch request's is queued undecoded), or skipped; and the frame counted at its
//! end.

use super::direction::{Body, Phase};
use super::{ConnectionTap, FETCH};
use crate::decode;
use crate::dir::Dir;
use crate::event::TapEvent;
use crate::frame::LengthPrefix;

impl ConnectionTap {
    /// Feeds body bytes (at most what is left of the frame) and finishes the frame at its end.
    pub(super) fn body_bytes(&mut self, dir: Dir, part: &[u8]) {
        let state = self.dirs.get_mut(dir);
        let Phase::Body { left, body } = &mut state.phase else {
            return;
        };
        *left -= part.len() as u32;
        let done = *left == 0;
        if let Body::Skip = body {
            // The common case (most frames, and the tail of a failed walk): no events.
            if done {
                state.phase = Phase::Length(LengthPrefix::default());
                self.frame_done(dir);
            }
            return;
        }
        let (at, correlation_id) = (self.at, state.current.correlation_id);
        let (wait, fetch) = (&mut self.wait, &mut self.fetch);
        let mut failed = None;
        {
            // Queued straight away: fetch sessions and topic names are applied when settled.
            let mut emit = |ev: TapEvent| wait.event(dir, correlation_id, ev, at);
            let result = match body {
                Body::Skip => Ok(()),
                Body::Collect(buf) => {
                    buf.extend_from_slice(part);
                    Ok(())
                }
                Body::Fetch => match fetch {
                    Some(w) => {
                        let r = w.feed(part, &mut emit);
                        if r.is_ok() && done {
                            w.finish(&mut emit)
                        } else {
                            r
                        }
                    }
                    None => Ok(()),
                },
                Body::Produce(w) => {
                    let r = w.feed(part, &mut emit);
                    if r.is_ok() && done {
                        w.finish(&mut emit)
                    } else {
                        r
                    }
                }
            };
            if let Err(e) = result {
                failed = Some(e);
                *body = Body::Skip;
            }
        }
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
