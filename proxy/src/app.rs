//! From a validated config to a serving process: bind the listeners, serve the proxy and the
//! admin API, stop both on the shutdown signal.

use std::future::Future;
use std::time::Duration;

use sluice_config::Config;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::error::StartError;
use crate::reload::{Reloader, Reread};
use crate::server::Proxy;
use crate::telemetry::Telemetry;

/// Raises the open file limit ([`crate::fds`]), binds the proxy and admin listeners (the
/// proxy's first, so a taken client port fails fast) and serves until `shutdown` completes and
/// the drain is over. The admin API keeps answering during the drain (`/readyz` says
/// `draining`) and stops last, within a second whatever its clients do.
pub async fn serve(config: Config, shutdown: impl Future<Output = ()>) -> Result<(), StartError> {
    serve_rereading(config, None, shutdown).await
}

/// Like [`serve`]; on SIGHUP, `reread` reads the configuration again to log the keys changed
/// since start that need a restart (the throttle policy file is re-read either way).
pub async fn serve_rereading(
    config: Config,
    reread: Option<Reread>,
    shutdown: impl Future<Output = ()>,
) -> Result<(), StartError> {
    crate::fds::raise_open_file_limit(config.max_connections);
    // Every proxy listener before the admin one, all before anything serves: a taken port
    // fails the start, named.
    let mut listeners = vec![bind("listen", config.listen).await?];
    for l in &config.listeners {
        listeners.push(bind(&format!("listeners[{}].listen", l.name), l.listen).await?);
    }
    let admin = bind("admin.listen", config.admin.listen).await?;
    serve_all(Proxy::new(config), listeners, admin, reread, shutdown).await
}

/// Serves on listeners already bound (tests bind `127.0.0.1:0`): the proxy, its telemetry
/// and the admin API (plus `admin.metrics_listen` when set, bound here), until `shutdown`
/// completes and the drain is over; then flushes the telemetry exporters.
pub async fn serve_on(
    listener: TcpListener,
    admin: TcpListener,
    config: Config,
    shutdown: impl Future<Output = ()>,
) -> Result<(), StartError> {
    serve_proxy(Proxy::new(config), listener, admin, shutdown).await
}

/// Like [`serve_on`] with every proxy listener already bound: the top-level one first, then
/// one per `[[listeners]]` entry, in the config's order.
pub async fn serve_all_on(
    listeners: Vec<TcpListener>,
    admin: TcpListener,
    config: Config,
    shutdown: impl Future<Output = ()>,
) -> Result<(), StartError> {
    serve_all(Proxy::new(config), listeners, admin, None, shutdown).await
}

/// Like [`serve_on`] with a proxy already built (tests add their own tap sinks).
pub async fn serve_proxy(
    proxy: Proxy,
    listener: TcpListener,
    admin: TcpListener,
    shutdown: impl Future<Output = ()>,
) -> Result<(), StartError> {
    serve_all(proxy, vec![listener], admin, None, shutdown).await
}

async fn serve_all(
    mut proxy: Proxy,
    listeners: Vec<TcpListener>,
    admin: TcpListener,
    reread: Option<Reread>,
    shutdown: impl Future<Output = ()>,
) -> Result<(), StartError> {
    let config = proxy.config();
    let metrics = match config.admin.metrics_listen {
        Some(addr) => Some(bind("admin.metrics_listen", addr).await?),
        None => None,
    };
    let telemetry = Telemetry::start(
        &config.telemetry,
        &config.upstream.to_string(),
        proxy.observer(),
        proxy.stats(),
        proxy.throttle(),
    )?;
    for sink in telemetry.sinks() {
        proxy = proxy.with_sink(sink);
    }
    // Before the admin listener says it serves: a SIGHUP from then on reaches the reloader.
    let hup = crate::reload::hangup();
    let stop_admin = CancellationToken::new();
    let state = crate::admin::AdminState::new(proxy.stats(), proxy.observer())
        .with_telemetry(telemetry.clone())
        .with_throttle(proxy.throttle());
    let mut admin_tasks = vec![tokio::spawn({
        let (state, settings, stop) = (state.clone(), config.admin.clone(), stop_admin.clone());
        async move { crate::admin::serve(admin, state, &settings, stop).await }
    })];
    if let Some(metrics) = metrics {
        let (settings, stop) = (config.admin.clone(), stop_admin.clone());
        admin_tasks.push(tokio::spawn(async move {
            crate::admin::serve_metrics(metrics, state, &settings, stop).await
        }));
    }
    admin_tasks.push(tokio::spawn({
        let mut reloader = Reloader::new(
            config.throttle.policy_file.clone(),
            proxy.throttle(),
            proxy.stats(),
        )
        .with_tls(proxy.server_tls());
        if let Some(reread) = reread {
            reloader = reloader.with_config(config.clone(), reread);
        }
        let stop = stop_admin.clone();
        async move {
            reloader.run(hup, stop).await;
            Ok(())
        }
    }));
    proxy.run_all(listeners, shutdown).await;
    stop_admin.cancel();
    for task in admin_tasks {
        if let Ok(Err(e)) = task.await {
            tracing::warn!(error = %e, "admin API ended with an error");
        }
    }
    let grace = config.telemetry.otlp_timeout.min(Duration::from_secs(5)) * 2;
    let t = telemetry.clone();
    let _ = tokio::task::spawn_blocking(move || t.shutdown(grace)).await;
    Ok(())
}

async fn bind(what: &str, addr: std::net::SocketAddr) -> Result<TcpListener, StartError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| StartError::Bind {
            what: what.to_owned(),
            addr,
            source,
        })
}

/// Completes on the first SIGTERM or SIGINT. A second signal during the drain exits at once.
pub fn shutdown_signal() -> Result<impl Future<Output = ()>, StartError> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).map_err(StartError::Signals)?;
    let mut int = signal(SignalKind::interrupt()).map_err(StartError::Signals)?;
    Ok(async move {
        let name = tokio::select! {
            _ = term.recv() => "SIGTERM",
            _ = int.recv() => "SIGINT",
        };
        tracing::info!(signal = name, "shutdown requested");
        tokio::spawn(async move {
            tokio::select! {
                _ = term.recv() => {},
                _ = int.recv() => {},
            }
            tracing::warn!("second signal: exiting without waiting for the drain");
            std::process::exit(130);
        });
    })
}
