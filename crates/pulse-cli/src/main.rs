//! `pulsectl`: the headless Pulse client.
//!
//! - `watch`: follow a server, keep the cache at `--cache` in sync, print one JSON
//!   line per applied change on stdout and connection-state transitions on stderr;
//!   with several `--server`s (the nodes of a cluster) it moves to the next one
//!   when the current one is down, resuming from the cache's cursor;
//! - `status`: read the cache with no network;
//! - `approve` / `reject`: decide an approval; `edit` (with `--args JSON`) /
//!   `respond` (with `--text`): answer one that allows it (a LangGraph interrupt); `move`: move a ticket to another
//!   state; `terminate`: terminate an agent. On a Pulse gateway, or on a profile
//!   server (`--profile`) whose profile declares the action (`[actions.*]`); with
//!   `--cache`, an action the server could not be reached for is queued there and
//!   sent by the next `pulsectl watch`.
//!
//! Exit codes (see README): 0 ok, 1 other error, 2 usage, 3 unauthorized, 4 cache
//! error, 5 server unreachable, 6 conflict, 7 not found.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use pulse_core::actions::{perform_detached, Detached, NotDone, NotPerformed, Via};
use pulse_core::auth::{AuthError, Secret};
use pulse_core::rest::{RestClient, RestError};
use pulse_core::server::{FlagOrigin, Flags, Resolved, SignedOut, Speaks};
use pulse_core::session::{ActionOutcome, ConnectionState, SessionEvent, SessionHandle};
use pulse_core::store::{Action, SqliteStore, Store, StoreError, StoreHandle};
use serde_json::json;
use url::Url;

mod exit {
    pub const ERROR: u8 = 1;
    pub const USAGE: u8 = 2;
    pub const UNAUTHORIZED: u8 = 3;
    pub const CACHE: u8 = 4;
    pub const UNREACHABLE: u8 = 5;
    pub const CONFLICT: u8 = 6;
    pub const NOT_FOUND: u8 = 7;
}

#[derive(Parser)]
#[command(
    name = "pulsectl",
    version,
    about = "Headless Pulse client: follow a server, read the cache, act on approvals, tickets and agents"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Follow a server and keep a local cache in sync.
    Watch(WatchArgs),
    /// Show what the cache holds (no network).
    Status(StatusArgs),
    /// Approve an approval.
    Approve(DecideArgs),
    /// Reject an approval.
    Reject(DecideArgs),
    /// Answer an approval by accepting it with other arguments (a JSON object),
    /// where the approval allows it (a LangGraph interrupt's `edit`).
    Edit(EditArgs),
    /// Answer an approval in words (a LangGraph interrupt's `respond`).
    Respond(RespondArgs),
    /// Move a ticket to another state (a board column).
    Move(MoveArgs),
    /// Terminate an agent.
    Terminate(TerminateArgs),
}

#[derive(Args, Clone)]
struct ServerArgs {
    /// Server base URL, e.g. http://127.0.0.1:8080. Repeat it for the nodes of a
    /// cluster: `watch` moves to the next one when the current one is down.
    #[arg(long, env = "PULSE_SERVER", required = true, value_delimiter = ',')]
    server: Vec<Url>,
    /// Access token (JWT). Prefer the PULSE_TOKEN environment variable to keep it out of shell history.
    #[arg(
        long,
        env = "PULSE_TOKEN",
        hide_env_values = true,
        conflicts_with = "user"
    )]
    token: Option<String>,
    /// Sign in with this user name (password from --password or PULSE_PASSWORD).
    #[arg(long, env = "PULSE_USER", requires = "password")]
    user: Option<String>,
    /// Password for --user.
    #[arg(long, env = "PULSE_PASSWORD", hide_env_values = true)]
    password: Option<String>,
    /// Accept plain http to a server that is not on this machine (the token then
    /// crosses the network unencrypted). Without it such a --server is refused.
    #[arg(long, env = "PULSE_ALLOW_HTTP")]
    allow_http: bool,
    /// Also trust the CA certificates (PEM) in this file, e.g. an enterprise's
    /// private CA. Verification always stays on.
    #[arg(long, env = "PULSE_CA_FILE")]
    ca_file: Option<std::path::PathBuf>,
}

