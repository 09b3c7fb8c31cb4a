//! Benchmark 6, the desktop app (`pulse`, release build): cold start to first
//! paint, memory idle and busy and event → DOM latency, each as a curve from one
//! run: against the number of cached entities (1,000 / 10,000 / 100,000; 1,000 /
//! 10,000 / 30,000 with `--quick`) and, at 10,000 entities, against the event
//! rate (100 / 1,000 / 5,000 events/s). Side by side, the same UI as a web page
//! in Debian's Chromium holding the same 10,000 entities (`chromium`).
//!
//! The app runs under Xvfb and is driven through WebDriver (`tauri-driver` →
//! WebKitWebDriver), spoken here directly over HTTP. It follows a gateway (memory
//! store), configured the way a user would point it at a server
//! (`PULSE_SERVER`, `PULSE_TOKEN`, with its own data directory).
//!
//! Per cache size (ascending; one gateway, topped up to the size with bulk
//! ingest requests of up to 2,000 events):
//!
//! - **First launch**: a fresh data directory; the app fills its cache from the
//!   gateway and quits once the cache holds every entity (waited on, bounded).
//! - **Cold start**: per run, a new app process is started (WebDriver `POST
//!   /session` launches it) and a script in the page waits for the content to be
//!   marked loaded from the cache (`[data-testid=content][data-loaded=true]`, set
//!   once the cached entities are in the page) and for the next animation frame,
//!   the one that paints it. Cold start = that frame's time
//!   (`performance.timeOrigin + performance.now()`, epoch ms) − the app process's
//!   start time (`/proc/PID/stat`, 10 ms resolution); the same counted from the
//!   launch request is reported too. The OS file cache is warm (the binary ran
//!   moments before), as on a desktop.
//! - **Memory**: PSS of the whole app (the `pulse` process and its WebKit web and
//!   network processes), idle 5 s after the last cold start, and the highest
//!   sample while the gateway is published 1,000 events/s. RSS counts pages shared
//!   between the processes once per process; PSS (`/proc/PID/smaps_rollup`)
//!   shares them out, so the PSS sum is the honest total.
//! - **Event → DOM**: during each load, 20 events a second are `stats.updated` of
//!   a `bench` stats block the overview shows; a `MutationObserver` in the page
//!   records when each value reaches the DOM. The latency runs from the
//!   publisher's request (epoch ms just before it is sent) to the mutation, so it
//!   includes the gateway and the client core too. At the 10,000-entity point the
//!   load runs at 1,000, then 100, then 5,000 events/s in the same session.
//!
//!   A marker a later one replaced before it was shown counts at the time the
//!   later one was (`superseded`). With `PULSE_LATENCY_TRACE=1` in the
//!   benchmark's environment (the app inherits it) each marker's latency is also
//!   split into its stages (`stages`: core, payload, ipc, gap, late, dom).
//!   `--desktop-sizes` runs only the given cache sizes, without Chromium.
//!
//! The figures of the targets (cold start, memory idle and busy, event → DOM at
//! 1,000 events/s) are those of the 10,000-entity point.
//!
//! Layout: this module runs the benchmark and publishes the load; `procs` reads
//! `/proc` (process start times, the app's process tree and its memory);
//! `webdriver` starts `tauri-driver` and speaks WebDriver to the app; `serve`
//! serves the built UI and `chromium` measures it in Chromium.

mod chromium;
mod procs;
mod serve;
mod stages;
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

pub use chromium::ChromiumResult;
use procs::{app_pid, epoch_ms, process_start_epoch_ms, tree_memory, TreeMemory};
use webdriver::{Driver, Session};

const STREAM: &str = "desktop";

/// The cache size the targets' figures come from.
pub const HEADLINE_ENTITIES: u64 = 10_000;
/// The event rate of the busy figures.
pub const BUSY_RATE: u64 = 1_000;

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

/// Memory of a process tree at one moment.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Memory {
    /// PSS sum, MiB.
    pub pss_mib: f64,
    /// RSS sum, MiB.
    pub rss_mib: f64,
    /// Processes counted.
    pub processes: usize,
    /// PSS per process name, MiB, largest first.
    pub breakdown: String,
}

