//! The lookup against scripted brokers: coordinators on another broker, the fronted broker
//! learned from the listings, old brokers, hostile and silent answers, the round loop.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::messages::ApiKey;

use super::mock::{all_versions, Action, MockBroker, Seen};
use super::script::{answer, broker, decode, node2, settings, two_brokers};
use super::*;

#[tokio::test]
async fn follows_coordinators_and_keeps_its_connections() {
    let adv1 = "127.0.0.1:1"; // the fronted broker's advertised address: never dialled
    let b = node2(adv1).await;
    let brokers = vec![(1, adv1.to_owned()), (2, b.addr.to_string())];
    let a = MockBroker::start(all_versions(), broker(1, brokers)).await;
    let listen = adv1.parse().ok();
    let mut lookup = GroupLookup::new(
        &settings(Duration::from_secs(5)),
        a.addr.to_string(),
        listen,
    );

    // A client of g-b fetches here: a sweep describes every group and finds it.
    let svc_b = ClientInterest {
        host: [10, 9, 9, 9].into(),
        client_id: "svc-b".to_owned(),
        partitions: vec![("t".to_owned(), 2)],
    };
    let interest = Interest {
        groups: Default::default(),
        topic_ids: Default::default(),
        clients: vec![svc_b.clone()],
    };
    let view = lookup.round(&interest).await;
    assert!(view.issues.is_empty(), "{:?}", view.issues);
    assert!(view.round.swept);
    assert_eq!(view.brokers.len(), 2);
    assert!(view.brokers[0].fronted && !view.brokers[1].fronted);
    let ga = view.group("g-a").unwrap();
    assert_eq!(ga.protocol, GroupProtocol::Classic);
    assert_eq!(ga.coordinator.addr, a.addr.to_string());
    assert!(ga.coordinator.fronted);
    assert_eq!(ga.coordinator.node_id, Some(1));
    let m = &ga.members.as_ref().unwrap().members[0];
    assert_eq!(
        (m.client_id.as_str(), m.client_host),
        ("svc-a", Some([10, 0, 0, 1].into()))
    );
    assert_eq!(m.assignment, [("t".to_owned(), vec![0, 1])]);
    assert_eq!(ga.committed, None, "not wanted");
    let gb = view.group("g-b").unwrap();
    assert_eq!(gb.protocol, GroupProtocol::Consumer);
    assert_eq!(gb.coordinator.addr, b.addr.to_string());
    assert_eq!(gb.coordinator.node_id, Some(2));
    let committed = &gb.committed.as_ref().unwrap().offsets;
    assert_eq!(committed, &BTreeMap::from([(("t".to_owned(), 2), 22)]));
    let found: Vec<&str> = view
        .groups_of(&svc_b)
        .iter()
        .map(|g| g.group_id.as_str())
        .collect();
    assert_eq!(found, ["g-b"]);
    assert_eq!(view.round.connects, 2);

    // The observer now knows g-a and g-b by name and asks for no client: no sweep.
    let interest = Interest {
        groups: ["g-a".to_owned(), "g-b".to_owned()].into(),
        topic_ids: Default::default(),
        clients: Vec::new(),
    };
    let before = b.seen(ApiKey::ConsumerGroupDescribe).len();
    for _ in 0..2 {
        let view = lookup.round(&interest).await;
        assert!(view.issues.is_empty(), "{:?}", view.issues);
        assert!(!view.round.swept);
        assert!(!view.round.listed, "nothing calls for the listings");
        assert_eq!(view.round.connects, 0, "connections are kept");
        let committed = &view
            .group("g-a")
            .unwrap()
            .committed
            .as_ref()
            .unwrap()
            .offsets;
        assert_eq!(committed.len(), 2);
    }
    assert_eq!(b.seen(ApiKey::ConsumerGroupDescribe).len(), before + 2);
    assert_eq!(a.seen(ApiKey::ListGroups).len(), 1);
    assert_eq!(b.seen(ApiKey::ListGroups).len(), 1);
    // The listings come back every sixth round.
    let mut listed = Vec::new();
    for _ in 0..6 {
        listed.push(lookup.round(&interest).await.round.listed);
    }
    assert_eq!(listed.iter().filter(|l| **l).count(), 1, "{listed:?}");
    assert_eq!((a.connections(), b.connections()), (1, 1));
    for broker in [&a, &b] {
        let seen = broker.seen.lock().unwrap();
        assert!(seen
            .iter()
            .all(|s| s.client_id.as_deref() == Some(LOOKUP_CLIENT_ID)));
    }
}

