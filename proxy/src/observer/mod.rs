//! The observer: a live, bounded picture of every connection, client, group, topic and
//! partition behind this proxy, built from the tap's events, and the detectors that turn it
//! into findings.
//!
//! Per-frame events (every request and response) only touch the connection's own entry in a
//! `DashMap`; the rarer events (fetches, commits, group traffic) update the aggregated model
//! behind one lock. Once a second, [`Observer::tick`] expires old samples and runs the
//! detectors.
//!
//! # Layout
//! - [`model`]: the state and how events change it; caps and eviction.
//! - [`detect`]: the detectors.
//! - [`findings`]: findings and their lifecycle (active → cleared).
//! - [`config`]: thresholds and windows.
//! - [`api`]: JSON views for the admin API.
//! - [`export`]: the copy telemetry exports as metrics, and which connections are flagged.

pub mod api;
pub mod config;
pub mod detect;
pub mod export;
pub mod findings;
pub mod model;
#[cfg(test)]
pub(crate) mod tests;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use dashmap::DashMap;
use sluice_protocol::TapEvent;

use crate::sink::{ConnMeta, TapSink};
use config::DetectConfig;
use findings::Registry;
use model::{topic_name, Attribution, Conn, Model};

/// How often the detectors run.
pub const TICK: Duration = Duration::from_secs(1);

/// The observer. Register it as a [`TapSink`]; call [`Observer::tick`] once per [`TICK`].
#[derive(Debug)]
pub struct Observer {
    cfg: DetectConfig,
    conns: DashMap<u64, Conn, foldhash::fast::RandomState>,
    model: Mutex<Model>,
    findings: Mutex<Registry>,
    /// Host → `client.id`s under an active finding ("" flags the whole host).
    flagged: std::sync::RwLock<
        std::collections::HashMap<std::net::IpAddr, std::collections::HashSet<Arc<str>>>,
    >,
    any_flagged: std::sync::atomic::AtomicBool,
}

impl Observer {
    /// An observer with these thresholds.
    pub fn new(cfg: DetectConfig) -> Arc<Observer> {
        Arc::new(Observer {
            cfg,
            conns: DashMap::with_hasher(Default::default()),
            model: Mutex::new(Model::default()),
            findings: Mutex::new(Registry::default()),
            flagged: std::sync::RwLock::default(),
            any_flagged: std::sync::atomic::AtomicBool::new(false),
        })
    }

    /// The thresholds in use.
    pub fn config(&self) -> &DetectConfig {
        &self.cfg
    }

    fn model(&self) -> std::sync::MutexGuard<'_, Model> {
        self.model.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn registry(&self) -> std::sync::MutexGuard<'_, Registry> {
        self.findings.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Expires old samples and runs the detectors.
    pub fn tick(&self, now: Instant) {
        let mut m = self.model();
        m.expire(
            now,
            self.cfg.window,
            self.cfg.rebalance_window,
            self.cfg.idle_eviction,
        );
        let index = m.group_index();
        m.refresh_topic_groups(&index, now, self.cfg.window);
        let mut f = self.registry();
        detect::run(&m, &index, &self.cfg, now, &mut f);
        f.sweep(now, self.cfg.clear_after);
        let active: Vec<_> = f.active().collect();
        self.refresh_flagged(&m, &active);
    }

    /// Runs [`Observer::tick`] every [`TICK`] until `stop` completes.
    pub async fn run_ticks(self: Arc<Self>, stop: impl std::future::Future<Output = ()>) {
        crate::every::every(TICK, stop, |now| self.tick(now)).await
    }

    fn count_open(&self, conn: &Conn, now: Instant) {
        let key = conn.key();
        let cap = self.cfg.max_clients;
        let mut m = self.model();
        if let Some(c) = m.client(&key, now, cap) {
            c.open += 1;
            c.opened += 1;
            c.recent_opens.push_back(now);
        }
        if let Some(g) = model::java_default_group(&key.1) {
            m.attribute(
                &key,
                g,
                Attribution::ClientIdPattern,
                now,
                self.cfg.max_groups,
            );
        }
    }

