//! The session actor: one task that owns the connection to one server.
//!
//! Handles talk to it over a channel ([`SessionHandle`]); it publishes its
//! [`SessionStatus`] on a watch channel and every committed change on a broadcast
//! channel ([`SessionEvent`]).
//!
//! Contract:
//! - a change is broadcast only after the store committed it together with the
//!   stream's cursor;
//! - each event is applied at most once; a gap in `seq` ends the connection and the
//!   next one resubscribes from the stored cursor (replay), and when the server
//!   cannot replay the session swaps in a REST snapshot atomically, keeping the live
//!   events that arrived meanwhile;
//! - reconnect delays come from [`Backoff`]: capped exponential with full jitter,
//!   reset once a connection has been stable; after `fail_after` failures the state
//!   is [`ConnectionState::Failed`] (the UI offers Retry) while slow retries go on;
//! - a refused token is refreshed once; refused again, the state is
//!   [`ConnectionState::Unauthorized`] and nothing is retried until
//!   [`SessionHandle::retry_now`];
//! - when the socket cannot be opened but the server answers HTTP, events are polled
//!   over REST (`GET /v1/events`), honouring 429 / `Retry-After`, and the socket is
//!   tried again periodically;
//! - a link silent for longer than the server's ping interval + timeout is closed.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use pulse_protocol::domain::{Change, Entity};
use pulse_protocol::frame::{ClientFrame, EventFrame, ServerFrame, Subscribed};
use pulse_protocol::rest::Snapshot;
use serde::Serialize;
use tokio::sync::{broadcast, mpsc, oneshot, watch};
use tracing::{debug, info, warn};
use url::Url;

use crate::auth::{AuthError, Secret, TokenProvider};
use crate::backoff::{Backoff, BackoffConfig};
use crate::rest::{RestClient, RestError};
use crate::store::{Action, AppliedEvent, Cursor, Store, StoreError};
use crate::transport::native::{Incoming, NativeConnection};
use crate::transport::ConnectError;

/// The store shared between the session, the UI and commands.
pub type SharedStore = Arc<Mutex<Box<dyn Store>>>;

/// Wrap a store for sharing.
pub fn shared(store: impl Store + 'static) -> SharedStore {
    Arc::new(Mutex::new(Box::new(store)))
}

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
    /// Server base URL (`http://host:port`).
    pub server: Url,
    /// Stream to follow; defaults to the token's tenant.
    pub stream: Option<String>,
    /// Reconnect strategy.
    pub backoff: BackoffConfig,
    /// How often to poll when the socket is unavailable.
    pub poll_interval: Duration,
    /// How often to try the socket again while polling.
    pub socket_retry_interval: Duration,
    /// Events per poll page.
    pub poll_page: u32,
    /// How long to wait for the server's `hello` and `subscribed`.
    pub handshake_timeout: Duration,
    /// Most frames applied in one store transaction.
    pub max_batch: usize,
    /// How to speak to the server: `None` = the native Pulse protocol; otherwise a
    /// server dialect (Socket.IO, plain JSON WebSocket) driven by a profile.
    pub dialect: Option<Arc<dyn Dialect>>,
}

/// A server dialect other than the native protocol (see `crate::profile`).
///
/// The session calls [`Dialect::run_connection`] for every connection attempt and
/// handles waiting, backoff and state between attempts. An implementation must
/// commit changes only through [`SessionCx::commit_local`], call
/// [`SessionCx::went_live`] once it is receiving, and return promptly with
/// [`End::Stop`] when [`SessionCx::interrupted`] says so.
pub trait Dialect: Send + Sync + 'static {
    /// Connect, resync, and stream until the link ends.
    fn run_connection<'a>(
        &'a self,
        cx: &'a mut SessionCx,
    ) -> Pin<Box<dyn Future<Output = End> + Send + 'a>>;
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
            server,
            stream: None,
            backoff: BackoffConfig::default(),
            poll_interval: Duration::from_secs(5),
            socket_retry_interval: Duration::from_secs(30),
            poll_page: 1000,
            handshake_timeout: Duration::from_secs(10),
            max_batch: 1024,
            dialect: None,
        }
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

enum Command {
    RetryNow,
    Stop(oneshot::Sender<()>),
}

/// Handle to a running session. Cloning is cheap; the session stops when
/// [`SessionHandle::stop`] is called or every handle is dropped.
#[derive(Clone)]
pub struct SessionHandle {
    cmd: mpsc::Sender<Command>,
    status: watch::Receiver<SessionStatus>,
    events: broadcast::Sender<SessionEvent>,
    rest: RestClient,
    tokens: Arc<dyn TokenProvider>,
    store: SharedStore,
    flushing: Arc<AtomicBool>,
}

