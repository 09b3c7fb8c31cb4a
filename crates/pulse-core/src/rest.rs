//! REST client for the Pulse gateway: snapshot, events since, login/refresh,
//! mutations, ingest.
//!
//! Every call sends the token in the `Authorization` header only. Errors are sorted
//! into what a caller acts on: [`RestError::Unauthorized`] (refresh or sign in),
//! [`RestError::RateLimited`] (wait `retry_after`), [`RestError::Conflict`] (someone
//! else acted first; `current` is the entity now), [`RestError::Unreachable`]
//! (network: queue and retry), and the rest.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use pulse_protocol::domain::Entity;
use pulse_protocol::rest::{
    ApiError, DecisionRequest, EventsPage, IngestBody, IngestResponse, LoginRequest, MoveRequest,
    MutationResponse, RefreshRequest, Snapshot, TerminateRequest, TokenResponse,
};
use reqwest::{Method, StatusCode};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;
use url::Url;

use crate::auth::Secret;
use crate::store::Action;

/// A REST failure, sorted by what the caller should do.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RestError {
    /// 401: token missing, wrong or expired (`code` says which).
    #[error("unauthorized ({code}): {message}")]
    Unauthorized {
        /// `unauthorized` or `token_expired`.
        code: String,
        /// The server's explanation.
        message: String,
    },
    /// 403.
    #[error("forbidden: {0}")]
    Forbidden(String),
    /// 404.
    #[error("not found: {0}")]
    NotFound(String),
    /// 409: the entity changed first; `current` is how it is now.
    #[error("conflict: {message}")]
    Conflict {
        /// The server's explanation.
        message: String,
        /// The entity as it is now, if the server sent it.
        current: Option<Value>,
    },
    /// 429: wait before asking again.
    #[error("rate limited; retry after {retry_after:?}")]
    RateLimited {
        /// From `Retry-After` (default 5 s when absent or unreadable).
        retry_after: Duration,
    },
    /// Any other error status.
    #[error("server answered {status}: {message}")]
    Http {
        /// HTTP status.
        status: u16,
        /// The server's explanation or body excerpt.
        message: String,
    },
    /// Could not connect, or the connection broke.
    #[error("server unreachable: {0}")]
    Unreachable(String),
    /// The answer was not what the protocol says.
    #[error("unexpected answer from the server: {0}")]
    Decode(String),
}

impl RestError {
    /// Whether retrying later (with the same input) may succeed.
    pub fn is_transient(&self) -> bool {
        match self {
            RestError::Unreachable(_) | RestError::RateLimited { .. } => true,
            RestError::Http { status, .. } => *status >= 500,
            _ => false,
        }
    }
}

/// Parse `Retry-After` (delay-seconds or an HTTP date) into a delay.
pub fn parse_retry_after(value: Option<&str>, now: std::time::SystemTime) -> Duration {
    const DEFAULT: Duration = Duration::from_secs(5);
    let Some(v) = value.map(str::trim) else {
        return DEFAULT;
    };
    if let Ok(secs) = v.parse::<u64>() {
        return Duration::from_secs(secs.min(3600));
    }
    match httpdate(v) {
        Some(at) => at
            .duration_since(now)
            .unwrap_or(Duration::ZERO)
            .min(Duration::from_secs(3600)),
        None => DEFAULT,
    }
}

/// Parse an IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`).
fn httpdate(s: &str) -> Option<std::time::SystemTime> {
    let parts: Vec<&str> = s.split_whitespace().collect();
    if parts.len() != 6 || parts[5] != "GMT" {
        return None;
    }
    let day: i64 = parts[1].parse().ok()?;
    let month = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ]
    .iter()
    .position(|m| *m == parts[2])? as i64
        + 1;
    let year: i64 = parts[3].parse().ok()?;
    let hms: Vec<i64> = parts[4]
        .split(':')
        .map(|p| p.parse().ok())
        .collect::<Option<_>>()?;
    if hms.len() != 3 {
        return None;
    }
    // days from civil (Howard Hinnant)
    let (y, m) = if month <= 2 {
        (year - 1, month + 9)
    } else {
        (year, month - 3)
    };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * m + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = days * 86_400 + hms[0] * 3600 + hms[1] * 60 + hms[2];
    let secs = u64::try_from(secs).ok()?;
    Some(std::time::UNIX_EPOCH + Duration::from_secs(secs))
}

/// Client for one server's REST API.
///
/// A server of several nodes (a cluster) is one client: [`RestClient::use_node`]
/// sends the requests of this client and of all its clones to another node, while
/// [`RestClient::base`] stays the server's URL (what its sign-ins are kept under).
#[derive(Clone, Debug)]
pub struct RestClient {
    http: reqwest::Client,
    base: Url,
    /// The node requests go to instead of `base`, shared by every clone.
    node: Arc<RwLock<Option<Url>>>,
}

