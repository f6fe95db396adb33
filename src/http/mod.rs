//! HTTP: the router, the receive handler, the admin API, health and metrics, and the accept
//! loop that serves them with header-read timeouts. Every request body is read within
//! `body_timeout_secs`: the receive handler does it itself (its 408 is logged like any other
//! rejection), the admin and API routes through [`read_body_in_time`].

pub mod admin;
pub mod api;
pub mod delivery;
pub mod health;
pub mod serve;
pub mod webhook;

use axum::extract::{Request, State};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;

use crate::AppState;

/// Every route of the gateway.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route(
            "/integrations/{provider}/webhook/{connection_id}",
            post(webhook::receive),
        )
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(health::metrics))
        .merge(
            admin::routes()
                .merge(api::routes())
                .merge(delivery::routes())
                .layer(middleware::from_fn_with_state(
                    state.clone(),
                    read_body_in_time,
                )),
        )
        .fallback(|| async { crate::error::AppError::NotFound })
        .with_state(state)
}

/// Reads an admin or API request's whole body before its handler runs, within
/// `body_timeout_secs` (else 408) and `max_body_bytes` (else 413).
///
/// Axum's body extractors have no deadline, and they run before a handler checks the bearer
/// token, so without this anyone could hold a connection open for ever by trickling a body to
/// one of these routes, which the header-read timeout does not cover.
async fn read_body_in_time(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let (parts, body) = request.into_parts();
    let read = webhook::read_body(
        body,
        &parts.headers,
        state.config.max_body_bytes,
        state.config.body_timeout_secs,
    )
    .await;
    match read {
        Ok(bytes) => next.run(Request::from_parts(parts, bytes.into())).await,
        Err(error) => {
            let mut response = error.into_response();
            // The body was not read to its end, so the connection cannot carry another request.
            response.headers_mut().insert(
                http::header::CONNECTION,
                http::HeaderValue::from_static("close"),
            );
            response
        }
    }
}
