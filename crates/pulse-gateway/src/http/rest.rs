//! REST handlers: snapshot, events, ingest, mutations, login/refresh, health, metrics.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::Json;
use pulse_protocol::auth::{Claims, Role, TokenUse};
use pulse_protocol::domain::{EntityKind, Object};
use pulse_protocol::rest::{
    DecisionRequest, EditRequest, EventsPage, IngestEvent, IngestResponse, LoginRequest,
    MoveRequest, MutationResponse, RefreshRequest, RespondRequest, Snapshot, TerminateRequest,
    TokenResponse,
};
use pulse_protocol::MAX_FRAME_BYTES;
use serde_json::{json, Value};

use super::error::{ApiErr, Auth, RawJson};
use super::AppState;
use crate::auth;
use crate::langgraph::{self, Answer};
use crate::store::{now_ms, NewEvent, RefreshSession, Rotation};

/// Default `limit` of `GET /v1/events`.
pub const DEFAULT_EVENTS_LIMIT: usize = 1000;
/// Largest `limit` of `GET /v1/events` (larger values are clamped).
pub const MAX_EVENTS_LIMIT: usize = 10_000;

type St = State<Arc<AppState>>;

/// 200 `{"status": "ok"}` when the store answers, else 503 `{"status":
/// "degraded"}` (so a load balancer takes the node out while Redis is down).
#[utoipa::path(
    get,
    path = "/healthz",
    tag = "ops",
    operation_id = "healthz",
    responses(
        (status = 200, description = "The store answers", body = super::openapi::Health),
        (status = 503, description = "Degraded: the store cannot be reached", body = super::openapi::Health,
            headers(("Retry-After" = u32, description = "Seconds to wait before trying again"))),
    ),
)]
pub(super) async fn healthz(State(st): St) -> axum::response::Response {
    let store = st.hub.backend();
    match st.hub.health().await {
        Ok(()) => {
            st.hub
                .metrics()
                .store_unavailable
                .store(0, Ordering::Relaxed);
            Json(json!({"status": "ok"})).into_response()
        }
        Err(e) => {
            st.hub
                .metrics()
                .store_unavailable
                .store(1, Ordering::Relaxed);
            tracing::warn!(error = %e, "health check: store unavailable");
            (
                axum::http::StatusCode::SERVICE_UNAVAILABLE,
                [(
                    header::RETRY_AFTER,
                    super::error::RETRY_AFTER_SECS.to_string(),
                )],
                Json(json!({"status": "degraded", "store": store, "reason": "store unavailable"})),
            )
                .into_response()
        }
    }
}

/// The totals for anyone; the per-tenant series (which name tenants) only with
/// `Authorization: Bearer <metrics token>` when a metrics token is configured. A
/// wrong metrics token is a 401, not a silent downgrade.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "ops",
    operation_id = "metrics",
    description = "Prometheus text. Without `Authorization`: the totals only. With the metrics token: the per-tenant series too.",
    security((), ("metrics_token" = [])),
    responses(
        (status = 200, description = "Prometheus text format 0.0.4", content_type = "text/plain", body = String),
        (status = 401, response = super::openapi::Unauthorized),
    ),
)]
pub(super) async fn metrics(
    State(st): St,
    headers: axum::http::HeaderMap,
) -> Result<impl IntoResponse, ApiErr> {
    let given = headers.get(header::AUTHORIZATION).map(|v| {
        v.to_str()
            .ok()
            .and_then(|v| v.trim().split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, t)| t.trim().to_owned())
    });
    let with_tenants = match (&st.metrics_token, given) {
        (_, None) => false,
        (Some(want), Some(Some(got)))
            if auth::constant_time_eq(want.as_bytes(), got.as_bytes()) =>
        {
            true
        }
        (None, Some(_)) => {
            return Err(ApiErr::unauthorized(
                "this gateway has no metrics token; ask /metrics without `Authorization`",
            ))
        }
        (Some(_), Some(_)) => return Err(ApiErr::unauthorized("wrong metrics token")),
    };
    let tenants = if with_tenants {
        st.hub.tenants()
    } else {
        Vec::new()
    };
    let body = st.hub.metrics().render(&tenants, with_tenants);
    Ok((
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        body,
    ))
}

