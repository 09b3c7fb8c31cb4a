//! [`Pump`]: the app's state machine. It turns the session's events into
//! [`AppEvent`]s (coalesced entity states, counts, notifications) with plain method
//! calls, so it is tested without a session or a clock.
//!
//! Invariants:
//! - every touched entity's last state reaches the coalescer; nothing is dropped;
//! - notifications are evaluated only on committed changes, after the entity states
//!   they describe are known;
//! - counts are sent only when they changed.

use std::sync::{Arc, Mutex};

use pulse_protocol::domain::{Change, Object};
use tracing::warn;

use super::{AppEvent, Coalescer, CountTracker, Counts, EntityUpdate};
use crate::policy::{BatchContext, Committed, Notification, Policy};
use crate::session::{ConnectionState, SessionEvent, SessionStatus};
use crate::store::{Store, StoreError};

/// The pump's state: turns session events into app events. Driven by [`App`]'s task;
/// every method is synchronous so it is tested without a session.
pub struct Pump {
    pub(super) policy: Arc<Mutex<Policy>>,
    coalescer: Coalescer,
    counts: CountTracker,
    last_counts: Counts,
    /// When the connection was last lost (None while live or before the first success).
    disconnected_at: Option<i64>,
    /// Whether the session was ever live in this run.
    was_live: bool,
}

impl Pump {
    /// A pump over `store`'s current contents.
    pub fn new(policy: Arc<Mutex<Policy>>, store: &dyn Store) -> Result<Pump, StoreError> {
        let counts = CountTracker::from_store(store)?;
        let last_counts = counts.counts();
        Ok(Pump {
            policy,
            coalescer: Coalescer::default(),
            counts,
            last_counts,
            disconnected_at: None,
            was_live: false,
        })
    }

    /// The badge counts as of the last flush.
    pub fn counts(&self) -> Counts {
        self.last_counts
    }

    /// Note a status change (to time disconnections for the digest rule).
    pub fn on_status(&mut self, status: &SessionStatus, now_ms: i64) {
        match status.state {
            ConnectionState::Live | ConnectionState::Polling { .. } => {
                self.was_live = true;
            }
            ConnectionState::Connecting { .. } => {}
            _ => {
                if self.was_live && self.disconnected_at.is_none() {
                    self.disconnected_at = Some(now_ms);
                }
            }
        }
    }

    /// Handle one session event. Returns app events to send now and notifications to
    /// show; entity updates wait in the coalescer until [`Pump::flush`].
    pub fn on_session_event(
        &mut self,
        event: SessionEvent,
        store: &dyn Store,
        now_ms: i64,
    ) -> (Vec<AppEvent>, Vec<Notification>) {
        match event {
            SessionEvent::Applied {
                events,
                catching_up,
                ..
            } => {
                let mut pairs: Vec<(Change, Option<Object>)> = Vec::new();
                for ev in events.iter() {
                    for change in &ev.changes {
                        let data = match store.get(change.kind(), change.id()) {
                            Ok(e) => e.map(|e| e.data),
                            Err(e) => {
                                warn!(error = %e, "cannot read a changed entity; reloading");
                                return (vec![AppEvent::Reset], Vec::new());
                            }
                        };
                        pairs.push((change.clone(), data));
                    }
                }
                let away_ms = if catching_up {
                    self.disconnected_at
                        .map(|t| u64::try_from(now_ms - t).unwrap_or(0))
                } else {
                    None
                };
                if !catching_up {
                    self.disconnected_at = None;
                }
                let batch: Vec<Committed<'_>> = pairs
                    .iter()
                    .map(|(change, entity)| Committed {
                        change,
                        entity: entity.as_ref(),
                    })
                    .collect();
                let notes = self
                    .policy
                    .lock()
                    .expect("policy lock")
                    .evaluate(&batch, &BatchContext { now_ms, away_ms });
                for (change, data) in pairs {
                    let u = EntityUpdate {
                        kind: change.kind(),
                        id: change.id().to_owned(),
                        data,
                    };
                    self.counts.observe(&u);
                    self.coalescer.push(u);
                }
                (Vec::new(), notes)
            }
            SessionEvent::SnapshotLoaded { .. } => {
                self.disconnected_at = None;
                self.reset(store)
            }
            SessionEvent::ActionSettled {
                outbox_id,
                action,
                outcome,
            } => {
                let mut out = vec![AppEvent::Settled {
                    outbox_id,
                    action,
                    outcome,
                }];
                if let Ok(entries) = store.outbox() {
                    out.push(AppEvent::Outbox { entries });
                }
                (out, Vec::new())
            }
        }
    }

    /// Drop what is waiting and tell the UI to reload (after a snapshot or a lag).
    pub fn reset(&mut self, store: &dyn Store) -> (Vec<AppEvent>, Vec<Notification>) {
        self.coalescer.clear();
        if let Ok(c) = CountTracker::from_store(store) {
            self.counts = c;
        }
        if let Ok(list) = store.list(pulse_protocol::domain::EntityKind::Approval) {
            let pending = list
                .iter()
                .filter(|e| pulse_protocol::domain::is_pending_approval(&e.data))
                .map(|e| (e.id.as_str(), &e.data));
            self.policy
                .lock()
                .expect("policy lock")
                .resync_approvals(pending, crate::now_ms());
        }
        let mut out = vec![AppEvent::Reset];
        let counts = self.counts.counts();
        if counts != self.last_counts {
            self.last_counts = counts;
            out.push(AppEvent::Counts { counts });
        }
        (out, Vec::new())
    }

    /// Whether updates are waiting for the next frame.
    pub fn has_pending(&self) -> bool {
        !self.coalescer.is_empty()
    }

    /// The coalesced updates of this frame, and new counts if they changed.
    pub fn flush(&mut self) -> Vec<AppEvent> {
        let mut out = Vec::new();
        if !self.coalescer.is_empty() {
            out.push(AppEvent::Updates {
                updates: self.coalescer.take(),
            });
        }
        let counts = self.counts.counts();
        if counts != self.last_counts {
            self.last_counts = counts;
            out.push(AppEvent::Counts { counts });
        }
        out
    }
}
