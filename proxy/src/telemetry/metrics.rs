//! The instruments. Everything the observer knows is read at collection time (observable
//! instruments over one [`Snapshot`] per collection), so the forwarding path pays nothing for
//! metrics except the request-latency histogram: [`LatencySink`] keeps each response's latency
//! in a short list, recorded into the histogram in one go when the list is full and before
//! every collection. Both readers — the OTLP exporter and `/metrics` — collect the same
//! instruments.

use std::any::Any;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use opentelemetry::metrics::Meter;
use opentelemetry::KeyValue;

use super::cap::SeriesCap;
pub use super::latency::{LatencySink, LATENCY_BATCH};
use super::names::*;
use super::throttle_metrics::ThrottleView;
use crate::observer::snapshot::Snapshot;
use crate::observer::Observer;
use crate::stats::ProxyStats;
use crate::throttle::Throttle;

/// Request latency buckets, in seconds (Kafka long polls reach the fetch max wait).
pub const LATENCY_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// A snapshot younger than this is reused by the next instrument's callback (one collection
/// runs every callback in a row).
const SNAPSHOT_REUSE: Duration = Duration::from_millis(250);

/// What the callbacks read.
#[derive(Debug)]
pub struct Source {
    observer: Arc<Observer>,
    pub(super) stats: Arc<ProxyStats>,
    cache: Mutex<Option<(Instant, Arc<Snapshot>)>>,
    /// Spans dropped because the export queue was full.
    pub spans_dropped: Arc<AtomicU64>,
    caps: Mutex<Vec<Arc<SeriesCap>>>,
    max_series: usize,
    /// Recorded into its histogram before each collection reads it.
    latency: OnceLock<Arc<LatencySink>>,
    /// The throttle policies and what they hold back.
    pub(super) throttle: ThrottleView,
}

impl Source {
    /// A source over this observer, these counters and this throttle.
    pub fn new(
        observer: Arc<Observer>,
        stats: Arc<ProxyStats>,
        throttle: Arc<Throttle>,
        max_series: usize,
    ) -> Source {
        Source {
            throttle: ThrottleView::new(throttle),
            observer,
            stats,
            cache: Mutex::new(None),
            spans_dropped: Arc::new(AtomicU64::new(0)),
            caps: Mutex::new(Vec::new()),
            max_series,
            latency: OnceLock::new(),
        }
    }

    fn snapshot(&self) -> Arc<Snapshot> {
        // Every collection runs the callbacks first, then reads the instruments.
        if let Some(l) = self.latency.get() {
            l.flush();
        }
        let mut c = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((at, s)) = &*c {
            if at.elapsed() < SNAPSHOT_REUSE {
                return s.clone();
            }
        }
        // Fresh tables (built by the observer's thread when asked): collections run on the
        // exporter's thread or off the async workers, so waiting for them is allowed.
        let s = self.observer.fresh_snapshot();
        *c = Some((Instant::now(), s.clone()));
        s
    }

    fn cap(&self, name: &'static str, monotonic: bool) -> Arc<SeriesCap> {
        let cap = Arc::new(SeriesCap::new(name, self.max_series, monotonic));
        self.caps
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(cap.clone());
        cap
    }
}

type Points = Vec<(Vec<KeyValue>, f64)>;

pub(super) fn kafka() -> KeyValue {
    KeyValue::new(SYSTEM, "kafka")
}

fn client_attrs(host: &std::net::IpAddr, id: &str) -> [KeyValue; 3] {
    [
        kafka(),
        KeyValue::new(CLIENT_ID, id.to_owned()),
        KeyValue::new(PEER_ADDRESS, host.to_string()),
    ]
}

/// The instrument handles to keep alive.
pub(super) type Keep = Vec<Box<dyn Any + Send + Sync>>;

/// How an observable reports.
#[derive(Debug, Clone, Copy)]
pub(super) enum Shape {
    Counter,
    /// A counter of fractions (seconds).
    FloatCounter,
    UpDown,
    Gauge,
}

