//! A sidecar that sees a group's fetches but none of its coordinator traffic learns the group
//! and its committed offsets from the group lookup, and asks the lookup about what it cannot
//! tell.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use super::{delivered, fetch, meta, request};
use crate::lookup::view::{
    Committed, Coordinator, GroupInfo, GroupProtocol, GroupsView, LookupTotals, MemberInfo,
    Members, RoundStats,
};
use crate::observer::config::DetectConfig;
use crate::observer::Observer;
use crate::sink::{ConnMeta, TapSink};

/// What a lookup round would say of group `blind`: one member, `client.id` `svc`, assigned
/// orders-0, committed at `offset`.
pub(crate) fn view(at: Instant, offset: i64) -> GroupsView {
    GroupsView {
        at,
        brokers: vec![],
        groups: vec![GroupInfo {
            group_id: "blind".into(),
            protocol: GroupProtocol::Classic,
            state: "Stable".into(),
            coordinator: Coordinator {
                node_id: Some(2),
                addr: "127.0.0.1:9094".into(),
                fronted: false,
            },
            listed_at: Some(at),
            members: Some(Members {
                at,
                state: "Stable".into(),
                members: vec![MemberInfo {
                    member_id: "svc-1234".into(),
                    instance_id: None,
                    client_id: "svc".into(),
                    client_host: Some("127.0.0.1".parse().unwrap()),
                    assignment: vec![("orders".into(), vec![0])],
                }],
                dropped_members: 0,
                dropped_partitions: 0,
            }),
            committed: Some(Committed {
                at,
                offsets: BTreeMap::from([(("orders".to_owned(), 0), offset)]),
                dropped: 0,
            }),
        }],
        sidecar_hosts: Default::default(),
        round: RoundStats::default(),
        totals: LookupTotals::default(),
        issues: vec![],
        topic_names: vec![],
    }
}

#[test]
fn a_blind_sidecar_names_the_group_and_its_commits_from_the_lookup() {
    let o = Observer::new(DetectConfig::default());
    let c = meta(1, 32_000);
    o.on_open(&c);
    o.on_event(&c, &request("svc", 1));
    let t0 = Instant::now();
    o.on_event_at(&c, &fetch(100), t0);
    o.on_event_at(&c, &delivered(100, 199, 100 << 10), t0);
    o.tick(t0);
    // Nothing tells this sidecar the group: it asks the lookup about the client.
    let interest = o.interest().borrow().clone();
    assert!(interest.groups.is_empty(), "{interest:?}");
    assert_eq!(interest.clients.len(), 1, "{interest:?}");
    assert_eq!(interest.clients[0].client_id, "svc");
    assert_eq!(interest.clients[0].partitions, [("orders".to_owned(), 0)]);

    o.looked_up(view(t0, 100));
    // It loops on offset 100 and never commits: named, with the group from the lookup (the
    // loop at once, the stuck commit after the window).
    let mut at = Duration::ZERO;
    for _ in 0..24 {
        at += Duration::from_millis(500);
        o.on_event_at(&c, &fetch(100), t0 + at);
        o.on_event_at(&c, &delivered(100, 199, 100 << 10), t0 + at);
        if at.subsec_millis() == 0 {
            o.tick(t0 + at);
        }
    }
    let clients = o.clients_json(crate::observer::api::ClientSort::BytesOut);
    assert_eq!(clients[0]["group"], "blind", "{clients:#}");
    assert_eq!(clients[0]["group_attribution"], "group lookup");
    let fl = super::active(&o, "fetch_loop");
    assert_eq!(fl["evidence"]["group"], "blind", "{fl:#}");
    assert_eq!(fl["evidence"]["group_attribution"], "group lookup");
    assert_eq!(fl["evidence"]["committed_offset"], 100);
    assert_eq!(fl["evidence"]["committed_source"], "group lookup");
    let nc = super::active(&o, "fetch_without_commit");
    assert_eq!(
        nc["evidence"]["partitions"][0]["committed_source"], "group lookup",
        "{nc:#}"
    );
    // Now the group is known here: the lookup is asked for its offsets every round.
    let interest = o.interest().borrow().clone();
    assert!(interest.groups.contains("blind"), "{interest:?}");
    assert!(interest.clients.is_empty(), "{interest:?}");
    assert!(o.health_json()["lookup"]["groups_known"] == 1);
}