#[tokio::test]
async fn learns_the_fronted_broker_from_the_listings() {
    // Node 1 is also reachable at its advertised address (its sidecar), answering the same.
    let b = node2("placeholder:1").await;
    let own = MockBroker::start(all_versions(), broker(1, Vec::new())).await;
    let brokers = vec![(1, own.addr.to_string()), (2, b.addr.to_string())];
    let a = MockBroker::start(all_versions(), broker(1, brokers)).await;
    let mut lookup = GroupLookup::new(&settings(Duration::from_secs(5)), a.addr.to_string(), None);
    let interest = Interest {
        groups: ["g-a".to_owned()].into(),
        topic_ids: Default::default(),
        clients: Vec::new(),
    };
    let view = lookup.round(&interest).await;
    assert!(view.issues.is_empty(), "{:?}", view.issues);
    assert_eq!(
        own.seen(ApiKey::ListGroups).len(),
        1,
        "asked once, before it was known"
    );
    assert!(view.brokers[0].fronted);
    let ga = view.group("g-a").unwrap();
    assert_eq!(ga.coordinator.node_id, Some(1));
    assert!(ga.coordinator.fronted);
    lookup.round(&interest).await;
    assert_eq!(own.seen(ApiKey::ListGroups).len(), 1, "then never again");
    assert!(own.seen(ApiKey::DescribeGroups).is_empty());
}

#[tokio::test]
async fn old_brokers_get_one_group_per_request_and_unlisted_groups_are_found() {
    let mut old = all_versions();
    old.insert(ApiKey::OffsetFetch as i16, (1, 7));
    old.insert(ApiKey::FindCoordinator as i16, (0, 3));
    old.insert(ApiKey::ListGroups as i16, (0, 2));
    let adv1 = "127.0.0.1:1";
    let a = MockBroker::start(old, broker(1, vec![(1, adv1.to_owned())])).await;
    let mut lookup = GroupLookup::new(&settings(Duration::from_secs(5)), a.addr.to_string(), None);
    let interest = Interest {
        groups: ["g-a".to_owned(), "g-x".to_owned(), "g-gone".to_owned()].into(),
        topic_ids: Default::default(),
        clients: Vec::new(),
    };
    let view = lookup.round(&interest).await;
    assert!(view.issues.is_empty(), "{:?}", view.issues);
    let fetches = a.seen(ApiKey::OffsetFetch);
    assert_eq!(fetches.len(), 3, "one group per OffsetFetch v7");
    assert!(fetches.iter().all(|s| s.version == 7));
    let finds = a.seen(ApiKey::FindCoordinator);
    assert_eq!(finds.len(), 2, "g-x and g-gone, one per FindCoordinator v3");
    let gx = view.group("g-x").unwrap();
    assert_eq!(gx.protocol, GroupProtocol::Unknown);
    assert_eq!(gx.listed_at, None);
    assert_eq!(gx.committed.as_ref().unwrap().offsets.len(), 1);
    assert!(
        view.group("g-gone").is_none(),
        "committed nothing: not a group"
    );
    assert_eq!(
        view.group("g-a")
            .unwrap()
            .committed
            .as_ref()
            .unwrap()
            .offsets
            .len(),
        2
    );
}

