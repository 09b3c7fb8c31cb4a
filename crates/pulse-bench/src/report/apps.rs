//! Sections 6–7 of the report (the desktop app, `pulsectl`), then the
//! criterion micro-benchmarks and how to run it all.
//!
//! Invariants: a figure that was not measured is shown with why (its note), not
//! left out; the desktop memory figures are PSS sums (see `crate::desktop`).

use std::fmt::Write as _;

use super::{figure_text, mib, time_ns, Chart, Micro, Results};
use crate::desktop::{DesktopResult, RatePoint, BUSY_RATE, HEADLINE_ENTITIES};
use crate::svg::{fmt_num, BarChart, LineChart, Series};

fn opt(v: Option<f64>, unit: &str) -> String {
    v.map(|v| format!("{} {unit}", fmt_num(v)))
        .unwrap_or_else(|| "not measured".into())
}

/// Section 6, the desktop app.
pub(super) fn desktop(md: &mut String, r: &Results, chart: &mut Chart<'_>) {
    // ---------------------------------------------------------------- 6 desktop
    let _ = writeln!(md, "## 6. Desktop app\n");
    let Some(d) = &r.desktop else {
        let _ = writeln!(md, "Not measured in this run.\n");
        return;
    };
    let n = if d.headline_entities > 0 {
        d.headline_entities
    } else {
        HEADLINE_ENTITIES
    };
    let sizes = d
        .points
        .iter()
        .map(|p| fmt_num(p.entities as f64))
        .collect::<Vec<_>>()
        .join(" / ");
    let _ = writeln!(
        md,
        "**What**: the desktop app (`pulse`, release build, UI embedded) following a gateway \
         that holds tickets, agents, approvals, conversations and notifications, as curves from this \
         one run: against the number of cached entities ({}) and, at {} entities, against the event \
         rate; side by side, the same UI as a web page in Debian's Chromium. The targets' figures \
         are those of the {}-entity point at {} events/s. \
         **How**: the app runs under Xvfb and is driven over WebDriver (`tauri-driver` → \
         WebKitWebDriver, spoken over HTTP by the harness); it is pointed at the gateway with \
         `PULSE_SERVER` / `PULSE_TOKEN` and its own data directory. Per size, the gateway is topped \
         up with bulk ingest requests and a first launch with a fresh data directory fills the cache \
         and quits once the cache holds every entity. **Cold start**: a new app process is launched \
         (`POST /session`) and a script in the page waits for `[data-testid=content]` to be marked \
         loaded from the cache and for the next animation frame, the one that paints it; cold start \
         = that frame's time − the app process's start time from `/proc` (OS file cache warm, as on \
         a desktop). **Memory**: the app is a `pulse` process plus WebKit's web and network \
         processes; PSS (`/proc/PID/smaps_rollup`) shares the pages they have in common out between \
         them, so the PSS sum is the honest total (the RSS sum counts shared pages more than once). \
         Idle = 5 s after the last cold start; busy = highest sample while the gateway is published \
         {} events/s. **Event → DOM**: 20 events each second update a `bench` stats block the \
         overview page shows; a `MutationObserver` records when each value reaches the DOM; the \
         latency runs from the publisher's ingest request (so it includes the gateway, the client \
         core, the core's update pump, IPC and the UI's once-per-frame coalescing).\n",
        if sizes.is_empty() { fmt_num(n as f64) } else { sizes },
        fmt_num(n as f64),
        fmt_num(n as f64),
        fmt_num(BUSY_RATE as f64),
        fmt_num(BUSY_RATE as f64),
    );
    let _ = writeln!(
        md,
        "| Figure | Target | Value | How measured / why not |\n|---|---|---|---|"
    );
    let rate = fmt_num(BUSY_RATE as f64);
    for (name, target, f, unit) in [
        (
            format!(
                "Cold start → first paint, {} cached entities",
                fmt_num(n as f64)
            ),
            "< 400 ms",
            &d.cold_start_ms,
            "ms",
        ),
        (
            "Resident memory, idle".to_string(),
            "< 150 MB",
            &d.idle_rss_mib,
            "MiB",
        ),
        (
            format!("Resident memory, {rate} events/s"),
            "< 150 MB",
            &d.busy_rss_mib,
            "MiB",
        ),
        (
            format!("Event → DOM, p50, {rate} events/s"),
            "–",
            &d.dom_p50_ms,
            "ms",
        ),
        (
            format!("Event → DOM, p99, {rate} events/s"),
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
    desktop_by_size(md, d, chart);
    desktop_by_rate(md, d, chart);
    desktop_vs_chromium(md, d, chart);
    if !d.timeline.is_empty() {
        let svg = LineChart {
            title: format!(
                "Desktop app, {} entities: memory of its processes (PSS), idle then the loads",
                fmt_num(n as f64)
            ),
            // The loads ran 1,000 events/s first, then the other rates (ascending).
            x_label: format!(
                "seconds since the last cold start: idle 5 s, then {} events/s in turn",
                std::iter::once(BUSY_RATE)
                    .chain(
                        d.rates
                            .iter()
                            .filter(|r| r.entities == n && r.rate != BUSY_RATE)
                            .map(|r| r.rate)
                    )
                    .map(|r| fmt_num(r as f64))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
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
            &format!(
                "Desktop cold start → first frame with the {} cached entities",
                fmt_num(n as f64)
            ),
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

/// The cache-size curve: table and charts.
fn desktop_by_size(md: &mut String, d: &DesktopResult, chart: &mut Chart<'_>) {
    if d.points.is_empty() {
        return;
    }
    let rate = fmt_num(BUSY_RATE as f64);
    let _ = writeln!(
        md,
        "### Against the cache size\n\n\
         One gateway, topped up to each size in turn; per size a fresh data directory, a first launch \
         that fills the cache, then the cold starts, idle memory and {rate} events/s. Target from \
         issue 12: cold start not growing with the cache, ≤ 500 ms from 100,000 entities.\n"
    );
    let _ = writeln!(
        md,
        "| Cached entities | Gateway filled in | First launch (cache filled) | Cold start, median (each) | Memory idle (PSS) | Memory at {rate} events/s (PSS, peak) | Event → DOM p99 at {rate} events/s |\n|---|---|---|---|---|---|---|"
    );
    for p in &d.points {
        let dom = d
            .rates
            .iter()
            .find(|r| r.entities == p.entities && r.rate == BUSY_RATE)
            .and_then(|r| r.p99_ms);
        let each = p
            .cold_starts
            .iter()
            .map(|v| format!("{v:.0}"))
            .collect::<Vec<_>>()
            .join(", ");
        let _ = writeln!(
            md,
            "| {} | {:.1} s | {} | {}{} | {} | {} | {} |",
            fmt_num(p.entities as f64),
            p.gateway_fill_s,
            p.first_launch_s
                .map(|s| format!("{s:.1} s"))
                .unwrap_or_else(|| "–".into()),
            opt(p.cold_start_ms, "ms"),
            if each.is_empty() {
                String::new()
            } else {
                format!(" ({each})")
            },
            opt(p.idle.as_ref().map(|m| m.pss_mib), "MiB"),
            opt(p.busy.as_ref().map(|m| m.pss_mib), "MiB"),
            match &p.error {
                Some(e) => format!("{}; failed: {}", opt(dom, "ms"), e.replace('|', "\\|")),
                None => opt(dom, "ms"),
            }
        );
    }
    let _ = writeln!(md);
    let groups: Vec<String> = d
        .points
        .iter()
        .map(|p| format!("{} entities", fmt_num(p.entities as f64)))
        .collect();
    let cold = BarChart {
        title: "Desktop cold start → first paint, by cache size (median)".into(),
        unit: "milliseconds".into(),
        groups: groups.clone(),
        series: vec![Series {
            name: "cold start".into(),
            values: d.points.iter().map(|p| p.cold_start_ms).collect(),
        }],
        target: Some((400.0, "target 400 ms".into())),
        log: false,
    }
    .render();
    let _ = writeln!(
        md,
        "{}",
        chart(
            "desktop-cold-start-by-size",
            cold,
            "Desktop cold start by cache size"
        )
    );
    let mem = BarChart {
        title: "Desktop memory (PSS of all the app's processes), by cache size".into(),
        unit: "MiB".into(),
        groups,
        series: vec![
            Series {
                name: "idle".into(),
                values: d
                    .points
                    .iter()
                    .map(|p| p.idle.as_ref().map(|m| m.pss_mib))
                    .collect(),
            },
            Series {
                name: format!("{rate} events/s (peak)"),
                values: d
                    .points
                    .iter()
                    .map(|p| p.busy.as_ref().map(|m| m.pss_mib))
                    .collect(),
            },
        ],
        target: Some((150.0 / 1.048_576, "target 150 MB".into())),
        log: false,
    }
    .render();
    let _ = writeln!(
        md,
        "{}",
        chart(
            "desktop-memory-by-size",
            mem,
            "Desktop memory by cache size"
        )
    );
}

/// The event-rate curve: table and chart.
fn desktop_by_rate(md: &mut String, d: &DesktopResult, chart: &mut Chart<'_>) {
    let n = d.headline_entities;
    let at: Vec<&RatePoint> = d.rates.iter().filter(|r| r.entities == n).collect();
    if at.is_empty() {
        return;
    }
    let _ = writeln!(
        md,
        "### Against the event rate\n\n\
         {} cached entities, one session: {} events/s first (the busy memory figure), then the others, \
         {:.0} s each; 20 marker events a second at every rate. A marker the next one replaced before \
         the page applied it never reaches the DOM, so \"seen\" is below \"published\" when \
         updates queue up; such a marker counts in the latencies at the time the one that replaced \
         it was shown (it is in \"replaced\"), so coalescing does not hide the tail.\n",
        fmt_num(n as f64),
        fmt_num(BUSY_RATE as f64),
        at[0].secs
    );
    let _ = writeln!(
        md,
        "| Events/s | Event → DOM p50 | p99 | max | Markers seen of published (replaced) | Memory, peak (PSS) |\n|---|---|---|---|---|---|"
    );
    for r in &at {
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} of {} ({}) | {} |",
            fmt_num(r.rate as f64),
            opt(r.p50_ms, "ms"),
            opt(r.p99_ms, "ms"),
            opt(r.max_ms, "ms"),
            r.seen,
            r.sent,
            r.superseded,
            opt(r.peak_pss_mib, "MiB")
        );
    }
    let _ = writeln!(md);
    let svg = BarChart {
        title: format!(
            "Desktop event → DOM by event rate ({} cached entities)",
            fmt_num(n as f64)
        ),
        unit: "milliseconds".into(),
        groups: at
            .iter()
            .map(|r| format!("{} events/s", fmt_num(r.rate as f64)))
            .collect(),
        series: vec![
            Series {
                name: "p50".into(),
                values: at.iter().map(|r| r.p50_ms).collect(),
            },
            Series {
                name: "p99".into(),
                values: at.iter().map(|r| r.p99_ms).collect(),
            },
        ],
        target: Some((16.7, "one frame, 16.7 ms".into())),
        log: false,
    }
    .render();
    let _ = writeln!(
        md,
        "{}",
        chart("desktop-dom-by-rate", svg, "Desktop event to DOM by rate")
    );
}

/// The side by side with Chromium.
fn desktop_vs_chromium(md: &mut String, d: &DesktopResult, chart: &mut Chart<'_>) {
    let Some(c) = &d.chromium else {
        return;
    };
    let _ = writeln!(
        md,
        "### Side by side: the same UI in Chromium (what a user would otherwise keep open)\n"
    );
    if let Some(why) = &c.skipped {
        let _ = writeln!(md, "Not measured in this run: {why}.\n");
        return;
    }
    let rate = fmt_num(c.rate as f64);
    let _ = writeln!(
        md,
        "**How**: the built UI (`ui/dist`, the same files the app embeds) served by the harness on \
         127.0.0.1 and opened in {} as `?fake={}` (idle) and `?fake={}&rate={}` (busy), each in a \
         fresh Chromium with a fresh profile: the UI's in-browser fake backend then holds the same {} \
         entities as the app's cache and pushes {rate} events/s in 16 ms batches (agents' \
         heartbeats and 20 `bench` markers a second, as the gateway's load). The harness waits \
         (DevTools protocol) for the same `[data-testid=content]` loaded marker, then counts the PSS \
         of all of Chromium's processes (its process tree, and any process naming its profile \
         directory) exactly as the app's: idle 5 s after the load, busy the highest sample over {:.0} s. \
         Chromium runs headless (`--headless=new`: the full browser without a window; no display, \
         so its GPU process draws in software, as WebKit does under Xvfb) with background \
         networking, sync, component updates and extensions off, so the figure is one tab's \
         browser with nothing else open: a user's everyday Chromium with a window, extensions and \
         other tabs holds more.{} The Chromium figures have no network or core behind the page \
         (the fake stands in for both); the app's include its `pulse` process (network, SQLite \
         cache, the core).\n",
        if c.version.is_empty() { "Chromium".to_string() } else { format!("`{}`", c.version) },
        c.entities,
        c.entities,
        c.rate,
        fmt_num(c.entities as f64),
        c.busy_secs,
        if c.flags.iter().any(|f| f == "--no-sandbox") {
            " It ran as root, which Chromium refuses without `--no-sandbox`: the sandbox is off \
             (its zygote and sandbox helpers then do not run, a few MiB less than a user's)."
        } else {
            ""
        }
    );
    let _ = writeln!(
        md,
        "| {} entities | Idle (PSS) | {rate} events/s (PSS, peak) | Processes (idle), MiB PSS each |\n|---|---|---|---|",
        fmt_num(c.entities as f64)
    );
    let app_point = d.points.iter().find(|p| p.entities == c.entities);
    if let Some(p) = app_point {
        let _ = writeln!(
            md,
            "| Pulse desktop app | {} | {} | {} |",
            opt(p.idle.as_ref().map(|m| m.pss_mib), "MiB"),
            opt(p.busy.as_ref().map(|m| m.pss_mib), "MiB"),
            p.idle
                .as_ref()
                .map(|m| m.breakdown.clone())
                .unwrap_or_default()
        );
    }
    let _ = writeln!(
        md,
        "| Same UI in Chromium | {} | {} | {} |",
        opt(c.idle_pss_mib, "MiB"),
        opt(c.busy_pss_mib, "MiB"),
        c.idle_breakdown
    );
    let _ = writeln!(
        md,
        "\nChromium's RSS sums: idle {}, busy {}; from its start to the first frame with the entities: {}. Flags: `{}`.\n",
        opt(c.idle_rss_mib, "MiB"),
        opt(c.busy_rss_mib, "MiB"),
        opt(c.load_ms, "ms"),
        c.flags.join(" ")
    );
    let app_idle = app_point.and_then(|p| p.idle.as_ref().map(|m| m.pss_mib));
    let app_busy = app_point.and_then(|p| p.busy.as_ref().map(|m| m.pss_mib));
    let svg = BarChart {
        title: format!(
            "Desktop memory (PSS, all processes), {} entities: Pulse vs the same UI in Chromium",
            fmt_num(c.entities as f64)
        ),
        unit: "MiB".into(),
        groups: vec!["idle".into(), format!("{rate} events/s (peak)")],
        series: vec![
            Series {
                name: "Pulse desktop app".into(),
                values: vec![app_idle, app_busy],
            },
            Series {
                name: "same UI in Chromium".into(),
                values: vec![c.idle_pss_mib, c.busy_pss_mib],
            },
        ],
        target: Some((150.0 / 1.048_576, "target 150 MB".into())),
        log: false,
    }
    .render();
    let _ = writeln!(
        md,
        "{}",
        chart(
            "desktop-vs-chromium",
            svg,
            "Desktop memory, Pulse vs Chromium"
        )
    );
}

/// Section 7, `pulsectl` memory.
pub(super) fn pulsectl(md: &mut String, r: &Results, chart: &mut Chart<'_>) {
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
                    "| Empty stream (fixed cost) | After the snapshot (idle) | Busy, highest sample | Peak (VmHWM) | Target |\n|---|---|---|---|---|\n| {} MiB | {} MiB | {} MiB | {} MiB | ≤ {} MiB |",
                    fmt_num(p.empty_mib),
                    fmt_num(p.idle_mib),
                    fmt_num(p.busy_peak_mib),
                    fmt_num(p.hwm_mib),
                    fmt_num(crate::pulsectl::TARGET_MIB)
                );
                let svg = LineChart {
                    title: "pulsectl watch: resident memory".into(),
                    x_label: "seconds since start (snapshot load, idle, then 1,000 events/s)"
                        .into(),
                    y_label: "MiB".into(),
                    series: vec![("VmRSS".into(), p.timeline.clone())],
                    target: Some((
                        crate::pulsectl::TARGET_MIB,
                        format!("target {} MiB", crate::pulsectl::TARGET_MIB),
                    )),
                }
                .render();
                let _ = writeln!(md, "\n{}", chart("pulsectl-rss", svg, "pulsectl memory"));
            }
        },
    }
}

