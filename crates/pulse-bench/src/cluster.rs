//! Benchmark 8, the cluster: two server nodes on one Redis, side by side in one run.
//!
//! - **Pulse**: two gateway child processes on one `redis-server`
//!   (`--store redis://… --node-id a|b`): per-tenant Redis Streams, each node tailing
//!   what its clients follow.
//! - **Node**: two stock Socket.IO 4 servers (`benches/peers/sio-server.js --redis`)
//!   with `@socket.io/redis-streams-adapter` (pinned in the peers' lockfile) on a
//!   Redis of their own: one room per tenant, no auth, no log.
//!
//! What is measured, for each:
//! 1. delivery latency at 1,000 events/s in all: half the clients on each node
//!    (100 per tenant), every event published at node A, so the clients of node B
//!    get theirs through Redis; p99 over all deliveries, and per node;
//! 2. memory per connection on each node (`VmRSS` with the clients connected minus
//!    before any connected, divided by that node's clients);
//! 3. the reconnect herd: node B is SIGKILLed and its clients move to node A at once
//!    (Pulse's own failover does so; the harness's lean clients do it for both
//!    servers, so this measures the servers): the peak reconnect rate (the busiest
//!    100 ms window, per second) and the time until every client of B is back;
//! 4. one node's limit: a single node (on its Redis) takes idle connections up to a
//!    bound, or up to its own open-files limit less `FD_RESERVE` when that is lower;
//!    the most it held, its memory, descriptors and CPU there and the fan-out p99 at
//!    that count.
//!
//! The clients are held by worker processes (`crate::cluster_clients`, at most
//! `PER_WORKER` each), because each client is one descriptor and one process's
//! open-files limit may be below the run's count; they are spread over
//! 127.0.0.2–127.0.0.9 for the ephemeral ports. Every count and duration is bounded
//! and every address is loopback; `RLIMIT_NOFILE` is raised to its hard limit
//! in-process (and by `scripts/bench.sh`). On this machine generator, Redis and
//! both nodes share the CPUs: the figures are what one shared machine gives.

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use pulse_protocol::auth::Role;
use pulse_protocol::{ClientFrame, ServerFrame};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tokio::sync::Semaphore;
use tokio_tungstenite::tungstenite::Message;

use crate::cluster_clients::{Merged, Workers};
use crate::harness::{self, Ctx, GatewayOpts};
use crate::stats::Summary;
use crate::svg::fmt_num;
use crate::sys::{self, Proc};

/// Clients per tenant.
const PER_TENANT: usize = 100;
/// Source addresses the clients are spread over.
const SOURCES: u8 = 8;
/// Events per second, all tenants together, in the delivery measurement.
const EVENTS_PER_S: f64 = 1000.0;
/// Window of the herd's peak reconnect rate (100 ms).
const HERD_WINDOW_NS: u64 = 100_000_000;
/// Clients per worker process in a full run (each is one descriptor there).
const PER_WORKER: usize = 5_000;
/// Connections being opened at once, all workers together.
const GATE: usize = 128;
/// The open-files limit the run asks for (for itself and its children).
const NOFILE_WANT: u64 = 262_144;
/// Descriptors left to a node beyond its clients in the limit run.
const FD_RESERVE: u64 = 300;
/// Longest wait for a herd to be back.
const HERD_LIMIT: Duration = Duration::from_secs(120);

/// Memory of one node.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct NodeMemory {
    /// `a` or `b`.
    pub node: String,
    /// Its clients.
    pub clients: usize,
    /// `VmRSS` before any client, MiB.
    pub idle_mib: f64,
    /// `VmRSS` with its clients connected and idle, MiB.
    pub connected_mib: f64,
}

impl NodeMemory {
    /// KiB per connection.
    pub fn per_conn_kib(&self) -> f64 {
        (self.connected_mib - self.idle_mib).max(0.0) * 1024.0 / self.clients.max(1) as f64
    }
}

/// The reconnect herd after node B was killed.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Herd {
    /// Clients that were on node B.
    pub moved: usize,
    /// Of those, how many were back (on node A) within the bound.
    pub back: usize,
    /// Peak reconnect rate: the most reconnects completed in any 100 ms window,
    /// per second (a herd that is back within a second still shows its rate).
    pub peak_per_s: f64,
    /// Seconds from the kill until the last one was back.
    pub all_back_s: f64,
    /// Why they moved to a standby node C rather than to node A, if they did.
    #[serde(default)]
    pub standby: Option<String>,
}

