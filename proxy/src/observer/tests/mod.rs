//! The observer and detectors over synthetic tap events: a loop is found and named, a healthy
//! consumer is not, churn is found, findings clear, and memory stays bounded.
//!
//! A little over 600 lines: the shared event builders live here; the owner, defect, commit and
//! lookup tests are in the sibling files.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sluice_protocol::event::*;
use sluice_protocol::TapEvent;

use super::config::DetectConfig;
use super::Observer;
use crate::sink::{ConnMeta, TapSink};

mod bounds;
mod commits;
mod defects;
mod index;
pub(crate) mod lookup;
mod owner;
mod rows;
mod sasl;
mod scale;

pub(crate) fn meta(id: u64, port: u16) -> ConnMeta {
    ConnMeta::new(id, SocketAddr::from(([10, 0, 3, 84], port)))
}

/// Connection `id` from port `port`, opened and identified as `client_id` by a Fetch request.
pub(crate) fn opened(o: &Observer, id: u64, port: u16, client_id: &str) -> ConnMeta {
    let c = meta(id, port);
    o.on_open(&c);
    o.on_event(&c, &request(client_id, 1));
    c
}

pub(crate) fn request(client_id: &str, api_key: i16) -> TapEvent {
    TapEvent::Request(RequestSeen {
        api_key,
        api_version: 0,
        correlation_id: 1,
        client_id: Some(Arc::from(client_id)),
        size: 100,
        expects_response: true,
    })
}

pub(crate) fn fetch(offset: i64) -> TapEvent {
    TapEvent::FetchRequest(FetchRequestInfo {
        replica: false,
        max_wait_ms: 500,
        min_bytes: 1,
        max_bytes: 50 << 20,
        isolation_level: 0,
        session_id: 0,
        session_epoch: -1,
        partitions: vec![FetchRequestPartition {
            topic: TopicRef::named("orders"),
            partition: 0,
            fetch_offset: offset,
            partition_max_bytes: 1 << 20,
        }],
        forgotten: vec![],
        rack_id: String::new(),
    })
}

pub(crate) fn delivered(first: i64, last: i64, bytes: u64) -> TapEvent {
    TapEvent::FetchPartition(FetchPartitionDelivered {
        topic: TopicRef::named("orders"),
        partition: 0,
        error_code: 0,
        high_watermark: last + 1,
        last_stable_offset: last + 1,
        log_start_offset: 0,
        aborted_transactions: 0,
        preferred_read_replica: -1,
        records_bytes: bytes,
        batches: 1,
        records: (last - first + 1) as u64,
        first_offset: Some(first),
        last_offset: Some(last),
        compression: Some(0),
        truncated: false,
    })
}

/// An OffsetCommit of `offset` for orders-0 by group `group`, and the broker accepting it:
/// the request header, the request, the response header and its body.
pub(crate) fn commit(group: &str, offset: i64) -> Vec<TapEvent> {
    static CORRELATION: std::sync::atomic::AtomicI32 = std::sync::atomic::AtomicI32::new(1);
    let correlation_id = CORRELATION.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let commit = TapEvent::OffsetCommit {
        group_id: group.into(),
        generation_id: 1,
        member_id: "m1".into(),
        offsets: vec![CommittedOffset {
            topic: TopicRef::named("orders"),
            partition: 0,
            offset,
        }],
    };
    super::workload::commit_exchange(correlation_id, None, commit, 1)
}

pub(crate) fn join(group: &str) -> TapEvent {
    TapEvent::JoinGroup {
        group_id: group.into(),
        member_id: String::new(),
        group_instance_id: None,
        protocol_type: "consumer".into(),
        protocols: vec!["range".into()],
        session_timeout_ms: 45_000,
    }
}

/// A JoinGroup of `group` and the broker's answer making this connection its member
/// `member`, in generation 1.
pub(crate) fn joined(group: &str, member: &str) -> Vec<TapEvent> {
    vec![
        join(group),
        TapEvent::JoinGroupResponse {
            error_code: 0,
            generation_id: 1,
            protocol_name: None,
            leader: member.into(),
            member_id: member.into(),
        },
    ]
}

/// The active finding of `kind`; panics, showing every finding, when there is none.
pub(crate) fn active(o: &Observer, kind: &str) -> serde_json::Value {
    let f = o.findings_json();
    f["active"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["kind"] == kind)
        .cloned()
        .unwrap_or_else(|| panic!("no active {kind}: {f:#}"))
}

pub(crate) fn kinds(o: &Observer) -> Vec<String> {
    o.findings_json()["active"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["kind"].as_str().unwrap().to_owned())
        .collect()
}

