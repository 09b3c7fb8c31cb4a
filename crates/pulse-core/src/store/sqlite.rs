//! Durable [`Store`] on SQLite (rusqlite, bundled).
//!
//! Invariants, on top of the [`Store`] contract:
//! - every write method is ONE `BEGIN IMMEDIATE` transaction, so a crash (even a
//!   `SIGKILL` in the middle of [`Store::apply`]) leaves the last committed state:
//!   entities and cursor move together or not at all;
//! - the database runs in WAL mode with `synchronous=NORMAL`: a process crash never
//!   loses a committed transaction; a power cut may lose the last few, which is
//!   harmless for a cache (the cursor goes back with the entities and the server
//!   replays);
//! - the file is identified by `PRAGMA application_id` ([`APPLICATION_ID`]) and its
//!   schema version by `PRAGMA user_version`; migrations live beside this module
//!   (`sqlite/NNNN_*.sql`) and run in one transaction on [`SqliteStore::open`];
//! - a file that is not SQLite, is damaged, or is another application's database is
//!   [`StoreError::Corrupt`] (naming the path) and is never modified; a schema newer
//!   than this build is [`StoreError::TooNew`] and is never modified either;
//! - [`SqliteStore::open_read_only`] never creates, migrates or writes a file;
//! - [`SqliteStore::open`] creates the file `0600` (its new folders `0700`;
//!   SQLite gives `-wal` / `-shm` the same permissions) and narrows an existing
//!   one to `0600` ([`crate::files`]);
//! - [`SqliteStore::open_or_set_aside`] moves a cache aside only when it is
//!   [`StoreError::Corrupt`], with its `-wal` and `-shm`, and says what was lost
//!   (what could still be read of it: entities and queued actions); any other
//!   failure (locked, newer schema, a full disk) leaves the files where they are;
//! - [`Store::apply`] reads each entity a batch touches at most once and writes it
//!   at most once (at the end of the transaction, and not at all when every change
//!   to it was a no-op, [`Change::is_noop_on`]); recently used entities are kept
//!   parsed in a bounded [`cache::EntityCache`] that only ever holds committed
//!   values, is cleared when another connection has committed, and is cleared by
//!   every other write of entities (a snapshot swap): any new write path must do
//!   the same;
//! - WAL checkpoints run on a [`checkpoint::Checkpointer`] thread with its own
//!   connection (PASSIVE, never blocking the writer), not in the committing
//!   thread, once the WAL holds [`checkpoint::THRESHOLD_FRAMES`] frames; the
//!   writer's own `wal_autocheckpoint` is only a backstop;
//! - an outbox row's owner is the `owner` column (JSON of [`Owner`], schema
//!   version 2); rows migrated from version 1 have none (`NULL`). A row whose
//!   owner (or action) cannot be read makes [`Store::outbox`] fail with
//!   [`StoreError::BadOutboxRow`] naming it; the row is never changed or removed
//!   by that (a read-only open of a version-1 file reads its rows as unowned);
//! - entities live in a rowid table with a unique index on `(kind, id)` (schema
//!   version 3; versions 1 and 2 kept them `WITHOUT ROWID`, which spills a 4 KB
//!   row into overflow pages); the migration copies every row as it is. A row
//!   whose data is not text or not a JSON object makes the read that meets it
//!   fail with [`StoreError::BadEntityRow`] naming it, and is never changed or
//!   removed by that (an upsert or a snapshot replaces it);
//! - the writer's page cache is [`PAGE_CACHE_KIB`] (SQLite's default, about
//!   2 MiB, when the owner asked for a small entity cache), so that one batch
//!   of large events does not spill dirty pages into the WAL mid-transaction;
//! - no table holds a credential.

use std::path::{Path, PathBuf};
use std::time::Duration;

use pulse_protocol::domain::{Change, Entity, EntityKind, Object};
use pulse_protocol::frame::EventFrame;
use rusqlite::types::Value;
use rusqlite::{params, Connection, ErrorCode, OpenFlags, OptionalExtension, TransactionBehavior};

use super::memory::{now_ms, SeqFilter};
use super::{
    Action, AppliedEvent, Cursor, OutboxEntry, Owner, SnapshotRows, Store, StoreError,
    StoreSummary, EVENT_LOG_LIMIT,
};
use cache::{EntityCache, Key};
use checkpoint::Checkpointer;
use pulse_sqlite::checkpoint;
use pulse_sqlite::text::json_text;

mod cache;

/// A damaged cache that [`SqliteStore::open_or_set_aside`] moved aside.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetAside {
    /// Where the damaged file is now (its `-wal` / `-shm` beside it).
    pub moved_to: PathBuf,
    /// What SQLite said.
    pub detail: String,
    /// What it held, as far as it could still be read (`None`: unreadable).
    pub lost: Option<Lost>,
}

/// What a set-aside cache held.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lost {
    /// Entities (reloaded from the server on the next sync).
    pub entities: u64,
    /// Actions taken offline and not yet sent: these are gone unless redone.
    pub queued_actions: u64,
}

