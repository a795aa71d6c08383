//! Consumer groups: members and their assignments, committed offsets and how they move,
//! rebalances; how a client key is tied to a group, and the per-tick index that answers "which
//! group is this fetch for?".

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::client::ClientKey;
use super::inner::{Inner, InnerCounts};
use super::lookup::LookupKnowledge;
use super::track::Joined;

/// Commits whose times a group keeps for its cadence.
const COMMITS_KEPT: usize = 9;

/// New members a group remembers within the rebalance window.
const MEMBER_JOINS_KEPT: usize = 1024;

/// A member's assignment: topic → partitions.
pub type Assigned = Vec<(Arc<str>, Vec<i32>)>;

/// How a client key was tied to a group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Attribution {
    /// Its own coordinator traffic (JoinGroup, OffsetCommit, …) named the group.
    Coordinator,
    /// The Java default `client.id` `consumer-<group>-<n>` names it.
    ClientIdPattern,
    /// The group lookup: the group's coordinator describes a member with this `client.id`
    /// assigned the partition.
    Lookup,
}

impl Attribution {
    /// As shown in findings and the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Attribution::Coordinator => "coordinator traffic",
            Attribution::ClientIdPattern => "java default client.id",
            Attribution::Lookup => "group lookup",
        }
    }
}

/// One member of a group.
#[derive(Debug, Clone, PartialEq)]
pub struct Member {
    /// The client key whose connection spoke for it.
    pub client: ClientKey,
    /// Its assignment, once a SyncGroup or ConsumerGroupHeartbeat response gave it.
    pub assigned: Assigned,
    /// Last time its group traffic was seen (members not seen for
    /// [`super::super::config::DetectConfig::member_expiry`] are forgotten).
    pub seen: Instant,
}

impl Member {
    /// Its assignment from a SyncGroup or ConsumerGroupHeartbeat response, cut at
    /// [`Inner::Assigned`] partitions.
    pub fn assign(&mut self, assigned: Assigned, inner: &mut InnerCounts) {
        let old: usize = self.assigned.iter().map(|(_, ps)| ps.len()).sum();
        inner.release(Inner::Assigned, old);
        let mut kept = Vec::with_capacity(assigned.len().min(64));
        let mut len = 0;
        for (topic, mut ps) in assigned {
            let n = inner.admit_many(Inner::Assigned, len, ps.len());
            ps.truncate(n);
            len += n;
            if n > 0 {
                kept.push((topic, ps));
            }
        }
        self.assigned = kept;
    }
}

/// Where a committed offset was learned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CommitSource {
    /// An OffsetCommit this sidecar saw the broker accept.
    Coordinator,
    /// The group lookup's OffsetFetch.
    Lookup,
}

impl CommitSource {
    /// As shown in findings and the API.
    pub fn as_str(self) -> &'static str {
        match self {
            CommitSource::Coordinator => "coordinator traffic",
            CommitSource::Lookup => "group lookup",
        }
    }
}

/// A committed offset and when it last moved forward.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Committed {
    /// Where its latest value was learned.
    pub source: CommitSource,
    /// The offset.
    pub offset: i64,
    /// When Sluice first learned a committed offset of this partition.
    pub known: Instant,
    /// Last commit seen.
    pub at: Instant,
    /// Last time its value was seen or confirmed: a commit seen here, or a lookup answer at or
    /// past it. A lookup-learned offset is known to stand still only up to about here.
    pub confirmed: Instant,
    /// Last time it was seen to move forward (`None`: not since Sluice first saw it).
    pub advanced: Option<Instant>,
    /// Offsets per second over its last advance.
    pub advance_per_sec: f64,
    /// The first tick, since it last moved, at which the group's members were seen fetching
    /// records past it (`None`: not yet), or the later start of a consumer carrying on from
    /// the group's position. Set by [`super::FetchTrack::uncommitted_past`]; a stall is
    /// counted from here, not from the advance: an offset standing still while nothing past
    /// it was fetched (a partition with no new records, a consumer stopped, down or not yet
    /// started) is no group failing to commit.
    pub uncommitted_since: Option<Instant>,
}