impl ServerArgs {
    /// Resolve these flags (with `speaks` and `stream`) into what a session needs,
    /// for the first server (`watch` adds the others as its nodes).
    fn resolve(&self, speaks: Speaks, stream: Option<String>) -> Result<Resolved, Failure> {
        let url = self
            .server
            .first()
            .ok_or_else(|| Failure::new(exit::USAGE, "--server is required".into()))?;
        if let Some(ca) = &self.ca_file {
            pulse_core::transport::tls::trust_ca_file(ca)
                .map_err(|e| Failure::new(exit::USAGE, e))?;
        }
        Flags {
            origin: FlagOrigin::CommandLine,
            url: url.to_string(),
            speaks,
            token: self.token.as_deref().map(|t| Secret::new(t.trim())),
            password: self
                .user
                .clone()
                .zip(self.password.clone().map(Secret::new)),
            stream,
            allow_plain_http: self.allow_http,
        }
        .resolve(None)
        .map_err(Failure::signed_out)
    }
}

#[derive(Args)]
struct WatchArgs {
    #[command(flatten)]
    server: ServerArgs,
    /// Cache file (SQLite); created if missing.
    #[arg(long)]
    cache: PathBuf,
    /// Print connection-state transitions on stderr as JSON too.
    #[arg(long)]
    json: bool,
    /// Stream to follow (default: the token's tenant).
    #[arg(long)]
    stream: Option<String>,
    /// Seconds between polls when the socket is unavailable.
    #[arg(long, default_value = "5", value_parser = parse_secs)]
    poll_interval: Duration,
    /// Seconds between socket attempts while polling.
    #[arg(long, default_value = "30", value_parser = parse_secs)]
    socket_retry: Duration,
    /// Never open the socket: keep the data fresh by REST polling only (a Pulse
    /// gateway's `/v1/events`, a profile's REST resources).
    #[arg(long)]
    poll: bool,
    /// Speak a non-Pulse server's dialect: a built-in profile name (agent-monitor,
    /// event-bridge, nest-realtime, fastapi-dashboard, tasks-gateway) or a TOML file.
    /// `--server` is then the server's base URL; the profile knows its paths.
    #[arg(long, value_name = "NAME|PATH")]
    profile: Option<String>,
}

