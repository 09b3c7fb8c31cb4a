//! Counters exported at `GET /metrics` in the Prometheus text format (0.0.4).
//!
//! Every counter is a relaxed atomic: updating one never blocks a request, and a
//! scrape sees each value as of some recent moment (not one atomic instant).

use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use crate::hub::TenantHub;

/// The gateway's counters.
#[derive(Debug, Default)]
pub struct Metrics {
    /// WebSocket connections currently open.
    pub connections_open: AtomicI64,
    /// WebSocket connections accepted since start.
    pub connections_total: AtomicU64,
    /// Events committed (ingest, mutations, demo).
    pub events_ingested: AtomicU64,
    /// Ingest requests refused (bad body, bad event, wrong tenant or role).
    pub ingest_errors: AtomicU64,
    /// Frames sent on WebSockets (events and control frames).
    pub frames_sent: AtomicU64,
    /// Subscriptions answered with `recovered: true`.
    pub replays: AtomicU64,
    /// Events sent as part of a replay.
    pub replayed_events: AtomicU64,
    /// Subscriptions answered with `recovered: false`, by reason
    /// (`no_cursor`, `epoch_changed`, `truncated`, `ahead`).
    pub resyncs: [AtomicU64; 4],
    /// Snapshots served.
    pub snapshots_served: AtomicU64,
    /// Clients disconnected because their send queue overflowed or a send timed out.
    pub slow_clients: AtomicU64,
    /// Requests refused for a missing, bad or expired token.
    pub auth_failures: AtomicU64,
    /// Ingested events not stored again because their id was already in the log.
    pub duplicates: AtomicU64,
    /// Events this node's tail received from a shared store (Redis).
    pub tailed_events: AtomicU64,
    /// Log reads served by another identical read already in flight.
    pub merged_reads: AtomicU64,
    /// Failed blocking reads of the tail.
    pub tail_errors: AtomicU64,
    /// 1 while the store cannot be reached (last health check or tail read failed).
    pub store_unavailable: AtomicU64,
    /// The `--source` consumer's counters.
    pub source: std::sync::Arc<crate::source::SourceStats>,
    /// The LangGraph source's counters.
    pub langgraph: std::sync::Arc<crate::langgraph::LangGraphStats>,
}

/// The `recovered: false` reasons, in the order of [`Metrics::resyncs`].
pub const RESYNC_REASONS: [&str; 4] = ["no_cursor", "epoch_changed", "truncated", "ahead"];

