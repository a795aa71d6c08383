//! The accept loop of an admin listener. Unlike `axum::serve`, it bounds what a client can hold:
//! - at most `admin.max_connections` connections; one more is answered 503 and closed;
//! - a request's headers must arrive within `admin.header_timeout`, counted from when the
//!   connection starts waiting for one (so a kept-alive connection idles at most that long);
//! - a connection on which no byte moves either way for `admin.idle_timeout` is closed (a
//!   client that stops reading its answer);
//! - on shutdown, idle connections close at once and the rest get [`STOP_WITHIN`] to finish
//!   their answer, then are closed: no admin client can hold the process.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use sluice_config::AdminConfig;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use tokio::time::{Instant, Sleep};
use tokio_util::sync::CancellationToken;

/// On shutdown, how long admin connections may take to finish the answer they are writing.
pub const STOP_WITHIN: Duration = Duration::from_secs(1);

/// Refused connections being answered at once; beyond, one more is closed without an answer.
const REFUSING_AT_ONCE: usize = 64;

/// How long a refused connection is given to take its 503 (its request is read and dropped
/// meanwhile, so closing does not reset the connection before the client reads the answer).
const REFUSE_LINGER: Duration = Duration::from_millis(250);

/// Pause after a failed accept (e.g. out of file descriptors), doubled on each failure in a
/// row up to [`ACCEPT_BACKOFF_MAX`].
const ACCEPT_BACKOFF: Duration = Duration::from_millis(10);
const ACCEPT_BACKOFF_MAX: Duration = Duration::from_secs(1);

const REFUSED: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: text/plain\r\n\
content-length: 27\r\nconnection: close\r\n\r\ntoo many admin connections\n";

/// What one admin connection may hold.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Connections open at once.
    pub max_connections: usize,
    /// Time for a request's headers to arrive.
    pub header_timeout: Duration,
    /// Time without a byte moving either way.
    pub idle_timeout: Duration,
}

impl From<&AdminConfig> for Limits {
    fn from(c: &AdminConfig) -> Limits {
        Limits {
            max_connections: c.max_connections,
            header_timeout: c.header_timeout,
            idle_timeout: c.idle_timeout,
        }
    }
}

/// Serves `app` on `listener` until `stop` is cancelled, then closes every connection within
/// [`STOP_WITHIN`].
pub async fn serve(listener: TcpListener, app: Router, limits: Limits, stop: CancellationToken) {
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    let refusing = Arc::new(Semaphore::new(REFUSING_AT_ONCE));
    let mut conns = JoinSet::new();
    let mut backoff = ACCEPT_BACKOFF;
    loop {
        tokio::select! {
            _ = stop.cancelled() => break,
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    backoff = ACCEPT_BACKOFF;
                    match permits.clone().try_acquire_owned() {
                        Ok(permit) => {
                            let stop = stop.clone();
                            conns.spawn(connection(stream, app.clone(), limits, stop, permit));
                        }
                        Err(_) => {
                            tracing::debug!("admin connection refused: at admin.max_connections");
                            if let Ok(slot) = refusing.clone().try_acquire_owned() {
                                conns.spawn(refuse(stream, slot));
                            }
                        }
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, backoff_ms = backoff.as_millis() as u64,
                        "admin accept failed; backing off");
                    tokio::select! {
                        _ = stop.cancelled() => break,
                        _ = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(ACCEPT_BACKOFF_MAX);
                }
            },
        }
    }
    drop(listener);
    let all_closed = async { while conns.join_next().await.is_some() {} };
    if tokio::time::timeout(STOP_WITHIN, all_closed).await.is_err() {
        tracing::debug!(
            connections = conns.len(),
            "admin connections still open at shutdown: closed"
        );
        conns.shutdown().await;
    }
}