impl From<&TreeMemory> for Memory {
    fn from(m: &TreeMemory) -> Memory {
        Memory {
            pss_mib: m.pss_mib,
            rss_mib: m.rss_mib,
            processes: m.processes,
            breakdown: m.breakdown(),
        }
    }
}

/// One point of the cache-size curve.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct SizePoint {
    /// Entities in the gateway and the app's cache.
    pub entities: u64,
    /// Seconds to top the gateway up to `entities` (bulk ingest).
    pub gateway_fill_s: f64,
    /// Seconds of the first launch, until the cache held every entity.
    pub first_launch_s: Option<f64>,
    /// Each cold start, ms (process start → first frame with the entities).
    pub cold_starts: Vec<f64>,
    /// Median of `cold_starts`.
    pub cold_start_ms: Option<f64>,
    /// Median cold start counted from the WebDriver launch request, ms.
    pub cold_start_via_driver_ms: Option<f64>,
    /// Median process start → `performance.timeOrigin`, ms.
    pub to_navigation_ms: Option<f64>,
    /// Whether the page had loaded before the probe ran in a launch (an upper bound).
    pub upper_bound: bool,
    /// 5 s after the last cold start.
    pub idle: Option<Memory>,
    /// Highest sample at 1,000 events/s.
    pub busy: Option<Memory>,
    /// Seconds of the 1,000 events/s load.
    pub busy_secs: f64,
    /// Why the point is incomplete, if it is.
    pub error: Option<String>,
}

/// One point of the event-rate curve (event → DOM).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct RatePoint {
    /// Entities in the cache.
    pub entities: u64,
    /// Events/s published.
    pub rate: u64,
    /// Seconds it ran.
    pub secs: f64,
    /// Marker events published.
    pub sent: u64,
    /// Marker events seen in the DOM.
    pub seen: u64,
    /// Marker events never shown because a later marker of the same phase replaced
    /// them first (coalesced): they count in the latencies at the time the later
    /// one was shown, so a slow apply's coalescing does not hide its tail.
    #[serde(default)]
    pub superseded: u64,
    /// Event → DOM p50, ms (`None` when none was seen).
    pub p50_ms: Option<f64>,
    /// Event → DOM p99, ms.
    pub p99_ms: Option<f64>,
    /// Event → DOM max, ms.
    pub max_ms: Option<f64>,
    /// Highest PSS sample of the app during it, MiB.
    pub peak_pss_mib: Option<f64>,
    /// Where the time went, when the app traced (`PULSE_LATENCY_TRACE=1`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stages: Option<stages::Stages>,
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
    /// The cache size the figures above come from.
    #[serde(default)]
    pub headline_entities: u64,
    /// The cache-size curve, ascending.
    #[serde(default)]
    pub points: Vec<SizePoint>,
    /// The event-rate curve (at `headline_entities`), by rate ascending.
    #[serde(default)]
    pub rates: Vec<RatePoint>,
    /// The same UI in Chromium (the side by side).
    #[serde(default)]
    pub chromium: Option<ChromiumResult>,
}

fn not_measured(why: &str) -> DesktopResult {
    let f = || Figure::none(format!("not measured in this run: {why}"));
    DesktopResult {
        cold_start_ms: f(),
        idle_rss_mib: f(),
        busy_rss_mib: f(),
        dom_p99_ms: f(),
        dom_p50_ms: f(),
        ..DesktopResult::default()
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

/// The built UI (`ui/dist`) above the current directory, for the Chromium side.
pub fn find_ui_dist(start: &Path) -> Option<PathBuf> {
    start.ancestors().find_map(|d| {
        let p = d.join("ui/dist");
        p.join("index.html").is_file().then_some(p)
    })
}

/// The sizes of the cache-size curve and the rates of the event-rate curve.
fn plan(ctx: &Ctx) -> (Vec<u64>, Vec<u64>) {
    let sizes = ctx.mode.pick(
        vec![500, 2_000],
        vec![1_000, HEADLINE_ENTITIES, 30_000],
        vec![1_000, HEADLINE_ENTITIES, 100_000],
    );
    (sizes, vec![100, BUSY_RATE, 5_000])
}

/// What the cold start script answers.
const COLD_PROBE: &str = r#"const done = arguments[arguments.length - 1];
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
   })();"#;

