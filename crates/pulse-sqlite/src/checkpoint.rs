//! [`Checkpointer`]: WAL checkpoints on a thread of their own, so that copying the
//! WAL back into the database file (and its `fsync`) does not stall the writer's
//! commits (the client cache's session, the gateway's ingest).
//!
//! Invariants:
//! - it has its own connection to the database file and only ever runs
//!   `PRAGMA wal_checkpoint(PASSIVE)`, which never blocks a writer or a reader and
//!   never changes what the database holds; a kill at any point is as safe as a
//!   kill during SQLite's own automatic checkpoint;
//! - after a [`Checkpointer::nudge`] (one per commit) it looks at the WAL, at
//!   most once per [`INTERVAL`], and checkpoints once it holds at least
//!   [`THRESHOLD_FRAMES`] frames not yet copied back. Emptying the WAL is what
//!   makes the writer's next commit start it again from its beginning, and
//!   SQLite `fsync`s the new WAL header in that commit, on the writer's thread
//!   (with `synchronous=NORMAL` it is the only `fsync` a commit can make): the
//!   threshold bounds how often that happens (once per [`THRESHOLD_FRAMES`]
//!   frames written, as with SQLite's own automatic checkpoint) instead of up
//!   to once per interval. The frame count is read from the wal-index header in
//!   the `-shm` file ([`wal_frames`]); when it cannot be read, every look
//!   checkpoints, as if the threshold were 0;
//! - the writer's connection keeps a high `wal_autocheckpoint`
//!   ([`BACKSTOP_PAGES`]) as a backstop, so the WAL stays bounded even if this
//!   thread falls behind;
//! - durability is SQLite's and does not depend on this thread: with
//!   `synchronous=NORMAL` a committed transaction survives a crash of the
//!   process (it is in the WAL); a power cut may lose the commits made since
//!   the last checkpoint's `fsync` of the WAL (at most about
//!   [`THRESHOLD_FRAMES`] frames' worth, or those of an idle period);
//! - dropping it stops and joins the thread (closing its connection) before the
//!   store's own connection closes, so the last close still checkpoints and
//!   removes the `-wal` / `-shm` files.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rusqlite::{Connection, OpenFlags};

/// Least time between two background checkpoints.
pub const INTERVAL: Duration = Duration::from_millis(100);

/// Frames (pages) the WAL holds, not yet copied back, before a background
/// checkpoint runs: SQLite's own default `wal_autocheckpoint`.
pub const THRESHOLD_FRAMES: u32 = 1_000;

/// `wal_autocheckpoint` of the writer's connection while a checkpointer runs
/// (SQLite's default is 1,000 pages; the backstop only fires if the thread lags).
pub const BACKSTOP_PAGES: u32 = 16_000;

#[derive(Debug, Default)]
struct State {
    pending: bool,
    stop: bool,
    /// Nudges so far.
    nudged: u64,
    /// The last nudge the thread has acted on (checkpointed, or found the WAL
    /// below the threshold).
    handled: u64,
}

