//! Transports: how frames get from a server to the session.
//!
//! Every transport runs over tokio-tungstenite with rustls and TLS verification on;
//! credentials go in headers (or where a server's dialect demands, see profiles),
//! never in a log line.

pub mod jsonws;
pub mod link;
pub mod native;
pub mod socketio;
pub mod tls;

use std::time::Duration;

/// Why a socket could not be opened.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConnectError {
    /// The server answered the upgrade with 401: the token was refused.
    #[error("the server refused the credentials (HTTP 401){}", if .0.is_empty() { String::new() } else { format!(": {}", .0) })]
    Unauthorized(String),
    /// The server answered over HTTP but would not upgrade to a WebSocket
    /// (a proxy that blocks WebSockets, an old server…). REST may still work.
    #[error("the server answered HTTP {status} instead of opening a WebSocket{}", if .message.is_empty() { String::new() } else { format!(": {}", .message) })]
    Refused {
        /// HTTP status of the answer.
        status: u16,
        /// Body excerpt.
        message: String,
    },
    /// No connection (DNS, refused, reset, TLS, timeout).
    #[error("cannot reach the server: {0}")]
    Network(String),
    /// The URL cannot be used.
    #[error("bad server URL: {0}")]
    BadUrl(String),
}

/// Largest WebSocket message accepted at the transport level. Larger than the
/// protocol's frame limit so an oversized frame is counted and skipped by the
/// decoder instead of killing the connection.
pub const TRANSPORT_MAX_MESSAGE: usize = 16 << 20;

/// How long opening a socket may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Install rustls' process-wide crypto provider once (needed before the first TLS
/// connection when several providers are compiled in).
pub fn ensure_crypto_provider() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

impl crate::auth::Refusal for ConnectError {
    fn refusal(&self) -> Option<&str> {
        match self {
            ConnectError::Unauthorized(m) => Some(m),
            _ => None,
        }
    }
}
