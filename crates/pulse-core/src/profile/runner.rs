//! [`ProfileDialect`]: runs a profile as a session [`Dialect`] over `jsonws` or
//! `socketio`.
//!
//! One call of [`Dialect::run_connection`] is one connection:
//! 1. a token from the session (refreshed once if the server refuses it; refused
//!    again, [`End::Unauthorized`]), `{tenant}` from the profile's vars or the
//!    token's claims, every claim as `{claims.NAME}`;
//! 2. open the socket (token where the profile says), wait for its `ready` event;
//!    a socket that cannot be had while the profile has REST resources to poll
//!    is [`End::SocketRefused`], and [`Dialect::run_fallback`] polls them
//!    (`run::RestPoller` in the session's shared loop) until the socket opens;
//! 3. join rooms / send subscriptions (a join whose variable has no value is
//!    skipped);
//! 4. resync: nothing when Socket.IO recovered the session; otherwise the resync
//!    request, the server's own pushes, and/or a REST refetch — the state becomes
//!    `Live` once the cache is up to date;
//! 5. stream: map every event, commit each batch with `commit_local`, refetch what
//!    events invalidate (failed refetches retried with backoff, never ending the
//!    link), answer pings, close a silent link.

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use tokio::time::Instant;
use tracing::{debug, info, warn};

use super::budget::Budget;
use super::map::Mapper;
use super::run::Run;
use super::schema::{PingMode, RequestWhen, VarValue};
use super::socket::{self, Open};
use super::template::{render, Escape, Vars};
use super::Profile;
use crate::actions::ActionSet;
use crate::auth::{refused_message, with_token_from, AuthError, Refusal, Secret, TokenTry};
use crate::rest::RestClient;
use crate::session::{ActionFuture, Dialect, DialectFuture, End, Intent, SessionCx};
use crate::store::Action;
use crate::transport::link::{drain, DeadLink};
use crate::transport::socketio::RecoveryState;

/// Runs a [`Profile`] for a session (`SessionConfig::dialect`).
pub struct ProfileDialect {
    pub(super) profile: Arc<Profile>,
    pub(super) mapper: Mapper,
    pub(super) vars: Vars,
    pub(super) http: reqwest::Client,
    /// A connection succeeded before (the next one is a reconnect).
    pub(super) connected_before: AtomicBool,
    /// The server closed the link as unauthorized: refresh the token first.
    pub(super) refresh_next: AtomicBool,
    /// Socket.IO session to resume.
    pub(super) recovery: Mutex<Option<RecoveryState>>,
    /// Resources whose last refetch failed → the caveat text naming them.
    pub(super) problems: Mutex<BTreeMap<String, String>>,
    /// How often this server's REST may be asked (kept across connections: the
    /// server's window does not restart when the socket does).
    pub(super) budget: Mutex<Budget>,
    /// What the user said ([`Dialect::say`]), waiting for the live link's loop.
    said: Mutex<VecDeque<(Intent, String)>>,
    /// Wakes the loop when something was said.
    said_wake: tokio::sync::Notify,
    /// Values added to list variables by intents' `follow` (joined on reconnect).
    followed: Mutex<BTreeMap<String, Vec<String>>>,
    /// The last value of each intent with `again_on_connect`.
    last_said: Mutex<BTreeMap<Intent, String>>,
}

