//! The native Pulse transport: `GET /v1/stream` with the token in the
//! `Authorization` header, JSON text frames (see `docs/protocol.md`).
//!
//! A thin layer over the plain JSON WebSocket link ([`JsonWsConnection`]): it only
//! fixes the URL and where the token goes, and encodes client frames. Decoding,
//! ordering and resync belong to the native dialect (`crate::session`).

use pulse_protocol::frame::ClientFrame;
use url::Url;

use super::jsonws::{self, Incoming, JsonWsConfig, JsonWsConnection};
use super::ConnectError;
use crate::auth::Secret;

/// The stream URL for a server base URL (`http://h:p` → `ws://h:p/v1/stream`).
pub fn stream_url(base: &Url) -> Result<Url, ConnectError> {
    jsonws::socket_url(base, "/v1/stream")
}

/// An open native connection.
#[derive(Debug)]
pub struct NativeConnection {
    link: JsonWsConnection,
}

impl NativeConnection {
    /// Open `GET /v1/stream` on `base` with `token` (a 401 answer is
    /// [`ConnectError::Unauthorized`]).
    pub async fn connect(base: &Url, token: &Secret) -> Result<Self, ConnectError> {
        let mut config = JsonWsConfig::new(stream_url(base)?);
        config.unauthorized_status = vec![401];
        let link = JsonWsConnection::connect(&config, Some(token)).await?;
        Ok(NativeConnection { link })
    }

    /// Wait for the next message.
    pub async fn recv(&mut self) -> Incoming {
        self.link.recv().await
    }

    /// The next message if one is already buffered, without waiting.
    pub fn try_recv(&mut self) -> Option<Incoming> {
        self.link.try_recv()
    }

    /// Send a client frame.
    pub async fn send(&mut self, frame: &ClientFrame) -> Result<(), String> {
        self.link.send_text(frame.encode()).await
    }

    /// Close politely (best effort).
    pub async fn close(mut self) {
        self.link.close().await;
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
