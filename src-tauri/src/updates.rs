//! Update checks over `tauri-plugin-updater`: the endpoint comes from the settings
//! ([`crate::dto::UpdateSettings`]), the public key from `tauri.conf.json`
//! (`plugins.updater.pubkey`).
//!
//! Invariants:
//! - a release is offered only once its artifact has been downloaded and its minisign
//!   signature verified by the plugin against the configured key; one that does not
//!   verify is [`UpdateStatus::Refused`], with the reason, and never offered;
//! - where a package manager owns the install (the binary was bundled as `.deb` or
//!   `.rpm`, [`tauri::utils::platform::bundle_type`]), Pulse never installs anything:
//!   the offer says which package manager and where the new version is;
//! - endpoints must be `https` (the plugin's rule; only a test config relaxes it);
//! - nothing here logs the endpoint's query string (it may carry a channel token).

use serde::Serialize;
use tauri::{AppHandle, Runtime};
use tauri_plugin_updater::UpdaterExt;
use ts_rs::TS;

use crate::dto::CommandError;

/// How a newer release would get installed here.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, TS)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum InstallPath {
    /// Pulse can install it itself (AppImage, MSI/NSIS, macOS app bundle).
    SelfUpdate,
    /// A package manager owns this install: Pulse points to the new package instead.
    PackageManager {
        /// `deb` or `rpm`.
        format: String,
        /// What to run, e.g. `sudo apt install ./Pulse_0.2.0_amd64.deb`.
        hint: String,
    },
    /// A build that is not from a package (e.g. `cargo run`): nothing to install into.
    Unpackaged,
}

/// A newer release whose signature verified.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, TS)]
pub struct UpdateOffer {
    /// The running version.
    pub current_version: String,
    /// The new version.
    pub version: String,
    /// Release notes, as published.
    pub notes: Option<String>,
    /// Publication date (RFC 3339), if given.
    pub date: Option<String>,
    /// Where the new artifact is.
    pub download_url: String,
    /// How to install it here.
    pub install: InstallPath,
}

/// What a check found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, TS)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum UpdateStatus {
    /// No update checks: no endpoint in the settings.
    NotConfigured,
    /// The running version is the newest.
    UpToDate {
        /// The running version.
        current_version: String,
    },
    /// A newer, verified release.
    Available(UpdateOffer),
    /// A newer release was announced but its signature does not verify: not offered.
    Refused {
        /// The announced version.
        version: String,
        /// For a person.
        reason: String,
    },
}

/// How this binary was bundled, as the bundler patched it in.
pub fn install_path(version: &str, download_url: &str) -> InstallPath {
    use tauri::utils::{config::BundleType, platform::bundle_type};
    let file = download_url.rsplit('/').next().unwrap_or(download_url);
    match bundle_type() {
        Some(BundleType::Deb) => InstallPath::PackageManager {
            format: "deb".into(),
            hint: format!(
                "Pulse was installed with apt: download Pulse {version} ({file}) and run `sudo apt install ./{file}`"
            ),
        },
        Some(BundleType::Rpm) => InstallPath::PackageManager {
            format: "rpm".into(),
            hint: format!(
                "Pulse was installed with rpm: download Pulse {version} ({file}) and run `sudo dnf install ./{file}`"
            ),
        },
        Some(_) => InstallPath::SelfUpdate,
        None => InstallPath::Unpackaged,
    }
}

fn redacted(url: &url::Url) -> String {
    let mut u = url.clone();
    u.set_query(None);
    u.to_string()
}

/// Check `endpoint` for a newer release; download and verify it before offering it.
/// Returns the status and, when available, the verified artifact.
pub async fn check<R: Runtime>(
    app: &AppHandle<R>,
    endpoint: Option<&str>,
) -> Result<
    (
        UpdateStatus,
        Option<(tauri_plugin_updater::Update, Vec<u8>)>,
    ),
    CommandError,
> {
    let Some(endpoint) = endpoint.map(str::trim).filter(|e| !e.is_empty()) else {
        return Ok((UpdateStatus::NotConfigured, None));
    };
    let url: url::Url = endpoint.parse().map_err(|e| {
        CommandError::new("invalid", format!("the update endpoint is not a URL: {e}"))
    })?;
    let shown = redacted(&url);
    let updater = app
        .updater_builder()
        .endpoints(vec![url])
        .and_then(|b| b.build())
        .map_err(|e| CommandError::new("invalid", format!("update endpoint {shown}: {e}")))?;
    let update = updater.check().await.map_err(|e| {
        CommandError::new("io", format!("could not check {shown} for updates: {e}"))
    })?;
    let Some(update) = update else {
        return Ok((
            UpdateStatus::UpToDate {
                current_version: app.package_info().version.to_string(),
            },
            None,
        ));
    };
    tracing::info!(version = %update.version, "update announced; verifying it");
    match update.download(|_, _| {}, || {}).await {
        Ok(bytes) => {
            let offer = UpdateOffer {
                current_version: update.current_version.clone(),
                version: update.version.clone(),
                notes: update.body.clone(),
                date: update.raw_json["pub_date"].as_str().map(str::to_owned),
                download_url: update.download_url.to_string(),
                install: install_path(&update.version, update.download_url.as_str()),
            };
            Ok((UpdateStatus::Available(offer), Some((update, bytes))))
        }
        Err(e) if is_signature_error(&e) => {
            tracing::warn!(version = %update.version, error = %e, "update refused: bad signature");
            Ok((
                UpdateStatus::Refused {
                    version: update.version.clone(),
                    reason: format!(
                        "Pulse {} was not offered: its signature does not verify with this \
                         build's public key ({e}). It may have been tampered with.",
                        update.version
                    ),
                },
                None,
            ))
        }
        Err(e) => Err(CommandError::new(
            "io",
            format!("could not download Pulse {}: {e}", update.version),
        )),
    }
}

/// Whether the plugin refused the artifact's signature (not a network error).
fn is_signature_error(e: &tauri_plugin_updater::Error) -> bool {
    use tauri_plugin_updater::Error as E;
    matches!(
        e,
        E::Minisign(_)
            | E::Base64(_)
            | E::SignatureUtf8(_)
            | E::SignedVersionMismatch { .. }
            | E::MissingSignedVersion
    )
}

/// The verified update of the last check, waiting for "Install" (managed state).
#[derive(Default)]
pub struct Pending(std::sync::Mutex<Option<(tauri_plugin_updater::Update, Vec<u8>)>>);

impl Pending {
    /// Keep `verified` (or forget the previous one with `None`).
    pub fn set(&self, verified: Option<(tauri_plugin_updater::Update, Vec<u8>)>) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = verified;
    }

    /// Install the pending update where Pulse owns its install; otherwise say why not.
    pub fn install(&self) -> Result<(), CommandError> {
        let guard = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let Some((update, bytes)) = guard.as_ref() else {
            return Err(CommandError::new(
                "invalid",
                "no verified update to install: check again",
            ));
        };
        match install_path(&update.version, update.download_url.as_str()) {
            InstallPath::SelfUpdate => update.install(bytes).map_err(|e| {
                CommandError::new(
                    "io",
                    format!("could not install Pulse {}: {e}", update.version),
                )
            }),
            InstallPath::PackageManager { hint, .. } => Err(CommandError::new("unsupported", hint)),
            InstallPath::Unpackaged => Err(CommandError::new(
                "unsupported",
                format!(
                    "this Pulse was not installed from a package: get Pulse {} from {}",
                    update.version, update.download_url
                ),
            )),
        }
    }
}
