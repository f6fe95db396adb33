//! HTTP: the router, the receive handler, the admin API, health and metrics, and the accept
//! loop that serves them with header-read timeouts.

pub mod admin;
pub mod api;
pub mod health;
pub mod serve;
pub mod webhook;

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
        .merge(admin::routes())
        .merge(api::routes())
        .fallback(|| async { crate::error::AppError::NotFound })
        .with_state(state)
}
