//! REST endpoints: health, metrics, ingest, snapshot, events, mutations, isolation.

use pulse_gateway::Config;
use pulse_protocol::rest::{EventsPage, IngestResponse, MutationResponse, Snapshot};
use serde_json::{json, Value};

use crate::common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_and_metrics() {
    let gw = Gw::start(Config {
        metrics_token: Some("scraper-token".into()),
        ..config()
    })
    .await;
    let resp = gw.http.get(gw.url("/healthz")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.json::<Value>().await.unwrap(), json!({"status": "ok"}));
    gw.ingest(
        &publisher("acme"),
        ev("agent.upserted", json!({"id": "a1"})),
    )
    .await;
    gw.json(&viewer("acme"), "/v1/snapshot").await;
    // The per-tenant series need the metrics token (see tests/gateway/limits.rs).
    let resp = gw.get("scraper-token", "/metrics").await;
    assert_eq!(resp.status(), 200);
    assert!(resp.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain"));
    let text = resp.text().await.unwrap();
    for line in [
        "pulse_events_ingested_total 1",
        "pulse_snapshots_served_total 1",
        "pulse_connections_open 0",
        "pulse_stream_head_seq{tenant=\"acme\"} 1",
        "# TYPE pulse_frames_sent_total counter",
        "pulse_ingest_errors_total 0",
        "pulse_replays_total 0",
    ] {
        assert!(
            text.lines().any(|l| l == line),
            "missing {line:?} in\n{text}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ingest_snapshot_and_events() {
    let gw = Gw::default().await;
    let pubr = publisher("acme");
    let resp = gw
        .post(
            &pubr,
            "/v1/ingest",
            &json!({"type": "ticket.created", "data": {"id": 1, "title": "A"}, "id": "evt-1"}),
        )
        .await;
    assert_eq!(resp.status(), 200);
    let one: IngestResponse = resp.json().await.unwrap();
    assert_eq!(
        (one.stream.as_str(), one.seqs.as_slice()),
        ("acme", &[1][..])
    );
    let seqs = gw
        .ingest(
            &pubr,
            json!([
                {"tenant": "acme", "type": "ticket.moved", "data": {"id": 1, "state": "review"}},
                ev("approval.created", json!({"id": "ap1", "title": "Ship it"})),
                ev("stats.updated", json!({"scope": "tasks", "stats": {"open": 1}})),
            ]),
        )
        .await;
    assert_eq!(seqs, [2, 3, 4]);

    let snap: Snapshot =
        serde_json::from_value(gw.json(&viewer("acme"), "/v1/snapshot").await).unwrap();
    assert_eq!(
        (snap.stream.as_str(), snap.seq, snap.epoch.as_str()),
        ("acme", 4, one.epoch.as_str())
    );
    let ticket = snap.entities.iter().find(|e| e.id == "1").unwrap();
    assert_eq!(ticket.data["state"], "review");
    assert_eq!(ticket.data["title"], "A");
    assert_eq!(snap.entities.len(), 3);

    let page: EventsPage =
        serde_json::from_value(gw.json(&viewer("acme"), "/v1/events?since=0").await).unwrap();
    assert!(page.recovered);
    assert_eq!((page.head, page.epoch.as_str()), (4, one.epoch.as_str()));
    assert_eq!(
        page.events.iter().map(|e| e.seq).collect::<Vec<_>>(),
        [1, 2, 3, 4]
    );
    assert_eq!(page.events[0].id, "evt-1");
    assert_eq!(page.events[1].event_type, "ticket.moved");
    let path = format!("/v1/events?since=1&epoch={}&limit=2", one.epoch);
    let page: EventsPage = serde_json::from_value(gw.json(&viewer("acme"), &path).await).unwrap();
    assert_eq!(
        page.events.iter().map(|e| e.seq).collect::<Vec<_>>(),
        [2, 3]
    );
    let page: EventsPage = serde_json::from_value(
        gw.json(&viewer("acme"), "/v1/events?since=2&epoch=other")
            .await,
    )
    .unwrap();
    assert!(!page.recovered);
    assert!(page.events.is_empty());
    let page: EventsPage =
        serde_json::from_value(gw.json(&viewer("acme"), "/v1/events?since=9").await).unwrap();
    assert!(!page.recovered, "ahead of head");
    let page: EventsPage =
        serde_json::from_value(gw.json(&viewer("acme"), "/v1/events?since=4").await).unwrap();
    assert!(page.recovered && page.events.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_beyond_retention_are_not_recovered() {
    let gw = Gw::start(Config {
        retain: 3,
        ..config()
    })
    .await;
    for i in 0..6 {
        gw.ingest(
            &publisher("acme"),
            ev("agent.heartbeat", json!({"id": "a", "n": i})),
        )
        .await;
    }
    let page: EventsPage =
        serde_json::from_value(gw.json(&viewer("acme"), "/v1/events?since=1").await).unwrap();
    assert!(!page.recovered);
    assert!(page.events.is_empty());
    let page: EventsPage =
        serde_json::from_value(gw.json(&viewer("acme"), "/v1/events?since=3").await).unwrap();
    assert!(page.recovered);
    assert_eq!(
        page.events.iter().map(|e| e.seq).collect::<Vec<_>>(),
        [4, 5, 6]
    );
}

async fn status_code(resp: reqwest::Response) -> (u16, Value) {
    let s = resp.status().as_u16();
    (s, resp.json().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publishers_only_and_own_tenant_only() {
    let gw = Gw::default().await;
    let body = ev("agent.upserted", json!({"id": "a1"}));
    let (s, v) = status_code(gw.post(&viewer("acme"), "/v1/ingest", &body).await).await;
    assert_eq!((s, v["error"]["code"].as_str()), (403, Some("forbidden")));
    let other = json!({"tenant": "globex", "type": "agent.upserted", "data": {"id": "a1"}});
    let (s, v) = status_code(gw.post(&publisher("acme"), "/v1/ingest", &other).await).await;
    assert_eq!((s, v["error"]["code"].as_str()), (403, Some("forbidden")));
    let batch = json!([body, other]);
    let (s, _) = status_code(gw.post(&publisher("acme"), "/v1/ingest", &batch).await).await;
    assert_eq!(s, 403);
    let page = gw.json(&viewer("acme"), "/v1/events?since=0").await;
    assert_eq!(page["head"], 0, "nothing was written");
    let globex = gw.json(&viewer("globex"), "/v1/events?since=0").await;
    assert_eq!(globex["head"], 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_events_are_400_and_batches_all_or_nothing() {
    let gw = Gw::default().await;
    let p = publisher("acme");
    let batch = json!([
        ev("agent.upserted", json!({"id": "a1"})),
        ev("agent.exploded", json!({"id": "a1"})),
    ]);
    let (s, v) = status_code(gw.post(&p, "/v1/ingest", &batch).await).await;
    assert_eq!(s, 400);
    let msg = v["error"]["message"].as_str().unwrap();
    assert!(
        msg.contains("event 1") && msg.contains("agent.exploded"),
        "{msg}"
    );
    let batch = json!([
        ev("agent.upserted", json!({"id": "a1"})),
        ev("agent.upserted", json!({"id": "a2"})),
        ev("ticket.moved", json!({"id": "t", "state": 5})),
    ]);
    let (s, v) = status_code(gw.post(&p, "/v1/ingest", &batch).await).await;
    assert_eq!(s, 400);
    let msg = v["error"]["message"].as_str().unwrap();
    assert!(
        msg.contains("event 2") && msg.contains("data.state"),
        "{msg}"
    );
    for bad in [
        json!([]),
        json!(5),
        json!({"data": {}}),
        json!({"type": 1, "data": {}}),
        json!({"type": "agent.upserted", "data": []}),
        json!({"type": "agent.upserted", "data": {"id": "x"}, "id": ""}),
        json!([{"type": "approval.decided", "data": {"id": "x", "decision": "maybe"}}]),
    ] {
        let (s, v) = status_code(gw.post(&p, "/v1/ingest", &bad).await).await;
        assert_eq!(
            (s, v["error"]["code"].as_str()),
            (400, Some("bad_request")),
            "{bad}"
        );
    }
    assert_eq!(gw.json(&viewer("acme"), "/v1/snapshot").await["seq"], 0);
    let metrics = gw.metrics().await;
    assert!(metrics.contains("pulse_ingest_errors_total 9"), "{metrics}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutations() {
    let gw = Gw::default().await;
    let p = publisher("acme");
    gw.ingest(
        &p,
        json!([
            ev("approval.created", json!({"id": "ap1", "title": "Deploy"})),
            ev("approval.created", json!({"id": "ap2", "title": "Refund"})),
            ev(
                "ticket.created",
                json!({"id": "t1", "title": "Fix", "state": "todo"})
            ),
            ev("agent.upserted", json!({"id": "ag1", "status": "working"})),
        ]),
    )
    .await;
    let ann = viewer("acme");
    let resp = gw
        .post(
            &ann,
            "/v1/approvals/ap1/approve",
            &json!({"reason": "looks good"}),
        )
        .await;
    assert_eq!(resp.status(), 200);
    let m: MutationResponse = resp.json().await.unwrap();
    assert_eq!(m.seq, 5);
    assert_eq!(m.entity.id, "ap1");
    assert_eq!(m.entity.data["status"], "approved");
    assert_eq!(m.entity.data["decided_by"], "ann");
    assert_eq!(m.entity.data["reason"], "looks good");
    assert_eq!(m.entity.data["title"], "Deploy");

    let (s, v) = status_code(gw.post(&ann, "/v1/approvals/ap1/reject", &json!({})).await).await;
    assert_eq!((s, v["error"]["code"].as_str()), (409, Some("conflict")));
    assert_eq!(v["error"]["current"]["status"], "approved");
    assert_eq!(v["error"]["current"]["id"], "ap1");

    // The body is optional.
    let resp = gw
        .http
        .post(gw.url("/v1/approvals/ap2/reject"))
        .bearer_auth(&ann)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let m: MutationResponse = resp.json().await.unwrap();
    assert_eq!(m.entity.data["status"], "rejected");

    let (s, v) = status_code(
        gw.post(&ann, "/v1/approvals/nope/approve", &json!({}))
            .await,
    )
    .await;
    assert_eq!((s, v["error"]["code"].as_str()), (404, Some("not_found")));

    let resp = gw
        .post(
            &ann,
            "/v1/tickets/t1/move",
            &json!({"state": "in_progress"}),
        )
        .await;
    assert_eq!(resp.status(), 200);
    let m: MutationResponse = resp.json().await.unwrap();
    assert_eq!(
        (
            m.entity.data["state"].as_str(),
            m.entity.data["title"].as_str()
        ),
        (Some("in_progress"), Some("Fix"))
    );
    let (s, _) = status_code(gw.post(&ann, "/v1/tickets/t1/move", &json!({})).await).await;
    assert_eq!(s, 400, "state is required");
    let (s, _) = status_code(
        gw.post(&ann, "/v1/tickets/t9/move", &json!({"state": "done"}))
            .await,
    )
    .await;
    assert_eq!(s, 404);

    let resp = gw
        .post(
            &p,
            "/v1/agents/ag1/terminate",
            &json!({"reason": "runaway costs"}),
        )
        .await;
    assert_eq!(resp.status(), 200, "publishers may act too");
    let m: MutationResponse = resp.json().await.unwrap();
    assert_eq!(m.entity.data["status"], "terminated");
    let (s, v) = status_code(gw.post(&ann, "/v1/agents/ag1/terminate", &json!({})).await).await;
    assert_eq!(
        (s, v["error"]["current"]["status"].as_str()),
        (409, Some("terminated"))
    );

    let page = gw.json(&ann, "/v1/events?since=4").await;
    let types: Vec<&str> = page["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].as_str().unwrap())
        .collect();
    assert_eq!(
        types,
        [
            "approval.decided",
            "approval.decided",
            "ticket.moved",
            "agent.terminated"
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_approvals_decide_once() {
    let gw = Gw::default().await;
    gw.ingest(
        &publisher("acme"),
        ev("approval.created", json!({"id": "ap"})),
    )
    .await;
    let mut tasks = Vec::new();
    for i in 0..8 {
        let req = gw
            .http
            .post(gw.url(if i % 2 == 0 {
                "/v1/approvals/ap/approve"
            } else {
                "/v1/approvals/ap/reject"
            }))
            .bearer_auth(viewer("acme"));
        tasks.push(tokio::spawn(async move {
            req.send().await.unwrap().status().as_u16()
        }));
    }
    let mut codes = Vec::new();
    for t in tasks {
        codes.push(t.await.unwrap());
    }
    codes.sort();
    assert_eq!(codes, [200, 409, 409, 409, 409, 409, 409, 409]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenants_are_isolated() {
    let gw = Gw::default().await;
    gw.ingest(
        &publisher("acme"),
        json!([
            ev("approval.created", json!({"id": "secret-approval"})),
            ev("ticket.created", json!({"id": "secret-ticket"})),
            ev("agent.upserted", json!({"id": "secret-agent"})),
        ]),
    )
    .await;
    let b = viewer("globex");
    let snap = gw.json(&b, "/v1/snapshot").await;
    assert_eq!(
        (snap["stream"].as_str(), snap["seq"].as_u64()),
        (Some("globex"), Some(0))
    );
    assert_eq!(snap["entities"], json!([]));
    let page = gw.json(&b, "/v1/events?since=0").await;
    assert_eq!(
        (page["stream"].as_str(), page["events"].clone()),
        (Some("globex"), json!([]))
    );
    for path in [
        "/v1/approvals/secret-approval/approve",
        "/v1/tickets/secret-ticket/move",
        "/v1/agents/secret-agent/terminate",
    ] {
        let (s, _) = status_code(gw.post(&b, path, &json!({"state": "done"})).await).await;
        assert_eq!(s, 404, "{path}");
    }
    let a = gw.json(&viewer("acme"), "/v1/snapshot").await;
    assert_eq!(a["seq"], 3, "tenant A untouched");
    let approval = a["entities"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["id"] == "secret-approval")
        .unwrap()
        .clone();
    assert_eq!(approval["data"]["status"], "pending");
}

/// The same event id ingested twice is stored once; the second answer gives the
/// first seq, and a viewer's live feed sees it once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicate_ids_are_stored_once() {
    let gw = Gw::default().await;
    let pubr = publisher("acme");
    let (mut ws, _) = subscribe(&gw, &viewer("acme"), None, None).await;
    let add = |id: &str, what: &str| json!({"id": id, "type": "ticket.event_added", "data": {"id": "t1", "event": {"what": what}}});
    assert_eq!(
        gw.ingest(&pubr, json!([add("e1", "one"), add("e2", "two")]))
            .await,
        [1, 2]
    );
    assert_eq!(
        gw.ingest(
            &pubr,
            json!([add("e2", "two"), add("e3", "three"), add("e1", "one")])
        )
        .await,
        [2, 3, 1]
    );
    let live = events(&mut ws, 3).await;
    assert_eq!(live.iter().map(|e| e.seq).collect::<Vec<_>>(), [1, 2, 3]);
    let snap: Snapshot =
        serde_json::from_value(gw.json(&viewer("acme"), "/v1/snapshot").await).unwrap();
    assert_eq!(snap.seq, 3);
    assert_eq!(
        snap.entities[0].data["timeline"],
        json!([{"what": "one"}, {"what": "two"}, {"what": "three"}])
    );
    assert!(gw
        .metrics()
        .await
        .lines()
        .any(|l| l == "pulse_ingest_duplicates_total 2"));
}
