//! The `pulse-gateway` binary: mint, serve, missing secret, SQLite across SIGKILL.

use std::process::Stdio;
use std::time::Duration;

use pulse_gateway::auth;
use pulse_protocol::auth::{Role, TokenUse};
use serde_json::{json, Value};

use crate::common::*;

fn bin() -> tokio::process::Command {
    let mut c = tokio::process::Command::new(env!("CARGO_BIN_EXE_pulse-gateway"));
    c.env_remove("PULSE_JWT_SECRET").kill_on_drop(true);
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mint_prints_a_verifiable_token() {
    let out = bin()
        .args([
            "mint",
            "--secret",
            SECRET,
            "--tenant",
            "acme",
            "--sub",
            "svc",
            "--role",
            "publisher",
            "--ttl",
            "1h",
        ])
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    let token = stdout.trim_end();
    assert_eq!(stdout.lines().count(), 1);
    let claims = auth::verify(SECRET, token).unwrap();
    assert_eq!(
        (claims.tenant.as_str(), claims.sub.as_str(), claims.role),
        ("acme", "svc", Role::Publisher)
    );
    assert_eq!(claims.token_use, TokenUse::Access);
    assert!((3599..=3601).contains(&(claims.exp - claims.iat)));

    let out = bin()
        .args([
            "mint", "--secret", SECRET, "--tenant", "acme", "--sub", "x", "--ttl", "soon",
        ])
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("soon"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_without_secret_exits_2() {
    let out = bin()
        .args(["serve", "--addr", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--jwt-secret") && err.contains("PULSE_JWT_SECRET"),
        "{err}"
    );
    let out = bin()
        .args(["serve", "--store", "redis://x"])
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

/// A Redis store that cannot be reached stops the start with a clear error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_redis_fails_the_start() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let out = bin()
        .args(["serve", "--addr", "127.0.0.1:0", "--jwt-secret", SECRET])
        .args(["--store", &format!("redis://127.0.0.1:{port}")])
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("cannot open the store") && err.contains("unavailable"),
        "{err}"
    );
    let out = bin()
        .args(["serve", "--jwt-secret", SECRET, "--store", "redis://:1"])
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_survives_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let store = format!("sqlite:{}", dir.path().join("gw.db").display());
    let args = ["serve", "--addr", "127.0.0.1:0", "--store", store.as_str()];
    let http = reqwest::Client::new();
    let p = publisher("acme");
    let v = viewer("acme");

    let first = Proc::spawn(&args).await;
    let mut last = Vec::new();
    for i in 0..20 {
        let batch: Vec<Value> = (0..5)
            .map(|j| {
                ev(
                    "ticket.created",
                    json!({"id": format!("t{i}-{j}"), "n": i * 5 + j}),
                )
            })
            .collect();
        let r = http
            .post(format!("{}/v1/ingest", first.url))
            .bearer_auth(&p)
            .json(&batch)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        last = r.json::<Value>().await.unwrap()["seqs"]
            .as_array()
            .unwrap()
            .clone();
    }
    assert_eq!(last.last().unwrap(), 100);
    let approve = json!({"type": "approval.created", "data": {"id": "ap1", "title": "x"}});
    http.post(format!("{}/v1/ingest", first.url))
        .bearer_auth(&p)
        .json(&approve)
        .send()
        .await
        .unwrap();
    let r = http
        .post(format!("{}/v1/approvals/ap1/approve", first.url))
        .bearer_auth(&v)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let snap: Value = http
        .get(format!("{}/v1/snapshot", first.url))
        .bearer_auth(&v)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(snap["seq"], 102);
    first.kill().await; // SIGKILL: no shutdown path runs.

    let second = Proc::spawn(&args).await;
    let again: Value = http
        .get(format!("{}/v1/snapshot", second.url))
        .bearer_auth(&v)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(again, snap, "log, seqs, epoch and state survive");
    let page: Value = http
        .get(format!(
            "{}/v1/events?since=98&epoch={}",
            second.url,
            snap["epoch"].as_str().unwrap()
        ))
        .bearer_auth(&v)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(page["recovered"], true);
    assert_eq!(page["events"].as_array().unwrap().len(), 4);
    let r = http
        .post(format!("{}/v1/ingest", second.url))
        .bearer_auth(&p)
        .json(&ev("ticket.deleted", json!({"id": "t0-0"})))
        .send()
        .await
        .unwrap();
    assert_eq!(r.json::<Value>().await.unwrap()["seqs"], json!([103]));
    second.kill().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_stops_cleanly() {
    let mut proc = Proc::spawn(&["serve", "--addr", "127.0.0.1:0"]).await;
    let health: Value = reqwest::get(format!("{}/healthz", proc.url))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(health["status"], "ok");
    let pid = proc.child.id().expect("running") as i32;
    let status = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let exit = tokio::time::timeout(Duration::from_secs(10), proc.child.wait())
        .await
        .expect("exits")
        .unwrap();
    assert!(exit.success(), "{exit:?}");
}