/// The most intents waiting for the loop (the oldest are dropped beyond it).
const MAX_SAID: usize = 64;

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
        let profile_limit = profile.spec.rate_limit;
        let http = crate::rest::http_client().build().unwrap_or_default();
        ProfileDialect {
            profile: Arc::new(profile),
            mapper,
            vars,
            http,
            connected_before: AtomicBool::new(false),
            refresh_next: AtomicBool::new(false),
            recovery: Mutex::new(None),
            problems: Mutex::new(BTreeMap::new()),
            budget: Mutex::new(Budget::new(profile_limit)),
            said: Mutex::new(VecDeque::new()),
            said_wake: tokio::sync::Notify::new(),
            followed: Mutex::new(BTreeMap::new()),
            last_said: Mutex::new(BTreeMap::new()),
        }
    }

    /// The variables of a new connection: the profile's and the caller's, with
    /// what intents followed added to their lists.
    fn connection_vars(&self) -> Vars {
        let mut vars = self.vars.clone();
        for (name, extra) in self.followed.lock().expect("followed lock").iter() {
            let mut list = match vars.remove(name) {
                Some(VarValue::Many(v)) => v,
                Some(VarValue::One(v)) if !v.is_empty() => vec![v],
                _ => Vec::new(),
            };
            for x in extra {
                if !list.contains(x) {
                    list.push(x.clone());
                }
            }
            vars.insert(name.clone(), VarValue::Many(list));
        }
        vars
    }

    /// Take what was said since the last call.
    fn take_said(&self) -> Vec<(Intent, String)> {
        self.said.lock().expect("said lock").drain(..).collect()
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

    /// What every connection and fallback spell starts from: a token (refreshed
    /// first when the server refused the last), the template variables (the
    /// profile's and the settings', `{tenant}`, and the token's claims as
    /// `{claims.NAME}`), and the cache stream.
    async fn prepare(&self, cx: &mut SessionCx) -> Result<Prepared, End> {
        let spec = &self.profile.spec;
        let refresh_first = self.refresh_next.swap(false, Ordering::AcqRel);
        let token = if self.profile.needs_token() {
            Some(cx.token(refresh_first).await?)
        } else {
            None
        };
        // What was said while no link was up is dropped: followed values are
        // joined again below, `again_on_connect` intents said again.
        self.take_said();
        let mut vars = self.connection_vars();
        vars.insert("profile".into(), VarValue::One(spec.name.clone()));
        if let Some(claims) = token.as_ref().and_then(Secret::jwt_payload) {
            for (k, v) in &claims {
                let v = match v {
                    Value::String(s) if !s.is_empty() => s.clone(),
                    Value::Number(n) => n.to_string(),
                    _ => continue,
                };
                vars.insert(format!("claims.{k}"), VarValue::One(v));
            }
        }
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
                render(&tpl, &vars, Escape::Raw).map_err(|e| {
                    End::Lost(format!("profile {}: stream: {e}", self.profile.origin))
                })?
            }
        };
        cx.describe(
            &stream,
            super::run::caveat(
                spec.caveat.as_deref(),
                &self.problems.lock().expect("problems lock"),
            ),
        );
        Ok(Prepared {
            token,
            vars,
            stream,
            refresh_first,
        })
    }

    /// The REST resources a polling round reloads (`[poll] refetch`, else
    /// `[resync] refetch`).
    pub(super) fn poll_resources(&self) -> &[String] {
        let spec = &self.profile.spec;
        spec.poll.refetch.as_deref().unwrap_or(&spec.resync.refetch)
    }

    async fn connection(&self, cx: &mut SessionCx) -> End {
        let spec = &self.profile.spec;
        let Prepared {
            token,
            vars,
            stream,
            refresh_first,
        } = match self.prepare(cx).await {
            Ok(p) => p,
            Err(end) => return end,
        };

        // 1-2. open, refreshing a refused token once.
        let reconnect = self.connected_before.load(Ordering::Acquire);
        let server = cx.config().server.clone();
        let tokens = cx.tokens();
        let (profile, recovery, vars_ref) = (&self.profile, &self.recovery, &vars);
        let open = |token: Option<Secret>| {
            let server = server.clone();
            async move {
                let (socket, early) =
                    socket::open(profile, recovery, server, token.as_ref(), vars_ref).await?;
                Ok::<_, Open>((socket, early, token))
            }
        };
        let opened = async {
            match token {
                Some(first) => {
                    with_token_from(tokens.as_ref(), first, refresh_first, |t| open(Some(t))).await
                }
                None => open(None).await.map_err(|e| match e {
                    e @ Open::Unauthorized(_) => TokenTry::Refused(e),
                    e => TokenTry::Failed(e),
                }),
            }
        };
        let opened = tokio::select! {
            r = opened => r,
            end = cx.interrupted() => return end,
        };
        let (mut socket, early, token) = match opened {
            Ok(ok) => ok,
            Err(TokenTry::NoToken {
                error: AuthError::Unauthorized(why),
                after: Some(refusal),
            }) => {
                return End::Unauthorized(format!(
                    "the server refused the credentials ({}); {why}",
                    refusal.refusal().unwrap_or_default()
                ))
            }
            Err(TokenTry::NoToken { error, .. }) => return crate::session::auth_end(error),
            Err(TokenTry::Refused(e)) => {
                return End::Unauthorized(refused_message(e.refusal().unwrap_or_default()))
            }
            Err(TokenTry::Failed(Open::Refused(msg))) if !self.poll_resources().is_empty() => {
                return End::SocketRefused(msg)
            }
            Err(TokenTry::Failed(
                Open::Failed(msg) | Open::Unauthorized(msg) | Open::Refused(msg),
            )) => return End::Lost(msg),
        };
        cx.connected();
        self.connected_before.store(true, Ordering::Release);
        let recovered = socket.recovered();
        info!(profile = %spec.name, %stream, reconnect, recovered, "connected");

        let mut run = Run::new(self, stream, token, refresh_first);
        // 3. joins
        if let Err(end) = run.join(&mut socket, &vars).await {
            return run.finish(&mut socket, end).await;
        }
        let again: Vec<(Intent, String)> = self
            .last_said
            .lock()
            .expect("last_said lock")
            .iter()
            .map(|(i, v)| (*i, v.clone()))
            .collect();
        for (intent, value) in again {
            if let Err(end) = run.say(&mut socket, &vars, intent, &value).await {
                return run.finish(&mut socket, end).await;
            }
        }
        // 4. resync plan
        let mut deadline: Option<Instant> = None;
        if recovered {
            debug!("session recovered by the server: missed events are replayed");
        } else {
            if let Some(req) = &spec.resync.request {
                if req.when == RequestWhen::Always || reconnect {
                    if let Err(end) = run.request(&mut socket, &vars).await {
                        return run.finish(&mut socket, end).await;
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
        // What is already queued (a refusal right after connecting) comes before
        // the REST load.
        let mut early = early;
        while early.len() < cx.config().max_batch {
            match socket.try_recv() {
                Some(m @ super::socket::Received::Closed { .. }) => {
                    early.push(m);
                    break;
                }
                Some(m) => early.push(m),
                None => break,
            }
        }
        if let Err(end) = run.handle_all(&mut socket, early, cx).await {
            return run.finish(&mut socket, end).await;
        }
        if let Err(end) = run.flush(cx).await {
            return run.finish(&mut socket, end).await;
        }
        if run.awaited.is_empty() {
            deadline = None;
            run.go_live(cx);
        }

        // 5. stream
        let hb = &spec.heartbeat;
        let interval = Duration::from_millis(hb.interval_ms);
        let silence = interval + Duration::from_millis(hb.timeout_ms);
        // Socket.IO has its own heartbeat; a plain WebSocket is pinged by us.
        let mut dead = (socket.is_ws() && hb.mode != PingMode::None)
            .then(|| DeadLink::new(silence, Some(interval), Instant::now()));
        loop {
            let mut wake = match &dead {
                Some(d) => d.wake_at(),
                // Wake now and then to count frames Socket.IO skipped as undecodable.
                None => Instant::now() + Duration::from_secs(1),
            };
            if let Some(d) = deadline {
                wake = wake.min(d);
            }
            if let Some(d) = run.next_retry() {
                wake = wake.min(d);
            }
            let msg = tokio::select! {
                end = cx.interrupted() => return run.finish(&mut socket, end).await,
                m = socket.recv() => Some(m),
                _ = self.said_wake.notified() => {
                    for (intent, value) in self.take_said() {
                        if let Err(end) = run.say(&mut socket, &vars, intent, &value).await {
                            return run.finish(&mut socket, end).await;
                        }
                    }
                    continue;
                }
                _ = tokio::time::sleep_until(wake) => None,
            };
            let now = Instant::now();
            let Some(first) = msg else {
                socket.count_decode_errors(cx);
                if run.next_retry().is_some_and(|d| now >= d) {
                    if let Err(end) = run.flush(cx).await {
                        return run.finish(&mut socket, end).await;
                    }
                }
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
                            return run.finish(&mut socket, end).await;
                        }
                        run.go_live(cx);
                    }
                }
                if let Some(d) = dead.as_mut() {
                    if d.is_dead(now) {
                        let end = End::Lost(d.dead_reason("message"));
                        return run.finish(&mut socket, end).await;
                    }
                    if d.ping_due(now) {
                        if let Err(e) = socket.ping(hb.mode, &hb.text).await {
                            return run.finish(&mut socket, End::Lost(e)).await;
                        }
                    }
                }
                continue;
            };
            if let Some(d) = dead.as_mut() {
                d.received(now);
            }
            let batch = drain(first, cx.config().max_batch, || socket.try_recv());
            if let Err(end) = run.handle_all(&mut socket, batch, cx).await {
                return run.finish(&mut socket, end).await;
            }
            socket.count_decode_errors(cx);
            if let Err(end) = run.flush(cx).await {
                return run.finish(&mut socket, end).await;
            }
            if !run.live && run.awaited.is_empty() {
                deadline = None;
                run.go_live(cx);
            }
        }
    }
}

