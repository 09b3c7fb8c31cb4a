#!/usr/bin/env bash
# Runs inside `dbus-run-session` (see run.sh): a notification daemon, a secret
# service and a D-Bus monitor, then the WebDriver test. Its last line is the test's.
set -uo pipefail
# Notify and CloseNotification calls, and the ids the daemon answers with (for the
# action tests and the closed-notification check).
dbus-monitor --session "interface='org.freedesktop.Notifications',member='Notify'" \
  "interface='org.freedesktop.Notifications',member='CloseNotification'" \
  "type='method_return'" >"$PULSE_DBUS_LOG" 2>&1 &
MON=$!
dunst >"$PULSE_E2E_OUT/dunst.log" 2>&1 &
DUNST=$!
# An unlocked login keyring, so the app finds a secret service.
echo -n "pulse-e2e" | gnome-keyring-daemon --unlock --components=secrets >"$PULSE_E2E_OUT/keyring.log" 2>&1
for _ in $(seq 50); do
  dbus-send --session --print-reply --dest=org.freedesktop.DBus / org.freedesktop.DBus.NameHasOwner string:org.freedesktop.Notifications 2>/dev/null | grep -q true && break
  sleep 0.1
done
# Bounded: a hang fails the run instead of holding CI (about 1 min when it passes).
timeout --kill-after=60 "${PULSE_E2E_TIMEOUT:-600}" "$PULSE_E2E_PY" "$(dirname "$0")/e2e.py"
status=$?
kill "$MON" "$DUNST" 2>/dev/null
pkill -P $$ 2>/dev/null
exit "$status"
