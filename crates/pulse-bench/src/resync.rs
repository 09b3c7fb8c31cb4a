//! Benchmark 4, resync: a client is caught up on a gateway holding 10,000
//! tickets; the gateway stops; M events (0, 10,000, 100,000 ticket updates)
//! are committed to its store while it is down; it starts again. Measured: from
//! the restarted gateway listening to the client's cache holding the new head
//! (state `Live`).
//!
//! - **replay**: the gateway keeps every event, so the client's subscribe with its
//!   cursor is answered `recovered: true` and the M events are replayed;
//! - **snapshot**: the gateway keeps only the newest 1,000 events, so the cursor is
//!   older than the log (`truncated`) and the client loads `GET /v1/snapshot`
//!   (10,000 tickets) and swaps it in atomically. With nothing missed the server
//!   answers `recovered: true` and no snapshot is needed.
//!
//! The client is a session (`SessionHandle`, SQLite cache) in this process whose
//! reconnect delay is set to 10 minutes: it reconnects when told to
//! (`retry_now`, the way a network-change or wake event does), at the moment
//! the gateway is up, so the figure is the resync itself, not the backoff.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use pulse_core::auth::{Secret, StaticToken};
use pulse_core::backoff::BackoffConfig;
use pulse_core::session::{ConnectionState, SessionConfig, SessionHandle, SessionStatus};
use pulse_core::store::SqliteStore;
use pulse_core::store::StoreHandle;
use pulse_gateway::store::{LogStore, NewEvent};
use pulse_protocol::auth::Role;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::harness::{self, Ctx, GatewayOpts, Mode};

const STREAM: &str = "resync";
/// Tickets in the base state.
const BASE: u64 = 10_000;

/// One resync.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Case {
    /// `replay` or `snapshot` (how the gateway was configured).
    pub mode: String,
    /// Events committed while the client was away.
    pub missed: u64,
    /// What the client actually did: `replay` or `snapshot`.
    pub path: String,
    /// Restarted gateway listening → client caught up, ms.
    pub caught_up_ms: f64,
    /// Gateway process start → listening, ms (not included above).
    pub restart_ms: f64,
    /// Entities in the client's cache afterwards.
    pub entities: u64,
}

/// Result of the resync benchmark.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ResyncResult {
    /// Base entities.
    pub base_entities: u64,
    /// The cases.
    pub cases: Vec<Case>,
}

fn ticket_event(i: u64, base: u64, created: bool) -> serde_json::Value {
    let id = format!("tkt-{}", i % base);
    if created {
        json!({"type": "ticket.created", "data": {
            "id": id, "title": format!("Ticket {i}: billing retry after timeout"),
            "state": "todo", "assignee": format!("agent-{}", i % 40), "priority": i % 4,
        }})
    } else {
        let state = ["todo", "in_progress", "review", "done"][(i % 4) as usize];
        json!({"type": "ticket.updated", "data": {
            "id": id, "state": state,
            "assignee": format!("agent-{}", i % 40), "revision": i,
        }})
    }
}

/// Run it.
pub fn run(ctx: &Ctx) -> anyhow::Result<ResyncResult> {
    let missed: Vec<u64> = ctx.mode.pick(
        vec![0, 1_000],
        vec![0, 10_000, 100_000],
        vec![0, 10_000, 100_000],
    );
    let base = ctx.mode.pick(1_000, BASE, BASE);
    let mut cases = Vec::new();
    for mode in ["replay", "snapshot"] {
        for &m in &missed {
            eprintln!("resync: {mode}, {m} missed events");
            cases.push(one(ctx, mode, base, m)?);
        }
    }
    Ok(ResyncResult {
        base_entities: base,
        cases,
    })
}

