//! Plain JSON over WebSocket: the transport of servers that push `{"type": …}`
//! objects over a bare WebSocket (a `ws` npm server, FastAPI's `WebSocket`…).
//!
//! Everything a server decides is configurable ([`JsonWsConfig`]): the path, where
//! the token goes ([`TokenPlacement`]: `Authorization` header, a query parameter, the
//! first message, or nowhere), and where the event type, payload and timestamp sit in
//! the envelope ([`Envelope`], JSON-pointer paths).
//!
//! Contract:
//! - TLS is rustls with certificate verification on (`wss://`);
//! - a token is put in a URL only with [`TokenPlacement::Query`], for servers that
//!   demand it; it is then redacted from every error this module returns, and the
//!   URL is never logged;
//! - a refusal of the credentials is [`ConnectError::Unauthorized`] when the upgrade
//!   is answered with one of [`JsonWsConfig::unauthorized_status`], and
//!   [`Incoming::Closed`] carries the close code so a caller can tell an auth close
//!   (e.g. 1008, 4001) from a lost link;
//! - this layer only moves text: decoding envelopes is [`Envelope::decode`], mapping
//!   and resync belong to the profile.

use futures_util::{FutureExt, SinkExt, StreamExt};
use serde_json::Value;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use url::Url;

use super::{ConnectError, CONNECT_TIMEOUT, TRANSPORT_MAX_MESSAGE};
use crate::auth::Secret;

/// Where the token goes when the socket is opened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenPlacement {
    /// No credentials are sent (the server has no auth).
    None,
    /// A header, `{prefix}{token}` (usually `Authorization: Bearer …`).
    Header {
        /// Header name.
        name: String,
        /// Put before the token (`"Bearer "`).
        prefix: String,
    },
    /// A query parameter (`?token=…`). Only for servers that demand it: the URL then
    /// holds a credential and is never logged; errors are redacted.
    Query {
        /// Parameter name.
        param: String,
    },
    /// The first text message after the socket opens; `{token}` in the template is
    /// replaced by the token, JSON-escaped.
    FirstMessage {
        /// The message template.
        template: String,
    },
}

/// Settings of one plain-JSON WebSocket connection.
#[derive(Debug, Clone)]
pub struct JsonWsConfig {
    /// The socket URL (`ws://` or `wss://`, with its path and any fixed query).
    pub url: Url,
    /// Where the token goes.
    pub token: TokenPlacement,
    /// Extra headers sent with the upgrade (no credentials here: use `token`).
    pub headers: Vec<(String, String)>,
    /// HTTP statuses of a refused upgrade that mean "credentials refused".
    pub unauthorized_status: Vec<u16>,
}

impl JsonWsConfig {
    /// Defaults for `url`: token in the `Authorization` header, 401/403 = refused.
    pub fn new(url: Url) -> Self {
        JsonWsConfig {
            url,
            token: TokenPlacement::Header {
                name: "authorization".into(),
                prefix: "Bearer ".into(),
            },
            headers: Vec::new(),
            unauthorized_status: vec![401, 403],
        }
    }
}

/// Turn a server base URL and a path into a socket URL (`http://h:p` + `/ws` →
/// `ws://h:p/ws`). The path may carry a query (`/ws?v=2`).
pub fn socket_url(base: &Url, path: &str) -> Result<Url, ConnectError> {
    let scheme = match base.scheme() {
        "http" | "ws" => "ws",
        "https" | "wss" => "wss",
        other => {
            return Err(ConnectError::BadUrl(format!(
                "unsupported scheme `{other}` (use http:// or https://)"
            )))
        }
    };
    let mut url = base
        .join(path)
        .map_err(|e| ConnectError::BadUrl(format!("bad path `{path}`: {e}")))?;
    url.set_scheme(scheme)
        .map_err(|_| ConnectError::BadUrl("cannot set the scheme".into()))?;
    Ok(url)
}

/// What the socket gave.
#[derive(Debug, Clone, PartialEq)]
pub enum Incoming {
    /// A text message.
    Text(String),
    /// A binary message (not part of a JSON dialect).
    Binary(usize),
    /// A WebSocket pong: the link is alive.
    Pong,
    /// The peer closed, or the link broke.
    Closed {
        /// The close code, when the server sent a close frame.
        code: Option<u16>,
        /// Why, for a person (redacted).
        reason: String,
    },
}

