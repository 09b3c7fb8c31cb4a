//! Benchmark 1, core ingest: how many events per second a client decodes,
//! applies to its SQLite cache and emits to a subscriber, on one core.
//!
//! The measured client is always a separate process pinned to CPU 1; its
//! server is pinned to CPU 0. Every client counts from before it opens the
//! connection to the N-th event processed. Rows:
//!
//! - **Pulse native ← frame server**: the session actor (`SessionHandle`, current-
//!   thread runtime, `SqliteStore`) fed pre-encoded native frames by a minimal
//!   WebSocket server, so the figure is the client's own ceiling;
//! - **Pulse native ← gateway replay**: the same client replaying N events from
//!   the reference gateway's log (memory store);
//! - **socket.io-client (Node)**, **Pulse socketio transport** (decode only) and
//!   **Pulse session over Socket.IO** (profile → SQLite): all three receive the same
//!   stream from the same Node Socket.IO 4 server. That server writes the
//!   frames `socket.emit` would produce (byte for byte), pre-encoded and 256 per
//!   write, so that it is never the bottleneck: with `socket.emit` per event Node
//!   tops out near 200,000 small events/s on this machine, below what the
//!   clients can take, and every client would measure the server.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use pulse_core::auth::{Secret, StaticToken};
use pulse_core::profile::{Profile, ProfileDialect, VarValue};
use pulse_core::session::{SessionConfig, SessionEvent, SessionHandle};
use pulse_core::store::StoreHandle;
use pulse_core::store::{Cursor, SqliteStore, Store};
use pulse_core::transport::socketio::{
    SioIncoming, SocketIoClient, SocketIoOptions, TransportKind,
};
use pulse_protocol::auth::Role;
use pulse_protocol::frame::{Hello, Subscribed};
use pulse_protocol::ServerFrame;
use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio::sync::broadcast::error::RecvError;
use tokio_tungstenite::tungstenite::Message;

use crate::harness::{self, Ctx, GatewayOpts, TENANT};
use crate::stats::median;
use crate::sys;
use crate::workload::{FrameBuilder, Size};

/// What one client run reports.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ClientRun {
    /// Events processed.
    pub events: u64,
    /// Wall time, connect to the last event, seconds.
    pub wall_s: f64,
    /// CPU time of the client process in that window, seconds.
    pub cpu_s: f64,
    /// Peak resident memory of the client, MiB.
    pub rss_peak_mib: f64,
}

/// One row of the ingest table.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Row {
    /// Client and source.
    pub client: String,
    /// `small` / `large`.
    pub size: Size,
    /// Whether the client persists to SQLite.
    pub persisted: bool,
    /// Events per run.
    pub events: u64,
    /// Median events/s (wall) over the runs.
    pub events_per_s: f64,
    /// Median events per CPU-second of the client.
    pub events_per_cpu_s: f64,
    /// Median peak RSS, MiB.
    pub rss_peak_mib: f64,
    /// Each run's events/s.
    pub runs: Vec<f64>,
    /// Why it was not measured, if it was not.
    pub skipped: Option<String>,
}

/// Result of the ingest benchmark.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IngestResult {
    /// Runs per row.
    pub repeats: usize,
    /// Mean encoded frame size per size class, bytes.
    pub frame_bytes: Vec<(Size, f64)>,
    /// The rows.
    pub rows: Vec<Row>,
}

fn row(client: &str, size: Size, persisted: bool, n: u64, runs: &[ClientRun]) -> Row {
    let rates: Vec<f64> = runs.iter().map(|r| r.events as f64 / r.wall_s).collect();
    let cpu: Vec<f64> = runs
        .iter()
        .map(|r| r.events as f64 / r.cpu_s.max(1e-9))
        .collect();
    let rss: Vec<f64> = runs.iter().map(|r| r.rss_peak_mib).collect();
    Row {
        client: client.into(),
        size,
        persisted,
        events: n,
        events_per_s: median(&rates),
        events_per_cpu_s: median(&cpu),
        rss_peak_mib: median(&rss),
        runs: rates,
        skipped: None,
    }
}

