//! HTTP: the router, the receive handler, the admin API, health and metrics, and the accept
//! loop that serves them with header-read timeouts. Every request body is read within
//! `body_timeout_secs`: the receive handler does it itself (its 408 is logged like any other
//! rejection), the admin and API routes through [`read_body_in_time`], after their bearer token.

pub mod admin;
pub mod api;
pub mod console;
pub mod delivery;
pub mod drains;
pub mod fires;
pub mod health;
pub mod openapi;
pub mod serve;
pub mod webhook;

use axum::extract::{Request, State};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::Router;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::Scope;
use crate::AppState;

/// Every route of the gateway: the documented routers (see [`openapi`]), the admin and API
/// routes behind [`read_body_in_time`].
pub fn router(state: AppState) -> Router {
    let (public, _) = public_routes().split_for_parts();
    let (api, _) = api_routes().split_for_parts();
    Router::new()
        .merge(public)
        .merge(api.layer(middleware::from_fn_with_state(
            state.clone(),
            read_body_in_time,
        )))
        .merge(console::routes(state.clone()))
        .fallback(|| async { crate::error::AppError::NotFound })
        .with_state(state)
}

/// The routes that need no bearer token: receiving, health, metrics and the OpenAPI document.
fn public_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(webhook::receive))
        .routes(routes!(health::healthz))
        .routes(routes!(health::readyz))
        .routes(routes!(health::metrics))
        .routes(routes!(openapi::openapi_json))
}

/// The `/admin` and `/v1` routes: each checks its bearer token, and the middleware reads its
/// body in time.
fn api_routes() -> OpenApiRouter<AppState> {
    admin::routes()
        .merge(api::routes())
        .merge(fires::routes())
        .merge(delivery::routes())
        .merge(drains::routes())
}

/// Every `/admin` handler checks the `admin` scope itself too, so that none depends on being
/// mounted behind [`read_body_in_time`].
///
/// # Errors
/// 401 without a valid token, 403 without the scope.
pub async fn require_admin(
    state: &AppState,
    headers: &http::HeaderMap,
) -> Result<(), crate::error::AppError> {
    crate::auth::authorize(state, headers, Scope::Admin)
        .await
        .map(|_| ())
}

/// An admin or API route's query string: one that does not parse (`limit=abc`,
/// `replace=maybe`) is a 400 in the JSON error shape naming the field, like any other bad input,
/// rather than axum's plain-text rejection.
pub type ApiQuery<T> = Result<axum::extract::Query<T>, axum::extract::rejection::QueryRejection>;

/// The parsed query of an [`ApiQuery`], or the 400 that says what is wrong with it.
///
/// # Errors
/// [`crate::error::AppError::Invalid`] with the parser's message.
pub fn api_query<T>(query: ApiQuery<T>) -> Result<T, crate::error::AppError> {
    query
        .map(|axum::extract::Query(q)| q)
        .map_err(|e| crate::error::AppError::Invalid(e.body_text()))
}

/// The largest body an admin or API request may have (a connection definition, a test event).
pub const API_BODY_LIMIT: usize = 64 * 1024;

/// The scope a request to an admin or API route needs at least; handlers check their own.
fn route_scope(method: &http::Method, path: &str) -> Scope {
    if path.starts_with("/admin") {
        Scope::Admin
    } else if method == http::Method::POST {
        Scope::Write
    } else {
        Scope::Read
    }
}

/// Checks an admin or API request's bearer token from its headers, then reads its whole body
/// before its handler runs, within `body_timeout_secs` (else 408) and [`API_BODY_LIMIT`] (else
/// 413).
///
/// The token comes first so that a stranger never gets a body buffered: without it, anyone
/// could make the gateway hold a body per connection for these routes. Axum's body extractors
/// have no deadline and run before a handler, so without the read here a trickled body would
/// hold a connection open for ever (the header-read timeout does not cover bodies).
async fn read_body_in_time(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let (parts, body) = request.into_parts();
    let scope = route_scope(&parts.method, parts.uri.path());
    if let Err(error) = crate::auth::authorize(&state, &parts.headers, scope).await {
        let mut response = error.into_response();
        // The body is left unread: the connection closes (with a lingering close).
        response.headers_mut().insert(
            http::header::CONNECTION,
            http::HeaderValue::from_static("close"),
        );
        return response;
    }
    let read = webhook::read_body(
        body,
        &parts.headers,
        API_BODY_LIMIT,
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
