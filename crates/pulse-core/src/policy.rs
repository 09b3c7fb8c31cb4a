//! Notification policy: which committed changes become OS notifications.
//!
//! Pure logic: [`Policy::evaluate`] takes the changes of one committed batch (each
//! with the entity as it is after it), whether the batch is a catch-up after a
//! disconnect, and the time; it returns the [`Notification`]s to show. It never reads
//! a clock and never calls the OS; the shell hands the result to a [`Notifier`].
//!
//! Invariants:
//! - only *committed* changes are evaluated (the session calls this after the store
//!   transaction), so a notification never announces something the cache lacks;
//! - by default a new pending approval and a conversation that becomes `escalated`
//!   notify; agent failures are opt-in ([`PolicyConfig`]);
//! - a dedup key ([`Notification::dedup_key`]) never notifies twice within
//!   [`PolicyConfig::dedup_ttl_ms`]; the memory of seen keys is bounded by
//!   [`PolicyConfig::dedup_capacity`] (oldest forgotten first);
//! - during do-not-disturb nothing is shown except escalations when
//!   [`PolicyConfig::escalations_bypass_dnd`]; what is held back is counted in
//!   [`Policy::suppressed`], never silently lost;
//! - a catch-up after a disconnect longer than [`PolicyConfig::digest_after_away_ms`],
//!   or a batch raising more than [`PolicyConfig::digest_over`] notifications, raises
//!   ONE digest instead of a flood;
//! - at most [`PolicyConfig::max_per_minute`] notifications (digests included) are
//!   shown in any 60 s window; the surplus is folded into a pending digest, shown by
//!   a later [`Policy::evaluate`] or [`Policy::flush`] once the window allows
//!   ([`Policy::next_flush_at`] says when);
//! - a notification follows its approval's life: once an approval that raised one
//!   is no longer pending (decided here or elsewhere, withdrawn, expired, deleted),
//!   its dedup key is handed out once by [`Policy::take_withdrawals`] and the shell
//!   closes the OS notification ([`Notifier::close`]), whatever the source;
//! - with [`PolicyConfig::remind_after_min`] set, an approval pending that long
//!   raises one reminder ([`Policy::reminders`], due at
//!   [`Policy::next_reminder_at`]); during do-not-disturb reminders wait (they are
//!   not escalations) and come once it ends.

use std::collections::{HashMap, VecDeque};

use crate::store::Owner;
use pulse_protocol::domain::{
    approval_waiting_since, is_escalated, is_failed_agent, is_pending_approval, status_of, Change,
    EntityKind, Object,
};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The rate-limit window, ms.
const WINDOW_MS: i64 = 60_000;

/// Longest notification body, in characters.
const MAX_BODY_CHARS: usize = 200;

/// User-facing notification settings (saved in the desktop settings).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct PolicyConfig {
    /// Notify for a new pending approval (default on).
    pub approvals: bool,
    /// Notify when a conversation becomes escalated (default on).
    pub escalations: bool,
    /// Notify when an agent's status becomes `failed` or `error` (default off).
    pub agent_failures: bool,
    /// Do not disturb until this time, ms since the Unix epoch (`None` = off).
    pub dnd_until_ms: Option<i64>,
    /// Escalations are shown even during do-not-disturb (default on).
    pub escalations_bypass_dnd: bool,
    /// A catch-up after a disconnect longer than this raises one digest (default 2 min).
    pub digest_after_away_ms: u64,
    /// A batch raising more than this many notifications raises one digest (default 3).
    pub digest_over: usize,
    /// At most this many notifications per minute, digests included (default 6).
    pub max_per_minute: usize,
    /// The same dedup key never notifies twice within this time (default 24 h).
    pub dedup_ttl_ms: u64,
    /// How many dedup keys are remembered at most (default 10,000).
    pub dedup_capacity: usize,
    /// Remind once about an approval nobody answered for this many minutes
    /// (0 = never, the default).
    pub remind_after_min: u32,
}

impl Default for PolicyConfig {
    fn default() -> Self {
        PolicyConfig {
            approvals: true,
            escalations: true,
            agent_failures: false,
            dnd_until_ms: None,
            escalations_bypass_dnd: true,
            digest_after_away_ms: 120_000,
            digest_over: 3,
            max_per_minute: 6,
            dedup_ttl_ms: 24 * 60 * 60 * 1000,
            dedup_capacity: 10_000,
            remind_after_min: 0,
        }
    }
}

/// What a notification is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(rename_all = "snake_case")]
pub enum NotificationKind {
    /// A new approval waits for a decision.
    Approval,
    /// A conversation was escalated to a human.
    Escalation,
    /// Several notifications folded into one.
    Digest,
    /// Anything else (an agent failure).
    Other,
}

/// How insistently the OS should present a notification.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Urgency {
    /// Informational.
    Low,
    /// The default.
    Normal,
    /// Needs attention now (escalations).
    Critical,
}

/// A button on a notification, where the OS supports them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(rename_all = "snake_case")]
pub enum NotificationAction {
    /// Approve the approval.
    Approve,
    /// Reject the approval.
    Reject,
    /// Open the entity (or the app) in Pulse.
    Open,
}

/// The entity a notification opens.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EntityRef {
    /// Its kind.
    pub kind: EntityKind,
    /// Its id.
    pub id: String,
}

/// One notification to show.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Notification {
    /// Short title.
    pub title: String,
    /// One or two lines of detail.
    pub body: String,
    /// What it is about.
    pub kind: NotificationKind,
    /// What clicking it opens (`None` for a digest: the app itself).
    pub target: Option<EntityRef>,
    /// Identity for dedup (`approval:ID`, `escalation:ID:ESCALATED_AT`, `digest:MS`).
    pub dedup_key: String,
    /// Buttons, in display order.
    pub actions: Vec<NotificationAction>,
    /// How insistently to present it.
    pub urgency: Urgency,
}

/// Whom a notification was raised for: the server and the account of the session
/// that raised it. A button pressed on it acts only while the same server and
/// account are current ([`reply_applies`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Origin {
    /// The server's identity (the desktop's cache id: a saved server's id,
    /// `env-…` for `PULSE_SERVER`, `demo`).
    pub server: String,
    /// Its name as the user knows it (for the refusal; not compared).
    pub server_name: String,
    /// The account signed in (`None`: a token without a user name).
    pub account: Option<String>,
}