fn skipped(client: &str, size: Size, persisted: bool, why: String) -> Row {
    Row {
        client: client.into(),
        size,
        persisted,
        events: 0,
        events_per_s: 0.0,
        events_per_cpu_s: 0.0,
        rss_peak_mib: 0.0,
        runs: Vec::new(),
        skipped: Some(why),
    }
}

/// Row names, in report order.
pub const NATIVE_FRAMES: &str = "Pulse session, native ← frame server";
/// Gateway replay row.
pub const NATIVE_GATEWAY: &str = "Pulse session, native ← gateway replay";
/// socket.io-client row.
pub const SIO_NODE: &str = "socket.io-client (Node), receive only";
/// Pulse socketio transport row.
pub const SIO_RAW: &str = "Pulse socketio transport, decode only";
/// Pulse session over Socket.IO row.
pub const SIO_SESSION: &str = "Pulse session over Socket.IO → SQLite";

/// Run the ingest benchmark.
pub fn run(ctx: &Ctx) -> anyhow::Result<IngestResult> {
    let repeats = ctx.mode.pick(1, 2, 3);
    let (server_cpu, client_cpu) = ctx.cpus();
    crate::workload::write_files(&ctx.work)?;
    let mut rows = Vec::new();
    let mut frame_bytes = Vec::new();
    for size in [Size::Small, Size::Large] {
        let n: u64 = match size {
            Size::Small => ctx.mode.pick(2_000, 100_000, 200_000),
            Size::Large => ctx.mode.pick(500, 20_000, 50_000),
        };
        frame_bytes.push((size, FrameBuilder::new(size, TENANT).mean_frame_bytes()));
        eprintln!("ingest: {} payloads, {n} events × {repeats}", size.as_str());

        // Native, from the frame server (in this process, on the server CPU).
        let server = FrameServer::start(size, n, server_cpu)?;
        let mut runs = Vec::new();
        for r in 0..repeats {
            let cache = ctx.path(&format!("ingest-native-{}-{r}.db", size.as_str()));
            let args = vec![
                "ingest-native".into(),
                "--url".into(),
                format!("http://{}", server.addr),
                "--n".into(),
                n.to_string(),
                "--cache".into(),
                cache.display().to_string(),
            ];
            let mut p = ctx.child("ingest-native", &args, client_cpu)?;
            runs.push(harness::parse_result::<ClientRun>(
                &p.finish(Duration::from_secs(300))?,
            )?);
            let _ = std::fs::remove_file(&cache);
        }
        drop(server);
        rows.push(row(NATIVE_FRAMES, size, true, n, &runs));

        // Native, replayed by the gateway.
        let (mut gw, url) = ctx.gateway(
            &GatewayOpts {
                retain: n.max(1000),
                client_queue: 65_536,
                ..Default::default()
            },
            server_cpu,
        )?;
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let epoch = rt.block_on(async {
            let http = reqwest::Client::new();
            let publisher = harness::token(TENANT, Role::Publisher);
            harness::ingest_all(
                &http,
                &url,
                &publisher,
                (0..n as usize).map(|i| {
                    let t = crate::workload::template(size, i % crate::workload::TEMPLATES);
                    json!({"type": t.event_type, "data": t.data})
                }),
            )
            .await
        })?;
        let mut runs = Vec::new();
        for r in 0..repeats {
            let cache = ctx.path(&format!("ingest-gw-{}-{r}.db", size.as_str()));
            let args = vec![
                "ingest-native".into(),
                "--url".into(),
                url.clone(),
                "--n".into(),
                n.to_string(),
                "--cache".into(),
                cache.display().to_string(),
                "--epoch".into(),
                epoch.clone(),
            ];
            let mut p = ctx.child("ingest-native", &args, client_cpu)?;
            runs.push(harness::parse_result::<ClientRun>(
                &p.finish(Duration::from_secs(300))?,
            )?);
            let _ = std::fs::remove_file(&cache);
        }
        gw.stop(Duration::from_secs(5));
        rows.push(row(NATIVE_GATEWAY, size, true, n, &runs));

        // The Socket.IO comparisons, one server for all three clients.
        let sio = ctx.node(
            "sio-server",
            "sio-server.js",
            &[
                "--workloads".into(),
                ctx.work.display().to_string(),
                "--blast".into(),
                n.to_string(),
            ],
            server_cpu,
        )?;
        let Some(mut sio) = sio else {
            let why = "node or benches/peers/node_modules missing".to_string();
            rows.push(skipped(SIO_NODE, size, false, why.clone()));
            rows.push(skipped(SIO_RAW, size, false, why.clone()));
            rows.push(skipped(SIO_SESSION, size, true, why));
            continue;
        };
        let port = sio.wait_line("listening ", Duration::from_secs(30))?;
        let sio_url = format!("http://127.0.0.1:{port}");
        let (mut node_runs, mut raw_runs, mut session_runs) = (Vec::new(), Vec::new(), Vec::new());
        for r in 0..repeats {
            // Interleaved, so drift on the machine hits every client alike.
            let mut p = ctx
                .node(
                    "sio-client",
                    "sio-client.js",
                    &[
                        "--url".into(),
                        sio_url.clone(),
                        "--n".into(),
                        n.to_string(),
                        "--workload".into(),
                        size.as_str().into(),
                    ],
                    client_cpu,
                )?
                .expect("node checked above");
            node_runs.push(harness::parse_result::<ClientRun>(
                &p.finish(Duration::from_secs(300))?,
            )?);
            let args = vec![
                "ingest-sio-raw".into(),
                "--url".into(),
                sio_url.clone(),
                "--n".into(),
                n.to_string(),
                "--workload".into(),
                size.as_str().into(),
            ];
            let mut p = ctx.child("ingest-sio-raw", &args, client_cpu)?;
            raw_runs.push(harness::parse_result::<ClientRun>(
                &p.finish(Duration::from_secs(300))?,
            )?);
            let cache = ctx.path(&format!("ingest-sio-{}-{r}.db", size.as_str()));
            let args = vec![
                "ingest-sio-session".into(),
                "--url".into(),
                sio_url.clone(),
                "--n".into(),
                n.to_string(),
                "--workload".into(),
                size.as_str().into(),
                "--cache".into(),
                cache.display().to_string(),
            ];
            let mut p = ctx.child("ingest-sio-session", &args, client_cpu)?;
            session_runs.push(harness::parse_result::<ClientRun>(
                &p.finish(Duration::from_secs(300))?,
            )?);
            let _ = std::fs::remove_file(&cache);
        }
        sio.stop(Duration::from_secs(2));
        rows.push(row(SIO_NODE, size, false, n, &node_runs));
        rows.push(row(SIO_RAW, size, false, n, &raw_runs));
        rows.push(row(SIO_SESSION, size, true, n, &session_runs));
    }
    Ok(IngestResult {
        repeats,
        frame_bytes,
        rows,
    })
}

