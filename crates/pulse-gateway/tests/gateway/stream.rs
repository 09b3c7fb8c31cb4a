//! `GET /v1/stream`: hello, subscribe, replay, resync reasons, pings, isolation, bad frames.

use std::time::Duration;

use futures_util::SinkExt;
use pulse_gateway::Config;
use pulse_protocol::{ClientFrame, ServerFrame};
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;

use crate::common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hello_subscribe_and_live() {
    let gw = Gw::default().await;
    let p = publisher("acme");
    gw.ingest(&p, ev("agent.upserted", json!({"id": "a0"})))
        .await;
    let mut ws = gw.connect(&viewer("acme")).await;
    match next_frame(&mut ws).await {
        ServerFrame::Hello(h) => {
            assert_eq!((h.version, h.tenant.as_str()), (1, "acme"));
            assert_eq!((h.ping_interval_ms, h.ping_timeout_ms), (15_000, 10_000));
        }
        other => panic!("{other:?}"),
    }
    send(
        &mut ws,
        &ClientFrame::Subscribe {
            stream: None,
            since: None,
            epoch: None,
        },
    )
    .await;
    let sub = match next_frame(&mut ws).await {
        ServerFrame::Subscribed(s) => s,
        other => panic!("{other:?}"),
    };
    assert_eq!(
        (sub.stream.as_str(), sub.head, sub.recovered),
        ("acme", 1, false)
    );
    assert_eq!(sub.reason.as_deref(), Some("no_cursor"));
    let seqs = gw
        .ingest(
            &p,
            json!([
                ev("agent.upserted", json!({"id": "a1"})),
                ev("agent.upserted", json!({"id": "a2"}))
            ]),
        )
        .await;
    assert_eq!(seqs, [2, 3]);
    let got = events(&mut ws, 2).await;
    assert_eq!(got.iter().map(|e| e.seq).collect::<Vec<_>>(), [2, 3]);
    assert_eq!(got[1].data["id"], "a2");
    assert!(got.iter().all(|e| e.stream == "acme"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_after_reconnect_is_exact_and_gap_free() {
    let gw = Gw::default().await;
    let p = publisher("acme");
    for i in 0..10 {
        gw.ingest(&p, ev("agent.heartbeat", json!({"id": "a", "n": i})))
            .await;
    }
    let (mut ws, sub) = subscribe(&gw, &viewer("acme"), None, None).await;
    gw.ingest(&p, ev("agent.heartbeat", json!({"id": "a", "n": 10})))
        .await;
    let e = events(&mut ws, 1).await;
    assert_eq!(e[0].seq, 11);
    let epoch = sub.epoch.clone();
    drop(ws);

    // Missed while away.
    let missed = gw
        .ingest(
            &p,
            json!((11..20)
                .map(|i| ev("agent.heartbeat", json!({"id": "a", "n": i})))
                .collect::<Vec<_>>()),
        )
        .await;
    assert_eq!(missed, (12..=20).collect::<Vec<_>>());
    // A writer keeps going while we resubscribe.
    let writer = {
        let http = gw.http.clone();
        let url = gw.url("/v1/ingest");
        let p = p.clone();
        tokio::spawn(async move {
            for i in 0..100 {
                let r = http
                    .post(&url)
                    .bearer_auth(&p)
                    .json(&ev("agent.heartbeat", json!({"id": "a", "n": 100 + i})))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.status(), 200);
            }
        })
    };
    let (mut ws, sub) = subscribe(&gw, &viewer("acme"), Some(11), Some(&epoch)).await;
    assert!(sub.recovered, "{sub:?}");
    assert_eq!(sub.reason, None);
    assert!(sub.head >= 20);
    let got = events(&mut ws, 109).await;
    let seqs: Vec<u64> = got.iter().map(|e| e.seq).collect();
    assert_eq!(
        seqs,
        (12..=120).collect::<Vec<_>>(),
        "no gap, no duplicate across replay and live"
    );
    assert_eq!(got[0].data["n"], 11);
    assert_eq!(got[8].data["n"], 19);
    writer.await.unwrap();
    // Already at head: recovered, nothing replayed.
    let (mut ws2, sub) = subscribe(&gw, &viewer("acme"), Some(120), Some(&epoch)).await;
    assert!(sub.recovered);
    gw.ingest(&p, ev("agent.heartbeat", json!({"id": "a"})))
        .await;
    assert_eq!(events(&mut ws2, 1).await[0].seq, 121);
    assert_eq!(events(&mut ws, 1).await[0].seq, 121);
    let metrics = gw.metrics().await;
    assert!(metrics.contains("pulse_replays_total 2"), "{metrics}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resync_reasons() {
    let gw = Gw::start(Config {
        retain: 5,
        ..config()
    })
    .await;
    let p = publisher("acme");
    for i in 0..8 {
        gw.ingest(&p, ev("agent.heartbeat", json!({"id": "a", "n": i})))
            .await;
    }
    let v = viewer("acme");
    let (_ws, sub) = subscribe(&gw, &v, None, None).await;
    let epoch = sub.epoch;
    let mut head = 8;
    // (since relative to head, epoch, expected reason)
    let cases: [(Option<i64>, Option<&str>, Option<&str>); 6] = [
        (Some(-5), Some(epoch.as_str()), None),
        (Some(-7), Some("not-the-epoch"), Some("epoch_changed")),
        (Some(-6), Some(epoch.as_str()), Some("truncated")),
        (Some(1), Some(epoch.as_str()), Some("ahead")),
        (Some(-2), None, Some("no_cursor")),
        (None, Some(epoch.as_str()), Some("no_cursor")),
    ];
    for (delta, ep, reason) in cases {
        let since = delta.map(|d| (head as i64 + d) as u64);
        let (mut ws, sub) = subscribe(&gw, &v, since, ep).await;
        assert_eq!(
            sub.reason.as_deref(),
            reason,
            "since {since:?} epoch {ep:?}"
        );
        assert_eq!(sub.recovered, reason.is_none());
        assert_eq!(sub.head, head);
        if reason.is_none() {
            let got = events(&mut ws, 5).await;
            let want: Vec<u64> = (head - 4..=head).collect();
            assert_eq!(got.iter().map(|e| e.seq).collect::<Vec<_>>(), want);
        } else {
            // Live from head + 1.
            gw.ingest(&p, ev("agent.heartbeat", json!({"id": "a"})))
                .await;
            head += 1;
            assert_eq!(events(&mut ws, 1).await[0].seq, head);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_restart_changes_epoch() {
    let first = Gw::default().await;
    first
        .ingest(&publisher("acme"), ev("agent.upserted", json!({"id": "a"})))
        .await;
    let (_ws, sub) = subscribe(&first, &viewer("acme"), None, None).await;
    first.gw.stop();
    let Gw { gw, .. } = first;
    gw.shutdown().await;

    let second = Gw::default().await;
    let (_ws, sub2) = subscribe(&second, &viewer("acme"), Some(1), Some(&sub.epoch)).await;
    assert!(!sub2.recovered);
    assert_eq!(sub2.reason.as_deref(), Some("epoch_changed"));
    assert_ne!(sub2.epoch, sub.epoch);
    assert_eq!(sub2.head, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_restart_keeps_everything() {
    let dir = tempfile::tempdir().unwrap();
    let store = pulse_gateway::StoreConfig::Sqlite(dir.path().join("gw.db"));
    let cfg = || Config {
        store: store.clone(),
        ..config()
    };
    let first = Gw::start(cfg()).await;
    first
        .ingest(
            &publisher("acme"),
            json!([
                ev("ticket.created", json!({"id": "t1"})),
                ev("ticket.moved", json!({"id": "t1", "state": "done"}))
            ]),
        )
        .await;
    let snap = first.json(&viewer("acme"), "/v1/snapshot").await;
    first.gw.shutdown().await;

    let second = Gw::start(cfg()).await;
    assert_eq!(second.json(&viewer("acme"), "/v1/snapshot").await, snap);
    let epoch = snap["epoch"].as_str().unwrap();
    let (mut ws, sub) = subscribe(&second, &viewer("acme"), Some(0), Some(epoch)).await;
    assert!(sub.recovered);
    assert_eq!(events(&mut ws, 2).await[1].data["state"], "done");
    assert_eq!(
        second
            .ingest(
                &publisher("acme"),
                ev("ticket.deleted", json!({"id": "t1"}))
            )
            .await,
        [3]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn foreign_stream_is_forbidden() {
    let gw = Gw::default().await;
    gw.ingest(
        &publisher("globex"),
        ev("agent.upserted", json!({"id": "x"})),
    )
    .await;
    let mut ws = gw.connect(&viewer("acme")).await;
    assert!(matches!(next_frame(&mut ws).await, ServerFrame::Hello(_)));
    send(
        &mut ws,
        &ClientFrame::Subscribe {
            stream: Some("globex".into()),
            since: Some(0),
            epoch: None,
        },
    )
    .await;
    match next_frame_or_close(&mut ws).await {
        Some(ServerFrame::Error { code, .. }) => assert_eq!(code, "forbidden"),
        other => panic!("expected a forbidden error, got {other:?}"),
    }
    assert_eq!(closed(&mut ws).await, Some(1008));
    // And an acme subscriber never sees globex events.
    let (mut ws, _) = subscribe(&gw, &viewer("acme"), None, None).await;
    gw.ingest(
        &publisher("globex"),
        ev("agent.upserted", json!({"id": "y"})),
    )
    .await;
    gw.ingest(
        &publisher("acme"),
        ev("agent.upserted", json!({"id": "mine"})),
    )
    .await;
    let e = events(&mut ws, 1).await;
    assert_eq!(
        (e[0].stream.as_str(), e[0].data["id"].as_str()),
        ("acme", Some("mine"))
    );
}

async fn next_frame_or_close(ws: &mut Ws) -> Option<ServerFrame> {
    loop {
        match next_message(ws).await? {
            Message::Text(t) => return Some(ServerFrame::decode(t.as_str()).unwrap()),
            Message::Close(_) => return None,
            _ => {}
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_frames_get_errors_and_the_connection_stays() {
    let gw = Gw::default().await;
    let mut ws = gw.connect(&viewer("acme")).await;
    assert!(matches!(next_frame(&mut ws).await, ServerFrame::Hello(_)));
    for garbage in [
        Message::text("not json"),
        Message::text("{}"),
        Message::text(r#"{"type":"subscribe","since":"five"}"#),
        Message::text(r#"{"type":"dance"}"#),
        Message::text("[1,2,3]"),
        Message::binary(vec![0u8, 159, 146, 150]),
    ] {
        ws.send(garbage.clone()).await.unwrap();
        match next_frame(&mut ws).await {
            ServerFrame::Error { code, message } => {
                assert_eq!(code, "bad_request", "{garbage:?}");
                assert!(!message.is_empty());
            }
            other => panic!("{garbage:?} gave {other:?}"),
        }
    }
    send(
        &mut ws,
        &ClientFrame::Subscribe {
            stream: None,
            since: None,
            epoch: None,
        },
    )
    .await;
    assert!(matches!(
        next_frame(&mut ws).await,
        ServerFrame::Subscribed(_)
    ));
    send(
        &mut ws,
        &ClientFrame::Subscribe {
            stream: None,
            since: None,
            epoch: None,
        },
    )
    .await;
    assert!(
        matches!(next_frame(&mut ws).await, ServerFrame::Error { code, .. } if code == "bad_request")
    );
    gw.ingest(&publisher("acme"), ev("agent.upserted", json!({"id": "a"})))
        .await;
    assert_eq!(events(&mut ws, 1).await[0].seq, 1);

    // Over the frame limit: closed with 1009.
    let big = format!(
        r#"{{"type":"pong","ts":1,"pad":"{}"}}"#,
        "x".repeat(pulse_protocol::MAX_FRAME_BYTES)
    );
    ws.send(Message::text(big)).await.unwrap();
    assert_eq!(closed(&mut ws).await, Some(1009));
    // The gateway keeps serving.
    let (_ws, sub) = subscribe(&gw, &viewer("acme"), None, None).await;
    assert_eq!(sub.head, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pings_pongs_and_idle_timeout() {
    let gw = Gw::start(Config {
        ping_interval: Duration::from_millis(200),
        ping_timeout: Duration::from_millis(300),
        ..config()
    })
    .await;
    // An active client gets JSON pings and stays connected.
    let mut ws = gw.connect(&viewer("acme")).await;
    let mut pings = 0;
    while pings < 4 {
        match next_message(&mut ws).await.expect("open") {
            Message::Text(t) => {
                if let ServerFrame::Ping { ts } = ServerFrame::decode(t.as_str()).unwrap() {
                    pings += 1;
                    send(&mut ws, &ClientFrame::Pong { ts }).await;
                }
            }
            Message::Close(c) => panic!("an answering client was closed: {c:?}"),
            _ => {}
        }
    }
    // WS-level pings are answered too.
    ws.send(Message::Ping(b"hi"[..].into())).await.unwrap();
    loop {
        match next_message(&mut ws).await.expect("open") {
            Message::Pong(p) => {
                assert_eq!(&p[..], b"hi");
                break;
            }
            Message::Close(c) => panic!("closed: {c:?}"),
            _ => {}
        }
    }
    // A silent client is closed after interval + timeout.
    let mut silent = gw.connect(&viewer("acme")).await;
    let started = std::time::Instant::now();
    assert_eq!(closed(&mut silent).await, Some(1008));
    assert!(
        started.elapsed() >= Duration::from_millis(450),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_closes_streams() {
    let gw = Gw::default().await;
    let (mut ws, _) = subscribe(&gw, &viewer("acme"), None, None).await;
    let Gw { gw, .. } = gw;
    gw.shutdown().await;
    assert_eq!(closed(&mut ws).await, Some(1001));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn not_a_websocket_request() {
    let gw = Gw::default().await;
    let resp = gw.get(&viewer("acme"), "/v1/stream").await;
    assert!(resp.status().is_client_error(), "{}", resp.status());
    let v: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(v["error"]["code"], "bad_request");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_client_is_dropped_without_slowing_anyone() {
    let gw = Gw::start(Config {
        ping_interval: Duration::from_secs(2),
        ping_timeout: Duration::from_secs(2),
        client_queue: 16,
        ..config()
    })
    .await;
    let v = viewer("acme");
    let (mut stalled, _) = subscribe(&gw, &v, None, None).await;
    let (mut reader, _) = subscribe(&gw, &v, None, None).await;
    let blob = "x".repeat(500_000);
    let n = 60;
    // The reader answers pings (it would be closed as idle otherwise); the stalled
    // client neither reads nor writes.
    let read_all = tokio::spawn(async move {
        let mut seqs = Vec::new();
        while seqs.len() < n {
            match next_message(&mut reader)
                .await
                .expect("reader stays connected")
            {
                Message::Text(t) => match ServerFrame::decode(t.as_str()).unwrap() {
                    ServerFrame::Event(e) => seqs.push(e.seq),
                    ServerFrame::Ping { ts } => send(&mut reader, &ClientFrame::Pong { ts }).await,
                    other => panic!("{other:?}"),
                },
                Message::Close(c) => panic!("reader closed: {c:?}"),
                _ => {}
            }
        }
        seqs
    });
    for i in 0..n {
        gw.ingest(
            &publisher("acme"),
            ev("agent.upserted", json!({"id": "a", "i": i, "blob": blob})),
        )
        .await;
    }
    assert_eq!(
        read_all.await.unwrap(),
        (1..=n as u64).collect::<Vec<_>>(),
        "the reader got everything"
    );
    wait_for_some(
        "the stalled client to be dropped",
        Duration::from_secs(30),
        || async {
            let m = gw.metrics().await;
            (!m.contains("pulse_slow_clients_disconnected_total 0")).then_some(())
        },
    )
    .await;
    // What the stalled client can still read ends before the last event.
    let mut last = 0;
    while let Some(msg) = next_message(&mut stalled).await {
        if let Message::Text(t) = msg {
            if let ServerFrame::Event(e) = ServerFrame::decode(t.as_str()).unwrap() {
                last = e.seq;
            }
        }
    }
    assert!(
        last < n as u64,
        "stalled client was cut off (saw up to {last})"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_replays_span_several_pages() {
    let dir = tempfile::tempdir().unwrap();
    let gw = Gw::start(Config {
        store: pulse_gateway::StoreConfig::Sqlite(dir.path().join("gw.db")),
        ..config()
    })
    .await;
    let p = publisher("acme");
    for b in 0..5 {
        let batch: Vec<_> = (0..500)
            .map(|i| ev("agent.heartbeat", json!({"id": "a", "n": b * 500 + i})))
            .collect();
        gw.ingest(&p, json!(batch)).await;
    }
    let (_ws, sub) = subscribe(&gw, &viewer("acme"), None, None).await;
    let (mut ws, sub) = subscribe(&gw, &viewer("acme"), Some(7), Some(&sub.epoch)).await;
    assert!(sub.recovered);
    assert_eq!(sub.head, 2500);
    let got = events(&mut ws, 2493).await;
    assert!(got.iter().zip(8u64..).all(|(e, want)| e.seq == want));
    assert_eq!(got.last().unwrap().data["n"], 2499);
}
