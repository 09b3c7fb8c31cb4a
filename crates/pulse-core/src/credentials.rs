//! Signing in once and staying signed in: a refresh token kept in a
//! [`CredentialStore`] (the OS keyring in the desktop app), never in the cache, a
//! settings file, a log line or a URL.
//!
//! [`StoredLogin`] is a [`TokenProvider`]: it holds the short-lived access token in
//! memory only and gets a new one with the stored refresh token when needed, storing
//! the rotated refresh token back. When there is no stored token, or the server
//! refuses it, it answers [`AuthError::Unauthorized`] ("signed out"), which the
//! session shows without retrying.
//!
//! Refreshes are one at a time: the gateway rotates refresh tokens and revokes the
//! whole sign-in when an already used one comes back, so two callers must never
//! send the same stored token. A caller that waited for another's refresh uses the
//! access token it got.

use std::sync::{Arc, Mutex};

use crate::auth::{AuthError, Secret, TokenFuture, TokenProvider};
use crate::rest::{RestClient, RestError};

/// Why a credential could not be read or written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CredentialError {
    /// There is no credential store on this system (e.g. no Secret Service running).
    #[error("no credential store is available: {0}")]
    Unavailable(String),
    /// The store answered with an error.
    #[error("credential store error: {0}")]
    Failed(String),
}

/// Where secrets are kept between runs (the OS keyring; a map in tests).
pub trait CredentialStore: Send + Sync + 'static {
    /// The secret stored for `account`, if any.
    fn load(&self, account: &str) -> Result<Option<Secret>, CredentialError>;
    /// Store `secret` for `account`, replacing any earlier one.
    fn save(&self, account: &str, secret: &Secret) -> Result<(), CredentialError>;
    /// Forget `account`'s secret (no error if there was none).
    fn delete(&self, account: &str) -> Result<(), CredentialError>;
}

/// An in-memory [`CredentialStore`], for tests.
#[derive(Default)]
pub struct MemoryCredentials(Mutex<std::collections::HashMap<String, Secret>>);

impl CredentialStore for MemoryCredentials {
    fn load(&self, account: &str) -> Result<Option<Secret>, CredentialError> {
        Ok(self.0.lock().expect("lock").get(account).cloned())
    }
    fn save(&self, account: &str, secret: &Secret) -> Result<(), CredentialError> {
        self.0
            .lock()
            .expect("lock")
            .insert(account.to_owned(), secret.clone());
        Ok(())
    }
    fn delete(&self, account: &str) -> Result<(), CredentialError> {
        self.0.lock().expect("lock").remove(account);
        Ok(())
    }
}

/// The key a server's refresh token is stored under: `user@server-url`.
pub fn account_key(server: &url::Url, username: &str) -> String {
    format!("{username}@{}", server.as_str().trim_end_matches('/'))
}

/// Signs in with a password once, then lives on the stored refresh token.
pub struct StoredLogin {
    rest: RestClient,
    account: String,
    store: Arc<dyn CredentialStore>,
    access: Mutex<Option<Secret>>,
    /// Held while a refresh runs (see the module docs).
    refreshing: tokio::sync::Mutex<()>,
}

fn map_rest(e: RestError) -> AuthError {
    match e {
        RestError::Unauthorized { message, .. } => AuthError::Unauthorized(message),
        other => AuthError::Unreachable(other.to_string()),
    }
}

impl StoredLogin {
    /// Use the refresh token stored under `account` (see [`account_key`]).
    pub fn new(rest: RestClient, account: String, store: Arc<dyn CredentialStore>) -> Self {
        StoredLogin {
            rest,
            account,
            store,
            access: Mutex::new(None),
            refreshing: tokio::sync::Mutex::new(()),
        }
    }

    /// Sign in with `username`/`password` and store the refresh token. The password
    /// is not kept.
    pub async fn sign_in(
        rest: RestClient,
        username: &str,
        password: &Secret,
        store: Arc<dyn CredentialStore>,
    ) -> Result<StoredLogin, AuthError> {
        let account = account_key(rest.base(), username);
        let t = rest.login(username, password).await.map_err(|e| match e {
            RestError::Unauthorized { .. } => AuthError::Unauthorized(format!(
                "sign-in refused for user `{username}`: wrong user name or password"
            )),
            other => map_rest(other),
        })?;
        store
            .save(&account, &Secret::new(t.refresh_token))
            .map_err(|e| {
                AuthError::Unauthorized(format!(
                    "signed in, but {e}: the sign-in cannot be remembered"
                ))
            })?;
        let login = StoredLogin::new(rest, account, store);
        *login.access.lock().expect("lock") = Some(Secret::new(t.access_token));
        Ok(login)
    }

