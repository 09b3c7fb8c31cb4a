use pulse_protocol::domain::{Change, EntityKind};
use serde_json::json;

use super::*;

fn mapper(p: &Profile) -> Mapper {
    let rules: Vec<_> = p.spec.event.iter().map(|r| r.get_ref().clone()).collect();
    let rest = p
        .spec
        .rest
        .iter()
        .map(|(k, v)| (k.clone(), v.get_ref().clone()))
        .collect();
    Mapper::new(&rules, &rest)
}

fn one_change(effects: Vec<Effect>) -> Change {
    match effects.into_iter().next() {
        Some(Effect::Change(c)) => c,
        other => panic!("expected a change, got {other:?}"),
    }
}

#[test]
fn every_builtin_parses() {
    for (name, _, _) in BUILTIN {
        let p = Profile::builtin(name).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(p.name(), *name);
        assert!(
            p.spec.caveat.is_some(),
            "{name} says what its server cannot guarantee"
        );
    }
    assert!(matches!(
        Profile::load("nope"),
        Err(ProfileError::Unknown(_))
    ));
}

#[test]
fn agent_monitor_maps_its_seed_events() {
    let p = Profile::builtin("agent-monitor").unwrap();
    let m = mapper(&p);
    let c = one_change(
        m.map_event(
            "agent:update",
            &json!({"agentId": "a1", "status": "busy", "action": "status_change", "timestamp": 7}),
            1,
        )
        .unwrap(),
    );
    let v = c.apply_to(None).unwrap();
    assert_eq!((c.kind(), c.id()), (EntityKind::Agent, "a1"));
    assert_eq!(v["status"], "busy");
    assert_eq!(v["updated_at"], 7);
    assert!(v.get("action").is_none() && v.get("agentId").is_none());
    let c = one_change(
        m.map_event(
            "agent:update",
            &json!({"action": "stats_refresh", "stats": {"active": 2}}),
            1,
        )
        .unwrap(),
    );
    assert_eq!((c.kind(), c.id()), (EntityKind::Stats, "agents"));
    let c = one_change(
        m.map_event(
            "agent:terminated",
            &json!({"agentId": "a1", "reason": "manual"}),
            1,
        )
        .unwrap(),
    );
    let v = c.apply_to(None).unwrap();
    assert_eq!(v["status"], "terminated");
    assert_eq!(v["terminated_reason"], "manual");
    let c = one_change(
        m.map_event(
            "ticket:update",
            &json!({"ticketId": 5, "state": "review", "ticket": {"id": 5, "title": "T"}, "action": "updated"}),
            1,
        )
        .unwrap(),
    );
    let v = c.apply_to(None).unwrap();
    assert_eq!(c.id(), "5");
    assert_eq!(
        (v["state"].as_str(), v["title"].as_str()),
        (Some("review"), Some("T"))
    );
    let c = one_change(
        m.map_event("ticket:deleted", &json!({"ticketId": "t9"}), 1)
            .unwrap(),
    );
    assert_eq!(
        c,
        Change::Delete {
            kind: EntityKind::Ticket,
            id: "t9".into()
        }
    );
    assert!(matches!(
        m.map_event("agent:exploded", &json!({}), 1),
        Err(MapError::Unknown(_))
    ));
    assert!(matches!(
        m.map_event("agent:terminated", &json!({"reason": "x"}), 1),
        Err(MapError::Shape { .. })
    ));
    assert_eq!(m.map_event("connected", &json!(null), 1).unwrap(), vec![]);
}

