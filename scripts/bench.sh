#!/usr/bin/env bash
# Runs every Pulse benchmark and writes the report: docs/benchmarks.md and its
# charts, docs/benchmarks/*.svg. Not part of ./scripts/test.sh (that runs
# benches/smoke.sh, a few-second smoke run of this harness).
#
#   ./scripts/bench.sh            full sizes (≈ 20 minutes on 2 cores)
#   ./scripts/bench.sh --quick    smaller sizes (a few minutes)
#   options: --out DIR (raw results; default $CARGO_TARGET_DIR/bench-results)
#            --only LIST (e.g. ingest,latency; the report then covers only those)
#            --no-micro (skip the criterion micro-benchmarks)
#            --docs DIR (where benchmarks.md and benchmarks/ go; default docs)
#
# Needs the Rust toolchain and Node.js with npm (the Socket.IO comparisons);
# the desktop benchmark (6) installs Debian's chromium for its side by side;
# installs the Node peers from benches/peers/package-lock.json. The cluster
# benchmark (8) needs redis-server (Debian package) and opens up to
# PULSE_BENCH_CLUSTER_CLIENTS (default 20,000) and PULSE_BENCH_CLUSTER_LIMIT
# (default 40,000, lowered to one node's open-files limit) connections: the
# open-files limit is raised to its hard limit here. Every load it generates
# targets loopback addresses only and is bounded in count and time.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/var/tmp/pulse-target}
export CARGO_TERM_COLOR=never

mode=full
micro=1
only=
out=
docs=docs
while [ $# -gt 0 ]; do
  case "$1" in
    --full) mode=full ;;
    --quick) mode=quick ;;
    --no-micro) micro=0 ;;
    --only) only=$2; shift ;;
    --out) out=$2; shift ;;
    --docs) docs=$2; shift ;;
    -h|--help) sed -n '2,16p' "$0"; exit 0 ;;
    *) echo "unknown option: $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done
out=${out:-$CARGO_TARGET_DIR/bench-results}

step() { printf '\n==> %s\n' "$*"; }

# Tens of thousands of loopback connections (benchmarks 3 and 8): each is two
# descriptors on this machine, one on each side. pulse-bench raises its own soft
# limit too, and holds benchmark 8's clients in worker processes of at most 5,000
# each, so a per-process hard limit of 20,000 is enough for the 20,000 clients;
# it still bounds what one node can hold in benchmark 8's single-node run (the
# report says so). With CAP_SYS_RESOURCE the hard limit is raised first.
want=262144
ulimit -Hn "$want" 2>/dev/null || true
hard=$(ulimit -Hn)
if [ "$hard" = unlimited ]; then hard=$want; fi
ulimit -n "$hard" 2>/dev/null || echo "could not raise the open-files limit (now $(ulimit -n))" >&2
[ "$(ulimit -n)" -ge 45000 ] 2>/dev/null \
  || echo "open-files limit $(ulimit -n): the cluster benchmark's single node is bounded by it" >&2
case ",$only," in
  ",,"|*,cluster,*)
    command -v redis-server >/dev/null 2>&1 \
      || echo "redis-server not found (apt-get install redis-server): the cluster benchmark will fail" >&2 ;;
esac

if command -v npm >/dev/null 2>&1; then
  step "node peers (benches/peers, from the lockfile)"
  (cd benches/peers && npm ci --no-audit --no-fund --loglevel=error)
else
  echo "npm not found: the Socket.IO comparisons will be reported as not measured" >&2
fi

step "build (release): pulse-bench, pulsectl"
cargo build --release --locked -p pulse-bench -p pulse-cli
BIN=$CARGO_TARGET_DIR/release

# The desktop app (benchmark 6): built in release with its UI when the desktop
# toolchain can be had; otherwise the report says it was not measured and why.
app_args=()
want_desktop=1
case ",$only," in ",,"|*,desktop,*) ;; *) want_desktop=0 ;; esac
if [ -n "${PULSE_BENCH_APP:-}" ]; then
  app_args=(--app "$PULSE_BENCH_APP")
elif [ "$want_desktop" = 1 ]; then
  step "desktop app (release) and its test tools"
  if { [ ! -x scripts/install-desktop-deps.sh ] || scripts/install-desktop-deps.sh; } \
    && { command -v tauri-driver >/dev/null || [ -x "$HOME/.cargo/bin/tauri-driver" ] \
         || cargo install tauri-driver --locked --version '^2'; } \
    && (cd ui && { [ -d node_modules ] || npm ci --no-audit --no-fund --loglevel=error; } \
        && npm run build --silent) \
    && cargo build --release --locked -p pulse-desktop; then
    app_args=(--app "$BIN/pulse" --ui "$ROOT/ui/dist")
  else
    echo "the desktop app could not be built here: its figures will be reported as not measured" >&2
    app_args=(--app "$BIN/pulse-not-built")
  fi
fi

# The side by side of benchmark 6: the same UI in Debian's Chromium. Installed
# here only (not by the test command's install scripts: no test needs it).
if [ "$want_desktop" = 1 ] && ! command -v chromium >/dev/null 2>&1; then
  step "chromium (Debian package) for the desktop side by side"
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
  { $SUDO apt-get update && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y \
      --no-install-recommends chromium; } \
    || echo "chromium could not be installed: the side by side will be reported as not measured" >&2
fi

if [ "$micro" = 1 ] && [ -z "$only" ]; then
  step "micro-benchmarks (criterion)"
  # Only this run's estimates go into the report.
  rm -rf "$CARGO_TARGET_DIR/criterion"
  if [ "$mode" = quick ]; then
    crit=(--warm-up-time 1 --measurement-time 2)
  else
    crit=(--warm-up-time 2 --measurement-time 5)
  fi
  cargo bench --locked -p pulse-protocol --bench protocol -- "${crit[@]}"
  cargo bench --locked -p pulse-core --bench core -- "${crit[@]}"
fi

step "benchmarks ($mode)"
status=0
"$BIN/pulse-bench" run --mode "$mode" --out "$out" --pulsectl "$BIN/pulsectl" \
  ${only:+--only "$only"} "${app_args[@]}" || status=$?

step "report"
criterion_args=()
if [ -d "$CARGO_TARGET_DIR/criterion" ]; then
  criterion_args=(--criterion "$CARGO_TARGET_DIR/criterion")
fi
analysis_args=()
if [ -f benches/analysis.md ]; then
  analysis_args=(--analysis benches/analysis.md)
fi
"$BIN/pulse-bench" report --results "$out/results.json" "${criterion_args[@]}" \
  "${analysis_args[@]}" --markdown "$docs/benchmarks.md" --charts "$docs/benchmarks"
echo "raw results: $out/results.json; children's logs: $out/children.log"
exit "$status"
