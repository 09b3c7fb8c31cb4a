//! Socket.IO v5 client over Engine.IO v4: WebSocket, or HTTP long-polling when the
//! WebSocket is refused; one namespace per client; handshake `auth`; acks both
//! ways; binary attachments; connection-state recovery.
//!
//! ```no_run
//! # async fn demo() -> Result<(), pulse_core::transport::socketio::SocketIoError> {
//! use pulse_core::transport::socketio::{SioIncoming, SocketIoClient, SocketIoOptions};
//! use serde_json::json;
//!
//! let mut opts = SocketIoOptions::new("https://api.example".parse().unwrap());
//! opts.namespace = "/realtime".into();
//! opts.auth = Some(json!({ "token": "…" }));
//! let mut client = SocketIoClient::connect(opts).await?;
//! client.emit("presence.update", vec![json!("online")])?;
//! loop {
//!     match client.recv().await {
//!         SioIncoming::Event(ev) => {
//!             if let Some(id) = ev.ack {
//!                 client.ack(id, vec![json!({ "ok": true })])?;
//!             }
//!             println!("{} {:?}", ev.name, ev.args);
//!         }
//!         SioIncoming::Disconnected { reason } => {
//!             // Reconnect later with the same options plus
//!             // `recovery: client.recovery_state()`.
//!             println!("lost: {reason}");
//!             break;
//!         }
//!     }
//! }
//! # Ok(()) }
//! ```
//!
//! # Shape
//!
//! [`SocketIoClient::connect`] opens the Engine.IO session, connects the namespace
//! and returns only once the server accepted it (or refused it: a typed
//! [`SocketIoError`]). A background task then owns the link: it answers the
//! server's pings, watches for a dead link, decodes packets and queues events for
//! [`SocketIoClient::recv`]. There is no automatic reconnection here: after
//! [`SioIncoming::Disconnected`] the caller (the session actor, with its backoff
//! and fresh token) connects again, passing [`SocketIoClient::recovery_state`] so
//! the server can replay what was missed.
//!
//! # Invariants
//!
//! - Credentials (the `auth` payload, headers, a `query_token`) are never written
//!   to a log line or an error message; `Debug` of the options redacts them, and
//!   HTTP errors are reported without their URL. The token goes in the URL only
//!   when [`SocketIoOptions::query_token`] asks for it.
//! - TLS certificates are verified (rustls, webpki roots) on both transports.
//! - Decoding never panics: a malformed packet is counted
//!   ([`SioStats::decode_errors`]), logged by kind and skipped; the connection
//!   stays up.
//! - Events are delivered in the order the server sent them, none dropped: the
//!   queue to [`SocketIoClient::recv`] is unbounded so a slow consumer never
//!   stalls heartbeats (which would get the link killed by the server).
//! - Every [`SioIncoming::Disconnected`] is final: the client is spent, and `recv`
//!   keeps answering the same disconnection.
//! - [`SocketIoClient::recovery_state`] reflects the events *returned by `recv`*,
//!   so reconnecting with it never skips an event the caller has not seen.
//! - Dropping the client (or [`SocketIoClient::close`]) closes the link; pending
//!   [`SocketIoClient::emit_with_ack`] calls fail with
//!   [`SocketIoError::Disconnected`].

mod client;
pub mod engineio;
pub mod packet;
mod transport;

use std::fmt;
use std::time::Duration;

use serde_json::Value;
use url::Url;

use crate::auth::Secret;

pub use client::{SioSender, SocketIoClient};
pub use packet::{as_binary, binary_value, BINARY_KEY};

/// Default Engine.IO path of a Socket.IO server.
pub const DEFAULT_PATH: &str = "/socket.io/";

/// Default time [`SocketIoClient::emit_with_ack`] waits for the answer.
pub const DEFAULT_ACK_TIMEOUT: Duration = Duration::from_secs(10);

/// An Engine.IO transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TransportKind {
    /// `transport=websocket`: one WebSocket, frames are packets.
    WebSocket,
    /// `transport=polling`: HTTP long-polling (GET to receive, POST to send).
    Polling,
}