/// Installs the observer that records each `bench` marker reaching the DOM.
const MARK_OBSERVER: &str = r#"window.__benchMarks = [];
   const seen = new Set();
   const obs = new MutationObserver(() => {
     const b = document.querySelector('[data-testid="stats-block"][data-id="bench"]');
     if (!b) return;
     for (const dd of b.querySelectorAll('dd')) {
       const v = Number(dd.textContent.replace(/[^0-9]/g, ""));
       if (v > 0 && !seen.has(v)) {
         seen.add(v);
         window.__benchMarks.push([v, performance.timeOrigin + performance.now()]);
       }
     }
   });
   obs.observe(document.body, {subtree: true, childList: true, characterData: true});
   return true;"#;

/// Run it with the app binary at `app`; `ui_dist` is the built UI for the
/// Chromium side (none: that side is reported as not measured). `only_sizes`
/// (when not empty) replaces the curve's cache sizes and skips the Chromium side.
pub fn run(
    ctx: &Ctx,
    app: &Path,
    ui_dist: Option<&Path>,
    only_sizes: &[u64],
) -> anyhow::Result<DesktopResult> {
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
    let busy_secs = ctx.mode.pick(2.0, 6.0, 20.0);
    let (mut sizes, rates) = plan(ctx);
    let ui_dist = if only_sizes.is_empty() {
        ui_dist
    } else {
        sizes = only_sizes.to_vec();
        None
    };
    let headline = if sizes.contains(&HEADLINE_ENTITIES) {
        HEADLINE_ENTITIES
    } else {
        *sizes.last().expect("sizes")
    };

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

    let (mut gw, url) = ctx.gateway(&GatewayOpts::default(), None)?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let http = reqwest::Client::new();
    let publisher = harness::token(STREAM, Role::Publisher);

    let root = ctx.path("desktop");
    for d in ["home", "config", "cache", "runtime"] {
        std::fs::create_dir_all(root.join(d))?;
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(root.join("runtime"), std::fs::Permissions::from_mode(0o700))?;
    }
    let env_for = |data_dir: &Path| -> Vec<(String, String)> {
        vec![
            ("DISPLAY".into(), format!(":{display}")),
            ("HOME".into(), root.join("home").display().to_string()),
            (
                "XDG_CONFIG_HOME".into(),
                root.join("config").display().to_string(),
            ),
            ("XDG_DATA_HOME".into(), data_dir.display().to_string()),
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
        ]
    };

    let mut out = DesktopResult {
        headline_entities: headline,
        ..DesktopResult::default()
    };
    let mut in_gateway = 0u64;
    for &n in &sizes {
        let mut point = SizePoint {
            entities: n,
            busy_secs,
            ..SizePoint::default()
        };
        let t = Instant::now();
        eprintln!("desktop: the gateway is topped up to {n} entities");
        rt.block_on(harness::ingest_all(
            &http,
            &url,
            &publisher,
            seed_events(n).skip(in_gateway as usize),
        ))?;
        in_gateway = n;
        point.gateway_fill_s = t.elapsed().as_secs_f64();
        let data_dir = root.join(format!("data-{n}"));
        std::fs::create_dir_all(&data_dir)?;
        let driver = Driver {
            bin: driver_bin.clone(),
            env: env_for(&data_dir),
            app: app.clone(),
            log: ctx.log.clone(),
        };
        let phases: Vec<u64> = if n == headline {
            // 1,000 first: its busy memory follows idle, as at the other sizes.
            let mut r = vec![BUSY_RATE];
            r.extend(rates.iter().copied().filter(|r| *r != BUSY_RATE));
            r
        } else {
            vec![BUSY_RATE]
        };
        let mut timeline = Vec::new();
        let r = rt.block_on(measure_point(
            &driver,
            &data_dir,
            &http,
            &url,
            &publisher,
            &mut point,
            runs,
            busy_secs,
            &phases,
            (n == headline).then_some(&mut timeline),
        ));
        match r {
            Ok(rate_points) => {
                // Every rate at the headline size; at the others, 1,000 events/s.
                out.rates.extend(rate_points);
                if n == headline {
                    out.timeline = timeline;
                }
            }
            Err(e) => {
                eprintln!("desktop: the {n}-entity point failed: {e:#}");
                point.error = Some(format!("{e:#}"));
            }
        }
        let failed = point.error.is_some();
        out.points.push(point);
        if failed {
            // The app is single-instance: a launch left running blocks the next.
            rt.block_on(webdriver::end_app(&app));
            if tree_memory(&app).is_some() {
                break;
            }
        }
    }
    gw.stop(Duration::from_secs(5));
    // Rates at the headline size first (ascending), then the other sizes' 1,000/s.
    out.rates
        .sort_by_key(|p| (p.entities != headline, p.entities, p.rate));

    // The side by side, with the same entities and the busy rate.
    let chromium_bin = chromium::find();
    out.chromium = Some(match (chromium_bin, ui_dist) {
        (None, _) => ChromiumResult {
            skipped: Some("`chromium` is not installed (Debian: apt-get install chromium)".into()),
            ..ChromiumResult::default()
        },
        (_, None) => ChromiumResult {
            skipped: Some("no built UI (ui/dist: `npm run build` in ui/)".into()),
            ..ChromiumResult::default()
        },
        (Some(bin), Some(dist)) => rt
            .block_on(chromium::measure(
                &bin, dist, &root, &ctx.log, headline, BUSY_RATE, busy_secs,
            ))
            .unwrap_or_else(|e| ChromiumResult {
                skipped: Some(format!("failed: {e:#}")),
                ..ChromiumResult::default()
            }),
    });

    headline_figures(&mut out, runs);
    Ok(out)
}

