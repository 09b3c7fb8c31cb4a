//! The HTTP surface: REST endpoints, the WebSocket stream, health and metrics.
//!
//! Invariants:
//! - every endpoint but `/healthz`, `/metrics` and `/v1/auth/*` requires an access
//!   token in `Authorization: Bearer`, checked before anything else (for the stream:
//!   before the upgrade, so a bad token is a plain HTTP 401);
//! - a request only ever reads or writes the tenant of its token;
//! - bodies are limited to [`pulse_protocol::MAX_FRAME_BYTES`];
//! - every authenticated request counts towards its token's rate, and a login or a
//!   stream may be refused by [`crate::limits`] (429 + `Retry-After`);
//! - the mutations honour `Idempotency-Key` ([`idempotency`]);
//! - `/metrics` names tenants only to the metrics token's holder.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::DefaultBodyLimit;
use axum::http::{Method, StatusCode, Uri};
use axum::routing::{get, post};
use axum::Router;
use tokio::sync::watch;

use crate::auth::Keys;
use crate::hub::Hub;
use crate::users::Directory;

pub mod error;
pub mod idempotency;
mod rest;
mod ws;

pub use error::ApiErr;

/// What every handler shares.
#[derive(Debug)]
pub struct AppState {
    /// Writers, live feeds and the store.
    pub hub: Arc<Hub>,
    /// Token keys.
    pub keys: Keys,
    /// Users who may log in.
    pub users: Arc<Directory>,
    /// Access tokens revoked before their expiry (removed users, signed-out sessions).
    pub revoked: Arc<crate::revoked::Revoked>,
    /// Server ping interval.
    pub ping_interval: Duration,
    /// Extra silence tolerated after a ping interval.
    pub ping_timeout: Duration,
    /// Access token lifetime.
    pub access_ttl: Duration,
    /// Refresh token lifetime.
    pub refresh_ttl: Duration,
    /// Becomes `true` (or closes) when the gateway stops.
    pub shutdown: watch::Receiver<bool>,
    /// The LangGraph source, when one runs (its webhook, answers that resume).
    pub langgraph: Option<Arc<crate::langgraph::LangGraphSource>>,
    /// Login throttle, connection caps, request rate.
    pub limiter: crate::limits::Limiter,
    /// The bearer token `/metrics` wants for its per-tenant series.
    pub metrics_token: Option<String>,
    /// `Idempotency-Key`s being served on this node.
    pub in_flight: idempotency::InFlight,
}

/// The gateway's router.
pub fn router(state: Arc<AppState>) -> Router {
    // The mutations honour `Idempotency-Key` (ingest is idempotent by event id).
    let mutations = Router::new()
        .route("/v1/approvals/{id}/approve", post(rest::approve))
        .route("/v1/approvals/{id}/reject", post(rest::reject))
        .route("/v1/approvals/{id}/edit", post(rest::edit))
        .route("/v1/approvals/{id}/respond", post(rest::respond))
        .route("/v1/tickets/{id}/move", post(rest::move_ticket))
        .route("/v1/agents/{id}/terminate", post(rest::terminate_agent))
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            idempotency::guard,
        ));
    Router::new()
        .merge(mutations)
        .route("/healthz", get(rest::healthz))
        .route("/metrics", get(rest::metrics))
        .route("/v1/stream", get(ws::stream))
        .route("/v1/snapshot", get(rest::snapshot))
        .route("/v1/events", get(rest::events))
        .route("/v1/ingest", post(rest::ingest))
        .route("/v1/approvals/{id}/steps", get(rest::steps))
        .route(
            crate::langgraph::WEBHOOK_PATH,
            post(rest::langgraph_webhook),
        )
        .route("/v1/auth/login", post(rest::login))
        .route("/v1/auth/refresh", post(rest::refresh))
        .route("/v1/auth/logout", post(rest::logout))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(pulse_protocol::MAX_FRAME_BYTES))
        .with_state(state)
}

async fn not_found(method: Method, uri: Uri) -> ApiErr {
    ApiErr::not_found(format!("no endpoint {method} {}", uri.path()))
}

async fn method_not_allowed(method: Method, uri: Uri) -> ApiErr {
    ApiErr::with_status(
        StatusCode::METHOD_NOT_ALLOWED,
        format!("{method} is not allowed on {}", uri.path()),
    )
}
