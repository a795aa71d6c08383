//! One client connection: connect to the broker, then run both halves until both end — or
//! until the connection is idle or half-closed for too long (`watch`).

use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sluice_config::{Config, Upstream};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::duplex::{Direction, Half, HalfEnd, Shared};
use crate::error::ConnError;
use crate::guard::Guards;
use crate::sink::{ConnMeta, TapSink};
use crate::stats::ProxyStats;
use crate::tap::{ConnTap, TapRegistry};
use crate::throttle::Throttle;
use crate::tls::{ServerTls, UpstreamTls};

/// One listener: its name, broker and TLS settings.
#[derive(Debug)]
pub struct Listener {
    /// `main` for the top-level listener, else its `name`.
    pub name: Arc<str>,
    /// Its broker.
    pub upstream: Upstream,
    /// TLS on the listener (`None`: plaintext).
    pub tls: Option<Arc<ServerTls>>,
    /// TLS to the broker (`None`: plaintext).
    pub upstream_tls: Option<UpstreamTls>,
}

impl Listener {
    /// Every listener of `config`, the top-level one first, its TLS files read now. A TLS
    /// setting whose files went bad since the config was validated is logged; handshakes on
    /// that listener (or connections to that broker) fail until it is fixed.
    pub fn all(config: &Config) -> Vec<Arc<Listener>> {
        config
            .all_listeners()
            .into_iter()
            .map(|l| {
                let name: Arc<str> = Arc::from(l.name);
                let tls = l
                    .tls
                    .enabled()
                    .then(|| ServerTls::new(name.clone(), l.tls.clone()));
                let upstream_tls = match UpstreamTls::new(l.upstream_tls, l.upstream) {
                    Ok(u) => u,
                    Err(problems) => {
                        for p in problems {
                            tracing::error!(listener = %name, key = %format!("{}upstream_tls.{}", l.prefix, p.key),
                                problem = %p.message, "upstream TLS settings unusable: connections to this broker fail");
                        }
                        None
                    }
                };
                let broken = l.upstream_tls.enabled() && upstream_tls.is_none();
                Arc::new(Listener {
                    name,
                    upstream: if broken {
                        // Never fall back to plaintext: a broker that cannot be reached is
                        // safer than one reached without the TLS asked for.
                        Upstream {
                            host: "upstream-tls-unusable.invalid".to_owned(),
                            port: l.upstream.port,
                        }
                    } else {
                        l.upstream.clone()
                    },
                    tls,
                    upstream_tls,
                })
            })
            .collect()
    }
}

/// Everything a connection task needs.
#[derive(Debug, Clone)]
pub struct ConnContext {
    /// Validated config.
    pub config: Arc<Config>,
    /// The listener the connection came in on.
    pub listener: Arc<Listener>,
    /// Process counters.
    pub stats: Arc<ProxyStats>,
    /// Cancelled when the drain starts: stop taking new requests.
    pub drain: CancellationToken,
    /// Cancelled when the grace period is over: close now.
    pub cut: CancellationToken,
    /// Topic id → name, shared by every connection's tap.
    pub topics: Arc<sluice_protocol::tap::topics::TopicNames>,
    /// Where tap events go; empty when the tap is off.
    pub sinks: Arc<[Arc<dyn TapSink>]>,
    /// Every connection's tap, for the sweep of quiet connections' batches.
    pub taps: Arc<TapRegistry>,
    /// The connection guards (`guard.*`).
    pub guards: Arc<Guards>,
    /// Throttle policies and every live connection's handle.
    pub throttle: Arc<Throttle>,
}

