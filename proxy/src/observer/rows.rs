//! The snapshot's client and connection rows, kept from one tick to the next: a row is built
//! again only when its entry changed since the tick before — its `changed` mark, set where
//! the apply path touches the entry — and otherwise the previous snapshot's row is shared
//! (`Arc`). A client key's row also follows its open connections' counts and the group it is
//! shown under. At 10,000 client keys, building and dropping every row was most of a tick.
//!
//! The tables are built when a reader asks ([`super::Observer::fresh_snapshot`]), not at
//! every tick: the marks add up until then. What spans read of each connection — its labels —
//! is kept every tick ([`Rows::labels`]), from the same marks.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use super::model::{ApiCounts, Attribution, ClientKey, Conn, FastMap, FastSet, GroupIndex, Model};
use super::snapshot::{self, ClientPoint, ConnLabels, ConnPoint, ConnTable, LabelTable, Tables};
use crate::stats::api_name;

/// The rows of the last snapshot, by entry, and its tables. Owned by the observer's state.
#[derive(Debug, Default)]
pub struct Rows {
    /// The tables as last built (each shared until one of its entries changes), and when
    /// (`None`: never).
    tables: Tables,
    built_at: Option<Instant>,
    clients: FastMap<ClientKey, Arc<ClientPoint>>,
    conns: BTreeMap<u64, Arc<ConnPoint>>,
    /// Open connections' labels (looked up for every connection marked changed, each tick),
    /// and the table last published of them.
    labels: FastMap<u64, ConnLabels>,
    label_table: LabelTable,
}

/// Whether `l` still says what connection `c` does.
fn labels_hold(l: &ConnLabels, c: &Conn) -> bool {
    l.client_id == c.client_id
        && l.group.as_ref() == c.groups.first()
        && l.principal.as_deref() == c.principal.as_deref()
}

/// The one group the fetch tracks of each of `keys` are attributed to (`None`: several).
fn fetching_for<'m>(
    m: &'m Model,
    keys: &FastSet<&ClientKey>,
) -> FastMap<&'m ClientKey, Option<(Arc<str>, Attribution)>> {
    let mut by: FastMap<&ClientKey, Option<(Arc<str>, Attribution)>> = FastMap::default();
    for ((key, _, _), t) in &m.fetches {
        let Some(found) = &t.group else {
            continue;
        };
        if !keys.contains(key) {
            continue;
        }
        by.entry(key)
            .and_modify(|e| {
                if e.as_ref().is_some_and(|(g, _)| *g != found.0) {
                    *e = None;
                }
            })
            .or_insert_with(|| Some(found.clone()));
    }
    by
}

impl Rows {
    /// Every table after this tick's changes. A client key's row is built again when its
    /// entry is marked changed: by the apply path (its counts, or one of its open
    /// connections'), by expiry (opens leaving the window), or when the group it is shown
    /// under may have moved (tied to or untied from a group, a fetch track's group changed
    /// or went); a connection's row when the apply path marked it (or it is new). Fetch
    /// tracks and positions, groups and committed offsets, and topics are each built again
    /// only when the model marks their map changed. The caller then clears the marks. `now`
    /// is when.
    pub fn tables(
        &mut self,
        m: &Model,
        index: &GroupIndex,
        conns: &FastMap<u64, Conn>,
        now: Instant,
    ) -> Tables {
        let tables = self.tables_of(m, index, conns, false);
        self.built_at = Some(now);
        tables
    }

    /// The tables as last built (shared; empty before the first build), and when.
    pub fn kept(&self) -> (Tables, Option<Instant>) {
        (self.tables.clone(), self.built_at)
    }

    /// Every open connection's labels after this tick's changes: those of the connections in
    /// `marked` (opened or given events since the last tick) are looked at again, closed ones
    /// dropped. The table is published again only when one moved.
    pub fn labels(&mut self, conns: &FastMap<u64, Conn>, marked: &[u64]) -> LabelTable {
        let mut any = false;
        for (id, c) in marked.iter().filter_map(|id| Some((id, conns.get(id)?))) {
            if self.labels.get(id).is_some_and(|l| labels_hold(l, c)) {
                continue;
            }
            any = true;
            let l = ConnLabels {
                client_id: c.client_id.clone(),
                group: c.groups.first().cloned(),
                principal: c.principal.as_deref().map(Arc::from),
            };
            self.labels.insert(*id, l);
        }
        // A connection new since the last tick is marked changed: more labels than
        // connections means some closed.
        if self.labels.len() > conns.len() {
            self.labels.retain(|id, _| conns.contains_key(id));
            any = true;
        }
        if any {
            let mut table: Vec<_> = self.labels.iter().map(|(id, l)| (*id, l.clone())).collect();
            table.sort_unstable_by_key(|(id, _)| *id);
            self.label_table = Arc::new(table);
        }
        self.label_table.clone()
    }

