#!/usr/bin/env bash
# Installs Pulse's packages on a fresh, minimal Debian 12 root and checks that they
# work there: the packages' declared dependencies are all that is installed before
# the checks of what they need, so a missing one fails here.
#
#   tests/install/fresh-debian.sh APP.deb GATEWAY.deb
#
# 1. debootstrap --variant=minbase bookworm (Debian's own packages). The base
#    system's .debs are cached as a debootstrap tarball and apt's archives are kept
#    in $PULSE_INSTALL_CACHE (default /var/tmp/pulse-install-cache), so a rerun does
#    not download them again; with an empty cache it works from nothing.
# 2. `apt-get install ./APP.deb ./GATEWAY.deb` in the root: apt resolves what the
#    packages declare, nothing else.
# 3. Checks, before any test tool is installed: every shared library of
#    /usr/bin/pulse resolves; the desktop entry is there with the pulse:// handler.
# 4. Test tools (Xvfb, xdotool, xdg-utils, x11-apps) are installed, then:
#    `xdg-mime query default x-scheme-handler/pulse` names Pulse.desktop; the
#    installed `pulse` is started under Xvfb as a normal user with a new HOME; its
#    window "Pulse" is mapped; its log says the demo's snapshot loaded; the screen
#    (xwd) must then show the demo's overview, not a blank or loading page.
# 5. The gateway: `pulse-gateway user add` on the packaged config, then the
#    service's command line as the pulse-gateway user, and a login over HTTP.
#
# Needs root, debootstrap and ImageMagick (/usr/bin/convert) on the host; prints
# timings. Artifacts (screenshot, logs) go to $PULSE_INSTALL_OUT (default
# tests/out/install).
set -euo pipefail
APP_DEB=$(realpath "$1")
GW_DEB=$(realpath "$2")
ROOT_DIR=$(cd "$(dirname "$0")/../.." && pwd)
CACHE=${PULSE_INSTALL_CACHE:-/var/tmp/pulse-install-cache}
OUT=${PULSE_INSTALL_OUT:-$ROOT_DIR/tests/out/install}
MIRROR=http://deb.debian.org/debian
SUITE=bookworm
mkdir -p "$CACHE/archives/partial" "$OUT"
START=$(date +%s)
t() { printf 'fresh-debian: [%3ss] %s\n' "$(($(date +%s) - START))" "$*"; }
fail() { printf 'fresh-debian: FAIL: %s\n' "$*" >&2; exit 1; }

command -v debootstrap >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends debootstrap >/dev/null

CHROOT=$(mktemp -d /var/tmp/pulse-fresh-root.XXXXXX)
chmod 0755 "$CHROOT"  # mktemp makes it 0700: the root directory of the new system
XVFB_PID=""
cleanup() {
  set +e
  [ -n "$XVFB_PID" ] && chroot "$CHROOT" kill "$XVFB_PID" 2>/dev/null
  # Anything still running inside the root (the app, the gateway, Xvfb).
  for p in /proc/[0-9]*; do
    [ "$(readlink "$p/root" 2>/dev/null)" = "$CHROOT" ] && kill -9 "${p#/proc/}" 2>/dev/null
  done
  for m in var/cache/apt/archives dev/pts dev proc sys tmp/pkgs; do
    mountpoint -q "$CHROOT/$m" && umount -l "$CHROOT/$m"
  done
  rm -rf --one-file-system "$CHROOT"
}
trap cleanup EXIT

TARBALL=$CACHE/debootstrap-$SUITE-minbase.tgz
if [ ! -s "$TARBALL" ]; then
  t "no cached base system: downloading it (debootstrap --make-tarball)"
  rm -f "$TARBALL.tmp"
  debootstrap --variant=minbase --make-tarball="$TARBALL.tmp" "$SUITE" "$CHROOT/mk" "$MIRROR" >"$OUT/debootstrap.log" 2>&1 \
    || { tail -20 "$OUT/debootstrap.log"; fail "debootstrap --make-tarball"; }
  mv "$TARBALL.tmp" "$TARBALL"
  rm -rf "$CHROOT/mk"
fi
t "unpacking the base system"
debootstrap --variant=minbase --unpack-tarball="$TARBALL" "$SUITE" "$CHROOT" "$MIRROR" >>"$OUT/debootstrap.log" 2>&1 \
  || { tail -20 "$OUT/debootstrap.log"; fail "debootstrap"; }
t "base system ready"

