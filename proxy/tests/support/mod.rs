//! Shared helpers for the proxy's tests: an in-process proxy on 127.0.0.1:0, simple upstream
//! peers, seeded random data, test certificates ([`certs`]), and waiting for a condition with
//! a deadline.
#![allow(dead_code)]

pub mod certs;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::{Rng, RngCore, SeedableRng};
use sha2::{Digest, Sha256};
use sluice::{Config, Proxy, ProxyStats};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// A proxy running in this test's runtime.
pub struct TestProxy {
    pub addr: SocketAddr,
    pub stats: Arc<ProxyStats>,
    stop: Option<oneshot::Sender<()>>,
    pub task: JoinHandle<()>,
}

impl TestProxy {
    /// Starts a proxy to `upstream` with `tweak` applied to a default config.
    pub async fn start(upstream: SocketAddr, tweak: impl FnOnce(&mut Config)) -> TestProxy {
        TestProxy::start_with(upstream, tweak, |p| p).await
    }

    /// Like [`TestProxy::start`], with `build` applied to the proxy (to add tap sinks).
    pub async fn start_with(
        upstream: SocketAddr,
        tweak: impl FnOnce(&mut Config),
        build: impl FnOnce(Proxy) -> Proxy,
    ) -> TestProxy {
        let mut config = sluice_config::Loader::new()
            .flag("upstream", "--upstream", upstream.to_string())
            .flag("listen", "--listen", "127.0.0.1:0")
            .load()
            .unwrap();
        // These upstreams are scripted peers, not Kafka: the group lookup's own connection
        // would be traffic they count.
        config.lookup.enabled = false;
        tweak(&mut config);
        let listener = TcpListener::bind(config.listen).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let proxy = build(Proxy::new(config));
        let stats = proxy.stats();
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(proxy.run(listener, async move {
            let _ = rx.await;
        }));
        TestProxy {
            addr,
            stats,
            stop: Some(tx),
            task,
        }
    }

    /// Starts the shutdown (drain) without waiting for it.
    pub fn begin_shutdown(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
    }

    /// Shuts down and waits for the proxy to finish, with a deadline.
    pub async fn shutdown(mut self, deadline: Duration) {
        self.begin_shutdown();
        tokio::time::timeout(deadline, self.task)
            .await
            .expect("proxy did not stop in time")
            .unwrap();
    }
}

/// Polls `cond` until it is true or `deadline` passes (then panics with `what`).
pub async fn wait_for(what: &str, deadline: Duration, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Runs `fut` with a deadline, panicking with `what` if it is missed.
pub async fn within<T>(what: &str, deadline: Duration, fut: impl Future<Output = T>) -> T {
    tokio::time::timeout(deadline, fut)
        .await
        .unwrap_or_else(|_| panic!("timed out: {what}"))
}

/// `len` seeded random bytes.
pub fn random_bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut v = vec![0u8; len];
    rng.fill_bytes(&mut v);
    v
}

/// Kafka-looking frames (valid int32 lengths, random bodies) totalling about `len` bytes.
pub fn kafka_like_frames(seed: u64, len: usize) -> Vec<u8> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut out = Vec::with_capacity(len + 1_100_000);
    while out.len() < len {
        let body: usize = if rng.gen_bool(0.05) {
            rng.gen_range(100_000..1_000_000)
        } else {
            rng.gen_range(0..2_000)
        };
        out.extend_from_slice(&(body as i32).to_be_bytes());
        let start = out.len();
        out.resize(start + body, 0);
        rng.fill_bytes(&mut out[start..]);
    }
    out
}

/// Writes `data` in random-sized chunks (1 byte to 256 KiB), then half-closes.
pub async fn write_chunked(stream: &mut (impl AsyncWriteExt + Unpin), data: &[u8], seed: u64) {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut rest = data;
    while !rest.is_empty() {
        let n = if rng.gen_bool(0.1) {
            rng.gen_range(1..16)
        } else {
            rng.gen_range(1..262_144)
        }
        .min(rest.len());
        stream.write_all(&rest[..n]).await.unwrap();
        rest = &rest[n..];
    }
    stream.shutdown().await.unwrap();
}

/// Reads to end of stream; returns (bytes, SHA-256).
pub async fn read_hash(stream: &mut (impl AsyncReadExt + Unpin)) -> (u64, [u8; 32]) {
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    let mut total = 0u64;
    loop {
        let n = stream.read(&mut buf).await.unwrap();
        if n == 0 {
            break;
        }
        total += n as u64;
        hasher.update(&buf[..n]);
    }
    (total, hasher.finalize().into())
}

pub fn sha256(data: &[u8]) -> [u8; 32] {
    Sha256::digest(data).into()
}

/// An upstream that echoes every byte back, one task per connection.
pub async fn echo_server() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            tokio::spawn(async move {
                let (mut r, mut w) = s.split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
                let _ = w.shutdown().await;
            });
        }
    });
    addr
}

/// A loopback address where nothing listens.
pub async fn closed_port() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    l.local_addr().unwrap()
}

/// Connects to the proxy.
pub async fn connect(addr: SocketAddr) -> TcpStream {
    TcpStream::connect(addr).await.unwrap()
}

/// Reads one Kafka frame from `s`: its 4-byte size, then the body it announces (returned
/// without the size). `None` at the end of the stream or on an error.
pub async fn read_frame(s: &mut TcpStream) -> Option<Vec<u8>> {
    let mut len = [0u8; 4];
    s.read_exact(&mut len).await.ok()?;
    let mut body = vec![0u8; i32::from_be_bytes(len) as usize];
    s.read_exact(&mut body).await.ok()?;
    Some(body)
}
