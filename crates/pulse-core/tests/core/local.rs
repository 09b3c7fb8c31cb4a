//! `SessionCx::commit_local`, the commit of every profile (Socket.IO, jsonws)
//! event: a session that commits random batches, with other writers changing
//! the cache in between, leaves the same cache and publishes the same events
//! as the plain reference (the whole summary read before every batch),
//! applied by hand to a memory store.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use pulse_core::auth::{Secret, StaticToken};
use pulse_core::protocol::domain::{Change, Entity, EntityKind};
use pulse_core::protocol::frame::EventFrame;
use pulse_core::session::{
    ConnectionState, Dialect, DialectFuture, End, LocalEvent, SessionConfig, SessionCx,
    SessionEvent, SessionHandle,
};
use pulse_core::store::suite::{delete, obj, patch, upsert, STREAM};
use pulse_core::store::{
    AppliedEvent, Cursor, MemoryStore, SqliteStore, Store, StoreHandle, EVENT_LOG_LIMIT,
};
use serde_json::{json, Value};

use crate::common::until_within;

/// xorshift64*: deterministic, so a failure names its seed and replays.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// What another writer does to the cache between two batches.
#[derive(Debug, Clone)]
enum Other {
    /// A snapshot of another stream (another server's or tenant's data).
    Snapshot {
        stream: String,
        entities: Vec<Entity>,
    },
    /// A snapshot of this stream, at `cursor`.
    Own {
        cursor: Cursor,
        entities: Vec<Entity>,
    },
    /// Events of another stream applied beside ours (only its cursor and log).
    Beside { stream: String, seq: u64 },
}

/// A write of the cache: a snapshot (stream, cursor, entities) or a batch.
enum Write {
    Replace(String, Cursor, Vec<Entity>),
    Apply(&'static str, Vec<AppliedEvent>),
}

impl Other {
    fn write(&self) -> Write {
        match self {
            Other::Snapshot { stream, entities } => Write::Replace(
                stream.clone(),
                Cursor {
                    epoch: "theirs".into(),
                    seq: 9,
                },
                entities.clone(),
            ),
            Other::Own { cursor, entities } => {
                Write::Replace(STREAM.into(), cursor.clone(), entities.clone())
            }
            Other::Beside { stream, seq } => Write::Apply(
                "theirs",
                vec![AppliedEvent {
                    frame: EventFrame {
                        user: None,
                        seq: *seq,
                        id: format!("x-{seq}"),
                        stream: stream.clone(),
                        event_type: "x".into(),
                        ts: 1,
                        data: Value::Null,
                    },
                    changes: Vec::new(),
                }],
            ),
        }
    }

    fn run(&self, store: &mut dyn Store) {
        match self.write() {
            Write::Replace(stream, c, e) => store.replace_all(&stream, &c, &e).unwrap(),
            Write::Apply(epoch, events) => {
                store.apply(epoch, &events).unwrap();
            }
        }
    }