/// Serves one accepted client connection to its end; logs its own end.
pub async fn serve(client: TcpStream, peer: SocketAddr, id: u64, cx: ConnContext) {
    let span = tracing::info_span!("conn", listener = %cx.listener.name, client.addr = %peer,
        broker.addr = %cx.listener.upstream, tls.version = tracing::field::Empty,
        tls.subject = tracing::field::Empty);
    async move {
        let opened = Instant::now();
        let meta = ConnMeta {
            id,
            client_addr: peer,
            listener: cx.listener.name.clone(),
            tls_subject: None,
        };
        tokio::select! {
            outcome = proxy(client, meta, &cx) => match outcome {
                Ok((up, down, how)) => tracing::debug!(
                    bytes.to_broker = up, bytes.to_client = down, ended = how,
                    duration_ms = opened.elapsed().as_millis() as u64, "connection closed"),
                Err(ConnError::Handshake(f)) => {
                    ProxyStats::add(&cx.stats.tls_handshake_failures[f.kind.index()], 1);
                    tracing::info!(failure = f.kind.as_str(), reason = %f.reason,
                        "TLS handshake failed; client closed");
                }
                Err(e @ (ConnError::Unreachable { .. } | ConnError::ConnectTimeout { .. })) => {
                    ProxyStats::add(&cx.stats.upstream_connect_failures, 1);
                    tracing::warn!(side = %e.side(), error = %e, "closing client: broker unreachable");
                }
                Err(e) => tracing::debug!(side = %e.side(), error = %e,
                    duration_ms = opened.elapsed().as_millis() as u64, "connection ended by error"),
            },
            _ = cx.cut.cancelled() => {
                ProxyStats::add(&cx.stats.connections_cut_at_deadline, 1);
                tracing::debug!("connection closed at the end of the shutdown grace period");
            }
        }
    }
    .instrument(span)
    .await
}

async fn proxy(
    client: TcpStream,
    mut meta: ConnMeta,
    cx: &ConnContext,
) -> Result<(u64, u64, &'static str), ConnError> {
    // Before the broker is contacted: a refused connection never reaches it. On a TLS listener
    // the first bytes are a ClientHello, not a Kafka header: per-client guards count per host.
    let _client_slot = match cx
        .guards
        .admit(&client, meta.client_addr.ip(), &cx.drain)
        .await
    {
        Ok(slot) => slot,
        Err(_) => return Ok((0, 0, "refused by a connection guard")),
    };
    // Kafka is request/response: Nagle would add latency to every small frame.
    let _ = client.set_nodelay(true);
    let client = match &cx.listener.tls {
        None => Client::Plain(client),
        Some(tls) => {
            let (stream, session) = crate::tls::handshake::accept(
                client,
                tls.config(),
                tls.settings().handshake_timeout,
            )
            .await
            .map_err(ConnError::Handshake)?;
            let span = tracing::Span::current();
            span.record("tls.version", session.version);
            if let Some(subject) = &session.subject {
                span.record("tls.subject", &**subject);
            }
            meta.tls_subject = session.subject;
            Client::Tls(Box::new(stream))
        }
    };
    let broker = connect(cx).await?;
    match (client, broker) {
        // The plaintext path as it always was: borrowed halves of the sockets, no lock.
        (Client::Plain(mut c), Broker::Plain(mut b)) => {
            let (cr, cw) = c.split();
            let (br, bw) = b.split();
            forward((cr, cw), (br, bw), meta, cx).await
        }
        (Client::Plain(mut c), Broker::Tls(b)) => {
            forward(c.split(), tokio::io::split(*b), meta, cx).await
        }
        (Client::Tls(c), Broker::Plain(mut b)) => {
            forward(tokio::io::split(*c), b.split(), meta, cx).await
        }
        (Client::Tls(c), Broker::Tls(b)) => {
            forward(tokio::io::split(*c), tokio::io::split(*b), meta, cx).await
        }
    }
}

/// The client side of a connection, after the TLS handshake if its listener has TLS.
enum Client {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::server::TlsStream<TcpStream>>),
}

