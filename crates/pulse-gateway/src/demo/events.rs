//! The simulator's state changes, each emitting the events that announce it:
//! seeding an empty tenant, reloading from a snapshot, creating tickets,
//! approvals and conversations, escalating, chatting, notifying, stats.
//!
//! Invariants: an event that [`NewEvent::new`] refuses is counted in
//! `Sim::invalid` and logged, never sent; message and notification ids are
//! reused in rings of [`MESSAGE_RING`] and [`NOTIFICATION_RING`]; done tickets
//! beyond 15 are deleted.

use pulse_protocol::domain::EntityKind;
use pulse_protocol::rest::Snapshot;
use rand::rngs::StdRng;
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};

use super::catalogue::{
    AGENTS, AGENT_LINES, APPROVALS, COLUMNS, CUSTOMERS, CUSTOMER_LINES, MODELS, SUBJECTS, TICKETS,
};
use super::{num_suffix, Agent, Conversation, Sim, Ticket, MESSAGE_RING, NOTIFICATION_RING};
use crate::store::{now_ms, NewEvent};

impl Sim {
    pub(super) fn new(seed: u64, tenant: &str) -> Sim {
        Sim {
            rng: StdRng::seed_from_u64(seed),
            tenant: tenant.to_owned(),
            agents: Vec::new(),
            tickets: Vec::new(),
            pending: Vec::new(),
            decided: (0, 0),
            conversations: Vec::new(),
            next_ticket: 1001,
            next_approval: 1,
            next_conversation: 1,
            next_message: 1,
            next_notification: 1,
            next_pr: 4800,
            invalid: 0,
        }
    }

    pub(super) fn ev(&mut self, ty: &str, data: Value, out: &mut Vec<NewEvent>) {
        match NewEvent::new(ty, data, None, now_ms()) {
            Ok(e) => out.push(e),
            Err(e) => {
                self.invalid += 1;
                tracing::error!(error = %e, tenant = %self.tenant, "demo produced an invalid event");
            }
        }
    }

    /// Refresh the simulator's view from the tenant's materialised state.
    pub(super) fn load(&mut self, snap: &Snapshot) {
        let s = |v: &Value, k: &str| v.get(k).and_then(Value::as_str).unwrap_or("").to_owned();
        self.agents.clear();
        self.tickets.clear();
        self.pending.clear();
        self.conversations.clear();
        for e in &snap.entities {
            let v = Value::Object(e.data.clone());
            match e.kind {
                EntityKind::Agent => self.agents.push(Agent {
                    id: e.id.clone(),
                    name: s(&v, "name"),
                    status: s(&v, "status"),
                }),
                EntityKind::Ticket => {
                    self.next_ticket = self.next_ticket.max(num_suffix(&e.id) + 1);
                    self.tickets.push(Ticket {
                        id: e.id.clone(),
                        state: s(&v, "state"),
                        pr: v.pointer("/pr/number").and_then(Value::as_u64),
                    });
                }
                EntityKind::Approval => {
                    self.next_approval = self.next_approval.max(num_suffix(&e.id) + 1);
                    if s(&v, "status") == "pending" {
                        self.pending.push(e.id.clone());
                    }
                }
                EntityKind::Conversation => {
                    self.next_conversation = self.next_conversation.max(num_suffix(&e.id) + 1);
                    self.conversations.push(Conversation {
                        id: e.id.clone(),
                        customer: s(&v, "customer"),
                        status: s(&v, "status"),
                    });
                }
                EntityKind::Message => {
                    self.next_message = self.next_message.max(num_suffix(&e.id) + 1)
                }
                EntityKind::Notification => {
                    self.next_notification = self.next_notification.max(num_suffix(&e.id) + 1)
                }
                EntityKind::Stats => {}
            }
        }
        self.agents.retain(|a| !a.name.is_empty());
    }

