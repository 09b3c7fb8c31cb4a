//! The shell's commands through Tauri's mock runtime: real SQLite caches in a temp
//! dir, a real gateway on port 0, no window. The mock shell is built by
//! [`mock_shell`] for every test of this binary.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use pulse_core::auth::Secret;
use pulse_core::credentials::{CredentialError, MemoryCredentials};
use pulse_core::rest::RestClient;
use pulse_core::store::{AppliedEvent, SqliteStore, Store};
use pulse_desktop::dto::{SavedServer, Settings};
use pulse_desktop::paths::Paths;
use pulse_desktop::shell::{EnvOverrides, Shell};
use pulse_protocol::auth::{Role, TokenUse};
use pulse_protocol::rest::{IngestBody, IngestEvent};
use pulse_testkit::{gateway, wait_for};
use serde_json::{json, Value};
use tauri::ipc::{CallbackFn, InvokeBody};
use tauri::test::{
    get_ipc_response, mock_builder, mock_context, noop_assets, MockRuntime, INVOKE_KEY,
};
use tauri::webview::InvokeRequest;
use tauri::{App, WebviewWindow, WebviewWindowBuilder};

pub(crate) struct Harness {
    pub(crate) _app: App<MockRuntime>,
    pub(crate) webview: WebviewWindow<MockRuntime>,
    pub(crate) shell: Arc<Shell>,
    pub(crate) _dir: Option<tempfile::TempDir>,
}

/// The shell installed in Tauri's mock runtime with its data under `root`, and
/// its main webview. Keeps no directory alive: set `_dir` to own one.
pub(crate) fn mock_shell(
    root: &Path,
    env: EnvOverrides,
    creds: Arc<MemoryCredentials>,
    keyring: Result<(), CredentialError>,
) -> Harness {
    let app = mock_builder()
        .invoke_handler(pulse_desktop::handler())
        .build(mock_context(noop_assets()))
        .expect("mock app");
    let shell = pulse_desktop::install_shell(app.handle(), Paths::under(root), env, creds, keyring);
    let webview = WebviewWindowBuilder::new(&app, "main", Default::default())
        .build()
        .expect("mock webview");
    Harness {
        _app: app,
        webview,
        shell,
        _dir: None,
    }
}

/// [`mock_shell`] over `dir`, which it keeps, with empty credentials.
fn harness(
    dir: tempfile::TempDir,
    env: EnvOverrides,
    keyring: Result<(), CredentialError>,
) -> Harness {
    let root = dir.path().to_path_buf();
    Harness {
        _dir: Some(dir),
        ..mock_shell(&root, env, Arc::default(), keyring)
    }
}

pub(crate) fn invoke(h: &Harness, cmd: &str, args: Value) -> Result<Value, Value> {
    get_ipc_response(
        &h.webview,
        InvokeRequest {
            cmd: cmd.into(),
            callback: CallbackFn(0),
            error: CallbackFn(1),
            url: "tauri://localhost".parse().unwrap(),
            body: InvokeBody::Json(args),
            headers: Default::default(),
            invoke_key: INVOKE_KEY.to_string(),
        },
    )
    .map(|b| b.deserialize::<Value>().expect("json answer"))
}

/// A cache file for server `id` holding one pending approval and one ticket.
fn seed_cache(dir: &std::path::Path, id: &str) {
    let paths = Paths::under(dir);
    std::fs::create_dir_all(&paths.data_dir).unwrap();
    let mut store = SqliteStore::open(paths.cache_file(id)).unwrap();
    let events: Vec<AppliedEvent> = [
        ("approval.created", json!({"id": "ap-1", "title": "Deploy", "status": "pending"})),
        ("ticket.created", json!({"id": "t-1", "title": "Fix", "state": "todo"})),
    ]
    .into_iter()
    .enumerate()
    .map(|(i, (ty, data))| AppliedEvent {
        frame: serde_json::from_value(json!({
            "seq": i + 1, "id": format!("e{i}"), "stream": "acme", "type": ty, "ts": 1_700_000_000_000i64, "data": data
        }))
        .unwrap(),
        changes: pulse_protocol::changes_for(ty, &data, 1_700_000_000_000).unwrap(),
    })
    .collect();
    store.apply("epoch-1", &events).unwrap();
}

fn offline_profile(dir: &std::path::Path) {
    let settings = Settings {
        servers: vec![SavedServer {
            id: "work".into(),
            name: "Work".into(),
            // Nothing listens on port 9: any network use would fail.
            url: "http://127.0.0.1:9".into(),
            username: Some("ann".into()),
            ..SavedServer::default()
        }],
        active_server: Some("work".into()),
        ..Settings::default()
    };
    Paths::under(dir).save_settings(&settings).unwrap();
}

#[test]
fn bootstrap_paints_from_the_cache_without_network() {
    let dir = tempfile::tempdir().unwrap();
    seed_cache(dir.path(), "work");
    offline_profile(dir.path());
    let h = harness(dir, EnvOverrides::default(), Ok(()));
    let boot = invoke(&h, "bootstrap", json!({})).expect("bootstrap");
    let mut ids: Vec<&str> = boot["entities"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_str().unwrap())
        .collect();
    ids.sort();
    assert_eq!(ids, ["ap-1", "t-1"], "{boot}");
    assert_eq!(boot["counts"]["pending_approvals"], 1);
    assert!(boot["connection"]["last_sync_ms"].is_number(), "{boot}");
    assert_eq!(boot["settings"]["active_server"], "work");
    assert_eq!(boot["account"]["server_name"], "Work");
}

