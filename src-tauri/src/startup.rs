//! Start-up phase times, for finding where a cold start goes: with
//! `PULSE_STARTUP_TRACE=1` each [`mark`] prints one line to stderr,
//! `pulse startup: PHASE +N.N ms`, N the time since the process started (the
//! kernel's start time, 10 ms resolution, as the desktop benchmark counts it; the
//! phases' differences are exact).
//!
//! Invariants: a line names a phase and a time, nothing else (no URL, path, token or
//! entity); without the variable a mark costs one load of a flag.

use std::sync::OnceLock;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// The first mark's instant and the process's age then (ms), when tracing.
static ORIGIN: OnceLock<Option<(Instant, f64)>> = OnceLock::new();

fn origin() -> Option<(Instant, f64)> {
    *ORIGIN.get_or_init(|| {
        std::env::var_os("PULSE_STARTUP_TRACE")
            .is_some_and(|v| v == "1")
            .then(|| (Instant::now(), process_age_ms().unwrap_or(0.0)))
    })
}

/// Whether `PULSE_STARTUP_TRACE=1`.
pub fn enabled() -> bool {
    origin().is_some()
}

/// This process's age in ms, from `/proc` (start time in clock ticks after boot).
fn process_age_ms() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command (which may hold spaces) closed by the last ')'.
    let after = stat.rsplit_once(')')?.1;
    let start_ticks: f64 = after.split_whitespace().nth(19)?.parse().ok()?;
    let uptime: f64 = std::fs::read_to_string("/proc/uptime")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    // Clock ticks per second: 100 on Linux (USER_HZ).
    Some((uptime - start_ticks / 100.0) * 1000.0)
}

/// Milliseconds since the process started, when tracing.
pub fn since_start_ms() -> Option<f64> {
    origin().map(|(at, age)| age + at.elapsed().as_secs_f64() * 1000.0)
}

/// Print `phase` and the time since the process started (when tracing).
pub fn mark(phase: &str) {
    if let Some(ms) = since_start_ms() {
        eprintln!("pulse startup: {phase:<34} +{ms:.1} ms");
    }
}

/// Print a phase the page measured: `epoch_ms` is its time (the page's
/// `performance.timeOrigin + performance.now()`), told in the shell's terms.
pub fn mark_at_epoch(phase: &str, epoch_ms: f64) {
    let Some(ms) = since_start_ms() else {
        return;
    };
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64() * 1000.0)
        .unwrap_or(0.0);
    if epoch_ms.is_finite() && epoch_ms > 0.0 {
        eprintln!(
            "pulse startup: {phase:<34} +{:.1} ms",
            ms - (now - epoch_ms)
        );
    }
}
