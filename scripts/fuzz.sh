#!/usr/bin/env bash
# Runs the cargo-fuzz targets of fuzz/ (issue 11, "Hostile and broken input"):
# every decoder that reads bytes from a server or a file. Each target starts from
# its committed seeds (fuzz/corpus/TARGET, captured frames and bodies) and writes
# what it learns to a scratch corpus outside the work tree, so the committed one
# stays small.
#
#   scripts/fuzz.sh                    every target for 20 s
#   scripts/fuzz.sh --time 15          the test command's stage (scripts/test.sh)
#   scripts/fuzz.sh --time 60 socketio one target for 60 s
#   scripts/fuzz.sh --runs 10000000    every target for 10 million executions (long run)
#
# One worker, one job (`-workers=1 -jobs=1`): the machine's 2 cores are shared.
# A crash fails the run; its input is kept in $CARGO_TARGET_DIR/fuzz-artifacts/TARGET/
# (replay it with `cargo +nightly fuzz run TARGET FILE` in fuzz/). Per target the
# run prints one `FUZZ target=… executions=… seconds=… crashes=…` line (the figures
# of docs/reliability.md).
#
# Uses a nightly toolchain when there is one, else stable (see below), and
# installs cargo-fuzz (pinned) when it is missing. Uses CARGO_TARGET_DIR (default
# /var/tmp/pulse-target); the fuzz build goes to $CARGO_TARGET_DIR/fuzz.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
CARGO_FUZZ_VERSION=0.13.1
BASE=${CARGO_TARGET_DIR:-/var/tmp/pulse-target}
export CARGO_TARGET_DIR=$BASE/fuzz

secs=20
runs=
targets=()
while [ $# -gt 0 ]; do
  case $1 in
    --time) secs=$2; shift 2 ;;
    --runs) runs=$2; shift 2 ;;
    -h|--help) sed -n '2,20p' "$0"; exit 0 ;;
    *) targets+=("$1"); shift ;;
  esac
done
if [ ${#targets[@]} -eq 0 ]; then
  targets=(native_frame engineio socketio jsonws_envelope profile_toml rest_bodies)
fi

# cargo-fuzz passes nightly-only flags. A nightly toolchain is used when installed;
# otherwise the default (stable) one with RUSTC_BOOTSTRAP=1 (the same compiler accepting those
# flags), since a machine that reaches only the package registries cannot fetch a
# nightly. Without AddressSanitizer (below) nothing else differs.
if rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
  FUZZ=(cargo +nightly fuzz)
else
  echo "fuzz.sh: no nightly toolchain; using the default one with RUSTC_BOOTSTRAP=1" >&2
  FUZZ=(cargo fuzz)
  export RUSTC_BOOTSTRAP=1
fi
export PATH=$HOME/.cargo/bin:$PATH
if [ "$(cargo fuzz --version 2>/dev/null)" != "cargo-fuzz $CARGO_FUZZ_VERSION" ]; then
  cargo install cargo-fuzz --version "$CARGO_FUZZ_VERSION" --locked
fi

# --sanitizer none: the decoders are safe Rust, so AddressSanitizer would find
# nothing more and cost half the speed; overflow checks and debug assertions stay
# on (cargo-fuzz's default build).
FLAGS=(--sanitizer none)
(cd fuzz && "${FUZZ[@]}" build "${FLAGS[@]}")

failed=0
for t in "${targets[@]}"; do
  work=$BASE/fuzz-corpus/$t
  arts=$BASE/fuzz-artifacts/$t/
  logs=$BASE/fuzz-logs/$t
  mkdir -p "$work" "$arts" "$logs"
  if [ -n "$runs" ]; then limit=(-runs="$runs"); else limit=(-max_total_time="$secs"); fi
  start=$(date +%s)
  rc=0
  # libFuzzer with -jobs writes the job's output to fuzz-0.log in fuzz/.
  rm -f "$ROOT/fuzz/fuzz-0.log"
  (cd "$ROOT/fuzz" && "${FUZZ[@]}" run "${FLAGS[@]}" "$t" "$work" "corpus/$t" -- \
    -workers=1 -jobs=1 "${limit[@]}" -timeout=10 -rss_limit_mb=2048 \
    -print_final_stats=1 -artifact_prefix="$arts" \
    >"$logs/run.log" 2>&1) || rc=$?
  [ -f "$ROOT/fuzz/fuzz-0.log" ] && mv "$ROOT/fuzz/fuzz-0.log" "$logs/fuzz-0.log"
  took=$(($(date +%s) - start))
  log=$logs/fuzz-0.log
  [ -f "$log" ] || log=$logs/run.log
  execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | tail -1 | grep -o '[0-9]*$' || true)
  crashes=$(grep -c 'Test unit written to' "$log" || true)
  echo "FUZZ target=$t executions=${execs:-?} seconds=$took crashes=$crashes corpus=$(ls "$work" | wc -l)"
  if [ "$rc" -ne 0 ] || [ "$crashes" -ne 0 ]; then
    echo "fuzz.sh: $t failed (exit $rc); its output is in $log:" >&2
    grep -E -A30 'panicked|ERROR: libFuzzer|Test unit written' "$log" | head -60 >&2 || true
    failed=1
  fi
done
exit "$failed"
