//! Headless Pulse engine.
