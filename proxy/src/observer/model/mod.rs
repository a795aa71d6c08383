//! What the observer knows: per connection, per client key (client host + `client.id`), per
//! group, per topic and partition, and per (client key, topic, partition) fetch track. Every
//! map is capped; idle entries are evicted and counted. Owned by the observer's one task: no
//! locks here.
//!
//! # Layout
//! - this file: [`Model`], its capped maps and their expiry.
//! - [`conn`]: one proxied connection.
//! - [`client`]: client keys and their per-API counts.
//! - [`group`]: groups, members, committed offsets, attribution and the [`GroupIndex`].
//! - [`inner`]: the caps of the collections inside entries, and their budgets.
//! - [`lookup`]: what the group lookup said: assignments by member `client.id`.
//! - [`tick`]: expiry and the tick's one walk over the fetch tracks.
//! - [`topic`]: topics and the names topics known only by id are filed under.
//! - [`track`]: fetch tracks — rewinds and re-deliveries.

pub mod client;
pub mod conn;
pub mod group;
pub mod inner;
pub mod lookup;
pub mod tick;
pub mod topic;
pub mod track;

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub use client::{api_entry, api_slot, ApiCount, ApiCounts, Client, ClientKey};
pub use conn::Conn;
pub use group::{
    java_default_group, Assigned, Attribution, CommitSource, Committed, Group, GroupIndex, Member,
};
pub use inner::{Inner, InnerCounts};
pub use lookup::LookupKnowledge;
pub use tick::{TopicWindow, TrackPass};
pub use topic::{topic_name, Topic, TopicPartition};
pub use track::{ConnEnd, FetchTrack, TrackKey, Uncommitted, CONN_ENDS};

/// The model's maps: every Fetch round trip looks up its client, topic and fetch track, so
/// they hash with foldhash (seeded per process) rather than SipHash. Their sizes are capped
/// (`max_clients`, `max_groups`, `max_partitions`).
pub type FastMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

/// A set hashed as [`FastMap`] is.
pub type FastSet<T> = std::collections::HashSet<T, foldhash::fast::RandomState>;

/// Everything aggregated.
#[derive(Debug, Default)]
pub struct Model {
    /// Client keys.
    pub clients: FastMap<ClientKey, Client>,
    /// Groups.
    pub groups: FastMap<Arc<str>, Group>,
    /// Topics.
    pub topics: FastMap<Arc<str>, Topic>,
    /// Fetch tracks per (client key, topic, partition).
    pub fetches: FastMap<TrackKey, FetchTrack>,
    /// Entries evicted for idleness or caps.
    pub evicted: u64,
    /// Entries refused because a cap was reached.
    pub refused: u64,
    /// The group lookup's last answer.
    pub lookup: Option<LookupKnowledge>,
    /// The collections inside entries: held and refused, by kind.
    pub inner: InnerCounts,
    /// SASL authentications refused, by mechanism (bounded, see
    /// [`crate::observer::sasl::count_failure`]).
    pub sasl_failures: std::collections::BTreeMap<Arc<str>, u64>,
    /// Which maps changed since the last snapshot (see [`crate::observer::rows`]).
    pub changed: Changed,
    /// The group index as last built ([`Model::refresh_index`]).
    pub index: GroupIndex,
    /// Groups went, or the lookup answered, since the index was built (a group new since
    /// marks itself: [`Group::index_changed`]).
    index_stale: bool,
}

/// Which of the model's maps changed since the last snapshot: the snapshot's tables of them
/// are built again only then. Set where entries are touched, evicted or re-attributed.
#[derive(Debug, Default, Clone, Copy)]
pub struct Changed {
    /// Fetch tracks.
    pub tracks: bool,
    /// Groups (members, clients, committed offsets, rebalances).
    pub groups: bool,
    /// Topics.
    pub topics: bool,
}

/// How long the model keeps what it no longer sees.
#[derive(Debug, Clone, Copy)]
pub struct Expiry {
    /// Window over which rates and repeats are judged.
    pub window: Duration,
    /// Window of rebalances.
    pub rebalance_window: Duration,
    /// Entries idle this long are evicted.
    pub idle: Duration,
    /// Group members (and client keys tied to a group) not seen for this long are forgotten.
    pub member: Duration,
}

