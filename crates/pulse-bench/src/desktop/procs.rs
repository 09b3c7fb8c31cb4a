//! What `/proc` says about the app: when a process started (in epoch ms), which
//! process runs the app binary, and the memory (RSS and PSS) of its process
//! tree, the `pulse` process and WebKit's processes under it; and the same for
//! a browser (Chromium, the side by side): its process tree plus any process
//! that names its profile directory.
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

/// The pid of the process running `app` (the most recently started, should an
/// older one linger).
pub(super) fn app_pid(app: &Path) -> Option<u32> {
    app_mains(&all_pids(), app).into_iter().next_back()
}

/// The processes running `app`, oldest first.
fn app_mains(pids: &[u32], app: &Path) -> Vec<u32> {
    let mut mains: Vec<(f64, u32)> = pids
        .iter()
        .copied()
        .filter(|p| std::fs::read_link(format!("/proc/{p}/exe")).is_ok_and(|x| x == app))
        .map(|p| (process_start_epoch_ms(p).unwrap_or(0.0), p))
        .collect();
    mains.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
    mains.into_iter().map(|(_, p)| p).collect()
}

/// Every process running `app` and their descendants (WebKit's processes).
pub(super) fn app_tree_pids(app: &Path) -> Vec<u32> {
    let pids = all_pids();
    let mains = app_mains(&pids, app);
    if mains.is_empty() {
        return mains;
    }
    descendants(&pids, mains)
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

fn all_pids() -> Vec<u32> {
    std::fs::read_dir("/proc")
        .map(|d| {
            d.flatten()
                .filter_map(|e| e.file_name().to_str()?.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// `roots` and every process descended from them, among `pids`.
fn descendants(pids: &[u32], roots: Vec<u32>) -> Vec<u32> {
    let mut tree = roots;
    let mut changed = true;
    while changed {
        changed = false;
        for p in pids {
            if !tree.contains(p) && ppid(*p).is_some_and(|pp| tree.contains(&pp)) {
                tree.push(*p);
                changed = true;
            }
        }
    }
    tree
}

/// A process's name: argv[0]'s file name (`comm` is cut at 15 characters), with
/// Chromium's `--type=` in brackets (`chromium [renderer]`); Chromium's helpers
/// rewrite their command line into one string, so both are read from the words
/// of the whole command line. "" when it cannot be read.
fn process_name(pid: u32) -> String {
    let Ok(raw) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
        return String::new();
    };
    let text = String::from_utf8_lossy(&raw);
    let mut words = text.split(['\0', ' ']).filter(|w| !w.is_empty());
    let name = words
        .next()
        .and_then(|w| w.rsplit('/').next())
        .unwrap_or_default()
        .to_owned();
    match words.find_map(|w| w.strip_prefix("--type=")) {
        Some(t) => format!("{name} [{t}]"),
        None => name,
    }
}

/// The memory of the processes `tree` (all alive a moment ago).
fn memory_of(tree: &[u32]) -> TreeMemory {
    let mib = |k: u64| k as f64 / 1024.0;
    let mut each: Vec<(String, f64)> = tree
        .iter()
        .map(|p| (process_name(*p), mib(pss_kib(*p).unwrap_or(0))))
        .collect();
    each.sort_by(|a, b| b.1.total_cmp(&a.1));
    // One entry per process name (Chromium runs several renderers and utilities).
    let mut merged: Vec<(String, f64, usize)> = Vec::new();
    for (n, m) in each {
        match merged.iter_mut().find(|(x, _, _)| *x == n) {
            Some(e) => {
                e.1 += m;
                e.2 += 1;
            }
            None => merged.push((n, m, 1)),
        }
    }
    merged.sort_by(|a, b| b.1.total_cmp(&a.1));
    TreeMemory {
        each: merged
            .into_iter()
            .map(|(n, m, k)| {
                if k > 1 {
                    (format!("{n} ×{k}"), m)
                } else {
                    (n, m)
                }
            })
            .collect(),
        processes: tree.len(),
        rss_mib: mib(tree.iter().filter_map(|p| sys::rss_kib(*p)).sum()),
        pss_mib: mib(tree.iter().filter_map(|p| pss_kib(*p)).sum()),
    }
}

/// The `pulse` process running `app` (the newest) and its descendants (WebKit's
/// processes).
pub(super) fn tree_memory(app: &Path) -> Option<TreeMemory> {
    let pids = all_pids();
    let main = app_mains(&pids, app).into_iter().next_back()?;
    Some(memory_of(&descendants(&pids, vec![main])))
}

/// A browser's processes: `root` and its descendants, and any other process whose
/// command line names `profile` (its own user-data directory), such as a crash
/// handler that detached from the tree.
pub(super) fn browser_pids(root: u32, profile: &Path) -> Vec<u32> {
    let pids = all_pids();
    let needle = profile.as_os_str().as_encoded_bytes();
    let roots: Vec<u32> = pids
        .iter()
        .copied()
        .filter(|p| {
            (*p == root && root != 0)
                || (!needle.is_empty()
                    && std::fs::read(format!("/proc/{p}/cmdline"))
                        .is_ok_and(|c| c.windows(needle.len()).any(|w| w == needle)))
        })
        .collect();
    if roots.is_empty() {
        return roots;
    }
    descendants(&pids, roots)
}

/// The memory of [`browser_pids`]; `None` once none is left.
pub(super) fn browser_memory(root: u32, profile: &Path) -> Option<TreeMemory> {
    let pids = browser_pids(root, profile);
    (!pids.is_empty()).then(|| memory_of(&pids))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_counts_this_process() {
        let me = std::process::id();
        let name = process_name(me);
        assert!(!name.is_empty() && !name.contains('/'), "{name}");
        // Not a process: no name, no memory, never a failure.
        assert_eq!(process_name(u32::MAX), "");
        let m = memory_of(&[me, u32::MAX]);
        assert_eq!(m.processes, 2);
        assert!(m.pss_mib > 0.0 && m.rss_mib >= m.pss_mib, "{m:?}");
        assert!(m.breakdown().starts_with(&name), "{}", m.breakdown());
    }

    #[test]
    fn a_browser_is_found_by_its_profile_and_its_tree() {
        let dir = tempfile::tempdir().unwrap();
        let profile = dir.path().join("profile-x");
        // A child whose command line names the profile, and its own child.
        let mut child = std::process::Command::new("sh")
            .arg("-c")
            .arg("sleep 30 & wait")
            .arg(&profile)
            .spawn()
            .unwrap();
        let pid = child.id();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        let found = loop {
            let pids = browser_pids(0, &profile);
            if pids.len() >= 2 || std::time::Instant::now() > deadline {
                break pids;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        };
        assert!(found.contains(&pid), "{found:?}");
        assert!(found.len() >= 2, "the sleep under it: {found:?}");
        assert!(!found.contains(&std::process::id()));
        assert!(browser_memory(0, &profile).is_some_and(|m| m.processes == found.len()));
        let _ = child.kill();
        let _ = child.wait();
        assert!(browser_pids(0, &dir.path().join("no-such-profile")).is_empty());
        assert!(browser_memory(0, &dir.path().join("no-such-profile")).is_none());
    }
}
