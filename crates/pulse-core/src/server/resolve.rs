//! Resolving a server (saved settings, or flags) into a [`Resolved`] session set-up
//! or a [`SignedOut`] reason: see the [parent module](super).

use std::sync::Arc;

use url::Url;

use super::{http_url, tokens, OpenedProfile, Speaks, TokenError};
use crate::auth::{PasswordLogin, Secret, StaticToken, TokenProvider};
use crate::credentials::{
    account_key, CredentialError, CredentialStore, MemoryCredentials, StoredLogin,
};
use crate::profile::ProfileError;
use crate::rest::RestClient;
use crate::session::SessionConfig;

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
    /// Accept plain `http` to a host other than this machine
    /// ([`super::is_plain_http_off_machine`]); refused otherwise.
    pub allow_plain_http: bool,
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
            .field("allow_plain_http", &self.allow_plain_http)
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
            allow_plain_http: false,
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
        if !self.allow_plain_http && super::is_plain_http_off_machine(&url) {
            return Err(SignedOut::PlainHttp {
                origin: Origin::Flags(self.origin),
                url: self.url.clone(),
            });
        }
        let rest = RestClient::new(url.clone()).map_err(|_| bad_url())?;
        let opened = self
            .speaks
            .open(None, &[])
            .map_err(|error| SignedOut::Profile {
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
        let mut resolved = Resolved::new(
            self.speaks.clone(),
            tokens,
            url,
            self.stream.clone(),
            opened,
            signed_in,
        );
        // The account actions are queued for: the user name signed in with.
        resolved.config.owner.account = self.password.as_ref().map(|(u, _)| u.clone());
        Ok(resolved)
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
    /// Projects whose rooms a profile joins (its `{projects}` list).
    pub projects: Vec<String>,
    /// Never open the socket: poll over REST (`SessionConfig::force_polling`).
    pub force_polling: bool,
    /// Base URLs of the server's other nodes (a cluster), as saved: the session
    /// moves to the next when the one it is on is down ([`SessionConfig::nodes`]).
    pub nodes: Vec<String>,
    /// The user accepts plain http to another machine for this server (and its
    /// nodes): [`super::is_plain_http_off_machine`]; refused otherwise.
    pub allow_plain_http: bool,
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
        let nodes = self
            .nodes
            .iter()
            .map(|n| {
                http_url(n).ok_or_else(|| SignedOut::BadUrl {
                    origin: origin(),
                    url: n.clone(),
                })
            })
            .collect::<Result<Vec<Url>, _>>()?;
        // The server and every node of it: plain http only to this machine,
        // unless the user opted in for this server.
        if !self.allow_plain_http {
            if let Some(off) = std::iter::once(&url)
                .chain(&nodes)
                .find(|u| super::is_plain_http_off_machine(u))
            {
                return Err(SignedOut::PlainHttp {
                    origin: origin(),
                    url: off.to_string(),
                });
            }
        }
        let opened = self
            .speaks
            .open(self.tenant.as_deref(), &self.projects)
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
        let mut resolved = Resolved::new(self.speaks.clone(), tokens, url, stream, opened, login);
        resolved.config.force_polling = self.force_polling;
        resolved.config.nodes = nodes;
        // The account actions are queued for (the desktop sets the server to its
        // cache id: `Origin`).
        resolved.config.owner.account = if resolved.login.is_some() {
            self.username.clone()
        } else {
            None
        };
        Ok(resolved)
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
        if let Some(p) = opened {
            config.dialect = p.dialect;
        }
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
    /// Plain `http` to a host other than this machine, without the user's
    /// opt-in (`--allow-http`, `PULSE_ALLOW_HTTP=1`).
    PlainHttp {
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
            SignedOut::PlainHttp { origin, url } => {
                let opt_in = match origin {
                    Origin::Flags(FlagOrigin::CommandLine) => {
                        "pass --allow-http (or set PULSE_ALLOW_HTTP=1)".to_owned()
                    }
                    Origin::Flags(_) => "set PULSE_ALLOW_HTTP=1".to_owned(),
                    Origin::Saved(name) => format!(
                        "turn on “Allow plain http” in the settings of {name}"
                    ),
                };
                format!(
                    "{url} is plain http to another machine: the token would cross the network unencrypted. Use https, or {opt_in} to accept that"
                )
            }
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
            SignedOut::BadUrl { .. }
                | SignedOut::PlainHttp { .. }
                | SignedOut::Profile { .. }
                | SignedOut::NoCredentials { .. }
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
    use crate::server::save_token;

    fn saved(speaks: &str, username: Option<&str>) -> SavedServer {
        SavedServer {
            name: "Work".into(),
            url: "http://127.0.0.1:9".into(),
            speaks: Speaks::parse(speaks),
            tenant: Some("acme".into()),
            username: username.map(str::to_owned),
            projects: Vec::new(),
            force_polling: false,
            nodes: Vec::new(),
            allow_plain_http: false,
        }
    }

    #[test]
    fn a_saved_server_on_plain_http_to_another_machine_needs_its_opt_in() {
        let keys = Keys::default();
        let mut s = saved("native", Some("ann"));
        // Loopback is fine without it (signed out only for want of a sign-in).
        assert!(!matches!(
            s.resolve(&keys).unwrap_err(),
            SignedOut::PlainHttp { .. }
        ));
        for (url, nodes) in [
            ("http://ops.example", vec![]),
            (
                "https://ops.example",
                vec!["http://10.0.0.5:8080".to_owned()],
            ),
        ] {
            s.url = url.into();
            s.nodes = nodes;
            s.allow_plain_http = false;
            let e = s.resolve(&keys).unwrap_err();
            assert!(matches!(e, SignedOut::PlainHttp { .. }), "{url}: {e:?}");
            assert!(
                e.message()
                    .contains("“Allow plain http” in the settings of Work"),
                "{}",
                e.message()
            );
            s.allow_plain_http = true;
            assert!(
                !matches!(s.resolve(&keys), Err(SignedOut::PlainHttp { .. })),
                "{url} with the opt-in"
            );
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
            allow_plain_http: false,
        }
    }

    #[test]
    fn plain_http_to_another_machine_needs_the_users_opt_in() {
        let with = |url: &str, allow: bool| {
            let mut f = flags(FlagOrigin::CommandLine, Speaks::Native);
            f.url = url.into();
            f.token = Some(Secret::new("t"));
            f.allow_plain_http = allow;
            f.resolve(None)
        };
        for ok in [
            "http://127.0.0.1:9",
            "http://127.8.0.1:9",
            "http://[::1]:9",
            "http://localhost:9",
            "https://ops.example",
        ] {
            assert!(with(ok, false).is_ok(), "{ok}");
        }
        for refused in [
            "http://ops.example",
            "http://10.0.0.5:8080",
            "http://[2001:db8::1]/",
        ] {
            let e = with(refused, false).unwrap_err();
            assert!(matches!(e, SignedOut::PlainHttp { .. }), "{refused}: {e:?}");
            assert!(e.message().contains("--allow-http"), "{}", e.message());
            assert!(e.is_usage());
            assert!(with(refused, true).is_ok(), "{refused} with the opt-in");
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
        assert!(!r.speaks.is_native());
        assert!(!r.speaks.takes_actions());
        assert!(r.login.is_none());
    }

    #[test]
    fn forced_polling_of_a_saved_server_reaches_the_session_config() {
        let mut s = saved("tasks-gateway", None);
        let r = s.resolve(&Keys::default()).unwrap();
        assert!(!r.config.force_polling);
        s.force_polling = true;
        s.projects = vec!["p1".into(), " ".into()];
        let r = s.resolve(&Keys::default()).unwrap();
        assert!(r.config.force_polling);
    }

    #[test]
    fn the_nodes_of_a_saved_server_reach_the_session_config() {
        let mut s = saved("tasks-gateway", None);
        assert!(s.resolve(&Keys::default()).unwrap().config.nodes.is_empty());
        s.nodes = vec![
            "http://127.0.0.1:10".into(),
            "https://n2.example:8443".into(),
        ];
        let r = s.resolve(&Keys::default()).unwrap();
        let nodes: Vec<&str> = r.config.nodes.iter().map(Url::as_str).collect();
        assert_eq!(nodes, ["http://127.0.0.1:10/", "https://n2.example:8443/"]);
        assert_eq!(
            r.config.server.as_str(),
            "http://127.0.0.1:9/",
            "the first stays"
        );
        s.nodes.push("ftp://x".into());
        assert_eq!(
            s.resolve(&Keys::default()).unwrap_err().message(),
            "The server URL is not valid: ftp://x"
        );
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
        assert!(r.speaks.is_native());
        assert!(Flags::demo("http://127.0.0.1:9").resolve(None).is_ok());
        let r = flags(FlagOrigin::CommandLine, Speaks::parse("tasks-gateway"))
            .resolve(None)
            .unwrap();
        assert_eq!(r.config.stream.as_deref(), Some("acme"), "--stream is kept");
        assert!(!r.speaks.is_native());
    }
}
