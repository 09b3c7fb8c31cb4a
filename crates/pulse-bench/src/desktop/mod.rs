//! Benchmark 6, the desktop app (`pulse`, release build): cold start to first
//! paint from a cache of 10,000 entities, resident memory idle and under 1,000
//! events/s, and event → DOM latency.
//!
//! The app runs under Xvfb and is driven through WebDriver (`tauri-driver` →
//! WebKitWebDriver), spoken here directly over HTTP. It follows a gateway (memory
//! store) holding 10,000 entities, configured the way a user would point it at a
//! server (`PULSE_SERVER`, `PULSE_TOKEN`, with its own data directory).
//!
//! - **Cold start**: a first launch fills the cache and quits. Then, per run, a
//!   new app process is started (WebDriver `POST /session` launches it) and a
//!   script in the page waits for the content to be marked loaded from the cache
//!   (`[data-testid=content][data-loaded=true]`, set once the cached entities are
//!   in the page) and for the next animation frame, the one that paints it. Cold
//!   start = that frame's time (`performance.timeOrigin + performance.now()`, epoch
//!   ms) − the app process's start time (`/proc/PID/stat`, 10 ms resolution); the
//!   same counted from the launch request is reported too. The OS file cache is
//!   warm (the binary ran moments before), as on a desktop.
//! - **Memory**: resident memory of the whole app (the `pulse` process and its
//!   WebKit web and network processes), idle 5 s after the start, and the highest
//!   sample while the gateway is published 1,000 events/s. RSS counts pages shared
//!   between the processes once per process; PSS (`/proc/PID/smaps_rollup`)
//!   shares them out, so the PSS sum is the honest total.
//! - **Event → DOM**: during that load, 20 of the 1,000 events each second are
//!   `stats.updated` of a `bench` stats block the overview shows; a
//!   `MutationObserver` in the page records when each value reaches the DOM. The
//!   latency runs from the publisher's request (epoch ms just before it is sent) to
//!   the mutation, so it includes the gateway and the client core too.
//!
//! Layout: this module runs the benchmark and publishes the load; `procs` reads
//! `/proc` (process start times, the app's process tree and its memory);
//! `webdriver` starts `tauri-driver` and speaks WebDriver to the app.

mod procs;
mod webdriver;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::Context;
use pulse_core::store::{SqliteStore, Store};
use pulse_protocol::auth::Role;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::harness::{self, Ctx, GatewayOpts};
use crate::stats::{median, Latency};
use crate::sys::Proc;

use procs::{app_pid, epoch_ms, process_start_epoch_ms, tree_memory, TreeMemory};
use webdriver::Driver;

const STREAM: &str = "desktop";

/// One desktop figure: a value, or why there is none.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Figure {
    /// The value (unit in the field name of the owner).
    pub value: Option<f64>,
    /// How it was measured, or why it was not.
    pub note: String,
}

impl Figure {
    fn some(value: f64, note: impl Into<String>) -> Figure {
        Figure {
            value: Some(value),
            note: note.into(),
        }
    }

    fn none(note: impl Into<String>) -> Figure {
        Figure {
            value: None,
            note: note.into(),
        }
    }
}

/// Result of the desktop benchmark.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct DesktopResult {
    /// Cold start to first paint, ms.
    pub cold_start_ms: Figure,
    /// RSS idle with 10,000 cached entities, MiB (whole process tree, PSS).
    pub idle_rss_mib: Figure,
    /// RSS under 1,000 events/s, MiB (whole process tree, PSS).
    pub busy_rss_mib: Figure,
    /// Event → DOM latency p99 at 1,000 events/s, ms.
    pub dom_p99_ms: Figure,
    /// Event → DOM latency p50 at 1,000 events/s, ms.
    pub dom_p50_ms: Figure,
    /// Each cold start, ms.
    #[serde(default)]
    pub cold_starts: Vec<f64>,
    /// (seconds, MiB PSS of the tree) while idle then busy.
    #[serde(default)]
    pub timeline: Vec<(f64, f64)>,
}