    fn apply(&self, conn: &mut Conn, event: &TapEvent, now: Instant) {
        let key = conn.key();
        let (cap_c, cap_g, cap_p) = (
            self.cfg.max_clients,
            self.cfg.max_groups,
            self.cfg.max_partitions,
        );
        match event {
            TapEvent::ClientSoftware(s) => {
                conn.software = Some((s.name.clone(), s.version.clone()));
                if let Some(c) = self.model().client(&key, now, cap_c) {
                    c.software = conn.software.clone();
                }
            }
            TapEvent::Sasl(sluice_protocol::event::SaslInfo::Principal(p)) => {
                conn.principal = Some(p.clone());
            }
            TapEvent::FetchRequest(f) if f.replica => conn.replica = true,
            TapEvent::FetchRequest(f) => {
                let mut m = self.model();
                if let Some(c) = m.client(&key, now, cap_c) {
                    c.fetch_requests += 1;
                }
                for p in &f.partitions {
                    m.on_fetch_offset(
                        &key,
                        conn.client_addr,
                        (topic_name(&p.topic), p.partition),
                        p.fetch_offset,
                        now,
                        cap_p,
                    );
                }
            }
            TapEvent::FetchPartition(p) => {
                let topic = topic_name(&p.topic);
                let mut m = self.model();
                if conn.replica {
                    if let Some(t) = m.topic(topic, now, cap_p) {
                        t.replica_out += p.records_bytes;
                    }
                    return;
                }
                let (bytes, again) =
                    m.on_delivered(&key, conn.client_addr, (topic.clone(), p), now, cap_p);
                if let Some(c) = m.client(&key, now, cap_c) {
                    *c.fetched.entry(topic.clone()).or_default() += bytes;
                }
                if let Some(t) = m.topic(topic, now, cap_p) {
                    t.bytes_out += bytes;
                    t.unique_out += bytes - again;
                    let e = t.partitions.entry(p.partition).or_default();
                    e.0 = e.0.max(p.high_watermark);
                    if let Some(last) = p.last_offset {
                        e.1 = e.1.max(last);
                    }
                }
            }
            TapEvent::ProducePartition(p) => {
                let topic = topic_name(&p.topic);
                let mut m = self.model();
                if let Some(c) = m.client(&key, now, cap_c) {
                    *c.produced.entry(topic.clone()).or_default() += p.records_bytes;
                }
                if let Some(t) = m.topic(topic, now, cap_p) {
                    t.bytes_in += p.records_bytes;
                }
            }
            TapEvent::JoinGroup {
                group_id,
                member_id,
                ..
            } => {
                conn.groups.insert(group_id.as_str().into());
                conn.pending_group = Some((group_id.as_str().into(), member_id.clone()));
                let mut m = self.model();
                m.attribute(&key, group_id, Attribution::Coordinator, now, cap_g);
                m.group(group_id, now, cap_g);
            }
            TapEvent::JoinGroupResponse {
                generation_id,
                member_id,
                error_code: 0,
                ..
            } => {
                if let Some((group, _)) = conn.pending_group.clone() {
                    conn.pending_group = Some((group.clone(), member_id.clone()));
                    if let Some(g) = self.model().group(&group, now, cap_g) {
                        // Every member learns the new generation: count it once.
                        if *generation_id > g.generation {
                            g.joins.push_back(now);
                            g.rebalances += 1;
                        }
                        g.generation = g.generation.max(*generation_id);
                        g.members
                            .entry(member_id.clone())
                            .or_insert((key.clone(), Vec::new()));
                    }
                }
            }
            TapEvent::SyncGroup {
                group_id,
                generation_id,
                member_id,
            } => {
                conn.groups.insert(group_id.as_str().into());
                conn.pending_group = Some((group_id.as_str().into(), member_id.clone()));
                let mut m = self.model();
                m.attribute(&key, group_id, Attribution::Coordinator, now, cap_g);
                if let Some(g) = m.group(group_id, now, cap_g) {
                    g.generation = g.generation.max(*generation_id);
                }
            }
            TapEvent::ConsumerGroupHeartbeatResponse {
                member_epoch,
                assignment,
                error_code: 0,
                ..
            } => {
                // KIP-848: a member epoch above the group's last known one is a new
                // generation of the assignment.
                if let Some((group, member)) = conn.pending_group.clone() {
                    if let Some(g) = self.model().group(&group, now, cap_g) {
                        if *member_epoch > g.generation {
                            g.joins.push_back(now);
                            g.rebalances += 1;
                            g.generation = *member_epoch;
                        }
                        if let Some(a) = assignment {
                            let parts = a
                                .iter()
                                .map(|(t, ps)| (topic_name(t), ps.clone()))
                                .collect();
                            g.members.insert(member, (key.clone(), parts));
                        }
                    }
                }
            }
            TapEvent::SyncGroupResponse {
                assignment: Some(a),
                error_code: 0,
            } => {
                if let Some((group, member)) = conn.pending_group.clone() {
                    let parts = a
                        .iter()
                        .map(|(t, ps)| (topic_name(t), ps.clone()))
                        .collect();
                    if let Some(g) = self.model().group(&group, now, cap_g) {
                        g.members.insert(member, (key.clone(), parts));
                    }
                }
            }
            TapEvent::Heartbeat { group_id, .. } => {
                self.model()
                    .attribute(&key, group_id, Attribution::Coordinator, now, cap_g);
            }
            TapEvent::LeaveGroup {
                group_id,
                member_ids,
            } => {
                if let Some(g) = self.model().group(group_id, now, cap_g) {
                    for m in member_ids {
                        g.members.remove(m);
                    }
                }
            }
            TapEvent::ConsumerGroupHeartbeat {
                group_id,
                member_id,
                member_epoch,
                ..
            } => {
                conn.groups.insert(group_id.as_str().into());
                conn.pending_group = Some((group_id.as_str().into(), member_id.clone()));
                let mut m = self.model();
                m.attribute(&key, group_id, Attribution::Coordinator, now, cap_g);
                if let Some(g) = m.group(group_id, now, cap_g) {
                    if *member_epoch < 0 {
                        g.members.remove(member_id);
                    }
                }
            }
            TapEvent::OffsetCommit {
                group_id, offsets, ..
            }
            | TapEvent::TxnOffsetCommit {
                group_id, offsets, ..
            } => {
                conn.groups.insert(group_id.as_str().into());
                let mut m = self.model();
                m.attribute(&key, group_id, Attribution::Coordinator, now, cap_g);
                if let Some(g) = m.group(group_id, now, cap_g) {
                    for o in offsets {
                        let k = (topic_name(&o.topic), o.partition);
                        match g.committed.get_mut(&k) {
                            Some(c) => {
                                if o.offset > c.offset {
                                    let since = c.advanced.unwrap_or(c.at);
                                    let dt = now.duration_since(since).as_secs_f64().max(0.001);
                                    c.advance_per_sec = (o.offset - c.offset) as f64 / dt;
                                    c.advanced = Some(now);
                                }
                                c.offset = o.offset;
                                c.at = now;
                            }
                            None => {
                                g.committed.insert(
                                    k,
                                    model::Committed {
                                        offset: o.offset,
                                        at: now,
                                        advanced: None,
                                        advance_per_sec: 0.0,
                                    },
                                );
                            }
                        }
                    }
                }
            }
            _ => {}
        }
    }
}

