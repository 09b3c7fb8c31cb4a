//! Session actor against raw test servers on port 0 that speak the native protocol
//! badly on purpose: garbage between good frames, gaps, silence.

use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use pulse_core::auth::{Secret, StaticToken};
use pulse_core::session::{ConnectionState, Nudge, SessionConfig, SessionHandle, SessionStatus};
use pulse_core::store::{MemoryStore, StoreHandle};
use pulse_protocol::domain::EntityKind;
use pulse_protocol::frame::{ClientFrame, EventFrame, Hello, ServerFrame, Subscribed};
use serde_json::json;
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;

use crate::common::until_within;

type Ws = tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>;

fn event(seq: u64, ty: &str, data: serde_json::Value) -> String {
    EventFrame {
        user: None,
        seq,
        id: format!("e{seq}"),
        stream: "acme".into(),
        event_type: ty.into(),
        ts: 1_000 + seq as i64,
        data,
    }
    .encode()
}

fn hello(ping_ms: u64) -> String {
    ServerFrame::Hello(Hello {
        version: 1,
        tenant: "acme".into(),
        ping_interval_ms: ping_ms,
        ping_timeout_ms: ping_ms,
        server: "raw-test".into(),
    })
    .encode()
}

fn subscribed(head: u64) -> String {
    ServerFrame::Subscribed(Subscribed {
        stream: "acme".into(),
        epoch: "e1".into(),
        head,
        recovered: true,
        reason: None,
    })
    .encode()
}

/// Accept connections; hand each (with the client's subscribe) to the test.
async fn server() -> (String, mpsc::Receiver<(Ws, ClientFrame)>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (tx, rx) = mpsc::channel(8);
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let tx = tx.clone();
            tokio::spawn(async move {
                let mut ws = tokio_tungstenite::accept_async(tcp).await.unwrap();
                ws.send(Message::text(hello(60_000))).await.unwrap();
                while let Some(Ok(msg)) = ws.next().await {
                    if let Message::Text(t) = msg {
                        let sub = ClientFrame::decode(t.as_str()).unwrap();
                        let _ = tx.send((ws, sub)).await;
                        return;
                    }
                }
            });
        }
    });
    (url, rx)
}

/// [`server`] whose listener can be killed: then it refuses connections.
async fn killable_server() -> (
    String,
    mpsc::Receiver<(Ws, ClientFrame)>,
    tokio::task::JoinHandle<()>,
) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (tx, rx) = mpsc::channel(8);
    let task = tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let tx = tx.clone();
            tokio::spawn(async move {
                let mut ws = tokio_tungstenite::accept_async(tcp).await.unwrap();
                ws.send(Message::text(hello(60_000))).await.unwrap();
                while let Some(Ok(msg)) = ws.next().await {
                    if let Message::Text(t) = msg {
                        let sub = ClientFrame::decode(t.as_str()).unwrap();
                        let _ = tx.send((ws, sub)).await;
                        return;
                    }
                }
            });
        }
    });
    (url, rx, task)
}

fn session(url: &str) -> SessionHandle {
    let mut config = SessionConfig::new(url.parse().unwrap());
    config.backoff.base = Duration::from_millis(50);
    config.backoff.floor = Duration::from_millis(10);
    SessionHandle::spawn(
        config,
        Arc::new(StaticToken::new(Secret::new("t"))),
        StoreHandle::new(MemoryStore::new()),
    )
    .unwrap()
}

async fn until(
    handle: &SessionHandle,
    what: &str,
    cond: impl Fn(&SessionStatus) -> bool,
) -> SessionStatus {
    until_within(Duration::from_secs(20), handle, what, cond).await
}

fn seq(s: &SessionStatus) -> u64 {
    s.cursor.as_ref().map(|c| c.seq).unwrap_or(0)
}