impl SetAside {
    /// One sentence for the user.
    pub fn message(&self) -> String {
        let what = match self.lost {
            Some(l) if l.queued_actions > 0 => format!(
                "{} queued action(s) not yet sent are lost and must be redone; the {} cached item(s) reload from the server",
                l.queued_actions, l.entities
            ),
            Some(l) => format!("the {} cached item(s) reload from the server", l.entities),
            None => "its contents could not be read: any action queued offline is lost, cached items reload from the server".into(),
        };
        format!(
            "The cache was damaged ({}) and was moved to {}; {what}.",
            self.detail,
            self.moved_to.display()
        )
    }
}

/// `PRAGMA application_id` of a Pulse cache (`"PULS"` in ASCII).
const APPLICATION_ID: i32 = 0x5055_4C53;

/// Migrations, in order; migration `i` brings the schema to version `i + 1`.
const MIGRATIONS: &[&str] = &[
    include_str!("sqlite/0001_init.sql"),
    include_str!("sqlite/0002_outbox_owner.sql"),
    include_str!("sqlite/0003_entities_rowid.sql"),
];

/// The first schema version whose outbox has the `owner` column.
const OWNER_SINCE: i64 = 2;

/// Highest schema version this build understands.
const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// SQLite's page cache for the writer, in KiB (`PRAGMA cache_size = -N`). SQLite's
/// default, [`SQLITE_DEFAULT_CACHE_KIB`], is smaller than one batch of 256 large
/// (~4 KB) events dirties (two or three pages each, with the log): the pager then
/// spills dirty pages into the WAL in the middle of the transaction and reads
/// them back, and 500 large entities no longer fit beside the log's pages. The
/// pages are allocated as they are used, so a small cache never takes this much.
const PAGE_CACHE_KIB: i64 = 8 * 1024;

/// SQLite's default page cache (`SQLITE_DEFAULT_CACHE_SIZE`, -2000), in KiB.
const SQLITE_DEFAULT_CACHE_KIB: i64 = 2000;

/// How long a statement waits for another connection's lock before failing.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// A [`Store`] in a SQLite file (see the module docs).
#[derive(Debug)]
pub struct SqliteStore {
    // Dropped before `conn` (fields drop in order): its thread closes its
    // connection first, so `conn` is the last one and its close cleans up the WAL.
    checkpointer: Option<Checkpointer>,
    conn: Connection,
    path: PathBuf,
    cache: EntityCache,
    /// `PRAGMA data_version` when `cache` was last known to match the file.
    data_version: Option<i64>,
    /// Whether the outbox has its `owner` column (false only for a read-only
    /// open of a version-1 file).
    owners: bool,
}

/// What the file's header says it is.
enum Identity {
    /// No schema at all: a new or empty file.
    Blank,
    /// A Pulse cache at this schema version.
    Pulse(i64),
}

