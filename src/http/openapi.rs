//! `GET /openapi.json`: the OpenAPI 3.1 document of the gateway's HTTP API.
//!
//! The document is generated from the code by utoipa: every handler carries a
//! `#[utoipa::path]` attribute (method, path, parameters, request and response bodies), the
//! request and response types derive `ToSchema` or `IntoParams`, and the routers are
//! `utoipa_axum::OpenApiRouter`s filled with `routes!(handler)`, which registers a handler's
//! route and its documentation together. A route cannot be served without being documented,
//! and [`document`] reads the paths from the same routers the gateway serves.
//!
//! What the middleware adds to every `/admin` and `/v1` route is added here, from the same
//! source: the bearer requirement with the scope [`super::route_scope`] demands, and the error
//! answers it can give before a handler runs (401, 403, 408, 413), plus 500.
//!
//! The types below describe answers the handlers build as JSON values; the integration test
//! (`tests/it/openapi.rs`) validates real answers against them, so they cannot drift apart
//! unnoticed.

use std::sync::OnceLock;

use axum::http::header;
use axum::response::IntoResponse;
use serde::Serialize;
use utoipa::openapi::path::Operation;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{ContentBuilder, OpenApi, Ref, RefOr, ResponseBuilder};
use utoipa::{OpenApi as _, ToSchema};

use crate::custom::FieldError;
use crate::db::rows::IngestSummary;

/// A string schema whose values are a list the handlers check against, named for the document.
macro_rules! string_enum {
    ($(#[$doc:meta])* $name:ident, $description:literal, $values:expr) => {
        $(#[$doc])*
        pub struct $name;

        impl utoipa::PartialSchema for $name {
            fn schema() -> RefOr<utoipa::openapi::schema::Schema> {
                utoipa::openapi::ObjectBuilder::new()
                    .schema_type(utoipa::openapi::schema::Type::String)
                    .description(Some($description))
                    .enum_values(Some($values))
                    .into()
            }
        }

        impl ToSchema for $name {}
    };
}

string_enum!(
    /// `outcome` of the ingest log, from [`crate::db::Outcome::ALL`].
    IngestOutcome,
    "How a request was answered: stored, a retry of a stored event, stored but not mapped, or refused.",
    crate::db::Outcome::ALL.iter().map(|o| o.as_str())
);
string_enum!(
    /// Processing status, from [`crate::resolution::Status::ALL`].
    ProcessingStatus,
    "How far normalization got with a stored event.",
    crate::resolution::Status::ALL.iter().map(|s| s.as_str())
);
string_enum!(
    /// Delivery status, from [`crate::delivery::store::STATUSES`].
    DeliveryStatus,
    "A delivery's state.",
    crate::delivery::store::STATUSES.iter().copied()
);

/// The bearer scheme's name in the document.
pub const BEARER: &str = "bearer";

#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "hookgate",
        description = "Inbound webhook gateway: the receive route, the events API (`/v1`), the \
                       admin API (`/admin`) and health. Every `/v1` and `/admin` route takes \
                       `Authorization: Bearer <token>`: the configured admin token (every \
                       scope) or an API key (`hgk_...`) with the scope the operation names."
    ),
    // Named enums used only by parameters (parameters do not register the schemas they name).
    components(schemas(
        IngestOutcome,
        ProcessingStatus,
        DeliveryStatus,
        crate::connections::ProviderName
    )),
    tags(
        (name = "receive", description = "Webhook deliveries from providers"),
        (name = "events", description = "Trigger fires: list, stream, test events, catalog"),
        (name = "custom", description = "Custom triggers and fires from your own backend"),
        (name = "ingest", description = "The ingest log and replays"),
        (name = "contacts", description = "Normalized contacts"),
        (name = "connections", description = "Provider connections (secrets are write-only)"),
        (name = "endpoints", description = "Outbound delivery endpoints"),
        (name = "deliveries", description = "Outbound deliveries and their attempts"),
        (name = "drains", description = "Drains streaming the gateway's records to observability sinks"),
        (name = "health", description = "Liveness, readiness, metrics and this document"),
    )
)]
struct ApiDoc;