/// The criterion micro-benchmarks.
pub(super) fn micro(md: &mut String, micro: &[Micro]) {
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
}

/// How to run the benchmarks.
pub(super) fn how(md: &mut String) {
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
         Its side by side needs Debian's `chromium` (`bench.sh` installs it) and the built UI \
         (`pulse-bench run --ui ui/dist`). \
         The cluster benchmark (8) needs `redis-server`; `PULSE_BENCH_CLUSTER_CLIENTS` and \
         `PULSE_BENCH_CLUSTER_LIMIT` set its sizes (`./scripts/bench.sh --only cluster` runs it alone). \
         The analysis above is `benches/analysis.md`, written by hand for the run it names. Each section \
         says what it measures; the module docs of `crates/pulse-bench/src/*.rs` say the same next to \
         the code.\n"
    );
}

#[cfg(test)]
mod tests {
    use super::super::{render, Results};
    use crate::desktop::{
        ChromiumResult, DesktopResult, Figure, Memory, RatePoint, SizePoint, HEADLINE_ENTITIES,
    };

    fn mem(pss: f64) -> Option<Memory> {
        Some(Memory {
            pss_mib: pss,
            rss_mib: pss * 1.5,
            processes: 3,
            breakdown: format!("WebKitWebProcess {pss:.0}"),
        })
    }

