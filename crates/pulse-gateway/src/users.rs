//! The users file: who may log in, with argon2id password hashes.
//!
//! The file is TOML, one `[[user]]` table per user:
//!
//! ```toml
//! [[user]]
//! name = "ann"
//! tenant = "acme"
//! role = "viewer"            # or "publisher"
//! hash = "$argon2id$v=19$m=19456,t=2,p=1$…"
//! ```
//!
//! Invariants:
//! - a password is never stored, logged or formatted: only its argon2id hash (PHC
//!   string) is kept, and [`User`]'s `Debug` hides even that;
//! - names are unique within a file; names and tenants are 1–64 characters of
//!   `A-Z a-z 0-9 . _ @ -`;
//! - a file that does not parse, has an unknown key, a duplicate name or a hash that
//!   is not a PHC string is refused whole, with the line where it went wrong;
//! - [`UsersFile::save`] replaces the file atomically (temporary file, then rename) with
//!   mode 0640 on Unix, so a reader never sees half a file;
//! - [`Directory::verify`] takes about the same time whether or not the name exists
//!   (an unknown name is checked against a dummy hash);
//! - a user who leaves the file (or moves to another tenant) is reported once to
//!   the [`Directory::on_removed`] hook when the reload that sees it happens
//!   (the gateway revokes their sessions and tokens, and closes their streams).

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::SystemTime;

use argon2::password_hash::{rand_core::OsRng, PasswordHash, PasswordHasher, SaltString};
use argon2::{Argon2, PasswordVerifier};
use pulse_protocol::auth::Role;
use serde::{Deserialize, Serialize};

/// A user who may log in with `POST /v1/auth/login`.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct User {
    /// Login name (becomes the token's `sub`).
    pub name: String,
    /// Tenant the user's tokens are for.
    pub tenant: String,
    /// Role of the user's tokens.
    #[serde(default)]
    pub role: Role,
    /// argon2id hash of the password, as a PHC string.
    pub hash: String,
}

impl std::fmt::Debug for User {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("User")
            .field("name", &self.name)
            .field("tenant", &self.tenant)
            .field("role", &self.role)
            .field("hash", &"<redacted>")
            .finish()
    }
}

impl User {
    /// A user whose password is `password` (hashed here with argon2id and a random
    /// salt). Fails on a name or tenant that [`check_name`] refuses or an empty
    /// password.
    pub fn new(name: &str, password: &str, tenant: &str, role: Role) -> Result<User, UsersError> {
        check_name("name", name)?;
        check_name("tenant", tenant)?;
        Ok(User {
            name: name.to_owned(),
            tenant: tenant.to_owned(),
            role,
            hash: hash_password(password)?,
        })
    }

    /// Whether `password` is this user's password.
    pub fn verify(&self, password: &str) -> bool {
        verify_hash(&self.hash, password)
    }
}

impl std::str::FromStr for User {
    type Err = String;

    /// `NAME:PASSWORD:TENANT` (viewer role), hashed at once. For embedders and tests;
    /// the command line takes users only from a users file.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let parts: Vec<&str> = s.split(':').collect();
        match parts.as_slice() {
            [name, password, tenant] => {
                User::new(name, password, tenant, Role::Viewer).map_err(|e| e.to_string())
            }
            _ => Err("a user is `NAME:PASSWORD:TENANT`, all three non-empty".into()),
        }
    }
}

/// Why a users file (or a user) was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum UsersError {
    /// The file could not be read or written.
    #[error("users file {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The file is not a valid users file.
    #[error("users file {path}: {message}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong, with the line where the parser found it.
        message: String,
    },
    /// A name, tenant or password that is not allowed.
    #[error("{0}")]
    Field(String),
    /// `add` of a name that exists.
    #[error("user `{0}` already exists (remove it first to change it)")]
    Exists(String),
    /// `remove` of a name that does not exist.
    #[error("no user `{0}`")]
    NotFound(String),
}

/// Check a user or tenant name: 1–64 characters of `A-Z a-z 0-9 . _ @ -`.
pub fn check_name(what: &str, s: &str) -> Result<(), UsersError> {
    let ok_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '@' | '-');
    if s.is_empty() || s.len() > 64 || !s.chars().all(ok_char) {
        return Err(UsersError::Field(format!(
            "{what} `{s}` is not allowed: use 1-64 characters of A-Z a-z 0-9 . _ @ -"
        )));
    }
    Ok(())
}

/// The argon2id hash (PHC string, random salt) of `password`. An empty password is
/// refused.
pub fn hash_password(password: &str) -> Result<String, UsersError> {
    if password.is_empty() {
        return Err(UsersError::Field("the password must not be empty".into()));
    }
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| UsersError::Field(format!("cannot hash the password: {e}")))
}

