//! The admin API of outbound delivery: `/admin/endpoints...` and `/admin/deliveries...`.
//! Every route needs the `admin` scope.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::delivery::endpoint::{EndpointInput, EndpointSpec};
use crate::delivery::manage::{self, ManageError, Saved};
use crate::delivery::store::{self, DeliveryFilter, STATUSES};
use crate::error::AppError;
use crate::http::admin::{json_error, CreateQuery};
use crate::http::api::parse_time;
use crate::http::openapi::{
    Delivery, DeliveryDetail, DeliveryPage, DeliveryStatus, EndpointCreated, EndpointList,
    EndpointView, ErrorBody, Queued, Requeued, RotatedSecret, TestSend,
};
use crate::AppState;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_endpoints, create_endpoint))
        .routes(routes!(get_endpoint, delete_endpoint))
        .routes(routes!(enable_endpoint))
        .routes(routes!(disable_endpoint))
        .routes(routes!(rotate_endpoint))
        .routes(routes!(test_endpoint))
        .routes(routes!(replay_endpoint))
        .routes(routes!(list_deliveries))
        .routes(routes!(requeue))
        .routes(routes!(get_delivery))
        .routes(routes!(resend))
}

impl From<ManageError> for AppError {
    fn from(e: ManageError) -> Self {
        match e {
            ManageError::Db(e) => AppError::Database(e),
            ManageError::Invalid(m) => AppError::Invalid(m),
            ManageError::Secrets(id, e) => {
                tracing::error!(endpoint = %id, error = %e, "cannot read an endpoint's secrets");
                AppError::Invalid(format!("endpoint {id:?}: {e}"))
            }
        }
    }
}

fn key(state: &AppState) -> Option<&crate::crypto::SecretKey> {
    state.config.secret_key.as_ref()
}

async fn endpoint_row(state: &AppState, id: &str) -> Result<store::EndpointRow, AppError> {
    store::get_endpoint(&state.db, id)
        .await?
        .ok_or(AppError::NotFound)
}

/// Every endpoint, without its secrets.
#[utoipa::path(
    get,
    path = "/admin/endpoints",
    tag = "endpoints",
    responses((status = 200, description = "Every endpoint", body = EndpointList))
)]
async fn list_endpoints(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Json<Value>, AppError> {
    super::require_admin(&state, &headers).await?;
    let now = crate::now_ms();
    let rows = store::list_endpoints(&state.db).await?;
    let items: Vec<Value> = rows
        .iter()
        .map(|r| manage::view(r, key(&state), now))
        .collect();
    Ok(Json(json!({ "items": items })))
}

/// One endpoint, without its secrets.
#[utoipa::path(
    get,
    path = "/admin/endpoints/{id}",
    tag = "endpoints",
    params(("id" = String, Path, description = "The endpoint id")),
    responses(
        (status = 200, description = "The endpoint", body = EndpointView),
        (status = 404, description = "No such endpoint (`not_found`)", body = ErrorBody),
    )
)]
async fn get_endpoint(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<Value>, AppError> {
    super::require_admin(&state, &headers).await?;
    let row = endpoint_row(&state, &id).await?;
    Ok(Json(manage::view(&row, key(&state), crate::now_ms())))
}

/// Create (or with `replace`, overwrite) an endpoint.
///
/// `POST /admin/endpoints` with the keys of an `[[endpoints]]` table. The answer carries the
/// signing secret once when one was generated.
#[utoipa::path(
    post,
    path = "/admin/endpoints",
    tag = "endpoints",
    params(CreateQuery),
    request_body(content = EndpointInput, description = "An endpoint; its secrets are write-only"),
    responses(
        (status = 201, description = "Saved; `secret` when one was generated, this once", body = EndpointCreated),
        (status = 400, description = "Invalid input naming the key (`invalid_request`), a transform that does not compile, or a refused destination (`destination_not_allowed`)", body = ErrorBody),
        (status = 409, description = "The id exists and `replace` was not given (`conflict`)", body = ErrorBody),
    )
)]
async fn create_endpoint(
    State(state): State<AppState>,
    headers: HeaderMap,
    query: super::ApiQuery<CreateQuery>,
    body: axum::body::Bytes,
) -> Result<Response, AppError> {
    let q = super::api_query(query)?;
    super::require_admin(&state, &headers).await?;
    let input: EndpointInput =
        serde_json::from_slice(&body).map_err(|e| json_error("endpoint", &e))?;
    let spec = EndpointSpec::build(&input, &state.config.delivery.policy).map_err(|e| {
        if e.destination {
            AppError::DestinationNotAllowed(e.to_string())
        } else {
            AppError::Invalid(e.to_string())
        }
    })?;
    let now = crate::now_ms();
    let saved = manage::save(&state.db, &spec, key(&state), "api", q.replace, now).await?;
    let generated = match saved {
        Saved::Exists => {
            return Err(AppError::Conflict(format!(
                "endpoint {:?} exists; POST with ?replace=true to overwrite it",
                spec.id
            )))
        }
        Saved::Written { generated_secret } => generated_secret,
    };
    let row = endpoint_row(&state, &spec.id).await?;
    let mut view = manage::view(&row, key(&state), now);
    if let Some(secret) = generated {
        view["secret"] = Value::String(secret);
    }
    tracing::info!(endpoint = %spec.id, "endpoint saved through the admin API");
    Ok((StatusCode::CREATED, Json(view)).into_response())
}

