//! `pulse-bench`: the Pulse benchmark harness.
//!
//! ```text
//! pulse-bench run --mode full --out DIR        run every benchmark, write DIR/results.json
//! pulse-bench run --mode smoke --out DIR       tiny sizes, a few seconds (the test suite)
//! pulse-bench report --results DIR/results.json --criterion TARGET/criterion \
//!                    --markdown docs/benchmarks.md --charts docs/benchmarks
//! ```
//!
//! `./scripts/bench.sh` runs both (and the criterion micro-benchmarks). What each
//! benchmark measures is in its module's docs and in the report it writes. Every
//! load targets loopback addresses only and is bounded in count and time.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};

mod cluster;
mod cluster_clients;
mod desktop;
mod fanout;
mod harness;
mod ingest;
mod latency;
mod machine;
mod pulsectl;
mod report;
mod requests;
mod resync;
mod stats;
mod svg;
mod sys;
mod workload;

use harness::{Ctx, Mode};

#[derive(Parser)]
#[command(name = "pulse-bench", about = "Pulse benchmark harness")]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run the benchmarks and write DIR/results.json.
    Run(RunArgs),
    /// Write the Markdown report and its SVG charts from results.json.
    Report(report::ReportArgs),
    /// A role in another benchmark's process tree (started by `run`).
    #[command(hide = true, subcommand)]
    Child(ChildCmd),
}

#[derive(clap::Args)]
struct RunArgs {
    /// Run size.
    #[arg(long, value_enum, default_value = "quick")]
    mode: Mode,
    /// Output directory (results.json, logs, scratch files).
    #[arg(long)]
    out: PathBuf,
    /// Only these benchmarks (comma separated: ingest, latency, fanout, resync,
    /// requests, desktop, pulsectl, cluster).
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
    /// `pulsectl` binary (benchmark 7); default: next to this executable.
    #[arg(long)]
    pulsectl: Option<PathBuf>,
    /// Desktop app binary `pulse` (benchmark 6); default: next to this executable.
    #[arg(long)]
    app: Option<PathBuf>,
    /// The built UI (`ui/dist`) for the desktop benchmark's Chromium side by side;
    /// default: `ui/dist` found above the current directory.
    #[arg(long)]
    ui: Option<PathBuf>,
    /// The desktop benchmark at these cache sizes only, without the Chromium side by
    /// side (a narrow run for latency work); default: the mode's curve.
    #[arg(long, value_delimiter = ',')]
    desktop_sizes: Vec<u64>,
    /// Node.js binary for the Socket.IO comparisons; default: `node` on PATH.
    #[arg(long)]
    node: Option<PathBuf>,
    /// `benches/peers` directory; default: found above the current directory.
    #[arg(long)]
    peers: Option<PathBuf>,
}

#[derive(Subcommand)]
enum ChildCmd {
    /// The reference gateway, in-process.
    Gateway(harness::GatewayArgs),
    /// Session on the native protocol into SQLite.
    IngestNative(ingest::ClientArgs),
    /// Pulse's Socket.IO transport, decode only.
    IngestSioRaw(ingest::ClientArgs),
    /// Session over Socket.IO into SQLite.
    IngestSioSession(ingest::ClientArgs),
    /// Latency client: session into SQLite, reports commit latencies.
    LatencyClient(latency::ClientArgs),
    /// A share of the cluster benchmark's clients (see `cluster_clients`).
    ClusterClients(cluster_clients::WorkerArgs),
    /// Write the workload files the Node peers read (to run them by hand).
    WriteWorkloads {
        /// Directory to write into.
        #[arg(long)]
        dir: PathBuf,
    },
}

fn which(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join(name))
            .find(|p| p.is_file())
    })
}

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("PULSE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .with_env_filter(filter)
        .try_init();
}

fn main() -> anyhow::Result<()> {
    init_tracing();
    let cli = Cli::parse();
    match cli.command {
        Cmd::Run(args) => run(args),
        Cmd::Report(args) => report::write(args),
        Cmd::Child(role) => match role {
            ChildCmd::Gateway(a) => harness::run_gateway(a),
            ChildCmd::IngestNative(a) => ingest::client_native(a),
            ChildCmd::IngestSioRaw(a) => ingest::client_sio_raw(a),
            ChildCmd::IngestSioSession(a) => ingest::client_sio_session(a),
            ChildCmd::LatencyClient(a) => latency::client(a),
            ChildCmd::ClusterClients(a) => cluster_clients::worker(a),
            ChildCmd::WriteWorkloads { dir } => workload::write_files(&dir),
        },
    }
}