impl SqliteStore {
    /// Open (creating and migrating it if needed) the cache at `path`.
    ///
    /// The parent directory must exist. Errors: [`StoreError::Corrupt`] for a file
    /// that is not a Pulse cache or is damaged, [`StoreError::TooNew`] for one written
    /// by a newer Pulse; in both cases the file is left untouched.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        let path = path.as_ref();
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        crate::files::create_private_file(path).map_err(|e| {
            StoreError::Sqlite(rusqlite::Error::SqliteFailure(
                rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_CANTOPEN),
                Some(format!("cannot create {}: {e}", path.display())),
            ))
        })?;
        let conn = Connection::open_with_flags(path, flags)?;
        let mut store = SqliteStore::bare(conn, path);
        store.owners = true;
        store.checked(|s| s.prepare_read_write())?;
        match Checkpointer::start(path, &store.conn) {
            Ok(c) => store.checkpointer = Some(c),
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "no background checkpointer; SQLite checkpoints on commit");
            }
        }
        Ok(store)
    }

    /// [`SqliteStore::open`]; when the file is [`StoreError::Corrupt`] (only
    /// then), move it and its `-wal` / `-shm` aside (`NAME.bad-MS`, `-wal` and
    /// `-shm` beside it), start a new cache, and say what was lost. Any other
    /// error is returned with the files left in place.
    pub fn open_or_set_aside(
        path: impl AsRef<Path>,
    ) -> Result<(SqliteStore, Option<SetAside>), StoreError> {
        let path = path.as_ref();
        // Probe the main file without SQLite touching it or its side files (a
        // read-write open of a damaged file can delete its -wal / -shm).
        let probed = if path.is_file() {
            immutable_uri(path).map(|uri| {
                let flags = OpenFlags::SQLITE_OPEN_READ_ONLY
                    | OpenFlags::SQLITE_OPEN_NO_MUTEX
                    | OpenFlags::SQLITE_OPEN_URI;
                let store = Connection::open_with_flags(uri, flags)
                    .map(|conn| SqliteStore::bare(conn, path));
                match store {
                    Err(e) => Err(StoreError::Sqlite(e)),
                    Ok(s) => s
                        .checked(|s| match s.identity()? {
                            Identity::Blank => Ok(()),
                            Identity::Pulse(_) => s.quick_check(),
                        })
                        .map(|_| s),
                }
            })
        } else {
            None
        };
        let (detail, lost) = match probed {
            Some(Err(StoreError::Corrupt { detail, .. })) => (detail, None),
            Some(Ok(s)) => match SqliteStore::open(path) {
                Ok(opened) => return Ok((opened, None)),
                // Damaged in a way only a full open sees: what the probe can
                // still read of it is what is lost.
                Err(StoreError::Corrupt { detail, .. }) => (
                    detail,
                    s.summary().ok().map(|s| Lost {
                        entities: s.counts.values().sum(),
                        queued_actions: s.outbox,
                    }),
                ),
                Err(e) => return Err(e),
            },
            _ => match SqliteStore::open(path) {
                Ok(opened) => return Ok((opened, None)),
                Err(StoreError::Corrupt { detail, .. }) => (detail, None),
                Err(e) => return Err(e),
            },
        };
        let mut moved_to = side_file(path, &format!(".bad-{}", now_ms()));
        if moved_to.exists() {
            moved_to = side_file(&moved_to, "-1");
        }
        std::fs::rename(path, &moved_to).map_err(|e| StoreError::Corrupt {
            path: path.display().to_string(),
            detail: format!("{detail}; moving it aside failed: {e}"),
        })?;
        for suffix in ["-wal", "-shm"] {
            let side = side_file(path, suffix);
            if side.exists() {
                let _ = std::fs::rename(&side, side_file(&moved_to, suffix));
            }
        }
        let store = SqliteStore::open(path)?;
        Ok((
            store,
            Some(SetAside {
                moved_to,
                detail,
                lost,
            }),
        ))
    }

    /// Open an existing cache for reading only (`pulsectl status`).
    ///
    /// Never creates, migrates or writes the file; a missing or blank file is
    /// [`StoreError::Missing`]. Writes through the returned store fail.
    ///
    /// While a writer has the cache open its `-wal` and `-shm` side files exist and
    /// the reader shares them (seeing every committed transaction). With no writer
    /// around they do not exist, and SQLite would create them even for a read-only
    /// connection; the file is then opened `immutable` instead, which creates nothing.
    pub fn open_read_only(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        let path = path.as_ref();
        let missing = || StoreError::Missing {
            path: path.display().to_string(),
        };
        if !path.is_file() {
            return Err(missing());
        }
        let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = if side_file(path, "-wal").exists() && side_file(path, "-shm").exists() {
            Connection::open_with_flags(path, flags)?
        } else if let Some(uri) = immutable_uri(path) {
            Connection::open_with_flags(uri, flags | OpenFlags::SQLITE_OPEN_URI)?
        } else {
            // Not expressible as a file URI (should not happen): plain read-only open.
            Connection::open_with_flags(path, flags)?
        };
        let mut store = SqliteStore::bare(conn, path);
        let version = store.checked(|s| {
            s.conn.busy_timeout(BUSY_TIMEOUT)?;
            match s.identity()? {
                Identity::Blank => Err(missing()),
                Identity::Pulse(v) if v > SCHEMA_VERSION => Err(StoreError::TooNew {
                    found: v,
                    supported: SCHEMA_VERSION,
                }),
                Identity::Pulse(v) => s.quick_check().map(|_| v),
            }
        })?;
        store.owners = version >= OWNER_SINCE;
        Ok(store)
    }

    /// Keep at most `n` recently used entities parsed (the default keeps up to
    /// 8,192; 0 keeps none). A parsed entity costs a few times its JSON text, so a
    /// process that must stay small (`pulsectl watch`) asks for fewer; the cache's
    /// contents never change what the store returns, only how often it asks SQLite.
    ///
    /// Fewer than the default also keeps SQLite's page cache at SQLite's own
    /// default (about 2 MiB) instead of [`PAGE_CACHE_KIB`]: both are what a
    /// process trades for memory.
    pub fn set_entity_cache_entries(&mut self, n: usize) {
        self.cache.set_max_entries(n);
        let kib = if n < cache::MAX_ENTRIES {
            SQLITE_DEFAULT_CACHE_KIB
        } else {
            PAGE_CACHE_KIB
        };
        if let Err(e) = self.conn.pragma_update(None, "cache_size", -kib) {
            tracing::warn!(path = %self.path.display(), error = %e, "cannot set the cache's page cache size");
        }
    }

    /// The file this store lives in.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A store on `conn`, with no checkpointer and an empty cache.
    fn bare(conn: Connection, path: &Path) -> SqliteStore {
        SqliteStore {
            checkpointer: None,
            conn,
            path: path.to_owned(),
            cache: EntityCache::default(),
            data_version: None,
            owners: false,
        }
    }

    fn prepare_read_write(&self) -> Result<(), StoreError> {
        let conn = &self.conn;
        conn.busy_timeout(BUSY_TIMEOUT)?;
        // Decide what the file is before writing anything to it.
        let identity = self.identity()?;
        if let Identity::Pulse(v) = identity {
            if v > SCHEMA_VERSION {
                return Err(StoreError::TooNew {
                    found: v,
                    supported: SCHEMA_VERSION,
                });
            }
            self.quick_check()?;
        }
        let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
        if !mode.eq_ignore_ascii_case("wal") {
            tracing::warn!(path = %self.path.display(), %mode, "cache is not in WAL mode");
        }
        conn.execute_batch("PRAGMA synchronous = NORMAL; PRAGMA temp_store = MEMORY;")?;
        conn.pragma_update(None, "cache_size", -PAGE_CACHE_KIB)?;
        conn.set_prepared_statement_cache_capacity(32);
        self.migrate()
    }

    /// Bring the schema to [`SCHEMA_VERSION`], in one transaction.
    fn migrate(&self) -> Result<(), StoreError> {
        let tx = rusqlite::Transaction::new_unchecked(&self.conn, TransactionBehavior::Immediate)?;
        // Read again under the write lock: another process may have migrated meanwhile.
        let from = match self.identity()? {
            Identity::Blank => 0,
            Identity::Pulse(v) if v > SCHEMA_VERSION => {
                return Err(StoreError::TooNew {
                    found: v,
                    supported: SCHEMA_VERSION,
                })
            }
            Identity::Pulse(v) => v,
        };
        if from == SCHEMA_VERSION {
            return Ok(());
        }
        for (i, sql) in MIGRATIONS.iter().enumerate().skip(from as usize) {
            tx.execute_batch(sql)?;
            tracing::info!(path = %self.path.display(), version = i + 1, "cache schema migrated");
        }
        tx.execute_batch(&format!(
            "PRAGMA application_id = {APPLICATION_ID}; PRAGMA user_version = {SCHEMA_VERSION};"
        ))?;
        tx.commit()?;
        Ok(())
    }

    /// What the header and schema say this file is.
    fn identity(&self) -> Result<Identity, StoreError> {
        let conn = &self.conn;
        let app_id: i32 = conn.query_row("PRAGMA application_id", [], |r| r.get(0))?;
        let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
        let objects: i64 =
            conn.query_row("SELECT count(*) FROM sqlite_schema", [], |r| r.get(0))?;
        match app_id {
            APPLICATION_ID => Ok(Identity::Pulse(version)),
            0 if objects == 0 && version == 0 => Ok(Identity::Blank),
            _ => Err(self.corrupt(format!(
                "not a Pulse cache: application_id {app_id:#x}, user_version {version}, {objects} schema objects"
            ))),
        }
    }

    /// `PRAGMA quick_check`: reads every page once, catches damaged files at open.
    fn quick_check(&self) -> Result<(), StoreError> {
        let verdict: String = self
            .conn
            .query_row("PRAGMA quick_check(1)", [], |r| r.get(0))?;
        if verdict == "ok" {
            Ok(())
        } else {
            Err(self.corrupt(verdict))
        }
    }

    fn corrupt(&self, detail: impl Into<String>) -> StoreError {
        StoreError::Corrupt {
            path: self.path.display().to_string(),
            detail: detail.into(),
        }
    }

    /// Run `f`, turning SQLite's "corrupt" and "not a database" errors into
    /// [`StoreError::Corrupt`] naming this file.
    fn checked<T>(&self, f: impl FnOnce(&Self) -> Result<T, StoreError>) -> Result<T, StoreError> {
        f(self).map_err(|e| self.classify(e))
    }

    fn checked_mut<T>(
        &mut self,
        f: impl FnOnce(&mut Self) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        f(self).map_err(|e| self.classify(e))
    }

    fn classify(&self, e: StoreError) -> StoreError {
        match e {
            StoreError::Sqlite(rusqlite::Error::SqliteFailure(err, msg))
                if matches!(
                    err.code,
                    ErrorCode::DatabaseCorrupt | ErrorCode::NotADatabase
                ) =>
            {
                self.corrupt(msg.unwrap_or_else(|| err.to_string()))
            }
            other => other,
        }
    }

    fn parse_kind(&self, kind: &str) -> Result<EntityKind, StoreError> {
        kind.parse()
            .map_err(|_| self.corrupt(format!("unknown entity kind `{kind}` in the cache")))
    }

    /// One transaction for the batch. Each entity the batch touches is read at
    /// most once (from [`EntityCache`] when it is there, else from SQLite), changed
    /// in memory by every change of the batch in order, and written at most once,
    /// at the end, only if some change was not a no-op ([`Change::is_noop_on`]).
    /// The cache learns the batch's entities only after the commit.
    fn apply_tx(&mut self, epoch: &str, events: &[AppliedEvent]) -> Result<Vec<u64>, StoreError> {
        let now = now_ms();
        let SqliteStore {
            conn,
            cache,
            data_version,
            checkpointer,
            ..
        } = self;
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        // Another connection committed since our last transaction: the cache may be stale.
        let version: i64 = tx.query_row("PRAGMA data_version", [], |r| r.get(0))?;
        if *data_version != Some(version) {
            cache.clear();
            *data_version = Some(version);
        }
        let mut applied = Vec::with_capacity(events.len());
        let mut batch = Touched::default();
        // One buffer for the batch's JSON (event-log frames and entity rows).
        let mut buf = Vec::new();
        let result = (|| -> Result<(), StoreError> {
            let mut read_cursor =
                tx.prepare_cached("SELECT epoch, seq FROM cursors WHERE stream = ?1")?;
            let mut read =
                tx.prepare_cached("SELECT data FROM entities WHERE kind = ?1 AND id = ?2")?;
            let mut log = tx
                .prepare_cached("INSERT INTO event_log (stream, seq, frame) VALUES (?1, ?2, ?3)")?;
            let mut filter = SeqFilter::default();
            for event in events {
                let frame = &event.frame;
                let slot = filter.slot(epoch, &frame.stream, || {
                    read_cursor
                        .query_row([&frame.stream], |r| {
                            Ok(Cursor {
                                epoch: r.get(0)?,
                                seq: r.get(1)?,
                            })
                        })
                        .optional()
                })?;
                if !filter.admit(slot, frame.seq) {
                    continue;
                }
                for change in &event.changes {
                    let key = (change.kind(), change.id().to_owned());
                    let needs_current =
                        matches!(change, Change::Patch { .. } | Change::Append { .. });
                    let at = batch.slot(key, needs_current, cache, |(kind, id)| {
                        read.query_row(params![kind.as_str(), id], |r| r.get::<_, Value>(0))
                            .optional()?
                            .map(|data| decode_data(kind.as_str(), id, data))
                            .transpose()
                    })?;
                    batch.change(at, change);
                }
                log.execute(params![
                    frame.stream,
                    frame.seq,
                    json_text(&mut buf, frame)?
                ])?;
                applied.push(frame.seq);
            }
            batch.write(&tx, &mut buf)?;
            if !applied.is_empty() {
                let mut set_cursor = tx.prepare_cached(SET_CURSOR)?;
                for (stream, seq) in filter.advanced() {
                    set_cursor.execute(params![stream, epoch, seq, now])?;
                }
                tx.prepare_cached(SET_LAST_SYNC)?.execute([now])?;
                tx.prepare_cached(TRIM_LOG)?
                    .execute([EVENT_LOG_LIMIT as i64])?;
            }
            Ok(())
        })();
        // On an error the transaction rolls back as it drops; the entities taken
        // out of the cache stay out (a miss), so the cache never holds an
        // uncommitted value.
        result?;
        tx.commit()?;
        batch.into_cache(cache);
        if let Some(c) = checkpointer {
            c.nudge();
        }
        Ok(applied)
    }

    fn replace_tx(
        &mut self,
        stream: &str,
        cursor: &Cursor,
        rows: &SnapshotRows,
    ) -> Result<(), StoreError> {
        let now = now_ms();
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        {
            tx.execute("DELETE FROM entities", [])?;
            let mut write = tx.prepare_cached(
                "INSERT INTO entities (kind, id, data) VALUES (?1, ?2, ?3)
                 ON CONFLICT (kind, id) DO UPDATE SET data = excluded.data",
            )?;
            for row in rows.iter() {
                write.execute(params![row.kind.as_str(), row.id, row.data])?;
            }
            tx.prepare_cached(SET_CURSOR)?.execute(params![
                stream,
                cursor.epoch,
                cursor.seq,
                now
            ])?;
            // The cache now holds this stream's world only (entities carry no stream).
            tx.execute("DELETE FROM cursors WHERE stream <> ?1", [stream])?;
            tx.execute("DELETE FROM event_log", [])?;
            tx.prepare_cached(SET_LAST_SYNC)?.execute([now])?;
        }
        tx.commit()?;
        Ok(())
    }

    fn entities_where(&self, kind: Option<EntityKind>) -> Result<Vec<Entity>, StoreError> {
        let (sql, arg) = match kind {
            Some(k) => (
                "SELECT kind, id, data FROM entities WHERE kind = ?1 ORDER BY id",
                Some(k.as_str()),
            ),
            None => ("SELECT kind, id, data FROM entities", None),
        };
        let mut stmt = self.conn.prepare_cached(sql)?;
        let rows = match arg {
            Some(a) => stmt
                .query_map([a], row_triple)?
                .collect::<Result<Vec<_>, _>>()?,
            None => stmt
                .query_map([], row_triple)?
                .collect::<Result<Vec<_>, _>>()?,
        };
        rows.into_iter()
            .map(|(kind, id, data)| {
                let data = decode_data(&kind, &id, data)?.0;
                Ok(Entity {
                    kind: self.parse_kind(&kind)?,
                    id,
                    data,
                })
            })
            .collect()
    }
}

