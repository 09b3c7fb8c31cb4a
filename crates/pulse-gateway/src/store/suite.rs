//! One test suite for every [`LogStore`] backend, instantiated with [`store_suite!`].
//!
//! Each backend supplies `open(dir, retain)` (opening the same `dir` again is a
//! restart) and whether it is durable across restarts.

use std::path::Path;
use std::sync::Arc;

use pulse_protocol::domain::EntityKind;
use serde_json::{json, Value};

use super::{LogStore, NewEvent};

pub(crate) type Open = fn(&Path, u64) -> Box<dyn LogStore>;

fn ev(ty: &str, data: Value) -> NewEvent {
    NewEvent::new(ty, data, None, 1_700_000_000_000).expect("valid test event")
}

pub(crate) fn empty_stream(open: Open, dir: &Path) {
    let s = open(dir, 10);
    let a = s.info("acme").unwrap();
    assert_eq!((a.head, a.first), (0, 1));
    assert!(!a.epoch.is_empty());
    assert_eq!(s.info("acme").unwrap().epoch, a.epoch, "epoch is stable");
    let snap = s.snapshot("acme").unwrap();
    assert_eq!((snap.seq, snap.entities.len()), (0, 0));
    assert_eq!(snap.epoch, a.epoch);
    let r = s.read("acme", 0, 10).unwrap();
    assert!(r.events.is_empty());
    assert!(r.info.can_replay_after(0));
    assert!(!r.info.can_replay_after(1), "ahead");
}

pub(crate) fn append_and_read(open: Open, dir: &Path) {
    let s = open(dir, 100);
    let frames = s
        .append(
            "acme",
            (0..5)
                .map(|i| ev("ticket.created", json!({"id": format!("t{i}"), "n": i})))
                .collect(),
        )
        .unwrap();
    assert_eq!(
        frames.iter().map(|f| f.seq).collect::<Vec<_>>(),
        [1, 2, 3, 4, 5]
    );
    assert!(frames
        .iter()
        .all(|f| f.stream == "acme" && f.ts == 1_700_000_000_000));
    let more = s
        .append("acme", vec![ev("ticket.deleted", json!({"id": "t0"}))])
        .unwrap();
    assert_eq!(more[0].seq, 6);
    let all = s.read("acme", 0, 100).unwrap();
    assert_eq!(all.events.len(), 6);
    assert_eq!(all.events[..5], frames[..]);
    assert_eq!(all.info.head, 6);
    let page = s.read("acme", 2, 2).unwrap();
    assert_eq!(
        page.events.iter().map(|f| f.seq).collect::<Vec<_>>(),
        [3, 4]
    );
    assert_eq!(page.events[0].data, json!({"id": "t2", "n": 2}));
    assert!(s.read("acme", 6, 10).unwrap().events.is_empty());
    assert!(s.read("acme", 60, 10).unwrap().events.is_empty());
}

pub(crate) fn materialises_entities(open: Open, dir: &Path) {
    let s = open(dir, 100);
    s.append(
        "acme",
        vec![
            ev("approval.created", json!({"id": "a1", "title": "Deploy"})),
            ev(
                "approval.decided",
                json!({"id": "a1", "decision": "approved", "decided_by": "ann"}),
            ),
            ev("ticket.created", json!({"id": 7, "title": "Fix"})),
            ev(
                "ticket.event_added",
                json!({"id": 7, "event": {"what": "started"}}),
            ),
            ev(
                "ticket.event_added",
                json!({"id": 7, "event": {"what": "pushed"}}),
            ),
            ev(
                "chat.message",
                json!({"id": "m1", "conversation_id": "c1", "text": "hi"}),
            ),
            ev("notification.new", json!({"id": "n1", "title": "x"})),
            ev("notification.new", json!({"id": "n2", "title": "y"})),
            ev("notification.read", json!({"id": "n1"})),
            ev(
                "stats.updated",
                json!({"scope": "tasks", "stats": {"open": 3}}),
            ),
        ],
    )
    .unwrap();
    s.append("acme", vec![ev("approval.deleted", json!({"id": "a1"}))])
        .unwrap();
    assert!(s
        .entity("acme", EntityKind::Approval, "a1")
        .unwrap()
        .is_none());
    let t = s.entity("acme", EntityKind::Ticket, "7").unwrap().unwrap();
    assert_eq!(t["state"], "todo");
    assert_eq!(
        t["timeline"],
        json!([{"what": "started"}, {"what": "pushed"}])
    );
    let n1 = s
        .entity("acme", EntityKind::Notification, "n1")
        .unwrap()
        .unwrap();
    assert_eq!(n1["read"], true);
    let snap = s.snapshot("acme").unwrap();
    assert_eq!(snap.seq, 11);
    let keys: Vec<(EntityKind, &str)> = snap
        .entities
        .iter()
        .map(|e| (e.kind, e.id.as_str()))
        .collect();
    assert_eq!(
        keys,
        [
            (EntityKind::Ticket, "7"),
            (EntityKind::Conversation, "c1"),
            (EntityKind::Message, "m1"),
            (EntityKind::Notification, "n1"),
            (EntityKind::Notification, "n2"),
            (EntityKind::Stats, "tasks"),
        ]
    );
    assert_eq!(snap.entities[5].data["open"], 3);
}

