//! REST client for the Pulse gateway: snapshot, events since, login/refresh,
//! mutations, ingest.
//!
//! Every call sends the token in the `Authorization` header only. Errors are sorted
//! into what a caller acts on: [`RestError::Unauthorized`] (refresh or sign in),
//! [`RestError::RateLimited`] (wait `retry_after`), [`RestError::Conflict`] (someone
//! else acted first; `current` is the entity now), [`RestError::Unreachable`]
//! (network: queue and retry), and the rest.
//!
//! Bounds: every response body read from a server is read through
//! [`read_limited`] (at most [`MAX_BODY`]: an events page, a profile's refetch,
//! an action's answer; over it is a clear error and nothing past the bound is
//! buffered), through [`SnapshotDecoder`] for a snapshot (the same bound, counted
//! as the bytes arrive; the body is decoded as it streams and never held whole) or, for an error's text, [`read_prefix`] (its
//! first [`MAX_ERROR_BODY`] bytes, the rest never read). Error text is redacted
//! (the token taken out) before it is cut to an excerpt.
//!
//! URLs: a request's URL is the server's base with a path joined by
//! [`same_host_url`], which refuses a path that would leave the configured
//! scheme, host and port (`//evil/x`, `https://evil/`, a backslash); an id in a
//! path is one segment, percent-encoded by [`path_segment`] (`.` and `..` are
//! refused). Redirects are never followed ([`http_client`]): a credential is
//! never sent on to where a 3xx points.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use pulse_protocol::domain::Entity;
use pulse_protocol::rest::{
    ApiError, DecisionRequest, EditRequest, EventsPage, IngestBody, IngestResponse, LoginRequest,
    MoveRequest, MutationResponse, RefreshRequest, RespondRequest, TerminateRequest, TokenResponse,
};
use reqwest::{Method, StatusCode};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;
use url::Url;

use crate::auth::Secret;
use crate::store::Action;

mod snapshot;
pub use snapshot::{SnapshotDecoder, StreamedSnapshot};

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
    // Fields in their calendar ranges: a hostile date cannot overflow.
    let secs = pulse_protocol::time::unix_seconds(year, month, day, hms[0], hms[1], hms[2])?;
    let secs = u64::try_from(secs).ok()?;
    std::time::UNIX_EPOCH.checked_add(Duration::from_secs(secs))
}

/// The largest response body Pulse reads from a server (64 MiB): a snapshot of
/// 10,000 entities is a few MiB.
pub const MAX_BODY: usize = 64 << 20;

/// How much of an error response is read for its text (64 KiB).
pub const MAX_ERROR_BODY: usize = 64 << 10;