#[utoipa::path(
    get,
    path = "/v1/snapshot",
    tag = "read",
    operation_id = "snapshot",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The caller's whole tenant at one seq", body = Snapshot),
        (status = 401, response = super::openapi::Unauthorized),
        (status = 429, response = super::openapi::RateLimited),
        (status = 500, response = super::openapi::Internal),
        (status = 503, response = super::openapi::Unavailable),
    ),
)]
pub(super) async fn snapshot(State(st): St, Auth(claims): Auth) -> Result<Json<Snapshot>, ApiErr> {
    let snap = st.hub.snapshot(&claims.tenant, Some(&claims.sub)).await?;
    st.hub
        .metrics()
        .snapshots_served
        .fetch_add(1, Ordering::Relaxed);
    Ok(Json(snap))
}

/// Parsed query of `GET /v1/events`.
#[derive(Debug, PartialEq)]
struct EventsQuery {
    since: u64,
    epoch: Option<String>,
    limit: usize,
}

fn events_query(pairs: &[(String, String)]) -> Result<EventsQuery, ApiErr> {
    let mut q = EventsQuery {
        since: u64::MAX,
        epoch: None,
        limit: DEFAULT_EVENTS_LIMIT,
    };
    let mut have_since = false;
    for (k, v) in pairs {
        match k.as_str() {
            "since" => {
                q.since = v.parse().map_err(|_| {
                    ApiErr::bad_request(format!(
                        "`since` must be a non-negative integer (the last seq you applied), not {v:?}"
                    ))
                })?;
                have_since = true;
            }
            "epoch" => q.epoch = Some(v.clone()).filter(|e| !e.is_empty()),
            "limit" => {
                let n: usize = v.parse().map_err(|_| {
                    ApiErr::bad_request(format!("`limit` must be a positive integer, not {v:?}"))
                })?;
                if n == 0 {
                    return Err(ApiErr::bad_request("`limit` must be at least 1"));
                }
                q.limit = n.min(MAX_EVENTS_LIMIT);
            }
            other => {
                return Err(ApiErr::bad_request(format!(
                    "unknown query parameter `{other}` (expected since, epoch, limit)"
                )))
            }
        }
    }
    if !have_since {
        return Err(ApiErr::bad_request(
            "`since` is required: the last seq you applied (0 for none)",
        ));
    }
    Ok(q)
}

