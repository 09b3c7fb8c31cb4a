//! [`ProfileDialect`]: runs a profile as a session [`Dialect`] over `jsonws` or
//! `socketio`.
//!
//! One call of [`Dialect::run_connection`] is one connection:
//! 1. a token from the session (refreshed once if the server refuses it; refused
//!    again, [`End::Unauthorized`]), `{tenant}` from the profile's vars or the
//!    token's claims;
//! 2. open the socket (token where the profile says), wait for its `ready` event;
//! 3. join rooms / send subscriptions;
//! 4. resync: nothing when Socket.IO recovered the session; otherwise the resync
//!    request, the server's own pushes, and/or a REST refetch — the state becomes
//!    `Live` once the cache is up to date;
//! 5. stream: map every event, commit each batch with `commit_local`, refetch what
//!    events invalidate, answer pings, close a silent link.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use pulse_protocol::domain::{Change, EntityKind};
use serde_json::Value;
use tokio::time::Instant;
use tracing::{debug, info, warn};

use super::map::{replacement_changes, Effect, MapError, Mapper};
use super::schema::{PingMode, Placement, RequestWhen, TransportKind, VarValue};
use super::template::{render, render_value, Escape, Vars};
use super::Profile;
use crate::auth::Secret;
use crate::session::{Dialect, End, LocalEvent, SessionCx};
use crate::transport::jsonws::{self, Envelope, JsonWsConfig, JsonWsConnection, TokenPlacement};
use crate::transport::socketio::{
    self as sio, QueryToken, RecoveryState, SioIncoming, SocketIoClient, SocketIoError,
    SocketIoOptions,
};
use crate::transport::ConnectError;

/// Runs a [`Profile`] for a session (`SessionConfig::dialect`).
pub struct ProfileDialect {
    profile: Arc<Profile>,
    mapper: Mapper,
    vars: Vars,
    http: reqwest::Client,
    /// A connection succeeded before (the next one is a reconnect).
    connected_before: AtomicBool,
    /// The server closed the link as unauthorized: refresh the token first.
    refresh_next: AtomicBool,
    /// Socket.IO session to resume.
    recovery: Mutex<Option<RecoveryState>>,
}

impl std::fmt::Debug for ProfileDialect {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProfileDialect")
            .field("profile", &self.profile.origin)
            .finish()
    }
}

