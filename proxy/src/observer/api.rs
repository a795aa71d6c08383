//! JSON views of the observer for the admin API (`/api/v1/...`).

use std::collections::BTreeMap;
use std::time::Instant;

use crate::stats::api_name;
use serde_json::{json, Value};

use super::Observer;

/// How `/api/v1/clients` is sorted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientSort {
    /// Record bytes fetched, largest first (the default: who is pulling the bytes?).
    BytesOut,
    /// Record bytes produced.
    BytesIn,
    /// Connections open.
    Connections,
    /// Connections opened within the window.
    Opened,
}

impl ClientSort {
    /// Parses the `sort` query parameter.
    pub fn parse(s: &str) -> Option<ClientSort> {
        match s {
            "bytes_out" => Some(ClientSort::BytesOut),
            "bytes_in" => Some(ClientSort::BytesIn),
            "connections" => Some(ClientSort::Connections),
            "opened" => Some(ClientSort::Opened),
            _ => None,
        }
    }
}

impl Observer {
    /// Open connections.
    pub fn connections_json(&self) -> Value {
        let now = Instant::now();
        let mut rows: Vec<Value> = self
            .conns
            .iter()
            .map(|e| {
                let c = e.value();
                json!({
                    "id": e.key(),
                    "client_addr": c.client_addr.to_string(),
                    "client_id": c.client_id.as_deref(),
                    "software": c.software.as_ref().map(|(n, v)| format!("{n} {v}")),
                    "principal": c.principal,
                    "age_s": now.duration_since(c.opened).as_secs(),
                    "idle_s": now.duration_since(c.last_activity).as_secs(),
                    "bytes_in": c.bytes_in,
                    "bytes_out": c.bytes_out,
                    "replica": c.replica,
                    "groups": c.groups.iter().map(|g| &**g).collect::<Vec<_>>(),
                    "requests": c.api.iter().fold(BTreeMap::new(), |mut by, ((k, _), n)| {
                        *by.entry(api_name(*k)).or_insert(0) += n.requests;
                        by
                    }),
                })
            })
            .collect();
        rows.sort_by_key(|r| std::cmp::Reverse(r["bytes_out"].as_u64().unwrap_or(0)));
        json!(rows)
    }

    /// Client keys, sorted.
    pub fn clients_json(&self, sort: ClientSort) -> Value {
        let secs = self.cfg.window.as_secs_f64().max(1.0);
        let m = self.model();
        let index = m.group_index();
        let mut rows: Vec<Value> = m
            .clients
            .iter()
            .map(|(key, c)| {
                let group = index.group_of(key);
                json!({
                    "client_host": key.0.to_string(),
                    "client_id": &*key.1,
                    "software": c.software.as_ref().map(|(n, v)| format!("{n} {v}")),
                    "group": group.as_ref().map(|(g, _)| g.to_string()),
                    "group_attribution": group.as_ref().map(|(_, how)| how.as_str()),
                    "connections_open": c.open,
                    "connections_opened": c.opened,
                    "connections_closed": c.closed,
                    "opened_per_sec": ((c.recent_opens.len() as f64 / secs) * 10.0).round() / 10.0,
                    "bytes_fetched": c.fetched.values().sum::<u64>(),
                    "bytes_produced": c.produced.values().sum::<u64>(),
                    "fetched_by_topic": c.fetched.iter().map(|(t, b)| (t.to_string(), *b)).collect::<BTreeMap<_, _>>(),
                    "produced_by_topic": c.produced.iter().map(|(t, b)| (t.to_string(), *b)).collect::<BTreeMap<_, _>>(),
                    "fetch_requests": c.fetch_requests,
                })
            })
            .collect();
        let field = match sort {
            ClientSort::BytesOut => "bytes_fetched",
            ClientSort::BytesIn => "bytes_produced",
            ClientSort::Connections => "connections_open",
            ClientSort::Opened => "opened_per_sec",
        };
        rows.sort_by(|a, b| {
            b[field]
                .as_f64()
                .unwrap_or(0.0)
                .total_cmp(&a[field].as_f64().unwrap_or(0.0))
        });
        json!(rows)
    }

    /// Groups.
    pub fn groups_json(&self) -> Value {
        let now = Instant::now();
        let m = self.model();
        let mut rows: Vec<Value> = m
            .groups
            .iter()
            .map(|(name, g)| {
                json!({
                    "group": &**name,
                    "generation": g.generation,
                    "rebalances": g.rebalances,
                    "rebalances_in_window": g.joins.len(),
                    "members": g.members.iter().map(|(id, (key, parts))| json!({
                        "member_id": id,
                        "client_host": key.0.to_string(),
                        "client_id": &*key.1,
                        "assignment": parts.iter().map(|(t, ps)| json!({"topic": &**t, "partitions": ps})).collect::<Vec<_>>(),
                    })).collect::<Vec<_>>(),
                    "clients": g.clients.iter().map(|(key, how)| json!({
                        "client_host": key.0.to_string(), "client_id": &*key.1, "attribution": how.as_str()
                    })).collect::<Vec<_>>(),
                    "committed": g.committed.iter().map(|((t, p), c)| json!({
                        "topic": &**t, "partition": p, "offset": c.offset,
                        "last_commit_s_ago": now.duration_since(c.at).as_secs(),
                        "last_advance_s_ago": c.advanced.map(|a| now.duration_since(a).as_secs()),
                        "advance_per_sec": (c.advance_per_sec * 10.0).round() / 10.0,
                    })).collect::<Vec<_>>(),
                })
            })
            .collect();
        rows.sort_by(|a, b| a["group"].as_str().cmp(&b["group"].as_str()));
        json!(rows)
    }

    /// Topics.
    pub fn topics_json(&self) -> Value {
        let m = self.model();
        let mut rows: Vec<Value> = m
            .topics
            .iter()
            .map(|(name, t)| {
                json!({
                    "topic": &**name,
                    "bytes_in": t.bytes_in,
                    "bytes_out": t.bytes_out,
                    "unique_bytes_out": t.unique_out,
                    "replica_bytes_out": t.replica_out,
                    "amplification": if t.unique_out > 0 { ((t.bytes_out as f64 / t.unique_out as f64) * 10.0).round() / 10.0 } else { 0.0 },
                    "consuming_groups": t.groups.iter().map(|g| &**g).collect::<Vec<_>>(),
                    "partitions": t.partitions.iter().map(|(p, (end, fetched))| json!({"partition": p, "log_end_offset": end, "highest_offset_delivered": fetched})).collect::<Vec<_>>(),
                })
            })
            .collect();
        rows.sort_by_key(|r| std::cmp::Reverse(r["bytes_out"].as_u64().unwrap_or(0)));
        json!(rows)
    }

    /// Active and recently cleared findings.
    pub fn findings_json(&self) -> Value {
        let now = Instant::now();
        let f = self.registry();
        json!({
            "active": f.active().map(|x| x.to_json(now)).collect::<Vec<_>>(),
            "cleared": f.cleared().rev().map(|x| x.to_json(now)).collect::<Vec<_>>(),
        })
    }

    /// Observer health: sizes, evictions.
    pub fn health_json(&self) -> Value {
        let conns = self.conns.len();
        let m = self.model();
        json!({
            "connections": conns, "clients": m.clients.len(), "groups": m.groups.len(),
            "topics": m.topics.len(), "fetch_tracks": m.fetches.len(),
            "evicted": m.evicted, "refused_at_cap": m.refused,
        })
    }
}
