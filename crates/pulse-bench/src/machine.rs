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

/// Busy CPU time of the whole machine so far, in clock ticks (user, nice,
/// system, irq, softirq and steal of the `cpu` line of `/proc/stat`).
pub fn machine_busy_ticks() -> u64 {
    let text = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let Some(line) = text.lines().find(|l| l.starts_with("cpu ")) else {
        return 0;
    };
    let v: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal
    [0usize, 1, 2, 5, 6, 7]
        .iter()
        .filter_map(|i| v.get(*i))
        .sum()
}

/// CPU time of this process and of its children that have been waited for, in
/// clock ticks (`utime + stime + cutime + cstime` of `/proc/self/stat`).
pub fn own_tree_ticks() -> u64 {
    let text = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let Some(rest) = text.rfind(')').map(|i| &text[i + 2..]) else {
        return 0;
    };
    rest.split_whitespace()
        .skip(11)
        .take(4)
        .filter_map(|x| x.parse::<u64>().ok())
        .sum()
}

fn ticks_per_s() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as f64
    } else {
        100.0
    }
}

/// CPU used by other processes on the machine (not this harness or its
/// children) over a window, so the report can say how quiet the machine was.
pub struct ForeignLoad {
    start: std::time::Instant,
    busy0: u64,
    own0: u64,
}

impl ForeignLoad {
    /// Start a window now.
    pub fn start() -> ForeignLoad {
        ForeignLoad {
            start: std::time::Instant::now(),
            busy0: machine_busy_ticks(),
            own0: own_tree_ticks(),
        }
    }

    /// Average cores used by other processes since `start` (call after every
    /// child of the window has been waited for).
    pub fn cores(&self) -> f64 {
        let busy = machine_busy_ticks().saturating_sub(self.busy0) as f64;
        let own = own_tree_ticks().saturating_sub(self.own0) as f64;
        let secs = self.start.elapsed().as_secs_f64().max(1e-3);
        ((busy - own).max(0.0) / ticks_per_s()) / secs
    }
}

/// Wait (at most `limit`) until other processes use less than `threshold`
/// cores over a 2-second window; returns the last window's figure.
pub fn wait_for_quiet(threshold: f64, limit: std::time::Duration) -> f64 {
    let deadline = std::time::Instant::now() + limit;
    loop {
        let w = ForeignLoad::start();
        std::thread::sleep(std::time::Duration::from_secs(2));
        let c = w.cores();
        if c < threshold || std::time::Instant::now() >= deadline {
            return c;
        }
    }
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