    /// [`StoredLogin::sign_in`] at the server of `rest`, or, while the node asked
    /// cannot be reached, at its other `nodes` in order (a cluster; see
    /// [`crate::failover`]). The sign-in is kept under the server's first URL and
    /// asks the node that answered for its refreshes.
    pub async fn sign_in_at(
        rest: RestClient,
        nodes: &[url::Url],
        username: &str,
        password: &Secret,
        store: Arc<dyn CredentialStore>,
    ) -> Result<StoredLogin, AuthError> {
        let first = rest.base().clone();
        let mut last = None;
        for node in std::iter::once(&first).chain(nodes) {
            rest.use_node(node);
            match StoredLogin::sign_in(rest.clone(), username, password, store.clone()).await {
                Err(AuthError::Unreachable(e)) => last = Some(e),
                done => return done,
            }
        }
        Err(AuthError::Unreachable(last.unwrap_or_default()))
    }

    /// Whether a refresh token is stored (an answer of the store, not of the server).
    pub fn has_stored_token(&self) -> Result<bool, CredentialError> {
        Ok(self.store.load(&self.account)?.is_some())
    }

    /// Sign out at the server too: revoke the stored refresh token's session
    /// (`POST /v1/auth/logout`, best effort: an unreachable server is logged and the
    /// sign-in is forgotten all the same), then [`StoredLogin::sign_out`].
    pub async fn sign_out_at_server(&self) -> Result<(), CredentialError> {
        let _one = self.refreshing.lock().await;
        if let Ok(Some(stored)) = self.store.load(&self.account) {
            if let Err(e) = self.rest.logout(&stored).await {
                tracing::warn!(error = %e, "the server did not take the sign-out; forgetting the sign-in here");
            }
        }
        self.sign_out()
    }

    /// Forget the stored token and the access token.
    pub fn sign_out(&self) -> Result<(), CredentialError> {
        *self.access.lock().expect("lock") = None;
        self.store.delete(&self.account)
    }

    /// The account key.
    pub fn account(&self) -> &str {
        &self.account
    }

    /// A new access token; `had` is the one the caller saw (refused or stale).
    async fn refresh(&self, had: Option<Secret>) -> Result<Secret, AuthError> {
        let _one = self.refreshing.lock().await;
        // Another caller refreshed while this one waited: use its token.
        let now = self.access.lock().expect("lock").clone();
        if let Some(access) = now {
            if Some(&access) != had.as_ref() && fresh(&access, 30) {
                return Ok(access);
            }
        }
        let stored = self
            .store
            .load(&self.account)
            .map_err(|e| AuthError::Unauthorized(format!("signed out: {e}")))?
            .ok_or_else(|| AuthError::Unauthorized("signed out: sign in under Settings".into()))?;
        match self.rest.refresh(&stored).await {
            Ok(t) => {
                let access = Secret::new(t.access_token);
                if let Err(e) = self
                    .store
                    .save(&self.account, &Secret::new(t.refresh_token))
                {
                    tracing::warn!(error = %e, "could not store the rotated refresh token");
                }
                *self.access.lock().expect("lock") = Some(access.clone());
                Ok(access)
            }
            Err(RestError::Unauthorized { .. }) => {
                let _ = self.store.delete(&self.account);
                Err(AuthError::Unauthorized(
                    "your sign-in has expired: sign in again under Settings".into(),
                ))
            }
            Err(e) => Err(map_rest(e)),
        }
    }
}

fn fresh(secret: &Secret, slack_secs: u64) -> bool {
    match secret.jwt_expiry() {
        Some(exp) => exp > (crate::now_ms() / 1000) as u64 + slack_secs,
        None => true,
    }
}

