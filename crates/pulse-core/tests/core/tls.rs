//! TLS verification stays on: a server whose certificate no trusted CA signed
//! (a throwaway CA made with the `openssl` CLI) is refused on the socket (wss)
//! and over REST (https), each with an error that says it is the certificate.
//! The server is a real TLS listener (rustls) on port 0.

use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use pulse_core::auth::{Secret, StaticToken};
use pulse_core::rest::RestClient;
use pulse_core::session::{ConnectionState, SessionConfig, SessionHandle};
use pulse_core::store::{MemoryStore, StoreHandle};
use tokio::net::TcpListener;
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::common::until_within;

/// A token long enough that redacting it cannot touch other words of an error.
const TOKEN: &str = "tls-test-token-0123456789";

/// A CA and a certificate for 127.0.0.1 signed by it, as PEM files in `dir`.
fn test_ca(dir: &std::path::Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let run = |args: &[&str]| {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .expect("the openssl CLI is needed for the TLS tests");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    let mut ca = vec!["req", "-x509", "-days", "2", "-subj", "/CN=Pulse test CA"];
    ca.extend_from_slice(&ec);
    ca.extend_from_slice(&["-keyout", "ca.key", "-out", "ca.pem"]);
    run(&ca);
    let mut csr = vec!["req", "-subj", "/CN=127.0.0.1"];
    csr.extend_from_slice(&ec);
    csr.extend_from_slice(&["-keyout", "server.key", "-out", "server.csr"]);
    run(&csr);
    std::fs::write(dir.join("san.ext"), "subjectAltName=IP:127.0.0.1\n").unwrap();
    run(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        "san.ext",
        "-out",
        "server.pem",
    ]);
    (dir.join("server.pem"), dir.join("server.key"))
}

/// A TLS listener that completes handshakes (when the client trusts it) and
/// then answers nothing.
async fn tls_server(cert: &std::path::Path, key: &std::path::Path) -> String {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let key = PrivateKeyDer::from_pem_file(key).unwrap();
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("https://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((tcp, _)) = listener.accept().await {
            if let Ok(tls) = acceptor.accept(tcp).await {
                held.push(tls);
            }
        }
    });
    url
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_from_an_untrusted_ca_is_refused_clearly_on_the_socket_and_over_rest() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = test_ca(dir.path());
    let url = tls_server(&cert, &key).await;

    let rest = RestClient::new(url.parse().unwrap()).unwrap();
    let err = tokio::time::timeout(Duration::from_secs(30), rest.snapshot(&Secret::new(TOKEN)))
        .await
        .expect("REST gave up")
        .expect_err("an untrusted certificate is refused");
    assert!(
        err.to_string().to_lowercase().contains("certificate"),
        "REST: {err}"
    );

    let mut config = SessionConfig::new(url.parse().unwrap());
    config.backoff.base = Duration::from_millis(100);
    let handle = SessionHandle::spawn(
        config,
        Arc::new(StaticToken::new(Secret::new(TOKEN))),
        StoreHandle::new(MemoryStore::new()),
    )
    .unwrap();
    let st = until_within(
        Duration::from_secs(30),
        &handle,
        "the socket refused",
        |s| {
            matches!(&s.state,
            ConnectionState::Reconnecting { error, .. }
                | ConnectionState::Failed { error, .. }
                | ConnectionState::Polling { reason: error }
                if error.to_lowercase().contains("certificate"))
        },
    )
    .await;
    assert_ne!(st.state, ConnectionState::Live);
    handle.stop().await;
}
