//! The tables a tick keeps from the tick before (see [`super::super::rows`]) are the tables
//! it would build afresh, after every kind of change an entry goes through; and a row or
//! table whose entries did not change is shared, not built again.

use std::sync::Arc;
use std::time::{Duration, Instant};

use sluice_protocol::event::{ClientSoftware, SaslInfo, TopicRef};
use sluice_protocol::TapEvent;

use super::super::config::DetectConfig;
use super::super::state::{Published, State};
use super::super::workload::{Scale, Workload};
use super::{commit, delivered, fetch, join, meta, request};

const SMALL: Scale = Scale {
    clients: 40,
    groups: 4,
    partitions_per_topic: 10,
};

/// Ticks at `at`, every `every`th tick building the tables: the labels published at every
/// tick, and the tables when built, are the ones built afresh.
struct Ticks {
    every: u32,
    n: u32,
}

impl Ticks {
    fn matches(&mut self, state: &mut State, at: Instant, step: &str) -> Published {
        self.n += 1;
        let mut p = state.detect(at);
        if let Some(track) = state.misattributed() {
            panic!("after {step}, {track}");
        }
        let build = self.n % self.every == 0;
        if build {
            let tables = state.tables(at);
            p.snapshot = p.snapshot.with_tables(tables, at);
        }
        let afresh = state.tables_afresh();
        assert_eq!(
            *p.snapshot.labels,
            afresh.conns.labels(),
            "labels after {step}"
        );
        if build {
            let kept = p.snapshot.tables();
            if let Some(table) = kept.differs(&afresh) {
                panic!("{table} after {step}: kept {kept:#?}\nafresh {afresh:#?}");
            }
        }
        p
    }
}

#[test]
fn kept_rows_are_the_rows_built_afresh_after_every_kind_of_change() {
    changes(1);
}

#[test]
fn tables_built_after_ticks_without_a_reader_are_the_tables_built_afresh() {
    changes(2);
    changes(3);
}

/// Every kind of change, ticking every second and building the tables every `every`th tick.
fn changes(every: u32) {
    let mut ticks = Ticks { every, n: 0 };
    let mut tick_matches =
        |state: &mut State, at: Instant, step: &str| ticks.matches(state, at, step);
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
    events = super::joined("audit", member);
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
    let leave = TapEvent::LeaveGroup {
        group_id: "audit".into(),
        member_ids: vec![member.into()],
    };
    state.events(&d, &[(leave, now)]);
    tick_matches(&mut state, now + s, "the member leaving");
    let now = now + s;

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
    if every == 1 {
        quiet_ticks_share_every_table(&before, &after);
    }

    // The opens fall out of the window; then everything idle is evicted.
    let later = now + 4 * s + window + s;
    tick_matches(&mut state, later, "the window passing");
    work.some(&mut state, [5], later);
    tick_matches(&mut state, later + idle, "idle keys evicted");
    // The tables are built at last.
    let at = later + idle + s;
    let p = state.tick(at);
    let afresh = state.tables_afresh();
    assert_eq!(p.snapshot.tables().differs(&afresh), None, "at the end");
}

fn quiet_ticks_share_every_table(before: &Published, after: &Published) {
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
}
