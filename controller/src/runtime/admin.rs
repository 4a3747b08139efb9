//! The admin HTTP server of `legate standalone`: `/healthz`, `/readyz`, `/metrics`, `/status`,
//! `/config_dump?gateway=NS/NAME`.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use super::state::AppState;
use crate::output::Format;

pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/status", get(status))
        .route("/config_dump", get(config_dump))
        .route("/policy", get(policy))
        .with_state(state)
}

pub async fn serve(
    listener: tokio::net::TcpListener,
    state: Arc<AppState>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(state)).with_graceful_shutdown(shutdown).await
}

/// Binds the admin address.
pub async fn bind(addr: SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(addr).await
}

async fn readyz(State(s): State<Arc<AppState>>) -> Response {
    let waiting = s.not_ready();
    if waiting.is_empty() {
        "ready\n".into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, format!("not ready:\n{}\n", waiting.join("\n"))).into_response()
    }
}

async fn metrics(State(s): State<Arc<AppState>>) -> Response {
    let live = s.current();
    let mut text = s.metrics.render(&live);
    text.push_str(&s.cache.metrics_text());
    for m in &s.extra_metrics {
        text.push_str(&m());
    }
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response()
}

fn format_of(q: &HashMap<String, String>) -> Format {
    if q.get("o").or(q.get("output")).is_some_and(|o| o == "json") { Format::Json } else { Format::Yaml }
}

async fn status(State(s): State<Arc<AppState>>, Query(q): Query<HashMap<String, String>>) -> Response {
    let live = s.current();
    let f = format_of(&q);
    let docs: Vec<serde_json::Value> = live.status.values().map(crate::status::render::StatusDoc::value).collect();
    let mut body = f.many(&docs);
    if !live.file_errors.is_empty() && f == Format::Yaml {
        let errs: String = live.file_errors.iter().map(|e| format!("# file error: {e}\n")).collect();
        body = errs + &body;
    }
    body.into_response()
}

/// The effective TrafficPolicy and AuthPolicy settings of every route rule, per Gateway (what `legate
/// translate --show policy` prints).
async fn policy(State(s): State<Arc<AppState>>, Query(q): Query<HashMap<String, String>>) -> Response {
    let live = s.current();
    let docs: Vec<serde_json::Value> =
        live.output.gateways.iter().map(|g| legate_translator::traffic::effective(&g.ir)).collect();
    format_of(&q).many(&docs).into_response()
}

async fn config_dump(State(s): State<Arc<AppState>>, Query(q): Query<HashMap<String, String>>) -> Response {
    let Some(gw) = q.get("gateway") else {
        return (StatusCode::BAD_REQUEST, "give the Gateway: /config_dump?gateway=NAMESPACE/NAME\n").into_response();
    };
    match s.config_dump(gw) {
        Some(doc) => format_of(&q).one(&doc).into_response(),
        None => (StatusCode::NOT_FOUND, format!("no accepted Gateway {gw}\n")).into_response(),
    }
}
