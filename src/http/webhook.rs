//! `POST /integrations/<provider>/webhook/<connection_id>`: the receive path.
//!
//! Order of work: connection (404) → allowlist (403) → rate limit (429) → body up to
//! `max_body_bytes` (413) → verify the raw bytes (401) → identify event id and type (400) →
//! group-committed insert, deduplicated by the unique index → answer. Nothing is normalized
//! before the answer, and nothing gets a 2xx before its row is committed.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{HeaderMap, HeaderValue, Uri};
use axum::response::{IntoResponse, Response};
use axum::Json;
use bytes::Bytes;
use hookgate_providers::scheme::shared_secret::percent_decode;
use hookgate_providers::{AuthMode, IdentifyError, ProviderId, Request, VerifyOptions};
use http_body_util::{BodyExt, LengthLimitError, Limited};
use ipnet::IpNet;

use crate::connections::ConnectionSpec;
use crate::connections::Live;
use crate::connections::ProviderName;
use crate::db::{IngestKind, NewIngest, Outcome, WriteOutcome};
use crate::error::AppError;
use crate::http::openapi::{ErrorBody, ReceiveAnswer};
use crate::metrics::{FailureLabels, ProviderLabels, RequestLabels};
use crate::AppState;

/// How much of a rejected request's body the ingest log keeps.
pub const REJECT_BODY_PREFIX: usize = 4096;
/// The largest body a rate-limited request may declare and still have its connection kept open
/// (the body is read and discarded; most webhook bodies are a few KiB).
const RATE_LIMITED_DRAIN_BYTES: usize = 64 * 1024;
/// How long a handler waits for its batch to commit before answering 503.
const STORE_TIMEOUT: Duration = Duration::from_secs(10);
/// How much header text (the JSON of the pairs) a rejected request's log row keeps, and how
/// much of its path and query: a stranger can send about 256 KiB of headers per request.
pub const REJECT_HEADER_TEXT: usize = 8 * 1024;
pub const REJECT_PATH_TEXT: usize = 1024;
/// The default of `unknown_id_log_per_minute`: requests to unknown connection ids logged per
/// client address and minute (and as a burst); the rest are answered the same 404 and counted
/// in `hookgate_unknown_connection_log_dropped`.
pub const UNKNOWN_ID_LOG_PER_MINUTE: u32 = crate::config::DEFAULT_UNKNOWN_ID_LOG_PER_MINUTE;
/// Client addresses the unknown-id budget tracks at most; past this, new addresses are not
/// logged until idle ones are forgotten (a flood from many addresses cannot grow it).
const UNKNOWN_ID_LOG_ADDRESSES: usize = 100_000;

/// The per-client-address budget of unknown-id requests written to the ingest log.
pub struct UnknownIdLog {
    limiter: governor::DefaultKeyedRateLimiter<IpAddr>,
}

impl Default for UnknownIdLog {
    fn default() -> Self {
        Self::new(UNKNOWN_ID_LOG_PER_MINUTE)
    }
}

impl UnknownIdLog {
    /// A budget of `per_minute` logged requests per client address.
    pub fn new(per_minute: u32) -> Self {
        let n = std::num::NonZeroU32::new(per_minute).unwrap_or(std::num::NonZeroU32::MIN);
        UnknownIdLog {
            limiter: governor::RateLimiter::keyed(governor::Quota::per_minute(n)),
        }
    }

    /// Whether one more request from `client` may be logged.
    pub fn allow(&self, client: IpAddr) -> bool {
        if self.limiter.len() >= UNKNOWN_ID_LOG_ADDRESSES {
            return false;
        }
        self.limiter.check_key(&client).is_ok()
    }

    /// Forgets addresses whose budget is full again (called every few hundred milliseconds).
    pub fn forget_idle(&self) {
        self.limiter.retain_recent();
        self.limiter.shrink_to_fit();
    }
}

/// Headers whose values carry secrets (plus a connection's own `header:<Name>`).
const SECRET_HEADERS: &[&str] = &[
    "authorization",
    "proxy-authorization",
    "cookie",
    "x-api-key",
    "api-key",
    "x-auth-token",
];

