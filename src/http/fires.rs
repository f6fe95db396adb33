//! Custom events over HTTP: `POST /v1/triggers` defines (or redefines) a custom trigger and
//! `POST /v1/fires` fires one. Both need `webhooks:write` and are rate limited per API key.
//!
//! A fire is answered only after it is committed as a pending ingest row of the `custom` source
//! (see [`crate::custom`]) by the group-commit writer, like a webhook; the pipeline processes it
//! afterwards like any provider event:
//! contact upsert, fire, events API and stream. The idempotency key is unique per workspace:
//! the same key again with the same trigger and payload answers 200 `duplicate` with the first
//! fire's id, with anything else 409.

use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::time::Duration;

use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::IntoResponse;
use axum::Json;
use bytes::Bytes;
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use serde::Deserialize;
use serde_json::{json, Value};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::{authorize, Principal, Scope};
use crate::contacts::PayloadSchema;
use crate::custom::{self, StoredFire, TriggerInput};
use crate::db::{Db, FireWrite, IngestKind, NewIngest, WriteOutcome};
use crate::error::AppError;
use crate::http::openapi::{ErrorBody, FireResult, Trigger};
use crate::AppState;

/// How long a fire waits for its commit before answering 503.
const STORE_TIMEOUT: Duration = Duration::from_secs(10);

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(define_trigger))
        .routes(routes!(fire))
}

/// Per API key rate limits for the custom-event routes, with the gateway's default connection
/// rate (`rate_limit_per_sec`, `rate_limit_burst`): a key is limited the way a connection is.
pub struct KeyLimits {
    limiter: DefaultKeyedRateLimiter<String>,
}

impl KeyLimits {
    pub fn new(per_sec: u32, burst: u32) -> Self {
        let quota = Quota::per_second(NonZeroU32::new(per_sec.max(1)).unwrap_or(NonZeroU32::MIN))
            .allow_burst(NonZeroU32::new(burst.max(1)).unwrap_or(NonZeroU32::MIN));
        KeyLimits {
            limiter: RateLimiter::keyed(quota),
        }
    }

    /// Takes one request from `principal`'s budget.
    ///
    /// # Errors
    /// 429 with the seconds to wait.
    pub fn take(&self, principal: &Principal) -> Result<(), AppError> {
        self.limiter
            .check_key(&principal.name)
            .map_err(|not_until| {
                let wait = not_until.wait_time_from(governor::clock::Clock::now(
                    &governor::clock::DefaultClock::default(),
                ));
                AppError::RateLimited {
                    retry_after_secs: wait.as_secs() + u64::from(wait.subsec_nanos() > 0),
                }
            })
    }
}

fn trigger_json(workspace: &str, id: &str, provider: &str, schema: &Value) -> Value {
    json!({"id": id, "provider": provider, "workspace": workspace, "payloadSchema": schema})
}

/// A defined trigger as `POST /v1/triggers` answers it, and whether it is new.
pub struct Defined {
    pub created: bool,
    pub json: Value,
}

/// Checks and stores a custom trigger definition (the API's and the CLI's one path).
///
/// # Errors
/// 400 listing every problem of the definition, 409 for another source's trigger id, or a
/// database error.
pub async fn define(db: &Db, input: TriggerInput, now_ms: i64) -> Result<Defined, AppError> {
    let definition = input
        .into_definition()
        .map_err(|errors| AppError::InvalidFields {
            code: "invalid_trigger",
            message: format!(
                "the trigger definition has {} problem(s); see errors",
                errors.len()
            ),
            errors,
        })?;
    let schema = serde_json::to_value(&definition.schema)
        .map_err(|e| AppError::Invalid(format!("schema: {e}")))?;
    let created = db
        .define_trigger(
            &definition.workspace,
            &definition.id,
            &schema.to_string(),
            now_ms,
        )
        .await?
        .ok_or_else(|| {
            AppError::Conflict(format!(
                "{:?} is a trigger of another source in workspace {:?}",
                definition.id, definition.workspace
            ))
        })?;
    Ok(Defined {
        created,
        json: trigger_json(
            &definition.workspace,
            &definition.id,
            custom::SOURCE,
            &schema,
        ),
    })
}

