//! The tables a tick keeps from the tick before (see [`super::super::rows`]) are the tables
//! it would build afresh, after every kind of change an entry goes through; and a row or
//! table whose entries did not change is shared, not built again.

use std::sync::Arc;
use std::time::{Duration, Instant};

use sluice_protocol::event::{ClientSoftware, SaslInfo, TopicRef};
use sluice_protocol::TapEvent;

use super::super::config::DetectConfig;
use super::super::state::State;
use super::super::workload::{Scale, Workload};
use super::{commit, delivered, fetch, join, meta, request};

const SMALL: Scale = Scale {
    clients: 40,
    groups: 4,
    partitions_per_topic: 10,
};

/// Ticks at `at` and checks that every published table is the one built afresh.
fn tick_matches(state: &mut State, at: Instant, step: &str) -> super::super::state::Published {
    let p = state.tick(at);
    let afresh = state.tables_afresh();
    let kept = p.snapshot.tables();
    if let Some(table) = kept.differs(&afresh) {
        panic!("{table} after {step}: kept {kept:#?}\nafresh {afresh:#?}");
    }
    p
}

#[test]
fn kept_rows_are_the_rows_built_afresh_after_every_kind_of_change() {
    let cfg = DetectConfig::default();
    let (window, idle) = (cfg.window, cfg.idle_eviction);
    let mut state = State::new(cfg);
    let t0 = Instant::now();
    let s = Duration::from_secs(1);
    let mut work = Workload::open(&mut state, SMALL, t0);
    work.round(&mut state, t0, s);
    tick_matches(&mut state, t0 + s, "the first round");
    work.some(&mut state, [1, 2, 3], t0 + s);
    tick_matches(&mut state, t0 + 2 * s, "three keys fetching");

    // A connection of its own: identified, software, a principal, fetching, committing.
    let now = t0 + 3 * s;
    let c = meta(900, 41_000);
    state.open(&c, now);
    let mut events = vec![
        request("billing-7", 18),
        TapEvent::ClientSoftware(ClientSoftware {
            name: "librdkafka".into(),
            version: "2.3.0".into(),
        }),
        TapEvent::Sasl(SaslInfo::Mechanism("PLAIN".into())),
        TapEvent::Sasl(SaslInfo::Principal("billing".into())),
        TapEvent::Sasl(SaslInfo::Outcome {
            error_code: 0,
            error_message: None,
            done: true,
        }),
        request("billing-7", 1),
        fetch(0),
        delivered(0, 9, 1000),
        join("billing"),
    ];
    events.extend(commit("billing", 10));
    let timed: Vec<_> = events.into_iter().map(|e| (e, now)).collect();
    state.events(&c, &timed);
    tick_matches(&mut state, now + s, "a new connection's whole start");

    // Its client.id changes mid-stream: the open connection moves to the new key.
    let now = now + 2 * s;
    state.events(&c, &[(request("billing-8", 1), now)]);
    tick_matches(&mut state, now + s, "a client.id change");

    // Another client, first shown under its Java default client.id's group; then its own
    // coordinator traffic names a second group (two groups: none from the client.id), which
    // assigns it the partition it fetches (the track's group, then the key's, move).
    let now = now + s;
    let d = meta(901, 41_001);
    let mut events = vec![
        request("consumer-reports-1", 1),
        fetch(0),
        delivered(0, 9, 1000),
    ];
    state.events(&d, &events.drain(..).map(|e| (e, now)).collect::<Vec<_>>());
    tick_matches(&mut state, now + s, "a Java default client.id");
    let member = "consumer-reports-1-m";
    events = vec![
        join("audit"),
        TapEvent::JoinGroupResponse {
            error_code: 0,
            generation_id: 1,
            protocol_name: None,
            leader: member.into(),
            member_id: member.into(),
        },
    ];
    state.events(
        &d,
        &events.drain(..).map(|e| (e, now + s)).collect::<Vec<_>>(),
    );
    tick_matches(&mut state, now + 2 * s, "a second group named");
    events = vec![
        TapEvent::SyncGroup {
            group_id: "audit".into(),
            generation_id: 1,
            member_id: member.into(),
        },
        TapEvent::SyncGroupResponse {
            error_code: 0,
            assignment: Some(vec![(TopicRef::named("orders"), vec![0])]),
        },
    ];
    state.events(
        &d,
        &events
            .drain(..)
            .map(|e| (e, now + 2 * s))
            .collect::<Vec<_>>(),
    );
    tick_matches(&mut state, now + 3 * s, "an assignment");
    let now = now + 3 * s;

    // A client whose traffic names no group, until the group lookup describes it: the
    // track's group moves at the tick, with no event of its own.
    let e = meta(902, 41_002);
    let events = [request("svc", 1), fetch(0), delivered(0, 9, 1000)];
    state.events(&e, &events.map(|ev| (ev, now)));
    tick_matches(&mut state, now + s, "a client with no group");
    state.looked_up(&super::lookup::view(now + s, 5));
    tick_matches(&mut state, now + 2 * s, "the lookup naming its group");
    let now = now + 2 * s;

    // It closes: its counts move to its key.
    state.close(&c, now + s);
    tick_matches(&mut state, now + 2 * s, "a close");

    // Nothing happens: every row is shared with the snapshot before.
    let before = tick_matches(&mut state, now + 3 * s, "a quiet tick");
    let after = tick_matches(&mut state, now + 4 * s, "another quiet tick");
    assert_eq!(before.snapshot.clients.len(), after.snapshot.clients.len());
    assert!(
        Arc::ptr_eq(&before.snapshot.clients, &after.snapshot.clients),
        "a quiet tick builds no client row"
    );
    assert!(Arc::ptr_eq(&before.snapshot.conns, &after.snapshot.conns));
    assert!(Arc::ptr_eq(
        &before.snapshot.fetches,
        &after.snapshot.fetches
    ));
    assert!(Arc::ptr_eq(&before.snapshot.groups, &after.snapshot.groups));
    assert!(Arc::ptr_eq(&before.snapshot.topics, &after.snapshot.topics));

    // The opens fall out of the window; then everything idle is evicted.
    let later = now + 4 * s + window + s;
    tick_matches(&mut state, later, "the window passing");
    work.some(&mut state, [5], later);
    tick_matches(&mut state, later + idle, "idle keys evicted");
}
