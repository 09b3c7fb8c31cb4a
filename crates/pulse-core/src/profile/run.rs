//! The state of one running profile connection ([`Run`]): events mapped and
//! committed in batches, the REST refetches they ask for, joins and the resync
//! request.
//!
//! Invariants:
//! - what arrived before a link ended is still committed;
//! - a replacement (a server's full list) is computed against the store *after*
//!   the batch's earlier events are committed, so none of them is undone;
//! - a refetch sends the token in a header and refreshes it once if refused;
//! - a refetch that fails for any other reason (404/405, 5xx, a timeout, a body
//!   that is not JSON or not the declared shape) never ends the link: the
//!   session's caveat names the resource and its path until a refetch of it
//!   succeeds; a missing resource (404/405) is not asked again on this
//!   connection, the others are retried with backoff ([`retry_delay`]);
//! - a refusal after the link was accepted (see `socket.rs`, `auth.refusal_events`)
//!   refreshes the token once and reconnects; refused again before the server
//!   sent anything, it is final ([`End::Unauthorized`]);
//! - every REST request passes the server's [`Budget`](super::budget::Budget)
//!   first: one that must wait is scheduled (like a retry, never sent early),
//!   and a 429 holds every request until its `Retry-After` — neither ends the
//!   link;
//! - a join whose template names a variable that has no value (a claim the
//!   token lacks, a setting not given) is skipped and logged by the variable's
//!   name, never its value;
//! - [`RestPoller`] is the fallback's round: the same refetches, without a
//!   socket.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::Ordering;
use std::time::Duration;

use pulse_protocol::domain::{Change, EntityKind};
use serde_json::Value;
use tokio::time::Instant;
use tracing::{debug, info, warn};

use super::budget::Budget;
use super::map::{replacement_changes, Effect, MapError};
use super::runner::ProfileDialect;
use super::schema::VarValue;
use super::socket::{Emit, Received, Socket};
use super::template::{first_missing, render, render_value, strings, Escape, Vars};
use crate::auth::{refused_message, with_token_from, Refusal, Secret, TokenTry};
use crate::backoff::BackoffConfig;
use crate::rest::{parse_retry_after, without_url};
use crate::session::{End, LocalEvent, PollFuture, Polled, Poller, SessionCx};

/// State of one running connection.
pub(super) struct Run<'d> {
    pub(super) d: &'d ProfileDialect,
    pub(super) stream: String,
    pub(super) token: Option<Secret>,
    pub(super) pending: Vec<LocalEvent>,
    pub(super) refetch: BTreeSet<String>,
    pub(super) awaited: BTreeSet<String>,
    pub(super) live: bool,
    /// This connection's token was refreshed because the server refused the last.
    pub(super) refreshed: bool,
    /// The server sent an event on this connection.
    pub(super) received_any: bool,
    /// Resources answered 404/405 on this connection: not asked again.
    pub(super) missing: BTreeSet<String>,
    /// Resources whose refetch failed otherwise: when to try again.
    pub(super) retry: BTreeMap<String, Retry>,
    /// A fallback spell (no socket): a round stops at the first unreachable
    /// request.
    pub(super) polling: bool,
}

/// A refetch waiting for its next try.
pub(super) struct Retry {
    due: Instant,
    /// Failures in a row so far (`None`: it only waits for the rate limit).
    attempt: Option<u32>,
}

/// How one refetch went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Fetched {
    /// Loaded and committed.
    Loaded,
    /// The server answered, but with no usable data (404/405, 5xx, not JSON).
    Answered,
    /// The server could not be reached (connection refused, reset, timeout).
    Unreachable,
    /// Waiting for the rate limit (our budget, or a 429's `Retry-After`).
    Held,
    /// Not asked (missing on this connection, or not due yet).
    Skipped,
}

/// What one [`Run::flush`] did.
#[derive(Debug, Clone, Default)]
pub(super) struct Flushed {
    pub(super) loaded: usize,
    pub(super) answered: usize,
    pub(super) held: usize,
    /// Why the last unreachable request failed.
    pub(super) unreachable: Option<String>,
    /// Why the last answered request failed.
    pub(super) failed: Option<String>,
}

