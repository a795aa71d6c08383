//! The drain at shutdown on connections that never come back to a request/response boundary by
//! counting frames: a producer with acks=0 (its requests get no response) and a TLS client on
//! the plaintext port (its ClientHello reads as a 369 MB frame). Both must let the proxy stop
//! long before the grace period is over, while a Kafka request in flight still gets its
//! response through.

mod support;

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// The grace period of these tests: the proxy must stop far sooner.
const GRACE: Duration = Duration::from_secs(30);
/// How long the proxy may take to stop: a third of the grace.
const STOPS_WITHIN: Duration = Duration::from_secs(10);

/// A broker that reads everything and never answers; counts the bytes it read.
async fn silent_broker() -> (std::net::SocketAddr, Arc<AtomicU64>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let read = Arc::new(AtomicU64::new(0));
    let counted = read.clone();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let counted = counted.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 64 * 1024];
                while let Ok(n @ 1..) = s.read(&mut buf).await {
                    counted.fetch_add(n as u64, Relaxed);
                }
                // Holds its side open until the proxy closes it.
            });
        }
    });
    (addr, read)
}

/// A request frame: `api_key`, `api_version`, `correlation_id`, no client id, then `body`.
fn request(api_key: i16, api_version: i16, correlation_id: i32, body: &[u8]) -> Vec<u8> {
    let mut f = Vec::new();
    f.extend_from_slice(&api_key.to_be_bytes());
    f.extend_from_slice(&api_version.to_be_bytes());
    f.extend_from_slice(&correlation_id.to_be_bytes());
    f.extend_from_slice(&(-1i16).to_be_bytes());
    f.extend_from_slice(body);
    let mut framed = (f.len() as i32).to_be_bytes().to_vec();
    framed.extend_from_slice(&f);
    framed
}

/// A Produce v3 request with acks=0 (no transactional id, a timeout, no topics).
fn produce_acks0(correlation_id: i32) -> Vec<u8> {
    let mut body = Vec::new();
    body.extend_from_slice(&(-1i16).to_be_bytes()); // transactional_id: null
    body.extend_from_slice(&0i16.to_be_bytes()); // acks
    body.extend_from_slice(&30_000i32.to_be_bytes()); // timeout_ms
    body.extend_from_slice(&0i32.to_be_bytes()); // topics: none
    request(0, 3, correlation_id, &body)
}

/// The first bytes a TLS 1.2/1.3 client sends: a handshake record holding a ClientHello.
fn tls_client_hello() -> Vec<u8> {
    let mut hello = vec![0x16, 0x03, 0x01, 0x02, 0x00]; // record: handshake, TLS 1.0, 512 bytes
    hello.extend_from_slice(&[0x01, 0x00, 0x01, 0xfc, 0x03, 0x03]); // ClientHello, TLS 1.2
    hello.extend(random_bytes(7, 32)); // random
    hello.resize(5 + 512, 0);
    hello
}

async fn proxy_to(broker: std::net::SocketAddr) -> TestProxy {
    TestProxy::start(broker, |c| c.shutdown_grace = GRACE).await
}

/// Shuts down and asserts the proxy stopped within [`STOPS_WITHIN`], before the grace's end.
async fn stops_early(mut proxy: TestProxy) -> Arc<sluice::ProxyStats> {
    let stats = proxy.stats.clone();
    proxy.begin_shutdown();
    within(
        "the proxy stops well before the grace period is over",
        STOPS_WITHIN,
        proxy.task,
    )
    .await
    .unwrap();
    assert_eq!(stats.connections_cut_at_deadline.load(Relaxed), 0);
    stats
}

#[tokio::test]
async fn an_acks0_producer_does_not_hold_the_drain() {
    let (broker, read) = silent_broker().await;
    let proxy = proxy_to(broker).await;
    let mut client = connect(proxy.addr).await;
    let mut sent = 0;
    for c in 1..=3 {
        let req = produce_acks0(c);
        sent += req.len() as u64;
        client.write_all(&req).await.unwrap();
    }
    wait_for("the broker read them", Duration::from_secs(5), || {
        read.load(Relaxed) == sent
    })
    .await;
    stops_early(proxy).await;
    let mut buf = [0u8; 1];
    let n = within(
        "client closed",
        Duration::from_secs(5),
        client.read(&mut buf),
    )
    .await;
    assert!(matches!(n, Ok(0) | Err(_)), "{n:?}");
}

#[tokio::test]
async fn a_tls_client_on_the_plaintext_port_does_not_hold_the_drain() {
    let (broker, read) = silent_broker().await;
    let proxy = proxy_to(broker).await;
    let mut client = connect(proxy.addr).await;
    let hello = tls_client_hello();
    client.write_all(&hello).await.unwrap();
    wait_for("the broker read it", Duration::from_secs(5), || {
        read.load(Relaxed) == hello.len() as u64
    })
    .await;
    stops_early(proxy).await;
}