#[test]
fn signed_out_without_a_keyring_is_explained_and_actions_queue() {
    let dir = tempfile::tempdir().unwrap();
    seed_cache(dir.path(), "work");
    offline_profile(dir.path());
    let h = harness(
        dir,
        EnvOverrides::default(),
        Err(CredentialError::Unavailable("no Secret Service".into())),
    );
    tauri::async_runtime::block_on(h.shell.start_network());
    let boot = invoke(&h, "bootstrap", json!({})).unwrap();
    assert_eq!(boot["connection"]["state"]["state"], "signed_out", "{boot}");
    let msg = boot["connection"]["state"]["message"].as_str().unwrap();
    assert!(msg.contains("no Secret Service"), "{msg}");
    assert_eq!(boot["account"]["keyring_available"], false);
    // Offline and signed out, an approval still goes to the outbox.
    let out = invoke(
        &h,
        "perform",
        json!({"action": {"action": "approve", "id": "ap-1"}}),
    )
    .unwrap();
    assert_eq!(out["outcome"], "queued", "{out}");
    let boot = invoke(&h, "bootstrap", json!({})).unwrap();
    assert_eq!(boot["outbox"].as_array().unwrap().len(), 1);
    assert_eq!(boot["outbox"][0]["action"]["action"], "approve");
}

/// Signing out asks what becomes of the actions queued for the server: kept
/// (the default), they stay in its cache for the next sign-in; discarded, the
/// outbox is empty and the UI is told.
#[test]
fn signing_out_keeps_or_discards_the_queued_actions_as_chosen() {
    use tauri::Listener;
    let dir = tempfile::tempdir().unwrap();
    seed_cache(dir.path(), "work");
    offline_profile(dir.path());
    let root = dir.path().to_path_buf();
    // Bob queued an approval on this server before ann signed in: his, not hers.
    let bob = pulse_core::store::Owner {
        server: "work".into(),
        account: Some("bob".into()),
    };
    let bobs = SqliteStore::open(Paths::under(&root).cache_file("work"))
        .unwrap()
        .outbox_push(
            &bob,
            &pulse_core::store::Action::Approve {
                id: "ap-bob".into(),
                reason: None,
            },
            1,
        )
        .unwrap();
    let h = harness(dir, EnvOverrides::default(), Ok(()));
    let outbox_events = Arc::new(std::sync::Mutex::new(Vec::<Value>::new()));
    let sink = outbox_events.clone();
    h.webview
        .listen_any(pulse_desktop::dto::events::OUTBOX, move |e| {
            sink.lock()
                .unwrap()
                .push(serde_json::from_str(e.payload()).unwrap());
        });
    let queue = |h: &Harness, id: &str| {
        invoke(
            h,
            "perform",
            json!({"action": {"action": "approve", "id": id}}),
        )
    };
    let queued = |h: &Harness| {
        invoke(h, "bootstrap", json!({})).unwrap()["outbox"]
            .as_array()
            .unwrap()
            .len()
    };
    let out = queue(&h, "ap-1").unwrap();
    assert_eq!(out["outcome"], "queued", "{out}");
    invoke(&h, "logout", json!({})).unwrap();
    assert_eq!(queued(&h), 2, "kept by default");
    invoke(&h, "logout", json!({"queued": "keep"})).unwrap();
    assert_eq!(queued(&h), 2);
    // Kept in the server's own cache file, across a restart of the shell too,
    // each with the account it was queued for.
    let on_disk = SqliteStore::open(Paths::under(&root).cache_file("work"))
        .unwrap()
        .outbox()
        .unwrap();
    let owners: Vec<_> = on_disk.iter().map(|e| e.owner.clone()).collect();
    let ann = pulse_core::store::Owner {
        server: "work".into(),
        account: Some("ann".into()),
    };
    assert_eq!(owners, vec![Some(bob.clone()), Some(ann)]);
    // Signed out, nobody is known to act as: refused, nothing queued.
    let err = queue(&h, "ap-x").unwrap_err();
    assert_eq!(err["code"], "signed_out", "{err}");
    assert_eq!(queued(&h), 2);

    // Ann signed in again (a shell started on the same data): her next action is
    // queued for her, and discarding at sign-out drops hers only.
    offline_profile(&root);
    let h2 = mock_shell(&root, EnvOverrides::default(), Arc::default(), Ok(()));
    let events2 = Arc::new(std::sync::Mutex::new(Vec::<Value>::new()));
    let sink = events2.clone();
    h2.webview
        .listen_any(pulse_desktop::dto::events::OUTBOX, move |e| {
            sink.lock()
                .unwrap()
                .push(serde_json::from_str(e.payload()).unwrap());
        });
    assert_eq!(queue(&h2, "ap-2").unwrap()["outcome"], "queued");
    let err = invoke(&h2, "logout", json!({"queued": "burn"})).unwrap_err();
    assert!(err.to_string().contains("burn") || err.is_string(), "{err}");
    assert_eq!(queued(&h2), 3, "a garbage choice changes nothing");
    invoke(&h2, "logout", json!({"queued": "discard"})).unwrap();
    assert_eq!(queued(&h2), 1, "bob's entry stays for bob");
    let left = events2.lock().unwrap().last().cloned().unwrap();
    assert_eq!(left.as_array().unwrap().len(), 1, "{left}");
    assert_eq!(left[0]["id"], bobs);
    assert_eq!(
        left[0]["owner"],
        json!({"server": "work", "account": "bob"})
    );
    // Bob's entry is discarded only when the user asks for it by id.
    let after = invoke(&h2, "discard_queued", json!({"ids": [bobs, 9999]})).unwrap();
    assert_eq!(after, json!([]));
    assert_eq!(queued(&h2), 0);
    assert!(outbox_events.lock().unwrap().iter().all(|e| e.is_array()));
}

