//! Profiles: how Pulse speaks a server that is not a Pulse gateway.
//!
//! A profile is a TOML file (format in `docs/profiles.md`) that says which transport
//! the server speaks (`socketio` or `jsonws`), where the token goes, which rooms to
//! join, how each server event maps to domain [`Change`](pulse_protocol::Change)s
//! (upsert / patch / delete / append / stats / replace / "refetch this REST
//! resource"), and how the cache is made right again after a reconnect (Socket.IO
//! connection-state recovery, a resync request and its answer, pushes the server
//! sends on its own, or a REST refetch).
//!
//! The built-in profiles — one per seed backend — are TOML files embedded with
//! `include_str!`, so the format is proven by them: [`BUILTIN`].
//!
//! Contract:
//! - [`Profile::parse`] either returns a profile that passed every check, or a
//!   [`ProfileError`] naming the file, line, column and field;
//! - [`ProfileDialect`] commits only through
//!   [`SessionCx::commit_local`](crate::session::SessionCx::commit_local), so the
//!   session's once-only and broadcast-after-commit rules hold;
//! - after every (re)connect the cache is brought up to date before the state is
//!   `Live` (unless Socket.IO recovered the session, which replays what was missed);
//!   what the server cannot guarantee is published with
//!   [`SessionCx::describe`](crate::session::SessionCx::describe);
//! - unknown events are counted as rejected, undecodable frames as decode errors;
//!   neither ends the connection.

mod action;
pub mod budget;
mod map;
mod run;
mod runner;
pub mod schema;
mod socket;
mod template;

use std::fmt;
use std::path::Path;
use std::sync::Arc;

pub use map::{replacement_changes, Effect, MapError, Mapper, Shape};
pub use runner::ProfileDialect;
pub use schema::{Op, Placement, ProfileFile, TransportKind, VarValue};
pub use template::{names, render, Escape, Vars};

use crate::session::Dialect;

/// The built-in profiles: (name, seed it was written for, TOML text).
pub const BUILTIN: &[(&str, &str, &str)] = &[
    (
        "agent-monitor",
        "000: agent monitor + kanban (Node `ws`, tenant rooms)",
        include_str!("builtin/agent-monitor.toml"),
    ),
    (
        "event-bridge",
        "001: event bridge stats badges (Node `ws`, `/ws?token=`)",
        include_str!("builtin/event-bridge.toml"),
    ),
    (
        "nest-realtime",
        "002: NestJS Socket.IO `/realtime` (approvals, agents, notifications, chat)",
        include_str!("builtin/nest-realtime.toml"),
    ),
    (
        "fastapi-dashboard",
        "003: FastAPI `/ws/dashboard?token=` (stats, executions)",
        include_str!("builtin/fastapi-dashboard.toml"),
    ),
    (
        "tasks-gateway",
        "004: NestJS Socket.IO tasks gateway (dashboard + task rooms, resync)",
        include_str!("builtin/tasks-gateway.toml"),
    ),
];

/// A profile that could not be loaded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProfileError {
    /// The file could not be read.
    #[error("{origin}: cannot read the profile: {source}")]
    Io {
        /// The file.
        origin: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The file is not a valid profile.
    #[error("{origin}:{line}:{column}: {field}: {message}")]
    Invalid {
        /// The file (or `builtin:NAME`).
        origin: String,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// The field, as `table.key` (or `[[event]] #N name.key`).
        field: String,
        /// What is wrong.
        message: String,
    },
    /// Neither a built-in name nor an existing file.
    #[error("no built-in profile `{0}` and no such file (built in: {builtin}); give a path to a .toml profile", builtin = builtin_names())]
    Unknown(String),
}

fn builtin_names() -> String {
    BUILTIN.iter().map(|b| b.0).collect::<Vec<_>>().join(", ")
}

/// A validated profile.
#[derive(Debug, Clone)]
pub struct Profile {
    /// Where it came from (a path or `builtin:NAME`).
    pub origin: String,
    /// Its contents. Changing fields after [`Profile::parse`] (e.g. shorter heartbeat
    /// timings in tests) skips validation; keep them consistent.
    pub spec: ProfileFile,
}

/// 1-based (line, column) of byte `offset` in `text`.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let col = before
        .rsplit('\n')
        .next()
        .map(|l| l.chars().count())
        .unwrap_or(0)
        + 1;
    (line, col)
}

