#!/usr/bin/env bash
# Schemathesis against a real gateway, from the OpenAPI document the gateway serves
# (`/openapi.json`, generated from the handlers):
#
#   tests/schemathesis/run.sh [GATEWAY_BIN]
#
# GATEWAY_BIN defaults to $CARGO_TARGET_DIR/debug/pulse-gateway (build it first).
# The venv ($PULSE_SCHEMATHESIS_VENV, default /var/tmp/pulse-schemathesis-venv) is
# made from requirements.txt with `--require-hashes` and left as it is while the
# requirements do not change (a stamp holds their hash).
#
# The gateway: port 0, a SQLite store, a users file with one publisher (so ingest is
# tested too), a metrics token. The access token comes from a real login and reaches
# Schemathesis through the environment (schemathesis.toml), never argv or a URL.
#
# Checks: not_a_server_error, status_code_conformance, content_type_conformance,
# response_schema_conformance; positive and negative inputs, at most
# $PULSE_SCHEMATHESIS_EXAMPLES (default 100) per operation and phase: about 2,300
# requests, 15 s on the 2-core machine (plus about 20 s to make the venv once).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
target=${CARGO_TARGET_DIR:-/var/tmp/pulse-target}
gw_bin=${1:-$target/debug/pulse-gateway}
venv=${PULSE_SCHEMATHESIS_VENV:-/var/tmp/pulse-schemathesis-venv}
examples=${PULSE_SCHEMATHESIS_EXAMPLES:-100}
[ -x "$gw_bin" ] || { echo "run.sh: no gateway binary at $gw_bin (cargo build -p pulse-gateway)" >&2; exit 2; }

want=$(sha256sum "$here/requirements.txt" | cut -d' ' -f1)
if ! [ -x "$venv/bin/schemathesis" ] || [ "$(cat "$venv/.pulse-stamp" 2>/dev/null)" != "$want" ]; then
  [ -x "$venv/bin/python" ] || python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check --no-input \
    --require-hashes -r "$here/requirements.txt"
  echo "$want" > "$venv/.pulse-stamp"
fi

work=$(mktemp -d)
gw_pid=
cleanup() {
  if [ -n "$gw_pid" ]; then
    kill "$gw_pid" 2>/dev/null || true
    wait "$gw_pid" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT
umask 077

openssl rand -hex 32 > "$work/jwt-secret"
openssl rand -hex 24 > "$work/metrics-token"
password=$(openssl rand -hex 16)
printf '%s\n' "$password" |
  "$gw_bin" user add --users-file "$work/users.toml" svc --tenant acme --role publisher >/dev/null

: >"$work/gw.out"
"$gw_bin" serve --addr 127.0.0.1:0 --store "sqlite:$work/gw.db" \
  --jwt-secret-file "$work/jwt-secret" --users-file "$work/users.toml" \
  --metrics-token-file "$work/metrics-token" \
  >"$work/gw.out" 2>"$work/gw.log" &
gw_pid=$!
# Wait for the one stdout line `listening on http://ADDR` (or the gateway's exit).
url=
for _ in $(seq 1 300); do
  url=$(sed -n 's/^listening on //p' "$work/gw.out" || true)
  [ -n "$url" ] && break
  kill -0 "$gw_pid" 2>/dev/null || { cat "$work/gw.log" >&2; echo "run.sh: the gateway exited" >&2; exit 1; }
  sleep 0.1
done
[ -n "$url" ] || { echo "run.sh: the gateway did not start" >&2; exit 1; }

# A real login; the body goes through stdin, the token into the environment.
login=$(printf '{"username":"svc","password":"%s"}' "$password" |
  curl -sS --fail-with-body -H 'Content-Type: application/json' --data-binary @- "$url/v1/auth/login")
PULSE_ST_TOKEN=$(printf '%s' "$login" | "$venv/bin/python" -c 'import json,sys; print(json.load(sys.stdin)["access_token"])')
PULSE_ST_METRICS_TOKEN=$(cat "$work/metrics-token")
export PULSE_ST_TOKEN PULSE_ST_METRICS_TOKEN

# Something to act on: an approval, a ticket and an agent with the ids the
# document's examples do not know, so the mutations reach their handlers' logic.
printf '%s' '[{"type":"approval.created","data":{"id":"ap1","title":"t"}},{"type":"ticket.created","data":{"id":"t1","title":"t"}},{"type":"agent.upserted","data":{"id":"a1","name":"n"}}]' |
  curl -sS --fail-with-body -o /dev/null -H 'Content-Type: application/json' \
    -H @<(printf 'Authorization: Bearer %s\n' "$PULSE_ST_TOKEN") --data-binary @- "$url/v1/ingest"

cd "$work"
status=0
"$venv/bin/schemathesis" --config-file "$here/schemathesis.toml" run "$url/openapi.json" \
  --checks not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance \
  --max-examples "$examples" --request-timeout 10 --workers 1 \
  --generation-database none --report junit --report-dir "$work/report" || status=$?
if grep -q 'panicked' "$work/gw.log"; then
  echo "run.sh: the gateway panicked:" >&2
  grep -A5 'panicked' "$work/gw.log" >&2
  status=1
fi
if grep -qF "$PULSE_ST_TOKEN" "$work/gw.log" "$work/gw.out"; then
  echo "run.sh: the access token is in the gateway's output" >&2
  status=1
fi
exit "$status"
