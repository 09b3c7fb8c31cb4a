//! The summary table at the head of the report: one row per target of the
//! project (figure, target, measured, met?).
//!
//! Invariants: a row whose figure was not measured says so ("not measured")
//! instead of passing or failing; every "measured" cell comes from this run's
//! results only.

use std::fmt::Write as _;

use super::{figure_text, find, Results};
use crate::desktop::{BUSY_RATE, HEADLINE_ENTITIES};
use crate::ingest;
use crate::requests;
use crate::svg::fmt_num;
use crate::workload::Size;

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

/// The header's summary table: each target, what was measured, whether it was met.
pub(super) fn summary(md: &mut String, r: &Results) {
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
    if let Some(c) = &r.cluster {
        if let Some(l) = c
            .limits
            .iter()
            .find(|l| l.server.starts_with("Pulse") && l.skipped.is_none())
        {
            goals.push(goal(
                &format!(
                    "Idle WebSocket on a cluster node (Redis store), {} held",
                    fmt_num(l.held as f64)
                ),
                "≤ 16 KiB each",
                format!(
                    "{} KiB each ({} MiB in all)",
                    fmt_num(l.memory.per_conn_kib()),
                    fmt_num(l.memory.connected_mib)
                ),
                Some(l.memory.per_conn_kib() <= 16.0),
            ));
        }
        if let Some(p) = c
            .pairs
            .iter()
            .find(|p| p.server == crate::cluster::PULSE && p.skipped.is_none())
        {
            goals.push(goal(
                &format!(
                    "Cluster: clients of a SIGKILLed node ({} of {}) back on {}",
                    fmt_num(p.herd.moved as f64),
                    fmt_num(p.clients as f64),
                    if p.herd.standby.is_some() {
                        "a standby node (§8)"
                    } else {
                        "the other"
                    }
                ),
                "all, resuming from their cursors",
                format!(
                    "{} back in {} s (peak {} reconnects/s)",
                    fmt_num(p.herd.back as f64),
                    fmt_num(p.herd.all_back_s),
                    fmt_num(p.herd.peak_per_s)
                ),
                Some(p.herd.back == p.herd.moved),
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
        // From the curves' headline point (10,000 entities, 1,000 events/s).
        let n = fmt_num(if d.headline_entities > 0 {
            d.headline_entities
        } else {
            HEADLINE_ENTITIES
        } as f64);
        let rate = fmt_num(BUSY_RATE as f64);
        goals.push(goal(
            &format!("Desktop cold start to first paint, {n} cached entities"),
            "< 400 ms",
            figure_text(&d.cold_start_ms, "ms"),
            d.cold_start_ms.value.map(|v| v < 400.0),
        ));
        if let Some(p) = d.points.iter().find(|p| p.entities == 100_000) {
            goals.push(goal(
                "Desktop cold start to first paint, 100,000 cached entities",
                "≤ 500 ms",
                p.cold_start_ms
                    .map(|v| format!("{} ms", fmt_num(v)))
                    .unwrap_or_else(|| "not measured".into()),
                p.cold_start_ms.map(|v| v <= 500.0),
            ));
        }
        let rss = match (d.idle_rss_mib.value, d.busy_rss_mib.value) {
            (Some(i), Some(b)) => Some(i.max(b)),
            (a, b) => a.or(b),
        };
        goals.push(goal(
            &format!("Desktop resident memory, idle and at {rate} events/s"),
            "< 150 MB",
            format!(
                "idle {}, busy {}",
                figure_text(&d.idle_rss_mib, "MiB"),
                figure_text(&d.busy_rss_mib, "MiB")
            ),
            rss.map(|v| v * 1.048_576 < 150.0),
        ));
        if let Some(c) = d.chromium.as_ref().filter(|c| c.skipped.is_none()) {
            let mib = |v: Option<f64>| {
                v.map(|v| format!("{} MiB", fmt_num(v)))
                    .unwrap_or_else(|| "not measured".into())
            };
            goals.push(Goal {
                figure: format!(
                    "Desktop memory beside what a user would otherwise keep open: the same UI in \
                     Chromium (headless, {} entities, PSS of all its processes)",
                    fmt_num(c.entities as f64)
                ),
                target: "side by side (no target)".into(),
                measured: format!(
                    "Pulse idle {}, busy {}; Chromium idle {}, busy {}",
                    figure_text(&d.idle_rss_mib, "MiB"),
                    figure_text(&d.busy_rss_mib, "MiB"),
                    mib(c.idle_pss_mib),
                    mib(c.busy_pss_mib)
                ),
                met: "–".into(),
            });
        }
        goals.push(goal(
            &format!("Desktop event → DOM at {rate} events/s, p99"),
            "within one frame (16.7 ms)",
            figure_text(&d.dom_p99_ms, "ms"),
            d.dom_p99_ms.value.map(|v| v <= 16.7),
        ));
    }
    if let Some(p) = &r.pulsectl {
        goals.push(goal(
            "`pulsectl watch` resident memory after a 10,000-entity snapshot, busy gateway",
            &format!("≤ {} MiB", crate::pulsectl::TARGET_MIB),
            if p.skipped.is_some() {
                "not measured".into()
            } else {
                format!(
                    "peak {} MiB (idle {} MiB)",
                    fmt_num(p.hwm_mib),
                    fmt_num(p.idle_mib)
                )
            },
            p.skipped
                .is_none()
                .then_some(p.hwm_mib <= crate::pulsectl::TARGET_MIB),
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
}
