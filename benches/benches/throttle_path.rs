//! What throttling costs the forwarding path per consumer Fetch round trip.
//!
//! `cargo bench -p sluice-benches --bench throttle_path` (see `benches/README.md`).
//!
//! One element is one round trip: a Fetch v17 request read in one chunk, and its 1 MiB
//! response read in 150 KB chunks (as `tap_path`). Each chunk goes through what the duplex does
//! before writing it:
//! - `unmatched`: no policy applies — the one relaxed load per chunk.
//! - `enforced`: an enforcing policy with a byte and a request cap applies, too high to ever
//!   hold: the request half follows the request frame and remembers the Fetch, charges the
//!   request bucket and checks for debt; the response half charges the byte bucket per chunk
//!   and finds and sets `throttle_time_ms` in the response.
//! - `dry_run`: the same policy in dry-run: charged and checked, nothing rewritten.

use std::hint::black_box;
use std::sync::Arc;
use std::time::Instant;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use sluice::throttle::bucket::Bucket;
use sluice::throttle::handle::{Applied, Assignment, Common, ConnThrottle, PolicyCounters, Rule};
use sluice::throttle::ThrottleHalf;
use sluice_config::{Action, Cidr, Match, Mode, PolicySpec};
use sluice_protocol::Framing;

const CHUNK: usize = 150_000;
const RESPONSE: usize = 1 << 20;

fn request(correlation_id: i32) -> Vec<u8> {
    // api key 1, version 17, correlation id, then a body the walker skips.
    let mut body = vec![0, 1, 0, 17];
    body.extend_from_slice(&correlation_id.to_be_bytes());
    body.resize(120, 0);
    let mut f = (body.len() as i32).to_be_bytes().to_vec();
    f.extend_from_slice(&body);
    f
}

fn response(correlation_id: i32) -> Vec<u8> {
    // correlation id, no tagged fields, throttle_time_ms 0, then record data.
    let mut body = correlation_id.to_be_bytes().to_vec();
    body.push(0);
    body.extend_from_slice(&0i32.to_be_bytes());
    body.resize(RESPONSE - 4, 0xab);
    let mut f = (body.len() as i32).to_be_bytes().to_vec();
    f.extend_from_slice(&body);
    f
}

fn conn(mode: Option<Mode>) -> ConnThrottle {
    let common = Arc::new(Common::default());
    common
        .max_hold_ms
        .store(10_000, std::sync::atomic::Ordering::Relaxed);
    let c = ConnThrottle::new(1, "10.0.0.1:5000".parse().unwrap(), common);
    if let Some(mode) = mode {
        let spec = PolicySpec {
            name: "bench".into(),
            matcher: Match {
                host: Some(Cidr::parse("10.0.0.0/8").unwrap()),
                ..Match::default()
            },
            action: Action {
                fetch_bytes_per_sec: Some(1 << 50),
                requests_per_sec: Some(1 << 30),
                mode,
            },
            expires: None,
        };
        let counters = Arc::new(PolicyCounters::default());
        let now = Instant::now();
        let applied = Applied {
            rule: Arc::new(Rule::new(spec, counters.clone())),
            bytes: Some(Arc::new(Bucket::new(1 << 50, now))),
            requests: Some(Arc::new(Bucket::new(1 << 30, now))),
            group: counters.group(""),
        };
        c.assign(
            Assignment {
                applied: vec![applied],
                client_id: None,
                group: None,
                principal: None,
            },
            1,
        );
    }
    c
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("throttle_path");
    g.throughput(Throughput::Bytes(RESPONSE as u64));
    let at = Framing::Header { have: 0 };
    for (name, mode) in [
        ("unmatched", None),
        ("enforced", Some(Mode::Enforce)),
        ("dry_run", Some(Mode::DryRun)),
    ] {
        let conn = conn(mode);
        let (mut up, mut down) = (ThrottleHalf::default(), ThrottleHalf::default());
        let mut n = 0i32;
        let mut req = request(0);
        let mut resp = response(0);
        g.bench_function(name, |b| {
            b.iter(|| {
                n = n.wrapping_add(1);
                req[8..12].copy_from_slice(&n.to_be_bytes());
                resp[4..8].copy_from_slice(&n.to_be_bytes());
                let generation = black_box(&conn).engaged();
                if generation != 0 {
                    black_box(up.before_request(&conn, generation, at, &req));
                }
                for chunk in resp.chunks_mut(CHUNK) {
                    let generation = black_box(&conn).engaged();
                    if generation != 0 {
                        down.before_response(&conn, generation, at, chunk);
                    }
                }
                black_box(&resp[9..13]);
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