#[utoipa::path(
    get,
    path = "/v1/events",
    tag = "read",
    operation_id = "events",
    params(
        ("since" = u64, Query, description = "The last seq you applied (0 for none)"),
        ("epoch" = Option<String>, Query, description = "The epoch of `since`; another one is not recovered"),
        ("limit" = Option<u64>, Query, minimum = 1, description = "At most this many events (default 1000, larger values are clamped to 10000)"),
    ),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The events after `since`, or `recovered: false`", body = EventsPage),
        (status = 400, response = super::openapi::BadRequest),
        (status = 401, response = super::openapi::Unauthorized),
        (status = 429, response = super::openapi::RateLimited),
        (status = 500, response = super::openapi::Internal),
        (status = 503, response = super::openapi::Unavailable),
    ),
)]
pub(super) async fn events(
    State(st): St,
    Auth(claims): Auth,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Result<Json<EventsPage>, ApiErr> {
    let Query(pairs) = query.map_err(|e| ApiErr::bad_request(format!("bad query string: {e}")))?;
    let q = events_query(&pairs)?;
    let mut range = st.hub.read(&claims.tenant, q.since, q.limit).await?;
    if q.since > range.info.head {
        // A merged read may be a moment old: ask the store before saying "ahead".
        range = st.hub.read_direct(&claims.tenant, q.since, q.limit).await?;
    }
    let info = range.info.clone();
    let recovered =
        q.epoch.as_deref().is_none_or(|e| e == info.epoch) && info.can_replay_after(q.since);
    Ok(Json(EventsPage {
        stream: info.stream,
        epoch: info.epoch,
        head: info.head,
        recovered,
        // Events addressed to other users: their placeholders, so the seqs stay
        // gap-free for this caller too.
        events: if recovered {
            range
                .events
                .iter()
                .map(|e| e.for_viewer(&claims.sub).into_owned())
                .collect()
        } else {
            Vec::new()
        },
    }))
}

/// Room for the envelope around an event's data in its frame.
const ENVELOPE_BYTES: usize = 256;

fn ingest_events(claims: &Claims, body: &RawJson) -> Result<Vec<NewEvent>, ApiErr> {
    let value: Value = body.parse()?;
    let items = match value {
        Value::Array(items) => items,
        obj @ Value::Object(_) => vec![obj],
        _ => {
            return Err(ApiErr::bad_request(
                "body must be an event object `{\"type\", \"data\"}` or an array of them",
            ))
        }
    };
    if items.is_empty() {
        return Err(ApiErr::bad_request("empty batch: nothing to ingest"));
    }
    let ts = now_ms();
    let mut out = Vec::with_capacity(items.len());
    for (i, item) in items.into_iter().enumerate() {
        let e: IngestEvent = serde_json::from_value(item)
            .map_err(|e| ApiErr::bad_request(format!("event {i}: {e}")))?;
        if let Some(t) = &e.tenant {
            if *t != claims.tenant {
                return Err(ApiErr::forbidden(format!(
                    "event {i}: tenant `{t}` is not this token's tenant `{}`",
                    claims.tenant
                )));
            }
        }
        if e.id.as_deref().is_some_and(str::is_empty) {
            return Err(ApiErr::bad_request(format!(
                "event {i}: `id` must not be empty"
            )));
        }
        if e.user.as_deref().is_some_and(str::is_empty) {
            return Err(ApiErr::bad_request(format!(
                "event {i}: `user` must not be empty (leave it out to address everyone)"
            )));
        }
        let size = serde_json::to_string(&e.data).map(|s| s.len()).unwrap_or(0)
            + e.user.as_deref().map_or(0, str::len)
            + e.event_type.len()
            + e.id.as_deref().map_or(36, str::len)
            + claims.tenant.len()
            + ENVELOPE_BYTES;
        if size > MAX_FRAME_BYTES {
            return Err(ApiErr::too_large());
        }
        let ev = NewEvent::new(&e.event_type, e.data, e.id, ts)
            .map_err(|err| ApiErr::bad_request(format!("event {i}: {err}")))?
            .for_user(e.user);
        out.push(ev);
    }
    Ok(out)
}

#[utoipa::path(
    post,
    path = "/v1/ingest",
    tag = "ingest",
    operation_id = "ingest",
    request_body(content = pulse_protocol::rest::IngestBody, description = "One event or a batch (all or nothing)"),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Appended: the seq of each event", body = IngestResponse),
        (status = 400, response = super::openapi::BadRequest),
        (status = 413, response = super::openapi::TooLarge),
        (status = 415, response = super::openapi::UnsupportedType),
        (status = 403, response = super::openapi::Forbidden),
        (status = 409, response = super::openapi::Conflict),
        (status = 401, response = super::openapi::Unauthorized),
        (status = 429, response = super::openapi::RateLimited),
        (status = 500, response = super::openapi::Internal),
        (status = 503, response = super::openapi::Unavailable),
    ),
)]
pub(super) async fn ingest(
    State(st): St,
    Auth(claims): Auth,
    body: RawJson,
) -> Result<Json<IngestResponse>, ApiErr> {
    let metrics = st.hub.metrics().clone();
    let refused = |e: ApiErr| {
        metrics.ingest_errors.fetch_add(1, Ordering::Relaxed);
        e
    };
    if claims.role != Role::Publisher {
        return Err(refused(ApiErr::forbidden(
            "only a publisher token may ingest events",
        )));
    }
    let events = ingest_events(&claims, &body).map_err(refused)?;
    let t = st.hub.tenant(&claims.tenant).await?;
    let seqs = st.hub.append(&claims.tenant, events).await?;
    Ok(Json(IngestResponse {
        stream: claims.tenant,
        epoch: t.epoch(),
        seqs,
    }))
}

fn path_id(path: Result<Path<String>, PathRejection>) -> Result<String, ApiErr> {
    let Path(id) = path.map_err(|e| ApiErr::bad_request(format!("bad id in path: {e}")))?;
    if id.is_empty() {
        return Err(ApiErr::bad_request("the id in the path must not be empty"));
    }
    Ok(id)
}

fn status_of(entity: &Object) -> Option<&str> {
    entity.get("status").and_then(Value::as_str)
}

fn event(ty: &str, data: Value) -> Result<NewEvent, ApiErr> {
    NewEvent::new(ty, data, None, now_ms()).map_err(|e| ApiErr::bad_request(e.to_string()))
}

