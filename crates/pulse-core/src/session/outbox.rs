//! User actions: sent now when the server is reachable, else queued in the store's
//! outbox and sent, in order, once the session is back (live or polling).
//!
//! Contract:
//! - an action reaches a final [`ActionOutcome`] (done, conflict, rejected) or stays
//!   queued; a conflict or refusal is reported, never dropped;
//! - the session's dialect says which actions the server takes and how each is
//!   sent (`Dialect::perform`); one it does not take is rejected, never queued;
//! - a refused token is refreshed once per send (`crate::actions::send`);
//! - one flush runs at a time; a send that fails for a transient reason stops the
//!   flush and keeps the entry (with its error) for the next one.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use tokio::sync::broadcast;
use tracing::{debug, info, warn};

use super::Dialect;
use super::{ActionOutcome, SessionError, SessionEvent};
use crate::actions::{send_action, unsupported, Sent, Via};
use crate::auth::TokenProvider;
use crate::rest::RestClient;
use crate::store::{Action, StoreHandle};

/// Sends actions and flushes the outbox for one session.
#[derive(Clone)]
pub(crate) struct Flusher {
    rest: RestClient,
    tokens: Arc<dyn TokenProvider>,
    dialect: Arc<dyn Dialect>,
    store: StoreHandle,
    events: broadcast::Sender<SessionEvent>,
    flushing: Arc<AtomicBool>,
}

impl Flusher {
    pub(crate) fn new(
        rest: RestClient,
        tokens: Arc<dyn TokenProvider>,
        dialect: Arc<dyn Dialect>,
        store: StoreHandle,
        events: broadcast::Sender<SessionEvent>,
    ) -> Self {
        Flusher {
            rest,
            tokens,
            dialect,
            store,
            events,
            flushing: Arc::new(AtomicBool::new(false)),
        }
    }

    pub(crate) fn rest(&self) -> &RestClient {
        &self.rest
    }

    pub(crate) fn store(&self) -> &StoreHandle {
        &self.store
    }

    pub(crate) fn tokens(&self) -> &Arc<dyn TokenProvider> {
        &self.tokens
    }

    pub(crate) fn dialect(&self) -> &Arc<dyn Dialect> {
        &self.dialect
    }

    fn via(&self) -> Via<'_> {
        Via {
            rest: &self.rest,
            tokens: self.tokens.as_ref(),
            dialect: self.dialect.as_ref(),
        }
    }

    /// Send now when `online`, queue otherwise (or when the send must be retried).
    pub(crate) async fn perform(
        &self,
        action: Action,
        online: bool,
    ) -> Result<ActionOutcome, SessionError> {
        if !self.dialect.actions().takes(&action) {
            return Ok(ActionOutcome::Rejected {
                message: unsupported(&action),
            });
        }
        let mut why = None;
        // The key of the first try is the key of every resend from the outbox.
        let queued_at = crate::now_ms();
        let key = crate::actions::idempotency_key(&action, queued_at);
        if online {
            match send_action(self.via(), &self.store, &action, &key).await {
                Sent::Final(outcome) => return Ok(outcome),
                Sent::Retry(err) => {
                    debug!(%err, "action not sent now; queueing");
                    why = Some(err);
                }
            }
        }
        let id = self.store.outbox_push(&action, queued_at)?;
        if let Some(err) = why {
            // Kept with the reason it was not sent (a refused token, a 5xx …).
            self.store.outbox_fail(id, &err)?;
        }
        Ok(ActionOutcome::Queued { outbox_id: id })
    }

    /// Send queued actions in order, in the background; one flush at a time.
    pub(crate) fn start(&self) {
        if self.flushing.swap(true, Ordering::AcqRel) {
            return;
        }
        let this = self.clone();
        tokio::spawn(async move {
            this.flush().await;
            this.flushing.store(false, Ordering::Release);
        });
    }

    async fn flush(&self) {
        let entries = match self.store.outbox() {
            Ok(e) => e,
            Err(e) => {
                warn!(error = %e, "cannot read the outbox");
                return;
            }
        };
        for entry in entries {
            let key = crate::actions::idempotency_key(&entry.action, entry.queued_at);
            match send_action(self.via(), &self.store, &entry.action, &key).await {
                Sent::Final(outcome) => {
                    if let Err(e) = self.store.outbox_remove(entry.id) {
                        warn!(error = %e, "cannot remove a sent action from the outbox");
                        return;
                    }
                    info!(outbox_id = entry.id, "queued action settled");
                    let _ = self.events.send(SessionEvent::ActionSettled {
                        outbox_id: entry.id,
                        action: entry.action,
                        outcome,
                    });
                }
                Sent::Retry(err) => {
                    let _ = self.store.outbox_fail(entry.id, &err);
                    return;
                }
            }
        }
    }
}
