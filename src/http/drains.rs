//! The admin API of drains: `GET /admin/drains` and `POST /admin/drains/<id>/resume`. Both need
//! the `admin` scope. A drain's header values and secret are never shown.

use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::Json;
use serde_json::{json, Value};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::AppError;
use crate::http::openapi::{DrainList, DrainResumed, ErrorBody};
use crate::AppState;
use hookgate_providers::time::format_rfc3339_ms;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_drains))
        .routes(routes!(resume))
}

/// Every drain of this process: its settings (header names only), live state and progress.
#[utoipa::path(
    get,
    path = "/admin/drains",
    tag = "drains",
    summary = "List drains",
    responses((status = 200, description = "Every drain of this process, with its live state (header values and secrets are never shown)", body = DrainList))
)]
async fn list_drains(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Json<Value>, AppError> {
    super::require_admin(&state, &headers).await?;
    let stored = crate::drains::store::list(&state.db).await?;
    let now = crate::now_ms();
    let items: Vec<Value> = state
        .drains
        .specs
        .iter()
        .map(|spec| {
            let live = state.drains.status(&spec.id);
            let row = stored.iter().find(|r| r.id == spec.id);
            let header_names: Vec<&str> = spec.headers.iter().map(|(n, _)| n.as_str()).collect();
            json!({
                "id": spec.id,
                "kind": spec.kind.as_str(),
                "url": spec.url,
                "target": spec.target(),
                "header_names": header_names,
                "records": spec.records(),
                "state": live.state.as_str(),
                "last_error": live.last_error,
                "last_error_at": live.last_error_at.map(format_rfc3339_ms),
                "position": row.map_or(0, |r| r.position),
                "sent": row.map_or(0, |r| r.sent),
                "queued": live.queued,
                "lag_seconds": live.oldest_unsent_at.map_or(0, |at| (now - at).max(0) / 1000),
                "last_success_at": row.and_then(|r| r.last_success_at).map(format_rfc3339_ms),
            })
        })
        .collect();
    Ok(Json(json!({ "items": items })))
}

/// Makes a paused or retrying drain try its batch again now.
#[utoipa::path(
    post,
    path = "/admin/drains/{id}/resume",
    tag = "drains",
    summary = "Resume a drain",
    params(("id" = String, Path, description = "The drain id")),
    responses(
        (status = 200, description = "The drain tries its batch again now", body = DrainResumed),
        (status = 404, description = "No such drain in this process (`not_found`)", body = ErrorBody),
    )
)]
async fn resume(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<Value>, AppError> {
    super::require_admin(&state, &headers).await?;
    if state.drains.resume(&id) {
        Ok(Json(json!({ "resumed": id })))
    } else {
        Err(AppError::NotFound)
    }
}
