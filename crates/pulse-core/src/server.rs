//! A server to connect to, resolved into what a session needs, in one place for the
//! desktop app and `pulsectl`.
//!
//! - [`Speaks`] is how a server is spoken to: [`Speaks::Native`] (a Pulse gateway)
//!   or a dialect [profile](crate::profile) (a built-in name or a TOML path). Saved
//!   settings keep it as a string (`"native"` or the profile); [`Speaks::parse`] is
//!   the one place that reads it, and [`Speaks::takes_actions`] the one place that
//!   says whether the server takes actions (approve, reject, move, terminate);
//! - [`SavedServer::resolve`] (a server saved in the desktop settings) and
//!   [`Flags::resolve`] (`PULSE_SERVER` and friends, `pulsectl`'s flags, the
//!   embedded demo gateway) give a [`Resolved`] — token provider, session config
//!   (with the dialect, built by [`Speaks::open`] alone) — or a typed [`SignedOut`]
//!   reason whose [`SignedOut::message`] the UI shows;
//! - a profile server's access token lives only in a [`CredentialStore`] (the OS
//!   keyring in the app) under [`token_account`]: [`save_token`] / [`tokens`]; a
//!   profile whose server has no authentication ([`OpenedProfile::needs_token`]
//!   false) gets an empty token and needs nothing stored;
//! - [`BuiltinInfo`] lists the built-in profiles for a settings form.
//!
//! Invariants: resolving does no network I/O and never writes a credential; only
//! http(s) URLs ([`http_url`]) are accepted.

use std::sync::Arc;

use url::Url;

use crate::auth::{PasswordLogin, Secret, StaticToken, TokenProvider};
use crate::credentials::{
    account_key, CredentialError, CredentialStore, MemoryCredentials, StoredLogin,
};
use crate::profile::{Placement, Profile, ProfileDialect, ProfileError, VarValue, BUILTIN};
use crate::rest::RestClient;
use crate::session::{Dialect, SessionConfig};

/// How a server is spoken to.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Speaks {
    /// The Pulse protocol: a Pulse gateway.
    Native,
    /// A dialect profile: a built-in profile's name or a TOML file's path (trimmed).
    Profile(String),
}

impl Speaks {
    /// What is saved for [`Speaks::Native`].
    pub const NATIVE: &'static str = "native";

    /// Read a saved `profile` setting: empty or `native` is [`Speaks::Native`],
    /// anything else a profile name or path.
    pub fn parse(saved: &str) -> Speaks {
        match saved.trim() {
            "" | Speaks::NATIVE => Speaks::Native,
            p => Speaks::Profile(p.to_owned()),
        }
    }

    /// What to save: `native`, or the profile's name or path.
    pub fn as_saved(&self) -> &str {
        match self {
            Speaks::Native => Speaks::NATIVE,
            Speaks::Profile(p) => p,
        }
    }

    /// Whether this is a Pulse gateway.
    pub fn is_native(&self) -> bool {
        matches!(self, Speaks::Native)
    }

    /// Whether the server takes actions (approve, reject, move, terminate). Only a
    /// Pulse gateway does: a profile maps a server's events and has no way to send
    /// actions.
    pub fn takes_actions(&self) -> bool {
        self.is_native()
    }

    /// Load the profile and make its dialect (`None` for a Pulse gateway, which the
    /// session speaks itself); a non-empty `tenant` fills the profile's `{tenant}`.
    pub fn open(&self, tenant: Option<&str>) -> Result<Option<OpenedProfile>, ProfileError> {
        match self {
            Speaks::Native => Ok(None),
            Speaks::Profile(p) => open(p, tenant).map(Some),
        }
    }
}

impl std::fmt::Display for Speaks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_saved())
    }
}

/// `url` parsed, when it is an http(s) URL (the only kind a server may have).
pub fn http_url(url: &str) -> Option<Url> {
    Url::parse(url)
        .ok()
        .filter(|u| matches!(u.scheme(), "http" | "https"))
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

/// Where a server given by [`Flags`] came from; it names the flags in messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlagOrigin {
    /// The `PULSE_*` environment variables of the desktop app.
    Env,
    /// `pulsectl`'s command line.
    CommandLine,
    /// The desktop app's embedded demo gateway.
    Demo,
}

