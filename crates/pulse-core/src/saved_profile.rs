//! A saved server that is not a Pulse gateway: what the desktop app needs to connect
//! to it through a [profile](crate::profile), kept out of the shell.
//!
//! - [`open`] loads the profile (a built-in name or a TOML path) and makes the
//!   session dialect, with the server's tenant as the `tenant` variable;
//! - its access token lives only in a [`CredentialStore`] (the OS keyring in the
//!   app) under [`token_account`]: [`save_token`] / [`tokens`]; a profile whose
//!   server has no authentication ([`OpenedProfile::needs_token`] false) gets an
//!   empty token and needs nothing stored;
//! - [`BuiltinInfo`] lists the built-in profiles for a settings form.

use std::sync::Arc;

use crate::auth::{Secret, StaticToken, TokenProvider};
use crate::credentials::{CredentialError, CredentialStore};
use crate::profile::{Placement, Profile, ProfileDialect, ProfileError, VarValue, BUILTIN};
use crate::session::Dialect;

/// The profile name of a Pulse gateway (no dialect).
pub const NATIVE: &str = "native";

/// Whether `profile` (as saved) means a Pulse gateway.
pub fn is_native(profile: &str) -> bool {
    let p = profile.trim();
    p.is_empty() || p == NATIVE
}

/// A built-in profile, for a chooser.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuiltinInfo {
    /// Its name (what is saved).
    pub name: &'static str,
    /// The seed backend it was written for.
    pub description: &'static str,
    /// Whether its server wants an access token.
    pub needs_token: bool,
    /// What its server cannot guarantee.
    pub caveat: Option<String>,
}

/// Every built-in profile, in [`BUILTIN`] order.
pub fn builtin_profiles() -> Vec<BuiltinInfo> {
    BUILTIN
        .iter()
        .map(|(name, description, _)| {
            let p = Profile::builtin(name).ok();
            BuiltinInfo {
                name,
                description,
                needs_token: p.as_ref().is_none_or(needs_token),
                caveat: p.and_then(|p| p.spec.caveat),
            }
        })
        .collect()
}

/// Whether `profile` sends a token anywhere (socket or REST refetches), as the
/// profile runner decides it.
pub fn needs_token(profile: &Profile) -> bool {
    profile.spec.auth.placement != Placement::None || !profile.spec.rest.is_empty()
}

/// A loaded profile, ready for `SessionConfig::dialect`.
pub struct OpenedProfile {
    /// The dialect.
    pub dialect: Arc<dyn Dialect>,
    /// Whether the server wants an access token.
    pub needs_token: bool,
    /// What the server cannot guarantee (also published by the session once it runs).
    pub caveat: Option<String>,
    /// The profile's name.
    pub name: String,
}

impl std::fmt::Debug for OpenedProfile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenedProfile")
            .field("name", &self.name)
            .field("needs_token", &self.needs_token)
            .finish_non_exhaustive()
    }
}

/// Load `name_or_path` and make its dialect; a non-empty `tenant` fills `{tenant}`
/// (rooms, the cache stream) instead of the token's claims.
pub fn open(name_or_path: &str, tenant: Option<&str>) -> Result<OpenedProfile, ProfileError> {
    let profile = Profile::load(name_or_path.trim())?;
    let needs = needs_token(&profile);
    let caveat = profile.spec.caveat.clone();
    let name = profile.name().to_owned();
    let mut dialect = ProfileDialect::new(profile);
    if let Some(t) = tenant.map(str::trim).filter(|t| !t.is_empty()) {
        dialect = dialect.with_var("tenant", VarValue::One(t.to_owned()));
    }
    Ok(OpenedProfile {
        dialect: Arc::new(dialect),
        needs_token: needs,
        caveat,
        name,
    })
}

/// The credential-store account of a profile server's access token:
/// `access-token@URL` (never a secret; distinct from `user@URL` sign-ins, since a
/// user name cannot be empty and `access-token` is not read as one here).
pub fn token_account(server: &url::Url) -> String {
    format!("access-token@{}", server.as_str().trim_end_matches('/'))
}

/// Why no token provider could be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TokenError {
    /// The server wants a token and none is stored.
    #[error("no access token is stored for this server")]
    Missing,
    /// The store could not be read.
    #[error(transparent)]
    Store(#[from] CredentialError),
}

/// The tokens for a profile server: the stored access token (a [`StaticToken`]),
/// or an empty one when the profile needs none.
pub fn tokens(
    needs_token: bool,
    store: &dyn CredentialStore,
    server: &url::Url,
) -> Result<Arc<dyn TokenProvider>, TokenError> {
    if !needs_token {
        return Ok(Arc::new(StaticToken::new(Secret::new(""))));
    }
    match store.load(&token_account(server))? {
        Some(t) if !t.expose().is_empty() => Ok(Arc::new(StaticToken::new(t))),
        _ => Err(TokenError::Missing),
    }
}

/// Whether an access token is stored for `server`.
pub fn has_token(store: &dyn CredentialStore, server: &url::Url) -> Result<bool, CredentialError> {
    Ok(store
        .load(&token_account(server))?
        .is_some_and(|t| !t.expose().is_empty()))
}

/// Store `token` for `server` (trimmed); an empty one forgets the stored token.
pub fn save_token(
    store: &dyn CredentialStore,
    server: &url::Url,
    token: &str,
) -> Result<(), CredentialError> {
    let token = token.trim();
    if token.is_empty() {
        store.delete(&token_account(server))
    } else {
        store.save(&token_account(server), &Secret::new(token))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Moved from the UI's `actions.test.ts` ("only a Pulse gateway takes actions"):
    /// the shell reports this answer as `Account.takes_actions`.
    #[test]
    fn only_a_pulse_gateway_takes_actions() {
        assert!(is_native("native"));
        assert!(is_native(" native "));
        // Also the UI's `null`: no profile saved reads as the empty string here.
        assert!(is_native(""));
        for p in [
            "tasks-gateway",
            "agent-monitor",
            "event-bridge",
            "nest-realtime",
            "fastapi-dashboard",
            "/etc/pulse/ours.toml",
        ] {
            assert!(!is_native(p), "{p}");
        }
    }
}