fn one(ctx: &Ctx, mode: &str, base: u64, missed: u64) -> anyhow::Result<Case> {
    let db = ctx.path(&format!("resync-{mode}-{missed}.db"));
    let cache = ctx.path(&format!("resync-{mode}-{missed}-client.db"));
    let retain = match (mode, ctx.mode) {
        ("replay", _) => 1_000_000,
        (_, Mode::Smoke) => 100,
        _ => 1_000,
    };
    let opts = |addr: SocketAddr| GatewayOpts {
        store: format!("sqlite:{}", db.display()),
        addr,
        retain,
        ..Default::default()
    };
    let (mut gw, url) = ctx.gateway(&opts(SocketAddr::from(([127, 0, 0, 1], 0))), None)?;
    let addr: SocketAddr = url.trim_start_matches("http://").parse()?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    let case = rt.block_on(async {
        let http = reqwest::Client::new();
        let publisher = harness::token(STREAM, Role::Publisher);
        harness::ingest_all(
            &http,
            &url,
            &publisher,
            (0..base).map(|i| ticket_event(i, base, true)),
        )
        .await?;
        let store = StoreHandle::new(SqliteStore::open(&cache)?);
        let mut config = SessionConfig::new(url.parse()?);
        config.backoff = BackoffConfig {
            base: Duration::from_secs(600),
            cap: Duration::from_secs(600),
            floor: Duration::from_secs(600),
            ..BackoffConfig::default()
        };
        let tokens = Arc::new(StaticToken::new(Secret::new(harness::token(
            STREAM,
            Role::Viewer,
        ))));
        let handle = SessionHandle::spawn(config, tokens, store.clone())?;
        let mut status = handle.status();
        let caught_up = |target: u64| {
            move |s: &SessionStatus| {
                s.state == ConnectionState::Live
                    && s.cursor.as_ref().is_some_and(|c| c.seq >= target)
            }
        };
        tokio::time::timeout(Duration::from_secs(60), status.wait_for(caught_up(base))).await??;
        let snapshots_before = status.borrow().counters.snapshots;

        // Stop the gateway and commit the missed events to its store meanwhile.
        gw.stop(Duration::from_secs(10));
        tokio::time::timeout(
            Duration::from_secs(30),
            status.wait_for(|s| !matches!(s.state, ConnectionState::Live)),
        )
        .await??;
        let db2 = db.clone();
        tokio::task::spawn_blocking(move || append_offline(&db2, retain, base, missed)).await??;

        // Restart on the same address; then the client reconnects at once.
        let t_spawn = Instant::now();
        let (gw2, _) = ctx.gateway(&opts(addr), None)?;
        gw = gw2;
        let restart_ms = t_spawn.elapsed().as_secs_f64() * 1000.0;
        let t0 = Instant::now();
        handle.retry_now();
        tokio::time::timeout(
            Duration::from_secs(120),
            status.wait_for(caught_up(base + missed)),
        )
        .await??;
        let caught_up_ms = t0.elapsed().as_secs_f64() * 1000.0;
        let snapshots = status.borrow().counters.snapshots - snapshots_before;
        let entities = store.summary()?.counts.values().sum::<u64>();
        handle.stop().await;
        anyhow::Ok(Case {
            mode: mode.into(),
            missed,
            path: if snapshots > 0 { "snapshot" } else { "replay" }.into(),
            caught_up_ms,
            restart_ms,
            entities,
        })
    });
    gw.stop(Duration::from_secs(5));
    let _ = std::fs::remove_file(&db);
    let _ = std::fs::remove_file(&cache);
    case
}

/// Commit `missed` ticket updates straight to the (stopped) gateway's store.
fn append_offline(db: &Path, retain: u64, base: u64, missed: u64) -> anyhow::Result<()> {
    let store = pulse_gateway::store::SqliteStore::open(db, retain)?;
    let mut i = 0;
    while i < missed {
        let n = (missed - i).min(2_000);
        let batch = (i..i + n)
            .map(|k| {
                let e = ticket_event(base + k, base, false);
                NewEvent::new(
                    e["type"].as_str().unwrap_or_default(),
                    e["data"].clone(),
                    None,
                    pulse_gateway::store::now_ms(),
                )
                .map_err(anyhow::Error::from)
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        store.append(STREAM, batch)?;
        i += n;
    }
    Ok(())
}
