//! One client floods the observer through the proxy — a 7.7 MB OffsetCommit naming 550,000
//! partitions, the request measured in the issue that took RSS from 7 to 80 MB and made one
//! `GET /api/v1/groups` answer 60 MiB in 2.5 s while forwarding stalled for 1.06 s. The
//! observer must keep within its caps and count what it refused, and every admin list answer
//! must stay bounded in size and arrive, with the whole count in `x-total-count`.
//!
//! Also a measurement (printed, never asserted: `cargo test --release -p sluice --test
//! observer_flood -- --nocapture`): the round trips of an unrelated connection through the
//! proxy while the flood is applied and the admin API is asked, against the same connection
//! idle, and the process's RSS before and after.

mod support;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use support::{connect, within};

/// Largest list answer accepted: the API's 4 MiB budget and one bounded row beyond.
const ANSWER_BOUND: usize = 5 << 20;

/// A request frame: header v1 (api key, version, correlation id, `client.id`) and `body`.
fn frame(api_key: i16, version: i16, correlation: i32, client_id: &str, body: &[u8]) -> Vec<u8> {
    let mut f = Vec::with_capacity(body.len() + 64);
    f.extend_from_slice(&[0; 4]);
    f.extend_from_slice(&api_key.to_be_bytes());
    f.extend_from_slice(&version.to_be_bytes());
    f.extend_from_slice(&correlation.to_be_bytes());
    f.extend_from_slice(&(client_id.len() as i16).to_be_bytes());
    f.extend_from_slice(client_id.as_bytes());
    f.extend_from_slice(body);
    let len = (f.len() - 4) as i32;
    f[..4].copy_from_slice(&len.to_be_bytes());
    f
}

fn string(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as i16).to_be_bytes());
    out.extend_from_slice(s.as_bytes());
}

/// OffsetCommit v2 of group `group`: `topics` topics of `partitions` partitions each.
fn offset_commit(group: &str, topics: usize, partitions: i32) -> Vec<u8> {
    let mut b = Vec::with_capacity(topics * partitions as usize * 14 + 1024);
    string(&mut b, group);
    b.extend_from_slice(&1i32.to_be_bytes()); // generation
    string(&mut b, "flood-member");
    b.extend_from_slice(&(-1i64).to_be_bytes()); // retention
    b.extend_from_slice(&(topics as i32).to_be_bytes());
    for t in 0..topics {
        string(&mut b, &format!("flood-{t}"));
        b.extend_from_slice(&partitions.to_be_bytes());
        for p in 0..partitions {
            b.extend_from_slice(&p.to_be_bytes());
            b.extend_from_slice(&42i64.to_be_bytes());
            b.extend_from_slice(&(-1i16).to_be_bytes()); // metadata: null
        }
    }
    frame(8, 2, 1, "flood", &b)
}

/// A broker that answers every request with a minimal response of its correlation id: an
/// OffsetCommit v2 with no topics refused, anything else an ApiVersions v0 with no keys.
async fn mock_broker() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            tokio::spawn(async move {
                let mut len = [0u8; 4];
                while s.read_exact(&mut len).await.is_ok() {
                    let mut req = vec![0u8; i32::from_be_bytes(len) as usize];
                    if s.read_exact(&mut req).await.is_err() {
                        return;
                    }
                    let body: &[u8] = if req[..2] == 8i16.to_be_bytes() {
                        &[0, 0, 0, 0]
                    } else {
                        &[0, 0, 0, 0, 0, 0]
                    };
                    let mut resp = ((4 + body.len()) as i32).to_be_bytes().to_vec();
                    resp.extend_from_slice(&req[4..8]);
                    resp.extend_from_slice(body);
                    if s.write_all(&resp).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    addr
}

/// Sends `request` and reads one response frame.
async fn round_trip(s: &mut TcpStream, request: &[u8]) -> Vec<u8> {
    s.write_all(request).await.unwrap();
    let mut len = [0u8; 4];
    s.read_exact(&mut len).await.unwrap();
    let mut resp = vec![0u8; i32::from_be_bytes(len) as usize];
    s.read_exact(&mut resp).await.unwrap();
    resp
}

/// `GET path` on the admin API: status, headers (lower case) and body.
async fn get(admin: SocketAddr, path: &str) -> (u16, String, Vec<u8>) {
    let mut s = TcpStream::connect(admin).await.unwrap();
    let req = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await.unwrap();
    let mut resp = Vec::new();
    s.read_to_end(&mut resp).await.unwrap();
    let split = resp.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let head = String::from_utf8_lossy(&resp[..split]).to_lowercase();
    let status = head[9..12].parse().unwrap();
    let mut body = resp[split + 4..].to_vec();
    if head.contains("transfer-encoding: chunked") {
        body = dechunk(&body);
    }
    (status, head, body)
}

fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let eol = b.windows(2).position(|w| w == b"\r\n").unwrap();
        let n = usize::from_str_radix(std::str::from_utf8(&b[..eol]).unwrap().trim(), 16).unwrap();
        if n == 0 {
            return out;
        }
        out.extend_from_slice(&b[eol + 2..eol + 2 + n]);
        b = &b[eol + 2 + n + 2..];
    }
}

