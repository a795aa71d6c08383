//! Fetch sessions (KIP-227): a consumer opens a session with a full Fetch (session id 0,
//! epoch 0); the broker answers with a session id; later requests (epoch ≥ 1) list only the
//! partitions whose fetch state changed, plus the ones to forget. Per connection, this keeps
//! each session's partitions and their last fetch offset.
//!
//! The cost of a request is proportional to what it lists, never to the session's size: an
//! incremental request is reported with the partitions it lists (each once, with the last
//! offset listed) and the session's partitions that were delivered records since the last
//! request without being listed again — fetched again from the offset the session keeps, which
//! a consumer of the event sees as the fetch it is. A partition neither listed nor delivered
//! is fetched from where it was last reported: nothing new to say. Forgetting costs one map
//! removal per forgotten partition.

use std::collections::VecDeque;

use crate::event::{FetchRequestInfo, FetchRequestPartition, TopicRef};

/// Sessions kept per connection (a consumer has one per broker connection).
pub const MAX_SESSIONS: usize = 8;
/// Partitions kept per connection, all its sessions (open or opening) together. A session
/// that would not fit pushes out the connection's older ones; beyond this, a session keeps
/// the partitions it was opened with first.
pub const MAX_SESSION_PARTITIONS: usize = 100_000;
/// Full fetches waiting for the session id in their response.
const MAX_OPENING: usize = 8;

/// Approximate bytes a kept partition costs (its key, its entry, the map's slack).
pub const PARTITION_BYTES: usize = 96;

/// A topic partition as the frames name it (before topic ids are resolved to names).
type Key = (TopicRef, i32);

/// What a session keeps of one partition.
#[derive(Debug, Clone, Copy)]
struct Kept {
    fetch_offset: i64,
    partition_max_bytes: i32,
    /// Delivered records since it was last reported (then listed in `Session::delivered`).
    delivered: bool,
    /// The request that last reported it (see `FetchSessions::request`).
    reported: u64,
}

/// One open session.
#[derive(Debug)]
struct Session {
    id: i32,
    parts: foldhash::HashMap<Key, Kept>,
    /// Partitions delivered records since the last request, each once.
    delivered: Vec<Key>,
}

/// Fetch sessions of one connection.
#[derive(Debug, Default)]
pub struct FetchSessions {
    sessions: VecDeque<Session>,
    /// Full fetches waiting for their session id: `(correlation id, partitions listed)`.
    opening: VecDeque<(i32, Vec<FetchRequestPartition>)>,
    /// Partitions kept in `sessions` and `opening`, at most [`MAX_SESSION_PARTITIONS`].
    kept: usize,
    /// The response being settled: `(correlation id, session id)`.
    answering: Option<(i32, i32)>,
    /// Requests applied to a session so far.
    request: u64,
    /// Incremental requests for a session this connection never saw open.
    pub unknown_sessions: u64,
}

fn size(s: &Session) -> usize {
    s.parts.len()
}

impl FetchSessions {
    /// Applies a decoded Fetch request (sent with `correlation_id`) and rewrites an
    /// incremental one's `partitions` to what it fetches that is new (see the module docs).
    pub fn on_request(&mut self, correlation_id: i32, req: &mut FetchRequestInfo) {
        match (req.session_id, req.session_epoch) {
            // A full fetch that opens a new session: wait for the id in the response.
            (0, 0) => {
                if self.opening.len() >= MAX_OPENING {
                    self.drop_opening();
                }
                let want = req.partitions.len().min(MAX_SESSION_PARTITIONS);
                self.make_room(want);
                let take = want.min(MAX_SESSION_PARTITIONS - self.kept);
                let parts: Vec<_> = req.partitions[..take].to_vec();
                self.kept += parts.len();
                self.opening.push_back((correlation_id, parts));
            }
            // Sessionless, or closing a session: the request lists everything.
            (id, epoch) if epoch < 0 => {
                if id != 0 {
                    self.close(id);
                }
            }
            (id, _) => self.incremental(id, req),
        }
    }

