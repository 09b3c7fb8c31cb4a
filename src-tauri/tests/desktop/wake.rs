//! The sleep and network listener (`pulse_desktop::wake`) against a real D-Bus
//! daemon: a private bus started for the test (`dbus-daemon --session`), on which
//! the test emits logind's, NetworkManager's and systemd-networkd's signals the
//! way those services do, and garbage of the same names.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

use pulse_core::session::Nudge;
use pulse_desktop::wake::{Signals, LOGIND, NETWORKD, NETWORK_MANAGER};
use zbus::Variant as Value;

/// A private bus, killed on drop.
struct Bus {
    child: Child,
    address: String,
}

impl Drop for Bus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn private_bus(dir: &std::path::Path) -> Bus {
    let mut child = Command::new("dbus-daemon")
        .args(["--session", "--nofork", "--print-address=1"])
        .arg(format!("--address=unix:dir={}", dir.display()))
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("dbus-daemon is installed");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .expect("the bus prints its address");
    let address = line.trim().to_owned();
    assert!(address.starts_with("unix:"), "{address:?}");
    Bus { child, address }
}

async fn connect(address: &str) -> zbus::Connection {
    zbus::connection::Builder::address(address)
        .build()
        .await
        .unwrap()
}

async fn emit<B>(conn: &zbus::Connection, (path, iface, member): (&str, &str, &str), body: &B)
where
    B: serde::Serialize + zbus::zvariant::DynamicType,
{
    conn.emit_signal(None::<&str>, path, iface, member, body)
        .await
        .unwrap();
}

/// Each recv follows the emissions of one signal only; signals of one sender on
/// one match rule arrive in order, so a signal that wrongly nudged would be the
/// one received, and the next check would see the wrong kind. The last wake is a
/// sentinel: nothing stray is queued before it.
#[tokio::test]
async fn wake_and_network_signals_on_a_real_bus_nudge_and_nothing_else_does() {
    let dir = tempfile::tempdir().unwrap();
    let bus = private_bus(dir.path());
    let listener = connect(&bus.address).await;
    let mut signals = Signals::subscribe(&listener).await.unwrap();
    let services = connect(&bus.address).await;

    // Going to sleep is nothing; a body of another shape is ignored; waking is a wake.
    emit(&services, LOGIND, &(true,)).await;
    emit(&services, LOGIND, &("garbage", 7u32)).await;
    emit(&services, LOGIND, &(false,)).await;
    assert_eq!(signals.next().await, Some(Nudge::Wake));

    // NetworkManager: disconnected (20) and connecting (40) are nothing, a string
    // is garbage, connected-global (70) is a network change.
    emit(&services, NETWORK_MANAGER, &(20u32,)).await;
    emit(&services, NETWORK_MANAGER, &(40u32,)).await;
    emit(&services, NETWORK_MANAGER, &("70",)).await;
    emit(&services, NETWORK_MANAGER, &(70u32,)).await;
    assert_eq!(signals.next().await, Some(Nudge::Network));

    // systemd-networkd: "off", another interface's change, then "routable".
    let props = |state: &'static str| {
        let mut m: HashMap<&str, Value<'_>> = HashMap::new();
        m.insert("OperationalState", Value::from(state));
        m
    };
    let none: Vec<&str> = Vec::new();
    emit(
        &services,
        NETWORKD,
        &(
            "org.freedesktop.network1.Manager",
            props("off"),
            none.clone(),
        ),
    )
    .await;
    emit(
        &services,
        NETWORKD,
        &(
            "org.freedesktop.network1.Link",
            props("routable"),
            none.clone(),
        ),
    )
    .await;
    emit(&services, NETWORKD, &(12u8,)).await;
    emit(
        &services,
        NETWORKD,
        &("org.freedesktop.network1.Manager", props("routable"), none),
    )
    .await;
    assert_eq!(signals.next().await, Some(Nudge::Network));

    // A signal of the same member on another path or interface is not listened to.
    emit(
        &services,
        ("/org/example", "org.example.Fake", "PrepareForSleep"),
        &(false,),
    )
    .await;
    emit(&services, LOGIND, &(false,)).await;
    assert_eq!(signals.next().await, Some(Nudge::Wake), "sentinel");

    // The bus going away ends the listener.
    drop(bus);
    assert_eq!(signals.next().await, None);
}
