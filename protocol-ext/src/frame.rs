//! Kafka framing: every request and response is an `int32` big-endian length followed by that
//! many bytes. [`FrameTracker`] follows frame boundaries over a byte stream delivered in chunks
//! of any size (down to one byte), keeping only a 4-byte header buffer and a skip counter, so a
//! 50 MiB frame costs it nothing more than a 5-byte one.
//!
//! # The framing rule
//! One rule, used by [`FrameTracker`] and by the tap ([`crate::tap`]) through [`LengthPrefix`]:
//! a length from 0 to [`MAX_FRAME_SIZE`] is a frame's; a negative or larger one means framing
//! is lost. A length of 0 is an empty frame, well-framed: Kafka's own receiver
//! (`NetworkReceive`) reads it as a receive of size 0 and refuses only negative sizes (and
//! sizes over `socket.request.max.bytes`). No request or response is empty — every header
//! starts with an api key or a correlation id — so a broker fails to parse its header and
//! closes the connection; the tap reports it as a parse error and follows on.

/// Largest frame length accepted before framing is declared lost. Kafka's own default
/// `socket.request.max.bytes` is 100 MiB; responses are bounded by `fetch.max.bytes` (50 MiB
/// default) plus overhead. 1 GiB leaves room for tuned clusters while still catching garbage.
pub const MAX_FRAME_SIZE: u32 = 1 << 30;

/// The body length a frame's `length` prefix gives, or `None` if it loses framing (see the
/// module docs).
pub fn body_len(length: i32) -> Option<u32> {
    checked(length).ok()
}

/// [`body_len`], with the length read as the error.
#[inline]
fn checked(length: i32) -> Result<u32, i32> {
    match u32::try_from(length) {
        Ok(n) if n <= MAX_FRAME_SIZE => Ok(n),
        _ => Err(length),
    }
}

/// A frame's 4-byte length prefix, read across chunks of any size.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LengthPrefix {
    have: u8,
    buf: [u8; 4],
}

impl LengthPrefix {
    /// Bytes of the prefix seen so far (0 to 3).
    pub fn have(&self) -> u8 {
        self.have
    }

    /// Takes the bytes the prefix still needs from the front of `chunk`. Once it is whole,
    /// starts over for the next frame and returns the frame's body length, or `Err` with the
    /// length read if it loses framing ([`body_len`]); `None` while it needs more bytes (then
    /// all of `chunk` was taken).
    #[inline]
    pub fn read(&mut self, chunk: &mut &[u8]) -> Option<Result<u32, i32>> {
        if self.have == 0 {
            // The usual case: the whole prefix in the chunk, read in place.
            if let Some((prefix, rest)) = chunk.split_first_chunk::<4>() {
                *chunk = rest;
                return Some(checked(i32::from_be_bytes(*prefix)));
            }
        }
        let have = usize::from(self.have);
        let take = (4 - have).min(chunk.len());
        self.buf[have..have + take].copy_from_slice(&chunk[..take]);
        *chunk = &chunk[take..];
        if have + take < 4 {
            self.have = (have + take) as u8;
            return None;
        }
        self.have = 0;
        Some(checked(i32::from_be_bytes(self.buf)))
    }
}

/// Where a tracker stands in the stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// Between frames, or part way through a length prefix.
    Header {
        /// How many bytes of the 4-byte length have been seen.
        have: u8,
    },
    /// Inside a frame body with this many bytes still to come.
    Body {
        /// Bytes of the current frame still expected.
        remaining: u32,
    },
    /// A length was negative or absurd: the stream is no longer understood. Terminal.
    Lost {
        /// The length that was read.
        length: i32,
    },
}

/// Follows Kafka frame boundaries over a stream. See the module docs.
#[derive(Debug, Clone)]
pub struct FrameTracker {
    prefix: LengthPrefix,
    state: Framing,
    frames: u64,
}

impl Default for FrameTracker {
    fn default() -> Self {
        Self::new()
    }
}

impl FrameTracker {
    /// A tracker at the start of a stream.
    pub fn new() -> Self {
        FrameTracker {
            prefix: LengthPrefix::default(),
            state: Framing::Header { have: 0 },
            frames: 0,
        }
    }

    /// Where the tracker stands.
    pub fn state(&self) -> Framing {
        self.state
    }

    /// Frames completed so far.
    pub fn frames(&self) -> u64 {
        self.frames
    }

    /// True between two frames: no partial frame has been seen.
    pub fn at_boundary(&self) -> bool {
        self.state == Framing::Header { have: 0 }
    }

    /// True once framing has been lost.
    pub fn is_lost(&self) -> bool {
        matches!(self.state, Framing::Lost { .. })
    }

