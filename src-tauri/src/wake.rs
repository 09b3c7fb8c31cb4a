//! Sleep and network signals from the OS, as session nudges
//! ([`pulse_core::session::Nudge`]): after a wake the socket is likely a zombie,
//! and after a network change it may run on a route that is gone, so the session
//! reconnects at once instead of waiting for its dead-link timer.
//!
//! Linux (this module's code): the system bus (D-Bus), three signals, each with a
//! match rule of its own so that nothing else is delivered:
//! - logind, `org.freedesktop.login1.Manager.PrepareForSleep(b)` on
//!   `/org/freedesktop/login1`: `false` (waking up) is [`Nudge::Wake`]; `true`
//!   (going to sleep) is nothing;
//! - NetworkManager, `org.freedesktop.NetworkManager.StateChanged(u)` on
//!   `/org/freedesktop/NetworkManager`: a connected state (`NM_STATE_CONNECTED_*`,
//!   50 and above) is [`Nudge::Network`]; disconnected and connecting are nothing;
//! - systemd-networkd, `org.freedesktop.DBus.Properties.PropertiesChanged` on
//!   `/org/freedesktop/network1` for `org.freedesktop.network1.Manager` with an
//!   `OperationalState` of `routable` or `degraded`: [`Nudge::Network`].
//!
//! A signal with a body of another shape (a misbehaving or hostile sender on the
//! bus) is logged and ignored; the listener keeps going. No system bus (a
//! container, a minimal session) means no listener, logged once: the session
//! still notices a dead link by its own timers.
//!
//! Other OSes: [`run`] is compiled there too and only logs that no listener
//! exists. Where their signals are:
//! - macOS: `NSWorkspaceDidWakeNotification` (NSWorkspace's notification centre)
//!   and `SCNetworkReachability` / `nw_path_monitor` for network changes;
//! - Windows: `WM_POWERBROADCAST` with `PBT_APMRESUMEAUTOMATIC` (or
//!   `PowerRegisterSuspendResumeNotification`) and `NotifyAddrChange` /
//!   `NotifyNetworkConnectivityHintChange`.
//!
//! They would call [`crate::shell::Shell::nudge`] like the Linux listener; they are
//! not written yet.

use pulse_core::session::Nudge;

/// The interface and member of each signal listened to.
pub const LOGIND: (&str, &str, &str) = (
    "/org/freedesktop/login1",
    "org.freedesktop.login1.Manager",
    "PrepareForSleep",
);
/// NetworkManager's state signal.
pub const NETWORK_MANAGER: (&str, &str, &str) = (
    "/org/freedesktop/NetworkManager",
    "org.freedesktop.NetworkManager",
    "StateChanged",
);
/// systemd-networkd's property changes.
pub const NETWORKD: (&str, &str, &str) = (
    "/org/freedesktop/network1",
    "org.freedesktop.DBus.Properties",
    "PropertiesChanged",
);

/// `NM_STATE_CONNECTED_LOCAL`: the lowest of NetworkManager's connected states.
const NM_CONNECTED_LOCAL: u32 = 50;

#[cfg(target_os = "linux")]
mod linux {
    use super::*;
    use futures_util::StreamExt;
    use std::collections::HashMap;
    use zbus::message::Type;
    use zbus::{Connection, MatchRule, Message, MessageStream, OwnedVariant};

    /// The signals of one bus connection, subscribed ([`Signals::subscribe`]).
    pub struct Signals {
        streams: futures_util::stream::SelectAll<MessageStream>,
    }

    impl Signals {
        /// Subscribe to the three signals on `conn`. When this returns, the bus has
        /// taken the match rules: a signal emitted after it is delivered.
        pub async fn subscribe(conn: &Connection) -> zbus::Result<Signals> {
            let mut streams = futures_util::stream::SelectAll::new();
            for (path, interface, member) in [LOGIND, NETWORK_MANAGER, NETWORKD] {
                let rule = MatchRule::builder()
                    .msg_type(Type::Signal)
                    .path(path)
                    .interface(interface)
                    .member(member)
                    .build()?;
                streams.push(MessageStream::for_match_rule(rule, conn, None).await?);
            }
            Ok(Signals { streams })
        }

        /// The next nudge; `None` once the bus connection is gone. Signals that
        /// mean nothing (going to sleep, disconnected) or of another shape are
        /// skipped.
        pub async fn next(&mut self) -> Option<Nudge> {
            while let Some(msg) = self.streams.next().await {
                match msg {
                    Ok(msg) => {
                        if let Some(n) = nudge_for(&msg) {
                            return Some(n);
                        }
                    }
                    Err(e) => tracing::warn!(error = %e, "unreadable D-Bus message ignored"),
                }
            }
            None
        }
    }

    /// What a signal means for the session (see the module docs).
    fn nudge_for(msg: &Message) -> Option<Nudge> {
        let header = msg.header();
        let path = header.path()?.as_str();
        let interface = header.interface()?.as_str();
        let member = header.member()?.as_str();
        let body = msg.body();
        let shape = |e: zbus::Error| {
            tracing::warn!(%interface, %member, error = %e, "D-Bus signal of an unexpected shape ignored");
            None
        };
        match (path, interface, member) {
            p if p == LOGIND => match body.deserialize::<bool>() {
                Ok(sleeping) => (!sleeping).then_some(Nudge::Wake),
                Err(e) => shape(e),
            },
            p if p == NETWORK_MANAGER => match body.deserialize::<u32>() {
                Ok(state) => (state >= NM_CONNECTED_LOCAL).then_some(Nudge::Network),
                Err(e) => shape(e),
            },
            p if p == NETWORKD => {
                match body.deserialize::<(String, HashMap<String, OwnedVariant>, Vec<String>)>() {
                    Ok((iface, changed, _)) if iface == "org.freedesktop.network1.Manager" => {
                        let state = changed
                            .get("OperationalState")
                            .and_then(|v| String::try_from(v.clone()).ok());
                        matches!(state.as_deref(), Some("routable" | "degraded"))
                            .then_some(Nudge::Network)
                    }
                    Ok(_) => None,
                    Err(e) => shape(e),
                }
            }
            _ => None,
        }
    }
}

#[cfg(target_os = "linux")]
pub use linux::Signals;

/// Listen to the OS's sleep and network signals for as long as the app runs,
/// nudging `shell`'s session on each. Linux: the system bus; elsewhere a log
/// line (see the module docs).
pub async fn run(shell: std::sync::Arc<crate::shell::Shell>) {
    #[cfg(target_os = "linux")]
    {
        let conn = match zbus::Connection::system().await {
            Ok(c) => c,
            Err(e) => {
                tracing::info!(error = %e, "no system bus: no sleep or network signals");
                return;
            }
        };
        let mut signals = match Signals::subscribe(&conn).await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "sleep and network signals unavailable");
                return;
            }
        };
        tracing::info!("listening for sleep and network signals");
        while let Some(why) = signals.next().await {
            shell.nudge(why).await;
        }
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = shell;
        tracing::info!("no sleep or network listener on this OS yet");
    }
}
