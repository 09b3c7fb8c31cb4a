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

use std::sync::Arc;
use std::time::Duration;

use pulse_protocol::domain::EntityKind;
use pulse_protocol::rest::Snapshot;
use rand::rngs::StdRng;
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};
use tokio::sync::watch;
use tokio::time::Instant;

use crate::hub::Hub;
use crate::store::{now_ms, NewEvent};
use crate::DemoConfig;

/// Message ids are reused after this many messages.
pub const MESSAGE_RING: u64 = 1000;
/// Notification ids are reused after this many notifications.
pub const NOTIFICATION_RING: u64 = 200;

const COLUMNS: [&str; 5] = ["backlog", "todo", "in_progress", "review", "done"];

const AGENTS: [(&str, &str); 12] = [
    ("Atlas", "code-review"),
    ("Nova", "customer-support"),
    ("Orion", "deploy"),
    ("Juniper", "triage"),
    ("Sable", "qa"),
    ("Quill", "docs"),
    ("Vega", "customer-support"),
    ("Ember", "billing"),
    ("Cobalt", "infra"),
    ("Lyra", "data"),
    ("Onyx", "security"),
    ("Pike", "code-review"),
];

const MODELS: [&str; 4] = [
    "claude-sonnet-4",
    "gpt-4.1",
    "claude-haiku-4",
    "llama-3.3-70b",
];

const TICKETS: [&str; 44] = [
    "Checkout fails for EU cards with 3-D Secure",
    "Add retry with backoff to webhook delivery",
    "Migrate invoices table to partitioned layout",
    "Flaky test: test_refund_partial_amount",
    "Dark mode contrast issues on settings page",
    "Rate limiter counts OPTIONS preflight requests",
    "Upgrade OpenSSL in base image",
    "Export usage report as CSV",
    "Slack alert fires twice on deploy",
    "Search ignores accented characters",
    "Add audit log for role changes",
    "Reduce cold start of billing lambda",
    "Password reset email lands in spam",
    "Kanban drag and drop loses order on refresh",
    "Cache tenant settings in the API gateway",
    "Broken link in onboarding checklist",
    "Paginate /v2/customers endpoint",
    "Memory leak in PDF renderer worker",
    "SSO login loops for Okta tenants",
    "Add idempotency keys to payouts API",
    "Translate help centre into German",
    "Timeouts calling the tax service",
    "Show agent cost per ticket",
    "Backfill missing timezone on 1.2k accounts",
    "Nightly ETL job exceeds its window",
    "Support bulk ticket assignment",
    "CSP blocks the analytics snippet",
    "Trial expiry banner shows wrong date",
    "Move secrets from env files to the vault",
    "Add p99 latency panel to the API dashboard",
    "Duplicate charges on plan upgrade",
    "Mobile layout breaks on the invoices page",
    "Rotate TLS certificates for edge proxies",
    "Webhook signature check fails on large bodies",
    "Improve error message for expired invite links",
    "Deprecate the v1 reports endpoint",
    "Index orders by (tenant_id, created_at)",
    "Agent handoff drops conversation context",
    "Add SAML group to role mapping",
    "Autoscale queue workers on backlog depth",
    "Stale cache after a price change",
    "Document the public events API",
    "CSV import chokes on BOM",
    "Add unit tests for discount rules",
];

const APPROVALS: [(&str, &str, &str); 12] = [
    (
        "Deploy billing-service v2.14.0 to production",
        "deploy",
        "high",
    ),
    (
        "Run migration 0042_add_invoice_index on the primary",
        "data",
        "high",
    ),
    ("Refund $240.00 to customer #18231", "refund", "medium"),
    (
        "Grant write access on payments-api to a contractor",
        "access",
        "high",
    ),
    (
        "Send renewal reminder to 1,204 customers",
        "outreach",
        "medium",
    ),
    ("Scale api-gateway from 6 to 12 replicas", "infra", "medium"),
    ("Delete 37 stale feature branches", "repo", "low"),
    ("Rotate the Stripe restricted API key", "security", "high"),
    (
        "Issue a 20% goodwill credit to Northwind Ltd",
        "refund",
        "medium",
    ),
    (
        "Merge PR #4821 with failing optional checks",
        "repo",
        "medium",
    ),
    ("Purge CDN cache for docs.example.com", "infra", "low"),
    ("Close 112 tickets inactive for 90 days", "support", "low"),
];