impl SessionHandle {
    /// Start a session on the current tokio runtime.
    pub fn spawn(
        config: SessionConfig,
        tokens: Arc<dyn TokenProvider>,
        store: SharedStore,
    ) -> Result<SessionHandle, SessionError> {
        let rest = RestClient::new(config.server.clone())
            .map_err(|e| SessionError::Auth(AuthError::Unreachable(e.to_string())))?;
        let (summary_cursor, last_sync) = {
            let s = store.lock().expect("store lock");
            let summary = s.summary()?;
            let cursor = match &config.stream {
                Some(stream) => summary.cursors.get(stream).cloned(),
                None if summary.cursors.len() == 1 => summary.cursors.values().next().cloned(),
                None => None,
            };
            (cursor, summary.last_sync_ms)
        };
        let status = SessionStatus {
            state: ConnectionState::Connecting { attempt: 1 },
            stream: config.stream.clone(),
            cursor: summary_cursor,
            last_sync_ms: last_sync,
            caveat: None,
            counters: Counters::default(),
        };
        let (status_tx, status_rx) = watch::channel(status);
        let (cmd_tx, cmd_rx) = mpsc::channel(16);
        let (events_tx, _) = broadcast::channel(4096);
        let handle = SessionHandle {
            cmd: cmd_tx,
            status: status_rx,
            events: events_tx.clone(),
            rest: rest.clone(),
            tokens: tokens.clone(),
            store: store.clone(),
            flushing: Arc::new(AtomicBool::new(false)),
        };
        let actor = SessionCx {
            backoff: Backoff::new(config.backoff.clone()),
            config,
            tokens,
            rest,
            store,
            status: status_tx,
            events: events_tx,
            cmd: cmd_rx,
            flush: handle.clone_for_flush(),
        };
        tokio::spawn(actor.run());
        Ok(handle)
    }

    fn clone_for_flush(&self) -> FlushHandle {
        FlushHandle {
            rest: self.rest.clone(),
            tokens: self.tokens.clone(),
            store: self.store.clone(),
            events: self.events.clone(),
            flushing: self.flushing.clone(),
        }
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
    pub fn store(&self) -> &SharedStore {
        &self.store
    }

    /// The REST client of this session's server.
    pub fn rest(&self) -> &RestClient {
        &self.rest
    }

    /// Try to connect now (the Retry button; also after a network change or wake).
    pub fn retry_now(&self) {
        let _ = self.cmd.try_send(Command::RetryNow);
    }

    /// Stop the session and wait until it has closed its connection. Idempotent.
    pub async fn stop(&self) {
        let (tx, rx) = oneshot::channel();
        if self.cmd.send(Command::Stop(tx)).await.is_ok() {
            let _ = rx.await;
        }
    }

    /// Perform a user action: sent now when the server is reachable, queued in the
    /// outbox otherwise (and sent on reconnect). A conflict is returned, never dropped.
    pub async fn perform(&self, action: Action) -> Result<ActionOutcome, SessionError> {
        let online = matches!(
            self.status.borrow().state,
            ConnectionState::Live | ConnectionState::Polling { .. }
        );
        if online {
            match send_action(&self.rest, self.tokens.as_ref(), &action).await {
                Sent::Final(outcome) => return Ok(outcome),
                Sent::Retry(err) => debug!(%err, "action not sent now; queueing"),
            }
        }
        let id = self
            .store
            .lock()
            .expect("store lock")
            .outbox_push(&action, crate::now_ms())?;
        Ok(ActionOutcome::Queued { outbox_id: id })
    }
}

enum Sent {
    Final(ActionOutcome),
    Retry(String),
}

async fn send_action(rest: &RestClient, tokens: &dyn TokenProvider, action: &Action) -> Sent {
    let mut refreshed = false;
    loop {
        let token = match tokens.token(refreshed).await {
            Ok(t) => t,
            Err(e) => return Sent::Retry(e.to_string()),
        };
        return match rest.perform(&token, action).await {
            Ok(entity) => Sent::Final(ActionOutcome::Done { entity }),
            Err(RestError::Conflict { message, current }) => {
                Sent::Final(ActionOutcome::Conflict { message, current })
            }
            Err(RestError::Unauthorized { .. }) if !refreshed => {
                refreshed = true;
                continue;
            }
            Err(e) if e.is_transient() => Sent::Retry(e.to_string()),
            Err(RestError::Unauthorized { message, .. }) => Sent::Retry(message),
            Err(e) => Sent::Final(ActionOutcome::Rejected {
                message: e.to_string(),
            }),
        };
    }
}

/// What the outbox flusher needs.
#[derive(Clone)]
struct FlushHandle {
    rest: RestClient,
    tokens: Arc<dyn TokenProvider>,
    store: SharedStore,
    events: broadcast::Sender<SessionEvent>,
    flushing: Arc<AtomicBool>,
}

impl FlushHandle {
    /// Send queued actions in order, in the background; one flush at a time.
    fn start(&self) {
        if self.flushing.swap(true, Ordering::AcqRel) {
            return;
        }
        let this = self.clone();
        tokio::spawn(async move {
            this.flush().await;
            this.flushing.store(false, Ordering::Release);
        });
    }

