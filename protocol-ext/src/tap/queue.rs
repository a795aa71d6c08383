//! What waits for [`ConnectionTap::settle`]: the events as the frames yielded them, Fetch
//! request bodies still undecoded, and request frames that came whole in one chunk, kept as
//! they are once their header was checked. Settling makes their events, decodes, applies fetch
//! sessions, Metadata and topic names, and hands them over in order with the time each was read.

use std::time::Instant;

use bytes::Bytes;

use super::direction::Current;
use super::enrich::identify;
use super::inflight::Pending;
use super::{ConnectionTap, FETCH, HEADER_PEEK_MAX, PRODUCE};
use crate::decode;
use crate::dir::Dir;
use crate::event::{FetchResponseStart, RequestSeen, ResponseSeen, TapEvent};
use crate::header;

/// Bytes of Fetch request bodies and whole requests a tap keeps before it asks to be
/// settled: a consumer's are ~100 bytes, but a client may send megabytes.
pub const MAX_QUEUED_BODY_BYTES: usize = 256 << 10;

/// Most events and bodies a tap keeps waiting when it is fed with
/// [`ConnectionTap::feed_bounded`]: feeding stops there until it is settled.
pub const MAX_QUEUED_EVENTS: usize = 1024;

/// Capacity the lists of what waits keep after they are settled: a list that grew larger
/// (a flood of events in one chunk) gives its memory back.
const KEEP_QUEUED: usize = 256;
/// Bytes of kept whole requests whose room is kept after they are settled.
const KEEP_RAW: usize = 16 << 10;

/// Largest request frame a tap keeps whole, undecoded until it is settled, when it arrives in
/// one chunk; larger ones, and ones split across chunks, are followed as they come.
pub const MAX_RAW_REQUEST: usize = 64 << 10;

/// An event or a body waiting for [`ConnectionTap::settle`]. One cache line:
/// the two events of every response are kept here whole, larger ones beside the queue.
#[derive(Debug)]
enum Queued {
    /// The next of [`Waiting`]'s events, as the frame yielded it; fetch sessions, topic names
    /// and Metadata are applied when it is settled.
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

/// What a tap keeps for [`ConnectionTap::settle`].
#[derive(Debug, Default)]
pub(super) struct Waiting {
    /// What waits, in the order it was read.
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
    /// Items waiting.
    pub(super) fn queued(&self) -> usize {
        self.queue.len()
    }

    /// Approximate bytes held: the lists' memory, the bodies and whole requests kept.
    pub(super) fn approx_bytes(&self) -> usize {
        self.queue.capacity() * std::mem::size_of::<Queued>()
            + self.events.capacity() * std::mem::size_of::<TapEvent>()
            + self.raw.capacity()
            + self.bytes
    }

    /// Gives back the room of lists that grew past what a busy connection needs (or all of it,
    /// for a connection no longer followed).
    fn trim(&mut self, all: bool) {
        let (items, raw) = if all { (0, 0) } else { (KEEP_QUEUED, KEEP_RAW) };
        if self.queue.capacity() > items {
            self.queue.shrink_to(items);
        }
        if self.events.capacity() > items {
            self.events.shrink_to(items);
        }
        if self.raw.capacity() > raw {
            self.raw.shrink_to(raw);
        }
    }

    /// Queues `item`, read at `at`.
    fn enqueue(&mut self, item: Queued, at: Instant) {
        if self.queue.is_empty() {
            self.oldest = Some(at);
        }
        self.queue.push(item);
    }

    /// Queues an event of the frame `correlation_id` (of a request or a response) read at `at`.
    pub(super) fn event(&mut self, dir: Dir, correlation_id: i32, event: TapEvent, at: Instant) {
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

impl ConnectionTap {
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
        self.wait.trim(self.opaque);
        if self.scratch.capacity() > KEEP_QUEUED || self.opaque {
            self.scratch = Vec::new();
        }
    }

    /// Keeps a whole request frame that came in one chunk for [`ConnectionTap::settle`]
    /// when nothing but its header needs looking at now: the header is
    /// checked and the request queued for its response, as [`ConnectionTap::request_header`]
    /// would. Returns false, having changed nothing, for the frames that path must follow: a
    /// Produce request, a header it would not accept, a full in-flight queue.
    pub(super) fn raw_request(&mut self, frame: &[u8], now: Instant) -> bool {
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

    /// Queues the body of the Fetch request `correlation_id`, undecoded, read at the time
    /// being fed.
    pub(super) fn put_fetch_request(&mut self, api_version: i16, correlation_id: i32, body: Bytes) {
        let at = self.at;
        self.wait.bytes += body.len();
        self.wait.enqueue(
            Queued::FetchRequest {
                api_version,
                correlation_id,
                body,
                at,
            },
            at,
        );
    }

    /// Queues `event` of the frame `correlation_id` of `dir`, read at the time being fed.
    pub(super) fn put(&mut self, dir: Dir, correlation_id: i32, event: TapEvent) {
        self.wait.event(dir, correlation_id, event, self.at);
    }
}

#[cfg(test)]
mod tests {
    /// A queued item is one cache line: a busy connection queues four per Fetch round trip,
    /// written and read back from memory.
    #[test]
    fn queued_items_fit_a_cache_line() {
        assert!(std::mem::size_of::<super::Queued>() <= 64);
    }
}
