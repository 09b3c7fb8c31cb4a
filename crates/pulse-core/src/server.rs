//! A server to connect to, resolved into what a session needs, in one place for the
//! desktop app and `pulsectl`.
//!
//! - [`Speaks`] is how a server is spoken to: [`Speaks::Native`] (a Pulse gateway)
//!   or a dialect [profile](crate::profile) (a built-in name or a TOML path). Saved
//!   settings keep it as a string (`"native"` or the profile); [`Speaks::parse`] is
//!   the one place that reads it, and [`Speaks::actions`] the one place that says
//!   which actions (approve, reject, move, terminate) the server takes: all on a
//!   Pulse gateway, those its profile declares on any other;
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

use crate::actions::ActionSet;
use crate::auth::{Secret, StaticToken, TokenProvider};
use crate::credentials::{CredentialError, CredentialStore};
use crate::profile::{Profile, ProfileDialect, ProfileError, VarValue, BUILTIN};
use crate::session::Dialect;
use crate::store::Action;

mod resolve;

pub use resolve::{FlagOrigin, Flags, Keys, Origin, Resolved, SavedServer, SignedOut};

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

    /// Which actions the server takes: every one on a Pulse gateway; on a profile
    /// server those its profile declares (`[actions.*]`), none when the profile
    /// cannot be loaded (the session then fails with the profile's error).
    pub fn actions(&self) -> ActionSet {
        match self {
            Speaks::Native => ActionSet::ALL,
            Speaks::Profile(p) => Profile::load(p.trim())
                .map(|p| p.actions())
                .unwrap_or(ActionSet::NONE),
        }
    }

    /// How the entity `action` acts on looks once done, shown at once in the app
    /// (the dialect's `optimistic`: a Pulse gateway's fixed one, or the profile's
    /// declared `optimistic`; nothing when the profile cannot be loaded).
    pub fn optimistic(&self, action: &Action) -> pulse_protocol::domain::Object {
        match self {
            Speaks::Native => crate::session::NativeDialect.optimistic(action),
            Speaks::Profile(p) => Profile::load(p.trim())
                .map(|p| ProfileDialect::new(p).optimistic(action))
                .unwrap_or_default(),
        }
    }

    /// Whether the server takes any action at all ([`Speaks::actions`]).
    pub fn takes_actions(&self) -> bool {
        self.actions().any()
    }

    /// Load the profile and make its dialect (`None` for a Pulse gateway, which the
    /// session speaks itself); a non-empty `tenant` fills the profile's `{tenant}`,
    /// `projects` its `{projects}` list (rooms).
    pub fn open(
        &self,
        tenant: Option<&str>,
        projects: &[String],
    ) -> Result<Option<OpenedProfile>, ProfileError> {
        match self {
            Speaks::Native => Ok(None),
            Speaks::Profile(p) => open_with(p, tenant, projects).map(Some),
        }
    }

    /// What the server takes of what the client says (presence, typing, opening a
    /// task): the intents its profile declares; none for a Pulse gateway, or for a
    /// profile that cannot be loaded.
    pub fn intents(&self) -> Vec<crate::session::Intent> {
        match self {
            Speaks::Native => Vec::new(),
            Speaks::Profile(p) => Profile::load(p.trim())
                .map(|p| p.spec.intent.keys().copied().collect())
                .unwrap_or_default(),
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

/// Whether `url` is plain `http` to a host other than this machine (not
/// `localhost`, `127.0.0.0/8` or `::1`): its tokens would cross the network
/// unencrypted. Pulse refuses such a server unless the user opted in.
pub fn is_plain_http_off_machine(url: &Url) -> bool {
    if url.scheme() != "http" {
        return false;
    }
    match url.host() {
        Some(url::Host::Ipv4(ip)) => !ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => !ip.is_loopback(),
        Some(url::Host::Domain(d)) => !d.eq_ignore_ascii_case("localhost"),
        None => true,
    }
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
    profile.needs_token()
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
    open_with(name_or_path, tenant, &[])
}

/// [`open`], with the server settings' projects as the `{projects}` list
/// variable (seed 000's `project:<id>` rooms); blank ones are dropped.
pub fn open_with(
    name_or_path: &str,
    tenant: Option<&str>,
    projects: &[String],
) -> Result<OpenedProfile, ProfileError> {
    let profile = Profile::load(name_or_path.trim())?;
    let needs = needs_token(&profile);
    let caveat = profile.spec.caveat.clone();
    let name = profile.name().to_owned();
    let mut dialect = ProfileDialect::new(profile);
    if let Some(t) = tenant.map(str::trim).filter(|t| !t.is_empty()) {
        dialect = dialect.with_var("tenant", VarValue::One(t.to_owned()));
    }
    let projects: Vec<String> = projects
        .iter()
        .map(|p| p.trim().to_owned())
        .filter(|p| !p.is_empty())
        .collect();
    if !projects.is_empty() {
        dialect = dialect.with_var("projects", VarValue::Many(projects));
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

    #[test]
    fn speaks_is_read_in_one_place_and_takes_what_its_profile_declares() {
        assert_eq!(Speaks::parse(""), Speaks::Native);
        assert_eq!(Speaks::parse(" native "), Speaks::Native);
        assert_eq!(
            Speaks::parse(" event-bridge "),
            Speaks::Profile("event-bridge".into())
        );
        assert_eq!(Speaks::Native.to_string(), "native");
        assert_eq!(Speaks::parse("/etc/ours.toml").as_saved(), "/etc/ours.toml");
        assert!(Speaks::Native.takes_actions());
        assert_eq!(Speaks::Native.actions(), ActionSet::ALL);
        for p in ["tasks-gateway", "event-bridge", "/etc/pulse/ours.toml"] {
            assert!(!Speaks::parse(p).takes_actions(), "{p}");
        }
        // Seed 000 shows ticket moves and terminations, not approvals.
        let monitor = Speaks::parse("agent-monitor").actions();
        assert!(monitor.move_ticket && monitor.terminate_agent);
        assert!(!monitor.approve && !monitor.reject);
        // The optimistic change is the dialect's: fixed on a gateway, declared in a
        // profile.
        let moved = Action::MoveTicket {
            id: "5".into(),
            state: "review".into(),
        };
        let stop = Action::TerminateAgent {
            id: "a1".into(),
            reason: None,
        };
        for s in [Speaks::Native, Speaks::parse("agent-monitor")] {
            assert_eq!(s.optimistic(&moved)["state"], "review", "{s}");
            assert_eq!(s.optimistic(&stop)["status"], "terminating", "{s}");
        }
        assert!(Speaks::parse("tasks-gateway").optimistic(&moved).is_empty());
    }

    /// Moved from the UI's `actions.test.ts`: the shell reports this answer as
    /// `Account.takes_actions` (and which ones as `Account.actions`).
    #[test]
    fn a_gateway_and_profiles_that_declare_actions_take_them() {
        let takes = |p: &str| Speaks::parse(p).takes_actions();
        assert!(takes("native"));
        assert!(takes(" native "));
        // Also the UI's `null`: no profile saved reads as the empty string here.
        assert!(takes(""));
        assert!(takes("agent-monitor"));
        for p in [
            "tasks-gateway",
            "event-bridge",
            "nest-realtime",
            "fastapi-dashboard",
            "/etc/pulse/ours.toml",
        ] {
            assert!(!takes(p), "{p}");
        }
    }
}