/// Two nodes of one server kind.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Pair {
    /// Server name.
    pub server: String,
    /// Clients, both nodes together.
    pub clients: usize,
    /// Tenants (rooms).
    pub tenants: usize,
    /// Events per second published, all tenants together.
    pub events_per_s: f64,
    /// Seconds of publishing.
    pub seconds: f64,
    /// Deliveries expected.
    pub expected: u64,
    /// Deliveries received.
    pub delivered: u64,
    /// Seconds to connect every client.
    pub connect_s: f64,
    /// Worker processes holding the clients.
    #[serde(default)]
    pub workers: usize,
    /// Every delivery.
    pub latency: Summary,
    /// Deliveries to the clients of node A (where events are published).
    pub latency_a: Summary,
    /// Deliveries to the clients of node B (through Redis).
    pub latency_b: Summary,
    /// Memory of each node.
    pub nodes: Vec<NodeMemory>,
    /// After node B was killed.
    pub herd: Herd,
    /// Why it was not measured, if it was not.
    pub skipped: Option<String>,
}

/// One node's limit.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Limit {
    /// Server name.
    pub server: String,
    /// The bound this run asked for (`PULSE_BENCH_CLUSTER_LIMIT`).
    #[serde(default)]
    pub bound: usize,
    /// Connections tried: the bound, or less where the node's descriptor limit
    /// leaves less room (`cap` says so).
    pub tried: usize,
    /// Why `tried` is below `bound`, if it is.
    #[serde(default)]
    pub cap: Option<String>,
    /// Connections held at once.
    pub held: usize,
    /// Worker processes holding the clients.
    #[serde(default)]
    pub workers: usize,
    /// Why it stopped below `tried`, if it did.
    pub stopped_by: Option<String>,
    /// Memory of the node there.
    pub memory: NodeMemory,
    /// The node process's open-files limit (0: unknown or unlimited).
    #[serde(default)]
    pub nofile: u64,
    /// Descriptors open in the node with the connections held.
    #[serde(default)]
    pub fds: u64,
    /// CPU cores the node used holding them idle (over one second).
    #[serde(default)]
    pub idle_cores: f64,
    /// CPU cores the node used during the fan-out.
    #[serde(default)]
    pub fanout_cores: f64,
    /// The machine's `MemAvailable` with the connections held, MiB.
    #[serde(default)]
    pub mem_available_mib: f64,
    /// Fan-out at that count: one event per second per tenant.
    pub latency: Summary,
    /// Deliveries expected and received in that fan-out.
    pub expected: u64,
    /// Received.
    pub delivered: u64,
    /// Why it was not measured, if it was not.
    pub skipped: Option<String>,
}

/// Result of the cluster benchmark.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ClusterResult {
    /// Two nodes of each server kind.
    pub pairs: Vec<Pair>,
    /// One node of each.
    pub limits: Vec<Limit>,
    /// The open-files hard limit every process of the run had (the harness, its
    /// client workers, the nodes): one descriptor per connection on each side.
    #[serde(default)]
    pub nofile: u64,
    /// Clients per worker process, at most.
    #[serde(default)]
    pub per_worker: usize,
    /// Why it could not be raised to `NOFILE_WANT`, if it could not.
    #[serde(default)]
    pub nofile_refused: Option<String>,
}

/// Pulse's name in the report.
pub const PULSE: &str = "Pulse gateway ×2 on Redis";
/// Node's name in the report.
pub const NODE: &str = "Socket.IO 4 ×2, redis-streams-adapter";

/// A server kind (and the protocol its clients speak).
#[derive(Clone, Copy, PartialEq, Debug, clap::ValueEnum)]
pub(crate) enum Kind {
    /// The Pulse gateway, native protocol.
    Pulse,
    /// Socket.IO 4.
    SocketIo,
}

impl Kind {
    /// Its `--kind` value.
    pub(crate) fn arg(self) -> &'static str {
        match self {
            Kind::Pulse => "pulse",
            Kind::SocketIo => "socket-io",
        }
    }

    fn name(self) -> &'static str {
        match self {
            Kind::Pulse => PULSE,
            Kind::SocketIo => NODE,
        }
    }
}

fn env_count(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(default)
}

