//! Which certificate authorities Pulse trusts: the public web roots
//! (webpki-roots), plus a CA file the user gives (an enterprise's private CA:
//! `pulsectl --ca-file`, `PULSE_CA_FILE` for the desktop).
//!
//! Invariants:
//! - verification is never turned off: the only change a user can make is to
//!   *add* trusted CAs;
//! - once [`trust_ca_file`] succeeded, every TLS connection of the process
//!   uses it (REST, the native and jsonws sockets, Socket.IO over WebSocket and
//!   polling), so no transport can quietly fall back to the defaults; a CA file
//!   that cannot be read or holds no certificate is an error naming the file,
//!   never ignored;
//! - it is set once per process; giving the same file again is a no-op, a
//!   different one an error.

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;

static EXTRA: OnceLock<(PathBuf, Arc<rustls::ClientConfig>)> = OnceLock::new();

/// The CA certificates (PEM) in `path`, or an error naming the file: it cannot
/// be read, is not PEM, or holds no certificate. Trusts nothing (a settings
/// field checks a file with it before saving).
pub fn read_ca_file(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
        .map_err(|e| format!("cannot read the CA file {}: {e}", path.display()))?
        .collect::<Result<_, _>>()
        .map_err(|e| format!("the CA file {} is not PEM: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!(
            "the CA file {} holds no certificate",
            path.display()
        ));
    }
    Ok(certs)
}

/// Trust the CA certificates (PEM) in `path` beside the public roots, for
/// every TLS connection of this process from now on.
pub fn trust_ca_file(path: &Path) -> Result<(), String> {
    if let Some((set, _)) = EXTRA.get() {
        return if set == path {
            Ok(())
        } else {
            Err(format!(
                "a CA file is already in use ({}); cannot also use {}",
                set.display(),
                path.display()
            ))
        };
    }
    let certs = read_ca_file(path)?;
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    for c in certs {
        roots
            .add(c)
            .map_err(|e| format!("a certificate in {} is not usable: {e}", path.display()))?;
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| e.to_string())?
    .with_root_certificates(roots)
    .with_no_client_auth();
    let _ = EXTRA.set((path.to_owned(), Arc::new(config)));
    Ok(())
}

/// The TLS client configuration to use, when a CA file was given (`None`: the
/// library defaults, which trust the public roots).
pub fn client_config() -> Option<Arc<rustls::ClientConfig>> {
    EXTRA.get().map(|(_, c)| c.clone())
}

/// The WebSocket connector to use ([`client_config`]).
pub fn ws_connector() -> Option<tokio_tungstenite::Connector> {
    client_config().map(tokio_tungstenite::Connector::Rustls)
}

/// `builder` made to use [`client_config`], when a CA file was given.
pub fn reqwest_tls(builder: reqwest::ClientBuilder) -> reqwest::ClientBuilder {
    match client_config() {
        Some(c) => builder.use_preconfigured_tls((*c).clone()),
        None => builder,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_or_empty_ca_file_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope.pem");
        let e = trust_ca_file(&missing).unwrap_err();
        assert!(e.contains("nope.pem"), "{e}");
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "no certificates here\n").unwrap();
        let e = trust_ca_file(&empty).unwrap_err();
        assert!(e.contains("holds no certificate"), "{e}");
        assert!(client_config().is_none());
    }
}