    fn point(entities: u64, cold: f64, idle: f64, busy: f64) -> SizePoint {
        SizePoint {
            entities,
            gateway_fill_s: 0.5,
            first_launch_s: Some(3.0),
            cold_starts: vec![cold, cold + 10.0],
            cold_start_ms: Some(cold),
            idle: mem(idle),
            busy: mem(busy),
            busy_secs: 20.0,
            ..SizePoint::default()
        }
    }

    fn rate(entities: u64, rate: u64, p99: f64) -> RatePoint {
        RatePoint {
            entities,
            rate,
            secs: 20.0,
            sent: 400,
            seen: 398,
            superseded: 0,
            p50_ms: Some(p99 / 2.0),
            p99_ms: Some(p99),
            max_ms: Some(p99 * 2.0),
            peak_pss_mib: Some(300.0),
            stages: None,
        }
    }

    fn run() -> Results {
        let figure = |v: f64| Figure {
            value: Some(v),
            note: "from the 10,000 point".into(),
        };
        Results {
            desktop: Some(DesktopResult {
                cold_start_ms: figure(321.0),
                idle_rss_mib: figure(141.0),
                busy_rss_mib: figure(171.0),
                dom_p99_ms: figure(15.5),
                dom_p50_ms: figure(7.0),
                cold_starts: vec![321.0, 331.0],
                headline_entities: HEADLINE_ENTITIES,
                points: vec![
                    point(1_000, 250.0, 120.0, 130.0),
                    point(10_000, 321.0, 141.0, 171.0),
                    SizePoint {
                        error: Some("the cache holds 5 entities | wanted 100000".into()),
                        ..point(100_000, 480.0, 190.0, 230.0)
                    },
                ],
                rates: vec![
                    rate(10_000, 100, 9.0),
                    rate(10_000, 1_000, 15.5),
                    rate(10_000, 5_000, 33.0),
                    rate(1_000, 1_000, 12.0),
                ],
                chromium: Some(ChromiumResult {
                    version: "Chromium 156".into(),
                    entities: 10_000,
                    rate: 1_000,
                    busy_secs: 20.0,
                    idle_pss_mib: Some(402.0),
                    busy_pss_mib: Some(455.0),
                    idle_breakdown: "chromium ×5 300".into(),
                    flags: vec!["--headless=new".into(), "--no-sandbox".into()],
                    ..ChromiumResult::default()
                }),
                ..DesktopResult::default()
            }),
            ..Results::default()
        }
    }