pub(crate) fn retention(open: Open, dir: &Path) {
    let s = open(dir, 3);
    for i in 0..5 {
        s.append(
            "acme",
            vec![ev("agent.heartbeat", json!({"id": "ag", "n": i}))],
        )
        .unwrap();
    }
    let r = s.read("acme", 0, 100).unwrap();
    assert_eq!((r.info.head, r.info.first), (5, 3));
    assert_eq!(
        r.events.iter().map(|f| f.seq).collect::<Vec<_>>(),
        [3, 4, 5]
    );
    assert!(!r.info.can_replay_after(0));
    assert!(!r.info.can_replay_after(1));
    assert!(r.info.can_replay_after(2));
    assert!(r.info.can_replay_after(5));
    // A batch larger than the retention keeps only its newest events.
    s.append(
        "acme",
        (0..4)
            .map(|i| ev("agent.heartbeat", json!({"id": "ag", "n": i})))
            .collect(),
    )
    .unwrap();
    let r = s.read("acme", 0, 100).unwrap();
    assert_eq!(
        r.events.iter().map(|f| f.seq).collect::<Vec<_>>(),
        [7, 8, 9]
    );
    assert_eq!(
        s.snapshot("acme").unwrap().seq,
        9,
        "state keeps every event"
    );
}

pub(crate) fn tenants_are_isolated(open: Open, dir: &Path) {
    let s = open(dir, 100);
    s.append(
        "a",
        vec![ev("agent.upserted", json!({"id": "x", "name": "A"}))],
    )
    .unwrap();
    s.append(
        "b",
        vec![ev("agent.upserted", json!({"id": "x", "name": "B"}))],
    )
    .unwrap();
    s.append("b", vec![ev("agent.upserted", json!({"id": "y"}))])
        .unwrap();
    let a = s.snapshot("a").unwrap();
    assert_eq!((a.seq, a.entities.len()), (1, 1));
    assert_eq!(a.entities[0].data["name"], "A");
    assert_eq!(s.read("b", 0, 10).unwrap().events.len(), 2);
    assert!(s
        .read("a", 0, 10)
        .unwrap()
        .events
        .iter()
        .all(|e| e.stream == "a"));
    assert_ne!(s.info("a").unwrap().epoch, s.info("b").unwrap().epoch);
    let names: Vec<String> = s.streams().unwrap().into_iter().map(|i| i.stream).collect();
    assert_eq!(names, ["a", "b"]);
}

pub(crate) fn restart(open: Open, dir: &Path, durable: bool) {
    let (epoch, snap) = {
        let s = open(dir, 100);
        s.append(
            "acme",
            vec![
                ev("ticket.created", json!({"id": "t1"})),
                ev("ticket.moved", json!({"id": "t1", "state": "review"})),
            ],
        )
        .unwrap();
        (s.info("acme").unwrap().epoch, s.snapshot("acme").unwrap())
    };
    let s = open(dir, 100);
    let info = s.info("acme").unwrap();
    if durable {
        assert_eq!((info.epoch.as_str(), info.head), (epoch.as_str(), 2));
        assert_eq!(s.snapshot("acme").unwrap(), snap);
        let f = s
            .append("acme", vec![ev("ticket.deleted", json!({"id": "t1"}))])
            .unwrap();
        assert_eq!(f[0].seq, 3, "seqs continue");
    } else {
        assert_ne!(info.epoch, epoch);
        assert_eq!(info.head, 0);
    }
}

/// Snapshots taken while another thread appends always match their seq.
pub(crate) fn snapshots_are_consistent(open: Open, dir: &Path) {
    let s: Arc<dyn LogStore> = Arc::from(open(dir, 1000));
    let writer = {
        let s = s.clone();
        std::thread::spawn(move || {
            for i in 0..200 {
                let batch = (0..3)
                    .map(|j| ev("ticket.created", json!({"id": format!("t{i}-{j}")})))
                    .collect();
                s.append("acme", batch).unwrap();
            }
        })
    };
    loop {
        let done = writer.is_finished();
        let snap = s.snapshot("acme").unwrap();
        assert_eq!(snap.entities.len() as u64, snap.seq, "one ticket per event");
        assert_eq!(snap.seq % 3, 0, "batches are atomic");
        let r = s.read("acme", 0, 10_000).unwrap();
        assert_eq!(r.events.len() as u64, r.info.head);
        if done {
            break;
        }
    }
    writer.join().unwrap();
    assert_eq!(s.info("acme").unwrap().head, 600);
}

/// Instantiate the suite for one backend: `store_suite!(name, open_fn, durable)`.
macro_rules! store_suite {
    ($name:ident, $open:ident, $durable:expr) => {
        mod $name {
            fn dir() -> tempfile::TempDir {
                tempfile::tempdir().expect("temp dir")
            }
            #[test]
            fn empty_stream() {
                super::empty_stream(super::$open, dir().path());
            }
            #[test]
            fn append_and_read() {
                super::append_and_read(super::$open, dir().path());
            }
            #[test]
            fn materialises_entities() {
                super::materialises_entities(super::$open, dir().path());
            }
            #[test]
            fn retention() {
                super::retention(super::$open, dir().path());
            }
            #[test]
            fn tenants_are_isolated() {
                super::tenants_are_isolated(super::$open, dir().path());
            }
            #[test]
            fn restart() {
                super::restart(super::$open, dir().path(), $durable);
            }
            #[test]
            fn snapshots_are_consistent() {
                super::snapshots_are_consistent(super::$open, dir().path());
            }
        }
    };
}

fn open_memory(_: &Path, retain: u64) -> Box<dyn LogStore> {
    Box::new(super::MemoryStore::new(retain))
}

fn open_sqlite(dir: &Path, retain: u64) -> Box<dyn LogStore> {
    Box::new(super::SqliteStore::open(&dir.join("gateway.db"), retain).expect("open sqlite"))
}

store_suite!(memory, open_memory, false);
store_suite!(sqlite, open_sqlite, true);
