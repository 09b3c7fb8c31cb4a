//! The tray icon: counts of pending approvals and open escalations (as
//! [`Counts`] has them: of a stats-only server, from its stats blocks) and tasks in
//! progress, and a menu
//! (Open, Pause notifications 1 h / Resume, Quit).

use std::sync::Arc;

use tauri::menu::{Menu, MenuItem, PredefinedMenuItem};
use tauri::tray::{MouseButton, MouseButtonState, TrayIcon, TrayIconBuilder, TrayIconEvent};
use tauri::{AppHandle, Manager, Runtime};

use crate::shell::Shell;
use pulse_core::app::Counts;

/// Id of the tray icon.
pub const TRAY_ID: &str = "pulse-tray";

/// How long ago `since_ms` was, for a person: "3 min", "2 h 5 min", "under a minute".
pub fn age(since_ms: i64, now_ms: i64) -> String {
    let min = (now_ms - since_ms).max(0) / 60_000;
    match min {
        0 => "under a minute".to_owned(),
        m if m < 60 => format!("{m} min"),
        m => format!("{} h {} min", m / 60, m % 60),
    }
}

/// The tooltip / label text for `counts` at `now_ms` (the oldest waiting
/// approval's age is in the tooltip).
pub fn describe(counts: &Counts, paused: bool, now_ms: i64) -> (String, String) {
    let a = counts.pending_approvals;
    let e = counts.open_escalations;
    let plural = |n: u64, one: &str, many: &str| format!("{n} {}", if n == 1 { one } else { many });
    let mut tooltip = format!(
        "Pulse — {}, {}",
        plural(a, "pending approval", "pending approvals"),
        plural(e, "open escalation", "open escalations")
    );
    if counts.tasks_in_progress > 0 {
        tooltip.push_str(&format!(
            ", {}",
            plural(
                counts.tasks_in_progress,
                "task in progress",
                "tasks in progress"
            )
        ));
    }
    if let (Some(since), true) = (counts.oldest_pending_since_ms, a > 0) {
        tooltip.push_str(&format!(" (oldest waiting {})", age(since, now_ms)));
    }
    if paused {
        tooltip.push_str(" (notifications paused)");
    }
    let label = if a + e == 0 {
        String::new()
    } else {
        format!("{a} · {e}")
    };
    (tooltip, label)
}

/// Build the tray icon. Works with no tray host (the icon is simply not shown).
pub fn build<R: Runtime>(app: &AppHandle<R>) -> tauri::Result<TrayIcon<R>> {
    let open = MenuItem::with_id(app, "open", "Open Pulse", true, None::<&str>)?;
    let counts = MenuItem::with_id(app, "counts", "No pending approvals", false, None::<&str>)?;
    let pause = MenuItem::with_id(
        app,
        "pause",
        "Pause notifications for 1 hour",
        true,
        None::<&str>,
    )?;
    let quit = MenuItem::with_id(app, "quit", "Quit Pulse", true, None::<&str>)?;
    let sep = PredefinedMenuItem::separator(app)?;
    let sep2 = PredefinedMenuItem::separator(app)?;
    let menu = Menu::with_items(app, &[&open, &counts, &sep, &pause, &sep2, &quit])?;
    let icon = tauri::image::Image::from_bytes(include_bytes!("../../icons/tray.png"))?;
    app.manage(TrayMenu { counts, pause });
    TrayIconBuilder::with_id(TRAY_ID)
        .icon(icon)
        .tooltip("Pulse")
        .menu(&menu)
        .show_menu_on_left_click(false)
        .on_menu_event(|app, event| match event.id().as_ref() {
            "open" => crate::show_main_window(app),
            "pause" => {
                let shell = app.state::<Arc<Shell>>().inner().clone();
                tauri::async_runtime::spawn(async move {
                    let minutes = if shell.paused() { None } else { Some(60) };
                    if let Err(e) = shell.pause_notifications(minutes).await {
                        tracing::warn!(error = %e, "pause from the tray failed");
                    }
                });
            }
            "quit" => crate::quit(app),
            _ => {}
        })
        .on_tray_icon_event(|tray, event| {
            if let TrayIconEvent::Click {
                button: MouseButton::Left,
                button_state: MouseButtonState::Up,
                ..
            } = event
            {
                crate::show_main_window(tray.app_handle());
            }
        })
        .build(app)
}

/// Menu items whose text follows the state.
pub struct TrayMenu<R: Runtime> {
    counts: MenuItem<R>,
    pause: MenuItem<R>,
}

/// Show `counts` in the tray.
pub fn update<R: Runtime>(app: &AppHandle<R>, counts: &Counts, paused: bool) {
    let (tooltip, label) = describe(counts, paused, pulse_core::now_ms());
    if let Some(tray) = app.tray_by_id(TRAY_ID) {
        let _ = tray.set_tooltip(Some(&tooltip));
        let _ = tray.set_title(if label.is_empty() {
            None
        } else {
            Some(label.as_str())
        });
    }
    if let Some(menu) = app.try_state::<TrayMenu<R>>() {
        let _ = menu.counts.set_text(tooltip.trim_start_matches("Pulse — "));
        let _ = menu.pause.set_text(if paused {
            "Resume notifications"
        } else {
            "Pause notifications for 1 hour"
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tray_text() {
        let c = Counts {
            pending_approvals: 3,
            open_escalations: 1,
            unread_notifications: 0,
            tasks_in_progress: 2,
            oldest_pending_since_ms: None,
            ..Counts::default()
        };
        let (tip, label) = describe(&c, false, 0);
        assert_eq!(
            tip,
            "Pulse — 3 pending approvals, 1 open escalation, 2 tasks in progress"
        );
        assert_eq!(label, "3 · 1");
        let old = Counts {
            oldest_pending_since_ms: Some(1_000),
            ..c
        };
        let (tip, _) = describe(&old, false, 1_000 + 65 * 60_000);
        assert!(tip.ends_with("(oldest waiting 1 h 5 min)"), "{tip}");
        assert_eq!(age(0, 59_000), "under a minute");
        assert_eq!(age(0, 12 * 60_000), "12 min");
        let (tip, label) = describe(&Counts::default(), true, 0);
        assert!(tip.ends_with("(notifications paused)"));
        assert_eq!(label, "");
    }
}