/// The broker side of a connection.
enum Broker {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

/// Connects to the listener's broker, within `connect_timeout` (the TLS handshake included).
async fn connect(cx: &ConnContext) -> Result<Broker, ConnError> {
    let upstream = cx.listener.upstream.connect_target();
    let timeout = cx.config.connect_timeout;
    let timed_out = |upstream| ConnError::ConnectTimeout {
        upstream,
        timeout_ms: timeout.as_millis(),
    };
    let deadline = tokio::time::Instant::now() + timeout;
    let broker =
        match tokio::time::timeout_at(deadline, TcpStream::connect(upstream.as_str())).await {
            Ok(Ok(s)) => s,
            Ok(Err(source)) => return Err(ConnError::Unreachable { upstream, source }),
            Err(_) => return Err(timed_out(upstream)),
        };
    let _ = broker.set_nodelay(true);
    tracing::trace!(broker.local = ?broker.local_addr().ok(), "upstream connected");
    let Some(tls) = &cx.listener.upstream_tls else {
        return Ok(Broker::Plain(broker));
    };
    match tokio::time::timeout_at(deadline, tls.connect(broker)).await {
        Ok(Ok(s)) => Ok(Broker::Tls(Box::new(s))),
        Ok(Err(source)) => Err(ConnError::Unreachable { upstream, source }),
        Err(_) => Err(timed_out(upstream)),
    }
}

/// Forwards both directions of a connection whose sides are split into halves.
async fn forward<CR, CW, BR, BW>(
    (client_rx, client_tx): (CR, CW),
    (broker_rx, broker_tx): (BR, BW),
    meta: ConnMeta,
    cx: &ConnContext,
) -> Result<(u64, u64, &'static str), ConnError>
where
    CR: AsyncRead + Unpin,
    CW: AsyncWrite + Unpin,
    BR: AsyncRead + Unpin,
    BW: AsyncWrite + Unpin,
{
    let shared = Shared::default();
    let throttle = cx.throttle.register(meta.id, meta.client_addr);
    let tap = (cx.config.tap.enabled && !cx.sinks.is_empty()).then(|| {
        let id = meta.id;
        let tap = Arc::new(ConnTap::new(
            sluice_protocol::tap::ConnectionTap::new(cx.topics.clone()),
            meta,
            cx.sinks.clone(),
        ));
        cx.taps.add(id, &tap);
        tap
    });
    let half = |direction| Half {
        direction,
        max_buffer: cx.config.buffer_size,
        budget: &cx.stats.buffers,
        shared: &shared,
        stats: &cx.stats,
        drain: &cx.drain,
        tap: tap.as_deref(),
        throttle: &throttle,
    };
    let up = half(Direction::ToBroker).run(client_rx, broker_tx);
    let down = half(Direction::ToClient).run(broker_rx, client_tx);
    let how = watch(up, down, &shared, cx).await?;
    Ok((
        shared.to_broker.load(Relaxed),
        shared.to_client.load(Relaxed),
        how,
    ))
}

/// Runs both halves to their end, or closes the connection (by returning, which drops both
/// sockets) once it has forwarded nothing either way for `idle_timeout`, or
/// `half_closed_timeout` after one side ended its stream while the other kept its own open.
/// Idleness is checked every quarter of `idle_timeout` from the bytes forwarded, so no clock
/// is read per chunk: a silent connection closes between 1 and 1.25 × `idle_timeout` after
/// its last byte. Says how the connection ended.
async fn watch(
    up: impl Future<Output = Result<(u64, HalfEnd), ConnError>>,
    down: impl Future<Output = Result<(u64, HalfEnd), ConnError>>,
    shared: &Shared,
    cx: &ConnContext,
) -> Result<&'static str, ConnError> {
    tokio::pin!(up, down);
    let (idle, half_closed) = (cx.config.idle_timeout, cx.config.half_closed_timeout);
    let tick = (!idle.is_zero()).then(|| (idle / 4).max(Duration::from_millis(1)));
    let (mut up_end, mut down_end) = (None, None);
    let mut seen = shared.forwarded();
    let mut quiet_since = tokio::time::Instant::now();
    let mut half_closed_at = None;
    loop {
        let now = tokio::time::Instant::now();
        let next = [
            tick.map(|t| now + t),
            half_closed_at
                .filter(|_| !half_closed.is_zero())
                .map(|at| at + half_closed),
        ]
        .into_iter()
        .flatten()
        .min();
        tokio::select! {
            r = &mut up, if up_end.is_none() => up_end = Some(r?.1),
            r = &mut down, if down_end.is_none() => down_end = Some(r?.1),
            _ = tokio::time::sleep_until(next.unwrap_or(now)), if next.is_some() => {
                let now = tokio::time::Instant::now();
                if half_closed_at.is_some_and(|at| now >= at + half_closed) {
                    ProxyStats::add(&cx.stats.half_closed_timeouts, 1);
                    return Ok("half-closed timeout");
                }
                let forwarded = shared.forwarded();
                if forwarded != seen {
                    (seen, quiet_since) = (forwarded, now);
                } else if tick.is_some() && now >= quiet_since + idle {
                    ProxyStats::add(&cx.stats.idle_timeouts, 1);
                    return Ok("idle timeout");
                }
            }
        }
        match (up_end, down_end) {
            (Some(u), Some(d)) => {
                return Ok(match (u, d) {
                    (_, HalfEnd::Drained) | (HalfEnd::Drained, _) => "drained",
                    (HalfEnd::Eof, HalfEnd::Eof) => "closed",
                })
            }
            (Some(HalfEnd::Eof), None) | (None, Some(HalfEnd::Eof)) if half_closed_at.is_none() => {
                half_closed_at = Some(tokio::time::Instant::now());
            }
            _ => {}
        }
    }
}
