//! Connection guards (`guard.*`): a churning client held to its open and new-connection limits
//! per client key while other clients and hosts connect freely, hold mode, the per-host rate,
//! first bytes that are not Kafka forwarded unchanged, and nothing read before forwarding when
//! every guard is off. Loopback has the whole 127/8: a client bound to 127.0.0.2 is another host.

mod support;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use sluice_config::OnLimit;
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};

/// An echo upstream that counts the connections it accepted.
async fn counting_echo() -> (SocketAddr, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = accepted.clone();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            count.fetch_add(1, Relaxed);
            tokio::spawn(async move {
                let (mut r, mut w) = s.split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
                let _ = w.shutdown().await;
            });
        }
    });
    (addr, accepted)
}

/// An ApiVersions v3 request frame from `client_id`, annotated field by field.
fn request(client_id: &str) -> Vec<u8> {
    let mut body = Vec::new();
    body.extend_from_slice(&18i16.to_be_bytes()); // api_key: ApiVersions
    body.extend_from_slice(&3i16.to_be_bytes()); // api_version: 3 (request header v2)
    body.extend_from_slice(&1i32.to_be_bytes()); // correlation_id
    body.extend_from_slice(&(client_id.len() as i16).to_be_bytes()); // client_id length
    body.extend_from_slice(client_id.as_bytes()); // client_id
    body.push(0); // header tagged fields: none
    body.extend_from_slice(&[0x07, b's', b'l', b'u', b'i', b'c', b'e', 0x02, b'1', 0x00]); // body
    let mut frame = (body.len() as i32).to_be_bytes().to_vec(); // size
    frame.extend_from_slice(&body);
    frame
}

/// Connects to `proxy` from `host` (a loopback address).
async fn connect_from(host: [u8; 4], proxy: SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(SocketAddr::from((host, 0))).unwrap();
    socket.connect(proxy).await.unwrap()
}

/// Sends `bytes` and reads them back from the echo upstream: true if they came back whole
/// and unchanged, false if the proxy closed the connection instead.
async fn echoed(client: &mut TcpStream, bytes: &[u8]) -> bool {
    if client.write_all(bytes).await.is_err() {
        return false;
    }
    let mut back = vec![0u8; bytes.len()];
    match within(
        "echo or close",
        Duration::from_secs(10),
        client.read_exact(&mut back),
    )
    .await
    {
        Ok(_) => {
            assert_eq!(back, bytes, "bytes changed on the way");
            true
        }
        Err(_) => false,
    }
}

/// A client `client_id` from `host` that sends its first request: whether it got through.
async fn try_client(host: [u8; 4], proxy: SocketAddr, client_id: &str) -> (bool, TcpStream) {
    let mut c = connect_from(host, proxy).await;
    let through = echoed(&mut c, &request(client_id)).await;
    (through, c)
}

fn refused(proxy: &TestProxy, reason: &str) -> u64 {
    proxy.stats.snapshot()["connections_refused"]["by_reason"][reason]
        .as_u64()
        .unwrap()
}

const ONE: [u8; 4] = [127, 0, 0, 1];
const TWO: [u8; 4] = [127, 0, 0, 2];

#[tokio::test]
async fn a_client_key_at_its_open_limit_is_refused_and_others_get_in() {
    let (echo, upstream_accepted) = counting_echo().await;
    let proxy = TestProxy::start(echo, |c| {
        c.guard.max_connections_per_client = 2;
    })
    .await;
    let (ok1, first) = try_client(ONE, proxy.addr, "churner").await;
    let (ok2, _second) = try_client(ONE, proxy.addr, "churner").await;
    assert!(ok1 && ok2);
    let (ok3, _third) = try_client(ONE, proxy.addr, "churner").await;
    assert!(!ok3, "the third connection of one client key is refused");
    assert_eq!(
        upstream_accepted.load(Relaxed),
        2,
        "the refused one never reached the broker"
    );
    // Another client.id on the same host, and the same client.id on another host, are
    // other keys.
    let (other_id, _a) = try_client(ONE, proxy.addr, "orders-app").await;
    let (other_host, _b) = try_client(TWO, proxy.addr, "churner").await;
    assert!(other_id && other_host);
    assert_eq!(refused(&proxy, "per_client_open"), 1);
    let by_client = &proxy.stats.snapshot()["connections_refused"]["by_client"];
    assert_eq!(
        *by_client,
        serde_json::json!([{"reason": "per_client_open", "client_address": "127.0.0.1",
            "client_id": "churner", "count": 1}])
    );
    // A slot given back is a slot the key can use again.
    drop(first);
    wait_for("the first closed", Duration::from_secs(5), || {
        proxy.stats.connections_open.load(Relaxed) == 3
    })
    .await;
    let (again, _c) = try_client(ONE, proxy.addr, "churner").await;
    assert!(again);
    assert_eq!(refused(&proxy, "per_client_open"), 1);
    proxy.shutdown(Duration::from_secs(10)).await;
}

