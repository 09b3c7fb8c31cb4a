//! How often a profile server's REST may be asked: its declared `[rate_limit]`
//! (a budget of requests per window) and the `Retry-After` of a 429. Pure: the
//! caller passes the clock.
//!
//! Invariants:
//! - in any span of `window` at most [`USE_OF_LIMIT`] of the declared requests
//!   are sent (a sliding window over send times: stricter than the fixed
//!   windows servers such as express-rate-limit count in, so it holds for them);
//!   the rest is headroom for network delay and the user's other clients;
//! - after a 429, nothing is sent before its `Retry-After` has passed;
//! - the polling interval derived from the budget ([`Budget::round_interval`])
//!   uses less than the pacer allows, so steady polling is never held back;
//! - every 429 doubles the polling interval for the rest of the session (at
//!   most [`MAX_SLOWDOWN`] times): a server whose limit no profile declares is
//!   not met again and again at the same pace.

use std::collections::VecDeque;
use std::time::Duration;

use tokio::time::Instant;

use super::schema::RateLimit;

/// The share of a declared limit Pulse uses at most (percent).
pub const USE_OF_LIMIT: u32 = 90;

/// The share of a declared limit steady polling uses (percent), below
/// [`USE_OF_LIMIT`] so reconnect loads fit beside it.
pub const POLL_SHARE: u32 = 80;

/// The most a server's 429s slow polling down.
pub const MAX_SLOWDOWN: u32 = 32;

/// The REST budget of one server: its limit, the requests sent, a 429's hold.
#[derive(Debug, Clone, Default)]
pub struct Budget {
    limit: Option<(u32, Duration)>,
    sent: VecDeque<Instant>,
    hold_until: Option<Instant>,
    /// 429s received.
    limited: u32,
}

impl Budget {
    /// The budget of a server with `limit` (none: only 429s hold requests back).
    pub fn new(limit: Option<RateLimit>) -> Budget {
        Budget {
            limit: limit.map(|l| {
                let usable = (l.requests.saturating_mul(USE_OF_LIMIT) / 100).max(1);
                (usable, Duration::from_millis(l.window_ms.max(1)))
            }),
            sent: VecDeque::new(),
            hold_until: None,
            limited: 0,
        }
    }

    /// How many times slower than planned polling runs after the 429s so far.
    pub fn slowdown(&self) -> u32 {
        1u32.checked_shl(self.limited)
            .unwrap_or(u32::MAX)
            .min(MAX_SLOWDOWN)
    }

    /// The earliest time a request may be sent (`now` when it may be sent now).
    pub fn next_slot(&self, now: Instant) -> Instant {
        let mut at = now;
        if let Some(h) = self.hold_until {
            at = at.max(h);
        }
        if let Some((n, window)) = self.limit {
            if self.sent.len() >= n as usize {
                // The oldest of the last `n` sends must leave the window first.
                let oldest = self.sent[self.sent.len() - n as usize];
                at = at.max(oldest + window);
            }
        }
        at
    }

    /// A request is sent at `now`.
    pub fn sent(&mut self, now: Instant) {
        self.sent.push_back(now);
        if let Some((n, window)) = self.limit {
            while self.sent.len() > n as usize
                || self.sent.front().is_some_and(|t| *t + window <= now)
            {
                self.sent.pop_front();
            }
        } else {
            self.sent.clear();
        }
    }

    /// The server answered 429 at `now` with `retry_after`: nothing goes before it.
    pub fn rate_limited(&mut self, now: Instant, retry_after: Duration) {
        let until = now + retry_after;
        self.hold_until = Some(self.hold_until.map_or(until, |h| h.max(until)));
        self.limited = self.limited.saturating_add(1);
    }

    /// The least interval between polling rounds of `per_round` requests that
    /// stays within [`POLL_SHARE`] of the limit (zero without a limit).
    pub fn round_interval(limit: Option<RateLimit>, per_round: usize) -> Duration {
        let Some(l) = limit else {
            return Duration::ZERO;
        };
        let rounds =
            (u64::from(l.requests) * u64::from(POLL_SHARE) / 100) / per_round.max(1) as u64;
        Duration::from_millis(l.window_ms / rounds.max(1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seed000() -> Option<RateLimit> {
        Some(RateLimit {
            requests: 100,
            window_ms: 15 * 60 * 1000,
        })
    }

    #[test]
    fn never_more_than_the_usable_share_in_any_window() {
        let t0 = Instant::now();
        let mut b = Budget::new(seed000());
        let window = Duration::from_secs(900);
        let mut sends = Vec::new();
        let mut now = t0;
        // Greedy: send whenever allowed, for 40 minutes of clock.
        while now < t0 + Duration::from_secs(2400) {
            let slot = b.next_slot(now);
            now = slot;
            b.sent(now);
            sends.push(now);
            now += Duration::from_millis(250);
        }
        for (i, s) in sends.iter().enumerate() {
            let within = sends[i..].iter().take_while(|t| **t < *s + window).count();
            assert!(within <= 90, "{within} sends in one window from #{i}");
        }
        assert!(sends.len() >= 90 * 2, "the budget is used: {}", sends.len());
    }

    #[test]
    fn a_429_holds_every_request_until_retry_after() {
        let t0 = Instant::now();
        let mut b = Budget::new(None);
        assert_eq!(b.next_slot(t0), t0);
        b.sent(t0);
        b.rate_limited(t0, Duration::from_secs(7));
        assert_eq!(
            b.next_slot(t0 + Duration::from_secs(1)),
            t0 + Duration::from_secs(7)
        );
        // A shorter later hold does not shorten the first.
        b.rate_limited(t0 + Duration::from_secs(1), Duration::from_secs(2));
        assert_eq!(b.next_slot(t0), t0 + Duration::from_secs(7));
        let later = t0 + Duration::from_secs(8);
        assert_eq!(b.next_slot(later), later);
    }

    #[test]
    fn each_429_slows_polling_down_to_a_bound() {
        let t0 = Instant::now();
        let mut b = Budget::new(None);
        assert_eq!(b.slowdown(), 1);
        let mut seen = Vec::new();
        for _ in 0..40 {
            b.rate_limited(t0, Duration::ZERO);
            seen.push(b.slowdown());
        }
        assert_eq!(&seen[..6], &[2, 4, 8, 16, 32, 32]);
        assert_eq!(*seen.last().unwrap(), MAX_SLOWDOWN);
    }

    #[test]
    fn polling_rounds_fit_the_seed_limit() {
        // Three resources a round against 100 per 15 minutes: 80 requests a
        // window, 26 rounds, one every 34.6 s.
        let i = Budget::round_interval(seed000(), 3);
        assert_eq!(i, Duration::from_millis(900_000 / 26));
        assert!(900_000 / i.as_millis() as u64 * 3 <= 90);
        assert_eq!(Budget::round_interval(None, 3), Duration::ZERO);
        let tiny = Some(RateLimit {
            requests: 1,
            window_ms: 1000,
        });
        assert_eq!(Budget::round_interval(tiny, 3), Duration::from_millis(1000));
        assert_eq!(
            Budget::new(tiny).limit,
            Some((1, Duration::from_millis(1000)))
        );
    }
}
