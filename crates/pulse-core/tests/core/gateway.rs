//! pulse-core against the reference gateway (in-process, 127.0.0.1:0): an action's
//! idempotency key is the same on its first try and on the outbox's resend, and
//! the gateway answers that resend like the first; refreshes are one at a time
//! (the gateway revokes a sign-in whose refresh token comes back twice); signing out
//! revokes the session at the server.

use std::io::{Read, Write};
use std::sync::Arc;

use pulse_core::actions::{idempotency_key, perform_detached, Detached, Via};
use pulse_core::auth::{Secret, StaticToken, TokenProvider};
use pulse_core::credentials::{account_key, CredentialStore, MemoryCredentials, StoredLogin};
use pulse_core::rest::{RestClient, RestError};
use pulse_core::session::NativeDialect;
use pulse_core::store::{Action, MemoryStore, StoreHandle};
use pulse_gateway::{Config, Gateway, User};
use pulse_protocol::auth::{Role, TokenUse};
use serde_json::json;

fn approve(id: &str) -> Action {
    Action::Approve {
        id: id.into(),
        reason: None,
    }
}

async fn gateway_with_approval(id: &str) -> pulse_gateway::RunningGateway {
    let gw = Gateway::start(Config {
        users: vec![User::new("ann", "hunter2", "acme", Role::Viewer).unwrap()],
        ..pulse_testkit::gateway::config()
    })
    .await
    .unwrap();
    let publisher = pulse_testkit::gateway::token("acme", "svc", Role::Publisher, TokenUse::Access);
    let r = reqwest::Client::new()
        .post(format!("{}/v1/ingest", gw.url()))
        .bearer_auth(publisher)
        .json(&json!({"type": "approval.created", "data": {"id": id}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    gw
}

#[test]
fn an_actions_key_is_stable_and_its_own() {
    let a = approve("ap1");
    let k = idempotency_key(&a, 1_767_000_000_000);
    assert_eq!(k, idempotency_key(&approve("ap1"), 1_767_000_000_000));
    assert!(k.starts_with("pulse-") && k.len() == 6 + 32, "{k}");
    assert!(k.bytes().all(|b| b.is_ascii_graphic()));
    assert_ne!(k, idempotency_key(&a, 1_767_000_000_001), "another moment");
    assert_ne!(k, idempotency_key(&approve("ap2"), 1_767_000_000_000));
    let reject = Action::Reject {
        id: "ap1".into(),
        reason: None,
    };
    assert_ne!(k, idempotency_key(&reject, 1_767_000_000_000));
}

/// A server that reads one request, records its `Idempotency-Key`, and closes the
/// connection without answering (a send whose answer was lost).
fn swallowing_server() -> (url::Url, std::thread::JoinHandle<Option<String>>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = url::Url::parse(&format!("http://{}", listener.local_addr().unwrap())).unwrap();
    let t = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        let mut req = Vec::new();
        let mut buf = [0u8; 4096];
        while !String::from_utf8_lossy(&req).contains("\r\n\r\n") {
            let n = s.read(&mut buf).unwrap();
            if n == 0 {
                break;
            }
            req.extend_from_slice(&buf[..n]);
        }
        let text = String::from_utf8_lossy(&req).into_owned();
        let _ = s.flush();
        drop(s);
        text.lines().find_map(|l| {
            l.to_ascii_lowercase()
                .starts_with("idempotency-key:")
                .then(|| l.split_once(':').unwrap().1.trim().to_owned())
        })
    });
    (url, t)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queued_action_is_resent_with_the_key_of_its_first_try_and_applied_once() {
    // First try: the answer is lost; the action is queued.
    let (url, seen) = swallowing_server();
    let rest = RestClient::new(url).unwrap();
    let tokens = StaticToken::new(Secret::new(pulse_testkit::gateway::token(
        "acme",
        "ann",
        Role::Viewer,
        TokenUse::Access,
    )));
    let store = StoreHandle::new(MemoryStore::new());
    let via = Via {
        rest: &rest,
        tokens: &tokens,
        dialect: &NativeDialect,
    };
    let owner = pulse_core::store::suite::owner("ann");
    let queued = perform_detached(
        Some(via),
        &owner,
        &approve("ap1"),
        Some(|| Ok(store.clone())),
    )
    .await
    .unwrap();
    assert!(matches!(queued, Detached::Queued { .. }), "{queued:?}");
    let first_key = seen.join().unwrap().expect("the first try carried a key");
    let entry = store.outbox().unwrap().remove(0);
    let key = idempotency_key(&entry.action, entry.queued_at);
    assert_eq!(
        key, first_key,
        "the outbox resends with the first try's key"
    );

    // The gateway applied a first send with that key; the resend is answered the
    // same, not as a conflict.
    let gw = gateway_with_approval("ap1").await;
    let rest = RestClient::new(url::Url::parse(&gw.url()).unwrap()).unwrap();
    let token = tokens.token(false).await.unwrap();
    let first = rest
        .perform(&token, &entry.action, Some(&key))
        .await
        .unwrap();
    let resent = rest
        .perform(&token, &entry.action, Some(&key))
        .await
        .unwrap();
    assert_eq!(first, resent);
    // Without the key, the same resend is a conflict.
    let err = rest.perform(&token, &entry.action, None).await.unwrap_err();
    assert!(matches!(err, RestError::Conflict { .. }), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refreshes_are_one_at_a_time_and_sign_out_revokes_the_session() {
    let gw = gateway_with_approval("ap1").await;
    let base = url::Url::parse(&gw.url()).unwrap();
    let creds: Arc<dyn CredentialStore> = Arc::new(MemoryCredentials::default());
    let login = Arc::new(
        StoredLogin::sign_in(
            RestClient::new(base.clone()).unwrap(),
            "ann",
            &Secret::new("hunter2"),
            creds.clone(),
        )
        .await
        .unwrap(),
    );
    // Four callers find the access token refused at once: one refresh, not four
    // (four would send one refresh token four times, and the gateway would revoke
    // the sign-in).
    let calls = (0..4).map(|_| {
        let login = login.clone();
        tokio::spawn(async move { login.token(true).await })
    });
    for c in futures_util::future::join_all(calls).await {
        c.unwrap().expect("every caller gets a token");
    }
    let again = login.token(true).await;
    assert!(again.is_ok(), "the sign-in is intact: {again:?}");

    let account = account_key(&base, "ann");
    let stored = creds
        .load(&account)
        .unwrap()
        .expect("a stored refresh token");
    login.sign_out_at_server().await.unwrap();
    assert_eq!(creds.load(&account).unwrap(), None, "forgotten here");
    let rest = RestClient::new(base).unwrap();
    let refused = rest.refresh(&stored).await.unwrap_err();
    assert!(
        matches!(refused, RestError::Unauthorized { .. }),
        "revoked at the server: {refused}"
    );
}

/// The native session keeps its link across a token refresh: shortly before the
/// stream's token expires it sends an `auth` frame with a fresh one, so the gateway
/// does not close the stream (4001) and nothing reconnects. (Waits for the first
/// token to expire: about 27 s.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_native_session_keeps_its_link_across_a_token_refresh() {
    use pulse_core::session::{SessionConfig, SessionHandle};
    let gw = Gateway::start(Config {
        users: vec![User::new("ann", "hunter2", "acme", Role::Viewer).unwrap()],
        // Renewal starts 25 s before expiry: 2 s after login here.
        access_ttl: std::time::Duration::from_secs(27),
        ..pulse_testkit::gateway::config()
    })
    .await
    .unwrap();
    let base = url::Url::parse(&gw.url()).unwrap();
    let login = StoredLogin::sign_in(
        RestClient::new(base.clone()).unwrap(),
        "ann",
        &Secret::new("hunter2"),
        Arc::new(MemoryCredentials::default()),
    )
    .await
    .unwrap();
    let first_exp = login.token(false).await.unwrap().jwt_expiry().unwrap();
    let handle = SessionHandle::spawn(
        SessionConfig::new(base),
        Arc::new(login),
        StoreHandle::new(MemoryStore::new()),
    )
    .unwrap();
    let live = |s: &pulse_core::session::SessionStatus| {
        matches!(s.state, pulse_core::session::ConnectionState::Live)
    };
    crate::common::until_within(std::time::Duration::from_secs(20), &handle, "live", live).await;
    // Past the first token's expiry (a wall-clock condition, polled).
    while pulse_gateway::auth::now_secs() <= first_exp + 1 {
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    let publisher = pulse_testkit::gateway::token("acme", "svc", Role::Publisher, TokenUse::Access);
    let r = reqwest::Client::new()
        .post(format!("{}/v1/ingest", gw.url()))
        .bearer_auth(publisher)
        .json(&json!({"type": "agent.upserted", "data": {"id": "late"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let head: u64 = r.json::<serde_json::Value>().await.unwrap()["seqs"][0]
        .as_u64()
        .unwrap();
    let st = crate::common::until_within(
        std::time::Duration::from_secs(20),
        &handle,
        "the late event",
        |s| s.cursor.as_ref().is_some_and(|c| c.seq >= head),
    )
    .await;
    assert_eq!(st.counters.connections, 1, "the link was kept: {st:?}");
    handle.stop().await;
}

/// Two users on one tenant, each with `ap1`…`ap3` pending.
async fn gateway_with_approvals() -> pulse_gateway::RunningGateway {
    let gw = gateway_with_approval("ap1").await;
    let publisher = pulse_testkit::gateway::token("acme", "svc", Role::Publisher, TokenUse::Access);
    for id in ["ap2", "ap3"] {
        let r = reqwest::Client::new()
            .post(format!("{}/v1/ingest", gw.url()))
            .bearer_auth(&publisher)
            .json(&json!({"type": "approval.created", "data": {"id": id}}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
    gw
}

/// The approvals a gateway recorded a decision for, in its event log's order.
async fn decided(gw: &pulse_gateway::RunningGateway) -> Vec<String> {
    let viewer = pulse_testkit::gateway::token("acme", "svc", Role::Viewer, TokenUse::Access);
    let page: pulse_protocol::rest::EventsPage = reqwest::Client::new()
        .get(format!("{}/v1/events?since=0", gw.url()))
        .bearer_auth(viewer)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    page.events
        .iter()
        .filter(|e| e.event_type == "approval.decided")
        .map(|e| e.data["id"].as_str().unwrap_or_default().to_owned())
        .collect()
}

/// A session as `account` on `gw`, on `store`, whose queued entries are `owner`'s.
fn session_as(
    gw: &pulse_gateway::RunningGateway,
    owner: &pulse_core::store::Owner,
    account: &str,
    store: &StoreHandle,
) -> (
    pulse_core::session::SessionHandle,
    tokio::sync::broadcast::Receiver<pulse_core::session::SessionEvent>,
) {
    let mut config = pulse_core::session::SessionConfig::new(url::Url::parse(&gw.url()).unwrap());
    config.owner = owner.clone();
    let token = pulse_testkit::gateway::token("acme", account, Role::Viewer, TokenUse::Access);
    let h = pulse_core::session::SessionHandle::spawn(
        config,
        Arc::new(StaticToken::new(Secret::new(token))),
        store.clone(),
    )
    .unwrap();
    let events = h.subscribe();
    (h, events)
}

/// Wait until the entry `outbox_id` settles, and return its outcome.
async fn settled(
    events: &mut tokio::sync::broadcast::Receiver<pulse_core::session::SessionEvent>,
    outbox_id: u64,
) -> pulse_core::session::ActionOutcome {
    tokio::time::timeout(std::time::Duration::from_secs(20), async {
        loop {
            match events.recv().await {
                Ok(pulse_core::session::SessionEvent::ActionSettled {
                    outbox_id: id,
                    outcome,
                    ..
                }) if id == outbox_id => return outcome,
                Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                Err(e) => panic!("session events ended: {e}"),
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("entry {outbox_id} never settled"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queued_actions_are_sent_only_by_the_account_and_server_they_were_queued_for() {
    use pulse_core::session::ActionOutcome;
    use pulse_core::store::{Owner, SqliteStore, Store};

    let a = gateway_with_approvals().await;
    let b = gateway_with_approvals().await;
    let url = |gw: &pulse_gateway::RunningGateway| url::Url::parse(&gw.url()).unwrap();
    let ann_a = Owner::of_url(&url(&a), Some("ann"));
    let bob_a = Owner::of_url(&url(&a), Some("bob"));
    let ann_b = Owner::of_url(&url(&b), Some("ann"));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cache.db");
    let store = StoreHandle::new(SqliteStore::open(&path).unwrap());
    let queue = |owner: &Owner, id: &str| {
        let store = store.clone();
        let owner = owner.clone();
        let id = id.to_owned();
        async move {
            match perform_detached(None, &owner, &approve(&id), Some(|| Ok(store)))
                .await
                .unwrap()
            {
                Detached::Queued { outbox_id, .. } => outbox_id,
                other => panic!("{other:?}"),
            }
        }
    };
    // Queued while signed out: ann's approval on A, then one with no known owner
    // (a row migrated from schema 1), then ann's on B and bob's on A.
    let anns = queue(&ann_a, "ap1").await;
    let unowned = queue(&ann_a, "ap2").await;
    {
        let raw = rusqlite::Connection::open(&path).unwrap();
        raw.execute("UPDATE outbox SET owner = NULL WHERE id = ?1", [unowned])
            .unwrap();
    }
    let on_b = queue(&ann_b, "ap3").await;
    let bobs = queue(&bob_a, "ap3").await;
    let owners: Vec<(u64, Option<Owner>)> = store
        .outbox()
        .unwrap()
        .into_iter()
        .map(|e| (e.id, e.owner))
        .collect();
    assert_eq!(
        owners,
        vec![
            (anns, Some(ann_a.clone())),
            (unowned, None),
            (on_b, Some(ann_b.clone())),
            (bobs, Some(bob_a.clone())),
        ]
    );

    // Switched to server B: only B's entry is sent. The flush goes in id order,
    // so the entries before it were passed over by the time it settles.
    let (h, mut events) = session_as(&b, &ann_b, "ann", &store);
    let out = settled(&mut events, on_b).await;
    assert!(matches!(out, ActionOutcome::Done { .. }), "{out:?}");
    h.stop().await;
    assert_eq!(decided(&b).await, ["ap3"], "B got only its own entry");
    assert!(decided(&a).await.is_empty());

    // Switched account on A: bob's session sends bob's entry, never ann's.
    let (h, mut events) = session_as(&a, &bob_a, "bob", &store);
    let out = settled(&mut events, bobs).await;
    assert!(matches!(out, ActionOutcome::Done { .. }), "{out:?}");
    h.stop().await;
    assert_eq!(decided(&a).await, ["ap3"], "bob's approval only");

    // Back to ann on A: her entry is sent, once.
    let (h, mut events) = session_as(&a, &ann_a, "ann", &store);
    let out = settled(&mut events, anns).await;
    assert!(matches!(out, ActionOutcome::Done { .. }), "{out:?}");
    h.stop().await;
    assert_eq!(decided(&a).await, ["ap3", "ap1"]);
    assert_eq!(decided(&b).await, ["ap3"], "B never got A's entries");
    // The unowned entry was sent by nobody and is still there.
    let left: Vec<(u64, Option<Owner>)> = store
        .outbox()
        .unwrap()
        .into_iter()
        .map(|e| (e.id, e.owner))
        .collect();
    assert_eq!(left, vec![(unowned, None)]);
    drop(store);
    assert_eq!(
        SqliteStore::open(&path).unwrap().summary().unwrap().outbox,
        1
    );
}
