//! The accept loop and the graceful drain.
//!
//! The loop survives everything: an `accept()` error (running out of file descriptors
//! included) is logged and followed by a growing back-off, never by an exit. A connection
//! permit is taken *before* accepting, so at `max_connections` new clients wait in the kernel's
//! backlog instead of being accepted and dropped.
//!
//! No client address may hold more than `max_connections_per_host` connections: one more is
//! closed as soon as it is accepted, its permit given back at once, counted, and logged at most
//! once per [`REFUSAL_LOG_EVERY`].
//!
//! Shutdown: stop accepting, tell every connection to drain (stop taking requests at a frame
//! boundary, let the responses in flight arrive), wait up to `shutdown_grace`, then cut what is
//! left.

use std::collections::HashMap;
use std::future::Future;
use std::net::IpAddr;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sluice_config::Config;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::connection::{self, ConnContext, Listener};
use crate::guard::Guards;
use crate::observer::config::DetectConfig;
use crate::observer::Observer;
use crate::sink::TapSink;
use crate::stats::StatsSink;
use crate::stats::{ProxyStats, Reason};
use crate::tap::TapRegistry;
use crate::throttle::Throttle;
use crate::tls::ServerTls;
use sluice_protocol::event::TopicId;
use sluice_protocol::tap::topics::TopicNames;

/// First pause after a failed `accept()`; doubles up to [`ACCEPT_BACKOFF_MAX`].
pub const ACCEPT_BACKOFF_MIN: Duration = Duration::from_millis(5);
/// Longest pause after repeated `accept()` failures.
pub const ACCEPT_BACKOFF_MAX: Duration = Duration::from_secs(1);
/// After the grace period, how long cut connections get to finish closing.
const CUT_WAIT: Duration = Duration::from_secs(2);
/// Most one warning per this long about connections refused for `max_connections_per_host`.
pub const REFUSAL_LOG_EVERY: Duration = Duration::from_secs(10);

/// A proxy: config plus the counters it shares with the admin API.
#[derive(Debug, Clone)]
pub struct Proxy {
    config: Arc<Config>,
    stats: Arc<ProxyStats>,
    topics: Arc<TopicNames>,
    sinks: Vec<Arc<dyn TapSink>>,
    observer: Arc<Observer>,
    throttle: Arc<Throttle>,
    listeners: Vec<Arc<Listener>>,
}

/// Runs a proxy on `listener` until `shutdown` completes, then drains. See [`Proxy::run`].
pub async fn run(listener: TcpListener, config: Config, shutdown: impl Future<Output = ()>) {
    Proxy::new(config).run(listener, shutdown).await
}

impl Proxy {
    /// A proxy for a validated config.
    pub fn new(config: Config) -> Self {
        let stats = Arc::new(ProxyStats::with_buffer_budget(config.buffer_budget));
        let observer = Observer::new(DetectConfig {
            lookup_lag: config.lookup.interval,
            ..DetectConfig::from_settings(&config.detect)
        });
        let throttle = Throttle::new();
        throttle.set_file_policies(config.throttle.policies.clone());
        throttle.set_max_hold(config.throttle.max_hold);
        Proxy {
            listeners: Listener::all(&config),
            throttle,
            config: Arc::new(config),
            sinks: vec![Arc::new(StatsSink::new(stats.clone())), observer.clone()],
            stats,
            topics: TopicNames::new(),
            observer,
        }
    }

    /// The validated config.
    pub fn config(&self) -> Arc<Config> {
        self.config.clone()
    }

    /// The observer: clients, groups, topics, findings.
    pub fn observer(&self) -> Arc<Observer> {
        self.observer.clone()
    }

    /// The throttle policies in force (from the policy file at start, reloaded; and run-time
    /// ones from the admin API).
    pub fn throttle(&self) -> Arc<Throttle> {
        self.throttle.clone()
    }

    /// The TLS server settings of every TLS listener, for re-reading their files.
    pub fn server_tls(&self) -> Vec<Arc<ServerTls>> {
        self.listeners
            .iter()
            .filter_map(|l| l.tls.clone())
            .collect()
    }

    /// Adds a sink for the tap's events (the built-in one keeps per-API counters).
    pub fn with_sink(mut self, sink: Arc<dyn TapSink>) -> Self {
        self.sinks.push(sink);
        self
    }

    /// The topic id → name map the taps share.
    pub fn topics(&self) -> Arc<TopicNames> {
        self.topics.clone()
    }

    /// The counters, for the admin API and tests.
    pub fn stats(&self) -> Arc<ProxyStats> {
        self.stats.clone()
    }

    /// Accepts and proxies connections on the top-level listener (`listen`) until `shutdown`
    /// completes, then drains within the configured grace period. Returns when every
    /// connection task has ended. `[[listeners]]` are served by [`Proxy::run_all`].
    pub async fn run(self, listener: TcpListener, shutdown: impl Future<Output = ()>) {
        self.run_all(vec![listener], shutdown).await
    }

