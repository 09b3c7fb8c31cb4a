//! The session: one actor task that owns the connection to one server.
//!
//! Handles talk to it over a channel ([`SessionHandle`]); it publishes its
//! [`SessionStatus`] on a watch channel and every committed change on a broadcast
//! channel ([`SessionEvent`]).
//!
//! How it is built:
//! - [`actor`]: the loop that runs one connection after another, with its states,
//!   backoff and commands; it knows no protocol;
//! - a [`Dialect`] speaks one server's protocol for one connection; the native Pulse
//!   protocol ([`NativeDialect`], with its REST polling fallback) is one dialect like
//!   any profile (`crate::profile`);
//! - [`SessionCx`] is the narrow context every dialect sees: tokens, the store,
//!   commits, counters and state;
//! - `outbox`: sending user actions, and the queue of those taken offline.
//!
//! Contract:
//! - a change is broadcast only after the store committed it together with the
//!   stream's cursor;
//! - each event is applied at most once; a gap in `seq` ends the connection and the
//!   next one resubscribes from the stored cursor (replay), and when the server
//!   cannot replay the session swaps in a REST snapshot atomically, keeping the live
//!   events that arrived meanwhile;
//! - reconnect delays come from [`Backoff`](crate::backoff::Backoff): capped
//!   exponential with full jitter, reset once a link has stayed up (measured from
//!   when it came up) for `stable_after`; after `fail_after` failures the state
//!   is [`ConnectionState::Failed`] (the UI offers Retry) while slow retries go on;
//! - a refused token is refreshed once; refused again, the state is
//!   [`ConnectionState::Unauthorized`] and nothing is retried until
//!   [`SessionHandle::retry_now`];
//! - when the socket cannot be opened but the server answers HTTP, the dialect's
//!   fallback keeps the data fresh ([`run_polling`] with the dialect's
//!   [`Poller`]; native: `GET /v1/events`; profiles: their REST resources),
//!   honouring 429 / `Retry-After`, and the socket is tried again periodically
//!   while the state stays `Polling`; with [`SessionConfig::force_polling`] the
//!   socket is never opened;
//! - a link silent for longer than the server's ping interval + timeout is closed.

mod actor;
mod native;
mod outbox;
mod poll;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use pulse_protocol::domain::{Change, Entity};
use serde::{Deserialize, Serialize};
use tokio::sync::{broadcast, mpsc, oneshot, watch};
use url::Url;

pub use actor::{auth_end, SessionCx};
pub use native::{NativeDialect, MAX_BUFFERED_DURING_SNAPSHOT};
pub use poll::{run_polling, PollFuture, Polled, Poller};

use crate::actions::{ActionSet, Performed};
use crate::auth::{AuthError, Secret, TokenProvider};
use crate::backoff::BackoffConfig;
use crate::rest::{RestClient, RestError};
use crate::store::{Action, Cursor, Owner, StoreError, StoreHandle};
use outbox::Flusher;

/// Connection state, as the indicator shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum ConnectionState {
    /// Opening the socket.
    Connecting {
        /// 1 for the first try after a success.
        attempt: u32,
    },
    /// Subscribed and up to date; changes arrive as they happen.
    Live,
    /// The socket cannot be opened but REST works: data is polled.
    Polling {
        /// Why the socket is unavailable.
        reason: String,
    },
    /// Waiting before the next attempt.
    Reconnecting {
        /// Failed attempts so far.
        attempt: u32,
        /// When the next attempt starts, ms since the Unix epoch.
        retry_at_ms: i64,
        /// Why the last attempt failed.
        error: String,
    },
    /// Too many failures: shown as an error with Retry; slow retries go on.
    Failed {
        /// Failed attempts so far.
        attempts: u32,
        /// When the next background attempt starts, ms since the Unix epoch.
        retry_at_ms: i64,
        /// Why the last attempt failed.
        error: String,
    },
    /// Credentials refused; nothing is retried until the user acts.
    Unauthorized {
        /// What to tell the user.
        message: String,
    },
    /// Stopped by the owner.
    Stopped,
}

/// Running counts, for diagnostics and tests.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Counters {
    /// Events applied to the store.
    pub events_applied: u64,
    /// Frames that could not be decoded (skipped; the connection stays).
    pub decode_errors: u64,
    /// Events of an unknown type or with a payload of the wrong shape (cursor
    /// advanced, nothing applied).
    pub rejected_events: u64,
    /// Duplicate events skipped.
    pub duplicates: u64,
    /// Gaps detected (each forces a resync).
    pub gaps: u64,
    /// Snapshots loaded.
    pub snapshots: u64,
    /// Connections opened.
    pub connections: u64,
    /// REST polls made.
    pub polls: u64,
}

