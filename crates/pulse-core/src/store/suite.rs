//! The shared store suite: one list of contract tests every [`Store`] backend runs.
//!
//! Each case is a generic function taking a fresh, empty store. A backend's test
//! binary instantiates the whole list with one macro call per backend (see
//! `crates/pulse-core/tests/core/store.rs`), so [`MemoryStore`](super::MemoryStore)
//! and [`SqliteStore`](super::SqliteStore) pass exactly the same tests. [`CASES`]
//! names every case; the test binary checks its list against it, so a case added
//! here cannot be forgotten there.
//!
//! The cases panic on failure (they are tests); they are not meant for production use.

use std::collections::BTreeMap;

use pulse_protocol::domain::{Change, Entity, EntityKind, Object};
use pulse_protocol::frame::EventFrame;
use serde_json::{json, Value};

use super::{Action, AppliedEvent, Cursor, Owner, Store, EVENT_LOG_LIMIT};

/// The stream the cases use unless they test several.
pub const STREAM: &str = "acme";

/// A JSON object from a `json!` literal (panics if it is not an object).
pub fn obj(v: Value) -> Object {
    match v {
        Value::Object(o) => o,
        other => panic!("not a JSON object: {other}"),
    }
}

/// An event `seq` of [`STREAM`] doing `changes`.
pub fn event(seq: u64, changes: Vec<Change>) -> AppliedEvent {
    event_on(STREAM, seq, changes)
}

/// An event `seq` of `stream` doing `changes`.
pub fn event_on(stream: &str, seq: u64, changes: Vec<Change>) -> AppliedEvent {
    AppliedEvent {
        frame: EventFrame {
            user: None,
            seq,
            id: format!("{stream}-{seq}"),
            stream: stream.to_owned(),
            event_type: "test.event".into(),
            ts: 1_700_000_000_000 + seq as i64,
            data: json!({"seq": seq}),
        },
        changes,
    }
}

/// An upsert of `kind`/`id` with `data` (an object literal).
pub fn upsert(kind: EntityKind, id: &str, data: Value) -> Change {
    Change::Upsert {
        kind,
        id: id.into(),
        data: obj(data),
    }
}

/// A patch of `kind`/`id` with `data` (an object literal).
pub fn patch(kind: EntityKind, id: &str, data: Value) -> Change {
    Change::Patch {
        kind,
        id: id.into(),
        data: obj(data),
    }
}

/// An append of `item` to `field` of ticket `id`.
pub fn append(id: &str, field: &str, item: Value) -> Change {
    Change::Append {
        kind: EntityKind::Ticket,
        id: id.into(),
        field: field.into(),
        item,
    }
}

/// A delete of `kind`/`id`.
pub fn delete(kind: EntityKind, id: &str) -> Change {
    Change::Delete {
        kind,
        id: id.into(),
    }
}

/// An owner on one server, of `account`.
pub fn owner(account: &str) -> Owner {
    Owner {
        server: "https://pulse.example".into(),
        account: Some(account.into()),
    }
}

fn cursor(epoch: &str, seq: u64) -> Cursor {
    Cursor {
        epoch: epoch.into(),
        seq,
    }
}

fn data_of<S: Store>(store: &S, kind: EntityKind, id: &str) -> Option<Object> {
    store.get(kind, id).expect("get").map(|e| e.data)
}

fn timeline_len<S: Store>(store: &S, id: &str) -> usize {
    data_of(store, EntityKind::Ticket, id)
        .and_then(|d| d.get("timeline").and_then(Value::as_array).map(Vec::len))
        .unwrap_or(0)
}

