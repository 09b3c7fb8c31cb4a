//! The actor loop and [`SessionCx`], the context every [`Dialect`] sees.
//!
//! The loop runs one connection (or one spell of the dialect's fallback) after
//! another and decides what follows from how it [`End`]ed. It knows no protocol.
//!
//! Invariants:
//! - the actor tells [`Backoff`] when a link came up ([`SessionCx::connected`]) and
//!   when it ended, and the strategy alone decides the delay and when it resets
//!   (a link that stayed up for `stable_after`, measured from when it came up);
//! - every commit goes through [`SessionCx::commit`]: store first, then the status
//!   and the broadcast, so a subscriber never sees an uncommitted change;
//! - a lost link moves a session of a server of several nodes to the next one
//!   ([`Failover`] decides which and whether at once); the REST client and the
//!   status follow the node;
//! - a refusal of the credentials waits for the user ([`SessionHandle::retry_now`]
//!   or stop) and is never retried by itself.
//!
//! [`SessionHandle::retry_now`]: super::SessionHandle::retry_now

use std::sync::Arc;
use std::time::Instant;

use pulse_protocol::frame::EventFrame;
use tokio::sync::{broadcast, mpsc, oneshot, watch};
use tracing::{info, warn};

use super::outbox::Flusher;
use super::{
    Command, CommittedEvent, ConnectionState, Counters, End, LocalEvent, Nudge, SessionConfig,
    SessionEvent, SessionStatus,
};
use crate::auth::{AuthError, Secret, TokenProvider};
use crate::backoff::Backoff;
use crate::failover::{Failover, Next};
use crate::rest::RestClient;
use crate::store::{AppliedEvent, Cursor, SnapshotRows, StoreError, StoreHandle};

/// The epoch of streams whose seqs Pulse numbers itself ([`SessionCx::commit_local`]).
const LOCAL_EPOCH: &str = "local";

/// The running session as a [`Dialect`](super::Dialect) sees it: settings, tokens,
/// the store, commits, counters and state. Fields are private; use the methods.
pub struct SessionCx {
    config: SessionConfig,
    backoff: Backoff,
    failover: Failover,
    outbox: Flusher,
    status: watch::Sender<SessionStatus>,
    events: broadcast::Sender<SessionEvent>,
    cmd: mpsc::Receiver<Command>,
    /// When the fallback last made a full round (kept across its spells until
    /// the session goes live).
    last_poll: Option<Instant>,
    /// Spells of the fallback in this outage (kept until the session goes live):
    /// how soon the socket is tried again ([`SessionCx::socket_retry_delay`]).
    spells: u32,
}

impl SessionCx {
    pub(super) fn new(
        config: SessionConfig,
        outbox: Flusher,
        status: watch::Sender<SessionStatus>,
        events: broadcast::Sender<SessionEvent>,
        cmd: mpsc::Receiver<Command>,
    ) -> Self {
        SessionCx {
            backoff: Backoff::new(config.backoff.clone()),
            failover: Failover::new(config.server.clone(), &config.nodes),
            config,
            outbox,
            status,
            events,
            cmd,
            last_poll: None,
            spells: 0,
        }
    }

    /// How long a spell of the fallback that starts now waits before it tries
    /// the socket again: the backoff's ceiling of the spells so far (1 s, 2 s,
    /// 4 s … by default), never more than `socket_retry_interval`. A socket
    /// refused only while its server restarted is back within seconds; one that
    /// is never to be had is tried every `socket_retry_interval` after a few
    /// quick tries. Counts the spell.
    pub fn socket_retry_delay(&mut self) -> std::time::Duration {
        let n = self.spells;
        self.spells = self.spells.saturating_add(1);
        self.config
            .backoff
            .ceiling(n)
            .min(self.config.socket_retry_interval)
    }

    /// When the fallback last made a full polling round in this outage.
    pub fn last_poll(&self) -> Option<tokio::time::Instant> {
        self.last_poll.map(tokio::time::Instant::from_std)
    }

    /// The fallback made a full polling round at `at`.
    pub fn set_last_poll(&mut self, at: tokio::time::Instant) {
        self.last_poll = Some(at.into_std());
    }

    /// The session's settings.
    pub fn config(&self) -> &SessionConfig {
        &self.config
    }