impl Origin {
    /// The server and account compared: a reply applies, and a queued action is
    /// sent, only while the current owner equals this one ([`Owner`]).
    pub fn owner(&self) -> Owner {
        Owner {
            server: self.server.clone(),
            account: self.account.clone(),
        }
    }

    fn describe(&self) -> String {
        match &self.account {
            Some(a) => format!("{a} on {}", self.server_name),
            None => self.server_name.clone(),
        }
    }
}

/// Whether a button pressed on a notification raised for `raised` may act now,
/// with `current` the server and account in use (`None`: signed out). `Err` is the
/// refusal to show the user: the notification is stale (the user switched server
/// or account since, or signed out), and nothing is sent or queued.
pub fn reply_applies(raised: &Origin, current: Option<&Origin>) -> Result<(), String> {
    match current {
        Some(now) if now.owner() == raised.owner() => Ok(()),
        Some(now) => Err(format!(
            "That notification was for {}; Pulse is now on {}. Nothing was sent: switch back to act on it.",
            raised.describe(),
            now.describe()
        )),
        None => Err(format!(
            "That notification was for {}, which is signed out. Nothing was sent.",
            raised.describe()
        )),
    }
}

/// `text` escaped for a freedesktop notification body, which the notification
/// server may read as markup (the Desktop Notifications spec's `body-markup`:
/// `<b>`, `<a href>`, `<img>`…): `&`, `<` and `>` become entities, so server text
/// is shown as it is and never as a link or an image. Only the body: the summary
/// is plain text by the spec.
pub fn escape_body_markup(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            c => out.push(c),
        }
    }
    out
}

/// Counts of notifications by kind (held back by do-not-disturb, or waiting in a digest).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tally {
    /// New approvals.
    pub approvals: u64,
    /// Escalations.
    pub escalations: u64,
    /// Anything else.
    pub other: u64,
}

impl Tally {
    /// Everything counted.
    pub fn total(&self) -> u64 {
        self.approvals + self.escalations + self.other
    }

    fn add(&mut self, kind: NotificationKind) {
        match kind {
            NotificationKind::Approval => self.approvals += 1,
            NotificationKind::Escalation => self.escalations += 1,
            NotificationKind::Digest | NotificationKind::Other => self.other += 1,
        }
    }

    /// "5 new approvals, 2 escalations and 1 other update".
    pub fn describe(&self) -> String {
        let plural =
            |n: u64, one: &str, many: &str| format!("{n} {}", if n == 1 { one } else { many });
        let mut parts = Vec::new();
        if self.approvals > 0 {
            parts.push(plural(self.approvals, "new approval", "new approvals"));
        }
        if self.escalations > 0 {
            parts.push(plural(self.escalations, "escalation", "escalations"));
        }
        if self.other > 0 {
            parts.push(plural(self.other, "other update", "other updates"));
        }
        match parts.len() {
            0 => "nothing new".to_owned(),
            1 => parts.remove(0),
            n => {
                let last = parts.remove(n - 1);
                format!("{} and {last}", parts.join(", "))
            }
        }
    }
}

/// One committed change and its entity as it is after it (`None` = it is gone).
#[derive(Debug, Clone, Copy)]
pub struct Committed<'a> {
    /// The change.
    pub change: &'a Change,
    /// The entity after the change.
    pub entity: Option<&'a Object>,
}

/// Circumstances of one committed batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchContext {
    /// Now, ms since the Unix epoch.
    pub now_ms: i64,
    /// `Some(ms)` when the batch catches up after a disconnect that lasted `ms`.
    pub away_ms: Option<u64>,
}

/// Shows a notification through the OS (implemented by the desktop shell).
pub trait Notifier {
    /// Show `n`; the error is for a log line.
    fn show(&self, n: &Notification) -> Result<(), String>;

    /// Close the notification shown with `dedup_key`, if it still stands (its
    /// approval was decided, withdrawn or expired). Nothing by default.
    fn close(&self, dedup_key: &str) -> Result<(), String> {
        let _ = dedup_key;
        Ok(())
    }
}

/// Close every notification of `keys`, logging failures.
pub fn close_all(notifier: &dyn Notifier, keys: &[String]) {
    for key in keys {
        if let Err(error) = notifier.close(key) {
            tracing::warn!(%key, %error, "notification could not be closed");
        }
    }
}

/// A pending approval the policy follows: since when it waits, and what it raised.
#[derive(Debug, Clone)]
struct Waiting {
    since: i64,
    shown: Option<Notification>,
    reminded: bool,
}

/// Show every notification of `list`, logging failures; returns how many were shown.
pub fn show_all(notifier: &dyn Notifier, list: &[Notification]) -> usize {
    list.iter()
        .filter(|n| match notifier.show(n) {
            Ok(()) => true,
            Err(error) => {
                tracing::warn!(key = %n.dedup_key, %error, "notification could not be shown");
                false
            }
        })
        .count()
}

/// Seen dedup keys with the time they were seen: bounded, oldest evicted first.
#[derive(Debug, Clone, Default)]
struct Dedup {
    seen: HashMap<String, i64>,
    order: VecDeque<(String, i64)>,
}

impl Dedup {
    /// True (and remembered) when `key` was not seen within `ttl` before `now`.
    fn first_time(&mut self, key: &str, now: i64, ttl: u64, capacity: usize) -> bool {
        let ttl = i64::try_from(ttl).unwrap_or(i64::MAX);
        if let Some(&at) = self.seen.get(key) {
            if now.saturating_sub(at) < ttl {
                return false;
            }
        }
        self.seen.insert(key.to_owned(), now);
        self.order.push_back((key.to_owned(), now));
        while let Some((k, at)) = self.order.front() {
            let expired = now.saturating_sub(*at) >= ttl;
            if self.order.len() <= capacity.max(1) && !expired {
                break;
            }
            if self.seen.get(k) == Some(at) {
                self.seen.remove(k);
            }
            self.order.pop_front();
        }
        true
    }

    fn len(&self) -> usize {
        self.seen.len()
    }
}

/// The notification policy (see the module docs). One per session.
#[derive(Debug, Clone, Default)]
pub struct Policy {
    config: PolicyConfig,
    dedup: Dedup,
    shown: VecDeque<i64>,
    pending: Tally,
    pending_away: bool,
    suppressed: Tally,
    waiting: HashMap<String, Waiting>,
    withdrawals: Vec<String>,
}

impl Policy {
    /// A policy with `config` and nothing seen yet.
    pub fn new(config: PolicyConfig) -> Self {
        Policy {
            config,
            ..Policy::default()
        }
    }

