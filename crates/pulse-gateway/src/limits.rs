//! Abuse limits: login throttling, connection caps and the per-token request rate.
//!
//! Every limit is per gateway node and kept in memory (a restart forgets them; with
//! N nodes behind a load balancer a client gets at most N times a limit). What a
//! limit refuses is answered 429 with `Retry-After` (see [`Refused`]).
//!
//! Invariants:
//! - a refused request costs no password hash and no store call: limits are checked
//!   before both;
//! - only failed logins count towards the login throttle, so a user who types the
//!   right password is never locked out by their own successes; a success clears
//!   the user's failures (not the address's);
//! - connection counts are held by [`ConnectionGuard`]s, released when the
//!   connection's task ends however it ends (drop), so a count never leaks;
//! - the maps are bounded: keys with nothing left to remember are dropped once a
//!   map holds more than [`MAX_KEYS`] keys, and the throttle remembers at most
//!   `limit` failures per key;
//! - `Retry-After` is at least 1 second and never overflows.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Keys a map keeps before it drops the ones with nothing to remember.
pub const MAX_KEYS: usize = 100_000;

/// The limits a gateway applies. [`Limits::default`] suits a production gateway;
/// a benchmark that opens thousands of connections from a few addresses sets its
/// own (see `crates/pulse-bench`), nothing is exempt silently.
#[derive(Debug, Clone, PartialEq)]
pub struct Limits {
    /// Failed logins of one user name within [`Limits::login_window`] before more
    /// attempts for that name are refused.
    pub login_failures_per_user: u32,
    /// Failed logins from one address within [`Limits::login_window`] before more
    /// attempts from it are refused.
    pub login_failures_per_address: u32,
    /// The window failed logins are counted in.
    pub login_window: Duration,
    /// Open WebSocket streams of one token (`0`: no cap).
    pub connections_per_token: u32,
    /// Open WebSocket streams from one address (`0`: no cap).
    pub connections_per_address: u32,
    /// Sustained requests per second of one token (REST and stream upgrades;
    /// `0`: no limit).
    pub requests_per_second: u32,
    /// Requests one token may make at once above the sustained rate.
    pub request_burst: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            login_failures_per_user: 5,
            login_failures_per_address: 20,
            login_window: Duration::from_secs(5 * 60),
            connections_per_token: 32,
            connections_per_address: 512,
            requests_per_second: 100,
            request_burst: 500,
        }
    }
}

impl Limits {
    /// No connection cap and no request rate limit (logins are still throttled):
    /// for benchmarks, which say so on their command line.
    pub fn unlimited_traffic() -> Limits {
        Limits {
            connections_per_token: 0,
            connections_per_address: 0,
            requests_per_second: 0,
            ..Limits::default()
        }
    }
}

/// A refusal by a limit: answered 429 with `Retry-After: retry_after` (seconds,
/// at least 1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    /// What was exceeded, for the message.
    pub what: String,
    /// When to try again.
    pub retry_after: Duration,
}

