//! The Pulse protocol as a [`Dialect`]: `GET /v1/stream` (hello → subscribe →
//! subscribed → events), replay from the stored cursor, a REST snapshot when the
//! server cannot replay, and REST polling as its fallback ([`super::poll`]).
//!
//! Invariants:
//! - events are applied strictly in seq order; a duplicate is skipped and counted, a
//!   gap commits what came before it and ends the link with [`End::Resync`];
//! - while a snapshot downloads, live events are buffered and those above the
//!   snapshot's seq are applied after it, so none is lost or applied twice; the
//!   buffer holds at most [`MAX_BUFFERED_DURING_SNAPSHOT`] bytes of frames, past
//!   which the link is closed and resynced ([`End::Resync`]), never grown;
//! - an event of an unknown type advances the cursor (no false gap) and is counted
//!   as rejected; a `pulse.skipped` frame (an event addressed to another user,
//!   [`EventFrame::skipped`]) advances it and applies nothing, so a session that
//!   the gateway filters never sees a gap and never resyncs for it.

use std::future::Future;
use std::pin::Pin;

use pulse_protocol::frame::{ClientFrame, EventFrame, ServerFrame, Subscribed};
use tokio::time::Instant;
use tracing::{debug, info, warn};

use super::{ActionFuture, Dialect, DialectFuture, End, SessionCx};
use crate::actions::{ActionSet, Performed};
use crate::auth::{refused_message, with_token, Refusal, Secret, TokenTry};
use crate::rest::{RestClient, RestError, StreamedSnapshot};
use crate::store::{Action, AppliedEvent, Cursor};
use crate::transport::jsonws::Incoming;
use crate::transport::link::{drain, DeadLink};
use crate::transport::native::NativeConnection;
use crate::transport::ConnectError;

/// The most bytes of live event frames buffered while a snapshot downloads
/// (64 MiB); more and the connection starts over (a resync).
pub const MAX_BUFFERED_DURING_SNAPSHOT: usize = 64 << 20;

/// The native Pulse protocol (a Pulse gateway).
#[derive(Debug, Clone, Copy, Default)]
pub struct NativeDialect;

impl Dialect for NativeDialect {
    fn run_connection<'a>(&'a self, cx: &'a mut SessionCx) -> DialectFuture<'a> {
        Box::pin(connect_and_stream(cx))
    }

    fn run_fallback<'a>(&'a self, cx: &'a mut SessionCx, reason: String) -> DialectFuture<'a> {
        Box::pin(async move {
            super::poll::run_polling(cx, reason, &mut super::poll::NativePoller).await
        })
    }

    /// A Pulse gateway takes every action.
    fn actions(&self) -> ActionSet {
        ActionSet::ALL
    }

    /// A move shows in its new column, a termination as `terminating`; decisions
    /// change nothing until the gateway answers.
    fn optimistic(&self, action: &Action) -> pulse_protocol::domain::Object {
        let mut o = pulse_protocol::domain::Object::new();
        match action {
            Action::MoveTicket { state, .. } => {
                o.insert("state".into(), state.clone().into());
            }
            Action::TerminateAgent { .. } => {
                o.insert("status".into(), "terminating".into());
            }
            Action::Approve { .. }
            | Action::Reject { .. }
            | Action::Edit { .. }
            | Action::Respond { .. } => {}
        }
        o
    }

    /// `POST /v1/…` on the gateway (`RestClient::perform`, with `Idempotency-Key`);
    /// the answer is the entity.
    fn perform<'a>(
        &'a self,
        rest: &'a RestClient,
        token: Secret,
        action: &'a Action,
        key: Option<&'a str>,
    ) -> ActionFuture<'a> {
        Box::pin(async move {
            rest.perform(&token, action, key)
                .await
                .map(Performed::Entity)
        })
    }
}

/// Where one stream stands while a connection (or a poll) runs.
pub(super) struct StreamPos {
    pub(super) stream: String,
    pub(super) epoch: String,
    /// Last applied seq (mirror of the stored cursor).
    pub(super) seq: u64,
    /// Replaying/catching up until this seq is reached.
    pub(super) catch_up_until: u64,
}