#[tokio::test]
async fn hostile_answers_cost_a_counter_not_the_round() {
    let adv1 = "127.0.0.1:1";
    let calls = Arc::new(AtomicU32::new(0));
    let c = calls.clone();
    let hostile = move |s: &Seen| -> Action {
        if s.api == ApiKey::ListGroups {
            match c.fetch_add(1, Ordering::SeqCst) {
                // A whole frame whose body is not a ListGroups response.
                0 => Action::Body(Bytes::from_static(&[0, 0, 0x7f, 0xff, 0xff, 0xff])),
                // A frame that declares 2 GiB.
                1 => Action::Raw(Bytes::from_static(&[0x7f, 0xff, 0xff, 0xff, 0, 0])),
                // Another request's correlation id.
                2 => Action::Raw(Bytes::from_static(&[0, 0, 0, 6, 0, 0, 0x12, 0x34, 0, 0])),
                _ => Action::Close,
            }
        } else {
            answer(s, 2, &[], &[])
        }
    };
    let (a, b) = two_brokers(adv1, hostile).await;
    let listen = adv1.parse().ok();
    // No back-off between rounds here (it is a multiple of the interval).
    let mut s = settings(Duration::from_secs(5));
    s.interval = Duration::ZERO;
    let mut lookup = GroupLookup::new(&s, a.addr.to_string(), listen);
    let interest = Interest {
        groups: ["g-a".to_owned()].into(),
        topic_ids: Default::default(),
        clients: Vec::new(),
    };
    let mut kinds = Vec::new();
    for _ in 0..4 {
        let view = lookup.round(&interest).await;
        assert_eq!(view.issues.len(), 1, "{:?}", view.issues);
        assert_eq!(view.issues[0].broker, b.addr.to_string());
        let ga = view.group("g-a").unwrap();
        assert!(
            ga.members.is_some() && ga.committed.is_some(),
            "the round went on"
        );
        kinds = view.totals.errors.keys().copied().collect();
    }
    assert_eq!(kinds, ["correlation", "frame_size", "io", "malformed"]);
    // Malformed keeps the connection; the others break it, and the next round reconnects.
    assert_eq!(b.connections(), 3);
}

#[tokio::test]
async fn a_silent_broker_times_out_then_backs_off() {
    let adv1 = "127.0.0.1:1";
    let silent = |s: &Seen| -> Action {
        if s.api == ApiKey::ListGroups {
            Action::Hang
        } else {
            answer(s, 2, &[], &[])
        }
    };
    let (a, b) = two_brokers(adv1, silent).await;
    let timeout = Duration::from_millis(300);
    let listen = adv1.parse().ok();
    let mut lookup = GroupLookup::new(&settings(timeout), a.addr.to_string(), listen);
    let interest = Interest::default();
    for round in 1..=3 {
        let view = lookup.round(&interest).await;
        let kind = if round < 3 { "timeout" } else { "backing_off" };
        assert_eq!(view.issues.len(), 1, "round {round}: {:?}", view.issues);
        assert_eq!(
            view.issues[0].kind, kind,
            "round {round}: {:?}",
            view.issues
        );
        if round < 3 {
            assert!(view.round.took >= timeout);
        } else {
            assert!(view.round.took < timeout, "skipped without waiting");
        }
        assert!(view.group("g-a").is_some());
    }
    assert_eq!(b.connections(), 2);
}

#[tokio::test]
async fn api_versions_falls_back_to_what_the_broker_knows() {
    let mut old = all_versions();
    old.insert(ApiKey::ApiVersions as i16, (0, 2));
    let a = MockBroker::start(old, broker(1, vec![(1, "127.0.0.1:1".to_owned())])).await;
    let mut lookup = GroupLookup::new(&settings(Duration::from_secs(5)), a.addr.to_string(), None);
    let view = lookup.round(&Interest::default()).await;
    assert!(view.issues.is_empty(), "{:?}", view.issues);
    let versions: Vec<i16> = a
        .seen(ApiKey::ApiVersions)
        .iter()
        .map(|s| s.version)
        .collect();
    assert_eq!(versions, [4, 2]);
    assert!(view.group("g-a").is_some());
}