/// How long to wait before refetching a resource again after `attempt` + 1
/// failures in a row: 1 s, 2 s, 4 s … at most 60 s (the reconnect strategy's
/// ceilings, without jitter: one resource, not a herd).
pub(super) fn retry_delay(attempt: u32) -> Duration {
    BackoffConfig {
        base: Duration::from_secs(1),
        cap: Duration::from_secs(60),
        ..BackoffConfig::default()
    }
    .ceiling(attempt)
}

/// A message to send as a profile declares it: `send` (plain WebSocket text,
/// rendered JSON-escaped) and/or `emit` with `data` (a Socket.IO event); `what`
/// names the profile key in errors.
fn outgoing(
    origin: &str,
    what: &str,
    send: Option<&String>,
    emit: Option<&String>,
    data: Option<&toml::Value>,
    vars: &Vars,
) -> Result<(Option<String>, Option<Emit>), End> {
    let bad = |e| End::Lost(format!("profile {origin}: {what}: {e}"));
    let text = send
        .map(|t| render(t, vars, Escape::JsonString))
        .transpose()
        .map_err(bad)?;
    let emit = match emit {
        Some(name) => {
            let data = data
                .map(|d| render_value(d, vars))
                .transpose()
                .map_err(bad)?;
            Some((name.clone(), data))
        }
        None => None,
    };
    Ok((text, emit))
}

/// The caveat shown: the profile's own, then what could not be refetched.
pub(super) fn caveat(profile: Option<&str>, problems: &BTreeMap<String, String>) -> Option<String> {
    let parts: Vec<&str> = profile
        .into_iter()
        .chain(problems.values().map(String::as_str))
        .collect();
    (!parts.is_empty()).then(|| parts.join("; "))
}