/// A server given by flags: `pulsectl`'s command line, the desktop app's `PULSE_*`
/// variables, or the embedded demo gateway. Never saved anywhere.
#[derive(Clone)]
pub struct Flags {
    /// Where it came from.
    pub origin: FlagOrigin,
    /// The server's base URL, as given.
    pub url: String,
    /// How to speak to it.
    pub speaks: Speaks,
    /// A fixed access token.
    pub token: Option<Secret>,
    /// A user name and password to sign in with (when no token is given).
    pub password: Option<(String, Secret)>,
    /// The stream to follow (`None`: the token's tenant).
    pub stream: Option<String>,
}

impl std::fmt::Debug for Flags {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Flags")
            .field("origin", &self.origin)
            .field("url", &self.url)
            .field("speaks", &self.speaks)
            .field("token", &self.token.as_ref().map(|_| "***"))
            .field("user", &self.password.as_ref().map(|(u, _)| u))
            .field("stream", &self.stream)
            .finish()
    }
}

impl Flags {
    /// The embedded demo gateway at `url`, signed in as `demo` / `demo`.
    pub fn demo(url: &str) -> Flags {
        Flags {
            origin: FlagOrigin::Demo,
            url: url.to_owned(),
            speaks: Speaks::Native,
            token: None,
            password: Some(("demo".to_owned(), Secret::new("demo"))),
            stream: None,
        }
    }

    /// Resolve: the token if given, else a sign-in with the user name and password,
    /// else `signed_in` (a sign-in made in this run), else, for a profile server, an
    /// empty token (its server may have no authentication).
    pub fn resolve(&self, signed_in: Option<Arc<StoredLogin>>) -> Result<Resolved, SignedOut> {
        let bad_url = || SignedOut::BadUrl {
            origin: Origin::Flags(self.origin),
            url: self.url.clone(),
        };
        let url = http_url(&self.url).ok_or_else(bad_url)?;
        let rest = RestClient::new(url.clone()).map_err(|_| bad_url())?;
        let opened = self.speaks.open(None).map_err(|error| SignedOut::Profile {
            origin: Origin::Flags(self.origin),
            error,
        })?;
        let tokens: Arc<dyn TokenProvider> = if let Some(t) = &self.token {
            Arc::new(StaticToken::new(t.clone()))
        } else if let Some((user, password)) = &self.password {
            Arc::new(PasswordLogin::new(rest, user.clone(), password.clone()))
        } else if let Some(login) = signed_in.clone() {
            login
        } else if opened.is_some() {
            Arc::new(StaticToken::new(Secret::new("")))
        } else {
            return Err(SignedOut::NoCredentials {
                origin: self.origin,
            });
        };
        Ok(Resolved::new(
            self.speaks.clone(),
            tokens,
            url,
            self.stream.clone(),
            opened,
            signed_in,
        ))
    }
}

/// A server saved in the desktop settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SavedServer {
    /// Its display name.
    pub name: String,
    /// Its base URL, as saved.
    pub url: String,
    /// How to speak to it.
    pub speaks: Speaks,
    /// The stream (a Pulse gateway) or the profile's `{tenant}` to follow.
    pub tenant: Option<String>,
    /// The user name last signed in with (a Pulse gateway).
    pub username: Option<String>,
}

/// The credentials a saved server may use.
#[derive(Clone)]
pub struct Keys {
    /// Where sign-ins and access tokens are kept (the OS keyring, or memory until
    /// quit without one).
    pub store: Arc<dyn CredentialStore>,
    /// Why the OS keyring cannot be used, if it cannot (then `store` forgets at quit).
    pub keyring_error: Option<String>,
    /// A sign-in made in this run, used before any stored one.
    pub signed_in: Option<Arc<StoredLogin>>,
}

impl Default for Keys {
    /// Memory only, nobody signed in.
    fn default() -> Self {
        Keys {
            store: Arc::new(MemoryCredentials::default()),
            keyring_error: None,
            signed_in: None,
        }
    }
}

