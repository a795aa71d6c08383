//! The admin HTTP listener, loopback by default:
//! - `/healthz` (the process serves), `/readyz` (accepting and not draining);
//! - `/metrics`: every instrument in the Prometheus text format;
//! - `/api/v1/stats`: the proxy's counters and per-API figures;
//! - `/api/v1/clients` (`?sort=bytes_out|bytes_in|connections|opened`), `/api/v1/groups`,
//!   `/api/v1/topics`, `/api/v1/connections`: pages (`?offset=&limit=`, see
//!   [`crate::observer::api::Page`]) with the total in `x-total-count`;
//!   `/api/v1/findings` (active and recently cleared), `/api/v1/observer` (sizes and
//!   evictions);
//! - `/api/v1/throttles`: the throttle policies and what they hold back; `POST` adds a
//!   run-time policy, `DELETE /api/v1/throttles/<name>` removes one ([`throttles`]; both
//!   need `admin.token`).
//!
//! With `admin.token` set, `/api/v1/...` (and `/metrics` with `admin.metrics_require_token`)
//! answers 401 unless the request carries `Authorization: Bearer <token>`; the probes stay
//! open. `admin.metrics_listen` adds a listener with only `/metrics` and the probes.
//! [`listener`] bounds connections, header and idle time, and the shutdown.

pub mod listener;
pub mod throttles;

use std::sync::Arc;

use axum::extract::{Query, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get};
use axum::{Json, Router};
use sluice_config::{AdminConfig, Secret};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::observer::api::{ClientSort, Page, View};
use crate::observer::Observer;
use crate::stats::ProxyStats;
use crate::telemetry::Telemetry;
use crate::throttle::Throttle;

/// What the handlers read.
#[derive(Debug, Clone)]
pub struct AdminState {
    stats: Arc<ProxyStats>,
    observer: Arc<Observer>,
    telemetry: Option<Arc<Telemetry>>,
    throttle: Arc<Throttle>,
    /// `admin.token` is set: calls that change behaviour are allowed (with the token).
    changes_allowed: bool,
}

impl AdminState {
    /// Handlers over these counters and this observer.
    pub fn new(stats: Arc<ProxyStats>, observer: Arc<Observer>) -> AdminState {
        AdminState {
            stats,
            observer,
            telemetry: None,
            throttle: Throttle::new(),
            changes_allowed: false,
        }
    }

    /// Serves `/api/v1/throttles` from this throttle (default: one of its own, empty).
    pub fn with_throttle(mut self, throttle: Arc<Throttle>) -> AdminState {
        self.throttle = throttle;
        self
    }

    /// Serves `/metrics` from this telemetry.
    pub fn with_telemetry(mut self, telemetry: Arc<Telemetry>) -> AdminState {
        self.telemetry = Some(telemetry);
        self
    }
}

/// Every admin route, as served on `admin.listen`.
pub fn router(mut state: AdminState, config: &AdminConfig) -> Router {
    state.changes_allowed = config.token.is_some();
    let mut api = api(state.clone());
    if let Some(token) = &config.token {
        let token = Arc::new(token.clone());
        api = api.route_layer(middleware::from_fn_with_state(token, require_token));
    }
    metrics_router(state, config).merge(api)
}

/// `/metrics`, `/healthz` and `/readyz` only, as served on `admin.metrics_listen`.
pub fn metrics_router(state: AdminState, config: &AdminConfig) -> Router {
    let mut metrics = Router::new().route("/metrics", get(metrics));
    if let (Some(token), true) = (&config.token, config.metrics_require_token) {
        let token = Arc::new(token.clone());
        metrics = metrics.route_layer(middleware::from_fn_with_state(token, require_token));
    }
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .merge(metrics)
        .with_state(state)
}

/// Answers 401 unless the request carries `Authorization: Bearer <token>`.
async fn require_token(State(token): State<Arc<Secret>>, req: Request, next: Next) -> Response {
    let given = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, t)| t.trim());
    match given {
        Some(t) if same(t.as_bytes(), token.expose().as_bytes()) => next.run(req).await,
        _ => (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Bearer realm=\"sluice admin\"")],
            "this admin route needs Authorization: Bearer <admin.token>\n",
        )
            .into_response(),
    }
}

/// Compares in time that depends on the lengths only, not on where the bytes differ.
fn same(a: &[u8], b: &[u8]) -> bool {
    let mut diff = u8::from(a.len() != b.len());
    for (i, y) in b.iter().enumerate() {
        diff |= a.get(i).copied().unwrap_or(0) ^ y;
    }
    diff == 0
}

fn api(state: AdminState) -> Router {
    Router::new()
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
            "/api/v1/throttles",
            get(throttles::list).post(throttles::add),
        )
        .route("/api/v1/throttles/{name}", delete(throttles::remove))
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

/// Serves every admin route on `listener` until `stop` is cancelled; then returns within
/// [`listener::STOP_WITHIN`] whatever its clients do.
pub async fn serve(
    listener: TcpListener,
    state: AdminState,
    config: &AdminConfig,
    stop: CancellationToken,
) -> std::io::Result<()> {
    let addr = listener.local_addr()?;
    tracing::info!(listen = %addr, token = config.token.is_some(), "admin API listening");
    if !addr.ip().is_loopback() && config.token.is_none() {
        tracing::warn!(listen = %addr,
            "admin API on a non-loopback address without admin.token: whoever reaches it reads \
             client ids, groups and topics (set admin.token, or use admin.metrics_listen for scrapers)");
    }
    let app = router(state, config);
    listener::serve(listener, app, config.into(), stop).await;
    Ok(())
}

/// Serves `/metrics`, `/healthz` and `/readyz` on `listener` until `stop` is cancelled.
pub async fn serve_metrics(
    listener: TcpListener,
    state: AdminState,
    config: &AdminConfig,
    stop: CancellationToken,
) -> std::io::Result<()> {
    tracing::info!(listen = %listener.local_addr()?, "admin metrics listening");
    let app = metrics_router(state, config);
    listener::serve(listener, app, config.into(), stop).await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::same;

    #[test]
    fn tokens_compare_whole() {
        assert!(same(b"0123456789abcdef", b"0123456789abcdef"));
        assert!(!same(b"0123456789abcdeX", b"0123456789abcdef"));
        assert!(!same(b"0123456789abcde", b"0123456789abcdef"));
        assert!(!same(b"0123456789abcdef0", b"0123456789abcdef"));
        assert!(!same(b"", b"0123456789abcdef"));
    }
}
