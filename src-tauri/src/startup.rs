//! Start-up phase times, for finding where a cold start goes: with
//! `PULSE_STARTUP_TRACE=1` each [`mark`] prints one line to stderr,
//! `pulse startup: PHASE +N.N ms`, N the time since the process started (the
//! kernel's start time, 10 ms resolution, as the desktop benchmark counts it; the
//! phases' differences are exact).
//!
//! Invariants: a line names a phase and a time, nothing else (no URL, path, token or
//! entity); without the variable a mark costs one load of a flag.
//!
//! Also the home of "what waits for the first paint" ([`AfterPaint`]): the shell's
//! start does before the window only what the first screen needs.

use std::sync::OnceLock;
use std::time::Instant;

/// The first mark's instant and the process's age then (ms), when tracing.
static ORIGIN: OnceLock<Option<(Instant, f64)>> = OnceLock::new();

fn origin() -> Option<(Instant, f64)> {
    *ORIGIN.get_or_init(|| {
        std::env::var_os("PULSE_STARTUP_TRACE")
            .is_some_and(|v| v == "1")
            .then(|| (Instant::now(), process_age_ms().unwrap_or(0.0)))
    })
}

/// Whether `PULSE_STARTUP_TRACE=1`.
pub fn enabled() -> bool {
    origin().is_some()
}

/// This process's age in ms, from `/proc` (start time in clock ticks after boot);
/// `None` where there is no `/proc`.
pub fn process_age_ms() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command (which may hold spaces) closed by the last ')'.
    let after = stat.rsplit_once(')')?.1;
    let start_ticks: f64 = after.split_whitespace().nth(19)?.parse().ok()?;
    let uptime: f64 = std::fs::read_to_string("/proc/uptime")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    // Clock ticks per second: 100 on Linux (USER_HZ).
    Some((uptime - start_ticks / 100.0) * 1000.0)
}

/// Milliseconds since the process started, when tracing.
pub fn since_start_ms() -> Option<f64> {
    origin().map(|(at, age)| age + at.elapsed().as_secs_f64() * 1000.0)
}

/// Print `phase` and the time since the process started (when tracing).
pub fn mark(phase: &str) {
    if let Some(ms) = since_start_ms() {
        eprintln!("pulse startup: {phase:<34} +{ms:.1} ms");
    }
}

/// Print a phase the page measured: `epoch_ms` is its time (the page's
/// `performance.timeOrigin + performance.now()`), told in the shell's terms.
pub fn mark_at_epoch(phase: &str, epoch_ms: f64) {
    let Some(ms) = since_start_ms() else {
        return;
    };
    let now = crate::latency::epoch_ms();
    if epoch_ms.is_finite() && epoch_ms > 0.0 {
        eprintln!(
            "pulse startup: {phase:<34} +{:.1} ms",
            ms - (now - epoch_ms)
        );
    }
}

/// What waits for the page's first paint (the tray, the desktop's registration of
/// `pulse://`): none of it is needed for the first screen, and on two cores each
/// competes with GTK, WebKit's web process and the page's script for it.
///
/// The network is one of them (`lib.rs`): the page asks for its listeners and its
/// bootstrap without waiting in between, and says it painted only once its
/// listeners are in place, so the session's events all reach them.
///
/// Invariants: each piece of work runs exactly once, by the first of
/// [`AfterPaint::painted`] (the page said it painted: the `painted` command; a
/// window started hidden calls it at once) and [`AfterPaint::fallback_after`]'s
/// deadline (a page that never says so still gets a tray); work added after that
/// runs at once.
pub struct AfterPaint {
    /// The work still waiting; `None` once the first paint (or the deadline) came.
    waiting: std::sync::Mutex<Option<Vec<Work>>>,
    started: std::sync::atomic::AtomicBool,
}

type Work = Box<dyn FnOnce() + Send>;

impl Default for AfterPaint {
    fn default() -> Self {
        Self::new()
    }
}

impl AfterPaint {
    /// Nothing waiting yet, the first paint not come.
    pub fn new() -> Self {
        AfterPaint {
            waiting: std::sync::Mutex::new(Some(Vec::new())),
            started: Default::default(),
        }
    }

    /// Run `work` after the first paint (at once when it came already).
    pub fn add(&self, work: impl FnOnce() + Send + 'static) {
        let mut waiting = self.waiting.lock().expect("after-paint lock");
        match waiting.as_mut() {
            Some(list) => list.push(Box::new(work)),
            None => {
                drop(waiting);
                work();
            }
        }
    }

    /// The first paint came: run what waited for it (once; later calls do nothing).
    pub fn painted(&self) {
        let work = self.waiting.lock().expect("after-paint lock").take();
        if let Some(work) = work {
            mark("after first paint: deferred start");
            for w in work {
                w();
            }
        }
    }

    /// Whether the first paint (or the deadline) came.
    pub fn is_done(&self) -> bool {
        self.waiting.lock().expect("after-paint lock").is_none()
    }

    /// Call [`AfterPaint::painted`] after `deadline` if the page has not by then
    /// (once: a second call starts no second timer).
    pub fn fallback_after(self: &std::sync::Arc<Self>, deadline: std::time::Duration) {
        if self.started.swap(true, std::sync::atomic::Ordering::SeqCst) {
            return;
        }
        let me = self.clone();
        let _ = std::thread::Builder::new()
            .name("after-paint-fallback".into())
            .spawn(move || {
                std::thread::sleep(deadline);
                if !me.is_done() {
                    tracing::debug!("no first paint reported in time: the deferred start runs now");
                }
                me.painted();
            });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    #[test]
    fn work_waits_for_the_first_paint_and_runs_once() {
        let after = AfterPaint::new();
        let ran = Arc::new(AtomicUsize::new(0));
        for _ in 0..2 {
            let r = ran.clone();
            after.add(move || {
                r.fetch_add(1, Ordering::SeqCst);
            });
        }
        assert_eq!(ran.load(Ordering::SeqCst), 0, "nothing before the paint");
        assert!(!after.is_done());
        after.painted();
        assert_eq!(ran.load(Ordering::SeqCst), 2);
        after.painted();
        assert_eq!(
            ran.load(Ordering::SeqCst),
            2,
            "a second paint runs nothing again"
        );
        assert!(after.is_done());
    }

    #[test]
    fn work_added_after_the_first_paint_runs_at_once() {
        let after = AfterPaint::new();
        after.painted();
        let ran = Arc::new(AtomicUsize::new(0));
        let r = ran.clone();
        after.add(move || {
            r.fetch_add(1, Ordering::SeqCst);
        });
        assert_eq!(ran.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn the_fallback_runs_what_waits_when_no_paint_is_reported() {
        let after = Arc::new(AfterPaint::new());
        let (tx, rx) = std::sync::mpsc::channel();
        after.add(move || tx.send(()).expect("send"));
        after.fallback_after(std::time::Duration::ZERO);
        // A second timer is not started (it would find nothing to run anyway).
        after.fallback_after(std::time::Duration::ZERO);
        rx.recv_timeout(std::time::Duration::from_secs(30))
            .expect("the fallback ran the work");
        assert!(after.is_done());
    }
}