#[tokio::test]
async fn garbage_between_good_frames_is_counted_and_the_connection_stays() {
    let (url, mut conns) = server().await;
    let handle = session(&url);
    let (mut ws, sub) = conns.recv().await.unwrap();
    assert_eq!(
        sub,
        ClientFrame::Subscribe {
            stream: Some("acme".into()),
            since: None,
            epoch: None
        }
    );
    ws.send(Message::text(subscribed(0))).await.unwrap();
    let frames = vec![
        Message::text(event(
            1,
            "approval.created",
            json!({"id": "a1", "title": "ok"}),
        )),
        Message::text("not json at all"),
        Message::text(event(
            2,
            "agent.upserted",
            json!({"id": "g1", "status": "idle"}),
        )),
        Message::binary(vec![0u8, 1, 2, 3]),
        Message::text(r#"{"type":"approval.created","id":"x","stream":"acme","ts":1,"data":{}}"#),
        Message::text(format!(
            r#"{{"type":"ping","pad":"{}"}}"#,
            "x".repeat(2 << 20)
        )),
        Message::text(event(3, "robot.danced", json!({"id": "r"}))),
        Message::text(event(
            4,
            "approval.decided",
            json!({"id": "a1", "decision": 5}),
        )),
        Message::text(
            r#"{"type":"ticket.created","seq":"five","id":"e5","stream":"acme","ts":1,"data":{"id":"t"}}"#,
        ),
        Message::text(event(
            5,
            "ticket.created",
            json!({"id": "t1", "title": "kept", "custom": {"x": 1}}),
        )),
        Message::text(ServerFrame::Ping { ts: 42 }.encode()),
    ];
    for f in frames {
        ws.send(f).await.unwrap();
    }
    let st = until(&handle, "seq 5", |s| seq(s) == 5).await;
    assert_eq!(st.state, ConnectionState::Live);
    assert_eq!(st.counters.connections, 1, "the connection stayed up");
    assert_eq!(st.counters.decode_errors, 5, "{:?}", st.counters);
    assert_eq!(
        st.counters.rejected_events, 2,
        "unknown type and wrong field type"
    );
    // The client answered the ping.
    let pong = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            if let Some(Ok(Message::Text(t))) = ws.next().await {
                if let Ok(f @ ClientFrame::Pong { .. }) = ClientFrame::decode(t.as_str()) {
                    return f;
                }
            }
        }
    })
    .await
    .unwrap();
    assert_eq!(pong, ClientFrame::Pong { ts: 42 });
    {
        let store = handle.store();
        assert_eq!(
            store.get(EntityKind::Approval, "a1").unwrap().unwrap().data["status"],
            "pending",
            "bad decision not applied"
        );
        let t = store.get(EntityKind::Ticket, "t1").unwrap().unwrap();
        assert_eq!(t.data["custom"]["x"], 1, "unknown fields kept");
        assert!(store.get(EntityKind::Agent, "g1").unwrap().is_some());
    }
    handle.stop().await;
    assert_eq!(handle.status().borrow().state, ConnectionState::Stopped);
}

#[tokio::test]
async fn a_gap_forces_a_resubscribe_from_the_stored_cursor() {
    let (url, mut conns) = server().await;
    let handle = session(&url);
    let (mut ws, _) = conns.recv().await.unwrap();
    ws.send(Message::text(subscribed(0))).await.unwrap();
    ws.send(Message::text(event(
        1,
        "ticket.created",
        json!({"id": "t1"}),
    )))
    .await
    .unwrap();
    ws.send(Message::text(event(
        3,
        "ticket.created",
        json!({"id": "t3"}),
    )))
    .await
    .unwrap();
    // The client reconnects and asks to resume after seq 1 of epoch e1.
    let (mut ws2, sub) = conns.recv().await.unwrap();
    assert_eq!(
        sub,
        ClientFrame::Subscribe {
            stream: Some("acme".into()),
            since: Some(1),
            epoch: Some("e1".into())
        }
    );
    ws2.send(Message::text(subscribed(3))).await.unwrap();
    for s in 2..=3 {
        ws2.send(Message::text(event(
            s,
            "ticket.created",
            json!({"id": format!("t{s}")}),
        )))
        .await
        .unwrap();
    }
    let st = until(&handle, "seq 3", |s| seq(s) == 3).await;
    assert_eq!(st.counters.gaps, 1);
    assert_eq!(handle.store().list(EntityKind::Ticket).unwrap().len(), 3);
    drop(ws);
    handle.stop().await;
}

/// A server whose stream has a gap on every connection: the first resync is at
/// once, the ones after it back off (no tight loop). Counted, not timed: by the
/// time the session shows its third backoff wait, the server has seen at most
/// one connection per wait plus the first two.
#[tokio::test]
async fn a_server_that_gaps_on_every_connection_is_retried_with_backoff() {
    let (url, mut conns) = server().await;
    let accepted = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let count = accepted.clone();
    tokio::spawn(async move {
        let mut open = Vec::new();
        while let Some((mut ws, sub)) = conns.recv().await {
            count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let since = match sub {
                ClientFrame::Subscribe { since, .. } => since.unwrap_or(0),
                _ => 0,
            };
            let _ = ws.send(Message::text(subscribed(since + 2))).await;
            let _ = ws
                .send(Message::text(event(
                    since + 2,
                    "ticket.created",
                    json!({"id": "t"}),
                )))
                .await;
            open.push(ws);
        }
    });
    let mut config = SessionConfig::new(url.parse().unwrap());
    config.backoff.base = Duration::from_millis(200);
    config.backoff.floor = Duration::from_millis(50);
    let handle = SessionHandle::spawn(
        config,
        Arc::new(StaticToken::new(Secret::new("t"))),
        StoreHandle::new(MemoryStore::new()),
    )
    .unwrap();
    let st = until(&handle, "the third backoff wait after gaps", |s| {
        matches!(&s.state, ConnectionState::Reconnecting { attempt, error, .. }
            if *attempt >= 3 && error.contains("gap"))
    })
    .await;
    let n = accepted.load(std::sync::atomic::Ordering::SeqCst);
    let ConnectionState::Reconnecting { attempt, .. } = st.state else {
        unreachable!()
    };
    assert!(
        n <= u64::from(attempt) + 2,
        "{n} connections by backoff wait {attempt}: resyncs were not backed off"
    );
    assert!(st.counters.gaps >= 3, "{:?}", st.counters);
    handle.stop().await;
}

