//! End-to-end: `pulse-gateway` and `pulsectl` as real processes on loopback.

mod cluster;
mod faults;
mod harness;
mod langgraph;
mod proxy;
mod secrets;

use std::collections::HashSet;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use harness::*;
use serde_json::{json, Value};

const LONG: Duration = Duration::from_secs(90);

fn ev(ty: &str, data: Value) -> Value {
    json!({"type": ty, "data": data})
}

/// A batch mixing idempotent and non-idempotent events (timeline appends would
/// show up twice if an event were applied twice).
fn batch(n: u64, size: u64) -> Value {
    let mut out = Vec::new();
    for i in 0..size {
        let k = n * size + i;
        let t = format!("t{}", k % 40);
        out.push(match k % 5 {
            0 => ev(
                "ticket.created",
                json!({"id": t, "title": format!("Ticket {k}"), "state": "todo"}),
            ),
            1 => ev(
                "ticket.event_added",
                json!({"id": t, "event": {"k": k, "msg": "agent commented"}}),
            ),
            2 => {
                let state = ["todo", "in_progress", "review", "done"][(k % 4) as usize];
                ev("ticket.moved", json!({"id": t, "state": state}))
            }
            3 => ev(
                "approval.created",
                json!({"id": format!("a{}", k % 30), "title": format!("Deploy {k}")}),
            ),
            _ => ev(
                "stats.updated",
                json!({"scope": "tasks", "stats": {"total": k}}),
            ),
        });
    }
    Value::Array(out)
}

fn viewer(tenant: &str) -> String {
    mint(tenant, "viewer-1", "viewer", "1h")
}

fn publisher(tenant: &str) -> String {
    mint(tenant, "platform", "publisher", "1h")
}

fn wait_synced(http: &Http, gw: &Gateway, token: &str, cache: &Path, stream: &str) {
    let head = http.snapshot(&gw.url(), token).seq;
    wait_for(&format!("cache at seq {head}"), LONG, || {
        cache_seq(cache, stream) >= head
    });
}

#[test]
fn sqlite_gateway_and_pulsectl_killed_repeatedly_converge() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("gw.db");
    let cache = dir.path().join("cache.db");
    let mut gw = Gateway::start(&format!("sqlite:{}", db.display()), &[]);
    let url = gw.url();
    let pubtok = publisher("acme");
    let view = viewer("acme");

    const BATCHES: u64 = 120;
    const SIZE: u64 = 25; // 3,000 events
    let done = Arc::new(AtomicU64::new(0));
    let finished = Arc::new(AtomicBool::new(false));
    let ingester = {
        let (done, finished, url, pubtok) =
            (done.clone(), finished.clone(), url.clone(), pubtok.clone());
        std::thread::spawn(move || {
            let http = Http::new();
            let mut n = 0;
            let mut failures = 0u32;
            while n < BATCHES {
                match http.ingest(&url, &pubtok, &batch(n, SIZE)) {
                    Ok(_) => {
                        n += 1;
                        done.store(n, Ordering::SeqCst);
                    }
                    Err(_) => {
                        failures += 1;
                        assert!(failures < 2_000, "gateway never came back");
                        std::thread::sleep(Duration::from_millis(20));
                    }
                }
            }
            finished.store(true, Ordering::SeqCst);
        })
    };

    let mut runs = vec![Pulsectl::watch(&url, &["--token", &view], &cache, &[])];
    // Kill the gateway three times and pulsectl twice while events flow.
    for (i, at) in [15u64, 35, 55, 75, 95].into_iter().enumerate() {
        wait_for(&format!("{at} batches ingested"), LONG, || {
            done.load(Ordering::SeqCst) >= at
        });
        if i % 2 == 0 {
            gw.restart();
        } else {
            runs.last_mut().unwrap().kill();
            runs.push(Pulsectl::watch(&url, &["--token", &view], &cache, &[]));
        }
    }
    ingester.join().unwrap();
    assert!(finished.load(Ordering::SeqCst));
    let http = Http::new();
    wait_synced(&http, &gw, &view, &cache, "acme");

    let snap = http.snapshot(&url, &view);
    assert!(
        snap.seq >= BATCHES * SIZE,
        "every batch was committed at least once"
    );
    assert_eq!(
        sorted(cache_entities(&cache)),
        sorted(snap.entities),
        "cache equals the gateway's snapshot"
    );

    // Across every pulsectl run, no event was applied (printed) twice.
    let mut seen = HashSet::new();
    for run in &runs {
        for line in run.changes() {
            if let Some(seq) = line.get("seq").and_then(Value::as_u64) {
                if line.get("change").is_some() {
                    let key = (seq, line["change"].to_string());
                    assert!(seen.insert(key), "seq {seq} applied twice: {line}");
                }
            }
        }
    }
    assert!(!seen.is_empty());
}