/// The document, built once from the routers (see the module comment).
pub fn document() -> &'static OpenApi {
    static DOCUMENT: OnceLock<OpenApi> = OnceLock::new();
    DOCUMENT.get_or_init(|| {
        let mut doc = ApiDoc::openapi();
        doc.merge(super::public_routes().into_openapi());
        doc.merge(super::api_routes().into_openapi());
        add_middleware_answers(&mut doc);
        doc
    })
}

fn document_json() -> &'static str {
    static JSON: OnceLock<String> = OnceLock::new();
    JSON.get_or_init(|| {
        serde_json::to_string(document()).unwrap_or_else(|e| {
            tracing::error!(error = %e, "the OpenAPI document does not serialize");
            String::from("{}")
        })
    })
}

/// The OpenAPI 3.1 document of this API (no token needed).
#[utoipa::path(
    get,
    path = "/openapi.json",
    tag = "health",
    responses((status = 200, description = "The OpenAPI 3.1 document", content_type = "application/json", body = Object))
)]
pub async fn openapi_json() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "application/json")],
        document_json(),
    )
}

/// Adds what [`super::read_body_in_time`] does to every `/admin` and `/v1` operation: the
/// bearer requirement with its scope, said in the description too, and the errors it answers.
fn add_middleware_answers(doc: &mut OpenApi) {
    let components = doc.components.get_or_insert_with(Default::default);
    components.security_schemes.insert(
        BEARER.into(),
        SecurityScheme::Http(
            HttpBuilder::new()
                .scheme(HttpAuthScheme::Bearer)
                .description(Some(
                    "The admin token, which has every scope, or an API key `hgk_<id>_<secret>` \
                     (`hookgate keys create --scope ...`). Scopes: `webhooks:read` lists and \
                     streams events and reads the trigger catalog; `webhooks:write` creates \
                     test events, custom triggers and fires; `admin` is everything, `/admin` \
                     included. A key may be bound to one workspace.",
                ))
                .build(),
        ),
    );
    let common = [
        (
            "401",
            "Unauthorized",
            "No valid bearer token (`unauthorized`); the body is not read",
        ),
        (
            "403",
            "Forbidden",
            "The token lacks the scope, or a workspace-bound key asks for another workspace \
             (`forbidden`)",
        ),
        (
            "408",
            "BodyTimeout",
            "The body did not arrive within `body_timeout_secs` (`body_timeout`)",
        ),
        (
            "413",
            "BodyTooLarge",
            "The body is over 64 KiB (`body_too_large`)",
        ),
        (
            "500",
            "InternalError",
            "The store failed (`internal_error`)",
        ),
    ];
    for (_, name, description) in common {
        components
            .responses
            .insert(name.into(), RefOr::T(error_response(description)));
    }
    for (path, item) in doc.paths.paths.iter_mut() {
        if !(path.starts_with("/admin") || path.starts_with("/v1")) {
            continue;
        }
        let operations = [
            (http::Method::GET, &mut item.get),
            (http::Method::POST, &mut item.post),
            (http::Method::PUT, &mut item.put),
            (http::Method::PATCH, &mut item.patch),
            (http::Method::DELETE, &mut item.delete),
            (http::Method::HEAD, &mut item.head),
            (http::Method::OPTIONS, &mut item.options),
            (http::Method::TRACE, &mut item.trace),
        ];
        for (method, operation) in operations {
            if let Some(operation) = operation {
                let scope = super::route_scope(&method, path);
                add_scope(operation, scope.as_str());
                for (status, name, _) in common {
                    operation
                        .responses
                        .responses
                        .entry(status.into())
                        .or_insert_with(|| {
                            RefOr::Ref(Ref::new(format!("#/components/responses/{name}")))
                        });
                }
            }
        }
    }
}

