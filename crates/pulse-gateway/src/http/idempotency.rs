//! `Idempotency-Key` on the mutation endpoints: a mutation sent again with the same
//! key gets the first answer again, and is not applied twice.
//!
//! Invariants:
//! - a key belongs to the token's tenant and subject: another user's same key is
//!   another key;
//! - the first final answer is kept in the store for [`ANSWER_TTL`]. That is a 2xx,
//!   or a 4xx about the request itself (400, 403, 404, 409, 413, 415). A 401, a 429
//!   or a 5xx did not decide anything, so it is not kept, and a resend is tried
//!   afresh;
//! - requests with the same key run one at a time: the second waits and gets the
//!   first one's answer. On one node they take turns in [`InFlight`]; across the
//!   nodes of a shared store (Redis) through the key's claim in the store
//!   ([`crate::store::LogStore::idempotent_claim`], at most [`CLAIM_TTL`]). A
//!   request that waits longer than [`CLAIM_WAIT`] for another node is answered
//!   503 with `Retry-After`, having done nothing;
//! - a key sent again with another method or path is refused (422), never answered
//!   with another request's answer;
//! - a key is 1 to [`MAX_KEY_BYTES`] visible ASCII characters; anything else is a
//!   400. A request without the header is served as before.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

use super::error::{bearer, ApiErr};
use super::AppState;

/// The request header.
pub const HEADER: &str = "idempotency-key";
/// The response header set on an answer that was kept from an earlier request.
pub const REPLAYED_HEADER: &str = "idempotent-replayed";
/// How long an answer is kept.
pub const ANSWER_TTL: Duration = Duration::from_secs(24 * 3600);
/// Longest key.
pub const MAX_KEY_BYTES: usize = 255;
/// How long a request holds its key's claim at most (a node that dies
/// mid-request holds the key no longer than this).
pub const CLAIM_TTL: Duration = Duration::from_secs(30);
/// How long a request waits for another node that serves the same key before it
/// is answered 503 with `Retry-After`.
pub const CLAIM_WAIT: Duration = Duration::from_secs(10);
/// Largest answer body kept (mutation answers are one entity).
const MAX_ANSWER_BYTES: usize = pulse_protocol::MAX_FRAME_BYTES * 2;

/// Keys being served on this node, each with its lock.
#[derive(Debug, Default)]
pub struct InFlight(Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>);

#[derive(Serialize, Deserialize)]
struct Kept {
    method: String,
    path: String,
    status: u16,
    body: String,
}

/// The store's name of `key` sent by the user `sub` (within the token's tenant):
/// another user's same key is another key.
pub fn scoped(sub: &str, key: &str) -> String {
    format!("{sub}\u{0}{key}")
}

fn valid(key: &str) -> bool {
    !key.is_empty() && key.len() <= MAX_KEY_BYTES && key.bytes().all(|b| b.is_ascii_graphic())
}

fn kept_status(status: StatusCode) -> bool {
    status.is_success() || matches!(status.as_u16(), 400 | 403 | 404 | 409 | 413 | 415)
}

/// The middleware of the mutation routes.
pub(super) async fn guard(State(st): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    let Some(raw) = req.headers().get(HEADER) else {
        return next.run(req).await;
    };
    let key = match raw.to_str() {
        Ok(k) if valid(k) => k.to_owned(),
        _ => {
            return ApiErr::bad_request(format!(
                "`Idempotency-Key` must be 1 to {MAX_KEY_BYTES} visible ASCII characters"
            ))
            .into_response()
        }
    };
    // A token that does not verify is refused by the handler as usual.
    let Ok(claims) = bearer(req.headers()).and_then(|t| st.keys.verify_access(t)) else {
        return next.run(req).await;
    };
    let scoped = scoped(&claims.sub, &key);
    let (method, path) = (req.method().to_string(), req.uri().path().to_owned());
    let lock = {
        let mut map = st.in_flight.0.lock().unwrap_or_else(|e| e.into_inner());
        map.entry(format!("{}\u{0}{scoped}", claims.tenant))
            .or_default()
            .clone()
    };
    let answer = {
        let _one = lock.lock().await;
        serve(&st, &claims.tenant, &scoped, method, path, req, next).await
    };
    {
        let mut map = st.in_flight.0.lock().unwrap_or_else(|e| e.into_inner());
        let k = format!("{}\u{0}{scoped}", claims.tenant);
        // Only the map's and this request's handles left: nobody waits on it.
        if map.get(&k).is_some_and(|l| Arc::strong_count(l) <= 2) {
            map.remove(&k);
        }
    }
    answer
}

/// What a key's record says before a request with it is served.
enum Found {
    /// Nothing kept: serve it.
    Nothing,
    /// The answer to give (a replay, a 422, or a store error).
    Answer(Response),
}

async fn kept_answer(st: &AppState, tenant: &str, scoped: &str, method: &str, path: &str) -> Found {
    let (t, k) = (tenant.to_owned(), scoped.to_owned());
    let now = crate::auth::now_secs();
    let found = st
        .hub
        .blocking(move |store| store.idempotent_get(&t, &k, now))
        .await;
    match found {
        Err(e) => Found::Answer(ApiErr::from(e).into_response()),
        Ok(None) => Found::Nothing,
        Ok(Some(text)) => Found::Answer(match serde_json::from_str::<Kept>(&text) {
            Ok(kept) if kept.method == method && kept.path == path => replay(kept),
            Ok(_) => ApiErr::with_status(
                StatusCode::UNPROCESSABLE_ENTITY,
                "this `Idempotency-Key` was used for another request; use a new key",
            )
            .into_response(),
            Err(e) => {
                tracing::error!(error = %e, "a kept idempotent answer does not read back");
                ApiErr::internal().into_response()
            }
        }),
    }
}