    /// The shared store.
    pub fn store(&self) -> &StoreHandle {
        self.outbox.store()
    }

    /// The REST client of the server.
    pub fn rest(&self) -> &RestClient {
        self.outbox.rest()
    }

    /// Where tokens come from (for [`crate::auth::with_token`]).
    pub fn tokens(&self) -> Arc<dyn TokenProvider> {
        self.outbox.tokens().clone()
    }

    /// A token, refreshed if `force`. Maps failures to how the connection ends.
    pub async fn token(&self, force: bool) -> Result<Secret, End> {
        self.outbox.tokens().token(force).await.map_err(auth_end)
    }

    /// Wait for a command that interrupts the connection: [`End::Stop`] or, for a
    /// nudge (manual retry, wake, network change), [`End::Resync`]. Use it in a `select!` beside the socket.
    pub async fn interrupted(&mut self) -> End {
        let cmd = self.cmd.recv().await;
        self.on_interrupt(cmd)
    }

    /// [`SessionCx::interrupted`] for a link that is up and current: a nudge
    /// that does not put the link in doubt ([`Nudge::ends_a_live_link`]: the
    /// Retry button) changes nothing and is waited past; a wake or a network
    /// change ends it, as the old socket may be a zombie. Use it in the live
    /// loop of a dialect.
    pub async fn interrupted_live(&mut self) -> End {
        loop {
            match self.cmd.recv().await {
                Some(Command::Nudge(why)) if !why.ends_a_live_link() => {
                    info!(reason = %why, "nudge while live: the link stays");
                }
                cmd => return self.on_interrupt(cmd),
            }
        }
    }

    fn on_interrupt(&mut self, cmd: Option<Command>) -> End {
        let end = on_command_while_busy(cmd);
        if matches!(end, End::Resync(_)) {
            // A nudge means now: the fallback's next round too, and a
            // fresh backoff sequence (so it is never held back as a repeated
            // resync).
            self.last_poll = None;
            self.backoff.reset();
        }
        end
    }

    /// The link is up (socket open, handshake done): counted, and the moment from
    /// which the backoff measures stability.
    pub fn connected(&mut self) {
        self.backoff.connected(Instant::now());
        self.status.send_modify(|s| s.counters.connections += 1);
    }

    /// Update the running counts.
    pub fn count(&self, f: impl FnOnce(&mut Counters)) {
        self.status.send_modify(|s| f(&mut s.counters));
    }

    /// Count an undecodable frame.
    pub fn count_decode_error(&self) {
        self.count(|c| c.decode_errors += 1);
    }

    /// Count an event that could not be mapped.
    pub fn count_rejected(&self) {
        self.count(|c| c.rejected_events += 1);
    }

    /// Name the stream followed and what the server cannot guarantee.
    pub fn describe(&self, stream: &str, caveat: Option<String>) {
        self.status.send_modify(|s| {
            s.stream = Some(stream.to_owned());
            s.caveat = caveat;
        });
    }

    /// The stream followed, once known.
    pub fn stream(&self) -> Option<String> {
        self.status.borrow().stream.clone()
    }

    /// Show `cursor` as the stream's position (before anything new is applied).
    pub fn show_cursor(&self, stream: &str, cursor: Option<Cursor>) {
        self.status.send_modify(|s| {
            s.stream = Some(stream.to_owned());
            s.cursor = cursor;
        });
    }

    /// Data is known fresh now although nothing changed (an empty poll).
    pub fn synced(&self) {
        let now = crate::now_ms();
        self.status.send_modify(|s| s.last_sync_ms = Some(now));
    }

    /// Whether the state is [`ConnectionState::Live`].
    pub fn is_live(&self) -> bool {
        matches!(self.status.borrow().state, ConnectionState::Live)
    }

    /// Mark the session live (and send queued actions).
    pub fn went_live(&mut self) {
        self.last_poll = None;
        self.spells = 0;
        self.failover.on_live();
        self.set_state(ConnectionState::Live);
        self.outbox.start();
    }