    async fn flush(&self) {
        let entries = match self.store.lock().expect("store lock").outbox() {
            Ok(e) => e,
            Err(e) => {
                warn!(error = %e, "cannot read the outbox");
                return;
            }
        };
        for entry in entries {
            match send_action(&self.rest, self.tokens.as_ref(), &entry.action).await {
                Sent::Final(outcome) => {
                    if let Err(e) = self
                        .store
                        .lock()
                        .expect("store lock")
                        .outbox_remove(entry.id)
                    {
                        warn!(error = %e, "cannot remove a sent action from the outbox");
                        return;
                    }
                    info!(outbox_id = entry.id, "queued action settled");
                    let _ = self.events.send(SessionEvent::ActionSettled {
                        outbox_id: entry.id,
                        action: entry.action,
                        outcome,
                    });
                }
                Sent::Retry(err) => {
                    let _ = self
                        .store
                        .lock()
                        .expect("store lock")
                        .outbox_fail(entry.id, &err);
                    return;
                }
            }
        }
    }
}

/// How a connection (or polling spell) ended.
#[derive(Debug)]
pub enum End {
    /// Stop requested.
    Stop,
    /// Reconnect now without waiting (gap, epoch race).
    Resync(String),
    /// The link was lost; wait and retry.
    Lost(String),
    /// Credentials refused.
    Unauthorized(String),
    /// The socket is refused by an HTTP answer; try polling.
    SocketRefused(String),
    /// Polling wants the socket tried again.
    TrySocket,
}

/// The running session as a [`Dialect`] sees it: state, store, commands.
/// Fields are private; use the methods.
pub struct SessionCx {
    config: SessionConfig,
    backoff: Backoff,
    tokens: Arc<dyn TokenProvider>,
    rest: RestClient,
    store: SharedStore,
    status: watch::Sender<SessionStatus>,
    events: broadcast::Sender<SessionEvent>,
    cmd: mpsc::Receiver<Command>,
    flush: FlushHandle,
}

type SnapshotFuture = Pin<Box<dyn Future<Output = Result<Snapshot, RestError>> + Send>>;

/// Per-connection state while streaming.
struct Link {
    stream: String,
    epoch: String,
    /// Last applied seq (mirror of the stored cursor).
    seq: u64,
    /// Replaying/catching up until the subscription's head is reached.
    catch_up_until: u64,
}

impl SessionCx {
    /// The session's settings.
    pub fn config(&self) -> &SessionConfig {
        &self.config
    }

    /// The shared store.
    pub fn store(&self) -> &SharedStore {
        &self.store
    }

    /// The REST client of the server.
    pub fn rest(&self) -> &RestClient {
        &self.rest
    }

    /// Wait for a command that interrupts the connection: [`End::Stop`] or, for a
    /// manual retry, [`End::Resync`]. Use it in a `select!` beside the socket.
    pub async fn interrupted(&mut self) -> End {
        let cmd = self.cmd.recv().await;
        self.on_command_while_busy(cmd)
    }

    /// Count a connection as opened.
    pub fn connected(&self) {
        self.status.send_modify(|s| s.counters.connections += 1);
    }

    /// Count an undecodable frame.
    pub fn count_decode_error(&self) {
        self.status.send_modify(|s| s.counters.decode_errors += 1);
    }

    /// Count an event that could not be mapped.
    pub fn count_rejected(&self) {
        self.status.send_modify(|s| s.counters.rejected_events += 1);
    }

    /// Name the stream followed and what the server cannot guarantee.
    pub fn describe(&self, stream: &str, caveat: Option<String>) {
        self.status.send_modify(|s| {
            s.stream = Some(stream.to_owned());
            s.caveat = caveat;
        });
    }

