//! Update latency marks, for finding where a live update's time goes between the
//! core and the page: with `PULSE_LATENCY_TRACE=1` each [`UpdateBatch`] the shell
//! emits carries a [`BatchTrace`] (when the core's pump handed it over and when its
//! payload was built, epoch ms), the page adds its own marks to the batches that
//! carry one (ui/src/lib/state/app.svelte.ts, `LatencyTrace`) and the desktop
//! benchmark reads them (crates/pulse-bench/src/desktop).
//!
//! Invariants: without the variable no batch carries a trace and a mark costs one
//! load of a flag; the marks are times only (no entity, URL or token).
//!
//! [`UpdateBatch`]: crate::dto::UpdateBatch
//! [`BatchTrace`]: crate::dto::BatchTrace

use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

/// The variable that turns the marks on (`1`).
pub const ENV: &str = "PULSE_LATENCY_TRACE";

static ENABLED: OnceLock<bool> = OnceLock::new();

/// Whether `PULSE_LATENCY_TRACE=1` (read once).
pub fn enabled() -> bool {
    *ENABLED.get_or_init(|| std::env::var_os(ENV).is_some_and(|v| v == "1"))
}

/// Now in epoch ms (µs resolution), when tracing.
pub fn mark() -> Option<f64> {
    enabled().then(epoch_ms)
}

/// Now in epoch ms, µs resolution (the page's `performance.timeOrigin +
/// performance.now()` counts the same way).
pub fn epoch_ms() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64() * 1000.0)
        .unwrap_or(0.0)
}
