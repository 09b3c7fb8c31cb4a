//! [`EntityCache`]: a bounded copy, parsed, of the entities one [`super::SqliteStore`]
//! connection recently read or wrote, so that a patch to a hot entity neither
//! queries nor parses it again.
//!
//! Invariants (the store keeps them, the randomised store test checks the result):
//! - an entry equals the committed row of its `(kind, id)`: the store adds or
//!   changes entries only after the transaction that read or wrote them committed,
//!   and takes an entry out while a transaction works on it, so an aborted
//!   transaction can only leave an entry missing, never stale;
//! - absent entities are not cached: a miss means "ask SQLite";
//! - the store clears it when another connection committed (`PRAGMA data_version`
//!   moved) and on every write other than [`crate::store::Store::apply`];
//! - bounded: at most [`MAX_ENTRIES`] entries (or the smaller count the store's
//!   owner sets, [`EntityCache::set_max_entries`]; 0 keeps nothing) and
//!   [`MAX_BYTES`] bytes of their JSON text; the entry inserted first leaves first.
//!   A parsed entity takes several times its text's size, so for small entities
//!   the count is the bound that matters.

use std::collections::{HashMap, VecDeque};

use pulse_protocol::domain::{EntityKind, Object};

/// Most entries the cache holds.
pub(super) const MAX_ENTRIES: usize = 8_192;

/// Most bytes of JSON text (as stored) the cached entities may add up to: 1,500
/// large (~4 KB) entities. Below a stream's working set the first-in-first-out
/// order misses on every entity of a cyclic stream (2 MiB held 480 of 500
/// tickets of 4 KB, and each patch read and parsed its ticket again).
pub(super) const MAX_BYTES: usize = 6 * 1024 * 1024;

/// `(kind, id)` of an entity.
pub(super) type Key = (EntityKind, String);

#[derive(Debug)]
struct Entry {
    obj: Object,
    bytes: usize,
    stamp: u64,
}

/// See the module docs.
#[derive(Debug)]
pub(super) struct EntityCache {
    map: HashMap<Key, Entry>,
    /// Most entries (at most [`MAX_ENTRIES`]).
    max_entries: usize,
    /// Insertion order; an item whose stamp differs from its entry's is stale.
    order: VecDeque<(Key, u64)>,
    bytes: usize,
    stamp: u64,
}

impl Default for EntityCache {
    fn default() -> Self {
        EntityCache {
            map: HashMap::new(),
            max_entries: MAX_ENTRIES,
            order: VecDeque::new(),
            bytes: 0,
            stamp: 0,
        }
    }
}

impl EntityCache {
    /// Hold at most `n` entries (capped at [`MAX_ENTRIES`]; 0: none), evicting the
    /// oldest at once if it holds more.
    pub(super) fn set_max_entries(&mut self, n: usize) {
        self.max_entries = n.min(MAX_ENTRIES);
        self.evict();
    }

    /// Take the entry for `key` out (the caller puts it back after its commit).
    pub(super) fn take(&mut self, key: &Key) -> Option<(Object, usize)> {
        let e = self.map.remove(key)?;
        self.bytes -= e.bytes;
        Some((e.obj, e.bytes))
    }

    /// Set the entry for `key` (`bytes`: the length of its JSON text).
    pub(super) fn put(&mut self, key: Key, obj: Object, bytes: usize) {
        if bytes > MAX_BYTES / 4 || self.max_entries == 0 {
            // One entity this large would push out most of the others.
            self.remove(&key);
            return;
        }
        if let Some(e) = self.map.get_mut(&key) {
            self.bytes = self.bytes - e.bytes + bytes;
            e.obj = obj;
            e.bytes = bytes;
        } else {
            self.stamp += 1;
            self.order.push_back((key.clone(), self.stamp));
            self.map.insert(
                key,
                Entry {
                    obj,
                    bytes,
                    stamp: self.stamp,
                },
            );
            self.bytes += bytes;
        }
        self.evict();
    }

    fn evict(&mut self) {
        while self.map.len() > self.max_entries || self.bytes > MAX_BYTES {
            let Some((old, stamp)) = self.order.pop_front() else {
                break;
            };
            if self.map.get(&old).is_some_and(|e| e.stamp == stamp) {
                self.remove(&old);
            }
        }
        if self.order.len() > 2 * MAX_ENTRIES {
            let map = &self.map;
            self.order
                .retain(|(k, s)| map.get(k).is_some_and(|e| e.stamp == *s));
        }
    }

    /// Forget `key`.
    pub(super) fn remove(&mut self, key: &Key) {
        if let Some(e) = self.map.remove(key) {
            self.bytes -= e.bytes;
        }
    }

    /// Forget everything.
    pub(super) fn clear(&mut self) {
        self.map.clear();
        self.order.clear();
        self.bytes = 0;
    }

    /// Entries held (tests).
    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.map.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(i: usize) -> Key {
        (EntityKind::Agent, format!("a{i}"))
    }

    #[test]
    fn a_smaller_count_evicts_at_once_and_zero_keeps_nothing() {
        let mut c = EntityCache::default();
        for i in 0..10 {
            c.put(key(i), Object::new(), 10);
        }
        c.set_max_entries(3);
        assert_eq!(c.len(), 3);
        assert!(c.take(&key(6)).is_none() && c.take(&key(9)).is_some());
        c.set_max_entries(0);
        assert_eq!(c.len(), 0);
        c.put(key(1), Object::new(), 10);
        assert_eq!(c.len(), 0);
        c.set_max_entries(usize::MAX);
        assert_eq!(c.max_entries, MAX_ENTRIES);
    }

    #[test]
    fn stays_within_its_bounds_and_evicts_the_oldest() {
        let mut c = EntityCache::default();
        for i in 0..MAX_ENTRIES + 10 {
            c.put(key(i), Object::new(), 10);
        }
        assert_eq!(c.len(), MAX_ENTRIES);
        assert!(c.take(&key(0)).is_none(), "the first in is the first out");
        assert!(c.take(&key(MAX_ENTRIES + 9)).is_some());
        let mut c = EntityCache::default();
        for i in 0..100 {
            c.put(key(i), Object::new(), MAX_BYTES / 8);
        }
        assert!(c.bytes <= MAX_BYTES && c.len() == 8);
        c.put(key(1000), Object::new(), MAX_BYTES);
        assert!(c.take(&key(1000)).is_none(), "too large to cache");
        // Removing and re-adding keys does not grow the order queue without bound.
        for round in 0..10 {
            for i in 0..MAX_ENTRIES / 2 {
                c.put(key(i), Object::new(), 1);
                if round % 2 == 0 {
                    c.remove(&key(i));
                }
            }
        }
        assert!(c.order.len() <= 2 * MAX_ENTRIES + 1);
        c.clear();
        assert_eq!((c.len(), c.bytes), (0, 0));
    }
}
