//! App state for a desktop (or any UI) client: one session, the notification
//! pipeline, the tray counts and the coalescing of changes for a UI, without a window.
//!
//! [`App::start`] takes a running [`SessionHandle`] and spawns one *pump* task that
//! turns the session's committed changes into [`AppEvent`]s for the UI shell:
//!
//! ```text
//! session ──SessionEvent──► Pump ──► policy ──► Notifier (OS)
//!                             │
//!                             ├──► Coalescer ──(what is queued, at once)──► AppEvent::Updates
//!                             └──► CountTracker ──► AppEvent::Counts (tray badge)
//! ```
//!
//! Contract:
//! - the UI receives entity *states* (the entity as the store has it after the
//!   change, `None` = deleted), never raw frames; within one frame several changes of
//!   one entity collapse into its latest state, so a burst is coalesced but nothing
//!   is dropped: the last state of every touched entity always arrives;
//! - if the pump falls behind the session's broadcast (lagged) or a snapshot replaced
//!   the cache, it sends [`AppEvent::Reset`]: the UI reloads everything from the store;
//! - notifications are evaluated only on committed changes (the [`Policy`] contract)
//!   and each one shown is recorded in the [`NotificationCentre`] (history cap, read
//!   marks) before it is reported as [`AppEvent::Notified`];
//! - the [`Pump`] is plain state driven by method calls, testable without I/O.

mod centre;
mod pump;

pub use centre::{NotificationCentre, ReadMarks, MAX_NOTIFICATIONS, MAX_READ};
pub use pump::Pump;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use pulse_protocol::domain::{
    approval_waiting_since, count_from_stats, is_active_ticket, is_done_ticket, is_escalated,
    is_failed_agent, is_live_agent, is_open_conversation, is_pending_approval, is_unread,
    is_working_agent, Entity, EntityKind, Object, STATS_COUNTS,
};
use serde::Serialize;
use tokio::sync::{broadcast, mpsc, watch};
use tokio::time::Instant;
use tracing::{debug, warn};

use crate::policy::{close_all, show_all, Notification, Notifier, Policy, PolicyConfig};
use crate::session::{ActionOutcome, SessionError, SessionEvent, SessionHandle, SessionStatus};
use crate::store::{Action, OutboxEntry, Store, StoreError, StoreSummary};

/// Default coalescing window: none. The pump forwards what the session has
/// committed as soon as the events already queued are drained (at most
/// [`MAX_DRAIN`] at a time), and the UI applies what has arrived at once, or at
/// most once per few milliseconds under a flood (ui/src/lib/state/app.svelte.ts,
/// `onArrival`): one coalescing stage, not two in series (a timer here added up
/// to 16 ms before the UI's own). A non-zero window waits that long after the
/// first pending update instead.
pub const FRAME: Duration = Duration::ZERO;

/// The most session events handled before the pending updates are forwarded when
/// there is no coalescing window: a burst reaches the UI in bounded batches.
pub const MAX_DRAIN: usize = 256;

/// The state of one entity after a change (`data: None` = it was deleted).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct EntityUpdate {
    /// Its kind.
    pub kind: EntityKind,
    /// Its id.
    pub id: String,
    /// Its fields now; `None` when it no longer exists.
    #[cfg_attr(feature = "ts", ts(type = "Record<string, unknown> | null"))]
    pub data: Option<Object>,
}

/// Collapses a burst of updates into the latest state per entity, in first-touched
/// order. Never drops an entity: [`Coalescer::take`] returns one update for every
/// entity pushed since the last take.
#[derive(Debug, Default)]
pub struct Coalescer {
    order: Vec<(EntityKind, String)>,
    latest: HashMap<(EntityKind, String), Option<Object>>,
    pushed: u64,
}

impl Coalescer {
    /// Record `update`, replacing an earlier one of the same entity.
    pub fn push(&mut self, update: EntityUpdate) {
        self.pushed += 1;
        let key = (update.kind, update.id);
        if !self.latest.contains_key(&key) {
            self.order.push(key.clone());
        }
        self.latest.insert(key, update.data);
    }

    /// Whether nothing is waiting.
    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }

    /// How many updates were pushed in all (before coalescing).
    pub fn pushed(&self) -> u64 {
        self.pushed
    }

    /// Forget what is waiting (a reset follows).
    pub fn clear(&mut self) {
        self.order.clear();
        self.latest.clear();
    }

    /// The latest state of every entity touched since the last take.
    pub fn take(&mut self) -> Vec<EntityUpdate> {
        let mut latest = std::mem::take(&mut self.latest);
        std::mem::take(&mut self.order)
            .into_iter()
            .map(|key| {
                let data = latest.remove(&key).flatten();
                EntityUpdate {
                    kind: key.0,
                    id: key.1,
                    data,
                }
            })
            .collect()
    }
}