/// Define or redefine a custom trigger.
///
/// `POST /v1/triggers {"id","workspace","payloadSchema":{"fields":[...]}}`: 201 when new, 200
/// when redefined, 400 listing every problem of the definition.
#[utoipa::path(
    post,
    path = "/v1/triggers",
    tag = "custom",
    request_body = TriggerInput,
    responses(
        (status = 201, description = "Defined", body = Trigger),
        (status = 200, description = "Redefined", body = Trigger),
        (status = 400, description = "Every problem of the definition with its path (`invalid_trigger`), or JSON that does not parse (`invalid_request`)", body = ErrorBody),
        (status = 409, description = "The id is another source's trigger (`conflict`)", body = ErrorBody),
        (status = 429, description = "The key's rate limit (`rate_limited`, with `Retry-After`)", body = ErrorBody, headers(("Retry-After" = u64, description = "Seconds to wait before retrying"))),
    )
)]
async fn define_trigger(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<impl IntoResponse, AppError> {
    let principal = authorize(&state, &headers, Scope::Write).await?;
    state.key_limits.take(&principal)?;
    let mut input: TriggerInput = serde_json::from_slice(&body)
        .map_err(|e| AppError::Invalid(format!("invalid trigger definition JSON: {e}")))?;
    // A workspace-bound key defines triggers of its own workspace only (403 for another).
    input.workspace = principal.workspace_for(input.workspace)?;
    let defined = define(&state.db, input, crate::now_ms()).await?;
    let status = if defined.created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(defined.json)))
}

/// A custom fire.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[schema(as = FireInput)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct FireBody {
    /// A custom trigger of the workspace.
    trigger_event_id: String,
    /// Default `default` (a workspace-bound key: its own).
    workspace: Option<String>,
    /// A JSON object matching the trigger's payload schema.
    payload: Value,
    /// Unique per workspace; or the `Idempotency-Key` header (one of them is required).
    idempotency_key: Option<String>,
    /// When it happened: Unix milliseconds or RFC 3339 (default: now).
    occurred_at: Option<Value>,
}

/// A fire to accept, from the API or the CLI.
pub struct FireRequest {
    pub trigger: String,
    pub workspace: Option<String>,
    pub payload: Value,
    pub key: String,
    pub occurred_at: Option<Value>,
    /// For the ingest log: who sent it, to which path, with which (redacted) headers.
    pub client_addr: Option<String>,
    pub path: String,
    pub headers: String,
}

/// What accepting a fire did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FireAnswer {
    /// Committed as a pending event with this id.
    Accepted { id: String },
    /// The key was used before for the same fire, stored with this id.
    Duplicate { id: String },
}

/// A checked fire: either answered from the store already (its key was used before), or the
/// ingest row to commit.
pub enum Checked {
    Answered(FireAnswer),
    New(Box<(NewIngest, StoredFire)>),
}

/// The answer to a fire whose key was stored before as `first_id` with `first_body`: the same
/// trigger and payload is a duplicate, anything else a conflict.
fn settle(fire: &StoredFire, first_id: String, first_body: &[u8]) -> Result<FireAnswer, AppError> {
    let first: StoredFire = serde_json::from_slice(first_body).map_err(|e| {
        AppError::Invalid(format!("the fire stored with this key does not parse: {e}"))
    })?;
    if first.same_request(&fire.trigger_event_id, &fire.payload) {
        Ok(FireAnswer::Duplicate { id: first_id })
    } else {
        Err(AppError::Conflict(format!(
            "the idempotency key was used in workspace {:?} for a different fire ({first_id})",
            fire.workspace
        )))
    }
}