/// A server that answers the upgrade and then says nothing (no hello): the
/// handshake timeout ends the attempt, and the next one is made.
#[tokio::test]
async fn a_handshake_that_never_comes_times_out_and_is_retried() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (tx, mut accepted) = mpsc::channel::<Ws>(8);
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let ws = tokio_tungstenite::accept_async(tcp).await.unwrap();
            // No hello, no close: the socket is kept open and silent.
            tx.send(ws).await.unwrap();
        }
    });
    let mut config = SessionConfig::new(url.parse().unwrap());
    config.handshake_timeout = Duration::from_millis(300);
    config.backoff.base = Duration::from_millis(50);
    config.backoff.floor = Duration::from_millis(10);
    let handle = SessionHandle::spawn(
        config,
        Arc::new(StaticToken::new(Secret::new("t"))),
        StoreHandle::new(MemoryStore::new()),
    )
    .unwrap();
    let _first = accepted.recv().await.unwrap();
    let st = until(&handle, "the handshake given up", |s| {
        matches!(&s.state, ConnectionState::Reconnecting { error, .. }
            if error.contains("handshake"))
    })
    .await;
    assert!(matches!(st.state, ConnectionState::Reconnecting { .. }));
    let _second = tokio::time::timeout(Duration::from_secs(20), accepted.recv())
        .await
        .expect("a second attempt after the handshake timeout")
        .unwrap();
    handle.stop().await;
}

/// Messages up to the transport's documented 16 MiB arrive whole: one just
/// under it (over the protocol's 1 MiB frame limit) is counted and skipped with
/// the connection kept; one over it closes the link with a clear reason and the
/// client reconnects and resumes from its cursor.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_up_to_16_mib_are_read_and_larger_ones_end_the_link_clearly() {
    use pulse_core::transport::TRANSPORT_MAX_MESSAGE;
    let (url, mut conns) = server().await;
    let handle = session(&url);
    let (mut ws, _) = conns.recv().await.unwrap();
    ws.send(Message::text(subscribed(0))).await.unwrap();
    ws.send(Message::text(event(
        1,
        "ticket.created",
        json!({"id": "t1"}),
    )))
    .await
    .unwrap();
    let pad = |total: usize| {
        let shell = r#"{"type":"ping","pad":""}"#.len();
        format!(r#"{{"type":"ping","pad":"{}"}}"#, "x".repeat(total - shell))
    };
    ws.send(Message::text(pad(TRANSPORT_MAX_MESSAGE - 16)))
        .await
        .unwrap();
    ws.send(Message::text(event(
        2,
        "ticket.created",
        json!({"id": "t2"}),
    )))
    .await
    .unwrap();
    let st = until(&handle, "seq 2 after a 16 MiB message", |s| seq(s) == 2).await;
    assert_eq!(st.counters.decode_errors, 1, "{:?}", st.counters);
    assert_eq!(st.counters.connections, 1, "the connection stayed up");

    // Over 16 MiB: the link ends, the client comes back asking after seq 2.
    let _ = ws
        .send(Message::text(pad(TRANSPORT_MAX_MESSAGE + 1024)))
        .await;
    let (mut ws2, sub) = tokio::time::timeout(Duration::from_secs(30), conns.recv())
        .await
        .expect("a reconnect after the oversized message")
        .unwrap();
    assert_eq!(
        sub,
        ClientFrame::Subscribe {
            stream: Some("acme".into()),
            since: Some(2),
            epoch: Some("e1".into())
        }
    );
    ws2.send(Message::text(subscribed(3))).await.unwrap();
    ws2.send(Message::text(event(
        3,
        "ticket.created",
        json!({"id": "t3"}),
    )))
    .await
    .unwrap();
    let st = until(&handle, "seq 3 after the reconnect", |s| seq(s) == 3).await;
    assert_eq!(st.counters.connections, 2);
    assert_eq!(handle.store().list(EntityKind::Ticket).unwrap().len(), 3);
    drop(ws);
    handle.stop().await;
}

