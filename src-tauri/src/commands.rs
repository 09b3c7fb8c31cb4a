//! The commands the UI invokes: each a few lines over [`Shell`].

use std::sync::Arc;

use pulse_core::session::{ActionOutcome, Intent};
use pulse_core::store::Action;
use pulse_protocol::domain::Object;
use tauri::State;

use crate::dto::{Account, Bootstrap, BootstrapChunk, CommandError, Settings};
use crate::shell::Shell;

type Shared<'a> = State<'a, Arc<Shell>>;

/// Everything the UI paints at start, from the local cache (no network).
#[tauri::command]
pub async fn bootstrap(shell: Shared<'_>) -> Result<Bootstrap, CommandError> {
    crate::startup::mark("bootstrap asked");
    let boot = shell.bootstrap().await;
    crate::startup::mark("bootstrap answered (first piece)");
    // The answer was just built into one value: its pages go back to the OS once it
    // is serialised and sent.
    crate::memory::trim_soon();
    boot
}

/// The next chunk of the bootstrap's stream `stream` (`Bootstrap::more`).
#[tauri::command]
pub async fn bootstrap_more(
    shell: Shared<'_>,
    stream: u64,
) -> Result<BootstrapChunk, CommandError> {
    let chunk = shell.bootstrap_more(stream)?;
    if !chunk.more {
        crate::startup::mark("bootstrap stream: last chunk");
    }
    // Each chunk is one value built and freed too (trims coalesce).
    crate::memory::trim_soon();
    Ok(chunk)
}

/// The page painted its first screen: what waits for it starts now (the tray,
/// pulse://'s registration; `startup::AfterPaint`). Later calls do nothing.
#[tauri::command]
pub fn painted(after: State<'_, Arc<crate::startup::AfterPaint>>) {
    after.painted();
}

/// Phases the page measured (its script's start, the first piece painted, …), each
/// `[name, epoch ms]`, printed with the shell's under `PULSE_STARTUP_TRACE=1`
/// (`Bootstrap::trace`); nothing otherwise. Names are the page's own, cut short.
#[tauri::command]
pub fn startup_marks(marks: Vec<(String, f64)>) {
    for (name, at) in marks.iter().take(32) {
        let name: String = name.chars().filter(|c| !c.is_control()).take(40).collect();
        crate::startup::mark_at_epoch(&format!("ui: {name}"), *at);
    }
}

/// Approve, reject, move a ticket, terminate an agent: sent now or queued.
#[tauri::command]
pub async fn perform(shell: Shared<'_>, action: Action) -> Result<ActionOutcome, CommandError> {
    shell.perform(action).await
}

/// The recent steps of the agent run behind an approval (a LangGraph thread).
#[tauri::command]
pub async fn approval_steps(
    shell: Shared<'_>,
    id: String,
) -> Result<serde_json::Value, CommandError> {
    shell.approval_steps(&id).await
}

/// How the entity an action acts on looks once done (shown at once while it is
/// sent): the server's dialect's answer.
#[tauri::command]
pub async fn optimistic(shell: Shared<'_>, action: Action) -> Result<Object, CommandError> {
    shell.optimistic(&action).await
}

/// Tell the server what the user does (opened a task, presence, typing), where
/// its profile declares it: `false` when it does not (nothing is sent).
#[tauri::command]
pub async fn say(shell: Shared<'_>, intent: Intent, value: String) -> Result<bool, CommandError> {
    Ok(shell.say(intent, &value).await)
}

/// Milliseconds since the last input anywhere on the desktop, for presence; `null`
/// where the platform cannot tell (the UI then uses its own window's input).
#[tauri::command]
pub async fn system_idle_ms() -> Option<u64> {
    tauri::async_runtime::spawn_blocking(crate::idle::system_idle)
        .await
        .ok()
        .flatten()
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Reconnect now (the Retry button).
#[tauri::command]
pub async fn retry_now(shell: Shared<'_>) -> Result<(), CommandError> {
    shell.inner().retry_now().await;
    Ok(())
}

/// The settings.
#[tauri::command]
pub fn get_settings(shell: Shared<'_>) -> Settings {
    shell.settings()
}

/// Save the settings (reconnects if the server changed).
#[tauri::command]
pub async fn save_settings(
    shell: Shared<'_>,
    settings: Settings,
) -> Result<Settings, CommandError> {
    shell.inner().save_settings(settings).await
}

/// Sign in to a saved server; the refresh token goes to the OS keyring.
#[tauri::command]
pub async fn login(
    shell: Shared<'_>,
    server_id: String,
    username: String,
    password: String,
) -> Result<Account, CommandError> {
    shell.inner().login(server_id, username, password).await
}

/// Store (or, empty, forget) a profile server's access token in the OS keyring.
#[tauri::command]
pub async fn set_token(
    shell: Shared<'_>,
    server_id: String,
    token: String,
) -> Result<Account, CommandError> {
    shell.inner().set_token(server_id, token).await
}

/// Sign out of the active server (forgets the stored token); `queued` says what
/// becomes of the actions not yet sent (kept by default).
#[tauri::command]
pub async fn logout(
    shell: Shared<'_>,
    queued: Option<crate::dto::QueuedOnSignOut>,
) -> Result<(), CommandError> {
    shell.inner().logout(queued.unwrap_or_default()).await
}

/// Discard queued actions of the active server's cache by id (another account's,
/// or ones of no known account); answers what is left queued.
#[tauri::command]
pub async fn discard_queued(
    shell: Shared<'_>,
    ids: Vec<u64>,
) -> Result<Vec<pulse_core::store::OutboxEntry>, CommandError> {
    shell.inner().discard_queued(ids).await
}

/// Pause notifications for `minutes`, or resume with `null`.
#[tauri::command]
pub async fn pause_notifications(
    shell: Shared<'_>,
    minutes: Option<u32>,
) -> Result<Settings, CommandError> {
    shell.inner().pause_notifications(minutes).await
}

/// Mark notifications read.
#[tauri::command]
pub fn mark_read(shell: Shared<'_>, keys: Vec<String>) -> Result<(), CommandError> {
    shell.mark_read(keys)
}

/// Check the settings' update endpoint: a newer release is offered only once its
/// signature verified (see [`crate::updates`]).
#[tauri::command]
pub async fn check_updates<R: tauri::Runtime>(
    app: tauri::AppHandle<R>,
    shell: Shared<'_>,
    pending: State<'_, crate::updates::Pending>,
) -> Result<crate::updates::UpdateStatus, CommandError> {
    let endpoint = shell.settings().updates.endpoint;
    let (status, verified) = crate::updates::check(&app, endpoint.as_deref()).await?;
    pending.set(verified);
    Ok(status)
}

/// Install the verified update of the last check, where Pulse may install it itself.
#[tauri::command]
pub async fn install_update(
    pending: State<'_, crate::updates::Pending>,
) -> Result<(), CommandError> {
    pending.install()
}