async fn connection(
    stream: TcpStream,
    app: Router,
    limits: Limits,
    stop: CancellationToken,
    _permit: OwnedSemaphorePermit,
) {
    let _ = stream.set_nodelay(true);
    let io = TokioIo::new(IdleIo::new(stream, limits.idle_timeout));
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .keep_alive(true);
    let conn = builder.serve_connection(io, TowerToHyperService::new(app));
    tokio::pin!(conn);
    let result = tokio::select! {
        r = conn.as_mut() => r,
        _ = stop.cancelled() => {
            // Closes at once when idle; otherwise after the answer in progress (the caller
            // bounds that wait).
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    };
    if let Err(e) = result {
        tracing::debug!(error = %e, "admin connection ended");
    }
}

/// Answers 503 and closes, reading (and dropping) what the client sent meanwhile.
async fn refuse(mut stream: TcpStream, _slot: OwnedSemaphorePermit) {
    let _ = tokio::time::timeout(REFUSE_LINGER, async {
        stream.write_all(REFUSED).await?;
        stream.shutdown().await?;
        let mut sink = [0u8; 1024];
        while stream.read(&mut sink).await? > 0 {}
        Ok::<_, io::Error>(())
    })
    .await;
}

/// A stream that fails with `TimedOut` once neither a read nor a write has made progress for
/// its idle time while one of them waits.
#[derive(Debug)]
struct IdleIo {
    inner: TcpStream,
    idle: Duration,
    deadline: Pin<Box<Sleep>>,
}

impl IdleIo {
    fn new(inner: TcpStream, idle: Duration) -> IdleIo {
        IdleIo {
            inner,
            idle,
            deadline: Box::pin(tokio::time::sleep(idle)),
        }
    }

    fn moved(&mut self) {
        self.deadline.as_mut().reset(Instant::now() + self.idle);
    }

    /// Called when an operation waits: an error once the idle time is over.
    fn waited<T>(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<T>> {
        match self.deadline.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "admin connection idle for admin.idle_timeout",
            ))),
            Poll::Pending => Poll::Pending,
        }
    }

    fn after<T>(&mut self, cx: &mut Context<'_>, p: Poll<io::Result<T>>) -> Poll<io::Result<T>> {
        match p {
            Poll::Ready(r) => {
                self.moved();
                Poll::Ready(r)
            }
            Poll::Pending => self.waited(cx),
        }
    }
}

impl AsyncRead for IdleIo {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let p = Pin::new(&mut this.inner).poll_read(cx, buf);
        this.after(cx, p)
    }
}

impl AsyncWrite for IdleIo {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let p = Pin::new(&mut this.inner).poll_write(cx, buf);
        this.after(cx, p)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let p = Pin::new(&mut this.inner).poll_flush(cx);
        this.after(cx, p)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let p = Pin::new(&mut this.inner).poll_shutdown(cx);
        this.after(cx, p)
    }
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;
    use std::time::Instant as StdInstant;

    use axum::routing::get;

    use super::*;

    async fn start(app: Router, limits: Limits) -> (SocketAddr, CancellationToken) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let stop = CancellationToken::new();
        tokio::spawn(serve(listener, app, limits, stop.clone()));
        (addr, stop)
    }

    async fn status(addr: SocketAddr, path: &str) -> String {
        let mut s = TcpStream::connect(addr).await.unwrap();
        let req = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        s.write_all(req.as_bytes()).await.unwrap();
        let mut head = vec![0u8; 12];
        match s.read_exact(&mut head).await {
            Ok(_) => String::from_utf8_lossy(&head).into_owned(),
            Err(e) => format!("{e}"),
        }
    }

    #[tokio::test]
    async fn a_client_that_stops_reading_its_answer_is_closed_after_the_idle_timeout() {
        let app = Router::new()
            .route("/big", get(|| async { vec![b'x'; 32 << 20] }))
            .route("/small", get(|| async { "ok" }));
        let limits = Limits {
            max_connections: 1,
            header_timeout: Duration::from_secs(60),
            idle_timeout: Duration::from_millis(300),
        };
        let (addr, stop) = start(app, limits).await;
        // Asks for 32 MiB and reads none of it: the server's writes stall.
        let mut stalled = TcpStream::connect(addr).await.unwrap();
        stalled
            .write_all(b"GET /big HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        // Its one slot frees once the idle timeout closes the stalled connection.
        let started = StdInstant::now();
        loop {
            let got = status(addr, "/small").await;
            if got == "HTTP/1.1 200" {
                break;
            }
            assert!(got.contains("503"), "{got}");
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "the stalled connection kept its slot"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        stop.cancel();
    }
}
