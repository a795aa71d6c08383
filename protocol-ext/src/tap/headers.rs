//! A frame's header, once its first bytes are in: a request is identified, queued for its
//! response and reported; a response is matched to its request and reported; and either way
//! the header decides what becomes of the body (skipped, walked, or collected for decoding).

use std::time::Instant;

use bytes::BytesMut;

use super::body::FIRST_COLLECT;
use super::direction::{Body, Current};
use super::enrich::identify;
use super::inflight::{self, Pending};
use super::{ConnectionTap, FETCH, HEADER_PEEK_MAX, PRODUCE};
use crate::decode;
use crate::dir::Dir;
use crate::error::TapError;
use crate::event::{RequestSeen, ResponseSeen, TapEvent};
use crate::header;
use crate::walk::{peek_produce_acks, FetchResponseWalker, ProduceRequestWalker};

impl ConnectionTap {
    /// Tries to complete a request header from `req.head`.
    pub(super) fn request_header(&mut self, frame_len: u32, now: Instant) {
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
                return self.skip_rest(Dir::Request, frame_len);
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
                Body::Collect(BytesMut::with_capacity(body_len.min(FIRST_COLLECT)))
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
        self.start_with_head(Dir::Request, frame_len, header_len, body);
    }

    /// Tries to complete a response header from `resp.head`.
    pub(super) fn response_header(&mut self, frame_len: u32, now: Instant) {
        let Some(correlation_id) = header::peek_correlation_id(&self.dirs.resp.head) else {
            if self.dirs.resp.head.len() == frame_len as usize {
                self.problem(
                    Dir::Response,
                    TapError::Malformed {
                        what: "response header",
                        detail: "shorter than a correlation id".into(),
                    },
                );
                self.skip_rest(Dir::Response, frame_len);
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
                    return self.skip_rest(Dir::Response, frame_len);
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
                Body::Collect(BytesMut::with_capacity(body_len.min(FIRST_COLLECT)))
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
        self.start_with_head(Dir::Response, frame_len, header_len, body);
    }
}
