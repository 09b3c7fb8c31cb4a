//! Network faults between the client and our gateway, injected by
//! [`pulse_testkit::fault::FaultProxy`]: a half-open link, connections that hang
//! after TCP connect, resets mid-frame, a slow drip, latency with jitter, the
//! client's process stopped past the server's idle limit, the gateway killed
//! while a snapshot downloads. Every test ends with the same check: the cache
//! holds exactly what the gateway's snapshot holds (nothing lost, nothing
//! applied twice: the batches mix timeline appends, which would show twice).
//!
//! No test asserts a time except against the protocol's own timeouts with slack
//! (ping interval + ping timeout, the connect timeout); the figures measured are
//! printed (`FIGURE …`) for `docs/reliability.md`.

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use pulse_core::auth::{Secret, StaticToken};
use pulse_core::session::{ConnectionState, SessionConfig, SessionHandle, SessionStatus};
use pulse_core::store::{SqliteStore, StoreHandle};
use pulse_testkit::fault::{Fault, FaultProxy};

use crate::harness::*;
use crate::{batch, publisher, viewer};

/// The gateway's ping interval and timeout in these tests: a link silent for
/// their sum is dead, on both ends.
const PING: Duration = Duration::from_secs(1);
const PING_TIMEOUT: Duration = Duration::from_secs(1);
/// Slack on top of a protocol timeout for a loaded machine (2 cores, 4 builds).
const SLACK: Duration = Duration::from_secs(8);
const LONG: Duration = Duration::from_secs(90);

fn gateway(store: &str, extra: &[&str]) -> Gateway {
    let mut args = vec!["--ping-interval", "1s", "--ping-timeout", "1s"];
    args.extend_from_slice(extra);
    Gateway::start(store, &args)
}

/// A native session through `url` on a real SQLite cache, on its own runtime.
struct Client {
    rt: tokio::runtime::Runtime,
    handle: SessionHandle,
}

impl Client {
    fn start(url: &str, token: &str, cache: &Path) -> Client {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let mut config = SessionConfig::new(url.parse().unwrap());
        config.backoff.base = Duration::from_millis(200);
        config.backoff.floor = Duration::from_millis(50);
        let store = StoreHandle::new(SqliteStore::open(cache).expect("open cache"));
        let token = Secret::new(token);
        let handle = rt.block_on(async move {
            SessionHandle::spawn(config, Arc::new(StaticToken::new(token)), store).unwrap()
        });
        Client { rt, handle }
    }

    fn status(&self) -> SessionStatus {
        self.handle.status().borrow().clone()
    }

    fn live(&self) -> bool {
        self.status().state == ConnectionState::Live
    }

    fn wait_live(&self, what: &str) {
        wait_for(what, LONG, || self.live());
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        let h = self.handle.clone();
        self.rt.block_on(async move { h.stop().await });
    }
}

fn assert_converged(http: &Http, gw: &Gateway, token: &str, cache: &Path) {
    let head = http.snapshot(&gw.url(), token).seq;
    wait_for(&format!("cache at seq {head}"), LONG, || {
        cache_seq(cache, "acme") >= head
    });
    assert_eq!(
        sorted(cache_entities(cache)),
        sorted(http.snapshot(&gw.url(), token).entities),
        "the cache differs from the gateway's state"
    );
}

#[test]
fn a_half_open_link_is_noticed_within_ping_interval_plus_timeout_and_nothing_is_lost() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache.db");
    let gw = gateway("memory", &[]);
    let proxy = FaultProxy::start(gw.addr);
    let http = Http::new();
    let (pubtok, view) = (publisher("acme"), viewer("acme"));
    http.ingest(&gw.url(), &pubtok, &batch(0, 20)).unwrap();
    let client = Client::start(&proxy.url(), &view, &cache);
    client.wait_live("live through the proxy");
    assert_converged(&http, &gw, &view, &cache);
    let before = client.status().counters.connections;

    // Both ways swallowed, no FIN: the socket looks open to both ends.
    proxy.set(Fault::Blackhole);
    let t0 = Instant::now();
    http.ingest(&gw.url(), &pubtok, &batch(1, 30)).unwrap();
    let limit = PING + PING_TIMEOUT + SLACK;
    wait_for("the half-open link noticed", limit, || !client.live());
    let detected = t0.elapsed();
    eprintln!(
        "FIGURE half-open link noticed after {} ms (ping interval + timeout = {} ms)",
        detected.as_millis(),
        (PING + PING_TIMEOUT).as_millis()
    );
    assert!(proxy.dropped_bytes() > 0, "the black hole swallowed bytes");
    assert!(
        matches!(
            &client.status().state,
            ConnectionState::Connecting { .. } | ConnectionState::Reconnecting { .. }
        ),
        "{:?}",
        client.status().state
    );

    // The path heals: reconnect, catch up, nothing lost or doubled.
    proxy.set(Fault::Pass);
    client.wait_live("live again after the path healed");
    http.ingest(&gw.url(), &pubtok, &batch(2, 10)).unwrap();
    assert_converged(&http, &gw, &view, &cache);
    assert!(client.status().counters.connections > before);
}

