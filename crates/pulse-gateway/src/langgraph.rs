//! An agent framework's server as a source: `--source langgraph+http://HOST:PORT
//! --tenant T [--graph NAME…]` turns the interrupts of a LangGraph deployment's
//! threads into Pulse approvals of tenant `T`, and resumes the thread when one is
//! answered.
//!
//! How waiting threads are found:
//! - **webhooks**: LangGraph POSTs a run to the URL given as the run's `webhook`
//!   when the run ends (the pausing run included); the gateway's
//!   `POST /v1/sources/langgraph/webhook` checks the shared secret
//!   (`X-Pulse-Webhook-Secret`, compared in constant time, never logged) and syncs
//!   that run's thread (`GET /threads/{id}`);
//! - **reconcile**: `POST /threads/search {"status":"interrupted"}` at start and
//!   every `reconcile_interval`, which catches what a missed webhook would lose.
//!   This is the one place that polls; desktops are pushed.
//!
//! Mapping ([`approval_of`], pure): each interrupt of a thread is one approval, id
//! `lg:{thread_id}:{interrupt_id}`, carrying the thread, the interrupt id, the graph,
//! the action and its arguments, the description and the answers it allows. The
//! human-interrupt convention (Agent Inbox's `HumanInterrupt`: `action_request
//! {action, args}`, `config {allow_accept, allow_edit, allow_respond,
//! allow_ignore}`, `description`) is read both as a graph passes it in a list of one
//! (`interrupt([request])[0]`, the convention's own example) and bare
//! (`interrupt(request)`); any other value is a plain interrupt, shown as is.
//!
//! Answers ([`resume_value`], pure): Approve / Reject / Edit / Respond become
//! Agent Inbox's `HumanResponse` `{type: accept|ignore|edit|response, args}` (in a
//! list of one when the request came in one); a plain interrupt is resumed with
//! `true` (approve), `false` (reject) or the text (respond). An answer the interrupt
//! does not allow is refused before anything is stored.
//!
//! Invariants:
//! - exactly once in the log: the approval's `approval.created` event id is
//!   `langgraph:{thread}:{interrupt}`, and ingest is idempotent by id, so a webhook
//!   and a reconcile seeing the same interrupt store it once; an interrupt whose
//!   approval the tenant already has is not offered again at all (so the
//!   `duplicates` metric counts real retries, not every reconcile round, and an
//!   approval decided longer ago than the dedup window is never re-created as
//!   pending);
//! - an answer is stored (the `approval.decided` event, with the resume value and
//!   `resume.state = "queued"`) before the resume is sent, so a gateway killed in
//!   between does not lose it: the next start (or round) finds it queued;
//! - never resumed twice: the resume run carries `metadata.pulse_approval` = the
//!   approval id, and before sending, the thread's runs are searched for it; one
//!   found means the resume went out before a crash, and it is only recorded
//!   (`resume.state = "sent"`);
//! - an interrupt that leaves its thread without a Pulse answer (resumed from
//!   Studio, another client, or the thread deleted) is marked
//!   `status = "decided_elsewhere"`, which is no longer pending, so every desktop
//!   withdraws its notification;
//! - one LangGraph source per tenant: every LangGraph approval of the tenant is
//!   this source's, whatever address it was first seen at;
//! - LangGraph being down fails a round (counted, retried next round); nothing
//!   queued is dropped.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use pulse_protocol::domain::{EntityKind, Object};
use serde_json::{json, Value};
use tokio::sync::Notify;

use crate::hub::Hub;
use crate::store::{now_ms, NewEvent};

/// The header LangGraph's webhooks carry the shared secret in (set in the
/// deployment's `langgraph.json`: `webhooks.headers`).
pub const SECRET_HEADER: &str = "x-pulse-webhook-secret";

/// The gateway's webhook path.
pub const WEBHOOK_PATH: &str = "/v1/sources/langgraph/webhook";

/// Approval id prefix of this source.
pub const ID_PREFIX: &str = "lg:";

/// Threads asked for per search page.
const PAGE: usize = 100;

/// Where a LangGraph deployment is: `langgraph+http://HOST:PORT[/PATH]` (or
/// `langgraph+https://`). `base` is the API's URL without the `langgraph+`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LangGraphUrl {
    /// `http://HOST:PORT[/PATH]`, no trailing slash.
    pub base: String,
}

impl std::str::FromStr for LangGraphUrl {
    type Err = String;

