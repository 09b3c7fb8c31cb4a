//! Domain vocabulary: entity kinds, event types, and the [`Change`]s an event makes.
//!
//! [`changes_for`] is the one place that says what a native event does to the
//! materialised state. It is pure and total: any input yields either changes or a
//! [`DomainError`] naming the event type and the field that was wrong.
//!
//! The rules read off an entity's fields ("is this approval pending", "is this
//! conversation escalated", "which page shows this kind") live in [`rules`] and are
//! re-exported here; the UI gets the same rules from the constants exported with the
//! TypeScript declarations (the `ts` feature), never from a copy.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::fmt;
use std::str::FromStr;

mod rules;
pub use rules::*;

/// JSON object, the shape of every entity and patch.
pub type Object = Map<String, Value>;

/// The kinds of entity a Pulse client keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(rename_all = "lowercase")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum EntityKind {
    /// An AI agent (status, heartbeat, current work).
    Agent,
    /// A ticket or task on the kanban board.
    Ticket,
    /// An item waiting for a human decision.
    Approval,
    /// A conversation, possibly escalated to a human.
    Conversation,
    /// A chat message inside a conversation.
    Message,
    /// A notification for the user.
    Notification,
    /// A stats block (id = its scope: `tasks`, `approvals`, `conversations`, `agents`…).
    Stats,
}

impl EntityKind {
    /// Every kind, in display order.
    pub const ALL: [EntityKind; 7] = [
        EntityKind::Agent,
        EntityKind::Ticket,
        EntityKind::Approval,
        EntityKind::Conversation,
        EntityKind::Message,
        EntityKind::Notification,
        EntityKind::Stats,
    ];

    /// The lowercase wire name (`"approval"`).
    pub fn as_str(self) -> &'static str {
        match self {
            EntityKind::Agent => "agent",
            EntityKind::Ticket => "ticket",
            EntityKind::Approval => "approval",
            EntityKind::Conversation => "conversation",
            EntityKind::Message => "message",
            EntityKind::Notification => "notification",
            EntityKind::Stats => "stats",
        }
    }
}

impl fmt::Display for EntityKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for EntityKind {
    type Err = DomainError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        EntityKind::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| DomainError::new(s, format!("unknown entity kind `{s}`")))
    }
}

/// One entity as stored and as sent in snapshots.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Entity {
    /// What it is.
    pub kind: EntityKind,
    /// Its id, unique within its kind and tenant.
    pub id: String,
    /// All of its fields, including ones Pulse does not know (kept, never dropped).
    #[cfg_attr(feature = "ts", ts(type = "Record<string, unknown>"))]
    pub data: Object,
}

/// What applying one event does to one entity. Sent to the UI and the notifier.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Change {
    /// Insert or replace the whole entity.
    Upsert {
        /// Kind of the entity.
        kind: EntityKind,
        /// Id of the entity.
        id: String,
        /// The full record.
        data: Object,
    },
    /// Merge these top-level fields into the entity (creating it if missing).
    Patch {
        /// Kind of the entity.
        kind: EntityKind,
        /// Id of the entity.
        id: String,
        /// Fields to set.
        data: Object,
    },
    /// Append `item` to the array field `field` of the entity (e.g. a ticket timeline).
    Append {
        /// Kind of the entity.
        kind: EntityKind,
        /// Id of the entity.
        id: String,
        /// Array field to append to.
        field: String,
        /// The new element.
        item: Value,
    },
    /// Remove the entity.
    Delete {
        /// Kind of the entity.
        kind: EntityKind,
        /// Id of the entity.
        id: String,
    },
}

impl Change {
    /// Kind of the entity this change touches.
    pub fn kind(&self) -> EntityKind {
        match self {
            Change::Upsert { kind, .. }
            | Change::Patch { kind, .. }
            | Change::Append { kind, .. }
            | Change::Delete { kind, .. } => *kind,
        }
    }

    /// Id of the entity this change touches.
    pub fn id(&self) -> &str {
        match self {
            Change::Upsert { id, .. }
            | Change::Patch { id, .. }
            | Change::Append { id, .. }
            | Change::Delete { id, .. } => id,
        }
    }