impl TransportKind {
    /// The name in the `transport` query parameter.
    pub fn as_str(self) -> &'static str {
        match self {
            TransportKind::WebSocket => "websocket",
            TransportKind::Polling => "polling",
        }
    }
}

impl fmt::Display for TransportKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a previous connection to the namespace left to resume from
/// (connection-state recovery, Socket.IO ≥ 4.6 with `connectionStateRecovery`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecoveryState {
    /// The private session id the server gave in its CONNECT answer.
    pub pid: String,
    /// Offset of the last event received (the server appends it as the last
    /// argument of each event when recovery is on); `None` before any event.
    /// The server restores a session only with an offset, so a connection that
    /// received no event cannot be recovered (it gets a fresh session).
    pub offset: Option<String>,
}

/// A token placed in the handshake URL query, for servers that read it only
/// there. Avoid: URLs end up in proxy logs.
#[derive(Clone, Debug)]
pub struct QueryToken {
    /// Query parameter name (e.g. `token`).
    pub name: String,
    /// The token.
    pub token: Secret,
}

/// How to reach a Socket.IO server.
#[derive(Clone)]
pub struct SocketIoOptions {
    /// Server origin (`http`, `https`, `ws` or `wss`). Its path and query are
    /// ignored: the path of the endpoint is [`Self::path`], the namespace is
    /// [`Self::namespace`].
    pub base_url: Url,
    /// Engine.IO path, default [`DEFAULT_PATH`] (`/socket.io/`).
    pub path: String,
    /// Namespace to connect, default `/`.
    pub namespace: String,
    /// The CONNECT payload (`socket.handshake.auth` on the server), e.g.
    /// `{"token": "…"}`. Must be a JSON object when recovery is used (the
    /// `pid`/`offset` fields are merged into it). Never logged.
    pub auth: Option<Value>,
    /// Extra headers on the handshake requests (WebSocket upgrade and every
    /// long-polling request), e.g. `Authorization`. Values are never logged.
    pub headers: http::HeaderMap,
    /// Transports to try, in order. Default: WebSocket, then long-polling.
    /// With `[Polling, WebSocket]` the client starts on long-polling and upgrades
    /// to a WebSocket when the server offers it.
    pub transports: Vec<TransportKind>,
    /// Resume a previous connection (from [`SocketIoClient::recovery_state`]).
    pub recovery: Option<RecoveryState>,
    /// Token in the URL query: only when a profile explicitly asks for it.
    pub query_token: Option<QueryToken>,
    /// How long [`SocketIoClient::emit_with_ack`] waits for the answer.
    pub ack_timeout: Duration,
    /// How long opening the link and connecting the namespace may take.
    pub connect_timeout: Duration,
}

impl SocketIoOptions {
    /// Options with defaults for `base_url`: path `/socket.io/`, namespace `/`, no
    /// auth, WebSocket then long-polling, no recovery.
    pub fn new(base_url: Url) -> Self {
        SocketIoOptions {
            base_url,
            path: DEFAULT_PATH.into(),
            namespace: "/".into(),
            auth: None,
            headers: http::HeaderMap::new(),
            transports: vec![TransportKind::WebSocket, TransportKind::Polling],
            recovery: None,
            query_token: None,
            ack_timeout: DEFAULT_ACK_TIMEOUT,
            connect_timeout: super::CONNECT_TIMEOUT,
        }
    }
}

impl fmt::Debug for SocketIoOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut origin = self.base_url.clone();
        origin.set_query(None);
        let _ = origin.set_password(None);
        f.debug_struct("SocketIoOptions")
            .field("base_url", &origin.as_str())
            .field("path", &self.path)
            .field("namespace", &self.namespace)
            .field("auth", &self.auth.as_ref().map(|_| "<redacted>"))
            .field("headers", &self.headers.keys().collect::<Vec<_>>())
            .field("transports", &self.transports)
            .field(
                "recovery",
                &self.recovery.as_ref().map(|r| r.offset.is_some()),
            )
            .field("query_token", &self.query_token.as_ref().map(|q| &q.name))
            .field("ack_timeout", &self.ack_timeout)
            .field("connect_timeout", &self.connect_timeout)
            .finish()
    }
}

/// Id of an event the server wants answered: pass it to
/// [`SocketIoClient::ack`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct AckId(pub u64);

