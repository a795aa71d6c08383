//! Topic id → name, learned from Metadata responses on any connection and shared by all of
//! them (Fetch v13+ names topics only by id). Bounded: past [`MAX_TOPIC_IDS`] new ids are
//! not remembered (and counted).

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

use dashmap::DashMap;

use crate::event::{TopicId, TopicRef};

/// Most topic ids remembered.
pub const MAX_TOPIC_IDS: usize = 200_000;

/// The last few names one connection resolved, so that a consumer's every round trip does not
/// go to the shared map. Safe to keep: a topic id names one topic for its whole life.
#[derive(Debug, Default)]
pub struct NameCache {
    slots: [Option<(TopicId, Arc<str>)>; 4],
    next: usize,
}

/// The shared id → name map.
#[derive(Debug, Default)]
pub struct TopicNames {
    map: DashMap<TopicId, Arc<str>>,
    dropped: AtomicU64,
}

impl TopicNames {
    /// An empty map.
    pub fn new() -> Arc<TopicNames> {
        Arc::new(TopicNames::default())
    }

    /// Remembers that `id` is `name`.
    pub fn learn(&self, id: TopicId, name: &str) {
        if id == TopicId::ZERO {
            return;
        }
        if let Some(known) = self.map.get(&id) {
            if &**known == name {
                return;
            }
        }
        if self.map.len() >= MAX_TOPIC_IDS && !self.map.contains_key(&id) {
            self.dropped.fetch_add(1, Relaxed);
            return;
        }
        self.map.insert(id, Arc::from(name));
    }

    /// The name of `id`, if known.
    pub fn name(&self, id: TopicId) -> Option<Arc<str>> {
        self.map.get(&id).map(|n| n.clone())
    }

    /// Fills in the name of a topic given by id, when known.
    pub fn resolve(&self, topic: &mut TopicRef) {
        if topic.name.is_none() {
            if let Some(id) = topic.id {
                topic.name = self.name(id);
            }
        }
    }

    /// [`TopicNames::resolve`], looking first in a connection's own `cache`.
    pub fn resolve_with(&self, cache: &mut NameCache, topic: &mut TopicRef) {
        let (None, Some(id)) = (&topic.name, topic.id) else {
            return;
        };
        if let Some((_, name)) = cache.slots.iter().flatten().find(|(i, _)| *i == id) {
            topic.name = Some(name.clone());
        } else if let Some(name) = self.name(id) {
            cache.slots[cache.next] = Some((id, name.clone()));
            cache.next = (cache.next + 1) % cache.slots.len();
            topic.name = Some(name);
        }
    }

    /// Ids known.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// True if no id is known.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Ids not remembered because the map was full.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u8) -> TopicId {
        TopicId([n; 16])
    }

    #[test]
    fn a_connection_cache_answers_like_the_shared_map() {
        let names = TopicNames::new();
        let mut cache = NameCache::default();
        let resolve = |cache: &mut NameCache, n: u8| {
            let mut t = TopicRef::by_id(id(n));
            names.resolve_with(cache, &mut t);
            t.name.map(|n| n.to_string())
        };
        assert_eq!(
            resolve(&mut cache, 1),
            None,
            "not learned yet: not cached either"
        );
        for n in 1..=6 {
            names.learn(id(n), &format!("topic-{n}"));
        }
        // More topics than the cache holds, twice over: every answer is the map's.
        for _ in 0..2 {
            for n in 1..=6 {
                assert_eq!(resolve(&mut cache, n), Some(format!("topic-{n}")));
            }
        }
        assert_eq!(resolve(&mut cache, 9), None);
        // A topic already named keeps its name.
        let mut named = TopicRef {
            name: Some(Arc::from("given")),
            id: Some(id(1)),
        };
        names.resolve_with(&mut cache, &mut named);
        assert_eq!(named.name.as_deref(), Some("given"));
    }
}