    fn from_str(s: &str) -> Result<LangGraphUrl, String> {
        let bad = || format!("`{s}` is not `langgraph+http://HOST:PORT`");
        let rest = s.strip_prefix("langgraph+").ok_or_else(bad)?;
        let u = url::Url::parse(rest).map_err(|_| bad())?;
        if !matches!(u.scheme(), "http" | "https") || u.host_str().is_none_or(str::is_empty) {
            return Err(bad());
        }
        if u.password().is_some() || !u.username().is_empty() || u.query().is_some() {
            return Err(format!(
                "`{s}`: no credentials or query in the URL (a token never goes in a URL)"
            ));
        }
        Ok(LangGraphUrl {
            base: rest.trim_end_matches('/').to_owned(),
        })
    }
}

/// The source's configuration.
#[derive(Clone)]
pub struct LangGraphConfig {
    /// The deployment.
    pub url: LangGraphUrl,
    /// The tenant whose log the approvals go to.
    pub tenant: String,
    /// Only threads of these graphs (`metadata.graph_id`); empty: every graph.
    pub graphs: Vec<String>,
    /// The webhooks' shared secret; `None`: the webhook endpoint refuses every call
    /// (the reconcile still runs).
    pub webhook_secret: Option<String>,
    /// Given to LangGraph as the `webhook` of the runs Pulse starts (resumes), so a
    /// resumed run that pauses again is seen at once. `None`: the reconcile finds it.
    pub webhook_url: Option<String>,
    /// Time between two reconciling searches.
    pub reconcile_interval: Duration,
}

impl std::fmt::Debug for LangGraphConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LangGraphConfig")
            .field("url", &self.url)
            .field("tenant", &self.tenant)
            .field("graphs", &self.graphs)
            .field(
                "webhook_secret",
                &self.webhook_secret.as_ref().map(|_| "<redacted>"),
            )
            .field("webhook_url", &self.webhook_url)
            .field("reconcile_interval", &self.reconcile_interval)
            .finish()
    }
}

/// An answer to an approval.
#[derive(Debug, Clone, PartialEq)]
pub enum Answer {
    /// Accept as asked.
    Approve,
    /// Refuse (Agent Inbox: ignore).
    Reject,
    /// Accept with these arguments instead.
    Edit(Value),
    /// Answer in words.
    Respond(String),
}

impl Answer {
    /// The name in `allowed` and in the routes (`approve`, `reject`, `edit`, `respond`).
    pub fn name(&self) -> &'static str {
        match self {
            Answer::Approve => "approve",
            Answer::Reject => "reject",
            Answer::Edit(_) => "edit",
            Answer::Respond(_) => "respond",
        }
    }

    /// The approval's `decision` after it.
    pub fn decision(&self) -> &'static str {
        match self {
            Answer::Approve | Answer::Edit(_) => "approved",
            Answer::Reject => "rejected",
            Answer::Respond(_) => "responded",
        }
    }
}

/// How an interrupt's value was read.
const SHAPE_LIST: &str = "human_interrupt_list";
const SHAPE_BARE: &str = "human_interrupt";
const SHAPE_PLAIN: &str = "plain";

/// The human-interrupt request in `value` and whether it came in a list.
fn human_request(value: &Value) -> Option<(&Object, bool)> {
    let is_request = |v: &Value| v.get("action_request").is_some_and(Value::is_object);
    match value {
        Value::Array(items) if items.len() == 1 && is_request(&items[0]) => {
            items[0].as_object().map(|o| (o, true))
        }
        Value::Object(o) if is_request(value) => Some((o, false)),
        _ => None,
    }
}

/// The approval id of `thread`'s interrupt `interrupt`.
pub fn approval_id(thread: &str, interrupt: &str) -> String {
    format!("{ID_PREFIX}{thread}:{interrupt}")
}

/// One approval per interrupt of a LangGraph thread (as `GET /threads/{id}` and
/// `POST /threads/search` return it). A thread that is not an object or has no
/// `thread_id` is an error; an interrupt without an `id` is skipped (it cannot be
/// resumed by id).
pub fn approvals_of(base: &str, thread: &Value) -> Result<Vec<Object>, String> {
    let thread_id = thread
        .get("thread_id")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .ok_or("the thread has no `thread_id`")?;
    let mut out = Vec::new();
    let Some(tasks) = thread.get("interrupts").and_then(Value::as_object) else {
        return Ok(out);
    };
    for list in tasks.values() {
        for i in list.as_array().into_iter().flatten() {
            if let Some(a) = approval_of(base, thread_id, thread, i) {
                out.push(a);
            }
        }
    }
    Ok(out)
}

