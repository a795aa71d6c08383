//! Limits on what one client can hold: a connection silent for `idle_timeout`, a connection
//! half-closed for `half_closed_timeout`, and more than `max_connections_per_host` from one
//! address. Loopback has the whole 127/8, so clients bound to 127.0.0.2 are another host.

mod support;

use std::net::SocketAddr;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};

/// Reads until end of stream (or a reset); panics if `deadline` passes first.
async fn closed_within(what: &str, deadline: Duration, client: &mut TcpStream) {
    let mut buf = [0u8; 64];
    within(what, deadline, async {
        while let Ok(n @ 1..) = client.read(&mut buf).await {
            let _ = n;
        }
    })
    .await;
}

/// An empty frame there and back through the echo upstream (whole frames, so the drain at
/// the end finds both directions at a boundary).
async fn round_trip(client: &mut TcpStream) {
    client.write_all(&[0; 4]).await.unwrap();
    let mut one = [0u8; 4];
    within("echo", Duration::from_secs(5), client.read_exact(&mut one))
        .await
        .unwrap();
}

#[tokio::test]
async fn a_silent_connection_is_closed_after_the_idle_timeout() {
    let echo = echo_server().await;
    let proxy = TestProxy::start(echo, |c| c.idle_timeout = Duration::from_millis(300)).await;
    let mut silent = connect(proxy.addr).await;
    round_trip(&mut silent).await;
    let mut chatty = connect(proxy.addr).await;
    // The chatty one talks every 50 ms, well within the timeout, while the silent one is cut.
    let talk = tokio::spawn(async move {
        for _ in 0..30 {
            round_trip(&mut chatty).await;
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        chatty
    });
    closed_within(
        "the silent connection closed",
        Duration::from_secs(5),
        &mut silent,
    )
    .await;
    wait_for("counted", Duration::from_secs(5), || {
        proxy.stats.idle_timeouts.load(Relaxed) == 1
    })
    .await;
    let mut chatty = talk.await.unwrap();
    round_trip(&mut chatty).await;
    proxy.shutdown(Duration::from_secs(10)).await;
}

/// An upstream that accepts and then does nothing: it never reads, never writes, never closes.
async fn inert_upstream() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = listener.accept().await {
            held.push(s);
        }
    });
    addr
}

#[tokio::test]
async fn a_half_closed_connection_is_closed_after_the_half_closed_timeout() {
    let upstream = inert_upstream().await;
    let proxy = TestProxy::start(upstream, |c| {
        c.half_closed_timeout = Duration::from_millis(300)
    })
    .await;
    let mut client = connect(proxy.addr).await;
    wait_for("open", Duration::from_secs(5), || {
        proxy.stats.connections_open.load(Relaxed) == 1
    })
    .await;
    client.shutdown().await.unwrap(); // the client's side is done; the broker's stays open
    closed_within("the proxy closed it", Duration::from_secs(5), &mut client).await;
    wait_for("gone and counted", Duration::from_secs(5), || {
        proxy.stats.connections_open.load(Relaxed) == 0
            && proxy.stats.half_closed_timeouts.load(Relaxed) == 1
    })
    .await;
    proxy.shutdown(Duration::from_secs(10)).await;
}

/// Connects to `proxy` from `host` (a loopback address).
async fn connect_from(host: [u8; 4], proxy: SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(SocketAddr::from((host, 0))).unwrap();
    socket.connect(proxy).await.unwrap()
}

#[tokio::test]
async fn one_host_over_its_cap_is_refused_and_others_still_get_in() {
    let echo = echo_server().await;
    let proxy = TestProxy::start(echo, |c| {
        c.max_connections = 3;
        c.max_connections_per_host = 2;
    })
    .await;
    let one = [127, 0, 0, 1];
    let mut first = connect_from(one, proxy.addr).await;
    let mut second = connect_from(one, proxy.addr).await;
    round_trip(&mut first).await;
    round_trip(&mut second).await;
    let mut third = connect_from(one, proxy.addr).await;
    closed_within(
        "the third from one host refused",
        Duration::from_secs(5),
        &mut third,
    )
    .await;
    assert_eq!(proxy.stats.connections_refused_per_host.load(Relaxed), 1);
    let by_host = &proxy.stats.snapshot()["connections_refused_by_host"];
    assert_eq!(*by_host, serde_json::json!({"127.0.0.1": 1}));
    // The refused connection gave its permit back: with max_connections = 3, another host's
    // connection is served.
    let mut other = connect_from([127, 0, 0, 2], proxy.addr).await;
    round_trip(&mut other).await;
    // A slot of the first host freed is a slot it can use again.
    drop(first);
    wait_for("closed", Duration::from_secs(5), || {
        proxy.stats.connections_open.load(Relaxed) == 2
    })
    .await;
    let mut again = connect_from(one, proxy.addr).await;
    round_trip(&mut again).await;
    assert_eq!(proxy.stats.connections_refused_per_host.load(Relaxed), 1);
    proxy.shutdown(Duration::from_secs(10)).await;
}
