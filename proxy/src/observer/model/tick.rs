//! The model's part of a tick: expiry, then one walk over the fetch tracks that ages their
//! samples, attributes each to its group, starts the stall clocks of committed offsets fetched
//! past and gathers what the lookup should ask about. Which groups read each topic is
//! gathered when the tables are built.
//!
//! The tracks are the model's largest map (one per client key and partition fetched): a walk
//! over them costs about a millisecond at 10,000, so the tick walks them once.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::group::GroupIndex;
use super::track::{FetchTrack, TrackKey, Uncommitted};
use super::{prune, ClientKey, Expiry, FastMap, FastSet, Group, Model};

/// What a tick's walk over the fetch tracks found, for the detectors and the lookup.
#[derive(Debug, Default)]
pub struct TrackPass {
    /// (group, topic, partition)s whose delivered records go past the group's committed
    /// offset, or with none known: the only ones a group can be failing to commit.
    pub uncommitted: Uncommitted,
    /// The groups of the tracks fetched within the window.
    pub groups: BTreeSet<Arc<str>>,
    /// Tracks fetched within the window whose group is not known.
    pub ungrouped: Vec<TrackKey>,
    /// Topics of tracks known only by id (`id:<hex>`), once each.
    pub unnamed: Vec<Arc<str>>,
    /// Per topic, over its tracks: bytes and re-delivered bytes within the window, and the
    /// longest span of a track's window (what egress amplification is judged on).
    pub topic_windows: FastMap<Arc<str>, TopicWindow>,
    /// Tracks that went back within the window (what fetch loops are judged on).
    pub rewinding: Vec<TrackKey>,
}

/// A topic's fetching within the window, summed over its tracks (see
/// [`FetchTrack::window`]).
#[derive(Debug, Default, Clone, Copy)]
pub struct TopicWindow {
    /// Record bytes delivered.
    pub bytes: u64,
    /// Of which delivered again.
    pub again: u64,
    /// The longest span a track's window covers.
    pub span: Duration,
}

/// The address of what an `Arc<str>` holds: equal addresses are equal names (different
/// addresses may still be).
fn addr(s: &Arc<str>) -> usize {
    Arc::as_ptr(s).cast::<u8>() as usize
}

/// Gathers which groups read which topics, looking each (topic, group) pair up once however
/// many tracks share it.
#[derive(Default)]
struct TopicGroups {
    seen: FastSet<(usize, usize)>,
    by_topic: FastMap<Arc<str>, BTreeSet<Arc<str>>>,
}

impl TopicGroups {
    fn add(&mut self, topic: &Arc<str>, group: &Arc<str>) {
        if self.seen.insert((addr(topic), addr(group))) {
            self.by_topic
                .entry(topic.clone())
                .or_default()
                .insert(group.clone());
        }
    }
}

impl Model {
    /// Once per tick: drops what fell out of the windows or has been idle too long, attributes
    /// every fetch track to its group (keeping a track's last group when none is found now),
    /// and starts the stall clocks (see [`FetchTrack::uncommitted_past`]).
    pub fn tick(&mut self, now: Instant, e: Expiry) -> TrackPass {
        let age = |t: Instant| now.saturating_duration_since(t);
        let before =
            self.clients.len() + self.groups.len() + self.fetches.len() + self.topics.len();
        // Client keys whose row may show another group: untied from one, or whose tracks went
        // or moved.
        let mut touched = self.expire_clients_and_groups(now, e);
        self.refresh_index();
        let index = &self.index;
        let mut pass = TrackPass::default();
        let (mut active_groups, mut unnamed) = (FastSet::default(), FastSet::default());
        let tracks = self.fetches.len();
        let mut moved = false;
        let groups = &mut self.groups;
        let mut groups_changed = false;
        self.fetches.retain(|track_key, t| {
            if age(t.last_seen) >= e.idle {
                touched.push(track_key.0.clone());
                return false;
            }
            let (key, topic, partition) = track_key;
            prune(&mut t.rewinds, |(at, _)| age(*at) <= e.window);
            t.history.push_back((now, t.bytes, t.redelivered));
            prune(&mut t.history, |(at, _, _)| age(*at) <= e.window);
            let (bytes, again, span) = t.window();
            // Cloned only for a topic new to the map: a clone touches the `Arc`'s count.
            let w = match pass.topic_windows.get_mut(topic) {
                Some(w) => w,
                None => pass.topic_windows.entry(topic.clone()).or_default(),
            };
            w.bytes += bytes;
            w.again += again;
            w.span = w.span.max(span);
            if !t.rewinds.is_empty() {
                pass.rewinding.push(track_key.clone());
            }
            if remember_group(t, index, track_key) {
                moved = true;
                touched.push(key.clone());
            }
            let active = age(t.last_seen) <= e.window;
            match &t.group {
                Some((g, _)) if active && active_groups.insert(addr(g)) => {
                    pass.groups.insert(g.clone());
                }
                None if active => pass.ungrouped.push(track_key.clone()),
                _ => {}
            }
            if topic.starts_with("id:") && unnamed.insert(addr(topic)) {
                pass.unnamed.push(topic.clone());
            }
            if let Some((g, _)) = &t.group {
                let (past, started) = if bytes == 0 {
                    (false, false) // not fetching: nothing is judged, nothing starts
                } else {
                    t.uncommitted_past(groups, (g, topic, *partition), now)
                };
                groups_changed |= started;
                if past {
                    pass.uncommitted
                        .insert((g.clone(), topic.clone(), *partition));
                }
            }
            true
        });
        self.changed.groups |= groups_changed;
        self.changed.tracks |= moved || tracks != self.fetches.len();
        for key in touched {
            self.client_changed(&key);
        }
        let topics = self.topics.len();
        self.topics
            .retain(|_, t| t.last_seen.is_some_and(|seen| age(seen) < e.idle));
        self.changed.topics |= topics != self.topics.len();
        let after = self.clients.len() + self.groups.len() + self.fetches.len() + self.topics.len();
        self.evicted += (before - after) as u64;
        self.recount_inner();
        pass
    }

