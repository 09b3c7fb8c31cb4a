//! Bodies of the REST endpoints (`/v1/snapshot`, `/v1/events`, `/v1/ingest`,
//! `/v1/auth/*`, mutations) and the one error shape every endpoint answers with.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::domain::Entity;
use crate::frame::EventFrame;

/// `GET /v1/snapshot`: the caller's whole tenant at one seq.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Snapshot {
    /// The stream (= tenant).
    pub stream: String,
    /// The stream's epoch.
    pub epoch: String,
    /// Every event up to and including this seq is reflected in `entities`.
    pub seq: u64,
    /// Every live entity of the tenant.
    pub entities: Vec<Entity>,
}

/// `GET /v1/events?since=SEQ[&epoch=E][&limit=N]`: polling.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EventsPage {
    /// The stream (= tenant).
    pub stream: String,
    /// The stream's current epoch.
    pub epoch: String,
    /// Highest seq in the stream.
    pub head: u64,
    /// `false` when the events after `since` cannot be given (other epoch, or older than
    /// the retained log): load a snapshot instead. `events` is then empty.
    pub recovered: bool,
    /// Events `since+1 ..`, in order, at most `limit`.
    pub events: Vec<EventFrame>,
}

/// One event to publish with `POST /v1/ingest`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(
    feature = "openapi",
    schema(example = json!({"type": "approval.created", "data": {"id": "ap-7", "title": "Deploy to production?"}}))
)]
pub struct IngestEvent {
    /// Target tenant; defaults to the publisher token's tenant, and must equal it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
    /// Event type (see [`crate::EventType`]).
    #[serde(rename = "type")]
    pub event_type: String,
    /// Payload.
    pub data: Value,
    /// Optional caller-chosen event id (a UUID is assigned otherwise).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Address the event to this one user (a token `sub`) of the tenant: only that
    /// user's sessions receive it, and the entities it creates are in that user's
    /// snapshot only. See `docs/protocol.md`, "Events addressed to one user".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
}

/// Body of `POST /v1/ingest`: one event or a batch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(untagged)]
pub enum IngestBody {
    /// A batch, applied in order, all or nothing.
    Batch(Vec<IngestEvent>),
    /// One event.
    One(IngestEvent),
}

/// Answer of `POST /v1/ingest`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct IngestResponse {
    /// The stream written to.
    pub stream: String,
    /// Its epoch.
    pub epoch: String,
    /// The seq assigned to each event, in order.
    pub seqs: Vec<u64>,
}

/// `POST /v1/auth/login`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "openapi", schema(example = json!({"username": "ann", "password": "correct horse"})))]
pub struct LoginRequest {
    /// User name.
    pub username: String,
    /// Password.
    pub password: String,
}

/// `POST /v1/auth/refresh`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RefreshRequest {
    /// A refresh token from a login or an earlier refresh.
    pub refresh_token: String,
}

/// Answer of login and refresh.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TokenResponse {
    /// Short-lived access token.
    pub access_token: String,
    /// Longer-lived refresh token.
    pub refresh_token: String,
    /// Lifetime of `access_token`, seconds.
    pub expires_in: u64,
    /// The tenant the tokens are for.
    pub tenant: String,
}

/// `POST /v1/approvals/{id}/approve` and `/reject`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "openapi", schema(example = json!({"reason": "looks right"})))]
pub struct DecisionRequest {
    /// Why (shown to others).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// `POST /v1/approvals/{id}/edit`: accept with other arguments (an approval whose
/// source allows it, such as a LangGraph interrupt).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "openapi", schema(example = json!({"args": {"branch": "main"}})))]
pub struct EditRequest {
    /// The arguments to act with instead (a JSON object).
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub args: serde_json::Value,
}

/// `POST /v1/approvals/{id}/respond`: answer in words.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "openapi", schema(example = json!({"text": "use the staging cluster"})))]
pub struct RespondRequest {
    /// The answer.
    pub text: String,
}

/// `POST /v1/tickets/{id}/move`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "openapi", schema(example = json!({"state": "done"})))]
pub struct MoveRequest {
    /// Target column / state.
    pub state: String,
}

/// `POST /v1/agents/{id}/terminate`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TerminateRequest {
    /// Why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// Answer of a successful mutation: the event it produced and the entity after it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct MutationResponse {
    /// Seq of the event the mutation appended.
    pub seq: u64,
    /// The entity after the mutation.
    pub entity: Entity,
}

/// Body of every error answer: `{"error": {"code": …, "message": …}}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ApiError {
    /// The error.
    pub error: ApiErrorBody,
}

/// See [`ApiError`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ApiErrorBody {
    /// Stable code: `unauthorized`, `token_expired`, `forbidden`, `not_found`,
    /// `conflict`, `bad_request`, `payload_too_large`, `rate_limited`, `internal`.
    pub code: String,
    /// Explanation for a person.
    pub message: String,
    /// For `conflict`: the entity as it is now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current: Option<Value>,
}
