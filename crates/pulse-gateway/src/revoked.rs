//! Access tokens that have not expired but are no longer good: every access token
//! of a user removed from the users file, issued up to the removal, and every
//! access token of a signed-out session (its family, `fam`, which the tokens from
//! `/v1/auth/login` and `/v1/auth/refresh` carry).
//!
//! Invariants:
//! - [`Revoked::check`] is the one test: the REST [`crate::http`] extractor and a
//!   stream's `auth` frame both call it after the signature check, so a revoked
//!   token gets 401 (REST) or close 4001 (an `auth` frame);
//! - a revocation wakes every open stream ([`Revoked::subscribe`]); a stream whose
//!   token it covers gets an `error` frame `revoked` and a close 4001 at once;
//! - a user removed and added back keeps nothing of before: tokens issued up to
//!   the removal stay refused (a new login issues newer ones);
//! - entries are kept only as long as an access token from login or refresh can
//!   live (`access_ttl`), then dropped: the table is bounded by the revocations
//!   of that window (a token minted offline with a longer life, `pulse-gateway
//!   mint --ttl`, is refused only that long);
//! - per node and in memory: another node behind the same store (Redis) does not
//!   see this node's revocations of access tokens (the refresh tokens, revoked in
//!   the store, are refused everywhere), and a restart forgets them. Documented in
//!   `docs/reliability.md`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use pulse_protocol::auth::Claims;
use tokio::sync::broadcast;

use crate::auth::{now_secs, AuthError};

/// The revoked access tokens of one node (see the module docs).
#[derive(Debug)]
pub struct Revoked {
    /// Whether anything was ever revoked: until then a check takes no lock.
    any: AtomicBool,
    inner: Mutex<Inner>,
    keep: Duration,
    changed: broadcast::Sender<()>,
}

#[derive(Debug, Default)]
struct Inner {
    /// `(tenant, sub)` → the second of the removal: tokens issued at or before it
    /// are refused.
    users: HashMap<(String, String), u64>,
    /// Session family → the second it was signed out.
    families: HashMap<String, u64>,
}

impl Revoked {
    /// Revocations kept for `access_ttl` (the longest an access token lives).
    pub fn new(access_ttl: Duration) -> Revoked {
        let (changed, _) = broadcast::channel(16);
        Revoked {
            any: AtomicBool::new(false),
            inner: Mutex::new(Inner::default()),
            keep: access_ttl,
            changed,
        }
    }

    fn update(&self, f: impl FnOnce(&mut Inner, u64)) {
        let now = now_secs();
        {
            let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
            let oldest = now.saturating_sub(self.keep.as_secs().saturating_add(1));
            inner.users.retain(|_, at| *at >= oldest);
            inner.families.retain(|_, at| *at >= oldest);
            f(&mut inner, now);
            self.any.store(true, Ordering::Release);
        }
        let _ = self.changed.send(());
    }

    /// The user `sub` of `tenant` was removed: refuse their access tokens issued
    /// until now.
    pub fn user(&self, tenant: &str, sub: &str) {
        self.update(|inner, now| {
            inner.users.insert((tenant.to_owned(), sub.to_owned()), now);
        });
    }

    /// Session `family` signed out: refuse its access tokens.
    pub fn family(&self, family: &str) {
        self.update(|inner, now| {
            inner.families.insert(family.to_owned(), now);
        });
    }

    /// The `iat` to give a new access token of `sub` minted at `now`: `now`, or
    /// the second after the user's removal when that is later (a user removed and
    /// added back within one second logs in again at once, since `iat` counts in
    /// whole seconds and tokens issued in the removal's second are refused).
    pub fn issued_at(&self, tenant: &str, sub: &str, now: u64) -> u64 {
        let inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        match inner.users.get(&(tenant.to_owned(), sub.to_owned())) {
            Some(at) => now.max(at.saturating_add(1)),
            None => now,
        }
    }

    /// `Err` when `claims` (already verified) are revoked.
    pub fn check(&self, claims: &Claims) -> Result<(), AuthError> {
        if !self.any.load(Ordering::Acquire) {
            return Ok(());
        }
        let inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let key = (claims.tenant.clone(), claims.sub.clone());
        if inner.users.get(&key).is_some_and(|at| claims.iat <= *at) {
            return Err(AuthError::Invalid(
                "this user can no longer log in; their tokens are revoked".into(),
            ));
        }
        if claims
            .fam
            .as_ref()
            .is_some_and(|f| inner.families.contains_key(f))
        {
            return Err(AuthError::Invalid(
                "this session was signed out; log in again".into(),
            ));
        }
        Ok(())
    }

    /// Woken after each revocation (streams re-check their token).
    pub fn subscribe(&self) -> broadcast::Receiver<()> {
        self.changed.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pulse_protocol::auth::{Role, TokenUse};

    fn claims(sub: &str, iat: u64, fam: Option<&str>) -> Claims {
        let mut c = crate::auth::claims(
            sub,
            "acme",
            Role::Viewer,
            TokenUse::Access,
            Duration::from_secs(60),
        );
        c.iat = iat;
        c.fam = fam.map(str::to_owned);
        c
    }

    #[test]
    fn removed_users_and_signed_out_families_are_refused() {
        let r = Revoked::new(Duration::from_secs(900));
        let mut woken = r.subscribe();
        let now = now_secs();
        assert!(r.check(&claims("ann", now, Some("f1"))).is_ok());
        r.user("acme", "ann");
        assert!(woken.try_recv().is_ok());
        assert!(r.check(&claims("ann", now, None)).is_err());
        // A token issued after the removal (a new login once added back) is good,
        // even within the removal's second.
        assert!(r.check(&claims("ann", now + 1, None)).is_ok());
        let iat = r.issued_at("acme", "ann", now);
        assert!(iat > now && r.check(&claims("ann", iat, None)).is_ok());
        assert_eq!(r.issued_at("acme", "bob", now), now);
        // Another user, or the same name in another tenant, is not affected.
        assert!(r.check(&claims("bob", now, None)).is_ok());
        let mut other = claims("ann", now, None);
        other.tenant = "globex".into();
        assert!(r.check(&other).is_ok());
        r.family("f2");
        assert!(r.check(&claims("bob", now + 5, Some("f2"))).is_err());
        assert!(r.check(&claims("bob", now + 5, Some("f3"))).is_ok());
    }

    #[test]
    fn entries_are_dropped_after_an_access_token_lifetime() {
        let r = Revoked::new(Duration::from_secs(0));
        r.family("old");
        {
            let mut inner = r.inner.lock().unwrap();
            *inner.families.get_mut("old").unwrap() = now_secs() - 10;
        }
        r.family("new");
        let inner = r.inner.lock().unwrap();
        assert!(!inner.families.contains_key("old"));
        assert!(inner.families.contains_key("new"));
    }
}
