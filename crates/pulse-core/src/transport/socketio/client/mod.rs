//! The client handle: [`SocketIoClient`] (read side, accessors) and
//! [`SioSender`] (the cloneable send side), and what they share with the task
//! that owns the link.
//!
//! - `connect`: opens the Engine.IO session, spawns the task and waits for the
//!   namespace's answer ([`SocketIoClient::connect`]).
//! - `actor`: the task that owns the link (heartbeats, decoding, acks, the
//!   upgrade from long-polling to WebSocket).
//!
//! Invariants: the handle and the task talk only through channels (commands in,
//! events out) and the atomic counters of `Shared`; the event queue is bounded
//! in bytes ([`super::MAX_QUEUED_BYTES`]): past it the task stops reading the
//! link (heartbeats included) until the reader has taken it down to half, so a
//! slow reader slows the server instead of losing events; once `recv` has
//! answered a disconnection it answers the same one forever.

mod actor;
mod connect;

use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use tokio::sync::{mpsc, oneshot};

use super::{
    AckId, DecodeError, DisconnectReason, RecoveryState, SioIncoming, SioStats, SocketIoError,
    TransportKind,
};

type AckReply = oneshot::Sender<Vec<Value>>;

/// What the task queues for the reader: a message and the bytes it counts
/// against the queue's bound ([`super::event_size`], computed once by the task).
type Queued = (SioIncoming, usize);

enum Command {
    /// Emit `[name, args…]`, with an ack when `reply` is set.
    Emit {
        data: Value,
        reply: Option<AckReply>,
    },
    /// Answer a server event.
    Ack { id: u64, args: Vec<Value> },
    /// Leave the namespace and close.
    Close,
}

#[derive(Default)]
struct Shared {
    events: AtomicU64,
    /// Bytes of events queued and not yet read ([`super::event_size`]).
    queued_bytes: std::sync::atomic::AtomicUsize,
    /// Woken when the reader takes the queue from above half the bound to below.
    drained: tokio::sync::Notify,
    /// Times the task stopped reading the link (queue full).
    paused: AtomicU64,
    pings: AtomicU64,
    decode_errors: AtomicU64,
    ignored: AtomicU64,
    transport: AtomicU8,
    last_decode_error: Mutex<Option<DecodeError>>,
}

impl Shared {
    fn set_transport(&self, kind: TransportKind) {
        self.transport.store(
            match kind {
                TransportKind::WebSocket => 0,
                TransportKind::Polling => 1,
            },
            Ordering::Relaxed,
        );
    }

    fn transport(&self) -> TransportKind {
        match self.transport.load(Ordering::Relaxed) {
            0 => TransportKind::WebSocket,
            _ => TransportKind::Polling,
        }
    }
}

/// A cloneable handle to send on a connection (emit, emit with ack, ack,
/// close), for use from other tasks while one task reads with
/// [`SocketIoClient::recv`].
#[derive(Clone)]
pub struct SioSender {
    cmds: mpsc::UnboundedSender<Command>,
    ack_timeout: Duration,
}

impl SioSender {
    /// Emit `name` with `args`. Returns once queued for the link (there is no
    /// delivery guarantee without an ack). Binary values (see
    /// [`super::binary_value`]) go as attachments.
    pub fn emit(&self, name: &str, args: Vec<Value>) -> Result<(), SocketIoError> {
        self.cmds
            .send(Command::Emit {
                data: event_data(name, args),
                reply: None,
            })
            .map_err(|_| SocketIoError::Disconnected)
    }

    /// Emit `name` with `args` and wait for the server's acknowledgement (the
    /// arguments it passed to its callback), at most the ack timeout.
    pub async fn emit_with_ack(
        &self,
        name: &str,
        args: Vec<Value>,
    ) -> Result<Vec<Value>, SocketIoError> {
        self.emit_with_ack_timeout(name, args, self.ack_timeout)
            .await
    }

    /// [`Self::emit_with_ack`] with its own timeout.
    pub async fn emit_with_ack_timeout(
        &self,
        name: &str,
        args: Vec<Value>,
        timeout: Duration,
    ) -> Result<Vec<Value>, SocketIoError> {
        let (tx, rx) = oneshot::channel();
        self.cmds
            .send(Command::Emit {
                data: event_data(name, args),
                reply: Some(tx),
            })
            .map_err(|_| SocketIoError::Disconnected)?;
        match tokio::time::timeout(timeout, rx).await {
            Err(_) => Err(SocketIoError::AckTimeout(timeout)),
            Ok(Err(_)) => Err(SocketIoError::Disconnected),
            Ok(Ok(args)) => Ok(args),
        }
    }

    /// Answer a server event that asked for an acknowledgement.
    pub fn ack(&self, id: AckId, args: Vec<Value>) -> Result<(), SocketIoError> {
        self.cmds
            .send(Command::Ack { id: id.0, args })
            .map_err(|_| SocketIoError::Disconnected)
    }

    /// Leave the namespace and close the link. Idempotent.
    pub fn close(&self) {
        let _ = self.cmds.send(Command::Close);
    }
}

fn event_data(name: &str, args: Vec<Value>) -> Value {
    let mut v = Vec::with_capacity(args.len() + 1);
    v.push(Value::String(name.to_owned()));
    v.extend(args);
    Value::Array(v)
}