impl TapSink for Observer {
    fn on_open(&self, conn: &ConnMeta) {
        self.conns
            .insert(conn.id, Conn::new(conn.client_addr, Instant::now()));
    }

    fn on_close(&self, conn: &ConnMeta) {
        let Some((_, c)) = self.conns.remove(&conn.id) else {
            return;
        };
        let now = Instant::now();
        let key = c.key();
        let mut m = self.model();
        let counted = !c.api.is_empty();
        if let Some(cl) = m.client(&key, now, self.cfg.max_clients) {
            for (k, n) in &c.api {
                cl.api.entry(*k).or_default().add(n);
            }
            if counted {
                cl.open = cl.open.saturating_sub(1);
            } else {
                cl.opened += 1;
                cl.recent_opens.push_back(c.opened);
            }
            cl.closed += 1;
            cl.recent_closes
                .push_back((now, now.duration_since(c.opened)));
        }
    }

    fn on_event(&self, conn: &ConnMeta, event: &TapEvent) {
        self.on_event_at(conn, event, Instant::now());
    }

    fn on_event_at(&self, conn: &ConnMeta, event: &TapEvent, now: Instant) {
        if let Some(mut c) = self.conns.get_mut(&conn.id) {
            self.on_conn_event(&mut c, event, now);
        }
    }

    fn on_events(&self, conn: &ConnMeta, events: &[(TapEvent, Instant)]) {
        // One lookup of the connection for the whole batch.
        if let Some(mut c) = self.conns.get_mut(&conn.id) {
            for (event, at) in events {
                self.on_conn_event(&mut c, event, *at);
            }
        }
    }
}

impl Observer {
    /// One event of a connection whose entry is locked.
    fn on_conn_event(&self, c: &mut Conn, event: &TapEvent, now: Instant) {
        match event {
            TapEvent::Request(r) => {
                let first = c.api.is_empty();
                if let Some(id) = &r.client_id {
                    if c.client_id.as_ref() != Some(id) {
                        c.client_id = Some(id.clone());
                    }
                }
                let n = c.api.entry((r.api_key, r.api_version)).or_default();
                n.requests += 1;
                n.bytes_in += r.size;
                c.bytes_in += r.size;
                c.last_activity = now;
                if first {
                    self.count_open(c, now);
                }
            }
            TapEvent::Response(r) => {
                c.api
                    .entry((r.api_key, r.api_version))
                    .or_default()
                    .bytes_out += r.size;
                c.bytes_out += r.size;
                c.last_activity = now;
            }
            TapEvent::ParseError(_) | TapEvent::Opaque { .. } => {}
            // Lock order: a connection's entry, then the model — never the other way round.
            other => self.apply(c, other, now),
        }
    }
}
