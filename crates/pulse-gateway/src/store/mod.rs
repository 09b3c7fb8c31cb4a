//! Per-tenant event logs and the materialised state snapshots are served from.
//!
//! A [`LogStore`] keeps, for every tenant (= stream):
//! - an ordered log of events with `seq` 1, 2, 3, … (no gaps, never reused within an
//!   epoch), of which the newest `retain` are kept;
//! - an epoch, a random string chosen when the tenant's log is created. The memory
//!   backend starts every process with new epochs; the SQLite backend keeps them;
//! - the entities obtained by applying every event's [`Change`]s in seq order.
//!
//! Invariants every backend upholds (checked by the shared suite in `suite.rs`):
//! - [`LogStore::append`] of a batch is atomic: all its events and their entity
//!   changes are visible together or not at all, and the call returns only after
//!   they are committed;
//! - [`LogStore::append_group`] of several batches (group commit: the hub's
//!   concurrent ingest requests) gives every batch the result it would get from
//!   appends one after another in the group's order: each batch is atomic on its
//!   own (a refused one writes nothing and the others are stored), seqs follow
//!   the order, and the call returns only after all of them are committed;
//! - [`LogStore::snapshot`] and [`LogStore::read`] are consistent: the entities of a
//!   snapshot reflect exactly the events up to its `seq`;
//! - reading a tenant that has no log yet creates an empty one (head 0) with its epoch;
//! - appends are idempotent by event id: an event whose id is already in the log
//!   (or earlier in the same batch) is not stored again, and its seq in the answer is
//!   the one it was first stored with. The window is the retention: an id whose event
//!   was trimmed is new again.
//!
//! - events addressed to one user (see [`NewEvent::user`] and "Events addressed to
//!   one user" in `docs/protocol.md`): an event's audience is its `user` when given,
//!   otherwise the audience of the existing entities its changes touch (so a
//!   mutation of a user's entity goes to that user only); an entity takes the
//!   audience of the event that writes it. An append whose event would change the
//!   audience of an existing entity (a user's event touching a shared entity or
//!   another user's, or an event touching entities of different audiences) is
//!   refused whole with [`StoreError::Audience`]. Every backend plans audiences with
//!   [`AudiencePlan`] and keeps an entity's audience inside its stored JSON under
//!   [`AUDIENCE_FIELD`]; [`view`] and [`strip`] take it out again before anything
//!   leaves the store module's callers (snapshots, mutations).
//!
//! - refresh-token sessions (see [`RefreshSession`]): a family is created at login
//!   with its first token id; [`LogStore::session_rotate`] is atomic (one winner
//!   when two nodes see the same token), replaces the family's current token id
//!   only when the presented one is current, and deletes the whole family when an
//!   older one is presented (reuse: the token was stolen or replayed). An expired
//!   family is as good as gone. The memory store loses sessions at restart (every
//!   refresh token is then refused: log in again); SQLite and Redis keep them, and
//!   Redis shares them between the nodes of a cluster.
//!
//! - idempotency answers: [`LogStore::idempotent_put`] keeps the first answer to a
//!   mutation sent with an `Idempotency-Key`, per tenant and key, until it expires;
//!   a second put of the same key keeps the first answer.
//!   [`LogStore::idempotent_claim`] lets one request at a time serve a key
//!   across the nodes that share a store (a claim expires, so a node that died
//!   mid-request does not hold a key for ever).
//!
//! Stores are synchronous and may block (disk or network I/O): async callers use
//! `tokio::task::spawn_blocking`. The memory and SQLite stores need appends to one
//! tenant serialised by the caller (the [`crate::hub::Hub`] holds a writer lock per
//! tenant); the Redis store is shared by several processes and serialises appends
//! itself (see `redis.rs`).

use pulse_protocol::domain::{Entity, EntityKind, Object};
use pulse_protocol::frame::EventFrame;
use pulse_protocol::rest::Snapshot;
use pulse_protocol::Change;
use serde_json::Value;
use std::collections::HashMap;

mod memory;
mod redis;
mod sqlite;
#[cfg(test)]
mod suite;

pub use self::redis::RedisStore;
pub use memory::MemoryStore;
pub use sqlite::SqliteStore;

/// What one [`LogStore::append`] did.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Appended {
    /// The events this call stored, in seq order (the ones to publish).
    pub frames: Vec<EventFrame>,
    /// For every event of the batch, in order, its seq: a new one, or for an id
    /// already in the log (or earlier in the batch) the seq it was first stored with.
    pub seqs: Vec<u64>,
}