async fn decide(
    st: Arc<AppState>,
    claims: Claims,
    id: String,
    answer: Answer,
    reason: Option<String>,
) -> Result<Json<MutationResponse>, ApiErr> {
    let mut resumes = false;
    let (seq, entity) = st
        .hub
        .mutate(
            &claims.tenant,
            &claims.sub,
            EntityKind::Approval,
            &id,
            |current| {
                let current =
                    current.ok_or_else(|| ApiErr::not_found(format!("no approval `{id}`")))?;
                if !pulse_protocol::domain::is_pending_approval(&current) {
                    let status = status_of(&current).unwrap_or("decided");
                    return Err(ApiErr::conflict(
                        format!("approval `{id}` is already {status}"),
                        Value::Object(current.clone()),
                    ));
                }
                let mut data =
                    json!({"id": id, "decision": answer.decision(), "decided_by": claims.sub});
                if let Some(reason) = reason {
                    data["reason"] = Value::String(reason);
                }
                if langgraph::is_langgraph(&current) {
                    // Stored with the answer, before anything is sent: the source
                    // resumes the thread from this record (see `langgraph`).
                    let value = langgraph::resume_value(&current, &answer)
                        .map_err(|e| ApiErr::conflict(e, Value::Object(current.clone())))?;
                    data["answer"] =
                        json!({"kind": answer.name(), "by": claims.sub, "at": now_ms()});
                    data["resume"] = json!({"state": "queued", "value": value});
                    resumes = true;
                } else if !matches!(answer, Answer::Approve | Answer::Reject) {
                    return Err(ApiErr::conflict(
                        format!("approval `{id}` takes approve or reject only"),
                        Value::Object(current.clone()),
                    ));
                }
                event("approval.decided", data)
            },
        )
        .await?;
    if resumes {
        if let Some(lg) = &st.langgraph {
            lg.kick();
        }
    }
    Ok(Json(MutationResponse { seq, entity }))
}

#[utoipa::path(
    post,
    path = "/v1/approvals/{id}/approve",
    tag = "actions",
    operation_id = "approve",
    summary = "Approve a pending approval",
    params(("id" = String, Path, description = "The entity's id")),
    request_body(content = Option<DecisionRequest>, description = "Optional: why"),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Applied: the event's seq and the entity after it", body = MutationResponse),
    ),
)]
pub(super) async fn approve(
    State(st): St,
    Auth(claims): Auth,
    path: Result<Path<String>, PathRejection>,
    body: RawJson,
) -> Result<Json<MutationResponse>, ApiErr> {
    let req: DecisionRequest = body.parse_or_default()?;
    decide(st, claims, path_id(path)?, Answer::Approve, req.reason).await
}

#[utoipa::path(
    post,
    path = "/v1/approvals/{id}/reject",
    tag = "actions",
    operation_id = "reject",
    summary = "Reject a pending approval",
    params(("id" = String, Path, description = "The entity's id")),
    request_body(content = Option<DecisionRequest>, description = "Optional: why"),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Applied: the event's seq and the entity after it", body = MutationResponse),
    ),
)]
pub(super) async fn reject(
    State(st): St,
    Auth(claims): Auth,
    path: Result<Path<String>, PathRejection>,
    body: RawJson,
) -> Result<Json<MutationResponse>, ApiErr> {
    let req: DecisionRequest = body.parse_or_default()?;
    decide(st, claims, path_id(path)?, Answer::Reject, req.reason).await
}

#[utoipa::path(
    post,
    path = "/v1/approvals/{id}/edit",
    tag = "actions",
    operation_id = "edit",
    summary = "Accept with other arguments",
    params(("id" = String, Path, description = "The entity's id")),
    request_body(content = EditRequest),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Applied: the event's seq and the entity after it", body = MutationResponse),
    ),
)]
pub(super) async fn edit(
    State(st): St,
    Auth(claims): Auth,
    path: Result<Path<String>, PathRejection>,
    body: RawJson,
) -> Result<Json<MutationResponse>, ApiErr> {
    let req: EditRequest = body.parse()?;
    if !req.args.is_object() {
        return Err(ApiErr::bad_request("`args` must be a JSON object"));
    }
    decide(st, claims, path_id(path)?, Answer::Edit(req.args), None).await
}

