//! `/healthz` (the process is up), `/readyz` (the store is reachable and writable) and
//! `/metrics` (Prometheus text).

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::Json;

use crate::AppState;

pub async fn healthz() -> impl IntoResponse {
    Json(serde_json::json!({ "status": "ok" }))
}

/// Ready when the store answers a query and, if the last batch failed, a write probe succeeds
/// (so readiness recovers by itself even when no traffic arrives to prove it).
pub async fn readyz(State(state): State<AppState>) -> impl IntoResponse {
    let backend = state.db.backend_name();
    let probe = async {
        state.db.ping().await?;
        if state.writer.health().writes_failing() {
            state.db.probe_write().await?;
        }
        Ok::<_, sqlx::Error>(())
    };
    match tokio::time::timeout(std::time::Duration::from_secs(3), probe).await {
        Ok(Ok(())) => (
            StatusCode::OK,
            Json(serde_json::json!({ "status": "ready", "store": backend })),
        ),
        Ok(Err(error)) => {
            tracing::warn!(error = %error, "readiness probe failed");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(
                    serde_json::json!({ "status": "unavailable", "store": backend, "reason": "store_unavailable" }),
                ),
            )
        }
        Err(_) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(
                serde_json::json!({ "status": "unavailable", "store": backend, "reason": "store_timeout" }),
            ),
        ),
    }
}

pub async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.metrics.render(),
    )
}