    /// The fallback keeps the data fresh without the socket: the state says so, the
    /// backoff starts afresh and queued actions are sent.
    pub fn polling(&mut self, reason: String) {
        self.failover.on_live();
        self.set_state(ConnectionState::Polling { reason });
        self.backoff.reset();
        self.outbox.start();
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

    /// Commit `events` of `stream` (seqs of `epoch`, in order) in one store
    /// transaction, then publish them. `catching_up` marks replayed or polled events.
    pub fn commit(
        &mut self,
        stream: &str,
        epoch: &str,
        events: Vec<AppliedEvent>,
        catching_up: bool,
    ) -> Result<(), End> {
        let Some(last) = events.last().map(|e| e.frame.seq) else {
            return Ok(());
        };
        self.store().apply(epoch, &events)?;
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
            epoch: epoch.to_owned(),
            seq: last,
        };
        self.status.send_modify(|s| {
            s.cursor = Some(cursor);
            s.last_sync_ms = Some(now);
            s.counters.events_applied += n;
        });
        let _ = self.events.send(SessionEvent::Applied {
            stream: stream.to_owned(),
            events: Arc::new(committed),
            catching_up,
        });
        Ok(())
    }

    /// Swap a snapshot of `stream` into the store atomically, then publish it.
    pub fn replace_all(
        &mut self,
        stream: &str,
        cursor: Cursor,
        entities: &SnapshotRows,
    ) -> Result<(), End> {
        self.store().replace_rows(stream, &cursor, entities)?;
        let now = crate::now_ms();
        let seq = cursor.seq;
        self.status.send_modify(|s| {
            s.cursor = Some(cursor);
            s.last_sync_ms = Some(now);
            s.counters.snapshots += 1;
        });
        info!(%stream, seq, entities = entities.len(), "snapshot loaded");
        let _ = self.events.send(SessionEvent::SnapshotLoaded {
            stream: stream.to_owned(),
            seq,
            entities: entities.len(),
        });
        Ok(())
    }

    /// Commit events of a dialect without seqs: they get local seqs (epoch `local`)
    /// after the stream's stored cursor, and are applied in one transaction.
    /// A cache that holds another stream's cursor (another server's or tenant's
    /// data) is started clean first. Per batch this reads the cursors only
    /// ([`Store::cursors`](crate::store::Store::cursors)), never the summary's
    /// entity counts.
    pub fn commit_local(&mut self, stream: &str, events: Vec<LocalEvent>) -> Result<(), End> {
        let cursors = self.store().cursors()?;
        let mut stored = cursors.get(stream).cloned();
        if cursors.keys().any(|k| k != stream) {
            // This cache held another server's or tenant's data: start clean.
            let fresh = Cursor {
                epoch: LOCAL_EPOCH.to_owned(),
                seq: 0,
            };
            self.store().replace_all(stream, &fresh, &[])?;
            stored = Some(fresh);
        }
        let start = match stored {
            Some(c) if c.epoch == LOCAL_EPOCH => c.seq,
            _ => 0,
        };
        let applied = events
            .into_iter()
            .zip(start + 1..)
            .map(|(e, seq)| AppliedEvent {
                frame: EventFrame {
                    user: None,
                    seq,
                    id: format!("local-{seq}"),
                    stream: stream.to_owned(),
                    event_type: e.event_type,
                    ts: e.ts,
                    data: e.data,
                },
                changes: e.changes,
            })
            .collect();
        self.commit(stream, LOCAL_EPOCH, applied, false)
    }

    /// The link to the node the session is on was lost: move to the next node of
    /// the server, if it has several; whether to connect to it at once.
    fn fail_over(&mut self) -> Next {
        let next = self.failover.on_lost();
        if next != Next::Stay {
            let node = self.failover.active().clone();
            info!(node = %node, "moving to the next node of the server");
            self.rest().use_node(&node);
            self.outbox.tokens().use_node(&node);
            self.status.send_modify(|s| s.node = Some(node.to_string()));
            self.config.server = node;
        }
        next
    }

    /// Sleep for the next backoff delay. `Some(reply)` = stop requested.
    async fn wait_before_retry(&mut self, error: String) -> Option<Option<oneshot::Sender<()>>> {
        let delay = self.backoff.disconnected(Instant::now());
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
                Some(Command::Nudge(_)) => {
                    // A nudge (manual retry, wake, network change) starts a
                    // fresh sequence.
                    self.backoff.reset();
                    None
                }
                Some(Command::Stop(reply)) => Some(Some(reply)),
                None => Some(None),
            },
        }
    }
}

