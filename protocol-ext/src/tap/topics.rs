//! Topic id → name, learned from Metadata responses on any connection and shared by all of
//! them (Fetch v13+ names topics only by id). Bounded: past [`MAX_TOPIC_IDS`] new ids are
//! not remembered (and counted).

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

use dashmap::DashMap;

use crate::event::{TopicId, TopicRef};

/// Most topic ids remembered.
pub const MAX_TOPIC_IDS: usize = 200_000;

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