#[derive(Args)]
struct StatusArgs {
    /// Cache file to read.
    #[arg(long)]
    cache: PathBuf,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

/// What every action command takes besides its own arguments.
#[derive(Args)]
struct ActArgs {
    #[command(flatten)]
    server: ServerArgs,
    /// Speak a non-Pulse server's dialect (as for `watch`); the profile declares
    /// how the server takes the action (`[actions.*]`).
    #[arg(long, value_name = "NAME|PATH")]
    profile: Option<String>,
    /// Cache file: when the server is unreachable, the action is queued there and sent by the next `pulsectl watch`.
    #[arg(long)]
    cache: Option<PathBuf>,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct DecideArgs {
    /// Approval id.
    id: String,
    /// Why (shown to others).
    #[arg(long)]
    reason: Option<String>,
    #[command(flatten)]
    act: ActArgs,
}

#[derive(Args)]
struct EditArgs {
    /// Approval id.
    id: String,
    /// The arguments to act with instead: a JSON object (`-` reads it from stdin).
    #[arg(long)]
    args: String,
    #[command(flatten)]
    act: ActArgs,
}

#[derive(Args)]
struct RespondArgs {
    /// Approval id.
    id: String,
    /// The answer.
    #[arg(long)]
    text: String,
    #[command(flatten)]
    act: ActArgs,
}

/// `--args` of `edit`: a JSON object, checked before anything is sent.
fn edited_args(text: &str) -> Result<serde_json::Value, Failure> {
    let text = if text == "-" {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut s).map_err(|e| {
            Failure::new(exit::USAGE, format!("cannot read --args from stdin: {e}"))
        })?;
        s
    } else {
        text.to_owned()
    };
    match serde_json::from_str::<serde_json::Value>(&text) {
        Ok(v) if v.is_object() => Ok(v),
        Ok(_) => Err(Failure::new(
            exit::USAGE,
            "--args must be a JSON object".into(),
        )),
        Err(e) => Err(Failure::new(
            exit::USAGE,
            format!("--args is not JSON: {e}"),
        )),
    }
}

#[derive(Args)]
struct MoveArgs {
    /// Ticket id.
    ticket: String,
    /// The state (board column) to move it to.
    #[arg(long = "to", value_name = "STATE")]
    to: String,
    #[command(flatten)]
    act: ActArgs,
}

#[derive(Args)]
struct TerminateArgs {
    /// Agent id.
    agent: String,
    /// Why (shown to others).
    #[arg(long)]
    reason: Option<String>,
    #[command(flatten)]
    act: ActArgs,
}

struct Failure {
    code: u8,
    message: String,
}

impl Failure {
    fn new(code: u8, message: String) -> Self {
        Failure { code, message }
    }
    fn cache(e: StoreError) -> Self {
        Failure::new(exit::CACHE, e.to_string())
    }
    fn signed_out(e: SignedOut) -> Self {
        let code = if e.is_usage() {
            exit::USAGE
        } else {
            exit::ERROR
        };
        Failure::new(code, e.message())
    }
}

/// A number of seconds (`0.2`, `30`): finite, not negative, at most a day;
/// anything else is a usage error, never a panic or an endless wait.
fn parse_secs(s: &str) -> Result<Duration, String> {
    let v: f64 = s
        .trim()
        .parse()
        .map_err(|_| format!("`{s}` is not a number of seconds"))?;
    if !v.is_finite() || v < 0.0 {
        return Err(format!(
            "`{s}` must be a finite, non-negative number of seconds"
        ));
    }
    Duration::try_from_secs_f64(v)
        .ok()
        .filter(|d| *d <= Duration::from_secs(86_400))
        .ok_or_else(|| format!("`{s}` seconds is more than a day"))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let mut filter = tracing_subscriber::EnvFilter::try_from_env("PULSE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    for d in pulse_core::protocol::log_directives() {
        if let Ok(d) = d.parse() {
            filter = filter.add_directive(d);
        }
    }
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("pulsectl: cannot start: {e}");
            return ExitCode::from(exit::ERROR);
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Watch(a) => watch(a).await,
            Command::Status(a) => status(a),
            Command::Approve(a) => {
                let action = Action::Approve {
                    id: a.id,
                    reason: a.reason,
                };
                act(a.act, action).await
            }
            Command::Reject(a) => {
                let action = Action::Reject {
                    id: a.id,
                    reason: a.reason,
                };
                act(a.act, action).await
            }
            Command::Edit(a) => {
                let action = Action::Edit {
                    id: a.id,
                    args: edited_args(&a.args)?,
                };
                act(a.act, action).await
            }
            Command::Respond(a) => {
                if a.text.trim().is_empty() {
                    return Err(Failure::new(exit::USAGE, "--text must not be empty".into()));
                }
                let action = Action::Respond {
                    id: a.id,
                    text: a.text,
                };
                act(a.act, action).await
            }
            Command::Move(a) => {
                let action = Action::MoveTicket {
                    id: a.ticket,
                    state: a.to,
                };
                act(a.act, action).await
            }
            Command::Terminate(a) => {
                let action = Action::TerminateAgent {
                    id: a.agent,
                    reason: a.reason,
                };
                act(a.act, action).await
            }
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => {
            eprintln!("pulsectl: {}", f.message);
            ExitCode::from(f.code)
        }
    }
}