/// Run it.
pub fn run(ctx: &Ctx) -> anyhow::Result<ClusterResult> {
    let clients = env_count(
        "PULSE_BENCH_CLUSTER_CLIENTS",
        ctx.mode.pick(200, 2_000, 20_000),
    );
    let bound = env_count(
        "PULSE_BENCH_CLUSTER_LIMIT",
        ctx.mode.pick(300, 2_000, 40_000),
    );
    let seconds = ctx.mode.pick(1.0, 5.0, 15.0);
    let rate = ctx.mode.pick(100.0, EVENTS_PER_S, EVENTS_PER_S);
    // Children inherit the limit: raise it for them if this process may.
    let nofile_refused = sys::raise_nofile_hard(NOFILE_WANT).err().map(|e| {
        format!(
            "raising it to {} was refused, {e}: beyond the hard limit that needs CAP_SYS_RESOURCE",
            fmt_num(NOFILE_WANT as f64)
        )
    });
    let nofile = sys::nofile().1;
    eprintln!(
        "cluster: open-files hard limit {nofile}{}",
        nofile_refused
            .as_deref()
            .map_or(String::new(), |w| format!("; {w}"))
    );
    let mut pairs = Vec::new();
    let mut limits = Vec::new();
    for kind in [Kind::Pulse, Kind::SocketIo] {
        eprintln!("cluster: {}, {clients} clients", kind.name());
        let pair = match pair(ctx, kind, clients, rate, seconds) {
            Ok(p) => p,
            Err(e) if kind == Kind::SocketIo => {
                eprintln!("cluster: {} not measured: {e:#}", kind.name());
                skipped_pair(kind, clients, rate, seconds, format!("{e:#}"))
            }
            Err(e) => return Err(e),
        };
        eprintln!(
            "cluster: {} delivered {} of {}, p99 {:.2} ms (A {:.2}, B {:.2}); per conn A {:.1} KiB, B {:.1} KiB; herd {} of {} back in {:.2} s, peak {:.0}/s",
            pair.server,
            pair.delivered,
            pair.expected,
            pair.latency.p99_ms,
            pair.latency_a.p99_ms,
            pair.latency_b.p99_ms,
            pair.nodes.first().map_or(0.0, NodeMemory::per_conn_kib),
            pair.nodes.get(1).map_or(0.0, NodeMemory::per_conn_kib),
            pair.herd.back,
            pair.herd.moved,
            pair.herd.all_back_s,
            pair.herd.peak_per_s
        );
        pairs.push(pair);
        std::thread::sleep(Duration::from_millis(500));
        eprintln!("cluster: {} limit, up to {bound} connections", kind.name());
        let limit = match limit(ctx, kind, bound, seconds) {
            Ok(l) => l,
            Err(e) if kind == Kind::SocketIo => Limit {
                server: kind.name().replace("×2", "×1"),
                bound,
                tried: bound,
                skipped: Some(format!("{e:#}")),
                ..Limit::default()
            },
            Err(e) => return Err(e),
        };
        if let Some(cap) = &limit.cap {
            eprintln!("cluster: {} bound {cap}", limit.server);
        }
        eprintln!(
            "cluster: {} held {} of {} ({:.1} KiB each), {} of {} descriptors open, {:.2} cores idle, {:.2} in fan-out, fan-out p99 {:.2} ms",
            limit.server,
            limit.held,
            limit.tried,
            limit.memory.per_conn_kib(),
            limit.fds,
            limit.nofile,
            limit.idle_cores,
            limit.fanout_cores,
            limit.latency.p99_ms
        );
        limits.push(limit);
        std::thread::sleep(Duration::from_millis(500));
    }
    Ok(ClusterResult {
        pairs,
        limits,
        nofile,
        per_worker: per_worker(ctx),
        nofile_refused,
    })
}

fn skipped_pair(kind: Kind, clients: usize, rate: f64, seconds: f64, why: String) -> Pair {
    Pair {
        server: kind.name().into(),
        clients,
        tenants: clients.div_ceil(PER_TENANT).max(1),
        events_per_s: rate,
        seconds,
        expected: 0,
        delivered: 0,
        connect_s: 0.0,
        workers: 0,
        latency: Summary::default(),
        latency_a: Summary::default(),
        latency_b: Summary::default(),
        nodes: Vec::new(),
        herd: Herd::default(),
        skipped: Some(why),
    }
}

