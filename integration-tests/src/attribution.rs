//! How much of what consumers fetched through one Sluice it attributes to their right group:
//! the figure for blind sidecars (a sidecar that sees a group's fetches but not its
//! coordinator traffic must still name the group), read from `clients_json`.

use serde_json::Value;
use sluice::observer::api::ClientSort;

use crate::sidecar::Sidecar;

/// One consumer's fetching as one Sluice attributes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientAttribution {
    /// Its `client.id`.
    pub client_id: String,
    /// The group it belongs to.
    pub expected: String,
    /// The group Sluice names for it (`None`: none).
    pub seen: Option<String>,
    /// Record bytes it fetched through this Sluice.
    pub fetched: u64,
}

/// The fetched record bytes of some consumers on one Sluice, and how much of it Sluice
/// attributes to the right group.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Attribution {
    /// Record bytes the consumers fetched through this Sluice.
    pub fetched: u64,
    /// Of them, bytes of clients Sluice names the right group for.
    pub attributed: u64,
    /// Every consumer that fetched here.
    pub clients: Vec<ClientAttribution>,
}

impl Attribution {
    /// Attributed ÷ fetched (1 when nothing was fetched here).
    pub fn share(&self) -> f64 {
        if self.fetched == 0 {
            1.0
        } else {
            self.attributed as f64 / self.fetched as f64
        }
    }

    /// The consumers fetching here that Sluice does not name the right group for.
    pub fn wrong(&self) -> Vec<&ClientAttribution> {
        self.clients
            .iter()
            .filter(|c| c.seen.as_deref() != Some(c.expected.as_str()))
            .collect()
    }
}

/// The attribution on `sidecar` of the consumers `(client.id, group)` running on this host
/// (127.0.0.1), each `client.id` in one group.
pub fn attribution(sidecar: &Sidecar, consumers: &[(&str, &str)]) -> Attribution {
    let rows = sidecar.observer.clients_json(ClientSort::BytesOut);
    let mut out = Attribution::default();
    for row in rows.as_array().into_iter().flatten() {
        let Some(&(id, group)) = consumers
            .iter()
            .find(|(id, _)| row["client_id"] == *id && row["client_host"] == "127.0.0.1")
        else {
            continue;
        };
        let fetched = row["bytes_fetched"].as_u64().unwrap_or(0);
        if fetched == 0 {
            continue;
        }
        let seen = row["group"].as_str().map(str::to_owned);
        out.fetched += fetched;
        if seen.as_deref() == Some(group) {
            out.attributed += fetched;
        }
        out.clients.push(ClientAttribution {
            client_id: id.to_owned(),
            expected: group.to_owned(),
            seen,
            fetched,
        });
    }
    out
}

/// The `clients_json` row of `client_id` on this host, if Sluice knows it.
pub fn client_row(sidecar: &Sidecar, client_id: &str) -> Option<Value> {
    sidecar
        .observer
        .clients_json(ClientSort::BytesOut)
        .as_array()
        .into_iter()
        .flatten()
        .find(|r| r["client_id"] == client_id && r["client_host"] == "127.0.0.1")
        .cloned()
}
