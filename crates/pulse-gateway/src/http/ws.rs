//! `GET /v1/stream`: one task per connection.
//!
//! Protocol per connection: `hello` → client `subscribe` → `subscribed` → replay (if
//! `recovered`) → live events, with server `ping` frames every ping interval.
//!
//! Invariants:
//! - the token was verified before the upgrade (the [`Auth`] extractor runs first);
//! - a connection only ever receives its token's tenant: any other `stream` gets an
//!   `error` frame `forbidden` and a close (1008);
//! - no gap and no duplicate across replay → live: the live feed is subscribed before
//!   the log is read, and live events with `seq <=` the last sent one are skipped;
//! - live events reach a connection in seq order with no gap: a live event past
//!   `last sent + 1` (the replay came from a merged read a moment older than the
//!   live subscription) is preceded by the missing events read from the log; a
//!   store that cannot be reached at subscribe closes with 1013, and the client
//!   keeps its cache;
//! - an event addressed to another user than the token's `sub` is sent as its
//!   `pulse.skipped` placeholder (same seq, no data), in replay and live alike, so
//!   every connection's seqs stay gap-free;
//! - an idle connection holds small buffers ([`READ_BUFFER_BYTES`],
//!   [`WRITE_BUFFER_BYTES`]), and what is queued for one client is bounded in bytes
//!   ([`MAX_WRITE_BUFFER_BYTES`]) as well as in events;
//! - the connection never blocks the writer: it falls behind at most `client_queue`
//!   events (then it is closed with 1013 and resyncs on reconnect), and a send that
//!   takes longer than ping interval + timeout closes it as well;
//! - a stream lives as long as its token: at the token's `exp` it gets an `error`
//!   frame `token_expired` and a close (4001), unless an `auth` frame brought a
//!   valid access token of the same tenant and subject first (whose `exp` then
//!   counts); a refused `auth` frame closes with 4001 too;
//! - a stream closes (an `error` frame `revoked`, then 4001) as soon as its token
//!   is revoked: its user was removed from the users file, or its session signed
//!   out ([`crate::revoked`]); an `auth` frame with a revoked token is refused;
//! - a stream holds its place in the per-token and per-address caps
//!   ([`crate::limits`]) until its task ends;
//! - a client silent for ping interval + timeout is closed (1008); a bad frame is
//!   answered with an `error` frame `bad_request` and the connection stays; a frame
//!   over [`MAX_FRAME_BYTES`] closes it (1009).

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::{ConnectInfo, State};
use axum::response::Response;
use futures_util::SinkExt;
use pulse_protocol::auth::Claims;
use pulse_protocol::frame::{Hello, Subscribed};
use pulse_protocol::{ClientFrame, ServerFrame, MAX_FRAME_BYTES, PROTOCOL_VERSION};
use tokio::sync::broadcast::error::{RecvError, TryRecvError};
use tokio::sync::broadcast::Receiver;
use tokio::time::{sleep_until, Instant};

use super::error::{ApiErr, Auth};
use super::AppState;
use crate::hub::LiveEvent;
use crate::metrics::Metrics;
use crate::store::EventRange;

/// Events read from the log per replay page.
const REPLAY_PAGE: usize = 1000;
/// Live events sent before one flush.
const LIVE_BATCH: usize = 256;
/// Initial read buffer of a WebSocket (tungstenite's default is 128 KiB).
pub const READ_BUFFER_BYTES: usize = 4 * 1024;
/// Bytes written into the WebSocket's buffer before they go to the socket
/// (tungstenite's default is 128 KiB); every batch is flushed anyway.
pub const WRITE_BUFFER_BYTES: usize = 4 * 1024;
/// Most bytes buffered for one connection whose socket does not take them: a
/// replay page or live batch of full-size frames fits.
pub const MAX_WRITE_BUFFER_BYTES: usize = 4 * MAX_FRAME_BYTES;

/// Close codes used by the gateway.
mod close {
    pub const GOING_AWAY: u16 = 1001;
    pub const POLICY: u16 = 1008;
    pub const TOO_BIG: u16 = 1009;
    pub const INTERNAL: u16 = 1011;
    pub const TRY_AGAIN: u16 = 1013;
    /// The connection's token expired (and no `auth` frame renewed it), or an
    /// `auth` frame's token was refused: refresh and reconnect.
    pub const TOKEN: u16 = 4001;
}

