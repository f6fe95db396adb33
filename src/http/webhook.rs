//! `POST /integrations/<provider>/webhook/<connection_id>`: the receive path.
//!
//! Order of work (SPEC §2): connection (404) → allowlist (403) → rate limit (429) → body up to
//! `max_body_bytes` (413) → verify the raw bytes (401) → identify event id and type (400) →
//! group-committed insert, deduplicated by the unique index → answer. Nothing is normalized
//! before the answer, and nothing gets a 2xx before its row is committed.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{HeaderMap, Uri};
use axum::response::{IntoResponse, Response};
use axum::Json;
use bytes::Bytes;
use hookgate_providers::scheme::shared_secret::percent_decode;
use hookgate_providers::{AuthMode, IdentifyError, ProviderId, Request, VerifyOptions};
use http_body_util::{BodyExt, LengthLimitError, Limited};
use ipnet::IpNet;

use crate::config::ConnectionSpec;
use crate::connections::Live;
use crate::db::{IngestKind, NewIngest, Outcome, WriteOutcome};
use crate::error::AppError;
use crate::metrics::{FailureLabels, ProviderLabels, RequestLabels};
use crate::AppState;

/// How much of a rejected request's body the ingest log keeps.
pub const REJECT_BODY_PREFIX: usize = 4096;
/// The largest body a rate-limited request may declare and still have its connection kept open
/// (the body is read and discarded; most webhook bodies are a few KiB).
const RATE_LIMITED_DRAIN_BYTES: usize = 64 * 1024;
/// How long a handler waits for its batch to commit before answering 503.
const STORE_TIMEOUT: Duration = Duration::from_secs(10);
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

/// The receive handler.
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
            // Log only ids that could be real, so random probing cannot fill the log with junk.
            if crate::config::valid_connection_id(&d.connection_id) {
                return d.reject(AppError::NotFound, None);
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
/// right-most `X-Forwarded-For` hop that is not itself a trusted proxy.
pub fn client_addr(peer: SocketAddr, headers: &HeaderMap, trusted: &[IpNet]) -> IpAddr {
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|net| net.contains(ip));
    let peer_ip = peer.ip();
    if !is_trusted(&peer_ip) {
        return peer_ip;
    }
    let mut hops: Vec<IpAddr> = Vec::new();
    for value in headers.get_all("x-forwarded-for") {
        let Ok(text) = value.to_str() else {
            return peer_ip;
        };
        for hop in text.split(',') {
            match hop.trim().parse::<IpAddr>() {
                Ok(ip) => hops.push(ip),
                // A garbled chain cannot be trusted past this point; fall back to the peer.
                Err(_) => return peer_ip,
            }
        }
    }
    hops.into_iter()
        .rev()
        .find(|ip| !is_trusted(ip))
        .unwrap_or(peer_ip)
}

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
    let pairs: Vec<[String; 2]> = headers
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
                String::from_utf8_lossy(value.as_bytes()).into_owned()
            };
            [name.as_str().to_owned(), value]
        })
        .collect();
    serde_json::to_string(&pairs).unwrap_or_else(|_| "[]".to_owned())
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

    #[test]
    fn forwarded_for_uses_rightmost_untrusted_hop() {
        let trusted: Vec<IpNet> = vec!["10.0.0.0/8".parse().expect("net")];
        let mut headers = HeaderMap::new();
        headers.insert(
            "x-forwarded-for",
            "1.2.3.4, 5.6.7.8, 10.0.0.2".parse().expect("v"),
        );
        let proxy: SocketAddr = "10.0.0.1:5000".parse().expect("addr");
        assert_eq!(
            client_addr(proxy, &headers, &trusted),
            "5.6.7.8".parse::<IpAddr>().expect("ip")
        );
        let direct: SocketAddr = "9.9.9.9:5000".parse().expect("addr");
        assert_eq!(client_addr(direct, &headers, &trusted), direct.ip());
        headers.insert("x-forwarded-for", "1.2.3.4, junk".parse().expect("v"));
        assert_eq!(client_addr(proxy, &headers, &trusted), proxy.ip());
    }

    #[test]
    fn secrets_are_redacted() {
        let spec = ConnectionSpec::build(
            "x",
            ProviderId::Supabase,
            None,
            vec!["alsosecret".into()],
            None,
            Vec::new(),
            Some("header:x-webhook-secret"),
            None,
            None,
            None,
            true,
        )
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
