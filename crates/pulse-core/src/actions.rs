//! Sending user actions (approve, reject, edit, respond, move, terminate) to a server over REST,
//! with a running session or without one.
//!
//! - [`ActionSet`] is which actions a server takes: every one on a Pulse gateway,
//!   the ones its profile declares (`[actions.*]`) on any other server. It is the
//!   one answer to "can this server take this action" (`Speaks::actions`, the
//!   dialect's [`Dialect::actions`]);
//! - the dialect chooses how an action is performed ([`Dialect::perform`]): the
//!   native one posts to the gateway's REST, a profile renders its REST template;
//! - [`send`] makes one attempt: an action the server does not take is refused
//!   before anything is sent ([`NotDone::Unsupported`]); a refused token is
//!   refreshed once ([`with_token`]), then the server's answer (or the lack of one)
//!   is returned as it is;
//! - `send_action` (crate-private) is what a running session does with that
//!   answer: it settles the action (`Sent::Final`: done, conflict, refused) or
//!   leaves it for the outbox (`Sent::Retry`: unreachable, rate limited, 5xx,
//!   credentials refused);
//! - [`perform_detached`] is the same for a caller with no running session (the
//!   desktop app while signed out, `pulsectl approve`): send now when it can, queue
//!   in the outbox only when the server cannot be reached (or when there is no way
//!   to send at all); every other answer is the caller's to report.
//!
//! Invariants: an action is never both sent and queued; a conflict is returned,
//! never dropped; a queued action waits in the store's outbox until a session sends
//! it on reconnect.

use pulse_protocol::domain::{Entity, EntityKind, Object};
use serde::Serialize;
use serde_json::Value;

use crate::auth::{with_token, AuthError, Secret, TokenProvider, TokenTry};
use crate::rest::{RestClient, RestError};
use crate::session::{ActionOutcome, Dialect};
use crate::store::{Action, Owner, StoreError, StoreHandle};

/// The kinds of user action, named as in [`Action`]'s `action` tag and a
/// profile's `[actions.NAME]` tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ActionKind {
    /// [`Action::Approve`].
    Approve,
    /// [`Action::Reject`].
    Reject,
    /// [`Action::Edit`].
    Edit,
    /// [`Action::Respond`].
    Respond,
    /// [`Action::MoveTicket`].
    MoveTicket,
    /// [`Action::TerminateAgent`].
    TerminateAgent,
}

impl ActionKind {
    /// Every kind, in this order.
    pub const ALL: [ActionKind; 6] = [
        ActionKind::Approve,
        ActionKind::Reject,
        ActionKind::Edit,
        ActionKind::Respond,
        ActionKind::MoveTicket,
        ActionKind::TerminateAgent,
    ];

    /// Its name (`move_ticket`).
    pub fn name(self) -> &'static str {
        match self {
            ActionKind::Approve => "approve",
            ActionKind::Reject => "reject",
            ActionKind::Edit => "edit",
            ActionKind::Respond => "respond",
            ActionKind::MoveTicket => "move_ticket",
            ActionKind::TerminateAgent => "terminate_agent",
        }
    }

    /// The kind named `name`.
    pub fn parse(name: &str) -> Option<ActionKind> {
        ActionKind::ALL.into_iter().find(|k| k.name() == name)
    }

    /// The kind of entity it acts on.
    pub fn target(self) -> EntityKind {
        match self {
            ActionKind::Approve | ActionKind::Reject | ActionKind::Edit | ActionKind::Respond => {
                EntityKind::Approval
            }
            ActionKind::MoveTicket => EntityKind::Ticket,
            ActionKind::TerminateAgent => EntityKind::Agent,
        }
    }

    /// The template variables an action of this kind gives besides `{id}`.
    pub fn variables(self) -> &'static [&'static str] {
        match self {
            ActionKind::MoveTicket => &["state"],
            ActionKind::Edit => &["args"],
            ActionKind::Respond => &["text"],
            _ => &["reason"],
        }
    }
}