#[utoipa::path(
    post,
    path = "/v1/approvals/{id}/respond",
    tag = "actions",
    operation_id = "respond",
    summary = "Answer in words",
    params(("id" = String, Path, description = "The entity's id")),
    request_body(content = RespondRequest),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Applied: the event's seq and the entity after it", body = MutationResponse),
    ),
)]
pub(super) async fn respond(
    State(st): St,
    Auth(claims): Auth,
    path: Result<Path<String>, PathRejection>,
    body: RawJson,
) -> Result<Json<MutationResponse>, ApiErr> {
    let req: RespondRequest = body.parse()?;
    if req.text.trim().is_empty() {
        return Err(ApiErr::bad_request("`text` must not be empty"));
    }
    decide(st, claims, path_id(path)?, Answer::Respond(req.text), None).await
}

/// `GET /v1/approvals/{id}/steps`: the recent steps of a LangGraph approval's
/// thread (newest first), read from the thread's history.
#[utoipa::path(
    get,
    path = "/v1/approvals/{id}/steps",
    tag = "read",
    operation_id = "steps",
    params(("id" = String, Path, description = "The entity's id")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The thread's recent steps, newest first", body = super::openapi::Steps),
        (status = 400, response = super::openapi::BadRequest),
        (status = 404, response = super::openapi::NotFound),
        (status = 502, response = super::openapi::BadGateway),
        (status = 401, response = super::openapi::Unauthorized),
        (status = 429, response = super::openapi::RateLimited),
        (status = 500, response = super::openapi::Internal),
        (status = 503, response = super::openapi::Unavailable),
    ),
)]
pub(super) async fn steps(
    State(st): St,
    Auth(claims): Auth,
    path: Result<Path<String>, PathRejection>,
) -> Result<Json<Value>, ApiErr> {
    let id = path_id(path)?;
    let (tenant, key) = (claims.tenant.clone(), id.clone());
    let current = st
        .hub
        .blocking(move |s| s.entity(&tenant, EntityKind::Approval, &key))
        .await?
        .ok_or_else(|| ApiErr::not_found(format!("no approval `{id}`")))?;
    let lg = st
        .langgraph
        .as_ref()
        .filter(|lg| langgraph::is_langgraph(&current) && lg.tenant() == claims.tenant)
        .ok_or_else(|| ApiErr::not_found(format!("approval `{id}` has no agent run to show")))?;
    let thread = current
        .get("thread_id")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let history = lg.history(thread, 10).await.map_err(|e| {
        tracing::warn!(error = %e, "cannot read a thread's history");
        ApiErr::with_status(
            axum::http::StatusCode::BAD_GATEWAY,
            "the agent's server did not answer",
        )
    })?;
    Ok(Json(json!({"steps": langgraph::steps_of(&history)})))
}

/// `POST /v1/sources/langgraph/webhook`: LangGraph's run webhook. The shared
/// secret is in [`langgraph::SECRET_HEADER`]; no bearer token.
#[utoipa::path(
    post,
    path = "/v1/sources/langgraph/webhook",
    tag = "sources",
    operation_id = "langgraph_webhook",
    request_body(content = Object, description = "A LangGraph run (its `thread_id`)"),
    security(("webhook_secret" = [])),
    responses(
        (status = 200, description = "The run's thread was synced", body = super::openapi::WebhookAck),
        (status = 400, response = super::openapi::BadRequest),
        (status = 401, response = super::openapi::Unauthorized),
        (status = 404, description = "No LangGraph source on this gateway", body = pulse_protocol::rest::ApiError),
        (status = 413, response = super::openapi::TooLarge),
        (status = 415, response = super::openapi::UnsupportedType),
        (status = 502, response = super::openapi::BadGateway),
    ),
)]
pub(super) async fn langgraph_webhook(
    State(st): St,
    headers: axum::http::HeaderMap,
    body: RawJson,
) -> Result<Json<Value>, ApiErr> {
    let lg = st
        .langgraph
        .as_ref()
        .ok_or_else(|| ApiErr::not_found("no LangGraph source on this gateway"))?;
    let given = headers.get(langgraph::SECRET_HEADER).map(|v| v.as_bytes());
    if !lg.secret_matches(given) {
        lg.stats.webhooks_refused.fetch_add(1, Ordering::Relaxed);
        return Err(ApiErr::unauthorized("bad or missing webhook secret"));
    }
    let run: Value = body.parse().inspect_err(|_| {
        lg.stats.webhooks_refused.fetch_add(1, Ordering::Relaxed);
    })?;
    lg.on_webhook(&run).await.map_err(|e| {
        lg.stats.webhooks_refused.fetch_add(1, Ordering::Relaxed);
        if e.contains("thread_id") {
            ApiErr::bad_request(e)
        } else {
            tracing::warn!(error = %e, "webhook: cannot sync the thread");
            ApiErr::with_status(
                axum::http::StatusCode::BAD_GATEWAY,
                "the agent's server did not answer",
            )
        }
    })?;
    Ok(Json(json!({"ok": true})))
}

