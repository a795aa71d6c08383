//! Byte-exactness: whatever goes in one side comes out the other, unchanged and in order, in
//! both directions, for random bytes and for Kafka-looking frames with garbage inside — also
//! with throttle policies in force: a dry-run one matching the connection, an enforcing one
//! matching nothing.

mod support;

use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use sluice_config::{Action, Cidr, Match, Mode, PolicySpec};
use support::*;
use tokio::net::TcpListener;
use tokio::sync::oneshot;

const MIB: usize = 1024 * 1024;

/// Upstream that records (hashes) what it receives and, at the same time (once `gate` opens,
/// if given), sends `reply`.
async fn recording_server(
    reply: Vec<u8>,
    gate: Option<oneshot::Receiver<()>>,
) -> (
    std::net::SocketAddr,
    tokio::task::JoinHandle<(u64, [u8; 32])>,
) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let (s, _) = listener.accept().await.unwrap();
        let (mut r, mut w) = s.into_split();
        let writer = tokio::spawn(async move {
            if let Some(gate) = gate {
                let _ = gate.await;
            }
            write_chunked(&mut w, &reply, 99).await
        });
        let got = read_hash(&mut r).await;
        writer.await.unwrap();
        got
    });
    (addr, task)
}

async fn both_directions(
    up: Vec<u8>,
    down: Vec<u8>,
    tap: bool,
) -> std::sync::Arc<sluice::ProxyStats> {
    both_directions_with(up, down, tap, Vec::new()).await
}

/// Like [`both_directions`] with `policies` in force; with any, bytes start to flow once the
/// policies have been matched against the connection.
async fn both_directions_with(
    up: Vec<u8>,
    down: Vec<u8>,
    tap: bool,
    policies: Vec<PolicySpec>,
) -> std::sync::Arc<sluice::ProxyStats> {
    let (open, gate) = oneshot::channel();
    let (server, recorded) = recording_server(down.clone(), Some(gate)).await;
    let mut throttle = None;
    let proxy = TestProxy::start_with(
        server,
        |c| c.tap.enabled = tap,
        |p| {
            throttle = Some(p.throttle());
            p
        },
    )
    .await;
    let throttle = throttle.unwrap();
    let matching = policies
        .iter()
        .filter(|p| p.action.mode == Mode::DryRun)
        .count();
    throttle.set_file_policies(policies);
    let stats = proxy.stats.clone();
    let (mut r, mut w) = connect(proxy.addr).await.into_split();
    wait_for("policies matched", Duration::from_secs(10), || {
        throttle
            .status()
            .iter()
            .filter(|s| !s.connections.is_empty())
            .count()
            == matching
    })
    .await;
    let _ = open.send(());
    let up2 = up.clone();
    let writer = tokio::spawn(async move { write_chunked(&mut w, &up2, 7).await });
    let (n_down, h_down) = within("client read", Duration::from_secs(60), read_hash(&mut r)).await;
    writer.await.unwrap();
    let (n_up, h_up) = within("server record", Duration::from_secs(60), recorded)
        .await
        .unwrap();
    assert_eq!(n_up, up.len() as u64, "client→broker byte count");
    assert_eq!(h_up, sha256(&up), "client→broker bytes differ");
    assert_eq!(n_down, down.len() as u64, "broker→client byte count");
    assert_eq!(h_down, sha256(&down), "broker→client bytes differ");
    wait_for("connection closed", Duration::from_secs(10), || {
        stats.connections_open.load(Relaxed) == 0
    })
    .await;
    assert_eq!(stats.bytes_to_broker.load(Relaxed), up.len() as u64);
    assert_eq!(stats.bytes_to_client.load(Relaxed), down.len() as u64);
    proxy.shutdown(Duration::from_secs(10)).await;
    for s in throttle.status() {
        if s.spec.action.mode == Mode::DryRun {
            assert!(s.decisions > 0, "the dry-run policy counted nothing: {s:?}");
        } else {
            assert_eq!(s.decisions, 0, "{s:?}");
        }
    }
    stats
}

fn policy(name: &str, host: &str, mode: Mode) -> PolicySpec {
    PolicySpec {
        name: name.into(),
        matcher: Match {
            host: Some(Cidr::parse(host).unwrap()),
            ..Match::default()
        },
        action: Action {
            fetch_bytes_per_sec: Some(1024),
            requests_per_sec: Some(1),
            mode,
        },
        expires: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frames_arrive_identical_under_a_dry_run_policy() {
    let up = kafka_like_frames(8, 8 * MIB);
    let down = kafka_like_frames(9, 8 * MIB);
    let policies = || {
        vec![
            policy("watch-all", "127.0.0.0/8", Mode::DryRun),
            policy("elsewhere", "10.0.0.0/8", Mode::Enforce),
        ]
    };
    for tap in [true, false] {
        both_directions_with(up.clone(), down.clone(), tap, policies()).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_bytes_arrive_identical_in_both_directions() {
    for tap in [true, false] {
        let stats = both_directions(
            random_bytes(1, 24 * MIB),
            random_bytes(2, 24 * MIB + 17),
            tap,
        )
        .await;
        assert_eq!(
            stats.opaque_connections.load(Relaxed),
            1,
            "random bytes are not Kafka (tap {tap})"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_like_frames_with_garbage_bodies_arrive_identical() {
    let up = kafka_like_frames(3, 16 * MIB);
    let down = kafka_like_frames(4, 20 * MIB);
    // Tap off: the framing alone is followed, and it is valid.
    let stats = both_directions(up.clone(), down.clone(), false).await;
    assert_eq!(
        stats.opaque_connections.load(Relaxed),
        0,
        "valid framing must be followed"
    );
    // Tap on: the responses answer no request, so the tap gives up on the connection (once)
    // — and every byte still arrives.
    let stats = both_directions(up, down, true).await;
    assert_eq!(stats.opaque_connections.load(Relaxed), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frames_then_garbage_still_arrive_identical() {
    let mut up = kafka_like_frames(5, 4 * MIB);
    up.extend((-5i32).to_be_bytes());
    up.extend(random_bytes(6, 3 * MIB));
    for tap in [true, false] {
        let stats = both_directions(up.clone(), kafka_like_frames(7, 2 * MIB), tap).await;
        assert_eq!(stats.opaque_connections.load(Relaxed), 1);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn empty_streams_and_tiny_writes() {
    for tap in [true, false] {
        both_directions(Vec::new(), Vec::new(), tap).await;
        both_directions(vec![0, 0, 0, 1, 9], vec![42], tap).await;
    }
}
