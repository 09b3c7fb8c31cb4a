//! The report: `docs/benchmarks.md` and its SVG charts, written from
//! `results.json` (and criterion's estimates) — every number in it comes from
//! one run, and every comparison is a ratio of figures from that same run.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::{Deserialize, Serialize};

use crate::desktop::{DesktopResult, Figure};
use crate::fanout::FanoutResult;
use crate::harness::Mode;
use crate::ingest::{self, IngestResult};
use crate::latency::LatencyResult;
use crate::machine::Machine;
use crate::pulsectl::PulsectlResult;
use crate::requests::{self, RequestsResult};
use crate::resync::ResyncResult;
use crate::svg::{fmt_num, BarChart, LineChart, Series};
use crate::workload::Size;

/// Everything one run measured.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Results {
    /// Run size.
    pub mode: Mode,
    /// Where.
    pub machine: Machine,
    /// When it started.
    pub started_at: String,
    /// When it ended.
    pub finished_at: String,
    /// Benchmark 1.
    pub ingest: Option<IngestResult>,
    /// Benchmark 2.
    pub latency: Option<LatencyResult>,
    /// Benchmark 3.
    pub fanout: Option<FanoutResult>,
    /// Benchmark 4.
    pub resync: Option<ResyncResult>,
    /// Benchmark 5.
    pub requests: Option<RequestsResult>,
    /// Benchmark 6.
    pub desktop: Option<DesktopResult>,
    /// Benchmark 7.
    pub pulsectl: Option<PulsectlResult>,
    /// Benchmarks that failed, with why.
    pub failures: Vec<String>,
    /// How busy the rest of the machine was during each benchmark.
    #[serde(default)]
    pub load: Vec<LoadNote>,
}

/// CPU used by other processes around one benchmark.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct LoadNote {
    /// Benchmark.
    pub bench: String,
    /// Other processes' cores just before it started (after waiting for quiet).
    pub before_cores: f64,
    /// Other processes' average cores while it ran.
    pub during_cores: f64,
    /// Seconds it took.
    pub seconds: f64,
}

impl Default for Results {
    fn default() -> Self {
        Results {
            mode: Mode::Quick,
            machine: Machine::default(),
            started_at: String::new(),
            finished_at: String::new(),
            ingest: None,
            latency: None,
            fanout: None,
            resync: None,
            requests: None,
            desktop: None,
            pulsectl: None,
            failures: Vec::new(),
            load: Vec::new(),
        }
    }
}

/// Arguments of `pulse-bench report`.
#[derive(Debug, clap::Args)]
pub struct ReportArgs {
    /// results.json of a run.
    #[arg(long)]
    results: PathBuf,
    /// Criterion's output directory (`$CARGO_TARGET_DIR/criterion`), if the
    /// micro-benchmarks ran.
    #[arg(long)]
    criterion: Option<PathBuf>,
    /// Markdown file to write.
    #[arg(long)]
    markdown: PathBuf,
    /// Directory for the SVG charts (linked relative to the Markdown file).
    #[arg(long)]
    charts: PathBuf,
    /// Hand-written analysis (Markdown) to include after the summary, if the file
    /// exists (`benches/analysis.md`).
    #[arg(long)]
    analysis: Option<PathBuf>,
}

/// One criterion benchmark.
#[derive(Debug, Clone)]
pub struct Micro {
    /// `group/function/param`.
    pub id: String,
    /// Median time per iteration, ns.
    pub median_ns: f64,
    /// Elements per iteration, if declared.
    pub elements: Option<u64>,
    /// Bytes per iteration, if declared.
    pub bytes: Option<u64>,
}

/// Read every `new/benchmark.json` + `new/estimates.json` under `dir`.
pub fn read_criterion(dir: &Path) -> Vec<Micro> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                if p.file_name().is_some_and(|n| n == "new") {
                    if let Some(m) = read_micro(&p) {
                        out.push(m);
                    }
                } else if p.file_name().is_none_or(|n| n != "report") {
                    stack.push(p);
                }
            }
        }
    }
    out.sort_by(|a, b| a.id.cmp(&b.id));
    out
}

fn read_micro(dir: &Path) -> Option<Micro> {
    let bench: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("benchmark.json")).ok()?).ok()?;
    let est: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("estimates.json")).ok()?).ok()?;
    Some(Micro {
        id: bench["full_id"].as_str()?.to_owned(),
        median_ns: est["median"]["point_estimate"].as_f64()?,
        elements: bench["throughput"]["Elements"].as_u64(),
        bytes: bench["throughput"]["Bytes"].as_u64(),
    })
}

fn mib(bytes: u64) -> String {
    let b = bytes as f64;
    if b >= 1024.0 * 1024.0 {
        format!("{:.2} MiB", b / 1024.0 / 1024.0)
    } else {
        format!("{:.1} KiB", b / 1024.0)
    }
}

fn time_ns(ns: f64) -> String {
    if ns >= 1e6 {
        format!("{:.2} ms", ns / 1e6)
    } else if ns >= 1e3 {
        format!("{:.2} µs", ns / 1e3)
    } else {
        format!("{ns:.0} ns")
    }
}

fn yes(met: bool) -> &'static str {
    if met {
        "**yes**"
    } else {
        "**no**"
    }
}

/// A line of the summary table.
struct Goal {
    figure: String,
    target: String,
    measured: String,
    met: String,
}

fn goal(figure: &str, target: &str, measured: String, met: Option<bool>) -> Goal {
    Goal {
        figure: figure.into(),
        target: target.into(),
        measured,
        met: match met {
            Some(m) => yes(m).into(),
            None => "not measured".into(),
        },
    }
}

