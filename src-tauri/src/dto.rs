//! Types that cross the IPC boundary, and their TypeScript declarations.
//!
//! The UI's `ui/src/lib/generated/types.ts` is generated from this module
//! ([`typescript_bindings`]); a test fails when the committed file is stale
//! (`UPDATE_GENERATED=1 cargo test -p pulse-desktop generated` rewrites it).
//! Core types are mirrored here rather than annotated in `pulse-core`, so the core
//! keeps no UI dependency; `From` conversions keep the two in step.

use pulse_core::app::{Counts, EntityUpdate, Shown};
use pulse_core::policy::{NotificationAction, NotificationKind};
use pulse_core::session::{ActionOutcome, ConnectionState, SessionStatus};
use pulse_core::store::{Action, OutboxEntry};
use pulse_protocol::domain::{Entity, EntityKind, Object};
use serde::{Deserialize, Serialize};
use ts_rs::TS;

/// An entity as the UI holds it.
#[derive(Debug, Clone, PartialEq, Serialize, TS)]
pub struct EntityDto {
    /// Its kind.
    #[ts(type = "EntityKind")]
    pub kind: EntityKind,
    /// Its id.
    pub id: String,
    /// All of its fields.
    #[ts(type = "Record<string, unknown>")]
    pub data: Object,
}

impl From<Entity> for EntityDto {
    fn from(e: Entity) -> Self {
        EntityDto {
            kind: e.kind,
            id: e.id,
            data: e.data,
        }
    }
}

/// The state of one entity after a change (`data: null` = deleted).
#[derive(Debug, Clone, PartialEq, Serialize, TS)]
pub struct EntityUpdateDto {
    /// Its kind.
    #[ts(type = "EntityKind")]
    pub kind: EntityKind,
    /// Its id.
    pub id: String,
    /// Its fields now, or null when deleted.
    #[ts(type = "Record<string, unknown> | null")]
    pub data: Option<Object>,
}

impl From<EntityUpdate> for EntityUpdateDto {
    fn from(u: EntityUpdate) -> Self {
        EntityUpdateDto {
            kind: u.kind,
            id: u.id,
            data: u.data,
        }
    }
}

/// Connection state for the indicator, from the session's status.
#[derive(Debug, Clone, PartialEq, Serialize, TS)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum ConnState {
    /// Opening the connection.
    Connecting {
        /// 1 for the first try.
        attempt: u32,
    },
    /// Up to date, changes arrive as they happen.
    Live,
    /// The socket is refused but REST works: data is polled.
    Polling {
        /// Why.
        reason: String,
    },
    /// Waiting before the next attempt.
    Reconnecting {
        /// Failed attempts so far.
        attempt: u32,
        /// When the next try starts, ms since the Unix epoch.
        retry_at_ms: i64,
        /// Why the last attempt failed.
        error: String,
    },
    /// Too many failures; Retry is offered, slow retries go on.
    Failed {
        /// Failed attempts so far.
        attempts: u32,
        /// When the next background try starts, ms.
        retry_at_ms: i64,
        /// Why the last attempt failed.
        error: String,
    },
    /// No valid credentials: the user must sign in.
    SignedOut {
        /// What to tell the user.
        message: String,
    },
    /// Not running.
    Stopped,
}

impl From<&ConnectionState> for ConnState {
    fn from(s: &ConnectionState) -> Self {
        match s {
            ConnectionState::Connecting { attempt } => ConnState::Connecting { attempt: *attempt },
            ConnectionState::Live => ConnState::Live,
            ConnectionState::Polling { reason } => ConnState::Polling {
                reason: reason.clone(),
            },
            ConnectionState::Reconnecting {
                attempt,
                retry_at_ms,
                error,
            } => ConnState::Reconnecting {
                attempt: *attempt,
                retry_at_ms: *retry_at_ms,
                error: error.clone(),
            },
            ConnectionState::Failed {
                attempts,
                retry_at_ms,
                error,
            } => ConnState::Failed {
                attempts: *attempts,
                retry_at_ms: *retry_at_ms,
                error: error.clone(),
            },
            ConnectionState::Unauthorized { message } => ConnState::SignedOut {
                message: message.clone(),
            },
            ConnectionState::Stopped => ConnState::Stopped,
        }
    }
}

