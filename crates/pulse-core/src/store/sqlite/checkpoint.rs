//! [`Checkpointer`]: WAL checkpoints on a thread of their own, so that copying the
//! WAL back into the database file (and its `fsync`) does not stall the session's
//! commits.
//!
//! Invariants:
//! - it has its own connection to the cache file and only ever runs
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
pub(super) const INTERVAL: Duration = Duration::from_millis(100);

/// `wal_autocheckpoint` of the writer's connection while a checkpointer runs
/// (SQLite's default is 1,000 pages; the backstop only fires if the thread lags).
pub(super) const BACKSTOP_PAGES: u32 = 16_000;

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
pub(super) struct Checkpointer {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl Checkpointer {
    /// Start checkpointing the (existing, WAL-mode) database at `path`.
    pub(super) fn start(path: &Path) -> std::io::Result<Checkpointer> {
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = Connection::open_with_flags(path, flags).map_err(std::io::Error::other)?;
        let shared = Arc::new(Shared::default());
        let theirs = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name("pulse-cache-checkpoint".into())
            .spawn(move || run(&conn, &theirs))?;
        Ok(Checkpointer {
            shared,
            thread: Some(thread),
        })
    }

    /// A transaction committed: checkpoint soon.
    pub(super) fn nudge(&self) {
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
                tracing::trace!(log, copied, "cache checkpoint");
            }
            Err(e) => tracing::debug!(error = %e, "cache checkpoint failed"),
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