/// An open plain-JSON WebSocket.
pub struct JsonWsConnection {
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    /// The token, kept only to redact it from errors.
    redact: Option<Secret>,
}

impl std::fmt::Debug for JsonWsConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("JsonWsConnection")
    }
}

/// Replace every occurrence of the token in `text` by `***`.
pub fn redact(text: &str, token: Option<&Secret>) -> String {
    match token {
        Some(t) if !t.expose().is_empty() => {
            let mut out = text.replace(t.expose(), "***");
            let encoded: String =
                url::form_urlencoded::byte_serialize(t.expose().as_bytes()).collect();
            if encoded != t.expose() {
                out = out.replace(&encoded, "***");
            }
            out
        }
        _ => text.to_owned(),
    }
}

fn json_escape_inner(s: &str) -> String {
    let quoted = Value::String(s.to_owned()).to_string();
    quoted[1..quoted.len() - 1].to_owned()
}

impl JsonWsConnection {
    /// Open the socket with `token` placed as `config` says, and send the first
    /// message when the token goes there.
    pub async fn connect(
        config: &JsonWsConfig,
        token: Option<&Secret>,
    ) -> Result<Self, ConnectError> {
        super::ensure_crypto_provider();
        let redact_tok = token.filter(|t| !t.expose().is_empty()).cloned();
        let r = |s: &str| redact(s, redact_tok.as_ref());
        let mut url = config.url.clone();
        if let (TokenPlacement::Query { param }, Some(t)) = (&config.token, &redact_tok) {
            url.query_pairs_mut().append_pair(param, t.expose());
        }
        let mut req = url
            .as_str()
            .into_client_request()
            .map_err(|e| ConnectError::BadUrl(r(&e.to_string())))?;
        for (name, value) in &config.headers {
            let name = http::header::HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| ConnectError::BadUrl(format!("bad header name `{name}`")))?;
            let value = value
                .parse()
                .map_err(|_| ConnectError::BadUrl(format!("bad value for header `{name}`")))?;
            req.headers_mut().insert(name, value);
        }
        if let (TokenPlacement::Header { name, prefix }, Some(t)) = (&config.token, &redact_tok) {
            let name = http::header::HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| ConnectError::BadUrl(format!("bad header name `{name}`")))?;
            let value = format!("{prefix}{}", t.expose()).parse().map_err(|_| {
                ConnectError::BadUrl("the token contains characters not allowed in a header".into())
            })?;
            req.headers_mut().insert(name, value);
        }
        let mut ws_config = WebSocketConfig::default();
        ws_config.max_message_size = Some(TRANSPORT_MAX_MESSAGE);
        ws_config.max_frame_size = Some(TRANSPORT_MAX_MESSAGE);
        let fut = tokio_tungstenite::connect_async_tls_with_config(
            req,
            Some(ws_config),
            true,
            super::tls::ws_connector(),
        );
        let (ws, _resp) = match tokio::time::timeout(CONNECT_TIMEOUT, fut).await {
            Err(_) => return Err(ConnectError::Network("timed out opening the socket".into())),
            Ok(Err(e)) => {
                return Err(map_error(
                    e,
                    &config.unauthorized_status,
                    redact_tok.as_ref(),
                ))
            }
            Ok(Ok(ok)) => ok,
        };
        let mut conn = JsonWsConnection {
            ws,
            redact: redact_tok,
        };
        if let TokenPlacement::FirstMessage { template } = &config.token {
            let tok = conn
                .redact
                .as_ref()
                .map(|t| t.expose().to_owned())
                .unwrap_or_default();
            let text = template.replace("{token}", &json_escape_inner(&tok));
            conn.send_text(text).await.map_err(ConnectError::Network)?;
        }
        Ok(conn)
    }

    /// Wait for the next message.
    pub async fn recv(&mut self) -> Incoming {
        loop {
            let next = self.ws.next().await;
            if let Some(i) = self.classify(next) {
                return i;
            }
        }
    }

    /// The next message if one is already buffered, without waiting.
    pub fn try_recv(&mut self) -> Option<Incoming> {
        loop {
            let next = self.ws.next().now_or_never()?;
            if let Some(i) = self.classify(next) {
                return Some(i);
            }
        }
    }

    fn classify(&self, next: Option<Result<Message, tungstenite::Error>>) -> Option<Incoming> {
        match next {
            None => Some(Incoming::Closed {
                code: None,
                reason: "the connection ended".into(),
            }),
            Some(Err(e)) => Some(Incoming::Closed {
                code: None,
                reason: redact(&e.to_string(), self.redact.as_ref()),
            }),
            Some(Ok(msg)) => match msg {
                Message::Text(t) => Some(Incoming::Text(t.as_str().to_owned())),
                Message::Binary(b) => Some(Incoming::Binary(b.len())),
                Message::Pong(_) => Some(Incoming::Pong),
                Message::Close(frame) => Some(match frame {
                    Some(f) => Incoming::Closed {
                        code: Some(u16::from(f.code)),
                        reason: redact(
                            &format!("closed by the server: {} {}", u16::from(f.code), f.reason),
                            self.redact.as_ref(),
                        ),
                    },
                    None => Incoming::Closed {
                        code: None,
                        reason: "closed by the server".into(),
                    },
                }),
                Message::Ping(_) | Message::Frame(_) => None,
            },
        }
    }

    /// Send a text message.
    pub async fn send_text(&mut self, text: String) -> Result<(), String> {
        let redact_tok = self.redact.clone();
        self.ws
            .send(Message::text(text))
            .await
            .map_err(|e| redact(&e.to_string(), redact_tok.as_ref()))
    }

    /// Send a WebSocket ping (answered by the peer's WebSocket layer).
    pub async fn ping(&mut self) -> Result<(), String> {
        self.ws
            .send(Message::Ping(Vec::new().into()))
            .await
            .map_err(|e| e.to_string())
    }

    /// Close politely (best effort).
    pub async fn close(&mut self) {
        let _ = tokio::time::timeout(std::time::Duration::from_secs(2), self.ws.close(None)).await;
    }
}