impl Committed {
    /// A first commit of `offset` seen at `now`.
    pub fn new(offset: i64, now: Instant) -> Committed {
        Committed {
            source: CommitSource::Coordinator,
            offset,
            known: now,
            at: now,
            confirmed: now,
            advanced: None,
            advance_per_sec: 0.0,
            uncommitted_since: None,
        }
    }

    /// Since when it has not moved forward: its last advance, or when Sluice learned it.
    pub fn still_since(&self) -> Instant {
        self.advanced.unwrap_or(self.known)
    }

    /// How long it is known to have stood still at `now` while the group fetched past it
    /// (zero before it was seen to: see [`Committed::uncommitted_since`]). A commit seen here
    /// is watched while this sidecar fronts the group's coordinator (`watched`): no commit is
    /// news. What the lookup learned — and a commit seen here before the coordinator moved to
    /// another broker, whose commits then go through another sidecar — is known only as of
    /// its last confirmation, and is taken to stand for at most `lookup_lag` (a lookup
    /// interval) past it: a lookup that stops answering (its broker slow, the coordinator
    /// moving) is not a group that stopped committing.
    pub fn still_for(&self, now: Instant, lookup_lag: Duration, watched: bool) -> Duration {
        let Some(fetched_past) = self.uncommitted_since else {
            return Duration::ZERO;
        };
        let until = match self.source {
            CommitSource::Coordinator if watched => now,
            _ => now.min(self.confirmed + lookup_lag),
        };
        until.saturating_duration_since(fetched_past)
    }

    /// The group's members were delivered records up to `delivered_end` (exclusive), since
    /// `at` at the earliest, by a connection that `joined` as given. If that is past the
    /// offset, the stall clock starts (if it has not), from `at` or from when the offset was
    /// learned or last moved, whichever is later. A connection that started since the clock
    /// did — a consumer back after a stop or a restart, carrying on from the group's
    /// committed position, or back once at the offset its last run started from (that run's
    /// commits never landed) — starts it again from its start: the time it was down is no
    /// stall. A start of a crash loop (going back to the same offset again and again, see
    /// [`Joined::crash_loop`]) leaves the clock running.
    pub fn fetched_to(&mut self, delivered_end: i64, at: Instant, joined: Option<Joined>) {
        if delivered_end <= self.offset {
            return;
        }
        let since = match (self.uncommitted_since, joined) {
            (None, _) => at,
            (Some(running), Some(j)) if !j.crash_loop() && j.at > running => j.at,
            (Some(_), _) => return,
        };
        self.uncommitted_since = Some(since.max(self.still_since()));
    }

    /// Another commit of `offset` seen at `now`.
    pub fn update(&mut self, offset: i64, now: Instant) {
        if offset > self.offset {
            let since = self.advanced.unwrap_or(self.at);
            let dt = now
                .saturating_duration_since(since)
                .as_secs_f64()
                .max(0.001);
            // Wire values: the difference of two i64 may not fit one.
            self.advance_per_sec = (offset as f64 - self.offset as f64) / dt;
            self.advanced = Some(now);
        }
        if offset != self.offset {
            self.uncommitted_since = None;
        }
        self.offset = offset;
        self.at = now;
        self.confirmed = self.confirmed.max(now);
        self.source = CommitSource::Coordinator;
    }

    /// The lookup found `offset` committed at `now`; true if that moved it forward. An
    /// answer behind a commit seen since is stale and changes nothing; an answer of the same
    /// offset confirms it still stands.
    pub fn looked_up(&mut self, offset: i64, now: Instant) -> bool {
        if offset == self.offset {
            self.confirmed = self.confirmed.max(now);
        }
        if offset <= self.offset {
            return false;
        }
        self.confirmed = self.confirmed.max(now);
        let since = self.advanced.unwrap_or(self.known);
        let dt = now
            .saturating_duration_since(since)
            .as_secs_f64()
            .max(0.001);
        self.advance_per_sec = (offset as f64 - self.offset as f64) / dt;
        self.advanced = Some(now);
        self.uncommitted_since = None;
        self.offset = offset;
        self.source = CommitSource::Lookup;
        true
    }
}