fn add_scope(operation: &mut Operation, scope: &str) {
    operation.security = Some(vec![SecurityRequirement::new(BEARER, [scope])]);
    let note = format!("Needs the `{scope}` scope (the admin token has every scope).");
    operation.description = Some(match operation.description.take() {
        Some(text) if !text.is_empty() => format!("{text}\n\n{note}"),
        _ => note,
    });
}

fn error_response(description: &str) -> utoipa::openapi::Response {
    ResponseBuilder::new()
        .description(description)
        .content(
            "application/json",
            ContentBuilder::new()
                .schema(Some(Ref::from_schema_name("ErrorBody")))
                .build(),
        )
        .build()
}

// The answers the handlers build as JSON values, described. They are never constructed: they
// exist for their schemas. They stay open to new properties (no `additionalProperties: false`),
// so a client is not broken by a field added later; the integration test checks real answers
// strictly all the same.

/// Every error answer: `{"error": "<stable code>"}`, with `message` for input errors and
/// conflicts and `errors` listing every problem of a custom trigger or fire. Never a secret.
#[derive(Serialize, ToSchema)]
#[allow(dead_code)]
pub struct ErrorBody {
    /// A stable code: `unauthorized`, `forbidden`, `not_found`, `invalid_request`, `conflict`,
    /// `rate_limited`, `body_timeout`, `body_too_large`, `invalid_trigger`, `invalid_payload`,
    /// `destination_not_allowed`, `too_many_streams`, `store_unavailable`, `internal_error`,
    /// and on the receive route the verification codes.
    error: String,
    /// What to fix (input errors and conflicts).
    #[serde(skip_serializing_if = "Option::is_none")]
    message: Option<String>,
    /// Every problem, each with its path (`payload.plan`, `payloadSchema.fields[2].type`).
    #[serde(skip_serializing_if = "Option::is_none")]
    errors: Option<Vec<FieldError>>,
}

/// The receive route's answer.
#[derive(Serialize, ToSchema)]
#[allow(dead_code)]
pub struct ReceiveAnswer {
    /// `accepted`, `duplicate` (the first delivery's id) or `ignored` (stored, not mapped).
    status: String,
    /// The ingest record id.
    id: String,
}

/// `GET /healthz`.
#[derive(Serialize, ToSchema)]
#[allow(dead_code)]
pub struct Health {
    /// `ok`.
    status: String,
}

/// `GET /readyz`.
#[derive(Serialize, ToSchema)]
#[allow(dead_code)]
pub struct Readiness {
    /// `ready` or `unavailable`.
    status: String,
    /// `sqlite` or `postgres`.
    store: String,
    /// When unavailable: `store_unavailable` or `store_timeout`.
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<String>,
}

/// A page of the ingest log, newest first.
#[derive(Serialize, ToSchema)]
#[allow(dead_code)]
pub struct IngestPage {
    items: Vec<IngestSummary>,
    /// Pass as `cursor` for the next page; null on the last page.
    next_cursor: Option<String>,
}

/// One whole ingest record: the summary, the path, redacted headers and the body.
#[derive(Serialize, ToSchema)]
#[allow(dead_code)]
pub struct IngestRecord {
    #[serde(flatten)]
    summary: IngestSummary,
    /// Path and query as received (credential query values redacted).
    path: String,
    /// `[name, value]` pairs; credentials are `[redacted]`.
    #[schema(value_type = Option<Vec<Vec<String>>>)]
    headers: Option<Vec<[String; 2]>>,
    /// Whether a rejected request's body was cut to its first 4 KiB.
    body_truncated: bool,
    /// The body: its JSON when it parses, else its text; null when it is not UTF-8.
    body: serde_json::Value,
    /// The body in base64 when it is not UTF-8.
    #[serde(skip_serializing_if = "Option::is_none")]
    body_base64: Option<String>,
    /// The ids (sequence numbers) of the fires the event made.
    fires: Vec<String>,
}

