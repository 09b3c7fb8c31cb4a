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
//! - [`LogStore::snapshot`] and [`LogStore::read`] are consistent: the entities of a
//!   snapshot reflect exactly the events up to its `seq`;
//! - reading a tenant that has no log yet creates an empty one (head 0) with its epoch.
//!
//! Stores are synchronous and may block (disk I/O): async callers use
//! `tokio::task::spawn_blocking`. Appends to one tenant must be serialised by the
//! caller (the [`crate::hub::Hub`] holds a writer lock per tenant); concurrent appends
//! to different tenants are allowed.

use pulse_protocol::domain::{Entity, EntityKind, Object};
use pulse_protocol::frame::EventFrame;
use pulse_protocol::rest::Snapshot;
use pulse_protocol::Change;
use serde_json::Value;

mod memory;
mod sqlite;
#[cfg(test)]
mod suite;

pub use memory::MemoryStore;
pub use sqlite::SqliteStore;

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
        })
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
}

/// Storage of event logs and materialised entities, per tenant. See the module docs
/// for the contract.
pub trait LogStore: Send + Sync + 'static {
    /// Short name for logs and metrics (`memory`, `sqlite`).
    fn backend(&self) -> &'static str;

    /// Position of `tenant`'s stream (created empty if missing).
    fn info(&self, tenant: &str) -> Result<StreamInfo, StoreError>;

    /// Append `events` to `tenant`'s log in one transaction, applying their changes,
    /// then drop events beyond the retention. Returns the committed frames.
    fn append(&self, tenant: &str, events: Vec<NewEvent>) -> Result<Vec<EventFrame>, StoreError>;

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

/// Sort entities the same way in every backend: by kind, then id.
pub(crate) fn sort_entities(entities: &mut [Entity]) {
    entities.sort_by(|a, b| (a.kind, &a.id).cmp(&(b.kind, &b.id)));
}
