//! The shell's state: which server, its cache, its session (a `pulse_core::app::App`),
//! the embedded demo gateway, and the bridge from app events to the UI and tray.
//!
//! Start-up order (the "paint from cache first" rule): [`Shell::prepare`] opens the
//! settings and the server's SQLite cache synchronously, before the window loads, so
//! the UI's first `bootstrap` reads the cache; only then [`Shell::start_network`]
//! starts the demo gateway (if any), signs in and spawns the session.
//!
//! The first paint's data comes in pieces ([`Shell::bootstrap`], [`first_piece`]):
//! the cache is read once when it is opened (beside the window's start), and the
//! UI's bootstrap answers the counts, every stats block and the first
//! [`FIRST_ROWS`] of each other kind from that read; the rest is handed out in
//! chunks of [`BOOTSTRAP_CHUNK`] ([`Shell::bootstrap_more`]). The read is used only
//! while nothing changed since (no update, reset, or outbox event was forwarded);
//! otherwise the bootstrap reads the cache again. Every change committed after the
//! read reaches the UI as an event after it listens, so the UI's state after the
//! last chunk is the cache's.
//!
//! The server is chosen in this order: `PULSE_SERVER` (with `PULSE_TOKEN`, or
//! `PULSE_USERNAME` + `PULSE_PASSWORD`), then the settings' active server (its
//! refresh token in the OS keyring), then the embedded demo gateway.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use pulse_core::actions::perform_detached;
use pulse_core::app::{App, AppEvent, AppOptions, Counts, NotificationCentre};
use pulse_core::auth::Secret;
use pulse_core::credentials::{CredentialStore, MemoryCredentials, StoredLogin};
use pulse_core::policy::{reply_applies, NotificationAction, Origin, PolicyConfig};
use pulse_core::rest::RestClient;
use pulse_core::server::{self, http_url, FlagOrigin, Flags, Keys, Resolved, Speaks};
use pulse_core::session::{ActionOutcome, ConnectionState, Intent, SessionHandle};
use pulse_core::store::{Action, MemoryStore, SqliteStore, StoreHandle};
use pulse_gateway::{Config as GatewayConfig, DemoConfig, RunningGateway};
use pulse_protocol::domain::{page_of, Entity, EntityKind, Object};
use serde::Serialize;
use tracing::{info, warn};

use crate::dto::{
    events, Account, BatchTrace, Bootstrap, BootstrapChunk, CommandError, ConnectionView,
    RaisedNotification, SavedServer, Settings, SettledAction, Target, UpdateBatch,
};
use crate::latency;
use crate::notifier::{OsNotifier, Reply};
use crate::paths::Paths;

/// How long a sign-out waits for the server to revoke its session before it
/// forgets the sign-in here anyway.
const SIGN_OUT_AT_SERVER: std::time::Duration = std::time::Duration::from_secs(5);

/// Rows of each kind (besides stats blocks, all of which come) in a bootstrap's first
/// piece: enough for the first screen's lists before the rest streams in.
pub const FIRST_ROWS: usize = 200;

/// Entities per chunk of a bootstrap's stream.
pub const BOOTSTRAP_CHUNK: usize = 5_000;

/// Split `entities` (the cache's order) into a bootstrap's first piece (every stats
/// block and the first [`FIRST_ROWS`] of each other kind, in their order) and the
/// rest (in their order).
pub fn first_piece(entities: Vec<Entity>) -> (Vec<Entity>, VecDeque<Entity>) {
    let mut first = Vec::new();
    let mut rest = VecDeque::new();
    let mut taken: std::collections::HashMap<EntityKind, usize> = Default::default();
    for e in entities {
        let n = taken.entry(e.kind).or_default();
        if e.kind == EntityKind::Stats || *n < FIRST_ROWS {
            *n += 1;
            first.push(e);
        } else {
            rest.push_back(e);
        }
    }
    (first, rest)
}

/// The kinds of `rest`, each once, in their order.
fn kinds_of<'a>(rest: impl IntoIterator<Item = &'a Entity>) -> Vec<EntityKind> {
    let mut out: Vec<EntityKind> = Vec::new();
    for e in rest {
        if !out.contains(&e.kind) {
            out.push(e.kind);
        }
    }
    out
}

/// The rest of a bootstrap, handed out by [`Shell::bootstrap_more`].
struct BootStream {
    id: u64,
    rest: VecDeque<Entity>,
}

/// The cache as read when it was opened, for the first bootstrap.
struct Prefetched {
    entities: Vec<Entity>,
    /// [`Shell::changes`] when it was read.
    changes: u64,
}

/// What the shell needs from the windowing side (Tauri in the app, a recorder in tests).
pub trait Hooks: Send + Sync + 'static {
    /// Send an event to the UI.
    fn emit(&self, event: &str, payload: serde_json::Value);
    /// New badge counts (the tray); `paused` when notifications are paused.
    fn counts(&self, counts: Counts, paused: bool);
    /// Bring the window to the front.
    fn show_window(&self);
    /// Start (or not) at login.
    fn set_autostart(&self, on: bool) -> Result<(), String>;
}

/// Settings given by the environment (tests, scripted use). Never written anywhere.
#[derive(Clone, Default)]
pub struct EnvOverrides {
    /// `PULSE_SERVER`.
    pub server: Option<String>,
    /// `PULSE_TOKEN`.
    pub token: Option<Secret>,
    /// `PULSE_USERNAME`.
    pub username: Option<String>,
    /// `PULSE_PASSWORD`.
    pub password: Option<Secret>,
    /// `PULSE_TENANT`.
    pub tenant: Option<String>,
    /// `PULSE_DEMO_SPEED`: time factor of the demo simulator.
    pub demo_speed: Option<f64>,
    /// `PULSE_RECONNECT_CAP_SECS`: longest wait between reconnect attempts.
    pub reconnect_cap: Option<Duration>,
}

impl std::fmt::Debug for EnvOverrides {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EnvOverrides")
            .field("server", &self.server)
            .field("token", &self.token.as_ref().map(|_| "***"))
            .field("username", &self.username)
            .field("tenant", &self.tenant)
            .finish_non_exhaustive()
    }
}

