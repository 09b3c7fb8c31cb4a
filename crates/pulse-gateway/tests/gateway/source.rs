//! `--source redis-stream://…`: a platform's own Redis Stream (seed 002's
//! `BaseEvent`s) read in a consumer group by the gateway binary, SIGKILLed
//! mid-stream and replaced by another node that claims what it left pending.

use std::collections::HashSet;
use std::time::Duration;

use pulse_protocol::rest::{EventsPage, Snapshot};
use pulse_testkit::redis::RedisServer;
use serde_json::{json, Value};

use crate::common::*;

const MAPPING: &str = r#"
[entry]
format = "json"
field = "event"

[source]
group = "pulse"
claim_idle_ms = 300

# Here `userId` is who asked, not whom the approval is for: everyone sees it.
[[event]]
source = "approval.requested"
type = "approval.created"
audience = "tenant"
[event.fields]
id = "data.approvalId"
title = "data.title"

[[event]]
source = "agent.*"
type = "agent.upserted"
"#;

fn base_event(i: u64) -> Value {
    if i.is_multiple_of(2) {
        json!({"id": format!("evt-{i}"), "type": "approval.requested", "source": "api",
               "timestamp": "2025-12-13T10:00:00.000Z", "correlationId": format!("corr-{i}"),
               "tenantId": "acme", "userId": "u1", "version": "1",
               "data": {"approvalId": format!("a{i}"), "title": format!("Deploy {i}")}})
    } else {
        json!({"id": format!("evt-{i}"), "type": "agent.status.changed", "source": "agents",
               "timestamp": "2025-12-13T10:00:00.000Z", "correlationId": format!("corr-{i}"),
               "tenantId": "acme", "version": "1",
               "data": {"id": format!("ag{}", i % 10), "status": "busy", "n": i}})
    }
}

fn xadd(c: &mut redis::Connection, field: &str, value: &str) {
    let _: String = redis::cmd("XADD")
        .arg("events:main")
        .arg("*")
        .arg(field)
        .arg(value)
        .query(c)
        .unwrap();
}

async fn snapshot(http: &reqwest::Client, url: &str) -> Option<Snapshot> {
    http.get(format!("{url}/v1/snapshot"))
        .bearer_auth(viewer("acme"))
        .send()
        .await
        .ok()?
        .json()
        .await
        .ok()
}

