//! Real processes on port 0: the `pulse-gateway` and `pulsectl` binaries built by
//! `cargo build --workspace --bins` (the README's test command does that first).
//! Finding them, killing, restarting and waiting are `pulse_testkit`'s.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use pulse_core::store::{SqliteStore, Store};
use pulse_protocol::domain::Entity;
use pulse_protocol::rest::Snapshot;
use pulse_testkit::process;
use serde_json::Value;

pub const SECRET: &str = "e2e-secret-not-for-production-0123456789";

pub use pulse_testkit::process::bin;
pub use pulse_testkit::wait_for;

/// Lines a child printed, collected by a reader thread.
#[derive(Clone, Default)]
pub struct Lines(Arc<Mutex<Vec<String>>>);

impl Lines {
    fn follow(
        self,
        stream: impl std::io::Read + Send + 'static,
        first: Option<mpsc::Sender<String>>,
    ) -> Self {
        let lines = self.clone();
        std::thread::spawn(move || {
            let mut first = first;
            for line in BufReader::new(stream).lines() {
                let Ok(line) = line else { break };
                if let Some(tx) = first.take() {
                    let _ = tx.send(line.clone());
                }
                lines.0.lock().unwrap().push(line);
            }
        });
        self
    }
    pub fn snapshot(&self) -> Vec<String> {
        self.0.lock().unwrap().clone()
    }
    pub fn contains(&self, needle: &str) -> bool {
        self.0.lock().unwrap().iter().any(|l| l.contains(needle))
    }
}