/// The approval of one interrupt (`{id, value}`) of `thread`; `None` without an id.
pub fn approval_of(
    base: &str,
    thread_id: &str,
    thread: &Value,
    interrupt: &Value,
) -> Option<Object> {
    let iid = interrupt
        .get("id")
        .or_else(|| interrupt.get("interrupt_id"))
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())?;
    let value = interrupt.get("value").cloned().unwrap_or(Value::Null);
    let meta = thread.get("metadata");
    let graph = meta
        .and_then(|m| m.get("graph_id"))
        .and_then(Value::as_str)
        .unwrap_or("");
    let assistant = meta
        .and_then(|m| m.get("assistant_id"))
        .and_then(Value::as_str)
        .unwrap_or(graph);
    let mut a = Object::new();
    a.insert("id".into(), approval_id(thread_id, iid).into());
    a.insert("source".into(), "langgraph".into());
    a.insert("server".into(), base.into());
    a.insert("thread_id".into(), thread_id.into());
    a.insert("interrupt_id".into(), iid.into());
    a.insert("graph".into(), graph.into());
    a.insert("assistant_id".into(), assistant.into());
    a.insert("status".into(), "pending".into());
    a.insert("requested_at".into(), now_ms().into());
    if let Some(at) = thread.get("updated_at").and_then(Value::as_str) {
        a.insert("interrupted_at".into(), at.into());
    }
    match human_request(&value) {
        Some((req, listed)) => {
            let ar = &req["action_request"];
            let action = ar.get("action").and_then(Value::as_str).unwrap_or("");
            let args = ar.get("args").cloned().unwrap_or(Value::Null);
            let cfg = req.get("config");
            let allow = |k: &str| cfg.and_then(|c| c.get(k)).and_then(Value::as_bool) == Some(true);
            let mut allowed = Vec::new();
            for (key, name) in [
                ("allow_accept", "approve"),
                ("allow_ignore", "reject"),
                ("allow_edit", "edit"),
                ("allow_respond", "respond"),
            ] {
                if allow(key) {
                    allowed.push(Value::from(name));
                }
            }
            let description = req.get("description").and_then(Value::as_str);
            let title = match description {
                Some(d) if !d.is_empty() => d.to_owned(),
                _ => format!("{action} {args}"),
            };
            a.insert(
                "shape".into(),
                if listed { SHAPE_LIST } else { SHAPE_BARE }.into(),
            );
            a.insert("action".into(), action.into());
            a.insert("args".into(), args);
            a.insert("description".into(), description.unwrap_or("").into());
            a.insert("title".into(), title.into());
            a.insert("allowed".into(), allowed.into());
        }
        None => {
            let title = match &value {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            a.insert("shape".into(), SHAPE_PLAIN.into());
            a.insert("title".into(), title.into());
            a.insert("allowed".into(), json!(["approve", "reject", "respond"]));
        }
    }
    a.insert("value".into(), value);
    Some(a)
}

/// Whether `approval` came from this source.
pub fn is_langgraph(approval: &Object) -> bool {
    approval.get("source").and_then(Value::as_str) == Some("langgraph")
}

/// The value that resumes `approval`'s interrupt with `answer`, or why it cannot.
pub fn resume_value(approval: &Object, answer: &Answer) -> Result<Value, String> {
    let allowed = approval
        .get("allowed")
        .and_then(Value::as_array)
        .is_some_and(|a| a.iter().any(|n| n.as_str() == Some(answer.name())));
    if !allowed {
        return Err(format!("this interrupt does not allow `{}`", answer.name()));
    }
    let shape = approval.get("shape").and_then(Value::as_str).unwrap_or("");
    if shape == SHAPE_PLAIN {
        return match answer {
            Answer::Approve => Ok(Value::Bool(true)),
            Answer::Reject => Ok(Value::Bool(false)),
            Answer::Respond(t) => Ok(Value::String(t.clone())),
            Answer::Edit(_) => Err("a plain interrupt has no arguments to edit".into()),
        };
    }
    let response = match answer {
        Answer::Approve => json!({"type": "accept", "args": null}),
        Answer::Reject => json!({"type": "ignore", "args": null}),
        Answer::Edit(args) => {
            if !args.is_object() {
                return Err("the edited arguments must be a JSON object".into());
            }
            let action = approval.get("action").cloned().unwrap_or(Value::Null);
            json!({"type": "edit", "args": {"action": action, "args": args}})
        }
        Answer::Respond(t) => json!({"type": "response", "args": t}),
    };
    Ok(if shape == SHAPE_LIST {
        Value::Array(vec![response])
    } else {
        response
    })
}

