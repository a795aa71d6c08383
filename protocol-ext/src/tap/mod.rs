//! The connection tap: follows both directions of one Kafka connection, frame by frame, and
//! reports [`TapEvent`]s. Sans-io — the caller forwards each chunk first, then shows it here
//! with the time it was seen ([`ConnectionTap::feed`]), and collects the events when it likes
//! ([`ConnectionTap::settle`]).
//!
//! Per direction the state is O(1): a 4-byte length buffer, a small header buffer (bounded by
//! [`HEADER_PEEK_MAX`]) and a count of body bytes left. A body is then either skipped, walked
//! by a streaming walker (Fetch responses, Produce requests: batch headers only), or — for the
//! small bodies of interest — collected up to [`crate::decode::MAX_DECODE_BODY`] and decoded.
//!
//! Framing lost (a negative or absurd length) or a response that answers no pending request
//! makes the connection opaque: reported once, nothing more parsed. An empty frame (length 0)
//! is well-framed: a parse error of its own.
//!
//! Feeding only follows the frames: the events wait, with the bodies of Fetch requests
//! undecoded and requests that came whole in one chunk kept as they are (only their header
//! checked, and the request queued for its response), until [`ConnectionTap::settle`] makes
//! their events, decodes, applies fetch sessions, Metadata and topic names, and hands them over
//! with the time each was read — the same events, in the same order, whenever it is called
//! (after every chunk, or after many). The caller settles when it likes: a batch is full
//! ([`ConnectionTap::queued`]), the oldest event is old enough
//! ([`ConnectionTap::oldest_queued`]), or something other than a frequent event waits
//! ([`ConnectionTap::settle_now`]).
//!
//! Why wait: a consumer's Fetch round trip is a few events, and between two round trips the
//! kernel, the broker and the client move megabytes through the CPU caches. Decoding and
//! handing over a batch of round trips at once meets that code and state warm.
//!
//! # Layout
//! - this file: [`ConnectionTap`] (a connection's state and its calls), [`TapCounters`].
//! - `direction`: one direction's frame state machine — the length (the framing rule of
//!   [`crate::frame`]), the header's first bytes, the body's bytes left.
//! - `headers`: what a header says — a request identified and queued for its response, a
//!   response matched to its request — and what becomes of the body.
//! - `body`: a body walked, collected and decoded, or skipped; the frame counted at its end.
//! - `held`: [`TapHalf`], the held-bytes fast path a forwarding loop runs without a lock.
//! - `queue`: what waits for [`ConnectionTap::settle`], and settling it.
//! - `enrich`: fetch sessions, topic names and `client.id` applied to settled events.
//! - [`inflight`]: the FIFO of requests waiting for responses.
//! - [`session`]: fetch sessions (KIP-227) → the fetch offsets each request makes new.
//! - [`topics`]: the shared topic id → name map.

pub mod inflight;
pub mod session;
pub mod topics;

mod body;
mod direction;
mod enrich;
mod headers;
mod held;
mod queue;

use std::sync::Arc;
use std::time::Instant;

use crate::dir::Dir;
use crate::error::TapError;
use crate::event::{ParseProblem, TapEvent};
use crate::walk::FetchResponseWalker;
use direction::{Body, Both, Direction, Phase};
use inflight::InFlight;
use queue::Waiting;
use session::FetchSessions;
use topics::{NameCache, TopicNames};

pub use held::TapHalf;
pub use queue::{MAX_QUEUED_BODY_BYTES, MAX_QUEUED_EVENTS, MAX_RAW_REQUEST};

/// Most bytes of a frame's start kept to read its header (a request header with a
/// `client_id` up to this long; Produce also needs its `transactional_id` and `acks`).
pub const HEADER_PEEK_MAX: usize = 4096;

const PRODUCE: i16 = 0;
const FETCH: i16 = 1;

/// Counters of one connection's tap.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct TapCounters {
    /// Request frames completed.
    pub requests: u64,
    /// Response frames completed.
    pub responses: u64,
    /// Frames that could not be followed or decoded.
    pub parse_errors: u64,
}

/// Follows one Kafka connection in both directions. See the module docs.
#[derive(Debug)]
pub struct ConnectionTap {
    dirs: Both,
    inflight: InFlight,
    sessions: FetchSessions,
    topics: Arc<TopicNames>,
    names: NameCache,
    client_id: Option<Arc<str>>,
    opaque: bool,
    counters: TapCounters,
    /// What a collected body decodes to, before it is queued.
    scratch: Vec<TapEvent>,
    /// Events and bodies waiting for `settle`.
    wait: Waiting,
    /// The walker of the Fetch response being read (`Body::Fetch`), kept in place for the
    /// next one: no allocation, and no other memory to reach, per response.
    fetch: Option<FetchResponseWalker>,
    /// When the bytes being fed were read.
    at: Instant,
}

impl ConnectionTap {
    /// A tap for a new connection, sharing `topics` with the others.
    pub fn new(topics: Arc<TopicNames>) -> ConnectionTap {
        ConnectionTap {
            dirs: Both {
                req: Direction::new(),
                resp: Direction::new(),
            },
            inflight: InFlight::default(),
            sessions: FetchSessions::default(),
            topics,
            names: NameCache::default(),
            client_id: None,
            opaque: false,
            counters: TapCounters::default(),
            scratch: Vec::new(),
            wait: Waiting::default(),
            fetch: None,
            at: Instant::now(),
        }
    }

