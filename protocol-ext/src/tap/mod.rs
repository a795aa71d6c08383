//! The connection tap: follows both directions of one Kafka connection, frame by frame, and
//! reports [`TapEvent`]s. Sans-io — the caller forwards each chunk first, then shows it here
//! with the time it was seen ([`ConnectionTap::feed`]), and collects the events when it likes
//! ([`ConnectionTap::settle`]).
//!
//! Per direction the state is O(1): a 4-byte length buffer, a small header buffer (bounded by
//! [`HEADER_PEEK_MAX`]) and a count of body bytes left. A body is then either skipped, walked
//! by a streaming walker (Fetch responses, Produce requests: batch headers only), or — for the
//! small bodies of interest — collected up to [`decode::MAX_DECODE_BODY`] and decoded.
//!
//! Framing lost (a negative or absurd length) or a response that answers no pending request
//! makes the connection opaque: reported once, nothing more parsed.
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
//! - this file: [`ConnectionTap`] and the per-direction frame state machine.
//! - [`inflight`]: the FIFO of requests waiting for responses.
//! - [`session`]: fetch sessions (KIP-227) → effective fetch offsets.
//! - [`topics`]: the shared topic id → name map.

pub mod inflight;
pub mod session;
pub mod topics;

use std::sync::Arc;
use std::time::Instant;

use bytes::{Bytes, BytesMut};

use crate::decode;
use crate::dir::Dir;
use crate::error::TapError;
use crate::event::{FetchResponseStart, ParseProblem, RequestSeen, ResponseSeen, TapEvent};
use crate::frame::LengthPrefix;
use crate::header;
use crate::walk::reader::Reader;
use crate::walk::records::RecordsWalk;
use crate::walk::{peek_produce_acks, FetchResponseWalker, ProduceRequestWalker};
use inflight::{InFlight, Pending};
use session::FetchSessions;
use topics::{NameCache, TopicNames};

/// Bytes of Fetch request bodies and whole requests a tap keeps before it asks to be
/// settled: a consumer's are ~100 bytes, but a client may send megabytes.
pub const MAX_QUEUED_BODY_BYTES: usize = 256 << 10;

/// Largest request frame a tap keeps whole when it arrives in one chunk (see
/// [`Queued::Request`]); larger ones, and ones split across chunks, are followed as they come.
pub const MAX_RAW_REQUEST: usize = 64 << 10;

/// Bytes of a frame's start first copied to read its header; more, up to [`HEADER_PEEK_MAX`],
/// only if the header is longer.
const FIRST_LOOK: usize = 64;

/// Most bytes of a frame's start kept to read its header (a request header with a
/// `client_id` up to this long; Produce also needs its `transactional_id` and `acks`).
pub const HEADER_PEEK_MAX: usize = 4096;

const PRODUCE: i16 = 0;
const FETCH: i16 = 1;

/// An event or a body waiting for [`ConnectionTap::settle`]. One cache line:
/// the two events of every response are kept here whole, larger ones beside the queue.
#[derive(Debug)]
enum Queued {
    /// The next event of [`ConnectionTap::events`], as the frame yielded it; fetch sessions,
    /// topic names and Metadata are applied when it is settled.
    Event {
        dir: Dir,
        correlation_id: i32,
        at: Instant,
    },
    /// [`TapEvent::Response`].
    Response { seen: ResponseSeen, at: Instant },
    /// [`TapEvent::FetchResponse`] of the response `correlation_id`.
    FetchResponse {
        start: FetchResponseStart,
        correlation_id: i32,
        at: Instant,
    },
    /// A whole request frame (without its length) that came in one chunk, at
    /// `raw[start..end]`: its header was checked and the request queued for its response when
    /// it was read; its events are made when it is settled. Produce requests are never kept so.
    Request {
        start: usize,
        end: usize,
        at: Instant,
    },
    /// A Fetch request body, decoded when it is settled.
    FetchRequest {
        api_version: i16,
        correlation_id: i32,
        body: Bytes,
        at: Instant,
    },
}

impl Queued {
    /// When the bytes it came from were read.
    fn at(&self) -> Instant {
        match self {
            Queued::Event { at, .. }
            | Queued::Response { at, .. }
            | Queued::FetchResponse { at, .. }
            | Queued::Request { at, .. }
            | Queued::FetchRequest { at, .. } => *at,
        }
    }
}

