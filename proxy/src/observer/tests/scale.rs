//! A tick over many client keys ([`Workload`] traffic) shares what it finds instead of copying
//! it: a group found from a `client.id` is the model's own name, not a new string per fetch
//! track each tick.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::super::config::DetectConfig;
use super::super::state::State;
use super::super::workload::{Scale, Workload};

const SMALL: Scale = Scale {
    clients: 200,
    groups: 20,
    partitions_per_topic: 10,
};

/// The fetch tracks whose group is the model's own name (the same allocation), and all tracks.
fn shared_group_names(state: &State) -> (usize, usize) {
    let m = state.model();
    let shared = m
        .fetches
        .values()
        .filter(|t| {
            t.group.as_ref().is_some_and(|(g, _)| {
                m.groups
                    .get_key_value(&**g)
                    .is_some_and(|(name, _)| Arc::ptr_eq(name, g))
            })
        })
        .count();
    (shared, m.fetches.len())
}

/// Where each fetch track's group name lives.
fn group_ptrs(state: &State) -> Vec<*const u8> {
    let tracks = state.model().fetches.values();
    tracks
        .map(|t| {
            t.group
                .as_ref()
                .map_or(std::ptr::null(), |(g, _)| g.as_ptr())
        })
        .collect()
}

#[test]
fn a_tick_gives_tracks_the_model_s_group_names_and_keeps_them() {
    let mut state = State::new(DetectConfig::default());
    let t0 = Instant::now();
    let mut work = Workload::open(&mut state, SMALL, t0);
    work.round(&mut state, t0, Duration::from_secs(1));
    state.tick(t0 + Duration::from_secs(1));
    let (shared, tracks) = shared_group_names(&state);
    assert_eq!(tracks, SMALL.clients);
    assert_eq!(
        shared, tracks,
        "every track's group should be the model's name"
    );
    let before = group_ptrs(&state);
    // Nothing happened: the tick leaves every track's group as it was.
    state.tick(t0 + Duration::from_secs(2));
    let after = group_ptrs(&state);
    assert_eq!(before, after);
}
