//! Operating-system helpers: a clock shared by processes, CPU pinning, file
//! limits, CPU time and memory read from `/proc`, and child processes that are
//! killed (by their own pid) when dropped.
//!
//! Linux only: every figure is read from `/proc` or `getrusage`.

use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

/// `CLOCK_MONOTONIC` in nanoseconds: one clock for every process on the machine,
/// so a time stamp written by one process can be compared with another's.
pub fn mono_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// Pin the calling thread (and the threads it starts afterwards) to `cpu`.
/// Returns false when the machine has no such CPU or the call failed.
pub fn pin_current_thread(cpu: usize) -> bool {
    if cpu >= cpus() {
        return false;
    }
    // SAFETY: a zeroed cpu_set_t is a valid empty set; CPU_SET stays in bounds
    // (cpu < number of CPUs ≤ CPU_SETSIZE).
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) == 0
    }
}

/// Make `cmd` start pinned to `cpu` (no-op when the machine has no such CPU).
pub fn pin_command(cmd: &mut Command, cpu: Option<usize>) {
    if let Some(cpu) = cpu.filter(|c| *c < cpus()) {
        // SAFETY: sched_setaffinity is async-signal-safe; nothing is allocated
        // between fork and exec.
        unsafe {
            cmd.pre_exec(move || {
                let mut set: libc::cpu_set_t = std::mem::zeroed();
                libc::CPU_SET(cpu, &mut set);
                libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
                Ok(())
            });
        }
    }
}

/// Online CPUs.
pub fn cpus() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

/// Raise this process's soft `RLIMIT_NOFILE` to its hard limit; returns the new
/// soft limit. Children started afterwards inherit it.
pub fn raise_nofile() -> u64 {
    // SAFETY: plain get/setrlimit on a valid struct.
    unsafe {
        let mut lim = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return 0;
        }
        if lim.rlim_cur < lim.rlim_max {
            let want = libc::rlimit {
                rlim_cur: lim.rlim_max,
                rlim_max: lim.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &want) == 0 {
                return want.rlim_cur;
            }
        }
        lim.rlim_cur
    }
}

fn rusage(who: libc::c_int) -> Duration {
    // SAFETY: a zeroed rusage is valid and getrusage only writes it.
    let ru = unsafe {
        let mut ru: libc::rusage = std::mem::zeroed();
        libc::getrusage(who, &mut ru);
        ru
    };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

/// CPU time (user + system) of this whole process so far.
pub fn process_cpu() -> Duration {
    rusage(libc::RUSAGE_SELF)
}

/// Clock ticks per second of `/proc/*/stat`.
fn clk_tck() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as u64
    } else {
        100
    }
}

/// CPU time (user + system) of process `pid`, from `/proc/PID/stat`.
pub fn proc_cpu(pid: u32) -> Option<Duration> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may hold spaces) in parentheses.
    let rest = &text[text.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the full line: 11 and 12 here.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    let tck = clk_tck();
    Some(Duration::from_nanos((utime + stime) * 1_000_000_000 / tck))
}

/// A field of `/proc/PID/status` in KiB (`VmRSS`, `VmHWM`).
pub fn proc_status_kib(pid: u32, field: &str) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    text.lines()
        .find(|l| l.starts_with(field) && l[field.len()..].starts_with(':'))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
}

/// Resident memory of `pid` in KiB.
pub fn rss_kib(pid: u32) -> Option<u64> {
    proc_status_kib(pid, "VmRSS")
}

/// Peak resident memory of `pid` in KiB.
pub fn hwm_kib(pid: u32) -> Option<u64> {
    proc_status_kib(pid, "VmHWM")
}

/// `RLIMIT_NOFILE` of this process: (soft, hard).
pub fn nofile() -> (u64, u64) {
    // SAFETY: plain getrlimit on a valid struct.
    unsafe {
        let mut lim = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return (0, 0);
        }
        (lim.rlim_cur, lim.rlim_max)
    }
}

/// Raise this process's hard (and soft) `RLIMIT_NOFILE` to at least `want`, so
/// that children started afterwards inherit it. Beyond the current hard limit
/// this needs `CAP_SYS_RESOURCE`; returns the new hard limit or the refusal.
pub fn raise_nofile_hard(want: u64) -> std::io::Result<u64> {
    let (_, hard) = nofile();
    if hard >= want {
        raise_nofile();
        return Ok(hard);
    }
    let lim = libc::rlimit {
        rlim_cur: want,
        rlim_max: want,
    };
    // SAFETY: plain setrlimit on a valid struct.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(want)
}

