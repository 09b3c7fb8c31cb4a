//! Sections 6–7 of the report (the desktop app, `pulsectl`), then the
//! criterion micro-benchmarks and how to run it all.
//!
//! Invariants: a figure that was not measured is shown with why (its note), not
//! left out; the desktop memory figures are PSS sums (see `crate::desktop`).

use std::fmt::Write as _;

use super::{figure_text, mib, time_ns, Chart, Micro, Results};
use crate::svg::{fmt_num, BarChart, LineChart};

/// Section 6, the desktop app.
pub(super) fn desktop(md: &mut String, r: &Results, chart: &mut Chart<'_>) {
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
         The cluster benchmark (8) needs `redis-server`; `PULSE_BENCH_CLUSTER_CLIENTS` and \
         `PULSE_BENCH_CLUSTER_LIMIT` set its sizes (`./scripts/bench.sh --only cluster` runs it alone). \
         The analysis above is `benches/analysis.md`, written by hand for the run it names. Each section \
         says what it measures; the module docs of `crates/pulse-bench/src/*.rs` say the same next to \
         the code.\n"
    );
}
