#!/usr/bin/env bash
# Checks the desktop app's .rpm without a Fedora system (none can be made from the
# package registries this project reaches): its metadata, declared dependencies,
# files and desktop entry, read with rpm(8) from Debian's `rpm` package.
#
#   tests/install/check-rpm.sh APP.rpm
#
# What it cannot show: that dnf resolves these names on Fedora and that the app then
# starts; tests/install/fresh-debian.sh shows that for the .deb.
set -euo pipefail
RPM=$(realpath "$1")
fail() { printf 'check-rpm: FAIL: %s\n' "$*" >&2; exit 1; }
command -v rpm >/dev/null && command -v rpm2cpio >/dev/null && command -v cpio >/dev/null \
  || DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends rpm cpio >/dev/null
n=0
ok() { n=$((n + 1)); printf 'check-rpm: ok   %s\n' "$*"; }

[ "$(rpm -qp --qf '%{NAME} %{ARCH}' "$RPM" 2>/dev/null)" = "pulse x86_64" ] || fail "name/arch: $(rpm -qp --qf '%{NAME} %{ARCH}' "$RPM")"
ok "package pulse, x86_64"
requires=$(rpm -qpR "$RPM" 2>/dev/null)
for dep in webkit2gtk4.1 gtk3 libayatana-appindicator-gtk3 dbus-libs desktop-file-utils; do
  grep -qx "$dep" <<<"$requires" || fail "does not require $dep (requires: $(tr '\n' ' ' <<<"$requires"))"
done
ok "requires WebKitGTK 4.1, GTK 3, the Ayatana appindicator, libdbus (secret service client), desktop-file-utils"
files=$(rpm -qpl "$RPM" 2>/dev/null)
for f in /usr/bin/pulse /usr/share/applications/Pulse.desktop \
  /usr/share/icons/hicolor/{16x16,32x32,48x48,64x64,128x128,256x256,512x512}/apps/pulse.png; do
  grep -qx "$f" <<<"$files" || fail "no $f"
done
ok "binary, desktop entry, icons 16-512"
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
# Debian's rpm2cpio exits 1 on this package although `rpm -K` finds every digest OK
# and the payload is whole: cpio's status and the files decide.
rpm2cpio "$RPM" >"$dir/payload.cpio" || true
(cd "$dir" && cpio -idm --quiet <payload.cpio) || fail "the payload does not unpack"
rpm -Kv "$RPM" | grep -q 'Payload SHA256 digest: OK' || fail "rpm -K: $(rpm -Kv "$RPM")"
grep -qx 'MimeType=x-scheme-handler/pulse;' "$dir/usr/share/applications/Pulse.desktop" || fail "the desktop entry does not register pulse://"
grep -qx 'Exec=pulse %u' "$dir/usr/share/applications/Pulse.desktop" || fail "the desktop entry does not pass the URL (%u)"
ok "desktop entry registers x-scheme-handler/pulse and passes the URL"
file "$dir/usr/bin/pulse" | grep -q 'ELF 64-bit' || fail "/usr/bin/pulse is not an ELF binary"
ok "/usr/bin/pulse is an x86-64 ELF"
echo "check-rpm: $n passed, 0 failed"