impl<'d> Run<'d> {
    /// A connection's (or a fallback spell's) state; `refreshed`: its token was
    /// refreshed because the server refused the last.
    pub(super) fn new(
        d: &'d ProfileDialect,
        stream: String,
        token: Option<Secret>,
        refreshed: bool,
    ) -> Run<'d> {
        Run {
            d,
            stream,
            token,
            pending: Vec::new(),
            refetch: BTreeSet::new(),
            awaited: BTreeSet::new(),
            live: false,
            refreshed,
            received_any: false,
            missing: BTreeSet::new(),
            retry: BTreeMap::new(),
            polling: false,
        }
    }

    /// When the next failed refetch is due, if any.
    pub(super) fn next_retry(&self) -> Option<Instant> {
        self.retry.values().map(|r| r.due).min()
    }

    fn show_caveat(&self, cx: &SessionCx) {
        let problems = self.d.problems.lock().expect("problems lock");
        cx.describe(
            &self.stream,
            caveat(self.d.profile.spec.caveat.as_deref(), &problems),
        );
    }

    fn refetch_failed(
        &mut self,
        cx: &SessionCx,
        name: &str,
        path: &str,
        why: String,
        missing: bool,
    ) {
        let text = if missing {
            self.missing.insert(name.to_owned());
            self.retry.remove(name);
            warn!(resource = %name, %path, error = %why, "resource not on the server; not asked again until the next reconnect");
            format!("`{name}` is not on this server (GET {path}: {why}); asked again after the next reconnect")
        } else {
            let attempt = self
                .retry
                .get(name)
                .and_then(|r| r.attempt)
                .map_or(0, |a| a + 1);
            let delay = retry_delay(attempt);
            warn!(resource = %name, %path, error = %why, ?delay, "refetch failed; retrying");
            self.retry.insert(
                name.to_owned(),
                Retry {
                    due: Instant::now() + delay,
                    attempt: Some(attempt),
                },
            );
            format!("`{name}` could not be loaded (GET {path}: {why}); retrying")
        };
        self.d
            .problems
            .lock()
            .expect("problems lock")
            .insert(name.to_owned(), text);
        self.show_caveat(cx);
    }

    /// `name` waits for the rate limit until `due` (a 429 when `limited` names
    /// its answer): scheduled, its failures in a row kept, and named in the
    /// caveat when a 429 said so.
    fn refetch_held(
        &mut self,
        cx: &SessionCx,
        name: &str,
        path: &str,
        due: Instant,
        limited: Option<Duration>,
    ) {
        let attempt = self.retry.get(name).and_then(|r| r.attempt);
        self.retry.insert(name.to_owned(), Retry { due, attempt });
        let Some(retry_after) = limited else {
            debug!(resource = %name, wait_ms = due.saturating_duration_since(Instant::now()).as_millis() as u64, "refetch waits for the rate limit");
            return;
        };
        warn!(resource = %name, %path, retry_after_ms = retry_after.as_millis() as u64, "rate limited (HTTP 429); waiting for Retry-After");
        self.d.problems.lock().expect("problems lock").insert(
            name.to_owned(),
            format!(
                "`{name}` is rate limited by the server (GET {path}: HTTP 429); asked again in {} s",
                retry_after.as_secs_f64().ceil() as u64
            ),
        );
        self.show_caveat(cx);
    }

    fn refetch_succeeded(&mut self, cx: &SessionCx, name: &str) {
        self.retry.remove(name);
        let was = self.d.problems.lock().expect("problems lock").remove(name);
        if was.is_some() {
            info!(resource = %name, "refetch succeeded again");
            self.show_caveat(cx);
        }
    }

    /// A refusal reported after the link was accepted: refresh the token and
    /// reconnect, or, when this token was already the refreshed one and the
    /// server sent nothing, stop (the refresh-once rule).
    fn refused(&mut self, reason: String) -> End {
        if self.refreshed && !self.received_any {
            return End::Unauthorized(refused_message(&reason));
        }
        self.d.refresh_next.store(true, Ordering::Release);
        End::Resync(format!("{reason}; reconnecting with a refreshed token"))
    }

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
        for (n, step) in self.d.profile.spec.join.iter().enumerate() {
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
                let templates = step
                    .send
                    .iter()
                    .map(String::as_str)
                    .chain(step.data.iter().flat_map(strings));
                if let Some(var) = first_missing(templates, &v) {
                    warn!(profile = %origin, join = n + 1, variable = %var, "join skipped: the variable has no value (not in the token's claims or the server's settings)");
                    continue;
                }
                let (text, emit) = outgoing(
                    origin,
                    "join",
                    step.send.as_ref(),
                    step.emit.as_ref(),
                    step.data.as_ref(),
                    &v,
                )?;
                debug!(emit = ?emit.as_ref().map(|e| &e.0), "joining");
                socket.send(text, emit).await.map_err(End::Lost)?;
            }
        }
        Ok(())
    }

    /// Send what the profile declares for `intent`, with `{value}` bound.
    pub(super) async fn say(
        &mut self,
        socket: &mut Socket,
        vars: &Vars,
        intent: crate::session::Intent,
        value: &str,
    ) -> Result<(), End> {
        let Some(step) = self.d.profile.spec.intent.get(&intent) else {
            return Ok(());
        };
        let step = step.get_ref();
        let mut v = vars.clone();
        v.insert("value".into(), VarValue::One(value.to_owned()));
        let (text, emit) = outgoing(
            &self.d.profile.origin,
            "intent",
            step.send.as_ref(),
            step.emit.as_ref(),
            step.data.as_ref(),
            &v,
        )?;
        debug!(?intent, emit = ?emit.as_ref().map(|e| &e.0), "saying");
        socket.send(text, emit).await.map_err(End::Lost)
    }

    pub(super) async fn request(&mut self, socket: &mut Socket, vars: &Vars) -> Result<(), End> {
        let origin = &self.d.profile.origin;
        let Some(req) = &self.d.profile.spec.resync.request else {
            return Ok(());
        };
        let (text, emit) = outgoing(
            origin,
            "resync.request",
            req.send.as_ref(),
            req.emit.as_ref(),
            req.data.as_ref(),
            vars,
        )?;
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
                unauthorized: true,
                reason,
            } => Err(self.refused(reason)),
            Received::Closed { reason, .. } => Err(End::Lost(reason)),
            Received::Event { name, data, ts } => {
                if spec.auth.refusal_events.contains(&name) {
                    let text = match &data {
                        Value::String(s) => s.clone(),
                        other => other.to_string(),
                    };
                    let lower = text.to_lowercase();
                    if spec
                        .auth
                        .unauthorized_messages
                        .iter()
                        .any(|m| lower.contains(m.as_str()))
                    {
                        return Err(self.refused(format!("the server sent `{name}`: {text}")));
                    }
                }
                self.received_any = true;
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

    /// Commit what is pending, then run the refetches it asked for and the
    /// retries that are due. A resource missing on this connection is skipped;
    /// one waiting for its retry (or the rate limit) is fetched when it is due.
    pub(super) async fn flush(&mut self, cx: &mut SessionCx) -> Result<Flushed, End> {
        self.commit(cx)?;
        let now = Instant::now();
        for (name, r) in &self.retry {
            if r.due <= now {
                self.refetch.insert(name.clone());
            }
        }
        let mut done = Flushed::default();
        while let Some(name) = self.refetch.pop_first() {
            if self.missing.contains(&name) || self.retry.get(&name).is_some_and(|r| r.due > now) {
                continue;
            }
            match self.refetch_one(cx, &name).await? {
                (Fetched::Loaded, _) => done.loaded += 1,
                (Fetched::Answered, why) => {
                    done.answered += 1;
                    done.failed = why;
                }
                (Fetched::Unreachable, why) => {
                    done.unreachable = why;
                    if self.polling {
                        // No socket and no server: the others would only time
                        // out in turn.
                        self.refetch.clear();
                        break;
                    }
                }
                (Fetched::Held, _) => done.held += 1,
                (Fetched::Skipped, _) => {}
            }
        }
        Ok(done)
    }

    /// Refetch `name` (and why it failed, if it did). Only a refused token, a
    /// cache error or an interruption end the link; other failures are
    /// recorded ([`Self::refetch_failed`]).
    pub(super) async fn refetch_one(
        &mut self,
        cx: &mut SessionCx,
        name: &str,
    ) -> Result<(Fetched, Option<String>), End> {
        let spec = &self.d.profile.spec;
        let Some(res) = self.d.mapper.resource(name) else {
            return Ok((Fetched::Skipped, None));
        };
        let path = res.path.clone();
        let absent_when_refused = res.refusal_means_absent;
        let url = match crate::rest::same_host_url(&cx.config().server, &path) {
            Ok(u) => u,
            Err(e) => {
                let why = e.to_string();
                self.refetch_failed(cx, name, &path, why.clone(), true);
                return Ok((Fetched::Answered, Some(why)));
            }
        };
        let now = Instant::now();
        let slot = self.d.budget.lock().expect("budget lock").next_slot(now);
        if slot > now {
            self.refetch_held(cx, name, &path, slot, None);
            return Ok((Fetched::Held, None));
        }
        let tokens = cx.tokens();
        let first = self.token.clone().unwrap_or_else(|| Secret::new(""));
        let http = &self.d.http;
        let budget = &self.d.budget;
        let refusal_codes = &spec.auth.unauthorized_status;
        let try_once = |token: Secret| {
            let (req, path) = (http.get(url.clone()), path.clone());
            budget.lock().expect("budget lock").sent(Instant::now());
            async move { fetch_json(req, token, &path, refusal_codes).await }
        };
        // A resource whose refusal means "not for this user" is asked once with
        // the token held: its refusal says nothing about the token.
        let fetched = if absent_when_refused {
            tokio::select! {
                r = try_once(first) => r.map_err(|e| match e {
                    e @ Fetch::Refused(_) => TokenTry::Refused(e),
                    e => TokenTry::Failed(e),
                }),
                end = cx.interrupted() => return Err(end),
            }
        } else {
            tokio::select! {
                r = with_token_from(tokens.as_ref(), first, false, try_once) => r,
                end = cx.interrupted() => return Err(end),
            }
        };
        let body = match fetched {
            Ok((body, token)) => {
                if self.token.is_some() || !token.expose().is_empty() {
                    self.token = Some(token);
                }
                body
            }
            Err(TokenTry::NoToken { error, .. }) => return Err(crate::session::auth_end(error)),
            Err(
                TokenTry::Refused(Fetch::Refused(message))
                | TokenTry::Failed(Fetch::Refused(message)),
            ) if absent_when_refused => {
                let why = format!("not for this user: {message}");
                self.refetch_failed(cx, name, &path, why.clone(), true);
                return Ok((Fetched::Answered, Some(why)));
            }
            Err(TokenTry::Refused(Fetch::Refused(message))) => {
                return Err(End::Unauthorized(message))
            }
            Err(TokenTry::Failed(Fetch::Refused(message))) => return Err(End::Lost(message)),
            Err(TokenTry::Refused(Fetch::Missing(why)) | TokenTry::Failed(Fetch::Missing(why))) => {
                self.refetch_failed(cx, name, &path, why.clone(), true);
                return Ok((Fetched::Answered, Some(why)));
            }
            Err(
                TokenTry::Refused(Fetch::Limited(retry_after))
                | TokenTry::Failed(Fetch::Limited(retry_after)),
            ) => {
                let now = Instant::now();
                self.d
                    .budget
                    .lock()
                    .expect("budget lock")
                    .rate_limited(now, retry_after);
                self.refetch_held(cx, name, &path, now + retry_after, Some(retry_after));
                return Ok((Fetched::Held, None));
            }
            Err(
                TokenTry::Refused(Fetch::Unreachable(why))
                | TokenTry::Failed(Fetch::Unreachable(why)),
            ) => {
                self.refetch_failed(cx, name, &path, why.clone(), false);
                return Ok((Fetched::Unreachable, Some(why)));
            }
            Err(TokenTry::Refused(Fetch::Failed(why)) | TokenTry::Failed(Fetch::Failed(why))) => {
                self.refetch_failed(cx, name, &path, why.clone(), false);
                return Ok((Fetched::Answered, Some(why)));
            }
        };
        let ts = crate::now_ms();
        let effect = match self.d.mapper.map_rest(name, &body, ts) {
            Ok(e) => e,
            Err(e) => {
                let why = e.to_string();
                self.refetch_failed(cx, name, &path, why.clone(), false);
                return Ok((Fetched::Answered, Some(why)));
            }
        };
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
                data: serde_json::json!({ "resource": name, "path": path }),
                ts,
                changes,
            }],
        )?;
        self.refetch_succeeded(cx, name);
        Ok((Fetched::Loaded, None))
    }
}

