//! Garbage on every endpoint: a clear 4xx in the one error shape, and the gateway
//! keeps serving.

use reqwest::Method;
use serde_json::{json, Value};

use crate::common::*;

const ENDPOINTS: [&str; 8] = [
    "/v1/ingest",
    "/v1/approvals/ap1/approve",
    "/v1/approvals/ap1/reject",
    "/v1/tickets/t1/move",
    "/v1/agents/ag1/terminate",
    "/v1/auth/login",
    "/v1/auth/refresh",
    "/v1/snapshot",
];

async fn expect_error(resp: reqwest::Response, status: u16, code: &str, what: &str) {
    assert_eq!(resp.status().as_u16(), status, "{what}");
    assert!(
        resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/json"),
        "{what}"
    );
    let v: Value = resp
        .json()
        .await
        .unwrap_or_else(|e| panic!("{what}: body is not JSON: {e}"));
    assert_eq!(v["error"]["code"], code, "{what}: {v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{what}: {v}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_everywhere() {
    let gw = Gw::default().await;
    let p = publisher("acme");
    gw.ingest(
        &p,
        json!([
            ev("approval.created", json!({"id": "ap1"})),
            ev("ticket.created", json!({"id": "t1"})),
            ev("agent.upserted", json!({"id": "ag1"})),
        ]),
    )
    .await;
    let post = |path: &str, ct: Option<&str>, body: Vec<u8>| {
        let mut req = gw.http.post(gw.url(path)).bearer_auth(&p).body(body);
        if let Some(ct) = ct {
            req = req.header("content-type", ct);
        }
        async move { req.send().await.unwrap() }
    };
    for path in &ENDPOINTS[..7] {
        let what = format!("non-JSON to {path}");
        expect_error(
            post(path, Some("application/json"), b"{not json".to_vec()).await,
            400,
            "bad_request",
            &what,
        )
        .await;
        let what = format!("text/plain to {path}");
        expect_error(
            post(path, Some("text/plain"), b"{}".to_vec()).await,
            415,
            "bad_request",
            &what,
        )
        .await;
        let what = format!("no content type to {path}");
        expect_error(
            post(path, None, br#"{"a":1}"#.to_vec()).await,
            415,
            "bad_request",
            &what,
        )
        .await;
        let what = format!("wrong types to {path}");
        let wrong = br#"{"type": 5, "data": 1, "state": 7, "reason": 9, "username": [], "password": {}, "refresh_token": 3}"#;
        expect_error(
            post(path, Some("application/json"), wrong.to_vec()).await,
            400,
            "bad_request",
            &what,
        )
        .await;
        let what = format!("huge body to {path}");
        let huge = vec![b' '; pulse_protocol::MAX_FRAME_BYTES + 1];
        expect_error(
            post(path, Some("application/json"), huge).await,
            413,
            "payload_too_large",
            &what,
        )
        .await;
    }
    // A body of exactly the limit is read (and then judged on its content).
    let mut exact = br#"{"type":"agent.upserted","data":{"id":"big","pad":""#.to_vec();
    let tail = br#""}}"#;
    exact.resize(pulse_protocol::MAX_FRAME_BYTES - tail.len(), b'x');
    exact.extend_from_slice(tail);
    let resp = post("/v1/ingest", Some("application/json"), exact).await;
    assert_eq!(
        resp.status(),
        413,
        "an event whose frame would exceed the limit"
    );

    // Unknown routes and methods.
    let resp = gw.get(&p, "/v1/nothing-here").await;
    expect_error(resp, 404, "not_found", "unknown route").await;
    let resp = gw
        .http
        .request(Method::DELETE, gw.url("/v1/snapshot"))
        .bearer_auth(&p)
        .send()
        .await
        .unwrap();
    expect_error(resp, 405, "bad_request", "DELETE snapshot").await;
    let resp = gw
        .http
        .get(gw.url("/v1/ingest"))
        .bearer_auth(&p)
        .send()
        .await
        .unwrap();
    expect_error(resp, 405, "bad_request", "GET ingest").await;
    // Bad query strings.
    for q in [
        "",
        "?since=abc",
        "?since=-1",
        "?since=1&limit=0",
        "?since=1&limit=x",
        "?since=1&foo=2",
        "?since=%zz",
    ] {
        let resp = gw.get(&p, &format!("/v1/events{q}")).await;
        expect_error(resp, 400, "bad_request", &format!("events{q}")).await;
    }
    // Unknown event types and shapes.
    for body in [
        json!({"type": "robot.danced", "data": {}}),
        json!({"type": "agent.upserted", "data": "a string"}),
        json!({"type": "agent.upserted"}),
        json!("just a string"),
        json!(null),
    ] {
        let resp = gw.post(&p, "/v1/ingest", &body).await;
        expect_error(resp, 400, "bad_request", &body.to_string()).await;
    }
    // Still serving, and nothing bad was written.
    let resp = gw.http.get(gw.url("/healthz")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(gw.json(&viewer("acme"), "/v1/snapshot").await["seq"], 3);
    assert_eq!(
        gw.ingest(&p, ev("agent.upserted", json!({"id": "ok"})))
            .await,
        [4]
    );
}
