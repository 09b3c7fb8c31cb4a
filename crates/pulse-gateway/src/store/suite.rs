//! One test suite for every [`LogStore`] backend, instantiated with [`store_suite!`].
//!
//! Each backend supplies a [`Backend`] fixture whose `open(retain)` opens the store
//! (opening again from the same fixture is a restart), and whether it is durable
//! across restarts. The Redis fixture starts a real `redis-server` per test (and
//! fails, saying how to install it, when there is none).

use std::sync::Arc;

use pulse_protocol::domain::EntityKind;
use serde_json::{json, Value};

use super::{
    strip, view, LogStore, NewEvent, RefreshSession, Rotation, StoreError, AUDIENCE_FIELD,
};

/// One backend's test fixture.
pub(crate) trait Backend {
    /// Open the store (again: a restart) keeping `retain` events per tenant.
    fn open(&self, retain: u64) -> Box<dyn LogStore>;
    /// Whether two `open`s are two nodes on one store (Redis), not two stores.
    fn shared(&self) -> bool {
        false
    }
}

fn ev_id(ty: &str, data: Value, id: &str) -> NewEvent {
    NewEvent::new(ty, data, Some(id.to_owned()), 1_700_000_000_000).expect("valid test event")
}

fn ev(ty: &str, data: Value) -> NewEvent {
    NewEvent::new(ty, data, None, 1_700_000_000_000).expect("valid test event")
}

