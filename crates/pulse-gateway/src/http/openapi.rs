//! The REST API's contract: the OpenAPI 3.1 document served at `GET /openapi.json`.
//!
//! Invariants:
//! - the document is generated, never written by hand: the schemas are derived on
//!   the wire types (pulse-protocol's `openapi` feature, and the few bodies that live
//!   here), the operations on the handlers (`#[utoipa::path]`);
//! - the router and the document come from the same list ([`super::routes`], through
//!   `utoipa_axum::routes!`): a route cannot be served without being documented,
//!   nor documented without being served;
//! - every error answer is documented with the one error body
//!   ([`pulse_protocol::rest::ApiError`]); 429 and 503 with their `Retry-After`,
//!   401 with `WWW-Authenticate: Bearer`;
//! - the mutations' `Idempotency-Key` header, their 422 and the error answers
//!   every mutation shares are added to every operation of the mutations' router
//!   in one place ([`with_idempotency`]), the router that
//!   [`super::idempotency::guard`] wraps.

use std::sync::OnceLock;

use axum::http::header;
use axum::response::IntoResponse;
use serde::Serialize;
use serde_json::Value;
use utoipa::openapi::header::HeaderBuilder;
use utoipa::openapi::path::{Parameter, ParameterBuilder, ParameterIn};
use utoipa::openapi::response::{Response, ResponseBuilder};
use utoipa::openapi::schema::{ObjectBuilder, Type};
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{ContentBuilder, OpenApi, Ref, RefOr, Required};
use utoipa::{Modify, ToSchema};
use utoipa_axum::router::OpenApiRouter;

use super::idempotency;

/// Path of the document.
pub const PATH: &str = "/openapi.json";

/// Security scheme of the access tokens (`Authorization: Bearer <JWT>`).
pub const BEARER: &str = "bearer";
/// Security scheme of `/metrics`' per-tenant series.
pub const METRICS_TOKEN: &str = "metrics_token";
/// Security scheme of the LangGraph webhook (its shared secret header).
pub const WEBHOOK_SECRET: &str = "webhook_secret";

/// `GET /healthz`'s body.
#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    /// `ok`, or `degraded` while the store cannot be reached.
    #[schema(pattern = "^(ok|degraded)$")]
    pub status: String,
    /// The store's backend (with `degraded`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub store: Option<String>,
    /// Why (with `degraded`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// `GET /v1/approvals/{id}/steps`' body: the thread's recent steps, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct Steps {
    /// One object per step (node, what it wrote, when).
    pub steps: Vec<Value>,
}

/// The LangGraph webhook's answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookAck {
    /// Always `true`: the run was read and its thread synced.
    pub ok: bool,
}

/// What the document says beyond the operations: title, security schemes, the
/// shared error responses.
#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "Pulse gateway REST API",
        description = "REST endpoints of the Pulse gateway (protocol v1). The stream is \
                       `GET /v1/stream` (a WebSocket); see docs/protocol.md for its frames.",
        license(name = "Apache-2.0", identifier = "Apache-2.0"),
    ),
    modifiers(&Security),
    components(responses(
        BadRequest, Unauthorized, Forbidden, NotFound, Conflict, TooLarge,
        UnsupportedType, KeyReused, RateLimited, Internal, BadGateway, Unavailable,
    )),
    tags(
        (name = "auth", description = "Login, refresh-token rotation, logout"),
        (name = "read", description = "Snapshot, polling, the stream"),
        (name = "ingest", description = "Publishing events (publisher tokens)"),
        (name = "actions", description = "Mutations; they honour `Idempotency-Key`"),
        (name = "ops", description = "Health, metrics, this document"),
        (name = "sources", description = "Webhooks of event sources"),
    ),
)]
struct Base;

struct Security;

impl Modify for Security {
    fn modify(&self, doc: &mut OpenApi) {
        let c = doc.components.get_or_insert_with(Default::default);
        c.add_security_scheme(
            BEARER,
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .description(Some(
                        "An access token from `POST /v1/auth/login` or `/v1/auth/refresh`",
                    ))
                    .build(),
            ),
        );
        c.add_security_scheme(
            METRICS_TOKEN,
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "The gateway's metrics token (`metrics_token_file`); not a JWT",
                    ))
                    .build(),
            ),
        );
        c.add_security_scheme(
            WEBHOOK_SECRET,
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                crate::langgraph::SECRET_HEADER,
                "The LangGraph source's webhook secret",
            ))),
        );
    }
}

fn error_response(description: &str) -> ResponseBuilder {
    ResponseBuilder::new().description(description).content(
        "application/json",
        ContentBuilder::new()
            .schema(Some(Ref::from_schema_name("ApiError")))
            .build(),
    )
}

fn retry_after(r: ResponseBuilder) -> ResponseBuilder {
    r.header(
        "Retry-After",
        HeaderBuilder::new()
            .schema(
                ObjectBuilder::new()
                    .schema_type(Type::Integer)
                    .minimum(Some(0)),
            )
            .description(Some("Seconds to wait before trying again"))
            .build(),
    )
}

