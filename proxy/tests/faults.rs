//! Faults around the pipe: the broker is down, a client vanishes, a thousand connections come
//! and go, a slow reader, the connection limit, and shutdown in the middle of traffic.

mod support;

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket};

#[tokio::test]
async fn upstream_down_closes_the_client_promptly() {
    let down = closed_port().await;
    let proxy = TestProxy::start(down, |_| {}).await;
    let mut client = connect(proxy.addr).await;
    let started = Instant::now();
    let mut buf = [0u8; 16];
    let n = within(
        "client closed",
        Duration::from_secs(5),
        client.read(&mut buf),
    )
    .await
    .unwrap_or(0);
    assert_eq!(n, 0, "the client must see its connection closed");
    assert!(started.elapsed() < Duration::from_secs(5));
    wait_for("failure counted", Duration::from_secs(5), || {
        proxy.stats.upstream_connect_failures.load(Relaxed) == 1
    })
    .await;
    proxy.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test]
async fn upstream_that_never_answers_times_out() {
    // A listener whose accept backlog is full: further SYNs are dropped, connects hang.
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let silent = socket.listen(0).unwrap();
    let addr = silent.local_addr().unwrap();
    let mut fillers = Vec::new();
    for _ in 0..4 {
        if let Ok(Ok(s)) = tokio::time::timeout(
            Duration::from_millis(200),
            tokio::net::TcpStream::connect(addr),
        )
        .await
        {
            fillers.push(s);
        }
    }
    let proxy = TestProxy::start(addr, |c| c.connect_timeout = Duration::from_millis(300)).await;
    let mut client = connect(proxy.addr).await;
    let mut buf = [0u8; 1];
    let n = within(
        "client closed after the timeout",
        Duration::from_secs(10),
        client.read(&mut buf),
    )
    .await
    .unwrap_or(0);
    assert_eq!(n, 0);
    assert_eq!(proxy.stats.upstream_connect_failures.load(Relaxed), 1);
    proxy.shutdown(Duration::from_secs(5)).await;
    drop(silent);
}

#[tokio::test]
async fn client_vanishing_mid_request_closes_the_upstream_side() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let upstream = listener.local_addr().unwrap();
    let proxy = TestProxy::start(upstream, |_| {}).await;
    let client = connect(proxy.addr).await;
    let (mut broker_side, _) = listener.accept().await.unwrap();
    // Half a request: a length of 100 and only 10 body bytes, then the client is gone (RST).
    let mut client = client;
    client.write_all(&100i32.to_be_bytes()).await.unwrap();
    client.write_all(&[7u8; 10]).await.unwrap();
    let mut got = vec![0u8; 14];
    broker_side.read_exact(&mut got).await.unwrap();
    client.set_zero_linger().unwrap();
    drop(client);
    // The proxy must close its upstream side (EOF or reset) and forward nothing more.
    let mut rest = Vec::new();
    let _ = within(
        "broker side closed",
        Duration::from_secs(5),
        broker_side.read_to_end(&mut rest),
    )
    .await;
    assert!(
        rest.is_empty(),
        "nothing may be invented after the client vanished"
    );
    wait_for("connection gone", Duration::from_secs(5), || {
        proxy.stats.connections_open.load(Relaxed) == 0
    })
    .await;
    proxy.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_concurrent_connections_open_and_close() {
    const N: usize = 1000;
    let echo = echo_server().await;
    let proxy = TestProxy::start(echo, |_| {}).await;
    let mut clients = Vec::with_capacity(N);
    for _ in 0..N {
        clients.push(connect(proxy.addr).await);
    }
    wait_for("all connections open", Duration::from_secs(30), || {
        proxy.stats.connections_open.load(Relaxed) == N as u64
    })
    .await;
    let tasks: Vec<_> = clients
        .into_iter()
        .enumerate()
        .map(|(i, mut c)| {
            tokio::spawn(async move {
                let msg = format!("hello from {i}");
                c.write_all(msg.as_bytes()).await.unwrap();
                c.shutdown().await.unwrap();
                let mut back = String::new();
                c.read_to_string(&mut back).await.unwrap();
                assert_eq!(back, msg);
            })
        })
        .collect();
    for t in tasks {
        within("echo", Duration::from_secs(30), t).await.unwrap();
    }
    wait_for("all connections closed", Duration::from_secs(30), || {
        proxy.stats.connections_open.load(Relaxed) == 0
    })
    .await;
    assert_eq!(proxy.stats.connections_accepted.load(Relaxed), N as u64);
    proxy.shutdown(Duration::from_secs(10)).await;
}

