//! The admin API (`/admin/...`): the ingest log and connection management. Every route needs
//! `Authorization: Bearer <admin_token>`; without a configured token the admin API answers 401.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use base64::Engine as _;
use serde::Deserialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::connections::{self, ConnectionInput, ConnectionView};
use crate::db::rows::{IngestRow, IngestSummary};
use crate::db::{IngestFilter, Outcome};
use crate::error::AppError;
use crate::http::openapi::{
    ConnectionList, Contact, ErrorBody, IngestOutcome, IngestPage, IngestRecord, ProcessingStatus,
    ReplayResult,
};
use crate::resolution::Status;
use crate::AppState;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_ingest))
        .routes(routes!(get_ingest))
        .routes(routes!(replay))
        .routes(routes!(get_contact))
        .routes(routes!(list_connections, create_connection))
        .routes(routes!(get_connection, delete_connection))
        .routes(routes!(disable_connection))
        .routes(routes!(enable_connection))
        .routes(routes!(rotate_connection))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct IngestQuery {
    /// Only this connection id.
    connection: Option<String>,
    /// Only this provider.
    provider: Option<String>,
    /// Only this outcome.
    #[param(value_type = Option<IngestOutcome>)]
    outcome: Option<String>,
    /// Only this event type.
    event_type: Option<String>,
    /// Only this processing status.
    #[param(value_type = Option<ProcessingStatus>)]
    status: Option<String>,
    /// `next_cursor` of the previous page.
    cursor: Option<String>,
    /// Records per page (default 50).
    #[param(minimum = 1, maximum = 500)]
    limit: Option<u32>,
}