/// What the tray badge and the overview show.
///
/// Each count is of the entities the cache holds; where it holds none of the kind a
/// count counts, the count is read from the stats blocks
/// ([`count_from_stats`]): a server that sends only stats (seeds 001, 003) still
/// has its badges.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct Counts {
    /// Approvals whose status is `pending` (or absent).
    pub pending_approvals: u64,
    /// Conversations whose status is `escalated`.
    pub open_escalations: u64,
    /// Notifications not read.
    pub unread_notifications: u64,
    /// Tickets being worked on ([`is_active_ticket`]).
    pub tasks_in_progress: u64,
    /// Since when the longest-waiting pending approval waits, ms since the Unix
    /// epoch ([`approval_waiting_since`]; approvals that do not say are left out).
    #[cfg_attr(feature = "ts", ts(type = "number | null"))]
    pub oldest_pending_since_ms: Option<i64>,
    /// Tickets held (the overview's "in all").
    pub tasks_total: u64,
    /// Tickets finished ([`is_done_ticket`]); open tasks are `tasks_total - tasks_done`.
    pub tasks_done: u64,
    /// Conversations not resolved ([`is_open_conversation`]).
    pub open_conversations: u64,
    /// Agents not ended ([`is_live_agent`]); no stats source.
    pub live_agents: u64,
    /// Of those, at work ([`is_working_agent`]).
    pub working_agents: u64,
    /// Of those, failed ([`is_failed_agent`]).
    pub failing_agents: u64,
}

/// Keeps [`Counts`] up to date from entity states, without rescanning the cache.
#[derive(Debug, Default)]
pub struct CountTracker {
    pending: HashSet<String>,
    /// Pending approvals that say since when they wait, by id, and in order.
    since: HashMap<String, i64>,
    since_order: std::collections::BTreeSet<(i64, String)>,
    escalated: HashSet<String>,
    unread: HashSet<String>,
    active: HashSet<String>,
    done: HashSet<String>,
    open_conversations: HashSet<String>,
    live_agents: HashSet<String>,
    working_agents: HashSet<String>,
    failing_agents: HashSet<String>,
    /// Ids held per counted kind (a kind with none falls back to the stats).
    held: HashMap<EntityKind, HashSet<String>>,
    /// The stats blocks a count may be read from, by id.
    blocks: HashMap<String, Object>,
}

/// The kinds [`CountTracker`] counts (the rest it ignores).
const COUNTED_KINDS: [EntityKind; 6] = [
    EntityKind::Agent,
    EntityKind::Approval,
    EntityKind::Conversation,
    EntityKind::Notification,
    EntityKind::Ticket,
    EntityKind::Stats,
];

/// Put `id` in `set` or take it out; `true` when that changed the set (no copy of
/// `id` when it is already in: an agent's heartbeats cost no allocation).
fn toggle(set: &mut HashSet<String>, id: &str, wanted: bool) -> bool {
    if wanted {
        !set.contains(id) && set.insert(id.to_owned())
    } else {
        set.remove(id)
    }
}

/// Whether a stats block with this id is a source of some count.
fn counted_block(id: &str) -> bool {
    STATS_COUNTS
        .iter()
        .any(|(_, _, sources)| sources.iter().any(|(b, _)| *b == id))
}

impl CountTracker {
    /// Counts of what `store` holds now.
    pub fn from_store(store: &dyn Store) -> Result<CountTracker, StoreError> {
        let mut t = CountTracker::default();
        for kind in COUNTED_KINDS {
            for e in store.list(kind)? {
                t.observe_entity(&e);
            }
        }
        Ok(t)
    }

