//! The HTTP long-polling transport: a poller task (GET, one at a time) and a
//! writer task (POST, as many packets per body as `maxPayload` allows), both
//! feeding the link's [`LinkEvent`]s, one response body at a time.
//!
//! Invariants: a response body is read up to [`TRANSPORT_MAX_MESSAGE`] bytes,
//! never more; the next GET starts only once the previous body's packets are
//! handed to the link (a channel of one body), so a reader that stops reading
//! stops the polling too and the link holds at most two bodies; packets are
//! POSTed in the order sent; dropping the link aborts both tasks; errors are
//! reported without the request's URL.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use url::Url;

use super::super::engineio::{decode_payload, encode_payload, EioPacket, Handshake};
use super::super::{DecodeError, SocketIoError, TransportKind};
use super::{body_message, http_refusal, open_packet, Endpoint, LinkEvent};
use crate::rest::without_url;
use crate::transport::{ensure_crypto_provider, TRANSPORT_MAX_MESSAGE};

/// A response body as text, at most [`TRANSPORT_MAX_MESSAGE`] bytes (the
/// WebSocket's limit): a server cannot make the client buffer without bound.
async fn read_body(resp: reqwest::Response) -> Result<String, String> {
    let buf = crate::rest::read_limited(resp, TRANSPORT_MAX_MESSAGE).await?;
    // Engine.IO bodies are UTF-8 text; a bad byte spoils only its record.
    Ok(match String::from_utf8(buf) {
        Ok(s) => s,
        Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
    })
}

/// HTTP long-polling: a poller task (GET) and a writer task (POST).
pub(in crate::transport::socketio) struct PollingLink {
    /// One response body's events at a time (or a closing event).
    events: mpsc::Receiver<Vec<LinkEvent>>,
    /// The events of the body being read.
    current: VecDeque<LinkEvent>,
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
    pub(in crate::transport::socketio) async fn handshake(
        ep: &Endpoint,
    ) -> Result<(PollingLink, Handshake), SocketIoError> {
        ensure_crypto_provider();
        let http = crate::transport::tls::reqwest_tls(reqwest::Client::builder().use_rustls_tls())
            .redirect(reqwest::redirect::Policy::none())
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
        let (events_tx, events) = mpsc::channel(1);
        let current = packets.map(LinkEvent::Packet).collect();
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
                current,
                writes,
                paused,
                poller,
                writer,
            },
            hs,
        ))
    }

    /// The next event. Cancel-safe: a body taken from the channel is stored
    /// before anything else is awaited.
    pub(super) async fn recv(&mut self) -> LinkEvent {
        loop {
            if let Some(ev) = self.current.pop_front() {
                return ev;
            }
            match self.events.recv().await {
                Some(body) => self.current.extend(body),
                None => return LinkEvent::Closed("long-polling tasks ended".into()),
            }
        }
    }

    pub(super) fn send(&mut self, packets: Vec<EioPacket>) -> Result<(), String> {
        self.writes
            .send(WriterCmd::Send(packets))
            .map_err(|_| "the long-polling writer has stopped".to_string())
    }

    /// Stop polling after the GET in flight (a [`LinkEvent::Paused`] follows).
    pub(in crate::transport::socketio) fn pause(&self) {
        self.paused.store(true, Ordering::SeqCst);
    }

    /// Wait until every packet sent so far has been POSTed.
    pub(in crate::transport::socketio) async fn flush(&self) -> Result<(), String> {
        let (tx, rx) = oneshot::channel();
        self.writes
            .send(WriterCmd::Flush(tx))
            .map_err(|_| "the long-polling writer has stopped".to_string())?;
        rx.await
            .map_err(|_| "the long-polling writer has stopped".to_string())
    }

    pub(super) async fn close(self) {
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
    events: mpsc::Sender<Vec<LinkEvent>>,
    paused: Arc<AtomicBool>,
) {
    loop {
        if paused.load(Ordering::SeqCst) {
            let _ = events.send(vec![LinkEvent::Paused]).await;
            return;
        }
        let resp = match http.get(url.clone()).timeout(timeout).send().await {
            Ok(r) => r,
            Err(e) => {
                let why = format!("poll failed: {}", without_url(&e));
                let _ = events.send(vec![LinkEvent::Closed(why)]).await;
                return;
            }
        };
        let status = resp.status().as_u16();
        let body = match read_body(resp).await {
            Ok(b) => b,
            Err(why) => {
                let why = format!("poll failed: {why}");
                let _ = events.send(vec![LinkEvent::Closed(why)]).await;
                return;
            }
        };
        if status != 200 {
            let why = format!(
                "poll answered HTTP {status}: {}",
                body_message(body.as_bytes())
            );
            let _ = events.send(vec![LinkEvent::Closed(why)]).await;
            return;
        }
        let packets = decode_payload(&body);
        drop(body);
        let closed = packets.iter().any(|p| matches!(p, Ok(EioPacket::Close)));
        let batch = packets.into_iter().map(LinkEvent::Packet).collect();
        // Waits while the link still holds the previous body: no GET meanwhile.
        if events.send(batch).await.is_err() || closed {
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
    events: mpsc::Sender<Vec<LinkEvent>>,
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
                    let body = crate::rest::read_prefix(resp, crate::rest::MAX_ERROR_BODY).await;
                    Some(format!(
                        "send answered HTTP {status}: {}",
                        body_message(&body)
                    ))
                }
                Ok(_) => None,
            };
            if let Some(why) = failure {
                let _ = events.send(vec![LinkEvent::Closed(why)]).await;
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
