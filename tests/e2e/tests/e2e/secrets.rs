//! Tokens never reach a log, even at trace level: the gateway and `pulsectl`
//! run with `PULSE_LOG=trace` and known tokens (in the upgrade's
//! `Authorization` header, REST calls, ingest), and every byte they wrote —
//! their stdout and stderr, the cache and its `-wal` / `-shm`, anything else in
//! the client's folder — is searched for each token and for its signature
//! alone (a half-kept token is a leak too).

use std::path::Path;

use crate::harness::*;
use crate::{batch, publisher, viewer};

const LONG: std::time::Duration = std::time::Duration::from_secs(90);

fn every_file(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(every_file(&path));
        } else if let Ok(bytes) = std::fs::read(&path) {
            out.push((path.display().to_string(), bytes));
        }
    }
    out
}

fn contains(hay: &[u8], needle: &str) -> bool {
    hay.windows(needle.len()).any(|w| w == needle.as_bytes())
}

#[test]
fn no_token_in_any_byte_the_gateway_and_pulsectl_write_at_trace_level() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache.db");
    let trace = [("PULSE_LOG", "trace")];
    let gw = Gateway::start_env("memory", &[], &trace);
    let http = Http::new();
    let (pubtok, view) = (publisher("acme"), viewer("acme"));
    http.ingest(&gw.url(), &pubtok, &batch(0, 20)).unwrap();
    let mut ctl = Pulsectl::watch_env(&gw.url(), &["--token", &view], &cache, &[], &trace);
    wait_for("pulsectl live", LONG, || {
        ctl.stderr.contains("pulsectl: live")
    });
    http.ingest(&gw.url(), &pubtok, &batch(1, 20)).unwrap();
    let head = http.snapshot(&gw.url(), &view).seq;
    wait_for("cache synced", LONG, || cache_seq(&cache, "acme") >= head);
    let gw_lines = gw.stderr.clone();
    ctl.kill();
    drop(gw);

    let mut written: Vec<(String, Vec<u8>)> = every_file(dir.path());
    written.push((
        "pulsectl stderr".into(),
        ctl.stderr.snapshot().join("\n").into_bytes(),
    ));
    written.push((
        "pulsectl stdout".into(),
        ctl.stdout.snapshot().join("\n").into_bytes(),
    ));
    written.push((
        "gateway stderr".into(),
        gw_lines.snapshot().join("\n").into_bytes(),
    ));
    // Verbose output was written at all (else the search proves nothing):
    // trace from the crates that have it, debug from the capped ones.
    let verbose = |lines: &[String]| {
        lines
            .iter()
            .filter(|l| l.contains("TRACE") || l.contains("DEBUG"))
            .count()
    };
    let (c, g) = (
        verbose(&ctl.stderr.snapshot()),
        verbose(&gw_lines.snapshot()),
    );
    eprintln!("FIGURE verbose lines searched: pulsectl {c}, gateway {g}");
    assert!(c > 0, "pulsectl wrote no trace/debug lines");
    assert!(g > 0, "the gateway wrote no trace/debug lines");
    for (name, token) in [("viewer", &view), ("publisher", &pubtok)] {
        let signature = token.rsplit('.').next().unwrap();
        for (file, bytes) in &written {
            assert!(!contains(bytes, token), "the {name} token is in {file}");
            assert!(
                !contains(bytes, signature),
                "the {name} token's signature is in {file}"
            );
        }
    }
}

/// TLS with a private CA (made with the `openssl` CLI) in front of the
/// gateway: without the CA file `pulsectl` refuses the certificate and says so;
/// with `--ca-file` it goes live over wss/https and syncs. Verification is on
/// in both runs.
#[test]
fn pulsectl_trusts_a_private_ca_only_when_given_its_file() {
    let dir = tempfile::tempdir().unwrap();
    let ca = pulse_testkit::tls::test_ca(dir.path());
    let gw = Gateway::start("memory", &[]);
    let front = pulse_testkit::tls::TlsFront::start(gw.addr, &ca.cert, &ca.key);
    let http = Http::new();
    let (pubtok, view) = (publisher("acme"), viewer("acme"));
    http.ingest(&gw.url(), &pubtok, &batch(0, 10)).unwrap();

    let refused = Pulsectl::watch(
        &front.url(),
        &["--token", &view],
        &dir.path().join("refused.db"),
        &[],
    );
    wait_for("the certificate refused", LONG, || {
        refused.stderr.contains("certificate")
    });
    assert!(!refused.stderr.contains("pulsectl: live"));
    drop(refused);

    let cache = dir.path().join("cache.db");
    let ca_file = ca.ca.display().to_string();
    let ctl = Pulsectl::watch(
        &front.url(),
        &["--token", &view, "--ca-file", &ca_file],
        &cache,
        &[],
    );
    wait_for("live over TLS", LONG, || {
        ctl.stderr.contains("pulsectl: live")
    });
    http.ingest(&gw.url(), &pubtok, &batch(1, 10)).unwrap();
    let head = http.snapshot(&gw.url(), &view).seq;
    wait_for("cache synced over TLS", LONG, || {
        cache_seq(&cache, "acme") >= head
    });
    assert_eq!(
        sorted(cache_entities(&cache)),
        sorted(http.snapshot(&gw.url(), &view).entities)
    );
}