    fn incremental(&mut self, id: i32, req: &mut FetchRequestInfo) {
        let Some(s) = self.sessions.iter_mut().find(|s| s.id == id) else {
            self.unknown_sessions += 1;
            return;
        };
        let before = size(s);
        for (topic, partition) in &req.forgotten {
            s.parts.remove(&(topic.clone(), *partition));
        }
        self.request += 1;
        let stamp = self.request;
        let mut room = MAX_SESSION_PARTITIONS.saturating_sub(self.kept + size(s) - before);
        // The last listing of a partition counts: walked from the end, earlier ones dropped.
        let mut listed = std::mem::take(&mut req.partitions);
        let mut at = listed.len();
        let mut keep = listed.len();
        while at > 0 {
            at -= 1;
            let p = &listed[at];
            let key = (p.topic.clone(), p.partition);
            let fresh = match s.parts.get_mut(&key) {
                Some(k) if k.reported == stamp => false,
                Some(k) => {
                    k.fetch_offset = p.fetch_offset;
                    k.partition_max_bytes = p.partition_max_bytes;
                    k.reported = stamp;
                    true
                }
                None => {
                    if room > 0 {
                        room -= 1;
                        s.parts.insert(
                            key,
                            Kept {
                                fetch_offset: p.fetch_offset,
                                partition_max_bytes: p.partition_max_bytes,
                                delivered: false,
                                reported: stamp,
                            },
                        );
                    }
                    true
                }
            };
            if fresh {
                keep -= 1;
                listed.swap(at, keep);
            }
        }
        listed.drain(..keep);
        // Delivered since, not listed again: fetched again from where the session is.
        for key in s.delivered.drain(..) {
            let Some(k) = s.parts.get_mut(&key) else {
                continue; // forgotten
            };
            k.delivered = false;
            if k.reported != stamp {
                k.reported = stamp;
                listed.push(FetchRequestPartition {
                    topic: key.0,
                    partition: key.1,
                    fetch_offset: k.fetch_offset,
                    partition_max_bytes: k.partition_max_bytes,
                });
            }
        }
        if s.delivered.capacity() > SPARE_DELIVERED {
            s.delivered.shrink_to(SPARE_DELIVERED);
        }
        self.kept = self.kept + size(s) - before;
        req.partitions = listed;
    }

    /// The response to `correlation_id` named session `session_id`.
    pub fn on_response(&mut self, correlation_id: i32, session_id: i32) {
        self.answering = Some((correlation_id, session_id));
        let Some(at) = self.opening.iter().position(|(c, _)| *c == correlation_id) else {
            return;
        };
        let (_, listed) = self.opening.remove(at).expect("position is in range");
        self.kept -= listed.len();
        if session_id == 0 {
            return; // the broker declined a session
        }
        self.close(session_id);
        if self.sessions.len() >= MAX_SESSIONS {
            self.drop_session();
        }
        self.request += 1;
        let mut parts = foldhash::HashMap::default();
        parts.reserve(listed.len());
        for p in listed {
            // The last listing of a partition counts, as a map's insert keeps.
            parts.insert(
                (p.topic, p.partition),
                Kept {
                    fetch_offset: p.fetch_offset,
                    partition_max_bytes: p.partition_max_bytes,
                    delivered: false,
                    reported: self.request,
                },
            );
        }
        self.kept += parts.len();
        self.sessions.push_back(Session {
            id: session_id,
            parts,
            delivered: Vec::new(),
        });
    }

    /// The response to `correlation_id` delivered records of `partition` (the topic as the
    /// response names it): its session's next request fetches it again unless it lists it.
    pub fn on_delivered(&mut self, correlation_id: i32, topic: &TopicRef, partition: i32) {
        let Some((c, id)) = self.answering else {
            return;
        };
        if c != correlation_id || id == 0 {
            return;
        }
        let Some(s) = self.sessions.iter_mut().find(|s| s.id == id) else {
            return;
        };
        let key = (topic.clone(), partition);
        if let Some(k) = s.parts.get_mut(&key) {
            if !k.delivered {
                k.delivered = true;
                s.delivered.push(key);
            }
        }
    }

    fn close(&mut self, id: i32) {
        if let Some(at) = self.sessions.iter().position(|s| s.id == id) {
            let s = self.sessions.remove(at).expect("position is in range");
            self.kept -= size(&s);
        }
    }

    fn drop_opening(&mut self) {
        if let Some((_, parts)) = self.opening.pop_front() {
            self.kept -= parts.len();
        }
    }

    fn drop_session(&mut self) {
        if let Some(s) = self.sessions.pop_front() {
            self.kept -= size(&s);
        }
    }

    /// Forgets the oldest sessions, then the oldest opening ones, until `want` more
    /// partitions fit (or nothing is left to forget).
    fn make_room(&mut self, want: usize) {
        while self.kept + want > MAX_SESSION_PARTITIONS && !self.sessions.is_empty() {
            self.drop_session();
        }
        while self.kept + want > MAX_SESSION_PARTITIONS && !self.opening.is_empty() {
            self.drop_opening();
        }
    }

    /// Sessions known.
    pub fn len(&self) -> usize {
        self.sessions.len()
    }

    /// True if no session is known.
    pub fn is_empty(&self) -> bool {
        self.sessions.is_empty()
    }

    /// Partitions kept, in every session and opening one.
    pub fn partitions(&self) -> usize {
        self.kept
    }

    /// Approximate bytes the sessions hold.
    pub fn approx_bytes(&self) -> usize {
        self.kept * PARTITION_BYTES
            + self
                .sessions
                .iter()
                .map(|s| s.delivered.capacity() * std::mem::size_of::<Key>())
                .sum::<usize>()
    }
}

/// Capacity of a session's list of delivered partitions kept between requests.
const SPARE_DELIVERED: usize = 1024;

#[cfg(test)]
mod tests;
