//! The one error shape ([`ApiError`]) and the extractors that produce it.
//!
//! Invariant: every refusal of every endpoint — bad token, bad JSON, wrong content
//! type, oversized body, unknown route, wrong method, failed lookup — is answered
//! with a 4xx/5xx status and a `{"error": {"code", "message"}}` body, never with a
//! framework default page.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::{header, request::Parts, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use pulse_protocol::auth::Claims;
use pulse_protocol::rest::{ApiError, ApiErrorBody};
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::auth::AuthError;
use crate::http::AppState;
use crate::hub::HubError;
use crate::store::StoreError;

/// `Retry-After` of a 503 `unavailable`, in seconds.
pub const RETRY_AFTER_SECS: u32 = 1;

/// An error answer: status, stable code, message, and for conflicts the entity.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiErr {
    /// HTTP status.
    pub status: StatusCode,
    /// Stable code (see [`ApiErrorBody::code`]).
    pub code: &'static str,
    /// For people.
    pub message: String,
    /// For `conflict`: the entity as it is now.
    pub current: Option<Value>,
    /// Seconds for a `Retry-After` header (503 `unavailable`).
    pub retry_after: Option<u32>,
}

impl ApiErr {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiErr {
        ApiErr {
            status,
            code,
            message: message.into(),
            current: None,
            retry_after: None,
        }
    }

    /// 503 `unavailable` with `Retry-After`: the store cannot be reached now and
    /// nothing was written.
    pub fn unavailable() -> ApiErr {
        ApiErr {
            retry_after: Some(RETRY_AFTER_SECS),
            ..ApiErr::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "the event store cannot be reached; nothing was written, try again",
            )
        }
    }

    /// 503 `unavailable` with `Retry-After` for another reason than the store
    /// (nothing was done).
    pub fn busy(message: impl Into<String>) -> ApiErr {
        ApiErr {
            retry_after: Some(RETRY_AFTER_SECS),
            ..ApiErr::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", message)
        }
    }

    /// 400 `bad_request`.
    pub fn bad_request(message: impl Into<String>) -> ApiErr {
        ApiErr::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    /// 401 `unauthorized`.
    pub fn unauthorized(message: impl Into<String>) -> ApiErr {
        ApiErr::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }

    /// 403 `forbidden`.
    pub fn forbidden(message: impl Into<String>) -> ApiErr {
        ApiErr::new(StatusCode::FORBIDDEN, "forbidden", message)
    }

    /// 404 `not_found`.
    pub fn not_found(message: impl Into<String>) -> ApiErr {
        ApiErr::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    /// 409 `conflict` with the entity as it is.
    pub fn conflict(message: impl Into<String>, current: Value) -> ApiErr {
        ApiErr {
            current: Some(current),
            ..ApiErr::new(StatusCode::CONFLICT, "conflict", message)
        }
    }

    /// 413 `payload_too_large`.
    pub fn too_large() -> ApiErr {
        ApiErr::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!(
                "request body is larger than the {}-byte limit",
                pulse_protocol::MAX_FRAME_BYTES
            ),
        )
    }

    /// 500 `internal` (the cause is logged, not sent).
    pub fn internal() -> ApiErr {
        ApiErr::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "internal error; see the gateway log",
        )
    }

    /// 429 `rate_limited` with `Retry-After`: a limit of [`crate::limits`] refused
    /// the request; nothing was done.
    pub fn rate_limited(refused: crate::limits::Refused) -> ApiErr {
        ApiErr {
            retry_after: Some(refused.retry_after_secs()),
            ..ApiErr::new(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                format!("{}; try again later", refused.what),
            )
        }
    }

    /// Any status with code `bad_request` (405, 415…).
    pub fn with_status(status: StatusCode, message: impl Into<String>) -> ApiErr {
        ApiErr::new(status, "bad_request", message)
    }
}