    #[test]
    fn the_desktop_curves_and_the_side_by_side_are_tables_and_charts() {
        let mut charts = Vec::new();
        let md = render(&run(), &[], "benchmarks", &mut charts);
        let names: Vec<&str> = charts.iter().map(|(n, _)| n.as_str()).collect();
        for c in [
            "desktop-cold-start-by-size.svg",
            "desktop-memory-by-size.svg",
            "desktop-dom-by-rate.svg",
            "desktop-vs-chromium.svg",
            "desktop-cold-start.svg",
        ] {
            assert!(names.contains(&c), "no chart {c}: {names:?}");
            assert!(md.contains(&format!("(benchmarks/{c})")), "{c} not linked");
        }
        assert!(md.contains("### Against the cache size"));
        assert!(md.contains("| 100,000 | 0.5 s | 3.0 s | 480 ms (480, 490) | 190 MiB | 230 MiB |"));
        // A failed point says why, its `|` escaped so the table holds.
        assert!(md.contains("failed: the cache holds 5 entities \\| wanted 100000"));
        assert!(md.contains("### Against the event rate"));
        assert!(md.contains("| 5,000 | 16.5 ms | 33.0 ms | 66.0 ms | 398 of 400 (0) | 300 MiB |"));
        // The rate table is the headline size's only (the 1,000-entity 1,000/s is in the size table).
        assert!(!md.contains("| 1,000 | 6.00 ms |"));
        assert!(md.contains("### Side by side: the same UI in Chromium"));
        assert!(md.contains("| Pulse desktop app | 141 MiB | 171 MiB |"));
        assert!(md.contains("| Same UI in Chromium | 402 MiB | 455 MiB | chromium ×5 300 |"));
        assert!(md.contains("`--no-sandbox`"));
        let vs = &charts
            .iter()
            .find(|(n, _)| n == "desktop-vs-chromium.svg")
            .unwrap()
            .1;
        assert!(vs.contains("same UI in Chromium") && vs.contains("Pulse desktop app"));
    }

