//! The Socket.IO transport against a real Socket.IO 4.x server (the `socket.io`
//! npm package, `tests/peers/socketio/server.js`), one server per test on port 0,
//! killed on drop. The server is driven over its `/control/*` HTTP endpoints.
//!
//! Needs `node` and `npm ci` run in `tests/peers/socketio` (the README's test
//! command does it).

use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use pulse_core::auth::Secret;
use pulse_core::transport::socketio::{
    as_binary, binary_value, DisconnectReason, QueryToken, SioEvent, SioIncoming, SocketIoClient,
    SocketIoError, SocketIoOptions, TransportKind,
};
use pulse_testkit::process::spawn_announced;
use pulse_testkit::wait_for_some;
use serde_json::{json, Value};
use tokio::process::{Child, Command};

const WAIT: Duration = Duration::from_secs(15);

/// A running `server.js`.
struct Peer {
    child: Child,
    base: url::Url,
    http: reqwest::Client,
}

impl Peer {
    async fn start(args: &[&str]) -> Peer {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/peers/socketio");
        assert!(
            dir.join("node_modules/socket.io").is_dir(),
            "the Socket.IO test server's packages are missing: run `npm ci` in {} (the README's test command does)",
            dir.display()
        );
        let mut cmd = Command::new("node");
        cmd.arg("server.js")
            .args(args)
            .current_dir(&dir)
            .stdin(Stdio::piped())
            .stderr(Stdio::inherit());
        let (child, first) = spawn_announced(
            "the Socket.IO server (`node`: is Node.js installed?)",
            &mut cmd,
            WAIT,
        )
        .await;
        let port: u16 = first
            .strip_prefix("listening ")
            .and_then(|p| p.trim().parse().ok())
            .unwrap_or_else(|| panic!("unexpected first line from the server: {first:?}"));
        Peer {
            child,
            base: format!("http://127.0.0.1:{port}").parse().unwrap(),
            http: reqwest::Client::new(),
        }
    }

    fn opts(&self) -> SocketIoOptions {
        let mut o = SocketIoOptions::new(self.base.clone());
        o.connect_timeout = Duration::from_secs(10);
        o
    }

    async fn control(&self, path: &str, body: Value) -> Value {
        let resp = self
            .http
            .post(self.base.join(path).unwrap())
            .json(&body)
            .timeout(WAIT)
            .send()
            .await
            .expect("control request");
        let status = resp.status();
        let v: Value = resp.json().await.expect("control answer");
        assert!(status.is_success(), "{path}: {status} {v}");
        v
    }

    async fn emit(&self, event: &str, args: Value) {
        self.control("/control/emit", json!({"event": event, "args": args}))
            .await;
    }

    async fn state(&self) -> Value {
        self.http
            .get(self.base.join("/control/state").unwrap())
            .timeout(WAIT)
            .send()
            .await
            .expect("state request")
            .json()
            .await
            .expect("state answer")
    }

    fn signal(&self, sig: &str) {
        let pid = self.child.id().expect("server running");
        let ok = std::process::Command::new("kill")
            .args([sig, &pid.to_string()])
            .status()
            .expect("run kill")
            .success();
        assert!(ok, "kill {sig} {pid}");
    }
}

async fn next(client: &mut SocketIoClient) -> SioIncoming {
    tokio::time::timeout(WAIT, client.recv())
        .await
        .expect("nothing received in time")
}

async fn event(client: &mut SocketIoClient) -> SioEvent {
    match next(client).await {
        SioIncoming::Event(e) => e,
        other => panic!("expected an event, got {other:?}"),
    }
}

async fn disconnected(client: &mut SocketIoClient) -> DisconnectReason {
    match next(client).await {
        SioIncoming::Disconnected { reason } => reason,
        other => panic!("expected the disconnection, got {other:?}"),
    }
}

/// Wait (at most [`WAIT`]) until `cond` holds, checking every few ms.
async fn eventually<F, Fut>(what: &str, mut cond: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    wait_for_some(what, WAIT, || {
        let check = cond();
        async move { check.await.then_some(()) }
    })
    .await
}