#[utoipa::path(
    post,
    path = "/v1/tickets/{id}/move",
    tag = "actions",
    operation_id = "move_ticket",
    summary = "Move a ticket",
    params(("id" = String, Path, description = "The entity's id")),
    request_body(content = MoveRequest),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Applied: the event's seq and the entity after it", body = MutationResponse),
    ),
)]
pub(super) async fn move_ticket(
    State(st): St,
    Auth(claims): Auth,
    path: Result<Path<String>, PathRejection>,
    body: RawJson,
) -> Result<Json<MutationResponse>, ApiErr> {
    let id = path_id(path)?;
    let req: MoveRequest = body.parse()?;
    if req.state.trim().is_empty() {
        return Err(ApiErr::bad_request("`state` must not be empty"));
    }
    let (seq, entity) = st
        .hub
        .mutate(
            &claims.tenant,
            &claims.sub,
            EntityKind::Ticket,
            &id,
            |current| {
                current.ok_or_else(|| ApiErr::not_found(format!("no ticket `{id}`")))?;
                event(
                    "ticket.moved",
                    json!({"id": id, "state": req.state, "moved_by": claims.sub}),
                )
            },
        )
        .await?;
    Ok(Json(MutationResponse { seq, entity }))
}

#[utoipa::path(
    post,
    path = "/v1/agents/{id}/terminate",
    tag = "actions",
    operation_id = "terminate_agent",
    summary = "Terminate an agent",
    params(("id" = String, Path, description = "The entity's id")),
    request_body(content = Option<TerminateRequest>, description = "Optional: why"),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Applied: the event's seq and the entity after it", body = MutationResponse),
    ),
)]
pub(super) async fn terminate_agent(
    State(st): St,
    Auth(claims): Auth,
    path: Result<Path<String>, PathRejection>,
    body: RawJson,
) -> Result<Json<MutationResponse>, ApiErr> {
    let id = path_id(path)?;
    let req: TerminateRequest = body.parse_or_default()?;
    let (seq, entity) = st
        .hub
        .mutate(
            &claims.tenant,
            &claims.sub,
            EntityKind::Agent,
            &id,
            |current| {
                let current =
                    current.ok_or_else(|| ApiErr::not_found(format!("no agent `{id}`")))?;
                if status_of(&current) == Some("terminated") {
                    return Err(ApiErr::conflict(
                        format!("agent `{id}` is already terminated"),
                        Value::Object(current),
                    ));
                }
                let mut data = json!({"id": id, "terminated_by": claims.sub});
                if let Some(reason) = req.reason {
                    data["reason"] = Value::String(reason);
                }
                event("agent.terminated", data)
            },
        )
        .await?;
    Ok(Json(MutationResponse { seq, entity }))
}

/// A new access token and the refresh token `jti` of `family` for `sub`.
fn tokens(
    st: &AppState,
    sub: &str,
    tenant: &str,
    role: Role,
    family: &str,
    jti: &str,
) -> Result<(TokenResponse, u64), ApiErr> {
    let mint = |claims: &Claims| {
        st.keys.mint(claims).map_err(|e| {
            tracing::error!(error = %e, "cannot mint token");
            ApiErr::internal()
        })
    };
    let mut refresh = auth::claims(sub, tenant, role, TokenUse::Refresh, st.refresh_ttl);
    refresh.jti = Some(jti.to_owned());
    refresh.fam = Some(family.to_owned());
    let mut access = auth::claims(sub, tenant, role, TokenUse::Access, st.access_ttl);
    // The session's family, so that signing out refuses its access tokens too.
    access.fam = Some(family.to_owned());
    access.iat = st.revoked.issued_at(tenant, sub, access.iat);
    Ok((
        TokenResponse {
            access_token: mint(&access)?,
            refresh_token: mint(&refresh)?,
            expires_in: st.access_ttl.as_secs(),
            tenant: tenant.to_owned(),
        },
        refresh.exp,
    ))
}

