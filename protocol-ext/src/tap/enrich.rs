//! Connection-level context added to events when they are settled: fetch sessions (KIP-227),
//! topic names learned from Metadata (shared by every connection) filled in where a frame
//! names a topic by id, and the connection's `client.id`.

use std::sync::Arc;

use super::topics::{NameCache, TopicNames};
use super::ConnectionTap;
use crate::dir::Dir;
use crate::event::TapEvent;

impl ConnectionTap {
    /// Connection-level context: fetch sessions, topic names learned from Metadata.
    pub(super) fn enrich(&mut self, dir: Dir, correlation_id: i32, ev: &mut TapEvent) {
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
            TapEvent::FetchPartition(p) if dir == Dir::Response => {
                if p.last_offset.is_some() {
                    self.sessions
                        .on_delivered(correlation_id, &p.topic, p.partition);
                }
                self.topics.resolve_with(&mut self.names, &mut p.topic);
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
pub(super) fn identify(last: &mut Option<Arc<str>>, raw: Option<&[u8]>) -> Option<Arc<str>> {
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
pub(super) fn resolve_topics(topics: &TopicNames, names: &mut NameCache, ev: &mut TapEvent) {
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
