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
//! - `/metrics` names tenants only to the metrics token's holder;
//! - every route is in the OpenAPI document ([`openapi`]): the router is built
//!   from the same list ([`routes`]) with `utoipa_axum`.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::DefaultBodyLimit;
use axum::http::{Method, StatusCode, Uri};
use axum::Router;
use tokio::sync::watch;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::Keys;
use crate::hub::Hub;
use crate::users::Directory;

pub mod error;
pub mod idempotency;
pub mod openapi;
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

/// The mutations: they honour `Idempotency-Key` (ingest is idempotent by event id).
fn mutations() -> OpenApiRouter<Arc<AppState>> {
    openapi::with_idempotency(
        OpenApiRouter::new()
            .routes(routes!(rest::approve))
            .routes(routes!(rest::reject))
            .routes(routes!(rest::edit))
            .routes(routes!(rest::respond))
            .routes(routes!(rest::move_ticket))
            .routes(routes!(rest::terminate_agent)),
    )
}

/// Every other route.
fn others() -> OpenApiRouter<Arc<AppState>> {
    OpenApiRouter::new()
        .routes(routes!(rest::healthz))
        .routes(routes!(rest::metrics))
        .routes(routes!(openapi::serve))
        .routes(routes!(ws::stream))
        .routes(routes!(rest::snapshot))
        .routes(routes!(rest::events))
        .routes(routes!(rest::ingest))
        .routes(routes!(rest::steps))
        .routes(routes!(rest::langgraph_webhook))
        .routes(routes!(rest::login))
        .routes(routes!(rest::refresh))
        .routes(routes!(rest::logout))
}

/// Every route of the gateway with its operation: what [`router`] serves and
/// [`openapi`] documents.
fn routes() -> OpenApiRouter<Arc<AppState>> {
    mutations().merge(others())
}

/// The gateway's router. Its routes are [`routes`]' (so each is in the OpenAPI
/// document); nothing is routed here but the fallbacks.
pub fn router(state: Arc<AppState>) -> Router {
    let (router, _doc) = mutations()
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            idempotency::guard,
        ))
        .merge(others())
        .split_for_parts();
    router
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
