//! SQLite helpers that both of Pulse's SQLite stores use: the client cache
//! (`pulse-core`'s store) and the gateway's log store (`pulse-gateway`). Only
//! what both need lives here, so that each rule has one home.

pub mod checkpoint;
pub mod text;