fn realtime(peer: &Peer, token: &str) -> SocketIoOptions {
    let mut o = peer.opts();
    o.namespace = "/realtime".into();
    o.auth = Some(json!({"token": token, "workspaceId": "w1"}));
    o
}

#[tokio::test]
async fn connects_to_a_namespace_with_auth_over_websocket() {
    let peer = Peer::start(&["--namespace", "/realtime", "--token", "s3cret"]).await;
    let mut opts = realtime(&peer, "s3cret");
    opts.headers.insert(
        http::header::AUTHORIZATION,
        "Bearer s3cret".parse().unwrap(),
    );
    let mut c = SocketIoClient::connect(opts).await.expect("connect");
    assert_eq!(c.transport_in_use(), TransportKind::WebSocket);
    assert_eq!(c.namespace(), "/realtime");
    assert!(!c.recovered());
    assert_eq!(c.recovery_state(), None, "the server has no recovery");

    let st = peer.state().await;
    let s = &st["sockets"][0];
    assert_eq!(s["id"], c.socket_id());
    assert_eq!(s["transport"], "websocket");
    assert_eq!(s["auth_keys"], json!(["token", "workspaceId"]));
    assert_eq!(
        s["query"],
        json!(["EIO", "transport"]),
        "no token in the URL"
    );
    assert_eq!(s["authorization"], "Bearer s3cret");
    assert!(s["rooms"]
        .as_array()
        .unwrap()
        .contains(&json!("workspace:w1")));

    // Workspace-scoped broadcast, as the 002 gateway does.
    peer.control(
        "/control/emit",
        json!({"event": "approval.created", "args": [{"id": "a1"}], "room": "workspace:w1"}),
    )
    .await;
    let e = event(&mut c).await;
    assert_eq!(
        (e.name.as_str(), e.args.clone(), e.ack, e.offset),
        ("approval.created", vec![json!({"id": "a1"})], None, None)
    );

    // The token goes in the query only when asked.
    let mut opts = realtime(&peer, "s3cret");
    opts.query_token = Some(QueryToken {
        name: "token".into(),
        token: Secret::new("s3cret"),
    });
    let c2 = SocketIoClient::connect(opts)
        .await
        .expect("connect with query token");
    let st = peer.state().await;
    let s2 = st["sockets"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == c2.socket_id())
        .unwrap()
        .clone();
    assert_eq!(s2["query"], json!(["EIO", "token", "transport"]));
}

#[tokio::test]
async fn a_wrong_token_is_a_clear_connect_error() {
    let peer = Peer::start(&["--namespace", "/realtime", "--token", "s3cret"]).await;
    for transports in [vec![TransportKind::WebSocket], vec![TransportKind::Polling]] {
        let mut opts = realtime(&peer, "wrong-token");
        opts.transports = transports.clone();
        let err = SocketIoClient::connect(opts)
            .await
            .expect_err("must be refused");
        assert!(err.is_auth_failure(), "{transports:?}: {err:?}");
        match &err {
            SocketIoError::Unauthorized { message, data } => {
                assert_eq!(message, "unauthorized: invalid or missing token");
                assert_eq!(data, &Some(json!({"code": "UNAUTHORIZED"})));
            }
            other => panic!("{other:?}"),
        }
        assert!(
            !format!("{err} {err:?}").contains("wrong-token"),
            "the token leaked into the error"
        );
    }
    // No auth at all.
    let mut opts = peer.opts();
    opts.namespace = "/realtime".into();
    let err = SocketIoClient::connect(opts)
        .await
        .expect_err("must be refused");
    assert!(err.is_auth_failure(), "{err:?}");
    // The server is still fine with the right token.
    SocketIoClient::connect(realtime(&peer, "s3cret"))
        .await
        .expect("connect");
}

