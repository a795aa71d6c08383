//! Spans: one per request/response pair that is kept — a share of them (`span_sample_ratio`),
//! and always errors, slow requests and connections under an active finding. Findings become
//! spans of their own with `finding.raised` / `finding.cleared` events.
//!
//! The forwarding path only decides and enqueues: a kept pair becomes a small record in a
//! bounded queue (`try_send`; a full queue drops and counts). One exporter thread turns records
//! into OpenTelemetry spans, looks up the connection's `client.id` and group, and hands them to
//! the SDK's batch processor.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TryRecvError, TrySendError};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use dashmap::DashMap;
use opentelemetry::trace::{Span, SpanKind, Status, Tracer};
use opentelemetry::KeyValue;
use opentelemetry_sdk::trace::SdkTracer;
use sluice_protocol::event::{ResponseSeen, TopicRef};
use sluice_protocol::TapEvent;

use super::names::*;
use crate::observer::findings::Finding;
use crate::observer::model::topic_name;
use crate::observer::snapshot::ConnLabels;
use crate::observer::Observer;
use crate::sink::{ConnMeta, TapSink};

/// A response whose body may still bring an error code or a topic.
#[derive(Debug, Clone)]
struct Pending {
    client_addr: SocketAddr,
    resp: ResponseSeen,
    at: Instant,
    keep: Option<&'static str>,
    error: i16,
    topic: Option<Arc<str>>,
}

/// A kept request/response pair on its way to the exporter thread.
#[derive(Debug)]
pub struct SpanRecord {
    conn: u64,
    pending: Pending,
    /// The connection's `client.id` and group, taken while it is still open.
    labels: Option<ConnLabels>,
}

/// When and why spans are kept.
#[derive(Debug, Clone, Copy)]
pub struct SpanPolicy {
    /// Share of pairs kept at random.
    pub ratio: f64,
    /// A pair slower than this is kept.
    pub slow: Duration,
    /// Pairs kept per second for each connection under a finding (0: all).
    pub finding_per_sec: u32,
}

/// The tap sink that decides which pairs become spans.
#[derive(Debug)]
pub struct SpanSink {
    policy: SpanPolicy,
    threshold: u64,
    observer: Arc<Observer>,
    pending: Arc<DashMap<u64, Pending>>,
    /// Pending entries that will be kept (body events only look them up when some are).
    kept_pending: Arc<AtomicUsize>,
    queue: SyncSender<SpanRecord>,
    dropped: Arc<AtomicU64>,
    /// Per flagged connection: the second it is counting, and pairs kept in it.
    finding_budget: DashMap<u64, (Instant, u32)>,
    /// Per open connection: its `client.id` and the first group its coordinator traffic
    /// named, from its own events. The observer's snapshot is a tick late: a connection that
    /// lives less than a tick (a consumer that joins, fetches, commits and leaves within a
    /// second) would have its spans unlabelled.
    labels: DashMap<u64, ConnLabels>,
}

/// A stateless 64-bit mix (SplitMix64), for a sampling decision that needs no RNG state.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

impl SpanSink {
    /// A sink and the exporter's end of its queue.
    pub fn new(
        policy: SpanPolicy,
        queue_len: usize,
        observer: Arc<Observer>,
        dropped: Arc<AtomicU64>,
    ) -> (Arc<SpanSink>, Receiver<SpanRecord>) {
        let (tx, rx) = sync_channel(queue_len);
        let threshold = if policy.ratio >= 1.0 {
            u64::MAX
        } else {
            (policy.ratio * u64::MAX as f64) as u64
        };
        let sink = Arc::new(SpanSink {
            policy,
            threshold,
            observer,
            pending: Arc::new(DashMap::new()),
            kept_pending: Arc::new(AtomicUsize::new(0)),
            queue: tx,
            dropped,
            finding_budget: DashMap::new(),
            labels: DashMap::new(),
        });
        (sink, rx)
    }