fn not_measured(why: &str) -> DesktopResult {
    let f = || Figure::none(format!("not measured in this run: {why}"));
    DesktopResult {
        cold_start_ms: f(),
        idle_rss_mib: f(),
        busy_rss_mib: f(),
        dom_p99_ms: f(),
        dom_p50_ms: f(),
        cold_starts: Vec::new(),
        timeline: Vec::new(),
    }
}

fn find_tool(name: &str) -> Option<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect())
        .unwrap_or_default();
    if let Some(home) = std::env::var_os("HOME") {
        dirs.push(PathBuf::from(home).join(".cargo/bin"));
    }
    dirs.into_iter().map(|d| d.join(name)).find(|p| p.is_file())
}

/// Run it with the app binary at `app`.
pub fn run(ctx: &Ctx, app: &Path) -> anyhow::Result<DesktopResult> {
    if !app.is_file() {
        return Ok(not_measured(&format!(
            "no desktop app binary at {} (build it with `cargo build --release -p pulse-desktop` after `npm run build` in ui/)",
            app.display()
        )));
    }
    let tools = ["tauri-driver", "WebKitWebDriver", "Xvfb"];
    let found: Vec<Option<PathBuf>> = tools.iter().map(|t| find_tool(t)).collect();
    if let Some(i) = found.iter().position(Option::is_none) {
        return Ok(not_measured(&format!(
            "`{}` is not installed (see scripts/install-desktop-deps.sh and `cargo install tauri-driver`)",
            tools[i]
        )));
    }
    let (driver_bin, xvfb_bin) = (
        found[0].clone().expect("found"),
        found[2].clone().expect("found"),
    );
    let app = app.canonicalize()?;
    let runs = ctx.mode.pick(1, 3, 5);
    let busy_secs = ctx.mode.pick(2.0, 8.0, 20.0);
    let entities = ctx.mode.pick(1_000u64, 10_000, 10_000);

    // Display.
    let display = (90..200)
        .find(|n| {
            !Path::new(&format!("/tmp/.X11-unix/X{n}")).exists()
                && !Path::new(&format!("/tmp/.X{n}-lock")).exists()
        })
        .context("no free X display number")?;
    let mut xvfb_cmd = Command::new(&xvfb_bin);
    xvfb_cmd.args([
        format!(":{display}"),
        "-screen".into(),
        "0".into(),
        "1280x800x24".into(),
        "-nolisten".into(),
        "tcp".into(),
    ]);
    let _xvfb = Proc::spawn("Xvfb", xvfb_cmd, Some(&ctx.log))?;
    let deadline = Instant::now() + Duration::from_secs(10);
    while !Path::new(&format!("/tmp/.X11-unix/X{display}")).exists() {
        anyhow::ensure!(Instant::now() < deadline, "Xvfb did not start");
        std::thread::sleep(Duration::from_millis(50));
    }

    // Gateway with the entities.
    let (mut gw, url) = ctx.gateway(&GatewayOpts::default(), None)?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let http = reqwest::Client::new();
    let publisher = harness::token(STREAM, Role::Publisher);
    rt.block_on(harness::ingest_all(
        &http,
        &url,
        &publisher,
        seed_events(entities),
    ))?;

    let root = ctx.path("desktop");
    let data_dir = root.join("data");
    for d in ["home", "config", "data", "cache", "runtime"] {
        std::fs::create_dir_all(root.join(d))?;
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(root.join("runtime"), std::fs::Permissions::from_mode(0o700))?;
    }
    let env: Vec<(String, String)> = vec![
        ("DISPLAY".into(), format!(":{display}")),
        ("HOME".into(), root.join("home").display().to_string()),
        (
            "XDG_CONFIG_HOME".into(),
            root.join("config").display().to_string(),
        ),
        (
            "XDG_DATA_HOME".into(),
            root.join("data").display().to_string(),
        ),
        (
            "XDG_CACHE_HOME".into(),
            root.join("cache").display().to_string(),
        ),
        (
            "XDG_RUNTIME_DIR".into(),
            root.join("runtime").display().to_string(),
        ),
        (
            "PULSE_CONFIG_DIR".into(),
            root.join("config").display().to_string(),
        ),
        ("PULSE_DATA_DIR".into(), data_dir.display().to_string()),
        ("PULSE_SERVER".into(), url.clone()),
        ("PULSE_TOKEN".into(), harness::token(STREAM, Role::Viewer)),
        ("PULSE_NO_OS_NOTIFICATIONS".into(), "1".into()),
        ("PULSE_NO_SCHEME_REGISTRATION".into(), "1".into()),
        ("PULSE_LOG".into(), "warn".into()),
    ];
    let driver = Driver {
        bin: driver_bin,
        env,
        app: app.clone(),
        log: ctx.log.clone(),
    };

    let result = rt.block_on(async {
        // First launch: fill the cache from the gateway, then quit.
        eprintln!("desktop: first launch fills the cache with {entities} entities");
        {
            let s = driver.start().await?;
            s.wait_script(
                r#"const done = arguments[arguments.length - 1];
                   (function poll() {
                     const c = document.querySelector('[data-testid="content"]');
                     const l = document.querySelector('[data-testid="connection-label"]');
                     if (c && c.dataset.loaded === "true" && l && l.textContent.trim() === "Live") done(true);
                     else setTimeout(poll, 50);
                   })();"#,
                60,
            )
            .await
            .context("the app did not go Live")?;
            let deadline = Instant::now() + Duration::from_secs(60);
            loop {
                let n = cached_entities(&data_dir);
                if n >= entities {
                    break;
                }
                anyhow::ensure!(
                    Instant::now() < deadline,
                    "the cache holds {n} entities, wanted {entities}"
                );
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            s.quit().await;
        }

        // Cold starts from the cache.
        let mut starts = Vec::new();
        let mut via_driver = Vec::new();
        let mut to_navigation = Vec::new();
        let mut upper_bound = false;
        let mut last = None;
        for i in 0..runs {
            eprintln!("desktop: cold start {}", i + 1);
            let t0 = epoch_ms();
            let s = driver.start().await?;
            let v = s
                .wait_script(
                    r#"const done = arguments[arguments.length - 1];
                       const already = (() => { const c = document.querySelector('[data-testid="content"]');
                                                return !!c && c.dataset.loaded === "true"; })();
                       (function poll() {
                         const c = document.querySelector('[data-testid="content"]');
                         if (c && c.dataset.loaded === "true") {
                           requestAnimationFrame(() => done({
                             frame: performance.timeOrigin + performance.now(),
                             origin: performance.timeOrigin,
                             already: already,
                           }));
                         } else {
                           requestAnimationFrame(poll);
                         }
                       })();"#,
                    60,
                )
                .await?;
            let frame = v["frame"].as_f64().context("no frame time")?;
            upper_bound |= v["already"].as_bool().unwrap_or(false);
            let started = app_pid(&app)
                .and_then(process_start_epoch_ms)
                .context("the app's process was not found")?;
            starts.push(frame - started);
            via_driver.push(frame - t0);
            if let Some(origin) = v["origin"].as_f64() {
                to_navigation.push(origin - started);
            }
            if i + 1 < runs {
                s.quit().await;
            } else {
                last = Some(s);
            }
        }
        let s = last.context("no session")?;
        let cold = median(&starts);
        let cold_note = format!(
            "median of {runs} launches ({}); the app process's start (`/proc`, 10 ms resolution) → \
             the first animation frame after the cached entities are in the page. Counted from the \
             WebDriver launch request instead (adds tauri-driver and WebKitWebDriver starting the \
             app): median {:.0} ms. Of the cold start, the webview began loading the page after \
             a median {:.0} ms (process start → `performance.timeOrigin`); the rest is page load, \
             reading the cache over IPC and rendering{}",
            starts.iter().map(|v| format!("{v:.0} ms")).collect::<Vec<_>>().join(", "),
            median(&via_driver),
            median(&to_navigation),
            if upper_bound {
                "; the page had loaded before the probe ran in at least one launch, so that figure is \
                 an upper bound"
            } else {
                ""
            }
        );

        // Idle memory.
        let t_mem = Instant::now();
        let mut timeline = Vec::new();
        let settle = Instant::now() + Duration::from_secs(5);
        while Instant::now() < settle {
            if let Some(m) = tree_memory(&app) {
                timeline.push((t_mem.elapsed().as_secs_f64(), m.pss_mib));
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        let idle = tree_memory(&app).context("the app's processes were not found")?;

        // Busy: 1,000 events/s with 20 markers/s observed in the DOM.
        s.script(
            r#"window.__benchMarks = [];
               const seen = new Set();
               const obs = new MutationObserver(() => {
                 const b = document.querySelector('[data-testid="stats-block"][data-id="bench"]');
                 if (!b) return;
                 for (const dd of b.querySelectorAll('dd')) {
                   const v = Number(dd.textContent);
                   if (v > 0 && !seen.has(v)) {
                     seen.add(v);
                     window.__benchMarks.push([v, performance.timeOrigin + performance.now()]);
                   }
                 }
               });
               obs.observe(document.body, {subtree: true, childList: true, characterData: true});
               return true;"#,
        )
        .await?;
        let (sent, busy_peak) = publish_busy(&http, &url, &publisher, entities, busy_secs, &app, &mut timeline, t_mem).await?;
        tokio::time::sleep(Duration::from_millis(500)).await;
        let marks = s.script("return window.__benchMarks;").await?;
        s.quit().await;
        let mut lat = Latency::new();
        let mut seen = 0;
        for m in marks.as_array().into_iter().flatten() {
            let (Some(k), Some(at)) = (m[0].as_u64(), m[1].as_f64()) else {
                continue;
            };
            if let Some(t) = sent.get(k as usize - 1) {
                lat.record_ns(((at - t).max(0.001) * 1e6) as u64);
                seen += 1;
            }
        }
        let dom = lat.summary();
        let dom_note = format!(
            "{seen} of {} marker events seen in the DOM; publisher's ingest request → MutationObserver \
             callback (includes gateway, client core, IPC and the per-frame coalescing)",
            sent.len()
        );
        anyhow::Ok(DesktopResult {
            cold_start_ms: Figure::some(cold, cold_note),
            idle_rss_mib: Figure::some(
                idle.pss_mib,
                format!(
                    "PSS of the app's {} processes 5 s after the start (MiB: {}); RSS sum {:.0} MiB",
                    idle.processes,
                    idle.breakdown(),
                    idle.rss_mib
                ),
            ),
            busy_rss_mib: Figure::some(
                busy_peak.pss_mib,
                format!(
                    "highest PSS sample of the app's processes during {busy_secs} s at 1,000 events/s (MiB: {}); RSS sum {:.0} MiB",
                    busy_peak.breakdown(),
                    busy_peak.rss_mib
                ),
            ),
            dom_p99_ms: if seen > 0 {
                Figure::some(dom.p99_ms, dom_note.clone())
            } else {
                Figure::none(format!("not measured in this run: {dom_note}"))
            },
            dom_p50_ms: if seen > 0 {
                Figure::some(dom.p50_ms, dom_note)
            } else {
                Figure::none(format!("not measured in this run: {dom_note}"))
            },
            cold_starts: starts,
            timeline,
        })
    });
    gw.stop(Duration::from_secs(5));
    result
}

/// 10,000 entities the way a busy tenant has them.
fn seed_events(n: u64) -> impl Iterator<Item = Value> {
    const STATES: [&str; 5] = ["backlog", "todo", "in_progress", "review", "done"];
    const STATUSES: [&str; 3] = ["idle", "busy", "waiting"];
    (0..n).map(move |i| {
        let k = i / 5;
        let (state, status) = (STATES[(k % 5) as usize], STATUSES[(k % 3) as usize]);
        match i % 5 {
            0 => json!({"type": "ticket.created", "data": {"id": format!("tkt-{k}"), "title": format!("Ticket {k}: refund stuck in review"), "state": state, "assignee": format!("agent-{}", k % 40)}}),
            1 => json!({"type": "agent.upserted", "data": {"id": format!("agent-{k}"), "name": format!("Agent {k}"), "status": status}}),
            2 => json!({"type": "approval.created", "data": {"id": format!("apr-{k}"), "title": format!("Deploy service-{} v2.{}.0", k % 37, k % 20), "requested_by": format!("agent-{}", k % 40)}}),
            3 => json!({"type": "conversation.created", "data": {"id": format!("conv-{k}"), "subject": format!("Customer {k} asks about an invoice"), "customer": format!("customer-{k}")}}),
            _ => json!({"type": "notification.new", "data": {"id": format!("ntf-{k}"), "title": format!("Build {k} finished"), "body": "all checks passed"}}),
        }
    })
}

fn cached_entities(data_dir: &Path) -> u64 {
    let Ok(dir) = std::fs::read_dir(data_dir) else {
        return 0;
    };
    dir.flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "db"))
        .filter_map(|p| SqliteStore::open_read_only(&p).ok())
        .filter_map(|s| s.summary().ok())
        .map(|s| s.counts.values().sum::<u64>())
        .max()
        .unwrap_or(0)
}

/// Publish 1,000 events/s for `secs` (20 of them markers each second); returns
/// each marker's send time (epoch ms, marker k at index k-1) and the peak memory.
#[allow(clippy::too_many_arguments)]
async fn publish_busy(
    http: &reqwest::Client,
    url: &str,
    token: &str,
    entities: u64,
    secs: f64,
    app: &Path,
    timeline: &mut Vec<(f64, f64)>,
    t_mem: Instant,
) -> anyhow::Result<(Vec<f64>, TreeMemory)> {
    let rate = 1_000u64;
    let total = (rate as f64 * secs) as u64;
    let agents = (entities / 5).max(1);
    let start = Instant::now();
    let mut sent = 0u64;
    let mut marks: Vec<f64> = Vec::new();
    let mut peak = TreeMemory::default();
    let mut last_sample = Instant::now() - Duration::from_secs(1);
    let mut tick = tokio::time::interval(Duration::from_millis(5));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    while sent < total {
        tick.tick().await;
        let due = ((start.elapsed().as_secs_f64() * rate as f64) as u64).min(total);
        if due > sent {
            let now = epoch_ms();
            let events: Vec<Value> = (sent..due)
                .map(|k| {
                    if k % 50 == 0 {
                        marks.push(now);
                        json!({"type": "stats.updated", "data": {"scope": "bench", "stats": {"marker": marks.len()}}})
                    } else {
                        json!({"type": "agent.heartbeat", "data": {"id": format!("agent-{}", k % agents), "load": k % 100}})
                    }
                })
                .collect();
            let r = http
                .post(format!("{url}/v1/ingest"))
                .bearer_auth(token)
                .json(&events)
                .send()
                .await?;
            anyhow::ensure!(r.status().is_success(), "ingest: {}", r.status());
            sent = due;
        }
        if last_sample.elapsed() >= Duration::from_millis(500) {
            last_sample = Instant::now();
            if let Some(m) = tree_memory(app) {
                timeline.push((t_mem.elapsed().as_secs_f64(), m.pss_mib));
                if m.pss_mib > peak.pss_mib {
                    peak = m;
                }
            }
        }
    }
    Ok((marks, peak))
}