/// The field at `offset`: the key on that line (`key = …`) prefixed by the last table
/// header above it (`[auth]`, `[[event]]`).
fn field_at(text: &str, offset: usize) -> String {
    let offset = offset.min(text.len());
    let line_start = text[..offset].rfind('\n').map(|i| i + 1).unwrap_or(0);
    let line_end = text[offset..]
        .find('\n')
        .map(|i| offset + i)
        .unwrap_or(text.len());
    let line = &text[line_start..line_end];
    let key = line
        .split_once('=')
        .filter(|(k, _)| line_start + k.len() <= offset || offset == line_start)
        .map(|(k, _)| k.trim().trim_matches('"').to_owned())
        // An empty key (`= 1`) names no field: the table (or top level) does.
        .filter(|k| !k.is_empty() && !k.starts_with('['));
    let mut header = None;
    let mut event_no = 0;
    for l in text[..line_end].lines() {
        let t = l.trim();
        if t.starts_with('[') {
            header = Some(t.trim_start_matches('[').trim_end_matches(']').to_owned());
            if t == "[[event]]" {
                event_no += 1;
            }
        }
    }
    let table = match header.as_deref() {
        Some("event") => format!("[[event]] #{event_no}"),
        Some(h) => h.to_owned(),
        None => String::new(),
    };
    match (table.is_empty(), key) {
        (true, Some(k)) => k,
        (false, Some(k)) => format!("{table}.{k}"),
        (false, None) => table,
        (true, None) => "(top level)".into(),
    }
}

struct Checker<'a> {
    origin: &'a str,
    text: &'a str,
}

impl Checker<'_> {
    fn at(
        &self,
        offset: usize,
        field: impl Into<String>,
        message: impl Into<String>,
    ) -> ProfileError {
        let (line, column) = line_col(self.text, offset);
        ProfileError::Invalid {
            origin: self.origin.to_owned(),
            line,
            column,
            field: field.into(),
            message: message.into(),
        }
    }

    /// The offset of the first line that starts with `key` (for top-level tables).
    fn find(&self, needle: &str) -> usize {
        self.text
            .lines()
            .scan(0usize, |pos, l| {
                let start = *pos;
                *pos += l.len() + 1;
                Some((start, l))
            })
            .find(|(_, l)| l.trim_start().starts_with(needle))
            .map(|(s, _)| s)
            .unwrap_or(0)
    }

    /// Offset of `key =` in the table whose header is at `span` (toml spans of a
    /// table cover only its header), or the header itself.
    fn key_in(&self, span: std::ops::Range<usize>, key: &str) -> usize {
        let start = span.start.min(self.text.len());
        let mut pos = start;
        for (i, l) in self.text[start..].split_inclusive('\n').enumerate() {
            let t = l.trim_start();
            if i > 0 && t.starts_with('[') {
                break;
            }
            if t.starts_with(key) && t[key.len()..].trim_start().starts_with('=') {
                return pos + (l.len() - t.len());
            }
            pos += l.len();
        }
        start
    }
}

fn pointer_ok(p: &str) -> bool {
    p.is_empty() || p.starts_with('/')
}

impl Profile {
    /// Parse and check `text`; `origin` names it in errors (a path, or `builtin:NAME`).
    pub fn parse(text: &str, origin: &str) -> Result<Profile, ProfileError> {
        let c = Checker { origin, text };
        let spec: ProfileFile = toml::from_str(text).map_err(|e| {
            let offset = e.span().map(|s| s.start).unwrap_or(0);
            let (line, column) = line_col(text, offset);
            ProfileError::Invalid {
                origin: origin.to_owned(),
                line,
                column,
                field: field_at(text, offset),
                message: e.message().trim().to_owned(),
            }
        })?;
        validate(&c, &spec)?;
        Ok(Profile {
            origin: origin.to_owned(),
            spec,
        })
    }

    /// A built-in profile by name.
    pub fn builtin(name: &str) -> Result<Profile, ProfileError> {
        let (_, _, text) = BUILTIN
            .iter()
            .find(|b| b.0 == name)
            .ok_or_else(|| ProfileError::Unknown(name.to_owned()))?;
        Profile::parse(text, &format!("builtin:{name}"))
    }

