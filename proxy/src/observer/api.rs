//! JSON views for the admin API (`/api/v1/...`), made from the last published [`Snapshot`]
//! when asked for, never from the model itself.
//!
//! Every list view is bounded whatever the observer holds: a page of at most [`MAX_LIMIT`]
//! rows from `offset` ([`Page`]), cut short once the answer reaches [`MAX_ANSWER_BYTES`], and
//! lists inside a row cut at [`MAX_ROW_ITEMS`] (the row then gives the whole list's length in
//! `<list>_total`). An [`Answer`] says how many rows there are in all and whether it left
//! some out.

use std::collections::BTreeMap;
use std::time::Instant;

use serde_json::{json, Value};

use super::model::Inner;
use super::snapshot::Snapshot;

/// Bytes of JSON beyond which a list view stops adding rows (one row more at most, itself
/// bounded by [`MAX_ROW_ITEMS`]).
pub const MAX_ANSWER_BYTES: usize = 4 << 20;
/// Most rows a list view gives (and the default).
pub const MAX_LIMIT: usize = 1000;
/// Most items of one list inside a row (a group's committed offsets or clients, a client's
/// topics, a topic's partitions).
pub const MAX_ROW_ITEMS: usize = 1000;
/// Most members a group's row lists, and partitions per member's assignment.
pub const MAX_ROW_MEMBERS: usize = 100;

/// Which rows of a list view: `limit` rows from `offset` (in the view's order).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Page {
    /// Rows skipped.
    pub offset: usize,
    /// Most rows given (at most [`MAX_LIMIT`]).
    pub limit: usize,
}

impl Default for Page {
    fn default() -> Self {
        Page {
            offset: 0,
            limit: MAX_LIMIT,
        }
    }
}

impl Page {
    /// From the `offset` and `limit` query parameters (absent: 0 and [`MAX_LIMIT`]; a
    /// `limit` above [`MAX_LIMIT`] gives [`MAX_LIMIT`]).
    pub fn parse(offset: Option<&str>, limit: Option<&str>) -> Result<Page, String> {
        let num = |name: &str, v: Option<&str>, default: usize| match v {
            None => Ok(default),
            Some(v) => v
                .parse::<usize>()
                .map_err(|_| format!("{name} must be a non-negative integer, got {v:?}")),
        };
        Ok(Page {
            offset: num("offset", offset, 0)?,
            limit: num("limit", limit, MAX_LIMIT)?.min(MAX_LIMIT),
        })
    }
}

/// One page of a list view.
#[derive(Debug, Clone)]
pub struct Answer {
    /// The rows, as a JSON array.
    pub body: Vec<u8>,
    /// Rows given.
    pub rows: usize,
    /// Rows in the whole view.
    pub total: usize,
    /// Whether rows after these were left out (by the page or by [`MAX_ANSWER_BYTES`]).
    pub truncated: bool,
}

impl Answer {
    /// The rows of `page` among `total`, made one by one by `row` from the view's `order`,
    /// until the page or [`MAX_ANSWER_BYTES`] is full.
    fn build<T>(page: Page, order: &[T], row: impl Fn(&T) -> Value) -> Answer {
        let total = order.len();
        let mut body = Vec::with_capacity(4096);
        body.push(b'[');
        let mut rows = 0;
        for item in order.iter().skip(page.offset).take(page.limit) {
            if body.len() >= MAX_ANSWER_BYTES {
                break;
            }
            if rows > 0 {
                body.push(b',');
            }
            // Writing a `Value` to a Vec cannot fail.
            let _ = serde_json::to_writer(&mut body, &row(item));
            rows += 1;
        }
        body.push(b']');
        Answer {
            body,
            rows,
            total,
            truncated: page.offset.saturating_add(rows) < total,
        }
    }

    /// The rows as a JSON value.
    pub fn value(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Array(Vec::new()))
    }
}

/// The first [`MAX_ROW_ITEMS`] (or `max`) items of a list inside a row, and
/// `<name>_total` in `row` when that cut it.
fn cut<'a, T: 'a>(
    row: &mut Value,
    name: &str,
    items: impl ExactSizeIterator<Item = T>,
    max: usize,
    each: impl Fn(T) -> Value,
) {
    let total = items.len();
    let list: Vec<Value> = items.take(max).map(each).collect();
    row[name] = Value::Array(list);
    if total > max {
        row[format!("{name}_total")] = total.into();
    }
}

