//! The profile file format (TOML), as serde types. See `docs/profiles.md`.
//!
//! Every table denies unknown keys, so a typo is an error that names its line,
//! never a silently ignored setting.

use std::collections::BTreeMap;

use pulse_protocol::domain::EntityKind;
use serde::Deserialize;
use serde_json::Value;
use toml::Spanned;

/// Which transport a profile speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TransportKind {
    /// Socket.IO v5 over Engine.IO v4.
    Socketio,
    /// Plain JSON messages over a WebSocket.
    Jsonws,
}

/// A whole profile file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProfileFile {
    /// Short name (`event-bridge`); the store stream defaults to it.
    pub name: String,
    /// One line for people.
    #[serde(default)]
    pub description: String,
    /// `socketio` or `jsonws`.
    pub transport: TransportKind,
    /// Store stream name template (default `{profile}` or `{profile}:{tenant}`).
    #[serde(default)]
    pub stream: Option<String>,
    /// What the server cannot guarantee, shown beside the connection state.
    #[serde(default)]
    pub caveat: Option<String>,
    /// Template variables (`{tenant}`, `{tasks}` …).
    #[serde(default)]
    pub vars: BTreeMap<String, VarValue>,
    /// Credentials.
    #[serde(default)]
    pub auth: AuthSection,
    /// The socket.
    #[serde(default)]
    pub socket: SocketSection,
    /// Where type / payload / timestamp sit in a message (jsonws).
    #[serde(default)]
    pub envelope: EnvelopeSection,
    /// Liveness checks.
    #[serde(default)]
    pub heartbeat: HeartbeatSection,
    /// Rooms to join / subscriptions to send after connecting, in order.
    #[serde(default)]
    pub join: Vec<Spanned<JoinStep>>,
    /// How state is caught up after each (re)connect.
    #[serde(default)]
    pub resync: ResyncSection,
    /// REST resources that can be (re)fetched, by name.
    #[serde(default)]
    pub rest: BTreeMap<String, Spanned<RestResource>>,
    /// Event mappings, in order; every matching rule applies.
    #[serde(default)]
    pub event: Vec<Spanned<EventRule>>,
    /// User actions the server takes over REST, by action name (`approve`,
    /// `reject`, `move_ticket`, `terminate_agent`).
    #[serde(default)]
    pub actions: BTreeMap<String, Spanned<ActionSpec>>,
    /// REST polling while the socket cannot be had (or is switched off).
    #[serde(default)]
    pub poll: PollSection,
    /// The server's REST rate limit, which Pulse never exceeds.
    #[serde(default)]
    pub rate_limit: Option<RateLimit>,
    /// What the client tells the server when the user does something, by intent
    /// (`[intent.open_task]`); an intent not declared is never sent.
    #[serde(default)]
    pub intent: BTreeMap<crate::session::Intent, Spanned<IntentStep>>,
}

/// `[poll]`: the fallback while the socket cannot be opened (or polling is forced).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PollSection {
    /// REST resources reloaded each round (default: `resync.refetch`).
    pub refetch: Option<Vec<String>>,
    /// Least time between rounds (ms); the session's poll interval and the
    /// `[rate_limit]` budget may make it longer.
    pub interval_ms: Option<u64>,
}

/// `[rate_limit]`: at most `requests` REST requests per `window_ms`, as the
/// server enforces it (e.g. express-rate-limit's `limit` and `windowMs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimit {
    /// Requests allowed per window.
    pub requests: u32,
    /// The window (ms).
    pub window_ms: u64,
}

/// One `[intent.NAME]`: the message an intent is sent as. `{value}` in it is the
/// intent's value (a task id, a presence status, a chat id).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IntentStep {
    /// jsonws: a message template to send.
    #[serde(default)]
    pub send: Option<String>,
    /// socketio: an event to emit.
    #[serde(default)]
    pub emit: Option<String>,
    /// socketio: its argument (strings are templates; `"{value}"` alone sends a
    /// bare string, as seed 002's `presence.update`).
    #[serde(default)]
    pub data: Option<toml::Value>,
    /// Add the value to this list variable (declared in `[vars]`), so that a
    /// `[[join]]` with `for_each` on it says it again after every reconnect
    /// (seed 004: an open task's room is joined again).
    #[serde(default)]
    pub follow: Option<String>,
    /// Remove the value from this list variable.
    #[serde(default)]
    pub unfollow: Option<String>,
    /// Say the last value again after every (re)connect (presence: the server
    /// forgets it with the connection).
    #[serde(default)]
    pub again_on_connect: bool,
}

/// A template variable: a string, or a list (for `for_each`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum VarValue {
    /// One value.
    One(String),
    /// Several values.
    Many(Vec<String>),
}