impl EnvOverrides {
    /// Read the `PULSE_*` variables.
    pub fn from_env() -> Self {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.trim().is_empty());
        EnvOverrides {
            server: var("PULSE_SERVER"),
            token: var("PULSE_TOKEN").map(Secret::new),
            username: var("PULSE_USERNAME"),
            password: var("PULSE_PASSWORD").map(Secret::new),
            tenant: var("PULSE_TENANT"),
            demo_speed: var("PULSE_DEMO_SPEED").and_then(|v| v.parse().ok()),
            reconnect_cap: var("PULSE_RECONNECT_CAP_SECS")
                .and_then(|v| v.parse().ok())
                .map(Duration::from_secs_f64),
        }
    }
}

/// Where the current connection goes.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Source {
    /// The embedded demo gateway.
    Demo,
    /// `PULSE_SERVER`.
    Env { url: String },
    /// A saved server.
    Profile(SavedServer),
}

impl Source {
    /// How the server is spoken to (the demo and `PULSE_SERVER` are Pulse gateways).
    fn speaks(&self) -> Speaks {
        match self {
            Source::Profile(p) => p.speaks(),
            Source::Demo | Source::Env { .. } => Speaks::Native,
        }
    }
}

/// A saved server of the settings as the core resolves it.
fn saved_server(p: &SavedServer) -> server::SavedServer {
    server::SavedServer {
        name: p.name.clone(),
        url: p.url.clone(),
        speaks: p.speaks(),
        tenant: p.tenant.clone(),
        username: p.username.clone(),
        projects: p.projects.clone(),
        force_polling: p.force_polling,
        nodes: p.nodes.clone(),
        allow_plain_http: p.allow_plain_http,
    }
}

/// The current server, its cache and (when signed in) its session.
struct Connection {
    source: Source,
    cache_id: String,
    store: StoreHandle,
    app: Option<App>,
    gateway: Option<RunningGateway>,
    url: Option<String>,
    username: Option<String>,
    login: Option<Arc<StoredLogin>>,
    /// A profile server's caveat, shown before its session publishes its own.
    caveat: Option<String>,
    /// What was lost when its corrupt cache was moved aside at open
    /// (`SetAside::message`), for the UI.
    set_aside: Option<String>,
    /// The cache as read at open, until the first bootstrap takes it.
    prefetched: Option<Prefetched>,
}

/// State shared with the event forwarder (a plain mutex: never held across await).
#[derive(Default)]
struct Live {
    view: Option<ConnectionView>,
    counts: Counts,
    generation: u64,
}

/// The shell (managed Tauri state).
pub struct Shell {
    paths: Paths,
    env: EnvOverrides,
    hooks: Arc<dyn Hooks>,
    notifier: Arc<OsNotifier>,
    credentials: Arc<dyn CredentialStore>,
    /// Whether the OS keyring answers (probed beside the window's start).
    keyring: crate::keyring_store::KeyringProbe,
    settings: Mutex<Settings>,
    conn: tokio::sync::Mutex<Option<Connection>>,
    live: Mutex<Live>,
    /// Notifications shown and read marks, across connections (each `App` records
    /// into it).
    centre: NotificationCentre,
    /// Fallback for sign-ins when there is no keyring: remembered for this run only.
    memory_credentials: Arc<MemoryCredentials>,
    /// A link to open once the UI has loaded.
    pending_target: Mutex<Option<Target>>,
    /// Events forwarded that change what a bootstrap reads (updates, resets,
    /// outbox): a read older than the last of them is not used.
    changes: AtomicU64,
    /// The rest of the last bootstrap, streamed by `bootstrap_more`.
    boot_stream: Mutex<Option<BootStream>>,
    /// The last bootstrap stream's id.
    boot_seq: AtomicU64,
}

fn now_ms() -> i64 {
    pulse_core::now_ms()
}

fn to_json<T: Serialize>(v: &T) -> serde_json::Value {
    serde_json::to_value(v).unwrap_or(serde_json::Value::Null)
}

impl Shell {
    /// A shell over `paths`. `credentials` is the OS keyring in the app; `keyring` says
    /// whether it answers (the app still runs, signed out, when it does not): an
    /// answer, or a probe still running, waited for where it is first needed.
    pub fn new(
        paths: Paths,
        env: EnvOverrides,
        hooks: Arc<dyn Hooks>,
        credentials: Arc<dyn CredentialStore>,
        keyring: impl Into<crate::keyring_store::KeyringProbe>,
        replies: std::sync::mpsc::Sender<Reply>,
    ) -> Arc<Shell> {
        let settings = paths.load_settings();
        let centre = NotificationCentre::new(paths.load_read());
        let notifier = Arc::new(OsNotifier::new(replies));
        notifier.set_enabled(settings.notifications.enabled);
        // The settings' CA file, unless PULSE_CA_FILE (trusted by `run`) is given.
        if std::env::var_os("PULSE_CA_FILE").is_none() {
            if let Some(ca) = &settings.ca_file {
                if let Err(e) = pulse_core::transport::tls::trust_ca_file(ca.as_ref()) {
                    warn!(error = %e, "the CA file of the settings cannot be used");
                }
            }
        }
        Arc::new(Shell {
            paths,
            env,
            hooks,
            notifier,
            credentials,
            keyring: keyring.into(),
            settings: Mutex::new(settings),
            conn: tokio::sync::Mutex::new(None),
            live: Mutex::new(Live::default()),
            centre,
            memory_credentials: Arc::new(MemoryCredentials::default()),
            pending_target: Mutex::new(None),
            changes: AtomicU64::new(0),
            boot_stream: Mutex::new(None),
            boot_seq: AtomicU64::new(0),
        })
    }

    /// The settings in use.
    pub fn settings(&self) -> Settings {
        self.settings.lock().expect("settings lock").clone()
    }

    fn source(&self) -> Source {
        if let Some(url) = &self.env.server {
            return Source::Env { url: url.clone() };
        }
        let s = self.settings();
        match s
            .active_server
            .as_ref()
            .and_then(|id| s.servers.iter().find(|p| &p.id == id))
        {
            Some(p) => Source::Profile(p.clone()),
            None => Source::Demo,
        }
    }

