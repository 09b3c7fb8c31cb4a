//! The Pulse desktop shell: thin Tauri commands over `pulse-core`.
//!
//! - [`shell`]: which server, its cache and session, the demo gateway, the bridge of
//!   app events to the UI and tray;
//! - [`commands`]: what the UI invokes (each a few lines over the shell);
//! - [`dto`]: the IPC types, from which `ui/src/lib/generated/types.ts` is generated;
//! - [`tray`], [`notifier`], [`keyring_store`], [`deeplink`], [`paths`]: the OS edges;
//! - [`webview`]: the WebKitGTK settings that keep the web process small;
//! - [`startup`]: the start-up phase times of `PULSE_STARTUP_TRACE=1`;
//! - [`latency`]: the live updates' latency marks of `PULSE_LATENCY_TRACE=1`.
//! - [`memory`]: the allocator settings that keep the `pulse` process small.
//!
//! Invariants: the first paint reads the local cache before any network (the cache is
//! opened while the window starts, not before; the network, the tray and the
//! desktop's registration of `pulse://` start after the page painted,
//! [`startup::AfterPaint`]); credentials
//! live only in the OS keyring (or in memory when there is none); closing the window
//! keeps Pulse running in the tray, and only "Quit" ends it.

use std::sync::Arc;

use tauri::{AppHandle, Emitter, Manager, Runtime, WindowEvent};

pub mod commands;
pub mod deeplink;
pub mod dto;
pub mod idle;
pub mod keyring_store;
pub mod latency;
pub mod memory;
pub mod notifier;
pub mod paths;
pub mod shell;
pub mod startup;
pub mod tray;
pub mod updates;
pub mod wake;
pub mod webview;

use crate::keyring_store::{KeyringCredentials, KeyringProbe};
use crate::paths::Paths;
use crate::shell::{EnvOverrides, Hooks, Shell};
use pulse_core::app::Counts;

/// The label of the main window.
pub const MAIN_WINDOW: &str = "main";

/// Every command, for `Builder::invoke_handler`.
pub fn handler<R: Runtime>() -> impl Fn(tauri::ipc::Invoke<R>) -> bool + Send + Sync + 'static {
    tauri::generate_handler![
        commands::bootstrap,
        commands::bootstrap_more,
        commands::startup_marks,
        commands::painted,
        commands::perform,
        commands::approval_steps,
        commands::optimistic,
        commands::retry_now,
        commands::say,
        commands::system_idle_ms,
        commands::get_settings,
        commands::save_settings,
        commands::login,
        commands::logout,
        commands::discard_queued,
        commands::set_token,
        commands::pause_notifications,
        commands::mark_read,
        commands::check_updates,
        commands::install_update,
    ]
}

/// [`Hooks`] over a Tauri app: events to the webview, counts to the tray.
pub struct TauriHooks<R: Runtime> {
    app: AppHandle<R>,
}

impl<R: Runtime> TauriHooks<R> {
    /// Hooks for `app`.
    pub fn new(app: AppHandle<R>) -> Self {
        TauriHooks { app }
    }
}

impl<R: Runtime> Hooks for TauriHooks<R> {
    fn emit(&self, event: &str, payload: serde_json::Value) {
        if let Err(e) = self.app.emit(event, payload) {
            tracing::debug!(%event, error = %e, "event not delivered");
        }
    }

    fn counts(&self, counts: Counts, paused: bool) {
        tray::update(&self.app, &counts, paused);
    }

    fn show_window(&self) {
        show_main_window(&self.app);
    }

    fn set_autostart(&self, on: bool) -> Result<(), String> {
        let Some(manager) = self
            .app
            .try_state::<tauri_plugin_autostart::AutoLaunchManager>()
        else {
            return Err("start at login is not available".into());
        };
        if on {
            manager.enable().map_err(|e| e.to_string())
        } else {
            manager.disable().map_err(|e| e.to_string())
        }
    }
}

/// Show, unminimise and focus the main window.
pub fn show_main_window<R: Runtime>(app: &AppHandle<R>) {
    if let Some(w) = app.get_webview_window(MAIN_WINDOW) {
        let _ = w.show();
        let _ = w.unminimize();
        let _ = w.set_focus();
    }
}

