//! Sending user actions (approve, reject, move, terminate) to a server over REST,
//! with a running session or without one.
//!
//! - [`send`] makes one attempt: a refused token is refreshed once
//!   ([`with_token`]), then the
//!   server's answer (or the lack of one) is returned as it is;
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

use pulse_protocol::domain::Entity;

use crate::auth::{with_token, AuthError, Secret, TokenProvider, TokenTry};
use crate::rest::{RestClient, RestError};
use crate::session::ActionOutcome;
use crate::store::{Action, StoreError, StoreHandle};

/// Why an action was not done by [`send`].
#[derive(Debug)]
pub enum NotDone {
    /// No token could be had (credentials refused, or the sign-in server unreachable).
    Token(AuthError),
    /// The server answered with an error, or could not be reached.
    Rest(RestError),
}

impl NotDone {
    /// Whether the server could not be reached now (worth queueing and retrying):
    /// a transient REST error, or a sign-in server that did not answer.
    pub fn is_unreachable(&self) -> bool {
        match self {
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
            NotDone::Token(AuthError::Unauthorized(m)) => f.write_str(m),
            NotDone::Token(e) => write!(f, "{}", RestError::Unreachable(e.to_string())),
            NotDone::Rest(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for NotDone {}

/// Send `action` once; a token the server refuses is refreshed once and the action
/// sent again.
pub async fn send(
    rest: &RestClient,
    tokens: &dyn TokenProvider,
    action: &Action,
) -> Result<Entity, NotDone> {
    let call = |token: Secret| {
        let (rest, action) = (rest.clone(), action.clone());
        async move { rest.perform(&token, &action).await }
    };
    with_token(tokens, false, call).await.map_err(|e| match e {
        TokenTry::NoToken { error, .. } => NotDone::Token(error),
        TokenTry::Refused(e) | TokenTry::Failed(e) => NotDone::Rest(e),
    })
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
    rest: &RestClient,
    tokens: &dyn TokenProvider,
    action: &Action,
) -> Sent {
    match send(rest, tokens, action).await {
        Ok(entity) => Sent::Final(ActionOutcome::Done { entity }),
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
/// REST client and tokens) when given, and queue it in the store `outbox` opens when
/// the server cannot be reached, or at once when there is no `via`. `outbox` is
/// called only to queue.
pub async fn perform_detached<F>(
    via: Option<(&RestClient, &dyn TokenProvider)>,
    action: &Action,
    outbox: Option<F>,
) -> Result<Detached, NotPerformed>
where
    F: FnOnce() -> Result<StoreHandle, StoreError>,
{
    let unreachable = match via {
        Some((rest, tokens)) => match send(rest, tokens, action).await {
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
        .outbox_push(action, crate::now_ms())
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