/// The entry for `key`, made by `make` if the map holds fewer than `cap` entries (else the
/// refusal is counted). One hash lookup either way.
pub(crate) fn entry_within<'a, K: std::hash::Hash + Eq, V>(
    map: &'a mut FastMap<K, V>,
    refused: &mut u64,
    key: K,
    cap: usize,
    make: impl FnOnce() -> V,
) -> Option<&'a mut V> {
    use std::collections::hash_map::Entry;
    let full = map.len() >= cap;
    match map.entry(key) {
        Entry::Occupied(e) => Some(e.into_mut()),
        Entry::Vacant(_) if full => {
            *refused += 1;
            None
        }
        Entry::Vacant(e) => Some(e.insert(make())),
    }
}

/// Drops the oldest items that `keep` refuses; whether any went.
fn prune<T>(q: &mut VecDeque<T>, keep: impl Fn(&T) -> bool) -> bool {
    let before = q.len();
    while q.front().is_some_and(|x| !keep(x)) {
        q.pop_front();
    }
    q.len() != before
}

impl Model {
    /// Empty, its entries' inner collections counted in `inner`.
    pub fn with_inner(inner: InnerCounts) -> Model {
        Model {
            inner,
            ..Model::default()
        }
    }

    /// The client entry for `key`, created if there is room.
    pub fn client(&mut self, key: &ClientKey, now: Instant, cap: usize) -> Option<&mut Client> {
        let c = entry_within(
            &mut self.clients,
            &mut self.refused,
            key.clone(),
            cap,
            || Client::new(now),
        )?;
        c.last_seen = now;
        c.changed = true;
        Some(c)
    }

    /// The topic entry for `name`, created if there is room.
    pub fn topic(&mut self, name: Arc<str>, now: Instant, cap: usize) -> Option<&mut Topic> {
        self.topic_inner(name, now, cap).map(|(t, _)| t)
    }

    /// The topic entry for `name`, created if there is room, and the counts its partitions
    /// grow under.
    pub fn topic_inner(
        &mut self,
        name: Arc<str>,
        now: Instant,
        cap: usize,
    ) -> Option<(&mut Topic, &mut InnerCounts)> {
        let t = entry_within(
            &mut self.topics,
            &mut self.refused,
            name,
            cap,
            Topic::default,
        )?;
        t.last_seen = Some(now);
        self.changed.topics = true;
        Some((t, &mut self.inner))
    }

    /// The group entry for `id`, created if there is room.
    pub fn group(&mut self, id: &str, now: Instant, cap: usize) -> Option<&mut Group> {
        self.group_inner(id, now, cap).map(|(g, _)| g)
    }

    /// The group entry for `id`, created if there is room, and the counts its inner
    /// collections grow under.
    pub fn group_inner(
        &mut self,
        id: &str,
        now: Instant,
        cap: usize,
    ) -> Option<(&mut Group, &mut InnerCounts)> {
        if !self.groups.contains_key(id) {
            if self.groups.len() >= cap {
                self.refused += 1;
                return None;
            }
            self.groups.insert(Arc::from(id), Group::new(now));
        }
        let g = self.groups.get_mut(id)?;
        g.last_seen = now;
        self.changed.groups = true;
        Some((g, &mut self.inner))
    }

    /// Records that `key` belongs to `group`.
    pub fn attribute(
        &mut self,
        key: &ClientKey,
        group: &str,
        how: Attribution,
        now: Instant,
        cap: usize,
    ) {
        let tied = self
            .group_inner(group, now, cap)
            .is_some_and(|(g, inner)| g.attribute(key, how, now, inner));
        if tied {
            self.client_changed(key);
        }
    }

    /// The group client key `key` is shown under may have changed: its row is built again at
    /// the next tick (see [`crate::observer::rows`]).
    pub(crate) fn client_changed(&mut self, key: &ClientKey) {
        if let Some(c) = self.clients.get_mut(key) {
            c.changed = true;
        }
    }

    /// Adds `bytes` to what client `key` produced to (`produced`) or fetched from `topic`, if
    /// the client has room for the topic.
    pub fn client_topic_bytes(
        &mut self,
        key: &ClientKey,
        topic: &Arc<str>,
        produced: bool,
        bytes: u64,
        (now, cap): (Instant, usize),
    ) {
        let Some(c) = entry_within(
            &mut self.clients,
            &mut self.refused,
            key.clone(),
            cap,
            || Client::new(now),
        ) else {
            return;
        };
        c.last_seen = now;
        c.changed = true;
        let by = if produced {
            &mut c.produced
        } else {
            &mut c.fetched
        };
        match by.get_mut(topic) {
            Some(n) => *n += bytes,
            None => {
                if self.inner.admit(Inner::ClientTopics, by.len()) {
                    by.insert(topic.clone(), bytes);
                }
            }
        }
    }

    /// The lookup's last answer.
    pub fn set_lookup(&mut self, lookup: LookupKnowledge) {
        self.lookup = Some(lookup);
        self.index_stale = true;
    }

