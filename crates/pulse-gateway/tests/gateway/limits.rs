//! Gateway sessions under abuse: login throttling, stream caps, the per-token
//! request rate, `/metrics` without and with its token, and streams at token expiry
//! (closed, or kept by an `auth` frame). Real gateways on 127.0.0.1:0.

use std::time::Duration;

use pulse_gateway::limits::Limits;
use pulse_gateway::{auth, Config, User};
use pulse_protocol::auth::{Role, TokenUse};
use pulse_protocol::{ClientFrame, ServerFrame};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use crate::common::*;

fn with_limits(limits: Limits) -> Config {
    Config { limits, ..config() }
}

async fn login(gw: &Gw, user: &str, password: &str) -> reqwest::Response {
    gw.http
        .post(gw.url("/v1/auth/login"))
        .json(&json!({"username": user, "password": password}))
        .send()
        .await
        .unwrap()
}

/// A 429 `rate_limited` with a `Retry-After` of at least one second; returns it.
async fn assert_429(resp: reqwest::Response) -> u64 {
    assert_eq!(resp.status(), 429);
    let retry: u64 = resp.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(retry >= 1, "Retry-After {retry}");
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["code"], "rate_limited", "{body}");
    retry
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logins_are_throttled_per_user() {
    let gw = Gw::start(Config {
        users: vec![
            User::new("ann", "right", "acme", Role::Viewer).unwrap(),
            User::new("bob", "pw-b", "acme", Role::Viewer).unwrap(),
        ],
        ..with_limits(Limits {
            login_failures_per_user: 2,
            login_failures_per_address: 100,
            login_window: Duration::from_secs(300),
            ..Limits::default()
        })
    })
    .await;
    // A success clears the user's failures.
    assert_eq!(login(&gw, "ann", "wrong").await.status(), 401);
    assert_eq!(login(&gw, "ann", "right").await.status(), 200);
    assert_eq!(login(&gw, "ann", "wrong").await.status(), 401);
    assert_eq!(login(&gw, "ann", "wrong").await.status(), 401);
    // Two failures in the window: even the right password waits now.
    let retry = assert_429(login(&gw, "ann", "right").await).await;
    assert!(retry <= 300, "at most the window: {retry}");
    assert_429(login(&gw, "ann", "wrong").await).await;
    // Another user from the same address is not affected.
    assert_eq!(login(&gw, "bob", "pw-b").await.status(), 200);
    // An unknown name is throttled the same way (no hint whether it exists).
    assert_eq!(login(&gw, "nobody", "x").await.status(), 401);
    assert_eq!(login(&gw, "nobody", "x").await.status(), 401);
    assert_429(login(&gw, "nobody", "x").await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logins_are_throttled_per_address() {
    let gw = Gw::start(Config {
        users: vec![User::new("ann", "right", "acme", Role::Viewer).unwrap()],
        ..with_limits(Limits {
            login_failures_per_user: 100,
            login_failures_per_address: 3,
            ..Limits::default()
        })
    })
    .await;
    for name in ["u1", "u2", "u3"] {
        assert_eq!(login(&gw, name, "guess").await.status(), 401, "{name}");
    }
    // Every name from this address waits, including a real user's right password.
    assert_429(login(&gw, "u4", "guess").await).await;
    assert_429(login(&gw, "ann", "right").await).await;
    // Garbage bodies are refused as such and counted as nothing.
    let r = gw
        .http
        .post(gw.url("/v1/auth/login"))
        .header("content-type", "application/json")
        .body("{\"username\": 5")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_are_capped_per_token() {
    let gw = Gw::start(with_limits(Limits {
        connections_per_token: 2,
        connections_per_address: 100,
        ..Limits::default()
    }))
    .await;
    let token = viewer("acme");
    let (a, _) = subscribe(&gw, &token, None, None).await;
    let (_b, _) = subscribe(&gw, &token, None, None).await;
    // The third stream of the token is a plain HTTP 429 before the upgrade.
    let third = connect(&gw.ws_url(), &token).await.unwrap_err();
    match third {
        tokio_tungstenite::tungstenite::Error::Http(r) => {
            assert_eq!(r.status(), 429);
            assert!(r.headers().contains_key("retry-after"));
        }
        other => panic!("expected HTTP 429, got {other}"),
    }
    // Another token of the same user is a different token.
    let other = token_with("acme", "bob", Role::Viewer, TokenUse::Access);
    let (_c, _) = subscribe(&gw, &other, None, None).await;
    // Closing a stream frees its place (waiting on the condition, not a timer).
    drop(a);
    let mut again = wait_for_some("a freed stream slot", SOON, || {
        let (url, token) = (gw.ws_url(), token.clone());
        async move { connect(&url, &token).await.ok() }
    })
    .await;
    assert!(matches!(
        next_frame(&mut again).await,
        ServerFrame::Hello(_)
    ));
}

/// A WebSocket to the gateway from `source` (another loopback address).
async fn connect_from(gw: &Gw, source: [u8; 4], token: &str) -> Result<Ws, String> {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket
        .bind(std::net::SocketAddr::from((source, 0)))
        .map_err(|e| e.to_string())?;
    let tcp = socket
        .connect(gw.gw.addr())
        .await
        .map_err(|e| e.to_string())?;
    let mut req = gw.ws_url().into_client_request().unwrap();
    req.headers_mut()
        .insert("Authorization", format!("Bearer {token}").parse().unwrap());
    let (ws, _) =
        tokio_tungstenite::client_async(req, tokio_tungstenite::MaybeTlsStream::Plain(tcp))
            .await
            .map_err(|e| e.to_string())?;
    Ok(ws)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_are_capped_per_address() {
    // Linux routes all of 127.0.0.0/8 to loopback: 127.0.0.2 and .3 reach the
    // gateway on 127.0.0.1 as two addresses.
    let gw = Gw::start(with_limits(Limits {
        connections_per_token: 100,
        connections_per_address: 2,
        ..Limits::default()
    }))
    .await;
    let tok = |sub: &str| token_with("acme", sub, Role::Viewer, TokenUse::Access);
    let _a = connect_from(&gw, [127, 0, 0, 2], &tok("a")).await.unwrap();
    let _b = connect_from(&gw, [127, 0, 0, 2], &tok("b")).await.unwrap();
    let err = connect_from(&gw, [127, 0, 0, 2], &tok("c"))
        .await
        .unwrap_err();
    assert!(err.contains("429"), "{err}");
    // Another address has its own count.
    let _c = connect_from(&gw, [127, 0, 0, 3], &tok("c")).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_are_rate_limited_per_token() {
    let gw = Gw::start(with_limits(Limits {
        requests_per_second: 1,
        request_burst: 3,
        ..Limits::default()
    }))
    .await;
    let token = viewer("acme");
    for i in 0..3 {
        assert_eq!(gw.get(&token, "/v1/snapshot").await.status(), 200, "{i}");
    }
    assert_429(gw.get(&token, "/v1/snapshot").await).await;
    // An ingest is refused before it reaches the store: nothing is written.
    let pubr = publisher("acme");
    for _ in 0..3 {
        gw.ingest(&pubr, ev("agent.upserted", json!({"id": "a1"})))
            .await;
    }
    let refused = gw
        .post(
            &pubr,
            "/v1/ingest",
            &ev("agent.upserted", json!({"id": "a2"})),
        )
        .await;
    assert_429(refused).await;
    let snap = gw
        .json(
            &token_with("acme", "other", Role::Viewer, TokenUse::Access),
            "/v1/snapshot",
        )
        .await;
    assert!(
        !snap["entities"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["id"] == "a2"),
        "{snap}"
    );
    // A bad token is a 401, not a 429: the rate is per valid token.
    assert_eq!(gw.get("garbage", "/v1/snapshot").await.status(), 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_name_tenants_only_with_the_metrics_token() {
    let gw = Gw::default().await;
    gw.ingest(
        &publisher("acme-secret-name"),
        ev("agent.upserted", json!({"id": "a"})),
    )
    .await;
    let text = gw.metrics().await;
    assert!(text.contains("pulse_events_ingested_total 1"), "{text}");
    assert!(!text.contains("acme-secret-name"), "{text}");
    assert!(!text.contains("tenant="), "{text}");
    // No metrics token configured: any bearer is refused, not ignored.
    let r = gw.get("anything", "/metrics").await;
    assert_eq!(r.status(), 401);

    let metrics_token = "metrics-token-for-the-scraper";
    let gw = Gw::start(Config {
        metrics_token: Some(metrics_token.into()),
        ..config()
    })
    .await;
    gw.ingest(
        &publisher("acme-secret-name"),
        ev("agent.upserted", json!({"id": "a"})),
    )
    .await;
    let open = gw.metrics().await;
    assert!(!open.contains("acme-secret-name"), "{open}");
    assert!(open.contains("pulse_connections_open"), "{open}");
    for wrong in [
        "wrong",
        "metrics-token-for-the-scrape",
        &publisher("acme-secret-name"),
    ] {
        let r = gw.get(wrong, "/metrics").await;
        assert_eq!(r.status(), 401, "{wrong}");
        assert!(!r.text().await.unwrap().contains("acme-secret-name"));
    }
    let r = gw.get(metrics_token, "/metrics").await;
    assert_eq!(r.status(), 200);
    let full = r.text().await.unwrap();
    assert!(
        full.lines()
            .any(|l| l == "pulse_stream_head_seq{tenant=\"acme-secret-name\"} 1"),
        "{full}"
    );
}

/// A viewer token of `acme`/`ann` that expires `secs` from now.
fn expiring(secs: u64, sub: &str) -> (String, u64) {
    let claims = auth::claims(
        sub,
        "acme",
        Role::Viewer,
        TokenUse::Access,
        Duration::from_secs(secs),
    );
    (auth::mint(SECRET, &claims).unwrap(), claims.exp)
}

/// Wait (on the clock, which is the condition) until `exp` has passed.
async fn until_past(exp: u64) {
    while auth::now_secs() <= exp {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_is_closed_when_its_token_expires() {
    let gw = Gw::default().await;
    let (token, exp) = expiring(2, "ann");
    let (mut ws, _) = subscribe(&gw, &token, Some(0), None).await;
    match next_frame(&mut ws).await {
        ServerFrame::Error { code, .. } => assert_eq!(code, "token_expired"),
        other => panic!("expected error token_expired, got {other:?}"),
    }
    assert_eq!(closed(&mut ws).await, Some(4001));
    assert!(auth::now_secs() >= exp, "not before the token's exp");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_auth_frame_keeps_the_stream_past_the_old_expiry() {
    let gw = Gw::default().await;
    let (old, old_exp) = expiring(2, "ann");
    let (mut ws, subscribed) = subscribe(&gw, &old, Some(0), None).await;
    let (fresh, _) = expiring(600, "ann");
    send(&mut ws, &ClientFrame::Auth { token: fresh }).await;
    until_past(old_exp + 1).await;
    let seqs = gw
        .ingest(
            &publisher("acme"),
            ev("agent.upserted", json!({"id": "late"})),
        )
        .await;
    let got = events(&mut ws, 1).await;
    assert_eq!(got[0].seq, seqs[0]);
    assert_eq!(got[0].seq, subscribed.head + 1, "nothing lost, no gap");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_auth_frames_close_the_stream() {
    let gw = Gw::default().await;
    let other_user = expiring(600, "mallory").0;
    let other_tenant = token_with("beta", "ann", Role::Viewer, TokenUse::Access);
    let refresh = token_with("acme", "ann", Role::Viewer, TokenUse::Refresh);
    let mut expired_claims = auth::claims(
        "ann",
        "acme",
        Role::Viewer,
        TokenUse::Access,
        Duration::ZERO,
    );
    expired_claims.exp = auth::now_secs() - 10;
    let expired = auth::mint(SECRET, &expired_claims).unwrap();
    for (token, code) in [
        (other_user, "forbidden"),
        (other_tenant, "forbidden"),
        (refresh, "unauthorized"),
        (expired, "token_expired"),
        ("garbage".to_owned(), "unauthorized"),
        (String::new(), "unauthorized"),
    ] {
        let (mut ws, _) = subscribe(&gw, &viewer("acme"), None, None).await;
        send(&mut ws, &ClientFrame::Auth { token }).await;
        match next_frame(&mut ws).await {
            ServerFrame::Error { code: got, message } => {
                assert_eq!(got, code, "{message}")
            }
            other => panic!("expected an error, got {other:?}"),
        }
        assert_eq!(closed(&mut ws).await, Some(4001));
    }
    // A malformed auth frame is a bad_request and the stream stays.
    let (mut ws, _) = subscribe(&gw, &viewer("acme"), None, None).await;
    use futures_util::SinkExt;
    ws.send(tokio_tungstenite::tungstenite::Message::text(
        r#"{"type":"auth","token":5}"#,
    ))
    .await
    .unwrap();
    match next_frame(&mut ws).await {
        ServerFrame::Error { code, .. } => assert_eq!(code, "bad_request"),
        other => panic!("expected bad_request, got {other:?}"),
    }
    let seqs = gw
        .ingest(&publisher("acme"), ev("agent.upserted", json!({"id": "x"})))
        .await;
    assert_eq!(events(&mut ws, 1).await[0].seq, seqs[0]);
    // The token of an auth frame is never shown by Debug.
    let dbg = format!(
        "{:?}",
        ClientFrame::Auth {
            token: "tok-visible?".into()
        }
    );
    assert!(!dbg.contains("tok-visible"), "{dbg}");
}

/// The binary takes the limits and the metrics token from its flags (the token
/// from a file, never from the command line).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_takes_the_limits_and_the_metrics_token_file() {
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("metrics-token");
    std::fs::write(&token_file, "scrape-me-0123\n").unwrap();
    let proc = Proc::spawn(&[
        "serve",
        "--addr",
        "127.0.0.1:0",
        "--connections-per-token",
        "1",
        "--metrics-token-file",
        token_file.to_str().unwrap(),
    ])
    .await;
    let http = reqwest::Client::new();
    let ws = format!("{}/v1/stream", proc.url.replace("http://", "ws://"));
    let token = viewer("acme");
    let _one = connect(&ws, &token).await.unwrap();
    match connect(&ws, &token).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(r)) => assert_eq!(r.status(), 429),
        other => panic!("expected 429, got {:?}", other.map(|_| ())),
    }
    let r = http
        .get(format!("{}/metrics", proc.url))
        .bearer_auth("scrape-me-0123")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.text().await.unwrap().contains("pulse_stream_head_seq"));
    proc.kill().await;
    // An empty token file is refused at start.
    std::fs::write(&token_file, "\n").unwrap();
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_pulse-gateway"))
        .args(["serve", "--addr", "127.0.0.1:0", "--metrics-token-file"])
        .arg(&token_file)
        .env("PULSE_JWT_SECRET", SECRET)
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("metrics token file"));
}