/// Events a consumer or producer yields on every round trip; any other kind is a reason to
/// settle at once (see [`ConnectionTap::settle_now`]).
fn frequent(ev: &TapEvent) -> bool {
    matches!(
        ev,
        TapEvent::Request(_)
            | TapEvent::Response(_)
            | TapEvent::FetchRequest(_)
            | TapEvent::FetchResponse(_)
            | TapEvent::FetchPartition(_)
            | TapEvent::ProduceRequest(_)
            | TapEvent::ProducePartition(_)
    )
}

/// What to do with the rest of a frame body.
#[derive(Debug)]
enum Body {
    Skip,
    Collect(BytesMut),
    /// Walked by [`ConnectionTap::fetch`] (only responses are).
    Fetch,
    Produce(Box<ProduceRequestWalker>),
}

/// Frame state of one direction.
#[derive(Debug)]
enum Phase {
    /// Reading the 4-byte length.
    Length(LengthPrefix),
    /// Collecting the first bytes of a frame of `frame_len` bytes until its header parses.
    Header { frame_len: u32 },
    /// Inside the body with `left` bytes to go.
    Body { left: u32, body: Body },
}

/// The frame currently being read in one direction.
#[derive(Debug, Clone, Copy, Default)]
struct Current {
    api_key: i16,
    api_version: i16,
    correlation_id: i32,
}

impl Current {
    /// A frame whose header is not read yet, or not readable.
    const UNKNOWN: Current = Current {
        api_key: -1,
        api_version: -1,
        correlation_id: 0,
    };
}

/// The first bytes of a frame, kept to read its header: the first [`FIRST_LOOK`] in place (in
/// the tap's own memory, where a consumer's headers fit), more in a buffer of their own.
#[derive(Debug)]
struct Head {
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

#[derive(Debug)]
struct Direction {
    phase: Phase,
    head: Head,
    current: Current,
}

impl Direction {
    fn new() -> Direction {
        Direction {
            phase: Phase::Length(LengthPrefix::default()),
            head: Head::default(),
            current: Current::default(),
        }
    }
}

/// The frame state of both directions.
#[derive(Debug)]
struct Both {
    req: Direction,
    resp: Direction,
}

impl Both {
    fn get(&self, dir: Dir) -> &Direction {
        match dir {
            Dir::Request => &self.req,
            Dir::Response => &self.resp,
        }
    }

    fn get_mut(&mut self, dir: Dir) -> &mut Direction {
        match dir {
            Dir::Request => &mut self.req,
            Dir::Response => &mut self.resp,
        }
    }
}

/// One direction of a connection as its forwarding loop holds it: which way its bytes go, and
/// what it keeps between chunks so as not to show the tap the bytes the tap would only count
/// down ([`TapHalf::hold`]). Sluice's forwarding loop keeps one per half, outside the lock
/// around the [`ConnectionTap`], and shows the tap a chunk with [`ConnectionTap::feed`] only
/// when [`TapHalf::hold`] says no.
#[derive(Debug, Clone)]
pub struct TapHalf {
    held: Held,
    dir: Dir,
}

impl TapHalf {
    /// The half that carries `dir`'s frames, before its first byte.
    pub fn new(dir: Dir) -> TapHalf {
        TapHalf {
            held: Held::default(),
            dir,
        }
    }

    /// Which way this half's bytes go.
    pub fn dir(&self) -> Dir {
        self.dir
    }

    /// Keeps `chunk` (already forwarded) back from the tap if the tap would only count it
    /// down (the inside of a body it skips) or walk batch headers in it without reporting
    /// anything (record data of a Fetch response or a Produce request); `false` when it must
    /// be shown with [`ConnectionTap::feed`]. A kept chunk costs a few subtractions, or a step
    /// of a copy of the `records` walk, and touches no tap state: no lock is needed. The tap
    /// learns what was kept with the next chunk it is shown.
    #[inline]
    pub fn hold(&mut self, chunk: &[u8]) -> bool {
        self.held.hold(chunk)
    }

