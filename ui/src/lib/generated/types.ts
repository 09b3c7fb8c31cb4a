// Generated from src-tauri/src/dto.rs by `UPDATE_GENERATED=1 cargo test -p pulse-desktop generated`.
// Do not edit: a test fails when this file differs from what the Rust types produce.

export type EntityKind = "agent" | "ticket" | "approval" | "conversation" | "message" | "notification" | "stats";

export const ENTITY_KINDS: readonly EntityKind[] = ["agent", "ticket", "approval", "conversation", "message", "notification", "stats"];

export const EVENTS = {
  UPDATES: "pulse:updates",
  RESET: "pulse:reset",
  CONNECTION: "pulse:connection",
  COUNTS: "pulse:counts",
  OUTBOX: "pulse:outbox",
  SETTLED: "pulse:settled",
  NOTIFIED: "pulse:notified",
  NAVIGATE: "pulse:navigate",
  SETTINGS: "pulse:settings",
} as const;

export type EntityDto = { 
/**
 * Its kind.
 */
kind: EntityKind, 
/**
 * Its id.
 */
id: string, 
/**
 * All of its fields.
 */
data: Record<string, unknown>, };

export type EntityUpdateDto = { 
/**
 * Its kind.
 */
kind: EntityKind, 
/**
 * Its id.
 */
id: string, 
/**
 * Its fields now, or null when deleted.
 */
data: Record<string, unknown> | null, };

export type UpdateBatch = { 
/**
 * One per touched entity, latest state.
 */
updates: Array<EntityUpdateDto>, };

export type ConnState = { "state": "connecting", 
/**
 * 1 for the first try.
 */
attempt: number, } | { "state": "live" } | { "state": "polling", 
/**
 * Why.
 */
reason: string, } | { "state": "reconnecting", 
/**
 * Failed attempts so far.
 */
attempt: number, 
/**
 * When the next try starts, ms since the Unix epoch.
 */
retry_at_ms: number, 
/**
 * Why the last attempt failed.
 */
error: string, } | { "state": "failed", 
/**
 * Failed attempts so far.
 */
attempts: number, 
/**
 * When the next background try starts, ms.
 */
retry_at_ms: number, 
/**
 * Why the last attempt failed.
 */
error: string, } | { "state": "signed_out", 
/**
 * What to tell the user.
 */
message: string, } | { "state": "stopped" };

export type ConnectionView = { 
/**
 * The state.
 */
state: ConnState, 
/**
 * Last time the data was known fresh, ms since the Unix epoch.
 */
last_sync_ms: number | null, 
/**
 * The server's base URL (`null` before one is chosen).
 */
server: string | null, 
/**
 * Whether this is the embedded demo gateway.
 */
demo: boolean, 
/**
 * What the server cannot guarantee, if anything.
 */
caveat: string | null, };

export type ActionDto = { "action": "approve", 
/**
 * Approval id.
 */
id: string, 
/**
 * Why.
 */
reason: string | null, } | { "action": "reject", 
/**
 * Approval id.
 */
id: string, 
/**
 * Why.
 */
reason: string | null, } | { "action": "move_ticket", 
/**
 * Ticket id.
 */
id: string, 
/**
 * Target state.
 */
state: string, } | { "action": "terminate_agent", 
/**
 * Agent id.
 */
id: string, 
/**
 * Why.
 */
reason: string | null, };

export type OutcomeDto = { "outcome": "done", 
/**
 * The entity.
 */
entity: EntityDto, } | { "outcome": "queued", 
/**
 * Outbox row.
 */
outbox_id: number, } | { "outcome": "conflict", 
/**
 * The server's explanation.
 */
message: string, 
/**
 * The entity as it is now.
 */
current: Record<string, unknown> | null, } | { "outcome": "rejected", 
/**
 * The server's explanation.
 */
message: string, };

export type PendingAction = { 
/**
 * Outbox row.
 */
outbox_id: number, 
/**
 * What.
 */
action: ActionDto, 
/**
 * When it was queued, ms.
 */
queued_at: number, 
/**
 * Last error, if a send was tried.
 */
last_error: string | null, };

export type SettledAction = { 
/**
 * Outbox row.
 */
outbox_id: number, 
/**
 * What.
 */
action: ActionDto, 
/**
 * How it ended.
 */
outcome: OutcomeDto, };

export type CountsDto = { 
/**
 * Approvals waiting for a decision.
 */
pending_approvals: number, 
/**
 * Escalated conversations.
 */
open_escalations: number, 
/**
 * Unread notifications from the server.
 */
unread_notifications: number, };