macro_rules! error_responses {
    ($($(#[$doc:meta])* $name:ident => $build:expr;)*) => {$(
        $(#[$doc])*
        pub struct $name;

        impl<'r> utoipa::ToResponse<'r> for $name {
            fn response() -> (&'r str, RefOr<Response>) {
                let build: fn() -> ResponseBuilder = $build;
                (stringify!($name), RefOr::T(build().build()))
            }
        }
    )*};
}

error_responses! {
    /// 400 `bad_request`.
    BadRequest => || error_response("`bad_request`: the request is malformed (the message says how)");
    /// 401 `unauthorized` / `token_expired`.
    Unauthorized => || error_response("`unauthorized` or `token_expired`: no, a bad, or an expired token")
        .header(
            "WWW-Authenticate",
            HeaderBuilder::new()
                .schema(ObjectBuilder::new().schema_type(Type::String))
                .description(Some("`Bearer`"))
                .build(),
        );
    /// 403 `forbidden`.
    Forbidden => || error_response("`forbidden`: the token may not do this");
    /// 404 `not_found`.
    NotFound => || error_response("`not_found`: no such entity");
    /// 409 `conflict`, with the entity as it is.
    Conflict => || error_response("`conflict`: the entity is not in a state this applies to; `current` is the entity as it is");
    /// 413 `payload_too_large`.
    TooLarge => || error_response("`payload_too_large`: the body (or one event) is over the 16 MiB frame limit");
    /// 415.
    UnsupportedType => || error_response("a body that is not `Content-Type: application/json`");
    /// 422: an `Idempotency-Key` used for another request.
    KeyReused => || error_response("this `Idempotency-Key` was used for another method or path");
    /// 429 `rate_limited`, with `Retry-After`.
    RateLimited => || retry_after(error_response("`rate_limited`: a limit refused the request; nothing was done"));
    /// 500 `internal`.
    Internal => || error_response("`internal`: see the gateway's log");
    /// 502: an agent's server did not answer.
    BadGateway => || error_response("the agent's server (LangGraph) did not answer");
    /// 503 `unavailable`, with `Retry-After`.
    Unavailable => || retry_after(error_response("`unavailable`: the event store cannot be reached; nothing was written"));
}

/// Adds the `Idempotency-Key` header and the mutations' error answers
/// ([`MUTATION_ERRORS`], 422 among them) to every operation of `router` (the
/// mutations', which [`idempotency::guard`] wraps).
pub(super) fn with_idempotency<S: Clone + Send + Sync + 'static>(
    mut router: OpenApiRouter<S>,
) -> OpenApiRouter<S> {
    let doc = router.get_openapi_mut();
    for item in doc.paths.paths.values_mut() {
        let ops = [
            &mut item.get,
            &mut item.put,
            &mut item.post,
            &mut item.delete,
            &mut item.patch,
        ];
        for op in ops.into_iter().flatten() {
            op.parameters
                .get_or_insert_with(Vec::new)
                .push(idempotency_key());
            for (status, name) in MUTATION_ERRORS {
                op.responses
                    .responses
                    .entry((*status).into())
                    .or_insert_with(|| RefOr::Ref(Ref::from_response_name(*name)));
            }
        }
    }
    router
}

/// The error answers every mutation can give (status, response component), in
/// one place: the handlers document only their success.
const MUTATION_ERRORS: &[(&str, &str)] = &[
    ("400", "BadRequest"),
    ("401", "Unauthorized"),
    ("404", "NotFound"),
    ("409", "Conflict"),
    ("413", "TooLarge"),
    ("415", "UnsupportedType"),
    ("422", "KeyReused"),
    ("429", "RateLimited"),
    ("500", "Internal"),
    ("503", "Unavailable"),
];

fn idempotency_key() -> Parameter {
    ParameterBuilder::new()
        .name("Idempotency-Key")
        .parameter_in(ParameterIn::Header)
        .required(Required::False)
        .description(Some(format!(
            "A resend with the same key (same user, method and path) gets the first answer \
             (with `{}: true`) and is applied once, for {} hours. 1 to {} visible ASCII characters.",
            idempotency::REPLAYED_HEADER,
            idempotency::ANSWER_TTL.as_secs() / 3600,
            idempotency::MAX_KEY_BYTES,
        )))
        .schema(Some(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .min_length(Some(1))
                .max_length(Some(idempotency::MAX_KEY_BYTES))
                .pattern(Some("^[!-~]+$")),
        ))
        .build()
}

/// The document of `routes` (the gateway's whole router, see [`super::routes`]).
pub(super) fn document<S: Clone + Send + Sync + 'static>(routes: OpenApiRouter<S>) -> OpenApi {
    let mut doc = <Base as utoipa::OpenApi>::openapi();
    doc.merge(routes.into_openapi());
    doc
}

/// The document as served (built once).
pub fn json() -> &'static str {
    static DOC: OnceLock<String> = OnceLock::new();
    DOC.get_or_init(|| {
        document(super::routes())
            .to_pretty_json()
            .expect("an OpenAPI document serialises")
    })
}

/// `GET /openapi.json`.
#[utoipa::path(
    get,
    path = "/openapi.json",
    tag = "ops",
    operation_id = "openapi",
    responses((status = 200, description = "This document (OpenAPI 3.1)", content_type = "application/json", body = Object)),
)]
pub(super) async fn serve() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], json())
}