/// An event from the server.
#[derive(Debug, Clone, PartialEq)]
pub struct SioEvent {
    /// Event name (a numeric name is given as its decimal text).
    pub name: String,
    /// Arguments after the name. Binary attachments are in place as
    /// `{"$binary": "<base64>"}` (read them with [`as_binary`]). The recovery
    /// offset is *not* among them: see [`Self::offset`].
    pub args: Vec<Value>,
    /// Set when the server asked for an acknowledgement: answer with
    /// [`SocketIoClient::ack`].
    pub ack: Option<AckId>,
    /// The recovery offset the server appended to this event (only when the
    /// namespace has connection-state recovery on and the event asked no ack).
    /// Caveat inherited from the protocol: a `volatile` server event carries
    /// no offset, so with recovery on its last argument, if a string, is taken
    /// for one (socket.io-client makes the same guess).
    pub offset: Option<String>,
}

/// What [`SocketIoClient::recv`] gives.
#[derive(Debug, Clone, PartialEq)]
pub enum SioIncoming {
    /// An event.
    Event(SioEvent),
    /// The connection is over (final).
    Disconnected {
        /// Why.
        reason: DisconnectReason,
    },
}

/// The most bytes of received events that may wait to be read (64 MiB, counted
/// by [`event_size`]). Past it the client stops reading from the link until the
/// reader has taken the queue down to half of it: the server's sends then wait in
/// TCP's buffers and its own (backpressure), nothing is dropped, and the queue
/// never holds more than this plus one link message (itself bounded by the
/// transport's frame or payload limit).
pub const MAX_QUEUED_BYTES: usize = 64 << 20;

/// The size an event counts for in the receive queue: its name and the text
/// lengths of its arguments (numbers 8 bytes, `null`/booleans 4, plus 2 per
/// array or object and the keys' lengths). Cheap and deterministic.
pub fn event_size(ev: &SioEvent) -> usize {
    fn size(v: &Value) -> usize {
        match v {
            Value::Null | Value::Bool(_) => 4,
            Value::Number(_) => 8,
            Value::String(s) => s.len() + 2,
            Value::Array(a) => a.iter().map(size).fold(2, usize::saturating_add),
            Value::Object(o) => o
                .iter()
                .map(|(k, v)| (k.len() + 3).saturating_add(size(v)))
                .fold(2, usize::saturating_add),
        }
    }
    ev.args
        .iter()
        .map(size)
        .fold(ev.name.len(), usize::saturating_add)
}

/// Why a connection ended.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum DisconnectReason {
    /// The server disconnected this namespace (`socket.disconnect()`): a
    /// deliberate kick, the server keeps no state to recover.
    ServerDisconnect,
    /// The server closed the Engine.IO session (close packet, unknown session).
    ServerClose,
    /// The server sent a CONNECT_ERROR on a connected namespace.
    ConnectError(String),
    /// No ping arrived within `pingInterval + pingTimeout`: the link is dead.
    PingTimeout,
    /// The transport broke (reset, end of stream, HTTP error), with what was seen.
    TransportError(String),
    /// [`SocketIoClient::close`] was called.
    ClientClosed,
}

impl DisconnectReason {
    /// Whether the server may have kept the session for connection-state
    /// recovery (it does for transport errors and ping timeouts, not for a kick).
    pub fn is_recoverable(&self) -> bool {
        matches!(
            self,
            DisconnectReason::PingTimeout
                | DisconnectReason::TransportError(_)
                | DisconnectReason::ServerClose
        )
    }
}

impl fmt::Display for DisconnectReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DisconnectReason::ServerDisconnect => {
                f.write_str("the server disconnected the namespace")
            }
            DisconnectReason::ServerClose => f.write_str("the server closed the session"),
            DisconnectReason::ConnectError(m) => write!(f, "the server refused the namespace: {m}"),
            DisconnectReason::PingTimeout => {
                f.write_str("no ping from the server in time (dead link)")
            }
            DisconnectReason::TransportError(m) => write!(f, "transport error: {m}"),
            DisconnectReason::ClientClosed => f.write_str("closed by the client"),
        }
    }
}