#[test]
fn replace_and_append_rules() {
    let p = Profile::builtin("tasks-gateway").unwrap();
    let m = mapper(&p);
    let e = m
        .map_event(
            "dashboard:state",
            &json!({"tasks": [{"id": "t1", "status": "open"}, {"id": 2, "status": "done"}]}),
            1,
        )
        .unwrap();
    let Effect::Replace {
        kind,
        records,
        delete_missing,
    } = &e[0]
    else {
        panic!("{e:?}")
    };
    assert_eq!(
        (*kind, records.len(), *delete_missing),
        (EntityKind::Ticket, 2, true)
    );
    assert_eq!(records[1].0, "2");
    assert_eq!(records[1].1["state"], "done");
    let changes = replacement_changes(*kind, records.clone(), true, &["t1".into(), "old".into()]);
    assert!(changes.contains(&Change::Delete {
        kind: EntityKind::Ticket,
        id: "old".into()
    }));
    assert_eq!(changes.len(), 3);
    let e = m
        .map_event(
            "task:event_added",
            &json!({"taskId": "t1", "event": {"kind": "comment"}}),
            1,
        )
        .unwrap();
    let Effect::Change(Change::Append { field, item, .. }) = &e[0] else {
        panic!("{e:?}")
    };
    assert_eq!(
        (field.as_str(), &item["kind"]),
        ("timeline", &json!("comment"))
    );
}

#[test]
fn rest_answers_map_to_replacements_and_stats() {
    let p = Profile::builtin("event-bridge").unwrap();
    let m = mapper(&p);
    let c = one_change(vec![m
        .map_rest("approvals_stats", &json!({"stats": {"pending": 4}}), 3)
        .unwrap()]);
    let v = c.apply_to(None).unwrap();
    assert_eq!((c.id(), &v["pending"]), ("approvals", &json!(4)));
    let p = Profile::builtin("nest-realtime").unwrap();
    let m = mapper(&p);
    let Effect::Replace {
        records,
        delete_missing,
        ..
    } = m.map_rest("messages", &json!([{"id": "m1"}]), 3).unwrap()
    else {
        panic!()
    };
    assert_eq!((records.len(), delete_missing), (1, false));
    assert!(m
        .map_rest("approvals", &json!({"not": "a list"}), 3)
        .unwrap_err()
        .contains("array"));
}

fn invalid(text: &str) -> (usize, String, String) {
    match Profile::parse(text, "team.toml") {
        Err(ProfileError::Invalid {
            origin,
            line,
            field,
            message,
            ..
        }) => {
            assert_eq!(origin, "team.toml");
            (line, field, message)
        }
        other => panic!("expected an error, got {other:?}"),
    }
}

const HEAD: &str = "name = \"t\"\ntransport = \"jsonws\"\n[socket]\npath = \"/ws\"\n";

#[test]
fn bad_profiles_name_file_line_and_field() {
    let (line, field, msg) = invalid(&format!(
        "{HEAD}[[event]]\nname = \"x\"\nop = \"upsert\"\nkind = \"agnt\"\nid = \"/id\"\n"
    ));
    assert_eq!(line, 8);
    assert_eq!(field, "[[event]] #1.kind");
    assert!(msg.contains("agnt"), "{msg}");

    let (line, field, msg) = invalid(&format!(
        "{HEAD}[[event]]\nname = \"x\"\nop = \"patch\"\nkind = \"agent\"\n"
    ));
    assert_eq!(line, 5);
    assert!(field.contains("#1") && field.ends_with(".id"), "{field}");
    assert!(msg.contains("needs `id`"), "{msg}");

    let (line, field, _) = invalid(&format!(
        "{HEAD}[[event]]\nname = \"x\"\nop = \"refetch\"\nrefetch = [\"nope\"]\n"
    ));
    assert_eq!(line, 8);
    assert!(field.ends_with(".refetch"), "{field}");

    let (line, field, msg) = invalid(&format!("{HEAD}[heartbeat]\nintervall_ms = 5\n"));
    assert_eq!(line, 6);
    assert_eq!(field, "heartbeat.intervall_ms");
    assert!(msg.contains("intervall_ms"), "{msg}");

    let (line, field, _) = invalid("name = \"t\"\ntransport = \"carrier-pigeon\"\n");
    assert_eq!((line, field.as_str()), (2, "transport"));

    let (_, field, _) = invalid("name = \"t\"\ntransport = \"jsonws\"\n");
    assert_eq!(field, "socket.path");

    let (line, _, msg) = invalid(&format!("{HEAD}[[event]\n"));
    assert_eq!(line, 5);
    assert!(!msg.is_empty());

    let (_, field, _) = invalid("name = \"t\"\ntransport = \"socketio\"\n[auth]\nplacement = \"first_message\"\nmessage = \"{token}\"\n");
    assert_eq!(field, "auth.placement");

    let err = Profile::parse(
        &format!("{HEAD}[[event]]\nname = \"x\"\nop = \"patch\"\nkind = \"agent\"\n"),
        "team.toml",
    )
    .unwrap_err()
    .to_string();
    assert!(err.starts_with("team.toml:5:1: "), "{err}");
}