/// Every case, by name; the test binary's list must equal this one.
pub const CASES: &[&str] = &[
    "empty_store",
    "apply_sets_entities_and_cursor",
    "replayed_batch_is_applied_once",
    "overlapping_batch_applies_only_new_events",
    "duplicates_within_a_batch_are_skipped",
    "events_of_another_epoch_are_applied",
    "events_without_changes_advance_the_cursor",
    "streams_have_their_own_cursors",
    "empty_batch_changes_nothing",
    "upsert_replaces_the_whole_entity",
    "patch_merges_and_creates",
    "append_grows_an_array_and_creates",
    "delete_removes",
    "changes_in_one_batch_see_each_other",
    "replace_all_swaps_everything",
    "replace_all_makes_the_cache_one_streams_world",
    "event_log_keeps_the_newest",
    "recent_events_are_oldest_first",
    "outbox_keeps_order_errors_and_removals",
    "summary_counts_kinds_cursors_outbox_and_sync",
    "unknown_fields_are_kept",
    "list_and_all_are_sorted",
];

/// A new store has nothing: no cursor, no entities, no events, no outbox.
pub fn empty_store<S: Store>(store: &mut S) {
    assert_eq!(store.cursor(STREAM).unwrap(), None);
    assert!(store.all().unwrap().is_empty());
    for kind in EntityKind::ALL {
        assert!(store.list(kind).unwrap().is_empty());
    }
    assert!(store.recent_events(10).unwrap().is_empty());
    assert!(store.outbox().unwrap().is_empty());
    assert_eq!(store.summary().unwrap(), Default::default());
    assert_eq!(store.get(EntityKind::Agent, "nope").unwrap(), None);
}

/// Applying a batch writes its entities and moves the cursor to its last seq.
pub fn apply_sets_entities_and_cursor<S: Store>(store: &mut S) {
    let applied = store
        .apply(
            "e1",
            &[
                event(
                    1,
                    vec![upsert(
                        EntityKind::Agent,
                        "a1",
                        json!({"id": "a1", "status": "idle"}),
                    )],
                ),
                event(
                    2,
                    vec![upsert(
                        EntityKind::Ticket,
                        "t1",
                        json!({"id": "t1", "state": "todo"}),
                    )],
                ),
                event(
                    3,
                    vec![patch(EntityKind::Agent, "a1", json!({"status": "busy"}))],
                ),
            ],
        )
        .unwrap();
    assert_eq!(applied, vec![1, 2, 3]);
    assert_eq!(store.cursor(STREAM).unwrap(), Some(cursor("e1", 3)));
    assert_eq!(
        data_of(store, EntityKind::Agent, "a1"),
        Some(obj(json!({"id": "a1", "status": "busy"})))
    );
    assert_eq!(
        store.get(EntityKind::Ticket, "t1").unwrap(),
        Some(Entity {
            kind: EntityKind::Ticket,
            id: "t1".into(),
            data: obj(json!({"id": "t1", "state": "todo"})),
        })
    );
    let seqs: Vec<u64> = store
        .recent_events(10)
        .unwrap()
        .iter()
        .map(|f| f.seq)
        .collect();
    assert_eq!(seqs, vec![1, 2, 3]);
}

/// The same batch twice is applied once: a non-idempotent append proves it.
pub fn replayed_batch_is_applied_once<S: Store>(store: &mut S) {
    let batch: Vec<AppliedEvent> = (1..=3)
        .map(|seq| event(seq, vec![append("t1", "timeline", json!({"n": seq}))]))
        .collect();
    assert_eq!(store.apply("e1", &batch).unwrap(), vec![1, 2, 3]);
    assert_eq!(store.apply("e1", &batch).unwrap(), Vec::<u64>::new());
    assert_eq!(timeline_len(store, "t1"), 3);
    assert_eq!(store.cursor(STREAM).unwrap(), Some(cursor("e1", 3)));
    assert_eq!(store.recent_events(100).unwrap().len(), 3);
}