/// Live events buffered while a snapshot downloads are bounded in bytes: a
/// server whose snapshot never comes while it streams more than
/// `MAX_BUFFERED_DURING_SNAPSHOT` of events gets the link closed and a fresh
/// attempt; nothing half-buffered is applied.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_buffered_during_a_snapshot_are_bounded_in_bytes() {
    use pulse_core::session::MAX_BUFFERED_DURING_SNAPSHOT;
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (tx, mut subs) = mpsc::channel::<ClientFrame>(8);
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((tcp, _)) = listener.accept().await {
            let mut peek = [0u8; 2048];
            let n = tcp.peek(&mut peek).await.unwrap_or(0);
            let head = String::from_utf8_lossy(&peek[..n]).to_ascii_lowercase();
            if !head.contains("upgrade: websocket") {
                // The snapshot request: never answered.
                held.push(tcp);
                continue;
            }
            let tx = tx.clone();
            tokio::spawn(async move {
                let mut ws = tokio_tungstenite::accept_async(tcp).await.unwrap();
                ws.send(Message::text(hello(60_000))).await.unwrap();
                let sub = loop {
                    if let Some(Ok(Message::Text(t))) = ws.next().await {
                        break ClientFrame::decode(t.as_str()).unwrap();
                    }
                };
                let _ = tx.send(sub).await;
                let _ = ws
                    .send(Message::text(
                        ServerFrame::Subscribed(Subscribed {
                            stream: "acme".into(),
                            epoch: "e1".into(),
                            head: 0,
                            recovered: false,
                            reason: Some("no_cursor".into()),
                        })
                        .encode(),
                    ))
                    .await;
                let pad = "x".repeat(900_000);
                let mut sent = 0usize;
                let mut seq = 1;
                while sent <= MAX_BUFFERED_DURING_SNAPSHOT + (4 << 20) {
                    let text = event(
                        seq,
                        "ticket.created",
                        json!({"id": format!("t{seq}"), "pad": pad}),
                    );
                    sent += text.len();
                    seq += 1;
                    if ws.send(Message::text(text)).await.is_err() {
                        return;
                    }
                }
                // Keep the link open: only the client's bound may end it.
                while ws.next().await.is_some() {}
            });
        }
    });
    let handle = session(&url);
    let first = subs.recv().await.unwrap();
    assert!(matches!(first, ClientFrame::Subscribe { since: None, .. }));
    let again = tokio::time::timeout(Duration::from_secs(60), subs.recv())
        .await
        .expect("the client closed the link at its bound and tried again")
        .unwrap();
    assert!(
        matches!(again, ClientFrame::Subscribe { since: None, .. }),
        "{again:?}"
    );
    assert!(
        handle.store().list(EntityKind::Ticket).unwrap().is_empty(),
        "nothing buffered was applied without its snapshot"
    );
    handle.stop().await;
}

/// Events addressed to another user arrive as `pulse.skipped` placeholders: the
/// cursor passes them, nothing is applied, and no gap or resync follows, even when
/// the stream ends on one.
#[tokio::test]
async fn skipped_placeholders_advance_the_cursor_without_a_resync() {
    let (url, mut conns) = server().await;
    let handle = session(&url);
    let (mut ws, _) = conns.recv().await.unwrap();
    ws.send(Message::text(subscribed(0))).await.unwrap();
    let other_users = EventFrame {
        user: Some("bob".into()),
        seq: 2,
        id: "e2".into(),
        stream: "acme".into(),
        event_type: "approval.created".into(),
        ts: 1_002,
        data: json!({"id": "ap-bob"}),
    };
    let frames = [
        event(1, "ticket.created", json!({"id": "t1"})),
        other_users.skipped().encode(),
        EventFrame {
            seq: 3,
            ..other_users.clone()
        }
        .skipped()
        .encode(),
        event(4, "ticket.created", json!({"id": "t4"})),
        EventFrame {
            seq: 5,
            ..other_users
        }
        .skipped()
        .encode(),
    ];
    for f in frames {
        ws.send(Message::text(f)).await.unwrap();
    }
    let st = until(&handle, "seq 5", |s| seq(s) == 5).await;
    assert_eq!(st.state, ConnectionState::Live);
    assert_eq!(
        (
            st.counters.gaps,
            st.counters.rejected_events,
            st.counters.connections
        ),
        (0, 0, 1),
        "no gap, nothing rejected, no second connection"
    );
    let tickets = handle.store().list(EntityKind::Ticket).unwrap();
    assert_eq!(tickets.len(), 2);
    assert!(handle
        .store()
        .list(EntityKind::Approval)
        .unwrap()
        .is_empty());
    // The link stays: the next real event is applied on it.
    ws.send(Message::text(event(
        6,
        "ticket.created",
        json!({"id": "t6"}),
    )))
    .await
    .unwrap();
    let st = until(&handle, "seq 6", |s| seq(s) == 6).await;
    assert_eq!((st.counters.gaps, st.counters.connections), (0, 1));
    handle.stop().await;
}