pub(crate) fn empty_stream(b: &dyn Backend) {
    let s = b.open(10);
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

pub(crate) fn append_and_read(b: &dyn Backend) {
    let s = b.open(100);
    let frames = s
        .append(
            "acme",
            (0..5)
                .map(|i| ev("ticket.created", json!({"id": format!("t{i}"), "n": i})))
                .collect(),
        )
        .unwrap()
        .frames;
    assert_eq!(
        frames.iter().map(|f| f.seq).collect::<Vec<_>>(),
        [1, 2, 3, 4, 5]
    );
    assert!(frames
        .iter()
        .all(|f| f.stream == "acme" && f.ts == 1_700_000_000_000));
    let more = s
        .append("acme", vec![ev("ticket.deleted", json!({"id": "t0"}))])
        .unwrap()
        .frames;
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

pub(crate) fn materialises_entities(b: &dyn Backend) {
    let s = b.open(100);
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

pub(crate) fn retention(b: &dyn Backend) {
    let s = b.open(3);
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

pub(crate) fn tenants_are_isolated(b: &dyn Backend) {
    let s = b.open(100);
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

pub(crate) fn restart(b: &dyn Backend, durable: bool) {
    let (epoch, snap) = {
        let s = b.open(100);
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
    let s = b.open(100);
    let info = s.info("acme").unwrap();
    if durable {
        assert_eq!((info.epoch.as_str(), info.head), (epoch.as_str(), 2));
        assert_eq!(s.snapshot("acme").unwrap(), snap);
        let f = s
            .append("acme", vec![ev("ticket.deleted", json!({"id": "t1"}))])
            .unwrap()
            .frames;
        assert_eq!(f[0].seq, 3, "seqs continue");
    } else {
        assert_ne!(info.epoch, epoch);
        assert_eq!(info.head, 0);
    }
}

/// Snapshots taken while another thread appends always match their seq.
pub(crate) fn snapshots_are_consistent(b: &dyn Backend) {
    let s: Arc<dyn LogStore> = Arc::from(b.open(1000));
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

/// An id already in the log is stored once; its seq is the first one, its changes
/// are applied once; once trimmed, the id is new again.
pub(crate) fn duplicate_ids(b: &dyn Backend) {
    let s = b.open(3);
    let add = |id: &str, what: &str| {
        ev_id(
            "ticket.event_added",
            json!({"id": 7, "event": {"what": what}}),
            id,
        )
    };
    s.append("acme", vec![ev("ticket.created", json!({"id": 7}))])
        .unwrap();
    let first = s.append("acme", vec![add("e1", "one")]).unwrap();
    assert_eq!((first.seqs.as_slice(), first.frames.len()), (&[2][..], 1));
    let again = s
        .append(
            "acme",
            vec![add("e1", "one"), add("e2", "two"), add("e2", "two")],
        )
        .unwrap();
    assert_eq!(again.seqs, [2, 3, 3], "duplicates answer the first seq");
    assert_eq!(
        again.frames.iter().map(|f| f.seq).collect::<Vec<_>>(),
        [3],
        "only the new event is stored"
    );
    let only_dups = s.append("acme", vec![add("e2", "two")]).unwrap();
    assert_eq!(
        (only_dups.seqs.as_slice(), only_dups.frames.len()),
        (&[3][..], 0)
    );
    let r = s.read("acme", 0, 10).unwrap();
    assert_eq!(r.info.head, 3);
    assert_eq!(r.events.iter().filter(|e| e.id == "e2").count(), 1);
    let t = s.entity("acme", EntityKind::Ticket, "7").unwrap().unwrap();
    assert_eq!(t["timeline"], json!([{"what": "one"}, {"what": "two"}]));
    // Push e1 out of the retention (3 events): it is new again.
    s.append("acme", vec![add("e3", "three"), add("e4", "four")])
        .unwrap();
    assert_eq!(s.info("acme").unwrap().first, 3);
    let late = s.append("acme", vec![add("e1", "late")]).unwrap();
    assert_eq!(late.seqs, [6]);
    // Ids are per tenant.
    let other = s.append(
        "globex",
        vec![ev_id("agent.upserted", json!({"id": "a"}), "e2")],
    );
    assert_eq!(other.unwrap().seqs, [1]);
}

/// A group commit ([`LogStore::append_group`]) gives every batch what appending
/// the batches one after another gives, and leaves the same log and entities: a
/// refused batch is rolled back alone, duplicates answer their first seq (also
/// across batches of the group), and an id an earlier batch of the group pushed
/// out of the retention is new again.
pub(crate) fn group_commit(b: &dyn Backend) {
    let s = b.open(3);
    let add = |id: &str, what: &str| {
        ev_id(
            "ticket.event_added",
            json!({"id": 7, "event": {"what": what}}),
            id,
        )
    };
    let batches = || {
        vec![
            vec![add("e1", "one")],
            // Refused whole (a user's event on a shared ticket): the agent before
            // it must not be stored either.
            vec![
                ev_id("agent.upserted", json!({"id": "a-x"}), "x1"),
                add("x2", "alice's").for_user(Some("alice".into())),
            ],
            vec![add("e1", "one"), add("e2", "two")],
            vec![add("e3", "three"), add("e4", "four")],
            vec![add("e1", "late")],
        ]
    };
    type Outcome = Result<(Vec<u64>, Vec<(u64, String, Option<String>)>), String>;
    let outcome = |r: Result<super::Appended, StoreError>| -> Outcome {
        match r {
            Ok(a) => Ok((
                a.seqs,
                a.frames
                    .into_iter()
                    .map(|f| (f.seq, f.id, f.user))
                    .collect(),
            )),
            Err(StoreError::Audience(_)) => Err("audience".into()),
            Err(e) => Err(format!("unexpected: {e}")),
        }
    };
    let mut results = Vec::new();
    for tenant in ["one-by-one", "grouped"] {
        s.append(
            tenant,
            vec![ev_id("ticket.created", json!({"id": 7}), "p1")],
        )
        .unwrap();
        let got: Vec<Outcome> = if tenant == "grouped" {
            s.append_group(tenant, batches())
                .unwrap()
                .into_iter()
                .map(outcome)
                .collect()
        } else {
            batches()
                .into_iter()
                .map(|events| outcome(s.append(tenant, events)))
                .collect()
        };
        let read = s.read(tenant, 0, 100).unwrap();
        let log: Vec<(u64, String)> = read.events.into_iter().map(|e| (e.seq, e.id)).collect();
        let snap = s.snapshot(tenant).unwrap();
        let entities: Vec<_> = snap
            .entities
            .into_iter()
            .map(|e| (e.kind, e.id, e.data))
            .collect();
        results.push((got, (read.info.head, read.info.first), log, entities));
    }
    let (one, grouped) = (&results[0], &results[1]);
    assert_eq!(grouped, one);
    // What both gave, spelled out.
    assert_eq!(grouped.0[0].as_ref().unwrap().0, [2]);
    assert_eq!(grouped.0[1], Err("audience".into()));
    assert_eq!(grouped.0[2].as_ref().unwrap().0, [2, 3]);
    assert_eq!(grouped.0[3].as_ref().unwrap().0, [4, 5]);
    assert_eq!(
        grouped.0[4].as_ref().unwrap().0,
        [6],
        "pushed out, so new again"
    );
    assert_eq!(grouped.1, (6, 4));
    assert!(s
        .entity("grouped", EntityKind::Agent, "a-x")
        .unwrap()
        .is_none());
    let t = s
        .entity("grouped", EntityKind::Ticket, "7")
        .unwrap()
        .unwrap();
    assert_eq!(
        t["timeline"],
        json!([{"what": "one"}, {"what": "two"}, {"what": "three"}, {"what": "four"}, {"what": "late"}])
    );
    // A group of nothing but refused or duplicate batches changes nothing.
    let head = s.info("grouped").unwrap().head;
    let r = s
        .append_group(
            "grouped",
            vec![
                vec![add("e4", "four")],
                vec![add("y", "no").for_user(Some("bob".into()))],
            ],
        )
        .unwrap();
    assert_eq!(r[0].as_ref().unwrap().seqs, [5]);
    assert!(matches!(r[1], Err(StoreError::Audience(_))));
    assert_eq!(s.info("grouped").unwrap().head, head);
}

/// Writers appending to one tenant at once (two nodes on a shared store) never
/// assign one seq twice or skip one, and every event's changes land once.
pub(crate) fn concurrent_appends(b: &dyn Backend) {
    let first: Arc<dyn LogStore> = Arc::from(b.open(10_000));
    let second: Arc<dyn LogStore> = if b.shared() {
        Arc::from(b.open(10_000))
    } else {
        first.clone()
    };
    first
        .append("acme", vec![ev("ticket.created", json!({"id": 1}))])
        .unwrap();
    let writers: Vec<_> = (0..4)
        .map(|w| {
            let s = if w % 2 == 0 {
                first.clone()
            } else {
                second.clone()
            };
            std::thread::spawn(move || {
                let mut seqs = Vec::new();
                for i in 0..40 {
                    let batch = vec![
                        ev_id(
                            "ticket.created",
                            json!({"id": format!("t{w}-{i}")}),
                            &format!("w{w}-{i}-a"),
                        ),
                        ev_id(
                            "ticket.event_added",
                            json!({"id": 1, "event": {"w": w, "i": i}}),
                            &format!("w{w}-{i}-b"),
                        ),
                    ];
                    seqs.extend(s.append("acme", batch).unwrap().seqs);
                }
                seqs
            })
        })
        .collect();
    let mut all: Vec<u64> = writers
        .into_iter()
        .flat_map(|w| w.join().unwrap())
        .collect();
    all.sort_unstable();
    assert_eq!(
        all,
        (2..=321).collect::<Vec<u64>>(),
        "every seq once, none skipped"
    );
    let r = second.read("acme", 0, 10_000).unwrap();
    assert_eq!(
        r.events.iter().map(|e| e.seq).collect::<Vec<_>>(),
        (1..=321).collect::<Vec<u64>>()
    );
    let t = first
        .entity("acme", EntityKind::Ticket, "1")
        .unwrap()
        .unwrap();
    assert_eq!(t["timeline"].as_array().map(Vec::len), Some(160));
    let snap = second.snapshot("acme").unwrap();
    assert_eq!((snap.seq, snap.entities.len()), (321, 161));
}

/// Events addressed to one user: the frames say whose they are, entities they
/// create are in that user's view only, later events about those entities follow
/// them, and a batch that would move an entity between audiences writes nothing.
pub(crate) fn addressed_to_one_user(b: &dyn Backend) {
    let s = b.open(100);
    let to = |e: NewEvent, u: &str| e.for_user(Some(u.to_owned()));
    let out = s
        .append(
            "acme",
            vec![
                ev("ticket.created", json!({"id": "t1", "title": "shared"})),
                to(ev("approval.created", json!({"id": "ap-a"})), "alice"),
                to(ev("notification.new", json!({"id": "n-b"})), "bob"),
            ],
        )
        .unwrap();
    let users: Vec<_> = out.frames.iter().map(|f| f.user.as_deref()).collect();
    assert_eq!(users, [None, Some("alice"), Some("bob")]);
    let read = s.read("acme", 0, 10).unwrap();
    assert_eq!(read.events, out.frames, "the log keeps whose each event is");

    let ids = |viewer: Option<&str>| {
        let snap = view(s.snapshot("acme").unwrap(), viewer);
        assert_eq!(snap.seq, s.info("acme").unwrap().head);
        for e in &snap.entities {
            assert!(
                !e.data.contains_key(AUDIENCE_FIELD),
                "the audience never leaves the store: {e:?}"
            );
        }
        snap.entities.into_iter().map(|e| e.id).collect::<Vec<_>>()
    };
    assert_eq!(ids(Some("alice")), ["t1", "ap-a"]);
    assert_eq!(ids(Some("bob")), ["t1", "n-b"]);
    assert_eq!(ids(Some("carol")), ["t1"]);
    assert_eq!(
        ids(None),
        ["t1", "ap-a", "n-b"],
        "the gateway itself sees all"
    );

    // An event for everyone about alice's approval (her own decision) is hers.
    let decided = s
        .append(
            "acme",
            vec![ev(
                "approval.decided",
                json!({"id": "ap-a", "decision": "approved"}),
            )],
        )
        .unwrap();
    assert_eq!(decided.frames[0].user.as_deref(), Some("alice"));
    let ap = s
        .entity("acme", EntityKind::Approval, "ap-a")
        .unwrap()
        .unwrap();
    assert_eq!(strip(ap.clone(), Some("bob")), None);
    let mine = strip(ap, Some("alice")).unwrap();
    assert_eq!(mine["status"], "approved");
    assert!(!mine.contains_key(AUDIENCE_FIELD));

    // Moving an entity between audiences is refused, the whole batch with it.
    let refused = [
        vec![to(
            ev("approval.updated", json!({"id": "ap-a", "x": 1})),
            "bob",
        )],
        vec![to(
            ev("ticket.updated", json!({"id": "t1", "x": 1})),
            "alice",
        )],
        vec![
            ev("ticket.created", json!({"id": "t2"})),
            to(ev("ticket.updated", json!({"id": "t2", "x": 1})), "alice"),
        ],
    ];
    for batch in refused {
        let err = s.append("acme", batch.clone()).unwrap_err();
        assert!(matches!(err, StoreError::Audience(_)), "{batch:?}: {err}");
        assert_eq!(
            s.info("acme").unwrap().head,
            4,
            "nothing written: {batch:?}"
        );
    }
    assert_eq!(ids(Some("carol")), ["t1"]);

    // Deleted, an id is free again: created for everyone it is everyone's.
    s.append("acme", vec![ev("approval.deleted", json!({"id": "ap-a"}))])
        .unwrap();
    let again = s
        .append("acme", vec![ev("approval.created", json!({"id": "ap-a"}))])
        .unwrap();
    assert_eq!(again.frames[0].user, None);
    let mut bob = ids(Some("bob"));
    bob.sort();
    assert_eq!(bob, ["ap-a", "n-b", "t1"]);
}

/// Refresh-token families: rotation, reuse revokes, revoke, expiry, one winner
/// among racing rotations, and (durable backends) across a restart; on a shared
/// store another node sees the same families.
pub(crate) fn refresh_sessions(b: &dyn Backend, durable: bool) {
    let now = crate::auth::now_secs();
    let session = |family: &str, current: &str, expires: u64| RefreshSession {
        family: family.into(),
        current: current.into(),
        sub: "ann".into(),
        tenant: "acme".into(),
        expires,
    };
    let s = b.open(10);
    s.session_start(&session("f1", "t1", now + 600)).unwrap();
    assert_eq!(
        s.session_rotate("f1", "t1", "t2", now + 600, now).unwrap(),
        Rotation::Rotated
    );
    assert_eq!(
        s.session_rotate("f1", "t2", "t3", now + 600, now).unwrap(),
        Rotation::Rotated
    );
    // t2 again: reuse; the family is gone, so even the current t3 is refused.
    assert_eq!(
        s.session_rotate("f1", "t2", "t4", now + 600, now).unwrap(),
        Rotation::Reused
    );
    assert_eq!(
        s.session_rotate("f1", "t3", "t5", now + 600, now).unwrap(),
        Rotation::Unknown
    );
    assert_eq!(
        s.session_rotate("nope", "x", "y", now + 600, now).unwrap(),
        Rotation::Unknown
    );
    // Revoke (logout).
    s.session_start(&session("f2", "a1", now + 600)).unwrap();
    assert!(s.session_revoke("f2").unwrap());
    assert!(!s.session_revoke("f2").unwrap(), "twice is once");
    assert_eq!(
        s.session_rotate("f2", "a1", "a2", now + 600, now).unwrap(),
        Rotation::Unknown
    );
    // Families are separate.
    s.session_start(&session("f3", "b1", now + 600)).unwrap();
    s.session_start(&session("f4", "c1", now + 600)).unwrap();
    assert_eq!(
        s.session_rotate("f3", "zz", "b2", now + 600, now).unwrap(),
        Rotation::Reused
    );
    assert_eq!(
        s.session_rotate("f4", "c1", "c2", now + 600, now).unwrap(),
        Rotation::Rotated
    );
    // An expired family is unknown.
    s.session_start(&session("f5", "d1", now + 2)).unwrap();
    assert_eq!(
        s.session_rotate("f5", "d1", "d2", now + 600, now + 3)
            .unwrap(),
        Rotation::Unknown
    );
    // Racing rotations of one token: exactly one wins.
    let s: Arc<dyn LogStore> = Arc::from(s);
    s.session_start(&session("race", "r0", now + 600)).unwrap();
    let outcomes: Vec<Rotation> = (0..4)
        .map(|i| {
            let s = s.clone();
            std::thread::spawn(move || {
                s.session_rotate("race", "r0", &format!("r{}", i + 1), now + 600, now)
                    .unwrap()
            })
        })
        .collect::<Vec<_>>()
        .into_iter()
        .map(|t| t.join().unwrap())
        .collect();
    let won = outcomes.iter().filter(|r| **r == Rotation::Rotated).count();
    assert_eq!(won, 1, "{outcomes:?}");
    // Another node, or the same store after a restart.
    s.session_start(&session("kept", "k1", now + 600)).unwrap();
    drop(s);
    let again = b.open(10);
    let seen = again
        .session_rotate("kept", "k1", "k2", now + 600, now)
        .unwrap();
    if durable || b.shared() {
        assert_eq!(seen, Rotation::Rotated);
    } else {
        assert_eq!(
            seen,
            Rotation::Unknown,
            "memory sessions end with the process"
        );
    }
}

/// Idempotency claims: on a shared store one owner at a time, released only by
/// its owner, gone after their ttl; on a store one node owns, always granted.
fn idempotency_claims(b: &dyn Backend) {
    use std::time::Duration;
    let (s, other) = (b.open(10), b.open(10));
    let long = Duration::from_secs(30);
    assert!(s.idempotent_claim("t", "k", "me", long).unwrap());
    if !b.shared() {
        assert!(other.idempotent_claim("t", "k", "you", long).unwrap());
        other.idempotent_release("t", "k", "you").unwrap();
        return;
    }
    // Another node cannot take it, nor release it; another key or tenant is free.
    assert!(!other.idempotent_claim("t", "k", "you", long).unwrap());
    other.idempotent_release("t", "k", "you").unwrap();
    assert!(!other.idempotent_claim("t", "k", "you", long).unwrap());
    assert!(other.idempotent_claim("t", "k2", "you", long).unwrap());
    assert!(other.idempotent_claim("t2", "k", "you", long).unwrap());
    // Released by its owner: free again.
    s.idempotent_release("t", "k", "me").unwrap();
    assert!(other.idempotent_claim("t", "k", "you", long).unwrap());
    // A claim whose owner died ends with its ttl.
    assert!(s
        .idempotent_claim("t", "dies", "me", Duration::from_millis(200))
        .unwrap());
    pulse_testkit::wait_for("the claim's ttl", Duration::from_secs(10), || {
        other.idempotent_claim("t", "dies", "you", long).unwrap()
    });
    // Its late release does not drop the new owner's claim.
    s.idempotent_release("t", "dies", "me").unwrap();
    assert!(!s.idempotent_claim("t", "dies", "me", long).unwrap());
}

/// Removing a user revokes every family of theirs, and only theirs (another
/// user, the same name in another tenant); a family rotated since is found too,
/// and on a shared store another node's families are revoked as well.
pub(crate) fn a_removed_users_sessions_are_revoked(b: &dyn Backend) {
    let now = crate::auth::now_secs();
    let session = |family: &str, sub: &str, tenant: &str| RefreshSession {
        family: family.into(),
        current: format!("{family}-t1"),
        sub: sub.into(),
        tenant: tenant.into(),
        expires: now + 600,
    };
    let s = b.open(10);
    s.session_start(&session("ann-1", "ann", "acme")).unwrap();
    s.session_start(&session("ann-2", "ann", "acme")).unwrap();
    s.session_start(&session("bob-1", "bob", "acme")).unwrap();
    s.session_start(&session("ann-g", "ann", "globex")).unwrap();
    assert_eq!(
        s.session_rotate("ann-1", "ann-1-t1", "ann-1-t2", now + 900, now)
            .unwrap(),
        Rotation::Rotated
    );
    let other = if b.shared() { b.open(10) } else { s };
    assert_eq!(other.session_revoke_user("acme", "ann").unwrap(), 2);
    assert_eq!(
        other.session_revoke_user("acme", "ann").unwrap(),
        0,
        "twice is once"
    );
    let s = if b.shared() { b.open(10) } else { other };
    for (family, token) in [("ann-1", "ann-1-t2"), ("ann-2", "ann-2-t1")] {
        assert_eq!(
            s.session_rotate(family, token, "next", now + 600, now)
                .unwrap(),
            Rotation::Unknown,
            "{family}"
        );
    }
    for family in ["bob-1", "ann-g"] {
        assert_eq!(
            s.session_rotate(family, &format!("{family}-t1"), "next", now + 600, now)
                .unwrap(),
            Rotation::Rotated,
            "{family}"
        );
    }
    assert_eq!(s.session_revoke_user("acme", "nobody").unwrap(), 0);
}

/// Instantiate the suite for one backend: `store_suite!(name, open_fn, durable)`.
macro_rules! store_suite {
    ($name:ident, $fixture:ident, $durable:expr) => {
        mod $name {
            fn b() -> super::$fixture {
                super::$fixture::new()
            }
            #[test]
            fn empty_stream() {
                super::empty_stream(&b());
            }
            #[test]
            fn append_and_read() {
                super::append_and_read(&b());
            }
            #[test]
            fn materialises_entities() {
                super::materialises_entities(&b());
            }
            #[test]
            fn retention() {
                super::retention(&b());
            }
            #[test]
            fn tenants_are_isolated() {
                super::tenants_are_isolated(&b());
            }
            #[test]
            fn restart() {
                super::restart(&b(), $durable);
            }
            #[test]
            fn duplicate_ids() {
                super::duplicate_ids(&b());
            }
            #[test]
            fn group_commit() {
                super::group_commit(&b());
            }
            #[test]
            fn concurrent_appends() {
                super::concurrent_appends(&b());
            }
            #[test]
            fn snapshots_are_consistent() {
                super::snapshots_are_consistent(&b());
            }
            #[test]
            fn addressed_to_one_user() {
                super::addressed_to_one_user(&b());
            }
            #[test]
            fn idempotency_claims() {
                super::idempotency_claims(&b());
            }
            #[test]
            fn refresh_sessions() {
                super::refresh_sessions(&b(), $durable);
            }
            #[test]
            fn a_removed_users_sessions_are_revoked() {
                super::a_removed_users_sessions_are_revoked(&b());
            }
        }
    };
}

struct Memory;

impl Memory {
    fn new() -> Memory {
        Memory
    }
}

impl Backend for Memory {
    fn open(&self, retain: u64) -> Box<dyn LogStore> {
        Box::new(super::MemoryStore::new(retain))
    }
}

struct Sqlite(tempfile::TempDir);

impl Sqlite {
    fn new() -> Sqlite {
        Sqlite(tempfile::tempdir().expect("temp dir"))
    }
}

impl Backend for Sqlite {
    fn open(&self, retain: u64) -> Box<dyn LogStore> {
        Box::new(
            super::SqliteStore::open(&self.0.path().join("gateway.db"), retain)
                .expect("open sqlite"),
        )
    }
}

/// A real `redis-server` of its own; every `open` is another node on it.
struct Redis(pulse_testkit::redis::RedisServer);

impl Redis {
    fn new() -> Redis {
        Redis(pulse_testkit::redis::RedisServer::start())
    }
}

impl Backend for Redis {
    fn open(&self, retain: u64) -> Box<dyn LogStore> {
        Box::new(super::RedisStore::open(&self.0.url(), retain, None, "test").expect("open redis"))
    }
    fn shared(&self) -> bool {
        true
    }
}

store_suite!(memory, Memory, false);
store_suite!(sqlite, Sqlite, true);
store_suite!(redis, Redis, true);
