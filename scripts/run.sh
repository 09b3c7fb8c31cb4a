#!/usr/bin/env bash
# Runs Pulse on a fresh Debian/Ubuntu machine, installing what it needs first.
#
#   ./scripts/run.sh              the desktop app (with no server configured it
#                                 starts the embedded demo gateway and connects)
#   ./scripts/run.sh --headless   the demo gateway plus `pulsectl watch` on it,
#                                 printing every change as a JSON line
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/var/tmp/pulse-target}
./scripts/install-deps.sh

headless=0
[ "${1:-}" = "--headless" ] && headless=1
if [ -z "${DISPLAY:-}${WAYLAND_DISPLAY:-}" ] && [ "$(uname)" = Linux ]; then
  echo "no display found: running headless (gateway + pulsectl)" >&2
  headless=1
fi
if ! grep -q '^\[package\]' Cargo.toml; then headless=1; fi

if [ "$headless" = 0 ]; then
  if [ -f ui/package.json ]; then (cd ui && npm ci --no-audit --no-fund --loglevel=error && npm run build --silent); fi
  cargo build --release --locked --bin pulse
  exec "$CARGO_TARGET_DIR/release/pulse"
fi

cargo build --release --locked -p pulse-gateway -p pulse-cli --bins
bin=$CARGO_TARGET_DIR/release
port=${PULSE_DEMO_PORT:-7780}
cache=${PULSE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/pulse/demo-cli.db}
mkdir -p "$(dirname "$cache")"
"$bin/pulse-gateway" serve --demo --addr "127.0.0.1:$port" >/dev/null &
gw=$!
trap 'kill $gw 2>/dev/null' EXIT
for _ in $(seq 100); do curl -fsS "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && break; sleep 0.1; done
echo "demo gateway on http://127.0.0.1:$port (user demo / demo); cache at $cache; Ctrl-C to stop" >&2
PULSE_PASSWORD=demo "$bin/pulsectl" watch --server "http://127.0.0.1:$port" --user demo --cache "$cache"
