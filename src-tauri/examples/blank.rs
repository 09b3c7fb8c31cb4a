//! The platform floor of the desktop app's memory (issue 12): Tauri 2 and
//! WebKitGTK with the app's webview settings ([`pulse_desktop::webview`]) and
//! allocator settings ([`pulse_desktop::memory`]), one window showing a blank
//! page served over a custom scheme, as the app's UI is. No core, no cache, no
//! tray, no plugins. `PULSE_WEBKIT_DEFAULTS=1` / `PULSE_MEMORY_DEFAULTS=1` switch
//! the settings off as in the app.
//!
//! Run: `cargo run --release --example blank` (under a display), then measure
//! its process tree with `benches/memory/measure.py --app target/release/examples/blank --entities 0`.

use tauri::{WebviewUrl, WebviewWindowBuilder};

const PAGE: &[u8] = b"<!doctype html><html><head><meta charset=utf-8><title>blank</title></head><body><p>blank</p></body></html>";

fn main() {
    pulse_desktop::memory::at_start();
    pulse_desktop::webview::web_process_env();
    let mut context = tauri::generate_context!();
    // The app's window comes from tauri.conf.json; this one is made below.
    context.config_mut().app.windows.clear();
    tauri::Builder::default()
        .register_uri_scheme_protocol("blank", |_ctx, _request| {
            tauri::http::Response::builder()
                .header("Content-Type", "text/html")
                .body(PAGE.to_vec())
                .expect("a static response")
        })
        .setup(|app| {
            let url = "blank://localhost/".parse().expect("a static URL");
            WebviewWindowBuilder::new(
                app,
                pulse_desktop::MAIN_WINDOW,
                WebviewUrl::CustomProtocol(url),
            )
            .title("blank")
            .inner_size(1280.0, 800.0)
            .build()?;
            pulse_desktop::webview::tune(app.handle());
            Ok(())
        })
        .run(context)
        .expect("the blank app runs");
}