/// Deletes an endpoint.
#[utoipa::path(
    delete,
    path = "/admin/endpoints/{id}",
    tag = "endpoints",
    params(("id" = String, Path, description = "The endpoint id")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = "No such endpoint (`not_found`)", body = ErrorBody),
    )
)]
async fn delete_endpoint(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<StatusCode, AppError> {
    super::require_admin(&state, &headers).await?;
    if !store::delete_endpoint(&state.db, &id, crate::now_ms()).await? {
        return Err(AppError::NotFound);
    }
    Ok(StatusCode::NO_CONTENT)
}

async fn set_enabled(state: &AppState, id: &str, enabled: bool) -> Result<Json<Value>, AppError> {
    let now = crate::now_ms();
    let reason = (!enabled).then_some("disabled by an operator");
    if !store::set_endpoint_enabled(&state.db, id, enabled, reason, None, now).await? {
        return Err(AppError::NotFound);
    }
    state.signals.fires.notify_waiters();
    let row = endpoint_row(state, id).await?;
    Ok(Json(manage::view(&row, key(state), now)))
}

/// Enables an endpoint: its paused deliveries are sent.
#[utoipa::path(
    post,
    path = "/admin/endpoints/{id}/enable",
    tag = "endpoints",
    params(("id" = String, Path, description = "The endpoint id")),
    responses(
        (status = 200, description = "The endpoint", body = EndpointView),
        (status = 404, description = "No such endpoint (`not_found`)", body = ErrorBody),
    )
)]
async fn enable_endpoint(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<Value>, AppError> {
    super::require_admin(&state, &headers).await?;
    set_enabled(&state, &id, true).await
}

/// Disables an endpoint: its deliveries are held (`paused`).
#[utoipa::path(
    post,
    path = "/admin/endpoints/{id}/disable",
    tag = "endpoints",
    params(("id" = String, Path, description = "The endpoint id")),
    responses(
        (status = 200, description = "The endpoint", body = EndpointView),
        (status = 404, description = "No such endpoint (`not_found`)", body = ErrorBody),
    )
)]
async fn disable_endpoint(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<Value>, AppError> {
    super::require_admin(&state, &headers).await?;
    set_enabled(&state, &id, false).await
}

/// A rotation; the body may be empty.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[schema(as = EndpointRotation)]
#[serde(deny_unknown_fields)]
struct RotateInput {
    /// The new secret `whsec_<base64>` (default: generated).
    #[schema(write_only)]
    secret: Option<String>,
}

/// Rotate an endpoint's signing secret.
///
/// `POST /admin/endpoints/<id>/rotate [{"secret": "whsec_..."}]` → the new secret, once.
#[utoipa::path(
    post,
    path = "/admin/endpoints/{id}/rotate",
    tag = "endpoints",
    params(("id" = String, Path, description = "The endpoint id")),
    request_body(content = Option<RotateInput>, description = "Optional; without it a secret is generated"),
    responses(
        (status = 200, description = "The new secret, shown this once; the old ones sign for 24 h more", body = RotatedSecret),
        (status = 400, description = "Invalid input (`invalid_request`)", body = ErrorBody),
        (status = 404, description = "No such endpoint (`not_found`)", body = ErrorBody),
    )
)]
async fn rotate_endpoint(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> Result<Json<Value>, AppError> {
    super::require_admin(&state, &headers).await?;
    let input: RotateInput = optional_json(&body, "rotate")?;
    let now = crate::now_ms();
    let secret = manage::rotate(&state.db, &id, input.secret, key(&state), now)
        .await?
        .ok_or(AppError::NotFound)?;
    Ok(Json(json!({
        "id": id,
        "secret": secret,
        "previous_secrets_expire_at": now + crate::delivery::endpoint::ROTATION_OVERLAP_MS,
    })))
}

/// Sends one signed `hookgate.test` event to the endpoint now, outside the queue.
#[utoipa::path(
    post,
    path = "/admin/endpoints/{id}/test",
    tag = "endpoints",
    params(("id" = String, Path, description = "The endpoint id")),
    responses(
        (status = 200, description = "What the endpoint answered", body = TestSend),
        (status = 404, description = "No such endpoint (`not_found`)", body = ErrorBody),
    )
)]
async fn test_endpoint(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<Value>, AppError> {
    super::require_admin(&state, &headers).await?;
    let row = endpoint_row(&state, &id).await?;
    let result =
        manage::send_test(&row, &state.config.delivery, key(&state), crate::now_ms()).await?;
    Ok(Json(result))
}

/// A range of events or deliveries; the body may be empty. A replay takes `since`, `until`
/// and `event_type` only.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[schema(as = DeliveryRange)]
#[serde(deny_unknown_fields)]
struct RangeInput {
    /// Unix milliseconds or RFC 3339.
    since: Option<Value>,
    /// Unix milliseconds or RFC 3339.
    until: Option<Value>,
    /// Only this event type.
    event_type: Option<String>,
    /// Requeue only: this endpoint's deliveries.
    endpoint: Option<String>,
    /// Requeue only: deliveries with this status (e.g. `dead`).
    status: Option<String>,
}

fn time_value(name: &str, v: Option<&Value>) -> Result<Option<i64>, AppError> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => n.as_i64().map(Some).ok_or_else(|| {
            AppError::Invalid(format!(
                "{name} must be Unix milliseconds or an RFC 3339 time"
            ))
        }),
        Some(Value::String(s)) => parse_time(name, s).map(Some),
        Some(_) => Err(AppError::Invalid(format!(
            "{name} must be Unix milliseconds or an RFC 3339 time"
        ))),
    }
}

