//! The REST fallback of profile servers, and seed 000's rate limit and rooms,
//! against the real peers (`tests/peers/`):
//! - a plain-WebSocket server that refuses the upgrade (an HTTP status, or a
//!   socket dropped unanswered) but answers REST is polled ("Polling (reason)"),
//!   the socket is retried in the background and taken back;
//! - so is seed 001's server without its socket path, a Socket.IO server
//!   without the WebSocket transport the profile wants, and a server whose
//!   REST does not answer either is Reconnecting, not Polling;
//! - polling forced by the settings (seed 003's toggle; `pulsectl --poll`)
//!   never opens a socket;
//! - against the real `express-rate-limit` configured as seed 000 limits it
//!   (100 per 15 min, time-scaled), a 30-minute session never gets a 429 and
//!   never sends more than the limit in a window; where a 429 is provoked,
//!   `Retry-After` (seconds or HTTP date) is waited for and the socket stays;
//! - seed 000's rooms (tenant, session, project) from the token's claims and
//!   the settings, a join without its variable skipped.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use pulse_core::auth::{Secret, StaticToken};
use pulse_core::profile::schema::RateLimit;
use pulse_core::profile::{Profile, ProfileDialect, VarValue};
use pulse_core::session::{ConnectionState, SessionConfig, SessionHandle, SessionStatus};
use pulse_core::store::{MemoryStore, StoreHandle};
use pulse_protocol::domain::EntityKind;
use pulse_testkit::peers::{jwt, Kind, Peer};
use pulse_testkit::wait_for_some;
use serde_json::{json, Value};

use crate::common::until_within;

const LIMIT: Duration = Duration::from_secs(40);

/// Seed 000's limit: 100 requests per 15 minutes.
const SEED_LIMIT: u32 = 100;
const SEED_WINDOW_MS: u64 = 15 * 60 * 1000;
/// Time runs this much faster in the rate-limit tests, for the peer's window
/// and for every interval of Pulse alike.
const SCALE: u64 = 60;

/// Session settings with every interval divided by `scale`.
fn config(url: &str, dialect: ProfileDialect, scale: u64) -> SessionConfig {
    let mut c = SessionConfig::new(url.parse().unwrap());
    let s = |d: Duration| d / scale as u32;
    c.poll_interval = s(c.poll_interval);
    c.socket_retry_interval = s(c.socket_retry_interval);
    c.backoff.base = s(c.backoff.base);
    c.backoff.floor = s(c.backoff.floor);
    c.backoff.cap = s(c.backoff.cap);
    c.backoff.slow_retry = s(c.backoff.slow_retry);
    c.backoff.stable_after = s(c.backoff.stable_after);
    c.backoff.fail_after = 1000;
    c.dialect = Arc::new(dialect);
    c
}

fn spawn(config: SessionConfig, token: &str) -> SessionHandle {
    SessionHandle::spawn(
        config,
        Arc::new(StaticToken::new(Secret::new(token))),
        StoreHandle::new(MemoryStore::new()),
    )
    .unwrap()
}

async fn until(
    h: &SessionHandle,
    what: &str,
    cond: impl Fn(&SessionStatus) -> bool,
) -> SessionStatus {
    until_within(LIMIT, h, what, cond).await
}

async fn until_peer(peer: &Peer, what: &str, cond: impl Fn(&Value) -> bool) -> Value {
    wait_for_some(what, LIMIT, || async {
        let info = peer.info().await;
        cond(&info).then_some(info)
    })
    .await
}

fn polling(s: &SessionStatus) -> Option<&str> {
    match &s.state {
        ConnectionState::Polling { reason } => Some(reason),
        _ => None,
    }
}

/// Every state the session takes from now on, in order.
fn record_states(h: &SessionHandle) -> Arc<Mutex<Vec<ConnectionState>>> {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let mut rx = h.status();
    let out = seen.clone();
    tokio::spawn(async move {
        loop {
            let st = rx.borrow_and_update().state.clone();
            {
                let mut v = out.lock().unwrap();
                if v.last() != Some(&st) {
                    v.push(st);
                }
            }
            if rx.changed().await.is_err() {
                break;
            }
        }
    });
    seen
}

