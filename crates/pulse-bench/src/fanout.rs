//! Benchmark 3, fan-out: one server, 1,000 and 10,000 concurrent WebSocket
//! clients spread over tenants (100 clients per tenant), and a publisher that
//! sends events to every tenant at a steady rate (each tenant's events evenly
//! spaced, the tenants staggered across the interval). Measured: delivery latency
//! (publisher's request sent → client decoded the frame) over every delivery,
//! and the server's CPU and resident memory from `/proc`.
//!
//! Servers, side by side under the same load: the Pulse gateway (memory store,
//! JWT per connection, seq'd frames) and a stock Node Socket.IO 4 server
//! (rooms per tenant, no auth, no log). The clients are this process: lean
//! protocol clients (the native handshake, or Engine.IO/Socket.IO framing by
//! hand) that decode every frame as JSON, bound to 127.0.0.2–127.0.0.9 so
//! 10,000 connections never run out of ports. On this 2-core machine the load
//! generator shares the CPUs with the server: the figures are an upper bound on
//! what the server alone would need.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use pulse_protocol::auth::Role;
use pulse_protocol::{ClientFrame, ServerFrame};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tokio::net::TcpSocket;
use tokio::sync::Semaphore;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

use crate::harness::{self, Ctx, GatewayOpts};
use crate::stats::{Latency, Summary};
use crate::sys::{self, Usage, UsageWindow};

/// Clients per tenant.
const PER_TENANT: usize = 100;
/// Source addresses the clients are spread over.
const SOURCES: u8 = 8;

/// One server × client count.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Case {
    /// `pulse-gateway` or `socket.io (Node)`.
    pub server: String,
    /// Concurrent clients.
    pub clients: usize,
    /// Tenants (rooms).
    pub tenants: usize,
    /// Events per second sent to each tenant.
    pub rate_per_tenant: f64,
    /// Seconds of publishing.
    pub seconds: f64,
    /// Deliveries expected (events × clients of their tenant).
    pub expected: u64,
    /// Deliveries received.
    pub delivered: u64,
    /// Seconds to open and subscribe every client.
    pub connect_s: f64,
    /// Delivery latency.
    pub latency: Summary,
    /// Server CPU and memory while publishing.
    pub server_usage: Usage,
    /// CPU of the load generator (this process: publisher and clients) in the
    /// same window, in cores.
    pub generator_cores: f64,
    /// Server resident memory before any client connected, MiB.
    pub server_idle_mib: f64,
    /// Why it was not measured, if it was not.
    pub skipped: Option<String>,
}

/// Result of the fan-out benchmark.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FanoutResult {
    /// The cases.
    pub cases: Vec<Case>,
}

/// Server names.
pub const PULSE: &str = "Pulse gateway";
/// Node server name.
pub const NODE: &str = "Socket.IO 4 (Node)";

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Pulse,
    SocketIo,
}

/// Run it.
pub fn run(ctx: &Ctx) -> anyhow::Result<FanoutResult> {
    let counts: Vec<usize> = match std::env::var("PULSE_BENCH_FANOUT_CLIENTS") {
        Ok(v) => v.split(',').filter_map(|n| n.trim().parse().ok()).collect(),
        Err(_) => ctx
            .mode
            .pick(vec![200], vec![1_000, 10_000], vec![1_000, 10_000]),
    };
    let rate = ctx.mode.pick(2.0, 2.0, 2.0);
    let seconds = ctx.mode.pick(1.0, 5.0, 15.0);
    let mut cases = Vec::new();
    for &clients in &counts {
        for kind in [Kind::Pulse, Kind::SocketIo] {
            let name = if kind == Kind::Pulse { PULSE } else { NODE };
            eprintln!("fanout: {name}, {clients} clients");
            let case = match kind {
                Kind::Pulse => {
                    let (gw, url) = ctx.gateway(&GatewayOpts::default(), None)?;
                    let addr: SocketAddr = url.trim_start_matches("http://").parse()?;
                    run_case(kind, gw, addr, clients, rate, seconds)?
                }
                Kind::SocketIo => match ctx.node("sio-server", "sio-server.js", &[], None)? {
                    Some(mut p) => {
                        let port: u16 = p
                            .wait_line("listening ", Duration::from_secs(30))?
                            .parse()?;
                        let addr = SocketAddr::from(([127, 0, 0, 1], port));
                        run_case(kind, p, addr, clients, rate, seconds)?
                    }
                    None => Case {
                        server: NODE.into(),
                        clients,
                        tenants: clients / PER_TENANT,
                        rate_per_tenant: rate,
                        seconds,
                        expected: 0,
                        delivered: 0,
                        connect_s: 0.0,
                        latency: Summary::default(),
                        server_usage: Usage::default(),
                        generator_cores: 0.0,
                        server_idle_mib: 0.0,
                        skipped: Some("node or benches/peers/node_modules missing".into()),
                    },
                },
            };
            eprintln!(
                "fanout: {} delivered of {}, p50 {:.2} ms, p99 {:.2} ms, server {:.2} cores, generator {:.2} cores, {:.0} MiB",
                case.delivered,
                case.expected,
                case.latency.p50_ms,
                case.latency.p99_ms,
                case.server_usage.cores,
                case.generator_cores,
                case.server_usage.rss_peak_mib
            );
            cases.push(case);
            // Let TIME_WAIT sockets and the server's memory go.
            std::thread::sleep(Duration::from_millis(500));
        }
    }
    Ok(FanoutResult { cases })
}