fn pending(c: &mut redis::Connection) -> u64 {
    let summary: Vec<redis::Value> = redis::cmd("XPENDING")
        .arg("events:main")
        .arg("pulse")
        .query(c)
        .unwrap();
    redis::from_redis_value_ref(&summary[0]).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consumer_group_source_killed_mid_stream_and_replaced() {
    let redis = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let mapping = dir.path().join("mapping.toml");
    std::fs::write(&mapping, MAPPING).unwrap();
    let mut c = redis::Client::open(redis.url())
        .unwrap()
        .get_connection()
        .unwrap();
    // The platform publishes 2,000 events, one of them twice (a retry), plus an
    // event no rule maps and two entries that are garbage.
    for i in 0..2000 {
        xadd(&mut c, "event", &base_event(i).to_string());
        if i == 700 {
            xadd(&mut c, "event", &base_event(3).to_string());
            xadd(&mut c, "event", "{not json");
            xadd(
                &mut c,
                "event",
                &json!({"id": "x", "type": "agent.up", "data": {"id": "a"}}).to_string(),
            );
            xadd(
                &mut c,
                "event",
                &json!({"id": "b1", "type": "billing.paid", "tenantId": "acme"}).to_string(),
            );
        }
    }
    let source = format!("redis-stream://127.0.0.1:{}/events:main", redis.port());
    let store = redis.url();
    let args = |node: &'static str| {
        vec![
            "serve".to_owned(),
            "--addr".into(),
            "127.0.0.1:0".into(),
            "--store".into(),
            store.clone(),
            "--node-id".into(),
            node.into(),
            "--source".into(),
            source.clone(),
            "--mapping".into(),
            mapping.display().to_string(),
        ]
    };
    let http = reqwest::Client::new();
    let a_args = args("n1");
    let a = Proc::spawn(&a_args.iter().map(String::as_str).collect::<Vec<_>>()).await;
    let at = wait_for_some("node 1 consumed some events", SOON, || async {
        snapshot(&http, &a.url)
            .await
            .filter(|s| s.seq >= 100)
            .map(|s| s.seq)
    })
    .await;
    a.kill().await;
    assert!(at < 2000, "killed mid-stream (at seq {at})");
    let b_args = args("n2");
    let b = Proc::spawn(&b_args.iter().map(String::as_str).collect::<Vec<_>>()).await;
    let snap = wait_for_some(
        "node 2 consumed the rest",
        Duration::from_secs(60),
        || async { snapshot(&http, &b.url).await.filter(|s| s.seq >= 2000) },
    )
    .await;
    let url = redis.url();
    wait_for_some("nothing pending in the group", SOON, || {
        let url = url.clone();
        async move {
            let mut c = redis::Client::open(url).ok()?.get_connection().ok()?;
            (pending(&mut c) == 0).then_some(())
        }
    })
    .await;
    assert_eq!(snap.seq, 2000, "each source event stored once");
    let page: EventsPage = http
        .get(format!("{}/v1/events?since=0&limit=10000", b.url))
        .bearer_auth(viewer("acme"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let ids: HashSet<&str> = page.events.iter().map(|e| e.id.as_str()).collect();
    assert_eq!((page.events.len(), ids.len()), (2000, 2000));
    assert!(ids.contains("evt-0") && ids.contains("evt-1999"));
    let a0 = snap
        .entities
        .iter()
        .find(|e| e.id == "a0")
        .expect("approval a0");
    assert_eq!(a0.data["title"], "Deploy 0");
    assert_eq!(a0.data["correlation_id"], "corr-0", "correlation id kept");
    let dead: u64 = redis::cmd("XLEN")
        .arg("events:main:pulse-dead")
        .query(&mut c)
        .unwrap();
    assert!(dead >= 2, "garbage went to the dead-letter stream");
    let metrics = http
        .get(format!("{}/metrics", b.url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(metrics.contains("pulse_source_acked_total"), "{metrics}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_mapping_or_source_url_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let mapping = dir.path().join("m.toml");
    std::fs::write(
        &mapping,
        "[[event]]\nsource = \"x\"\ntype = \"not.a.type\"\n",
    )
    .unwrap();
    let m = mapping.display().to_string();
    for args in [
        vec![
            "--source",
            "redis-stream://127.0.0.1:1/k",
            "--mapping",
            m.as_str(),
        ],
        vec!["--source", "redis://127.0.0.1:1/k", "--mapping", m.as_str()],
        vec!["--source", "redis-stream://127.0.0.1:1/k"],
        vec![
            "--source",
            "redis-stream://127.0.0.1:1/k",
            "--mapping",
            "/no/such/file.toml",
        ],
    ] {
        let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_pulse-gateway"))
            .args(["serve", "--addr", "127.0.0.1:0", "--jwt-secret", SECRET])
            .args(&args)
            .output()
            .await
            .unwrap();
        assert_eq!(
            out.status.code(),
            Some(2),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.stdout.is_empty());
    }
}

/// With the default `audience = "user"`, a source event with a `userId` (seed 002's
/// `emitToUser`) is that user's alone; one the store refuses for its audience goes
/// to the dead-letter stream and the rest of its batch is kept.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn source_events_with_a_user_id_reach_only_that_user() {
    let redis = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let mapping = dir.path().join("mapping.toml");
    std::fs::write(
        &mapping,
        "[source]\ngroup = \"pulse\"\n\n[[event]]\nsource = \"approval.*\"\ntype = \"approval.created\"\n",
    )
    .unwrap();
    let mut c = redis::Client::open(redis.url())
        .unwrap()
        .get_connection()
        .unwrap();
    let base = |id: &str, approval: &str, user: Option<&str>| {
        let mut v = json!({"id": id, "type": "approval.requested", "source": "api",
            "timestamp": "2025-12-13T10:00:00.000Z", "tenantId": "acme", "version": "1",
            "data": {"id": approval, "title": id}});
        if let Some(u) = user {
            v["userId"] = json!(u);
        }
        v.to_string()
    };
    xadd(&mut c, "event", &base("e1", "shared", None));
    xadd(&mut c, "event", &base("e2", "ap-alice", Some("alice")));
    // Bob's event about alice's approval: refused, dead-lettered.
    xadd(&mut c, "event", &base("e3", "ap-alice", Some("bob")));
    xadd(&mut c, "event", &base("e4", "ap-bob", Some("bob")));
    let source = format!("redis-stream://127.0.0.1:{}/events:main", redis.port());
    let m = mapping.display().to_string();
    let gw = Proc::spawn(&[
        "serve",
        "--addr",
        "127.0.0.1:0",
        "--source",
        &source,
        "--mapping",
        &m,
    ])
    .await;
    let http = reqwest::Client::new();
    let as_user = |sub: &'static str| {
        let http = http.clone();
        let url = gw.url.clone();
        async move {
            http.get(format!("{url}/v1/snapshot"))
                .bearer_auth(token_with(
                    "acme",
                    sub,
                    pulse_protocol::auth::Role::Viewer,
                    pulse_protocol::auth::TokenUse::Access,
                ))
                .send()
                .await
                .ok()?
                .json::<Snapshot>()
                .await
                .ok()
        }
    };
    let alice = wait_for_some("three events stored", SOON, || async {
        as_user("alice").await.filter(|s| s.seq == 3)
    })
    .await;
    wait_for_some("nothing pending in the group", SOON, || {
        let url = redis.url();
        async move {
            let mut c = redis::Client::open(url).ok()?.get_connection().ok()?;
            (pending(&mut c) == 0).then_some(())
        }
    })
    .await;
    let bob = as_user("bob").await.unwrap();
    let ids = |s: &Snapshot| s.entities.iter().map(|e| e.id.clone()).collect::<Vec<_>>();
    assert_eq!(ids(&alice), ["ap-alice", "shared"]);
    assert_eq!(ids(&bob), ["ap-bob", "shared"]);
    let title = &alice.entities[0].data["title"];
    assert_eq!(title, "e2", "bob's event did not change alice's approval");
    let dead: Vec<redis::Value> = redis::cmd("XRANGE")
        .arg("events:main:pulse-dead")
        .arg("-")
        .arg("+")
        .query(&mut c)
        .unwrap();
    assert_eq!(dead.len(), 1, "bob's event went to the dead-letter stream");
    let text = format!("{dead:?}");
    assert!(text.contains("another user"), "{text}");
    gw.kill().await;
}
