//! The OS keyring as a [`CredentialStore`] (Secret Service on Linux, Keychain on
//! macOS, Credential Manager on Windows). Only refresh tokens are stored, under the
//! service `pulse` and the account `user@server`.
//!
//! Where no keyring exists (no Secret Service on the session bus), every call fails
//! with [`CredentialError::Unavailable`] and the app runs signed out with a clear
//! message; nothing falls back to a file.

use std::sync::{Mutex, OnceLock};
use std::thread::JoinHandle;

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_probe_on_its_thread_answers_as_one_given_at_once() {
        let ok = KeyringProbe::spawn(|| Ok(()));
        assert_eq!(ok.answer(), &Ok(()));
        assert_eq!(ok.answer(), KeyringProbe::ready(Ok(())).answer());
        let no = KeyringProbe::spawn(|| Err(CredentialError::Unavailable("no bus".into())));
        let given = KeyringProbe::ready(Err(CredentialError::Unavailable("no bus".into())));
        assert_eq!(no.answer(), given.answer());
        assert!(no.answer().as_ref().unwrap_err().contains("no bus"));
    }

    #[test]
    fn a_probe_that_panics_answers_unavailable() {
        let p = KeyringProbe::spawn(|| panic!("probe"));
        let e = p.answer().clone().unwrap_err();
        assert!(e.contains("keyring probe failed"), "{e}");
        // The same answer again, without a thread to join.
        assert_eq!(p.answer().clone().unwrap_err(), e);
    }
}

/// Whether the keyring answers, found out once: given at once, or by a probe on its
/// own thread (a D-Bus round trip, and a timeout where there is no Secret Service),
/// joined where it is first needed (the first sign-in or account view), not
/// before the window.
///
/// Invariant: every reader sees the same answer; a probe thread that panicked
/// answers "unavailable".
#[derive(Debug)]
pub struct KeyringProbe {
    answer: OnceLock<Result<(), String>>,
    pending: Mutex<Option<JoinHandle<Result<(), CredentialError>>>>,
}

impl KeyringProbe {
    /// An answer known already (tests; a platform with nothing to ask).
    pub fn ready(answer: Result<(), CredentialError>) -> Self {
        KeyringProbe {
            answer: OnceLock::from(answer.map_err(|e| e.to_string())),
            pending: Mutex::new(None),
        }
    }

    /// Ask `probe` on its own thread now; its answer is waited for at first use.
    pub fn spawn(probe: fn() -> Result<(), CredentialError>) -> Self {
        let handle = std::thread::Builder::new()
            .name("keyring-probe".into())
            .spawn(probe);
        match handle {
            Ok(h) => KeyringProbe {
                answer: OnceLock::new(),
                pending: Mutex::new(Some(h)),
            },
            // No thread: ask here.
            Err(_) => Self::ready(probe()),
        }
    }

    /// `Ok` when the keyring answers, else why not (waits for the probe the first time).
    pub fn answer(&self) -> &Result<(), String> {
        self.answer.get_or_init(|| {
            let handle = self.pending.lock().expect("probe lock").take();
            let answer = match handle.map(JoinHandle::join) {
                Some(Ok(a)) => a,
                Some(Err(_)) | None => Err(CredentialError::Unavailable(
                    "the keyring probe failed".into(),
                )),
            };
            if let Err(e) = &answer {
                tracing::warn!(error = %e, "no OS keyring: sign-ins will not be remembered");
            }
            answer.map_err(|e| e.to_string())
        })
    }
}

impl From<Result<(), CredentialError>> for KeyringProbe {
    fn from(answer: Result<(), CredentialError>) -> Self {
        KeyringProbe::ready(answer)
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