    /// Like [`Proxy::run`] on several bound listeners: the top-level one first, then one per
    /// `[[listeners]]` entry in the config's order (extra sockets beyond those are ignored).
    /// One accept loop per listener; the connection limit, the per-host limit, the drain and
    /// the task tracker are shared.
    pub async fn run_all(self, listeners: Vec<TcpListener>, shutdown: impl Future<Output = ()>) {
        let tasks = TaskTracker::new();
        let drain = CancellationToken::new();
        let cut = CancellationToken::new();
        let limit = Arc::new(Semaphore::new(self.config.max_connections));
        let settings = self.listeners.clone();
        let cx = ConnContext {
            listener: settings[0].clone(),
            config: self.config.clone(),
            stats: self.stats.clone(),
            drain: drain.clone(),
            cut: cut.clone(),
            topics: self.topics.clone(),
            sinks: if self.config.tap.enabled {
                self.sinks.clone().into()
            } else {
                Arc::from(Vec::new())
            },
            taps: Arc::new(TapRegistry::new(
                self.config.tap.memory_budget,
                self.stats.clone(),
            )),
            guards: Guards::new(&self.config.guard, self.stats.clone()),
            throttle: self.throttle.clone(),
        };
        for (socket, l) in listeners.iter().zip(&settings) {
            tracing::info!(
                listener = %l.name,
                listen = %socket.local_addr().map(|a| a.to_string()).unwrap_or_default(),
                upstream = %l.upstream,
                tls = l.tls.is_some(),
                upstream_tls = l.upstream_tls.is_some(),
                max_connections = self.config.max_connections,
                "proxy accepting connections"
            );
        }
        self.stats.accepting.store(true, Relaxed);
        let observer = self.observer.spawn();
        let lookup = crate::lookup::GroupLookup::from_config(&self.config).map(|lookup| {
            let (o, topics) = (self.observer.clone(), self.topics.clone());
            tokio::spawn(lookup.run(
                self.observer.interest(),
                move |view| {
                    // Topics this sidecar sees only by id get their names for the taps.
                    for (id, name) in &view.topic_names {
                        topics.learn(TopicId(*id), name);
                    }
                    o.looked_up(view)
                },
                drain.clone().cancelled_owned(),
            ))
        });
        let matcher = tokio::spawn(
            self.throttle
                .clone()
                .run_matcher(self.observer.clone(), cut.clone().cancelled_owned()),
        );
        let sweep = tokio::spawn(crate::tap::sweep(
            cx.taps.clone(),
            cut.clone().cancelled_owned(),
        ));
        let hosts = Hosts::new(self.config.max_connections_per_host);
        let stop = CancellationToken::new();
        let loops: Vec<_> = listeners
            .into_iter()
            .zip(settings)
            .map(|(socket, listener)| {
                let cx = ConnContext {
                    listener,
                    ..cx.clone()
                };
                let (limit, tasks, hosts, stop) =
                    (limit.clone(), tasks.clone(), hosts.clone(), stop.clone());
                tokio::spawn(async move {
                    let stopped = stop.cancelled();
                    tokio::pin!(stopped);
                    accept_loop(&socket, &cx, &limit, &hosts, &tasks, stopped.as_mut()).await;
                })
            })
            .collect();
        shutdown.await;
        stop.cancel();
        for l in loops {
            let _ = l.await; // each drops its socket: no new connection from here
        }

        self.stats.accepting.store(false, Relaxed);
        self.stats.draining.store(true, Relaxed);
        let open = ProxyStats::get(&self.stats.connections_open);
        tracing::info!(
            open_connections = open,
            grace_ms = self.config.shutdown_grace.as_millis() as u64,
            "shutting down: stopped accepting, draining in-flight requests"
        );
        drain.cancel();
        tasks.close();
        if tokio::time::timeout(self.config.shutdown_grace, tasks.wait())
            .await
            .is_err()
        {
            let left = ProxyStats::get(&self.stats.connections_open);
            tracing::warn!(
                connections = left,
                "grace period over; closing remaining connections"
            );
            cut.cancel();
            let _ = tokio::time::timeout(CUT_WAIT, tasks.wait()).await;
        }
        cut.cancel();
        if let Some(o) = observer {
            let _ = tokio::task::spawn_blocking(move || o.stop()).await;
        }
        let _ = sweep.await;
        let _ = matcher.await;
        if let Some(lookup) = lookup {
            let _ = lookup.await;
        }
        tracing::info!("proxy stopped");
    }
}

/// An open client connection: counted in `connections_open`, holding a connection permit and
/// its host's slot until dropped.
#[derive(Debug)]
struct OpenConnection {
    stats: Arc<ProxyStats>,
    _permit: tokio::sync::OwnedSemaphorePermit,
    _host: HostSlot,
}

