//! Micro-benchmarks of the client's hot paths: profile mapping (a server's event
//! to domain changes), store apply (one SQLite transaction per batch, and the
//! memory store), and the whole per-frame pipeline without the network (decode →
//! `changes_for` → apply a batch to SQLite), and the store's cost per event as the
//! cache grows (`store_scale`: 10,000 / 100,000 / 1,000,000 entities), and
//! the cost of large (~4 KB) entities (`store_large`: upserts, patches that
//! rewrite most of the entity, and one-field patches, in batches of 100 and 256).
//!
//! `cargo bench -p pulse-core --bench core`; `./scripts/bench.sh` puts the results
//! in `docs/benchmarks.md`.

use std::cell::Cell;
use std::collections::BTreeMap;
use std::hint::black_box;

use criterion::{criterion_group, BatchSize, BenchmarkId, Criterion, Throughput};
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

/// Entities in the cache for each `store_scale` point.
const SCALE: [u64; 3] = [10_000, 100_000, 1_000_000];

/// A heartbeat-like patch of one of `n` agents, spread over all of them (a
/// multiplicative hash of `seq`), so that the cache's size, not a hot set, is
/// what the figure shows: most reads miss the store's entity cache.
fn spread(seq: u64, n: u64) -> AppliedEvent {
    let agent = seq.wrapping_mul(0x9E37_79B9_7F4A_7C15) % n;
    let mut frame = heartbeat(seq);
    let status = ["idle", "busy", "waiting"][(seq % 3) as usize];
    frame.data = json!({"id": format!("agent-{agent}"), "status": status, "task": format!("tkt-{}", seq % 500)});
    let changes = changes_for(&frame.event_type, &frame.data, frame.ts).expect("valid");
    AppliedEvent { frame, changes }
}

/// Fill the cache at `path` with `n` agents in one transaction (SQL only, so
/// 1,000,000 rows take seconds and no memory).
fn fill(path: &std::path::Path, n: u64) {
    drop(SqliteStore::open(path).expect("open"));
    let mut conn = rusqlite::Connection::open(path).expect("open");
    let tx = conn.transaction().expect("tx");
    tx.execute(
        "WITH RECURSIVE i(n) AS (SELECT 0 UNION ALL SELECT n + 1 FROM i WHERE n + 1 < ?1)
         INSERT INTO entities (kind, id, data)
         SELECT 'agent', 'agent-' || n, json_object('id', 'agent-' || n, 'name', 'agent ' || n,
                'status', 'idle', 'task', 'tkt-' || (n % 500), 'model', 'gpt-x', 'host', 'runner-' || (n % 64))
         FROM i",
        [n],
    )
    .expect("fill");
    tx.commit().expect("commit");
}

/// `store_scale/sqlite_batch_100/N`: a batch of 100 patches to random agents of
/// a cache holding N entities.
fn store_scale(c: &mut Criterion) {
    let mut g = c.benchmark_group("store_scale");
    g.sample_size(20);
    let batch = 100u64;
    g.throughput(Throughput::Elements(batch));
    for n in SCALE {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join(format!("scale-{n}.db"));
        fill(&path, n);
        let mut store = SqliteStore::open(&path).expect("open");
        let next = Cell::new(1u64);
        g.bench_with_input(BenchmarkId::new("sqlite_batch_100", n), &n, |b, &n| {
            b.iter_batched(
                || {
                    let first = next.get();
                    next.set(first + batch);
                    (first..first + batch)
                        .map(|s| spread(s, n))
                        .collect::<Vec<_>>()
                },
                |events| store.apply("epoch", &events).expect("apply"),
                BatchSize::SmallInput,
            )
        });
        let counts = store.summary().expect("summary").counts;
        assert_eq!(
            counts.values().sum::<u64>(),
            n,
            "the patches changed, not added"
        );
    }
    g.finish();
}

