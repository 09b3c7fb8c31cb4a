//! Driving the app over WebDriver: [`Driver`] starts `tauri-driver` (which
//! starts WebKitWebDriver) with the app's environment and opens a session, which
//! launches the app; a [`Session`] runs scripts in its page and quits it.
//!
//! Invariants: a session is closed with [`Session::quit`], which also stops
//! `tauri-driver` and ends the app's processes (the app stays in the tray when
//! its window closes), so the next launch is a fresh process (the app is
//! single-instance).

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use serde_json::{json, Value};

use super::procs::app_tree_pids;
use crate::sys::Proc;

/// `tauri-driver` with the app's environment.
pub(super) struct Driver {
    pub(super) bin: PathBuf,
    pub(super) env: Vec<(String, String)>,
    pub(super) app: PathBuf,
    pub(super) log: PathBuf,
}

/// A WebDriver session on a running app (and the tauri-driver serving it).
pub(super) struct Session {
    http: reqwest::Client,
    base: String,
    id: String,
    driver: Proc,
    app: PathBuf,
}

fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

impl Driver {
    /// Start tauri-driver and open a session (which launches the app).
    pub(super) async fn start(&self) -> anyhow::Result<Session> {
        let port = free_port()?;
        let native = free_port()?;
        let mut cmd = Command::new(&self.bin);
        cmd.args([
            "--port",
            &port.to_string(),
            "--native-port",
            &native.to_string(),
        ]);
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        let driver = Proc::spawn_logged("tauri-driver", cmd, &self.log)?;
        let base = format!("http://127.0.0.1:{port}");
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(120))
            .build()?;
        let deadline = Instant::now() + Duration::from_secs(20);
        // tauri-driver, then the WebKitWebDriver it starts, must both listen.
        for p in [port, native] {
            while tokio::net::TcpStream::connect(("127.0.0.1", p))
                .await
                .is_err()
            {
                anyhow::ensure!(Instant::now() < deadline, "tauri-driver did not listen");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "wry",
            "tauri:options": {"application": self.app},
        }}});
        let r: Value = http
            .post(format!("{base}/session"))
            .json(&caps)
            .send()
            .await?
            .json()
            .await?;
        let id = r["value"]["sessionId"]
            .as_str()
            .with_context(|| format!("no WebDriver session: {r}"))?
            .to_owned();
        let s = Session {
            http,
            base,
            id,
            driver,
            app: self.app.clone(),
        };
        s.post("timeouts", json!({"script": 120_000})).await?;
        Ok(s)
    }
}

impl Session {
    async fn post(&self, path: &str, body: Value) -> anyhow::Result<Value> {
        let r: Value = self
            .http
            .post(format!("{}/session/{}/{path}", self.base, self.id))
            .json(&body)
            .send()
            .await?
            .json()
            .await?;
        if r["value"]["error"].is_string() {
            bail!("WebDriver {path}: {}", r["value"]);
        }
        Ok(r["value"].clone())
    }

    /// Run a synchronous script; returns its value.
    pub(super) async fn script(&self, js: &str) -> anyhow::Result<Value> {
        self.post("execute/sync", json!({"script": js, "args": []}))
            .await
    }

    /// Run an asynchronous script (calls its last argument when done).
    pub(super) async fn wait_script(&self, js: &str, timeout_s: u64) -> anyhow::Result<Value> {
        tokio::time::timeout(
            Duration::from_secs(timeout_s),
            self.post("execute/async", json!({"script": js, "args": []})),
        )
        .await
        .context("script timed out")?
    }

    /// Close the session and stop tauri-driver; then end the app, which stays
    /// in the tray when its window closes: waits (bounded) for it to go, then
    /// SIGTERM and at last SIGKILL by pid to whatever is left of its processes,
    /// so the next launch is a fresh process (the app is single-instance).
    pub(super) async fn quit(mut self) {
        let _ = self
            .http
            .delete(format!("{}/session/{}", self.base, self.id))
            .send()
            .await;
        self.driver.stop(Duration::from_secs(10));
        end_app(&self.app).await;
    }
}

/// End the app's processes, if any: wait 5 s for them to go, then SIGTERM, 5 s,
/// then SIGKILL, each by pid.
pub(super) async fn end_app(app: &Path) {
    for signal in [None, Some(libc::SIGTERM), Some(libc::SIGKILL)] {
        if let Some(sig) = signal {
            for p in app_tree_pids(app) {
                // SAFETY: kill on the pid of a process running the app this
                // harness launched, or one it started.
                unsafe { libc::kill(p as libc::pid_t, sig) };
            }
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        while !app_tree_pids(app).is_empty() && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        if app_tree_pids(app).is_empty() {
            return;
        }
    }
}