#[tokio::test]
async fn connection_limit_holds_new_clients_until_one_closes() {
    let echo = echo_server().await;
    let proxy = TestProxy::start(echo, |c| c.max_connections = 2).await;
    let mut a = connect(proxy.addr).await;
    let _b = connect(proxy.addr).await;
    wait_for("two accepted", Duration::from_secs(5), || {
        proxy.stats.connections_accepted.load(Relaxed) == 2
    })
    .await;
    // The third completes the TCP handshake in the kernel backlog but is not accepted.
    let mut c = connect(proxy.addr).await;
    c.write_all(b"third").await.unwrap();
    wait_for("limit reached", Duration::from_secs(5), || {
        proxy.stats.connection_limit_waits.load(Relaxed) >= 1
    })
    .await;
    assert_eq!(proxy.stats.connections_accepted.load(Relaxed), 2);
    a.shutdown().await.unwrap();
    let mut sink = Vec::new();
    a.read_to_end(&mut sink).await.unwrap();
    drop(a);
    let mut back = [0u8; 5];
    within(
        "third served",
        Duration::from_secs(5),
        c.read_exact(&mut back),
    )
    .await
    .unwrap();
    assert_eq!(&back, b"third");
    assert_eq!(proxy.stats.connections_accepted.load(Relaxed), 3);
    proxy.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_reader_slows_the_writer_and_memory_stays_bounded() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let upstream = listener.local_addr().unwrap();
    let proxy = TestProxy::start(upstream, |c| c.buffer_size = 64 * 1024).await;
    let mut client = connect(proxy.addr).await;
    let (mut broker_side, _) = listener.accept().await.unwrap();
    let data = random_bytes(11, 64 * 1024 * 1024);
    let expected = sha256(&data);
    let sent = Arc::new(AtomicU64::new(0));
    let sent2 = sent.clone();
    let writer = tokio::spawn(async move {
        for chunk in data.chunks(64 * 1024) {
            client.write_all(chunk).await.unwrap();
            sent2.fetch_add(chunk.len() as u64, Relaxed);
        }
        client.shutdown().await.unwrap();
        client
    });
    // The broker does not read: the writer must stall far short of 64 MiB.
    let mut last = u64::MAX;
    let stalled = async {
        loop {
            tokio::time::sleep(Duration::from_millis(100)).await;
            let now = sent.load(Relaxed);
            if now == last {
                return now;
            }
            last = now;
        }
    };
    let stalled_at = within("writer stalls", Duration::from_secs(20), stalled).await;
    let in_proxy = proxy.stats.bytes_to_broker.load(Relaxed);
    assert!(
        stalled_at < 32 * 1024 * 1024,
        "writer was not slowed: {stalled_at} bytes sent"
    );
    assert!(
        stalled_at - in_proxy <= 64 * 1024 + 16 * 1024 * 1024,
        "proxy holds too much: sent {stalled_at}, forwarded {in_proxy}"
    );
    // Now the broker reads everything: it all arrives, in order.
    let (n, h) = within(
        "drain",
        Duration::from_secs(60),
        read_hash(&mut broker_side),
    )
    .await;
    assert_eq!(n, 64 * 1024 * 1024);
    assert_eq!(h, expected);
    drop(writer.await.unwrap());
    proxy.shutdown(Duration::from_secs(5)).await;
}

