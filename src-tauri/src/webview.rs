//! The webview's settings: what keeps WebKitGTK's web process small for a one-page
//! app that loads nothing from the network (issue 12, desktop memory).
//!
//! On Linux, through `with_webview` on the main window:
//! - the web context's cache model is `DocumentViewer` (no memory cache of
//!   resources: the page is served once from the binary);
//! - no page cache (there is no back/forward navigation), no WebGL, no media, no
//!   HTML5 database or offline application cache (the UI uses none of them);
//! - hardware acceleration `Never`: the UI is a few lists of text; without it the
//!   web process keeps no GL context and compositing buffers;
//! - developer extras only in debug builds;
//! - WebKit's and JavaScriptCore's environment switches ([`JSC_OPTIONS`], set
//!   in this process's environment, which the web process inherits, see
//!   [`web_process_env`]): measured with `benches/memory/measure.py`, each kept
//!   only where it paid.
//!
//! `PULSE_WEBKIT_DEFAULTS=1` leaves WebKit's defaults (to measure the difference).
//! A variable of [`JSC_OPTIONS`] already set in the environment wins over ours.
//! Elsewhere this does nothing.

use tauri::{AppHandle, Manager, Runtime};

/// Set to `1`, WebKit keeps its defaults.
pub const DEFAULTS_ENV: &str = "PULSE_WEBKIT_DEFAULTS";

/// Environment switches WebKit starts with:
/// - `JSC_useDFGJIT=0` (read by JavaScriptCore in the web process): no
///   optimising DFG (and so no FTL) tier; the baseline JIT still compiles hot
///   code. The UI's work per frame is small; the DFG's compiled code and
///   profiling data are held per function. Measured: web process −6 MiB idle,
///   −15 MiB at 1,000 events/s, same CPU.
/// - `WEBKIT_DISABLE_DMABUF_RENDERER=1` (read by WebKit in this process): with
///   hardware acceleration off the page is painted in software anyway; without
///   the DMA-BUF renderer its frames reach this process through shared memory,
///   with fewer buffers kept. Measured: −7 MiB idle (both processes).
pub const JSC_OPTIONS: &[(&str, &str)] = &[
    ("JSC_useDFGJIT", "0"),
    ("WEBKIT_DISABLE_DMABUF_RENDERER", "1"),
];

fn defaults() -> bool {
    std::env::var_os(DEFAULTS_ENV).is_some_and(|v| v == "1")
}

/// Put [`JSC_OPTIONS`] in this process's environment (for WebKit here and the web
/// process it starts, which inherits it); a variable already set is left as it is. Call at the start
/// of `main`, before any thread is spawned (it changes the environment).
pub fn web_process_env() {
    if defaults() || !cfg!(target_os = "linux") {
        return;
    }
    for (key, value) in missing_options(|k| std::env::var_os(k).is_some()) {
        std::env::set_var(key, value);
    }
}

/// The [`JSC_OPTIONS`] that `is_set` says are not set yet.
fn missing_options(is_set: impl Fn(&str) -> bool) -> Vec<(&'static str, &'static str)> {
    JSC_OPTIONS
        .iter()
        .copied()
        .filter(|(k, _)| !is_set(k))
        .collect()
}

/// Apply the settings to the main window's webview (when there is one).
pub fn tune<R: Runtime>(app: &AppHandle<R>) {
    if defaults() {
        return;
    }
    let Some(window) = app.get_webview_window(crate::MAIN_WINDOW) else {
        return;
    };
    if let Err(e) = window.with_webview(apply) {
        tracing::debug!(error = %e, "webview settings not applied");
    }
}

#[cfg(target_os = "linux")]
fn apply(webview: tauri::webview::PlatformWebview) {
    use webkit2gtk::{
        CacheModel, HardwareAccelerationPolicy, SettingsExt, WebContextExt, WebViewExt,
    };
    let wv = webview.inner();
    if let Some(ctx) = wv.context() {
        ctx.set_cache_model(CacheModel::DocumentViewer);
    }
    if let Some(s) = WebViewExt::settings(&wv) {
        s.set_enable_page_cache(false);
        s.set_enable_webgl(false);
        s.set_enable_media(false);
        s.set_enable_html5_database(false);
        s.set_enable_offline_web_application_cache(false);
        s.set_hardware_acceleration_policy(HardwareAccelerationPolicy::Never);
        s.set_enable_developer_extras(cfg!(debug_assertions));
    }
}

#[cfg(not(target_os = "linux"))]
fn apply(_webview: tauri::webview::PlatformWebview) {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jsc_options_set_by_the_user_are_left_alone() {
        assert_eq!(missing_options(|_| false), JSC_OPTIONS.to_vec());
        assert!(missing_options(|_| true).is_empty());
        let first = JSC_OPTIONS[0].0;
        assert!(missing_options(|k| k == first)
            .iter()
            .all(|(k, _)| *k != first));
    }

    #[test]
    fn options_are_webkit_or_jsc_variables() {
        for (k, v) in JSC_OPTIONS {
            assert!(k.starts_with("JSC_") || k.starts_with("WEBKIT_"), "{k}");
            assert!(!v.is_empty(), "{k}");
        }
    }
}
