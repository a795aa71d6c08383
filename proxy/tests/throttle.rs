//! Throttle enforcement through a running proxy, against a scripted broker that answers every
//! Fetch request (built with kafka-protocol's encoder) with a Fetch response of a fixed size:
//! a matching client is held to its cap while another on the same proxy is not, removing the
//! policy restores it, dry-run changes no byte but counts, and `throttle_time_ms` is the one
//! field ever rewritten — for several Fetch versions, with nothing lost or reordered.

mod support;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::fetch_request::FetchRequest;
use kafka_protocol::messages::fetch_response::{
    FetchResponse, FetchableTopicResponse, PartitionData,
};
use kafka_protocol::messages::{ApiKey, RequestHeader, ResponseHeader, TopicName};
use kafka_protocol::protocol::{encode_request_header_into_buffer, Encodable, StrBytes};
use sluice::throttle::{PolicyStatus, Throttle};
use sluice_config::{Action, Cidr, Glob, Match, Mode, PolicySpec};
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};

const KIB: u64 = 1024;
/// The broker's own `throttle_time_ms` in every response.
const BROKER_THROTTLE: i32 = 3;

fn fetch_request(version: i16, correlation_id: i32, client_id: &str) -> Vec<u8> {
    let mut buf = BytesMut::new();
    let header = RequestHeader::default()
        .with_request_api_key(ApiKey::Fetch as i16)
        .with_request_api_version(version)
        .with_correlation_id(correlation_id)
        .with_client_id(Some(StrBytes::from_string(client_id.into())));
    encode_request_header_into_buffer(&mut buf, &header).unwrap();
    FetchRequest::default()
        .with_max_wait_ms(500)
        .encode(&mut buf, version)
        .unwrap();
    framed(&buf)
}

fn framed(body: &[u8]) -> Vec<u8> {
    let mut v = (body.len() as i32).to_be_bytes().to_vec();
    v.extend_from_slice(body);
    v
}

/// A Fetch response frame of `version` carrying `records` bytes of (random) record data.
fn fetch_response(version: i16, correlation_id: i32, records: usize) -> Vec<u8> {
    let mut buf = BytesMut::new();
    ResponseHeader::default()
        .with_correlation_id(correlation_id)
        .encode(&mut buf, ApiKey::Fetch.response_header_version(version))
        .unwrap();
    let mut topic =
        FetchableTopicResponse::default().with_partitions(vec![PartitionData::default()
            .with_high_watermark(1000)
            .with_records(Some(Bytes::from(random_bytes(
                correlation_id as u64,
                records,
            ))))]);
    if version < 13 {
        topic = topic.with_topic(TopicName(StrBytes::from_static_str("orders")));
    }
    FetchResponse::default()
        .with_throttle_time_ms(BROKER_THROTTLE)
        .with_responses(vec![topic])
        .encode(&mut buf, version)
        .unwrap();
    let mut out = BytesMut::new();
    out.put_i32(buf.len() as i32);
    out.extend_from_slice(&buf);
    out.to_vec()
}

/// Where `throttle_time_ms` is in a Fetch response frame of `version`.
fn field_at(version: i16) -> usize {
    4 + 4 + usize::from(version >= 12)
}

/// What a scripted broker sent, per connection in accept order.
type Sent = Arc<Mutex<Vec<Arc<Mutex<Vec<Vec<u8>>>>>>>;

/// A broker answering each Fetch request with a response of `records` bytes; `split` writes
/// each response in two parts (cut at that offset, 50 ms apart), so the proxy reads them apart.
async fn broker(records: usize, split: Option<usize>) -> (std::net::SocketAddr, Sent) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let sent: Sent = Arc::default();
    let all = sent.clone();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let log: Arc<Mutex<Vec<Vec<u8>>>> = Arc::default();
            all.lock().unwrap().push(log.clone());
            tokio::spawn(async move {
                let mut templates = std::collections::HashMap::new();
                loop {
                    let Some(body) = read_frame(&mut s).await else {
                        return;
                    };
                    let version = i16::from_be_bytes([body[2], body[3]]);
                    let corr = [body[4], body[5], body[6], body[7]];
                    let mut frame: Vec<u8> = templates
                        .entry(version)
                        .or_insert_with(|| fetch_response(version, 0, records))
                        .clone();
                    frame[4..8].copy_from_slice(&corr);
                    log.lock().unwrap().push(frame.clone());
                    let written = match split {
                        Some(at) => {
                            let first = s.write_all(&frame[..at]).await;
                            tokio::time::sleep(Duration::from_millis(50)).await;
                            first.and(s.write_all(&frame[at..]).await)
                        }
                        None => s.write_all(&frame).await,
                    };
                    if written.is_err() {
                        return;
                    }
                }
            });
        }
    });
    (addr, sent)
}

