#!/usr/bin/env bash
# The cold start's platform floor (issue 12): the `blank` example (Tauri 2 +
# WebKitGTK with the app's webview and allocator settings, one blank page) is
# started RUNS times under its own Xvfb; each run prints how long after the
# process's start the page began loading and its first frame came, then the
# medians. Compare with the app's `PULSE_STARTUP_TRACE=1` phases or the desktop
# benchmark's cold start. Bounded: 30 s per run.
#
#   benches/startup/floor.sh [RUNS]     (default 5; builds the example in release)
set -euo pipefail
cd "$(dirname "$0")/../.."
runs=${1:-5}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/var/tmp/pulse-target}
cargo build --release --locked -p pulse-desktop --example blank >&2
bin=$CARGO_TARGET_DIR/release/examples/blank
out=$(mktemp)
trap 'rm -f "$out"' EXIT
for _ in $(seq "$runs"); do
  PULSE_BLANK_QUIT=1 timeout 30 xvfb-run -a -s "-screen 0 1280x800x24" "$bin" 2>&1 \
    | grep '^blank:' | tee -a "$out" || echo "a run gave no time (timed out or failed)" >&2
done
python3 - "$out" <<'PY'
import re, statistics, sys
rows = [tuple(map(int, re.findall(r"(\d+) ms", l))) for l in open(sys.argv[1])]
if not rows:
    sys.exit("no run gave a time")
print(f"median of {len(rows)}: page began loading {statistics.median(r[0] for r in rows):.0f} ms, "
      f"first frame {statistics.median(r[1] for r in rows):.0f} ms after the process started")
PY
