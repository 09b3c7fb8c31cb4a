//! A real `langgraph dev` (tests/peers/langgraph) as the gateway's source: its
//! interrupts become approvals that `pulsectl` sees, answers resume the thread
//! with the right value, a lost webhook is caught by the reconcile, a gateway
//! killed between answer and resume neither loses the answer nor resumes twice,
//! and an interrupt resumed behind Pulse's back is decided elsewhere.
//!
//! What LangGraph got is read back from the thread's own state (`values.answer`
//! is the resume value as the graph received it), never from what Pulse sent.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use pulse_testkit::langgraph::{LangGraph, WEBHOOK_SECRET};
use pulse_testkit::wait_for_some;
use serde_json::{json, Value};

use super::harness::*;
use super::viewer;

const WAIT: Duration = Duration::from_secs(60);
const WEBHOOK: &str = "/v1/sources/langgraph/webhook";

fn secret_file(dir: &Path) -> String {
    let p = dir.join("webhook-secret");
    std::fs::write(&p, format!("{WEBHOOK_SECRET}\n")).unwrap();
    p.display().to_string()
}

/// A gateway binary whose source is `lg_base` (LangGraph or a proxy to it).
fn gateway(store: &str, lg_base: &str, dir: &Path, reconcile: &str) -> Gateway {
    let source = format!("langgraph+{lg_base}");
    let secret = secret_file(dir);
    Gateway::start(
        store,
        &[
            "--source",
            &source,
            "--tenant",
            "acme",
            "--webhook-secret-file",
            &secret,
            "--reconcile-interval",
            reconcile,
        ],
    )
}

fn pulsectl(args: &[&str]) -> std::process::Output {
    std::process::Command::new(bin("pulsectl"))
        .args(args)
        .env_remove("PULSE_TOKEN")
        .output()
        .unwrap()
}

async fn approval(gw: &Gateway, token: &str, id: &str) -> Option<Value> {
    let snap: Value = reqwest::Client::new()
        .get(format!("{}/v1/snapshot", gw.url()))
        .bearer_auth(token)
        .send()
        .await
        .ok()?
        .json()
        .await
        .ok()?;
    snap["entities"]
        .as_array()?
        .iter()
        .find(|e| e["id"] == id)
        .map(|e| e["data"].clone())
}

async fn wait_approval(
    gw: &Gateway,
    token: &str,
    id: &str,
    what: &str,
    ok: impl Fn(&Value) -> bool,
) -> Value {
    wait_for_some(what, WAIT, || async {
        approval(gw, token, id).await.filter(|a| ok(a))
    })
    .await
}

/// Start `graph` on a new thread (webhook to `gw` when given); the thread id and the
/// approval id once LangGraph shows the interrupt.
async fn ask(lg: &LangGraph, graph: &str, input: Value, webhook: Option<&str>) -> (String, String) {
    let thread = lg.thread().await;
    lg.run(&thread, graph, input, webhook).await;
    let t = lg.wait_status(&thread, "interrupted", WAIT).await;
    let iid = LangGraph::interrupt_ids(&t).remove(0);
    let id = format!("lg:{thread}:{iid}");
    (thread, id)
}

async fn answer_of(lg: &LangGraph, thread: &str) -> Value {
    let t = lg.wait_status(thread, "idle", WAIT).await;
    assert_eq!(t["values"]["done"], true, "the run completed: {t}");
    t["values"]["answer"].clone()
}

async fn pulse_runs(lg: &LangGraph, thread: &str, id: &str) -> usize {
    lg.runs(thread)
        .await
        .iter()
        .filter(|r| r["metadata"]["pulse_approval"] == id)
        .count()
}

