#!/usr/bin/env bash
# Sets up what the tests need (PostgreSQL, Mosquitto) and runs the whole suite: formatting,
# clippy, unit and integration tests, OpenAPI validation, the operator's kit, the web console in
# headless Chromium and a short schemathesis run. Idempotent.
source "$(dirname "$0")/lib.sh"
cd "$ROOT"

require_cargo
ensure_services
ensure_victoria_metrics

log "dropping databases left by earlier test runs"
psql -w -h "$PG_HOST" -p "$PG_PORT" -U postgres -d postgres -Atqc \
  "SELECT datname FROM pg_database WHERE datname LIKE 'devicehub\_test\_%'" |
  while read -r db; do
    psql -w -h "$PG_HOST" -p "$PG_PORT" -U postgres -d postgres -qc "DROP DATABASE IF EXISTS \"$db\" WITH (FORCE)" >/dev/null
  done

log "dropping InfluxDB databases left by earlier test runs"
drop_test_influx_databases

log "removing S3 buckets left by earlier test runs"
rm -rf "$S3_DIR"/dh-test-*

log "cargo fmt --check"
cargo fmt --all -- --check

log "cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings

log "building tests"
cargo test --workspace --locked --no-run

log "validating openapi/openapi.json as OpenAPI 3"
VENV="$HOME/.cache/devicehub/venv"
if [ ! -x "$VENV/bin/openapi-spec-validator" ]; then
  python3 -m venv "$VENV" 2>/dev/null || { apt_install python3-venv; python3 -m venv "$VENV"; }
  "$VENV/bin/pip" install -q openapi-spec-validator
fi
"$VENV/bin/openapi-spec-validator" openapi/openapi.json

log "the operator's kit: Prometheus rules, Kubernetes manifests"
bash scripts/check-ops.sh

log "running tests"
cargo test --workspace --locked

log "the web console in headless Chromium"
bash scripts/browser-test.sh

log "schema fuzzing (schemathesis, ${SCHEMATHESIS_SECONDS:-90} s)"
SCHEMATHESIS_SECONDS="${SCHEMATHESIS_SECONDS:-90}" bash scripts/schemathesis.sh

# Each test writes its own InfluxDB database; dozens of idle ones keep influxd busy (and make
# the collector benchmark's InfluxDB figures worse), so a green run removes them.
log "dropping the tests' InfluxDB databases"
drop_test_influx_databases