impl RestClient {
    /// A client for the server at `base` (e.g. `http://127.0.0.1:8080`).
    pub fn new(base: Url) -> Result<Self, RestError> {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(60))
            .user_agent(concat!("pulse/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| RestError::Unreachable(e.to_string()))?;
        Ok(RestClient {
            http,
            base,
            node: Arc::default(),
        })
    }

    /// The server's base URL (its identity; see [`RestClient::current`] for where
    /// requests go).
    pub fn base(&self) -> &Url {
        &self.base
    }

    /// The node requests go to now: the one given to [`RestClient::use_node`], or
    /// [`RestClient::base`].
    pub fn current(&self) -> Url {
        self.node
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
            .unwrap_or_else(|| self.base.clone())
    }

    /// Send this client's requests, and its clones', to `node` (another node of the
    /// same server) from now on.
    pub fn use_node(&self, node: &Url) {
        let next = (node != &self.base).then(|| node.clone());
        *self.node.write().unwrap_or_else(|p| p.into_inner()) = next;
    }

    fn url(&self, path: &str) -> Result<Url, RestError> {
        self.current()
            .join(path)
            .map_err(|e| RestError::Decode(format!("bad URL path {path}: {e}")))
    }

    async fn call<B: Serialize, T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        token: Option<&Secret>,
        body: Option<&B>,
    ) -> Result<T, RestError> {
        let mut req = self.http.request(method, self.url(path)?);
        if let Some(t) = token {
            req = req.bearer_auth(t.expose());
        }
        if let Some(b) = body {
            req = req.json(b);
        }
        let resp = req
            .send()
            .await
            .map_err(|e| RestError::Unreachable(without_url(&e)))?;
        let status = resp.status();
        if status.is_success() {
            let bytes = resp
                .bytes()
                .await
                .map_err(|e| RestError::Unreachable(without_url(&e)))?;
            return serde_json::from_slice(&bytes).map_err(|e| RestError::Decode(e.to_string()));
        }
        let retry_after = resp
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let text = resp.text().await.unwrap_or_default();
        Err(classify(status, retry_after.as_deref(), &text))
    }

    /// `GET /v1/snapshot`.
    pub async fn snapshot(&self, token: &Secret) -> Result<Snapshot, RestError> {
        self.call::<(), _>(Method::GET, "/v1/snapshot", Some(token), None)
            .await
    }

    /// `GET /v1/events?since=…`.
    pub async fn events_since(
        &self,
        token: &Secret,
        since: u64,
        epoch: Option<&str>,
        limit: u32,
    ) -> Result<EventsPage, RestError> {
        let mut path = format!("/v1/events?since={since}&limit={limit}");
        if let Some(e) = epoch {
            path.push_str("&epoch=");
            path.push_str(&url::form_urlencoded::byte_serialize(e.as_bytes()).collect::<String>());
        }
        self.call::<(), _>(Method::GET, &path, Some(token), None)
            .await
    }

    /// `POST /v1/auth/login`.
    pub async fn login(
        &self,
        username: &str,
        password: &Secret,
    ) -> Result<TokenResponse, RestError> {
        let body = LoginRequest {
            username: username.to_owned(),
            password: password.expose().to_owned(),
        };
        self.call(Method::POST, "/v1/auth/login", None, Some(&body))
            .await
    }

    /// `POST /v1/auth/refresh`.
    pub async fn refresh(&self, refresh_token: &Secret) -> Result<TokenResponse, RestError> {
        let body = RefreshRequest {
            refresh_token: refresh_token.expose().to_owned(),
        };
        self.call(Method::POST, "/v1/auth/refresh", None, Some(&body))
            .await
    }

    /// Send a user action (approve, reject, move, terminate).
    pub async fn perform(&self, token: &Secret, action: &Action) -> Result<Entity, RestError> {
        let seg =
            |id: &str| url::form_urlencoded::byte_serialize(id.as_bytes()).collect::<String>();
        let resp: MutationResponse = match action {
            Action::Approve { id, reason } => {
                let body = DecisionRequest {
                    reason: reason.clone(),
                };
                self.call(
                    Method::POST,
                    &format!("/v1/approvals/{}/approve", seg(id)),
                    Some(token),
                    Some(&body),
                )
                .await?
            }
            Action::Reject { id, reason } => {
                let body = DecisionRequest {
                    reason: reason.clone(),
                };
                self.call(
                    Method::POST,
                    &format!("/v1/approvals/{}/reject", seg(id)),
                    Some(token),
                    Some(&body),
                )
                .await?
            }
            Action::MoveTicket { id, state } => {
                let body = MoveRequest {
                    state: state.clone(),
                };
                self.call(
                    Method::POST,
                    &format!("/v1/tickets/{}/move", seg(id)),
                    Some(token),
                    Some(&body),
                )
                .await?
            }
            Action::TerminateAgent { id, reason } => {
                let body = TerminateRequest {
                    reason: reason.clone(),
                };
                self.call(
                    Method::POST,
                    &format!("/v1/agents/{}/terminate", seg(id)),
                    Some(token),
                    Some(&body),
                )
                .await?
            }
        };
        Ok(resp.entity)
    }