    /// Keeps everything back from now on (the tap gave up on the connection, or cannot be
    /// reached).
    pub fn give_up(&mut self) {
        self.held.forever();
    }
}

/// What a [`TapHalf`] keeps between chunks so as not to show the tap the bytes it would only
/// count down.
///
/// Inside the `records` field of a Fetch response or a Produce request it walks the record
/// batches ahead itself, batch header after batch header, on a copy of the walker's state:
/// a chunk that ends inside the field without anything to report (its end, a bad batch) is
/// held, and the walker takes the copy back with the next chunk it is shown. A 1 MiB Fetch
/// response of large batches is then shown to the tap in two reads (its start, the end of its
/// records), not one per batch.
#[derive(Debug, Default, Clone)]
struct Held {
    /// Bytes that may still be held back (`u64::MAX`: all of them, the tap gave up).
    quiet: u64,
    /// Bytes held back since the tap was last shown a chunk.
    held: u64,
    /// Inside a `records` field: the walk there, carried on over the held chunks.
    records: Option<RecordsAhead>,
}

/// A walker's `records` field state, walked ahead by `Held`.
#[derive(Debug, Clone)]
struct RecordsAhead {
    walk: RecordsWalk,
    r: Reader,
    /// Bytes strictly inside the frame: the byte that ends it must be fed to the tap, even
    /// where a (malformed) field claims to go on past it.
    inside: u64,
}

impl Held {
    /// See [`TapHalf::hold`].
    fn hold(&mut self, chunk: &[u8]) -> bool {
        let len = chunk.len() as u64;
        if self.quiet == u64::MAX {
            return true; // the tap gave up on the connection: nothing more to show it
        }
        if len <= self.quiet {
            self.quiet -= len;
            self.held += len;
            return true;
        }
        let Some(ahead) = &mut self.records else {
            return false;
        };
        if len > ahead.inside {
            return false;
        }
        // Most chunks of large batches lie inside one batch body: counted down in place.
        if ahead.walk.skip_inside(len) {
            ahead.inside -= len;
            self.held += len;
            return true;
        }
        // On a copy: kept only if the whole chunk is inside the field and yields nothing.
        let mut trial = ahead.clone();
        let mut input = chunk;
        match trial.walk.feed(&mut trial.r, &mut input) {
            Ok(None) if input.is_empty() => {
                *ahead = trial;
                ahead.inside -= len;
                self.held += len;
                true
            }
            _ => false,
        }
    }

    /// Keeps everything back from now on.
    fn forever(&mut self) {
        self.quiet = u64::MAX;
        self.records = None;
    }
}

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

/// What a tap keeps for [`ConnectionTap::settle`].
#[derive(Debug, Default)]
struct Waiting {
    queue: Vec<Queued>,
    /// The events of the [`Queued::Event`]s in `queue`, in order.
    events: Vec<TapEvent>,
    /// Something in `queue` is not [`frequent`].
    urgent: bool,
    /// Bytes of the Fetch request bodies and whole requests in `queue`.
    bytes: usize,
    /// When the first item in `queue` was read: [`ConnectionTap::oldest_queued`] is asked
    /// after every chunk, and the queue's first item is long out of cache by then.
    oldest: Option<Instant>,
    /// The whole requests in `queue` ([`Queued::Request`]), one after the other.
    raw: Vec<u8>,
}

impl Waiting {
    /// Queues `item`, read at `at`.
    fn enqueue(&mut self, item: Queued, at: Instant) {
        if self.queue.is_empty() {
            self.oldest = Some(at);
        }
        self.queue.push(item);
    }

    /// Queues an event of the frame `correlation_id` (of a request or a response) read at `at`.
    fn event(&mut self, dir: Dir, correlation_id: i32, event: TapEvent, at: Instant) {
        self.urgent |= !frequent(&event);
        let item = match event {
            TapEvent::Response(seen) if dir == Dir::Response => Queued::Response { seen, at },
            TapEvent::FetchResponse(start) if dir == Dir::Response => Queued::FetchResponse {
                start,
                correlation_id,
                at,
            },
            event => {
                self.events.push(event);
                Queued::Event {
                    dir,
                    correlation_id,
                    at,
                }
            }
        };
        self.enqueue(item, at);
    }
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
    /// The walker of the Fetch response being read ([`Body::Fetch`]), kept in place for the
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

