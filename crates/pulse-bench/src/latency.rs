//! Benchmark 2, latency: from a publisher's `POST /v1/ingest` to the change
//! committed in a client's SQLite cache, at a steady 100, 1,000 and 10,000
//! events/s.
//!
//! Processes: the gateway (SQLite store, as deployed; then again with the memory
//! store, to show what the gateway's durable commit costs), the client (a session
//! into a SQLite cache, separate process) and the publisher (this process). Each
//! event carries `sent_ns`, read from `CLOCK_MONOTONIC` just before its request
//! is sent; the client reads the same clock when the session broadcasts the
//! committed change (after the cache transaction) and records the difference in
//! an HDR histogram. The publisher sends every millisecond the events that are
//! due, so at 10,000 events/s a request carries about 10 events.

use std::sync::Arc;
use std::time::{Duration, Instant};

use pulse_core::auth::{Secret, StaticToken};
use pulse_core::session::{ConnectionState, SessionConfig, SessionEvent, SessionHandle};
use pulse_core::store::SqliteStore;
use pulse_core::store::StoreHandle;
use pulse_protocol::auth::Role;
use pulse_protocol::Change;
use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio::sync::broadcast::error::RecvError;

use crate::harness::{self, Ctx, GatewayOpts};
use crate::stats::{Latency, Summary};
use crate::sys::{self, UsageWindow};

const STREAM: &str = "latency";

/// One rate's figures.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Phase {
    /// Target events/s.
    pub rate: u64,
    /// Achieved events/s (sent).
    pub achieved: f64,
    /// Seconds measured.
    pub seconds: f64,
    /// Ingest requests sent.
    pub requests: u64,
    /// Latency percentiles.
    pub latency: Summary,
    /// CPU used meanwhile, in cores: gateway, client, publisher.
    #[serde(default)]
    pub cores: [f64; 3],
}

/// The rates measured against one gateway store.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StoreRun {
    /// Gateway store.
    pub store: String,
    /// The rates.
    pub phases: Vec<Phase>,
}

/// Result of the latency benchmark.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LatencyResult {
    /// First the SQLite store (durable, as deployed), then the memory store
    /// (to show what the gateway's commit costs).
    pub runs: Vec<StoreRun>,
}

/// Store names.
pub const SQLITE: &str = "SQLite (WAL, synchronous=NORMAL)";
/// Memory store name.
pub const MEMORY: &str = "memory";

/// Run it.
pub fn run(ctx: &Ctx) -> anyhow::Result<LatencyResult> {
    let rates: [(u64, f64); 3] = [
        (100, ctx.mode.pick(0.5, 4.0, 20.0)),
        (1_000, ctx.mode.pick(0.5, 3.0, 10.0)),
        (10_000, ctx.mode.pick(0.5, 3.0, 10.0)),
    ];
    let sqlite = format!("sqlite:{}", ctx.path("latency-gw.db").display());
    let mut runs = Vec::new();
    for (name, store) in [(SQLITE, sqlite.as_str()), (MEMORY, "memory")] {
        eprintln!("latency: gateway store {name}");
        runs.push(StoreRun {
            store: name.into(),
            phases: run_store(ctx, store, &rates)?,
        });
    }
    Ok(LatencyResult { runs })
}