/// Quit for real (the tray's Quit): stop the session and the demo gateway first.
pub fn quit<R: Runtime>(app: &AppHandle<R>) {
    if let Some(shell) = app.try_state::<Arc<Shell>>() {
        let shell = shell.inner().clone();
        tauri::async_runtime::block_on(async move {
            let _ = tokio::time::timeout(std::time::Duration::from_secs(3), shell.shutdown()).await;
        });
    }
    app.exit(0);
}

/// Create the shell and open its cache before returning (tests; the app itself opens
/// the cache beside the webview's start, see [`new_shell`]).
pub fn install_shell<R: Runtime>(
    app: &AppHandle<R>,
    paths: Paths,
    env: EnvOverrides,
    credentials: Arc<dyn pulse_core::credentials::CredentialStore>,
    keyring: Result<(), pulse_core::credentials::CredentialError>,
) -> Arc<Shell> {
    let shell = new_shell(app, paths, env, credentials, keyring);
    tauri::async_runtime::block_on(shell.prepare());
    shell
}

/// Create the shell without opening its cache yet. The cache is opened by the first
/// of `Shell::prepare`, the UI's bootstrap (which waits for it) or the network's
/// start; `run` opens it on the async runtime while GTK and WebKit start the
/// window, so the first paint does not wait for both in series.
pub fn new_shell<R: Runtime>(
    app: &AppHandle<R>,
    paths: Paths,
    env: EnvOverrides,
    credentials: Arc<dyn pulse_core::credentials::CredentialStore>,
    keyring: impl Into<KeyringProbe>,
) -> Arc<Shell> {
    let (reply_tx, reply_rx) = std::sync::mpsc::channel();
    let shell = Shell::new(
        paths,
        env,
        Arc::new(TauriHooks::new(app.clone())),
        credentials,
        keyring,
        reply_tx,
    );
    app.manage(shell.clone());
    let replies = shell.clone();
    std::thread::Builder::new()
        .name("notification-replies".into())
        .spawn(move || {
            for reply in reply_rx {
                let s = replies.clone();
                tauri::async_runtime::spawn(async move { s.on_reply(reply).await });
            }
        })
        .expect("spawn a thread");
    shell
}

/// The shell's log filter: `user` (`PULSE_LOG`, else `RUST_LOG`, else
/// `info`), then the caps on secret-bearing targets
/// (`pulse_protocol::SECRET_BEARING_LOG_TARGETS`), which no user filter can lift.
pub fn log_filter(user: Option<&str>) -> tracing_subscriber::EnvFilter {
    use tracing_subscriber::EnvFilter;
    let filter = user
        .and_then(|u| EnvFilter::try_new(u).ok())
        .unwrap_or_else(|| EnvFilter::new("info,tao=warn,wry=warn"));
    pulse_core::protocol::log_directives()
        .filter_map(|d| d.parse().ok())
        .fold(filter, |f, d| f.add_directive(d))
}

