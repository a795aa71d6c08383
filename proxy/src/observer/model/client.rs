//! Client keys (client host + `client.id`): connections, bytes, software, requests per API.

use std::collections::{BTreeMap, VecDeque};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A client: its host and its `client.id` ("" when it sends none).
pub type ClientKey = (IpAddr, Arc<str>);

/// API keys below this are counted under their own (key, version); see [`api_slot`].
pub const API_KEYS: i16 = 128;
/// Versions below this are counted under their own (key, version).
pub const API_VERSIONS: i16 = 32;

/// Where requests of `api_key`/`api_version` are counted: their own slot, or `(-1, -1)` for
/// numbers no Kafka uses (a client sends them; counting each would let it grow the map).
pub fn api_slot(api_key: i16, api_version: i16) -> (i16, i16) {
    if (0..API_KEYS).contains(&api_key) && (0..API_VERSIONS).contains(&api_version) {
        (api_key, api_version)
    } else {
        (-1, -1)
    }
}

/// (API key, version) slots one connection or client key counts under their own; further
/// ones share `(-1, -1)`. A client uses a few dozen.
pub const MAX_API_SLOTS: usize = 64;

/// The count of `slot` in `counts` (a slot new beyond [`MAX_API_SLOTS`] shares `(-1, -1)`).
pub fn api_entry(counts: &mut ApiCounts, slot: (i16, i16)) -> &mut ApiCount {
    let slot = if counts.len() >= MAX_API_SLOTS && !counts.contains_key(&slot) {
        (-1, -1)
    } else {
        slot
    };
    counts.entry(slot).or_default()
}

/// Requests and bytes of one API key and version.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ApiCount {
    /// Request frames.
    pub requests: u64,
    /// Request bytes (client → broker).
    pub bytes_in: u64,
    /// Response bytes (broker → client).
    pub bytes_out: u64,
}

impl ApiCount {
    /// Adds `other` to this count.
    pub fn add(&mut self, other: &ApiCount) {
        self.requests += other.requests;
        self.bytes_in += other.bytes_in;
        self.bytes_out += other.bytes_out;
    }
}

/// Counts per (API key, version), bounded by [`api_slot`].
pub type ApiCounts = BTreeMap<(i16, i16), ApiCount>;

/// A client key's totals.
#[derive(Debug, Clone)]
pub struct Client {
    /// Connections open now.
    pub open: u64,
    /// Connections opened in all.
    pub opened: u64,
    /// Connections closed in all.
    pub closed: u64,
    /// Open times within the window.
    pub recent_opens: VecDeque<Instant>,
    /// `(closed at, lifetime)` within the window.
    pub recent_closes: VecDeque<(Instant, Duration)>,
    /// Client software.
    pub software: Option<(String, String)>,
    /// Bytes fetched per topic (consumer fetches).
    pub fetched: BTreeMap<Arc<str>, u64>,
    /// Bytes produced per topic.
    pub produced: BTreeMap<Arc<str>, u64>,
    /// Fetch requests.
    pub fetch_requests: u64,
    /// Requests and bytes by API key and version, of its closed connections (open ones
    /// keep their own counts until they close).
    pub api: ApiCounts,
    /// The principal its connections last authenticated as (SASL or TLS).
    pub principal: Option<Arc<str>>,
    /// SASL authentications the broker refused.
    pub sasl_failures: u64,
    /// Its last SASL verdict was a refusal.
    pub sasl_failed: bool,
    /// Last activity.
    pub last_seen: Instant,
    /// Changed since the last snapshot (see [`crate::observer::rows`]).
    pub changed: bool,
}

impl Client {
    /// A client first seen at `now`.
    pub fn new(now: Instant) -> Client {
        Client {
            open: 0,
            opened: 0,
            closed: 0,
            recent_opens: VecDeque::new(),
            recent_closes: VecDeque::new(),
            software: None,
            fetched: BTreeMap::new(),
            produced: BTreeMap::new(),
            fetch_requests: 0,
            api: ApiCounts::new(),
            principal: None,
            sasl_failures: 0,
            sasl_failed: false,
            last_seen: now,
            changed: true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unusual_api_numbers_share_one_slot() {
        assert_eq!(api_slot(1, 17), (1, 17));
        assert_eq!(api_slot(127, 31), (127, 31));
        for (k, v) in [(-1, 0), (0, -5), (128, 0), (3, 32), (i16::MAX, i16::MIN)] {
            assert_eq!(api_slot(k, v), (-1, -1), "{k} {v}");
        }
    }
}
