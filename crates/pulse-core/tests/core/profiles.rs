//! Profiles against real servers built on the seeds' libraries: `ws` servers for
//! seeds 000 and 001, `socket.io` servers for 002 and 004, FastAPI + uvicorn for
//! 003 (see `tests/peers/`). Every event type of each seed arrives as domain
//! changes; restarts are survived with the state right afterwards; refused tokens
//! end in `Unauthorized` without a retry storm; garbage is counted and skipped;
//! Socket.IO works over long-polling when the server has no WebSocket.

use std::sync::Arc;
use std::time::Duration;

use pulse_core::auth::{AuthError, Secret, StaticToken, TokenFuture, TokenProvider};
use pulse_core::profile::schema::PingAnswer;
use pulse_core::profile::{Profile, ProfileDialect, ProfileError, VarValue};
use pulse_core::session::{
    ActionOutcome, ConnectionState, Intent, SessionConfig, SessionEvent, SessionHandle,
    SessionStatus,
};
use pulse_core::store::{Action, StoreHandle};
use pulse_core::store::{MemoryStore, Store};
use pulse_protocol::domain::{EntityKind, Object};
use pulse_testkit::peers::{jwt, Kind, Peer};
use pulse_testkit::process::bin;
use pulse_testkit::wait_for_some;
use serde_json::{json, Value};

use crate::common::until_within;

fn session(url: &str, dialect: ProfileDialect, token: &str) -> SessionHandle {
    session_with(url, dialect, Arc::new(StaticToken::new(Secret::new(token))))
}

fn session_with(
    url: &str,
    dialect: ProfileDialect,
    tokens: Arc<dyn TokenProvider>,
) -> SessionHandle {
    let mut config = SessionConfig::new(url.parse().unwrap());
    config.backoff.base = Duration::from_millis(100);
    config.backoff.floor = Duration::from_millis(20);
    config.backoff.cap = Duration::from_millis(500);
    // A restarted peer (Python imports) may take seconds: keep retrying fast.
    config.backoff.fail_after = 1000;
    config.backoff.slow_retry = Duration::from_millis(500);
    config.dialect = Arc::new(dialect);
    SessionHandle::spawn(config, tokens, StoreHandle::new(MemoryStore::new())).unwrap()
}

/// A provider whose refresh gives the next token of its list (then fails): a
/// sign-in that refreshes, to a token the server refuses too.
struct Rotating(std::sync::Mutex<Vec<String>>);

impl TokenProvider for Rotating {
    fn token(&self, force_refresh: bool) -> TokenFuture<'_> {
        Box::pin(async move {
            let mut list = self.0.lock().unwrap();
            if force_refresh && !list.is_empty() {
                list.remove(0);
            }
            list.first()
                .map(|t| Secret::new(t.as_str()))
                .ok_or_else(|| AuthError::Unauthorized("no token left".into()))
        })
    }
}

const LIMIT: Duration = Duration::from_secs(30);

async fn until(
    handle: &SessionHandle,
    what: &str,
    cond: impl Fn(&SessionStatus) -> bool,
) -> SessionStatus {
    until_within(LIMIT, handle, what, cond).await
}

async fn live(handle: &SessionHandle) -> SessionStatus {
    until(handle, "live", |s| s.state == ConnectionState::Live).await
}

fn get(handle: &SessionHandle, kind: EntityKind, id: &str) -> Option<Object> {
    handle.store().get(kind, id).unwrap().map(|e| e.data)
}

fn ids(handle: &SessionHandle, kind: EntityKind) -> Vec<String> {
    handle
        .store()
        .list(kind)
        .unwrap()
        .into_iter()
        .map(|e| e.id)
        .collect()
}

/// Wait (on every committed batch, and at most LIMIT) until `cond` holds on the store.
async fn until_store(handle: &SessionHandle, what: &str, cond: impl Fn(&dyn Store) -> bool) {
    let mut events = handle.subscribe();
    let check = || handle.store().read(|s| cond(s));
    let r = tokio::time::timeout(LIMIT, async {
        loop {
            if check() {
                return;
            }
            // Wake on the next commit, or re-check now and then (a commit may have
            // landed between the check and the subscription).
            let _ = tokio::time::timeout(Duration::from_millis(200), events.recv()).await;
        }
    })
    .await;
    if r.is_err() {
        let all = handle.store().all().unwrap();
        panic!(
            "timed out waiting for {what}; store: {all:#?}; status: {:?}",
            handle.status().borrow()
        );
    }
}

fn field(handle: &SessionHandle, kind: EntityKind, id: &str, f: &str) -> Value {
    get(handle, kind, id)
        .and_then(|o| o.get(f).cloned())
        .unwrap_or(Value::Null)
}

fn is(store: &dyn Store, kind: EntityKind, id: &str, f: &str, want: Value) -> bool {
    store
        .get(kind, id)
        .unwrap()
        .is_some_and(|e| e.data.get(f) == Some(&want))
}

/// The value at a JSON pointer of an entity's data (`null` when absent).
fn at(data: &Object, pointer: &str) -> Value {
    Value::Object(data.clone())
        .pointer(pointer)
        .cloned()
        .unwrap_or(Value::Null)
}

fn absent(store: &dyn Store, kind: EntityKind, id: &str) -> bool {
    store.get(kind, id).unwrap().is_none()
}

/// Wait until the peer's `/_control/info` satisfies `cond` (re-asked every few ms).
async fn until_peer(peer: &Peer, what: &str, cond: impl Fn(&Value) -> bool) -> Value {
    wait_for_some(what, LIMIT, || async {
        let info = peer.info().await;
        cond(&info).then_some(info)
    })
    .await
}

/// No retry storm: after `Unauthorized`, nothing reconnects on its own.
async fn assert_no_retry(handle: &SessionHandle, peer: &Peer) {
    let before = peer.info().await["connections"].as_u64().unwrap();
    assert!(
        before <= 2,
        "refused token tried {before} times (once, refreshed once at most)"
    );
    let mut rx = handle.status();
    rx.borrow_and_update();
    let changed = tokio::time::timeout(Duration::from_millis(800), rx.changed()).await;
    assert!(
        changed.is_err(),
        "the state moved on after Unauthorized: {:?}",
        handle.status().borrow()
    );
    assert_eq!(
        peer.info().await["connections"].as_u64().unwrap(),
        before,
        "reconnected after Unauthorized"
    );
}

// ---------------------------------------------------------------- seed 000

fn acme() -> String {
    jwt(json!({"sub": "ann", "tenant_id": "acme"}))
}