/// A batch overlapping the cursor applies only the events above it.
pub fn overlapping_batch_applies_only_new_events<S: Store>(store: &mut S) {
    let ev = |seq| event(seq, vec![append("t1", "timeline", json!(seq))]);
    store.apply("e1", &[ev(1), ev(2), ev(3)]).unwrap();
    assert_eq!(
        store.apply("e1", &[ev(2), ev(3), ev(4), ev(5)]).unwrap(),
        vec![4, 5]
    );
    let timeline = data_of(store, EntityKind::Ticket, "t1").unwrap()["timeline"].clone();
    assert_eq!(timeline, json!([1, 2, 3, 4, 5]));
    assert_eq!(store.cursor(STREAM).unwrap(), Some(cursor("e1", 5)));
}

/// Repeated or out-of-order seqs inside one batch are skipped.
pub fn duplicates_within_a_batch_are_skipped<S: Store>(store: &mut S) {
    let ev = |seq| event(seq, vec![append("t1", "timeline", json!(seq))]);
    let applied = store
        .apply("e1", &[ev(1), ev(2), ev(2), ev(3), ev(1)])
        .unwrap();
    assert_eq!(applied, vec![1, 2, 3]);
    assert_eq!(timeline_len(store, "t1"), 3);
    assert_eq!(store.cursor(STREAM).unwrap(), Some(cursor("e1", 3)));
}

/// Events of an epoch other than the stored cursor's are applied, and the cursor
/// takes the new epoch (the caller handles the epoch change itself).
pub fn events_of_another_epoch_are_applied<S: Store>(store: &mut S) {
    let ev = |seq| event(seq, vec![append("t1", "timeline", json!(seq))]);
    store.apply("e1", &[ev(9), ev(10)]).unwrap();
    assert_eq!(store.apply("e2", &[ev(1), ev(2)]).unwrap(), vec![1, 2]);
    assert_eq!(store.cursor(STREAM).unwrap(), Some(cursor("e2", 2)));
    assert_eq!(timeline_len(store, "t1"), 4);
    // And the new epoch's cursor now filters.
    assert!(store.apply("e2", &[ev(2)]).unwrap().is_empty());
}

/// An event with no changes (unknown type) still advances the cursor and is logged.
pub fn events_without_changes_advance_the_cursor<S: Store>(store: &mut S) {
    assert_eq!(store.apply("e1", &[event(1, vec![])]).unwrap(), vec![1]);
    assert_eq!(store.cursor(STREAM).unwrap(), Some(cursor("e1", 1)));
    assert!(store.all().unwrap().is_empty());
    assert_eq!(store.recent_events(5).unwrap().len(), 1);
    assert!(store.summary().unwrap().last_sync_ms.is_some());
}

/// Two streams keep separate cursors; one's seqs do not filter the other's.
pub fn streams_have_their_own_cursors<S: Store>(store: &mut S) {
    store
        .apply(
            "e1",
            &[event_on(
                "a",
                5,
                vec![append("t1", "timeline", json!("a5"))],
            )],
        )
        .unwrap();
    let applied = store
        .apply(
            "e1",
            &[event_on(
                "b",
                1,
                vec![append("t1", "timeline", json!("b1"))],
            )],
        )
        .unwrap();
    assert_eq!(applied, vec![1]);
    assert_eq!(store.cursor("a").unwrap(), Some(cursor("e1", 5)));
    assert_eq!(store.cursor("b").unwrap(), Some(cursor("e1", 1)));
    assert_eq!(timeline_len(store, "t1"), 2);
}

/// An empty batch applies nothing and sets no cursor.
pub fn empty_batch_changes_nothing<S: Store>(store: &mut S) {
    assert!(store.apply("e1", &[]).unwrap().is_empty());
    assert_eq!(store.cursor(STREAM).unwrap(), None);
    assert_eq!(store.summary().unwrap(), Default::default());
}

