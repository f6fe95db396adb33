//! The events API (`/v1`): trigger fires as a paged list and as Server-Sent Events, test events,
//! and the trigger catalog. Bearer keys with scopes guard it (`webhooks:read` to list and
//! stream, `webhooks:write` to create test events; `admin` implies both).

use std::collections::VecDeque;
use std::convert::Infallible;
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::IntoResponse;
use axum::Json;
use futures_util::Stream;
use hookgate_providers::time::{format_rfc3339_ms, parse_rfc3339_ms};
use serde::Deserialize;
use serde_json::{json, Value};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::{authorize, Scope};
use crate::db::rows::FireRow;
use crate::db::FireFilter;
use crate::error::AppError;
use crate::http::openapi::{ErrorBody, Event as EventSchema, EventsPage, Trigger};
use crate::AppState;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_events))
        .routes(routes!(stream_events))
        .routes(routes!(test_event))
        .routes(routes!(list_triggers))
}

/// A fire as the API shows it.
pub fn fire_json(f: &FireRow) -> Value {
    let mut event = json!({
        "id": f.seq.to_string(),
        "messageId": crate::delivery::message_id(f.created_at, f.seq),
        "eventType": f.trigger_id,
        "payload": serde_json::from_str::<Value>(&f.payload).unwrap_or(Value::Null),
        "timestamp": format_rfc3339_ms(f.created_at),
        "occurredAt": f.occurred_at.map(format_rfc3339_ms),
        "workspace": f.workspace,
        "idempotencyKey": f.idempotency_key,
    });
    // Test events say so, so that no consumer mistakes one for a provider's.
    if f.provider == "test" {
        event["test"] = Value::Bool(true);
    }
    event
}

/// Open event streams per API key, at most.
pub const MAX_STREAMS_PER_KEY: usize = 8;
/// How often an open stream checks that its key is still valid (revoked or expired keys end
/// their streams within this; the heartbeat is 2 s).
const KEY_CHECK: Duration = Duration::from_secs(1);

/// Open event streams by credential name.
#[derive(Debug, Default)]
pub struct OpenStreams {
    counts: std::sync::Mutex<std::collections::HashMap<String, usize>>,
}

/// One open stream; gives its place back when dropped.
struct StreamSlot {
    state: AppState,
    name: String,
}

impl Drop for StreamSlot {
    fn drop(&mut self) {
        let mut counts = self
            .state
            .open_streams
            .counts
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(n) = counts.get_mut(&self.name) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                counts.remove(&self.name);
            }
        }
    }
}

fn take_stream_slot(state: &AppState, name: &str) -> Result<StreamSlot, AppError> {
    let mut counts = state
        .open_streams
        .counts
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let n = counts.entry(name.to_owned()).or_insert(0);
    if *n >= MAX_STREAMS_PER_KEY {
        return Err(AppError::TooManyStreams);
    }
    *n += 1;
    Ok(StreamSlot {
        state: state.clone(),
        name: name.to_owned(),
    })
}

/// A time filter: Unix milliseconds or RFC 3339.
pub(crate) fn parse_time(name: &str, text: &str) -> Result<i64, AppError> {
    text.parse::<i64>()
        .ok()
        .or_else(|| parse_rfc3339_ms(text))
        .ok_or_else(|| {
            AppError::Invalid(format!(
                "{name} must be Unix milliseconds or an RFC 3339 time"
            ))
        })
}