/// A key's claim in the store while this request serves it; released when
/// dropped (also when the client hangs up and the request is dropped mid-way).
struct Claim {
    hub: Arc<crate::hub::Hub>,
    tenant: String,
    key: String,
    owner: String,
}

impl Claim {
    /// Release now (rather than on drop, in the background).
    async fn release(mut self) {
        let (t, k, o) = self.take();
        let _ = self
            .hub
            .blocking(move |store| store.idempotent_release(&t, &k, &o))
            .await
            .map_err(|e| {
                // The claim expires by itself after CLAIM_TTL.
                tracing::warn!(error = %e, "idempotency claim not released");
            });
    }

    fn take(&mut self) -> (String, String, String) {
        (
            std::mem::take(&mut self.tenant),
            std::mem::take(&mut self.key),
            std::mem::take(&mut self.owner),
        )
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        if self.owner.is_empty() {
            return; // released already
        }
        let (t, k, o) = self.take();
        let hub = self.hub.clone();
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move {
                if let Err(e) = hub
                    .blocking(move |store| store.idempotent_release(&t, &k, &o))
                    .await
                {
                    tracing::warn!(error = %e, "idempotency claim not released");
                }
            });
        }
    }
}

/// Take the key's claim, waiting while another node serves it: the kept answer
/// once that node is done, or `Ok(claim)` to serve the request here.
async fn claim(
    st: &AppState,
    tenant: &str,
    scoped: &str,
    method: &str,
    path: &str,
) -> Result<Claim, Response> {
    let owner = uuid::Uuid::new_v4().simple().to_string();
    let deadline = tokio::time::Instant::now() + CLAIM_WAIT;
    let mut pause = Duration::from_millis(10);
    loop {
        let (t, k, o) = (tenant.to_owned(), scoped.to_owned(), owner.clone());
        let claimed = st
            .hub
            .blocking(move |store| store.idempotent_claim(&t, &k, &o, CLAIM_TTL))
            .await
            .map_err(|e| ApiErr::from(e).into_response())?;
        if claimed {
            let claim = Claim {
                hub: st.hub.clone(),
                tenant: tenant.to_owned(),
                key: scoped.to_owned(),
                owner,
            };
            // Another node may have kept its answer and released the claim
            // between our first look and this claim: look again, holding it.
            return match kept_answer(st, tenant, scoped, method, path).await {
                Found::Nothing => Ok(claim),
                Found::Answer(a) => Err(a),
            };
        }
        // Another node is serving this key: its answer, once kept, is ours.
        if let Found::Answer(a) = kept_answer(st, tenant, scoped, method, path).await {
            return Err(a);
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(ApiErr::busy(
                "a request with this `Idempotency-Key` is still being served; try again",
            )
            .into_response());
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_millis(200));
    }
}

async fn serve(
    st: &AppState,
    tenant: &str,
    scoped: &str,
    method: String,
    path: String,
    req: Request,
    next: Next,
) -> Response {
    if let Found::Answer(a) = kept_answer(st, tenant, scoped, &method, &path).await {
        return a;
    }
    let claim = match claim(st, tenant, scoped, &method, &path).await {
        Ok(c) => c,
        Err(answer) => return answer,
    };
    let resp = next.run(req).await;
    let status = resp.status();
    if !kept_status(status) {
        // Nothing decided: the claim goes and a resend is tried afresh.
        claim.release().await;
        return resp;
    }
    let (parts, body) = resp.into_parts();
    let bytes = match axum::body::to_bytes(body, MAX_ANSWER_BYTES).await {
        Ok(b) => b,
        Err(e) => {
            tracing::error!(error = %e, "mutation answer not read");
            return ApiErr::internal().into_response();
        }
    };
    let kept = Kept {
        method,
        path,
        status: status.as_u16(),
        body: String::from_utf8_lossy(&bytes).into_owned(),
    };
    let text = serde_json::to_string(&kept).expect("strings serialise");
    let (t, k) = (tenant.to_owned(), scoped.to_owned());
    let expires = crate::auth::now_secs().saturating_add(ANSWER_TTL.as_secs());
    if let Err(e) = st
        .hub
        .blocking(move |store| store.idempotent_put(&t, &k, &text, expires))
        .await
    {
        // Applied, but the answer could not be kept: say so rather than invite a
        // resend that would apply it again unnoticed.
        tracing::warn!(error = %e, "idempotent answer not kept");
    }
    // Released only after the answer is kept, so a waiting node finds it.
    claim.release().await;
    Response::from_parts(parts, Body::from(bytes))
}

fn replay(kept: Kept) -> Response {
    let status = StatusCode::from_u16(kept.status).unwrap_or(StatusCode::OK);
    let mut resp = (status, kept.body).into_response();
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    h.insert(REPLAYED_HEADER, HeaderValue::from_static("true"));
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys() {
        assert!(valid("9b2f6c1e-action-17"));
        assert!(valid(&"k".repeat(MAX_KEY_BYTES)));
        for bad in ["", " ", "a b", "é", "\u{0}", &"k".repeat(MAX_KEY_BYTES + 1)] {
            assert!(!valid(bad), "{bad:?}");
        }
        assert!(kept_status(StatusCode::OK) && kept_status(StatusCode::CONFLICT));
        for s in [401, 429, 500, 503] {
            assert!(!kept_status(StatusCode::from_u16(s).unwrap()), "{s}");
        }
    }
}
