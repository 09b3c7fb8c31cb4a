//! The gateway as a cluster: several `pulse-gateway` processes on port 0 sharing
//! one real `redis-server`, `pulsectl` clients with real SQLite caches.
//!
//! In every test the caches end equal to the snapshot and no client applies a
//! seq twice.

use std::collections::HashSet;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use pulse_testkit::nginx::Nginx;
use pulse_testkit::redis::RedisServer;
use serde_json::{json, Value};

use super::harness::*;
use super::{batch, publisher, viewer, LONG};

/// `batch(n, size)` with an `id` on every event, so a retried batch is stored once.
fn batch_with_ids(n: u64, size: u64, tag: &str) -> Value {
    let mut v = batch(n, size);
    for (i, e) in v.as_array_mut().unwrap().iter_mut().enumerate() {
        e["id"] = json!(format!("{tag}-{n}-{i}"));
    }
    v
}

fn node(redis: &RedisServer, id: &str) -> Gateway {
    Gateway::start(&redis.url(), &["--node-id", id])
}

/// Wait until the cache is at the snapshot's seq, then compare them.
fn converged(http: &Http, gw: &Gateway, token: &str, cache: &Path) {
    let snap = http.snapshot(&gw.url(), token);
    wait_for(&format!("cache at seq {}", snap.seq), LONG, || {
        cache_seq(cache, "acme") >= snap.seq
    });
    let snap = http.snapshot(&gw.url(), token);
    assert_eq!(cache_seq(cache, "acme"), snap.seq);
    assert_eq!(
        sorted(cache_entities(cache)),
        sorted(snap.entities),
        "cache equals the snapshot"
    );
}

/// No pulsectl run (of one cache) printed one seq's change twice.
fn applied_once(runs: &[&Pulsectl]) {
    let mut seen = HashSet::new();
    for run in runs {
        for line in run.changes() {
            if let (Some(seq), Some(change)) =
                (line.get("seq").and_then(Value::as_u64), line.get("change"))
            {
                assert!(
                    seen.insert((seq, change.to_string())),
                    "seq {seq} applied twice: {line}"
                );
            }
        }
    }
    assert!(!seen.is_empty(), "the client applied something");
}

fn health(http: &Http, gw: &Gateway) -> u16 {
    http.status(&format!("{}/healthz", gw.url()))
}

#[test]
fn ingest_at_one_node_reaches_clients_of_the_others() {
    let redis = RedisServer::start();
    let (a, b, c) = (node(&redis, "a"), node(&redis, "b"), node(&redis, "c"));
    let dir = tempfile::tempdir().unwrap();
    let (cache_b, cache_c) = (dir.path().join("b.db"), dir.path().join("c.db"));
    let (view, pubtok) = (viewer("acme"), publisher("acme"));
    let http = Http::new();
    // Some history before the clients come, some while they watch.
    for n in 0..10 {
        http.ingest(&a.url(), &pubtok, &batch_with_ids(n, 20, "x"))
            .unwrap();
    }
    let on_b = Pulsectl::watch(&b.url(), &["--token", &view], &cache_b, &[]);
    let on_c = Pulsectl::watch(&c.url(), &["--token", &view], &cache_c, &[]);
    wait_for("both clients at seq 200", LONG, || {
        cache_seq(&cache_b, "acme") >= 200 && cache_seq(&cache_c, "acme") >= 200
    });
    for n in 10..30 {
        http.ingest(&a.url(), &pubtok, &batch_with_ids(n, 20, "x"))
            .unwrap();
    }
    converged(&http, &b, &view, &cache_b);
    converged(&http, &c, &view, &cache_c);
    assert_eq!(http.snapshot(&a.url(), &view).seq, 600);
    applied_once(&[&on_b]);
    applied_once(&[&on_c]);
    // The live events reached B and C through their tails, not a replay.
    let b_metrics = http.text(&format!("{}/metrics", b.url()));
    let tailed = b_metrics
        .lines()
        .find_map(|l| l.strip_prefix("pulse_tailed_events_total "))
        .and_then(|v| v.trim().parse::<u64>().ok())
        .expect("pulse_tailed_events_total");
    assert!(tailed >= 400, "node B tailed {tailed} events");
    // A duplicate id ingested at another node answers the first seq.
    let first = http
        .ingest(&a.url(), &pubtok, &batch_with_ids(0, 20, "x"))
        .unwrap();
    assert_eq!(first["seqs"], json!((1..=20).collect::<Vec<u64>>()));
    let again = http
        .ingest(&c.url(), &pubtok, &batch_with_ids(29, 20, "x"))
        .unwrap();
    assert_eq!(again["seqs"], json!((581..=600).collect::<Vec<u64>>()));
    assert_eq!(
        http.snapshot(&b.url(), &view).seq,
        600,
        "nothing stored twice"
    );
}