#[tokio::test]
async fn a_churning_client_is_held_to_its_new_connection_rate_while_others_connect_freely() {
    let (echo, _) = counting_echo().await;
    let proxy = TestProxy::start(echo, |c| {
        c.guard.new_connections_per_sec_per_client = 2;
    })
    .await;
    // A producer per message: connect, send, close, again — as fast as it can.
    let started = Instant::now();
    let mut through = 0u64;
    const CHURNS: u64 = 30;
    for _ in 0..CHURNS {
        let (ok, c) = try_client(ONE, proxy.addr, "per-message-producer").await;
        through += u64::from(ok);
        drop(c);
    }
    let elapsed = started.elapsed().as_secs_f64();
    // A burst of 2, then 2 per second of the time the churn took.
    let allowed = 2 + (elapsed * 2.0).ceil() as u64;
    assert!(
        (1..=allowed).contains(&through),
        "{through} of {CHURNS} through in {elapsed:.2}s, at most {allowed} allowed"
    );
    assert_eq!(refused(&proxy, "per_client_rate"), CHURNS - through);
    // Meanwhile every other client gets in at once.
    for i in 0..10 {
        let (ok, _c) = try_client(ONE, proxy.addr, &format!("healthy-{i}")).await;
        assert!(ok, "healthy-{i} refused");
    }
    assert_eq!(refused(&proxy, "per_client_rate"), CHURNS - through);
    proxy.shutdown(Duration::from_secs(10)).await;
}

#[tokio::test]
async fn hold_admits_a_connection_once_room_is_made_and_refuses_it_after_max_wait() {
    let (echo, upstream_accepted) = counting_echo().await;
    let proxy = TestProxy::start(echo, |c| {
        c.guard.max_connections_per_client = 1;
        c.guard.on_limit = OnLimit::Hold;
        c.guard.max_wait = Duration::from_secs(30);
    })
    .await;
    let (ok, first) = try_client(ONE, proxy.addr, "app").await;
    assert!(ok);
    let mut held = connect_from(ONE, proxy.addr).await;
    let frame = request("app");
    held.write_all(&frame).await.unwrap();
    // Held: open at the proxy, not at the broker.
    wait_for("both open at the proxy", Duration::from_secs(5), || {
        proxy.stats.connections_open.load(Relaxed) == 2
    })
    .await;
    let mut back = vec![0u8; frame.len()];
    let early = tokio::time::timeout(Duration::from_millis(200), held.read_exact(&mut back)).await;
    assert!(early.is_err(), "the held connection is not forwarded yet");
    assert_eq!(upstream_accepted.load(Relaxed), 1);
    drop(first); // room
    within(
        "admitted",
        Duration::from_secs(10),
        held.read_exact(&mut back),
    )
    .await
    .unwrap();
    assert_eq!(back, frame, "forwarded unchanged once admitted");
    assert_eq!(refused(&proxy, "per_client_open"), 0);
    proxy.shutdown(Duration::from_secs(10)).await;

    let (echo, upstream_accepted) = counting_echo().await;
    let proxy = TestProxy::start(echo, |c| {
        c.guard.max_connections_per_client = 1;
        c.guard.on_limit = OnLimit::Hold;
        c.guard.max_wait = Duration::from_millis(300);
    })
    .await;
    let (ok, _first) = try_client(ONE, proxy.addr, "app").await;
    assert!(ok);
    let (ok, _second) = try_client(ONE, proxy.addr, "app").await;
    assert!(!ok, "no room within max_wait: refused");
    assert_eq!(refused(&proxy, "per_client_open"), 1);
    assert_eq!(upstream_accepted.load(Relaxed), 1);
    proxy.shutdown(Duration::from_secs(10)).await;
}

#[tokio::test]
async fn hold_paces_a_churning_client_to_its_rate_instead_of_refusing_it() {
    let (echo, upstream_accepted) = counting_echo().await;
    let proxy = TestProxy::start(echo, |c| {
        c.guard.new_connections_per_sec_per_client = 4;
        c.guard.on_limit = OnLimit::Hold;
        c.guard.max_wait = Duration::from_secs(30);
    })
    .await;
    // Twice the burst, one after another: the second half waits for tokens, none is refused.
    let started = Instant::now();
    for i in 0..8 {
        let (ok, c) = try_client(ONE, proxy.addr, "per-message-producer").await;
        assert!(ok, "connection {i} refused");
        drop(c);
    }
    // 4 at once, then one per 1/4 s: at least 3/4 s for the next 4 (a floor, never a ceiling).
    assert!(started.elapsed() >= Duration::from_millis(700));
    assert_eq!(upstream_accepted.load(Relaxed), 8);
    assert_eq!(refused(&proxy, "per_client_rate"), 0);
    proxy.shutdown(Duration::from_secs(10)).await;
}

