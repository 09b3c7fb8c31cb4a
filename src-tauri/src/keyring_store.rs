//! The OS keyring as a [`CredentialStore`] (Secret Service on Linux, Keychain on
//! macOS, Credential Manager on Windows). Only refresh tokens are stored, under the
//! service `pulse` and the account `user@server`.
//!
//! Where no keyring exists (no Secret Service on the session bus), every call fails
//! with [`CredentialError::Unavailable`] and the app runs signed out with a clear
//! message; nothing falls back to a file.

use pulse_core::auth::Secret;
use pulse_core::credentials::{CredentialError, CredentialStore};

const SERVICE: &str = "pulse";

/// The OS keyring.
#[derive(Debug, Default, Clone, Copy)]
pub struct KeyringCredentials;

fn map(e: keyring::Error) -> CredentialError {
    match e {
        keyring::Error::PlatformFailure(inner) => {
            CredentialError::Unavailable(format!("the OS keyring is not available ({inner})"))
        }
        keyring::Error::NoStorageAccess(inner) => {
            CredentialError::Unavailable(format!("the OS keyring is locked or missing ({inner})"))
        }
        other => CredentialError::Failed(other.to_string()),
    }
}

impl KeyringCredentials {
    /// Whether a keyring answers here: `Ok` or why not.
    pub fn probe() -> Result<(), CredentialError> {
        let entry = keyring::Entry::new(SERVICE, "availability-probe").map_err(map)?;
        match entry.get_password() {
            Ok(_) | Err(keyring::Error::NoEntry) => Ok(()),
            Err(e) => Err(map(e)),
        }
    }
}

impl CredentialStore for KeyringCredentials {
    fn load(&self, account: &str) -> Result<Option<Secret>, CredentialError> {
        let entry = keyring::Entry::new(SERVICE, account).map_err(map)?;
        match entry.get_password() {
            Ok(s) => Ok(Some(Secret::new(s))),
            Err(keyring::Error::NoEntry) => Ok(None),
            Err(e) => Err(map(e)),
        }
    }

    fn save(&self, account: &str, secret: &Secret) -> Result<(), CredentialError> {
        keyring::Entry::new(SERVICE, account)
            .map_err(map)?
            .set_password(secret.expose())
            .map_err(map)
    }

    fn delete(&self, account: &str) -> Result<(), CredentialError> {
        match keyring::Entry::new(SERVICE, account)
            .map_err(map)?
            .delete_credential()
        {
            Ok(()) | Err(keyring::Error::NoEntry) => Ok(()),
            Err(e) => Err(map(e)),
        }
    }
}