/// Everything the UI needs to draw the connection indicator.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SessionStatus {
    /// The state.
    pub state: ConnectionState,
    /// The stream followed, once known.
    pub stream: Option<String>,
    /// The stored cursor.
    pub cursor: Option<Cursor>,
    /// Last time data was known fresh (an applied event, snapshot or empty poll), ms.
    pub last_sync_ms: Option<i64>,
    /// What the server cannot guarantee, if anything (e.g. "no replay").
    pub caveat: Option<String>,
    /// The node of a server of several ([`SessionConfig::nodes`]) the session is
    /// on or trying now; `None` with one node.
    pub node: Option<String>,
    /// Running counts.
    pub counters: Counters,
}

/// One applied event and its changes.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CommittedEvent {
    /// Its seq.
    pub seq: u64,
    /// Its type.
    #[serde(rename = "type")]
    pub event_type: String,
    /// What it changed.
    pub changes: Vec<Change>,
}

/// What the session tells its subscribers.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum SessionEvent {
    /// Events were committed to the store.
    Applied {
        /// Their stream.
        stream: String,
        /// In seq order.
        events: Arc<Vec<CommittedEvent>>,
        /// Whether they were replayed or polled after a disconnect (catch-up).
        catching_up: bool,
    },
    /// A snapshot replaced the cache.
    SnapshotLoaded {
        /// Its stream.
        stream: String,
        /// Its seq.
        seq: u64,
        /// How many entities it had.
        entities: usize,
    },
    /// A queued action reached a final outcome.
    ActionSettled {
        /// Outbox row.
        outbox_id: u64,
        /// The action.
        action: Action,
        /// What happened.
        outcome: ActionOutcome,
    },
}

/// How a user action ended.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum ActionOutcome {
    /// The server did it; the entity after it.
    Done {
        /// The entity as the server now has it.
        entity: Entity,
    },
    /// The server could not be reached; queued and sent on reconnect.
    Queued {
        /// Outbox row id.
        outbox_id: u64,
    },
    /// Someone else acted first; nothing was changed.
    Conflict {
        /// The server's explanation.
        message: String,
        /// The entity as it is now.
        #[cfg_attr(feature = "ts", ts(type = "Record<string, unknown> | null"))]
        current: Option<serde_json::Value>,
    },
    /// The server refused it for good (not found, forbidden, bad input).
    Rejected {
        /// The server's explanation.
        message: String,
    },
}

/// Settings of a session.
#[derive(Debug, Clone)]
pub struct SessionConfig {
    /// Server base URL (`http://host:port`). While the session runs, the node of
    /// [`SessionConfig::nodes`] it is on.
    pub server: Url,
    /// Other nodes of the same server (a cluster behind no load balancer), tried in
    /// order after `server` when the node the session is on is down; the rule is
    /// [`crate::failover::Failover`]. Empty: one node.
    pub nodes: Vec<Url>,
    /// Stream to follow; defaults to the token's tenant.
    pub stream: Option<String>,
    /// Reconnect strategy.
    pub backoff: BackoffConfig,
    /// How often to poll when the socket is unavailable.
    pub poll_interval: Duration,
    /// The longest wait between tries of the socket while polling; the first
    /// tries of an outage come sooner ([`SessionCx::socket_retry_delay`]).
    pub socket_retry_interval: Duration,
    /// Never open the socket: keep the data fresh by REST polling only (a
    /// per-server setting; seed 003 asks for the toggle). A dialect without a
    /// fallback then has no way to connect and says so.
    pub force_polling: bool,
    /// Events per poll page.
    pub poll_page: u32,
    /// How long to wait for the server's `hello` and `subscribed`.
    pub handshake_timeout: Duration,
    /// Most frames applied in one store transaction.
    pub max_batch: usize,
    /// How to speak to the server: [`NativeDialect`] (the default) or a server
    /// dialect (Socket.IO, plain JSON WebSocket) driven by a profile.
    pub dialect: Arc<dyn Dialect>,
    /// Whom this session acts for: actions it queues are stamped with it, and it
    /// sends only the queued actions of this same owner (`session::outbox`).
    /// Defaults to [`Owner::of_url`] of `server` with no account.
    pub owner: Owner,
}

