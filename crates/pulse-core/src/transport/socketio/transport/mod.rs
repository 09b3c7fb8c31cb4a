//! The two Engine.IO transports behind one [`Link`]: a WebSocket (`ws`), and
//! HTTP long-polling (`polling`: a poller task doing GETs, a writer task doing
//! POSTs). This module holds what both share: the [`Endpoint`], the
//! [`LinkEvent`]s they yield, the handshake's first packet, and how a refusal's
//! body is read.
//!
//! Both yield decoded Engine.IO packets as [`LinkEvent`]s. Nothing here logs a
//! URL (its query may hold the session id or a token) or a header value.

mod polling;
mod ws;

use std::time::Duration;

use url::Url;

use super::engineio::{EioPacket, Handshake};
use super::{DecodeError, QueryToken, SocketIoError, SocketIoOptions, TransportKind};

pub(super) use polling::PollingLink;
pub(super) use ws::{probe_websocket, WsLink};

/// Where the Engine.IO endpoint is, and what goes on every request.
#[derive(Clone)]
pub(super) struct Endpoint {
    base: Url,
    secure: bool,
    path: String,
    query_token: Option<QueryToken>,
    headers: http::HeaderMap,
    connect_timeout: Duration,
}

impl Endpoint {
    pub(super) fn new(opts: &SocketIoOptions) -> Result<Endpoint, SocketIoError> {
        let secure = match opts.base_url.scheme() {
            "http" | "ws" => false,
            "https" | "wss" => true,
            other => {
                return Err(SocketIoError::BadOptions(format!(
                    "unsupported scheme `{other}` (use http://, https://, ws:// or wss://)"
                )))
            }
        };
        if opts.base_url.host_str().is_none() {
            return Err(SocketIoError::BadOptions(
                "the server URL has no host".into(),
            ));
        }
        let mut path = opts.path.trim().to_owned();
        if !path.starts_with('/') {
            path.insert(0, '/');
        }
        if !path.ends_with('/') {
            path.push('/');
        }
        Ok(Endpoint {
            base: opts.base_url.clone(),
            secure,
            path,
            query_token: opts.query_token.clone(),
            headers: opts.headers.clone(),
            connect_timeout: opts.connect_timeout,
        })
    }

    /// The URL for `transport` (with `sid` once the session exists).
    fn url(&self, transport: TransportKind, sid: Option<&str>) -> Result<Url, SocketIoError> {
        let mut url = self.base.clone();
        let scheme = match (transport, self.secure) {
            (TransportKind::WebSocket, false) => "ws",
            (TransportKind::WebSocket, true) => "wss",
            (TransportKind::Polling, false) => "http",
            (TransportKind::Polling, true) => "https",
        };
        url.set_scheme(scheme)
            .map_err(|_| SocketIoError::BadOptions("cannot set the URL scheme".into()))?;
        let _ = url.set_username("");
        let _ = url.set_password(None);
        url.set_fragment(None);
        url.set_path(&self.path);
        url.set_query(None);
        {
            let mut q = url.query_pairs_mut();
            q.append_pair("EIO", "4")
                .append_pair("transport", transport.as_str());
            if let Some(sid) = sid {
                q.append_pair("sid", sid);
            }
            if let Some(t) = &self.query_token {
                q.append_pair(&t.name, t.token.expose());
            }
        }
        Ok(url)
    }
}

/// What a link gives.
#[derive(Debug)]
pub(super) enum LinkEvent {
    /// A packet, or a record that could not be decoded.
    Packet(Result<EioPacket, DecodeError>),
    /// Long-polling only: the poller stopped as asked (upgrade in progress).
    Paused,
    /// The link is gone, with why.
    Closed(String),
}

/// An open Engine.IO transport.
pub(super) enum Link {
    Ws(Box<WsLink>),
    Polling(PollingLink),
}

impl Link {
    pub(super) fn kind(&self) -> TransportKind {
        match self {
            Link::Ws(_) => TransportKind::WebSocket,
            Link::Polling(_) => TransportKind::Polling,
        }
    }

    /// Next packet. Cancel-safe.
    pub(super) async fn recv(&mut self) -> LinkEvent {
        match self {
            Link::Ws(w) => w.recv().await,
            Link::Polling(p) => p.recv().await,
        }
    }

    /// Send packets, in order.
    pub(super) async fn send(&mut self, packets: Vec<EioPacket>) -> Result<(), String> {
        match self {
            Link::Ws(w) => w.send(packets).await,
            Link::Polling(p) => p.send(packets),
        }
    }

    /// Send an Engine.IO close and shut the link (best effort, bounded).
    pub(super) async fn close(self) {
        match self {
            Link::Ws(w) => (*w).close().await,
            Link::Polling(p) => p.close().await,
        }
    }
}

fn open_packet(first: LinkEvent) -> Result<Handshake, SocketIoError> {
    match first {
        LinkEvent::Packet(Ok(EioPacket::Open(json))) => {
            Handshake::parse(&json).map_err(|e| SocketIoError::Protocol(e.to_string()))
        }
        LinkEvent::Packet(Ok(_)) => Err(SocketIoError::Protocol(
            "the first packet is not an Engine.IO open".into(),
        )),
        LinkEvent::Packet(Err(e)) => Err(SocketIoError::Protocol(format!("bad first packet: {e}"))),
        LinkEvent::Paused => Err(SocketIoError::Protocol("no handshake".into())),
        LinkEvent::Closed(why) => Err(SocketIoError::Network(format!(
            "closed before the handshake: {why}"
        ))),
    }
}

