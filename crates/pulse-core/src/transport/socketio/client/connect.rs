//! Opening a connection: the Engine.IO handshake over the first transport that
//! works, then the namespace CONNECT (its payload built here), answered before
//! [`SocketIoClient::connect`] returns.
//!
//! Invariants: an auth refusal or bad options never fall back to another
//! transport; the task is spawned only once a transport is open, and `connect`
//! returns only when the namespace accepted (or refused) it, or on the connect
//! timeout.

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::{Map, Value};
use tokio::sync::{mpsc, oneshot};

use super::super::packet::Decoder;
use super::super::transport::{Endpoint, Link, PollingLink, WsLink};
use super::super::{RecoveryState, SocketIoError, SocketIoOptions, TransportKind};
use super::actor::{Actor, Phase};
use super::{Shared, SioSender, SocketIoClient};

impl SocketIoClient {
    /// Open the Engine.IO session (trying `opts.transports` in order: a refused
    /// or failed WebSocket falls back to long-polling; an auth refusal does not)
    /// and connect the namespace with `opts.auth` (plus `pid`/`offset` from
    /// `opts.recovery`). Returns when the server accepted the namespace.
    pub async fn connect(opts: SocketIoOptions) -> Result<SocketIoClient, SocketIoError> {
        let ep = Endpoint::new(&opts)?;
        let namespace = normalize_namespace(&opts.namespace);
        let connect_data = connect_payload(opts.auth.as_ref(), opts.recovery.as_ref())?;
        let sent_pid = opts.recovery.as_ref().map(|r| r.pid.clone());
        let mut transports: Vec<TransportKind> = Vec::new();
        for t in &opts.transports {
            if !transports.contains(t) {
                transports.push(*t);
            }
        }
        if transports.is_empty() {
            return Err(SocketIoError::BadOptions("no transport allowed".into()));
        }
        let mut last_err = None;
        let mut opened = None;
        for (i, kind) in transports.iter().enumerate() {
            let r = match kind {
                TransportKind::WebSocket => WsLink::handshake(&ep)
                    .await
                    .map(|(l, h)| (Link::Ws(Box::new(l)), h)),
                TransportKind::Polling => PollingLink::handshake(&ep)
                    .await
                    .map(|(l, h)| (Link::Polling(l), h)),
            };
            match r {
                Ok(ok) => {
                    opened = Some((ok, transports[i + 1..].contains(&TransportKind::WebSocket)));
                    break;
                }
                Err(e @ (SocketIoError::Unauthorized { .. } | SocketIoError::BadOptions(_))) => {
                    return Err(e)
                }
                Err(e) => {
                    tracing::debug!(transport = %kind, error = %e, "socket.io transport failed, trying the next");
                    last_err = Some(e);
                }
            }
        }
        let Some(((link, hs), may_upgrade)) = opened else {
            return Err(last_err.unwrap_or(SocketIoError::Network("no transport".into())));
        };
        let may_upgrade = may_upgrade
            && matches!(link, Link::Polling(_))
            && hs.upgrades.iter().any(|u| u == "websocket");

        let shared = Arc::new(Shared::default());
        shared.set_transport(link.kind());
        let (cmds_tx, cmds_rx) = mpsc::unbounded_channel();
        let (events_tx, events_rx) = mpsc::unbounded_channel();
        let (ready_tx, ready_rx) = oneshot::channel();
        let actor = Actor {
            dead: Box::pin(tokio::time::sleep(hs.dead_after())),
            hs,
            link: Some(link),
            ep: may_upgrade.then_some(ep),
            nsp: namespace.clone(),
            decoder: Decoder::new(),
            events: events_tx,
            shared: shared.clone(),
            acks: HashMap::new(),
            next_ack: 0,
            phase: Phase::Connecting {
                ready: Some(ready_tx),
                buffered: Vec::new(),
            },
            sent_pid: sent_pid.clone(),
            recovery_on: false,
            upgrade: None,
            upgrading: None,
        };
        tokio::spawn(actor.run(cmds_rx, connect_data));

        let connected = match tokio::time::timeout(opts.connect_timeout, ready_rx).await {
            Err(_) => {
                return Err(SocketIoError::Network(
                    "the namespace did not answer in time".into(),
                ))
            }
            Ok(Err(_)) => {
                return Err(SocketIoError::Network(
                    "the connection closed during the handshake".into(),
                ))
            }
            Ok(Ok(r)) => r?,
        };
        let recovered = matches!((&sent_pid, &connected.pid), (Some(a), Some(b)) if a == b);
        let recovery = connected.pid.map(|pid| RecoveryState {
            offset: if recovered {
                opts.recovery.and_then(|r| r.offset)
            } else {
                None
            },
            pid,
        });
        tracing::debug!(
            namespace = %namespace,
            transport = %shared.transport(),
            recovered,
            "socket.io namespace connected"
        );
        Ok(SocketIoClient {
            sender: SioSender {
                cmds: cmds_tx,
                ack_timeout: opts.ack_timeout,
            },
            events: events_rx,
            shared,
            sid: connected.sid,
            recovery,
            recovered,
            namespace,
            finished: None,
        })
    }
}

fn normalize_namespace(ns: &str) -> String {
    let ns = ns.trim();
    if ns.is_empty() || ns == "/" {
        "/".into()
    } else if ns.starts_with('/') {
        ns.into()
    } else {
        format!("/{ns}")
    }
}

/// The CONNECT payload: `auth`, with `pid`/`offset` merged in when resuming.
fn connect_payload(
    auth: Option<&Value>,
    recovery: Option<&RecoveryState>,
) -> Result<Option<Value>, SocketIoError> {
    let Some(rec) = recovery else {
        return match auth {
            None | Some(Value::Null) => Ok(None),
            Some(v @ Value::Object(_)) => Ok(Some(v.clone())),
            Some(_) => Err(SocketIoError::BadOptions(
                "`auth` must be a JSON object".into(),
            )),
        };
    };
    let mut m = match auth {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(m)) => m.clone(),
        Some(_) => {
            return Err(SocketIoError::BadOptions(
                "`auth` must be a JSON object".into(),
            ))
        }
    };
    m.insert("pid".into(), Value::String(rec.pid.clone()));
    if let Some(off) = &rec.offset {
        m.insert("offset".into(), Value::String(off.clone()));
    }
    Ok(Some(Value::Object(m)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn connect_payloads() {
        assert_eq!(connect_payload(None, None).unwrap(), None);
        assert_eq!(
            connect_payload(Some(&json!({"token": "t"})), None).unwrap(),
            Some(json!({"token": "t"}))
        );
        assert!(connect_payload(Some(&json!("t")), None).is_err());
        let rec = RecoveryState {
            pid: "p".into(),
            offset: Some("o".into()),
        };
        assert_eq!(
            connect_payload(Some(&json!({"token": "t"})), Some(&rec)).unwrap(),
            Some(json!({"token": "t", "pid": "p", "offset": "o"}))
        );
        let rec = RecoveryState {
            pid: "p".into(),
            offset: None,
        };
        assert_eq!(
            connect_payload(None, Some(&rec)).unwrap(),
            Some(json!({"pid": "p"}))
        );
        assert!(connect_payload(Some(&json!([1])), Some(&rec)).is_err());
    }

    #[test]
    fn namespaces() {
        assert_eq!(normalize_namespace(""), "/");
        assert_eq!(normalize_namespace("/"), "/");
        assert_eq!(normalize_namespace("realtime"), "/realtime");
        assert_eq!(normalize_namespace("/realtime"), "/realtime");
    }
}