fn field(h: &SessionHandle, kind: EntityKind, id: &str, f: &str) -> Value {
    h.store()
        .get(kind, id)
        .unwrap()
        .and_then(|e| e.data.get(f).cloned())
        .unwrap_or(Value::Null)
}

/// Wait until the store's `kind`/`id` has `f` = `want`.
async fn until_field(h: &SessionHandle, kind: EntityKind, id: &str, f: &str, want: Value) {
    let r = tokio::time::timeout(LIMIT, async {
        let mut events = h.subscribe();
        loop {
            if field(h, kind, id, f) == want {
                return;
            }
            let _ = tokio::time::timeout(Duration::from_millis(200), events.recv()).await;
        }
    })
    .await;
    assert!(
        r.is_ok(),
        "timed out waiting for {kind:?} {id}.{f} = {want}; status: {:?}",
        h.status().borrow()
    );
}

/// The agent-monitor profile without its rate limit (the tests of the limit
/// scale it instead).
fn monitor() -> ProfileDialect {
    let mut p = Profile::builtin("agent-monitor").unwrap();
    p.spec.rate_limit = None;
    ProfileDialect::new(p)
}

fn acme() -> String {
    jwt(json!({"sub": "ann", "tenant_id": "acme"}))
}

fn monitor_state(status: &str) -> Value {
    json!({
        "agents": [{"id": "a1", "name": "Ada", "status": status}],
        "agent_stats": {"active": 1},
        "tickets": [{"id": "t1", "title": "Fix", "state": "todo"}],
    })
}

/// The REST requests the agent-monitor peer logged: (path, arrival ms, status,
/// earliest time the client may ask again after a 429).
#[derive(Debug, Clone)]
struct Req {
    at: i64,
    status: i64,
    retry_at: Option<i64>,
}

fn rest_log(info: &Value) -> Vec<Req> {
    info["rest_log"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["status"].is_number())
        .map(|e| Req {
            at: e["at"].as_i64().unwrap(),
            status: e["status"].as_i64().unwrap(),
            retry_at: e["retry_at"].as_i64(),
        })
        .collect()
}

/// The windows express-rate-limit's memory store counts in (one starts with
/// the first request at or after the last one's reset), and the requests of
/// each.
fn fixed_windows(log: &[Req], window_ms: i64) -> Vec<usize> {
    let mut out = Vec::new();
    let mut reset = i64::MIN;
    for r in log {
        if r.at >= reset {
            reset = r.at + window_ms;
            out.push(0);
        }
        *out.last_mut().unwrap() += 1;
    }
    out
}

/// The most requests in any span of `window_ms`.
fn sliding_max(log: &[Req], window_ms: i64) -> usize {
    (0..log.len())
        .map(|i| {
            log[i..]
                .iter()
                .take_while(|r| r.at < log[i].at + window_ms)
                .count()
        })
        .max()
        .unwrap_or(0)
}

// ------------------------------------------------------- plain WebSocket

