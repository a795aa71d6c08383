//! What the group lookup (the cluster's own answers to read-only admin questions) told this
//! sidecar: which groups' members, by `client.id`, are assigned which partitions. It attributes
//! fetches to groups on a sidecar that does not see the groups' coordinator traffic.

use std::collections::{BTreeSet, HashMap};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

use crate::lookup::view::{host_matches, GroupsView};

/// `(client.id, topic, partition)` → the groups with a member of that `client.id` assigned
/// that partition, and where its coordinator saw the member.
pub type AssignedBy = HashMap<(Arc<str>, Arc<str>, i32), Vec<(Arc<str>, Option<IpAddr>)>>;

/// The lookup's last answer, as the observer uses it.
#[derive(Debug, Clone)]
pub struct LookupKnowledge {
    /// When the lookup's round ended.
    pub at: Instant,
    /// Assignments by member `client.id`.
    pub assigned: Arc<AssignedBy>,
    /// Addresses at which a coordinator sees a sidecar, not a client (they match any host).
    pub sidecar_hosts: Arc<BTreeSet<IpAddr>>,
    /// Groups whose coordinator is another broker than the one this sidecar fronts: their
    /// commits go through another sidecar, so none seen here is news.
    pub coordinated_elsewhere: Arc<BTreeSet<Arc<str>>>,
    /// Groups the cluster knows.
    pub groups_known: usize,
    /// Rounds since start.
    pub rounds: u64,
    /// Requests since start.
    pub requests: u64,
    /// Errors since start.
    pub errors: u64,
}

impl LookupKnowledge {
    /// From one round's view (members of every group it described).
    pub fn from_view(view: &GroupsView) -> LookupKnowledge {
        let mut assigned = AssignedBy::new();
        let mut elsewhere = BTreeSet::new();
        for g in &view.groups {
            let group: Arc<str> = Arc::from(g.group_id.as_str());
            if !g.coordinator.fronted {
                elsewhere.insert(group.clone());
            }
            let Some(members) = &g.members else { continue };
            for m in &members.members {
                let client: Arc<str> = Arc::from(m.client_id.as_str());
                for (topic, parts) in &m.assignment {
                    let topic: Arc<str> = Arc::from(topic.as_str());
                    for p in parts {
                        let e = assigned
                            .entry((client.clone(), topic.clone(), *p))
                            .or_default();
                        if !e.iter().any(|(g, _)| *g == group) {
                            e.push((group.clone(), m.client_host));
                        }
                    }
                }
            }
        }
        LookupKnowledge {
            at: view.at,
            assigned: Arc::new(assigned),
            sidecar_hosts: Arc::new(view.sidecar_hosts.clone()),
            coordinated_elsewhere: Arc::new(elsewhere),
            groups_known: view.groups.len(),
            rounds: view.totals.rounds,
            requests: view.totals.requests,
            errors: view.totals.errors.values().sum(),
        }
    }

    /// The one group whose member with this host and `client.id` is assigned
    /// `topic`-`partition`; `None` when none is, or several are (a `client.id` shared by
    /// groups reading the same partition).
    pub fn group_for(
        &self,
        host: IpAddr,
        client_id: &Arc<str>,
        topic: &Arc<str>,
        partition: i32,
    ) -> Option<Arc<str>> {
        if self.assigned.is_empty() {
            return None; // no clones for nothing (a clone touches each `Arc`)
        }
        let found = self
            .assigned
            .get(&(client_id.clone(), topic.clone(), partition))?;
        let mut matching = found
            .iter()
            .filter(|(_, h)| host_matches(&self.sidecar_hosts, *h, host));
        match (matching.next(), matching.next()) {
            (Some((g, _)), None) => Some(g.clone()),
            _ => None,
        }
    }
}