/// A fake broker: answers every request frame with a response frame of `response_size` bytes
/// after `delay`, and counts the requests it saw.
async fn answering_broker(
    response_size: usize,
    delay: Duration,
) -> (std::net::SocketAddr, Arc<AtomicU64>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(AtomicU64::new(0));
    let seen2 = seen.clone();
    tokio::spawn(async move {
        while let Ok((s, _)) = listener.accept().await {
            let seen = seen2.clone();
            tokio::spawn(async move {
                let (mut r, mut w) = s.into_split();
                loop {
                    let mut len = [0u8; 4];
                    if r.read_exact(&mut len).await.is_err() {
                        break;
                    }
                    let mut body = vec![0u8; i32::from_be_bytes(len) as usize];
                    if r.read_exact(&mut body).await.is_err() {
                        break;
                    }
                    seen.fetch_add(1, Relaxed);
                    tokio::time::sleep(delay).await;
                    let mut resp = (response_size as i32).to_be_bytes().to_vec();
                    resp.extend(std::iter::repeat_n(0x5A, response_size));
                    if w.write_all(&resp).await.is_err() {
                        break;
                    }
                }
            });
        }
    });
    (addr, seen)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_during_traffic_lets_in_flight_responses_finish() {
    let (broker, seen) = answering_broker(300_000, Duration::from_millis(20)).await;
    // These frames are not Kafka requests: with the tap on it would give up on them, and a
    // connection the tap gave up on is not waited for (tests/drain.rs). Off, frames are counted.
    let mut proxy = TestProxy::start(broker, |c| {
        c.shutdown_grace = Duration::from_secs(10);
        c.tap.enabled = false;
    })
    .await;
    let client = connect(proxy.addr).await;
    let (mut r, mut w) = client.into_split();
    // Pipelined requests, written byte-slowly at the end so the drain may start mid-frame.
    let writer = tokio::spawn(async move {
        let mut written = 0u64;
        for i in 0.. {
            let mut req = 64i32.to_be_bytes().to_vec();
            req.extend([i as u8; 64]);
            let (head, tail) = req.split_at(30);
            if w.write_all(head).await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
            if w.write_all(tail).await.is_err() {
                break;
            }
            written += 1;
        }
        written
    });
    let reader = tokio::spawn(async move {
        let mut complete = 0u64;
        loop {
            let mut len = [0u8; 4];
            match r.read_exact(&mut len).await {
                Ok(_) => {}
                Err(_) => return (complete, true),
            }
            let mut body = vec![0u8; i32::from_be_bytes(len) as usize];
            if r.read_exact(&mut body).await.is_err() {
                return (complete, false); // a torn response
            }
            complete += 1;
        }
    });
    wait_for("traffic flowing", Duration::from_secs(10), || {
        seen.load(Relaxed) >= 5
    })
    .await;
    proxy.begin_shutdown();
    let (responses, clean_end) = within("client sees the close", Duration::from_secs(15), reader)
        .await
        .unwrap();
    within("proxy stops", Duration::from_secs(15), proxy.task)
        .await
        .unwrap();
    writer.abort();
    assert!(clean_end, "the client received a torn response frame");
    assert_eq!(
        responses,
        seen.load(Relaxed),
        "every request the broker received must get its response through"
    );
    assert_eq!(proxy.stats.connections_cut_at_deadline.load(Relaxed), 0);
}

#[tokio::test]
async fn shutdown_cuts_connections_after_the_grace_period() {
    // The broker never answers, so the drain can't finish: the grace period decides.
    let (broker, _seen) = answering_broker(10, Duration::from_secs(3600)).await;
    let mut proxy =
        TestProxy::start(broker, |c| c.shutdown_grace = Duration::from_millis(300)).await;
    let mut client = connect(proxy.addr).await;
    // A ListOffsets v1 request (correlation id 1, no client id): the tap waits for its answer.
    // (Bytes without a readable request header would not be waited for: a broker closes a
    // connection whose request it cannot read.)
    let mut req = 14i32.to_be_bytes().to_vec();
    req.extend([0, 2, 0, 1, 0, 0, 0, 1, 0xff, 0xff, 0, 0, 0, 0]);
    client.write_all(&req).await.unwrap();
    wait_for("open", Duration::from_secs(5), || {
        proxy.stats.connections_open.load(Relaxed) == 1
    })
    .await;
    let started = Instant::now();
    proxy.begin_shutdown();
    within("proxy stops", Duration::from_secs(10), proxy.task)
        .await
        .unwrap();
    assert!(started.elapsed() >= Duration::from_millis(300));
    assert_eq!(proxy.stats.connections_cut_at_deadline.load(Relaxed), 1);
    let mut buf = [0u8; 1];
    let n = within(
        "client closed",
        Duration::from_secs(5),
        client.read(&mut buf),
    )
    .await
    .unwrap_or(0);
    assert_eq!(n, 0);
}

#[tokio::test]
async fn idle_connections_close_at_once_on_shutdown() {
    let echo = echo_server().await;
    let mut proxy = TestProxy::start(echo, |c| c.shutdown_grace = Duration::from_secs(30)).await;
    let mut clients = Vec::new();
    for _ in 0..20 {
        clients.push(connect(proxy.addr).await);
    }
    wait_for("open", Duration::from_secs(5), || {
        proxy.stats.connections_open.load(Relaxed) == 20
    })
    .await;
    proxy.begin_shutdown();
    // Far less than the 30 s grace: nothing is in flight, so nothing to wait for.
    within("proxy stops", Duration::from_secs(5), proxy.task)
        .await
        .unwrap();
    for mut c in clients {
        let mut buf = [0u8; 1];
        assert_eq!(c.read(&mut buf).await.unwrap_or(0), 0);
    }
}

/// A tap sink that panics when a connection opens, inside the connection's task.
#[derive(Debug)]
struct PanicsOnOpen;

impl sluice::TapSink for PanicsOnOpen {
    fn on_event(&self, _: &sluice::ConnMeta, _: &sluice_protocol::TapEvent) {}
    fn on_open(&self, _: &sluice::ConnMeta) {
        panic!("a sink that panics on open");
    }
}

#[tokio::test]
async fn a_connection_task_that_panics_is_still_counted_closed() {
    let upstream = echo_server().await;
    let proxy = TestProxy::start_with(
        upstream,
        |c| c.max_connections = 1,
        |p| p.with_sink(Arc::new(PanicsOnOpen)),
    )
    .await;
    let stats = proxy.stats.clone();
    for n in 1..=3u64 {
        let mut client = connect(proxy.addr).await;
        // The task panics: the client sees its connection end.
        let mut buf = [0u8; 1];
        let read = within(
            "the connection ends",
            Duration::from_secs(5),
            client.read(&mut buf),
        )
        .await;
        assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
        wait_for(
            "the open count to fall back",
            Duration::from_secs(5),
            || stats.connections_open.load(Relaxed) == 0,
        )
        .await;
        // With max_connections = 1 the next client is only accepted if the permit came back.
        wait_for("accepted", Duration::from_secs(5), || {
            stats.connections_accepted.load(Relaxed) == n
        })
        .await;
    }
    proxy.shutdown(Duration::from_secs(10)).await;
}
