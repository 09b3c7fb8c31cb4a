//! Gateway configuration, shared by the CLI and by embedders.
//!
//! A [`Config`] is plain data: building one never touches the network or the disk.
//! [`Config::default`] is a loopback gateway on an ephemeral port with a memory store,
//! no users and no secret (set [`Config::jwt_secret`], or [`Config::demo`], before
//! starting it).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

/// Default number of events each tenant's log keeps.
pub const DEFAULT_RETAIN: u64 = 100_000;
/// Default interval between server `ping` frames.
pub const DEFAULT_PING_INTERVAL: Duration = Duration::from_secs(15);
/// Default extra silence tolerated after a ping interval before a client is closed.
pub const DEFAULT_PING_TIMEOUT: Duration = Duration::from_secs(10);
/// Default lifetime of access tokens.
pub const DEFAULT_ACCESS_TTL: Duration = Duration::from_secs(15 * 60);
/// Default lifetime of refresh tokens.
pub const DEFAULT_REFRESH_TTL: Duration = Duration::from_secs(30 * 24 * 3600);
/// Default per-client send queue, in events.
pub const DEFAULT_CLIENT_QUEUE: usize = 8192;

/// `url` with its password (if any) replaced by `***`, for logs and `Debug`.
pub fn redact_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        Ok(_) => url.to_owned(),
        Err(_) => "<unparsable url>".to_owned(),
    }
}

/// Where the event logs and materialised state live. `Debug` hides a Redis
/// password.
#[derive(Clone, PartialEq, Eq, Default)]
pub enum StoreConfig {
    /// In memory; a new random epoch on every start.
    #[default]
    Memory,
    /// A SQLite file (created if missing), durable across restarts and crashes.
    Sqlite(PathBuf),
    /// A Redis server (`redis://HOST:PORT[/DB]`) shared by every node of a cluster.
    Redis(String),
}

impl std::fmt::Debug for StoreConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StoreConfig::Memory => f.write_str("Memory"),
            StoreConfig::Sqlite(p) => f.debug_tuple("Sqlite").field(p).finish(),
            StoreConfig::Redis(u) => f.debug_tuple("Redis").field(&redact_url(u)).finish(),
        }
    }
}

impl FromStr for StoreConfig {
    type Err = String;

    /// `memory`, `sqlite:PATH` or `redis://HOST:PORT[/DB]`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s == "memory" {
            Ok(StoreConfig::Memory)
        } else if let Some(path) = s.strip_prefix("sqlite:") {
            if path.is_empty() {
                Err("`sqlite:` needs a file path, e.g. `sqlite:/var/lib/pulse/gateway.db`".into())
            } else {
                Ok(StoreConfig::Sqlite(PathBuf::from(path)))
            }
        } else if s.starts_with("redis://") {
            redis::parse_redis_url(s)
                .filter(|u| u.host_str().is_some_and(|h| !h.is_empty()))
                .map(|_| StoreConfig::Redis(s.to_owned()))
                .ok_or_else(|| {
                    format!("`{s}` is not a Redis URL: expected `redis://HOST:PORT[/DB]`")
                })
        } else {
            Err(format!(
                "unknown store `{s}`: expected `memory`, `sqlite:PATH` or `redis://HOST:PORT[/DB]`"
            ))
        }
    }
}

pub use crate::users::User;

/// Knobs of the `--demo` simulator.
#[derive(Debug, Clone, PartialEq)]
pub struct DemoConfig {
    /// Tenant the simulator writes to.
    pub tenant: String,
    /// Seed of the simulator's random choices.
    pub seed: u64,
    /// Time factor: `2.0` runs everything twice as fast. Default `1.0`, which produces
    /// 3–5 events/s, a first new approval within 10 s, then one every 20–40 s.
    pub speed: f64,
}

impl Default for DemoConfig {
    fn default() -> Self {
        DemoConfig {
            tenant: "demo".into(),
            seed: 0x5eed_f00d,
            speed: 1.0,
        }
    }
}