#[tokio::test]
async fn a_drain_refuses_held_connections_at_once() {
    let (echo, upstream_accepted) = counting_echo().await;
    let mut proxy = TestProxy::start(echo, |c| {
        c.guard.max_connections_per_client = 1;
        c.guard.on_limit = OnLimit::Hold;
        c.guard.max_wait = Duration::from_secs(300);
    })
    .await;
    let (ok, first) = try_client(ONE, proxy.addr, "app").await;
    assert!(ok);
    let mut held = connect_from(ONE, proxy.addr).await;
    held.write_all(&request("app")).await.unwrap();
    wait_for("held", Duration::from_secs(5), || {
        proxy.stats.connections_open.load(Relaxed) == 2
    })
    .await;
    proxy.begin_shutdown();
    // Closed long before max_wait, without reaching the broker.
    let mut buf = [0u8; 64];
    let n = within(
        "held one closed",
        Duration::from_secs(10),
        held.read(&mut buf),
    )
    .await;
    assert!(matches!(n, Ok(0) | Err(_)), "{n:?}");
    assert_eq!(refused(&proxy, "per_client_open"), 1);
    assert_eq!(upstream_accepted.load(Relaxed), 1);
    drop(first);
    proxy.shutdown(Duration::from_secs(10)).await;
}

#[tokio::test]
async fn a_host_over_its_new_connection_rate_is_refused_and_other_hosts_are_not() {
    let (echo, upstream_accepted) = counting_echo().await;
    let proxy = TestProxy::start(echo, |c| {
        c.guard.new_connections_per_sec_per_host = 3;
    })
    .await;
    let started = Instant::now();
    const CHURNS: u64 = 20;
    let mut through = 0u64;
    for i in 0..CHURNS {
        // Different client.ids: the host's rate binds whatever the client says.
        let (ok, c) = try_client(ONE, proxy.addr, &format!("c{i}")).await;
        through += u64::from(ok);
        drop(c);
    }
    let allowed = 3 + (started.elapsed().as_secs_f64() * 3.0).ceil() as u64;
    assert!(
        (3..=allowed).contains(&through),
        "{through} through, at most {allowed}"
    );
    assert_eq!(refused(&proxy, "per_host_rate"), CHURNS - through);
    assert_eq!(upstream_accepted.load(Relaxed) as u64, through);
    let (ok, _other) = try_client(TWO, proxy.addr, "c0").await;
    assert!(ok, "another host has its own rate");
    let by_client = &proxy.stats.snapshot()["connections_refused"]["by_client"];
    assert_eq!(by_client[0]["client_address"], "127.0.0.1");
    assert_eq!(by_client[0]["client_id"], serde_json::Value::Null);
    proxy.shutdown(Duration::from_secs(10)).await;
}

