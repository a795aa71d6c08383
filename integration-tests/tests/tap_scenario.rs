//! The tap against the real thing: known traffic from real clients through Sluice in front of
//! a real broker, and the events must say what the clients did — topics, offsets, record
//! counts, the group, its commits, client ids and client software.

use std::collections::BTreeMap;

use sluice_integration_tests::{unique, Client, Cluster};
use sluice_protocol::event::{CommittedOffset, TopicRef};
use sluice_protocol::TapEvent;

fn is_topic(t: &TopicRef, name: &str) -> bool {
    t.name.as_deref() == Some(name)
}

#[test]
fn events_match_what_java_clients_did() {
    const N: u64 = 1500;
    let cluster = Cluster::shared();
    let topic = unique("tap");
    let group = unique("tap-group");
    cluster.create_topic(&topic, 2);
    let produced = Client::Java
        .produce(&cluster.tools, &cluster.bootstrap(), &topic, N, 5)
        .unwrap();
    assert_eq!(produced.produced, N);
    let consumed = Client::Java
        .consume(&cluster.tools, &cluster.bootstrap(), &topic, &group, N)
        .unwrap();
    assert_eq!(consumed.consumed, N);
    let log = &cluster.events;

    // Produce: the records of every batch header add up to what was produced.
    let produced_records: u64 = log
        .select(|_, e| match e {
            TapEvent::ProducePartition(p) if is_topic(&p.topic, &topic) => Some(p.records),
            _ => None,
        })
        .iter()
        .sum();
    assert_eq!(produced_records, N, "records seen in Produce batch headers");

    // Fetch responses: per partition, delivered offsets reach the end of the log, and every
    // delivered record was counted.
    let mut end: BTreeMap<i32, i64> = BTreeMap::new();
    let mut delivered = 0u64;
    for p in log.select(|_, e| match e {
        TapEvent::FetchPartition(p) if is_topic(&p.topic, &topic) => Some(p.clone()),
        _ => None,
    }) {
        delivered += p.records;
        if let Some(last) = p.last_offset {
            let e = end.entry(p.partition).or_insert(-1);
            *e = (*e).max(last + 1);
        }
        assert_eq!(p.error_code, 0);
    }
    assert_eq!(
        end.values().sum::<i64>() as u64,
        N,
        "end offsets seen in Fetch responses: {end:?}"
    );
    assert!(delivered >= N, "only {delivered} records seen delivered");

    // Fetch requests of the consumer name the topic (resolved from ids through Metadata).
    let fetch_parts = log.select(|_, e| match e {
        TapEvent::FetchRequest(f) if !f.replica => Some(f.partitions.clone()),
        _ => None,
    });
    assert!(fetch_parts
        .iter()
        .flatten()
        .any(|p| is_topic(&p.topic, &topic)));

    // The group: joined, synced with an assignment of the topic's partitions, committed N.
    assert!(log
        .select(|_, e| match e {
            TapEvent::JoinGroup {
                group_id,
                protocol_type,
                ..
            } if *group_id == group => Some(protocol_type.clone()),
            _ => None,
        })
        .contains(&"consumer".to_owned()));
    let assigned: Vec<i32> = log
        .select(|_, e| match e {
            TapEvent::SyncGroupResponse {
                assignment: Some(a),
                ..
            } => Some(a.clone()),
            _ => None,
        })
        .into_iter()
        .flatten()
        .filter(|(t, _)| is_topic(t, &topic))
        .flat_map(|(_, ps)| ps)
        .collect();
    assert!(
        assigned.contains(&0) && assigned.contains(&1),
        "assignment {assigned:?}"
    );
    let mut committed: BTreeMap<i32, i64> = BTreeMap::new();
    for offsets in log.select(|_, e| match e {
        TapEvent::OffsetCommit {
            group_id, offsets, ..
        } if *group_id == group => Some(offsets.clone()),
        _ => None,
    }) {
        for CommittedOffset {
            topic: t,
            partition,
            offset,
        } in offsets
        {
            if is_topic(&t, &topic) {
                let e = committed.entry(partition).or_insert(0);
                *e = (*e).max(offset);
            }
        }
    }
    assert_eq!(
        committed.values().sum::<i64>() as u64,
        N,
        "committed {committed:?}"
    );

    // Identity: client ids on requests, and the Java client's software name (KIP-511).
    let ids = log.select(|_, e| match e {
        TapEvent::Request(r) => r.client_id.as_deref().map(str::to_owned),
        _ => None,
    });
    assert!(ids.iter().any(|c| c == "sluice-java-producer"));
    assert!(ids.iter().any(|c| c == "sluice-java-consumer"));
    let software = log.select(|_, e| match e {
        TapEvent::ClientSoftware(s) => Some((s.name.clone(), s.version.clone())),
        _ => None,
    });
    assert!(
        software
            .iter()
            .any(|(n, v)| n == "apache-kafka-java" && v.starts_with("4.")),
        "{software:?}"
    );
    // Nothing was lost on the way: no connection went opaque, no frame failed to parse.
    assert!(log
        .select(|_, e| matches!(e, TapEvent::Opaque { .. }).then_some(()))
        .is_empty());
    let problems = log.select(|_, e| match e {
        TapEvent::ParseError(p) => Some(p.clone()),
        _ => None,
    });
    assert!(problems.is_empty(), "{problems:?}");
}

#[test]
fn librdkafka_and_franz_go_are_identified() {
    let cluster = Cluster::shared();
    let topic = unique("tap-id");
    cluster.create_topic(&topic, 1);
    for client in [Client::Python, Client::Go] {
        client
            .produce(&cluster.tools, &cluster.bootstrap(), &topic, 10, 1)
            .unwrap();
    }
    let software = cluster.events.select(|_, e| match e {
        TapEvent::ClientSoftware(s) => Some(s.name.clone()),
        _ => None,
    });
    assert!(
        software
            .iter()
            .any(|n| n.contains("librdkafka") || n.contains("confluent")),
        "{software:?}"
    );
    assert!(
        software.iter().any(|n| n == "kgo" || n.contains("franz")),
        "{software:?}"
    );
}
