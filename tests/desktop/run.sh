#!/usr/bin/env bash
# End-to-end test of the desktop app: the built `pulse` under Xvfb, driven through
# WebDriver (tauri-driver + WebKitWebDriver) against a real pulse-gateway on port 0,
# with a session D-Bus, a notification daemon (dunst, observed with dbus-monitor) and
# a secret service (gnome-keyring). Screenshots go to tests/out/desktop/ and, when the
# run passes, to docs/screenshots/.
#
#   tests/desktop/run.sh
#
# Env: CARGO_TARGET_DIR (default /var/tmp/pulse-target), PULSE_E2E_OUT (default
# tests/out/desktop), PULSE_DESKTOP_VENV (default /var/tmp/pulse-desktop-venv),
# PULSE_E2E_SKIP_BUILD=1 to reuse the built binaries and UI; PULSE_E2E_ONLY=TEXT to run
# only the standalone checks whose name contains TEXT (e.g. `tokens at trace level`;
# no LangGraph server is set up then).
# Last line: `N passed, N failed`; exit status non-zero on any failure.
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT"
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/var/tmp/pulse-target}
OUT=${PULSE_E2E_OUT:-$ROOT/tests/out/desktop}
VENV=${PULSE_DESKTOP_VENV:-/var/tmp/pulse-desktop-venv}

die() {
  echo "tests/desktop/run.sh: $*" >&2
  echo "0 passed, 1 failed"
  exit 1
}
step() { printf '\n--> %s\n' "$*"; }

step "system packages"
"$ROOT/scripts/install-desktop-deps.sh" || die "could not install the system packages"

step "tauri-driver"
export PATH="$HOME/.cargo/bin:$PATH"
if ! command -v tauri-driver >/dev/null; then
  cargo install tauri-driver --locked --version '^2' || die "could not install tauri-driver"
fi

step "WebDriver client (selenium, pinned)"
if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV" || die "could not create $VENV"
fi
"$VENV/bin/pip" install --quiet --disable-pip-version-check -r "$ROOT/tests/desktop/requirements.txt" || die "pip install failed"
# axe-core, injected into the app's window by e2e.py (pinned in package-lock.json).
[ -f "$ROOT/tests/desktop/node_modules/axe-core/axe.min.js" ] \
  || (cd "$ROOT/tests/desktop" && npm ci --no-audit --no-fund --loglevel=error) || die "npm ci (axe-core) failed"

LG_VENV=${PULSE_LANGGRAPH_VENV:-/var/tmp/pulse-langgraph-venv}
if [ -z "${PULSE_E2E_ONLY:-}" ]; then
  step "langgraph dev server (pinned requirements)"
  timeout 600 "$ROOT/tests/peers/langgraph/setup.sh" "$LG_VENV" || die "could not install the LangGraph server"
fi

if [ -z "${PULSE_E2E_SKIP_BUILD:-}" ]; then
  step "build the UI"
  (cd ui && { [ -d node_modules ] || npm ci --no-audit --no-fund --loglevel=error; } && npm run build --silent) || die "UI build failed"
  step "build pulse and pulse-gateway"
  cargo build -p pulse-desktop -p pulse-gateway --bins || die "cargo build failed"
fi
APP="$CARGO_TARGET_DIR/debug/pulse"
GATEWAY="$CARGO_TARGET_DIR/debug/pulse-gateway"
[ -x "$APP" ] && [ -x "$GATEWAY" ] || die "missing $APP or $GATEWAY"

rm -rf "$OUT" && mkdir -p "$OUT"
TMP=$(mktemp -d /tmp/pulse-desktop-e2e.XXXXXX)
mkdir -p "$TMP/home" "$TMP/config" "$TMP/data" "$TMP/cache" "$TMP/runtime"
chmod 700 "$TMP/runtime"

# A free X display.
n=90
while [ -e "/tmp/.X11-unix/X$n" ] || [ -e "/tmp/.X$n-lock" ]; do n=$((n + 1)); done
Xvfb ":$n" -screen 0 1280x800x24 -nolisten tcp >"$OUT/xvfb.log" 2>&1 &
XVFB=$!
cleanup() {
  kill "$XVFB" 2>/dev/null
  wait "$XVFB" 2>/dev/null
  rm -rf "$TMP"
}
trap cleanup EXIT
for _ in $(seq 50); do [ -e "/tmp/.X11-unix/X$n" ] && break; sleep 0.1; done
[ -e "/tmp/.X11-unix/X$n" ] || die "Xvfb did not start"

step "end-to-end (display :$n)"
env DISPLAY=":$n" HOME="$TMP/home" XDG_CONFIG_HOME="$TMP/config" XDG_DATA_HOME="$TMP/data" \
  XDG_CACHE_HOME="$TMP/cache" XDG_RUNTIME_DIR="$TMP/runtime" \
  PULSE_APP_BIN="$APP" PULSE_GATEWAY_BIN="$GATEWAY" PULSE_E2E_OUT="$OUT" PULSE_E2E_TMP="$TMP" \
  PULSE_DBUS_LOG="$OUT/dbus-notifications.log" PULSE_E2E_PY="$VENV/bin/python" \
  PULSE_SCREENSHOTS="$OUT/screenshots" PULSE_LANGGRAPH_BIN="$LG_VENV/bin/langgraph" \
  dbus-run-session -- bash "$ROOT/tests/desktop/session.sh" 2>"$OUT/session-stderr.log" | tee "$OUT/e2e.log"
status=${PIPESTATUS[0]}
if ! tail -n 1 "$OUT/e2e.log" | grep -Eq '^[0-9]+ passed, [0-9]+ failed$'; then
  tail -n 30 "$OUT/session-stderr.log" >&2
  echo "0 passed, 1 failed"
  exit 1
fi
if [ "$status" -eq 0 ] && [ -d "$OUT/screenshots" ]; then
  mkdir -p "$ROOT/docs/screenshots"
  cp "$OUT"/screenshots/*.png "$ROOT/docs/screenshots/"
fi
# The summary again, as the last line, after anything the cleanup printed.
tail -n 1 "$OUT/e2e.log"
exit "$status"
