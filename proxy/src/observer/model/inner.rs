//! The collections inside the model's capped entries — a group's committed offsets, members
//! and clients, a member's assignment, a client's topics, a topic's partitions, a connection's
//! commits waiting for their answers. Each is capped within its entry ([`Inner::per_entry`])
//! and all entries' together by one budget per kind ([`InnerCounts::budget`]); what does not
//! fit is refused and counted, so a client naming ever more partitions costs counters, not
//! memory.

/// A kind of inner collection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Inner {
    /// A group's committed offsets, per (topic, partition).
    Committed,
    /// A group's members.
    Members,
    /// Partitions assigned to a member.
    Assigned,
    /// Client keys tied to a group.
    GroupClients,
    /// Topics a client produced to or fetched from.
    ClientTopics,
    /// A topic's partitions.
    TopicPartitions,
    /// Offsets of a connection's commits waiting for their answers.
    PendingOffsets,
}

/// Committed offsets one group keeps: consumers of thousands of partitions fit.
pub const MAX_GROUP_COMMITTED: usize = 10_000;
/// Members one group keeps.
pub const MAX_GROUP_MEMBERS: usize = 1_000;
/// Partitions one member's assignment keeps.
pub const MAX_MEMBER_ASSIGNED: usize = 10_000;
/// Client keys one group keeps.
pub const MAX_GROUP_CLIENTS: usize = 1_000;
/// Topics one client keeps bytes of (produced and fetched, each).
pub const MAX_CLIENT_TOPICS: usize = 2_000;
/// Partitions one topic keeps.
pub const MAX_TOPIC_PARTITIONS: usize = 10_000;
/// Offsets one connection's commits waiting for their answers keep (all together).
pub const MAX_PENDING_OFFSETS: usize = MAX_GROUP_COMMITTED;

impl Inner {
    /// Every kind, in the order of [`InnerCounts`]' arrays.
    pub const ALL: [Inner; 7] = [
        Inner::Committed,
        Inner::Members,
        Inner::Assigned,
        Inner::GroupClients,
        Inner::ClientTopics,
        Inner::TopicPartitions,
        Inner::PendingOffsets,
    ];

    /// As shown in the observer's health.
    pub fn as_str(self) -> &'static str {
        match self {
            Inner::Committed => "committed",
            Inner::Members => "members",
            Inner::Assigned => "assigned",
            Inner::GroupClients => "group_clients",
            Inner::ClientTopics => "client_topics",
            Inner::TopicPartitions => "topic_partitions",
            Inner::PendingOffsets => "pending_offsets",
        }
    }

    /// Most of this kind one entry (group, member, client, topic, connection) keeps.
    pub const fn per_entry(self) -> usize {
        match self {
            Inner::Committed => MAX_GROUP_COMMITTED,
            Inner::Members => MAX_GROUP_MEMBERS,
            Inner::Assigned => MAX_MEMBER_ASSIGNED,
            Inner::GroupClients => MAX_GROUP_CLIENTS,
            Inner::ClientTopics => MAX_CLIENT_TOPICS,
            Inner::TopicPartitions => MAX_TOPIC_PARTITIONS,
            Inner::PendingOffsets => MAX_PENDING_OFFSETS,
        }
    }

    fn i(self) -> usize {
        self as usize
    }
}

/// Inner entries held and refused, by kind, and the budget of each kind over all entries.
/// Additions are counted as they are made; removals are counted once per tick, when
/// [`super::Model::tick`] counts what is held again (in between the count errs high: an
/// entry may be refused early, never held beyond the budget).
#[derive(Debug, Clone, Copy)]
pub struct InnerCounts {
    /// Held now, by kind.
    pub held: [usize; 7],
    /// Refused since start (the entry or the budget was full), by kind.
    pub refused: [u64; 7],
    /// Most of each kind held over all entries.
    pub budget: usize,
}

impl Default for InnerCounts {
    fn default() -> Self {
        InnerCounts::with_budget(super::super::config::DetectConfig::default().max_partitions)
    }
}

impl InnerCounts {
    /// Empty, with `budget` entries of each kind.
    pub fn with_budget(budget: usize) -> InnerCounts {
        InnerCounts {
            held: [0; 7],
            refused: [0; 7],
            budget,
        }
    }

    /// Whether one more `kind` may go into an entry holding `len` of them (counted held if
    /// so, refused if not).
    pub fn admit(&mut self, kind: Inner, len: usize) -> bool {
        let i = kind.i();
        if len >= kind.per_entry() || self.held[i] >= self.budget {
            self.refused[i] += 1;
            return false;
        }
        self.held[i] += 1;
        true
    }

    /// How many of `wanted` more `kind` fit an entry holding `len` (counted held; the rest
    /// counted refused).
    pub fn admit_many(&mut self, kind: Inner, len: usize, wanted: usize) -> usize {
        let i = kind.i();
        let room = kind
            .per_entry()
            .saturating_sub(len)
            .min(self.budget.saturating_sub(self.held[i]));
        let taken = wanted.min(room);
        self.held[i] += taken;
        self.refused[i] += (wanted - taken) as u64;
        taken
    }

    /// `n` of `kind` were let go.
    pub fn release(&mut self, kind: Inner, n: usize) {
        let i = kind.i();
        self.held[i] = self.held[i].saturating_sub(n);
    }

    /// Refused of `kind` since start.
    pub fn refused(&self, kind: Inner) -> u64 {
        self.refused[kind.i()]
    }

    /// Held of `kind` now.
    pub fn held(&self, kind: Inner) -> usize {
        self.held[kind.i()]
    }

    /// Sets what is held of `kind` (the count made once per tick).
    pub fn recount(&mut self, kind: Inner, held: usize) {
        self.held[kind.i()] = held;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_entry_and_the_budget_both_cap() {
        let mut c = InnerCounts::with_budget(3);
        assert!(c.admit(Inner::Committed, 0));
        assert!(!c.admit(Inner::Committed, MAX_GROUP_COMMITTED));
        assert_eq!(c.admit_many(Inner::Committed, 0, 5), 2);
        assert!(!c.admit(Inner::Committed, 0));
        assert_eq!(c.refused(Inner::Committed), 5);
        assert_eq!(c.held(Inner::Committed), 3);
        c.release(Inner::Committed, 1);
        assert!(c.admit(Inner::Members, 0), "each kind has its own budget");
        assert!(c.admit(Inner::Committed, 0));
    }
}
