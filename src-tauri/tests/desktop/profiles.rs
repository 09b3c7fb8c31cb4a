//! `pulse_core::server`, the core half of profile servers in the app (tested
//! here: only the desktop package is built in this suite).

use pulse_core::auth::Secret;
use pulse_core::credentials::{CredentialStore, MemoryCredentials};
use pulse_core::profile::BUILTIN;
use pulse_core::server::{self, Speaks, TokenError};

fn url() -> url::Url {
    url::Url::parse("http://127.0.0.1:4000/").unwrap()
}

#[test]
fn builtins_say_which_need_a_token() {
    let list = server::builtin_profiles();
    assert_eq!(list.len(), BUILTIN.len());
    let tasks = list.iter().find(|b| b.name == "tasks-gateway").unwrap();
    assert!(!tasks.needs_token);
    let bridge = list.iter().find(|b| b.name == "event-bridge").unwrap();
    assert!(bridge.needs_token);
    assert!(bridge.caveat.as_deref().unwrap().contains("replay"));
}

#[test]
fn native_names() {
    assert!(Speaks::parse("native").is_native());
    assert!(Speaks::parse(" ").is_native());
    assert!(!Speaks::parse("event-bridge").is_native());
}

#[test]
fn tokens_come_only_from_the_store() {
    let store = MemoryCredentials::default();
    assert_eq!(
        server::tokens(true, &store, &url()).err(),
        Some(TokenError::Missing)
    );
    assert!(server::tokens(false, &store, &url()).is_ok());
    server::save_token(&store, &url(), "  tok-1 ").unwrap();
    assert!(server::has_token(&store, &url()).unwrap());
    assert_eq!(
        store.load("access-token@http://127.0.0.1:4000").unwrap(),
        Some(Secret::new("tok-1"))
    );
    assert!(server::tokens(true, &store, &url()).is_ok());
    server::save_token(&store, &url(), "").unwrap();
    assert!(!server::has_token(&store, &url()).unwrap());
}

#[test]
fn a_bad_profile_file_names_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mine.toml");
    std::fs::write(&path, "name = \"x\"\ntransport = \"carrier-pigeon\"\n").unwrap();
    let e = server::open(path.to_str().unwrap(), None)
        .unwrap_err()
        .to_string();
    assert!(e.contains("mine.toml:2:"), "{e}");
    let e = server::open("no-such-profile", None)
        .unwrap_err()
        .to_string();
    assert!(e.contains("no built-in profile"), "{e}");
}

#[test]
fn opens_a_builtin_with_a_tenant() {
    let p = server::open("event-bridge", Some("acme")).unwrap();
    assert!(p.needs_token);
    assert_eq!(p.name, "event-bridge");
    assert!(p.caveat.is_some());
}

// ----- a saved profile server, through the shell, against a real peer -----

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use pulse_desktop::dto::{SavedServer, Settings};
use pulse_desktop::paths::Paths;
use pulse_desktop::shell::EnvOverrides;
use pulse_testkit::peers::{Kind, Peer};
use pulse_testkit::wait::holds_within;
use serde_json::{json, Value};

use crate::commands::{invoke, mock_shell, walk, Harness};

fn profile_harness(root: &Path, server: SavedServer, creds: Arc<MemoryCredentials>) -> Harness {
    let settings = Settings {
        active_server: Some(server.id.clone()),
        servers: vec![server],
        ..Settings::default()
    };
    Paths::under(root).save_settings(&settings).unwrap();
    mock_shell(root, EnvOverrides::default(), creds, Ok(()))
}

fn wait_boot(h: &Harness, what: &str, mut cond: impl FnMut(&Value) -> bool) -> Value {
    let mut last = Value::Null;
    if holds_within(Duration::from_secs(20), || {
        last = invoke(h, "bootstrap", json!({})).unwrap();
        cond(&last)
    }) {
        return last;
    }
    panic!("timed out waiting for {what}; last bootstrap: {last}");
}

fn stats(boot: &Value, scope: &str) -> Value {
    boot["entities"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["kind"] == "stats" && e["id"] == scope)
        .map(|e| e["data"].clone())
        .unwrap_or(Value::Null)
}