#[tokio::test]
async fn events_with_several_args_arrive_in_order() {
    let peer = Peer::start(&[]).await;
    let mut c = SocketIoClient::connect(peer.opts()).await.expect("connect");
    let args = json!(["text", 42, 1.5, null, true, {"nested": {"list": [1, "two", {"three": 3}]}}, [], {}]);
    peer.emit("task:status_changed", args.clone()).await;
    let e = event(&mut c).await;
    assert_eq!(e.name, "task:status_changed");
    assert_eq!(Value::Array(e.args), args);
    // A burst keeps its order.
    for i in 0..50 {
        peer.emit("tick", json!([i])).await;
    }
    for i in 0..50 {
        let e = event(&mut c).await;
        assert_eq!((e.name.as_str(), e.args), ("tick", vec![json!(i)]));
    }
    assert_eq!(c.stats().events, 51);
    assert_eq!(c.stats().decode_errors, 0);
}

#[tokio::test]
async fn binary_events_both_ways() {
    let peer = Peer::start(&[]).await;
    let mut c = SocketIoClient::connect(peer.opts()).await.expect("connect");
    peer.emit(
        "file",
        json!(["report.bin", {"$b64": "AAEC/w=="}, {"inner": {"$b64": "aGVsbG8="}}]),
    )
    .await;
    let e = event(&mut c).await;
    assert_eq!(e.name, "file");
    assert_eq!(e.args[0], json!("report.bin"));
    assert_eq!(as_binary(&e.args[1]), Some(vec![0, 1, 2, 255]));
    assert_eq!(as_binary(&e.args[2]["inner"]), Some(b"hello".to_vec()));

    // Client → server binary (BINARY_EVENT with an ack; the server echoes it).
    let answer = c
        .emit_with_ack("upload", vec![json!("a.bin"), binary_value(&[9, 8, 7])])
        .await
        .expect("ack");
    assert_eq!(
        answer,
        vec![json!({"event": "upload", "args": ["a.bin", {"$b64": "CQgH"}]})]
    );
}

#[tokio::test]
async fn server_requested_acks_are_answered() {
    let peer = Peer::start(&["--namespace", "/realtime", "--token", "t"]).await;
    let mut c = SocketIoClient::connect(realtime(&peer, "t"))
        .await
        .expect("connect");
    let base = peer.base.clone();
    let http = peer.http.clone();
    let pending = tokio::spawn(async move {
        http.post(base.join("/control/emit").unwrap())
            .json(&json!({"event": "approval.requested", "args": [{"id": "ap1"}], "ack": true}))
            .send()
            .await
            .unwrap()
            .json::<Value>()
            .await
            .unwrap()
    });
    let e = event(&mut c).await;
    assert_eq!(e.name, "approval.requested");
    let id = e.ack.expect("the server asked for an ack");
    c.ack(id, vec![json!({"seen": true}), json!("second")])
        .unwrap();
    let answer = tokio::time::timeout(WAIT, pending).await.unwrap().unwrap();
    assert_eq!(answer, json!({"responses": [[{"seen": true}, "second"]]}));

    // A binary ack (BINARY_ACK).
    let base = peer.base.clone();
    let http = peer.http.clone();
    let pending = tokio::spawn(async move {
        http.post(base.join("/control/emit").unwrap())
            .json(&json!({"event": "give.me.bytes", "args": [], "ack": true}))
            .send()
            .await
            .unwrap()
            .json::<Value>()
            .await
            .unwrap()
    });
    let e = event(&mut c).await;
    c.ack(e.ack.unwrap(), vec![binary_value(b"xyz")]).unwrap();
    let answer = tokio::time::timeout(WAIT, pending).await.unwrap().unwrap();
    assert_eq!(answer, json!({"responses": [[{"$b64": "eHl6"}]]}));
}