fn parse_cursor(text: &str) -> Result<i64, AppError> {
    text.parse::<i64>()
        .ok()
        .filter(|c| *c >= 0)
        .ok_or_else(|| AppError::Invalid("cursor is not a value this API returned".into()))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct EventsQuery {
    /// Only this event type.
    event_type: Option<String>,
    /// Only this workspace (a workspace-bound key: its own, 403 for another).
    workspace: Option<String>,
    /// Fires stored after this time: Unix milliseconds or RFC 3339.
    after: Option<String>,
    /// Fires stored before this time: Unix milliseconds or RFC 3339.
    before: Option<String>,
    /// `nextCursor` of the previous page: fires after it.
    cursor: Option<String>,
    /// Events per page (default 100).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<i64>,
}

/// Events, oldest first.
///
/// `GET /v1/events`: fires oldest first after `cursor`; `nextCursor` resumes after the last one
/// returned (it is always present, so a client can poll with it), `done` says no more are stored.
#[utoipa::path(
    get,
    path = "/v1/events",
    tag = "events",
    params(EventsQuery),
    responses(
        (status = 200, description = "A page of events, oldest first", body = EventsPage),
        (status = 400, description = "A filter, cursor or limit is not valid (`invalid_request`)", body = ErrorBody),
    )
)]
async fn list_events(
    State(state): State<AppState>,
    headers: HeaderMap,
    query: super::ApiQuery<EventsQuery>,
) -> Result<Json<Value>, AppError> {
    let principal = authorize(&state, &headers, Scope::Read).await?;
    let q = super::api_query(query)?;
    let workspace = principal.workspace_for(q.workspace)?;
    let limit = q.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(AppError::Invalid("limit must be between 1 and 1000".into()));
    }
    let after_seq = q
        .cursor
        .as_deref()
        .map(parse_cursor)
        .transpose()?
        .unwrap_or(0);
    let filter = FireFilter {
        after_seq,
        trigger_id: q.event_type,
        workspace,
        created_after: q
            .after
            .as_deref()
            .map(|t| parse_time("after", t))
            .transpose()?,
        created_before: q
            .before
            .as_deref()
            .map(|t| parse_time("before", t))
            .transpose()?,
        limit: limit + 1,
        newest: false,
    };
    let mut fires = state.db.list_fires(&filter).await?;
    let done = fires.len() as i64 <= limit;
    fires.truncate(usize::try_from(limit).unwrap_or(0));
    let next = fires.last().map_or(after_seq, |f| f.seq);
    Ok(Json(json!({
        "events": fires.iter().map(fire_json).collect::<Vec<_>>(),
        "nextCursor": next.to_string(),
        "done": done,
    })))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct StreamQuery {
    /// Only this event type.
    event_type: Option<String>,
    /// Only this workspace (a workspace-bound key: its own, 403 for another).
    workspace: Option<String>,
    /// Start after this event id (as `Last-Event-ID`).
    cursor: Option<String>,
}

/// Events as Server-Sent Events.
///
/// `GET /v1/events/stream`: fires as Server-Sent Events (`id:` = the cursor, `data:` = the fire),
/// a `: heartbeat` comment every 2 s, resuming after `Last-Event-ID` (or `?cursor=`); without
/// either it starts with the next fire. Fires committed by other processes sharing the database
/// arrive too: the stream polls the store, and is woken at once by this process's pipeline.
#[utoipa::path(
    get,
    path = "/v1/events/stream",
    tag = "events",
    params(
        StreamQuery,
        ("Last-Event-ID" = Option<String>, Header, description = "Resume after this event id"),
    ),
    responses(
        (status = 200, description = "Server-Sent Events: `id:` the event id, `data:` the event JSON (an `Event`); a `: heartbeat` comment every 2 s", content_type = "text/event-stream", body = String),
        (status = 400, description = "The cursor is not valid (`invalid_request`)", body = ErrorBody),
        (status = 429, description = "The key has 8 streams open (`too_many_streams`)", body = ErrorBody),
    )
)]
async fn stream_events(
    State(state): State<AppState>,
    headers: HeaderMap,
    query: super::ApiQuery<StreamQuery>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, AppError> {
    let principal = authorize(&state, &headers, Scope::Read).await?;
    let q = super::api_query(query)?;
    let workspace = principal.workspace_for(q.workspace)?;
    let slot = take_stream_slot(&state, &principal.name)?;
    let resume = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .or(q.cursor);
    let start = match resume {
        Some(text) => parse_cursor(&text)?,
        None => state.db.latest_fire_seq().await?,
    };
    let filter = FireFilter {
        after_seq: start,
        trigger_id: q.event_type,
        workspace,
        created_after: None,
        created_before: None,
        limit: 200,
        newest: false,
    };
    let watch = (principal, slot, std::time::Instant::now());
    let stream = futures_util::stream::unfold(
        (state, filter, VecDeque::<FireRow>::new(), watch),
        |(state, mut filter, mut buffer, mut watch)| async move {
            loop {
                if watch.2.elapsed() >= KEY_CHECK {
                    // A revoked or expired key ends its streams here (the slot goes with them).
                    if !watch.0.still_valid(&state).await {
                        return None;
                    }
                    watch.2 = std::time::Instant::now();
                }
                if let Some(fire) = buffer.pop_front() {
                    let event = Event::default()
                        .id(fire.seq.to_string())
                        .data(fire_json(&fire).to_string());
                    return Some((Ok(event), (state, filter, buffer, watch)));
                }
                if state
                    .signals
                    .stopping
                    .load(std::sync::atomic::Ordering::Relaxed)
                {
                    return None;
                }
                match state.db.list_fires(&filter).await {
                    Ok(fires) if !fires.is_empty() => {
                        filter.after_seq = fires.last().map_or(filter.after_seq, |f| f.seq);
                        buffer.extend(fires);
                        continue;
                    }
                    Ok(_) => {}
                    Err(error) => {
                        tracing::warn!(error = %error, "event stream could not read fires; retrying")
                    }
                }
                tokio::select! {
                    () = state.signals.fires.notified() => {}
                    () = tokio::time::sleep(Duration::from_millis(250)) => {}
                }
            }
        },
    );
    Ok(Sse::new(stream).keep_alive(
        KeepAlive::new()
            .interval(Duration::from_secs(2))
            .text("heartbeat"),
    ))
}

/// A test event.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[schema(as = TestEventInput)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct TestBody {
    /// `test.<name>`, at most 200 characters.
    event_type: String,
    /// The payload (an `email` key links the contact).
    #[serde(default)]
    #[schema(value_type = Object)]
    data: serde_json::Map<String, Value>,
    /// Default `default` (a workspace-bound key: its own).
    workspace: Option<String>,
}

