//! Rules read off an entity's fields, one home each: Rust callers call these
//! functions, and the UI applies the same rules (`ui/src/lib/domain.ts`) from the
//! constants below, which the desktop app exports into its generated TypeScript.
//!
//! Invariants:
//! - status values compare ASCII-case-insensitively (`"PENDING"` is pending);
//! - a `status` that is absent or not a string counts as absent: an approval without
//!   one waits for a decision, a conversation without one is not escalated, an agent
//!   without one has not failed;
//! - only `read: true` marks a notification read; anything else (absent, `false`,
//!   `"yes"`, `1`) is unread;
//! - a stats block's figures ([`stats_figures`]) are its finite numbers, at the top
//!   level or one object down, each labelled by its key path; the record's own fields
//!   ([`STATS_RECORD_FIELDS`]: its id and update time) and anything that is not a
//!   number are no figures;
//! - a ticket's PR link ([`pr_link`]) is `pr.url` only when it is an `https://`
//!   URL (scheme in any case) with a host and no whitespace or control character;
//!   anything else is no link (never opened, shown as text at most);
//! - a ticket is active ([`is_active_ticket`]) when its `state` is one of
//!   [`ACTIVE_TICKET_STATES`] (ASCII case ignored);
//! - a ticket is done ([`is_done_ticket`]) when its `state` is one of
//!   [`DONE_TICKET_STATES`]; an agent is live ([`is_live_agent`]) unless its status
//!   is one of [`ENDED_AGENT_STATUSES`], working when one of
//!   [`WORKING_AGENT_STATUSES`]; a conversation is open ([`is_open_conversation`])
//!   unless its status is one of [`RESOLVED_CONVERSATION_STATUSES`] (ASCII case
//!   ignored in each);
//! - a count whose entities the cache holds none of is read from a stats block
//!   ([`count_from_stats`], [`STATS_COUNTS`]): the first of its sources whose block
//!   has a non-negative integer at the pointer; none: `None` (the count is 0);
//! - [`page_of`] is total over [`EntityKind`]; [`page_of_kind_name`] reads a kind
//!   name case-insensitively and answers `None` for a name that is no kind.
//!
//! `crates/pulse-protocol/tests/domain_cases.json` is one table of cases that a Rust
//! test and a UI test both run, so the two sides cannot drift apart.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{EntityKind, Object};

/// Statuses of an approval that still waits for a decision (an absent status too).
pub const PENDING_APPROVAL_STATUSES: &[&str] = &["pending"];

/// The decisions an `approval.decided` event may carry (its status after it).
/// `responded`: answered in words (a LangGraph interrupt's `response`).
pub const APPROVAL_DECISIONS: &[&str] = &["approved", "rejected", "responded"];

/// Status of an approval whose question was answered outside Pulse (a LangGraph
/// interrupt resumed from Studio or another client): no longer pending.
pub const DECIDED_ELSEWHERE: &str = "decided_elsewhere";

/// Fields an approval may say since when it waits, first found wins: ms since the
/// Unix epoch (a whole number) or an RFC 3339 date-time (text, as seed 003's
/// platform writes them). `requested_at` is what the LangGraph source sets.
pub const APPROVAL_SINCE_FIELDS: &[&str] = &["requested_at", "created_at"];

/// Since when an approval waits (ms since the Unix epoch): the first of
/// [`APPROVAL_SINCE_FIELDS`] that is a whole number or an RFC 3339 date-time
/// ([`crate::time::parse_rfc3339_ms`]); `None` when none is.
pub fn approval_waiting_since(data: &Object) -> Option<i64> {
    APPROVAL_SINCE_FIELDS
        .iter()
        .find_map(|f| match data.get(*f)? {
            Value::Number(n) => n.as_i64().or_else(|| {
                // A whole number written with a fraction (`1.7e12`) is still whole.
                n.as_f64()
                    .filter(|f| f.fract() == 0.0 && f.abs() < 9.0e15)
                    .map(|f| f as i64)
            }),
            Value::String(s) => crate::time::parse_rfc3339_ms(s),
            _ => None,
        })
}

/// Statuses of a conversation escalated to a human.
pub const ESCALATED_STATUSES: &[&str] = &["escalated"];

/// Statuses of an agent that failed.
pub const FAILED_AGENT_STATUSES: &[&str] = &["failed", "error"];

/// Fields a stats block carries as a record, not as figures: its id (the block's
/// scope) and when it was last updated.
pub const STATS_RECORD_FIELDS: &[&str] = &["id", "updated_at"];