    /// Commit events of a non-native dialect: they get local seqs (epoch `local`)
    /// after the stream's stored cursor, and are applied in one transaction.
    pub fn commit_local(&mut self, stream: &str, events: Vec<LocalEvent>) -> Result<(), End> {
        const LOCAL_EPOCH: &str = "local";
        let others = match self.store.lock().expect("store lock").summary() {
            Ok(s) => s.cursors.keys().any(|k| k != stream),
            Err(e) => return Err(End::Lost(format!("cache error: {e}"))),
        };
        if others {
            // This cache held another server's or tenant's data: start clean.
            let fresh = Cursor {
                epoch: LOCAL_EPOCH.to_owned(),
                seq: 0,
            };
            if let Err(e) = self
                .store
                .lock()
                .expect("store lock")
                .replace_all(stream, &fresh, &[])
            {
                return Err(End::Lost(format!("cache error: {e}")));
            }
        }
        let start = match self.store_cursor(stream) {
            Ok(Some(c)) if c.epoch == LOCAL_EPOCH => c.seq,
            Ok(_) => 0,
            Err(e) => return Err(End::Lost(format!("cache error: {e}"))),
        };
        let mut link = Link {
            stream: stream.to_owned(),
            epoch: LOCAL_EPOCH.to_owned(),
            seq: start,
            catch_up_until: 0,
        };
        let applied = events
            .into_iter()
            .enumerate()
            .map(|(i, e)| AppliedEvent {
                frame: EventFrame {
                    seq: start + 1 + i as u64,
                    id: format!("local-{}", start + 1 + i as u64),
                    stream: stream.to_owned(),
                    event_type: e.event_type,
                    ts: e.ts,
                    data: e.data,
                },
                changes: e.changes,
            })
            .collect();
        self.commit(&mut link, applied)
    }

    /// Set the connection state.
    pub fn set_state(&self, state: ConnectionState) {
        self.status.send_if_modified(|s| {
            if s.state == state {
                false
            } else {
                s.state = state;
                true
            }
        });
    }

    async fn run(mut self) {
        let mut stop_reply: Option<oneshot::Sender<()>> = None;
        let mut polling_reason: Option<String> = None;
        loop {
            let started = Instant::now();
            let end = match (self.config.dialect.clone(), polling_reason.take()) {
                (Some(dialect), _) => {
                    self.set_state(ConnectionState::Connecting {
                        attempt: self.backoff.attempts() + 1,
                    });
                    dialect.run_connection(&mut self).await
                }
                (None, Some(reason)) => self.poll_mode(reason).await,
                (None, None) => self.connect_and_stream().await,
            };
            if started.elapsed() >= self.config.backoff.stable_after {
                self.backoff.reset();
            }
            let wait_reason = match end {
                End::Stop => break,
                End::Resync(why) => {
                    info!(reason = %why, "resyncing");
                    continue;
                }
                End::TrySocket => continue,
                End::SocketRefused(why) => {
                    polling_reason = Some(why);
                    continue;
                }
                End::Unauthorized(message) => {
                    warn!(%message, "credentials refused; waiting for the user");
                    self.set_state(ConnectionState::Unauthorized { message });
                    match self.cmd.recv().await {
                        Some(Command::RetryNow) => {
                            self.backoff.reset();
                            continue;
                        }
                        Some(Command::Stop(reply)) => {
                            stop_reply = Some(reply);
                            break;
                        }
                        None => break,
                    }
                }
                End::Lost(why) => why,
            };
            match self.wait_before_retry(wait_reason).await {
                Some(Some(reply)) => {
                    stop_reply = Some(reply);
                    break;
                }
                Some(None) => break,
                None => {}
            }
        }
        self.set_state(ConnectionState::Stopped);
        if let Some(reply) = stop_reply.take() {
            let _ = reply.send(());
        }
        // Answer any stop requests still queued.
        self.cmd.close();
        while let Some(cmd) = self.cmd.recv().await {
            if let Command::Stop(reply) = cmd {
                let _ = reply.send(());
            }
        }
    }