fn monitor_state(agents: Value, tickets: Value) -> Value {
    json!({"agents": agents, "agent_stats": {"active": 1, "idle": 1}, "tickets": tickets})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_monitor_every_seed_event_becomes_a_change() {
    let token = acme();
    let peer = Peer::start(
        Kind::AgentMonitor,
        &[&token],
        monitor_state(
            json!([{"id": "a1", "name": "Ada", "status": "idle"}]),
            json!([{"id": "t1", "title": "Fix", "state": "todo"}]),
        ),
        &[],
    );
    let mut profile = Profile::builtin("agent-monitor").unwrap();
    // A server that pings at the application level gets its answer.
    profile.spec.heartbeat.answer = Some(PingAnswer {
        event: "ping".into(),
        reply: r#"{"type":"pong"}"#.into(),
    });
    let h = session(&peer.url(), ProfileDialect::new(profile), &token);
    let st = live(&h).await;
    assert_eq!(st.stream.as_deref(), Some("agent-monitor:acme"));
    assert!(
        st.caveat.as_deref().unwrap().contains("cannot replay"),
        "{st:?}"
    );
    // The initial load (REST) is in before Live.
    assert_eq!(field(&h, EntityKind::Agent, "a1", "name"), "Ada");
    assert_eq!(field(&h, EntityKind::Ticket, "t1", "state"), "todo");
    assert_eq!(field(&h, EntityKind::Stats, "agents", "active"), 1);
    // Joined the tenant room, with the token in the first message only.
    let info = peer.info().await;
    assert_eq!(info["rooms"], json!([["tenant:acme"]]));

    let emit = |ty: &str, payload: Value| peer.emit(json!({"type": ty, "payload": payload}));
    emit(
        "agent:update",
        json!({"agentId": "a1", "status": "busy", "action": "status_change", "timestamp": 1700}),
    )
    .await;
    emit(
        "agent:update",
        json!({"stats": {"active": 2, "idle": 0}, "action": "stats_refresh"}),
    )
    .await;
    emit(
        "agent:heartbeat",
        json!({"agentId": "a1", "timestamp": 1800, "cpu": 0.5}),
    )
    .await;
    emit(
        "agent:stats",
        json!({"stats": {"active": 3}, "action": "stats_refresh"}),
    )
    .await;
    emit("ticket:created", json!({"ticketId": "t2", "ticket": {"id": "t2", "title": "New", "state": "todo", "project_id": "p"}})).await;
    emit("ticket:update", json!({"ticketId": "t1", "state": "review", "ticket": {"id": "t1", "title": "Fix it"}, "action": "updated"})).await;
    emit(
        "ticket:progress",
        json!({"ticketId": "t1", "phase": "build", "message": "compiling"}),
    )
    .await;
    emit("ticket:deleted", json!({"ticketId": "t2"})).await;
    emit(
        "agent:terminated",
        json!({"agentId": "a1", "reason": "manual"}),
    )
    .await;
    // Another tenant's room is not ours.
    peer.emit(json!({"room": "tenant:other", "type": "agent:update", "payload": {"agentId": "x9", "status": "busy", "action": "status_change"}})).await;

    until_store(&h, "agent a1 terminated", |s| {
        is(s, EntityKind::Agent, "a1", "status", json!("terminated"))
    })
    .await;
    let a1 = get(&h, EntityKind::Agent, "a1").unwrap();
    assert_eq!(a1["last_heartbeat"], 1800);
    assert_eq!(
        (a1["name"].clone(), a1["terminated_reason"].clone()),
        (json!("Ada"), json!("manual"))
    );
    assert_eq!(field(&h, EntityKind::Stats, "agents", "active"), 3);
    let t1 = get(&h, EntityKind::Ticket, "t1").unwrap();
    assert_eq!(
        (t1["state"].clone(), t1["title"].clone()),
        (json!("review"), json!("Fix it"))
    );
    // Progress is a timeline entry as Pulse's own ({type, text, ts}); the state in
    // the status history.
    let entry = &t1["timeline"][0];
    assert_eq!(
        (entry["type"].clone(), entry["text"].clone()),
        (json!("build"), json!("compiling"))
    );
    assert!(entry["ts"].is_i64(), "{entry}");
    assert_eq!(t1["status_history"][0]["status"], "review");
    assert!(
        get(&h, EntityKind::Ticket, "t2").is_none(),
        "created then deleted"
    );
    assert!(
        get(&h, EntityKind::Agent, "x9").is_none(),
        "tenant isolation"
    );
    peer.control("ping", json!({})).await;
    until_peer(&peer, "the application ping answered", |i| {
        i["app_pongs"] == 1
    })
    .await;
    let st = h.status().borrow().clone();
    assert_eq!(
        (st.counters.rejected_events, st.counters.decode_errors),
        (0, 0),
        "{st:?}"
    );
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_monitor_survives_a_restart_and_reloads_what_it_missed() {
    let token = acme();
    let mut peer = Peer::start(
        Kind::AgentMonitor,
        &[&token],
        monitor_state(
            json!([{"id": "a1", "status": "idle"}]),
            json!([{"id": "t1", "state": "todo"}]),
        ),
        &[],
    );
    let h = session(
        &peer.url(),
        ProfileDialect::new(Profile::builtin("agent-monitor").unwrap()),
        &token,
    );
    live(&h).await;
    let connections = h.status().borrow().counters.connections;
    // While it is down, a1 got busy, t1 was deleted and t3 created: no event says so.
    peer.restart(monitor_state(
        json!([{"id": "a1", "status": "busy"}, {"id": "a2", "status": "idle"}]),
        json!([{"id": "t3", "state": "doing"}]),
    ));
    until(&h, "a new connection", |s| {
        s.counters.connections > connections && s.state == ConnectionState::Live
    })
    .await;
    until_store(&h, "the reloaded state", |s| {
        is(s, EntityKind::Agent, "a1", "status", json!("busy"))
            && absent(s, EntityKind::Ticket, "t1")
    })
    .await;
    assert_eq!(ids(&h, EntityKind::Agent), vec!["a1", "a2"]);
    assert_eq!(ids(&h, EntityKind::Ticket), vec!["t3"]);
    // And live events flow again on the new connection.
    peer.emit(json!({"type": "agent:update", "payload": {"agentId": "a2", "status": "busy", "action": "status_change"}})).await;
    until_store(&h, "a2 busy", |s| {
        is(s, EntityKind::Agent, "a2", "status", json!("busy"))
    })
    .await;
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_monitor_refused_first_message_token_is_unauthorized() {
    let good = acme();
    let peer = Peer::start(
        Kind::AgentMonitor,
        &[&good],
        monitor_state(json!([]), json!([])),
        &[],
    );
    let h = session(
        &peer.url(),
        ProfileDialect::new(Profile::builtin("agent-monitor").unwrap()),
        &acme(),
    );
    let st = until(&h, "unauthorized", |s| {
        matches!(s.state, ConnectionState::Unauthorized { .. })
    })
    .await;
    let ConnectionState::Unauthorized { message } = st.state else {
        unreachable!()
    };
    assert!(message.contains("invalid token"), "{message}");
    assert_no_retry(&h, &peer).await;
    h.stop().await;
}

// ---------------------------------------------------------------- seed 001

fn bridge_state(pending: u64) -> Value {
    json!({
        "tasks": {"pending": pending, "inProgress": 1, "completed": 2, "total": pending + 3},
        "approvals": {"pending": 4, "approved": 0, "rejected": 0},
        "conversations": {"open": 5, "escalated": 1, "resolved": 0},
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn event_bridge_stats_pushes_garbage_and_unknown_events() {
    let token = acme();
    let peer = Peer::start(Kind::EventBridge, &[&token], bridge_state(1), &[]);
    let h = session(
        &peer.url(),
        ProfileDialect::new(Profile::builtin("event-bridge").unwrap()),
        &token,
    );
    live(&h).await;
    // The server's pushes on connect are the resync: no REST request at all.
    assert_eq!(field(&h, EntityKind::Stats, "tasks", "pending"), 1);
    assert_eq!(field(&h, EntityKind::Stats, "approvals", "pending"), 4);
    assert_eq!(
        field(&h, EntityKind::Stats, "conversations", "escalated"),
        1
    );
    assert_eq!(
        peer.info().await["rest"],
        json!({}),
        "network at rest: nothing but the socket"
    );

    peer.control("raw", json!({"text": "not json at all"}))
        .await;
    peer.control("raw", json!({"text": "{\"kind\": \"no type\"}"}))
        .await;
    peer.control("raw", json!({"text": "[1, 2]"})).await;
    peer.emit(json!({"type": "stats:weather", "payload": {"sunny": true}}))
        .await;
    peer.emit(json!({"type": "stats:tasks", "payload": "not an object"}))
        .await;
    peer.emit(json!({"type": "stats:tasks", "payload": {"pending": 9, "inProgress": 0, "completed": 0, "total": 9}})).await;
    peer.emit(json!({"type": "stats:approvals", "payload": {"pending": 7}}))
        .await;
    peer.emit(json!({"type": "stats:conversations", "payload": {"open": 0, "escalated": 2}}))
        .await;
    until_store(&h, "conversation stats", |s| {
        is(s, EntityKind::Stats, "conversations", "escalated", json!(2))
    })
    .await;
    assert_eq!(field(&h, EntityKind::Stats, "tasks", "pending"), 9);
    assert_eq!(field(&h, EntityKind::Stats, "approvals", "pending"), 7);
    let st = h.status().borrow().clone();
    assert_eq!(st.counters.decode_errors, 3, "{st:?}");
    assert_eq!(st.counters.rejected_events, 2, "{st:?}");
    assert_eq!(
        st.counters.connections, 1,
        "garbage never cost the connection"
    );
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn event_bridge_reloads_over_rest_when_pushes_do_not_come_and_after_a_restart() {
    let token = acme();
    let mut peer = Peer::start(Kind::EventBridge, &[&token], bridge_state(1), &[]);
    peer.control("initial", json!({"send": false})).await;
    let mut profile = Profile::builtin("event-bridge").unwrap();
    profile.spec.resync.timeout_ms = 300;
    let h = session(&peer.url(), ProfileDialect::new(profile), &token);
    live(&h).await;
    assert_eq!(field(&h, EntityKind::Stats, "tasks", "pending"), 1);
    assert_eq!(
        field(&h, EntityKind::Stats, "approvals", "pending"),
        4,
        "REST wraps approvals in {{stats}}"
    );
    let rest = peer.info().await["rest"].clone();
    assert_eq!(rest["/api/v1/tasks/stats"], 1, "{rest}");

    // Restarted with other numbers (pushes on again): right after reconnecting.
    let connections = h.status().borrow().counters.connections;
    peer.restart(bridge_state(42));
    until(&h, "reconnected", |s| {
        s.counters.connections > connections && s.state == ConnectionState::Live
    })
    .await;
    until_store(&h, "new stats", |s| {
        is(s, EntityKind::Stats, "tasks", "pending", json!(42))
    })
    .await;
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn event_bridge_query_token_refused_is_unauthorized_and_never_shown() {
    let good = acme();
    let bad = acme();
    let peer = Peer::start(Kind::EventBridge, &[&good], bridge_state(0), &[]);
    let h = session(
        &peer.url(),
        ProfileDialect::new(Profile::builtin("event-bridge").unwrap()),
        &bad,
    );
    let st = until(&h, "unauthorized", |s| {
        matches!(s.state, ConnectionState::Unauthorized { .. })
    })
    .await;
    let text = serde_json::to_string(&st).unwrap();
    assert!(
        !text.contains(&bad),
        "the token leaked into the status: {text}"
    );
    assert_no_retry(&h, &peer).await;
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn event_bridge_dead_link_is_detected_and_reopened() {
    let token = acme();
    let peer = Peer::start(Kind::EventBridge, &[&token], bridge_state(1), &[]);
    let mut profile = Profile::builtin("event-bridge").unwrap();
    profile.spec.heartbeat.interval_ms = 150;
    profile.spec.heartbeat.timeout_ms = 250;
    let h = session(&peer.url(), ProfileDialect::new(profile), &token);
    live(&h).await;
    peer.control("freeze", json!({})).await;
    let st = until(&h, "dead link noticed", |s| {
        matches!(&s.state, ConnectionState::Reconnecting { error, .. } if error.contains("dead link")) || s.counters.connections >= 2
    })
    .await;
    assert!(st.counters.connections >= 1);
    until(&h, "live on a new connection", |s| {
        s.counters.connections >= 2 && s.state == ConnectionState::Live
    })
    .await;
    h.stop().await;
}

// ---------------------------------------------------------------- seed 003

fn fastapi_state(total: u64) -> Value {
    json!({
        "dashboard": {"executions": {"total": total, "running": 0}, "agents": {"active": 2}},
        "executions": [{"id": "e1", "workflow_id": "w1", "status": "completed"}],
    })
}

fn fast(profile: &mut Profile) {
    profile.spec.heartbeat.interval_ms = 200;
    profile.spec.heartbeat.timeout_ms = 400;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fastapi_dashboard_every_seed_event_text_pings_and_subscription() {
    let token = acme();
    let peer = Peer::start(Kind::FastApi, &[&token], fastapi_state(1), &[]);
    let mut profile = Profile::builtin("fastapi-dashboard").unwrap();
    fast(&mut profile);
    let h = session(&peer.url(), ProfileDialect::new(profile), &token);
    live(&h).await;
    assert_eq!(
        field(&h, EntityKind::Stats, "dashboard", "executions")["total"],
        1
    );
    assert_eq!(field(&h, EntityKind::Ticket, "e1", "state"), "completed");
    assert_eq!(field(&h, EntityKind::Ticket, "e1", "type"), "execution");
    let info = peer.info().await;
    assert_eq!(
        info["subscriptions"],
        json!([[{"type": "subscribe", "channel": "dashboard-updates"}]])
    );

    // The stats change on the server, then the event says "invalidate".
    peer.control(
        "state",
        json!({"dashboard": {"executions": {"total": 2, "running": 1}}}),
    )
    .await;
    let emit = |ty: &str, data: Value| peer.emit(json!({"type": ty, "data": data}));
    emit(
        "dashboard-stats-update",
        json!({"executions": {"total": 2}}),
    )
    .await;
    emit(
        "execution-started",
        json!({"execution_id": "e2", "workflow_id": "w1", "status": "running"}),
    )
    .await;
    emit(
        "execution-completed",
        json!({"execution_id": "e2", "status": "completed"}),
    )
    .await;
    emit(
        "execution-started",
        json!({"execution_id": "e3", "workflow_id": "w2", "status": "running"}),
    )
    .await;
    emit(
        "execution-failed",
        json!({"execution_id": "e3", "status": "failed", "error": "boom"}),
    )
    .await;
    emit(
        "agent-task-update",
        json!({"agent_id": "ag1", "task_id": "task-7", "status": "working"}),
    )
    .await;
    emit("system-metrics-update", json!({"cpu": 0.3})).await;
    emit("cost-analytics-update", json!({"usd": 12.5})).await;
    emit("connector-stats-update", json!({"slack": 3})).await;
    emit("error", json!({"message": "something on the server"})).await;
    until_store(&h, "connector stats", |s| {
        is(s, EntityKind::Stats, "connectors", "slack", json!(3))
    })
    .await;
    assert_eq!(
        field(&h, EntityKind::Stats, "dashboard", "executions")["total"],
        2,
        "refetched"
    );
    assert_eq!(field(&h, EntityKind::Ticket, "e2", "state"), "completed");
    assert_eq!(field(&h, EntityKind::Ticket, "e2", "workflow_id"), "w1");
    assert_eq!(field(&h, EntityKind::Ticket, "e3", "error"), "boom");
    assert_eq!(field(&h, EntityKind::Ticket, "e3", "state"), "failed");
    assert_eq!(
        field(&h, EntityKind::Agent, "ag1", "current_ticket"),
        "task-7"
    );
    assert_eq!(field(&h, EntityKind::Stats, "system", "cpu"), 0.3);
    assert_eq!(field(&h, EntityKind::Stats, "costs", "usd"), 12.5);
    // The server's `error` is a notice for the user: a notification of level error.
    let notices = h.store().list(EntityKind::Notification).unwrap();
    assert_eq!(notices.len(), 1, "{notices:?}");
    let n = &notices[0].data;
    assert_eq!(
        (n["level"].clone(), n["body"].clone(), n["read"].clone()),
        (
            json!("error"),
            json!("something on the server"),
            json!(false)
        )
    );
    assert!(notices[0].id.starts_with("error:"), "{}", notices[0].id);
    // Text pings are answered with {"type": "pong"}, which is swallowed.
    until_peer(&peer, "two text pings", |i| i["pings"].as_u64() >= Some(2)).await;
    let st = h.status().borrow().clone();
    assert_eq!(
        (st.counters.rejected_events, st.counters.decode_errors),
        (0, 0),
        "{st:?}"
    );
    assert_eq!(st.counters.connections, 1, "pongs keep the link alive");
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fastapi_dashboard_restart_dead_link_garbage_and_refused_token() {
    let token = acme();
    let mut peer = Peer::start(Kind::FastApi, &[&token], fastapi_state(1), &[]);
    let mut profile = Profile::builtin("fastapi-dashboard").unwrap();
    fast(&mut profile);
    let h = session(&peer.url(), ProfileDialect::new(profile.clone()), &token);
    live(&h).await;
    peer.control("raw", json!({"text": "<html>"})).await;
    peer.emit(json!({"type": "execution-started", "data": {"workflow_id": "no id"}}))
        .await;
    peer.emit(json!({"type": "brand-new-event", "data": {}}))
        .await;
    until(&h, "counted", |s| {
        s.counters.decode_errors == 1 && s.counters.rejected_events == 2
    })
    .await;

    // Frozen server: pings go unanswered, the link is declared dead and reopened.
    peer.control("freeze", json!({})).await;
    until(&h, "reopened", |s| {
        s.counters.connections >= 2 && s.state == ConnectionState::Live
    })
    .await;

    // Restart with a state that changed meanwhile.
    let mut state = fastapi_state(5);
    state["executions"] = json!([{"id": "e9", "status": "running"}]);
    peer.restart(state);
    until_store(&h, "reloaded", |s| {
        absent(s, EntityKind::Ticket, "e1")
            && is(s, EntityKind::Ticket, "e9", "state", json!("running"))
    })
    .await;
    until_store(&h, "stats reloaded", |s| {
        s.get(EntityKind::Stats, "dashboard")
            .unwrap()
            .is_some_and(|e| at(&e.data, "/executions/total") == 5)
    })
    .await;
    h.stop().await;

    // A refused token: HTTP 403 on the upgrade.
    let h = session(&peer.url(), ProfileDialect::new(profile), &acme());
    let st = until(&h, "unauthorized", |s| {
        matches!(s.state, ConnectionState::Unauthorized { .. })
    })
    .await;
    assert!(format!("{:?}", st.state).contains("refused"), "{st:?}");
    let before = peer.info().await["auth_refused"].as_u64().unwrap();
    assert!(before <= 2, "{before} refused attempts");
    h.stop().await;
}

// ---------------------------------------------------------------- seed 002

fn realtime_state() -> Value {
    json!({
        "approvals": [{"id": "ap1", "title": "Deploy", "status": "pending"}],
        "agents": [{"id": "ag1", "status": "idle"}],
        "notifications": [],
        "messages": [{"id": "m0", "chatId": "c1", "text": "earlier"}],
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nest_realtime_every_seed_event_over_socketio() {
    let token = jwt(json!({"sub": "ann", "workspaceId": "ws1"}));
    let peer = Peer::start(Kind::NestRealtime, &[&token], realtime_state(), &[]);
    let h = session(
        &peer.url(),
        ProfileDialect::new(Profile::builtin("nest-realtime").unwrap()),
        &token,
    );
    let st = live(&h).await;
    assert_eq!(st.stream.as_deref(), Some("nest-realtime:ws1"));
    assert_eq!(field(&h, EntityKind::Approval, "ap1", "title"), "Deploy");
    assert_eq!(field(&h, EntityKind::Message, "m0", "text"), "earlier");

    let emit = |event: &str, data: Value| {
        peer.emit(json!({"event": event, "data": data, "workspace": "ws1"}))
    };
    emit(
        "approval.created",
        json!({"id": "ap2", "title": "Refund", "status": "pending", "amount": 30}),
    )
    .await;
    emit(
        "approval.updated",
        json!({"id": "ap1", "status": "approved"}),
    )
    .await;
    emit("approval.deleted", json!({"id": "ap2"})).await;
    emit(
        "agent.status.changed",
        json!({"agentId": "ag1", "status": "busy"}),
    )
    .await;
    emit(
        "notification.new",
        json!({"id": "n1", "title": "Escalation", "read": false}),
    )
    .await;
    emit(
        "chat.message",
        json!({"id": "m1", "chatId": "c1", "text": "hello"}),
    )
    .await;
    // The other reading of the seed's `ChatMessage`: `content`, `createdAt`, `senderName`.
    emit(
        "chat.message",
        json!({"id": "m2", "chatId": "c2", "content": "hi there",
               "createdAt": "2026-12-01T10:00:00Z", "senderName": "Bo"}),
    )
    .await;
    peer.emit(json!({"event": "approval.created", "data": {"id": "nope"}, "workspace": "other"}))
        .await;
    emit("presence.weird", json!({})).await;
    until_store(&h, "chat messages", |s| {
        is(s, EntityKind::Message, "m1", "text", json!("hello"))
            && is(s, EntityKind::Message, "m2", "text", json!("hi there"))
    })
    .await;
    // Each message is in its chat (`chatId`), the REST one too: the chat panel's grouping.
    for (m, chat) in [("m0", "c1"), ("m1", "c1"), ("m2", "c2")] {
        assert_eq!(
            field(&h, EntityKind::Message, m, "conversation_id"),
            chat,
            "{m}"
        );
    }
    let m2 = get(&h, EntityKind::Message, "m2").unwrap();
    assert_eq!(
        (m2["ts"].clone(), m2["author"].clone()),
        (json!("2026-12-01T10:00:00Z"), json!("Bo"))
    );
    let ap1 = get(&h, EntityKind::Approval, "ap1").unwrap();
    assert_eq!(
        (ap1["status"].clone(), ap1["title"].clone()),
        (json!("approved"), json!("Deploy"))
    );
    assert!(get(&h, EntityKind::Approval, "ap2").is_none());
    assert!(
        get(&h, EntityKind::Approval, "nope").is_none(),
        "workspace isolation"
    );
    assert_eq!(field(&h, EntityKind::Agent, "ag1", "status"), "busy");
    assert_eq!(
        field(&h, EntityKind::Notification, "n1", "title"),
        "Escalation"
    );
    until(&h, "the unknown event counted", |s| {
        s.counters.rejected_events == 1
    })
    .await;

    // Garbage on the socket: counted, skipped, the link stays.
    peer.control("raw", json!({"text": "garbage"})).await;
    peer.control("raw", json!({"text": "42/realtime,[\"broken"}))
        .await;
    emit(
        "approval.created",
        json!({"id": "ap3", "title": "After garbage"}),
    )
    .await;
    until_store(&h, "ap3", |s| !absent(s, EntityKind::Approval, "ap3")).await;
    let st = h.status().borrow().clone();
    assert!(st.counters.decode_errors >= 2, "{st:?}");
    assert_eq!(st.counters.connections, 1, "{st:?}");
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nest_realtime_recovers_short_drops_and_reloads_after_a_restart() {
    let token = jwt(json!({"sub": "ann", "workspaceId": "ws1"}));
    let mut peer = Peer::start(Kind::NestRealtime, &[&token], realtime_state(), &[]);
    let h = session(
        &peer.url(),
        ProfileDialect::new(Profile::builtin("nest-realtime").unwrap()),
        &token,
    );
    live(&h).await;
    emit_approval(&peer, "ap5").await;
    until_store(&h, "ap5", |s| !absent(s, EntityKind::Approval, "ap5")).await;
    let rest_before = peer.info().await["rest"]["/api/approvals"]
        .as_u64()
        .unwrap();

    // A short drop: the server keeps the session, events meanwhile are replayed.
    peer.control("drop", json!({})).await;
    emit_approval(&peer, "ap6").await;
    until(&h, "reconnected", |s| {
        s.counters.connections >= 2 && s.state == ConnectionState::Live
    })
    .await;
    until_store(&h, "ap6 replayed or delivered", |s| {
        !absent(s, EntityKind::Approval, "ap6")
    })
    .await;
    let info = peer.info().await;
    assert_eq!(info["recovered"], 1, "{info}");
    assert_eq!(
        info["rest"]["/api/approvals"], rest_before,
        "a recovered session needs no reload"
    );

    // A restart: nothing to recover, so the cache is reloaded over REST.
    let connections = h.status().borrow().counters.connections;
    let mut state = realtime_state();
    state["approvals"] = json!([{"id": "ap9", "title": "While down", "status": "pending"}]);
    peer.restart(state);
    until(&h, "reconnected", |s| {
        s.counters.connections > connections && s.state == ConnectionState::Live
    })
    .await;
    until_store(&h, "reloaded", |s| {
        absent(s, EntityKind::Approval, "ap1") && !absent(s, EntityKind::Approval, "ap9")
    })
    .await;
    assert_eq!(ids(&h, EntityKind::Approval), vec!["ap9"]);
    h.stop().await;
}

async fn emit_approval(peer: &Peer, id: &str) {
    peer.emit(
        json!({"event": "approval.created", "data": {"id": id, "title": id}, "workspace": "ws1"}),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nest_realtime_refused_handshake_auth_is_unauthorized() {
    let good = jwt(json!({"workspaceId": "ws1"}));
    let peer = Peer::start(Kind::NestRealtime, &[&good], realtime_state(), &[]);
    let h = session(
        &peer.url(),
        ProfileDialect::new(Profile::builtin("nest-realtime").unwrap()),
        &jwt(json!({"workspaceId": "ws1"})),
    );
    let st = until(&h, "unauthorized", |s| {
        matches!(s.state, ConnectionState::Unauthorized { .. })
    })
    .await;
    assert!(format!("{:?}", st.state).contains("Unauthorized"), "{st:?}");
    assert_no_retry(&h, &peer).await;
    h.stop().await;
}

/// A seed-002 server without `GET /api/agents` (the profile's guess): Live anyway,
/// with a caveat naming it, events flow, and the 404 is asked once per connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nest_realtime_without_a_rest_resource_goes_live_with_a_caveat() {
    let token = jwt(json!({"sub": "ann", "workspaceId": "ws1"}));
    let peer = Peer::start(
        Kind::NestRealtime,
        &[&token],
        realtime_state(),
        &["--missing", "/api/agents", "--recovery", "off"],
    );
    let h = session(
        &peer.url(),
        ProfileDialect::new(Profile::builtin("nest-realtime").unwrap()),
        &token,
    );
    let st = live(&h).await;
    let caveat = st.caveat.clone().unwrap_or_default();
    assert!(caveat.contains("/api/agents"), "{caveat}");
    assert!(caveat.contains("`agents`"), "{caveat}");
    assert!(caveat.contains("missed events are replayed"), "{caveat}");
    assert_eq!(field(&h, EntityKind::Approval, "ap1", "title"), "Deploy");

    let emit = |event: &str, data: Value| {
        peer.emit(json!({"event": event, "data": data, "workspace": "ws1"}))
    };
    emit(
        "chat.message",
        json!({"id": "m1", "chatId": "c1", "text": "hello"}),
    )
    .await;
    emit_approval(&peer, "ap2").await;
    until_store(&h, "chat and approval", |s| {
        is(s, EntityKind::Message, "m1", "text", json!("hello"))
            && !absent(s, EntityKind::Approval, "ap2")
    })
    .await;
    // Longer than the first retry delays: a 404 is not asked again.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let info = peer.info().await;
    assert_eq!(info["rest"]["/api/agents"], 1, "{info}");
    assert_eq!(info["connections"], 1, "{info}");
    let st = h.status().borrow().clone();
    assert_eq!(st.state, ConnectionState::Live, "{st:?}");
    assert_eq!(st.counters.connections, 1, "{st:?}");

    // The next connection asks once more (the server may have it by now).
    peer.control("drop", json!({})).await;
    until_peer(&peer, "asked again after the reconnect", |i| {
        i["rest"]["/api/agents"] == 2
    })
    .await;
    until(&h, "live again", |s| {
        s.counters.connections == 2 && s.state == ConnectionState::Live
    })
    .await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let info = peer.info().await;
    assert_eq!(info["rest"]["/api/agents"], 2, "{info}");
    h.stop().await;
}

/// A refetch answered 500 then 200: the caveat appears, and goes once a retry
/// (with backoff, on the same link) succeeds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nest_realtime_failed_refetch_is_retried_and_its_caveat_goes() {
    let token = jwt(json!({"sub": "ann", "workspaceId": "ws1"}));
    let peer = Peer::start(
        Kind::NestRealtime,
        &[&token],
        realtime_state(),
        &["--fail", "/api/agents:500:2", "--recovery", "off"],
    );
    let h = session(
        &peer.url(),
        ProfileDialect::new(Profile::builtin("nest-realtime").unwrap()),
        &token,
    );
    let st = until(&h, "live with a caveat about agents", |s| {
        s.state == ConnectionState::Live
            && s.caveat
                .as_deref()
                .is_some_and(|c| c.contains("/api/agents"))
    })
    .await;
    assert!(st.caveat.as_deref().unwrap().contains("HTTP 500"), "{st:?}");
    let st = until(&h, "the caveat about agents gone", |s| {
        !s.caveat.as_deref().unwrap_or("").contains("/api/agents")
    })
    .await;
    let own = Profile::builtin("nest-realtime").unwrap().spec.caveat;
    assert_eq!(st.caveat, own);
    until_store(&h, "agents loaded", |s| {
        is(s, EntityKind::Agent, "ag1", "status", json!("idle"))
    })
    .await;
    let st = h.status().borrow().clone();
    assert_eq!(st.counters.connections, 1, "the link never ended: {st:?}");
    assert_eq!(st.state, ConnectionState::Live);
    assert_eq!(peer.info().await["rest"]["/api/agents"], 3);
    h.stop().await;
}

/// Refusals as Socket.IO servers make them: the seed's `handleConnection` that
/// kicks a bad client (`disconnect(true)`, and the namespace-only
/// `disconnect()`), and namespace middleware (`connect_error`). Each is Signed
/// out after at most 2 connections, with a refresh to another refused token, and
/// a good token on the same server stays live. With the built-in profile the
/// initial REST load may see the refusal first (its 401); without a REST load the
/// kick alone must be read as a refusal.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nest_realtime_refusals_in_handle_connection_and_middleware_are_unauthorized() {
    let good = jwt(json!({"workspaceId": "ws1"}));
    let cases = [
        ("connection", false),
        ("connection-ns", false),
        ("connection", true),
        ("middleware", true),
    ];
    for (refuse, rest) in cases {
        let peer = Peer::start(
            Kind::NestRealtime,
            &[&good],
            realtime_state(),
            &["--refuse", refuse, "--recovery", "off"],
        );
        let mut profile = Profile::builtin("nest-realtime").unwrap();
        if !rest {
            profile.spec.resync.refetch.clear();
        }
        let bad = vec![
            jwt(json!({"workspaceId": "ws1"})),
            jwt(json!({"workspaceId": "ws1"})),
        ];
        let h = session_with(
            &peer.url(),
            ProfileDialect::new(profile.clone()),
            Arc::new(Rotating(std::sync::Mutex::new(bad))),
        );
        let st = until(&h, "unauthorized", |s| {
            matches!(s.state, ConnectionState::Unauthorized { .. })
        })
        .await;
        let info = peer.info().await;
        let n = info["connections"].as_u64().unwrap();
        if rest {
            // The socket's refusal or the REST load's 401, whichever comes first.
            assert!((1..=2).contains(&n), "{refuse}: {info} {st:?}");
        } else {
            assert_eq!(n, 2, "{refuse}: refreshed once: {info} {st:?}");
            let ConnectionState::Unauthorized { message } = &st.state else {
                unreachable!()
            };
            assert!(message.contains("disconnected right after"), "{message}");
        }
        assert_eq!(info["auth_refused"], n, "{refuse}: {info}");
        assert_eq!(info["auth_ok"], 0, "{refuse}: {info}");
        assert_no_retry(&h, &peer).await;
        h.stop().await;

        let ok = session(&peer.url(), ProfileDialect::new(profile), &good);
        live(&ok).await;
        emit_approval(&peer, "ap7").await;
        until_store(&ok, "an event after a good connect", |s| {
            !absent(s, EntityKind::Approval, "ap7")
        })
        .await;
        assert_eq!(ok.status().borrow().counters.connections, 1, "{refuse}");
        ok.stop().await;
    }
}

// ---------------------------------------------------------------- seed 004

fn tasks_state(tasks: Value) -> Value {
    json!({ "tasks": tasks })
}

fn tasks_dialect() -> ProfileDialect {
    let mut p = Profile::builtin("tasks-gateway").unwrap();
    p.spec.resync.timeout_ms = 2000;
    ProfileDialect::new(p).with_var("tasks", VarValue::Many(vec!["t1".into()]))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tasks_gateway_every_seed_event_and_resync_after_restart() {
    let mut peer = Peer::start(
        Kind::TasksGateway,
        &[],
        tasks_state(json!([
            {"id": "t1", "title": "Add login", "status": "analyzing", "events": []},
            {"id": "t2", "title": "Fix CSS", "status": "dispatched"},
        ])),
        &[],
    );
    let h = session(&peer.url(), tasks_dialect(), "");
    let st = live(&h).await;
    assert!(
        st.caveat.as_deref().unwrap().contains("no authentication"),
        "{st:?}"
    );
    assert_eq!(field(&h, EntityKind::Ticket, "t1", "state"), "analyzing");
    assert_eq!(field(&h, EntityKind::Ticket, "t2", "title"), "Fix CSS");
    let info = peer.info().await;
    assert_eq!(
        (info["dashboard_joins"].clone(), info["task_joins"].clone()),
        (json!(1), json!(1))
    );

    let emit = |event: &str, data: Value| {
        peer.emit(json!({"event": event, "data": data, "rooms": ["dashboard", "task:t1"]}))
    };
    emit(
        "task:status_changed",
        json!({"taskId": "t1", "status": "needs_clarification", "previousStatus": "analyzing"}),
    )
    .await;
    emit(
        "task:event_added",
        json!({"taskId": "t1", "event": {"type": "comment", "body": "which provider?"}}),
    )
    .await;
    emit("task:pr_updated", json!({"taskId": "t1", "pr": {"number": 12, "state": "open", "url": "https://example.invalid/pr/12"}})).await;
    peer.emit(json!({"event": "task:state", "data": {"id": "t1", "title": "Add login (OAuth)", "status": "dispatched"}, "rooms": ["task:t1"]})).await;
    emit(
        "dashboard:task_list_updated",
        json!({"tasks": [
            {"id": "t1", "title": "Add login (OAuth)", "status": "dispatched"},
            {"id": "t3", "title": "New one", "status": "analyzing"},
        ]}),
    )
    .await;
    until_store(&h, "task list replaced", |s| {
        absent(s, EntityKind::Ticket, "t2") && !absent(s, EntityKind::Ticket, "t3")
    })
    .await;
    let t1 = get(&h, EntityKind::Ticket, "t1").unwrap();
    assert_eq!(t1["state"], "dispatched");
    assert_eq!(t1["title"], "Add login (OAuth)");
    // Neither the task's state (no events, no PR) nor the list wiped what arrived
    // by their own events: the timeline, the PR, the status history.
    assert_eq!(t1["timeline"][0]["body"], "which provider?", "{t1:?}");
    assert_eq!(t1["pr"]["number"], 12, "{t1:?}");
    assert_eq!(
        (
            t1["status_history"][0]["status"].clone(),
            t1["status_history"][0]["from"].clone()
        ),
        (json!("needs_clarification"), json!("analyzing"))
    );

    // A list with the PR as null and the timeline absent still keeps both.
    emit(
        "dashboard:task_list_updated",
        json!({"tasks": [
            {"id": "t1", "title": "Add login (OAuth)", "status": "review", "pr": null},
            {"id": "t3", "title": "New one", "status": "analyzing"},
        ]}),
    )
    .await;
    until_store(&h, "t1 in review", |s| {
        is(s, EntityKind::Ticket, "t1", "state", json!("review"))
    })
    .await;
    let t1 = get(&h, EntityKind::Ticket, "t1").unwrap();
    assert_eq!(
        (
            t1["pr"]["number"].clone(),
            t1["timeline"].as_array().map(Vec::len)
        ),
        (json!(12), Some(1)),
        "{t1:?}"
    );

    // A fresh status change + event on t3, which came in by the list.
    emit(
        "task:event_added",
        json!({"taskId": "t3", "event": {"type": "analysis"}}),
    )
    .await;
    emit(
        "task:pr_updated",
        json!({"taskId": "t3", "pr": {"number": 13}}),
    )
    .await;
    emit(
        "task:status_changed",
        json!({"taskId": "t3", "status": "pr_open", "previousStatus": "analyzing"}),
    )
    .await;
    until_store(&h, "t3 pr_open", |s| {
        is(s, EntityKind::Ticket, "t3", "status", json!("pr_open"))
    })
    .await;
    let t3 = get(&h, EntityKind::Ticket, "t3").unwrap();
    assert_eq!(
        (
            t3["timeline"][0]["type"].clone(),
            t3["pr"]["number"].clone()
        ),
        (json!("analysis"), json!(13))
    );
    assert_eq!(
        (t3["state"].clone(), t3["previous_status"].clone()),
        (json!("pr_open"), json!("analyzing"))
    );

    // Restart: no replay; after reconnecting Pulse asks for the state.
    let connections = h.status().borrow().counters.connections;
    peer.restart(tasks_state(
        json!([{"id": "t4", "title": "Only one now", "status": "merged"}]),
    ));
    until(&h, "reconnected", |s| {
        s.counters.connections > connections && s.state == ConnectionState::Live
    })
    .await;
    until_store(&h, "resynced", |s| {
        absent(s, EntityKind::Ticket, "t1") && !absent(s, EntityKind::Ticket, "t4")
    })
    .await;
    assert_eq!(ids(&h, EntityKind::Ticket), vec!["t4"]);
    assert_eq!(
        peer.info().await["resyncs"],
        1,
        "resync_requested sent once after the reconnect"
    );
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tasks_gateway_over_long_polling_when_the_server_has_no_websocket() {
    let peer = Peer::start(
        Kind::TasksGateway,
        &[],
        tasks_state(json!([{"id": "t1", "status": "analyzing"}])),
        &["--transports", "polling"],
    );
    let h = session(&peer.url(), tasks_dialect(), "");
    live(&h).await;
    assert_eq!(field(&h, EntityKind::Ticket, "t1", "status"), "analyzing");
    assert_eq!(peer.info().await["transports"], json!(["polling"]));
    peer.emit(
        json!({"event": "task:status_changed", "data": {"taskId": "t1", "status": "merged"}}),
    )
    .await;
    peer.emit(
        json!({"event": "task:event_added", "data": {"taskId": "t1", "event": {"type": "merged"}}}),
    )
    .await;
    until_store(&h, "merged over polling", |s| {
        is(s, EntityKind::Ticket, "t1", "state", json!("merged"))
            && s.get(EntityKind::Ticket, "t1")
                .unwrap()
                .is_some_and(|e| at(&e.data, "/timeline/0/type") == "merged")
    })
    .await;
    h.stop().await;
}

// ---------------------------------------------------------------- user profiles

fn example(name: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../profiles/examples")
        .join(name)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_toml_profile_connects_without_rust() {
    let token = acme();
    let peer = Peer::start(Kind::FastApi, &[&token], fastapi_state(1), &[]);
    let profile = Profile::load(example("legacy-stats-ws.toml").to_str().unwrap())
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(profile.name(), "legacy-stats-ws");
    let h = session(&peer.url(), ProfileDialect::new(profile), &token);
    live(&h).await;
    assert_eq!(
        field(&h, EntityKind::Stats, "dashboard", "agents")["active"],
        2
    );
    peer.emit(json!({"type": "dashboard-stats-update", "data": {"executions": {"total": 8}, "agents": {"active": 4}}})).await;
    until_store(&h, "stats from the payload", |s| {
        s.get(EntityKind::Stats, "dashboard")
            .unwrap()
            .is_some_and(|e| at(&e.data, "/agents/active") == 4)
    })
    .await;
    peer.emit(
        json!({"type": "execution-failed", "data": {"execution_id": "e1", "status": "failed"}}),
    )
    .await;
    until_store(&h, "e1 failed", |s| {
        is(s, EntityKind::Ticket, "e1", "state", json!("failed"))
    })
    .await;
    h.stop().await;
}

#[test]
fn every_example_profile_is_valid() {
    let dir = example("");
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") {
            Profile::from_file(&path).unwrap_or_else(|e| panic!("{e}"));
            n += 1;
        }
    }
    assert!(n >= 1, "no example in {}", dir.display());
}

#[test]
fn bad_profile_files_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("team.toml");
    std::fs::write(
        &path,
        "name = \"team\"\ntransport = \"jsonws\"\n\n[socket]\npath = \"/ws\"\n\n[[event]]\nname = \"job.done\"\nop = \"patch\"\nkind = \"job\"\nid = \"/id\"\n",
    )
    .unwrap();
    let err = Profile::load(path.to_str().unwrap()).unwrap_err();
    let text = err.to_string();
    assert!(
        text.starts_with(&format!("{}:10:", path.display())),
        "{text}"
    );
    assert!(
        text.contains("[[event]] #1.kind") && text.contains("job"),
        "{text}"
    );
    match err {
        ProfileError::Invalid { line, field, .. } => {
            assert_eq!((line, field.as_str()), (10, "[[event]] #1.kind"))
        }
        other => panic!("{other:?}"),
    }

    std::fs::write(&path, "name = \"team\"\ntransport = \"jsonws\"\n[socket]\npath = \"/ws\"\n[resync]\nrefetch = [\"jobs\"]\n").unwrap();
    let text = Profile::load(path.to_str().unwrap())
        .unwrap_err()
        .to_string();
    assert!(
        text.contains(":6:") && text.contains("resync.refetch") && text.contains("[rest.jobs]"),
        "{text}"
    );

    let text = Profile::load("no-such-profile").unwrap_err().to_string();
    assert!(
        text.contains("agent-monitor") && text.contains("tasks-gateway"),
        "{text}"
    );
}

// ---------------------------------------------------------------- actions

/// The requests the peer received for `method path`.
fn requests(info: &Value, method: &str, path: &str) -> Vec<Value> {
    info["requests"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["method"] == method && r["path"] == path)
        .cloned()
        .collect()
}

fn board_state() -> Value {
    monitor_state(
        json!([{"id": "a1", "name": "Ada", "status": "busy"}]),
        json!([
            {"id": 5, "title": "Fix login", "state": "todo", "project_id": "p1"},
            {"id": 6, "title": "Ship", "state": "todo", "project_id": "p1"}
        ]),
    )
}

fn move_to(id: &str, state: &str) -> Action {
    Action::MoveTicket {
        id: id.into(),
        state: state.into(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_monitor_moves_and_terminations_reach_the_seeds_routes_and_reconcile() {
    let token = acme();
    let peer = Peer::start(Kind::AgentMonitor, &[&token], board_state(), &[]);
    let h = session(
        &peer.url(),
        ProfileDialect::new(Profile::builtin("agent-monitor").unwrap()),
        &token,
    );
    live(&h).await;
    let taken = h.actions();
    assert!(taken.move_ticket && taken.terminate_agent, "{taken:?}");
    assert!(
        !taken.approve && !taken.reject,
        "seed 000 shows no approvals"
    );

    // The board's drag: PATCH /api/tickets/5 {state}, answered with the ticket.
    let out = h.perform(move_to("5", "review")).await.unwrap();
    let ActionOutcome::Done { entity } = out else {
        panic!("{out:?}")
    };
    assert_eq!((entity.kind, entity.id.as_str()), (EntityKind::Ticket, "5"));
    assert_eq!(
        (entity.data["state"].clone(), entity.data["title"].clone()),
        (json!("review"), json!("Fix login"))
    );
    let info = peer.info().await;
    let got = requests(&info, "PATCH", "/api/tickets/5");
    assert_eq!(got.len(), 1, "{info:#}");
    assert_eq!(got[0]["body"], json!({"state": "review"}));
    assert_eq!(got[0]["authorized"], true, "the token in the header");
    // Reconciled by the event the route broadcasts after.
    until_store(&h, "ticket 5 in review", |s| {
        is(s, EntityKind::Ticket, "5", "state", json!("review"))
    })
    .await;

    // Termination: the answer is not the agent, so the cached agent with the
    // declared optimistic change stands for it until `agent:terminated`.
    let out = h
        .perform(Action::TerminateAgent {
            id: "a1".into(),
            reason: Some("stuck in a loop".into()),
        })
        .await
        .unwrap();
    let ActionOutcome::Done { entity } = out else {
        panic!("{out:?}")
    };
    assert_eq!(
        (entity.data["status"].clone(), entity.data["name"].clone()),
        (json!("terminating"), json!("Ada"))
    );
    let info = peer.info().await;
    let got = requests(&info, "POST", "/api/agents/a1/terminate");
    assert_eq!(got.len(), 1, "{info:#}");
    assert_eq!(got[0]["body"], json!({"reason": "stuck in a loop"}));
    until_store(&h, "agent a1 terminated", |s| {
        is(s, EntityKind::Agent, "a1", "status", json!("terminated"))
    })
    .await;
    assert_eq!(
        field(&h, EntityKind::Agent, "a1", "terminated_reason"),
        "manual",
        "the seed's handler broadcasts 'manual'"
    );

    // Without a reason the body says so (null), not a made-up one.
    peer.control(
        "state",
        json!({"agents": [{"id": "a2", "name": "Bo", "status": "idle"}]}),
    )
    .await;
    let out = h
        .perform(Action::TerminateAgent {
            id: "a2".into(),
            reason: None,
        })
        .await
        .unwrap();
    assert!(matches!(out, ActionOutcome::Done { .. }), "{out:?}");
    let info = peer.info().await;
    assert_eq!(
        requests(&info, "POST", "/api/agents/a2/terminate")[0]["body"],
        json!({"reason": null})
    );

    // A refusal is shown with the server's words, never dropped or queued.
    let out = h.perform(move_to("404", "done")).await.unwrap();
    match &out {
        ActionOutcome::Rejected { message } => {
            assert!(message.contains("Ticket not found"), "{message}")
        }
        other => panic!("{other:?}"),
    }
    // An id that needs escaping stays one path segment.
    let out = h.perform(move_to("a/b c", "done")).await.unwrap();
    assert!(matches!(out, ActionOutcome::Rejected { .. }), "{out:?}");
    let info = peer.info().await;
    assert_eq!(requests(&info, "PATCH", "/api/tickets/a%2Fb%20c").len(), 1);

    // What the profile does not declare is refused before anything is sent.
    let before = peer.info().await["requests"].as_array().unwrap().len();
    let out = h
        .perform(Action::Approve {
            id: "x".into(),
            reason: None,
        })
        .await
        .unwrap();
    match &out {
        ActionOutcome::Rejected { message } => {
            assert!(message.contains("`approve`"), "{message}")
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        peer.info().await["requests"].as_array().unwrap().len(),
        before
    );
    assert!(h.store().outbox().unwrap().is_empty(), "nothing queued");
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_monitor_actions_taken_offline_are_queued_and_sent_on_reconnect() {
    let token = acme();
    let mut peer = Peer::start(Kind::AgentMonitor, &[&token], board_state(), &[]);
    // A sign-in that can refresh (to a token the server will refuse too).
    let tokens = Rotating(std::sync::Mutex::new(vec![token.clone(), "stale".into()]));
    let h = session_with(
        &peer.url(),
        ProfileDialect::new(Profile::builtin("agent-monitor").unwrap()),
        Arc::new(tokens),
    );
    live(&h).await;
    let mut settled = h.subscribe();
    peer.kill();
    until(&h, "offline", |s| {
        matches!(s.state, ConnectionState::Reconnecting { .. })
    })
    .await;
    let out = h.perform(move_to("6", "done")).await.unwrap();
    assert!(matches!(out, ActionOutcome::Queued { .. }), "{out:?}");
    assert_eq!(h.store().outbox().unwrap().len(), 1);

    // Back: sent on reconnect, settled, and reconciled by the server's event.
    peer.restart(board_state());
    live(&h).await;
    let outcome = tokio::time::timeout(LIMIT, async {
        loop {
            if let Ok(SessionEvent::ActionSettled {
                outcome, action, ..
            }) = settled.recv().await
            {
                return (action, outcome);
            }
        }
    })
    .await
    .expect("the queued move settled");
    assert_eq!(outcome.0, move_to("6", "done"));
    assert!(
        matches!(outcome.1, ActionOutcome::Done { .. }),
        "{outcome:?}"
    );
    assert!(h.store().outbox().unwrap().is_empty());
    let info = peer.info().await;
    assert_eq!(
        requests(&info, "PATCH", "/api/tickets/6")[0]["body"],
        json!({"state": "done"})
    );
    until_store(&h, "ticket 6 done", |s| {
        is(s, EntityKind::Ticket, "6", "state", json!("done"))
    })
    .await;

    // A token the server refuses for an action stays queued with the reason.
    peer.control("tokens", json!({"valid": []})).await;
    let out = h.perform(move_to("5", "review")).await.unwrap();
    assert!(matches!(out, ActionOutcome::Queued { .. }), "{out:?}");
    let queued = h.store().outbox().unwrap();
    assert_eq!(queued.len(), 1);
    assert!(
        queued[0]
            .last_error
            .as_deref()
            .is_some_and(|e| e.contains("Unauthorized")),
        "kept with the reason: {queued:?}"
    );
    let info = peer.info().await;
    assert_eq!(
        requests(&info, "PATCH", "/api/tickets/5").len(),
        2,
        "tried, refreshed once, tried again; then kept"
    );
    h.stop().await;
}

/// A wake or a network change reconnects a profile's live socket at once too
/// (Socket.IO here, seed 002's peer), and the data is reloaded. Counted by the
/// connections: one more per nudge.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nudge_reconnects_a_live_profile_socket_at_once() {
    use pulse_core::session::Nudge;
    let token = acme();
    let peer = Peer::start(Kind::NestRealtime, &[&token], realtime_state(), &[]);
    let h = session(
        &peer.url(),
        ProfileDialect::new(Profile::builtin("nest-realtime").unwrap()),
        &token,
    );
    let first = live(&h).await.counters.connections;
    for (n, why) in [Nudge::Wake, Nudge::Network].into_iter().enumerate() {
        h.nudge(why);
        let want = first + n as u64 + 1;
        let st = until(&h, "live again after the nudge", |s| {
            s.counters.connections >= want && matches!(s.state, ConnectionState::Live)
        })
        .await;
        assert_eq!(st.counters.connections, want, "after {why}");
    }
    h.stop().await;
}

/// Failed sends are retried while the session stays live (no reconnect), and one
/// failing entry does not hold back the others. Two moves fail with a 503 when
/// first tried and are queued; on the first retry the first move fails again
/// (a third 503) while the second goes through; the first goes through on the
/// next retry. Ordered by the settlements, counted by the connections: one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_sends_are_retried_while_live_and_one_failing_entry_does_not_block_the_rest() {
    let token = acme();
    let peer = Peer::start(Kind::AgentMonitor, &[&token], board_state(), &[]);
    let h = session(
        &peer.url(),
        ProfileDialect::new(Profile::builtin("agent-monitor").unwrap()),
        &token,
    );
    live(&h).await;
    let mut settled = h.subscribe();
    let busy = json!({"status": 503, "text": "<html>busy</html>"});
    peer.control(
        "garbage",
        json!({"answers": [busy.clone(), busy.clone(), busy]}),
    )
    .await;
    for (id, state) in [("6", "done"), ("5", "review")] {
        let out = h.perform(move_to(id, state)).await.unwrap();
        assert!(matches!(out, ActionOutcome::Queued { .. }), "{out:?}");
    }
    let queued = h.store().outbox().unwrap();
    assert_eq!(queued.len(), 2);
    assert!(queued.iter().all(|e| e.last_error.is_some()), "{queued:?}");
    let mut order = Vec::new();
    tokio::time::timeout(LIMIT, async {
        while order.len() < 2 {
            if let Ok(SessionEvent::ActionSettled {
                action, outcome, ..
            }) = settled.recv().await
            {
                assert!(matches!(outcome, ActionOutcome::Done { .. }), "{outcome:?}");
                order.push(action);
            }
        }
    })
    .await
    .expect("both queued moves settled while live");
    assert_eq!(order, [move_to("5", "review"), move_to("6", "done")]);
    assert!(h.store().outbox().unwrap().is_empty());
    let st = h.status().borrow().clone();
    assert_eq!(st.counters.connections, 1, "no reconnect was needed");
    let info = peer.info().await;
    assert_eq!(requests(&info, "PATCH", "/api/tickets/6").len(), 3);
    assert_eq!(requests(&info, "PATCH", "/api/tickets/5").len(), 2);
    h.stop().await;
}

/// The seed shows the termination handler's broadcast but not its answer: both
/// plausible answers (`{success: true}`, the agent) are a termination done; a
/// profile that reads success from the body (`success_when`) refuses the one that
/// does not say so, and the refusal is shown.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_monitor_termination_reads_either_answer_and_success_when_is_checked() {
    let token = acme();
    let agents = json!([
        {"id": "a1", "name": "Ada", "status": "busy"},
        {"id": "a2", "name": "Bo", "status": "busy"},
        {"id": "a3", "name": "Cy", "status": "busy"}
    ]);
    let peer = Peer::start(
        Kind::AgentMonitor,
        &[&token],
        monitor_state(agents, json!([])),
        &[],
    );
    let mut profile = Profile::builtin("agent-monitor").unwrap();
    let h = session(&peer.url(), ProfileDialect::new(profile.clone()), &token);
    live(&h).await;
    let terminate = |id: &str| Action::TerminateAgent {
        id: id.into(),
        reason: None,
    };
    let out = h.perform(terminate("a1")).await.unwrap();
    assert!(
        matches!(&out, ActionOutcome::Done { entity } if entity.data["status"] == "terminating"),
        "{out:?}"
    );
    peer.control("state", json!({"terminate_answer": "agent"}))
        .await;
    let out = h.perform(terminate("a2")).await.unwrap();
    assert!(
        matches!(&out, ActionOutcome::Done { entity } if entity.data["name"] == "Bo"),
        "{out:?}"
    );
    h.stop().await;

    // A team whose server must say `{success: true}`.
    profile
        .spec
        .actions
        .get_mut("terminate_agent")
        .unwrap()
        .get_mut()
        .success_when
        .insert("/success".into(), toml::Value::Boolean(true));
    let h = session(&peer.url(), ProfileDialect::new(profile), &token);
    live(&h).await;
    let out = h.perform(terminate("a3")).await.unwrap();
    match &out {
        ActionOutcome::Rejected { message } => {
            assert!(message.contains("did not confirm"), "{message}")
        }
        other => panic!("{other:?}"),
    }
    h.stop().await;
}

/// Garbage answers to an action: a success that is not JSON is done (the cached
/// entity with the declared change), a 5xx page keeps it queued with the page's
/// words, an empty 4xx is a refusal naming the status, a conflict that is not JSON
/// is still a conflict. None is dropped and none ends the link.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_monitor_garbage_answers_to_actions_are_read_without_loss() {
    let token = acme();
    let peer = Peer::start(Kind::AgentMonitor, &[&token], board_state(), &[]);
    let h = session(
        &peer.url(),
        ProfileDialect::new(Profile::builtin("agent-monitor").unwrap()),
        &token,
    );
    live(&h).await;
    peer.control(
        "garbage",
        json!({"answers": [
            {"status": 200, "text": "<html>ok</html>"},
            {"status": 502, "text": "<html>Bad gateway</html>"},
            {"status": 400, "text": ""},
            {"status": 409, "text": "someone moved it"}
        ]}),
    )
    .await;
    let out = h.perform(move_to("5", "review")).await.unwrap();
    match &out {
        ActionOutcome::Done { entity } => assert_eq!(
            (entity.data["state"].clone(), entity.data["title"].clone()),
            (json!("review"), json!("Fix login"))
        ),
        other => panic!("{other:?}"),
    }
    let out = h.perform(move_to("6", "review")).await.unwrap();
    assert!(matches!(out, ActionOutcome::Queued { .. }), "{out:?}");
    let queued = h.store().outbox().unwrap();
    assert!(
        queued[0]
            .last_error
            .as_deref()
            .is_some_and(|e| e.contains("Bad gateway")),
        "{queued:?}"
    );
    let out = h.perform(move_to("5", "done")).await.unwrap();
    match &out {
        ActionOutcome::Rejected { message } => assert!(message.contains("400"), "{message}"),
        other => panic!("{other:?}"),
    }
    let out = h.perform(move_to("5", "done")).await.unwrap();
    match &out {
        ActionOutcome::Conflict { message, current } => {
            assert_eq!((message.as_str(), current), ("someone moved it", &None))
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(h.status().borrow().state, ConnectionState::Live);
    h.stop().await;
}

fn approvals_state() -> Value {
    let mut s = board_state();
    s["approvals"] = json!([
        {"id": "ap1", "title": "Refund", "status": "pending"},
        {"id": "ap2", "title": "Deploy", "status": "pending"},
        {"id": "ap3", "title": "Old", "status": "approved"}
    ]);
    s
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_profile_approves_and_rejects_and_a_conflict_is_shown() {
    let token = acme();
    let peer = Peer::start(Kind::AgentMonitor, &[&token], approvals_state(), &[]);
    let profile = Profile::load(example("agent-monitor-approvals.toml").to_str().unwrap())
        .unwrap_or_else(|e| panic!("{e}"));
    // Every action the profile can declare but the answers only a gateway takes
    // (edit, respond: a LangGraph interrupt's).
    use pulse_core::actions::{ActionKind as K, ActionSet};
    assert_eq!(
        profile.actions(),
        ActionSet::of([K::Approve, K::Reject, K::MoveTicket, K::TerminateAgent])
    );
    let h = session(&peer.url(), ProfileDialect::new(profile), &token);
    live(&h).await;
    assert_eq!(field(&h, EntityKind::Approval, "ap1", "status"), "pending");

    let out = h
        .perform(Action::Approve {
            id: "ap1".into(),
            reason: Some("looks right".into()),
        })
        .await
        .unwrap();
    let ActionOutcome::Done { entity } = out else {
        panic!("{out:?}")
    };
    assert_eq!(entity.data["status"], "approved");
    let out = h
        .perform(Action::Reject {
            id: "ap2".into(),
            reason: None,
        })
        .await
        .unwrap();
    assert!(matches!(out, ActionOutcome::Done { .. }), "{out:?}");
    let info = peer.info().await;
    assert_eq!(
        requests(&info, "POST", "/api/approvals/ap1/approve")[0]["body"],
        json!({"reason": "looks right"})
    );
    assert_eq!(
        requests(&info, "POST", "/api/approvals/ap2/reject")[0]["body"],
        json!({"reason": null})
    );
    until_store(&h, "both decided", |s| {
        is(s, EntityKind::Approval, "ap1", "status", json!("approved"))
            && is(s, EntityKind::Approval, "ap2", "status", json!("rejected"))
    })
    .await;

    // Someone decided first: a conflict, with the approval as it is now.
    let out = h
        .perform(Action::Reject {
            id: "ap3".into(),
            reason: Some("late".into()),
        })
        .await
        .unwrap();
    match out {
        ActionOutcome::Conflict { message, current } => {
            assert_eq!(message, "Approval already approved");
            assert_eq!(current.unwrap()["status"], "approved");
        }
        other => panic!("{other:?}"),
    }
    h.stop().await;
}

#[test]
fn bad_action_declarations_are_clear_errors() {
    let base = "name = \"team\"\ntransport = \"jsonws\"\n[socket]\npath = \"/ws\"\n";
    let check = |table: &str, line: usize, field: &str, says: &str| {
        let text = format!("{base}{table}");
        match Profile::parse(&text, "team.toml").unwrap_err() {
            ProfileError::Invalid {
                line: l,
                field: f,
                message,
                ..
            } => {
                assert_eq!((l, f.as_str()), (line, field), "{message}");
                assert!(message.contains(says), "{message}");
            }
            other => panic!("{other:?}"),
        }
    };
    check(
        "[actions.move]\nmethod = \"PATCH\"\npath = \"/t/{id}\"\n",
        5,
        "actions.move",
        "move_ticket",
    );
    check(
        "[actions.move_ticket]\nmethod = \"GET\"\npath = \"/t/{id}\"\n",
        6,
        "actions.move_ticket.method",
        "POST, PUT, PATCH or DELETE",
    );
    check(
        "[actions.move_ticket]\nmethod = \"PATCH\"\npath = \"t/{id}\"\n",
        7,
        "actions.move_ticket.path",
        "start with `/`",
    );
    check(
        "[actions.terminate_agent]\nmethod = \"POST\"\npath = \"/a/{id}\"\nbody = { to = \"{state}\" }\n",
        8,
        "actions.terminate_agent.body",
        "no variable `{state}`",
    );
    check(
        "[actions.move_ticket]\nmethod = \"PATCH\"\npath = \"/t/{ticket}\"\n",
        7,
        "actions.move_ticket.path",
        "{id}, {tenant}",
    );
    check(
        "[actions.approve]\nmethod = \"POST\"\npath = \"/a/{id}\"\nsuccess = [200, 700]\n",
        8,
        "actions.approve.success",
        "700",
    );
    check(
        "[actions.approve]\nmethod = \"POST\"\npath = \"/a/{id}\"\nsuccess = [200, 409]\n",
        5,
        "actions.approve.conflict",
        "both",
    );
    check(
        "[actions.approve]\nmethod = \"POST\"\npath = \"/a/{id}\"\ncurrent = \"approval\"\n",
        8,
        "actions.approve.current",
        "JSON pointer",
    );
    check(
        "[actions.approve]\nmethod = \"POST\"\npath = \"/a/{id}\"\nsuccess_when = { success = true }\n",
        8,
        "actions.approve.success_when",
        "JSON pointer",
    );
    // The token never goes into a path or body (it goes in the header).
    check(
        "[actions.approve]\nmethod = \"POST\"\npath = \"/a/{id}?t={token}\"\n",
        7,
        "actions.approve.path",
        "no variable `{token}`",
    );
    // A key no action has is named with its line.
    check(
        "[actions.approve]\nmethod = \"POST\"\npath = \"/a/{id}\"\nbodyy = {}\n",
        8,
        "actions.approve.bodyy",
        "unknown field",
    );
    // The profile's own variables are there for actions too.
    let ok = format!("{base}[vars]\nteam = \"x\"\n[actions.approve]\nmethod = \"post\"\npath = \"/{{team}}/a/{{id}}\"\nbody = {{ why = \"{{reason}}\" }}\n");
    Profile::parse(&ok, "team.toml").unwrap_or_else(|e| panic!("{e}"));
}

// ---------------------------------------------------------------- pulsectl

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pulsectl_watch_with_a_profile() {
    let bin = bin("pulsectl");
    let token = acme();
    let peer = Peer::start(Kind::EventBridge, &[&token], bridge_state(3), &[]);
    let cache = tempfile::tempdir().unwrap();
    let mut child = tokio::process::Command::new(&bin)
        .args([
            "watch",
            "--profile",
            "event-bridge",
            "--server",
            &peer.url(),
            "--cache",
        ])
        .arg(cache.path().join("cache.db"))
        .env("PULSE_TOKEN", &token)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    use tokio::io::AsyncBufReadExt;
    let mut out = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let mut seen = Vec::new();
    let found = tokio::time::timeout(LIMIT, async {
        let mut pushed = false;
        while let Ok(Some(line)) = out.next_line().await {
            let v: Value =
                serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON: {line}: {e}"));
            seen.push(v.clone());
            if !pushed && v["type"] == "stats:conversations" {
                pushed = true;
                peer.emit(json!({"type": "stats:tasks", "payload": {"pending": 77}}))
                    .await;
            }
            if v["change"]["data"]["pending"] == 77 {
                return true;
            }
        }
        false
    })
    .await;
    let _ = child.start_kill();
    let stderr = {
        let mut s = String::new();
        use tokio::io::AsyncReadExt;
        let _ = child.stderr.take().unwrap().read_to_string(&mut s).await;
        s
    };
    assert!(
        matches!(found, Ok(true)),
        "stdout: {seen:#?}\nstderr: {stderr}"
    );
    assert!(stderr.contains("live"), "{stderr}");
    assert!(!stderr.contains(&token), "token leaked: {stderr}");
    assert_eq!(seen[0]["stream"], "event-bridge:acme");
    assert_eq!(seen[0]["change"]["kind"], "stats");
}

/// Run `pulsectl ARGS` with the token in `PULSE_TOKEN`: (exit code, stdout, stderr).
async fn pulsectl_run(args: &[&str], token: &str) -> (Option<i32>, String, String) {
    let out = tokio::process::Command::new(bin("pulsectl"))
        .args(args)
        .env("PULSE_TOKEN", token)
        .output()
        .await
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pulsectl_moves_terminates_and_approves_on_profile_servers_online_and_queued_offline() {
    let token = acme();
    let mut peer = Peer::start(Kind::AgentMonitor, &[&token], approvals_state(), &[]);
    let url = peer.url();
    let team = example("agent-monitor-approvals.toml");
    let team = team.to_str().unwrap();
    let monitor = ["--server", url.as_str(), "--profile", "agent-monitor"];
    let ours = ["--server", url.as_str(), "--profile", team];
    let with = |cmd: &[&str], server: &[&str]| -> Vec<String> {
        cmd.iter()
            .chain(server.iter())
            .map(|s| s.to_string())
            .collect()
    };
    let run = |args: Vec<String>| {
        let token = token.clone();
        async move {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            pulsectl_run(&args, &token).await
        }
    };

    // Online.
    let (code, out, err) = run(with(&["move", "5", "--to", "review"], &monitor)).await;
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(out.trim(), "ticket 5 moved to review");
    let (code, out, err) = run(with(
        &["terminate", "a1", "--reason", "stuck", "--json"],
        &monitor,
    ))
    .await;
    assert_eq!(code, Some(0), "{err}");
    let v: Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(
        (v["outcome"].clone(), v["entity"]["data"]["status"].clone()),
        (json!("done"), json!("terminating"))
    );
    let (code, out, err) = run(with(&["approve", "ap1", "--reason", "ok"], &ours)).await;
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(out.trim(), "approval ap1 approved");
    let (code, _, err) = run(with(&["reject", "ap3"], &ours)).await;
    assert_eq!(code, Some(6), "a conflict: {err}");
    assert!(
        err.contains("approval ap3 was not rejected: it is already approved"),
        "{err}"
    );
    let (code, _, err) = run(with(&["move", "404", "--to", "done"], &monitor)).await;
    assert_eq!(code, Some(7), "{err}");
    assert!(err.contains("Ticket not found"), "{err}");
    // Seed 000 declares no approvals: refused before anything is sent.
    let (code, _, err) = run(with(&["approve", "ap2"], &monitor)).await;
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("declares no `approve` action"), "{err}");
    let info = peer.info().await;
    assert!(requests(&info, "POST", "/api/approvals/ap2/approve").is_empty());
    assert_eq!(
        requests(&info, "PATCH", "/api/tickets/5")[0]["body"],
        json!({"state": "review"})
    );
    assert_eq!(
        requests(&info, "POST", "/api/agents/a1/terminate")[0]["body"],
        json!({"reason": "stuck"})
    );
    assert_eq!(
        requests(&info, "POST", "/api/approvals/ap1/approve")[0]["body"],
        json!({"reason": "ok"})
    );
    assert!(!err.contains(&token) && !out.contains(&token));

    // Offline: queued in the cache, sent by the next `watch`.
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache.db");
    let cache = cache.to_str().unwrap();
    peer.kill();
    let (code, out, err) = run(with(
        &["move", "6", "--to", "done", "--cache", cache],
        &ours,
    ))
    .await;
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("queued in"), "{out}");
    let (code, _, err) = run(with(
        &["approve", "ap2", "--reason", "later", "--cache", cache],
        &ours,
    ))
    .await;
    assert_eq!(code, Some(0), "{err}");
    let (code, _, err) = run(with(&["move", "6", "--to", "done"], &ours)).await;
    assert_eq!(code, Some(5), "unreachable without --cache: {err}");
    let mut state = approvals_state();
    state["tickets"][0]["state"] = json!("review");
    peer.restart(state);
    let mut child = tokio::process::Command::new(bin("pulsectl"))
        .args([
            "watch",
            "--server",
            &url,
            "--profile",
            team,
            "--cache",
            cache,
        ])
        .env("PULSE_TOKEN", &token)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    use tokio::io::AsyncBufReadExt;
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let mut settled = Vec::new();
    let done = tokio::time::timeout(LIMIT, async {
        while let Ok(Some(line)) = lines.next_line().await {
            let v: Value = serde_json::from_str(&line).unwrap();
            if v.get("outbox_id").is_some() {
                settled.push(v);
                if settled.len() == 2 {
                    return true;
                }
            }
        }
        false
    })
    .await;
    let _ = child.start_kill();
    assert!(matches!(done, Ok(true)), "settled: {settled:#?}");
    assert_eq!(settled[0]["action"]["action"], "move_ticket");
    assert_eq!(settled[0]["outcome"]["outcome"], "done");
    assert_eq!(settled[1]["action"]["action"], "approve");
    assert_eq!(
        settled[1]["outcome"]["entity"]["data"]["status"],
        "approved"
    );
    let info = peer.info().await;
    assert_eq!(
        requests(&info, "PATCH", "/api/tickets/6")[0]["body"],
        json!({"state": "done"})
    );
    assert_eq!(
        requests(&info, "POST", "/api/approvals/ap2/approve")[0]["body"],
        json!({"reason": "later"})
    );
}

// ---------------------------------------------------------------- what the client says

/// The client events a peer recorded with this name, in order.
async fn received(peer: &Peer, event: &str, at_least: usize) -> Vec<Value> {
    wait_for_some(
        &format!("{at_least} × `{event}` received"),
        LIMIT,
        || async {
            let got: Vec<Value> = peer.info().await["received"]
                .as_array()
                .expect("the peer records what it receives")
                .iter()
                .filter(|r| r["event"] == event)
                .map(|r| r["data"].clone())
                .collect();
            (got.len() >= at_least).then_some(got)
        },
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tasks_gateway_opening_a_task_joins_its_room_and_closing_leaves() {
    let mut peer = Peer::start(
        Kind::TasksGateway,
        &[],
        tasks_state(json!([
            {"id": "t1", "title": "Add login", "status": "analyzing"},
            {"id": "t2", "title": "Fix CSS", "status": "dispatched", "events": [{"type": "created"}]},
        ])),
        &[],
    );
    let h = session(&peer.url(), tasks_dialect(), "");
    live(&h).await;
    // The server takes no presence: never sent.
    assert!(!h.say(Intent::Presence, "away"));
    assert!(h.say(Intent::OpenTask, "t2"));
    let joins = received(&peer, "task:join", 2).await;
    assert_eq!(joins, [json!({"taskId": "t1"}), json!({"taskId": "t2"})]);
    // The server answers the join with the task's state, as the seed's TaskDetail gets it.
    until_store(&h, "t2's events", |s| {
        s.get(EntityKind::Ticket, "t2")
            .unwrap()
            .is_some_and(|e| at(&e.data, "/events/0/type") == "created")
    })
    .await;
    // After a restart the open task's room is joined again.
    peer.restart(tasks_state(json!([
        {"id": "t2", "title": "Fix CSS", "status": "pr_open"},
    ])));
    let joins = received(&peer, "task:join", 2).await;
    assert_eq!(joins, [json!({"taskId": "t1"}), json!({"taskId": "t2"})]);
    until_store(&h, "t2 after the restart", |s| {
        is(s, EntityKind::Ticket, "t2", "state", json!("pr_open"))
    })
    .await;
    assert!(h.say(Intent::CloseTask, "t2"));
    let leaves = received(&peer, "task:leave", 1).await;
    assert_eq!(leaves, [json!({"taskId": "t2"})]);
    wait_for_some("t2's room left", LIMIT, || async {
        let rooms = peer.info().await["rooms"].clone();
        (rooms == json!([["dashboard", "task:t1"]])).then_some(())
    })
    .await;
    let info = peer.info().await;
    let names: Vec<&str> = info["received"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r["event"].as_str())
        .collect();
    assert!(!names.contains(&"presence.update"), "{names:?}");
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nest_realtime_presence_and_typing_as_the_story_declares_them() {
    let token = jwt(json!({"sub": "ann", "workspaceId": "ws1"}));
    let peer = Peer::start(Kind::NestRealtime, &[&token], realtime_state(), &[]);
    let h = session(
        &peer.url(),
        ProfileDialect::new(Profile::builtin("nest-realtime").unwrap()),
        &token,
    );
    live(&h).await;
    // Tasks are no part of this server: never sent.
    assert!(!h.say(Intent::OpenTask, "t1"));
    assert!(h.say(Intent::Presence, "busy"));
    assert!(h.say(Intent::TypingStart, "c1"));
    assert!(h.say(Intent::TypingStop, "c1"));
    assert_eq!(received(&peer, "presence.update", 1).await, [json!("busy")]);
    assert_eq!(
        received(&peer, "typing.start", 1).await,
        [json!({"chatId": "c1"})]
    );
    assert_eq!(
        received(&peer, "typing.stop", 1).await,
        [json!({"chatId": "c1"})]
    );
    // The server forgets presence with the connection: said again on the next one.
    peer.control("drop", json!({})).await;
    assert_eq!(
        received(&peer, "presence.update", 2).await,
        [json!("busy"), json!("busy")]
    );
    let info = peer.info().await;
    let names: Vec<&str> = info["received"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r["event"].as_str())
        .collect();
    assert!(!names.contains(&"task:join"), "{names:?}");
    h.stop().await;
}

#[test]
fn an_intent_the_transport_cannot_send_or_following_an_undeclared_list_is_refused() {
    let base = "name = \"x\"\ntransport = \"socketio\"\n";
    let err = Profile::parse(&format!("{base}[intent.open_task]\nsend = 'x'\n"), "x.toml")
        .unwrap_err()
        .to_string();
    assert!(err.contains("intent.open_task.emit"), "{err}");
    let err = Profile::parse(
        &format!("{base}[intent.open_task]\nemit = 'task:join'\nfollow = \"tasks\"\n"),
        "x.toml",
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("no list variable `tasks`"), "{err}");
    let err = Profile::parse(&format!("{base}[intent.wave]\nemit = 'hi'\n"), "x.toml")
        .unwrap_err()
        .to_string();
    assert!(err.contains("unknown variant `wave`"), "{err}");
}

/// Seed 003's admin blocks: pushed only, so reloaded over REST after every
/// (re)connect; for a user who is no admin (403 on them) a caveat, never Signed out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fastapi_dashboard_admin_blocks_are_refetched_after_a_reconnect() {
    let token = acme();
    let mut state = fastapi_state(1);
    state["system"] = json!({"cpu": 0.25});
    state["costs"] = json!({"usd": 3});
    state["connectors"] = json!({"slack": 1});
    let peer = Peer::start(Kind::FastApi, &[&token], state, &[]);
    let mut profile = Profile::builtin("fastapi-dashboard").unwrap();
    fast(&mut profile);
    let h = session(&peer.url(), ProfileDialect::new(profile.clone()), &token);
    live(&h).await;
    assert_eq!(field(&h, EntityKind::Stats, "system", "cpu"), 0.25);
    assert_eq!(field(&h, EntityKind::Stats, "costs", "usd"), 3);
    assert_eq!(field(&h, EntityKind::Stats, "connectors", "slack"), 1);

    // While the link is down the blocks change; the reconnect reloads them.
    peer.control(
        "state",
        json!({"system": {"cpu": 0.75}, "costs": {"usd": 4}, "connectors": {"slack": 2}}),
    )
    .await;
    peer.control("drop", json!({})).await;
    until_store(&h, "admin blocks reloaded", |s| {
        is(s, EntityKind::Stats, "system", "cpu", json!(0.75))
            && is(s, EntityKind::Stats, "costs", "usd", json!(4))
            && is(s, EntityKind::Stats, "connectors", "slack", json!(2))
    })
    .await;
    h.stop().await;

    // A user who is no admin: 403 on the admin blocks is no refused token.
    peer.control("state", json!({"admins": []})).await;
    let h = session(&peer.url(), ProfileDialect::new(profile), &token);
    let st = live(&h).await;
    let st = if st
        .caveat
        .as_deref()
        .is_some_and(|c| c.contains("system_metrics"))
    {
        st
    } else {
        until(&h, "the caveat names the admin blocks", |s| {
            s.caveat
                .as_deref()
                .is_some_and(|c| c.contains("system_metrics"))
        })
        .await
    };
    assert_eq!(st.state, ConnectionState::Live, "{st:?}");
    let caveat = st.caveat.unwrap();
    assert!(caveat.contains("not for this user"), "{caveat}");
    h.stop().await;
}
