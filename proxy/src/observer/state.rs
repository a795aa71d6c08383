//! The observer's state, owned by one task: connections, the model, the findings. Events are
//! applied here in the order each connection handed them over; once per tick the detectors run
//! and a [`Snapshot`] is made for every reader.

use std::time::Instant;

use sluice_protocol::TapEvent;

use super::apply::Apply;
use super::config::DetectConfig;
use super::detect;
use super::findings::Registry;
use super::model::{Conn, Expiry, FastMap, Model};
use super::snapshot::{Flags, Snapshot};
use crate::sink::ConnMeta;

/// What the observer's task owns.
#[derive(Debug)]
pub struct State {
    cfg: DetectConfig,
    conns: FastMap<u64, Conn>,
    model: Model,
    findings: Registry,
}

impl State {
    /// Empty, with these thresholds and bounds.
    pub fn new(cfg: DetectConfig) -> State {
        State {
            cfg,
            conns: FastMap::default(),
            model: Model::default(),
            findings: Registry::default(),
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
        self.conns
            .entry(conn.id)
            .or_insert_with(|| Conn::new(conn.client_addr, at));
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
            .or_insert_with(|| Conn::new(conn.client_addr, first.1));
        for (event, at) in events {
            Apply {
                conn: c,
                model: &mut self.model,
                cfg: &self.cfg,
                now: *at,
            }
            .event(event);
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
            cl.api.entry(*k).or_default().add(n);
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

    /// Expires old samples, runs the detectors, and makes the snapshot readers see next, with
    /// the client keys under an active finding.
    pub fn tick(&mut self, now: Instant) -> (Snapshot, Flags) {
        self.model.expire(
            now,
            Expiry {
                window: self.cfg.window,
                rebalance_window: self.cfg.rebalance_window,
                idle: self.cfg.idle_eviction,
                member: self.cfg.member_expiry,
            },
        );
        let index = self.model.group_index();
        self.model
            .refresh_topic_groups(&index, now, self.cfg.window);
        detect::run(&self.model, &index, &self.cfg, now, &mut self.findings);
        self.findings.sweep(now, self.cfg.clear_after);
        let snapshot = Snapshot::build(
            now,
            &self.cfg,
            &self.conns,
            &self.model,
            &index,
            &self.findings,
        );
        let flags = Flags::from_findings(&self.model, self.findings.active());
        (snapshot, flags)
    }
}