fn describe(state: &ConnectionState) -> String {
    match state {
        ConnectionState::Connecting { attempt } => format!("connecting (attempt {attempt})"),
        ConnectionState::Live => "live".into(),
        ConnectionState::Polling { reason } => format!("polling over REST ({reason})"),
        ConnectionState::Reconnecting {
            attempt,
            retry_at_ms,
            error,
        } => format!(
            "reconnecting in {:.1} s (attempt {attempt}): {error}",
            (retry_at_ms - pulse_core::now_ms()).max(0) as f64 / 1000.0
        ),
        ConnectionState::Failed {
            attempts,
            retry_at_ms,
            error,
        } => format!(
            "failed after {attempts} attempts, still retrying in {:.0} s: {error}",
            (retry_at_ms - pulse_core::now_ms()).max(0) as f64 / 1000.0
        ),
        ConnectionState::Unauthorized { message } => format!("unauthorized: {message}"),
        ConnectionState::Stopped => "stopped".into(),
    }
}

/// Parsed entities `pulsectl watch` keeps in its store's cache: few, so that a
/// busy stream over a large tenant does not grow the process (its memory target
/// is 16 MiB); the desktop app keeps the store's default.
const WATCH_ENTITY_CACHE: usize = 256;

async fn watch(args: WatchArgs) -> Result<(), Failure> {
    let mut store = SqliteStore::open(&args.cache).map_err(Failure::cache)?;
    store.set_entity_cache_entries(WATCH_ENTITY_CACHE);
    // A profile's server may have no auth (seed 004): no token is then fine.
    let speaks = args
        .profile
        .as_deref()
        .map_or(Speaks::Native, Speaks::parse);
    let store = StoreHandle::new(store);
    let Resolved {
        tokens, mut config, ..
    } = args.server.resolve(speaks, args.stream.clone())?;
    // The other --servers are nodes of the same server: the session moves between
    // them (pulse_core::failover), resuming from the cache's cursor.
    config.nodes = args.server.server.iter().skip(1).cloned().collect();
    config.poll_interval = args.poll_interval.max(Duration::from_millis(50));
    config.socket_retry_interval = args.socket_retry.max(Duration::from_millis(50));
    config.force_polling = args.poll;
    let handle = SessionHandle::spawn(config, tokens, store.clone())
        .map_err(|e| Failure::new(exit::ERROR, e.to_string()))?;
    let mut events = handle.subscribe();
    let mut status = handle.status();
    let mut last_state = None;
    let mut last_node = status.borrow().node.clone();
    let mut sigterm = signal_term();
    let stdout = std::io::stdout();
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => break,
            _ = sigterm.recv() => break,
            changed = status.changed() => {
                if changed.is_err() { break; }
                let st = status.borrow_and_update().clone();
                if st.node != last_node {
                    if let Some(node) = &st.node {
                        eprintln!("pulsectl: moving to {node}");
                    }
                    last_node = st.node.clone();
                }
                if last_state.as_ref() != Some(&st.state) {
                    if args.json {
                        eprintln!("{}", json!({"state": st.state, "cursor": st.cursor, "node": st.node, "counters": st.counters}));
                    } else {
                        eprintln!("pulsectl: {}", describe(&st.state));
                    }
                    if let ConnectionState::Unauthorized { message } = &st.state {
                        handle.stop().await;
                        return Err(Failure::new(exit::UNAUTHORIZED, format!("unauthorized: {message}")));
                    }
                    last_state = Some(st.state);
                }
            }
            ev = events.recv() => match ev {
                Ok(ev) => {
                    let mut out = stdout.lock();
                    if print_event(&mut out, &ev).is_err() {
                        break; // stdout closed
                    }
                }
                Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                    eprintln!("pulsectl: output fell behind; {n} batches not printed (the cache has them)");
                }
                Err(_) => break,
            },
        }
    }
    handle.stop().await;
    Ok(())
}

