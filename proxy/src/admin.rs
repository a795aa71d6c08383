//! The admin HTTP listener: `/healthz` (the process serves) and `/readyz` (accepting and not
//! draining). Loopback by default. Later layers add `/metrics` and `/api/v1/`.

use std::future::Future;
use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::Router;
use tokio::net::TcpListener;

use crate::stats::ProxyStats;

/// The admin routes over these counters.
pub fn router(stats: Arc<ProxyStats>) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .with_state(stats)
}

async fn readyz(State(stats): State<Arc<ProxyStats>>) -> (StatusCode, &'static str) {
    if stats.is_ready() {
        (StatusCode::OK, "ready\n")
    } else if stats.draining.load(std::sync::atomic::Ordering::Relaxed) {
        (StatusCode::SERVICE_UNAVAILABLE, "draining\n")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "starting\n")
    }
}

/// Serves the admin API on `listener` until `shutdown` completes.
pub async fn serve(
    listener: TcpListener,
    stats: Arc<ProxyStats>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    tracing::info!(listen = %listener.local_addr()?, "admin API listening");
    axum::serve(listener, router(stats))
        .with_graceful_shutdown(shutdown)
        .await
}