/// A consumer group.
#[derive(Debug, Clone)]
pub struct Group {
    /// Generation last seen.
    pub generation: i32,
    /// Member id → member.
    pub members: BTreeMap<String, Member>,
    /// When each new generation was seen, within the rebalance window.
    pub joins: VecDeque<Instant>,
    /// When a member id new to the group was seen, and the client key it came from, within
    /// the rebalance window: who keeps joining.
    pub member_joins: VecDeque<(Instant, ClientKey)>,
    /// Rebalances (JoinGroup requests) in all.
    pub rebalances: u64,
    /// Committed offset per (topic, partition).
    pub committed: BTreeMap<(Arc<str>, i32), Committed>,
    /// Client keys tied to the group, how, and when last seen doing so.
    pub clients: BTreeMap<ClientKey, (Attribution, Instant)>,
    /// When its last few commits were acknowledged (or, with no commit seen here, when the
    /// lookup saw its committed offsets move): the group's own commit cadence.
    pub commits: VecDeque<Instant>,
    /// Last commit this sidecar saw the broker accept.
    pub commit_seen: Option<Instant>,
    /// Last activity.
    pub last_seen: Instant,
    /// Whether what the group index reads of it (its members' client keys and assignments,
    /// the client keys tied to it and how) may have changed since the index was last built
    /// (see [`super::Model::refresh_index`]).
    pub(super) index_changed: bool,
}

impl Group {
    /// A group first seen at `now`.
    pub fn new(now: Instant) -> Group {
        Group {
            generation: -1,
            members: BTreeMap::new(),
            joins: VecDeque::new(),
            member_joins: VecDeque::new(),
            rebalances: 0,
            committed: BTreeMap::new(),
            clients: BTreeMap::new(),
            commits: VecDeque::new(),
            commit_seen: None,
            last_seen: now,
            index_changed: true,
        }
    }

    /// A commit of the group acknowledged at `now` (one per OffsetCommit, whatever it lists).
    pub fn note_commit(&mut self, now: Instant) {
        if self.commits.len() >= COMMITS_KEPT {
            self.commits.pop_front();
        }
        self.commits.push_back(now);
    }

    /// The group's usual time between commits: the median of the gaps between its last
    /// commits (`None` before two were seen).
    pub fn cadence(&self) -> Option<Duration> {
        let mut gaps: Vec<Duration> = self
            .commits
            .iter()
            .zip(self.commits.iter().skip(1))
            .map(|(a, b)| b.saturating_duration_since(*a))
            .collect();
        if gaps.is_empty() {
            return None;
        }
        gaps.sort();
        Some(gaps[gaps.len() / 2])
    }

    /// The member `id`, spoken for by `client`, seen at `now` (made, and its joining
    /// remembered, if new and the group has room for it: see [`Inner::Members`]).
    pub fn member(
        &mut self,
        id: &str,
        client: &ClientKey,
        now: Instant,
        inner: &mut InnerCounts,
    ) -> Option<&mut Member> {
        if !self.members.contains_key(id) {
            if !inner.admit(Inner::Members, self.members.len()) {
                return None;
            }
            if self.member_joins.len() >= MEMBER_JOINS_KEPT {
                self.member_joins.pop_front();
            }
            self.member_joins.push_back((now, client.clone()));
            self.index_changed = true;
        }
        let m = self.members.entry(id.to_owned()).or_insert_with(|| Member {
            client: client.clone(),
            assigned: Vec::new(),
            seen: now,
        });
        m.seen = now;
        Some(m)
    }

