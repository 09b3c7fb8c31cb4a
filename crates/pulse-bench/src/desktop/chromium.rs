//! The side by side: the same UI as a web page in Debian's Chromium, which is
//! what a user would otherwise keep open, counted the same way as the app.
//!
//! The built UI (`ui/dist`) is served by [`super::serve`] on 127.0.0.1; the page
//! is opened as `index.html?fake=N` (idle) or `?fake=N&rate=R` (busy): the UI's
//! in-browser fake backend then holds the benchmark's N entities (the same as the
//! gateway's, ui/src/lib/backend/fakeload.ts) and pushes R events/s in 16 ms
//! batches. Each load is a fresh `chromium --headless=new` with a fresh profile
//! directory; the harness speaks the DevTools protocol (`--remote-debugging-port=0`,
//! the port read from the profile's `DevToolsActivePort`) only to wait until the
//! page marks its content loaded (the same `[data-testid=content][data-loaded=true]`
//! marker as the app) and the next animation frame. Memory is the PSS sum of the
//! browser's processes (its tree, and any process naming its profile), sampled
//! from `/proc` as for the app: idle 5 s after the load, busy the highest sample.
//!
//! Invariants: every Chromium this starts is stopped (SIGTERM, then SIGKILL)
//! before the next starts and before [`measure`] returns; its network use is
//! loopback only (background networking, component updates, sync and the like
//! are switched off); as root it runs with `--no-sandbox` (Chromium refuses to
//! start as root otherwise), which the figures' note says.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::Context;
use futures_util::{SinkExt, StreamExt};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::procs::{browser_memory, browser_pids, epoch_ms, TreeMemory};
use super::serve;
use crate::sys::Proc;

/// Memory of the same UI in Chromium, idle and busy.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ChromiumResult {
    /// Why it was not measured, if it was not.
    pub skipped: Option<String>,
    /// `chromium --version`.
    pub version: String,
    /// Entities the page held.
    pub entities: u64,
    /// Events/s of the busy load.
    pub rate: u64,
    /// Seconds of the busy load.
    pub busy_secs: f64,
    /// PSS of all of Chromium's processes 5 s after the load, MiB.
    pub idle_pss_mib: Option<f64>,
    /// Highest PSS sample during the busy load, MiB.
    pub busy_pss_mib: Option<f64>,
    /// Per process name (MiB), idle.
    pub idle_breakdown: String,
    /// Per process name (MiB), busy.
    pub busy_breakdown: String,
    /// Processes counted, idle.
    pub idle_processes: usize,
    /// RSS sums (MiB), idle and busy.
    pub idle_rss_mib: Option<f64>,
    /// RSS sum at the busy peak, MiB.
    pub busy_rss_mib: Option<f64>,
    /// Chromium's start → the first frame with the entities in the page, ms
    /// (the idle launch).
    pub load_ms: Option<f64>,
    /// The command line's flags.
    pub flags: Vec<String>,
}