#[test]
fn committed_offsets_moving_in_the_lookup_count_as_progress() {
    let o = Observer::new(DetectConfig::default());
    // A healthy consumer, seen only fetching here: the lookup sees its offsets move.
    let next = healthy_then(&o, 32_001, 10, 120, None);
    let f = o.findings_json();
    assert!(f["active"].as_array().unwrap().is_empty(), "{f:#}");
    let g = o.groups_json();
    assert_eq!(g[0]["committed"][0]["offset"], next - 20, "{g:#}");
}

#[test]
fn topics_seen_only_by_id_are_asked_about() {
    use sluice_protocol::event::{FetchRequestInfo, FetchRequestPartition, TopicId, TopicRef};
    let o = Observer::new(DetectConfig::default());
    let c = meta(1, 32_002);
    o.on_open(&c);
    o.on_event(&c, &request("svc", 1));
    let id = [0xab; 16];
    o.on_event(
        &c,
        &sluice_protocol::TapEvent::FetchRequest(FetchRequestInfo {
            replica: false,
            max_wait_ms: 500,
            min_bytes: 1,
            max_bytes: 1 << 20,
            isolation_level: 0,
            session_id: 0,
            session_epoch: -1,
            partitions: vec![FetchRequestPartition {
                topic: TopicRef::by_id(TopicId(id)),
                partition: 0,
                fetch_offset: 0,
                partition_max_bytes: 1 << 20,
            }],
            forgotten: vec![],
            rack_id: String::new(),
        }),
    );
    o.tick(Instant::now());
    let interest = o.interest().borrow().clone();
    assert_eq!(interest.topic_ids.iter().collect::<Vec<_>>(), [&id]);
}

#[test]
fn fetches_stay_attributed_once_the_lookup_sees_the_group_empty() {
    let o = Observer::new(DetectConfig::default());
    let c = meta(1, 32_003);
    o.on_open(&c);
    o.on_event(&c, &request("svc", 1));
    let t0 = Instant::now();
    o.on_event_at(&c, &fetch(100), t0);
    o.on_event_at(&c, &delivered(100, 199, 100 << 10), t0);
    o.looked_up(view(t0, 100));
    o.tick(t0);
    // The consumer stopped: its group is described without members.
    let mut empty = view(t0 + Duration::from_secs(5), 200);
    empty.groups[0].members.as_mut().unwrap().members.clear();
    o.looked_up(empty);
    o.tick(t0 + Duration::from_secs(6));
    let clients = o.clients_json(crate::observer::api::ClientSort::BytesOut);
    assert_eq!(clients[0]["group"], "blind", "{clients:#}");
}

/// Connection `c` fetches `n` new records from `next` at `at`; returns the offset after them.
fn fetch_new(o: &Observer, c: &ConnMeta, (next, n): (i64, i64), at: Instant) -> i64 {
    o.on_event_at(c, &fetch(next), at);
    o.on_event_at(c, &delivered(next, next + n - 1, (n as u64) << 10), at);
    next + n
}