    /// Apply this change to the current value of its entity (`None` = absent).
    /// Returns the new value (`None` = deleted). Pure; shared by every store.
    pub fn apply_to(&self, current: Option<Object>) -> Option<Object> {
        match self {
            Change::Upsert { data, .. } => Some(data.clone()),
            Change::Patch { id, data, .. } => {
                let mut obj = current.unwrap_or_else(|| {
                    let mut o = Object::new();
                    o.insert("id".into(), Value::String(id.clone()));
                    o
                });
                for (k, v) in data {
                    obj.insert(k.clone(), v.clone());
                }
                Some(obj)
            }
            Change::Append {
                id, field, item, ..
            } => {
                let mut obj = current.unwrap_or_else(|| {
                    let mut o = Object::new();
                    o.insert("id".into(), Value::String(id.clone()));
                    o
                });
                let slot = obj
                    .entry(field.clone())
                    .or_insert_with(|| Value::Array(Vec::new()));
                if !slot.is_array() {
                    *slot = Value::Array(Vec::new());
                }
                if let Value::Array(items) = slot {
                    items.push(item.clone());
                    if items.len() > MAX_APPENDED_ITEMS {
                        let excess = items.len() - MAX_APPENDED_ITEMS;
                        items.drain(..excess);
                    }
                }
                Some(obj)
            }
            Change::Delete { .. } => None,
        }
    }

    /// Whether [`Change::apply_to`] would give `current` back unchanged: a patch
    /// whose every field already has that value in an existing entity, an upsert of
    /// exactly the current value, a delete of an absent entity. An append always
    /// changes its entity. Lets a store skip re-encoding and rewriting an entity.
    pub fn is_noop_on(&self, current: Option<&Object>) -> bool {
        match (self, current) {
            (Change::Patch { data, .. }, Some(obj)) => {
                data.iter().all(|(k, v)| obj.get(k) == Some(v))
            }
            (Change::Upsert { data, .. }, Some(obj)) => data == obj,
            (Change::Delete { .. }, None) => true,
            _ => false,
        }
    }
}

/// An array field grown by [`Change::Append`] keeps at most this many (newest) items.
pub const MAX_APPENDED_ITEMS: usize = 200;

macro_rules! event_types {
    ($( $(#[$doc:meta])* $variant:ident = $name:literal ),* $(,)?) => {
        /// Every event type of the native protocol.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum EventType {
            $( $(#[$doc])* $variant, )*
        }

        impl EventType {
            /// Every event type.
            pub const ALL: &'static [EventType] = &[$(EventType::$variant),*];

            /// The wire name (`"approval.created"`).
            pub fn as_str(self) -> &'static str {
                match self { $(EventType::$variant => $name,)* }
            }
        }

        impl FromStr for EventType {
            type Err = DomainError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $($name => Ok(EventType::$variant),)*
                    other => Err(DomainError::new(other, format!("unknown event type `{other}`"))),
                }
            }
        }
    };
}