/// A `redis-server` of its own on a free loopback port (no persistence), answering.
fn redis(ctx: &Ctx) -> anyhow::Result<(Proc, u16)> {
    let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let dir = ctx.path(&format!("redis-{port}"));
    std::fs::create_dir_all(&dir)?;
    let mut cmd = std::process::Command::new("redis-server");
    cmd.args([
        "--port",
        &port.to_string(),
        "--bind",
        "127.0.0.1",
        "--save",
        "",
    ])
    .arg("--dir")
    .arg(&dir);
    let p = Proc::spawn("redis-server", cmd, Some(&ctx.log))
        .map_err(|e| anyhow::anyhow!("redis-server (Debian package redis-server): {e:#}"))?;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let pong = TcpStream::connect(("127.0.0.1", port)).and_then(|mut s| {
            s.set_read_timeout(Some(Duration::from_secs(1)))?;
            s.write_all(b"PING\r\n")?;
            let mut buf = [0u8; 16];
            let n = s.read(&mut buf)?;
            Ok(buf[..n].starts_with(b"+PONG"))
        });
        if matches!(pong, Ok(true)) {
            return Ok((p, port));
        }
        anyhow::ensure!(Instant::now() < deadline, "redis-server did not answer");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Start one node of `kind` on the Redis at `port`.
fn node(ctx: &Ctx, kind: Kind, port: u16, id: &str) -> anyhow::Result<(Proc, SocketAddr)> {
    let redis = format!("redis://127.0.0.1:{port}");
    match kind {
        Kind::Pulse => {
            let opts = GatewayOpts {
                store: redis,
                node_id: Some(id.into()),
                ..GatewayOpts::default()
            };
            let (p, url) = ctx.gateway(&opts, None)?;
            Ok((p, url.trim_start_matches("http://").parse()?))
        }
        Kind::SocketIo => {
            let args = ["--redis".to_owned(), redis];
            let Some(mut p) = ctx.node(&format!("sio-{id}"), "sio-server.js", &args, None)? else {
                anyhow::bail!("node or benches/peers/node_modules missing");
            };
            let port: u16 = p
                .wait_line("listening ", Duration::from_secs(30))?
                .parse()?;
            Ok((p, SocketAddr::from(([127, 0, 0, 1], port))))
        }
    }
}

fn tenant_name(t: usize) -> String {
    format!("c{t:03}")
}

/// What the clients of one worker process share.
#[derive(Default)]
pub(crate) struct Shared {
    /// Clients connected (first connection).
    pub(crate) connected: AtomicU64,
    /// Clients that could not connect.
    pub(crate) failed: AtomicU64,
    /// Deliveries recorded.
    pub(crate) delivered: AtomicU64,
    /// When each reconnect completed (`sys::mono_ns`).
    pub(crate) reconnected: Mutex<Vec<u64>>,
    /// After this (`mono_ns`), latencies are not recorded (0: always).
    pub(crate) record_until: AtomicU64,
}

/// One client's deliveries: (its home node, latencies in ns).
pub(crate) type Samples = (usize, Vec<u64>);

/// One run's clients (held by worker processes, see `crate::cluster_clients`)
/// and the runtime the harness publishes from.
struct Load {
    rt: tokio::runtime::Runtime,
    workers: Workers,
}

impl Load {
    /// Start workers holding `clients` clients, client `i` homed on
    /// `nodes[i % 2]` (the other node, or `failover_b` for B's clients, is where
    /// it moves when its own is gone), and wait until each is connected or failed,
    /// for at most `limit`.
    fn connect(
        ctx: &Ctx,
        kind: Kind,
        nodes: [SocketAddr; 2],
        failover_b: Option<SocketAddr>,
        clients: usize,
        tenants: usize,
        limit: Duration,
    ) -> anyhow::Result<(Load, f64)> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()?;
        let t = Instant::now();
        let workers = Workers::start(
            ctx,
            kind,
            nodes,
            failover_b,
            clients,
            tenants,
            per_worker(ctx),
            GATE,
        )?;
        let deadline = Instant::now() + limit;
        loop {
            if let Some(why) = workers.gone() {
                anyhow::bail!("a client worker is gone: {why}");
            }
            let done = workers.connected() + workers.failed();
            if done >= clients as u64 || Instant::now() > deadline {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let secs = t.elapsed().as_secs_f64();
        Ok((Load { rt, workers }, secs))
    }

    fn connected(&self) -> usize {
        self.workers.connected() as usize
    }

    /// Publish at node `at` for `seconds`: `rate` events per second over all
    /// tenants, one tenant after another. Returns the deliveries expected.
    fn publish(
        &self,
        kind: Kind,
        at: SocketAddr,
        tenants: usize,
        per_tenant: &[usize],
        rate: f64,
        seconds: f64,
    ) -> anyhow::Result<u64> {
        let total = (rate * seconds).round() as u64;
        let interval = Duration::from_secs_f64(1.0 / rate);
        let tokens: Vec<String> = (0..tenants)
            .map(|t| harness::token(&tenant_name(t), Role::Publisher))
            .collect();
        let expected: u64 = (0..total)
            .map(|k| per_tenant[(k as usize) % tenants] as u64)
            .sum();
        self.rt.block_on(async move {
            // Idle pooled connections are dropped before Node's 5 s keep-alive
            // timeout closes them under a request (a reset, not the server's answer).
            let http = reqwest::Client::builder()
                .tcp_nodelay(true)
                .pool_idle_timeout(Duration::from_secs(1))
                .build()?;
            // At most this many requests in flight: a server that falls behind is
            // not also flooded with new connections (Node's backlog resets them).
            let in_flight = Arc::new(Semaphore::new(256));
            let start = Instant::now();
            let mut reqs = Vec::new();
            for k in 0..total {
                tokio::time::sleep_until((start + interval.mul_f64(k as f64)).into()).await;
                let t = (k as usize) % tenants;
                let data = json!({"id": format!("agent-{}", k % 50), "status": "busy", "sent_ns": sys::mono_ns()});
                let req = match kind {
                    Kind::Pulse => http
                        .post(format!("http://{at}/v1/ingest"))
                        .bearer_auth(&tokens[t])
                        .json(&json!([{"type": "agent.status_changed", "data": data}])),
                    Kind::SocketIo => http.post(format!("http://{at}/ingest")).json(
                        &json!({"tenant": tenant_name(t), "events": [{"type": "agent.status_changed", "data": data}]}),
                    ),
                };
                let permit = in_flight.clone().acquire_owned().await?;
                reqs.push(tokio::spawn(async move {
                    let _permit = permit;
                    let r = req.send().await?;
                    anyhow::ensure!(r.status().is_success(), "ingest: {}", r.status());
                    let _ = r.bytes().await?;
                    anyhow::Ok(())
                }));
            }
            for r in reqs {
                r.await??;
            }
            anyhow::Ok(())
        })?;
        Ok(expected)
    }

    /// Wait until `expected` deliveries arrived (at most 10 s more).
    fn drain(&self, expected: u64) {
        let until = Instant::now() + Duration::from_secs(10);
        while self.workers.delivered() < expected && Instant::now() < until {
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Stop every client: the latencies of all, of node A's and of node B's, and
    /// the reconnect times.
    fn finish(self) -> anyhow::Result<Merged> {
        let merged = self.workers.finish()?;
        drop(self.rt);
        Ok(merged)
    }
}

/// Clients per worker process (smaller runs still use several workers).
fn per_worker(ctx: &Ctx) -> usize {
    ctx.mode.pick(100, 1_000, PER_WORKER)
}

fn per_tenant(clients: usize, tenants: usize) -> Vec<usize> {
    (0..tenants)
        .map(|t| (0..clients).filter(|i| i % tenants == t).count())
        .collect()
}

fn rss_mib(p: &Proc) -> f64 {
    sys::rss_kib(p.pid()).unwrap_or(0) as f64 / 1024.0
}

fn pair(ctx: &Ctx, kind: Kind, clients: usize, rate: f64, seconds: f64) -> anyhow::Result<Pair> {
    let (_redis, port) = redis(ctx)?;
    let (node_a, addr_a) = node(ctx, kind, port, "a")?;
    let (mut node_b, addr_b) = node(ctx, kind, port, "b")?;
    let tenants = clients.div_ceil(PER_TENANT).max(1);
    let (idle_a, idle_b) = (rss_mib(&node_a), rss_mib(&node_b));
    // After B's kill node A would hold every client: where its open-files limit
    // leaves no room for that, B's clients move to a standby node C instead.
    let nofile_a = sys::proc_nofile(node_a.pid()).unwrap_or(u64::MAX);
    let fds_a = sys::proc_fds(node_a.pid()).unwrap_or(0);
    let standby = if (clients as u64).saturating_add(fds_a + FD_RESERVE) > nofile_a {
        let (c, addr_c) = node(ctx, kind, port, "c")?;
        let why = format!(
            "node A's open-files limit ({}) leaves no room for all {} clients",
            fmt_num(nofile_a as f64),
            fmt_num(clients as f64)
        );
        eprintln!("cluster: the herd goes to a standby node C: {why}");
        Some((c, addr_c, why))
    } else {
        None
    };
    let (mut load, connect_s) = Load::connect(
        ctx,
        kind,
        [addr_a, addr_b],
        standby.as_ref().map(|s| s.1),
        clients,
        tenants,
        Duration::from_secs(300),
    )?;
    anyhow::ensure!(
        load.connected() == clients,
        "only {} of {clients} clients connected",
        load.connected()
    );
    std::thread::sleep(Duration::from_millis(500));
    let on_b = clients / 2;
    let nodes = vec![
        NodeMemory {
            node: "a".into(),
            clients: clients - on_b,
            idle_mib: idle_a,
            connected_mib: rss_mib(&node_a),
        },
        NodeMemory {
            node: "b".into(),
            clients: on_b,
            idle_mib: idle_b,
            connected_mib: rss_mib(&node_b),
        },
    ];
    let expected = load.publish(
        kind,
        addr_a,
        tenants,
        &per_tenant(clients, tenants),
        rate,
        seconds,
    )?;
    load.drain(expected);
    let delivered = load.workers.delivered();
    // The herd: node B dies; its clients move to node A. Deliveries after this
    // (Pulse's replays from the cursors) are not latencies: every worker stops
    // recording first.
    load.workers.cutoff(sys::mono_ns())?;
    let killed = sys::mono_ns();
    node_b.kill();
    let deadline = Instant::now() + HERD_LIMIT;
    while load.workers.reconnected() < on_b as u64 && Instant::now() < deadline {
        if let Some(why) = load.workers.gone() {
            anyhow::bail!("a client worker is gone: {why}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let workers = load.workers.count();
    let merged = load.finish()?;
    let mut herd = herd_of(killed, on_b, merged.reconnected_ns);
    herd.standby = standby.map(|s| s.2);
    let (latency, latency_a, latency_b) = (merged.all, merged.a, merged.b);
    drop(node_a);
    Ok(Pair {
        server: kind.name().into(),
        clients,
        tenants,
        events_per_s: rate,
        seconds,
        expected,
        delivered,
        connect_s,
        workers,
        latency,
        latency_a,
        latency_b,
        nodes,
        herd,
        skipped: None,
    })
}

/// The herd's figures from the reconnect times (ns, `mono_ns`) after `killed`.
fn herd_of(killed: u64, moved: usize, mut times: Vec<u64>) -> Herd {
    times.sort_unstable();
    let mut peak = 0usize;
    let mut lo = 0;
    for hi in 0..times.len() {
        while times[hi] - times[lo] >= HERD_WINDOW_NS {
            lo += 1;
        }
        peak = peak.max(hi - lo + 1);
    }
    Herd {
        moved,
        back: times.len(),
        peak_per_s: peak as f64 * 1e9 / HERD_WINDOW_NS as f64,
        all_back_s: times
            .last()
            .map_or(0.0, |t| t.saturating_sub(killed) as f64 / 1e9),
        standby: None,
    }
}

fn limit(ctx: &Ctx, kind: Kind, bound: usize, seconds: f64) -> anyhow::Result<Limit> {
    let (_redis, port) = redis(ctx)?;
    let (node_a, addr) = node(ctx, kind, port, "solo")?;
    let idle = rss_mib(&node_a);
    // The node's own descriptor limit bounds what it can hold: give it no more
    // clients than leave `FD_RESERVE` for its listener, Redis and the publisher.
    let nofile = sys::proc_nofile(node_a.pid()).unwrap_or(u64::MAX);
    let fds_idle = sys::proc_fds(node_a.pid()).unwrap_or(0);
    let room = nofile.saturating_sub(fds_idle + FD_RESERVE) as usize;
    let tried = bound.min(room);
    let cap = (tried < bound).then(|| {
        format!(
            "lowered from {} to the node's open-files limit ({}) less the {fds_idle} descriptors it had open idle and {FD_RESERVE} for its listener, Redis and the publisher's connections",
            fmt_num(bound as f64),
            fmt_num(nofile as f64)
        )
    });
    let tenants = tried.div_ceil(PER_TENANT).max(1);
    // Every client homed on this one node (index 0 and 1 both name it).
    let (load, _) = Load::connect(
        ctx,
        kind,
        [addr, addr],
        None,
        tried,
        tenants,
        Duration::from_secs(600),
    )?;
    let held = load.connected();
    let failed = load.workers.failed();
    let stopped_by = (held < tried).then(|| {
        format!(
            "{failed} connections refused or timed out, {} still pending",
            tried as u64 - held as u64 - failed
        )
    });
    let cpu0 = sys::proc_cpu(node_a.pid()).unwrap_or_default();
    let t0 = Instant::now();
    std::thread::sleep(Duration::from_secs(1));
    let idle_cores = cores(&node_a, cpu0, t0);
    let memory = NodeMemory {
        node: "solo".into(),
        clients: held,
        idle_mib: idle,
        connected_mib: rss_mib(&node_a),
    };
    let fds = sys::proc_fds(node_a.pid()).unwrap_or(0);
    let mem_available_mib = sys::mem_available_mib().unwrap_or(0.0);
    // Fan-out at that count: one event per second per tenant.
    let mut per = per_tenant(tried, tenants);
    if held < tried {
        // Deliveries only reach the clients that are connected: scale.
        for p in &mut per {
            *p = *p * held / tried;
        }
    }
    let cpu0 = sys::proc_cpu(node_a.pid()).unwrap_or_default();
    let t0 = Instant::now();
    let expected = load.publish(kind, addr, tenants, &per, tenants as f64, seconds)?;
    load.drain(expected);
    let fanout_cores = cores(&node_a, cpu0, t0);
    let delivered = load.workers.delivered();
    let workers = load.workers.count();
    let latency = load.finish()?.all;
    drop(node_a);
    Ok(Limit {
        server: kind.name().replace("×2", "×1"),
        bound,
        tried,
        cap,
        held,
        workers,
        stopped_by,
        memory,
        nofile: if nofile == u64::MAX { 0 } else { nofile },
        fds,
        idle_cores,
        fanout_cores,
        mem_available_mib,
        latency,
        expected,
        delivered,
        skipped: None,
    })
}

/// CPU cores `p` used since `cpu0` (its CPU time then) and `t0`.
fn cores(p: &Proc, cpu0: Duration, t0: Instant) -> f64 {
    let cpu = sys::proc_cpu(p.pid()).unwrap_or_default();
    cpu.saturating_sub(cpu0).as_secs_f64() / t0.elapsed().as_secs_f64().max(1e-9)
}

/// One lean client (the native handshake, or Engine.IO/Socket.IO framing by hand).
pub(crate) struct Client {
    kind: Kind,
    nodes: [SocketAddr; 2],
    home: usize,
    source: IpAddr,
    tenant: String,
}

/// A connected client's link and, for Pulse, its cursor.
struct Link {
    ws: crate::fanout::Ws,
}

impl Client {
    /// Client `i` of a run with `tenants` tenants: homed on `nodes[i % 2]`, from
    /// 127.0.0.(2 + i % 8), following tenant `i % tenants`. Derived from `i` only,
    /// so it is the same client whichever worker process holds it.
    ///
    /// With `failover_b`, the clients homed on node B move there rather than to
    /// node A when B is gone (a standby node for the herd).
    pub(crate) fn nth(
        kind: Kind,
        nodes: [SocketAddr; 2],
        i: usize,
        tenants: usize,
        failover_b: Option<SocketAddr>,
    ) -> Client {
        let nodes = match failover_b {
            Some(c) if i % 2 == 1 => [c, nodes[1]],
            _ => nodes,
        };
        Client {
            kind,
            nodes,
            home: i % 2,
            source: IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2 + (i % SOURCES as usize) as u8)),
            tenant: tenant_name(i % tenants.max(1)),
        }
    }

    /// Connect (resuming from `cursor` on Pulse), subscribed or joined; on Pulse
    /// also the stream's head and epoch then.
    async fn open(
        &self,
        at: SocketAddr,
        cursor: Option<&(u64, String)>,
    ) -> anyhow::Result<(Link, Option<(u64, String)>)> {
        match self.kind {
            Kind::Pulse => {
                let token = harness::token(&self.tenant, Role::Viewer);
                let mut ws =
                    crate::fanout::open(at, self.source, "/v1/stream", Some(&token)).await?;
                let _hello = ws.next().await;
                let sub = ClientFrame::Subscribe {
                    stream: None,
                    since: cursor.map(|c| c.0),
                    epoch: cursor.map(|c| c.1.clone()),
                };
                ws.send(Message::text(sub.encode())).await?;
                loop {
                    let Some(Ok(Message::Text(t))) = ws.next().await else {
                        anyhow::bail!("closed before subscribed");
                    };
                    if let Ok(ServerFrame::Subscribed(s)) = ServerFrame::decode(t.as_str()) {
                        return Ok((Link { ws }, Some((s.head, s.epoch))));
                    }
                }
            }
            Kind::SocketIo => {
                let mut ws = crate::fanout::open(
                    at,
                    self.source,
                    "/socket.io/?EIO=4&transport=websocket",
                    None,
                )
                .await?;
                let _open = ws.next().await;
                ws.send(Message::text(format!(
                    "40{}",
                    json!({"tenant": self.tenant})
                )))
                .await?;
                loop {
                    let Some(Ok(Message::Text(t))) = ws.next().await else {
                        anyhow::bail!("closed before the namespace connected");
                    };
                    if t.as_str().starts_with("40") {
                        return Ok((Link { ws }, None));
                    }
                }
            }
        }
    }

    /// Connect, read, and move to the other node whenever the link is lost, until
    /// `stop`. The first connection that cannot be had is a failure.
    pub(crate) async fn run(
        self,
        shared: Arc<Shared>,
        gate: Arc<Semaphore>,
        mut stop: tokio::sync::watch::Receiver<bool>,
    ) -> anyhow::Result<Samples> {
        let mut at = self.home;
        let mut cursor: Option<(u64, String)> = None;
        let mut samples = Vec::new();
        let mut first = true;
        loop {
            let mut tries = 0;
            let (mut link, epoch) = loop {
                let permit = gate.clone().acquire_owned().await?;
                let r = tokio::time::timeout(
                    Duration::from_secs(20),
                    self.open(self.nodes[at], cursor.as_ref()),
                )
                .await;
                drop(permit);
                match r {
                    Ok(Ok(l)) => break l,
                    _ if *stop.borrow() => return Ok((self.home, samples)),
                    _ if first && tries >= 2 => {
                        shared.failed.fetch_add(1, Ordering::AcqRel);
                        anyhow::bail!("cannot connect");
                    }
                    _ => {
                        tries += 1;
                        at = 1 - at;
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                }
            };
            if first {
                shared.connected.fetch_add(1, Ordering::AcqRel);
                first = false;
            } else if let Ok(mut r) = shared.reconnected.lock() {
                r.push(sys::mono_ns());
            }
            if let Some((head, e)) = epoch {
                if cursor.as_ref().is_none_or(|c| c.1 != e) {
                    cursor = Some((head, e));
                }
            }
            // Read until the link is lost or the run stops.
            loop {
                let msg = tokio::select! {
                    m = link.ws.next() => m,
                    _ = stop.changed() => {
                        let _ = link.ws.close(None).await;
                        return Ok((self.home, samples));
                    }
                };
                let Some(Ok(msg)) = msg else { break };
                let Message::Text(text) = msg else { continue };
                let now = sys::mono_ns();
                let text = text.as_str();
                let sent = match self.kind {
                    Kind::Pulse => match ServerFrame::decode(text) {
                        Ok(ServerFrame::Event(e)) => {
                            if let Some(c) = cursor.as_mut() {
                                c.0 = c.0.max(e.seq);
                            }
                            e.data.get("sent_ns").and_then(Value::as_u64)
                        }
                        Ok(ServerFrame::Ping { ts }) => {
                            link.ws
                                .send(Message::text(ClientFrame::Pong { ts }.encode()))
                                .await?;
                            None
                        }
                        _ => None,
                    },
                    Kind::SocketIo => {
                        if text == "2" {
                            link.ws.send(Message::text("3")).await?;
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
                    let until = shared.record_until.load(Ordering::Acquire);
                    if until == 0 || now < until {
                        samples.push(now.saturating_sub(sent));
                        shared.delivered.fetch_add(1, Ordering::AcqRel);
                    }
                }
            }
            at = 1 - at;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn herd_figures() {
        let s = 1_000_000_000u64;
        let h = herd_of(
            10 * s,
            4,
            vec![
                10 * s + s / 2,
                10 * s + 45 * s / 100,
                12 * s,
                10 * s + 56 * s / 100,
            ],
        );
        assert_eq!((h.moved, h.back), (4, 4));
        assert_eq!(h.peak_per_s, 20.0, "two within 100 ms: 20 per second");
        assert!((h.all_back_s - 2.0).abs() < 1e-9);
        let none = herd_of(s, 3, Vec::new());
        assert_eq!((none.back, none.peak_per_s, none.all_back_s), (0, 0.0, 0.0));
    }

    #[test]
    fn memory_per_connection() {
        let m = NodeMemory {
            node: "a".into(),
            clients: 1024,
            idle_mib: 10.0,
            connected_mib: 26.0,
        };
        assert!((m.per_conn_kib() - 16.0).abs() < 1e-9);
    }
}
