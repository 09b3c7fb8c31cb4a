#!/usr/bin/env bash
# Installs the Debian packages the Pulse desktop app needs to build (webkit2gtk, gtk,
# appindicator, libsecret, dbus) and to run its end-to-end tests headless (Xvfb,
# WebKitWebDriver, a session bus, a notification daemon, a secret service, ImageMagick).
# Idempotent: packages already present are skipped by apt.
set -euo pipefail

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

PKGS=(
  build-essential pkg-config libssl-dev
  libwebkit2gtk-4.1-dev libjavascriptcoregtk-4.1-dev libsoup-3.0-dev
  libgtk-3-dev libayatana-appindicator3-dev librsvg2-dev libxdo-dev
  libsecret-1-dev libdbus-1-dev
  xvfb webkit2gtk-driver dbus-x11 dunst gnome-keyring libsecret-tools
  imagemagick xdotool keyutils file
)

missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if [ "${#missing[@]}" -eq 0 ]; then
  echo "install-desktop-deps: all ${#PKGS[@]} packages present"
  exit 0
fi

echo "install-desktop-deps: installing ${missing[*]}"
$SUDO apt-get update
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y --no-install-recommends "${missing[@]}"