export type Page = "overview" | "agents" | "board" | "approvals" | "conversations" | "notifications" | "settings";

export type Target = { 
/**
 * Kind of entity (`null`: just a page).
 */
kind: EntityKind | null, 
/**
 * Its id (`null`: the page itself).
 */
id: string | null, 
/**
 * The page to show.
 */
page: Page, };

export type RaisedNotification = { 
/**
 * Dedup key (unique).
 */
key: string, 
/**
 * Title.
 */
title: string, 
/**
 * Body.
 */
body: string, 
/**
 * `approval`, `escalation`, `digest` or `other`.
 */
kind: string, 
/**
 * What it opens.
 */
target: Target | null, 
/**
 * When, ms since the Unix epoch.
 */
at_ms: number, 
/**
 * Buttons offered.
 */
actions: Array<string>, };

export type ServerProfile = { 
/**
 * Stable id (also names its cache file).
 */
id: string, 
/**
 * Display name.
 */
name: string, 
/**
 * Base URL, e.g. `https://pulse.example.com`.
 */
url: string, 
/**
 * How to speak to the server: `native` (a Pulse gateway), a built-in profile
 * name, or the path of a TOML profile file. Its access token, if any, is in the
 * OS keyring, never here.
 */
profile: string, 
/**
 * Stream/tenant to follow (`null`: the token's tenant).
 */
tenant: string | null, 
/**
 * User name last signed in with (the token itself is in the OS keyring).
 */
username: string | null, };

export type NotificationSettings = { 
/**
 * Native notifications at all.
 */
enabled: boolean, 
/**
 * New approvals notify.
 */
approvals: boolean, 
/**
 * Escalations notify.
 */
escalations: boolean, 
/**
 * Agent failures notify.
 */
agent_failures: boolean, 
/**
 * Escalations are shown even during do-not-disturb.
 */
escalations_bypass_dnd: boolean, 
/**
 * Do not disturb until (ms since the Unix epoch), or `null`.
 */
dnd_until_ms: number | null, };

export type Theme = "system" | "light" | "dark";

export type Settings = { 
/**
 * Known servers.
 */
servers: Array<ServerProfile>, 
/**
 * The server in use (`null`: the embedded demo gateway).
 */
active_server: string | null, 
/**
 * Notification rules.
 */
notifications: NotificationSettings, 
/**
 * Start Pulse when the user logs in.
 */
start_at_login: boolean, 
/**
 * Theme.
 */
theme: Theme, };

export type Account = { 
/**
 * Server display name.
 */
server_name: string, 
/**
 * Server URL.
 */
server_url: string, 
/**
 * User name (`null` for a token from the environment).
 */
username: string | null, 
/**
 * Whether credentials can be remembered on this system (an OS keyring exists).
 */
keyring_available: boolean, 
/**
 * Why not, if not.
 */
keyring_error: string | null, 
/**
 * The server's profile (`native` for a Pulse gateway).
 */
profile: string, 
/**
 * For a profile server: whether an access token is stored for it (keyring, or
 * memory until quit without one). The token itself never leaves the shell.
 */
token_saved: boolean, };

export type ProfileInfo = { 
/**
 * The name saved in `ServerProfile.profile`.
 */
name: string, 
/**
 * The backend it speaks to.
 */
description: string, 
/**
 * Whether the server wants an access token (`tasks-gateway` does not).
 */
needs_token: boolean, 
/**
 * What the server cannot guarantee.
 */
caveat: string | null, };

export type Bootstrap = { 
/**
 * Every cached entity.
 */
entities: Array<EntityDto>, 
/**
 * The connection.
 */
connection: ConnectionView, 
/**
 * Badge counts.
 */
counts: CountsDto, 
/**
 * Queued actions.
 */
outbox: Array<PendingAction>, 
/**
 * Notifications raised in this run, newest first.
 */
notifications: Array<RaisedNotification>, 
/**
 * Keys of notifications (raised or from the server) read locally.
 */
read: Array<string>, 
/**
 * Settings.
 */
settings: Settings, 
/**
 * Who is signed in where (`null`: nobody).
 */
account: Account | null, 
/**
 * App version.
 */
version: string, 
/**
 * What to open first (a `pulse://` link the app was started with).
 */
open: Target | null, 
/**
 * The built-in server profiles (besides `native` and a TOML file path).
 */
profiles: Array<ProfileInfo>, };

export type CommandError = { 
/**
 * Stable code the UI can branch on: `not_running`, `store`, `auth`, `keyring`,
 * `invalid`, `io`, `unsupported` (an action a profile server cannot take).
 */
code: string, 
/**
 * For a person.
 */
message: string, };