/// A list view of the admin API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum View {
    /// `/api/v1/clients`, sorted.
    Clients(ClientSort),
    /// `/api/v1/groups`.
    Groups,
    /// `/api/v1/topics`.
    Topics,
    /// `/api/v1/connections`.
    Connections,
}

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
    /// A page of `view`.
    pub fn page(&self, view: View, now: Instant, page: Page) -> Answer {
        match view {
            View::Clients(sort) => self.clients_page(sort, page),
            View::Groups => self.groups_page(now, page),
            View::Topics => self.topics_page(page),
            View::Connections => self.connections_page(now, page),
        }
    }

    /// Open connections, most bytes out first.
    pub fn connections_json(&self, now: Instant) -> Value {
        self.connections_page(now, Page::default()).value()
    }

    /// A page of open connections, most bytes out first.
    pub fn connections_page(&self, now: Instant, page: Page) -> Answer {
        let mut order: Vec<(&u64, &super::snapshot::ConnPoint)> =
            self.conns.iter().map(|(id, c)| (id, &**c)).collect();
        order.sort_by_key(|(_, c)| std::cmp::Reverse(c.bytes_out));
        Answer::build(page, &order, |(id, c)| {
            json!({
                "id": id,
                "client_addr": c.client_addr.to_string(),
                "listener": &*c.listener,
                "client_id": c.client_id.as_deref(),
                "software": c.software.as_ref().map(|(n, v)| format!("{n} {v}")),
                "principal": c.principal,
                "sasl_mechanism": c.mechanism.as_deref(),
                "sasl": c.sasl.map(|s| s.as_str()),
                "age_s": secs_since(now, c.opened),
                "idle_s": secs_since(now, c.last_activity),
                "bytes_in": c.bytes_in,
                "bytes_out": c.bytes_out,
                "replica": c.replica,
                "groups": c.groups.iter().map(|g| &**g).collect::<Vec<_>>(),
                "requests": c.requests,
            })
        })
    }

    /// Client keys, sorted.
    pub fn clients_json(&self, sort: ClientSort) -> Value {
        self.clients_page(sort, Page::default()).value()
    }

    /// A page of client keys, sorted.
    pub fn clients_page(&self, sort: ClientSort, page: Page) -> Answer {
        let secs = self.window.as_secs_f64().max(1.0);
        let per_sec = |c: &super::snapshot::ClientPoint| {
            ((c.opened_in_window as f64 / secs) * 10.0).round() / 10.0
        };
        let key = |c: &super::snapshot::ClientPoint| match sort {
            ClientSort::BytesOut => c.fetched.values().sum::<u64>() as f64,
            ClientSort::BytesIn => c.produced.values().sum::<u64>() as f64,
            ClientSort::Connections => c.open as f64,
            ClientSort::Opened => per_sec(c),
        };
        let mut order: Vec<(f64, &super::snapshot::ClientPoint)> =
            self.clients.iter().map(|c| (key(c), &**c)).collect();
        order.sort_by(|a, b| b.0.total_cmp(&a.0));
        Answer::build(page, &order, |(_, c)| {
            let mut row = json!({
                "client_host": c.host.to_string(),
                "client_id": &*c.client_id,
                "software": c.software.as_ref().map(|(n, v)| format!("{n} {v}")),
                "principal": c.principal.as_deref(),
                "sasl": c.sasl_failed.then_some("failed"),
                "sasl_failures": c.sasl_failures,
                "group": c.group.as_ref().map(|(g, _)| g.to_string()),
                "group_attribution": c.group.as_ref().map(|(_, how)| how.as_str()),
                "connections_open": c.open,
                "connections_opened": c.opened,
                "connections_closed": c.closed,
                "opened_per_sec": per_sec(c),
                "bytes_fetched": c.fetched.values().sum::<u64>(),
                "bytes_produced": c.produced.values().sum::<u64>(),
                "fetch_requests": c.fetch_requests,
            });
            for (name, by) in [
                ("fetched_by_topic", &c.fetched),
                ("produced_by_topic", &c.produced),
            ] {
                let map: serde_json::Map<String, Value> = by
                    .iter()
                    .take(MAX_ROW_ITEMS)
                    .map(|(t, b)| (t.to_string(), (*b).into()))
                    .collect();
                row[name] = Value::Object(map);
                if by.len() > MAX_ROW_ITEMS {
                    row[format!("{name}_total")] = by.len().into();
                }
            }
            row
        })
    }

    /// Groups, by name.
    pub fn groups_json(&self, now: Instant) -> Value {
        self.groups_page(now, Page::default()).value()
    }

    /// A page of groups, by name.
    pub fn groups_page(&self, now: Instant, page: Page) -> Answer {
        Answer::build(page, &self.groups, |g| {
            let mut row = json!({
                "group": &*g.group,
                "generation": g.generation,
                "rebalances": g.rebalances,
                "rebalances_in_window": g.rebalances_in_window,
            });
            cut(
                &mut row,
                "members",
                g.members.iter(),
                MAX_ROW_MEMBERS,
                |(id, m)| {
                    let mut member = json!({
                        "member_id": id,
                        "client_host": m.client.0.to_string(),
                        "client_id": &*m.client.1,
                    });
                    let mut shown = 0;
                    let assignment: Vec<Value> = m
                        .assigned
                        .iter()
                        .map_while(|(t, ps)| {
                            let room = MAX_ROW_ITEMS.saturating_sub(shown);
                            (room > 0).then(|| {
                                let ps = &ps[..ps.len().min(room)];
                                shown += ps.len();
                                json!({"topic": &**t, "partitions": ps})
                            })
                        })
                        .collect();
                    member["assignment"] = Value::Array(assignment);
                    let total: usize = m.assigned.iter().map(|(_, ps)| ps.len()).sum();
                    if total > shown {
                        member["assignment_partitions_total"] = total.into();
                    }
                    member
                },
            );
            cut(
                &mut row,
                "clients",
                g.clients.iter(),
                MAX_ROW_ITEMS,
                |(key, how)| {
                    json!({
                        "client_host": key.0.to_string(), "client_id": &*key.1, "attribution": how.as_str()
                    })
                },
            );
            cut(
                &mut row,
                "committed",
                g.committed.iter(),
                MAX_ROW_ITEMS,
                |(t, p, c)| {
                    json!({
                        "topic": &**t, "partition": p, "offset": c.offset,
                        "last_commit_s_ago": secs_since(now, c.at),
                        "last_advance_s_ago": c.advanced.map(|a| secs_since(now, a)),
                        "advance_per_sec": (c.advance_per_sec * 10.0).round() / 10.0,
                    })
                },
            );
            row
        })
    }

    /// Topics, most bytes out first.
    pub fn topics_json(&self) -> Value {
        self.topics_page(Page::default()).value()
    }

    /// A page of topics, most bytes out first.
    pub fn topics_page(&self, page: Page) -> Answer {
        let mut order: Vec<&super::snapshot::TopicPoint> = self.topics.iter().collect();
        order.sort_by_key(|t| std::cmp::Reverse(t.consumed));
        Answer::build(page, &order, |t| {
            let mut row = json!({
                "topic": &*t.topic,
                "bytes_in": t.produced,
                "bytes_out": t.consumed,
                "unique_bytes_out": t.unique_out,
                "replica_bytes_out": t.replicated,
                "amplification": if t.unique_out > 0 { ((t.consumed as f64 / t.unique_out as f64) * 10.0).round() / 10.0 } else { 0.0 },
            });
            cut(
                &mut row,
                "consuming_groups",
                t.groups.iter(),
                MAX_ROW_ITEMS,
                |g| json!(&**g),
            );
            cut(
                &mut row,
                "partitions",
                t.end_offsets.iter().zip(&t.delivered),
                MAX_ROW_ITEMS,
                |((p, end), (_, fetched))| json!({"partition": p, "log_end_offset": end, "highest_offset_delivered": fetched}),
            );
            row
        })
    }
    /// Active and recently cleared findings (most recently cleared first): at most
    /// [`MAX_LIMIT`] active ones, with `active_total` when there are more (the cleared ones
    /// are capped at [`super::findings::MAX_CLEARED`]).
    pub fn findings_json(&self, now: Instant) -> Value {
        let mut v = json!({
            "active": self.active.iter().take(MAX_LIMIT).map(|x| x.to_json(now)).collect::<Vec<_>>(),
            "cleared": self.cleared.iter().rev().map(|x| x.to_json(now)).collect::<Vec<_>>(),
        });
        if self.active.len() > MAX_LIMIT {
            v["active_total"] = self.active.len().into();
        }
        v
    }

    /// Sizes, evictions and refusals of the observer's maps, and the group lookup's state.
    pub fn health_json(&self, now: Instant) -> Value {
        let h = &self.health;
        json!({
            "connections": h.connections, "clients": h.clients, "groups": h.groups,
            "topics": h.topics, "fetch_tracks": h.fetch_tracks,
            "evicted": h.evicted, "refused_at_cap": h.refused,
            "inner_budget": h.inner.budget,
            "inner_held": Inner::ALL.iter().map(|k| (k.as_str(), h.inner.held(*k))).collect::<BTreeMap<_, _>>(),
            "inner_refused": Inner::ALL.iter().map(|k| (k.as_str(), h.inner.refused(*k))).collect::<BTreeMap<_, _>>(),
            "lookup": h.lookup.map(|(at, groups, rounds, requests, errors)| json!({
                "last_answer_s_ago": secs_since(now, at), "groups_known": groups,
                "rounds": rounds, "requests": requests, "errors": errors,
            })),
            "sasl_failures": self.sasl_failures.iter().map(|(m, n)| (&**m, *n)).collect::<BTreeMap<_, _>>(),
        })
    }
}