fn tenant_name(t: usize) -> String {
    format!("t{t:03}")
}

fn run_case(
    kind: Kind,
    mut server: sys::Proc,
    addr: SocketAddr,
    clients: usize,
    rate: f64,
    seconds: f64,
) -> anyhow::Result<Case> {
    let tenants = clients.div_ceil(PER_TENANT).max(1);
    let pid = server.pid();
    let idle = sys::rss_kib(pid).unwrap_or(0) as f64 / 1024.0;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let result = rt.block_on(async move {
        let delivered = Arc::new(AtomicU64::new(0));
        let connected = Arc::new(AtomicU64::new(0));
        let gate = Arc::new(Semaphore::new(128));
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let t_connect = Instant::now();
        let mut tasks = Vec::with_capacity(clients);
        for i in 0..clients {
            let tenant = tenant_name(i % tenants);
            let source = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2 + (i % SOURCES as usize) as u8));
            let (delivered, connected, gate) = (delivered.clone(), connected.clone(), gate.clone());
            let stop = stop_rx.clone();
            tasks.push(tokio::spawn(async move {
                client(kind, addr, source, tenant, delivered, connected, gate, stop).await
            }));
        }
        // Wait for every client to be subscribed.
        let deadline = Instant::now() + Duration::from_secs(180);
        while connected.load(Ordering::Acquire) < clients as u64 {
            anyhow::ensure!(
                Instant::now() < deadline,
                "only {} of {clients} clients connected",
                connected.load(Ordering::Acquire)
            );
            if let Some(t) = tasks.iter().find(|t| t.is_finished()) {
                anyhow::bail!("a client ended during connect: {:?}", t.is_finished());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let connect_s = t_connect.elapsed().as_secs_f64();
        tokio::time::sleep(Duration::from_millis(500)).await;

        // Publish.
        let mut usage = UsageWindow::start(pid);
        let generator = UsageWindow::start(sys::own_pid());
        let http = reqwest::Client::builder().tcp_nodelay(true).build()?;
        let publishers: Vec<String> = (0..tenants)
            .map(|t| harness::token(&tenant_name(t), Role::Publisher))
            .collect();
        let rounds = (rate * seconds).round() as u64;
        let interval = Duration::from_secs_f64(1.0 / rate);
        let start = Instant::now();
        for round in 0..rounds {
            usage.sample();
            // One event per tenant per round, the tenants spread evenly over the
            // round (events of different tenants don't all happen at once).
            let mut reqs = Vec::with_capacity(tenants);
            for (t, token) in publishers.iter().enumerate() {
                let due = start + interval.mul_f64(round as f64 + t as f64 / tenants as f64);
                tokio::time::sleep_until(due.into()).await;
                let sent = sys::mono_ns();
                let data = json!({"id": format!("agent-{round}"), "status": "busy", "sent_ns": sent});
                let req = match kind {
                    Kind::Pulse => http
                        .post(format!("http://{addr}/v1/ingest"))
                        .bearer_auth(token)
                        .json(&json!([{"type": "agent.status_changed", "data": data}])),
                    Kind::SocketIo => http.post(format!("http://{addr}/ingest")).json(
                        &json!({"tenant": tenant_name(t), "events": [{"type": "agent.status_changed", "data": data}]}),
                    ),
                };
                reqs.push(tokio::spawn(async move {
                    let r = req.send().await?;
                    anyhow::ensure!(r.status().is_success(), "ingest: {}", r.status());
                    let _ = r.bytes().await?;
                    anyhow::Ok(())
                }));
            }
            for r in reqs {
                r.await??;
            }
        }
        let expected = rounds * clients as u64;
        let wait_until = Instant::now() + Duration::from_secs(10);
        while delivered.load(Ordering::Acquire) < expected && Instant::now() < wait_until {
            usage.sample();
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let server_usage = usage.finish();
        let generator_cores = generator.finish().cores;
        let _ = stop_tx.send(true);
        let mut latency = Latency::new();
        for t in tasks {
            if let Ok(Ok(samples)) = t.await {
                for ns in samples {
                    latency.record_ns(ns);
                }
            }
        }
        anyhow::Ok(Case {
            server: if kind == Kind::Pulse { PULSE } else { NODE }.into(),
            clients,
            tenants,
            rate_per_tenant: rate,
            seconds,
            expected,
            delivered: delivered.load(Ordering::Acquire),
            connect_s,
            latency: latency.summary(),
            server_usage,
            generator_cores,
            server_idle_mib: idle,
            skipped: None,
        })
    });
    // Close every client before the server goes (the runtime drop aborts them).
    drop(rt);
    server.stop(Duration::from_secs(5));
    result
}

/// A client's WebSocket.
pub(crate) type Ws = tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>;

/// Open a WebSocket to `addr` from `source` (a loopback address), with a bearer token.
pub(crate) async fn open(
    addr: SocketAddr,
    source: IpAddr,
    path: &str,
    token: Option<&str>,
) -> anyhow::Result<Ws> {
    let socket = TcpSocket::new_v4()?;
    socket.bind(SocketAddr::new(source, 0))?;
    let tcp = socket.connect(addr).await?;
    tcp.set_nodelay(true)?;
    let mut req = format!("ws://{addr}{path}").into_client_request()?;
    if let Some(t) = token {
        req.headers_mut()
            .insert("Authorization", format!("Bearer {t}").parse()?);
    }
    let (ws, _) = tokio_tungstenite::client_async(req, tcp).await?;
    Ok(ws)
}

/// Returns the latencies (ns) of the events this client received.
#[allow(clippy::too_many_arguments)]
async fn client(
    kind: Kind,
    addr: SocketAddr,
    source: IpAddr,
    tenant: String,
    delivered: Arc<AtomicU64>,
    connected: Arc<AtomicU64>,
    gate: Arc<Semaphore>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> anyhow::Result<Vec<u64>> {
    let permit = gate.acquire_owned().await?;
    let mut ws = match kind {
        Kind::Pulse => {
            let token = harness::token(&tenant, Role::Viewer);
            let mut ws = open(addr, source, "/v1/stream", Some(&token)).await?;
            let _hello = ws.next().await;
            let sub = ClientFrame::Subscribe {
                stream: None,
                since: None,
                epoch: None,
            };
            ws.send(Message::text(sub.encode())).await?;
            loop {
                let Some(Ok(Message::Text(t))) = ws.next().await else {
                    anyhow::bail!("closed before subscribed");
                };
                if t.as_str().contains("\"subscribed\"") {
                    break;
                }
            }
            ws
        }
        Kind::SocketIo => {
            let mut ws = open(addr, source, "/socket.io/?EIO=4&transport=websocket", None).await?;
            // Engine.IO open packet, then connect the default namespace with auth.
            let _open = ws.next().await;
            ws.send(Message::text(format!("40{}", json!({"tenant": tenant}))))
                .await?;
            loop {
                let Some(Ok(Message::Text(t))) = ws.next().await else {
                    anyhow::bail!("closed before the namespace connected");
                };
                if t.as_str().starts_with("40") {
                    break;
                }
            }
            ws
        }
    };
    drop(permit);
    connected.fetch_add(1, Ordering::AcqRel);
    let mut samples = Vec::new();
    loop {
        let msg = tokio::select! {
            m = ws.next() => m,
            _ = stop.changed() => break,
        };
        let Some(Ok(msg)) = msg else { break };
        let Message::Text(text) = msg else { continue };
        let now = sys::mono_ns();
        let text = text.as_str();
        let sent = match kind {
            Kind::Pulse => match ServerFrame::decode(text) {
                Ok(ServerFrame::Event(e)) => e.data.get("sent_ns").and_then(Value::as_u64),
                Ok(ServerFrame::Ping { ts }) => {
                    ws.send(Message::text(ClientFrame::Pong { ts }.encode()))
                        .await?;
                    None
                }
                _ => None,
            },
            Kind::SocketIo => {
                if text == "2" {
                    ws.send(Message::text("3")).await?;
                    None
                } else if let Some(body) = text.strip_prefix("42") {
                    let v: Value = serde_json::from_str(body)?;
                    v.get(1)
                        .and_then(|d| d.get("sent_ns"))
                        .and_then(Value::as_u64)
                } else {
                    None
                }
            }
        };
        if let Some(sent) = sent {
            samples.push(now.saturating_sub(sent));
            delivered.fetch_add(1, Ordering::AcqRel);
        }
    }
    let _ = ws.close(None).await;
    Ok(samples)
}
