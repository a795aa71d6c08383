//! The observer's state, owned by one task: connections, the model, the findings. Events are
//! applied here in the order each connection handed them over; once per tick the detectors run
//! and a [`Snapshot`] is made for every reader.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use sluice_protocol::TapEvent;

use super::apply::Apply;
use super::config::DetectConfig;
use super::detect;
use super::findings::Registry;
use super::model::{
    api_entry, Changed, ClientKey, Conn, Expiry, FastMap, Inner, InnerCounts, LookupKnowledge,
    Model, TrackPass,
};
use super::rows::Rows;
use super::snapshot::{Flags, Snapshot, Tables};
use crate::lookup::view::{ClientInterest, GroupsView, Interest};
use crate::lookup::LOOKUP_CLIENT_ID;
use crate::sink::ConnMeta;

/// Most groups, and most clients without a group, the lookup is asked about.
const MAX_INTEREST: usize = 1000;
/// Most partitions given per client the lookup is asked to find the group of.
const MAX_INTEREST_PARTITIONS: usize = 64;

/// The id of a topic filed as `id:<hex>` (known only by id).
fn unnamed_topic_id(label: &str) -> Option<[u8; 16]> {
    let hex = label.strip_prefix("id:")?;
    if hex.len() != 32 {
        return None;
    }
    let mut id = [0u8; 16];
    for (i, b) in id.iter_mut().enumerate() {
        *b = u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(id)
}

/// What the lookup should ask about now, from the tick's walk over the fetch tracks: the
/// groups fetching here, and the clients fetching here with no group known.
fn interest(pass: TrackPass) -> Interest {
    let mut clients: BTreeMap<ClientKey, Vec<(String, i32)>> = BTreeMap::new();
    for (key, topic, partition) in pass.ungrouped {
        if &*key.1 == LOOKUP_CLIENT_ID
            || (clients.len() >= MAX_INTEREST && !clients.contains_key(&key))
        {
            continue;
        }
        let parts = clients.entry(key).or_default();
        // A topic known only by id cannot match an assignment (by name): the client is asked
        // about by its client.id alone until the name is known.
        if parts.len() < MAX_INTEREST_PARTITIONS && unnamed_topic_id(&topic).is_none() {
            parts.push((topic.to_string(), partition));
        }
    }
    Interest {
        groups: pass
            .groups
            .iter()
            .take(MAX_INTEREST)
            .map(|g| g.to_string())
            .collect(),
        clients: clients
            .into_iter()
            .map(|((host, id), mut partitions)| {
                partitions.sort();
                ClientInterest {
                    host,
                    client_id: id.to_string(),
                    partitions,
                }
            })
            .collect(),
        topic_ids: pass
            .unnamed
            .iter()
            .filter_map(|t| unnamed_topic_id(t))
            .take(MAX_INTEREST)
            .collect(),
    }
}

/// What a tick publishes.
#[derive(Debug)]
pub struct Published {
    /// What readers see.
    pub snapshot: Snapshot,
    /// Client keys under an active finding.
    pub flags: Flags,
    /// What the group lookup should ask about.
    pub interest: Interest,
}

/// What the observer's task owns.
#[derive(Debug)]
pub struct State {
    cfg: DetectConfig,
    conns: FastMap<u64, Conn>,
    model: Model,
    findings: Registry,
    rows: Rows,
    /// Connections opened or given events since the last tick ([`Conn::mark`]).
    relabel: Vec<u64>,
}

impl State {
    /// Empty, with these thresholds and bounds.
    pub fn new(cfg: DetectConfig) -> State {
        let model = Model::with_inner(InnerCounts::with_budget(cfg.max_partitions));
        State {
            cfg,
            conns: FastMap::default(),
            model,
            findings: Registry::default(),
            rows: Rows::default(),
            relabel: Vec::new(),
        }
    }

    /// The thresholds in use.
    pub fn config(&self) -> &DetectConfig {
        &self.cfg
    }

    /// The model (tests and benches look inside).
    pub fn model(&self) -> &Model {
        &self.model
    }

    /// Connection `conn` was opened at `at`.
    pub fn open(&mut self, conn: &ConnMeta, at: Instant) {
        let c = self
            .conns
            .entry(conn.id)
            .or_insert_with(|| Conn::new(conn.client_addr, conn.listener.clone(), at));
        c.mark(conn.id, &mut self.relabel);
        // The TLS client certificate's subject until a SASL principal is seen, which wins.
        if c.principal.is_none() {
            c.principal = conn.tls_subject.as_deref().map(str::to_owned);
        }
    }

    /// Events of connection `conn`, in order. A connection whose open was not seen (dropped
    /// under load) is known from its first events on.
    pub fn events(&mut self, conn: &ConnMeta, events: &[(TapEvent, Instant)]) {
        let Some(first) = events.first() else {
            return;
        };
        let c = self
            .conns
            .entry(conn.id)
            .or_insert_with(|| Conn::new(conn.client_addr, conn.listener.clone(), first.1));
        c.mark(conn.id, &mut self.relabel);
        for (event, at) in events {
            Apply {
                conn: c,
                model: &mut self.model,
                cfg: &self.cfg,
                now: *at,
            }
            .event(event);
        }
        // Its client key's row shows its counts.
        if let Some(key) = &c.counted_as {
            self.model.client_changed(key);
        }
    }

    /// Connection `conn` ended at `at`: its counts move to its client key.
    pub fn close(&mut self, conn: &ConnMeta, at: Instant) {
        let Some(c) = self.conns.remove(&conn.id) else {
            return;
        };
        let key = c.counted_as.clone().unwrap_or_else(|| c.key());
        let Some(cl) = self.model.client(&key, at, self.cfg.max_clients) else {
            return;
        };
        for (k, n) in &c.api {
            api_entry(&mut cl.api, *k).add(n);
        }
        if c.counted_as.is_some() {
            cl.open = cl.open.saturating_sub(1);
        } else {
            // Never sent a request: counted now, as opened and closed.
            cl.opened += 1;
            cl.recent_opens.push_back(c.opened);
        }
        cl.closed += 1;
        cl.recent_closes
            .push_back((at, at.saturating_duration_since(c.opened)));
    }

    /// The group lookup's answer: who is in which group (for fetches whose group this
    /// sidecar's own traffic does not tell) and committed offsets, of the groups fetching here.
    pub fn looked_up(&mut self, view: &GroupsView) {
        let now = view.at;
        for info in &view.groups {
            let Some(committed) = &info.committed else {
                continue;
            };
            // Named as the model names the topics (see [`Model::topic_key`]).
            let offsets: Vec<_> = committed
                .offsets
                .iter()
                .map(|((topic, partition), offset)| {
                    let topic = self.model.topic_key(Arc::from(topic.as_str()));
                    ((topic, *partition), *offset)
                })
                .collect();
            let Some((g, inner)) = self
                .model
                .group_inner(&info.group_id, now, self.cfg.max_groups)
            else {
                continue;
            };
            // With no commit seen here, the lookup's view of the offsets moving is the
            // group's cadence.
            let blind = g
                .commit_seen
                .is_none_or(|t| now.saturating_duration_since(t) > self.cfg.commit_grace);
            let mut moved = false;
            for (key, offset) in offsets {
                moved |= g.committed_offset(key, offset, committed.at, true, inner);
            }
            if moved && blind {
                g.note_commit(committed.at);
            }
        }
        self.model.set_lookup(LookupKnowledge::from_view(view));
    }

    /// The snapshot's tables as a tick would build them with nothing kept from the ticks
    /// before (tests and the fuzz target compare them with the kept ones, right after
    /// [`State::tables`]: the topics' groups are those it gathered).
    pub fn tables_afresh(&self) -> Tables {
        Rows::afresh(&self.model, &self.model.group_index(), &self.conns)
    }

    /// The first fetch track whose group is not the one a group index built now gives it,
    /// described; `None` when each has its own. Right after a tick, the group index kept from
    /// build to build ([`Model::refresh_index`]) must give what one built afresh does: tests
    /// and the fuzz target check it.
    pub fn misattributed(&self) -> Option<String> {
        let index = self.model.group_index();
        self.model.fetches.iter().find_map(|(key, t)| {
            let afresh = index.group_for(&key.0, &key.1, key.2)?;
            (t.group.as_ref() != Some(&afresh))
                .then(|| format!("track {key:?}: kept {:?}, afresh {afresh:?}", t.group))
        })
    }

    /// Expires old samples, runs the detectors, and makes the snapshot readers see next, with
    /// the client keys under an active finding and what the lookup should ask about. Its
    /// tables are those last built ([`State::tables`]); the connections' labels are this
    /// tick's.
    pub fn detect(&mut self, now: Instant) -> Published {
        let pass = self.model.tick(
            now,
            Expiry {
                window: self.cfg.window,
                rebalance_window: self.cfg.rebalance_window,
                idle: self.cfg.idle_eviction,
                member: self.cfg.member_expiry,
            },
        );
        let pending = self.conns.values().map(Conn::pending_offsets).sum();
        self.model.inner.recount(Inner::PendingOffsets, pending);
        detect::run(&self.model, &pass, (&self.cfg, now), &mut self.findings);
        self.findings.sweep(now, self.cfg.clear_after);
        for id in &self.relabel {
            if let Some(c) = self.conns.get_mut(id) {
                c.relabel = false;
            }
        }
        let labels = self.rows.labels(&self.conns, &self.relabel);
        self.relabel.clear();
        let snapshot = Snapshot::build(
            (now, &self.cfg),
            &self.model,
            self.rows.kept(),
            (self.conns.len(), labels),
            &self.findings,
        );
        let flags = Flags::from_findings(&self.model, self.findings.active());
        let interest = interest(pass);
        Published {
            snapshot,
            flags,
            interest,
        }
    }

    /// The snapshot's tables after every change since they were last built (only entries
    /// marked changed are built again; see [`Rows`]), with which groups read each topic as of
    /// `now`; clears the marks.
    pub fn tables(&mut self, now: Instant) -> Tables {
        self.model.refresh_index();
        self.model.refresh_topic_groups(now, self.cfg.window);
        let tables = self
            .rows
            .tables(&self.model, &self.model.index, &self.conns, now);
        self.model.changed = Changed::default();
        for c in self.model.clients.values_mut() {
            c.changed = false;
        }
        for c in self.conns.values_mut() {
            c.changed = false;
        }
        tables
    }

    /// A tick with the tables built at once ([`State::detect`], then [`State::tables`]): what
    /// tests, benches and the fuzz target drive. A running proxy builds the tables only when
    /// a reader asks.
    pub fn tick(&mut self, now: Instant) -> Published {
        let mut p = self.detect(now);
        let tables = self.tables(now);
        p.snapshot = p.snapshot.with_tables(tables, now);
        p
    }
}
