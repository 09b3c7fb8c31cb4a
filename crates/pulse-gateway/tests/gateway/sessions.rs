//! Refresh-token sessions against real gateways: rotation with reuse detection,
//! logout, a user removed from the users file, and the sessions kept in the store
//! (SQLite across a restart, Redis shared by two nodes).

use pulse_gateway::users::UsersFile;
use pulse_gateway::{auth, Config, StoreConfig, User};
use pulse_protocol::auth::Role;
use pulse_protocol::rest::TokenResponse;
use pulse_testkit::redis::RedisServer;
use serde_json::{json, Value};

use crate::common::*;

fn ann() -> User {
    User::new("ann", "hunter2", "acme", Role::Viewer).unwrap()
}

async fn login(gw: &Gw) -> TokenResponse {
    let r = gw
        .http
        .post(gw.url("/v1/auth/login"))
        .json(&json!({"username": "ann", "password": "hunter2"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    r.json().await.unwrap()
}

async fn post_token(gw: &Gw, path: &str, token: &str) -> reqwest::Response {
    gw.http
        .post(gw.url(path))
        .json(&json!({"refresh_token": token}))
        .send()
        .await
        .unwrap()
}

/// Refresh; `Ok` the new tokens, `Err` (status, code, message).
async fn refresh(gw: &Gw, token: &str) -> Result<TokenResponse, (u16, String, String)> {
    let r = post_token(gw, "/v1/auth/refresh", token).await;
    let status = r.status().as_u16();
    if status == 200 {
        return Ok(r.json().await.unwrap());
    }
    let body: Value = r.json().await.unwrap();
    Err((
        status,
        body["error"]["code"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
        body["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
    ))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refresh_tokens_rotate_and_a_reused_one_revokes_the_session() {
    let gw = Gw::start(Config {
        users: vec![ann()],
        ..config()
    })
    .await;
    let first = login(&gw).await;
    let second = refresh(&gw, &first.refresh_token).await.unwrap();
    assert_ne!(second.refresh_token, first.refresh_token, "rotated");
    let c1 = auth::verify(SECRET, &first.refresh_token).unwrap();
    let c2 = auth::verify(SECRET, &second.refresh_token).unwrap();
    assert_eq!(c1.fam, c2.fam, "one family");
    assert_ne!(c1.jti, c2.jti);
    let third = refresh(&gw, &second.refresh_token).await.unwrap();
    // The first token again: reuse. The whole family goes, the newest token too.
    let (status, _, message) = refresh(&gw, &first.refresh_token).await.unwrap_err();
    assert_eq!(status, 401);
    assert!(message.contains("already used"), "{message}");
    let (status, _, message) = refresh(&gw, &third.refresh_token).await.unwrap_err();
    assert_eq!(status, 401);
    assert!(message.contains("ended"), "{message}");
    // Another login is another family, unaffected.
    let other = login(&gw).await;
    refresh(&gw, &other.refresh_token).await.unwrap();
    // A refresh token that belongs to no family (minted offline) is refused.
    let minted = token_with(
        "acme",
        "ann",
        Role::Viewer,
        pulse_protocol::auth::TokenUse::Refresh,
    );
    let (status, _, message) = refresh(&gw, &minted).await.unwrap_err();
    assert_eq!(status, 401);
    assert!(message.contains("no session"), "{message}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logout_revokes_the_session() {
    let gw = Gw::start(Config {
        users: vec![ann()],
        ..config()
    })
    .await;
    let t = login(&gw).await;
    let kept = login(&gw).await;
    let r = post_token(&gw, "/v1/auth/logout", &t.refresh_token).await;
    assert_eq!(r.status(), 204);
    assert_eq!(refresh(&gw, &t.refresh_token).await.unwrap_err().0, 401);
    // Twice is once; the other sign-in of the same user stays.
    let r = post_token(&gw, "/v1/auth/logout", &t.refresh_token).await;
    assert_eq!(r.status(), 204);
    refresh(&gw, &kept.refresh_token).await.unwrap();
    // Garbage is refused clearly, an access token too.
    for bad in ["garbage", "", t.access_token.as_str()] {
        let r = post_token(&gw, "/v1/auth/logout", bad).await;
        assert_eq!(r.status(), 401, "{bad}");
    }
    let r = gw
        .http
        .post(gw.url("/v1/auth/logout"))
        .header("content-type", "application/json")
        .body("{\"refresh_token\": [")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removing_a_user_revokes_their_refresh_tokens() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("users.toml");
    let mut file = UsersFile::default();
    file.add(ann()).unwrap();
    file.add(User::new("bob", "pw-b", "acme", Role::Viewer).unwrap())
        .unwrap();
    file.save(&path).unwrap();
    let gw = Gw::start(Config {
        users_file: Some(path.clone()),
        ..config()
    })
    .await;
    let t = login(&gw).await;
    let t = refresh(&gw, &t.refresh_token).await.unwrap();
    file.remove("ann").unwrap();
    file.save(&path).unwrap();
    let (status, _, message) = refresh(&gw, &t.refresh_token).await.unwrap_err();
    assert_eq!(status, 401);
    assert!(message.contains("can no longer log in"), "{message}");
    // Added back, the old session stays revoked: only a new login works.
    file.add(ann()).unwrap();
    file.save(&path).unwrap();
    assert_eq!(refresh(&gw, &t.refresh_token).await.unwrap_err().0, 401);
    refresh(&gw, &login(&gw).await.refresh_token).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_survive_a_restart_on_sqlite_and_not_in_memory() {
    let dir = tempfile::tempdir().unwrap();
    let sqlite = Config {
        users: vec![ann()],
        store: StoreConfig::Sqlite(dir.path().join("gw.db")),
        ..config()
    };
    let gw = Gw::start(sqlite.clone()).await;
    let t = login(&gw).await;
    let used = t.refresh_token.clone();
    let t = refresh(&gw, &t.refresh_token).await.unwrap();
    gw.gw.shutdown().await;
    let gw = Gw::start(sqlite).await;
    let t2 = refresh(&gw, &t.refresh_token).await.unwrap();
    // Reuse detection survives the restart as well.
    assert_eq!(refresh(&gw, &used).await.unwrap_err().0, 401);
    assert_eq!(refresh(&gw, &t2.refresh_token).await.unwrap_err().0, 401);
    gw.gw.shutdown().await;

    let memory = Config {
        users: vec![ann()],
        ..config()
    };
    let gw = Gw::start(memory.clone()).await;
    let t = login(&gw).await;
    gw.gw.shutdown().await;
    let gw = Gw::start(memory).await;
    let (status, _, message) = refresh(&gw, &t.refresh_token).await.unwrap_err();
    assert_eq!(status, 401);
    assert!(message.contains("ended"), "{message}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_nodes_share_sessions() {
    let redis = RedisServer::start();
    let node = |id: &str| Config {
        users: vec![ann()],
        store: StoreConfig::Redis(redis.url()),
        node_id: Some(id.into()),
        ..config()
    };
    let a = Gw::start(node("a")).await;
    let b = Gw::start(node("b")).await;
    let t = login(&a).await;
    let t2 = refresh(&b, &t.refresh_token).await.unwrap();
    // The token node B rotated away is a reuse at node A: the family is revoked
    // for both.
    assert_eq!(refresh(&a, &t.refresh_token).await.unwrap_err().0, 401);
    assert_eq!(refresh(&b, &t2.refresh_token).await.unwrap_err().0, 401);
    // Logout at one node is logout at the other.
    let t = login(&a).await;
    assert_eq!(
        post_token(&b, "/v1/auth/logout", &t.refresh_token)
            .await
            .status(),
        204
    );
    assert_eq!(refresh(&a, &t.refresh_token).await.unwrap_err().0, 401);
}

async fn login_as(gw: &Gw, user: &str, password: &str) -> TokenResponse {
    let r = gw
        .http
        .post(gw.url("/v1/auth/login"))
        .json(&json!({"username": user, "password": password}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    r.json().await.unwrap()
}

/// The stream gets an `error` frame `code`, then a close with 4001.
async fn closed_with(ws: &mut Ws, code: &str) -> String {
    let message = match next_frame(ws).await {
        pulse_protocol::ServerFrame::Error { code: c, message } => {
            assert_eq!(c, code, "{message}");
            message
        }
        other => panic!("expected error {code}, got {other:?}"),
    };
    assert_eq!(closed(ws).await, Some(4001));
    message
}

/// Removing a user (users file rewritten while the gateway runs, no request in
/// between) at once closes their open streams, refuses their unexpired access
/// tokens and revokes their refresh tokens in the store, so adding them back
/// brings nothing back. Another user's stream and tokens are untouched. On the
/// memory and the SQLite store (Redis: `store::suite::redis`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removing_a_user_closes_their_streams_and_revokes_their_tokens_at_once() {
    for sqlite in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("users.toml");
        let mut file = UsersFile::default();
        file.add(ann()).unwrap();
        file.add(User::new("bob", "pw-b", "acme", Role::Viewer).unwrap())
            .unwrap();
        file.save(&path).unwrap();
        let store = if sqlite {
            StoreConfig::Sqlite(dir.path().join("gw.db"))
        } else {
            StoreConfig::Memory
        };
        let gw = Gw::start(Config {
            users_file: Some(path.clone()),
            store,
            ..config()
        })
        .await;
        let anns = login(&gw).await;
        let bobs = login_as(&gw, "bob", "pw-b").await;
        let (mut ann_ws, _) = subscribe(&gw, &anns.access_token, Some(0), None).await;
        let (mut bob_ws, subscribed) = subscribe(&gw, &bobs.access_token, Some(0), None).await;
        assert_eq!(
            gw.get(&anns.access_token, "/v1/snapshot").await.status(),
            200
        );

        file.remove("ann").unwrap();
        file.save(&path).unwrap();
        // Noticed by the gateway itself (it looks at the file every second).
        let message = closed_with(&mut ann_ws, "revoked").await;
        assert!(message.contains("can no longer log in"), "{message}");
        let r = gw.get(&anns.access_token, "/v1/snapshot").await;
        assert_eq!(r.status(), 401, "sqlite: {sqlite}");
        // Added back before any refresh: the old refresh and access tokens stay
        // dead (revoked at the removal, not when next presented).
        file.add(ann()).unwrap();
        file.save(&path).unwrap();
        let (status, _, message) = refresh(&gw, &anns.refresh_token).await.unwrap_err();
        assert_eq!(status, 401, "sqlite: {sqlite}");
        assert!(message.contains("ended"), "{message}");
        assert_eq!(
            gw.get(&anns.access_token, "/v1/snapshot").await.status(),
            401
        );
        // Bob is untouched: his stream gets the next event, his token works.
        let seqs = gw
            .ingest(
                &publisher("acme"),
                ev("agent.upserted", json!({"id": "a1"})),
            )
            .await;
        let got = events(&mut bob_ws, 1).await;
        assert_eq!(got[0].seq, seqs[0]);
        assert_eq!(got[0].seq, subscribed.head + 1);
        refresh(&gw, &bobs.refresh_token).await.unwrap();
        // A new login of the re-added ann works, stream included.
        let again = login(&gw).await;
        assert_eq!(
            gw.get(&again.access_token, "/v1/snapshot").await.status(),
            200
        );
        subscribe(&gw, &again.access_token, Some(0), None).await;
    }
}

/// Logout ends that session's access tokens and open streams at once; the
/// user's other sign-in (another family) keeps its stream and tokens.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logout_closes_that_sessions_streams() {
    let gw = Gw::start(Config {
        users: vec![ann()],
        ..config()
    })
    .await;
    let one = login(&gw).await;
    let two = login(&gw).await;
    let (mut ws_one, _) = subscribe(&gw, &one.access_token, Some(0), None).await;
    let (mut ws_two, subscribed) = subscribe(&gw, &two.access_token, Some(0), None).await;
    assert_eq!(
        post_token(&gw, "/v1/auth/logout", &one.refresh_token)
            .await
            .status(),
        204
    );
    let message = closed_with(&mut ws_one, "revoked").await;
    assert!(message.contains("signed out"), "{message}");
    assert_eq!(
        gw.get(&one.access_token, "/v1/snapshot").await.status(),
        401
    );
    // An `auth` frame with the signed-out session's token is refused too.
    send(
        &mut ws_two,
        &pulse_protocol::ClientFrame::Auth {
            token: one.access_token.clone(),
        },
    )
    .await;
    closed_with(&mut ws_two, "unauthorized").await;
    let (mut ws_two, _) = subscribe(&gw, &two.access_token, Some(subscribed.head), None).await;
    let seqs = gw
        .ingest(
            &publisher("acme"),
            ev("agent.upserted", json!({"id": "a1"})),
        )
        .await;
    assert_eq!(events(&mut ws_two, 1).await[0].seq, seqs[0]);
    assert_eq!(
        gw.get(&two.access_token, "/v1/snapshot").await.status(),
        200
    );
}
