//! `pulse_core::saved_profile`, the core half of profile servers in the app (tested
//! here: only the desktop package is built in this suite).

use pulse_core::auth::Secret;
use pulse_core::credentials::{CredentialStore, MemoryCredentials};
use pulse_core::profile::BUILTIN;
use pulse_core::saved_profile::{self, TokenError};

fn url() -> url::Url {
    url::Url::parse("http://127.0.0.1:4000/").unwrap()
}

#[test]
fn builtins_say_which_need_a_token() {
    let list = saved_profile::builtin_profiles();
    assert_eq!(list.len(), BUILTIN.len());
    let tasks = list.iter().find(|b| b.name == "tasks-gateway").unwrap();
    assert!(!tasks.needs_token);
    let bridge = list.iter().find(|b| b.name == "event-bridge").unwrap();
    assert!(bridge.needs_token);
    assert!(bridge.caveat.as_deref().unwrap().contains("replay"));
}

#[test]
fn native_names() {
    assert!(saved_profile::is_native("native"));
    assert!(saved_profile::is_native(" "));
    assert!(!saved_profile::is_native("event-bridge"));
}

#[test]
fn tokens_come_only_from_the_store() {
    let store = MemoryCredentials::default();
    assert_eq!(
        saved_profile::tokens(true, &store, &url()).err(),
        Some(TokenError::Missing)
    );
    assert!(saved_profile::tokens(false, &store, &url()).is_ok());
    saved_profile::save_token(&store, &url(), "  tok-1 ").unwrap();
    assert!(saved_profile::has_token(&store, &url()).unwrap());
    assert_eq!(
        store.load("access-token@http://127.0.0.1:4000").unwrap(),
        Some(Secret::new("tok-1"))
    );
    assert!(saved_profile::tokens(true, &store, &url()).is_ok());
    saved_profile::save_token(&store, &url(), "").unwrap();
    assert!(!saved_profile::has_token(&store, &url()).unwrap());
}

#[test]
fn a_bad_profile_file_names_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mine.toml");
    std::fs::write(&path, "name = \"x\"\ntransport = \"carrier-pigeon\"\n").unwrap();
    let e = saved_profile::open(path.to_str().unwrap(), None)
        .unwrap_err()
        .to_string();
    assert!(e.contains("mine.toml:2:"), "{e}");
    let e = saved_profile::open("no-such-profile", None)
        .unwrap_err()
        .to_string();
    assert!(e.contains("no built-in profile"), "{e}");
}

#[test]
fn opens_a_builtin_with_a_tenant() {
    let p = saved_profile::open("event-bridge", Some("acme")).unwrap();
    assert!(p.needs_token);
    assert_eq!(p.name, "event-bridge");
    assert!(p.caveat.is_some());
}

// ----- a saved profile server, through the shell, against a real peer -----

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use pulse_desktop::dto::{SavedServer, Settings};
use pulse_desktop::paths::Paths;
use pulse_desktop::shell::EnvOverrides;
use serde_json::{json, Value};
use tauri::test::{mock_builder, mock_context, noop_assets};
use tauri::WebviewWindowBuilder;

use crate::commands::{invoke, walk, Harness};

/// A seed-dialect peer from `tests/peers/`, killed on drop.
struct Peer {
    child: Child,
    port: u16,
    _state: tempfile::NamedTempFile,
}

impl Peer {
    fn start(sub: &str, script: &str, module: &str, tokens: &str, state: Value) -> Peer {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/peers")
            .join(sub);
        assert!(
            dir.join("node_modules").join(module).exists(),
            "{}/node_modules/{module} is missing: run `npm ci` there",
            dir.display()
        );
        let state_file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(state_file.path(), state.to_string()).unwrap();
        let mut child = Command::new("node")
            .arg(dir.join(script))
            .current_dir(&dir)
            .args(["--port", "0", "--tokens", tokens, "--state"])
            .arg(state_file.path())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("node (the peers need Node.js)");
        let mut first = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut first)
            .unwrap();
        let port = first
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("peer printed {first:?}"));
        Peer {
            child,
            port,
            _state: state_file,
        }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// POST `/_control/VERB` (plain HTTP/1.1: no client library needed).
    fn control(&self, verb: &str, body: Value) -> String {
        let body = body.to_string();
        let mut s = std::net::TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        write!(
            s,
            "POST /_control/{verb} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
        .unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        assert!(out.starts_with("HTTP/1.1 200"), "control {verb}: {out}");
        out
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn profile_harness(root: &Path, server: SavedServer, creds: Arc<MemoryCredentials>) -> Harness {
    let settings = Settings {
        active_server: Some(server.id.clone()),
        servers: vec![server],
        ..Settings::default()
    };
    Paths::under(root).save_settings(&settings).unwrap();
    let app = mock_builder()
        .invoke_handler(pulse_desktop::handler())
        .build(mock_context(noop_assets()))
        .expect("mock app");
    let shell = pulse_desktop::install_shell(
        app.handle(),
        Paths::under(root),
        EnvOverrides::default(),
        creds,
        Ok(()),
    );
    let webview = WebviewWindowBuilder::new(&app, "main", Default::default())
        .build()
        .unwrap();
    Harness {
        _app: app,
        webview,
        shell,
        _dir: None,
    }
}

fn wait_boot(h: &Harness, what: &str, mut cond: impl FnMut(&Value) -> bool) -> Value {
    let end = Instant::now() + Duration::from_secs(20);
    let mut last = Value::Null;
    while Instant::now() < end {
        last = invoke(h, "bootstrap", json!({})).unwrap();
        if cond(&last) {
            return last;
        }
        std::thread::sleep(Duration::from_millis(50));
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
        "ws",
        "event-bridge.js",
        "ws",
        TOKEN,
        json!({"tasks": {"pending": 2, "inProgress": 1, "completed": 3, "total": 6}}),
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
    peer.control(
        "emit",
        json!({"type": "stats:approvals", "payload": {"pending": 4, "approved": 9, "rejected": 1}}),
    );
    wait_boot(&h, "the pushed approvals stats", |b| {
        stats(b, "approvals")["pending"] == 4
    });

    tauri::async_runtime::block_on(h.shell.shutdown());
    let key = pulse_core::saved_profile::token_account(&peer.url().parse().unwrap());
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
