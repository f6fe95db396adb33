//! Custom events over HTTP: `POST /v1/triggers` defines (or redefines) a custom trigger and
//! `POST /v1/fires` fires one. Both need `webhooks:write` and are rate limited per API key.
//!
//! A fire is answered only after it is committed as a pending ingest row of the `custom` source
//! (see [`crate::custom`]); the pipeline processes it afterwards like any provider event:
//! contact upsert, fire, events API and stream. The idempotency key is unique per workspace:
//! the same key again with the same trigger and payload answers 200 `duplicate` with the first
//! fire's id, with anything else 409.

use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::time::Duration;

use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::IntoResponse;
use axum::routing::post;
use axum::{Json, Router};
use bytes::Bytes;
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::auth::{authorize, Principal, Scope};
use crate::contacts::PayloadSchema;
use crate::custom::{self, StoredFire, TriggerInput};
use crate::db::{Db, FireWrite, IngestKind, NewIngest};
use crate::error::AppError;
use crate::AppState;

/// How long a fire waits for its commit before answering 503.
const STORE_TIMEOUT: Duration = Duration::from_secs(10);

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/triggers", post(define_trigger))
        .route("/v1/fires", post(fire))
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

/// `POST /v1/triggers {"id","workspace","payloadSchema":{"fields":[...]}}`: 201 when new, 200
/// when redefined, 400 listing every problem of the definition.
async fn define_trigger(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<impl IntoResponse, AppError> {
    let principal = authorize(&state, &headers, Scope::Write).await?;
    state.key_limits.take(&principal)?;
    let input: TriggerInput = serde_json::from_slice(&body)
        .map_err(|e| AppError::Invalid(format!("invalid trigger definition JSON: {e}")))?;
    let defined = define(&state.db, input, crate::now_ms()).await?;
    let status = if defined.created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(defined.json)))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct FireBody {
    trigger_event_id: String,
    workspace: Option<String>,
    payload: Value,
    idempotency_key: Option<String>,
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

/// Checks a fire against its trigger and commits it (the API's and the CLI's one path).
///
/// # Errors
/// 400 for bad input (every payload error with its path), 404 for a trigger that is not a
/// custom trigger of the workspace, 409 for a key used before with another fire, 503 when the
/// store cannot commit.
pub async fn accept_fire(
    db: &Db,
    request: FireRequest,
    now_ms: i64,
) -> Result<FireAnswer, AppError> {
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
    let stored = StoredFire {
        trigger_event_id: trigger.clone(),
        workspace: workspace.clone(),
        payload,
        occurred_at,
    };
    let body = Bytes::from(
        serde_json::to_vec(&stored).map_err(|e| AppError::Invalid(format!("payload: {e}")))?,
    );
    let row = NewIngest {
        id: ulid::Ulid::new().to_string(),
        kind: IngestKind::Accepted,
        received_at: now_ms,
        connection_id: custom::connection_id(&workspace),
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
    let written = match tokio::time::timeout(STORE_TIMEOUT, db.store_fire(&row)).await {
        Ok(Ok(written)) => written,
        Ok(Err(error)) => {
            tracing::error!(error = %error, "could not store a custom fire");
            return Err(AppError::StoreUnavailable { brevo: false });
        }
        Err(_) => return Err(AppError::StoreUnavailable { brevo: false }),
    };
    match written {
        FireWrite::Stored => Ok(FireAnswer::Accepted { id: row.id }),
        FireWrite::Existing { id, body } => {
            let first: StoredFire = serde_json::from_slice(&body).map_err(|e| {
                AppError::Invalid(format!("the fire stored with this key does not parse: {e}"))
            })?;
            if first.same_request(&stored.trigger_event_id, &stored.payload) {
                Ok(FireAnswer::Duplicate { id })
            } else {
                Err(AppError::Conflict(format!(
                    "the idempotency key was used in workspace {:?} for a different fire ({id})",
                    stored.workspace
                )))
            }
        }
    }
}

/// `POST /v1/fires {"triggerEventId","workspace","payload","idempotencyKey","occurredAt"}` (or
/// the key in an `Idempotency-Key` header): 202 after the commit, 200 `duplicate`, 409 for a
/// key reused with another fire, 400 for bad input (every payload error with its path), 404
/// for a trigger that is not a custom trigger of the workspace.
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
    // Where a workspace-bound key will be checked against `input.workspace`, once keys carry one.
    let client = super::webhook::client_addr(peer, &headers, &state.config.trusted_proxies);
    let request = FireRequest {
        trigger: input.trigger_event_id,
        workspace: input.workspace,
        payload: input.payload,
        key,
        occurred_at: input.occurred_at,
        client_addr: Some(client.to_string()),
        path: uri.path().to_owned(),
        headers: super::webhook::redacted_headers(&headers, None),
    };
    match accept_fire(&state.db, request, now).await? {
        FireAnswer::Accepted { id } => {
            state.signals.pending.notify_one();
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