mount -t proc proc "$CHROOT/proc"
mount --bind /dev "$CHROOT/dev"
mount --bind /dev/pts "$CHROOT/dev/pts"
mount --bind "$CACHE/archives" "$CHROOT/var/cache/apt/archives"
mkdir -p "$CHROOT/tmp/pkgs"
cp "$APP_DEB" "$GW_DEB" "$CHROOT/tmp/pkgs/"
cp /etc/resolv.conf "$CHROOT/etc/resolv.conf"
echo "deb $MIRROR $SUITE main" >"$CHROOT/etc/apt/sources.list"
echo "deb $MIRROR $SUITE-updates main" >>"$CHROOT/etc/apt/sources.list"
echo "deb http://deb.debian.org/debian-security $SUITE-security main" >>"$CHROOT/etc/apt/sources.list"
# Keep downloaded packages for the next run.
echo 'Binary::apt::APT::Keep-Downloaded-Packages "true";' >"$CHROOT/etc/apt/apt.conf.d/99keep"

in_root() { chroot "$CHROOT" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 "$@"; }
apt_in_root() { in_root env DEBIAN_FRONTEND=noninteractive apt-get -o Dpkg::Use-Pty=0 "$@"; }

apt_in_root update >"$OUT/apt.log" 2>&1 || { tail -20 "$OUT/apt.log"; fail "apt-get update"; }
t "installing the packages with apt (their declared dependencies only)"
apt_in_root install -y /tmp/pkgs/"$(basename "$APP_DEB")" /tmp/pkgs/"$(basename "$GW_DEB")" >>"$OUT/apt.log" 2>&1 \
  || { tail -30 "$OUT/apt.log"; fail "apt-get install of the packages"; }
t "installed"

# --- checks that need nothing but the packages ---------------------------------
missing=$(in_root ldd /usr/bin/pulse | grep 'not found' || true)
[ -z "$missing" ] || fail "libraries of /usr/bin/pulse not installed by its dependencies: $missing"
in_root ldd /usr/bin/pulse-gateway | grep -q 'not found' && fail "pulse-gateway has unresolved libraries"
desktop=$CHROOT/usr/share/applications/Pulse.desktop
[ -f "$desktop" ] || fail "no /usr/share/applications/Pulse.desktop"
grep -qx 'MimeType=x-scheme-handler/pulse;' "$desktop" || fail "Pulse.desktop does not declare x-scheme-handler/pulse"
grep -q 'x-scheme-handler/pulse=Pulse.desktop' "$CHROOT/usr/share/applications/mimeinfo.cache" \
  || fail "the desktop database does not list Pulse for pulse:// (desktop-file-utils trigger)"
for s in 32 128 256; do
  [ -f "$CHROOT/usr/share/icons/hicolor/${s}x${s}/apps/pulse.png" ] || fail "no ${s}x${s} icon"
done
t "libraries, desktop entry, scheme handler and icons present"

# --- tools the checks below use (not the app's dependencies) -------------------
apt_in_root install -y --no-install-recommends xvfb xdotool xdg-utils x11-apps >>"$OUT/apt.log" 2>&1 \
  || { tail -30 "$OUT/apt.log"; fail "apt-get install of the test tools"; }
t "test tools installed"

handler=$(in_root xdg-mime query default x-scheme-handler/pulse)
[ "$handler" = "Pulse.desktop" ] || fail "xdg-mime names '$handler' for x-scheme-handler/pulse, not Pulse.desktop"
t "xdg-mime: x-scheme-handler/pulse -> $handler"

