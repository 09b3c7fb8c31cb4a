//! Credentials: where the session gets a bearer token for each connection attempt.
//!
//! Invariants: a token is held in memory only, inside [`Secret`], whose `Debug` and
//! `Display` never show it; it is sent only in an `Authorization` header.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Mutex;

use serde_json::Value;

use crate::rest::{RestClient, RestError};

/// A bearer token. Printing it shows `***`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wrap a token.
    pub fn new(token: impl Into<String>) -> Self {
        Secret(token.into())
    }
    /// The token itself, for an `Authorization` header only.
    pub fn expose(&self) -> &str {
        &self.0
    }
    /// The claims of a JWT's payload, decoded WITHOUT verifying the signature: only
    /// for reading hints such as `exp` or a tenant name, never for trusting them.
    pub fn jwt_payload(&self) -> Option<serde_json::Map<String, Value>> {
        use base64::Engine as _;
        let payload = self.0.split('.').nth(1)?;
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload.trim_end_matches('='))
            .ok()?;
        serde_json::from_slice(&bytes).ok()
    }

    /// Expiry (`exp`, seconds since the Unix epoch) read from a JWT payload without
    /// verifying it, if the token is a JWT that has one.
    pub fn jwt_expiry(&self) -> Option<u64> {
        self.jwt_payload()?.get("exp")?.as_u64()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// Why no token could be had.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AuthError {
    /// The credentials were refused, or the token expired and cannot be refreshed.
    #[error("{0}")]
    Unauthorized(String),
    /// The server could not be asked (network); try again later.
    #[error("could not reach the server to sign in: {0}")]
    Unreachable(String),
}

/// Boxed future returned by [`TokenProvider::token`].
pub type TokenFuture<'a> = Pin<Box<dyn Future<Output = Result<Secret, AuthError>> + Send + 'a>>;

/// Gives the session a token for every connection attempt.
pub trait TokenProvider: Send + Sync + 'static {
    /// A token to use now. With `force_refresh`, the last one was refused: get a new
    /// one (refresh or sign in again) or fail with [`AuthError::Unauthorized`].
    fn token(&self, force_refresh: bool) -> TokenFuture<'_>;

    /// The session moved to another node of the same server (a cluster,
    /// [`crate::failover`]): a provider that asks the server for tokens asks that
    /// node from now on. The default does nothing.
    fn use_node(&self, _node: &url::Url) {}
}

/// A failure that may be the server refusing the credentials, for [`with_token`].
pub trait Refusal {
    /// `Some(message)` when the server refused the credentials (HTTP 401, an auth
    /// close code, a Socket.IO `connect_error`…), with the server's words.
    fn refusal(&self) -> Option<&str>;
}

impl Refusal for RestError {
    fn refusal(&self) -> Option<&str> {
        match self {
            RestError::Unauthorized { message, .. } => Some(message),
            _ => None,
        }
    }
}

/// How [`with_token`] failed.
#[derive(Debug)]
pub enum TokenTry<E> {
    /// No token could be had: at first, or (`after` = the refusal that asked for
    /// it) when refreshing.
    NoToken {
        /// What the token provider said.
        error: AuthError,
        /// The refusal that made a refresh necessary, if any.
        after: Option<E>,
    },
    /// The server refused the credentials again, after one refresh.
    Refused(E),
    /// The call failed for another reason.
    Failed(E),
}

/// The one "refresh the token once" rule. Runs `call` with a token; when the server
/// refuses it ([`Refusal`]), gets a fresh one (`force_refresh`) and runs `call`
/// once more. `call` returns a future that owns what it needs (no borrow of the
/// closure), so the whole stays `Send` for the session's task. With `refresh_first` the first token is already a fresh one (the
/// last link was closed as unauthorized), and a refusal is final.
pub async fn with_token<T, E: Refusal, F>(
    tokens: &dyn TokenProvider,
    refresh_first: bool,
    call: impl FnMut(Secret) -> F,
) -> Result<T, TokenTry<E>>
where
    F: Future<Output = Result<T, E>>,
{
    let token = tokens
        .token(refresh_first)
        .await
        .map_err(|error| TokenTry::NoToken { error, after: None })?;
    with_token_from(tokens, token, refresh_first, call).await
}

/// [`with_token`] for a caller that already holds the first `token` (it read claims
/// from it); `refreshed` says whether that token is already a fresh one.
pub async fn with_token_from<T, E: Refusal, F>(
    tokens: &dyn TokenProvider,
    token: Secret,
    refreshed: bool,
    mut call: impl FnMut(Secret) -> F,
) -> Result<T, TokenTry<E>>
where
    F: Future<Output = Result<T, E>>,
{
    let mut refreshed = refreshed;
    let mut token = token;
    loop {
        match call(token).await {
            Ok(v) => return Ok(v),
            Err(e) if e.refusal().is_some() => {
                if refreshed {
                    return Err(TokenTry::Refused(e));
                }
                tracing::debug!("credentials refused; refreshing once");
                refreshed = true;
                token = match tokens.token(true).await {
                    Ok(t) => t,
                    Err(error) => {
                        return Err(TokenTry::NoToken {
                            error,
                            after: Some(e),
                        })
                    }
                };
            }
            Err(e) => return Err(TokenTry::Failed(e)),
        }
    }
}

