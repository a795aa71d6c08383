//! The group index the model keeps from build to build: it is built again at the tick after
//! each change it reads (a group coming or going, a client key tied to a group, a member's
//! assignment, a member leaving or expiring, the lookup's answer) and only then, and every fetch track
//! then has the group an index built afresh gives it.

use std::time::{Duration, Instant};

use sluice_protocol::event::TopicRef;
use sluice_protocol::TapEvent;

use super::super::config::DetectConfig;
use super::super::model::Attribution;
use super::super::state::State;
use super::{commit, delivered, fetch, joined, meta, request};
use crate::sink::ConnMeta;

struct Ticks {
    state: State,
    at: Instant,
}

impl Ticks {
    /// Events of `conn` one second after the last tick.
    fn events(&mut self, conn: &ConnMeta, events: Vec<TapEvent>) {
        let at = self.at + Duration::from_millis(500);
        let timed: Vec<_> = events.into_iter().map(|e| (e, at)).collect();
        self.state.events(conn, &timed);
    }

    /// A tick `after` the last; whether it built the index again. Every track has the group
    /// an index built afresh gives it.
    fn tick(&mut self, after: Duration, step: &str) -> bool {
        let before = self.state.model().index.generation();
        self.at += after;
        self.state.detect(self.at);
        if let Some(track) = self.state.misattributed() {
            panic!("after {step}, {track}");
        }
        self.state.model().index.generation() != before
    }

    /// The group of the fetch track of `client_id` (orders-0).
    fn group_of(&self, client_id: &str) -> Option<(String, Attribution)> {
        let (_, t) = self
            .state
            .model()
            .fetches
            .iter()
            .find(|((key, _, _), _)| &*key.1 == client_id)?;
        t.group.as_ref().map(|(g, how)| (g.to_string(), *how))
    }
}

fn group(name: &str, how: Attribution) -> Option<(String, Attribution)> {
    Some((name.to_owned(), how))
}

#[test]
fn the_kept_group_index_is_built_again_after_each_change_it_reads_and_only_then() {
    let second = Duration::from_secs(1);
    let mut t = Ticks {
        state: State::new(DetectConfig::default()),
        at: Instant::now(),
    };
    let (svc, other, committer) = (meta(1, 41_000), meta(2, 41_001), meta(3, 41_002));
    for c in [&svc, &other, &committer] {
        t.state.open(c, t.at);
    }
    // Two groups, made by a third client's commits; two clients fetching orders-0 with no
    // group known.
    let mut events = vec![request("committer", 8)];
    events.extend(commit("blind", 5));
    events.extend(commit("b", 5));
    t.events(&committer, events);
    t.events(
        &svc,
        vec![request("svc", 1), fetch(0), delivered(0, 9, 1000)],
    );
    t.events(
        &other,
        vec![request("other", 1), fetch(0), delivered(0, 9, 1000)],
    );
    assert!(t.tick(second, "groups coming"));
    assert_eq!(t.group_of("svc"), None);
    t.events(&svc, vec![fetch(10), delivered(10, 19, 1000)]);
    assert!(!t.tick(second, "fetches only"), "nothing it reads changed");

    // The lookup describes a member of group `blind` with client.id svc assigned orders-0.
    t.state.looked_up(&super::lookup::view(t.at, 5));
    assert!(t.tick(second, "the lookup's answer"));
    assert_eq!(t.group_of("svc"), group("blind", Attribution::Lookup));

    // The other client's own coordinator traffic ties it to group b, which exists.
    let mut events = vec![request("other", 8)];
    events.extend(commit("b", 5));
    t.events(&other, events);
    assert!(t.tick(second, "a client key tied to a group"));
    assert_eq!(t.group_of("other"), group("b", Attribution::Coordinator));
    let mut events = vec![request("other", 8)];
    events.extend(commit("b", 15));
    t.events(&other, events);
    assert!(
        !t.tick(second, "another commit"),
        "nothing it reads changed"
    );

    // It joins group blind too (two groups: its key names none), then is assigned orders-0
    // there: its track moves to blind.
    let member = "other-m";
    t.events(&other, joined("blind", member));
    assert!(t.tick(second, "a member joining"));
    assert_eq!(t.group_of("other"), group("b", Attribution::Coordinator));
    t.events(
        &other,
        vec![
            TapEvent::SyncGroup {
                group_id: "blind".into(),
                generation_id: 1,
                member_id: member.into(),
            },
            TapEvent::SyncGroupResponse {
                error_code: 0,
                assignment: Some(vec![(TopicRef::named("orders"), vec![0])]),
            },
        ],
    );
    assert!(t.tick(second, "an assignment"));
    assert_eq!(
        t.group_of("other"),
        group("blind", Attribution::Coordinator)
    );

    // The member leaves; then a new one is assigned again and expires unseen.
    t.events(
        &other,
        vec![TapEvent::LeaveGroup {
            group_id: "blind".into(),
            member_ids: vec![member.into()],
        }],
    );
    assert!(t.tick(second, "a member leaving"));
    assert!(
        !t.tick(second, "a quiet second"),
        "nothing it reads changed"
    );
    let expiry = DetectConfig::default().member_expiry;
    assert!(t.tick(expiry, "members and client keys expiring"));
    let idle = DetectConfig::default().idle_eviction;
    assert!(t.tick(idle, "idle groups evicted"));
    assert!(t.state.model().groups.is_empty());
}
