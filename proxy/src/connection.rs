//! One client connection: connect to the broker, then run both halves until both end — or
//! until the connection is idle or half-closed for too long (`watch`).

use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sluice_config::Config;
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

/// Everything a connection task needs.
#[derive(Debug, Clone)]
pub struct ConnContext {
    /// Validated config.
    pub config: Arc<Config>,
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
    let span = tracing::info_span!("conn", client.addr = %peer, broker.addr = %cx.config.upstream);
    async move {
        let opened = Instant::now();
        tokio::select! {
            outcome = proxy(client, ConnMeta { id, client_addr: peer }, &cx) => match outcome {
                Ok((up, down, how)) => tracing::debug!(
                    bytes.to_broker = up, bytes.to_client = down, ended = how,
                    duration_ms = opened.elapsed().as_millis() as u64, "connection closed"),
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
    mut client: TcpStream,
    meta: ConnMeta,
    cx: &ConnContext,
) -> Result<(u64, u64, &'static str), ConnError> {
    // Before the broker is contacted: a refused connection never reaches it.
    let _client_slot = match cx
        .guards
        .admit(&client, meta.client_addr.ip(), &cx.drain)
        .await
    {
        Ok(slot) => slot,
        Err(_) => return Ok((0, 0, "refused by a connection guard")),
    };
    let upstream = cx.config.upstream.connect_target();
    let mut broker = match tokio::time::timeout(
        cx.config.connect_timeout,
        TcpStream::connect(upstream.as_str()),
    )
    .await
    {
        Ok(Ok(s)) => s,
        Ok(Err(source)) => return Err(ConnError::Unreachable { upstream, source }),
        Err(_) => {
            return Err(ConnError::ConnectTimeout {
                upstream,
                timeout_ms: cx.config.connect_timeout.as_millis(),
            })
        }
    };
    // Kafka is request/response: Nagle would add latency to every small frame.
    let _ = client.set_nodelay(true);
    let _ = broker.set_nodelay(true);
    tracing::trace!(broker.local = ?broker.local_addr().ok(), "upstream connected");

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
    let (client_rx, client_tx) = client.split();
    let (broker_rx, broker_tx) = broker.split();
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
