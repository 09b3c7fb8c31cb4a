//! Files Pulse writes that hold a user's data (caches, settings, read marks):
//! created readable by the user only.
//!
//! Invariants (Unix; elsewhere the platform's defaults apply):
//! - a folder created here is `0700`; an existing folder is left as it is (it
//!   may be the user's own, e.g. a `--cache` next to other files);
//! - a file written or created here is `0600`, also when it existed before with
//!   wider permissions; SQLite gives a database's `-wal` / `-shm` the database
//!   file's permissions, so a cache created through [`create_private_file`] has
//!   all three at `0600`.

use std::io::Write;
use std::path::Path;

/// Create `dir` and its missing parents, each new one `0700`.
pub fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    let mut b = std::fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        b.mode(0o700);
    }
    b.create(dir)
}

/// Make `path` exist as a `0600` file (created empty when missing; narrowed to
/// `0600` when it existed), its folder created by [`create_private_dir`].
pub fn create_private_file(path: &Path) -> std::io::Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        create_private_dir(dir)?;
    }
    let mut o = std::fs::OpenOptions::new();
    o.create(true).append(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        o.mode(0o600);
    }
    let f = o.open(path)?;
    narrow(&f)
}

/// Write `bytes` to `path` as a `0600` file, its folder created `0700`.
pub fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        create_private_dir(dir)?;
    }
    let mut o = std::fs::OpenOptions::new();
    o.create(true).write(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        o.mode(0o600);
    }
    let mut f = o.open(path)?;
    narrow(&f)?;
    f.write_all(bytes)?;
    f.sync_all()
}

fn narrow(f: &std::fs::File) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        f.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    }
    #[cfg(not(unix))]
    let _ = f;
    Ok(())
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn mode(p: &Path) -> u32 {
        std::fs::metadata(p).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn new_folders_are_0700_and_files_0600_even_when_they_were_wider() {
        let t = tempfile::tempdir().unwrap();
        let file = t.path().join("a/b/settings.json");
        write_private(&file, b"{}").unwrap();
        assert_eq!(mode(&t.path().join("a")), 0o700);
        assert_eq!(mode(&t.path().join("a/b")), 0o700);
        assert_eq!(mode(&file), 0o600);
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
        write_private(&file, b"{\"x\":1}").unwrap();
        assert_eq!(mode(&file), 0o600);
        assert_eq!(std::fs::read(&file).unwrap(), b"{\"x\":1}");
        let other = t.path().join("a/cache.db");
        std::fs::write(&other, b"").unwrap();
        std::fs::set_permissions(&other, std::fs::Permissions::from_mode(0o666)).unwrap();
        create_private_file(&other).unwrap();
        assert_eq!(mode(&other), 0o600);
    }
}