/// A consumer fetching `per_sec` new records every second for 120 s while the lookup sees its
/// committed offset move every 5 s (two seconds behind) until `answers_until`; after that, the
/// lookup answers `after` (`None`: not at all). Returns the next offset it would fetch.
fn healthy_then(
    o: &Observer,
    port: u16,
    per_sec: i64,
    answers_until: u64,
    after: Option<i64>,
) -> i64 {
    let c = meta(1, port);
    o.on_open(&c);
    o.on_event(&c, &request("svc", 1));
    let t0 = Instant::now();
    o.tick(t0);
    let mut next = 0;
    for s in 1..=120u64 {
        let at = t0 + Duration::from_secs(s);
        next = fetch_new(o, &c, (next, per_sec), at);
        if s % 5 == 0 {
            if s <= answers_until {
                o.looked_up(view(at, next - 2 * per_sec));
            } else if let Some(offset) = after {
                o.looked_up(view(at, offset));
            }
        }
        o.tick(at);
    }
    next
}

#[test]
fn a_lookup_that_stops_answering_is_not_a_group_that_stopped_committing() {
    // The lookup's broker slows down or its coordinator moves: no answer for 90 s, while the
    // consumer goes on fetching new records (and committing them, where this sidecar does not
    // see it). What this sidecar knows of the commits stops at the last answer.
    let o = Observer::new(DetectConfig::default());
    healthy_then(&o, 32_004, 100, 30, None);
    let f = o.findings_json();
    assert!(f["active"].as_array().unwrap().is_empty(), "{f:#}");
}

#[test]
fn a_commit_the_lookup_keeps_finding_in_place_is_named() {
    // The control: the lookup goes on answering, and the offset it finds stopped moving.
    let o = Observer::new(DetectConfig::default());
    healthy_then(&o, 32_005, 100, 30, Some(2_800));
    let nc = super::active(&o, "fetch_without_commit");
    assert_eq!(
        nc["evidence"]["partitions"][0]["committed_source"], "group lookup",
        "{nc:#}"
    );
    assert_eq!(nc["evidence"]["partitions"][0]["committed_offset"], 2_800);
}

/// A consumer fetching 100 new records a second for 120 s whose commits this sidecar sees
/// every 5 s (two seconds behind) until its group's coordinator moves to another broker at
/// 30 s; from then on its commits go through another sidecar. The lookup says, every 5 s,
/// that the coordinator is elsewhere, and either finds the offset last seen here in place
/// (`keeps_finding`: the group stopped committing) or cannot fetch the offsets (the new
/// coordinator still loading them).
fn coordinator_moves(o: &Observer, port: u16, keeps_finding: bool) {
    let c = meta(1, port);
    o.on_open(&c);
    o.on_event(&c, &request("svc", 1));
    let t0 = Instant::now();
    o.tick(t0);
    let (per_sec, mut next, mut last_commit) = (100, 0, 0);
    for s in 1..=120u64 {
        let at = t0 + Duration::from_secs(s);
        next = fetch_new(o, &c, (next, per_sec), at);
        if s % 5 == 0 && s <= 30 {
            last_commit = next - 2 * per_sec;
            for e in super::commit("blind", last_commit) {
                o.on_event_at(&c, &e, at);
            }
        } else if s % 5 == 0 {
            let mut moved = view(at, last_commit);
            assert!(!moved.groups[0].coordinator.fronted);
            if !keeps_finding {
                moved.groups[0].committed = None;
            }
            o.looked_up(moved);
        }
        o.tick(at);
    }
}

#[test]
fn commits_seen_here_before_the_coordinator_moved_are_not_watched_after() {
    let o = Observer::new(DetectConfig::default());
    coordinator_moves(&o, 32_006, false);
    let f = o.findings_json();
    assert!(f["active"].as_array().unwrap().is_empty(), "{f:#}");
}

#[test]
fn a_commit_seen_here_that_the_lookup_keeps_finding_after_the_move_is_named() {
    // The control: the lookup goes on finding the offset last seen here.
    let o = Observer::new(DetectConfig::default());
    coordinator_moves(&o, 32_007, true);
    let nc = super::active(&o, "fetch_without_commit");
    let part = &nc["evidence"]["partitions"][0];
    assert_eq!(part["committed_source"], "coordinator traffic", "{nc:#}");
    assert_eq!(part["committed_offset"], 2_800, "{nc:#}");
}