impl SavedServer {
    /// Resolve: a profile server's stored access token (or none when it needs
    /// none); a Pulse gateway's sign-in of this run, or the stored sign-in of its
    /// user name.
    pub fn resolve(&self, keys: &Keys) -> Result<Resolved, SignedOut> {
        let origin = || Origin::Saved(self.name.clone());
        let bad_url = || SignedOut::BadUrl {
            origin: origin(),
            url: self.url.clone(),
        };
        let url = http_url(&self.url).ok_or_else(bad_url)?;
        let rest = RestClient::new(url.clone()).map_err(|_| bad_url())?;
        let opened =
            self.speaks
                .open(self.tenant.as_deref())
                .map_err(|error| SignedOut::Profile {
                    origin: origin(),
                    error,
                })?;
        let (tokens, login): (Arc<dyn TokenProvider>, _) = match &opened {
            Some(p) => match tokens(p.needs_token, keys.store.as_ref(), &url) {
                Ok(t) => (t, None),
                Err(TokenError::Missing) => {
                    return Err(SignedOut::NoAccessToken {
                        server: self.name.clone(),
                        keyring_error: keys.keyring_error.clone(),
                    })
                }
                Err(TokenError::Store(e)) => return Err(SignedOut::Credentials(e)),
            },
            None => {
                let login = match (&keys.signed_in, &self.username) {
                    (Some(login), _) => login.clone(),
                    (None, Some(user)) => {
                        let login = Arc::new(StoredLogin::new(
                            rest,
                            account_key(&url, user),
                            keys.store.clone(),
                        ));
                        match login.has_stored_token() {
                            Ok(true) => login,
                            Ok(false) => {
                                return Err(SignedOut::NoStoredSignIn {
                                    server: self.name.clone(),
                                    keyring_error: keys.keyring_error.clone(),
                                })
                            }
                            Err(e) => return Err(SignedOut::Credentials(e)),
                        }
                    }
                    (None, None) => {
                        return Err(SignedOut::NotSignedIn {
                            server: self.name.clone(),
                        })
                    }
                };
                (login.clone(), Some(login))
            }
        };
        // A profile's tenant is its `{tenant}` variable: rooms and stream follow it.
        let stream = if opened.is_some() {
            None
        } else {
            self.tenant.clone()
        };
        Ok(Resolved::new(
            self.speaks.clone(),
            tokens,
            url,
            stream,
            opened,
            login,
        ))
    }
}

/// What a session needs to follow a server.
pub struct Resolved {
    /// How the server is spoken to.
    pub speaks: Speaks,
    /// The tokens the session sends.
    pub tokens: Arc<dyn TokenProvider>,
    /// The session's settings (server, stream, dialect), defaults otherwise.
    pub config: SessionConfig,
    /// What the server cannot guarantee, known before its session publishes it.
    pub caveat: Option<String>,
    /// The sign-in in use, when it is one (to sign out of it later).
    pub login: Option<Arc<StoredLogin>>,
}

impl Resolved {
    fn new(
        speaks: Speaks,
        tokens: Arc<dyn TokenProvider>,
        url: Url,
        stream: Option<String>,
        opened: Option<OpenedProfile>,
        login: Option<Arc<StoredLogin>>,
    ) -> Resolved {
        let mut config = SessionConfig::new(url);
        config.stream = stream;
        let caveat = opened.as_ref().and_then(|p| p.caveat.clone());
        config.dialect = opened.map(|p| p.dialect);
        Resolved {
            speaks,
            tokens,
            config,
            caveat,
            login,
        }
    }
}

impl std::fmt::Debug for Resolved {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Resolved")
            .field("speaks", &self.speaks)
            .field("server", &self.config.server.as_str())
            .field("stream", &self.config.stream)
            .field("caveat", &self.caveat)
            .finish_non_exhaustive()
    }
}

/// Whose settings a [`SignedOut`] reason is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// A server given by flags.
    Flags(FlagOrigin),
    /// A saved server, by its display name.
    Saved(String),
}

