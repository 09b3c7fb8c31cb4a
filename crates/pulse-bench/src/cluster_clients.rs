//! The cluster benchmark's clients, spread over worker processes.
//!
//! Every client is one descriptor in the process that holds it, and this
//! machine's open-files hard limit (20,000 per process) cannot be raised, so
//! 20,000 clients do not fit in one harness process. The harness therefore
//! re-executes itself as `pulse-bench child cluster-clients`, each worker
//! holding a share of the clients ([`Workers::start`]), and aggregates what
//! they report.
//!
//! The line protocol, one JSON object a line:
//! - worker → harness on stdout: [`Report`]: `progress` (counters, whenever they
//!   changed, at most every 20 ms), `ack` (a cutoff took effect), then `done`
//!   with the latency histograms' buckets and the reconnect times;
//! - harness → worker on stdin: [`Command`]: `cutoff` (record no latency after
//!   this `mono_ns`) and `stop`. The end of stdin is a stop too, so a worker
//!   never outlives its harness.
//!
//! Invariants: client `i` (a global index) is the same client whichever worker
//! holds it: its home node, source address and tenant derive from `i` only
//! (`cluster::Client::nth`). Times are `CLOCK_MONOTONIC`, one clock for every
//! process of the machine, so the parent compares them with its own.

use std::io::{BufRead, Write};
use std::net::SocketAddr;
use std::process::ChildStdin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::Context;
use serde::{Deserialize, Serialize};
use tokio::sync::Semaphore;

use crate::cluster::{Client, Kind, Shared};
use crate::harness::Ctx;
use crate::stats::{Latency, Summary};
use crate::sys::{self, Proc};

/// How often a worker reports its counters (when they changed).
const PROGRESS_EVERY: Duration = Duration::from_millis(20);

/// Worker → harness.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Report {
    /// Counters so far.
    Progress(Counters),
    /// The cutoff (`mono_ns`) took effect.
    Ack {
        /// The cutoff acknowledged.
        cutoff_ns: u64,
    },
    /// Every client stopped: what they measured.
    Done(Done),
}

/// A worker's counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Counters {
    /// Clients connected (first connection).
    pub connected: u64,
    /// Clients that could not connect.
    pub failed: u64,
    /// Deliveries recorded.
    pub delivered: u64,
    /// Reconnects completed.
    pub reconnected: u64,
}

/// What a worker's clients measured.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Done {
    /// Latency buckets `(µs, count)` of the clients homed on node A.
    pub a: Vec<(u64, u64)>,
    /// Of those homed on node B.
    pub b: Vec<(u64, u64)>,
    /// When each reconnect completed (`mono_ns`).
    pub reconnected_ns: Vec<u64>,
}

/// Harness → worker.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Command {
    /// Record no latency received after this `mono_ns`.
    Cutoff {
        /// The cutoff.
        ns: u64,
    },
    /// Close every client, report `done` and exit.
    Stop,
}

/// Decode one line of a worker's stdout.
pub fn decode_report(line: &str) -> anyhow::Result<Report> {
    serde_json::from_str(line.trim())
        .with_context(|| format!("not a cluster-clients report: {:.80}", line.trim()))
}

/// Decode one line of a worker's stdin.
pub fn decode_command(line: &str) -> anyhow::Result<Command> {
    serde_json::from_str(line.trim())
        .with_context(|| format!("not a cluster-clients command: {:.80}", line.trim()))
}

fn line<T: Serialize>(v: &T) -> String {
    let mut s = serde_json::to_string(v).expect("plain data serialises");
    s.push('\n');
    s
}

/// Arguments of the `cluster-clients` child role.
#[derive(Debug, clap::Args)]
pub struct WorkerArgs {
    /// Server kind.
    #[arg(long, value_enum)]
    kind: Kind,
    /// Node A's address (clients with an even index are homed there).
    #[arg(long)]
    node_a: SocketAddr,
    /// Node B's address (odd indices; the same as A for a single node).
    #[arg(long)]
    node_b: SocketAddr,
    /// First client index.
    #[arg(long)]
    from: usize,
    /// Clients in this worker.
    #[arg(long)]
    count: usize,
    /// Where the clients homed on node B move when it is gone (default: node A).
    #[arg(long)]
    failover_b: Option<SocketAddr>,
    /// Tenants in the whole run (client `i` follows tenant `i % tenants`).
    #[arg(long)]
    tenants: usize,
    /// Connections opened at once by this worker.
    #[arg(long, default_value_t = 32)]
    gate: usize,
}