    /// A profile file.
    pub fn from_file(path: &Path) -> Result<Profile, ProfileError> {
        let origin = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| ProfileError::Io {
            origin: origin.clone(),
            source,
        })?;
        Profile::parse(&text, &origin)
    }

    /// A built-in name, or else a path to a TOML file.
    pub fn load(name_or_path: &str) -> Result<Profile, ProfileError> {
        if BUILTIN.iter().any(|b| b.0 == name_or_path) {
            return Profile::builtin(name_or_path);
        }
        let path = Path::new(name_or_path);
        if path.exists()
            || name_or_path.ends_with(".toml")
            || name_or_path.contains(std::path::MAIN_SEPARATOR)
        {
            return Profile::from_file(path);
        }
        Err(ProfileError::Unknown(name_or_path.to_owned()))
    }

    /// Its name.
    pub fn name(&self) -> &str {
        &self.spec.name
    }

    /// Whether this profile sends a token anywhere (the socket, or REST refetches).
    pub fn needs_token(&self) -> bool {
        self.spec.auth.placement != schema::Placement::None || !self.spec.rest.is_empty()
    }

    /// The user actions this profile declares (`[actions.*]`).
    pub fn actions(&self) -> crate::actions::ActionSet {
        crate::actions::ActionSet::of(
            self.spec
                .actions
                .keys()
                .filter_map(|k| crate::actions::ActionKind::parse(k)),
        )
    }

    /// A session dialect that runs this profile.
    pub fn into_dialect(self) -> Arc<dyn Dialect> {
        Arc::new(ProfileDialect::new(self))
    }
}

impl fmt::Display for Profile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.spec.name, self.origin)
    }
}

/// Load `name_or_path` ([`Profile::load`]) and make its dialect, for
/// `SessionConfig::dialect`.
pub fn dialect(name_or_path: &str) -> Result<Arc<dyn Dialect>, ProfileError> {
    Profile::load(name_or_path).map(Profile::into_dialect)
}

