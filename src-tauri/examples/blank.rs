//! The platform floor of the desktop app's memory (issue 12): Tauri 2 and
//! WebKitGTK with the app's webview settings ([`pulse_desktop::webview`]) and
//! allocator settings ([`pulse_desktop::memory`]), one window showing a blank
//! page served over a custom scheme, as the app's UI is. No core, no cache, no
//! tray, no plugins. `PULSE_WEBKIT_DEFAULTS=1` / `PULSE_MEMORY_DEFAULTS=1` switch
//! the settings off as in the app.
//!
//! Run: `cargo run --release --example blank` (under a display), then measure
//! its process tree with `benches/memory/measure.py --app target/release/examples/blank --entities 0`.
//!
//! It is also the floor of the cold start: after the page's first animation frame
//! the page asks `blank://localhost/painted?at=MS&origin=MS` (its clock, epoch ms), and the
//! example prints to stderr how long after the process's start (from `/proc`, as
//! the desktop benchmark counts it) the webview began loading the page and that
//! frame came. With `PULSE_BLANK_QUIT=1` it then quits (`benches/startup/floor.sh`
//! runs it that way).

use tauri::{WebviewUrl, WebviewWindowBuilder};

const PAGE: &[u8] = b"<!doctype html><html><head><meta charset=utf-8><title>blank</title></head><body><p>blank</p>\
<script>addEventListener('load',()=>requestAnimationFrame(()=>requestAnimationFrame(()=>{\
const o=performance.timeOrigin;fetch('blank://localhost/painted?at='+(o+performance.now())+'&origin='+o);})));</script>\
</body></html>";

/// The process's start in epoch ms: now less its age from `/proc`, as the
/// desktop benchmark and `PULSE_STARTUP_TRACE` count it.
fn process_start_ms() -> Option<f64> {
    let age = pulse_desktop::startup::process_age_ms()?;
    Some(pulse_desktop::latency::epoch_ms() - age)
}

/// `name=value` of a query string, as a number.
fn query_number(query: &str, name: &str) -> Option<f64> {
    query
        .split('&')
        .find_map(|kv| kv.strip_prefix(name)?.strip_prefix('='))?
        .parse()
        .ok()
}

fn main() {
    pulse_desktop::memory::at_start();
    pulse_desktop::webview::web_process_env();
    let mut context = tauri::generate_context!();
    // The app's window comes from tauri.conf.json; this one is made below.
    context.config_mut().app.windows.clear();
    tauri::Builder::default()
        .register_uri_scheme_protocol("blank", |ctx, request| {
            if request.uri().path() == "/painted" {
                let query = request.uri().query().unwrap_or_default();
                match (
                    process_start_ms(),
                    query_number(query, "at"),
                    query_number(query, "origin"),
                ) {
                    (Some(start), Some(at), Some(origin)) => eprintln!(
                        "blank: page began loading {:.0} ms, first frame {:.0} ms after the process started",
                        origin - start,
                        at - start
                    ),
                    _ => eprintln!("blank: painted, but the times could not be read ({query})"),
                }
                if std::env::var_os("PULSE_BLANK_QUIT").is_some() {
                    ctx.app_handle().exit(0);
                }
            }
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