impl ProfileDialect {
    /// Run `profile`.
    pub fn new(profile: Profile) -> ProfileDialect {
        let rules: Vec<_> = profile
            .spec
            .event
            .iter()
            .map(|r| r.get_ref().clone())
            .collect();
        let rest: BTreeMap<_, _> = profile
            .spec
            .rest
            .iter()
            .map(|(k, v)| (k.clone(), v.get_ref().clone()))
            .collect();
        let mapper = Mapper::new(&rules, &rest);
        let vars = profile.spec.vars.clone();
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(60))
            .user_agent(concat!("pulse/", env!("CARGO_PKG_VERSION")))
            .build()
            .unwrap_or_default();
        ProfileDialect {
            profile: Arc::new(profile),
            mapper,
            vars,
            http,
            connected_before: AtomicBool::new(false),
            refresh_next: AtomicBool::new(false),
            recovery: Mutex::new(None),
        }
    }

    /// Set a template variable (overrides the profile's `[vars]`), e.g. `tenant`.
    pub fn with_var(mut self, name: &str, value: VarValue) -> Self {
        self.vars.insert(name.to_owned(), value);
        self
    }

    /// The profile.
    pub fn profile(&self) -> &Profile {
        &self.profile
    }

    async fn connection(&self, cx: &mut SessionCx) -> End {
        let spec = &self.profile.spec;
        let needs_token = spec.auth.placement != Placement::None || !spec.rest.is_empty();
        let mut refreshed = self.refresh_next.swap(false, Ordering::AcqRel);
        let mut token = if needs_token {
            match cx.token(refreshed).await {
                Ok(t) => Some(t),
                Err(end) => return end,
            }
        } else {
            None
        };
        let mut vars = self.vars.clone();
        vars.insert("profile".into(), VarValue::One(spec.name.clone()));
        if !matches!(vars.get("tenant"), Some(VarValue::One(t)) if !t.is_empty()) {
            vars.remove("tenant");
            if let Some(t) = token
                .as_ref()
                .and_then(|t| claim(t, &spec.auth.tenant_claims))
            {
                vars.insert("tenant".into(), VarValue::One(t));
            }
        }
        let stream = match &cx.config().stream {
            Some(s) => s.clone(),
            None => {
                let tpl = spec.stream.clone().unwrap_or_else(|| {
                    if vars.contains_key("tenant") {
                        "{profile}:{tenant}".into()
                    } else {
                        "{profile}".into()
                    }
                });
                match render(&tpl, &vars, Escape::Raw) {
                    Ok(s) => s,
                    Err(e) => {
                        return End::Lost(format!("profile {}: stream: {e}", self.profile.origin))
                    }
                }
            }
        };
        cx.describe(&stream, spec.caveat.clone());

        // 1-2. open, refreshing a refused token once.
        let reconnect = self.connected_before.load(Ordering::Acquire);
        let (mut link, early) = loop {
            let opened = tokio::select! {
                r = self.open(cx.config().server.clone(), token.as_ref(), &vars) => r,
                end = cx.interrupted() => return end,
            };
            match opened {
                Ok(ok) => break ok,
                Err(Open::Unauthorized(msg)) if !refreshed && needs_token => {
                    debug!(profile = %spec.name, "credentials refused; refreshing once");
                    refreshed = true;
                    token = match cx.token(true).await {
                        Ok(t) => Some(t),
                        Err(End::Unauthorized(why)) => {
                            return End::Unauthorized(format!(
                                "the server refused the credentials ({msg}); {why}"
                            ))
                        }
                        Err(end) => return end,
                    };
                }
                Err(Open::Unauthorized(msg)) => {
                    return End::Unauthorized(if msg.is_empty() {
                        "the server refused the credentials".into()
                    } else {
                        format!("the server refused the credentials: {msg}")
                    })
                }
                Err(Open::Failed(msg)) => return End::Lost(msg),
            }
        };
        cx.connected();
        self.connected_before.store(true, Ordering::Release);
        let recovered = link.recovered();
        info!(profile = %spec.name, %stream, reconnect, recovered, "connected");

        let mut run = Run {
            d: self,
            stream,
            token,
            pending: Vec::new(),
            refetch: BTreeSet::new(),
            awaited: BTreeSet::new(),
            live: false,
        };
        // 3. joins
        if let Err(end) = run.join(&mut link, &vars).await {
            return run.finish(&mut link, end).await;
        }
        // 4. resync plan
        let mut deadline: Option<Instant> = None;
        if recovered {
            debug!("session recovered by the server: missed events are replayed");
        } else {
            if let Some(req) = &spec.resync.request {
                if req.when == RequestWhen::Always || reconnect {
                    if let Err(end) = run.request(&mut link, &vars).await {
                        return run.finish(&mut link, end).await;
                    }
                    run.awaited.insert(req.answer.clone());
                }
            }
            run.awaited.extend(spec.resync.pushes.iter().cloned());
            if run.awaited.is_empty() {
                run.refetch.extend(spec.resync.refetch.iter().cloned());
            } else {
                deadline = Some(Instant::now() + Duration::from_millis(spec.resync.timeout_ms));
            }
        }
        for msg in early {
            if let Err(end) = run.handle(&mut link, msg, cx).await {
                // What arrived before the link ended is still committed.
                let end = match run.commit(cx) {
                    Ok(()) => end,
                    Err(e) => e,
                };
                return run.finish(&mut link, end).await;
            }
        }
        if let Err(end) = run.flush(cx).await {
            return run.finish(&mut link, end).await;
        }
        if run.awaited.is_empty() {
            deadline = None;
            run.go_live(cx);
        }

        // 5. stream
        let hb = &spec.heartbeat;
        let interval = Duration::from_millis(hb.interval_ms);
        let silence = interval + Duration::from_millis(hb.timeout_ms);
        let pinging = link.is_ws() && hb.mode != PingMode::None;
        let mut last_rx = Instant::now();
        let mut next_ping = Instant::now() + interval;
        loop {
            let mut wake = if pinging {
                next_ping.min(last_rx + silence)
            } else {
                // Socket.IO: the client has its own heartbeat; wake now and then to
                // count frames it skipped as undecodable.
                Instant::now() + Duration::from_secs(1)
            };
            if let Some(d) = deadline {
                wake = wake.min(d);
            }
            let msg = tokio::select! {
                end = cx.interrupted() => return run.finish(&mut link, end).await,
                m = link.recv() => Some(m),
                _ = tokio::time::sleep_until(wake) => None,
            };
            let now = Instant::now();
            let Some(first) = msg else {
                link.count_decode_errors(cx);
                if let Some(d) = deadline {
                    if now >= d {
                        deadline = None;
                        let missing: Vec<_> = run.awaited.iter().cloned().collect();
                        run.awaited.clear();
                        if spec.resync.refetch.is_empty() {
                            warn!(?missing, "the server did not send its state in time; data may be stale until the next update");
                        } else {
                            info!(
                                ?missing,
                                "the server did not send its state in time; refetching over REST"
                            );
                            run.refetch.extend(spec.resync.refetch.iter().cloned());
                        }
                        if let Err(end) = run.flush(cx).await {
                            return run.finish(&mut link, end).await;
                        }
                        run.go_live(cx);
                    }
                }
                if pinging {
                    if now >= last_rx + silence {
                        let end = End::Lost(format!(
                            "no message from the server for {} ms (dead link)",
                            silence.as_millis()
                        ));
                        return run.finish(&mut link, end).await;
                    }
                    if now >= next_ping {
                        next_ping = now + interval;
                        if let Err(e) = link.ping(hb.mode, &hb.text).await {
                            return run.finish(&mut link, End::Lost(e)).await;
                        }
                    }
                }
                continue;
            };
            last_rx = now;
            next_ping = now + interval;
            let mut next = Some(first);
            let mut n = 0usize;
            while let Some(m) = next.take() {
                if let Err(end) = run.handle(&mut link, m, cx).await {
                    // What arrived before the link ended is still committed.
                    let end = match run.commit(cx) {
                        Ok(()) => end,
                        Err(e) => e,
                    };
                    return run.finish(&mut link, end).await;
                }
                n += 1;
                if n < cx.config().max_batch {
                    next = link.try_recv();
                }
            }
            link.count_decode_errors(cx);
            if let Err(end) = run.flush(cx).await {
                return run.finish(&mut link, end).await;
            }
            if !run.live && run.awaited.is_empty() {
                deadline = None;
                run.go_live(cx);
            }
        }
    }

    async fn open(
        &self,
        server: url::Url,
        token: Option<&Secret>,
        vars: &Vars,
    ) -> Result<(Link, Vec<In>), Open> {
        let spec = &self.profile.spec;
        let origin = &self.profile.origin;
        match spec.transport {
            TransportKind::Jsonws => {
                let path = spec.socket.path.as_deref().unwrap_or("/ws");
                let path = render(path, vars, Escape::Raw)
                    .map_err(|e| Open::Failed(format!("profile {origin}: socket.path: {e}")))?;
                let url =
                    jsonws::socket_url(&server, &path).map_err(|e| Open::Failed(e.to_string()))?;
                let mut config = JsonWsConfig::new(url);
                config.token = match spec.auth.placement {
                    Placement::None | Placement::SocketioAuth => TokenPlacement::None,
                    Placement::Header => TokenPlacement::Header {
                        name: spec.auth.header.clone(),
                        prefix: spec.auth.prefix.clone(),
                    },
                    Placement::Query => TokenPlacement::Query {
                        param: spec.auth.param.clone(),
                    },
                    Placement::FirstMessage => {
                        // Render everything but the token, which the transport inserts.
                        let mut v = vars.clone();
                        v.insert("token".into(), VarValue::One("{token}".into()));
                        let tpl = spec.auth.message.clone().unwrap_or_default();
                        TokenPlacement::FirstMessage {
                            template: render(&tpl, &v, Escape::JsonString).map_err(|e| {
                                Open::Failed(format!("profile {origin}: auth.message: {e}"))
                            })?,
                        }
                    }
                };
                config.headers = spec
                    .socket
                    .headers
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect();
                config.unauthorized_status = spec.auth.unauthorized_status.clone();
                let token = if spec.auth.placement == Placement::None {
                    None
                } else {
                    token
                };
                let mut conn =
                    JsonWsConnection::connect(&config, token)
                        .await
                        .map_err(|e| match e {
                            ConnectError::Unauthorized(m) => Open::Unauthorized(m),
                            other => Open::Failed(other.to_string()),
                        })?;
                let envelope = Envelope {
                    type_path: spec.envelope.type_path.clone(),
                    data_path: spec.envelope.data.clone(),
                    ts_path: spec.envelope.ts.clone(),
                };
                let mut early = Vec::new();
                if let Some(ready) = &spec.auth.ready {
                    let until = Instant::now() + Duration::from_millis(spec.auth.ready_timeout_ms);
                    loop {
                        let got = tokio::time::timeout_at(until, conn.recv()).await;
                        let Ok(got) = got else {
                            return Err(Open::Failed(format!(
                                "the server did not send `{ready}` in time"
                            )));
                        };
                        match got {
                            jsonws::Incoming::Closed { code, reason } => {
                                return Err(
                                    if code.is_some_and(|c| {
                                        spec.auth.unauthorized_close_codes.contains(&c)
                                    }) {
                                        Open::Unauthorized(reason)
                                    } else {
                                        Open::Failed(reason)
                                    },
                                )
                            }
                            jsonws::Incoming::Pong => {}
                            other => {
                                let m =
                                    ws_in(&envelope, other, &spec.auth.unauthorized_close_codes);
                                if matches!(&m, In::Event { name, .. } if name == ready) {
                                    early.push(m);
                                    break;
                                }
                                early.push(m);
                            }
                        }
                    }
                }
                Ok((
                    Link::Ws {
                        conn: Box::new(conn),
                        envelope,
                        auth_codes: spec.auth.unauthorized_close_codes.clone(),
                    },
                    early,
                ))
            }
            TransportKind::Socketio => {
                let mut opts = SocketIoOptions::new(server);
                opts.path = spec
                    .socket
                    .path
                    .clone()
                    .unwrap_or_else(|| sio::DEFAULT_PATH.into());
                opts.namespace = spec.socket.namespace.clone();
                opts.transports = spec
                    .socket
                    .transports
                    .iter()
                    .map(|t| {
                        if t == "polling" {
                            sio::TransportKind::Polling
                        } else {
                            sio::TransportKind::WebSocket
                        }
                    })
                    .collect();
                for (k, v) in &spec.socket.headers {
                    let (Ok(name), Ok(value)) = (
                        http::header::HeaderName::from_bytes(k.as_bytes()),
                        v.parse(),
                    ) else {
                        return Err(Open::Failed(format!("profile {origin}: bad header `{k}`")));
                    };
                    opts.headers.insert(name, value);
                }
                match (spec.auth.placement, token) {
                    (Placement::SocketioAuth, Some(t)) => {
                        let mut v = vars.clone();
                        v.insert("token".into(), VarValue::One(t.expose().to_owned()));
                        let tpl = spec.auth.payload.clone().unwrap_or_else(|| {
                            toml::Value::Table(toml::map::Map::from_iter([(
                                "token".to_string(),
                                toml::Value::String("{token}".into()),
                            )]))
                        });
                        opts.auth = Some(render_value(&tpl, &v).map_err(|e| {
                            Open::Failed(format!("profile {origin}: auth.payload: {e}"))
                        })?);
                    }
                    (Placement::Header, Some(t)) => {
                        let (Ok(name), Ok(value)) = (
                            http::header::HeaderName::from_bytes(spec.auth.header.as_bytes()),
                            format!("{}{}", spec.auth.prefix, t.expose()).parse(),
                        ) else {
                            return Err(Open::Failed(
                                "the token cannot be sent in a header".into(),
                            ));
                        };
                        opts.headers.insert(name, value);
                    }
                    (Placement::Query, Some(t)) => {
                        opts.query_token = Some(QueryToken {
                            name: spec.auth.param.clone(),
                            token: t.clone(),
                        })
                    }
                    _ => {}
                }
                if spec.socket.recovery {
                    opts.recovery = self.recovery.lock().expect("recovery lock").clone();
                }
                let client = SocketIoClient::connect(opts).await.map_err(|e| match e {
                    SocketIoError::Unauthorized { message, .. } => Open::Unauthorized(message),
                    SocketIoError::ConnectError { message, .. }
                        if spec
                            .auth
                            .unauthorized_messages
                            .iter()
                            .any(|w| message.to_lowercase().contains(w.as_str())) =>
                    {
                        Open::Unauthorized(message)
                    }
                    SocketIoError::UpgradeRefused {
                        status, message, ..
                    } if spec.auth.unauthorized_status.contains(&status) => {
                        Open::Unauthorized(message)
                    }
                    other => Open::Failed(other.to_string()),
                })?;
                Ok((
                    Link::Sio {
                        client,
                        decode_errors: 0,
                        keep_recovery: spec.socket.recovery,
                    },
                    Vec::new(),
                ))
            }
        }
    }
}

