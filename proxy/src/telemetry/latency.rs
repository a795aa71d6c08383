//! The request-latency histogram's sink: the one instrument fed from the forwarding path, in
//! batches.

use std::sync::Mutex;
use std::time::Instant;

use opentelemetry::metrics::Histogram;
use opentelemetry::KeyValue;
use sluice_protocol::TapEvent;

use super::metrics::kafka;
use super::names::*;
use crate::sink::{ConnMeta, TapSink};

/// Latencies kept before they are recorded together.
pub const LATENCY_BATCH: usize = 256;

/// Records each response's latency in the `sluice.request.duration` histogram.
///
/// Not one by one: a histogram record (attribute lookup, locks, buckets) is a long path, and
/// on the forwarding path it runs with cold caches after every response. The sink appends
/// `(API, seconds)` to a short list instead, and records the list in one go when it holds
/// [`LATENCY_BATCH`] values or when a collection starts ([`super::metrics::Source`] calls
/// [`LatencySink::flush`]), so every collection sees every response before it.
#[derive(Debug)]
pub struct LatencySink {
    histogram: Histogram<f64>,
    /// Attribute sets per API key, made once.
    attrs: Vec<[KeyValue; 2]>,
    /// Latencies not yet recorded: index into `attrs`, seconds.
    pending: Mutex<Vec<(u8, f64)>>,
}

impl LatencySink {
    /// A sink recording into `histogram`.
    pub fn new(histogram: Histogram<f64>) -> LatencySink {
        LatencySink {
            histogram,
            attrs: (-1..128i16)
                .map(|k| [kafka(), KeyValue::new(API_NAME, api_name(k))])
                .collect(),
            pending: Mutex::new(Vec::with_capacity(LATENCY_BATCH)),
        }
    }

    /// Records every latency kept so far.
    pub fn flush(&self) {
        let batch = {
            let mut p = self.pending.lock().unwrap_or_else(|e| e.into_inner());
            std::mem::replace(&mut *p, Vec::with_capacity(LATENCY_BATCH))
        };
        self.record(&batch);
    }

    fn record(&self, batch: &[(u8, f64)]) {
        for &(i, secs) in batch {
            self.histogram.record(secs, &self.attrs[usize::from(i)]);
        }
    }

    /// Keeps the latencies of `responses`; records the list once it is full.
    fn keep<'a>(&self, responses: impl Iterator<Item = &'a TapEvent>) {
        let full = {
            let mut p = self.pending.lock().unwrap_or_else(|e| e.into_inner());
            for event in responses {
                if let TapEvent::Response(r) = event {
                    // -1 (unknown) .. 127 → 0 .. 128
                    let i = (r.api_key.clamp(-1, 127) + 1) as u8;
                    p.push((i, r.latency.as_secs_f64()));
                }
            }
            (p.len() >= LATENCY_BATCH)
                .then(|| std::mem::replace(&mut *p, Vec::with_capacity(LATENCY_BATCH)))
        };
        if let Some(batch) = full {
            self.record(&batch);
        }
    }
}

impl TapSink for LatencySink {
    fn on_event(&self, _conn: &ConnMeta, event: &TapEvent) {
        if matches!(event, TapEvent::Response(_)) {
            self.keep(std::iter::once(event));
        }
    }

    fn on_events(&self, _conn: &ConnMeta, events: &[(TapEvent, Instant)]) {
        self.keep(events.iter().map(|(e, _)| e));
    }
}