/// Everything the connection indicator shows.
#[derive(Debug, Clone, PartialEq, Serialize, TS)]
pub struct ConnectionView {
    /// The state.
    pub state: ConnState,
    /// Last time the data was known fresh, ms since the Unix epoch.
    pub last_sync_ms: Option<i64>,
    /// The server's base URL (`null` before one is chosen).
    pub server: Option<String>,
    /// Whether this is the embedded demo gateway.
    pub demo: bool,
    /// What the server cannot guarantee, if anything.
    pub caveat: Option<String>,
}

impl ConnectionView {
    /// The view of `status` for `server`.
    pub fn of(status: &SessionStatus, server: Option<String>, demo: bool) -> Self {
        ConnectionView {
            state: (&status.state).into(),
            last_sync_ms: status.last_sync_ms,
            server,
            demo,
            caveat: status.caveat.clone(),
        }
    }

    /// Signed out before any session could start.
    pub fn signed_out(
        message: impl Into<String>,
        server: Option<String>,
        last_sync_ms: Option<i64>,
    ) -> Self {
        ConnectionView {
            state: ConnState::SignedOut {
                message: message.into(),
            },
            last_sync_ms,
            server,
            demo: false,
            caveat: None,
        }
    }
}

/// A user action, as the UI sends it (same JSON as the core's `Action`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum ActionDto {
    /// Approve an approval.
    Approve {
        /// Approval id.
        id: String,
        /// Why.
        #[serde(default)]
        reason: Option<String>,
    },
    /// Reject an approval.
    Reject {
        /// Approval id.
        id: String,
        /// Why.
        #[serde(default)]
        reason: Option<String>,
    },
    /// Move a ticket to another column.
    MoveTicket {
        /// Ticket id.
        id: String,
        /// Target state.
        state: String,
    },
    /// Terminate an agent.
    TerminateAgent {
        /// Agent id.
        id: String,
        /// Why.
        #[serde(default)]
        reason: Option<String>,
    },
}

impl From<ActionDto> for Action {
    fn from(a: ActionDto) -> Self {
        match a {
            ActionDto::Approve { id, reason } => Action::Approve { id, reason },
            ActionDto::Reject { id, reason } => Action::Reject { id, reason },
            ActionDto::MoveTicket { id, state } => Action::MoveTicket { id, state },
            ActionDto::TerminateAgent { id, reason } => Action::TerminateAgent { id, reason },
        }
    }
}

impl From<Action> for ActionDto {
    fn from(a: Action) -> Self {
        match a {
            Action::Approve { id, reason } => ActionDto::Approve { id, reason },
            Action::Reject { id, reason } => ActionDto::Reject { id, reason },
            Action::MoveTicket { id, state } => ActionDto::MoveTicket { id, state },
            Action::TerminateAgent { id, reason } => ActionDto::TerminateAgent { id, reason },
        }
    }
}

/// How an action ended.
#[derive(Debug, Clone, PartialEq, Serialize, TS)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum OutcomeDto {
    /// Done; the entity as the server now has it.
    Done {
        /// The entity.
        entity: EntityDto,
    },
    /// Queued in the outbox; sent on reconnect.
    Queued {
        /// Outbox row.
        outbox_id: u64,
    },
    /// Someone else acted first; nothing changed.
    Conflict {
        /// The server's explanation.
        message: String,
        /// The entity as it is now.
        #[ts(type = "Record<string, unknown> | null")]
        current: Option<serde_json::Value>,
    },
    /// Refused for good.
    Rejected {
        /// The server's explanation.
        message: String,
    },
}

impl From<ActionOutcome> for OutcomeDto {
    fn from(o: ActionOutcome) -> Self {
        match o {
            ActionOutcome::Done { entity } => OutcomeDto::Done {
                entity: entity.into(),
            },
            ActionOutcome::Queued { outbox_id } => OutcomeDto::Queued { outbox_id },
            ActionOutcome::Conflict { message, current } => {
                OutcomeDto::Conflict { message, current }
            }
            ActionOutcome::Rejected { message } => OutcomeDto::Rejected { message },
        }
    }
}