/// The targets' figures from the headline point of the curves.
fn headline_figures(out: &mut DesktopResult, runs: usize) {
    let n = out.headline_entities;
    let why = |p: Option<&SizePoint>| {
        format!(
            "not measured in this run: {}",
            p.and_then(|p| p.error.clone())
                .unwrap_or_else(|| format!("no {n}-entity point"))
        )
    };
    let point = out.points.iter().find(|p| p.entities == n);
    out.cold_start_ms = match point.and_then(|p| p.cold_start_ms.map(|c| (p, c))) {
        Some((p, cold)) => {
            out.cold_starts = p.cold_starts.clone();
            Figure::some(
                cold,
                format!(
                    "median of {runs} launches ({}); the app process's start (`/proc`, 10 ms resolution) → \
                     the first animation frame after the cached entities are in the page. Counted from the \
                     WebDriver launch request instead (adds tauri-driver and WebKitWebDriver starting the \
                     app): median {:.0} ms. Of the cold start, the webview began loading the page after \
                     a median {:.0} ms (process start → `performance.timeOrigin`); the rest is page load, \
                     reading the cache over IPC and rendering{}",
                    p.cold_starts
                        .iter()
                        .map(|v| format!("{v:.0} ms"))
                        .collect::<Vec<_>>()
                        .join(", "),
                    p.cold_start_via_driver_ms.unwrap_or(f64::NAN),
                    p.to_navigation_ms.unwrap_or(f64::NAN),
                    if p.upper_bound {
                        "; the page had loaded before the probe ran in at least one launch, so that figure is \
                         an upper bound"
                    } else {
                        ""
                    }
                ),
            )
        }
        None => Figure::none(why(point)),
    };
    out.idle_rss_mib = match point.and_then(|p| p.idle.as_ref()) {
        Some(m) => Figure::some(
            m.pss_mib,
            format!(
                "PSS of the app's {} processes 5 s after the start (MiB: {}); RSS sum {:.0} MiB",
                m.processes, m.breakdown, m.rss_mib
            ),
        ),
        None => Figure::none(why(point)),
    };
    out.busy_rss_mib = match point.and_then(|p| p.busy.as_ref().map(|m| (p, m))) {
        Some((p, m)) => Figure::some(
            m.pss_mib,
            format!(
                "highest PSS sample of the app's processes during {} s at {} events/s (MiB: {}); RSS sum {:.0} MiB",
                p.busy_secs,
                crate::svg::fmt_num(BUSY_RATE as f64),
                m.breakdown,
                m.rss_mib
            ),
        ),
        None => Figure::none(why(point)),
    };
    let rate = out
        .rates
        .iter()
        .find(|r| r.entities == n && r.rate == BUSY_RATE);
    let dom_note = |r: &RatePoint| {
        format!(
            "{} of {} marker events seen in the DOM ({} more replaced by a later one first, counted at \
             its time); publisher's ingest request → MutationObserver callback (includes gateway, \
             client core, IPC and the page's coalescing)",
            r.seen, r.sent, r.superseded
        )
    };
    (out.dom_p50_ms, out.dom_p99_ms) = match rate {
        Some(r) if r.seen > 0 => (
            Figure::some(r.p50_ms.unwrap_or_default(), dom_note(r)),
            Figure::some(r.p99_ms.unwrap_or_default(), dom_note(r)),
        ),
        Some(r) => (
            Figure::none(format!("not measured in this run: {}", dom_note(r))),
            Figure::none(format!("not measured in this run: {}", dom_note(r))),
        ),
        None => (Figure::none(why(point)), Figure::none(why(point))),
    };
}