    /// The cache of server `id`, and the set-aside message when a corrupt one was
    /// moved aside (shown in the UI: `Bootstrap::cache_set_aside`).
    fn open_cache(&self, id: &str) -> (StoreHandle, Option<String>) {
        let path = self.paths.cache_file(id);
        if let Some(dir) = path.parent() {
            let _ = pulse_core::files::create_private_dir(dir);
        }
        // Moved aside only when actually corrupt (with -wal/-shm); any other
        // failure keeps the file and this run's data in memory.
        match SqliteStore::open_or_set_aside(&path) {
            Ok((s, None)) => (StoreHandle::new(s), None),
            Ok((s, Some(aside))) => {
                let message = aside.message();
                warn!(path = %path.display(), "{message}");
                (StoreHandle::new(s), Some(message))
            }
            Err(e) => {
                warn!(path = %path.display(), error = %e, "cache unusable (left in place); keeping data in memory");
                (StoreHandle::new(MemoryStore::new()), None)
            }
        }
    }

    /// Open the cache of the chosen server (no network). Idempotent.
    pub async fn prepare(&self) {
        let mut conn = self.conn.lock().await;
        if conn.is_some() {
            return;
        }
        *conn = Some(self.new_connection());
    }

    fn new_connection(&self) -> Connection {
        let source = self.source();
        let (cache_id, url, username) = match &source {
            Source::Demo => ("demo".to_owned(), None, Some("demo".to_owned())),
            Source::Env { url } => (
                format!("env-{}", url_id(url)),
                Some(url.clone()),
                self.env.username.clone(),
            ),
            Source::Profile(p) => (p.id.clone(), Some(p.url.clone()), p.username.clone()),
        };
        let (store, set_aside) = self.open_cache(&cache_id);
        let last_sync = store.summary().ok().and_then(|s| s.last_sync_ms);
        // One read of the whole cache: the counts, and the first bootstrap's entities.
        let changes = self.changes.load(Ordering::SeqCst);
        let read = store.all();
        let counts = match &read {
            Ok(all) => pulse_core::app::CountTracker::from_entities(all).counts(),
            Err(e) => {
                warn!(error = %e, "cache not readable at open");
                Counts::default()
            }
        };
        let prefetched = read.ok().map(|entities| Prefetched { entities, changes });
        let view = ConnectionView {
            state: ConnectionState::Connecting { attempt: 1 }.into(),
            last_sync_ms: last_sync,
            server: url.clone(),
            demo: source == Source::Demo,
            caveat: None,
        };
        {
            let mut live = self.live.lock().expect("live lock");
            live.generation += 1;
            live.view = Some(view);
            live.counts = counts;
        }
        info!(cache = %cache_id, demo = (source == Source::Demo), "cache opened");
        Connection {
            source,
            cache_id,
            store,
            app: None,
            gateway: None,
            url,
            username,
            login: None,
            caveat: None,
            set_aside,
            prefetched,
        }
    }

    fn credential_store(&self) -> Arc<dyn CredentialStore> {
        if self.keyring.answer().is_ok() {
            self.credentials.clone()
        } else {
            self.memory_credentials.clone()
        }
    }

    fn policy_config(&self) -> PolicyConfig {
        let s = self.settings().notifications;
        PolicyConfig {
            approvals: s.approvals,
            escalations: s.escalations,
            agent_failures: s.agent_failures,
            escalations_bypass_dnd: s.escalations_bypass_dnd,
            dnd_until_ms: s.dnd_until_ms,
            remind_after_min: s.remind_after_min,
            ..PolicyConfig::default()
        }
    }

    fn set_view(&self, view: ConnectionView) {
        self.live.lock().expect("live lock").view = Some(view.clone());
        self.hooks.emit(events::CONNECTION, to_json(&view));
    }

    fn signed_out(&self, conn: &Connection, message: String) {
        let last = conn.store.summary().ok().and_then(|s| s.last_sync_ms);
        info!(%message, "signed out");
        self.set_view(ConnectionView::signed_out(message, conn.url.clone(), last));
    }

    /// Start the gateway (demo), sign in and spawn the session. Runs on the async
    /// runtime; does nothing when a session already runs.
    pub async fn start_network(self: &Arc<Self>) {
        let mut guard = self.conn.lock().await;
        if guard.is_none() {
            *guard = Some(self.new_connection());
        }
        let conn = guard.as_mut().expect("connection");
        if conn.app.is_some() {
            return;
        }
        let resolved = match conn.source.clone() {
            Source::Demo => match self.start_demo(conn).await {
                Some(url) => Flags::demo(&url).resolve(None),
                None => return,
            },
            Source::Env { url } => self.env_flags(url).resolve(conn.login.clone()),
            Source::Profile(p) => saved_server(&p).resolve(&Keys {
                store: self.credential_store(),
                keyring_error: self.keyring.answer().clone().err(),
                signed_in: conn.login.clone(),
            }),
        };
        let Resolved {
            speaks,
            tokens,
            mut config,
            caveat,
            login,
        } = match resolved {
            Ok(r) => r,
            Err(why) => {
                self.signed_out(conn, why.message());
                return;
            }
        };
        if login.is_some() {
            conn.login = login;
        }
        conn.caveat = caveat;
        self.notifier.set_actions(speaks.actions());
        self.notifier.set_origin(Some(self.origin(conn)));
        // Actions are queued for, and only sent by, this server and account.
        config.owner = owner_of(conn);
        if let Some(cap) = self.env.reconnect_cap {
            config.backoff.cap = cap;
            config.backoff.base = config.backoff.base.min(cap);
        }
        let session = match SessionHandle::spawn(config, tokens, conn.store.clone()) {
            Ok(s) => s,
            Err(e) => {
                self.signed_out(conn, format!("Could not start: {e}"));
                return;
            }
        };
        let options = AppOptions {
            policy: self.policy_config(),
            centre: self.centre.clone(),
            ..AppOptions::default()
        };
        match App::start(session.clone(), self.notifier.clone(), options) {
            Ok((app, rx)) => {
                conn.app = Some(app);
                let generation = self.live.lock().expect("live lock").generation;
                let me = self.clone();
                let demo = conn.source == Source::Demo;
                let url = conn.url.clone();
                let caveat = conn.caveat.clone();
                tauri::async_runtime::spawn(async move {
                    me.forward(rx, generation, url, demo, caveat).await;
                });
            }
            Err(e) => {
                session.stop().await;
                self.signed_out(conn, format!("The cache could not be read: {e}"));
            }
        }
    }