/// An action waiting in the outbox.
#[derive(Debug, Clone, PartialEq, Serialize, TS)]
pub struct PendingAction {
    /// Outbox row.
    pub outbox_id: u64,
    /// What.
    pub action: ActionDto,
    /// When it was queued, ms.
    pub queued_at: i64,
    /// Last error, if a send was tried.
    pub last_error: Option<String>,
}

impl From<OutboxEntry> for PendingAction {
    fn from(e: OutboxEntry) -> Self {
        PendingAction {
            outbox_id: e.id,
            action: e.action.into(),
            queued_at: e.queued_at,
            last_error: e.last_error,
        }
    }
}

/// A queued action that reached its final outcome.
#[derive(Debug, Clone, PartialEq, Serialize, TS)]
pub struct SettledAction {
    /// Outbox row.
    pub outbox_id: u64,
    /// What.
    pub action: ActionDto,
    /// How it ended.
    pub outcome: OutcomeDto,
}

/// Badge counts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, TS)]
pub struct CountsDto {
    /// Approvals waiting for a decision.
    pub pending_approvals: u64,
    /// Escalated conversations.
    pub open_escalations: u64,
    /// Unread notifications from the server.
    pub unread_notifications: u64,
}

impl From<Counts> for CountsDto {
    fn from(c: Counts) -> Self {
        CountsDto {
            pending_approvals: c.pending_approvals,
            open_escalations: c.open_escalations,
            unread_notifications: c.unread_notifications,
        }
    }
}

/// What a notification or deep link opens.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
pub struct Target {
    /// Kind of entity (`null`: just a page).
    #[ts(type = "EntityKind | null")]
    pub kind: Option<EntityKind>,
    /// Its id (`null`: the page itself).
    pub id: Option<String>,
    /// The page to show.
    pub page: Page,
}

/// The app's pages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, TS)]
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

/// A notification the app raised (for the notification centre).
#[derive(Debug, Clone, PartialEq, Serialize, TS)]
pub struct RaisedNotification {
    /// Dedup key (unique).
    pub key: String,
    /// Title.
    pub title: String,
    /// Body.
    pub body: String,
    /// `approval`, `escalation`, `digest` or `other`.
    pub kind: String,
    /// What it opens.
    pub target: Option<Target>,
    /// When, ms since the Unix epoch.
    pub at_ms: i64,
    /// Buttons offered.
    pub actions: Vec<String>,
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

impl From<&Shown> for RaisedNotification {
    fn from(s: &Shown) -> Self {
        let n = &s.notification;
        let kind = match n.kind {
            NotificationKind::Approval => "approval",
            NotificationKind::Escalation => "escalation",
            NotificationKind::Digest => "digest",
            NotificationKind::Other => "other",
        };
        RaisedNotification {
            key: n.dedup_key.clone(),
            title: n.title.clone(),
            body: n.body.clone(),
            kind: kind.into(),
            target: n.target.as_ref().map(|t| Target {
                kind: Some(t.kind),
                id: Some(t.id.clone()),
                page: page_of(t.kind),
            }),
            at_ms: s.at_ms,
            actions: n
                .actions
                .iter()
                .map(|a| match a {
                    NotificationAction::Approve => "approve",
                    NotificationAction::Reject => "reject",
                    NotificationAction::Open => "open",
                })
                .map(String::from)
                .collect(),
        }
    }
}

/// One server the app can connect to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(default)]
pub struct ServerProfile {
    /// Stable id (also names its cache file).
    pub id: String,
    /// Display name.
    pub name: String,
    /// Base URL, e.g. `https://pulse.example.com`.
    pub url: String,
    /// How to speak to the server: `native` (a Pulse gateway), a built-in profile
    /// name, or the path of a TOML profile file. Its access token, if any, is in the
    /// OS keyring, never here.
    pub profile: String,
    /// Stream/tenant to follow (`null`: the token's tenant).
    pub tenant: Option<String>,
    /// User name last signed in with (the token itself is in the OS keyring).
    pub username: Option<String>,
}

impl Default for ServerProfile {
    fn default() -> Self {
        ServerProfile {
            id: String::new(),
            name: String::new(),
            url: String::new(),
            profile: "native".into(),
            tenant: None,
            username: None,
        }
    }
}

/// Notification rules.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(default)]
pub struct NotificationSettings {
    /// Native notifications at all.
    pub enabled: bool,
    /// New approvals notify.
    pub approvals: bool,
    /// Escalations notify.
    pub escalations: bool,
    /// Agent failures notify.
    pub agent_failures: bool,
    /// Escalations are shown even during do-not-disturb.
    pub escalations_bypass_dnd: bool,
    /// Do not disturb until (ms since the Unix epoch), or `null`.
    pub dnd_until_ms: Option<i64>,
}

impl Default for NotificationSettings {
    fn default() -> Self {
        NotificationSettings {
            enabled: true,
            approvals: true,
            escalations: true,
            agent_failures: false,
            escalations_bypass_dnd: true,
            dnd_until_ms: None,
        }
    }
}

/// Light, dark or as the system says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, TS, Default)]
#[serde(rename_all = "snake_case")]
pub enum Theme {
    /// Follow the system.
    #[default]
    System,
    /// Light.
    Light,
    /// Dark.
    Dark,
}

/// Everything in the settings file (never a credential).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(default)]
pub struct Settings {
    /// Known servers.
    pub servers: Vec<ServerProfile>,
    /// The server in use (`null`: the embedded demo gateway).
    pub active_server: Option<String>,
    /// Notification rules.
    pub notifications: NotificationSettings,
    /// Start Pulse when the user logs in.
    pub start_at_login: bool,
    /// Theme.
    pub theme: Theme,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            servers: Vec::new(),
            active_server: None,
            notifications: NotificationSettings::default(),
            start_at_login: false,
            theme: Theme::System,
        }
    }
}