/// Everything a gateway needs to start.
#[derive(Clone)]
pub struct Config {
    /// Address to bind; port 0 picks a free port (see `RunningGateway::addr`).
    pub addr: SocketAddr,
    /// Storage backend.
    pub store: StoreConfig,
    /// HS256 secret for signing and verifying tokens. `None` is only allowed with
    /// [`Config::demo`], in which case a random secret is generated.
    pub jwt_secret: Option<String>,
    /// Events kept per tenant (older ones are dropped). At least 1.
    pub retain: u64,
    /// Events older than this are dropped as well (Redis store; trimmed on append).
    pub retain_age: Option<Duration>,
    /// This node's name in a cluster (Redis store); random when `None`.
    pub node_id: Option<String>,
    /// A platform's Redis Stream read in a consumer group, with its mapping.
    pub source: Option<(crate::source::SourceUrl, crate::source::Mapping)>,
    /// A LangGraph deployment whose interrupts become approvals.
    pub langgraph: Option<crate::langgraph::LangGraphConfig>,
    /// Interval between server `ping` frames.
    pub ping_interval: Duration,
    /// Extra silence tolerated after an interval: a client that sent nothing for
    /// `ping_interval + ping_timeout` is closed.
    pub ping_timeout: Duration,
    /// Lifetime of access tokens issued by login and refresh.
    pub access_ttl: Duration,
    /// Lifetime of refresh tokens.
    pub refresh_ttl: Duration,
    /// Users who may log in, besides those of [`Config::users_file`] (for embedders;
    /// the command line has only the file).
    pub users: Vec<User>,
    /// The users file (see [`crate::users`]), re-read when it changes.
    pub users_file: Option<PathBuf>,
    /// Run the demo simulator (and add the user `demo`/`demo` of tenant `demo`).
    pub demo: Option<DemoConfig>,
    /// Events a client may be behind on its live feed before it is disconnected.
    pub client_queue: usize,
    /// Login throttling, connection caps and the per-token request rate.
    pub limits: crate::limits::Limits,
    /// The bearer token `GET /metrics` requires for the per-tenant series; without
    /// one, `/metrics` serves only the totals, which name no tenant.
    pub metrics_token: Option<String>,
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("addr", &self.addr)
            .field("store", &self.store)
            .field(
                "jwt_secret",
                &self.jwt_secret.as_ref().map(|_| "<redacted>"),
            )
            .field("retain", &self.retain)
            .field("retain_age", &self.retain_age)
            .field("node_id", &self.node_id)
            .field("source", &self.source.as_ref().map(|(u, _)| u))
            .field("ping_interval", &self.ping_interval)
            .field("ping_timeout", &self.ping_timeout)
            .field("access_ttl", &self.access_ttl)
            .field("refresh_ttl", &self.refresh_ttl)
            .field("users", &self.users)
            .field("users_file", &self.users_file)
            .field("demo", &self.demo)
            .field("client_queue", &self.client_queue)
            .field("limits", &self.limits)
            .field(
                "metrics_token",
                &self.metrics_token.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            store: StoreConfig::Memory,
            jwt_secret: None,
            retain: DEFAULT_RETAIN,
            retain_age: None,
            node_id: None,
            source: None,
            langgraph: None,
            ping_interval: DEFAULT_PING_INTERVAL,
            ping_timeout: DEFAULT_PING_TIMEOUT,
            access_ttl: DEFAULT_ACCESS_TTL,
            refresh_ttl: DEFAULT_REFRESH_TTL,
            users: Vec::new(),
            users_file: None,
            demo: None,
            client_queue: DEFAULT_CLIENT_QUEUE,
            limits: crate::limits::Limits::default(),
            metrics_token: None,
        }
    }
}

/// The `--config FILE` of `pulse-gateway serve`: every serve option under the flag's
/// name with `_` for `-` (`ping_interval = "15s"`; `graphs = [..]` for the repeatable
/// `--graph`), plus `jwt_secret_file`. All keys
/// are optional; a flag given on the command line wins over the file. An unknown key
/// is refused, and so is `jwt_secret` (a secret belongs in `jwt_secret_file` or
/// `PULSE_JWT_SECRET`, not in a config file others may read; the same for
/// `metrics_token`, read from `metrics_token_file`). Paths are used as
/// written.
#[derive(Debug, Default, Clone, PartialEq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(missing_docs)] // each field is the flag of the same name (see `--help`)
pub struct FileConfig {
    pub addr: Option<String>,
    pub store: Option<String>,
    pub demo: Option<bool>,
    pub demo_speed: Option<f64>,
    pub demo_seed: Option<u64>,
    pub jwt_secret_file: Option<PathBuf>,
    pub retain: Option<u64>,
    pub retain_age: Option<String>,
    pub node_id: Option<String>,
    pub source: Option<String>,
    pub mapping: Option<PathBuf>,
    pub tenant: Option<String>,
    pub graphs: Option<Vec<String>>,
    pub webhook_secret_file: Option<PathBuf>,
    pub webhook_url: Option<String>,
    pub reconcile_interval: Option<String>,
    pub ping_interval: Option<String>,
    pub ping_timeout: Option<String>,
    pub access_ttl: Option<String>,
    pub refresh_ttl: Option<String>,
    pub users_file: Option<PathBuf>,
    pub client_queue: Option<usize>,
    pub metrics_token_file: Option<PathBuf>,
    pub login_failures_per_user: Option<u32>,
    pub login_failures_per_address: Option<u32>,
    pub login_window: Option<String>,
    pub connections_per_token: Option<u32>,
    pub connections_per_address: Option<u32>,
    pub requests_per_second: Option<u32>,
    pub request_burst: Option<u32>,
}