/// The entities one [`Store::apply`] batch touches, in the order first touched.
#[derive(Default)]
struct Touched {
    slots: Vec<Slot>,
    index: std::collections::HashMap<Key, usize>,
}

struct Slot {
    key: Key,
    /// The entity as the batch has it so far (`None`: absent). Meaningful only
    /// when `known`.
    state: Option<Object>,
    /// Whether `state` is the entity's real value (read, or set by a change);
    /// an upsert or delete needs no read, so its slot may start unknown.
    known: bool,
    /// Length of the JSON text `state` was read as, or `None` once changed.
    bytes: Option<usize>,
    /// Whether the row must be written (some change was not a no-op).
    dirty: bool,
}

impl Touched {
    /// Index of `key`'s slot. A new slot starts from the cache, else (when
    /// `needs_current`) from `read`, else unknown.
    fn slot(
        &mut self,
        key: Key,
        needs_current: bool,
        cache: &mut EntityCache,
        read: impl FnOnce(&Key) -> Result<Option<(Object, usize)>, StoreError>,
    ) -> Result<usize, StoreError> {
        // An existing slot is known: only a first change leaves a slot unknown,
        // and applying it makes it known.
        if let Some(&i) = self.index.get(&key) {
            return Ok(i);
        }
        let (state, known, bytes) = match cache.take(&key) {
            Some((obj, bytes)) => (Some(obj), true, Some(bytes)),
            None if needs_current => match read(&key)? {
                Some((obj, bytes)) => (Some(obj), true, Some(bytes)),
                None => (None, true, None),
            },
            None => (None, false, None),
        };
        let i = self.slots.len();
        self.index.insert(key.clone(), i);
        self.slots.push(Slot {
            key,
            state,
            known,
            bytes,
            dirty: false,
        });
        Ok(i)
    }

