//! In-memory [`Store`]: same contract, nothing durable.
//!
//! Entities live in a `BTreeMap` keyed by `(kind, id)`, so [`Store::list`] and
//! [`Store::all`] come out sorted without extra work. Every method runs to completion
//! under `&mut self` and cannot fail half-way, which is what makes [`Store::apply`]
//! and [`Store::replace_rows`] atomic here. Used by tests, the embedded demo and any
//! client that does not want a cache file.

use std::collections::{BTreeMap, VecDeque};
use std::time::{SystemTime, UNIX_EPOCH};

use pulse_protocol::domain::{Change, Entity, EntityKind, Object};
use pulse_protocol::frame::EventFrame;

use super::{
    Action, AppliedEvent, Cursor, OutboxEntry, Owner, SnapshotRows, Store, StoreError,
    StoreSummary, EVENT_LOG_LIMIT,
};

/// Milliseconds since the Unix epoch, by the wall clock (0 if it is before 1970).
pub(super) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// Which events of a batch to apply: tracks, per stream, the highest seq already
/// applied in `epoch` (`None` when the stored cursor is of another epoch or absent).
/// Shared by both backends so they skip exactly the same events.
#[derive(Debug, Default)]
pub(super) struct SeqFilter {
    streams: Vec<(String, Option<u64>, bool)>,
}

impl SeqFilter {
    /// Index of `stream`'s slot, loading its stored cursor with `load` on first use.
    pub(super) fn slot<E>(
        &mut self,
        epoch: &str,
        stream: &str,
        load: impl FnOnce() -> Result<Option<Cursor>, E>,
    ) -> Result<usize, E> {
        if let Some(i) = self.streams.iter().position(|(s, _, _)| s == stream) {
            return Ok(i);
        }
        let floor = load()?.filter(|c| c.epoch == epoch).map(|c| c.seq);
        self.streams.push((stream.to_owned(), floor, false));
        Ok(self.streams.len() - 1)
    }

    /// Whether the event `seq` in slot `i` is new; if so it counts as applied.
    pub(super) fn admit(&mut self, i: usize, seq: u64) -> bool {
        let (_, floor, touched) = &mut self.streams[i];
        if floor.is_some_and(|f| seq <= f) {
            return false;
        }
        *floor = Some(seq);
        *touched = true;
        true
    }

    /// Streams that applied at least one event, with their new cursor seq.
    pub(super) fn advanced(&self) -> impl Iterator<Item = (&str, u64)> {
        self.streams
            .iter()
            .filter(|(_, _, touched)| *touched)
            .filter_map(|(s, floor, _)| floor.map(|f| (s.as_str(), f)))
    }
}

/// A [`Store`] held in memory (see the module docs).
#[derive(Debug, Clone, Default)]
pub struct MemoryStore {
    entities: BTreeMap<(EntityKind, String), Object>,
    cursors: BTreeMap<String, Cursor>,
    log: VecDeque<EventFrame>,
    outbox: BTreeMap<u64, OutboxEntry>,
    last_outbox_id: u64,
    last_sync_ms: Option<i64>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        MemoryStore::default()
    }

    fn apply_change(&mut self, change: &Change) {
        let key = (change.kind(), change.id().to_owned());
        let current = match change {
            Change::Patch { .. } | Change::Append { .. } => self.entities.remove(&key),
            Change::Upsert { .. } | Change::Delete { .. } => None,
        };
        match change.apply_to(current) {
            Some(obj) => {
                self.entities.insert(key, obj);
            }
            None => {
                self.entities.remove(&key);
            }
        }
    }
}

