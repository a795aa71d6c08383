//! Bytes a Sluice sent to each client, per second, measured from its tap events (every
//! response frame, its size and when it was forwarded) — apart from anything the throttle
//! itself counts.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use sluice_protocol::TapEvent;

use crate::events::EventLog;

/// One response forwarded to a client: when, its size, its API key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sent {
    /// When the tap saw it.
    pub at: Instant,
    /// Frame size, length prefix included.
    pub bytes: u64,
    /// API key of the request it answers.
    pub api_key: i16,
}

/// Responses per `client.id`, read incrementally from an [`EventLog`].
#[derive(Debug, Default)]
pub struct Meter {
    cursor: usize,
    client_of: HashMap<u64, String>,
    sent: HashMap<String, Vec<Sent>>,
}

impl Meter {
    /// A meter that reads `events` from now on.
    pub fn new(events: &EventLog) -> Meter {
        Meter {
            cursor: events.len(),
            ..Meter::default()
        }
    }

    /// Reads the events recorded since the last call.
    pub fn update(&mut self, events: &EventLog) {
        let (client_of, sent) = (&mut self.client_of, &mut self.sent);
        self.cursor = events.scan_from(self.cursor, |c, e, at| match e {
            TapEvent::Request(r) => {
                if let Some(id) = &r.client_id {
                    if client_of.get(&c.id).map(String::as_str) != Some(&**id) {
                        client_of.insert(c.id, id.to_string());
                    }
                }
            }
            TapEvent::Response(r) => {
                if let Some(id) = client_of.get(&c.id) {
                    sent.entry(id.clone()).or_default().push(Sent {
                        at,
                        bytes: r.size,
                        api_key: r.api_key,
                    });
                }
            }
            _ => {}
        });
    }

    /// Every response sent to `client_id` so far (as of the last [`Meter::update`]).
    pub fn sent(&self, client_id: &str) -> &[Sent] {
        self.sent.get(client_id).map(Vec::as_slice).unwrap_or(&[])
    }

    /// The last time a response went to `client_id`.
    pub fn last(&self, client_id: &str) -> Option<Instant> {
        self.sent(client_id).last().map(|s| s.at)
    }

    /// Bytes per second sent to `client_id` in responses in `(from, from + len]`.
    pub fn rate(&self, client_id: &str, from: Instant, len: Duration) -> f64 {
        let to = from + len;
        let bytes: u64 = self
            .sent(client_id)
            .iter()
            .filter(|s| s.at > from && s.at <= to)
            .map(|s| s.bytes)
            .sum();
        bytes as f64 / len.as_secs_f64()
    }

    /// Reads events until the window `(from, from + len]` is over (its end is past), then
    /// gives the rate to each of `clients` in it; panics after `deadline`.
    pub fn measure(
        &mut self,
        events: &EventLog,
        clients: &[&str],
        from: Instant,
        len: Duration,
    ) -> Vec<f64> {
        let end = from + len;
        crate::net::wait_until(
            "a measuring window to end",
            len + Duration::from_secs(60),
            || Instant::now() >= end,
        );
        self.update(events);
        clients.iter().map(|c| self.rate(c, from, len)).collect()
    }

    /// Waits (up to `deadline`) until a response went to each of `clients` after `since`.
    pub fn wait_sending(
        &mut self,
        events: &EventLog,
        clients: &[&str],
        since: Instant,
        deadline: Duration,
    ) {
        crate::net::wait_until(&format!("responses to {clients:?}"), deadline, || {
            self.update(events);
            clients
                .iter()
                .all(|c| self.last(c).is_some_and(|t| t > since))
        });
    }

    /// Fetch (API key 1) throughput to `client_id`: the bytes of its Fetch responses larger
    /// than `min_bytes` (those that carried records), from the first such response to the
    /// last, in bytes per second; `None` with fewer than two.
    pub fn fetch_throughput(&self, client_id: &str, min_bytes: u64) -> Option<f64> {
        let data: Vec<&Sent> = self
            .sent(client_id)
            .iter()
            .filter(|s| s.api_key == 1 && s.bytes > min_bytes)
            .collect();
        let (first, last) = (data.first()?, data.last()?);
        let secs = last.at.duration_since(first.at).as_secs_f64();
        if data.len() < 2 || secs <= 0.0 {
            return None;
        }
        // The first response's bytes arrived at its start: count those after it.
        let bytes: u64 = data[1..].iter().map(|s| s.bytes).sum();
        Some(bytes as f64 / secs)
    }
}
