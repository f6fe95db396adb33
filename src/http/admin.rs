//! The admin API (`/admin/...`): the ingest log and connection management. Every route needs
//! `Authorization: Bearer <admin_token>`; without a configured token the admin API answers 401.

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine as _;
use serde::Deserialize;
use subtle::ConstantTimeEq;

use crate::config::{ConnectionSpec, FileConnection};
use crate::connections::{self, ConnectionView};
use crate::db::rows::{IngestRow, IngestSummary};
use crate::db::IngestFilter;
use crate::error::AppError;
use crate::AppState;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/admin/ingest", get(list_ingest))
        .route("/admin/ingest/{id}", get(get_ingest))
        .route(
            "/admin/connections",
            get(list_connections).post(create_connection),
        )
        .route(
            "/admin/connections/{id}",
            get(get_connection).delete(delete_connection),
        )
        .route("/admin/connections/{id}/disable", post(disable_connection))
        .route("/admin/connections/{id}/enable", post(enable_connection))
        .route("/admin/connections/{id}/rotate", post(rotate_connection))
}

/// Checks the admin bearer token in constant time.
fn require_admin(state: &AppState, headers: &HeaderMap) -> Result<(), AppError> {
    let Some(expected) = &state.config.admin_token else {
        return Err(AppError::MissingToken);
    };
    let presented = headers
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .ok_or(AppError::MissingToken)?;
    if bool::from(presented.as_bytes().ct_eq(expected.expose().as_bytes())) {
        Ok(())
    } else {
        Err(AppError::MissingToken)
    }
}

#[derive(Debug, Deserialize)]
pub struct IngestQuery {
    connection: Option<String>,
    provider: Option<String>,
    outcome: Option<String>,
    event_type: Option<String>,
    status: Option<String>,
    cursor: Option<String>,
    limit: Option<u32>,
}

const OUTCOMES: &[&str] = &["accepted", "duplicate", "ignored", "rejected"];
const STATUSES: &[&str] = &["pending", "processed", "unresolved", "failed", "ignored"];