    /// Start the embedded demo gateway (or keep the one running); its URL, or `None`
    /// (shown as failed) when it cannot start.
    async fn start_demo(&self, conn: &mut Connection) -> Option<String> {
        let gw = match conn.gateway.take() {
            Some(gw) => gw,
            None => {
                let cfg = GatewayConfig {
                    demo: Some(DemoConfig {
                        speed: self.env.demo_speed.unwrap_or(1.0),
                        ..DemoConfig::default()
                    }),
                    ..GatewayConfig::default()
                };
                match pulse_gateway::Gateway::start(cfg).await {
                    Ok(gw) => gw,
                    Err(e) => {
                        let view = ConnectionView {
                            state: ConnectionState::Failed {
                                attempts: 1,
                                retry_at_ms: 0,
                                error: format!("the demo gateway could not start: {e}"),
                            }
                            .into(),
                            ..self.view()
                        };
                        self.set_view(view);
                        return None;
                    }
                }
            }
        };
        let url = gw.url();
        info!(%url, "embedded demo gateway started");
        conn.url = Some(url.clone());
        conn.gateway = Some(gw);
        Some(url)
    }

    /// `PULSE_SERVER` at `url` with the other `PULSE_*` variables.
    fn env_flags(&self, url: String) -> Flags {
        Flags {
            origin: FlagOrigin::Env,
            url,
            speaks: Speaks::Native,
            token: self.env.token.clone(),
            password: self.env.username.clone().zip(self.env.password.clone()),
            stream: self.env.tenant.clone(),
            allow_plain_http: std::env::var("PULSE_ALLOW_HTTP").is_ok_and(|v| v == "1"),
        }
    }

    /// Relay app events to the UI and tray until the connection is replaced.
    async fn forward(
        self: Arc<Self>,
        mut rx: tokio::sync::mpsc::UnboundedReceiver<AppEvent>,
        generation: u64,
        url: Option<String>,
        demo: bool,
        caveat: Option<String>,
    ) {
        while let Some(ev) = rx.recv().await {
            if self.live.lock().expect("live lock").generation != generation {
                break;
            }
            if matches!(
                ev,
                AppEvent::Updates { .. } | AppEvent::Reset | AppEvent::Outbox { .. }
            ) {
                self.changes.fetch_add(1, Ordering::SeqCst);
            }
            match ev {
                AppEvent::Updates { updates } => {
                    let received = latency::mark();
                    let mut payload = to_json(&UpdateBatch {
                        updates,
                        trace: None,
                    });
                    if let Some(received) = received {
                        // Added once the payload is built: its cost counts.
                        payload["trace"] = to_json(&BatchTrace {
                            received,
                            emitted: latency::epoch_ms(),
                        });
                    }
                    self.hooks.emit(events::UPDATES, payload);
                }
                AppEvent::Reset => self.hooks.emit(events::RESET, serde_json::Value::Null),
                AppEvent::Status { status } => {
                    let mut view = ConnectionView::of(&status, url.clone(), demo);
                    if view.caveat.is_none() {
                        view.caveat = caveat.clone();
                    }
                    self.set_view(view);
                }
                AppEvent::Counts { counts } => {
                    self.live.lock().expect("live lock").counts = counts;
                    self.hooks.counts(counts, self.paused());
                    self.hooks.emit(events::COUNTS, to_json(&counts));
                }
                AppEvent::Notified { shown } => {
                    // The app has recorded it in the notification centre.
                    let n = RaisedNotification::from(&shown);
                    self.hooks.emit(events::NOTIFIED, to_json(&n));
                }
                AppEvent::Settled {
                    outbox_id,
                    action,
                    outcome,
                } => {
                    let s = SettledAction {
                        outbox_id,
                        action,
                        outcome,
                    };
                    self.hooks.emit(events::SETTLED, to_json(&s));
                }
                AppEvent::Outbox { entries } => {
                    self.hooks.emit(events::OUTBOX, to_json(&entries));
                }
            }
        }
    }

    fn view(&self) -> ConnectionView {
        self.live
            .lock()
            .expect("live lock")
            .view
            .clone()
            .unwrap_or_else(|| ConnectionView::signed_out("Starting", None, None))
    }

    /// Whether notifications are paused now.
    pub fn paused(&self) -> bool {
        self.settings()
            .notifications
            .dnd_until_ms
            .is_some_and(|t| t > now_ms())
    }

    /// Stop the session and the demo gateway (quit, or a server switch).
    pub async fn shutdown(&self) {
        let old = self.conn.lock().await.take();
        if let Some(c) = old {
            stop_connection(c).await;
        }
    }

    /// Replace the connection (settings changed, signed in or out).
    pub async fn reconnect(self: &Arc<Self>) {
        let old = {
            let mut guard = self.conn.lock().await;
            let old = guard.take();
            *guard = Some(self.new_connection());
            old
        };
        if let Some(c) = old {
            stop_connection(c).await;
        }
        self.hooks.emit(events::RESET, serde_json::Value::Null);
        self.hooks.emit(events::CONNECTION, to_json(&self.view()));
        let counts = self.live.lock().expect("live lock").counts;
        self.hooks.counts(counts, self.paused());
        self.start_network().await;
    }

    // ----- commands -----