#[utoipa::path(
    get,
    path = "/v1/stream",
    tag = "read",
    operation_id = "stream",
    description = "The WebSocket stream (frames in docs/protocol.md). Needs a WebSocket upgrade; the token is checked before it.",
    security(("bearer" = [])),
    responses(
        (status = 101, description = "Switching to the WebSocket protocol"),
        (status = 400, response = super::openapi::BadRequest),
        (status = 426, response = super::openapi::BadRequest),
        (status = 401, response = super::openapi::Unauthorized),
        (status = 429, response = super::openapi::RateLimited),
        (status = 500, response = super::openapi::Internal),
        (status = 503, response = super::openapi::Unavailable),
    ),
)]
pub(super) async fn stream(
    State(st): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<std::net::SocketAddr>,
    Auth(claims): Auth,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Result<Response, ApiErr> {
    let upgrade = upgrade.map_err(|e| {
        ApiErr::with_status(e.status(), format!("expected a WebSocket upgrade: {e}"))
    })?;
    // Caps before the upgrade: a refused stream is a plain HTTP 429. The guards
    // live as long as the connection's task.
    let limiter = &st.limiter;
    let by_address = limiter
        .per_address
        .acquire(&peer.ip().to_string())
        .map_err(ApiErr::rate_limited)?;
    let by_token = limiter
        .per_token
        .acquire(&crate::limits::token_key(&claims))
        .map_err(ApiErr::rate_limited)?;
    Ok(upgrade
        // Small buffers: an idle connection costs a few KiB, not tungstenite's
        // default 2 × 128 KiB (they grow while a large frame passes through).
        .read_buffer_size(READ_BUFFER_BYTES)
        .write_buffer_size(WRITE_BUFFER_BYTES)
        // Bytes queued for one client that the socket does not take: bounded, so a
        // stalled client costs at most this much before its writes fail.
        .max_write_buffer_size(MAX_WRITE_BUFFER_BYTES)
        // Twice the limit, so that a frame just over it is read and refused cleanly
        // (close 1009) rather than failing inside the codec.
        .max_message_size(2 * MAX_FRAME_BYTES)
        .max_frame_size(2 * MAX_FRAME_BYTES)
        .on_upgrade(move |socket| async move {
            let _guards = (by_address, by_token);
            Connection::new(socket, st, claims).run().await;
        }))
}

/// Why the connection loop stopped.
enum Stop {
    /// The peer went away or the socket failed; nothing more to send.
    Gone,
    /// Close with this code and reason.
    Close(u16, &'static str),
}

struct Connection {
    socket: WebSocket,
    st: Arc<AppState>,
    claims: Claims,
    metrics: Arc<Metrics>,
    live: Option<Receiver<Arc<LiveEvent>>>,
    last_sent: u64,
    last_seen: Instant,
    send_timeout: Duration,
}

impl Connection {
    fn new(socket: WebSocket, st: Arc<AppState>, claims: Claims) -> Connection {
        let metrics = st.hub.metrics().clone();
        metrics.connections_open.fetch_add(1, Ordering::Relaxed);
        metrics.connections_total.fetch_add(1, Ordering::Relaxed);
        let send_timeout = st.ping_interval + st.ping_timeout;
        Connection {
            socket,
            st,
            claims,
            metrics,
            live: None,
            last_sent: 0,
            last_seen: Instant::now(),
            send_timeout,
        }
    }

    async fn run(mut self) {
        tracing::debug!(tenant = %self.claims.tenant, sub = %self.claims.sub, "stream opened");
        let stop = self.serve().await;
        match stop {
            Stop::Gone => {}
            Stop::Close(code, reason) => {
                tracing::debug!(tenant = %self.claims.tenant, code, reason, "closing stream");
                let frame = Message::Close(Some(CloseFrame {
                    code,
                    reason: Utf8Bytes::from_static(reason),
                }));
                let _ = tokio::time::timeout(Duration::from_secs(1), self.socket.send(frame)).await;
            }
        }
    }

    async fn serve(&mut self) -> Stop {
        let hello = ServerFrame::Hello(Hello {
            version: PROTOCOL_VERSION,
            tenant: self.claims.tenant.clone(),
            ping_interval_ms: self.st.ping_interval.as_millis() as u64,
            ping_timeout_ms: self.st.ping_timeout.as_millis() as u64,
            server: concat!("pulse-gateway/", env!("CARGO_PKG_VERSION")).into(),
        });
        if let Err(stop) = self.send_frame(&hello).await {
            return stop;
        }
        let interval = self.st.ping_interval.max(Duration::from_millis(10));
        let mut ping = tokio::time::interval_at(Instant::now() + interval, interval);
        ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let idle_limit = self.st.ping_interval + self.st.ping_timeout;
        let mut shutdown = self.st.shutdown.clone();
        let mut revocations = self.st.revoked.subscribe();
        loop {
            if *shutdown.borrow() {
                return Stop::Close(close::GOING_AWAY, "server shutting down");
            }
            let idle_deadline = self.last_seen + idle_limit;
            let expiry = expires_at(&self.claims);
            tokio::select! {
                _ = shutdown.changed() => {
                    return Stop::Close(close::GOING_AWAY, "server shutting down");
                }
                msg = self.socket.recv() => {
                    let msg = match msg {
                        None => return Stop::Gone,
                        Some(Err(e)) => {
                            tracing::debug!(error = %e, "stream read failed");
                            return Stop::Gone;
                        }
                        Some(Ok(msg)) => msg,
                    };
                    self.last_seen = Instant::now();
                    if let Err(stop) = self.on_message(msg).await {
                        return stop;
                    }
                }
                ev = recv_live(&mut self.live) => {
                    if let Err(stop) = self.on_live(ev).await {
                        return stop;
                    }
                }
                _ = ping.tick() => {
                    let ts = crate::store::now_ms();
                    if let Err(stop) = self.send_frame(&ServerFrame::Ping { ts }).await {
                        return stop;
                    }
                }
                _ = revocations.recv() => {
                    // Lagged or not, look again at this stream's token.
                    if let Err(e) = self.st.revoked.check(&self.claims) {
                        tracing::info!(tenant = %self.claims.tenant, sub = %self.claims.sub, "stream token revoked");
                        let _ = self.send_error("revoked", &ApiErr::from(e).message).await;
                        return Stop::Close(close::TOKEN, "token revoked");
                    }
                }
                _ = sleep_until(idle_deadline) => {
                    return Stop::Close(close::POLICY, "no message from the client within ping interval + timeout");
                }
                _ = sleep_until(expiry) => {
                    // `exp` is whole seconds: make sure it has passed on the clock
                    // the verifier uses too before closing.
                    if crate::auth::now_secs() >= self.claims.exp {
                        tracing::debug!(tenant = %self.claims.tenant, sub = %self.claims.sub, "stream token expired");
                        let _ = self.send_error("token_expired", "the connection's token expired; refresh it and reconnect, or send an `auth` frame before it expires").await;
                        return Stop::Close(close::TOKEN, "token expired");
                    }
                }
            }
        }
    }

    async fn on_message(&mut self, msg: Message) -> Result<(), Stop> {
        match msg {
            Message::Text(text) => {
                if text.len() > MAX_FRAME_BYTES {
                    return Err(Stop::Close(close::TOO_BIG, "frame larger than 1 MiB"));
                }
                match ClientFrame::decode(text.as_str()) {
                    Ok(ClientFrame::Pong { .. }) => Ok(()),
                    Ok(ClientFrame::Auth { token }) => self.reauth(&token).await,
                    Ok(ClientFrame::Subscribe {
                        stream,
                        since,
                        epoch,
                    }) => self.subscribe(stream, since, epoch).await,
                    Err(e) => self.send_error("bad_request", &e.to_string()).await,
                }
            }
            Message::Binary(b) => {
                if b.len() > MAX_FRAME_BYTES {
                    return Err(Stop::Close(close::TOO_BIG, "frame larger than 1 MiB"));
                }
                self.send_error(
                    "bad_request",
                    "binary frames are not supported; send JSON text",
                )
                .await
            }
            // tungstenite answers pings itself; any traffic counts as liveness.
            Message::Ping(_) | Message::Pong(_) => Ok(()),
            Message::Close(_) => Err(Stop::Gone),
        }
    }

    /// An `auth` frame: a valid access token of the same tenant and subject
    /// replaces the connection's (its `exp` is the new deadline); anything else is
    /// answered with an `error` frame and close 4001. Success is silent.
    async fn reauth(&mut self, token: &str) -> Result<(), Stop> {
        let claims = match self
            .st
            .keys
            .verify_access(token)
            .and_then(|c| self.st.revoked.check(&c).map(|_| c))
        {
            Ok(c) => c,
            Err(e) => {
                self.metrics.auth_failures.fetch_add(1, Ordering::Relaxed);
                let err = ApiErr::from(e);
                self.send_error(err.code, &err.message).await?;
                return Err(Stop::Close(close::TOKEN, "auth frame refused"));
            }
        };
        if claims.tenant != self.claims.tenant || claims.sub != self.claims.sub {
            self.metrics.auth_failures.fetch_add(1, Ordering::Relaxed);
            self.send_error(
                "forbidden",
                "an `auth` frame must carry a token of the connection's tenant and subject",
            )
            .await?;
            return Err(Stop::Close(close::TOKEN, "auth frame refused"));
        }
        tracing::debug!(tenant = %claims.tenant, sub = %claims.sub, exp = claims.exp, "stream re-authenticated");
        self.claims = claims;
        Ok(())
    }

    async fn subscribe(
        &mut self,
        stream: Option<String>,
        since: Option<u64>,
        epoch: Option<String>,
    ) -> Result<(), Stop> {
        if self.live.is_some() {
            return self
                .send_error("bad_request", "already subscribed on this connection")
                .await;
        }
        let tenant = self.claims.tenant.clone();
        let stream = stream.unwrap_or_else(|| tenant.clone());
        if stream != tenant {
            tracing::info!(tenant = %tenant, stream = %stream, "subscribe to a foreign stream refused");
            self.send_error(
                "forbidden",
                &format!("this token is for tenant `{tenant}` and cannot read stream `{stream}`"),
            )
            .await?;
            return Err(Stop::Close(close::POLICY, "forbidden stream"));
        }
        let hub = self.st.hub.clone();
        let t = hub.tenant(&tenant).await.map_err(internal)?;
        // Live feed first, then the log: nothing committed in between can be missed.
        self.live = Some(hub.subscribe(&t).await.map_err(internal)?);
        let cursor = since.zip(epoch);
        let after = cursor.as_ref().map_or(u64::MAX, |(s, _)| *s);
        let mut first = hub
            .read(&tenant, after, REPLAY_PAGE)
            .await
            .map_err(internal)?;
        if cursor.is_some() && after > first.info.head {
            // A merged read may be a moment old: ask the store itself before
            // calling the cursor ahead.
            first = hub
                .read_direct(&tenant, after, REPLAY_PAGE)
                .await
                .map_err(internal)?;
        }
        let info = first.info.clone();
        if hub.observe(&t, &info) {
            let woken = hub.clone();
            let _ = tokio::task::spawn_blocking(move || woken.wake_tail()).await;
        }
        let reason = match &cursor {
            None => Some("no_cursor"),
            Some((_, e)) if *e != info.epoch => Some("epoch_changed"),
            Some((s, _)) if *s > info.head => Some("ahead"),
            Some((s, _)) if !info.can_replay_after(*s) => Some("truncated"),
            Some(_) => None,
        };
        let subscribed = ServerFrame::Subscribed(Subscribed {
            stream: tenant.clone(),
            epoch: info.epoch.clone(),
            head: info.head,
            recovered: reason.is_none(),
            reason: reason.map(str::to_owned),
        });
        self.send_frame(&subscribed).await?;
        match reason {
            Some(reason) => {
                self.metrics.resync(reason);
                self.last_sent = info.head;
            }
            None => {
                self.metrics.replays.fetch_add(1, Ordering::Relaxed);
                self.last_sent = after;
                self.replay(first, info.head).await?;
            }
        }
        tracing::debug!(tenant = %tenant, head = info.head, reason = reason.unwrap_or("recovered"), "subscribed");
        Ok(())
    }

    /// Send the log's events after `last_sent` up to `upto`, starting with `page`
    /// (read after `last_sent`) and reading on from the store. A hole in the log
    /// (retention ran meanwhile) closes with 1013: the client resyncs.
    async fn replay(&mut self, mut page: Arc<EventRange>, upto: u64) -> Result<(), Stop> {
        let overtaken = || {
            Stop::Close(
                close::TRY_AGAIN,
                "replay overtaken by retention; resubscribe",
            )
        };
        while self.last_sent < upto {
            let mut n = 0;
            let from = self.last_sent;
            for e in page.events.iter().filter(|e| e.seq > from) {
                if e.seq > upto {
                    break;
                }
                if e.seq != self.last_sent + 1 {
                    return Err(overtaken());
                }
                self.last_sent = e.seq;
                let text = e.for_viewer(&self.claims.sub).encode();
                self.feed(Utf8Bytes::from(text)).await?;
                n += 1;
            }
            if n == 0 {
                return Err(overtaken());
            }
            self.flush().await?;
            self.metrics.replayed_events.fetch_add(n, Ordering::Relaxed);
            if self.last_sent < upto {
                page = self
                    .st
                    .hub
                    .read(&self.claims.tenant, self.last_sent, REPLAY_PAGE)
                    .await
                    .map_err(internal)?;
            }
        }
        Ok(())
    }

    async fn on_live(&mut self, first: Result<Arc<LiveEvent>, RecvError>) -> Result<(), Stop> {
        let mut next = first;
        let mut fed = 0;
        loop {
            match next {
                Ok(ev) => {
                    if ev.seq == LiveEvent::RESYNC {
                        return Err(Stop::Close(
                            close::TRY_AGAIN,
                            "the log was recreated; resubscribe",
                        ));
                    }
                    if ev.seq > self.last_sent + 1 {
                        // The replay ended before this connection's live feed began
                        // (a merged read a moment old): fill the gap from the log.
                        let page = self
                            .st
                            .hub
                            .read(&self.claims.tenant, self.last_sent, REPLAY_PAGE)
                            .await
                            .map_err(internal)?;
                        self.replay(page, ev.seq - 1).await?;
                    }
                    if ev.seq > self.last_sent {
                        self.last_sent = ev.seq;
                        let text = ev.text_for(&self.claims.sub).clone();
                        self.feed(text).await?;
                        fed += 1;
                    }
                }
                Err(RecvError::Lagged(n)) => {
                    self.metrics.slow_clients.fetch_add(1, Ordering::Relaxed);
                    tracing::info!(tenant = %self.claims.tenant, missed = n, "client too slow; disconnecting");
                    return Err(Stop::Close(
                        close::TRY_AGAIN,
                        "client too slow; resubscribe",
                    ));
                }
                Err(RecvError::Closed) => {
                    return Err(Stop::Close(close::GOING_AWAY, "stream closed"));
                }
            }
            if fed >= LIVE_BATCH {
                break;
            }
            let Some(rx) = self.live.as_mut() else { break };
            next = match rx.try_recv() {
                Ok(ev) => Ok(ev),
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Lagged(n)) => Err(RecvError::Lagged(n)),
                Err(TryRecvError::Closed) => Err(RecvError::Closed),
            };
        }
        if fed > 0 {
            self.flush().await?;
        }
        Ok(())
    }

    async fn send_error(&mut self, code: &str, message: &str) -> Result<(), Stop> {
        let frame = ServerFrame::Error {
            code: code.to_owned(),
            message: message.to_owned(),
        };
        self.send_frame(&frame).await
    }

    async fn send_frame(&mut self, frame: &ServerFrame) -> Result<(), Stop> {
        self.feed(Utf8Bytes::from(frame.encode())).await?;
        self.flush().await
    }

    /// Queue one text frame (written out at the latest by the next flush).
    async fn feed(&mut self, text: Utf8Bytes) -> Result<(), Stop> {
        self.metrics.frames_sent.fetch_add(1, Ordering::Relaxed);
        let r =
            tokio::time::timeout(self.send_timeout, self.socket.feed(Message::Text(text))).await;
        self.check(r)
    }

    async fn flush(&mut self) -> Result<(), Stop> {
        let r = tokio::time::timeout(self.send_timeout, self.socket.flush()).await;
        self.check(r)
    }

    fn check(
        &self,
        r: Result<Result<(), axum::Error>, tokio::time::error::Elapsed>,
    ) -> Result<(), Stop> {
        match r {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => {
                tracing::debug!(error = %e, "stream write failed");
                Err(Stop::Gone)
            }
            Err(_) => {
                self.metrics.slow_clients.fetch_add(1, Ordering::Relaxed);
                tracing::info!(tenant = %self.claims.tenant, "send timed out; disconnecting slow client");
                Err(Stop::Gone)
            }
        }
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        self.metrics
            .connections_open
            .fetch_sub(1, Ordering::Relaxed);
    }
}

fn internal(e: crate::hub::HubError) -> Stop {
    if e.is_unavailable() {
        tracing::warn!(error = %e, "store unavailable on stream");
        return Stop::Close(close::TRY_AGAIN, "store unavailable; try again");
    }
    tracing::error!(error = %e, "store failure on stream");
    Stop::Close(close::INTERNAL, "internal error")
}

/// The next live event, or never when not subscribed yet.
async fn recv_live(
    live: &mut Option<Receiver<Arc<LiveEvent>>>,
) -> Result<Arc<LiveEvent>, RecvError> {
    match live {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

/// When `claims` expire, on the monotonic clock (far ahead for an `exp` that does
/// not fit).
fn expires_at(claims: &Claims) -> Instant {
    let left = claims.exp.saturating_sub(crate::auth::now_secs());
    let far = Duration::from_secs(100 * 365 * 86_400);
    Instant::now()
        .checked_add(Duration::from_secs(left).min(far))
        .unwrap_or_else(|| Instant::now() + far)
}
