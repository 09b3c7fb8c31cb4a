#!/usr/bin/env bash
# Smoke run of the benchmark harness (part of ./scripts/test.sh): every
# benchmark at tiny sizes for a few seconds, writing to a temp dir — never to
# docs/ — plus the criterion micro-benchmarks run once each in test mode.
# Exits non-zero if anything fails or the report is incomplete.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/var/tmp/pulse-target}
export CARGO_TERM_COLOR=never

(cd benches/peers && npm ci --no-audit --no-fund --loglevel=error)

cargo build --locked -p pulse-bench -p pulse-cli
BIN=$CARGO_TARGET_DIR/debug

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

"$BIN/pulse-bench" run --mode smoke --out "$tmp/run" --pulsectl "$BIN/pulsectl" \
  --app "${PULSE_BENCH_APP:-$tmp/no-app}"
"$BIN/pulse-bench" report --results "$tmp/run/results.json" \
  --markdown "$tmp/docs/benchmarks.md" --charts "$tmp/docs/benchmarks"

# The micro-benchmarks compile and run (once each, criterion's test mode).
cargo test --locked -p pulse-protocol --bench protocol
cargo test --locked -p pulse-core --bench core

md=$tmp/docs/benchmarks.md
for section in "## Summary" "## 1. Core ingest" "## 2. Latency" "## 3. Fan-out" \
  "## 4. Resync" "## 5. Requests" "## 6. Desktop" "## 7. \`pulsectl\`" \
  "## 8. Cluster"; do
  grep -qF "$section" "$md" || { echo "smoke: report lacks '$section'" >&2; exit 1; }
done
if grep -q "Not measured in this run.$" "$md"; then
  echo "smoke: a benchmark produced no result" >&2
  grep -n "Not measured in this run.$" "$md" >&2
  exit 1
fi
n=$(ls "$tmp/docs/benchmarks"/*.svg | wc -l)
[ "$n" -ge 8 ] || { echo "smoke: only $n charts written" >&2; exit 1; }
echo "benchmark harness smoke run: ok ($n charts, report complete)"
