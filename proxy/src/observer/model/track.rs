//! Fetch tracks: one client key's fetching of one topic partition — what was delivered to each
//! of its connections, the fetches that went back, the bytes delivered again.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sluice_protocol::event::FetchPartitionDelivered;

use super::client::ClientKey;
use super::topic::TopicPartition;
use super::{entry_within, Model};

/// A fetch track: a client key's fetching of one topic partition.
pub type TrackKey = (ClientKey, Arc<str>, i32);

/// (group, topic, partition)s whose delivered records go past the group's committed offset,
/// or with none known (see [`FetchTrack::uncommitted_past`]).
pub type Uncommitted = super::FastSet<(Arc<str>, Arc<str>, i32)>;

/// One client key's fetching of one partition.
#[derive(Debug, Clone)]
pub struct FetchTrack {
    /// End (last offset + 1) of everything delivered so far, to any connection of the key.
    pub delivered_end: i64,
    /// The same per connection (client host:port), with the connection's last fetch offset,
    /// for the last [`CONN_ENDS`] connections. Rewinds and re-deliveries are judged per
    /// connection: consumers of different groups that share a `client.id` on one host
    /// (librdkafka's default `rdkafka`) read the same offsets on their own connections, which
    /// is no loop.
    pub conn_ends: Vec<ConnEnd>,
    /// Last fetch offset requested.
    pub fetch_offset: i64,
    /// `(time, offset)` of fetches that went back below what their connection was delivered
    /// (and not beyond that connection's previous fetch), within the window.
    pub rewinds: VecDeque<(Instant, i64)>,
    /// Record bytes delivered in all.
    pub bytes: u64,
    /// Of which delivered again.
    pub redelivered: u64,
    /// Last host:port that fetched it.
    pub last_addr: SocketAddr,
    /// The group it was last attributed to, and how: kept when the attribution's source goes
    /// quiet (the lookup describes a group whose members left as empty), since the bytes were
    /// fetched for that group.
    pub group: Option<(Arc<str>, super::group::Attribution)>,
    /// The build of the group index ([`super::GroupIndex`]) it was last attributed under.
    pub attributed: Option<u64>,
    /// First fetch seen.
    pub first_seen: Instant,
    /// Last activity.
    pub last_seen: Instant,
    /// `(tick time, bytes, redelivered)` samples within the window, taken by the detectors.
    pub history: VecDeque<(Instant, u64, u64)>,
    /// The last connection new to the track, from its first fetch of the partition.
    pub joined: Option<Joined>,
}

/// A connection new to a fetch track (a consumer starting, restarting or reconnecting).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Joined {
    /// Its first fetch of the partition.
    pub at: Instant,
    /// The offset it fetched from.
    pub from: i64,
    /// How many starts in a row before it were from the same offset (0: it carries on from
    /// somewhere else). One repeat is a consumer that stopped before its commits landed (killed
    /// once, its coordinator moving) and is back; starts that keep going back to the same
    /// offset are a crash loop's (see [`Joined::crash_loop`]).
    pub repeats: u32,
}

/// Starts repeating the one before, in a row, that make a crash loop: three starts from the
/// same offset. A single repeat is too common in healthy groups to say so: a consumer killed
/// before its first commit, or whose commits failed while its coordinator moved, comes back
/// from where its last run started.
const CRASH_LOOP_REPEATS: u32 = 2;

impl Joined {
    /// This start and those before it keep going back to the same offset: a crash loop.
    pub fn crash_loop(&self) -> bool {
        self.repeats >= CRASH_LOOP_REPEATS
    }
}

/// One connection's fetching of a partition (see [`FetchTrack::conn_ends`]).
#[derive(Debug, Clone, Copy)]
pub struct ConnEnd {
    /// The client's host:port.
    pub addr: SocketAddr,
    /// End (last offset + 1) of what was delivered to it (-1: nothing yet).
    pub end: i64,
    /// The offset it last fetched from (-1: none yet).
    pub fetched: i64,
}

/// Connections whose delivered end a fetch track keeps; beyond, the oldest is forgotten (its
/// next fetch then counts as a first one: a loop can be missed, none is invented).
pub const CONN_ENDS: usize = 8;

/// Rewinds a track keeps within the window.
const MAX_REWINDS: usize = 4096;

impl FetchTrack {
    fn new(addr: SocketAddr, now: Instant) -> FetchTrack {
        FetchTrack {
            delivered_end: -1,
            conn_ends: Vec::new(),
            fetch_offset: -1,
            rewinds: VecDeque::new(),
            bytes: 0,
            redelivered: 0,
            last_addr: addr,
            group: None,
            attributed: None,
            first_seen: now,
            last_seen: now,
            // A zero baseline, so the first window counts from the track's birth.
            history: VecDeque::from([(now, 0, 0)]),
            joined: None,
        }
    }

    /// The connection from `addr`, remembered from now on (forgetting the oldest beyond
    /// [`CONN_ENDS`]).
    fn conn(&mut self, addr: SocketAddr) -> &mut ConnEnd {
        let i = match self.conn_ends.iter().position(|c| c.addr == addr) {
            Some(i) => i,
            None => {
                if self.conn_ends.len() >= CONN_ENDS {
                    self.conn_ends.remove(0);
                }
                self.conn_ends.push(ConnEnd {
                    addr,
                    end: -1,
                    fetched: -1,
                });
                self.conn_ends.len() - 1
            }
        };
        &mut self.conn_ends[i]
    }