    /// Everything for the first paint, from the cache: its first piece
    /// ([`first_piece`]), the rest streamed by [`Shell::bootstrap_more`].
    pub async fn bootstrap(&self) -> Result<Bootstrap, CommandError> {
        self.prepare().await;
        let mut guard = self.conn.lock().await;
        let conn = guard.as_mut().expect("prepared");
        let store_error =
            |e: pulse_core::store::StoreError| CommandError::new("store", e.to_string());
        // The read made at open while nothing changed since; else the cache now.
        let fresh = conn
            .prefetched
            .take()
            .filter(|p| p.changes == self.changes.load(Ordering::SeqCst));
        let (entities, outbox, counts) = match fresh {
            Some(p) => {
                let outbox = conn.store.outbox().map_err(store_error)?;
                let counts = self.live.lock().expect("live lock").counts;
                (p.entities, outbox, counts)
            }
            None => {
                let view = conn
                    .store
                    .read(pulse_core::app::cache_view)
                    .map_err(store_error)?;
                (view.entities, view.outbox, view.counts)
            }
        };
        let (first, rest) = first_piece(entities);
        let loading = kinds_of(&rest);
        let more = {
            let mut stream = self.boot_stream.lock().expect("stream lock");
            if rest.is_empty() {
                *stream = None;
                None
            } else {
                let id = self.boot_seq.fetch_add(1, Ordering::SeqCst) + 1;
                *stream = Some(BootStream { id, rest });
                Some(id)
            }
        };
        let live = self.live.lock().expect("live lock");
        let settings = self.settings();
        Ok(Bootstrap {
            entities: first,
            more,
            loading,
            trace: crate::startup::enabled(),
            connection: live
                .view
                .clone()
                .unwrap_or_else(|| self_view_fallback(conn)),
            counts,
            outbox,
            notifications: self
                .centre
                .history()
                .iter()
                .map(RaisedNotification::from)
                .collect(),
            read: self.centre.read().iter().map(str::to_owned).collect(),
            account: self.account(conn),
            settings,
            version: env!("CARGO_PKG_VERSION").to_owned(),
            open: self.pending_target.lock().expect("target lock").take(),
            profiles: server::builtin_profiles()
                .into_iter()
                .map(Into::into)
                .collect(),
            cache_set_aside: conn.set_aside.clone(),
        })
    }

    /// The next chunk of bootstrap stream `stream`: at most [`BOOTSTRAP_CHUNK`]
    /// entities. An error (`stale`) when a newer bootstrap replaced the stream or it
    /// has ended.
    pub fn bootstrap_more(&self, stream: u64) -> Result<BootstrapChunk, CommandError> {
        let mut guard = self.boot_stream.lock().expect("stream lock");
        let Some(s) = guard.as_mut().filter(|s| s.id == stream) else {
            return Err(CommandError::new(
                "stale",
                "this bootstrap stream was replaced or has ended",
            ));
        };
        let n = BOOTSTRAP_CHUNK.min(s.rest.len());
        let entities: Vec<Entity> = s.rest.drain(..n).collect();
        let more = !s.rest.is_empty();
        let loading = kinds_of(&s.rest);
        if !more {
            *guard = None;
        }
        Ok(BootstrapChunk {
            entities,
            more,
            loading,
        })
    }

    fn account(&self, conn: &Connection) -> Option<Account> {
        let (name, url) = match &conn.source {
            Source::Demo => (
                "Demo (built-in)".to_owned(),
                conn.url.clone().unwrap_or_default(),
            ),
            Source::Env { url } => ("PULSE_SERVER".to_owned(), url.clone()),
            Source::Profile(p) => (p.name.clone(), p.url.clone()),
        };
        let speaks = conn.source.speaks();
        let token_saved = match &conn.source {
            Source::Profile(p) if !speaks.is_native() => http_url(&p.url).is_some_and(|u| {
                server::has_token(self.credential_store().as_ref(), &u).unwrap_or(false)
            }),
            _ => false,
        };
        Some(Account {
            server_name: name,
            server_url: url,
            username: conn.username.clone(),
            intents: speaks.intents(),
            keyring_available: self.keyring.answer().is_ok(),
            keyring_error: self.keyring.answer().clone().err(),
            takes_actions: speaks.takes_actions(),
            actions: speaks.actions(),
            profile: speaks.to_string(),
            token_saved,
            owner: owner_of(conn),
        })
    }

    /// The optimistic change of `action` on the active server ([`Speaks::optimistic`]).
    pub async fn optimistic(&self, action: &Action) -> Result<Object, CommandError> {
        let guard = self.conn.lock().await;
        let conn = guard
            .as_ref()
            .ok_or_else(|| CommandError::new("not_running", "Pulse is still starting"))?;
        Ok(conn.source.speaks().optimistic(action))
    }

    /// Perform a user action: sent now, or queued (also when signed out or offline).
    pub async fn perform(&self, action: Action) -> Result<ActionOutcome, CommandError> {
        let (app, store, owner) = {
            let guard = self.conn.lock().await;
            let conn = guard
                .as_ref()
                .ok_or_else(|| CommandError::new("not_running", "Pulse is still starting"))?;
            if let Source::Profile(p) = &conn.source {
                let speaks = conn.source.speaks();
                if !speaks.actions().takes(&action) {
                    return Err(CommandError::new(
                        "unsupported",
                        format!(
                            "{} speaks the “{speaks}” profile, which declares no `{}` action: act on it in its own dashboard",
                            p.name,
                            action.kind()
                        ),
                    ));
                }
            }
            if conn.app.is_none()
                && conn.username.is_none()
                && matches!(conn.source, Source::Profile(_))
                && conn.source.speaks().is_native()
            {
                // Signed out of a Pulse gateway: no account to queue it for (it
                // would be sent by whoever signs in next).
                return Err(CommandError::new(
                    "signed_out",
                    "Sign in to act on this: Pulse queues an action only for the account it is taken as",
                ));
            }
            (conn.app.clone(), conn.store.clone(), owner_of(conn))
        };
        match app {
            Some(app) => app
                .perform(action)
                .await
                .map_err(|e| CommandError::new("store", e.to_string())),
            None => {
                // Signed out or not started: no way to send, so it is queued.
                let done = perform_detached(None, &owner, &action, Some(|| Ok(store.clone())))
                    .await
                    .map_err(|e| CommandError::new("store", e.to_string()))?;
                let list: Vec<pulse_core::store::OutboxEntry> = store.outbox().unwrap_or_default();
                self.hooks.emit(events::OUTBOX, to_json(&list));
                Ok(ActionOutcome::from(done))
            }
        }
    }