#[derive(Debug, Default)]
struct Shared {
    state: Mutex<State>,
    wake: Condvar,
    /// Signalled when `handled` moves.
    handled: Condvar,
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
        let shm = shm_path(path);
        let thread = std::thread::Builder::new()
            .name("pulse-sqlite-checkpoint".into())
            .spawn(move || run(&conn, &shm, &theirs))?;
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
        s.nudged += 1;
        if !s.pending {
            s.pending = true;
            self.shared.wake.notify_one();
        }
    }

    /// Wait until the thread has acted on every nudge so far (tests: what it
    /// did is then visible in the files).
    pub fn settle(&self) {
        let mut s = self
            .shared
            .state
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let target = s.nudged;
        while s.handled < target && self.thread.as_ref().is_some_and(|t| !t.is_finished()) {
            s = self
                .shared
                .handled
                .wait_timeout(s, Duration::from_millis(50))
                .unwrap_or_else(PoisonError::into_inner)
                .0;
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

fn run(conn: &Connection, shm: &Path, shared: &Shared) {
    let lock = || shared.state.lock().unwrap_or_else(PoisonError::into_inner);
    let mut index: Option<File> = None;
    loop {
        let nudge = {
            let mut s = lock();
            while !s.pending && !s.stop {
                s = shared.wake.wait(s).unwrap_or_else(PoisonError::into_inner);
            }
            if s.stop {
                return;
            }
            s.pending = false;
            s.nudged
        };
        if index.is_none() {
            // The `-shm` file exists once the writer has used the WAL.
            index = File::open(shm).ok();
        }
        let due = match index.as_ref().map(wal_frames) {
            Some(Ok(frames)) => frames >= THRESHOLD_FRAMES,
            None => true,
            Some(Err(e)) => {
                tracing::debug!(error = %e, "wal-index header unreadable");
                index = None;
                true
            }
        };
        let done = Instant::now() + INTERVAL;
        if due {
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
        }
        let mut s = lock();
        s.handled = nudge;
        shared.handled.notify_all();
        // At most one look (and checkpoint) per INTERVAL, not one per commit
        // while the WAL is below the threshold; a stop ends the wait at once.
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

/// `path`'s wal-index (`-shm`) file.
pub fn shm_path(path: &Path) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push("-shm");
    s.into()
}

/// Version number SQLite writes into the wal-index header (`iVersion`).
const WAL_INDEX_VERSION: u32 = 3_007_000;

/// Frames the WAL holds that no checkpoint has copied back yet (`mxFrame -
/// nBackfill`), read from the wal-index header at the start of `shm` (the `-shm`
/// file; layout in <https://sqlite.org/walformat.html>: `iVersion` at byte 0,
/// `mxFrame` at 16, `nBackfill` at 96, in the machine's byte order). The read is
/// not synchronised with SQLite's locks: a figure read mid-update may be off,
/// which only moves a checkpoint earlier or later. An error when the header is
/// too short or not of the known version.
pub fn wal_frames(shm: &File) -> std::io::Result<u32> {
    let mut head = [0u8; 100];
    let mut file = shm;
    file.seek(SeekFrom::Start(0))?;
    file.read_exact(&mut head)?;
    let word = |at: usize| u32::from_ne_bytes([head[at], head[at + 1], head[at + 2], head[at + 3]]);
    if word(0) != WAL_INDEX_VERSION {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!(
                "wal-index version {} (expected {WAL_INDEX_VERSION})",
                word(0)
            ),
        ));
    }
    Ok(word(16).saturating_sub(word(96)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn side_file(path: &Path, suffix: &str) -> std::path::PathBuf {
        let mut s = path.as_os_str().to_owned();
        s.push(suffix);
        s.into()
    }

    fn writer_at(path: &Path) -> Connection {
        let writer = Connection::open(path).unwrap();
        writer.pragma_update(None, "journal_mode", "WAL").unwrap();
        writer.pragma_update(None, "synchronous", "NORMAL").unwrap();
        writer
            .execute_batch("CREATE TABLE t (v TEXT NOT NULL)")
            .unwrap();
        writer
    }

    /// Insert `n` rows of about 3,000 bytes, one transaction each (at least one
    /// new page per commit), nudging `c` after each.
    fn commit_rows(writer: &Connection, c: Option<&Checkpointer>, n: usize) {
        let filler = "x".repeat(3000);
        for _ in 0..n {
            writer
                .execute("INSERT INTO t (v) VALUES (?1)", [&filler])
                .unwrap();
            if let Some(c) = c {
                c.nudge();
            }
        }
    }

    /// Pages committed far below the writer's own threshold, but past
    /// [`THRESHOLD_FRAMES`], still reach the database file (only the thread can
    /// have copied them), and the last close removes the WAL.
    #[test]
    fn commits_are_checkpointed_off_the_writer() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db.sqlite");
        let writer = writer_at(&path);
        let c = Checkpointer::start(&path, &writer).unwrap();
        let pages: u32 = writer
            .query_row("PRAGMA wal_autocheckpoint", [], |r| r.get(0))
            .unwrap();
        assert_eq!(pages, BACKSTOP_PAGES);
        let before = std::fs::metadata(&path).unwrap().len();
        commit_rows(&writer, Some(&c), THRESHOLD_FRAMES as usize + 200);
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::fs::metadata(&path).unwrap().len() < before + 2_000_000 {
            assert!(Instant::now() < deadline, "no checkpoint happened");
            c.nudge();
            c.settle();
        }
        let n: i64 = writer
            .query_row("SELECT count(*) FROM t", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, i64::from(THRESHOLD_FRAMES) + 200);
        drop(c);
        drop(writer);
        assert!(!side_file(&path, "-wal").exists() && !side_file(&path, "-shm").exists());
    }

    /// Below [`THRESHOLD_FRAMES`] the thread leaves the WAL alone: nothing is
    /// copied back, so the writer's next commit does not start the WAL again
    /// (and `fsync` its header). The rows are all there, and the last close
    /// still checkpoints them into the file.
    #[test]
    fn a_wal_below_the_threshold_is_not_checkpointed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db.sqlite");
        let writer = writer_at(&path);
        let c = Checkpointer::start(&path, &writer).unwrap();
        let shm = File::open(shm_path(&path)).unwrap();
        let at_start = wal_frames(&shm).unwrap();
        commit_rows(&writer, Some(&c), 100);
        c.settle();
        let frames = wal_frames(&shm).unwrap();
        assert!(
            frames >= at_start + 100 && frames < THRESHOLD_FRAMES,
            "{at_start} then {frames} frames"
        );
        let n: i64 = writer
            .query_row("SELECT count(*) FROM t", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 100);
        drop(shm);
        drop(c);
        drop(writer);
        assert!(!side_file(&path, "-wal").exists());
        let n: i64 = Connection::open(&path)
            .unwrap()
            .query_row("SELECT count(*) FROM t", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 100);
    }

    /// [`wal_frames`] reads what SQLite itself counts: before a checkpoint the
    /// frames of the WAL (`log` of `wal_checkpoint`), after a complete one none.
    #[test]
    fn wal_frames_agrees_with_sqlite() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db.sqlite");
        let writer = writer_at(&path);
        writer.pragma_update(None, "wal_autocheckpoint", 0).unwrap();
        commit_rows(&writer, None, 50);
        let shm = File::open(shm_path(&path)).unwrap();
        let before = wal_frames(&shm).unwrap();
        let (busy, log, copied): (i64, i64, i64) = writer
            .query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })
            .unwrap();
        assert_eq!((busy, copied), (0, log));
        assert!(log >= 50);
        assert_eq!(i64::from(before), log);
        assert_eq!(wal_frames(&shm).unwrap(), 0);
        // The next commit starts the WAL again from its beginning.
        commit_rows(&writer, None, 1);
        let after = wal_frames(&shm).unwrap();
        assert!(after >= 1 && i64::from(after) < log, "{after}");
    }

    /// Garbage where the wal-index header should be: a clear error (the thread
    /// then checkpoints at every nudge, as when it has no header to read).
    #[test]
    fn a_garbage_wal_index_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let short = dir.path().join("short-shm");
        std::fs::write(&short, [0u8; 10]).unwrap();
        let e = wal_frames(&File::open(&short).unwrap()).unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::UnexpectedEof);
        let other = dir.path().join("other-shm");
        std::fs::write(&other, [0xabu8; 200]).unwrap();
        let e = wal_frames(&File::open(&other).unwrap()).unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::InvalidData);
        assert!(e.to_string().contains("wal-index version"), "{e}");
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