event_types! {
    /// An agent appeared or its full record changed. `data`: the agent.
    AgentUpserted = "agent.upserted",
    /// `data`: `{id, status, ...}`.
    AgentStatusChanged = "agent.status_changed",
    /// `data`: `{id, ts?, ...}`; sets `last_heartbeat`.
    AgentHeartbeat = "agent.heartbeat",
    /// `data`: `{id, reason?}`; status becomes `terminated`.
    AgentTerminated = "agent.terminated",
    /// `data`: `{stats}`: the agents stats block.
    AgentStats = "agent.stats",
    /// `data`: the ticket.
    TicketCreated = "ticket.created",
    /// `data`: `{id, ...fields}`.
    TicketUpdated = "ticket.updated",
    /// `data`: `{id, state}`: moved to another kanban column.
    TicketMoved = "ticket.moved",
    /// `data`: `{id}`.
    TicketDeleted = "ticket.deleted",
    /// `data`: `{id, event}`: appended to the ticket's `timeline`.
    TicketEventAdded = "ticket.event_added",
    /// `data`: `{id, pr}`: the ticket's pull request changed.
    TicketPrUpdated = "ticket.pr_updated",
    /// `data`: the approval (status `pending` unless given).
    ApprovalCreated = "approval.created",
    /// `data`: `{id, ...fields}`.
    ApprovalUpdated = "approval.updated",
    /// `data`: `{id, decision: "approved"|"rejected"|"responded", decided_by?, reason?}`
    /// (`responded`: answered in words, as a LangGraph interrupt allows).
    ApprovalDecided = "approval.decided",
    /// `data`: `{id}`.
    ApprovalDeleted = "approval.deleted",
    /// `data`: the conversation.
    ConversationCreated = "conversation.created",
    /// `data`: `{id, ...fields}`.
    ConversationUpdated = "conversation.updated",
    /// `data`: `{id, reason?, ...}`; status becomes `escalated`.
    ConversationEscalated = "conversation.escalated",
    /// `data`: `{id, ...}`; status becomes `resolved`.
    ConversationResolved = "conversation.resolved",
    /// `data`: the message (`id`, `conversation_id`, `author`, `text`…).
    ChatMessage = "chat.message",
    /// `data`: the notification.
    NotificationNew = "notification.new",
    /// `data`: `{id}`; marks it read.
    NotificationRead = "notification.read",
    /// `data`: `{scope, stats}`: a stats block (`tasks`, `approvals`, `conversations`, `agents`).
    StatsUpdated = "stats.updated",
}

impl fmt::Display for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why an event could not be turned into changes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("event `{event_type}`: {message}")]
pub struct DomainError {
    /// The event type as received.
    pub event_type: String,
    /// What was wrong, for a person.
    pub message: String,
}

impl DomainError {
    fn new(event_type: &str, message: impl Into<String>) -> Self {
        DomainError {
            event_type: event_type.to_owned(),
            message: message.into(),
        }
    }
}

/// Read an id field (string or integer) from an object.
pub fn id_of(obj: &Object, field: &str) -> Option<String> {
    match obj.get(field)? {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn object(ty: EventType, data: &Value) -> Result<&Object, DomainError> {
    data.as_object()
        .ok_or_else(|| DomainError::new(ty.as_str(), "`data` must be a JSON object"))
}

fn required_id(ty: EventType, obj: &Object) -> Result<String, DomainError> {
    id_of(obj, "id").ok_or_else(|| {
        DomainError::new(
            ty.as_str(),
            "`data.id` must be a non-empty string or an integer",
        )
    })
}

fn required_str<'a>(ty: EventType, obj: &'a Object, field: &str) -> Result<&'a str, DomainError> {
    obj.get(field)
        .and_then(Value::as_str)
        .ok_or_else(|| DomainError::new(ty.as_str(), format!("`data.{field}` must be a string")))
}

fn optional_str(ty: EventType, obj: &Object, field: &str) -> Result<(), DomainError> {
    match obj.get(field) {
        None | Some(Value::Null) | Some(Value::String(_)) => Ok(()),
        Some(_) => Err(DomainError::new(
            ty.as_str(),
            format!("`data.{field}` must be a string when present"),
        )),
    }
}

/// The whole record carried by an upsert-style event, with `id` normalised to a string.
fn record(ty: EventType, obj: &Object) -> Result<(String, Object), DomainError> {
    let id = required_id(ty, obj)?;
    optional_str(ty, obj, "status")?;
    let mut data = obj.clone();
    data.insert("id".into(), Value::String(id.clone()));
    Ok((id, data))
}