#[tokio::test]
async fn an_unreachable_bootstrap_is_an_issue_not_a_failure() {
    let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = free.local_addr().unwrap().to_string();
    drop(free);
    let mut lookup = GroupLookup::new(&settings(Duration::from_secs(2)), addr.clone(), None);
    let view = lookup.round(&Interest::default()).await;
    assert_eq!(view.issues.len(), 1);
    assert_eq!(view.issues[0].broker, addr);
    assert_eq!(view.totals.errors.get("connect"), Some(&1));
    assert!(view.groups.is_empty());
}

#[tokio::test]
async fn a_bootstrap_refusing_connections_is_asked_again_every_round() {
    // A sidecar usually starts before its broker listens, and a broker restarts: until it
    // listens, every round tries again instead of backing off for a minute.
    let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = free.local_addr().unwrap().to_string();
    drop(free);
    let mut lookup = GroupLookup::new(&settings(Duration::from_secs(2)), addr, None);
    let mut view = lookup.round(&Interest::default()).await;
    for _ in 0..4 {
        view = lookup.round(&Interest::default()).await;
    }
    assert_eq!(
        view.totals.errors.get("connect"),
        Some(&5),
        "{:?}",
        view.totals
    );
    assert_eq!(
        view.totals.errors.get("backing_off"),
        None,
        "{:?}",
        view.totals
    );
}

#[tokio::test]
async fn run_publishes_every_interval_until_stopped() {
    let a = MockBroker::start(
        all_versions(),
        broker(1, vec![(1, "127.0.0.1:1".to_owned())]),
    )
    .await;
    let mut s = settings(Duration::from_secs(2));
    s.interval = Duration::from_millis(100);
    let lookup = GroupLookup::new(&s, a.addr.to_string(), None);
    let (_tx, interest) = tokio::sync::watch::channel(Interest::default());
    let (views, mut got) = tokio::sync::mpsc::unbounded_channel();
    let (stop_tx, stop) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(lookup.run(
        interest,
        move |v| {
            let _ = views.send(v);
        },
        async move {
            let _ = stop.await;
        },
    ));
    let deadline = Duration::from_secs(10);
    for _ in 0..3 {
        let view = tokio::time::timeout(deadline, got.recv())
            .await
            .unwrap()
            .unwrap();
        assert!(view.group("g-a").is_some());
    }
    stop_tx.send(()).unwrap();
    tokio::time::timeout(deadline, task).await.unwrap().unwrap();
    assert_eq!(a.connections(), 1);
}

#[test]
fn from_config_follows_the_switch_and_the_bootstrap() {
    let mut config = sluice_config::Config::default();
    let lookup = GroupLookup::from_config(&config).unwrap();
    assert_eq!(lookup.rounds.bootstrap, "127.0.0.1:19093", "the upstream");
    assert_eq!(lookup.rounds.listen, Some(config.listen));
    config.lookup.bootstrap = Some(sluice_config::Upstream {
        host: "kafka-1".to_owned(),
        port: 9092,
    });
    assert_eq!(
        GroupLookup::from_config(&config).unwrap().rounds.bootstrap,
        "kafka-1:9092"
    );
    config.lookup.enabled = false;
    assert!(GroupLookup::from_config(&config).is_none());
}