type SnapshotFuture = Pin<Box<dyn Future<Output = Result<StreamedSnapshot, RestError>> + Send>>;

async fn connect_and_stream(cx: &mut SessionCx) -> End {
    let tokens = cx.tokens();
    let server = cx.config().server.clone();
    let opened = with_token(tokens.as_ref(), false, |token: Secret| {
        let server = server.clone();
        async move {
            let conn = NativeConnection::connect(&server, &token).await?;
            Ok::<_, ConnectError>((conn, token))
        }
    });
    let opened = tokio::select! {
        r = opened => r,
        end = cx.interrupted() => return end,
    };
    let (conn, token) = match opened {
        Ok(ok) => ok,
        Err(TokenTry::NoToken { error, .. }) => return super::actor::auth_end(error),
        Err(TokenTry::Refused(e)) => {
            return End::Unauthorized(refused_message(e.refusal().unwrap_or_default()));
        }
        Err(TokenTry::Failed(e @ ConnectError::Refused { .. })) => {
            return End::SocketRefused(e.to_string())
        }
        Err(TokenTry::Failed(e)) => return End::Lost(e.to_string()),
    };
    cx.connected();
    stream(cx, conn, token).await
}

async fn handshake_frame(
    cx: &mut SessionCx,
    conn: &mut NativeConnection,
) -> Result<ServerFrame, End> {
    let timeout = cx.config().handshake_timeout;
    loop {
        let msg = tokio::select! {
            r = tokio::time::timeout(timeout, conn.recv()) => r,
            end = cx.interrupted() => return Err(end),
        };
        match msg {
            Err(_) => {
                return Err(End::Lost(
                    "the server did not answer the handshake in time".into(),
                ))
            }
            Ok(Incoming::Closed { reason, .. }) => return Err(End::Lost(reason)),
            Ok(Incoming::Binary(_)) | Ok(Incoming::Pong) => continue,
            Ok(Incoming::Text(t)) => match ServerFrame::decode(&t) {
                Ok(f) => return Ok(f),
                Err(e) => {
                    warn!(error = %e, "undecodable frame during handshake skipped");
                    cx.count_decode_error();
                }
            },
        }
    }
}

