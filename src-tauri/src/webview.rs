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
//! - developer extras only in debug builds.
//!
//! `PULSE_WEBKIT_DEFAULTS=1` leaves WebKit's defaults (to measure the difference).
//! Elsewhere this does nothing.

use tauri::{AppHandle, Manager, Runtime};

/// Apply the settings to the main window's webview (when there is one).
pub fn tune<R: Runtime>(app: &AppHandle<R>) {
    if std::env::var_os("PULSE_WEBKIT_DEFAULTS").is_some_and(|v| v == "1") {
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
