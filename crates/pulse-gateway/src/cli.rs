//! The `pulse-gateway` command line (`serve`, `mint`); `main.rs` only calls [`main`].
//!
//! Output contract: `serve` prints exactly one line on stdout, `listening on
//! http://IP:PORT`, once bound (flushed at once); everything else goes to stderr
//! through `tracing` (filter with `PULSE_LOG`, default `info`). `mint` prints the
//! token alone on stdout. Exit status: 0 after a clean stop, 1 when the gateway
//! cannot start, 2 for usage errors (including a missing secret).

use std::io::Write as _;
use std::net::{SocketAddr, ToSocketAddrs};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use pulse_protocol::auth::{Role, TokenUse};

use crate::config::{self, parse_duration, Config, DemoConfig, StoreConfig, User};
use crate::Gateway;

/// The Pulse reference gateway.
#[derive(Debug, Parser)]
#[command(name = "pulse-gateway", version, about)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the Pulse protocol.
    Serve(Box<ServeArgs>),
    /// Print a signed token (JWT) on stdout.
    Mint(MintArgs),
}

fn parse_addr(s: &str) -> Result<SocketAddr, String> {
    s.to_socket_addrs()
        .map_err(|e| format!("`{s}` is not HOST:PORT: {e}"))?
        .next()
        .ok_or_else(|| format!("`{s}` resolves to no address"))
}

#[derive(Debug, Args)]
struct ServeArgs {
    /// Address to listen on (port 0 picks a free port).
    #[arg(long, default_value = "127.0.0.1:7780", value_parser = parse_addr)]
    addr: SocketAddr,
    /// `memory`, `sqlite:PATH` or `redis://HOST:PORT[/DB]` (shared by every node of
    /// a cluster).
    #[arg(long, default_value = "memory", value_parser = |s: &str| s.parse::<StoreConfig>())]
    store: StoreConfig,
    /// Run the demo simulator for tenant `demo` (user `demo`, password `demo`).
    #[arg(long)]
    demo: bool,
    /// HS256 secret for tokens.
    #[arg(long, env = "PULSE_JWT_SECRET", hide_env_values = true)]
    jwt_secret: Option<String>,
    /// Events kept per tenant.
    #[arg(long, default_value_t = config::DEFAULT_RETAIN, value_parser = clap::value_parser!(u64).range(1..))]
    retain: u64,
    /// Also drop events older than this (e.g. `7d`; Redis store, trimmed on append).
    #[arg(long, value_parser = parse_duration)]
    retain_age: Option<Duration>,
    /// This node's name in a cluster on Redis (default: random); also its consumer
    /// name in the `--source` group.
    #[arg(long)]
    node_id: Option<String>,
    /// A source of events: a platform's Redis Stream read in a consumer group,
    /// `redis-stream://HOST:PORT[/DB]/KEY` (needs `--mapping`), or a LangGraph
    /// deployment whose interrupts become approvals, `langgraph+http://HOST:PORT`
    /// (needs `--tenant`).
    #[arg(long, value_parser = |s: &str| s.parse::<SourceArg>())]
    source: Option<SourceArg>,
    /// The TOML mapping of a `redis-stream://` source's events to Pulse events.
    #[arg(long, requires = "source")]
    mapping: Option<std::path::PathBuf>,
    /// The tenant a `langgraph+` source's approvals belong to.
    #[arg(long, requires = "source")]
    tenant: Option<String>,
    /// Only threads of this graph (repeatable; default: every graph).
    #[arg(long = "graph", requires = "source")]
    graphs: Vec<String>,
    /// A file holding the LangGraph webhooks' shared secret (or set
    /// PULSE_LANGGRAPH_WEBHOOK_SECRET). Never on the command line.
    #[arg(long, requires = "source")]
    webhook_secret_file: Option<std::path::PathBuf>,
    /// The URL LangGraph reaches this gateway's webhook at, given as the `webhook`
    /// of the runs Pulse starts (default: none; the reconcile finds their pauses).
    #[arg(long, requires = "source")]
    webhook_url: Option<String>,
    /// Time between two reconciling searches of interrupted threads.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    reconcile_interval: Duration,
    /// Interval between server pings (e.g. `15s`).
    #[arg(long, default_value = "15s", value_parser = parse_duration)]
    ping_interval: Duration,
    /// Silence tolerated after a ping interval before a client is closed.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    ping_timeout: Duration,
    /// Lifetime of access tokens from login/refresh.
    #[arg(long, default_value = "15m", value_parser = parse_duration)]
    access_ttl: Duration,
    /// Lifetime of refresh tokens.
    #[arg(long, default_value = "30d", value_parser = parse_duration)]
    refresh_ttl: Duration,
    /// A user who may log in, `NAME:PASSWORD:TENANT` (repeatable).
    #[arg(long = "user", value_parser = |s: &str| s.parse::<User>())]
    users: Vec<User>,
    /// Demo time factor (2 = twice as many events, approvals twice as often).
    #[arg(long, default_value_t = 1.0)]
    demo_speed: f64,
    /// Seed of the demo simulator.
    #[arg(long)]
    demo_seed: Option<u64>,
    /// Events a WebSocket client may lag behind before it is disconnected.
    #[arg(long, default_value_t = config::DEFAULT_CLIENT_QUEUE)]
    client_queue: usize,
}

