//! [`Checkpointer`]: WAL checkpoints on a thread of their own, so that copying the
//! WAL back into the database file (and its `fsync`) does not stall the writer's
//! commits (the client cache's session, the gateway's ingest).
//!
//! Invariants:
//! - it has its own connection to the database file and only ever runs
//!   `PRAGMA wal_checkpoint(PASSIVE)`, which never blocks a writer or a reader and
//!   never changes what the database holds; a kill at any point is as safe as a
//!   kill during SQLite's own automatic checkpoint;
//! - it checkpoints after a [`Checkpointer::nudge`] (one per commit), at most once
//!   per [`INTERVAL`]; the writer's connection keeps a high `wal_autocheckpoint`
//!   ([`BACKSTOP_PAGES`]) as a backstop, so the WAL stays bounded even if this
//!   thread falls behind;
//! - dropping it stops and joins the thread (closing its connection) before the
//!   store's own connection closes, so the last close still checkpoints and
//!   removes the `-wal` / `-shm` files.

use std::path::Path;
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rusqlite::{Connection, OpenFlags};

/// Least time between two background checkpoints.
pub const INTERVAL: Duration = Duration::from_millis(100);

/// `wal_autocheckpoint` of the writer's connection while a checkpointer runs
/// (SQLite's default is 1,000 pages; the backstop only fires if the thread lags).
pub const BACKSTOP_PAGES: u32 = 16_000;

#[derive(Debug, Default)]
struct State {
    pending: bool,
    stop: bool,
}

#[derive(Debug, Default)]
struct Shared {
    state: Mutex<State>,
    wake: Condvar,
}

/// See the module docs.
#[derive(Debug)]
pub struct Checkpointer {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl Checkpointer {
    /// Start checkpointing the (existing, WAL-mode) database at `path` whose
    /// commits `writer` makes, and lower `writer`'s own checkpoints to the
    /// backstop ([`BACKSTOP_PAGES`]). On an error `writer` is left as it was.
    pub fn start(path: &Path, writer: &Connection) -> std::io::Result<Checkpointer> {
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = Connection::open_with_flags(path, flags).map_err(std::io::Error::other)?;
        writer
            .pragma_update(None, "wal_autocheckpoint", BACKSTOP_PAGES)
            .map_err(std::io::Error::other)?;
        let shared = Arc::new(Shared::default());
        let theirs = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name("pulse-sqlite-checkpoint".into())
            .spawn(move || run(&conn, &theirs))?;
        Ok(Checkpointer {
            shared,
            thread: Some(thread),
        })
    }

    /// A transaction committed: checkpoint soon.
    pub fn nudge(&self) {
        let mut s = self
            .shared
            .state
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if !s.pending {
            s.pending = true;
            self.shared.wake.notify_one();
        }
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        self.shared
            .state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .stop = true;
        self.shared.wake.notify_one();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn run(conn: &Connection, shared: &Shared) {
    let lock = || shared.state.lock().unwrap_or_else(PoisonError::into_inner);
    loop {
        {
            let mut s = lock();
            while !s.pending && !s.stop {
                s = shared.wake.wait(s).unwrap_or_else(PoisonError::into_inner);
            }
            if s.stop {
                return;
            }
            s.pending = false;
        }
        let done = Instant::now() + INTERVAL;
        let result = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, i64>(2)?,
            ))
        });
        match result {
            Ok((_busy, log, copied)) => {
                tracing::trace!(log, copied, "wal checkpoint");
            }
            Err(e) => tracing::debug!(error = %e, "wal checkpoint failed"),
        }
        // At most one checkpoint per INTERVAL; a stop ends the wait at once.
        let mut s = lock();
        while !s.stop {
            let now = Instant::now();
            if now >= done {
                break;
            }
            s = shared
                .wake
                .wait_timeout(s, done - now)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        if s.stop {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn side_file(path: &Path, suffix: &str) -> std::path::PathBuf {
        let mut s = path.as_os_str().to_owned();
        s.push(suffix);
        s.into()
    }

    /// Pages committed far below the writer's own threshold still reach the
    /// database file (only the thread can have copied them), and the last close
    /// removes the WAL.
    #[test]
    fn commits_are_checkpointed_off_the_writer() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db.sqlite");
        let writer = Connection::open(&path).unwrap();
        writer.pragma_update(None, "journal_mode", "WAL").unwrap();
        writer
            .execute_batch("CREATE TABLE t (v TEXT NOT NULL)")
            .unwrap();
        let c = Checkpointer::start(&path, &writer).unwrap();
        let pages: u32 = writer
            .query_row("PRAGMA wal_autocheckpoint", [], |r| r.get(0))
            .unwrap();
        assert_eq!(pages, BACKSTOP_PAGES);
        let before = std::fs::metadata(&path).unwrap().len();
        let filler = "x".repeat(3000);
        for _ in 0..200 {
            writer
                .execute("INSERT INTO t (v) VALUES (?1)", [&filler])
                .unwrap();
            c.nudge();
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::fs::metadata(&path).unwrap().len() < before + 500_000 {
            assert!(Instant::now() < deadline, "no checkpoint happened");
            std::thread::sleep(Duration::from_millis(5));
        }
        let n: i64 = writer
            .query_row("SELECT count(*) FROM t", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 200);
        drop(c);
        drop(writer);
        assert!(!side_file(&path, "-wal").exists() && !side_file(&path, "-shm").exists());
    }

    /// A file that cannot be opened: an error, and the writer keeps SQLite's own
    /// checkpoints.
    #[test]
    fn a_missing_file_is_an_error_and_leaves_the_writer_alone() {
        let dir = tempfile::tempdir().unwrap();
        let writer = Connection::open_in_memory().unwrap();
        let before: u32 = writer
            .query_row("PRAGMA wal_autocheckpoint", [], |r| r.get(0))
            .unwrap();
        assert!(Checkpointer::start(&dir.path().join("none/db"), &writer).is_err());
        let after: u32 = writer
            .query_row("PRAGMA wal_autocheckpoint", [], |r| r.get(0))
            .unwrap();
        assert_eq!(before, after);
    }
}