impl Dialect for ProfileDialect {
    fn run_connection<'a>(&'a self, cx: &'a mut SessionCx) -> DialectFuture<'a> {
        Box::pin(self.connection(cx))
    }

    /// Only an intent the profile declares (`[intent.NAME]`) is queued for the live
    /// link; `follow` / `unfollow` change the lists joined on reconnect at once.
    fn say(&self, intent: Intent, value: &str) -> bool {
        let Some(step) = self.profile.spec.intent.get(&intent) else {
            return false;
        };
        let step = step.get_ref();
        {
            let mut followed = self.followed.lock().expect("followed lock");
            if let Some(var) = &step.follow {
                let list = followed.entry(var.clone()).or_default();
                if !list.iter().any(|v| v == value) {
                    list.push(value.to_owned());
                }
            }
            if let Some(var) = &step.unfollow {
                if let Some(list) = followed.get_mut(var) {
                    list.retain(|v| v != value);
                }
            }
        }
        if step.again_on_connect {
            self.last_said
                .lock()
                .expect("last_said lock")
                .insert(intent, value.to_owned());
        }
        let mut said = self.said.lock().expect("said lock");
        if said.len() >= MAX_SAID {
            said.pop_front();
        }
        said.push_back((intent, value.to_owned()));
        drop(said);
        self.said_wake.notify_one();
        true
    }