    /// Sleep for the next backoff delay. `Some(reply)` = stop requested.
    async fn wait_before_retry(&mut self, error: String) -> Option<Option<oneshot::Sender<()>>> {
        let delay = self.backoff.next_delay();
        let retry_at_ms = crate::now_ms() + delay.as_millis() as i64;
        let attempts = self.backoff.attempts();
        let state = if self.backoff.is_failed() {
            ConnectionState::Failed {
                attempts,
                retry_at_ms,
                error: error.clone(),
            }
        } else {
            ConnectionState::Reconnecting {
                attempt: attempts,
                retry_at_ms,
                error: error.clone(),
            }
        };
        info!(attempt = attempts, delay_ms = delay.as_millis() as u64, %error, "connection lost; retrying later");
        self.set_state(state);
        tokio::select! {
            _ = tokio::time::sleep(delay) => None,
            cmd = self.cmd.recv() => match cmd {
                Some(Command::RetryNow) => {
                    // A manual retry starts a fresh sequence.
                    self.backoff.reset();
                    None
                }
                Some(Command::Stop(reply)) => Some(Some(reply)),
                None => Some(None),
            },
        }
    }

    /// A token, refreshed if `force`. Maps failures to how the connection ends.
    pub async fn token(&self, force: bool) -> Result<Secret, End> {
        match self.tokens.token(force).await {
            Ok(t) => Ok(t),
            Err(AuthError::Unauthorized(m)) => Err(End::Unauthorized(m)),
            Err(AuthError::Unreachable(m)) => Err(End::Lost(m)),
        }
    }

    async fn connect_and_stream(&mut self) -> End {
        self.set_state(ConnectionState::Connecting {
            attempt: self.backoff.attempts() + 1,
        });
        let mut token = match self.token(false).await {
            Ok(t) => t,
            Err(end) => return end,
        };
        let mut refreshed = false;
        let conn = loop {
            let attempt = tokio::select! {
                r = NativeConnection::connect(&self.config.server, &token) => r,
                cmd = self.cmd.recv() => return self.on_command_while_busy(cmd),
            };
            match attempt {
                Ok(conn) => break conn,
                Err(ConnectError::Unauthorized(msg)) if !refreshed => {
                    debug!(%msg, "token refused; refreshing once");
                    refreshed = true;
                    token = match self.token(true).await {
                        Ok(t) => t,
                        Err(end) => return end,
                    };
                }
                Err(ConnectError::Unauthorized(msg)) => {
                    return End::Unauthorized(if msg.is_empty() {
                        "the server refused the credentials".into()
                    } else {
                        format!("the server refused the credentials: {msg}")
                    })
                }
                Err(e @ ConnectError::Refused { .. }) => return End::SocketRefused(e.to_string()),
                Err(e) => return End::Lost(e.to_string()),
            }
        };
        self.status.send_modify(|s| s.counters.connections += 1);
        self.stream(conn, token).await
    }

    fn on_command_while_busy(&mut self, cmd: Option<Command>) -> End {
        match cmd {
            Some(Command::Stop(reply)) => {
                let _ = reply.send(());
                End::Stop
            }
            Some(Command::RetryNow) => End::Resync("manual retry".into()),
            None => End::Stop,
        }
    }

    fn store_cursor(&self, stream: &str) -> Result<Option<Cursor>, StoreError> {
        self.store.lock().expect("store lock").cursor(stream)
    }