    pub(super) fn seed(&mut self) -> Vec<NewEvent> {
        let mut out = Vec::new();
        let now = now_ms();
        for (i, (name, role)) in AGENTS.iter().enumerate() {
            let id = format!("agent-{:02}", i + 1);
            let status = ["working", "working", "idle", "working", "waiting_approval"]
                .choose(&mut self.rng)
                .copied()
                .unwrap_or("idle");
            let model = MODELS.choose(&mut self.rng).copied().unwrap_or(MODELS[0]);
            let completed = self.rng.random_range(3..180);
            let started_at = now - self.rng.random_range(600_000..86_400_000i64);
            self.ev(
                "agent.upserted",
                json!({"id": id, "name": name, "role": role, "status": status, "model": model,
                       "tasks_completed": completed, "last_heartbeat": now,
                       "started_at": started_at}),
                &mut out,
            );
            self.agents.push(Agent {
                id,
                name: (*name).to_owned(),
                status: status.to_owned(),
            });
        }
        for i in 0..40 {
            let state = COLUMNS[[0, 0, 1, 1, 1, 2, 2, 2, 3, 4][i % 10]];
            self.create_ticket(TICKETS[i], state, &mut out);
        }
        for _ in 0..3 {
            self.create_approval(&mut out);
        }
        for i in 0..8 {
            let conv = self.create_conversation(&mut out);
            if i % 3 == 0 {
                self.escalate(&conv, &mut out);
            }
            for _ in 0..2 {
                self.chat(&conv, &mut out);
            }
        }
        self.notify(
            "Demo workspace ready",
            "12 agents are online.",
            "info",
            json!(null),
            &mut out,
        );
        self.stats(&mut out);
        out
    }

    pub(super) fn create_ticket(&mut self, title: &str, state: &str, out: &mut Vec<NewEvent>) {
        let n = self.next_ticket;
        self.next_ticket += 1;
        let id = format!("tkt-{n}");
        let assignee = if state == "backlog" {
            Value::Null
        } else {
            self.agents
                .choose(&mut self.rng)
                .map_or(Value::Null, |a| json!(a.id))
        };
        let priority = ["low", "medium", "medium", "high", "urgent"]
            .choose(&mut self.rng)
            .copied()
            .unwrap_or("medium");
        let labels = [["bug"], ["feature"], ["chore"], ["customer"]]
            .choose(&mut self.rng)
            .copied()
            .unwrap_or(["bug"]);
        self.ev(
            "ticket.created",
            json!({"id": id, "key": format!("OPS-{n}"), "title": title, "state": state,
                   "priority": priority, "assignee": assignee, "labels": labels,
                   "created_at": now_ms()}),
            out,
        );
        self.tickets.push(Ticket {
            id,
            state: state.to_owned(),
            pr: None,
        });
    }

    pub(super) fn create_approval(&mut self, out: &mut Vec<NewEvent>) {
        let id = format!("apr-{}", self.next_approval);
        self.next_approval += 1;
        let (title, kind, risk) = *APPROVALS.choose(&mut self.rng).unwrap_or(&APPROVALS[0]);
        let agent = self.agents.choose(&mut self.rng).cloned();
        let ticket = self
            .tickets
            .iter()
            .filter(|t| t.state == "in_progress" || t.state == "review")
            .collect::<Vec<_>>()
            .choose(&mut self.rng)
            .map(|t| t.id.clone());
        let (agent_id, agent_name) =
            agent.map_or((Value::Null, String::new()), |a| (json!(a.id), a.name));
        self.ev(
            "approval.created",
            json!({"id": id, "title": title, "kind": kind, "risk": risk,
                   "requested_by": agent_id, "agent_name": agent_name, "ticket_id": ticket,
                   "description": format!("{agent_name} needs a human decision before it can continue."),
                   "status": "pending", "created_at": now_ms()}),
            out,
        );
        self.notify(
            &format!("Approval needed: {title}"),
            &format!("Requested by {agent_name}"),
            if risk == "high" { "warning" } else { "info" },
            json!({"kind": "approval", "id": id}),
            out,
        );
        self.pending.push(id);
    }

    pub(super) fn create_conversation(&mut self, out: &mut Vec<NewEvent>) -> String {
        let id = format!("conv-{}", self.next_conversation);
        self.next_conversation += 1;
        let customer = CUSTOMERS
            .choose(&mut self.rng)
            .copied()
            .unwrap_or(CUSTOMERS[0]);
        let subject = SUBJECTS
            .choose(&mut self.rng)
            .copied()
            .unwrap_or(SUBJECTS[0]);
        let agent = self
            .agents
            .iter()
            .filter(|a| a.name == "Nova" || a.name == "Vega")
            .collect::<Vec<_>>()
            .choose(&mut self.rng)
            .map(|a| a.id.clone());
        let channel = ["chat", "email", "chat"]
            .choose(&mut self.rng)
            .copied()
            .unwrap_or("chat");
        self.ev(
            "conversation.created",
            json!({"id": id, "customer": customer, "subject": subject, "channel": channel,
                   "agent": agent, "status": "open", "created_at": now_ms()}),
            out,
        );
        self.conversations.push(Conversation {
            id: id.clone(),
            customer: customer.to_owned(),
            status: "open".into(),
        });
        id
    }

