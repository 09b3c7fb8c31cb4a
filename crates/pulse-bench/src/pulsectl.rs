//! Benchmark 7, `pulsectl` memory: resident memory of `pulsectl watch` (the
//! release binary) following a gateway that holds 10,000 tickets and is then
//! published 1,000 events/s. `pulsectl` starts with an empty cache, loads the
//! snapshot, then applies every event to its SQLite cache and prints a JSON line
//! per change (read and counted here). Its `VmRSS` is sampled from `/proc` every
//! 100 ms; `VmHWM` is the kernel's own peak. For scale, the same binary
//! following an empty stream (the fixed cost) is measured first.

use std::io::BufRead;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use pulse_protocol::auth::Role;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::harness::{self, Ctx, GatewayOpts};
use crate::sys::{self, Proc};

const STREAM: &str = "pulsectl";

/// The target for `pulsectl watch`'s peak resident memory after a 10,000-entity
/// snapshot (issue 12): 16 MiB.
pub const TARGET_MIB: f64 = 16.0;

/// Result of the pulsectl benchmark.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PulsectlResult {
    /// Entities in the snapshot it loaded.
    pub entities: u64,
    /// Target events/s while busy.
    pub rate: u64,
    /// Seconds busy.
    pub seconds: f64,
    /// Change lines pulsectl printed while busy.
    pub lines: u64,
    /// Events published.
    pub published: u64,
    /// RSS following an empty stream (nothing to load), MiB: the fixed cost.
    pub empty_mib: f64,
    /// RSS after the snapshot, before the load, MiB.
    pub idle_mib: f64,
    /// Highest sampled RSS under load, MiB.
    pub busy_peak_mib: f64,
    /// Kernel's peak RSS (VmHWM) over the whole run, MiB.
    pub hwm_mib: f64,
    /// (seconds since start, RSS MiB) samples.
    pub timeline: Vec<(f64, f64)>,
    /// Why it was not measured, if it was not.
    pub skipped: Option<String>,
}

