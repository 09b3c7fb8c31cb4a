//! The local cache: entities, per-stream cursors, a bounded event log, an outbox.
//!
//! Contract every backend keeps (checked by the shared suite in [`suite`]):
//! - [`Store::apply`] applies a batch of events *and* advances the stream's cursor in
//!   one transaction: after a crash either all of it is there or none of it;
//! - [`Store::apply`] ignores events whose `seq` is not above the stored cursor of the
//!   same epoch, so an event is never applied twice;
//! - [`Store::replace_rows`] (and [`Store::replace_all`], which encodes its
//!   entities into [`SnapshotRows`] and calls it) swaps in a snapshot atomically:
//!   readers see the old state or the new one, never a mix; the cache then holds that stream only (entities
//!   carry no stream, so a cache is one stream's world: other streams' cursors and
//!   the whole event log are dropped, and one tenant's data never shows under
//!   another's);
//! - the event log keeps the newest [`EVENT_LOG_LIMIT`] events;
//! - every outbox entry records its [`Owner`] (the server and account it was
//!   queued for); the store keeps every entry whoever owns it, and only a session
//!   of the same owner sends it (`session::outbox`). An entry queued before owners
//!   were recorded (a SQLite cache of schema version 1, migrated) has no owner:
//!   it is never sent by anyone, only listed, until the user discards it (it may
//!   have been queued by any account that used this cache, and sending it as
//!   another would act in that account's name);
//! - the store never holds a credential.

use std::collections::BTreeMap;

use pulse_protocol::domain::{Change, Entity, EntityKind};
use pulse_protocol::frame::EventFrame;
use serde::{Deserialize, Serialize};

mod handle;
mod memory;
mod rows;
mod sqlite;
#[doc(hidden)]
pub mod suite;

pub use handle::StoreHandle;
pub use memory::MemoryStore;
pub use rows::{Row, SnapshotRows};
pub use sqlite::{Lost, SetAside, SqliteStore};

/// How many events the bounded event log keeps (newest first out last).
pub const EVENT_LOG_LIMIT: usize = 5_000;

/// Where a stream's client stands: the last applied seq in an epoch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cursor {
    /// The stream's epoch when `seq` was applied.
    pub epoch: String,
    /// Last applied seq (0 = nothing yet).
    pub seq: u64,
}

/// One event with the changes it makes, as handed to [`Store::apply`].
#[derive(Debug, Clone, PartialEq)]
pub struct AppliedEvent {
    /// The event as received (its `stream`, `seq`, `type`…).
    pub frame: EventFrame,
    /// What it does (may be empty: an event of an unknown type still advances the cursor).
    pub changes: Vec<Change>,
}

/// An action the user took, kept until the server has it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum Action {
    /// Approve an approval.
    Approve {
        /// Approval id.
        id: String,
        /// Optional reason.
        #[serde(default)]
        reason: Option<String>,
    },
    /// Reject an approval.
    Reject {
        /// Approval id.
        id: String,
        /// Optional reason.
        #[serde(default)]
        reason: Option<String>,
    },
    /// Answer an approval by accepting it with other arguments (a LangGraph
    /// interrupt that allows `edit`).
    Edit {
        /// Approval id.
        id: String,
        /// The arguments to act with instead (a JSON object).
        #[cfg_attr(feature = "ts", ts(type = "Record<string, unknown>"))]
        args: serde_json::Value,
    },
    /// Answer an approval in words (a LangGraph interrupt that allows `respond`).
    Respond {
        /// Approval id.
        id: String,
        /// The answer.
        text: String,
    },
    /// Move a ticket to another state/column.
    MoveTicket {
        /// Ticket id.
        id: String,
        /// Target state.
        state: String,
    },
    /// Terminate an agent.
    TerminateAgent {
        /// Agent id.
        id: String,
        /// Optional reason.
        #[serde(default)]
        reason: Option<String>,
    },
}

/// Whom a queued action belongs to: the server and the account it was queued
/// for. This is the one rule for "the same server and account": an outbox entry
/// is sent only by a session with an equal owner (`SessionConfig::owner`), and a
/// notification's button acts only while its origin's owner is current
/// (`crate::policy::reply_applies`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct Owner {
    /// The server's identity. The desktop uses its cache id (a saved server's id,
    /// `env-…` for `PULSE_SERVER`, `demo`); [`Owner::of_url`] is the default for
    /// any other caller: the base URL without its trailing `/`.
    pub server: String,
    /// The account signed in (`None`: a token without a user name, which cannot
    /// be told apart from another such token).
    pub account: Option<String>,
}

impl Owner {
    /// The owner for a server known by its URL, and `account`.
    pub fn of_url(server: &url::Url, account: Option<&str>) -> Owner {
        Owner {
            server: server.as_str().trim_end_matches('/').to_owned(),
            account: account.map(str::to_owned),
        }
    }
}

impl std::fmt::Display for Owner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.account {
            Some(a) => write!(f, "{a} on {}", self.server),
            None => f.write_str(&self.server),
        }
    }
}

/// An outbox row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct OutboxEntry {
    /// Row id, rising.
    pub id: u64,
    /// Whom it was queued for (`None`: queued before owners were recorded; never
    /// sent, see the module docs).
    pub owner: Option<Owner>,
    /// What to send.
    pub action: Action,
    /// When it was queued, ms since the Unix epoch.
    pub queued_at: i64,
    /// Last error the server gave, if a send was tried.
    pub last_error: Option<String>,
}