/// A WebSocket server that speaks just enough of the native protocol to stream
/// N pre-encoded events to each client: `hello`, `subscribed` (recovered), the
/// events, then it waits for the client to close.
pub struct FrameServer {
    /// Bound address.
    pub addr: std::net::SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl FrameServer {
    /// Start on its own thread (pinned to `cpu`) with a current-thread runtime.
    pub fn start(size: Size, n: u64, cpu: Option<usize>) -> anyhow::Result<FrameServer> {
        let std_listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        std_listener.set_nonblocking(true)?;
        let addr = std_listener.local_addr()?;
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let builder = Arc::new(FrameBuilder::new(size, TENANT));
        let thread = std::thread::spawn(move || {
            if let Some(c) = cpu {
                sys::pin_current_thread(c);
            }
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(std_listener).expect("listener");
                let accept = async {
                    loop {
                        let Ok((tcp, _)) = listener.accept().await else {
                            continue;
                        };
                        let _ = tcp.set_nodelay(true);
                        let b = builder.clone();
                        tokio::spawn(async move {
                            let _ = serve_frames(tcp, &b, n).await;
                        });
                    }
                };
                tokio::select! {
                    _ = accept => {}
                    _ = stop_rx => {}
                }
            });
        });
        Ok(FrameServer {
            addr,
            stop: Some(stop_tx),
            thread: Some(thread),
        })
    }
}

