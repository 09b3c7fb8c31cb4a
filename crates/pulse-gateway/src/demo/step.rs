//! One ordinary simulator step: a weighted roll picks heartbeats, status
//! changes, ticket moves, timeline entries, new tickets, PR updates, chat,
//! new conversations, resolutions, approval decisions or a notification.
//!
//! Invariants: a step emits at most a few events, each through `Sim::ev`, and
//! changes the simulated state only as the events it emits say.

use rand::seq::IndexedRandom;
use rand::Rng;
use serde_json::json;

use super::catalogue::{COLUMNS, TICKETS, TIMELINE};
use super::{Agent, Sim};
use crate::store::{now_ms, NewEvent};

impl Sim {
    /// One ordinary step: usually one event, sometimes two.
    pub(super) fn step(&mut self, out: &mut Vec<NewEvent>) {
        let live: Vec<Agent> = self
            .agents
            .iter()
            .filter(|a| a.status != "terminated")
            .cloned()
            .collect();
        let roll = self.rng.random_range(0..100);
        match roll {
            0..30 => {
                if let Some(a) = live.choose(&mut self.rng) {
                    let cpu = self.rng.random_range(3..97);
                    let tokens = self.rng.random_range(200..9000);
                    self.ev(
                        "agent.heartbeat",
                        json!({"id": a.id, "ts": now_ms(), "cpu": cpu, "tokens_per_min": tokens}),
                        out,
                    );
                }
            }
            30..40 => {
                if let Some(a) = live.choose(&mut self.rng) {
                    let status = ["working", "working", "idle", "waiting_approval", "error"]
                        .choose(&mut self.rng)
                        .copied()
                        .unwrap_or("idle");
                    let task = self.tickets.choose(&mut self.rng).map(|t| t.id.clone());
                    self.ev(
                        "agent.status_changed",
                        json!({"id": a.id, "status": status, "current_ticket": task}),
                        out,
                    );
                    if let Some(ag) = self.agents.iter_mut().find(|x| x.id == a.id) {
                        ag.status = status.to_owned();
                    }
                }
            }
            40..52 => {
                let movable: Vec<usize> = (0..self.tickets.len())
                    .filter(|i| self.tickets[*i].state != "done")
                    .collect();
                if let Some(&i) = movable.choose(&mut self.rng) {
                    let at = COLUMNS
                        .iter()
                        .position(|c| *c == self.tickets[i].state)
                        .unwrap_or(0);
                    let next = COLUMNS[(at + 1).min(COLUMNS.len() - 1)];
                    let by = live.choose(&mut self.rng).map(|a| a.name.clone());
                    self.ev(
                        "ticket.moved",
                        json!({"id": self.tickets[i].id, "state": next, "moved_by": by}),
                        out,
                    );
                    self.tickets[i].state = next.to_owned();
                }
                self.prune_done(out);
            }
            52..64 => {
                let active: Vec<String> = self
                    .tickets
                    .iter()
                    .filter(|t| t.state == "in_progress" || t.state == "review")
                    .map(|t| t.id.clone())
                    .collect();
                if let (Some(t), Some(a)) =
                    (active.choose(&mut self.rng), live.choose(&mut self.rng))
                {
                    let what = TIMELINE.choose(&mut self.rng).copied().unwrap_or("");
                    self.ev(
                        "ticket.event_added",
                        json!({"id": t, "event": {"ts": now_ms(), "actor": a.name, "text": format!("{} {what}", a.name)}}),
                        out,
                    );
                }
            }
            64..69 => {
                let title = TICKETS.choose(&mut self.rng).copied().unwrap_or(TICKETS[0]);
                self.create_ticket(title, "backlog", out);
            }
            69..75 => {
                let candidates: Vec<usize> = (0..self.tickets.len())
                    .filter(|i| matches!(self.tickets[*i].state.as_str(), "in_progress" | "review"))
                    .collect();
                if let Some(&i) = candidates.choose(&mut self.rng) {
                    let number = match self.tickets[i].pr {
                        Some(n) => n,
                        None => {
                            self.next_pr += 1;
                            self.tickets[i].pr = Some(self.next_pr);
                            self.next_pr
                        }
                    };
                    let status = [
                        "open",
                        "checks_running",
                        "checks_passed",
                        "changes_requested",
                        "approved",
                    ]
                    .choose(&mut self.rng)
                    .copied()
                    .unwrap_or("open");
                    let (add, del) = (self.rng.random_range(4..900), self.rng.random_range(0..300));
                    self.ev(
                        "ticket.pr_updated",
                        json!({"id": self.tickets[i].id, "pr": {"number": number, "status": status,
                               "url": format!("https://git.example.com/acme/platform/pull/{number}"),
                               "additions": add, "deletions": del}}),
                        out,
                    );
                }
            }
            75..90 => {
                let open: Vec<String> = self
                    .conversations
                    .iter()
                    .filter(|c| c.status != "resolved")
                    .map(|c| c.id.clone())
                    .collect();
                match open.choose(&mut self.rng) {
                    Some(c) => self.chat(c, out),
                    None => {
                        let c = self.create_conversation(out);
                        self.chat(&c, out);
                    }
                }
            }
            90..93 => {
                let c = self.create_conversation(out);
                self.chat(&c, out);
            }
            93..96 => {
                let escalated: Vec<String> = self
                    .conversations
                    .iter()
                    .filter(|c| c.status == "escalated")
                    .map(|c| c.id.clone())
                    .collect();
                if escalated.len() > 2 {
                    if let Some(c) = escalated.choose(&mut self.rng) {
                        self.ev(
                            "conversation.resolved",
                            json!({"id": c, "resolved_by": "support-team"}),
                            out,
                        );
                        if let Some(conv) = self.conversations.iter_mut().find(|x| x.id == *c) {
                            conv.status = "resolved".into();
                        }
                    }
                }
            }
            96..98 => {
                if self.pending.len() > 5 {
                    let id = self.pending.remove(0);
                    self.ev(
                        "approval.decided",
                        json!({"id": id, "decision": "approved", "decided_by": "ops-oncall", "reason": "approved by the on-call engineer"}),
                        out,
                    );
                    self.decided.0 += 1;
                }
            }
            _ => {
                let (title, body, level) = [
                    (
                        "Deploy finished",
                        "billing-service v2.13.4 is live in production.",
                        "info",
                    ),
                    (
                        "Error rate above 2%",
                        "api-gateway 5xx rate is 2.4% over 5 minutes.",
                        "warning",
                    ),
                    (
                        "Nightly ETL finished",
                        "Loaded 1.8M rows in 41 minutes.",
                        "info",
                    ),
                    (
                        "Budget alert",
                        "LLM spend reached 80% of this month's budget.",
                        "warning",
                    ),
                ]
                .choose(&mut self.rng)
                .copied()
                .unwrap_or(("Deploy finished", "", "info"));
                self.notify(title, body, level, json!(null), out);
            }
        }
    }
}
