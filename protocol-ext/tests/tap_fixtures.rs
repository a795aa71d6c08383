//! The tap over byte streams captured from a real Kafka 4.1 broker and real Java clients
//! (`fixtures/`, recorded through Sluice with tcpdump): every frame followed, nothing opaque,
//! no parse error, and the session's facts come out.

use std::time::Instant;

use sluice_protocol::tap::topics::TopicNames;
use sluice_protocol::tap::ConnectionTap;
use sluice_protocol::TapEvent;

fn fixtures() -> Vec<(String, Vec<u8>, Vec<u8>)> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures");
    let mut out = Vec::new();
    for i in 0.. {
        let req = dir.join(format!("java-session-{i}.requests.bin"));
        let Ok(requests) = std::fs::read(&req) else {
            break;
        };
        let responses = std::fs::read(dir.join(format!("java-session-{i}.responses.bin"))).unwrap();
        out.push((format!("java-session-{i}"), requests, responses));
    }
    assert!(out.len() >= 3, "fixtures missing");
    out
}

#[test]
fn captured_sessions_are_followed_completely() {
    let topics = TopicNames::new();
    let mut all = Vec::new();
    for (name, requests, responses) in fixtures() {
        let mut tap = ConnectionTap::new(topics.clone());
        let mut events = Vec::new();
        // Odd chunk sizes, requests first (the in-flight FIFO holds the pipeline).
        for c in requests.chunks(1499) {
            tap.on_request_bytes(c, Instant::now(), &mut |e| events.push(e));
        }
        for c in responses.chunks(997) {
            tap.on_response_bytes(c, Instant::now(), &mut |e| events.push(e));
        }
        assert!(
            !tap.is_opaque(),
            "{name}: {:?}",
            events.iter().find(|e| matches!(e, TapEvent::Opaque { .. }))
        );
        assert_eq!(
            tap.counters().parse_errors,
            0,
            "{name}: {:?}",
            events
                .iter()
                .filter(|e| matches!(e, TapEvent::ParseError(_)))
                .collect::<Vec<_>>()
        );
        assert!(tap.at_boundary(), "{name} ends mid-frame");
        // A consumer may close while its long-poll Fetch is still waiting at the broker.
        assert!(
            tap.in_flight() <= 1,
            "{name}: {} requests without responses",
            tap.in_flight()
        );
        all.extend(events);
    }
    let produced: u64 = all
        .iter()
        .filter_map(|e| match e {
            TapEvent::ProducePartition(p) if p.topic.name.as_deref() == Some("orders") => {
                Some(p.records)
            }
            _ => None,
        })
        .sum();
    assert_eq!(produced, 600);
    let delivered_end: i64 = {
        let mut end = std::collections::BTreeMap::new();
        for e in &all {
            if let TapEvent::FetchPartition(p) = e {
                if let Some(last) = p.last_offset {
                    let v = end.entry(p.partition).or_insert(0);
                    *v = (*v).max(last + 1);
                }
            }
        }
        end.values().sum()
    };
    assert_eq!(delivered_end, 600);
    assert!(all
        .iter()
        .any(|e| matches!(e, TapEvent::OffsetCommit { group_id, .. } if group_id == "billing")));
    assert!(all
        .iter()
        .any(|e| matches!(e, TapEvent::ClientSoftware(s) if s.name == "apache-kafka-java")));
}