fn escape(label: &str) -> String {
    label
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

impl Metrics {
    /// Count one `recovered: false` answer for `reason`.
    pub fn resync(&self, reason: &str) {
        if let Some(i) = RESYNC_REASONS.iter().position(|r| *r == reason) {
            self.resyncs[i].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Render every metric, with the head seq of each of `tenants` when
    /// `per_tenant` (the caller showed the metrics token); without it the output
    /// names no tenant.
    pub fn render(&self, tenants: &[std::sync::Arc<TenantHub>], per_tenant: bool) -> String {
        let mut out = String::with_capacity(2048);
        let mut one = |name: &str, kind: &str, help: &str, value: String| {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}"
            );
        };
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed).to_string();
        one(
            "pulse_connections_open",
            "gauge",
            "WebSocket connections currently open.",
            self.connections_open.load(Ordering::Relaxed).to_string(),
        );
        one(
            "pulse_connections_total",
            "counter",
            "WebSocket connections accepted.",
            get(&self.connections_total),
        );
        one(
            "pulse_events_ingested_total",
            "counter",
            "Events committed to a log.",
            get(&self.events_ingested),
        );
        one(
            "pulse_ingest_errors_total",
            "counter",
            "Ingest requests refused.",
            get(&self.ingest_errors),
        );
        one(
            "pulse_frames_sent_total",
            "counter",
            "WebSocket frames sent.",
            get(&self.frames_sent),
        );
        one(
            "pulse_replays_total",
            "counter",
            "Subscriptions that resumed with recovered=true.",
            get(&self.replays),
        );
        one(
            "pulse_replayed_events_total",
            "counter",
            "Events sent during replays.",
            get(&self.replayed_events),
        );
        one(
            "pulse_snapshots_served_total",
            "counter",
            "Snapshots served.",
            get(&self.snapshots_served),
        );
        one(
            "pulse_slow_clients_disconnected_total",
            "counter",
            "Clients disconnected for not keeping up.",
            get(&self.slow_clients),
        );
        one(
            "pulse_auth_failures_total",
            "counter",
            "Requests refused for a missing, invalid or expired token.",
            get(&self.auth_failures),
        );
        one(
            "pulse_ingest_duplicates_total",
            "counter",
            "Ingested events skipped because their id was already in the log.",
            get(&self.duplicates),
        );
        one(
            "pulse_tailed_events_total",
            "counter",
            "Events received by this node's tail of a shared store.",
            get(&self.tailed_events),
        );
        one(
            "pulse_merged_reads_total",
            "counter",
            "Log reads (replays) served by an identical read already in flight.",
            get(&self.merged_reads),
        );
        one(
            "pulse_tail_errors_total",
            "counter",
            "Failed blocking reads of this node's tail of a shared store.",
            get(&self.tail_errors),
        );
        one(
            "pulse_store_unavailable",
            "gauge",
            "1 while the store cannot be reached.",
            get(&self.store_unavailable),
        );
        one(
            "pulse_source_acked_total",
            "counter",
            "Source entries committed and acknowledged.",
            get(&self.source.acked),
        );
        one(
            "pulse_source_unmapped_total",
            "counter",
            "Source entries acknowledged without an event (no rule for their type).",
            get(&self.source.unmapped),
        );
        one(
            "pulse_source_dead_total",
            "counter",
            "Source entries refused and copied to the dead-letter stream.",
            get(&self.source.dead),
        );
        one(
            "pulse_source_errors_total",
            "counter",
            "Failed source rounds (Redis or the store down).",
            get(&self.source.errors),
        );
        let lg = &self.langgraph;
        for (name, help, v) in [
            (
                "pulse_langgraph_webhooks_total",
                "LangGraph webhooks accepted.",
                &lg.webhooks,
            ),
            (
                "pulse_langgraph_webhooks_refused_total",
                "LangGraph webhooks refused (secret or body).",
                &lg.webhooks_refused,
            ),
            (
                "pulse_langgraph_reconciles_total",
                "Reconciling rounds of the LangGraph source.",
                &lg.reconciles,
            ),
            (
                "pulse_langgraph_resumes_total",
                "Threads resumed with an answer.",
                &lg.resumes,
            ),
            (
                "pulse_langgraph_elsewhere_total",
                "Interrupts found answered outside Pulse.",
                &lg.elsewhere,
            ),
            (
                "pulse_langgraph_errors_total",
                "Failed calls to LangGraph or the store.",
                &lg.errors,
            ),
        ] {
            one(name, "counter", help, get(v));
        }
        let _ = writeln!(
            out,
            "# HELP pulse_resyncs_total Subscriptions answered recovered=false, by reason.\n\
             # TYPE pulse_resyncs_total counter"
        );
        for (reason, n) in RESYNC_REASONS.iter().zip(&self.resyncs) {
            let _ = writeln!(out, "pulse_resyncs_total{{reason=\"{reason}\"}} {}", get(n));
        }
        if !per_tenant {
            return out;
        }
        let _ = writeln!(
            out,
            "# HELP pulse_stream_head_seq Highest committed seq per tenant.\n\
             # TYPE pulse_stream_head_seq gauge"
        );
        for t in tenants {
            let _ = writeln!(
                out,
                "pulse_stream_head_seq{{tenant=\"{}\"}} {}",
                escape(t.name()),
                t.head()
            );
        }
        out
    }
}
