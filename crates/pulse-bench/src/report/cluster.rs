//! Section 8 of the report: two nodes on Redis, Pulse against Socket.IO with the
//! Redis Streams adapter, and one node's limit (see `crate::cluster`).

use std::fmt::Write as _;

use super::Results;
use crate::cluster::{Limit, Pair};
use crate::svg::fmt_num;

fn ms(v: f64) -> String {
    format!("{} ms", fmt_num(v))
}

fn pair_row(md: &mut String, p: &Pair) {
    if let Some(why) = &p.skipped {
        let _ = writeln!(
            md,
            "| {} | {} | not measured: {} | – | – | – | – | – | – |",
            p.server,
            fmt_num(p.clients as f64),
            why.replace('|', "/").replace('\n', " ")
        );
        return;
    }
    let per = |i: usize| {
        p.nodes.get(i).map_or("–".into(), |n| {
            format!("{} KiB", fmt_num(n.per_conn_kib()))
        })
    };
    let _ = writeln!(
        md,
        "| {} | {} | {} of {} | {} | {} / {} | {} / {} | {} of {} in {} s{} | {} | {} s |",
        p.server,
        fmt_num(p.clients as f64),
        fmt_num(p.delivered as f64),
        fmt_num(p.expected as f64),
        ms(p.latency.p99_ms),
        ms(p.latency_a.p99_ms),
        ms(p.latency_b.p99_ms),
        per(0),
        per(1),
        fmt_num(p.herd.back as f64),
        fmt_num(p.herd.moved as f64),
        fmt_num(p.herd.all_back_s),
        if p.herd.standby.is_some() { " ²" } else { "" },
        fmt_num(p.herd.peak_per_s),
        fmt_num(p.connect_s),
    );
}

fn limit_row(md: &mut String, l: &Limit) {
    if let Some(why) = &l.skipped {
        let _ = writeln!(
            md,
            "| {} | {} | not measured: {} | – | – | – | – | – |",
            l.server,
            fmt_num(l.tried as f64),
            why.replace('|', "/").replace('\n', " ")
        );
        return;
    }
    let fds = if l.nofile > 0 {
        format!("{} / {}", fmt_num(l.fds as f64), fmt_num(l.nofile as f64))
    } else {
        format!("{} / –", fmt_num(l.fds as f64))
    };
    let _ = writeln!(
        md,
        "| {} | {}{} | {}{} | {} | {} MiB ({} KiB each) | {} / {} | {} | {} of {} |",
        l.server,
        fmt_num(l.tried as f64),
        if l.cap.is_some() { " ¹" } else { "" },
        fmt_num(l.held as f64),
        l.stopped_by
            .as_deref()
            .map_or(String::new(), |w| format!(" ({w})")),
        fds,
        fmt_num(l.memory.connected_mib),
        fmt_num(l.memory.per_conn_kib()),
        fmt_num(l.idle_cores),
        fmt_num(l.fanout_cores),
        ms(l.latency.p99_ms),
        fmt_num(l.delivered as f64),
        fmt_num(l.expected as f64),
    );
}

/// CPU use in cores; below the 10 ms tick of `/proc/PID/stat` over a second as such.
fn cores_of(v: f64) -> String {
    if v < 0.01 {
        "under 0.01 cores".into()
    } else {
        format!("{} cores", fmt_num(v))
    }
}

/// What bounded one node's count, in words, from what was measured.
fn limit_note(md: &mut String, l: &Limit, cores: usize) {
    if l.skipped.is_some() {
        return;
    }
    let Some(cap) = &l.cap else {
        let _ = writeln!(
            md,
            "- {}: the run's bound ({}) was below the node's open-files limit; {} held.",
            l.server,
            fmt_num(l.bound.max(l.tried) as f64),
            fmt_num(l.held as f64)
        );
        return;
    };
    let _ = write!(md, "- ¹ {}: the bound was {cap}. ", l.server);
    if l.held == l.tried {
        let _ = writeln!(
            md,
            "It held every connection it was given, so the count is this machine's \
             per-process descriptor limit, not the node's: there the node used {} \
             holding them idle and {} {}in the fan-out, and the machine still had {} MiB of \
             memory available.",
            cores_of(l.idle_cores),
            fmt_num(l.fanout_cores),
            if cores > 0 {
                format!("of its {cores} cores ")
            } else {
                String::new()
            },
            fmt_num(l.mem_available_mib)
        );
    } else {
        let _ = writeln!(
            md,
            "It held {} of the {} it was given: it stopped before the descriptor limit.",
            fmt_num(l.held as f64),
            fmt_num(l.tried as f64)
        );
    }
}