#[test]
fn two_nodes_ingesting_one_tenant_never_share_or_skip_a_seq() {
    let redis = RedisServer::start();
    let (a, b) = (node(&redis, "a"), node(&redis, "b"));
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache.db");
    let (view, pubtok) = (viewer("acme"), publisher("acme"));
    let watcher = Pulsectl::watch(&b.url(), &["--token", &view], &cache, &[]);
    let writers: Vec<_> = [a.url(), b.url(), a.url(), b.url()]
        .into_iter()
        .enumerate()
        .map(|(w, url)| {
            let pubtok = pubtok.clone();
            std::thread::spawn(move || {
                let http = Http::new();
                let mut seqs = Vec::new();
                for n in 0..25 {
                    let r = http
                        .ingest(&url, &pubtok, &batch_with_ids(n, 8, &format!("w{w}")))
                        .unwrap();
                    seqs.extend(
                        r["seqs"]
                            .as_array()
                            .unwrap()
                            .iter()
                            .map(|s| s.as_u64().unwrap()),
                    );
                }
                seqs
            })
        })
        .collect();
    let mut all: Vec<u64> = writers
        .into_iter()
        .flat_map(|w| w.join().unwrap())
        .collect();
    all.sort_unstable();
    assert_eq!(
        all,
        (1..=800).collect::<Vec<u64>>(),
        "each seq once, none skipped"
    );
    let http = Http::new();
    converged(&http, &a, &view, &cache);
    applied_once(&[&watcher]);
}

#[test]
fn sigkill_of_a_node_while_ingesting_client_resumes_on_another() {
    let redis = RedisServer::start();
    let (a, mut b, c) = (node(&redis, "a"), node(&redis, "b"), node(&redis, "c"));
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache.db");
    let (view, pubtok) = (viewer("acme"), publisher("acme"));
    let done = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let ingester = {
        let (done, stop, url, pubtok) = (done.clone(), stop.clone(), a.url(), pubtok.clone());
        std::thread::spawn(move || {
            let http = Http::new();
            let mut n = 0;
            while !stop.load(Ordering::SeqCst) && n < 60 {
                http.ingest(&url, &pubtok, &batch_with_ids(n, 10, "k"))
                    .unwrap();
                n += 1;
                done.store(n, Ordering::SeqCst);
            }
        })
    };
    let on_b = Pulsectl::watch(&b.url(), &["--token", &view], &cache, &[]);
    wait_for("client on B past seq 100", LONG, || {
        cache_seq(&cache, "acme") >= 100
    });
    b.kill();
    let at_kill = cache_seq(&cache, "acme");
    let mut on_b = on_b;
    on_b.kill();
    // The same cache resumes from its cursor on node C.
    let on_c = Pulsectl::watch(&c.url(), &["--token", &view], &cache, &[]);
    ingester.join().unwrap();
    stop.store(true, Ordering::SeqCst);
    assert_eq!(done.load(Ordering::SeqCst), 60);
    let http = Http::new();
    converged(&http, &c, &view, &cache);
    assert_eq!(http.snapshot(&a.url(), &view).seq, 600);
    assert!(at_kill < 600, "the kill happened while events flowed");
    applied_once(&[&on_b, &on_c]);
}

