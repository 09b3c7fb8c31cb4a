//! Tokens: mint/verify, expiry, refresh-as-access, login and refresh.

use std::time::Duration;

use pulse_gateway::auth::{self, AuthError};
use pulse_gateway::{Config, User};
use pulse_protocol::auth::{Role, TokenUse};
use pulse_protocol::rest::TokenResponse;
use serde_json::{json, Value};

use crate::common::*;

#[test]
fn mint_and_verify() {
    let claims = auth::claims(
        "svc",
        "acme",
        Role::Publisher,
        TokenUse::Access,
        Duration::from_secs(60),
    );
    let token = auth::mint(SECRET, &claims).unwrap();
    assert_eq!(auth::verify(SECRET, &token).unwrap(), claims);
    assert!(matches!(
        auth::verify("wrong", &token),
        Err(AuthError::Invalid(_))
    ));
}

async fn error_code(resp: reqwest::Response) -> (u16, String) {
    let status = resp.status().as_u16();
    let v: Value = resp.json().await.expect("error bodies are JSON");
    (status, v["error"]["code"].as_str().unwrap_or("").to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_tokens_are_401_everywhere() {
    let gw = Gw::default().await;
    let mut expired = auth::claims(
        "ann",
        "acme",
        Role::Viewer,
        TokenUse::Access,
        Duration::ZERO,
    );
    expired.exp = auth::now_secs() - 30;
    let expired = auth::mint(SECRET, &expired).unwrap();
    let forged = auth::mint(
        "not-the-secret",
        &auth::claims(
            "ann",
            "acme",
            Role::Publisher,
            TokenUse::Access,
            Duration::from_secs(60),
        ),
    )
    .unwrap();
    let refresh = token_with("acme", "ann", Role::Viewer, TokenUse::Refresh);
    for path in ["/v1/snapshot", "/v1/events?since=0"] {
        assert_eq!(
            error_code(gw.get(&expired, path).await).await,
            (401, "token_expired".into())
        );
        assert_eq!(
            error_code(gw.get(&forged, path).await).await,
            (401, "unauthorized".into())
        );
        assert_eq!(
            error_code(gw.get(&refresh, path).await).await,
            (401, "unauthorized".into())
        );
        assert_eq!(
            error_code(gw.get("garbage", path).await).await,
            (401, "unauthorized".into())
        );
        let resp = gw.http.get(gw.url(path)).send().await.unwrap();
        assert_eq!(resp.headers()["www-authenticate"], "Bearer");
        assert_eq!(error_code(resp).await, (401, "unauthorized".into()));
    }
    // Never from the query string.
    let good = viewer("acme");
    let resp = gw
        .http
        .get(gw.url(&format!("/v1/snapshot?access_token={good}&token={good}")))
        .send()
        .await
        .unwrap();
    assert_eq!(error_code(resp).await.0, 401);
    let body = json!({"type": "agent.upserted", "data": {"id": "a"}});
    for (path, token) in [
        ("/v1/ingest", &expired),
        ("/v1/approvals/x/approve", &forged),
    ] {
        assert_eq!(error_code(gw.post(token, path, &body).await).await.0, 401);
    }
    // The stream refuses in the handshake, with a plain HTTP 401.
    for token in [&expired, &forged, &refresh] {
        match connect(&gw.ws_url(), token).await {
            Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => {
                assert_eq!(resp.status(), 401);
                let body: Value = serde_json::from_slice(resp.body().as_deref().unwrap()).unwrap();
                assert!(body["error"]["code"].is_string());
            }
            Err(e) => panic!("expected HTTP 401, got {e}"),
            Ok(_) => panic!("expected HTTP 401, got a WebSocket"),
        }
    }
    let resp = gw.get(&good, "/v1/snapshot").await;
    assert_eq!(resp.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_and_refresh() {
    let gw = Gw::start(Config {
        users: vec!["ann:hunter2:acme".parse::<User>().unwrap()],
        access_ttl: Duration::from_secs(120),
        ..config()
    })
    .await;
    let login = |user: &str, pass: &str| {
        let body = json!({"username": user, "password": pass});
        let req = gw.http.post(gw.url("/v1/auth/login")).json(&body);
        async move { req.send().await.unwrap() }
    };
    for (u, p) in [
        ("ann", "hunter3"),
        ("ann", ""),
        ("bob", "hunter2"),
        ("demo", "demo"),
    ] {
        assert_eq!(
            error_code(login(u, p).await).await,
            (401, "unauthorized".into()),
            "{u}/{p}"
        );
    }
    let resp = login("ann", "hunter2").await;
    assert_eq!(resp.status(), 200);
    let tokens: TokenResponse = resp.json().await.unwrap();
    assert_eq!((tokens.tenant.as_str(), tokens.expires_in), ("acme", 120));
    let claims = auth::verify(SECRET, &tokens.access_token).unwrap();
    assert_eq!(
        (claims.sub.as_str(), claims.role, claims.token_use),
        ("ann", Role::Viewer, TokenUse::Access)
    );
    let r = auth::verify(SECRET, &tokens.refresh_token).unwrap();
    assert_eq!(r.token_use, TokenUse::Refresh);
    assert!(
        r.exp >= auth::now_secs() + 29 * 86_400,
        "refresh lives 30 days"
    );
    assert_eq!(
        gw.get(&tokens.access_token, "/v1/snapshot").await.status(),
        200
    );
    assert_eq!(
        gw.get(&tokens.refresh_token, "/v1/snapshot").await.status(),
        401
    );

    let refresh = |t: &str| {
        let req = gw
            .http
            .post(gw.url("/v1/auth/refresh"))
            .json(&json!({"refresh_token": t}));
        async move { req.send().await.unwrap() }
    };
    let resp = refresh(&tokens.refresh_token).await;
    assert_eq!(resp.status(), 200);
    let again: TokenResponse = resp.json().await.unwrap();
    assert_eq!(
        auth::verify(SECRET, &again.access_token).unwrap().tenant,
        "acme"
    );
    assert_eq!(
        error_code(refresh(&tokens.access_token).await).await,
        (401, "unauthorized".into())
    );
    assert_eq!(
        error_code(refresh("nope").await).await,
        (401, "unauthorized".into())
    );
    let mut old = auth::claims(
        "ann",
        "acme",
        Role::Viewer,
        TokenUse::Refresh,
        Duration::ZERO,
    );
    old.exp = auth::now_secs() - 10;
    let old = auth::mint(SECRET, &old).unwrap();
    assert_eq!(
        error_code(refresh(&old).await).await,
        (401, "token_expired".into())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_user_logs_in() {
    let gw = Gw::start(Config {
        demo: Some(pulse_gateway::DemoConfig::default()),
        jwt_secret: None,
        ..config()
    })
    .await;
    let resp = gw
        .http
        .post(gw.url("/v1/auth/login"))
        .json(&json!({"username": "demo", "password": "demo"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let tokens: TokenResponse = resp.json().await.unwrap();
    assert_eq!(tokens.tenant, "demo");
    assert_eq!(
        auth::verify(gw.gw.secret(), &tokens.access_token)
            .unwrap()
            .tenant,
        "demo"
    );
    assert_ne!(gw.gw.secret(), SECRET, "a random secret was generated");
}