/// What the log row needs to know about the request, gathered as the handler goes.
struct Delivery<'a> {
    state: &'a AppState,
    provider: ProviderId,
    connection_id: String,
    live: Option<Arc<Live>>,
    received_at: i64,
    started: Instant,
    client: IpAddr,
    uri: &'a Uri,
    headers: &'a HeaderMap,
}

impl Delivery<'_> {
    fn row(&self, kind: IngestKind, http_status: u16, body: Bytes, body_size: usize) -> NewIngest {
        let spec = self.live.as_ref().map(|l| &l.spec);
        NewIngest {
            id: ulid::Ulid::new().to_string(),
            kind,
            received_at: self.received_at,
            connection_id: self.connection_id.clone(),
            provider: self.provider.as_str(),
            workspace: self.live.as_ref().map(|l| l.spec.workspace.clone()),
            http_status: i32::from(http_status),
            event_id: None,
            event_type: None,
            reason: None,
            client_addr: Some(self.client.to_string()),
            path: redacted_path(self.uri, spec),
            headers: redacted_headers(self.headers, spec),
            body,
            body_size: i64::try_from(body_size).unwrap_or(i64::MAX),
            body_truncated: false,
            read_us: None,
            verify_us: None,
        }
    }

    /// Logs a rejected request (without waiting for the commit) and answers it.
    fn reject(&self, error: AppError, body: Option<&Bytes>) -> Response {
        let code = error.code();
        let reason = match &error {
            AppError::Unauthorized(e) => {
                self.state
                    .metrics
                    .verification_failures
                    .get_or_create(&FailureLabels {
                        provider: self.provider.as_str(),
                        reason: e.code(),
                    })
                    .inc();
                format!("{}: {e}", e.code())
            }
            AppError::BadPayload(e) => format!("{}: {e}", e.code()),
            _ => code.to_owned(),
        };
        let mut response = error.into_response();
        if body.is_none() {
            // The body was not read: the connection cannot be reused for another request, so
            // say so rather than let a client pool a connection the server is about to close.
            response.headers_mut().insert(
                http::header::CONNECTION,
                http::HeaderValue::from_static("close"),
            );
        }
        let status = response.status().as_u16();
        let (prefix, size) = match body {
            Some(b) => (b.slice(..b.len().min(REJECT_BODY_PREFIX)), b.len()),
            None => (Bytes::new(), content_length(self.headers).unwrap_or(0)),
        };
        let truncated = prefix.len() < size;
        let mut row = self.row(IngestKind::Rejected, status, prefix, size);
        // A refused request is a stranger's text: keep enough to diagnose, never all of it.
        row.headers = capped_headers(
            header_pairs(self.headers, self.live.as_ref().map(|l| &l.spec)),
            REJECT_HEADER_TEXT,
        );
        row.path = capped_text(row.path, REJECT_PATH_TEXT);
        row.body_truncated = truncated;
        row.reason = Some(reason);
        tracing::info!(
            provider = self.provider.as_str(),
            connection = %self.connection_id,
            client = %self.client,
            status,
            reason = row.reason.as_deref().unwrap_or(""),
            "webhook rejected"
        );
        self.state.writer.log(row);
        self.count(Outcome::Rejected, status);
        response
    }

    fn count(&self, outcome: Outcome, status: u16) {
        self.state
            .metrics
            .requests
            .get_or_create(&RequestLabels {
                provider: self.provider.as_str(),
                outcome: outcome.as_str(),
                status,
            })
            .inc();
    }
}