impl Dialect for ProfileDialect {
    fn run_connection<'a>(
        &'a self,
        cx: &'a mut SessionCx,
    ) -> Pin<Box<dyn Future<Output = End> + Send + 'a>> {
        Box::pin(self.connection(cx))
    }
}

/// A claim of the token's JWT payload (unverified: only to fill `{tenant}`).
fn claim(token: &Secret, names: &[String]) -> Option<String> {
    let v = token.jwt_payload()?;
    names.iter().find_map(|n| match v.get(n) {
        Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
        Some(Value::Number(x)) => Some(x.to_string()),
        _ => None,
    })
}

enum Open {
    Unauthorized(String),
    Failed(String),
}

/// One message from either transport.
#[derive(Debug)]
enum In {
    Event {
        name: String,
        data: Value,
        ts: Option<i64>,
    },
    Garbage(String),
    Alive,
    Closed {
        unauthorized: bool,
        reason: String,
    },
}

enum Link {
    Ws {
        conn: Box<JsonWsConnection>,
        envelope: Envelope,
        auth_codes: Vec<u16>,
    },
    Sio {
        client: SocketIoClient,
        decode_errors: u64,
        keep_recovery: bool,
    },
}

fn ws_in(envelope: &Envelope, m: jsonws::Incoming, auth_codes: &[u16]) -> In {
    match m {
        jsonws::Incoming::Text(t) => match envelope.decode(&t) {
            Ok(e) => In::Event {
                name: e.event_type,
                data: e.data,
                ts: e.ts,
            },
            Err(e) => In::Garbage(e.0),
        },
        jsonws::Incoming::Binary(n) => In::Garbage(format!("binary message of {n} bytes")),
        jsonws::Incoming::Pong => In::Alive,
        jsonws::Incoming::Closed { code, reason } => In::Closed {
            unauthorized: code.is_some_and(|c| auth_codes.contains(&c)),
            reason,
        },
    }
}

