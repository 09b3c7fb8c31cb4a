//! Where an update's time goes between the publisher and the DOM, when the app
//! runs with `PULSE_LATENCY_TRACE=1` (src-tauri/src/latency.rs): each batch that
//! carried a marker has the shell's marks (`received` from the core, `emitted` to
//! the webview) and the page's (`arrived` in its event handler, `due`: when its
//! scheduler meant to apply it, `applied`: its apply began), epoch ms, read from
//! `window.__pulseLatency`. Per marker the stages are:
//!
//! - **core**: publisher's request → the shell has the batch (gateway, socket,
//!   the client session's decode and commit, the pump);
//! - **payload**: the shell builds the batch's JSON;
//! - **ipc**: emitted → the page's handler (Tauri's emit, the GTK main loop,
//!   WebKit's IPC to the web process, the event's dispatch in JS);
//! - **gap**: the handler → when the apply was due (the scheduler's gap after the
//!   last apply; 0 when the page was quiet);
//! - **late**: due → the apply began (a busy page thread, the host);
//! - **dom**: the apply → the DOM's mutation (apply, Svelte, the observer).
//!
//! Invariant: the stages of one marker add up to its event → DOM latency.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::stats::Latency;

/// The stages' names, in order.
pub const NAMES: [&str; 6] = ["core", "payload", "ipc", "gap", "late", "dom"];

/// One marker's stages, ms (in [`NAMES`]' order).
pub type Split = [f64; 6];

/// A batch's marks, epoch ms: `[received, emitted, arrived, due, applied]`.
pub type Marks = [f64; 5];

/// A phase's stages: per stage p50 / p99 / max (ms), and the slowest markers' splits.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Stages {
    /// Markers with a trace.
    pub traced: u64,
    /// `[name, p50, p99, max]` per stage.
    pub summary: Vec<(String, f64, f64, f64)>,
    /// The slowest markers (by total): `[total, core, payload, ipc, gap, late, dom]`.
    pub slowest: Vec<[f64; 7]>,
    /// Updates per traced batch: median and max.
    pub batch_updates: (f64, f64),
}

/// The marker number a stats block's data holds (`{"marker": N}`, at any depth).
fn marker_of(v: &Value) -> Option<u64> {
    match v {
        Value::Object(m) => m
            .get("marker")
            .and_then(Value::as_u64)
            .or_else(|| m.values().find_map(marker_of)),
        _ => None,
    }
}

/// Marker k (1-based) → its batch's [`Marks`] and update count, from
/// `window.__pulseLatency` (a trace without `due` was due when it arrived).
pub fn traces(v: &Value) -> Vec<(u64, Marks, u64)> {
    let mut out = Vec::new();
    for t in v.as_array().into_iter().flatten() {
        let f = |k: &str| t[k].as_f64();
        let (Some(r), Some(e), Some(a), Some(p)) =
            (f("received"), f("emitted"), f("arrived"), f("applied"))
        else {
            continue;
        };
        let d = f("due").unwrap_or(a);
        let n = t["updates"].as_u64().unwrap_or(0);
        for s in t["stats"].as_array().into_iter().flatten() {
            if let Some(k) = marker_of(s) {
                out.push((k, [r, e, a, d, p], n));
            }
        }
    }
    out
}

/// The split of a marker sent at `sent` and seen in the DOM at `dom` (epoch ms).
pub fn split(sent: f64, marks: Marks, dom: f64) -> Split {
    let [r, e, a, d, p] = marks;
    [r - sent, e - r, a - e, d - a, p - d, dom - p]
}

/// Summarise a phase's splits (with each batch's update count).
pub fn summarise(splits: &[(Split, u64)]) -> Stages {
    let mut lat: Vec<Latency> = NAMES.iter().map(|_| Latency::new()).collect();
    for (s, _) in splits {
        for (l, v) in lat.iter_mut().zip(s) {
            l.record_ns((v.max(0.001) * 1e6) as u64);
        }
    }
    let summary = NAMES
        .iter()
        .zip(&lat)
        .map(|(n, l)| {
            let s = l.summary();
            (n.to_string(), s.p50_ms, s.p99_ms, s.max_ms)
        })
        .collect();
    let mut slowest: Vec<[f64; 7]> = splits
        .iter()
        .map(|(s, _)| [s.iter().sum(), s[0], s[1], s[2], s[3], s[4], s[5]])
        .collect();
    slowest.sort_by(|a, b| b[0].total_cmp(&a[0]));
    slowest.truncate(5);
    let mut sizes: Vec<f64> = splits.iter().map(|(_, n)| *n as f64).collect();
    sizes.sort_by(f64::total_cmp);
    Stages {
        traced: splits.len() as u64,
        summary,
        slowest,
        batch_updates: (
            sizes.get(sizes.len() / 2).copied().unwrap_or(0.0),
            sizes.last().copied().unwrap_or(0.0),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn traces_find_markers_and_splits_add_up() {
        let v = json!([
            {"received": 10.0, "emitted": 11.0, "arrived": 13.0, "due": 13.5, "applied": 14.0, "updates": 3,
             "stats": [{"marker": 2}]},
            {"received": 1.0, "stats": [{"marker": 3}]},
            "garbage",
            {"received": 20.0, "emitted": 20.5, "arrived": 21.0, "applied": 25.0, "updates": 1,
             "stats": [{"x": {"marker": 4}}, {"other": 1}]}
        ]);
        let t = traces(&v);
        assert_eq!(t.len(), 2);
        assert_eq!((t[0].0, t[0].2), (2, 3));
        assert_eq!(t[1].0, 4);
        let s = split(5.0, t[0].1, 16.0);
        assert_eq!(s, [5.0, 1.0, 2.0, 0.5, 0.5, 2.0]);
        // Without `due`: no gap, all late.
        assert_eq!(split(19.0, t[1].1, 26.0)[3..5], [0.0, 4.0]);
        assert_eq!(s.iter().sum::<f64>(), 16.0 - 5.0);
        let st = summarise(&[(s, 3), (split(19.0, t[1].1, 26.0), 1)]);
        assert_eq!(st.traced, 2);
        assert_eq!(st.summary.len(), NAMES.len());
        assert_eq!(st.slowest[0][0], 11.0);
        assert_eq!(st.batch_updates, (3.0, 3.0));
        assert!(traces(&json!(null)).is_empty());
    }
}
