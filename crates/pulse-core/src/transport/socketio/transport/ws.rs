//! The WebSocket transport: opening it (with the configured headers and the
//! transport's message-size limit), its Engine.IO handshake, and the probe that
//! upgrades a long-polling session to it.
//!
//! Invariants: every write is bounded by a timeout (a stalled socket reports
//! the link closed instead of blocking the task); a refused upgrade is reported
//! by its HTTP status and body message, never with its URL.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use super::super::engineio::{EioPacket, Handshake};
use super::super::{SocketIoError, TransportKind};
use super::{body_message, dechunk, http_refusal, open_packet, Endpoint, LinkEvent};
use crate::transport::{ensure_crypto_provider, TRANSPORT_MAX_MESSAGE};

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// A WebSocket transport.
pub(in crate::transport::socketio) struct WsLink {
    ws: Ws,
    write_timeout: Duration,
}

impl WsLink {
    /// Open the WebSocket (no Engine.IO exchange yet).
    pub(super) async fn open(ep: &Endpoint, sid: Option<&str>) -> Result<WsLink, SocketIoError> {
        ensure_crypto_provider();
        let url = ep.url(TransportKind::WebSocket, sid)?;
        let mut req = url
            .as_str()
            .into_client_request()
            .map_err(|_| SocketIoError::BadOptions("the WebSocket URL is not usable".into()))?;
        for (name, value) in &ep.headers {
            req.headers_mut().append(name, value.clone());
        }
        let mut config = WebSocketConfig::default();
        config.max_message_size = Some(TRANSPORT_MAX_MESSAGE);
        config.max_frame_size = Some(TRANSPORT_MAX_MESSAGE);
        let fut = tokio_tungstenite::connect_async_tls_with_config(
            req,
            Some(config),
            true,
            crate::transport::tls::ws_connector(),
        );
        let (ws, _resp) = match tokio::time::timeout(ep.connect_timeout, fut).await {
            Err(_) => {
                return Err(SocketIoError::Network(
                    "timed out opening the WebSocket".into(),
                ))
            }
            Ok(Err(e)) => return Err(map_ws_error(e)),
            Ok(Ok(ok)) => ok,
        };
        Ok(WsLink {
            ws,
            write_timeout: ep.connect_timeout,
        })
    }

    /// Open a new session over a WebSocket: returns the link and the handshake.
    pub(in crate::transport::socketio) async fn handshake(
        ep: &Endpoint,
    ) -> Result<(WsLink, Handshake), SocketIoError> {
        let mut link = WsLink::open(ep, None).await?;
        let first = tokio::time::timeout(ep.connect_timeout, link.recv())
            .await
            .map_err(|_| SocketIoError::Network("no Engine.IO handshake in time".into()))?;
        let hs = open_packet(first)?;
        link.write_timeout = hs.dead_after().max(ep.connect_timeout);
        Ok((link, hs))
    }

    pub(super) async fn recv(&mut self) -> LinkEvent {
        loop {
            return match self.ws.next().await {
                None => LinkEvent::Closed("end of stream".into()),
                Some(Err(e)) => LinkEvent::Closed(e.to_string()),
                Some(Ok(Message::Text(t))) => LinkEvent::Packet(EioPacket::decode_text(t.as_str())),
                Some(Ok(Message::Binary(b))) => {
                    LinkEvent::Packet(Ok(EioPacket::Binary(b.to_vec())))
                }
                Some(Ok(Message::Close(frame))) => LinkEvent::Closed(match frame {
                    Some(f) => format!("closed by the server: {} {}", u16::from(f.code), f.reason),
                    None => "closed by the server".into(),
                }),
                Some(Ok(_)) => continue,
            };
        }
    }

    pub(in crate::transport::socketio) async fn send(
        &mut self,
        packets: Vec<EioPacket>,
    ) -> Result<(), String> {
        let ws = &mut self.ws;
        let fut = async move {
            for p in packets {
                let msg = match p.encode_ws() {
                    Ok(text) => Message::text(text),
                    Err(bytes) => Message::binary(bytes.to_vec()),
                };
                ws.feed(msg).await?;
            }
            ws.flush().await
        };
        match tokio::time::timeout(self.write_timeout, fut).await {
            Err(_) => Err("timed out writing to the WebSocket".into()),
            Ok(r) => r.map_err(|e| e.to_string()),
        }
    }

    pub(super) async fn close(mut self) {
        let _ = tokio::time::timeout(Duration::from_secs(2), async {
            let _ = self
                .ws
                .send(Message::text(EioPacket::Close.encode_polling()))
                .await;
            let _ = self.ws.close(None).await;
        })
        .await;
    }
}

fn map_ws_error(e: tungstenite::Error) -> SocketIoError {
    match e {
        tungstenite::Error::Http(resp) => {
            let status = resp.status().as_u16();
            let chunked = resp
                .headers()
                .get(http::header::TRANSFER_ENCODING)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.eq_ignore_ascii_case("chunked"));
            let body = resp
                .body()
                .as_deref()
                .map(|b| match chunked.then(|| dechunk(b)).flatten() {
                    Some(plain) => body_message(&plain),
                    None => body_message(b),
                })
                .unwrap_or_default();
            http_refusal(TransportKind::WebSocket, status, body)
        }
        tungstenite::Error::Url(u) => SocketIoError::BadOptions(u.to_string()),
        other => SocketIoError::Network(other.to_string()),
    }
}

/// Probe a WebSocket for an existing long-polling session (`2probe` →
/// `3probe`). The caller then pauses polling and sends `5` on the returned link.
pub(in crate::transport::socketio) async fn probe_websocket(
    ep: &Endpoint,
    sid: &str,
) -> Result<WsLink, SocketIoError> {
    let mut link = WsLink::open(ep, Some(sid)).await?;
    link.send(vec![EioPacket::Ping("probe".into())])
        .await
        .map_err(SocketIoError::Network)?;
    let answer = tokio::time::timeout(ep.connect_timeout, link.recv())
        .await
        .map_err(|_| SocketIoError::Network("no probe answer in time".into()))?;
    match answer {
        LinkEvent::Packet(Ok(EioPacket::Pong(d))) if d == "probe" => Ok(link),
        LinkEvent::Closed(why) => Err(SocketIoError::Network(why)),
        _ => Err(SocketIoError::Protocol(
            "unexpected answer to the upgrade probe".into(),
        )),
    }
}
