//! The frame state machine of one direction: the 4-byte length ([`crate::frame`]'s one
//! framing rule), the header's first bytes, then the body with a count of bytes left. What the
//! header says is read in `headers.rs`, what the body holds in `body.rs`.

use std::time::Instant;

use bytes::BytesMut;

use super::queue::MAX_QUEUED_EVENTS;
use super::{ConnectionTap, HEADER_PEEK_MAX};
use crate::dir::Dir;
use crate::error::TapError;
use crate::frame::LengthPrefix;
use crate::walk::ProduceRequestWalker;

/// Bytes of a frame's start first copied to read its header; more, up to [`HEADER_PEEK_MAX`],
/// only if the header is longer.
const FIRST_LOOK: usize = 64;

/// What to do with the rest of a frame body.
#[derive(Debug)]
pub(super) enum Body {
    /// Counted down, not looked at.
    Skip,
    /// Kept, to be decoded at its end.
    Collect(BytesMut),
    /// Walked by the tap's Fetch response walker, kept in place (only responses are).
    Fetch,
    /// Walked by this Produce request's walker.
    Produce(Box<ProduceRequestWalker>),
}

/// Frame state of one direction.
#[derive(Debug)]
pub(super) enum Phase {
    /// Reading the 4-byte length.
    Length(LengthPrefix),
    /// Collecting the first bytes of a frame of `frame_len` bytes until its header parses.
    Header { frame_len: u32 },
    /// Inside the body with `left` bytes to go.
    Body { left: u32, body: Body },
}

/// The frame currently being read in one direction.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Current {
    pub(super) api_key: i16,
    pub(super) api_version: i16,
    pub(super) correlation_id: i32,
}

impl Current {
    /// A frame whose header is not read yet, or not readable.
    pub(super) const UNKNOWN: Current = Current {
        api_key: -1,
        api_version: -1,
        correlation_id: 0,
    };
}

/// The first bytes of a frame, kept to read its header: the first [`FIRST_LOOK`] in place (in
/// the tap's own memory, where a consumer's headers fit), more in a buffer of their own.
#[derive(Debug)]
pub(super) struct Head {
    first: [u8; FIRST_LOOK],
    len: usize,
    more: Vec<u8>,
}

impl Default for Head {
    fn default() -> Head {
        Head {
            first: [0; FIRST_LOOK],
            len: 0,
            more: Vec::new(),
        }
    }
}

impl Head {
    fn clear(&mut self) {
        self.len = 0;
        self.more.clear();
    }

    /// Bytes kept beside the first look.
    pub(super) fn spare(&self) -> usize {
        self.more.capacity()
    }

    fn extend_from_slice(&mut self, bytes: &[u8]) {
        let len = self.len + bytes.len();
        if len <= FIRST_LOOK {
            self.first[self.len..len].copy_from_slice(bytes);
        } else {
            if self.len <= FIRST_LOOK {
                // Past the first look now: what was kept in place moves to `more`.
                self.more.extend_from_slice(&self.first[..self.len]);
            }
            self.more.extend_from_slice(bytes);
        }
        self.len = len;
    }
}

impl std::ops::Deref for Head {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        if self.len <= FIRST_LOOK {
            &self.first[..self.len]
        } else {
            &self.more
        }
    }
}

/// The frame state of one direction.
#[derive(Debug)]
pub(super) struct Direction {
    pub(super) phase: Phase,
    pub(super) head: Head,
    pub(super) current: Current,
}

impl Direction {
    /// Before the first frame.
    pub(super) fn new() -> Direction {
        Direction {
            phase: Phase::Length(LengthPrefix::default()),
            head: Head::default(),
            current: Current::default(),
        }
    }
}

/// The frame state of both directions.
#[derive(Debug)]
pub(super) struct Both {
    pub(super) req: Direction,
    pub(super) resp: Direction,
}

impl Both {
    /// The state of `dir`.
    pub(super) fn get(&self, dir: Dir) -> &Direction {
        match dir {
            Dir::Request => &self.req,
            Dir::Response => &self.resp,
        }
    }

    /// The state of `dir`, to change.
    pub(super) fn get_mut(&mut self, dir: Dir) -> &mut Direction {
        match dir {
            Dir::Request => &mut self.req,
            Dir::Response => &mut self.resp,
        }
    }
}