impl Refused {
    /// `retry_after` in whole seconds, rounded up, at least 1.
    pub fn retry_after_secs(&self) -> u32 {
        let secs = self
            .retry_after
            .as_secs()
            .saturating_add(u64::from(self.retry_after.subsec_nanos() > 0));
        u32::try_from(secs.max(1)).unwrap_or(u32::MAX)
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Failed attempts per key in a sliding window.
#[derive(Debug)]
pub struct Throttle {
    limit: u32,
    window: Duration,
    failures: Mutex<HashMap<String, VecDeque<Instant>>>,
}

impl Throttle {
    /// At most `limit` failures per key within `window` (`limit` 0: no throttle).
    pub fn new(limit: u32, window: Duration) -> Throttle {
        Throttle {
            limit,
            window,
            failures: Mutex::new(HashMap::new()),
        }
    }

    /// `Err` when `key` has used up its failures: how long until the oldest one
    /// leaves the window.
    pub fn check(&self, key: &str, now: Instant) -> Result<(), Duration> {
        if self.limit == 0 {
            return Ok(());
        }
        let mut map = lock(&self.failures);
        let Some(q) = map.get_mut(key) else {
            return Ok(());
        };
        while q
            .front()
            .is_some_and(|t| now.saturating_duration_since(*t) >= self.window)
        {
            q.pop_front();
        }
        if q.len() < self.limit as usize {
            return Ok(());
        }
        let oldest = *q.front().expect("limit > 0 so the queue is not empty");
        Err((oldest + self.window).saturating_duration_since(now))
    }

    /// Count one failure of `key`.
    pub fn fail(&self, key: &str, now: Instant) {
        if self.limit == 0 {
            return;
        }
        let mut map = lock(&self.failures);
        if map.len() >= MAX_KEYS && !map.contains_key(key) {
            let window = self.window;
            map.retain(|_, q| {
                q.back()
                    .is_some_and(|t| now.saturating_duration_since(*t) < window)
            });
        }
        let q = map.entry(key.to_owned()).or_default();
        if q.len() >= self.limit as usize {
            q.pop_front();
        }
        q.push_back(now);
    }

    /// Forget the failures of `key`.
    pub fn clear(&self, key: &str) {
        lock(&self.failures).remove(key);
    }
}

/// The login throttle: per user name and per address.
#[derive(Debug)]
pub struct LoginThrottle {
    users: Throttle,
    addresses: Throttle,
}

impl LoginThrottle {
    /// The throttle of `limits`.
    pub fn new(limits: &Limits) -> LoginThrottle {
        LoginThrottle {
            users: Throttle::new(limits.login_failures_per_user, limits.login_window),
            addresses: Throttle::new(limits.login_failures_per_address, limits.login_window),
        }
    }

    /// Whether a login of `user` from `addr` may be tried now.
    pub fn check(&self, user: &str, addr: IpAddr) -> Result<(), Refused> {
        let now = Instant::now();
        self.addresses
            .check(&addr.to_string(), now)
            .map_err(|retry_after| Refused {
                what: "too many failed logins from this address".into(),
                retry_after,
            })?;
        self.users.check(user, now).map_err(|retry_after| Refused {
            what: "too many failed logins for this user".into(),
            retry_after,
        })
    }

    /// Count a failed login.
    pub fn failed(&self, user: &str, addr: IpAddr) {
        let now = Instant::now();
        self.users.fail(user, now);
        self.addresses.fail(&addr.to_string(), now);
    }

    /// A login succeeded: the user's failures are forgotten.
    pub fn succeeded(&self, user: &str) {
        self.users.clear(user);
    }
}

/// Open connections per key, capped.
#[derive(Debug)]
pub struct ConnectionCounter {
    cap: u32,
    what: &'static str,
    open: Arc<Mutex<HashMap<String, u32>>>,
}

/// One open connection counted by a [`ConnectionCounter`]; dropping it releases it.
#[derive(Debug)]
pub struct ConnectionGuard {
    key: String,
    open: Arc<Mutex<HashMap<String, u32>>>,
}

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        let mut map = lock(&self.open);
        if let Some(n) = map.get_mut(&self.key) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                map.remove(&self.key);
            }
        }
    }
}

