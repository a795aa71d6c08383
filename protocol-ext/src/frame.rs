//! Kafka framing: every request and response is an `int32` big-endian length followed by that
//! many bytes. [`FrameTracker`] follows frame boundaries over a byte stream delivered in chunks
//! of any size (down to one byte), keeping only a 4-byte header buffer and a skip counter, so a
//! 50 MiB frame costs it nothing more than a 5-byte one.

/// Largest frame length accepted before framing is declared lost. Kafka's own default
/// `socket.request.max.bytes` is 100 MiB; responses are bounded by `fetch.max.bytes` (50 MiB
/// default) plus overhead. 1 GiB leaves room for tuned clusters while still catching garbage.
pub const MAX_FRAME_SIZE: u32 = 1 << 30;

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
    header: [u8; 4],
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
            header: [0; 4],
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
                Framing::Header { have } => {
                    let have = usize::from(have);
                    let take = (4 - have).min(chunk.len());
                    self.header[have..have + take].copy_from_slice(&chunk[..take]);
                    chunk = &chunk[take..];
                    let have = have + take;
                    if have < 4 {
                        self.state = Framing::Header { have: have as u8 };
                        continue;
                    }
                    let length = i32::from_be_bytes(self.header);
                    self.state = match u32::try_from(length) {
                        Ok(0) => {
                            // An empty frame is not valid Kafka (every header has an api key
                            // or a correlation id), but it is well-framed: count and go on.
                            self.frames += 1;
                            Framing::Header { have: 0 }
                        }
                        Ok(n) if n <= MAX_FRAME_SIZE => Framing::Body { remaining: n },
                        _ => Framing::Lost { length },
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