/// An optional JSON body: none (or only whitespace) is `T::default()`.
fn optional_json<T: Default + serde::de::DeserializeOwned>(
    body: &[u8],
    what: &str,
) -> Result<T, AppError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(body).map_err(|e| json_error(what, &e))
}

/// Deliver a range of events again.
///
/// `POST /admin/endpoints/<id>/replay {"since","until","event_type"}` → `{"queued": n}`: every
/// matching event in the range is delivered again, events from before the endpoint included.
#[utoipa::path(
    post,
    path = "/admin/endpoints/{id}/replay",
    tag = "endpoints",
    params(("id" = String, Path, description = "The endpoint id")),
    request_body(content = Option<RangeInput>, description = "`since`, `until`, `event_type`; optional"),
    responses(
        (status = 200, description = "Deliveries queued", body = Queued),
        (status = 400, description = "Invalid input (`invalid_request`)", body = ErrorBody),
        (status = 404, description = "No such endpoint (`not_found`)", body = ErrorBody),
    )
)]
async fn replay_endpoint(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> Result<Json<Value>, AppError> {
    super::require_admin(&state, &headers).await?;
    let input: RangeInput = optional_json(&body, "replay")?;
    if input.endpoint.is_some() || input.status.is_some() {
        return Err(AppError::Invalid(
            "replay takes since, until and event_type".into(),
        ));
    }
    let since = time_value("since", input.since.as_ref())?;
    let until = time_value("until", input.until.as_ref())?;
    let row = endpoint_row(&state, &id).await?;
    let queued = manage::replay(
        &state.db,
        &row,
        since,
        until,
        input.event_type.as_deref(),
        crate::now_ms(),
    )
    .await?;
    state.signals.fires.notify_waiters();
    Ok(Json(json!({ "queued": queued })))
}

fn check_status(status: Option<&str>) -> Result<(), AppError> {
    match status {
        Some(s) if !STATUSES.contains(&s) => Err(AppError::Invalid(format!(
            "status must be one of {}",
            STATUSES.join(", ")
        ))),
        _ => Ok(()),
    }
}

/// Requeue the deliveries a filter matches.
///
/// `POST /admin/deliveries/requeue {"endpoint","status","event_type","since","until"}`: the
/// matching deliveries start a fresh schedule.
#[utoipa::path(
    post,
    path = "/admin/deliveries/requeue",
    tag = "deliveries",
    request_body(content = Option<RangeInput>, description = "Filters; optional"),
    responses(
        (status = 200, description = "Deliveries requeued", body = Requeued),
        (status = 400, description = "Invalid input (`invalid_request`)", body = ErrorBody),
    )
)]
async fn requeue(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Json<Value>, AppError> {
    super::require_admin(&state, &headers).await?;
    let input: RangeInput = optional_json(&body, "requeue")?;
    check_status(input.status.as_deref())?;
    let filter = DeliveryFilter {
        endpoint: input.endpoint,
        status: input.status,
        event_type: input.event_type,
        since: time_value("since", input.since.as_ref())?,
        until: time_value("until", input.until.as_ref())?,
        ..DeliveryFilter::default()
    };
    let n = store::requeue(&state.db, &filter, crate::now_ms()).await?;
    state.signals.fires.notify_waiters();
    Ok(Json(json!({ "requeued": n })))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct ListQuery {
    /// Only this endpoint's deliveries.
    endpoint: Option<String>,
    /// Only deliveries with this status.
    #[param(value_type = Option<DeliveryStatus>)]
    status: Option<String>,
    /// Only this event type.
    event_type: Option<String>,
    /// `next_cursor` of the previous page: older deliveries.
    cursor: Option<String>,
    /// A delivery id: newer deliveries than it (for following).
    after: Option<String>,
    /// Deliveries per page (default 50).
    #[param(minimum = 1, maximum = 500)]
    limit: Option<i64>,
}

/// Deliveries, newest first.
#[utoipa::path(
    get,
    path = "/admin/deliveries",
    tag = "deliveries",
    params(ListQuery),
    responses(
        (status = 200, description = "A page of deliveries", body = DeliveryPage),
        (status = 400, description = "A filter, cursor or limit is not valid (`invalid_request`)", body = ErrorBody),
    )
)]
async fn list_deliveries(
    State(state): State<AppState>,
    headers: HeaderMap,
    query: super::ApiQuery<ListQuery>,
) -> Result<Json<Value>, AppError> {
    let q = super::api_query(query)?;
    super::require_admin(&state, &headers).await?;
    check_status(q.status.as_deref())?;
    let limit = q.limit.unwrap_or(50);
    if !(1..=500).contains(&limit) {
        return Err(AppError::Invalid("limit must be 1 to 500".into()));
    }
    let cursor = |name: &str, v: &Option<String>| -> Result<Option<i64>, AppError> {
        v.as_deref()
            .map(|c| {
                crate::delivery::parse_delivery_id(c).ok_or_else(|| {
                    AppError::Invalid(format!("{name} is not a delivery id this API returned"))
                })
            })
            .transpose()
    };
    let filter = DeliveryFilter {
        endpoint: q.endpoint,
        status: q.status,
        event_type: q.event_type,
        before_seq: cursor("cursor", &q.cursor)?,
        after_seq: cursor("after", &q.after)?,
        limit,
        ..DeliveryFilter::default()
    };
    let rows = store::list_deliveries(&state.db, &filter).await?;
    let next_cursor = (rows.len() as i64 == limit && filter.after_seq.is_none())
        .then(|| rows.last().map(|r| crate::delivery::delivery_id(r.seq)))
        .flatten();
    let items: Vec<Value> = rows.iter().map(manage::delivery_view).collect();
    Ok(Json(json!({ "items": items, "next_cursor": next_cursor })))
}

