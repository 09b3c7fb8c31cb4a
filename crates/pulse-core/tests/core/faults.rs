//! Network faults against the seed dialects' peers (not only the native
//! gateway; its faults are in `tests/e2e`): the fault proxy of
//! `pulse_testkit::fault` between the session and a real Socket.IO server (seed
//! 002) and a real `ws` server (seed 000). A half-open link is noticed within the
//! dialect's own silence limit (Engine.IO's ping interval + timeout; the profile's
//! heartbeat), resets mid-frame and a slow drip are survived, connections that hang after TCP
//! connect are given up after the connect timeout and retried. What changed
//! meanwhile is in the cache afterwards (replayed by Socket.IO's recovery, or
//! reloaded over REST where the server cannot replay).
//!
//! Times are asserted only against those protocol limits, with slack.

use std::sync::Arc;
use std::time::{Duration, Instant};

use pulse_core::auth::{Secret, StaticToken};
use pulse_core::profile::{Profile, ProfileDialect};
use pulse_core::session::{ConnectionState, SessionConfig, SessionHandle, SessionStatus};
use pulse_core::store::{MemoryStore, StoreHandle};
use pulse_protocol::domain::EntityKind;
use pulse_testkit::fault::{Fault, FaultProxy};
use pulse_testkit::peers::{jwt, Kind, Peer};
use serde_json::json;

use crate::common::until_within;

/// Slack on top of a protocol limit, for a loaded machine.
const SLACK: Duration = Duration::from_secs(8);
const LIMIT: Duration = Duration::from_secs(45);
/// How soon a profile polling over REST tries its socket again.
const SOCKET_RETRY: Duration = Duration::from_secs(1);

fn proxy_for(peer: &Peer) -> FaultProxy {
    FaultProxy::start(([127, 0, 0, 1], peer.port).into())
}

fn session(url: &str, profile: Profile, token: &str) -> SessionHandle {
    let mut config = SessionConfig::new(url.parse().unwrap());
    config.backoff.base = Duration::from_millis(100);
    config.backoff.floor = Duration::from_millis(20);
    config.backoff.cap = Duration::from_millis(500);
    config.backoff.fail_after = 1000;
    config.socket_retry_interval = SOCKET_RETRY;
    config.dialect = Arc::new(ProfileDialect::new(profile));
    SessionHandle::spawn(
        config,
        Arc::new(StaticToken::new(Secret::new(token))),
        StoreHandle::new(MemoryStore::new()),
    )
    .unwrap()
}

async fn until(
    h: &SessionHandle,
    limit: Duration,
    what: &str,
    cond: impl Fn(&SessionStatus) -> bool,
) -> SessionStatus {
    until_within(limit, h, what, cond).await
}

