//! What every link to a server shares, whatever its protocol: the dead-link timer
//! and the batch drain.
//!
//! The WebSocket text link itself is [`JsonWsConnection`](super::jsonws::JsonWsConnection)
//! (`recv` / `try_recv` / `send_text` / `ping` / `close`); the native protocol is a
//! thin layer over it ([`super::native`]) and profiles use it directly.
//!
//! Invariants:
//! - a silence or ping interval (from a server's hello, a profile's TOML) is
//!   held to at most [`MAX_SILENCE`], so an absurd value (`u64::MAX` ms) stays
//!   a usable timer deadline and never overflows the clock;
//! - [`DeadLink::wake_at`] is never later than the moment the link is declared dead
//!   nor than the next ping, so a caller that sleeps until then misses neither;
//! - [`drain`] never takes more than `max` messages and never waits: it takes the
//!   first and whatever is already buffered, so one store transaction holds a burst.

use std::time::Duration;

use tokio::time::Instant;

/// The longest silence or ping interval a [`DeadLink`] keeps (a day): larger
/// values from a server or a profile are held to it.
pub const MAX_SILENCE: Duration = Duration::from_secs(86_400);

/// Detects a silent link: dead once nothing was received for `silence`; optionally
/// asks for a ping every `ping_every` of quiet (client-driven heartbeats).
#[derive(Debug, Clone)]
pub struct DeadLink {
    silence: Duration,
    ping_every: Option<Duration>,
    last_rx: Instant,
    next_ping: Option<Instant>,
}

impl DeadLink {
    /// A timer started at `now`: dead after `silence` without a message; a ping is
    /// due after each `ping_every` without one (`None`: the server pings).
    pub fn new(silence: Duration, ping_every: Option<Duration>, now: Instant) -> Self {
        let silence = silence.min(MAX_SILENCE);
        let ping_every = ping_every.map(|p| p.min(MAX_SILENCE));
        DeadLink {
            silence,
            ping_every,
            last_rx: now,
            next_ping: ping_every.map(|p| now + p),
        }
    }

    /// How long a link may stay silent.
    pub fn silence(&self) -> Duration {
        self.silence
    }

    /// Something arrived at `now`: the link is alive.
    pub fn received(&mut self, now: Instant) {
        self.last_rx = now;
        self.next_ping = self.ping_every.map(|p| now + p);
    }

    /// When to wake up next: the next ping, or the moment the link would be dead.
    pub fn wake_at(&self) -> Instant {
        let dead_at = self.last_rx + self.silence;
        match self.next_ping {
            Some(p) => p.min(dead_at),
            None => dead_at,
        }
    }

    /// Whether nothing arrived for `silence` before `now`.
    pub fn is_dead(&self, now: Instant) -> bool {
        now >= self.last_rx + self.silence
    }

    /// Whether a ping is due at `now`; when it is, the next one is scheduled.
    pub fn ping_due(&mut self, now: Instant) -> bool {
        match (self.next_ping, self.ping_every) {
            (Some(at), Some(every)) if now >= at => {
                self.next_ping = Some(now + every);
                true
            }
            _ => false,
        }
    }

    /// The reason to give when the link is dead.
    pub fn dead_reason(&self, what: &str) -> String {
        format!(
            "no {what} from the server for {} ms (dead link)",
            self.silence.as_millis()
        )
    }
}

/// One batch: `first`, then what `next` gives without waiting, up to `max` in all.
pub fn drain<T>(first: T, max: usize, mut next: impl FnMut() -> Option<T>) -> Vec<T> {
    let mut batch = vec![first];
    while batch.len() < max {
        match next() {
            Some(m) => batch.push(m),
            None => break,
        }
    }
    batch
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absurd_silences_are_held_to_a_day_and_never_overflow_the_clock() {
        let t0 = Instant::now();
        let mut d = DeadLink::new(Duration::MAX, Some(Duration::MAX), t0);
        assert_eq!(d.silence(), MAX_SILENCE);
        assert_eq!(d.wake_at(), t0 + MAX_SILENCE);
        d.received(t0 + Duration::from_secs(1));
        assert!(d.ping_due(t0 + Duration::from_secs(1) + MAX_SILENCE));
        assert!(!d.is_dead(t0 + Duration::from_secs(2)));
    }

    #[test]
    fn a_silent_link_is_dead_after_its_silence() {
        let t0 = Instant::now();
        let mut d = DeadLink::new(Duration::from_secs(10), None, t0);
        assert_eq!(d.wake_at(), t0 + Duration::from_secs(10));
        assert!(!d.is_dead(t0 + Duration::from_secs(9)));
        d.received(t0 + Duration::from_secs(5));
        assert!(!d.is_dead(t0 + Duration::from_secs(14)));
        assert!(d.is_dead(t0 + Duration::from_secs(15)));
        assert!(!d.ping_due(t0 + Duration::from_secs(100)));
        assert!(d.dead_reason("frame").contains("10000 ms"));
    }

    #[test]
    fn pings_are_due_after_quiet_and_wake_comes_first() {
        let t0 = Instant::now();
        let mut d = DeadLink::new(Duration::from_secs(30), Some(Duration::from_secs(20)), t0);
        assert_eq!(d.wake_at(), t0 + Duration::from_secs(20));
        assert!(!d.ping_due(t0 + Duration::from_secs(19)));
        assert!(d.ping_due(t0 + Duration::from_secs(20)));
        // Next ping 20 s later, but death (30 s after the last message) comes first.
        assert_eq!(d.wake_at(), t0 + Duration::from_secs(30));
        d.received(t0 + Duration::from_secs(25));
        assert_eq!(d.wake_at(), t0 + Duration::from_secs(45));
    }

    #[test]
    fn drain_takes_what_is_buffered_up_to_max() {
        let mut q = vec![4, 3, 2];
        assert_eq!(drain(1, 10, || q.pop()), vec![1, 2, 3, 4]);
        let mut q = vec![4, 3, 2];
        assert_eq!(drain(1, 2, || q.pop()), vec![1, 2]);
        assert_eq!(q, vec![4, 3]);
        assert_eq!(drain(1, 0, || Some(9)), vec![1]);
    }
}