impl std::fmt::Display for ActionKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl Action {
    /// What kind of action this is.
    pub fn kind(&self) -> ActionKind {
        match self {
            Action::Approve { .. } => ActionKind::Approve,
            Action::Reject { .. } => ActionKind::Reject,
            Action::Edit { .. } => ActionKind::Edit,
            Action::Respond { .. } => ActionKind::Respond,
            Action::MoveTicket { .. } => ActionKind::MoveTicket,
            Action::TerminateAgent { .. } => ActionKind::TerminateAgent,
        }
    }

    /// The id of the entity it acts on (of kind `self.kind().target()`).
    pub fn id(&self) -> &str {
        match self {
            Action::Approve { id, .. }
            | Action::Reject { id, .. }
            | Action::Edit { id, .. }
            | Action::Respond { id, .. }
            | Action::MoveTicket { id, .. }
            | Action::TerminateAgent { id, .. } => id,
        }
    }

    /// Its template variables: `id`, and `state` (move), `args` (edit: the JSON
    /// text), `text` (respond) or `reason` (when given).
    pub fn variables(&self) -> Vec<(&'static str, String)> {
        let mut out = vec![("id", self.id().to_owned())];
        match self {
            Action::MoveTicket { state, .. } => out.push(("state", state.clone())),
            Action::Edit { args, .. } => out.push(("args", args.to_string())),
            Action::Respond { text, .. } => out.push(("text", text.clone())),
            Action::Approve { reason, .. }
            | Action::Reject { reason, .. }
            | Action::TerminateAgent { reason, .. } => {
                if let Some(r) = reason {
                    out.push(("reason", r.clone()));
                }
            }
        }
        out
    }
}

/// Which user actions a server takes. A Pulse gateway takes every one
/// ([`ActionSet::ALL`]); a profile server those its profile declares.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct ActionSet {
    /// Approve an approval.
    pub approve: bool,
    /// Reject an approval.
    pub reject: bool,
    /// Answer an approval with edited arguments.
    pub edit: bool,
    /// Answer an approval in words.
    pub respond: bool,
    /// Move a ticket (the board's drag).
    pub move_ticket: bool,
    /// Terminate an agent.
    pub terminate_agent: bool,
}

impl ActionSet {
    /// Every action (a Pulse gateway).
    pub const ALL: ActionSet = ActionSet {
        approve: true,
        reject: true,
        edit: true,
        respond: true,
        move_ticket: true,
        terminate_agent: true,
    };

    /// No action (a profile that declares none).
    pub const NONE: ActionSet = ActionSet {
        approve: false,
        reject: false,
        edit: false,
        respond: false,
        move_ticket: false,
        terminate_agent: false,
    };

    /// The set of `kinds`.
    pub fn of(kinds: impl IntoIterator<Item = ActionKind>) -> ActionSet {
        let mut s = ActionSet::NONE;
        for k in kinds {
            *s.slot(k) = true;
        }
        s
    }

    fn slot(&mut self, kind: ActionKind) -> &mut bool {
        match kind {
            ActionKind::Approve => &mut self.approve,
            ActionKind::Reject => &mut self.reject,
            ActionKind::Edit => &mut self.edit,
            ActionKind::Respond => &mut self.respond,
            ActionKind::MoveTicket => &mut self.move_ticket,
            ActionKind::TerminateAgent => &mut self.terminate_agent,
        }
    }

    /// Whether actions of `kind` are taken.
    pub fn has(&self, kind: ActionKind) -> bool {
        match kind {
            ActionKind::Approve => self.approve,
            ActionKind::Reject => self.reject,
            ActionKind::Edit => self.edit,
            ActionKind::Respond => self.respond,
            ActionKind::MoveTicket => self.move_ticket,
            ActionKind::TerminateAgent => self.terminate_agent,
        }
    }

    /// Whether `action` is taken.
    pub fn takes(&self, action: &Action) -> bool {
        self.has(action.kind())
    }

    /// Whether any action is taken.
    pub fn any(&self) -> bool {
        ActionKind::ALL.into_iter().any(|k| self.has(k))
    }
}

/// What a server that did an action answered ([`Dialect::perform`]).
#[derive(Debug, Clone, PartialEq)]
pub enum Performed {
    /// The entity as the server now has it.
    Entity(Entity),
    /// The server said yes without sending the entity: this patch (a profile's
    /// declared optimistic change) applied to the cached entity stands for it
    /// until the server's event arrives.
    Patched(Object),
}