/// Upsert replaces the whole record: fields it does not carry are gone.
pub fn upsert_replaces_the_whole_entity<S: Store>(store: &mut S) {
    store
        .apply(
            "e1",
            &[
                event(
                    1,
                    vec![upsert(
                        EntityKind::Approval,
                        "p1",
                        json!({"id": "p1", "status": "pending", "old": 1}),
                    )],
                ),
                event(
                    2,
                    vec![upsert(
                        EntityKind::Approval,
                        "p1",
                        json!({"id": "p1", "status": "approved"}),
                    )],
                ),
            ],
        )
        .unwrap();
    assert_eq!(
        data_of(store, EntityKind::Approval, "p1"),
        Some(obj(json!({"id": "p1", "status": "approved"})))
    );
}

/// Patch merges top-level fields, and creates a missing entity with its id.
pub fn patch_merges_and_creates<S: Store>(store: &mut S) {
    store
        .apply(
            "e1",
            &[
                event(
                    1,
                    vec![upsert(
                        EntityKind::Ticket,
                        "t1",
                        json!({"id": "t1", "state": "todo", "title": "x", "meta": {"a": 1}}),
                    )],
                ),
                event(
                    2,
                    vec![patch(
                        EntityKind::Ticket,
                        "t1",
                        json!({"state": "doing", "meta": {"b": 2}}),
                    )],
                ),
                event(
                    3,
                    vec![patch(EntityKind::Ticket, "t2", json!({"state": "done"}))],
                ),
            ],
        )
        .unwrap();
    assert_eq!(
        data_of(store, EntityKind::Ticket, "t1"),
        Some(obj(
            json!({"id": "t1", "state": "doing", "title": "x", "meta": {"b": 2}})
        ))
    );
    assert_eq!(
        data_of(store, EntityKind::Ticket, "t2"),
        Some(obj(json!({"id": "t2", "state": "done"})))
    );
}

/// Append grows an array field (creating entity and field), replacing a non-array.
pub fn append_grows_an_array_and_creates<S: Store>(store: &mut S) {
    store
        .apply(
            "e1",
            &[
                event(1, vec![append("t1", "timeline", json!({"e": 1}))]),
                event(2, vec![append("t1", "timeline", json!({"e": 2}))]),
                event(
                    3,
                    vec![upsert(
                        EntityKind::Ticket,
                        "t2",
                        json!({"id": "t2", "timeline": "oops"}),
                    )],
                ),
                event(4, vec![append("t2", "timeline", json!("first"))]),
            ],
        )
        .unwrap();
    assert_eq!(
        data_of(store, EntityKind::Ticket, "t1"),
        Some(obj(json!({"id": "t1", "timeline": [{"e": 1}, {"e": 2}]})))
    );
    assert_eq!(
        data_of(store, EntityKind::Ticket, "t2"),
        Some(obj(json!({"id": "t2", "timeline": ["first"]})))
    );
}

/// Delete removes the entity; deleting a missing one is fine.
pub fn delete_removes<S: Store>(store: &mut S) {
    store
        .apply(
            "e1",
            &[
                event(
                    1,
                    vec![upsert(EntityKind::Message, "m1", json!({"id": "m1"}))],
                ),
                event(
                    2,
                    vec![upsert(EntityKind::Message, "m2", json!({"id": "m2"}))],
                ),
                event(
                    3,
                    vec![
                        delete(EntityKind::Message, "m1"),
                        delete(EntityKind::Message, "zz"),
                    ],
                ),
            ],
        )
        .unwrap();
    assert_eq!(store.get(EntityKind::Message, "m1").unwrap(), None);
    let ids: Vec<String> = store
        .list(EntityKind::Message)
        .unwrap()
        .into_iter()
        .map(|e| e.id)
        .collect();
    assert_eq!(ids, vec!["m2"]);
}

