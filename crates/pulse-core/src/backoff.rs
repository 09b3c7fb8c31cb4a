//! Reconnect delays: capped exponential backoff with full jitter, reset once stable.
//!
//! [`Backoff`] is a pure strategy object: it never sleeps, never reads a clock and
//! never touches the network. The session actor asks it how long to wait
//! ([`Backoff::next_delay`] / [`Backoff::disconnected`]), tells it when a connection
//! came up ([`Backoff::connected`]), and sleeps itself.
//!
//! Invariants:
//! - the *ceiling* of failure `n` (counting from 0) is `min(cap, base · 2ⁿ)`:
//!   1 s, 2 s, 4 s, 8 s, 16 s, 30 s, 30 s … with the default config;
//! - the delay is drawn uniformly from `[floor, ceiling]` *after* the cap is applied
//!   (full jitter), so it never exceeds the cap and never drops below the floor
//!   (a jitter of 0 cannot hot-loop);
//! - after [`BackoffConfig::fail_after`] consecutive failures [`Backoff::is_failed`]
//!   is true (the UI shows *Failed / Retry*) and the delays become slow background
//!   retries of [`BackoffConfig::slow_retry`] ±20 %;
//! - a connection that stayed up for at least [`BackoffConfig::stable_after`] resets
//!   the counter when it drops; one that drops sooner (flapping) keeps backing off;
//! - a resync (the server's stream had a gap, the link is reopened to replay it)
//!   is retried at once only when it is the first since the last stable link;
//!   a second one before the link was stable is a failure like any other
//!   ([`Backoff::resync_now`]), so a server that gaps on every connection is
//!   retried with backoff, never in a tight loop;
//! - the random source is injectable ([`Backoff::with_rng`]) so tests are repeatable.

use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

/// Tuning of a [`Backoff`]. The defaults are the ones Pulse ships with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct BackoffConfig {
    /// Ceiling of the first retry (default 1 s).
    pub base: Duration,
    /// Largest ceiling (default 30 s).
    pub cap: Duration,
    /// Smallest delay ever returned, so a jitter of 0 cannot hot-loop (default 100 ms).
    pub floor: Duration,
    /// A connection up at least this long resets the counter (default 30 s).
    pub stable_after: Duration,
    /// Consecutive failures after which the state is *failed* (default 10).
    pub fail_after: u32,
    /// Mean delay of the slow background retries once failed (default 60 s, ±20 %).
    pub slow_retry: Duration,
}

impl Default for BackoffConfig {
    fn default() -> Self {
        BackoffConfig {
            base: Duration::from_secs(1),
            cap: Duration::from_secs(30),
            floor: Duration::from_millis(100),
            stable_after: Duration::from_secs(30),
            fail_after: 10,
            slow_retry: Duration::from_secs(60),
        }
    }
}

impl BackoffConfig {
    /// The ceiling of failure `n` (0 = the first): `min(cap, base · 2ⁿ)`.
    pub fn ceiling(&self, n: u32) -> Duration {
        let factor = 1u32.checked_shl(n).unwrap_or(u32::MAX);
        self.base.saturating_mul(factor).min(self.cap)
    }
}

/// Share of [`BackoffConfig::slow_retry`] by which slow retries are jittered.
const SLOW_JITTER: f64 = 0.2;

/// Reconnect delay strategy (see the module docs for its invariants).
#[derive(Debug, Clone)]
pub struct Backoff<R = StdRng> {
    config: BackoffConfig,
    failures: u32,
    connected_at: Option<Instant>,
    resyncs: u32,
    rng: R,
}

impl Backoff<StdRng> {
    /// A strategy seeded from the operating system's random source.
    pub fn new(config: BackoffConfig) -> Self {
        Backoff::with_rng(config, StdRng::from_os_rng())
    }
}

impl<R: Rng> Backoff<R> {
    /// A strategy drawing its jitter from `rng` (seed it for repeatable tests).
    pub fn with_rng(config: BackoffConfig, rng: R) -> Self {
        Backoff {
            config,
            failures: 0,
            connected_at: None,
            resyncs: 0,
            rng,
        }
    }

    /// The configuration in use.
    pub fn config(&self) -> &BackoffConfig {
        &self.config
    }

    /// Consecutive failures recorded since the last reset.
    pub fn attempts(&self) -> u32 {
        self.failures
    }

    /// True once [`BackoffConfig::fail_after`] consecutive failures were recorded;
    /// from then on [`Backoff::next_delay`] returns slow background retries.
    pub fn is_failed(&self) -> bool {
        self.failures >= self.config.fail_after
    }