    /// Run one open connection until it ends.
    async fn stream(&mut self, mut conn: NativeConnection, token: Secret) -> End {
        // 1. hello
        let hello = match self.handshake_frame(&mut conn).await {
            Ok(ServerFrame::Hello(h)) => h,
            Ok(other) => return End::Lost(format!("expected hello, got {other:?}")),
            Err(end) => return end,
        };
        let silence = Duration::from_millis(hello.ping_interval_ms + hello.ping_timeout_ms)
            .max(Duration::from_millis(500));
        let stream = self.config.stream.clone().unwrap_or(hello.tenant.clone());
        let cursor = match self.store_cursor(&stream) {
            Ok(c) => c,
            Err(e) => return End::Lost(format!("cache error: {e}")),
        };
        self.status.send_modify(|s| {
            s.stream = Some(stream.clone());
            s.cursor = cursor.clone();
        });
        let subscribe = ClientFrame::Subscribe {
            stream: Some(stream.clone()),
            since: cursor.as_ref().map(|c| c.seq),
            epoch: cursor.as_ref().map(|c| c.epoch.clone()),
        };
        if let Err(e) = conn.send(&subscribe).await {
            return End::Lost(e);
        }
        // 2. subscribed
        let sub: Subscribed = loop {
            match self.handshake_frame(&mut conn).await {
                Ok(ServerFrame::Subscribed(s)) => break s,
                Ok(ServerFrame::Ping { ts }) => {
                    let _ = conn.send(&ClientFrame::Pong { ts }).await;
                }
                Ok(ServerFrame::Error { code, message }) if code == "forbidden" => {
                    return End::Unauthorized(format!(
                        "the server refused the subscription: {message}"
                    ))
                }
                Ok(ServerFrame::Error { code, message }) => {
                    return End::Lost(format!("server error {code}: {message}"))
                }
                Ok(other) => return End::Lost(format!("expected subscribed, got {other:?}")),
                Err(end) => return end,
            }
        };
        if sub.stream != stream {
            return End::Lost(format!(
                "subscribed to `{}` but asked for `{stream}`",
                sub.stream
            ));
        }
        let mut link = Link {
            stream: stream.clone(),
            epoch: sub.epoch.clone(),
            seq: cursor.as_ref().map(|c| c.seq).unwrap_or(0),
            catch_up_until: sub.head,
        };
        // 3. snapshot if the server cannot replay.
        let mut snapshot: Option<SnapshotFuture> = None;
        let mut buffered: Vec<EventFrame> = Vec::new();
        if sub.recovered {
            debug!(stream = %stream, since = link.seq, head = sub.head, "replaying");
            if link.seq >= sub.head {
                self.went_live();
            }
        } else {
            info!(stream = %stream, reason = ?sub.reason, "server cannot replay; loading a snapshot");
            let rest = self.rest.clone();
            let token = token.clone();
            snapshot = Some(Box::pin(async move { rest.snapshot(&token).await }));
        }

        // 4. stream
        loop {
            let incoming = tokio::select! {
                biased;
                cmd = self.cmd.recv() => {
                    let end = self.on_command_while_busy(cmd);
                    if matches!(end, End::Stop) {
                        conn.close().await;
                        return End::Stop;
                    }
                    continue;
                }
                snap = async { snapshot.as_mut().expect("guarded").await }, if snapshot.is_some() => {
                    snapshot = None;
                    match snap {
                        Ok(snap) => {
                            if let Err(end) = self.load_snapshot(&mut link, snap, std::mem::take(&mut buffered)) {
                                return end;
                            }
                            self.went_live();
                        }
                        Err(RestError::Unauthorized { message, .. }) => return End::Unauthorized(message),
                        Err(e) => return End::Lost(format!("snapshot failed: {e}")),
                    }
                    continue;
                }
                r = tokio::time::timeout(silence, conn.recv()) => match r {
                    Ok(i) => i,
                    Err(_) => return End::Lost(format!("no frame from the server for {} ms (dead link)", silence.as_millis())),
                },
            };
            // Gather what is already buffered into one batch.
            let mut batch: Vec<EventFrame> = Vec::new();
            let mut next = Some(incoming);
            let mut ended: Option<End> = None;
            while let Some(msg) = next.take() {
                match msg {
                    Incoming::Closed(why) => {
                        ended =
                            Some(End::Lost(why.unwrap_or_else(|| {
                                "the server closed the connection".into()
                            })));
                        break;
                    }
                    Incoming::Binary(n) => {
                        warn!(bytes = n, "binary frame ignored");
                        self.status.send_modify(|s| s.counters.decode_errors += 1);
                    }
                    Incoming::Text(text) => match ServerFrame::decode(&text) {
                        Ok(ServerFrame::Event(e)) => {
                            if e.stream != link.stream {
                                warn!(got = %e.stream, "event for another stream ignored");
                                self.status.send_modify(|s| s.counters.decode_errors += 1);
                            } else {
                                batch.push(e);
                            }
                        }
                        Ok(ServerFrame::Ping { ts }) => {
                            if let Err(e) = conn.send(&ClientFrame::Pong { ts }).await {
                                ended = Some(End::Lost(e));
                                break;
                            }
                        }
                        Ok(ServerFrame::Error { code, message }) => {
                            warn!(%code, %message, "server error frame");
                        }
                        Ok(ServerFrame::Hello(_)) | Ok(ServerFrame::Subscribed(_)) => {
                            debug!("unexpected control frame ignored");
                        }
                        Err(e) => {
                            warn!(error = %e, "undecodable frame skipped");
                            self.status.send_modify(|s| s.counters.decode_errors += 1);
                        }
                    },
                }
                if batch.len() < self.config.max_batch {
                    next = conn.try_recv();
                }
            }
            if !batch.is_empty() {
                if snapshot.is_some() {
                    buffered.extend(batch);
                } else if let Err(end) = self.apply_frames(&mut link, batch) {
                    return end;
                } else if link.seq >= link.catch_up_until
                    && !matches!(self.status.borrow().state, ConnectionState::Live)
                {
                    self.went_live();
                }
            }
            if let Some(end) = ended {
                return end;
            }
        }
    }