/// Where the token goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Placement {
    /// `Authorization: Bearer …` (or `header` / `prefix`).
    #[default]
    Header,
    /// `?token=…` — only for servers that demand it; the URL is then never logged.
    Query,
    /// The first message after the socket opens (`message`, jsonws).
    FirstMessage,
    /// The Socket.IO handshake `auth` payload (`payload`).
    SocketioAuth,
    /// No credentials.
    None,
}

/// `[auth]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthSection {
    /// Where the token goes.
    pub placement: Placement,
    /// Header name for `header`.
    pub header: String,
    /// Put before the token in the header.
    pub prefix: String,
    /// Query parameter for `query`.
    pub param: String,
    /// First message template for `first_message` (`{token}` is replaced).
    pub message: Option<String>,
    /// Handshake `auth` payload template for `socketio_auth`.
    pub payload: Option<toml::Value>,
    /// Token claims read (unverified) for `{tenant}`, first present wins.
    pub tenant_claims: Vec<String>,
    /// HTTP statuses of a refused upgrade / REST call that mean "credentials refused".
    pub unauthorized_status: Vec<u16>,
    /// WebSocket close codes that mean "credentials refused" (jsonws).
    pub unauthorized_close_codes: Vec<u16>,
    /// Substrings of a Socket.IO `connect_error` message (lowercase) that mean
    /// "credentials refused".
    pub unauthorized_messages: Vec<String>,
    /// An event the server sends once it accepted the credentials; joins wait for it.
    pub ready: Option<String>,
    /// How long to wait for `ready` (ms).
    pub ready_timeout_ms: u64,
    /// Whether a server that accepted the socket but sent no `ready` within
    /// `ready_timeout_ms` refused the credentials (refresh once, then signed out)
    /// rather than being unreachable (retried with backoff).
    pub silence_is_refusal: bool,
    /// socketio: a server disconnect (`io server disconnect`, the gateway's
    /// `client.disconnect()` in `handleConnection`) this soon after the namespace
    /// was accepted is a refusal (ms; 0: never).
    pub refused_disconnect_ms: u64,
    /// Events that report a refusal when their payload contains one of
    /// `unauthorized_messages` (e.g. a Nest `exception`); the link is then closed.
    pub refusal_events: Vec<String>,
}

impl Default for AuthSection {
    fn default() -> Self {
        AuthSection {
            placement: Placement::Header,
            header: "authorization".into(),
            prefix: "Bearer ".into(),
            param: "token".into(),
            message: None,
            payload: None,
            tenant_claims: vec![
                "tenant_id".into(),
                "tenantId".into(),
                "tenant".into(),
                "workspace_id".into(),
                "workspaceId".into(),
            ],
            unauthorized_status: vec![401, 403],
            unauthorized_close_codes: vec![1008, 4001, 4003, 4401, 4403],
            unauthorized_messages: vec![
                "unauthorized".into(),
                "unauthenticated".into(),
                "invalid token".into(),
                "jwt".into(),
                "authentication".into(),
                "forbidden".into(),
            ],
            ready: None,
            ready_timeout_ms: 10_000,
            silence_is_refusal: false,
            refused_disconnect_ms: 2_000,
            refusal_events: Vec::new(),
        }
    }
}

/// `[socket]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SocketSection {
    /// jsonws: the socket path (`/ws`); socketio: the Engine.IO path (`/socket.io/`).
    pub path: Option<String>,
    /// Socket.IO namespace (`/`).
    pub namespace: String,
    /// Socket.IO transports, in order of preference: `websocket`, `polling`.
    pub transports: Vec<String>,
    /// Ask the Socket.IO server to recover the session (missed events) on reconnect.
    pub recovery: bool,
    /// Extra headers on the upgrade (never credentials).
    pub headers: BTreeMap<String, String>,
}

impl Default for SocketSection {
    fn default() -> Self {
        SocketSection {
            path: None,
            namespace: "/".into(),
            transports: vec!["websocket".into()],
            recovery: false,
            headers: BTreeMap::new(),
        }
    }
}

/// `[envelope]` (jsonws): JSON pointers into each message.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EnvelopeSection {
    /// The event type (a string).
    #[serde(rename = "type")]
    pub type_path: String,
    /// The payload (`""` = the whole message).
    pub data: String,
    /// A timestamp in ms (a number), if any.
    pub ts: Option<String>,
}

impl Default for EnvelopeSection {
    fn default() -> Self {
        EnvelopeSection {
            type_path: "/type".into(),
            data: "/data".into(),
            ts: None,
        }
    }
}

/// How the client sends heartbeats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum PingMode {
    /// WebSocket ping frames (answered by any WebSocket server).
    #[default]
    Ws,
    /// A text message (`text`), e.g. `"ping"`.
    Text,
    /// None from the client (Socket.IO: Engine.IO's own heartbeat is used).
    None,
}