/// Whether `password` matches the PHC string `hash` (false for a malformed hash).
pub fn verify_hash(hash: &str, password: &str) -> bool {
    match PasswordHash::new(hash) {
        Ok(parsed) => Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok(),
        Err(_) => false,
    }
}

#[derive(Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileShape {
    #[serde(default, rename = "user")]
    users: Vec<User>,
}

/// The users of one file, in file order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UsersFile {
    /// The users.
    pub users: Vec<User>,
}

impl UsersFile {
    /// Parse the text of a users file (`path` is only for messages).
    pub fn parse(path: &Path, text: &str) -> Result<UsersFile, UsersError> {
        let invalid = |message: String| UsersError::Invalid {
            path: path.to_owned(),
            message,
        };
        let shape: FileShape =
            toml::from_str(text).map_err(|e| invalid(e.to_string().trim_end().to_owned()))?;
        let mut seen = std::collections::HashSet::new();
        for u in &shape.users {
            check_name("name", &u.name).map_err(|e| invalid(e.to_string()))?;
            check_name("tenant", &u.tenant).map_err(|e| invalid(e.to_string()))?;
            if PasswordHash::new(&u.hash).is_err() {
                return Err(invalid(format!(
                    "user `{}`: `hash` is not an argon2 PHC string (use `pulse-gateway user add`)",
                    u.name
                )));
            }
            if !seen.insert(u.name.as_str()) {
                return Err(invalid(format!("user `{}` appears twice", u.name)));
            }
        }
        Ok(UsersFile { users: shape.users })
    }

    /// Read `path`; a missing file is an empty list (so `user add` can create it).
    pub fn load(path: &Path) -> Result<UsersFile, UsersError> {
        match std::fs::read_to_string(path) {
            Ok(text) => UsersFile::parse(path, &text),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(UsersFile::default()),
            Err(source) => Err(UsersError::Io {
                path: path.to_owned(),
                source,
            }),
        }
    }

    /// The file's text.
    pub fn to_text(&self) -> String {
        let body = toml::to_string(&FileShape {
            users: self.users.clone(),
        })
        .unwrap_or_default();
        format!(
            "# Pulse gateway users. Manage with `pulse-gateway user add|remove|list`.\n\
             # Passwords are argon2id hashes; the file is read at start and on change.\n\n{body}"
        )
    }

    /// Write the file atomically (mode 0640 on Unix, kept owner of the directory).
    pub fn save(&self, path: &Path) -> Result<(), UsersError> {
        let io = |source| UsersError::Io {
            path: path.to_owned(),
            source,
        };
        let dir = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "users.toml".into());
        let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
        let result = (|| {
            let mut opts = std::fs::OpenOptions::new();
            opts.write(true).create_new(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o640);
            let mut f = opts.open(&tmp)?;
            std::io::Write::write_all(&mut f, self.to_text().as_bytes())?;
            f.sync_all()?;
            // Keep the group of an existing file (the package makes it the service's).
            #[cfg(unix)]
            if let Ok(meta) = std::fs::metadata(path) {
                use std::os::unix::fs::MetadataExt;
                let _ = std::os::unix::fs::fchown(&f, Some(meta.uid()), Some(meta.gid()));
            }
            std::fs::rename(&tmp, path)
        })();
        if result.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        result.map_err(io)
    }

    /// Add a user; refuses a name that exists.
    pub fn add(&mut self, user: User) -> Result<(), UsersError> {
        if self.users.iter().any(|u| u.name == user.name) {
            return Err(UsersError::Exists(user.name));
        }
        self.users.push(user);
        Ok(())
    }

    /// Remove the user `name`.
    pub fn remove(&mut self, name: &str) -> Result<User, UsersError> {
        match self.users.iter().position(|u| u.name == name) {
            Some(i) => Ok(self.users.remove(i)),
            None => Err(UsersError::NotFound(name.to_owned())),
        }
    }
}

/// A hash of a password nobody knows, checked for unknown names.
fn dummy_hash() -> &'static str {
    static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DUMMY.get_or_init(|| {
        hash_password(&crate::auth::random_secret()).expect("hashing a random password")
    })
}

/// The users a running gateway accepts: fixed ones (embedders, the demo user) plus a
/// users file, re-read when its modification time or size changes. A file that turns
/// invalid while running keeps the last good list (and logs why).
pub struct Directory {
    fixed: Vec<User>,
    file: Option<(PathBuf, Mutex<FileState>)>,
    removed: std::sync::OnceLock<RemovedHook>,
}

/// What [`Directory::on_removed`] calls: `(tenant, name)` of a removed user.
type RemovedHook = Box<dyn Fn(&str, &str) + Send + Sync>;

impl std::fmt::Debug for Directory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Directory")
            .field("fixed", &self.fixed)
            .field("file", &self.file)
            .finish_non_exhaustive()
    }
}