#[test]
fn connections_that_hang_after_tcp_connect_time_out_and_are_retried() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache.db");
    let gw = gateway("memory", &[]);
    let proxy = FaultProxy::start(gw.addr);
    proxy.set(Fault::Hang);
    let http = Http::new();
    let (pubtok, view) = (publisher("acme"), viewer("acme"));
    http.ingest(&gw.url(), &pubtok, &batch(0, 10)).unwrap();
    let t0 = Instant::now();
    let client = Client::start(&proxy.url(), &view, &cache);
    // The first attempt hangs in the upgrade: the connect timeout ends it.
    let limit = pulse_core::transport::CONNECT_TIMEOUT + SLACK;
    wait_for("the hung attempt given up", limit, || {
        matches!(&client.status().state, ConnectionState::Reconnecting { error, .. }
            if error.contains("timed out"))
    });
    eprintln!(
        "FIGURE a connection hung after TCP connect given up after {} ms (connect timeout {} ms)",
        t0.elapsed().as_millis(),
        pulse_core::transport::CONNECT_TIMEOUT.as_millis()
    );
    // A second attempt is made (nothing waits forever), then the path heals.
    wait_for("a second attempt", limit + limit, || proxy.accepted() >= 2);
    proxy.set(Fault::Pass);
    client.wait_live("live once connections are answered");
    assert_converged(&http, &gw, &view, &cache);
}

#[test]
fn resets_mid_frame_lose_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache.db");
    let gw = gateway("memory", &[]);
    let proxy = FaultProxy::start(gw.addr);
    let http = Http::new();
    let (pubtok, view) = (publisher("acme"), viewer("acme"));
    let client = Client::start(&proxy.url(), &view, &cache);
    client.wait_live("live");
    http.ingest(&gw.url(), &pubtok, &batch(0, 20)).unwrap();
    assert_converged(&http, &gw, &view, &cache);

    // Every chunk from the gateway is cut in half and the client reset: the
    // live link, then each reconnect's upgrade answer.
    proxy.set(Fault::ResetMidFrame);
    let mut n = 1;
    wait_for("three resets mid-frame", LONG, || {
        // Keep frames coming so there is a frame to cut.
        let _ = http.ingest(&gw.url(), &pubtok, &batch(n, 5));
        n += 1;
        proxy.resets() >= 3
    });
    proxy.set(Fault::Pass);
    client.wait_live("live after the resets");
    assert_converged(&http, &gw, &view, &cache);
    eprintln!(
        "FIGURE {} resets mid-frame, {} events ingested meanwhile, 0 lost",
        proxy.resets(),
        (n - 1) * 5
    );
}

#[test]
fn a_slow_drip_and_latency_with_jitter_keep_the_link_and_lose_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache.db");
    let gw = gateway("memory", &[]);
    let proxy = FaultProxy::start(gw.addr);
    let http = Http::new();
    let (pubtok, view) = (publisher("acme"), viewer("acme"));
    let client = Client::start(&proxy.url(), &view, &cache);
    client.wait_live("live");
    let connections = client.status().counters.connections;

    // One byte every 2 ms: an event frame (~150 bytes) takes ~0.3 s, well
    // inside the 2 s of silence a link may have.
    proxy.set(Fault::Drip {
        every: Duration::from_millis(2),
    });
    http.ingest(&gw.url(), &pubtok, &batch(0, 5)).unwrap();
    assert_converged(&http, &gw, &view, &cache);

    proxy.set(Fault::Latency {
        base: Duration::from_millis(100),
        jitter: Duration::from_millis(300),
    });
    for n in 1..=5 {
        http.ingest(&gw.url(), &pubtok, &batch(n, 10)).unwrap();
    }
    assert_converged(&http, &gw, &view, &cache);
    proxy.set(Fault::Pass);
    let st = client.status();
    assert_eq!(
        st.counters.connections, connections,
        "a slow but live link was taken for dead"
    );
    assert_eq!(st.counters.decode_errors, 0);
    assert_eq!(st.counters.gaps, 0);
}

fn signal(pid: u32, sig: &str) {
    let ok = Command::new("kill")
        .args([sig, &pid.to_string()])
        .status()
        .expect("run kill")
        .success();
    assert!(ok, "kill {sig} {pid}");
}