    /// Counts of `entities` (all the cache holds, read once for other uses too).
    pub fn from_entities<'a>(entities: impl IntoIterator<Item = &'a Entity>) -> CountTracker {
        let mut t = CountTracker::default();
        for e in entities {
            t.observe_entity(e);
        }
        t
    }

    fn observe_entity(&mut self, e: &Entity) {
        self.observe_state(e.kind, &e.id, Some(&e.data));
    }

    /// Take one entity state into account; `true` when the counts changed.
    pub fn observe(&mut self, u: &EntityUpdate) -> bool {
        self.observe_state(u.kind, &u.id, u.data.as_ref())
    }

    /// [`CountTracker::observe`] of entity `kind`/`id` in state `data` (`None`:
    /// deleted), without an [`EntityUpdate`] to own it.
    pub fn observe_state(&mut self, kind: EntityKind, id: &str, data: Option<&Object>) -> bool {
        if kind == EntityKind::Stats {
            if !counted_block(id) {
                return false;
            }
            let before = self.counts();
            match data {
                Some(d) => self.blocks.insert(id.to_owned(), d.clone()),
                None => self.blocks.remove(id),
            };
            return self.counts() != before;
        }
        let mut changed = false;
        let mut mark = |set: &mut HashSet<String>, pred: fn(&Object) -> bool| {
            let wanted = data.is_some_and(pred);
            changed |= toggle(set, id, wanted);
        };
        match kind {
            EntityKind::Approval => mark(&mut self.pending, is_pending_approval),
            EntityKind::Conversation => {
                mark(&mut self.escalated, is_escalated);
                mark(&mut self.open_conversations, is_open_conversation);
            }
            EntityKind::Notification => mark(&mut self.unread, is_unread),
            EntityKind::Ticket => {
                mark(&mut self.active, is_active_ticket);
                mark(&mut self.done, is_done_ticket);
            }
            EntityKind::Agent => {
                mark(&mut self.live_agents, is_live_agent);
                mark(&mut self.working_agents, |d| {
                    is_live_agent(d) && is_working_agent(d)
                });
                mark(&mut self.failing_agents, |d| {
                    is_live_agent(d) && is_failed_agent(d)
                });
            }
            _ => return false,
        }
        if kind == EntityKind::Approval {
            let wanted = data.is_some_and(is_pending_approval);
            let at = data.filter(|_| wanted).and_then(approval_waiting_since);
            let before = self.since.get(id).copied();
            if before != at {
                // The oldest wait may move with it (a pending approval's own
                // time changed): said as a change, so the badge is redrawn.
                changed = true;
                if let Some(b) = before {
                    self.since_order.remove(&(b, id.to_owned()));
                    self.since.remove(id);
                }
                if let Some(a) = at {
                    self.since.insert(id.to_owned(), a);
                    self.since_order.insert((a, id.to_owned()));
                }
            }
        }
        let held = self.held.entry(kind).or_default();
        let held_changed = toggle(held, id, data.is_some());
        // Holding the first (or the last) entity of a kind switches its count
        // between the entities and the stats; the totals count every one held.
        changed || held_changed
    }

    /// One count: of the entities held, or, holding none of `kind`, from the stats.
    fn count(&self, name: &str, kind: EntityKind, set: &HashSet<String>) -> u64 {
        if self.held.get(&kind).is_some_and(|h| !h.is_empty()) {
            set.len() as u64
        } else {
            count_from_stats(name, |id| self.blocks.get(id)).unwrap_or(0)
        }
    }

    /// The counts.
    pub fn counts(&self) -> Counts {
        Counts {
            pending_approvals: self.count("pending_approvals", EntityKind::Approval, &self.pending),
            open_escalations: self.count(
                "open_escalations",
                EntityKind::Conversation,
                &self.escalated,
            ),
            unread_notifications: self.count(
                "unread_notifications",
                EntityKind::Notification,
                &self.unread,
            ),
            tasks_in_progress: self.count("tasks_in_progress", EntityKind::Ticket, &self.active),
            oldest_pending_since_ms: self.since_order.first().map(|(at, _)| *at),
            tasks_total: self.total("tasks_total", EntityKind::Ticket),
            tasks_done: self.count("tasks_done", EntityKind::Ticket, &self.done),
            open_conversations: self.count(
                "open_conversations",
                EntityKind::Conversation,
                &self.open_conversations,
            ),
            live_agents: self.live_agents.len() as u64,
            working_agents: self.working_agents.len() as u64,
            failing_agents: self.failing_agents.len() as u64,
        }
    }

    /// How many of `kind` are held, or, holding none, from the stats.
    fn total(&self, name: &str, kind: EntityKind) -> u64 {
        match self.held.get(&kind) {
            Some(h) if !h.is_empty() => h.len() as u64,
            _ => count_from_stats(name, |id| self.blocks.get(id)).unwrap_or(0),
        }
    }
}

/// A notification that was shown, for the notification centre.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Shown {
    /// What was shown.
    pub notification: Notification,
    /// When, ms since the Unix epoch.
    pub at_ms: i64,
}

/// What the app tells its UI shell.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum AppEvent {
    /// Entities changed (coalesced: the latest state of each).
    Updates {
        /// One per touched entity.
        updates: Vec<EntityUpdate>,
    },
    /// Reload everything from the store (a snapshot replaced it, or updates were missed).
    Reset,
    /// The connection changed.
    Status {
        /// The session's status.
        status: SessionStatus,
    },
    /// Badge counts changed.
    Counts {
        /// The new counts.
        counts: Counts,
    },
    /// A notification was shown.
    Notified {
        /// It.
        shown: Shown,
    },
    /// A queued action reached a final outcome.
    Settled {
        /// Outbox row.
        outbox_id: u64,
        /// The action.
        action: Action,
        /// What happened.
        outcome: ActionOutcome,
    },
    /// The outbox changed.
    Outbox {
        /// Queued actions, oldest first.
        entries: Vec<OutboxEntry>,
    },
}

/// Everything a UI paints at start, read from the cache before any network.
#[derive(Debug, Clone, PartialEq)]
pub struct CacheView {
    /// Every cached entity.
    pub entities: Vec<Entity>,
    /// Counts, cursors, last sync.
    pub summary: StoreSummary,
    /// Actions waiting to be sent.
    pub outbox: Vec<OutboxEntry>,
    /// Badge counts.
    pub counts: Counts,
}

/// Read the whole cache (first paint, and after [`AppEvent::Reset`]).
pub fn cache_view(store: &dyn Store) -> Result<CacheView, StoreError> {
    let entities = store.all()?;
    let counts = CountTracker::from_entities(&entities).counts();
    Ok(CacheView {
        entities,
        summary: store.summary()?,
        outbox: store.outbox()?,
        counts,
    })
}

/// Options of [`App::start`].
#[derive(Debug, Clone)]
pub struct AppOptions {
    /// Coalescing window for UI updates.
    pub frame: Duration,
    /// Notification settings.
    pub policy: PolicyConfig,
    /// Least time between two [`AppEvent::Status`] that differ only in counters.
    pub status_throttle: Duration,
    /// Where notifications shown are recorded (shared with the shell, kept across
    /// sessions).
    pub centre: NotificationCentre,
}

impl Default for AppOptions {
    fn default() -> Self {
        AppOptions {
            frame: FRAME,
            policy: PolicyConfig::default(),
            status_throttle: Duration::from_millis(1000),
            centre: NotificationCentre::default(),
        }
    }
}

