//! The client handle and the task that owns the link.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Map, Value};
use tokio::sync::{mpsc, oneshot};
use tokio::time::{Instant, Sleep};

use super::engineio::{EioPacket, Handshake};
use super::packet::{self, Decoder, Packet, PacketKind};
use super::transport::{probe_websocket, Endpoint, Link, LinkEvent, PollingLink, WsLink};
use super::{
    AckId, DecodeError, DisconnectReason, RecoveryState, SioEvent, SioIncoming, SioStats,
    SocketIoError, SocketIoOptions, TransportKind,
};

type AckReply = oneshot::Sender<Vec<Value>>;

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
    events: mpsc::UnboundedReceiver<SioIncoming>,
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
    /// Open the Engine.IO session (trying `opts.transports` in order: a refused
    /// or failed WebSocket falls back to long-polling; an auth refusal does not)
    /// and connect the namespace with `opts.auth` (plus `pid`/`offset` from
    /// `opts.recovery`). Returns when the server accepted the namespace.
    pub async fn connect(opts: SocketIoOptions) -> Result<SocketIoClient, SocketIoError> {
        let ep = Endpoint::new(&opts)?;
        let namespace = normalize_namespace(&opts.namespace);
        let connect_data = connect_payload(opts.auth.as_ref(), opts.recovery.as_ref())?;
        let sent_pid = opts.recovery.as_ref().map(|r| r.pid.clone());
        let mut transports: Vec<TransportKind> = Vec::new();
        for t in &opts.transports {
            if !transports.contains(t) {
                transports.push(*t);
            }
        }
        if transports.is_empty() {
            return Err(SocketIoError::BadOptions("no transport allowed".into()));
        }
        let mut last_err = None;
        let mut opened = None;
        for (i, kind) in transports.iter().enumerate() {
            let r = match kind {
                TransportKind::WebSocket => WsLink::handshake(&ep)
                    .await
                    .map(|(l, h)| (Link::Ws(Box::new(l)), h)),
                TransportKind::Polling => PollingLink::handshake(&ep)
                    .await
                    .map(|(l, h)| (Link::Polling(l), h)),
            };
            match r {
                Ok(ok) => {
                    opened = Some((ok, transports[i + 1..].contains(&TransportKind::WebSocket)));
                    break;
                }
                Err(e @ (SocketIoError::Unauthorized { .. } | SocketIoError::BadOptions(_))) => {
                    return Err(e)
                }
                Err(e) => {
                    tracing::debug!(transport = %kind, error = %e, "socket.io transport failed, trying the next");
                    last_err = Some(e);
                }
            }
        }
        let Some(((link, hs), may_upgrade)) = opened else {
            return Err(last_err.unwrap_or(SocketIoError::Network("no transport".into())));
        };
        let may_upgrade = may_upgrade
            && matches!(link, Link::Polling(_))
            && hs.upgrades.iter().any(|u| u == "websocket");

        let shared = Arc::new(Shared::default());
        shared.set_transport(link.kind());
        let (cmds_tx, cmds_rx) = mpsc::unbounded_channel();
        let (events_tx, events_rx) = mpsc::unbounded_channel();
        let (ready_tx, ready_rx) = oneshot::channel();
        let actor = Actor {
            dead: Box::pin(tokio::time::sleep(hs.dead_after())),
            hs,
            link: Some(link),
            ep: may_upgrade.then_some(ep),
            nsp: namespace.clone(),
            decoder: Decoder::new(),
            events: events_tx,
            shared: shared.clone(),
            acks: HashMap::new(),
            next_ack: 0,
            phase: Phase::Connecting {
                ready: Some(ready_tx),
                buffered: Vec::new(),
            },
            sent_pid: sent_pid.clone(),
            recovery_on: false,
            upgrade: None,
            upgrading: None,
        };
        tokio::spawn(actor.run(cmds_rx, connect_data));

        let connected = match tokio::time::timeout(opts.connect_timeout, ready_rx).await {
            Err(_) => {
                return Err(SocketIoError::Network(
                    "the namespace did not answer in time".into(),
                ))
            }
            Ok(Err(_)) => {
                return Err(SocketIoError::Network(
                    "the connection closed during the handshake".into(),
                ))
            }
            Ok(Ok(r)) => r?,
        };
        let recovered = matches!((&sent_pid, &connected.pid), (Some(a), Some(b)) if a == b);
        let recovery = connected.pid.map(|pid| RecoveryState {
            offset: if recovered {
                opts.recovery.and_then(|r| r.offset)
            } else {
                None
            },
            pid,
        });
        tracing::debug!(
            namespace = %namespace,
            transport = %shared.transport(),
            recovered,
            "socket.io namespace connected"
        );
        Ok(SocketIoClient {
            sender: SioSender {
                cmds: cmds_tx,
                ack_timeout: opts.ack_timeout,
            },
            events: events_rx,
            shared,
            sid: connected.sid,
            recovery,
            recovered,
            namespace,
            finished: None,
        })
    }

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

    fn take(&mut self, next: Option<SioIncoming>) -> SioIncoming {
        match next {
            Some(SioIncoming::Event(ev)) => {
                if let (Some(state), Some(offset)) = (self.recovery.as_mut(), ev.offset.as_ref()) {
                    state.offset = Some(offset.clone());
                }
                SioIncoming::Event(ev)
            }
            Some(SioIncoming::Disconnected { reason }) => {
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

fn normalize_namespace(ns: &str) -> String {
    let ns = ns.trim();
    if ns.is_empty() || ns == "/" {
        "/".into()
    } else if ns.starts_with('/') {
        ns.into()
    } else {
        format!("/{ns}")
    }
}

/// The CONNECT payload: `auth`, with `pid`/`offset` merged in when resuming.
fn connect_payload(
    auth: Option<&Value>,
    recovery: Option<&RecoveryState>,
) -> Result<Option<Value>, SocketIoError> {
    let Some(rec) = recovery else {
        return match auth {
            None | Some(Value::Null) => Ok(None),
            Some(v @ Value::Object(_)) => Ok(Some(v.clone())),
            Some(_) => Err(SocketIoError::BadOptions(
                "`auth` must be a JSON object".into(),
            )),
        };
    };
    let mut m = match auth {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(m)) => m.clone(),
        Some(_) => {
            return Err(SocketIoError::BadOptions(
                "`auth` must be a JSON object".into(),
            ))
        }
    };
    m.insert("pid".into(), Value::String(rec.pid.clone()));
    if let Some(off) = &rec.offset {
        m.insert("offset".into(), Value::String(off.clone()));
    }
    Ok(Some(Value::Object(m)))
}

enum Phase {
    /// CONNECT sent, waiting for the answer. Events that come first (the
    /// missed events of a recovered session do) wait in `buffered`.
    Connecting {
        ready: Option<oneshot::Sender<Result<Connected, SocketIoError>>>,
        buffered: Vec<Packet>,
    },
    Connected,
}

/// How the task ends.
enum Stop {
    /// Report this to `recv`.
    Disconnected(DisconnectReason),
    /// Nobody listens any more (handle dropped, or connect failed): just close.
    Quiet,
}

struct Actor {
    link: Option<Link>,
    hs: Handshake,
    /// Set while an upgrade to WebSocket may still be tried.
    ep: Option<Endpoint>,
    nsp: String,
    decoder: Decoder,
    events: mpsc::UnboundedSender<SioIncoming>,
    shared: Arc<Shared>,
    acks: HashMap<u64, AckReply>,
    next_ack: u64,
    phase: Phase,
    sent_pid: Option<String>,
    /// The server appends offsets to events (it gave a `pid`).
    recovery_on: bool,
    dead: std::pin::Pin<Box<Sleep>>,
    /// A WebSocket probe in progress.
    upgrade: Option<oneshot::Receiver<Result<WsLink, SocketIoError>>>,
    /// A probed WebSocket waiting for polling to pause.
    upgrading: Option<WsLink>,
}

impl Actor {
    async fn run(
        mut self,
        mut cmds: mpsc::UnboundedReceiver<Command>,
        connect_data: Option<Value>,
    ) {
        let connect = packet::encode(PacketKind::Connect, &self.nsp, None, connect_data.as_ref());
        let stop = match self.send_encoded(connect).await {
            Err(stop) => stop,
            Ok(()) => self.serve(&mut cmds).await,
        };
        self.finish(stop).await;
    }

    async fn serve(&mut self, cmds: &mut mpsc::UnboundedReceiver<Command>) -> Stop {
        loop {
            let Some(link) = self.link.as_mut() else {
                return Stop::Disconnected(DisconnectReason::TransportError("no link".into()));
            };
            let upgrade = &mut self.upgrade;
            tokio::select! {
                ev = link.recv() => {
                    if let Err(stop) = self.on_link(ev).await {
                        return stop;
                    }
                }
                cmd = cmds.recv() => {
                    let r = match cmd {
                        None => Err(Stop::Quiet),
                        Some(Command::Close) => {
                            let bye = packet::encode(PacketKind::Disconnect, &self.nsp, None, None);
                            let _ = self.send_encoded(bye).await;
                            Err(Stop::Disconnected(DisconnectReason::ClientClosed))
                        }
                        Some(cmd) => self.on_command(cmd).await,
                    };
                    if let Err(stop) = r {
                        return stop;
                    }
                }
                () = &mut self.dead => {
                    return Stop::Disconnected(DisconnectReason::PingTimeout);
                }
                () = self.events.closed() => return Stop::Quiet,
                probe = async { match upgrade.as_mut() { Some(rx) => rx.await, None => std::future::pending().await } } => {
                    self.upgrade = None;
                    match probe {
                        Ok(Ok(ws)) => {
                            if let Some(Link::Polling(p)) = &self.link {
                                p.pause();
                                self.upgrading = Some(ws);
                            }
                        }
                        Ok(Err(e)) => tracing::debug!(error = %e, "socket.io upgrade to WebSocket failed; staying on long-polling"),
                        Err(_) => {}
                    }
                }
            }
        }
    }

    async fn on_command(&mut self, cmd: Command) -> Result<(), Stop> {
        match cmd {
            Command::Emit { data, reply } => {
                let id = reply.map(|tx| {
                    // Drop answers nobody waits for any more (timed out).
                    self.acks.retain(|_, tx| !tx.is_closed());
                    let id = self.next_ack;
                    self.next_ack = self.next_ack.wrapping_add(1);
                    self.acks.insert(id, tx);
                    id
                });
                let enc = packet::encode(PacketKind::Event, &self.nsp, id, Some(&data));
                self.send_encoded(enc).await
            }
            Command::Ack { id, args } => {
                let enc = packet::encode(
                    PacketKind::Ack,
                    &self.nsp,
                    Some(id),
                    Some(&Value::Array(args)),
                );
                self.send_encoded(enc).await
            }
            Command::Close => Ok(()),
        }
    }

    async fn send_encoded(&mut self, enc: packet::Encoded) -> Result<(), Stop> {
        let mut packets = Vec::with_capacity(1 + enc.attachments.len());
        packets.push(EioPacket::Message(enc.text));
        packets.extend(enc.attachments.into_iter().map(EioPacket::Binary));
        self.send(packets).await
    }

    async fn send(&mut self, packets: Vec<EioPacket>) -> Result<(), Stop> {
        let Some(link) = self.link.as_mut() else {
            return Err(Stop::Disconnected(DisconnectReason::TransportError(
                "no link".into(),
            )));
        };
        link.send(packets)
            .await
            .map_err(|why| Stop::Disconnected(DisconnectReason::TransportError(why)))
    }

    fn decode_error(&self, e: DecodeError) {
        self.shared.decode_errors.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(error = %e, "socket.io: malformed packet skipped");
        if let Ok(mut g) = self.shared.last_decode_error.lock() {
            *g = Some(e);
        }
    }

    async fn on_link(&mut self, ev: LinkEvent) -> Result<(), Stop> {
        let p = match ev {
            LinkEvent::Closed(why) => {
                return Err(Stop::Disconnected(DisconnectReason::TransportError(why)));
            }
            LinkEvent::Paused => return self.finish_upgrade().await,
            LinkEvent::Packet(Err(e)) => {
                self.decode_error(e);
                return Ok(());
            }
            LinkEvent::Packet(Ok(p)) => p,
        };
        match p {
            EioPacket::Ping(data) => {
                self.shared.pings.fetch_add(1, Ordering::Relaxed);
                let deadline = Instant::now() + self.hs.dead_after();
                self.dead.as_mut().reset(deadline);
                self.send(vec![EioPacket::Pong(data)]).await?;
            }
            EioPacket::Close => return Err(Stop::Disconnected(DisconnectReason::ServerClose)),
            EioPacket::Message(text) => {
                if let Some(e) = self.decoder.abandon() {
                    self.decode_error(e);
                }
                match self.decoder.feed_text(&text) {
                    Ok(Some(p)) => self.on_packet(p)?,
                    Ok(None) => {}
                    Err(e) => self.decode_error(e),
                }
            }
            EioPacket::Binary(bytes) => match self.decoder.feed_binary(bytes) {
                Ok(Some(p)) => self.on_packet(p)?,
                Ok(None) => {}
                Err(e) => self.decode_error(e),
            },
            EioPacket::Noop | EioPacket::Pong(_) => {}
            EioPacket::Open(_) => self.decode_error(DecodeError::Unexpected("open")),
            EioPacket::Upgrade => self.decode_error(DecodeError::Unexpected("upgrade")),
        }
        Ok(())
    }

    fn ignored(&self) {
        self.shared.ignored.fetch_add(1, Ordering::Relaxed);
    }

    fn on_packet(&mut self, p: Packet) -> Result<(), Stop> {
        if p.nsp != self.nsp {
            self.ignored();
            return Ok(());
        }
        match p.kind {
            PacketKind::Connect => {
                let Phase::Connecting { ready, buffered } = &mut self.phase else {
                    self.ignored();
                    return Ok(());
                };
                let data = p.data.unwrap_or(Value::Null);
                let Some(sid) = data.get("sid").and_then(Value::as_str) else {
                    if let Some(tx) = ready.take() {
                        let _ = tx.send(Err(SocketIoError::Protocol(
                            "CONNECT answer without a sid (not a Socket.IO v5 server?)".into(),
                        )));
                    }
                    return Err(Stop::Quiet);
                };
                let pid = data.get("pid").and_then(Value::as_str).map(str::to_owned);
                self.recovery_on = pid.is_some();
                let buffered = std::mem::take(buffered);
                if let Some(tx) = ready.take() {
                    if tx
                        .send(Ok(Connected {
                            sid: sid.to_owned(),
                            pid: pid.clone(),
                        }))
                        .is_err()
                    {
                        return Err(Stop::Quiet);
                    }
                }
                self.phase = Phase::Connected;
                // Missed events are only valid for a session that was restored.
                let restored = self.sent_pid.is_some() && self.sent_pid == pid;
                for ev in buffered {
                    if restored {
                        self.deliver(ev);
                    } else {
                        self.ignored();
                    }
                }
                self.maybe_start_upgrade();
            }
            PacketKind::ConnectError => {
                let err = SocketIoError::from_connect_error(p.data.as_ref());
                return match &mut self.phase {
                    Phase::Connecting { ready, .. } => {
                        if let Some(tx) = ready.take() {
                            let _ = tx.send(Err(err));
                        }
                        Err(Stop::Quiet)
                    }
                    Phase::Connected => Err(Stop::Disconnected(DisconnectReason::ConnectError(
                        err.to_string(),
                    ))),
                };
            }
            PacketKind::Disconnect => {
                if let Phase::Connecting { ready, .. } = &mut self.phase {
                    if let Some(tx) = ready.take() {
                        let _ = tx.send(Err(SocketIoError::ConnectError {
                            message: "the server disconnected the namespace during the handshake"
                                .into(),
                            data: None,
                        }));
                    }
                    return Err(Stop::Quiet);
                }
                return Err(Stop::Disconnected(DisconnectReason::ServerDisconnect));
            }
            PacketKind::Event | PacketKind::BinaryEvent => match &mut self.phase {
                Phase::Connecting { buffered, .. } => buffered.push(p),
                Phase::Connected => self.deliver(p),
            },
            PacketKind::Ack | PacketKind::BinaryAck => {
                let tx = p.id.and_then(|id| self.acks.remove(&id));
                match (tx, p.data) {
                    (Some(tx), Some(Value::Array(args))) => {
                        let _ = tx.send(args);
                    }
                    _ => self.ignored(),
                }
            }
        }
        Ok(())
    }

    fn deliver(&mut self, p: Packet) {
        let Some(Value::Array(mut items)) = p.data else {
            self.decode_error(DecodeError::InvalidPayload("EVENT"));
            return;
        };
        if items.is_empty() {
            self.decode_error(DecodeError::InvalidPayload("EVENT"));
            return;
        }
        let name = match items.remove(0) {
            Value::String(s) => s,
            Value::Number(n) => n.to_string(),
            _ => {
                self.decode_error(DecodeError::InvalidPayload("EVENT"));
                return;
            }
        };
        // With recovery on, the server appends the offset to every event that
        // asks no ack (socket.io-adapter's SessionAwareAdapter).
        let offset =
            if self.recovery_on && p.id.is_none() && matches!(items.last(), Some(Value::String(_)))
            {
                match items.pop() {
                    Some(Value::String(s)) => Some(s),
                    _ => None,
                }
            } else {
                None
            };
        self.shared.events.fetch_add(1, Ordering::Relaxed);
        let _ = self.events.send(SioIncoming::Event(SioEvent {
            name,
            args: items,
            ack: p.id.map(AckId),
            offset,
        }));
    }

    fn maybe_start_upgrade(&mut self) {
        let Some(ep) = self.ep.take() else { return };
        let sid = self.hs.sid.clone();
        let (tx, rx) = oneshot::channel();
        tokio::spawn(async move {
            let _ = tx.send(probe_websocket(&ep, &sid).await);
        });
        self.upgrade = Some(rx);
    }

    /// Polling has paused after a successful probe: flush what polling still
    /// has to send, then switch (`5` on the WebSocket).
    async fn finish_upgrade(&mut self) -> Result<(), Stop> {
        let Some(mut ws) = self.upgrading.take() else {
            return Err(Stop::Disconnected(DisconnectReason::TransportError(
                "long-polling stopped".into(),
            )));
        };
        if let Some(Link::Polling(p)) = &self.link {
            p.flush()
                .await
                .map_err(|why| Stop::Disconnected(DisconnectReason::TransportError(why)))?;
        }
        ws.send(vec![EioPacket::Upgrade])
            .await
            .map_err(|why| Stop::Disconnected(DisconnectReason::TransportError(why)))?;
        // The old link is dropped without a close packet: the server closes it.
        self.link = Some(Link::Ws(Box::new(ws)));
        self.shared.set_transport(TransportKind::WebSocket);
        tracing::debug!("socket.io upgraded from long-polling to WebSocket");
        Ok(())
    }

    async fn finish(mut self, stop: Stop) {
        // Pending acks fail with Disconnected (their senders are dropped).
        self.acks.clear();
        if let Phase::Connecting { ready, .. } = &mut self.phase {
            if let Some(tx) = ready.take() {
                let err = match &stop {
                    Stop::Disconnected(DisconnectReason::TransportError(why)) => {
                        SocketIoError::Network(format!(
                            "the connection closed during the handshake: {why}"
                        ))
                    }
                    Stop::Disconnected(DisconnectReason::PingTimeout) => SocketIoError::Network(
                        "no ping from the server during the handshake".into(),
                    ),
                    Stop::Disconnected(DisconnectReason::ServerClose) => SocketIoError::Network(
                        "the server closed the session during the handshake".into(),
                    ),
                    _ => SocketIoError::Disconnected,
                };
                let _ = tx.send(Err(err));
            }
        }
        // Say goodbye unless the link is already broken.
        let polite = !matches!(
            &stop,
            Stop::Disconnected(
                DisconnectReason::TransportError(_)
                    | DisconnectReason::PingTimeout
                    | DisconnectReason::ServerClose
            )
        );
        if let Stop::Disconnected(reason) = stop {
            tracing::debug!(reason = %reason, "socket.io connection ended");
            let _ = self.events.send(SioIncoming::Disconnected { reason });
        }
        if let Some(link) = self.link.take() {
            if polite {
                link.close().await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn connect_payloads() {
        assert_eq!(connect_payload(None, None).unwrap(), None);
        assert_eq!(
            connect_payload(Some(&json!({"token": "t"})), None).unwrap(),
            Some(json!({"token": "t"}))
        );
        assert!(connect_payload(Some(&json!("t")), None).is_err());
        let rec = RecoveryState {
            pid: "p".into(),
            offset: Some("o".into()),
        };
        assert_eq!(
            connect_payload(Some(&json!({"token": "t"})), Some(&rec)).unwrap(),
            Some(json!({"token": "t", "pid": "p", "offset": "o"}))
        );
        let rec = RecoveryState {
            pid: "p".into(),
            offset: None,
        };
        assert_eq!(
            connect_payload(None, Some(&rec)).unwrap(),
            Some(json!({"pid": "p"}))
        );
        assert!(connect_payload(Some(&json!([1])), Some(&rec)).is_err());
    }

    #[test]
    fn handles_cross_tasks() {
        fn send_sync<T: Send + Sync>() {}
        fn send<T: Send>() {}
        send::<SocketIoClient>();
        send_sync::<SioSender>();
    }

    #[test]
    fn namespaces() {
        assert_eq!(normalize_namespace(""), "/");
        assert_eq!(normalize_namespace("/"), "/");
        assert_eq!(normalize_namespace("realtime"), "/realtime");
        assert_eq!(normalize_namespace("/realtime"), "/realtime");
    }
}