    /// Events and bodies waiting to be settled.
    pub fn queued(&self) -> usize {
        self.wait.queue.len()
    }

    /// When the oldest waiting item was read.
    pub fn oldest_queued(&self) -> Option<Instant> {
        debug_assert_eq!(self.wait.oldest, self.wait.queue.first().map(Queued::at));
        self.wait.oldest
    }

    /// True when a waiting event is not one of the frequent kinds (requests, responses, Fetch
    /// and Produce) — a group, offset or metadata event, a problem, the connection given up on,
    /// a kept request whose body decodes to one — or when the waiting Fetch request bodies and
    /// kept requests hold more than [`MAX_QUEUED_BODY_BYTES`].
    pub fn settle_now(&self) -> bool {
        self.wait.urgent || self.wait.bytes > MAX_QUEUED_BODY_BYTES
    }

    /// Decodes and hands over everything waiting, in order, with the time each was read.
    pub fn settle(&mut self, out: &mut impl FnMut(TapEvent, Instant)) {
        let mut queue = std::mem::take(&mut self.wait.queue);
        let mut raw = std::mem::take(&mut self.wait.raw);
        let mut events = std::mem::take(&mut self.wait.events);
        let mut waiting = events.drain(..);
        for item in queue.drain(..) {
            match item {
                Queued::Response { seen, at } => out(TapEvent::Response(seen), at),
                Queued::FetchResponse {
                    start,
                    correlation_id,
                    at,
                } => {
                    self.sessions.on_response(correlation_id, start.session_id);
                    out(TapEvent::FetchResponse(start), at);
                }
                Queued::Request { start, end, at } => {
                    self.settle_request(&raw[start..end], &mut |event| out(event, at));
                }
                Queued::Event {
                    dir,
                    correlation_id,
                    at,
                } => {
                    let Some(mut event) = waiting.next() else {
                        debug_assert!(false, "an event is queued for every Queued::Event");
                        continue;
                    };
                    self.enrich(dir, correlation_id, &mut event);
                    out(event, at);
                }
                Queued::FetchRequest {
                    api_version,
                    correlation_id,
                    body,
                    at,
                } => self.settle_body(FETCH, api_version, correlation_id, body, &mut |event| {
                    out(event, at)
                }),
            }
        }
        drop(waiting);
        raw.clear();
        self.wait = Waiting {
            queue,
            events,
            urgent: false,
            bytes: 0,
            oldest: None,
            raw,
        };
    }

    /// Keeps a whole request frame that came in one chunk for [`ConnectionTap::settle`]
    /// when nothing but its header needs looking at now: the header is
    /// checked and the request queued for its response, as [`ConnectionTap::request_header`]
    /// would. Returns false, having changed nothing, for the frames that path must follow: a
    /// Produce request, a header it would not accept, a full in-flight queue.
    fn raw_request(&mut self, frame: &[u8], now: Instant) -> bool {
        if frame.len() > MAX_RAW_REQUEST {
            return false;
        }
        let window = &frame[..frame.len().min(HEADER_PEEK_MAX)];
        let Ok(Some(h)) = header::parse_request_header(window) else {
            return false;
        };
        if h.api_key == PRODUCE {
            return false;
        }
        let pushed = self.inflight.push(Pending {
            correlation_id: h.correlation_id,
            api_key: h.api_key,
            api_version: h.api_version,
            sent_at: now,
            size: frame.len() as u64 + 4,
        });
        if !pushed {
            return false;
        }
        self.dirs.req.current = Current {
            api_key: h.api_key,
            api_version: h.api_version,
            correlation_id: h.correlation_id,
        };
        // What the body decodes to is not frequent, except for Fetch.
        let wait = &mut self.wait;
        wait.urgent |= h.api_key != FETCH && decode::wants_request_body(h.api_key, h.api_version);
        let start = wait.raw.len();
        wait.raw.extend_from_slice(frame);
        wait.bytes += frame.len();
        let end = wait.raw.len();
        wait.enqueue(
            Queued::Request {
                start,
                end,
                at: now,
            },
            now,
        );
        self.counters.requests += 1;
        true
    }