/// A store failure.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The cache file is not a Pulse cache or is damaged.
    #[error("the cache at {path} is damaged or not a Pulse cache ({detail}); move it aside or delete it and Pulse will rebuild it from the server")]
    Corrupt {
        /// The file.
        path: String,
        /// What SQLite said.
        detail: String,
    },
    /// There is no cache file (or it is blank) where a read-only open expected one.
    #[error("there is no Pulse cache at {path} yet; it is created by the first sync")]
    Missing {
        /// The file.
        path: String,
    },
    /// The cache was written by a newer Pulse.
    #[error("the cache schema version {found} is newer than this Pulse understands ({supported}); upgrade Pulse")]
    TooNew {
        /// Version in the file.
        found: i64,
        /// Highest version this build knows.
        supported: i64,
    },
    /// Any other SQLite error.
    #[error("cache error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// A stored value could not be decoded.
    #[error("cache value could not be decoded: {0}")]
    Decode(#[from] serde_json::Error),
    /// An outbox row holds a value this build cannot read. The row is left as it
    /// is (nothing is sent or removed) until the user discards it.
    #[error("queued action #{id} in the cache has an unreadable `{column}` ({detail}); it is kept and nothing is sent until it is discarded")]
    BadOutboxRow {
        /// The row's id.
        id: u64,
        /// The column.
        column: &'static str,
        /// What was wrong.
        detail: String,
    },
    /// A cached entity's row holds data this build cannot read (not text, or not
    /// a JSON object). The row is left as it is; a snapshot or an upsert of the
    /// same entity replaces it.
    #[error("cached {kind} `{id}` has unreadable data ({detail}); it is kept until the server sends it again (a resync replaces it)")]
    BadEntityRow {
        /// The entity's kind, as stored.
        kind: String,
        /// The entity's id.
        id: String,
        /// What was wrong.
        detail: String,
    },
}

/// Counts and cursors, for `pulsectl status` and the overview page.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StoreSummary {
    /// Entities per kind (kinds with none are absent).
    pub counts: BTreeMap<EntityKind, u64>,
    /// Cursor per stream.
    pub cursors: BTreeMap<String, Cursor>,
    /// Actions waiting to be sent.
    pub outbox: u64,
    /// Last successful sync (an applied event or snapshot), ms since the Unix epoch.
    pub last_sync_ms: Option<i64>,
}

/// The cache. Implementations: [`SqliteStore`] (durable) and [`MemoryStore`].
pub trait Store: Send {
    /// Apply `events` (all of one stream and epoch, in seq order) and set that
    /// stream's cursor to the last one applied, in one transaction. Events at or
    /// below the current cursor (same epoch) are skipped. Returns the events that
    /// were applied.
    fn apply(&mut self, epoch: &str, events: &[AppliedEvent]) -> Result<Vec<u64>, StoreError>;

    /// Replace every entity with `rows` and set `stream`'s cursor, atomically
    /// (a later row of the same kind and id wins).
    fn replace_rows(
        &mut self,
        stream: &str,
        cursor: &Cursor,
        rows: &SnapshotRows,
    ) -> Result<(), StoreError>;

    /// Replace every entity with `entities` and set `stream`'s cursor, atomically:
    /// [`Store::replace_rows`] of their rows, so both leave the same cache.
    fn replace_all(
        &mut self,
        stream: &str,
        cursor: &Cursor,
        entities: &[Entity],
    ) -> Result<(), StoreError> {
        self.replace_rows(stream, cursor, &SnapshotRows::from_entities(entities)?)
    }

    /// The cursor of `stream`, if any event or snapshot was applied.
    fn cursor(&self, stream: &str) -> Result<Option<Cursor>, StoreError>;

    /// One entity.
    fn get(&self, kind: EntityKind, id: &str) -> Result<Option<Entity>, StoreError>;

    /// Every entity of `kind`, ordered by id.
    fn list(&self, kind: EntityKind) -> Result<Vec<Entity>, StoreError>;

    /// Every entity of every kind, ordered by kind then id.
    fn all(&self) -> Result<Vec<Entity>, StoreError> {
        let mut out = Vec::new();
        for kind in EntityKind::ALL {
            out.extend(self.list(kind)?);
        }
        Ok(out)
    }

    /// The newest `limit` logged events, oldest first.
    fn recent_events(&self, limit: usize) -> Result<Vec<EventFrame>, StoreError>;

    /// Queue an action for `owner`; returns its row id.
    fn outbox_push(
        &mut self,
        owner: &Owner,
        action: &Action,
        queued_at: i64,
    ) -> Result<u64, StoreError>;

    /// Queued actions of every owner, oldest first.
    fn outbox(&self) -> Result<Vec<OutboxEntry>, StoreError>;

    /// Record the last error for a queued action.
    fn outbox_fail(&mut self, id: u64, error: &str) -> Result<(), StoreError>;

    /// Remove a queued action (sent, or given up on).
    fn outbox_remove(&mut self, id: u64) -> Result<(), StoreError>;

    /// Counts, cursors, outbox size and last sync time.
    fn summary(&self) -> Result<StoreSummary, StoreError>;

    /// The cursor of every stream: [`StoreSummary::cursors`] without the
    /// counts, which a backend may have to scan every entity for (a session
    /// reads the cursors once per batch).
    fn cursors(&self) -> Result<BTreeMap<String, Cursor>, StoreError> {
        Ok(self.summary()?.cursors)
    }
}
