//! SQLite [`LogStore`]: one file, WAL, `synchronous=NORMAL`.
//!
//! Invariants:
//! - one writer connection (behind a mutex) does every append in an `IMMEDIATE`
//!   transaction: the events, the entity changes, the new head and the retention
//!   trim commit together, so a crash (even `SIGKILL`) loses a whole batch or
//!   nothing, and a restart finds log, seqs, epoch and entities as committed;
//! - reads go through a separate read-only connection inside a read transaction, so
//!   a snapshot is one consistent WAL view and never waits for a writer;
//! - `streams.trimmed` is the highest seq dropped by retention; the log holds
//!   `trimmed + 1 ..= head`;
//! - an append reads each entity its batch touches at most once and writes it at
//!   most once, at the end of the batch (before the batch's savepoint is
//!   released), so what it stores is what applying the changes one by one stores;
//! - an event id is looked up in `events` (index `events_by_id`) inside the append
//!   transaction, so a duplicate is found whether it was committed before or earlier
//!   in the same batch (or an earlier batch of the same group);
//! - group commit ([`LogStore::append_group`]): several batches share one
//!   transaction, each inside its own savepoint, in order, so a refused batch is
//!   rolled back alone and the others get the seqs they would have got appended one
//!   after another; the group's commit is the one durable point for all of them;
//! - WAL checkpoints run on a [`Checkpointer`] thread with its own connection
//!   (PASSIVE: never blocking the writer or a reader), not inside the writer's
//!   commits, once the WAL holds its threshold of frames (the rule and why live in
//!   [`pulse_sqlite::checkpoint`]); the writer's own `wal_autocheckpoint` is only a
//!   backstop. With `synchronous=NORMAL` a commit is a write to the WAL, durable
//!   against a crash of the process (`SIGKILL` included; a power cut may lose the
//!   commits since the last checkpoint); the only `fsync` a commit can make is the
//!   new WAL header's, when the WAL starts again after a complete checkpoint.

use std::collections::hash_map::Entry;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use pulse_protocol::domain::{EntityKind, Object};
use pulse_protocol::frame::EventFrame;
use pulse_protocol::rest::Snapshot;
use pulse_protocol::Change;
use pulse_sqlite::checkpoint::Checkpointer;
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};