/// A server event that asks for an ack is acknowledged at once with no arguments
/// (receipt): a generic client cannot know what a dashboard handler would answer.
fn ack_receipt(client: &SocketIoClient, m: &SioIncoming) {
    if let SioIncoming::Event(sio::SioEvent { ack: Some(id), .. }) = m {
        if let Err(e) = client.ack(*id, Vec::new()) {
            tracing::debug!(error = %e, "could not acknowledge a server event");
        }
    }
}

fn sio_in(m: SioIncoming) -> In {
    match m {
        SioIncoming::Event(ev) => {
            let mut args = ev.args;
            let data = match args.len() {
                0 => Value::Null,
                1 => args.pop().unwrap_or(Value::Null),
                _ => Value::Array(args),
            };
            In::Event {
                name: ev.name,
                data,
                ts: None,
            }
        }
        SioIncoming::Disconnected { reason } => In::Closed {
            unauthorized: matches!(&reason, sio::DisconnectReason::ConnectError(m) if SocketIoError::from_connect_error(Some(&Value::String(m.clone()))).is_auth_failure()),
            reason: reason.to_string(),
        },
    }
}

impl Link {
    fn is_ws(&self) -> bool {
        matches!(self, Link::Ws { .. })
    }

    fn recovered(&self) -> bool {
        match self {
            Link::Ws { .. } => false,
            Link::Sio { client, .. } => client.recovered(),
        }
    }

