//! Benchmark 5, requests and bytes: a dashboard left open for 15 minutes on a
//! busy platform (the gateway's demo simulator), time-scaled, counted at the
//! server side by a byte-counting proxy in front of each server.
//!
//! - **Pulse**: a session on the native protocol (one snapshot, one WebSocket,
//!   then only pushed events and pings);
//! - **seed 000 polling** (agent monitor): every 5 s, `GET /api/agents` and
//!   `GET /api/agents/stats`;
//! - **seed 001 polling** (stats badges): every 30 s, `GET /api/tasks/stats`,
//!   `/api/approvals/stats`, `/api/conversations/stats`.
//!
//! The polled endpoints are served by a small shim shaped like the seeds'
//! backends, from the same live data (the gateway's snapshot); the pollers keep
//! their connection alive and send a bearer token as the seeds' dashboards do.
//! Time is scaled by `speed`: the simulator runs `speed` times faster, and every
//! interval (polls, the gateway's pings) is divided by `speed`, so the counts are
//! those of 15 real minutes.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use pulse_core::auth::{Secret, StaticToken};
use pulse_core::session::{SessionConfig, SessionHandle};
use pulse_core::store::SqliteStore;
use pulse_core::store::StoreHandle;
use pulse_protocol::auth::Role;
use pulse_protocol::domain::EntityKind;
use pulse_protocol::rest::Snapshot;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::harness::{self, Ctx, GatewayOpts};

/// Traffic of one client, as the server saw it.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Traffic {
    /// Client name.
    pub client: String,
    /// HTTP requests (a WebSocket upgrade is one).
    pub requests: u64,
    /// Requests after the first simulated minute.
    pub requests_after_first_minute: u64,
    /// Bytes server → client.
    pub bytes_down: u64,
    /// Bytes client → server.
    pub bytes_up: u64,
    /// TCP connections opened.
    pub connections: u64,
}

/// Result of the requests benchmark.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RequestsResult {
    /// Simulated minutes.
    pub simulated_minutes: f64,
    /// Time factor.
    pub speed: f64,
    /// Events the simulator produced in the window.
    pub events: u64,
    /// The clients.
    pub clients: Vec<Traffic>,
}

/// Pulse row.
pub const PULSE: &str = "Pulse (snapshot + WebSocket)";
/// Seed 000 row.
pub const SEED_000: &str = "Seed 000 polling (5 s × 2 calls)";
/// Seed 001 row.
pub const SEED_001: &str = "Seed 001 polling (30 s × 3 calls)";