/// Found by the `profile_toml` fuzz target: a line with an empty key (`= …`)
/// gave an error whose field was `""` ("team.toml:1:1: : …"). The field is
/// then the table, or the top level.
#[test]
fn an_empty_key_names_the_table_or_the_top_level() {
    let (line, field, msg) = invalid("=(,\u{6}");
    assert_eq!((line, field.as_str()), (1, "(top level)"));
    assert!(!msg.is_empty());
    let (line, field, _) = invalid(&format!("{HEAD}[heartbeat]\n= 5\n"));
    assert_eq!((line, field.as_str()), (6, "heartbeat"));
}

#[test]
fn bad_poll_and_rate_limit_sections_are_clear_errors() {
    let (line, field, msg) = invalid(&format!("{HEAD}[poll]\nrefetch = [\"nope\"]\n"));
    assert_eq!(line, 6);
    assert_eq!(field, "poll.refetch");
    assert!(msg.contains("[rest.nope]"), "{msg}");

    let (line, field, _) = invalid(&format!("{HEAD}[poll]\nintervall_ms = 5\n"));
    assert_eq!((line, field.as_str()), (6, "poll.intervall_ms"));

    let (line, field, msg) = invalid(&format!(
        "{HEAD}[rate_limit]\nrequests = 0\nwindow_ms = 1000\n"
    ));
    assert_eq!((line, field.as_str()), (5, "rate_limit"));
    assert!(msg.contains("above 0"), "{msg}");

    let (_, field, msg) = invalid(&format!("{HEAD}[rate_limit]\nrequests = 100\n"));
    assert!(field.starts_with("rate_limit"), "{field}");
    assert!(msg.contains("window_ms"), "{msg}");

    let (_, _, msg) = invalid(&format!(
        "{HEAD}[rate_limit]\nrequests = -1\nwindow_ms = 1000\n"
    ));
    assert!(!msg.is_empty());

    let ok = Profile::parse(
        &format!(
            "{HEAD}[poll]\ninterval_ms = 2000\n[rate_limit]\nrequests = 10\nwindow_ms = 60000\n"
        ),
        "team.toml",
    )
    .unwrap();
    assert_eq!(ok.spec.poll.interval_ms, Some(2000));
    assert_eq!(ok.spec.rate_limit.map(|l| l.requests), Some(10));
}

#[test]
fn missing_files_name_the_file() {
    let e = Profile::load("/nonexistent/dir/p.toml")
        .unwrap_err()
        .to_string();
    assert!(e.contains("/nonexistent/dir/p.toml"), "{e}");
}

#[test]
fn event_bridge_tasks_stats_use_pulse_spellings() {
    let p = Profile::builtin("event-bridge").unwrap();
    let m = mapper(&p);
    let payload = json!({"pending": 2, "inProgress": 1, "completed": 3, "total": 6});
    let pushed = one_change(m.map_event("stats:tasks", &payload, 1).unwrap());
    let fetched = match m.map_rest("tasks_stats", &payload, 1).unwrap() {
        Effect::Change(c) => c,
        other => panic!("expected a change, got {other:?}"),
    };
    for c in [pushed, fetched] {
        let v = c.apply_to(None).unwrap();
        assert_eq!((c.kind(), c.id()), (EntityKind::Stats, "tasks"));
        assert_eq!((&v["in_progress"], &v["done"]), (&json!(1), &json!(3)));
        assert_eq!((&v["pending"], &v["total"]), (&json!(2), &json!(6)));
        assert!(v.get("inProgress").is_none() && v.get("completed").is_none());
    }
}