    async fn recv(&mut self) -> In {
        match self {
            Link::Ws {
                conn,
                envelope,
                auth_codes,
            } => ws_in(envelope, conn.recv().await, auth_codes),
            Link::Sio { client, .. } => {
                let m = client.recv().await;
                ack_receipt(client, &m);
                sio_in(m)
            }
        }
    }

    fn try_recv(&mut self) -> Option<In> {
        match self {
            Link::Ws {
                conn,
                envelope,
                auth_codes,
            } => conn.try_recv().map(|m| ws_in(envelope, m, auth_codes)),
            Link::Sio { client, .. } => client.try_recv().map(|m| {
                ack_receipt(client, &m);
                sio_in(m)
            }),
        }
    }

    fn count_decode_errors(&mut self, cx: &SessionCx) {
        if let Link::Sio {
            client,
            decode_errors,
            ..
        } = self
        {
            let now = client.stats().decode_errors;
            for _ in *decode_errors..now {
                cx.count_decode_error();
            }
            *decode_errors = now;
        }
    }

    async fn ping(&mut self, mode: PingMode, text: &str) -> Result<(), String> {
        match (self, mode) {
            (Link::Ws { conn, .. }, PingMode::Ws) => conn.ping().await,
            (Link::Ws { conn, .. }, PingMode::Text) => conn.send_text(text.to_owned()).await,
            _ => Ok(()),
        }
    }

