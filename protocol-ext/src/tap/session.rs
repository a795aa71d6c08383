//! Fetch sessions (KIP-227): a consumer opens a session with a full Fetch (session id 0,
//! epoch 0); the broker answers with a session id; later requests (epoch ≥ 1) list only the
//! partitions whose fetch state changed, plus the ones to forget. Per connection, this keeps
//! each session's partitions and their last fetch offset, so every Fetch request can be
//! reported with the effective offset of every partition it fetches.

use std::cmp::Ordering;
use std::collections::VecDeque;

use crate::event::{FetchRequestInfo, FetchRequestPartition};

/// Sessions kept per connection (a consumer has one per broker connection).
pub const MAX_SESSIONS: usize = 8;
/// Partitions kept per session.
pub const MAX_SESSION_PARTITIONS: usize = 100_000;
/// Full fetches waiting for the session id in their response.
const MAX_OPENING: usize = 8;

/// A session's partitions, sorted by [`order`], one entry per topic-partition. A sorted list
/// rather than a hash map: a consumer's incremental request usually names one or two
/// partitions, and the whole set is reported with every request, in this order.
type Partitions = Vec<FetchRequestPartition>;

/// Fetch sessions of one connection.
#[derive(Debug, Default)]
pub struct FetchSessions {
    sessions: VecDeque<(i32, Partitions)>,
    opening: VecDeque<(i32, Partitions)>,
    /// Incremental requests for a session this connection never saw open.
    pub unknown_sessions: u64,
}

/// Topic name, topic id, partition.
fn order(a: &FetchRequestPartition, b: &FetchRequestPartition) -> Ordering {
    (&a.topic.name, a.topic.id, a.partition).cmp(&(&b.topic.name, b.topic.id, b.partition))
}

/// Sorts, and keeps the last of partitions listed twice (as a map would).
fn sort_unique(parts: &mut Partitions) {
    // Reversed, then a stable sort: of equal ones, the last listed comes first and stays.
    parts.reverse();
    parts.sort_by(order);
    parts.dedup_by(|a, b| order(a, b) == Ordering::Equal);
}

fn to_set(parts: &[FetchRequestPartition]) -> Partitions {
    let mut v: Partitions = parts.iter().take(MAX_SESSION_PARTITIONS).cloned().collect();
    sort_unique(&mut v);
    v
}

impl FetchSessions {
    /// Applies a decoded Fetch request (sent with `correlation_id`) and rewrites its
    /// `partitions` to the effective set.
    pub fn on_request(&mut self, correlation_id: i32, req: &mut FetchRequestInfo) {
        match (req.session_id, req.session_epoch) {
            // A full fetch that opens a new session: wait for the id in the response.
            (0, 0) => {
                if self.opening.len() >= MAX_OPENING {
                    self.opening.pop_front();
                }
                self.opening
                    .push_back((correlation_id, to_set(&req.partitions)));
            }
            // Sessionless, or closing a session: the request lists everything.
            (id, epoch) if epoch < 0 => {
                if id != 0 {
                    self.sessions.retain(|(s, _)| *s != id);
                }
            }
            // Incremental.
            (id, _) => {
                let Some((_, parts)) = self.sessions.iter_mut().find(|(s, _)| *s == id) else {
                    self.unknown_sessions += 1;
                    return;
                };
                for (topic, partition) in &req.forgotten {
                    let gone = parts.binary_search_by(|k| {
                        (&k.topic.name, k.topic.id, k.partition).cmp(&(
                            &topic.name,
                            topic.id,
                            *partition,
                        ))
                    });
                    if let Ok(at) = gone {
                        parts.remove(at);
                    }
                }
                let known = parts.len();
                for p in &req.partitions {
                    match parts[..known].binary_search_by(|k| order(k, p)) {
                        Ok(at) => parts[at].clone_from(p),
                        Err(_) if parts.len() < MAX_SESSION_PARTITIONS => parts.push(p.clone()),
                        Err(_) => {}
                    }
                }
                if parts.len() > known {
                    sort_unique(parts);
                }
                req.partitions.clone_from(parts);
            }
        }
    }