/// Registers one capped observable instrument.
pub(super) fn observable(
    meter: &Meter,
    src: &Arc<Source>,
    keep: &mut Keep,
    (name, unit, help): (&'static str, &'static str, &'static str),
    shape: Shape,
    points: fn(&Source, &Snapshot) -> Points,
) {
    let cap = src.cap(name, matches!(shape, Shape::Counter | Shape::FloatCounter));
    let src = src.clone();
    let read = move |emit: &mut dyn FnMut(f64, &[KeyValue])| {
        let snap = src.snapshot();
        cap.collect(points(&src, &snap), |v, a| emit(v, a));
    };
    match shape {
        Shape::Counter => keep.push(Box::new(
            meter
                .u64_observable_counter(name)
                .with_unit(unit)
                .with_description(help)
                .with_callback(move |o| read(&mut |v, a| o.observe(v as u64, a)))
                .build(),
        )),
        Shape::FloatCounter => keep.push(Box::new(
            meter
                .f64_observable_counter(name)
                .with_unit(unit)
                .with_description(help)
                .with_callback(move |o| read(&mut |v, a| o.observe(v, a)))
                .build(),
        )),
        Shape::UpDown => keep.push(Box::new(
            meter
                .i64_observable_up_down_counter(name)
                .with_unit(unit)
                .with_description(help)
                .with_callback(move |o| read(&mut |v, a| o.observe(v as i64, a)))
                .build(),
        )),
        Shape::Gauge => keep.push(Box::new(
            meter
                .i64_observable_gauge(name)
                .with_unit(unit)
                .with_description(help)
                .with_callback(move |o| read(&mut |v, a| o.observe(v as i64, a)))
                .build(),
        )),
    }
}

/// Every instrument Sluice exports. Returns the handles to keep alive and the sink recording
/// the latency histogram.
pub fn register(
    meter: &Meter,
    src: &Arc<Source>,
) -> (Vec<Box<dyn Any + Send + Sync>>, Arc<LatencySink>) {
    let mut keep: Vec<Box<dyn Any + Send + Sync>> = Vec::new();
    let k = &mut keep;
    use Shape::*;
    observable(
        meter,
        src,
        k,
        (
            "sluice.client.requests",
            "{request}",
            "Requests by client (host and client.id), API and version",
        ),
        Counter,
        |_, s| {
            let mut out = Points::new();
            for c in s.clients.iter() {
                for ((key, ver), n) in c.api.iter().filter(|(_, n)| n.requests > 0) {
                    let mut a = client_attrs(&c.host, &c.client_id).to_vec();
                    a.push(KeyValue::new(API_NAME, api_name(*key)));
                    a.push(KeyValue::new(API_VERSION, i64::from(*ver)));
                    out.push((a, n.requests as f64));
                }
            }
            out
        },
    );
    observable(meter, src, k, ("sluice.client.bytes", "By",
        "Kafka frame bytes by client and API; receive = requests from the client, transmit = responses to it"),
        Counter, |_, s| {
        let mut out = Points::new();
        for c in s.clients.iter() {
            let mut by_api: std::collections::BTreeMap<i16, (u64, u64)> = Default::default();
            for ((key, _), n) in &c.api {
                let e = by_api.entry(*key).or_default();
                e.0 += n.bytes_in;
                e.1 += n.bytes_out;
            }
            for (key, (rx, tx)) in by_api {
                for (dir, v) in [("receive", rx), ("transmit", tx)] {
                    let mut a = client_attrs(&c.host, &c.client_id).to_vec();
                    a.push(KeyValue::new(API_NAME, api_name(key)));
                    a.push(KeyValue::new(DIRECTION, dir));
                    out.push((a, v as f64));
                }
            }
        }
        out
    });
    observable(meter, src, k, ("sluice.topic.bytes", "By",
        "Record bytes by topic: produce (into the broker), consume (to consumers), replicate (to followers)"),
        Counter, |_, s| {
        let mut out = Points::new();
        for t in s.topics.iter() {
            for (flow, v) in [("produce", t.produced), ("consume", t.consumed), ("replicate", t.replicated)] {
                out.push((vec![kafka(), KeyValue::new(TOPIC, t.topic.to_string()), KeyValue::new(FLOW, flow)], v as f64));
            }
        }
        out
    });
    observable(
        meter,
        src,
        k,
        (
            "sluice.connections.open",
            "{connection}",
            "Connections open now, by client",
        ),
        UpDown,
        |_, s| {
            s.clients
                .iter()
                .map(|c| (client_attrs(&c.host, &c.client_id).to_vec(), c.open as f64))
                .collect()
        },
    );
    observable(
        meter,
        src,
        k,
        (
            "sluice.connections.opened",
            "{connection}",
            "Connections opened, by client",
        ),
        Counter,
        |_, s| {
            s.clients
                .iter()
                .map(|c| {
                    (
                        client_attrs(&c.host, &c.client_id).to_vec(),
                        c.opened as f64,
                    )
                })
                .collect()
        },
    );
    observable(
        meter,
        src,
        k,
        (
            "sluice.connections.closed",
            "{connection}",
            "Connections closed, by client",
        ),
        Counter,
        |_, s| {
            s.clients
                .iter()
                .map(|c| {
                    (
                        client_attrs(&c.host, &c.client_id).to_vec(),
                        c.closed as f64,
                    )
                })
                .collect()
        },
    );
    observable(
        meter,
        src,
        k,
        (
            "sluice.client.info",
            // No unit: the collector's Prometheus translation appends `_ratio` to a gauge of
            // unit "1", so remote-written it would be `sluice_client_info_ratio` while
            // /metrics says `sluice_client_info`, and the dashboard's join would miss it.
            "",
            "Always 1: the software (KIP-511) and authenticated principal of a client",
        ),
        Gauge,
        |_, s| {
            s.clients
                .iter()
                .filter(|c| c.software.is_some() || c.principal.is_some())
                .map(|c| {
                    let mut a = client_attrs(&c.host, &c.client_id).to_vec();
                    if let Some((name, version)) = &c.software {
                        a.push(KeyValue::new(SOFTWARE_NAME, name.clone()));
                        a.push(KeyValue::new(SOFTWARE_VERSION, version.clone()));
                    }
                    if let Some(p) = &c.principal {
                        a.push(KeyValue::new(ENDUSER_ID, p.to_string()));
                    }
                    (a, 1.0)
                })
                .collect()
        },
    );
    observable(
        meter,
        src,
        k,
        (
            "sluice.consumer.fetched",
            "By",
            "Record bytes delivered to consumers, by group, topic, partition and client",
        ),
        Counter,
        |_, s| fetch_points(s, false),
    );
    observable(
        meter,
        src,
        k,
        (
            "sluice.consumer.redelivered",
            "By",
            "Of the fetched bytes, those the same client had been sent before (re-delivery)",
        ),
        Counter,
        |_, s| fetch_points(s, true),
    );
    observable(
        meter,
        src,
        k,
        (
            "sluice.consumer.fetch.position",
            "{offset}",
            "Highest offset a group's consumers fetch from, per partition",
        ),
        Gauge,
        |_, s| group_partition_points(&s.positions),
    );
    observable(
        meter,
        src,
        k,
        (
            "sluice.consumer.committed.offset",
            "{offset}",
            "Offset a group last committed, per partition",
        ),
        Gauge,
        |_, s| group_partition_points(&s.committed),
    );
    observable(
        meter,
        src,
        k,
        (
            "sluice.partition.end.offset",
            "{offset}",
            "Log end offset (high watermark) the broker reported in Fetch responses",
        ),
        Gauge,
        |_, s| {
            let mut out = Points::new();
            for t in s.topics.iter() {
                for (p, end) in &t.end_offsets {
                    out.push((
                        vec![
                            kafka(),
                            KeyValue::new(TOPIC, t.topic.to_string()),
                            KeyValue::new(PARTITION, p.to_string()),
                        ],
                        *end as f64,
                    ));
                }
            }
            out
        },
    );
    observable(
        meter,
        src,
        k,
        (
            "sluice.findings.active",
            "{finding}",
            "Always 1 per active finding, with its evidence as attributes",
        ),
        Gauge,
        |_, s| {
            s.findings
                .iter()
                .map(|f| {
                    (
                        vec![
                            kafka(),
                            KeyValue::new(FINDING_KIND, f.kind),
                            KeyValue::new(FINDING_SEVERITY, f.severity),
                            KeyValue::new(GROUP, f.group.clone()),
                            KeyValue::new(TOPIC, f.topic.clone()),
                            KeyValue::new(PARTITION, f.partition.clone()),
                            KeyValue::new(CLIENT_ID, f.client_id.clone()),
                            KeyValue::new(PEER_ADDRESS, f.host.clone()),
                            KeyValue::new(ENDUSER_ID, f.principal.clone()),
                        ],
                        1.0,
                    )
                })
                .collect()
        },
    );
    observable(
        meter,
        src,
        k,
        (
            "sluice.findings.raised",
            "{finding}",
            "Findings raised, by kind",
        ),
        Counter,
        |_, s| {
            s.raised
                .iter()
                .map(|(kind, n)| (vec![kafka(), KeyValue::new(FINDING_KIND, *kind)], *n as f64))
                .collect()
        },
    );
    observable(
        meter,
        src,
        k,
        (
            "sluice.sasl.failures",
            "{authentication}",
            "SASL authentications the broker refused, by mechanism",
        ),
        Counter,
        |_, s| {
            s.sasl_failures
                .iter()
                .map(|(m, n)| {
                    let a = vec![kafka(), KeyValue::new(SASL_MECHANISM, m.to_string())];
                    (a, *n as f64)
                })
                .collect()
        },
    );
    super::pipe_metrics::register(meter, src, k);
    super::throttle_metrics::register(meter, src, k);
    // Counted without a cap of its own: one series per instrument.
    let health = src.clone();
    keep.push(Box::new(
        meter
            .u64_observable_counter("sluice.telemetry.series_overflow")
            .with_unit("{series}")
            .with_description("Distinct series folded into an instrument's overflow series")
            .with_callback(move |o| {
                for cap in health.caps.lock().unwrap_or_else(|e| e.into_inner()).iter() {
                    o.observe(
                        cap.refused.load(Relaxed),
                        &[KeyValue::new(INSTRUMENT, cap.name())],
                    );
                }
            })
            .build(),
    ));
    let latency = meter
        .f64_histogram("sluice.request.duration")
        .with_unit("s")
        .with_description("From a request's last byte to its response's first byte, by API")
        .with_boundaries(LATENCY_BUCKETS.to_vec())
        .build();
    let sink = Arc::new(LatencySink::new(latency));
    let _ = src.latency.set(sink.clone());
    (keep, sink)
}

fn fetch_points(s: &Snapshot, redelivered: bool) -> Points {
    s.fetches
        .iter()
        .map(|f| {
            let mut a = client_attrs(&f.host, &f.client_id).to_vec();
            a.push(KeyValue::new(
                GROUP,
                f.group.as_deref().unwrap_or_default().to_owned(),
            ));
            a.push(KeyValue::new(TOPIC, f.topic.to_string()));
            a.push(KeyValue::new(PARTITION, f.partition.to_string()));
            let v = if redelivered { f.redelivered } else { f.bytes };
            (a, v as f64)
        })
        .collect()
}

fn group_partition_points(points: &[crate::observer::snapshot::GroupPartitionPoint]) -> Points {
    points
        .iter()
        .map(|p| {
            (
                vec![
                    kafka(),
                    KeyValue::new(GROUP, p.group.to_string()),
                    KeyValue::new(TOPIC, p.topic.to_string()),
                    KeyValue::new(PARTITION, p.partition.to_string()),
                ],
                p.offset as f64,
            )
        })
        .collect()
}