/// An event ready to be appended: validated, with its changes computed.
#[derive(Debug, Clone, PartialEq)]
pub struct NewEvent {
    /// Event id.
    pub id: String,
    /// Event type (`approval.created`…).
    pub event_type: String,
    /// Accept time, ms since the Unix epoch.
    pub ts: i64,
    /// Payload.
    pub data: Value,
    /// What it does to the entities (from [`pulse_protocol::changes_for`]).
    pub changes: Vec<Change>,
    /// The one user it is addressed to (a token `sub`), `None`: everyone of the
    /// tenant (unless it touches a user's entity, see the module docs).
    pub user: Option<String>,
}

impl NewEvent {
    /// Validate `event_type`/`data` with [`pulse_protocol::changes_for`] and build the
    /// event (a fresh UUID when `id` is `None`, accept time `ts`).
    pub fn new(
        event_type: &str,
        data: Value,
        id: Option<String>,
        ts: i64,
    ) -> Result<NewEvent, pulse_protocol::domain::DomainError> {
        let changes = pulse_protocol::changes_for(event_type, &data, ts)?;
        Ok(NewEvent {
            id: id.unwrap_or_else(|| uuid::Uuid::new_v4().to_string()),
            event_type: event_type.to_owned(),
            ts,
            data,
            changes,
            user: None,
        })
    }

    /// This event addressed to `user` only (`None`: to everyone). An empty name
    /// counts as none.
    pub fn for_user(mut self, user: Option<String>) -> NewEvent {
        self.user = user.filter(|u| !u.is_empty());
        self
    }
}

/// Position of a stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamInfo {
    /// The stream (= tenant).
    pub stream: String,
    /// Its epoch.
    pub epoch: String,
    /// Highest seq (0 when empty).
    pub head: u64,
    /// Lowest seq still in the log (`head + 1` when the log holds nothing).
    pub first: u64,
}

impl StreamInfo {
    /// Whether the events after `since` can all still be read from the log.
    pub fn can_replay_after(&self, since: u64) -> bool {
        since <= self.head && since + 1 >= self.first
    }
}

/// Events read from a log together with the stream position they were read at.
#[derive(Debug, Clone, PartialEq)]
pub struct EventRange {
    /// The stream when the events were read.
    pub info: StreamInfo,
    /// Events with seq > the requested `after`, in order (starting at `info.first`
    /// when `after` is older than the log).
    pub events: Vec<EventFrame>,
}

/// A storage failure.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// SQLite said no.
    #[error("sqlite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// Stored data could not be read back.
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    /// A lock was poisoned by a panic in another thread.
    #[error("store lock poisoned")]
    Poisoned,
    /// Redis refused a command.
    #[error("redis: {0}")]
    Redis(String),
    /// The store cannot be reached now (connection refused, dropped, timed out):
    /// nothing was written; try again later.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// The batch would change the audience of an existing entity (see the module
    /// docs); nothing was written.
    #[error("{0}")]
    Audience(String),
    /// Other writers kept moving the log under an append, this many times.
    #[error("append gave up after {0} attempts: other writers kept appending")]
    Contended(usize),
}

