//! The `pulse-gateway` command line (`serve`, `mint`, `user`); `main.rs` only calls
//! [`main`].
//!
//! Output contract: `serve` prints exactly one line on stdout, `listening on
//! http://IP:PORT`, once bound (flushed at once); everything else goes to stderr
//! through `tracing` (filter with `PULSE_LOG`, default `info`). `mint` prints the
//! token alone on stdout; `user list` prints `NAME\tTENANT\tROLE` lines, `user
//! add|remove` a confirmation on stderr. Exit status: 0 after a clean stop, 1 when the gateway
//! cannot start, 2 for usage errors (including a missing secret).

use std::io::Write as _;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use pulse_protocol::auth::{Role, TokenUse};

use crate::config::{self, parse_duration, Config, DemoConfig, FileConfig, StoreConfig};
use crate::users::{User, UsersFile};
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
    /// Manage the users file: `add NAME --tenant T`, `remove NAME`, `list`.
    User(UserArgs),
}

fn parse_addr(s: &str) -> Result<SocketAddr, String> {
    s.to_socket_addrs()
        .map_err(|e| format!("`{s}` is not HOST:PORT: {e}"))?
        .next()
        .ok_or_else(|| format!("`{s}` resolves to no address"))
}

/// Every option is also a key of the `--config` file (see [`FileConfig`]); a flag
/// given here wins. Defaults apply to what neither gives.
#[derive(Debug, Args)]
struct ServeArgs {
    /// A TOML file with any of the options below (keys named like the flags, with
    /// `_`), e.g. /etc/pulse-gateway/gateway.toml.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Address to listen on (port 0 picks a free port) [default: 127.0.0.1:7780].
    #[arg(long, value_parser = parse_addr)]
    addr: Option<SocketAddr>,
    /// `memory`, `sqlite:PATH` or `redis://HOST:PORT[/DB]` (shared by every node of
    /// a cluster) [default: memory].
    #[arg(long, value_parser = |s: &str| s.parse::<StoreConfig>())]
    store: Option<StoreConfig>,
    /// Run the demo simulator for tenant `demo` (user `demo`, password `demo`).
    #[arg(long)]
    demo: bool,
    /// HS256 secret for tokens, at least 32 bytes.
    #[arg(long, env = "PULSE_JWT_SECRET", hide_env_values = true)]
    jwt_secret: Option<String>,
    /// A file holding the HS256 secret (surrounding whitespace ignored).
    #[arg(long)]
    jwt_secret_file: Option<PathBuf>,
    /// Events kept per tenant [default: 100000].
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    retain: Option<u64>,
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
    #[arg(long)]
    mapping: Option<PathBuf>,
    /// The tenant a `langgraph+` source's approvals belong to.
    #[arg(long)]
    tenant: Option<String>,
    /// Only threads of this graph (repeatable; default: every graph).
    #[arg(long = "graph")]
    graphs: Vec<String>,
    /// A file holding the LangGraph webhooks' shared secret (or set
    /// PULSE_LANGGRAPH_WEBHOOK_SECRET). Never on the command line.
    #[arg(long)]
    webhook_secret_file: Option<PathBuf>,
    /// The URL LangGraph reaches this gateway's webhook at, given as the `webhook`
    /// of the runs Pulse starts (default: none; the reconcile finds their pauses).
    #[arg(long)]
    webhook_url: Option<String>,
    /// Time between two reconciling searches of interrupted threads [default: 30s].
    #[arg(long, value_parser = parse_duration)]
    reconcile_interval: Option<Duration>,
    /// Interval between server pings (e.g. `15s`) [default: 15s].
    #[arg(long, value_parser = parse_duration)]
    ping_interval: Option<Duration>,
    /// Silence tolerated after a ping interval before a client is closed [default: 10s].
    #[arg(long, value_parser = parse_duration)]
    ping_timeout: Option<Duration>,
    /// Lifetime of access tokens from login/refresh [default: 15m].
    #[arg(long, value_parser = parse_duration)]
    access_ttl: Option<Duration>,
    /// Lifetime of refresh tokens [default: 30d].
    #[arg(long, value_parser = parse_duration)]
    refresh_ttl: Option<Duration>,
    /// The users file (argon2 hashes; manage it with `pulse-gateway user`), re-read
    /// when it changes. Users log in only from this file (and `demo` with --demo).
    #[arg(long)]
    users_file: Option<PathBuf>,
    /// Demo time factor (2 = twice as many events, approvals twice as often) [default: 1].
    #[arg(long)]
    demo_speed: Option<f64>,
    /// Seed of the demo simulator.
    #[arg(long)]
    demo_seed: Option<u64>,
    /// Events a WebSocket client may lag behind before it is disconnected [default: 8192].
    #[arg(long)]
    client_queue: Option<usize>,
    /// A file holding the bearer token `GET /metrics` needs for its per-tenant
    /// series (or set PULSE_METRICS_TOKEN); without one, `/metrics` names no tenant.
    #[arg(long)]
    metrics_token_file: Option<PathBuf>,
    /// Failed logins of one user name per login window before more are refused (429) [default: 5].
    #[arg(long)]
    login_failures_per_user: Option<u32>,
    /// Failed logins from one address per login window before more are refused [default: 20].
    #[arg(long)]
    login_failures_per_address: Option<u32>,
    /// The window failed logins are counted in [default: 5m].
    #[arg(long, value_parser = parse_duration)]
    login_window: Option<Duration>,
    /// Open streams per token, 0 for no cap [default: 32].
    #[arg(long)]
    connections_per_token: Option<u32>,
    /// Open streams per client address, 0 for no cap [default: 512].
    #[arg(long)]
    connections_per_address: Option<u32>,
    /// Sustained requests per second per token, 0 for no limit [default: 100].
    #[arg(long)]
    requests_per_second: Option<u32>,
    /// Requests a token may make at once above the sustained rate [default: 500].
    #[arg(long)]
    request_burst: Option<u32>,
}