    fn decide(&self, conn: &ConnMeta, r: &ResponseSeen) -> Option<&'static str> {
        if r.latency >= self.policy.slow {
            return Some("slow");
        }
        if self.observer.has_flagged() {
            if let Some(labels) = self.observer.conn_labels(conn.id) {
                let id = labels.client_id.as_deref().unwrap_or_default();
                if self.observer.is_flagged(conn.client_addr.ip(), id)
                    && self.finding_allows(conn.id)
                {
                    return Some("finding");
                }
            }
        }
        let h = mix(conn.id.rotate_left(32) ^ r.correlation_id as u32 as u64);
        (self.threshold > 0 && h <= self.threshold).then_some("ratio")
    }

    /// Whether a flagged connection's budget for this second has room for one more pair.
    fn finding_allows(&self, conn: u64) -> bool {
        let limit = self.policy.finding_per_sec;
        if limit == 0 {
            return true;
        }
        let now = Instant::now();
        let mut e = self.finding_budget.entry(conn).or_insert((now, 0));
        if now.duration_since(e.0) >= Duration::from_secs(1) {
            *e = (now, 0);
        }
        e.1 += 1;
        e.1 <= limit
    }

    /// Sends a finished pair to the exporter if it is kept or failed.
    fn finish(&self, conn: u64, p: Pending) {
        if p.keep.is_some() {
            self.kept_pending.fetch_sub(1, Relaxed);
        }
        let mut p = p;
        if p.keep.is_none() && p.error != 0 {
            p.keep = Some("error");
        }
        if p.keep.is_none() {
            return;
        }
        let labels = match self.labels.get(&conn) {
            Some(l) => Some(l.clone()),
            None => self.observer.conn_labels(conn),
        };
        let rec = SpanRecord {
            conn,
            pending: p,
            labels,
        };
        if let Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) = self.queue.try_send(rec)
        {
            self.dropped.fetch_add(1, Relaxed);
        }
    }

    fn with_pending(&self, conn: &ConnMeta, f: impl FnOnce(&mut Pending)) {
        if let Some(mut p) = self.pending.get_mut(&conn.id) {
            f(&mut p);
        }
    }

    fn on_error(&self, conn: &ConnMeta, code: i16, topic: Option<&TopicRef>) {
        if code != 0 {
            self.with_pending(conn, |p| {
                if p.error == 0 {
                    p.error = code;
                    if let Some(t) = topic {
                        p.topic = Some(topic_name(t));
                    }
                }
            });
        }
    }

    /// Finishes pairs whose response started more than `age` ago (their connection went
    /// quiet). Runs on the exporter thread.
    fn sweep(&self, age: Duration) {
        let now = Instant::now();
        let old: Vec<u64> = self
            .pending
            .iter()
            .filter(|e| now.duration_since(e.at) >= age)
            .map(|e| *e.key())
            .collect();
        for id in old {
            if let Some((_, p)) = self
                .pending
                .remove_if(&id, |_, p| now.duration_since(p.at) >= age)
            {
                self.finish(id, p);
            }
        }
    }
}

/// The group a coordinator request names (the requests that make the observer note a
/// connection's group).
fn group_named(event: &TapEvent) -> Option<&str> {
    match event {
        TapEvent::JoinGroup { group_id, .. }
        | TapEvent::SyncGroup { group_id, .. }
        | TapEvent::Heartbeat { group_id, .. }
        | TapEvent::LeaveGroup { group_id, .. }
        | TapEvent::ConsumerGroupHeartbeat { group_id, .. }
        | TapEvent::OffsetCommit { group_id, .. }
        | TapEvent::TxnOffsetCommit { group_id, .. } => Some(group_id),
        _ => None,
    }
}

impl SpanSink {
    /// Notes the `client.id` and group a batch of `conn`'s events shows: one map look-up per
    /// batch that has either.
    fn learn(&self, conn: &ConnMeta, events: &[(TapEvent, Instant)]) {
        let mut client_id = None;
        let mut group = None;
        for (e, _) in events {
            match e {
                TapEvent::Request(r) if r.client_id.is_some() => client_id = r.client_id.as_ref(),
                e => group = group.or_else(|| group_named(e)),
            }
        }
        if client_id.is_none() && group.is_none() {
            return;
        }
        let mut l = self.labels.entry(conn.id).or_insert(ConnLabels {
            client_id: None,
            group: None,
            principal: None,
        });
        if let Some(id) = client_id {
            if l.client_id.as_ref().is_none_or(|had| !Arc::ptr_eq(had, id)) {
                l.client_id = Some(id.clone());
            }
        }
        if let (None, Some(g)) = (&l.group, group) {
            l.group = Some(Arc::from(g));
        }
    }
}

