//! Wire types of the Pulse protocol v1 (see `docs/protocol.md`).
//!
//! This crate is the contract between `pulse-core` (the client engine) and
//! `pulse-gateway` (the reference server); neither depends on the other.
//!
//! Invariants every user of this crate can rely on:
//! - an event frame always carries `seq`, `id`, `stream`, `type`, `ts` and `data`;
//!   `seq` rises by exactly one per stream within an `epoch`;
//! - [`domain::changes_for`] is the single definition of what an event type *means*
//!   for the entities it touches; the gateway materialises its snapshots with it and
//!   the client applies events with it, so the two cannot disagree;
//! - decoding never panics: bad input is a [`DecodeError`] that says what was wrong.

pub mod auth;
pub mod domain;
pub mod frame;
pub mod rest;
pub mod time;

pub use domain::{changes_for, Change, EntityKind, EventType};
pub use frame::{ClientFrame, DecodeError, EventFrame, ServerFrame};

/// Log targets whose trace-level output carries credentials: tungstenite logs
/// the upgrade request (its `Authorization` header, a token in the query) and
/// frame bytes; the HTTP stack's trace logs can show headers. Every Pulse
/// binary (gateway, `pulsectl`, desktop) caps these at `debug` *after* reading
/// the user's log filter ([`log_directives`]), so no `PULSE_LOG=trace` writes
/// a token.
pub const SECRET_BEARING_LOG_TARGETS: &[&str] = &[
    "tungstenite",
    "tokio_tungstenite",
    "h2",
    "hyper",
    "hyper_util",
    "reqwest",
];

/// The directives that cap [`SECRET_BEARING_LOG_TARGETS`] at `debug`, to add to
/// a log filter after the user's own (a later directive for the same target
/// replaces an earlier one).
pub fn log_directives() -> impl Iterator<Item = String> {
    SECRET_BEARING_LOG_TARGETS
        .iter()
        .map(|t| format!("{t}=debug"))
}

/// Protocol version spoken by this crate.
pub const PROTOCOL_VERSION: u32 = 1;

/// Largest WebSocket frame or ingest body either side accepts, in bytes (1 MiB).
pub const MAX_FRAME_BYTES: usize = 1 << 20;