/// Wait (bounded) until the page shows the content loaded and the app is Live.
async fn wait_live(s: &Session) -> anyhow::Result<()> {
    s.wait_script(
        r#"const done = arguments[arguments.length - 1];
           (function poll() {
             const c = document.querySelector('[data-testid="content"]');
             const l = document.querySelector('[data-testid="connection-label"]');
             if (c && c.dataset.loaded === "true" && l && l.textContent.trim() === "Live") done(true);
             else setTimeout(poll, 50);
           })();"#,
        120,
    )
    .await
    .context("the app did not go Live")?;
    Ok(())
}

/// One size: first launch, cold starts, idle memory, then the loads at `phases`
/// events/s in one session. Fills `point`; returns the event → DOM figures per
/// phase (in `phases`' order).
#[allow(clippy::too_many_arguments)]
async fn measure_point(
    driver: &Driver,
    data_dir: &Path,
    http: &reqwest::Client,
    url: &str,
    publisher: &str,
    point: &mut SizePoint,
    runs: usize,
    busy_secs: f64,
    phases: &[u64],
    mut timeline: Option<&mut Vec<(f64, f64)>>,
) -> anyhow::Result<Vec<RatePoint>> {
    let entities = point.entities;
    let app = driver.app.clone();
    // First launch: fill the cache from the gateway, then quit. Bounded by a
    // minute plus a second per 1,000 entities (100,000: under 3 minutes).
    eprintln!("desktop: first launch fills the cache with {entities} entities");
    let t = Instant::now();
    {
        let s = driver.start().await?;
        let filled = async {
            wait_live(&s).await?;
            let deadline = Instant::now() + Duration::from_secs(60 + entities / 1_000);
            loop {
                let n = cached_entities(data_dir);
                if n >= entities {
                    break;
                }
                anyhow::ensure!(
                    Instant::now() < deadline,
                    "the cache holds {n} entities, wanted {entities}"
                );
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            anyhow::Ok(())
        }
        .await;
        s.quit().await;
        filled?;
    }
    point.first_launch_s = Some(t.elapsed().as_secs_f64());

    // Cold starts from the cache.
    let mut via_driver = Vec::new();
    let mut to_navigation = Vec::new();
    let mut last = None;
    for i in 0..runs {
        eprintln!("desktop: {entities} entities, cold start {}", i + 1);
        let t0 = epoch_ms();
        let s = driver.start().await?;
        let v = match s.wait_script(COLD_PROBE, 60).await {
            Ok(v) => v,
            Err(e) => {
                s.quit().await;
                return Err(e);
            }
        };
        let frame = v["frame"].as_f64().context("no frame time")?;
        point.upper_bound |= v["already"].as_bool().unwrap_or(false);
        let started = app_pid(&app)
            .and_then(process_start_epoch_ms)
            .context("the app's process was not found")?;
        point.cold_starts.push(frame - started);
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
    point.cold_start_ms = Some(median(&point.cold_starts));
    point.cold_start_via_driver_ms = Some(median(&via_driver));
    point.to_navigation_ms = Some(median(&to_navigation));

    let result = async {
        // Idle memory.
        let t_mem = Instant::now();
        let settle = Instant::now() + Duration::from_secs(5);
        while Instant::now() < settle {
            if let (Some(m), Some(tl)) = (tree_memory(&app), timeline.as_deref_mut()) {
                tl.push((t_mem.elapsed().as_secs_f64(), m.pss_mib));
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        let idle = tree_memory(&app).context("the app's processes were not found")?;
        point.idle = Some(Memory::from(&idle));

        // The loads, markers observed in the DOM.
        s.script(MARK_OBSERVER).await?;
        let agents = (entities / 5).max(1);
        let mut marks: Vec<f64> = Vec::new();
        let mut spans = Vec::new();
        for &rate in phases {
            eprintln!("desktop: {entities} entities, {rate} events/s for {busy_secs} s");
            let from = marks.len();
            let peak = publish_phase(
                http,
                url,
                publisher,
                agents,
                rate,
                busy_secs,
                &app,
                &mut marks,
                timeline.as_deref_mut().map(|tl| (tl, t_mem)),
            )
            .await?;
            if rate == BUSY_RATE && point.busy.is_none() {
                point.busy = Some(Memory::from(&peak));
            }
            spans.push((rate, from, marks.len(), peak.pss_mib));
            // Let the last markers of this phase reach the DOM before the next.
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        let seen_marks = s.script("return window.__benchMarks;").await?;
        let traced: std::collections::HashMap<u64, (stages::Marks, u64)> =
            stages::traces(&s.script("return window.__pulseLatency || null;").await?)
                .into_iter()
                .map(|(k, m, n)| (k, (m, n)))
                .collect();
        let mut shown: Vec<Option<f64>> = vec![None; marks.len()];
        for m in seen_marks.as_array().into_iter().flatten() {
            let (Some(k), Some(at)) = (m[0].as_u64(), m[1].as_f64()) else {
                continue;
            };
            if let Some(slot) = (k as usize).checked_sub(1).and_then(|i| shown.get_mut(i)) {
                slot.get_or_insert(at);
            }
        }
        let ranges: Vec<std::ops::Range<usize>> = spans.iter().map(|(_, a, b, _)| *a..*b).collect();
        let dom = dom_times(&shown, &ranges);
        // (latency, seen, superseded) per phase.
        let mut lat: Vec<(Latency, u64, u64)> =
            spans.iter().map(|_| (Latency::new(), 0, 0)).collect();
        let mut splits: Vec<Vec<(stages::Split, u64)>> = spans.iter().map(|_| Vec::new()).collect();
        for (i, d) in dom.iter().enumerate() {
            let (Some((at, superseded)), Some(p)) = (d, ranges.iter().position(|r| r.contains(&i)))
            else {
                continue;
            };
            let t = marks[i];
            lat[p].0.record_ns(((at - t).max(0.001) * 1e6) as u64);
            if *superseded {
                lat[p].2 += 1;
                continue;
            }
            lat[p].1 += 1;
            if let Some((tr, n)) = traced.get(&(i as u64 + 1)) {
                splits[p].push((stages::split(t, *tr, *at), *n));
            }
        }
        let stages: Vec<Option<stages::Stages>> = splits
            .iter()
            .map(|v| (!v.is_empty()).then(|| stages::summarise(v)))
            .collect();
        for ((rate, ..), st) in spans.iter().zip(&stages) {
            if let Some(st) = st {
                eprintln!(
                    "desktop: {entities} entities, {rate} events/s, stages (ms): {}",
                    serde_json::to_string(st).unwrap_or_default()
                );
            }
        }
        anyhow::Ok(
            spans
                .iter()
                .zip(lat)
                .zip(stages)
                .map(|(((rate, a, b, peak), (l, seen, superseded)), stages)| {
                    let sum = l.summary();
                    let has = seen > 0;
                    RatePoint {
                        entities,
                        rate: *rate,
                        secs: busy_secs,
                        sent: (b - a) as u64,
                        seen,
                        superseded,
                        p50_ms: has.then_some(sum.p50_ms),
                        p99_ms: has.then_some(sum.p99_ms),
                        max_ms: has.then_some(sum.max_ms),
                        peak_pss_mib: Some(*peak),
                        stages,
                    }
                })
                .collect(),
        )
    }
    .await;
    s.quit().await;
    result
}

/// When each marker reached the DOM (`shown[i]`: marker i+1's first appearance,
/// epoch ms), or, when it never appeared, when a later marker of the same phase
/// (`phases`: index ranges) first did (`true`: superseded). A marker that
/// neither it nor a later one of its phase showed has none.
fn dom_times(shown: &[Option<f64>], phases: &[std::ops::Range<usize>]) -> Vec<Option<(f64, bool)>> {
    let mut out = vec![None; shown.len()];
    for r in phases {
        let mut later: Option<f64> = None;
        for i in r.clone().rev() {
            let Some(s) = shown.get(i) else { continue };
            out[i] = match s {
                Some(at) => Some((*at, false)),
                None => later.map(|at| (at, true)),
            };
            if let Some(at) = s {
                later = Some(later.map_or(*at, |l: f64| l.min(*at)));
            }
        }
    }
    out
}

/// `n` entities the way a busy tenant has them (the UI's fake makes the same for
/// the Chromium side: ui/src/lib/backend/fakeload.ts; change both together).
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

/// Publish `rate` events/s for `secs`, 20 of them a second markers (marker k
/// is pushed at index k-1 of `marks`, its send time in epoch ms); samples the
/// app's memory every 500 ms (into `timeline` when given) and returns the peak.
#[allow(clippy::too_many_arguments)]
async fn publish_phase(
    http: &reqwest::Client,
    url: &str,
    token: &str,
    agents: u64,
    rate: u64,
    secs: f64,
    app: &Path,
    marks: &mut Vec<f64>,
    mut timeline: Option<(&mut Vec<(f64, f64)>, Instant)>,
) -> anyhow::Result<TreeMemory> {
    let total = (rate as f64 * secs) as u64;
    let every = (rate / 20).max(1);
    let start = Instant::now();
    let mut sent = 0u64;
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
                    if k % every == 0 {
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
                if let Some((tl, t0)) = timeline.as_mut() {
                    tl.push((t0.elapsed().as_secs_f64(), m.pss_mib));
                }
                if m.pss_mib > peak.pss_mib {
                    peak = m;
                }
            }
        }
    }
    Ok(peak)
}

#[cfg(test)]
mod tests {
    use super::dom_times;

    #[test]
    fn a_superseded_marker_counts_at_the_later_ones_time_within_its_phase() {
        // Phase 0: markers 0..4, 1 and 2 replaced by 3; phase 1: 4..6, 5 never shown.
        let shown = [Some(10.0), None, None, Some(30.0), Some(50.0), None];
        let d = dom_times(&shown, &[0..4, 4..6]);
        assert_eq!(
            d,
            vec![
                Some((10.0, false)),
                Some((30.0, true)),
                Some((30.0, true)),
                Some((30.0, false)),
                Some((50.0, false)),
                None,
            ]
        );
        // A later marker shown before an earlier one: the earliest later time counts.
        let all = 0..3;
        let one = std::slice::from_ref(&all);
        let d = dom_times(&[None, Some(40.0), Some(35.0)], one);
        assert_eq!(d[0], Some((35.0, true)));
        // Out of range phases and empty input: nothing, no panic.
        assert!(dom_times(&[], one).is_empty());
    }
}