    /// `POST /v1/ingest` (publisher tokens only).
    pub async fn ingest(
        &self,
        token: &Secret,
        body: &IngestBody,
    ) -> Result<IngestResponse, RestError> {
        self.call(Method::POST, "/v1/ingest", Some(token), Some(body))
            .await
    }
}

/// The one way an HTTP client error becomes text: reqwest's message and its causes,
/// with the request URL taken out wherever it appears (a URL may carry a token
/// where a server demands one in the query; and it keeps messages short).
pub fn without_url(e: &reqwest::Error) -> String {
    let url = e.url().map(|u| u.to_string());
    let strip = |text: String| match &url {
        Some(u) => text.replace(&format!(" for url ({u})"), "").replace(u, ""),
        None => text,
    };
    let mut msg = strip(e.to_string());
    let mut src = std::error::Error::source(e);
    while let Some(s) = src {
        msg.push_str(": ");
        msg.push_str(&strip(s.to_string()));
        src = s.source();
    }
    msg
}

/// Turn an error status and body into a [`RestError`].
pub fn classify(status: StatusCode, retry_after: Option<&str>, body: &str) -> RestError {
    let parsed: Option<ApiError> = serde_json::from_str(body).ok();
    let (code, message, current) = match parsed {
        Some(e) => (e.error.code, e.error.message, e.error.current),
        None => {
            let excerpt: String = body.chars().take(200).collect();
            (
                String::new(),
                if excerpt.is_empty() {
                    status.to_string()
                } else {
                    excerpt
                },
                None,
            )
        }
    };
    match status {
        StatusCode::UNAUTHORIZED => RestError::Unauthorized {
            code: if code.is_empty() {
                "unauthorized".into()
            } else {
                code
            },
            message,
        },
        StatusCode::FORBIDDEN => RestError::Forbidden(message),
        StatusCode::NOT_FOUND => RestError::NotFound(message),
        StatusCode::CONFLICT => RestError::Conflict { message, current },
        StatusCode::TOO_MANY_REQUESTS => RestError::RateLimited {
            retry_after: parse_retry_after(retry_after, std::time::SystemTime::now()),
        },
        s => RestError::Http {
            status: s.as_u16(),
            message,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_forms() {
        let now = std::time::UNIX_EPOCH + Duration::from_secs(784_111_777);
        assert_eq!(parse_retry_after(Some("7"), now), Duration::from_secs(7));
        assert_eq!(
            parse_retry_after(Some("Sun, 06 Nov 1994 08:49:37 GMT"), now),
            Duration::from_secs(0)
        );
        let earlier = std::time::UNIX_EPOCH + Duration::from_secs(784_111_777 - 30);
        assert_eq!(
            parse_retry_after(Some("Sun, 06 Nov 1994 08:49:37 GMT"), earlier),
            Duration::from_secs(30)
        );
        assert_eq!(parse_retry_after(Some("soon"), now), Duration::from_secs(5));
        assert_eq!(parse_retry_after(None, now), Duration::from_secs(5));
        assert_eq!(
            parse_retry_after(Some("999999"), now),
            Duration::from_secs(3600)
        );
    }

    #[test]
    fn classify_sorts_errors() {
        let e = classify(
            StatusCode::UNAUTHORIZED,
            None,
            r#"{"error":{"code":"token_expired","message":"expired"}}"#,
        );
        assert!(matches!(e, RestError::Unauthorized { ref code, .. } if code == "token_expired"));
        let e = classify(
            StatusCode::CONFLICT,
            None,
            r#"{"error":{"code":"conflict","message":"decided","current":{"id":"a"}}}"#,
        );
        assert!(matches!(
            e,
            RestError::Conflict {
                current: Some(_),
                ..
            }
        ));
        let e = classify(StatusCode::TOO_MANY_REQUESTS, Some("2"), "slow down");
        assert!(
            matches!(e, RestError::RateLimited { retry_after } if retry_after == Duration::from_secs(2))
        );
        let e = classify(StatusCode::BAD_GATEWAY, None, "<html>bad gateway</html>");
        assert!(e.is_transient());
        assert!(e.to_string().contains("bad gateway"));
    }
}
