//! Where Pulse keeps its files: settings in the platform config dir, the cache in the
//! platform data dir. `PULSE_CONFIG_DIR` and `PULSE_DATA_DIR` override both (tests).
//!
//! Invariant: no credential is ever written to either directory; tokens live in the
//! OS keyring only.

use pulse_core::app::ReadMarks;
use std::path::{Path, PathBuf};

use crate::dto::Settings;

/// The app's directories.
#[derive(Debug, Clone)]
pub struct Paths {
    /// Settings (`settings.json`).
    pub config_dir: PathBuf,
    /// Caches (`cache-<server>.db`) and local read marks.
    pub data_dir: PathBuf,
}

impl Paths {
    /// The platform's directories (or the `PULSE_*_DIR` overrides).
    pub fn from_env() -> Paths {
        let pick = |var: &str, base: Option<PathBuf>| {
            std::env::var_os(var)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
                .or_else(|| base.map(|b| b.join("pulse")))
                .unwrap_or_else(|| std::env::temp_dir().join("pulse"))
        };
        Paths {
            config_dir: pick("PULSE_CONFIG_DIR", dirs::config_dir()),
            data_dir: pick("PULSE_DATA_DIR", dirs::data_dir()),
        }
    }

    /// Both under `root` (tests).
    pub fn under(root: &Path) -> Paths {
        Paths {
            config_dir: root.join("config"),
            data_dir: root.join("data"),
        }
    }

    /// The settings file.
    pub fn settings_file(&self) -> PathBuf {
        self.config_dir.join("settings.json")
    }

    /// The cache of server `id` (`demo` for the embedded gateway).
    pub fn cache_file(&self, id: &str) -> PathBuf {
        let safe: String = id
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        self.data_dir.join(format!("cache-{safe}.db"))
    }

    fn read_file(&self) -> PathBuf {
        self.data_dir.join("read.json")
    }

    /// Settings from disk; defaults when there are none. A damaged file is kept aside
    /// (`settings.json.bad`) and defaults are used, with a warning.
    pub fn load_settings(&self) -> Settings {
        let path = self.settings_file();
        match std::fs::read_to_string(&path) {
            Ok(text) => match serde_json::from_str(&text) {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!(path = %path.display(), error = %e, "settings file unreadable; using defaults");
                    let _ = std::fs::rename(&path, path.with_extension("json.bad"));
                    Settings::default()
                }
            },
            Err(_) => Settings::default(),
        }
    }

    /// Write settings atomically (temp file + rename).
    pub fn save_settings(&self, settings: &Settings) -> std::io::Result<()> {
        pulse_core::files::create_private_dir(&self.config_dir)?;
        let path = self.settings_file();
        let tmp = path.with_extension("json.tmp");
        pulse_core::files::write_private(
            &tmp,
            &serde_json::to_vec_pretty(settings).map_err(std::io::Error::other)?,
        )?;
        std::fs::rename(tmp, path)
    }

    /// Keys of notifications marked read, oldest mark first.
    pub fn load_read(&self) -> ReadMarks {
        std::fs::read_to_string(self.read_file())
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok())
            .unwrap_or_default()
    }

    /// Save the read keys in the order they were marked (the centre keeps at most
    /// `MAX_READ`, the newest).
    pub fn save_read(&self, read: &ReadMarks) -> std::io::Result<()> {
        pulse_core::files::create_private_dir(&self.data_dir)?;
        pulse_core::files::write_private(
            &self.read_file(),
            &serde_json::to_vec(read).map_err(std::io::Error::other)?,
        )
    }
}