fn print_event(out: &mut impl Write, ev: &SessionEvent) -> std::io::Result<()> {
    match ev {
        SessionEvent::Applied {
            stream,
            events,
            catching_up,
        } => {
            for e in events.iter() {
                for c in &e.changes {
                    writeln!(
                        out,
                        "{}",
                        json!({"stream": stream, "seq": e.seq, "type": e.event_type, "catching_up": catching_up, "change": c})
                    )?;
                }
            }
        }
        SessionEvent::SnapshotLoaded {
            stream,
            seq,
            entities,
        } => {
            writeln!(
                out,
                "{}",
                json!({"stream": stream, "seq": seq, "snapshot": {"entities": entities}})
            )?;
        }
        SessionEvent::ActionSettled {
            outbox_id,
            action,
            outcome,
        } => {
            writeln!(
                out,
                "{}",
                json!({"outbox_id": outbox_id, "action": action, "outcome": outcome})
            )?;
        }
    }
    out.flush()
}

#[cfg(unix)]
fn signal_term() -> tokio::signal::unix::Signal {
    tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("SIGTERM handler")
}

#[cfg(not(unix))]
fn signal_term() -> NeverSignal {
    NeverSignal
}

#[cfg(not(unix))]
struct NeverSignal;
#[cfg(not(unix))]
impl NeverSignal {
    async fn recv(&mut self) -> Option<()> {
        std::future::pending().await
    }
}

fn status(args: StatusArgs) -> Result<(), Failure> {
    let store = SqliteStore::open_read_only(&args.cache).map_err(Failure::cache)?;
    let summary = store.summary().map_err(Failure::cache)?;
    let pending = store.outbox().map_err(Failure::cache)?;
    if args.json {
        println!(
            "{}",
            json!({
                "cache": args.cache,
                "counts": summary.counts,
                "cursors": summary.cursors,
                "outbox": pending,
                "last_sync_ms": summary.last_sync_ms,
            })
        );
        return Ok(());
    }
    println!("cache: {}", args.cache.display());
    match summary.last_sync_ms {
        Some(ms) => println!(
            "last sync: {} ({} ago)",
            format_utc(ms),
            format_age(pulse_core::now_ms() - ms)
        ),
        None => println!("last sync: never"),
    }
    for (stream, c) in &summary.cursors {
        println!("stream {stream}: seq {} (epoch {})", c.seq, c.epoch);
    }
    if summary.counts.is_empty() {
        println!("no entities cached");
    }
    for (kind, n) in &summary.counts {
        let label = match kind {
            pulse_protocol::domain::EntityKind::Stats => "stats blocks".to_owned(),
            other => format!("{other}s"),
        };
        println!("{:<16}{n}", format!("{label}:"));
    }
    if !pending.is_empty() {
        println!("{} queued action(s) waiting to be sent", pending.len());
    }
    Ok(())
}

fn format_age(ms: i64) -> String {
    let s = ms.max(0) / 1000;
    match s {
        0..=59 => format!("{s} s"),
        60..=3599 => format!("{} min", s / 60),
        3600..=86_399 => format!("{} h {} min", s / 3600, (s % 3600) / 60),
        _ => format!("{} d", s / 86_400),
    }
}

fn format_utc(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // civil from days (Howard Hinnant)
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02} UTC",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

/// How an action reads in messages: (what, done): ("approval a1", "approved").
fn wording(action: &Action) -> (String, String) {
    match action {
        Action::Approve { id, .. } => (format!("approval {id}"), "approved".into()),
        Action::Reject { id, .. } => (format!("approval {id}"), "rejected".into()),
        Action::Edit { id, .. } => (format!("approval {id}"), "approved with edits".into()),
        Action::Respond { id, .. } => (format!("approval {id}"), "answered".into()),
        Action::MoveTicket { id, state } => (format!("ticket {id}"), format!("moved to {state}")),
        Action::TerminateAgent { id, .. } => (format!("agent {id}"), "terminated".into()),
    }
}