#[tokio::test]
async fn the_same_with_the_tap_off_for_the_tls_client() {
    let (broker, read) = silent_broker().await;
    let proxy = TestProxy::start(broker, |c| {
        c.shutdown_grace = GRACE;
        c.tap.enabled = false;
    })
    .await;
    let mut client = connect(proxy.addr).await;
    let hello = tls_client_hello();
    client.write_all(&hello).await.unwrap();
    wait_for("the broker read it", Duration::from_secs(5), || {
        read.load(Relaxed) == hello.len() as u64
    })
    .await;
    stops_early(proxy).await;
}

/// A broker that answers each request but Produce (here all acks=0) after `delay` with its
/// correlation id and four more bytes, and counts the requests it read.
async fn answering_broker(delay: Duration) -> (std::net::SocketAddr, Arc<AtomicU64>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(AtomicU64::new(0));
    let counted = seen.clone();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let counted = counted.clone();
            tokio::spawn(async move {
                loop {
                    let mut len = [0u8; 4];
                    if s.read_exact(&mut len).await.is_err() {
                        break;
                    }
                    let mut body = vec![0u8; i32::from_be_bytes(len).clamp(0, 1 << 20) as usize];
                    if s.read_exact(&mut body).await.is_err() {
                        break;
                    }
                    counted.fetch_add(1, Relaxed);
                    if body.len() < 8 || body[..2] == [0, 0] {
                        continue; // Produce with acks=0: no response
                    }
                    tokio::time::sleep(delay).await;
                    let mut resp = 8i32.to_be_bytes().to_vec();
                    resp.extend_from_slice(&body[4..8]); // the correlation id
                    resp.extend_from_slice(&[0, 0, 0, 0]);
                    if s.write_all(&resp).await.is_err() {
                        break;
                    }
                }
            });
        }
    });
    (addr, seen)
}

#[tokio::test]
async fn a_request_in_flight_still_gets_its_response_during_the_drain() {
    let (broker, seen) = answering_broker(Duration::from_millis(500)).await;
    let mut proxy = proxy_to(broker).await;
    let mut client = connect(proxy.addr).await;
    // An acks=0 Produce first (no response), then a ListOffsets v1 that gets one.
    client.write_all(&produce_acks0(1)).await.unwrap();
    let list_offsets = request(2, 1, 2, &[0, 0, 0, 0]);
    client.write_all(&list_offsets).await.unwrap();
    wait_for("the broker read both", Duration::from_secs(5), || {
        seen.load(Relaxed) == 2
    })
    .await;
    proxy.begin_shutdown();
    let mut got = Vec::new();
    within(
        "the client reads to the close",
        STOPS_WITHIN,
        client.read_to_end(&mut got),
    )
    .await
    .unwrap();
    let mut expected = Vec::new();
    expected.extend_from_slice(&8i32.to_be_bytes());
    expected.extend_from_slice(&2i32.to_be_bytes());
    expected.extend_from_slice(&[0, 0, 0, 0]);
    assert_eq!(got, expected, "the response arrives whole before the close");
    within("the proxy stops", STOPS_WITHIN, proxy.task)
        .await
        .unwrap();
}

/// A broker that reads everything and, once it has read `after` bytes, sends one response
/// frame with correlation id 99 (answering nothing), then stays silent with its side open.
async fn stray_response_broker(after: u64) -> std::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            tokio::spawn(async move {
                let (mut buf, mut read, mut sent) = (vec![0u8; 64 * 1024], 0u64, false);
                while let Ok(n @ 1..) = s.read(&mut buf).await {
                    read += n as u64;
                    if read >= after && !sent {
                        sent = true;
                        let mut resp = 8i32.to_be_bytes().to_vec();
                        resp.extend_from_slice(&99i32.to_be_bytes());
                        resp.extend_from_slice(&[0, 0, 0, 0]);
                        let _ = s.write_all(&resp).await;
                    }
                }
            });
        }
    });
    addr
}

#[tokio::test]
async fn a_connection_the_tap_gave_up_on_is_not_waited_for() {
    // Two acks=0 Produce requests and a response that answers neither: the tap gives up on
    // the connection, and frame counts (two requests, one response) would wait for another.
    let two = 2 * produce_acks0(1).len() as u64;
    let broker = stray_response_broker(two).await;
    let proxy = proxy_to(broker).await;
    let mut client = connect(proxy.addr).await;
    client.write_all(&produce_acks0(1)).await.unwrap();
    client.write_all(&produce_acks0(2)).await.unwrap();
    let mut stray = [0u8; 12];
    within(
        "the stray response",
        Duration::from_secs(5),
        client.read_exact(&mut stray),
    )
    .await
    .unwrap();
    wait_for("the tap gave up", Duration::from_secs(5), || {
        proxy.stats.opaque_connections.load(Relaxed) == 1
    })
    .await;
    stops_early(proxy).await;
}
