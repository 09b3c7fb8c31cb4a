//! The `--demo` simulator: a busy agent-operations platform in tenant `demo`.
//!
//! On start it seeds (only when the tenant's log is empty) 12 agents, 40 tickets
//! across the kanban columns, pending approvals, conversations (some escalated) and
//! the four stats blocks; a restart over a SQLite store picks up the state instead.
//! Then it emits 3–5 events/s (at `speed` 1.0): heartbeats, status changes, ticket
//! moves/timeline entries/PR updates, chat messages, notifications; a new approval
//! within 10 s of start and then every 20–40 s, an escalation every 30–60 s, stats
//! every 10 s.
//!
//! Invariants:
//! - every event goes through [`Hub::append`], the same path as `POST /v1/ingest`,
//!   and is valid for [`pulse_protocol::changes_for`];
//! - the simulator re-reads the tenant's snapshot with each stats refresh, so
//!   decisions and moves made by users through the REST API are respected;
//! - entity counts stay bounded: message and notification ids are reused in rings
//!   of [`MESSAGE_RING`] and [`NOTIFICATION_RING`], done tickets beyond 15 are deleted;
//! - it stops when `stop` turns true or its sender is dropped.
//!
//! Layout: `catalogue` holds the fixed names and lines the simulator draws from;
//! `events` the state changes that emit events (seeding, creating, escalating,
//! chatting, notifying, stats); `step` the weighted choice of one ordinary step.
//! The simulated state (`Sim`'s fields) lives here and is changed only
//! alongside the events that announce the change.

mod catalogue;
mod events;
mod step;

use std::sync::Arc;
use std::time::Duration;

use rand::rngs::StdRng;
use rand::Rng;
use tokio::sync::watch;
use tokio::time::Instant;

use crate::hub::Hub;
use crate::DemoConfig;

/// Message ids are reused after this many messages.
pub const MESSAGE_RING: u64 = 1000;
/// Notification ids are reused after this many notifications.
pub const NOTIFICATION_RING: u64 = 200;

#[derive(Debug, Clone)]
struct Agent {
    id: String,
    name: String,
    status: String,
}

#[derive(Debug, Clone)]
struct Ticket {
    id: String,
    state: String,
    pr: Option<u64>,
}

#[derive(Debug, Clone)]
struct Conversation {
    id: String,
    customer: String,
    status: String,
}

/// The simulated platform's state, enough to emit plausible events.
#[derive(Debug)]
struct Sim {
    rng: StdRng,
    tenant: String,
    agents: Vec<Agent>,
    tickets: Vec<Ticket>,
    pending: Vec<String>,
    decided: (u64, u64),
    conversations: Vec<Conversation>,
    next_ticket: u64,
    next_approval: u64,
    next_conversation: u64,
    next_message: u64,
    next_notification: u64,
    next_pr: u64,
    invalid: u64,
}

fn num_suffix(id: &str) -> u64 {
    id.rsplit('-')
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

fn scaled(d: Duration, speed: f64) -> Duration {
    d.div_f64(speed.max(0.001))
}

/// Run the simulator for `cfg.tenant` until `stop` becomes true or closes.
pub async fn run(hub: Arc<Hub>, cfg: DemoConfig, mut stop: watch::Receiver<bool>) {
    let tenant = cfg.tenant.clone();
    let mut sim = Sim::new(cfg.seed, &tenant);
    match hub.snapshot(&tenant, None).await {
        Ok(snap) if snap.seq > 0 => {
            sim.load(&snap);
            tracing::info!(tenant = %tenant, seq = snap.seq, "demo resumes over existing state");
        }
        Ok(_) => {
            let seed = sim.seed();
            let n = seed.len();
            if let Err(e) = hub.append(&tenant, seed).await {
                tracing::error!(error = %e, "demo could not seed");
                return;
            }
            tracing::info!(tenant = %tenant, events = n, "demo seeded");
        }
        Err(e) => {
            tracing::error!(error = %e, "demo could not read its tenant");
            return;
        }
    }
    let speed = cfg.speed;
    let start = Instant::now();
    let mut next_approval = start
        + scaled(
            Duration::from_millis(sim.rng.random_range(3000..8000)),
            speed,
        );
    let mut next_escalation =
        start + scaled(Duration::from_secs(sim.rng.random_range(30..60)), speed);
    let mut next_stats = start + scaled(Duration::from_secs(10), speed);
    let mut next_step = start;
    loop {
        if *stop.borrow() {
            break;
        }
        tokio::select! {
            changed = stop.changed() => {
                if changed.is_err() {
                    break;
                }
                continue;
            }
            _ = tokio::time::sleep_until(next_step) => {}
        }
        let now = Instant::now();
        let mut out = Vec::new();
        sim.step(&mut out);
        if now >= next_approval {
            sim.create_approval(&mut out);
            next_approval = now + scaled(Duration::from_secs(sim.rng.random_range(20..40)), speed);
        }
        if now >= next_escalation {
            sim.escalation(&mut out);
            next_escalation =
                now + scaled(Duration::from_secs(sim.rng.random_range(30..60)), speed);
        }
        if now >= next_stats {
            if let Ok(snap) = hub.snapshot(&tenant, None).await {
                sim.load(&snap);
            }
            sim.stats(&mut out);
            next_stats = now + scaled(Duration::from_secs(10), speed);
        }
        if !out.is_empty() {
            if let Err(e) = hub.append(&tenant, out).await {
                tracing::warn!(error = %e, "demo append failed");
            }
        }
        next_step = now + scaled(Duration::from_millis(sim.rng.random_range(200..330)), speed);
    }
    tracing::debug!(tenant = %tenant, "demo stopped");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seed_and_steps_are_valid_events() {
        let mut sim = Sim::new(7, "demo");
        let seed = sim.seed();
        assert!(seed.len() > 60, "{}", seed.len());
        let count = |ty: &str| seed.iter().filter(|e| e.event_type == ty).count();
        assert_eq!(count("agent.upserted"), 12);
        assert_eq!(count("ticket.created"), 40);
        assert_eq!(count("approval.created"), 3);
        assert!(count("conversation.escalated") >= 2);
        assert_eq!(count("stats.updated"), 4);
        let mut out = Vec::new();
        for _ in 0..5000 {
            sim.step(&mut out);
        }
        sim.create_approval(&mut out);
        sim.escalation(&mut out);
        sim.stats(&mut out);
        assert_eq!(sim.invalid, 0, "every event is valid for changes_for");
        assert!(out.len() >= 4500, "{}", out.len());
        assert!(sim.tickets.iter().filter(|t| t.state == "done").count() <= 16);
    }
}