    /// Record one more failure (a connect attempt failed or a link dropped) and
    /// return how long to wait before the next attempt.
    pub fn next_delay(&mut self) -> Duration {
        let n = self.failures;
        self.failures = self.failures.saturating_add(1);
        self.connected_at = None;
        if self.is_failed() {
            let mean = self.config.slow_retry.as_secs_f64();
            let low = mean * (1.0 - SLOW_JITTER);
            let high = mean * (1.0 + SLOW_JITTER);
            let secs = if high > low {
                self.rng.random_range(low..=high)
            } else {
                mean
            };
            return Duration::from_secs_f64(secs).max(self.config.floor);
        }
        let ceiling = self.config.ceiling(n);
        let floor = self.config.floor.min(ceiling);
        let (lo, hi) = (nanos(floor), nanos(ceiling));
        Duration::from_nanos(self.rng.random_range(lo..=hi))
    }

    /// Forget every failure (a stable connection, or the user pressed *Retry*).
    pub fn reset(&mut self) {
        self.failures = 0;
        self.resyncs = 0;
    }

    /// The link ended at `now` asking for a resync. True: reopen it at once (the
    /// first resync since the last stable link, or the last reset); the link's
    /// end is recorded as by [`Backoff::link_ended`]. False: this is a repeated
    /// resync on links that never became stable; nothing is recorded, and the
    /// caller waits [`Backoff::disconnected`] as after any failure.
    pub fn resync_now(&mut self, now: Instant) -> bool {
        if self.should_reset(now) {
            self.reset();
        }
        self.resyncs = self.resyncs.saturating_add(1);
        if self.resyncs == 1 {
            self.link_ended(now);
            true
        } else {
            false
        }
    }

    /// A connection came up at `now`. The counter is *not* reset yet: only a
    /// connection that stays up for [`BackoffConfig::stable_after`] earns that.
    pub fn connected(&mut self, now: Instant) {
        self.connected_at = Some(now);
    }

    /// True when a connection is up and has been since at least
    /// [`BackoffConfig::stable_after`] before `now`.
    pub fn should_reset(&self, now: Instant) -> bool {
        self.connected_at
            .is_some_and(|at| now.saturating_duration_since(at) >= self.config.stable_after)
    }

    /// The link ended at `now` and is followed at once by another attempt (a
    /// resync, a switch to or from a fallback): reset the counter if the link had
    /// been up for [`BackoffConfig::stable_after`], and forget that it was up.
    pub fn link_ended(&mut self, now: Instant) {
        if self.should_reset(now) {
            self.reset();
        }
        self.connected_at = None;
    }

    /// The connection dropped at `now`: reset the counter if it had been stable,
    /// then record the failure and return the delay before the next attempt.
    pub fn disconnected(&mut self, now: Instant) -> Duration {
        self.link_ended(now);
        self.next_delay()
    }
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seeded(seed: u64) -> Backoff<StdRng> {
        Backoff::with_rng(BackoffConfig::default(), StdRng::seed_from_u64(seed))
    }

    #[test]
    fn a_repeated_resync_backs_off_and_a_stable_link_forgives_it() {
        let mut b = seeded(7);
        let t0 = Instant::now();
        b.connected(t0);
        assert!(
            b.resync_now(t0 + Duration::from_secs(1)),
            "first resync at once"
        );
        b.connected(t0 + Duration::from_secs(1));
        assert!(
            !b.resync_now(t0 + Duration::from_secs(2)),
            "second backs off"
        );
        let d = b.disconnected(t0 + Duration::from_secs(2));
        assert!(d >= b.config().floor);
        assert_eq!(b.attempts(), 1);
        // A link that stayed up long enough forgives the resyncs before it.
        let up = t0 + Duration::from_secs(3);
        b.connected(up);
        assert!(b.resync_now(up + b.config().stable_after));
        assert_eq!(b.attempts(), 0);
    }

    #[test]
    fn ceilings_double_up_to_the_cap() {
        let c = BackoffConfig::default();
        let secs: Vec<u64> = (0..9).map(|n| c.ceiling(n).as_secs()).collect();
        assert_eq!(secs, [1, 2, 4, 8, 16, 30, 30, 30, 30]);
        assert_eq!(c.ceiling(40), c.cap);
        assert_eq!(c.ceiling(u32::MAX), c.cap);
    }

    #[test]
    fn jitter_stays_within_floor_and_ceiling() {
        let config = BackoffConfig::default();
        for seed in 0..200 {
            let mut b = seeded(seed);
            for n in 0..config.fail_after - 1 {
                let d = b.next_delay();
                assert!(
                    d >= config.floor,
                    "seed {seed} attempt {n}: {d:?} below floor"
                );
                assert!(
                    d <= config.ceiling(n),
                    "seed {seed} attempt {n}: {d:?} above ceiling"
                );
                assert!(d <= config.cap);
            }
        }
    }