/// A saved `event-bridge` server (seed 001's dialect): signed out until its access
/// token is entered; then live against the real peer, its pushes land in the app's
/// state, the caveat is shown, and the token is only in the credential store.
#[test]
fn event_bridge_server_connects_with_a_token_from_the_keyring() {
    const TOKEN: &str = "eb-secret-token-7f3a";
    let peer = Peer::start(
        Kind::EventBridge,
        &[TOKEN],
        json!({"tasks": {"pending": 2, "inProgress": 1, "completed": 3, "total": 6}}),
        &[],
    );
    let dir = tempfile::tempdir().unwrap();
    let root: PathBuf = dir.path().to_path_buf();
    let creds = Arc::new(MemoryCredentials::default());
    let h = profile_harness(
        &root,
        SavedServer {
            id: "bridge".into(),
            name: "Bridge".into(),
            url: peer.url(),
            profile: "event-bridge".into(),
            ..SavedServer::default()
        },
        creds.clone(),
    );
    tauri::async_runtime::block_on(h.shell.start_network());
    let boot = invoke(&h, "bootstrap", json!({})).unwrap();
    assert_eq!(boot["connection"]["state"]["state"], "signed_out", "{boot}");
    let msg = boot["connection"]["state"]["message"].as_str().unwrap();
    assert!(msg.contains("access token"), "{msg}");
    assert_eq!(boot["account"]["profile"], "event-bridge");
    assert_eq!(boot["account"]["token_saved"], false);
    assert!(
        boot["profiles"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["name"] == "tasks-gateway" && p["needs_token"] == false),
        "{boot}"
    );

    let account = invoke(
        &h,
        "set_token",
        json!({"serverId": "bridge", "token": TOKEN}),
    )
    .unwrap();
    assert_eq!(account["token_saved"], true, "{account}");
    let boot = wait_boot(&h, "live with the pushed stats", |b| {
        b["connection"]["state"]["state"] == "live" && stats(b, "tasks")["total"] == 6
    });
    let caveat = boot["connection"]["caveat"].as_str().unwrap_or_default();
    assert!(caveat.contains("cannot replay"), "{boot}");

    // A live push lands in the app state.
    tauri::async_runtime::block_on(peer.control(
        "emit",
        json!({"type": "stats:approvals", "payload": {"pending": 4, "approved": 9, "rejected": 1}}),
    ));
    let boot = wait_boot(&h, "the pushed approvals stats", |b| {
        stats(b, "approvals")["pending"] == 4
    });
    // A stats-only server's badges (sidebar, tray) are its blocks' figures.
    assert_eq!(
        (
            boot["counts"]["pending_approvals"].clone(),
            boot["counts"]["tasks_in_progress"].clone()
        ),
        (json!(4), json!(1)),
        "{boot}"
    );

    tauri::async_runtime::block_on(h.shell.shutdown());
    let key = pulse_core::server::token_account(&peer.url().parse().unwrap());
    assert_eq!(creds.load(&key).unwrap(), Some(Secret::new(TOKEN)));
    for f in walk(&root) {
        let bytes = std::fs::read(&f).unwrap();
        assert!(
            !String::from_utf8_lossy(&bytes).contains(TOKEN),
            "token found in {}",
            f.display()
        );
    }
}

/// A profile file with a mistake: signed out, the message names the file and line.
#[test]
fn a_bad_profile_file_is_explained() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_path_buf();
    let file = root.join("ours.toml");
    std::fs::write(
        &file,
        "name = \"ours\"\ntransport = \"jsonws\"\nbogus = 1\n",
    )
    .unwrap();
    let h = profile_harness(
        &root,
        SavedServer {
            id: "ours".into(),
            name: "Ours".into(),
            url: "http://127.0.0.1:9".into(),
            profile: file.display().to_string(),
            ..SavedServer::default()
        },
        Arc::new(MemoryCredentials::default()),
    );
    tauri::async_runtime::block_on(h.shell.start_network());
    let boot = invoke(&h, "bootstrap", json!({})).unwrap();
    assert_eq!(boot["connection"]["state"]["state"], "signed_out", "{boot}");
    let msg = boot["connection"]["state"]["message"].as_str().unwrap();
    assert!(msg.contains("ours.toml:3:"), "{msg}");
}

