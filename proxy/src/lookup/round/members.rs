//! Which groups are described in a round, and the sweep that finds the group of a client
//! fetching without one.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

use kafka_protocol::messages::{ConsumerGroupDescribeRequest, DescribeGroupsRequest};

use super::{
    ClientKey, Round, Rounds, SweepState, BATCH, MAX_INTEREST_CLIENTS, SWEEP_BACKOFF_ROUNDS,
};
use crate::lookup::ask;
use crate::lookup::view::{group_has, ClientInterest, GroupProtocol, Interest};

impl Rounds {
    /// The clients that may trigger a sweep this round.
    pub(super) fn due_clients(&mut self, interest: &Interest) -> Vec<ClientInterest> {
        let clients = &interest.clients[..interest.clients.len().min(MAX_INTEREST_CLIENTS)];
        let keys: BTreeSet<ClientKey> = clients
            .iter()
            .map(|c| (c.host, c.client_id.clone()))
            .collect();
        self.sweeps.retain(|k, _| keys.contains(k));
        let round = self.round_no;
        clients
            .iter()
            .filter(|c| {
                self.sweeps
                    .get(&(c.host, c.client_id.clone()))
                    .is_none_or(|s| s.next_round <= round || s.partitions != c.partitions)
            })
            .cloned()
            .collect()
    }

    /// After a sweep: the groups the due clients were found in; each due client waits for
    /// its next sweep (longer the more sweeps missed it).
    pub(super) fn after_sweep(&mut self, due: &[ClientInterest]) -> BTreeSet<String> {
        let hosts = self.sidecar_hosts();
        let mut found = BTreeSet::new();
        for c in due {
            let groups: Vec<&String> = self
                .groups
                .values()
                .filter(|g| group_has(&hosts, g, c))
                .map(|g| &g.group_id)
                .collect();
            let key = (c.host, c.client_id.clone());
            let state = self.sweeps.entry(key).or_insert(SweepState {
                misses: 0,
                next_round: 0,
                partitions: Vec::new(),
            });
            state.partitions.clone_from(&c.partitions);
            if groups.is_empty() {
                state.misses += 1;
            } else {
                state.misses = SWEEP_BACKOFF_ROUNDS.len();
            }
            let wait = SWEEP_BACKOFF_ROUNDS[state.misses.clamp(1, SWEEP_BACKOFF_ROUNDS.len()) - 1];
            state.next_round = self.round_no + wait;
            found.extend(groups.into_iter().cloned());
        }
        found
    }

    /// Describes the groups of interest (all listed groups in a sweep), up to `max_groups`:
    /// interest first, then the least recently described.
    pub(super) async fn describe(&mut self, r: &mut Round, interest: &Interest, sweep: bool) {
        let mut chosen: Vec<(u8, Option<Instant>, String)> = self
            .groups
            .values()
            .filter(|g| g.protocol != GroupProtocol::Unknown && g.listed_at.is_some())
            .filter(|g| sweep || interest.groups.contains(&g.group_id))
            .map(|g| {
                let first = u8::from(!interest.groups.contains(&g.group_id));
                (first, g.members.as_ref().map(|m| m.at), g.group_id.clone())
            })
            .collect();
        chosen.sort();
        let over = chosen.len().saturating_sub(self.max_groups);
        self.totals.groups_over_cap += over as u64;
        let mut batches: BTreeMap<(String, GroupProtocol), Vec<String>> = BTreeMap::new();
        for (_, _, id) in chosen.into_iter().take(self.max_groups) {
            let g = &self.groups[&id];
            let key = (g.coordinator.addr.clone(), g.protocol);
            batches.entry(key).or_default().push(id);
        }
        for ((addr, protocol), ids) in batches {
            for chunk in ids.chunks(BATCH) {
                self.describe_batch(r, &addr, protocol, chunk).await;
            }
        }
    }

    async fn describe_batch(
        &mut self,
        r: &mut Round,
        addr: &str,
        protocol: GroupProtocol,
        ids: &[String],
    ) {
        let (api, outcome) = if protocol == GroupProtocol::Consumer {
            let asked = self
                .pool
                .ask::<ConsumerGroupDescribeRequest, _>(
                    addr,
                    0,
                    |_| ask::consumer_group_describe_request(ids),
                    &mut r.stats,
                )
                .await;
            let outcome = asked.map(|(resp, _)| ask::described_consumer(&resp, Instant::now()));
            ("ConsumerGroupDescribe", outcome)
        } else {
            let asked = self
                .pool
                .ask::<DescribeGroupsRequest, _>(
                    addr,
                    0,
                    |_| ask::describe_groups_request(ids),
                    &mut r.stats,
                )
                .await;
            let outcome = asked.map(|(resp, _)| ask::described_classic(&resp, Instant::now()));
            ("DescribeGroups", outcome)
        };
        let per_group = match outcome {
            Ok(p) => p,
            Err(e) => return r.fail(&e, ids.first().map(String::as_str)),
        };
        for (id, described) in per_group {
            match described {
                Ok(members) => {
                    if let Some(g) = self.groups.get_mut(&id) {
                        r.stats.groups_described += 1;
                        self.totals.members_dropped += u64::from(members.dropped_members);
                        self.totals.partitions_dropped += u64::from(members.dropped_partitions);
                        g.state.clone_from(&members.state);
                        g.members = Some(members);
                    }
                }
                Err(code) => r.group_error(addr, api, &id, code),
            }
        }
    }
}