#[tokio::test]
async fn a_new_client_without_a_group_calls_a_round_early() {
    let a = MockBroker::start(
        all_versions(),
        broker(1, vec![(1, "127.0.0.1:1".to_owned())]),
    )
    .await;
    let mut s = settings(Duration::from_secs(2));
    s.interval = Duration::from_secs(60);
    let lookup = GroupLookup::new(&s, a.addr.to_string(), None);
    let (tx, interest) = tokio::sync::watch::channel(Interest::default());
    let (views, mut got) = tokio::sync::mpsc::unbounded_channel();
    let task = tokio::spawn(lookup.run(
        interest,
        move |v| {
            let _ = views.send(v);
        },
        std::future::pending(),
    ));
    let deadline = Duration::from_secs(10);
    let first = tokio::time::timeout(deadline, got.recv())
        .await
        .unwrap()
        .unwrap();
    assert!(first.group("g-a").is_some());
    // The same interest again: nothing before the interval.
    tx.send_modify(|_| {});
    assert!(
        tokio::time::timeout(Duration::from_millis(1500), got.recv())
            .await
            .is_err(),
        "no round without a new client"
    );
    let asked = std::time::Instant::now();
    tx.send_modify(|i| {
        i.clients.push(ClientInterest {
            host: [10, 0, 0, 1].into(),
            client_id: "newcomer".into(),
            partitions: vec![],
        })
    });
    tokio::time::timeout(deadline, got.recv())
        .await
        .unwrap()
        .unwrap();
    assert!(
        asked.elapsed() < Duration::from_secs(5),
        "{:?}",
        asked.elapsed()
    );
    task.abort();
}

#[tokio::test]
async fn topics_seen_only_by_id_are_named_once_per_new_id() {
    let a = MockBroker::start(
        all_versions(),
        broker(1, vec![(1, "127.0.0.1:1".to_owned())]),
    )
    .await;
    let mut lookup = GroupLookup::new(&settings(Duration::from_secs(2)), a.addr.to_string(), None);
    let mut interest = Interest::default();
    interest.topic_ids.insert([0x11; 16]);
    interest.topic_ids.insert([0x22; 16]); // deleted meanwhile: never named
    let view = lookup.round(&interest).await;
    assert_eq!(view.topic_names, [([0x11; 16], "t".to_owned())]);
    let all_topics = |a: &MockBroker| {
        a.seen(ApiKey::Metadata)
            .iter()
            .filter(|s| {
                decode::<kafka_protocol::messages::MetadataRequest>(s)
                    .topics
                    .is_none()
            })
            .count()
    };
    assert_eq!(all_topics(&a), 1);
    // The unnamed id is not asked about again at once; a new one is.
    lookup.round(&interest).await;
    assert_eq!(all_topics(&a), 1);
    interest.topic_ids.insert([0x33; 16]);
    lookup.round(&interest).await;
    assert_eq!(all_topics(&a), 2);
}

#[tokio::test]
async fn a_client_fetching_other_partitions_is_swept_for_again_at_once() {
    let adv1 = "127.0.0.1:1";
    let b = node2(adv1).await;
    let brokers = vec![(1, adv1.to_owned()), (2, b.addr.to_string())];
    let a = MockBroker::start(all_versions(), broker(1, brokers)).await;
    let mut lookup = GroupLookup::new(
        &settings(Duration::from_secs(5)),
        a.addr.to_string(),
        adv1.parse().ok(),
    );
    // At first the client's partitions match no member's assignment (a topic this sidecar
    // could not name yet): sweeps miss and back off.
    let mut client = ClientInterest {
        host: [10, 9, 9, 9].into(),
        client_id: "svc-b".to_owned(),
        partitions: vec![("unnamed".to_owned(), 2)],
    };
    let mut interest = Interest {
        groups: Default::default(),
        topic_ids: Default::default(),
        clients: vec![client.clone()],
    };
    let mut swept = Vec::new();
    for _ in 0..4 {
        swept.push(lookup.round(&interest).await.round.swept);
    }
    assert_eq!(
        swept,
        [true, true, false, true],
        "backing off: 1, then 2 rounds"
    );
    assert!(!lookup.round(&interest).await.round.swept);
    // Its partitions change: swept for at once, and found.
    client.partitions = vec![("t".to_owned(), 2)];
    interest.clients = vec![client.clone()];
    let view = lookup.round(&interest).await;
    assert!(view.round.swept);
    let found: Vec<&str> = view
        .groups_of(&client)
        .iter()
        .map(|g| g.group_id.as_str())
        .collect();
    assert_eq!(found, ["g-b"]);
}
