//! The frames of a throttled connection, followed chunk by chunk: which request frames start
//! in a chunk (and which are Fetch requests, by correlation id and version), and where a Fetch
//! response's `throttle_time_ms` is, so it can be set in place before the chunk is written.
//!
//! A follower starts part way through a stream (when a policy begins to match) from the
//! connection's [`FrameTracker`](sluice_protocol::FrameTracker) state before the chunk; until
//! it knows where frames start (framing lost, or a length prefix split at that moment) it
//! reports the chunk as unsynced.
//!
//! # Where `throttle_time_ms` is
//! A Fetch response (v1 and later) starts its body with `throttle_time_ms` (int32), right after
//! the response header: the correlation id (int32), then, from v12 on (flexible versions,
//! response header v1), the header's tagged fields (an unsigned varint count, then per field a
//! varint tag, a varint size and that many bytes).

use sluice_protocol::{Framing, LengthPrefix};

/// Kafka's Fetch API key.
pub const FETCH: i16 = 1;
/// First Fetch version whose response carries `throttle_time_ms`.
pub const FETCH_THROTTLE_FROM: i16 = 1;
/// First Fetch version with a flexible (tagged-fields) response header.
pub const FETCH_FLEXIBLE_FROM: i16 = 12;
/// Response header bytes kept to find the field: a correlation id and tagged fields this long
/// at most (Kafka sends none in a response header today).
pub const HEAD: usize = 64;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum At {
    /// Not known where frames start.
    Unsynced,
    /// Reading a length prefix.
    Prefix,
    /// Inside a frame body: `pos` of `len` bytes seen.
    Body { pos: u32, len: u32 },
    /// Inside a frame that started before the follower did: skip it.
    Skip { remaining: u32 },
}

/// Follows frame boundaries over chunks, keeping the first [`HEAD`] bytes of each body.
#[derive(Debug, Clone)]
pub struct Walker {
    at: At,
    prefix: LengthPrefix,
    head: [u8; HEAD],
}

/// A run of one frame's body bytes within a chunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Piece {
    /// Index in the chunk of its first byte.
    pub at: usize,
    /// Body offset of that byte.
    pub from: u32,
    /// Bytes in the run.
    pub n: usize,
    /// The frame's body length.
    pub len: u32,
}

impl Walker {
    /// A walker that picks up the stream where a tracker in state `framing` stands.
    pub fn new(framing: Framing) -> Walker {
        let mut w = Walker {
            at: At::Unsynced,
            prefix: LengthPrefix::default(),
            head: [0; HEAD],
        };
        w.resync(framing);
        w
    }

    fn resync(&mut self, framing: Framing) {
        self.at = match framing {
            Framing::Header { have: 0 } => At::Prefix,
            Framing::Body { remaining } => At::Skip { remaining },
            Framing::Header { .. } | Framing::Lost { .. } => At::Unsynced,
        };
    }

    /// True while it does not know where frames start.
    pub fn unsynced(&self) -> bool {
        self.at == At::Unsynced
    }

    /// The first body bytes of the current frame seen so far.
    pub fn head(&self, piece: &Piece) -> &[u8] {
        let have = (piece.from as usize + piece.n).min(HEAD);
        &self.head[..have]
    }

    /// Walks `chunk`; `framing` is the connection's tracker state before it (used while
    /// unsynced). Calls `f` with each frame body run (after keeping its head bytes); returns
    /// how many frames started in the chunk.
    pub fn walk(
        &mut self,
        chunk: &[u8],
        framing: Framing,
        mut f: impl FnMut(&Walker, Piece),
    ) -> u64 {
        if self.at == At::Unsynced {
            self.resync(framing);
        }
        let mut started = 0;
        let mut rest = chunk;
        while !rest.is_empty() {
            let at = chunk.len() - rest.len();
            match self.at {
                At::Unsynced => break,
                At::Skip { remaining } => {
                    let take = (remaining as usize).min(rest.len());
                    rest = &rest[take..];
                    let remaining = remaining - take as u32;
                    self.at = if remaining == 0 {
                        At::Prefix
                    } else {
                        At::Skip { remaining }
                    };
                }
                At::Prefix => match self.prefix.read(&mut rest) {
                    None => {}
                    Some(Ok(len)) => {
                        started += 1;
                        self.at = if len == 0 {
                            At::Prefix
                        } else {
                            At::Body { pos: 0, len }
                        };
                    }
                    Some(Err(_)) => self.at = At::Unsynced,
                },
                At::Body { pos, len } => {
                    let n = ((len - pos) as usize).min(rest.len());
                    let keep = HEAD.saturating_sub(pos as usize).min(n);
                    if keep > 0 {
                        let p = pos as usize;
                        self.head[p..p + keep].copy_from_slice(&rest[..keep]);
                    }
                    f(
                        self,
                        Piece {
                            at,
                            from: pos,
                            n,
                            len,
                        },
                    );
                    rest = &rest[n..];
                    let pos = pos + n as u32;
                    self.at = if pos == len {
                        At::Prefix
                    } else {
                        At::Body { pos, len }
                    };
                }
            }
        }
        started
    }
}

/// A request header's start: api key, version, correlation id (when the head holds them).
pub fn request_key(head: &[u8]) -> Option<(i16, i16, i32)> {
    let h: &[u8; 8] = head.get(..8)?.try_into().ok()?;
    Some((
        i16::from_be_bytes([h[0], h[1]]),
        i16::from_be_bytes([h[2], h[3]]),
        i32::from_be_bytes([h[4], h[5], h[6], h[7]]),
    ))
}