    /// The recent steps of the agent run behind approval `id` (a LangGraph
    /// thread's history, from the gateway), for the approval's detail.
    pub async fn approval_steps(&self, id: &str) -> Result<serde_json::Value, CommandError> {
        let app = {
            let guard = self.conn.lock().await;
            guard.as_ref().and_then(|c| c.app.clone())
        };
        let app = app.ok_or_else(|| {
            CommandError::new(
                "offline",
                "Not connected: the agent's steps need the server",
            )
        })?;
        app.session()
            .approval_steps(id)
            .await
            .map_err(|e| CommandError::new("unavailable", e))
    }

    /// Tell the server `intent` (open / close a task, presence, typing) where the
    /// active server's dialect declares it; `false` (nothing sent) elsewhere and
    /// while no session runs.
    pub async fn say(&self, intent: Intent, value: &str) -> bool {
        let app = self.conn.lock().await.as_ref().and_then(|c| c.app.clone());
        app.is_some_and(|app| app.session().say(intent, value))
    }

    /// Try to connect now.
    pub async fn retry_now(self: &Arc<Self>) {
        let app = self.conn.lock().await.as_ref().and_then(|c| c.app.clone());
        match app {
            Some(app) => app.session().retry_now(),
            None => self.start_network().await,
        }
    }

    /// Reconnect the session at once because of `why` (a wake or a network change,
    /// from [`crate::wake`]); nothing while no session runs (signed out).
    pub async fn nudge(&self, why: pulse_core::session::Nudge) {
        let app = self.conn.lock().await.as_ref().and_then(|c| c.app.clone());
        if let Some(app) = app {
            app.session().nudge(why);
        }
    }

    /// Save settings; reconnects when the server changed.
    pub async fn save_settings(
        self: &Arc<Self>,
        mut new: Settings,
    ) -> Result<Settings, CommandError> {
        for p in &mut new.servers {
            if p.id.trim().is_empty() {
                p.id = url_id(&format!("{}-{}", p.name, p.url));
            }
            if http_url(&p.url).is_none() {
                return Err(CommandError::new(
                    "invalid",
                    format!("“{}” is not an http(s) URL", p.url),
                ));
            }
            if p.speaks().is_native() {
                p.profile = Speaks::NATIVE.into();
            }
        }
        if let Some(active) = &new.active_server {
            if !new.servers.iter().any(|p| &p.id == active) {
                new.active_server = None;
            }
        }
        new.ca_file = new
            .ca_file
            .map(|f| f.trim().to_owned())
            .filter(|f| !f.is_empty());
        let old = self.settings();
        if new.ca_file != old.ca_file {
            if let Some(ca) = &new.ca_file {
                // Checked before it is saved: a file Pulse cannot use is refused
                // with its reason, never kept to fail silently at the next start.
                pulse_core::transport::tls::read_ca_file(ca.as_ref())
                    .map_err(|e| CommandError::new("invalid", e))?;
                // Trusted at once when this run has no CA file yet; a different
                // file than the one in use takes effect at the next start.
                if let Err(e) = pulse_core::transport::tls::trust_ca_file(ca.as_ref()) {
                    info!(reason = %e, "the new CA file is used from the next start");
                }
            }
        }
        self.forget_removed_tokens(&old, &new);
        self.paths
            .save_settings(&new)
            .map_err(|e| CommandError::new("io", format!("cannot save the settings: {e}")))?;
        *self.settings.lock().expect("settings lock") = new.clone();
        self.notifier.set_enabled(new.notifications.enabled);
        if old.start_at_login != new.start_at_login {
            if let Err(e) = self.hooks.set_autostart(new.start_at_login) {
                warn!(error = %e, "start at login could not be changed");
            }
        }
        let app = self.conn.lock().await.as_ref().and_then(|c| c.app.clone());
        if let Some(app) = app {
            app.set_policy(self.policy_config());
        }
        let counts = self.live.lock().expect("live lock").counts;
        self.hooks.counts(counts, self.paused());
        let server_changed = self.env.server.is_none()
            && (old.active_server != new.active_server || {
                let find = |s: &Settings| {
                    s.active_server
                        .as_ref()
                        .and_then(|id| s.servers.iter().find(|p| &p.id == id).cloned())
                };
                // What the session is built from (forced polling and the
                // projects' rooms too).
                let how = |p: SavedServer| {
                    (
                        p.url,
                        p.tenant,
                        p.username,
                        p.profile,
                        p.projects,
                        p.force_polling,
                        p.allow_plain_http,
                    )
                };
                find(&old).map(how) != find(&new).map(how)
            });
        if server_changed {
            self.reconnect().await;
        }
        self.hooks.emit(events::SETTINGS, to_json(&new));
        Ok(new)
    }

    /// A removed profile server's access token leaves the keyring too (unless another
    /// saved server has the same URL).
    fn forget_removed_tokens(&self, old: &Settings, new: &Settings) {
        for gone in old
            .servers
            .iter()
            .filter(|o| !o.speaks().is_native() && !new.servers.iter().any(|n| n.id == o.id))
        {
            if new.servers.iter().any(|n| n.url == gone.url) {
                continue;
            }
            if let Some(rest) = rest_for(&gone.url) {
                if let Err(e) =
                    server::save_token(self.credential_store().as_ref(), rest.base(), "")
                {
                    warn!(error = %e, server = %gone.name, "could not forget a removed server's token");
                }
            }
        }
    }

