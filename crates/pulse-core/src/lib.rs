//! Headless Pulse engine: everything the desktop app and `pulsectl` do, without a window.
//!
//! Data flows one way: server frames → transport → session actor → [`store`] (one
//! transaction per batch: entities + cursor) → committed changes on a broadcast
//! channel → UI, notifier ([`policy`]), tray. Commands flow back through
//! [`session::SessionHandle`] and the REST client ([`rest`]).
//!
//! Invariants:
//! - no credential is ever written to the store, a log line or a URL;
//! - a change is broadcast only after it is committed to the store;
//! - every event seq of a stream is applied at most once, and none is skipped
//!   silently: a gap forces a resync (replay or snapshot).

pub mod actions;
pub mod app;
pub mod auth;
pub mod backoff;
pub mod credentials;
pub mod failover;
pub mod files;
pub mod policy;
pub mod profile;
pub mod rest;
pub mod server;
pub mod session;
pub mod store;
pub mod transport;

pub use pulse_protocol as protocol;

/// Milliseconds since the Unix epoch, now.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
