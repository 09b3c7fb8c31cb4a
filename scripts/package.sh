#!/usr/bin/env bash
# Builds Pulse's Linux packages: the desktop app's .deb and .rpm (Tauri CLI from
# ui/package-lock.json) and the gateway's .deb (cargo-deb, pinned below).
#
#   ./scripts/package.sh            release build (≈ 11 min cold, ≈ 2 min warm)
#   ./scripts/package.sh --debug    debug build (reuses the test build; for tests)
#
# Output: the paths of the packages, one a line, on stdout; also listed in
# $CARGO_TARGET_DIR/packages.txt. Needs the system packages of
# scripts/install-desktop-deps.sh .
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/var/tmp/pulse-target}
CARGO_DEB_VERSION=3.8.0

profile=release
tauri_flags=()
deb_flags=()
if [ "${1:-}" = "--debug" ]; then
  profile=debug
  tauri_flags=(--debug)
  deb_flags=(--profile dev)
fi

log() { printf 'package.sh: %s\n' "$*" >&2; }

[ -x ui/node_modules/.bin/tauri ] || (cd ui && npm ci --no-audit --no-fund --loglevel=error >&2)
if [ "$(cargo deb --version 2>/dev/null | awk '{print $2}')" != "$CARGO_DEB_VERSION" ]; then
  log "installing cargo-deb $CARGO_DEB_VERSION"
  cargo install cargo-deb --version "=$CARGO_DEB_VERSION" --locked >&2
fi

log "desktop app: .deb and .rpm ($profile)"
# The UI is built here: the CLI would run beforeBuildCommand from the first directory
# with a package.json it finds, which in this repository is not ui/.
(cd ui && npm run build --silent >&2)
ui/node_modules/.bin/tauri build "${tauri_flags[@]}" --bundles deb,rpm --ci \
  --config '{"build":{"beforeBuildCommand":""}}' >&2

log "gateway: .deb ($profile)"
mkdir -p "$CARGO_TARGET_DIR/$profile/bundle/gateway"
cargo deb -p pulse-gateway "${deb_flags[@]}" --locked \
  --output "$CARGO_TARGET_DIR/$profile/bundle/gateway/" >&2

bundle=$CARGO_TARGET_DIR/$profile/bundle
{
  ls "$bundle"/deb/*.deb "$bundle"/rpm/*.rpm
  ls "$bundle"/gateway/*.deb
} | tee "$CARGO_TARGET_DIR/packages.txt"