/// A running app: a session plus its pump task. Cloning is cheap.
#[derive(Clone)]
pub struct App {
    session: SessionHandle,
    policy: Arc<Mutex<Policy>>,
    events: mpsc::UnboundedSender<AppEvent>,
    counts: Arc<Mutex<Counts>>,
    stop: Arc<watch::Sender<bool>>,
    centre: NotificationCentre,
}

/// A notifier that can be shared with the pump task.
pub type SharedNotifier = Arc<dyn Notifier + Send + Sync>;

impl App {
    /// Start the pump for `session` on the current tokio runtime. App events arrive on
    /// the returned receiver, starting with the current status and counts.
    pub fn start(
        session: SessionHandle,
        notifier: SharedNotifier,
        options: AppOptions,
    ) -> Result<(App, mpsc::UnboundedReceiver<AppEvent>), StoreError> {
        let policy = Arc::new(Mutex::new(Policy::new(options.policy.clone())));
        let pump = session
            .store()
            .read(|store| Pump::new(policy.clone(), store))?;
        let (tx, rx) = mpsc::unbounded_channel();
        let counts = Arc::new(Mutex::new(pump.counts()));
        let (stop_tx, stop_rx) = watch::channel(false);
        let app = App {
            session: session.clone(),
            policy,
            events: tx.clone(),
            counts: counts.clone(),
            stop: Arc::new(stop_tx),
            centre: options.centre.clone(),
        };
        let _ = tx.send(AppEvent::Status {
            status: session.status().borrow().clone(),
        });
        let _ = tx.send(AppEvent::Counts {
            counts: pump.counts(),
        });
        let task = PumpTask {
            session,
            pump,
            notifier,
            tx,
            counts,
            options,
            stop: stop_rx,
        };
        tokio::spawn(task.run());
        Ok((app, rx))
    }

    /// The session.
    pub fn session(&self) -> &SessionHandle {
        &self.session
    }

    /// Perform a user action (sent now, or queued in the outbox and sent on reconnect).
    /// A queued action is announced with [`AppEvent::Outbox`].
    pub async fn perform(&self, action: Action) -> Result<ActionOutcome, SessionError> {
        let outcome = self.session.perform(action).await?;
        if matches!(outcome, ActionOutcome::Queued { .. }) {
            self.announce_outbox();
        }
        Ok(outcome)
    }

    /// Send the current outbox to the UI.
    pub fn announce_outbox(&self) {
        let entries = self.session.store().outbox();
        match entries {
            Ok(entries) => {
                let _ = self.events.send(AppEvent::Outbox { entries });
            }
            Err(e) => warn!(error = %e, "cannot read the outbox"),
        }
    }

    /// Change the notification settings (seen keys and rate limits are kept).
    pub fn set_policy(&self, config: PolicyConfig) {
        self.policy.lock().expect("policy lock").set_config(config);
    }

    /// Do not disturb until `until_ms` (`None`: notifications back on).
    pub fn pause_notifications(&self, until_ms: Option<i64>) {
        self.policy
            .lock()
            .expect("policy lock")
            .set_dnd_until(until_ms);
    }

    /// The notification settings in use.
    pub fn policy_config(&self) -> PolicyConfig {
        self.policy.lock().expect("policy lock").config().clone()
    }

    /// The notification centre this app records the notifications it shows in.
    pub fn centre(&self) -> &NotificationCentre {
        &self.centre
    }

    /// Badge counts as of the last frame.
    pub fn counts(&self) -> Counts {
        *self.counts.lock().expect("counts lock")
    }

    /// The whole cache, for a (re)load.
    pub fn cache_view(&self) -> Result<CacheView, StoreError> {
        self.session.store().read(cache_view)
    }

    /// Stop the pump and the session. Idempotent.
    pub async fn stop(&self) {
        let _ = self.stop.send(true);
        self.session.stop().await;
    }
}

struct PumpTask {
    session: SessionHandle,
    pump: Pump,
    notifier: SharedNotifier,
    tx: mpsc::UnboundedSender<AppEvent>,
    counts: Arc<Mutex<Counts>>,
    options: AppOptions,
    stop: watch::Receiver<bool>,
}

