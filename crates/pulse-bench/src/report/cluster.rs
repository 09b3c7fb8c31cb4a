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
        "| {} | {} | {} of {} | {} | {} / {} | {} / {} | {} of {} in {} s | {} | {} s |",
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
        fmt_num(p.herd.peak_per_s),
        fmt_num(p.connect_s),
    );
}

fn limit_row(md: &mut String, l: &Limit) {
    if let Some(why) = &l.skipped {
        let _ = writeln!(
            md,
            "| {} | {} | not measured: {} | – | – | – |",
            l.server,
            fmt_num(l.tried as f64),
            why.replace('|', "/").replace('\n', " ")
        );
        return;
    }
    let _ = writeln!(
        md,
        "| {} | {} | {}{} | {} MiB ({} KiB each) | {} | {} of {} |",
        l.server,
        fmt_num(l.tried as f64),
        fmt_num(l.held as f64),
        l.stopped_by
            .as_deref()
            .map_or(String::new(), |w| format!(" ({w})")),
        fmt_num(l.memory.connected_mib),
        fmt_num(l.memory.per_conn_kib()),
        ms(l.latency.p99_ms),
        fmt_num(l.delivered as f64),
        fmt_num(l.expected as f64),
    );
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
         to node A at once (the harness's lean clients do so for both servers, as Pulse's own \
         failover does; Socket.IO's stock client would first wait its `reconnectionDelay`, \
         1 s ± 50 %). Pulse's clients resume from their cursors; Socket.IO's rejoin. Peak \
         reconnects/s is the herd's busiest 100 ms window, per second. **Memory per \
         connection** is each node's `VmRSS` with its clients connected minus before any, over \
         its clients. **One node's limit**: a single node (on its Redis) is given idle \
         connections up to this run's bound; the most it held, its memory, and fan-out p99 there \
         (one event per second per tenant). Generator, Redis and nodes share this machine's \
         CPUs.\n",
        c.pairs
            .first()
            .map_or("–".into(), |p| fmt_num(p.events_per_s))
    );
    let _ = writeln!(
        md,
        "| Servers | Clients | Deliveries | p99 | p99 on A / on B | Per connection A / B | Herd: back after B's kill | Peak reconnects/s | Connect all |\n|---|---|---|---|---|---|---|---|---|"
    );
    for p in &c.pairs {
        pair_row(md, p);
    }
    let _ = writeln!(
        md,
        "\n| One node | Connections tried | Held | Memory there | Fan-out p99 there | Deliveries |\n|---|---|---|---|---|---|"
    );
    for l in &c.limits {
        limit_row(md, l);
    }
    let _ = writeln!(
        md,
        "\nSizes: `PULSE_BENCH_CLUSTER_CLIENTS` (default 20,000 in a full run) and \
         `PULSE_BENCH_CLUSTER_LIMIT` (default 40,000) set them; a run on a shared machine may \
         use fewer, and says so in the table.\n"
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
            },
            skipped: None,
        };
        let skipped = Pair {
            skipped: Some("node | missing".into()),
            ..p.clone()
        };
        let r = Results {
            cluster: Some(ClusterResult {
                pairs: vec![p, skipped],
                limits: Vec::new(),
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
        let mut none = String::new();
        cluster(&mut none, &Results::default());
        assert!(none.contains("Not measured in this run."));
    }
}
