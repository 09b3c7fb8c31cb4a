//! Micro-benchmarks of the protocol's hot paths: decoding and encoding event
//! frames, and `changes_for` (what an event means for the entities).
//!
//! `cargo bench -p pulse-protocol --bench protocol`; `./scripts/bench.sh` puts the
//! results in `docs/benchmarks.md`.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use pulse_protocol::{changes_for, EventFrame, ServerFrame};
use serde_json::{json, Value};
use std::hint::black_box;

fn words(n: usize) -> String {
    const W: &[&str] = &[
        "deploy", "billing", "retry", "agent", "queue", "refund", "timeout",
    ];
    (0..n)
        .map(|i| W[(i * 7 + 3) % W.len()])
        .collect::<Vec<_>>()
        .join(" ")
}

/// (name, type, data) of representative events: a heartbeat (the most common
/// event), a new approval, a chat message, and a ~4 KB ticket update.
fn events() -> Vec<(&'static str, &'static str, Value)> {
    vec![
        (
            "heartbeat",
            "agent.heartbeat",
            json!({"id": "agent-17", "ts": 1767224700123i64, "cpu": 0.42, "memory_mb": 640, "task": "tkt-310"}),
        ),
        (
            "approval",
            "approval.created",
            json!({"id": "apr-1042", "title": "Deploy billing-service v2.14.0", "status": "pending", "requested_by": "agent-17", "risk": "medium"}),
        ),
        (
            "chat",
            "chat.message",
            json!({"id": "msg-9", "conversation_id": "conv-3", "author": "customer", "text": words(10)}),
        ),
        (
            "ticket_4k",
            "ticket.updated",
            json!({
                "id": "tkt-310", "title": words(8), "state": "review", "assignee": "agent-17",
                "labels": ["backend", "billing", "customer-facing", "sprint-7"],
                "description": words(400),
                "pr": {"number": 4821, "state": "open", "checks": (0..10).map(|c| json!({"name": format!("ci/{c}"), "status": "passed", "duration_ms": 1000 + c})).collect::<Vec<_>>()},
            }),
        ),
    ]
}

fn frame(ty: &str, data: &Value) -> EventFrame {
    EventFrame {
        user: None,
        seq: 1058,
        id: "b5403cbd-9273-4db1-ba1d-3a3d4f1232a2".into(),
        stream: "acme".into(),
        event_type: ty.into(),
        ts: 1_767_224_712_345,
        data: data.clone(),
    }
}

fn decode(c: &mut Criterion) {
    let mut g = c.benchmark_group("frame_decode");
    for (name, ty, data) in events() {
        let text = frame(ty, &data).encode();
        g.throughput(Throughput::Elements(1));
        g.bench_with_input(
            BenchmarkId::from_parameter(format!("{name}_{}B", text.len())),
            &text,
            |b, t| b.iter(|| ServerFrame::decode(black_box(t)).expect("valid frame")),
        );
    }
    g.finish();
}

fn encode(c: &mut Criterion) {
    let mut g = c.benchmark_group("frame_encode");
    for (name, ty, data) in events() {
        let f = frame(ty, &data);
        g.throughput(Throughput::Elements(1));
        g.bench_with_input(BenchmarkId::from_parameter(name), &f, |b, f| {
            b.iter(|| black_box(f).encode())
        });
    }
    g.finish();
}

fn changes(c: &mut Criterion) {
    let mut g = c.benchmark_group("changes_for");
    for (name, ty, data) in events() {
        g.throughput(Throughput::Elements(1));
        g.bench_with_input(BenchmarkId::from_parameter(name), &data, |b, d| {
            b.iter(|| {
                changes_for(black_box(ty), black_box(d), 1_767_224_712_345).expect("valid event")
            })
        });
    }
    g.finish();
}

criterion_group!(benches, decode, encode, changes);
criterion_main!(benches);