fn validate(c: &Checker<'_>, p: &ProfileFile) -> Result<(), ProfileError> {
    let jsonws = p.transport == TransportKind::Jsonws;
    if p.name.trim().is_empty() {
        return Err(c.at(c.find("name"), "name", "must not be empty"));
    }
    // auth
    let auth_at = c.find("[auth]");
    match p.auth.placement {
        Placement::FirstMessage if !jsonws => {
            return Err(c.at(
                auth_at,
                "auth.placement",
                "`first_message` is for `jsonws`; Socket.IO servers take `socketio_auth`",
            ))
        }
        Placement::FirstMessage if p.auth.message.is_none() => {
            return Err(c.at(
                auth_at,
                "auth.message",
                "`first_message` needs `message`, e.g. '{\"type\":\"auth\",\"token\":\"{token}\"}'",
            ))
        }
        Placement::SocketioAuth if jsonws => {
            return Err(c.at(
                auth_at,
                "auth.placement",
                "`socketio_auth` is for `socketio`; use `header`, `query` or `first_message`",
            ))
        }
        _ => {}
    }
    if let Some(m) = &p.auth.message {
        if !m.contains("{token}") {
            return Err(c.at(
                auth_at,
                "auth.message",
                "the first message must contain `{token}`",
            ));
        }
    }
    // socket
    let sock_at = c.find("[socket]");
    match (&p.socket.path, jsonws) {
        (None, true) => {
            return Err(c.at(
                sock_at,
                "socket.path",
                "a `jsonws` profile needs the socket path, e.g. \"/ws\"",
            ))
        }
        (Some(path), _) if !path.starts_with('/') => {
            return Err(c.at(
                sock_at,
                "socket.path",
                format!("must start with `/`, not {path:?}"),
            ))
        }
        _ => {}
    }
    if !jsonws {
        if !p.socket.namespace.starts_with('/') {
            return Err(c.at(sock_at, "socket.namespace", "must start with `/`"));
        }
        if p.socket.transports.is_empty() {
            return Err(c.at(
                sock_at,
                "socket.transports",
                "name at least one of \"websocket\", \"polling\"",
            ));
        }
        for t in &p.socket.transports {
            if t != "websocket" && t != "polling" {
                return Err(c.at(
                    sock_at,
                    "socket.transports",
                    format!("unknown transport {t:?} (use \"websocket\" or \"polling\")"),
                ));
            }
        }
    }
    // envelope
    let env_at = c.find("[envelope]");
    for (name, ptr) in [
        ("envelope.type", Some(&p.envelope.type_path)),
        ("envelope.data", Some(&p.envelope.data)),
        ("envelope.ts", p.envelope.ts.as_ref()),
    ] {
        if let Some(ptr) = ptr {
            if !pointer_ok(ptr) {
                return Err(c.at(
                    env_at,
                    name,
                    format!("{ptr:?} is not a JSON pointer (\"\" or \"/a/b\")"),
                ));
            }
        }
    }
    // heartbeat
    let hb_at = c.find("[heartbeat]");
    if p.heartbeat.interval_ms == 0 || p.heartbeat.timeout_ms == 0 {
        return Err(c.at(
            hb_at,
            "heartbeat",
            "`interval_ms` and `timeout_ms` must be above 0",
        ));
    }
    if p.heartbeat.mode == schema::PingMode::Text && p.heartbeat.text.is_empty() {
        return Err(c.at(
            hb_at,
            "heartbeat.text",
            "`mode = \"text\"` needs the text to send",
        ));
    }
    // joins
    for (i, step) in p.join.iter().enumerate() {
        let span = step.span();
        let s = step.get_ref();
        let field = format!("[[join]] #{}", i + 1);
        if jsonws && s.send.is_none() {
            return Err(c.at(
                span.start,
                format!("{field}.send"),
                "a `jsonws` join needs `send` (the message to send)",
            ));
        }
        if !jsonws && s.emit.is_none() {
            return Err(c.at(
                span.start,
                format!("{field}.emit"),
                "a `socketio` join needs `emit` (the event to emit)",
            ));
        }
    }
    // intents
    for (intent, step) in &p.intent {
        let span = step.span();
        let s = step.get_ref();
        let name = serde_json::to_value(intent)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default();
        let field = format!("intent.{name}");
        if jsonws && s.send.is_none() {
            return Err(c.at(
                span.start,
                format!("{field}.send"),
                "a `jsonws` intent needs `send` (the message to send)",
            ));
        }
        if !jsonws && s.emit.is_none() {
            return Err(c.at(
                span.start,
                format!("{field}.emit"),
                "a `socketio` intent needs `emit` (the event to emit)",
            ));
        }
        for (key, var) in [("follow", &s.follow), ("unfollow", &s.unfollow)] {
            if let Some(var) = var {
                if !matches!(p.vars.get(var), Some(schema::VarValue::Many(_))) {
                    return Err(c.at(
                        c.key_in(span.clone(), key),
                        format!("{field}.{key}"),
                        format!("no list variable `{var}` in `[vars]`"),
                    ));
                }
            }
        }
    }
    // rest
    for (name, res) in &p.rest {
        let span = res.span();
        let r = res.get_ref();
        let field = format!("rest.{name}");
        if !r.path.starts_with('/') {
            return Err(c.at(
                c.key_in(span.clone(), "path"),
                format!("{field}.path"),
                "must start with `/`",
            ));
        }
        if r.kind == pulse_protocol::EntityKind::Stats && r.items.is_none() && r.scope.is_none() {
            return Err(c.at(
                span.start,
                format!("{field}.scope"),
                "a stats resource needs `scope` (the block's id), or `items` for a list",
            ));
        }
        check_shape(
            c,
            span.clone(),
            &field,
            r.id.as_deref(),
            r.data.as_deref(),
            &r.fields,
        )?;
        if let Some(items) = &r.items {
            if !pointer_ok(items) {
                return Err(c.at(
                    c.key_in(span, "items"),
                    format!("{field}.items"),
                    format!("{items:?} is not a JSON pointer"),
                ));
            }
        }
    }
    let check_refs =
        |span: std::ops::Range<usize>, field: &str, names: &[String]| -> Result<(), ProfileError> {
            for n in names {
                if !p.rest.contains_key(n) {
                    let known = p.rest.keys().cloned().collect::<Vec<_>>().join(", ");
                    return Err(c.at(
                        c.key_in(span.clone(), "refetch"),
                        format!("{field}.refetch"),
                        format!(
                            "no `[rest.{n}]` resource (defined: {})",
                            if known.is_empty() {
                                "none".into()
                            } else {
                                known
                            }
                        ),
                    ));
                }
            }
            Ok(())
        };
    // resync
    let rs_at = c.find("[resync]");
    check_refs(rs_at..c.text.len(), "resync", &p.resync.refetch)?;
    if let Some(req) = &p.resync.request {
        if jsonws && req.send.is_none() {
            return Err(c.at(
                rs_at,
                "resync.request.send",
                "a `jsonws` resync request needs `send`",
            ));
        }
        if !jsonws && req.emit.is_none() {
            return Err(c.at(
                rs_at,
                "resync.request.emit",
                "a `socketio` resync request needs `emit`",
            ));
        }
    }
    // poll, rate_limit
    if let Some(names) = &p.poll.refetch {
        let at = c.find("[poll]");
        check_refs(at..c.text.len(), "poll", names)?;
    }
    if let Some(l) = &p.rate_limit {
        if l.requests == 0 || l.window_ms == 0 {
            return Err(c.at(
                c.find("[rate_limit]"),
                "rate_limit",
                "`requests` and `window_ms` must be above 0",
            ));
        }
    }
    // events
    for (i, rule) in p.event.iter().enumerate() {
        let span = rule.span();
        let r = rule.get_ref();
        let field = format!("[[event]] #{} ({:?})", i + 1, r.name);
        if r.name.is_empty() {
            return Err(c.at(span.start, format!("{field}.name"), "must not be empty"));
        }
        let needs_kind_id = matches!(r.op, Op::Upsert | Op::Patch | Op::Delete | Op::Append);
        if needs_kind_id && r.kind.is_none() {
            return Err(c.at(span.start, format!("{field}.kind"), format!("`op = \"{}\"` needs `kind` (agent, ticket, approval, conversation, message, notification, stats)", op_name(r.op))));
        }
        if needs_kind_id && r.id.is_none() {
            return Err(c.at(span.start, format!("{field}.id"), format!("`op = \"{}\"` needs `id`, the JSON pointer of the entity id (e.g. \"/agentId\")", op_name(r.op))));
        }
        match r.op {
            Op::Stats if r.scope.is_none() => {
                return Err(c.at(
                    span.start,
                    format!("{field}.scope"),
                    "`op = \"stats\"` needs `scope`, the stats block's id (e.g. \"tasks\")",
                ))
            }
            Op::Append if r.field.is_none() => {
                return Err(c.at(
                    span.start,
                    format!("{field}.field"),
                    "`op = \"append\"` needs `field`, the array to append to",
                ))
            }
            Op::Replace if r.kind.is_none() || r.items.is_none() => {
                return Err(c.at(
                    span.start,
                    format!("{field}.items"),
                    "`op = \"replace\"` needs `kind` and `items` (JSON pointer of the list)",
                ))
            }
            Op::Refetch if r.refetch.is_empty() => {
                return Err(c.at(
                    span.start,
                    format!("{field}.refetch"),
                    "`op = \"refetch\"` needs `refetch`, the REST resources to load",
                ))
            }
            _ => {}
        }
        check_shape(
            c,
            span.clone(),
            &field,
            r.id.as_deref(),
            r.data.as_deref(),
            &r.fields,
        )?;
        for (k, _) in r.when.iter().chain(r.unless.iter()) {
            if !pointer_ok(k) || k.is_empty() {
                return Err(c.at(
                    span.start,
                    format!("{field}.when"),
                    format!("{k:?} is not a JSON pointer (\"/action\")"),
                ));
            }
        }
        if let Some(items) = &r.items {
            if !pointer_ok(items) {
                return Err(c.at(
                    c.key_in(span.clone(), "items"),
                    format!("{field}.items"),
                    format!("{items:?} is not a JSON pointer"),
                ));
            }
        }
        check_refs(span, &field, &r.refetch)?;
    }
    // actions
    for (name, spec) in &p.actions {
        check_action(c, p, name, spec.span(), spec.get_ref())?;
    }
    Ok(())
}