/// Receive a provider's webhook delivery.
///
/// The receive handler.
#[utoipa::path(
    post,
    path = "/integrations/{provider}/webhook/{connection_id}",
    tag = "receive",
    description = "A provider's webhook delivery. It is verified on its raw bytes (the \
        provider's signature, or a shared secret and an allowlist), stored, and answered only \
        after the commit. The body is whatever the provider sends; its `Content-Type` is not \
        checked.",
    params(
        ("provider" = ProviderName, Path, description = "The provider the connection is for"),
        ("connection_id" = String, Path, description = "The connection id, `[A-Za-z0-9_-]{1,64}`"),
    ),
    request_body(content = Object, description = "The provider's payload, as it signed it", content_type = "application/json"),
    responses(
        (status = 200, description = "Stored (`accepted`, or `ignored` for an unmapped type) or a retry of a stored event (`duplicate`)", body = ReceiveAnswer),
        (status = 400, description = "Verified, but not the JSON the provider sends (`invalid_json`, `unexpected_payload`)", body = ErrorBody),
        (status = 401, description = "Not authentic: `missing_signature_header`, `invalid_signature_header`, `signature_mismatch`, `timestamp_too_old`, `timestamp_too_new`, `missing_credentials`, `credentials_mismatch`, `no_secret_configured`", body = ErrorBody),
        (status = 403, description = "The client address is outside `allow_ips` (`ip_not_allowed`)", body = ErrorBody),
        (status = 404, description = "Unknown, disabled or other-provider connection, or unknown provider (`not_found`)", body = ErrorBody),
        (status = 408, description = "The body stalled past `body_timeout_secs` (`body_timeout`)", body = ErrorBody),
        (status = 413, description = "The body is over `max_body_bytes` (`body_too_large`)", body = ErrorBody),
        (status = 429, description = "The connection's rate limit (`rate_limited`, with `Retry-After`); for Brevo also a store outage", body = ErrorBody, headers(("Retry-After" = u64, description = "Seconds to wait before retrying"))),
        (status = 503, description = "The store cannot commit (`store_unavailable`, with `Retry-After`)", body = ErrorBody, headers(("Retry-After" = u64, description = "Seconds to wait before retrying"))),
    )
)]
pub async fn receive(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    path: Result<Path<(String, String)>, axum::extract::rejection::PathRejection>,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let started = Instant::now();
    let received_at = crate::now_ms();
    let Ok(Path((provider, connection_id))) = path else {
        return AppError::NotFound.into_response();
    };
    let Ok(provider) = provider.parse::<ProviderId>() else {
        state
            .metrics
            .requests
            .get_or_create(&RequestLabels {
                provider: "unknown",
                outcome: Outcome::Rejected.as_str(),
                status: 404,
            })
            .inc();
        return AppError::NotFound.into_response();
    };
    let live = state.registry.get(&connection_id);
    let client = client_addr(peer, &headers, &state.config.trusted_proxies);
    let mut d = Delivery {
        state: &state,
        provider,
        connection_id,
        live: None,
        received_at,
        started,
        client,
        uri: &uri,
        headers: &headers,
    };
    let live = match live {
        Some(live) if live.spec.provider == provider && live.spec.enabled => live,
        _ => {
            // Log only ids that could be real, so random probing cannot fill the log with junk,
            // and only so many per client address.
            if crate::connections::valid_connection_id(&d.connection_id) {
                if state.unknown_log.allow(client) {
                    return d.reject(AppError::NotFound, None);
                }
                state.metrics.unknown_log_dropped.inc();
            }
            d.count(Outcome::Rejected, 404);
            return AppError::NotFound.into_response();
        }
    };
    d.live = Some(Arc::clone(&live));
    if !live.allows(client) {
        return d.reject(AppError::IpNotAllowed, None);
    }
    if let Err(retry_after_secs) = live.take() {
        // A small declared body is read so that the client's keep-alive connection stays open
        // for its retry: a provider (or a flood) refused past its limit would otherwise open a
        // new TCP connection for every request. Anything larger, or without a length, is not
        // read and the connection is closed.
        let drained = if content_length(&headers).is_some_and(|n| n <= RATE_LIMITED_DRAIN_BYTES) {
            read_body(
                body,
                &headers,
                RATE_LIMITED_DRAIN_BYTES,
                state.config.body_timeout_secs,
            )
            .await
            .ok()
        } else {
            None
        };
        if live.log_refusal() {
            return d.reject(AppError::RateLimited { retry_after_secs }, drained.as_ref());
        }
        // Past the log budget (the connection's own rate again): refused, counted, not logged.
        d.count(Outcome::Rejected, 429);
        d.state.metrics.ingest_log_dropped.inc();
        let mut response = AppError::RateLimited { retry_after_secs }.into_response();
        if drained.is_none() {
            response.headers_mut().insert(
                http::header::CONNECTION,
                http::HeaderValue::from_static("close"),
            );
        }
        return response;
    }
    let body = match read_body(
        body,
        &headers,
        state.config.max_body_bytes,
        state.config.body_timeout_secs,
    )
    .await
    {
        Ok(body) => body,
        Err(error) => return d.reject(error, None),
    };
    let read_us = micros(started.elapsed());
    let adapter = provider.adapter();
    let request = Request {
        headers: &headers,
        body: &body,
        query: uri.query(),
    };
    let options = VerifyOptions {
        now_ms: received_at,
        tolerance_secs: live.spec.tolerance_secs,
        auth: live.spec.auth.as_ref(),
    };
    let verified = match adapter.verify(&request, &live.spec.secrets, &options) {
        Ok(v) => v,
        Err(e) => return d.reject(AppError::Unauthorized(e), Some(&body)),
    };
    let meta = match adapter.identify(&verified) {
        // PostgreSQL text cannot hold NUL, so such an id or type would fail the whole group
        // commit (and every other delivery in it); no provider sends one, so it is a bad payload.
        Ok(meta) if meta.event_id.contains('\0') || meta.event_type.contains('\0') => {
            let error = IdentifyError::UnexpectedShape("the event id or type contains NUL");
            return d.reject(AppError::BadPayload(error), Some(&body));
        }
        Ok(meta) => meta,
        Err(e) => return d.reject(AppError::BadPayload(e), Some(&body)),
    };
    let verify_us = micros(started.elapsed()) - read_us;
    let kind = if meta.mapped {
        IngestKind::Accepted
    } else {
        IngestKind::Ignored
    };
    let size = body.len();
    let mut row = d.row(kind, 200, body, size);
    row.event_id = Some(meta.event_id.clone());
    row.event_type = Some(meta.event_type.clone());
    row.read_us = Some(read_us);
    row.verify_us = Some(verify_us);
    let id = row.id.clone();
    let outcome = tokio::time::timeout(STORE_TIMEOUT, state.writer.store(row)).await;
    let (status, answer_id) = match outcome {
        Ok(Ok(WriteOutcome::Stored)) => (
            if meta.mapped {
                Outcome::Accepted
            } else {
                Outcome::Ignored
            },
            id,
        ),
        Ok(Ok(WriteOutcome::Duplicate { first_id })) => (Outcome::Duplicate, first_id),
        Ok(Ok(WriteOutcome::Logged)) | Ok(Err(_)) | Err(_) => {
            let error = AppError::StoreUnavailable {
                brevo: provider == ProviderId::Brevo,
            };
            let response = error.into_response();
            tracing::warn!(
                provider = provider.as_str(),
                connection = %d.connection_id,
                provider_event_id = %meta.event_id,
                "store unavailable; answered {}",
                response.status().as_u16()
            );
            d.count(Outcome::Rejected, response.status().as_u16());
            return response;
        }
    };
    tracing::debug!(
        provider = provider.as_str(),
        connection = %d.connection_id,
        provider_event_id = %meta.event_id,
        event_type = %meta.event_type,
        outcome = status.as_str(),
        "webhook stored"
    );
    d.count(status, 200);
    state
        .metrics
        .ingest_latency
        .get_or_create(&ProviderLabels {
            provider: provider.as_str(),
        })
        .observe(d.started.elapsed().as_secs_f64());
    Json(serde_json::json!({ "status": status.as_str(), "id": answer_id })).into_response()
}