/// The result of a replay.
#[derive(Serialize, ToSchema)]
#[allow(dead_code)]
pub struct ReplayResult {
    /// The ingest record id.
    id: String,
    /// The processing status after the replay.
    status: String,
    /// The ids of the fires the event has.
    fires: Vec<String>,
}

/// A contact.
#[derive(Serialize, ToSchema)]
#[allow(dead_code)]
pub struct Contact {
    /// Trimmed and lower-cased.
    email: String,
    workspace: String,
    first_name: Option<String>,
    last_name: Option<String>,
    /// False after an unsubscribe, a bounce or a complaint; null when never said.
    subscribed: Option<bool>,
    /// `<provider>_<name>` fields (and custom fires' own keys).
    #[schema(value_type = Object)]
    custom_fields: serde_json::Map<String, serde_json::Value>,
    /// Unix milliseconds.
    created_at: i64,
    /// Unix milliseconds.
    updated_at: i64,
}

/// Every connection.
#[derive(Serialize, ToSchema)]
#[allow(dead_code)]
pub struct ConnectionList {
    connections: Vec<crate::connections::ConnectionView>,
}

/// An event (a trigger fire, a test event or a custom fire).
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[allow(dead_code)]
pub struct Event {
    /// The event's cursor (a decimal sequence number).
    id: String,
    /// `msg_<ULID>`, the `webhook-id` of its outbound deliveries.
    message_id: String,
    event_type: String,
    /// The normalized payload.
    payload: serde_json::Value,
    /// When the fire was stored (RFC 3339).
    timestamp: String,
    /// When it happened at the provider (RFC 3339), when known.
    occurred_at: Option<String>,
    workspace: String,
    idempotency_key: String,
    /// Present (true) on test events only.
    #[serde(skip_serializing_if = "Option::is_none")]
    test: Option<bool>,
}

/// A page of events, oldest first.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[allow(dead_code)]
pub struct EventsPage {
    events: Vec<Event>,
    /// Pass as `cursor` to continue after the last event (always present, to poll with).
    next_cursor: String,
    /// No more events are stored after this page.
    done: bool,
}

/// A trigger of the catalog.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[allow(dead_code)]
pub struct Trigger {
    /// The event type, e.g. `stripe.invoice.paid` or a custom `app.signup`.
    id: String,
    /// The provider, or `custom`.
    provider: String,
    workspace: String,
    payload_schema: crate::contacts::PayloadSchema,
}

/// A fire's answer.
#[derive(Serialize, ToSchema)]
#[allow(dead_code)]
pub struct FireResult {
    /// The ingest record id (for a duplicate, the first fire's).
    id: String,
    /// `accepted` or `duplicate`.
    status: String,
}

/// An endpoint as the admin API shows it: never its secrets, only how many sign.
#[derive(Serialize, ToSchema)]
#[allow(dead_code)]
pub struct EndpointView {
    id: String,
    url: String,
    workspace: String,
    /// Globs of the event types delivered (`*` matches any characters).
    event_types: Vec<String>,
    /// The jq program applied to each body.
    transform: Option<String>,
    max_in_flight: i64,
    rate_limit_per_sec: Option<i64>,
    ordered: bool,
    enabled: bool,
    disabled_reason: Option<String>,
    /// Unix milliseconds of the first failure of the current failing streak.
    failing_since: Option<i64>,
    /// How many secrets sign now (null when they cannot be decrypted here).
    signing_secrets: Option<u64>,
    /// `config`, `api` or `cli`.
    source: String,
    created_at: i64,
    updated_at: i64,
}

/// A created endpoint. `secret` is present once, when the gateway generated the signing
/// secret; it is never shown again.
#[derive(Serialize, ToSchema)]
#[allow(dead_code)]
pub struct EndpointCreated {
    #[serde(flatten)]
    endpoint: EndpointView,
    /// The generated signing secret (`whsec_...`), shown this once.
    #[serde(skip_serializing_if = "Option::is_none")]
    secret: Option<String>,
}

