//! What every benchmark shares: the run mode and its sizes, the work directory,
//! child processes (gateway, clients, Node peers) and tokens.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::Context;
use pulse_gateway::{auth, Config, Gateway, StoreConfig};
use pulse_protocol::auth::{Role, TokenUse};
use serde::{Deserialize, Serialize};

use crate::sys::{self, Proc};

/// How big a run is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Tiny sizes, a few seconds: proves the harness works (the test suite runs it).
    Smoke,
    /// Reduced sizes: a few minutes.
    Quick,
    /// The sizes the report is written from (about 15 minutes on 2 cores).
    Full,
}

impl Mode {
    /// Pick a value by mode.
    pub fn pick<T>(self, smoke: T, quick: T, full: T) -> T {
        match self {
            Mode::Smoke => smoke,
            Mode::Quick => quick,
            Mode::Full => full,
        }
    }
}

/// The JWT secret of every benchmark gateway (loopback only, throwaway).
pub const SECRET: &str = "pulse-bench-secret-0123456789abcdef";
/// The tenant (= stream) the single-tenant benchmarks use.
pub const TENANT: &str = "bench";

/// Context of a run.
#[derive(Debug, Clone)]
pub struct Ctx {
    /// Run size.
    pub mode: Mode,
    /// This executable (children are started from it).
    pub exe: PathBuf,
    /// Scratch directory (caches, gateway stores, workload files).
    pub work: PathBuf,
    /// `benches/peers` (Node peers), if present with its node_modules.
    pub peers: Option<PathBuf>,
    /// `node`, if found.
    pub node: Option<PathBuf>,
    /// Where children's stderr goes.
    pub log: PathBuf,
}

impl Ctx {
    /// CPU for servers and CPU for the measured client (0 and 1 on 2 cores; no
    /// pinning on one core).
    pub fn cpus(&self) -> (Option<usize>, Option<usize>) {
        if sys::cpus() >= 2 {
            (Some(0), Some(1))
        } else {
            (None, None)
        }
    }

    /// A fresh path in the work directory.
    pub fn path(&self, name: &str) -> PathBuf {
        self.work.join(name)
    }

    /// Start `pulse-bench child ARGS…` pinned to `cpu`.
    pub fn child(&self, name: &str, args: &[String], cpu: Option<usize>) -> anyhow::Result<Proc> {
        let mut cmd = Command::new(&self.exe);
        cmd.arg("child").args(args);
        sys::pin_command(&mut cmd, cpu);
        Proc::spawn(name, cmd, Some(&self.log))
    }

    /// Start a Node script of `benches/peers` pinned to `cpu`, or `None` when
    /// Node or the peers' packages are missing (the comparison is then reported
    /// as not measured).
    pub fn node(
        &self,
        name: &str,
        script: &str,
        args: &[String],
        cpu: Option<usize>,
    ) -> anyhow::Result<Option<Proc>> {
        let (Some(node), Some(peers)) = (&self.node, &self.peers) else {
            return Ok(None);
        };
        let mut cmd = Command::new(node);
        cmd.arg(peers.join(script)).args(args).current_dir(peers);
        sys::pin_command(&mut cmd, cpu);
        Proc::spawn(name, cmd, Some(&self.log)).map(Some)
    }

    /// Start a gateway child process; returns it and its `http://IP:PORT`.
    pub fn gateway(
        &self,
        opts: &GatewayOpts,
        cpu: Option<usize>,
    ) -> anyhow::Result<(Proc, String)> {
        let mut args = vec![
            "gateway".to_owned(),
            "--store".into(),
            opts.store.clone(),
            "--addr".into(),
            opts.addr.to_string(),
            "--retain".into(),
            opts.retain.to_string(),
            "--ping-interval-ms".into(),
            opts.ping_interval_ms.to_string(),
            "--client-queue".into(),
            opts.client_queue.to_string(),
        ];
        if let Some(speed) = opts.demo_speed {
            args.push("--demo-speed".into());
            args.push(speed.to_string());
        }
        if let Some(id) = &opts.node_id {
            args.push("--node-id".into());
            args.push(id.clone());
        }
        let mut p = self.child("gateway", &args, cpu)?;
        let url = p.wait_line("listening on ", Duration::from_secs(60))?;
        Ok((p, url))
    }
}

/// Options of a gateway child.
#[derive(Debug, Clone)]
pub struct GatewayOpts {
    /// `memory` or `sqlite:PATH`.
    pub store: String,
    /// Address to bind.
    pub addr: SocketAddr,
    /// Events retained per tenant.
    pub retain: u64,
    /// Server ping interval, ms.
    pub ping_interval_ms: u64,
    /// Per-client live queue.
    pub client_queue: usize,
    /// Run the demo simulator at this speed.
    pub demo_speed: Option<f64>,
    /// The node id of a gateway on a Redis store (its tail's wake key).
    pub node_id: Option<String>,
}

impl Default for GatewayOpts {
    fn default() -> Self {
        GatewayOpts {
            store: "memory".into(),
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            retain: pulse_gateway::config::DEFAULT_RETAIN,
            ping_interval_ms: 15_000,
            client_queue: pulse_gateway::config::DEFAULT_CLIENT_QUEUE,
            demo_speed: None,
            node_id: None,
        }
    }
}