impl TapSink for SpanSink {
    fn on_events(&self, conn: &ConnMeta, events: &[(TapEvent, Instant)]) {
        self.learn(conn, events);
        for (event, _) in events {
            self.on_event(conn, event);
        }
    }

    fn on_event(&self, conn: &ConnMeta, event: &TapEvent) {
        match event {
            TapEvent::Response(r) => {
                let keep = self.decide(conn, r);
                if keep.is_some() {
                    self.kept_pending.fetch_add(1, Relaxed);
                }
                let p = Pending {
                    client_addr: conn.client_addr,
                    resp: r.clone(),
                    at: Instant::now(),
                    keep,
                    error: 0,
                    topic: None,
                };
                if let Some(prev) = self.pending.insert(conn.id, p) {
                    self.finish(conn.id, prev);
                }
            }
            TapEvent::FetchResponse(f) => self.on_error(conn, f.error_code, None),
            TapEvent::FetchPartition(p) => {
                if p.error_code != 0 {
                    self.on_error(conn, p.error_code, Some(&p.topic));
                } else if self.kept_pending.load(Relaxed) > 0 {
                    self.with_pending(conn, |pd| {
                        if pd.keep.is_some() && pd.topic.is_none() {
                            pd.topic = Some(topic_name(&p.topic));
                        }
                    });
                }
            }
            TapEvent::JoinGroupResponse { error_code, .. }
            | TapEvent::SyncGroupResponse { error_code, .. }
            | TapEvent::HeartbeatResponse { error_code, .. }
            | TapEvent::ConsumerGroupHeartbeatResponse { error_code, .. } => {
                self.on_error(conn, *error_code, None)
            }
            TapEvent::OffsetCommitResponse { errors, .. } => {
                if let Some((t, _, code)) = errors.first() {
                    self.on_error(conn, *code, Some(t));
                }
            }
            _ => {}
        }
    }

    fn on_close(&self, conn: &ConnMeta) {
        self.finding_budget.remove(&conn.id);
        if let Some((_, p)) = self.pending.remove(&conn.id) {
            self.finish(conn.id, p);
        }
        self.labels.remove(&conn.id);
    }
}

fn wall(at: Instant) -> SystemTime {
    SystemTime::now() - at.elapsed()
}

fn pair_span(tracer: &SdkTracer, rec: SpanRecord) {
    let p = rec.pending;
    let r = &p.resp;
    let end = wall(p.at);
    let start = end - r.latency;
    let name = api_name(r.api_key);
    let mut attrs = vec![
        KeyValue::new(SYSTEM, "kafka"),
        KeyValue::new(API_NAME, name),
        KeyValue::new(API_KEY, i64::from(r.api_key)),
        KeyValue::new(API_VERSION, i64::from(r.api_version)),
        KeyValue::new(CORRELATION_ID, i64::from(r.correlation_id)),
        KeyValue::new("sluice.request.size", r.request_size as i64),
        KeyValue::new("sluice.response.size", r.size as i64),
        KeyValue::new(SAMPLED_BY, p.keep.unwrap_or("error")),
        KeyValue::new("sluice.connection.id", rec.conn as i64),
    ];
    attrs.push(KeyValue::new(PEER_ADDRESS, p.client_addr.ip().to_string()));
    attrs.push(KeyValue::new(PEER_PORT, i64::from(p.client_addr.port())));
    if let Some(labels) = rec.labels {
        if let Some(id) = labels.client_id {
            attrs.push(KeyValue::new(CLIENT_ID, id.to_string()));
        }
        if let Some(g) = labels.group {
            attrs.push(KeyValue::new(GROUP, g.to_string()));
        }
        if let Some(p) = labels.principal {
            attrs.push(KeyValue::new(ENDUSER_ID, p.to_string()));
        }
    }
    if let Some(t) = &p.topic {
        attrs.push(KeyValue::new(TOPIC, t.to_string()));
    }
    if p.error != 0 {
        attrs.push(KeyValue::new(ERROR_CODE, i64::from(p.error)));
        attrs.push(KeyValue::new(ERROR_TYPE, p.error.to_string()));
    }
    let mut span = tracer
        .span_builder(name)
        .with_kind(SpanKind::Server)
        .with_start_time(start)
        .with_attributes(attrs)
        .start(tracer);
    if p.error != 0 {
        span.set_status(Status::error(format!("Kafka error code {}", p.error)));
    }
    span.end_with_timestamp(end);
}

