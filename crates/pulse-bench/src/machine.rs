//! The machine a run happened on, for the report's "measured on" lines.

use std::path::Path;
use std::process::Command;

use serde::{Deserialize, Serialize};

/// What the report says about the machine and toolchain.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Machine {
    /// `model name` of /proc/cpuinfo.
    pub cpu: String,
    /// Online CPUs.
    pub cores: usize,
    /// MemTotal, GiB.
    pub ram_gib: f64,
    /// `uname -r`.
    pub kernel: String,
    /// Compiler that built the harness.
    pub rustc: String,
    /// Cargo profile and opt-level of the harness build.
    pub profile: String,
    /// `node --version`, if Node was found.
    pub node: Option<String>,
    /// socket.io / socket.io-client versions from benches/peers.
    pub socketio: Option<String>,
    /// Virtualisation, if `/proc/cpuinfo` says so.
    pub hypervisor: bool,
}

fn first_line(cmd: &mut Command) -> Option<String> {
    let out = cmd.output().ok()?;
    String::from_utf8(out.stdout)
        .ok()?
        .lines()
        .next()
        .map(|l| l.trim().to_owned())
}

impl Machine {
    /// Read it from /proc and the tools.
    pub fn probe(node: Option<&Path>, _exe: &Path) -> Machine {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu = cpuinfo
            .lines()
            .find(|l| l.starts_with("model name"))
            .and_then(|l| l.split_once(':'))
            .map(|(_, v)| v.trim().to_owned())
            .unwrap_or_else(|| "unknown".into());
        let hypervisor = cpuinfo
            .lines()
            .any(|l| l.starts_with("flags") && l.contains(" hypervisor"));
        let ram_kib: f64 = std::fs::read_to_string("/proc/meminfo")
            .unwrap_or_default()
            .lines()
            .find(|l| l.starts_with("MemTotal:"))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0);
        let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .map(|s| s.trim().to_owned())
            .unwrap_or_default();
        let node_version = node.and_then(|n| first_line(Command::new(n).arg("--version")));
        let socketio = std::env::current_dir().ok().and_then(|d| {
            let peers = crate::harness::find_peers(&d)?;
            let v = |pkg: &str| -> Option<String> {
                let text = std::fs::read_to_string(
                    peers.join("node_modules").join(pkg).join("package.json"),
                )
                .ok()?;
                let j: serde_json::Value = serde_json::from_str(&text).ok()?;
                j["version"].as_str().map(str::to_owned)
            };
            Some(format!(
                "socket.io {}, socket.io-client {}",
                v("socket.io")?,
                v("socket.io-client")?
            ))
        });
        let profile = env!("PULSE_BENCH_PROFILE");
        let opt = env!("PULSE_BENCH_OPT_LEVEL");
        Machine {
            cpu,
            cores: crate::sys::cpus(),
            ram_gib: ram_kib / 1024.0 / 1024.0,
            kernel,
            rustc: env!("PULSE_BENCH_RUSTC").to_owned(),
            profile: if profile == "release" {
                format!("release (opt-level {opt}, thin LTO, 4 codegen units: the workspace's [profile.release])")
            } else {
                format!("{profile} (opt-level {opt}): NOT a release build, figures are not representative")
            },
            node: node_version,
            socketio,
            hypervisor,
        }
    }

    /// One line for the report.
    pub fn line(&self) -> String {
        format!(
            "{} ({} cores{}), {:.0} GiB RAM, Linux {}; {}; {}; {}",
            self.cpu,
            self.cores,
            if self.hypervisor {
                ", virtual machine"
            } else {
                ""
            },
            self.ram_gib,
            self.kernel,
            self.rustc,
            self.node
                .as_deref()
                .map(|n| format!("Node {n}"))
                .unwrap_or_else(|| "no Node".into()),
            self.socketio.as_deref().unwrap_or("no socket.io"),
        )
    }
}

/// Now as `YYYY-MM-DD HH:MM UTC`.
pub fn utc_now() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    format_utc(secs)
}

/// Seconds since the Unix epoch as `YYYY-MM-DD HH:MM UTC`.
pub fn format_utc(secs: i64) -> String {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Civil from days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if m <= 2 { y + 1 } else { y };
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02} UTC",
        rem / 3600,
        (rem % 3600) / 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        assert_eq!(format_utc(0), "1970-01-01 00:00 UTC");
        assert_eq!(format_utc(1_767_225_600), "2026-01-01 00:00 UTC");
        assert_eq!(format_utc(951_782_400 + 3661), "2000-02-29 01:01 UTC");
    }

    #[test]
    fn probes_this_machine() {
        let m = Machine::probe(None, Path::new("/"));
        assert!(m.cores >= 1 && m.ram_gib > 0.0 && !m.kernel.is_empty());
        assert!(m.line().contains("cores"));
    }
}
