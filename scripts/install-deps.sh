#!/usr/bin/env bash
# Installs the system packages Pulse builds and tests with (Debian/Ubuntu).
# Idempotent and quiet when everything is there already.
set -euo pipefail
# redis-server and nginx: real servers for the gateway's cluster tests.
# openssl: the CLI makes the throwaway CA of the TLS tests (pulse_testkit::tls).
need=(build-essential pkg-config curl git ca-certificates python3 python3-venv python3-pip nodejs npm redis-server nginx openssl)
missing=()
for p in "${need[@]}"; do
  case "$p" in
    nodejs) command -v node >/dev/null && continue ;;
    npm) command -v npm >/dev/null && continue ;;
    python3|python3-pip) command -v python3 >/dev/null && continue ;;
    python3-venv) python3 -c 'import venv, ensurepip' 2>/dev/null && continue ;;
  esac
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing: ${missing[*]}"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
if [ -x "$(dirname "$0")/install-desktop-deps.sh" ]; then
  "$(dirname "$0")/install-desktop-deps.sh"
fi
if ! command -v cargo >/dev/null; then
  echo "cargo is missing: install the Rust toolchain (https://rustup.rs) and run again" >&2
  exit 1
fi
