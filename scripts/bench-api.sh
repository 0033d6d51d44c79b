#!/usr/bin/env bash
# API read benchmark: registers 1,000 devices in a scratch database, then drives
#   GET /api/devices/{id}        (a different device per request)
#   GET /api/devices?limit=100
# with wrk from a second process over loopback, and prints requests/s and p99 latency.
# Usage: scripts/bench-api.sh [duration, default 20s] [connections, default 32]
source "$(dirname "$0")/lib.sh"
cd "$ROOT"

DURATION="${1:-20s}"
CONNECTIONS="${2:-32}"
PORT=18181
DB=devicehub_bench

require_cargo
ensure_postgres
command -v wrk >/dev/null || apt_install wrk
command -v curl >/dev/null || apt_install curl

release_binaries

psql -w -h "$PG_HOST" -U postgres -d postgres -qc "DROP DATABASE IF EXISTS $DB WITH (FORCE)" >/dev/null
export DEVICEHUB__DATABASE__URL="postgres://postgres@$PG_HOST:$PG_PORT/$DB"
export DEVICEHUB__HTTP__BIND="127.0.0.1:$PORT"
export DEVICEHUB__AUTH__JWT_SECRET="bench-only-secret-not-for-production-0123456789"
export DEVICEHUB__LOG__LEVEL=warn
export DEVICEHUB__ROLES=api

"$BIN" migrate >/dev/null
echo "bench-password" | "$BIN" user add --username bench --role admin >/dev/null
"$BIN" serve &
SERVER=$!
trap 'kill $SERVER 2>/dev/null || true' EXIT
wait_for_port 127.0.0.1 "$PORT" devicehub

TOKEN="$(curl -sf "http://127.0.0.1:$PORT/api/auth/login" -H 'content-type: application/json' \
  -d '{"username":"bench","password":"bench-password"}' | python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])')"

log "registering 1,000 devices through the API"
python3 - "$PORT" "$TOKEN" <<'PY'
import http.client, json, sys
port, token = int(sys.argv[1]), sys.argv[2]
conn = http.client.HTTPConnection("127.0.0.1", port)
headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
for i in range(1000):
    body = {"device_id": f"bench-{i:04d}", "device_name": f"Bench meter {i}",
            "device_type": "power_meter", "location": f"car-{i % 40}",
            "metadata": {"line": "S1", "index": i}}
    conn.request("POST", "/api/devices", json.dumps(body), headers)
    r = conn.getresponse(); r.read()
    assert r.status == 201, r.status
PY

run_wrk() {
  local name=$1 script=$2 path=$3 out
  out="$(mktemp)"
  log "$name: wrk -t1 -c$CONNECTIONS -d$DURATION"
  wrk -t1 -c"$CONNECTIONS" -d"$DURATION" --latency -s "$script" -H "Authorization: Bearer $TOKEN" \
    "http://127.0.0.1:$PORT$path" > "$out"
  local rps p99 non2xx
  rps=$(awk '/^Requests\/sec/ {print $2}' "$out")
  p99=$(awk '$1 == "99%" {print $2}' "$out")
  non2xx=$(awk '/Non-2xx/ {print $NF}' "$out")
  rm -f "$out"
  printf '%-28s %10s req/s   p99 %8s   non-2xx %s\n' "$name" "$rps" "$p99" "${non2xx:-0}"
}

echo
echo "devicehub API read benchmark ($(nproc) cores, PostgreSQL on the same host, $CONNECTIONS connections, $DURATION)"
run_wrk "GET /api/devices/{id}" bench/one-device.lua /api/devices/bench-0000
run_wrk "GET /api/devices?limit=100" bench/plain.lua "/api/devices?limit=100"