fn micros(d: Duration) -> i64 {
    i64::try_from(d.as_micros()).unwrap_or(i64::MAX)
}

fn content_length(headers: &HeaderMap) -> Option<usize> {
    headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
}

/// Reads the body up to `limit` bytes: a declared length over the limit is refused before reading,
/// and a chunked body is cut off as soon as it passes the limit, so nothing unbounded is buffered.
pub(crate) async fn read_body(
    body: Body,
    headers: &HeaderMap,
    limit: usize,
    timeout_secs: u64,
) -> Result<Bytes, AppError> {
    if content_length(headers).is_some_and(|len| len > limit) {
        return Err(AppError::BodyTooLarge);
    }
    let collect = Limited::new(body, limit).collect();
    match tokio::time::timeout(Duration::from_secs(timeout_secs), collect).await {
        Err(_) => Err(AppError::BodyTimeout),
        Ok(Ok(collected)) => Ok(collected.to_bytes()),
        Ok(Err(e)) if e.downcast_ref::<LengthLimitError>().is_some() => Err(AppError::BodyTooLarge),
        Ok(Err(_)) => Err(AppError::BodyRead),
    }
}

/// The address allowlists check: the TCP peer, or when the peer is a trusted proxy, the
/// `X-Forwarded-For` chain walked from the right: trusted hops are skipped and the first entry
/// that parses as an address (`ip`, `ip:port` or `[v6]:port`) and is not trusted is the client.
/// Entries that do not parse are skipped; they never make the proxy itself the client (a proxy
/// in an allowlist would otherwise admit anyone who sends a garbled header through it). A chain
/// with no usable entry gives [`UNKNOWN_CLIENT`], which no allowlist short of `0.0.0.0/0`
/// admits; a trusted peer that sends no header at all is itself the client. IPv4-mapped IPv6
/// addresses (`::ffff:a.b.c.d`) are unmapped first, so they match IPv4 networks.
pub fn client_addr(peer: SocketAddr, headers: &HeaderMap, trusted: &[IpNet]) -> IpAddr {
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|net| net.contains(ip));
    let peer_ip = unmapped(peer.ip());
    if !is_trusted(&peer_ip) {
        return peer_ip;
    }
    let values: Vec<&HeaderValue> = headers.get_all("x-forwarded-for").iter().collect();
    if values.is_empty() {
        return peer_ip;
    }
    let mut leftmost_trusted = None;
    let mut garbage = false;
    for value in values.iter().rev() {
        // A value that is not even text is garbage as a whole.
        let Ok(text) = value.to_str() else {
            garbage = true;
            continue;
        };
        for hop in text.rsplit(',') {
            let Some(ip) = parse_hop(hop) else {
                garbage = true;
                continue;
            };
            if !is_trusted(&ip) {
                return ip;
            }
            leftmost_trusted = Some(ip);
        }
    }
    // Every hop was a trusted proxy: the request started inside the trusted network, unless
    // some entry could not be read, and then who sent it is unknown.
    match leftmost_trusted {
        Some(ip) if !garbage => ip,
        _ => UNKNOWN_CLIENT,
    }
}