/// Checks a fire against its trigger, and answers a retry of a stored fire from the store
/// (writing nothing); otherwise returns the ingest row to commit.
///
/// # Errors
/// 400 for bad input (every payload error with its path), 404 for a trigger that is not a
/// custom trigger of the workspace, 409 for a key used before with another fire.
pub async fn check_fire(db: &Db, request: FireRequest, now_ms: i64) -> Result<Checked, AppError> {
    let FireRequest {
        trigger,
        workspace,
        payload,
        key,
        occurred_at,
        client_addr,
        path,
        headers,
    } = request;
    custom::check_key(&key).map_err(|e| AppError::Invalid(format!("idempotency key: {e}")))?;
    let workspace = workspace.unwrap_or_else(|| "default".into());
    custom::check_workspace(&workspace)
        .map_err(|e| AppError::Invalid(format!("workspace: {e}")))?;
    // An id no definition could have names no custom trigger (and is never sent to the store).
    if custom::check_trigger_id(&trigger).is_err() {
        return Err(AppError::NotFound);
    }
    let Some(definition) = db
        .get_trigger(&workspace, &trigger)
        .await?
        .filter(|t| t.provider == custom::SOURCE)
    else {
        return Err(AppError::NotFound);
    };
    let schema: PayloadSchema = serde_json::from_str(&definition.payload_schema)
        .map_err(|e| AppError::Invalid(format!("the stored schema does not parse: {e}")))?;
    custom::check_payload(&trigger, &schema, &payload).map_err(|errors| {
        AppError::InvalidFields {
            code: "invalid_payload",
            message: format!(
                "the payload breaks the schema of trigger {trigger:?} in {} place(s); see errors",
                errors.len()
            ),
            errors,
        }
    })?;
    let occurred_at = match &occurred_at {
        None | Some(Value::Null) => now_ms,
        Some(value) => custom::check_occurred_at(value, now_ms)
            .map_err(|e| AppError::Invalid(format!("occurredAt {e}")))?,
    };
    let Value::Object(payload) = payload else {
        return Err(AppError::Invalid("payload must be a JSON object".into()));
    };
    let fire = StoredFire {
        trigger_event_id: trigger.clone(),
        workspace: workspace.clone(),
        payload,
        occurred_at,
    };
    let connection_id = custom::connection_id(&workspace);
    if let Some((first_id, first_body)) = db.find_fire(&connection_id, &key).await? {
        return settle(&fire, first_id, &first_body).map(Checked::Answered);
    }
    let body = Bytes::from(
        serde_json::to_vec(&fire).map_err(|e| AppError::Invalid(format!("payload: {e}")))?,
    );
    let row = NewIngest {
        id: ulid::Ulid::new().to_string(),
        kind: IngestKind::Accepted,
        received_at: now_ms,
        connection_id,
        provider: custom::SOURCE,
        workspace: Some(workspace),
        http_status: 202,
        event_id: Some(key),
        event_type: Some(trigger),
        reason: None,
        client_addr,
        path,
        headers,
        body_size: i64::try_from(body.len()).unwrap_or(i64::MAX),
        body,
        body_truncated: false,
        read_us: None,
        verify_us: None,
    };
    Ok(Checked::New(Box::new((row, fire))))
}

/// Checks and commits a fire in a transaction of its own: the path of a process without the
/// group-commit writer (`hookgate fire`).
///
/// # Errors
/// As [`check_fire`], and 503 when the store cannot commit.
pub async fn accept_fire(
    db: &Db,
    request: FireRequest,
    now_ms: i64,
) -> Result<FireAnswer, AppError> {
    let (row, fire) = match check_fire(db, request, now_ms).await? {
        Checked::Answered(answer) => return Ok(answer),
        Checked::New(new) => *new,
    };
    match tokio::time::timeout(STORE_TIMEOUT, db.store_fire(&row)).await {
        Ok(Ok(FireWrite::Stored)) => Ok(FireAnswer::Accepted { id: row.id }),
        Ok(Ok(FireWrite::Existing { id, body })) => settle(&fire, id, &body),
        Ok(Err(error)) => {
            tracing::error!(error = %error, "could not store a custom fire");
            Err(AppError::StoreUnavailable { brevo: false })
        }
        Err(_) => Err(AppError::StoreUnavailable { brevo: false }),
    }
}

/// Commits a checked fire through the gateway's group-commit writer, so fires share commits
/// with each other and with webhooks. Concurrent first uses of one key meet at the unique
/// index: one is stored, the others are logged as duplicates and answered from the first.
async fn commit(
    state: &AppState,
    row: NewIngest,
    fire: &StoredFire,
) -> Result<FireAnswer, AppError> {
    let id = row.id.clone();
    let key = row.event_id.clone().unwrap_or_default();
    let outcome = tokio::time::timeout(STORE_TIMEOUT, state.writer.store(row)).await;
    let first_id = match outcome {
        Ok(Ok(WriteOutcome::Stored)) => return Ok(FireAnswer::Accepted { id }),
        Ok(Ok(WriteOutcome::Duplicate { first_id })) => first_id,
        Ok(Ok(WriteOutcome::Logged) | Err(_)) | Err(_) => {
            return Err(AppError::StoreUnavailable { brevo: false })
        }
    };
    let connection_id = custom::connection_id(&fire.workspace);
    let first = state.db.find_fire(&connection_id, &key).await?;
    let answer = match first {
        Some((stored_id, body)) if stored_id == first_id => settle(fire, first_id, &body),
        _ => Err(AppError::StoreUnavailable { brevo: false }),
    };
    // The writer logged this request as a duplicate before its answer was known.
    let status = match &answer {
        Ok(_) => 200,
        Err(AppError::Conflict(_)) => 409,
        Err(_) => 503,
    };
    if let Err(error) = state.db.set_http_status(&id, status).await {
        tracing::warn!(error = %error, ingest_id = %id, "could not record a duplicate fire's status");
    }
    answer
}

