//! Committed offsets of the wanted groups, from their coordinators; FindCoordinator for a
//! wanted group no broker listed.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

use kafka_protocol::messages::{FindCoordinatorRequest, OffsetFetchRequest};

use super::{Round, Rounds, BATCH};
use crate::lookup::ask;
use crate::lookup::error::LookupError;
use crate::lookup::view::{GroupInfo, GroupProtocol};

impl Rounds {
    /// Committed offsets of the wanted groups (up to `max_groups`), from their coordinators;
    /// a wanted group no broker listed is looked up with FindCoordinator first.
    pub(super) async fn fetch_committed(
        &mut self,
        r: &mut Round,
        wanted: BTreeSet<String>,
        failed: &BTreeSet<String>,
    ) {
        let over = wanted.len().saturating_sub(self.max_groups);
        self.totals.groups_over_cap += over as u64;
        let wanted: Vec<String> = wanted.into_iter().take(self.max_groups).collect();
        let unknown: Vec<String> = wanted
            .iter()
            .filter(|g| {
                self.groups
                    .get(*g)
                    .is_none_or(|g| g.listed_at.is_none() && !failed.contains(&g.coordinator.addr))
            })
            .cloned()
            .collect();
        self.find_coordinators(r, &unknown).await;
        let mut batches: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for id in wanted {
            if let Some(g) = self.groups.get(&id) {
                batches
                    .entry(g.coordinator.addr.clone())
                    .or_default()
                    .push(id);
            }
        }
        for (addr, ids) in batches {
            let mut rest: &[String] = &ids;
            while !rest.is_empty() {
                let took = self.fetch_batch(r, &addr, rest).await;
                rest = &rest[took.max(1).min(rest.len())..];
            }
        }
        // A group found only through FindCoordinator that committed nothing does not exist.
        self.groups.retain(|_, g| {
            g.listed_at.is_some() || g.committed.as_ref().is_none_or(|c| !c.offsets.is_empty())
        });
    }

    /// One OffsetFetch to `addr` for the first groups of `ids` (as many as its version
    /// carries); returns how many groups it covered.
    async fn fetch_batch(&mut self, r: &mut Round, addr: &str, ids: &[String]) -> usize {
        let mut asked_for: &[String] = &ids[..ids.len().min(BATCH)];
        let asked = self
            .pool
            .ask::<OffsetFetchRequest, _>(
                addr,
                ask::OFFSET_FETCH_FLOOR,
                |v| {
                    if v < ask::OFFSET_FETCH_BATCH {
                        asked_for = &asked_for[..1];
                    }
                    ask::offset_fetch_request(asked_for, v)
                },
                &mut r.stats,
            )
            .await;
        let covered = asked_for.len();
        let (resp, version) = match asked {
            Ok(x) => x,
            Err(e) => {
                r.fail(&e, ids.first().map(String::as_str));
                // A malformed answer concerns this batch; anything else, every batch left.
                return if matches!(e, LookupError::Malformed { .. }) {
                    covered
                } else {
                    ids.len()
                };
            }
        };
        for (id, got) in ask::committed(&resp, version, asked_for, Instant::now()) {
            match got {
                Ok(c) => {
                    if let Some(g) = self.groups.get_mut(&id) {
                        r.stats.groups_committed += 1;
                        self.totals.partitions_dropped += u64::from(c.dropped);
                        g.committed = Some(c);
                    }
                }
                Err(code) => r.group_error(addr, "OffsetFetch", &id, code),
            }
        }
        covered
    }

    /// FindCoordinator (on the bootstrap) for wanted groups no broker listed; each found
    /// becomes a known group of unknown protocol.
    async fn find_coordinators(&mut self, r: &mut Round, groups: &[String]) {
        let boot = self.bootstrap.clone();
        let mut rest = groups;
        while !rest.is_empty() {
            let mut asked_for: &[String] = &rest[..rest.len().min(BATCH)];
            let asked = self
                .pool
                .ask::<FindCoordinatorRequest, _>(
                    &boot,
                    0,
                    |v| {
                        if v < ask::FIND_COORDINATOR_BATCH {
                            asked_for = &asked_for[..1];
                        }
                        ask::find_coordinator_request(asked_for, v)
                    },
                    &mut r.stats,
                )
                .await;
            let (resp, version) = match asked {
                Ok(x) => x,
                Err(e) => return r.fail(&e, rest.first().map(String::as_str)),
            };
            for (id, found) in ask::coordinators(&resp, version, asked_for) {
                match found {
                    Ok((node, advertised)) => {
                        let addr = if Some(node) == self.self_node {
                            boot.clone()
                        } else {
                            advertised
                        };
                        let coordinator = self.coordinator(Some(node), &addr);
                        let g = self.groups.entry(id.clone()).or_insert_with(|| GroupInfo {
                            group_id: id,
                            protocol: GroupProtocol::Unknown,
                            state: String::new(),
                            coordinator: coordinator.clone(),
                            listed_at: None,
                            members: None,
                            committed: None,
                        });
                        g.coordinator = coordinator;
                    }
                    Err(code) => r.group_error(&boot, "FindCoordinator", &id, code),
                }
            }
            rest = &rest[asked_for.len()..];
        }
    }
}