impl Drop for FrameServer {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

async fn serve_frames(tcp: tokio::net::TcpStream, b: &FrameBuilder, n: u64) -> anyhow::Result<()> {
    let mut ws = tokio_tungstenite::accept_async(tcp).await?;
    let hello = ServerFrame::Hello(Hello {
        version: 1,
        tenant: TENANT.into(),
        ping_interval_ms: 60_000,
        ping_timeout_ms: 60_000,
        server: "pulse-bench frame server".into(),
    });
    ws.send(Message::text(hello.encode())).await?;
    // Wait for the subscribe.
    while let Some(m) = ws.next().await {
        if let Message::Text(t) = m? {
            if t.as_str().contains("subscribe") {
                break;
            }
        }
    }
    let sub = ServerFrame::Subscribed(Subscribed {
        stream: TENANT.into(),
        epoch: "bench-epoch".into(),
        head: n,
        recovered: true,
        reason: None,
    });
    ws.send(Message::text(sub.encode())).await?;
    for seq in 1..=n {
        ws.feed(Message::text(b.frame(seq))).await?;
        if seq % 64 == 0 {
            ws.flush().await?;
        }
    }
    ws.flush().await?;
    // Keep the link until the client goes.
    while let Some(m) = ws.next().await {
        if m.is_err() {
            break;
        }
    }
    Ok(())
}

/// Arguments of the client roles.
#[derive(Debug, clap::Args)]
pub struct ClientArgs {
    /// Server base URL.
    #[arg(long)]
    url: String,
    /// Events to wait for.
    #[arg(long)]
    n: u64,
    /// Cache file (session roles).
    #[arg(long)]
    cache: Option<std::path::PathBuf>,
    /// Seed the cache's cursor at seq 0 of this epoch (gateway replay).
    #[arg(long)]
    epoch: Option<String>,
    /// Workload name the Socket.IO server should send.
    #[arg(long, default_value = "small")]
    workload: String,
}

fn finish_run(n: u64, t0: Instant, cpu0: Duration) -> ClientRun {
    ClientRun {
        events: n,
        wall_s: t0.elapsed().as_secs_f64(),
        cpu_s: (sys::process_cpu() - cpu0).as_secs_f64(),
        rss_peak_mib: sys::hwm_kib(sys::own_pid()).unwrap_or(0) as f64 / 1024.0,
    }
}

fn client_runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?)
}

/// Wait until the session has applied `n` events, counting what its broadcast
/// emits (the subscriber is what the UI pump would be).
async fn wait_applied(handle: &SessionHandle, n: u64) -> anyhow::Result<u64> {
    let mut rx = handle.subscribe();
    let status = handle.status();
    let mut emitted = 0u64;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(240);
    loop {
        if status.borrow().counters.events_applied >= n {
            return Ok(emitted);
        }
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Ok(SessionEvent::Applied { events, .. })) => emitted += events.len() as u64,
            Ok(Ok(_)) => {}
            Ok(Err(RecvError::Lagged(_))) => {}
            Ok(Err(RecvError::Closed)) => anyhow::bail!("session ended"),
            Err(_) => anyhow::bail!(
                "timed out: {} of {n} events applied; state {:?}",
                status.borrow().counters.events_applied,
                status.borrow().state
            ),
        }
    }
}

/// `ingest-native`: a session on the native protocol into a SQLite cache.
pub fn client_native(args: ClientArgs) -> anyhow::Result<()> {
    let rt = client_runtime()?;
    let run = rt.block_on(async {
        let cache = args.cache.as_ref().context_missing("--cache")?;
        let mut store = SqliteStore::open(cache)?;
        if let Some(epoch) = &args.epoch {
            store.replace_all(
                TENANT,
                &Cursor {
                    epoch: epoch.clone(),
                    seq: 0,
                },
                &[],
            )?;
        }
        let store = StoreHandle::new(store);
        let config = SessionConfig::new(args.url.parse()?);
        let tokens = Arc::new(StaticToken::new(Secret::new(harness::token(
            TENANT,
            Role::Viewer,
        ))));
        let cpu0 = sys::process_cpu();
        let t0 = Instant::now();
        let handle = SessionHandle::spawn(config, tokens, store.clone())?;
        wait_applied(&handle, args.n).await?;
        let run = finish_run(args.n, t0, cpu0);
        let cursor = store.cursor(TENANT)?;
        anyhow::ensure!(
            cursor.as_ref().map(|c| c.seq) == Some(args.n),
            "cache cursor {cursor:?}, expected seq {}",
            args.n
        );
        handle.stop().await;
        anyhow::Ok(run)
    })?;
    harness::print_result(&run);
    Ok(())
}