/// A member of group `billing` (committed 100) with a coordinator connection and a fetch
/// connection (port 15631), after a first tick.
fn billing_consumer() -> (Arc<Observer>, ConnMeta, Instant) {
    let o = Observer::new(DetectConfig::default());
    let (coord, fetcher) = (meta(1, 15630), meta(2, 15631));
    for m in [&coord, &fetcher] {
        o.on_open(m);
        o.on_event(m, &request("order-service", 3));
    }
    o.on_event(&coord, &join("billing"));
    for e in commit("billing", 100) {
        o.on_event(&coord, &e);
    }
    let t0 = Instant::now();
    o.tick(t0);
    (o, fetcher, t0)
}

/// librdkafka fetches ahead: after seeking back to 100 it fetches 100, 1100 and 2100, all below
/// what it was served before. The loop returns to 100, and only those fetches are rewinds.
#[test]
fn a_consumer_fetching_ahead_after_each_rewind_loops_to_where_it_went_back() {
    let (o, fetcher, t0) = billing_consumer();
    for _ in 0..6 {
        for from in [100, 1100, 2100] {
            o.on_event(&fetcher, &fetch(from));
            o.on_event(&fetcher, &delivered(from, from + 999, 1 << 20));
        }
    }
    o.tick(t0 + Duration::from_secs(1));
    let ev = active(&o, "fetch_loop")["evidence"].clone();
    assert_eq!(ev["offset"], 100, "{ev:#}");
    assert_eq!(
        ev["rewinds"], 5,
        "the first fetch of 100 returns nowhere: {ev:#}"
    );
}

#[test]
fn a_consumer_rewinding_to_the_same_offset_is_a_fetch_loop() {
    let (o, fetcher, t0) = billing_consumer();
    // Fetched from 100, delivered 100..=1099 (1 MiB), seeks back to 100, again and again.
    for _ in 0..6 {
        o.on_event(&fetcher, &fetch(100));
        o.on_event(&fetcher, &delivered(100, 1099, 1 << 20));
    }
    o.tick(t0 + Duration::from_secs(1));
    let fl = active(&o, "fetch_loop");
    let ev = &fl["evidence"];
    assert_eq!(ev["client_host"], "10.0.3.84");
    assert_eq!(ev["client_port"], 15631);
    assert_eq!(ev["client_id"], "order-service");
    assert_eq!(ev["group"], "billing");
    assert_eq!(ev["group_attribution"], "coordinator traffic");
    assert_eq!(ev["topic"], "orders");
    assert_eq!(ev["partition"], 0);
    assert_eq!(ev["offset"], 100);
    assert_eq!(ev["committed_offset"], 100);
    assert!(ev["rewinds"].as_u64().unwrap() >= 5);
    assert!(ev["amplification"].as_f64().unwrap() >= 5.0);
    let egress = active(&o, "egress_amplification");
    assert_eq!(egress["evidence"]["consuming_groups"], 1, "{egress}");
    let topics = o.topics_json();
    assert_eq!(
        topics[0]["consuming_groups"],
        serde_json::json!(["billing"]),
        "{topics}"
    );
    // It stops: after clear_after without new rewinds the finding clears.
    o.tick(t0 + Duration::from_secs(40));
    o.tick(t0 + Duration::from_secs(60));
    assert!(kinds(&o).is_empty(), "{:?}", kinds(&o));
    let cleared = o.findings_json()["cleared"].as_array().unwrap().clone();
    assert!(cleared
        .iter()
        .any(|f| f["kind"] == "fetch_loop" && f["state"] == "cleared"));
}

#[test]
fn a_consumer_that_reads_a_backlog_and_commits_once_is_not_stuck() {
    let o = Observer::new(DetectConfig::default());
    let c = opened(&o, 1, 20002, "sluice-py-consumer");
    o.on_event(&c, &join("one-shot"));
    let t0 = Instant::now();
    o.tick(t0);
    o.on_event(&c, &fetch(0));
    o.on_event(&c, &delivered(0, 999, 1 << 20));
    // Its only commit: everything it was sent. Sluice never sees it advance.
    for e in commit("one-shot", 1000) {
        o.on_event(&c, &e);
    }
    for s in 1..=12 {
        o.on_event(&c, &fetch(1000));
        o.tick(t0 + Duration::from_secs(s));
    }
    assert!(kinds(&o).is_empty(), "{:?}", o.findings_json());
}