/// A users file at `path` with one viewer, made by `pulse-gateway user add` (the
/// password on its standard input, as an operator would give it).
pub fn users_file(path: &Path, name: &str, password: &str, tenant: &str) {
    use std::io::Write as _;
    let mut child = Command::new(bin("pulse-gateway"))
        .args(["user", "add", name, "--tenant", tenant, "--users-file"])
        .arg(path)
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start pulse-gateway user add");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(format!("{password}\n").as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "user add: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A `pulse-gateway serve` process, killed on drop.
pub struct Gateway {
    child: Option<Child>,
    pub addr: SocketAddr,
    store: String,
    extra: Vec<String>,
    env: Vec<(String, String)>,
    pub stderr: Lines,
}

impl Gateway {
    /// Start on 127.0.0.1:0 with `store` (`memory`, `sqlite:PATH` or `redis://…`).
    pub fn start(store: &str, extra: &[&str]) -> Gateway {
        Self::start_env(store, extra, &[])
    }

    /// The same, with extra environment variables (e.g. `PULSE_LOG`).
    pub fn start_env(store: &str, extra: &[&str], env: &[(&str, &str)]) -> Gateway {
        let extra: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let (child, addr, stderr) = Self::spawn("127.0.0.1:0", store, &extra, &env);
        Gateway {
            child: Some(child),
            addr,
            store: store.into(),
            extra,
            env,
            stderr,
        }
    }

    fn spawn(
        addr: &str,
        store: &str,
        extra: &[String],
        env: &[(String, String)],
    ) -> (Child, SocketAddr, Lines) {
        let mut child = Command::new(bin("pulse-gateway"))
            .args([
                "serve",
                "--addr",
                addr,
                "--store",
                store,
                "--jwt-secret",
                SECRET,
            ])
            .args(extra)
            .env("RUST_LOG", "info")
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start pulse-gateway");
        let (tx, rx) = mpsc::channel();
        Lines::default().follow(child.stdout.take().unwrap(), Some(tx));
        let stderr = Lines::default().follow(child.stderr.take().unwrap(), None);
        let line = match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(l) => l,
            Err(_) => {
                let _ = child.kill();
                panic!(
                    "pulse-gateway did not say where it listens; stderr: {:?}",
                    stderr.snapshot()
                );
            }
        };
        let url = line
            .strip_prefix("listening on http://")
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"));
        (child, url.trim().parse().expect("address"), stderr)
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// SIGKILL.
    pub fn kill(&mut self) {
        process::kill(&mut self.child);
    }

    /// Start again on the same address and store.
    pub fn restart(&mut self) {
        self.kill();
        let addr = self.addr.to_string();
        let (child, a, stderr) = process::retry(Duration::from_secs(10), || {
            Self::spawn(&addr, &self.store, &self.extra, &self.env)
        });
        assert_eq!(a, self.addr);
        self.child = Some(child);
        self.stderr = stderr;
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        self.kill();
    }
}

/// `pulse-gateway mint`.
pub fn mint(tenant: &str, sub: &str, role: &str, ttl: &str) -> String {
    let out = Command::new(bin("pulse-gateway"))
        .args([
            "mint", "--secret", SECRET, "--tenant", tenant, "--sub", sub, "--role", role, "--ttl",
            ttl,
        ])
        .output()
        .expect("run mint");
    assert!(
        out.status.success(),
        "mint failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// A `pulsectl` process, killed on drop.
pub struct Pulsectl {
    child: Option<Child>,
    pub stdout: Lines,
    pub stderr: Lines,
}

impl Pulsectl {
    pub fn watch(server: &str, auth: &[&str], cache: &Path, extra: &[&str]) -> Pulsectl {
        Self::watch_env(server, auth, cache, extra, &[])
    }

    /// The same, with extra environment variables (e.g. `PULSE_LOG`).
    pub fn watch_env(
        server: &str,
        auth: &[&str],
        cache: &Path,
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> Pulsectl {
        let mut child = Command::new(bin("pulsectl"))
            .envs(env.iter().copied())
            .args(["watch", "--server", server, "--cache"])
            .arg(cache)
            .args(auth)
            .args(extra)
            .env_remove("PULSE_TOKEN")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start pulsectl");
        let stdout = Lines::default().follow(child.stdout.take().unwrap(), None);
        let stderr = Lines::default().follow(child.stderr.take().unwrap(), None);
        Pulsectl {
            child: Some(child),
            stdout,
            stderr,
        }
    }

    pub fn kill(&mut self) {
        process::kill(&mut self.child);
    }

    /// Its process id (for SIGSTOP / SIGCONT).
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// Wait for the process to exit on its own; its exit code.
    pub fn wait_exit(&mut self, limit: Duration) -> i32 {
        let child = self.child.as_mut().expect("running");
        let end = Instant::now() + limit;
        loop {
            if let Some(st) = child.try_wait().unwrap() {
                self.child = None;
                return st.code().unwrap_or(-1);
            }
            assert!(
                Instant::now() < end,
                "pulsectl did not exit; stderr: {:?}",
                self.stderr.snapshot()
            );
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    /// Parsed stdout lines.
    pub fn changes(&self) -> Vec<Value> {
        self.stdout
            .snapshot()
            .iter()
            .map(|l| {
                serde_json::from_str(l)
                    .unwrap_or_else(|e| panic!("stdout line {l:?} is not JSON: {e}"))
            })
            .collect()
    }
}

impl Drop for Pulsectl {
    fn drop(&mut self) {
        self.kill();
    }
}

/// HTTP helpers (blocking, on a private runtime).
pub struct Http {
    rt: tokio::runtime::Runtime,
    client: reqwest::Client,
}

impl Http {
    pub fn new() -> Http {
        Http {
            rt: tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap(),
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                // Gateways are killed and restarted: never reuse a pooled connection.
                .pool_max_idle_per_host(0)
                .build()
                .unwrap(),
        }
    }

    /// POST /v1/ingest; `Err` when the gateway could not be reached or refused.
    pub fn ingest(&self, base: &str, token: &str, body: &Value) -> Result<Value, String> {
        self.rt.block_on(async {
            let r = self
                .client
                .post(format!("{base}/v1/ingest"))
                .bearer_auth(token)
                .json(body)
                .send()
                .await
                .map_err(|e| e.to_string())?;
            let status = r.status();
            let v: Value = r.json().await.map_err(|e| e.to_string())?;
            if status.is_success() {
                Ok(v)
            } else {
                Err(format!("{status}: {v}"))
            }
        })
    }

    /// POST /v1/ingest: status, `Retry-After` and body, whatever the answer.
    pub fn ingest_raw(
        &self,
        base: &str,
        token: &str,
        body: &Value,
    ) -> (u16, Option<String>, Value) {
        self.rt.block_on(async {
            let r = self
                .client
                .post(format!("{base}/v1/ingest"))
                .bearer_auth(token)
                .json(body)
                .send()
                .await
                .expect("ingest request");
            let status = r.status().as_u16();
            let retry = r
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            (status, retry, r.json().await.unwrap_or(Value::Null))
        })
    }

    /// Status of a GET without a token (0 when the server cannot be reached).
    pub fn status(&self, url: &str) -> u16 {
        self.rt.block_on(async {
            self.client
                .get(url)
                .send()
                .await
                .map(|r| r.status().as_u16())
                .unwrap_or(0)
        })
    }

    /// Body of a GET without a token.
    pub fn text(&self, url: &str) -> String {
        self.rt.block_on(async {
            self.client
                .get(url)
                .send()
                .await
                .expect("request")
                .text()
                .await
                .expect("body")
        })
    }

    pub fn snapshot(&self, base: &str, token: &str) -> Snapshot {
        self.rt.block_on(async {
            self.client
                .get(format!("{base}/v1/snapshot"))
                .bearer_auth(token)
                .send()
                .await
                .expect("snapshot request")
                .error_for_status()
                .expect("snapshot status")
                .json()
                .await
                .expect("snapshot body")
        })
    }
}

/// Entities in a pulsectl cache, sorted by kind and id.
pub fn cache_entities(path: &Path) -> Vec<Entity> {
    let store = SqliteStore::open_read_only(path).expect("open cache");
    store.all().expect("read cache")
}

/// Cursor seq of `stream` in a pulsectl cache (0 when none or unreadable yet).
pub fn cache_seq(path: &Path, stream: &str) -> u64 {
    if !path.exists() {
        return 0;
    }
    SqliteStore::open_read_only(path)
        .ok()
        .and_then(|s| s.cursor(stream).ok().flatten())
        .map(|c| c.seq)
        .unwrap_or(0)
}

pub fn sorted(mut v: Vec<Entity>) -> Vec<Entity> {
    v.sort_by(|a, b| (a.kind, &a.id).cmp(&(b.kind, &b.id)));
    v
}
