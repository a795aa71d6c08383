//! The admin HTTP listener, loopback by default:
//! - `/healthz` (the process serves), `/readyz` (accepting and not draining);
//! - `/metrics`: every instrument in the Prometheus text format;
//! - `/api/v1/stats`: the proxy's counters and per-API figures;
//! - `/api/v1/clients` (`?sort=bytes_out|bytes_in|connections|opened`), `/api/v1/groups`,
//!   `/api/v1/topics`, `/api/v1/connections`: pages (`?offset=&limit=`, see
//!   [`crate::observer::api::Page`]) with the total in `x-total-count`;
//!   `/api/v1/findings` (active and recently cleared), `/api/v1/observer` (sizes and
//!   evictions).

use std::future::Future;
use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use tokio::net::TcpListener;

use crate::observer::api::{ClientSort, Page, View};
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
            get(|s: State<AdminState>, q: Params| list(s, q, View::Groups)),
        )
        .route(
            "/api/v1/topics",
            get(|s: State<AdminState>, q: Params| list(s, q, View::Topics)),
        )
        .route(
            "/api/v1/connections",
            get(|s: State<AdminState>, q: Params| list(s, q, View::Connections)),
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

/// A request's query parameters.
type Params = Query<std::collections::HashMap<String, String>>;

/// A page of an observer list view (`?offset=&limit=`), made off the async workers: the rows
/// as a JSON array, the number of rows in all in `x-total-count`, and `x-truncated: true`
/// when rows after these were left out.
async fn list(State(s): State<AdminState>, Query(q): Params, view: View) -> Response {
    let page = match Page::parse(
        q.get("offset").map(String::as_str),
        q.get("limit").map(String::as_str),
    ) {
        Ok(p) => p,
        Err(e) => return (StatusCode::BAD_REQUEST, format!("{e}\n")).into_response(),
    };
    let observer = s.observer.clone();
    let Ok(answer) = tokio::task::spawn_blocking(move || observer.page(view, page)).await else {
        return (StatusCode::INTERNAL_SERVER_ERROR, "internal error\n").into_response();
    };
    (
        [
            (axum::http::header::CONTENT_TYPE, "application/json"),
            (
                axum::http::HeaderName::from_static("x-total-count"),
                &answer.total.to_string(),
            ),
            (
                axum::http::HeaderName::from_static("x-truncated"),
                if answer.truncated { "true" } else { "false" },
            ),
        ],
        answer.body,
    )
        .into_response()
}

async fn clients(s: State<AdminState>, q: Params) -> Response {
    let sort = match q.get("sort") {
        None => ClientSort::BytesOut,
        Some(v) => match ClientSort::parse(v) {
            Some(sort) => sort,
            None => {
                let e =
                    format!("unknown sort `{v}`: use bytes_out, bytes_in, connections or opened\n");
                return (StatusCode::BAD_REQUEST, e).into_response();
            }
        },
    };
    list(s, q, View::Clients(sort)).await
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