/// Deterministic words, about `len` bytes of them.
fn words(seed: u64, len: usize) -> String {
    const W: [&str; 8] = [
        "deploy", "billing", "service", "rollback", "latency", "queue", "refund", "cluster",
    ];
    let mut s = String::with_capacity(len + 16);
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    while s.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        if !s.is_empty() {
            s.push(' ');
        }
        s.push_str(W[(x % 8) as usize]);
    }
    s
}

/// Tickets the large benches spread over (as the ingest benchmark's large stream).
const LARGE_TICKETS: u64 = 500;

/// A ~4 KB ticket as the ingest benchmark's large stream sends it (`ticket.created`
/// / `ticket.updated` with the whole ticket: a long description, labels, a pull
/// request with its checks).
fn large_ticket(seq: u64) -> Value {
    let state = ["backlog", "todo", "in_progress", "review", "done"][(seq % 5) as usize];
    json!({
        "id": format!("tkt-{}", seq % LARGE_TICKETS),
        "title": words(seq, 60),
        "state": state,
        "assignee": format!("agent-{}", seq % 200),
        "priority": seq % 4,
        "labels": ["backend", "billing", "customer-facing", format!("sprint-{}", seq % 12)],
        "description": words(seq, 2800),
        "pr": {
            "number": 4000 + seq,
            "url": format!("https://git.example/acme/billing/pull/{}", 4000 + seq),
            "state": "open",
            "checks": (0..10u64).map(|c| json!({
                "name": format!("ci/check-{c}"),
                "status": if (seq + c).is_multiple_of(7) { "failed" } else { "passed" },
                "duration_ms": 1000 + (seq * 31 + c * 17) % 90_000,
            })).collect::<Vec<_>>(),
        },
    })
}

/// An event of `event_type` with `data`, and its changes.
fn large_event(seq: u64, event_type: &str, data: Value) -> AppliedEvent {
    let frame = EventFrame {
        user: None,
        seq,
        id: format!("e-{seq}"),
        stream: "bench".into(),
        event_type: event_type.into(),
        ts: 1_767_224_700_000 + seq as i64,
        data,
    };
    let changes = changes_for(&frame.event_type, &frame.data, frame.ts).expect("valid");
    AppliedEvent { frame, changes }
}

/// `store_large/sqlite/{upsert,patch,move}_batch_N`: batches of events on ~4 KB
/// tickets (500 of them, all already in the cache): `upsert` is `ticket.created`
/// with the whole ticket, `patch` is `ticket.updated` with the whole ticket (most
/// of its text changes), `move` is `ticket.moved` (one field of a 4 KB ticket).
fn store_large(c: &mut Criterion) {
    store_large_in(c, "store_large");
}

fn store_large_in<M: criterion::measurement::Measurement>(c: &mut Criterion<M>, group: &str) {
    let mut g = c.benchmark_group(group);
    g.sample_size(30);
    type Make = fn(u64) -> AppliedEvent;
    let cases: [(&str, Make); 3] = [
        ("upsert", |s| {
            large_event(s, "ticket.created", large_ticket(s))
        }),
        ("patch", |s| {
            large_event(s, "ticket.updated", large_ticket(s))
        }),
        ("move", |s| {
            let state = ["backlog", "todo", "in_progress", "review", "done"][(s % 5) as usize];
            large_event(
                s,
                "ticket.moved",
                json!({"id": format!("tkt-{}", s % LARGE_TICKETS), "state": state}),
            )
        }),
    ];
    for batch in [100u64, 256] {
        g.throughput(Throughput::Elements(batch));
        for (name, make) in cases {
            let dir = tempfile::tempdir().expect("temp dir");
            let mut store =
                SqliteStore::open(dir.path().join(format!("{name}-{batch}.db"))).expect("open");
            // Every ticket exists and the log is full, as in a long-running stream.
            let mut seq = 1u64;
            while seq <= LARGE_TICKETS.max(pulse_core::store::EVENT_LOG_LIMIT as u64) {
                let events: Vec<_> = (seq..seq + 250)
                    .map(|s| large_event(s, "ticket.created", large_ticket(s)))
                    .collect();
                store.apply("epoch", &events).expect("fill");
                seq += 250;
            }
            let next = Cell::new(seq);
            g.bench_function(
                BenchmarkId::new("sqlite", format!("{name}_batch_{batch}")),
                |b| {
                    b.iter_batched(
                        || {
                            let first = next.get();
                            next.set(first + batch);
                            (first..first + batch).map(make).collect::<Vec<_>>()
                        },
                        |events| store.apply("epoch", &events).expect("apply"),
                        BatchSize::SmallInput,
                    )
                },
            );
        }
    }
    g.finish();
}