    /// Apply `change` to slot `at` (the one of its entity).
    fn change(&mut self, at: usize, change: &Change) {
        let slot = &mut self.slots[at];
        if slot.known && change.is_noop_on(slot.state.as_ref()) {
            return;
        }
        slot.state = change.apply_to(slot.state.take());
        slot.known = true;
        slot.bytes = None;
        slot.dirty = true;
    }

    /// Write every dirty entity (or delete it); `buf`: scratch space for the JSON.
    fn write(
        &mut self,
        tx: &rusqlite::Transaction<'_>,
        buf: &mut Vec<u8>,
    ) -> Result<(), StoreError> {
        let mut write = tx.prepare_cached(
            "INSERT INTO entities (kind, id, data) VALUES (?1, ?2, ?3)
             ON CONFLICT (kind, id) DO UPDATE SET data = excluded.data",
        )?;
        let mut delete = tx.prepare_cached("DELETE FROM entities WHERE kind = ?1 AND id = ?2")?;
        for slot in self.slots.iter_mut().filter(|s| s.dirty) {
            let (kind, id) = (&slot.key.0, &slot.key.1);
            match &slot.state {
                Some(obj) => {
                    let text = json_text(buf, obj)?;
                    write.execute(params![kind.as_str(), id, text])?;
                    slot.bytes = Some(text.len());
                }
                None => {
                    delete.execute(params![kind.as_str(), id])?;
                }
            }
        }
        Ok(())
    }