/// The `cluster-clients` child role: hold clients `from..from+count` until told
/// to stop (or stdin ends), reporting on stdout.
pub fn worker(args: WorkerArgs) -> anyhow::Result<()> {
    sys::raise_nofile();
    anyhow::ensure!(args.tenants > 0, "--tenants must be at least 1");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let shared = Arc::new(Shared::default());
    let (stop, stop_rx) = tokio::sync::watch::channel(false);
    let gate = Arc::new(Semaphore::new(args.gate.max(1)));
    let nodes = [args.node_a, args.node_b];
    let tasks: Vec<_> = {
        let _guard = rt.enter();
        (args.from..args.from + args.count)
            .map(|i| {
                let c = Client::nth(args.kind, nodes, i, args.tenants, args.failover_b);
                rt.spawn(c.run(shared.clone(), gate.clone(), stop_rx.clone()))
            })
            .collect()
    };
    // Commands arrive on a thread of their own; the end of stdin is a stop.
    let (cmd_tx, cmd_rx) = std::sync::mpsc::channel::<Command>();
    std::thread::spawn(move || {
        let stdin = std::io::stdin();
        for l in stdin.lock().lines() {
            let Ok(l) = l else { break };
            if l.trim().is_empty() {
                continue;
            }
            match decode_command(&l) {
                Ok(c) => {
                    if cmd_tx.send(c).is_err() {
                        return;
                    }
                }
                Err(e) => eprintln!("cluster-clients: {e:#}"),
            }
        }
        let _ = cmd_tx.send(Command::Stop);
    });
    let mut out = std::io::stdout().lock();
    let mut last = None;
    loop {
        let now = Counters {
            connected: shared.connected.load(Ordering::Acquire),
            failed: shared.failed.load(Ordering::Acquire),
            delivered: shared.delivered.load(Ordering::Acquire),
            reconnected: shared.reconnected.lock().map_or(0, |r| r.len() as u64),
        };
        if last != Some(now) {
            out.write_all(line(&Report::Progress(now)).as_bytes())?;
            out.flush()?;
            last = Some(now);
        }
        match cmd_rx.recv_timeout(PROGRESS_EVERY) {
            Ok(Command::Cutoff { ns }) => {
                shared.record_until.store(ns, Ordering::Release);
                out.write_all(line(&Report::Ack { cutoff_ns: ns }).as_bytes())?;
                out.flush()?;
            }
            Ok(Command::Stop) | Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break,
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
        }
    }
    let _ = stop.send(true);
    let samples = rt.block_on(async move {
        let mut all = Vec::new();
        for t in tasks {
            if let Ok(Ok(s)) = t.await {
                all.push(s);
            }
        }
        all
    });
    let (mut a, mut b) = (Latency::new(), Latency::new());
    for (home, ns) in samples {
        let h = if home == 0 { &mut a } else { &mut b };
        for v in ns {
            h.record_ns(v);
        }
    }
    let done = Done {
        a: a.counts(),
        b: b.counts(),
        reconnected_ns: shared
            .reconnected
            .lock()
            .map(|r| r.clone())
            .unwrap_or_default(),
    };
    out.write_all(line(&Report::Done(done)).as_bytes())?;
    out.flush()?;
    drop(out);
    // Don't wait for the blocked stdin reader or the runtime's blocking threads.
    std::process::exit(0);
}

/// One worker as the harness sees it.
struct Worker {
    proc: Proc,
    stdin: ChildStdin,
    seen: Arc<Seen>,
    reader: Option<JoinHandle<anyhow::Result<Done>>>,
}

/// What the harness has read from one worker so far.
#[derive(Default)]
struct Seen {
    connected: AtomicU64,
    failed: AtomicU64,
    delivered: AtomicU64,
    reconnected: AtomicU64,
    /// The last cutoff acknowledged.
    acked: AtomicU64,
    /// Set when its stdout ended or could not be read.
    gone: Mutex<Option<String>>,
}

/// The latencies and reconnect times of every worker, merged.
pub struct Merged {
    /// Every delivery.
    pub all: Summary,
    /// To clients homed on node A.
    pub a: Summary,
    /// To clients homed on node B.
    pub b: Summary,
    /// Every reconnect's time (`mono_ns`).
    pub reconnected_ns: Vec<u64>,
}

/// The worker processes holding one run's clients.
pub struct Workers {
    workers: Vec<Worker>,
}

/// Split `clients` into `(from, count)` shares of at most `per_worker`.
pub fn shares(clients: usize, per_worker: usize) -> Vec<(usize, usize)> {
    let per = per_worker.max(1);
    (0..clients.div_ceil(per))
        .map(|w| (w * per, per.min(clients - w * per)))
        .collect()
}

