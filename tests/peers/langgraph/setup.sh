#!/usr/bin/env bash
# Creates the venv of the LangGraph test server from the pinned requirements:
#   tests/peers/langgraph/setup.sh [VENV]   (default $PULSE_LANGGRAPH_VENV or /var/tmp/pulse-langgraph-venv)
# Idempotent: an up-to-date venv is left as it is (a stamp holds the requirements' hash).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
venv=${1:-${PULSE_LANGGRAPH_VENV:-/var/tmp/pulse-langgraph-venv}}
want=$(sha256sum "$here/requirements.txt" | cut -d' ' -f1)
if [ -x "$venv/bin/langgraph" ] && [ "$(cat "$venv/.pulse-stamp" 2>/dev/null)" = "$want" ]; then
  exit 0
fi
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
"$venv/bin/pip" install --quiet --disable-pip-version-check --no-input -r "$here/requirements.txt"
echo "$want" > "$venv/.pulse-stamp"
