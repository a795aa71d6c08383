//! The two halves of a proxied connection.
//!
//! Each half owns one buffer, reads a chunk, writes all of it to the other side, and only then
//! reads again: a slow reader on one side slows the writer on the other (backpressure) and
//! memory stays bounded. A buffer ([`CopyBuffer`]) starts at 8 KiB and doubles, up to the
//! configured maximum and within the proxy-wide budget, only while reads keep filling it, and
//! shrinks back after a run of small reads — idle connections stay small, bulk transfers get
//! few large syscalls. End of stream on one side is passed on as a half-close.
//!
//! After a chunk is forwarded, the tap (when on) is shown it — unless the tap said the next bytes
//! are ones it would only count down or walk batch headers in (record data of a Fetch response
//! or a Produce request): then the half follows them itself (its `TapHalf`) and hands the tap
//! what it found with the next chunk it shows.
//!
//! Before a chunk is written, one relaxed load tells whether a throttle policy applies to the
//! connection ([`ConnThrottle::engaged`]); only then does the half do more
//! ([`ThrottleHalf`]): the request half may hold the chunk it read (reading nothing more) while
//! the client's budget is in debt, and the response half charges the budget and sets
//! `throttle_time_ms` in Fetch responses in place.
//!
//! A [`FrameTracker`] also follows each chunk to count whole Kafka frames. The
//! counts only drive the graceful drain (stop taking requests at a frame boundary, let the
//! responses in flight finish); they never change or delay a byte. Counting lengths costs a
//! few nanoseconds per chunk (`cargo bench -p sluice-benches --bench frame_tracker`).
//!
//! # What the drain waits for
//! - The request half stops at the next request boundary.
//! - The response half then stops at a response boundary once no response is awaited. While
//!   the tap follows the connection, that is the tap's count of requests waiting for their
//!   response: a Produce with `acks=0` gets none, so frame counts would wait for it forever.
//!   Once the tap gave up on the connection nothing is awaited: which requests get a response
//!   is no longer known, so the response half stops at its next boundary. With the tap off,
//!   the frame counts decide: requests forwarded against responses forwarded (and an `acks=0`
//!   producer is waited for until the grace is over).
//! - A connection without frames to wait for is not waited for: framing lost in either
//!   direction, or a request frame with more than [`DRAIN_MAX_REQUEST`] bytes still to come
//!   (a TLS ClientHello on the plaintext port reads as a 369 MB frame; a broker with Kafka's
//!   default `socket.request.max.bytes` of 100 MiB closes such a connection itself). Its
//!   halves stop at once, after the write in progress.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};

use sluice_protocol::tap::TapHalf;
use sluice_protocol::{Dir, FrameTracker, Framing};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::buffer::{BufferBudget, CopyBuffer};
use crate::error::{ConnError, Side};
use crate::stats::ProxyStats;
use crate::tap::ConnTap;
use crate::throttle::{ConnThrottle, ThrottleHalf};

/// At the drain, a request frame with more bytes than this still to come is not waited for:
/// Kafka's default `socket.request.max.bytes` (100 MiB), beyond which a broker refuses a
/// request and closes the connection.
pub const DRAIN_MAX_REQUEST: u32 = 100 << 20;

/// How a half ended without error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HalfEnd {
    /// The source closed its side; the close was passed on.
    Eof,
    /// The drain stopped it at a frame boundary.
    Drained,
}

/// What the two halves of one connection share.
#[derive(Debug, Default)]
pub struct Shared {
    /// Whole request frames forwarded to the broker.
    pub requests: AtomicU64,
    /// Whole response frames forwarded to the client.
    pub responses: AtomicU64,
    /// The request half stopped for the drain.
    pub requests_stopped: AtomicBool,
    /// Framing was lost in either direction, or a request is not one to wait for
    /// ([`DRAIN_MAX_REQUEST`]): request/response pairs can't be followed.
    pub opaque: AtomicBool,
    /// Wakes the response half when the request half stops.
    pub wake: Notify,
    /// Bytes forwarded client → broker so far.
    pub to_broker: AtomicU64,
    /// Bytes forwarded broker → client so far.
    pub to_client: AtomicU64,
}

impl Shared {
    /// Bytes forwarded either way so far: unchanged while the connection is idle.
    pub fn forwarded(&self) -> u64 {
        self.to_broker
            .load(Relaxed)
            .wrapping_add(self.to_client.load(Relaxed))
    }

    /// True when no response is awaited (see the module docs): `tap` is the connection's tap.
    fn nothing_in_flight(&self, tap: Option<&ConnTap>) -> bool {
        if self.opaque.load(Relaxed) {
            return true;
        }
        match tap.map(ConnTap::awaited_responses) {
            Some(Some(n)) => n == 0,
            Some(None) => true, // given up on: which requests get a response is not known
            None => self.responses.load(Relaxed) >= self.requests.load(Relaxed),
        }
    }
}

/// Which way a half copies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Client → broker: requests.
    ToBroker,
    /// Broker → client: responses.
    ToClient,
}

impl Direction {
    fn sides(self) -> (Side, Side) {
        match self {
            Direction::ToBroker => (Side::Client, Side::Broker),
            Direction::ToClient => (Side::Broker, Side::Client),
        }
    }

    /// The Kafka frames this half carries.
    fn frames(self) -> Dir {
        match self {
            Direction::ToBroker => Dir::Request,
            Direction::ToClient => Dir::Response,
        }
    }
}