#[derive(Debug)]
struct FileState {
    stamp: Option<(SystemTime, u64)>,
    users: Vec<User>,
}

fn stamp(path: &Path) -> Option<(SystemTime, u64)> {
    let meta = std::fs::metadata(path).ok()?;
    Some((meta.modified().ok()?, meta.len()))
}

impl Directory {
    /// `fixed` users and, if given, the users file at `path` (read now: an invalid
    /// file is an error; a missing one is an empty list).
    pub fn new(fixed: Vec<User>, path: Option<&Path>) -> Result<Directory, UsersError> {
        let file = match path {
            Some(p) => {
                let stamp = stamp(p);
                let users = UsersFile::load(p)?.users;
                Some((p.to_owned(), Mutex::new(FileState { stamp, users })))
            }
            None => None,
        };
        Ok(Directory {
            fixed,
            file,
            removed: std::sync::OnceLock::new(),
        })
    }

    /// Call `hook(tenant, name)` for each user a reload finds gone from the file
    /// (set once; later calls are ignored). Called under the directory's lock, on
    /// the blocking thread that reloads: lookups wait for it (so none sees the
    /// user gone before their sessions are revoked), and `hook` must not call
    /// back into the directory.
    pub fn on_removed(&self, hook: impl Fn(&str, &str) + Send + Sync + 'static) {
        let _ = self.removed.set(Box::new(hook));
    }

    /// Re-read the users file if it changed (reporting removed users).
    pub fn reload(&self) {
        self.current_file_users();
    }

    fn current_file_users(&self) -> Vec<User> {
        let Some((path, state)) = &self.file else {
            return Vec::new();
        };
        let mut st = state.lock().unwrap_or_else(|e| e.into_inner());
        let now = stamp(path);
        if now != st.stamp {
            match UsersFile::load(path) {
                Ok(f) => {
                    tracing::info!(path = %path.display(), users = f.users.len(), "users file reloaded");
                    let gone: Vec<User> = st
                        .users
                        .iter()
                        .filter(|old| {
                            !f.users
                                .iter()
                                .chain(&self.fixed)
                                .any(|u| u.name == old.name && u.tenant == old.tenant)
                        })
                        .cloned()
                        .collect();
                    st.users = f.users;
                    st.stamp = now;
                    if let Some(hook) = self.removed.get() {
                        for u in gone {
                            tracing::info!(user = %u.name, tenant = %u.tenant, "user removed from the users file");
                            hook(&u.tenant, &u.name);
                        }
                    }
                }
                Err(e) => {
                    tracing::error!(error = %e, "users file not reloaded; keeping the previous users");
                    st.stamp = now;
                }
            }
        }
        st.users.clone()
    }

    /// The user `name`, if they may still log in (fixed users first). Re-reads the
    /// file when it changed, so a removed user is gone at once.
    pub fn find(&self, name: &str) -> Option<User> {
        let file_users = self.current_file_users();
        self.fixed
            .iter()
            .chain(file_users.iter())
            .find(|u| u.name == name)
            .cloned()
    }

    /// The user `name` if `password` is theirs. Blocking (argon2): call it off the
    /// async threads. Fixed users win over file users of the same name.
    pub fn verify(&self, name: &str, password: &str) -> Option<User> {
        let file_users = self.current_file_users();
        let user = self
            .fixed
            .iter()
            .chain(file_users.iter())
            .find(|u| u.name == name);
        match user {
            Some(u) if u.verify(password) => Some(u.clone()),
            Some(_) => None,
            None => {
                let _ = verify_hash(dummy_hash(), password);
                None
            }
        }
    }
}

/// How often a running gateway looks at the users file for changes (a request
/// that needs a user looks too).
pub const RELOAD_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

