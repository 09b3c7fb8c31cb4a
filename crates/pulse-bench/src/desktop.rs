//! Benchmark 6, the desktop app: cold start to first paint from a cache of
//! 10,000 entities, resident memory idle and under 1,000 events/s, and event →
//! DOM latency. (Filled in once the app exposes what is needed; until then every
//! figure is reported as not measured, with the reason.)

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::harness::Ctx;

/// One desktop figure: a value, or why there is none.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Figure {
    /// The value (unit in the field name of the owner).
    pub value: Option<f64>,
    /// How it was measured, or why it was not.
    pub note: String,
}

/// Result of the desktop benchmark.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct DesktopResult {
    /// Cold start to first paint, ms.
    pub cold_start_ms: Figure,
    /// RSS idle with 10,000 cached entities, MiB (whole process tree).
    pub idle_rss_mib: Figure,
    /// RSS under 1,000 events/s, MiB (whole process tree).
    pub busy_rss_mib: Figure,
    /// Event → DOM latency p99 at 1,000 events/s, ms.
    pub dom_p99_ms: Figure,
    /// Event → DOM latency p50 at 1,000 events/s, ms.
    pub dom_p50_ms: Figure,
}

/// Run it with the app binary at `app`.
pub fn run(_ctx: &Ctx, app: &Path) -> anyhow::Result<DesktopResult> {
    let why = format!(
        "not measured in this run: no desktop app binary at {}",
        app.display()
    );
    let f = || Figure {
        value: None,
        note: why.clone(),
    };
    Ok(DesktopResult {
        cold_start_ms: f(),
        idle_rss_mib: f(),
        busy_rss_mib: f(),
        dom_p99_ms: f(),
        dom_p50_ms: f(),
    })
}