async fn post(gw: &Gateway, token: &str, path: &str, body: Value) -> (u16, Value) {
    let r = reqwest::Client::new()
        .post(format!("{}{path}", gw.url()))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupt_reaches_pulsectl_by_webhook_and_approve_resumes_the_thread() {
    let lg = LangGraph::start().await;
    let dir = tempfile::tempdir().unwrap();
    // No reconcile during the test: only the webhook can bring the interrupt.
    let gw = gateway("memory", &lg.base(), dir.path(), "1h");
    let view = viewer("acme");
    let cache = dir.path().join("cache.db");
    let watch = Pulsectl::watch(&gw.url(), &["--token", &view], &cache, &[]);
    let hook = format!("{}{WEBHOOK}", gw.url());
    let (thread, id) = ask(&lg, "approval", json!({}), Some(&hook)).await;

    wait_for(&format!("pulsectl to print approval {id}"), WAIT, || {
        watch.stdout.contains(&id)
    });
    let a = approval(&gw, &view, &id).await.expect("the approval");
    assert_eq!(a["status"], "pending");
    assert_eq!(a["thread_id"], thread);
    assert_eq!(a["graph"], "approval");
    assert_eq!(a["action"], "send_email");
    assert_eq!(
        a["args"],
        json!({"to": "team@example.com", "subject": "Release notes"})
    );
    assert_eq!(a["description"], "Send the release notes to the team?");
    assert_eq!(
        a["allowed"],
        json!(["approve", "reject", "edit", "respond"])
    );

    let out = pulsectl(&["approve", &id, "--server", &gw.url(), "--token", &view]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // `interrupt([request])[0]`: the graph got the HumanResponse out of a list of one.
    assert_eq!(
        answer_of(&lg, &thread).await,
        json!({"type": "accept", "args": null})
    );
    let a = wait_approval(&gw, &view, &id, "the resume recorded", |a| {
        a["resume"]["state"] == "sent"
    })
    .await;
    assert_eq!(a["status"], "approved");
    assert_eq!(a["decided_by"], "viewer-1");
    assert_eq!(pulse_runs(&lg, &thread, &id).await, 1);
    wait_for("pulsectl to print the decision", WAIT, || {
        watch
            .stdout
            .snapshot()
            .iter()
            .any(|l| l.contains(&id) && l.contains("approved"))
    });

    // A second answer is a conflict, and nothing more is sent.
    let out = pulsectl(&["reject", &id, "--server", &gw.url(), "--token", &view]);
    assert_eq!(
        out.status.code(),
        Some(6),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(pulse_runs(&lg, &thread, &id).await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edit_respond_and_reject_resume_with_their_values() {
    let lg = LangGraph::start().await;
    let dir = tempfile::tempdir().unwrap();
    let store = format!("sqlite:{}", dir.path().join("gw.db").display());
    let mut gw = gateway(&store, &lg.base(), dir.path(), "1h");
    let view = viewer("acme");
    let hook = format!("{}{WEBHOOK}", gw.url());
    let pending = |a: &Value| a["status"] == "pending";

    // Edit on a bare human interrupt: `{type: edit, args: {action, args}}`.
    let (t1, a1) = ask(&lg, "approval", json!({"shape": "dict"}), Some(&hook)).await;
    wait_approval(&gw, &view, &a1, "approval 1", pending).await;
    let (s, body) = post(
        &gw,
        &view,
        &format!("/v1/approvals/{a1}/edit"),
        json!({"args": [1]}),
    )
    .await;
    assert_eq!(s, 400, "edited args must be an object: {body}");
    for garbage in ["[1]", "{", "\"to\""] {
        let out = pulsectl(&[
            "edit",
            &a1,
            "--args",
            garbage,
            "--server",
            &gw.url(),
            "--token",
            &view,
        ]);
        assert_eq!(out.status.code(), Some(2), "--args {garbage}");
    }
    assert_eq!(
        pulse_runs(&lg, &t1, &a1).await,
        0,
        "nothing sent for garbage"
    );
    let edited = r#"{"to": "ops@example.com"}"#;
    let out = pulsectl(&[
        "edit",
        &a1,
        "--args",
        edited,
        "--server",
        &gw.url(),
        "--token",
        &view,
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        answer_of(&lg, &t1).await,
        json!({"type": "edit", "args": {"action": "send_email", "args": {"to": "ops@example.com"}}})
    );

    // Respond on a listed one: `{type: response, args: TEXT}`.
    let (t2, a2) = ask(&lg, "approval", json!({}), Some(&hook)).await;
    wait_approval(&gw, &view, &a2, "approval 2", pending).await;
    let (s, _) = post(
        &gw,
        &view,
        &format!("/v1/approvals/{a2}/respond"),
        json!({"text": "  "}),
    )
    .await;
    assert_eq!(s, 400, "an empty text is refused");
    let out = pulsectl(&[
        "respond",
        &a2,
        "--text",
        "Wait for QA",
        "--server",
        &gw.url(),
        "--token",
        &view,
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        answer_of(&lg, &t2).await,
        json!({"type": "response", "args": "Wait for QA"})
    );
    let a = wait_approval(&gw, &view, &a2, "responded", |a| a["status"] == "responded").await;
    assert_eq!(a["answer"]["kind"], "respond");

    // An answer the interrupt does not allow is refused and nothing is sent.
    let (t3, a3) = ask(
        &lg,
        "approval",
        json!({"allow": {"allow_edit": false}}),
        Some(&hook),
    )
    .await;
    wait_approval(&gw, &view, &a3, "approval 3", pending).await;
    let (s, body) = post(
        &gw,
        &view,
        &format!("/v1/approvals/{a3}/edit"),
        json!({"args": {}}),
    )
    .await;
    assert_eq!(s, 409, "{body}");
    assert_eq!(
        approval(&gw, &view, &a3).await.unwrap()["status"],
        "pending"
    );
    assert_eq!(pulse_runs(&lg, &t3, &a3).await, 0);
    // Reject: `ignore`.
    let out = pulsectl(&["reject", &a3, "--server", &gw.url(), "--token", &view]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        answer_of(&lg, &t3).await,
        json!({"type": "ignore", "args": null})
    );

    // A plain value: shown as is; approve resumes with `true`, respond with the text.
    let (t4, a4) = ask(&lg, "plain", json!({}), Some(&hook)).await;
    let a = wait_approval(&gw, &view, &a4, "approval 4", pending).await;
    assert_eq!(a["title"], "Deploy build 42 to production?");
    assert_eq!(a["value"], "Deploy build 42 to production?");
    let (s, _) = post(
        &gw,
        &view,
        &format!("/v1/approvals/{a4}/edit"),
        json!({"args": {}}),
    )
    .await;
    assert_eq!(s, 409, "a plain interrupt has nothing to edit");
    let out = pulsectl(&["approve", &a4, "--server", &gw.url(), "--token", &view]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(answer_of(&lg, &t4).await, json!(true));
    let (t5, a5) = ask(&lg, "plain", json!({}), Some(&hook)).await;
    wait_approval(&gw, &view, &a5, "approval 5", pending).await;
    // Offline (the gateway down): the answer waits in the outbox, queued for
    // this gateway, and the next `watch` sends it there once it is back.
    let dir2 = tempfile::tempdir().unwrap();
    let cache = dir2.path().join("cache.db");
    let cache_arg = cache.to_str().unwrap();
    let url = gw.url();
    gw.kill();
    let out = pulsectl(&[
        "respond", &a5, "--text", "tomorrow", "--server", &url, "--token", &view, "--cache",
        cache_arg,
    ]);
    assert!(
        out.status.success(),
        "queued: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(pulse_runs(&lg, &t5, &a5).await, 0);
    gw.restart();
    let watch = Pulsectl::watch(&gw.url(), &["--token", &view], &cache, &[]);
    assert_eq!(answer_of(&lg, &t5).await, json!("tomorrow"));
    drop(watch);

    // The thread's recent steps, from its history, for the approval's detail.
    let r = reqwest::Client::new()
        .get(format!("{}/v1/approvals/{a5}/steps", gw.url()))
        .bearer_auth(&view)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let steps: Value = r.json().await.unwrap();
    let newest = &steps["steps"][0];
    assert_eq!(
        newest["values"]["steps"].as_array().map(Vec::len),
        Some(4),
        "{steps}"
    );
    assert!(steps["steps"].as_array().unwrap().len() >= 3, "{steps}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_webhook_is_caught_by_the_reconcile_and_bad_webhooks_are_refused() {
    let lg = LangGraph::start().await;
    let dir = tempfile::tempdir().unwrap();
    let gw = gateway("memory", &lg.base(), dir.path(), "1s");
    let view = viewer("acme");
    // No webhook at all: as if LangGraph's call had been lost.
    let (thread, id) = ask(&lg, "approval", json!({}), None).await;
    let a = wait_approval(
        &gw,
        &view,
        &id,
        "the reconcile to find the interrupt",
        |a| a["status"] == "pending",
    )
    .await;
    assert_eq!(a["thread_id"], thread);

    let http = reqwest::Client::new();
    let hook = format!("{}{WEBHOOK}", gw.url());
    let body = json!({"thread_id": thread});
    let r = http.post(&hook).json(&body).send().await.unwrap();
    assert_eq!(r.status(), 401, "no secret");
    let r = http
        .post(&hook)
        .header("X-Pulse-Webhook-Secret", "wrong")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401, "a wrong secret");
    for garbage in ["", "{", "[1,2]", "{\"thread_id\": 7}"] {
        let r = http
            .post(&hook)
            .header("X-Pulse-Webhook-Secret", WEBHOOK_SECRET)
            .header("content-type", "application/json")
            .body(garbage)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400, "garbage {garbage:?}");
    }
    let r = http
        .post(&hook)
        .header("X-Pulse-Webhook-Secret", WEBHOOK_SECRET)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // Seen by the webhook and the reconcile: stored once.
    let snap = reqwest::Client::new()
        .get(format!("{}/v1/snapshot", gw.url()))
        .bearer_auth(&view)
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap();
    let n = snap["entities"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "approval")
        .count();
    assert_eq!(n, 1);
    // The secret is never logged; the refusals are counted.
    assert!(!gw.stderr.contains(WEBHOOK_SECRET));
    // Reconcile rounds after the interrupt was stored offer it no more: the log
    // holds it once without the store having to drop copies.
    let metrics_url = format!("{}/metrics", gw.url());
    let metrics = wait_for_some("three more reconcile rounds", WAIT, || async {
        let m = reqwest::get(&metrics_url).await.ok()?.text().await.ok()?;
        let rounds: u64 = m
            .lines()
            .find_map(|l| l.strip_prefix("pulse_langgraph_reconciles_total "))?
            .trim()
            .parse()
            .ok()?;
        (rounds >= 4).then_some(m)
    })
    .await;
    assert!(
        metrics.contains("pulse_ingest_duplicates_total 0"),
        "{metrics}"
    );
    assert!(
        metrics.contains("pulse_langgraph_webhooks_refused_total 6"),
        "{metrics}"
    );
    assert!(
        metrics.contains("pulse_langgraph_webhooks_total 1"),
        "{metrics}"
    );
    assert!(!metrics.contains(WEBHOOK_SECRET));
}

/// In front of LangGraph: forwards everything but a resume (a run with a
/// `command`), which it swallows (never forwarded) or forwards and then never
/// answers, as a gateway killed at either moment would see it.
struct ResumeTrap {
    addr: std::net::SocketAddr,
    seen: Arc<AtomicU64>,
}

#[derive(Clone, Copy)]
enum Trap {
    Swallow,
    ForwardThenHang,
}

impl ResumeTrap {
    async fn start(upstream: String, mode: Trap) -> ResumeTrap {
        use axum::body::Bytes;
        use axum::http::{HeaderMap, Method, Uri};
        let seen = Arc::new(AtomicU64::new(0));
        let s = seen.clone();
        let client = reqwest::Client::new();
        let app = axum::Router::new().fallback(
            move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| {
                let (s, client, upstream) = (s.clone(), client.clone(), upstream.clone());
                async move {
                    let resume = method == Method::POST
                        && uri.path().ends_with("/runs")
                        && serde_json::from_slice::<Value>(&body)
                            .is_ok_and(|v| v.get("command").is_some());
                    if resume && matches!(mode, Trap::Swallow) {
                        s.fetch_add(1, Ordering::SeqCst);
                        std::future::pending::<()>().await;
                    }
                    let mut req = client
                        .request(method, format!("{upstream}{uri}"))
                        .body(body);
                    if let Some(ct) = headers.get("content-type") {
                        req = req.header("content-type", ct);
                    }
                    let resp = req.send().await.expect("upstream");
                    let status = resp.status();
                    let bytes = resp.bytes().await.unwrap_or_default();
                    if resume {
                        s.fetch_add(1, Ordering::SeqCst);
                        std::future::pending::<()>().await;
                    }
                    (status, [("content-type", "application/json")], bytes)
                }
            },
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        ResumeTrap { addr, seen }
    }

    fn base(&self) -> String {
        format!("http://{}", self.addr)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_killed_between_answer_and_resume_neither_loses_nor_repeats_it() {
    let lg = LangGraph::start().await;
    for mode in [Trap::Swallow, Trap::ForwardThenHang] {
        let dir = tempfile::tempdir().unwrap();
        let store = format!("sqlite:{}", dir.path().join("gw.db").display());
        let trap = ResumeTrap::start(lg.base(), mode).await;
        let mut gw = gateway(&store, &trap.base(), dir.path(), "1h");
        let view = viewer("acme");
        let hook = format!("{}{WEBHOOK}", gw.url());
        let (thread, id) = ask(&lg, "approval", json!({}), Some(&hook)).await;
        wait_approval(&gw, &view, &id, "the approval", |a| {
            a["status"] == "pending"
        })
        .await;

        let (s, body) = post(
            &gw,
            &view,
            &format!("/v1/approvals/{id}/approve"),
            json!({}),
        )
        .await;
        assert_eq!(s, 200, "the answer is stored at once: {body}");
        wait_for("the resume to reach the trap", WAIT, || {
            trap.seen.load(Ordering::SeqCst) >= 1
        });
        gw.kill();

        // Started again on the same store, straight at LangGraph.
        let gw = gateway(&store, &lg.base(), dir.path(), "1h");
        assert_eq!(
            answer_of(&lg, &thread).await,
            json!({"type": "accept", "args": null})
        );
        let a = wait_approval(&gw, &view, &id, "the resume recorded", |a| {
            a["resume"]["state"] == "sent"
        })
        .await;
        assert_eq!(a["decided_by"], "viewer-1", "the answer survived the kill");
        assert_eq!(
            pulse_runs(&lg, &thread, &id).await,
            1,
            "resumed exactly once"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupt_resumed_behind_pulses_back_is_decided_elsewhere() {
    let lg = LangGraph::start().await;
    let dir = tempfile::tempdir().unwrap();
    let gw = gateway("memory", &lg.base(), dir.path(), "1h");
    let view = viewer("acme");
    let cache = dir.path().join("cache.db");
    let watch = Pulsectl::watch(&gw.url(), &["--token", &view], &cache, &[]);
    let hook = format!("{}{WEBHOOK}", gw.url());
    let (thread, id) = ask(&lg, "approval", json!({}), Some(&hook)).await;
    wait_approval(&gw, &view, &id, "the approval", |a| {
        a["status"] == "pending"
    })
    .await;
    let iid = id.rsplit(':').next().unwrap();
    // As Studio would: resumed straight on LangGraph, its run ending with our webhook.
    let body = json!({"assistant_id": "approval", "command": {"resume": {iid: [{"type": "accept", "args": null}]}}, "webhook": hook});
    lg.call(
        reqwest::Method::POST,
        &format!("/threads/{thread}/runs"),
        Some(body),
    )
    .await;
    answer_of(&lg, &thread).await;
    wait_approval(&gw, &view, &id, "decided elsewhere", |a| {
        a["status"] == "decided_elsewhere"
    })
    .await;
    wait_for("pulsectl to see it decided elsewhere", WAIT, || {
        watch
            .stdout
            .snapshot()
            .iter()
            .any(|l| l.contains(&id) && l.contains("decided_elsewhere"))
    });
    let out = pulsectl(&["approve", &id, "--server", &gw.url(), "--token", &view]);
    assert_eq!(out.status.code(), Some(6), "no longer pending");
    assert_eq!(pulse_runs(&lg, &thread, &id).await, 0);
}