/// What to tell the user when the server refused the credentials (after the one
/// refresh): `the server refused the credentials[: {server's words}]`.
pub fn refused_message(server_said: &str) -> String {
    if server_said.is_empty() {
        "the server refused the credentials".into()
    } else {
        format!("the server refused the credentials: {server_said}")
    }
}

/// A fixed token (e.g. `pulsectl --token`). It cannot be refreshed.
pub struct StaticToken(Secret);

impl StaticToken {
    /// Use `token` for every attempt.
    pub fn new(token: Secret) -> Self {
        StaticToken(token)
    }
}

fn expired(secret: &Secret, slack_secs: u64) -> bool {
    match secret.jwt_expiry() {
        Some(exp) => exp <= (crate::now_ms() / 1000) as u64 + slack_secs,
        None => false,
    }
}

impl TokenProvider for StaticToken {
    fn token(&self, force_refresh: bool) -> TokenFuture<'_> {
        Box::pin(async move {
            if force_refresh {
                return Err(AuthError::Unauthorized(
                    "the server refused the token; give a valid one (--token) or sign in with --user/--password".into(),
                ));
            }
            if expired(&self.0, 0) {
                return Err(AuthError::Unauthorized(
                    "the token has expired; give a fresh one or sign in with --user/--password"
                        .into(),
                ));
            }
            Ok(self.0.clone())
        })
    }
}

/// Signs in with a user name and password, then keeps the access token fresh with
/// the refresh token (signing in again if the refresh token is refused).
pub struct PasswordLogin {
    rest: RestClient,
    username: String,
    password: Secret,
    tokens: Mutex<Option<(Secret, Secret)>>,
    /// Held while a login or refresh runs: the gateway rotates refresh tokens and
    /// revokes the session of one sent twice, so callers take turns.
    renewing: tokio::sync::Mutex<()>,
}

impl PasswordLogin {
    /// Credentials for `rest`'s server.
    pub fn new(rest: RestClient, username: impl Into<String>, password: Secret) -> Self {
        PasswordLogin {
            rest,
            username: username.into(),
            password,
            tokens: Mutex::new(None),
            renewing: tokio::sync::Mutex::new(()),
        }
    }

    fn map(e: RestError) -> AuthError {
        match e {
            RestError::Unauthorized { message, .. } => AuthError::Unauthorized(message),
            other => AuthError::Unreachable(other.to_string()),
        }
    }

    async fn login(&self) -> Result<Secret, AuthError> {
        let t = self
            .rest
            .login(&self.username, &self.password)
            .await
            .map_err(|e| match e {
                RestError::Unauthorized { .. } => AuthError::Unauthorized(format!(
                    "sign-in refused for user `{}`: wrong user name or password",
                    self.username
                )),
                other => Self::map(other),
            })?;
        let access = Secret::new(t.access_token);
        *self.tokens.lock().expect("token lock") =
            Some((access.clone(), Secret::new(t.refresh_token)));
        Ok(access)
    }

    async fn refresh(&self, refresh: Secret) -> Result<Secret, AuthError> {
        match self.rest.refresh(&refresh).await {
            Ok(t) => {
                let access = Secret::new(t.access_token);
                *self.tokens.lock().expect("token lock") =
                    Some((access.clone(), Secret::new(t.refresh_token)));
                Ok(access)
            }
            Err(RestError::Unauthorized { .. }) => self.login().await,
            Err(e) => Err(Self::map(e)),
        }
    }
}

impl TokenProvider for PasswordLogin {
    fn token(&self, force_refresh: bool) -> TokenFuture<'_> {
        Box::pin(async move {
            let seen = self.tokens.lock().expect("token lock").clone();
            if let Some((access, _)) = &seen {
                if !force_refresh && !expired(access, 30) {
                    return Ok(access.clone());
                }
            }
            let _turn = self.renewing.lock().await;
            let current = self.tokens.lock().expect("token lock").clone();
            match current {
                // Another caller renewed while this one waited: use its token.
                Some((access, _))
                    if seen.as_ref().map(|(a, _)| a) != Some(&access) && !expired(&access, 30) =>
                {
                    Ok(access)
                }
                None => self.login().await,
                Some((_, refresh)) => self.refresh(refresh).await,
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_never_prints() {
        let s = Secret::new("abc.def.ghi");
        assert_eq!(format!("{s:?}"), "Secret(***)");
    }

    #[test]
    fn reads_jwt_expiry() {
        // {"alg":"HS256"} . {"exp":1700000000} . sig
        let s = Secret::new("eyJhbGciOiJIUzI1NiJ9.eyJleHAiOjE3MDAwMDAwMDB9.x");
        assert_eq!(s.jwt_expiry(), Some(1_700_000_000));
        assert!(expired(&s, 0));
        assert_eq!(Secret::new("opaque").jwt_expiry(), None);
        assert_eq!(Secret::new("a.!!!.c").jwt_expiry(), None);
    }
}