async fn until_has(h: &SessionHandle, kind: EntityKind, id: &str) {
    let t0 = Instant::now();
    while h.store().get(kind, id).unwrap().is_none() {
        assert!(
            t0.elapsed() < LIMIT,
            "{kind:?} {id} never arrived; status {:?}",
            h.status().borrow()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn live(s: &SessionStatus) -> bool {
    s.state == ConnectionState::Live
}

/// The half-open link, then resets mid-frame, then a slow drip, on one session.
/// `silence`: the dialect's limit for a silent link. `change` makes a change on
/// the server while the link is down and returns the entity the cache must
/// then hold; `emit` sends one live event for `id`.
async fn survive_faults<C, E>(
    h: &SessionHandle,
    proxy: &FaultProxy,
    silence: Duration,
    name: &str,
    change: C,
    emit: E,
) where
    C: AsyncFn(&str) -> (EntityKind, String),
    E: AsyncFn(&str) -> (EntityKind, String),
{
    until(h, LIMIT, "live through the proxy", live).await;

    // 1. Half-open: both ways swallowed, no FIN.
    let connections = h.status().borrow().counters.connections;
    proxy.set(Fault::Blackhole);
    let t0 = Instant::now();
    until(h, silence + SLACK, "the half-open link noticed", |s| {
        !live(s)
    })
    .await;
    eprintln!(
        "FIGURE {name}: half-open link noticed after {} ms (limit {} ms)",
        t0.elapsed().as_millis(),
        silence.as_millis()
    );
    let (kind, id) = change("during-blackhole").await;
    proxy.set(Fault::Pass);
    until(h, LIMIT, "live again", |s| {
        live(s) && s.counters.connections > connections
    })
    .await;
    until_has(h, kind, &id).await;

    // 2. Resets mid-frame: every chunk from the server cut and the client reset.
    proxy.set(Fault::ResetMidFrame);
    let mut n = 0;
    while proxy.resets() < 2 {
        assert!(n < 2000, "no reset after {n} events");
        emit(&format!("reset-{n}")).await;
        n += 1;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (kind, id) = change("during-resets").await;
    proxy.set(Fault::Pass);
    until(h, LIMIT, "live after resets", live).await;
    until_has(h, kind, &id).await;

    // 3. A slow drip (one byte every 2 ms): the link stays, events arrive.
    let connections = h.status().borrow().counters.connections;
    proxy.set(Fault::Drip {
        every: Duration::from_millis(2),
    });
    let (kind, id) = emit("dripped").await;
    until_has(h, kind, &id).await;
    proxy.set(Fault::Pass);
    let st = h.status().borrow().clone();
    assert!(live(&st), "{st:?}");
    assert_eq!(
        st.counters.connections, connections,
        "a slow but live link was taken for dead"
    );

    // 4. New socket connections hang after TCP connect (the live one is cut
    //    first): the connect timeout ends each attempt, so another is made.
    //    REST passes meanwhile (a profile polls it while the socket is away).
    proxy.set_rest(Some(Fault::Pass));
    proxy.set(Fault::ResetMidFrame);
    while proxy.resets() == 0 || live(&h.status().borrow()) {
        emit("before-hang").await;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    proxy.set(Fault::Hang);
    let hung = proxy.upgrades() + 1;
    let t0 = Instant::now();
    let limit = pulse_core::transport::CONNECT_TIMEOUT + SLACK;
    while proxy.upgrades() <= hung {
        assert!(
            t0.elapsed() < limit + limit + SOCKET_RETRY,
            "a hung attempt was never given up; status {:?}",
            h.status().borrow()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    eprintln!(
        "FIGURE {name}: hung socket attempts abandoned and retried: two within {} ms (connect timeout {} ms)",
        t0.elapsed().as_millis(),
        pulse_core::transport::CONNECT_TIMEOUT.as_millis()
    );
    proxy.set_rest(None);
    proxy.set(Fault::Pass);
    until(h, LIMIT, "live after the hang", live).await;
    let (kind, id) = emit("after-hang").await;
    until_has(h, kind, &id).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nest_realtime_over_socketio_survives_a_half_open_link_resets_and_a_drip() {
    let token = jwt(json!({"sub": "ann", "workspaceId": "ws1"}));
    let state = json!({"approvals": [], "agents": [], "notifications": [], "messages": []});
    let peer = Peer::start(
        Kind::NestRealtime,
        &[&token],
        state,
        &["--transports", "websocket"],
    );
    let proxy = proxy_for(&peer);
    let h = session(
        &proxy.url(),
        Profile::builtin("nest-realtime").unwrap(),
        &token,
    );
    // The peer's Engine.IO pingInterval + pingTimeout (tests/peers/dialects).
    let silence = Duration::from_millis(2000 + 2000);
    let emit = async |id: &str| {
        peer.emit(json!({"event": "approval.created",
                         "data": {"id": id, "title": id, "status": "pending"},
                         "workspace": "ws1"}))
            .await;
        (EntityKind::Approval, id.to_owned())
    };
    // A change while the link is down is an event the server emits then: replayed
    // by connection-state recovery, else (a new session) the REST reload must
    // hold it, so the peer's state has it too.
    let change = async |id: &str| {
        let approvals = json!([{"id": id, "title": id, "status": "pending"}]);
        peer.control("state", json!({ "approvals": approvals }))
            .await;
        emit(id).await
    };
    survive_faults(&h, &proxy, silence, "socket.io", change, emit).await;
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_monitor_over_jsonws_survives_a_half_open_link_resets_and_a_drip() {
    let token = jwt(json!({"sub": "ann", "tenant_id": "acme"}));
    let state = json!({"agents": [], "agent_stats": {}, "tickets": []});
    let peer = Peer::start(Kind::AgentMonitor, &[&token], state, &[]);
    let proxy = proxy_for(&peer);
    let mut profile = Profile::builtin("agent-monitor").unwrap();
    profile.spec.heartbeat.interval_ms = 500;
    profile.spec.heartbeat.timeout_ms = 500;
    let silence = Duration::from_millis(1000);
    let h = session(&proxy.url(), profile, &token);
    let emit = async |id: &str| {
        peer.emit(json!({"type": "ticket:created",
                         "payload": {"ticketId": id, "ticket": {"id": id, "title": id, "state": "todo"}}}))
            .await;
        (EntityKind::Ticket, id.to_owned())
    };
    // No replay on this server: a change made while the link is down must come
    // from the REST reload after the reconnect.
    let change = async |id: &str| {
        peer.control(
            "state",
            json!({"tickets": [{"id": id, "title": id, "state": "todo"}]}),
        )
        .await;
        (EntityKind::Ticket, id.to_owned())
    };
    survive_faults(&h, &proxy, silence, "jsonws", change, emit).await;
    h.stop().await;
}