/// Send `action` (or queue it with `--cache` when the server cannot be reached).
async fn act(args: ActArgs, action: Action) -> Result<(), Failure> {
    let speaks = args
        .profile
        .as_deref()
        .map_or(Speaks::Native, Speaks::parse);
    let resolved = args.server.resolve(speaks, None)?;
    let (what, verb) = wording(&action);
    let rest = RestClient::new(resolved.config.server.clone())
        .map_err(|e| Failure::new(exit::ERROR, e.to_string()))?;
    let outbox = args
        .cache
        .as_deref()
        .map(|path| move || SqliteStore::open(path).map(StoreHandle::new));
    let via = Via {
        rest: &rest,
        tokens: resolved.tokens.as_ref(),
        dialect: resolved.config.dialect.as_ref(),
    };
    // Queued for the server and user this command acts as (only a session of the
    // same server and user sends it).
    let result = perform_detached(Some(via), &resolved.config.owner, &action, outbox).await;
    let print = |outcome: &ActionOutcome| {
        if args.json {
            println!("{}", json!(outcome));
        }
    };
    match result {
        Ok(Detached::Done(entity)) => {
            print(&ActionOutcome::Done { entity });
            if !args.json {
                println!("{what} {verb}");
            }
            Ok(())
        }
        Ok(Detached::Queued {
            outbox_id,
            unreachable,
        }) => {
            print(&ActionOutcome::Queued { outbox_id });
            if let (false, Some(e), Some(path)) = (args.json, unreachable, &args.cache) {
                println!(
                    "server unreachable ({e}); queued in {} and sent by the next `pulsectl watch`",
                    path.display()
                );
            }
            Ok(())
        }
        Err(NotPerformed::NotDone(NotDone::Rest(RestError::Conflict { message, current }))) => {
            let field = if action.kind().target() == pulse_protocol::domain::EntityKind::Ticket {
                "state"
            } else {
                "status"
            };
            let now = current
                .as_ref()
                .and_then(|c| c.get(field))
                .and_then(|s| s.as_str())
                .map(|s| format!(": it is already {s}"))
                .unwrap_or_default();
            print(&ActionOutcome::Conflict {
                message: message.clone(),
                current,
            });
            Err(Failure::new(
                exit::CONFLICT,
                format!("{what} was not {verb}{now} ({message})"),
            ))
        }
        Err(NotPerformed::NotDone(NotDone::Rest(RestError::NotFound(m)))) => {
            Err(Failure::new(exit::NOT_FOUND, format!("no {what}: {m}")))
        }
        Err(NotPerformed::NotDone(NotDone::Token(AuthError::Unauthorized(m)))) => {
            Err(Failure::new(exit::UNAUTHORIZED, m))
        }
        Err(NotPerformed::NotDone(NotDone::Rest(RestError::Unauthorized { message, .. }))) => Err(
            Failure::new(exit::UNAUTHORIZED, format!("unauthorized: {message}")),
        ),
        Err(NotPerformed::NotDone(e)) if e.is_unreachable() => Err(Failure::new(
            exit::UNREACHABLE,
            format!("{e} (give --cache to queue it instead)"),
        )),
        Err(NotPerformed::NotDone(e @ NotDone::Unsupported(_))) => {
            Err(Failure::new(exit::USAGE, e.to_string()))
        }
        Err(NotPerformed::NotDone(e)) => {
            print(&ActionOutcome::Rejected {
                message: e.to_string(),
            });
            Err(Failure::new(
                exit::ERROR,
                format!("{what} was not {verb}: {e}"),
            ))
        }
        Err(NotPerformed::Queue(e)) => Err(Failure::cache(e)),
        Err(e) => Err(Failure::new(exit::ERROR, e.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_from_the_command_line_are_finite_and_bounded() {
        assert_eq!(parse_secs("0.2").unwrap(), Duration::from_millis(200));
        assert_eq!(parse_secs("30").unwrap(), Duration::from_secs(30));
        for bad in ["inf", "-inf", "NaN", "-1", "1e300", "86401", "x", ""] {
            assert!(parse_secs(bad).is_err(), "{bad}");
        }
    }
}