impl ConnectionCounter {
    /// At most `cap` open connections per key (0: no cap); `what` names the key in
    /// messages (`token`, `address`).
    pub fn new(cap: u32, what: &'static str) -> ConnectionCounter {
        ConnectionCounter {
            cap,
            what,
            open: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    /// Count one more connection of `key`, or refuse it when `key` has `cap` open.
    pub fn acquire(&self, key: &str) -> Result<Option<ConnectionGuard>, Refused> {
        if self.cap == 0 {
            return Ok(None);
        }
        let mut map = lock(&self.open);
        let n = map.entry(key.to_owned()).or_insert(0);
        if *n >= self.cap {
            return Err(Refused {
                what: format!(
                    "this {} already has {} open streams (the limit)",
                    self.what, self.cap
                ),
                retry_after: Duration::from_secs(1),
            });
        }
        *n += 1;
        Ok(Some(ConnectionGuard {
            key: key.to_owned(),
            open: self.open.clone(),
        }))
    }

    /// Open connections of `key` now.
    pub fn open(&self, key: &str) -> u32 {
        lock(&self.open).get(key).copied().unwrap_or(0)
    }
}

/// Requests per key, a token bucket: `burst` at once, refilled at `rate` per second.
#[derive(Debug)]
pub struct RateLimiter {
    rate: u32,
    burst: u32,
    buckets: Mutex<HashMap<String, (f64, Instant)>>,
}

impl RateLimiter {
    /// `rate` requests per second sustained, `burst` at once (`rate` 0: no limit).
    pub fn new(rate: u32, burst: u32) -> RateLimiter {
        RateLimiter {
            rate,
            burst: burst.max(1),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Take one request of `key`, or say how long until one is allowed.
    pub fn take(&self, key: &str, now: Instant) -> Result<(), Refused> {
        if self.rate == 0 {
            return Ok(());
        }
        let (rate, burst) = (f64::from(self.rate), f64::from(self.burst));
        let mut map = lock(&self.buckets);
        if map.len() >= MAX_KEYS && !map.contains_key(key) {
            // A bucket that would be full again holds nothing worth keeping.
            map.retain(|_, (tokens, at)| {
                *tokens + now.saturating_duration_since(*at).as_secs_f64() * rate < burst
            });
        }
        let (tokens, at) = map.entry(key.to_owned()).or_insert((burst, now));
        let refilled =
            (*tokens + now.saturating_duration_since(*at).as_secs_f64() * rate).min(burst);
        *at = now;
        if refilled >= 1.0 {
            *tokens = refilled - 1.0;
            Ok(())
        } else {
            *tokens = refilled;
            Err(Refused {
                what: format!(
                    "more than {} requests per second with this token",
                    self.rate
                ),
                retry_after: Duration::from_secs_f64((1.0 - refilled) / rate),
            })
        }
    }
}

/// Everything a gateway tracks for [`Limits`].
#[derive(Debug)]
pub struct Limiter {
    /// Failed logins.
    pub login: LoginThrottle,
    /// Streams per token.
    pub per_token: ConnectionCounter,
    /// Streams per address.
    pub per_address: ConnectionCounter,
    /// Requests per token.
    pub requests: RateLimiter,
}

impl Limiter {
    /// The trackers of `limits`.
    pub fn new(limits: &Limits) -> Limiter {
        Limiter {
            login: LoginThrottle::new(limits),
            per_token: ConnectionCounter::new(limits.connections_per_token, "token"),
            per_address: ConnectionCounter::new(limits.connections_per_address, "address"),
            requests: RateLimiter::new(limits.requests_per_second, limits.request_burst),
        }
    }
}

/// The key of a token for the per-token limits: who it is for and when it was
/// issued (two tokens minted in the same second for the same user count as one).
/// Never the token itself, which must not be kept.
pub fn token_key(claims: &pulse_protocol::auth::Claims) -> String {
    format!(
        "{}\u{0}{}\u{0}{}\u{0}{}",
        claims.tenant, claims.sub, claims.iat, claims.exp
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn throttle_counts_failures_in_a_window() {
        let t = Throttle::new(3, Duration::from_secs(60));
        let t0 = Instant::now();
        for i in 0..3 {
            assert!(t.check("ann", t0).is_ok(), "attempt {i}");
            t.fail("ann", t0 + Duration::from_secs(i));
        }
        let wait = t.check("ann", t0 + Duration::from_secs(10)).unwrap_err();
        assert_eq!(
            wait,
            Duration::from_secs(50),
            "until the oldest failure leaves"
        );
        assert!(t.check("bob", t0).is_ok(), "other keys are not affected");
        assert!(t.check("ann", t0 + Duration::from_secs(60)).is_ok());
        t.clear("ann");
        assert!(t.check("ann", t0 + Duration::from_secs(10)).is_ok());
        assert!(Throttle::new(0, Duration::ZERO).check("x", t0).is_ok());
    }

    #[test]
    fn throttle_maps_stay_bounded() {
        let t = Throttle::new(1, Duration::from_millis(1));
        let t0 = Instant::now();
        for i in 0..(MAX_KEYS + 10) {
            t.fail(&i.to_string(), t0);
        }
        t.fail("late", t0 + Duration::from_secs(1));
        assert!(lock(&t.failures).len() <= MAX_KEYS);
    }

    #[test]
    fn connections_are_capped_and_released() {
        let c = ConnectionCounter::new(2, "token");
        let a = c.acquire("k").unwrap();
        let b = c.acquire("k").unwrap();
        let refused = c.acquire("k").unwrap_err();
        assert!(refused.what.contains("2 open streams"), "{}", refused.what);
        assert!(c.acquire("other").is_ok());
        drop(a);
        assert_eq!(c.open("k"), 1);
        assert!(c.acquire("k").unwrap().is_some());
        drop(b);
        assert!(ConnectionCounter::new(0, "x")
            .acquire("k")
            .unwrap()
            .is_none());
    }

    #[test]
    fn rate_limiter_refills() {
        let r = RateLimiter::new(10, 3);
        let t0 = Instant::now();
        for _ in 0..3 {
            r.take("k", t0).unwrap();
        }
        let refused = r.take("k", t0).unwrap_err();
        assert_eq!(refused.retry_after_secs(), 1);
        assert!(refused.retry_after <= Duration::from_millis(100));
        r.take("k", t0 + Duration::from_millis(100)).unwrap();
        assert!(RateLimiter::new(0, 0).take("k", t0).is_ok());
    }

    #[test]
    fn retry_after_is_whole_seconds_at_least_one() {
        let r = |d| Refused {
            what: String::new(),
            retry_after: d,
        };
        assert_eq!(r(Duration::ZERO).retry_after_secs(), 1);
        assert_eq!(r(Duration::from_millis(1500)).retry_after_secs(), 2);
        assert_eq!(r(Duration::from_secs(7)).retry_after_secs(), 7);
        assert_eq!(r(Duration::MAX).retry_after_secs(), u32::MAX);
    }
}