/// The metrics token: the file's first line, or PULSE_METRICS_TOKEN.
fn metrics_token(file: Option<&std::path::Path>) -> Result<Option<String>, String> {
    let token = match file {
        Some(path) => std::fs::read_to_string(path)
            .map_err(|e| format!("metrics token file {}: {e}", path.display()))?
            .trim()
            .to_owned(),
        None => std::env::var("PULSE_METRICS_TOKEN")
            .unwrap_or_default()
            .trim()
            .to_owned(),
    };
    if file.is_some() && token.is_empty() {
        return Err("the metrics token file is empty".into());
    }
    Ok((!token.is_empty()).then_some(token))
}

#[derive(Debug, Args)]
struct UserArgs {
    #[command(subcommand)]
    command: UserCommand,
    /// The users file to change.
    #[arg(long, global = true, conflicts_with = "config")]
    users_file: Option<PathBuf>,
    /// Take the users file from this gateway config (`users_file` key).
    #[arg(long, global = true)]
    config: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
enum UserCommand {
    /// Add a user. The password is read from standard input (one line), or asked
    /// twice without echo at a terminal; never from the command line.
    Add {
        /// Login name.
        name: String,
        /// Tenant of the user's tokens.
        #[arg(long)]
        tenant: String,
        /// Role of the user's tokens.
        #[arg(long, value_enum, default_value = "viewer")]
        role: RoleArg,
    },
    /// Remove a user.
    Remove {
        /// Login name.
        name: String,
    },
    /// List users (name, tenant, role; never the hashes).
    List,
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

impl From<RoleArg> for Role {
    fn from(r: RoleArg) -> Role {
        match r {
            RoleArg::Viewer => Role::Viewer,
            RoleArg::Publisher => Role::Publisher,
        }
    }
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
    /// Mint a refresh token instead of an access token (for tests of clients: it
    /// belongs to no login session, so `/v1/auth/refresh` refuses it).
    #[arg(long)]
    refresh: bool,
}

/// Run the command line; returns the process exit status.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Mint(args) => mint(args),
        Command::Serve(args) => serve(*args),
        Command::User(args) => user(args),
    }
}