    #[test]
    fn jitter_is_spread_over_the_whole_range() {
        let mut lowest = Duration::MAX;
        let mut highest = Duration::ZERO;
        for seed in 0..500 {
            let mut b = seeded(seed);
            for _ in 0..5 {
                b.next_delay();
            }
            let d = b.next_delay(); // ceiling 30 s
            lowest = lowest.min(d);
            highest = highest.max(d);
        }
        assert!(lowest < Duration::from_secs(3), "lowest {lowest:?}");
        assert!(highest > Duration::from_secs(27), "highest {highest:?}");
    }

    #[test]
    fn same_seed_same_delays() {
        let (mut a, mut b) = (seeded(9), seeded(9));
        for _ in 0..20 {
            assert_eq!(a.next_delay(), b.next_delay());
        }
    }

    #[test]
    fn fails_after_threshold_then_retries_slowly() {
        let mut b = seeded(1);
        for i in 1..10 {
            b.next_delay();
            assert_eq!(b.attempts(), i);
            assert!(!b.is_failed(), "failed too early at {i}");
        }
        for _ in 0..100 {
            let d = b.next_delay();
            assert!(b.is_failed());
            assert!(d >= Duration::from_secs(48), "{d:?}");
            assert!(d <= Duration::from_secs(72), "{d:?}");
        }
        b.reset();
        assert!(!b.is_failed());
        assert_eq!(b.attempts(), 0);
        assert!(b.next_delay() <= Duration::from_secs(1));
    }

    #[test]
    fn stable_connection_resets_the_counter() {
        let t0 = Instant::now();
        let mut b = seeded(2);
        for _ in 0..6 {
            b.next_delay();
        }
        b.connected(t0);
        assert!(!b.should_reset(t0 + Duration::from_secs(29)));
        assert!(b.should_reset(t0 + Duration::from_secs(30)));
        let d = b.disconnected(t0 + Duration::from_secs(45));
        assert_eq!(b.attempts(), 1);
        assert!(d <= Duration::from_secs(1));
    }

    #[test]
    fn flapping_connection_keeps_backing_off() {
        let mut now = Instant::now();
        let mut b = seeded(3);
        for i in 1..=12u32 {
            b.connected(now);
            now += Duration::from_secs(2);
            let d = b.disconnected(now);
            assert_eq!(b.attempts(), i);
            if i <= 9 {
                assert!(d <= b.config().ceiling(i - 1));
            }
            now += d;
        }
        assert!(b.is_failed());
    }

    #[test]
    fn stability_is_measured_from_link_up_not_from_the_attempt() {
        // An attempt starts at t0 and takes 25 s to bring its link up (slow
        // handshake, resync); the link drops 10 s later, 35 s after the attempt
        // began. It was up only 10 s: not stable, so the counter keeps counting.
        let t0 = Instant::now();
        let mut b = seeded(6);
        for _ in 0..4 {
            b.next_delay();
        }
        b.connected(t0 + Duration::from_secs(25));
        b.link_ended(t0 + Duration::from_secs(35));
        assert_eq!(b.attempts(), 4);
        // Up for 30 s from link-up: stable, reset.
        b.connected(t0 + Duration::from_secs(40));
        b.link_ended(t0 + Duration::from_secs(70));
        assert_eq!(b.attempts(), 0);
        // A link that ended is no longer up: a later end does not reset again.
        b.next_delay();
        b.link_ended(t0 + Duration::from_secs(500));
        assert_eq!(b.attempts(), 1);
    }

    #[test]
    fn reset_requires_a_live_connection() {
        let t0 = Instant::now();
        let mut b = seeded(4);
        assert!(!b.should_reset(t0 + Duration::from_secs(3600)));
        b.connected(t0);
        b.next_delay(); // a failure clears the connection
        assert!(!b.should_reset(t0 + Duration::from_secs(3600)));
    }

    #[test]
    fn floor_larger_than_ceiling_is_clamped() {
        let config = BackoffConfig {
            base: Duration::from_millis(10),
            floor: Duration::from_millis(100),
            ..BackoffConfig::default()
        };
        let mut b = Backoff::with_rng(config, StdRng::seed_from_u64(5));
        assert_eq!(b.next_delay(), Duration::from_millis(10));
        assert!(b.next_delay() <= Duration::from_millis(20));
    }

    #[test]
    fn config_round_trips_through_serde() {
        let c = BackoffConfig::default();
        let json = serde_json::to_string(&c).unwrap();
        assert_eq!(serde_json::from_str::<BackoffConfig>(&json).unwrap(), c);
        let partial: BackoffConfig = serde_json::from_str(r#"{"fail_after": 3}"#).unwrap();
        assert_eq!(partial.fail_after, 3);
        assert_eq!(partial.cap, c.cap);
    }
}