/// Why connecting, or a call, failed.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum SocketIoError {
    /// The credentials were refused: an HTTP 401/403 on the handshake, or a
    /// CONNECT_ERROR that says so (see [`Self::is_auth_failure`]). Retrying with
    /// the same token is pointless.
    #[error("the server refused the credentials: {message}")]
    Unauthorized {
        /// The server's message.
        message: String,
        /// The server's `data` (CONNECT_ERROR), if any.
        data: Option<Value>,
    },
    /// The namespace refused the connection (CONNECT_ERROR) for another reason.
    #[error("the server refused the namespace: {message}")]
    ConnectError {
        /// The server's message (`err.message` in the server middleware).
        message: String,
        /// The server's `data` (`err.data`), if any.
        data: Option<Value>,
    },
    /// The server answered over HTTP but would not open the transport (e.g. a
    /// WebSocket upgrade refused because only long-polling is allowed, or a
    /// proxy blocking WebSockets).
    #[error("the server answered HTTP {status} instead of opening the {transport} transport{}", if .message.is_empty() { String::new() } else { format!(": {}", .message) })]
    UpgradeRefused {
        /// Which transport.
        transport: TransportKind,
        /// HTTP status.
        status: u16,
        /// Body excerpt.
        message: String,
    },
    /// No connection (DNS, refused, reset, TLS, timeout).
    #[error("cannot reach the server: {0}")]
    Network(String),
    /// The server spoke something that is not Engine.IO v4 / Socket.IO v5.
    #[error("protocol error: {0}")]
    Protocol(String),
    /// The options cannot be used (URL scheme, header value, non-object auth
    /// with recovery…).
    #[error("bad options: {0}")]
    BadOptions(String),
    /// No answer to an [`SocketIoClient::emit_with_ack`] within the ack timeout.
    #[error("no acknowledgement within {0:?}")]
    AckTimeout(Duration),
    /// The connection is closed.
    #[error("the connection is closed")]
    Disconnected,
}

impl SocketIoError {
    /// Whether this is a credentials problem (no point retrying with the same
    /// token): [`SocketIoError::Unauthorized`].
    pub fn is_auth_failure(&self) -> bool {
        matches!(self, SocketIoError::Unauthorized { .. })
    }

    /// Build the error for a CONNECT_ERROR payload (`{message, data}` or a
    /// string). It is [`SocketIoError::Unauthorized`] when the message, or a
    /// `code`/`type`/`status` in `data`, reads like an authentication failure
    /// (`unauthorized`, `unauthenticated`, `forbidden`, `auth`, `token`, `jwt`,
    /// `credential`, `401`, `403`): Socket.IO has no standard code for it.
    pub fn from_connect_error(payload: Option<&Value>) -> SocketIoError {
        let (message, data) = match payload {
            Some(Value::String(s)) => (s.clone(), None),
            Some(Value::Object(m)) => (
                m.get("message")
                    .and_then(Value::as_str)
                    .unwrap_or("connection refused")
                    .to_owned(),
                m.get("data").cloned(),
            ),
            _ => ("connection refused".to_owned(), None),
        };
        let mut hints = vec![message.to_lowercase()];
        if let Some(d) = &data {
            if let Some(s) = d.as_str() {
                hints.push(s.to_lowercase());
            }
            for key in ["code", "type", "status", "statusCode", "name"] {
                match d.get(key) {
                    Some(Value::String(s)) => hints.push(s.to_lowercase()),
                    Some(Value::Number(n)) => hints.push(n.to_string()),
                    _ => {}
                }
            }
        }
        const AUTH_WORDS: [&str; 9] = [
            "unauthor",
            "unauthenticated",
            "forbidden",
            "auth",
            "token",
            "jwt",
            "credential",
            "401",
            "403",
        ];
        if hints
            .iter()
            .any(|h| AUTH_WORDS.iter().any(|w| h.contains(w)))
        {
            SocketIoError::Unauthorized { message, data }
        } else {
            SocketIoError::ConnectError { message, data }
        }
    }
}