/// The fallback's round for a profile: its poll resources refetched through
/// the same [`Run`] (budget, 429s, caveats) as on a live link, without a socket.
pub(super) struct RestPoller<'d> {
    pub(super) run: Run<'d>,
    /// Why the socket is not used (named when REST does not answer either).
    pub(super) reason: String,
}

impl Poller for RestPoller<'_> {
    fn poll<'a>(&'a mut self, cx: &'a mut SessionCx, full: bool) -> PollFuture<'a> {
        Box::pin(async move {
            if full {
                let names = self.run.d.poll_resources().to_vec();
                self.run.refetch.extend(names);
            }
            let done = self.run.flush(cx).await?;
            // A full round the server answered nothing of ends the fallback: the
            // actor backs off and tries the socket again. This includes a round our
            // own budget held back entirely (a server down through many quick
            // reconnects has used it up on refused requests): waiting in here would
            // leave the socket untried until `socket_retry_interval`.
            if full && done.loaded == 0 && (done.held == 0 || done.answered == 0) {
                let why = done.unreachable.or(done.failed).unwrap_or_else(|| {
                    if done.held > 0 {
                        "every request is waiting for the rate limit".into()
                    } else {
                        "no resource could be loaded".into()
                    }
                });
                return Err(End::Lost(format!(
                    "{}; REST does not answer either ({why})",
                    self.reason
                )));
            }
            Ok(Polled {
                loaded: done.loaded > 0,
                again_at: self.run.next_retry(),
                hold_until: None,
            })
        })
    }

    fn interval(&self, cx: &SessionCx) -> Duration {
        let spec = &self.run.d.profile.spec;
        let per_round = self.run.d.poll_resources().len();
        let slowdown = self.run.d.budget.lock().expect("budget lock").slowdown();
        cx.config()
            .poll_interval
            .max(Duration::from_millis(spec.poll.interval_ms.unwrap_or(0)))
            .max(Budget::round_interval(spec.rate_limit, per_round))
            .saturating_mul(slowdown)
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
    /// The resource is not on this server (HTTP 404 / 405).
    Missing(String),
    /// 429: wait this long (`Retry-After`) before asking again.
    Limited(Duration),
    /// No answer (connection refused or reset, a timeout).
    Unreachable(String),
    /// Any other answer (5xx, a body that is not JSON).
    Failed(String),
}