/// Read `resp`'s body, at most `limit` bytes. A body announced (Content-Length)
/// or found (as it streams) to be larger is an error naming the bound, and no
/// more than `limit` bytes are ever held.
pub async fn read_limited(mut resp: reqwest::Response, limit: usize) -> Result<Vec<u8>, String> {
    let over = || over_limit(limit);
    if resp.content_length().is_some_and(|n| n > limit as u64) {
        return Err(over());
    }
    let mut buf = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(|e| without_url(&e))? {
        if buf.len().saturating_add(chunk.len()) > limit {
            return Err(over());
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(buf)
}

/// The one error text for a body over `limit` bytes.
fn over_limit(limit: usize) -> String {
    format!("the server's answer is over {limit} bytes (Pulse reads at most that)")
}

/// The first `limit` bytes of `resp`'s body (an error's text): the rest is
/// never read; a network failure midway keeps what arrived.
pub async fn read_prefix(mut resp: reqwest::Response, limit: usize) -> Vec<u8> {
    let mut buf = Vec::new();
    while let Ok(Some(chunk)) = resp.chunk().await {
        let room = limit.saturating_sub(buf.len());
        buf.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if buf.len() >= limit {
            break;
        }
    }
    buf
}

/// An id as one path segment: every byte outside RFC 3986's unreserved set is
/// percent-encoded (`/`, `?`, `#`, `%`, spaces…). `""`, `.` and `..` are
/// refused: a URL parser reads the last two as "this" and "the parent" folder
/// however they are encoded.
pub fn path_segment(id: &str) -> Result<String, RestError> {
    if id.is_empty() || id == "." || id == ".." {
        return Err(RestError::Decode(format!(
            "`{id}` cannot be an id in a URL path"
        )));
    }
    let mut out = String::with_capacity(id.len());
    for b in id.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    Ok(out)
}

/// `path` joined onto `base`, refused unless the result keeps `base`'s scheme,
/// host and port: a profile's path (or a value rendered into it) can never send
/// the token to another host.
pub fn same_host_url(base: &Url, path: &str) -> Result<Url, RestError> {
    let bad = |why: &str| RestError::Decode(format!("bad URL path `{path}`: {why}"));
    if path.starts_with("//") || path.contains('\\') {
        return Err(bad("it would leave the server's host"));
    }
    let joined = base.join(path).map_err(|e| bad(&e.to_string()))?;
    if joined.scheme() != base.scheme()
        || joined.host_str() != base.host_str()
        || joined.port_or_known_default() != base.port_or_known_default()
    {
        return Err(bad("it would leave the server's host"));
    }
    Ok(joined)
}

/// The HTTP client every REST call of Pulse uses: connect timeout 10 s, whole
/// request 60 s, the trusted CAs of [`crate::transport::tls`], and no
/// redirects followed (a 3xx is an error, never a resend
/// of the credentials elsewhere).
pub fn http_client() -> reqwest::ClientBuilder {
    crate::transport::tls::reqwest_tls(
        reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(60))
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("pulse/", env!("CARGO_PKG_VERSION"))),
    )
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
        let http = http_client()
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
        same_host_url(&self.current(), path)
    }

    async fn call<B: Serialize, T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        token: Option<&Secret>,
        body: Option<&B>,
    ) -> Result<T, RestError> {
        self.call_keyed(method, path, token, body, None).await
    }

    /// [`RestClient::call`] with an `Idempotency-Key` when `key` is given.
    async fn call_keyed<B: Serialize, T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        token: Option<&Secret>,
        body: Option<&B>,
        key: Option<&str>,
    ) -> Result<T, RestError> {
        let resp = self.send(method, path, token, body, key).await?;
        let bytes = read_limited(resp, MAX_BODY)
            .await
            .map_err(RestError::Decode)?;
        // No body (204) reads as `null`: `()` takes it, anything else refuses.
        let bytes: &[u8] = if bytes.is_empty() { b"null" } else { &bytes };
        serde_json::from_slice(bytes).map_err(|e| RestError::Decode(e.to_string()))
    }

    /// Send a request; a success status gives the response (its body unread),
    /// any other the [`RestError`] it means.
    async fn send<B: Serialize>(
        &self,
        method: Method,
        path: &str,
        token: Option<&Secret>,
        body: Option<&B>,
        key: Option<&str>,
    ) -> Result<reqwest::Response, RestError> {
        let mut req = self.http.request(method, self.url(path)?);
        if let Some(k) = key {
            req = req.header("Idempotency-Key", k);
        }
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
            return Ok(resp);
        }
        let retry_after = resp
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let bytes = read_prefix(resp, MAX_ERROR_BODY).await;
        // Redacted before classify cuts it to an excerpt, so a token the server
        // echoes is never half kept.
        let text = crate::transport::jsonws::redact(&String::from_utf8_lossy(&bytes), token);
        Err(classify(status, retry_after.as_deref(), &text))
    }

    /// `GET /v1/snapshot`, decoded as it streams ([`SnapshotDecoder`], at most
    /// [`MAX_BODY`] bytes): the entities come as the cache's rows, and the body is
    /// never held whole. A body cut mid-way, or not a snapshot, is
    /// [`RestError::Decode`].
    pub async fn snapshot(&self, token: &Secret) -> Result<StreamedSnapshot, RestError> {
        let mut resp = self
            .send::<()>(Method::GET, "/v1/snapshot", Some(token), None, None)
            .await?;
        if resp.content_length().is_some_and(|n| n > MAX_BODY as u64) {
            return Err(RestError::Decode(over_limit(MAX_BODY)));
        }
        let mut decoder = SnapshotDecoder::new(MAX_BODY);
        while let Some(chunk) = resp
            .chunk()
            .await
            .map_err(|e| RestError::Decode(without_url(&e)))?
        {
            decoder.feed(&chunk).map_err(RestError::Decode)?;
        }
        decoder.finish().map_err(RestError::Decode)
    }

    /// `GET /v1/approvals/{id}/steps`: the recent steps of the agent run behind an
    /// approval (a LangGraph thread's history), newest first.
    pub async fn approval_steps(&self, token: &Secret, id: &str) -> Result<Value, RestError> {
        let seg = path_segment(id)?;
        self.call::<(), _>(
            Method::GET,
            &format!("/v1/approvals/{seg}/steps"),
            Some(token),
            None,
        )
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

    /// `POST /v1/auth/logout`: revoke the session of `refresh_token` (204).
    pub async fn logout(&self, refresh_token: &Secret) -> Result<(), RestError> {
        let body = RefreshRequest {
            refresh_token: refresh_token.expose().to_owned(),
        };
        self.call::<_, ()>(Method::POST, "/v1/auth/logout", None, Some(&body))
            .await
    }

    /// Send a user action (approve, reject, move, terminate), with `key` as its
    /// `Idempotency-Key` when given (the gateway then applies a resend once).
    pub async fn perform(
        &self,
        token: &Secret,
        action: &Action,
        key: Option<&str>,
    ) -> Result<Entity, RestError> {
        let seg = path_segment;
        let resp: MutationResponse = match action {
            Action::Approve { id, reason } => {
                let body = DecisionRequest {
                    reason: reason.clone(),
                };
                self.call_keyed(
                    Method::POST,
                    &format!("/v1/approvals/{}/approve", seg(id)?),
                    Some(token),
                    Some(&body),
                    key,
                )
                .await?
            }
            Action::Reject { id, reason } => {
                let body = DecisionRequest {
                    reason: reason.clone(),
                };
                self.call_keyed(
                    Method::POST,
                    &format!("/v1/approvals/{}/reject", seg(id)?),
                    Some(token),
                    Some(&body),
                    key,
                )
                .await?
            }
            Action::Edit { id, args } => {
                let body = EditRequest { args: args.clone() };
                self.call_keyed(
                    Method::POST,
                    &format!("/v1/approvals/{}/edit", seg(id)?),
                    Some(token),
                    Some(&body),
                    key,
                )
                .await?
            }
            Action::Respond { id, text } => {
                let body = RespondRequest { text: text.clone() };
                self.call_keyed(
                    Method::POST,
                    &format!("/v1/approvals/{}/respond", seg(id)?),
                    Some(token),
                    Some(&body),
                    key,
                )
                .await?
            }
            Action::MoveTicket { id, state } => {
                let body = MoveRequest {
                    state: state.clone(),
                };
                self.call_keyed(
                    Method::POST,
                    &format!("/v1/tickets/{}/move", seg(id)?),
                    Some(token),
                    Some(&body),
                    key,
                )
                .await?
            }
            Action::TerminateAgent { id, reason } => {
                let body = TerminateRequest {
                    reason: reason.clone(),
                };
                self.call_keyed(
                    Method::POST,
                    &format!("/v1/agents/{}/terminate", seg(id)?),
                    Some(token),
                    Some(&body),
                    key,
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
    fn hostile_retry_after_dates_never_overflow() {
        let now = std::time::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        for v in [
            "Mon, 01 Jan 99999999999999999 00:00:00 GMT",
            "Mon, 99999999999999 Jan 2026 00:00:00 GMT",
            "Mon, 01 Jan 2026 99999999999999:00:00 GMT",
            "Mon, 01 Jan -9223372036854775808 00:00:00 GMT",
            "Mon, 01 Jan 2026 -1:-1:-1 GMT",
            "18446744073709551616",
            "-5",
        ] {
            let d = parse_retry_after(Some(v), now);
            assert!(d <= Duration::from_secs(3600), "{v}: {d:?}");
        }
        // A real date still works: 30 s after `now`.
        let d = parse_retry_after(Some("Tue, 14 Nov 2023 22:13:50 GMT"), now);
        assert_eq!(d, Duration::from_secs(30));
    }

    #[test]
    fn ids_are_one_percent_encoded_path_segment() {
        assert_eq!(path_segment("t-1_a.b~").unwrap(), "t-1_a.b~");
        assert_eq!(path_segment("a/b?c#d e%").unwrap(), "a%2Fb%3Fc%23d%20e%25");
        assert_eq!(path_segment("é").unwrap(), "%C3%A9");
        assert_eq!(path_segment("...").unwrap(), "...");
        for bad in ["", ".", ".."] {
            assert!(path_segment(bad).is_err(), "{bad:?}");
        }
        let base: Url = "https://ops.example/".parse().unwrap();
        let url = same_host_url(
            &base,
            &format!(
                "/v1/approvals/{}/approve",
                path_segment("../../admin").unwrap()
            ),
        )
        .unwrap();
        assert_eq!(url.path(), "/v1/approvals/..%2F..%2Fadmin/approve");
    }

    #[test]
    fn a_path_cannot_leave_the_configured_host() {
        let base: Url = "https://ops.example:8443/api/".parse().unwrap();
        for bad in [
            "//evil.example/x",
            "https://evil.example/x",
            "http://ops.example:8443/x",
            "https://ops.example:9999/x",
            "\\\\evil.example\\x",
            "/\\evil.example/x",
        ] {
            let e = same_host_url(&base, bad).expect_err(bad);
            assert!(
                e.to_string().contains("leave the server's host"),
                "{bad}: {e}"
            );
        }
        let ok = same_host_url(&base, "/v1/snapshot?x=1").unwrap();
        assert_eq!(ok.host_str(), Some("ops.example"));
        assert_eq!(ok.port(), Some(8443));
        assert_eq!(same_host_url(&base, "stats").unwrap().path(), "/api/stats");
    }

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
