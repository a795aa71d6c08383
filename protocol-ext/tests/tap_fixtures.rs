//! The tap over byte streams captured from a real Kafka 4.1 broker and real Java clients
//! (`fixtures/`, recorded through Sluice with tcpdump): every frame followed, nothing opaque,
//! no parse error, and the session's facts come out.

use std::time::Instant;

use sluice_protocol::tap::topics::TopicNames;
use sluice_protocol::tap::{ConnectionTap, TapHalf};
use sluice_protocol::{Dir, TapEvent};

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
        // Odd chunk sizes, requests first (the in-flight FIFO holds the pipeline), settled
        // after every chunk.
        for (dir, stream, size) in [
            (Dir::Request, &requests, 1499),
            (Dir::Response, &responses, 997),
        ] {
            let mut half = TapHalf::new(dir);
            for c in stream.chunks(size) {
                tap.feed(&mut half, c, Instant::now());
                tap.settle(&mut |e, _| events.push(e));
            }
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

/// Splits a captured stream into frame bodies (after the 4-byte length).
fn frames(stream: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    let mut rest = stream;
    while rest.len() >= 4 {
        let len = i32::from_be_bytes(rest[..4].try_into().unwrap()) as usize;
        if rest.len() < 4 + len {
            break;
        }
        out.push(&rest[4..4 + len]);
        rest = &rest[4 + len..];
    }
    out
}

/// Writes fuzz seeds made from the captured frames: whole streams for `frame_tracker`, Fetch
/// response and Produce request bodies (in the targets' input layout) for the walkers.
/// Run by hand after re-recording fixtures:
/// `cargo test -p sluice-protocol --test tap_fixtures -- --ignored write_fuzz_seeds`.
#[test]
#[ignore = "regenerates checked-in fuzz seeds"]
fn write_fuzz_seeds() {
    let seeds = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/seeds");
    for t in ["frame_tracker", "fetch_response", "produce_request"] {
        std::fs::create_dir_all(seeds.join(t)).unwrap();
    }
    for (name, requests, responses) in fixtures() {
        // frame_tracker: first byte is the chunk size. Keep seeds small (first 64 KiB).
        for (dir, stream) in [("requests", &requests), ("responses", &responses)] {
            let mut seed = vec![97u8];
            seed.extend_from_slice(&stream[..stream.len().min(64 << 10)]);
            std::fs::write(seeds.join(format!("frame_tracker/{name}-{dir}")), seed).unwrap();
        }
        // Pair requests with responses in order to know each response's api key/version.
        let reqs = frames(&requests);
        let resps = frames(&responses);
        for (i, (rq, rs)) in reqs.iter().zip(&resps).enumerate() {
            let h = sluice_protocol::header::parse_request_header(rq)
                .unwrap()
                .unwrap();
            let (key, version) = (h.api_key, h.api_version);
            if key == 0 && (3..=13).contains(&version) {
                let mut seed = vec![(version - 3) as u8, 251];
                seed.extend_from_slice(&rq[h.len..rq.len().min(h.len + (32 << 10))]);
                std::fs::write(seeds.join(format!("produce_request/{name}-{i}")), seed).unwrap();
            }
            if key == 1 && (4..=18).contains(&version) {
                let hl = sluice_protocol::header::response_header_len(rs, key, version)
                    .unwrap()
                    .unwrap();
                // Large responses are cut to 64 KiB: a truncated body still exercises the walk.
                let mut seed = vec![(version - 4) as u8, 253];
                seed.extend_from_slice(&rs[hl..rs.len().min(hl + (64 << 10))]);
                std::fs::write(seeds.join(format!("fetch_response/{name}-{i}")), seed).unwrap();
            }
        }
    }
}