    /// Store (or, empty, forget) the access token of profile server `server_id` in the
    /// credential store (the OS keyring; memory until quit without one), never in a
    /// file; reconnects when it is the active server.
    pub async fn set_token(
        self: &Arc<Self>,
        server_id: String,
        token: String,
    ) -> Result<Account, CommandError> {
        let settings = self.settings();
        let profile = settings
            .servers
            .iter()
            .find(|p| p.id == server_id)
            .ok_or_else(|| CommandError::new("invalid", "no such server"))?;
        if profile.speaks().is_native() {
            return Err(CommandError::new(
                "invalid",
                "a Pulse gateway takes a sign-in, not an access token",
            ));
        }
        let rest = rest_for(&profile.url).ok_or_else(|| {
            CommandError::new("invalid", format!("“{}” is not a valid URL", profile.url))
        })?;
        server::save_token(self.credential_store().as_ref(), rest.base(), &token)
            .map_err(|e| CommandError::new("keyring", e.to_string()))?;
        if settings.active_server.as_deref() == Some(server_id.as_str())
            && self.env.server.is_none()
        {
            self.reconnect().await;
        }
        self.prepare().await;
        let guard = self.conn.lock().await;
        self.account(guard.as_ref().expect("prepared"))
            .ok_or_else(|| CommandError::new("auth", "no server"))
    }

    /// Sign in to server `server_id` and make it the active one.
    pub async fn login(
        self: &Arc<Self>,
        server_id: String,
        username: String,
        password: String,
    ) -> Result<Account, CommandError> {
        let mut settings = self.settings();
        let profile = settings
            .servers
            .iter_mut()
            .find(|p| p.id == server_id)
            .ok_or_else(|| CommandError::new("invalid", "no such server"))?;
        let rest = rest_for(&profile.url).ok_or_else(|| {
            CommandError::new("invalid", format!("“{}” is not a valid URL", profile.url))
        })?;
        // A node of the server's cluster that is up takes the sign-in.
        let nodes: Vec<_> = profile.nodes.iter().filter_map(|n| http_url(n)).collect();
        // The password would cross the network unencrypted: only with the opt-in.
        if !profile.allow_plain_http {
            if let Some(off) = std::iter::once(rest.base())
                .chain(&nodes)
                .find(|u| server::is_plain_http_off_machine(u))
            {
                let why = server::SignedOut::PlainHttp {
                    origin: server::Origin::Saved(profile.name.clone()),
                    url: off.to_string(),
                };
                return Err(CommandError::new("invalid", why.message()));
            }
        }
        let login = StoredLogin::sign_in_at(
            rest,
            &nodes,
            username.trim(),
            &Secret::new(password),
            self.credential_store(),
        )
        .await
        .map_err(|e| CommandError::new("auth", e.to_string()))?;
        profile.username = Some(username.trim().to_owned());
        settings.active_server = Some(server_id);
        self.paths
            .save_settings(&settings)
            .map_err(|e| CommandError::new("io", format!("cannot save the settings: {e}")))?;
        *self.settings.lock().expect("settings lock") = settings.clone();
        {
            let old = self.conn.lock().await.take();
            if let Some(c) = old {
                stop_connection(c).await;
            }
            let mut conn = self.new_connection();
            conn.login = Some(Arc::new(login));
            *self.conn.lock().await = Some(conn);
        }
        self.hooks.emit(events::RESET, serde_json::Value::Null);
        self.hooks.emit(events::SETTINGS, to_json(&settings));
        self.start_network().await;
        let guard = self.conn.lock().await;
        self.account(guard.as_ref().expect("connection"))
            .ok_or_else(|| CommandError::new("auth", "not signed in"))
    }

    /// Forget the stored sign-in of the active server (revoking its session at the
    /// server, best effort) and stop its session. The
    /// actions queued for it and not yet sent are kept in its cache (sent once
    /// signed in again) or discarded, as the user chose.
    pub async fn logout(
        self: &Arc<Self>,
        queued: crate::dto::QueuedOnSignOut,
    ) -> Result<(), CommandError> {
        let (login, store) = {
            let guard = self.conn.lock().await;
            (
                guard.as_ref().and_then(|c| c.login.clone()),
                guard.as_ref().map(|c| (c.store.clone(), owner_of(c))),
            )
        };
        if let (crate::dto::QueuedOnSignOut::Discard, Some((store, owner))) = (queued, store) {
            // Only this account's entries: another account's (or those of no
            // known account) stay for their owner.
            let entries = store
                .outbox()
                .map_err(|e| CommandError::new("store", e.to_string()))?;
            let (mine, others): (Vec<_>, Vec<_>) = entries
                .into_iter()
                .partition(|e| e.owner.as_ref() == Some(&owner));
            for e in &mine {
                store
                    .outbox_remove(e.id)
                    .map_err(|e| CommandError::new("store", e.to_string()))?;
            }
            info!(
                discarded = mine.len(),
                kept_for_others = others.len(),
                "queued actions discarded at sign-out"
            );
            self.hooks.emit(events::OUTBOX, to_json(&others));
        }
        if let Some(login) = login {
            // Revoke the session at the server too, so its refresh token is dead
            // wherever a copy may be. Best effort, and a few seconds at most: an
            // unreachable server must not hold the sign-out.
            let keyring = |e: pulse_core::credentials::CredentialError| {
                CommandError::new("keyring", e.to_string())
            };
            match tokio::time::timeout(SIGN_OUT_AT_SERVER, login.sign_out_at_server()).await {
                Ok(done) => done.map_err(keyring)?,
                Err(_) => {
                    warn!("the server did not answer the sign-out in time; forgetting the sign-in here");
                    login.sign_out().map_err(keyring)?;
                }
            }
        }
        let mut settings = self.settings();
        if let Some(id) = settings.active_server.clone() {
            if let Some(p) = settings.servers.iter_mut().find(|p| p.id == id) {
                p.username = None;
            }
            let _ = self.paths.save_settings(&settings);
            *self.settings.lock().expect("settings lock") = settings.clone();
        }
        self.reconnect().await;
        self.hooks.emit(events::SETTINGS, to_json(&settings));
        Ok(())
    }