fn find<'a>(r: &'a IngestResult, client: &str, size: Size) -> Option<&'a ingest::Row> {
    r.rows
        .iter()
        .find(|x| x.client == client && x.size == size && x.skipped.is_none())
}

fn figure_text(f: &Figure, unit: &str) -> String {
    match f.value {
        Some(v) => format!("{} {unit}", fmt_num(v)),
        None => "not measured".into(),
    }
}

/// Write the report.
pub fn write(args: ReportArgs) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(&args.results)
        .with_context(|| format!("cannot read {}", args.results.display()))?;
    let r: Results = serde_json::from_str(&text)?;
    let micro = args
        .criterion
        .as_deref()
        .map(read_criterion)
        .unwrap_or_default();
    std::fs::create_dir_all(&args.charts)?;
    let md_dir = args
        .markdown
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default();
    let rel = pathdiff(&args.charts, &md_dir);
    let mut charts: Vec<(String, String)> = Vec::new();
    let mut md = render(&r, &micro, &rel, &mut charts);
    if let Some(text) = args
        .analysis
        .as_deref()
        .and_then(|p| std::fs::read_to_string(p).ok())
    {
        // After the summary table, before section 1.
        let at = md.find("\n## 1. ").map(|i| i + 1).unwrap_or(md.len());
        md.insert_str(at, &format!("{}\n\n", text.trim_end()));
    }
    for (name, svg) in &charts {
        std::fs::write(args.charts.join(name), svg)?;
    }
    if let Some(dir) = args.markdown.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(&args.markdown, md)?;
    eprintln!(
        "wrote {} and {} charts in {}",
        args.markdown.display(),
        charts.len(),
        args.charts.display()
    );
    Ok(())
}

/// `charts` relative to `base` (both as given; good enough for docs/ + docs/benchmarks).
fn pathdiff(charts: &Path, base: &Path) -> String {
    let c = charts
        .canonicalize()
        .unwrap_or_else(|_| charts.to_path_buf());
    let b = base.canonicalize().unwrap_or_else(|_| base.to_path_buf());
    match c.strip_prefix(&b) {
        Ok(p) => p.display().to_string(),
        Err(_) => c.display().to_string(),
    }
}

