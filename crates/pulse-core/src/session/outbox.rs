//! User actions: sent now when the server is reachable, else queued in the store's
//! outbox and sent, in order, once the session is back (live or polling).
//!
//! Contract:
//! - an action reaches a final [`ActionOutcome`] (done, conflict, rejected) or stays
//!   queued; a conflict or refusal is reported, never dropped;
//! - the session's dialect says which actions the server takes and how each is
//!   sent (`Dialect::perform`); one it does not take is rejected, never queued;
//! - a refused token is refreshed once per send (`crate::actions::send`);
//! - one flush runs at a time; a send that fails for a transient reason keeps the
//!   entry (with its error) and holds back the later entries *for the same item*
//!   (so one item's actions stay in order), but never the entries of other items:
//!   one failing entry does not block the rest;
//! - while the session is live (or polling), failed entries are retried with a
//!   growing delay ([`RETRY_FIRST`] doubling up to [`RETRY_CAP`]), not only at
//!   the next reconnect; a send that fails when first tried starts those retries
//!   too. Offline, the retries stop and the next reconnect flushes;
//! - a session sends only the entries of its own [`Owner`] (`SessionConfig::owner`:
//!   the server and account it acts for), and stamps what it queues with it.
//!   Entries of another owner (queued before a switch of server or account) and
//!   entries with no owner are skipped: never sent, never changed, never counted
//!   as failed; they wait for their owner's session, or for the user to discard
//!   them.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{broadcast, watch};
use tracing::{debug, info, warn};

use super::Dialect;
use super::{ActionOutcome, ConnectionState, SessionError, SessionEvent, SessionStatus};
use crate::actions::{send_action, unsupported, Sent, Via};
use crate::auth::TokenProvider;
use crate::rest::RestClient;
use crate::store::{Action, Owner, StoreHandle};

/// The first wait before failed entries are tried again while live.
pub(crate) const RETRY_FIRST: Duration = Duration::from_secs(1);
/// The longest wait between two tries of failed entries while live.
pub(crate) const RETRY_CAP: Duration = Duration::from_secs(60);

/// Sends actions and flushes the outbox for one session.
#[derive(Clone)]
pub(crate) struct Flusher {
    rest: RestClient,
    tokens: Arc<dyn TokenProvider>,
    owner: Owner,
    dialect: Arc<dyn Dialect>,
    store: StoreHandle,
    events: broadcast::Sender<SessionEvent>,
    status: watch::Receiver<SessionStatus>,
    flushing: Arc<AtomicBool>,
}

impl Flusher {
    pub(crate) fn new(
        rest: RestClient,
        tokens: Arc<dyn TokenProvider>,
        owner: Owner,
        dialect: Arc<dyn Dialect>,
        store: StoreHandle,
        events: broadcast::Sender<SessionEvent>,
        status: watch::Receiver<SessionStatus>,
    ) -> Self {
        Flusher {
            rest,
            tokens,
            owner,
            dialect,
            store,
            events,
            status,
            flushing: Arc::new(AtomicBool::new(false)),
        }
    }

    /// Whether the session can send now (live, or polling).
    fn online(&self) -> bool {
        matches!(
            self.status.borrow().state,
            ConnectionState::Live | ConnectionState::Polling { .. }
        )
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
        let id = self.store.outbox_push(&self.owner, &action, queued_at)?;
        if let Some(err) = why {
            // Kept with the reason it was not sent (a refused token, a 5xx …),
            // and tried again while the session stays live.
            self.store.outbox_fail(id, &err)?;
            self.run(Some(RETRY_FIRST));
        }
        Ok(ActionOutcome::Queued { outbox_id: id })
    }

    /// Send queued actions in order, in the background, now; then retry failed
    /// ones while online. One flush at a time.
    pub(crate) fn start(&self) {
        self.run(None);
    }

    /// The flush loop: after `first_wait` if given, flush; while entries failed
    /// and the session is online, wait (doubling from [`RETRY_FIRST`] up to
    /// [`RETRY_CAP`]) and flush again.
    fn run(&self, first_wait: Option<Duration>) {
        if self.flushing.swap(true, Ordering::AcqRel) {
            return;
        }
        let this = self.clone();
        tokio::spawn(async move {
            let mut wait = first_wait;
            let mut next = RETRY_FIRST;
            loop {
                if let Some(w) = wait.take() {
                    tokio::time::sleep(w).await;
                    if !this.online() {
                        break;
                    }
                }
                if !this.flush().await || !this.online() {
                    break;
                }
                debug!(
                    wait_ms = next.as_millis() as u64,
                    "outbox entries failed; retrying while live"
                );
                wait = Some(next);
                next = (next * 2).min(RETRY_CAP);
            }
            this.flushing.store(false, Ordering::Release);
        });
    }

    /// One pass over the outbox; true when entries failed and remain.
    async fn flush(&self) -> bool {
        let entries = match self.store.outbox() {
            Ok(e) => e,
            Err(e) => {
                warn!(error = %e, "cannot read the outbox");
                return false;
            }
        };
        // Items with an entry that failed in this pass: their later entries wait,
        // so one item's actions are never reordered.
        let mut held: HashSet<String> = HashSet::new();
        for entry in entries {
            if entry.owner.as_ref() != Some(&self.owner) {
                // Another account's or server's (or nobody's known): not ours to send.
                continue;
            }
            if held.contains(entry.action.id()) {
                continue;
            }
            let key = crate::actions::idempotency_key(&entry.action, entry.queued_at);
            match send_action(self.via(), &self.store, &entry.action, &key).await {
                Sent::Final(outcome) => {
                    if let Err(e) = self.store.outbox_remove(entry.id) {
                        warn!(error = %e, "cannot remove a sent action from the outbox");
                        return false;
                    }
                    info!(outbox_id = entry.id, "queued action settled");
                    let _ = self.events.send(SessionEvent::ActionSettled {
                        outbox_id: entry.id,
                        action: entry.action,
                        outcome,
                    });
                }
                Sent::Retry(err) => {
                    info!(outbox_id = entry.id, %err, "queued action not sent; the others go on");
                    let _ = self.store.outbox_fail(entry.id, &err);
                    held.insert(entry.action.id().to_owned());
                }
            }
        }
        !held.is_empty()
    }
}