/// A saved `agent-monitor` server (seed 000): the account says which actions it
/// takes; a move and a termination through the `perform` command reach the peer's
/// REST and come back done; an approval, which the profile does not declare, is
/// refused by the shell with the reason and never sent.
#[test]
fn agent_monitor_server_takes_its_declared_actions_through_the_shell() {
    let token = pulse_testkit::peers::jwt(json!({"sub": "ann", "tenant_id": "acme"}));
    let peer = Peer::start(
        Kind::AgentMonitor,
        &[&token],
        json!({
            "agents": [{"id": "a1", "name": "Ada", "status": "busy"}],
            "tickets": [{"id": "t1", "title": "Fix", "state": "todo"}],
        }),
        &[],
    );
    let dir = tempfile::tempdir().unwrap();
    let creds = Arc::new(MemoryCredentials::default());
    server::save_token(creds.as_ref(), &peer.url().parse().unwrap(), &token).unwrap();
    let h = profile_harness(
        dir.path(),
        SavedServer {
            id: "mon".into(),
            name: "Monitor".into(),
            url: peer.url(),
            profile: "agent-monitor".into(),
            ..SavedServer::default()
        },
        creds,
    );
    tauri::async_runtime::block_on(h.shell.start_network());
    let boot = wait_boot(&h, "live", |b| b["connection"]["state"]["state"] == "live");
    assert_eq!(
        boot["account"]["actions"],
        json!({"approve": false, "reject": false, "edit": false, "respond": false, "move_ticket": true, "terminate_agent": true})
    );
    assert_eq!(boot["account"]["takes_actions"], true);

    // The optimistic change the UI shows is the profile's declared one.
    let patch = invoke(
        &h,
        "optimistic",
        json!({"action": {"action": "terminate_agent", "id": "a1", "reason": null}}),
    )
    .unwrap();
    assert_eq!(patch, json!({"status": "terminating"}));
    let out = invoke(
        &h,
        "perform",
        json!({"action": {"action": "move_ticket", "id": "t1", "state": "review"}}),
    )
    .unwrap();
    assert_eq!(
        (
            out["outcome"].clone(),
            out["entity"]["data"]["state"].clone()
        ),
        (json!("done"), json!("review")),
        "{out}"
    );
    let out = invoke(
        &h,
        "perform",
        json!({"action": {"action": "terminate_agent", "id": "a1", "reason": "stuck"}}),
    )
    .unwrap();
    assert_eq!(out["entity"]["data"]["status"], "terminating", "{out}");
    let err = invoke(
        &h,
        "perform",
        json!({"action": {"action": "approve", "id": "x", "reason": null}}),
    )
    .unwrap_err();
    assert_eq!(err["code"], "unsupported", "{err}");
    assert!(
        err["message"].as_str().unwrap().contains("`approve`"),
        "{err}"
    );
    let info = tauri::async_runtime::block_on(peer.info());
    let reqs: Vec<(String, String)> = info["requests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["method"].as_str().unwrap().to_owned(),
                r["path"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        reqs,
        [
            ("PATCH".to_owned(), "/api/tickets/t1".to_owned()),
            ("POST".to_owned(), "/api/agents/a1/terminate".to_owned())
        ]
    );
    // The server's own event reconciles the move in the app's state.
    wait_boot(&h, "ticket t1 in review", |b| {
        b["entities"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["kind"] == "ticket" && e["id"] == "t1" && e["data"]["state"] == "review")
    });
    tauri::async_runtime::block_on(h.shell.shutdown());
}

/// A team's own profile that declares approve / reject: the notification's Approve
/// button reaches the server's REST, and a second Approve (already decided) comes
/// back to the app as a conflict, shown, not dropped.
#[test]
fn notification_buttons_act_on_a_profile_server_and_a_conflict_is_shown() {
    use pulse_core::policy::{EntityRef, NotificationAction, Origin};
    use pulse_desktop::notifier::Reply;
    use tauri::Listener;

    let token = pulse_testkit::peers::jwt(json!({"sub": "ann", "tenant_id": "acme"}));
    let peer = Peer::start(
        Kind::AgentMonitor,
        &[&token],
        json!({"approvals": [{"id": "ap1", "title": "Refund", "status": "pending"}]}),
        &[],
    );
    let profile = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("profiles/examples/agent-monitor-approvals.toml")
        .display()
        .to_string();
    let dir = tempfile::tempdir().unwrap();
    let creds = Arc::new(MemoryCredentials::default());
    server::save_token(creds.as_ref(), &peer.url().parse().unwrap(), &token).unwrap();
    let h = profile_harness(
        dir.path(),
        SavedServer {
            id: "team".into(),
            name: "Team".into(),
            url: peer.url(),
            profile,
            ..SavedServer::default()
        },
        creds,
    );
    let settled = Arc::new(std::sync::Mutex::new(Vec::<Value>::new()));
    let sink = settled.clone();
    h.webview
        .listen_any(pulse_desktop::dto::events::SETTLED, move |e| {
            sink.lock()
                .unwrap()
                .push(serde_json::from_str(e.payload()).unwrap());
        });
    tauri::async_runtime::block_on(h.shell.start_network());
    let boot = wait_boot(&h, "live", |b| b["connection"]["state"]["state"] == "live");
    assert_eq!(boot["account"]["actions"]["approve"], true, "{boot}");

    let here =
        tauri::async_runtime::block_on(h.shell.notification_origin()).expect("a session runs");
    assert_eq!(here.server, "team");
    let reply = |origin: Option<Origin>| Reply {
        target: Some(EntityRef {
            kind: pulse_protocol::domain::EntityKind::Approval,
            id: "ap1".into(),
        }),
        action: NotificationAction::Approve,
        origin,
    };
    // Stale: raised for another server, for another account here, or for none.
    let elsewhere = Origin {
        server: "ops".into(),
        server_name: "Ops".into(),
        ..here.clone()
    };
    let other_account = Origin {
        account: Some("bob".into()),
        ..here.clone()
    };
    for stale in [Some(elsewhere), Some(other_account), None] {
        tauri::async_runtime::block_on(h.shell.on_reply(reply(stale)));
    }
    tauri::async_runtime::block_on(h.shell.on_reply(reply(Some(here.clone()))));
    tauri::async_runtime::block_on(h.shell.on_reply(reply(Some(here))));
    let info = tauri::async_runtime::block_on(peer.info());
    let bodies: Vec<Value> = info["requests"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["path"] == "/api/approvals/ap1/approve")
        .map(|r| r["body"].clone())
        .collect();
    assert_eq!(
        bodies,
        [
            json!({"reason": "Approved from a notification"}),
            json!({"reason": "Approved from a notification"})
        ]
    );
    assert!(
        holds_within(Duration::from_secs(10), || settled.lock().unwrap().len()
            == 5),
        "{:?}",
        settled.lock().unwrap()
    );
    let mut got = settled.lock().unwrap().clone();
    // The three stale replies: refused with a message, nothing sent (the peer saw
    // only the two requests above).
    let refused: Vec<Value> = got.drain(..3).collect();
    for r in &refused {
        assert_eq!(r["outcome"]["outcome"], "rejected", "{r}");
        assert!(
            r["outcome"]["message"]
                .as_str()
                .unwrap()
                .contains("Nothing was sent"),
            "{r}"
        );
    }
    assert!(refused[0]["outcome"]["message"]
        .as_str()
        .unwrap()
        .contains("Ops"));
    assert_eq!(got[0]["outcome"]["outcome"], "done", "{got:?}");
    assert_eq!(got[0]["outcome"]["entity"]["data"]["status"], "approved");
    assert_eq!(got[1]["outcome"]["outcome"], "conflict", "{got:?}");
    assert_eq!(got[1]["outcome"]["message"], "Approval already approved");
    tauri::async_runtime::block_on(h.shell.shutdown());
}

/// "Always poll" in a saved server's settings: the shell's session never opens
/// the socket, the indicator says polling, the data comes over REST; turned off
/// in the settings, the session reconnects and the socket is taken.
#[test]
fn a_server_set_to_always_poll_is_polled_over_rest() {
    const TOKEN: &str = "eb-poll-token-2c9d";
    let peer = Peer::start(
        Kind::EventBridge,
        &[TOKEN],
        json!({"tasks": {"pending": 2, "inProgress": 1, "completed": 3, "total": 6}}),
        &[],
    );
    let dir = tempfile::tempdir().unwrap();
    let root: PathBuf = dir.path().to_path_buf();
    let creds = Arc::new(MemoryCredentials::default());
    let server = SavedServer {
        id: "bridge".into(),
        name: "Bridge".into(),
        url: peer.url(),
        profile: "event-bridge".into(),
        force_polling: true,
        ..SavedServer::default()
    };
    let h = profile_harness(&root, server.clone(), creds.clone());
    tauri::async_runtime::block_on(h.shell.start_network());
    invoke(
        &h,
        "set_token",
        json!({"serverId": "bridge", "token": TOKEN}),
    )
    .unwrap();
    let boot = wait_boot(&h, "polling with the stats", |b| {
        b["connection"]["state"]["state"] == "polling" && stats(b, "tasks")["total"] == 6
    });
    let reason = boot["connection"]["state"]["reason"].as_str().unwrap();
    assert!(reason.contains("settings"), "{boot}");
    let info = tauri::async_runtime::block_on(peer.info());
    assert_eq!(info["connections"], 0, "{info}");

    let mut settings = invoke(&h, "get_settings", json!({})).unwrap();
    settings["servers"][0]["force_polling"] = json!(false);
    invoke(&h, "save_settings", json!({"settings": settings})).unwrap();
    wait_boot(&h, "live on the socket", |b| {
        b["connection"]["state"]["state"] == "live"
    });
    let info = tauri::async_runtime::block_on(peer.info());
    assert!(info["connections"].as_u64() >= Some(1), "{info}");
    tauri::async_runtime::block_on(h.shell.shutdown());
}

/// A saved `tasks-gateway` server (seed 004): the UI's `say` reaches the server as
/// the seed's TaskDetail page says it (`task:join` / `task:leave` with the id), and
/// an intent the profile does not declare (presence) is refused, never sent.
#[test]
fn tasks_gateway_open_and_close_a_task_through_the_shell() {
    let peer = Peer::start(
        Kind::TasksGateway,
        &[],
        json!({"tasks": [{"id": "t1", "title": "Add login", "status": "analyzing"}]}),
        &[],
    );
    let dir = tempfile::tempdir().unwrap();
    let h = profile_harness(
        dir.path(),
        SavedServer {
            id: "tasks".into(),
            name: "Tasks".into(),
            url: peer.url(),
            profile: "tasks-gateway".into(),
            ..SavedServer::default()
        },
        Arc::default(),
    );
    tauri::async_runtime::block_on(h.shell.start_network());
    let boot = wait_boot(&h, "live", |b| b["connection"]["state"]["state"] == "live");
    assert_eq!(
        boot["account"]["intents"],
        json!(["open_task", "close_task"]),
        "{boot}"
    );
    let say = |intent: &str, value: &str| {
        invoke(&h, "say", json!({"intent": intent, "value": value})).unwrap()
    };
    assert_eq!(say("presence", "away"), json!(false));
    assert_eq!(say("open_task", "t1"), json!(true));
    assert_eq!(say("close_task", "t1"), json!(true));
    let received = || {
        let info = tauri::async_runtime::block_on(peer.info());
        info["received"].as_array().cloned().unwrap_or_default()
    };
    assert!(
        holds_within(Duration::from_secs(20), || received()
            .iter()
            .any(|r| r["event"] == "task:leave")),
        "{:?}",
        received()
    );
    let got: Vec<Value> = received()
        .into_iter()
        .filter(|r| r["event"] != "dashboard:join")
        .collect();
    assert_eq!(
        got,
        [
            json!({"event": "task:join", "data": {"taskId": "t1"}}),
            json!({"event": "task:leave", "data": {"taskId": "t1"}}),
        ]
    );
    assert!(invoke(&h, "say", json!({"intent": "wave", "value": "x"})).is_err());
    tauri::async_runtime::block_on(h.shell.shutdown());
}