    /// Recomputes which groups consume each topic, from the fetch tracks active within
    /// `window` of `now` (as attributed at the last tick): when the tables are built, not
    /// every tick — nothing else reads them.
    pub fn refresh_topic_groups(&mut self, now: Instant, window: Duration) {
        let mut topic_groups = TopicGroups::default();
        for ((_, topic, _), t) in &self.fetches {
            match &t.group {
                Some((g, _)) if now.saturating_duration_since(t.last_seen) <= window => {
                    topic_groups.add(topic, g)
                }
                _ => {}
            }
        }
        for (name, t) in &mut self.topics {
            let groups = topic_groups.by_topic.remove(name).unwrap_or_default();
            if t.groups != groups {
                t.groups = groups;
                self.changed.topics = true;
            }
        }
    }

    /// The groups whose fetch tracks of `topic` fetched within `window` of `now` (as
    /// attributed at the last tick): a walk over every track, for a finding's evidence.
    pub fn groups_reading(
        &self,
        topic: &str,
        now: Instant,
        window: Duration,
    ) -> BTreeSet<Arc<str>> {
        self.fetches
            .iter()
            .filter(|((_, t, _), f)| {
                &**t == topic && now.saturating_duration_since(f.last_seen) <= window
            })
            .filter_map(|(_, f)| f.group.as_ref().map(|(g, _)| g.clone()))
            .collect()
    }

    /// Expiry of client keys and groups (before the group index is built from the groups);
    /// returns the client keys untied from a group.
    fn expire_clients_and_groups(&mut self, now: Instant, e: Expiry) -> Vec<ClientKey> {
        let age = |t: Instant| now.saturating_duration_since(t);
        for c in self.clients.values_mut() {
            // Its row shows the opens within the window.
            c.changed |= prune(&mut c.recent_opens, |t| age(*t) <= e.window);
            prune(&mut c.recent_closes, |(t, _)| age(*t) <= e.window);
        }
        let mut untied: Vec<ClientKey> = Vec::new();
        for g in self.groups.values_mut() {
            let held = g.members.len() + g.clients.len();
            let pruned = prune(&mut g.joins, |t| age(*t) <= e.rebalance_window);
            prune(&mut g.member_joins, |(t, _)| age(*t) <= e.rebalance_window);
            g.members.retain(|_, m| age(m.seen) < e.member);
            g.clients.retain(|key, (_, seen)| {
                let keep = age(*seen) < e.member;
                if !keep {
                    untied.push(key.clone());
                }
                keep
            });
            let untied = g.members.len() + g.clients.len() != held;
            g.index_changed |= untied;
            self.changed.groups |= pruned || untied;
        }
        let groups = self.groups.len();
        self.clients
            .retain(|_, c| c.open > 0 || age(c.last_seen) < e.idle);
        self.groups.retain(|_, g| {
            let keep = age(g.last_seen) < e.idle;
            if !keep {
                untied.extend(g.clients.keys().cloned());
            }
            keep
        });
        self.changed.groups |= groups != self.groups.len();
        self.index_stale |= groups != self.groups.len();
        untied
    }
}

/// Attributes track `key` to its group through `index`, keeping its last group when `index`
/// has none for it now (a track attributed under this build of the index already was);
/// whether the group changed.
fn remember_group(t: &mut FetchTrack, index: &GroupIndex, key: &TrackKey) -> bool {
    if t.attributed == Some(index.generation) {
        return false;
    }
    t.attributed = Some(index.generation);
    let (client, topic, partition) = key;
    match index.group_for(client, topic, *partition) {
        Some(found) if t.group.as_ref() != Some(&found) => {
            t.group = Some(found);
            true
        }
        _ => false,
    }
}

impl FetchTrack {
    /// Whether the records delivered on this track, which delivered bytes within the window
    /// for `group` (`topic`-`partition`), go past the group's committed offset or have none
    /// known — and whether that started the offset's stall clock now (see
    /// [`super::group::Committed::uncommitted_since`]). Once per tick, after the samples,
    /// before the detectors.
    pub fn uncommitted_past(
        &self,
        groups: &mut FastMap<Arc<str>, Group>,
        (group, topic, partition): (&Arc<str>, &Arc<str>, i32),
        now: Instant,
    ) -> (bool, bool) {
        let committed = groups
            .get_mut(group)
            .and_then(|g| g.committed.get_mut(&(topic.clone(), partition)));
        match committed {
            Some(c) if c.offset >= self.delivered_end => (false, false),
            Some(c) => {
                // Past it since the track's previous sample (the tick before) at the
                // earliest, or it would have been seen then.
                let since = self.history.iter().rev().nth(1).map_or(now, |s| s.0);
                let before = c.uncommitted_since;
                c.fetched_to(self.delivered_end, since, self.joined);
                (true, c.uncommitted_since != before)
            }
            None => (true, false),
        }
    }
}