# --- the app, as a normal user on a fresh HOME ----------------------------------
in_root useradd --create-home --shell /bin/bash ann
in_root sh -c 'Xvfb :42 -screen 0 1280x800x24 -nolisten tcp >/tmp/xvfb.log 2>&1 & echo $! >/tmp/xvfb.pid'
XVFB_PID=$(cat "$CHROOT/tmp/xvfb.pid")
for _ in $(seq 100); do [ -e "$CHROOT/tmp/.X11-unix/X42" ] && break; sleep 0.1; done
[ -e "$CHROOT/tmp/.X11-unix/X42" ] || fail "Xvfb did not start: $(cat "$CHROOT/tmp/xvfb.log")"
as_ann() { chroot --userspec=ann:ann "$CHROOT" /usr/bin/env -i PATH=/usr/bin:/bin HOME=/home/ann USER=ann LANG=C.UTF-8 DISPLAY=:42 "$@"; }
as_ann sh -c 'cd /home/ann && PULSE_LOG=info pulse >/tmp/pulse.log 2>&1 & echo $! >/tmp/pulse.pid'
t "pulse started"
# The window: polled until a visible window titled Pulse exists. Not `--sync`: a
# window GTK destroys while xdotool reads its attributes is an X error (BadWindow)
# that ends xdotool, so one search is retried instead.
window_found() {
  chroot --userspec=ann:ann "$CHROOT" /usr/bin/env -i DISPLAY=:42 PATH=/usr/bin:/bin \
    xdotool search --onlyvisible --name '^Pulse$' >"$OUT/window.txt" 2>>"$OUT/xdotool.log" \
    && [ -s "$OUT/window.txt" ]
}
for _ in $(seq 240); do window_found && break; sleep 0.5; done
window_found || { cat "$CHROOT/tmp/pulse.log" >&2; fail "no visible window titled Pulse"; }
t "window mapped: $(head -1 "$OUT/window.txt")"
# The demo paints: the app's own readiness first (its log says the demo's snapshot
# loaded), then the screen: the page area must hold the demo's cards (the loading
# page shows ~150 colours there, the demo's overview ~1000).
demo_loaded() { sed 's/\x1b\[[0-9;]*m//g' "$CHROOT/tmp/pulse.log" 2>/dev/null | grep -q 'snapshot loaded.*entities=[1-9]'; }
for _ in $(seq 240); do demo_loaded && break; sleep 0.5; done
demo_loaded || { cat "$CHROOT/tmp/pulse.log" >&2; fail "the app never loaded the demo's snapshot"; }
colours=0
for _ in $(seq 120); do
  as_ann xwd -root -silent >"$OUT/screen.xwd" 2>/dev/null || true
  colours=$(/usr/bin/convert "xwd:$OUT/screen.xwd" -crop 980x720+215+58 -format '%k' info: 2>/dev/null || echo 0)
  [ "$colours" -gt 500 ] && break
  sleep 0.5
done
/usr/bin/convert "xwd:$OUT/screen.xwd" "$OUT/fresh-install.png" 2>/dev/null || true
cp "$CHROOT/tmp/pulse.log" "$OUT/pulse.log" 2>/dev/null || true
[ "$colours" -gt 500 ] || fail "the page area shows $colours colours: the demo did not paint (see $OUT/fresh-install.png, $OUT/pulse.log)"
kill -0 "$(cat "$CHROOT/tmp/pulse.pid")" 2>/dev/null || fail "pulse exited"
t "the demo painted ($colours colours in the page area; $OUT/fresh-install.png)"

# --- the gateway service's command line ----------------------------------------
printf 'hunter2\n' | in_root pulse-gateway user add ann --tenant acme --config /etc/pulse-gateway/gateway.toml
in_root pulse-gateway user list --config /etc/pulse-gateway/gateway.toml | grep -qx $'ann\tacme\tviewer' || fail "user list"
mode=$(in_root stat -c '%U:%G %a' /etc/pulse-gateway/users.toml)
[ "$mode" = "root:pulse-gateway 640" ] || fail "users file: $mode, not root:pulse-gateway 640"
# What systemd would run (ExecStart, User=, StateDirectory= made by the postinst here).
grep -qx 'ExecStart=/usr/bin/pulse-gateway serve --config /etc/pulse-gateway/gateway.toml' "$CHROOT/usr/lib/systemd/system/pulse-gateway.service" || fail "unit ExecStart"
chroot --userspec=pulse-gateway:pulse-gateway "$CHROOT" /usr/bin/env -i PATH=/usr/bin:/bin PULSE_LOG=warn \
  sh -c 'cd /var/lib/pulse-gateway && pulse-gateway serve --config /etc/pulse-gateway/gateway.toml --addr 127.0.0.1:0 >/tmp/gw.out 2>/tmp/gw.err & echo $! >/tmp/gw.pid'
for _ in $(seq 100); do grep -q '^listening on' "$CHROOT/tmp/gw.out" 2>/dev/null && break; sleep 0.1; done
url=$(sed -n 's/^listening on //p' "$CHROOT/tmp/gw.out")
[ -n "$url" ] || fail "the gateway did not start as pulse-gateway: $(cat "$CHROOT/tmp/gw.err")"
[ -f "$CHROOT/var/lib/pulse-gateway/gateway.db" ] || fail "no SQLite store in the state directory"
code=$(curl -s -o "$OUT/login.json" -w '%{http_code}' -H 'content-type: application/json' \
  -d '{"username":"ann","password":"hunter2"}' "$url/v1/auth/login")
[ "$code" = 200 ] || fail "login to the installed gateway: HTTP $code $(cat "$OUT/login.json")"
grep -q '"tenant":"acme"' "$OUT/login.json" || fail "login body: $(cat "$OUT/login.json")"
t "gateway: user added, served as pulse-gateway from the packaged config, login ok"
echo "fresh-debian: 7 passed, 0 failed (in $(($(date +%s) - START)) s)"