use super::{
    corrupt, new_epoch, rotation_of, snapshot_of, stamped, stored_entity, Appended, AudiencePlan,
    EventRange, LogStore, NewEvent, RefreshSession, Rotation, StoreError, StreamInfo,
};

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS streams (
    tenant  TEXT PRIMARY KEY NOT NULL,
    epoch   TEXT NOT NULL,
    head    INTEGER NOT NULL,
    trimmed INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS events (
    tenant TEXT NOT NULL,
    seq    INTEGER NOT NULL,
    id     TEXT NOT NULL,
    type   TEXT NOT NULL,
    ts     INTEGER NOT NULL,
    data   TEXT NOT NULL,
    user   TEXT,
    PRIMARY KEY (tenant, seq)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS entities (
    tenant TEXT NOT NULL,
    kind   TEXT NOT NULL,
    id     TEXT NOT NULL,
    data   TEXT NOT NULL,
    PRIMARY KEY (tenant, kind, id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS events_by_id ON events (tenant, id);
CREATE TABLE IF NOT EXISTS refresh_sessions (
    family  TEXT PRIMARY KEY NOT NULL,
    current TEXT NOT NULL,
    sub     TEXT NOT NULL,
    tenant  TEXT NOT NULL,
    expires INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS idempotency (
    tenant  TEXT NOT NULL,
    key     TEXT NOT NULL,
    answer  TEXT NOT NULL,
    expires INTEGER NOT NULL,
    PRIMARY KEY (tenant, key)
) WITHOUT ROWID;
";

/// Schema version of [`SCHEMA`]. Version 2 files lack `events.user` (the user an
/// event is addressed to); [`SqliteStore::open`] adds it.
const SCHEMA_VERSION: i64 = 3;

/// Prepared statements each connection keeps (rusqlite's default is 16; the
/// writer alone uses about 20, and an evicted one is compiled again).
const STATEMENT_CACHE: usize = 64;

/// The SQLite backend.
#[derive(Debug)]
pub struct SqliteStore {
    path: PathBuf,
    retain: u64,
    /// Declared before the connections: dropped (its thread joined) first, so the
    /// last close still checkpoints and removes the WAL.
    checkpointer: Option<Checkpointer>,
    writer: Mutex<Connection>,
    reader: Mutex<Connection>,
}

impl SqliteStore {
    /// Open (creating if needed) the database at `path`, keeping the newest `retain`
    /// events per tenant (at least 1).
    pub fn open(path: &Path, retain: u64) -> Result<SqliteStore, StoreError> {
        let writer = Connection::open(path)?;
        writer.busy_timeout(std::time::Duration::from_secs(5))?;
        writer.pragma_update(None, "journal_mode", "WAL")?;
        writer.pragma_update(None, "synchronous", "NORMAL")?;
        let version: i64 = writer.query_row("PRAGMA user_version", [], |r| r.get(0))?;
        let had_events: bool = writer.query_row(
            "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'events')",
            [],
            |r| r.get(0),
        )?;
        writer.execute_batch(SCHEMA)?;
        if had_events && version < SCHEMA_VERSION {
            writer.execute_batch("ALTER TABLE events ADD COLUMN user TEXT")?;
        }
        writer.pragma_update(None, "user_version", SCHEMA_VERSION)?;
        writer.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
        let checkpointer = match Checkpointer::start(path, &writer) {
            Ok(c) => Some(c),
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "no background checkpointer; SQLite checkpoints on commit");
                None
            }
        };
        let reader = Connection::open(path)?;
        reader.busy_timeout(std::time::Duration::from_secs(5))?;
        reader.pragma_update(None, "query_only", true)?;
        reader.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
        Ok(SqliteStore {
            path: path.to_owned(),
            retain: retain.max(1),
            checkpointer,
            writer: Mutex::new(writer),
            reader: Mutex::new(reader),
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A transaction of the writer committed: checkpoint soon.
    fn committed(&self) {
        if let Some(c) = &self.checkpointer {
            c.nudge();
        }
    }

    /// Create `tenant`'s stream if it does not exist.
    fn ensure(&self, tenant: &str) -> Result<(), StoreError> {
        let conn = self.writer.lock().map_err(|_| StoreError::Poisoned)?;
        conn.prepare_cached(
            "INSERT OR IGNORE INTO streams (tenant, epoch, head, trimmed) VALUES (?1, ?2, 0, 0)",
        )?
        .execute(params![tenant, new_epoch()])?;
        Ok(())
    }

    /// Run `f` in a read transaction; creates the stream first when `f` finds none.
    fn with_read<T>(
        &self,
        tenant: &str,
        f: impl Fn(&rusqlite::Transaction<'_>, StreamInfo) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        for _ in 0..2 {
            {
                let mut conn = self.reader.lock().map_err(|_| StoreError::Poisoned)?;
                let tx = conn.transaction()?;
                if let Some(info) = stream_info(&tx, tenant)? {
                    let out = f(&tx, info)?;
                    tx.commit()?;
                    return Ok(out);
                }
            }
            self.ensure(tenant)?;
        }
        Err(corrupt(format!(
            "stream `{tenant}` vanished after creation"
        )))
    }
}

fn stream_info(conn: &Connection, tenant: &str) -> Result<Option<StreamInfo>, StoreError> {
    let row = conn
        .prepare_cached("SELECT epoch, head, trimmed FROM streams WHERE tenant = ?1")?
        .query_row(params![tenant], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, i64>(2)?,
            ))
        })
        .optional()?;
    Ok(row.map(|(epoch, head, trimmed)| StreamInfo {
        stream: tenant.to_owned(),
        epoch,
        head: head as u64,
        first: trimmed as u64 + 1,
    }))
}

fn load_entity(
    conn: &Connection,
    tenant: &str,
    kind: EntityKind,
    id: &str,
) -> Result<Option<Object>, StoreError> {
    let text: Option<String> = conn
        .prepare_cached("SELECT data FROM entities WHERE tenant = ?1 AND kind = ?2 AND id = ?3")?
        .query_row(params![tenant, kind.as_str(), id], |r| r.get(0))
        .optional()?;
    text.map(|t| serde_json::from_str(&t).map_err(corrupt))
        .transpose()
}

/// The entities one batch touches, in their state as of the batch so far: each
/// is read from the table at most once and written at most once, when the batch
/// ends ([`Touched::write`]). `bool`: changed by the batch.
#[derive(Default)]
struct Touched(HashMap<(EntityKind, String), (Option<Object>, bool)>);

impl Touched {
    /// The entity as of the batch so far (read from the table on first touch).
    fn current(
        &mut self,
        tx: &Connection,
        tenant: &str,
        kind: EntityKind,
        id: &str,
    ) -> Result<&mut (Option<Object>, bool), StoreError> {
        let key = (kind, id.to_owned());
        Ok(match self.0.entry(key) {
            Entry::Occupied(o) => o.into_mut(),
            Entry::Vacant(v) => v.insert((load_entity(tx, tenant, kind, id)?, false)),
        })
    }

    /// Apply `change`, stored for `audience`.
    fn apply(
        &mut self,
        tx: &Connection,
        tenant: &str,
        change: &Change,
        audience: Option<&str>,
    ) -> Result<(), StoreError> {
        let slot = match change {
            // What these write does not depend on what was there: no read.
            Change::Upsert { .. } | Change::Delete { .. } => self
                .0
                .entry((change.kind(), change.id().to_owned()))
                .or_insert((None, false)),
            Change::Patch { .. } | Change::Append { .. } => {
                self.current(tx, tenant, change.kind(), change.id())?
            }
        };
        slot.0 = stamped(change.apply_to(slot.0.take()), audience);
        slot.1 = true;
        Ok(())
    }

    /// Write every changed entity (`buf`: scratch space for the JSON).
    fn write(self, tx: &Connection, tenant: &str, buf: &mut Vec<u8>) -> Result<(), StoreError> {
        for ((kind, id), (obj, changed)) in self.0 {
            if !changed {
                continue;
            }
            match obj {
                Some(obj) => {
                    let text = json_text(buf, &obj)?;
                    tx.prepare_cached(
                        "INSERT OR REPLACE INTO entities (tenant, kind, id, data) \
                         VALUES (?1, ?2, ?3, ?4)",
                    )?
                    .execute(params![tenant, kind.as_str(), id, text])?;
                }
                None => {
                    tx.prepare_cached(
                        "DELETE FROM entities WHERE tenant = ?1 AND kind = ?2 AND id = ?3",
                    )?
                    .execute(params![tenant, kind.as_str(), id])?;
                }
            }
        }
        Ok(())
    }
}

/// `value` as JSON text, written into `buf` ([`pulse_sqlite::text::json_text`]).
fn json_text<'b>(
    buf: &'b mut Vec<u8>,
    value: &impl serde::Serialize,
) -> Result<&'b str, StoreError> {
    pulse_sqlite::text::json_text(buf, value).map_err(corrupt)
}

/// `tenant`'s stream inside an append transaction, created when missing (the
/// common case, an existing stream, is one lookup and no new epoch).
fn stream_for_append(tx: &Connection, tenant: &str) -> Result<StreamInfo, StoreError> {
    if let Some(info) = stream_info(tx, tenant)? {
        return Ok(info);
    }
    tx.prepare_cached(
        "INSERT OR IGNORE INTO streams (tenant, epoch, head, trimmed) VALUES (?1, ?2, 0, 0)",
    )?
    .execute(params![tenant, new_epoch()])?;
    stream_info(tx, tenant)?
        .ok_or_else(|| corrupt(format!("stream `{tenant}` missing after insert")))
}

/// Append one batch after seq `head` (advanced past what it stores), inside the
/// caller's transaction; events up to seq `trimmed` count as dropped by the
/// retention (an earlier batch of the group may have pushed them out, and the
/// trim itself runs once at the end). On an error the caller rolls back what it
/// wrote.
fn append_batch(
    tx: &Connection,
    tenant: &str,
    head: &mut u64,
    trimmed: u64,
    events: Vec<NewEvent>,
) -> Result<Appended, StoreError> {
    let mut out = Appended {
        frames: Vec::with_capacity(events.len()),
        seqs: Vec::with_capacity(events.len()),
    };
    let mut plan = AudiencePlan::default();
    let mut touched = Touched::default();
    let mut buf = Vec::new();
    let mut insert = tx.prepare_cached(
        "INSERT INTO events (tenant, seq, id, type, ts, data, user) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?;
    let mut known =
        tx.prepare_cached("SELECT seq FROM events WHERE tenant = ?1 AND id = ?2 AND seq > ?3")?;
    for e in events {
        let stored: Option<i64> = known
            .query_row(params![tenant, e.id, trimmed as i64], |r| r.get(0))
            .optional()?;
        if let Some(seq) = stored {
            out.seqs.push(seq as u64);
            continue;
        }
        let audience = plan.event(&e, |kind, id| {
            Ok(touched.current(tx, tenant, kind, id)?.0.clone())
        })?;
        *head += 1;
        let text = json_text(&mut buf, &e.data)?;
        insert.execute(params![
            tenant,
            *head as i64,
            e.id,
            e.event_type,
            e.ts,
            text,
            audience
        ])?;
        for change in &e.changes {
            touched.apply(tx, tenant, change, audience.as_deref())?;
        }
        out.seqs.push(*head);
        out.frames.push(EventFrame {
            seq: *head,
            id: e.id,
            stream: tenant.to_owned(),
            event_type: e.event_type,
            ts: e.ts,
            data: e.data,
            user: audience,
        });
    }
    touched.write(tx, tenant, &mut buf)?;
    Ok(out)
}

impl SqliteStore {
    /// Trim to the retention, store the new head and commit an append's
    /// transaction (`info`: the stream when it began).
    fn finish(
        &self,
        tx: rusqlite::Transaction<'_>,
        tenant: &str,
        info: &StreamInfo,
        head: u64,
    ) -> Result<(), StoreError> {
        if head == info.head {
            // Nothing new (duplicates or refused batches only): nothing to write.
            tx.commit()?;
            return Ok(());
        }
        let trimmed = (info.first - 1).max(head.saturating_sub(self.retain));
        if trimmed > info.first - 1 {
            tx.prepare_cached("DELETE FROM events WHERE tenant = ?1 AND seq <= ?2")?
                .execute(params![tenant, trimmed as i64])?;
        }
        tx.prepare_cached("UPDATE streams SET head = ?2, trimmed = ?3 WHERE tenant = ?1")?
            .execute(params![tenant, head as i64, trimmed as i64])?;
        tx.commit()?;
        self.committed();
        Ok(())
    }
}

impl LogStore for SqliteStore {
    fn session_start(&self, session: &RefreshSession) -> Result<(), StoreError> {
        let conn = self.writer.lock().map_err(|_| StoreError::Poisoned)?;
        conn.prepare_cached("DELETE FROM refresh_sessions WHERE expires <= ?1")?
            .execute(params![crate::auth::now_secs() as i64])?;
        conn.prepare_cached(
            "INSERT OR REPLACE INTO refresh_sessions (family, current, sub, tenant, expires)
             VALUES (?1, ?2, ?3, ?4, ?5)",
        )?
        .execute(params![
            session.family,
            session.current,
            session.sub,
            session.tenant,
            session.expires as i64
        ])?;
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
        let mut conn = self.writer.lock().map_err(|_| StoreError::Poisoned)?;
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let stored = tx
            .prepare_cached(
                "SELECT current, sub, tenant, expires FROM refresh_sessions WHERE family = ?1",
            )?
            .query_row(params![family], |r| {
                Ok(RefreshSession {
                    family: family.to_owned(),
                    current: r.get(0)?,
                    sub: r.get(1)?,
                    tenant: r.get(2)?,
                    expires: r.get::<_, i64>(3)?.max(0) as u64,
                })
            })
            .optional()?;
        let r = rotation_of(stored.as_ref(), presented, now);
        match r {
            Rotation::Rotated => {
                tx.prepare_cached(
                    "UPDATE refresh_sessions SET current = ?2, expires = ?3 WHERE family = ?1",
                )?
                .execute(params![family, next, expires as i64])?;
            }
            Rotation::Reused | Rotation::Unknown => {
                tx.prepare_cached("DELETE FROM refresh_sessions WHERE family = ?1")?
                    .execute(params![family])?;
            }
        }
        tx.commit()?;
        Ok(r)
    }

    fn idempotent_get(
        &self,
        tenant: &str,
        key: &str,
        now: u64,
    ) -> Result<Option<String>, StoreError> {
        let conn = self.writer.lock().map_err(|_| StoreError::Poisoned)?;
        let answer = conn
            .prepare_cached(
                "SELECT answer FROM idempotency WHERE tenant = ?1 AND key = ?2 AND expires > ?3",
            )?
            .query_row(params![tenant, key, now as i64], |r| r.get(0))
            .optional()?;
        Ok(answer)
    }

    fn idempotent_put(
        &self,
        tenant: &str,
        key: &str,
        answer: &str,
        expires: u64,
    ) -> Result<(), StoreError> {
        let conn = self.writer.lock().map_err(|_| StoreError::Poisoned)?;
        let now = crate::auth::now_secs() as i64;
        conn.prepare_cached("DELETE FROM idempotency WHERE expires <= ?1")?
            .execute(params![now])?;
        conn.prepare_cached(
            "INSERT OR IGNORE INTO idempotency (tenant, key, answer, expires) VALUES (?1, ?2, ?3, ?4)",
        )?
        .execute(params![tenant, key, answer, expires as i64])?;
        Ok(())
    }

    fn session_revoke(&self, family: &str) -> Result<bool, StoreError> {
        let conn = self.writer.lock().map_err(|_| StoreError::Poisoned)?;
        let n = conn
            .prepare_cached("DELETE FROM refresh_sessions WHERE family = ?1")?
            .execute(params![family])?;
        Ok(n > 0)
    }

    fn session_revoke_user(&self, tenant: &str, sub: &str) -> Result<u64, StoreError> {
        let conn = self.writer.lock().map_err(|_| StoreError::Poisoned)?;
        let n = conn
            .prepare_cached("DELETE FROM refresh_sessions WHERE tenant = ?1 AND sub = ?2")?
            .execute(params![tenant, sub])?;
        Ok(n as u64)
    }

    fn backend(&self) -> &'static str {
        "sqlite"
    }

    fn info(&self, tenant: &str) -> Result<StreamInfo, StoreError> {
        self.with_read(tenant, |_, info| Ok(info))
    }

    fn append(&self, tenant: &str, events: Vec<NewEvent>) -> Result<Appended, StoreError> {
        let mut conn = self.writer.lock().map_err(|_| StoreError::Poisoned)?;
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let info = stream_for_append(&tx, tenant)?;
        let mut head = info.head;
        let out = append_batch(&tx, tenant, &mut head, info.first - 1, events)?;
        self.finish(tx, tenant, &info, head)?;
        Ok(out)
    }

    fn append_group(
        &self,
        tenant: &str,
        batches: Vec<Vec<NewEvent>>,
    ) -> Result<Vec<Result<Appended, StoreError>>, StoreError> {
        if batches.len() == 1 {
            // No savepoints for a group of one.
            let events = batches.into_iter().next().unwrap_or_default();
            return Ok(vec![self.append(tenant, events)]);
        }
        let mut conn = self.writer.lock().map_err(|_| StoreError::Poisoned)?;
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let info = stream_for_append(&tx, tenant)?;
        let mut head = info.head;
        let mut results = Vec::with_capacity(batches.len());
        for events in batches {
            tx.prepare_cached("SAVEPOINT pulse_batch")?.execute([])?;
            let before = head;
            let trimmed = (info.first - 1).max(before.saturating_sub(self.retain));
            match append_batch(&tx, tenant, &mut head, trimmed, events) {
                Ok(out) => {
                    tx.prepare_cached("RELEASE pulse_batch")?.execute([])?;
                    results.push(Ok(out));
                }
                Err(e) => {
                    tx.prepare_cached("ROLLBACK TO pulse_batch")?.execute([])?;
                    tx.prepare_cached("RELEASE pulse_batch")?.execute([])?;
                    head = before;
                    results.push(Err(e));
                }
            }
        }
        self.finish(tx, tenant, &info, head)?;
        Ok(results)
    }

    fn read(&self, tenant: &str, after: u64, limit: usize) -> Result<EventRange, StoreError> {
        self.with_read(tenant, |tx, info| {
            let mut stmt = tx.prepare_cached(
                "SELECT seq, id, type, ts, data, user FROM events WHERE tenant = ?1 AND seq > ?2 \
                 ORDER BY seq LIMIT ?3",
            )?;
            let rows = stmt.query_map(
                params![
                    tenant,
                    after.min(i64::MAX as u64) as i64,
                    limit.min(i64::MAX as usize) as i64
                ],
                |r| {
                    Ok((
                        r.get::<_, i64>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, String>(2)?,
                        r.get::<_, i64>(3)?,
                        r.get::<_, String>(4)?,
                        r.get::<_, Option<String>>(5)?,
                    ))
                },
            )?;
            let mut events = Vec::new();
            for row in rows {
                let (seq, id, event_type, ts, data, user) = row?;
                events.push(EventFrame {
                    seq: seq as u64,
                    id,
                    stream: tenant.to_owned(),
                    event_type,
                    ts,
                    data: serde_json::from_str(&data).map_err(corrupt)?,
                    user,
                });
            }
            Ok(EventRange { info, events })
        })
    }

    fn snapshot(&self, tenant: &str) -> Result<Snapshot, StoreError> {
        self.with_read(tenant, |tx, info| {
            let mut stmt =
                tx.prepare_cached("SELECT kind, id, data FROM entities WHERE tenant = ?1")?;
            let rows = stmt.query_map(params![tenant], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                ))
            })?;
            let mut entities = Vec::new();
            for row in rows {
                let (kind, id, data) = row?;
                entities.push(stored_entity(&kind, id, &data)?);
            }
            Ok(snapshot_of(info, entities))
        })
    }

    fn entity(
        &self,
        tenant: &str,
        kind: EntityKind,
        id: &str,
    ) -> Result<Option<Object>, StoreError> {
        let conn = self.reader.lock().map_err(|_| StoreError::Poisoned)?;
        load_entity(&conn, tenant, kind, id)
    }

    fn streams(&self) -> Result<Vec<StreamInfo>, StoreError> {
        let conn = self.reader.lock().map_err(|_| StoreError::Poisoned)?;
        let mut stmt = conn
            .prepare_cached("SELECT tenant, epoch, head, trimmed FROM streams ORDER BY tenant")?;
        let rows = stmt.query_map([], |r| {
            Ok(StreamInfo {
                stream: r.get(0)?,
                epoch: r.get(1)?,
                head: r.get::<_, i64>(2)? as u64,
                first: r.get::<_, i64>(3)? as u64 + 1,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A file of schema version 2 (no `events.user`) opens, keeps its log, and
    /// takes addressed events from then on.
    #[test]
    fn a_version_2_file_is_migrated() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("old.db");
        {
            let c = Connection::open(&path).unwrap();
            c.execute_batch(
                "CREATE TABLE streams (tenant TEXT PRIMARY KEY NOT NULL, epoch TEXT NOT NULL,
                     head INTEGER NOT NULL, trimmed INTEGER NOT NULL) WITHOUT ROWID;
                 CREATE TABLE events (tenant TEXT NOT NULL, seq INTEGER NOT NULL,
                     id TEXT NOT NULL, type TEXT NOT NULL, ts INTEGER NOT NULL,
                     data TEXT NOT NULL, PRIMARY KEY (tenant, seq)) WITHOUT ROWID;
                 CREATE TABLE entities (tenant TEXT NOT NULL, kind TEXT NOT NULL,
                     id TEXT NOT NULL, data TEXT NOT NULL,
                     PRIMARY KEY (tenant, kind, id)) WITHOUT ROWID;
                 CREATE INDEX events_by_id ON events (tenant, id);
                 INSERT INTO streams VALUES ('acme', 'ep', 1, 0);
                 INSERT INTO events VALUES ('acme', 1, 'e1', 'ticket.created', 5, '{\"id\":\"t1\"}');
                 INSERT INTO entities VALUES ('acme', 'ticket', 't1', '{\"id\":\"t1\"}');
                 PRAGMA user_version = 2;",
            )
            .unwrap();
        }
        for _ in 0..2 {
            // Opening twice: the migration runs once.
            let s = SqliteStore::open(&path, 100).unwrap();
            let old = s.read("acme", 0, 10).unwrap();
            assert_eq!(old.events[0].id, "e1");
            assert_eq!(old.events[0].user, None);
        }
        let s = SqliteStore::open(&path, 100).unwrap();
        let e = NewEvent::new("notification.new", json!({"id": "n1"}), None, 6)
            .unwrap()
            .for_user(Some("alice".into()));
        assert_eq!(s.append("acme", vec![e]).unwrap().seqs, [2]);
        let read = s.read("acme", 1, 10).unwrap();
        assert_eq!(read.events[0].user.as_deref(), Some("alice"));
        let version: i64 = s
            .reader
            .lock()
            .unwrap()
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(version, SCHEMA_VERSION);
    }
}
