//! The Pulse reference gateway.
