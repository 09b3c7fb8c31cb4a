//! One socket to a profile server, whatever its transport: a plain JSON WebSocket
//! ([`JsonWsConnection`]) or a Socket.IO client, opened as the profile says and
//! read as one stream of [`Received`] messages.
//!
//! Invariants:
//! - the token goes only where the profile places it (header, query, first
//!   message, Socket.IO `auth`), and errors never carry it;
//! - a close that the profile names as a refusal (close code, `connect_error`
//!   message, a Socket.IO server disconnect within `auth.refused_disconnect_ms`
//!   of the namespace being accepted) is reported as `unauthorized`, so the
//!   runner refreshes the token;
//! - a jsonws server that accepted the socket but never sent `auth.ready` is an
//!   error that says so (a refusal when `auth.silence_is_refusal`);
//! - a Socket.IO event that asks for an ack is acknowledged at once (receipt).

use std::sync::Mutex;
use std::time::Duration;

use serde_json::Value;
use tokio::time::Instant;

use super::schema::{PingMode, Placement, TransportKind, VarValue};
use super::template::{render, render_value, Escape, Vars};
use super::Profile;
use crate::auth::Secret;
use crate::session::SessionCx;
use crate::transport::jsonws::{self, Envelope, JsonWsConfig, JsonWsConnection, TokenPlacement};
use crate::transport::socketio::{
    self as sio, QueryToken, RecoveryState, SioIncoming, SocketIoClient, SocketIoError,
    SocketIoOptions,
};
use crate::transport::ConnectError;

/// Why a socket could not be opened.
pub(super) enum Open {
    /// The server refused the credentials (with its words).
    Unauthorized(String),
    /// The socket itself could not be had (upgrade answered with another
    /// status, connection refused or reset on the socket path, a handshake that
    /// failed) while the server may still answer REST: the fallback is tried.
    Refused(String),
    /// Anything else (a bad profile, a server that accepted the socket but did
    /// not confirm the credentials).
    Failed(String),
}

impl crate::auth::Refusal for Open {
    fn refusal(&self) -> Option<&str> {
        match self {
            Open::Unauthorized(m) => Some(m),
            Open::Refused(_) | Open::Failed(_) => None,
        }
    }
}