/// Storage of event logs and materialised entities, per tenant. See the module docs
/// for the contract.
pub trait LogStore: Send + Sync + 'static {
    /// Short name for logs and metrics (`memory`, `sqlite`).
    fn backend(&self) -> &'static str;

    /// Position of `tenant`'s stream (created empty if missing).
    fn info(&self, tenant: &str) -> Result<StreamInfo, StoreError>;

    /// Append `events` to `tenant`'s log in one transaction, applying their changes
    /// (skipping events whose id is already in the log), then drop events beyond
    /// the retention.
    fn append(&self, tenant: &str, events: Vec<NewEvent>) -> Result<Appended, StoreError>;

    /// Append several batches to `tenant`'s log, as if by one [`LogStore::append`]
    /// each in order, committed together (see the module docs): one result per
    /// batch. `Err`: nothing of the group was committed. A backend that has no
    /// cheaper way appends them one after another (the default).
    fn append_group(
        &self,
        tenant: &str,
        batches: Vec<Vec<NewEvent>>,
    ) -> Result<Vec<Result<Appended, StoreError>>, StoreError> {
        Ok(batches
            .into_iter()
            .map(|events| self.append(tenant, events))
            .collect())
    }

    /// Up to `limit` events with seq > `after`, with the stream position.
    fn read(&self, tenant: &str, after: u64, limit: usize) -> Result<EventRange, StoreError>;

    /// Every entity of `tenant` at its head seq.
    fn snapshot(&self, tenant: &str) -> Result<Snapshot, StoreError>;

    /// One entity of `tenant`.
    fn entity(
        &self,
        tenant: &str,
        kind: EntityKind,
        id: &str,
    ) -> Result<Option<Object>, StoreError>;

    /// Every stream that exists.
    fn streams(&self) -> Result<Vec<StreamInfo>, StoreError>;

    /// Store a new refresh-token family.
    fn session_start(&self, session: &RefreshSession) -> Result<(), StoreError>;

    /// Atomically: if `family` holds `presented` as its current token (and has
    /// not expired at `now`), make `next` current until `expires`; if it holds
    /// another one, delete the family. See the module docs.
    fn session_rotate(
        &self,
        family: &str,
        presented: &str,
        next: &str,
        expires: u64,
        now: u64,
    ) -> Result<Rotation, StoreError>;

    /// Delete `family`; whether it existed.
    fn session_revoke(&self, family: &str) -> Result<bool, StoreError>;

    /// Delete every family of the user `sub` of `tenant` (removed from the users
    /// file); how many there were.
    fn session_revoke_user(&self, tenant: &str, sub: &str) -> Result<u64, StoreError>;

    /// The answer kept for `key` of `tenant`, unless it expired at `now`.
    fn idempotent_get(
        &self,
        tenant: &str,
        key: &str,
        now: u64,
    ) -> Result<Option<String>, StoreError>;

    /// Keep `answer` for `key` of `tenant` until `expires` (the first put wins).
    fn idempotent_put(
        &self,
        tenant: &str,
        key: &str,
        answer: &str,
        expires: u64,
    ) -> Result<(), StoreError>;

    /// Claim `key` of `tenant` for `owner` (one request being served) for `ttl`:
    /// `true` when no other owner holds a live claim, and the claim is then
    /// `owner`'s until it is released or `ttl` passes. A store that several nodes
    /// share (Redis) makes requests with one key take turns across the nodes; for
    /// a store that one node owns (memory, SQLite) every claim succeeds, because
    /// that node's requests already take turns (`http::idempotency::InFlight`).
    fn idempotent_claim(
        &self,
        tenant: &str,
        key: &str,
        owner: &str,
        ttl: std::time::Duration,
    ) -> Result<bool, StoreError> {
        let _ = (tenant, key, owner, ttl);
        Ok(true)
    }

    /// Drop `owner`'s claim of `key` of `tenant` (another owner's claim stays).
    fn idempotent_release(&self, tenant: &str, key: &str, owner: &str) -> Result<(), StoreError> {
        let _ = (tenant, key, owner);
        Ok(())
    }

    /// Whether the store can serve now (for `/healthz`).
    fn health(&self) -> Result<(), StoreError> {
        Ok(())
    }

    /// The Redis store when other gateway nodes append to this store too: the hub
    /// then takes its live feed from the store's tail, not from its own appends.
    fn shared(&self) -> Option<&RedisStore> {
        None
    }
}

/// A refresh-token family: every refresh token of one login, of which only the
/// newest (`current`) may be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefreshSession {
    /// The family id (the `fam` claim of its tokens).
    pub family: String,
    /// The id (`jti`) of the one refresh token of the family that may be used.
    pub current: String,
    /// Whose tokens they are (`sub`).
    pub sub: String,
    /// Their tenant.
    pub tenant: String,
    /// When the family ends (the current token's `exp`), seconds since the epoch.
    pub expires: u64,
}

/// What [`LogStore::session_rotate`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rotation {
    /// The presented token was current; the family's current token is now the new
    /// one.
    Rotated,
    /// The presented token was an older one of the family: the family is revoked.
    Reused,
    /// No such family (logged out, revoked, expired, or never issued here).
    Unknown,
}

/// The rotation rule of the module docs for a family as stored (`None`: none), for
/// the backends that read and write in one transaction (the Redis script applies
/// the same rule in Lua). `Rotated` means: write `next` as current; `Reused` and an
/// expired family: delete it.
pub(crate) fn rotation_of(stored: Option<&RefreshSession>, presented: &str, now: u64) -> Rotation {
    match stored {
        None => Rotation::Unknown,
        Some(s) if s.expires <= now => Rotation::Unknown,
        Some(s) if s.current == presented => Rotation::Rotated,
        Some(_) => Rotation::Reused,
    }
}

/// A new random epoch (16 hex digits).
pub fn new_epoch() -> String {
    format!("{:016x}", rand::random::<u64>())
}

/// Current time, ms since the Unix epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// A stored value that does not read back.
pub(crate) fn corrupt(what: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(what.to_string())
}

/// An entity as a backend keeps it: its kind's name, its id and its data as JSON text.
pub(crate) fn stored_entity(kind: &str, id: String, data: &str) -> Result<Entity, StoreError> {
    Ok(Entity {
        kind: kind.parse().map_err(corrupt)?,
        id,
        data: serde_json::from_str(data).map_err(corrupt)?,
    })
}

