//! Events addressed to one user (ingest `user`): only that user's sessions get
//! them, live and in replay and polling; every other session gets a
//! `pulse.skipped` placeholder with the same seq; snapshots and mutations see only
//! the caller's entities.

use pulse_protocol::auth::{Role, TokenUse};
use pulse_protocol::frame::{EventFrame, SKIPPED_TYPE};
use pulse_protocol::rest::{EventsPage, Snapshot};
use serde_json::{json, Value};

use crate::common::*;

fn user(sub: &str) -> String {
    token_with("acme", sub, Role::Viewer, TokenUse::Access)
}

fn to(user: &str, ty: &str, data: Value) -> Value {
    json!({"type": ty, "data": data, "user": user})
}

/// What a session of anyone but the addressee must receive for `e`.
fn assert_placeholder(e: &EventFrame, seq: u64) {
    assert_eq!(e.seq, seq);
    assert_eq!(e.event_type, SKIPPED_TYPE);
    assert_eq!(e.data, json!({}), "nothing of the event leaks");
    assert_eq!(e.user, None);
    assert!(!e.id.is_empty());
}

fn ids(snap: &Snapshot) -> Vec<&str> {
    snap.entities.iter().map(|e| e.id.as_str()).collect()
}

#[tokio::test]
async fn a_users_events_reach_only_that_user() {
    let gw = Gw::default().await;
    let (alice, bob, pubr) = (user("alice"), user("bob"), publisher("acme"));
    let (mut wa, _) = subscribe(&gw, &alice, None, None).await;
    let (mut wb, sub) = subscribe(&gw, &bob, None, None).await;
    let seqs = gw
        .ingest(
            &pubr,
            json!([
                ev("ticket.created", json!({"id": "t1"})),
                to(
                    "alice",
                    "approval.created",
                    json!({"id": "ap-a", "title": "for alice"})
                ),
                to("bob", "notification.new", json!({"id": "n-b"})),
            ]),
        )
        .await;
    assert_eq!(seqs, [1, 2, 3]);

    // Live: every session sees seqs 1, 2, 3 with no gap, each its own events.
    let a = events(&mut wa, 3).await;
    assert_eq!((a[0].seq, a[1].seq), (1, 2));
    assert_eq!(a[1].data["title"], "for alice");
    assert_eq!(a[1].user.as_deref(), Some("alice"));
    assert_placeholder(&a[2], 3);
    let b = events(&mut wb, 3).await;
    assert_eq!(b[0].event_type, "ticket.created");
    assert_placeholder(&b[1], 2);
    assert_eq!(
        (b[2].seq, b[2].event_type.as_str()),
        (3, "notification.new")
    );

    // Replay from a cursor, and polling: the same view.
    let (mut wb2, sub2) = subscribe(&gw, &bob, Some(0), Some(&sub.epoch)).await;
    assert!(sub2.recovered);
    let replayed = events(&mut wb2, 3).await;
    assert_eq!(replayed, b, "replay gives bob what live gave him");
    let page: EventsPage =
        serde_json::from_value(gw.json(&bob, "/v1/events?since=0").await).unwrap();
    assert_eq!(page.events, b, "polling too");

    // Snapshots: each user's own entities and the shared ones.
    let sa: Snapshot = serde_json::from_value(gw.json(&alice, "/v1/snapshot").await).unwrap();
    let sb: Snapshot = serde_json::from_value(gw.json(&bob, "/v1/snapshot").await).unwrap();
    assert_eq!((sa.seq, sb.seq), (3, 3));
    assert_eq!(ids(&sa), ["t1", "ap-a"]);
    assert_eq!(ids(&sb), ["t1", "n-b"]);
    let carol: Snapshot =
        serde_json::from_value(gw.json(&user("carol"), "/v1/snapshot").await).unwrap();
    assert_eq!(ids(&carol), ["t1"]);
    let text = serde_json::to_string(&sa).unwrap();
    assert!(!text.contains("pulse_user"), "no store field leaks: {text}");

    // Bob cannot act on alice's approval: to him it does not exist.
    let resp = gw
        .post(&bob, "/v1/approvals/ap-a/approve", &json!({}))
        .await;
    assert_eq!(resp.status(), 404);
    // Alice's own decision is hers alone.
    let resp = gw
        .post(&alice, "/v1/approvals/ap-a/approve", &json!({}))
        .await;
    assert_eq!(resp.status(), 200);
    let decided = events(&mut wa, 1).await;
    assert_eq!(decided[0].user.as_deref(), Some("alice"));
    assert_eq!(decided[0].event_type, "approval.decided");
    assert_placeholder(&events(&mut wb, 1).await[0], 4);
    assert_placeholder(&events(&mut wb2, 1).await[0], 4);
}

#[tokio::test]
async fn addressed_ingest_garbage_is_refused_and_nothing_is_stored() {
    let gw = Gw::default().await;
    let pubr = publisher("acme");
    gw.ingest(&pubr, ev("ticket.created", json!({"id": "t1"})))
        .await;
    let cases = [
        (
            json!({"type": "ticket.created", "data": {"id": "t2"}, "user": 5}),
            400,
            "expected a string",
        ),
        (
            json!({"type": "ticket.created", "data": {"id": "t2"}, "user": ""}),
            400,
            "`user`",
        ),
        (
            json!({"type": "ticket.updated", "data": {"id": "t1", "x": 1}, "user": "alice"}),
            409,
            "every user",
        ),
        (
            json!([
                {"type": "ticket.created", "data": {"id": "t3"}},
                {"type": "ticket.updated", "data": {"id": "t3"}, "user": "alice"},
            ]),
            409,
            "addressed to one user",
        ),
        (
            json!({"type": SKIPPED_TYPE, "data": {}}),
            400,
            "unknown event type",
        ),
    ];
    for (body, status, needle) in cases {
        let resp = gw.post(&pubr, "/v1/ingest", &body).await;
        assert_eq!(resp.status(), status, "{body}");
        let v: Value = resp.json().await.unwrap();
        let msg = v["error"]["message"].as_str().unwrap_or_default();
        assert!(msg.contains(needle), "{body}: {v}");
    }
    let snap = gw.json(&viewer("acme"), "/v1/snapshot").await;
    assert_eq!(snap["seq"], 1, "nothing stored: {snap}");
}