    /// The settings in use.
    pub fn config(&self) -> &PolicyConfig {
        &self.config
    }

    /// Change the settings; what was seen, shown and counted is kept.
    pub fn set_config(&mut self, config: PolicyConfig) {
        self.config = config;
    }

    /// Turn do-not-disturb on until `until_ms`, or off with `None`.
    pub fn set_dnd_until(&mut self, until_ms: Option<i64>) {
        self.config.dnd_until_ms = until_ms;
    }

    /// Whether do-not-disturb is on at `now_ms`.
    pub fn dnd_active(&self, now_ms: i64) -> bool {
        self.config.dnd_until_ms.is_some_and(|until| now_ms < until)
    }

    /// What do-not-disturb held back since the last [`Policy::take_suppressed`].
    pub fn suppressed(&self) -> Tally {
        self.suppressed
    }

    /// Read and reset the held-back counts (the UI showed them).
    pub fn take_suppressed(&mut self) -> Tally {
        std::mem::take(&mut self.suppressed)
    }

    /// What waits in the pending digest (folded by the rate limit).
    pub fn pending(&self) -> Tally {
        self.pending
    }

    /// How many dedup keys are remembered (never above the configured capacity).
    pub fn remembered_keys(&self) -> usize {
        self.dedup.len()
    }

    /// When a pending digest can be shown (`None`: nothing pending).
    pub fn next_flush_at(&self, now_ms: i64) -> Option<i64> {
        if self.pending.total() == 0 {
            return None;
        }
        let max = self.config.max_per_minute;
        if max == 0 {
            return None;
        }
        let recent: Vec<i64> = self
            .shown
            .iter()
            .copied()
            .filter(|&t| now_ms - t < WINDOW_MS)
            .collect();
        // A slot frees when the oldest of the last `max` shown leaves the window.
        Some(match recent.len().checked_sub(max) {
            Some(i) => recent[i] + WINDOW_MS,
            None => now_ms,
        })
    }

    /// Dedup keys of notifications whose approval is no longer pending, each once
    /// (the shell closes them).
    pub fn take_withdrawals(&mut self) -> Vec<String> {
        std::mem::take(&mut self.withdrawals)
    }

    /// Follow the approvals of a batch: a pending one starts waiting (since its
    /// [`approval_waiting_since`], else now); one no longer pending stops, and the
    /// notification it raised is withdrawn.
    fn follow(&mut self, batch: &[Committed<'_>], now: i64) {
        for c in batch {
            if c.change.kind() != EntityKind::Approval {
                continue;
            }
            let id = c.change.id();
            match c.entity {
                Some(e) if is_pending_approval(e) => {
                    self.waiting.entry(id.to_owned()).or_insert(Waiting {
                        since: approval_waiting_since(e).unwrap_or(now),
                        shown: None,
                        reminded: false,
                    });
                }
                _ => {
                    if let Some(w) = self.waiting.remove(id) {
                        if let Some(n) = w.shown {
                            self.withdrawals.push(n.dedup_key);
                        }
                    }
                }
            }
        }
    }

    /// After a snapshot replaced the cache: `pending` are the approvals now
    /// pending (id, data). Those followed and no longer among them stop waiting
    /// (their notifications are withdrawn); new ones start waiting.
    pub fn resync_approvals<'a>(
        &mut self,
        pending: impl IntoIterator<Item = (&'a str, &'a Object)>,
        now_ms: i64,
    ) {
        let mut keep = std::collections::HashSet::new();
        for (id, data) in pending {
            keep.insert(id.to_owned());
            self.waiting.entry(id.to_owned()).or_insert(Waiting {
                since: approval_waiting_since(data).unwrap_or(now_ms),
                shown: None,
                reminded: false,
            });
        }
        let gone: Vec<String> = self
            .waiting
            .keys()
            .filter(|id| !keep.contains(*id))
            .cloned()
            .collect();
        for id in gone {
            if let Some(Waiting { shown: Some(n), .. }) = self.waiting.remove(&id) {
                self.withdrawals.push(n.dedup_key);
            }
        }
    }

    fn remind_after_ms(&self) -> Option<i64> {
        (self.config.remind_after_min > 0).then(|| i64::from(self.config.remind_after_min) * 60_000)
    }

    /// When the next reminder is due (`None`: reminders off or none to come).
    pub fn next_reminder_at(&self, now_ms: i64) -> Option<i64> {
        let after = self.remind_after_ms()?;
        let at = self
            .waiting
            .values()
            .filter(|w| !w.reminded)
            .map(|w| w.since + after)
            .min()?;
        Some(match self.config.dnd_until_ms {
            Some(until) if now_ms < until => at.max(until),
            _ => at,
        })
    }

    /// The reminders due at `now_ms`: one per approval pending for
    /// [`PolicyConfig::remind_after_min`] with no reminder yet, within the rate
    /// limit (the rest come at a later call). None during do-not-disturb.
    pub fn reminders(&mut self, now_ms: i64) -> Vec<Notification> {
        let Some(after) = self.remind_after_ms() else {
            return Vec::new();
        };
        if self.dnd_active(now_ms) {
            return Vec::new();
        }
        self.forget_shown_before(now_ms - WINDOW_MS);
        let mut due: Vec<(&String, &mut Waiting)> = self
            .waiting
            .iter_mut()
            .filter(|(_, w)| !w.reminded && now_ms - w.since >= after)
            .collect();
        due.sort_by_key(|(id, w)| (w.since, (*id).clone()));
        let room = self.config.max_per_minute.saturating_sub(
            self.shown
                .iter()
                .filter(|&&t| now_ms - t < WINDOW_MS)
                .count(),
        );
        let mut out = Vec::new();
        for (id, w) in due.into_iter().take(room) {
            w.reminded = true;
            let minutes = (now_ms - w.since) / 60_000;
            let body = w
                .shown
                .as_ref()
                .map(|n| n.body.clone())
                .unwrap_or_else(|| format!("Approval {id}"));
            let n = approval_notification(id, format!("Still waiting ({minutes} min)"), body);
            w.shown = Some(n.clone());
            out.push(n);
        }
        self.shown.extend(std::iter::repeat_n(now_ms, out.len()));
        out
    }