impl Refusal for Fetch {
    fn refusal(&self) -> Option<&str> {
        match self {
            Fetch::Refused(m) => Some(m),
            Fetch::Missing(_) | Fetch::Limited(_) | Fetch::Unreachable(_) | Fetch::Failed(_) => {
                None
            }
        }
    }
}

/// One try of a refetch: GET with `token` (when there is one), the body as JSON.
async fn fetch_json(
    req: reqwest::RequestBuilder,
    token: Secret,
    path: &str,
    refusal_codes: &[u16],
) -> Result<(Value, Secret), Fetch> {
    let req = if token.expose().is_empty() {
        req
    } else {
        req.bearer_auth(token.expose())
    };
    let resp = req
        .send()
        .await
        .map_err(|e| Fetch::Unreachable(without_url(&e)))?;
    let status = resp.status().as_u16();
    if status == 429 {
        let retry_after = resp
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok());
        return Err(Fetch::Limited(parse_retry_after(
            retry_after,
            std::time::SystemTime::now(),
        )));
    }
    if refusal_codes.contains(&status) {
        return Err(Fetch::Refused(format!(
            "the server refused the credentials for GET {path} (HTTP {status})"
        )));
    }
    if status == 404 || status == 405 {
        return Err(Fetch::Missing(format!("HTTP {status}")));
    }
    if !resp.status().is_success() {
        return Err(Fetch::Failed(format!("HTTP {status}")));
    }
    let bytes = crate::rest::read_limited(resp, crate::rest::MAX_BODY)
        .await
        .map_err(Fetch::Failed)?;
    let body: Value = serde_json::from_slice(&bytes)
        .map_err(|e| Fetch::Failed(format!("the answer is not JSON: {e}")))?;
    Ok((body, token))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_back_off_to_a_minute() {
        let secs: Vec<u64> = (0..9).map(|a| retry_delay(a).as_secs()).collect();
        assert_eq!(secs, vec![1, 2, 4, 8, 16, 32, 60, 60, 60]);
    }

    #[test]
    fn the_caveat_keeps_the_profiles_own_and_names_each_resource() {
        let mut p = BTreeMap::new();
        assert_eq!(caveat(None, &p), None);
        assert_eq!(caveat(Some("own"), &p).as_deref(), Some("own"));
        p.insert("agents".to_string(), "`agents` missing".to_string());
        assert_eq!(
            caveat(Some("own"), &p).as_deref(),
            Some("own; `agents` missing")
        );
        assert_eq!(caveat(None, &p).as_deref(), Some("`agents` missing"));
    }
}