/// CPU time of the whole process (every thread: the checkpointer's work counts),
/// from `getrusage(RUSAGE_SELF)`: on a machine shared with other work, wall time
/// measures the others as much as the code, CPU time much less.
struct ProcessCpu;

#[repr(C)]
struct Timeval {
    sec: i64,
    usec: i64,
}

#[repr(C)]
struct Rusage {
    utime: Timeval,
    stime: Timeval,
    rest: [i64; 14],
}

extern "C" {
    fn getrusage(who: i32, usage: *mut Rusage) -> i32;
}

fn process_cpu() -> std::time::Duration {
    let mut u = std::mem::MaybeUninit::<Rusage>::zeroed();
    // SAFETY: `getrusage` fills the struct it is given (RUSAGE_SELF = 0); the
    // layout is Linux's `struct rusage` on 64-bit targets (two timevals, 14 longs).
    let u = unsafe {
        assert_eq!(getrusage(0, u.as_mut_ptr()), 0, "getrusage");
        u.assume_init()
    };
    let us = |t: &Timeval| t.sec as u64 * 1_000_000 + t.usec as u64;
    std::time::Duration::from_micros(us(&u.utime) + us(&u.stime))
}

impl criterion::measurement::Measurement for ProcessCpu {
    type Intermediate = std::time::Duration;
    type Value = std::time::Duration;
    fn start(&self) -> Self::Intermediate {
        process_cpu()
    }
    fn end(&self, i: Self::Intermediate) -> Self::Value {
        process_cpu().saturating_sub(i)
    }
    fn add(&self, v1: &Self::Value, v2: &Self::Value) -> Self::Value {
        *v1 + *v2
    }
    fn zero(&self) -> Self::Value {
        std::time::Duration::ZERO
    }
    fn to_f64(&self, v: &Self::Value) -> f64 {
        v.as_nanos() as f64
    }
    fn formatter(&self) -> &dyn criterion::measurement::ValueFormatter {
        // Shown as durations, as wall time is.
        static WALL: criterion::measurement::WallTime = criterion::measurement::WallTime;
        criterion::measurement::Measurement::formatter(&WALL)
    }
}

/// `store_large` again, timed in process CPU time (`store_large_cpu/…`); only
/// with `PULSE_BENCH_CPU=1` (for before/after comparisons on a busy machine).
fn store_large_cpu(c: &mut Criterion<ProcessCpu>) {
    store_large_in(c, "store_large_cpu");
    store_apply_sqlite_100(c, "store_apply_cpu");
}

/// `store_apply/sqlite/batch_100` under another measurement.
fn store_apply_sqlite_100<M: criterion::measurement::Measurement>(
    c: &mut Criterion<M>,
    group: &str,
) {
    let mut g = c.benchmark_group(group);
    let batch = 100u64;
    g.throughput(Throughput::Elements(batch));
    let dir = tempfile::tempdir().expect("temp dir");
    let mut sqlite = SqliteStore::open(dir.path().join("b.db")).expect("open");
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
    g.finish();
}

criterion_group!(
    benches,
    profile_mapping,
    store_apply,
    pipeline,
    store_scale,
    store_large
);

fn main() {
    benches();
    if std::env::var_os("PULSE_BENCH_CPU").is_some_and(|v| v == "1") {
        let mut c = Criterion::default()
            .with_measurement(ProcessCpu)
            .configure_from_args();
        store_large_cpu(&mut c);
    }
    Criterion::default().configure_from_args().final_summary();
}