    /// The events of a request kept whole by [`ConnectionTap::raw_request`], as
    /// [`ConnectionTap::request_header`] and the body would have yielded them.
    fn settle_request(&mut self, frame: &[u8], out: &mut dyn FnMut(TapEvent)) {
        let window = &frame[..frame.len().min(HEADER_PEEK_MAX)];
        let Ok(Some(h)) = header::parse_request_header(window) else {
            debug_assert!(
                false,
                "a kept request's header was checked when it was read"
            );
            return;
        };
        let (api_key, api_version, correlation_id) = (h.api_key, h.api_version, h.correlation_id);
        let client_id = identify(&mut self.client_id, h.client_id);
        let seen = RequestSeen {
            api_key,
            api_version,
            correlation_id,
            client_id,
            size: frame.len() as u64 + 4,
            expects_response: true,
        };
        out(TapEvent::Request(seen));
        if decode::wants_request_body(api_key, api_version) {
            let body = Bytes::copy_from_slice(&frame[h.len..]);
            self.settle_body(api_key, api_version, correlation_id, body, out);
        }
    }

    /// The events a request body decodes to, enriched, or its parse error.
    fn settle_body(
        &mut self,
        api_key: i16,
        api_version: i16,
        correlation_id: i32,
        body: Bytes,
        out: &mut dyn FnMut(TapEvent),
    ) {
        let mut events = std::mem::take(&mut self.scratch);
        match decode::decode_request(api_key, api_version, body, &mut events) {
            Ok(()) => {
                for mut event in events.drain(..) {
                    self.enrich(Dir::Request, correlation_id, &mut event);
                    out(event);
                }
            }
            Err(error) => out(self.parse_error(Dir::Request, api_key, api_version, error)),
        }
        events.clear();
        self.scratch = events;
    }

    /// Queues `event` of the frame `correlation_id` of `dir`, read at the time being fed.
    fn put(&mut self, dir: Dir, correlation_id: i32, event: TapEvent) {
        self.wait.event(dir, correlation_id, event, self.at);
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

    /// Follows the next bytes of `half` (already forwarded), read at `now`, after the bytes
    /// `half` kept back ([`TapHalf::hold`]), and tells `half` which of the following bytes it
    /// may keep back: those the tap would pass over without looking at them (the inside of a
    /// body it skips) and, inside a `records` field, whole chunks of record batches, whose
    /// headers `half` walks itself. The events, and when they were read, are the same as
    /// feeding everything; a 1 MiB Fetch response then costs two calls (its start, the end of
    /// its records) instead of one per chunk read. An empty `chunk` just hands over what was
    /// kept. The events wait for [`ConnectionTap::settle`].
    pub fn feed(&mut self, half: &mut TapHalf, chunk: &[u8], now: Instant) {
        let (dir, held) = (half.dir, &mut half.held);
        let held_bytes = std::mem::take(&mut held.held);
        self.pass(dir, held_bytes);
        if let Some(ahead) = held.records.take().filter(|_| held_bytes > 0) {
            self.adopt(dir, ahead);
        }
        self.follow(dir, chunk, now);
        held.quiet = self.quiet(dir);
        held.records = self.records_ahead(dir);
    }

    /// The `records` field state of the walker of one direction's body, when it is inside one
    /// (see [`TapHalf::hold`]).
    fn records_ahead(&self, dir: Dir) -> Option<RecordsAhead> {
        if self.opaque {
            return None;
        }
        let state = self.dirs.get(dir);
        let Phase::Body { left, body } = &state.phase else {
            return None;
        };
        let (walk, r) = match body {
            Body::Fetch => self.fetch.as_ref()?.records_ahead()?,
            Body::Produce(w) => w.records_ahead()?,
            Body::Skip | Body::Collect(_) => return None,
        };
        Some(RecordsAhead {
            walk,
            r,
            inside: u64::from(*left).saturating_sub(1),
        })
    }

    /// Takes back the `records` walk `Held` carried on over the bytes it held.
    fn adopt(&mut self, dir: Dir, ahead: RecordsAhead) {
        if self.opaque {
            return;
        }
        let state = self.dirs.get_mut(dir);
        let Phase::Body { body, .. } = &mut state.phase else {
            debug_assert!(false, "records walked ahead outside a body");
            return;
        };
        match body {
            Body::Fetch => {
                if let Some(w) = &mut self.fetch {
                    w.adopt_records(ahead.walk, ahead.r);
                }
            }
            Body::Produce(w) => w.adopt_records(ahead.walk, ahead.r),
            Body::Skip | Body::Collect(_) => {
                debug_assert!(false, "records walked ahead of no walker")
            }
        }
    }

    /// How many of the next bytes in one direction the tap would pass over without looking at
    /// them (`u64::MAX` once the connection is opaque).
    fn quiet(&self, dir: Dir) -> u64 {
        if self.opaque {
            return u64::MAX;
        }
        let state = self.dirs.get(dir);
        let Phase::Body { left, body } = &state.phase else {
            return 0;
        };
        match body {
            // Strictly inside: the byte that ends the frame must be fed.
            Body::Skip => u64::from(*left).saturating_sub(1),
            // A walker's record data is walked ahead by `Held` instead (`records_ahead`).
            Body::Fetch | Body::Produce(_) | Body::Collect(_) => 0,
        }
    }

    /// Counts down the next `n` bytes of one direction, held back strictly inside the frame
    /// (see [`TapHalf::hold`]), as if they had been fed; a walker takes its state from `Held`
    /// (`adopt`).
    fn pass(&mut self, dir: Dir, n: u64) {
        if self.opaque || n == 0 {
            return;
        }
        let state = self.dirs.get_mut(dir);
        if let Phase::Body { left, .. } = &mut state.phase {
            debug_assert!(n < u64::from(*left), "held {n} of {left} bytes left");
            *left -= u32::try_from(n)
                .unwrap_or(u32::MAX)
                .min(left.saturating_sub(1));
        }
    }

    fn go_opaque(&mut self, reason: String) {
        if !self.opaque {
            self.opaque = true;
            self.put(Dir::Response, 0, TapEvent::Opaque { reason });
        }
    }

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

    /// The frame state machine of one direction: length, header, body.
    fn follow(&mut self, dir: Dir, mut chunk: &[u8], now: Instant) {
        self.at = now;
        while !chunk.is_empty() && !self.opaque {
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
                    let room = (frame_len as usize).min(HEADER_PEEK_MAX) - state.head.len();
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
                    let (part, rest) = chunk.split_at(take);
                    chunk = rest;
                    self.body_bytes(dir, part, now);
                }
            }
        }
    }