/// The labelled figures of a stats block: each number at the top level (label
/// `["total"]`) or inside a top-level object (label `["by_state", "todo"]`); their order
/// is not part of the rule. The record's own fields ([`STATS_RECORD_FIELDS`]), strings,
/// booleans, arrays and deeper objects are left out.
pub fn stats_figures(data: &Object) -> Vec<(Vec<String>, f64)> {
    let mut out = Vec::new();
    for (k, v) in data {
        if STATS_RECORD_FIELDS.contains(&k.as_str()) {
            continue;
        }
        match v {
            Value::Number(n) => out.extend(n.as_f64().map(|n| (vec![k.clone()], n))),
            Value::Object(inner) => {
                for (k2, v2) in inner {
                    if let Some(n) = v2.as_f64() {
                        out.push((vec![k.clone(), k2.clone()], n));
                    }
                }
            }
            _ => {}
        }
    }
    out
}

/// The URL a ticket's pull request opens in the browser: `pr.url` when it is an
/// `https://` URL with a host and no whitespace or control character (`None`
/// otherwise: a PR link never opens another scheme).
pub fn pr_link(data: &Object) -> Option<&str> {
    let url = data.get("pr")?.get("url")?.as_str()?;
    let scheme = url.get(..8)?;
    let rest = &url[8..];
    let host = rest.split(['/', '?', '#']).next().unwrap_or("");
    let clean = !url.chars().any(|c| c.is_whitespace() || c.is_control());
    (scheme.eq_ignore_ascii_case("https://") && !host.is_empty() && !host.starts_with('@') && clean)
        .then_some(url)
}

/// States of a ticket being worked on (a board's "in progress", seed 003's running
/// executions).
pub const ACTIVE_TICKET_STATES: &[&str] = &["in_progress", "running"];

/// Whether a ticket with these fields is being worked on.
pub fn is_active_ticket(data: &Object) -> bool {
    status_in(
        data.get("state").and_then(Value::as_str),
        ACTIVE_TICKET_STATES,
    )
}

/// States of a ticket that is finished (the board's "done"): every other ticket is open.
pub const DONE_TICKET_STATES: &[&str] = &["done"];

/// Whether a ticket with these fields is finished ([`DONE_TICKET_STATES`], ASCII case
/// ignored).
pub fn is_done_ticket(data: &Object) -> bool {
    status_in(
        data.get("state").and_then(Value::as_str),
        DONE_TICKET_STATES,
    )
}

/// Statuses of an agent that has ended: it is no longer one of the tenant's agents
/// (the overview's count leaves it out).
pub const ENDED_AGENT_STATUSES: &[&str] = &["terminated"];

/// Whether an agent with these fields is still one of the tenant's agents.
pub fn is_live_agent(data: &Object) -> bool {
    !status_in(status_of(data), ENDED_AGENT_STATUSES)
}

/// Statuses of an agent at work.
pub const WORKING_AGENT_STATUSES: &[&str] = &["working"];

/// Whether an agent with these fields is at work.
pub fn is_working_agent(data: &Object) -> bool {
    status_in(status_of(data), WORKING_AGENT_STATUSES)
}

/// Statuses of a conversation that is closed: every other conversation is open.
pub const RESOLVED_CONVERSATION_STATUSES: &[&str] = &["resolved"];

/// Whether a conversation with these fields is open (not resolved).
pub fn is_open_conversation(data: &Object) -> bool {
    !status_in(status_of(data), RESOLVED_CONVERSATION_STATUSES)
}

/// One entry of [`STATS_COUNTS`]: a count's name, the kind it counts, and its
/// sources, (stats block id, JSON pointer), tried in order.
pub type StatsCount = (
    &'static str,
    EntityKind,
    &'static [(&'static str, &'static str)],
);

/// Where each badge count is read from when the cache holds none of the entities
/// it counts (a server that sends only stats blocks: seeds 001 and 003): the
/// count, the kind it counts, and its sources, (stats block id, JSON pointer),
/// tried in order.
pub const STATS_COUNTS: &[StatsCount] = &[
    (
        "pending_approvals",
        EntityKind::Approval,
        &[("approvals", "/pending")],
    ),
    (
        "open_escalations",
        EntityKind::Conversation,
        &[("conversations", "/escalated")],
    ),
    (
        "unread_notifications",
        EntityKind::Notification,
        &[("notifications", "/unread")],
    ),
    (
        "tasks_in_progress",
        EntityKind::Ticket,
        &[
            ("tasks", "/in_progress"),
            ("dashboard", "/executions/running"),
        ],
    ),
    ("tasks_total", EntityKind::Ticket, &[("tasks", "/total")]),
    ("tasks_done", EntityKind::Ticket, &[("tasks", "/done")]),
    (
        "open_conversations",
        EntityKind::Conversation,
        &[("conversations", "/open")],
    ),
];