/// A failed WebSocket handshake as a [`ConnectError`]: `unauthorized` lists the HTTP
/// statuses that mean the credentials were refused; `token` is redacted from every text.
fn map_error(e: tungstenite::Error, unauthorized: &[u16], token: Option<&Secret>) -> ConnectError {
    match e {
        tungstenite::Error::Http(resp) => {
            let status = resp.status().as_u16();
            // Redact first, then cut: a token across the cut is never half kept.
            let body = resp
                .body()
                .as_ref()
                .map(|b| redact(&String::from_utf8_lossy(b), token))
                .unwrap_or_default();
            let message: String = redact(&error_message(&body), token)
                .chars()
                .take(200)
                .collect();
            if unauthorized.contains(&status) {
                ConnectError::Unauthorized(message)
            } else {
                ConnectError::Refused { status, message }
            }
        }
        // Url errors may quote the URL, which can hold a token: say less.
        tungstenite::Error::Url(u) => ConnectError::BadUrl(redact(&u.to_string(), token)),
        other => ConnectError::Network(redact(&other.to_string(), token)),
    }
}

/// A server's error body as one line: `{"detail": …}`, `{"message": …}`,
/// `{"error": {"message": …}}`, `{"error": "…"}` or the text itself.
fn error_message(body: &str) -> String {
    let Ok(v) = serde_json::from_str::<Value>(body) else {
        return body.trim().to_owned();
    };
    for p in ["/error/message", "/message", "/detail", "/error"] {
        if let Some(Value::String(s)) = v.pointer(p) {
            return s.clone();
        }
    }
    body.trim().to_owned()
}

/// Where the event type, payload and timestamp sit in a server's JSON message.
/// Paths are JSON pointers (`/type`, `/data`, `/meta/ts`); `""` is the whole message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    /// Path of the event type (a string).
    pub type_path: String,
    /// Path of the payload; when absent from a message the payload is `null`.
    pub data_path: String,
    /// Path of a timestamp in ms since the Unix epoch (a number), if the server sends one.
    pub ts_path: Option<String>,
}