#[test]
fn the_looping_client_is_flagged_and_others_are_not() {
    let o = Observer::new(DetectConfig::default());
    let c = opened(&o, 2, 15631, "order-service");
    let t0 = Instant::now();
    o.tick(t0);
    assert!(!o.has_flagged());
    for _ in 0..6 {
        o.on_event(&c, &fetch(100));
        o.on_event(&c, &delivered(100, 1099, 1 << 20));
    }
    o.tick(t0 + Duration::from_secs(1));
    let host = c.client_addr.ip();
    assert!(o.has_flagged());
    assert!(o.is_flagged(host, "order-service"));
    assert!(
        !o.is_flagged(host, "billing"),
        "another client.id on the same host"
    );
    assert!(!o.is_flagged("10.9.9.9".parse().unwrap(), "order-service"));
}

#[test]
fn a_healthy_consumer_raises_nothing() {
    let o = Observer::new(DetectConfig::default());
    let c = opened(&o, 1, 20000, "consumer-healthy-1");
    o.on_event(&c, &join("healthy"));
    let t0 = Instant::now();
    o.tick(t0);
    for i in 0..50i64 {
        o.on_event(&c, &fetch(i * 1000));
        o.on_event(&c, &delivered(i * 1000, i * 1000 + 999, 1 << 20));
        for e in commit("healthy", i * 1000 + 1000) {
            o.on_event(&c, &e);
        }
    }
    // A restart from the committed offset is one rewind, not a loop.
    o.on_event(&c, &fetch(49_000));
    o.tick(t0 + Duration::from_secs(1));
    assert!(kinds(&o).is_empty(), "{:?}", o.findings_json());
    let clients = o.clients_json(super::api::ClientSort::BytesOut);
    assert_eq!(clients[0]["group"], "healthy");
    assert_eq!(clients[0]["bytes_fetched"], 50u64 << 20);
}

#[test]
fn java_default_client_id_attributes_the_group_when_the_coordinator_is_elsewhere() {
    let o = Observer::new(DetectConfig::default());
    let c = opened(&o, 1, 20001, "consumer-payments-3");
    let t0 = Instant::now();
    o.tick(t0);
    for _ in 0..4 {
        o.on_event(&c, &fetch(7));
        o.on_event(&c, &delivered(7, 500, 200_000));
    }
    o.tick(t0 + Duration::from_secs(1));
    let fl = active(&o, "fetch_loop");
    assert_eq!(fl["evidence"]["group"], "payments");
    assert_eq!(
        fl["evidence"]["group_attribution"],
        "java default client.id"
    );
}

#[test]
fn a_client_opening_connection_after_connection_is_churn() {
    let o = Observer::new(DetectConfig::default());
    for i in 0..30u64 {
        let m = meta(100 + i, 30000 + i as u16);
        o.on_open(&m);
        o.on_event(&m, &request("producer-per-message", 0));
        o.on_close(&m);
    }
    o.tick(Instant::now());
    let f = o.findings_json();
    let churn: Vec<_> = f["active"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["kind"] == "connection_churn")
        .cloned()
        .collect();
    assert!(
        churn
            .iter()
            .any(|f| f["evidence"]["client_id"] == "producer-per-message"),
        "{f}"
    );
}

/// A JoinGroup and its response: `member` joins group `group` in `generation`.
fn joins(o: &Observer, c: &ConnMeta, group: &str, generation: i32, member: &str) {
    o.on_event(c, &join(group));
    o.on_event(
        c,
        &TapEvent::JoinGroupResponse {
            error_code: 0,
            generation_id: generation,
            protocol_name: Some("range".into()),
            leader: member.into(),
            member_id: member.into(),
        },
    );
}

#[test]
fn rejoining_over_and_over_is_a_rebalance_storm() {
    let o = Observer::new(DetectConfig::default());
    let c = meta(1, 20002);
    o.on_open(&c);
    o.on_event(&c, &request("flappy", 11));
    // Kicked out and back, each time as a new member: the same client key joins again and
    // again. Retried joins of one rebalance carry the same generation: counted once.
    for generation in 1..=8 {
        for _ in 0..2 {
            joins(&o, &c, "flapping", generation, &format!("m{generation}"));
        }
    }
    o.tick(Instant::now());
    assert_eq!(kinds(&o), ["rebalance_storm"]);
    let f = o.findings_json();
    let e = &f["active"][0]["evidence"];
    assert_eq!(e["rebalances_in_window"], 8, "{f}");
    assert_eq!(e["client_id"], "flappy", "{f}");
    assert_eq!(e["rejoins_in_window"], 8, "{f}");
}