/// The client address of a request whose forwarded chain names no usable address.
pub const UNKNOWN_CLIENT: IpAddr = IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED);

/// One `X-Forwarded-For` entry as an address: `ip`, `ip:port` or `[v6]:port` (some proxies add
/// the port), unmapped.
fn parse_hop(hop: &str) -> Option<IpAddr> {
    let hop = hop.trim();
    hop.parse::<IpAddr>()
        .ok()
        .or_else(|| hop.parse::<SocketAddr>().ok().map(|s| s.ip()))
        .map(unmapped)
}

pub use crate::connections::unmapped;

/// Headers whose values the log keeps for a request to a connection it does not know (an
/// unknown or disabled id, the wrong provider segment, or a connection created a moment ago that
/// this process has not loaded yet): there is no `auth` mode to say where a secret might be, so
/// every other value is redacted. These are the ordinary HTTP headers and the providers' own
/// signature, id and topic headers, which are what an operator needs to fix a dashboard.
const KNOWN_SAFE_HEADERS: &[&str] = &[
    "accept",
    "accept-encoding",
    "connection",
    "content-encoding",
    "content-length",
    "content-type",
    "host",
    "traceparent",
    "transfer-encoding",
    "user-agent",
    "x-forwarded-for",
    "x-forwarded-proto",
    "x-real-ip",
    "x-request-id",
    "stripe-signature",
    "workos-signature",
    "svix-id",
    "svix-timestamp",
    "svix-signature",
    "webhook-id",
    "webhook-timestamp",
    "webhook-signature",
];

/// Query parameters whose values are always redacted.
const SECRET_PARAMS: &[&str] = &["token", "secret", "key", "api_key", "access_token"];