#[tokio::test]
async fn client_emits_with_and_without_ack() {
    let peer = Peer::start(&["--namespace", "/realtime", "--token", "t"]).await;
    let mut c = SocketIoClient::connect(realtime(&peer, "t"))
        .await
        .expect("connect");
    let answer = c
        .emit_with_ack("presence.update", vec![json!("online")])
        .await
        .expect("ack");
    assert_eq!(
        answer,
        vec![json!({"event": "presence.update", "args": ["online"]})]
    );
    // Several in flight at once, from another task's sender.
    let sender = c.sender();
    let (a, b) = tokio::join!(
        sender.emit_with_ack("typing.start", vec![json!({"chatId": "c1"})]),
        sender.emit_with_ack("typing.stop", vec![json!({"chatId": "c1"})]),
    );
    assert_eq!(a.unwrap()[0]["event"], "typing.start");
    assert_eq!(b.unwrap()[0]["event"], "typing.stop");
    // Without ack: the server echoes `received`.
    c.emit("typing.start", vec![json!({"chatId": "c2"})])
        .unwrap();
    let e = event(&mut c).await;
    assert_eq!(
        (e.name.as_str(), e.args),
        (
            "received",
            vec![json!({"event": "typing.start", "args": [{"chatId": "c2"}]})]
        )
    );
    // An ack that never comes times out, and the link stays.
    let err = c
        .sender()
        .emit_with_ack_timeout("silent.please", vec![], Duration::from_millis(200))
        .await
        .expect_err("no ack");
    assert!(matches!(err, SocketIoError::AckTimeout(_)), "{err:?}");
    assert!(c.emit_with_ack("still.there", vec![]).await.is_ok());
}

#[tokio::test]
async fn seed_004_rooms_and_resync() {
    // Default namespace, no auth, rooms joined by client emits.
    let peer = Peer::start(&[]).await;
    let mut c = SocketIoClient::connect(peer.opts()).await.expect("connect");
    c.emit("dashboard:join", vec![]).unwrap();
    let e = event(&mut c).await;
    assert_eq!(
        (e.name.as_str(), e.args),
        ("dashboard:state", vec![json!({"tasks": []})])
    );
    let joined = c
        .emit_with_ack("task:join", vec![json!({"taskId": "t7"})])
        .await
        .unwrap();
    assert_eq!(joined, vec![json!({"joined": "task:t7"})]);
    assert_eq!(event(&mut c).await.name, "task:state");
    peer.control(
        "/control/emit",
        json!({"event": "dashboard:task_list_updated", "args": [{"n": 1}], "room": "dashboard"}),
    )
    .await;
    peer.control(
        "/control/emit",
        json!({"event": "task:pr_updated", "args": [{"pr": 3}], "room": "task:t7"}),
    )
    .await;
    peer.control(
        "/control/emit",
        json!({"event": "task:pr_updated", "args": [{"pr": 4}], "room": "task:other"}),
    )
    .await;
    assert_eq!(event(&mut c).await.name, "dashboard:task_list_updated");
    let e = event(&mut c).await;
    assert_eq!(
        (e.name.as_str(), e.args),
        ("task:pr_updated", vec![json!({"pr": 3})])
    );
    c.emit("resync_requested", vec![json!({})]).unwrap();
    let e = event(&mut c).await;
    assert_eq!(
        (e.name.as_str(), e.args),
        (
            "received",
            vec![json!({"event": "resync_requested", "args": [{}]})]
        )
    );
}

