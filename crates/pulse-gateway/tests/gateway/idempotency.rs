//! `Idempotency-Key` on mutations: a resend after a timeout gets the first answer
//! (not a conflict) and is applied once, also across a restart on SQLite and
//! across two nodes on Redis.

use std::time::Duration;

use pulse_gateway::http::idempotency::{scoped, CLAIM_WAIT};
use pulse_gateway::store::{LogStore, RedisStore};
use pulse_gateway::{Config, StoreConfig};
use pulse_protocol::auth::{Role, TokenUse};
use pulse_testkit::redis::RedisServer;
use serde_json::{json, Value};

use crate::common::*;

async fn approve(gw: &Gw, token: &str, id: &str, key: Option<&str>) -> reqwest::Response {
    let mut req = gw
        .http
        .post(gw.url(&format!("/v1/approvals/{id}/approve")))
        .bearer_auth(token)
        .json(&json!({"reason": "ok"}));
    if let Some(k) = key {
        req = req.header("Idempotency-Key", k);
    }
    req.send().await.unwrap()
}

/// How many `approval.decided` events the log holds.
async fn decided(gw: &Gw) -> usize {
    let page = gw.json(&viewer("acme"), "/v1/events?since=0").await;
    page["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["type"] == "approval.decided")
        .count()
}

async fn with_approval(gw: &Gw, id: &str) {
    gw.ingest(
        &publisher("acme"),
        ev("approval.created", json!({"id": id})),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resend_with_the_same_key_gets_the_first_answer_and_applies_once() {
    let gw = Gw::default().await;
    with_approval(&gw, "ap1").await;
    let token = viewer("acme");
    let first = approve(&gw, &token, "ap1", Some("act-1")).await;
    assert_eq!(first.status(), 200);
    assert!(first.headers().get("idempotent-replayed").is_none());
    let first: Value = first.json().await.unwrap();
    let again = approve(&gw, &token, "ap1", Some("act-1")).await;
    assert_eq!(again.status(), 200, "a resend is not a conflict");
    assert_eq!(again.headers()["idempotent-replayed"], "true");
    assert_eq!(again.json::<Value>().await.unwrap(), first);
    assert_eq!(decided(&gw).await, 1, "applied once");
    // Without a key the same resend is a conflict, as before.
    assert_eq!(approve(&gw, &token, "ap1", None).await.status(), 409);
    // Another user's same key is their own key: not a replay of ann's answer.
    let bob = token_with("acme", "bob", Role::Viewer, TokenUse::Access);
    let r = approve(&gw, &bob, "ap1", Some("act-1")).await;
    assert_eq!(r.status(), 409);
    // The key on another request is refused, never answered with the first one.
    with_approval(&gw, "ap2").await;
    let r = approve(&gw, &token, "ap2", Some("act-1")).await;
    assert_eq!(r.status(), 422);
    assert_eq!(decided(&gw).await, 1);
    // A kept conflict is the answer to its resends too.
    let c1 = approve(&gw, &bob, "ap1", Some("bob-2")).await;
    assert_eq!(c1.status(), 409);
    let c1: Value = c1.json().await.unwrap();
    let c2 = approve(&gw, &bob, "ap1", Some("bob-2")).await;
    assert_eq!(c2.headers()["idempotent-replayed"], "true");
    assert_eq!(c2.json::<Value>().await.unwrap(), c1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_keys_and_refusals_that_decide_nothing() {
    let gw = Gw::default().await;
    with_approval(&gw, "ap1").await;
    let token = viewer("acme");
    let long = "k".repeat(256);
    for bad in ["", "a b", long.as_str()] {
        let r = approve(&gw, &token, "ap1", Some(bad)).await;
        assert_eq!(r.status(), 400, "{bad:?}");
    }
    let r = gw
        .http
        .post(gw.url("/v1/approvals/ap1/approve"))
        .bearer_auth(&token)
        .header("Idempotency-Key", &b"\xff\xfe"[..])
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    // A 401 decided nothing and is not kept: the same key with a good token works.
    assert_eq!(
        approve(&gw, "garbage", "ap1", Some("k1")).await.status(),
        401
    );
    assert_eq!(approve(&gw, &token, "ap1", Some("k1")).await.status(), 200);
    assert_eq!(decided(&gw).await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_sends_with_one_key_apply_once() {
    let gw = Gw::default().await;
    with_approval(&gw, "ap1").await;
    let token = viewer("acme");
    let sends = (0..4).map(|_| approve(&gw, &token, "ap1", Some("same")));
    let answers = futures_util::future::join_all(sends).await;
    let mut bodies = Vec::new();
    for r in answers {
        assert_eq!(r.status(), 200);
        bodies.push(r.json::<Value>().await.unwrap());
    }
    assert!(bodies.windows(2).all(|w| w[0] == w[1]), "{bodies:?}");
    assert_eq!(decided(&gw).await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kept_answers_survive_a_restart_and_are_shared_by_redis_nodes() {
    let dir = tempfile::tempdir().unwrap();
    let sqlite = Config {
        store: StoreConfig::Sqlite(dir.path().join("gw.db")),
        ..config()
    };
    let token = viewer("acme");
    let gw = Gw::start(sqlite.clone()).await;
    with_approval(&gw, "ap1").await;
    assert_eq!(approve(&gw, &token, "ap1", Some("k")).await.status(), 200);
    gw.gw.shutdown().await;
    let gw = Gw::start(sqlite).await;
    let r = approve(&gw, &token, "ap1", Some("k")).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["idempotent-replayed"], "true");
    assert_eq!(decided(&gw).await, 1);
    gw.gw.shutdown().await;

    let redis = RedisServer::start();
    let node = |id: &str| Config {
        store: StoreConfig::Redis(redis.url()),
        node_id: Some(id.into()),
        ..config()
    };
    let (a, b) = (Gw::start(node("a")).await, Gw::start(node("b")).await);
    with_approval(&a, "ap9").await;
    assert_eq!(approve(&a, &token, "ap9", Some("k9")).await.status(), 200);
    let r = approve(&b, &token, "ap9", Some("k9")).await;
    assert_eq!(r.status(), 200, "the resend landed on another node");
    assert_eq!(r.headers()["idempotent-replayed"], "true");
}

/// Two gateway nodes on one real `redis-server`.
async fn two_nodes(redis: &RedisServer) -> (Gw, Gw) {
    let node = |id: &str| Config {
        store: StoreConfig::Redis(redis.url()),
        node_id: Some(id.into()),
        ..config()
    };
    (Gw::start(node("a")).await, Gw::start(node("b")).await)
}

async fn move_ticket(gw: &Gw, token: &str, id: &str, key: &str) -> reqwest::Response {
    gw.http
        .post(gw.url(&format!("/v1/tickets/{id}/move")))
        .bearer_auth(token)
        .header("Idempotency-Key", key)
        .json(&json!({"state": "done"}))
        .send()
        .await
        .unwrap()
}

async fn moved(gw: &Gw) -> usize {
    let page = gw.json(&viewer("acme"), "/v1/events?since=0").await;
    page["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["type"] == "ticket.moved")
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_key_sent_to_two_nodes_at_once_is_applied_once() {
    let redis = RedisServer::start();
    let (a, b) = two_nodes(&redis).await;
    let token = viewer("acme");
    const N: usize = 8;
    for i in 0..N {
        a.ingest(
            &publisher("acme"),
            ev(
                "ticket.created",
                json!({"id": format!("t{i}"), "title": "x"}),
            ),
        )
        .await;
    }
    // Each key at both nodes at the same moment. A move is not refused when it is
    // applied twice (unlike a decided approval), so only the key keeps it once.
    let sends = (0..N).flat_map(|i| {
        let (id, key) = (format!("t{i}"), format!("move-{i}"));
        [&a, &b].map(|gw| {
            let (id, key, token) = (id.clone(), key.clone(), token.clone());
            async move {
                let r = move_ticket(gw, &token, &id, &key).await;
                (i, r.status().as_u16(), r.json::<Value>().await.unwrap())
            }
        })
    });
    let answers = futures_util::future::join_all(sends).await;
    for i in 0..N {
        let mine: Vec<&(usize, u16, Value)> = answers.iter().filter(|a| a.0 == i).collect();
        assert_eq!(mine.len(), 2);
        assert!(mine.iter().all(|a| a.1 == 200), "{mine:?}");
        assert_eq!(mine[0].2, mine[1].2, "both nodes give the one answer");
    }
    assert_eq!(moved(&a).await, N, "each key applied once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_another_node_is_serving_is_not_applied_until_it_lets_go() {
    let redis = RedisServer::start();
    let (a, b) = two_nodes(&redis).await;
    let token = viewer("acme");
    a.ingest(
        &publisher("acme"),
        ev("ticket.created", json!({"id": "t1", "title": "x"})),
    )
    .await;
    // A third node (this test, on the same Redis) is serving ann's key `k`.
    let other = RedisStore::open(&redis.url(), 1000, None, "other").unwrap();
    let key = scoped("ann", "k");
    assert!(other
        .idempotent_claim("acme", &key, "other", Duration::from_secs(60))
        .unwrap());
    let r = move_ticket(&b, &token, "t1", "k").await;
    assert_eq!(r.status(), 503, "waited {CLAIM_WAIT:?} for the other node");
    assert_eq!(r.headers()["retry-after"], "1");
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "unavailable");
    assert_eq!(
        moved(&a).await,
        0,
        "nothing applied while another node held the key"
    );
    // That node went away without an answer: the key is served afresh, once.
    other.idempotent_release("acme", &key, "other").unwrap();
    let r = move_ticket(&b, &token, "t1", "k").await;
    assert_eq!(r.status(), 200);
    let first: Value = r.json().await.unwrap();
    let r = move_ticket(&a, &token, "t1", "k").await;
    assert_eq!(r.headers()["idempotent-replayed"], "true");
    assert_eq!(r.json::<Value>().await.unwrap(), first);
    assert_eq!(moved(&a).await, 1);
    // The claim was released after the answer was kept.
    assert!(other
        .idempotent_claim("acme", &key, "other", Duration::from_secs(60))
        .unwrap());
}