/// Undo `Transfer-Encoding: chunked` (tungstenite hands the raw bytes of a
/// refused upgrade's body). `None` when the bytes are not well-formed chunks.
fn dechunk(mut raw: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let line_end = raw.windows(2).position(|w| w == b"\r\n")?;
        let size_text = std::str::from_utf8(&raw[..line_end]).ok()?;
        let size_text = size_text.split(';').next()?.trim();
        let size = usize::from_str_radix(size_text, 16).ok()?;
        raw = &raw[line_end + 2..];
        if size == 0 {
            return Some(out);
        }
        let chunk = raw.get(..size)?;
        out.extend_from_slice(chunk);
        raw = raw.get(size..)?.strip_prefix(b"\r\n")?;
    }
}

/// The `message` of an engine.io error body (`{"code":0,"message":"Transport unknown"}`),
/// else an excerpt of the body.
fn body_message(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    if let Ok(v) = serde_json::from_str::<serde_json::Value>(&text) {
        for key in ["message", "error"] {
            match v.get(key) {
                Some(serde_json::Value::String(s)) => return s.clone(),
                Some(serde_json::Value::Object(o)) => {
                    if let Some(s) = o.get("message").and_then(|m| m.as_str()) {
                        return s.to_owned();
                    }
                }
                _ => {}
            }
        }
    }
    text.chars().take(200).collect()
}

fn http_refusal(transport: TransportKind, status: u16, message: String) -> SocketIoError {
    if status == 401 || status == 403 {
        let message = if message.is_empty() {
            format!("HTTP {status}")
        } else {
            message
        };
        SocketIoError::Unauthorized {
            message,
            data: None,
        }
    } else {
        SocketIoError::UpgradeRefused {
            transport,
            status,
            message,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ep(base: &str, path: &str) -> Endpoint {
        let mut o = SocketIoOptions::new(base.parse().unwrap());
        o.path = path.into();
        Endpoint::new(&o).unwrap()
    }

    #[test]
    fn urls() {
        let e = ep("http://127.0.0.1:3000/ignored?x=1#f", "/socket.io/");
        assert_eq!(
            e.url(TransportKind::WebSocket, None).unwrap().as_str(),
            "ws://127.0.0.1:3000/socket.io/?EIO=4&transport=websocket"
        );
        assert_eq!(
            e.url(TransportKind::Polling, Some("ab+c"))
                .unwrap()
                .as_str(),
            "http://127.0.0.1:3000/socket.io/?EIO=4&transport=polling&sid=ab%2Bc"
        );
        let e = ep("wss://u:p@h.example", "api/sio");
        assert_eq!(
            e.url(TransportKind::Polling, None).unwrap().as_str(),
            "https://h.example/api/sio/?EIO=4&transport=polling"
        );
        assert_eq!(
            e.url(TransportKind::WebSocket, None).unwrap().as_str(),
            "wss://h.example/api/sio/?EIO=4&transport=websocket"
        );
        let mut o = SocketIoOptions::new("https://[::1]:8443".parse().unwrap());
        o.query_token = Some(QueryToken {
            name: "token".into(),
            token: crate::auth::Secret::new("t k"),
        });
        let e = Endpoint::new(&o).unwrap();
        assert_eq!(
            e.url(TransportKind::WebSocket, None).unwrap().as_str(),
            "wss://[::1]:8443/socket.io/?EIO=4&transport=websocket&token=t+k"
        );
        let o = SocketIoOptions::new("ftp://h".parse().unwrap());
        assert!(matches!(
            Endpoint::new(&o),
            Err(SocketIoError::BadOptions(_))
        ));
    }

    #[test]
    fn refusals() {
        assert_eq!(
            body_message(br#"{"code":0,"message":"Transport unknown"}"#),
            "Transport unknown"
        );
        assert_eq!(body_message(br#"{"error":{"message":"nope"}}"#), "nope");
        assert_eq!(body_message(b"plain"), "plain");
        assert_eq!(
            dechunk(b"28\r\n{\"code\":0,\"message\":\"Transport unknown\"}\r\n0\r\n\r\n")
                .as_deref(),
            Some(&br#"{"code":0,"message":"Transport unknown"}"#[..])
        );
        assert_eq!(dechunk(b"3\r\nab").as_deref(), None);
        assert_eq!(dechunk(b"zz\r\n").as_deref(), None);
        assert_eq!(dechunk(b"ffffffffffffffffff\r\n").as_deref(), None);
        assert_eq!(dechunk(b"").as_deref(), None);
        assert!(matches!(
            http_refusal(TransportKind::WebSocket, 400, "Transport unknown".into()),
            SocketIoError::UpgradeRefused { status: 400, .. }
        ));
        assert!(http_refusal(TransportKind::Polling, 401, String::new()).is_auth_failure());
        assert!(http_refusal(TransportKind::WebSocket, 403, "x".into()).is_auth_failure());
    }
}