/// `chromium` on PATH (Debian's launcher script, which runs /usr/lib/chromium/chromium).
pub(super) fn find() -> Option<PathBuf> {
    super::find_tool("chromium").or_else(|| super::find_tool("chromium-browser"))
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// The flags every launch gets (and the report lists).
fn flags(profile: &Path) -> Vec<String> {
    let mut f: Vec<String> = vec![
        "--headless=new".into(),
        format!("--user-data-dir={}", profile.display()),
        "--remote-debugging-port=0".into(),
        "--window-size=1280,800".into(),
        "--no-first-run".into(),
        "--no-default-browser-check".into(),
        "--disable-background-networking".into(),
        "--disable-component-update".into(),
        "--disable-sync".into(),
        "--disable-default-apps".into(),
        "--disable-extensions".into(),
        "--metrics-recording-only".into(),
        "--password-store=basic".into(),
    ];
    if is_root() {
        f.push("--no-sandbox".into());
    }
    f
}

/// The flags as the report shows them (the profile directory elided).
fn shown_flags() -> Vec<String> {
    flags(Path::new("PROFILE"))
}

/// One Chromium on one page; stopped on drop.
struct Browser {
    proc: Proc,
    profile: PathBuf,
    started_ms: f64,
}

impl Browser {
    fn launch(bin: &Path, dir: &Path, url: &str, log: &Path) -> anyhow::Result<Browser> {
        let _ = std::fs::remove_dir_all(dir);
        std::fs::create_dir_all(dir)?;
        let profile = dir.canonicalize()?;
        let mut cmd = Command::new(bin);
        cmd.args(flags(&profile)).arg(url);
        // Its own HOME and XDG dirs: nothing of the machine's user is read or written.
        for (k, sub) in [
            ("HOME", "home"),
            ("XDG_CONFIG_HOME", "config"),
            ("XDG_CACHE_HOME", "cache"),
        ] {
            let d = profile.join(sub);
            std::fs::create_dir_all(&d)?;
            cmd.env(k, d);
        }
        cmd.env_remove("DISPLAY");
        let started_ms = epoch_ms();
        let proc = Proc::spawn_logged("chromium", cmd, log)?;
        Ok(Browser {
            proc,
            profile,
            started_ms,
        })
    }

    fn memory(&self) -> Option<TreeMemory> {
        browser_memory(self.proc.pid(), &self.profile)
    }

    /// The DevTools port, once Chromium has written it.
    async fn devtools_port(&mut self) -> anyhow::Result<u16> {
        let file = self.profile.join("DevToolsActivePort");
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(text) = std::fs::read_to_string(&file) {
                if let Some(port) = text.lines().next().and_then(|l| l.trim().parse().ok()) {
                    return Ok(port);
                }
            }
            anyhow::ensure!(
                !self.proc.exited(),
                "chromium exited at start (see the children's log)"
            );
            anyhow::ensure!(
                Instant::now() < deadline,
                "chromium wrote no DevToolsActivePort in 60 s"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Wait (bounded) until the page marks its content loaded, then for the next
    /// animation frame; returns that frame's time (epoch ms).
    async fn wait_loaded(&mut self) -> anyhow::Result<f64> {
        let port = self.devtools_port().await?;
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()?;
        let deadline = Instant::now() + Duration::from_secs(60);
        let ws_url = loop {
            let list: Value = http
                .get(format!("http://127.0.0.1:{port}/json/list"))
                .send()
                .await?
                .json()
                .await?;
            if let Some(u) = list
                .as_array()
                .into_iter()
                .flatten()
                .find(|t| t["type"] == "page")
                .and_then(|t| t["webSocketDebuggerUrl"].as_str())
            {
                break u.to_owned();
            }
            anyhow::ensure!(Instant::now() < deadline, "chromium opened no page");
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        let (mut ws, _) = tokio_tungstenite::connect_async(ws_url.as_str())
            .await
            .context("DevTools WebSocket")?;
        let probe = r#"new Promise((done) => {
            (function poll() {
              const c = document.querySelector('[data-testid="content"]');
              if (c && c.dataset.loaded === "true") {
                requestAnimationFrame(() => done(performance.timeOrigin + performance.now()));
              } else {
                setTimeout(poll, 20);
              }
            })();
          })"#;
        // The probe may first run in the blank page Chromium opens before it
        // navigates to the URL; that context goes away: ask again (bounded).
        let deadline = Instant::now() + Duration::from_secs(120);
        let mut id = 0u64;
        let answer = loop {
            id += 1;
            let req = json!({"id": id, "method": "Runtime.evaluate",
                "params": {"expression": probe, "awaitPromise": true, "returnByValue": true}});
            ws.send(tokio_tungstenite::tungstenite::Message::Text(
                req.to_string().into(),
            ))
            .await?;
            let left = deadline.saturating_duration_since(Instant::now());
            let answer = tokio::time::timeout(left, async {
                while let Some(m) = ws.next().await {
                    let m = m?;
                    let Ok(text) = m.to_text() else { continue };
                    let v: Value = serde_json::from_str(text).unwrap_or(Value::Null);
                    if v["id"] == id {
                        return anyhow::Ok(v);
                    }
                }
                anyhow::bail!("DevTools closed the connection")
            })
            .await
            .context("the page did not mark its content loaded in 120 s")??;
            let gone = answer["error"]["message"]
                .as_str()
                .is_some_and(|m| m.contains("context"));
            if !gone {
                break answer;
            }
            anyhow::ensure!(Instant::now() < deadline, "the page did not load: {answer}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        let _ = ws.close(None).await;
        answer["result"]["result"]["value"]
            .as_f64()
            .with_context(|| format!("the load probe answered {answer}"))
    }

    /// Stop the browser; then any of its processes that outlived it (a
    /// detached helper) by pid: SIGTERM, and SIGKILL after 5 s.
    fn stop(mut self) {
        self.proc.stop(Duration::from_secs(5));
        for signal in [libc::SIGTERM, libc::SIGKILL] {
            let deadline = Instant::now() + Duration::from_secs(5);
            loop {
                // By profile only: the browser's own pid is reaped and may be reused.
                let left = browser_pids(0, &self.profile);
                if left.is_empty() {
                    return;
                }
                if Instant::now() > deadline {
                    for p in left {
                        // SAFETY: kill on a pid of a process this browser started
                        // (its profile directory is in its command line).
                        unsafe { libc::kill(p as libc::pid_t, signal) };
                    }
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }
}

/// Measure the UI in Chromium with `entities` entities, idle then at `rate`
/// events/s for `busy_secs`; `dist` is the built UI.
pub(super) async fn measure(
    bin: &Path,
    dist: &Path,
    work: &Path,
    log: &Path,
    entities: u64,
    rate: u64,
    busy_secs: f64,
) -> anyhow::Result<ChromiumResult> {
    let version = Command::new(bin)
        .arg("--version")
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default();
    let server = serve::serve(dist).await?;
    let mut out = ChromiumResult {
        version,
        entities,
        rate,
        busy_secs,
        flags: shown_flags(),
        ..ChromiumResult::default()
    };

    // Idle: the entities, no events.
    eprintln!("desktop: Chromium, {entities} entities, idle");
    let mut b = Browser::launch(
        bin,
        &work.join("chromium-idle"),
        &format!("{}/?fake={entities}", server.base),
        log,
    )?;
    let r = async {
        let frame = b.wait_loaded().await?;
        out.load_ms = Some(frame - b.started_ms);
        tokio::time::sleep(Duration::from_secs(5)).await;
        let m = b.memory().context("Chromium's processes were not found")?;
        out.idle_pss_mib = Some(m.pss_mib);
        out.idle_rss_mib = Some(m.rss_mib);
        out.idle_processes = m.processes;
        out.idle_breakdown = m.breakdown();
        anyhow::Ok(())
    }
    .await;
    b.stop();
    r?;

    // Busy: the same entities and `rate` events/s from the load on.
    eprintln!("desktop: Chromium, {entities} entities, {rate} events/s");
    let mut b = Browser::launch(
        bin,
        &work.join("chromium-busy"),
        &format!("{}/?fake={entities}&rate={rate}", server.base),
        log,
    )?;
    let r = async {
        b.wait_loaded().await?;
        let end = Instant::now() + Duration::from_secs_f64(busy_secs);
        let mut peak = TreeMemory::default();
        while Instant::now() < end {
            if let Some(m) = b.memory() {
                if m.pss_mib > peak.pss_mib {
                    peak = m;
                }
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        out.busy_pss_mib = Some(peak.pss_mib);
        out.busy_rss_mib = Some(peak.rss_mib);
        out.busy_breakdown = peak.breakdown();
        anyhow::Ok(())
    }
    .await;
    b.stop();
    r?;
    drop(server);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The Chromium side alone against the built UI (needs `chromium` and
    /// `npm run build` in ui/; slow, so run by hand:
    /// `cargo test -p pulse-bench --bin pulse-bench chromium -- --ignored`).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[ignore]
    async fn measures_the_built_ui_in_chromium() {
        let bin = find().expect("chromium installed");
        let dist =
            super::super::find_ui_dist(&std::env::current_dir().unwrap()).expect("ui/dist built");
        let work = tempfile::tempdir().unwrap();
        let log = work.path().join("log");
        let r = measure(&bin, &dist, work.path(), &log, 2_000, 1_000, 3.0)
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "{e:#}\n{}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                )
            });
        eprintln!("{r:#?}");
        assert!(r.skipped.is_none());
        assert!(r.idle_pss_mib.is_some_and(|m| m > 10.0), "{r:?}");
        assert!(r.busy_pss_mib.is_some_and(|m| m > 10.0), "{r:?}");
        assert!(r.idle_processes >= 2, "{r:?}");
        assert!(browser_pids(
            0,
            &work.path().join("chromium-busy").canonicalize().unwrap()
        )
        .is_empty());
    }
}