impl Default for Envelope {
    fn default() -> Self {
        Envelope {
            type_path: "/type".into(),
            data_path: "/data".into(),
            ts_path: None,
        }
    }
}

/// One decoded server message.
#[derive(Debug, Clone, PartialEq)]
pub struct JsonEvent {
    /// Its type.
    pub event_type: String,
    /// Its payload.
    pub data: Value,
    /// Its timestamp, when the envelope has one as a number of ms.
    pub ts: Option<i64>,
}

/// Why a message could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct EnvelopeError(pub String);

impl Envelope {
    /// Decode one text message.
    pub fn decode(&self, text: &str) -> Result<JsonEvent, EnvelopeError> {
        let v: Value =
            serde_json::from_str(text).map_err(|e| EnvelopeError(format!("not JSON: {e}")))?;
        self.decode_value(v)
    }

    /// Decode an already parsed message.
    pub fn decode_value(&self, mut v: Value) -> Result<JsonEvent, EnvelopeError> {
        if !v.is_object() {
            return Err(EnvelopeError("the message is not a JSON object".into()));
        }
        let event_type = match v.pointer(&self.type_path) {
            Some(Value::String(s)) if !s.is_empty() => s.clone(),
            Some(_) => {
                return Err(EnvelopeError(format!(
                    "`{}` is not a non-empty string",
                    self.type_path
                )))
            }
            None => {
                return Err(EnvelopeError(format!(
                    "no `{}` in the message",
                    self.type_path
                )))
            }
        };
        let ts = self
            .ts_path
            .as_deref()
            .and_then(|p| v.pointer(p))
            .and_then(Value::as_f64)
            .map(|f| f as i64);
        let data = if self.data_path.is_empty() {
            v
        } else {
            v.pointer_mut(&self.data_path)
                .map(Value::take)
                .unwrap_or(Value::Null)
        };
        Ok(JsonEvent {
            event_type,
            data,
            ts,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn socket_urls_follow_the_base_scheme() {
        let b = |s: &str| Url::parse(s).unwrap();
        assert_eq!(
            socket_url(&b("http://h:1"), "/ws").unwrap().as_str(),
            "ws://h:1/ws"
        );
        assert_eq!(
            socket_url(&b("https://h/app/"), "/ws/dashboard?x=1")
                .unwrap()
                .as_str(),
            "wss://h/ws/dashboard?x=1"
        );
        assert!(socket_url(&b("ftp://h"), "/ws").is_err());
    }

    #[test]
    fn tokens_are_redacted_plain_and_url_encoded() {
        let t = Secret::new("a.b+c/d");
        let s = redact("ws://h/ws?token=a.b%2Bc%2Fd failed; a.b+c/d", Some(&t));
        assert!(!s.contains("a.b"), "{s}");
        assert_eq!(redact("x", None), "x");
    }

    #[test]
    fn envelopes_decode_by_path() {
        let env = Envelope {
            type_path: "/type".into(),
            data_path: "/payload".into(),
            ts_path: Some("/ts".into()),
        };
        let e = env
            .decode(r#"{"type":"stats:tasks","payload":{"pending":1},"ts":5}"#)
            .unwrap();
        assert_eq!(e.event_type, "stats:tasks");
        assert_eq!(e.data, json!({"pending": 1}));
        assert_eq!(e.ts, Some(5));
        let e = env.decode(r#"{"type":"connected"}"#).unwrap();
        assert_eq!(e.data, Value::Null);
        assert!(env.decode("nope").unwrap_err().0.contains("not JSON"));
        assert!(env.decode("[1]").is_err());
        assert!(env
            .decode(r#"{"kind":"x"}"#)
            .unwrap_err()
            .0
            .contains("/type"));
        let whole = Envelope {
            data_path: String::new(),
            ..Envelope::default()
        };
        assert_eq!(whole.decode(r#"{"type":"a","x":1}"#).unwrap().data["x"], 1);
    }

    #[test]
    fn error_bodies_become_one_line() {
        assert_eq!(error_message(r#"{"detail":"bad token"}"#), "bad token");
        assert_eq!(error_message(r#"{"error":{"message":"m"}}"#), "m");
        assert_eq!(error_message(" plain \n"), "plain");
    }
}