fn mint(args: MintArgs) -> ExitCode {
    if args.tenant.is_empty() || args.sub.is_empty() || args.secret.is_empty() {
        eprintln!("error: --secret, --tenant and --sub must not be empty");
        return ExitCode::from(2);
    }
    if let Err(e) = crate::auth::check_secret(&args.secret, "--secret or PULSE_JWT_SECRET") {
        return usage(e);
    }
    let role = args.role.into();
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
    let filter = tracing_subscriber::EnvFilter::try_from_env("PULSE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(filter)
        .try_init();
}

/// A usage error: printed as `error: …`, exit status 2.
fn usage(msg: impl std::fmt::Display) -> ExitCode {
    eprintln!("error: {msg}");
    ExitCode::from(2)
}

/// `value` from the flag, else from the config file's `key` (parsed like the flag).
fn pick<T>(
    flag: Option<T>,
    file: Option<&str>,
    key: &str,
    parse: impl Fn(&str) -> Result<T, String>,
) -> Result<Option<T>, String> {
    match (flag, file) {
        (Some(v), _) => Ok(Some(v)),
        (None, Some(s)) => parse(s)
            .map(Some)
            .map_err(|e| format!("config key `{key}`: {e}")),
        (None, None) => Ok(None),
    }
}

/// The flags merged over the config file, defaults applied, secret resolved.
fn resolve(args: ServeArgs) -> Result<(Config, bool), String> {
    let file = match &args.config {
        Some(p) => FileConfig::load(p)?,
        None => FileConfig::default(),
    };
    let addr = pick(args.addr, file.addr.as_deref(), "addr", parse_addr)?
        .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 7780)));
    let store =
        pick(args.store, file.store.as_deref(), "store", |s| s.parse())?.unwrap_or_default();
    let demo = args.demo || file.demo.unwrap_or(false);
    let demo_speed = args.demo_speed.or(file.demo_speed).unwrap_or(1.0);
    if !(demo_speed.is_finite() && demo_speed > 0.0) {
        return Err("--demo-speed must be a positive number".into());
    }
    let retain = args
        .retain
        .or(file.retain)
        .unwrap_or(config::DEFAULT_RETAIN);
    if retain == 0 {
        return Err("config key `retain`: must be at least 1".into());
    }
    let retain_age = pick(
        args.retain_age,
        file.retain_age.as_deref(),
        "retain_age",
        parse_duration,
    )?;
    if retain_age.is_some() && !matches!(store, StoreConfig::Redis(_)) {
        return Err("--retain-age needs the Redis store (--store redis://HOST:PORT)".into());
    }
    let dur = |flag, key: &str, file: &Option<String>, default| {
        pick(flag, file.as_deref(), key, parse_duration).map(|d| d.unwrap_or(default))
    };
    let source = pick(args.source, file.source.as_deref(), "source", |s| {
        s.parse::<SourceArg>()
    })?;
    let mapping = args.mapping.or(file.mapping);
    let mut langgraph = None;
    let source = match (source, mapping) {
        (Some(SourceArg::Redis(url)), Some(path)) => Some((
            url,
            crate::source::Mapping::load(&path).map_err(|e| e.to_string())?,
        )),
        (Some(SourceArg::Redis(_)), None) => {
            return Err("a redis-stream:// source needs --mapping FILE".into())
        }
        (Some(SourceArg::LangGraph(_)), Some(_)) => {
            return Err("--mapping is for a redis-stream:// source, not a langgraph+ one".into())
        }
        (Some(SourceArg::LangGraph(url)), None) => {
            let Some(tenant) = args.tenant.or(file.tenant).filter(|t| !t.is_empty()) else {
                return Err("a langgraph+ source needs --tenant T".into());
            };
            let graphs = if args.graphs.is_empty() {
                file.graphs.unwrap_or_default()
            } else {
                args.graphs
            };
            let secret_file = args.webhook_secret_file.or(file.webhook_secret_file);
            langgraph = Some(crate::langgraph::LangGraphConfig {
                url,
                tenant,
                graphs,
                webhook_secret: webhook_secret(secret_file.as_deref())?,
                webhook_url: args.webhook_url.or(file.webhook_url),
                reconcile_interval: dur(
                    args.reconcile_interval,
                    "reconcile_interval",
                    &file.reconcile_interval,
                    Duration::from_secs(30),
                )?,
            });
            None
        }
        (None, None) => None,
        (None, Some(_)) => return Err("--mapping needs --source".into()),
    };
    let ping_interval = dur(
        args.ping_interval,
        "ping_interval",
        &file.ping_interval,
        config::DEFAULT_PING_INTERVAL,
    )?;
    let ping_timeout = dur(
        args.ping_timeout,
        "ping_timeout",
        &file.ping_timeout,
        config::DEFAULT_PING_TIMEOUT,
    )?;
    let access_ttl = dur(
        args.access_ttl,
        "access_ttl",
        &file.access_ttl,
        config::DEFAULT_ACCESS_TTL,
    )?;
    let refresh_ttl = dur(
        args.refresh_ttl,
        "refresh_ttl",
        &file.refresh_ttl,
        config::DEFAULT_REFRESH_TTL,
    )?;
    let secret_file = args.jwt_secret_file.or(file.jwt_secret_file);
    let secret = match (args.jwt_secret.filter(|s| !s.is_empty()), secret_file) {
        (Some(s), _) => {
            crate::auth::check_secret(&s, "--jwt-secret or PULSE_JWT_SECRET")?;
            Some(s)
        }
        (None, Some(path)) => {
            let s = std::fs::read_to_string(&path)
                .map_err(|e| format!("jwt secret file {}: {e}", path.display()))?;
            let s = s.trim().to_owned();
            if s.is_empty() {
                return Err(format!("jwt secret file {} is empty", path.display()));
            }
            crate::auth::check_secret(&s, &format!("the file {}", path.display()))?;
            Some(s)
        }
        (None, None) => None,
    };
    if secret.is_none() && !demo {
        return Err(
            "no JWT secret. Pass --jwt-secret SECRET, set PULSE_JWT_SECRET or \
             give jwt_secret_file (or run with --demo to use a random one)."
                .into(),
        );
    }
    let metrics_token = metrics_token(
        args.metrics_token_file
            .or(file.metrics_token_file)
            .as_deref(),
    )?;
    let limits = {
        let d = crate::limits::Limits::default();
        crate::limits::Limits {
            login_failures_per_user: args
                .login_failures_per_user
                .or(file.login_failures_per_user)
                .unwrap_or(d.login_failures_per_user),
            login_failures_per_address: args
                .login_failures_per_address
                .or(file.login_failures_per_address)
                .unwrap_or(d.login_failures_per_address),
            login_window: dur(
                args.login_window,
                "login_window",
                &file.login_window,
                d.login_window,
            )?,
            connections_per_token: args
                .connections_per_token
                .or(file.connections_per_token)
                .unwrap_or(d.connections_per_token),
            connections_per_address: args
                .connections_per_address
                .or(file.connections_per_address)
                .unwrap_or(d.connections_per_address),
            requests_per_second: args
                .requests_per_second
                .or(file.requests_per_second)
                .unwrap_or(d.requests_per_second),
            request_burst: args
                .request_burst
                .or(file.request_burst)
                .unwrap_or(d.request_burst),
        }
    };
    let config = Config {
        addr,
        store,
        jwt_secret: secret,
        retain,
        retain_age,
        node_id: args.node_id.or(file.node_id).filter(|n| !n.is_empty()),
        source,
        langgraph,
        ping_interval,
        ping_timeout,
        access_ttl,
        refresh_ttl,
        users: Vec::new(),
        users_file: args.users_file.or(file.users_file),
        demo: demo.then(|| DemoConfig {
            seed: args
                .demo_seed
                .or(file.demo_seed)
                .unwrap_or_else(rand::random),
            speed: demo_speed,
            ..DemoConfig::default()
        }),
        client_queue: args
            .client_queue
            .or(file.client_queue)
            .unwrap_or(config::DEFAULT_CLIENT_QUEUE),
        limits,
        metrics_token,
    };
    let random_secret = config.jwt_secret.is_none();
    Ok((config, random_secret))
}