#[test]
fn memory_gateway_restart_changes_epoch_and_client_reloads_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache.db");
    let mut gw = Gateway::start("memory", &[]);
    let http = Http::new();
    let (pubtok, view) = (publisher("acme"), viewer("acme"));
    http.ingest(&gw.url(), &pubtok, &batch(0, 50)).unwrap();
    let mut ctl = Pulsectl::watch(&gw.url(), &["--token", &view], &cache, &[]);
    wait_synced(&http, &gw, &view, &cache, "acme");
    let before = http.snapshot(&gw.url(), &view);

    gw.restart();
    http.ingest(
        &gw.url(),
        &pubtok,
        &json!([ev(
            "approval.created",
            json!({"id": "fresh", "title": "After restart"})
        )]),
    )
    .unwrap();
    let after = http.snapshot(&gw.url(), &view);
    assert_ne!(
        before.epoch, after.epoch,
        "a memory gateway gets a new epoch"
    );
    wait_for("client reloads the new epoch's snapshot", LONG, || {
        sorted(cache_entities(&cache)) == sorted(after.entities.clone())
    });
    let snapshots = ctl
        .changes()
        .iter()
        .filter(|l| l.get("snapshot").is_some())
        .count();
    assert!(
        snapshots >= 2,
        "one snapshot at first sync, one after the epoch change"
    );
    ctl.kill();
}

#[test]
fn blocked_websocket_falls_back_to_polling_and_takes_the_socket_back() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache.db");
    let gw = Gateway::start("memory", &[]);
    let proxy = proxy::Proxy::start(gw.addr);
    proxy.block_websockets(true);
    let http = Http::new();
    let (pubtok, view) = (publisher("acme"), viewer("acme"));
    let ctl = Pulsectl::watch(
        &proxy.url(),
        &["--token", &view],
        &cache,
        &["--poll-interval", "0.2", "--socket-retry", "1"],
    );
    wait_for("polling", LONG, || ctl.stderr.contains("polling over REST"));
    http.ingest(&gw.url(), &pubtok, &batch(0, 10)).unwrap();
    wait_synced(&http, &gw, &view, &cache, "acme");
    assert!(
        !ctl.stderr.contains("pulsectl: live"),
        "no socket while blocked"
    );
    assert!(proxy.upgrades_refused() >= 1);

    proxy.block_websockets(false);
    wait_for("socket taken back", LONG, || {
        ctl.stderr.contains("pulsectl: live")
    });
    http.ingest(&gw.url(), &pubtok, &batch(1, 10)).unwrap();
    wait_synced(&http, &gw, &view, &cache, "acme");
    assert_eq!(
        sorted(cache_entities(&cache)),
        sorted(http.snapshot(&gw.url(), &view).entities)
    );
}

#[test]
fn expired_access_token_is_refreshed_without_the_user() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache.db");
    let db = dir.path().join("gw.db");
    let users = dir.path().join("users.toml");
    harness::users_file(&users, "alice", "s3cret", "acme");
    let users = users.display().to_string();
    let mut gw = Gateway::start(
        &format!("sqlite:{}", db.display()),
        &["--users-file", &users, "--access-ttl", "2s"],
    );
    let http = Http::new();
    let (pubtok, view) = (publisher("acme"), viewer("acme"));
    let ctl = Pulsectl::watch(
        &gw.url(),
        &["--user", "alice", "--password", "s3cret"],
        &cache,
        &[],
    );
    wait_for("live", LONG, || ctl.stderr.contains("pulsectl: live"));
    // Let the access token expire, then force a reconnect.
    let issued = std::time::Instant::now();
    wait_for("token expiry", LONG, || {
        issued.elapsed() > Duration::from_millis(2_100)
    });
    gw.restart();
    http.ingest(&gw.url(), &pubtok, &batch(0, 5)).unwrap();
    wait_synced(&http, &gw, &view, &cache, "acme");
    let live = ctl
        .stderr
        .snapshot()
        .iter()
        .filter(|l| l.contains("pulsectl: live"))
        .count();
    assert!(
        live >= 2,
        "live again after the reconnect: {:?}",
        ctl.stderr.snapshot()
    );
    assert!(
        !ctl.stderr.contains("unauthorized"),
        "{:?}",
        ctl.stderr.snapshot()
    );
}