    /// Remove the queued actions `ids` from the active server's cache, whoever
    /// they belong to (the user discards another account's entries, or those of
    /// no known account, here: nothing of them is sent). Unknown ids are ignored.
    /// Answers, and announces (`outbox`), what stays queued.
    pub async fn discard_queued(
        &self,
        ids: Vec<u64>,
    ) -> Result<Vec<pulse_core::store::OutboxEntry>, CommandError> {
        let store = {
            let guard = self.conn.lock().await;
            guard
                .as_ref()
                .ok_or_else(|| CommandError::new("not_running", "Pulse is still starting"))?
                .store
                .clone()
        };
        let failed = |e: pulse_core::store::StoreError| CommandError::new("store", e.to_string());
        for id in &ids {
            store.outbox_remove(*id).map_err(failed)?;
        }
        let left = store.outbox().map_err(failed)?;
        info!(
            discarded = ids.len(),
            left = left.len(),
            "queued actions discarded"
        );
        self.hooks.emit(events::OUTBOX, to_json(&left));
        Ok(left)
    }

    /// Pause notifications for `minutes` (`None`: resume).
    pub async fn pause_notifications(
        self: &Arc<Self>,
        minutes: Option<u32>,
    ) -> Result<Settings, CommandError> {
        let mut s = self.settings();
        s.notifications.dnd_until_ms = minutes.map(|m| now_ms() + i64::from(m) * 60_000);
        self.save_settings(s).await
    }

    /// Mark notifications read (keys of raised ones, or `notification:ID` of the server's).
    pub fn mark_read(&self, keys: Vec<String>) -> Result<(), CommandError> {
        let read = self.centre.mark_read(keys);
        self.paths
            .save_read(&read)
            .map_err(|e| CommandError::new("io", e.to_string()))
    }

    /// The server and account of `conn`, as notifications are stamped with it.
    fn origin(&self, conn: &Connection) -> Origin {
        let owner = owner_of(conn);
        Origin {
            server: owner.server,
            server_name: self
                .account(conn)
                .map(|a| a.server_name)
                .unwrap_or_default(),
            account: owner.account,
        }
    }

    /// The server and account whose notification buttons act now (`None` while
    /// no session runs: signed out, or not started).
    pub async fn notification_origin(&self) -> Option<Origin> {
        let guard = self.conn.lock().await;
        let conn = guard.as_ref()?;
        conn.app.as_ref()?;
        Some(self.origin(conn))
    }

    /// Handle a click on a notification. Approve / Reject act only for the server
    /// and account that raised it (`policy::reply_applies`); a stale one is
    /// refused and the refusal shown like any settled action.
    pub async fn on_reply(self: &Arc<Self>, reply: Reply) {
        let Some(target) = reply.target else {
            self.hooks.show_window();
            return;
        };
        if reply.action != NotificationAction::Open {
            let current = self.notification_origin().await;
            let verdict = match &reply.origin {
                Some(raised) => reply_applies(raised, current.as_ref()),
                None => Err("That notification has no server of its own. Nothing was sent.".into()),
            };
            if let Err(message) = verdict {
                warn!(%message, "a stale notification's button was refused");
                let action = match reply.action {
                    NotificationAction::Approve => Action::Approve {
                        id: target.id.clone(),
                        reason: None,
                    },
                    _ => Action::Reject {
                        id: target.id.clone(),
                        reason: None,
                    },
                };
                let s = SettledAction {
                    outbox_id: 0,
                    action,
                    outcome: ActionOutcome::Rejected { message },
                };
                self.hooks.emit(events::SETTLED, to_json(&s));
                return;
            }
        }
        let action = match reply.action {
            NotificationAction::Approve => Some(Action::Approve {
                id: target.id.clone(),
                reason: Some("Approved from a notification".into()),
            }),
            NotificationAction::Reject => Some(Action::Reject {
                id: target.id.clone(),
                reason: Some("Rejected from a notification".into()),
            }),
            NotificationAction::Open => None,
        };
        match action {
            Some(a) => {
                // Shown in the app like any settled action: a conflict or a refusal
                // from a notification button is never dropped.
                let outcome = match self.perform(a.clone()).await {
                    Ok(o) => o,
                    Err(e) => {
                        warn!(error = %e, "action from a notification failed");
                        ActionOutcome::Rejected { message: e.message }
                    }
                };
                let outbox_id = match outcome {
                    ActionOutcome::Queued { outbox_id } => outbox_id,
                    _ => 0,
                };
                let s = SettledAction {
                    outbox_id,
                    action: a,
                    outcome,
                };
                self.hooks.emit(events::SETTLED, to_json(&s));
            }
            None => {
                self.navigate(Target {
                    kind: Some(target.kind),
                    id: Some(target.id),
                    page: page_of(target.kind),
                });
            }
        }
    }

    /// Open `target` when the UI asks for its first paint (a link given at start).
    pub fn open_at_start(&self, target: Target) {
        *self.pending_target.lock().expect("target lock") = Some(target);
    }

    /// Show the window at `target`.
    pub fn navigate(&self, target: Target) {
        self.hooks.show_window();
        self.hooks.emit(events::NAVIGATE, to_json(&target));
    }

    /// Counts as last known (tray at start).
    pub fn counts(&self) -> Counts {
        self.live.lock().expect("live lock").counts
    }
}

fn self_view_fallback(conn: &Connection) -> ConnectionView {
    ConnectionView::signed_out("Starting", conn.url.clone(), None)
}

/// Whom `conn` acts for: its cache id (the server) and its user name. Actions are
/// queued for it, its session sends only its entries, and notifications are
/// stamped with it (`Shell::origin`).
fn owner_of(conn: &Connection) -> pulse_core::store::Owner {
    pulse_core::store::Owner {
        server: conn.cache_id.clone(),
        account: conn.username.clone(),
    }
}

async fn stop_connection(c: Connection) {
    if let Some(app) = c.app {
        app.stop().await;
    }
    if let Some(gw) = c.gateway {
        gw.shutdown().await;
    }
    info!(cache = %c.cache_id, "connection closed");
}

fn rest_for(url: &str) -> Option<RestClient> {
    RestClient::new(http_url(url)?).ok()
}

/// A file-name-safe id from a URL or name.
pub fn url_id(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.ends_with('-') {
            out.push('-');
        }
    }
    out.trim_matches('-').chars().take(60).collect()
}
