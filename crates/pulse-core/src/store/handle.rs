//! [`StoreHandle`]: the one cache shared by the session, the app and commands.
//!
//! Contract:
//! - every operation takes the lock for that one call only, so no caller holds the
//!   store across an `.await`; [`StoreHandle::read`] runs several reads under one
//!   lock when they must agree with each other;
//! - a lock poisoned by a panic elsewhere is recovered, never turned into a cascade
//!   of panics: each backend call is all-or-nothing (SQLite rolls its transaction
//!   back when a panic unwinds through it; the memory backend is for tests and
//!   benchmarks), so the data behind a poisoned lock is a committed state.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use pulse_protocol::domain::{Entity, EntityKind};
use pulse_protocol::frame::EventFrame;

use super::{
    Action, AppliedEvent, Cursor, OutboxEntry, Owner, SnapshotRows, Store, StoreError, StoreSummary,
};

/// A shared, cheaply cloned handle to one [`Store`].
#[derive(Clone)]
pub struct StoreHandle {
    inner: Arc<Mutex<Box<dyn Store>>>,
}

impl std::fmt::Debug for StoreHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StoreHandle")
    }
}

impl StoreHandle {
    /// Share `store`.
    pub fn new(store: impl Store + 'static) -> Self {
        StoreHandle::from_box(Box::new(store))
    }

    /// Share an already boxed store.
    pub fn from_box(store: Box<dyn Store>) -> Self {
        StoreHandle {
            inner: Arc::new(Mutex::new(store)),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Box<dyn Store>> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Run `f` with the store locked: for several reads that must see one state.
    /// Keep `f` short and free of I/O other than the store's.
    pub fn read<R>(&self, f: impl FnOnce(&dyn Store) -> R) -> R {
        let guard = self.lock();
        f(guard.as_ref())
    }

    /// See [`Store::apply`].
    pub fn apply(&self, epoch: &str, events: &[AppliedEvent]) -> Result<Vec<u64>, StoreError> {
        self.lock().apply(epoch, events)
    }

    /// See [`Store::replace_all`].
    pub fn replace_all(
        &self,
        stream: &str,
        cursor: &Cursor,
        entities: &[Entity],
    ) -> Result<(), StoreError> {
        self.lock().replace_all(stream, cursor, entities)
    }

    /// See [`Store::replace_rows`].
    pub fn replace_rows(
        &self,
        stream: &str,
        cursor: &Cursor,
        rows: &SnapshotRows,
    ) -> Result<(), StoreError> {
        self.lock().replace_rows(stream, cursor, rows)
    }

    /// See [`Store::cursor`].
    pub fn cursor(&self, stream: &str) -> Result<Option<Cursor>, StoreError> {
        self.lock().cursor(stream)
    }

    /// See [`Store::get`].
    pub fn get(&self, kind: EntityKind, id: &str) -> Result<Option<Entity>, StoreError> {
        self.lock().get(kind, id)
    }

    /// See [`Store::list`].
    pub fn list(&self, kind: EntityKind) -> Result<Vec<Entity>, StoreError> {
        self.lock().list(kind)
    }

    /// See [`Store::all`].
    pub fn all(&self) -> Result<Vec<Entity>, StoreError> {
        self.lock().all()
    }

    /// See [`Store::recent_events`].
    pub fn recent_events(&self, limit: usize) -> Result<Vec<EventFrame>, StoreError> {
        self.lock().recent_events(limit)
    }

    /// See [`Store::outbox_push`].
    pub fn outbox_push(
        &self,
        owner: &Owner,
        action: &Action,
        queued_at: i64,
    ) -> Result<u64, StoreError> {
        self.lock().outbox_push(owner, action, queued_at)
    }

    /// See [`Store::outbox`].
    pub fn outbox(&self) -> Result<Vec<OutboxEntry>, StoreError> {
        self.lock().outbox()
    }

    /// See [`Store::outbox_fail`].
    pub fn outbox_fail(&self, id: u64, error: &str) -> Result<(), StoreError> {
        self.lock().outbox_fail(id, error)
    }

    /// See [`Store::outbox_remove`].
    pub fn outbox_remove(&self, id: u64) -> Result<(), StoreError> {
        self.lock().outbox_remove(id)
    }

    /// See [`Store::cursors`].
    pub fn cursors(&self) -> Result<std::collections::BTreeMap<String, Cursor>, StoreError> {
        self.lock().cursors()
    }

    /// See [`Store::summary`].
    pub fn summary(&self) -> Result<StoreSummary, StoreError> {
        self.lock().summary()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::MemoryStore;

    #[test]
    fn a_poisoned_lock_is_recovered() {
        let h = StoreHandle::new(MemoryStore::new());
        let h2 = h.clone();
        let panicked = std::thread::spawn(move || {
            h2.read(|_| panic!("a reader panics while holding the store"));
        })
        .join();
        assert!(panicked.is_err());
        assert!(h.inner.is_poisoned());
        // Still usable, without a panic.
        assert_eq!(h.summary().unwrap().outbox, 0);
        assert!(h.all().unwrap().is_empty());
    }
}
