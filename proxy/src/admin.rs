//! The admin HTTP listener, loopback by default:
//! - `/healthz` (the process serves), `/readyz` (accepting and not draining);
//! - `/metrics`: every instrument in the Prometheus text format;
//! - `/api/v1/stats`: the proxy's counters and per-API figures;
//! - `/api/v1/clients` (`?sort=bytes_out|bytes_in|connections|opened`), `/api/v1/groups`,
//!   `/api/v1/topics`, `/api/v1/connections`, `/api/v1/findings` (active and recently
//!   cleared), `/api/v1/observer` (sizes and evictions).

use std::future::Future;
use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use tokio::net::TcpListener;

use crate::observer::api::ClientSort;
use crate::observer::Observer;
use crate::stats::ProxyStats;
use crate::telemetry::Telemetry;

/// What the handlers read.
#[derive(Debug, Clone)]
pub struct AdminState {
    stats: Arc<ProxyStats>,
    observer: Arc<Observer>,
    telemetry: Option<Arc<Telemetry>>,
}

impl AdminState {
    /// Handlers over these counters and this observer.
    pub fn new(stats: Arc<ProxyStats>, observer: Arc<Observer>) -> AdminState {
        AdminState {
            stats,
            observer,
            telemetry: None,
        }
    }

    /// Serves `/metrics` from this telemetry.
    pub fn with_telemetry(mut self, telemetry: Arc<Telemetry>) -> AdminState {
        self.telemetry = Some(telemetry);
        self
    }
}

/// The admin routes.
pub fn router(state: AdminState) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/api/v1/stats", get(stats_json))
        .route("/api/v1/clients", get(clients))
        .route(
            "/api/v1/groups",
            get(|State(s): State<AdminState>| async move { Json(s.observer.groups_json()) }),
        )
        .route(
            "/api/v1/topics",
            get(|State(s): State<AdminState>| async move { Json(s.observer.topics_json()) }),
        )
        .route(
            "/api/v1/connections",
            get(|State(s): State<AdminState>| async move { Json(s.observer.connections_json()) }),
        )
        .route(
            "/api/v1/findings",
            get(|State(s): State<AdminState>| async move { Json(s.observer.findings_json()) }),
        )
        .route(
            "/api/v1/observer",
            get(|State(s): State<AdminState>| async move { Json(s.observer.health_json()) }),
        )
        .with_state(state)
}

async fn metrics(State(s): State<AdminState>) -> Response {
    match s.telemetry {
        Some(t) => {
            let body = tokio::task::spawn_blocking(move || t.prometheus_text())
                .await
                .unwrap_or_default();
            (
                [(
                    axum::http::header::CONTENT_TYPE,
                    "text/plain; version=0.0.4; charset=utf-8",
                )],
                body,
            )
                .into_response()
        }
        None => (StatusCode::NOT_FOUND, "telemetry is not running\n").into_response(),
    }
}

async fn clients(
    State(s): State<AdminState>,
    Query(q): Query<std::collections::HashMap<String, String>>,
) -> Result<Json<serde_json::Value>, (StatusCode, String)> {
    let sort = match q.get("sort") {
        None => ClientSort::BytesOut,
        Some(v) => ClientSort::parse(v).ok_or_else(|| {
            (
                StatusCode::BAD_REQUEST,
                format!("unknown sort `{v}`: use bytes_out, bytes_in, connections or opened\n"),
            )
        })?,
    };
    Ok(Json(s.observer.clients_json(sort)))
}

async fn readyz(State(s): State<AdminState>) -> (StatusCode, &'static str) {
    let stats = &s.stats;
    if stats.is_ready() {
        (StatusCode::OK, "ready\n")
    } else if stats.draining.load(std::sync::atomic::Ordering::Relaxed) {
        (StatusCode::SERVICE_UNAVAILABLE, "draining\n")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "starting\n")
    }
}

async fn stats_json(State(s): State<AdminState>) -> Json<serde_json::Value> {
    Json(s.stats.snapshot())
}

/// Serves the admin API on `listener` until `shutdown` completes.
pub async fn serve(
    listener: TcpListener,
    state: AdminState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    tracing::info!(listen = %listener.local_addr()?, "admin API listening");
    axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown)
        .await
}
