//! Micro-benchmarks of the client's hot paths: profile mapping (a server's event
//! to domain changes), store apply (one SQLite transaction per batch, and the
//! memory store), and the whole per-frame pipeline without the network (decode →
//! `changes_for` → apply a batch to SQLite).
//!
//! `cargo bench -p pulse-core --bench core`; `./scripts/bench.sh` puts the results
//! in `docs/benchmarks.md`.

use std::cell::Cell;
use std::collections::BTreeMap;
use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BatchSize, BenchmarkId, Criterion, Throughput};
use pulse_core::profile::{Mapper, Profile};
use pulse_core::store::{AppliedEvent, MemoryStore, SqliteStore, Store};
use pulse_protocol::{changes_for, EventFrame, ServerFrame};
use serde_json::{json, Value};

fn mapper(name: &str) -> Mapper {
    let p = Profile::builtin(name).expect("built-in profile");
    let rules: Vec<_> = p.spec.event.iter().map(|r| r.get_ref().clone()).collect();
    let rest: BTreeMap<_, _> = p
        .spec
        .rest
        .iter()
        .map(|(k, v)| (k.clone(), v.get_ref().clone()))
        .collect();
    Mapper::new(&rules, &rest)
}

fn profile_mapping(c: &mut Criterion) {
    let mut g = c.benchmark_group("profile_map");
    let cases: [(&str, &str, Value); 3] = [
        (
            "agent-monitor",
            "agent:update",
            json!({"agentId": "a17", "status": "busy", "action": "status_change", "timestamp": 1767224700123i64}),
        ),
        (
            "nest-realtime",
            "approval.created",
            json!({"id": "apr-1042", "title": "Deploy billing-service v2.14.0", "status": "pending", "workspaceId": "w1"}),
        ),
        (
            "tasks-gateway",
            "task:status_changed",
            json!({"taskId": "42", "status": "review", "previousStatus": "in_progress"}),
        ),
    ];
    for (profile, event, payload) in cases {
        let m = mapper(profile);
        g.throughput(Throughput::Elements(1));
        g.bench_with_input(
            BenchmarkId::from_parameter(format!("{profile}/{event}")),
            &payload,
            |b, p| {
                b.iter(|| {
                    m.map_event(black_box(event), black_box(p), 1)
                        .expect("maps")
                })
            },
        );
    }
    g.finish();
}

fn heartbeat(seq: u64) -> EventFrame {
    EventFrame {
        user: None,
        seq,
        id: format!("e-{seq}"),
        stream: "bench".into(),
        event_type: "agent.status_changed".into(),
        ts: 1_767_224_700_000 + seq as i64,
        data: json!({"id": format!("agent-{}", seq % 200), "status": "busy", "task": format!("tkt-{}", seq % 500)}),
    }
}

fn applied(seq: u64) -> AppliedEvent {
    let frame = heartbeat(seq);
    let changes = changes_for(&frame.event_type, &frame.data, frame.ts).expect("valid");
    AppliedEvent { frame, changes }
}

fn store_apply(c: &mut Criterion) {
    let mut g = c.benchmark_group("store_apply");
    let dir = tempfile::tempdir().expect("temp dir");
    for batch in [1u64, 100] {
        g.throughput(Throughput::Elements(batch));
        let mut sqlite = SqliteStore::open(dir.path().join(format!("b{batch}.db"))).expect("open");
        let next = Cell::new(1u64);
        g.bench_function(BenchmarkId::new("sqlite", format!("batch_{batch}")), |b| {
            b.iter_batched(
                || {
                    let first = next.get();
                    next.set(first + batch);
                    (first..first + batch).map(applied).collect::<Vec<_>>()
                },
                |events| sqlite.apply("epoch", &events).expect("apply"),
                BatchSize::SmallInput,
            )
        });
        let mut memory = MemoryStore::new();
        let next = Cell::new(1u64);
        g.bench_function(BenchmarkId::new("memory", format!("batch_{batch}")), |b| {
            b.iter_batched(
                || {
                    let first = next.get();
                    next.set(first + batch);
                    (first..first + batch).map(applied).collect::<Vec<_>>()
                },
                |events| memory.apply("epoch", &events).expect("apply"),
                BatchSize::SmallInput,
            )
        });
    }
    g.finish();
}

/// The session's per-frame work without the socket: decode each text frame,
/// compute its changes, commit the batch to SQLite.
fn pipeline(c: &mut Criterion) {
    let mut g = c.benchmark_group("pipeline_decode_map_apply");
    let dir = tempfile::tempdir().expect("temp dir");
    let batch = 256u64;
    g.throughput(Throughput::Elements(batch));
    let mut store = SqliteStore::open(dir.path().join("pipeline.db")).expect("open");
    let next = Cell::new(1u64);
    g.bench_function("sqlite_batch_256", |b| {
        b.iter_batched(
            || {
                let first = next.get();
                next.set(first + batch);
                (first..first + batch)
                    .map(|s| heartbeat(s).encode())
                    .collect::<Vec<_>>()
            },
            |texts| {
                let events: Vec<AppliedEvent> = texts
                    .iter()
                    .map(|t| match ServerFrame::decode(t).expect("frame") {
                        ServerFrame::Event(frame) => {
                            let changes = changes_for(&frame.event_type, &frame.data, frame.ts)
                                .expect("valid");
                            AppliedEvent { frame, changes }
                        }
                        other => panic!("not an event: {other:?}"),
                    })
                    .collect();
                store.apply("epoch", &events).expect("apply")
            },
            BatchSize::SmallInput,
        )
    });
    g.finish();
}

criterion_group!(benches, profile_mapping, store_apply, pipeline);
criterion_main!(benches);