    /// Decide which of a committed batch's changes notify, and how.
    pub fn evaluate(&mut self, batch: &[Committed<'_>], ctx: &BatchContext) -> Vec<Notification> {
        let now = ctx.now_ms;
        self.follow(batch, now);
        let out = self.decide(batch, ctx);
        for n in &out {
            if let (NotificationKind::Approval, Some(t)) = (n.kind, &n.target) {
                if let Some(w) = self.waiting.get_mut(&t.id) {
                    w.shown = Some(n.clone());
                }
            }
        }
        out
    }

    fn decide(&mut self, batch: &[Committed<'_>], ctx: &BatchContext) -> Vec<Notification> {
        let now = ctx.now_ms;
        self.forget_shown_before(now - WINDOW_MS);
        let dnd = self.dnd_active(now);
        let mut candidates = Vec::new();
        for c in batch {
            let Some(n) = self.candidate(c) else { continue };
            let (ttl, cap) = (self.config.dedup_ttl_ms, self.config.dedup_capacity);
            if !self.dedup.first_time(&n.dedup_key, now, ttl, cap) {
                continue;
            }
            if dnd
                && !(n.kind == NotificationKind::Escalation && self.config.escalations_bypass_dnd)
            {
                self.suppressed.add(n.kind);
                continue;
            }
            candidates.push(n);
        }
        if dnd {
            self.hold_back_pending();
        }
        if candidates.is_empty() && self.pending.total() == 0 {
            return Vec::new();
        }
        let away = ctx
            .away_ms
            .is_some_and(|ms| ms > self.config.digest_after_away_ms);
        let burst = candidates.len() > self.config.digest_over;
        let several = candidates.len() as u64 + self.pending.total() > 1;
        if (away || burst) && several {
            for n in candidates.drain(..) {
                self.pending.add(n.kind);
            }
            self.pending_away |= away;
        }
        // Escalations first: if the rate limit bites, they are the ones shown.
        candidates.sort_by_key(|n| std::cmp::Reverse(n.urgency));
        let room = self.room(now);
        let digest_slot = usize::from(self.pending.total() > 0);
        let mut out = Vec::new();
        if candidates.len() + digest_slot <= room {
            out.append(&mut candidates);
        } else if room > 0 {
            let rest = candidates.split_off(room - 1);
            out.append(&mut candidates);
            for n in rest {
                self.pending.add(n.kind);
            }
        } else {
            for n in candidates {
                self.pending.add(n.kind);
            }
        }
        if self.pending.total() > 0 && out.len() < room {
            out.push(self.take_digest(now));
        }
        self.shown.extend(std::iter::repeat_n(now, out.len()));
        out
    }

    /// Show the pending digest if the rate limit now allows it (call at
    /// [`Policy::next_flush_at`]).
    pub fn flush(&mut self, now_ms: i64) -> Option<Notification> {
        self.forget_shown_before(now_ms - WINDOW_MS);
        if self.dnd_active(now_ms) {
            self.hold_back_pending();
        }
        if self.pending.total() == 0 || self.room(now_ms) == 0 {
            return None;
        }
        let digest = self.take_digest(now_ms);
        self.shown.push_back(now_ms);
        Some(digest)
    }

    /// Drop shown-times at or before `cutoff`: they no longer count.
    fn forget_shown_before(&mut self, cutoff: i64) {
        while self.shown.front().is_some_and(|&t| t <= cutoff) {
            self.shown.pop_front();
        }
    }

    /// Free slots in the rate-limit window ending at `now`.
    fn room(&self, now: i64) -> usize {
        let recent = self.shown.iter().filter(|&&t| now - t < WINDOW_MS).count();
        self.config.max_per_minute.saturating_sub(recent)
    }

    /// During do-not-disturb, the pending digest keeps only what may bypass it.
    fn hold_back_pending(&mut self) {
        let p = std::mem::take(&mut self.pending);
        self.suppressed.approvals += p.approvals;
        self.suppressed.other += p.other;
        if self.config.escalations_bypass_dnd {
            self.pending.escalations = p.escalations;
        } else {
            self.suppressed.escalations += p.escalations;
        }
    }

    fn take_digest(&mut self, now: i64) -> Notification {
        let tally = std::mem::take(&mut self.pending);
        let away = std::mem::take(&mut self.pending_away);
        let (title, body) = if away {
            (
                "While you were away".to_owned(),
                format!("{} while you were away", tally.describe()),
            )
        } else {
            (
                format!("{} new notifications", tally.total()),
                tally.describe(),
            )
        };
        Notification {
            title,
            body: capitalise(&body),
            kind: NotificationKind::Digest,
            target: None,
            dedup_key: format!("digest:{now}"),
            actions: vec![NotificationAction::Open],
            urgency: if tally.escalations > 0 {
                Urgency::Critical
            } else {
                Urgency::Normal
            },
        }
    }

    /// The notification a change would raise under the enabled rules, before dedup.
    fn candidate(&self, c: &Committed<'_>) -> Option<Notification> {
        let (kind, id, data) = match c.change {
            Change::Upsert { kind, id, data } => (*kind, id, data),
            Change::Patch { kind, id, data } => (*kind, id, data),
            Change::Append { .. } | Change::Delete { .. } => return None,
        };
        let entity = c.entity?;
        let target = Some(EntityRef {
            kind,
            id: id.clone(),
        });
        match kind {
            EntityKind::Approval if self.config.approvals => {
                if !matches!(c.change, Change::Upsert { .. }) {
                    return None;
                }
                if !is_pending_approval(entity) {
                    return None;
                }
                let what = text(
                    entity,
                    &["title", "summary", "description", "action", "tool"],
                )
                .unwrap_or_else(|| format!("Approval {id}"));
                let body = match text(
                    entity,
                    &["agent_name", "agent", "requested_by", "requester"],
                ) {
                    Some(who) => format!("{who}: {what}"),
                    None => what,
                };
                Some(approval_notification(
                    id,
                    "Approval needed".into(),
                    clip(&body),
                ))
            }
            EntityKind::Conversation if self.config.escalations => {
                if !(is_escalated(data) && is_escalated(entity)) {
                    return None;
                }
                let at = entity
                    .get("escalated_at")
                    .or_else(|| data.get("escalated_at"));
                let dedup_key = match at.and_then(scalar) {
                    Some(at) => format!("escalation:{id}:{at}"),
                    None => format!("escalation:{id}"),
                };
                let why = text(
                    entity,
                    &["reason", "escalation_reason", "subject", "title", "summary"],
                )
                .unwrap_or_else(|| format!("Conversation {id} needs a human"));
                let body = match text(entity, &["customer_name", "customer", "user", "contact"]) {
                    Some(who) => format!("{who}: {why}"),
                    None => why,
                };
                Some(Notification {
                    title: "Conversation escalated".into(),
                    body: clip(&body),
                    kind: NotificationKind::Escalation,
                    target,
                    dedup_key,
                    actions: vec![NotificationAction::Open],
                    urgency: Urgency::Critical,
                })
            }
            EntityKind::Agent if self.config.agent_failures => {
                if !(is_failed_agent(data) && is_failed_agent(entity)) {
                    return None;
                }
                let name = text(entity, &["name", "display_name"]).unwrap_or_else(|| id.clone());
                let body = text(entity, &["error", "reason", "message", "last_error"])
                    .unwrap_or_else(|| {
                        format!("Status: {}", status_of(entity).unwrap_or("failed"))
                    });
                let dedup_key = match entity.get("updated_at").and_then(scalar) {
                    Some(at) => format!("agent-failed:{id}:{at}"),
                    None => format!("agent-failed:{id}"),
                };
                Some(Notification {
                    title: format!("Agent {name} failed"),
                    body: clip(&body),
                    kind: NotificationKind::Other,
                    target,
                    dedup_key,
                    actions: vec![NotificationAction::Open],
                    urgency: Urgency::Normal,
                })
            }
            _ => None,
        }
    }
}

/// The first of `fields` holding a non-blank string.
/// A notification about approval `id`: the one shape of its key (what a later
/// close or replacement finds it by), target and buttons.
fn approval_notification(id: &str, title: String, body: String) -> Notification {
    Notification {
        title,
        body,
        kind: NotificationKind::Approval,
        target: Some(EntityRef {
            kind: EntityKind::Approval,
            id: id.to_owned(),
        }),
        dedup_key: format!("approval:{id}"),
        actions: vec![
            NotificationAction::Approve,
            NotificationAction::Reject,
            NotificationAction::Open,
        ],
        urgency: Urgency::Normal,
    }
}

fn text(o: &Object, fields: &[&str]) -> Option<String> {
    fields.iter().find_map(|f| {
        o.get(*f)
            .and_then(Value::as_str)
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
    })
}

/// A string or number as text (for dedup keys).
fn scalar(v: &Value) -> Option<String> {
    match v {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn clip(s: &str) -> String {
    if s.chars().count() <= MAX_BODY_CHARS {
        return s.to_owned();
    }
    let mut out: String = s.chars().take(MAX_BODY_CHARS - 1).collect();
    out.push('…');
    out
}

fn capitalise(s: &str) -> String {
    let mut chars = s.chars();
    match chars.next() {
        Some(c) => c.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_reply_acts_only_for_the_server_and_account_that_raised_it() {
        use super::{reply_applies, Origin};
        let of = |server: &str, account: Option<&str>| Origin {
            server: server.into(),
            server_name: format!("{server} server"),
            account: account.map(Into::into),
        };
        let raised = of("team", Some("ann"));
        assert_eq!(
            reply_applies(&raised, Some(&of("team", Some("ann")))),
            Ok(())
        );
        // The display name is not identity.
        let renamed = Origin {
            server_name: "Renamed".into(),
            ..of("team", Some("ann"))
        };
        assert_eq!(reply_applies(&raised, Some(&renamed)), Ok(()));
        let other_server = reply_applies(&raised, Some(&of("ops", Some("ann")))).unwrap_err();
        assert_eq!(
            other_server,
            "That notification was for ann on team server; Pulse is now on ann on ops server. Nothing was sent: switch back to act on it."
        );
        let other_account = reply_applies(&raised, Some(&of("team", Some("bob")))).unwrap_err();
        assert!(
            other_account.contains("bob on team server"),
            "{other_account}"
        );
        assert!(reply_applies(&raised, Some(&of("team", None))).is_err());
        assert!(reply_applies(&of("team", None), Some(&of("team", Some("ann")))).is_err());
        let signed_out = reply_applies(&raised, None).unwrap_err();
        assert!(signed_out.contains("signed out"), "{signed_out}");
    }

    #[test]
    fn server_text_is_escaped_for_body_markup() {
        use super::escape_body_markup;
        assert_eq!(
            escape_body_markup(r#"<a href="https://evil.example">click</a> & <img src="x"/>"#),
            r#"&lt;a href="https://evil.example"&gt;click&lt;/a&gt; &amp; &lt;img src="x"/&gt;"#
        );
        // Already-escaped text is escaped again: shown literally, as the server sent it.
        assert_eq!(escape_body_markup("&amp;"), "&amp;amp;");
        assert_eq!(escape_body_markup("Refund €40 — ok"), "Refund €40 — ok");
        assert_eq!(escape_body_markup(""), "");
    }

    use super::*;
    use serde_json::json;
    use std::cell::RefCell;

    const T0: i64 = 1_700_000_000_000;

    fn obj(v: Value) -> Object {
        v.as_object().cloned().unwrap()
    }

    /// A change and the entity after it.
    struct Item(Change, Option<Object>);

    fn approval(id: &str) -> Item {
        let data = obj(
            json!({"id": id, "status": "pending", "title": format!("deploy {id}"), "agent": "builder"}),
        );
        Item(
            Change::Upsert {
                kind: EntityKind::Approval,
                id: id.into(),
                data: data.clone(),
            },
            Some(data),
        )
    }

    fn escalation(id: &str, at: i64) -> Item {
        let patch =
            obj(json!({"status": "escalated", "escalated_at": at, "reason": "angry customer"}));
        let mut after = obj(json!({"id": id, "customer_name": "Ada"}));
        after.extend(patch.clone());
        Item(
            Change::Patch {
                kind: EntityKind::Conversation,
                id: id.into(),
                data: patch,
            },
            Some(after),
        )
    }

    fn agent_status(id: &str, status: &str) -> Item {
        let patch = obj(json!({"status": status, "error": "out of memory", "updated_at": 5}));
        let mut after = obj(json!({"id": id, "name": "scout"}));
        after.extend(patch.clone());
        Item(
            Change::Patch {
                kind: EntityKind::Agent,
                id: id.into(),
                data: patch,
            },
            Some(after),
        )
    }

    fn run(
        policy: &mut Policy,
        items: &[Item],
        now_ms: i64,
        away_ms: Option<u64>,
    ) -> Vec<Notification> {
        let batch: Vec<Committed<'_>> = items
            .iter()
            .map(|Item(change, entity)| Committed {
                change,
                entity: entity.as_ref(),
            })
            .collect();
        policy.evaluate(&batch, &BatchContext { now_ms, away_ms })
    }

    fn kinds(list: &[Notification]) -> Vec<NotificationKind> {
        list.iter().map(|n| n.kind).collect()
    }

    fn decided(id: &str, status: &str) -> Item {
        let patch = obj(json!({"status": status}));
        let mut after = approval(id).1.unwrap();
        after.extend(patch.clone());
        Item(
            Change::Patch {
                kind: EntityKind::Approval,
                id: id.into(),
                data: patch,
            },
            Some(after),
        )
    }

    #[test]
    fn a_notification_is_withdrawn_once_its_approval_is_no_longer_pending() {
        let mut p = Policy::default();
        assert_eq!(
            run(&mut p, &[approval("w1"), approval("w2")], T0, None).len(),
            2
        );
        assert!(p.take_withdrawals().is_empty());
        // Still pending: nothing withdrawn.
        run(&mut p, &[decided("w1", "pending")], T0 + 1, None);
        assert!(p.take_withdrawals().is_empty());
        for status in ["approved", "decided_elsewhere"] {
            run(&mut p, &[decided("w1", status)], T0 + 2, None);
        }
        assert_eq!(p.take_withdrawals(), vec!["approval:w1".to_owned()], "once");
        let gone = Item(
            Change::Delete {
                kind: EntityKind::Approval,
                id: "w2".into(),
            },
            None,
        );
        run(&mut p, &[gone], T0 + 3, None);
        assert_eq!(p.take_withdrawals(), vec!["approval:w2".to_owned()]);
        // Never shown (do-not-disturb): nothing to close.
        p.set_dnd_until(Some(T0 + 1_000_000));
        assert!(run(&mut p, &[approval("w3")], T0 + 4, None).is_empty());
        run(&mut p, &[decided("w3", "expired")], T0 + 5, None);
        assert!(p.take_withdrawals().is_empty());
    }

    #[test]
    fn a_snapshot_withdraws_what_it_no_longer_holds_pending() {
        let mut p = Policy::default();
        run(&mut p, &[approval("s1"), approval("s2")], T0, None);
        let s2 = approval("s2").1.unwrap();
        p.resync_approvals([("s2", &s2)], T0 + 1);
        assert_eq!(p.take_withdrawals(), vec!["approval:s1".to_owned()]);
        assert!(p.take_withdrawals().is_empty(), "once");
    }

    #[test]
    fn reminders_come_once_after_n_minutes_and_wait_out_do_not_disturb() {
        let mut p = Policy::new(PolicyConfig {
            remind_after_min: 10,
            ..PolicyConfig::default()
        });
        let mut old = approval("r1");
        if let (Change::Upsert { data, .. }, Some(after)) = (&mut old.0, &mut old.1) {
            data.insert("requested_at".into(), json!(T0 - 5 * 60_000));
            after.insert("requested_at".into(), json!(T0 - 5 * 60_000));
        }
        run(&mut p, &[old, approval("r2")], T0, None);
        assert_eq!(
            p.next_reminder_at(T0),
            Some(T0 + 5 * 60_000),
            "10 min after it was asked"
        );
        assert!(p.reminders(T0 + 5 * 60_000 - 1).is_empty());
        let due = p.reminders(T0 + 5 * 60_000);
        assert_eq!(due.len(), 1);
        assert_eq!(
            due[0].dedup_key, "approval:r1",
            "replaces the first notification"
        );
        assert!(due[0].title.contains("10 min"), "{}", due[0].title);
        assert!(p.reminders(T0 + 6 * 60_000).is_empty(), "once");
        // Quiet hours: r2's reminder waits until they end.
        p.set_dnd_until(Some(T0 + 20 * 60_000));
        assert_eq!(p.next_reminder_at(T0 + 9 * 60_000), Some(T0 + 20 * 60_000));
        assert!(p.reminders(T0 + 11 * 60_000).is_empty());
        let due = p.reminders(T0 + 20 * 60_000);
        assert_eq!(due.len(), 1);
        assert_eq!(due[0].dedup_key, "approval:r2");
        // Answered: no reminder due, and the reminder is withdrawn too.
        run(&mut p, &[decided("r2", "approved")], T0 + 21 * 60_000, None);
        assert_eq!(p.take_withdrawals(), vec!["approval:r2".to_owned()]);
        // Off: never.
        let mut off = Policy::default();
        run(&mut off, &[approval("r3")], T0, None);
        assert_eq!(off.next_reminder_at(T0), None);
        assert!(off.reminders(T0 + 1_000_000_000).is_empty());
    }

    #[test]
    fn new_pending_approval_notifies_with_actions() {
        let mut p = Policy::default();
        let out = run(&mut p, &[approval("p1")], T0, None);
        assert_eq!(
            out,
            vec![Notification {
                title: "Approval needed".into(),
                body: "builder: deploy p1".into(),
                kind: NotificationKind::Approval,
                target: Some(EntityRef {
                    kind: EntityKind::Approval,
                    id: "p1".into()
                }),
                dedup_key: "approval:p1".into(),
                actions: vec![
                    NotificationAction::Approve,
                    NotificationAction::Reject,
                    NotificationAction::Open
                ],
                urgency: Urgency::Normal,
            }]
        );
        let wire = serde_json::to_value(&out[0]).unwrap();
        assert_eq!(wire["actions"], json!(["approve", "reject", "open"]));
        assert_eq!(wire["kind"], json!("approval"));
    }

    #[test]
    fn decided_patched_or_deleted_approvals_do_not_notify() {
        let mut p = Policy::default();
        let decided = obj(json!({"id": "p1", "status": "approved"}));
        let items = [
            Item(
                Change::Upsert {
                    kind: EntityKind::Approval,
                    id: "p1".into(),
                    data: decided.clone(),
                },
                Some(decided),
            ),
            Item(
                Change::Patch {
                    kind: EntityKind::Approval,
                    id: "p2".into(),
                    data: obj(json!({"status": "pending"})),
                },
                Some(obj(json!({"id": "p2", "status": "pending"}))),
            ),
            Item(approval("p3").0, None),
            Item(
                Change::Delete {
                    kind: EntityKind::Approval,
                    id: "p4".into(),
                },
                None,
            ),
        ];
        assert!(run(&mut p, &items, T0, None).is_empty());
        // An approval without a status is waiting: it notifies.
        let bare = obj(json!({"id": "p5"}));
        let item = Item(
            Change::Upsert {
                kind: EntityKind::Approval,
                id: "p5".into(),
                data: bare.clone(),
            },
            Some(bare),
        );
        assert_eq!(run(&mut p, &[item], T0, None)[0].body, "Approval p5");
    }

    #[test]
    fn same_key_notifies_once_within_the_ttl() {
        let mut p = Policy::default();
        assert_eq!(
            run(&mut p, &[approval("p1"), approval("p1")], T0, None).len(),
            1
        );
        assert!(run(&mut p, &[approval("p1")], T0 + 3_600_000, None).is_empty());
        let ttl = p.config().dedup_ttl_ms as i64;
        assert_eq!(run(&mut p, &[approval("p1")], T0 + ttl, None).len(), 1);
    }

    #[test]
    fn dedup_memory_is_bounded() {
        let mut p = Policy::new(PolicyConfig {
            dedup_capacity: 100,
            max_per_minute: usize::MAX,
            digest_over: usize::MAX,
            ..PolicyConfig::default()
        });
        for i in 0..1000 {
            assert_eq!(
                run(&mut p, &[approval(&format!("p{i}"))], T0 + i, None).len(),
                1
            );
            assert!(p.remembered_keys() <= 100);
        }
        // The newest are remembered, the oldest forgotten.
        assert!(run(&mut p, &[approval("p999")], T0 + 2000, None).is_empty());
        assert_eq!(run(&mut p, &[approval("p0")], T0 + 2000, None).len(), 1);
    }

    #[test]
    fn escalation_notifies_once_per_escalation() {
        let mut p = Policy::default();
        let out = run(&mut p, &[escalation("c1", 100)], T0, None);
        assert_eq!(kinds(&out), vec![NotificationKind::Escalation]);
        assert_eq!(out[0].urgency, Urgency::Critical);
        assert_eq!(out[0].dedup_key, "escalation:c1:100");
        assert_eq!(out[0].body, "Ada: angry customer");
        assert!(run(&mut p, &[escalation("c1", 100)], T0 + 1, None).is_empty());
        // Escalated again later: a new escalation.
        assert_eq!(run(&mut p, &[escalation("c1", 900)], T0 + 2, None).len(), 1);
    }

    #[test]
    fn conversation_changes_that_do_not_escalate_are_quiet() {
        let mut p = Policy::default();
        let resolved_after = escalation("c1", 1).0;
        let items = [
            // Escalated then resolved in the same batch: the entity is no longer escalated.
            Item(
                resolved_after,
                Some(obj(json!({"id": "c1", "status": "resolved"}))),
            ),
            // Another field changes on an escalated conversation.
            Item(
                Change::Patch {
                    kind: EntityKind::Conversation,
                    id: "c2".into(),
                    data: obj(json!({"last_message_at": 5})),
                },
                Some(obj(json!({"id": "c2", "status": "escalated"}))),
            ),
        ];
        assert!(run(&mut p, &items, T0, None).is_empty());
    }

    #[test]
    fn agent_failures_are_opt_in() {
        let mut p = Policy::default();
        assert!(run(&mut p, &[agent_status("a1", "failed")], T0, None).is_empty());
        p.set_config(PolicyConfig {
            agent_failures: true,
            ..PolicyConfig::default()
        });
        let out = run(
            &mut p,
            &[agent_status("a1", "failed"), agent_status("a2", "busy")],
            T0,
            None,
        );
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].title, "Agent scout failed");
        assert_eq!(out[0].body, "out of memory");
        assert_eq!(out[0].kind, NotificationKind::Other);
        assert_eq!(
            run(&mut p, &[agent_status("a3", "ERROR")], T0, None).len(),
            1
        );
    }

    #[test]
    fn rules_can_be_turned_off() {
        let mut p = Policy::new(PolicyConfig {
            approvals: false,
            escalations: false,
            ..PolicyConfig::default()
        });
        assert!(run(&mut p, &[approval("p1"), escalation("c1", 1)], T0, None).is_empty());
    }

    #[test]
    fn do_not_disturb_counts_what_it_holds_back() {
        let mut p = Policy::default();
        p.set_dnd_until(Some(T0 + 1000));
        assert!(p.dnd_active(T0));
        let out = run(
            &mut p,
            &[approval("p1"), approval("p2"), escalation("c1", 1)],
            T0,
            None,
        );
        assert_eq!(kinds(&out), vec![NotificationKind::Escalation]);
        assert_eq!(
            p.suppressed(),
            Tally {
                approvals: 2,
                ..Tally::default()
            }
        );
        // Held back items are not raised later either, but they stay counted.
        assert!(run(&mut p, &[approval("p1")], T0 + 2000, None).is_empty());
        assert_eq!(p.take_suppressed().total(), 2);
        assert_eq!(p.suppressed().total(), 0);
        // After do-not-disturb, new things notify again.
        assert_eq!(run(&mut p, &[approval("p3")], T0 + 2000, None).len(), 1);
    }

    #[test]
    fn escalations_can_be_held_back_too() {
        let mut p = Policy::new(PolicyConfig {
            escalations_bypass_dnd: false,
            dnd_until_ms: Some(T0 + 1000),
            ..PolicyConfig::default()
        });
        assert!(run(&mut p, &[escalation("c1", 1)], T0, None).is_empty());
        assert_eq!(p.suppressed().escalations, 1);
    }

    #[test]
    fn long_disconnect_raises_one_digest() {
        let mut p = Policy::default();
        let mut items: Vec<Item> = (0..5).map(|i| approval(&format!("p{i}"))).collect();
        items.push(escalation("c1", 1));
        items.push(escalation("c2", 1));
        let out = run(&mut p, &items, T0, Some(5 * 60_000));
        assert_eq!(out.len(), 1);
        let d = &out[0];
        assert_eq!(d.kind, NotificationKind::Digest);
        assert_eq!(
            d.body,
            "5 new approvals and 2 escalations while you were away"
        );
        assert_eq!(d.title, "While you were away");
        assert_eq!(d.urgency, Urgency::Critical);
        assert_eq!(d.target, None);
        assert_eq!(d.actions, vec![NotificationAction::Open]);
        assert_eq!(p.pending().total(), 0);
        // The folded items were seen: replaying them raises nothing.
        assert!(run(&mut p, &items, T0 + 1, None).is_empty());
    }

    #[test]
    fn short_disconnect_or_single_item_notifies_normally() {
        let mut p = Policy::default();
        let out = run(&mut p, &[approval("p1"), approval("p2")], T0, Some(30_000));
        assert_eq!(kinds(&out), vec![NotificationKind::Approval; 2]);
        let out = run(&mut p, &[approval("p3")], T0, Some(3_600_000));
        assert_eq!(kinds(&out), vec![NotificationKind::Approval]);
    }

    #[test]
    fn a_burst_becomes_a_digest() {
        let mut p = Policy::default();
        let three: Vec<Item> = (0..3).map(|i| approval(&format!("a{i}"))).collect();
        assert_eq!(run(&mut p, &three, T0, None).len(), 3);
        let mut p = Policy::default();
        let four: Vec<Item> = (0..4).map(|i| approval(&format!("b{i}"))).collect();
        let out = run(&mut p, &four, T0, None);
        assert_eq!(kinds(&out), vec![NotificationKind::Digest]);
        assert_eq!(out[0].body, "4 new approvals");
        assert_eq!(out[0].title, "4 new notifications");
    }

    #[test]
    fn rate_limit_folds_the_surplus_into_a_digest() {
        let mut p = Policy::default();
        for i in 0..6 {
            let out = run(&mut p, &[approval(&format!("p{i}"))], T0 + i * 1000, None);
            assert_eq!(out.len(), 1, "notification {i}");
        }
        for i in 6..10 {
            assert!(run(&mut p, &[approval(&format!("p{i}"))], T0 + i * 1000, None).is_empty());
        }
        assert_eq!(p.pending().approvals, 4);
        assert_eq!(p.flush(T0 + 30_000), None, "window still full");
        assert_eq!(p.next_flush_at(T0 + 30_000), Some(T0 + 60_000));
        let digest = p.flush(T0 + 60_000).expect("digest once a slot frees");
        assert_eq!(digest.body, "4 new approvals");
        assert_eq!(p.pending().total(), 0);
        assert_eq!(p.next_flush_at(T0 + 60_000), None);
    }

    #[test]
    fn rate_limit_inside_one_batch_keeps_escalations_individual() {
        let mut p = Policy::default();
        for i in 0..4 {
            assert_eq!(
                run(&mut p, &[approval(&format!("x{i}"))], T0, None).len(),
                1
            );
        }
        // Two slots left for three candidates: the escalation, then a digest of the rest.
        let out = run(
            &mut p,
            &[approval("p1"), approval("p2"), escalation("c1", 1)],
            T0 + 10,
            None,
        );
        assert_eq!(
            kinds(&out),
            vec![NotificationKind::Escalation, NotificationKind::Digest]
        );
        assert_eq!(out[1].body, "2 new approvals");
        // Nothing more fits this minute; a later batch carries the pending digest.
        assert!(run(&mut p, &[approval("p3")], T0 + 20, None).is_empty());
        let out = run(&mut p, &[approval("p4")], T0 + 60_000, None);
        assert_eq!(
            kinds(&out),
            vec![NotificationKind::Approval, NotificationKind::Digest]
        );
        assert_eq!(out[1].body, "1 new approval");
    }

    #[test]
    fn pending_digest_respects_do_not_disturb() {
        let mut p = Policy::default();
        for i in 0..6 {
            run(&mut p, &[approval(&format!("x{i}"))], T0, None);
        }
        run(&mut p, &[approval("p1"), escalation("c1", 1)], T0 + 1, None);
        assert_eq!(
            p.pending(),
            Tally {
                approvals: 1,
                escalations: 1,
                other: 0
            }
        );
        p.set_dnd_until(Some(T0 + 3_600_000));
        let digest = p.flush(T0 + 60_000).expect("escalations bypass");
        assert_eq!(digest.body, "1 escalation");
        assert_eq!(p.suppressed().approvals, 1);
    }

    #[test]
    fn describe_reads_naturally() {
        let t = |approvals, escalations, other| {
            Tally {
                approvals,
                escalations,
                other,
            }
            .describe()
        };
        assert_eq!(t(0, 0, 0), "nothing new");
        assert_eq!(t(1, 0, 0), "1 new approval");
        assert_eq!(t(0, 3, 0), "3 escalations");
        assert_eq!(
            t(2, 1, 1),
            "2 new approvals, 1 escalation and 1 other update"
        );
    }

    #[test]
    fn long_bodies_are_clipped() {
        let long = "x".repeat(500);
        let data = obj(json!({"id": "p1", "status": "pending", "title": long}));
        let item = Item(
            Change::Upsert {
                kind: EntityKind::Approval,
                id: "p1".into(),
                data: data.clone(),
            },
            Some(data),
        );
        let out = run(&mut Policy::default(), &[item], T0, None);
        assert_eq!(out[0].body.chars().count(), MAX_BODY_CHARS);
        assert!(out[0].body.ends_with('…'));
    }

    #[test]
    fn config_has_defaults_and_round_trips() {
        let c = PolicyConfig::default();
        assert!(c.approvals && c.escalations && !c.agent_failures && c.escalations_bypass_dnd);
        assert_eq!(
            (c.digest_after_away_ms, c.digest_over, c.max_per_minute),
            (120_000, 3, 6)
        );
        let back: PolicyConfig = serde_json::from_str(&serde_json::to_string(&c).unwrap()).unwrap();
        assert_eq!(back, c);
        let partial: PolicyConfig =
            serde_json::from_str(r#"{"agent_failures": true, "future_field": 1}"#).unwrap();
        assert!(partial.agent_failures);
        assert_eq!(partial.max_per_minute, 6);
    }

    struct Recording {
        shown: RefCell<Vec<Notification>>,
        fail_on: &'static str,
    }

    impl Notifier for Recording {
        fn show(&self, n: &Notification) -> Result<(), String> {
            if n.dedup_key == self.fail_on {
                return Err("no notification daemon".into());
            }
            self.shown.borrow_mut().push(n.clone());
            Ok(())
        }
    }

    #[test]
    fn show_all_hands_each_to_the_notifier() {
        let mut p = Policy::default();
        let out = run(
            &mut p,
            &[approval("p1"), approval("p2"), escalation("c1", 1)],
            T0,
            None,
        );
        let notifier = Recording {
            shown: RefCell::new(Vec::new()),
            fail_on: "approval:p2",
        };
        assert_eq!(show_all(&notifier, &out), 2);
        let keys: Vec<String> = notifier
            .shown
            .borrow()
            .iter()
            .map(|n| n.dedup_key.clone())
            .collect();
        assert_eq!(keys, vec!["escalation:c1:1", "approval:p1"]);
    }
}
