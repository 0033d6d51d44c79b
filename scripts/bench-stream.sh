#!/usr/bin/env bash
# Live stream benchmark: a devicehub with the API and collector roles (scratch database, its own
# topics), then
#   - 1,000 idle stream clients (GET /api/stream, status/alert/command), then 1,000 more:
#     devicehub's resident memory after each, per client;
#   - 200 readings published over MQTT, one every 20 ms, to a device one stream watches:
#     publish-to-event latency p50/p99/max.
# Usage: scripts/bench-stream.sh [clients, default 1000]
# DEVICEHUB_BIN measures a given build; the default is a release build.
source "$(dirname "$0")/lib.sh"
cd "$ROOT"

CLIENTS="${1:-1000}"
PORT=18182
DB=devicehub_bench_stream

require_cargo
ensure_services
VENV="$HOME/.cache/devicehub/venv"
[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
"$VENV/bin/python" -c 'import paho.mqtt' 2>/dev/null || "$VENV/bin/pip" install -q paho-mqtt==2.1.0

release_binaries

WORK="$(mktemp -d)"
TAG="bench$RANDOM"
psql -w -h "$PG_HOST" -U postgres -d postgres -qc "DROP DATABASE IF EXISTS $DB WITH (FORCE)" >/dev/null
export DEVICEHUB__DATABASE__URL="postgres://postgres@$PG_HOST:$PG_PORT/$DB"
export DEVICEHUB__HTTP__BIND="127.0.0.1:$PORT"
export DEVICEHUB__AUTH__JWT_SECRET="bench-only-secret-not-for-production-0123456789"
export DEVICEHUB__LOG__LEVEL=warn
# One bench user stands for a fleet of users: the per-user stream cap is lifted for it.
export DEVICEHUB__STREAM__MAX_CLIENTS_PER_USER=100000
export DEVICEHUB__ROLES=api,collector
export DEVICEHUB__MQTT__CLIENT_ID="devicehub-$TAG"
export DEVICEHUB__MQTT__IOT_PREFIX="$TAG/iot"
export DEVICEHUB__MQTT__QS_PREFIX="$TAG/qs/v1"
export DEVICEHUB__INFLUXDB__API=v1
export DEVICEHUB__INFLUXDB__DATABASE="devicehub_bench_stream"
export DEVICEHUB__ARCHIVE__DIR="$WORK/archive"
export DEVICEHUB__COLLECTOR__JOURNAL_DIR="$WORK/journal"
export DEVICEHUB__ANALYTICS__WORK_DIR="$WORK/analytics"

"$BIN" migrate >/dev/null
echo "bench-password" | "$BIN" user add --username bench --role admin >/dev/null
"$BIN" serve &
SERVER=$!
trap 'kill $SERVER 2>/dev/null; wait $SERVER 2>/dev/null; rm -rf "$WORK"' EXIT
wait_for_port 127.0.0.1 "$PORT" devicehub
sleep 1

"$VENV/bin/python" "$ROOT/scripts/bench_stream.py" "$PORT" "$SERVER" "$CLIENTS" "$TAG/iot"
