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