    /// Tries to complete a request header from `req.head`.
    fn request_header(&mut self, frame_len: u32, now: Instant) {
        let complete = self.dirs.req.head.len() == frame_len as usize;
        let full = self.dirs.req.head.len() >= HEADER_PEEK_MAX;
        let parsed = header::parse_request_header(&self.dirs.req.head);
        let h = match parsed {
            Ok(Some(h)) => h,
            Ok(None) if !(complete || full) => return,
            Ok(None) | Err(_) => {
                let error = parsed.err().unwrap_or(TapError::Malformed {
                    what: "request header",
                    detail: format!("incomplete in the first {} bytes", self.dirs.req.head.len()),
                });
                self.dirs.req.current = Current::UNKNOWN;
                self.problem(Dir::Request, error);
                return self.start_body(Dir::Request, frame_len, Body::Skip, now);
            }
        };
        let (api_key, api_version, correlation_id, header_len) =
            (h.api_key, h.api_version, h.correlation_id, h.len);
        let mut expects_response = true;
        let mut body = Body::Skip;
        let body_len = frame_len as usize - header_len;
        if api_key == PRODUCE {
            if let Ok(walker) = ProduceRequestWalker::new(api_version) {
                match peek_produce_acks(api_version, &self.dirs.req.head[header_len..]) {
                    Some(acks) => expects_response = acks != 0,
                    None if !(complete || full) => return,
                    None => {}
                }
                body = Body::Produce(Box::new(walker));
            }
        } else if decode::wants_request_body(api_key, api_version) {
            body = if body_len <= decode::MAX_DECODE_BODY {
                Body::Collect(BytesMut::with_capacity(body_len))
            } else {
                Body::Skip
            };
        }
        // The header is complete: identify the client, queue the request, report it.
        let client_id = identify(&mut self.client_id, h.client_id);
        self.dirs.req.current = Current {
            api_key,
            api_version,
            correlation_id,
        };
        if expects_response
            && !self.inflight.push(Pending {
                correlation_id,
                api_key,
                api_version,
                sent_at: now,
                size: u64::from(frame_len) + 4,
            })
        {
            return self.go_opaque(format!(
                "more than {} requests in flight",
                inflight::MAX_IN_FLIGHT
            ));
        }
        let seen = RequestSeen {
            api_key,
            api_version,
            correlation_id,
            client_id,
            size: u64::from(frame_len) + 4,
            expects_response,
        };
        self.put(Dir::Request, correlation_id, TapEvent::Request(seen));
        if body_len > decode::MAX_DECODE_BODY && decode::wants_request_body(api_key, api_version) {
            self.problem(
                Dir::Request,
                TapError::TooLarge {
                    what: "request",
                    size: body_len as u64,
                    limit: decode::MAX_DECODE_BODY as u64,
                },
            );
        }
        self.start_with_head(Dir::Request, frame_len, header_len, body, now);
    }

