//! JSON views for the admin API (`/api/v1/...`), made from the last published [`Snapshot`]
//! when asked for, never from the model itself.

use std::collections::BTreeMap;
use std::time::Instant;

use serde_json::{json, Value};

use super::snapshot::Snapshot;

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

fn secs_since(now: Instant, at: Instant) -> u64 {
    now.saturating_duration_since(at).as_secs()
}

impl Snapshot {
    /// Open connections, most bytes out first.
    pub fn connections_json(&self, now: Instant) -> Value {
        let mut rows: Vec<Value> = self
            .conns
            .iter()
            .map(|(id, c)| {
                json!({
                    "id": id,
                    "client_addr": c.client_addr.to_string(),
                    "client_id": c.client_id.as_deref(),
                    "software": c.software.as_ref().map(|(n, v)| format!("{n} {v}")),
                    "principal": c.principal,
                    "age_s": secs_since(now, c.opened),
                    "idle_s": secs_since(now, c.last_activity),
                    "bytes_in": c.bytes_in,
                    "bytes_out": c.bytes_out,
                    "replica": c.replica,
                    "groups": c.groups.iter().map(|g| &**g).collect::<Vec<_>>(),
                    "requests": c.requests,
                })
            })
            .collect();
        rows.sort_by_key(|r| std::cmp::Reverse(r["bytes_out"].as_u64().unwrap_or(0)));
        json!(rows)
    }

    /// Client keys, sorted.
    pub fn clients_json(&self, sort: ClientSort) -> Value {
        let secs = self.window.as_secs_f64().max(1.0);
        let mut rows: Vec<Value> = self
            .clients
            .iter()
            .map(|c| {
                json!({
                    "client_host": c.host.to_string(),
                    "client_id": &*c.client_id,
                    "software": c.software.as_ref().map(|(n, v)| format!("{n} {v}")),
                    "group": c.group.as_ref().map(|(g, _)| g.to_string()),
                    "group_attribution": c.group.as_ref().map(|(_, how)| how.as_str()),
                    "connections_open": c.open,
                    "connections_opened": c.opened,
                    "connections_closed": c.closed,
                    "opened_per_sec": ((c.opened_in_window as f64 / secs) * 10.0).round() / 10.0,
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

    /// Groups, by name.
    pub fn groups_json(&self, now: Instant) -> Value {
        let rows: Vec<Value> = self
            .groups
            .iter()
            .map(|g| {
                json!({
                    "group": &*g.group,
                    "generation": g.generation,
                    "rebalances": g.rebalances,
                    "rebalances_in_window": g.rebalances_in_window,
                    "members": g.members.iter().map(|(id, m)| json!({
                        "member_id": id,
                        "client_host": m.client.0.to_string(),
                        "client_id": &*m.client.1,
                        "assignment": m.assigned.iter().map(|(t, ps)| json!({"topic": &**t, "partitions": ps})).collect::<Vec<_>>(),
                    })).collect::<Vec<_>>(),
                    "clients": g.clients.iter().map(|(key, how)| json!({
                        "client_host": key.0.to_string(), "client_id": &*key.1, "attribution": how.as_str()
                    })).collect::<Vec<_>>(),
                    "committed": g.committed.iter().map(|(t, p, c)| json!({
                        "topic": &**t, "partition": p, "offset": c.offset,
                        "last_commit_s_ago": secs_since(now, c.at),
                        "last_advance_s_ago": c.advanced.map(|a| secs_since(now, a)),
                        "advance_per_sec": (c.advance_per_sec * 10.0).round() / 10.0,
                    })).collect::<Vec<_>>(),
                })
            })
            .collect();
        json!(rows)
    }

    /// Topics, most bytes out first.
    pub fn topics_json(&self) -> Value {
        let mut rows: Vec<Value> = self
            .topics
            .iter()
            .map(|t| {
                json!({
                    "topic": &*t.topic,
                    "bytes_in": t.produced,
                    "bytes_out": t.consumed,
                    "unique_bytes_out": t.unique_out,
                    "replica_bytes_out": t.replicated,
                    "amplification": if t.unique_out > 0 { ((t.consumed as f64 / t.unique_out as f64) * 10.0).round() / 10.0 } else { 0.0 },
                    "consuming_groups": t.groups.iter().map(|g| &**g).collect::<Vec<_>>(),
                    "partitions": t.end_offsets.iter().zip(&t.delivered).map(|((p, end), (_, fetched))| json!({"partition": p, "log_end_offset": end, "highest_offset_delivered": fetched})).collect::<Vec<_>>(),
                })
            })
            .collect();
        rows.sort_by_key(|r| std::cmp::Reverse(r["bytes_out"].as_u64().unwrap_or(0)));
        json!(rows)
    }

    /// Active and recently cleared findings (most recently cleared first).
    pub fn findings_json(&self, now: Instant) -> Value {
        json!({
            "active": self.active.iter().map(|x| x.to_json(now)).collect::<Vec<_>>(),
            "cleared": self.cleared.iter().rev().map(|x| x.to_json(now)).collect::<Vec<_>>(),
        })
    }

    /// Sizes, evictions and refusals of the observer's maps, and the group lookup's state.
    pub fn health_json(&self, now: Instant) -> Value {
        let h = &self.health;
        json!({
            "connections": h.connections, "clients": h.clients, "groups": h.groups,
            "topics": h.topics, "fetch_tracks": h.fetch_tracks,
            "evicted": h.evicted, "refused_at_cap": h.refused,
            "lookup": h.lookup.map(|(at, groups, rounds, requests, errors)| json!({
                "last_answer_s_ago": secs_since(now, at), "groups_known": groups,
                "rounds": rounds, "requests": requests, "errors": errors,
            })),
        })
    }
}