/// Whether `value` contains one of the connection's secrets, wherever the sender put it (a
/// dashboard that sends the shared secret in another header than `auth` says is the usual
/// misconfiguration the ingest log is there to show, and must not show the secret).
fn holds_secret(value: &[u8], spec: &ConnectionSpec) -> bool {
    spec.secrets
        .iter()
        .map(|s| s.expose().as_bytes())
        .filter(|s| !s.is_empty())
        .any(|s| value.windows(s.len()).any(|w| w == s))
}

/// The request headers as `[[name, value], ...]` JSON with secret-bearing values redacted: the
/// usual credential headers, the connection's `header:<Name>` and any value holding one of its
/// secrets; for a request to a connection this process does not know (`spec` is `None`), every
/// value outside [`KNOWN_SAFE_HEADERS`].
pub fn redacted_headers(headers: &HeaderMap, spec: Option<&ConnectionSpec>) -> String {
    serde_json::to_string(&header_pairs(headers, spec)).unwrap_or_else(|_| "[]".to_owned())
}

/// The pairs [`redacted_headers`] serializes.
fn header_pairs(headers: &HeaderMap, spec: Option<&ConnectionSpec>) -> Vec<[String; 2]> {
    headers
        .iter()
        .map(|(name, value)| {
            let secret = SECRET_HEADERS.contains(&name.as_str())
                || match spec {
                    Some(spec) => {
                        matches!(&spec.auth, Some(AuthMode::Header(n)) if n == name)
                            || holds_secret(value.as_bytes(), spec)
                    }
                    None => {
                        let n = name.as_str();
                        !(KNOWN_SAFE_HEADERS.contains(&n)
                            || n.starts_with("x-shopify-")
                            || n.starts_with("shopify-"))
                    }
                };
            let value = if secret {
                "[redacted]".to_owned()
            } else {
                text_of(value.as_bytes())
            };
            [name.as_str().to_owned(), value]
        })
        .collect()
}

/// `bytes` as text without growing it: UTF-8 stays as it is and each byte that is not part of
/// valid UTF-8 becomes one `?` (rather than a three-byte U+FFFD).
fn text_of(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for chunk in bytes.utf8_chunks() {
        out.push_str(chunk.valid());
        out.extend(std::iter::repeat_n('?', chunk.invalid().len()));
    }
    out
}

/// The JSON of `pairs`, at most `cap` bytes: pairs past the cap are left out (the last one
/// that fits in part is cut) and a final `["hookgate-truncated", "..."]` pair says how many
/// headers and bytes were dropped.
fn capped_headers(pairs: Vec<[String; 2]>, cap: usize) -> String {
    const MARKER_ROOM: usize = 96;
    let budget = cap.saturating_sub(MARKER_ROOM);
    let total = pairs.len();
    let mut kept: Vec<[String; 2]> = Vec::new();
    let mut used = 2; // the brackets
    let mut dropped_bytes = 0usize;
    let mut cut = false;
    let mut whole = 0usize;
    for [name, value] in pairs {
        let size = serde_json::to_string(&[&name, &value]).map_or(0, |t| t.len()) + 1;
        if !cut && used + size <= budget {
            used += size;
            kept.push([name, value]);
            whole += 1;
            continue;
        }
        if !cut {
            // Keep what fits of this value, cut at a character boundary.
            let room = budget.saturating_sub(used + name.len() + 16);
            let escaped_len = |t: &str| serde_json::to_string(t).map_or(0, |j| j.len());
            let mut end = room.min(value.len());
            while end > 0 && (!value.is_char_boundary(end) || escaped_len(&value[..end]) > room) {
                end -= 1;
            }
            if end > 0 {
                dropped_bytes += value.len() - end;
                let partial = format!("{}…", &value[..end]);
                used += escaped_len(&partial) + name.len() + 8;
                kept.push([name, partial]);
                cut = true;
                continue;
            }
            cut = true;
        }
        dropped_bytes += name.len() + value.len();
    }
    let mut text_pairs = kept;
    if cut {
        text_pairs.push([
            "hookgate-truncated".to_owned(),
            format!("{whole} of {total} headers kept whole; {dropped_bytes} bytes dropped"),
        ]);
    }
    serde_json::to_string(&text_pairs).unwrap_or_else(|_| "[]".to_owned())
}