/// The open-files limit (soft) of process `pid`, from `/proc/PID/limits`
/// (`None` when unreadable or unlimited).
pub fn proc_nofile(pid: u32) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/limits")).ok()?;
    parse_limits_nofile(&text)
}

fn parse_limits_nofile(text: &str) -> Option<u64> {
    let line = text.lines().find(|l| l.starts_with("Max open files"))?;
    line["Max open files".len()..]
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Descriptors open in process `pid` (entries of `/proc/PID/fd`).
pub fn proc_fds(pid: u32) -> Option<u64> {
    Some(std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?.count() as u64)
}

/// `MemAvailable` of this machine in MiB, from `/proc/meminfo`.
pub fn mem_available_mib() -> Option<f64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let kib: u64 = text
        .lines()
        .find(|l| l.starts_with("MemAvailable:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()?;
    Some(kib as f64 / 1024.0)
}

/// This process's id.
pub fn own_pid() -> u32 {
    std::process::id()
}

/// A child process that is killed when dropped. It is sent SIGTERM first (and
/// SIGKILL if it has not gone after a second) by its own pid.
pub struct Proc {
    /// Short name, for errors.
    pub name: String,
    child: Option<Child>,
    stdout: Option<BufReader<ChildStdout>>,
}

impl Proc {
    /// Start `cmd` with a piped stdin (its end tells the child we are gone) and
    /// stdout; stderr goes to `log` when given.
    pub fn spawn(name: &str, mut cmd: Command, log: Option<&Path>) -> anyhow::Result<Proc> {
        cmd.stdin(Stdio::piped()).stdout(Stdio::piped());
        match log {
            Some(path) => {
                let f = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)
                    .with_context(|| format!("cannot open {}", path.display()))?;
                cmd.stderr(f);
            }
            None => {
                cmd.stderr(Stdio::inherit());
            }
        }
        let mut child = cmd
            .spawn()
            .with_context(|| format!("cannot start {name} ({:?})", cmd.get_program()))?;
        let stdout = child.stdout.take().map(BufReader::new);
        Ok(Proc {
            name: name.to_owned(),
            child: Some(child),
            stdout,
        })
    }

    /// Start `cmd` with a piped stdin and both stdout and stderr appended to `log`.
    pub fn spawn_logged(name: &str, mut cmd: Command, log: &Path) -> anyhow::Result<Proc> {
        let f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .with_context(|| format!("cannot open {}", log.display()))?;
        cmd.stdin(Stdio::piped()).stdout(f.try_clone()?).stderr(f);
        let child = cmd
            .spawn()
            .with_context(|| format!("cannot start {name} ({:?})", cmd.get_program()))?;
        Ok(Proc {
            name: name.to_owned(),
            child: Some(child),
            stdout: None,
        })
    }

    /// Take its stdout (to read it on another thread).
    pub fn take_stdout(&mut self) -> Option<BufReader<ChildStdout>> {
        self.stdout.take()
    }

    /// Take its stdin (to send it commands; dropping it closes the pipe).
    pub fn take_stdin(&mut self) -> Option<ChildStdin> {
        self.child.as_mut().and_then(|c| c.stdin.take())
    }

    /// Whether it has exited.
    pub fn exited(&mut self) -> bool {
        match self.child.as_mut() {
            Some(c) => !matches!(c.try_wait(), Ok(None)),
            None => true,
        }
    }

    /// Its pid.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(|c| c.id()).unwrap_or(0)
    }

    /// Read stdout lines until one starts with `prefix`; returns the rest of that
    /// line. Fails when the child exits first or `timeout` passes.
    pub fn wait_line(&mut self, prefix: &str, timeout: Duration) -> anyhow::Result<String> {
        let deadline = Instant::now() + timeout;
        let out = self.stdout.as_mut().context("stdout already taken")?;
        let mut line = String::new();
        loop {
            line.clear();
            // Blocking read; the children print their line promptly or exit.
            let n = out.read_line(&mut line)?;
            if n == 0 {
                bail!("{} exited before printing `{prefix}`", self.name);
            }
            if let Some(rest) = line.trim_end().strip_prefix(prefix) {
                return Ok(rest.trim().to_owned());
            }
            if Instant::now() > deadline {
                bail!("{} did not print `{prefix}` in {timeout:?}", self.name);
            }
        }
    }

    /// Everything the child prints on stdout until it exits, then its status.
    pub fn finish(&mut self, timeout: Duration) -> anyhow::Result<String> {
        let mut out = String::new();
        if let Some(mut r) = self.stdout.take() {
            std::io::Read::read_to_string(&mut r, &mut out)?;
        }
        let deadline = Instant::now() + timeout;
        let child = self.child.as_mut().context("no child")?;
        loop {
            if let Some(status) = child.try_wait()? {
                self.child = None;
                if !status.success() {
                    bail!("{} failed ({status}); stdout: {out}", self.name);
                }
                return Ok(out);
            }
            if Instant::now() > deadline {
                bail!("{} did not exit in {timeout:?}", self.name);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// SIGKILL now (a crash, as in the cluster benchmark's herd) and reap.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM, wait up to `grace`, then SIGKILL; reaps the child.
    pub fn stop(&mut self, grace: Duration) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        // SAFETY: kill on the pid of a child we started and have not reaped.
        unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        let _ = child.kill();
        let _ = child.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.stop(Duration::from_secs(1));
    }
}

/// Samples a process's resident memory and CPU time while a load runs.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct Usage {
    /// Wall time covered, seconds.
    pub wall_s: f64,
    /// CPU time used in that window, seconds.
    pub cpu_s: f64,
    /// CPU used as a share of one core (1.0 = one core busy all the time).
    pub cores: f64,
    /// Resident memory at the end, MiB.
    pub rss_mib: f64,
    /// Highest resident memory seen by the sampler, MiB.
    pub rss_peak_mib: f64,
}

/// A window of CPU time and memory of process `pid`.
pub struct UsageWindow {
    pid: u32,
    start: Instant,
    cpu0: Duration,
    peak_kib: u64,
}

impl UsageWindow {
    /// Start measuring `pid` now.
    pub fn start(pid: u32) -> UsageWindow {
        UsageWindow {
            pid,
            start: Instant::now(),
            cpu0: proc_cpu(pid).unwrap_or_default(),
            peak_kib: rss_kib(pid).unwrap_or(0),
        }
    }

    /// Record the current resident memory (call it periodically).
    pub fn sample(&mut self) {
        if let Some(r) = rss_kib(self.pid) {
            self.peak_kib = self.peak_kib.max(r);
        }
    }

    /// Close the window.
    pub fn finish(mut self) -> Usage {
        self.sample();
        let wall = self.start.elapsed().as_secs_f64();
        let cpu = proc_cpu(self.pid)
            .unwrap_or_default()
            .saturating_sub(self.cpu0)
            .as_secs_f64();
        Usage {
            wall_s: wall,
            cpu_s: cpu,
            cores: if wall > 0.0 { cpu / wall } else { 0.0 },
            rss_mib: rss_kib(self.pid).unwrap_or(0) as f64 / 1024.0,
            rss_peak_mib: self.peak_kib as f64 / 1024.0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_own_process() {
        let pid = own_pid();
        assert!(rss_kib(pid).unwrap() > 0);
        assert!(hwm_kib(pid).unwrap() >= rss_kib(pid).unwrap() / 2);
        let spin = Instant::now();
        let mut x = 0u64;
        while spin.elapsed() < Duration::from_millis(30) {
            x = x.wrapping_add(std::hint::black_box(1));
        }
        assert!(x > 0);
        assert!(proc_cpu(pid).is_some());
        assert!(process_cpu() > Duration::ZERO);
        assert!(mono_ns() > 0);
    }

    #[test]
    fn nofile_can_be_raised() {
        assert!(raise_nofile() >= 1024);
        let (soft, hard) = nofile();
        assert!(soft >= 1024 && soft <= hard, "{soft} {hard}");
        // Asking for no more than the hard limit always works (no privilege).
        assert_eq!(raise_nofile_hard(hard).unwrap(), hard);
        assert_eq!(nofile(), (hard, hard));
        assert_eq!(proc_nofile(own_pid()), Some(soft));
        assert!(
            proc_fds(own_pid()).unwrap() >= 3,
            "stdin, stdout, stderr at least"
        );
        assert!(mem_available_mib().unwrap() > 0.0);
    }

    #[test]
    fn limits_file() {
        let text = "Limit                     Soft Limit           Hard Limit           Units\n\
                    Max open files            20000                20000                files\n";
        assert_eq!(parse_limits_nofile(text), Some(20000));
        let unlimited =
            "Max open files            unlimited            unlimited            files\n";
        assert_eq!(parse_limits_nofile(unlimited), None);
        assert_eq!(parse_limits_nofile("garbage\n\u{0}"), None);
        assert_eq!(parse_limits_nofile(""), None);
    }
}