/// One half: copies `from` → `to` until end of stream, an error, or the drain.
#[derive(Debug)]
pub struct Half<'a> {
    /// Which way.
    pub direction: Direction,
    /// Largest buffer size.
    pub max_buffer: usize,
    /// What all buffers together may grow by.
    pub budget: &'a BufferBudget,
    /// State shared with the other half.
    pub shared: &'a Shared,
    /// Process counters.
    pub stats: &'a ProxyStats,
    /// Cancelled when the proxy starts draining.
    pub drain: &'a CancellationToken,
    /// The protocol tap, when enabled.
    pub tap: Option<&'a ConnTap>,
    /// The connection's throttle handle.
    pub throttle: &'a ConnThrottle,
}

impl Half<'_> {
    /// Runs the half to its end. Returns bytes forwarded and how it ended.
    pub async fn run<R, W>(self, mut from: R, mut to: W) -> Result<(u64, HalfEnd), ConnError>
    where
        R: AsyncRead + Unpin,
        W: AsyncWrite + Unpin,
    {
        let (source, sink) = self.direction.sides();
        let (counter, forwarded) = match self.direction {
            Direction::ToBroker => (&self.stats.bytes_to_broker, &self.shared.to_broker),
            Direction::ToClient => (&self.stats.bytes_to_client, &self.shared.to_client),
        };
        let mut buf = CopyBuffer::new(self.max_buffer, self.budget);
        let mut frames = FrameTracker::new();
        let mut total = 0u64;
        let mut draining = false;
        // The bytes the tap would only count down, kept back from it.
        let mut tap_half = TapHalf::new(self.direction.frames());
        let mut throttled = ThrottleHalf::default();
        // One drain future for the whole connection: re-creating it per read would register
        // and unregister a waiter (a lock) on every chunk.
        let drain = self.drain.cancelled();
        tokio::pin!(drain);
        loop {
            if draining && self.done_draining(&frames) {
                return Ok((total, HalfEnd::Drained));
            }
            let read = if draining {
                // Keep forwarding, but wake up to re-check when the other half stops.
                tokio::select! {
                    r = from.read(buf.space()) => r,
                    _ = self.shared.wake.notified() => continue,
                }
            } else {
                tokio::select! {
                    biased;
                    _ = &mut drain => { draining = true; continue; }
                    r = from.read(buf.space()) => r,
                }
            };
            let n = read.map_err(|source_err| ConnError::Io {
                side: source,
                op: "read",
                source: source_err,
            })?;
            if n == 0 {
                // Pass the half-close on; the peer may already be gone, which is fine.
                let _ = to.shutdown().await;
                if self.direction == Direction::ToBroker {
                    self.stop_requests();
                }
                return Ok((total, HalfEnd::Eof));
            }
            let generation = self.throttle.engaged();
            if generation != 0 {
                let framing = frames.state();
                match self.direction {
                    Direction::ToBroker => {
                        let chunk = buf.filled(n);
                        if let Some(hold) =
                            throttled.before_request(self.throttle, generation, framing, chunk)
                        {
                            let started = std::time::Instant::now();
                            tokio::select! {
                                biased;
                                _ = &mut drain, if !draining => draining = true,
                                _ = tokio::time::sleep(hold.wait) => {}
                            }
                            throttled.held(self.throttle, &hold, started.elapsed());
                        }
                    }
                    Direction::ToClient => {
                        let chunk = &mut buf.space()[..n];
                        throttled.before_response(self.throttle, generation, framing, chunk);
                    }
                }
            } else if throttled.active() {
                throttled.reset();
            }
            to.write_all(buf.filled(n))
                .await
                .map_err(|e| ConnError::Io {
                    side: sink,
                    op: "write",
                    source: e,
                })?;
            total += n as u64;
            ProxyStats::add(counter, n as u64);
            forwarded.fetch_add(n as u64, Relaxed);
            self.observe(&mut frames, buf.filled(n));
            if let Some(tap) = self.tap {
                tap.observe(&mut tap_half, buf.filled(n));
            }
            buf.after_read(n);
        }
    }

    /// Follows the forwarded chunk's frames (after it was written).
    fn observe(&self, frames: &mut FrameTracker, chunk: &[u8]) {
        if frames.is_lost() {
            return;
        }
        let done = frames.feed(chunk);
        let counter = match self.direction {
            Direction::ToBroker => &self.shared.requests,
            Direction::ToClient => &self.shared.responses,
        };
        if done > 0 {
            counter.fetch_add(done, Relaxed);
        }
        if frames.is_lost() && !self.shared.opaque.swap(true, Relaxed) {
            if self.tap.is_none() {
                // With the tap on, the tap reports it (with its reason).
                ProxyStats::add(&self.stats.opaque_connections, 1);
            }
            tracing::debug!(direction = ?self.direction, state = ?frames.state(),
                "kafka framing lost; forwarding the rest untouched");
        }
    }

    fn done_draining(&self, frames: &FrameTracker) -> bool {
        match self.direction {
            Direction::ToBroker => {
                let unframed = frames.is_lost()
                    || matches!(frames.state(), Framing::Body { remaining } if remaining > DRAIN_MAX_REQUEST);
                if unframed {
                    self.shared.opaque.store(true, Relaxed);
                }
                if frames.at_boundary() || unframed {
                    self.stop_requests();
                    true
                } else {
                    false
                }
            }
            Direction::ToClient => {
                self.shared.requests_stopped.load(Relaxed)
                    && (frames.at_boundary()
                        || frames.is_lost()
                        || self.shared.opaque.load(Relaxed))
                    && self.shared.nothing_in_flight(self.tap)
            }
        }
    }

    fn stop_requests(&self) {
        self.shared.requests_stopped.store(true, Relaxed);
        self.shared.wake.notify_one();
    }
}