/// A server of two nodes: node A is killed (its link drops and it refuses new
/// ones); the session moves to node B at once and resumes from its cursor there.
#[tokio::test]
async fn a_killed_node_moves_the_session_to_the_next_which_resumes_its_cursor() {
    let (url_a, mut conns_a, node_a) = killable_server().await;
    let (url_b, mut conns_b, _node_b) = killable_server().await;
    let mut config = SessionConfig::new(url_a.parse().unwrap());
    config.nodes = vec![url_b.parse().unwrap()];
    // A long backoff: the move must not wait for it.
    config.backoff.base = Duration::from_secs(600);
    config.backoff.floor = Duration::from_secs(600);
    let handle = SessionHandle::spawn(
        config,
        Arc::new(StaticToken::new(Secret::new("t"))),
        StoreHandle::new(MemoryStore::new()),
    )
    .unwrap();
    assert_eq!(
        handle.status().borrow().node.as_deref(),
        Some(&*format!("{url_a}/"))
    );
    let (mut ws, _) = conns_a.recv().await.unwrap();
    ws.send(Message::text(subscribed(0))).await.unwrap();
    for s in 1..=3 {
        let e = event(s, "ticket.created", json!({"id": format!("t{s}")}));
        ws.send(Message::text(e)).await.unwrap();
    }
    until(&handle, "seq 3 on node A", |s| seq(s) == 3).await;
    node_a.abort();
    drop(ws);
    let (mut ws_b, sub) = conns_b.recv().await.unwrap();
    assert_eq!(
        sub,
        ClientFrame::Subscribe {
            stream: Some("acme".into()),
            since: Some(3),
            epoch: Some("e1".into())
        },
        "node B is asked to resume after seq 3"
    );
    ws_b.send(Message::text(subscribed(4))).await.unwrap();
    ws_b.send(Message::text(event(
        4,
        "ticket.created",
        json!({"id": "t4"}),
    )))
    .await
    .unwrap();
    let st = until(&handle, "seq 4 on node B", |s| seq(s) == 4).await;
    assert_eq!(st.node.as_deref(), Some(&*format!("{url_b}/")));
    assert_eq!(st.state, ConnectionState::Live);
    assert_eq!((st.counters.gaps, st.counters.snapshots), (0, 0));
    assert_eq!(handle.store().list(EntityKind::Ticket).unwrap().len(), 4);
    assert_eq!(handle.rest().current().as_str(), format!("{url_b}/"));
    handle.stop().await;
}

#[tokio::test]
async fn a_silent_link_is_closed_and_reopened() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (tx, mut accepted) = mpsc::channel::<Ws>(8);
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let mut ws = tokio_tungstenite::accept_async(tcp).await.unwrap();
            ws.send(Message::text(hello(100))).await.unwrap();
            let _ = ws.next().await; // subscribe
            ws.send(Message::text(subscribed(0))).await.unwrap();
            // ...then never another frame, never a close.
            tx.send(ws).await.unwrap();
        }
    });
    let handle = session(&url);
    let _first = accepted.recv().await.unwrap();
    let _second = accepted.recv().await.unwrap();
    let st = until(&handle, "second connection", |s| {
        s.counters.connections >= 2
    })
    .await;
    assert!(st.counters.connections >= 2);
    handle.stop().await;
}