    /// Builds the group index again ([`Model::index`]) if what it reads changed since it was
    /// last built: groups that came or went, members, assignments, client keys tied to a
    /// group, the lookup's answer (or always, while it is contested). Whether it was.
    pub fn refresh_index(&mut self) -> bool {
        let mut stale = std::mem::take(&mut self.index_stale) || self.index.contested;
        for g in self.groups.values_mut() {
            stale |= std::mem::take(&mut g.index_changed);
        }
        if stale {
            let generation = self.index.generation + 1;
            self.index = self.group_index();
            self.index.generation = generation;
        }
        stale
    }

    /// Group attribution for many tracks at once: one walk over the groups, then a lookup per
    /// track.
    pub fn group_index(&self) -> GroupIndex {
        let mut index = GroupIndex {
            lookup: self.lookup.clone(),
            ..GroupIndex::default()
        };
        for (name, g) in &self.groups {
            index.names.insert(name.clone());
            for m in g.members.values() {
                for (t, ps) in &m.assigned {
                    for p in ps {
                        let e = index
                            .assigned
                            .entry(m.client.clone())
                            .or_default()
                            .entry((t.clone(), *p))
                            .or_insert((name.clone(), g.last_seen));
                        if e.0 != *name {
                            index.contested = true;
                        }
                        if g.last_seen > e.1 {
                            *e = (name.clone(), g.last_seen);
                        }
                    }
                }
            }
            for (key, (how, _)) in &g.clients {
                index
                    .by_client
                    .entry(key.clone())
                    .and_modify(|e| *e = None) // a client key in several groups: ambiguous
                    .or_insert(Some((name.clone(), *how)));
            }
        }
        index
    }

    /// Counts again what the entries' inner collections hold (removals are not counted as
    /// they happen). Connections' pending commits are counted by their owner.
    fn recount_inner(&mut self) {
        let groups = self.groups.values();
        let (mut committed, mut members, mut assigned, mut clients) = (0, 0, 0, 0);
        for g in groups {
            committed += g.committed.len();
            members += g.members.len();
            clients += g.clients.len();
            assigned += g
                .members
                .values()
                .flat_map(|m| m.assigned.iter().map(|(_, ps)| ps.len()))
                .sum::<usize>();
        }
        let topics = self
            .clients
            .values()
            .map(|c| c.fetched.len() + c.produced.len())
            .sum();
        let partitions = self.topics.values().map(|t| t.partitions.len()).sum();
        for (kind, held) in [
            (Inner::Committed, committed),
            (Inner::Members, members),
            (Inner::Assigned, assigned),
            (Inner::GroupClients, clients),
            (Inner::ClientTopics, topics),
            (Inner::TopicPartitions, partitions),
        ] {
            self.inner.recount(kind, held);
        }
    }

    /// The group of a client key and how it was found: its own coordinator traffic when that
    /// names one group, else the Java default `client.id`. `None` when several groups share
    /// the client key (a `client.id` reused across groups). Walks every group: the tests'
    /// reference answer for [`GroupIndex::group_of`], which the code uses.
    #[cfg(test)]
    pub fn group_of(&self, key: &ClientKey) -> Option<(Arc<str>, Attribution)> {
        let mut found = self
            .groups
            .iter()
            .filter_map(|(name, g)| g.clients.get(key).map(|(how, _)| (name.clone(), *how)));
        match (found.next(), found.next()) {
            (Some(one), None) => Some(one),
            (Some(_), Some(_)) => None,
            (None, _) => {
                java_default_group(&key.1).map(|g| (Arc::from(g), Attribution::ClientIdPattern))
            }
        }
    }

    /// The group consuming `topic`-`partition` through client key `key`: the group one of
    /// whose members with this client key is assigned that partition (SyncGroup or
    /// ConsumerGroupHeartbeat), else `group_of`. The tests' reference answer for
    /// [`GroupIndex::group_for`].
    #[cfg(test)]
    pub fn group_for(
        &self,
        key: &ClientKey,
        topic: &str,
        partition: i32,
    ) -> Option<(Arc<str>, Attribution)> {
        let assigned = self
            .groups
            .iter()
            .filter(|(_, g)| {
                g.members.values().any(|m| {
                    &m.client == key
                        && m.assigned
                            .iter()
                            .any(|(t, ps)| &**t == topic && ps.contains(&partition))
                })
            })
            .max_by_key(|(_, g)| g.last_seen)
            .map(|(name, _)| (name.clone(), Attribution::Coordinator));
        assigned.or_else(|| self.group_of(key))
    }
}

#[cfg(test)]
mod tests;
