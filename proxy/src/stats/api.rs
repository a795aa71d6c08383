//! Requests, responses, sizes and latency per API key and version: a fixed-size, lock-free table
//! ([`ApiTable`]), and the names of API keys.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use kafka_protocol::messages::ApiKey;

/// The name of an API key: `Fetch`, `OffsetCommit`, … or `ApiKey<n>` for numbers this build
/// does not know; `Unknown` for negative or very large ones. Made once per key.
pub fn api_name(key: i16) -> &'static str {
    static NAMES: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();
    let names = NAMES.get_or_init(|| {
        (0..KEYS as i16)
            .map(|k| {
                ApiKey::try_from(k)
                    .map(|a| format!("{a:?}"))
                    .unwrap_or_else(|_| format!("ApiKey{k}"))
            })
            .collect()
    });
    usize::try_from(key)
        .ok()
        .and_then(|k| names.get(k))
        .map_or("Unknown", String::as_str)
}

/// API keys below this get their own row in [`ApiTable`]; above, they share the last one.
const KEYS: usize = 128;
/// Versions below this get their own column.
const VERSIONS: usize = 32;

/// Counters of one API key and version.
#[derive(Debug, Default)]
pub struct ApiCell {
    /// Request frames.
    pub requests: AtomicU64,
    /// Response frames.
    pub responses: AtomicU64,
    /// Request bytes (frames, including length).
    pub request_bytes: AtomicU64,
    /// Response bytes.
    pub response_bytes: AtomicU64,
    /// Sum of request → response latencies in microseconds.
    pub latency_us: AtomicU64,
    /// Frames that could not be followed or decoded.
    pub parse_errors: AtomicU64,
}

/// Counters per API key and version: fixed-size and lock-free (about 0.2 MB).
#[derive(Debug)]
pub struct ApiTable {
    cells: Box<[ApiCell]>,
}

impl Default for ApiTable {
    fn default() -> Self {
        ApiTable {
            cells: (0..KEYS * VERSIONS + 1)
                .map(|_| ApiCell::default())
                .collect(),
        }
    }
}

impl ApiTable {
    /// The cell of `api_key`/`api_version` (an overflow cell for unusual numbers).
    pub fn cell(&self, api_key: i16, api_version: i16) -> &ApiCell {
        let (k, v) = (api_key as usize, api_version as usize);
        if api_key >= 0 && api_version >= 0 && k < KEYS && v < VERSIONS {
            &self.cells[k * VERSIONS + v]
        } else {
            &self.cells[KEYS * VERSIONS]
        }
    }

    /// Every cell with its API key and version (`-1, -1` for the overflow cell).
    pub fn rows(&self) -> impl Iterator<Item = (i16, i16, &ApiCell)> {
        self.cells.iter().enumerate().map(|(i, c)| {
            if i == KEYS * VERSIONS {
                (-1, -1, c)
            } else {
                ((i / VERSIONS) as i16, (i % VERSIONS) as i16, c)
            }
        })
    }

    /// Non-empty rows as JSON, for the admin API.
    pub fn snapshot(&self) -> Vec<serde_json::Value> {
        let mut rows = Vec::new();
        for (key, version, c) in self.rows() {
            let requests = c.requests.load(Relaxed);
            let responses = c.responses.load(Relaxed);
            if requests == 0 && responses == 0 && c.parse_errors.load(Relaxed) == 0 {
                continue;
            }
            let latency = c.latency_us.load(Relaxed);
            rows.push(serde_json::json!({
                "api_key": key,
                "api_version": version,
                "api": api_name(key),
                "requests": requests,
                "responses": responses,
                "request_bytes": c.request_bytes.load(Relaxed),
                "response_bytes": c.response_bytes.load(Relaxed),
                "avg_latency_ms": if responses > 0 { latency as f64 / responses as f64 / 1000.0 } else { 0.0 },
                "parse_errors": c.parse_errors.load(Relaxed),
            }));
        }
        rows
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_names_are_kafka_names() {
        assert_eq!(api_name(1), "Fetch");
        assert_eq!(api_name(8), "OffsetCommit");
        assert_eq!(api_name(68), "ConsumerGroupHeartbeat");
        assert_eq!(api_name(127), "ApiKey127");
        assert_eq!(api_name(-3), "Unknown");
    }

    #[test]
    fn rows_name_every_cell_once() {
        let t = ApiTable::default();
        t.cell(1, 17).parse_errors.fetch_add(2, Relaxed);
        t.cell(-4, 0).parse_errors.fetch_add(3, Relaxed);
        let hit: Vec<_> = t
            .rows()
            .filter(|(_, _, c)| c.parse_errors.load(Relaxed) > 0)
            .map(|(k, v, c)| (k, v, c.parse_errors.load(Relaxed)))
            .collect();
        assert_eq!(hit, [(1, 17, 2), (-1, -1, 3)]);
        assert_eq!(t.rows().count(), KEYS * VERSIONS + 1);
    }
}
