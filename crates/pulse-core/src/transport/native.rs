//! The native Pulse transport: `GET /v1/stream` with the token in the
//! `Authorization` header, JSON text frames (see `docs/protocol.md`).
//!
//! This layer only moves text: decoding, ordering and resync belong to the session.

use futures_util::{FutureExt, SinkExt, StreamExt};
use pulse_protocol::frame::ClientFrame;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use url::Url;

use super::{ConnectError, CONNECT_TIMEOUT, TRANSPORT_MAX_MESSAGE};
use crate::auth::Secret;

/// The stream URL for a server base URL (`http://h:p` → `ws://h:p/v1/stream`).
pub fn stream_url(base: &Url) -> Result<Url, ConnectError> {
    let mut url = base
        .join("/v1/stream")
        .map_err(|e| ConnectError::BadUrl(e.to_string()))?;
    let scheme = match base.scheme() {
        "http" | "ws" => "ws",
        "https" | "wss" => "wss",
        other => {
            return Err(ConnectError::BadUrl(format!(
                "unsupported scheme `{other}` (use http:// or https://)"
            )))
        }
    };
    url.set_scheme(scheme)
        .map_err(|_| ConnectError::BadUrl("cannot set scheme".into()))?;
    Ok(url)
}

/// What the socket gave.
#[derive(Debug)]
pub enum Incoming {
    /// A text message.
    Text(String),
    /// A binary message (not part of the protocol; counted as garbage).
    Binary(usize),
    /// The peer closed, or the link broke (with why).
    Closed(Option<String>),
}

/// An open native connection.
pub struct NativeConnection {
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
}

impl NativeConnection {
    /// Open `GET /v1/stream` on `base` with `token`.
    pub async fn connect(base: &Url, token: &Secret) -> Result<Self, ConnectError> {
        super::ensure_crypto_provider();
        let url = stream_url(base)?;
        let mut req = url
            .as_str()
            .into_client_request()
            .map_err(|e| ConnectError::BadUrl(e.to_string()))?;
        let value = format!("Bearer {}", token.expose()).parse().map_err(|_| {
            ConnectError::BadUrl("token contains characters not allowed in a header".into())
        })?;
        req.headers_mut().insert(http::header::AUTHORIZATION, value);
        let mut config = WebSocketConfig::default();
        config.max_message_size = Some(TRANSPORT_MAX_MESSAGE);
        config.max_frame_size = Some(TRANSPORT_MAX_MESSAGE);
        let fut = tokio_tungstenite::connect_async_with_config(req, Some(config), true);
        let (ws, _resp) = match tokio::time::timeout(CONNECT_TIMEOUT, fut).await {
            Err(_) => return Err(ConnectError::Network("timed out opening the socket".into())),
            Ok(Err(e)) => return Err(super::jsonws::map_error(e, &[401], None)),
            Ok(Ok(ok)) => ok,
        };
        Ok(NativeConnection { ws })
    }

    /// Wait for the next message.
    pub async fn recv(&mut self) -> Incoming {
        loop {
            match self.ws.next().await {
                None => return Incoming::Closed(None),
                Some(Err(e)) => return Incoming::Closed(Some(e.to_string())),
                Some(Ok(msg)) => {
                    if let Some(i) = classify(msg) {
                        return i;
                    }
                }
            }
        }
    }

    /// The next message if one is already buffered, without waiting.
    pub fn try_recv(&mut self) -> Option<Incoming> {
        loop {
            match self.ws.next().now_or_never()? {
                None => return Some(Incoming::Closed(None)),
                Some(Err(e)) => return Some(Incoming::Closed(Some(e.to_string()))),
                Some(Ok(msg)) => {
                    if let Some(i) = classify(msg) {
                        return Some(i);
                    }
                }
            }
        }
    }

    /// Send a client frame.
    pub async fn send(&mut self, frame: &ClientFrame) -> Result<(), String> {
        self.ws
            .send(Message::text(frame.encode()))
            .await
            .map_err(|e| e.to_string())
    }

    /// Close politely (best effort).
    pub async fn close(mut self) {
        let _ = tokio::time::timeout(std::time::Duration::from_secs(2), self.ws.close(None)).await;
    }
}

fn classify(msg: Message) -> Option<Incoming> {
    match msg {
        Message::Text(t) => Some(Incoming::Text(t.as_str().to_owned())),
        Message::Binary(b) => Some(Incoming::Binary(b.len())),
        Message::Close(frame) => {
            Some(Incoming::Closed(frame.map(|f| {
                format!("closed by server: {} {}", u16::from(f.code), f.reason)
            })))
        }
        Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_urls() {
        let u = |s: &str| stream_url(&Url::parse(s).unwrap()).map(|u| u.to_string());
        assert_eq!(
            u("http://127.0.0.1:8080").unwrap(),
            "ws://127.0.0.1:8080/v1/stream"
        );
        assert_eq!(
            u("https://pulse.example/").unwrap(),
            "wss://pulse.example/v1/stream"
        );
        assert!(u("ftp://x").is_err());
    }
}