/// A fresh random id for a token or a family.
fn token_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

#[utoipa::path(
    post,
    path = "/v1/auth/login",
    tag = "auth",
    operation_id = "login",
    request_body(content = LoginRequest),
    responses(
        (status = 200, description = "An access token and a refresh token", body = TokenResponse),
        (status = 400, response = super::openapi::BadRequest),
        (status = 413, response = super::openapi::TooLarge),
        (status = 415, response = super::openapi::UnsupportedType),
        (status = 401, response = super::openapi::Unauthorized),
        (status = 429, response = super::openapi::RateLimited),
        (status = 500, response = super::openapi::Internal),
        (status = 503, response = super::openapi::Unavailable),
    ),
)]
pub(super) async fn login(
    State(st): St,
    ConnectInfo(peer): ConnectInfo<std::net::SocketAddr>,
    body: RawJson,
) -> Result<Json<TokenResponse>, ApiErr> {
    let req: LoginRequest = body.parse()?;
    let ip = peer.ip();
    // Before the password hash: a throttled attempt costs no argon2.
    st.limiter
        .login
        .check(&req.username, ip)
        .map_err(|refused| {
            tracing::info!(user = %req.username, %ip, "login throttled");
            ApiErr::rate_limited(refused)
        })?;
    // argon2 is slow on purpose: off the async threads. An unknown name costs the
    // same as a wrong password (users::Directory::verify).
    let users = st.users.clone();
    let (name, password) = (req.username.clone(), req.password);
    let found = tokio::task::spawn_blocking(move || users.verify(&name, &password))
        .await
        .map_err(|e| {
            tracing::error!(error = %e, "password check failed");
            ApiErr::internal()
        })?;
    let Some(user) = found else {
        st.limiter.login.failed(&req.username, ip);
        st.hub
            .metrics()
            .auth_failures
            .fetch_add(1, Ordering::Relaxed);
        tracing::info!(user = %req.username, "login refused");
        return Err(ApiErr::unauthorized("wrong user name or password"));
    };
    st.limiter.login.succeeded(&req.username);
    let (family, jti) = (token_id(), token_id());
    let (answer, expires) = tokens(&st, &user.name, &user.tenant, user.role, &family, &jti)?;
    let session = RefreshSession {
        family,
        current: jti,
        sub: user.name.clone(),
        tenant: user.tenant.clone(),
        expires,
    };
    st.hub
        .blocking(move |store| store.session_start(&session))
        .await?;
    tracing::info!(user = %user.name, tenant = %user.tenant, "login");
    Ok(Json(answer))
}

/// The family and token id of a verified refresh token; a refresh token without
/// them (minted by `pulse-gateway mint --refresh`, or by an older gateway) belongs to
/// no family and is refused.
fn family_of(claims: &Claims) -> Result<(String, String), ApiErr> {
    match (&claims.fam, &claims.jti) {
        (Some(f), Some(j)) if !f.is_empty() && !j.is_empty() => Ok((f.clone(), j.clone())),
        _ => Err(ApiErr::unauthorized(
            "this refresh token belongs to no session; log in again",
        )),
    }
}