/// A connection to one namespace of a Socket.IO server. See the module docs.
pub struct SocketIoClient {
    sender: SioSender,
    events: mpsc::UnboundedReceiver<Queued>,
    shared: Arc<Shared>,
    sid: String,
    recovery: Option<RecoveryState>,
    recovered: bool,
    namespace: String,
    finished: Option<DisconnectReason>,
}

/// What the task reports once the namespace answered.
struct Connected {
    sid: String,
    pid: Option<String>,
}

impl SocketIoClient {
    /// The next event, or the (final, repeated) disconnection. Cancel-safe:
    /// usable in `tokio::select!`.
    pub async fn recv(&mut self) -> SioIncoming {
        if let Some(reason) = &self.finished {
            return SioIncoming::Disconnected {
                reason: reason.clone(),
            };
        }
        let next = self.events.recv().await;
        self.take(next)
    }

    /// The next event if one is already queued, without waiting (to drain a
    /// burst into one batch).
    pub fn try_recv(&mut self) -> Option<SioIncoming> {
        if let Some(reason) = &self.finished {
            return Some(SioIncoming::Disconnected {
                reason: reason.clone(),
            });
        }
        match self.events.try_recv() {
            Ok(i) => Some(self.take(Some(i))),
            Err(mpsc::error::TryRecvError::Empty) => None,
            Err(mpsc::error::TryRecvError::Disconnected) => Some(self.take(None)),
        }
    }

    fn take(&mut self, next: Option<Queued>) -> SioIncoming {
        match next {
            Some((SioIncoming::Event(ev), size)) => {
                let before = self.shared.queued_bytes.fetch_sub(size, Ordering::Relaxed);
                let low = super::MAX_QUEUED_BYTES / 2;
                if before > low && before - size <= low {
                    self.shared.drained.notify_one();
                }
                if let (Some(state), Some(offset)) = (self.recovery.as_mut(), ev.offset.as_ref()) {
                    state.offset = Some(offset.clone());
                }
                SioIncoming::Event(ev)
            }
            Some((SioIncoming::Disconnected { reason }, _)) => {
                self.finished = Some(reason.clone());
                SioIncoming::Disconnected { reason }
            }
            None => {
                let reason = DisconnectReason::TransportError("the connection task ended".into());
                self.finished = Some(reason.clone());
                SioIncoming::Disconnected { reason }
            }
        }
    }

    /// A handle to send from other tasks.
    pub fn sender(&self) -> SioSender {
        self.sender.clone()
    }

    /// See [`SioSender::emit`].
    pub fn emit(&self, name: &str, args: Vec<Value>) -> Result<(), SocketIoError> {
        self.sender.emit(name, args)
    }

    /// See [`SioSender::emit_with_ack`].
    pub async fn emit_with_ack(
        &self,
        name: &str,
        args: Vec<Value>,
    ) -> Result<Vec<Value>, SocketIoError> {
        self.sender.emit_with_ack(name, args).await
    }

    /// See [`SioSender::ack`].
    pub fn ack(&self, id: AckId, args: Vec<Value>) -> Result<(), SocketIoError> {
        self.sender.ack(id, args)
    }

    /// Leave the namespace and close the link; `recv` then answers
    /// [`DisconnectReason::ClientClosed`] after any events already queued.
    pub fn close(&self) {
        self.sender.close();
    }

    /// What to pass as [`SocketIoOptions::recovery`] to resume: the server's
    /// `pid` and the offset of the last event returned by `recv`. `None` when
    /// the server has no connection-state recovery.
    pub fn recovery_state(&self) -> Option<RecoveryState> {
        self.recovery.clone()
    }

    /// Whether the server restored the previous session (same `pid`): the
    /// events missed while away are delivered first, and rooms were kept.
    pub fn recovered(&self) -> bool {
        self.recovered
    }

    /// The Socket.IO id of this connection (`socket.id` on the server).
    pub fn socket_id(&self) -> &str {
        &self.sid
    }

    /// The namespace this client is connected to.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// The transport carrying the connection now (long-polling may be upgraded
    /// to a WebSocket after connecting).
    pub fn transport_in_use(&self) -> TransportKind {
        self.shared.transport()
    }

    /// Counters of this connection.
    pub fn stats(&self) -> SioStats {
        SioStats {
            events: self.shared.events.load(Ordering::Relaxed),
            queued_bytes: self.shared.queued_bytes.load(Ordering::Relaxed),
            paused: self.shared.paused.load(Ordering::Relaxed),
            pings: self.shared.pings.load(Ordering::Relaxed),
            decode_errors: self.shared.decode_errors.load(Ordering::Relaxed),
            ignored: self.shared.ignored.load(Ordering::Relaxed),
        }
    }

    /// The last malformed packet's error, if any.
    pub fn last_decode_error(&self) -> Option<DecodeError> {
        self.shared
            .last_decode_error
            .lock()
            .ok()
            .and_then(|g| g.clone())
    }
}

impl std::fmt::Debug for SocketIoClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SocketIoClient")
            .field("namespace", &self.namespace)
            .field("transport", &self.transport_in_use())
            .field("recovered", &self.recovered)
            .field("finished", &self.finished)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handles_cross_tasks() {
        fn send_sync<T: Send + Sync>() {}
        fn send<T: Send>() {}
        send::<SocketIoClient>();
        send_sync::<SioSender>();
    }
}