/// Run one open connection until it ends.
async fn stream(cx: &mut SessionCx, mut conn: NativeConnection, token: Secret) -> End {
    // 1. hello
    let hello = match handshake_frame(cx, &mut conn).await {
        Ok(ServerFrame::Hello(h)) => h,
        Ok(other) => return End::Lost(format!("expected hello, got {other:?}")),
        Err(end) => return end,
    };
    let silence = std::time::Duration::from_millis(
        hello.ping_interval_ms.saturating_add(hello.ping_timeout_ms),
    )
    .max(std::time::Duration::from_millis(500));
    let stream = cx.config().stream.clone().unwrap_or(hello.tenant.clone());
    let cursor = match cx.store().cursor(&stream) {
        Ok(c) => c,
        Err(e) => return End::Cache(e),
    };
    cx.show_cursor(&stream, cursor.clone());
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
        match handshake_frame(cx, &mut conn).await {
            Ok(ServerFrame::Subscribed(s)) => break s,
            Ok(ServerFrame::Ping { ts }) => {
                let _ = conn.send(&ClientFrame::Pong { ts }).await;
            }
            Ok(ServerFrame::Error { code, message }) if code == "forbidden" => {
                return End::Unauthorized(format!("the server refused the subscription: {message}"))
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
    let mut pos = StreamPos {
        stream: stream.clone(),
        epoch: sub.epoch.clone(),
        seq: cursor.as_ref().map(|c| c.seq).unwrap_or(0),
        catch_up_until: sub.head,
    };
    // 3. snapshot if the server cannot replay.
    let mut snapshot: Option<SnapshotFuture> = None;
    let mut buffered: Vec<EventFrame> = Vec::new();
    let mut buffered_bytes = 0usize;
    if sub.recovered {
        debug!(stream = %stream, since = pos.seq, head = sub.head, "replaying");
        if pos.seq >= sub.head {
            cx.went_live();
        }
    } else {
        info!(stream = %stream, reason = ?sub.reason, "server cannot replay; loading a snapshot");
        let rest = cx.rest().clone();
        let token = token.clone();
        snapshot = Some(Box::pin(async move { rest.snapshot(&token).await }));
    }

    // 4. stream
    let mut dead = DeadLink::new(silence, None, Instant::now());
    let max_batch = cx.config().max_batch;
    // The gateway closes a stream when its token expires (4001) unless an `auth`
    // frame renews it: shortly before, get a fresh token and send it.
    let mut token = token;
    let mut renew_at = renew_deadline(&token);
    loop {
        let first = tokio::select! {
            biased;
            // A Retry while the link is up changes nothing; a wake or a network
            // change ends it (`Nudge::ends_a_live_link`).
            end = cx.interrupted_live() => {
                conn.close().await;
                return end;
            }
            snap = async { snapshot.as_mut().expect("guarded").await }, if snapshot.is_some() => {
                snapshot = None;
                match snap {
                    Ok(snap) => {
                        if let Err(end) = load_snapshot(cx, &mut pos, snap, std::mem::take(&mut buffered)) {
                            return end;
                        }
                        cx.went_live();
                    }
                    Err(RestError::Unauthorized { message, .. }) => return End::Unauthorized(message),
                    Err(e) => return End::Lost(format!("snapshot failed: {e}")),
                }
                continue;
            }
            m = conn.recv() => m,
            _ = tokio::time::sleep_until(dead.wake_at()) => {
                return End::Lost(dead.dead_reason("frame"));
            }
            _ = async { tokio::time::sleep_until(renew_at.expect("guarded")).await }, if renew_at.is_some() => {
                renew_at = None;
                match cx.token(false).await {
                    Ok(fresh) if fresh != token => {
                        let frame = ClientFrame::Auth { token: fresh.expose().to_owned() };
                        if let Err(e) = conn.send(&frame).await {
                            return End::Lost(e);
                        }
                        debug!("stream re-authenticated with a fresh token");
                        token = fresh;
                        renew_at = renew_deadline(&token);
                    }
                    // The same token: still fresh (ask again later), or a static
                    // one about to expire, which the server closes at expiry and
                    // the reconnect asks again for.
                    Ok(same) => {
                        renew_at = renew_deadline(&same).filter(|at| *at > Instant::now());
                    }
                    Err(end) => debug!(?end, "no fresh token for the open stream"),
                }
                continue;
            }
        };
        dead.received(Instant::now());
        // Gather what is already buffered into one batch.
        let mut batch: Vec<EventFrame> = Vec::new();
        let mut batch_bytes = 0usize;
        let mut ended: Option<End> = None;
        for msg in drain(first, max_batch, || conn.try_recv()) {
            match msg {
                Incoming::Closed { reason, .. } => {
                    ended = Some(End::Lost(reason));
                    break;
                }
                Incoming::Pong => {}
                Incoming::Binary(n) => {
                    warn!(bytes = n, "binary frame ignored");
                    cx.count_decode_error();
                }
                Incoming::Text(text) => match ServerFrame::decode(&text) {
                    Ok(ServerFrame::Event(e)) => {
                        if e.stream != pos.stream {
                            warn!(got = %e.stream, "event for another stream ignored");
                            cx.count_decode_error();
                        } else {
                            batch_bytes = batch_bytes.saturating_add(text.len());
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
                        cx.count_decode_error();
                    }
                },
            }
        }
        if !batch.is_empty() {
            if snapshot.is_some() {
                buffered_bytes = buffered_bytes.saturating_add(batch_bytes);
                if buffered_bytes > MAX_BUFFERED_DURING_SNAPSHOT {
                    conn.close().await;
                    return End::Resync(format!(
                        "live events buffered while the snapshot loads passed \
                         {MAX_BUFFERED_DURING_SNAPSHOT} bytes; starting over"
                    ));
                }
                buffered.extend(batch);
            } else if let Err(end) = apply_frames(cx, &mut pos, batch) {
                return end;
            } else if pos.seq >= pos.catch_up_until && !cx.is_live() {
                cx.went_live();
            }
        }
        if let Some(end) = ended {
            return end;
        }
    }
}

/// Turn frames into applied events, checking order; commit in one transaction.
pub(super) fn apply_frames(
    cx: &mut SessionCx,
    pos: &mut StreamPos,
    frames: Vec<EventFrame>,
) -> Result<(), End> {
    let mut events = Vec::with_capacity(frames.len());
    let mut rejected = 0u64;
    let mut duplicates = 0u64;
    let mut gap: Option<(u64, u64)> = None;
    let mut next = pos.seq.saturating_add(1);
    for frame in frames {
        if frame.seq < next {
            duplicates += 1;
            continue;
        }
        if frame.seq > next {
            gap = Some((next, frame.seq));
            break;
        }
        // An event addressed to another user: its seq is ours to pass, nothing to apply.
        let changes = match pulse_protocol::changes_for(&frame.event_type, &frame.data, frame.ts) {
            _ if frame.is_skipped() => Vec::new(),
            Ok(c) => c,
            Err(e) => {
                warn!(seq = frame.seq, error = %e, "event not applied");
                rejected += 1;
                Vec::new()
            }
        };
        next = next.saturating_add(1);
        events.push(AppliedEvent { frame, changes });
    }
    if let Some(last) = events.last().map(|e| e.frame.seq) {
        let catching_up = pos.seq < pos.catch_up_until;
        cx.commit(&pos.stream, &pos.epoch, events, catching_up)?;
        pos.seq = last;
    }
    cx.count(|c| {
        c.rejected_events += rejected;
        c.duplicates += duplicates;
    });
    if let Some((want, got)) = gap {
        cx.count(|c| c.gaps += 1);
        return Err(End::Resync(format!(
            "gap in the stream: expected seq {want}, got {got}"
        )));
    }
    Ok(())
}

/// Swap `snap` (decoded as it streamed: its entities are the cache's rows, never
/// a parsed copy) into the store in one transaction, then apply the live events
/// buffered meanwhile that come after it.
pub(super) fn load_snapshot(
    cx: &mut SessionCx,
    pos: &mut StreamPos,
    snap: StreamedSnapshot,
    buffered: Vec<EventFrame>,
) -> Result<(), End> {
    if snap.stream != pos.stream {
        return Err(End::Lost(format!(
            "snapshot is of stream `{}`, not `{}`",
            snap.stream, pos.stream
        )));
    }
    if snap.epoch != pos.epoch {
        return Err(End::Resync(
            "the stream's epoch changed while loading the snapshot".into(),
        ));
    }
    let cursor = Cursor {
        epoch: snap.epoch.clone(),
        seq: snap.seq,
    };
    cx.replace_all(&pos.stream, cursor, &snap.entities)?;
    drop(snap.entities);
    pos.seq = snap.seq;
    pos.catch_up_until = pos.catch_up_until.max(snap.seq);
    let rest: Vec<EventFrame> = buffered.into_iter().filter(|e| e.seq > snap.seq).collect();
    apply_frames(cx, pos, rest)
}

/// Seconds before a stream token's `exp` at which a fresh one is sent: more than
/// the token providers' own slack (30 s), so `token(false)` refreshes by then.
const RENEW_BEFORE_SECS: u64 = 25;

/// When to renew the stream's `token` (`None`: it is not a JWT with an `exp`).
fn renew_deadline(token: &Secret) -> Option<Instant> {
    let exp = token.jwt_expiry()?;
    let now = (crate::now_ms().max(0) / 1000) as u64;
    let left = exp.saturating_sub(now).saturating_sub(RENEW_BEFORE_SECS);
    // At most a day ahead, so the deadline never overflows the clock.
    Instant::now().checked_add(std::time::Duration::from_secs(left.min(86_400)))
}