/// A raw HTTP server that refuses WebSocket upgrades and rate-limits the first poll.
#[tokio::test]
async fn polling_honours_429_retry_after() {
    use std::sync::Mutex;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let log: Arc<Mutex<Vec<(std::time::Instant, String, u16)>>> = Arc::default();
    let server_log = log.clone();
    tokio::spawn(async move {
        let mut polls = 0;
        while let Ok((mut tcp, _)) = listener.accept().await {
            let mut head = Vec::new();
            let mut buf = [0u8; 2048];
            while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                match tcp.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => head.extend_from_slice(&buf[..n]),
                }
            }
            let text = String::from_utf8_lossy(&head).to_string();
            let path = text.split_whitespace().nth(1).unwrap_or("").to_owned();
            let (status, extra, body) = if path.starts_with("/v1/stream") {
                (403, "", "websockets blocked".to_string())
            } else if path.starts_with("/v1/events") {
                polls += 1;
                if polls == 2 {
                    (
                        429,
                        "retry-after: 1\r\n",
                        r#"{"error":{"code":"rate_limited","message":"slow down"}}"#.to_string(),
                    )
                } else {
                    let since: u64 = path
                        .split("since=")
                        .nth(1)
                        .and_then(|s| s.split('&').next())
                        .and_then(|s| s.parse().ok())
                        .unwrap_or(0);
                    let events: Vec<serde_json::Value> = (since + 1..=3.min(since + 1))
                        .filter(|s| *s <= 3)
                        .map(|s| {
                            serde_json::from_str(&event(
                                s,
                                "ticket.created",
                                json!({"id": format!("t{s}")}),
                            ))
                            .unwrap()
                        })
                        .collect();
                    (200, "", json!({"stream": "acme", "epoch": "e1", "head": 3, "recovered": true, "events": events}).to_string())
                }
            } else if path.starts_with("/v1/snapshot") {
                (
                    200,
                    "",
                    json!({"stream": "acme", "epoch": "e1", "seq": 0, "entities": []}).to_string(),
                )
            } else {
                (404, "", "{}".to_string())
            };
            server_log
                .lock()
                .unwrap()
                .push((std::time::Instant::now(), path, status));
            let resp = format!(
                "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n{extra}\r\n{body}",
                body.len()
            );
            let _ = tcp.write_all(resp.as_bytes()).await;
        }
    });
    let mut config = SessionConfig::new(url.parse().unwrap());
    config.poll_interval = Duration::from_millis(50);
    config.socket_retry_interval = Duration::from_secs(60);
    let handle = SessionHandle::spawn(
        config,
        Arc::new(StaticToken::new(Secret::new("t"))),
        StoreHandle::new(MemoryStore::new()),
    )
    .unwrap();
    let st = until(&handle, "all three events polled", |s| seq(s) == 3).await;
    assert!(
        matches!(st.state, ConnectionState::Polling { .. }),
        "{:?}",
        st.state
    );
    let log = log.lock().unwrap().clone();
    let limited = log
        .iter()
        .position(|(_, p, s)| p.starts_with("/v1/events") && *s == 429)
        .expect("a 429 was served");
    let next = log[limited + 1..]
        .iter()
        .find(|(_, p, _)| p.starts_with("/v1/events"))
        .expect("polling went on");
    assert!(
        next.0.duration_since(log[limited].0) >= Duration::from_millis(990),
        "the poll after a 429 waited for Retry-After: {:?}",
        next.0.duration_since(log[limited].0)
    );
    handle.stop().await;
}

/// A wake from sleep (or a network change) ends a live link at once, even one that
/// looks healthy, and the new connection resumes from the stored cursor. Counted:
/// the server sees a new subscribe per nudge that asks `since` the last applied
/// seq; a Retry while live opens no connection.
#[tokio::test]
async fn a_nudge_ends_a_live_link_and_the_next_resumes_from_the_cursor() {
    let (url, mut conns) = server().await;
    let handle = session(&url);
    let (mut ws, _) = conns.recv().await.unwrap();
    ws.send(Message::text(subscribed(0))).await.unwrap();
    ws.send(Message::text(event(
        1,
        "ticket.created",
        json!({"id": "t1"}),
    )))
    .await
    .unwrap();
    until(&handle, "live at seq 1", |s| {
        seq(s) == 1 && matches!(s.state, ConnectionState::Live)
    })
    .await;
    // The Retry button on a live link changes nothing (the commands are taken in
    // order, so had it ended the link, one more connection would be counted).
    handle.retry_now();
    for why in [Nudge::Wake, Nudge::Network] {
        handle.nudge(why);
        let (mut next, sub) = conns.recv().await.unwrap();
        assert_eq!(
            sub,
            ClientFrame::Subscribe {
                stream: Some("acme".into()),
                since: Some(1),
                epoch: Some("e1".into())
            },
            "after {why}"
        );
        next.send(Message::text(subscribed(1))).await.unwrap();
        ws = next;
    }
    let st = until(&handle, "live after the nudges", |s| {
        s.counters.connections >= 3 && matches!(s.state, ConnectionState::Live)
    })
    .await;
    assert_eq!(st.counters.connections, 3);
    assert_eq!(st.counters.gaps, 0);
    drop(ws);
    handle.stop().await;
}

