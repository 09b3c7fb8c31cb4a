//! TLS verification stays on: a server whose certificate no trusted CA signed
//! (a throwaway CA made with the `openssl` CLI) is refused on the socket (wss)
//! and over REST (https), each with an error that says it is the certificate.
//! The server is a real TLS listener (rustls) on port 0.

use std::sync::Arc;
use std::time::Duration;

use pulse_core::auth::{Secret, StaticToken};
use pulse_core::rest::RestClient;
use pulse_core::session::{ConnectionState, SessionConfig, SessionHandle};
use pulse_core::store::{MemoryStore, StoreHandle};
use pulse_testkit::tls::{test_ca, tls_acceptor as tokio_rustls_acceptor};
use tokio::net::TcpListener;

use crate::common::until_within;

/// A token long enough that redacting it cannot touch other words of an error.
const TOKEN: &str = "tls-test-token-0123456789";

/// A TLS listener that completes handshakes (when the client trusts it) and
/// then answers nothing.
async fn tls_server(cert: &std::path::Path, key: &std::path::Path) -> String {
    let acceptor = tokio_rustls_acceptor(cert, key);
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
    let ca = test_ca(dir.path());
    let url = tls_server(&ca.cert, &ca.key).await;

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