/// Why no session can be started for a server (the app shows it as signed out;
/// `pulsectl` exits with it).
#[derive(Debug)]
#[non_exhaustive]
pub enum SignedOut {
    /// The URL is not an http(s) URL.
    BadUrl {
        /// Whose URL.
        origin: Origin,
        /// The URL as given.
        url: String,
    },
    /// The profile cannot be loaded: unknown name, or a file that cannot be read or
    /// is not valid (the error names the file and line).
    Profile {
        /// Whose profile.
        origin: Origin,
        /// Why.
        error: ProfileError,
    },
    /// Flags give no token and no user name and password.
    NoCredentials {
        /// Which flags.
        origin: FlagOrigin,
    },
    /// A saved profile server wants an access token and none is stored.
    NoAccessToken {
        /// The server's name.
        server: String,
        /// Why the OS keyring cannot be used, if that is why.
        keyring_error: Option<String>,
    },
    /// A saved Pulse gateway has no user name: nobody has signed in.
    NotSignedIn {
        /// The server's name.
        server: String,
    },
    /// A saved Pulse gateway's user has no stored sign-in.
    NoStoredSignIn {
        /// The server's name.
        server: String,
        /// Why the OS keyring cannot be used, if that is why.
        keyring_error: Option<String>,
    },
    /// The credential store could not be read.
    Credentials(CredentialError),
}

impl SignedOut {
    /// What to tell the user.
    pub fn message(&self) -> String {
        match self {
            SignedOut::BadUrl { origin, url } => match origin {
                Origin::Flags(FlagOrigin::Env) => format!("PULSE_SERVER is not a valid URL: {url}"),
                Origin::Flags(FlagOrigin::CommandLine) => {
                    format!("--server is not an http(s) URL: {url}")
                }
                _ => format!("The server URL is not valid: {url}"),
            },
            SignedOut::Profile { origin, error } => match origin {
                Origin::Saved(name) => format!("The profile of {name} cannot be used: {error}"),
                Origin::Flags(_) => error.to_string(),
            },
            SignedOut::NoCredentials { origin } => match origin {
                FlagOrigin::CommandLine => {
                    "give --token (or PULSE_TOKEN), or --user and --password".into()
                }
                _ => "Signed out: set PULSE_TOKEN, or PULSE_USERNAME and PULSE_PASSWORD".into(),
            },
            SignedOut::NoAccessToken { server, keyring_error } => match keyring_error {
                None => format!("Signed out of {server}: enter its access token under Settings"),
                Some(e) => format!(
                    "Signed out: {e}, so Pulse cannot remember the access token. Enter it under Settings (kept until Pulse quits)"
                ),
            },
            SignedOut::NotSignedIn { server }
            | SignedOut::NoStoredSignIn {
                server,
                keyring_error: None,
            } => format!("Signed out of {server}: sign in under Settings"),
            SignedOut::NoStoredSignIn {
                keyring_error: Some(e),
                ..
            } => format!(
                "Signed out: {e}, so Pulse cannot remember your sign-in. Sign in under Settings (kept until Pulse quits)"
            ),
            SignedOut::Credentials(e) => format!("Signed out: {e}"),
        }
    }

    /// Whether the settings given are wrong (rather than credentials missing):
    /// `pulsectl` exits with its usage code.
    pub fn is_usage(&self) -> bool {
        matches!(
            self,
            SignedOut::BadUrl { .. } | SignedOut::Profile { .. } | SignedOut::NoCredentials { .. }
        )
    }
}

/// [`SignedOut::message`].
impl std::fmt::Display for SignedOut {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message())
    }
}

impl std::error::Error for SignedOut {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            SignedOut::Profile { error, .. } => Some(error),
            SignedOut::Credentials(e) => Some(e),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn saved(speaks: &str, username: Option<&str>) -> SavedServer {
        SavedServer {
            name: "Work".into(),
            url: "http://127.0.0.1:9".into(),
            speaks: Speaks::parse(speaks),
            tenant: Some("acme".into()),
            username: username.map(str::to_owned),
        }
    }

    fn flags(origin: FlagOrigin, speaks: Speaks) -> Flags {
        Flags {
            origin,
            url: "http://127.0.0.1:9".into(),
            speaks,
            token: None,
            password: None,
            stream: Some("acme".into()),
        }
    }

    #[test]
    fn speaks_is_read_in_one_place_and_only_native_takes_actions() {
        assert_eq!(Speaks::parse(""), Speaks::Native);
        assert_eq!(Speaks::parse(" native "), Speaks::Native);
        assert_eq!(
            Speaks::parse(" event-bridge "),
            Speaks::Profile("event-bridge".into())
        );
        assert_eq!(Speaks::Native.to_string(), "native");
        assert_eq!(Speaks::parse("/etc/ours.toml").as_saved(), "/etc/ours.toml");
        assert!(Speaks::Native.takes_actions());
        for p in ["tasks-gateway", "event-bridge", "/etc/pulse/ours.toml"] {
            assert!(!Speaks::parse(p).takes_actions(), "{p}");
        }
    }

