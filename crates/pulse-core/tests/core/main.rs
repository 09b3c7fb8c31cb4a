//! Integration tests of `pulse-core`, one binary (one link, one run) with a
//! module per area. Real peers on port 0, killed on drop; waits on conditions,
//! never fixed sleeps (see `pulse_testkit`). Helpers used by more than one
//! module are in `common`.
//!
//! - `bounds`: network-fed buffers bounded in bytes (a server sending 100 MB),
//!   error text redacted before it is cut.
//! - `faults`: network faults (fault proxy) against the Socket.IO and jsonws
//!   seed peers: half-open link, resets mid-frame, slow drip.
//! - `fallback`: profile servers polled over REST when the socket cannot be
//!   had (or polling is forced), seed 000's rate limit and rooms.
//! - `profiles`: profiles against real servers of the seeds' dialects
//!   (`tests/peers/`; needs `npm ci` there and the FastAPI venv, `PULSE_PY`).
//! - `session`: the session actor against raw native-protocol servers.
//! - `socketio`: the Socket.IO transport against a real Socket.IO server.
//! - `tls`: certificate verification stays on (a throwaway CA from the
//!   `openssl` CLI).
//! - `store`: the store suite on every backend, then SQLite-only tests.
//! - `local`: `SessionCx::commit_local` (every profile event) against its plain
//!   reference, with other writers changing the cache in between.
//! - `gateway`: against the reference gateway in-process: idempotency keys of
//!   actions, refresh tokens sent one at a time, sign-out at the server.

mod common;

mod bounds;
mod fallback;
mod faults;
mod gateway;
mod local;
mod profiles;
mod session;
mod socketio;
mod store;
mod tls;