    /// Mark the session live (and send queued actions).
    pub fn went_live(&mut self) {
        self.set_state(ConnectionState::Live);
        self.flush.start();
    }

    async fn handshake_frame(&mut self, conn: &mut NativeConnection) -> Result<ServerFrame, End> {
        loop {
            let msg = tokio::select! {
                r = tokio::time::timeout(self.config.handshake_timeout, conn.recv()) => r,
                cmd = self.cmd.recv() => return Err(self.on_command_while_busy(cmd)),
            };
            match msg {
                Err(_) => {
                    return Err(End::Lost(
                        "the server did not answer the handshake in time".into(),
                    ))
                }
                Ok(Incoming::Closed(why)) => {
                    return Err(End::Lost(
                        why.unwrap_or_else(|| "closed during the handshake".into()),
                    ))
                }
                Ok(Incoming::Binary(_)) => continue,
                Ok(Incoming::Text(t)) => match ServerFrame::decode(&t) {
                    Ok(f) => return Ok(f),
                    Err(e) => {
                        warn!(error = %e, "undecodable frame during handshake skipped");
                        self.status.send_modify(|s| s.counters.decode_errors += 1);
                    }
                },
            }
        }
    }

    /// Turn frames into applied events, checking order; commit in one transaction.
    fn apply_frames(&mut self, link: &mut Link, frames: Vec<EventFrame>) -> Result<(), End> {
        let mut events = Vec::with_capacity(frames.len());
        let mut rejected = 0u64;
        let mut duplicates = 0u64;
        let mut gap: Option<(u64, u64)> = None;
        let mut next = link.seq + 1;
        for frame in frames {
            if frame.seq < next {
                duplicates += 1;
                continue;
            }
            if frame.seq > next {
                gap = Some((next, frame.seq));
                break;
            }
            let changes =
                match pulse_protocol::changes_for(&frame.event_type, &frame.data, frame.ts) {
                    Ok(c) => c,
                    Err(e) => {
                        warn!(seq = frame.seq, error = %e, "event not applied");
                        rejected += 1;
                        Vec::new()
                    }
                };
            next += 1;
            events.push(AppliedEvent { frame, changes });
        }
        self.commit(link, events)?;
        self.status.send_modify(|s| {
            s.counters.rejected_events += rejected;
            s.counters.duplicates += duplicates;
        });
        if let Some((want, got)) = gap {
            self.status.send_modify(|s| s.counters.gaps += 1);
            return Err(End::Resync(format!(
                "gap in the stream: expected seq {want}, got {got}"
            )));
        }
        Ok(())
    }

    fn commit(&mut self, link: &mut Link, events: Vec<AppliedEvent>) -> Result<(), End> {
        if events.is_empty() {
            return Ok(());
        }
        let applied = self
            .store
            .lock()
            .expect("store lock")
            .apply(&link.epoch, &events);
        if let Err(e) = applied {
            return Err(End::Lost(format!("cache write failed: {e}")));
        }
        let last = events.last().map(|e| e.frame.seq).unwrap_or(link.seq);
        let catching_up = link.seq < link.catch_up_until;
        link.seq = last;
        let n = events.len() as u64;
        let committed: Vec<CommittedEvent> = events
            .into_iter()
            .map(|e| CommittedEvent {
                seq: e.frame.seq,
                event_type: e.frame.event_type,
                changes: e.changes,
            })
            .collect();
        let now = crate::now_ms();
        let cursor = Cursor {
            epoch: link.epoch.clone(),
            seq: last,
        };
        self.status.send_modify(|s| {
            s.cursor = Some(cursor);
            s.last_sync_ms = Some(now);
            s.counters.events_applied += n;
        });
        let _ = self.events.send(SessionEvent::Applied {
            stream: link.stream.clone(),
            events: Arc::new(committed),
            catching_up,
        });
        Ok(())
    }