impl Workers {
    /// Start workers holding `clients` clients of `kind` (at most `per_worker`
    /// each, opening `gate` connections at once in all), client `i` homed on
    /// `nodes[i % 2]`; B's clients move to `failover_b` when given.
    #[allow(clippy::too_many_arguments)]
    pub fn start(
        ctx: &Ctx,
        kind: Kind,
        nodes: [SocketAddr; 2],
        failover_b: Option<SocketAddr>,
        clients: usize,
        tenants: usize,
        per_worker: usize,
        gate: usize,
    ) -> anyhow::Result<Workers> {
        let parts = shares(clients, per_worker);
        let gate = gate.div_ceil(parts.len().max(1)).max(1);
        let mut workers = Vec::with_capacity(parts.len());
        for (from, count) in parts {
            let args: Vec<String> = vec![
                "cluster-clients".into(),
                "--kind".into(),
                kind.arg().into(),
                "--node-a".into(),
                nodes[0].to_string(),
                "--node-b".into(),
                nodes[1].to_string(),
                "--from".into(),
                from.to_string(),
                "--count".into(),
                count.to_string(),
                "--tenants".into(),
                tenants.to_string(),
                "--gate".into(),
                gate.to_string(),
            ];
            let mut args = args;
            if let Some(c) = failover_b {
                args.extend(["--failover-b".into(), c.to_string()]);
            }
            let mut proc = ctx.child(&format!("cluster-clients-{from}"), &args, None)?;
            let stdin = proc.take_stdin().context("worker stdin")?;
            let stdout = proc.take_stdout().context("worker stdout")?;
            let seen = Arc::new(Seen::default());
            let s = seen.clone();
            let reader = std::thread::spawn(move || read_reports(stdout, &s));
            workers.push(Worker {
                proc,
                stdin,
                seen,
                reader: Some(reader),
            });
        }
        Ok(Workers { workers })
    }

    fn sum(&self, f: impl Fn(&Seen) -> &AtomicU64) -> u64 {
        self.workers
            .iter()
            .map(|w| f(&w.seen).load(Ordering::Acquire))
            .sum()
    }

    /// How many worker processes there are.
    pub fn count(&self) -> usize {
        self.workers.len()
    }

    /// Clients connected, all workers together.
    pub fn connected(&self) -> u64 {
        self.sum(|s| &s.connected)
    }

    /// Clients that could not connect.
    pub fn failed(&self) -> u64 {
        self.sum(|s| &s.failed)
    }

    /// Deliveries recorded.
    pub fn delivered(&self) -> u64 {
        self.sum(|s| &s.delivered)
    }

    /// Reconnects completed.
    pub fn reconnected(&self) -> u64 {
        self.sum(|s| &s.reconnected)
    }

    /// The first worker that is gone before `done`, and why.
    pub fn gone(&self) -> Option<String> {
        self.workers
            .iter()
            .find_map(|w| w.seen.gone.lock().ok().and_then(|g| g.clone()))
    }

    /// Record no latency after `ns` (`mono_ns`) in any worker; returns once every
    /// worker acknowledged it (at most 10 s).
    pub fn cutoff(&mut self, ns: u64) -> anyhow::Result<()> {
        let cmd = line(&Command::Cutoff { ns });
        for w in &mut self.workers {
            w.stdin.write_all(cmd.as_bytes())?;
            w.stdin.flush()?;
        }
        let until = Instant::now() + Duration::from_secs(10);
        while self
            .workers
            .iter()
            .any(|w| w.seen.acked.load(Ordering::Acquire) < ns)
        {
            if let Some(why) = self.gone() {
                anyhow::bail!("a client worker is gone: {why}");
            }
            anyhow::ensure!(Instant::now() < until, "client workers did not acknowledge");
            std::thread::sleep(Duration::from_millis(2));
        }
        Ok(())
    }

    /// Stop every worker and merge what they measured.
    pub fn finish(mut self) -> anyhow::Result<Merged> {
        let stop = line(&Command::Stop);
        for w in &mut self.workers {
            // A worker that is already gone shows up below, at its reader.
            let _ = w.stdin.write_all(stop.as_bytes());
            let _ = w.stdin.flush();
        }
        let (mut all, mut a, mut b) = (Latency::new(), Latency::new(), Latency::new());
        let mut reconnected_ns = Vec::new();
        for w in &mut self.workers {
            let done = w
                .reader
                .take()
                .context("worker already finished")?
                .join()
                .map_err(|_| anyhow::anyhow!("worker reader panicked"))??;
            all.add_counts(&done.a);
            all.add_counts(&done.b);
            a.add_counts(&done.a);
            b.add_counts(&done.b);
            reconnected_ns.extend(done.reconnected_ns);
            w.proc.stop(Duration::from_secs(5));
        }
        Ok(Merged {
            all: all.summary(),
            a: a.summary(),
            b: b.summary(),
            reconnected_ns,
        })
    }
}

