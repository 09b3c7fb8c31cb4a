//! The state of one running profile connection ([`Run`]): events mapped and
//! committed in batches, the REST refetches they ask for, joins and the resync
//! request.
//!
//! Invariants:
//! - what arrived before a link ended is still committed;
//! - a replacement (a server's full list) is computed against the store *after*
//!   the batch's earlier events are committed, so none of them is undone;
//! - a refetch sends the token in a header and refreshes it once if refused.

use std::collections::BTreeSet;
use std::sync::atomic::Ordering;

use pulse_protocol::domain::{Change, EntityKind};
use serde_json::Value;
use tracing::{debug, info, warn};

use super::map::{replacement_changes, Effect, MapError};
use super::runner::ProfileDialect;
use super::schema::VarValue;
use super::socket::{Received, Socket};
use super::template::{render, render_value, Escape, Vars};
use crate::auth::{with_token_from, Refusal, Secret, TokenTry};
use crate::rest::without_url;
use crate::session::{End, LocalEvent, SessionCx};

/// State of one running connection.
pub(super) struct Run<'d> {
    pub(super) d: &'d ProfileDialect,
    pub(super) stream: String,
    pub(super) token: Option<Secret>,
    pub(super) pending: Vec<LocalEvent>,
    pub(super) refetch: BTreeSet<String>,
    pub(super) awaited: BTreeSet<String>,
    pub(super) live: bool,
}

impl Run<'_> {
    pub(super) fn go_live(&mut self, cx: &mut SessionCx) {
        if !self.live {
            self.live = true;
            cx.went_live();
        }
    }

    pub(super) async fn finish(&mut self, socket: &mut Socket, end: End) -> End {
        socket.close(&self.d.recovery).await;
        end
    }

    pub(super) async fn join(&mut self, socket: &mut Socket, vars: &Vars) -> Result<(), End> {
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
                socket.send(text, emit).await.map_err(End::Lost)?;
            }
        }
        Ok(())
    }

    pub(super) async fn request(&mut self, socket: &mut Socket, vars: &Vars) -> Result<(), End> {
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
        socket.send(text, emit).await.map_err(End::Lost)
    }

    pub(super) async fn handle(
        &mut self,
        socket: &mut Socket,
        msg: Received,
        cx: &mut SessionCx,
    ) -> Result<(), End> {
        let spec = &self.d.profile.spec;
        match msg {
            Received::Alive => Ok(()),
            Received::Garbage(why) => {
                warn!(error = %why, "undecodable message skipped");
                cx.count_decode_error();
                Ok(())
            }
            Received::Closed {
                unauthorized,
                reason,
            } => {
                if unauthorized {
                    self.d.refresh_next.store(true, Ordering::Release);
                }
                Err(End::Lost(reason))
            }
            Received::Event { name, data, ts } => {
                if spec.heartbeat.pong_events.contains(&name) {
                    return Ok(());
                }
                if let Some(ans) = &spec.heartbeat.answer {
                    if ans.event == name {
                        let text = ans.reply.clone();
                        return socket
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

    /// Handle `msgs` in order; when one ends the link, what came before it is
    /// still committed.
    pub(super) async fn handle_all(
        &mut self,
        socket: &mut Socket,
        msgs: Vec<Received>,
        cx: &mut SessionCx,
    ) -> Result<(), End> {
        for msg in msgs {
            if let Err(end) = self.handle(socket, msg, cx).await {
                return Err(match self.commit(cx) {
                    Ok(()) => end,
                    Err(e) => e,
                });
            }
        }
        Ok(())
    }

    pub(super) fn commit(&mut self, cx: &mut SessionCx) -> Result<(), End> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let events = std::mem::take(&mut self.pending);
        cx.commit_local(&self.stream, events)
    }

    /// Commit what is pending, then run the refetches it asked for.
    pub(super) async fn flush(&mut self, cx: &mut SessionCx) -> Result<(), End> {
        self.commit(cx)?;
        while let Some(name) = self.refetch.pop_first() {
            self.refetch_one(cx, &name).await?;
        }
        Ok(())
    }

    pub(super) async fn refetch_one(&mut self, cx: &mut SessionCx, name: &str) -> Result<(), End> {
        let spec = &self.d.profile.spec;
        let Some(res) = self.d.mapper.resource(name) else {
            return Ok(());
        };
        let url = cx
            .config()
            .server
            .join(&res.path)
            .map_err(|e| End::Lost(format!("bad REST path {}: {e}", res.path)))?;
        let tokens = cx.tokens();
        let first = self.token.clone().unwrap_or_else(|| Secret::new(""));
        let http = &self.d.http;
        let refusal_codes = &spec.auth.unauthorized_status;
        let path = res.path.clone();
        let try_once = |token: Secret| {
            let (req, path) = (http.get(url.clone()), path.clone());
            async move { fetch_json(req, token, name, &path, refusal_codes).await }
        };
        let fetched = tokio::select! {
            r = with_token_from(tokens.as_ref(), first, false, try_once) => r,
            end = cx.interrupted() => return Err(end),
        };
        let body = match fetched {
            Ok((body, token)) => {
                if self.token.is_some() || !token.expose().is_empty() {
                    self.token = Some(token);
                }
                body
            }
            Err(TokenTry::NoToken { error, .. }) => return Err(crate::session::auth_end(error)),
            Err(TokenTry::Refused(Fetch::Refused(message))) => {
                return Err(End::Unauthorized(message))
            }
            Err(TokenTry::Refused(Fetch::Ended(end)) | TokenTry::Failed(Fetch::Ended(end))) => {
                return Err(end)
            }
            Err(TokenTry::Failed(Fetch::Refused(message))) => return Err(End::Lost(message)),
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
pub(super) fn held_ids(
    cx: &SessionCx,
    kind: EntityKind,
    changes: &[Change],
) -> Result<Vec<String>, End> {
    let list = cx.store().list(kind)?;
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

/// Why one refetch try failed.
enum Fetch {
    /// The server refused the credentials (the message to show when final).
    Refused(String),
    /// How the connection ends.
    Ended(End),
}

impl Refusal for Fetch {
    fn refusal(&self) -> Option<&str> {
        match self {
            Fetch::Refused(m) => Some(m),
            Fetch::Ended(_) => None,
        }
    }
}

/// One try of a refetch: GET with `token` (when there is one), the body as JSON.
async fn fetch_json(
    req: reqwest::RequestBuilder,
    token: Secret,
    name: &str,
    path: &str,
    refusal_codes: &[u16],
) -> Result<(Value, Secret), Fetch> {
    let req = if token.expose().is_empty() {
        req
    } else {
        req.bearer_auth(token.expose())
    };
    let failed = |e: reqwest::Error| {
        Fetch::Ended(End::Lost(format!(
            "refetching `{name}` (GET {path}) failed: {}",
            without_url(&e)
        )))
    };
    let resp = req.send().await.map_err(failed)?;
    let status = resp.status().as_u16();
    if refusal_codes.contains(&status) {
        return Err(Fetch::Refused(format!(
            "the server refused the credentials for GET {path} (HTTP {status})"
        )));
    }
    if !resp.status().is_success() {
        return Err(Fetch::Ended(End::Lost(format!(
            "refetching `{name}` (GET {path}) failed: HTTP {status}"
        ))));
    }
    let bytes = resp.bytes().await.map_err(failed)?;
    let body: Value = serde_json::from_slice(&bytes).map_err(|e| {
        Fetch::Ended(End::Lost(format!(
            "refetching `{name}` (GET {path}): the answer is not JSON: {e}"
        )))
    })?;
    Ok((body, token))
}