/// `[heartbeat]`: how a dead link is detected.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HeartbeatSection {
    /// What the client sends.
    pub mode: PingMode,
    /// The text for `mode = "text"`.
    pub text: String,
    /// Send one every this many ms of silence.
    pub interval_ms: u64,
    /// The link is dead when nothing arrived for interval + timeout ms.
    pub timeout_ms: u64,
    /// Event types that only prove liveness (e.g. `pong`): swallowed.
    pub pong_events: Vec<String>,
    /// A server ping event to answer, and the answer (a message template).
    pub answer: Option<PingAnswer>,
}

impl Default for HeartbeatSection {
    fn default() -> Self {
        HeartbeatSection {
            mode: PingMode::Ws,
            text: "ping".into(),
            interval_ms: 25_000,
            timeout_ms: 20_000,
            pong_events: Vec::new(),
            answer: None,
        }
    }
}

/// Answer a server's application-level ping.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PingAnswer {
    /// The server's ping event type.
    pub event: String,
    /// What to send back (jsonws: a message; socketio: an event name).
    pub reply: String,
}

/// One `[[join]]` step.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JoinStep {
    /// jsonws: a message template to send.
    #[serde(default)]
    pub send: Option<String>,
    /// socketio: an event to emit.
    #[serde(default)]
    pub emit: Option<String>,
    /// socketio: its argument (strings are templates).
    #[serde(default)]
    pub data: Option<toml::Value>,
    /// Repeat for each element of this list variable, bound to `{item}`.
    #[serde(default)]
    pub for_each: Option<String>,
}

/// When the resync request is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum RequestWhen {
    /// After a reconnect only (the first connection gets its state from the joins).
    #[default]
    Reconnect,
    /// After every connection.
    Always,
}

/// A message that asks the server for its state.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResyncRequest {
    /// socketio: the event to emit.
    #[serde(default)]
    pub emit: Option<String>,
    /// socketio: its argument.
    #[serde(default)]
    pub data: Option<toml::Value>,
    /// jsonws: the message to send.
    #[serde(default)]
    pub send: Option<String>,
    /// The event that answers it (waited for, like `pushes`).
    pub answer: String,
    /// When to send it.
    #[serde(default)]
    pub when: RequestWhen,
}

/// `[resync]`: what makes the cache right again after each (re)connect.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ResyncSection {
    /// Events the server sends on its own after connecting / joining; the session
    /// is live once they all arrived.
    pub pushes: Vec<String>,
    /// A request for state, and its answer.
    pub request: Option<ResyncRequest>,
    /// REST resources to load after each connect; when `pushes` or `request` are
    /// set, only if they did not all arrive within `timeout_ms`.
    pub refetch: Vec<String>,
    /// How long to wait for pushes and answers (ms).
    pub timeout_ms: u64,
}

impl Default for ResyncSection {
    fn default() -> Self {
        ResyncSection {
            pushes: Vec::new(),
            request: None,
            refetch: Vec::new(),
            timeout_ms: 5_000,
        }
    }
}

/// What a rule does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Op {
    /// Insert or replace the entity.
    Upsert,
    /// Merge fields into the entity.
    Patch,
    /// Remove the entity.
    Delete,
    /// Append the record to the array `field` of the entity.
    Append,
    /// A stats block (kind `stats`, id = `scope`).
    Stats,
    /// Replace every entity of `kind` with the list at `items`.
    Replace,
    /// Only refetch the REST resources in `refetch`.
    Refetch,
    /// Known, nothing to do (not counted as rejected).
    Ignore,
    /// A notice for the user (seed 003's `error`): a notification of the record
    /// (`level` `error` unless set), its id made of the event's name, receive time
    /// and payload, `created_at` the receive time.
    Notice,
}

/// One `[[event]]` rule.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventRule {
    /// The server's event name.
    pub name: String,
    /// What to do.
    pub op: Op,
    /// Entity kind (`agent`, `ticket`, `approval`, `conversation`, `message`,
    /// `notification`, `stats`).
    #[serde(default)]
    pub kind: Option<EntityKind>,
    /// JSON pointer of the entity id.
    #[serde(default)]
    pub id: Option<String>,
    /// JSON pointer of the base object.
    #[serde(default)]
    pub data: Option<String>,
    /// Fields dropped from the base object.
    #[serde(default)]
    pub omit: Vec<String>,
    /// Target field → JSON pointer.
    #[serde(default)]
    pub fields: BTreeMap<String, String>,
    /// Target field → constant.
    #[serde(default)]
    pub set: BTreeMap<String, toml::Value>,
    /// `stats`: the block's id (`tasks`, `agents` …).
    #[serde(default)]
    pub scope: Option<String>,
    /// `append`: the array field.
    #[serde(default)]
    pub field: Option<String>,
    /// `replace`: JSON pointer of the list.
    #[serde(default)]
    pub items: Option<String>,
    /// Applies only when every pointer has this value.
    #[serde(default)]
    pub when: BTreeMap<String, toml::Value>,
    /// Applies only when no pointer has this value.
    #[serde(default)]
    pub unless: BTreeMap<String, toml::Value>,
    /// REST resources to refetch after this event is applied.
    #[serde(default)]
    pub refetch: Vec<String>,
}