/// A connection from `source` (a loopback address) to the proxy.
async fn connect_from(source: &str, to: std::net::SocketAddr) -> TcpStream {
    let s = TcpSocket::new_v4().unwrap();
    s.bind(format!("{source}:0").parse().unwrap()).unwrap();
    s.connect(to).await.unwrap()
}

/// A consumer: one Fetch at a time, reading each response whole; counts response bytes into
/// `bytes` and, with `keep`, keeps every response frame. Stops when `stop` is set.
async fn consume(
    mut s: TcpStream,
    version: i16,
    client_id: &'static str,
    bytes: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    keep: bool,
) -> Vec<Vec<u8>> {
    let mut frames = Vec::new();
    let mut corr = 0;
    while !stop.load(Relaxed) {
        corr += 1;
        s.write_all(&fetch_request(version, corr, client_id))
            .await
            .unwrap();
        let mut len = [0u8; 4];
        s.read_exact(&mut len).await.unwrap();
        let mut frame = len.to_vec();
        frame.resize(4 + i32::from_be_bytes(len) as usize, 0);
        s.read_exact(&mut frame[4..]).await.unwrap();
        assert_eq!(frame[4..8], corr.to_be_bytes(), "responses in order");
        bytes.fetch_add(frame.len() as u64, Relaxed);
        if keep {
            frames.push(frame);
        }
    }
    frames
}

fn policy(name: &str, matcher: Match, bytes_per_sec: u64, mode: Mode) -> PolicySpec {
    PolicySpec {
        name: name.into(),
        matcher,
        action: Action {
            fetch_bytes_per_sec: Some(bytes_per_sec),
            requests_per_sec: None,
            mode,
        },
        expires: None,
    }
}

fn by_host(host: &str) -> Match {
    Match {
        host: Some(Cidr::parse(host).unwrap()),
        ..Match::default()
    }
}

async fn start(upstream: std::net::SocketAddr) -> (TestProxy, Arc<Throttle>) {
    let mut throttle = None;
    let proxy = TestProxy::start_with(
        upstream,
        |_| {},
        |p| {
            throttle = Some(p.throttle());
            p
        },
    )
    .await;
    (proxy, throttle.unwrap())
}

fn status(t: &Throttle, name: &str) -> PolicyStatus {
    t.status()
        .into_iter()
        .find(|p| p.spec.name == name)
        .unwrap()
}