    /// Follows `chunk`, the next bytes of the stream. Returns how many frames it completed.
    pub fn feed(&mut self, mut chunk: &[u8]) -> u64 {
        let before = self.frames;
        while !chunk.is_empty() {
            match self.state {
                Framing::Lost { .. } => break,
                Framing::Header { .. } => {
                    self.state = match self.prefix.read(&mut chunk) {
                        None => Framing::Header {
                            have: self.prefix.have(),
                        },
                        Some(Ok(0)) => {
                            // An empty frame (see the module docs): count it and go on.
                            self.frames += 1;
                            Framing::Header { have: 0 }
                        }
                        Some(Ok(n)) => Framing::Body { remaining: n },
                        Some(Err(length)) => Framing::Lost { length },
                    };
                }
                Framing::Body { remaining } => {
                    let take = (remaining as usize).min(chunk.len());
                    chunk = &chunk[take..];
                    let remaining = remaining - take as u32;
                    if remaining == 0 {
                        self.frames += 1;
                        self.state = Framing::Header { have: 0 };
                    } else {
                        self.state = Framing::Body { remaining };
                    }
                }
            }
        }
        self.frames - before
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn frame(body_len: usize) -> Vec<u8> {
        let mut v = (body_len as i32).to_be_bytes().to_vec();
        v.extend(std::iter::repeat_n(0xAB, body_len));
        v
    }

    #[test]
    fn counts_whole_frames_in_one_chunk() {
        let mut stream = frame(10);
        stream.extend(frame(0));
        stream.extend(frame(3));
        let mut t = FrameTracker::new();
        assert_eq!(t.feed(&stream), 3);
        assert!(t.at_boundary());
    }

    #[test]
    fn split_header_and_body() {
        let stream = frame(70_000);
        let mut t = FrameTracker::new();
        assert_eq!(t.feed(&stream[..2]), 0);
        assert_eq!(t.state(), Framing::Header { have: 2 });
        assert_eq!(t.feed(&stream[2..5]), 0);
        assert_eq!(t.state(), Framing::Body { remaining: 69_999 });
        assert_eq!(t.feed(&stream[5..]), 1);
        assert!(t.at_boundary());
    }

    /// The edge of the framing rule: a zero-length frame is an empty frame, in one chunk or
    /// split, at a stream's end too; `MAX_FRAME_SIZE` is a frame's length, one more is not.
    #[test]
    fn an_empty_frame_is_a_frame() {
        let mut stream = frame(0);
        stream.extend(frame(2));
        stream.extend(frame(0));
        for step in 1..=stream.len() {
            let mut t = FrameTracker::new();
            let seen: u64 = stream.chunks(step).map(|c| t.feed(c)).sum();
            assert_eq!(seen, 3, "in chunks of {step}");
            assert!(t.at_boundary());
        }
        assert_eq!(body_len(0), Some(0));
        assert_eq!(body_len(MAX_FRAME_SIZE as i32), Some(MAX_FRAME_SIZE));
        assert_eq!(body_len(MAX_FRAME_SIZE as i32 + 1), None);
        assert_eq!(body_len(-1), None);
    }

    /// A prefix reads the same whole (in place) or in pieces (kept across chunks), and takes
    /// only its own four bytes.
    #[test]
    fn a_prefix_reads_the_same_whole_or_in_pieces() {
        for (bytes, expected) in [
            (7i32.to_be_bytes(), Ok(7)),
            (0i32.to_be_bytes(), Ok(0)),
            ((-2i32).to_be_bytes(), Err(-2)),
            (
                ((MAX_FRAME_SIZE + 1) as i32).to_be_bytes(),
                Err(MAX_FRAME_SIZE as i32 + 1),
            ),
        ] {
            let stream = [&bytes[..], &[9, 9]].concat();
            for cut in 0..=4 {
                let mut p = LengthPrefix::default();
                let (mut first, mut second) = stream.split_at(cut);
                let got = match p.read(&mut first) {
                    Some(got) => got,
                    None => {
                        assert_eq!(p.have() as usize, cut);
                        p.read(&mut second).expect("all four bytes")
                    }
                };
                assert_eq!(got, expected, "cut at {cut}");
                assert_eq!([first, second].concat(), [9, 9], "cut at {cut}");
                assert_eq!(p.have(), 0);
            }
        }
    }

    #[test]
    fn negative_or_absurd_length_loses_framing() {
        let mut t = FrameTracker::new();
        t.feed(&(-1i32).to_be_bytes());
        assert_eq!(t.state(), Framing::Lost { length: -1 });
        assert_eq!(t.feed(&frame(1)), 0, "a lost tracker counts nothing more");
        let mut t = FrameTracker::new();
        t.feed(&(MAX_FRAME_SIZE + 1).to_be_bytes());
        assert!(t.is_lost());
    }

    proptest! {
        #[test]
        fn any_chunking_gives_the_same_count(
            sizes in proptest::collection::vec(0usize..3000, 0..20),
            cuts in proptest::collection::vec(1usize..700, 1..50),
        ) {
            let stream: Vec<u8> = sizes.iter().flat_map(|&n| frame(n)).collect();
            let mut t = FrameTracker::new();
            let mut seen = 0;
            let mut rest = &stream[..];
            let mut i = 0;
            while !rest.is_empty() {
                let n = cuts[i % cuts.len()].min(rest.len());
                seen += t.feed(&rest[..n]);
                rest = &rest[n..];
                i += 1;
            }
            prop_assert_eq!(seen, sizes.len() as u64);
            prop_assert_eq!(t.frames(), sizes.len() as u64);
            prop_assert!(t.at_boundary());
        }
    }
}