/// One `[rest.NAME]` resource: a GET whose answer replaces entities.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RestResource {
    /// Path on the server (`/api/agents`).
    pub path: String,
    /// JSON pointer of the list in the answer (`""` = the answer is the list). Absent
    /// with `kind = "stats"`: the answer (or `data`) is one stats block.
    #[serde(default)]
    pub items: Option<String>,
    /// `stats`: the block's id.
    #[serde(default)]
    pub scope: Option<String>,
    /// Delete entities of the kind that the answer no longer has (lists; default true).
    #[serde(default = "yes")]
    pub replace: bool,
    /// Entity kind of the items.
    pub kind: EntityKind,
    /// JSON pointer of each item's id (default `/id`).
    #[serde(default)]
    pub id: Option<String>,
    /// JSON pointer of the base object within each item (default: the item).
    #[serde(default)]
    pub data: Option<String>,
    /// Fields dropped from each item.
    #[serde(default)]
    pub omit: Vec<String>,
    /// Target field → JSON pointer into the item.
    #[serde(default)]
    pub fields: BTreeMap<String, String>,
    /// Target field → constant.
    #[serde(default)]
    pub set: BTreeMap<String, toml::Value>,
    /// A refusal of this resource (`auth.unauthorized_status`) means the user may
    /// not see it (seed 003's admin-only metrics, costs, connectors), not that the
    /// token was refused: a caveat, as for a missing resource, never Signed out.
    #[serde(default)]
    pub refusal_means_absent: bool,
}

fn yes() -> bool {
    true
}

/// One `[actions.NAME]`: how the server takes a user action over REST. Templates
/// may use `{id}` (the entity's id), `{state}` (`move_ticket`), `{reason}`
/// (the others; absent when none was given), `{tenant}` and the profile's `[vars]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActionSpec {
    /// HTTP method: `POST`, `PUT`, `PATCH` or `DELETE`.
    pub method: String,
    /// Path template (`/api/tickets/{id}`); values are percent-encoded.
    pub path: String,
    /// JSON body (strings are templates; a string that is only `{reason}` is
    /// `null` when no reason was given). Absent: no body.
    #[serde(default)]
    pub body: Option<toml::Value>,
    /// Field → value (strings are templates): what the entity looks like once the
    /// server did it, shown at once and until the server's own event or answer.
    #[serde(default)]
    pub optimistic: BTreeMap<String, toml::Value>,
    /// Statuses that mean "done" (default: every 2xx).
    #[serde(default)]
    pub success: Vec<u16>,
    /// A success answer counts only when every pointer has this value (e.g.
    /// `{ "/success" = true }`); otherwise the server refused.
    #[serde(default)]
    pub success_when: BTreeMap<String, toml::Value>,
    /// Statuses that mean "someone else acted first" (default `[409]`).
    #[serde(default = "conflict_statuses")]
    pub conflict: Vec<u16>,
    /// Pointer to the entity in a success answer (`""`: the answer is the entity).
    /// Absent, or nothing there: the cached entity with `optimistic` applied.
    #[serde(default)]
    pub entity: Option<String>,
    /// Pointer to the entity as it is now in a conflict answer.
    #[serde(default)]
    pub current: Option<String>,
    /// Pointer to the server's explanation in an error answer (default: the first
    /// string at `/error/message`, `/message`, `/error`, `/detail`).
    #[serde(default)]
    pub message: Option<String>,
}

fn conflict_statuses() -> Vec<u16> {
    vec![409]
}

/// Convert a TOML value to JSON.
pub fn to_json(v: &toml::Value) -> Value {
    match v {
        toml::Value::String(s) => Value::String(s.clone()),
        toml::Value::Integer(i) => Value::from(*i),
        toml::Value::Float(f) => serde_json::Number::from_f64(*f)
            .map(Value::Number)
            .unwrap_or(Value::Null),
        toml::Value::Boolean(b) => Value::Bool(*b),
        toml::Value::Datetime(d) => Value::String(d.to_string()),
        toml::Value::Array(a) => Value::Array(a.iter().map(to_json).collect()),
        toml::Value::Table(t) => {
            Value::Object(t.iter().map(|(k, v)| (k.clone(), to_json(v))).collect())
        }
    }
}