/// Run it.
pub fn run(ctx: &Ctx) -> anyhow::Result<RequestsResult> {
    let speed: f64 = ctx.mode.pick(300.0, 60.0, 30.0);
    let minutes = 15.0;
    let window = Duration::from_secs_f64(minutes * 60.0 / speed);
    let (mut gw, gw_url) = ctx.gateway(
        &GatewayOpts {
            demo_speed: Some(speed),
            ping_interval_ms: (15_000.0 / speed).max(20.0) as u64,
            ..Default::default()
        },
        None,
    )?;
    let gw_addr: SocketAddr = gw_url.trim_start_matches("http://").parse()?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let cache = ctx.path("requests-client.db");
    let result = rt.block_on(async move {
        let viewer = harness::token("demo", Role::Viewer);
        // The seeds' REST shape, from the gateway's live data.
        let shim = serve_shim(gw_url.clone(), viewer.clone()).await?;
        let pulse_proxy = Proxy::start(gw_addr).await?;
        let p000 = Proxy::start(shim).await?;
        let p001 = Proxy::start(shim).await?;
        let head0 = head(&gw_url, &viewer).await?;
        let start = Instant::now();
        let first_minute = Duration::from_secs_f64(60.0 / speed);

        // Pulse.
        let store = StoreHandle::new(SqliteStore::open(&cache)?);
        let tokens = Arc::new(StaticToken::new(Secret::new(viewer.clone())));
        let handle = SessionHandle::spawn(
            SessionConfig::new(format!("http://{}", pulse_proxy.addr).parse()?),
            tokens,
            store,
        )?;
        // The pollers.
        let poll = |addr: SocketAddr, every: f64, paths: &'static [&'static str]| {
            let token = viewer.clone();
            tokio::spawn(async move {
                let http = reqwest::Client::new();
                // One poll at t = 0, every, 2·every, … inside the window.
                let rounds = (minutes * 60.0 / every).round() as u32;
                let interval = Duration::from_secs_f64(every / speed);
                for round in 0..rounds {
                    tokio::time::sleep_until((start + interval * round).into()).await;
                    for p in paths {
                        let r = http
                            .get(format!("http://{addr}{p}"))
                            .bearer_auth(&token)
                            .header("Accept", "application/json")
                            .send()
                            .await?;
                        let _ = r.bytes().await?;
                    }
                }
                anyhow::Ok(())
            })
        };
        let a = poll(p000.addr, 5.0, &["/api/agents", "/api/agents/stats"]);
        let b = poll(
            p001.addr,
            30.0,
            &[
                "/api/tasks/stats",
                "/api/approvals/stats",
                "/api/conversations/stats",
            ],
        );
        tokio::time::sleep(first_minute).await;
        let at_minute = [
            pulse_proxy.requests.load(Ordering::Acquire),
            p000.requests.load(Ordering::Acquire),
            p001.requests.load(Ordering::Acquire),
        ];
        tokio::time::sleep_until((start + window).into()).await;
        handle.stop().await;
        a.await??;
        b.await??;
        let events = head(&gw_url, &viewer).await? - head0;
        let clients = [(PULSE, &pulse_proxy), (SEED_000, &p000), (SEED_001, &p001)]
            .iter()
            .zip(at_minute)
            .map(|((name, p), minute)| Traffic {
                client: (*name).into(),
                requests: p.requests.load(Ordering::Acquire),
                requests_after_first_minute: p.requests.load(Ordering::Acquire) - minute,
                bytes_down: p.down.load(Ordering::Acquire),
                bytes_up: p.up.load(Ordering::Acquire),
                connections: p.connections.load(Ordering::Acquire),
            })
            .collect();
        anyhow::Ok(RequestsResult {
            simulated_minutes: minutes,
            speed,
            events,
            clients,
        })
    });
    drop(rt);
    gw.stop(Duration::from_secs(5));
    result
}

async fn snapshot(url: &str, token: &str) -> anyhow::Result<Snapshot> {
    let r = reqwest::Client::new()
        .get(format!("{url}/v1/snapshot"))
        .bearer_auth(token)
        .send()
        .await?;
    anyhow::ensure!(r.status().is_success(), "snapshot: {}", r.status());
    Ok(r.json().await?)
}

async fn head(url: &str, token: &str) -> anyhow::Result<u64> {
    Ok(snapshot(url, token).await?.seq)
}

#[derive(Clone)]
struct Shim {
    gateway: String,
    token: String,
}

async fn shim_snapshot(s: &Shim) -> Result<Snapshot, axum::http::StatusCode> {
    snapshot(&s.gateway, &s.token)
        .await
        .map_err(|_| axum::http::StatusCode::BAD_GATEWAY)
}

async fn agents(State(s): State<Shim>) -> Result<Json<Value>, axum::http::StatusCode> {
    let snap = shim_snapshot(&s).await?;
    let list: Vec<Value> = snap
        .entities
        .into_iter()
        .filter(|e| e.kind == EntityKind::Agent)
        .map(|e| Value::Object(e.data))
        .collect();
    Ok(Json(json!({"agents": list, "total": list.len()})))
}

async fn stats_of(s: &Shim, scope: &str) -> Result<Json<Value>, axum::http::StatusCode> {
    let snap = shim_snapshot(s).await?;
    let stats = snap
        .entities
        .into_iter()
        .find(|e| e.kind == EntityKind::Stats && e.id == scope)
        .map(|e| Value::Object(e.data))
        .unwrap_or_else(|| json!({}));
    Ok(Json(stats))
}

async fn serve_shim(gateway: String, token: String) -> anyhow::Result<SocketAddr> {
    let app = Router::new()
        .route("/api/agents", get(agents))
        .route(
            "/api/agents/stats",
            get(|State(s): State<Shim>| async move { stats_of(&s, "agents").await }),
        )
        .route(
            "/api/tasks/stats",
            get(|State(s): State<Shim>| async move { stats_of(&s, "tasks").await }),
        )
        .route(
            "/api/approvals/stats",
            get(|State(s): State<Shim>| async move { stats_of(&s, "approvals").await }),
        )
        .route(
            "/api/conversations/stats",
            get(|State(s): State<Shim>| async move { stats_of(&s, "conversations").await }),
        )
        .with_state(Shim { gateway, token });
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok(addr)
}

