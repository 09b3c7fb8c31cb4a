//! Child processes of a test: the workspace's binaries, servers that announce
//! where they listen on their first line of stdout, killing and reaping, and
//! restarting on a port that may take a moment to be free again.
//!
//! Every child started here is killed when its owner drops it
//! (`kill_on_drop` for Tokio children; the owners of `std` children call
//! [`kill`] from their `Drop`).

use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, BufReader};

/// The workspace binary `name` (`pulse-gateway`, `pulsectl`, …) of the build the
/// running test belongs to. Panics, saying how to build it, when it is missing.
pub fn bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test exe path");
    // target/<profile>/deps/<test>-xxxx -> target/<profile>/<name>
    let dir = exe.parent().and_then(Path::parent).expect("target dir");
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} is missing: run `cargo build --workspace --bins` before these tests (the README's test command does)",
        path.display()
    );
    path
}

/// SIGKILL `child`, if there is one, and reap it. `None` afterwards.
pub fn kill(child: &mut Option<Child>) {
    if let Some(mut c) = child.take() {
        let _ = c.kill();
        let _ = c.wait();
    }
}

/// Call `start` until it returns without panicking, for at most `limit`, then
/// let its last panic through. For restarting a server on the port it had: the
/// port can take a moment to be free again.
pub fn retry<T>(limit: Duration, mut start: impl FnMut() -> T) -> T {
    let end = Instant::now() + limit;
    loop {
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(&mut start)) {
            Ok(v) => return v,
            Err(e) if Instant::now() > end => std::panic::resume_unwind(e),
            Err(_) => std::thread::sleep(Duration::from_millis(100)),
        }
    }
}

/// Spawn `cmd` with stdout piped and killed on drop, and return it with the
/// first line it printed (where it listens), read within `limit`. The rest of
/// its stdout is drained in the background, so it never blocks on a full pipe.
/// Panics naming `what` when it cannot start, exits first, or is silent.
pub async fn spawn_announced(
    what: &str,
    cmd: &mut tokio::process::Command,
    limit: Duration,
) -> (tokio::process::Child, String) {
    let mut child = cmd
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {what}: {e}"));
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = BufReader::new(stdout).lines();
    let first = tokio::time::timeout(limit, lines.next_line())
        .await
        .unwrap_or_else(|_| panic!("{what} did not start within {limit:?}"))
        .unwrap_or_else(|e| panic!("reading the stdout of {what}: {e}"))
        .unwrap_or_else(|| panic!("{what} exited before saying where it listens"));
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    (child, first)
}
