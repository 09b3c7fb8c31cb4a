//! Real servers on port 0 that speak the seeds' dialects: `ws` (npm) and
//! `socket.io` (npm) servers under `tests/peers/{ws,dialects}`, FastAPI + uvicorn
//! under `tests/peers/fastapi`. Each prints its port first; each is killed on drop.
//!
//! A peer reads its state from a file given at start (rewritten by
//! [`Peer::restart`]), accepts only the tokens it was given, and is driven over
//! `/_control/*` HTTP endpoints. Missing packages fail the test with the command
//! that installs them.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value};

use crate::process;

const INSTALL_HINT: &str = "run the README's test command (`./scripts/test.sh`), or install the peers by hand: \
`npm ci` in tests/peers/ws and tests/peers/dialects, and \
`python3 -m venv /var/tmp/pulse-venv && /var/tmp/pulse-venv/bin/pip install -r tests/peers/fastapi/requirements.txt` \
(set PULSE_PY to the venv's python if it lives elsewhere)";

/// `tests/peers` of the workspace the running test belongs to.
///
/// Found at run time from the test's own package directory (cargo sets
/// `CARGO_MANIFEST_DIR` for the test process), walking up to the directory that
/// holds `tests/peers`. The compile-time path is only the fallback: a build directory
/// shared between checkouts can hold this crate compiled in another checkout, and
/// its peers are not the ones under test.
pub fn peers_dir() -> PathBuf {
    let start = std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")));
    start
        .ancestors()
        .map(|dir| dir.join("tests/peers"))
        .find(|dir| dir.is_dir())
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/peers"))
}

/// Which server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Seed 000, `ws`.
    AgentMonitor,
    /// Seed 001, `ws`.
    EventBridge,
    /// Seed 002, socket.io.
    NestRealtime,
    /// Seed 003, FastAPI.
    FastApi,
    /// Seed 004, socket.io.
    TasksGateway,
}

fn python() -> PathBuf {
    if let Ok(p) = std::env::var("PULSE_PY") {
        return PathBuf::from(p);
    }
    let venv = std::env::var("PULSE_VENV").unwrap_or_else(|_| "/var/tmp/pulse-venv".into());
    PathBuf::from(venv).join("bin/python")
}

fn command(kind: Kind) -> Command {
    let dir = peers_dir();
    let node = |sub: &str, script: &str, module: &str| {
        let d = dir.join(sub);
        assert!(
            d.join("node_modules").join(module).exists(),
            "{}/node_modules/{module} is missing: {INSTALL_HINT}",
            d.display()
        );
        let mut c = Command::new("node");
        c.arg(d.join(script)).current_dir(&d);
        c
    };
    match kind {
        Kind::AgentMonitor => node("ws", "agent-monitor.js", "ws"),
        Kind::EventBridge => node("ws", "event-bridge.js", "ws"),
        Kind::NestRealtime => node("dialects", "nest-realtime.js", "socket.io"),
        Kind::TasksGateway => node("dialects", "tasks-gateway.js", "socket.io"),
        Kind::FastApi => {
            let py = python();
            let ok = Command::new(&py)
                .args(["-c", "import fastapi, uvicorn, websockets"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .map(|s| s.success())
                .unwrap_or(false);
            assert!(
                ok,
                "{} cannot import fastapi/uvicorn/websockets: {INSTALL_HINT}",
                py.display()
            );
            let mut c = Command::new(py);
            c.arg(dir.join("fastapi/server.py"));
            c
        }
    }
}

/// A running peer, killed on drop.
pub struct Peer {
    kind: Kind,
    child: Option<Child>,
    /// The port it listens on (127.0.0.1).
    pub port: u16,
    tokens: Vec<String>,
    extra: Vec<String>,
    state_file: tempfile::NamedTempFile,
    stderr: Arc<Mutex<String>>,
    http: reqwest::Client,
}

impl Peer {
    /// Start `kind` accepting `tokens`, with `state`, and extra arguments.
    pub fn start(kind: Kind, tokens: &[&str], state: Value, extra: &[&str]) -> Peer {
        let state_file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(state_file.path(), state.to_string()).unwrap();
        let mut p = Peer {
            kind,
            child: None,
            port: 0,
            tokens: tokens.iter().map(|s| s.to_string()).collect(),
            extra: extra.iter().map(|s| s.to_string()).collect(),
            state_file,
            stderr: Arc::default(),
            http: reqwest::Client::new(),
        };
        p.spawn(0);
        p
    }

    fn spawn(&mut self, port: u16) {
        let mut cmd = command(self.kind);
        cmd.args(["--port", &port.to_string()])
            .arg("--state")
            .arg(self.state_file.path())
            .args(["--tokens", &self.tokens.join(",")])
            .args(&self.extra)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().unwrap_or_else(|e| {
            panic!(
                "cannot start the {:?} peer ({e}): {INSTALL_HINT}",
                self.kind
            )
        });
        let (tx, rx) = mpsc::channel();
        let out = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(out).lines();
            if let Some(Ok(l)) = lines.next() {
                let _ = tx.send(l);
            }
            for _ in lines {}
        });
        let mut err = child.stderr.take().unwrap();
        let sink = self.stderr.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = err.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
        let line = match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(l) => l,
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "the {:?} peer did not print its port; stderr: {}",
                    self.kind,
                    self.stderr.lock().unwrap()
                );
            }
        };
        self.port = line
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("unexpected first line {line:?}"));
        self.child = Some(child);
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// SIGKILL.
    pub fn kill(&mut self) {
        process::kill(&mut self.child);
    }

    /// Kill it, and start it again on the same port from `state` (which changed
    /// while it was down: no event tells a client).
    pub fn restart(&mut self, state: Value) {
        self.kill();
        std::fs::write(self.state_file.path(), state.to_string()).unwrap();
        let port = self.port;
        process::retry(Duration::from_secs(15), || self.spawn(port));
    }

    /// POST `/_control/VERB`.
    pub async fn control(&self, verb: &str, body: Value) -> Value {
        let resp = self
            .http
            .post(format!("{}/_control/{verb}", self.url()))
            .json(&body)
            .send()
            .await
            .unwrap_or_else(|e| panic!("control {verb}: {e}"));
        let status = resp.status();
        let v: Value = resp.json().await.unwrap_or(Value::Null);
        assert!(
            status.is_success(),
            "control {verb}: {status} {v}; stderr: {}",
            self.stderr.lock().unwrap()
        );
        v
    }

    /// GET `/_control/info`.
    pub async fn info(&self) -> Value {
        self.http
            .get(format!("{}/_control/info", self.url()))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// Emit through the control endpoint; the body shape is the peer's.
    pub async fn emit(&self, body: Value) {
        self.control("emit", body).await;
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        self.kill();
    }
}

fn b64url(bytes: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..=chunk.len() {
            out.push(A[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
}

/// A JWT-shaped token with these claims (the peers check it against their list;
/// Pulse reads `tenant_id` from it without verifying).
pub fn jwt(claims: Value) -> String {
    format!(
        "{}.{}.sig{}",
        b64url(json!({"alg": "HS256", "typ": "JWT"}).to_string().as_bytes()),
        b64url(claims.to_string().as_bytes()),
        b64url(uuid::Uuid::new_v4().as_bytes())
    )
}
