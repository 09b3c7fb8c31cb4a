#!/usr/bin/env bash
# Runs every Pulse test on a fresh Debian/Ubuntu machine: installs what the tests
# need (apt packages, npm and pip packages from lockfiles), builds the workspace,
# then runs the Rust tests, the UI tests and the end-to-end tests.
#
#   ./scripts/test.sh            everything
#   PULSE_SKIP_DESKTOP=1 ...     skip the desktop (Tauri/WebDriver) end-to-end run
#   PULSE_SKIP_INSTALL=1 ...     skip the packages and the fresh-Debian install test
#
# Uses CARGO_TARGET_DIR if set (default: /var/tmp/pulse-target, outside the work
# tree so a fresh clone reuses earlier builds on the same machine).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/var/tmp/pulse-target}
export CARGO_TERM_COLOR=never

step() { printf '\n==> %s\n' "$*"; }
# Each test stage has a time limit well above its normal run, so a hang fails the
# run with a message instead of holding CI until its own limit.
bounded() {
  local secs=$1
  shift
  timeout --kill-after=30 "$secs" "$@" || {
    local rc=$?
    [ "$rc" -eq 124 ] && echo "test.sh: '$*' took longer than $secs s and was stopped" >&2
    return "$rc"
  }
}

step "system packages"
./scripts/install-deps.sh

step "node packages (from lockfiles)"
while IFS= read -r lock; do
  dir=$(dirname "$lock")
  (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error)
done < <(git ls-files '*package-lock.json')

step "python packages (from lockfiles)"
export PULSE_VENV=${PULSE_VENV:-/var/tmp/pulse-venv}
if git ls-files --error-unmatch tests/peers/fastapi/requirements.txt >/dev/null 2>&1; then
  [ -x "$PULSE_VENV/bin/python" ] || python3 -m venv "$PULSE_VENV"
  "$PULSE_VENV/bin/pip" install --quiet --disable-pip-version-check -r tests/peers/fastapi/requirements.txt
  export PULSE_PY="$PULSE_VENV/bin/python"
fi

step "langgraph dev server (pinned requirements, about 20 s)"
export PULSE_LANGGRAPH_VENV=${PULSE_LANGGRAPH_VENV:-/var/tmp/pulse-langgraph-venv}
bounded 600 tests/peers/langgraph/setup.sh "$PULSE_LANGGRAPH_VENV"

step "format and lints"
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings

step "build"
cargo build --workspace --bins --locked

step "rust tests"
bounded 2400 cargo test --workspace --locked --no-fail-fast 2>&1 | tee "$CARGO_TARGET_DIR/rust-tests.log"
test "${PIPESTATUS[0]}" -eq 0

# The REST API against its own OpenAPI document (/openapi.json): a real gateway, a
# real login, Schemathesis from hashed pins. About 15 s, plus about 20 s for the
# venv the first time.
step "Schemathesis against the gateway's /openapi.json (about 15 s)"
bounded 300 tests/schemathesis/run.sh "$CARGO_TARGET_DIR/debug/pulse-gateway"

# The decoders under cargo-fuzz (fuzz/, nightly): 15 s per target from the
# committed seeds, 6 targets. 1 min 38 s on a warm build, about 2.5 min after a
# change to the core crates; from nothing add 2-3 min for installing cargo-fuzz
# and about 3.5 min for the first instrumented build. A crash fails the stage.
step "fuzz targets (15 s each)"
bounded 900 ./scripts/fuzz.sh --time 15

if [ -f ui/package.json ]; then
  step "ui tests"
  (cd ui && npm test --silent)
fi

if [ -x tests/desktop/run.sh ] && [ -z "${PULSE_SKIP_DESKTOP:-}" ]; then
  step "desktop end-to-end"
  bounded 1200 tests/desktop/run.sh
fi

if [ -z "${PULSE_SKIP_INSTALL:-}" ]; then
  # The packages, then a fresh Debian 12 root with only what they declare (needs root
  # and deb.debian.org). From nothing ≈ 3 min; with the cache in /var/tmp ≈ 1.5 min;
  # the debug packages ≈ 1.5 min on a warm target.
  step "packages: the app's .deb and .rpm, the gateway's .deb (debug build)"
  bounded 1800 ./scripts/package.sh --debug
  step "the .rpm: metadata, dependencies, files, desktop entry (no Fedora root here)"
  bounded 300 tests/install/check-rpm.sh "$(grep '/bundle/rpm/.*\.rpm$' "$CARGO_TARGET_DIR/packages.txt")"
  step "fresh Debian 12: install the packages with apt, run them"
  bounded 900 tests/install/fresh-debian.sh \
    "$(grep '/bundle/deb/.*\.deb$' "$CARGO_TARGET_DIR/packages.txt")" \
    "$(grep '/bundle/gateway/.*\.deb$' "$CARGO_TARGET_DIR/packages.txt")"
fi

if [ -x benches/smoke.sh ]; then
  step "benchmark harness smoke run"
  bounded 900 benches/smoke.sh
fi

step "done"