/// Rotate: the presented refresh token must be its family's current one. An older
/// one revokes the family (whoever holds the newer token must log in again); a
/// user no longer in the users file gets nothing and their family is revoked.
#[utoipa::path(
    post,
    path = "/v1/auth/refresh",
    tag = "auth",
    operation_id = "refresh",
    request_body(content = RefreshRequest),
    responses(
        (status = 200, description = "New tokens; the presented refresh token is spent", body = TokenResponse),
        (status = 400, response = super::openapi::BadRequest),
        (status = 413, response = super::openapi::TooLarge),
        (status = 415, response = super::openapi::UnsupportedType),
        (status = 401, response = super::openapi::Unauthorized),
        (status = 500, response = super::openapi::Internal),
        (status = 503, response = super::openapi::Unavailable),
    ),
)]
pub(super) async fn refresh(State(st): St, body: RawJson) -> Result<Json<TokenResponse>, ApiErr> {
    let req: RefreshRequest = body.parse()?;
    let refused = || {
        st.hub
            .metrics()
            .auth_failures
            .fetch_add(1, Ordering::Relaxed);
    };
    let claims = st
        .keys
        .verify_refresh(&req.refresh_token)
        .inspect_err(|_| refused())?;
    let (family, presented) = family_of(&claims).inspect_err(|_| refused())?;
    let users = st.users.clone();
    let sub = claims.sub.clone();
    let user = tokio::task::spawn_blocking(move || users.find(&sub))
        .await
        .map_err(|e| {
            tracing::error!(error = %e, "user lookup failed");
            ApiErr::internal()
        })?;
    let Some(user) = user.filter(|u| u.tenant == claims.tenant) else {
        refused();
        let f = family.clone();
        st.hub
            .blocking(move |store| store.session_revoke(&f))
            .await?;
        tracing::info!(user = %claims.sub, "refresh refused: user removed");
        return Err(ApiErr::unauthorized(
            "this user can no longer log in; their sessions are revoked",
        ));
    };
    let next = token_id();
    // The role comes from the users file as it is now, not from the old token.
    let (answer, expires) = tokens(&st, &user.name, &user.tenant, user.role, &family, &next)?;
    let now = auth::now_secs();
    let f = family.clone();
    let rotation = st
        .hub
        .blocking(move |store| store.session_rotate(&f, &presented, &next, expires, now))
        .await?;
    match rotation {
        Rotation::Rotated => Ok(Json(answer)),
        Rotation::Reused => {
            refused();
            tracing::warn!(user = %claims.sub, tenant = %claims.tenant, "refresh token reused: session revoked");
            Err(ApiErr::unauthorized(
                "this refresh token was already used; the session is revoked, log in again",
            ))
        }
        Rotation::Unknown => {
            refused();
            Err(ApiErr::unauthorized(
                "this session ended (logged out or revoked); log in again",
            ))
        }
    }
}

/// `POST /v1/auth/logout` `{"refresh_token"}`: revoke the token's session. An
/// expired, already revoked or unknown session is not an error (204 all the same):
/// logging out twice is logging out.
#[utoipa::path(
    post,
    path = "/v1/auth/logout",
    tag = "auth",
    operation_id = "logout",
    request_body(content = RefreshRequest),
    responses(
        (status = 204, description = "The refresh token's session is revoked (or was already gone)"),
        (status = 400, response = super::openapi::BadRequest),
        (status = 413, response = super::openapi::TooLarge),
        (status = 415, response = super::openapi::UnsupportedType),
        (status = 401, response = super::openapi::Unauthorized),
        (status = 500, response = super::openapi::Internal),
        (status = 503, response = super::openapi::Unavailable),
    ),
)]
pub(super) async fn logout(State(st): St, body: RawJson) -> Result<StatusCode, ApiErr> {
    let req: RefreshRequest = body.parse()?;
    let claims = match st.keys.verify_refresh(&req.refresh_token) {
        Ok(c) => c,
        // An expired refresh token's session expired with it.
        Err(auth::AuthError::Expired) => return Ok(StatusCode::NO_CONTENT),
        Err(e) => return Err(e.into()),
    };
    let (family, _) = family_of(&claims)?;
    // Its access tokens (and so its open streams) end now, not at their expiry.
    st.revoked.family(&family);
    let gone = st
        .hub
        .blocking(move |store| store.session_revoke(&family))
        .await?;
    tracing::info!(user = %claims.sub, tenant = %claims.tenant, revoked = gone, "logout");
    Ok(StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(s: &[(&str, &str)]) -> Result<EventsQuery, ApiErr> {
        let pairs: Vec<(String, String)> = s
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        events_query(&pairs)
    }

    #[test]
    fn events_query_rules() {
        assert_eq!(
            q(&[("since", "5")]).unwrap(),
            EventsQuery {
                since: 5,
                epoch: None,
                limit: DEFAULT_EVENTS_LIMIT
            }
        );
        let full = q(&[("since", "0"), ("epoch", "e1"), ("limit", "99999")]).unwrap();
        assert_eq!(
            (full.epoch.as_deref(), full.limit),
            (Some("e1"), MAX_EVENTS_LIMIT)
        );
        for bad in [
            vec![],
            vec![("since", "-1")],
            vec![("since", "x")],
            vec![("since", "1"), ("limit", "0")],
            vec![("since", "1"), ("limit", "ten")],
            vec![("since", "1"), ("bogus", "1")],
        ] {
            let e = q(&bad).unwrap_err();
            assert_eq!(e.code, "bad_request", "{bad:?}");
        }
    }
}