/// Response bytes per second over `window`.
async fn rate(bytes: &AtomicU64, window: Duration) -> f64 {
    let (b0, t0) = (bytes.load(Relaxed), Instant::now());
    tokio::time::sleep(window).await;
    (bytes.load(Relaxed) - b0) as f64 / t0.elapsed().as_secs_f64()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_matching_client_is_held_to_its_cap_and_others_are_not() {
    let cap = 256 * KIB;
    let (upstream, _) = broker(32 * 1024, None).await;
    let (proxy, throttle) = start(upstream).await;
    // Matched by client.id: known once the observer has seen the connection's first request.
    let matcher = Match {
        client_id: Some(Glob("looper".into())),
        ..Match::default()
    };
    throttle
        .add(policy("loop", matcher, cap, Mode::Enforce))
        .unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let (looped, healthy) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let a = tokio::spawn(consume(
        connect(proxy.addr).await,
        17,
        "looper",
        looped.clone(),
        stop.clone(),
        false,
    ));
    let b = tokio::spawn(consume(
        connect(proxy.addr).await,
        17,
        "healthy",
        healthy.clone(),
        stop.clone(),
        false,
    ));
    wait_for("the looper held", Duration::from_secs(15), || {
        status(&throttle, "loop").decisions >= 2
    })
    .await;
    let s = status(&throttle, "loop");
    assert_eq!(s.connections.len(), 1, "only the looper matches: {s:?}");
    assert_eq!(s.connections[0].client_id.as_deref(), Some("looper"));
    let held_ms_before = s.held_ms;

    let (held, free) = tokio::join!(
        rate(&looped, Duration::from_secs(4)),
        rate(&healthy, Duration::from_secs(4))
    );
    let cap = cap as f64;
    eprintln!("looper {held:.0} B/s (cap {cap:.0}), healthy {free:.0} B/s");
    assert!(
        held > cap * 0.9 && held < cap * 1.1,
        "the looper's rate {held:.0} B/s is not the cap {cap:.0} ±10%"
    );
    assert!(
        free > cap * 8.0,
        "the healthy client ({free:.0} B/s) must not be held near the cap"
    );
    let s = status(&throttle, "loop");
    assert!(
        s.held_ms > held_ms_before + 2000,
        "4 s at the cap is mostly held time: {s:?}"
    );
    assert!(s.held_bytes > 0 && s.groups.iter().any(|g| g.held_bytes > 0));

    // Removing the policy restores full speed.
    throttle.remove("loop").unwrap();
    wait_for("the looper released", Duration::from_secs(5), || {
        throttle.status().is_empty()
    })
    .await;
    let mut restored = 0.0;
    for _ in 0..10 {
        restored = rate(&looped, Duration::from_millis(500)).await;
        if restored > cap * 8.0 {
            break;
        }
    }
    eprintln!("looper after removal {restored:.0} B/s");
    assert!(restored > cap * 8.0, "after removal: {restored:.0} B/s");
    stop.store(true, Relaxed);
    within("consumers end", Duration::from_secs(20), async {
        a.await.unwrap();
        b.await.unwrap();
    })
    .await;
    proxy.shutdown(Duration::from_secs(10)).await;
}

/// Runs one consumer of `version` from `source` for `n` responses with `policy` in force (once
/// it applies to the connection) and returns (what the broker sent, what the client got).
async fn exchange(
    version: i16,
    spec: PolicySpec,
    n: usize,
    records: usize,
    split: Option<usize>,
) -> (Vec<Vec<u8>>, Vec<Vec<u8>>, Arc<Throttle>) {
    let (upstream, sent) = broker(records, split).await;
    let (proxy, throttle) = start(upstream).await;
    let name = spec.name.clone();
    throttle.add(spec).unwrap();
    let s = connect_from("127.0.0.2", proxy.addr).await;
    wait_for("the policy applies", Duration::from_secs(10), || {
        !status(&throttle, &name).connections.is_empty()
    })
    .await;
    let mut s = s;
    let mut got = Vec::new();
    for corr in 1..=n as i32 {
        s.write_all(&fetch_request(version, corr, "rewrite-test"))
            .await
            .unwrap();
        got.push(
            within(
                "response",
                Duration::from_secs(30),
                consume_one(&mut s, corr),
            )
            .await,
        );
    }
    let sent = sent.lock().unwrap()[0].lock().unwrap().clone();
    proxy.shutdown(Duration::from_secs(10)).await;
    (sent, got, throttle)
}

async fn consume_one(s: &mut TcpStream, corr: i32) -> Vec<u8> {
    let mut len = [0u8; 4];
    s.read_exact(&mut len).await.unwrap();
    let mut frame = len.to_vec();
    frame.resize(4 + i32::from_be_bytes(len) as usize, 0);
    s.read_exact(&mut frame[4..]).await.unwrap();
    assert_eq!(frame[4..8], corr.to_be_bytes(), "responses in order");
    frame
}

fn throttle_time(frame: &[u8], version: i16) -> i32 {
    let at = field_at(version);
    i32::from_be_bytes(frame[at..at + 4].try_into().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_per_second_are_held_to_their_cap() {
    let (upstream, _) = broker(100, None).await;
    let (proxy, throttle) = start(upstream).await;
    let mut spec = policy("slow", by_host("127.0.0.2"), 1 << 30, Mode::Enforce);
    spec.action.fetch_bytes_per_sec = None;
    spec.action.requests_per_sec = Some(20);
    throttle.add(spec).unwrap();
    let s = connect_from("127.0.0.2", proxy.addr).await;
    wait_for("the policy applies", Duration::from_secs(10), || {
        !status(&throttle, "slow").connections.is_empty()
    })
    .await;
    let (bytes, stop) = (
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicBool::new(false)),
    );
    let task = tokio::spawn(consume(
        s,
        12,
        "requester",
        bytes.clone(),
        stop.clone(),
        false,
    ));
    wait_for("held", Duration::from_secs(10), || {
        status(&throttle, "slow").decisions >= 2
    })
    .await;
    let frame = fetch_response(12, 0, 100).len() as f64;
    let per_sec = rate(&bytes, Duration::from_secs(3)).await / frame;
    eprintln!("{per_sec:.1} requests/s at a cap of 20");
    assert!(per_sec > 18.0 && per_sec < 22.0, "{per_sec:.1} requests/s");
    stop.store(true, Relaxed);
    within("consumer ends", Duration::from_secs(10), task)
        .await
        .unwrap();
    proxy.shutdown(Duration::from_secs(10)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttle_time_ms_is_the_only_byte_changed() {
    // 64 KiB/s against 48 KiB responses: from the second response on the client is in debt,
    // and each response's throttle_time_ms says how long its debt takes to pay.
    for version in [4, 11, 12, 16, 17] {
        let spec = policy("rewrite", by_host("127.0.0.2"), 64 * KIB, Mode::Enforce);
        let (sent, got, throttle) = exchange(version, spec, 4, 48 * 1024, None).await;
        assert_eq!(sent.len(), got.len(), "v{version}: every response arrives");
        let mut raised = 0;
        for (i, (s, g)) in sent.iter().zip(&got).enumerate() {
            assert_eq!(s.len(), g.len(), "v{version} response {i}: length");
            let at = field_at(version);
            assert_eq!(throttle_time(s, version), BROKER_THROTTLE);
            let t = throttle_time(g, version);
            assert!(t >= BROKER_THROTTLE, "v{version}: {t} below the broker's");
            // A response of 48 KiB at 64 KiB/s implies up to 750 ms on top of older debt;
            // the hold is capped at throttle.max_hold.
            assert!(t <= 10_000, "v{version}: {t} ms beyond max_hold");
            if t > BROKER_THROTTLE {
                raised += 1;
            }
            let mut restored = g.clone();
            restored[at..at + 4].copy_from_slice(&BROKER_THROTTLE.to_be_bytes());
            assert!(
                restored == *s,
                "v{version} response {i}: a byte other than throttle_time_ms changed"
            );
        }
        assert!(
            raised >= 2,
            "v{version}: throttle_time_ms raised in {raised} responses"
        );
        let hints = throttle.hints();
        assert_eq!(hints.set, raised, "v{version}: {hints:?}");
        assert_eq!(hints.missed, 0);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_field_split_across_reads_is_left_alone_and_counted() {
    let version = 12;
    // Cut two bytes into the field: it is not whole in either chunk.
    let cut = field_at(version) + 2;
    let spec = policy("split", by_host("127.0.0.2"), KIB, Mode::Enforce);
    let (sent, got, throttle) = exchange(version, spec, 2, 4096, Some(cut)).await;
    assert_eq!(sent, got, "nothing changes when the field is split");
    assert_eq!(throttle.hints().missed, 2, "{:?}", throttle.hints());
    assert_eq!(throttle.hints().set, 0);
    // Cut before the field: it is whole in the second chunk and set there.
    let spec = policy("later", by_host("127.0.0.2"), KIB, Mode::Enforce);
    let (sent, got, throttle) = exchange(version, spec, 2, 4096, Some(6)).await;
    assert!(throttle_time(&got[1], version) > BROKER_THROTTLE);
    assert_eq!(throttle.hints().missed, 0);
    for (s, g) in sent.iter().zip(&got) {
        assert_eq!(s[..field_at(version)], g[..field_at(version)]);
        assert_eq!(s[field_at(version) + 4..], g[field_at(version) + 4..]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dry_run_changes_no_byte_and_holds_nothing_but_counts() {
    let version = 17;
    let spec = policy("watch", by_host("127.0.0.2"), KIB, Mode::DryRun);
    let (sent, got, throttle) = exchange(version, spec, 20, 16 * 1024, None).await;
    assert_eq!(sent, got, "dry-run: every byte as the broker sent it");
    let hints = throttle.hints();
    assert_eq!((hints.set, hints.missed), (0, 0), "{hints:?}");
    // 320 KiB at 1 KiB/s would have been held for minutes; it was counted instead.
    let s = status(&throttle, "watch");
    assert!(s.decisions >= 10, "{s:?}");
    assert!(s.held_ms >= 60_000, "{s:?}");
    assert!(s.held_bytes >= 250 * KIB, "{s:?}");
    assert_eq!(s.groups.len(), 1, "{s:?}");
}