/// Boxed future of a [`Dialect`] method.
pub type DialectFuture<'a> = Pin<Box<dyn Future<Output = End> + Send + 'a>>;

/// Boxed future of [`Dialect::perform`]: one try of one action.
pub type ActionFuture<'a> = Pin<Box<dyn Future<Output = Result<Performed, RestError>> + Send + 'a>>;

/// How to speak to one kind of server: the native Pulse protocol
/// ([`NativeDialect`]) or a profile (`crate::profile::ProfileDialect`).
///
/// The session calls [`Dialect::run_connection`] for every connection attempt and
/// handles waiting, backoff and state between attempts. An implementation must
/// commit changes only through [`SessionCx`] (`commit_local`, or the native
/// protocol's seq-checked commits), call [`SessionCx::connected`] when its link is
/// up and [`SessionCx::went_live`] once it is receiving, and return promptly with
/// [`End::Stop`] when [`SessionCx::interrupted`] says so.
///
/// User actions go through the dialect too: [`Dialect::actions`] says which the
/// server takes (the session refuses the others before sending or queueing),
/// [`Dialect::optimistic`] how the entity looks meanwhile, and
/// [`Dialect::perform`] sends one (the session's outbox retries and refreshes the
/// token around it).
pub trait Dialect: Send + Sync + 'static {
    /// Connect, resync, and stream until the link ends.
    fn run_connection<'a>(&'a self, cx: &'a mut SessionCx) -> DialectFuture<'a>;

    /// Keep the data fresh without the socket after [`End::SocketRefused`] (or
    /// always, with [`SessionConfig::force_polling`]), until the socket should be
    /// tried again ([`End::TrySocket`]); usually [`run_polling`] with the
    /// dialect's [`Poller`]. The default has no fallback: the refusal counts as a
    /// lost link.
    fn run_fallback<'a>(&'a self, _cx: &'a mut SessionCx, reason: String) -> DialectFuture<'a> {
        Box::pin(async move { End::Lost(reason) })
    }

    /// Which user actions this server takes. The default: none.
    fn actions(&self) -> ActionSet {
        ActionSet::NONE
    }

    /// How the entity `action` acts on looks once the server did it (fields to
    /// patch), shown at once while the action is sent or queued. The default: no
    /// change.
    fn optimistic(&self, _action: &Action) -> pulse_protocol::domain::Object {
        pulse_protocol::domain::Object::new()
    }

    /// Perform `action` once with `token` against the server `rest` points at (a
    /// refused token is the caller's to refresh: `RestError::Unauthorized`). Only
    /// called for actions [`Dialect::actions`] takes; the default refuses. `key` is
    /// the action's idempotency key ([`crate::actions::idempotency_key`]), for a
    /// server that honours one.
    fn perform<'a>(
        &'a self,
        _rest: &'a RestClient,
        _token: Secret,
        action: &'a Action,
        _key: Option<&'a str>,
    ) -> ActionFuture<'a> {
        Box::pin(async move {
            Err(RestError::Http {
                status: 0,
                message: crate::actions::unsupported(action),
            })
        })
    }
    /// Tell the server `intent` (with its `value`: a task id, a presence status, a
    /// chat id), if this dialect's server takes it. Returns at once: `false` when
    /// the server does not take it (nothing is ever sent then); `true` when it is
    /// sent on the live link (what is said while no link is up is dropped, save
    /// what the dialect says again on connecting). The default takes nothing.
    fn say(&self, _intent: Intent, _value: &str) -> bool {
        false
    }
}

/// Something the user does that a server may want to hear of (seed 004's task page
/// joining and leaving the task's room, seed 002's presence and typing). Which
/// server takes which, and as what message, a profile declares (`[intent.NAME]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(rename_all = "snake_case")]
pub enum Intent {
    /// The user opened a task's detail (value: the task id).
    OpenTask,
    /// The user closed it (value: the task id).
    CloseTask,
    /// The user's presence changed (value: `online`, `away` or `busy`).
    Presence,
    /// The user started typing a reply (value: the chat id).
    TypingStart,
    /// The user stopped typing (value: the chat id).
    TypingStop,
}

impl Intent {
    /// Every intent.
    pub const ALL: [Intent; 5] = [
        Intent::OpenTask,
        Intent::CloseTask,
        Intent::Presence,
        Intent::TypingStart,
        Intent::TypingStop,
    ];
}