#[test]
fn wrong_or_expired_token_stops_with_unauthorized_and_no_retry_storm() {
    let dir = tempfile::tempdir().unwrap();
    let gw = Gateway::start("memory", &[]);
    let proxy = proxy::Proxy::start(gw.addr);

    let mut ctl = Pulsectl::watch(
        &proxy.url(),
        &["--token", "not-a-valid-token"],
        &dir.path().join("a.db"),
        &[],
    );
    assert_eq!(ctl.wait_exit(LONG), 3, "exit code 3 = unauthorized");
    assert!(
        ctl.stderr.contains("unauthorized"),
        "{:?}",
        ctl.stderr.snapshot()
    );
    assert!(
        proxy.upgrades() <= 1,
        "a static token cannot be refreshed: one attempt, got {}",
        proxy.upgrades()
    );

    let expiring = mint("acme", "v", "viewer", "1s");
    let t0 = std::time::Instant::now();
    wait_for("token expiry", LONG, || {
        t0.elapsed() > Duration::from_millis(1_100)
    });
    let before = proxy.upgrades();
    let mut ctl = Pulsectl::watch(
        &proxy.url(),
        &["--token", &expiring],
        &dir.path().join("b.db"),
        &[],
    );
    assert_eq!(ctl.wait_exit(LONG), 3);
    assert!(
        ctl.stderr.contains("expired"),
        "{:?}",
        ctl.stderr.snapshot()
    );
    assert_eq!(
        proxy.upgrades(),
        before,
        "an expired token is not even sent"
    );
}

#[test]
fn a_tenant_never_sees_another_tenants_events() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache.db");
    let gw = Gateway::start("memory", &[]);
    let http = Http::new();
    let ctl = Pulsectl::watch(&gw.url(), &["--token", &viewer("acme")], &cache, &[]);
    wait_for("live", LONG, || ctl.stderr.contains("pulsectl: live"));
    http.ingest(
        &gw.url(),
        &publisher("globex"),
        &json!([ev(
            "approval.created",
            json!({"id": "secret-globex", "title": "x"})
        )]),
    )
    .unwrap();
    http.ingest(
        &gw.url(),
        &publisher("acme"),
        &json!([ev(
            "approval.created",
            json!({"id": "acme-1", "title": "y"})
        )]),
    )
    .unwrap();
    // A publisher cannot write into another tenant either.
    let err = http
        .ingest(
            &gw.url(),
            &publisher("globex"),
            &json!({"tenant": "acme", "type": "approval.created", "data": {"id": "sneaky"}}),
        )
        .unwrap_err();
    assert!(err.starts_with("403"), "{err}");
    wait_synced(&http, &gw, &viewer("acme"), &cache, "acme");
    let ids: Vec<String> = cache_entities(&cache).into_iter().map(|e| e.id).collect();
    assert_eq!(ids, vec!["acme-1".to_string()]);
    assert!(ctl
        .stdout
        .snapshot()
        .iter()
        .all(|l| !l.contains("globex") && !l.contains("sneaky")));
}

#[test]
fn pulsectl_status_reads_the_cache_offline_and_rejects_garbage() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache.db");
    let mut gw = Gateway::start("memory", &[]);
    let http = Http::new();
    let view = viewer("acme");
    http.ingest(&gw.url(), &publisher("acme"), &batch(0, 20))
        .unwrap();
    let mut ctl = Pulsectl::watch(&gw.url(), &["--token", &view], &cache, &[]);
    wait_synced(&http, &gw, &view, &cache, "acme");
    ctl.kill();
    gw.kill(); // no network from here on

    let out = std::process::Command::new(bin("pulsectl"))
        .args(["status", "--json", "--cache"])
        .arg(&cache)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["cursors"]["acme"]["seq"], 20);
    assert_eq!(
        v["counts"]["ticket"], 12,
        "created, appended-to and moved tickets"
    );
    assert_eq!(v["counts"]["approval"], 4);
    assert!(v["last_sync_ms"].as_i64().unwrap() > 0);

    let human = std::process::Command::new(bin("pulsectl"))
        .args(["status", "--cache"])
        .arg(&cache)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&human.stdout);
    assert!(
        text.contains("tickets:") && text.contains("seq 20"),
        "{text}"
    );

    let garbage = dir.path().join("garbage.db");
    std::fs::write(
        &garbage,
        b"this is not a database at all, not even close....",
    )
    .unwrap();
    let out = std::process::Command::new(bin("pulsectl"))
        .args(["status", "--cache"])
        .arg(&garbage)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(4));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("damaged"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        std::fs::read(&garbage).unwrap(),
        b"this is not a database at all, not even close....",
        "garbage file left untouched"
    );

    let out = std::process::Command::new(bin("pulsectl"))
        .args(["status", "--cache"])
        .arg(dir.path().join("missing.db"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(4));
    assert!(
        !dir.path().join("missing.db").exists(),
        "status never creates a cache"
    );
}

fn pulsectl(args: &[&str]) -> std::process::Output {
    std::process::Command::new(bin("pulsectl"))
        .args(args)
        .env_remove("PULSE_TOKEN")
        .output()
        .unwrap()
}