impl PumpTask {
    async fn run(mut self) {
        let mut events = self.session.subscribe();
        let mut status = self.session.status();
        let mut frame_at: Option<Instant> = None;
        let mut flush_digest_at: Option<Instant> = None;
        let mut remind_at: Option<Instant> = None;
        let mut last_status = status.borrow().clone();
        let mut last_status_sent = Instant::now();
        let mut status_pending = false;
        loop {
            let status_due =
                status_pending.then(|| last_status_sent + self.options.status_throttle);
            tokio::select! {
                _ = self.stop.changed() => break,
                ev = events.recv() => {
                    let now = crate::now_ms();
                    if !self.on_event(ev, now) {
                        break;
                    }
                    if self.options.frame.is_zero() {
                        // Drain what is already queued (bounded), then forward it.
                        let mut closed = false;
                        for _ in 1..MAX_DRAIN {
                            match events.try_recv() {
                                Ok(ev) => {
                                    if !self.on_event(Ok(ev), now) {
                                        closed = true;
                                        break;
                                    }
                                }
                                Err(broadcast::error::TryRecvError::Lagged(n)) => {
                                    if !self.on_event(Err(broadcast::error::RecvError::Lagged(n)), now) {
                                        closed = true;
                                        break;
                                    }
                                }
                                Err(broadcast::error::TryRecvError::Empty) => break,
                                Err(broadcast::error::TryRecvError::Closed) => {
                                    closed = true;
                                    break;
                                }
                            }
                        }
                        let out = self.pump.flush();
                        self.send_all(out);
                        if closed {
                            break;
                        }
                    } else if self.pump.has_pending() && frame_at.is_none() {
                        frame_at = Some(Instant::now() + self.options.frame);
                    }
                    flush_digest_at = self.next_digest(now);
                    remind_at = self.next_reminder(now);
                }
                changed = status.changed() => {
                    if changed.is_err() {
                        break;
                    }
                    let s = status.borrow_and_update().clone();
                    self.pump.on_status(&s, crate::now_ms());
                    let important = s.state != last_status.state
                        || s.stream != last_status.stream
                        || s.caveat != last_status.caveat;
                    last_status = s;
                    if important {
                        self.send_status(&last_status);
                        last_status_sent = Instant::now();
                        status_pending = false;
                    } else {
                        status_pending = true;
                    }
                }
                _ = sleep_until_opt(status_due) => {
                    self.send_status(&last_status);
                    last_status_sent = Instant::now();
                    status_pending = false;
                }
                _ = sleep_until_opt(frame_at) => {
                    frame_at = None;
                    let out = self.pump.flush();
                    self.send_all(out);
                }
                _ = sleep_until_opt(flush_digest_at) => {
                    let now = crate::now_ms();
                    let digest = self.pump.policy.lock().expect("policy lock").flush(now);
                    if let Some(n) = digest {
                        self.show(&[n], now);
                    }
                    flush_digest_at = self.next_digest(now);
                }
                _ = sleep_until_opt(remind_at) => {
                    let now = crate::now_ms();
                    let due = self.pump.policy.lock().expect("policy lock").reminders(now);
                    self.show(&due, now);
                    remind_at = self.next_reminder(now);
                }
            }
        }
        debug!("app pump stopped");
    }

    /// Handle one received session event (or a lag: reload); `false` once the
    /// session's broadcast is closed.
    fn on_event(
        &mut self,
        ev: Result<SessionEvent, broadcast::error::RecvError>,
        now: i64,
    ) -> bool {
        let (out, notes) = match ev {
            Ok(ev) => {
                let store = self.session.store().clone();
                store.read(|s| self.pump.on_session_event(ev, s, now))
            }
            Err(broadcast::error::RecvError::Lagged(n)) => {
                warn!(missed = n, "UI pump fell behind; reloading from the cache");
                let store = self.session.store().clone();
                store.read(|s| self.pump.reset(s))
            }
            Err(broadcast::error::RecvError::Closed) => return false,
        };
        self.show(&notes, now);
        self.withdraw();
        self.send_all(out);
        true
    }

    fn next_digest(&self, now_ms: i64) -> Option<Instant> {
        let at = self
            .pump
            .policy
            .lock()
            .expect("policy lock")
            .next_flush_at(now_ms)?;
        let wait = u64::try_from(at - now_ms).unwrap_or(0).max(50);
        Some(Instant::now() + Duration::from_millis(wait))
    }

    fn next_reminder(&self, now_ms: i64) -> Option<Instant> {
        let at = self
            .pump
            .policy
            .lock()
            .expect("policy lock")
            .next_reminder_at(now_ms)?;
        let wait = u64::try_from(at - now_ms).unwrap_or(0).max(50);
        Some(Instant::now() + Duration::from_millis(wait))
    }

    /// Close the notifications of approvals no longer pending.
    fn withdraw(&self) {
        let keys = self
            .pump
            .policy
            .lock()
            .expect("policy lock")
            .take_withdrawals();
        close_all(self.notifier.as_ref(), &keys);
    }

    fn show(&self, notes: &[Notification], now_ms: i64) {
        if notes.is_empty() {
            return;
        }
        show_all(self.notifier.as_ref(), notes);
        for n in notes {
            let shown = Shown {
                notification: n.clone(),
                at_ms: now_ms,
            };
            self.options.centre.record(shown.clone());
            let _ = self.tx.send(AppEvent::Notified { shown });
        }
    }

    fn send_status(&self, s: &SessionStatus) {
        let _ = self.tx.send(AppEvent::Status { status: s.clone() });
    }

    fn send_all(&self, out: Vec<AppEvent>) {
        for ev in out {
            if let AppEvent::Counts { counts } = &ev {
                *self.counts.lock().expect("counts lock") = *counts;
            }
            let _ = self.tx.send(ev);
        }
    }
}