/// The snapshot at `info`'s head, its entities in the one order every backend gives:
/// by kind, then id.
pub(crate) fn snapshot_of(info: StreamInfo, mut entities: Vec<Entity>) -> Snapshot {
    entities.sort_by(|a, b| (a.kind, &a.id).cmp(&(b.kind, &b.id)));
    Snapshot {
        stream: info.stream,
        epoch: info.epoch,
        seq: info.head,
        entities,
    }
}

/// The field of a stored entity's JSON that holds its audience (the user it belongs
/// to); absent on entities every user of the tenant sees. Never leaves the store:
/// see [`strip`] and [`view`].
pub(crate) const AUDIENCE_FIELD: &str = "\u{0}pulse_user";

/// The audience of a stored entity: `None` for a shared one.
pub(crate) fn audience_of(obj: &Object) -> Option<&str> {
    obj.get(AUDIENCE_FIELD).and_then(Value::as_str)
}

/// `obj` as stored for `audience` (the field set, or removed for everyone).
pub(crate) fn stamped(obj: Option<Object>, audience: Option<&str>) -> Option<Object> {
    obj.map(|mut o| {
        match audience {
            Some(u) => o.insert(AUDIENCE_FIELD.to_owned(), Value::from(u)),
            None => o.remove(AUDIENCE_FIELD),
        };
        o
    })
}

/// A stored entity without its audience field, and whether `viewer` may see it
/// (`viewer` `None`: a service that sees everything).
pub fn strip(mut obj: Object, viewer: Option<&str>) -> Option<Object> {
    let audience = obj.remove(AUDIENCE_FIELD);
    match (audience.as_ref().and_then(Value::as_str), viewer) {
        (Some(owner), Some(v)) if owner != v => None,
        _ => Some(obj),
    }
}

/// `snap` (from [`LogStore::snapshot`]) as `viewer` may see it: without the
/// entities of other users, and without the audience field.
pub fn view(mut snap: Snapshot, viewer: Option<&str>) -> Snapshot {
    snap.entities = std::mem::take(&mut snap.entities)
        .into_iter()
        .filter_map(|e| {
            let data = strip(e.data, viewer)?;
            Some(Entity { data, ..e })
        })
        .collect();
    snap
}

/// Whether an entity exists, and whose it is: `None` missing, `Some(None)` shared,
/// `Some(Some(user))` a user's.
type Known = Option<Option<String>>;

/// The audiences of one append's events, planned before anything is written so
/// that a refused batch writes nothing. Backends call [`AudiencePlan::event`] for
/// every event they store (not for duplicates), in order.
#[derive(Debug, Default)]
pub(crate) struct AudiencePlan {
    /// What this batch did so far to the entities it touched.
    seen: HashMap<(EntityKind, String), Known>,
}

impl AudiencePlan {
    /// The audience of `e`, given `stored` (the entity as the store holds it
    /// before this batch); remembers what `e` does for the events after it.
    pub(crate) fn event(
        &mut self,
        e: &NewEvent,
        mut stored: impl FnMut(EntityKind, &str) -> Result<Option<Object>, StoreError>,
    ) -> Result<Option<String>, StoreError> {
        let mut existing: Vec<(String, Option<String>)> = Vec::new();
        for c in &e.changes {
            let key = (c.kind(), c.id().to_owned());
            let known = match self.seen.get(&key) {
                Some(k) => k.clone(),
                None => stored(c.kind(), c.id())?.map(|o| audience_of(&o).map(str::to_owned)),
            };
            if let Some(owner) = known {
                existing.push((format!("{}/{}", c.kind().as_str(), c.id()), owner));
            }
        }
        let audience = match &e.user {
            Some(u) => {
                if let Some((what, owner)) = existing.iter().find(|(_, o)| o.as_ref() != Some(u)) {
                    return Err(StoreError::Audience(format!(
                        "event `{}` is addressed to one user but changes {what}, which {}",
                        e.id,
                        match owner {
                            Some(_) => "belongs to another user",
                            None => "every user of the tenant sees",
                        }
                    )));
                }
                Some(u.clone())
            }
            None => {
                let mut owners = existing.iter().map(|(_, o)| o);
                let first = owners.next().cloned().flatten();
                if owners.any(|o| *o != first) {
                    return Err(StoreError::Audience(format!(
                        "event `{}` changes entities of different audiences",
                        e.id
                    )));
                }
                first
            }
        };
        for c in &e.changes {
            let gone = matches!(c, Change::Delete { .. });
            let key = (c.kind(), c.id().to_owned());
            self.seen.insert(key, (!gone).then(|| audience.clone()));
        }
        Ok(audience)
    }
}