/// Changes later in a batch (and in the same event) see the earlier ones.
pub fn changes_in_one_batch_see_each_other<S: Store>(store: &mut S) {
    store
        .apply(
            "e1",
            &[
                event(
                    1,
                    vec![
                        upsert(
                            EntityKind::Conversation,
                            "c1",
                            json!({"id": "c1", "status": "open"}),
                        ),
                        patch(
                            EntityKind::Conversation,
                            "c1",
                            json!({"status": "escalated"}),
                        ),
                    ],
                ),
                event(
                    2,
                    vec![
                        delete(EntityKind::Conversation, "c1"),
                        patch(EntityKind::Conversation, "c1", json!({"n": 1})),
                    ],
                ),
            ],
        )
        .unwrap();
    assert_eq!(
        data_of(store, EntityKind::Conversation, "c1"),
        Some(obj(json!({"id": "c1", "n": 1})))
    );
}

/// `replace_all` drops every old entity, inserts the snapshot, sets the cursor and
/// clears the stream's event log, all at once.
pub fn replace_all_swaps_everything<S: Store>(store: &mut S) {
    store
        .apply(
            "e1",
            &[
                event(
                    1,
                    vec![upsert(EntityKind::Agent, "old", json!({"id": "old"}))],
                ),
                event(
                    2,
                    vec![upsert(EntityKind::Ticket, "t-old", json!({"id": "t-old"}))],
                ),
            ],
        )
        .unwrap();
    let snapshot = vec![
        Entity {
            kind: EntityKind::Agent,
            id: "new".into(),
            data: obj(json!({"id": "new", "status": "idle"})),
        },
        Entity {
            kind: EntityKind::Approval,
            id: "p1".into(),
            data: obj(json!({"id": "p1", "status": "pending"})),
        },
    ];
    store
        .replace_all(STREAM, &cursor("e2", 40), &snapshot)
        .unwrap();
    assert_eq!(store.all().unwrap(), snapshot);
    assert_eq!(store.get(EntityKind::Agent, "old").unwrap(), None);
    assert_eq!(store.cursor(STREAM).unwrap(), Some(cursor("e2", 40)));
    assert!(store.recent_events(100).unwrap().is_empty());
    assert!(store.summary().unwrap().last_sync_ms.is_some());
    // The new cursor filters: 40 is old, 41 is new.
    let ev = |seq| event(seq, vec![append("t9", "timeline", json!(seq))]);
    assert_eq!(store.apply("e2", &[ev(40), ev(41)]).unwrap(), vec![41]);
    // An empty snapshot empties the store.
    store.replace_all(STREAM, &cursor("e3", 0), &[]).unwrap();
    assert!(store.all().unwrap().is_empty());
    assert_eq!(store.cursor(STREAM).unwrap(), Some(cursor("e3", 0)));
}

/// After `replace_all` the cache holds that stream only: other streams' cursors and
/// every logged event are gone, so one tenant's data never shows under another's.
pub fn replace_all_makes_the_cache_one_streams_world<S: Store>(store: &mut S) {
    store
        .apply("e1", &[event_on("a", 1, vec![]), event_on("a", 2, vec![])])
        .unwrap();
    store.apply("e1", &[event_on("b", 1, vec![])]).unwrap();
    store.replace_all("a", &cursor("e1", 2), &[]).unwrap();
    assert!(store.recent_events(10).unwrap().is_empty());
    assert_eq!(store.cursor("a").unwrap(), Some(cursor("e1", 2)));
    assert_eq!(store.cursor("b").unwrap(), None);
    let summary = store.summary().unwrap();
    assert_eq!(summary.cursors.keys().collect::<Vec<_>>(), vec!["a"]);
}

/// The log keeps exactly the newest [`EVENT_LOG_LIMIT`] events.
pub fn event_log_keeps_the_newest<S: Store>(store: &mut S) {
    let total = EVENT_LOG_LIMIT as u64 + 250;
    let events: Vec<AppliedEvent> = (1..=total).map(|seq| event(seq, vec![])).collect();
    for chunk in events.chunks(700) {
        store.apply("e1", chunk).unwrap();
    }
    let log = store.recent_events(usize::MAX).unwrap();
    assert_eq!(log.len(), EVENT_LOG_LIMIT);
    assert_eq!(log.first().map(|f| f.seq), Some(251));
    assert_eq!(log.last().map(|f| f.seq), Some(total));
    assert!(log.windows(2).all(|w| w[0].seq + 1 == w[1].seq));
    assert_eq!(store.cursor(STREAM).unwrap(), Some(cursor("e1", total)));
}

