//! The `topics → partitions` arrays that Fetch responses and Produce requests share:
//!
//! ```text
//! topics      [Topic], then the body's tagged fields (flexible versions)
//! Topic       name string (before topic ids) or topic_id uuid, partitions [Partition],
//!             tagged fields (flexible versions)
//! Partition   the walker's own fields, then tagged fields (flexible versions)
//! ```
//!
//! [`TopicCursor`] reads the array counts, the topic names or ids and the tagged fields between
//! them; a walker reads each partition's own fields and hands back with
//! [`TopicCursor::partition_done`].

use super::reader::{LenKind, Reader, StrReader};
use super::tagged::TaggedFields;
use crate::event::{TopicId, TopicRef};
use crate::TapError;

/// What the cursor reads next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum At {
    Topics,
    TopicName,
    TopicId,
    Partitions,
    /// Inside a partition's own fields: the walker's turn.
    Partition,
    PartitionTags,
    TopicTags,
    TopTags,
    /// Past the body's last field.
    End,
}

/// Where [`TopicCursor::advance`] stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Place {
    /// At a partition's own fields.
    Partition,
    /// Past the topics array and the body's tagged fields: the body should end here.
    End,
}

/// Where a walker stands in the `topics → partitions` arrays. See the module docs.
#[derive(Debug)]
pub(crate) struct TopicCursor {
    flexible: bool,
    by_id: bool,
    at: At,
    topics_left: u32,
    partitions_left: u32,
    name: StrReader,
    topic: TopicRef,
    tags: TaggedFields,
}

impl TopicCursor {
    /// A cursor before the topics array's count: `flexible` for compact lengths and tagged
    /// fields, `by_id` for topics given by id.
    pub(crate) fn new(flexible: bool, by_id: bool) -> TopicCursor {
        TopicCursor {
            flexible,
            by_id,
            at: At::Topics,
            topics_left: 0,
            partitions_left: 0,
            name: StrReader::default(),
            topic: TopicRef::default(),
            tags: TaggedFields::default(),
        }
    }

    /// The topic of the partition being read.
    pub(crate) fn topic(&self) -> &TopicRef {
        &self.topic
    }

    /// Reads on to the next partition's own fields, or to the end of the body's fields; `None`
    /// when `input` ran out first (call again with the next bytes).
    pub(crate) fn advance(
        &mut self,
        r: &mut Reader,
        input: &mut &[u8],
    ) -> Result<Option<Place>, TapError> {
        let array = LenKind::array(self.flexible);
        macro_rules! tags_then {
            ($next:expr) => {{
                if !self.tags.feed(r, input)? {
                    return Ok(None);
                }
                $next;
            }};
        }
        loop {
            match self.at {
                At::Topics => {
                    let Some(n) = r.count(input, array)? else {
                        return Ok(None);
                    };
                    self.topics_left = n;
                    self.next_topic();
                }
                At::TopicName => {
                    let kind = LenKind::string(self.flexible);
                    match self.name.read(r, input, kind)? {
                        None => return Ok(None),
                        Some(Some(name)) => self.topic = TopicRef::named(name),
                        Some(None) => return Err(r.malformed("null topic name")),
                    }
                    self.at = At::Partitions;
                }
                At::TopicId => {
                    let Some(mut f) = r.fixed(input, 16) else {
                        return Ok(None);
                    };
                    self.topic = TopicRef::by_id(TopicId(f.uuid()));
                    self.at = At::Partitions;
                }
                At::Partitions => {
                    let Some(n) = r.count(input, array)? else {
                        return Ok(None);
                    };
                    self.partitions_left = n;
                    self.next_partition();
                }
                At::Partition => return Ok(Some(Place::Partition)),
                At::PartitionTags => tags_then!(self.next_partition()),
                At::TopicTags => tags_then!(self.next_topic()),
                At::TopTags => tags_then!(self.at = At::End),
                At::End => return Ok(Some(Place::End)),
            }
        }
    }

    /// The walker read a partition's own fields: on to its tagged fields, then the next
    /// partition.
    pub(crate) fn partition_done(&mut self) {
        debug_assert_eq!(self.at, At::Partition);
        if self.flexible {
            self.tags.start();
            self.at = At::PartitionTags;
        } else {
            self.next_partition();
        }
    }

    fn next_topic(&mut self) {
        if self.topics_left == 0 {
            if self.flexible {
                self.tags.start();
                self.at = At::TopTags;
            } else {
                self.at = At::End;
            }
            return;
        }
        self.topics_left -= 1;
        self.at = if self.by_id {
            At::TopicId
        } else {
            At::TopicName
        };
    }

    fn next_partition(&mut self) {
        if self.partitions_left == 0 {
            if self.flexible {
                self.tags.start();
                self.at = At::TopicTags;
            } else {
                self.next_topic();
            }
            return;
        }
        self.partitions_left -= 1;
        self.at = At::Partition;
    }
}