async fn list_ingest(
    State(state): State<AppState>,
    headers: HeaderMap,
    query: Result<Query<IngestQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<serde_json::Value>, AppError> {
    require_admin(&state, &headers)?;
    let Query(q) = query.map_err(|e| AppError::Invalid(e.body_text()))?;
    if let Some(o) = &q.outcome {
        if !OUTCOMES.contains(&o.as_str()) {
            return Err(AppError::Invalid(format!(
                "outcome must be one of {}",
                OUTCOMES.join(", ")
            )));
        }
    }
    if let Some(s) = &q.status {
        if !STATUSES.contains(&s.as_str()) {
            return Err(AppError::Invalid(format!(
                "status must be one of {}",
                STATUSES.join(", ")
            )));
        }
    }
    if let Some(c) = &q.cursor {
        if ulid::Ulid::from_string(c).is_err() {
            return Err(AppError::Invalid(
                "cursor is not a value this API returned".into(),
            ));
        }
    }
    let limit = q.limit.unwrap_or(50);
    if !(1..=500).contains(&limit) {
        return Err(AppError::Invalid("limit must be between 1 and 500".into()));
    }
    let filter = IngestFilter {
        connection: q.connection,
        provider: q.provider,
        outcome: q.outcome,
        event_type: q.event_type,
        status: q.status,
        before_id: q.cursor,
        after_id: None,
        limit,
    };
    let items = state.db.list_ingest(&filter).await?;
    let next_cursor = if items.len() == limit as usize {
        items.last().map(|i| i.id.clone())
    } else {
        None
    };
    Ok(Json(
        serde_json::json!({ "items": items, "next_cursor": next_cursor }),
    ))
}

/// The full record as JSON: headers as pairs, the body as JSON when it parses, else as text
/// (and base64 when it is not UTF-8).
pub fn record_json(row: &IngestRow) -> serde_json::Value {
    let IngestRow {
        summary,
        path,
        headers,
        body,
        body_truncated,
    } = row;
    let mut value = summary_json(summary);
    value["path"] = path.clone().into();
    value["headers"] = serde_json::from_str(headers).unwrap_or(serde_json::Value::Null);
    value["body_truncated"] = (*body_truncated).into();
    match std::str::from_utf8(body) {
        Ok(text) => {
            value["body"] = serde_json::from_str(text)
                .unwrap_or_else(|_| serde_json::Value::String(text.to_owned()));
        }
        Err(_) => {
            value["body"] = serde_json::Value::Null;
            value["body_base64"] = base64::engine::general_purpose::STANDARD
                .encode(body)
                .into();
        }
    }
    // Filled by the normalization pipeline once it has processed the event.
    value["contact_email"] = serde_json::Value::Null;
    value["fires"] = serde_json::json!([]);
    value
}

fn summary_json(summary: &IngestSummary) -> serde_json::Value {
    serde_json::to_value(summary).unwrap_or(serde_json::Value::Null)
}

async fn get_ingest(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<serde_json::Value>, AppError> {
    require_admin(&state, &headers)?;
    let row = state.db.get_ingest(&id).await?.ok_or(AppError::NotFound)?;
    Ok(Json(record_json(&row)))
}

async fn list_connections(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Json<serde_json::Value>, AppError> {
    require_admin(&state, &headers)?;
    let rows = state.db.list_connections().await?;
    let views: Vec<ConnectionView> = rows.iter().map(ConnectionView::from).collect();
    Ok(Json(serde_json::json!({ "connections": views })))
}

async fn get_connection(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<ConnectionView>, AppError> {
    require_admin(&state, &headers)?;
    let row = state
        .db
        .get_connection(&id)
        .await?
        .ok_or(AppError::NotFound)?;
    Ok(Json(ConnectionView::from(&row)))
}

#[derive(Debug, Deserialize)]
struct CreateQuery {
    #[serde(default)]
    replace: bool,
}

/// `POST /admin/connections` with the same keys as a `[[connections]]` table.
async fn create_connection(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<CreateQuery>,
    body: axum::body::Bytes,
) -> Result<Response, AppError> {
    require_admin(&state, &headers)?;
    let input: FileConnection = serde_json::from_slice(&body)
        .map_err(|e| AppError::Invalid(format!("invalid connection JSON: {e}")))?;
    let provider = input
        .provider
        .parse()
        .map_err(|e| AppError::Invalid(format!("provider: {e}")))?;
    let spec = ConnectionSpec::build(
        &input.id,
        provider,
        input.workspace,
        input.secrets,
        input.tolerance_secs,
        input.allow_ips,
        input.auth.as_deref(),
        input.email_path,
        input.rate_limit_per_sec,
        input.rate_limit_burst,
        input.enabled.unwrap_or(true),
    )
    .map_err(|e| AppError::Invalid(format!("{e:#}")))?;
    let written = connections::save(&state.db, &spec, "api", q.replace, crate::now_ms()).await?;
    if !written {
        return Err(AppError::Conflict(format!(
            "connection {:?} exists; POST with ?replace=true to overwrite it",
            spec.id
        )));
    }
    state.registry.reload(&state.db).await?;
    let row = state
        .db
        .get_connection(&spec.id)
        .await?
        .ok_or(AppError::NotFound)?;
    tracing::info!(connection = %spec.id, provider = spec.provider.as_str(), "connection saved through the admin API");
    Ok((StatusCode::CREATED, Json(ConnectionView::from(&row))).into_response())
}

async fn delete_connection(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<StatusCode, AppError> {
    require_admin(&state, &headers)?;
    if !state.db.delete_connection(&id).await? {
        return Err(AppError::NotFound);
    }
    state.registry.reload(&state.db).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn set_enabled(
    state: &AppState,
    id: &str,
    enabled: bool,
) -> Result<Json<ConnectionView>, AppError> {
    if !state.db.set_enabled(id, enabled, crate::now_ms()).await? {
        return Err(AppError::NotFound);
    }
    state.registry.reload(&state.db).await?;
    let row = state
        .db
        .get_connection(id)
        .await?
        .ok_or(AppError::NotFound)?;
    Ok(Json(ConnectionView::from(&row)))
}

async fn disable_connection(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<ConnectionView>, AppError> {
    require_admin(&state, &headers)?;
    set_enabled(&state, &id, false).await
}

async fn enable_connection(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<ConnectionView>, AppError> {
    require_admin(&state, &headers)?;
    set_enabled(&state, &id, true).await
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RotateBody {
    secret: String,
    #[serde(default)]
    drop_old: bool,
}

/// `POST /admin/connections/<id>/rotate {"secret": "...", "drop_old": false}`.
async fn rotate_connection(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> Result<Json<ConnectionView>, AppError> {
    require_admin(&state, &headers)?;
    let input: RotateBody = serde_json::from_slice(&body)
        .map_err(|e| AppError::Invalid(format!("invalid rotate JSON: {e}")))?;
    match connections::rotate(
        &state.db,
        &id,
        &input.secret,
        input.drop_old,
        crate::now_ms(),
    )
    .await
    {
        Ok(Some(_)) => {}
        Ok(None) => return Err(AppError::NotFound),
        Err(e) => return Err(AppError::Invalid(format!("{e:#}"))),
    }
    state.registry.reload(&state.db).await?;
    let row = state
        .db
        .get_connection(&id)
        .await?
        .ok_or(AppError::NotFound)?;
    Ok(Json(ConnectionView::from(&row)))
}