    /// Every table built anew, marks or not (what the kept ones are checked against).
    pub fn afresh(m: &Model, index: &GroupIndex, conns: &FastMap<u64, Conn>) -> Tables {
        Rows::default().tables_of(m, index, conns, true)
    }

    fn tables_of(
        &mut self,
        m: &Model,
        index: &GroupIndex,
        conns: &FastMap<u64, Conn>,
        everything: bool,
    ) -> Tables {
        let all = everything || self.built_at.is_none();
        let t = &mut self.tables;
        if all || m.changed.tracks {
            let fetches = snapshot::fetch_points(m);
            t.positions = Arc::new(snapshot::positions(&fetches));
            t.fetches = Arc::new(fetches);
        }
        if all || m.changed.groups {
            t.groups = Arc::new(snapshot::group_points(m));
            t.committed = Arc::new(snapshot::committed_points(m));
        }
        if all || m.changed.topics {
            t.topics = Arc::new(snapshot::topic_points(m));
        }
        self.client_rows(m, index, conns, everything);
        self.conns_of(conns, everything);
        self.tables.clone()
    }

    fn client_rows(
        &mut self,
        m: &Model,
        index: &GroupIndex,
        conns: &FastMap<u64, Conn>,
        everything: bool,
    ) {
        let changed: FastSet<&ClientKey> = m
            .clients
            .iter()
            .filter(|(_, c)| everything || c.changed)
            .map(|(k, _)| k)
            .collect();
        let mut any = !changed.is_empty();
        if any {
            // Open connections keep their own counts until they close.
            let mut live: FastMap<&ClientKey, ApiCounts> = FastMap::default();
            for c in conns.values() {
                if let Some(key) = c.counted_as.as_ref().filter(|k| changed.contains(k)) {
                    let into = live.entry(key).or_default();
                    for (k, n) in &c.api {
                        into.entry(*k).or_default().add(n);
                    }
                }
            }
            let groups = fetching_for(m, &changed);
            for (key, c) in m.clients.iter().filter(|(_, c)| everything || c.changed) {
                let api = match live.remove(key) {
                    None => c.api.clone(),
                    Some(mut api) => {
                        for (k, n) in &c.api {
                            api.entry(*k).or_default().add(n);
                        }
                        api
                    }
                };
                let row = ClientPoint {
                    host: key.0,
                    client_id: key.1.clone(),
                    open: c.open,
                    opened: c.opened,
                    closed: c.closed,
                    software: c.software.clone(),
                    api,
                    group: index
                        .group_of(key)
                        .or_else(|| groups.get(key).cloned().flatten()),
                    opened_in_window: c.recent_opens.len(),
                    fetched: c.fetched.clone(),
                    produced: c.produced.clone(),
                    fetch_requests: c.fetch_requests,
                    principal: c.principal.clone(),
                    sasl_failures: c.sasl_failures,
                    sasl_failed: c.sasl_failed,
                };
                self.clients.insert(key.clone(), Arc::new(row));
            }
        }
        // Every row is of a key held now or at the tick before: more rows than keys means
        // some were evicted.
        if self.clients.len() > m.clients.len() {
            self.clients.retain(|k, _| m.clients.contains_key(k));
            any = true;
        }
        if any {
            self.tables.clients = Arc::new(self.clients.values().cloned().collect());
        }
    }

    /// Every open connection's row after this tick's changes (all of them: `everything`).
    /// A connection new since the last tick is marked changed.
    fn conns_of(&mut self, conns: &FastMap<u64, Conn>, everything: bool) {
        let mut any = false;
        for (id, c) in conns {
            if !(everything || c.changed) {
                continue;
            }
            any = true;
            self.conns.insert(*id, Arc::new(conn_point(c)));
        }
        // Every row is of a connection open now or at the tick before: more rows than
        // connections means some closed.
        if self.conns.len() > conns.len() {
            self.conns.retain(|id, _| conns.contains_key(id));
            any = true;
        }
        if any {
            self.tables.conns = Arc::new(ConnTable::new(self.conns.iter()));
        }
    }
}

fn conn_point(c: &Conn) -> ConnPoint {
    let requests = c.api.iter().fold(BTreeMap::new(), |mut by, ((k, _), n)| {
        *by.entry(api_name(*k)).or_insert(0) += n.requests;
        by
    });
    ConnPoint {
        client_addr: c.client_addr,
        listener: c.listener.clone(),
        client_id: c.client_id.clone(),
        software: c.software.clone(),
        principal: c.principal.clone(),
        mechanism: c.mechanism.clone(),
        sasl: c.sasl,
        opened: c.opened,
        last_activity: c.last_activity,
        bytes_in: c.bytes_in,
        bytes_out: c.bytes_out,
        replica: c.replica,
        groups: c.groups.iter().cloned().collect(),
        requests,
    }
}