/// Who is signed in where.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, TS)]
pub struct Account {
    /// Server display name.
    pub server_name: String,
    /// Server URL.
    pub server_url: String,
    /// User name (`null` for a token from the environment).
    pub username: Option<String>,
    /// Whether credentials can be remembered on this system (an OS keyring exists).
    pub keyring_available: bool,
    /// Why not, if not.
    pub keyring_error: Option<String>,
    /// The server's profile (`native` for a Pulse gateway).
    pub profile: String,
    /// For a profile server: whether an access token is stored for it (keyring, or
    /// memory until quit without one). The token itself never leaves the shell.
    pub token_saved: bool,
}

/// A built-in server profile, for the settings form's chooser.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, TS)]
pub struct ProfileInfo {
    /// The name saved in `ServerProfile.profile`.
    pub name: String,
    /// The backend it speaks to.
    pub description: String,
    /// Whether the server wants an access token (`tasks-gateway` does not).
    pub needs_token: bool,
    /// What the server cannot guarantee.
    pub caveat: Option<String>,
}

impl From<pulse_core::server::BuiltinInfo> for ProfileInfo {
    fn from(b: pulse_core::server::BuiltinInfo) -> Self {
        ProfileInfo {
            name: b.name.to_owned(),
            description: b.description.to_owned(),
            needs_token: b.needs_token,
            caveat: b.caveat,
        }
    }
}

/// What the UI needs to paint at start; read from the local cache, before any network.
#[derive(Debug, Clone, PartialEq, Serialize, TS)]
pub struct Bootstrap {
    /// Every cached entity.
    pub entities: Vec<EntityDto>,
    /// The connection.
    pub connection: ConnectionView,
    /// Badge counts.
    pub counts: CountsDto,
    /// Queued actions.
    pub outbox: Vec<PendingAction>,
    /// Notifications raised in this run, newest first.
    pub notifications: Vec<RaisedNotification>,
    /// Keys of notifications (raised or from the server) read locally.
    pub read: Vec<String>,
    /// Settings.
    pub settings: Settings,
    /// Who is signed in where (`null`: nobody).
    pub account: Option<Account>,
    /// App version.
    pub version: String,
    /// What to open first (a `pulse://` link the app was started with).
    pub open: Option<Target>,
    /// The built-in server profiles (besides `native` and a TOML file path).
    pub profiles: Vec<ProfileInfo>,
}