fn finding_attrs(f: &Finding) -> Vec<KeyValue> {
    let p = crate::observer::snapshot::FindingPoint::of(f);
    let mut a = vec![
        KeyValue::new(SYSTEM, "kafka"),
        KeyValue::new(FINDING_KIND, p.kind),
        KeyValue::new(FINDING_SEVERITY, f.severity.as_str()),
        KeyValue::new("sluice.finding.key", f.key.clone()),
        KeyValue::new("sluice.finding.summary", f.summary.clone()),
        KeyValue::new("sluice.finding.evidence", f.evidence.to_string()),
    ];
    for (k, v) in [
        (GROUP, p.group),
        (TOPIC, p.topic),
        (PARTITION, p.partition),
        (CLIENT_ID, p.client_id),
        (PEER_ADDRESS, p.host),
        (ENDUSER_ID, p.principal),
    ] {
        if !v.is_empty() {
            a.push(KeyValue::new(k, v));
        }
    }
    a
}

/// One finding's span, from its start, with one event.
fn finding_span(tracer: &SdkTracer, f: &Finding, event: &'static str, at: SystemTime) {
    let attrs = finding_attrs(f);
    let mut span = tracer
        .span_builder(format!("finding {}", f.kind.as_str()))
        .with_kind(SpanKind::Internal)
        .with_start_time(wall(f.started))
        .with_attributes(attrs.clone())
        .start(tracer);
    span.add_event_with_timestamp(event, at, attrs);
    span.end();
}

/// The record with its connection's principal, which the observer knows once the broker
/// accepted it (looked up here, on the exporter thread, not on the forwarding path).
fn with_principal(observer: &Observer, mut rec: SpanRecord) -> SpanRecord {
    if rec.labels.as_ref().is_some_and(|l| l.principal.is_some()) {
        return rec;
    }
    if let Some(p) = observer.conn_labels(rec.conn).and_then(|l| l.principal) {
        rec.labels
            .get_or_insert(ConnLabels {
                client_id: None,
                group: None,
                principal: None,
            })
            .principal = Some(p);
    }
    rec
}