    /// The response to `correlation_id` named session `session_id`.
    pub fn on_response(&mut self, correlation_id: i32, session_id: i32) {
        let Some(at) = self.opening.iter().position(|(c, _)| *c == correlation_id) else {
            return;
        };
        let (_, parts) = self.opening.remove(at).expect("position is in range");
        if session_id == 0 {
            return; // the broker declined a session
        }
        self.sessions.retain(|(s, _)| *s != session_id);
        if self.sessions.len() >= MAX_SESSIONS {
            self.sessions.pop_front();
        }
        self.sessions.push_back((session_id, parts));
    }

    /// Sessions known.
    pub fn len(&self) -> usize {
        self.sessions.len()
    }

    /// True if no session is known.
    pub fn is_empty(&self) -> bool {
        self.sessions.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::TopicRef;

    fn part(topic: &str, partition: i32, offset: i64) -> FetchRequestPartition {
        FetchRequestPartition {
            topic: TopicRef::named(topic),
            partition,
            fetch_offset: offset,
            partition_max_bytes: 1 << 20,
        }
    }

    fn req(
        session_id: i32,
        epoch: i32,
        parts: Vec<FetchRequestPartition>,
        forgotten: Vec<(TopicRef, i32)>,
    ) -> FetchRequestInfo {
        FetchRequestInfo {
            replica: false,
            max_wait_ms: 500,
            min_bytes: 1,
            max_bytes: 50 << 20,
            isolation_level: 0,
            session_id,
            session_epoch: epoch,
            partitions: parts,
            forgotten,
            rack_id: String::new(),
        }
    }

    #[test]
    fn incremental_fetches_yield_every_partition_offset() {
        let mut s = FetchSessions::default();
        let mut full = req(
            0,
            0,
            vec![part("t", 0, 10), part("t", 1, 20), part("u", 0, 5)],
            vec![],
        );
        s.on_request(1, &mut full);
        assert_eq!(full.partitions.len(), 3);
        s.on_response(1, 77);
        // Epoch 1: only t-0 moved on; u-0 is forgotten.
        let mut inc = req(
            77,
            1,
            vec![part("t", 0, 15)],
            vec![(TopicRef::named("u"), 0)],
        );
        s.on_request(2, &mut inc);
        assert_eq!(inc.partitions, vec![part("t", 0, 15), part("t", 1, 20)]);
        // Epoch 2: a seek back on t-0 shows up as a lower offset.
        let mut back = req(77, 2, vec![part("t", 0, 10)], vec![]);
        s.on_request(3, &mut back);
        assert_eq!(back.partitions[0], part("t", 0, 10));
        // Closing the session.
        let mut close = req(77, -1, vec![], vec![]);
        s.on_request(4, &mut close);
        assert!(s.is_empty());
    }

    #[test]
    fn partitions_listed_twice_count_once_with_the_last_offset() {
        let mut s = FetchSessions::default();
        let mut full = req(
            0,
            0,
            vec![part("t", 1, 7), part("t", 0, 1), part("t", 1, 9)],
            vec![],
        );
        s.on_request(1, &mut full);
        s.on_response(1, 5);
        // New partitions arrive unsorted, one of them twice.
        let mut inc = req(
            5,
            1,
            vec![part("u", 0, 4), part("a", 3, 2), part("u", 0, 6)],
            vec![],
        );
        s.on_request(2, &mut inc);
        assert_eq!(
            inc.partitions,
            vec![
                part("a", 3, 2),
                part("t", 0, 1),
                part("t", 1, 9),
                part("u", 0, 6)
            ]
        );
        // Forgetting one that is not there changes nothing.
        let mut forget = req(
            5,
            2,
            vec![],
            vec![(TopicRef::named("zz"), 0), (TopicRef::named("t"), 0)],
        );
        s.on_request(3, &mut forget);
        assert_eq!(
            forget.partitions,
            vec![part("a", 3, 2), part("t", 1, 9), part("u", 0, 6)]
        );
    }

    #[test]
    fn unknown_session_is_counted_and_left_as_listed() {
        let mut s = FetchSessions::default();
        let mut inc = req(5, 3, vec![part("t", 0, 1)], vec![]);
        s.on_request(1, &mut inc);
        assert_eq!(inc.partitions.len(), 1);
        assert_eq!(s.unknown_sessions, 1);
    }
}