#[tokio::test]
async fn first_bytes_that_are_not_kafka_are_forwarded_unchanged_and_not_counted() {
    let (echo, upstream_accepted) = counting_echo().await;
    let proxy = TestProxy::start(echo, |c| {
        c.guard.max_connections_per_client = 1;
        c.guard.new_connections_per_sec_per_client = 1;
    })
    .await;
    // A TLS ClientHello's first bytes, plain text, random bytes: each forwarded as it came,
    // twice over (a client key limit of 1 would refuse the second if they were counted).
    let mut hello = vec![
        0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03,
    ];
    hello.extend_from_slice(&random_bytes(1, 500));
    let texts: [Vec<u8>; 3] = [
        hello,
        b"GET / HTTP/1.1\r\nHost: kafka\r\n\r\n".to_vec(),
        random_bytes(2, 64 * 1024),
    ];
    let mut held = Vec::new();
    for bytes in texts.iter().chain(texts.iter()) {
        let mut c = connect(proxy.addr).await;
        assert!(echoed(&mut c, bytes).await, "forwarded");
        held.push(c);
    }
    assert_eq!(upstream_accepted.load(Relaxed), 6);
    // A Kafka header that arrives a byte at a time is still read, and forwarded whole.
    let frame = request("slow-writer");
    let mut c = connect(proxy.addr).await;
    for b in &frame {
        c.write_all(&[*b]).await.unwrap();
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let mut back = vec![0u8; frame.len()];
    within("echo", Duration::from_secs(10), c.read_exact(&mut back))
        .await
        .unwrap();
    assert_eq!(back, frame);
    let (ok, _second) = try_client(ONE, proxy.addr, "slow-writer").await;
    assert!(!ok, "the byte-at-a-time client was counted under its key");
    let snap = proxy.stats.snapshot()["connections_refused"].clone();
    assert_eq!(snap["by_client"][0]["client_id"], "slow-writer");
    proxy.shutdown(Duration::from_secs(10)).await;
}

#[tokio::test]
async fn with_every_guard_off_nothing_waits_for_the_client_before_the_broker_is_connected() {
    let (echo, upstream_accepted) = counting_echo().await;
    let proxy = TestProxy::start(echo, |_| {}).await;
    let silent = connect(proxy.addr).await;
    wait_for("upstream connected", Duration::from_secs(5), || {
        upstream_accepted.load(Relaxed) == 1
    })
    .await;
    drop(silent);
    proxy.shutdown(Duration::from_secs(10)).await;

    // With a client key limit on, the broker is contacted only once the header is there.
    let (echo, upstream_accepted) = counting_echo().await;
    let proxy = TestProxy::start(echo, |c| c.guard.max_connections_per_client = 5).await;
    let mut c = connect(proxy.addr).await;
    wait_for("accepted", Duration::from_secs(5), || {
        proxy.stats.connections_open.load(Relaxed) == 1
    })
    .await;
    assert_eq!(upstream_accepted.load(Relaxed), 0);
    assert!(echoed(&mut c, &request("late")).await);
    assert_eq!(upstream_accepted.load(Relaxed), 1);
    proxy.shutdown(Duration::from_secs(10)).await;
}

#[tokio::test]
async fn max_connections_still_applies_overall() {
    let (echo, _) = counting_echo().await;
    let proxy = TestProxy::start(echo, |c| {
        c.max_connections = 2;
        c.guard.max_connections_per_client = 10;
        c.guard.new_connections_per_sec_per_host = 100;
    })
    .await;
    let (ok1, first) = try_client(ONE, proxy.addr, "a").await;
    let (ok2, _second) = try_client(TWO, proxy.addr, "b").await;
    assert!(ok1 && ok2);
    // The third waits in the backlog (not refused), and is served once one closes.
    let mut third = connect_from([127, 0, 0, 3], proxy.addr).await;
    let frame = request("c");
    third.write_all(&frame).await.unwrap();
    let mut back = vec![0u8; frame.len()];
    let early = tokio::time::timeout(Duration::from_millis(200), third.read_exact(&mut back)).await;
    assert!(early.is_err(), "the third is not served while two are open");
    drop(first);
    within(
        "served",
        Duration::from_secs(10),
        third.read_exact(&mut back),
    )
    .await
    .unwrap();
    assert_eq!(back, frame);
    for reason in [
        "per_host_open",
        "per_host_rate",
        "per_client_open",
        "per_client_rate",
    ] {
        assert_eq!(refused(&proxy, reason), 0, "{reason}");
    }
    proxy.shutdown(Duration::from_secs(10)).await;
}

/// The figures in the README's "Connection guards": how long a new connection's first request
/// takes to come back through the proxy (connect, send, echo), with every guard off, with the
/// host rate on, and with the client key limits on (the header is peeked before the upstream
/// connect). Limits high enough that nothing is refused. Run with
/// `cargo test -p sluice --test guards -- --ignored --nocapture first_request_cost`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement, not a check"]
async fn first_request_cost() {
    const PER_ROUND: usize = 500;
    const ROUNDS: usize = 4;
    let (echo, _) = counting_echo().await;
    type Tweak = fn(&mut sluice::Config);
    let modes: [(&str, Tweak); 3] = [
        ("off", |_| {}),
        ("host rate", |c| {
            c.guard.new_connections_per_sec_per_host = 1_000_000
        }),
        ("client key", |c| {
            c.guard.max_connections_per_client = 1_000_000;
            c.guard.new_connections_per_sec_per_client = 1_000_000;
        }),
    ];
    let mut proxies = Vec::new();
    for (_, tweak) in &modes {
        proxies.push(TestProxy::start(echo, tweak).await);
    }
    let frame = request("cost-probe");
    let mut samples: Vec<Vec<Duration>> = vec![Vec::new(); modes.len()];
    for _ in 0..ROUNDS {
        for (i, proxy) in proxies.iter().enumerate() {
            for _ in 0..PER_ROUND {
                let started = Instant::now();
                let mut c = connect(proxy.addr).await;
                c.write_all(&frame).await.unwrap();
                let mut back = vec![0u8; frame.len()];
                c.read_exact(&mut back).await.unwrap();
                samples[i].push(started.elapsed());
            }
        }
    }
    for ((name, _), s) in modes.iter().zip(&mut samples) {
        s.sort();
        let at = |q: f64| s[((s.len() - 1) as f64 * q) as usize].as_micros();
        println!(
            "{name:<10} n={} p50={}µs p90={}µs p99={}µs",
            s.len(),
            at(0.5),
            at(0.9),
            at(0.99)
        );
    }
    for p in proxies {
        p.shutdown(Duration::from_secs(10)).await;
    }
}
