//! The console's pages and form actions. Reads and writes go through the same store and domain
//! functions as the admin API (`db`, `connections`, `delivery::manage`, `delivery::store`, the
//! pipeline's replay), so the console can do nothing the API could not.

mod catalog;
mod connections;
mod delivery;
mod ingest;
mod sign_in;

pub use catalog::{contacts, events, events_tail, triggers};
pub use connections::{add_connection, connection_action, connections};
pub use delivery::{
    add_endpoint, deliveries, delivery, endpoint_action, endpoints, requeue, resend,
};
pub use ingest::{ingest, ingest_tail, record, replay};
pub use sign_in::{home, sign_in, sign_in_page, sign_out};

use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use maud::{html, Markup};
use serde_json::Value;

use super::view::{self, Flash};
use super::Console;
use crate::error::AppError;

pub(super) type Page = Result<Response, Response>;

/// What a failed read or write shows: the admin API's message for input errors, a plain
/// sentence for store errors (logged with their cause, never shown).
pub(super) fn message(error: &AppError) -> String {
    match error {
        AppError::Invalid(m) | AppError::Conflict(m) | AppError::DestinationNotAllowed(m) => {
            m.clone()
        }
        AppError::NotFound => "Not found.".into(),
        AppError::Database(e) => {
            tracing::error!(error = %e, "console: the store failed");
            "The store could not be read or written; try again.".into()
        }
        other => other.to_string(),
    }
}

pub(super) fn store_error(e: impl Into<AppError>) -> Response {
    let error = e.into();
    view::refused(StatusCode::SERVICE_UNAVAILABLE, &message(&error))
}

/// After a form: leave `flash` for the next page and go to `to` (303, so a reload does not post
/// again).
pub(super) fn done(console: &Console, key: &[u8; 32], flash: Flash, to: &str) -> Response {
    console.flash(key, flash);
    Redirect::to(to).into_response()
}

/// `https://host` or `http://host` as the browser reached the gateway.
pub(super) fn base_url(
    console: &Console,
    peer: std::net::SocketAddr,
    headers: &HeaderMap,
) -> String {
    let https = super::over_https(peer, headers, &console.app.config.trusted_proxies);
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("127.0.0.1");
    format!("{}://{host}", if https { "https" } else { "http" })
}

pub(super) fn query_string(pairs: &[(&str, Option<&str>)]) -> String {
    let mut s = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        if let Some(v) = v.filter(|v| !v.is_empty()) {
            s.append_pair(k, v);
        }
    }
    s.finish()
}

pub(super) fn empty(text: &str) -> Markup {
    html! { p.empty data-empty { (text) } }
}

pub(super) fn nonempty(v: &Option<String>) -> Option<String> {
    v.as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

pub(super) fn text(v: &Value, key: &str) -> String {
    match &v[key] {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}
