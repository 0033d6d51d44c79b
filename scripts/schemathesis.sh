#!/usr/bin/env bash
# Schema fuzzing: schemathesis (PyPI, pinned) against the OpenAPI document of a running devicehub,
# with an admin token and every check: no 5xx, every response as the document says, and the
# document declaring what the API enforces (a request the document calls valid must not be
# refused, one it calls invalid must be). Runs its own devicehub (API role, a scratch database)
# on a free port.
#   SCHEMATHESIS_SECONDS=300 SCHEMATHESIS_SEED=7 scripts/schemathesis.sh
source "$(dirname "$0")/lib.sh"
cd "$ROOT"
require_cargo
ensure_services

SECONDS_BUDGET="${SCHEMATHESIS_SECONDS:-120}"
VENV="$HOME/.cache/devicehub/venv"
if [ ! -x "$VENV/bin/schemathesis" ]; then
  [ -x "$VENV/bin/python" ] || python3 -m venv "$VENV" 2>/dev/null || { apt_install python3-venv; python3 -m venv "$VENV"; }
  log "installing schemathesis 4.32.5 into $VENV"
  "$VENV/bin/pip" install -q schemathesis==4.32.5
fi

cargo build --locked --bin devicehub
BIN="${DEVICEHUB_BIN:-$CARGO_TARGET_DIR/debug/devicehub}"
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
WORK="$(mktemp -d)"
DB=devicehub_schemathesis
psql -w -h "$PG_HOST" -p "$PG_PORT" -U postgres -d postgres -qc "DROP DATABASE IF EXISTS $DB WITH (FORCE)" >/dev/null
export DEVICEHUB__ROLES=api
export DEVICEHUB__DATABASE__URL="postgres://postgres@$PG_HOST:$PG_PORT/$DB"
export DEVICEHUB__HTTP__BIND="127.0.0.1:$PORT"
export DEVICEHUB__AUTH__JWT_SECRET="schemathesis-only-secret-0123456789-abcdefgh"
export DEVICEHUB__AUTH__LOGIN_ATTEMPTS_PER_MINUTE=100000
export DEVICEHUB__INFLUXDB__API=v1
export DEVICEHUB__INFLUXDB__DATABASE=devicehub_test_schemathesis
export DEVICEHUB__ARCHIVE__DIR="$WORK/archive"
export DEVICEHUB__LOG__LEVEL=error
"$BIN" migrate
PASSWORD="fuzz-admin-password-$RANDOM$RANDOM"
printf '%s\n' "$PASSWORD" | "$BIN" user add --username fuzz-admin --role admin >/dev/null
curl -s -XPOST "http://127.0.0.1:8086/query" --data-urlencode "q=CREATE DATABASE devicehub_test_schemathesis" >/dev/null
"$BIN" serve > "$WORK/devicehub.log" 2>&1 &
SERVER=$!
trap 'kill $SERVER 2>/dev/null; wait $SERVER 2>/dev/null; rm -rf "$WORK"' EXIT
for _ in $(seq 1 100); do
  curl -fs "http://127.0.0.1:$PORT/healthz" >/dev/null && break
  sleep 0.2
done
TOKEN=$(curl -fs -XPOST "http://127.0.0.1:$PORT/api/auth/login" -H 'content-type: application/json' \
  -d "{\"username\":\"fuzz-admin\",\"password\":\"$PASSWORD\"}" |
  python3 -c 'import sys, json; print(json.load(sys.stdin)["access_token"])')

log "schemathesis for ${SECONDS_BUDGET} s against 127.0.0.1:$PORT (seed ${SCHEMATHESIS_SEED:-1})"
# One worker: with several, hypothesis describes filters from threads and CPython 3.11's parser
# fails now and then ("AST constructor recursion depth mismatch"), failing the run without a
# finding.
STATUS=0
# GET /api/stream is left out: a valid request opens a stream that never ends (tests/api/stream.rs
# covers its parameters and refusals).
# From the scratch directory: schemathesis keeps its cache (.schemathesis/) in the working
# directory, which must not be the clone.
cd "$WORK"
PYTHONPATH="$ROOT/scripts" PYTHONDONTWRITEBYTECODE=1 SCHEMATHESIS_HOOKS=schemathesis_hooks \
  "$VENV/bin/schemathesis" run "http://127.0.0.1:$PORT/api-docs/openapi.json" \
  --url "http://127.0.0.1:$PORT" -H "Authorization: Bearer $TOKEN" \
  --exclude-path /api/stream \
  --checks all --max-time "$SECONDS_BUDGET" --workers 1 --seed "${SCHEMATHESIS_SEED:-1}" \
  --generation-database none --no-color --request-timeout 30 || STATUS=$?
if [ "$STATUS" != 0 ] && grep -q ERROR "$WORK/devicehub.log"; then
  log "devicehub's errors during the run:"
  grep ERROR "$WORK/devicehub.log" | tail -n 20 >&2
fi
exit "$STATUS"