#[test]
fn a_rolling_deploy_is_no_rebalance_storm() {
    let o = Observer::new(DetectConfig::default());
    // Three members start, then each is replaced once (left, then joined as a new member):
    // seven generations within a minute.
    let conns: Vec<ConnMeta> = (0..6).map(|i| meta(30 + i, 21000 + i as u16)).collect();
    let mut generation = 0;
    for (i, c) in conns.iter().enumerate() {
        o.on_open(c);
        o.on_event(c, &request(&format!("rolling-{}", i % 3), 11));
        if i >= 3 {
            // The member it replaces leaves; a member that stays rejoins the new generation.
            o.on_event(
                &conns[i - 3],
                &TapEvent::LeaveGroup {
                    group_id: "rolling".into(),
                    member_ids: vec![format!("m{}", i - 3)],
                },
            );
            generation += 1;
            joins(
                &o,
                &conns[i - 1],
                "rolling",
                generation,
                &format!("m{}", i - 1),
            );
        }
        generation += 1;
        joins(&o, c, "rolling", generation, &format!("m{i}"));
    }
    o.tick(Instant::now());
    let f = o.findings_json();
    assert!(kinds(&o).is_empty(), "{f:#}");
    assert_eq!(o.groups_json()[0]["rebalances_in_window"], 9);
}

#[test]
fn a_flood_of_client_ids_cannot_grow_memory_without_bound() {
    let cfg = DetectConfig {
        max_clients: 500,
        ..DetectConfig::default()
    };
    let o = Observer::new(cfg);
    for i in 0..5_000u64 {
        let m = meta(i, (i % 60000) as u16);
        o.on_open(&m);
        o.on_event(&m, &request(&format!("random-{i}"), 3));
        o.on_close(&m);
        if i % 500 == 499 {
            o.tick(Instant::now()); // the observer's thread keeps up with its queue
        }
    }
    o.tick(Instant::now());
    let h = o.health_json();
    assert_eq!(h["dropped_events"], 0, "{h}");
    assert!(h["clients"].as_u64().unwrap() <= 500, "{h}");
    assert!(h["refused_at_cap"].as_u64().unwrap() >= 4_000, "{h}");
    assert_eq!(h["connections"], 0);
}

#[test]
fn a_client_id_shared_by_groups_is_attributed_through_the_assignment() {
    let o = Observer::new(DetectConfig::default());
    // One client.id ("rdkafka", librdkafka's default) in two groups; only "billing" is
    // assigned orders-0.
    let (a, b, fetcher) = (meta(1, 40001), meta(2, 40002), meta(3, 40003));
    for m in [&a, &b, &fetcher] {
        o.on_open(m);
        o.on_event(m, &request("rdkafka", 3));
    }
    o.on_event(&a, &join("reports"));
    o.on_event(&b, &join("billing"));
    o.on_event(
        &b,
        &TapEvent::SyncGroup {
            group_id: "billing".into(),
            generation_id: 1,
            member_id: "m-b".into(),
        },
    );
    o.on_event(
        &b,
        &TapEvent::SyncGroupResponse {
            error_code: 0,
            assignment: Some(vec![(TopicRef::named("orders"), vec![0])]),
        },
    );
    let t0 = Instant::now();
    o.tick(t0);
    for _ in 0..4 {
        o.on_event(&fetcher, &fetch(100));
        o.on_event(&fetcher, &delivered(100, 900, 300_000));
    }
    o.tick(t0 + Duration::from_secs(1));
    let fl = active(&o, "fetch_loop");
    assert_eq!(fl["evidence"]["group"], "billing", "{fl}");
}

