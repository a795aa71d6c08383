//! Connections refused by a connection limit, by reason, and by client for the first
//! [`REFUSED_CLIENTS_KEPT`] (reason, host, `client.id`) rows — so the table, the metric's
//! series and `/api/v1/stats` stay small whatever clients do. Rows are never evicted, so every
//! row's count only grows, and so does each reason's remainder (refusals of unnamed clients).

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Mutex;

/// Most (reason, host, `client.id`) rows named; refusals of others are in their reason's total.
pub const REFUSED_CLIENTS_KEPT: usize = 256;

/// Longest `client.id` kept in a row (longer ones are cut at a character boundary).
const CLIENT_ID_KEPT: usize = 256;

/// Why a connection was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Reason {
    /// Its client host had `max_connections_per_host` open.
    PerHostOpen,
    /// Its client host opened more than `guard.new_connections_per_sec_per_host`.
    PerHostRate,
    /// Its client key had `guard.max_connections_per_client` open.
    PerClientOpen,
    /// Its client key opened more than `guard.new_connections_per_sec_per_client`.
    PerClientRate,
}

impl Reason {
    /// Every reason, in the order they are reported.
    pub const ALL: [Reason; 4] = [
        Reason::PerHostOpen,
        Reason::PerHostRate,
        Reason::PerClientOpen,
        Reason::PerClientRate,
    ];

    /// The name used in logs, metrics and the stats.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::PerHostOpen => "per_host_open",
            Reason::PerHostRate => "per_host_rate",
            Reason::PerClientOpen => "per_client_open",
            Reason::PerClientRate => "per_client_rate",
        }
    }

    fn i(self) -> usize {
        self as usize
    }
}

/// One row of refusals: `host` and `client_id` are `None` in a reason's remainder row, and
/// `client_id` is `None` where it was not known (the host limits are checked at accept).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefusalRow {
    /// Why.
    pub reason: Reason,
    /// The client host.
    pub host: Option<IpAddr>,
    /// The client's `client.id` (empty for a null one).
    pub client_id: Option<String>,
    /// Connections refused.
    pub count: u64,
}

type Named = BTreeMap<(Reason, IpAddr, Option<String>), u64>;

/// Refusals by reason and by client.
#[derive(Debug, Default)]
pub struct Refusals {
    by_reason: [AtomicU64; 4],
    named: Mutex<Named>,
    /// Connections a guard let through unchecked because its table of hosts or client keys
    /// was full of live entries.
    pub untracked: AtomicU64,
}

impl Refusals {
    /// Counts a refusal of a connection from `host` (with `client_id` where known).
    pub fn add(&self, reason: Reason, host: IpAddr, client_id: Option<&str>) {
        self.by_reason[reason.i()].fetch_add(1, Relaxed);
        let client_id = client_id.map(|id| cut(id, CLIENT_ID_KEPT).to_owned());
        let mut named = self.lock();
        let key = (reason, host, client_id);
        if let Some(n) = named.get_mut(&key) {
            *n += 1;
        } else if named.len() < REFUSED_CLIENTS_KEPT {
            named.insert(key, 1);
        }
    }

    /// Refusals for `reason` since start.
    pub fn total(&self, reason: Reason) -> u64 {
        self.by_reason[reason.i()].load(Relaxed)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Named> {
        self.named.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The named rows, then for each reason with refusals of unnamed clients, a remainder row.
    pub fn rows(&self) -> Vec<RefusalRow> {
        let named = self.lock();
        let mut rows = Vec::with_capacity(named.len() + Reason::ALL.len());
        let mut named_sum = [0u64; 4];
        for ((reason, host, client_id), n) in named.iter() {
            named_sum[reason.i()] += n;
            rows.push(RefusalRow {
                reason: *reason,
                host: Some(*host),
                client_id: client_id.clone(),
                count: *n,
            });
        }
        for reason in Reason::ALL {
            let rest = self.total(reason).saturating_sub(named_sum[reason.i()]);
            if rest > 0 {
                rows.push(RefusalRow {
                    reason,
                    host: None,
                    client_id: None,
                    count: rest,
                });
            }
        }
        rows
    }

    /// `{"by_reason": {...}, "by_client": [...]}` for `/api/v1/stats`.
    pub fn snapshot(&self) -> serde_json::Value {
        let by_reason: serde_json::Map<_, _> = Reason::ALL
            .iter()
            .map(|r| (r.as_str().to_owned(), self.total(*r).into()))
            .collect();
        let by_client: Vec<_> = self
            .rows()
            .into_iter()
            .filter(|r| r.host.is_some())
            .map(|r| {
                serde_json::json!({
                    "reason": r.reason.as_str(),
                    "client_address": r.host.map(|h| h.to_string()),
                    "client_id": r.client_id,
                    "count": r.count,
                })
            })
            .collect();
        serde_json::json!({
            "by_reason": by_reason,
            "by_client": by_client,
            "untracked": self.untracked.load(Relaxed),
        })
    }
}

/// `s` cut to at most `max` bytes, at a character boundary.
fn cut(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(i: u32) -> IpAddr {
        IpAddr::from(std::net::Ipv4Addr::from(0x0a00_0000u32 + i))
    }

    #[test]
    fn clients_are_named_up_to_the_cap_and_the_rest_is_one_row_per_reason() {
        let r = Refusals::default();
        for i in 0..REFUSED_CLIENTS_KEPT as u32 + 10 {
            r.add(Reason::PerClientRate, ip(i), Some("churner"));
        }
        r.add(Reason::PerClientRate, ip(0), Some("churner"));
        r.add(Reason::PerHostRate, ip(0), None);
        assert_eq!(
            r.total(Reason::PerClientRate),
            REFUSED_CLIENTS_KEPT as u64 + 11
        );
        let rows = r.rows();
        assert_eq!(
            rows.len(),
            REFUSED_CLIENTS_KEPT + 2,
            "named rows, two remainders"
        );
        let first = rows
            .iter()
            .find(|row| row.host == Some(ip(0)) && row.reason == Reason::PerClientRate)
            .unwrap();
        assert_eq!(first.count, 2);
        // The host-rate refusal found no room: it is in its reason's remainder.
        let rest: Vec<_> = rows.iter().filter(|row| row.host.is_none()).collect();
        assert_eq!(rest.len(), 2);
        let sum: u64 = rows.iter().map(|row| row.count).sum();
        assert_eq!(
            sum,
            REFUSED_CLIENTS_KEPT as u64 + 12,
            "every refusal in one row"
        );
        let snap = r.snapshot();
        assert_eq!(snap["by_reason"]["per_client_rate"], 267);
        assert_eq!(snap["by_reason"]["per_host_open"], 0);
        assert_eq!(
            snap["by_client"].as_array().unwrap().len(),
            REFUSED_CLIENTS_KEPT
        );
    }

    #[test]
    fn a_long_client_id_is_kept_cut() {
        let r = Refusals::default();
        let long = "é".repeat(1000);
        r.add(Reason::PerClientOpen, ip(1), Some(&long));
        let id = r.rows()[0].client_id.clone().unwrap();
        assert!(id.len() <= CLIENT_ID_KEPT && long.starts_with(&id));
    }
}