/// Run it with the `pulsectl` binary at `bin`.
pub fn run(ctx: &Ctx, bin: &Path) -> anyhow::Result<PulsectlResult> {
    let entities: u64 = ctx.mode.pick(1_000, 10_000, 10_000);
    let rate: u64 = 1_000;
    let seconds = ctx.mode.pick(1.0, 5.0, 20.0);
    if !bin.is_file() {
        return Ok(PulsectlResult {
            entities,
            rate,
            seconds,
            lines: 0,
            published: 0,
            empty_mib: 0.0,
            idle_mib: 0.0,
            busy_peak_mib: 0.0,
            hwm_mib: 0.0,
            timeline: Vec::new(),
            skipped: Some(format!("no pulsectl binary at {}", bin.display())),
        });
    }
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
        (0..entities).map(|i| {
            json!({"type": "ticket.created", "data": {
                "id": format!("tkt-{i}"), "title": format!("Ticket {i}: refund stuck in review"),
                "state": "todo", "assignee": format!("agent-{}", i % 40), "priority": i % 4,
            }})
        }),
    ))?;

    let watch = |tenant: &str, cache: &Path| -> anyhow::Result<Proc> {
        let mut cmd = Command::new(bin);
        cmd.args(["watch", "--server", &url, "--cache"])
            .arg(cache)
            .env("PULSE_TOKEN", harness::token(tenant, Role::Viewer))
            .env("PULSE_LOG", "warn");
        Proc::spawn("pulsectl", cmd, Some(&ctx.log))
    };

    // The fixed cost: following a stream that has nothing in it.
    let mut empty = watch("pulsectl-empty", &ctx.path("pulsectl-empty.db"))?;
    std::thread::sleep(Duration::from_millis(1500));
    anyhow::ensure!(
        !empty.exited(),
        "pulsectl exited (see {})",
        ctx.log.display()
    );
    let empty_mib = sys::rss_kib(empty.pid()).unwrap_or(0) as f64 / 1024.0;
    empty.stop(Duration::from_secs(5));

    let cache = ctx.path("pulsectl.db");
    let mut p = watch(STREAM, &cache)?;
    let pid = p.pid();
    let lines = Arc::new(AtomicU64::new(0));
    let snapshot_seen = Arc::new(AtomicU64::new(0));
    let stdout = p.take_stdout();
    let reader = {
        let (lines, snapshot_seen) = (lines.clone(), snapshot_seen.clone());
        std::thread::spawn(move || {
            let Some(out) = stdout else { return };
            for line in out.lines() {
                let Ok(line) = line else { break };
                if line.contains("\"snapshot\":{") {
                    snapshot_seen.fetch_add(1, Ordering::AcqRel);
                } else {
                    lines.fetch_add(1, Ordering::AcqRel);
                }
            }
        })
    };
    let t0 = Instant::now();
    let mut timeline = Vec::new();
    let sample = |timeline: &mut Vec<(f64, f64)>| -> f64 {
        let mib = sys::rss_kib(pid).unwrap_or(0) as f64 / 1024.0;
        if mib > 0.0 {
            timeline.push((t0.elapsed().as_secs_f64(), mib));
        }
        mib
    };
    // Wait for the snapshot, then let it settle.
    let deadline = Instant::now() + Duration::from_secs(60);
    while snapshot_seen.load(Ordering::Acquire) == 0 {
        anyhow::ensure!(!p.exited(), "pulsectl exited (see {})", ctx.log.display());
        anyhow::ensure!(
            Instant::now() < deadline,
            "pulsectl loaded no snapshot in 60 s"
        );
        sample(&mut timeline);
        std::thread::sleep(Duration::from_millis(100));
    }
    let settle = Instant::now() + Duration::from_secs(1);
    while Instant::now() < settle {
        sample(&mut timeline);
        std::thread::sleep(Duration::from_millis(100));
    }
    let idle_mib = sample(&mut timeline);

    // Busy: publish `rate` events/s (a batch every 10 ms) while sampling.
    let total = (rate as f64 * seconds) as u64;
    let mut busy_peak: f64 = 0.0;
    let busy_start = Instant::now();
    let mut sent = 0u64;
    let mut last_sample = Instant::now();
    rt.block_on(async {
        while sent < total {
            let due = ((busy_start.elapsed().as_secs_f64() * rate as f64) as u64).min(total);
            if due > sent {
                let events: Vec<_> = (sent..due)
                    .map(|k| {
                        json!({"type": "ticket.updated", "data": {
                            "id": format!("tkt-{}", k % entities), "state": "in_progress",
                            "note": "working on it", "revision": k,
                        }})
                    })
                    .collect();
                let r = http
                    .post(format!("{url}/v1/ingest"))
                    .bearer_auth(&publisher)
                    .json(&events)
                    .send()
                    .await?;
                anyhow::ensure!(r.status().is_success(), "ingest: {}", r.status());
                sent = due;
            }
            if last_sample.elapsed() >= Duration::from_millis(100) {
                last_sample = Instant::now();
                busy_peak = busy_peak.max(sample(&mut timeline));
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        anyhow::Ok(())
    })?;
    let deadline = Instant::now() + Duration::from_secs(30);
    while lines.load(Ordering::Acquire) < total && Instant::now() < deadline {
        busy_peak = busy_peak.max(sample(&mut timeline));
        std::thread::sleep(Duration::from_millis(100));
    }
    let hwm_mib = sys::hwm_kib(pid).unwrap_or(0) as f64 / 1024.0;
    p.stop(Duration::from_secs(5));
    let _ = reader.join();
    gw.stop(Duration::from_secs(5));
    Ok(PulsectlResult {
        entities,
        rate,
        seconds,
        lines: lines.load(Ordering::Acquire),
        published: total,
        empty_mib,
        idle_mib,
        busy_peak_mib: busy_peak,
        hwm_mib,
        timeline,
        skipped: None,
    })
}
