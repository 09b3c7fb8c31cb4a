//! The two Engine.IO transports behind one [`Link`]: a WebSocket, and HTTP
//! long-polling (a poller task doing GETs, a writer task doing POSTs).
//!
//! Both yield decoded Engine.IO packets as [`LinkEvent`]s. Nothing here logs a
//! URL (its query may hold the session id or a token) or a header value.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use url::Url;

use super::engineio::{decode_payload, encode_payload, EioPacket, Handshake};
use super::{DecodeError, QueryToken, SocketIoError, SocketIoOptions, TransportKind};
use crate::rest::without_url;
use crate::transport::{ensure_crypto_provider, TRANSPORT_MAX_MESSAGE};

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

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// A WebSocket transport.
pub(super) struct WsLink {
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
        let fut = tokio_tungstenite::connect_async_with_config(req, Some(config), true);
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
    pub(super) async fn handshake(ep: &Endpoint) -> Result<(WsLink, Handshake), SocketIoError> {
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

    pub(super) async fn send(&mut self, packets: Vec<EioPacket>) -> Result<(), String> {
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

    async fn close(mut self) {
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

/// A response body as text, at most [`TRANSPORT_MAX_MESSAGE`] bytes (the
/// WebSocket's limit): a server cannot make the client buffer without bound.
async fn read_body(mut resp: reqwest::Response) -> Result<String, String> {
    if resp
        .content_length()
        .is_some_and(|n| n > TRANSPORT_MAX_MESSAGE as u64)
    {
        return Err(format!("response body over {TRANSPORT_MAX_MESSAGE} bytes"));
    }
    let mut buf = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(|e| without_url(&e))? {
        if buf.len() + chunk.len() > TRANSPORT_MAX_MESSAGE {
            return Err(format!("response body over {TRANSPORT_MAX_MESSAGE} bytes"));
        }
        buf.extend_from_slice(&chunk);
    }
    // Engine.IO bodies are UTF-8 text; a bad byte spoils only its record.
    Ok(match String::from_utf8(buf) {
        Ok(s) => s,
        Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
    })
}

/// HTTP long-polling: a poller task (GET) and a writer task (POST).
pub(super) struct PollingLink {
    events: mpsc::UnboundedReceiver<LinkEvent>,
    writes: mpsc::UnboundedSender<WriterCmd>,
    paused: Arc<AtomicBool>,
    poller: JoinHandle<()>,
    writer: JoinHandle<()>,
}

enum WriterCmd {
    Send(Vec<EioPacket>),
    Flush(oneshot::Sender<()>),
}

impl Drop for PollingLink {
    fn drop(&mut self) {
        self.poller.abort();
        self.writer.abort();
    }
}

impl PollingLink {
    /// Open a new session over long-polling: the link, the handshake, and any
    /// packets that came in the same body after `open`.
    pub(super) async fn handshake(
        ep: &Endpoint,
    ) -> Result<(PollingLink, Handshake), SocketIoError> {
        ensure_crypto_provider();
        let http = reqwest::Client::builder()
            .use_rustls_tls()
            .default_headers(ep.headers.clone())
            .connect_timeout(ep.connect_timeout)
            .tcp_nodelay(true)
            .build()
            .map_err(|e| SocketIoError::Network(without_url(&e)))?;
        let url = ep.url(TransportKind::Polling, None)?;
        let resp = http
            .get(url)
            .timeout(ep.connect_timeout)
            .send()
            .await
            .map_err(|e| SocketIoError::Network(without_url(&e)))?;
        let status = resp.status().as_u16();
        let body = read_body(resp).await.map_err(SocketIoError::Network)?;
        if status != 200 {
            return Err(http_refusal(
                TransportKind::Polling,
                status,
                body_message(body.as_bytes()),
            ));
        }
        let mut packets = decode_payload(&body).into_iter();
        let hs = open_packet(LinkEvent::Packet(
            packets.next().unwrap_or(Err(DecodeError::Empty)),
        ))?;
        let (events_tx, events) = mpsc::unbounded_channel();
        for p in packets {
            let _ = events_tx.send(LinkEvent::Packet(p));
        }
        let poll_url = ep.url(TransportKind::Polling, Some(&hs.sid))?;
        let paused = Arc::new(AtomicBool::new(false));
        let (writes, writes_rx) = mpsc::unbounded_channel();
        let poller = tokio::spawn(poll_loop(
            http.clone(),
            poll_url.clone(),
            hs.dead_after().saturating_add(ep.connect_timeout),
            events_tx.clone(),
            paused.clone(),
        ));
        let writer = tokio::spawn(write_loop(
            http,
            poll_url,
            ep.connect_timeout.max(Duration::from_secs(5)),
            usize::try_from(hs.max_payload).unwrap_or(usize::MAX).max(1),
            writes_rx,
            events_tx,
        ));
        Ok((
            PollingLink {
                events,
                writes,
                paused,
                poller,
                writer,
            },
            hs,
        ))
    }

    async fn recv(&mut self) -> LinkEvent {
        self.events
            .recv()
            .await
            .unwrap_or_else(|| LinkEvent::Closed("long-polling tasks ended".into()))
    }

    fn send(&mut self, packets: Vec<EioPacket>) -> Result<(), String> {
        self.writes
            .send(WriterCmd::Send(packets))
            .map_err(|_| "the long-polling writer has stopped".to_string())
    }

    /// Stop polling after the GET in flight (a [`LinkEvent::Paused`] follows).
    pub(super) fn pause(&self) {
        self.paused.store(true, Ordering::SeqCst);
    }

    /// Wait until every packet sent so far has been POSTed.
    pub(super) async fn flush(&self) -> Result<(), String> {
        let (tx, rx) = oneshot::channel();
        self.writes
            .send(WriterCmd::Flush(tx))
            .map_err(|_| "the long-polling writer has stopped".to_string())?;
        rx.await
            .map_err(|_| "the long-polling writer has stopped".to_string())
    }

    async fn close(self) {
        let _ = self.send_close().await;
    }

    async fn send_close(&self) -> Result<(), String> {
        self.writes
            .send(WriterCmd::Send(vec![EioPacket::Close]))
            .map_err(|_| String::new())?;
        tokio::time::timeout(Duration::from_secs(2), self.flush())
            .await
            .map_err(|_| String::new())?
    }
}

async fn poll_loop(
    http: reqwest::Client,
    url: Url,
    timeout: Duration,
    events: mpsc::UnboundedSender<LinkEvent>,
    paused: Arc<AtomicBool>,
) {
    loop {
        if paused.load(Ordering::SeqCst) {
            let _ = events.send(LinkEvent::Paused);
            return;
        }
        let resp = match http.get(url.clone()).timeout(timeout).send().await {
            Ok(r) => r,
            Err(e) => {
                let _ = events.send(LinkEvent::Closed(format!(
                    "poll failed: {}",
                    without_url(&e)
                )));
                return;
            }
        };
        let status = resp.status().as_u16();
        let body = match read_body(resp).await {
            Ok(b) => b,
            Err(why) => {
                let _ = events.send(LinkEvent::Closed(format!("poll failed: {why}")));
                return;
            }
        };
        if status != 200 {
            let _ = events.send(LinkEvent::Closed(format!(
                "poll answered HTTP {status}: {}",
                body_message(body.as_bytes())
            )));
            return;
        }
        let mut closed = false;
        for p in decode_payload(&body) {
            closed |= matches!(p, Ok(EioPacket::Close));
            if events.send(LinkEvent::Packet(p)).is_err() {
                return;
            }
        }
        if closed {
            return;
        }
    }
}

async fn write_loop(
    http: reqwest::Client,
    url: Url,
    timeout: Duration,
    max_payload: usize,
    mut cmds: mpsc::UnboundedReceiver<WriterCmd>,
    events: mpsc::UnboundedSender<LinkEvent>,
) {
    let mut queue: Vec<EioPacket> = Vec::new();
    let mut flushes: Vec<oneshot::Sender<()>> = Vec::new();
    while let Some(cmd) = cmds.recv().await {
        let mut next = Some(cmd);
        // Take everything already queued: one POST carries as much as allowed.
        while let Some(cmd) = next.take().or_else(|| cmds.try_recv().ok()) {
            match cmd {
                WriterCmd::Send(ps) => queue.extend(ps),
                WriterCmd::Flush(tx) => flushes.push(tx),
            }
        }
        let mut start = 0;
        while start < queue.len() {
            // One body: packets while they fit in maxPayload (always at least one).
            let mut size = 0;
            let mut end = start;
            while end < queue.len() {
                let len = queue[end].encode_polling().len() + 1;
                if end > start && size + len > max_payload {
                    break;
                }
                size += len;
                end += 1;
            }
            let body = encode_payload(&queue[start..end]);
            let r = http
                .post(url.clone())
                .timeout(timeout)
                .header(http::header::CONTENT_TYPE, "text/plain;charset=UTF-8")
                .body(body)
                .send()
                .await;
            let failure = match r {
                Err(e) => Some(format!("send failed: {}", without_url(&e))),
                Ok(resp) if !resp.status().is_success() => {
                    let status = resp.status().as_u16();
                    let body = resp.bytes().await.unwrap_or_default();
                    Some(format!(
                        "send answered HTTP {status}: {}",
                        body_message(&body)
                    ))
                }
                Ok(_) => None,
            };
            if let Some(why) = failure {
                let _ = events.send(LinkEvent::Closed(why));
                return;
            }
            start = end;
        }
        queue.clear();
        for tx in flushes.drain(..) {
            let _ = tx.send(());
        }
    }
}

/// Probe a WebSocket for an existing long-polling session (`2probe` →
/// `3probe`). The caller then pauses polling and sends `5` on the returned link.
pub(super) async fn probe_websocket(ep: &Endpoint, sid: &str) -> Result<WsLink, SocketIoError> {
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