impl Store for MemoryStore {
    fn apply(&mut self, epoch: &str, events: &[AppliedEvent]) -> Result<Vec<u64>, StoreError> {
        let mut filter = SeqFilter::default();
        let mut applied = Vec::with_capacity(events.len());
        for event in events {
            let frame = &event.frame;
            let cursors = &self.cursors;
            let slot = filter.slot(epoch, &frame.stream, || {
                Ok::<_, StoreError>(cursors.get(&frame.stream).cloned())
            })?;
            if !filter.admit(slot, frame.seq) {
                continue;
            }
            for change in &event.changes {
                self.apply_change(change);
            }
            self.log.push_back(frame.clone());
            applied.push(frame.seq);
        }
        for (stream, seq) in filter.advanced() {
            self.cursors.insert(
                stream.to_owned(),
                Cursor {
                    epoch: epoch.to_owned(),
                    seq,
                },
            );
        }
        if !applied.is_empty() {
            self.last_sync_ms = Some(now_ms());
        }
        while self.log.len() > EVENT_LOG_LIMIT {
            self.log.pop_front();
        }
        Ok(applied)
    }

    fn replace_rows(
        &mut self,
        stream: &str,
        cursor: &Cursor,
        rows: &SnapshotRows,
    ) -> Result<(), StoreError> {
        // Decoded in full before anything changes: a bad row leaves the old state.
        self.entities = rows
            .iter()
            .map(|r| Ok(((r.kind, r.id.to_owned()), serde_json::from_str(r.data)?)))
            .collect::<Result<_, StoreError>>()?;
        // The cache now holds this stream's world only (entities carry no stream).
        self.cursors.clear();
        self.cursors.insert(stream.to_owned(), cursor.clone());
        self.log.clear();
        self.last_sync_ms = Some(now_ms());
        Ok(())
    }

    fn cursor(&self, stream: &str) -> Result<Option<Cursor>, StoreError> {
        Ok(self.cursors.get(stream).cloned())
    }

    fn get(&self, kind: EntityKind, id: &str) -> Result<Option<Entity>, StoreError> {
        Ok(self
            .entities
            .get(&(kind, id.to_owned()))
            .map(|data| Entity {
                kind,
                id: id.to_owned(),
                data: data.clone(),
            }))
    }

    fn list(&self, kind: EntityKind) -> Result<Vec<Entity>, StoreError> {
        Ok(self
            .entities
            .range((kind, String::new())..)
            .take_while(|((k, _), _)| *k == kind)
            .map(|((kind, id), data)| Entity {
                kind: *kind,
                id: id.clone(),
                data: data.clone(),
            })
            .collect())
    }

    fn recent_events(&self, limit: usize) -> Result<Vec<EventFrame>, StoreError> {
        let skip = self.log.len().saturating_sub(limit);
        Ok(self.log.iter().skip(skip).cloned().collect())
    }

    fn outbox_push(
        &mut self,
        owner: &Owner,
        action: &Action,
        queued_at: i64,
    ) -> Result<u64, StoreError> {
        self.last_outbox_id += 1;
        let id = self.last_outbox_id;
        self.outbox.insert(
            id,
            OutboxEntry {
                id,
                owner: Some(owner.clone()),
                action: action.clone(),
                queued_at,
                last_error: None,
            },
        );
        Ok(id)
    }

    fn outbox(&self) -> Result<Vec<OutboxEntry>, StoreError> {
        Ok(self.outbox.values().cloned().collect())
    }

    fn outbox_fail(&mut self, id: u64, error: &str) -> Result<(), StoreError> {
        if let Some(entry) = self.outbox.get_mut(&id) {
            entry.last_error = Some(error.to_owned());
        }
        Ok(())
    }

    fn outbox_remove(&mut self, id: u64) -> Result<(), StoreError> {
        self.outbox.remove(&id);
        Ok(())
    }

    fn summary(&self) -> Result<StoreSummary, StoreError> {
        let mut counts = BTreeMap::new();
        for (kind, _) in self.entities.keys() {
            *counts.entry(*kind).or_insert(0) += 1;
        }
        Ok(StoreSummary {
            counts,
            cursors: self.cursors.clone(),
            outbox: self.outbox.len() as u64,
            last_sync_ms: self.last_sync_ms,
        })
    }
}
