//! Native notifications through notify-rust (freedesktop D-Bus on Linux), with
//! Approve / Reject / Open buttons where the notification server supports actions.
//!
//! `show` never blocks the caller: each notification is sent, and its buttons are
//! awaited, on a short-lived thread (the policy's rate limit keeps them few). A
//! click is reported on the channel given to [`OsNotifier::new`].

use std::sync::mpsc::Sender;

use pulse_core::actions::ActionSet;
use pulse_core::policy::{EntityRef, Notification, NotificationAction, Notifier, Origin, Urgency};

/// What the user did with a notification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// The entity it was about (`None` for a digest).
    pub target: Option<EntityRef>,
    /// The button pressed; `Open` for a click on the body.
    pub action: NotificationAction,
    /// The server and account the notification was raised for (`None`: none was
    /// set, so Approve / Reject are refused: `policy::reply_applies`).
    pub origin: Option<Origin>,
}

/// Shows notifications with the OS.
pub struct OsNotifier {
    replies: Sender<Reply>,
    /// Skip the OS entirely (set by `PULSE_NO_OS_NOTIFICATIONS`, or when the user
    /// turned notifications off).
    enabled: std::sync::atomic::AtomicBool,
    /// Which of Approve / Reject to offer: the server's answer (`Speaks::actions`:
    /// all on a Pulse gateway, those a profile declares), Open always.
    actions: std::sync::Mutex<ActionSet>,
    /// The OS id of each notification still standing, by dedup key (to replace a
    /// reminder over it, and to close it once its approval is decided).
    standing: Standing,
    /// Whom the notifications shown now are for (the session's server and
    /// account); stamped on each, and carried back with its reply.
    origin: std::sync::Mutex<Option<Origin>>,
}

type Standing = std::sync::Arc<std::sync::Mutex<std::collections::HashMap<String, u32>>>;

impl OsNotifier {
    /// A notifier reporting clicks on `replies`.
    pub fn new(replies: Sender<Reply>) -> Self {
        OsNotifier {
            replies,
            enabled: std::sync::atomic::AtomicBool::new(
                std::env::var_os("PULSE_NO_OS_NOTIFICATIONS").is_none(),
            ),
            actions: std::sync::Mutex::new(ActionSet::ALL),
            standing: Standing::default(),
            origin: std::sync::Mutex::new(None),
        }
    }

    /// The server and account of the session whose notifications are shown from now
    /// on (`None` while none runs).
    pub fn set_origin(&self, origin: Option<Origin>) {
        *self.origin.lock().unwrap_or_else(|e| e.into_inner()) = origin;
    }

    /// The buttons to offer for `wanted`: those the server takes, and Open.
    fn buttons(&self, wanted: &[NotificationAction]) -> Vec<NotificationAction> {
        let taken = *self.actions.lock().unwrap_or_else(|e| e.into_inner());
        wanted
            .iter()
            .copied()
            .filter(|a| match a {
                NotificationAction::Approve => taken.approve,
                NotificationAction::Reject => taken.reject,
                _ => true,
            })
            .collect()
    }

    /// Which actions the current server takes.
    pub fn set_actions(&self, taken: ActionSet) {
        *self.actions.lock().unwrap_or_else(|e| e.into_inner()) = taken;
    }

    /// Turn OS notifications on or off.
    pub fn set_enabled(&self, on: bool) {
        self.enabled.store(
            on && std::env::var_os("PULSE_NO_OS_NOTIFICATIONS").is_none(),
            std::sync::atomic::Ordering::Relaxed,
        );
    }
}

fn action_id(a: NotificationAction) -> (&'static str, &'static str) {
    match a {
        NotificationAction::Approve => ("approve", "Approve"),
        NotificationAction::Reject => ("reject", "Reject"),
        NotificationAction::Open => ("open", "Open"),
    }
}

impl Notifier for OsNotifier {
    fn show(&self, n: &Notification) -> Result<(), String> {
        if !self.enabled.load(std::sync::atomic::Ordering::Relaxed) {
            return Ok(());
        }
        let mut n = n.clone();
        n.actions = self.buttons(&n.actions);
        let replies = self.replies.clone();
        let standing = self.standing.clone();
        let origin = self
            .origin
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        std::thread::Builder::new()
            .name("notification".into())
            .spawn(move || show_blocking(n, origin, replies, standing))
            .map(|_| ())
            .map_err(|e| e.to_string())
    }