fn serve(args: ServeArgs) -> ExitCode {
    let (config, random_secret) = match resolve(args) {
        Ok(c) => c,
        Err(e) => return usage(e),
    };
    init_tracing();
    if random_secret {
        eprintln!(
            "pulse-gateway: no --jwt-secret given; using a random secret for this run \
             (tokens will not survive a restart). Log in as demo / demo."
        );
    }
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

/// The password for `user add`: two prompts without echo at a terminal, else one
/// line of standard input (its line ending removed).
fn read_password() -> Result<String, String> {
    use std::io::IsTerminal as _;
    if std::io::stdin().is_terminal() {
        let a = rpassword::prompt_password("Password: ").map_err(|e| e.to_string())?;
        let b = rpassword::prompt_password("Again: ").map_err(|e| e.to_string())?;
        if a != b {
            return Err("the passwords differ".into());
        }
        Ok(a)
    } else {
        let mut line = String::new();
        std::io::stdin()
            .read_line(&mut line)
            .map_err(|e| format!("cannot read the password from standard input: {e}"))?;
        Ok(line.trim_end_matches(['\n', '\r']).to_owned())
    }
}

fn user(args: UserArgs) -> ExitCode {
    let path = match (args.users_file, args.config) {
        (Some(p), _) => p,
        (None, Some(c)) => match FileConfig::load(&c) {
            Ok(FileConfig {
                users_file: Some(p),
                ..
            }) => p,
            Ok(_) => return usage(format!("config {} has no `users_file`", c.display())),
            Err(e) => return usage(e),
        },
        (None, None) => return usage("give --users-file FILE or --config FILE"),
    };
    let mut file = match UsersFile::load(&path) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = match args.command {
        UserCommand::List => {
            let mut out = std::io::stdout().lock();
            for u in &file.users {
                let role = match u.role {
                    Role::Viewer => "viewer",
                    Role::Publisher => "publisher",
                };
                let _ = writeln!(out, "{}\t{}\t{}", u.name, u.tenant, role);
            }
            return ExitCode::SUCCESS;
        }
        UserCommand::Add { name, tenant, role } => {
            let password = match read_password() {
                Ok(p) => p,
                Err(e) => return usage(e),
            };
            match User::new(&name, &password, &tenant, role.into()) {
                Ok(u) => file
                    .add(u)
                    .map(|()| format!("added user `{name}` of tenant `{tenant}`")),
                Err(e) => return usage(e),
            }
        }
        UserCommand::Remove { name } => {
            file.remove(&name).map(|_| format!("removed user `{name}`"))
        }
    };
    match result.and_then(|msg| file.save(&path).map(|()| msg)) {
        Ok(msg) => {
            eprintln!("pulse-gateway: {msg} in {}", path.display());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
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