/// Create a test event.
///
/// `POST /v1/webhooks/test {"eventType":"test.ping","data":{...}}`: a test fire, delivered to
/// lists and streams like any other (it is not added to the trigger catalog).
#[utoipa::path(
    post,
    path = "/v1/webhooks/test",
    tag = "events",
    request_body = TestBody,
    responses(
        (status = 201, description = "The test event, stored", body = EventSchema),
        (status = 400, description = "Invalid input (`invalid_request`)", body = ErrorBody),
    )
)]
async fn test_event(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<impl IntoResponse, AppError> {
    let principal = authorize(&state, &headers, Scope::Write).await?;
    let input: TestBody = serde_json::from_slice(&body)
        .map_err(|e| AppError::Invalid(format!("invalid test event JSON: {e}")))?;
    if input.event_type.len() > 200
        || input
            .event_type
            .strip_prefix("test.")
            .is_none_or(str::is_empty)
    {
        return Err(AppError::Invalid(
            "eventType must be `test.<name>` (test events never use a provider's types), at most 200 characters".into(),
        ));
    }
    let workspace = principal
        .workspace_for(input.workspace)?
        .unwrap_or_else(|| "default".into());
    let email = input
        .data
        .get("email")
        .and_then(Value::as_str)
        .and_then(crate::contacts::normalize_email);
    let key = format!("test:{}", ulid::Ulid::new());
    let now = crate::now_ms();
    let seq = state
        .db
        .insert_test_fire(
            &key,
            &workspace,
            &input.event_type,
            email.as_deref(),
            &input.data,
            now,
        )
        .await?;
    state.signals.fires.notify_waiters();
    let fire = FireRow {
        seq,
        idempotency_key: key,
        workspace,
        trigger_id: input.event_type,
        provider: "test".into(),
        ingest_id: None,
        email,
        payload: Value::Object(input.data).to_string(),
        occurred_at: Some(now),
        created_at: now,
    };
    Ok((StatusCode::CREATED, Json(fire_json(&fire))))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct TriggersQuery {
    /// Only this workspace (a workspace-bound key: its own, 403 for another).
    workspace: Option<String>,
}

/// The trigger catalog.
///
/// `GET /v1/triggers`: every trigger seen, per workspace, with its payload schema.
#[utoipa::path(
    get,
    path = "/v1/triggers",
    tag = "events",
    params(TriggersQuery),
    responses((status = 200, description = "The trigger catalog", body = Vec<Trigger>))
)]
async fn list_triggers(
    State(state): State<AppState>,
    headers: HeaderMap,
    query: super::ApiQuery<TriggersQuery>,
) -> Result<Json<Value>, AppError> {
    let q = super::api_query(query)?;
    let principal = authorize(&state, &headers, Scope::Read).await?;
    let workspace = principal.workspace_for(q.workspace)?;
    let rows = state.db.list_triggers(workspace.as_deref()).await?;
    let list: Vec<Value> = rows
        .iter()
        .map(|t| {
            json!({
                "id": t.id,
                "provider": t.provider,
                "workspace": t.workspace,
                "payloadSchema": serde_json::from_str::<Value>(&t.payload_schema).unwrap_or(json!({"fields": []})),
            })
        })
        .collect();
    Ok(Json(Value::Array(list)))
}