    /// The member `id` (as [`Group::member`]) given its assignment from a SyncGroup or
    /// ConsumerGroupHeartbeat response.
    pub fn assign(
        &mut self,
        (id, client): (&str, &ClientKey),
        assigned: Assigned,
        now: Instant,
        inner: &mut InnerCounts,
    ) {
        if let Some(m) = self.member(id, client, now, inner) {
            m.assign(assigned, inner);
            self.index_changed = true;
        }
    }

    /// The member `id` left (or was fenced).
    pub fn remove_member(&mut self, id: &str) {
        self.index_changed |= self.members.remove(id).is_some();
    }

    /// A commit of `offset` for `topic`-`partition` seen at `now`, or the lookup's answer of
    /// it (`looked_up`); false if the group has no room for a partition new to it. For a
    /// lookup, true if it moved the offset forward.
    pub fn committed_offset(
        &mut self,
        (topic, partition): (Arc<str>, i32),
        offset: i64,
        now: Instant,
        looked_up: bool,
        inner: &mut InnerCounts,
    ) -> bool {
        let len = self.committed.len();
        match self.committed.entry((topic, partition)) {
            std::collections::btree_map::Entry::Occupied(mut e) => {
                if looked_up {
                    e.get_mut().looked_up(offset, now)
                } else {
                    e.get_mut().update(offset, now);
                    true
                }
            }
            std::collections::btree_map::Entry::Vacant(e) => {
                if !inner.admit(Inner::Committed, len) {
                    return false;
                }
                let mut c = Committed::new(offset, now);
                if looked_up {
                    c.source = CommitSource::Lookup;
                }
                e.insert(c);
                !looked_up
            }
        }
    }

    /// Ties `key` to the group (if it has room for another client key). Whether that tied it
    /// anew or changed how.
    pub fn attribute(
        &mut self,
        key: &ClientKey,
        how: Attribution,
        now: Instant,
        inner: &mut InnerCounts,
    ) -> bool {
        let tied = if let Some(e) = self.clients.get_mut(key) {
            let was = e.0;
            *e = (e.0.min(how), now);
            e.0 != was
        } else if inner.admit(Inner::GroupClients, self.clients.len()) {
            self.clients.insert(key.clone(), (how, now));
            true
        } else {
            false
        };
        self.index_changed |= tied;
        tied
    }

    /// The client key that joined as a new member most often within the rebalance window, and
    /// how often.
    pub fn most_rejoined(&self) -> Option<(&ClientKey, usize)> {
        let mut by: BTreeMap<&ClientKey, usize> = BTreeMap::new();
        for (_, k) in &self.member_joins {
            *by.entry(k).or_default() += 1;
        }
        by.into_iter().max_by_key(|(_, n)| *n)
    }

    /// A new generation seen at `now`: counted once, however many members learn it.
    pub fn new_generation(&mut self, generation: i32, now: Instant) {
        if generation > self.generation {
            self.joins.push_back(now);
            self.rebalances += 1;
            self.generation = generation;
        }
    }
}

/// The group named by a Java consumer's default `client.id`, `consumer-<group>-<n>`.
pub fn java_default_group(client_id: &str) -> Option<&str> {
    let rest = client_id.strip_prefix("consumer-")?;
    let (group, n) = rest.rsplit_once('-')?;
    (!group.is_empty() && !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit())).then_some(group)
}

/// Group attribution for every fetch track ([`super::Model::group_index`]), kept by the model
/// and built again when what it reads changed ([`super::Model::refresh_index`]). A unit test
/// checks it against a walk over every group.
#[derive(Debug, Default)]
pub struct GroupIndex {
    /// Counts the builds: a fetch track attributed under this build need not be again.
    pub(super) generation: u64,
    /// Some fetch track is assigned by several groups: which one wins (the most recently
    /// seen) may change with no change to what the index reads, so it is built every tick.
    pub(super) contested: bool,
    /// By client key, then (topic, partition): a track's lookup borrows its client key
    /// rather than cloning it (a clone touches the `Arc` of its `client.id`, out of cache
    /// when the tick walks every track).
    pub(super) assigned: super::FastMap<ClientKey, AssignedTo>,
    pub(super) by_client: super::FastMap<ClientKey, Option<(Arc<str>, Attribution)>>,
    pub(super) lookup: Option<LookupKnowledge>,
    /// The model's group names, so a group found from a `client.id` shares its name rather
    /// than allocating it again for every track and client key, every tick.
    pub(super) names: std::collections::HashSet<Arc<str>, foldhash::fast::RandomState>,
}