#[test]
fn settings_round_trip_and_bad_urls_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_path_buf();
    let h = harness(dir, EnvOverrides::default(), Ok(()));
    let mut s = serde_json::to_value(Settings::default()).unwrap();
    s["theme"] = json!("dark");
    s["notifications"]["agent_failures"] = json!(true);
    let saved = invoke(&h, "save_settings", json!({ "settings": s })).unwrap();
    assert_eq!(saved["theme"], "dark");
    assert_eq!(
        invoke(&h, "get_settings", json!({})).unwrap()["theme"],
        "dark"
    );
    let on_disk = std::fs::read_to_string(Paths::under(&root).settings_file()).unwrap();
    assert!(on_disk.contains("\"agent_failures\": true"));
    s["servers"] = json!([{ "id": "x", "name": "X", "url": "ftp://nope", "profile": "native" }]);
    let err = invoke(&h, "save_settings", json!({ "settings": s })).unwrap_err();
    assert_eq!(err["code"], "invalid", "{err}");
    let paused = invoke(&h, "pause_notifications", json!({ "minutes": 60 })).unwrap();
    assert!(
        paused["notifications"]["dnd_until_ms"].as_f64().unwrap() > pulse_core::now_ms() as f64
    );
    assert!(h.shell.paused());
    invoke(&h, "pause_notifications", json!({ "minutes": null })).unwrap();
    assert!(!h.shell.paused());
}

#[test]
fn mark_read_persists() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_path_buf();
    let h = harness(dir, EnvOverrides::default(), Ok(()));
    invoke(
        &h,
        "mark_read",
        json!({ "keys": ["approval:a1", "notification:n2"] }),
    )
    .unwrap();
    let boot = invoke(&h, "bootstrap", json!({})).unwrap();
    assert_eq!(boot["read"], json!(["approval:a1", "notification:n2"]));
    assert!(Paths::under(&root).load_read().contains("approval:a1"));
}

/// Every log line of this test binary from the moment [`trace_logs`] is called:
/// the shell's own filter (`pulse_desktop::log_filter`) at `trace`, as
/// `PULSE_LOG=trace` gives it, written to memory.
fn trace_logs() -> Arc<std::sync::Mutex<Vec<u8>>> {
    static LOGS: std::sync::OnceLock<Arc<std::sync::Mutex<Vec<u8>>>> = std::sync::OnceLock::new();
    LOGS.get_or_init(|| {
        let buf = Arc::new(std::sync::Mutex::new(Vec::new()));
        let sink = buf.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_env_filter(pulse_desktop::log_filter(Some("trace")))
            .with_ansi(false)
            .with_writer(move || Capture(sink.clone()))
            .finish();
        tracing::subscriber::set_global_default(subscriber).expect("the only global subscriber");
        buf
    })
    .clone()
}