impl OpenConnection {
    fn new(
        stats: Arc<ProxyStats>,
        permit: tokio::sync::OwnedSemaphorePermit,
        host: HostSlot,
    ) -> OpenConnection {
        stats.connections_open.fetch_add(1, Relaxed);
        OpenConnection {
            stats,
            _permit: permit,
            _host: host,
        }
    }
}

/// Connections open per client address, for `max_connections_per_host`: an entry per address
/// with a connection open, so never more than `max_connections` entries.
#[derive(Debug)]
struct Hosts {
    open: Mutex<HashMap<IpAddr, usize>>,
    cap: usize,
}

impl Hosts {
    fn new(cap: usize) -> Arc<Hosts> {
        Arc::new(Hosts {
            open: Mutex::new(HashMap::new()),
            cap,
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<IpAddr, usize>> {
        self.open
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// A slot for one more connection from `ip`, or `None` if it has `cap` open.
    fn admit(self: &Arc<Hosts>, ip: IpAddr) -> Option<HostSlot> {
        let ip = ip.to_canonical(); // an IPv4 client on an IPv6 socket is the same host
        let mut open = self.lock();
        let n = open.entry(ip).or_insert(0);
        if *n >= self.cap {
            return None;
        }
        *n += 1;
        Some(HostSlot {
            hosts: self.clone(),
            ip,
        })
    }
}

/// One connection's place in its host's count, given back when dropped.
#[derive(Debug)]
struct HostSlot {
    hosts: Arc<Hosts>,
    ip: IpAddr,
}

impl Drop for HostSlot {
    fn drop(&mut self) {
        let mut open = self.hosts.lock();
        if let Some(n) = open.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                open.remove(&self.ip);
            }
        }
    }
}

/// Refusals for `max_connections_per_host` since the last warning, and when that was.
#[derive(Debug, Default)]
struct Refusals {
    since_log: u64,
    logged: Option<Instant>,
}

impl Refusals {
    fn refused(&mut self, stats: &ProxyStats, ip: IpAddr, cap: usize) {
        ProxyStats::add(&stats.connections_refused_per_host, 1);
        stats.refused_hosts.add(ip);
        stats.refusals.add(Reason::PerHostOpen, ip, None);
        self.since_log += 1;
        let now = Instant::now();
        if self
            .logged
            .is_none_or(|at| now.duration_since(at) >= REFUSAL_LOG_EVERY)
        {
            tracing::warn!(client.host = %ip, max_connections_per_host = cap,
                refused = self.since_log,
                "client host at max_connections_per_host; connection refused");
            (self.since_log, self.logged) = (0, Some(now));
        }
    }
}

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.stats.connections_open.fetch_sub(1, Relaxed);
    }
}

async fn accept_loop(
    listener: &TcpListener,
    cx: &ConnContext,
    limit: &Arc<Semaphore>,
    hosts: &Arc<Hosts>,
    tasks: &TaskTracker,
    mut shutdown: std::pin::Pin<&mut impl Future<Output = ()>>,
) {
    let mut backoff = ACCEPT_BACKOFF_MIN;
    let mut refusals = Refusals::default();
    loop {
        if limit.available_permits() == 0 {
            ProxyStats::add(&cx.stats.connection_limit_waits, 1);
            tracing::warn!(
                max_connections = cx.config.max_connections,
                "connection limit reached; new clients wait until a connection closes"
            );
        }
        let permit = tokio::select! {
            biased;
            _ = shutdown.as_mut() => return,
            p = limit.clone().acquire_owned() => p.expect("the semaphore is never closed"),
        };
        let accepted = tokio::select! {
            biased;
            _ = shutdown.as_mut() => return,
            a = listener.accept() => a,
        };
        match accepted {
            Ok((socket, peer)) => {
                backoff = ACCEPT_BACKOFF_MIN;
                let Some(host) = hosts.admit(peer.ip()) else {
                    drop(permit); // a refused host holds no permit
                    let _ = socket.set_zero_linger(); // reset: no TIME_WAIT kept here
                    drop(socket);
                    refusals.refused(&cx.stats, peer.ip().to_canonical(), hosts.cap);
                    continue;
                };
                let id = cx.stats.connections_accepted.fetch_add(1, Relaxed) + 1;
                let open = OpenConnection::new(cx.stats.clone(), permit, host);
                let cx = cx.clone();
                tasks.spawn(async move {
                    let _open = open; // however the task ends, a panic included
                    connection::serve(socket, peer, id, cx).await;
                });
            }
            Err(e) => {
                drop(permit);
                ProxyStats::add(&cx.stats.accept_errors, 1);
                tracing::warn!(error = %e, backoff_ms = backoff.as_millis() as u64,
                    "accept failed; backing off");
                tokio::select! {
                    biased;
                    _ = shutdown.as_mut() => return,
                    _ = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(ACCEPT_BACKOFF_MAX);
            }
        }
    }
}