    fn load_snapshot(
        &mut self,
        link: &mut Link,
        snap: Snapshot,
        buffered: Vec<EventFrame>,
    ) -> Result<(), End> {
        if snap.stream != link.stream {
            return Err(End::Lost(format!(
                "snapshot is of stream `{}`, not `{}`",
                snap.stream, link.stream
            )));
        }
        if snap.epoch != link.epoch {
            return Err(End::Resync(
                "the stream's epoch changed while loading the snapshot".into(),
            ));
        }
        let cursor = Cursor {
            epoch: snap.epoch.clone(),
            seq: snap.seq,
        };
        let n = snap.entities.len();
        if let Err(e) = self.store.lock().expect("store lock").replace_all(
            &link.stream,
            &cursor,
            &snap.entities,
        ) {
            return Err(End::Lost(format!("cache write failed: {e}")));
        }
        link.seq = snap.seq;
        link.catch_up_until = link.catch_up_until.max(snap.seq);
        let now = crate::now_ms();
        self.status.send_modify(|s| {
            s.cursor = Some(cursor);
            s.last_sync_ms = Some(now);
            s.counters.snapshots += 1;
        });
        info!(stream = %link.stream, seq = snap.seq, entities = n, "snapshot loaded");
        let _ = self.events.send(SessionEvent::SnapshotLoaded {
            stream: link.stream.clone(),
            seq: snap.seq,
            entities: n,
        });
        let rest: Vec<EventFrame> = buffered.into_iter().filter(|e| e.seq > snap.seq).collect();
        self.apply_frames(link, rest)
    }

    /// Keep data fresh over REST while the socket is refused.
    async fn poll_mode(&mut self, reason: String) -> End {
        info!(%reason, "socket unavailable; polling over REST");
        let socket_retry_at = Instant::now() + self.config.socket_retry_interval;
        let mut refreshed = false;
        let mut announced = false;
        loop {
            let token = match self.token(refreshed).await {
                Ok(t) => t,
                Err(end) => return end,
            };
            let mut wait = self.config.poll_interval;
            match self.poll_once(&token).await {
                Ok(more) => {
                    refreshed = false;
                    if !announced {
                        announced = true;
                        self.set_state(ConnectionState::Polling {
                            reason: reason.clone(),
                        });
                        self.backoff.reset();
                        self.flush.start();
                    }
                    if more {
                        wait = Duration::ZERO;
                    }
                }
                Err(RestError::Unauthorized { .. }) if !refreshed => {
                    refreshed = true;
                    continue;
                }
                Err(RestError::Unauthorized { message, .. }) => return End::Unauthorized(message),
                Err(RestError::RateLimited { retry_after }) => {
                    info!(
                        retry_after_ms = retry_after.as_millis() as u64,
                        "rate limited; waiting"
                    );
                    wait = retry_after.max(self.config.poll_interval);
                }
                Err(e) => return End::Lost(format!("polling failed: {e}")),
            }
            let now = Instant::now();
            if now >= socket_retry_at {
                return End::TrySocket;
            }
            let wait = wait.min(socket_retry_at - now);
            if wait.is_zero() {
                continue;
            }
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                cmd = self.cmd.recv() => match self.on_command_while_busy(cmd) {
                    End::Stop => return End::Stop,
                    _ => return End::TrySocket,
                },
            }
        }
    }

    /// One poll. `Ok(true)` when more events are waiting.
    async fn poll_once(&mut self, token: &Secret) -> Result<bool, RestError> {
        self.status.send_modify(|s| s.counters.polls += 1);
        let known = self.status.borrow().stream.clone();
        let cursor = match &known {
            Some(stream) => self
                .store_cursor(stream)
                .map_err(|e| RestError::Decode(e.to_string()))?,
            None => None,
        };
        let since = cursor.as_ref().map(|c| c.seq).unwrap_or(0);
        let page = self
            .rest
            .events_since(
                token,
                since,
                cursor.as_ref().map(|c| c.epoch.as_str()),
                self.config.poll_page,
            )
            .await?;
        self.status
            .send_modify(|s| s.stream = Some(page.stream.clone()));
        let mut link = Link {
            stream: page.stream.clone(),
            epoch: page.epoch.clone(),
            seq: since,
            catch_up_until: page.head,
        };
        if !page.recovered || cursor.is_none() {
            let snap = self.rest.snapshot(token).await?;
            link.epoch = snap.epoch.clone();
            return match self.load_snapshot(&mut link, snap, Vec::new()) {
                Ok(()) => Ok(link.seq < page.head),
                Err(_) => Err(RestError::Decode("could not apply the snapshot".into())),
            };
        }
        let got = page.events.len();
        if got == 0 {
            let now = crate::now_ms();
            self.status.send_modify(|s| s.last_sync_ms = Some(now));
            return Ok(false);
        }
        match self.apply_frames(&mut link, page.events) {
            Ok(()) => Ok(link.seq < page.head),
            Err(End::Resync(why)) => Err(RestError::Decode(why)),
            Err(_) => Err(RestError::Decode("could not apply polled events".into())),
        }
    }
}