/// Why a response's body start is not known.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NotFound;

/// Where a response's body (after the header) starts, given its header version's flexibility:
/// `Ok(Some(offset))`, `Ok(None)` while `head` is too short to say, `Err(NotFound)` when it
/// cannot be found within [`HEAD`] bytes or the varints are malformed.
pub fn body_offset(head: &[u8], flexible: bool) -> Result<Option<usize>, NotFound> {
    if !flexible {
        return Ok((head.len() >= 4).then_some(4));
    }
    let mut p = 4;
    let Some(count) = varint(head, &mut p)? else {
        return Ok(None);
    };
    for _ in 0..count {
        let Some(_tag) = varint(head, &mut p)? else {
            return Ok(None);
        };
        let Some(size) = varint(head, &mut p)? else {
            return Ok(None);
        };
        p = p.checked_add(size as usize).ok_or(NotFound)?;
        if p >= HEAD {
            return Err(NotFound);
        }
    }
    if p >= HEAD {
        return Err(NotFound);
    }
    Ok((p <= head.len()).then_some(p))
}

/// An unsigned varint at `*p`: `Ok(None)` when `head` ends first (and [`HEAD`] not reached).
fn varint(head: &[u8], p: &mut usize) -> Result<Option<u32>, NotFound> {
    let mut v = 0u32;
    for shift in (0..35).step_by(7) {
        if *p >= HEAD {
            return Err(NotFound);
        }
        let Some(&b) = head.get(*p) else {
            return Ok(None);
        };
        *p += 1;
        v |= u32::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Ok(Some(v));
        }
    }
    Err(NotFound)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(body: &[u8]) -> Vec<u8> {
        let mut v = (body.len() as i32).to_be_bytes().to_vec();
        v.extend_from_slice(body);
        v
    }

    fn pieces(w: &mut Walker, chunk: &[u8]) -> (u64, Vec<(Piece, Vec<u8>)>) {
        let mut out = Vec::new();
        let n = w.walk(chunk, Framing::Header { have: 0 }, |w, p| {
            out.push((p, w.head(&p).to_vec()))
        });
        (n, out)
    }

    #[test]
    fn walks_frames_split_anywhere() {
        let body: Vec<u8> = (0..100u8).collect();
        let mut stream = frame(&body);
        stream.extend(frame(&[]));
        stream.extend(frame(&[7, 7]));
        for cut in 0..stream.len() {
            let mut w = Walker::new(Framing::Header { have: 0 });
            let (a, pa) = pieces(&mut w, &stream[..cut]);
            let (b, pb) = pieces(&mut w, &stream[cut..]);
            assert_eq!(a + b, 3, "cut at {cut}");
            let first: usize = pa
                .iter()
                .chain(&pb)
                .filter(|(p, _)| p.len == 100)
                .map(|(p, _)| p.n)
                .sum();
            assert_eq!(first, 100);
            let last_head = pa
                .iter()
                .chain(&pb)
                .rfind(|(p, _)| p.len == 100)
                .unwrap()
                .1
                .clone();
            assert_eq!(last_head, body[..HEAD].to_vec());
        }
    }

    #[test]
    fn picks_up_inside_a_frame() {
        let mut w = Walker::new(Framing::Body { remaining: 3 });
        let mut chunk = vec![1, 2, 3];
        chunk.extend(frame(&[9; 10]));
        let (n, p) = pieces(&mut w, &chunk);
        assert_eq!(n, 1);
        assert_eq!(
            p[0].0,
            Piece {
                at: 7,
                from: 0,
                n: 10,
                len: 10
            }
        );
        let mut lost = Walker::new(Framing::Header { have: 2 });
        assert!(lost.unsynced());
        assert_eq!(
            lost.walk(&[1, 2], Framing::Header { have: 2 }, |_, _| {}),
            0
        );
        assert_eq!(
            lost.walk(&frame(&[1]), Framing::Header { have: 0 }, |_, _| {}),
            1
        );
    }

    #[test]
    fn finds_the_body_after_tagged_fields() {
        assert_eq!(body_offset(&[0, 0, 0, 1], false), Ok(Some(4)));
        assert_eq!(body_offset(&[0, 0, 0], false), Ok(None));
        assert_eq!(body_offset(&[0, 0, 0, 1, 0], true), Ok(Some(5)));
        assert_eq!(body_offset(&[0, 0, 0, 1], true), Ok(None));
        // Two tagged fields: tag 0 size 2, tag 1 size 1.
        let h = [0, 0, 0, 1, 2, 0, 2, 0xaa, 0xbb, 1, 1, 0xcc];
        assert_eq!(body_offset(&h, true), Ok(Some(12)));
        assert_eq!(body_offset(&h[..10], true), Ok(None));
        // A tagged field running past HEAD cannot be followed.
        assert_eq!(body_offset(&[0, 0, 0, 1, 1, 0, 100], true), Err(NotFound));
        assert_eq!(
            body_offset(&[0, 0, 0, 1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff], true),
            Err(NotFound)
        );
    }

    #[test]
    fn request_keys() {
        assert_eq!(request_key(&[0, 1, 0, 12, 0, 0, 0, 9]), Some((1, 12, 9)));
        assert_eq!(request_key(&[0, 1, 0]), None);
    }
}