/// An access token of [`SECRET`] for `tenant`.
pub fn token(tenant: &str, role: Role) -> String {
    auth::mint(
        SECRET,
        &auth::claims(
            "bench",
            tenant,
            role,
            TokenUse::Access,
            Duration::from_secs(24 * 3600),
        ),
    )
    .expect("minting a token cannot fail")
}

/// Arguments of the `gateway` child role.
#[derive(Debug, clap::Args)]
pub struct GatewayArgs {
    /// `memory`, `sqlite:PATH` or `redis://HOST:PORT`.
    #[arg(long, default_value = "memory")]
    store: String,
    /// Address to bind.
    #[arg(long, default_value = "127.0.0.1:0")]
    addr: SocketAddr,
    /// Events retained per tenant.
    #[arg(long, default_value_t = pulse_gateway::config::DEFAULT_RETAIN)]
    retain: u64,
    /// Ping interval, ms.
    #[arg(long, default_value_t = 15_000)]
    ping_interval_ms: u64,
    /// Per-client live queue.
    #[arg(long, default_value_t = pulse_gateway::config::DEFAULT_CLIENT_QUEUE)]
    client_queue: usize,
    /// Run the demo simulator (tenant `demo`) at this speed.
    #[arg(long)]
    demo_speed: Option<f64>,
    /// Node id on a Redis store (`--store redis://…`).
    #[arg(long)]
    node_id: Option<String>,
}

/// The `gateway` child role: the reference gateway started through its library
/// API with the runtime `pulse-gateway serve` uses (multi-threaded, one worker
/// per core), until SIGTERM or stdin closes.
pub fn run_gateway(args: GatewayArgs) -> anyhow::Result<()> {
    sys::raise_nofile();
    let store: StoreConfig = args.store.parse().map_err(anyhow::Error::msg)?;
    let config = Config {
        addr: args.addr,
        store,
        jwt_secret: Some(SECRET.into()),
        // The benchmarks open 10,000+ streams from a few loopback addresses with
        // a few tokens: no connection cap or request rate here, on purpose and
        // only here (a production gateway keeps `Limits::default()`).
        limits: pulse_gateway::limits::Limits::unlimited_traffic(),
        retain: args.retain,
        ping_interval: Duration::from_millis(args.ping_interval_ms),
        client_queue: args.client_queue,
        node_id: args.node_id,
        demo: args.demo_speed.map(|speed| pulse_gateway::DemoConfig {
            speed,
            seed: 42,
            ..Default::default()
        }),
        ..Config::default()
    };
    let rt = tokio::runtime::Runtime::new()?;
    rt.block_on(async move {
        let gw = Gateway::start(config).await?;
        println!("listening on {}", gw.url());
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        let stdin_closed = tokio::task::spawn_blocking(|| {
            let mut buf = [0u8; 64];
            while let Ok(n) = std::io::Read::read(&mut std::io::stdin(), &mut buf) {
                if n == 0 {
                    break;
                }
            }
        });
        tokio::select! {
            _ = term.recv() => {}
            _ = stdin_closed => {}
        }
        gw.shutdown().await;
        anyhow::Ok(())
    })?;
    // Don't wait for the blocked stdin reader.
    std::process::exit(0);
}

/// Post `events` (JSON `{type, data}` objects) to a gateway's ingest endpoint in
/// batches under the 1 MiB body limit. Returns the epoch.
pub async fn ingest_all(
    http: &reqwest::Client,
    url: &str,
    publisher: &str,
    events: impl Iterator<Item = serde_json::Value>,
) -> anyhow::Result<String> {
    let mut epoch = String::new();
    let mut batch: Vec<serde_json::Value> = Vec::new();
    let mut bytes = 0usize;
    let send = |batch: Vec<serde_json::Value>| {
        let req = http
            .post(format!("{url}/v1/ingest"))
            .bearer_auth(publisher)
            .json(&batch);
        async move {
            let r = req.send().await?;
            let status = r.status();
            let body: serde_json::Value = r.json().await?;
            anyhow::ensure!(status.is_success(), "ingest failed: {status} {body}");
            anyhow::Ok(body["epoch"].as_str().unwrap_or_default().to_owned())
        }
    };
    for e in events {
        bytes += e.to_string().len() + 64;
        batch.push(e);
        if bytes > 600_000 || batch.len() >= 2000 {
            epoch = send(std::mem::take(&mut batch)).await?;
            bytes = 0;
        }
    }
    if !batch.is_empty() {
        epoch = send(batch).await?;
    }
    Ok(epoch)
}

/// Parse a child's `result {json}` output.
pub fn parse_result<T: for<'de> Deserialize<'de>>(out: &str) -> anyhow::Result<T> {
    let line = out
        .lines()
        .rev()
        .find_map(|l| l.strip_prefix("result "))
        .with_context(|| format!("no result line in {out:?}"))?;
    Ok(serde_json::from_str(line)?)
}

/// Print a child's result line.
pub fn print_result<T: Serialize>(v: &T) {
    println!(
        "result {}",
        serde_json::to_string(v).expect("results serialise")
    );
}

/// Find `benches/peers` next to the workspace root (walking up from `start`).
pub fn find_peers(start: &Path) -> Option<PathBuf> {
    start.ancestors().find_map(|d| {
        let p = d.join("benches/peers");
        p.join("node_modules/socket.io").is_dir().then_some(p)
    })
}