/// The count `count` (a name in [`STATS_COUNTS`]) as the stats blocks give it;
/// `block(id)` is the block held with that id. `None` when no source has it.
pub fn count_from_stats<'a>(
    count: &str,
    block: impl Fn(&str) -> Option<&'a Object>,
) -> Option<u64> {
    let (_, _, sources) = STATS_COUNTS.iter().find(|(name, _, _)| *name == count)?;
    sources.iter().find_map(|(id, pointer)| {
        let path = pointer.strip_prefix('/')?;
        let (first, rest) = path.split_once('/').map_or((path, ""), |(f, r)| (f, r));
        let top = block(id)?.get(first)?;
        let n = if rest.is_empty() {
            top
        } else {
            top.pointer(&format!("/{rest}"))?
        };
        n.as_u64().or_else(|| {
            n.as_f64()
                .filter(|f| *f >= 0.0 && f.fract() == 0.0 && *f < 9e15)
                .map(|f| f as u64)
        })
    })
}

/// The `status` field, when it is a string.
pub fn status_of(data: &Object) -> Option<&str> {
    data.get("status").and_then(Value::as_str)
}

/// Whether `status` is one of `values`, ignoring ASCII case (`None` is none of them).
pub fn status_in(status: Option<&str>, values: &[&str]) -> bool {
    status.is_some_and(|s| values.iter().any(|v| s.eq_ignore_ascii_case(v)))
}

/// Whether an approval with these fields still waits for a decision.
pub fn is_pending_approval(data: &Object) -> bool {
    let status = status_of(data);
    status.is_none() || status_in(status, PENDING_APPROVAL_STATUSES)
}

/// Whether a conversation with these fields is escalated.
pub fn is_escalated(data: &Object) -> bool {
    status_in(status_of(data), ESCALATED_STATUSES)
}

/// Whether an agent with these fields has failed.
pub fn is_failed_agent(data: &Object) -> bool {
    status_in(status_of(data), FAILED_AGENT_STATUSES)
}

/// Whether a notification with these fields is unread.
pub fn is_unread(data: &Object) -> bool {
    data.get("read") != Some(&Value::Bool(true))
}

/// The app's pages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(rename_all = "snake_case")]
pub enum Page {
    /// Stats badges.
    Overview,
    /// Agents.
    Agents,
    /// Kanban board.
    Board,
    /// Approvals queue.
    Approvals,
    /// Conversations.
    Conversations,
    /// Notification centre.
    Notifications,
    /// Settings.
    Settings,
}

impl Page {
    /// The wire name (`"approvals"`).
    pub fn as_str(self) -> &'static str {
        match self {
            Page::Overview => "overview",
            Page::Agents => "agents",
            Page::Board => "board",
            Page::Approvals => "approvals",
            Page::Conversations => "conversations",
            Page::Notifications => "notifications",
            Page::Settings => "settings",
        }
    }
}

/// The page that shows entities of `kind`.
pub fn page_of(kind: EntityKind) -> Page {
    match kind {
        EntityKind::Agent | EntityKind::Stats => Page::Agents,
        EntityKind::Ticket => Page::Board,
        EntityKind::Approval => Page::Approvals,
        EntityKind::Conversation | EntityKind::Message => Page::Conversations,
        EntityKind::Notification => Page::Notifications,
    }
}

/// The kind named `name`, ignoring ASCII case (`None`: no such kind).
pub fn kind_named(name: &str) -> Option<EntityKind> {
    EntityKind::ALL
        .into_iter()
        .find(|k| k.as_str().eq_ignore_ascii_case(name))
}

/// The page that shows entities of the kind named `name` (as a server's link gives
/// it); `None` when `name` is no kind.
pub fn page_of_kind_name(name: &str) -> Option<Page> {
    kind_named(name).map(page_of)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(v: Value) -> Object {
        v.as_object().cloned().unwrap()
    }

    #[test]
    fn every_kind_has_a_page_and_parses_back_in_any_case() {
        for k in EntityKind::ALL {
            assert_eq!(kind_named(&k.as_str().to_uppercase()), Some(k));
            assert_eq!(page_of_kind_name(k.as_str()), Some(page_of(k)));
        }
        assert_eq!(page_of_kind_name("widget"), None);
    }

    #[test]
    fn page_names_match_their_json() {
        for p in [Page::Overview, Page::Approvals, Page::Notifications] {
            assert_eq!(serde_json::to_value(p).unwrap(), json!(p.as_str()));
        }
    }

    #[test]
    fn status_of_ignores_non_strings() {
        assert_eq!(status_of(&obj(json!({"status": 3}))), None);
        assert!(is_pending_approval(&obj(json!({"status": 3}))));
    }
}