/// `ingest-sio-raw`: Pulse's Socket.IO client, decode only.
pub fn client_sio_raw(args: ClientArgs) -> anyhow::Result<()> {
    let rt = client_runtime()?;
    let run = rt.block_on(async {
        let cpu0 = sys::process_cpu();
        let t0 = Instant::now();
        let mut opts = SocketIoOptions::new(args.url.parse()?);
        opts.transports = vec![TransportKind::WebSocket];
        let mut client = SocketIoClient::connect(opts).await?;
        client.emit("start", vec![json!({"workload": args.workload})])?;
        let mut got = 0u64;
        while got < args.n {
            match client.recv().await {
                SioIncoming::Event(e) => {
                    std::hint::black_box(&e);
                    got += 1;
                }
                other => anyhow::bail!("after {got} events: {other:?}"),
            }
        }
        let run = finish_run(args.n, t0, cpu0);
        client.close();
        anyhow::Ok(run)
    })?;
    harness::print_result(&run);
    Ok(())
}

/// The profile the Socket.IO session uses: the benchmark server's events are
/// native event names with native payloads, mapped like the native protocol.
pub const SIO_PROFILE: &str = r#"
name = "bench-socketio"
description = "pulse-bench Socket.IO server"
transport = "socketio"
caveat = "benchmark server: no replay"

[vars]
workload = "small"

[auth]
placement = "none"

[socket]
path = "/socket.io/"
namespace = "/"
transports = ["websocket"]

[heartbeat]
mode = "none"

[[join]]
emit = "start"
data = { workload = "{workload}" }

[[event]]
name = "agent.heartbeat"
op = "patch"
kind = "agent"
id = "/id"

[[event]]
name = "agent.status_changed"
op = "patch"
kind = "agent"
id = "/id"

[[event]]
name = "approval.created"
op = "upsert"
kind = "approval"
id = "/id"

[[event]]
name = "chat.message"
op = "upsert"
kind = "message"
id = "/id"

[[event]]
name = "ticket.created"
op = "upsert"
kind = "ticket"
id = "/id"

[[event]]
name = "ticket.updated"
op = "patch"
kind = "ticket"
id = "/id"
"#;

/// `ingest-sio-session`: a session over Socket.IO (profile) into a SQLite cache.
pub fn client_sio_session(args: ClientArgs) -> anyhow::Result<()> {
    let rt = client_runtime()?;
    let run = rt.block_on(async {
        let cache = args.cache.as_ref().context_missing("--cache")?;
        let store = StoreHandle::new(SqliteStore::open(cache)?);
        let profile = Profile::parse(SIO_PROFILE, "pulse-bench")?;
        let dialect =
            ProfileDialect::new(profile).with_var("workload", VarValue::One(args.workload.clone()));
        let mut config = SessionConfig::new(args.url.parse()?);
        config.dialect = Arc::new(dialect);
        let tokens = Arc::new(StaticToken::new(Secret::new(harness::token(
            TENANT,
            Role::Viewer,
        ))));
        let cpu0 = sys::process_cpu();
        let t0 = Instant::now();
        let handle = SessionHandle::spawn(config, tokens, store.clone())?;
        wait_applied(&handle, args.n).await?;
        let run = finish_run(args.n, t0, cpu0);
        handle.stop().await;
        anyhow::Ok(run)
    })?;
    harness::print_result(&run);
    Ok(())
}

trait ContextMissing<T> {
    fn context_missing(self, what: &str) -> anyhow::Result<T>;
}

impl<T> ContextMissing<T> for Option<T> {
    fn context_missing(self, what: &str) -> anyhow::Result<T> {
        self.ok_or_else(|| anyhow::anyhow!("{what} is required"))
    }
}