/// A malformed packet: counted and skipped, the connection stays.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// An empty message.
    #[error("empty packet")]
    Empty,
    /// The Engine.IO type is not `0`–`6`.
    #[error("unknown Engine.IO packet type {0:?}")]
    UnknownEnginePacket(char),
    /// The Socket.IO type is not `0`–`6`.
    #[error("unknown Socket.IO packet type {0:?}")]
    UnknownSocketPacket(char),
    /// A binary packet without a valid `<n>-` attachment count.
    #[error("bad attachment count")]
    BadAttachmentCount,
    /// A binary packet announcing more attachments than allowed.
    #[error("too many attachments ({0})")]
    TooManyAttachments(usize),
    /// An ack id that is not a number that fits in 64 bits.
    #[error("bad ack id")]
    BadAckId,
    /// The payload is not JSON.
    #[error("payload is not JSON: {0}")]
    BadJson(String),
    /// The payload does not fit the packet type (e.g. an EVENT that is not a
    /// non-empty array starting with a name).
    #[error("invalid payload for {0}")]
    InvalidPayload(&'static str),
    /// A placeholder points to no attachment.
    #[error("placeholder without a matching attachment")]
    BadPlaceholder,
    /// A binary message when no binary packet was waiting for one.
    #[error("binary message without a binary packet")]
    UnexpectedBinary,
    /// A text message came before all attachments of a binary packet.
    #[error("binary packet abandoned after {got} of {expected} attachments")]
    MissingAttachments {
        /// Announced.
        expected: usize,
        /// Received.
        got: usize,
    },
    /// A `b`-prefixed long-polling record that is not base64.
    #[error("bad base64 in a binary record")]
    BadBase64,
    /// An `open` packet that cannot be used.
    #[error("bad handshake: {0}")]
    BadHandshake(String),
    /// An Engine.IO packet that has no business here (e.g. a second `open`).
    #[error("unexpected Engine.IO packet: {0}")]
    Unexpected(&'static str),
}

/// Counters of one connection (see [`SocketIoClient::stats`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SioStats {
    /// Events queued for `recv`.
    pub events: u64,
    /// Bytes of events queued and not yet read ([`event_size`]).
    pub queued_bytes: usize,
    /// Times the client stopped reading from the link because the queue was
    /// full ([`MAX_QUEUED_BYTES`]).
    pub paused: u64,
    /// Server pings answered.
    pub pings: u64,
    /// Malformed packets skipped.
    pub decode_errors: u64,
    /// Well-formed packets ignored (other namespaces, stray acks…).
    pub ignored: u64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn connect_errors_are_classified() {
        let e = SocketIoError::from_connect_error(Some(&json!({"message": "invalid token"})));
        assert!(e.is_auth_failure(), "{e:?}");
        let e = SocketIoError::from_connect_error(Some(
            &json!({"message": "nope", "data": {"code": "UNAUTHORIZED"}}),
        ));
        assert!(e.is_auth_failure(), "{e:?}");
        let e = SocketIoError::from_connect_error(Some(
            &json!({"message": "x", "data": {"status": 401}}),
        ));
        assert!(e.is_auth_failure(), "{e:?}");
        let e = SocketIoError::from_connect_error(Some(&json!({"message": "Invalid namespace"})));
        assert!(
            matches!(&e, SocketIoError::ConnectError { message, data: None } if message == "Invalid namespace"),
            "{e:?}"
        );
        let e = SocketIoError::from_connect_error(Some(&json!("server full")));
        assert!(
            matches!(&e, SocketIoError::ConnectError { message, .. } if message == "server full")
        );
        assert!(matches!(
            SocketIoError::from_connect_error(None),
            SocketIoError::ConnectError { .. }
        ));
    }

    #[test]
    fn options_debug_hides_secrets() {
        let mut o = SocketIoOptions::new("https://user:pw@h.example/?token=abc".parse().unwrap());
        o.auth = Some(json!({"token": "s3cret"}));
        o.headers.insert(
            http::header::AUTHORIZATION,
            "Bearer s3cret".parse().unwrap(),
        );
        o.query_token = Some(QueryToken {
            name: "token".into(),
            token: Secret::new("s3cret"),
        });
        let s = format!("{o:?}");
        assert!(
            !s.contains("s3cret") && !s.contains("abc") && !s.contains("pw"),
            "{s}"
        );
        assert!(s.contains("authorization"), "{s}");
    }
}