/// `recent_events(n)` is the newest `n`, oldest first, frames intact.
pub fn recent_events_are_oldest_first<S: Store>(store: &mut S) {
    let events: Vec<AppliedEvent> = (1..=10).map(|seq| event(seq, vec![])).collect();
    store.apply("e1", &events).unwrap();
    let recent = store.recent_events(3).unwrap();
    let expected: Vec<EventFrame> = events[7..].iter().map(|e| e.frame.clone()).collect();
    assert_eq!(recent, expected);
    assert!(store.recent_events(0).unwrap().is_empty());
}

/// The outbox lists oldest first with each entry's owner, records errors,
/// removes, never reuses an id.
pub fn outbox_keeps_order_errors_and_removals<S: Store>(store: &mut S) {
    let approve = Action::Approve {
        id: "p1".into(),
        reason: Some("ok".into()),
    };
    let moved = Action::MoveTicket {
        id: "t1".into(),
        state: "done".into(),
    };
    let stop = Action::TerminateAgent {
        id: "a1".into(),
        reason: None,
    };
    let ann = owner("ann");
    let bob = owner("bob");
    let a = store.outbox_push(&ann, &approve, 10).unwrap();
    let b = store.outbox_push(&bob, &moved, 20).unwrap();
    let c = store.outbox_push(&ann, &stop, 30).unwrap();
    assert!(a < b && b < c, "ids must rise: {a} {b} {c}");
    store.outbox_fail(b, "503 Service Unavailable").unwrap();
    let list = store.outbox().unwrap();
    type Row<'a> = (u64, Option<&'a Owner>, &'a Action, i64, Option<&'a str>);
    let shape: Vec<Row> = list
        .iter()
        .map(|e| {
            (
                e.id,
                e.owner.as_ref(),
                &e.action,
                e.queued_at,
                e.last_error.as_deref(),
            )
        })
        .collect();
    assert_eq!(
        shape,
        vec![
            (a, Some(&ann), &approve, 10, None),
            (b, Some(&bob), &moved, 20, Some("503 Service Unavailable")),
            (c, Some(&ann), &stop, 30, None),
        ]
    );
    store.outbox_remove(a).unwrap();
    store.outbox_remove(c).unwrap();
    // Unknown ids are not an error.
    store.outbox_remove(9999).unwrap();
    store.outbox_fail(9999, "x").unwrap();
    let d = store.outbox_push(&ann, &approve, 40).unwrap();
    assert!(d > c, "ids are never reused: {d} after {c}");
    let ids: Vec<u64> = store.outbox().unwrap().iter().map(|e| e.id).collect();
    assert_eq!(ids, vec![b, d]);
    assert_eq!(store.summary().unwrap().outbox, 2);
}