/// Read a worker's reports until `done` (returned) or the end of its stdout.
fn read_reports(mut r: impl BufRead, seen: &Seen) -> anyhow::Result<Done> {
    let mut l = String::new();
    let result = loop {
        l.clear();
        match r.read_line(&mut l) {
            Ok(0) => break Err(anyhow::anyhow!("exited before reporting done")),
            Ok(_) => {}
            Err(e) => break Err(anyhow::Error::new(e).context("reading a worker's stdout")),
        }
        if l.trim().is_empty() {
            continue;
        }
        match decode_report(&l) {
            Ok(Report::Progress(c)) => {
                seen.connected.store(c.connected, Ordering::Release);
                seen.failed.store(c.failed, Ordering::Release);
                seen.delivered.store(c.delivered, Ordering::Release);
                seen.reconnected.store(c.reconnected, Ordering::Release);
            }
            Ok(Report::Ack { cutoff_ns }) => seen.acked.store(cutoff_ns, Ordering::Release),
            Ok(Report::Done(d)) => break Ok(d),
            Err(e) => break Err(e),
        }
    };
    if let Err(e) = &result {
        if let Ok(mut g) = seen.gone.lock() {
            *g = Some(format!("{e:#}"));
        }
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_cover_every_client_once() {
        assert_eq!(shares(20_000, 5_000).len(), 4);
        assert_eq!(shares(10, 4), vec![(0, 4), (4, 4), (8, 2)]);
        assert_eq!(shares(0, 4), Vec::<(usize, usize)>::new());
        let s = shares(19_671, 5_000);
        assert_eq!(s.iter().map(|p| p.1).sum::<usize>(), 19_671);
        assert!(s.windows(2).all(|w| w[0].0 + w[0].1 == w[1].0));
    }

    #[test]
    fn lines_round_trip() {
        let reports = [
            Report::Progress(Counters {
                connected: 3,
                failed: 1,
                delivered: 7,
                reconnected: 2,
            }),
            Report::Ack { cutoff_ns: 42 },
            Report::Done(Done {
                a: vec![(1, 2), (1000, 3)],
                b: vec![],
                reconnected_ns: vec![5, 6],
            }),
        ];
        for r in reports {
            let l = line(&r);
            assert!(l.ends_with('\n') && !l[..l.len() - 1].contains('\n'));
            assert_eq!(decode_report(&l).unwrap(), r);
        }
        for c in [Command::Cutoff { ns: 9 }, Command::Stop] {
            assert_eq!(decode_command(&line(&c)).unwrap(), c);
        }
        assert_eq!(line(&Command::Stop), "\"stop\"\n");
    }

    #[test]
    fn garbage_is_a_clear_error() {
        for bad in [
            "",
            "{",
            "stop",
            "{\"progress\":{\"connected\":-1}}",
            "\u{0}\u{1}",
            "[1,2]",
        ] {
            let e = decode_report(bad).unwrap_err();
            assert!(
                format!("{e:#}").contains("not a cluster-clients report"),
                "{e:#}"
            );
            let e = decode_command(bad).unwrap_err();
            assert!(
                format!("{e:#}").contains("not a cluster-clients command"),
                "{e:#}"
            );
        }
        assert!(decode_command("{\"cutoff\":{\"ns\":\"soon\"}}").is_err());
    }

    #[test]
    fn reader_keeps_counters_and_stops_at_garbage() {
        let seen = Seen::default();
        let text = format!(
            "{}{}\n{}",
            line(&Report::Progress(Counters {
                connected: 5,
                ..Counters::default()
            })),
            line(&Report::Ack { cutoff_ns: 11 }).trim_end(),
            line(&Report::Done(Done {
                reconnected_ns: vec![1],
                ..Done::default()
            }))
        );
        let done = read_reports(std::io::Cursor::new(text), &seen).unwrap();
        assert_eq!(done.reconnected_ns, vec![1]);
        assert_eq!(seen.connected.load(Ordering::Acquire), 5);
        assert_eq!(seen.acked.load(Ordering::Acquire), 11);
        assert!(seen.gone.lock().unwrap().is_none());

        let cut = Seen::default();
        let e = read_reports(
            std::io::Cursor::new(line(&Report::Ack { cutoff_ns: 1 })),
            &cut,
        )
        .unwrap_err();
        assert!(format!("{e:#}").contains("before reporting done"));
        assert!(cut.gone.lock().unwrap().is_some());

        let bad = Seen::default();
        let e = read_reports(std::io::Cursor::new("panic: oops\n"), &bad).unwrap_err();
        assert!(format!("{e:#}").contains("not a cluster-clients report"));
        assert!(bad
            .gone
            .lock()
            .unwrap()
            .as_deref()
            .unwrap()
            .contains("oops"));
    }
}