/// Sleep and wake: pulsectl stopped (SIGSTOP) past the gateway's idle limit,
/// which closes its socket meanwhile; on SIGCONT the zombie socket is noticed
/// at once (its close is already there to read, and its silence timer is long
/// past), not after another ping interval + timeout.
#[test]
fn a_client_stopped_past_the_servers_idle_limit_notices_the_zombie_socket_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache.db");
    let gw = gateway("memory", &[]);
    let proxy = FaultProxy::start(gw.addr);
    let http = Http::new();
    let (pubtok, view) = (publisher("acme"), viewer("acme"));
    http.ingest(&gw.url(), &pubtok, &batch(0, 10)).unwrap();
    let ctl = Pulsectl::watch(&proxy.url(), &["--token", &view], &cache, &[]);
    wait_for("pulsectl live", LONG, || {
        ctl.stderr.contains("pulsectl: live")
    });
    assert_converged(&http, &gw, &view, &cache);
    let accepted = proxy.accepted();

    signal(ctl.pid(), "-STOP");
    // The gateway drops the silent client after ping interval + timeout.
    wait_for(
        "the gateway closed the stopped client",
        PING + PING_TIMEOUT + SLACK,
        || proxy.upstream_closed() >= 1,
    );
    http.ingest(&gw.url(), &pubtok, &batch(1, 20)).unwrap();
    let woke = Instant::now();
    signal(ctl.pid(), "-CONT");
    // Noticed at once: a new connection well before another full silence
    // window (ping interval + timeout) would have run out, plus the first
    // backoff delay (at most its 1 s base) and slack.
    let limit = PING + PING_TIMEOUT + Duration::from_secs(1) + SLACK;
    wait_for("a new connection after wake", limit, || {
        proxy.accepted() > accepted
    });
    eprintln!(
        "FIGURE zombie socket replaced {} ms after SIGCONT",
        woke.elapsed().as_millis()
    );
    assert_converged(&http, &gw, &view, &cache);
}

/// A snapshot that downloads slowly while live events arrive: the events are
/// buffered and those above the snapshot's seq applied after it, on the same
/// link (no reconnect, one snapshot).
#[test]
fn live_events_that_arrive_during_a_slow_snapshot_are_kept() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache.db");
    // Retain 1 event: a new client cannot be replayed to and loads a snapshot.
    let gw = gateway("memory", &["--retain", "1"]);
    let proxy = FaultProxy::start(gw.addr);
    let http = Http::new();
    let (pubtok, view) = (publisher("acme"), viewer("acme"));
    http.ingest(&gw.url(), &pubtok, &batch(0, 40)).unwrap();
    proxy.set_rest(Some(Fault::Drip {
        every: Duration::from_millis(1),
    }));
    let client = Client::start(&proxy.url(), &view, &cache);
    wait_for("the snapshot request under way", LONG, || {
        proxy.accepted() >= 2
    });
    // Live events while the snapshot drips in.
    for n in 1..=4 {
        http.ingest(&gw.url(), &pubtok, &batch(n, 5)).unwrap();
    }
    assert!(
        client.status().counters.snapshots == 0,
        "the snapshot should still be downloading (drip too fast for this machine?)"
    );
    proxy.set_rest(None);
    client.wait_live("live after the snapshot");
    assert_converged(&http, &gw, &view, &cache);
    let st = client.status();
    assert_eq!(st.counters.snapshots, 1);
    assert_eq!(st.counters.connections, 1, "no reconnect was needed");
    assert_eq!(st.counters.gaps, 0);
}

/// The gateway (SQLite, durable) SIGKILLed while a snapshot downloads and live
/// events are buffered: after its restart the client converges; none of the
/// events ingested before, during or after is lost, none doubled.
#[test]
fn the_gateway_killed_during_a_snapshot_download_loses_no_event() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache.db");
    let db = dir.path().join("gw.db");
    let mut gw = gateway(&format!("sqlite:{}", db.display()), &["--retain", "1"]);
    let proxy = FaultProxy::start(gw.addr);
    let http = Http::new();
    let (pubtok, view) = (publisher("acme"), viewer("acme"));
    http.ingest(&gw.url(), &pubtok, &batch(0, 40)).unwrap();
    proxy.set_rest(Some(Fault::Drip {
        every: Duration::from_millis(2),
    }));
    let client = Client::start(&proxy.url(), &view, &cache);
    wait_for("the snapshot request under way", LONG, || {
        proxy.accepted() >= 2
    });
    for n in 1..=3 {
        http.ingest(&gw.url(), &pubtok, &batch(n, 5)).unwrap();
    }
    assert_eq!(client.status().counters.snapshots, 0, "still downloading");
    // Kill it mid-download: the dripping answer is cut (reset) as well.
    gw.kill();
    proxy.set_rest(Some(Fault::ResetMidFrame));
    wait_for("the client saw the loss", LONG, || {
        matches!(client.status().state, ConnectionState::Reconnecting { .. })
    });
    proxy.set_rest(None);
    gw.restart();
    http.ingest(&gw.url(), &pubtok, &batch(4, 5)).unwrap();
    client.wait_live("live after the restart");
    assert_converged(&http, &gw, &view, &cache);
}