    #[test]
    fn the_summary_takes_the_desktop_targets_from_the_10000_entity_point() {
        let mut charts = Vec::new();
        let md = render(&run(), &[], "benchmarks", &mut charts);
        let summary = &md[..md.find("\n## 1. ").unwrap_or(md.len())];
        assert!(summary.contains(
            "| Desktop cold start to first paint, 10,000 cached entities | < 400 ms | 321 ms | **yes** |"
        ));
        assert!(summary.contains(
            "| Desktop cold start to first paint, 100,000 cached entities | ≤ 500 ms | 480 ms | **yes** |"
        ));
        assert!(summary.contains("| idle 141 MiB, busy 171 MiB | **no** |"));
        assert!(summary.contains("Chromium idle 402 MiB, busy 455 MiB | –"));
        assert!(summary.contains(
            "| Desktop event → DOM at 1,000 events/s, p99 | within one frame (16.7 ms) | 15.5 ms | **yes** |"
        ));
    }

    #[test]
    fn a_chromium_that_could_not_run_says_why() {
        let mut r = run();
        r.desktop.as_mut().unwrap().chromium = Some(ChromiumResult {
            skipped: Some("`chromium` is not installed (Debian: apt-get install chromium)".into()),
            ..ChromiumResult::default()
        });
        let mut charts = Vec::new();
        let md = render(&r, &[], "benchmarks", &mut charts);
        assert!(md.contains("Not measured in this run: `chromium` is not installed"));
        assert!(!charts.iter().any(|(n, _)| n == "desktop-vs-chromium.svg"));
        assert!(!md
            .contains("what a user would otherwise keep open: the same UI in Chromium (headless"));
    }
}