/// Fire a custom event.
///
/// `POST /v1/fires {"triggerEventId","workspace","payload","idempotencyKey","occurredAt"}` (or
/// the key in an `Idempotency-Key` header): 202 after the commit, 200 `duplicate`, 409 for a
/// key reused with another fire, 400 for bad input (every payload error with its path), 404
/// for a trigger that is not a custom trigger of the workspace.
#[utoipa::path(
    post,
    path = "/v1/fires",
    tag = "custom",
    params(("Idempotency-Key" = Option<String>, Header, description = "The idempotency key, if not in the body")),
    request_body = FireBody,
    responses(
        (status = 202, description = "Committed; processed afterwards (`accepted`)", body = FireResult),
        (status = 200, description = "The key was used before for the same fire (`duplicate`, the first fire's id)", body = FireResult),
        (status = 400, description = "Invalid input, or every payload error with its path (`invalid_payload`)", body = ErrorBody),
        (status = 404, description = "Not a custom trigger of the workspace (`not_found`)", body = ErrorBody),
        (status = 409, description = "The key was used for a different fire (`conflict`)", body = ErrorBody),
        (status = 429, description = "The key's rate limit (`rate_limited`, with `Retry-After`)", body = ErrorBody, headers(("Retry-After" = u64, description = "Seconds to wait before retrying"))),
        (status = 503, description = "The store cannot commit (`store_unavailable`, with `Retry-After`)", body = ErrorBody, headers(("Retry-After" = u64, description = "Seconds to wait before retrying"))),
    )
)]
async fn fire(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Result<axum::response::Response, AppError> {
    let now = crate::now_ms();
    let principal = authorize(&state, &headers, Scope::Write).await?;
    state.key_limits.take(&principal)?;
    let input: FireBody = serde_json::from_slice(&body)
        .map_err(|e| AppError::Invalid(format!("invalid fire JSON: {e}")))?;
    let header_key = match headers
        .get_all("idempotency-key")
        .iter()
        .collect::<Vec<_>>()[..]
    {
        [] => None,
        [one] => Some(one.to_str().map(str::to_owned).map_err(|_| {
            AppError::Invalid("the Idempotency-Key header must be visible ASCII".into())
        })?),
        _ => {
            return Err(AppError::Invalid(
                "the Idempotency-Key header is given more than once".into(),
            ))
        }
    };
    let key = match (input.idempotency_key, header_key) {
        (Some(body), Some(header)) if body != header => {
            return Err(AppError::Invalid(
                "idempotencyKey and the Idempotency-Key header differ; give one".into(),
            ))
        }
        (Some(key), _) | (None, Some(key)) => key,
        (None, None) => {
            return Err(AppError::Invalid(
                "an idempotency key is required: the Idempotency-Key header or idempotencyKey"
                    .into(),
            ))
        }
    };
    // A workspace-bound key fires in its own workspace only (403 for another); without a
    // workspace in the request it fires in the key's.
    let workspace = principal.workspace_for(input.workspace)?;
    let client = super::webhook::client_addr(peer, &headers, &state.config.trusted_proxies);
    let request = FireRequest {
        trigger: input.trigger_event_id,
        workspace,
        payload: input.payload,
        key,
        occurred_at: input.occurred_at,
        client_addr: Some(client.to_string()),
        path: uri.path().to_owned(),
        headers: super::webhook::redacted_headers(&headers, None),
    };
    let answer = match check_fire(&state.db, request, now).await? {
        Checked::Answered(answer) => answer,
        Checked::New(new) => {
            let (row, fire) = *new;
            commit(&state, row, &fire).await?
        }
    };
    match answer {
        FireAnswer::Accepted { id } => {
            // When events carry a `messageId`, it is answered here too.
            let answer = json!({"id": id, "status": "accepted"});
            Ok((StatusCode::ACCEPTED, Json(answer)).into_response())
        }
        FireAnswer::Duplicate { id } => Ok((
            StatusCode::OK,
            Json(json!({"id": id, "status": "duplicate"})),
        )
            .into_response()),
    }
}