struct Capture(Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Capture {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Against a real gateway: live data arrives, Approve changes it on the server, and
/// the token never reaches the cache or the settings. The shell runs at trace
/// level (its own filter), and every byte it logged and wrote under its data
/// folder (settings, cache with `-wal`/`-shm`, read marks) is searched for the
/// token and for its signature alone.
#[test]
fn live_session_against_a_real_gateway() {
    let logs = trace_logs();
    let gw = tauri::async_runtime::block_on(pulse_gateway::Gateway::start(gateway::config()))
        .expect("gateway");
    let mint = |role| gateway::token("acme", "ann", role, TokenUse::Access);
    let viewer = mint(Role::Viewer);
    let publisher = Secret::new(mint(Role::Publisher));
    let rest = RestClient::new(gw.url().parse().unwrap()).unwrap();
    let ingest = |ty: &str, data: Value| {
        let body = IngestBody::One(IngestEvent {
            tenant: None,
            event_type: ty.into(),
            data,
            id: None,
            user: None,
        });
        tauri::async_runtime::block_on(rest.ingest(&publisher, &body)).expect("ingest");
    };
    ingest(
        "approval.created",
        json!({"id": "ap-9", "title": "Ship it"}),
    );

    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_path_buf();
    let env = EnvOverrides {
        server: Some(gw.url()),
        token: Some(Secret::new(viewer.clone())),
        ..EnvOverrides::default()
    };
    let h = harness(dir, env, Ok(()));
    tauri::async_runtime::block_on(h.shell.start_network());
    let has = |h: &Harness, id: &str, status: &str| {
        let boot = invoke(h, "bootstrap", json!({})).unwrap();
        boot["connection"]["state"]["state"] == "live"
            && boot["entities"]
                .as_array()
                .unwrap()
                .iter()
                .any(|e| e["id"] == id && e["data"]["status"] == status)
    };
    wait_for("the snapshot's approval", Duration::from_secs(15), || {
        has(&h, "ap-9", "pending")
    });
    ingest(
        "approval.created",
        json!({"id": "ap-10", "title": "Live one"}),
    );
    wait_for("a live approval", Duration::from_secs(15), || {
        has(&h, "ap-10", "pending")
    });

    let out = invoke(
        &h,
        "perform",
        json!({"action": {"action": "approve", "id": "ap-10", "reason": "ok"}}),
    )
    .unwrap();
    assert_eq!(out["outcome"], "done", "{out}");
    assert_eq!(out["entity"]["data"]["status"], "approved");
    wait_for("the decision in the cache", Duration::from_secs(15), || {
        has(&h, "ap-10", "approved")
    });
    // Approving again is a conflict, reported, not dropped.
    let again = invoke(
        &h,
        "perform",
        json!({"action": {"action": "reject", "id": "ap-10"}}),
    )
    .unwrap();
    assert_eq!(again["outcome"], "conflict", "{again}");

    tauri::async_runtime::block_on(h.shell.shutdown());
    let signature = viewer.rsplit('.').next().unwrap().to_owned();
    assert!(signature.len() >= 20, "{signature}");
    // No credential on disk.
    let files = walk(&root);
    assert!(
        files.iter().any(|f| f.to_string_lossy().ends_with(".db")),
        "{files:?}"
    );
    for entry in &files {
        let bytes = std::fs::read(entry).unwrap();
        let text = String::from_utf8_lossy(&bytes);
        for secret in [viewer.as_str(), signature.as_str()] {
            assert!(!text.contains(secret), "token found in {}", entry.display());
        }
    }
    // Nor in any log line, at trace level.
    let logged = String::from_utf8_lossy(&logs.lock().unwrap()).into_owned();
    let trace_lines = logged.lines().filter(|l| l.contains("TRACE")).count();
    assert!(trace_lines > 0, "trace level was on");
    for secret in [viewer.as_str(), signature.as_str()] {
        assert!(!logged.contains(secret), "token found in the log");
    }
    println!(
        "FIGURE desktop shell at trace: {} log lines ({trace_lines} at trace) and {} files searched, 0 occurrences",
        logged.lines().count(),
        files.len()
    );
    tauri::async_runtime::block_on(gw.shutdown());
}

/// The core forwards updates without a timer (issue 12: one coalescing stage, the
/// UI's frame): a burst published to a real gateway reaches the webview as `updates`
/// events that end with every touched entity's last state, none dropped, in fewer
/// updates than events (what was queued together is coalesced).
#[test]
fn a_burst_reaches_the_ui_with_every_last_state() {
    use tauri::Listener;
    let gw = tauri::async_runtime::block_on(pulse_gateway::Gateway::start(gateway::config()))
        .expect("gateway");
    let mint = |role| gateway::token("acme", "ann", role, TokenUse::Access);
    let publisher = Secret::new(mint(Role::Publisher));
    let rest = RestClient::new(gw.url().parse().unwrap()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let env = EnvOverrides {
        server: Some(gw.url()),
        token: Some(Secret::new(mint(Role::Viewer))),
        ..EnvOverrides::default()
    };
    let h = harness(dir, env, Ok(()));
    let seen: Arc<std::sync::Mutex<Vec<Value>>> = Arc::default();
    let sink = seen.clone();
    h.webview
        .listen_any(pulse_desktop::dto::events::UPDATES, move |e| {
            let v: Value = serde_json::from_str(e.payload()).expect("updates payload");
            sink.lock()
                .unwrap()
                .extend(v["updates"].as_array().cloned().unwrap_or_default());
        });
    let resets = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let r = resets.clone();
    h.webview
        .listen_any(pulse_desktop::dto::events::RESET, move |_| {
            r.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        });
    tauri::async_runtime::block_on(h.shell.start_network());
    wait_for("live", Duration::from_secs(15), || {
        invoke(&h, "bootstrap", json!({})).unwrap()["connection"]["state"]["state"] == "live"
    });
    // Once a live event has come through as an update, the snapshot is in (a later
    // snapshot would reset the UI, which then reloads from the cache instead).
    let one = |id: String| IngestEvent {
        tenant: None,
        event_type: "agent.upserted".into(),
        data: json!({"id": id, "name": "warm-up"}),
        id: None,
        user: None,
    };
    let mut n = 0;
    wait_for("a live update", Duration::from_secs(15), || {
        n += 1;
        tauri::async_runtime::block_on(
            rest.ingest(&publisher, &IngestBody::One(one(format!("warm-{n}")))),
        )
        .expect("ingest");
        let seen = seen.lock().unwrap();
        seen.iter()
            .any(|u| u["id"].as_str().is_some_and(|i| i.starts_with("warm-")))
    });
    seen.lock().unwrap().clear();
    let resets_before = resets.load(std::sync::atomic::Ordering::SeqCst);
    // 50 agents, 10 heartbeats each, in bodies of 100 events.
    let (agents, beats) = (50u64, 10u64);
    let events: Vec<IngestEvent> = (0..agents * beats)
        .map(|k| IngestEvent {
            tenant: None,
            event_type: "agent.upserted".into(),
            data: json!({"id": format!("ag-{}", k % agents), "name": "A", "load": k}),
            id: None,
            user: None,
        })
        .collect();
    for chunk in events.chunks(100) {
        tauri::async_runtime::block_on(rest.ingest(&publisher, &IngestBody::Batch(chunk.to_vec())))
            .expect("ingest");
    }
    let last = |seen: &[Value]| {
        let mut m = std::collections::HashMap::new();
        for u in seen {
            let id = u["id"].as_str().unwrap_or("");
            if id.starts_with("ag-") {
                m.insert(id.to_owned(), u["data"]["load"].as_u64());
            }
        }
        m
    };
    wait_for("every agent's last state", Duration::from_secs(15), || {
        let m = last(&seen.lock().unwrap());
        (0..agents).all(|a| m.get(&format!("ag-{a}")) == Some(&Some(agents * (beats - 1) + a)))
    });
    assert_eq!(
        resets.load(std::sync::atomic::Ordering::SeqCst),
        resets_before,
        "no reload during the burst"
    );
    let seen = seen.lock().unwrap().clone();
    let m = last(&seen);
    assert_eq!(
        m.len() as u64,
        agents,
        "only the agents were updated: {m:?}"
    );
    assert!(
        seen.len() as u64 <= agents * beats,
        "{} updates for {} events",
        seen.len(),
        agents * beats
    );
    tauri::async_runtime::block_on(h.shell.shutdown());
    tauri::async_runtime::block_on(gw.shutdown());
}

pub(crate) fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

#[test]
fn deep_links_reach_the_ui_as_navigation() {
    let t = pulse_desktop::deeplink::parse("pulse://approvals/ap-3").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let h = harness(dir, EnvOverrides::default(), Ok(()));
    h.shell.open_at_start(t);
    let boot = invoke(&h, "bootstrap", json!({})).unwrap();
    assert_eq!(
        boot["open"],
        json!({"kind": "approval", "id": "ap-3", "page": "approvals"})
    );
    // Only once.
    assert_eq!(
        invoke(&h, "bootstrap", json!({})).unwrap()["open"],
        Value::Null
    );
}

/// Signing in from Settings: the refresh token goes to the credential store (the OS
/// keyring in the app), never to the settings file or the cache; the session runs.
#[test]
fn login_stores_the_refresh_token_only_in_the_credential_store() {
    let gw = tauri::async_runtime::block_on(pulse_gateway::Gateway::start(pulse_gateway::Config {
        users: vec!["ann:hunter2:acme".parse().unwrap()],
        ..gateway::config()
    }))
    .expect("gateway");
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_path_buf();
    let settings = Settings {
        servers: vec![SavedServer {
            id: "gw".into(),
            name: "Gateway".into(),
            url: gw.url(),
            ..SavedServer::default()
        }],
        active_server: Some("gw".into()),
        ..Settings::default()
    };
    Paths::under(&root).save_settings(&settings).unwrap();
    let creds = Arc::new(MemoryCredentials::default());
    let h = Harness {
        _dir: Some(dir),
        ..mock_shell(&root, EnvOverrides::default(), creds.clone(), Ok(()))
    };
    tauri::async_runtime::block_on(h.shell.start_network());
    let boot = invoke(&h, "bootstrap", json!({})).unwrap();
    assert_eq!(boot["connection"]["state"]["state"], "signed_out", "{boot}");

    let bad = invoke(
        &h,
        "login",
        json!({"serverId": "gw", "username": "ann", "password": "wrong"}),
    )
    .unwrap_err();
    assert_eq!(bad["code"], "auth", "{bad}");
    let account = invoke(
        &h,
        "login",
        json!({"serverId": "gw", "username": "ann", "password": "hunter2"}),
    )
    .unwrap();
    assert_eq!(account["username"], "ann");
    wait_for("live after sign-in", Duration::from_secs(15), || {
        invoke(&h, "bootstrap", json!({})).unwrap()["connection"]["state"]["state"] == "live"
    });
    use pulse_core::credentials::CredentialStore;
    let key = pulse_core::credentials::account_key(&gw.url().parse().unwrap(), "ann");
    let refresh = creds.load(&key).unwrap().expect("refresh token stored");
    tauri::async_runtime::block_on(h.shell.shutdown());
    for entry in walk(&root) {
        let text = String::from_utf8_lossy(&std::fs::read(&entry).unwrap()).into_owned();
        assert!(
            !text.contains(refresh.expose()),
            "refresh token found in {}",
            entry.display()
        );
        assert!(
            !text.contains("hunter2"),
            "password found in {}",
            entry.display()
        );
    }
    assert_eq!(
        Paths::under(&root).load_settings().servers[0]
            .username
            .as_deref(),
        Some("ann")
    );
    tauri::async_runtime::block_on(gw.shutdown());
}

/// A saved server of two nodes whose first is down: the sign-in is made at the
/// other node and the session goes live there (the core's failover), the sign-in
/// kept under the first URL.
#[test]
fn a_saved_server_whose_first_node_is_down_signs_in_and_goes_live_on_the_next() {
    let gw = tauri::async_runtime::block_on(pulse_gateway::Gateway::start(pulse_gateway::Config {
        users: vec!["ann:hunter2:acme".parse().unwrap()],
        ..gateway::config()
    }))
    .expect("gateway");
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_path_buf();
    // Nothing listens on port 9.
    let first = "http://127.0.0.1:9";
    let settings = Settings {
        servers: vec![SavedServer {
            id: "cluster".into(),
            name: "Cluster".into(),
            url: first.into(),
            nodes: vec![gw.url()],
            ..SavedServer::default()
        }],
        active_server: Some("cluster".into()),
        ..Settings::default()
    };
    Paths::under(&root).save_settings(&settings).unwrap();
    let creds = Arc::new(MemoryCredentials::default());
    let h = Harness {
        _dir: Some(dir),
        ..mock_shell(&root, EnvOverrides::default(), creds.clone(), Ok(()))
    };
    tauri::async_runtime::block_on(h.shell.start_network());
    let account = invoke(
        &h,
        "login",
        json!({"serverId": "cluster", "username": "ann", "password": "hunter2"}),
    )
    .unwrap();
    assert_eq!(account["username"], "ann");
    wait_for("live on the second node", Duration::from_secs(15), || {
        invoke(&h, "bootstrap", json!({})).unwrap()["connection"]["state"]["state"] == "live"
    });
    use pulse_core::credentials::CredentialStore;
    let key = pulse_core::credentials::account_key(&first.parse().unwrap(), "ann");
    assert!(
        creds.load(&key).unwrap().is_some(),
        "kept under the first URL"
    );
    let saved = Paths::under(&root).load_settings();
    assert_eq!(saved.servers[0].nodes, [gw.url()], "the nodes are kept");
    tauri::async_runtime::block_on(h.shell.shutdown());
    tauri::async_runtime::block_on(gw.shutdown());
}

/// A corrupt cache is moved aside at start and the user is told what was lost:
/// the message is in the bootstrap (the UI's banner), not only in the log. A
/// healthy cache has none.
#[test]
fn a_corrupt_cache_set_aside_at_start_is_told_in_the_bootstrap() {
    let dir = tempfile::tempdir().unwrap();
    offline_profile(dir.path());
    let paths = Paths::under(dir.path());
    std::fs::create_dir_all(&paths.data_dir).unwrap();
    std::fs::write(
        paths.cache_file("work"),
        b"not a database, garbage".repeat(300),
    )
    .unwrap();
    let h = harness(dir, EnvOverrides::default(), Ok(()));
    let boot = invoke(&h, "bootstrap", json!({})).expect("bootstrap");
    let message = boot["cache_set_aside"]
        .as_str()
        .expect("a set-aside message");
    assert!(message.starts_with("The cache was damaged"), "{message}");
    assert!(message.contains("queued"), "{message}");
    // The new cache works, and a second bootstrap of the same run still tells it.
    assert_eq!(boot["entities"], json!([]));
    assert_eq!(boot["more"], Value::Null, "nothing to stream: {boot}");
    assert_eq!(boot["loading"], json!([]));
    let again = invoke(&h, "bootstrap", json!({})).expect("bootstrap");
    assert_eq!(again["cache_set_aside"], boot["cache_set_aside"]);

    let dir = tempfile::tempdir().unwrap();
    seed_cache(dir.path(), "work");
    offline_profile(dir.path());
    let h = harness(dir, EnvOverrides::default(), Ok(()));
    let boot = invoke(&h, "bootstrap", json!({})).expect("bootstrap");
    assert_eq!(boot["cache_set_aside"], Value::Null);
}

/// The CA file of the settings (an enterprise's private CA): a file Pulse cannot
/// use is refused at save with its reason; before it is given, the gateway behind
/// a TLS front with a private certificate is refused ("certificate"); once saved,
/// the sign-in and the session go through it. The only test of this binary that
/// trusts a CA (a process trusts one file).
#[test]
fn a_ca_file_in_the_settings_is_checked_at_save_and_then_trusted() {
    let gw = tauri::async_runtime::block_on(pulse_gateway::Gateway::start(pulse_gateway::Config {
        users: vec!["ann:hunter2:acme".parse().unwrap()],
        ..gateway::config()
    }))
    .expect("gateway");
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_path_buf();
    let ca = pulse_testkit::tls::test_ca(&root);
    let upstream: std::net::SocketAddr = gw
        .url()
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .parse()
        .unwrap();
    let front = pulse_testkit::tls::TlsFront::start(upstream, &ca.cert, &ca.key);
    let settings = Settings {
        servers: vec![SavedServer {
            id: "corp".into(),
            name: "Corp".into(),
            url: front.url(),
            ..SavedServer::default()
        }],
        active_server: Some("corp".into()),
        ..Settings::default()
    };
    Paths::under(&root).save_settings(&settings).unwrap();
    let h = Harness {
        _dir: Some(dir),
        ..mock_shell(&root, EnvOverrides::default(), Arc::default(), Ok(()))
    };
    let login = || {
        invoke(
            &h,
            "login",
            json!({"serverId": "corp", "username": "ann", "password": "hunter2"}),
        )
    };
    let refused = login().unwrap_err();
    assert!(
        refused["message"].as_str().unwrap().contains("certificate"),
        "{refused}"
    );

    let garbage = root.join("garbage.pem");
    std::fs::write(&garbage, b"-----BEGIN CERTIFICATE-----\n%%%%\n").unwrap();
    for bad in [garbage, root.join("missing.pem")] {
        let mut s = h.shell.settings();
        s.ca_file = Some(bad.display().to_string());
        let err = invoke(&h, "save_settings", json!({ "settings": s })).unwrap_err();
        assert_eq!(err["code"], "invalid", "{err}");
        assert!(
            err["message"]
                .as_str()
                .unwrap()
                .contains(&bad.display().to_string()),
            "{err}"
        );
        assert_eq!(Paths::under(&root).load_settings().ca_file, None);
    }

    let mut s = h.shell.settings();
    s.ca_file = Some(format!("  {}  ", ca.ca.display()));
    let saved = invoke(&h, "save_settings", json!({ "settings": s })).unwrap();
    assert_eq!(saved["ca_file"], json!(ca.ca.display().to_string()));
    assert_eq!(
        Paths::under(&root).load_settings().ca_file.as_deref(),
        Some(ca.ca.display().to_string().as_str())
    );
    let account = login().unwrap();
    assert_eq!(account["username"], "ann");
    wait_for(
        "live through the TLS front",
        Duration::from_secs(15),
        || invoke(&h, "bootstrap", json!({})).unwrap()["connection"]["state"]["state"] == "live",
    );
    tauri::async_runtime::block_on(h.shell.shutdown());
    tauri::async_runtime::block_on(gw.shutdown());
}

/// A saved server on plain http to another machine is refused (signed out with
/// the reason, and no sign-in sent) until its "Allow plain http" is on. No
/// network is used: the refusal comes first.
#[test]
fn a_saved_server_on_plain_http_off_this_machine_needs_its_opt_in() {
    let dir = tempfile::tempdir().unwrap();
    let settings = Settings {
        servers: vec![SavedServer {
            id: "lan".into(),
            name: "Lan".into(),
            url: "http://10.255.255.1:9".into(),
            username: Some("ann".into()),
            ..SavedServer::default()
        }],
        active_server: Some("lan".into()),
        ..Settings::default()
    };
    Paths::under(dir.path()).save_settings(&settings).unwrap();
    let h = harness(dir, EnvOverrides::default(), Ok(()));
    tauri::async_runtime::block_on(h.shell.start_network());
    let boot = invoke(&h, "bootstrap", json!({})).unwrap();
    let state = &boot["connection"]["state"];
    assert_eq!(state["state"], "signed_out", "{boot}");
    let message = state["message"].as_str().unwrap();
    assert!(
        message.contains("plain http to another machine"),
        "{message}"
    );
    assert!(
        message.contains("“Allow plain http” in the settings of Lan"),
        "{message}"
    );
    let err = invoke(
        &h,
        "login",
        json!({"serverId": "lan", "username": "ann", "password": "hunter2"}),
    )
    .unwrap_err();
    assert_eq!(err["code"], "invalid", "{err}");
    assert!(
        err["message"]
            .as_str()
            .unwrap()
            .contains("Allow plain http"),
        "{err}"
    );
    // The opt-in is a saved field of the server.
    let mut s = h.shell.settings();
    s.servers[0].allow_plain_http = true;
    let saved = invoke(&h, "save_settings", json!({ "settings": s })).unwrap();
    assert_eq!(saved["servers"][0]["allow_plain_http"], true);
    tauri::async_runtime::block_on(h.shell.shutdown());
}

/// A cache for server `id` with `tickets` tickets, three agents and two stats blocks.
fn seed_large_cache(dir: &std::path::Path, id: &str, tickets: usize) {
    let paths = Paths::under(dir);
    std::fs::create_dir_all(&paths.data_dir).unwrap();
    let mut store = SqliteStore::open(paths.cache_file(id)).unwrap();
    let mut events: Vec<(&str, Value)> = (0..tickets)
        .map(|i| {
            let state = ["todo", "in_progress", "done"][i % 3];
            (
                "ticket.created",
                json!({"id": format!("t-{i:05}"), "title": format!("Fix {i}"), "state": state}),
            )
        })
        .collect();
    for (i, status) in ["working", "failed", "terminated"].iter().enumerate() {
        events.push((
            "agent.upserted",
            json!({"id": format!("ag-{i}"), "name": format!("A{i}"), "status": status}),
        ));
    }
    events.push((
        "stats.updated",
        json!({"scope": "system", "stats": {"cpu": 3}}),
    ));
    events.push((
        "stats.updated",
        json!({"scope": "queue", "stats": {"depth": 9}}),
    ));
    let applied: Vec<AppliedEvent> = events
        .into_iter()
        .enumerate()
        .map(|(i, (ty, data))| AppliedEvent {
            frame: serde_json::from_value(json!({
                "seq": i + 1, "id": format!("e{i}"), "stream": "acme", "type": ty, "ts": 1_700_000_000_000i64, "data": data
            }))
            .unwrap(),
            changes: pulse_protocol::changes_for(ty, &data, 1_700_000_000_000).unwrap(),
        })
        .collect();
    store.apply("epoch-1", &applied).unwrap();
}

fn kind_count(entities: &Value, kind: &str) -> usize {
    entities
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == kind)
        .count()
}

/// A cache larger than the bootstrap's first piece: the first piece has the counts,
/// every stats block and the first rows of each other kind; the rest comes in chunks
/// of at most `BOOTSTRAP_CHUNK`, and the pieces together are the cache, each entity
/// once, as the store holds it. A stream that ended, was replaced, or was never
/// handed out is refused (`stale`), and a garbage stream id is refused too.
#[test]
fn bootstrap_comes_in_pieces_that_add_up_to_the_cache() {
    use pulse_desktop::shell::{BOOTSTRAP_CHUNK, FIRST_ROWS};
    let tickets = FIRST_ROWS + BOOTSTRAP_CHUNK + 7;
    let dir = tempfile::tempdir().unwrap();
    seed_large_cache(dir.path(), "work", tickets);
    offline_profile(dir.path());
    let cache = Paths::under(dir.path()).cache_file("work");
    let h = harness(dir, EnvOverrides::default(), Ok(()));
    let boot = invoke(&h, "bootstrap", json!({})).expect("bootstrap");
    assert_eq!(kind_count(&boot["entities"], "ticket"), FIRST_ROWS);
    assert_eq!(kind_count(&boot["entities"], "agent"), 3);
    assert_eq!(kind_count(&boot["entities"], "stats"), 2);
    assert_eq!(boot["loading"], json!(["ticket"]));
    // The overview's figures are the whole cache's, from the first piece on.
    let c = &boot["counts"];
    assert_eq!(c["tasks_total"], tickets);
    let of_state = |r: usize| (0..tickets).filter(|i| i % 3 == r).count();
    assert_eq!(c["tasks_done"], of_state(2));
    assert_eq!(c["tasks_in_progress"], of_state(1));
    assert_eq!(
        (
            c["live_agents"].as_u64(),
            c["working_agents"].as_u64(),
            c["failing_agents"].as_u64()
        ),
        (Some(2), Some(1), Some(1))
    );
    let stream = boot["more"].as_u64().expect("a stream for the rest");

    let mut got: Vec<Value> = boot["entities"].as_array().unwrap().clone();
    let mut chunks = 0;
    loop {
        let chunk = invoke(&h, "bootstrap_more", json!({"stream": stream})).expect("a chunk");
        let n = chunk["entities"].as_array().unwrap().len();
        assert!(n > 0 && n <= BOOTSTRAP_CHUNK, "{n}");
        got.extend(chunk["entities"].as_array().unwrap().iter().cloned());
        chunks += 1;
        if chunk["more"] == false {
            assert_eq!(chunk["loading"], json!([]));
            break;
        }
        assert_eq!(chunk["loading"], json!(["ticket"]));
        assert!(chunks < 10, "the stream does not end");
    }
    assert_eq!(chunks, 2);
    let store = SqliteStore::open_read_only(&cache).unwrap();
    let want: Vec<Value> = store
        .all()
        .unwrap()
        .iter()
        .map(|e| serde_json::to_value(e).unwrap())
        .collect();
    assert_eq!(got.len(), want.len());
    let key = |e: &Value| format!("{}:{}", e["kind"], e["id"]);
    let mut got_sorted = got.clone();
    got_sorted.sort_by_key(key);
    let mut want_sorted = want.clone();
    want_sorted.sort_by_key(key);
    assert_eq!(got_sorted, want_sorted, "each entity once, as stored");

    // Ended: refused.
    let e = invoke(&h, "bootstrap_more", json!({"stream": stream})).unwrap_err();
    assert_eq!(e["code"], "stale", "{e}");
    // Replaced by a newer bootstrap (which reads the cache again): refused.
    let again = invoke(&h, "bootstrap", json!({})).unwrap();
    let newer = again["more"].as_u64().unwrap();
    assert_ne!(newer, stream);
    assert_eq!(
        invoke(&h, "bootstrap_more", json!({"stream": stream})).unwrap_err()["code"],
        "stale"
    );
    assert_eq!(
        invoke(&h, "bootstrap_more", json!({"stream": newer + 1})).unwrap_err()["code"],
        "stale"
    );
    // Garbage in: an error, and the current stream still answers.
    for garbage in [
        json!({"stream": "x"}),
        json!({"stream": -1}),
        json!({}),
        json!({"stream": null}),
    ] {
        assert!(
            invoke(&h, "bootstrap_more", garbage.clone()).is_err(),
            "{garbage}"
        );
    }
    let chunk = invoke(&h, "bootstrap_more", json!({"stream": newer})).unwrap();
    assert_eq!(chunk["entities"].as_array().unwrap().len(), BOOTSTRAP_CHUNK);
}

/// An empty cache: the whole bootstrap is its first piece, no stream.
#[test]
fn an_empty_cache_bootstraps_without_a_stream() {
    let dir = tempfile::tempdir().unwrap();
    offline_profile(dir.path());
    let h = harness(dir, EnvOverrides::default(), Ok(()));
    let boot = invoke(&h, "bootstrap", json!({})).expect("bootstrap");
    assert_eq!(boot["entities"], json!([]));
    assert_eq!(boot["more"], Value::Null);
    assert_eq!(boot["loading"], json!([]));
    assert_eq!(boot["counts"]["tasks_total"], 0);
    assert_eq!(
        invoke(&h, "bootstrap_more", json!({"stream": 1})).unwrap_err()["code"],
        "stale"
    );
}
