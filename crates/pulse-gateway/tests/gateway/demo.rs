//! `--demo`: seeded state and a live stream that produces new approvals.

use std::time::Duration;

use pulse_gateway::{Config, DemoConfig};
use pulse_protocol::domain::EntityKind;
use pulse_protocol::rest::Snapshot;
use pulse_protocol::ServerFrame;
use serde_json::json;

use crate::common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_seeds_and_produces_an_approval_within_a_minute() {
    // Default speed: the first new approval is due within 10 s of start.
    let gw = Gw::start(Config {
        demo: Some(DemoConfig::default()),
        ..config()
    })
    .await;
    let v = viewer("demo");
    let snap: Snapshot = wait_for_some("the demo seed", SOON, || async {
        let s: Snapshot = serde_json::from_value(gw.json(&v, "/v1/snapshot").await).unwrap();
        (s.seq > 60).then_some(s)
    })
    .await;
    let count = |k: EntityKind| snap.entities.iter().filter(|e| e.kind == k).count();
    assert_eq!(count(EntityKind::Agent), 12);
    assert!(count(EntityKind::Ticket) >= 40);
    assert!(count(EntityKind::Conversation) >= 8);
    assert_eq!(count(EntityKind::Stats), 4);
    let pending = snap
        .entities
        .iter()
        .filter(|e| e.kind == EntityKind::Approval && e.data["status"] == "pending")
        .count();
    assert!(pending >= 3);
    assert!(snap
        .entities
        .iter()
        .any(|e| e.kind == EntityKind::Conversation && e.data["status"] == "escalated"));
    for state in ["backlog", "todo", "in_progress", "review", "done"] {
        assert!(
            snap.entities
                .iter()
                .any(|e| e.kind == EntityKind::Ticket && e.data["state"] == state),
            "{state}"
        );
    }

    let (mut ws, sub) = subscribe(&gw, &v, Some(snap.seq), Some(&snap.epoch)).await;
    assert!(sub.recovered);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let mut seen = 0u64;
    let mut last = snap.seq;
    let approval = loop {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no approval within a minute ({seen} events)"
        );
        if let ServerFrame::Event(e) = next_frame(&mut ws).await {
            assert_eq!(e.seq, last + 1, "demo events are gap-free");
            last = e.seq;
            seen += 1;
            if e.event_type == "approval.created" {
                break e;
            }
        }
    };
    assert_eq!(approval.data["status"], "pending");
    assert!(approval.data["title"]
        .as_str()
        .is_some_and(|t| !t.is_empty()));
    // It is a real approval: a viewer can approve it.
    let id = approval.data["id"].as_str().unwrap();
    let resp = gw
        .post(&v, &format!("/v1/approvals/{id}/approve"), &json!({}))
        .await;
    assert_eq!(resp.status(), 200);
}
