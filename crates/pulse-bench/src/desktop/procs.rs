//! What `/proc` says about the app: when a process started (in epoch ms), which
//! process runs the app binary, and the memory (RSS and PSS) of its process
//! tree, the `pulse` process and WebKit's processes under it.
//!
//! Invariants: only reads `/proc` (Linux), never fails: a process that cannot be
//! read (it exited meanwhile) adds nothing to the sums; the tree's PSS sum counts
//! shared pages once, its RSS sum once per process.

use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::sys;

/// When process `pid` started, in epoch ms (10 ms resolution: `/proc/PID/stat`
/// counts clock ticks since boot, on the `CLOCK_BOOTTIME` clock).
pub(super) fn process_start_epoch_ms(pid: u32) -> Option<f64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &text[text.rfind(')')? + 2..];
    let ticks: f64 = rest.split_whitespace().nth(19)?.parse().ok()?;
    // SAFETY: sysconf has no preconditions; clock_gettime writes a valid timespec.
    let (tck, boot_ms) = unsafe {
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        libc::clock_gettime(libc::CLOCK_BOOTTIME, &mut ts);
        (
            libc::sysconf(libc::_SC_CLK_TCK).max(1) as f64,
            ts.tv_sec as f64 * 1000.0 + ts.tv_nsec as f64 / 1e6,
        )
    };
    let offset = epoch_ms() - boot_ms;
    Some(offset + ticks / tck * 1000.0)
}

/// The pid of the process running `app`.
pub(super) fn app_pid(app: &Path) -> Option<u32> {
    std::fs::read_dir("/proc")
        .ok()?
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .find(|p| std::fs::read_link(format!("/proc/{p}/exe")).is_ok_and(|x| x == app))
}

pub(super) fn epoch_ms() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64() * 1000.0)
        .unwrap_or(0.0)
}

/// Memory of the app's process tree.
#[derive(Debug, Clone, Default)]
pub(super) struct TreeMemory {
    pub(super) processes: usize,
    pub(super) rss_mib: f64,
    pub(super) pss_mib: f64,
    /// (process name, PSS MiB), largest first.
    each: Vec<(String, f64)>,
}

impl TreeMemory {
    pub(super) fn breakdown(&self) -> String {
        self.each
            .iter()
            .map(|(n, m)| format!("{n} {m:.0}"))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

fn ppid(pid: u32) -> Option<u32> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &text[text.rfind(')')? + 2..];
    rest.split_whitespace().nth(1)?.parse().ok()
}

fn pss_kib(pid: u32) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).ok()?;
    text.lines()
        .find(|l| l.starts_with("Pss:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
}

/// The `pulse` process running `app` and its descendants (WebKit's processes).
pub(super) fn tree_memory(app: &Path) -> Option<TreeMemory> {
    let pids: Vec<u32> = std::fs::read_dir("/proc")
        .ok()?
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
        .collect();
    let main = pids
        .iter()
        .copied()
        .find(|p| std::fs::read_link(format!("/proc/{p}/exe")).is_ok_and(|x| x == app))?;
    let mut tree = vec![main];
    let mut changed = true;
    while changed {
        changed = false;
        for p in &pids {
            if !tree.contains(p) && ppid(*p).is_some_and(|pp| tree.contains(&pp)) {
                tree.push(*p);
                changed = true;
            }
        }
    }
    let mib = |k: u64| k as f64 / 1024.0;
    let mut each: Vec<(String, f64)> = tree
        .iter()
        .map(|p| {
            // argv[0]'s file name (`comm` is cut at 15 characters).
            let name = std::fs::read(format!("/proc/{p}/cmdline"))
                .ok()
                .and_then(|b| {
                    let argv0 = b.split(|c| *c == 0).next()?.to_vec();
                    let argv0 = String::from_utf8(argv0).ok()?;
                    Some(argv0.rsplit('/').next()?.to_owned())
                })
                .unwrap_or_default();
            (name, mib(pss_kib(*p).unwrap_or(0)))
        })
        .collect();
    each.sort_by(|a, b| b.1.total_cmp(&a.1));
    Some(TreeMemory {
        each,
        processes: tree.len(),
        rss_mib: mib(tree.iter().filter_map(|p| sys::rss_kib(*p)).sum()),
        pss_mib: mib(tree.iter().filter_map(|p| pss_kib(*p)).sum()),
    })
}
