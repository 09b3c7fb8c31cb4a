//! In-memory [`LogStore`]: a new epoch for every tenant on every start.
//!
//! Each tenant sits behind its own `RwLock`, so a snapshot or a read sees one
//! consistent state and tenants never contend with each other.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex, RwLock};

use pulse_protocol::domain::{Entity, EntityKind, Object};
use pulse_protocol::frame::EventFrame;
use pulse_protocol::rest::Snapshot;

use super::{
    new_epoch, rotation_of, stamped, Appended, AudiencePlan, EventRange, LogStore, NewEvent,
    RefreshSession, Rotation, StoreError, StreamInfo,
};

#[derive(Debug)]
struct MemStream {
    epoch: String,
    head: u64,
    log: VecDeque<EventFrame>,
    /// Event id → seq of every event in `log`.
    ids: HashMap<String, u64>,
    entities: BTreeMap<(EntityKind, String), Object>,
}

impl MemStream {
    fn info(&self, stream: &str) -> StreamInfo {
        StreamInfo {
            stream: stream.to_owned(),
            epoch: self.epoch.clone(),
            head: self.head,
            first: self.head + 1 - self.log.len() as u64,
        }
    }
}

/// The memory backend.
#[derive(Debug)]
pub struct MemoryStore {
    retain: u64,
    streams: RwLock<HashMap<String, Arc<RwLock<MemStream>>>>,
    sessions: Mutex<HashMap<String, RefreshSession>>,
    answers: Mutex<HashMap<(String, String), (String, u64)>>,
}

impl MemoryStore {
    /// An empty store keeping the newest `retain` events per tenant (at least 1).
    pub fn new(retain: u64) -> MemoryStore {
        MemoryStore {
            retain: retain.max(1),
            streams: RwLock::new(HashMap::new()),
            sessions: Mutex::new(HashMap::new()),
            answers: Mutex::new(HashMap::new()),
        }
    }

    fn stream(&self, tenant: &str) -> Result<Arc<RwLock<MemStream>>, StoreError> {
        if let Some(s) = self
            .streams
            .read()
            .map_err(|_| StoreError::Poisoned)?
            .get(tenant)
        {
            return Ok(s.clone());
        }
        let mut all = self.streams.write().map_err(|_| StoreError::Poisoned)?;
        Ok(all
            .entry(tenant.to_owned())
            .or_insert_with(|| {
                Arc::new(RwLock::new(MemStream {
                    epoch: new_epoch(),
                    head: 0,
                    log: VecDeque::new(),
                    ids: HashMap::new(),
                    entities: BTreeMap::new(),
                }))
            })
            .clone())
    }
}

impl LogStore for MemoryStore {
    fn session_start(&self, session: &RefreshSession) -> Result<(), StoreError> {
        let mut map = self.sessions.lock().map_err(|_| StoreError::Poisoned)?;
        let now = crate::auth::now_secs();
        // Expired families are dropped as new ones come, so the map stays bounded
        // by the live logins.
        map.retain(|_, s| s.expires > now);
        map.insert(session.family.clone(), session.clone());
        Ok(())
    }

    fn session_rotate(
        &self,
        family: &str,
        presented: &str,
        next: &str,
        expires: u64,
        now: u64,
    ) -> Result<Rotation, StoreError> {
        let mut map = self.sessions.lock().map_err(|_| StoreError::Poisoned)?;
        let r = rotation_of(map.get(family), presented, now);
        match r {
            Rotation::Rotated => {
                if let Some(s) = map.get_mut(family) {
                    s.current = next.to_owned();
                    s.expires = expires;
                }
            }
            Rotation::Reused | Rotation::Unknown => {
                map.remove(family);
            }
        }
        Ok(r)
    }

    fn idempotent_get(
        &self,
        tenant: &str,
        key: &str,
        now: u64,
    ) -> Result<Option<String>, StoreError> {
        let map = self.answers.lock().map_err(|_| StoreError::Poisoned)?;
        Ok(map
            .get(&(tenant.to_owned(), key.to_owned()))
            .filter(|(_, exp)| *exp > now)
            .map(|(a, _)| a.clone()))
    }

    fn idempotent_put(
        &self,
        tenant: &str,
        key: &str,
        answer: &str,
        expires: u64,
    ) -> Result<(), StoreError> {
        let mut map = self.answers.lock().map_err(|_| StoreError::Poisoned)?;
        let now = crate::auth::now_secs();
        map.retain(|_, (_, exp)| *exp > now);
        map.entry((tenant.to_owned(), key.to_owned()))
            .or_insert_with(|| (answer.to_owned(), expires));
        Ok(())
    }