fn init_logging() {
    let user = std::env::var("PULSE_LOG")
        .or_else(|_| std::env::var("RUST_LOG"))
        .ok();
    let filter = log_filter(user.as_deref());
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

/// Environment variable counting this process's relaunches (see [`relaunch_when_owner_gone`]).
const RELAUNCH_ENV: &str = "PULSE_RELAUNCH_ATTEMPT";
/// How many times a start that met a quitting instance is retried.
const RELAUNCH_ATTEMPTS: u32 = 20;

/// Whether a start failed because the single-instance owner it forwarded its
/// arguments to was already quitting: it held the name but no longer answered.
/// The single-instance plugin reports this only as text.
fn is_forward_to_quitting_owner(error: &str) -> bool {
    error.contains("forward arguments to the running instance")
}

/// A start that met an instance in the moment it quits (it still owns the
/// single-instance name but no longer answers) starts again once the name is
/// free, instead of failing: the same arguments, a bounded number of times, a
/// short pause between tries. Returns only when the attempts are used up or the
/// new start cannot be made.
fn relaunch_when_owner_gone() {
    let attempt: u32 = std::env::var(RELAUNCH_ENV)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    if attempt >= RELAUNCH_ATTEMPTS {
        return;
    }
    let Ok(exe) = std::env::current_exe() else {
        return;
    };
    tracing::info!(attempt, "the running instance is quitting; starting again");
    std::thread::sleep(std::time::Duration::from_millis(
        100 + 50 * u64::from(attempt),
    ));
    let mut again = std::process::Command::new(exe);
    again
        .args(std::env::args_os().skip(1))
        .env(RELAUNCH_ENV, (attempt + 1).to_string());
    // This process becomes the new start (same pid, so a launcher waiting on it
    // sees the app); elsewhere the new start replaces it.
    #[cfg(unix)]
    {
        use std::os::unix::process::CommandExt;
        let e = again.exec();
        eprintln!("Pulse could not start again: {e}");
    }
    #[cfg(not(unix))]
    match again.spawn() {
        Ok(_) => std::process::exit(0),
        Err(e) => eprintln!("Pulse could not start again: {e}"),
    }
}

/// How long the deferred start (the tray, see [`startup::AfterPaint`]) waits for the
/// page to say it painted before it runs anyway.
const AFTER_PAINT_FALLBACK: std::time::Duration = std::time::Duration::from_secs(5);

/// Build the tray (on the main thread) with the shell's counts, and redraw its
/// text each minute: the oldest waiting approval's age grows with no event.
fn start_tray<R: Runtime>(handle: &AppHandle<R>, shell: &Arc<Shell>) {
    match tray::build(handle) {
        Ok(_) => {
            tray::update(handle, &shell.counts(), shell.paused());
            let (h, s) = (handle.clone(), shell.clone());
            let _ = std::thread::Builder::new()
                .name("tray-age".into())
                .spawn(move || loop {
                    std::thread::sleep(std::time::Duration::from_secs(60));
                    tray::update(&h, &s.counts(), s.paused());
                });
        }
        Err(e) => tracing::warn!(error = %e, "no tray icon"),
    }
    startup::mark("tray built");
}

/// Start the app (blocks until it quits).
pub fn run() {
    startup::mark("run");
    memory::at_start();
    webview::web_process_env();
    init_logging();
    // An enterprise's private CA, trusted beside the public roots.
    if let Some(ca) = std::env::var_os("PULSE_CA_FILE") {
        if let Err(e) = pulse_core::transport::tls::trust_ca_file(std::path::Path::new(&ca)) {
            tracing::error!(error = %e, "PULSE_CA_FILE cannot be used");
        }
    }
    let args: Vec<String> = std::env::args().collect();
    let hidden = args.iter().any(|a| a == "--hidden");
    let initial = deeplink::from_args(&args);
    // Asking the OS keyring whether it answers is a D-Bus round trip (and a timeout
    // where there is no Secret Service): asked beside GTK's and the plugins' start,
    // and waited for only where the answer is first needed (a sign-in, the
    // account's view), never before the window.
    let keyring = KeyringProbe::spawn(KeyringCredentials::probe);
    let after_paint = Arc::new(startup::AfterPaint::new());
    startup::mark("builder");
    let app = tauri::Builder::default()
        .plugin(tauri_plugin_single_instance::init(|app, argv, _cwd| {
            tracing::info!("second instance started; focusing this one");
            match deeplink::from_args(&argv) {
                Some(target) => {
                    if let Some(shell) = app.try_state::<Arc<Shell>>() {
                        shell.navigate(target);
                    }
                }
                None => show_main_window(app),
            }
        }))
        .plugin(tauri_plugin_deep_link::init())
        .plugin(
            tauri_plugin_window_state::Builder::default()
                .with_state_flags(
                    tauri_plugin_window_state::StateFlags::all()
                        & !tauri_plugin_window_state::StateFlags::VISIBLE,
                )
                .build(),
        )
        .plugin(tauri_plugin_autostart::init(
            tauri_plugin_autostart::MacosLauncher::LaunchAgent,
            Some(vec!["--hidden"]),
        ))
        .plugin(tauri_plugin_opener::init())
        .plugin(tauri_plugin_updater::Builder::new().build())
        .manage(updates::Pending::default())
        .manage(after_paint.clone())
        .invoke_handler(handler())
        .setup(move |app| {
            startup::mark("setup (window made, plugins initialised)");
            let handle = app.handle().clone();
            webview::tune(&handle);
            startup::mark("webview tuned");
            let shell = new_shell(
                &handle,
                Paths::from_env(),
                EnvOverrides::from_env(),
                Arc::new(KeyringCredentials),
                keyring,
            );
            if let Some(target) = initial.clone() {
                shell.open_at_start(target);
            }
            startup::mark("shell created");
            // The OS edges the first screen does not need start after it painted
            // (startup::AfterPaint): the tray, and the desktop's registration of
            // pulse://. Links are listened for at once.
            let (h, s) = (handle.clone(), shell.clone());
            after_paint.add(move || {
                let (h2, s2) = (h.clone(), s);
                let _ = h.run_on_main_thread(move || start_tray(&h2, &s2));
            });
            {
                use tauri_plugin_deep_link::DeepLinkExt;
                #[cfg(target_os = "linux")]
                if std::env::var_os("PULSE_NO_SCHEME_REGISTRATION").is_none() {
                    // It writes a .desktop file and runs xdg-mime: off the main thread.
                    let h = handle.clone();
                    after_paint.add(move || {
                        let _ = std::thread::Builder::new()
                            .name("scheme-registration".into())
                            .spawn(move || {
                                if let Err(e) = h.deep_link().register_all() {
                                    tracing::debug!(error = %e, "pulse:// not registered with the desktop");
                                }
                            });
                    });
                }
                let s = shell.clone();
                handle.deep_link().on_open_url(move |event| {
                    if let Some(t) = event
                        .urls()
                        .iter()
                        .find_map(|u| deeplink::parse(u.as_str()))
                    {
                        s.navigate(t);
                    }
                });
            }
            if hidden {
                if let Some(w) = handle.get_webview_window(MAIN_WINDOW) {
                    let _ = w.hide();
                }
                // No window to paint: the tray is all there is, at once.
                after_paint.painted();
            } else {
                after_paint.fallback_after(AFTER_PAINT_FALLBACK);
            }
            // The cache is opened and read beside the window's start (the first
            // bootstrap waits for it); the network (a session's sign-in, its
            // snapshot or replay written to the cache) after the first paint, so
            // that it does not take the cores from it.
            let (s, h) = (shell.clone(), handle.clone());
            tauri::async_runtime::spawn(async move {
                s.prepare().await;
                startup::mark("cache opened and read");
                // (A tray not built yet shows these counts when it is built.)
                tray::update(&h, &s.counts(), s.paused());
            });
            let s = shell.clone();
            after_paint.add(move || {
                tauri::async_runtime::spawn(async move { s.start_network().await });
            });
            // Reconnect at once on a wake from sleep or a network change.
            tauri::async_runtime::spawn(wake::run(shell.clone()));
            startup::mark("setup done");
            Ok(())
        })
        .on_page_load(|_, payload| {
            if startup::enabled() {
                startup::mark(match payload.event() {
                    tauri::webview::PageLoadEvent::Started => "page load started",
                    tauri::webview::PageLoadEvent::Finished => "page load finished",
                });
            }
        })
        .on_window_event(|window, event| {
            if let WindowEvent::CloseRequested { api, .. } = event {
                if window.label() == MAIN_WINDOW {
                    api.prevent_close();
                    let _ = window.hide();
                }
            }
        })
        .build(tauri::generate_context!());
    let app = match app {
        Ok(app) => app,
        Err(e) => {
            if is_forward_to_quitting_owner(&e.to_string()) {
                relaunch_when_owner_gone();
            }
            eprintln!("Pulse could not start: {e}");
            std::process::exit(1);
        }
    };
    startup::mark("app built (window and webview made)");
    app.run(|app, event| {
        if let tauri::RunEvent::Ready = &event {
            startup::mark("event loop ready");
        }
        if let tauri::RunEvent::ExitRequested {
            code: None, api, ..
        } = &event
        {
            // Last window closed: stay in the tray.
            api.prevent_exit();
            let _ = app;
        }
    });
}