    #[test]
    fn saved_servers_signed_out_reasons() {
        let keys = Keys::default();
        let msg = |s: &SavedServer, k: &Keys| s.resolve(k).unwrap_err().message();
        assert_eq!(
            msg(&saved("native", None), &keys),
            "Signed out of Work: sign in under Settings"
        );
        assert_eq!(
            msg(&saved("native", Some("ann")), &keys),
            "Signed out of Work: sign in under Settings"
        );
        let no_keyring = Keys {
            keyring_error: Some("no Secret Service".into()),
            ..Keys::default()
        };
        assert_eq!(
            msg(&saved("native", Some("ann")), &no_keyring),
            "Signed out: no Secret Service, so Pulse cannot remember your sign-in. Sign in under Settings (kept until Pulse quits)"
        );
        assert_eq!(
            msg(&saved("event-bridge", None), &keys),
            "Signed out of Work: enter its access token under Settings"
        );
        assert!(msg(&saved("event-bridge", None), &no_keyring).starts_with(
            "Signed out: no Secret Service, so Pulse cannot remember the access token"
        ));
        let mut bad = saved("native", None);
        bad.url = "ftp://x".into();
        assert_eq!(msg(&bad, &keys), "The server URL is not valid: ftp://x");
        let e = msg(&saved("no-such-profile", None), &keys);
        assert!(e.starts_with("The profile of Work cannot be used: "), "{e}");
    }

    #[test]
    fn a_profile_server_without_auth_needs_no_token_and_follows_its_tenant_variable() {
        let r = saved("tasks-gateway", None)
            .resolve(&Keys::default())
            .unwrap();
        assert_eq!(
            r.config.stream, None,
            "the tenant is the profile's variable"
        );
        assert!(r.config.dialect.is_some());
        assert!(!r.speaks.takes_actions());
        assert!(r.login.is_none());
    }

    #[test]
    fn a_stored_access_token_resolves() {
        let keys = Keys::default();
        let url = Url::parse("http://127.0.0.1:9").unwrap();
        save_token(keys.store.as_ref(), &url, "tok").unwrap();
        let r = saved("event-bridge", None).resolve(&keys).unwrap();
        assert!(r.caveat.is_some());
    }

    #[test]
    fn flags_signed_out_reasons_name_their_flags() {
        let msg = |f: Flags| f.resolve(None).unwrap_err().message();
        assert_eq!(
            msg(flags(FlagOrigin::Env, Speaks::Native)),
            "Signed out: set PULSE_TOKEN, or PULSE_USERNAME and PULSE_PASSWORD"
        );
        assert_eq!(
            msg(flags(FlagOrigin::CommandLine, Speaks::Native)),
            "give --token (or PULSE_TOKEN), or --user and --password"
        );
        let mut f = flags(FlagOrigin::Env, Speaks::Native);
        f.url = "nope".into();
        assert_eq!(msg(f), "PULSE_SERVER is not a valid URL: nope");
        let e = flags(FlagOrigin::CommandLine, Speaks::parse("no-such-profile"))
            .resolve(None)
            .unwrap_err();
        assert!(e.is_usage());
        assert!(e.message().contains("no-such-profile"), "{e}");
    }

    #[test]
    fn flags_resolve_a_token_a_sign_in_or_an_empty_token_for_a_profile() {
        let mut f = flags(FlagOrigin::CommandLine, Speaks::Native);
        f.token = Some(Secret::new("t"));
        let r = f.resolve(None).unwrap();
        assert_eq!(r.config.stream.as_deref(), Some("acme"));
        assert!(r.config.dialect.is_none());
        assert!(Flags::demo("http://127.0.0.1:9").resolve(None).is_ok());
        let r = flags(FlagOrigin::CommandLine, Speaks::parse("tasks-gateway"))
            .resolve(None)
            .unwrap();
        assert_eq!(r.config.stream.as_deref(), Some("acme"), "--stream is kept");
        assert!(r.config.dialect.is_some());
    }
}