/// What `--source` names.
#[derive(Debug, Clone)]
enum SourceArg {
    Redis(crate::source::SourceUrl),
    LangGraph(crate::langgraph::LangGraphUrl),
}

impl std::str::FromStr for SourceArg {
    type Err = String;

    fn from_str(s: &str) -> Result<SourceArg, String> {
        if s.starts_with("langgraph+") {
            s.parse().map(SourceArg::LangGraph)
        } else {
            s.parse().map(SourceArg::Redis)
        }
    }
}

/// The webhook secret: the file's first line, or the environment variable.
fn webhook_secret(file: Option<&std::path::Path>) -> Result<Option<String>, String> {
    let secret = match file {
        Some(path) => std::fs::read_to_string(path)
            .map_err(|e| {
                format!(
                    "cannot read the webhook secret file {}: {e}",
                    path.display()
                )
            })?
            .lines()
            .next()
            .unwrap_or("")
            .trim()
            .to_owned(),
        None => std::env::var("PULSE_LANGGRAPH_WEBHOOK_SECRET").unwrap_or_default(),
    };
    Ok((!secret.is_empty()).then_some(secret))
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum RoleArg {
    Viewer,
    Publisher,
}

#[derive(Debug, Args)]
struct MintArgs {
    /// HS256 secret (the gateway's `--jwt-secret`).
    #[arg(long, env = "PULSE_JWT_SECRET", hide_env_values = true)]
    secret: String,
    /// Tenant the token is for.
    #[arg(long)]
    tenant: String,
    /// Subject (user or service name).
    #[arg(long)]
    sub: String,
    /// What the holder may do.
    #[arg(long, value_enum, default_value = "viewer")]
    role: RoleArg,
    /// Lifetime (e.g. `15m`, `1h`).
    #[arg(long, default_value = "15m", value_parser = parse_duration)]
    ttl: Duration,
    /// Mint a refresh token instead of an access token.
    #[arg(long)]
    refresh: bool,
}

/// Run the command line; returns the process exit status.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Mint(args) => mint(args),
        Command::Serve(args) => serve(*args),
    }
}