impl IntoResponse for ApiErr {
    fn into_response(self) -> Response {
        let body = ApiError {
            error: ApiErrorBody {
                code: self.code.to_owned(),
                message: self.message,
                current: self.current,
            },
        };
        let mut resp = (self.status, Json(body)).into_response();
        if let Some(secs) = self.retry_after {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if self.status == StatusCode::UNAUTHORIZED {
            resp.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        resp
    }
}

impl From<HubError> for ApiErr {
    fn from(e: HubError) -> ApiErr {
        if e.is_unavailable() {
            tracing::warn!(error = %e, "store unavailable");
            return ApiErr::unavailable();
        }
        if let Some(StoreError::Audience(why)) = e.store_error() {
            return ApiErr::new(StatusCode::CONFLICT, "conflict", why.clone());
        }
        tracing::error!(error = %e, "store failure");
        ApiErr::internal()
    }
}

impl From<AuthError> for ApiErr {
    fn from(e: AuthError) -> ApiErr {
        match e {
            AuthError::Expired => ApiErr::new(
                StatusCode::UNAUTHORIZED,
                "token_expired",
                "token expired; refresh it or log in again",
            ),
            AuthError::WrongUse(u) => ApiErr::unauthorized(format!(
                "a {} token cannot be used here",
                match u {
                    pulse_protocol::auth::TokenUse::Access => "access",
                    pulse_protocol::auth::TokenUse::Refresh => "refresh",
                }
            )),
            other => ApiErr::unauthorized(other.to_string()),
        }
    }
}

/// The verified claims of the request's access token (from `Authorization: Bearer`).
#[derive(Debug, Clone)]
pub struct Auth(pub Claims);

impl FromRequestParts<Arc<AppState>> for Auth {
    type Rejection = ApiErr;

    async fn from_request_parts(parts: &mut Parts, st: &Arc<AppState>) -> Result<Auth, ApiErr> {
        let result = bearer(&parts.headers)
            .and_then(|t| st.keys.verify_access(t))
            .and_then(|c| st.revoked.check(&c).map(|_| c));
        let claims = result.map_err(|e| {
            st.hub
                .metrics()
                .auth_failures
                .fetch_add(1, Ordering::Relaxed);
            tracing::debug!(error = %e, path = %parts.uri.path(), "auth refused");
            ApiErr::from(e)
        })?;
        // Every authenticated request (REST and stream upgrades) counts towards its
        // token's rate, before any store call.
        st.limiter
            .requests
            .take(
                &crate::limits::token_key(&claims),
                std::time::Instant::now(),
            )
            .map_err(|refused| {
                tracing::debug!(tenant = %claims.tenant, sub = %claims.sub, "request rate limit");
                ApiErr::rate_limited(refused)
            })?;
        Ok(Auth(claims))
    }
}

/// The bearer token of `Authorization`.
pub(super) fn bearer(headers: &axum::http::HeaderMap) -> Result<&str, AuthError> {
    let value = headers
        .get(header::AUTHORIZATION)
        .ok_or(AuthError::Missing)?
        .to_str()
        .map_err(|_| AuthError::Invalid("`Authorization` header is not ASCII".into()))?;
    let (scheme, token) = value.trim().split_once(' ').ok_or(AuthError::Missing)?;
    if !scheme.eq_ignore_ascii_case("bearer") || token.trim().is_empty() {
        return Err(AuthError::Missing);
    }
    Ok(token.trim())
}

/// A request body of at most [`pulse_protocol::MAX_FRAME_BYTES`], declared as JSON
/// when not empty. Parse it with [`RawJson::parse`] or [`RawJson::parse_or_default`].
#[derive(Debug, Clone)]
pub struct RawJson(pub Bytes);

impl<S: Send + Sync> FromRequest<S> for RawJson {
    type Rejection = ApiErr;

    async fn from_request(req: Request, state: &S) -> Result<RawJson, ApiErr> {
        let json_type = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(|v| {
                let mime = v
                    .split(';')
                    .next()
                    .unwrap_or("")
                    .trim()
                    .to_ascii_lowercase();
                mime == "application/json"
                    || (mime.starts_with("application/") && mime.ends_with("+json"))
            });
        let bytes = Bytes::from_request(req, state).await.map_err(|e| {
            if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiErr::too_large()
            } else {
                ApiErr::bad_request(format!("could not read the request body: {e}"))
            }
        })?;
        if !bytes.is_empty() && json_type != Some(true) {
            return Err(ApiErr::with_status(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "request body must be JSON with `Content-Type: application/json`",
            ));
        }
        Ok(RawJson(bytes))
    }
}

impl RawJson {
    /// Parse the body as `T`; an empty body is an error.
    pub fn parse<T: DeserializeOwned>(&self) -> Result<T, ApiErr> {
        if self.0.iter().all(u8::is_ascii_whitespace) {
            return Err(ApiErr::bad_request("request body is empty; expected JSON"));
        }
        serde_json::from_slice(&self.0)
            .map_err(|e| ApiErr::bad_request(format!("invalid JSON body: {e}")))
    }

    /// Parse the body as `T`; an empty body (or `null`) is `T::default()`.
    pub fn parse_or_default<T: DeserializeOwned + Default>(&self) -> Result<T, ApiErr> {
        if self.0.iter().all(u8::is_ascii_whitespace) {
            return Ok(T::default());
        }
        let v: Value = self.parse()?;
        if v.is_null() {
            return Ok(T::default());
        }
        serde_json::from_value(v)
            .map_err(|e| ApiErr::bad_request(format!("invalid JSON body: {e}")))
    }
}