/// Fields of a patch-style event without its `id`.
fn patch_fields(obj: &Object) -> Object {
    obj.iter()
        .filter(|(k, _)| k.as_str() != "id")
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

fn one(change: Change) -> Vec<Change> {
    vec![change]
}

/// What the event `event_type` with payload `data` (at time `ts`, ms since the Unix
/// epoch) does to the materialised state.
///
/// Unknown types and payloads of the wrong shape are a [`DomainError`]; nothing is
/// applied for them.
pub fn changes_for(event_type: &str, data: &Value, ts: i64) -> Result<Vec<Change>, DomainError> {
    let ty: EventType = event_type.parse()?;
    changes_for_type(ty, data, ts)
}

/// [`changes_for`] with an already parsed type.
pub fn changes_for_type(ty: EventType, data: &Value, ts: i64) -> Result<Vec<Change>, DomainError> {
    use EventType as T;
    let obj = object(ty, data)?;
    let stamp = Value::from(ts);
    let upsert =
        |kind: EntityKind, defaults: &[(&str, Value)]| -> Result<Vec<Change>, DomainError> {
            let (id, mut data) = record(ty, obj)?;
            for (k, v) in defaults {
                data.entry(k.to_string()).or_insert_with(|| v.clone());
            }
            data.entry("updated_at".to_string())
                .or_insert_with(|| stamp.clone());
            Ok(one(Change::Upsert { kind, id, data }))
        };
    let patch = |kind: EntityKind, extra: &[(&str, Value)]| -> Result<Vec<Change>, DomainError> {
        let id = required_id(ty, obj)?;
        let mut data = patch_fields(obj);
        for (k, v) in extra {
            data.insert(k.to_string(), v.clone());
        }
        data.insert("updated_at".into(), stamp.clone());
        Ok(one(Change::Patch { kind, id, data }))
    };
    let delete = |kind: EntityKind| -> Result<Vec<Change>, DomainError> {
        Ok(one(Change::Delete {
            kind,
            id: required_id(ty, obj)?,
        }))
    };
    let stats = |scope: &str, stats: &Value| -> Result<Vec<Change>, DomainError> {
        let block = stats
            .as_object()
            .ok_or_else(|| DomainError::new(ty.as_str(), "`data.stats` must be a JSON object"))?;
        let mut data = block.clone();
        data.insert("id".into(), Value::String(scope.to_owned()));
        data.insert("updated_at".into(), stamp.clone());
        Ok(one(Change::Upsert {
            kind: EntityKind::Stats,
            id: scope.to_owned(),
            data,
        }))
    };

    match ty {
        T::AgentUpserted => upsert(EntityKind::Agent, &[]),
        T::AgentStatusChanged => {
            required_str(ty, obj, "status")?;
            patch(EntityKind::Agent, &[])
        }
        T::AgentHeartbeat => {
            let at = obj.get("ts").cloned().unwrap_or_else(|| stamp.clone());
            if !(at.is_number() || at.is_string()) {
                return Err(DomainError::new(
                    ty.as_str(),
                    "`data.ts` must be a number or a string",
                ));
            }
            patch(EntityKind::Agent, &[("last_heartbeat", at)])
        }
        T::AgentTerminated => {
            optional_str(ty, obj, "reason")?;
            patch(EntityKind::Agent, &[("status", Value::from("terminated"))])
        }
        T::AgentStats => stats(
            "agents",
            obj.get("stats")
                .ok_or_else(|| DomainError::new(ty.as_str(), "`data.stats` is missing"))?,
        ),
        T::TicketCreated => upsert(EntityKind::Ticket, &[("state", Value::from("todo"))]),
        T::TicketUpdated => {
            optional_str(ty, obj, "state")?;
            patch(EntityKind::Ticket, &[])
        }
        T::TicketMoved => {
            required_str(ty, obj, "state")?;
            patch(EntityKind::Ticket, &[])
        }
        T::TicketDeleted => delete(EntityKind::Ticket),
        T::TicketEventAdded => {
            let id = required_id(ty, obj)?;
            let item = obj
                .get("event")
                .filter(|e| !e.is_null())
                .cloned()
                .ok_or_else(|| DomainError::new(ty.as_str(), "`data.event` is missing"))?;
            Ok(vec![
                Change::Append {
                    kind: EntityKind::Ticket,
                    id: id.clone(),
                    field: "timeline".into(),
                    item,
                },
                Change::Patch {
                    kind: EntityKind::Ticket,
                    id,
                    data: Object::from_iter([("updated_at".to_string(), stamp.clone())]),
                },
            ])
        }
        T::TicketPrUpdated => {
            if !obj.get("pr").is_some_and(Value::is_object) {
                return Err(DomainError::new(
                    ty.as_str(),
                    "`data.pr` must be a JSON object",
                ));
            }
            patch(EntityKind::Ticket, &[])
        }
        T::ApprovalCreated => upsert(EntityKind::Approval, &[("status", Value::from("pending"))]),
        T::ApprovalUpdated => {
            optional_str(ty, obj, "status")?;
            patch(EntityKind::Approval, &[])
        }
        T::ApprovalDecided => {
            let decision = required_str(ty, obj, "decision")?;
            if !APPROVAL_DECISIONS.contains(&decision) {
                return Err(DomainError::new(
                    ty.as_str(),
                    format!(
                        "`data.decision` must be \"approved\", \"rejected\" or \"responded\", not {decision:?}"
                    ),
                ));
            }
            optional_str(ty, obj, "reason")?;
            optional_str(ty, obj, "decided_by")?;
            let status = Value::from(decision);
            patch(
                EntityKind::Approval,
                &[("status", status), ("decided_at", stamp.clone())],
            )
        }
        T::ApprovalDeleted => delete(EntityKind::Approval),
        T::ConversationCreated => {
            upsert(EntityKind::Conversation, &[("status", Value::from("open"))])
        }
        T::ConversationUpdated => {
            optional_str(ty, obj, "status")?;
            patch(EntityKind::Conversation, &[])
        }
        T::ConversationEscalated => {
            optional_str(ty, obj, "reason")?;
            patch(
                EntityKind::Conversation,
                &[
                    ("status", Value::from("escalated")),
                    ("escalated_at", stamp.clone()),
                ],
            )
        }
        T::ConversationResolved => patch(
            EntityKind::Conversation,
            &[("status", Value::from("resolved"))],
        ),
        T::ChatMessage => {
            let (id, mut data) = record(ty, obj)?;
            data.entry("ts".to_string())
                .or_insert_with(|| stamp.clone());
            let mut changes = Vec::with_capacity(2);
            if let Some(conv) = id_of(obj, "conversation_id") {
                changes.push(Change::Patch {
                    kind: EntityKind::Conversation,
                    id: conv,
                    data: Object::from_iter([
                        ("last_message_at".to_string(), stamp.clone()),
                        ("updated_at".to_string(), stamp.clone()),
                    ]),
                });
            }
            changes.insert(
                0,
                Change::Upsert {
                    kind: EntityKind::Message,
                    id,
                    data,
                },
            );
            Ok(changes)
        }
        T::NotificationNew => upsert(EntityKind::Notification, &[("read", Value::Bool(false))]),
        T::NotificationRead => patch(EntityKind::Notification, &[("read", Value::Bool(true))]),
        T::StatsUpdated => {
            let scope = required_str(ty, obj, "scope")?;
            if scope.is_empty() {
                return Err(DomainError::new(
                    ty.as_str(),
                    "`data.scope` must not be empty",
                ));
            }
            stats(
                scope,
                obj.get("stats")
                    .ok_or_else(|| DomainError::new(ty.as_str(), "`data.stats` is missing"))?,
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn every_type_round_trips_its_name() {
        for ty in EventType::ALL {
            assert_eq!(ty.as_str().parse::<EventType>().unwrap(), *ty);
        }
        assert!("approval.exploded".parse::<EventType>().is_err());
    }

    #[test]
    fn approval_lifecycle() {
        let c = changes_for(
            "approval.created",
            &json!({"id": "a1", "title": "Deploy"}),
            5,
        )
        .unwrap();
        let v = c[0].apply_to(None).unwrap();
        assert_eq!(v["status"], "pending");
        assert_eq!(v["title"], "Deploy");
        let d = changes_for(
            "approval.decided",
            &json!({"id": "a1", "decision": "approved", "decided_by": "ann"}),
            9,
        )
        .unwrap();
        let v = d[0].apply_to(Some(v)).unwrap();
        assert_eq!(v["status"], "approved");
        assert_eq!(v["title"], "Deploy", "patch keeps other fields");
        assert_eq!(v["decided_at"], 9);
        let gone = changes_for("approval.deleted", &json!({"id": "a1"}), 10).unwrap();
        assert_eq!(gone[0].apply_to(Some(v)), None);
    }

    /// `is_noop_on` says true exactly when `apply_to` gives the value back unchanged.
    #[test]
    fn is_noop_on_agrees_with_apply_to() {
        let obj = |v: Value| v.as_object().unwrap().clone();
        let current = [
            None,
            Some(obj(json!({"id": "x", "a": 1, "b": [1]}))),
            Some(obj(json!({"id": "x"}))),
        ];
        let k = EntityKind::Agent;
        let id = "x".to_owned();
        let changes = [
            Change::Patch {
                kind: k,
                id: id.clone(),
                data: obj(json!({"a": 1})),
            },
            Change::Patch {
                kind: k,
                id: id.clone(),
                data: obj(json!({"a": 2})),
            },
            Change::Patch {
                kind: k,
                id: id.clone(),
                data: obj(json!({})),
            },
            Change::Patch {
                kind: k,
                id: id.clone(),
                data: obj(json!({"id": "x"})),
            },
            Change::Upsert {
                kind: k,
                id: id.clone(),
                data: obj(json!({"id": "x", "a": 1, "b": [1]})),
            },
            Change::Upsert {
                kind: k,
                id: id.clone(),
                data: obj(json!({"id": "x"})),
            },
            Change::Append {
                kind: k,
                id: id.clone(),
                field: "b".into(),
                item: json!(2),
            },
            Change::Delete {
                kind: k,
                id: id.clone(),
            },
        ];
        for c in &changes {
            for cur in &current {
                let same = c.apply_to(cur.clone()) == *cur;
                assert_eq!(c.is_noop_on(cur.as_ref()), same, "{c:?} on {cur:?}");
            }
        }
    }

    #[test]
    fn wrong_shapes_are_clear_errors() {
        let e = changes_for(
            "approval.decided",
            &json!({"id": "a1", "decision": "maybe"}),
            0,
        )
        .unwrap_err();
        assert!(e.message.contains("approved"), "{e}");
        let e = changes_for("ticket.moved", &json!({"id": 7, "state": 3}), 0).unwrap_err();
        assert!(e.message.contains("data.state"), "{e}");
        let e = changes_for("agent.upserted", &json!([1, 2]), 0).unwrap_err();
        assert!(e.message.contains("object"), "{e}");
        let e = changes_for("agent.upserted", &json!({"id": ""}), 0).unwrap_err();
        assert!(e.message.contains("data.id"), "{e}");
        assert!(changes_for("nope", &json!({}), 0).is_err());
    }

    #[test]
    fn numeric_ids_become_strings_and_unknown_fields_are_kept() {
        let c = changes_for("ticket.created", &json!({"id": 42, "custom": {"x": 1}}), 0).unwrap();
        assert_eq!(c[0].id(), "42");
        let v = c[0].apply_to(None).unwrap();
        assert_eq!(v["custom"]["x"], 1);
        assert_eq!(v["state"], "todo");
    }

    #[test]
    fn timeline_append_is_bounded() {
        let mut v = None;
        for i in 0..(MAX_APPENDED_ITEMS + 10) {
            let c = changes_for(
                "ticket.event_added",
                &json!({"id": "t", "event": {"n": i}}),
                0,
            )
            .unwrap();
            v = c[0].apply_to(v);
        }
        let items = v.unwrap()["timeline"].as_array().unwrap().clone();
        assert_eq!(items.len(), MAX_APPENDED_ITEMS);
        assert_eq!(items.last().unwrap()["n"], MAX_APPENDED_ITEMS + 9);
    }

    #[test]
    fn chat_message_touches_its_conversation() {
        let c = changes_for(
            "chat.message",
            &json!({"id": "m1", "conversation_id": "c1", "text": "hi"}),
            3,
        )
        .unwrap();
        assert_eq!(c.len(), 2);
        assert_eq!(c[0].kind(), EntityKind::Message);
        assert_eq!(c[1].kind(), EntityKind::Conversation);
        assert_eq!(c[1].id(), "c1");
    }

    #[test]
    fn stats_blocks_are_keyed_by_scope() {
        let c = changes_for(
            "stats.updated",
            &json!({"scope": "tasks", "stats": {"pending": 3}}),
            1,
        )
        .unwrap();
        assert_eq!(c[0].kind(), EntityKind::Stats);
        assert_eq!(c[0].id(), "tasks");
        let c = changes_for("agent.stats", &json!({"stats": {"active": 2}}), 1).unwrap();
        assert_eq!(c[0].id(), "agents");
    }
}