/// A client key's assigned partitions in the group index: (topic, partition) → the group
/// that assigned it and when that group was last seen.
pub(super) type AssignedTo = super::FastMap<(Arc<str>, i32), (Arc<str>, Instant)>;

impl GroupIndex {
    /// Which build of the index this is (see [`super::Model::refresh_index`]).
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// The group consuming `topic`-`partition` through client key `key`: the group one of
    /// whose members with this client key is assigned that partition (SyncGroup or
    /// ConsumerGroupHeartbeat; the most recently seen group if several), else the one group
    /// the lookup describes a member of this `client.id` assigned it in, else
    /// [`GroupIndex::group_of`].
    pub fn group_for(
        &self,
        key: &ClientKey,
        topic: &Arc<str>,
        partition: i32,
    ) -> Option<(Arc<str>, Attribution)> {
        let assigned = self.assigned.get(key);
        if let Some((g, _)) = assigned.and_then(|a| a.get(&(topic.clone(), partition))) {
            return Some((g.clone(), Attribution::Coordinator));
        }
        let looked_up = self
            .lookup
            .as_ref()
            .and_then(|l| l.group_for(key.0, &key.1, topic, partition));
        if let Some(g) = looked_up {
            return Some((g, Attribution::Lookup));
        }
        self.group_of(key)
    }

    /// The group of a client key and how it was found: its own coordinator traffic when that
    /// names one group, else the Java default `client.id`. `None` when several groups share
    /// the client key (a `client.id` reused across groups): use [`GroupIndex::group_for`].
    pub fn group_of(&self, key: &ClientKey) -> Option<(Arc<str>, Attribution)> {
        match self.by_client.get(key) {
            Some(found) => found.clone(),
            None => java_default_group(&key.1).map(|g| {
                let name = self.names.get(g).cloned().unwrap_or_else(|| Arc::from(g));
                (name, Attribution::ClientIdPattern)
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn java_default_client_ids_name_their_group() {
        assert_eq!(java_default_group("consumer-billing-1"), Some("billing"));
        assert_eq!(
            java_default_group("consumer-order-events-v2-12"),
            Some("order-events-v2")
        );
        assert_eq!(java_default_group("consumer--1"), None);
        assert_eq!(java_default_group("producer-1"), None);
        assert_eq!(java_default_group("consumer-x-y"), None);
    }

    #[test]
    fn commits_at_the_ends_of_the_offset_range_do_not_overflow() {
        let t0 = Instant::now();
        let mut c = Committed::new(i64::MIN, t0);
        c.update(i64::MAX, t0 + std::time::Duration::from_secs(1));
        assert_eq!(c.offset, i64::MAX);
        assert!(c.advance_per_sec > 0.0 && c.advance_per_sec.is_finite());
        c.update(i64::MIN, t0);
        assert_eq!(c.offset, i64::MIN);
    }

    #[test]
    fn the_cadence_is_the_median_gap_between_commits() {
        let t0 = Instant::now();
        let mut g = Group::new(t0);
        assert_eq!(g.cadence(), None);
        g.note_commit(t0);
        assert_eq!(g.cadence(), None);
        for s in [5, 10, 15, 45, 50] {
            g.note_commit(t0 + Duration::from_secs(s));
        }
        assert_eq!(g.cadence(), Some(Duration::from_secs(5)));
        for s in 1..=20 {
            g.note_commit(t0 + Duration::from_secs(50 + 30 * s));
        }
        assert_eq!(g.commits.len(), COMMITS_KEPT);
        assert_eq!(g.cadence(), Some(Duration::from_secs(30)));
    }
}
