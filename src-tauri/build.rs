//! Build script of the desktop shell.
//!
//! Tauri embeds `ui/dist` at compile time. A fresh clone has no built UI, so when it is
//! missing a placeholder page is written, which keeps `cargo build --workspace` working
//! without Node; `npm --prefix ui run build` replaces it with the real UI.

use std::path::Path;

fn main() {
    let dist = Path::new("ui/dist");
    let index = dist.join("index.html");
    if !index.exists() {
        std::fs::create_dir_all(dist).expect("create ui/dist");
        std::fs::write(
            &index,
            "<!doctype html><html><head><meta charset=\"utf-8\"><title>Pulse</title></head>\
             <body><h1>Pulse</h1><p>The UI was not built: run <code>npm --prefix ui ci &amp;&amp; \
             npm --prefix ui run build</code>, then rebuild.</p></body></html>",
        )
        .expect("write placeholder ui/dist/index.html");
        println!("cargo:warning=ui/dist was missing: a placeholder page is embedded (build the UI first)");
    }
    println!("cargo:rerun-if-changed=ui/dist");
    tauri_build::try_build(
        tauri_build::Attributes::new()
            .app_manifest(tauri_build::AppManifest::new().commands(pulse_commands())),
    )
    .expect("tauri build script");
}

/// Every command the UI may invoke; each gets an `allow-…` permission that
/// `capabilities/main.json` grants explicitly.
fn pulse_commands() -> &'static [&'static str] {
    &[
        "bootstrap",
        "bootstrap_more",
        "startup_marks",
        "painted",
        "perform",
        "approval_steps",
        "optimistic",
        "retry_now",
        "say",
        "system_idle_ms",
        "get_settings",
        "save_settings",
        "login",
        "logout",
        "discard_queued",
        "set_token",
        "pause_notifications",
        "mark_read",
        "check_updates",
        "install_update",
    ]
}
