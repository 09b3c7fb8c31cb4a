//! A real `redis-server` (Debian package) for one test: a free loopback port, no
//! persistence unless asked, killed (SIGKILL) and reaped on drop.
//!
//! Invariants:
//! - [`RedisServer::start`] returns once the server answers `PING`; a missing
//!   `redis-server` binary fails the test with the command that installs it;
//! - [`RedisServer::kill`] / [`RedisServer::restart`] keep the port and the data
//!   directory, so a durable server (`durable = true`: AOF with `fsync always`)
//!   comes back with everything it acknowledged.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::process::kill;

/// A running (or killed) `redis-server`.
#[derive(Debug)]
pub struct RedisServer {
    port: u16,
    durable: bool,
    dir: tempfile::TempDir,
    child: Option<Child>,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// Whether a Redis answers `PING` on `port`.
pub fn pings(port: u16) -> bool {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
    if s.write_all(b"PING\r\n").is_err() {
        return false;
    }
    let mut buf = [0u8; 7];
    s.read_exact(&mut buf).is_ok() && &buf == b"+PONG\r\n"
}

impl RedisServer {
    /// Start a server without persistence.
    pub fn start() -> RedisServer {
        RedisServer::start_with(false)
    }

    /// Start a server; `durable` turns on the append-only file with `fsync always`,
    /// so a SIGKILL loses nothing that was acknowledged.
    pub fn start_with(durable: bool) -> RedisServer {
        let mut server = RedisServer {
            port: 0,
            durable,
            dir: tempfile::tempdir().expect("temp dir for redis"),
            child: None,
        };
        // Another test may take the port between our probe and the bind: retry.
        for _ in 0..5 {
            server.port = free_port();
            if server.spawn() {
                return server;
            }
        }
        panic!("redis-server did not start on a free port (5 tries)");
    }

    fn spawn(&mut self) -> bool {
        let mut cmd = Command::new("redis-server");
        cmd.arg("--port")
            .arg(self.port.to_string())
            .args(["--bind", "127.0.0.1", "--save", ""])
            .arg("--dir")
            .arg(self.dir.path());
        if self.durable {
            cmd.args(["--appendonly", "yes", "--appendfsync", "always"]);
        }
        let child = cmd
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot start redis-server ({e}): install it with `apt-get install redis-server` \
                     (scripts/install-deps.sh does)"
                )
            });
        self.child = Some(child);
        let end = Instant::now() + Duration::from_secs(10);
        while Instant::now() < end {
            if pings(self.port) {
                return true;
            }
            if let Some(Ok(Some(_))) = self.child.as_mut().map(Child::try_wait) {
                self.child = None;
                return false;
            }
            std::thread::sleep(crate::wait::POLL);
        }
        kill(&mut self.child);
        false
    }

    /// Its port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `redis://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// SIGKILL the server (the data directory stays).
    pub fn kill(&mut self) {
        kill(&mut self.child);
    }

    /// Start the server again on the same port and data directory.
    pub fn restart(&mut self) {
        self.kill();
        let port = self.port;
        crate::process::retry(Duration::from_secs(10), || {
            assert!(
                self.spawn(),
                "redis-server did not come back on port {port}"
            );
        });
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        kill(&mut self.child);
    }
}
