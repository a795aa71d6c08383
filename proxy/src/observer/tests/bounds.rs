//! Floods: one client naming ever more partitions, topics, groups' members and clients, or API
//! numbers must not grow the observer without bound (each capped map's entries hold capped
//! collections, and all of them together a budget), and the admin API's answers stay small
//! whatever the model holds.

use std::sync::Arc;
use std::time::{Duration, Instant};

use sluice_protocol::event::*;
use sluice_protocol::TapEvent;

use super::{join, meta, request};
use crate::observer::api::ClientSort;
use crate::observer::config::DetectConfig;
use crate::observer::model::inner::MAX_PENDING_OFFSETS;
use crate::observer::owner;
use crate::observer::state::State;
use crate::sink::TapSink;

/// Largest admin answer accepted here, in bytes.
const ANSWER_BOUND: usize = 4 << 20;
/// The caps the model must hold within one entry: generous for legitimate large consumers.
const PER_ENTRY_BOUND: usize = 20_000;

fn at(t0: Instant, events: Vec<TapEvent>) -> Vec<(TapEvent, Instant)> {
    events.into_iter().map(|e| (e, t0)).collect()
}

/// An OffsetCommit of `partitions` partitions of `topics` topics by group `group`, and the
/// broker accepting it, refusing none.
fn huge_commit(group: &str, topics: usize, partitions: i32) -> Vec<TapEvent> {
    let offsets = (0..topics)
        .flat_map(|t| {
            let topic = TopicRef::named(&format!("t{t}"));
            (0..partitions).map(move |p| CommittedOffset {
                topic: topic.clone(),
                partition: p,
                offset: 42,
            })
        })
        .collect();
    vec![
        TapEvent::Request(RequestSeen {
            api_key: 8,
            api_version: 8,
            correlation_id: 7,
            client_id: Some(Arc::from("flood")),
            size: 7 << 20,
            expects_response: true,
        }),
        TapEvent::OffsetCommit {
            group_id: group.into(),
            generation_id: 1,
            member_id: "m1".into(),
            offsets,
        },
        TapEvent::Response(ResponseSeen {
            api_key: 8,
            api_version: 8,
            correlation_id: 7,
            size: 30,
            request_size: 7 << 20,
            latency: Duration::from_millis(1),
        }),
        TapEvent::OffsetCommitResponse {
            errors: vec![],
            partitions: 0,
        },
    ]
}

fn json_len(v: &serde_json::Value) -> usize {
    serde_json::to_vec(v).unwrap().len()
}

/// The one OffsetCommit of 550k partitions measured in the issue: 60 MiB answers before.
#[test]
fn one_huge_offset_commit_stays_within_the_caps() {
    let mut s = State::new(DetectConfig::default());
    let c = meta(1, 30_000);
    let t0 = Instant::now();
    s.open(&c, t0);
    s.events(&c, &at(t0, huge_commit("g", 55, 10_000)));
    let p = s.tick(t0);
    let held: usize = s.model().groups.values().map(|g| g.committed.len()).sum();
    assert!(held <= PER_ENTRY_BOUND, "{held} committed offsets held");
    assert!(held > 0, "a commit within the caps is kept");
    let h = p.snapshot.health_json(t0);
    let refused: u64 = h["inner_refused"]
        .as_object()
        .map_or(0, |o| o.values().filter_map(|v| v.as_u64()).sum());
    assert!(refused >= 540_000, "the refused offsets are counted: {h:#}");
    let answer = p.snapshot.groups_json(t0);
    assert!(
        json_len(&answer) < ANSWER_BOUND,
        "{} bytes",
        json_len(&answer)
    );
}

/// Through the observer's handle: the offsets no connection could keep are not even copied to
/// its queue, and still counted.
#[test]
fn a_huge_commit_is_copied_to_the_queue_only_as_far_as_it_is_kept() {
    let o = crate::observer::Observer::new(DetectConfig::default());
    let c = meta(1, 30_003);
    let t0 = Instant::now();
    o.on_open(&c);
    o.on_events(&c, &at(t0, huge_commit("g", 55, 10_000)));
    {
        let owner = o.owner.lock().unwrap();
        let Some(owner::Msg::Events(_, events)) = owner.as_ref().unwrap().inbox.try_iter().nth(1)
        else {
            panic!("no events queued");
        };
        let offsets = events.iter().find_map(|(e, _)| match e {
            TapEvent::OffsetCommit { offsets, .. } => Some(offsets.len()),
            _ => None,
        });
        assert_eq!(offsets, Some(MAX_PENDING_OFFSETS));
    }
    o.tick(t0);
    let h = o.health_json();
    assert_eq!(
        h["inner_refused"]["pending_offsets"],
        550_000 - MAX_PENDING_OFFSETS as u64,
        "{h:#}"
    );
}