/// Render the Markdown; pushes (file name, SVG) pairs onto `charts`.
pub fn render(
    r: &Results,
    micro: &[Micro],
    chart_dir: &str,
    charts: &mut Vec<(String, String)>,
) -> String {
    let mut md = String::new();
    let mut chart = |name: &str, svg: String, alt: &str| -> String {
        charts.push((format!("{name}.svg"), svg));
        let path = if chart_dir.is_empty() {
            format!("{name}.svg")
        } else {
            format!("{chart_dir}/{name}.svg")
        };
        format!("![{alt}]({path})\n")
    };
    let m = &r.machine;
    let _ = writeln!(md, "# Pulse benchmarks\n");
    let _ = writeln!(
        md,
        "Written by `./scripts/bench.sh` (mode `{}`) from one run, {} – {}. Every figure below \
         comes from that run; comparisons are ratios of figures measured in it, on this machine:\n",
        format!("{:?}", r.mode).to_lowercase(),
        r.started_at,
        r.finished_at
    );
    let _ = writeln!(md, "- **Machine**: {}", m.line());
    let _ = writeln!(md, "- **Build**: {}", m.profile);
    let _ = writeln!(
        md,
        "- **Loads** target loopback only (127.0.0.0/8), are bounded in count and time, and share the \
         machine's {} cores with whatever they measure unless a section says how processes were pinned.\n",
        m.cores
    );
    if !r.load.is_empty() {
        let busy: Vec<&LoadNote> = r.load.iter().filter(|l| l.during_cores > 0.25).collect();
        let _ = writeln!(
            md,
            "- **Other processes** on the machine (this harness and its children excluded; from \
             `/proc/stat`; processes the harness's children start and do not wait for, such as the \
             desktop app's WebKit processes, count as other): each benchmark waited up to a minute \
             for them to use under 0.25 cores, then ran. {}\n",
            if busy.is_empty() {
                "They stayed under 0.25 cores throughout.".to_string()
            } else {
                format!(
                    "They used more while these ran, so those figures may be pessimistic: {}.",
                    busy.iter()
                        .map(|l| {
                            if l.bench == "desktop" {
                                format!(
                                    "desktop ({:.2} cores on average, which includes the app's own WebKit processes: the machine was quiet before it started)",
                                    l.during_cores
                                )
                            } else {
                                format!("{} ({:.2} cores on average)", l.bench, l.during_cores)
                            }
                        })
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            }
        );
    }
    if !r.failures.is_empty() {
        let _ = writeln!(
            md,
            "**Benchmarks that failed in this run** (their sections say so):\n"
        );
        for f in &r.failures {
            let _ = writeln!(md, "- `{}`", f.replace('\n', " "));
        }
        let _ = writeln!(md);
    }

    // ---------------------------------------------------------------- summary
    let mut goals = Vec::new();
    if let Some(ing) = &r.ingest {
        let native = find(ing, ingest::NATIVE_FRAMES, Size::Small);
        goals.push(goal(
            "Core ingest, native, small events, decoded + SQLite + emitted, one core",
            "≥ 100,000 events/s",
            native
                .map(|n| {
                    format!(
                        "{} events/s ({} per CPU-second)",
                        fmt_num(n.events_per_s),
                        fmt_num(n.events_per_cpu_s)
                    )
                })
                .unwrap_or_else(|| "not measured".into()),
            native.map(|n| n.events_per_s >= 100_000.0),
        ));
        for (size, pulse_row, what) in [
            (
                Size::Small,
                ingest::SIO_SESSION,
                "Pulse session (persisted) vs socket.io-client (receive only)",
            ),
            (
                Size::Large,
                ingest::SIO_SESSION,
                "Pulse session (persisted) vs socket.io-client (receive only)",
            ),
            (
                Size::Small,
                ingest::SIO_RAW,
                "Pulse socketio transport vs socket.io-client (both receive only)",
            ),
            (
                Size::Large,
                ingest::SIO_RAW,
                "Pulse socketio transport vs socket.io-client (both receive only)",
            ),
        ] {
            let node = find(ing, ingest::SIO_NODE, size);
            let sess = find(ing, pulse_row, size);
            let (measured, met) = match (node, sess) {
                (Some(n), Some(s)) => (
                    format!(
                        "Pulse {} vs socket.io-client {} events/s: **×{:.2}**",
                        fmt_num(s.events_per_s),
                        fmt_num(n.events_per_s),
                        s.events_per_s / n.events_per_s
                    ),
                    Some(s.events_per_s > n.events_per_s),
                ),
                _ => ("not measured".into(), None),
            };
            goals.push(goal(
                &format!(
                    "Ingest from the same Socket.IO server, {} events: {what}",
                    size.as_str()
                ),
                "ahead",
                measured,
                met,
            ));
        }
    }
    if let Some(lat) = r.latency.as_ref().and_then(|l| l.runs.first()) {
        for p in &lat.phases {
            goals.push(goal(
                &format!(
                    "Latency ingest → client cache, {} events/s, p99 (gateway store: {})",
                    fmt_num(p.rate as f64),
                    lat.store
                ),
                "< 5 ms",
                format!(
                    "p50 {} ms, p99 {} ms, max {} ms",
                    fmt_num(p.latency.p50_ms),
                    fmt_num(p.latency.p99_ms),
                    fmt_num(p.latency.max_ms)
                ),
                Some(p.latency.p99_ms < 5.0),
            ));
        }
    }
    if let Some(f) = &r.fanout {
        if let Some(c) = f
            .cases
            .iter()
            .filter(|c| c.server == crate::fanout::PULSE && c.skipped.is_none())
            .max_by_key(|c| c.clients)
        {
            goals.push(goal(
                &format!(
                    "Gateway fan-out, {} clients, delivery p99",
                    fmt_num(c.clients as f64)
                ),
                "< 50 ms",
                format!(
                    "p99 {} ms; {} of {} delivered; gateway {:.2} cores, {} MiB",
                    fmt_num(c.latency.p99_ms),
                    fmt_num(c.delivered as f64),
                    fmt_num(c.expected as f64),
                    c.server_usage.cores,
                    fmt_num(c.server_usage.rss_peak_mib)
                ),
                Some(c.latency.p99_ms < 50.0 && c.delivered == c.expected),
            ));
        }
    }
    if let Some(q) = &r.requests {
        if let Some(p) = q.clients.iter().find(|c| c.client == requests::PULSE) {
            let seed = q.clients.iter().find(|c| c.client == requests::SEED_000);
            goals.push(goal(
                "Network at rest, 15 minutes open: requests",
                "one snapshot, then only the socket",
                format!(
                    "{} requests ({} after the first minute){}",
                    p.requests,
                    p.requests_after_first_minute,
                    seed.map(|s| format!("; seed 000 polling: {}", s.requests))
                        .unwrap_or_default()
                ),
                Some(p.requests <= 2 && p.requests_after_first_minute == 0),
            ));
        }
    }
    if let Some(d) = &r.desktop {
        goals.push(goal(
            "Desktop cold start to first paint, 10,000 cached entities",
            "< 400 ms",
            figure_text(&d.cold_start_ms, "ms"),
            d.cold_start_ms.value.map(|v| v < 400.0),
        ));
        let rss = match (d.idle_rss_mib.value, d.busy_rss_mib.value) {
            (Some(i), Some(b)) => Some(i.max(b)),
            (a, b) => a.or(b),
        };
        goals.push(goal(
            "Desktop resident memory, idle and at 1,000 events/s",
            "< 150 MB",
            format!(
                "idle {}, busy {}",
                figure_text(&d.idle_rss_mib, "MiB"),
                figure_text(&d.busy_rss_mib, "MiB")
            ),
            rss.map(|v| v * 1.048_576 < 150.0),
        ));
        goals.push(goal(
            "Desktop event → DOM at 1,000 events/s, p99",
            "within one frame (16.7 ms)",
            figure_text(&d.dom_p99_ms, "ms"),
            d.dom_p99_ms.value.map(|v| v <= 16.7),
        ));
    }
    if let Some(p) = &r.pulsectl {
        goals.push(goal(
            "`pulsectl watch` resident memory, busy gateway",
            "< 20 MB",
            if p.skipped.is_some() {
                "not measured".into()
            } else {
                format!(
                    "peak {} MiB (idle {} MiB)",
                    fmt_num(p.hwm_mib),
                    fmt_num(p.idle_mib)
                )
            },
            p.skipped.is_none().then_some(p.hwm_mib * 1.048_576 < 20.0),
        ));
    }
    let _ = writeln!(md, "## Summary\n");
    let _ = writeln!(
        md,
        "| Figure | Target | Measured | Met? |\n|---|---|---|---|"
    );
    for g in &goals {
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} |",
            g.figure, g.target, g.measured, g.met
        );
    }
    let _ = writeln!(
        md,
        "\nMB in the targets is taken as 10⁶ bytes; the tables give MiB (2²⁰ bytes), as `/proc` counts.\n"
    );

    // ---------------------------------------------------------------- 1 ingest
    let _ = writeln!(md, "## 1. Core ingest\n");
    match &r.ingest {
        None => {
            let _ = writeln!(md, "Not measured in this run.\n");
        }
        Some(ing) => {
            let _ = writeln!(
                md,
                "**What**: events a client takes from a WebSocket, decodes, applies to its cache and \
                 hands on, per second. **How**: the measured client is its own process pinned to one \
                 core (CPU 1, `sched_setaffinity`) with a single-threaded runtime; its server is pinned \
                 to the other core and streams pre-encoded frames (the native frame server, and the Node \
                 Socket.IO server writing exactly the bytes `socket.emit` would, 256 frames per write) so \
                 that the client, not the server, sets the pace. Wall time runs from before the connection opens to the last event \
                 processed; CPU time is the client process's own (`getrusage`). {} \
                 \"Persisted\" rows go through the session actor: decode, `changes_for` / profile mapping, \
                 one SQLite transaction per batch (entities + cursor, WAL, `synchronous=NORMAL`), then \
                 the broadcast a subscriber (standing in for the UI) receives. socket.io-client only \
                 counts events in its listener (nothing stored), so it does strictly less work than \
                 the Pulse session.\n",
                if ing.repeats == 1 {
                    "One run per row.".to_string()
                } else {
                    format!("Median of {} runs per row (the clients take turns).", ing.repeats)
                }
            );
            for (size, bytes) in &ing.frame_bytes {
                let _ = writeln!(
                    md,
                    "- {} events: native frames of {} bytes on average",
                    size.as_str(),
                    fmt_num(*bytes)
                );
            }
            let _ = writeln!(
                md,
                "\n| Client ← source | Payload | Persisted | Events | Events/s (wall) | Events per CPU-second | Peak RSS |\n|---|---|---|---|---|---|---|"
            );
            for row in &ing.rows {
                match &row.skipped {
                    Some(why) => {
                        let _ = writeln!(
                            md,
                            "| {} | {} | {} | – | not measured: {why} | – | – |",
                            row.client,
                            row.size.as_str(),
                            if row.persisted { "yes" } else { "no" }
                        );
                    }
                    None => {
                        let _ = writeln!(
                            md,
                            "| {} | {} | {} | {} | {} | {} | {} MiB |",
                            row.client,
                            row.size.as_str(),
                            if row.persisted { "yes" } else { "no" },
                            fmt_num(row.events as f64),
                            fmt_num(row.events_per_s),
                            fmt_num(row.events_per_cpu_s),
                            fmt_num(row.rss_peak_mib)
                        );
                    }
                }
            }
            let clients: Vec<String> = {
                let mut v: Vec<String> = Vec::new();
                for row in &ing.rows {
                    if !v.contains(&row.client) {
                        v.push(row.client.clone());
                    }
                }
                v
            };
            let series = [Size::Small, Size::Large]
                .iter()
                .map(|size| Series {
                    name: format!("{} events", size.as_str()),
                    values: clients
                        .iter()
                        .map(|c| find(ing, c, *size).map(|r| r.events_per_s))
                        .collect(),
                })
                .collect();
            let svg = BarChart {
                title: "Core ingest: events per second, client on one core".into(),
                unit: "events/s".into(),
                groups: clients.clone(),
                series,
                target: Some((100_000.0, "target 100,000/s".into())),
                log: true,
            }
            .render();
            let _ = writeln!(md, "\n{}", chart("ingest", svg, "Ingest events per second"));
            if let (Some(n), Some(s), Some(raw)) = (
                find(ing, ingest::SIO_NODE, Size::Small),
                find(ing, ingest::SIO_SESSION, Size::Small),
                find(ing, ingest::SIO_RAW, Size::Small),
            ) {
                let _ = writeln!(
                    md,
                    "Same Socket.IO server, small events: Pulse's session (persisting) takes **×{:.2}** the \
                     rate of socket.io-client (receiving only), and Pulse's socketio transport alone \
                     **×{:.2}**; per CPU-second, ×{:.2} and ×{:.2}.\n",
                    s.events_per_s / n.events_per_s,
                    raw.events_per_s / n.events_per_s,
                    s.events_per_cpu_s / n.events_per_cpu_s,
                    raw.events_per_cpu_s / n.events_per_cpu_s
                );
            }
        }
    }

    // ---------------------------------------------------------------- 2 latency
    let _ = writeln!(md, "## 2. Latency: gateway ingest → client cache\n");
    match &r.latency {
        None => {
            let _ = writeln!(md, "Not measured in this run.\n");
        }
        Some(lat) => {
            let _ = writeln!(
                md,
                "**What**: time from a publisher sending `POST /v1/ingest` to the change committed in a \
                 client's SQLite cache. **How**: three processes — gateway, client (session into a \
                 SQLite cache) and publisher — on loopback, not pinned. Each event carries `sent_ns` \
                 from `CLOCK_MONOTONIC` (one clock for all processes) read just before its request is \
                 sent; the client reads the clock when the session broadcasts the committed change and \
                 records the difference in an HDR histogram (1 µs – 10 min, 3 significant digits). The \
                 publisher sends, every millisecond, the events that are due (about 10 per request at \
                 10,000/s). Includes HTTP, JWT check, validation, the gateway's commit, fan-out, \
                 WebSocket, decode and the client's transaction. Run twice: the gateway on its SQLite \
                 store (durable: what a deployment runs, and what the summary uses), then on its memory \
                 store, to show what the gateway's commit costs.\n"
            );
            let _ = writeln!(
                md,
                "| Gateway store | Rate (target) | Achieved | Seconds | Requests | Samples | p50 | p90 | p99 | p99.9 | max | CPU: gateway / client / publisher |\n|---|---|---|---|---|---|---|---|---|---|---|---|"
            );
            for run in &lat.runs {
                for p in &run.phases {
                    let l = &p.latency;
                    let _ = writeln!(
                        md,
                        "| {} | {}/s | {}/s | {} | {} | {} | {} ms | {} ms | {} ms | {} ms | {} ms | {:.2} / {:.2} / {:.2} cores |",
                        run.store,
                        fmt_num(p.rate as f64),
                        fmt_num(p.achieved),
                        fmt_num(p.seconds),
                        fmt_num(p.requests as f64),
                        fmt_num(l.samples as f64),
                        fmt_num(l.p50_ms),
                        fmt_num(l.p90_ms),
                        fmt_num(l.p99_ms),
                        fmt_num(l.p999_ms),
                        fmt_num(l.max_ms),
                        p.cores[0],
                        p.cores[1],
                        p.cores[2]
                    );
                }
            }
            let groups = lat
                .runs
                .first()
                .map(|r| {
                    r.phases
                        .iter()
                        .map(|p| format!("{} events/s", fmt_num(p.rate as f64)))
                        .collect()
                })
                .unwrap_or_default();
            let mut series = Vec::new();
            for run in &lat.runs {
                let short = if run.store == crate::latency::MEMORY {
                    "memory store"
                } else {
                    "SQLite store"
                };
                for (label, f) in [
                    (
                        "p50",
                        (|s: &crate::stats::Summary| s.p50_ms) as fn(&crate::stats::Summary) -> f64,
                    ),
                    ("p99", |s: &crate::stats::Summary| s.p99_ms),
                ] {
                    series.push(Series {
                        name: format!("{short} {label}"),
                        values: run.phases.iter().map(|p| Some(f(&p.latency))).collect(),
                    });
                }
            }
            let svg = BarChart {
                title: "Latency, gateway ingest → committed in the client's cache".into(),
                unit: "milliseconds".into(),
                groups,
                series,
                target: Some((5.0, "p99 target 5 ms".into())),
                log: true,
            }
            .render();
            let _ = writeln!(md, "\n{}", chart("latency", svg, "Latency percentiles"));
        }
    }

    // ---------------------------------------------------------------- 3 fan-out
    let _ = writeln!(md, "## 3. Fan-out\n");
    match &r.fanout {
        None => {
            let _ = writeln!(md, "Not measured in this run.\n");
        }
        Some(f) => {
            let _ = writeln!(
                md,
                "**What**: one server, many concurrent WebSocket clients (100 per tenant), each tenant \
                 sent events at a steady rate; delivery latency over every delivery (publisher's request \
                 sent → client decoded the frame) and the server's CPU and memory. **How**: the server \
                 is a child process (Pulse gateway: memory store, JWT per connection; Node: a stock \
                 Socket.IO 4 server with one room per tenant, no auth, no log); CPU time and `VmRSS` \
                 come from `/proc/PID`. The clients run in the harness process (multi-threaded runtime, \
                 lean protocol clients that decode every frame as JSON), spread over source addresses \
                 127.0.0.2–127.0.0.9, with `RLIMIT_NOFILE` raised in-process. On 2 cores the load \
                 generator and the server share the CPUs, so server CPU is the server's own share of a \
                 busy machine.\n"
            );
            let _ = writeln!(
                md,
                "| Server | Clients | Tenants | Events/s per tenant | Deliveries | Connect all | p50 | p99 | max | Server CPU (cores) | Server RSS idle → peak | Per connection |\n|---|---|---|---|---|---|---|---|---|---|---|---|"
            );
            for c in &f.cases {
                if let Some(why) = &c.skipped {
                    let _ = writeln!(
                        md,
                        "| {} | {} | – | – | not measured: {why} | – | – | – | – | – | – | – |",
                        c.server,
                        fmt_num(c.clients as f64)
                    );
                    continue;
                }
                let _ = writeln!(
                    md,
                    "| {} | {} | {} | {} | {} of {} | {} s | {} ms | {} ms | {} ms | {:.2} | {} → {} MiB | {} KiB |",
                    c.server,
                    fmt_num(c.clients as f64),
                    c.tenants,
                    fmt_num(c.rate_per_tenant),
                    fmt_num(c.delivered as f64),
                    fmt_num(c.expected as f64),
                    fmt_num(c.connect_s),
                    fmt_num(c.latency.p50_ms),
                    fmt_num(c.latency.p99_ms),
                    fmt_num(c.latency.max_ms),
                    c.server_usage.cores,
                    fmt_num(c.server_idle_mib),
                    fmt_num(c.server_usage.rss_peak_mib),
                    fmt_num(
                        (c.server_usage.rss_peak_mib - c.server_idle_mib) * 1024.0
                            / c.clients.max(1) as f64
                    )
                );
            }
            let mut counts: Vec<usize> = f.cases.iter().map(|c| c.clients).collect();
            counts.dedup();
            let servers = [crate::fanout::PULSE, crate::fanout::NODE];
            let groups: Vec<String> = counts
                .iter()
                .map(|n| format!("{} clients", fmt_num(*n as f64)))
                .collect();
            let val = |srv: &str, n: usize, f2: &dyn Fn(&crate::fanout::Case) -> f64| {
                f.cases
                    .iter()
                    .find(|c| c.server == srv && c.clients == n && c.skipped.is_none())
                    .map(f2)
            };
            let series = |f2: &dyn Fn(&crate::fanout::Case) -> f64| -> Vec<Series> {
                servers
                    .iter()
                    .map(|s| Series {
                        name: (*s).into(),
                        values: counts.iter().map(|n| val(s, *n, f2)).collect(),
                    })
                    .collect()
            };
            let svg = BarChart {
                title: "Fan-out delivery latency, p99".into(),
                unit: "milliseconds".into(),
                groups: groups.clone(),
                series: series(&|c| c.latency.p99_ms),
                target: Some((50.0, "target 50 ms".into())),
                log: false,
            }
            .render();
            let _ = writeln!(md, "\n{}", chart("fanout-p99", svg, "Fan-out p99"));
            let svg = BarChart {
                title: "Fan-out: server CPU while publishing (cores) ".into(),
                unit: "cores (1.0 = one core busy)".into(),
                groups: groups.clone(),
                series: series(&|c| c.server_usage.cores),
                target: None,
                log: false,
            }
            .render();
            let _ = writeln!(md, "{}", chart("fanout-cpu", svg, "Fan-out server CPU"));
            let svg = BarChart {
                title: "Fan-out: server resident memory, peak".into(),
                unit: "MiB".into(),
                groups,
                series: series(&|c| c.server_usage.rss_peak_mib),
                target: None,
                log: false,
            }
            .render();
            let _ = writeln!(md, "{}", chart("fanout-rss", svg, "Fan-out server memory"));
        }
    }

    // ---------------------------------------------------------------- 4 resync
    let _ = writeln!(md, "## 4. Resync after a gateway restart\n");
    match &r.resync {
        None => {
            let _ = writeln!(md, "Not measured in this run.\n");
        }
        Some(rs) => {
            let _ = writeln!(
                md,
                "**What**: a client holds {} tickets and is live; the gateway (SQLite store) stops; M \
                 ticket updates are committed to its store while it is down; it starts again. Measured \
                 from the restarted gateway listening to the client's cache holding the new head, state \
                 Live. **replay**: the gateway retains every event, so the client's cursor is answered \
                 `recovered: true` and the M events are replayed. **snapshot**: the gateway retains only \
                 1,000 events, so the cursor is too old (`truncated`) and the client loads \
                 `GET /v1/snapshot` and swaps it into its cache in one transaction. The client (session, \
                 SQLite cache, in the harness process) reconnects the moment it is told to (`retry_now`, \
                 as on a network change), so the figure is the resync, not the backoff delay.\n",
                fmt_num(rs.base_entities as f64)
            );
            let _ = writeln!(
                md,
                "| Gateway keeps | Missed events | Client did | Caught up after | Gateway restart (not included) | Entities in cache |\n|---|---|---|---|---|---|"
            );
            for c in &rs.cases {
                let _ = writeln!(
                    md,
                    "| {} | {} | {} | {} ms | {} ms | {} |",
                    if c.mode == "replay" {
                        "every event"
                    } else {
                        "newest 1,000"
                    },
                    fmt_num(c.missed as f64),
                    c.path,
                    fmt_num(c.caught_up_ms),
                    fmt_num(c.restart_ms),
                    fmt_num(c.entities as f64)
                );
            }
            let mut missed: Vec<u64> = rs.cases.iter().map(|c| c.missed).collect();
            missed.sort_unstable();
            missed.dedup();
            let series = ["replay", "snapshot"]
                .iter()
                .map(|mode| Series {
                    name: if *mode == "replay" {
                        "gateway keeps every event (replay)".into()
                    } else {
                        "gateway keeps 1,000 (snapshot)".into()
                    },
                    values: missed
                        .iter()
                        .map(|m| {
                            rs.cases
                                .iter()
                                .find(|c| c.mode == *mode && c.missed == *m)
                                .map(|c| c.caught_up_ms)
                        })
                        .collect(),
                })
                .collect();
            let svg = BarChart {
                title: "Resync: restarted gateway listening → client caught up".into(),
                unit: "milliseconds".into(),
                groups: missed
                    .iter()
                    .map(|m| format!("{} missed events", fmt_num(*m as f64)))
                    .collect(),
                series,
                target: None,
                log: false,
            }
            .render();
            let _ = writeln!(md, "\n{}", chart("resync", svg, "Resync time"));
        }
    }

    // ---------------------------------------------------------------- 5 requests
    let _ = writeln!(
        md,
        "## 5. Requests and bytes: a dashboard open for 15 minutes\n"
    );
    match &r.requests {
        None => {
            let _ = writeln!(md, "Not measured in this run.\n");
        }
        Some(q) => {
            let _ = writeln!(
                md,
                "**What**: what a dashboard costs the server while it is simply left open. **How**: the \
                 gateway's demo simulator (a busy platform: agents, tickets, approvals, escalations) runs \
                 {:.0}× faster and every interval (polls, the gateway's pings) is divided by {:.0}, so \
                 {:.0} seconds stand for 15 minutes; it produced {} events in that window. Each client talks \
                 through its own byte-counting TCP proxy, which counts HTTP requests (a WebSocket \
                 upgrade is one) and payload bytes both ways. Pulse: a session on the native protocol. \
                 Seed 000 (agent monitor): every 5 s `GET /api/agents` + `GET /api/agents/stats`. Seed \
                 001 (stats badges): every 30 s three `…/stats` calls. The polled endpoints are a shim \
                 shaped like the seeds' backends over the same live data; pollers keep the connection \
                 alive and send a bearer token, as a browser would.\n",
                q.speed,
                q.speed,
                q.simulated_minutes * 60.0 / q.speed,
                fmt_num(q.events as f64)
            );
            let _ = writeln!(
                md,
                "| Client | Requests / 15 min | After the first minute | Connections | Bytes down | Bytes up |\n|---|---|---|---|---|---|"
            );
            for c in &q.clients {
                let _ = writeln!(
                    md,
                    "| {} | {} | {} | {} | {} | {} |",
                    c.client,
                    c.requests,
                    c.requests_after_first_minute,
                    c.connections,
                    mib(c.bytes_down),
                    mib(c.bytes_up)
                );
            }
            let pulse = q.clients.iter().find(|c| c.client == requests::PULSE);
            if let Some(p) = pulse {
                let _ = writeln!(md);
                for s in q.clients.iter().filter(|c| c.client != requests::PULSE) {
                    let _ = writeln!(
                        md,
                        "- {}: {}× the requests of Pulse; {:.2}× its bytes down. Polling still shows data up to \
                         one interval old; Pulse's arrive as they happen.",
                        s.client,
                        fmt_num(s.requests as f64 / p.requests.max(1) as f64),
                        s.bytes_down as f64 / p.bytes_down.max(1) as f64
                    );
                }
                let _ = writeln!(
                    md,
                    "\nPulse's bytes grow with what happens (every event is pushed, with its full payload); \
                     the pollers' with time. The simulator here is busy ({} events in 15 minutes).\n",
                    fmt_num(q.events as f64)
                );
            }
            let rows: Vec<(String, Option<f64>)> = q
                .clients
                .iter()
                .map(|c| (c.client.clone(), Some(c.requests as f64)))
                .collect();
            let svg = BarChart::simple(
                "Requests per 15 minutes, counted at the server",
                "requests",
                &rows,
            )
            .render();
            let _ = writeln!(md, "{}", chart("requests", svg, "Requests per 15 minutes"));
            let rows: Vec<(String, Option<f64>)> = q
                .clients
                .iter()
                .map(|c| {
                    (
                        c.client.clone(),
                        Some((c.bytes_down + c.bytes_up) as f64 / 1024.0),
                    )
                })
                .collect();
            let svg = BarChart::simple(
                "Bytes per 15 minutes (both ways), counted at the server",
                "KiB",
                &rows,
            )
            .render();
            let _ = writeln!(md, "{}", chart("bytes", svg, "Bytes per 15 minutes"));
        }
    }

    // ---------------------------------------------------------------- 6 desktop
    let _ = writeln!(md, "## 6. Desktop app\n");
    match &r.desktop {
        None => {
            let _ = writeln!(md, "Not measured in this run.\n");
        }
        Some(d) => {
            let _ = writeln!(
                md,
                "**What**: the desktop app (`pulse`, release build, UI embedded) following a gateway \
                 that holds 10,000 entities (tickets, agents, approvals, conversations, notifications). \
                 **How**: the app runs under Xvfb and is driven over WebDriver (`tauri-driver` → \
                 WebKitWebDriver, spoken over HTTP by the harness); it is pointed at the gateway with \
                 `PULSE_SERVER` / `PULSE_TOKEN` and its own data directory. A first launch fills the \
                 cache and quits. **Cold start**: a new app process is launched (`POST /session`) and a \
                 script in the page waits for `[data-testid=content]` to be marked loaded from the cache \
                 and for the next animation frame, the one that paints it; cold start = that frame's \
                 time − the app process's start time from `/proc` (OS file cache warm, as on a \
                 desktop). **Memory**: the app is a `pulse` process plus WebKit's web and network \
                 processes; PSS (`/proc/PID/smaps_rollup`) shares the pages they have in common out \
                 between them, so the PSS sum is the honest total (the RSS sum counts shared pages \
                 more than once). Idle = 5 s after the start; busy = highest sample while the gateway \
                 is published 1,000 events/s. **Event → DOM**: 20 of those 1,000 events each second \
                 update a `bench` stats block the overview page shows; a `MutationObserver` records \
                 when each value reaches the DOM; the latency runs from the publisher's ingest request \
                 (so it includes the gateway, the client core, the core's 16 ms update pump, IPC and the \
                 UI's once-per-frame coalescing).\n"
            );
            let _ = writeln!(
                md,
                "| Figure | Target | Value | How measured / why not |\n|---|---|---|---|"
            );
            for (name, target, f, unit) in [
                (
                    "Cold start → first paint, 10,000 cached entities",
                    "< 400 ms",
                    &d.cold_start_ms,
                    "ms",
                ),
                ("Resident memory, idle", "< 150 MB", &d.idle_rss_mib, "MiB"),
                (
                    "Resident memory, 1,000 events/s",
                    "< 150 MB",
                    &d.busy_rss_mib,
                    "MiB",
                ),
                ("Event → DOM, p50, 1,000 events/s", "–", &d.dom_p50_ms, "ms"),
                (
                    "Event → DOM, p99, 1,000 events/s",
                    "≤ 16.7 ms (one frame)",
                    &d.dom_p99_ms,
                    "ms",
                ),
            ] {
                let _ = writeln!(
                    md,
                    "| {name} | {target} | {} | {} |",
                    figure_text(f, unit),
                    f.note.replace('|', "\\|")
                );
            }
            let _ = writeln!(md);
            if !d.timeline.is_empty() {
                let svg = LineChart {
                    title: "Desktop app: memory of its processes (PSS), idle then 1,000 events/s"
                        .into(),
                    x_label: "seconds since the last cold start".into(),
                    y_label: "MiB".into(),
                    series: vec![("PSS, pulse + WebKit processes".into(), d.timeline.clone())],
                    target: Some((150.0 / 1.048_576, "target 150 MB".into())),
                }
                .render();
                let _ = writeln!(md, "{}", chart("desktop-memory", svg, "Desktop memory"));
            }
            if !d.cold_starts.is_empty() {
                let rows: Vec<(String, Option<f64>)> = d
                    .cold_starts
                    .iter()
                    .enumerate()
                    .map(|(i, v)| (format!("launch {}", i + 1), Some(*v)))
                    .collect();
                let mut c = BarChart::simple(
                    "Desktop cold start → first frame with the cached entities",
                    "milliseconds",
                    &rows,
                );
                c.target = Some((400.0, "target 400 ms".into()));
                let _ = writeln!(
                    md,
                    "{}",
                    chart("desktop-cold-start", c.render(), "Desktop cold start")
                );
            }
        }
    }

    // ---------------------------------------------------------------- 7 pulsectl
    let _ = writeln!(md, "## 7. `pulsectl` memory\n");
    match &r.pulsectl {
        None => {
            let _ = writeln!(md, "Not measured in this run.\n");
        }
        Some(p) => match &p.skipped {
            Some(why) => {
                let _ = writeln!(md, "Not measured in this run: {why}.\n");
            }
            None => {
                let _ = writeln!(
                    md,
                    "**What**: resident memory of `pulsectl watch` (release binary) following a busy \
                     gateway. **How**: the gateway holds {} tickets; `pulsectl` starts with an empty \
                     cache, loads the snapshot, then the gateway is published {} events/s for {} s, each \
                     applied to its SQLite cache and printed as a JSON line (read and counted by the \
                     harness: {} of {}). `VmRSS` sampled from `/proc` every 100 ms; peak = the kernel's \
                     `VmHWM` over the whole run.\n",
                    fmt_num(p.entities as f64),
                    fmt_num(p.rate as f64),
                    fmt_num(p.seconds),
                    fmt_num(p.lines as f64),
                    fmt_num(p.published as f64)
                );
                let _ = writeln!(
                    md,
                    "| Empty stream (fixed cost) | After the snapshot (idle) | Busy, highest sample | Peak (VmHWM) | Target |\n|---|---|---|---|---|\n| {} MiB | {} MiB | {} MiB | {} MiB | < 20 MB (19.1 MiB) |",
                    fmt_num(p.empty_mib),
                    fmt_num(p.idle_mib),
                    fmt_num(p.busy_peak_mib),
                    fmt_num(p.hwm_mib)
                );
                let svg = LineChart {
                    title: "pulsectl watch: resident memory".into(),
                    x_label: "seconds since start (snapshot load, idle, then 1,000 events/s)"
                        .into(),
                    y_label: "MiB".into(),
                    series: vec![("VmRSS".into(), p.timeline.clone())],
                    target: Some((20.0 / 1.048_576, "target 20 MB".into())),
                }
                .render();
                let _ = writeln!(md, "\n{}", chart("pulsectl-rss", svg, "pulsectl memory"));
            }
        },
    }

    // ---------------------------------------------------------------- micro
    let _ = writeln!(md, "## Micro-benchmarks (criterion)\n");
    if micro.is_empty() {
        let _ = writeln!(md, "Not run in this run.\n");
    } else {
        let _ = writeln!(
            md,
            "Hot paths in isolation, `cargo bench -p pulse-protocol --bench protocol` and \
             `cargo bench -p pulse-core --bench core` (criterion, median of its samples, same machine \
             and run).\n"
        );
        let _ = writeln!(
            md,
            "| Benchmark | Median time | Throughput |\n|---|---|---|"
        );
        for m in micro {
            let tp = match (m.elements, m.bytes) {
                (Some(e), _) => format!("{} elements/s", fmt_num(e as f64 / m.median_ns * 1e9)),
                (_, Some(b)) => format!("{}/s", mib((b as f64 / m.median_ns * 1e9) as u64)),
                _ => "–".into(),
            };
            let _ = writeln!(md, "| `{}` | {} | {} |", m.id, time_ns(m.median_ns), tp);
        }
        let _ = writeln!(md);
    }

    // ---------------------------------------------------------------- how
    let _ = writeln!(
        md,
        "## How to run\n\n\
         ```sh\n\
         ./scripts/bench.sh            # full run (≈ 20 minutes on 2 cores), rewrites this file and docs/benchmarks/*.svg\n\
         ./scripts/bench.sh --quick    # smaller sizes, a few minutes\n\
         benches/smoke.sh              # tiny sizes, writes to a temp dir (part of ./scripts/test.sh)\n\
         ```\n\n\
         The harness is `crates/pulse-bench` (`pulse-bench run --mode full --out DIR`, then \
         `pulse-bench report`); the Node peers are in `benches/peers` (`npm ci`). `bench.sh` builds the \
         UI and the release desktop app when the desktop toolchain is installable (`PULSE_BENCH_APP=PATH` \
         uses a given binary instead); without it, the desktop figures are reported as not measured. \
         The analysis above is `benches/analysis.md`, written by hand for the run it names. Each section \
         says what it measures; the module docs of `crates/pulse-bench/src/*.rs` say the same next to \
         the code.\n"
    );
    md
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_an_empty_run() {
        let mut charts = Vec::new();
        let md = render(&Results::default(), &[], "benchmarks", &mut charts);
        assert!(md.starts_with("# Pulse benchmarks"));
        assert!(md.contains("## Summary"));
        assert!(charts.is_empty());
    }
}