    /// Tries to complete a response header from `resp.head`.
    fn response_header(&mut self, frame_len: u32, now: Instant) {
        let Some(correlation_id) = header::peek_correlation_id(&self.dirs.resp.head) else {
            if self.dirs.resp.head.len() == frame_len as usize {
                self.problem(
                    Dir::Response,
                    TapError::Malformed {
                        what: "response header",
                        detail: "shorter than a correlation id".into(),
                    },
                );
                self.start_body(Dir::Response, frame_len, Body::Skip, now);
            }
            return;
        };
        if self.dirs.resp.current.api_key < 0 {
            let Some((pending, _skipped)) = self.inflight.take(correlation_id) else {
                return self.go_opaque(format!(
                    "response with correlation id {correlation_id} matches no request"
                ));
            };
            self.dirs.resp.current = Current {
                api_key: pending.api_key,
                api_version: pending.api_version,
                correlation_id,
            };
            let seen = ResponseSeen {
                api_key: pending.api_key,
                api_version: pending.api_version,
                correlation_id,
                size: u64::from(frame_len) + 4,
                request_size: pending.size,
                latency: now.saturating_duration_since(pending.sent_at),
            };
            self.put(Dir::Response, correlation_id, TapEvent::Response(seen));
        }
        let Current {
            api_key,
            api_version,
            ..
        } = self.dirs.resp.current;
        let complete = self.dirs.resp.head.len() == frame_len as usize;
        let full = self.dirs.resp.head.len() >= HEADER_PEEK_MAX;
        let header_len =
            match header::response_header_len(&self.dirs.resp.head, api_key, api_version) {
                Ok(Some(n)) => n,
                Ok(None) if !(complete || full) => return,
                Ok(None) | Err(_) => {
                    self.problem(
                        Dir::Response,
                        TapError::Malformed {
                            what: "response header",
                            detail: "bad tagged fields".into(),
                        },
                    );
                    return self.start_body(Dir::Response, frame_len, Body::Skip, now);
                }
            };
        let body_len = frame_len as usize - header_len;
        let body = if api_key == FETCH {
            match FetchResponseWalker::new(api_version) {
                Ok(w) => {
                    self.fetch = Some(w);
                    Body::Fetch
                }
                Err(_) => Body::Skip,
            }
        } else if decode::wants_response_body(api_key, api_version) {
            if body_len <= decode::MAX_DECODE_BODY {
                Body::Collect(BytesMut::with_capacity(body_len))
            } else {
                self.problem(
                    Dir::Response,
                    TapError::TooLarge {
                        what: "response",
                        size: body_len as u64,
                        limit: decode::MAX_DECODE_BODY as u64,
                    },
                );
                Body::Skip
            }
        } else {
            Body::Skip
        };
        self.start_with_head(Dir::Response, frame_len, header_len, body, now);
    }

    /// Enters the body phase and feeds it the body bytes already collected in `head`.
    fn start_with_head(
        &mut self,
        dir: Dir,
        frame_len: u32,
        header_len: usize,
        body: Body,
        now: Instant,
    ) {
        let state = self.dirs.get_mut(dir);
        let head = std::mem::take(&mut state.head);
        let seen = head.len();
        state.phase = Phase::Body {
            left: frame_len - header_len as u32,
            body,
        };
        if seen > header_len {
            self.body_bytes(dir, &head[header_len..], now);
        } else if frame_len as usize == header_len {
            self.body_bytes(dir, &[], now);
        }
        let state = self.dirs.get_mut(dir);
        state.head = head;
        state.head.clear();
    }

