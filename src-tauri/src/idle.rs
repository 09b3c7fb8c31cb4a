//! How long the user has left the whole desktop alone (not only Pulse's window), so
//! presence (seed 002's `presence.update`) says `away` when nobody is at the machine,
//! and stays `online` while the user works in other applications.
//!
//! Invariants:
//! - one short query per call (an X round trip), never a blocking wait;
//! - `None` whenever the platform cannot tell: no X display (Wayland without
//!   XWayland), no `libXss` at run time, or an OS this is not implemented for. The UI
//!   then measures input to its own window only;
//! - nothing here can fail the app: every error is `None`.
//!
//! Linux/X11 only. Windows (`GetLastInputInfo`) and macOS
//! (`CGEventSourceSecondsSinceLastEventType`) are not built here (no such machine),
//! so they answer `None` and fall back to the window's own input.

use std::time::Duration;

/// Time since the last keyboard or pointer input anywhere on the desktop.
pub fn system_idle() -> Option<Duration> {
    imp::system_idle()
}

#[cfg(target_os = "linux")]
mod imp {
    use std::ffi::CStr;
    use std::sync::{Mutex, OnceLock};
    use std::time::Duration;

    use x11_dl::xlib::{Display, Xlib};
    use x11_dl::xss::{XScreenSaverInfo, Xss};

    /// One X connection kept for the process: an X server may count a client's
    /// disconnect as activity (Xvfb does), so a connection per query would keep
    /// resetting the very idle time it reads.
    pub(super) struct Idle {
        xlib: Xlib,
        xss: Xss,
        dpy: *mut Display,
        info: *mut XScreenSaverInfo,
    }

    // SAFETY: the connection is used by one thread at a time (behind a `Mutex`, or
    // owned by a test), which is what Xlib requires without `XInitThreads`.
    unsafe impl Send for Idle {}

    impl Idle {
        /// Connect to `display` (`None`: `$DISPLAY`); `None` without the libraries,
        /// the server or its MIT-SCREEN-SAVER extension.
        pub(super) fn open(display: Option<&CStr>) -> Option<Idle> {
            let xlib = Xlib::open().ok()?;
            let xss = Xss::open().ok()?;
            // SAFETY: the pointers come from the loaded libraries and are checked for
            // null; on failure everything opened is released here.
            unsafe {
                let dpy = (xlib.XOpenDisplay)(display.map_or(std::ptr::null(), CStr::as_ptr));
                if dpy.is_null() {
                    return None;
                }
                let (mut event_base, mut error_base) = (0, 0);
                let info =
                    if (xss.XScreenSaverQueryExtension)(dpy, &mut event_base, &mut error_base) == 0
                    {
                        std::ptr::null_mut()
                    } else {
                        (xss.XScreenSaverAllocInfo)()
                    };
                if info.is_null() {
                    (xlib.XCloseDisplay)(dpy);
                    return None;
                }
                Some(Idle {
                    xlib,
                    xss,
                    dpy,
                    info,
                })
            }
        }

        /// The server's idle time now.
        pub(super) fn query(&mut self) -> Option<Duration> {
            // SAFETY: `dpy` and `info` are live until `drop`.
            unsafe {
                let root = (self.xlib.XDefaultRootWindow)(self.dpy);
                if (self.xss.XScreenSaverQueryInfo)(self.dpy, root, self.info) == 0 {
                    return None;
                }
                // `c_ulong` is 32 bits on some Linux targets.
                #[allow(clippy::useless_conversion)]
                let ms = u64::from((*self.info).idle);
                Some(Duration::from_millis(ms))
            }
        }
    }

    impl Drop for Idle {
        fn drop(&mut self) {
            // SAFETY: allocated in `open`, freed once.
            unsafe {
                (self.xlib.XFree)(self.info.cast());
                (self.xlib.XCloseDisplay)(self.dpy);
            }
        }
    }

    /// The idle time of `$DISPLAY`'s server, on the process's one connection.
    pub(super) fn system_idle() -> Option<Duration> {
        static CONN: OnceLock<Mutex<Option<Idle>>> = OnceLock::new();
        let conn = CONN.get_or_init(|| Mutex::new(Idle::open(None)));
        let mut guard = conn.lock().unwrap_or_else(|e| e.into_inner());
        guard.as_mut()?.query()
    }
}

#[cfg(not(target_os = "linux"))]
mod imp {
    use std::time::Duration;

    /// Not implemented on this OS (see the module docs).
    pub(super) fn system_idle() -> Option<Duration> {
        None
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use std::io::Read;
    use std::process::{Command, Stdio};

    use super::imp::Idle;

    #[test]
    fn a_display_that_is_not_there_is_none_not_a_failure() {
        assert!(Idle::open(Some(c":4095")).is_none());
        assert!(Idle::open(Some(c"not a display name")).is_none());
    }

    /// A real X server (Xvfb, one of the desktop test's packages): nobody has touched
    /// it, so its idle time is known and grows.
    #[test]
    fn a_real_x_server_tells_its_idle_time() {
        // -displayfd 1: Xvfb picks a free display and writes its number on stdout.
        let mut xvfb = Command::new("Xvfb")
            .args(["-displayfd", "1", "-nolisten", "tcp"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("Xvfb (install the desktop test packages: scripts/install-desktop-deps.sh)");
        let mut read = xvfb.stdout.take().unwrap();
        let mut number = String::new();
        let mut byte = [0u8; 1];
        while read.read(&mut byte).expect("read the display number") == 1 && byte[0] != b'\n' {
            number.push(byte[0] as char);
        }
        let name = std::ffi::CString::new(format!(":{}", number.trim())).unwrap();
        let mut idle = Idle::open(Some(&name)).expect("Xvfb answers MIT-SCREEN-SAVER");
        let first = idle.query().expect("a first idle time");
        // Wait on the X server's own clock, not a fixed sleep: until it moved.
        let until = std::time::Instant::now() + std::time::Duration::from_secs(10);
        let later = loop {
            let now = idle.query().expect("asked again");
            if now > first || std::time::Instant::now() > until {
                break now;
            }
            std::thread::yield_now();
        };
        drop(idle);
        let _ = xvfb.kill();
        let _ = xvfb.wait();
        assert!(
            later > first,
            "idle time grows with no input ({first:?}, then {later:?})"
        );
    }
}