/// Every endpoint.
#[derive(Serialize, ToSchema)]
#[allow(dead_code)]
pub struct EndpointList {
    items: Vec<EndpointView>,
}

/// A rotated endpoint secret, shown this once; the previous ones keep signing for 24 h.
#[derive(Serialize, ToSchema)]
#[allow(dead_code)]
pub struct RotatedSecret {
    id: String,
    /// The new signing secret.
    secret: String,
    /// Unix milliseconds.
    previous_secrets_expire_at: i64,
}

/// One test send's result.
#[derive(Serialize, ToSchema)]
#[allow(dead_code)]
pub struct TestSend {
    message_id: String,
    /// The endpoint's answer, 0 when there was none.
    status_code: u16,
    duration_ms: u64,
    error: Option<String>,
}

/// How many deliveries a replay queued.
#[derive(Serialize, ToSchema)]
#[allow(dead_code)]
pub struct Queued {
    queued: u64,
}

/// How many deliveries a requeue queued again.
#[derive(Serialize, ToSchema)]
#[allow(dead_code)]
pub struct Requeued {
    requeued: u64,
}

/// A delivery of one event to one endpoint.
#[derive(Serialize, ToSchema)]
#[allow(dead_code)]
pub struct Delivery {
    /// `dlv_...`.
    id: String,
    endpoint_id: String,
    /// The event's id in the events API.
    event_id: String,
    message_id: String,
    event_type: String,
    #[schema(value_type = DeliveryStatus)]
    status: String,
    attempts: i64,
    /// Unix milliseconds; only while `pending` or `retrying`.
    next_attempt_at: Option<i64>,
    last_status_code: Option<i64>,
    last_error: Option<String>,
    created_at: i64,
    updated_at: i64,
}

/// A delivery with its attempts.
#[derive(Serialize, ToSchema)]
#[allow(dead_code)]
pub struct DeliveryDetail {
    #[serde(flatten)]
    delivery: Delivery,
    attempt_log: Vec<crate::delivery::store::AttemptRow>,
}

/// A page of deliveries, newest first.
#[derive(Serialize, ToSchema)]
#[allow(dead_code)]
pub struct DeliveryPage {
    items: Vec<Delivery>,
    /// Pass as `cursor` for the next page; null on the last page.
    next_cursor: Option<String>,
}

string_enum!(
    /// A drain's live state, from [`crate::drains::State`].
    DrainState,
    "running: sending or waiting for records; retrying: the last batch got a retryable answer; paused: the sink refused the last batch; standby: another process holds the drain's lease.",
    [
        crate::drains::State::Running,
        crate::drains::State::Retrying,
        crate::drains::State::Paused,
        crate::drains::State::Standby,
    ]
    .iter()
    .map(|s| s.as_str())
);

/// One drain: its settings (header names only, never values or the secret), live state in
/// this process, and progress from the store.
#[derive(Serialize, ToSchema)]
#[allow(dead_code)]
pub struct Drain {
    id: String,
    /// `otlp_http` or `http`.
    kind: String,
    url: String,
    /// Where batches are posted (`<url>/v1/logs` for OTLP).
    target: String,
    header_names: Vec<String>,
    /// Record kinds drained: `ingest`, `delivery`, `processing`.
    records: Vec<String>,
    #[schema(value_type = DrainState)]
    state: String,
    last_error: Option<String>,
    /// RFC 3339.
    last_error_at: Option<String>,
    /// The feed position of the last record sent.
    position: i64,
    sent: i64,
    /// Records waiting for this drain (null until first counted).
    queued: Option<i64>,
    /// Age of the oldest unsent record, in seconds.
    lag_seconds: i64,
    /// RFC 3339.
    last_success_at: Option<String>,
}

/// Every drain.
#[derive(Serialize, ToSchema)]
#[allow(dead_code)]
pub struct DrainList {
    items: Vec<Drain>,
}

/// The drain resumed.
#[derive(Serialize, ToSchema)]
#[allow(dead_code)]
pub struct DrainResumed {
    resumed: String,
}