pub(super) fn cluster(md: &mut String, r: &Results) {
    let _ = writeln!(md, "## 8. Cluster: two nodes on Redis\n");
    let Some(c) = &r.cluster else {
        let _ = writeln!(md, "Not measured in this run.\n");
        return;
    };
    let _ = writeln!(
        md,
        "**What**: two nodes of each server on one `redis-server` (Debian package, no \
         persistence): two Pulse gateways (`--store redis://… --node-id a|b`), and two stock \
         Socket.IO 4 servers with `@socket.io/redis-streams-adapter` (npm, pinned in \
         `benches/peers/package-lock.json`). Half the clients on each node, 100 per tenant, \
         spread over 127.0.0.2–127.0.0.9; events published at node A at {} events/s in all, so \
         node B's clients get theirs through Redis. Then node B is SIGKILLed and its clients move \
         at once to {}: the harness's lean clients do so for both servers, as Pulse's own \
         failover does (Socket.IO's stock client would first wait its `reconnectionDelay`, \
         1 s ± 50 %). Pulse's clients resume from their cursors; Socket.IO's rejoin. Peak \
         reconnects/s is the herd's busiest 100 ms window, per second. **Memory per \
         connection** is each node's `VmRSS` with its clients connected minus before any, over \
         its clients. **One node's limit**: a single node (on its Redis) is given idle \
         connections up to this run's bound; the most it held, its memory, and fan-out p99 there \
         (one event per second per tenant), with the descriptors it had open, its CPU \
         holding them idle and during the fan-out. Generator, Redis and nodes share this \
         machine's CPUs.\n",
        c.pairs
            .first()
            .map_or("–".into(), |p| fmt_num(p.events_per_s)),
        if c.pairs.iter().any(|p| p.herd.standby.is_some()) {
            "a standby node C, since node A cannot take them all here (see ²)"
        } else {
            "node A"
        }
    );
    let workers = c.pairs.iter().map(|p| p.workers).max().unwrap_or(0);
    if workers > 0 {
        let _ = writeln!(
            md,
            "**Clients**: each client is one descriptor in the process holding it{}, so the \
             harness holds them in worker processes (`pulse-bench child cluster-clients`, up to \
             {} per measurement here, at most {} clients each), which report their latencies \
             and reconnect times to it.\n",
            if c.nofile > 0 {
                format!(
                    ", and a process here may open at most {} files{}",
                    fmt_num(c.nofile as f64),
                    c.nofile_refused
                        .as_deref()
                        .map_or(String::new(), |w| format!(" ({w})"))
                )
            } else {
                String::new()
            },
            workers.max(c.limits.iter().map(|l| l.workers).max().unwrap_or(0)),
            fmt_num(c.per_worker as f64)
        );
    }
    let _ = writeln!(
        md,
        "| Servers | Clients | Deliveries | p99 | p99 on A / on B | Per connection A / B | Herd: back after B's kill | Peak reconnects/s | Connect all |\n|---|---|---|---|---|---|---|---|---|"
    );
    for p in &c.pairs {
        pair_row(md, p);
    }
    let moved: Vec<_> = c
        .pairs
        .iter()
        .filter_map(|p| p.herd.standby.as_ref().map(|why| (p, why)))
        .collect();
    if !moved.is_empty() {
        let _ = writeln!(md);
    }
    for (p, why) in moved {
        let _ = writeln!(
            md,
            "- ² {}: node B's clients moved to a standby node C (started with the others, \
             idle until then) because {why}; the herd is still {} reconnects onto one server.",
            p.server,
            fmt_num(p.herd.moved as f64)
        );
    }
    let _ = writeln!(
        md,
        "\n| One node | Connections tried | Held | Descriptors open / limit | Memory there | Node CPU idle / in fan-out (cores) | Fan-out p99 there | Deliveries |\n|---|---|---|---|---|---|---|---|"
    );
    for l in &c.limits {
        limit_row(md, l);
    }
    let _ = writeln!(md);
    for l in &c.limits {
        limit_note(md, l, r.machine.cores);
    }
    let _ = writeln!(
        md,
        "\nSizes: `PULSE_BENCH_CLUSTER_CLIENTS` (default 20,000 in a full run) and \
         `PULSE_BENCH_CLUSTER_LIMIT` (default 40,000, lowered to a node's open-files limit) set \
         them; a run on a shared machine may use fewer, and says so in the table.\n"
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::{ClusterResult, Herd, NodeMemory};
    use crate::stats::Summary;

    #[test]
    fn renders_measured_and_skipped_rows() {
        let p = Pair {
            server: "P".into(),
            clients: 200,
            tenants: 2,
            events_per_s: 1000.0,
            seconds: 1.0,
            expected: 100_000,
            delivered: 100_000,
            connect_s: 0.5,
            workers: 2,
            latency: Summary {
                p99_ms: 3.0,
                ..Summary::default()
            },
            latency_a: Summary::default(),
            latency_b: Summary::default(),
            nodes: vec![NodeMemory {
                node: "a".into(),
                clients: 100,
                idle_mib: 10.0,
                connected_mib: 11.0,
            }],
            herd: Herd {
                moved: 100,
                back: 100,
                peak_per_s: 100.0,
                all_back_s: 0.2,
                standby: Some("no room".into()),
            },
            skipped: None,
        };
        let skipped = Pair {
            skipped: Some("node | missing".into()),
            ..p.clone()
        };
        let capped = Limit {
            server: "P×1".into(),
            bound: 40_000,
            tried: 19_670,
            cap: Some("lowered from 40000 to the node's open-files limit".into()),
            held: 19_670,
            workers: 4,
            memory: NodeMemory {
                node: "solo".into(),
                clients: 19_670,
                idle_mib: 10.0,
                connected_mib: 230.0,
            },
            nofile: 20_000,
            fds: 19_700,
            idle_cores: 0.0,
            fanout_cores: 0.4,
            mem_available_mib: 20_000.0,
            expected: 10,
            delivered: 10,
            ..Limit::default()
        };
        let small = Limit {
            server: "S×1".into(),
            bound: 300,
            tried: 300,
            cap: None,
            held: 300,
            ..capped.clone()
        };
        let skipped_limit = Limit {
            server: "N×1".into(),
            skipped: Some("node missing".into()),
            ..Limit::default()
        };
        let r = Results {
            cluster: Some(ClusterResult {
                pairs: vec![p, skipped],
                limits: vec![capped, small, skipped_limit],
                nofile: 20_000,
                per_worker: 5_000,
                nofile_refused: Some("raising it was refused".into()),
            }),
            ..Results::default()
        };
        let mut md = String::new();
        cluster(&mut md, &r);
        assert!(md.contains("## 8. Cluster"));
        assert!(
            md.contains("| P | 200 | 100,000 of 100,000 | 3.00 ms |"),
            "{md}"
        );
        assert!(md.contains("10.24 KiB") || md.contains("10.2 KiB"), "{md}");
        assert!(md.contains("not measured: node / missing"), "{md}");
        assert!(md.contains("at most 5,000 clients each"), "{md}");
        assert!(md.contains("at most 20,000 files"), "{md}");
        assert!(
            md.contains("| P×1 | 19,670 ¹ | 19,670 | 19,700 / 20,000 | 230 MiB (11.5 KiB each) | 0 / 0.400 |"),
            "{md}"
        );
        assert!(md.contains("- ¹ P×1: the bound was lowered"), "{md}");
        assert!(
            md.contains("at most 20,000 files (raising it was refused)"),
            "{md}"
        );
        assert!(
            md.contains("the node used under 0.01 cores holding"),
            "{md}"
        );
        assert!(
            md.contains("move at once to a standby node C, since node A cannot take them all here (see ²): the harness's"),
            "{md}"
        );
        assert!(md.contains("descriptor limit, not the node's"), "{md}");
        assert!(md.contains("| S×1 | 300 | 300 |"), "{md}");
        assert!(md.contains("100 of 100 in 0.200 s ² | 100 |"), "{md}");
        assert!(
            md.contains("- ² P: node B's clients moved to a standby node C (started with the others, idle until then) because no room;"),
            "{md}"
        );
        assert!(
            md.contains("- S×1: the run's bound (300) was below"),
            "{md}"
        );
        assert!(
            md.contains("| N×1 | 0 | not measured: node missing |"),
            "{md}"
        );
        let mut none = String::new();
        cluster(&mut none, &Results::default());
        assert!(none.contains("Not measured in this run."));
    }
}