#[test]
fn groups_sharing_a_client_id_on_one_host_are_no_loop_until_one_loops() {
    let o = Observer::new(DetectConfig::default());
    // Four healthy consumers in four groups, all with librdkafka's default client.id on one
    // host, reading orders-0 from the start, each five steps behind the one before: every
    // offset is fetched four times by the same client key, once per connection.
    let groups = ["g-a", "g-b", "g-c", "g-d"];
    let conns: Vec<ConnMeta> = (0..4).map(|i| meta(10 + i, 41000 + i as u16)).collect();
    for (m, g) in conns.iter().zip(groups) {
        o.on_open(m);
        o.on_event(m, &request("rdkafka", 3));
        o.on_event(m, &join(g));
    }
    // Events carry the simulated time of the ticks.
    let t0 = Instant::now();
    o.tick(t0);
    let mut at = Duration::ZERO;
    for i in 0..60i64 {
        for (k, (m, g)) in conns.iter().zip(groups).enumerate() {
            let Some(step) = i.checked_sub(5 * k as i64) else {
                continue;
            };
            let now = t0 + at;
            o.on_event_at(m, &fetch(step * 1000), now);
            o.on_event_at(m, &delivered(step * 1000, step * 1000 + 999, 1 << 20), now);
            for e in commit(g, step * 1000 + 1000) {
                o.on_event_at(m, &e, now);
            }
        }
        at += Duration::from_millis(200);
        o.tick(t0 + at);
    }
    assert!(kinds(&o).is_empty(), "{:#}", o.findings_json());
    // Later, with no group committing any more, the last one keeps going back to the same
    // offset on its connection.
    at += o.config().window + Duration::from_secs(1);
    o.tick(t0 + at);
    for _ in 0..6 {
        o.on_event_at(&conns[3], &fetch(30_000), t0 + at);
        o.on_event_at(&conns[3], &delivered(30_000, 30_999, 1 << 20), t0 + at);
    }
    o.tick(t0 + at + Duration::from_secs(1));
    let fl = active(&o, "fetch_loop");
    assert_eq!(fl["evidence"]["client_port"], 41003, "{fl:#}");
}

/// Rewinds are judged on each connection's own fetches: another connection of the same
/// client key reading lower offsets in between does not hide one connection's loop.
#[test]
fn a_loop_shows_while_another_connection_of_the_client_reads_lower_offsets() {
    let o = Observer::new(DetectConfig::default());
    let (looping, reading) = (meta(20, 42000), meta(21, 42001));
    for (m, g) in [(&looping, "g-loop"), (&reading, "g-read")] {
        o.on_open(m);
        o.on_event(m, &request("rdkafka", 3));
        o.on_event(m, &join(g));
    }
    let t0 = Instant::now();
    o.tick(t0);
    for i in 0..6 {
        o.on_event(&looping, &fetch(30_000));
        o.on_event(&looping, &delivered(30_000, 30_999, 1 << 20));
        o.on_event(&reading, &fetch(i * 1000));
        o.on_event(&reading, &delivered(i * 1000, i * 1000 + 999, 1 << 20));
    }
    o.tick(t0 + Duration::from_secs(1));
    let fl = active(&o, "fetch_loop");
    assert_eq!(fl["evidence"]["offset"], 30_000, "{fl:#}");
    assert_eq!(fl["evidence"]["rewinds"], 5, "{fl:#}");
}

#[test]
fn a_batch_of_events_counts_as_the_same_events_one_by_one() {
    let (one, batch) = (
        Observer::new(DetectConfig::default()),
        Observer::new(DetectConfig::default()),
    );
    let (coord, fetcher) = (meta(1, 15630), meta(2, 15631));
    let t0 = Instant::now();
    let mut events: Vec<(ConnMeta, TapEvent, Instant)> = vec![
        (coord.clone(), request("order-service", 3), t0),
        (fetcher.clone(), request("order-service", 3), t0),
        (coord.clone(), join("billing"), t0),
    ];
    events.extend(
        commit("billing", 100)
            .into_iter()
            .map(|e| (coord.clone(), e, t0)),
    );
    for i in 0..6 {
        let at = t0 + Duration::from_millis(100 * i);
        events.push((fetcher.clone(), fetch(100), at));
        events.push((fetcher.clone(), delivered(100, 1099, 1 << 20), at));
    }
    for o in [&one, &batch] {
        o.on_open(&coord);
        o.on_open(&fetcher);
    }
    for (m, e, at) in &events {
        one.on_event_at(m, e, *at);
    }
    // The same events in per-connection batches, as the connections hand them over.
    for m in [&coord, &fetcher] {
        let mine: Vec<(TapEvent, Instant)> = events
            .iter()
            .filter(|(c, _, _)| c.id == m.id)
            .map(|(_, e, at)| (e.clone(), *at))
            .collect();
        batch.on_events(m, &mine);
    }
    for o in [&one, &batch] {
        o.tick(t0 + Duration::from_secs(1));
    }
    assert!(kinds(&one).contains(&"fetch_loop".to_owned()));
    assert_eq!(kinds(&one), kinds(&batch));
    let evidence = |o: &Observer| o.findings_json()["active"][0]["evidence"].clone();
    assert_eq!(evidence(&one), evidence(&batch));
    let counts = |o: &Observer| {
        o.connections_json()
            .as_array()
            .unwrap()
            .iter()
            .map(|c| {
                (
                    c["bytes_in"].clone(),
                    c["bytes_out"].clone(),
                    c["requests"].clone(),
                )
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(counts(&one), counts(&batch));
}