/// A token provider's failure as the end of a connection.
pub fn auth_end(e: AuthError) -> End {
    match e {
        AuthError::Unauthorized(m) => End::Unauthorized(m),
        AuthError::Unreachable(m) => End::Lost(m),
    }
}

/// What a command received while a connection runs means for it.
fn on_command_while_busy(cmd: Option<Command>) -> End {
    match cmd {
        Some(Command::Stop(reply)) => {
            let _ = reply.send(());
            End::Stop
        }
        Some(Command::Nudge(why)) => End::Resync(why.to_string()),
        None => End::Stop,
    }
}

/// The reason shown while polling because the user chose it.
const FORCED: &str = "polling chosen in the server's settings";

/// A cache failure as the reason shown while waiting to retry.
fn cache_reason(e: &StoreError) -> String {
    format!("cache write failed: {e}")
}

/// Run connections until stopped.
pub(super) async fn run(mut cx: SessionCx) {
    let mut stop_reply: Option<oneshot::Sender<()>> = None;
    let mut fallback: Option<String> = None;
    // The fallback asked for the socket: try it while the state still says
    // `Polling` (the data is fresh), and fall back again if it is refused.
    let mut socket_in_background = false;
    loop {
        let dialect = cx.config.dialect.clone();
        if cx.config.force_polling && fallback.is_none() {
            fallback = Some(FORCED.to_owned());
        }
        let end = match fallback.take() {
            Some(reason) => dialect.run_fallback(&mut cx, reason).await,
            None => {
                if !std::mem::take(&mut socket_in_background) {
                    cx.set_state(ConnectionState::Connecting {
                        attempt: cx.backoff.attempts() + 1,
                    });
                }
                dialect.run_connection(&mut cx).await
            }
        };
        let wait_reason = match end {
            End::Stop => break,
            End::Resync(why) => {
                if cx.backoff.resync_now(Instant::now()) {
                    info!(reason = %why, "resyncing");
                    continue;
                }
                // Resync after resync on links that never became stable: a
                // server that gaps on every connection is retried with backoff.
                warn!(reason = %why, "repeated resync; backing off");
                why
            }
            End::TrySocket => {
                cx.backoff.link_ended(Instant::now());
                socket_in_background =
                    matches!(cx.status.borrow().state, ConnectionState::Polling { .. });
                continue;
            }
            End::SocketRefused(why) => {
                cx.backoff.link_ended(Instant::now());
                fallback = Some(why);
                continue;
            }
            End::Unauthorized(message) => {
                warn!(%message, "credentials refused; waiting for the user");
                cx.backoff.link_ended(Instant::now());
                cx.set_state(ConnectionState::Unauthorized { message });
                // Only the user retries refused credentials; a wake or a
                // network change is no reason to try them again.
                let retry = loop {
                    match cx.cmd.recv().await {
                        Some(Command::Nudge(Nudge::User)) => break true,
                        Some(Command::Nudge(why)) => {
                            info!(reason = %why, "nudge ignored: the credentials were refused");
                        }
                        Some(Command::Stop(reply)) => {
                            stop_reply = Some(reply);
                            break false;
                        }
                        None => break false,
                    }
                };
                if !retry {
                    break;
                }
                cx.backoff.reset();
                continue;
            }
            End::Cache(e) => {
                warn!(error = %e, "cache error; retrying later");
                cache_reason(&e)
            }
            End::Lost(why) => {
                if cx.fail_over() == Next::Now {
                    info!(reason = %why, "node lost; trying the next at once");
                    cx.backoff.link_ended(Instant::now());
                    continue;
                }
                why
            }
        };
        match cx.wait_before_retry(wait_reason).await {
            Some(Some(reply)) => {
                stop_reply = Some(reply);
                break;
            }
            Some(None) => break,
            None => {}
        }
    }
    cx.set_state(ConnectionState::Stopped);
    if let Some(reply) = stop_reply.take() {
        let _ = reply.send(());
    }
    // Answer any stop requests still queued.
    cx.cmd.close();
    while let Some(cmd) = cx.cmd.recv().await {
        if let Command::Stop(reply) = cmd {
            let _ = reply.send(());
        }
    }
}