async fn sleep_until_opt(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::{CommittedEvent, ConnectionState, SessionEvent};
    use crate::store::{AppliedEvent, Cursor, MemoryStore};
    use pulse_protocol::frame::EventFrame;
    use serde_json::{json, Value};

    fn obj(v: Value) -> Object {
        v.as_object().cloned().unwrap()
    }

    /// Apply `(type, data)` events to `store` as the session would, returning the
    /// session event it would broadcast.
    fn commit(
        store: &mut MemoryStore,
        seq0: u64,
        events: &[(&str, Value)],
        catching_up: bool,
    ) -> SessionEvent {
        let mut applied = Vec::new();
        for (i, (ty, data)) in events.iter().enumerate() {
            let seq = seq0 + i as u64;
            let frame: EventFrame = serde_json::from_value(json!({
                "seq": seq, "id": format!("e{seq}"), "stream": "t", "type": ty, "ts": 1000 + seq as i64, "data": data
            }))
            .unwrap();
            let changes = pulse_protocol::changes_for(ty, data, 1000).unwrap();
            applied.push(AppliedEvent { frame, changes });
        }
        store.apply("ep", &applied).unwrap();
        SessionEvent::Applied {
            stream: "t".into(),
            events: Arc::new(
                applied
                    .into_iter()
                    .map(|a| CommittedEvent {
                        seq: a.frame.seq,
                        event_type: a.frame.event_type,
                        changes: a.changes,
                    })
                    .collect(),
            ),
            catching_up,
        }
    }

    fn pump(store: &MemoryStore) -> Pump {
        Pump::new(
            Arc::new(Mutex::new(Policy::new(PolicyConfig::default()))),
            store,
        )
        .unwrap()
    }

    #[test]
    fn coalescer_keeps_latest_state_of_every_entity() {
        let mut c = Coalescer::default();
        for i in 0..1000 {
            c.push(EntityUpdate {
                kind: EntityKind::Agent,
                id: format!("a{}", i % 10),
                data: Some(obj(json!({ "n": i }))),
            });
        }
        c.push(EntityUpdate {
            kind: EntityKind::Ticket,
            id: "t1".into(),
            data: None,
        });
        assert_eq!(c.pushed(), 1001);
        let out = c.take();
        assert_eq!(out.len(), 11, "one update per entity");
        assert_eq!(out[0].id, "a0");
        assert_eq!(out[0].data.as_ref().unwrap()["n"], 990, "latest wins");
        assert_eq!(out[10].data, None);
        assert!(c.is_empty());
        assert!(c.take().is_empty());
    }

    #[test]
    fn count_tracker_follows_states() {
        let mut t = CountTracker::default();
        let ap = |status: &str| EntityUpdate {
            kind: EntityKind::Approval,
            id: "a".into(),
            data: Some(obj(json!({ "status": status }))),
        };
        assert!(t.observe(&ap("pending")));
        assert!(!t.observe(&ap("pending")));
        assert_eq!(t.counts().pending_approvals, 1);
        assert!(t.observe(&ap("approved")));
        assert_eq!(t.counts().pending_approvals, 0);
        t.observe(&EntityUpdate {
            kind: EntityKind::Conversation,
            id: "c".into(),
            data: Some(obj(json!({ "status": "escalated" }))),
        });
        t.observe(&EntityUpdate {
            kind: EntityKind::Notification,
            id: "n".into(),
            data: Some(obj(json!({ "read": false }))),
        });
        assert_eq!(
            t.counts(),
            Counts {
                pending_approvals: 0,
                open_escalations: 1,
                unread_notifications: 1,
                tasks_in_progress: 0,
                oldest_pending_since_ms: None,
                open_conversations: 1,
                ..Counts::default()
            }
        );
        t.observe(&EntityUpdate {
            kind: EntityKind::Conversation,
            id: "c".into(),
            data: None,
        });
        assert_eq!(t.counts().open_escalations, 0);
    }

    /// The counts a rescan of `held` gives, written from the rules directly (not
    /// through the tracker): what the tracker must always agree with.
    fn rescan(held: &HashMap<(EntityKind, String), Object>) -> Counts {
        let of = |k: EntityKind| held.iter().filter(move |((kind, _), _)| *kind == k);
        let blocks: HashMap<&str, &Object> = of(EntityKind::Stats)
            .map(|((_, id), d)| (id.as_str(), d))
            .collect();
        let count = |name: &str, k: EntityKind, pred: fn(&Object) -> bool| {
            if of(k).next().is_some() {
                of(k).filter(|(_, d)| pred(d)).count() as u64
            } else {
                count_from_stats(name, |id| blocks.get(id).copied()).unwrap_or(0)
            }
        };
        let agents = |pred: fn(&Object) -> bool| {
            of(EntityKind::Agent)
                .filter(|(_, d)| is_live_agent(d) && pred(d))
                .count() as u64
        };
        Counts {
            pending_approvals: count(
                "pending_approvals",
                EntityKind::Approval,
                is_pending_approval,
            ),
            open_escalations: count("open_escalations", EntityKind::Conversation, is_escalated),
            unread_notifications: count(
                "unread_notifications",
                EntityKind::Notification,
                is_unread,
            ),
            tasks_in_progress: count("tasks_in_progress", EntityKind::Ticket, is_active_ticket),
            oldest_pending_since_ms: of(EntityKind::Approval)
                .filter(|(_, d)| is_pending_approval(d))
                .filter_map(|(_, d)| approval_waiting_since(d))
                .min(),
            tasks_total: count("tasks_total", EntityKind::Ticket, |_| true),
            tasks_done: count("tasks_done", EntityKind::Ticket, is_done_ticket),
            open_conversations: count(
                "open_conversations",
                EntityKind::Conversation,
                is_open_conversation,
            ),
            live_agents: agents(|_| true),
            working_agents: agents(is_working_agent),
            failing_agents: agents(is_failed_agent),
        }
    }

    /// Random changes of every counted kind (and stats blocks, and deletions): after
    /// each, the tracker's counts equal a rescan of what is held, and a tracker
    /// made from the held entities at once (`from_entities`, the bootstrap's) agrees.
    #[test]
    fn count_tracker_equals_a_rescan_after_random_changes() {
        let mut seed = 0x2545_f491_4f6c_dd1d_u64;
        let mut next = move |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        };
        let kinds = [
            EntityKind::Agent,
            EntityKind::Ticket,
            EntityKind::Approval,
            EntityKind::Conversation,
            EntityKind::Notification,
            EntityKind::Message,
            EntityKind::Stats,
        ];
        let statuses = [
            "working",
            "idle",
            "failed",
            "ERROR",
            "terminated",
            "escalated",
            "resolved",
            "pending",
            "approved",
            "open",
        ];
        let states = ["todo", "in_progress", "running", "done", "Done", "review"];
        let blocks = ["tasks", "conversations", "approvals", "dashboard", "system"];
        let mut held: HashMap<(EntityKind, String), Object> = HashMap::new();
        let mut t = CountTracker::default();
        for step in 0..4000 {
            let kind = kinds[next(kinds.len() as u64) as usize];
            let id = if kind == EntityKind::Stats {
                blocks[next(blocks.len() as u64) as usize].to_owned()
            } else {
                format!("e{}", next(12))
            };
            let data = if next(6) == 0 {
                None
            } else if kind == EntityKind::Stats {
                Some(obj(json!({
                    "total": next(50), "done": next(20), "open": next(9),
                    "in_progress": next(7), "pending": next(5), "escalated": next(4),
                    "executions": {"running": next(3)}
                })))
            } else {
                let mut d = serde_json::Map::new();
                if next(5) != 0 {
                    d.insert("status".into(), json!(statuses[next(10) as usize]));
                }
                if next(2) == 0 {
                    d.insert("state".into(), json!(states[next(6) as usize]));
                }
                if next(3) == 0 {
                    d.insert("read".into(), json!(next(2) == 0));
                }
                if next(3) == 0 {
                    d.insert("created_at".into(), json!(next(1000) as i64));
                }
                Some(d)
            };
            match &data {
                Some(d) => held.insert((kind, id.clone()), d.clone()),
                None => held.remove(&(kind, id.clone())),
            };
            let before = t.counts();
            let changed = t.observe(&EntityUpdate { kind, id, data });
            let want = rescan(&held);
            assert_eq!(t.counts(), want, "step {step}");
            if !changed {
                assert_eq!(
                    before, want,
                    "step {step}: a change said it changed nothing"
                );
            }
            if step % 500 == 0 {
                let entities: Vec<Entity> = held
                    .iter()
                    .map(|((kind, id), d)| Entity {
                        kind: *kind,
                        id: id.clone(),
                        data: d.clone(),
                    })
                    .collect();
                assert_eq!(CountTracker::from_entities(&entities).counts(), want);
            }
        }
    }

    #[test]
    fn counts_know_the_oldest_waiting_approval() {
        let mut t = CountTracker::default();
        let ap = |id: &str, data: Value| EntityUpdate {
            kind: EntityKind::Approval,
            id: id.into(),
            data: Some(obj(data)),
        };
        t.observe(&ap("a", json!({"status": "pending", "requested_at": 300})));
        t.observe(&ap("b", json!({"status": "pending", "created_at": 200})));
        t.observe(&ap(
            "c",
            json!({"status": "pending", "created_at": "yesterday"}),
        ));
        assert_eq!(t.counts().oldest_pending_since_ms, Some(200));
        t.observe(&ap("b", json!({"status": "approved", "created_at": 200})));
        assert_eq!(t.counts().oldest_pending_since_ms, Some(300));
        t.observe(&EntityUpdate {
            kind: EntityKind::Approval,
            id: "a".into(),
            data: None,
        });
        assert_eq!(t.counts().oldest_pending_since_ms, None, "c does not say");
        assert_eq!(t.counts().pending_approvals, 1);
    }

    /// A stats-only server (seed 001's blocks, seed 003's dashboard): its counts
    /// come from the blocks until entities of the kind arrive.
    #[test]
    fn counts_of_a_stats_only_server_come_from_its_blocks() {
        let mut t = CountTracker::default();
        let stats = |id: &str, v: Value| EntityUpdate {
            kind: EntityKind::Stats,
            id: id.into(),
            data: Some(obj(v)),
        };
        assert!(t.observe(&stats("approvals", json!({"pending": 4, "approved": 9}))));
        t.observe(&stats("conversations", json!({"open": 5, "escalated": 2})));
        t.observe(&stats("dashboard", json!({"executions": {"running": 3}})));
        assert!(
            !t.observe(&stats("system", json!({"cpu": 12}))),
            "no count reads it"
        );
        assert_eq!(
            t.counts(),
            Counts {
                pending_approvals: 4,
                open_escalations: 2,
                unread_notifications: 0,
                tasks_in_progress: 3,
                oldest_pending_since_ms: None,
                open_conversations: 5,
                ..Counts::default()
            }
        );
        // Entities held: they count, the block no longer does.
        assert!(t.observe(&EntityUpdate {
            kind: EntityKind::Approval,
            id: "a".into(),
            data: Some(obj(json!({"status": "approved"}))),
        }));
        assert_eq!(t.counts().pending_approvals, 0);
        assert!(t.observe(&EntityUpdate {
            kind: EntityKind::Approval,
            id: "a".into(),
            data: None,
        }));
        assert_eq!(t.counts().pending_approvals, 4);
        t.observe(&EntityUpdate {
            kind: EntityKind::Ticket,
            id: "e1".into(),
            data: Some(obj(json!({"state": "running"}))),
        });
        assert_eq!(t.counts().tasks_in_progress, 1);
    }

    #[test]
    fn pump_notifies_new_approvals_and_escalations_and_coalesces_updates() {
        let mut store = MemoryStore::new();
        let mut p = pump(&store);
        let ev = commit(
            &mut store,
            1,
            &[
                ("approval.created", json!({"id": "ap1", "title": "Deploy"})),
                (
                    "conversation.created",
                    json!({"id": "c1", "subject": "refund"}),
                ),
                (
                    "conversation.escalated",
                    json!({"id": "c1", "reason": "angry"}),
                ),
                ("agent.heartbeat", json!({"id": "ag1"})),
                ("agent.heartbeat", json!({"id": "ag1"})),
            ],
            false,
        );
        let (out, notes) = p.on_session_event(ev, &store, 10_000);
        assert!(out.is_empty());
        let keys: Vec<_> = notes.iter().map(|n| n.dedup_key.as_str()).collect();
        assert_eq!(notes.len(), 2, "{keys:?}");
        assert!(keys.iter().any(|k| k.starts_with("approval:ap1")));
        assert!(keys.iter().any(|k| k.starts_with("escalation:c1")));
        assert!(p.has_pending());
        let flushed = p.flush();
        let AppEvent::Updates { updates } = &flushed[0] else {
            panic!("{flushed:?}")
        };
        assert_eq!(updates.len(), 3, "ap1, c1, ag1 once each");
        let c1 = updates.iter().find(|u| u.id == "c1").unwrap();
        assert_eq!(c1.data.as_ref().unwrap()["status"], "escalated");
        assert!(flushed.contains(&AppEvent::Counts {
            counts: Counts {
                pending_approvals: 1,
                open_escalations: 1,
                unread_notifications: 0,
                tasks_in_progress: 0,
                oldest_pending_since_ms: None,
                open_conversations: 1,
                live_agents: 1,
                ..Counts::default()
            }
        }));
        // A decided approval leaves the count and does not notify.
        let ev = commit(
            &mut store,
            6,
            &[(
                "approval.decided",
                json!({"id": "ap1", "decision": "approved"}),
            )],
            false,
        );
        let (_, notes) = p.on_session_event(ev, &store, 11_000);
        assert!(notes.is_empty());
        let flushed = p.flush();
        assert!(flushed.contains(&AppEvent::Counts {
            counts: Counts {
                pending_approvals: 0,
                open_escalations: 1,
                unread_notifications: 0,
                tasks_in_progress: 0,
                oldest_pending_since_ms: None,
                open_conversations: 1,
                live_agents: 1,
                ..Counts::default()
            }
        }));
    }

    #[test]
    fn long_absence_catch_up_raises_one_digest() {
        let mut store = MemoryStore::new();
        let mut p = pump(&store);
        let live = |state| SessionStatus {
            state,
            stream: None,
            cursor: None,
            last_sync_ms: None,
            caveat: None,
            node: None,
            counters: Default::default(),
        };
        p.on_status(&live(ConnectionState::Live), 0);
        p.on_status(
            &live(ConnectionState::Reconnecting {
                attempt: 1,
                retry_at_ms: 0,
                error: "gone".into(),
            }),
            1_000,
        );
        let events: Vec<(&str, Value)> = (0..5)
            .map(|i| ("approval.created", json!({"id": format!("a{i}")})))
            .collect();
        let ev = commit(&mut store, 1, &events, true);
        let (_, notes) = p.on_session_event(ev, &store, 1_000 + 10 * 60_000);
        assert_eq!(notes.len(), 1, "{notes:?}");
        assert_eq!(notes[0].title, "While you were away");
    }

    #[test]
    fn snapshot_resets_and_recounts() {
        let mut store = MemoryStore::new();
        let mut p = pump(&store);
        store
            .replace_all(
                "t",
                &Cursor {
                    epoch: "e".into(),
                    seq: 9,
                },
                &[Entity {
                    kind: EntityKind::Approval,
                    id: "x".into(),
                    data: obj(json!({"id": "x", "status": "pending"})),
                }],
            )
            .unwrap();
        let (out, notes) = p.on_session_event(
            SessionEvent::SnapshotLoaded {
                stream: "t".into(),
                seq: 9,
                entities: 1,
            },
            &store,
            0,
        );
        assert!(notes.is_empty(), "a snapshot never notifies");
        assert_eq!(out[0], AppEvent::Reset);
        assert_eq!(p.counts().pending_approvals, 1);
    }

    #[test]
    fn cache_view_reads_everything() {
        let mut store = MemoryStore::new();
        commit(
            &mut store,
            1,
            &[
                ("approval.created", json!({"id": "a"})),
                ("ticket.created", json!({"id": "t"})),
            ],
            false,
        );
        store
            .outbox_push(
                &crate::store::suite::owner("ann"),
                &Action::MoveTicket {
                    id: "t".into(),
                    state: "done".into(),
                },
                5,
            )
            .unwrap();
        let v = cache_view(&store).unwrap();
        assert_eq!(v.entities.len(), 2);
        assert_eq!(v.outbox.len(), 1);
        assert_eq!(v.counts.pending_approvals, 1);
    }
}