#[tokio::test]
async fn server_pings_are_answered_and_keep_the_link() {
    // The server drops a client that does not pong within 300 ms.
    let peer = Peer::start(&["--ping-interval", "100", "--ping-timeout", "300"]).await;
    let mut c = SocketIoClient::connect(peer.opts()).await.expect("connect");
    let start = Instant::now();
    while c.stats().pings < 10 {
        assert!(start.elapsed() < WAIT, "pings: {:?}", c.stats());
        if let Some(i) = c.try_recv() {
            panic!("unexpected {i:?}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    peer.emit("still.alive", json!([1])).await;
    assert_eq!(event(&mut c).await.name, "still.alive");
    assert_eq!(peer.state().await["sockets"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn a_dead_link_is_detected() {
    for transport in ["websocket", "polling"] {
        let peer = Peer::start(&[
            "--transports",
            transport,
            "--ping-interval",
            "200",
            "--ping-timeout",
            "200",
        ])
        .await;
        let mut c = SocketIoClient::connect(peer.opts()).await.expect("connect");
        assert_eq!(c.transport_in_use().as_str(), transport);
        // Wait for one ping so the timer runs from a real heartbeat.
        eventually("a ping", || {
            let n = c.stats().pings;
            async move { n >= 1 }
        })
        .await;
        peer.signal("-STOP"); // the server freezes: no ping, no FIN
        let t = Instant::now();
        let reason = disconnected(&mut c).await;
        peer.signal("-CONT");
        assert_eq!(reason, DisconnectReason::PingTimeout, "{transport}");
        assert!(reason.is_recoverable());
        assert!(
            t.elapsed() < Duration::from_secs(5),
            "{transport}: took {:?}",
            t.elapsed()
        );
        // Final: recv keeps answering the same, and sending fails.
        assert_eq!(disconnected(&mut c).await, DisconnectReason::PingTimeout);
        assert!(matches!(
            c.emit("x", vec![]),
            Err(SocketIoError::Disconnected)
        ));
    }
}

#[tokio::test]
async fn long_polling_when_the_websocket_is_refused() {
    let peer = Peer::start(&[
        "--transports",
        "polling",
        "--namespace",
        "/realtime",
        "--token",
        "t",
        "--ping-interval",
        "300",
        "--ping-timeout",
        "1000",
    ])
    .await;
    // WebSocket only: a clear refusal.
    let mut opts = realtime(&peer, "t");
    opts.transports = vec![TransportKind::WebSocket];
    match SocketIoClient::connect(opts).await {
        Err(SocketIoError::UpgradeRefused {
            transport: TransportKind::WebSocket,
            status: 400,
            message,
        }) => {
            assert_eq!(message, "Transport unknown");
        }
        other => panic!("{other:?}"),
    }
    // Default preference falls back to long-polling.
    let mut c = SocketIoClient::connect(realtime(&peer, "t"))
        .await
        .expect("connect");
    assert_eq!(c.transport_in_use(), TransportKind::Polling);
    assert_eq!(peer.state().await["sockets"][0]["transport"], "polling");

    // Receive: several args, a burst (batched in one poll), binary.
    peer.emit("approval.created", json!([{"id": "a1"}, "x", 3]))
        .await;
    let e = event(&mut c).await;
    assert_eq!(
        (e.name.as_str(), e.args),
        (
            "approval.created",
            vec![json!({"id": "a1"}), json!("x"), json!(3)]
        )
    );
    for i in 0..20 {
        peer.emit("tick", json!([i])).await;
    }
    for i in 0..20 {
        assert_eq!(event(&mut c).await.args, vec![json!(i)]);
    }
    peer.emit("file", json!([{"$b64": "AQID"}])).await;
    assert_eq!(as_binary(&event(&mut c).await.args[0]), Some(vec![1, 2, 3]));

    // Send: emit, emit with ack (also binary), answer a server ack.
    c.emit("presence.update", vec![json!("away")]).unwrap();
    let e = event(&mut c).await;
    assert_eq!(
        e.args,
        vec![json!({"event": "presence.update", "args": ["away"]})]
    );
    let answer = c
        .emit_with_ack("upload", vec![binary_value(&[1, 2])])
        .await
        .unwrap();
    assert_eq!(
        answer,
        vec![json!({"event": "upload", "args": [{"$b64": "AQI="}]})]
    );
    let base = peer.base.clone();
    let http = peer.http.clone();
    let pending = tokio::spawn(async move {
        http.post(base.join("/control/emit").unwrap())
            .json(&json!({"event": "q", "args": [], "ack": true}))
            .send()
            .await
            .unwrap()
            .json::<Value>()
            .await
            .unwrap()
    });
    let e = event(&mut c).await;
    c.ack(e.ack.unwrap(), vec![json!("yes")]).unwrap();
    assert_eq!(
        tokio::time::timeout(WAIT, pending).await.unwrap().unwrap(),
        json!({"responses": [["yes"]]})
    );

    // Heartbeats go over polling too (the server would drop us otherwise).
    let p0 = c.stats().pings;
    eventually("three more pings", || {
        let n = c.stats().pings;
        async move { n >= p0 + 3 }
    })
    .await;
    peer.emit("still.alive", json!([])).await;
    assert_eq!(event(&mut c).await.name, "still.alive");
    assert_eq!(c.stats().decode_errors, 0);

    // A clean close reaches the server.
    c.close();
    assert_eq!(disconnected(&mut c).await, DisconnectReason::ClientClosed);
    eventually("the server to see the close", || async {
        peer.state().await["sockets"].as_array().unwrap().is_empty()
    })
    .await;
}

#[tokio::test]
async fn upgrades_from_polling_to_websocket_without_losing_events() {
    let peer = Peer::start(&[]).await;
    let mut opts = peer.opts();
    opts.transports = vec![TransportKind::Polling, TransportKind::WebSocket];
    let mut c = SocketIoClient::connect(opts).await.expect("connect");
    // Events sent while the upgrade runs all arrive, in order.
    for i in 0..30 {
        peer.emit("tick", json!([i])).await;
    }
    for i in 0..30 {
        assert_eq!(event(&mut c).await.args, vec![json!(i)]);
    }
    eventually("the upgrade", || {
        let t = c.transport_in_use();
        async move { t == TransportKind::WebSocket }
    })
    .await;
    eventually("the server to switch", || async {
        peer.state().await["sockets"][0]["transport"] == "websocket"
    })
    .await;
    assert_eq!(
        c.emit_with_ack("after.upgrade", vec![]).await.unwrap()[0]["event"],
        "after.upgrade"
    );
    peer.emit("tock", json!([])).await;
    assert_eq!(event(&mut c).await.name, "tock");
}

#[tokio::test]
async fn connection_state_recovery_replays_missed_events() {
    let peer = Peer::start(&["--namespace", "/realtime", "--token", "t", "--recovery"]).await;
    let mut c = SocketIoClient::connect(realtime(&peer, "t"))
        .await
        .expect("connect");
    assert!(!c.recovered());
    let first = c.recovery_state().expect("the server gave a pid");
    assert_eq!(first.offset, None);
    let sid = c.socket_id().to_owned();

    peer.emit("approval.created", json!([{"id": "a1"}])).await;
    let e = event(&mut c).await;
    assert_eq!(
        e.args,
        vec![json!({"id": "a1"})],
        "the offset is not among the args"
    );
    let offset = e.offset.clone().expect("recovery offsets");
    assert_eq!(
        c.recovery_state().unwrap().offset.as_deref(),
        Some(offset.as_str())
    );

    // The network drops; the server keeps the session.
    peer.control("/control/disconnect", json!({"mode": "transport"}))
        .await;
    let reason = disconnected(&mut c).await;
    assert!(reason.is_recoverable(), "{reason:?}");
    let state = c.recovery_state().unwrap();

    // Missed while away.
    peer.emit(
        "approval.updated",
        json!([{"id": "a1", "status": "approved"}]),
    )
    .await;
    peer.emit("file", json!(["bin", {"$b64": "AQI="}])).await;
    peer.emit("approval.deleted", json!([{"id": "a1"}])).await;

    let mut opts = realtime(&peer, "t");
    opts.recovery = Some(state.clone());
    let mut c = SocketIoClient::connect(opts).await.expect("reconnect");
    assert!(c.recovered(), "the server restored the session");
    assert_eq!(c.socket_id(), sid, "same socket id after recovery");
    let e = event(&mut c).await;
    assert_eq!(
        (e.name.as_str(), e.args),
        (
            "approval.updated",
            vec![json!({"id": "a1", "status": "approved"})]
        )
    );
    let e = event(&mut c).await;
    assert_eq!(e.name, "file");
    assert_eq!(as_binary(&e.args[1]), Some(vec![1, 2]));
    assert!(e.offset.is_some());
    let e = event(&mut c).await;
    assert_eq!(e.name, "approval.deleted");
    assert_eq!(c.recovery_state().unwrap().offset, e.offset);
    // Rooms came back too.
    let st = peer.state().await;
    assert!(st["sockets"][0]["rooms"]
        .as_array()
        .unwrap()
        .contains(&json!("workspace:w1")));
    assert_eq!(st["sockets"][0]["recovered"], true);

    // Live events still flow after recovery.
    peer.emit("agent.status.changed", json!([{"agentId": "g1"}]))
        .await;
    assert_eq!(event(&mut c).await.name, "agent.status.changed");

    // A kick is not recoverable; an unknown offset is not recovered.
    peer.control("/control/disconnect", json!({"mode": "namespace"}))
        .await;
    let reason = disconnected(&mut c).await;
    assert_eq!(reason, DisconnectReason::ServerDisconnect);
    assert!(!reason.is_recoverable());
    let mut opts = realtime(&peer, "t");
    opts.recovery = Some(pulse_core::transport::socketio::RecoveryState {
        pid: state.pid.clone(),
        offset: Some("no-such-offset".into()),
    });
    let c = SocketIoClient::connect(opts).await.expect("connect");
    assert!(!c.recovered());
    assert_ne!(c.recovery_state().unwrap().pid, state.pid);
}

#[tokio::test]
async fn recovery_works_over_long_polling() {
    let peer = Peer::start(&["--transports", "polling", "--recovery"]).await;
    let mut c = SocketIoClient::connect(peer.opts()).await.expect("connect");
    peer.emit("e", json!([1])).await;
    assert_eq!(event(&mut c).await.args, vec![json!(1)]);
    peer.control("/control/disconnect", json!({"mode": "transport"}))
        .await;
    let reason = disconnected(&mut c).await;
    assert!(reason.is_recoverable(), "{reason:?}");
    peer.emit("e", json!([2])).await;
    let mut opts = peer.opts();
    opts.recovery = c.recovery_state();
    let mut c = SocketIoClient::connect(opts).await.expect("reconnect");
    assert!(c.recovered());
    assert_eq!(c.transport_in_use(), TransportKind::Polling);
    assert_eq!(event(&mut c).await.args, vec![json!(2)]);
}

#[tokio::test]
async fn garbage_packets_are_counted_and_skipped() {
    let peer = Peer::start(&[]).await;
    let mut c = SocketIoClient::connect(peer.opts()).await.expect("connect");
    peer.emit("before", json!([])).await;
    assert_eq!(event(&mut c).await.name, "before");
    peer.control(
        "/control/raw",
        json!({
            "frames": [
                "2not json",                                  // BadJson
                "9",                                          // UnknownSocketPacket
                "2[]",                                        // InvalidPayload
                "2[\"connect\"]",                             // InvalidPayload (reserved name)
                "2/other,[\"x\"]",                            // another namespace: ignored
                "3999[\"nobody asked\"]",                     // stray ack: ignored
                "5x-[\"a\"]",                                 // BadAttachmentCount
                "51-[\"x\",{\"_placeholder\":true,\"num\":3}]" // BadPlaceholder once its attachment comes
            ],
            "binary": ["AQ==", "Ag=="],                      // the attachment, then UnexpectedBinary
            "engine_frames": ["zzz", ""]                      // UnknownEnginePacket, Empty
        }),
    )
    .await;
    peer.emit("after", json!([{"ok": true}])).await;
    let e = event(&mut c).await;
    assert_eq!(
        (e.name.as_str(), e.args),
        ("after", vec![json!({"ok": true})])
    );
    let stats = c.stats();
    assert_eq!(
        stats.decode_errors,
        9,
        "{stats:?} last: {:?}",
        c.last_decode_error()
    );
    assert_eq!(stats.ignored, 2, "{stats:?}");
    assert_eq!(stats.events, 2);
    // The connection is fine.
    assert!(c.emit_with_ack("ping.me", vec![]).await.is_ok());
    assert_eq!(peer.state().await["sockets"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn close_and_drop_end_the_connection() {
    let peer = Peer::start(&["--namespace", "/realtime", "--token", "t"]).await;
    let mut c = SocketIoClient::connect(realtime(&peer, "t"))
        .await
        .expect("connect");
    let sender = c.sender();
    c.close();
    assert_eq!(disconnected(&mut c).await, DisconnectReason::ClientClosed);
    assert!(matches!(
        sender.emit_with_ack("x", vec![]).await,
        Err(SocketIoError::Disconnected)
    ));
    eventually("the server to see the close", || async {
        peer.state().await["sockets"].as_array().unwrap().is_empty()
    })
    .await;
    // Dropping the client closes it too, even with a sender left.
    let c = SocketIoClient::connect(realtime(&peer, "t"))
        .await
        .expect("connect");
    let sender = c.sender();
    drop(c);
    eventually("the server to see the drop", || async {
        peer.state().await["sockets"].as_array().unwrap().is_empty()
    })
    .await;
    assert!(matches!(
        sender.emit("x", vec![]),
        Err(SocketIoError::Disconnected)
    ));
}

#[tokio::test]
async fn unreachable_servers_are_network_errors() {
    // A port nobody listens on (bind, note it, close).
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let opts = SocketIoOptions::new(format!("http://127.0.0.1:{port}").parse().unwrap());
    let err = SocketIoClient::connect(opts)
        .await
        .expect_err("nobody there");
    assert!(matches!(err, SocketIoError::Network(_)), "{err:?}");
    let mut opts = SocketIoOptions::new("http://127.0.0.1:1".parse().unwrap());
    opts.auth = Some(json!("not an object"));
    assert!(matches!(
        SocketIoClient::connect(opts).await,
        Err(SocketIoError::BadOptions(_))
    ));
}

/// The receive queue is bounded in bytes: a reader that stops reading while
/// the server sends more than `MAX_QUEUED_BYTES` of events makes the client
/// stop reading the link once the queue is full (the rest waits at the server),
/// and when the reader comes back every event arrives, in order, with the link
/// still up: nothing is dropped and the queue never holds much more than the
/// bound. Both transports: WebSocket and long-polling (where the server's next
/// answer carries its whole backlog, see below).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_receive_queue_is_bounded_in_bytes_and_slows_the_server_instead_of_dropping() {
    use pulse_core::transport::socketio::MAX_QUEUED_BYTES;
    for polling in [false, true] {
        let peer = Peer::start(&[]).await;
        let mut opts = peer.opts();
        if polling {
            opts.transports = vec![TransportKind::Polling];
        }
        let mut c = SocketIoClient::connect(opts).await.expect("connect");
        let chunk = "x".repeat(1 << 20);
        // Nobody reads while the server sends ~50% more than the bound.
        let n = MAX_QUEUED_BYTES / (1 << 20) * 3 / 2;
        for i in 0..n {
            peer.emit("big", json!([i, chunk])).await;
        }
        pulse_testkit::wait_for_some(
            "the queue to fill and the link to pause",
            Duration::from_secs(60),
            || {
                let s = c.stats();
                std::future::ready((s.paused > 0).then_some(()))
            },
        )
        .await;
        let s = c.stats();
        // Paused at the bound: at most one more link message (here one 1 MiB event,
        // or one long-polling body of them) was queued past it.
        assert!(
            s.queued_bytes <= MAX_QUEUED_BYTES + 8 * (1 << 20),
            "{} bytes queued (polling: {polling})",
            s.queued_bytes
        );
        assert!(
            (s.events as usize) < n,
            "the link went on being read: {} of {n} (polling: {polling})",
            s.events
        );
        // The reader comes back: all of it, in order, on the same link.
        let mut next = 0usize;
        let end = tokio::time::timeout(Duration::from_secs(120), async {
            while next < n {
                match c.recv().await {
                    SioIncoming::Event(ev) => {
                        assert_eq!(ev.name, "big");
                        assert_eq!(ev.args[0], json!(next), "polling: {polling}");
                        next += 1;
                    }
                    SioIncoming::Disconnected { reason } => return Some(reason),
                }
            }
            None
        })
        .await
        .expect("every event arrives");
        match end {
            None => assert!(c.stats().queued_bytes < 1 << 20),
            // Engine.IO's server answers the next poll with everything it buffered
            // meanwhile, in one body: past the transport's message bound the link
            // ends with that error (the session resyncs), never a longer read.
            Some(DisconnectReason::TransportError(m)) if polling => {
                assert!(m.contains("is over 16777216 bytes"), "{m}");
                assert!(
                    next >= MAX_QUEUED_BYTES >> 20,
                    "{next} of {n} delivered first"
                );
            }
            Some(other) => {
                panic!("disconnected after {next} of {n} (polling: {polling}): {other:?}")
            }
        }
    }
}