#[test]
fn redis_down_degrades_every_node_and_its_return_loses_nothing() {
    let mut redis = RedisServer::start_with(true);
    let (a, b) = (node(&redis, "a"), node(&redis, "b"));
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache.db");
    let (view, pubtok) = (viewer("acme"), publisher("acme"));
    let http = Http::new();
    for n in 0..5 {
        http.ingest(&a.url(), &pubtok, &batch_with_ids(n, 20, "r"))
            .unwrap();
    }
    let watcher = Pulsectl::watch(&b.url(), &["--token", &view], &cache, &[]);
    converged(&http, &b, &view, &cache);
    assert_eq!((health(&http, &a), health(&http, &b)), (200, 200));

    redis.kill();
    wait_for("/healthz fails on both nodes", LONG, || {
        health(&http, &a) == 503 && health(&http, &b) == 503
    });
    let (status, retry_after, body) =
        http.ingest_raw(&a.url(), &pubtok, &batch_with_ids(5, 20, "r"));
    assert_eq!(status, 503, "{body}");
    assert_eq!(retry_after.as_deref(), Some("1"));
    assert_eq!(body["error"]["code"], "unavailable");
    // The client keeps its cache.
    assert_eq!(cache_seq(&cache, "acme"), 100);
    assert!(!cache_entities(&cache).is_empty());

    redis.restart();
    wait_for("/healthz back on both nodes", LONG, || {
        health(&http, &a) == 200 && health(&http, &b) == 200
    });
    // The platform retries the refused batch (same ids), then goes on.
    for n in 5..10 {
        let mut tries = 0;
        while let Err(e) = http.ingest(&a.url(), &pubtok, &batch_with_ids(n, 20, "r")) {
            tries += 1;
            assert!(tries < 100, "ingest never accepted again: {e}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    converged(&http, &b, &view, &cache);
    assert_eq!(
        http.snapshot(&a.url(), &view).seq,
        200,
        "nothing lost, nothing doubled"
    );
    applied_once(&[&watcher]);
}

#[test]
fn behind_nginx_a_killed_node_moves_its_client_to_the_other() {
    let redis = RedisServer::start();
    let (mut a, mut b) = (node(&redis, "a"), node(&redis, "b"));
    let lb = Nginx::start(&[a.addr, b.addr]);
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache.db");
    let (view, pubtok) = (viewer("acme"), publisher("acme"));
    let http = Http::new();
    let watcher = Pulsectl::watch(&lb.url(), &["--token", &view], &cache, &[]);
    let ingest = |n: u64| {
        let mut tries = 0;
        while let Err(e) = http.ingest(&lb.url(), &pubtok, &batch_with_ids(n, 10, "lb")) {
            tries += 1;
            assert!(tries < 200, "ingest through nginx never accepted: {e}");
            std::thread::sleep(Duration::from_millis(25));
        }
    };
    for n in 0..20 {
        ingest(n);
    }
    wait_for("client through nginx at seq 200", LONG, || {
        cache_seq(&cache, "acme") >= 200
    });
    // Kill both nodes in turn (restarting the first): the client always ends on
    // the one alive, from its cursor.
    a.kill();
    for n in 20..40 {
        ingest(n);
    }
    converged(&http, &b, &view, &cache);
    a.restart();
    b.kill();
    for n in 40..60 {
        ingest(n);
    }
    converged(&http, &a, &view, &cache);
    assert_eq!(
        http.snapshot(&lb.url(), &view).seq,
        600,
        "retried batches stored once; nginx log: {}",
        lb.error_log()
    );
    applied_once(&[&watcher]);
}

#[test]
fn pulsectl_with_several_servers_moves_to_the_next_when_one_is_killed() {
    let redis = RedisServer::start();
    let (mut a, mut b) = (node(&redis, "a"), node(&redis, "b"));
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache.db");
    let (view, pubtok) = (viewer("acme"), publisher("acme"));
    let http = Http::new();
    let watcher = Pulsectl::watch(
        &a.url(),
        &["--token", &view, "--server", &b.url()],
        &cache,
        &[],
    );
    let ingest_at = |gw: &Gateway, from: u64, to: u64| {
        for n in from..to {
            http.ingest(&gw.url(), &pubtok, &batch_with_ids(n, 10, "f"))
                .unwrap();
        }
    };
    ingest_at(&b, 0, 10);
    converged(&http, &b, &view, &cache);
    // SIGKILL the node the client is on while events are ingested at the other.
    a.kill();
    ingest_at(&b, 10, 30);
    converged(&http, &b, &view, &cache);
    assert!(
        watcher.stderr.contains(&format!("moving to {}", b.url())),
        "{:?}",
        watcher.stderr.snapshot()
    );
    // And back, once the first node is up again and the second one dies.
    a.restart();
    b.kill();
    ingest_at(&a, 30, 40);
    converged(&http, &a, &view, &cache);
    assert_eq!(http.snapshot(&a.url(), &view).seq, 400);
    applied_once(&[&watcher]);
}

#[test]
fn redis_back_empty_starts_a_new_epoch_that_every_node_serves() {
    let mut redis = RedisServer::start(); // no persistence: comes back empty
    let (a, b) = (node(&redis, "a"), node(&redis, "b"));
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache.db");
    let (view, pubtok) = (viewer("acme"), publisher("acme"));
    let http = Http::new();
    for n in 0..10 {
        http.ingest(&a.url(), &pubtok, &batch_with_ids(n, 10, "e1"))
            .unwrap();
    }
    let watcher = Pulsectl::watch(&b.url(), &["--token", &view], &cache, &[]);
    converged(&http, &b, &view, &cache);
    let old = http.snapshot(&a.url(), &view).epoch;
    redis.restart();
    wait_for("both nodes healthy again", LONG, || {
        health(&http, &a) == 200 && health(&http, &b) == 200
    });
    for n in 0..5 {
        let mut tries = 0;
        while let Err(e) = http.ingest(&a.url(), &pubtok, &batch_with_ids(n, 10, "e2")) {
            tries += 1;
            assert!(tries < 100, "ingest never accepted again: {e}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    let snap = http.snapshot(&b.url(), &view);
    assert_ne!(snap.epoch, old, "a new log, a new epoch");
    assert_eq!(snap.seq, 50);
    // The client on B reloads the new log's snapshot, then follows it live.
    wait_for("cache on the new epoch", LONG, || {
        pulse_core::store::SqliteStore::open_read_only(&cache)
            .ok()
            .and_then(|s| pulse_core::store::Store::cursor(&s, "acme").ok().flatten())
            .is_some_and(|c| c.epoch == snap.epoch && c.seq >= 50)
    });
    for n in 5..10 {
        http.ingest(&a.url(), &pubtok, &batch_with_ids(n, 10, "e2"))
            .unwrap();
    }
    converged(&http, &b, &view, &cache);
    assert_eq!(http.snapshot(&a.url(), &view).seq, 100);
    drop(watcher);
}

/// A batch of `size` events, every third one addressed to alice and every third
/// one to bob (each about an entity of its own), the rest to everyone.
fn addressed_batch(n: u64, size: u64) -> Value {
    json!((0..size)
        .map(|i| {
            let k = n * size + i;
            let id = format!("u-{k}");
            match k % 3 {
                0 => json!({"id": id, "type": "notification.new", "user": "alice",
                            "data": {"id": format!("n-alice-{}", k % 20), "title": "for alice"}}),
                1 => json!({"id": id, "type": "approval.created", "user": "bob",
                            "data": {"id": format!("ap-bob-{}", k % 20), "title": "for bob"}}),
                _ => json!({"id": id, "type": "ticket.event_added",
                            "data": {"id": format!("t{}", k % 5), "event": {"k": k}}}),
            }
        })
        .collect::<Vec<_>>())
}

/// The ids of a cache's entities.
fn cached_ids(cache: &Path) -> Vec<String> {
    cache_entities(cache).into_iter().map(|e| e.id).collect()
}

/// No state line of a `pulsectl watch --json` run counted a gap.
fn never_a_gap(run: &Pulsectl) -> usize {
    let lines: Vec<Value> = run
        .stderr
        .snapshot()
        .iter()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    for l in &lines {
        assert_eq!(l["counters"]["gaps"], 0, "a gap: {l}");
        assert!(
            l["counters"]["snapshots"].as_u64() <= Some(1),
            "resynced: {l}"
        );
    }
    lines.len()
}

#[test]
fn a_users_events_reach_only_that_users_client_on_any_node() {
    let redis = RedisServer::start();
    let (a, mut b) = (node(&redis, "a"), node(&redis, "b"));
    let dir = tempfile::tempdir().unwrap();
    let (cache_alice, cache_bob) = (dir.path().join("alice.db"), dir.path().join("bob.db"));
    let alice = mint("acme", "alice", "viewer", "1h");
    let bob = mint("acme", "bob", "viewer", "1h");
    let pubtok = publisher("acme");
    let http = Http::new();
    for n in 0..5 {
        http.ingest(&a.url(), &pubtok, &addressed_batch(n, 30))
            .unwrap();
    }
    // Alice on node B (then A when B dies), bob on node A; events ingested at A.
    let on_alice = Pulsectl::watch(
        &b.url(),
        &["--token", &alice, "--server", &a.url()],
        &cache_alice,
        &["--json"],
    );
    let on_bob = Pulsectl::watch(&a.url(), &["--token", &bob], &cache_bob, &["--json"]);
    for n in 5..10 {
        http.ingest(&a.url(), &pubtok, &addressed_batch(n, 30))
            .unwrap();
    }
    converged(&http, &b, &alice, &cache_alice);
    converged(&http, &a, &bob, &cache_bob);
    let (ids_a, ids_b) = (cached_ids(&cache_alice), cached_ids(&cache_bob));
    assert!(ids_a.iter().any(|i| i.starts_with("n-alice")), "{ids_a:?}");
    assert!(ids_b.iter().any(|i| i.starts_with("ap-bob")), "{ids_b:?}");
    assert!(!ids_a.iter().any(|i| i.contains("bob")), "{ids_a:?}");
    assert!(!ids_b.iter().any(|i| i.contains("alice")), "{ids_b:?}");
    assert!(ids_a.contains(&"t0".to_owned()) && ids_b.contains(&"t0".to_owned()));
    // Alice's node dies: her client resumes on A from its cursor, still hers only.
    b.kill();
    for n in 10..15 {
        http.ingest(&a.url(), &pubtok, &addressed_batch(n, 30))
            .unwrap();
    }
    converged(&http, &a, &alice, &cache_alice);
    converged(&http, &a, &bob, &cache_bob);
    assert_eq!(cache_seq(&cache_alice, "acme"), 450);
    assert_eq!(cache_seq(&cache_bob, "acme"), 450);
    assert!(!cached_ids(&cache_alice).iter().any(|i| i.contains("bob")));
    assert!(
        on_alice.stderr.contains(&format!("moving to {}", a.url())),
        "{:?}",
        on_alice.stderr.snapshot()
    );
    // What each client printed: only its own events, never another user's.
    for (run, other) in [(&on_alice, "bob"), (&on_bob, "alice")] {
        for line in run.changes() {
            assert!(
                !line.to_string().contains(other),
                "{other}'s event leaked: {line}"
            );
        }
    }
    applied_once(&[&on_alice]);
    applied_once(&[&on_bob]);
    // Filtered sessions never saw a gap, and loaded one snapshot each (the first).
    assert!(
        never_a_gap(&on_alice) >= 2,
        "{:?}",
        on_alice.stderr.snapshot()
    );
    never_a_gap(&on_bob);
}