/// Counters of a running LangGraph source (also on `/metrics`).
#[derive(Debug, Default)]
pub struct LangGraphStats {
    /// Webhooks accepted.
    pub webhooks: AtomicU64,
    /// Webhooks refused (bad or missing secret, bad body).
    pub webhooks_refused: AtomicU64,
    /// Reconcile rounds completed.
    pub reconciles: AtomicU64,
    /// Resumes sent.
    pub resumes: AtomicU64,
    /// Interrupts found resumed elsewhere.
    pub elsewhere: AtomicU64,
    /// Failed calls to LangGraph or the store.
    pub errors: AtomicU64,
}

/// A running LangGraph source. Shared by its task and the webhook endpoint.
#[derive(Debug)]
pub struct LangGraphSource {
    cfg: LangGraphConfig,
    hub: Arc<Hub>,
    http: reqwest::Client,
    kick: Notify,
    /// One sync at a time (a webhook and a round never race on one thread).
    sync: tokio::sync::Mutex<()>,
    /// Counters.
    pub stats: Arc<LangGraphStats>,
}

impl LangGraphSource {
    /// A source for `cfg` appending to `hub` (its counters are the hub's
    /// metrics' `langgraph`).
    pub fn new(cfg: LangGraphConfig, hub: Arc<Hub>) -> Arc<LangGraphSource> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(15))
            .build()
            .unwrap_or_default();
        let stats = hub.metrics().langgraph.clone();
        Arc::new(LangGraphSource {
            cfg,
            hub,
            http,
            kick: Notify::new(),
            sync: tokio::sync::Mutex::new(()),
            stats,
        })
    }

    /// The tenant it feeds.
    pub fn tenant(&self) -> &str {
        &self.cfg.tenant
    }

    /// Whether `given` is the webhook secret (constant time; `false` when none is
    /// configured).
    pub fn secret_matches(&self, given: Option<&[u8]>) -> bool {
        match (&self.cfg.webhook_secret, given) {
            (Some(want), Some(got)) => crate::auth::constant_time_eq(want.as_bytes(), got),
            _ => false,
        }
    }

    /// Ask the loop for a round now (an answer was stored).
    pub fn kick(&self) {
        self.kick.notify_one();
    }

    /// Start the loop: a round at once, then on every kick and interval, until `stop`.
    pub fn start(self: &Arc<Self>, mut stop: tokio::sync::watch::Receiver<bool>) {
        let me = self.clone();
        tokio::spawn(async move {
            let mut failing = false;
            loop {
                match me.round().await {
                    Ok(()) => {
                        if failing {
                            tracing::info!(server = %me.cfg.url.base, "langgraph source resumed");
                        }
                        failing = false;
                    }
                    Err(e) => {
                        me.stats.errors.fetch_add(1, Ordering::Relaxed);
                        if !failing {
                            tracing::warn!(server = %me.cfg.url.base, error = %e, "langgraph round failed; retrying");
                        }
                        failing = true;
                    }
                }
                let wait = if failing {
                    me.cfg.reconcile_interval.min(Duration::from_secs(2))
                } else {
                    me.cfg.reconcile_interval
                };
                tokio::select! {
                    _ = stop.wait_for(|s| *s) => return,
                    _ = me.kick.notified() => {}
                    _ = tokio::time::sleep(wait) => {}
                }
            }
        });
    }

    /// One round: send the queued answers, then reconcile.
    pub async fn round(&self) -> Result<(), String> {
        let _one = self.sync.lock().await;
        self.send_queued().await?;
        self.reconcile().await?;
        self.stats.reconciles.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// A webhook's body: sync the run's thread.
    pub async fn on_webhook(&self, body: &Value) -> Result<(), String> {
        let thread = body
            .get("thread_id")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .ok_or("the webhook body has no `thread_id`")?;
        let _one = self.sync.lock().await;
        let t = self.get_thread(thread).await?;
        let (known, pending) = self.known_and_pending().await?;
        let live = match t {
            Some(t) => self.take_thread(&t, &known).await?,
            None => HashSet::new(),
        };
        for a in pending.iter().filter(|a| str_of(a, "thread_id") == thread) {
            if !live.contains(str_of(a, "id")) {
                self.settle_gone(a).await?;
            }
        }
        self.stats.webhooks.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    fn wanted(&self, thread: &Value) -> bool {
        if self.cfg.graphs.is_empty() {
            return true;
        }
        let graph = thread
            .pointer("/metadata/graph_id")
            .and_then(Value::as_str)
            .unwrap_or("");
        self.cfg.graphs.iter().any(|g| g == graph)
    }

    /// From one snapshot: the ids of every LangGraph approval the tenant has (any
    /// status), and those still pending (every LangGraph approval of its tenant:
    /// one LangGraph source per tenant; `server` is where it was first seen, not a
    /// key, so a deployment reached at a new address keeps its approvals). What a
    /// round then stores is all in its `live` set, so the pending ones it settles
    /// are among these.
    async fn known_and_pending(&self) -> Result<(HashSet<String>, Vec<Object>), String> {
        let approvals = self.approvals().await?;
        let known = approvals
            .iter()
            .map(|a| str_of(a, "id").to_owned())
            .collect();
        let pending = approvals
            .into_iter()
            .filter(pulse_protocol::domain::is_pending_approval)
            .collect();
        Ok((known, pending))
    }

    /// Store the approvals of `thread`'s interrupts that are not in `known`; the
    /// ids of all its interrupts.
    async fn take_thread(
        &self,
        thread: &Value,
        known: &HashSet<String>,
    ) -> Result<HashSet<String>, String> {
        if !self.wanted(thread) {
            return Ok(HashSet::new());
        }
        let approvals = approvals_of(&self.cfg.url.base, thread)?;
        let mut ids = HashSet::new();
        let mut events = Vec::new();
        for a in approvals {
            let id = str_of(&a, "id").to_owned();
            if known.contains(&id) {
                ids.insert(id);
                continue;
            }
            let event_id = format!("langgraph:{}", &id[ID_PREFIX.len()..]);
            events.push(
                NewEvent::new(
                    "approval.created",
                    Value::Object(a),
                    Some(event_id),
                    now_ms(),
                )
                .map_err(|e| e.to_string())?,
            );
            ids.insert(id);
        }
        if !events.is_empty() {
            self.hub
                .append(&self.cfg.tenant, events)
                .await
                .map_err(|e| e.to_string())?;
        }
        Ok(ids)
    }

    async fn reconcile(&self) -> Result<(), String> {
        let mut live = HashSet::new();
        let (known, pending) = self.known_and_pending().await?;
        let mut offset = 0;
        loop {
            let body = json!({"status": "interrupted", "limit": PAGE, "offset": offset});
            let page = self.post("/threads/search", &body).await?;
            let threads = page.as_array().cloned().unwrap_or_default();
            for t in &threads {
                live.extend(self.take_thread(t, &known).await?);
            }
            if threads.len() < PAGE {
                break;
            }
            offset += PAGE;
        }
        for a in pending {
            if !live.contains(str_of(&a, "id")) {
                // Not in the search: confirm on the thread itself (it may have
                // paused again a moment ago) before calling it decided elsewhere.
                let still = match self.get_thread(str_of(&a, "thread_id")).await? {
                    Some(t) => self
                        .take_thread(&t, &known)
                        .await?
                        .contains(str_of(&a, "id")),
                    None => false,
                };
                if !still {
                    self.settle_gone(&a).await?;
                }
            }
        }
        Ok(())
    }

    async fn approvals(&self) -> Result<Vec<Object>, String> {
        let snap = self
            .hub
            .snapshot(&self.cfg.tenant, None)
            .await
            .map_err(|e| e.to_string())?;
        Ok(snap
            .entities
            .into_iter()
            .filter(|e| e.kind == EntityKind::Approval)
            .map(|e| e.data)
            .filter(is_langgraph)
            .collect())
    }

    /// A pending approval whose interrupt left its thread: resumed by someone else.
    async fn settle_gone(&self, a: &Object) -> Result<(), String> {
        let id = str_of(a, "id").to_owned();
        let by = self
            .pulse_run(str_of(a, "thread_id"), &id)
            .await?
            .map(|_| "pulse");
        if by.is_some() {
            // Pulse's own resume; its decision is recorded already.
            return Ok(());
        }
        let data = json!({"id": id, "status": pulse_protocol::domain::DECIDED_ELSEWHERE, "decided_at": now_ms()});
        let event_id = format!("langgraph:{}:elsewhere", &id[ID_PREFIX.len()..]);
        self.append_update(data, Some(event_id)).await?;
        self.stats.elsewhere.fetch_add(1, Ordering::Relaxed);
        tracing::info!(approval = %id, "interrupt resumed elsewhere");
        Ok(())
    }

    /// Send every stored answer whose resume is still queued.
    async fn send_queued(&self) -> Result<(), String> {
        for a in self.approvals().await? {
            if a.get("resume")
                .and_then(|r| r.get("state"))
                .and_then(Value::as_str)
                == Some("queued")
            {
                self.send_resume(&a).await?;
            }
        }
        Ok(())
    }

    async fn send_resume(&self, a: &Object) -> Result<(), String> {
        let id = str_of(a, "id").to_owned();
        let thread = str_of(a, "thread_id").to_owned();
        let (state, run_id) = match self.pulse_run(&thread, &id).await? {
            Some(run) => ("sent", run),
            None => {
                let still = match self.get_thread(&thread).await? {
                    Some(t) => approvals_of(&self.cfg.url.base, &t)?
                        .iter()
                        .any(|x| str_of(x, "id") == id),
                    None => false,
                };
                if still {
                    let value = a
                        .get("resume")
                        .and_then(|r| r.get("value"))
                        .cloned()
                        .unwrap_or(Value::Null);
                    let mut resume = Object::new();
                    resume.insert(str_of(a, "interrupt_id").to_owned(), value);
                    let mut body = json!({
                        "assistant_id": a.get("assistant_id").cloned().unwrap_or(Value::Null),
                        "command": {"resume": resume},
                        "metadata": {"pulse_approval": id, "pulse_answered_by": a.get("decided_by").cloned().unwrap_or(Value::Null)},
                    });
                    if let Some(w) = &self.cfg.webhook_url {
                        body["webhook"] = Value::from(w.as_str());
                    }
                    let run = self.post(&format!("/threads/{thread}/runs"), &body).await?;
                    self.stats.resumes.fetch_add(1, Ordering::Relaxed);
                    let run_id = run
                        .get("run_id")
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .to_owned();
                    tracing::info!(approval = %id, run = %run_id, "thread resumed");
                    ("sent", run_id)
                } else {
                    // Answered here, resumed elsewhere first.
                    ("decided_elsewhere", String::new())
                }
            }
        };
        let mut resume = a.get("resume").cloned().unwrap_or_else(|| json!({}));
        resume["state"] = Value::from(state);
        if !run_id.is_empty() {
            resume["run_id"] = Value::from(run_id);
        }
        self.append_update(json!({"id": id, "resume": resume}), None)
            .await
    }

    /// Append an `approval.updated` event with `data` to the tenant's log (`id`:
    /// the event's id, which makes the append idempotent).
    async fn append_update(&self, data: Value, id: Option<String>) -> Result<(), String> {
        let ev =
            NewEvent::new("approval.updated", data, id, now_ms()).map_err(|e| e.to_string())?;
        self.hub
            .append(&self.cfg.tenant, vec![ev])
            .await
            .map_err(|e| e.to_string())?;
        Ok(())
    }

    /// The id of the run Pulse started to resume approval `id` on `thread`, if any.
    async fn pulse_run(&self, thread: &str, id: &str) -> Result<Option<String>, String> {
        let runs = match self
            .get(&format!("/threads/{thread}/runs?limit=100"))
            .await?
        {
            Some(v) => v,
            None => return Ok(None),
        };
        Ok(runs.as_array().into_iter().flatten().find_map(|r| {
            (r.pointer("/metadata/pulse_approval")
                .and_then(Value::as_str)
                == Some(id))
            .then(|| {
                r.get("run_id")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_owned()
            })
        }))
    }

    /// The thread's recent steps, newest first: its checkpoints' `next` nodes and
    /// values (`POST /threads/{id}/history`), for an approval's detail.
    pub async fn history(&self, thread: &str, limit: usize) -> Result<Value, String> {
        self.post(
            &format!("/threads/{thread}/history"),
            &json!({"limit": limit}),
        )
        .await
    }

    async fn get_thread(&self, thread: &str) -> Result<Option<Value>, String> {
        self.get(&format!("/threads/{thread}")).await
    }

    async fn get(&self, path: &str) -> Result<Option<Value>, String> {
        let resp = self
            .http
            .get(format!("{}{path}", self.cfg.url.base))
            .send()
            .await
            .map_err(|e| format!("GET {path}: {e}"))?;
        if resp.status() == reqwest::StatusCode::NOT_FOUND {
            return Ok(None);
        }
        read(resp, path).await.map(Some)
    }

    async fn post(&self, path: &str, body: &Value) -> Result<Value, String> {
        let resp = self
            .http
            .post(format!("{}{path}", self.cfg.url.base))
            .json(body)
            .send()
            .await
            .map_err(|e| format!("POST {path}: {e}"))?;
        read(resp, path).await
    }
}

/// The steps of a thread's history (`POST /threads/{id}/history`, newest first):
/// each checkpoint's time, step number, the nodes it ran into (`next`) and what
/// the graph wrote (`metadata.writes` where the server gives it); the newest one
/// also carries the state's values. Anything that is not a list is no steps.
pub fn steps_of(history: &Value) -> Vec<Value> {
    let mut out = Vec::new();
    for (i, c) in history.as_array().into_iter().flatten().enumerate() {
        let mut s = json!({
            "at": c.get("created_at").cloned().unwrap_or(Value::Null),
            "step": c.pointer("/metadata/step").cloned().unwrap_or(Value::Null),
            "next": c.get("next").cloned().unwrap_or(Value::Null),
            "writes": c.pointer("/metadata/writes").cloned().unwrap_or(Value::Null),
        });
        if i == 0 {
            s["values"] = c.get("values").cloned().unwrap_or(Value::Null);
        }
        out.push(s);
    }
    out
}

async fn read(resp: reqwest::Response, path: &str) -> Result<Value, String> {
    let status = resp.status();
    let text = resp.text().await.map_err(|e| format!("{path}: {e}"))?;
    if !status.is_success() {
        let short: String = text.chars().take(200).collect();
        return Err(format!("{path}: HTTP {status}: {short}"));
    }
    serde_json::from_str(&text).map_err(|e| format!("{path}: not JSON: {e}"))
}

fn str_of<'a>(o: &'a Object, k: &str) -> &'a str {
    o.get(k).and_then(Value::as_str).unwrap_or("")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn thread(value: Value) -> Value {
        json!({
            "thread_id": "t1",
            "metadata": {"graph_id": "approval", "assistant_id": "as1"},
            "interrupts": {"task": [{"id": "i1", "value": value}]},
        })
    }

    fn request(cfg: Value) -> Value {
        json!({
            "action_request": {"action": "send_email", "args": {"to": "a@b"}},
            "config": cfg,
            "description": "Send it?",
        })
    }

    fn source(secret: Option<&str>) -> Arc<LangGraphSource> {
        let store = Arc::new(crate::store::MemoryStore::new(100));
        let hub = Hub::new(store, 16, Arc::new(crate::metrics::Metrics::default())).unwrap();
        let cfg = LangGraphConfig {
            url: "langgraph+http://127.0.0.1:9".parse().unwrap(),
            tenant: "acme".into(),
            graphs: vec![],
            webhook_secret: secret.map(str::to_owned),
            webhook_url: None,
            reconcile_interval: Duration::from_secs(30),
        };
        LangGraphSource::new(cfg, Arc::new(hub))
    }

    #[test]
    fn the_webhook_secret_must_match_and_none_configured_refuses_all() {
        let with = source(Some("s3cret"));
        assert!(with.secret_matches(Some(b"s3cret")));
        for bad in [&b"s3cre"[..], b"s3cret ", b"", b"S3CRET"] {
            assert!(!with.secret_matches(Some(bad)), "{bad:?}");
        }
        assert!(!with.secret_matches(None));
        let without = source(None);
        assert!(!without.secret_matches(Some(b"")));
        assert!(!without.secret_matches(None));
        // Never in Debug output.
        assert!(!format!("{:?}", with).contains("s3cret"));
    }

    #[tokio::test]
    async fn a_webhook_without_a_thread_id_is_refused_and_langgraph_down_is_an_error() {
        let s = source(Some("x"));
        for body in [
            json!({}),
            json!({"thread_id": ""}),
            json!({"thread_id": 7}),
            json!([1]),
        ] {
            let e = s.on_webhook(&body).await.unwrap_err();
            assert!(e.contains("thread_id"), "{e}");
        }
        // Port 9 (discard): nothing listens; a round fails and nothing is stored.
        assert!(s.on_webhook(&json!({"thread_id": "t1"})).await.is_err());
        assert!(s.round().await.is_err());
        assert!(s
            .hub
            .snapshot("acme", None)
            .await
            .unwrap()
            .entities
            .is_empty());
    }

    #[test]
    fn urls() {
        let u: LangGraphUrl = "langgraph+http://127.0.0.1:2024/".parse().unwrap();
        assert_eq!(u.base, "http://127.0.0.1:2024");
        for bad in [
            "http://x:1",
            "langgraph+ftp://x",
            "langgraph+http://",
            "langgraph+http://u:p@x:1",
            "langgraph+http://x:1/?token=a",
            "",
        ] {
            assert!(bad.parse::<LangGraphUrl>().is_err(), "{bad}");
        }
    }

    #[test]
    fn human_interrupt_in_a_list_and_bare() {
        let cfg = json!({"allow_accept": true, "allow_edit": true, "allow_respond": false, "allow_ignore": true});
        for (value, shape) in [
            (json!([request(cfg.clone())]), SHAPE_LIST),
            (request(cfg.clone()), SHAPE_BARE),
        ] {
            let a = approvals_of("http://lg", &thread(value)).unwrap().remove(0);
            assert_eq!(a["id"], "lg:t1:i1");
            assert_eq!(a["shape"], shape);
            assert_eq!(a["action"], "send_email");
            assert_eq!(a["args"], json!({"to": "a@b"}));
            assert_eq!(a["description"], "Send it?");
            assert_eq!(a["graph"], "approval");
            assert_eq!(a["allowed"], json!(["approve", "reject", "edit"]));
            assert!(resume_value(&a, &Answer::Respond("x".into())).is_err());
        }
    }

    #[test]
    fn resume_values() {
        let all = json!({"allow_accept": true, "allow_edit": true, "allow_respond": true, "allow_ignore": true});
        let listed = approvals_of("b", &thread(json!([request(all.clone())])))
            .unwrap()
            .remove(0);
        assert_eq!(
            resume_value(&listed, &Answer::Approve).unwrap(),
            json!([{"type": "accept", "args": null}])
        );
        let bare = approvals_of("b", &thread(request(all))).unwrap().remove(0);
        assert_eq!(
            resume_value(&bare, &Answer::Reject).unwrap(),
            json!({"type": "ignore", "args": null})
        );
        assert_eq!(
            resume_value(&bare, &Answer::Edit(json!({"to": "c@d"}))).unwrap(),
            json!({"type": "edit", "args": {"action": "send_email", "args": {"to": "c@d"}}})
        );
        assert!(resume_value(&bare, &Answer::Edit(json!([1]))).is_err());
        assert_eq!(
            resume_value(&bare, &Answer::Respond("no".into())).unwrap(),
            json!({"type": "response", "args": "no"})
        );
    }

    #[test]
    fn plain_values_are_shown_as_they_are() {
        let a = approvals_of("b", &thread(json!("Deploy?")))
            .unwrap()
            .remove(0);
        assert_eq!(a["shape"], SHAPE_PLAIN);
        assert_eq!(a["title"], "Deploy?");
        assert_eq!(a["value"], "Deploy?");
        assert_eq!(resume_value(&a, &Answer::Approve).unwrap(), json!(true));
        assert_eq!(resume_value(&a, &Answer::Reject).unwrap(), json!(false));
        assert_eq!(
            resume_value(&a, &Answer::Respond("later".into())).unwrap(),
            json!("later")
        );
        assert!(resume_value(&a, &Answer::Edit(json!({}))).is_err());
        let n = approvals_of("b", &thread(json!({"n": 3})))
            .unwrap()
            .remove(0);
        assert_eq!(n["title"], "{\"n\":3}");
    }

    #[test]
    fn garbage_threads() {
        assert!(approvals_of("b", &json!("x")).is_err());
        assert!(approvals_of("b", &json!({"thread_id": ""})).is_err());
        assert!(
            approvals_of("b", &json!({"thread_id": "t", "interrupts": null}))
                .unwrap()
                .is_empty()
        );
        assert!(
            approvals_of("b", &json!({"thread_id": "t", "interrupts": {"a": 3}}))
                .unwrap()
                .is_empty()
        );
        // No id: cannot be resumed by id, so no approval.
        assert!(approvals_of(
            "b",
            &json!({"thread_id": "t", "interrupts": {"a": [{"value": 1}]}})
        )
        .unwrap()
        .is_empty());
        // A list of two requests is no single request: shown as a plain value.
        let two = json!([request(json!({})), request(json!({}))]);
        assert_eq!(
            approvals_of("b", &thread(two)).unwrap()[0]["shape"],
            SHAPE_PLAIN
        );
        // A request allowing nothing allows no answer.
        let none = approvals_of("b", &thread(request(json!("bad"))))
            .unwrap()
            .remove(0);
        assert_eq!(none["allowed"], json!([]));
        assert!(resume_value(&none, &Answer::Approve).is_err());
    }
}
