//! The event streams the benchmarks send: deterministic templates of native
//! Pulse events, small (~250-byte frames: heartbeats, status changes, new
//! approvals, chat messages) and large (~4 KB frames: tickets with a long
//! description, labels, checks and a pull request).
//!
//! The same templates feed the native frame server, the gateway and the Node
//! Socket.IO server (which reads them from a JSON file), so every client in a
//! comparison receives the same stream.

use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// Distinct templates per workload; event `i` uses template `i % TEMPLATES`.
pub const TEMPLATES: usize = 1000;

/// Payload size class.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Size {
    /// ~250-byte frames.
    Small,
    /// ~4 KB frames.
    Large,
}

impl Size {
    /// `small` / `large`.
    pub fn as_str(self) -> &'static str {
        match self {
            Size::Small => "small",
            Size::Large => "large",
        }
    }
}

/// One event template: a native type and its payload.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Template {
    /// Native event type (`agent.heartbeat`…).
    #[serde(rename = "type")]
    pub event_type: String,
    /// Payload.
    pub data: Value,
}

const WORDS: &[&str] = &[
    "deploy",
    "billing",
    "service",
    "rollback",
    "latency",
    "agent",
    "queue",
    "retry",
    "customer",
    "refund",
    "escalation",
    "approval",
    "pipeline",
    "cache",
    "timeout",
    "database",
    "migration",
    "invoice",
    "webhook",
    "token",
    "region",
    "cluster",
    "replica",
    "budget",
    "summary",
    "ticket",
];

/// Deterministic text of about `len` bytes.
fn text(seed: usize, len: usize) -> String {
    let mut s = String::with_capacity(len + 16);
    let mut x = seed.wrapping_mul(2_654_435_761).wrapping_add(7);
    while s.len() < len {
        x = x
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        if !s.is_empty() {
            s.push(' ');
        }
        s.push_str(WORDS[(x >> 33) % WORDS.len()]);
    }
    s
}

const STATUSES: &[&str] = &["idle", "busy", "waiting", "error"];
const STATES: &[&str] = &["backlog", "todo", "in_progress", "review", "done"];

/// Template `i` of `size`.
pub fn template(size: Size, i: usize) -> Template {
    match size {
        Size::Small => match i % 20 {
            0..=9 => Template {
                event_type: "agent.heartbeat".into(),
                data: json!({
                    "id": format!("agent-{}", i % 200),
                    "ts": 1_767_224_700_000i64 + i as i64,
                    "cpu": (i % 100) as f64 / 100.0,
                    "memory_mb": 512 + i % 256,
                    "task": format!("tkt-{}", i % 500),
                }),
            },
            10..=14 => Template {
                event_type: "agent.status_changed".into(),
                data: json!({
                    "id": format!("agent-{}", i % 200),
                    "status": STATUSES[i % STATUSES.len()],
                    "reason": text(i, 24),
                }),
            },
            15..=17 => Template {
                event_type: "approval.created".into(),
                data: json!({
                    "id": format!("apr-{i}"),
                    "title": format!("Deploy service-{} v2.{}.0", i % 37, i % 20),
                    "status": "pending",
                    "requested_by": format!("agent-{}", i % 200),
                    "risk": "medium",
                }),
            },
            _ => Template {
                event_type: "chat.message".into(),
                data: json!({
                    "id": format!("msg-{i}"),
                    "conversation_id": format!("conv-{}", i % 50),
                    "author": "customer",
                    "text": text(i, 60),
                }),
            },
        },
        Size::Large => Template {
            event_type: if i.is_multiple_of(10) {
                "ticket.created".into()
            } else {
                "ticket.updated".into()
            },
            data: json!({
                "id": format!("tkt-{}", i % 500),
                "title": text(i, 60),
                "state": STATES[i % STATES.len()],
                "assignee": format!("agent-{}", i % 200),
                "priority": i % 4,
                "labels": ["backend", "billing", "customer-facing", format!("sprint-{}", i % 12)],
                "description": text(i, 2800),
                "pr": {
                    "number": 4000 + i,
                    "url": format!("https://git.example/acme/billing/pull/{}", 4000 + i),
                    "state": "open",
                    "checks": (0..10).map(|c| json!({
                        "name": format!("ci/{}", WORDS[(i + c) % WORDS.len()]),
                        "status": if (i + c).is_multiple_of(7) { "failed" } else { "passed" },
                        "duration_ms": 1000 + (i * 31 + c * 17) % 90_000,
                    })).collect::<Vec<_>>(),
                },
            }),
        },
    }
}

/// Every template of `size`.
pub fn templates(size: Size) -> Vec<Template> {
    (0..TEMPLATES).map(|i| template(size, i)).collect()
}

/// Write both workloads as JSON files into `dir` (`workload-small.json`,
/// `workload-large.json`) for the Node peers.
pub fn write_files(dir: &Path) -> anyhow::Result<()> {
    for size in [Size::Small, Size::Large] {
        let path = dir.join(format!("workload-{}.json", size.as_str()));
        std::fs::write(&path, serde_json::to_vec(&templates(size))?)?;
    }
    Ok(())
}

/// Pre-encoded pieces of native event frames, so a server can build frame `seq`
/// with two string copies.
pub struct FrameBuilder {
    stream: String,
    parts: Vec<(String, String)>,
}

impl FrameBuilder {
    /// Frames of `size` on `stream`.
    pub fn new(size: Size, stream: &str) -> FrameBuilder {
        let parts = templates(size)
            .into_iter()
            .map(|t| {
                (
                    t.event_type,
                    serde_json::to_string(&t.data).expect("templates serialise"),
                )
            })
            .collect();
        FrameBuilder {
            stream: stream.to_owned(),
            parts,
        }
    }

    /// The encoded event frame with `seq` (template `(seq - 1) % TEMPLATES`).
    pub fn frame(&self, seq: u64) -> String {
        let (ty, data) = &self.parts[(seq as usize - 1) % self.parts.len()];
        format!(
            r#"{{"seq":{seq},"id":"e-{seq}","stream":"{}","type":"{ty}","ts":{},"data":{data}}}"#,
            self.stream,
            1_767_224_700_000u64 + seq
        )
    }

    /// Mean encoded frame size in bytes.
    pub fn mean_frame_bytes(&self) -> f64 {
        let n = self.parts.len() as u64;
        (1..=n).map(|s| self.frame(s).len()).sum::<usize>() as f64 / n as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pulse_protocol::ServerFrame;

    #[test]
    fn every_template_is_a_valid_native_event() {
        for size in [Size::Small, Size::Large] {
            let b = FrameBuilder::new(size, "bench");
            for seq in 1..=TEMPLATES as u64 {
                let f = b.frame(seq);
                let ServerFrame::Event(e) = ServerFrame::decode(&f).unwrap() else {
                    panic!("not an event: {f}");
                };
                assert_eq!(e.seq, seq);
                pulse_protocol::changes_for(&e.event_type, &e.data, e.ts)
                    .unwrap_or_else(|err| panic!("{f}: {err}"));
            }
        }
        let small = FrameBuilder::new(Size::Small, "bench").mean_frame_bytes();
        let large = FrameBuilder::new(Size::Large, "bench").mean_frame_bytes();
        assert!((150.0..400.0).contains(&small), "{small}");
        assert!((3000.0..6000.0).contains(&large), "{large}");
    }
}
