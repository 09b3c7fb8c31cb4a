//! A real LangGraph server in a test: `langgraph dev` (PyPI `langgraph-cli` with the
//! in-memory runtime) serving the graphs of `tests/peers/langgraph/`, on a free
//! port, killed on drop.
//!
//! - Each server runs in its own copy of the project (a temporary folder), so its
//!   state (`.langgraph_api/`) is its own and tests run in parallel.
//! - Started means `GET /ok` answered 200: the start waits on that condition,
//!   never on a fixed sleep.
//! - The CLI's analytics, its version check and LangSmith tracing are off by their
//!   environment variables; the server needs no network.
//! - The webhook secret the server sends (header `X-Pulse-Webhook-Secret`, from
//!   `langgraph.json`'s `webhooks.headers`) is [`WEBHOOK_SECRET`] unless the test
//!   gives another.
//! - The venv is `tests/peers/langgraph/setup.sh`'s (`PULSE_LANGGRAPH_VENV`, default
//!   `/var/tmp/pulse-langgraph-venv`); a missing one fails the test saying how to make it.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::peers::peers_dir;
use crate::process;

/// The webhook secret a test server sends unless told otherwise (throwaway).
pub const WEBHOOK_SECRET: &str = "lg-webhook-test-secret";

/// How long a start may take (a cold Python import of the API is a few seconds).
pub const START_LIMIT: Duration = Duration::from_secs(90);

/// The venv holding `langgraph`.
pub fn venv() -> PathBuf {
    std::env::var_os("PULSE_LANGGRAPH_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/tmp/pulse-langgraph-venv"))
}

/// A running `langgraph dev`. Killed (SIGKILL) and reaped on drop.
#[derive(Debug)]
pub struct LangGraph {
    child: Option<Child>,
    port: u16,
    log: PathBuf,
    _dir: tempfile::TempDir,
    http: reqwest::Client,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

impl LangGraph {
    /// Start a server with the default webhook secret.
    pub async fn start() -> LangGraph {
        LangGraph::start_with_secret(WEBHOOK_SECRET).await
    }

    /// Start a server whose webhooks carry `secret`.
    pub async fn start_with_secret(secret: &str) -> LangGraph {
        let bin = venv().join("bin/langgraph");
        assert!(
            bin.exists(),
            "{} is missing: run tests/peers/langgraph/setup.sh (the README's test command does)",
            bin.display()
        );
        let src = peers_dir().join("langgraph");
        let dir = tempfile::tempdir().expect("tempdir");
        for f in ["graph.py", "langgraph.json"] {
            std::fs::copy(src.join(f), dir.path().join(f)).expect("copy the LangGraph project");
        }
        let log = dir.path().join("server.log");
        let out = std::fs::File::create(&log).expect("log file");
        let port = free_port();
        let child = Command::new(&bin)
            .args([
                "dev",
                "--no-browser",
                "--no-reload",
                "--host",
                "127.0.0.1",
                "--port",
            ])
            .arg(port.to_string())
            .current_dir(dir.path())
            .env("LANGGRAPH_CLI_NO_ANALYTICS", "1")
            .env("LANGGRAPH_NO_VERSION_CHECK", "true")
            .env("LANGSMITH_TRACING", "false")
            .env("LG_WEBHOOK_PULSE_SECRET", secret)
            .env(
                "PATH",
                format!(
                    "{}:{}",
                    venv().join("bin").display(),
                    std::env::var("PATH").unwrap_or_default()
                ),
            )
            .stdin(Stdio::null())
            .stdout(out.try_clone().expect("log"))
            .stderr(out)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start langgraph dev: {e}"));
        let mut lg = LangGraph {
            child: Some(child),
            port,
            log,
            _dir: dir,
            http: reqwest::Client::new(),
        };
        let end = Instant::now() + START_LIMIT;
        loop {
            if let Some(c) = lg.child.as_mut() {
                if let Ok(Some(status)) = c.try_wait() {
                    panic!(
                        "langgraph dev exited ({status}) before answering /ok:\n{}",
                        lg.log_text()
                    );
                }
            }
            let ok = lg
                .http
                .get(lg.url("/ok"))
                .timeout(Duration::from_secs(2))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success());
            if ok {
                return lg;
            }
            assert!(
                Instant::now() < end,
                "langgraph dev did not answer GET /ok within {START_LIMIT:?}:\n{}",
                lg.log_text()
            );
            tokio::time::sleep(crate::wait::POLL * 4).await;
        }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// `base()` + `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base())
    }

    /// What the server printed so far (for failure messages).
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// A JSON request; panics on a transport error or a non-2xx answer.
    pub async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let mut req = self.http.request(method.clone(), self.url(path));
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req
            .send()
            .await
            .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
        let status = resp.status();
        let text = resp.text().await.unwrap_or_default();
        assert!(status.is_success(), "{method} {path}: {status} {text}");
        serde_json::from_str(&text).unwrap_or(Value::Null)
    }

    /// Create a thread; its id.
    pub async fn thread(&self) -> String {
        let t = self
            .call(reqwest::Method::POST, "/threads", Some(json!({})))
            .await;
        t["thread_id"].as_str().expect("thread_id").to_owned()
    }

    /// Start a run of `graph` on `thread` with `input`, and `webhook` when given.
    pub async fn run(
        &self,
        thread: &str,
        graph: &str,
        input: Value,
        webhook: Option<&str>,
    ) -> Value {
        let mut body = json!({"assistant_id": graph, "input": input});
        if let Some(w) = webhook {
            body["webhook"] = Value::from(w);
        }
        self.call(
            reqwest::Method::POST,
            &format!("/threads/{thread}/runs"),
            Some(body),
        )
        .await
    }

    /// `GET /threads/{id}`.
    pub async fn get_thread(&self, thread: &str) -> Value {
        self.call(reqwest::Method::GET, &format!("/threads/{thread}"), None)
            .await
    }

    /// Wait until `thread` has status `status`; the thread.
    pub async fn wait_status(&self, thread: &str, status: &str, limit: Duration) -> Value {
        crate::wait_for_some(
            &format!("thread {thread} to be {status}"),
            limit,
            || async {
                let t = self.get_thread(thread).await;
                (t["status"] == status).then_some(t)
            },
        )
        .await
    }

    /// The ids of the thread's current interrupts.
    pub fn interrupt_ids(thread: &Value) -> Vec<String> {
        thread["interrupts"]
            .as_object()
            .into_iter()
            .flat_map(|m| m.values())
            .filter_map(Value::as_array)
            .flatten()
            .filter_map(|i| i["id"].as_str().map(str::to_owned))
            .collect()
    }

    /// Resume `thread`'s interrupt `interrupt` with `value` (as Studio or another
    /// client would), and return the run.
    pub async fn resume(&self, thread: &str, graph: &str, interrupt: &str, value: Value) -> Value {
        let body = json!({"assistant_id": graph, "command": {"resume": {interrupt: value}}});
        self.call(
            reqwest::Method::POST,
            &format!("/threads/{thread}/runs"),
            Some(body),
        )
        .await
    }

    /// The runs of `thread`, newest first.
    pub async fn runs(&self, thread: &str) -> Vec<Value> {
        let v = self
            .call(
                reqwest::Method::GET,
                &format!("/threads/{thread}/runs"),
                None,
            )
            .await;
        v.as_array().cloned().unwrap_or_default()
    }
}

impl Drop for LangGraph {
    fn drop(&mut self) {
        // `langgraph dev` runs the API in the same process (no reloader with
        // --no-reload), so killing it ends the server.
        process::kill(&mut self.child);
    }
}