fn run(args: RunArgs) -> anyhow::Result<()> {
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("cannot create {}", args.out.display()))?;
    let out = args.out.canonicalize()?;
    let work = out.join("work");
    if work.exists() {
        std::fs::remove_dir_all(&work)?;
    }
    std::fs::create_dir_all(&work)?;
    let exe = std::env::current_exe()?;
    let cwd = std::env::current_dir()?;
    let peers = args.peers.or_else(|| harness::find_peers(&cwd));
    let node = args.node.or_else(|| which("node"));
    let ctx = Ctx {
        mode: args.mode,
        exe: exe.clone(),
        work,
        peers,
        node,
        log: out.join("children.log"),
    };
    let _ = std::fs::remove_file(&ctx.log);
    sys::raise_nofile();
    let want = |name: &str| args.only.is_empty() || args.only.iter().any(|o| o == name);
    let bin_dir = exe.parent().map(|p| p.to_path_buf()).unwrap_or_default();
    let mut results = report::Results {
        mode: args.mode,
        machine: machine::Machine::probe(ctx.node.as_deref(), &exe),
        started_at: machine::utc_now(),
        ..Default::default()
    };
    let save = |r: &report::Results| -> anyhow::Result<()> {
        std::fs::write(out.join("results.json"), serde_json::to_vec_pretty(r)?)?;
        Ok(())
    };
    let mut failures = Vec::new();
    macro_rules! bench {
        ($name:literal, $field:ident, $call:expr) => {
            if want($name) {
                // Other sessions may share this machine: wait for it to be quiet.
                let before = if args.mode == Mode::Smoke {
                    0.0
                } else {
                    machine::wait_for_quiet(0.25, std::time::Duration::from_secs(60))
                };
                eprintln!(
                    "== {} ({:?}), other processes: {before:.2} cores",
                    $name, args.mode
                );
                let t = std::time::Instant::now();
                let foreign = machine::ForeignLoad::start();
                match $call {
                    Ok(r) => results.$field = Some(r),
                    Err(e) => {
                        eprintln!("!! {} failed: {e:#}", $name);
                        failures.push(format!("{}: {e:#}", $name));
                    }
                }
                let during = foreign.cores();
                eprintln!(
                    "== {} done in {:.1?}; other processes used {during:.2} cores meanwhile",
                    $name,
                    t.elapsed()
                );
                results.load.push(report::LoadNote {
                    bench: $name.into(),
                    before_cores: before,
                    during_cores: during,
                    seconds: t.elapsed().as_secs_f64(),
                });
                save(&results)?;
            }
        };
    }
    bench!("ingest", ingest, ingest::run(&ctx));
    bench!("latency", latency, latency::run(&ctx));
    bench!("fanout", fanout, fanout::run(&ctx));
    bench!("resync", resync, resync::run(&ctx));
    bench!("requests", requests, requests::run(&ctx));
    let pulsectl = args.pulsectl.unwrap_or_else(|| bin_dir.join("pulsectl"));
    bench!("pulsectl", pulsectl, pulsectl::run(&ctx, &pulsectl));
    let app = args.app.unwrap_or_else(|| bin_dir.join("pulse"));
    let ui = args.ui.clone().or_else(|| {
        std::env::current_dir()
            .ok()
            .and_then(|d| desktop::find_ui_dist(&d))
    });
    let sizes = args.desktop_sizes.clone();
    bench!(
        "desktop",
        desktop,
        desktop::run(&ctx, &app, ui.as_deref(), &sizes)
    );
    bench!("cluster", cluster, cluster::run(&ctx));
    results.failures = failures.clone();
    results.finished_at = machine::utc_now();
    save(&results)?;
    let _ = std::fs::remove_dir_all(&ctx.work);
    if !failures.is_empty() {
        anyhow::bail!(
            "{} benchmark(s) failed:\n{}",
            failures.len(),
            failures.join("\n")
        );
    }
    Ok(())
}