/// The ingest log, newest first: every request to a known provider, accepted or rejected.
#[utoipa::path(
    get,
    path = "/admin/ingest",
    tag = "ingest",
    params(IngestQuery),
    responses(
        (status = 200, description = "A page of records", body = IngestPage),
        (status = 400, description = "A filter, cursor or limit is not valid", body = ErrorBody),
    )
)]
async fn list_ingest(
    State(state): State<AppState>,
    headers: HeaderMap,
    query: super::ApiQuery<IngestQuery>,
) -> Result<Json<serde_json::Value>, AppError> {
    super::require_admin(&state, &headers).await?;
    let q = super::api_query(query)?;
    if let Some(o) = &q.outcome {
        if !Outcome::ALL.iter().any(|known| known.as_str() == o) {
            let names: Vec<&str> = Outcome::ALL.iter().map(|o| o.as_str()).collect();
            return Err(AppError::Invalid(format!(
                "outcome must be one of {}",
                names.join(", ")
            )));
        }
    }
    if let Some(s) = &q.status {
        if !Status::ALL.iter().any(|known| known.as_str() == s) {
            let names: Vec<&str> = Status::ALL.iter().map(|s| s.as_str()).collect();
            return Err(AppError::Invalid(format!(
                "status must be one of {}",
                names.join(", ")
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
    value
}

fn summary_json(summary: &IngestSummary) -> serde_json::Value {
    serde_json::to_value(summary).unwrap_or(serde_json::Value::Null)
}

/// One ingest record as `GET /admin/ingest/<id>` and `hookgate logs show --json` show it: the
/// full record ([`record_json`]) and `fires`, the sequence numbers of the fires it made.
///
/// # Errors
/// The store cannot be read.
pub async fn ingest_json(
    db: &crate::db::Db,
    id: &str,
) -> Result<Option<serde_json::Value>, sqlx::Error> {
    let Some(row) = db.get_ingest(id).await? else {
        return Ok(None);
    };
    let mut value = record_json(&row);
    let fires = db.fires_for_ingest(id).await?;
    value["fires"] = fires
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .into();
    Ok(Some(value))
}

/// One whole ingest record: redacted headers, body and the fires it made.
#[utoipa::path(
    get,
    path = "/admin/ingest/{id}",
    tag = "ingest",
    params(("id" = String, Path, description = "The ingest record id")),
    responses(
        (status = 200, description = "The record", body = IngestRecord),
        (status = 404, description = "No such record (`not_found`)", body = ErrorBody),
    )
)]
async fn get_ingest(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<serde_json::Value>, AppError> {
    super::require_admin(&state, &headers).await?;
    let value = ingest_json(&state.db, &id)
        .await?
        .ok_or(AppError::NotFound)?;
    Ok(Json(value))
}

/// Run normalization again for a stored event.
///
/// `POST /admin/ingest/<id>/replay`: runs normalization again for a stored event, now. Fires are
/// unique by idempotency key, so a replay never fires twice; it re-applies contact fields (older
/// values never overwrite newer ones) and maps events that were `ignored` if they are mapped now.
#[utoipa::path(
    post,
    path = "/admin/ingest/{id}/replay",
    tag = "ingest",
    params(("id" = String, Path, description = "The ingest record id")),
    responses(
        (status = 200, description = "Processed again", body = ReplayResult),
        (status = 404, description = "No such record (`not_found`)", body = ErrorBody),
        (status = 409, description = "The record is a rejected or duplicate request (`conflict`)", body = ErrorBody),
    )
)]
async fn replay(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<serde_json::Value>, AppError> {
    super::require_admin(&state, &headers).await?;
    let Some(event) = state.db.load_event(&id).await? else {
        return match state.db.get_ingest(&id).await? {
            Some(row) => Err(AppError::Conflict(format!(
                "only stored (accepted or ignored) events can be replayed; this request was {}",
                row.summary.outcome
            ))),
            None => Err(AppError::NotFound),
        };
    };
    let applied = state
        .pipeline
        .replay(&event)
        .await?
        .ok_or(AppError::NotFound)?;
    tracing::info!(ingest_id = %id, status = applied.outcome.as_str(), "event replayed");
    Ok(Json(serde_json::json!({
        "id": id,
        "status": applied.outcome.as_str(),
        "fires": applied.fires.iter().map(ToString::to_string).collect::<Vec<_>>(),
    })))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct ContactQuery {
    /// The contact's workspace (default `default`).
    workspace: Option<String>,
}

/// One contact.
///
/// `GET /admin/contacts/<email>?workspace=` (default workspace `default`).
#[utoipa::path(
    get,
    path = "/admin/contacts/{email}",
    tag = "contacts",
    params(("email" = String, Path, description = "The email (compared trimmed and lower-cased)"), ContactQuery),
    responses(
        (status = 200, description = "The contact", body = Contact),
        (status = 400, description = "Not an email address (`invalid_request`)", body = ErrorBody),
        (status = 404, description = "No such contact in the workspace (`not_found`)", body = ErrorBody),
    )
)]
async fn get_contact(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(email): Path<String>,
    query: super::ApiQuery<ContactQuery>,
) -> Result<Json<serde_json::Value>, AppError> {
    let q = super::api_query(query)?;
    super::require_admin(&state, &headers).await?;
    let email = crate::contacts::normalize_email(&email)
        .ok_or_else(|| AppError::Invalid("not an email address".into()))?;
    let workspace = q.workspace.unwrap_or_else(|| "default".into());
    let row = state
        .db
        .get_contact(&workspace, &email)
        .await?
        .ok_or(AppError::NotFound)?;
    Ok(Json(contact_json(&row)))
}

/// A contact as `GET /admin/contacts/<email>` and `hookgate contacts show --json` show it.
pub fn contact_json(row: &crate::db::rows::ContactRow) -> serde_json::Value {
    let custom: serde_json::Value =
        serde_json::from_str(&row.custom_fields).unwrap_or_else(|_| serde_json::json!({}));
    serde_json::json!({
        "email": row.email,
        "workspace": row.workspace,
        "first_name": row.first_name,
        "last_name": row.last_name,
        "subscribed": row.subscribed,
        "custom_fields": custom,
        "created_at": row.created_at,
        "updated_at": row.updated_at,
    })
}

/// Every connection, without its secrets.
#[utoipa::path(
    get,
    path = "/admin/connections",
    tag = "connections",
    responses((status = 200, description = "Every connection", body = ConnectionList))
)]
async fn list_connections(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Json<serde_json::Value>, AppError> {
    super::require_admin(&state, &headers).await?;
    let rows = state.db.list_connections().await?;
    let key = state.config.secret_key.as_ref();
    let views: Vec<ConnectionView> = rows.iter().map(|r| ConnectionView::new(r, key)).collect();
    Ok(Json(serde_json::json!({ "connections": views })))
}

/// One connection, without its secrets.
#[utoipa::path(
    get,
    path = "/admin/connections/{id}",
    tag = "connections",
    params(("id" = String, Path, description = "The connection id")),
    responses(
        (status = 200, description = "The connection", body = ConnectionView),
        (status = 404, description = "No such connection (`not_found`)", body = ErrorBody),
    )
)]
async fn get_connection(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<ConnectionView>, AppError> {
    super::require_admin(&state, &headers).await?;
    let row = state
        .db
        .get_connection(&id)
        .await?
        .ok_or(AppError::NotFound)?;
    Ok(Json(ConnectionView::new(
        &row,
        state.config.secret_key.as_ref(),
    )))
}

/// A 400 for a request body that does not deserialize. serde's messages can quote the offending
/// value, which in these bodies may be a secret, so only the messages that name a key are passed
/// on; the others say where the problem is, not what the value was.
pub(crate) fn json_error(what: &str, error: &serde_json::Error) -> AppError {
    let text = error.to_string();
    // A provider name is not a secret, and its message lists the names that exist.
    if [
        "unknown field",
        "missing field",
        "duplicate field",
        "provider: ",
    ]
    .iter()
    .any(|p| text.starts_with(p))
    {
        return AppError::Invalid(format!("invalid {what} JSON: {text}"));
    }
    let kind = match error.classify() {
        serde_json::error::Category::Data => "a value has the wrong type",
        serde_json::error::Category::Eof => "the JSON ends early",
        serde_json::error::Category::Syntax | serde_json::error::Category::Io => "not valid JSON",
    };
    AppError::Invalid(format!(
        "invalid {what} JSON at line {} column {}: {kind}",
        error.line(),
        error.column()
    ))
}

/// `?replace=true` on the create routes (connections, endpoints): overwrite an existing id.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct CreateQuery {
    /// Overwrite an existing id (else 409).
    #[serde(default)]
    pub(super) replace: bool,
}