impl TokenProvider for StoredLogin {
    fn token(&self, force_refresh: bool) -> TokenFuture<'_> {
        Box::pin(async move {
            let current = self.access.lock().expect("lock").clone();
            match current {
                Some(access) if !force_refresh && fresh(&access, 30) => Ok(access),
                _ => self.refresh(current).await,
            }
        })
    }

    fn use_node(&self, node: &url::Url) {
        // The sign-in stays kept under the server's first URL (`rest.base()`).
        self.rest.use_node(node);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_store_round_trip() {
        let s = MemoryCredentials::default();
        assert_eq!(s.load("a").unwrap(), None);
        s.save("a", &Secret::new("x")).unwrap();
        assert_eq!(s.load("a").unwrap(), Some(Secret::new("x")));
        s.delete("a").unwrap();
        s.delete("a").unwrap();
        assert_eq!(s.load("a").unwrap(), None);
    }

    #[test]
    fn account_key_has_no_secret_and_is_stable() {
        let u = url::Url::parse("http://127.0.0.1:8080/").unwrap();
        assert_eq!(account_key(&u, "ann"), "ann@http://127.0.0.1:8080");
    }

    /// Accept one connection on `node`, read its request until it holds `until`,
    /// answer 200 with the JSON `body`, and return the request's text.
    async fn answer_once(node: tokio::net::TcpListener, until: &str, body: &str) -> String {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let (mut tcp, _) = node.accept().await.unwrap();
        let mut req = Vec::new();
        let mut buf = [0u8; 4096];
        while !String::from_utf8_lossy(&req).contains(until) {
            let n = tcp.read(&mut buf).await.unwrap();
            assert!(n > 0, "request ended early");
            req.extend_from_slice(&buf[..n]);
        }
        let resp = format!(
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        );
        tcp.write_all(resp.as_bytes()).await.unwrap();
        String::from_utf8_lossy(&req).into_owned()
    }

    /// The sign-in's server is down; its other node answers the refresh once the
    /// session moved there. The sign-in stays kept under the first URL.
    #[tokio::test]
    async fn a_refresh_goes_to_the_node_in_use() {
        let node = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let node_url = url::Url::parse(&format!("http://{}", node.local_addr().unwrap())).unwrap();
        let seen = tokio::spawn(answer_once(
            node,
            "refresh-1",
            r#"{"access_token":"acc-2","refresh_token":"refresh-2","expires_in":900,"tenant":"acme"}"#,
        ));
        let first = url::Url::parse("http://127.0.0.1:9").unwrap();
        let store = Arc::new(MemoryCredentials::default());
        let account = account_key(&first, "ann");
        store.save(&account, &Secret::new("refresh-1")).unwrap();
        let login = StoredLogin::new(
            RestClient::new(first).unwrap(),
            account.clone(),
            store.clone(),
        );
        login.use_node(&node_url);
        let token = login.token(false).await.unwrap();
        assert_eq!(token.expose(), "acc-2");
        let req = seen.await.unwrap();
        assert!(req.starts_with("POST /v1/auth/refresh "), "{req}");
        assert_eq!(
            store.load(&account).unwrap(),
            Some(Secret::new("refresh-2"))
        );
    }

    /// The first node is down: the sign-in is made at the next one, kept under the
    /// first URL, and refreshes go to the node that answered.
    #[tokio::test]
    async fn a_sign_in_moves_to_the_next_node_when_the_first_is_down() {
        let node = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let node_url = url::Url::parse(&format!("http://{}", node.local_addr().unwrap())).unwrap();
        let seen = tokio::spawn(answer_once(
            node,
            "\"password\"",
            r#"{"access_token":"acc-1","refresh_token":"refresh-1","expires_in":900,"tenant":"acme"}"#,
        ));
        let first = url::Url::parse("http://127.0.0.1:9").unwrap();
        let store = Arc::new(MemoryCredentials::default());
        let login = StoredLogin::sign_in_at(
            RestClient::new(first.clone()).unwrap(),
            &[node_url],
            "ann",
            &Secret::new("pw"),
            store.clone(),
        )
        .await
        .unwrap();
        assert!(seen.await.unwrap().starts_with("POST /v1/auth/login "));
        assert_eq!(login.account(), account_key(&first, "ann"));
        assert_eq!(
            store.load(login.account()).unwrap(),
            Some(Secret::new("refresh-1"))
        );
        // Every node down: unreachable, nothing stored.
        let none = StoredLogin::sign_in_at(
            RestClient::new(url::Url::parse("http://127.0.0.1:9").unwrap()).unwrap(),
            &[url::Url::parse("http://127.0.0.1:7").unwrap()],
            "bob",
            &Secret::new("pw"),
            store.clone(),
        )
        .await;
        assert!(
            matches!(none, Err(AuthError::Unreachable(_))),
            "{:?}",
            none.err()
        );
    }

    #[tokio::test]
    async fn signed_out_without_a_stored_token() {
        let rest = RestClient::new(url::Url::parse("http://127.0.0.1:9").unwrap()).unwrap();
        let login = StoredLogin::new(rest, "ann@x".into(), Arc::new(MemoryCredentials::default()));
        assert!(!login.has_stored_token().unwrap());
        match login.token(false).await {
            Err(AuthError::Unauthorized(m)) => assert!(m.contains("signed out"), "{m}"),
            other => panic!("{other:?}"),
        }
    }
}