fn run_store(ctx: &Ctx, store: &str, rates: &[(u64, f64)]) -> anyhow::Result<Vec<Phase>> {
    let (mut gw, url) = ctx.gateway(
        &GatewayOpts {
            store: store.into(),
            ..Default::default()
        },
        None,
    )?;
    let kind = store.split(':').next().unwrap_or("store");
    let cache = ctx.path(&format!("latency-client-{kind}.db"));
    let args = vec![
        "latency-client".into(),
        "--url".into(),
        url.clone(),
        "--cache".into(),
        cache.display().to_string(),
        "--phases".into(),
        rates.len().to_string(),
    ];
    let mut client = ctx.child("latency-client", &args, None)?;
    client.wait_line("ready", Duration::from_secs(60))?;

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let publisher = harness::token(STREAM, Role::Publisher);
    let http = reqwest::Client::builder().tcp_nodelay(true).build()?;
    let mut sent_stats = Vec::new();
    rt.block_on(async {
        // Warm up connections and caches (not recorded).
        publish(&http, &url, &publisher, 200, 1.0, None).await?;
        for (i, (rate, secs)) in rates.iter().enumerate() {
            eprintln!("latency: {rate} events/s for {secs} s");
            let windows = [gw.pid(), client.pid(), sys::own_pid()].map(UsageWindow::start);
            let s = publish(&http, &url, &publisher, *rate, *secs, Some(i)).await?;
            sent_stats.push((s, windows.map(|w| w.finish().cores)));
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        // Tell the client it has seen everything.
        post(
            &http,
            &url,
            &publisher,
            vec![json!({"type": "agent.status_changed", "data": {"id": "done", "status": "done", "done": true}})],
        )
        .await
    })?;
    let out = client.finish(Duration::from_secs(60))?;
    let summaries: Vec<Summary> = harness::parse_result(&out)?;
    gw.stop(Duration::from_secs(5));
    let _ = std::fs::remove_file(&cache);
    Ok(rates
        .iter()
        .zip(sent_stats)
        .zip(summaries)
        .map(
            |(((rate, secs), ((sent, requests), cores)), latency)| Phase {
                rate: *rate,
                achieved: sent as f64 / secs,
                seconds: *secs,
                requests,
                latency,
                cores,
            },
        )
        .collect())
}

async fn post(
    http: &reqwest::Client,
    url: &str,
    token: &str,
    events: Vec<serde_json::Value>,
) -> anyhow::Result<()> {
    let r = http
        .post(format!("{url}/v1/ingest"))
        .bearer_auth(token)
        .json(&events)
        .send()
        .await?;
    anyhow::ensure!(r.status().is_success(), "ingest: {}", r.status());
    let _ = r.bytes().await?;
    Ok(())
}

/// The most events one ingest request carries (about 150 KB, well under the
/// gateway's 1 MiB body limit).
const MAX_PER_REQUEST: u64 = 1_000;

/// Send `rate` events/s for `secs`; returns (events sent, requests).
async fn publish(
    http: &reqwest::Client,
    url: &str,
    token: &str,
    rate: u64,
    secs: f64,
    phase: Option<usize>,
) -> anyhow::Result<(u64, u64)> {
    let start = Instant::now();
    let total = (rate as f64 * secs) as u64;
    let mut sent = 0u64;
    let mut requests = 0u64;
    let mut tick = tokio::time::interval(Duration::from_millis(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    while sent < total {
        tick.tick().await;
        let due = ((start.elapsed().as_secs_f64() * rate as f64) as u64).min(total);
        if due <= sent {
            continue;
        }
        // After a stall (a loaded machine) the overdue events go out in requests of
        // at most MAX_PER_REQUEST, not one request over the gateway's body limit.
        while sent < due {
            let upto = due.min(sent + MAX_PER_REQUEST);
            let now = sys::mono_ns();
            let events: Vec<_> = (sent..upto)
                .map(|k| {
                    json!({"type": "agent.status_changed", "data": {
                        "id": format!("agent-{}", k % 100),
                        "status": "busy",
                        "sent_ns": now,
                        "phase": phase.map(|p| p as i64).unwrap_or(-1),
                    }})
                })
                .collect();
            post(http, url, token, events).await?;
            requests += 1;
            sent = upto;
        }
    }
    Ok((sent, requests))
}

/// Arguments of the latency client.
#[derive(Debug, clap::Args)]
pub struct ClientArgs {
    /// Gateway URL.
    #[arg(long)]
    url: String,
    /// Cache file.
    #[arg(long)]
    cache: std::path::PathBuf,
    /// Number of phases to report.
    #[arg(long)]
    phases: usize,
}

/// The latency client: prints `ready` once live, then `result [Summary…]` (one
/// per phase) after the `done` event.
pub fn client(args: ClientArgs) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let summaries = rt.block_on(async {
        let store = StoreHandle::new(SqliteStore::open(&args.cache)?);
        let tokens = Arc::new(StaticToken::new(Secret::new(harness::token(
            STREAM,
            Role::Viewer,
        ))));
        let handle = SessionHandle::spawn(SessionConfig::new(args.url.parse()?), tokens, store)?;
        let mut rx = handle.subscribe();
        let mut status = handle.status();
        tokio::time::timeout(
            Duration::from_secs(30),
            status.wait_for(|s| s.state == ConnectionState::Live),
        )
        .await??;
        println!("ready");
        let mut hist = vec![Latency::new(); args.phases];
        let mut lagged = 0u64;
        'outer: loop {
            match rx.recv().await {
                Ok(SessionEvent::Applied { events, .. }) => {
                    let now = sys::mono_ns();
                    for e in events.iter() {
                        for c in &e.changes {
                            let Change::Patch { data, .. } = c else {
                                continue;
                            };
                            if data.get("done").is_some() {
                                break 'outer;
                            }
                            let (Some(sent), Some(phase)) = (
                                data.get("sent_ns").and_then(|v| v.as_u64()),
                                data.get("phase").and_then(|v| v.as_i64()),
                            ) else {
                                continue;
                            };
                            if let Some(h) =
                                usize::try_from(phase).ok().and_then(|p| hist.get_mut(p))
                            {
                                h.record_ns(now.saturating_sub(sent));
                            }
                        }
                    }
                }
                Ok(_) => {}
                Err(RecvError::Lagged(n)) => lagged += n,
                Err(RecvError::Closed) => anyhow::bail!("session ended"),
            }
        }
        anyhow::ensure!(lagged == 0, "the subscriber lagged by {lagged} batches");
        handle.stop().await;
        anyhow::Ok(hist.iter().map(Latency::summary).collect::<Vec<_>>())
    })?;
    harness::print_result(&summaries);
    Ok(())
}
