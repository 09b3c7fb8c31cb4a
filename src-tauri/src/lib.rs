//! The Pulse desktop shell: thin Tauri commands over `pulse-core`.

/// Start the app (blocks until it quits).
pub fn run() {
    tauri::Builder::default()
        .run(tauri::generate_context!())
        .expect("error while running Pulse");
}
