#!/usr/bin/env bash
# Starts devicehub with everything it needs on this machine: installs and starts PostgreSQL,
# Mosquitto and InfluxDB (Debian's 1.x, so the v1 API) when missing, builds the release binary
# and runs the API on :8080 with the collector (Ctrl-C stops). Data goes to ./data.
#
# DEVELOPMENT DEFAULTS: unless you set DEVICEHUB__AUTH__JWT_SECRET, this uses a fixed, publicly
# known signing secret. Never expose a server started like this to an untrusted network.
source "$(dirname "$0")/lib.sh"
cd "$ROOT"

require_cargo
ensure_services

export DEVICEHUB__INFLUXDB__API="${DEVICEHUB__INFLUXDB__API:-v1}"
export DEVICEHUB__AUTH__JWT_SECRET="${DEVICEHUB__AUTH__JWT_SECRET:-dev-only-insecure-jwt-secret-change-me-0123456789}"
# The archive and the Parquet lake go to the local S3 server (bucket iot-data), as they would to
# MinIO in a real deployment.
export DEVICEHUB__ARCHIVE__BACKEND="${DEVICEHUB__ARCHIVE__BACKEND:-s3}"
export DEVICEHUB__S3__ENDPOINT="${DEVICEHUB__S3__ENDPOINT:-http://127.0.0.1:$S3_PORT}"
export DEVICEHUB__S3__ACCESS_KEY="${DEVICEHUB__S3__ACCESS_KEY:-$S3_DEV_ACCESS_KEY}"
export DEVICEHUB__S3__SECRET_KEY="${DEVICEHUB__S3__SECRET_KEY:-$S3_DEV_SECRET_KEY}"

log "building devicehub (release)"
cargo build --release --locked --workspace
BIN="$CARGO_TARGET_DIR/release/devicehub"

"$BIN" migrate
log "devicehub on http://127.0.0.1:8080 — add a first admin in another shell with:"
log "  $BIN user add --username admin --role admin"
exec "$BIN" serve