/// A failure a command reports to the UI.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, TS, thiserror::Error)]
#[error("{message}")]
pub struct CommandError {
    /// Stable code the UI can branch on: `not_running`, `store`, `auth`, `keyring`,
    /// `invalid`, `io`, `unsupported` (an action a profile server cannot take).
    pub code: String,
    /// For a person.
    pub message: String,
}

impl CommandError {
    /// An error with `code`.
    pub fn new(code: &str, message: impl Into<String>) -> Self {
        CommandError {
            code: code.into(),
            message: message.into(),
        }
    }
}

/// Events the shell emits to the UI, by name.
pub mod events {
    /// `UpdateBatch`: coalesced entity updates.
    pub const UPDATES: &str = "pulse:updates";
    /// No payload: reload everything with `bootstrap`.
    pub const RESET: &str = "pulse:reset";
    /// `ConnectionView`.
    pub const CONNECTION: &str = "pulse:connection";
    /// `CountsDto`.
    pub const COUNTS: &str = "pulse:counts";
    /// `PendingAction[]`.
    pub const OUTBOX: &str = "pulse:outbox";
    /// `SettledAction`.
    pub const SETTLED: &str = "pulse:settled";
    /// `RaisedNotification`.
    pub const NOTIFIED: &str = "pulse:notified";
    /// `Target`: show this page / item.
    pub const NAVIGATE: &str = "pulse:navigate";
    /// `Settings`: changed outside the UI (tray).
    pub const SETTINGS: &str = "pulse:settings";
}

/// A frame's worth of entity updates.
#[derive(Debug, Clone, PartialEq, Serialize, TS)]
pub struct UpdateBatch {
    /// One per touched entity, latest state.
    pub updates: Vec<EntityUpdateDto>,
}

/// The whole `types.ts` file, generated from the types above.
pub fn typescript_bindings() -> String {
    let cfg = ts_rs::Config::new().with_large_int("number");
    let kinds: Vec<String> = EntityKind::ALL
        .iter()
        .map(|k| format!("\"{}\"", k.as_str()))
        .collect();
    let mut out = String::from(
        "// Generated from src-tauri/src/dto.rs by `UPDATE_GENERATED=1 cargo test -p pulse-desktop generated`.\n\
         // Do not edit: a test fails when this file differs from what the Rust types produce.\n\n",
    );
    out.push_str(&format!(
        "export type EntityKind = {};\n\n",
        kinds.join(" | ")
    ));
    out.push_str(&format!(
        "export const ENTITY_KINDS: readonly EntityKind[] = [{}];\n\n",
        kinds.join(", ")
    ));
    let event_names = [
        ("UPDATES", events::UPDATES),
        ("RESET", events::RESET),
        ("CONNECTION", events::CONNECTION),
        ("COUNTS", events::COUNTS),
        ("OUTBOX", events::OUTBOX),
        ("SETTLED", events::SETTLED),
        ("NOTIFIED", events::NOTIFIED),
        ("NAVIGATE", events::NAVIGATE),
        ("SETTINGS", events::SETTINGS),
    ];
    out.push_str("export const EVENTS = {\n");
    for (k, v) in event_names {
        out.push_str(&format!("  {k}: \"{v}\",\n"));
    }
    out.push_str("} as const;\n\n");
    let decls = [
        EntityDto::decl(&cfg),
        EntityUpdateDto::decl(&cfg),
        UpdateBatch::decl(&cfg),
        ConnState::decl(&cfg),
        ConnectionView::decl(&cfg),
        ActionDto::decl(&cfg),
        OutcomeDto::decl(&cfg),
        PendingAction::decl(&cfg),
        SettledAction::decl(&cfg),
        CountsDto::decl(&cfg),
        Page::decl(&cfg),
        Target::decl(&cfg),
        RaisedNotification::decl(&cfg),
        ServerProfile::decl(&cfg),
        NotificationSettings::decl(&cfg),
        Theme::decl(&cfg),
        Settings::decl(&cfg),
        Account::decl(&cfg),
        ProfileInfo::decl(&cfg),
        Bootstrap::decl(&cfg),
        CommandError::decl(&cfg),
    ];
    for d in decls {
        out.push_str("export ");
        out.push_str(&d);
        out.push_str("\n\n");
    }
    out.truncate(out.trim_end().len());
    out.push('\n');
    out
}