    /// The actions the profile declares (`[actions.*]`).
    fn actions(&self) -> ActionSet {
        self.declared()
    }

    /// The action's declared `optimistic` change.
    fn optimistic(&self, action: &Action) -> pulse_protocol::domain::Object {
        self.declared_optimistic(action)
    }

    /// The REST request of the action's `[actions.NAME]` (`super::action`). Profile
    /// servers declare no idempotency key, so none is sent.
    fn perform<'a>(
        &'a self,
        rest: &'a RestClient,
        token: Secret,
        action: &'a Action,
        _key: Option<&'a str>,
    ) -> ActionFuture<'a> {
        Box::pin(self.perform_action(rest, token, action))
    }

    fn run_fallback<'a>(&'a self, cx: &'a mut SessionCx, reason: String) -> DialectFuture<'a> {
        Box::pin(self.fallback(cx, reason))
    }
}

/// See [`ProfileDialect::prepare`].
struct Prepared {
    token: Option<Secret>,
    vars: Vars,
    stream: String,
    refresh_first: bool,
}

impl ProfileDialect {
    /// REST polling of [`Self::poll_resources`] while the socket cannot be had.
    async fn fallback(&self, cx: &mut SessionCx, reason: String) -> End {
        if self.poll_resources().is_empty() {
            return End::Lost(if cx.config().force_polling {
                format!(
                    "{reason}, but profile {} has no REST resources to poll",
                    self.profile.origin
                )
            } else {
                reason
            });
        }
        let prepared = match self.prepare(cx).await {
            Ok(p) => p,
            Err(end) => return end,
        };
        let run = Run::new(
            self,
            prepared.stream,
            prepared.token,
            prepared.refresh_first,
        );
        let mut poller = super::run::RestPoller {
            run,
            reason: reason.clone(),
        };
        crate::session::run_polling(cx, reason, &mut poller).await
    }
}

/// A claim of the token's JWT payload (unverified: only to fill `{tenant}`).
pub(super) fn claim(token: &Secret, names: &[String]) -> Option<String> {
    let v = token.jwt_payload()?;
    names.iter().find_map(|n| match v.get(n) {
        Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
        Some(Value::Number(x)) => Some(x.to_string()),
        _ => None,
    })
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
}
