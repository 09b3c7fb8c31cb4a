//! `GET /openapi.json`: the REST API's contract, generated from the handlers. The
//! document is valid OpenAPI 3 (parsed back), every documented operation is
//! served by the router (not its fallback) and every path answers only its
//! documented methods, and the shared rules (bearer, 401/429/503, `Retry-After`,
//! `Idempotency-Key`) are on every operation they apply to.

use std::collections::BTreeSet;

use serde_json::Value;

use crate::common::*;

const METHODS: [&str; 5] = ["get", "post", "put", "delete", "patch"];

/// Every (method, path) of the document.
fn operations(doc: &Value) -> BTreeSet<(String, String)> {
    let mut out = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for m in METHODS {
            if item.get(m).is_some() {
                out.insert((m.to_owned(), path.clone()));
            }
        }
    }
    out
}

/// `#/components/KIND/NAME` of the document, or a panic naming the dangling ref.
fn resolve<'a>(doc: &'a Value, v: &'a Value) -> &'a Value {
    match v.get("$ref").and_then(Value::as_str) {
        Some(r) => {
            let ptr = r.strip_prefix('#').expect("local ref");
            doc.pointer(ptr).unwrap_or_else(|| panic!("dangling {r}"))
        }
        None => v,
    }
}

fn all_refs(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            if let Some(Value::String(r)) = m.get("$ref") {
                out.push(r.clone());
            }
            m.values().for_each(|v| all_refs(v, out));
        }
        Value::Array(a) => a.iter().for_each(|v| all_refs(v, out)),
        _ => {}
    }
}

async fn document(gw: &Gw) -> (Value, String) {
    let r = gw.http.get(gw.url("/openapi.json")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "application/json");
    let text = r.text().await.unwrap();
    (
        serde_json::from_str(&text).expect("the document is JSON"),
        text,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_document_is_openapi_3_and_parses_back() {
    let gw = Gw::default().await;
    let (doc, text) = document(&gw).await;
    assert!(
        doc["openapi"].as_str().unwrap().starts_with("3."),
        "{}",
        doc["openapi"]
    );
    // Parsed back by an independent OpenAPI 3.1 reader (oas3), which finds the
    // same operations.
    let parsed = oas3::from_json(&text).expect("the document reads back as OpenAPI 3");
    let version = parsed
        .validate_version()
        .expect("a supported OpenAPI version");
    assert_eq!(version.major, 3);
    let read_back: BTreeSet<(String, String)> = parsed
        .operations()
        .map(|(path, method, _)| (method.as_str().to_lowercase(), path))
        .collect();
    assert_eq!(read_back, operations(&doc));
    // Served without a token, the same bytes every time, the same as the library's.
    assert_eq!(text, pulse_gateway::http::openapi::json());
    assert_eq!(document(&gw).await.1, text);
    // Every $ref resolves.
    let mut refs = Vec::new();
    all_refs(&doc, &mut refs);
    assert!(refs.len() > 20, "{refs:?}");
    for r in &refs {
        assert!(doc.pointer(&r[1..]).is_some(), "dangling {r}");
    }
    let schemes = &doc["components"]["securitySchemes"];
    assert_eq!(schemes["bearer"]["scheme"], "bearer");
    assert_eq!(schemes["metrics_token"]["scheme"], "bearer");
    assert_eq!(schemes["webhook_secret"]["in"], "header");
}

/// What the issue names, by hand: a route dropped from the router (and so from
/// the document) fails here.
const EXPECTED: &[(&str, &str)] = &[
    ("get", "/healthz"),
    ("get", "/metrics"),
    ("get", "/openapi.json"),
    ("get", "/v1/stream"),
    ("get", "/v1/snapshot"),
    ("get", "/v1/events"),
    ("post", "/v1/ingest"),
    ("get", "/v1/approvals/{id}/steps"),
    ("post", "/v1/approvals/{id}/approve"),
    ("post", "/v1/approvals/{id}/reject"),
    ("post", "/v1/approvals/{id}/edit"),
    ("post", "/v1/approvals/{id}/respond"),
    ("post", "/v1/tickets/{id}/move"),
    ("post", "/v1/agents/{id}/terminate"),
    ("post", "/v1/sources/langgraph/webhook"),
    ("post", "/v1/auth/login"),
    ("post", "/v1/auth/refresh"),
    ("post", "/v1/auth/logout"),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_router_serves_exactly_the_documented_operations() {
    let gw = Gw::default().await;
    let (doc, _) = document(&gw).await;
    let ops = operations(&doc);
    let expected: BTreeSet<(String, String)> = EXPECTED
        .iter()
        .map(|(m, p)| (m.to_string(), p.to_string()))
        .collect();
    assert_eq!(ops, expected);
    let token = viewer("acme");
    let paths: BTreeSet<&String> = ops.iter().map(|(_, p)| p).collect();
    for path in paths {
        let url = gw.url(&path.replace("{id}", "x"));
        for m in METHODS {
            let method = reqwest::Method::from_bytes(m.to_uppercase().as_bytes()).unwrap();
            let r = gw
                .http
                .request(method, &url)
                .bearer_auth(&token)
                .send()
                .await
                .unwrap();
            let status = r.status().as_u16();
            let body: Value = r.json().await.unwrap_or(Value::Null);
            let message = body["error"]["message"].as_str().unwrap_or("");
            if ops.contains(&(m.to_owned(), path.clone())) {
                // Served by its handler: not the router's fallbacks.
                assert!(
                    !message.starts_with("no endpoint") && status != 405,
                    "{m} {path}: {status} {body}"
                );
                let documented = &doc["paths"][path][m]["responses"];
                assert!(
                    documented.get(status.to_string()).is_some(),
                    "{m} {path}: {status} is not documented ({body})"
                );
            } else {
                assert_eq!(status, 405, "{m} {path} is served but not documented");
            }
        }
    }
    // A path outside the document is the fallback's 404.
    let r = gw.get(&token, "/v1/nothing").await;
    assert_eq!(r.status(), 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shared_rules_are_on_every_operation_they_apply_to() {
    let gw = Gw::default().await;
    let (doc, _) = document(&gw).await;
    for (m, path) in operations(&doc) {
        let op = &doc["paths"][&path][&m];
        let responses = op["responses"].as_object().unwrap();
        let bearer = op["security"]
            .as_array()
            .is_some_and(|s| s.iter().any(|r| r.get("bearer").is_some()));
        if bearer {
            for code in ["401", "429", "503"] {
                assert!(responses.contains_key(code), "{m} {path} lacks {code}");
            }
        }
        for (code, resp) in responses {
            let resp = resolve(&doc, resp);
            if code == "429" || code == "503" {
                assert!(
                    resp["headers"].get("Retry-After").is_some(),
                    "{m} {path} {code} without Retry-After"
                );
            }
            if code.starts_with('4') || code == "500" {
                let schema = &resp["content"]["application/json"]["schema"]["$ref"];
                assert_eq!(
                    schema, "#/components/schemas/ApiError",
                    "{m} {path} {code}: the one error body"
                );
            }
        }
        let has_key = op["parameters"].as_array().is_some_and(|ps| {
            ps.iter()
                .any(|p| p["name"] == "Idempotency-Key" && p["in"] == "header")
        });
        let mutation = path.starts_with("/v1/approvals/") && m == "post"
            || path.starts_with("/v1/tickets/")
            || path.starts_with("/v1/agents/");
        assert_eq!(has_key, mutation, "{m} {path}: Idempotency-Key");
        if mutation {
            assert!(responses.contains_key("422"), "{m} {path} lacks 422");
        }
    }
}