    /// After the commit: the cache learns what the batch read and wrote.
    fn into_cache(self, cache: &mut EntityCache) {
        for slot in self.slots {
            match (slot.state, slot.bytes) {
                (Some(obj), Some(bytes)) => cache.put(slot.key, obj, bytes),
                // Deleted or absent (or never known): nothing to keep.
                _ => cache.remove(&slot.key),
            }
        }
    }
}

/// `path` with `suffix` appended to its file name (`cache.db` → `cache.db-wal`).
fn side_file(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

/// `file:///…/cache.db?mode=ro&immutable=1`, percent-encoded.
fn immutable_uri(path: &Path) -> Option<String> {
    let absolute = std::path::absolute(path).ok()?;
    let mut url = url::Url::from_file_path(absolute).ok()?;
    url.set_query(Some("mode=ro&immutable=1"));
    Some(url.to_string())
}

const SET_CURSOR: &str =
    "INSERT INTO cursors (stream, epoch, seq, updated_at) VALUES (?1, ?2, ?3, ?4)
     ON CONFLICT (stream) DO UPDATE SET
        epoch = excluded.epoch, seq = excluded.seq, updated_at = excluded.updated_at";

const SET_LAST_SYNC: &str = "INSERT INTO meta (key, value) VALUES ('last_sync_ms', ?1)
     ON CONFLICT (key) DO UPDATE SET value = excluded.value";

/// Delete everything older than the newest `?1` rows. `pos` has no gaps (rows
/// get `max(pos) + 1`, and are only ever deleted oldest first or all at once), so
/// the newest `?1` are those above `max(pos) - ?1`: two index lookups, where
/// `ORDER BY pos DESC LIMIT 1 OFFSET ?1` stepped over `?1` rows every batch.
const TRIM_LOG: &str = "DELETE FROM event_log WHERE pos <= (SELECT max(pos) FROM event_log) - ?1";

fn row_triple(r: &rusqlite::Row<'_>) -> rusqlite::Result<(String, String, Value)> {
    Ok((r.get(0)?, r.get(1)?, r.get(2)?))
}

/// An entity row's `data` column as its object and the length of its text, or
/// [`StoreError::BadEntityRow`] naming the row (the one place rows are decoded).
fn decode_data(kind: &str, id: &str, data: Value) -> Result<(Object, usize), StoreError> {
    let bad = |detail: String| StoreError::BadEntityRow {
        kind: kind.to_owned(),
        id: id.to_owned(),
        detail,
    };
    match data {
        Value::Text(text) => serde_json::from_str::<Object>(&text)
            .map(|obj| (obj, text.len()))
            .map_err(|e| bad(format!("not a JSON object: {e}"))),
        Value::Null => Err(bad("NULL".into())),
        Value::Integer(_) | Value::Real(_) => Err(bad("a number, not text".into())),
        Value::Blob(b) => Err(bad(format!("a {}-byte blob, not text", b.len()))),
    }
}

impl Store for SqliteStore {
    fn apply(&mut self, epoch: &str, events: &[AppliedEvent]) -> Result<Vec<u64>, StoreError> {
        if events.is_empty() {
            return Ok(Vec::new());
        }
        self.checked_mut(|s| s.apply_tx(epoch, events))
    }

    fn replace_rows(
        &mut self,
        stream: &str,
        cursor: &Cursor,
        rows: &SnapshotRows,
    ) -> Result<(), StoreError> {
        // The entity cache follows `apply` only.
        self.cache.clear();
        self.checked_mut(|s| s.replace_tx(stream, cursor, rows))
    }

    fn cursor(&self, stream: &str) -> Result<Option<Cursor>, StoreError> {
        self.checked(|s| {
            Ok(s.conn
                .prepare_cached("SELECT epoch, seq FROM cursors WHERE stream = ?1")?
                .query_row([stream], |r| {
                    Ok(Cursor {
                        epoch: r.get(0)?,
                        seq: r.get(1)?,
                    })
                })
                .optional()?)
        })
    }

    fn get(&self, kind: EntityKind, id: &str) -> Result<Option<Entity>, StoreError> {
        self.checked(|s| {
            let data: Option<Value> = s
                .conn
                .prepare_cached("SELECT data FROM entities WHERE kind = ?1 AND id = ?2")?
                .query_row(params![kind.as_str(), id], |r| r.get(0))
                .optional()?;
            data.map(|d| {
                Ok(Entity {
                    kind,
                    id: id.to_owned(),
                    data: decode_data(kind.as_str(), id, d)?.0,
                })
            })
            .transpose()
        })
    }

    fn list(&self, kind: EntityKind) -> Result<Vec<Entity>, StoreError> {
        self.checked(|s| s.entities_where(Some(kind)))
    }

    fn all(&self) -> Result<Vec<Entity>, StoreError> {
        // One query; kinds are sorted in `EntityKind` order (not by their names).
        let mut all = self.checked(|s| s.entities_where(None))?;
        all.sort_by(|a, b| (a.kind, &a.id).cmp(&(b.kind, &b.id)));
        Ok(all)
    }

    fn recent_events(&self, limit: usize) -> Result<Vec<EventFrame>, StoreError> {
        self.checked(|s| {
            let limit = i64::try_from(limit).unwrap_or(i64::MAX);
            let mut stmt = s.conn.prepare_cached(
                "SELECT frame FROM (SELECT pos, frame FROM event_log ORDER BY pos DESC LIMIT ?1)
                 ORDER BY pos",
            )?;
            let frames = stmt
                .query_map([limit], |r| r.get::<_, String>(0))?
                .collect::<Result<Vec<_>, _>>()?;
            frames
                .iter()
                .map(|f| Ok(serde_json::from_str(f)?))
                .collect()
        })
    }

    fn outbox_push(
        &mut self,
        owner: &Owner,
        action: &Action,
        queued_at: i64,
    ) -> Result<u64, StoreError> {
        self.checked_mut(|s| {
            s.conn
                .prepare_cached(
                    "INSERT INTO outbox (action, queued_at, owner) VALUES (?1, ?2, ?3)",
                )?
                .execute(params![
                    serde_json::to_string(action)?,
                    queued_at,
                    serde_json::to_string(owner)?
                ])?;
            Ok(s.conn.last_insert_rowid() as u64)
        })
    }

    fn outbox(&self) -> Result<Vec<OutboxEntry>, StoreError> {
        self.checked(|s| {
            let mut stmt = s.conn.prepare_cached(if s.owners {
                "SELECT id, action, queued_at, last_error, owner FROM outbox ORDER BY id"
            } else {
                "SELECT id, action, queued_at, last_error, NULL FROM outbox ORDER BY id"
            })?;
            let rows = stmt
                .query_map([], |r| {
                    Ok((
                        r.get::<_, u64>(0)?,
                        r.get::<_, Value>(1)?,
                        r.get::<_, i64>(2)?,
                        r.get::<_, Option<String>>(3)?,
                        r.get::<_, Value>(4)?,
                    ))
                })?
                .collect::<Result<Vec<_>, _>>()?;
            rows.into_iter()
                .map(|(id, action, queued_at, last_error, owner)| {
                    let bad =
                        |column, detail: String| StoreError::BadOutboxRow { id, column, detail };
                    let action = match action {
                        Value::Text(t) => {
                            serde_json::from_str(&t).map_err(|e| bad("action", e.to_string()))?
                        }
                        other => return Err(bad("action", format!("not text: {other:?}"))),
                    };
                    let owner = match owner {
                        Value::Null => None,
                        Value::Text(t) => Some(
                            serde_json::from_str::<Owner>(&t)
                                .map_err(|e| bad("owner", e.to_string()))?,
                        ),
                        other => return Err(bad("owner", format!("not text: {other:?}"))),
                    };
                    Ok(OutboxEntry {
                        id,
                        owner,
                        action,
                        queued_at,
                        last_error,
                    })
                })
                .collect()
        })
    }

    fn outbox_fail(&mut self, id: u64, error: &str) -> Result<(), StoreError> {
        self.checked_mut(|s| {
            s.conn
                .prepare_cached("UPDATE outbox SET last_error = ?2 WHERE id = ?1")?
                .execute(params![id, error])?;
            Ok(())
        })
    }

    fn outbox_remove(&mut self, id: u64) -> Result<(), StoreError> {
        self.checked_mut(|s| {
            s.conn
                .prepare_cached("DELETE FROM outbox WHERE id = ?1")?
                .execute([id])?;
            Ok(())
        })
    }

    fn cursors(&self) -> Result<std::collections::BTreeMap<String, Cursor>, StoreError> {
        self.checked(|s| Ok(read_cursors(&s.conn)?))
    }

    fn summary(&self) -> Result<StoreSummary, StoreError> {
        self.checked(|s| {
            let conn = &s.conn;
            let mut summary = StoreSummary::default();
            let mut stmt =
                conn.prepare_cached("SELECT kind, count(*) FROM entities GROUP BY kind")?;
            let counts = stmt
                .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, u64>(1)?)))?
                .collect::<Result<Vec<_>, _>>()?;
            for (kind, n) in counts {
                summary.counts.insert(s.parse_kind(&kind)?, n);
            }
            summary.cursors = read_cursors(conn)?;
            summary.outbox = conn.query_row("SELECT count(*) FROM outbox", [], |r| r.get(0))?;
            summary.last_sync_ms = conn
                .query_row(
                    "SELECT value FROM meta WHERE key = 'last_sync_ms'",
                    [],
                    |r| r.get(0),
                )
                .optional()?;
            Ok(summary)
        })
    }
}

