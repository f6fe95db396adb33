//! The service's error type and its single status-code table.
//!
//! Layers: the providers crate returns `VerifyError` / `IdentifyError` (pure, no status codes);
//! handlers turn them and everything else into [`AppError`], whose private `status()` is the only
//! place a status code is chosen; `anyhow` is used only by `main.rs`, startup and CLI commands.
//! Bodies are `{"error":"<stable_code>"}` and never carry internal detail or secrets; 5xx errors
//! are logged with their full cause chain.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use hookgate_providers::{IdentifyError, VerifyError};

/// Every way a request can fail.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// 404: unknown provider or connection, disabled connection, or provider mismatch.
    #[error("not found")]
    NotFound,
    /// 403: the client address is outside the connection's `allow_ips`.
    #[error("client address not allowed")]
    IpNotAllowed,
    /// 429 with `Retry-After`: the connection's rate limit.
    #[error("rate limited")]
    RateLimited { retry_after_secs: u64 },
    /// 413: the body is larger than `max_body_bytes`.
    #[error("body too large")]
    BodyTooLarge,
    /// 408: the client did not send the body within `body_timeout_secs`.
    #[error("body read timed out")]
    BodyTimeout,
    /// 400: the body could not be read from the connection.
    #[error("body could not be read")]
    BodyRead,
    /// 401: the request is not authentic.
    #[error("verification failed: {0}")]
    Unauthorized(#[from] VerifyError),
    /// 400: verified, but the body is not what the provider sends (stored as rejected).
    #[error("unexpected payload: {0}")]
    BadPayload(#[from] IdentifyError),
    /// 503 with `Retry-After` (429 for Brevo, which discards on 5xx): the store cannot commit.
    #[error("the store cannot commit")]
    StoreUnavailable { brevo: bool },
    /// 401: admin and API routes without a valid bearer token.
    #[error("missing or invalid bearer token")]
    MissingToken,
    /// 403: the token lacks the scope the route needs.
    #[error("the token lacks the required scope")]
    Forbidden,
    /// 429: the API key has as many event streams open as it may.
    #[error("too many open event streams for this key")]
    TooManyStreams,
    /// 400: an admin request with invalid input; the message names what to fix.
    #[error("{0}")]
    Invalid(String),
    /// 400: a request whose fields break their rules (a custom trigger's definition, a fire's
    /// payload against its schema); every problem is listed with its path.
    #[error("{message}")]
    InvalidFields {
        code: &'static str,
        message: String,
        errors: Vec<crate::custom::FieldError>,
    },
    /// 400: an endpoint's destination is in a refused address range (outbound delivery).
    #[error("{0}")]
    DestinationNotAllowed(String),
    /// 409: the resource exists already.
    #[error("{0}")]
    Conflict(String),
    /// 500: a database error outside the ingest path.
    #[error("database error")]
    Database(#[from] sqlx::Error),
}

impl AppError {
    fn status(&self) -> StatusCode {
        match self {
            AppError::NotFound => StatusCode::NOT_FOUND,
            AppError::IpNotAllowed | AppError::Forbidden => StatusCode::FORBIDDEN,
            AppError::RateLimited { .. } | AppError::TooManyStreams => {
                StatusCode::TOO_MANY_REQUESTS
            }
            AppError::BodyTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            AppError::BodyTimeout => StatusCode::REQUEST_TIMEOUT,
            AppError::BodyRead
            | AppError::BadPayload(_)
            | AppError::Invalid(_)
            | AppError::InvalidFields { .. } => StatusCode::BAD_REQUEST,
            AppError::DestinationNotAllowed(_) => StatusCode::BAD_REQUEST,
            AppError::Unauthorized(_) | AppError::MissingToken => StatusCode::UNAUTHORIZED,
            AppError::StoreUnavailable { brevo: true } => StatusCode::TOO_MANY_REQUESTS,
            AppError::StoreUnavailable { brevo: false } => StatusCode::SERVICE_UNAVAILABLE,
            AppError::Conflict(_) => StatusCode::CONFLICT,
            AppError::Database(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The stable code in the body, the metrics and the ingest log's `reason`.
    pub fn code(&self) -> &'static str {
        match self {
            AppError::NotFound => "not_found",
            AppError::IpNotAllowed => "ip_not_allowed",
            AppError::RateLimited { .. } => "rate_limited",
            AppError::BodyTooLarge => "body_too_large",
            AppError::BodyTimeout => "body_timeout",
            AppError::BodyRead => "body_read_error",
            AppError::Unauthorized(e) => e.code(),
            AppError::BadPayload(e) => e.code(),
            AppError::StoreUnavailable { .. } => "store_unavailable",
            AppError::MissingToken => "unauthorized",
            AppError::Forbidden => "forbidden",
            AppError::TooManyStreams => "too_many_streams",
            AppError::Invalid(_) => "invalid_request",
            AppError::InvalidFields { code, .. } => code,
            AppError::DestinationNotAllowed(_) => "destination_not_allowed",
            AppError::Conflict(_) => "conflict",
            AppError::Database(_) => "internal_error",
        }
    }

    fn retry_after(&self) -> Option<u64> {
        match self {
            AppError::RateLimited { retry_after_secs } => Some(*retry_after_secs),
            AppError::StoreUnavailable { .. } => Some(5),
            _ => None,
        }
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let status = self.status();
        if status.is_server_error() {
            tracing::error!(error = %self, cause = ?std::error::Error::source(&self), "request failed");
        }
        let mut body = serde_json::json!({ "error": self.code() });
        // Admin input errors say what to fix; they never contain secrets (ConnectionInput::into_spec
        // names keys, not values).
        if let AppError::Invalid(message)
        | AppError::Conflict(message)
        | AppError::DestinationNotAllowed(message) = &self
        {
            body["message"] = serde_json::Value::String(message.clone());
        }
        if let AppError::InvalidFields {
            message, errors, ..
        } = &self
        {
            body["message"] = serde_json::Value::String(message.clone());
            body["errors"] = serde_json::json!(errors);
        }
        let mut response = (status, axum::Json(body)).into_response();
        if let Some(secs) = self.retry_after() {
            if let Ok(value) = HeaderValue::from_str(&secs.max(1).to_string()) {
                response.headers_mut().insert(header::RETRY_AFTER, value);
            }
        }
        response
    }
}