fn delivery_seq(id: &str) -> Result<i64, AppError> {
    crate::delivery::parse_delivery_id(id).ok_or(AppError::NotFound)
}

/// One delivery with its attempt log.
#[utoipa::path(
    get,
    path = "/admin/deliveries/{id}",
    tag = "deliveries",
    params(("id" = String, Path, description = "The delivery id (`dlv_...`)")),
    responses(
        (status = 200, description = "The delivery", body = DeliveryDetail),
        (status = 404, description = "No such delivery (`not_found`)", body = ErrorBody),
    )
)]
async fn get_delivery(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<Value>, AppError> {
    super::require_admin(&state, &headers).await?;
    let seq = delivery_seq(&id)?;
    let row = store::get_delivery(&state.db, seq)
        .await?
        .ok_or(AppError::NotFound)?;
    let attempts = store::attempts(&state.db, seq).await?;
    let mut view = manage::delivery_view(&row);
    view["attempt_log"] = serde_json::to_value(&attempts).unwrap_or(Value::Null);
    Ok(Json(view))
}

/// Sends a delivery again now, whatever its status.
#[utoipa::path(
    post,
    path = "/admin/deliveries/{id}/resend",
    tag = "deliveries",
    params(("id" = String, Path, description = "The delivery id (`dlv_...`)")),
    responses(
        (status = 200, description = "The delivery, queued", body = Delivery),
        (status = 404, description = "No such delivery (`not_found`)", body = ErrorBody),
    )
)]
async fn resend(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<Value>, AppError> {
    super::require_admin(&state, &headers).await?;
    let seq = delivery_seq(&id)?;
    if !store::resend(&state.db, seq, crate::now_ms()).await? {
        return Err(AppError::NotFound);
    }
    state.signals.fires.notify_waiters();
    let row = store::get_delivery(&state.db, seq)
        .await?
        .ok_or(AppError::NotFound)?;
    Ok(Json(manage::delivery_view(&row)))
}
