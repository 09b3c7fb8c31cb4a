//! The notification centre's state: the notifications shown, and the keys marked
//! read, kept across sessions (one centre serves every [`App`](super::App) a shell
//! starts, and the shell reads it while none runs).
//!
//! Invariants:
//! - the history holds at most [`MAX_NOTIFICATIONS`], newest first, one per dedup
//!   key (a notification shown again moves to the front); the oldest goes first;
//! - the read marks hold at most [`MAX_READ`] keys, in the order they were first
//!   marked; when full, the oldest mark goes first (never the alphabetically first);
//! - a poisoned lock is recovered: the state is plain data and stays consistent.

use std::collections::{HashSet, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use serde::{Deserialize, Serialize};

use super::Shown;

/// The most notifications the notification centre keeps.
pub const MAX_NOTIFICATIONS: usize = 500;

/// The most read marks kept.
pub const MAX_READ: usize = 5_000;

/// Keys of notifications marked read, oldest mark first (saved as a JSON array in
/// that order).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "Vec<String>", into = "Vec<String>")]
pub struct ReadMarks {
    order: VecDeque<String>,
    keys: HashSet<String>,
}

impl ReadMarks {
    /// Mark `keys` read (a key already marked keeps its place), dropping the oldest
    /// marks beyond [`MAX_READ`].
    pub fn mark(&mut self, keys: impl IntoIterator<Item = String>) {
        for k in keys {
            if self.keys.insert(k.clone()) {
                self.order.push_back(k);
            }
        }
        while self.order.len() > MAX_READ {
            if let Some(old) = self.order.pop_front() {
                self.keys.remove(&old);
            }
        }
    }

    /// Whether `key` is marked read.
    pub fn contains(&self, key: &str) -> bool {
        self.keys.contains(key)
    }

    /// The keys, oldest mark first.
    pub fn iter(&self) -> impl Iterator<Item = &str> {
        self.order.iter().map(String::as_str)
    }

    /// How many keys are marked.
    pub fn len(&self) -> usize {
        self.order.len()
    }

    /// Whether none is.
    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }
}

impl From<Vec<String>> for ReadMarks {
    fn from(keys: Vec<String>) -> Self {
        let mut r = ReadMarks::default();
        r.mark(keys);
        r
    }
}

impl From<ReadMarks> for Vec<String> {
    fn from(r: ReadMarks) -> Self {
        r.order.into()
    }
}

#[derive(Debug, Default)]
struct State {
    shown: VecDeque<Shown>,
    read: ReadMarks,
}

/// The notification centre: shared, cloning is cheap. See the module docs.
#[derive(Debug, Clone, Default)]
pub struct NotificationCentre {
    state: Arc<Mutex<State>>,
}

impl NotificationCentre {
    /// An empty history with the read marks `read` (loaded from disk).
    pub fn new(read: ReadMarks) -> Self {
        NotificationCentre {
            state: Arc::new(Mutex::new(State {
                shown: VecDeque::new(),
                read,
            })),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Record a notification shown (the app does this before it reports it).
    pub fn record(&self, shown: Shown) {
        let mut s = self.lock();
        let key = &shown.notification.dedup_key;
        s.shown.retain(|x| &x.notification.dedup_key != key);
        s.shown.push_front(shown);
        s.shown.truncate(MAX_NOTIFICATIONS);
    }

    /// The notifications shown, newest first.
    pub fn history(&self) -> Vec<Shown> {
        self.lock().shown.iter().cloned().collect()
    }

    /// Mark `keys` read; returns the read marks after it (to save).
    pub fn mark_read(&self, keys: impl IntoIterator<Item = String>) -> ReadMarks {
        let mut s = self.lock();
        s.read.mark(keys);
        s.read.clone()
    }

    /// The read marks.
    pub fn read(&self) -> ReadMarks {
        self.lock().read.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::{Notification, NotificationKind, Urgency};

    fn shown(key: &str, at_ms: i64) -> Shown {
        Shown {
            notification: Notification {
                dedup_key: key.into(),
                kind: NotificationKind::Other,
                title: key.into(),
                body: String::new(),
                urgency: Urgency::Normal,
                target: None,
                actions: Vec::new(),
            },
            at_ms,
        }
    }

    #[test]
    fn read_marks_evict_the_oldest_mark_not_the_first_key() {
        let mut r = ReadMarks::default();
        // "z…" is marked first, so it is the oldest though it sorts last.
        r.mark(["z-first".to_owned(), "a-second".to_owned()]);
        r.mark((0..MAX_READ - 2).map(|i| format!("k{i:05}")));
        assert_eq!(r.len(), MAX_READ);
        r.mark(["a-second".to_owned()]); // already marked: keeps its place
        assert_eq!(r.len(), MAX_READ);
        r.mark(["newest".to_owned()]);
        assert_eq!(r.len(), MAX_READ);
        assert!(!r.contains("z-first"), "the oldest mark goes first");
        assert!(r.contains("a-second"));
        assert!(r.contains("newest"));
        r.mark(["newer".to_owned()]);
        assert!(!r.contains("a-second"));
        assert_eq!(r.iter().next(), Some("k00000"));
        assert_eq!(r.iter().last(), Some("newer"));
    }

    #[test]
    fn read_marks_keep_their_order_on_disk() {
        let mut r = ReadMarks::default();
        r.mark(["b".to_owned(), "a".to_owned(), "b".to_owned()]);
        let json = serde_json::to_string(&r).unwrap();
        assert_eq!(json, r#"["b","a"]"#);
        let back: ReadMarks = serde_json::from_str(&json).unwrap();
        assert_eq!(back, r);
    }

    #[test]
    fn history_is_newest_first_deduplicated_and_capped() {
        let c = NotificationCentre::default();
        c.record(shown("a", 1));
        c.record(shown("b", 2));
        c.record(shown("a", 3));
        let keys: Vec<_> = c
            .history()
            .into_iter()
            .map(|s| (s.notification.dedup_key, s.at_ms))
            .collect();
        assert_eq!(keys, [("a".to_owned(), 3), ("b".to_owned(), 2)]);
        for i in 0..MAX_NOTIFICATIONS as i64 + 10 {
            c.record(shown(&format!("n{i}"), 10 + i));
        }
        let h = c.history();
        assert_eq!(h.len(), MAX_NOTIFICATIONS);
        assert_eq!(
            h[0].notification.dedup_key,
            format!("n{}", MAX_NOTIFICATIONS + 9)
        );
        assert_eq!(
            h.last().unwrap().notification.dedup_key,
            "n10",
            "oldest dropped first"
        );
    }

    #[test]
    fn the_centre_keeps_read_marks_given_at_start() {
        let c = NotificationCentre::new(ReadMarks::from(vec!["x".to_owned()]));
        let r = c.mark_read(["y".to_owned()]);
        assert_eq!(r.iter().collect::<Vec<_>>(), ["x", "y"]);
        assert!(c.read().contains("x"));
    }
}