/// `text` cut to at most `cap` bytes at a character boundary, marked when cut.
fn capped_text(text: String, cap: usize) -> String {
    if text.len() <= cap {
        return text;
    }
    let mut end = cap;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…[truncated, {} bytes]", &text[..end], text.len())
}

/// The path and query with secret values redacted: the usual credential parameters, the
/// connection's `query:<param>` and any value holding one of its secrets; for a request to a
/// connection this process does not know, every value.
pub fn redacted_path(uri: &Uri, spec: Option<&ConnectionSpec>) -> String {
    let path = uri.path();
    let Some(query) = uri.query() else {
        return path.to_owned();
    };
    let parts: Vec<String> = query
        .split('&')
        .map(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            let secret = SECRET_PARAMS.contains(&key)
                || match spec {
                    Some(spec) => {
                        matches!(&spec.auth, Some(AuthMode::Query(p)) if p == key)
                            || holds_secret(&percent_decode(value), spec)
                            || holds_secret(pair.as_bytes(), spec)
                    }
                    None => !value.is_empty(),
                };
            if secret {
                format!("{key}=[redacted]")
            } else {
                pair.to_owned()
            }
        })
        .collect();
    format!("{path}?{}", parts.join("&"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderName;

    #[test]
    fn rejected_header_text_is_capped_marked_and_not_inflated() {
        let mut headers = HeaderMap::new();
        for i in 0..60 {
            let name = HeaderName::from_bytes(format!("x-shopify-h{i}").as_bytes()).expect("name");
            headers.insert(name, HeaderValue::from_bytes(&[0xff; 500]).expect("value"));
        }
        let pairs = header_pairs(&headers, None);
        // One byte that is not UTF-8 stays one byte of text.
        assert!(pairs
            .iter()
            .all(|[_, v]| v.len() == 500 && !v.contains('\u{FFFD}')));
        let text = capped_headers(pairs, REJECT_HEADER_TEXT);
        assert!(text.len() <= REJECT_HEADER_TEXT, "{}", text.len());
        let parsed: Vec<[String; 2]> = serde_json::from_str(&text).expect("valid JSON");
        let marker = &parsed.last().expect("marker")[1];
        assert_eq!(parsed.last().expect("marker")[0], "hookgate-truncated");
        assert!(marker.contains("of 60 headers kept whole"), "{marker}");
        // Small header sets are stored whole, without a marker.
        let mut few = HeaderMap::new();
        few.insert("content-type", HeaderValue::from_static("application/json"));
        let text = capped_headers(header_pairs(&few, None), REJECT_HEADER_TEXT);
        assert_eq!(text, r#"[["content-type","application/json"]]"#);
        assert_eq!(capped_text("abc".into(), 8), "abc");
        assert!(capped_text("é".repeat(100), 9).starts_with("éééé…[truncated"));
    }

    #[test]
    fn forwarded_for_table() {
        let trusted: Vec<IpNet> = vec![
            "10.0.0.0/8".parse().expect("net"),
            "fd00::/8".parse().expect("net"),
        ];
        let proxy = "10.0.0.1:5000";
        let mapped_proxy = "[::ffff:10.0.0.1]:5000";
        let unknown = UNKNOWN_CLIENT.to_string();
        // (peer, X-Forwarded-For values, expected client)
        let table: &[(&str, &[&str], &str)] = &[
            // Not a trusted peer: the header is ignored.
            ("9.9.9.9:5000", &["1.2.3.4"], "9.9.9.9"),
            // A trusted peer without the header is the client itself.
            (proxy, &[], "10.0.0.1"),
            // Right-most untrusted hop; trusted hops skipped; the left part is the client's own.
            (proxy, &["1.2.3.4, 5.6.7.8, 10.0.0.2"], "5.6.7.8"),
            (proxy, &["1.2.3.4", "5.6.7.8, 10.0.0.2"], "5.6.7.8"),
            // Garbage is skipped and never makes the proxy the client.
            (proxy, &["1.2.3.4, junk"], "1.2.3.4"),
            (proxy, &["junk"], &unknown),
            (proxy, &[""], &unknown),
            (proxy, &["junk, 10.0.0.3"], &unknown),
            (proxy, &["unknown, 5.6.7.8, , garbage"], "5.6.7.8"),
            // ip:port entries are addresses, not garbage.
            (proxy, &["1.2.3.4:4711"], "1.2.3.4"),
            (proxy, &["[2001:db8::1]:4711, 10.0.0.2:80"], "2001:db8::1"),
            (proxy, &["10.0.0.2:80"], "10.0.0.2"),
            // IPv4-mapped IPv6 is unmapped for the trust check and the answer.
            (mapped_proxy, &["1.2.3.4"], "1.2.3.4"),
            (proxy, &["5.6.7.8, ::ffff:10.0.0.9"], "5.6.7.8"),
            (proxy, &["::ffff:5.6.7.8"], "5.6.7.8"),
            ("[::ffff:9.9.9.9]:1", &["1.2.3.4"], "9.9.9.9"),
            // Every hop trusted: the request began inside the trusted network.
            (proxy, &["10.0.0.7, 10.0.0.2"], "10.0.0.7"),
            ("[fd00::1]:5000", &["2001:db8::5, fd00::2"], "2001:db8::5"),
        ];
        for (peer, values, expected) in table {
            let mut headers = HeaderMap::new();
            for v in *values {
                headers.append("x-forwarded-for", v.parse().expect("value"));
            }
            let peer: SocketAddr = peer.parse().expect("peer");
            assert_eq!(
                client_addr(peer, &headers, &trusted).to_string(),
                *expected,
                "peer {peer}, X-Forwarded-For {values:?}"
            );
        }
        // A value that is not text is garbage too.
        let mut headers = HeaderMap::new();
        headers.append(
            "x-forwarded-for",
            HeaderValue::from_bytes(b"1.2.3.4\xff").expect("value"),
        );
        let peer: SocketAddr = proxy.parse().expect("peer");
        assert_eq!(client_addr(peer, &headers, &trusted), UNKNOWN_CLIENT);
    }

    #[test]
    fn secrets_are_redacted() {
        let spec = crate::connections::ConnectionInput {
            auth: Some("header:x-webhook-secret".into()),
            ..crate::connections::ConnectionInput::new(
                "x",
                ProviderId::Supabase,
                vec!["alsosecret".into()],
            )
        }
        .into_spec()
        .expect("spec");
        let mut headers = HeaderMap::new();
        headers.insert("authorization", "Bearer topsecret".parse().expect("v"));
        headers.insert("x-webhook-secret", "whatever".parse().expect("v"));
        headers.insert("x-other", "prefix-alsosecret".parse().expect("v"));
        headers.insert("x-harmless", "visible".parse().expect("v"));
        headers.insert("content-type", "application/json".parse().expect("v"));
        let text = redacted_headers(&headers, Some(&spec));
        assert!(
            !text.contains("topsecret")
                && !text.contains("alsosecret")
                && !text.contains("whatever"),
            "{text}"
        );
        assert!(
            text.contains("application/json") && text.contains("visible"),
            "{text}"
        );
        // Unknown connection: only the known-safe headers keep their values.
        let text = redacted_headers(&headers, None);
        assert!(
            text.contains("application/json") && !text.contains("visible"),
            "{text}"
        );

        let mut query_spec = spec;
        query_spec.auth = Some(AuthMode::Query("sig".into()));
        let uri: Uri = "/integrations/supabase/webhook/x?sig=abc&t=1&other=also%73ecret&token=z"
            .parse()
            .expect("uri");
        assert_eq!(
            redacted_path(&uri, Some(&query_spec)),
            "/integrations/supabase/webhook/x?sig=[redacted]&t=1&other=[redacted]&token=[redacted]"
        );
        assert_eq!(
            redacted_path(&uri, None),
            "/integrations/supabase/webhook/x?sig=[redacted]&t=[redacted]&other=[redacted]&token=[redacted]"
        );
    }
}