/// Create (or with `replace`, overwrite) a connection.
///
/// `POST /admin/connections` with the same keys as a `[[connections]]` table.
#[utoipa::path(
    post,
    path = "/admin/connections",
    tag = "connections",
    params(CreateQuery),
    request_body(content = ConnectionInput, description = "A connection; its secrets are write-only"),
    responses(
        (status = 201, description = "Saved; the registry serves it at once", body = ConnectionView),
        (status = 400, description = "Invalid input, naming the key (`invalid_request`)", body = ErrorBody),
        (status = 409, description = "The id exists and `replace` was not given (`conflict`)", body = ErrorBody),
    )
)]
async fn create_connection(
    State(state): State<AppState>,
    headers: HeaderMap,
    query: super::ApiQuery<CreateQuery>,
    body: axum::body::Bytes,
) -> Result<Response, AppError> {
    let q = super::api_query(query)?;
    super::require_admin(&state, &headers).await?;
    let input: ConnectionInput =
        serde_json::from_slice(&body).map_err(|e| json_error("connection", &e))?;
    let spec = input
        .into_spec()
        .map_err(|e| AppError::Invalid(format!("{e:#}")))?;
    crate::policy::check_new_secrets(&spec.id, spec.provider, &spec.secrets)
        .map_err(|e| AppError::Invalid(format!("{e:#}")))?;
    let written = connections::save(
        &state.db,
        &spec,
        state.config.secret_key.as_ref(),
        "api",
        q.replace,
        crate::now_ms(),
    )
    .await?;
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
    Ok((
        StatusCode::CREATED,
        Json(ConnectionView::new(&row, state.config.secret_key.as_ref())),
    )
        .into_response())
}

/// Deletes a connection; its receive URL answers 404 at once.
#[utoipa::path(
    delete,
    path = "/admin/connections/{id}",
    tag = "connections",
    params(("id" = String, Path, description = "The connection id")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = "No such connection (`not_found`)", body = ErrorBody),
    )
)]
async fn delete_connection(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<StatusCode, AppError> {
    super::require_admin(&state, &headers).await?;
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
    Ok(Json(ConnectionView::new(
        &row,
        state.config.secret_key.as_ref(),
    )))
}

/// Disables a connection: its receive URL answers 404 until it is enabled.
#[utoipa::path(
    post,
    path = "/admin/connections/{id}/disable",
    tag = "connections",
    params(("id" = String, Path, description = "The connection id")),
    responses(
        (status = 200, description = "The connection", body = ConnectionView),
        (status = 404, description = "No such connection (`not_found`)", body = ErrorBody),
    )
)]
async fn disable_connection(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<ConnectionView>, AppError> {
    super::require_admin(&state, &headers).await?;
    set_enabled(&state, &id, false).await
}

/// Enables a connection.
#[utoipa::path(
    post,
    path = "/admin/connections/{id}/enable",
    tag = "connections",
    params(("id" = String, Path, description = "The connection id")),
    responses(
        (status = 200, description = "The connection", body = ConnectionView),
        (status = 404, description = "No such connection (`not_found`)", body = ErrorBody),
    )
)]
async fn enable_connection(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<ConnectionView>, AppError> {
    super::require_admin(&state, &headers).await?;
    set_enabled(&state, &id, true).await
}

/// A new secret for a connection (write-only).
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[schema(as = ConnectionRotation)]
#[serde(deny_unknown_fields)]
struct RotateBody {
    /// The new secret; the old ones keep verifying unless `drop_old`.
    #[schema(write_only)]
    secret: String,
    /// Keep only the new secret.
    #[serde(default)]
    drop_old: bool,
}

/// Rotate a connection's secret.
///
/// `POST /admin/connections/<id>/rotate {"secret": "...", "drop_old": false}`.
#[utoipa::path(
    post,
    path = "/admin/connections/{id}/rotate",
    tag = "connections",
    params(("id" = String, Path, description = "The connection id")),
    request_body = RotateBody,
    responses(
        (status = 200, description = "The connection", body = ConnectionView),
        (status = 400, description = "Invalid input (`invalid_request`)", body = ErrorBody),
        (status = 404, description = "No such connection (`not_found`)", body = ErrorBody),
    )
)]
async fn rotate_connection(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> Result<Json<ConnectionView>, AppError> {
    super::require_admin(&state, &headers).await?;
    let input: RotateBody = serde_json::from_slice(&body).map_err(|e| json_error("rotate", &e))?;
    match connections::rotate(
        &state.db,
        state.config.secret_key.as_ref(),
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
    Ok(Json(ConnectionView::new(
        &row,
        state.config.secret_key.as_ref(),
    )))
}