impl std::fmt::Debug for dyn Dialect {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Dialect")
    }
}

/// One event of a non-native dialect, mapped to changes, for [`SessionCx::commit_local`].
#[derive(Debug, Clone)]
pub struct LocalEvent {
    /// The server's event name.
    pub event_type: String,
    /// Its payload, as received.
    pub data: serde_json::Value,
    /// When it was received (ms since the Unix epoch).
    pub ts: i64,
    /// What it changes.
    pub changes: Vec<Change>,
}

impl SessionConfig {
    /// Defaults for `server`.
    pub fn new(server: Url) -> Self {
        SessionConfig {
            nodes: Vec::new(),
            stream: None,
            backoff: BackoffConfig::default(),
            poll_interval: Duration::from_secs(5),
            socket_retry_interval: Duration::from_secs(30),
            force_polling: false,
            poll_page: 1000,
            handshake_timeout: Duration::from_secs(10),
            max_batch: 1024,
            dialect: Arc::new(NativeDialect),
            owner: Owner::of_url(&server, None),
            server,
        }
    }

    /// The same, speaking `dialect`.
    pub fn with_dialect(mut self, dialect: Arc<dyn Dialect>) -> Self {
        self.dialect = dialect;
        self
    }
}

/// A session failure that a caller must act on.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SessionError {
    /// The cache could not be read or written.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The session has stopped.
    #[error("the session has stopped")]
    Stopped,
    /// No credentials could be had.
    #[error(transparent)]
    Auth(#[from] AuthError),
}

/// How a connection (or a fallback spell) ended.
#[derive(Debug)]
pub enum End {
    /// Stop requested.
    Stop,
    /// Reconnect now without waiting (gap, epoch race, manual retry).
    Resync(String),
    /// The link was lost; wait and retry.
    Lost(String),
    /// The cache could not be read or written; wait and retry (the data on the
    /// server is not lost: the next connection resyncs from the stored cursor).
    Cache(StoreError),
    /// Credentials refused.
    Unauthorized(String),
    /// The socket is refused by an HTTP answer; try the dialect's fallback.
    SocketRefused(String),
    /// The fallback wants the socket tried again.
    TrySocket,
}

impl From<StoreError> for End {
    fn from(e: StoreError) -> Self {
        End::Cache(e)
    }
}

/// Why a session is asked to reconnect at once ([`SessionHandle::nudge`]).
///
/// A nudge ends the current link (live or not) and opens a new one without a
/// backoff wait, with a fresh backoff sequence: after a wake the old socket is
/// likely a zombie, and after a network change it may run on a route that is
/// gone. Only [`Nudge::User`] also retries after the credentials were refused
/// (a wake or a new network does not make a refused token good).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Nudge {
    /// The user asked (the Retry button).
    User,
    /// The machine woke from sleep (logind's `PrepareForSleep(false)`).
    Wake,
    /// The network changed (an interface or route came up).
    Network,
}

impl Nudge {
    /// Whether this nudge ends a link that is up and current. A wake or a network
    /// change does (the socket may be dead without knowing it); the Retry button
    /// does not (a live link is what it asks for).
    pub fn ends_a_live_link(self) -> bool {
        !matches!(self, Nudge::User)
    }
}

impl std::fmt::Display for Nudge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Nudge::User => "manual retry",
            Nudge::Wake => "woke from sleep",
            Nudge::Network => "the network changed",
        })
    }
}

/// What a handle asks of the actor.
pub(crate) enum Command {
    Nudge(Nudge),
    Stop(oneshot::Sender<()>),
}

/// Handle to a running session. Cloning is cheap; the session stops when
/// [`SessionHandle::stop`] is called or every handle is dropped.
#[derive(Clone)]
pub struct SessionHandle {
    cmd: mpsc::Sender<Command>,
    dialect: Arc<dyn Dialect>,
    status: watch::Receiver<SessionStatus>,
    events: broadcast::Sender<SessionEvent>,
    outbox: Flusher,
}