/// Many groups' worth of commits: the budget over all groups holds.
#[test]
fn commits_across_many_groups_share_one_budget() {
    let cfg = DetectConfig::default();
    let budget = cfg.max_partitions;
    let mut s = State::new(cfg);
    let c = meta(1, 30_001);
    let t0 = Instant::now();
    s.open(&c, t0);
    for g in 0..40 {
        s.events(&c, &at(t0, huge_commit(&format!("g{g}"), 1, 10_000)));
    }
    let p = s.tick(t0);
    let held: usize = s.model().groups.values().map(|g| g.committed.len()).sum();
    assert!(held <= budget, "{held} committed offsets held");
    assert!(json_len(&p.snapshot.groups_json(t0)) < ANSWER_BOUND);
}

/// One client producing to and fetching from ever more topics and partitions, and naming
/// every API number Kafka could use.
#[test]
fn one_client_naming_many_topics_and_partitions_stays_within_the_caps() {
    let mut s = State::new(DetectConfig::default());
    let c = meta(1, 30_002);
    let t0 = Instant::now();
    s.open(&c, t0);
    let mut events = vec![request("flood", 0)];
    for t in 0..30_000 {
        events.push(TapEvent::ProducePartition(ProducePartition {
            topic: TopicRef::named(&format!("p{t}")),
            partition: 0,
            records_bytes: 10,
            batches: 1,
            records: 1,
            compression: None,
        }));
    }
    for p in 0..60_000 {
        events.push(TapEvent::FetchPartition(FetchPartitionDelivered {
            topic: TopicRef::named(if p % 2 == 0 { "wide" } else { "wider" }),
            partition: p,
            error_code: 0,
            high_watermark: 10,
            last_stable_offset: 10,
            log_start_offset: 0,
            aborted_transactions: 0,
            preferred_read_replica: -1,
            records_bytes: 0,
            batches: 0,
            records: 0,
            first_offset: None,
            last_offset: None,
            compression: None,
            truncated: false,
        }));
    }
    for key in 0..128 {
        for version in 0..32 {
            events.push(TapEvent::Request(RequestSeen {
                api_key: key,
                api_version: version,
                correlation_id: 1,
                client_id: Some(Arc::from("flood")),
                size: 10,
                expects_response: false,
            }));
        }
    }
    s.events(&c, &at(t0, events));
    let p = s.tick(t0);
    let m = s.model();
    for cl in m.clients.values() {
        assert!(
            cl.produced.len() <= PER_ENTRY_BOUND / 4,
            "{}",
            cl.produced.len()
        );
    }
    for t in m.topics.values() {
        assert!(
            t.partitions.len() <= PER_ENTRY_BOUND,
            "{}",
            t.partitions.len()
        );
    }
    let slots = p.snapshot.clients.iter().map(|c| c.api.len()).max();
    assert!(slots.unwrap_or(0) <= 256, "{slots:?} API slots");
    for answer in [
        p.snapshot.clients_json(ClientSort::BytesOut),
        p.snapshot.topics_json(),
        p.snapshot.connections_json(t0),
    ] {
        assert!(
            json_len(&answer) < ANSWER_BOUND,
            "{} bytes",
            json_len(&answer)
        );
    }
}

/// Thousands of client keys and member ids claiming one group.
#[test]
fn one_group_claimed_by_many_clients_and_members_stays_within_the_caps() {
    let mut s = State::new(DetectConfig::default());
    let t0 = Instant::now();
    for i in 0..5_000u64 {
        let c = meta(i, 10_000 + (i % 50_000) as u16);
        s.open(&c, t0);
        let mut events = vec![request(&format!("claimer-{i}"), 11), join("crowded")];
        events.push(TapEvent::JoinGroupResponse {
            error_code: 0,
            generation_id: 1,
            protocol_name: Some("range".into()),
            leader: format!("m-{i}"),
            member_id: format!("m-{i}"),
        });
        s.events(&c, &at(t0, events));
        s.close(&c, t0);
    }
    let p = s.tick(t0);
    let g = &s.model().groups["crowded"];
    assert!(g.clients.len() <= 2_000, "{} clients", g.clients.len());
    assert!(g.members.len() <= 2_000, "{} members", g.members.len());
    assert!(json_len(&p.snapshot.groups_json(t0)) < ANSWER_BOUND);
}

/// Every partition of a flood can be a finding: the findings answer lists at most a page of
/// the active ones and says how many there are.
#[test]
fn the_findings_answer_lists_at_most_a_page_of_active_findings() {
    use crate::observer::findings::{Finding, Kind, Severity};
    let t0 = Instant::now();
    let finding = Finding {
        kind: Kind::FetchLoop,
        key: "10.0.3.84|flood|orders|0".into(),
        severity: Severity::Critical,
        summary: "x".repeat(200),
        evidence: serde_json::json!({"topic": "orders", "partition": 0}),
        started: t0,
        last_seen: t0,
        cleared: None,
    };
    let snapshot = crate::observer::snapshot::Snapshot {
        active: vec![finding; 20_000],
        ..Default::default()
    };
    let answer = snapshot.findings_json(t0);
    assert!(
        json_len(&answer) < ANSWER_BOUND,
        "{} bytes",
        json_len(&answer)
    );
    assert_eq!(answer["active_total"], 20_000);
}