    /// Bytes and re-delivered bytes within the window, and the span they cover.
    pub fn window(&self) -> (u64, u64, Duration) {
        match (self.history.front(), self.history.back()) {
            (Some(a), Some(b)) => (
                b.1.saturating_sub(a.1),
                b.2.saturating_sub(a.2),
                b.0.saturating_duration_since(a.0),
            ),
            _ => (0, 0, Duration::ZERO),
        }
    }

    /// From the first to the last tick within the window by which bytes had been delivered
    /// since the tick before: how long it has been fetching data. A single response, however
    /// large, spans nothing; two responses in consecutive ticks span one tick; a consumer
    /// fetching all along, or coming back every few seconds (a crash loop), spans most of the
    /// window.
    pub fn active_span(&self) -> Duration {
        let mut active = self
            .history
            .iter()
            .zip(self.history.iter().skip(1))
            .filter(|(a, b)| b.1 > a.1)
            .map(|(_, b)| b.0);
        let Some(first) = active.next() else {
            return Duration::ZERO;
        };
        let last = active.next_back().unwrap_or(first);
        last.saturating_duration_since(first)
    }

    /// Bytes out ÷ bytes delivered for the first time, over the track's life.
    pub fn amplification(&self) -> f64 {
        let unique = self.bytes.saturating_sub(self.redelivered).max(1);
        self.bytes as f64 / unique as f64
    }
}

/// The share of `bytes` (records `first..=last`) that lies below `end`: delivered before.
fn delivered_again(bytes: u64, first: i64, last: i64, end: i64) -> u64 {
    if last < end {
        bytes
    } else if first >= end {
        0
    } else {
        // Wire values: differences computed in f64, which cannot overflow.
        let span = last as f64 - first as f64 + 1.0;
        (bytes as f64 * (end as f64 - first as f64) / span) as u64
    }
}

impl Model {
    /// A consumer fetch request for one partition.
    pub fn on_fetch_offset(
        &mut self,
        key: &ClientKey,
        addr: SocketAddr,
        (topic, partition): TopicPartition,
        offset: i64,
        now: Instant,
        cap: usize,
    ) {
        let Some(t) = self.track(key, topic, partition, addr, now, cap) else {
            return;
        };
        // A rewind goes back (or stays): a fetch below what the connection was served, not
        // beyond its own last fetch (a client fetching ahead of what it consumed, as
        // librdkafka does, follows a rewind with fetches that are also below that, but only
        // the one it went back to is where it returns).
        let c = t.conn(addr);
        let first = c.fetched < 0;
        let rewind = offset < c.end && offset <= c.fetched;
        c.fetched = offset;
        if first {
            let repeats = t
                .joined
                .filter(|j| j.from == offset)
                .map_or(0, |j| j.repeats.saturating_add(1));
            t.joined = Some(Joined {
                at: now,
                from: offset,
                repeats,
            });
        }
        if rewind {
            t.rewinds.push_back((now, offset));
            if t.rewinds.len() > MAX_REWINDS {
                t.rewinds.pop_front();
            }
        }
        t.fetch_offset = offset;
    }

    /// Record bytes delivered for one partition; returns (bytes, re-delivered bytes).
    pub fn on_delivered(
        &mut self,
        key: &ClientKey,
        addr: SocketAddr,
        (topic, p): (Arc<str>, &FetchPartitionDelivered),
        now: Instant,
        cap: usize,
    ) -> (u64, u64) {
        let Some(t) = self.track(key, topic, p.partition, addr, now, cap) else {
            return (p.records_bytes, 0);
        };
        let bytes = p.records_bytes;
        let again = match (p.first_offset, p.last_offset) {
            (Some(first), Some(last)) if last >= first => {
                let c = t.conn(addr);
                let end = c.end;
                let new_end = last.saturating_add(1);
                c.end = end.max(new_end);
                t.delivered_end = t.delivered_end.max(new_end);
                delivered_again(bytes, first, last, end)
            }
            _ => 0,
        };
        t.bytes = t.bytes.saturating_add(bytes);
        t.redelivered = t.redelivered.saturating_add(again);
        (bytes, again)
    }

    fn track(
        &mut self,
        key: &ClientKey,
        topic: Arc<str>,
        partition: i32,
        addr: SocketAddr,
        now: Instant,
        cap: usize,
    ) -> Option<&mut FetchTrack> {
        // Named as the model names the topic (see [`Model::topic_key`]): the lookup of a
        // track then compares its topic by address.
        let k = (key.clone(), self.topic_key(topic), partition);
        let t = entry_within(&mut self.fetches, &mut self.refused, k, cap, || {
            FetchTrack::new(addr, now)
        })?;
        t.last_seen = now;
        t.last_addr = addr;
        self.changed.tracks = true;
        Some(t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redelivery_at_the_ends_of_the_offset_range_does_not_overflow() {
        assert!(delivered_again(100, i64::MIN, i64::MAX, i64::MAX) <= 100);
        assert_eq!(delivered_again(100, 0, 99, 50), 50);
        assert_eq!(delivered_again(100, 0, 99, 100), 100);
        assert_eq!(delivered_again(100, 0, 99, 0), 0);
        assert_eq!(delivered_again(100, i64::MAX, i64::MAX, i64::MAX), 0);
    }
}