/// One message from either transport.
#[derive(Debug)]
pub(super) enum Received {
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

/// A Socket.IO event to emit: its name and its one argument, if any.
pub(super) type Emit = (String, Option<Value>);

/// An open socket.
pub(super) enum Socket {
    Ws {
        conn: Box<JsonWsConnection>,
        envelope: Envelope,
        auth_codes: Vec<u16>,
    },
    Sio {
        client: SocketIoClient,
        decode_errors: u64,
        keep_recovery: bool,
        /// When the namespace was accepted.
        opened: Instant,
        /// A server disconnect before `opened + refused_within` is a refusal.
        refused_within: Duration,
    },
}

fn ws_in(envelope: &Envelope, m: jsonws::Incoming, auth_codes: &[u16]) -> Received {
    match m {
        jsonws::Incoming::Text(t) => match envelope.decode(&t) {
            Ok(e) => Received::Event {
                name: e.event_type,
                data: e.data,
                ts: e.ts,
            },
            Err(e) => Received::Garbage(e.0),
        },
        jsonws::Incoming::Binary(n) => Received::Garbage(format!("binary message of {n} bytes")),
        jsonws::Incoming::Pong => Received::Alive,
        jsonws::Incoming::Closed { code, reason } => Received::Closed {
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

/// `m` read as a [`Received`]; `early` says whether the link is still within the
/// window in which a server disconnect means "credentials refused".
fn sio_in(m: SioIncoming, early: bool) -> Received {
    match m {
        SioIncoming::Event(ev) => {
            let mut args = ev.args;
            let data = match args.len() {
                0 => Value::Null,
                1 => args.pop().unwrap_or(Value::Null),
                _ => Value::Array(args),
            };
            Received::Event {
                name: ev.name,
                data,
                ts: None,
            }
        }
        SioIncoming::Disconnected { reason } => {
            let unauthorized = match &reason {
                sio::DisconnectReason::ConnectError(m) => {
                    SocketIoError::from_connect_error(Some(&Value::String(m.clone())))
                        .is_auth_failure()
                }
                sio::DisconnectReason::ServerDisconnect => early,
                _ => false,
            };
            let reason = if unauthorized && reason == sio::DisconnectReason::ServerDisconnect {
                "the server disconnected right after accepting the connection (a refused token)"
                    .to_owned()
            } else {
                reason.to_string()
            };
            Received::Closed {
                unauthorized,
                reason,
            }
        }
    }
}

impl Socket {
    pub(super) fn is_ws(&self) -> bool {
        matches!(self, Socket::Ws { .. })
    }

    pub(super) fn recovered(&self) -> bool {
        match self {
            Socket::Ws { .. } => false,
            Socket::Sio { client, .. } => client.recovered(),
        }
    }

    pub(super) async fn recv(&mut self) -> Received {
        match self {
            Socket::Ws {
                conn,
                envelope,
                auth_codes,
            } => ws_in(envelope, conn.recv().await, auth_codes),
            Socket::Sio {
                client,
                opened,
                refused_within,
                ..
            } => {
                let m = client.recv().await;
                ack_receipt(client, &m);
                sio_in(m, opened.elapsed() < *refused_within)
            }
        }
    }

    pub(super) fn try_recv(&mut self) -> Option<Received> {
        match self {
            Socket::Ws {
                conn,
                envelope,
                auth_codes,
            } => conn.try_recv().map(|m| ws_in(envelope, m, auth_codes)),
            Socket::Sio {
                client,
                opened,
                refused_within,
                ..
            } => client.try_recv().map(|m| {
                ack_receipt(client, &m);
                sio_in(m, opened.elapsed() < *refused_within)
            }),
        }
    }

    pub(super) fn count_decode_errors(&mut self, cx: &SessionCx) {
        if let Socket::Sio {
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

    pub(super) async fn ping(&mut self, mode: PingMode, text: &str) -> Result<(), String> {
        match (self, mode) {
            (Socket::Ws { conn, .. }, PingMode::Ws) => conn.ping().await,
            (Socket::Ws { conn, .. }, PingMode::Text) => conn.send_text(text.to_owned()).await,
            _ => Ok(()),
        }
    }

    pub(super) async fn send(
        &mut self,
        text: Option<String>,
        emit: Option<Emit>,
    ) -> Result<(), String> {
        match self {
            Socket::Ws { conn, .. } => match text {
                Some(t) => conn.send_text(t).await,
                None => Ok(()),
            },
            Socket::Sio { client, .. } => match emit {
                Some((name, data)) => client
                    .emit(&name, data.into_iter().collect())
                    .map_err(|e| e.to_string()),
                None => Ok(()),
            },
        }
    }

    /// Close, keeping what Socket.IO needs to recover the session next time.
    pub(super) async fn close(&mut self, recovery: &Mutex<Option<RecoveryState>>) {
        match self {
            Socket::Ws { conn, .. } => conn.close().await,
            Socket::Sio {
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

pub(super) async fn open(
    profile: &Profile,
    recovery: &Mutex<Option<RecoveryState>>,
    server: url::Url,
    token: Option<&Secret>,
    vars: &Vars,
) -> Result<(Socket, Vec<Received>), Open> {
    let spec = &profile.spec;
    let origin = &profile.origin;
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
                        e @ (ConnectError::Refused { .. } | ConnectError::Network(_)) => {
                            Open::Refused(e.to_string())
                        }
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
                        let why = format!(
                            "the server accepted the socket but did not confirm the credentials \
                             (no `{ready}` within {} ms)",
                            spec.auth.ready_timeout_ms
                        );
                        return Err(if spec.auth.silence_is_refusal {
                            Open::Unauthorized(why)
                        } else {
                            Open::Failed(why)
                        });
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
                            let m = ws_in(&envelope, other, &spec.auth.unauthorized_close_codes);
                            if matches!(&m, Received::Event { name, .. } if name == ready) {
                                early.push(m);
                                break;
                            }
                            early.push(m);
                        }
                    }
                }
            }
            Ok((
                Socket::Ws {
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
                        return Err(Open::Failed("the token cannot be sent in a header".into()));
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
                opts.recovery = recovery.lock().expect("recovery lock").clone();
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
                } if spec.auth.unauthorized_status.contains(&status) => Open::Unauthorized(message),
                e @ (SocketIoError::UpgradeRefused { .. }
                | SocketIoError::Network(_)
                | SocketIoError::Protocol(_)
                | SocketIoError::ConnectError { .. }) => Open::Refused(e.to_string()),
                other => Open::Failed(other.to_string()),
            })?;
            Ok((
                Socket::Sio {
                    client,
                    decode_errors: 0,
                    keep_recovery: spec.socket.recovery,
                    opened: Instant::now(),
                    refused_within: Duration::from_millis(spec.auth.refused_disconnect_ms),
                },
                Vec::new(),
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn socketio_events_map_one_argument_to_the_payload() {
        let ev = |args: Vec<Value>| {
            sio_in(
                SioIncoming::Event(sio::SioEvent {
                    name: "e".into(),
                    args,
                    ack: None,
                    offset: None,
                }),
                false,
            )
        };
        assert!(matches!(
            ev(vec![]),
            Received::Event {
                data: Value::Null,
                ..
            }
        ));
        assert!(matches!(
            ev(vec![serde_json::json!({"id": 1})]),
            Received::Event {
                data: Value::Object(_),
                ..
            }
        ));
        assert!(
            matches!(ev(vec![Value::from(1), Value::from(2)]), Received::Event { data: Value::Array(a), .. } if a.len() == 2)
        );
    }

    #[test]
    fn a_server_disconnect_right_after_connect_is_a_refusal_later_a_kick() {
        let kick = |early| {
            sio_in(
                SioIncoming::Disconnected {
                    reason: sio::DisconnectReason::ServerDisconnect,
                },
                early,
            )
        };
        assert!(matches!(
            kick(true),
            Received::Closed {
                unauthorized: true,
                ..
            }
        ));
        assert!(matches!(
            kick(false),
            Received::Closed {
                unauthorized: false,
                ..
            }
        ));
        let lost = sio_in(
            SioIncoming::Disconnected {
                reason: sio::DisconnectReason::PingTimeout,
            },
            true,
        );
        assert!(matches!(
            lost,
            Received::Closed {
                unauthorized: false,
                ..
            }
        ));
    }
}