impl SessionHandle {
    /// Start a session on the current tokio runtime.
    pub fn spawn(
        config: SessionConfig,
        tokens: Arc<dyn TokenProvider>,
        store: StoreHandle,
    ) -> Result<SessionHandle, SessionError> {
        let rest = RestClient::new(config.server.clone())
            .map_err(|e| SessionError::Auth(AuthError::Unreachable(e.to_string())))?;
        let summary = store.summary()?;
        let cursor = match &config.stream {
            Some(stream) => summary.cursors.get(stream).cloned(),
            None if summary.cursors.len() == 1 => summary.cursors.values().next().cloned(),
            None => None,
        };
        let status = SessionStatus {
            state: ConnectionState::Connecting { attempt: 1 },
            stream: config.stream.clone(),
            cursor,
            last_sync_ms: summary.last_sync_ms,
            caveat: None,
            node: (!config.nodes.is_empty()).then(|| config.server.to_string()),
            counters: Counters::default(),
        };
        let (status_tx, status_rx) = watch::channel(status);
        let (cmd_tx, cmd_rx) = mpsc::channel(16);
        let (events_tx, _) = broadcast::channel(4096);
        let outbox = Flusher::new(
            rest,
            tokens,
            config.owner.clone(),
            config.dialect.clone(),
            store,
            events_tx.clone(),
            status_rx.clone(),
        );
        let handle = SessionHandle {
            cmd: cmd_tx,
            dialect: config.dialect.clone(),
            status: status_rx,
            events: events_tx.clone(),
            outbox: outbox.clone(),
        };
        let cx = SessionCx::new(config, outbox, status_tx, events_tx, cmd_rx);
        tokio::spawn(actor::run(cx));
        Ok(handle)
    }

    /// Current status and its changes.
    pub fn status(&self) -> watch::Receiver<SessionStatus> {
        self.status.clone()
    }

    /// Committed changes from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<SessionEvent> {
        self.events.subscribe()
    }

    /// The shared store (for reads).
    pub fn store(&self) -> &StoreHandle {
        self.outbox.store()
    }

    /// The REST client of this session's server.
    pub fn rest(&self) -> &RestClient {
        self.outbox.rest()
    }

    /// Try to connect now (the Retry button): [`SessionHandle::nudge`] with
    /// [`Nudge::User`].
    pub fn retry_now(&self) {
        self.nudge(Nudge::User);
    }

    /// Reconnect at once because of `why` (see [`Nudge`]): the one entry for the
    /// Retry button, a wake from sleep and a network change. Never blocks; a
    /// nudge while one is still queued is dropped (the queued one does the same).
    pub fn nudge(&self, why: Nudge) {
        tracing::info!(reason = %why, "session nudged");
        let _ = self.cmd.try_send(Command::Nudge(why));
    }

    /// Tell the server `intent` where its dialect takes it ([`Dialect::say`]):
    /// `false` when it does not (nothing is sent).
    pub fn say(&self, intent: Intent, value: &str) -> bool {
        self.dialect.say(intent, value)
    }

    /// Stop the session and wait until it has closed its connection. Idempotent.
    pub async fn stop(&self) {
        let (tx, rx) = oneshot::channel();
        if self.cmd.send(Command::Stop(tx)).await.is_ok() {
            let _ = rx.await;
        }
    }

    /// The recent steps of the agent run behind approval `id`
    /// ([`RestClient::approval_steps`]), with this session's tokens (refreshed once
    /// when refused). A Pulse gateway answers for its LangGraph approvals; any
    /// other server or approval is an error to show, not a failure of the session.
    pub async fn approval_steps(&self, id: &str) -> Result<serde_json::Value, String> {
        let rest = self.outbox.rest();
        crate::auth::with_token(self.outbox.tokens().as_ref(), false, |t| async move {
            rest.approval_steps(&t, id).await
        })
        .await
        .map_err(|e| match e {
            crate::auth::TokenTry::NoToken { error, .. } => error.to_string(),
            crate::auth::TokenTry::Refused(e) | crate::auth::TokenTry::Failed(e) => e.to_string(),
        })
    }

    /// Which user actions this session's server takes (its dialect's answer).
    pub fn actions(&self) -> ActionSet {
        self.outbox.dialect().actions()
    }

    /// Perform a user action: sent now when the server is reachable, queued in the
    /// outbox otherwise (and sent on reconnect). A conflict is returned, never dropped;
    /// an action the server does not take is [`ActionOutcome::Rejected`] at once
    /// (never queued).
    pub async fn perform(&self, action: Action) -> Result<ActionOutcome, SessionError> {
        let online = matches!(
            self.status.borrow().state,
            ConnectionState::Live | ConnectionState::Polling { .. }
        );
        self.outbox.perform(action, online).await
    }
}