    /// Enters the body phase for a frame whose header bytes were all consumed as `head`.
    fn start_body(&mut self, dir: Dir, frame_len: u32, body: Body, now: Instant) {
        let state = self.dirs.get_mut(dir);
        let seen = state.head.len() as u32;
        state.head.clear();
        state.phase = Phase::Body {
            left: frame_len - seen,
            body,
        };
        if frame_len == seen {
            self.body_bytes(dir, &[], now);
        }
    }

    /// Feeds body bytes (at most what is left of the frame) and finishes the frame at its end.
    fn body_bytes(&mut self, dir: Dir, part: &[u8], _now: Instant) {
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
                self.wait.bytes += bytes.len();
                let at = self.at;
                self.wait.enqueue(
                    Queued::FetchRequest {
                        api_version: current.api_version,
                        correlation_id: current.correlation_id,
                        body: bytes,
                        at,
                    },
                    at,
                );
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

    /// A frame of length 0 (see [`crate::frame`]'s framing rule): well-framed, but with no
    /// header to read, so a parse error of its own.
    fn empty_frame(&mut self, dir: Dir) {
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
    fn frame_done(&mut self, dir: Dir) {
        match dir {
            Dir::Request => self.counters.requests += 1,
            Dir::Response => {
                self.counters.responses += 1;
                self.dirs.resp.current.api_key = -1;
            }
        }
    }

    /// Queues what a collected body decoded to.
    fn flush(&mut self, dir: Dir, correlation_id: i32) {
        let mut events = std::mem::take(&mut self.scratch);
        for ev in events.drain(..) {
            self.put(dir, correlation_id, ev);
        }
        self.scratch = events;
    }

    /// Connection-level context: fetch sessions, topic names learned from Metadata.
    fn enrich(&mut self, dir: Dir, correlation_id: i32, ev: &mut TapEvent) {
        match ev {
            TapEvent::FetchRequest(info) if dir == Dir::Request => {
                self.sessions.on_request(correlation_id, info);
                for p in &mut info.partitions {
                    self.topics.resolve_with(&mut self.names, &mut p.topic);
                }
            }
            TapEvent::FetchResponse(start) if dir == Dir::Response => {
                self.sessions.on_response(correlation_id, start.session_id);
            }
            TapEvent::Metadata { topics, .. } => {
                for t in topics.iter() {
                    if let (Some(id), Some(name)) = (t.id, &t.name) {
                        self.topics.learn(id, name);
                    }
                }
            }
            _ => resolve_topics(&self.topics, &mut self.names, ev),
        }
    }
}

/// The `client.id` a request header gives (raw bytes, `None` for null), shared with `last`
/// (the one last seen on the connection) when it did not change, and remembered there.
fn identify(last: &mut Option<Arc<str>>, raw: Option<&[u8]>) -> Option<Arc<str>> {
    let client_id = raw.map(|raw| match last {
        Some(known) if known.as_bytes() == raw => known.clone(),
        _ => Arc::from(String::from_utf8_lossy(raw).as_ref()),
    });
    if client_id.is_some() {
        last.clone_from(&client_id);
    }
    client_id
}

/// Fills in names of topics given by id, where the event carries topics.
fn resolve_topics(topics: &TopicNames, names: &mut NameCache, ev: &mut TapEvent) {
    match ev {
        TapEvent::FetchPartition(p) => topics.resolve_with(names, &mut p.topic),
        TapEvent::ProducePartition(p) => topics.resolve_with(names, &mut p.topic),
        TapEvent::ConsumerGroupHeartbeatResponse {
            assignment: Some(a),
            ..
        }
        | TapEvent::SyncGroupResponse {
            assignment: Some(a),
            ..
        } => {
            for (t, _) in a.iter_mut() {
                topics.resolve_with(names, t);
            }
        }
        _ => {}
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

    /// A queued item is one cache line: a busy connection queues four per Fetch round trip,
    /// written and read back from memory.
    #[test]
    fn queued_items_fit_a_cache_line() {
        assert!(std::mem::size_of::<super::Queued>() <= 64);
    }
}
