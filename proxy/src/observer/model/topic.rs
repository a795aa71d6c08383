//! Topics: bytes in and out, partitions' ends, the groups consuming them; and the name a topic
//! is filed under when a frame names it only by id.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Instant;

use sluice_protocol::event::{TopicId, TopicRef};

use super::inner::{Inner, InnerCounts};

/// A topic partition, by name.
pub type TopicPartition = (Arc<str>, i32);

/// Topic ids whose `id:<hex>` label is kept for reuse.
const MAX_ID_LABELS: usize = 100_000;

/// The name to file a topic under: its name, or `id:<hex>` until the name is known.
pub fn topic_name(t: &TopicRef) -> Arc<str> {
    match (&t.name, t.id) {
        (Some(n), _) => n.clone(),
        (None, Some(id)) => id_label(id),
        (None, None) => Arc::from("?"),
    }
}

/// The label of a topic known only by id, made once (this runs per delivered partition).
fn id_label(id: TopicId) -> Arc<str> {
    static LABELS: std::sync::OnceLock<dashmap::DashMap<TopicId, Arc<str>>> =
        std::sync::OnceLock::new();
    let labels = LABELS.get_or_init(dashmap::DashMap::new);
    if let Some(l) = labels.get(&id) {
        return l.clone();
    }
    let label: Arc<str> = Arc::from(format!("id:{id}"));
    if labels.len() < MAX_ID_LABELS {
        labels.insert(id, label.clone());
    }
    label
}

/// A topic's totals.
#[derive(Debug, Clone, Default)]
pub struct Topic {
    /// Bytes produced into it.
    pub bytes_in: u64,
    /// Bytes consumers fetched from it.
    pub bytes_out: u64,
    /// Of which delivered for the first time to that client.
    pub unique_out: u64,
    /// Bytes follower brokers fetched.
    pub replica_out: u64,
    /// Per partition: end of the log (the high watermark the broker reported in Fetch
    /// responses) and the highest offset delivered to a consumer.
    pub partitions: BTreeMap<i32, (i64, i64)>,
    /// Groups seen fetching it within the window, as of the last time the tables were built
    /// ([`super::Model::refresh_topic_groups`]).
    pub groups: BTreeSet<Arc<str>>,
    /// Last produce or fetch seen (idle topics are evicted like idle clients).
    pub last_seen: Option<Instant>,
}

impl Topic {
    /// The entry (log end, highest offset delivered) of `partition`, if the topic has room
    /// for it (see [`Inner::TopicPartitions`]).
    pub fn partition(
        &mut self,
        partition: i32,
        inner: &mut InnerCounts,
    ) -> Option<&mut (i64, i64)> {
        let len = self.partitions.len();
        match self.partitions.entry(partition) {
            std::collections::btree_map::Entry::Occupied(e) => Some(e.into_mut()),
            std::collections::btree_map::Entry::Vacant(e) => inner
                .admit(Inner::TopicPartitions, len)
                .then(|| e.insert((0, 0))),
        }
    }
}

impl super::Model {
    /// `name` as the model keeps it: the topics map's own `Arc` when the topic is known, else
    /// `name`. Each connection's tap names a topic with an `Arc` of its own; the keys made
    /// with this one (new fetch tracks, committed offsets) share one allocation, so the tick's
    /// walk over every track clones and compares a topic name that stays in cache (and
    /// compares equal by address) rather than one per connection.
    pub fn topic_key(&self, name: Arc<str>) -> Arc<str> {
        match self.topics.get_key_value(&*name) {
            Some((known, _)) => known.clone(),
            None => name,
        }
    }
}