/// Emits a span per finding raised or cleared since the last call.
fn finding_spans(
    tracer: &SdkTracer,
    observer: &Observer,
    known: &mut BTreeMap<(&'static str, String), Finding>,
) {
    let now: BTreeMap<_, _> = observer
        .active_findings()
        .into_iter()
        .map(|f| ((f.kind.as_str(), f.key.clone()), f))
        .collect();
    for (k, f) in &now {
        if !known.contains_key(k) {
            finding_span(tracer, f, "finding.raised", wall(f.started));
        }
    }
    for (k, f) in known.iter() {
        if !now.contains_key(k) {
            finding_span(tracer, f, "finding.cleared", SystemTime::now());
        }
    }
    *known = now;
}

/// How often the exporter thread wakes to drain the queue. It sleeps in between rather than
/// waiting on the queue, so a kept pair costs the forwarding path no wake-up of this thread.
const DRAIN_EVERY: Duration = Duration::from_millis(100);

/// The exporter thread: every 100 ms turns what is queued into spans, until the sink
/// is dropped and the queue is empty; once a second, finishes quiet connections' pairs and
/// reports finding changes.
pub fn run_exporter(
    rx: Receiver<SpanRecord>,
    sink: std::sync::Weak<SpanSink>,
    tracer: SdkTracer,
    observer: Arc<Observer>,
) {
    let mut known = BTreeMap::new();
    let mut last_tick = Instant::now();
    'run: loop {
        std::thread::sleep(DRAIN_EVERY);
        loop {
            match rx.try_recv() {
                Ok(rec) => pair_span(&tracer, with_principal(&observer, rec)),
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => break 'run,
            }
        }
        if last_tick.elapsed() >= Duration::from_secs(1) {
            last_tick = Instant::now();
            match sink.upgrade() {
                Some(s) => s.sweep(Duration::from_secs(1)),
                None => break,
            }
            finding_spans(&tracer, &observer, &mut known);
        }
    }
    while let Ok(rec) = rx.try_recv() {
        pair_span(&tracer, with_principal(&observer, rec));
    }
    finding_spans(&tracer, &observer, &mut known);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::observer::config::DetectConfig;
    use sluice_protocol::event::FetchPartitionDelivered;

    fn sink(ratio: f64, queue: usize) -> (Arc<SpanSink>, Receiver<SpanRecord>, Arc<AtomicU64>) {
        let dropped = Arc::new(AtomicU64::new(0));
        let policy = SpanPolicy {
            ratio,
            slow: Duration::from_millis(100),
            finding_per_sec: 3,
        };
        let observer = Observer::new(DetectConfig::default());
        let (s, rx) = SpanSink::new(policy, queue, observer, dropped.clone());
        (s, rx, dropped)
    }

    fn conn(id: u64) -> ConnMeta {
        ConnMeta::new(id, SocketAddr::from(([10, 0, 0, 7], 40_000)))
    }

    fn response(correlation_id: i32, latency_ms: u64) -> TapEvent {
        TapEvent::Response(ResponseSeen {
            api_key: 1,
            api_version: 17,
            correlation_id,
            size: 1000,
            request_size: 90,
            latency: Duration::from_millis(latency_ms),
        })
    }

    fn partition_error(code: i16) -> TapEvent {
        TapEvent::FetchPartition(FetchPartitionDelivered {
            topic: TopicRef::named("orders"),
            partition: 3,
            error_code: code,
            high_watermark: -1,
            last_stable_offset: -1,
            log_start_offset: -1,
            aborted_transactions: 0,
            preferred_read_replica: -1,
            records_bytes: 0,
            batches: 0,
            records: 0,
            first_offset: None,
            last_offset: None,
            compression: None,
            truncated: false,
        })
    }

    #[test]
    fn errors_and_slow_pairs_are_kept_when_nothing_is_sampled() {
        let (s, rx, _) = sink(0.0, 16);
        let c = conn(1);
        s.on_event(&c, &response(1, 2)); // fast, fine: dropped
        s.on_event(&c, &response(2, 250)); // slow
        s.on_event(&c, &response(3, 2));
        s.on_event(&c, &partition_error(6)); // NOT_LEADER_OR_FOLLOWER
        s.on_event(&c, &response(4, 2));
        s.on_close(&c);
        let kept: Vec<_> = rx
            .try_iter()
            .map(|r| {
                (
                    r.pending.resp.correlation_id,
                    r.pending.keep,
                    r.pending.error,
                )
            })
            .collect();
        assert_eq!(kept, [(2, Some("slow"), 0), (3, Some("error"), 6)]);
    }

    #[test]
    fn a_connection_under_a_finding_is_kept_up_to_its_budget() {
        let (s, _, _) = sink(0.0, 64);
        let kept = (0..10).filter(|_| s.finding_allows(5)).count();
        assert_eq!(kept, 3, "3 per second");
        assert!(s.finding_allows(6), "each connection has its own budget");
        s.on_close(&conn(5));
        assert!(s.finding_budget.get(&5).is_none(), "forgotten at close");
        let (unlimited, _, _) = sink(0.0, 64);
        let policy = SpanPolicy {
            finding_per_sec: 0,
            ..unlimited.policy
        };
        let (s, _) = SpanSink::new(
            policy,
            4,
            Observer::new(DetectConfig::default()),
            Arc::new(AtomicU64::new(0)),
        );
        assert_eq!((0..100).filter(|_| s.finding_allows(1)).count(), 100);
    }

    #[test]
    fn ratio_one_keeps_every_pair_and_a_full_queue_drops_and_counts() {
        let (s, rx, dropped) = sink(1.0, 4);
        let c = conn(2);
        for i in 0..10 {
            s.on_event(&c, &response(i, 1));
        }
        s.on_close(&c);
        assert_eq!(rx.try_iter().count(), 4);
        assert_eq!(dropped.load(Relaxed), 6);
        assert!(s.pending.is_empty());
        assert_eq!(s.kept_pending.load(Relaxed), 0);
    }

    #[test]
    fn a_connection_closed_before_the_observer_s_tick_still_labels_its_spans() {
        // The observer has never published this connection (no tick ran): its spans take
        // client.id and group from its own events.
        let (s, rx, _) = sink(1.0, 16);
        let c = conn(4);
        let now = Instant::now();
        let request = TapEvent::Request(sluice_protocol::event::RequestSeen {
            api_key: 8,
            api_version: 9,
            correlation_id: 7,
            client_id: Some(Arc::from("py-consumer")),
            size: 120,
            expects_response: true,
        });
        let commit = TapEvent::OffsetCommit {
            group_id: "orders-app".into(),
            generation_id: 3,
            member_id: "m-1".into(),
            offsets: Vec::new(),
        };
        let mut answer = response(7, 1);
        if let TapEvent::Response(r) = &mut answer {
            r.api_key = 8;
        }
        s.on_events(&c, &[(request, now), (commit, now), (answer, now)]);
        s.on_close(&c);
        let rec = rx.try_recv().unwrap();
        let labels = rec.labels.expect("labels from the connection's own events");
        assert_eq!(labels.client_id.as_deref(), Some("py-consumer"));
        assert_eq!(labels.group.as_deref(), Some("orders-app"));
        assert!(s.labels.is_empty(), "forgotten at close");
    }

    #[test]
    fn a_span_names_the_principal_the_broker_accepted() {
        use sluice_protocol::event::SaslInfo;
        let observer = Observer::new(DetectConfig::default());
        let policy = SpanPolicy {
            ratio: 1.0,
            slow: Duration::from_secs(1),
            finding_per_sec: 3,
        };
        let (s, rx) = SpanSink::new(policy, 16, observer.clone(), Arc::new(AtomicU64::new(0)));
        let c = conn(9);
        observer.on_open(&c);
        for e in [
            TapEvent::Sasl(SaslInfo::Principal("svc-billing".into())),
            TapEvent::Sasl(SaslInfo::Outcome {
                error_code: 0,
                error_message: None,
                done: true,
            }),
        ] {
            observer.on_event(&c, &e);
        }
        observer.tick(Instant::now());
        // Its own events gave the sink a client.id; the principal comes from the observer.
        let request = TapEvent::Request(sluice_protocol::event::RequestSeen {
            api_key: 1,
            api_version: 17,
            correlation_id: 3,
            client_id: Some(Arc::from("billing-1")),
            size: 90,
            expects_response: true,
        });
        let now = Instant::now();
        s.on_events(&c, &[(request, now), (response(3, 1), now)]);
        s.on_close(&c);
        let labels = with_principal(&observer, rx.try_recv().unwrap())
            .labels
            .unwrap();
        assert_eq!(labels.client_id.as_deref(), Some("billing-1"));
        assert_eq!(labels.principal.as_deref(), Some("svc-billing"));
    }

    #[test]
    fn a_quiet_connection_s_last_pair_is_finished_by_the_sweep() {
        let (s, rx, _) = sink(1.0, 16);
        s.on_event(&conn(3), &response(9, 1));
        assert_eq!(rx.try_iter().count(), 0, "waits for its body events");
        s.sweep(Duration::ZERO);
        let rec = rx.try_recv().unwrap();
        assert_eq!(rec.pending.client_addr, conn(3).client_addr);
        assert_eq!(rec.pending.keep, Some("ratio"));
    }

    #[test]
    fn the_sampling_hash_spreads_evenly() {
        let threshold = (0.1 * u64::MAX as f64) as u64;
        let kept = (0..100_000u64)
            .filter(|i| mix((i % 37).rotate_left(32) ^ (i / 37)) <= threshold)
            .count();
        assert!(
            (9_000..11_000).contains(&kept),
            "kept {kept} of 100000 at 10%"
        );
    }
}
