//! Sections 1–5 of the report: core ingest, latency gateway → client cache,
//! fan-out, resync after a gateway restart, and the requests and bytes of a
//! dashboard left open.
//!
//! Invariants: each section first says what it measures and how, then gives the
//! table and its charts; comparisons are ratios of rows of the same run; a
//! benchmark that did not run gives "Not measured in this run." and no chart.

use std::fmt::Write as _;

use super::{find, mib, Chart, Results};
use crate::ingest;
use crate::requests;
use crate::svg::{fmt_num, BarChart, Series};
use crate::workload::Size;

/// Section 1, core ingest.
pub(super) fn ingest(md: &mut String, r: &Results, chart: &mut Chart<'_>) {
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
}

/// Section 2, latency from gateway ingest to the client's cache.
pub(super) fn latency(md: &mut String, r: &Results, chart: &mut Chart<'_>) {
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
}

/// Section 3, fan-out.
pub(super) fn fanout(md: &mut String, r: &Results, chart: &mut Chart<'_>) {
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
}

/// Section 4, resync after a gateway restart.
pub(super) fn resync(md: &mut String, r: &Results, chart: &mut Chart<'_>) {
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
}

/// Section 5, requests and bytes of a dashboard left open.
pub(super) fn requests(md: &mut String, r: &Results, chart: &mut Chart<'_>) {
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
}