    /// [`Other::run`] through a [`StoreHandle`], as another writer in this
    /// process holds the cache.
    fn run_on(&self, store: &StoreHandle) {
        match self.write() {
            Write::Replace(stream, c, e) => store.replace_all(&stream, &c, &e).unwrap(),
            Write::Apply(epoch, events) => {
                store.apply(epoch, &events).unwrap();
            }
        }
    }
}

#[derive(Debug, Clone)]
enum Step {
    Commit(Vec<LocalEvent>),
    Other(Other),
}

/// A dialect that plays `steps` on its one connection, then stops.
struct Scripted {
    steps: Mutex<Option<Vec<Step>>>,
}

impl Dialect for Scripted {
    fn run_connection<'a>(&'a self, cx: &'a mut SessionCx) -> DialectFuture<'a> {
        Box::pin(async move {
            let steps = self.steps.lock().unwrap().take().unwrap_or_default();
            for step in steps {
                match step {
                    Step::Commit(events) => {
                        if let Err(end) = cx.commit_local(STREAM, events) {
                            return end;
                        }
                    }
                    Step::Other(other) => other.run_on(cx.store()),
                }
            }
            End::Stop
        })
    }
}

/// The reference: what `commit_local` did before it read only the cursors (the
/// whole summary before every batch). Returns what it publishes.
fn reference_commit(
    store: &mut dyn Store,
    events: &[LocalEvent],
) -> Vec<(u64, String, Vec<Change>)> {
    let others = store.summary().unwrap().cursors.keys().any(|k| k != STREAM);
    if others {
        let fresh = Cursor {
            epoch: "local".into(),
            seq: 0,
        };
        store.replace_all(STREAM, &fresh, &[]).unwrap();
    }
    let start = match store.cursor(STREAM).unwrap() {
        Some(c) if c.epoch == "local" => c.seq,
        _ => 0,
    };
    let applied: Vec<AppliedEvent> = events
        .iter()
        .zip(start + 1..)
        .map(|(e, seq)| AppliedEvent {
            frame: EventFrame {
                user: None,
                seq,
                id: format!("local-{seq}"),
                stream: STREAM.into(),
                event_type: e.event_type.clone(),
                ts: e.ts,
                data: e.data.clone(),
            },
            changes: e.changes.clone(),
        })
        .collect();
    if applied.is_empty() {
        return Vec::new();
    }
    store.apply("local", &applied).unwrap();
    applied
        .into_iter()
        .map(|a| (a.frame.seq, a.frame.event_type, a.changes))
        .collect()
}

const KINDS: [EntityKind; 2] = [EntityKind::Agent, EntityKind::Ticket];

fn change(rng: &mut Rng) -> Change {
    let kind = KINDS[rng.below(2) as usize];
    let id = format!("e{}", rng.below(8));
    let field = ["status", "task", "n"][rng.below(3) as usize];
    let v = json!(rng.below(4));
    match rng.below(10) {
        0..=5 => patch(kind, &id, json!({ field: v })),
        6..=8 => upsert(kind, &id, json!({"id": id, field: v})),
        _ => delete(kind, &id),
    }
}

fn entities(rng: &mut Rng, tag: &str) -> Vec<Entity> {
    (0..rng.below(4))
        .map(|i| Entity {
            kind: KINDS[(i % 2) as usize],
            id: format!("e{i}"),
            data: obj(json!({"id": format!("e{i}"), "snap": tag})),
        })
        .collect()
}

fn script(rng: &mut Rng) -> Vec<Step> {
    let mut steps = Vec::new();
    let mut beside = 0;
    for round in 0..60u64 {
        let step = match rng.below(12) {
            0 => Other::Snapshot {
                stream: "other".into(),
                entities: entities(rng, "theirs"),
            },
            1 => Other::Own {
                cursor: Cursor {
                    epoch: ["local", "e1"][rng.below(2) as usize].into(),
                    seq: rng.below(50),
                },
                entities: entities(rng, "ours"),
            },
            2 => {
                beside += 1;
                Other::Beside {
                    stream: "beside".into(),
                    seq: beside,
                }
            }
            _ => {
                // Batches from empty to past the event log's limit.
                let n = match rng.below(10) {
                    0 => 0,
                    1 => EVENT_LOG_LIMIT as u64 + rng.below(50),
                    _ => 1 + rng.below(300),
                };
                let events = (0..n)
                    .map(|i| LocalEvent {
                        event_type: format!("ev.{}", rng.below(3)),
                        data: json!({"round": round, "i": i}),
                        ts: 1_000 + round as i64,
                        changes: (0..rng.below(3)).map(|_| change(rng)).collect(),
                    })
                    .collect();
                steps.push(Step::Commit(events));
                continue;
            }
        };
        steps.push(Step::Other(step));
    }
    steps
}

#[tokio::test]
async fn random_local_batches_give_the_reference_cache_and_events() {
    for seed in 1..=4u64 {
        let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
        let steps = script(&mut rng);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cache.db");
        let store = StoreHandle::new(SqliteStore::open(&path).unwrap());
        let mut config = SessionConfig::new("http://127.0.0.1:9/".parse().unwrap());
        config.dialect = Arc::new(Scripted {
            steps: Mutex::new(Some(steps.clone())),
        });
        let handle = SessionHandle::spawn(
            config,
            Arc::new(StaticToken::new(Secret::new("t"))),
            store.clone(),
        )
        .unwrap();
        // Subscribed before the session's task first runs (one-thread runtime).
        let mut rx = handle.subscribe();
        until_within(Duration::from_secs(60), &handle, "the script played", |s| {
            matches!(s.state, ConnectionState::Stopped)
        })
        .await;

        let mut reference = MemoryStore::new();
        let mut want = Vec::new();
        for step in &steps {
            match step {
                Step::Commit(events) => want.extend(reference_commit(&mut reference, events)),
                Step::Other(other) => other.run(&mut reference),
            }
        }
        let mut got = Vec::new();
        while let Ok(ev) = rx.try_recv() {
            if let SessionEvent::Applied { stream, events, .. } = ev {
                assert_eq!(stream, STREAM);
                got.extend(
                    events
                        .iter()
                        .map(|e| (e.seq, e.event_type.clone(), e.changes.clone())),
                );
            }
        }
        let what = format!("seed {seed}");
        assert!(!want.is_empty(), "{what}: the script commits something");
        assert_eq!(got.len(), want.len(), "{what}: published events");
        assert!(got == want, "{what}: published events differ");
        assert_eq!(store.all().unwrap(), reference.all().unwrap(), "{what}");
        assert_eq!(
            store.summary().unwrap().cursors,
            reference.summary().unwrap().cursors,
            "{what}"
        );
        assert_eq!(
            store.recent_events(usize::MAX).unwrap(),
            reference.recent_events(usize::MAX).unwrap(),
            "{what}: logs differ"
        );
        handle.stop().await;
    }
}