    async fn send(
        &mut self,
        text: Option<String>,
        emit: Option<(String, Option<Value>)>,
    ) -> Result<(), String> {
        match self {
            Link::Ws { conn, .. } => match text {
                Some(t) => conn.send_text(t).await,
                None => Ok(()),
            },
            Link::Sio { client, .. } => match emit {
                Some((name, data)) => client
                    .emit(&name, data.into_iter().collect())
                    .map_err(|e| e.to_string()),
                None => Ok(()),
            },
        }
    }

    /// Close, keeping what Socket.IO needs to recover the session next time.
    async fn close(&mut self, recovery: &Mutex<Option<RecoveryState>>) {
        match self {
            Link::Ws { conn, .. } => conn.close().await,
            Link::Sio {
                client,
                keep_recovery,
                ..
            } => {
                if *keep_recovery {
                    *recovery.lock().expect("recovery lock") = client.recovery_state();
                }
                client.close();
            }
        }
    }
}

/// State of one running connection.
struct Run<'d> {
    d: &'d ProfileDialect,
    stream: String,
    token: Option<Secret>,
    pending: Vec<LocalEvent>,
    refetch: BTreeSet<String>,
    awaited: BTreeSet<String>,
    live: bool,
}

impl Run<'_> {
    fn go_live(&mut self, cx: &mut SessionCx) {
        if !self.live {
            self.live = true;
            cx.went_live();
        }
    }

    async fn finish(&mut self, link: &mut Link, end: End) -> End {
        link.close(&self.d.recovery).await;
        end
    }

    async fn join(&mut self, link: &mut Link, vars: &Vars) -> Result<(), End> {
        let origin = &self.d.profile.origin;
        for step in &self.d.profile.spec.join {
            let step = step.get_ref();
            let items: Vec<Option<String>> = match &step.for_each {
                None => vec![None],
                Some(var) => match vars.get(var) {
                    Some(VarValue::Many(v)) => v.iter().cloned().map(Some).collect(),
                    Some(VarValue::One(v)) if v.is_empty() => Vec::new(),
                    Some(VarValue::One(v)) => vec![Some(v.clone())],
                    None => Vec::new(),
                },
            };
            for item in items {
                let mut v = vars.clone();
                if let Some(i) = item {
                    v.insert("item".into(), VarValue::One(i));
                }
                let text = match &step.send {
                    Some(t) => Some(
                        render(t, &v, Escape::JsonString)
                            .map_err(|e| End::Lost(format!("profile {origin}: join: {e}")))?,
                    ),
                    None => None,
                };
                let emit = match &step.emit {
                    Some(name) => {
                        let data =
                            match &step.data {
                                Some(d) => Some(render_value(d, &v).map_err(|e| {
                                    End::Lost(format!("profile {origin}: join: {e}"))
                                })?),
                                None => None,
                            };
                        Some((name.clone(), data))
                    }
                    None => None,
                };
                debug!(emit = ?emit.as_ref().map(|e| &e.0), "joining");
                link.send(text, emit).await.map_err(End::Lost)?;
            }
        }
        Ok(())
    }

    async fn request(&mut self, link: &mut Link, vars: &Vars) -> Result<(), End> {
        let origin = &self.d.profile.origin;
        let Some(req) = &self.d.profile.spec.resync.request else {
            return Ok(());
        };
        let text = match &req.send {
            Some(t) => Some(
                render(t, vars, Escape::JsonString)
                    .map_err(|e| End::Lost(format!("profile {origin}: resync.request: {e}")))?,
            ),
            None => None,
        };
        let emit = match &req.emit {
            Some(name) => {
                let data = match &req.data {
                    Some(d) => Some(render_value(d, vars).map_err(|e| {
                        End::Lost(format!("profile {origin}: resync.request: {e}"))
                    })?),
                    None => None,
                };
                Some((name.clone(), data))
            }
            None => None,
        };
        info!(answer = %req.answer, "asking the server for its state");
        link.send(text, emit).await.map_err(End::Lost)
    }

    async fn handle(&mut self, link: &mut Link, msg: In, cx: &mut SessionCx) -> Result<(), End> {
        let spec = &self.d.profile.spec;
        match msg {
            In::Alive => Ok(()),
            In::Garbage(why) => {
                warn!(error = %why, "undecodable message skipped");
                cx.count_decode_error();
                Ok(())
            }
            In::Closed {
                unauthorized,
                reason,
            } => {
                if unauthorized {
                    self.d.refresh_next.store(true, Ordering::Release);
                }
                Err(End::Lost(reason))
            }
            In::Event { name, data, ts } => {
                if spec.heartbeat.pong_events.contains(&name) {
                    return Ok(());
                }
                if let Some(ans) = &spec.heartbeat.answer {
                    if ans.event == name {
                        let text = ans.reply.clone();
                        return link
                            .send(Some(text.clone()), Some((text, None)))
                            .await
                            .map_err(End::Lost);
                    }
                }
                self.awaited.remove(&name);
                let ts = ts.unwrap_or_else(crate::now_ms);
                match self.d.mapper.map_event(&name, &data, ts) {
                    Ok(effects) => {
                        let mut changes = Vec::new();
                        for effect in effects {
                            match effect {
                                Effect::Change(c) => changes.push(c),
                                Effect::Replace {
                                    kind,
                                    records,
                                    delete_missing,
                                } => {
                                    // Earlier events of this batch must be in the store first.
                                    if !changes.is_empty() {
                                        self.pending.push(LocalEvent {
                                            event_type: name.clone(),
                                            data: data.clone(),
                                            ts,
                                            changes: std::mem::take(&mut changes),
                                        });
                                    }
                                    self.commit(cx)?;
                                    let held = held_ids(cx, kind, &changes)?;
                                    changes.extend(replacement_changes(
                                        kind,
                                        records,
                                        delete_missing,
                                        &held,
                                    ));
                                }
                                Effect::Refetch(r) => {
                                    self.refetch.insert(r);
                                }
                            }
                        }
                        self.pending.push(LocalEvent {
                            event_type: name,
                            data,
                            ts,
                            changes,
                        });
                        Ok(())
                    }
                    Err(MapError::Unknown(n)) => {
                        debug!(event = %n, "event not in the profile; skipped");
                        cx.count_rejected();
                        Ok(())
                    }
                    Err(e) => {
                        warn!(error = %e, "event not applied");
                        cx.count_rejected();
                        Ok(())
                    }
                }
            }
        }
    }

    fn commit(&mut self, cx: &mut SessionCx) -> Result<(), End> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let events = std::mem::take(&mut self.pending);
        cx.commit_local(&self.stream, events)
    }

    /// Commit what is pending, then run the refetches it asked for.
    async fn flush(&mut self, cx: &mut SessionCx) -> Result<(), End> {
        self.commit(cx)?;
        while let Some(name) = self.refetch.pop_first() {
            self.refetch_one(cx, &name).await?;
        }
        Ok(())
    }

    async fn refetch_one(&mut self, cx: &mut SessionCx, name: &str) -> Result<(), End> {
        let spec = &self.d.profile.spec;
        let Some(res) = self.d.mapper.resource(name) else {
            return Ok(());
        };
        let url = cx
            .config()
            .server
            .join(&res.path)
            .map_err(|e| End::Lost(format!("bad REST path {}: {e}", res.path)))?;
        let mut refreshed = false;
        let body: Value = loop {
            let mut req = self.d.http.get(url.clone());
            if let Some(t) = self.token.as_ref().filter(|t| !t.expose().is_empty()) {
                req = req.bearer_auth(t.expose());
            }
            let sent = tokio::select! {
                r = req.send() => r,
                end = cx.interrupted() => return Err(end),
            };
            let resp = sent.map_err(|e| {
                End::Lost(format!(
                    "refetching `{name}` (GET {}) failed: {}",
                    res.path,
                    without_url(&e)
                ))
            })?;
            let status = resp.status().as_u16();
            if spec.auth.unauthorized_status.contains(&status) {
                if !refreshed {
                    refreshed = true;
                    self.token = Some(cx.token(true).await?);
                    continue;
                }
                return Err(End::Unauthorized(format!(
                    "the server refused the credentials for GET {} (HTTP {status})",
                    res.path
                )));
            }
            if !resp.status().is_success() {
                return Err(End::Lost(format!(
                    "refetching `{name}` (GET {}) failed: HTTP {status}",
                    res.path
                )));
            }
            let bytes = resp.bytes().await.map_err(|e| {
                End::Lost(format!(
                    "refetching `{name}` (GET {}) failed: {}",
                    res.path,
                    without_url(&e)
                ))
            })?;
            break serde_json::from_slice(&bytes).map_err(|e| {
                End::Lost(format!(
                    "refetching `{name}` (GET {}): the answer is not JSON: {e}",
                    res.path
                ))
            })?;
        };
        let ts = crate::now_ms();
        let effect = self
            .d
            .mapper
            .map_rest(name, &body, ts)
            .map_err(|e| End::Lost(format!("refetching `{name}` (GET {}): {e}", res.path)))?;
        let changes = match effect {
            Effect::Change(c) => vec![c],
            Effect::Replace {
                kind,
                records,
                delete_missing,
            } => {
                let held = held_ids(cx, kind, &[])?;
                replacement_changes(kind, records, delete_missing, &held)
            }
            Effect::Refetch(_) => Vec::new(),
        };
        debug!(resource = %name, changes = changes.len(), "refetched");
        cx.commit_local(
            &self.stream,
            vec![LocalEvent {
                event_type: format!("refetch:{name}"),
                data: serde_json::json!({ "resource": name, "path": res.path }),
                ts,
                changes,
            }],
        )
    }
}

