//! The task that owns the link: it sends CONNECT, answers the server's pings,
//! watches for a dead link, decodes packets, matches acks, queues events for
//! [`SocketIoClient::recv`](super::SocketIoClient::recv) and upgrades
//! long-polling to a WebSocket when the server offers it.
//!
//! Invariants: decoding never panics (a malformed packet is counted and
//! skipped); events are queued in the server's order, and the missed events sent
//! before the CONNECT answer are delivered only when the session was restored;
//! the task ends with exactly one report (a disconnection for `recv`, or nothing
//! when nobody listens), and pending acks then fail.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use serde_json::Value;
use tokio::sync::{mpsc, oneshot};
use tokio::time::{Instant, Sleep};

use super::super::engineio::{EioPacket, Handshake};
use super::super::packet::{self, Decoder, Packet, PacketKind};
use super::super::transport::{probe_websocket, Endpoint, Link, LinkEvent, WsLink};
use super::super::{
    AckId, DecodeError, DisconnectReason, SioEvent, SioIncoming, SocketIoError, TransportKind,
};
use super::{AckReply, Command, Connected, Queued, Shared};

pub(super) enum Phase {
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

pub(super) struct Actor {
    pub(super) link: Option<Link>,
    pub(super) hs: Handshake,
    /// Set while an upgrade to WebSocket may still be tried.
    pub(super) ep: Option<Endpoint>,
    pub(super) nsp: String,
    pub(super) decoder: Decoder,
    pub(super) events: mpsc::UnboundedSender<Queued>,
    pub(super) shared: Arc<Shared>,
    pub(super) acks: HashMap<u64, AckReply>,
    pub(super) next_ack: u64,
    pub(super) phase: Phase,
    pub(super) sent_pid: Option<String>,
    /// The server appends offsets to events (it gave a `pid`).
    pub(super) recovery_on: bool,
    pub(super) dead: std::pin::Pin<Box<Sleep>>,
    /// A WebSocket probe in progress.
    pub(super) upgrade: Option<oneshot::Receiver<Result<WsLink, SocketIoError>>>,
    /// A probed WebSocket waiting for polling to pause.
    pub(super) upgrading: Option<WsLink>,
}

impl Actor {
    pub(super) async fn run(
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
            // A full queue: the link is not read until the reader drains it.
            let full =
                self.shared.queued_bytes.load(Ordering::Relaxed) > super::super::MAX_QUEUED_BYTES;
            if full {
                self.shared.paused.fetch_add(1, Ordering::Relaxed);
                tracing::debug!("socket.io receive queue full; pausing the link until it drains");
            }
            tokio::select! {
                ev = link.recv(), if !full => {
                    if let Err(stop) = self.on_link(ev).await {
                        return stop;
                    }
                }
                () = self.shared.drained.notified(), if full => {}
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
        let ev = SioEvent {
            name,
            args: items,
            ack: p.id.map(AckId),
            offset,
        };
        let size = super::super::event_size(&ev);
        self.shared.queued_bytes.fetch_add(size, Ordering::Relaxed);
        self.shared.events.fetch_add(1, Ordering::Relaxed);
        let _ = self.events.send((SioIncoming::Event(ev), size));
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
            let _ = self.events.send((SioIncoming::Disconnected { reason }, 0));
        }
        if let Some(link) = self.link.take() {
            if polite {
                link.close().await;
            }
        }
    }
}
