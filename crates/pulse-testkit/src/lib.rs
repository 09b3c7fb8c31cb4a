//! Helpers shared by Pulse's test binaries (`pulse-core`'s, `pulse-gateway`'s,
//! the desktop shell's and the end-to-end tests), so that each is written once.
//! A dev-dependency only; never published.
//!
//! The contracts every helper here keeps, and every test that uses them may
//! rely on:
//!
//! - **Port 0.** Every server a helper starts binds port 0 and tells the test
//!   the port it got (from the first line it prints), so tests run in parallel
//!   and never collide. Only a restart reuses a port: the one the same server
//!   had before.
//! - **Kill on drop.** Every child process a helper starts is owned by a value
//!   that kills it (SIGKILL) and reaps it when dropped, also when the test
//!   panics. No process outlives its test.
//! - **Waits on conditions, never fixed sleeps.** A test waits for a condition
//!   with [`wait_for`] / [`wait_for_some`] (re-checked every few milliseconds,
//!   bounded by a limit after which the test fails naming what it waited for),
//!   never for a guessed duration. The only sleeps are between two checks.
//! - **Missing set-up is a clear failure.** A peer whose packages are not
//!   installed fails its test with the command that installs them, never skips.
//!
//! Modules: [`fault`] (a fault-injecting TCP proxy: half-open links, hangs,
//! resets mid-frame, slow drip, latency), [`peers`] (the seed-dialect servers of `tests/peers/`), [`process`]
//! (child processes and the workspace's binaries), [`redis`] (a real `redis-server`),
//! [`nginx`] (a real nginx balancing gateway nodes), [`langgraph`] (a real
//! `langgraph dev` serving `tests/peers/langgraph`), [`tls`] (a test CA from the
//! `openssl` CLI and a TLS front),
//! [`wait`], and with the
//! `gateway` feature `gateway` (an in-process gateway's config and its tokens).

pub mod fault;
#[cfg(feature = "gateway")]
pub mod gateway;
pub mod langgraph;
pub mod nginx;
pub mod peers;
pub mod process;
pub mod redis;
pub mod tls;
pub mod wait;

pub use wait::{wait_for, wait_for_some};