impl FileConfig {
    /// Parse the text of a config file (`path` is only for messages).
    pub fn parse(path: &std::path::Path, text: &str) -> Result<FileConfig, String> {
        let at = |m: &dyn std::fmt::Display| format!("config {}: {}", path.display(), m);
        let table: toml::Table = toml::from_str(text).map_err(|e| at(&e.to_string().trim_end()))?;
        if table.contains_key("metrics_token") {
            return Err(at(
                &"`metrics_token` is not read from a config file: put it in a file \
                 named by `metrics_token_file` or in PULSE_METRICS_TOKEN",
            ));
        }
        if table.contains_key("jwt_secret") {
            return Err(at(
                &"`jwt_secret` is not read from a config file: put the secret in a \
                 file named by `jwt_secret_file` (readable by the gateway only) or in \
                 PULSE_JWT_SECRET",
            ));
        }
        toml::from_str(text).map_err(|e| at(&e.to_string().trim_end()))
    }

    /// Read and parse `path`.
    pub fn load(path: &std::path::Path) -> Result<FileConfig, String> {
        let text =
            std::fs::read_to_string(path).map_err(|e| format!("config {}: {e}", path.display()))?;
        FileConfig::parse(path, &text)
    }
}

/// Parse a duration such as `30s`, `15m`, `1h`, `2d` or `250ms` (a bare number is
/// seconds).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("`{s}` is not a duration (expected e.g. `30s`, `15m`, `1h`)"))?;
    let secs = |m: u64| {
        n.checked_mul(m)
            .map(Duration::from_secs)
            .ok_or_else(|| format!("duration `{s}` is too large"))
    };
    match unit {
        "ms" => Ok(Duration::from_millis(n)),
        "" | "s" => secs(1),
        "m" => secs(60),
        "h" => secs(3600),
        "d" => secs(86_400),
        _ => Err(format!(
            "`{s}` has an unknown unit `{unit}` (use ms, s, m, h or d)"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_files() {
        let p = std::path::Path::new("/etc/pulse-gateway/gateway.toml");
        let c = FileConfig::parse(p, "addr = \"0.0.0.0:7780\"\nretain = 5\ndemo = true\n").unwrap();
        assert_eq!(c.addr.as_deref(), Some("0.0.0.0:7780"));
        assert_eq!((c.retain, c.demo), (Some(5), Some(true)));
        assert_eq!(FileConfig::parse(p, "").unwrap(), FileConfig::default());
        let limits = FileConfig::parse(
            p,
            "connections_per_token = 3\nrequests_per_second = 0\nlogin_window = \"1m\"\n\
             metrics_token_file = \"/etc/pulse-gateway/metrics-token\"\n",
        )
        .unwrap();
        assert_eq!(
            (limits.connections_per_token, limits.requests_per_second),
            (Some(3), Some(0))
        );
        assert_eq!(limits.login_window.as_deref(), Some("1m"));
        for (bad, needle) in [
            ("adr = \"x\"", "unknown field `adr`"),
            ("retain = \"many\"", "retain"),
            ("retain = -1", "retain"),
            ("[addr]\nx = 1", "addr"),
            ("jwt_secret = \"s\"", "jwt_secret_file"),
            ("metrics_token = \"s\"", "metrics_token_file"),
            ("requests_per_second = -1", "requests_per_second"),
            ("login_window = 5", "login_window"),
            ("garbage = [", "line 1"),
            ("\u{0}\u{7f}", "line 1"),
        ] {
            let err = FileConfig::parse(p, bad).unwrap_err();
            assert!(
                err.contains("gateway.toml") && err.contains(needle),
                "{bad:?}: {err}"
            );
        }
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30s").unwrap(), Duration::from_secs(30));
        assert_eq!(parse_duration("15m").unwrap(), Duration::from_secs(900));
        assert_eq!(parse_duration("1h").unwrap(), Duration::from_secs(3600));
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_duration("7").unwrap(), Duration::from_secs(7));
        for bad in ["", "s", "1x", "-1s", "1.5s", "99999999999999999999s"] {
            assert!(parse_duration(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn stores_and_users() {
        assert_eq!(
            "memory".parse::<StoreConfig>().unwrap(),
            StoreConfig::Memory
        );
        assert_eq!(
            "sqlite:/tmp/x.db".parse::<StoreConfig>().unwrap(),
            StoreConfig::Sqlite("/tmp/x.db".into())
        );
        assert!("sqlite:".parse::<StoreConfig>().is_err());
        assert!("redis".parse::<StoreConfig>().is_err());
        assert_eq!(
            "redis://10.0.0.5:6379/2".parse::<StoreConfig>().unwrap(),
            StoreConfig::Redis("redis://10.0.0.5:6379/2".into())
        );
        for bad in [
            "redis://",
            "redis://:6379",
            "redis:/x",
            "redis://h:notaport",
        ] {
            assert!(bad.parse::<StoreConfig>().is_err(), "{bad}");
        }
        let u: User = "ann:pw:acme".parse().unwrap();
        assert_eq!((u.name.as_str(), u.tenant.as_str()), ("ann", "acme"));
        assert!(u.verify("pw"));
        assert!("ann:pw".parse::<User>().is_err());
        assert!("ann::acme".parse::<User>().is_err());
    }
}