/// Why an action was not done by [`send`].
#[derive(Debug)]
pub enum NotDone {
    /// The server does not take this action (its profile declares none): why.
    Unsupported(String),
    /// No token could be had (credentials refused, or the sign-in server unreachable).
    Token(AuthError),
    /// The server answered with an error, or could not be reached.
    Rest(RestError),
}

/// What to say when a server does not take `action`.
pub fn unsupported(action: &Action) -> String {
    format!(
        "this server's profile declares no `{}` action ([actions.{}]); act in its own dashboard",
        action.kind(),
        action.kind()
    )
}

/// Where to send an action when no session runs: the server's REST client, its
/// tokens, and the dialect that says how.
#[derive(Clone, Copy)]
pub struct Via<'a> {
    /// The server's REST client (its base URL).
    pub rest: &'a RestClient,
    /// Its tokens.
    pub tokens: &'a dyn TokenProvider,
    /// How it is spoken to (`SessionConfig::dialect`).
    pub dialect: &'a dyn Dialect,
}

impl NotDone {
    /// Whether the server could not be reached now (worth queueing and retrying):
    /// a transient REST error, or a sign-in server that did not answer.
    pub fn is_unreachable(&self) -> bool {
        match self {
            NotDone::Unsupported(_) => false,
            NotDone::Token(AuthError::Unauthorized(_)) => false,
            NotDone::Token(_) => true,
            NotDone::Rest(e) => e.is_transient(),
        }
    }
}