/// A session waiting out a backoff delay of an hour connects at once when nudged
/// (the network came back): the wait is not sat out. Without the nudge the test
/// could not pass within its 20 s limit.
#[tokio::test]
async fn a_nudge_cuts_a_backoff_wait_short() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (tx, mut conns) = mpsc::channel::<(Ws, ClientFrame)>(8);
    tokio::spawn(async move {
        // The first connection is dropped at once (the network was down).
        let (first, _) = listener.accept().await.unwrap();
        drop(first);
        while let Ok((tcp, _)) = listener.accept().await {
            let mut ws = tokio_tungstenite::accept_async(tcp).await.unwrap();
            ws.send(Message::text(hello(60_000))).await.unwrap();
            if let Some(Ok(Message::Text(t))) = ws.next().await {
                let sub = ClientFrame::decode(t.as_str()).unwrap();
                let _ = tx.send((ws, sub)).await;
            }
        }
    });
    let mut config = SessionConfig::new(url.parse().unwrap());
    config.backoff.base = Duration::from_secs(3600);
    config.backoff.cap = Duration::from_secs(3600);
    config.backoff.floor = Duration::from_secs(3600);
    let handle = SessionHandle::spawn(
        config,
        Arc::new(StaticToken::new(Secret::new("t"))),
        StoreHandle::new(MemoryStore::new()),
    )
    .unwrap();
    let st = until(&handle, "waiting an hour to retry", |s| {
        matches!(s.state, ConnectionState::Reconnecting { .. })
    })
    .await;
    let ConnectionState::Reconnecting { retry_at_ms, .. } = st.state else {
        unreachable!()
    };
    assert!(
        retry_at_ms > pulse_core::now_ms() + 3_000_000,
        "{retry_at_ms}"
    );
    handle.nudge(Nudge::Network);
    let (mut ws, _) = conns.recv().await.unwrap();
    ws.send(Message::text(subscribed(0))).await.unwrap();
    until(&handle, "live after the nudge", |s| {
        matches!(s.state, ConnectionState::Live)
    })
    .await;
    handle.stop().await;
}

/// How the raw server answers one `GET /v1/snapshot`.
#[derive(Debug, Clone, Copy)]
enum SnapshotAnswer {
    /// `Content-Length` of the whole body, half of it sent, then the close.
    CutWithLength,
    /// No length (`connection: close`): half the body, then the close.
    CutAtClose,
    /// The whole length, but garbage in the middle of the entities.
    GarbageMidway,
    /// The whole snapshot.
    Whole,
}