#[test]
fn approve_and_reject_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("gw.db");
    let mut gw = Gateway::start(&format!("sqlite:{}", db.display()), &[]);
    let http = Http::new();
    let view = viewer("acme");
    http.ingest(
        &gw.url(),
        &publisher("acme"),
        &json!([
            ev("approval.created", json!({"id": "a1", "title": "Refund"})),
            ev("approval.created", json!({"id": "a2", "title": "Deploy"})),
            ev("approval.created", json!({"id": "a3", "title": "Offline"}))
        ]),
    )
    .unwrap();
    let url = gw.url();
    let out = pulsectl(&["approve", "a1", "--server", &url, "--token", &view]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = pulsectl(&[
        "reject", "a1", "--server", &url, "--token", &view, "--reason", "late",
    ]);
    assert_eq!(out.status.code(), Some(6), "conflict: already approved");
    assert!(String::from_utf8_lossy(&out.stderr).contains("already approved"));
    let out = pulsectl(&[
        "reject", "a2", "--server", &url, "--token", &view, "--reason", "risky",
    ]);
    assert!(out.status.success());
    let out = pulsectl(&["approve", "nope", "--server", &url, "--token", &view]);
    assert_eq!(out.status.code(), Some(7));
    let snap = http.snapshot(&url, &view);
    let status =
        |id: &str| snap.entities.iter().find(|e| e.id == id).unwrap().data["status"].clone();
    assert_eq!(status("a1"), "approved");
    assert_eq!(status("a2"), "rejected");

    // Unreachable: exit 5, or queued with --cache and sent by the next watch.
    let dead = "http://127.0.0.1:9"; // discard port: nothing listens
    let out = pulsectl(&["approve", "a3", "--server", dead, "--token", &view]);
    assert_eq!(
        out.status.code(),
        Some(5),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Queued for this server while it is down, and sent to it (only to it: a
    // queued action belongs to its server and account) once it is back.
    let cache = dir.path().join("cache.db");
    gw.kill();
    let out = pulsectl(&[
        "approve",
        "a3",
        "--server",
        &url,
        "--token",
        &view,
        "--cache",
        cache.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    gw.restart();
    let ctl = Pulsectl::watch(&url, &["--token", &view], &cache, &[]);
    wait_for("queued decision sent", LONG, || {
        ctl.stdout.contains("\"outbox_id\"")
    });
    let snap = http.snapshot(&url, &view);
    assert_eq!(
        snap.entities.iter().find(|e| e.id == "a3").unwrap().data["status"],
        "approved"
    );
}

#[test]
fn move_and_terminate_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("gw.db");
    let mut gw = Gateway::start(&format!("sqlite:{}", db.display()), &[]);
    let http = Http::new();
    let view = viewer("acme");
    http.ingest(
        &gw.url(),
        &publisher("acme"),
        &json!([
            ev("ticket.created", json!({"id": "t1", "title": "Fix login"})),
            ev(
                "agent.upserted",
                json!({"id": "ag1", "name": "Ada", "status": "busy"})
            )
        ]),
    )
    .unwrap();
    let url = gw.url();
    let out = pulsectl(&[
        "move", "t1", "--to", "review", "--server", &url, "--token", &view,
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "ticket t1 moved to review"
    );
    let out = pulsectl(&[
        "terminate",
        "ag1",
        "--reason",
        "runaway",
        "--server",
        &url,
        "--token",
        &view,
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = pulsectl(&["terminate", "ag1", "--server", &url, "--token", &view]);
    assert_eq!(out.status.code(), Some(6), "conflict: already terminated");
    assert!(String::from_utf8_lossy(&out.stderr).contains("already terminated"));
    let out = pulsectl(&[
        "move", "t9", "--to", "done", "--server", &url, "--token", &view,
    ]);
    assert_eq!(out.status.code(), Some(7));

    // Unreachable: queued with --cache for this server, sent to it by the next
    // watch once it is back.
    let cache = dir.path().join("cache.db");
    gw.kill();
    let out = pulsectl(&[
        "move",
        "t1",
        "--to",
        "done",
        "--server",
        &url,
        "--token",
        &view,
        "--cache",
        cache.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    gw.restart();
    let ctl = Pulsectl::watch(&url, &["--token", &view], &cache, &[]);
    wait_for("queued move sent", LONG, || {
        ctl.stdout.contains("\"outbox_id\"")
    });
    let snap = http.snapshot(&url, &view);
    let data = |id: &str| {
        snap.entities
            .iter()
            .find(|e| e.id == id)
            .unwrap()
            .data
            .clone()
    };
    assert_eq!(data("t1")["state"], "done");
    assert_eq!(data("ag1")["status"], "terminated");
    assert_eq!(data("ag1")["reason"], "runaway");
}