fn mint(args: MintArgs) -> ExitCode {
    if args.tenant.is_empty() || args.sub.is_empty() || args.secret.is_empty() {
        eprintln!("error: --secret, --tenant and --sub must not be empty");
        return ExitCode::from(2);
    }
    let role = match args.role {
        RoleArg::Viewer => Role::Viewer,
        RoleArg::Publisher => Role::Publisher,
    };
    let token_use = if args.refresh {
        TokenUse::Refresh
    } else {
        TokenUse::Access
    };
    let claims = crate::auth::claims(&args.sub, &args.tenant, role, token_use, args.ttl);
    match crate::auth::mint(&args.secret, &claims) {
        Ok(token) => {
            println!("{token}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn init_tracing() {
    let mut filter = tracing_subscriber::EnvFilter::try_from_env("PULSE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    for d in pulse_protocol::log_directives() {
        if let Ok(d) = d.parse() {
            filter = filter.add_directive(d);
        }
    }
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(filter)
        .try_init();
}

fn serve(args: ServeArgs) -> ExitCode {
    let secret = args.jwt_secret.filter(|s| !s.is_empty());
    if secret.is_none() && !args.demo {
        eprintln!(
            "error: no JWT secret. Pass --jwt-secret SECRET or set PULSE_JWT_SECRET \
             (or run with --demo to use a random one)."
        );
        return ExitCode::from(2);
    }
    if !(args.demo_speed.is_finite() && args.demo_speed > 0.0) {
        eprintln!("error: --demo-speed must be a positive number");
        return ExitCode::from(2);
    }
    if args.retain_age.is_some() && !matches!(args.store, StoreConfig::Redis(_)) {
        eprintln!("error: --retain-age needs the Redis store (--store redis://HOST:PORT)");
        return ExitCode::from(2);
    }
    let mut source = None;
    let mut langgraph = None;
    match args.source {
        Some(SourceArg::Redis(url)) => {
            let Some(path) = &args.mapping else {
                eprintln!("error: a redis-stream:// source needs --mapping FILE");
                return ExitCode::from(2);
            };
            match crate::source::Mapping::load(path) {
                Ok(m) => source = Some((url, m)),
                Err(e) => {
                    eprintln!("error: {e}");
                    return ExitCode::from(2);
                }
            }
        }
        Some(SourceArg::LangGraph(url)) => {
            let Some(tenant) = args.tenant.filter(|t| !t.is_empty()) else {
                eprintln!("error: a langgraph+ source needs --tenant T");
                return ExitCode::from(2);
            };
            let webhook_secret = match webhook_secret(args.webhook_secret_file.as_deref()) {
                Ok(s) => s,
                Err(e) => {
                    eprintln!("error: {e}");
                    return ExitCode::from(2);
                }
            };
            langgraph = Some(crate::langgraph::LangGraphConfig {
                url,
                tenant,
                graphs: args.graphs,
                webhook_secret,
                webhook_url: args.webhook_url,
                reconcile_interval: args.reconcile_interval,
            });
        }
        None => {}
    }
    init_tracing();
    if secret.is_none() {
        eprintln!(
            "pulse-gateway: no --jwt-secret given; using a random secret for this run \
             (tokens will not survive a restart). Log in as demo / demo."
        );
    }
    let config = Config {
        addr: args.addr,
        store: args.store,
        jwt_secret: secret,
        retain: args.retain,
        retain_age: args.retain_age,
        node_id: args.node_id.filter(|n| !n.is_empty()),
        source,
        langgraph,
        ping_interval: args.ping_interval,
        ping_timeout: args.ping_timeout,
        access_ttl: args.access_ttl,
        refresh_ttl: args.refresh_ttl,
        users: args.users,
        demo: args.demo.then(|| DemoConfig {
            seed: args.demo_seed.unwrap_or_else(rand::random),
            speed: args.demo_speed,
            ..DemoConfig::default()
        }),
        client_queue: args.client_queue,
    };
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async move {
        // Installed before "listening" is printed: a supervisor (or a test) may send
        // SIGTERM as soon as it reads that line, and must get a clean stop.
        let stop = stop_signal();
        let gateway = match Gateway::start(config).await {
            Ok(g) => g,
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::FAILURE;
            }
        };
        {
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "listening on http://{}", gateway.addr());
            let _ = out.flush();
        }
        stop.await;
        tracing::info!("stopping");
        gateway.shutdown().await;
        ExitCode::SUCCESS
    })
}

/// A future that ends on SIGTERM or Ctrl-C. On Unix the handlers are installed when
/// this is called, not when the future is first polled.
fn stop_signal() -> impl std::future::Future<Output = ()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let term = signal(SignalKind::terminate()).ok();
        let int = signal(SignalKind::interrupt()).ok();
        async move {
            match (term, int) {
                (Some(mut term), Some(mut int)) => {
                    tokio::select! {
                        _ = term.recv() => {}
                        _ = int.recv() => {}
                    }
                }
                _ => {
                    let _ = tokio::signal::ctrl_c().await;
                }
            }
        }
    }
    #[cfg(not(unix))]
    async {
        let _ = tokio::signal::ctrl_c().await;
    }
}
