//! The admin HTTP listener: `/healthz` (the process serves), `/readyz` (accepting and not
//! draining) and `/api/v1/stats` (the proxy's counters as JSON). Loopback by default.

use std::future::Future;
use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use tokio::net::TcpListener;

use crate::stats::ProxyStats;

/// The admin routes over these counters.
pub fn router(stats: Arc<ProxyStats>) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/api/v1/stats", get(stats_json))
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

async fn stats_json(State(stats): State<Arc<ProxyStats>>) -> Json<serde_json::Value> {
    Json(stats.snapshot())
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