/// Every stream's cursor (the `cursors` table).
fn read_cursors(
    conn: &Connection,
) -> Result<std::collections::BTreeMap<String, Cursor>, rusqlite::Error> {
    let mut stmt = conn.prepare_cached("SELECT stream, epoch, seq FROM cursors")?;
    let cursors = stmt
        .query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                Cursor {
                    epoch: r.get(1)?,
                    seq: r.get(2)?,
                },
            ))
        })?
        .collect::<Result<_, _>>()?;
    Ok(cursors)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrations_are_numbered_and_versioned() {
        assert_eq!(SCHEMA_VERSION, 3);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cache.db");
        drop(SqliteStore::open(&path).unwrap());
        let conn = Connection::open(&path).unwrap();
        let v: i64 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        let id: i32 = conn
            .query_row("PRAGMA application_id", [], |r| r.get(0))
            .unwrap();
        let mode: String = conn
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .unwrap();
        assert_eq!(
            (v, id, mode.as_str()),
            (SCHEMA_VERSION, APPLICATION_ID, "wal")
        );
        // Opening again is a no-op.
        drop(SqliteStore::open(&path).unwrap());
    }

    /// The writer leaves checkpoints to its thread: its own threshold is the
    /// backstop, pages past the thread's threshold
    /// ([`checkpoint::THRESHOLD_FRAMES`]) still reach the database file, and the
    /// last close removes the WAL.
    #[test]
    fn checkpoints_run_off_the_writers_thread() {
        use pulse_protocol::domain::Change;
        use serde_json::json;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cache.db");
        let mut store = SqliteStore::open(&path).unwrap();
        assert!(store.checkpointer.is_some());
        let pages: u32 = store
            .conn
            .query_row("PRAGMA wal_autocheckpoint", [], |r| r.get(0))
            .unwrap();
        assert_eq!(pages, checkpoint::BACKSTOP_PAGES);
        let before = std::fs::metadata(&path).unwrap().len();
        let filler = "x".repeat(3000);
        let events: Vec<AppliedEvent> = (1..=1_200u64)
            .map(|seq| {
                let mut e = super::super::suite::event(seq, vec![]);
                e.changes.push(Change::Upsert {
                    kind: EntityKind::Ticket,
                    id: seq.to_string(),
                    data: super::super::suite::obj(json!({"filler": filler})),
                });
                e
            })
            .collect();
        for batch in events.chunks(20) {
            store.apply("e1", batch).unwrap();
        }
        // ~1,200 pages of entities were committed, past the thread's threshold
        // and far below the writer's own: only the checkpointer can have copied
        // them into the database file.
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while std::fs::metadata(&path).unwrap().len() < before + 3_000_000 {
            assert!(
                std::time::Instant::now() < deadline,
                "no checkpoint happened"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        drop(store);
        assert!(!side_file(&path, "-wal").exists() && !side_file(&path, "-shm").exists());
    }

    /// The writer's page cache is [`PAGE_CACHE_KIB`], and SQLite's default again
    /// once its owner asks for a small entity cache (`pulsectl watch`).
    #[test]
    fn the_page_cache_follows_the_entity_cache() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = SqliteStore::open(dir.path().join("c.db")).unwrap();
        let size = |s: &SqliteStore| -> i64 {
            s.conn
                .query_row("PRAGMA cache_size", [], |r| r.get(0))
                .unwrap()
        };
        assert_eq!(size(&store), -PAGE_CACHE_KIB);
        store.set_entity_cache_entries(256);
        assert_eq!(size(&store), -SQLITE_DEFAULT_CACHE_KIB);
        store.set_entity_cache_entries(usize::MAX);
        assert_eq!(size(&store), -PAGE_CACHE_KIB);
    }

    #[test]
    fn no_column_can_hold_a_token() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path().join("c.db")).unwrap();
        let mut stmt = store
            .conn
            .prepare("SELECT m.name, p.name FROM sqlite_schema m, pragma_table_info(m.name) p WHERE m.type = 'table'")
            .unwrap();
        let cols: Vec<(String, String)> = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert!(!cols.is_empty());
        for (table, col) in cols {
            let c = col.to_lowercase();
            assert!(
                !["token", "secret", "password", "jwt", "auth"]
                    .iter()
                    .any(|w| c.contains(w)),
                "{table}.{col} looks like a credential column"
            );
        }
    }
}