/// Check one `[actions.NAME]`: a known action, a method that changes something, a
/// path, templates that use only the variables the action gives, pointers, statuses.
fn check_action(
    c: &Checker<'_>,
    p: &ProfileFile,
    name: &str,
    span: std::ops::Range<usize>,
    a: &schema::ActionSpec,
) -> Result<(), ProfileError> {
    let field = format!("actions.{name}");
    let Some(kind) = crate::actions::ActionKind::parse(name) else {
        let known = crate::actions::ActionKind::ALL.map(|k| k.name()).join(", ");
        return Err(c.at(
            span.start,
            field,
            format!("unknown action `{name}` (known: {known})"),
        ));
    };
    let at = |key: &str| c.key_in(span.clone(), key);
    if !matches!(
        a.method.to_ascii_uppercase().as_str(),
        "POST" | "PUT" | "PATCH" | "DELETE"
    ) {
        return Err(c.at(
            at("method"),
            format!("{field}.method"),
            format!(
                "{:?} is not a method that acts (POST, PUT, PATCH or DELETE)",
                a.method
            ),
        ));
    }
    if !a.path.starts_with('/') {
        return Err(c.at(at("path"), format!("{field}.path"), "must start with `/`"));
    }
    let mut allowed: Vec<&str> = vec!["id", "tenant", "profile"];
    allowed.extend(kind.variables());
    allowed.extend(p.vars.keys().map(String::as_str));
    let check_template = |key: &str, text: &str| -> Result<(), ProfileError> {
        for n in names(text) {
            if !allowed.contains(&n.as_str()) {
                return Err(c.at(
                    at(key),
                    format!("{field}.{key}"),
                    format!(
                        "no variable `{{{n}}}` for `{name}` (it gives {})",
                        allowed
                            .iter()
                            .map(|v| format!("{{{v}}}"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                ));
            }
        }
        Ok(())
    };
    check_template("path", &a.path)?;
    fn strings<'v>(v: &'v toml::Value, out: &mut Vec<&'v str>) {
        match v {
            toml::Value::String(s) => out.push(s),
            toml::Value::Array(a) => a.iter().for_each(|v| strings(v, out)),
            toml::Value::Table(t) => t.values().for_each(|v| strings(v, out)),
            _ => {}
        }
    }
    let mut texts = Vec::new();
    if let Some(b) = &a.body {
        strings(b, &mut texts);
    }
    for t in texts {
        check_template("body", t)?;
    }
    let mut texts = Vec::new();
    a.optimistic.values().for_each(|v| strings(v, &mut texts));
    for t in texts {
        check_template("optimistic", t)?;
    }
    for (key, codes) in [("success", &a.success), ("conflict", &a.conflict)] {
        if let Some(bad) = codes.iter().find(|s| !(100..=599).contains(*s)) {
            return Err(c.at(
                at(key),
                format!("{field}.{key}"),
                format!("{bad} is not an HTTP status"),
            ));
        }
    }
    if let Some(both) = a.success.iter().find(|s| a.conflict.contains(s)) {
        return Err(c.at(
            at("conflict"),
            format!("{field}.conflict"),
            format!("{both} cannot mean both success and conflict"),
        ));
    }
    for (key, ptr) in [
        ("entity", a.entity.as_deref()),
        ("current", a.current.as_deref()),
        ("message", a.message.as_deref()),
    ] {
        if let Some(ptr) = ptr.filter(|p| !pointer_ok(p)) {
            return Err(c.at(
                at(key),
                format!("{field}.{key}"),
                format!("{ptr:?} is not a JSON pointer (\"\" or \"/a/b\")"),
            ));
        }
    }
    for k in a.success_when.keys() {
        if k.is_empty() || !pointer_ok(k) {
            return Err(c.at(
                at("success_when"),
                format!("{field}.success_when"),
                format!("{k:?} is not a JSON pointer (\"/success\")"),
            ));
        }
    }
    Ok(())
}

fn op_name(op: Op) -> &'static str {
    match op {
        Op::Upsert => "upsert",
        Op::Patch => "patch",
        Op::Delete => "delete",
        Op::Append => "append",
        Op::Stats => "stats",
        Op::Replace => "replace",
        Op::Refetch => "refetch",
        Op::Ignore => "ignore",
        Op::Notice => "notice",
    }
}

fn check_shape(
    c: &Checker<'_>,
    span: std::ops::Range<usize>,
    field: &str,
    id: Option<&str>,
    data: Option<&str>,
    fields: &std::collections::BTreeMap<String, String>,
) -> Result<(), ProfileError> {
    if let Some(id) = id {
        if id.is_empty() || !id.starts_with('/') {
            return Err(c.at(
                c.key_in(span.clone(), "id"),
                format!("{field}.id"),
                format!("{id:?} is not a JSON pointer to the id (e.g. \"/id\")"),
            ));
        }
    }
    if let Some(d) = data {
        if d != "-" && !pointer_ok(d) {
            return Err(c.at(
                c.key_in(span.clone(), "data"),
                format!("{field}.data"),
                format!("{d:?} is not a JSON pointer (\"\" = the whole payload, \"-\" = none)"),
            ));
        }
    }
    for (target, ptr) in fields {
        if !pointer_ok(ptr) {
            return Err(c.at(
                c.key_in(span.clone(), "fields"),
                format!("{field}.fields.{target}"),
                format!("{ptr:?} is not a JSON pointer"),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