/// The summary counts entities per kind (absent kinds absent), cursors, outbox, sync.
pub fn summary_counts_kinds_cursors_outbox_and_sync<S: Store>(store: &mut S) {
    let batch = vec![event(
        1,
        vec![
            upsert(EntityKind::Approval, "p1", json!({"id": "p1"})),
            upsert(EntityKind::Approval, "p2", json!({"id": "p2"})),
            upsert(EntityKind::Agent, "a1", json!({"id": "a1"})),
        ],
    )];
    store.apply("e1", &batch).unwrap();
    store.apply("e7", &[event_on("other", 3, vec![])]).unwrap();
    store
        .outbox_push(
            &owner("ann"),
            &Action::Reject {
                id: "p2".into(),
                reason: None,
            },
            5,
        )
        .unwrap();
    let s = store.summary().unwrap();
    assert_eq!(
        s.counts,
        BTreeMap::from([(EntityKind::Agent, 1), (EntityKind::Approval, 2)])
    );
    assert_eq!(
        s.cursors,
        BTreeMap::from([
            (STREAM.to_string(), cursor("e1", 1)),
            ("other".to_string(), cursor("e7", 3)),
        ])
    );
    assert_eq!(store.cursors().unwrap(), s.cursors, "cursors() = summary's");
    assert_eq!(s.outbox, 1);
    let synced = s.last_sync_ms.expect("last sync set");
    assert!(
        synced > 1_600_000_000_000,
        "last_sync_ms is wall-clock ms: {synced}"
    );
}

/// Fields Pulse does not know, nested values, unicode and big numbers round-trip.
pub fn unknown_fields_are_kept<S: Store>(store: &mut S) {
    let data = json!({
        "id": "a1",
        "x-vendor": {"nested": [1, {"deep": null}], "flag": true},
        "emoji": "café ✓ 🚀",
        "big": 9_007_199_254_740_993_u64,
        "neg": -12.5,
        "empty": {},
    });
    store
        .apply(
            "e1",
            &[event(
                1,
                vec![upsert(EntityKind::Agent, "a1", data.clone())],
            )],
        )
        .unwrap();
    assert_eq!(
        data_of(store, EntityKind::Agent, "a1"),
        Some(obj(data.clone()))
    );
    store
        .apply(
            "e1",
            &[event(
                2,
                vec![patch(EntityKind::Agent, "a1", json!({"status": "ok"}))],
            )],
        )
        .unwrap();
    let mut expected = obj(data);
    expected.insert("status".into(), json!("ok"));
    assert_eq!(data_of(store, EntityKind::Agent, "a1"), Some(expected));
    let snap = Entity {
        kind: EntityKind::Stats,
        id: "tasks".into(),
        data: obj(json!({"id": "tasks", "unknown": [[1], {"a": "b"}]})),
    };
    store
        .replace_all(STREAM, &cursor("e1", 2), std::slice::from_ref(&snap))
        .unwrap();
    assert_eq!(store.get(EntityKind::Stats, "tasks").unwrap(), Some(snap));
}

/// `list` is ordered by id, `all` by kind (in [`EntityKind`] order) then id.
pub fn list_and_all_are_sorted<S: Store>(store: &mut S) {
    let changes = vec![
        upsert(EntityKind::Stats, "b", json!({})),
        upsert(EntityKind::Ticket, "t2", json!({})),
        upsert(EntityKind::Agent, "z", json!({})),
        upsert(EntityKind::Ticket, "t10", json!({})),
        upsert(EntityKind::Agent, "a", json!({})),
        upsert(EntityKind::Ticket, "t1", json!({})),
        upsert(EntityKind::Conversation, "c", json!({})),
    ];
    store.apply("e1", &[event(1, changes)]).unwrap();
    let tickets: Vec<String> = store
        .list(EntityKind::Ticket)
        .unwrap()
        .into_iter()
        .map(|e| e.id)
        .collect();
    assert_eq!(tickets, vec!["t1", "t10", "t2"]);
    let all: Vec<(EntityKind, String)> = store
        .all()
        .unwrap()
        .into_iter()
        .map(|e| (e.kind, e.id))
        .collect();
    assert_eq!(
        all,
        vec![
            (EntityKind::Agent, "a".to_string()),
            (EntityKind::Agent, "z".to_string()),
            (EntityKind::Ticket, "t1".to_string()),
            (EntityKind::Ticket, "t10".to_string()),
            (EntityKind::Ticket, "t2".to_string()),
            (EntityKind::Conversation, "c".to_string()),
            (EntityKind::Stats, "b".to_string()),
        ]
    );
}