impl ConnectionTap {
    /// The frame state machine of one direction: length, header, body. `bounded`: stops once
    /// [`MAX_QUEUED_EVENTS`] wait, between frames or right after a walker's event. Returns how
    /// many bytes of `chunk` were followed (all of them unless it stopped so).
    pub(super) fn follow(&mut self, dir: Dir, chunk: &[u8], now: Instant, bounded: bool) -> usize {
        self.at = now;
        let whole_chunk = chunk.len();
        let mut chunk = chunk;
        while !chunk.is_empty() && !self.opaque {
            if bounded && self.wait.queued() >= MAX_QUEUED_EVENTS {
                return whole_chunk - chunk.len();
            }
            let state = self.dirs.get_mut(dir);
            match &mut state.phase {
                Phase::Length(prefix) => match prefix.read(&mut chunk) {
                    None => {}
                    Some(Ok(0)) => self.empty_frame(dir),
                    Some(Ok(n)) => {
                        state.head.clear();
                        state.current = Current::UNKNOWN;
                        state.phase = Phase::Header { frame_len: n };
                    }
                    Some(Err(len)) => {
                        self.go_opaque(format!("{dir} framing lost: frame length {len}"));
                    }
                },
                Phase::Header { frame_len } => {
                    let frame_len = *frame_len;
                    let whole = frame_len as usize;
                    let fresh = state.head.is_empty();
                    if dir == Dir::Request
                        && fresh
                        && chunk.len() >= whole
                        && self.raw_request(&chunk[..whole], now)
                    {
                        self.dirs.req.phase = Phase::Length(LengthPrefix::default());
                        chunk = &chunk[whole..];
                        continue;
                    }
                    let state = self.dirs.get_mut(dir);
                    let room = whole.min(HEADER_PEEK_MAX) - state.head.len();
                    // A first look at a few bytes holds most headers; the rest of the body
                    // then goes to it straight from the chunk, not through `head`.
                    let look = if fresh { FIRST_LOOK } else { room };
                    let take = room.min(look).min(chunk.len());
                    state.head.extend_from_slice(&chunk[..take]);
                    chunk = &chunk[take..];
                    if dir == Dir::Request {
                        self.request_header(frame_len, now);
                    } else {
                        self.response_header(frame_len, now);
                    }
                }
                Phase::Body { left, .. } => {
                    let take = (*left as usize).min(chunk.len());
                    let taken = self.body_bytes(dir, &chunk[..take], bounded);
                    chunk = &chunk[taken..];
                }
            }
        }
        whole_chunk - chunk.len()
    }

    /// Enters the body phase and feeds it the body bytes already collected in `head`.
    pub(super) fn start_with_head(
        &mut self,
        dir: Dir,
        frame_len: u32,
        header_len: usize,
        body: Body,
    ) {
        let state = self.dirs.get_mut(dir);
        let head = std::mem::take(&mut state.head);
        let seen = head.len();
        state.phase = Phase::Body {
            left: frame_len - header_len as u32,
            body,
        };
        // Not bounded: at most [`HEADER_PEEK_MAX`] bytes.
        if seen > header_len {
            self.body_bytes(dir, &head[header_len..], false);
        } else if frame_len as usize == header_len {
            self.body_bytes(dir, &[], false);
        }
        let state = self.dirs.get_mut(dir);
        state.head = head;
        state.head.clear();
    }

    /// Skips the rest of a frame whose header could not be read: what was looked at so far
    /// counts as its header.
    pub(super) fn skip_rest(&mut self, dir: Dir, frame_len: u32) {
        let seen = self.dirs.get(dir).head.len();
        self.start_with_head(dir, frame_len, seen, Body::Skip);
    }

    /// A frame of length 0 (see [`crate::frame`]'s framing rule): well-framed, but with no
    /// header to read, so a parse error of its own.
    pub(super) fn empty_frame(&mut self, dir: Dir) {
        self.dirs.get_mut(dir).current = Current::UNKNOWN;
        let what = match dir {
            Dir::Request => "request header",
            Dir::Response => "response header",
        };
        let error = TapError::Malformed {
            what,
            detail: "an empty frame".into(),
        };
        self.problem(dir, error);
        self.frame_done(dir);
    }

    /// Counts a frame of `dir` that ended.
    pub(super) fn frame_done(&mut self, dir: Dir) {
        match dir {
            Dir::Request => self.counters.requests += 1,
            Dir::Response => {
                self.counters.responses += 1;
                self.dirs.resp.current.api_key = -1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    /// A frame's first bytes read back the same, in place or past [`super::FIRST_LOOK`], in
    /// pieces of any size, and after being cleared.
    #[test]
    fn head_keeps_what_a_vec_would() {
        let bytes: Vec<u8> = (0..=255).cycle().take(300).collect();
        for piece in [1, 3, 63, 64, 65, 300] {
            let mut head = super::Head::default();
            for round in 0..2 {
                let mut plain = Vec::new();
                for part in bytes[..bytes.len() - round * 200].chunks(piece) {
                    head.extend_from_slice(part);
                    plain.extend_from_slice(part);
                    assert_eq!(&*head, &plain[..], "pieces of {piece}");
                }
                head.clear();
                assert!(head.is_empty());
            }
        }
    }
}