async fn ws_fallback_takes_the_socket_back(refusal: Value, reason_has: &str) {
    let token = acme();
    let peer = Peer::start(Kind::AgentMonitor, &[&token], monitor_state("idle"), &[]);
    peer.control("upgrades", refusal).await;
    let dialect = monitor();
    let h = spawn(config(&peer.url(), dialect, 10), &token);
    let seen = record_states(&h);

    let st = until(&h, "polling", |s| polling(s).is_some()).await;
    let reason = polling(&st).unwrap().to_owned();
    assert!(reason.contains(reason_has), "{reason}");
    assert!(!reason.contains(&token), "no token in the reason");
    // The REST load is in, and stays fresh while polling.
    assert_eq!(field(&h, EntityKind::Agent, "a1", "name"), "Ada");
    peer.control("state", monitor_state("busy")).await;
    until_field(&h, EntityKind::Agent, "a1", "status", json!("busy")).await;
    // The socket is tried again in the background; the state stays Polling.
    until_peer(&peer, "three refused upgrades", |i| {
        i["upgrades_refused"].as_u64() >= Some(3)
    })
    .await;
    assert!(polling(&h.status().borrow()).is_some());
    assert_eq!(peer.info().await["connections"], 0);

    // The socket is taken back once it opens.
    peer.control("upgrades", json!({"refuse": null})).await;
    until(&h, "live", |s| s.state == ConnectionState::Live).await;
    peer.emit(json!({"type": "agent:update", "payload": {"agentId": "a1", "status": "done", "action": "status_change"}}))
        .await;
    until_field(&h, EntityKind::Agent, "a1", "status", json!("done")).await;
    let states = seen.lock().unwrap().clone();
    let first_poll = states
        .iter()
        .position(|s| matches!(s, ConnectionState::Polling { .. }))
        .unwrap();
    assert!(
        states[first_poll..]
            .iter()
            .all(|s| matches!(s, ConnectionState::Polling { .. } | ConnectionState::Live)),
        "while polling, the background socket tries never showed another state: {states:?}"
    );
    assert!(h.status().borrow().counters.polls >= 2);
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ws_upgrade_refused_with_a_status_polls_then_takes_the_socket_back() {
    ws_fallback_takes_the_socket_back(json!({"refuse": "status", "status": 503}), "HTTP 503").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ws_upgrade_dropped_unanswered_polls_then_takes_the_socket_back() {
    ws_fallback_takes_the_socket_back(json!({"refuse": "destroy"}), "cannot reach").await;
}

/// A socket refused while REST answers (its server was restarting, say) is
/// tried again within the backoff's steps, not first after
/// `socket_retry_interval`: here an hour, so only the steps can bring the
/// upgrades the peer counts, and then the socket itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_socket_is_tried_again_soon_then_at_the_interval() {
    let token = acme();
    let peer = Peer::start(Kind::AgentMonitor, &[&token], monitor_state("idle"), &[]);
    peer.control("upgrades", json!({"refuse": "status", "status": 503}))
        .await;
    let mut c = config(&peer.url(), monitor(), 1);
    c.socket_retry_interval = Duration::from_secs(3600);
    c.backoff.base = Duration::from_millis(100);
    c.backoff.cap = Duration::from_millis(400);
    let h = spawn(c, &token);
    until(&h, "polling", |s| polling(s).is_some()).await;
    until_peer(&peer, "three refused upgrades", |i| {
        i["upgrades_refused"].as_u64() >= Some(3)
    })
    .await;
    assert!(polling(&h.status().borrow()).is_some());
    peer.control("upgrades", json!({"refuse": null})).await;
    until(&h, "live", |s| s.state == ConnectionState::Live).await;
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_whose_rest_does_not_answer_either_is_reconnecting_not_polling() {
    let token = acme();
    let peer = Peer::start(
        Kind::AgentMonitor,
        &[&token],
        monitor_state("idle"),
        &["--missing", "/api/agents,/api/agents/stats,/api/tickets"],
    );
    peer.control("upgrades", json!({"refuse": "status", "status": 503}))
        .await;
    let dialect = monitor();
    let h = spawn(config(&peer.url(), dialect, 10), &token);
    let seen = record_states(&h);
    let st = until(&h, "reconnecting", |s| {
        matches!(s.state, ConnectionState::Reconnecting { .. })
    })
    .await;
    let ConnectionState::Reconnecting { error, .. } = &st.state else {
        unreachable!()
    };
    assert!(
        error.contains("HTTP 503") && error.contains("REST does not answer either"),
        "{error}"
    );
    until_peer(&peer, "tried again", |i| {
        i["upgrades_refused"].as_u64() >= Some(2)
    })
    .await;
    let states = seen.lock().unwrap().clone();
    assert!(
        !states
            .iter()
            .any(|s| matches!(s, ConnectionState::Polling { .. })),
        "{states:?}"
    );
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_gone_while_polling_is_reconnecting_until_it_is_back() {
    let token = acme();
    let mut peer = Peer::start(Kind::AgentMonitor, &[&token], monitor_state("idle"), &[]);
    peer.control("upgrades", json!({"refuse": "status", "status": 503}))
        .await;
    let h = spawn(config(&peer.url(), monitor(), 10), &token);
    until(&h, "polling", |s| polling(s).is_some()).await;
    peer.kill();
    let st = until(&h, "reconnecting", |s| {
        matches!(s.state, ConnectionState::Reconnecting { .. })
    })
    .await;
    let ConnectionState::Reconnecting { error, .. } = &st.state else {
        unreachable!()
    };
    assert!(error.contains("REST does not answer either"), "{error}");
    // Back (a restarted peer accepts upgrades): the socket is taken.
    peer.restart(monitor_state("busy"));
    until(&h, "live", |s| s.state == ConnectionState::Live).await;
    until_field(&h, EntityKind::Agent, "a1", "status", json!("busy")).await;
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn polling_forced_in_the_settings_never_opens_the_socket() {
    let token = acme();
    let peer = Peer::start(Kind::AgentMonitor, &[&token], monitor_state("idle"), &[]);
    let dialect = monitor();
    let mut c = config(&peer.url(), dialect, 10);
    c.force_polling = true;
    let h = spawn(c, &token);
    let st = until(&h, "polling", |s| polling(s).is_some()).await;
    assert!(polling(&st).unwrap().contains("settings"), "{st:?}");
    peer.control("state", monitor_state("busy")).await;
    until_field(&h, EntityKind::Agent, "a1", "status", json!("busy")).await;
    // Several rounds later (more than a socket retry interval), still no socket.
    until_peer(&peer, "five rounds", |i| {
        i["rest"]["/api/agents"].as_u64() >= Some(5)
    })
    .await;
    let info = peer.info().await;
    assert_eq!(info["connections"], 0, "{info}");
    assert!(polling(&h.status().borrow()).is_some());
    // Retry (the button) polls again; it does not open the socket either.
    let before = info["rest"]["/api/agents"].as_u64().unwrap();
    h.retry_now();
    until_peer(&peer, "another round", |i| {
        i["rest"]["/api/agents"].as_u64() > Some(before)
    })
    .await;
    assert_eq!(peer.info().await["connections"], 0);
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn event_bridge_without_its_socket_path_polls_its_stats() {
    // Seed 001: a deployment whose `/ws` is not where the profile looks.
    let token = acme();
    let state = |pending: u64| {
        json!({
            "tasks": {"pending": pending, "inProgress": 1, "completed": 2, "total": pending + 3},
            "approvals": {"pending": 4, "approved": 0, "rejected": 0},
            "conversations": {"open": 5, "escalated": 1, "resolved": 0},
        })
    };
    let peer = Peer::start(Kind::EventBridge, &[&token], state(3), &[]);
    let mut profile = Profile::builtin("event-bridge").unwrap();
    profile.spec.socket.path = Some("/ws-moved".into());
    let h = spawn(
        config(&peer.url(), ProfileDialect::new(profile), 10),
        &token,
    );
    let st = until(&h, "polling", |s| polling(s).is_some()).await;
    assert!(!polling(&st).unwrap().contains(&token), "{st:?}");
    assert_eq!(field(&h, EntityKind::Stats, "tasks", "pending"), 3);
    peer.control("state", state(9)).await;
    until_field(&h, EntityKind::Stats, "tasks", "pending", json!(9)).await;
    assert_eq!(peer.info().await["auth_ok"], 0, "no socket was opened");
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fastapi_dashboard_set_to_always_poll_as_seed_003_asks() {
    let token = acme();
    let state = |total: u64| {
        json!({
            "dashboard": {"executions": {"total": total, "running": 0}, "agents": {"active": 2}},
            "executions": [{"id": "e1", "workflow_id": "w1", "status": "completed"}],
        })
    };
    let peer = Peer::start(Kind::FastApi, &[&token], state(1), &[]);
    let mut c = config(
        &peer.url(),
        ProfileDialect::new(Profile::builtin("fastapi-dashboard").unwrap()),
        10,
    );
    c.force_polling = true;
    let h = spawn(c, &token);
    let st = until(&h, "polling", |s| polling(s).is_some()).await;
    assert!(polling(&st).unwrap().contains("settings"), "{st:?}");
    assert_eq!(field(&h, EntityKind::Ticket, "e1", "state"), "completed");
    peer.control("state", state(5)).await;
    until(&h, "the new total", |_| {
        field(&h, EntityKind::Stats, "dashboard", "executions")["total"] == 5
    })
    .await;
    assert_eq!(peer.info().await["connections"], 0);
    h.stop().await;
}

// ------------------------------------------------------------ Socket.IO

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn socketio_without_the_wanted_transport_polls_rest() {
    let token = jwt(json!({"sub": "u1", "workspaceId": "ws1"}));
    let state = json!({
        "approvals": [{"id": "ap1", "title": "Deploy", "status": "pending"}],
        "agents": [{"id": "ag1", "status": "idle"}],
        "notifications": [],
        "messages": [],
    });
    let peer = Peer::start(
        Kind::NestRealtime,
        &[&token],
        state.clone(),
        &["--transports", "polling"],
    );
    let mut profile = Profile::builtin("nest-realtime").unwrap();
    // This deployment's profile wants the WebSocket only; the server has none.
    profile.spec.socket.transports = vec!["websocket".into()];
    let h = spawn(
        config(&peer.url(), ProfileDialect::new(profile), 10),
        &token,
    );
    let st = until(&h, "polling", |s| polling(s).is_some()).await;
    assert!(polling(&st).unwrap().contains("HTTP 400"), "{st:?}");
    assert_eq!(field(&h, EntityKind::Approval, "ap1", "title"), "Deploy");
    let mut next = state;
    next["approvals"] = json!([{"id": "ap2", "title": "Rollback", "status": "pending"}]);
    peer.control("state", next).await;
    until_field(&h, EntityKind::Approval, "ap2", "title", json!("Rollback")).await;
    assert!(
        h.store()
            .get(EntityKind::Approval, "ap1")
            .unwrap()
            .is_none(),
        "the reload replaces the list"
    );
    assert!(polling(&h.status().borrow()).is_some());
    h.stop().await;
}

// ------------------------------------------------------ seed 000's limit

/// The agent-monitor profile with its rate limit and intervals time-scaled.
fn scaled_monitor() -> ProfileDialect {
    let mut p = Profile::builtin("agent-monitor").unwrap();
    let l = p
        .spec
        .rate_limit
        .expect("the built-in declares the seed's limit");
    assert_eq!(
        l,
        RateLimit {
            requests: SEED_LIMIT,
            window_ms: SEED_WINDOW_MS
        }
    );
    p.spec.rate_limit = Some(RateLimit {
        requests: l.requests,
        window_ms: l.window_ms / SCALE,
    });
    ProfileDialect::new(p)
}

/// Wait until `ms` have passed at the peer since its first REST request (the
/// session's scaled minutes), and return its log.
async fn until_session_at(peer: &Peer, ms: i64) -> Vec<Req> {
    let info = wait_for_some(
        "the session's next phase",
        Duration::from_secs(60),
        || async {
            let info = peer.info().await;
            let first = rest_log(&info).first().map(|r| r.at);
            let now = info["now"].as_i64().unwrap();
            first.is_some_and(|f| now - f >= ms).then_some(info)
        },
    )
    .await;
    rest_log(&info)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_30_minute_session_never_meets_seed_000s_rate_limit() {
    let token = acme();
    let window_ms = (SEED_WINDOW_MS / SCALE) as i64;
    let minute = 60_000 / SCALE as i64;
    let peer = Peer::start(
        Kind::AgentMonitor,
        &[&token],
        monitor_state("idle"),
        &["--rate-limit", &format!("{SEED_LIMIT}/{window_ms}")],
    );
    // Minutes 0-10: the proxy refuses WebSockets, Pulse polls.
    peer.control("upgrades", json!({"refuse": "status", "status": 503}))
        .await;
    let h = spawn(config(&peer.url(), scaled_monitor(), SCALE), &token);
    until(&h, "polling", |s| polling(s).is_some()).await;
    until_session_at(&peer, 10 * minute).await;
    // Minutes 10-20: the socket opens; it drops now and then (each reconnect
    // reloads three resources).
    peer.control("upgrades", json!({"refuse": null})).await;
    until(&h, "live", |s| s.state == ConnectionState::Live).await;
    for _ in 0..6 {
        let before = h.status().borrow().counters.connections;
        peer.control("drop", json!({})).await;
        until(&h, "live again", |s| {
            s.counters.connections > before && s.state == ConnectionState::Live
        })
        .await;
    }
    until_session_at(&peer, 20 * minute).await;
    // Minutes 20-30: refused again.
    peer.control("upgrades", json!({"refuse": "destroy"})).await;
    peer.control("drop", json!({})).await;
    until(&h, "polling again", |s| polling(s).is_some()).await;
    let log = until_session_at(&peer, 30 * minute).await;
    h.stop().await;

    let refused: Vec<_> = log.iter().filter(|r| r.status == 429).collect();
    assert!(refused.is_empty(), "429s answered: {refused:?}");
    let windows = fixed_windows(&log, window_ms);
    assert!(windows.len() >= 2, "{windows:?}");
    assert!(
        windows.iter().all(|n| *n <= SEED_LIMIT as usize),
        "requests per window: {windows:?}"
    );
    let most = sliding_max(&log, window_ms);
    assert!(most <= SEED_LIMIT as usize, "{most} requests in one window");
    // It did keep the data fresh: 20 minutes of polling at 80 requests per
    // window, plus a reload of three resources per connection.
    eprintln!("requests per window: {windows:?}; most in any window: {most}");
    assert!(
        log.len() >= 100,
        "only {} requests in 30 minutes",
        log.len()
    );
}

/// A peer whose limit Pulse does not know (a smaller one than declared, or
/// none declared): its 429 is provoked and must be waited out.
async fn provoked_429(retry_after: &str, poll: bool) {
    let token = acme();
    let window_ms = 3000;
    let peer = Peer::start(
        Kind::AgentMonitor,
        &[&token],
        monitor_state("idle"),
        &[
            "--rate-limit",
            &format!("2/{window_ms}"),
            "--retry-after",
            retry_after,
        ],
    );
    if poll {
        peer.control("upgrades", json!({"refuse": "status", "status": 503}))
            .await;
    }
    let mut p = Profile::builtin("agent-monitor").unwrap();
    p.spec.rate_limit = None;
    let h = spawn(config(&peer.url(), ProfileDialect::new(p), 10), &token);
    // Three resources against a limit of two: the third is answered 429.
    let info = until_peer(&peer, "a 429 and a request after it", |i| {
        let log = rest_log(i);
        log.iter()
            .position(|r| r.status == 429)
            .is_some_and(|n| log.len() > n + 1)
    })
    .await;
    let log = rest_log(&info);
    let first = log.iter().position(|r| r.status == 429).unwrap();
    for (i, r) in log.iter().enumerate().filter(|(_, r)| r.status == 429) {
        let retry_at = r.retry_at.expect("the 429 said when");
        for later in &log[i + 1..] {
            assert!(
                later.at >= retry_at,
                "asked again {} ms before Retry-After: {log:?}",
                retry_at - later.at
            );
        }
    }
    if poll {
        // The data arrived anyway, and the state is Polling.
        until(&h, "polling", |s| polling(s).is_some()).await;
    } else {
        // The socket stayed up: one connection, live, the caveat names the
        // resource until it is loaded.
        let st = until(&h, "live", |s| s.state == ConnectionState::Live).await;
        assert_eq!(st.counters.connections, 1, "{st:?}");
        until(&h, "the held resource loaded", |_| {
            field(&h, EntityKind::Ticket, "t1", "title") == "Fix"
                && field(&h, EntityKind::Agent, "a1", "name") == "Ada"
        })
        .await;
        let st = h.status().borrow().clone();
        assert_eq!(st.counters.connections, 1, "{st:?}");
        assert_eq!(st.state, ConnectionState::Live);
        assert_eq!(peer.info().await["connections"], 1);
    }
    assert!(first < log.len());
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_provoked_429_on_a_live_socket_waits_retry_after_seconds() {
    provoked_429("seconds", false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_provoked_429_on_a_live_socket_waits_retry_after_as_a_date() {
    provoked_429("date", false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_provoked_429_while_polling_waits_retry_after() {
    provoked_429("seconds", true).await;
}

// ----------------------------------------------------- seed 000's rooms

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_monitor_joins_tenant_session_and_project_rooms() {
    let token = jwt(json!({"sub": "ann", "tenant_id": "acme", "sid": "s-7"}));
    let peer = Peer::start(
        Kind::AgentMonitor,
        &[&token],
        json!({"agents": [], "agent_stats": {}, "tickets": []}),
        &[],
    );
    let dialect = monitor().with_var("projects", VarValue::Many(vec!["p1".into(), "p2".into()]));
    let h = spawn(config(&peer.url(), dialect, 10), &token);
    until(&h, "live", |s| s.state == ConnectionState::Live).await;
    let info = until_peer(&peer, "four rooms", |i| {
        i["rooms"][0].as_array().is_some_and(|r| r.len() == 4)
    })
    .await;
    assert_eq!(
        info["rooms"],
        json!([["tenant:acme", "session:s-7", "project:p1", "project:p2"]])
    );
    // An event sent to each room arrives.
    for (n, room) in ["tenant:acme", "session:s-7", "project:p1", "project:p2"]
        .iter()
        .enumerate()
    {
        let id = format!("t{n}");
        let sent = peer
            .control(
                "emit",
                json!({"room": room, "type": "ticket:created", "payload": {"ticketId": id, "ticket": {"id": id, "title": room}}}),
            )
            .await;
        assert_eq!(sent["sent"], 1, "{room}");
        until_field(&h, EntityKind::Ticket, &id, "title", json!(room)).await;
    }
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_join_whose_variable_is_missing_is_skipped() {
    // No `sid` claim, no projects in the settings: only the tenant room.
    let token = acme();
    let peer = Peer::start(
        Kind::AgentMonitor,
        &[&token],
        json!({"agents": [], "agent_stats": {}, "tickets": []}),
        &[],
    );
    let dialect = monitor();
    let h = spawn(config(&peer.url(), dialect, 10), &token);
    let st = until(&h, "live", |s| s.state == ConnectionState::Live).await;
    assert_eq!(st.counters.connections, 1);
    let info = until_peer(&peer, "the tenant room", |i| {
        i["rooms"][0].as_array().is_some_and(|r| !r.is_empty())
    })
    .await;
    assert_eq!(info["rooms"], json!([["tenant:acme"]]));
    peer.emit(json!({"type": "ticket:created", "payload": {"ticketId": "t1", "ticket": {"id": "t1", "title": "x"}}}))
        .await;
    until_field(&h, EntityKind::Ticket, "t1", "title", json!("x")).await;
    assert_eq!(h.status().borrow().counters.connections, 1);
    h.stop().await;
}

// ------------------------------------------------------------- pulsectl

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pulsectl_watch_poll_never_opens_the_socket() {
    use tokio::io::{AsyncBufReadExt, AsyncReadExt};
    let token = acme();
    let peer = Peer::start(Kind::AgentMonitor, &[&token], monitor_state("idle"), &[]);
    let cache = tempfile::tempdir().unwrap();
    let mut child = tokio::process::Command::new(pulse_testkit::process::bin("pulsectl"))
        .args([
            "watch",
            "--poll",
            "--profile",
            "agent-monitor",
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
    let mut out = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let mut seen = Vec::new();
    let found = tokio::time::timeout(LIMIT, async {
        loop {
            match out.next_line().await {
                Ok(Some(line)) => {
                    let v: Value = serde_json::from_str(&line).unwrap_or(Value::Null);
                    seen.push(line);
                    if v["change"]["data"]["name"] == "Ada" {
                        return Ok(());
                    }
                }
                other => return Err(format!("{other:?}")),
            }
        }
    })
    .await;
    // The state line follows the round's first commit.
    let mut err = tokio::io::BufReader::new(child.stderr.take().unwrap()).lines();
    let mut stderr = String::new();
    let _ = tokio::time::timeout(LIMIT, async {
        while let Ok(Some(line)) = err.next_line().await {
            stderr.push_str(&line);
            stderr.push('\n');
            if line.contains("polling over REST") {
                break;
            }
        }
    })
    .await;
    let _ = child.start_kill();
    let mut rest = String::new();
    let _ = err.get_mut().read_to_string(&mut rest).await;
    stderr.push_str(&rest);
    assert!(
        matches!(found, Ok(Ok(()))),
        "{found:?}; stdout: {seen:#?}; stderr: {stderr}"
    );
    assert!(
        stderr.contains("polling over REST (polling chosen in the server's settings)"),
        "{stderr}"
    );
    assert!(!stderr.contains(&token), "token leaked: {stderr}");
    let info = peer.info().await;
    assert_eq!(info["connections"], 0, "{info}");
    assert!(info["rest"]["/api/agents"].as_u64() >= Some(1));
}
