//! `/healthz` (the process is up), `/readyz` (the store is reachable and writable) and
//! `/metrics` (Prometheus text).

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::Json;

use crate::http::openapi::{Health, Readiness};
use crate::AppState;

/// The process is up.
#[utoipa::path(
    get,
    path = "/healthz",
    tag = "health",
    responses((status = 200, description = "Up", body = Health))
)]
pub async fn healthz() -> impl IntoResponse {
    Json(serde_json::json!({ "status": "ok" }))
}

/// Readiness: the store is reachable and writable.
///
/// Ready when the store answers a query and, if the last batch failed, a write probe succeeds
/// (so readiness recovers by itself even when no traffic arrives to prove it).
#[utoipa::path(
    get,
    path = "/readyz",
    tag = "health",
    responses(
        (status = 200, description = "The store is reachable", body = Readiness),
        (status = 503, description = "The store is not reachable or not writable", body = Readiness),
    )
)]
pub async fn readyz(State(state): State<AppState>) -> impl IntoResponse {
    let backend = state.db.backend_name();
    let db = state.db.clone();
    let check_write = state.writer.health().writes_failing();
    // The probe runs in its own task so that answering after 3 s never cancels a database call
    // halfway (a cancelled statement could leave a connection in an unknown state).
    let probe = tokio::spawn(async move {
        db.ping().await?;
        if check_write {
            db.probe_write().await?;
        }
        Ok::<_, sqlx::Error>(())
    });
    match tokio::time::timeout(std::time::Duration::from_secs(3), probe).await {
        Ok(Ok(Ok(()))) => (
            StatusCode::OK,
            Json(serde_json::json!({ "status": "ready", "store": backend })),
        ),
        Ok(Ok(Err(error))) => {
            tracing::warn!(error = %error, "readiness probe failed");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(
                    serde_json::json!({ "status": "unavailable", "store": backend, "reason": "store_unavailable" }),
                ),
            )
        }
        Ok(Err(_)) | Err(_) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(
                serde_json::json!({ "status": "unavailable", "store": backend, "reason": "store_timeout" }),
            ),
        ),
    }
}

/// Prometheus metrics (OpenMetrics text).
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "health",
    responses((status = 200, description = "The metrics", content_type = "application/openmetrics-text; version=1.0.0; charset=utf-8", body = String))
)]
pub async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.metrics.render(),
    )
}