/// Act on users removed from the file while the gateway runs: refuse their
/// access tokens at once (`revoked`, which also closes their streams) and delete
/// their refresh-token families from the store, both before the reload that saw
/// the removal returns (so no request after it finds them); with a users file,
/// look at it every [`RELOAD_EVERY`] until `stop`. Reloads run on blocking
/// threads (`spawn_blocking`), where the store is called directly.
pub(crate) fn watch_removals(
    users: &std::sync::Arc<Directory>,
    revoked: &std::sync::Arc<crate::revoked::Revoked>,
    hub: &std::sync::Arc<crate::hub::Hub>,
    poll: bool,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let r = revoked.clone();
    let store = hub.store().clone();
    users.on_removed(move |tenant, name| {
        r.user(tenant, name);
        match store.session_revoke_user(tenant, name) {
            Ok(n) => tracing::info!(user = %name, %tenant, sessions = n, "removed user's sessions revoked"),
            Err(e) => tracing::error!(user = %name, %tenant, error = %e, "removed user's sessions not revoked in the store; their refresh is refused all the same while they are absent"),
        }
    });
    if !poll {
        return;
    }
    let users = users.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(RELOAD_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                changed = stop.changed() => {
                    if changed.is_err() || *stop.borrow() {
                        return;
                    }
                }
                _ = tick.tick() => {
                    let u = users.clone();
                    let _ = tokio::task::spawn_blocking(move || u.reload()).await;
                }
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_and_verify() {
        let u = User::new("ann", "hunter2", "acme", Role::Viewer).unwrap();
        assert!(u.hash.starts_with("$argon2id$"));
        assert!(u.verify("hunter2"));
        assert!(!u.verify("hunter3"));
        assert!(!format!("{u:?}").contains(&u.hash));
        assert!(User::new("ann", "", "acme", Role::Viewer).is_err());
        assert!(User::new("a n", "x", "acme", Role::Viewer).is_err());
        assert!(User::new("ann", "x", "", Role::Viewer).is_err());
        assert!(!verify_hash("not a hash", "x"));
    }

    #[test]
    fn file_round_trip_and_garbage() {
        let p = Path::new("users.toml");
        let mut f = UsersFile::default();
        f.add(User::new("ann", "pw", "acme", Role::Viewer).unwrap())
            .unwrap();
        f.add(User::new("svc", "pw2", "acme", Role::Publisher).unwrap())
            .unwrap();
        assert!(matches!(
            f.add(User::new("ann", "x", "b", Role::Viewer).unwrap()),
            Err(UsersError::Exists(_))
        ));
        let back = UsersFile::parse(p, &f.to_text()).unwrap();
        assert_eq!(back, f);
        assert!(matches!(f.remove("bob"), Err(UsersError::NotFound(_))));
        assert_eq!(f.remove("ann").unwrap().name, "ann");

        let hash = &back.users[0].hash;
        for (bad, needle) in [
            ("[[user]]\nname = \"ann\"\n", "missing field"),
            ("garbage = [", "line 1"),
            ("\u{0}\u{1}binary", "line 1"),
            ("[[users]]\nname = \"x\"", "unknown field"),
            (
                &format!("[[user]]\nname=\"a\"\ntenant=\"t\"\nhash=\"{hash}\"\npassword=\"x\"\n"),
                "unknown field `password`",
            ),
            (
                "[[user]]\nname=\"a\"\ntenant=\"t\"\nhash=\"plaintext\"\n",
                "not an argon2 PHC string",
            ),
            (
                &format!("[[user]]\nname=\"a b\"\ntenant=\"t\"\nhash=\"{hash}\"\n"),
                "not allowed",
            ),
            (
                &format!(
                    "[[user]]\nname=\"a\"\ntenant=\"t\"\nhash=\"{hash}\"\n\
                     [[user]]\nname=\"a\"\ntenant=\"u\"\nhash=\"{hash}\"\n"
                ),
                "appears twice",
            ),
            (
                &format!("[[user]]\nname=\"a\"\ntenant=\"t\"\nrole=\"admin\"\nhash=\"{hash}\"\n"),
                "admin",
            ),
        ] {
            let err = UsersFile::parse(p, bad).unwrap_err().to_string();
            assert!(
                err.contains("users.toml") && err.contains(needle),
                "{bad:?}: {err}"
            );
        }
        assert_eq!(UsersFile::parse(p, "").unwrap(), UsersFile::default());
    }

    #[test]
    fn directory_reloads_and_keeps_the_last_good_list() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("users.toml");
        let mut f = UsersFile::default();
        f.add(User::new("ann", "pw", "acme", Role::Viewer).unwrap())
            .unwrap();
        f.save(&path).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o640);
        }
        let demo = User::new("demo", "demo", "demo", Role::Viewer).unwrap();
        let d = Directory::new(vec![demo], Some(&path)).unwrap();
        assert_eq!(d.verify("ann", "pw").unwrap().tenant, "acme");
        assert!(d.verify("ann", "nope").is_none());
        assert!(d.verify("bob", "pw").is_none());
        assert!(d.verify("demo", "demo").is_some());

        f.add(User::new("bob", "pw-b", "beta", Role::Viewer).unwrap())
            .unwrap();
        f.save(&path).unwrap();
        assert_eq!(d.verify("bob", "pw-b").unwrap().tenant, "beta");

        std::fs::write(&path, "garbage = [").unwrap();
        assert_eq!(
            d.verify("bob", "pw-b").unwrap().tenant,
            "beta",
            "last good list kept"
        );

        assert!(
            Directory::new(vec![], Some(&path)).is_err(),
            "invalid at start is an error"
        );
        let missing = dir.path().join("none.toml");
        let d = Directory::new(vec![], Some(&missing)).unwrap();
        assert!(d.verify("ann", "pw").is_none());
    }
}
