//! Defects found in review, each pinned by a test that failed before its fix: group members
//! that were never forgotten, per-client API counts keyed by whatever numbers a client sends,
//! offset arithmetic on wire values, and a `client.id` changing mid-connection.

use std::sync::Arc;
use std::time::{Duration, Instant};

use sluice_protocol::event::*;
use sluice_protocol::TapEvent;

use super::{commit, join, meta, request};
use crate::observer::api::ClientSort;
use crate::observer::config::DetectConfig;
use crate::observer::Observer;
use crate::sink::TapSink;

fn join_response(generation: i32, member: &str) -> TapEvent {
    TapEvent::JoinGroupResponse {
        error_code: 0,
        generation_id: generation,
        protocol_name: Some("range".into()),
        leader: member.into(),
        member_id: member.into(),
    }
}

#[test]
fn members_that_stopped_showing_up_are_forgotten() {
    let o = Observer::new(DetectConfig::default());
    let c = meta(1, 20_000);
    o.on_open(&c);
    o.on_event(&c, &request("svc", 11));
    let t0 = Instant::now();
    // A consumer crash-looping: every restart joins as a new member.
    for generation in 1..=20 {
        o.on_event_at(&c, &join("restarts"), t0);
        o.on_event_at(
            &c,
            &join_response(generation, &format!("m-{generation}")),
            t0,
        );
    }
    o.tick(t0);
    let members = |o: &Observer| o.groups_json()[0]["members"].as_array().unwrap().len();
    assert_eq!(members(&o), 20);
    // The last member keeps heartbeating; the others are gone.
    let later = t0 + o.config().member_expiry + Duration::from_secs(1);
    o.on_event_at(
        &c,
        &TapEvent::Heartbeat {
            group_id: "restarts".into(),
            generation_id: 20,
            member_id: "m-20".into(),
        },
        later - Duration::from_secs(2),
    );
    o.tick(later);
    let g = o.groups_json();
    assert_eq!(members(&o), 1, "{g:#}");
    assert_eq!(g[0]["members"][0]["member_id"], "m-20");
}

#[test]
fn api_numbers_no_kafka_uses_share_one_count() {
    let o = Observer::new(DetectConfig::default());
    let c = meta(1, 20_001);
    o.on_open(&c);
    for key in 0..2_000i16 {
        o.on_event(
            &c,
            &TapEvent::Request(RequestSeen {
                api_key: 200 + key,
                api_version: key,
                correlation_id: key.into(),
                client_id: Some(Arc::from("fuzzer")),
                size: 20,
                expects_response: false,
            }),
        );
    }
    o.on_close(&c);
    o.tick(Instant::now());
    let snap = o.snapshot();
    let client = snap
        .clients
        .iter()
        .find(|c| &*c.client_id == "fuzzer")
        .unwrap();
    assert_eq!(client.api.len(), 1, "{:?}", client.api);
    assert_eq!(client.api[&(-1, -1)].requests, 2_000);
}

/// Records `first..=last` delivered, whatever the two are.
fn delivered_raw(first: i64, last: i64) -> TapEvent {
    TapEvent::FetchPartition(FetchPartitionDelivered {
        topic: TopicRef::named("orders"),
        partition: 0,
        error_code: 0,
        high_watermark: last,
        last_stable_offset: last,
        log_start_offset: first,
        aborted_transactions: 0,
        preferred_read_replica: -1,
        records_bytes: 100,
        batches: 1,
        records: 1,
        first_offset: Some(first),
        last_offset: Some(last),
        compression: Some(0),
        truncated: false,
    })
}

#[test]
fn offsets_at_the_ends_of_the_range_are_taken_without_overflow() {
    let o = Observer::new(DetectConfig::default());
    let c = meta(1, 20_002);
    o.on_open(&c);
    o.on_event(&c, &request("edge", 8));
    for e in commit("edge", i64::MIN)
        .into_iter()
        .chain(commit("edge", i64::MAX))
    {
        o.on_event(&c, &e);
    }
    o.on_event(&c, &delivered_raw(i64::MAX, i64::MAX));
    o.on_event(&c, &delivered_raw(i64::MIN, i64::MAX));
    o.on_event(&c, &super::fetch(i64::MIN));
    o.tick(Instant::now());
    let g = o.groups_json();
    assert_eq!(g[0]["committed"][0]["offset"], i64::MAX, "{g:#}");
}

#[test]
fn a_client_id_changing_mid_connection_moves_its_open_count() {
    let o = Observer::new(DetectConfig::default());
    let c = meta(1, 20_003);
    o.on_open(&c);
    o.on_event(&c, &request("before", 3));
    o.on_event(&c, &request("after", 3));
    o.tick(Instant::now());
    let open = |o: &Observer, id: &str| {
        o.clients_json(ClientSort::Connections)
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["client_id"] == id)
            .map(|c| c["connections_open"].as_u64().unwrap())
    };
    assert_eq!(open(&o, "before"), Some(0));
    assert_eq!(open(&o, "after"), Some(1));
    o.on_close(&c);
    o.tick(Instant::now());
    assert_eq!(
        open(&o, "after"),
        Some(0),
        "closed under the key it was counted under"
    );
    assert_eq!(open(&o, "before"), Some(0));
}

#[test]
fn a_kip848_member_is_filed_under_the_id_the_broker_gave_it() {
    let o = Observer::new(DetectConfig::default());
    let c = meta(1, 20_004);
    o.on_open(&c);
    o.on_event(&c, &request("svc", 68));
    o.on_event(
        &c,
        &TapEvent::ConsumerGroupHeartbeat {
            group_id: "kip848".into(),
            member_id: String::new(),
            member_epoch: 0,
            subscribed_topics: Some(vec!["orders".into()]),
        },
    );
    o.on_event(
        &c,
        &TapEvent::ConsumerGroupHeartbeatResponse {
            error_code: 0,
            member_id: Some("given-by-broker".into()),
            member_epoch: 1,
            assignment: Some(vec![(TopicRef::named("orders"), vec![0, 1])]),
        },
    );
    o.tick(Instant::now());
    let g = o.groups_json();
    assert_eq!(g[0]["members"][0]["member_id"], "given-by-broker", "{g:#}");
    assert_eq!(
        g[0]["members"][0]["assignment"][0]["partitions"],
        serde_json::json!([0, 1])
    );
}