fn json(body: &[u8]) -> serde_json::Value {
    serde_json::from_slice(body).unwrap()
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

/// Round trips of an ApiVersions request on its own connection, one after the other until
/// told to stop: (phase, round-trip time) per round trip.
async fn ping(proxy: SocketAddr, phase: watch::Receiver<u8>) -> Vec<(u8, Duration)> {
    let mut s = connect(proxy).await;
    let req = frame(18, 0, 9, "bystander", &[]);
    let mut times = Vec::new();
    loop {
        let p = *phase.borrow();
        if p == u8::MAX {
            return times;
        }
        let t = Instant::now();
        round_trip(&mut s, &req).await;
        times.push((p, t.elapsed()));
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

fn summary(times: &[(u8, Duration)], phase: u8) -> String {
    let mut d: Vec<Duration> = times
        .iter()
        .filter(|(p, _)| *p == phase)
        .map(|(_, d)| *d)
        .collect();
    d.sort();
    if d.is_empty() {
        return "no round trips".into();
    }
    format!(
        "{} round trips, median {:?}, p99 {:?}, max {:?}",
        d.len(),
        d[d.len() / 2],
        d[d.len() * 99 / 100],
        d[d.len() - 1]
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_partitions_keeps_the_observer_and_its_answers_bounded() {
    let broker = mock_broker().await;
    let mut config = sluice_config::Loader::new()
        .flag("upstream", "--upstream", broker.to_string())
        .flag("listen", "--listen", "127.0.0.1:0")
        .load()
        .unwrap();
    config.lookup.enabled = false;
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let admin_listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let (proxy, admin) = (
        listener.local_addr().unwrap(),
        admin_listener.local_addr().unwrap(),
    );
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let app = tokio::spawn(sluice::app::serve_on(
        listener,
        admin_listener,
        config,
        async move {
            let _ = stopped.await;
        },
    ));

    let (phase, phases) = watch::channel(0u8);
    let pinger = tokio::spawn(ping(proxy, phases));
    tokio::time::sleep(Duration::from_secs(2)).await; // the baseline: idle round trips
    let rss_before = rss_kib();

    phase.send(1).unwrap();
    let request = offset_commit("flooded", 55, 10_000);
    let mut flooder = connect(proxy).await;
    within(
        "the huge commit's answer",
        Duration::from_secs(30),
        round_trip(&mut flooder, &request),
    )
    .await;
    drop(request);
    // The observer applies it and publishes within a tick or two.
    let refused = |h: &serde_json::Value| -> u64 {
        h["inner_refused"]
            .as_object()
            .map_or(0, |o| o.values().filter_map(|v| v.as_u64()).sum())
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    let health = loop {
        let h = json(&get(admin, "/api/v1/observer").await.2);
        if h["groups"].as_u64() == Some(1) && refused(&h) > 0 {
            break h;
        }
        assert!(
            Instant::now() < deadline,
            "the observer never showed it: {h:#}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(
        refused(&health) >= 500_000,
        "what did not fit is counted: {health:#}"
    );
    let held = health["inner_held"].as_object().unwrap();
    for (kind, n) in held {
        assert!(
            n.as_u64().unwrap() <= health["inner_budget"].as_u64().unwrap(),
            "{kind}: {health:#}"
        );
    }

    // Many groups of a thousand partitions each: more rows than one answer holds.
    for g in 0..150 {
        let commit = offset_commit(&format!("wide-{g:03}"), 1, 1000);
        round_trip(&mut flooder, &commit).await;
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while json(&get(admin, "/api/v1/observer").await.2)["groups"].as_u64() != Some(151) {
        assert!(Instant::now() < deadline, "the groups never showed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    phase.send(2).unwrap();
    let mut largest = 0;
    for path in [
        "/api/v1/groups",
        "/api/v1/clients",
        "/api/v1/topics",
        "/api/v1/connections",
        "/api/v1/groups?limit=1&offset=0",
        "/api/v1/groups?offset=100",
    ] {
        let t = Instant::now();
        let (status, head, body) =
            within("an admin answer", Duration::from_secs(30), get(admin, path)).await;
        let took = t.elapsed();
        assert_eq!(status, 200, "{path}: {head}");
        assert!(body.len() < ANSWER_BOUND, "{path}: {} bytes", body.len());
        assert!(head.contains("x-total-count: "), "{path}: {head}");
        assert!(json(&body).is_array(), "{path}");
        largest = largest.max(body.len());
        println!("{path}: {} bytes in {took:?}", body.len());
    }
    let (_, head, body) = get(admin, "/api/v1/groups").await;
    assert!(head.contains("x-total-count: 151"), "{head}");
    assert!(head.contains("x-truncated: true"), "{head}");
    assert!(json(&body).as_array().unwrap().len() < 151);
    for _ in 0..20 {
        let t = Instant::now();
        let (status, _, body) = get(admin, "/api/v1/groups").await;
        assert_eq!(status, 200);
        println!(
            "/api/v1/groups again: {} bytes in {:?}",
            body.len(),
            t.elapsed()
        );
    }
    let groups = json(&get(admin, "/api/v1/groups").await.2);
    let committed = groups[0]["committed"].as_array().unwrap().len();
    let total = groups[0]["committed_total"]
        .as_u64()
        .unwrap_or(committed as u64);
    assert!(
        committed <= 1000 && total >= committed as u64,
        "{committed} {total}"
    );
    assert_eq!(get(admin, "/api/v1/groups?limit=lots").await.0, 400);
    let rss_after = rss_kib();
    let h = json(&get(admin, "/api/v1/observer").await.2);
    println!("held {}, refused {}", h["inner_held"], h["inner_refused"]);
    phase.send(u8::MAX).unwrap();
    let times = within("the pinger", Duration::from_secs(10), pinger)
        .await
        .unwrap();

    println!("RSS before the flood {rss_before} KiB, after {rss_after} KiB");
    println!("largest answer {largest} bytes");
    println!("idle:            {}", summary(&times, 0));
    println!("flood applied:   {}", summary(&times, 1));
    println!("admin answering: {}", summary(&times, 2));

    let _ = stop.send(());
    within("the proxy's end", Duration::from_secs(30), app)
        .await
        .unwrap()
        .unwrap();
}