/// Ids of `kind` in the store, adjusted by `changes` not yet committed.
fn held_ids(cx: &SessionCx, kind: EntityKind, changes: &[Change]) -> Result<Vec<String>, End> {
    let list = cx
        .store()
        .lock()
        .expect("store lock")
        .list(kind)
        .map_err(|e| End::Lost(format!("cache error: {e}")))?;
    let mut ids: BTreeSet<String> = list.into_iter().map(|e| e.id).collect();
    for c in changes.iter().filter(|c| c.kind() == kind) {
        match c {
            Change::Delete { id, .. } => {
                ids.remove(id);
            }
            other => {
                ids.insert(other.id().to_owned());
            }
        }
    }
    Ok(ids.into_iter().collect())
}

fn without_url(e: &reqwest::Error) -> String {
    // The URL has no token (REST calls send it in a header), but keep errors short.
    let mut s = e.to_string();
    if let Some(u) = e.url() {
        s = s.replace(u.as_str(), "");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tenant_claims_are_read_from_a_jwt_payload() {
        // {"sub":"ann","workspaceId":"ws1","n":7}
        let t = Secret::new("e30.eyJzdWIiOiJhbm4iLCJ3b3Jrc3BhY2VJZCI6IndzMSIsIm4iOjd9.sig");
        let names = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            claim(&t, &names(&["tenant_id", "workspaceId"])),
            Some("ws1".into())
        );
        assert_eq!(claim(&t, &names(&["n"])), Some("7".into()));
        assert_eq!(claim(&t, &names(&["tenant_id"])), None);
        assert_eq!(claim(&Secret::new("opaque-token"), &names(&["sub"])), None);
    }

    #[test]
    fn socketio_events_map_one_argument_to_the_payload() {
        let ev = |args: Vec<Value>| {
            sio_in(SioIncoming::Event(sio::SioEvent {
                name: "e".into(),
                args,
                ack: None,
                offset: None,
            }))
        };
        assert!(matches!(
            ev(vec![]),
            In::Event {
                data: Value::Null,
                ..
            }
        ));
        assert!(matches!(
            ev(vec![serde_json::json!({"id": 1})]),
            In::Event {
                data: Value::Object(_),
                ..
            }
        ));
        assert!(
            matches!(ev(vec![Value::from(1), Value::from(2)]), In::Event { data: Value::Array(a), .. } if a.len() == 2)
        );
    }
}