    fn session_revoke(&self, family: &str) -> Result<bool, StoreError> {
        let mut map = self.sessions.lock().map_err(|_| StoreError::Poisoned)?;
        Ok(map.remove(family).is_some())
    }

    fn session_revoke_user(&self, tenant: &str, sub: &str) -> Result<u64, StoreError> {
        let mut map = self.sessions.lock().map_err(|_| StoreError::Poisoned)?;
        let before = map.len();
        map.retain(|_, s| !(s.tenant == tenant && s.sub == sub));
        Ok((before - map.len()) as u64)
    }

    fn backend(&self) -> &'static str {
        "memory"
    }

    fn info(&self, tenant: &str) -> Result<StreamInfo, StoreError> {
        let s = self.stream(tenant)?;
        let s = s.read().map_err(|_| StoreError::Poisoned)?;
        Ok(s.info(tenant))
    }

    fn append(&self, tenant: &str, events: Vec<NewEvent>) -> Result<Appended, StoreError> {
        let s = self.stream(tenant)?;
        let mut s = s.write().map_err(|_| StoreError::Poisoned)?;
        // Plan first (nothing written yet), so that a refused batch leaves no trace.
        let mut plan = AudiencePlan::default();
        let mut batch_ids: HashSet<&str> = HashSet::new();
        let mut audiences = Vec::with_capacity(events.len());
        for e in &events {
            if s.ids.contains_key(&e.id) || !batch_ids.insert(&e.id) {
                audiences.push(None);
                continue;
            }
            audiences.push(plan.event(e, |kind, id| {
                Ok(s.entities.get(&(kind, id.to_owned())).cloned())
            })?);
        }
        let mut out = Appended::default();
        for (e, audience) in events.into_iter().zip(audiences) {
            if let Some(seq) = s.ids.get(&e.id) {
                out.seqs.push(*seq);
                continue;
            }
            for change in &e.changes {
                let key = (change.kind(), change.id().to_owned());
                let current = s.entities.remove(&key);
                if let Some(next) = stamped(change.apply_to(current), audience.as_deref()) {
                    s.entities.insert(key, next);
                }
            }
            s.head += 1;
            let head = s.head;
            s.ids.insert(e.id.clone(), head);
            let frame = EventFrame {
                seq: s.head,
                id: e.id,
                stream: tenant.to_owned(),
                event_type: e.event_type,
                ts: e.ts,
                data: e.data,
                user: audience,
            };
            s.log.push_back(frame.clone());
            out.seqs.push(frame.seq);
            out.frames.push(frame);
        }
        while s.log.len() as u64 > self.retain {
            if let Some(old) = s.log.pop_front() {
                s.ids.remove(&old.id);
            }
        }
        Ok(out)
    }

    fn read(&self, tenant: &str, after: u64, limit: usize) -> Result<EventRange, StoreError> {
        let s = self.stream(tenant)?;
        let s = s.read().map_err(|_| StoreError::Poisoned)?;
        let info = s.info(tenant);
        let skip = after.saturating_sub(info.first - 1).min(s.log.len() as u64) as usize;
        let events = s.log.iter().skip(skip).take(limit).cloned().collect();
        Ok(EventRange { info, events })
    }

    fn snapshot(&self, tenant: &str) -> Result<Snapshot, StoreError> {
        let s = self.stream(tenant)?;
        let s = s.read().map_err(|_| StoreError::Poisoned)?;
        Ok(Snapshot {
            stream: tenant.to_owned(),
            epoch: s.epoch.clone(),
            seq: s.head,
            entities: s
                .entities
                .iter()
                .map(|((kind, id), data)| Entity {
                    kind: *kind,
                    id: id.clone(),
                    data: data.clone(),
                })
                .collect(),
        })
    }

    fn entity(
        &self,
        tenant: &str,
        kind: EntityKind,
        id: &str,
    ) -> Result<Option<Object>, StoreError> {
        let s = self.stream(tenant)?;
        let s = s.read().map_err(|_| StoreError::Poisoned)?;
        Ok(s.entities.get(&(kind, id.to_owned())).cloned())
    }

    fn streams(&self) -> Result<Vec<StreamInfo>, StoreError> {
        let all = self.streams.read().map_err(|_| StoreError::Poisoned)?;
        let mut out = Vec::with_capacity(all.len());
        for (name, s) in all.iter() {
            out.push(s.read().map_err(|_| StoreError::Poisoned)?.info(name));
        }
        out.sort_by(|a, b| a.stream.cmp(&b.stream));
        Ok(out)
    }
}
