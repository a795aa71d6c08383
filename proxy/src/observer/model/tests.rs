//! The model: the group index against a walk over every group, caps, expiry.

use std::net::{IpAddr, SocketAddr};

use super::*;

#[test]
fn the_group_index_answers_as_group_for_does() {
    use rand::{Rng, SeedableRng};
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let hosts: Vec<IpAddr> = (1..4).map(|i| IpAddr::from([10, 0, 0, i])).collect();
    let ids = ["consumer-a-1", "consumer-b-2", "svc", ""];
    let topics: Vec<Arc<str>> = ["t1", "t2"].iter().map(|t| Arc::from(*t)).collect();
    let keys: Vec<ClientKey> = hosts
        .iter()
        .flat_map(|h| ids.iter().map(move |i| (*h, Arc::from(*i))))
        .collect();
    for _ in 0..200 {
        let mut m = Model::default();
        let t0 = Instant::now();
        for (i, g) in ["a", "b", "c"].into_iter().enumerate() {
            if rng.gen_bool(0.2) {
                continue;
            }
            // Distinct times: on a tie the two answers may pick different groups.
            let at = t0 + Duration::from_millis(rng.gen_range(0..100) * 3 + i as u64);
            let grp = m.group(g, at, 100).unwrap();
            for n in 0..rng.gen_range(0..4) {
                let k = keys[rng.gen_range(0..keys.len())].clone();
                let parts = vec![(
                    topics[rng.gen_range(0..2)].clone(),
                    vec![rng.gen_range(0..3)],
                )];
                grp.members.insert(
                    format!("m{n}"),
                    Member {
                        client: k.clone(),
                        assigned: parts,
                        seen: at,
                    },
                );
                if rng.gen_bool(0.7) {
                    grp.clients.insert(k, (Attribution::Coordinator, at));
                }
            }
        }
        let index = m.group_index();
        for k in &keys {
            for t in &topics {
                for p in 0..3 {
                    assert_eq!(
                        index.group_for(k, t, p),
                        m.group_for(k, t, p),
                        "{k:?} {t} {p}"
                    );
                }
            }
        }
    }
}

#[test]
fn capped_maps_keep_their_entries_and_count_refusals() {
    let mut m = Model::default();
    let now = Instant::now();
    let key: ClientKey = (IpAddr::from([10, 0, 0, 1]), Arc::from("svc"));
    for t in ["a", "b"] {
        m.topic(Arc::from(t), now, 2).unwrap().bytes_out += 1;
    }
    assert!(m.topic(Arc::from("c"), now, 2).is_none());
    m.topic(Arc::from("a"), now, 2).unwrap().bytes_out += 1;
    assert_eq!(m.topics[&Arc::from("a")].bytes_out, 2);
    assert!(m.client(&key, now, 1).is_some());
    let other: ClientKey = (IpAddr::from([10, 0, 0, 2]), Arc::from("svc"));
    assert!(m.client(&other, now, 1).is_none());
    assert_eq!(m.clients.len(), 1);
    assert_eq!(m.refused, 2, "one topic and one client refused");
}

#[test]
fn topic_groups_follow_the_window_and_idle_topics_go() {
    let (window, idle) = (Duration::from_secs(30), Duration::from_secs(600));
    let mut m = Model::default();
    let t0 = Instant::now();
    let key: ClientKey = (IpAddr::from([10, 0, 0, 1]), Arc::from("consumer-reports-1"));
    let addr = SocketAddr::from(([10, 0, 0, 1], 40_000));
    let orders: Arc<str> = Arc::from("orders");
    m.attribute(&key, "reports", Attribution::Coordinator, t0, 10);
    m.on_fetch_offset(&key, addr, (orders.clone(), 0), 0, t0, 10);
    m.topic(orders.clone(), t0, 10);
    let expiry = Expiry {
        window,
        rebalance_window: window,
        idle,
        member: idle,
    };
    let pass = m.tick(t0, expiry);
    m.refresh_topic_groups(t0, window);
    assert!(m.topics[&orders].groups.contains("reports"));
    assert!(pass.groups.contains("reports") && pass.ungrouped.is_empty());
    // The group stopped fetching: after a window it no longer reads the topic.
    let pass = m.tick(t0 + 2 * window, expiry);
    m.refresh_topic_groups(t0 + 2 * window, window);
    assert!(m.topics[&orders].groups.is_empty());
    assert!(pass.groups.is_empty());
    // Nothing produced or fetched for longer than `idle`: the topic goes, and is counted.
    let evicted = m.evicted;
    m.tick(t0 + idle + window, expiry);
    assert!(m.topics.is_empty());
    assert!(m.evicted > evicted);
}

#[test]
fn a_topic_is_one_allocation_in_every_key_whatever_connection_named_it() {
    use crate::observer::config::DetectConfig;
    use crate::observer::state::State;
    use crate::observer::tests::{commit, delivered, fetch, meta, request};
    use sluice_protocol::TapEvent;
    // Each connection names the topic with an `Arc` of its own, as each connection's tap does.
    let mut s = State::new(DetectConfig::default());
    let t0 = Instant::now();
    for (id, client) in [(1, "consumer-billing-1"), (2, "consumer-billing-2")] {
        let c = meta(id, 40_000 + id as u16);
        let mut events = vec![request(client, 1), fetch(0), delivered(0, 9, 1000)];
        // The second connection commits: the committed offset is new then, named by a
        // connection that did not name the topic first.
        if id == 2 {
            events.extend(commit("billing", 10));
        }
        let name: Arc<str> = Arc::from("orders");
        for e in &mut events {
            let topics: Vec<_> = match e {
                TapEvent::FetchRequest(f) => {
                    f.partitions.iter_mut().map(|p| &mut p.topic).collect()
                }
                TapEvent::FetchPartition(p) => vec![&mut p.topic],
                TapEvent::OffsetCommit { offsets, .. } => {
                    offsets.iter_mut().map(|o| &mut o.topic).collect()
                }
                _ => vec![],
            };
            for t in topics {
                t.name = Some(name.clone());
            }
        }
        let at = |i| t0 + Duration::from_millis(i);
        let events: Vec<_> = events
            .into_iter()
            .zip(0..)
            .map(|(e, i)| (e, at(i)))
            .collect();
        s.open(&c, t0);
        s.events(&c, &events);
    }
    let m = s.model();
    let (known, _) = m.topics.get_key_value("orders").expect("topic known");
    assert_eq!(m.fetches.len(), 2);
    for (_, topic, _) in m.fetches.keys() {
        assert!(
            Arc::ptr_eq(topic, known),
            "a track's topic is the topics map's"
        );
    }
    let committed = &m.groups["billing"].committed;
    assert_eq!(committed.len(), 1);
    for (topic, _) in committed.keys() {
        assert!(
            Arc::ptr_eq(topic, known),
            "a committed offset's topic is the topics map's"
        );
    }
    // The group lookup names the topic with a `String` of its own: the committed offset it
    // teaches holds the topics map's name too.
    let known = known.clone();
    s.looked_up(&crate::observer::tests::lookup::view(t0, 7));
    let committed = &s.model().groups["blind"].committed;
    assert_eq!(committed.len(), 1);
    for (topic, _) in committed.keys() {
        assert!(
            Arc::ptr_eq(topic, &known),
            "a looked-up committed offset's topic is the topics map's"
        );
    }
}