    /// Follows the next bytes of `half` (already forwarded), read at `now`, after the bytes
    /// `half` kept back ([`TapHalf::hold`]), and tells `half` which of the following bytes it
    /// may keep back: those the tap would pass over without looking at them (the inside of a
    /// body it skips) and, inside a `records` field, whole chunks of record batches, whose
    /// headers `half` walks itself. The events, and when they were read, are the same as
    /// feeding everything; a 1 MiB Fetch response then costs two calls (its start, the end of
    /// its records) instead of one per chunk read. An empty `chunk` just hands over what was
    /// kept. The events wait for [`ConnectionTap::settle`].
    pub fn feed(&mut self, half: &mut TapHalf, chunk: &[u8], now: Instant) {
        self.take_held(half);
        self.follow(half.dir(), chunk, now, false);
        self.tell_half(half);
    }

    /// Feeds as [`ConnectionTap::feed`] does, but stops once [`MAX_QUEUED_EVENTS`] wait —
    /// between frames, or right after the event of a walked partition that filled the queue —
    /// so that what waits stays bounded whatever one chunk holds (tens of thousands of empty
    /// partitions in a Produce request, say): at most [`MAX_QUEUED_EVENTS`], and the events
    /// of the body bytes read with a frame's header (fewer than [`HEADER_PEEK_MAX`]). Returns how many bytes of `chunk` were followed:
    /// fewer than all only when the queue is full; then settle ([`ConnectionTap::settle`])
    /// and feed the rest. The events are the same as feeding everything at once.
    pub fn feed_bounded(&mut self, half: &mut TapHalf, chunk: &[u8], now: Instant) -> usize {
        self.take_held(half);
        let followed = self.follow(half.dir(), chunk, now, true);
        self.tell_half(half);
        followed
    }

    /// True once the connection is no longer followed.
    pub fn is_opaque(&self) -> bool {
        self.opaque
    }

    /// The connection's counters.
    pub fn counters(&self) -> TapCounters {
        self.counters
    }

    /// Requests waiting for a response.
    pub fn in_flight(&self) -> usize {
        self.inflight.len()
    }

    /// The `client.id` last seen on this connection, as of the last [`ConnectionTap::settle`].
    pub fn client_id(&self) -> Option<&Arc<str>> {
        self.client_id.as_ref()
    }

    /// True when both directions are between frames.
    pub fn at_boundary(&self) -> bool {
        let idle = |d: &Direction| matches!(&d.phase, Phase::Length(p) if p.have() == 0);
        idle(&self.dirs.req) && idle(&self.dirs.resp)
    }

    /// Stops following the connection (still forwarded) and lets go of everything it kept but
    /// what waits to be settled: the tap gives up on it, and says why (once). Sluice gives up
    /// on the connection whose tap holds the most when the taps together hold more than
    /// their budget (`tap.memory_budget`).
    pub fn give_up(&mut self, reason: String) {
        self.go_opaque(reason);
        self.sessions = FetchSessions::default();
        self.inflight = InFlight::default();
        self.fetch = None;
        self.scratch = Vec::new();
        self.dirs = Both {
            req: Direction::new(),
            resp: Direction::new(),
        };
    }

    /// Approximate bytes this tap holds: its own, what waits to be settled, the frames being
    /// collected or walked, its fetch sessions and in-flight requests. Not counted: the heap
    /// behind the events that wait (topic names, strings, lists), usually small.
    pub fn approx_bytes(&self) -> usize {
        let dir = |d: &Direction| {
            d.head.spare()
                + match &d.phase {
                    Phase::Body {
                        body: Body::Collect(buf),
                        ..
                    } => buf.capacity(),
                    Phase::Body {
                        body: Body::Produce(_),
                        ..
                    } => std::mem::size_of::<crate::walk::ProduceRequestWalker>(),
                    _ => 0,
                }
        };
        std::mem::size_of::<ConnectionTap>()
            + self
                .fetch
                .as_ref()
                .map_or(0, |_| std::mem::size_of::<FetchResponseWalker>())
            + dir(&self.dirs.req)
            + dir(&self.dirs.resp)
            + self.scratch.capacity() * std::mem::size_of::<TapEvent>()
            + self.wait.approx_bytes()
            + self.sessions.approx_bytes()
            + self.inflight.approx_bytes()
    }

    /// Stops following the connection, and says why (once).
    fn go_opaque(&mut self, reason: String) {
        if !self.opaque {
            self.opaque = true;
            self.put(Dir::Response, 0, TapEvent::Opaque { reason });
        }
    }

    /// Reports that the frame being read in `dir` could not be followed or decoded.
    fn problem(&mut self, dir: Dir, error: TapError) {
        let c = self.dirs.get(dir).current;
        let event = self.parse_error(dir, c.api_key, c.api_version, error);
        self.put(dir, c.correlation_id, event);
    }

    /// Counts a frame that could not be followed or decoded, and its event.
    fn parse_error(
        &mut self,
        dir: Dir,
        api_key: i16,
        api_version: i16,
        error: TapError,
    ) -> TapEvent {
        self.counters.parse_errors += 1;
        TapEvent::ParseError(ParseProblem {
            dir,
            api_key,
            api_version,
            error,
        })
    }
}