/// A snapshot is decoded as it streams: a body cut mid-way (with or without a
/// length) or garbage in its middle leaves the cache as it was (a real SQLite
/// file) and the session tries again; the whole one then replaces the cache in
/// one go, and the live events that came during each download are kept (the one
/// above the snapshot's seq applied, those at or below skipped).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snapshot_cut_or_garbled_midway_leaves_the_old_cache_and_the_whole_one_replaces_it() {
    use pulse_core::store::{Cursor, SqliteStore, Store};
    use tokio::io::AsyncWriteExt;

    let entities: Vec<serde_json::Value> = (0..200)
        .map(|i| json!({"kind": "ticket", "id": format!("s{i}"), "data": {"id": format!("s{i}"), "title": format!("snapshot ticket {i} «é»"), "state": "todo"}}))
        .collect();
    let body = json!({"stream": "acme", "epoch": "e1", "seq": 2, "entities": entities}).to_string();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (subs_tx, mut subs) = mpsc::channel::<ClientFrame>(8);
    let (served_tx, mut served) = mpsc::unbounded_channel::<SnapshotAnswer>();
    // Each snapshot is answered only when the test says so (after its checks).
    let (go, mut go_rx) = mpsc::unbounded_channel::<()>();
    tokio::spawn(async move {
        let answers = [
            SnapshotAnswer::CutWithLength,
            SnapshotAnswer::CutAtClose,
            SnapshotAnswer::GarbageMidway,
            SnapshotAnswer::Whole,
        ];
        let mut next = 0usize;
        while let Ok((mut tcp, _)) = listener.accept().await {
            let mut peek = [0u8; 2048];
            let n = tcp.peek(&mut peek).await.unwrap_or(0);
            let head = String::from_utf8_lossy(&peek[..n]).to_ascii_lowercase();
            if !head.contains("upgrade: websocket") {
                let answer = answers[next.min(answers.len() - 1)];
                next += 1;
                if go_rx.recv().await.is_none() {
                    return;
                }
                let mut req = vec![0u8; 4096];
                let _ = tokio::io::AsyncReadExt::read(&mut tcp, &mut req).await;
                let half = &body.as_bytes()[..body.len() / 2];
                let (length, bytes): (Option<usize>, Vec<u8>) = match answer {
                    SnapshotAnswer::CutWithLength => (Some(body.len()), half.to_vec()),
                    SnapshotAnswer::CutAtClose => (None, half.to_vec()),
                    SnapshotAnswer::GarbageMidway => {
                        // Cut just after an entity's closing brace, then garbage.
                        let at = half.windows(3).rposition(|w| w == b"},{").unwrap() + 1;
                        let mut b = body.as_bytes()[..at].to_vec();
                        b.extend_from_slice(b"]] not json {");
                        b.resize(body.len(), b' ');
                        (Some(body.len()), b)
                    }
                    SnapshotAnswer::Whole => (Some(body.len()), body.clone().into_bytes()),
                };
                let mut h =
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nconnection: close\r\n"
                        .to_string();
                if let Some(n) = length {
                    h.push_str(&format!("content-length: {n}\r\n"));
                }
                h.push_str("\r\n");
                let _ = tcp.write_all(h.as_bytes()).await;
                let _ = tcp.write_all(&bytes).await;
                let _ = tcp.shutdown().await;
                let _ = served_tx.send(answer);
                continue;
            }
            let subs_tx = subs_tx.clone();
            tokio::spawn(async move {
                let mut ws = tokio_tungstenite::accept_async(tcp).await.unwrap();
                ws.send(Message::text(hello(60_000))).await.unwrap();
                let sub = loop {
                    match ws.next().await {
                        Some(Ok(Message::Text(t))) => {
                            break ClientFrame::decode(t.as_str()).unwrap()
                        }
                        Some(Ok(_)) => continue,
                        _ => return,
                    }
                };
                let _ = subs_tx.send(sub).await;
                let _ = ws
                    .send(Message::text(
                        ServerFrame::Subscribed(Subscribed {
                            stream: "acme".into(),
                            epoch: "e1".into(),
                            head: 3,
                            recovered: false,
                            reason: Some("epoch_changed".into()),
                        })
                        .encode(),
                    ))
                    .await;
                // Live events while the snapshot downloads: 1 and 2 are in it, 3 is not.
                for seq in 1..=3 {
                    let text = event(seq, "ticket.created", json!({"id": format!("live{seq}")}));
                    if ws.send(Message::text(text)).await.is_err() {
                        return;
                    }
                }
                while ws.next().await.is_some() {}
            });
        }
    });

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cache.db");
    let old_cursor = Cursor {
        epoch: "e0".into(),
        seq: 9,
    };
    {
        let mut store = SqliteStore::open(&path).unwrap();
        let old = vec![pulse_protocol::domain::Entity {
            kind: EntityKind::Ticket,
            id: "old".into(),
            data: serde_json::from_value(json!({"id": "old", "title": "from before"})).unwrap(),
        }];
        store.replace_all("acme", &old_cursor, &old).unwrap();
    }
    let store = StoreHandle::new(SqliteStore::open(&path).unwrap());
    let old = store.all().unwrap();
    let mut config = SessionConfig::new(url.parse().unwrap());
    config.backoff.base = Duration::from_millis(50);
    config.backoff.floor = Duration::from_millis(10);
    let handle = SessionHandle::spawn(
        config,
        Arc::new(StaticToken::new(Secret::new("t"))),
        store.clone(),
    )
    .unwrap();

    let first = subs.recv().await.expect("a subscribe");
    assert!(
        matches!(&first, ClientFrame::Subscribe { since: Some(9), .. }),
        "{first:?}"
    );
    for failing in [
        SnapshotAnswer::CutWithLength,
        SnapshotAnswer::CutAtClose,
        SnapshotAnswer::GarbageMidway,
    ] {
        go.send(()).unwrap();
        let answer = served.recv().await.unwrap();
        assert_eq!(format!("{answer:?}"), format!("{failing:?}"));
        // The client subscribes again only once it has given this snapshot up.
        let again = tokio::time::timeout(Duration::from_secs(30), subs.recv())
            .await
            .expect("the session tried again after a bad snapshot")
            .unwrap();
        assert!(
            matches!(&again, ClientFrame::Subscribe { since: Some(9), epoch: Some(e), .. } if e == "e0"),
            "after {failing:?} the cursor is still the old one: {again:?}"
        );
        assert_eq!(store.all().unwrap(), old, "after {failing:?}");
        assert_eq!(store.cursor("acme").unwrap(), Some(old_cursor.clone()));
    }
    go.send(()).unwrap();
    assert!(matches!(served.recv().await, Some(SnapshotAnswer::Whole)));
    until(
        &handle,
        "the whole snapshot and live event 3 applied",
        |s| seq(s) == 3,
    )
    .await;
    let tickets = store.list(EntityKind::Ticket).unwrap();
    let ids: Vec<&str> = tickets.iter().map(|e| e.id.as_str()).collect();
    assert_eq!(tickets.len(), 201, "{ids:?}");
    assert!(
        ids.contains(&"live3"),
        "the live event after the snapshot was kept"
    );
    assert!(!ids.contains(&"old") && !ids.contains(&"live1") && !ids.contains(&"live2"));
    let s7 = store.get(EntityKind::Ticket, "s7").unwrap().unwrap();
    assert_eq!(s7.data["title"], json!("snapshot ticket 7 «é»"));
    assert_eq!(store.cursor("acme").unwrap().unwrap().epoch, "e1");
    handle.stop().await;
}