    /// Close the notification of `dedup_key` if it stands: on freedesktop, the
    /// notification is replaced by its id and the replacement closed
    /// (`CloseNotification`), which the server applies to the one on screen.
    fn close(&self, dedup_key: &str) -> Result<(), String> {
        let id = self
            .standing
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(dedup_key);
        let Some(id) = id else { return Ok(()) };
        #[cfg(all(unix, not(target_os = "macos")))]
        {
            notify_rust::Notification::new()
                .appname("Pulse")
                .summary("Pulse")
                .id(id)
                .show()
                .map(|h| h.close())
                .map_err(|e| e.to_string())?;
            tracing::info!(key = %dedup_key, "notification closed");
        }
        #[cfg(not(all(unix, not(target_os = "macos"))))]
        let _ = id;
        Ok(())
    }
}

fn show_blocking(
    n: Notification,
    origin: Option<Origin>,
    replies: Sender<Reply>,
    standing: Standing,
) {
    let mut os = notify_rust::Notification::new();
    let replaces = standing
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get(&n.dedup_key)
        .copied();
    if let Some(id) = replaces {
        os.id(id);
    }
    // Freedesktop servers may read the body as markup: server text is escaped
    // there (the summary is plain text by the spec). Elsewhere it is plain.
    #[cfg(all(unix, not(target_os = "macos")))]
    let body = pulse_core::policy::escape_body_markup(&n.body);
    #[cfg(not(all(unix, not(target_os = "macos"))))]
    let body = n.body.clone();
    os.appname("Pulse")
        .summary(&n.title)
        .body(&body)
        .icon("dialog-information");
    #[cfg(all(unix, not(target_os = "macos")))]
    {
        os.urgency(match n.urgency {
            Urgency::Low => notify_rust::Urgency::Low,
            Urgency::Normal => notify_rust::Urgency::Normal,
            Urgency::Critical => notify_rust::Urgency::Critical,
        });
        os.hint(notify_rust::Hint::Category(
            match n.kind {
                pulse_core::policy::NotificationKind::Escalation => "im.error",
                _ => "im.received",
            }
            .into(),
        ));
        // A click on the body opens the item.
        os.action("default", "Open");
        for a in &n.actions {
            let (id, label) = action_id(*a);
            os.action(id, label);
        }
    }
    #[cfg(not(all(unix, not(target_os = "macos"))))]
    let _ = Urgency::Normal;
    match os.show() {
        Ok(handle) => {
            tracing::info!(key = %n.dedup_key, kind = ?n.kind, "notification shown");
            #[cfg(all(unix, not(target_os = "macos")))]
            standing
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(n.dedup_key.clone(), handle.id());
            #[cfg(not(all(unix, not(target_os = "macos"))))]
            let _ = &standing;
            #[cfg(all(unix, not(target_os = "macos")))]
            let id = handle.id();
            #[cfg(all(unix, not(target_os = "macos")))]
            handle.wait_for_action(|action| {
                let action = match action {
                    "approve" => NotificationAction::Approve,
                    "reject" => NotificationAction::Reject,
                    "open" | "default" => NotificationAction::Open,
                    _ => return, // closed or expired
                };
                // Answered from the notification: it is gone from the screen, so a
                // close for its approval has nothing to do (no blank replacement).
                standing
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .remove(&n.dedup_key);
                let _ = replies.send(Reply {
                    target: n.target.clone(),
                    action,
                    origin: origin.clone(),
                });
            });
            // Clicked, closed or expired: no longer standing (unless a reminder
            // replaced it under another id meanwhile).
            #[cfg(all(unix, not(target_os = "macos")))]
            {
                let mut st = standing.lock().unwrap_or_else(|e| e.into_inner());
                if st.get(&n.dedup_key) == Some(&id) {
                    st.remove(&n.dedup_key);
                }
            }
            #[cfg(not(all(unix, not(target_os = "macos"))))]
            {
                let _ = (handle, replies, origin);
            }
        }
        Err(e) => tracing::warn!(key = %n.dedup_key, error = %e, "notification could not be shown"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn servers_get_the_buttons_of_the_actions_they_take() {
        let (tx, _rx) = std::sync::mpsc::channel();
        let n = OsNotifier::new(tx);
        let all = [
            NotificationAction::Approve,
            NotificationAction::Reject,
            NotificationAction::Open,
        ];
        assert_eq!(n.buttons(&all), all.to_vec());
        n.set_actions(ActionSet::NONE);
        assert_eq!(n.buttons(&all), vec![NotificationAction::Open]);
        n.set_actions(ActionSet::of([pulse_core::actions::ActionKind::Approve]));
        assert_eq!(
            n.buttons(&all),
            vec![NotificationAction::Approve, NotificationAction::Open]
        );
        n.set_actions(ActionSet::ALL);
        assert_eq!(n.buttons(&all).len(), 3);
    }
}