/// A TCP proxy that counts bytes both ways and the HTTP requests a client sends.
struct Proxy {
    addr: SocketAddr,
    requests: Arc<AtomicU64>,
    up: Arc<AtomicU64>,
    down: Arc<AtomicU64>,
    connections: Arc<AtomicU64>,
}

impl Proxy {
    async fn start(upstream: SocketAddr) -> anyhow::Result<Proxy> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let p = Proxy {
            addr: listener.local_addr()?,
            requests: Arc::default(),
            up: Arc::default(),
            down: Arc::default(),
            connections: Arc::default(),
        };
        let (requests, up, down, connections) = (
            p.requests.clone(),
            p.up.clone(),
            p.down.clone(),
            p.connections.clone(),
        );
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                connections.fetch_add(1, Ordering::AcqRel);
                let (requests, up, down) = (requests.clone(), up.clone(), down.clone());
                tokio::spawn(async move {
                    let Ok(server) = TcpStream::connect(upstream).await else {
                        return;
                    };
                    let _ = client.set_nodelay(true);
                    let _ = server.set_nodelay(true);
                    let (mut cr, mut cw) = client.into_split();
                    let (mut sr, mut sw) = server.into_split();
                    let upward = async {
                        let mut counter = RequestCounter::default();
                        let mut buf = vec![0u8; 16 * 1024];
                        loop {
                            let n = match cr.read(&mut buf).await {
                                Ok(0) | Err(_) => break,
                                Ok(n) => n,
                            };
                            up.fetch_add(n as u64, Ordering::AcqRel);
                            requests.fetch_add(counter.feed(&buf[..n]), Ordering::AcqRel);
                            if sw.write_all(&buf[..n]).await.is_err() {
                                break;
                            }
                        }
                        let _ = sw.shutdown().await;
                    };
                    let downward = async {
                        let mut buf = vec![0u8; 16 * 1024];
                        loop {
                            let n = match sr.read(&mut buf).await {
                                Ok(0) | Err(_) => break,
                                Ok(n) => n,
                            };
                            down.fetch_add(n as u64, Ordering::AcqRel);
                            if cw.write_all(&buf[..n]).await.is_err() {
                                break;
                            }
                        }
                        let _ = cw.shutdown().await;
                    };
                    tokio::join!(upward, downward);
                });
            }
        });
        Ok(p)
    }
}

/// Counts HTTP/1.1 requests in a client's byte stream: headers up to the blank
/// line, then `Content-Length` bytes of body; after a WebSocket upgrade the rest
/// is frames, not requests.
#[derive(Default)]
pub struct RequestCounter {
    head: Vec<u8>,
    body_left: usize,
    upgraded: bool,
}

impl RequestCounter {
    /// Feed bytes; returns how many requests were completed in them.
    pub fn feed(&mut self, mut bytes: &[u8]) -> u64 {
        let mut done = 0;
        while !bytes.is_empty() && !self.upgraded {
            if self.body_left > 0 {
                let n = self.body_left.min(bytes.len());
                self.body_left -= n;
                bytes = &bytes[n..];
                continue;
            }
            self.head.push(bytes[0]);
            bytes = &bytes[1..];
            if self.head.ends_with(b"\r\n\r\n") {
                done += 1;
                let text = String::from_utf8_lossy(&self.head).to_ascii_lowercase();
                self.body_left = text
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .and_then(|v| v.trim().parse().ok())
                    .unwrap_or(0);
                self.upgraded = text
                    .lines()
                    .any(|l| l.starts_with("upgrade:") && l.contains("websocket"));
                self.head.clear();
            }
        }
        done
    }
}

#[cfg(test)]
mod tests {
    use super::RequestCounter;

    #[test]
    fn counts_requests_bodies_and_upgrades() {
        let mut c = RequestCounter::default();
        let two =
            b"GET /a HTTP/1.1\r\nHost: x\r\n\r\nPOST /b HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello";
        assert_eq!(c.feed(&two[..10]), 0);
        assert_eq!(c.feed(&two[10..]), 2);
        assert_eq!(c.feed(b"GET /c HTTP/1.1\r\n\r\n"), 1);
        let up = b"GET /v1/stream HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n\x81\x05GET /\r\n\r\n";
        assert_eq!(c.feed(up), 1);
        assert_eq!(c.feed(b"GET /d HTTP/1.1\r\n\r\n"), 0);
    }
}