const CUSTOMERS: [&str; 14] = [
    "Maria Lopez",
    "Kenji Watanabe",
    "Aisha Bello",
    "Tom Becker",
    "Priya Raman",
    "Lucas Martin",
    "Sofia Rossi",
    "Noah Williams",
    "Fatima Khan",
    "Jonas Berg",
    "Chloe Dubois",
    "Daniel Kim",
    "Elena Petrova",
    "Samuel Osei",
];

const SUBJECTS: [&str; 10] = [
    "Charged twice this month",
    "Cannot log in after password reset",
    "Export stuck at 99%",
    "Question about the enterprise plan",
    "API returns 429 constantly",
    "Invoice shows the wrong VAT number",
    "Data missing after migration",
    "How do I add a teammate?",
    "Webhook deliveries failing",
    "Cancel my subscription",
];

const CUSTOMER_LINES: [&str; 8] = [
    "Any update on this? It's blocking our month-end close.",
    "I tried that already, same result.",
    "Here is the request id: req_8f2c91d.",
    "This is the third time I'm asking.",
    "Thanks, that worked!",
    "Can I talk to a human, please?",
    "We're on the Business plan, if that matters.",
    "It started after yesterday's update.",
];

const AGENT_LINES: [&str; 8] = [
    "I've checked your account and can see the issue.",
    "Could you share a screenshot of the error?",
    "I've reproduced it and opened a ticket with engineering.",
    "A fix is rolling out now; it should be live within the hour.",
    "I've applied a credit to your next invoice.",
    "Let me look into the logs for that request.",
    "I'm escalating this to a specialist who can help further.",
    "Could you try again now and let me know?",
];

const TIMELINE: [&str; 8] = [
    "picked up the ticket",
    "pushed 3 commits",
    "ran the test suite: 412 passed",
    "left a review comment",
    "opened a pull request",
    "requested changes",
    "reproduced the bug locally",
    "updated the ticket description",
];

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

impl Sim {
    fn new(seed: u64, tenant: &str) -> Sim {
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

    fn ev(&mut self, ty: &str, data: Value, out: &mut Vec<NewEvent>) {
        match NewEvent::new(ty, data, None, now_ms()) {
            Ok(e) => out.push(e),
            Err(e) => {
                self.invalid += 1;
                tracing::error!(error = %e, tenant = %self.tenant, "demo produced an invalid event");
            }
        }
    }

    /// Refresh the simulator's view from the tenant's materialised state.
    fn load(&mut self, snap: &Snapshot) {
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

    fn seed(&mut self) -> Vec<NewEvent> {
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

    fn create_ticket(&mut self, title: &str, state: &str, out: &mut Vec<NewEvent>) {
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

    fn create_approval(&mut self, out: &mut Vec<NewEvent>) {
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

    fn create_conversation(&mut self, out: &mut Vec<NewEvent>) -> String {
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

    fn escalate(&mut self, conv: &str, out: &mut Vec<NewEvent>) {
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

    fn chat(&mut self, conv: &str, out: &mut Vec<NewEvent>) {
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

    fn notify(
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

    fn stats(&mut self, out: &mut Vec<NewEvent>) {
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

    /// One ordinary step: usually one event, sometimes two.
    fn step(&mut self, out: &mut Vec<NewEvent>) {
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

    fn prune_done(&mut self, out: &mut Vec<NewEvent>) {
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

    fn escalation(&mut self, out: &mut Vec<NewEvent>) {
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

fn scaled(d: Duration, speed: f64) -> Duration {
    d.div_f64(speed.max(0.001))
}

/// Run the simulator for `cfg.tenant` until `stop` becomes true or closes.
pub async fn run(hub: Arc<Hub>, cfg: DemoConfig, mut stop: watch::Receiver<bool>) {
    let tenant = cfg.tenant.clone();
    let mut sim = Sim::new(cfg.seed, &tenant);
    match hub.snapshot(&tenant).await {
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
            if let Ok(snap) = hub.snapshot(&tenant).await {
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