    pub(super) fn escalate(&mut self, conv: &str, out: &mut Vec<NewEvent>) {
        let reason = [
            "customer asked for a human",
            "refund above the agent's limit",
            "negative sentiment detected",
            "legal question",
        ]
        .choose(&mut self.rng)
        .copied()
        .unwrap_or("customer asked for a human");
        self.ev(
            "conversation.escalated",
            json!({"id": conv, "reason": reason}),
            out,
        );
        let customer = self
            .conversations
            .iter_mut()
            .find(|c| c.id == conv)
            .map(|c| {
                c.status = "escalated".into();
                c.customer.clone()
            })
            .unwrap_or_default();
        self.notify(
            &format!("Escalation: {customer}"),
            reason,
            "critical",
            json!({"kind": "conversation", "id": conv}),
            out,
        );
    }

    pub(super) fn chat(&mut self, conv: &str, out: &mut Vec<NewEvent>) {
        let id = format!("msg-{}", (self.next_message - 1) % MESSAGE_RING + 1);
        self.next_message += 1;
        let customer = self
            .conversations
            .iter()
            .find(|c| c.id == conv)
            .map(|c| c.customer.clone())
            .unwrap_or_default();
        let from_customer = self.rng.random_bool(0.5);
        let (author, role, text) = if from_customer {
            (
                customer,
                "customer",
                CUSTOMER_LINES.choose(&mut self.rng).copied().unwrap_or(""),
            )
        } else {
            let name = self
                .agents
                .iter()
                .find(|a| a.name == "Nova" || a.name == "Vega")
                .map_or("Nova".to_owned(), |a| a.name.clone());
            (
                name,
                "agent",
                AGENT_LINES.choose(&mut self.rng).copied().unwrap_or(""),
            )
        };
        self.ev(
            "chat.message",
            json!({"id": id, "conversation_id": conv, "author": author, "role": role, "text": text}),
            out,
        );
    }

    pub(super) fn notify(
        &mut self,
        title: &str,
        body: &str,
        level: &str,
        link: Value,
        out: &mut Vec<NewEvent>,
    ) {
        let id = format!(
            "ntf-{}",
            (self.next_notification - 1) % NOTIFICATION_RING + 1
        );
        self.next_notification += 1;
        self.ev(
            "notification.new",
            json!({"id": id, "title": title, "body": body, "level": level, "link": link,
                   "read": false, "created_at": now_ms()}),
            out,
        );
    }

    pub(super) fn stats(&mut self, out: &mut Vec<NewEvent>) {
        let count = |state: &str| self.tickets.iter().filter(|t| t.state == state).count();
        let tasks = json!({"total": self.tickets.len(), "backlog": count("backlog"), "todo": count("todo"),
                           "in_progress": count("in_progress"), "review": count("review"), "done": count("done")});
        let approvals = json!({"pending": self.pending.len(), "approved": self.decided.0, "rejected": self.decided.1});
        let conv = |status: &str| {
            self.conversations
                .iter()
                .filter(|c| c.status == status)
                .count()
        };
        let conversations = json!({"total": self.conversations.len(), "open": conv("open"),
                                   "escalated": conv("escalated"), "resolved": conv("resolved")});
        let agent = |status: &str| self.agents.iter().filter(|a| a.status == status).count();
        let agents = json!({"total": self.agents.len(), "working": agent("working"), "idle": agent("idle"),
                            "waiting_approval": agent("waiting_approval"), "error": agent("error"),
                            "terminated": agent("terminated")});
        for (scope, stats) in [
            ("tasks", tasks),
            ("approvals", approvals),
            ("conversations", conversations),
            ("agents", agents),
        ] {
            self.ev(
                "stats.updated",
                json!({"scope": scope, "stats": stats}),
                out,
            );
        }
    }

    pub(super) fn prune_done(&mut self, out: &mut Vec<NewEvent>) {
        let done: Vec<String> = self
            .tickets
            .iter()
            .filter(|t| t.state == "done")
            .map(|t| t.id.clone())
            .collect();
        if done.len() > 15 {
            let id = done[0].clone();
            self.ev("ticket.deleted", json!({"id": id}), out);
            self.tickets.retain(|t| t.id != id);
        }
    }

    pub(super) fn escalation(&mut self, out: &mut Vec<NewEvent>) {
        let open: Vec<String> = self
            .conversations
            .iter()
            .filter(|c| c.status == "open")
            .map(|c| c.id.clone())
            .collect();
        let conv = match open.choose(&mut self.rng) {
            Some(c) => c.clone(),
            None => self.create_conversation(out),
        };
        self.chat(&conv, out);
        self.escalate(&conv, out);
    }
}