/// Reads like the REST error it stands for: a sign-in server that did not answer is
/// "server unreachable: …", refused credentials are their message alone.
impl std::fmt::Display for NotDone {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NotDone::Unsupported(m) => f.write_str(m),
            NotDone::Token(AuthError::Unauthorized(m)) => f.write_str(m),
            NotDone::Token(e) => write!(f, "{}", RestError::Unreachable(e.to_string())),
            NotDone::Rest(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for NotDone {}

/// The idempotency key of `action` queued at `queued_at` (ms since the epoch): the
/// same for every send of one queued action, its first try included, across
/// restarts (it depends only on what the outbox row keeps), and different for
/// another action or another moment. Sent as `Idempotency-Key`, so that the
/// gateway applies a resend after a timeout once and answers it like the first.
pub fn idempotency_key(action: &Action, queued_at: i64) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    h.update(serde_json::to_vec(action).unwrap_or_default());
    h.update(b"\0");
    h.update(queued_at.to_be_bytes());
    let digest = h.finalize();
    let hex: String = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
    format!("pulse-{hex}")
}

/// Send `action` once over `via` with idempotency `key` (when given); a token the
/// server refuses is refreshed once and the action sent again with the same key. An
/// answer without the entity ([`Performed::Patched`]) is completed from the entity
/// cached in `cache` (when given and held).
pub async fn send(
    via: Via<'_>,
    cache: Option<&StoreHandle>,
    action: &Action,
    key: Option<&str>,
) -> Result<Entity, NotDone> {
    if !via.dialect.actions().takes(action) {
        return Err(NotDone::Unsupported(unsupported(action)));
    }
    let call = |token: Secret| via.dialect.perform(via.rest, token, action, key);
    let performed = with_token(via.tokens, false, call)
        .await
        .map_err(|e| match e {
            TokenTry::NoToken { error, .. } => NotDone::Token(error),
            TokenTry::Refused(e) | TokenTry::Failed(e) => NotDone::Rest(e),
        })?;
    Ok(match performed {
        Performed::Entity(e) => e,
        Performed::Patched(patch) => patched(cache, action, patch),
    })
}

/// The entity `action` acts on as cached (or only its id), with `patch` applied.
fn patched(cache: Option<&StoreHandle>, action: &Action, patch: Object) -> Entity {
    let kind = action.kind().target();
    let id = action.id().to_owned();
    let mut data = cache
        .and_then(|s| s.get(kind, &id).ok().flatten())
        .map(|e| e.data)
        .unwrap_or_else(|| Object::from_iter([("id".to_owned(), Value::String(id.clone()))]));
    data.extend(patch);
    Entity { kind, id, data }
}

/// What a session does with an action it tried to send.
pub(crate) enum Sent {
    /// Settled: report this outcome (and drop it from the outbox).
    Final(ActionOutcome),
    /// Not sent now, for this reason: keep it in the outbox.
    Retry(String),
}

/// Send `action` for a running session: see [`Sent`].
pub(crate) async fn send_action(
    via: Via<'_>,
    cache: &StoreHandle,
    action: &Action,
    key: &str,
) -> Sent {
    match send(via, Some(cache), action, Some(key)).await {
        Ok(entity) => Sent::Final(ActionOutcome::Done { entity }),
        Err(NotDone::Unsupported(message)) => Sent::Final(ActionOutcome::Rejected { message }),
        Err(NotDone::Token(e)) => Sent::Retry(e.to_string()),
        Err(NotDone::Rest(RestError::Conflict { message, current })) => {
            Sent::Final(ActionOutcome::Conflict { message, current })
        }
        Err(NotDone::Rest(e)) if e.is_transient() => Sent::Retry(e.to_string()),
        Err(NotDone::Rest(RestError::Unauthorized { message, .. })) => Sent::Retry(message),
        Err(NotDone::Rest(e)) => Sent::Final(ActionOutcome::Rejected {
            message: e.to_string(),
        }),
    }
}

/// What [`perform_detached`] did.
#[derive(Debug)]
pub enum Detached {
    /// Sent: the entity as the server now has it.
    Done(Entity),
    /// Queued in the outbox, to be sent by the next session.
    Queued {
        /// The outbox row.
        outbox_id: u64,
        /// Why it was not sent: the server was unreachable (`None`: there was no way
        /// to send it, e.g. signed out).
        unreachable: Option<NotDone>,
    },
}

/// Why [`perform_detached`] neither did nor queued the action.
#[derive(Debug, thiserror::Error)]
pub enum NotPerformed {
    /// The server said no (conflict, not found, credentials refused, …), or it could
    /// not be reached and there was no outbox to queue in.
    #[error(transparent)]
    NotDone(NotDone),
    /// The outbox could not be opened or written.
    #[error(transparent)]
    Queue(StoreError),
    /// Neither a server to send to nor an outbox was given.
    #[error("the action can neither be sent nor queued")]
    Nowhere,
}

/// Perform `action` with no session running: send it now over `via` (its server's
/// REST client, tokens and dialect) when given, and queue it in the store `outbox`
/// opens when the server cannot be reached, or at once when there is no `via`.
/// `outbox` is called only to queue, and the entry is queued for `owner` (the
/// server and account the action is taken as: only that owner's session sends
/// it). An action the server does not take is never sent nor queued.
pub async fn perform_detached<F>(
    via: Option<Via<'_>>,
    owner: &Owner,
    action: &Action,
    outbox: Option<F>,
) -> Result<Detached, NotPerformed>
where
    F: FnOnce() -> Result<StoreHandle, StoreError>,
{
    let queued_at = crate::now_ms();
    let key = idempotency_key(action, queued_at);
    let unreachable = match via {
        Some(via) => match send(via, None, action, Some(&key)).await {
            Ok(entity) => return Ok(Detached::Done(entity)),
            Err(e) if e.is_unreachable() && outbox.is_some() => Some(e),
            Err(e) => return Err(NotPerformed::NotDone(e)),
        },
        None => None,
    };
    let Some(open) = outbox else {
        return Err(NotPerformed::Nowhere);
    };
    let store = open().map_err(NotPerformed::Queue)?;
    let outbox_id = store
        .outbox_push(owner, action, queued_at)
        .map_err(NotPerformed::Queue)?;
    Ok(Detached::Queued {
        outbox_id,
        unreachable,
    })
}

/// As a session would report it: done, or queued.
impl From<Detached> for ActionOutcome {
    fn from(d: Detached) -> Self {
        match d {
            Detached::Done(entity) => ActionOutcome::Done { entity },
            Detached::Queued { outbox_id, .. } => ActionOutcome::Queued { outbox_id },
        }
    }
}
